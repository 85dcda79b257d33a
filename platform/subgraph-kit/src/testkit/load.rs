//! A small closed-loop load generator for the benchmarks: `concurrency`
//! workers each send requests back to back for a fixed time; the report
//! gives throughput and latency percentiles of the successful ones.

use std::future::Future;
use std::time::{Duration, Instant};

/// What one load run measured.
#[derive(Debug, Clone)]
pub struct LoadReport {
    /// Latency of each successful request.
    pub latencies: Vec<Duration>,
    /// Requests that failed (transport error, non-2xx or GraphQL errors).
    pub errors: usize,
    /// Wall time of the run.
    pub elapsed: Duration,
}

impl LoadReport {
    /// Successful requests per second.
    pub fn throughput(&self) -> f64 {
        self.latencies.len() as f64 / self.elapsed.as_secs_f64()
    }

    /// The `q` quantile of latency in milliseconds (0.5 = median).
    pub fn percentile_ms(&self, q: f64) -> f64 {
        let mut sorted = self.latencies.clone();
        sorted.sort_unstable();
        match sorted.len() {
            0 => 0.0,
            n => sorted[((n - 1) as f64 * q).round() as usize].as_secs_f64() * 1000.0,
        }
    }

    /// One table row: name, req/s, p50, p99, max, `per_request` and errors.
    pub fn row(&self, name: &str, per_request: f64) -> String {
        format!(
            "{:<28} {:>10.0} {:>10.2} {:>10.2} {:>10.2} {:>12.2} {:>8}",
            name,
            self.throughput(),
            self.percentile_ms(0.50),
            self.percentile_ms(0.99),
            self.percentile_ms(1.0),
            per_request,
            self.errors,
        )
    }

    /// Stops the benchmark when more than 1 % of `name`'s requests failed:
    /// a run of refused requests is a broken benchmark, not a slow
    /// subgraph, and must not print as a figure (the product benchmark
    /// printed "0 req/s" once the subgraphs began refusing unsigned
    /// requests).
    pub fn require_success(&self, name: &str) {
        let total = self.latencies.len() + self.errors;
        assert!(
            total > 0 && self.errors * 100 <= total,
            "{name}: {} of {total} requests failed; the benchmark is broken",
            self.errors
        );
    }

    /// The header matching [`LoadReport::row`].
    pub fn header(per_request: &str) -> String {
        format!(
            "{:<28} {:>10} {:>10} {:>10} {:>10} {:>12} {:>8}",
            "scenario", "req/s", "p50 ms", "p99 ms", "max ms", per_request, "errors"
        )
    }
}

/// Runs `request(worker, iteration)` from `concurrency` workers for
/// `duration`; a request succeeds when it returns `true`.
pub async fn run<F, Fut>(concurrency: usize, duration: Duration, request: F) -> LoadReport
where
    F: Fn(usize, usize) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = bool> + Send,
{
    let started = Instant::now();
    let deadline = started + duration;
    let workers: Vec<_> = (0..concurrency)
        .map(|worker| {
            let request = request.clone();
            tokio::spawn(async move {
                let (mut latencies, mut errors) = (Vec::new(), 0);
                let mut iteration = 0;
                while Instant::now() < deadline {
                    let sent = Instant::now();
                    if request(worker, iteration).await {
                        latencies.push(sent.elapsed());
                    } else {
                        errors += 1;
                    }
                    iteration += 1;
                }
                (latencies, errors)
            })
        })
        .collect();
    let mut report = LoadReport {
        latencies: Vec::new(),
        errors: 0,
        elapsed: Duration::ZERO,
    };
    for worker in workers {
        if let Ok((latencies, errors)) = worker.await {
            report.latencies.extend(latencies);
            report.errors += errors;
        }
    }
    report.elapsed = started.elapsed();
    report
}

/// POSTs a GraphQL body and tells whether it succeeded without errors.
pub async fn graphql_ok(request: reqwest::RequestBuilder) -> bool {
    match request.send().await {
        Ok(response) if response.status().is_success() => match response.bytes().await {
            Ok(bytes) => !bytes.windows(9).any(|w| w == b"\"errors\":"),
            Err(_) => false,
        },
        _ => false,
    }
}

/// A number from the environment, or `default`.
pub fn env_number<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

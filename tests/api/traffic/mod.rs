//! End-to-end fault tests of the router's traffic management: real
//! processes (`shopgraph serve router`, `shopgraph serve product` replicas,
//! `shopgraph dev`, a private `redis-server`), the machine's real Redis and
//! PostgreSQL, and [`FaultProxy`] links that slow down, fail, lose answers
//! or refuse connections on command.
//!
//! Every test is hermetic: fresh databases, free ports, Redis keys under a
//! prefix of its own (deleted at the end), and routers as separate
//! processes, so one test's metrics and limits never leak into another's.
//! Timings are asserted as bounds only.
//!
//! One module per feature: [`balancing`] (replicas, strategies, failover),
//! [`breaker`], [`retry`], [`rate_limit`] (the shared Redis budget and its
//! local fallback), [`request_limits`] (query and body bombs),
//! [`persisted_queries`] and [`admin`] (the admin listener and readiness).
//! The processes come from [`crate::harness`]; what is shared here is the
//! machine's Redis, a private `redis-server`, and the load generator.

mod admin;
mod balancing;
mod breaker;
mod persisted_queries;
mod rate_limit;
mod request_limits;
mod retry;

use std::process::Stdio;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::process::{Child, Command};

use crate::harness::{SubgraphProcess, client, eventually, free_port, migrate};
use crate::helpers::{Backend, TestDb, fresh_db};

/// A product page, its size varied so no cache can answer for the subgraph.
const PRODUCTS: &str =
    "query($n: Int!) { products(first: $n) { edges { node { id name price { amount } } } } }";

/// Two product replicas on one fresh PostgreSQL store, the first seeding
/// the demo catalogue.
async fn product_replicas() -> (TestDb, SubgraphProcess, SubgraphProcess) {
    let db = fresh_db(Backend::Postgres).await;
    migrate("product", &db.url).await;
    let (first, second) = tokio::join!(
        SubgraphProcess::start("product", &db.url, &[("SEED_DEMO_DATA", "true")]),
        SubgraphProcess::start("product", &db.url, &[]),
    );
    (db, first, second)
}

/// A private `redis-server` (no persistence) on a free port, killed on
/// drop: the test may kill it without touching the machine's Redis.
struct RedisProcess {
    port: u16,
    child: Option<Child>,
}

impl RedisProcess {
    async fn start() -> Self {
        let port = free_port();
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string()])
            .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("redis-server starts");
        let redis = Self {
            port,
            child: Some(child),
        };
        assert!(
            eventually(Duration::from_secs(10), || async {
                redis_cli(port, &["ping"]).trim() == "PONG"
            })
            .await,
            "redis-server answers PING on {port}"
        );
        redis
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    async fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().await.expect("kill redis-server");
        }
    }
}

/// The machine's Redis (the one the project's services share).
const REDIS_PORT: u16 = 6379;

/// Runs `redis-cli -p port args...` and returns its output.
fn redis_cli(port: u16, args: &[&str]) -> String {
    std::process::Command::new("redis-cli")
        .args(["-h", "127.0.0.1", "-p", &port.to_string()])
        .args(args)
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default()
}

/// The keys under `prefix` on the Redis at `port`.
fn redis_keys(port: u16, prefix: &str) -> Vec<String> {
    redis_cli(port, &["--scan", "--pattern", &format!("{prefix}*")])
        .lines()
        .map(str::to_owned)
        .filter(|k| !k.is_empty())
        .collect()
}

/// Deletes a test's Redis keys when it ends, even on failure.
struct RedisKeys {
    port: u16,
    prefix: String,
}

impl RedisKeys {
    /// A unique prefix on the machine's Redis.
    fn unique(what: &str) -> Self {
        Self {
            port: REDIS_PORT,
            prefix: format!("shopgraph-test:{what}:{}:", uuid::Uuid::new_v4().simple()),
        }
    }
}

impl Drop for RedisKeys {
    fn drop(&mut self) {
        for key in redis_keys(self.port, &self.prefix) {
            redis_cli(self.port, &["del", &key]);
        }
    }
}

/// The lowercase hex SHA-256 of `text` (through coreutils' `sha256sum`,
/// independent of the router's own hashing).
fn sha256_hex(text: &str) -> String {
    use std::io::Write;
    let mut child = std::process::Command::new("sha256sum")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("sha256sum runs");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(text.as_bytes())
        .expect("write to sha256sum");
    let output = child.wait_with_output().expect("sha256sum output");
    String::from_utf8_lossy(&output.stdout)
        .split_whitespace()
        .next()
        .expect("a digest")
        .to_owned()
}

// ---------------------------------------------------------------------------
// Load
// ---------------------------------------------------------------------------

/// What one request of a load run got.
#[derive(Debug)]
struct Outcome {
    status: Option<StatusCode>,
    body: Value,
}

impl Outcome {
    /// A product page without errors.
    fn is_complete_page(&self) -> bool {
        self.status == Some(StatusCode::OK)
            && self.body.get("errors").is_none()
            && self.body["data"]["products"]["edges"]
                .as_array()
                .is_some_and(|edges| !edges.is_empty())
    }
}

/// `workers` clients posting product pages to `url` back to back for
/// `duration`.
async fn product_load(url: String, workers: usize, duration: Duration) -> Vec<Outcome> {
    let http = client();
    let deadline = Instant::now() + duration;
    let tasks: Vec<_> = (0..workers)
        .map(|worker| {
            let http = http.clone();
            let url = url.clone();
            tokio::spawn(async move {
                let mut outcomes = Vec::new();
                let mut i = worker;
                while Instant::now() < deadline {
                    let body = json!({ "query": PRODUCTS, "variables": { "n": 1 + i % 5 } });
                    i += 1;
                    let outcome = match http.post(&url).json(&body).send().await {
                        Ok(response) => {
                            let status = response.status();
                            Outcome {
                                status: Some(status),
                                body: response.json().await.unwrap_or(Value::Null),
                            }
                        }
                        Err(err) => Outcome {
                            status: None,
                            body: json!(err.to_string()),
                        },
                    };
                    outcomes.push(outcome);
                }
                outcomes
            })
        })
        .collect();
    let mut outcomes = Vec::new();
    for task in tasks {
        outcomes.extend(task.await.expect("a load worker"));
    }
    outcomes
}

/// The router variables that turn off request sharing, so every client
/// request really reaches a subgraph.
fn no_dedupe() -> [(&'static str, String); 2] {
    [
        ("QUERY_DEDUPE", "false".into()),
        ("SUBGRAPH_DEDUPE", "false".into()),
    ]
}

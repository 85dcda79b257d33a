//! Prometheus metrics, exposed at `/metrics` by every service.
//!
//! The `metrics` facade records from anywhere in the process; one Prometheus
//! recorder is installed on first use and shared by every service running in
//! the process (so `shopgraph dev` serves one registry, labelled by service).

use std::sync::OnceLock;
use std::time::Duration;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// Latency buckets in seconds, from sub-millisecond cache hits to timeouts.
const LATENCY_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// The process-wide Prometheus registry, installed on first call.
pub fn prometheus() -> &'static PrometheusHandle {
    HANDLE.get_or_init(|| {
        let builder = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Suffix("duration_seconds".into()), LATENCY_BUCKETS)
            .expect("latency buckets are a non-empty constant");
        let recorder = builder.build_recorder();
        let handle = recorder.handle();
        // Another recorder may already be global (an embedding program);
        // metrics then go there and this handle renders an empty registry.
        if metrics::set_global_recorder(recorder).is_err() {
            tracing::warn!("a metrics recorder was already installed; /metrics will be empty");
        }
        handle
    })
}

/// Records one GraphQL request of `operation_type` that took `elapsed`.
pub fn record_graphql_request(
    service: &'static str,
    operation_type: &'static str,
    elapsed: Duration,
) {
    let labels = [("service", service), ("operation_type", operation_type)];
    metrics::counter!("graphql_requests_total", &labels).increment(1);
    metrics::histogram!("graphql_request_duration_seconds", &labels).record(elapsed.as_secs_f64());
}

/// Records one error returned to a client, by its `extensions.code`.
pub fn record_graphql_error(service: &'static str, code: &str) {
    metrics::counter!("graphql_errors_total", "service" => service, "code" => code.to_owned())
        .increment(1);
}

/// Records one SQL statement executed by `service`'s store.
pub fn record_db_statement(service: &'static str, elapsed: Duration, failed: bool) {
    metrics::counter!("db_statements_total", "service" => service).increment(1);
    if failed {
        metrics::counter!("db_statement_errors_total", "service" => service).increment(1);
    }
    metrics::histogram!("db_statement_duration_seconds", "service" => service)
        .record(elapsed.as_secs_f64());
}

/// Records `count` outbox rows of `service` the bus accepted.
pub fn record_outbox_published(service: &'static str, count: u64) {
    metrics::counter!("events_published_total", "service" => service).increment(count);
}

/// Records one failed outbox relay pass (the bus refused or was away).
pub fn record_outbox_failure(service: &'static str) {
    metrics::counter!("events_publish_failures_total", "service" => service).increment(1);
}

/// Records one event a consumer handled: `outcome` is `applied`,
/// `duplicate` or `malformed`.
pub fn record_event_consumed(consumer: &'static str, outcome: &'static str) {
    metrics::counter!("events_consumed_total", "consumer" => consumer, "outcome" => outcome)
        .increment(1);
}

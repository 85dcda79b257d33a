//! What a subgraph records for `/metrics`: its GraphQL requests and errors,
//! store statements, and events published and consumed. The registry they
//! land in is the process's one ([`shopgraph_core::metrics::prometheus`]).

use std::time::Duration;

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

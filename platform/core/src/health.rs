//! Liveness and readiness endpoints for orchestrators and load balancers.
//!
//! `/health` and `/health/live` answer as long as the process serves HTTP;
//! `/health/ready` runs every [`ReadinessCheck`] (the store, for a subgraph)
//! and answers 503 while any of them fails, so traffic is only routed to a
//! replica that can actually serve it.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use futures::future::BoxFuture;
use serde_json::{Map, Value, json};

/// Something that must answer before the service takes traffic.
pub trait ReadinessCheck: Send + Sync + 'static {
    /// Short name shown in the readiness report (`database`).
    fn name(&self) -> &'static str;
    /// `Ok` when the dependency answers; otherwise a reason for operators.
    fn check(&self) -> BoxFuture<'_, Result<(), String>>;
}

#[derive(Clone)]
struct HealthState {
    service: &'static str,
    checks: Arc<Vec<Arc<dyn ReadinessCheck>>>,
}

/// The `/health*` routes of `service`.
pub fn routes(service: &'static str, checks: Vec<Arc<dyn ReadinessCheck>>) -> Router {
    Router::new()
        .route("/health", get(live))
        .route("/health/live", get(live))
        .route("/health/ready", get(ready))
        .with_state(HealthState {
            service,
            checks: Arc::new(checks),
        })
}

async fn live(State(state): State<HealthState>) -> Json<Value> {
    Json(json!({
        "status": "ok",
        "service": state.service,
        "version": env!("CARGO_PKG_VERSION"),
    }))
}

async fn ready(State(state): State<HealthState>) -> Response {
    let results = futures::future::join_all(state.checks.iter().map(|check| async move {
        let outcome = tokio::time::timeout(std::time::Duration::from_secs(2), check.check())
            .await
            .unwrap_or_else(|_| Err("timed out after 2s".into()));
        (check.name(), outcome)
    }))
    .await;
    let all_ok = results.iter().all(|(_, outcome)| outcome.is_ok());
    let checks: Map<String, Value> = results
        .into_iter()
        .map(|(name, outcome)| {
            let value = match outcome {
                Ok(()) => json!({ "status": "ok" }),
                Err(reason) => json!({ "status": "error", "error": reason }),
            };
            (name.to_owned(), value)
        })
        .collect();
    let status = if all_ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = json!({
        "status": if all_ok { "ready" } else { "not_ready" },
        "service": state.service,
        "checks": checks,
    });
    (status, Json(body)).into_response()
}

//! Beside the request path: what the router knows about itself and its
//! subgraphs, for probes and operators — the minimal public `/health*`
//! probes (served on the API port through the edge's common layers) and,
//! on the admin listener, the operators' endpoints and the admin API.
//! Admin refusals are [`RouterError`]s in the admin API's own body shape
//! ([`RouterError::admin_response`]).
//!
//! | endpoint | port | who | answers |
//! |---|---|---|---|
//! | `/health`, `/health/live` | API | anyone | 200 while the process serves HTTP |
//! | `/health/ready` | API | anyone | 200 when the supergraph is loaded and every subgraph has an available replica, else 503 |
//! | `/health/detailed` | admin | anyone who reaches the admin listener | per subgraph and replica: health, ejection, breaker state, latency, in flight |
//! | `/metrics` | admin | anyone who reaches the admin listener | the Prometheus exposition |
//! | `/admin/status` | admin | admin JWT | version, uptime, the protections in force, subgraph summary |
//! | `/admin/services` | admin | admin JWT | every subgraph with replicas and breaker |
//! | `/admin/loadbalancer/{service}` | admin | admin JWT | one subgraph's strategy and replicas |
//! | `/admin/circuitbreaker/{service}` | admin | admin JWT | one subgraph's breaker and its settings |
//!
//! The admin listener (`ADMIN_PORT`, default 4100, on `ADMIN_HOST`,
//! default 127.0.0.1) is separate from the API port, so it stays off the
//! public network. `/health/detailed` and `/metrics` used to be on the API
//! port, where they showed subgraph URLs, breaker states and raw
//! connection errors to anonymous callers; they moved here. They need no
//! token: Prometheus scrapes with a static configuration and cannot easily
//! present a JWT that expires, and whoever can reach the loopback or
//! internal admin address is already inside. The admin API proper still
//! needs a JWT with the `admin` role (401 without a valid token, 403
//! without the role). With `ADMIN_ENABLED=false` the router serves neither
//! `/metrics` nor `/health/detailed`.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Instant;

use axum::extract::{Path, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Value, json};
use shopgraph_core::config::{ConfigError, Env};
use shopgraph_core::identity::Identity;

use crate::pipeline::RouterError;
use crate::traffic::Upstreams;
use crate::traffic::upstream::Upstream;
use shopgraph_core::identity::JwtVerifier;

/// The admin listener's default port.
pub const DEFAULT_ADMIN_PORT: u16 = 4100;

/// Where the admin API listens.
#[derive(Debug, Clone)]
pub struct AdminSettings {
    /// `ADMIN_ENABLED` (true): whether the admin listener runs at all.
    pub enabled: bool,
    /// `ADMIN_HOST`:`ADMIN_PORT`; port 0 picks a free port (tests).
    pub addr: SocketAddr,
}

impl AdminSettings {
    /// Reads `ADMIN_ENABLED`, `ADMIN_HOST` and `ADMIN_PORT`.
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let host = env.ip_or("ADMIN_HOST", IpAddr::V4(Ipv4Addr::LOCALHOST))?;
        let port = env.int_in_or("ADMIN_PORT", 0..=65_535, DEFAULT_ADMIN_PORT)?;
        Ok(Self {
            enabled: env.bool_or("ADMIN_ENABLED", true)?,
            addr: SocketAddr::new(host, port),
        })
    }
}

/// What the status endpoints read.
#[derive(Clone)]
pub struct StatusState {
    /// The subgraphs' traffic state.
    pub upstreams: Arc<Upstreams>,
    /// Verifies admin tokens.
    pub auth: Arc<JwtVerifier>,
    /// When the router started.
    pub started: Instant,
    /// The protections in force, as shown by `/admin/status`.
    pub protections: Arc<Value>,
}

/// The public probes: `/health`, `/health/live`, `/health/ready`. They
/// say whether to send traffic, nothing about the subgraphs behind.
pub fn health_routes(state: StatusState) -> Router {
    Router::new()
        .route("/health", get(live))
        .route("/health/live", get(live))
        .route("/health/ready", get(ready))
        .with_state(state)
}

/// The admin listener's routes: `/health/detailed` and `/metrics` without
/// a token (see the module docs for why), and the admin API, where every
/// route needs an admin token.
pub fn admin_routes(state: StatusState) -> Router {
    let api = Router::new()
        .route("/admin/status", get(status))
        .route("/admin/services", get(services))
        .route("/admin/loadbalancer/{service}", get(load_balancer))
        .route("/admin/circuitbreaker/{service}", get(circuit_breaker))
        .fallback(|| async { RouterError::AdminNoEndpoint.admin_response() })
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            require_admin,
        ));
    Router::new()
        .route("/health/detailed", get(detailed))
        .merge(api)
        .with_state(state)
        .route("/metrics", shopgraph_core::server::metrics_route())
}

async fn live() -> Json<Value> {
    Json(json!({
        "status": "ok",
        "service": crate::SERVICE_NAME,
        "version": env!("CARGO_PKG_VERSION"),
    }))
}

async fn ready(State(state): State<StatusState>) -> Response {
    let subgraphs = state.upstreams.all();
    let checks: serde_json::Map<String, Value> = subgraphs
        .iter()
        .map(|upstream| {
            let value = if upstream.pool.has_available() {
                json!({ "status": "ok" })
            } else {
                json!({ "status": "error", "error": "no available replica" })
            };
            (upstream.name.clone(), value)
        })
        .collect();
    let ready = subgraphs
        .iter()
        .all(|upstream| upstream.pool.has_available());
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = json!({
        "status": if ready { "ready" } else { "not_ready" },
        "service": crate::SERVICE_NAME,
        "checks": { "supergraph": { "status": "ok" }, "subgraphs": checks },
    });
    (status, Json(body)).into_response()
}

async fn detailed(State(state): State<StatusState>) -> Json<Value> {
    let subgraphs = state.upstreams.all();
    let degraded = subgraphs.iter().any(|upstream| {
        !upstream.pool.has_available()
            || upstream
                .pool
                .replicas()
                .iter()
                .any(|replica| !replica.snapshot().available)
    });
    Json(json!({
        "status": if degraded { "degraded" } else { "ok" },
        "service": crate::SERVICE_NAME,
        "version": env!("CARGO_PKG_VERSION"),
        "uptime_seconds": state.started.elapsed().as_secs(),
        "subgraphs": subgraphs.iter().map(|upstream| service(upstream)).collect::<Vec<_>>(),
    }))
}

/// One subgraph as operators see it: replicas, strategy, breaker.
fn service(upstream: &Upstream) -> Value {
    json!({
        "name": upstream.name,
        "available": upstream.pool.has_available(),
        "strategy": upstream.pool.strategy().as_str(),
        "replicas": replicas(upstream),
        "circuit_breaker": upstream.breaker.as_ref().map(|breaker| breaker.snapshot()),
    })
}

fn replicas(upstream: &Upstream) -> Vec<Value> {
    upstream
        .pool
        .replicas()
        .iter()
        .map(|replica| serde_json::to_value(replica.snapshot()).unwrap_or(Value::Null))
        .collect()
}

async fn require_admin(State(state): State<StatusState>, request: Request, next: Next) -> Response {
    match state
        .auth
        .identify(request.headers().get(header::AUTHORIZATION))
    {
        Ok(Identity::User(viewer)) if viewer.is_admin() => next.run(request).await,
        Ok(Identity::User(_)) => RouterError::AdminForbidden.admin_response(),
        Ok(Identity::Anonymous) => RouterError::AdminAnonymous.admin_response(),
        Err(err) => RouterError::AdminInvalidToken(err).admin_response(),
    }
}

async fn status(State(state): State<StatusState>) -> Json<Value> {
    let subgraphs = state.upstreams.all();
    let available = subgraphs
        .iter()
        .filter(|upstream| upstream.pool.has_available())
        .count();
    Json(json!({
        "status": if available == subgraphs.len() { "ok" } else { "degraded" },
        "service": crate::SERVICE_NAME,
        "version": env!("CARGO_PKG_VERSION"),
        "uptime_seconds": state.started.elapsed().as_secs(),
        "subgraphs": { "total": subgraphs.len(), "available": available },
        "protections": *state.protections,
    }))
}

async fn services(State(state): State<StatusState>) -> Json<Value> {
    let subgraphs = state.upstreams.all();
    Json(
        json!({ "services": subgraphs.iter().map(|upstream| service(upstream)).collect::<Vec<_>>() }),
    )
}

fn find(state: &StatusState, name: &str) -> Option<Arc<Upstream>> {
    state.upstreams.get(name)
}

fn unknown(name: &str) -> Response {
    RouterError::AdminUnknownSubgraph(name.to_owned()).admin_response()
}

async fn load_balancer(State(state): State<StatusState>, Path(name): Path<String>) -> Response {
    let Some(upstream) = find(&state, &name) else {
        return unknown(&name);
    };
    Json(json!({
        "service": upstream.name,
        "enabled": state.upstreams.settings().balancer.enabled,
        "strategy": upstream.pool.strategy().as_str(),
        "available": upstream.pool.has_available(),
        "replicas": replicas(&upstream),
    }))
    .into_response()
}

async fn circuit_breaker(State(state): State<StatusState>, Path(name): Path<String>) -> Response {
    let Some(upstream) = find(&state, &name) else {
        return unknown(&name);
    };
    let settings = &state.upstreams.settings().breaker;
    let mut body = json!({
        "service": upstream.name,
        "enabled": settings.enabled,
        "settings": {
            "interval_ms": settings.interval.as_millis() as u64,
            "timeout_ms": settings.timeout.as_millis() as u64,
            "max_requests": settings.max_requests,
            "failure_ratio": settings.failure_ratio,
            "min_requests": settings.min_requests,
        },
    });
    let snapshot = upstream
        .breaker
        .as_ref()
        .and_then(|breaker| serde_json::to_value(breaker.snapshot()).ok());
    if let (Some(Value::Object(snapshot)), Some(object)) = (snapshot, body.as_object_mut()) {
        object.extend(snapshot);
    }
    Json(body).into_response()
}

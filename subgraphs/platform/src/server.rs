//! Turning a service's routes into a running HTTP server.
//!
//! [`service_router`] adds what every service exposes (`/health*`,
//! `/metrics`) and the layers every request passes, outer to inner:
//!
//! 1. trace span per request (continuing the caller's W3C `traceparent`);
//! 2. response compression;
//! 3. body size limit (413);
//! 4. request timeout (408);
//! 5. identity ([`crate::identity::identify`], 401 on a bad token).
//!
//! [`serve`] runs the router on a bound listener until the shutdown future
//! resolves, then stops accepting, lets in-flight requests finish within the
//! grace period, and returns so the caller can close its pools.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{Request, StatusCode};
use axum::routing::get;
use opentelemetry::propagation::Extractor;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tower::ServiceBuilder;
use tower::util::MapResponseLayer;
use tower_http::compression::CompressionLayer;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use crate::health::{self, ReadinessCheck};
use crate::identity::{self, JwtAuthority};
use crate::settings::HttpSettings;

/// Wraps a service's own routes with health, metrics and the common layers.
pub fn service_router(
    service: &'static str,
    routes: Router,
    readiness: Vec<Arc<dyn ReadinessCheck>>,
    authority: Arc<JwtAuthority>,
    http: &HttpSettings,
) -> Router {
    let identified = routes.layer(axum::middleware::from_fn_with_state(
        authority,
        identity::identify,
    ));
    with_common_layers(
        service,
        Router::new()
            .merge(identified)
            .merge(health::routes(service, readiness)),
        http,
    )
}

/// Adds `/metrics` and the layers every Shopgraph HTTP service shares
/// (trace span, compression, body limit, timeout) to `routes`; the router
/// uses it too, with its own identity step.
pub fn with_common_layers(service: &'static str, routes: Router, http: &HttpSettings) -> Router {
    // Install the recorder now: metrics recorded before it exists are lost.
    let prometheus = crate::metrics::prometheus();
    routes
        .route("/metrics", get(move || async move { prometheus.render() }))
        .layer(
            ServiceBuilder::new()
                .layer(
                    TraceLayer::new_for_http().make_span_with(move |request: &Request<_>| {
                        let span = tracing::info_span!(
                            "http_request",
                            service,
                            method = %request.method(),
                            path = %request.uri().path(),
                        );
                        let parent = opentelemetry::global::get_text_map_propagator(|propagator| {
                            propagator.extract(&HeaderExtractor(request.headers()))
                        });
                        if let Err(err) = span.set_parent(parent) {
                            tracing::debug!(%err, "cannot attach the caller's trace context");
                        }
                        span
                    }),
                )
                .layer(CompressionLayer::new())
                .layer(DefaultBodyLimit::disable())
                .layer(RequestBodyLimitLayer::new(http.max_body_bytes))
                .layer(TimeoutLayer::with_status_code(
                    StatusCode::REQUEST_TIMEOUT,
                    http.request_timeout,
                )),
        )
        .layer(MapResponseLayer::new(close_after_too_large))
}

/// A 413 leaves the request body unread, so the connection cannot be
/// reused: say so, or a keep-alive client sends its next request into a
/// closing socket. Public for layers outside these that rewrite a 413.
pub fn close_after_too_large(mut response: axum::response::Response) -> axum::response::Response {
    if response.status() == StatusCode::PAYLOAD_TOO_LARGE {
        response.headers_mut().insert(
            axum::http::header::CONNECTION,
            axum::http::HeaderValue::from_static("close"),
        );
    }
    response
}

struct HeaderExtractor<'a>(&'a axum::http::HeaderMap);

impl Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(|k| k.as_str()).collect()
    }
}

/// Binds `addr`; port 0 picks a free port, readable from the listener.
pub async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr).await
}

/// Serves `router` on `listener` until `shutdown` resolves, then drains
/// in-flight requests for at most `grace`.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
    grace: Duration,
) -> std::io::Result<()> {
    let stop = CancellationToken::new();
    let trigger = stop.clone();
    tokio::spawn(async move {
        shutdown.await;
        trigger.cancel();
    });
    let server = axum::serve(
        listener,
        router.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(stop.clone().cancelled_owned());
    let deadline = async {
        stop.cancelled().await;
        tokio::time::sleep(grace).await;
    };
    tokio::select! {
        result = server => result,
        () = deadline => {
            tracing::warn!(?grace, "grace period elapsed; abandoning in-flight requests");
            Ok(())
        }
    }
}

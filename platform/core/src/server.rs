//! Turning a service's routes into a running HTTP server.
//!
//! [`with_common_layers`] adds the layers every request of every process
//! passes ([`CommonLayers`]), outer to inner:
//!
//! 1. `connection: close` after a 413;
//! 2. trace span per request (continuing the caller's W3C `traceparent`);
//! 3. response compression (not for streamed bodies: SSE, multipart);
//! 4. body size limit (413);
//! 5. request timeout (408).
//!
//! [`serve`] runs the router on a bound listener until the shutdown future
//! resolves, then stops accepting, lets in-flight requests finish within the
//! grace period, and returns so the caller can close its pools.

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use axum::extract::DefaultBodyLimit;
use axum::http::{self as http, HeaderValue, Request, StatusCode, header};
use axum::routing::{MethodRouter, get};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use opentelemetry::propagation::Extractor;
use tokio::net::TcpListener;
use tower::layer::util::{Identity, Stack};
use tower::{Layer, ServiceBuilder, ServiceExt};
use tower_http::classify::{ServerErrorsAsFailures, SharedClassifier};
use tower_http::compression::CompressionLayer;
use tower_http::compression::predicate::{And, DefaultPredicate, NotForContentType, Predicate};
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::set_header::{MakeHeaderValue, SetResponseHeaderLayer};
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::{MakeSpan, TraceLayer};
use tracing_opentelemetry::OpenTelemetrySpanExt;

use crate::settings::HttpSettings;

/// Adds the layers every Shopgraph HTTP service shares ([`CommonLayers`])
/// to `routes`. Not `/metrics`: it goes on a listener apart from the
/// public port (the router's admin listener, a subgraph's metrics
/// listener), see [`metrics_route`].
pub fn with_common_layers(service: &'static str, routes: Router, http: &HttpSettings) -> Router {
    routes.layer(CommonLayers::new(service, http))
}

/// `GET /metrics`: the Prometheus exposition of this process's metrics.
/// Served only on an operators' listener, never on a public port: the
/// series show operations, error codes, subgraph names and counters that
/// anonymous callers should not read.
pub fn metrics_route() -> MethodRouter {
    // Install the recorder now: metrics recorded before it exists are lost.
    let prometheus = crate::metrics::prometheus();
    get(move || async move { prometheus.render() })
}

/// The layers every request of every Shopgraph HTTP service passes, outer
/// to inner: `connection: close` after a 413, trace span (continuing the
/// caller's W3C `traceparent`), compression, body limit (413), timeout
/// (408).
///
/// One value, so that a caller can put its own layers around or inside
/// these and still apply the whole stack with one `layer` call: axum boxes
/// the stack at each call and clones every box again for each request, so
/// each extra call is an allocation and a deep clone per request.
#[derive(Clone)]
pub struct CommonLayers(CommonStack);

type CommonStack = Stack<
    TimeoutLayer,
    Stack<
        RequestBodyLimitLayer,
        Stack<
            DefaultBodyLimit,
            Stack<
                CompressionLayer<Compressible>,
                Stack<
                    TraceLayer<SharedClassifier<ServerErrorsAsFailures>, RequestSpan>,
                    Stack<SetResponseHeaderLayer<CloseAfterTooLarge>, Identity>,
                >,
            >,
        >,
    >,
>;

impl CommonLayers {
    /// The layers for `service` (named in every request's span), limited
    /// per `http`.
    pub fn new(service: &'static str, http: &HttpSettings) -> Self {
        Self(
            ServiceBuilder::new()
                .layer(SetResponseHeaderLayer::overriding(
                    header::CONNECTION,
                    CloseAfterTooLarge,
                ))
                .layer(TraceLayer::new_for_http().make_span_with(RequestSpan { service }))
                .layer(CompressionLayer::new().compress_when(compressible()))
                .layer(DefaultBodyLimit::disable())
                .layer(RequestBodyLimitLayer::new(http.max_body_bytes))
                .layer(TimeoutLayer::with_status_code(
                    StatusCode::REQUEST_TIMEOUT,
                    http.request_timeout,
                ))
                .into_inner(),
        )
    }
}

/// Which responses are compressed: tower-http's defaults (not tiny
/// bodies, gRPC, images or SSE), and not multipart subscriptions either.
type Compressible = And<DefaultPredicate, NotForContentType>;

/// The [`Compressible`] predicate. A compressor holds what it has read
/// until it has enough to emit (it is never flushed mid-body), so a
/// streamed `multipart/mixed` part or heartbeat would wait in it instead
/// of reaching the client; SSE is excluded by the defaults for the same
/// reason.
fn compressible() -> Compressible {
    DefaultPredicate::new().and(NotForContentType::const_new("multipart/mixed"))
}

impl<S> Layer<S> for CommonLayers
where
    CommonStack: Layer<S>,
{
    type Service = <CommonStack as Layer<S>>::Service;

    fn layer(&self, inner: S) -> Self::Service {
        self.0.layer(inner)
    }
}

/// The `http_request` span of each request, a child of the caller's trace
/// when it sent a `traceparent`.
#[derive(Clone, Copy, Debug)]
pub struct RequestSpan {
    service: &'static str,
}

impl<B> MakeSpan<B> for RequestSpan {
    fn make_span(&mut self, request: &Request<B>) -> tracing::Span {
        let span = tracing::info_span!(
            "http_request",
            service = self.service,
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
    }
}

/// `connection: close` on a 413: the request body was left unread, so the
/// connection cannot be reused, and a keep-alive client must be told or it
/// sends its next request into a closing socket.
#[derive(Clone, Copy, Debug)]
pub struct CloseAfterTooLarge;

impl<B> MakeHeaderValue<http::Response<B>> for CloseAfterTooLarge {
    fn make_header_value(&mut self, response: &http::Response<B>) -> Option<HeaderValue> {
        (response.status() == StatusCode::PAYLOAD_TOO_LARGE)
            .then_some(HeaderValue::from_static("close"))
    }
}

/// [`CloseAfterTooLarge`] for a layer outside [`CommonLayers`] that
/// rewrites a 413 into a new response.
pub fn close_after_too_large<B>(mut response: http::Response<B>) -> http::Response<B> {
    if let Some(close) = CloseAfterTooLarge.make_header_value(&response) {
        response.headers_mut().insert(header::CONNECTION, close);
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

/// The timeouts [`serve`] applies to connections, from [`HttpSettings`].
#[derive(Debug, Clone, Copy)]
pub struct ServeTimeouts {
    /// Longest wait for a request's headers (`HTTP_HEADER_READ_TIMEOUT`).
    pub header_read: Duration,
    /// How long shutdown drains in-flight requests (`SHUTDOWN_TIMEOUT`).
    pub grace: Duration,
}

impl From<&HttpSettings> for ServeTimeouts {
    fn from(http: &HttpSettings) -> Self {
        Self {
            header_read: http.header_read_timeout,
            grace: http.shutdown_timeout,
        }
    }
}

/// Serves `router` on `listener` until `shutdown` resolves, then drains
/// in-flight requests for at most `timeouts.grace`.
///
/// Our own accept loop rather than `axum::serve`, which offers no way to
/// configure hyper: HTTP/1 connections get hyper's header-read timeout
/// (it needs a timer, which `axum::serve` does not set, so a client could
/// send its headers a byte at a time forever). Each request carries the
/// peer address as `ConnectInfo<SocketAddr>` (the rate limit's key), and
/// upgrades (websockets) are served as with `axum::serve`.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
    timeouts: ServeTimeouts,
) -> std::io::Result<()> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(timeouts.header_read);
    let graceful = GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(err) => {
                    // Out of file descriptors and the like: wait rather
                    // than spin, as `axum::serve` does.
                    tracing::warn!(%err, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let router = router.clone();
        let service = hyper::service::service_fn(move |mut request: Request<Incoming>| {
            request.extensions_mut().insert(ConnectInfo(peer));
            router.clone().oneshot(request)
        });
        let connection = builder
            .serve_connection_with_upgrades(TokioIo::new(stream), service)
            .into_owned();
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(err) = connection.await {
                tracing::debug!(%err, %peer, "connection ended with an error");
            }
        });
    }
    drop(listener);
    tokio::select! {
        () = graceful.shutdown() => Ok(()),
        () = tokio::time::sleep(timeouts.grace) => {
            tracing::warn!(grace = ?timeouts.grace, "grace period elapsed; abandoning in-flight requests");
            Ok(())
        }
    }
}

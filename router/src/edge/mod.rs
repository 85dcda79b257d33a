//! Stage 1, the HTTP edge: every layer a request crosses before the
//! GraphQL pipeline sees it, composed in one place so the order can be
//! read top to bottom.
//!
//! Outer to inner:
//!
//! | layer | routes | module |
//! |---|---|---|
//! | security headers (and HSTS behind TLS), on every answer, refusals included | all | [`security`] |
//! | a 413 from the body limit becomes a coded GraphQL error | all | [`coded_body_limit`] |
//! | trace span, compression, body limit, timeout | all | `shopgraph_core::server` |
//! | CORS | `/graphql` | [`security`] |
//! | CSRF prevention | `/graphql` | [`security`] |
//! | identify the caller (the token is verified once, here) | `/graphql` | [`identify_caller`] |
//! | per-client rate limit (websocket, SSE and multipart count when they open; each websocket operation counts too) | `/graphql` | [`ratelimit`] |
//!
//! Every refusal here is a [`RouterError`] rendered as a GraphQL error.
//!
//! Every layer is built once, at start, and ours hold their configuration
//! behind an `Arc`: axum clones a route's whole layer stack for every
//! request, so a layer whose clone copies lists or header maps costs every
//! request (tower-http's CORS still copies a few header values). For the
//! same reason each route gets the whole stack in one `layer` call: every
//! call is one more box that each request clones, with all it holds.
//! `router/benches/edge.rs` measures what each layer adds.

pub mod ratelimit;
pub mod security;

use std::sync::Arc;

use axum::Router;
use axum::routing::MethodRouter;
use shopgraph_core::config::ConfigError;
use shopgraph_core::identity::Identity;
use shopgraph_core::server::CommonLayers;
use shopgraph_core::settings::HttpSettings;
use tower::ServiceBuilder;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::Response;
use shopgraph_core::identity::JwtVerifier;

use crate::pipeline::{RouterError, Verified};
use ratelimit::{
    ClientRateLimiter, KeyResolver, RateLimitLayer, RateLimitSettings, SubjectResolver,
};
use security::SecuritySettings;

/// The edge's layers, built once from the router's settings.
#[derive(Clone)]
pub struct Edge {
    auth: Arc<JwtVerifier>,
    rate_limit: Option<RateLimitLayer>,
    security: SecuritySettings,
    http: HttpSettings,
}

impl Edge {
    /// Builds the layers the settings ask for (the router's `http`,
    /// `security` and `rate_limit` settings, taken apart so the edge does
    /// not depend on [`crate::config`], which depends on it); `redis`
    /// shares the rate limit between router replicas.
    pub fn new(
        http: &HttpSettings,
        security: &SecuritySettings,
        rate_limit: &RateLimitSettings,
        auth: Arc<JwtVerifier>,
        redis: Option<redis::aio::ConnectionManager>,
    ) -> Result<Self, ConfigError> {
        let rate_limit = if rate_limit.enabled {
            let limiter = ClientRateLimiter::new(rate_limit, redis)?;
            // The caller verified once by `identify_caller`, outside it.
            let subject: SubjectResolver =
                Arc::new(|extensions: &http::Extensions, _: &http::HeaderMap| {
                    match extensions.get::<Verified>()?.0.as_ref() {
                        Ok(Identity::User(viewer)) => Some(viewer.user_id.clone()),
                        _ => None,
                    }
                });
            let keys = KeyResolver::new(subject, rate_limit.trusted_proxy_header.clone());
            Some(RateLimitLayer::new(Arc::new(limiter), keys))
        } else {
            None
        };
        Ok(Self {
            auth,
            rate_limit,
            security: security.clone(),
            http: http.clone(),
        })
    }

    /// Serves `graphql` (the `/graphql` methods, their state applied) and
    /// `others` (the public health probes: no CORS, CSRF or rate limit), in
    /// the edge, in the order of the module's table. `/metrics` is not
    /// here: it lives on the admin listener ([`crate::admin`]), off the
    /// public port.
    pub fn wrap(&self, graphql: MethodRouter, others: Router) -> Router {
        // One `layer` call per route: axum boxes the stack at each call and
        // clones every box again for each request, so layers applied in
        // several calls would be cloned several times per request.
        let common = ServiceBuilder::new()
            .option_layer(self.security.headers_layer())
            .map_response(coded_body_limit)
            .layer(CommonLayers::new(crate::SERVICE_NAME, &self.http));
        let graphql = graphql.layer(
            common
                .clone()
                // Back to axum's body type for the layers below (one box,
                // as a route boundary would make).
                .map_request(|request: http::Request<_>| request.map(axum::body::Body::new))
                .layer(self.security.graphql_layer())
                .layer(axum::middleware::from_fn_with_state(
                    Arc::clone(&self.auth),
                    identify_caller,
                ))
                .option_layer(self.rate_limit.clone()),
        );
        // `others` keeps its fallback (404) through the merge, so unknown
        // paths get the common layers too.
        Router::new()
            .route("/graphql", graphql)
            .merge(others.layer(common))
    }
}

/// Verifies `Authorization: Bearer` once per `/graphql` request and
/// leaves the outcome in the request's extensions ([`Verified`]) for the
/// rate limit and the pipeline; a bad token is refused later, by the
/// pipeline, with a coded 401 (an anonymous caller may still be allowed).
pub async fn identify_caller(
    State(auth): State<Arc<JwtVerifier>>,
    mut request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let verified = auth.identify(request.headers().get(header::AUTHORIZATION));
    request
        .extensions_mut()
        .insert(Verified(Arc::new(verified)));
    next.run(request).await
}

/// The body limit layer answers 413 in plain text; GraphQL clients get a
/// coded error naming the limit instead, still saying `connection: close`
/// (the unread body is not drained).
pub fn coded_body_limit<B>(response: axum::http::Response<B>) -> Response
where
    B: axum::body::HttpBody<Data = Bytes> + Send + 'static,
    B::Error: Into<axum::BoxError>,
{
    if response.status() != StatusCode::PAYLOAD_TOO_LARGE {
        return response.map(axum::body::Body::new);
    }
    shopgraph_core::server::close_after_too_large(
        RouterError::BodyTooLarge.into_response("application/json"),
    )
}

#[cfg(test)]
mod tests {
    use axum::body::{Body, Bytes};
    use axum::routing::{get, post};
    use http::{Method, Request, StatusCode, header};
    use shopgraph_core::config::Env;
    use shopgraph_core::settings::RunMode;
    use tower::ServiceExt;

    use super::*;
    use shopgraph_core::identity::JwtSettings;

    const ORIGIN: &str = "https://shop.example";

    /// The edge as `shopgraph serve router` builds it (CORS for
    /// [`ORIGIN`], rate limited, a 1 KiB body limit), around a `/graphql`
    /// that echoes the body's length and a `/health` route.
    async fn app() -> Router {
        let env = Env::from_pairs([
            ("JWT_SECRET", "edge-test-secret-edge-test-secret"),
            ("ROUTER_PORT", "0"),
            ("CORS_ALLOWED_ORIGINS", ORIGIN),
            ("RATE_LIMIT_ENABLED", "true"),
            ("HTTP_MAX_BODY_BYTES", "1024"),
        ]);
        // Each stage reads its own variables: the edge does not depend on
        // `crate::config`, not even in tests.
        let http = HttpSettings::from_env(&env, "ROUTER_PORT", 4000, RunMode::Serve).expect("http");
        let security = SecuritySettings::from_env(&env, RunMode::Serve).expect("security");
        let rate_limit = RateLimitSettings::from_env(&env).expect("rate limit");
        let auth = JwtSettings::from_env(&env, RunMode::Serve).expect("JWT settings");
        let auth = Arc::new(JwtVerifier::new(&auth).await.expect("auth"));
        let edge = Edge::new(&http, &security, &rate_limit, auth, None).expect("edge");
        let graphql = post(|body: Bytes| async move { body.len().to_string() });
        let others = Router::new().route("/health", get(|| async { "up" }));
        edge.wrap(graphql, others)
    }

    fn request(method: Method, uri: &str, body: &str) -> Request<Body> {
        Request::builder()
            .method(method)
            .uri(uri)
            .header(header::ORIGIN, ORIGIN)
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(body.to_owned()))
            .expect("request")
    }

    /// Each route gets the layers the module's table gives it, from the
    /// one stack per route: every answer the security headers, `/graphql`
    /// (refusals included) CORS and the rate limit, the others neither.
    #[tokio::test]
    async fn every_route_gets_its_layers() {
        let app = app().await;
        let cases = [
            (
                request(Method::POST, "/graphql", "{}"),
                StatusCode::OK,
                true,
            ),
            (
                request(Method::PUT, "/graphql", "{}"),
                StatusCode::METHOD_NOT_ALLOWED,
                true,
            ),
            (request(Method::GET, "/health", ""), StatusCode::OK, false),
            // Operators' endpoints live on the admin listener only.
            (
                request(Method::GET, "/metrics", ""),
                StatusCode::NOT_FOUND,
                false,
            ),
            (
                request(Method::GET, "/nowhere", ""),
                StatusCode::NOT_FOUND,
                false,
            ),
        ];
        for (request, status, graphql) in cases {
            let what = format!("{} {}", request.method(), request.uri());
            let response = app.clone().oneshot(request).await.expect("infallible");
            assert_eq!(response.status(), status, "{what}");
            let headers = response.headers();
            assert_eq!(headers["x-content-type-options"], "nosniff", "{what}");
            assert_eq!(
                headers.get(header::ACCESS_CONTROL_ALLOW_ORIGIN).is_some(),
                graphql,
                "{what}: CORS"
            );
            assert_eq!(
                headers.get("ratelimit-remaining").is_some(),
                graphql,
                "{what}: rate limit"
            );
        }
    }

    /// A body over the limit: the coded 413, told to close the connection
    /// (its body was left unread), with the security headers.
    #[tokio::test]
    async fn an_oversized_body_gets_the_coded_413() {
        let response = app()
            .await
            .oneshot(request(Method::POST, "/graphql", &"x".repeat(2048)))
            .await
            .expect("infallible");
        assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
        assert_eq!(response.headers()[header::CONNECTION], "close");
        assert_eq!(response.headers()["x-content-type-options"], "nosniff");
        let body = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .expect("body");
        let body: serde_json::Value = serde_json::from_slice(&body).expect("JSON");
        assert_eq!(
            body["errors"][0]["extensions"]["code"],
            "MAX_BODY_SIZE_LIMIT"
        );
    }
}

//! The HTTP edge: every layer a request crosses before the GraphQL
//! pipeline sees it, composed in one place so the order can be read top to
//! bottom.
//!
//! Outer to inner:
//!
//! | layer | routes | module |
//! |---|---|---|
//! | security headers (and HSTS behind TLS), on every answer, refusals included | all | [`crate::security`] |
//! | a 413 from the body limit becomes a coded GraphQL error | all | [`crate::pipeline`] |
//! | trace span, compression, body limit, timeout | all | `shopgraph_platform::server` |
//! | CORS | `/graphql` | [`crate::security`] |
//! | CSRF prevention | `/graphql` | [`crate::security`] |
//! | identify the caller (the token is verified once, here) | `/graphql` | [`crate::pipeline`] |
//! | per-client rate limit (websocket and SSE count when they open) | `/graphql` | [`crate::ratelimit`] |
//!
//! Every layer is built once, at start, and ours hold their configuration
//! behind an `Arc`: axum clones a route's whole layer stack for every
//! request, so a layer whose clone copies lists or header maps costs every
//! request (tower-http's CORS still copies a few header values, the
//! largest cost left). `router/benches/edge.rs` measures what each layer
//! adds.

use std::sync::Arc;

use axum::Router;
use shopgraph_platform::config::ConfigError;
use shopgraph_platform::identity::Identity;
use shopgraph_platform::settings::HttpSettings;
use tower::ServiceBuilder;

use crate::config::RouterSettings;
use crate::identity::RouterAuth;
use crate::pipeline;
use crate::ratelimit::{ClientRateLimiter, KeyResolver, RateLimitLayer, SubjectResolver};
use crate::security::SecuritySettings;

/// The edge's layers, built once from the router's settings.
#[derive(Clone)]
pub struct Edge {
    auth: Arc<RouterAuth>,
    rate_limit: Option<RateLimitLayer>,
    security: SecuritySettings,
    http: HttpSettings,
}

impl Edge {
    /// Builds the layers `settings` asks for; `redis` shares the rate
    /// limit between router replicas.
    pub fn new(
        settings: &RouterSettings,
        auth: Arc<RouterAuth>,
        redis: Option<redis::aio::ConnectionManager>,
    ) -> Result<Self, ConfigError> {
        let rate_limit = if settings.rate_limit.enabled {
            let limiter = ClientRateLimiter::new(&settings.rate_limit, redis)?;
            // The caller verified once by `identify_caller`, outside it.
            let subject: SubjectResolver =
                Arc::new(|extensions: &http::Extensions, _: &http::HeaderMap| {
                    match extensions.get::<pipeline::Verified>()?.0.as_ref() {
                        Ok(Identity::User(viewer)) => Some(viewer.user_id.clone()),
                        _ => None,
                    }
                });
            let keys = KeyResolver::new(subject, settings.rate_limit.trusted_proxy_header.clone());
            Some(RateLimitLayer::new(Arc::new(limiter), keys))
        } else {
            None
        };
        Ok(Self {
            auth,
            rate_limit,
            security: settings.security.clone(),
            http: settings.http.clone(),
        })
    }

    /// Wraps `graphql` (the `/graphql` route, its state applied) and
    /// `others` (health, metrics: no CORS, CSRF or rate limit) in the
    /// edge, in the order of the module's table.
    pub fn wrap(&self, graphql: Router, others: Router) -> Router {
        // One `route_layer` and one `layer` call: axum boxes the stack at
        // each call, and every box costs every request an allocation.
        let graphql = graphql.route_layer(
            ServiceBuilder::new()
                .layer(self.security.graphql_layer())
                .layer(axum::middleware::from_fn_with_state(
                    Arc::clone(&self.auth),
                    pipeline::identify_caller,
                ))
                .option_layer(self.rate_limit.clone()),
        );
        let routes = Router::new().merge(graphql).merge(others);
        shopgraph_platform::server::with_common_layers(crate::SERVICE_NAME, routes, &self.http)
            .layer(
                ServiceBuilder::new()
                    .option_layer(self.security.headers_layer())
                    .map_response(pipeline::coded_body_limit),
            )
    }
}

//! # shopgraph-router
//!
//! One Federation v2 GraphQL API over the product, basket, payment and
//! notification subgraphs. A request meets these modules in this order:
//!
//! | # | module | stage |
//! |---|---|---|
//! | 1 | [`edge`] | HTTP layers: security headers, body limit, CORS, CSRF ([`edge::security`]), caller identity ([`edge::identify_caller`]), per-client rate limit ([`edge::ratelimit`]) |
//! | 2 | [`subscriptions`] | the `/graphql` handler: websocket ([`subscriptions::ws`]), SSE ([`subscriptions::sse`]) and multipart HTTP ([`subscriptions::multipart`]) transports; plain HTTP goes on to the pipeline |
//! | 3 | [`pipeline`] | read the request, persisted queries ([`pipeline::persisted`]), prepare, variables ([`pipeline::variables`]), execute or join an identical query ([`inflight`]), respond; every refusal is a [`pipeline::RouterError`] |
//! | 4 | [`planner`] | the prepare step: parse, operation limits and estimated cost ([`planner::limits`]), validate, schema authorization ([`planner::authorization`]), set introspection aside ([`planner::introspection`]), plan with `hive-router-query-planner`, cache |
//! | 5 | [`executor`] | walks the plan, fetches and batches entities, merges, projects the client's selection |
//! | 6 | [`traffic`] | around each subgraph fetch: dedupe ([`traffic::dedupe`]), retry, circuit breaker, load balancing over replicas, health checks |
//! | 7 | [`subgraph`] | the wire: the HTTP client ([`subgraph::client`]) and subgraph subscriptions ([`subgraph::subscribe`]) |
//!
//! Beside the request path:
//!
//! | module | role |
//! |---|---|
//! | [`supergraph`] | the loaded supergraph (planner, executor, introspection schema) and its hot reload from a file or a URL ([`supergraph::remote`]); every request reads the current one |
//! | [`admin`] | the public `/health*` probes; on the admin listener `/health/detailed`, `/metrics` and the admin API (admin JWT) |
//! | [`storefront`] | the embedded web-demo storefront at `/` (`STOREFRONT`) and `dev`'s demo sign-in, `POST /dev/token` |
//! | [`inflight`] | shared work for identical requests in flight, used by the pipeline (whole queries) and traffic (subgraph fetches) |
//! | [`config`] | the router's environment variables, gathering each stage's settings |
//!
//! Imports only go down this list (a stage uses the stages after it, never
//! one before): the edge uses the pipeline's [`pipeline::Verified`] and
//! [`pipeline::RouterError`], the transports use the pipeline's steps, the
//! supergraph builds the planner, executor and traffic stack. The planner
//! is a module of its own rather than part of `pipeline/` because the
//! supergraph owns it: `pipeline → supergraph → planner`.
//!
//! [`RouterApp`] puts them together: `bind` loads the supergraph and binds
//! the listener, `run` serves until shutdown.

pub mod admin;
pub mod config;
pub mod edge;
pub mod executor;
pub mod inflight;
pub mod pipeline;
pub mod planner;
pub mod storefront;
pub mod subgraph;
pub mod subscriptions;
pub mod supergraph;
pub mod traffic;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::routing::get;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use admin::StatusState;
use config::RouterSettings;
use edge::Edge;
use pipeline::RouterState;
use pipeline::clients::ClientNames;
use pipeline::persisted::PersistedQueries;
use shopgraph_core::config::ConfigError;
use shopgraph_core::identity::{AuthSetupError, JwtVerifier, TokenIssuer};
use subscriptions::GraphqlState;
use supergraph::{SourceReader, Supergraph, SupergraphError, SupergraphHandle};
use traffic::Upstreams;

/// The name the router uses in logs and metrics.
pub const SERVICE_NAME: &str = "router";

/// Why the router could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The supergraph could not be read or loaded.
    #[error(transparent)]
    Supergraph(#[from] SupergraphError),
    /// Token verification could not be set up (e.g. the JWKS is unreadable).
    #[error("cannot set up token verification")]
    Auth(#[source] AuthSetupError),
    /// The rate limiter could not be set up.
    #[error("cannot set up rate limiting")]
    RateLimit(#[source] ConfigError),
    /// `REDIS_URL` could not be used.
    #[error("cannot use REDIS_URL")]
    Redis(#[source] redis::RedisError),
    /// The listener could not be bound.
    #[error("cannot listen on {addr}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The I/O failure.
        #[source]
        source: std::io::Error,
    },
}

/// A router with its supergraph loaded and its listener bound.
pub struct RouterApp {
    listener: TcpListener,
    /// The admin listener and its routes, unless `ADMIN_ENABLED=false`.
    admin: Option<(TcpListener, Router)>,
    router: Router,
    handle: SupergraphHandle,
    /// The supergraph's source, watched while the router runs.
    reader: SourceReader,
    upstreams: Arc<Upstreams>,
    settings: RouterSettings,
    shutdown: CancellationToken,
}

impl RouterApp {
    /// Loads the supergraph, sets up token verification and binds the
    /// listener (port 0 picks a free one).
    pub async fn bind(settings: RouterSettings) -> Result<Self, StartError> {
        let mut reader = SourceReader::new(&settings.supergraph)?;
        let sdl = reader.read_at_start().await?;
        let upstreams = Arc::new(Upstreams::new(settings.traffic.clone()));
        let supergraph = Supergraph::build(&sdl, &settings.supergraph_settings(), &upstreams)?;
        let handle = SupergraphHandle::new(supergraph);
        let auth = JwtVerifier::new(&settings.auth)
            .await
            .map_err(StartError::Auth)?;
        // Only `dev` gets here with the dev secret: `serve` refuses to read
        // its settings without JWT_SECRET or a JWKS.
        if auth.using_dev_secret() {
            tracing::warn!(
                "JWT_SECRET is not set: accepting tokens signed with the public dev secret (dev only)"
            );
        }
        let shutdown = CancellationToken::new();
        let redis = match &settings.redis_url {
            Some(url) => Some(pipeline::persisted::connect_redis(url).map_err(StartError::Redis)?),
            None => None,
        };
        let state = RouterState {
            supergraph: handle.clone(),
            auth: Arc::new(auth),
            introspection: settings.introspection,
            graphiql: settings.graphiql,
            query_dedupe: settings.query_dedupe,
            operations: Arc::default(),
            persisted: Arc::new(PersistedQueries::new(
                settings.persisted.clone(),
                redis.clone(),
            )),
            clients: Arc::new(ClientNames::new(settings.client_names_max)),
        };
        let status = StatusState {
            upstreams: Arc::clone(&upstreams),
            auth: Arc::clone(&state.auth),
            started: Instant::now(),
            protections: Arc::new(protections(&settings)),
        };
        let edge = Edge::new(
            &settings.http,
            &settings.security,
            &settings.rate_limit,
            Arc::clone(&state.auth),
            redis,
        )
        .map_err(StartError::RateLimit)?;
        let state = GraphqlState {
            pipeline: state,
            settings: settings.subscriptions.clone(),
            subscriber: subgraph::subscribe::Subscriber::new(settings.hop_signer.clone()),
            shutdown: shutdown.clone(),
        };
        let graphql = get(subscriptions::graphql)
            .post(subscriptions::graphql)
            .with_state(state);
        let mut others = admin::health_routes(status.clone());
        if settings.dev_tokens {
            // `dev` only (the route does not exist in `serve`), and only
            // with an HS256 secret to sign with.
            match TokenIssuer::from_settings(&settings.auth) {
                Some(issuer) => others = others.merge(storefront::dev_token_routes(issuer)),
                None => tracing::warn!(
                    "no JWT_SECRET to sign demo tokens with: POST /dev/token is off (sign in with your identity provider's tokens)"
                ),
            }
        }
        if settings.graphiql {
            // GraphiQL's script and styles (the page itself is `GET
            // /graphql` from a browser); absent where GraphiQL is off.
            others = others.merge(shopgraph_core::graphiql::routes());
        }
        if settings.storefront {
            // Last: its fallback answers every path the others do not.
            others = others.merge(storefront::routes());
        }
        let router = edge.wrap(graphql, others);
        let addr = settings.http.addr;
        let listener = shopgraph_core::server::bind(addr)
            .await
            .map_err(|source| StartError::Bind { addr, source })?;
        let admin = if settings.admin.enabled {
            let addr = settings.admin.addr;
            let listener = shopgraph_core::server::bind(addr)
                .await
                .map_err(|source| StartError::Bind { addr, source })?;
            Some((listener, admin::admin_routes(status)))
        } else {
            None
        };
        Ok(Self {
            listener,
            admin,
            router,
            handle,
            reader,
            upstreams,
            settings,
            shutdown,
        })
    }

    /// The address actually bound.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// The admin API's address, when it runs.
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin
            .as_ref()
            .and_then(|(listener, _)| listener.local_addr().ok())
    }

    /// Serves until `shutdown` resolves, reloading the supergraph when its
    /// file or URL changes; then drains in-flight requests.
    pub async fn run(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let addr = self.listener.local_addr()?;
        tracing::info!(service = SERVICE_NAME, %addr, "listening on http://{addr}/graphql");
        if self.settings.storefront {
            tracing::info!(service = SERVICE_NAME, %addr, "storefront on http://{addr}/");
        }
        let stop_watch = CancellationToken::new();
        let watcher = tokio::spawn(supergraph::watch(
            self.handle.clone(),
            self.settings.supergraph_settings(),
            Arc::clone(&self.upstreams),
            self.reader,
            stop_watch.clone(),
        ));
        let balancer = &self.settings.traffic.balancer;
        if let Some(interval) = balancer.health_interval {
            tokio::spawn(traffic::health::run(
                Arc::clone(&self.upstreams),
                interval,
                balancer.health_timeout,
                stop_watch.clone(),
            ));
        }
        let timeouts = shopgraph_core::server::ServeTimeouts::from(&self.settings.http);
        let admin = self.admin.map(|(listener, routes)| {
            if let Ok(addr) = listener.local_addr() {
                tracing::info!(%addr, "admin API on http://{addr}/admin/status");
            }
            let stop = stop_watch.clone();
            tokio::spawn(shopgraph_core::server::serve(
                listener,
                routes,
                stop.cancelled_owned(),
                timeouts,
            ))
        });
        // Streaming connections (websockets, SSE, multipart) close as shutdown starts,
        // so draining does not wait for them.
        let streams = self.shutdown.clone();
        let shutdown = async move {
            shutdown.await;
            streams.cancel();
        };
        let result =
            shopgraph_core::server::serve(self.listener, self.router, shutdown, timeouts).await;
        stop_watch.cancel();
        if let Some(admin) = admin {
            match admin.await {
                Ok(Err(err)) => tracing::error!(%err, "admin API failed"),
                Err(err) => tracing::error!(%err, "admin API task failed"),
                Ok(Ok(())) => {}
            }
        }
        if let Err(err) = watcher.await {
            tracing::error!(%err, "supergraph watcher failed");
        }
        tracing::info!(service = SERVICE_NAME, "stopped");
        result
    }
}

/// The protections in force, for `/admin/status`: what an operator asks
/// first when traffic is refused.
fn protections(settings: &RouterSettings) -> serde_json::Value {
    let traffic = &settings.traffic;
    serde_json::json!({
        "load_balancer": {
            "enabled": traffic.balancer.enabled,
            "strategy": traffic.balancer.strategy.as_str(),
            "health_check_interval_ms": traffic.balancer.health_interval.map(|d| d.as_millis() as u64),
            "outlier_consecutive_failures": traffic.balancer.outlier_failures,
        },
        "circuit_breaker": { "enabled": traffic.breaker.enabled },
        "retry": {
            "enabled": traffic.retry.enabled,
            "attempts": traffic.retry.attempts,
            "budget_ratio": traffic.retry.budget_ratio,
        },
        "subgraph_timeout_ms": settings.subgraph_timeout.as_millis() as u64,
        "rate_limit": {
            "enabled": settings.rate_limit.enabled,
            "policy": settings.rate_limit.policy(),
            "store": if settings.redis_url.is_some() { "redis" } else { "memory" },
        },
        "persisted_queries": {
            "apq": settings.persisted.apq_enabled,
            "safelist": settings.persisted.safelist,
        },
        "operation_limits": {
            "max_depth": settings.planner.limits.max_depth,
            "max_aliases": settings.planner.limits.max_aliases,
            "max_root_fields": settings.planner.limits.max_root_fields,
            "max_complexity": settings.planner.limits.max_complexity,
            "max_tokens": settings.planner.max_tokens,
        },
    })
}

/// The Redis server the router's own tests use (`TEST_REDIS_URL`, else
/// the local default); each test keeps to its own key prefix.
#[cfg(test)]
pub(crate) fn test_redis_url() -> String {
    std::env::var("TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned())
}

//! # shopgraph-router
//!
//! One Federation v2 GraphQL API over the product, basket, payment and
//! notification subgraphs. A request goes through these components, in
//! order:
//!
//! | module | role |
//! |---|---|
//! | [`pipeline`] | GraphQL over HTTP: read the request, identify the caller, run the steps below, write the response |
//! | [`identity`] | verifies `Authorization: Bearer` JWTs (HS256, or RS256/ES256 from a JWKS) |
//! | [`planner`] | parse, validate against the API schema, normalize, plan with `hive-router-query-planner`, cache |
//! | [`introspection`] | answers `__schema` / `__type` from the API schema |
//! | [`executor`] | walks the plan, fetches and batches entities, merges, projects the client's selection |
//! | [`subgraph`] | the HTTP client subgraph fetches go through |
//! | [`supergraph`] | the loaded supergraph and its hot reload |
//! | [`config`] | the router's environment variables |
//!
//! [`RouterApp`] puts them together: `bind` loads the supergraph and binds
//! the listener, `run` serves until shutdown.

pub mod config;
pub mod executor;
pub mod identity;
pub mod inflight;
pub mod introspection;
pub mod pipeline;
pub mod planner;
pub mod ratelimit;
pub mod subgraph;
pub mod subscriptions;
pub mod supergraph;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::routing::get;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use config::RouterSettings;
use identity::RouterAuth;
use pipeline::RouterState;
use supergraph::{Supergraph, SupergraphError, SupergraphHandle};

/// The name the router uses in logs and metrics.
pub const SERVICE_NAME: &str = "router";

/// Why the router could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The supergraph could not be read or loaded.
    #[error(transparent)]
    Supergraph(#[from] SupergraphError),
    /// Token verification could not be set up (e.g. the JWKS is unreadable).
    #[error("cannot set up token verification: {0}")]
    Auth(String),
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
    router: Router,
    handle: SupergraphHandle,
    settings: RouterSettings,
    shutdown: CancellationToken,
}

impl RouterApp {
    /// Loads the supergraph, sets up token verification and binds the
    /// listener (port 0 picks a free one).
    pub async fn bind(settings: RouterSettings) -> Result<Self, StartError> {
        let sdl = supergraph::read_source(&settings.supergraph)?;
        let supergraph = Supergraph::build(&sdl, &settings)?;
        for (name, url) in &supergraph.subgraph_urls {
            tracing::info!(subgraph = %name, %url, "subgraph");
        }
        let handle = SupergraphHandle::new(supergraph);
        let auth = RouterAuth::new(&settings.auth)
            .await
            .map_err(|err| StartError::Auth(err.to_string()))?;
        if auth.using_dev_secret() {
            tracing::warn!(
                "JWT_SECRET is not set: accepting tokens signed with the public dev secret"
            );
        }
        let shutdown = CancellationToken::new();
        let state = RouterState {
            supergraph: handle.clone(),
            auth: Arc::new(auth),
            introspection: settings.introspection,
            graphiql: settings.graphiql,
            query_dedupe: settings.query_dedupe,
            operations: Arc::default(),
            subscriptions: settings.subscriptions.clone(),
            shutdown: shutdown.clone(),
            subscriber: Default::default(),
        };
        let graphql = Router::new()
            .route("/graphql", get(pipeline::graphql).post(pipeline::graphql))
            .with_state(state);
        let routes = Router::new()
            .merge(graphql)
            .merge(shopgraph_platform::health::routes(SERVICE_NAME, Vec::new()));
        let router =
            shopgraph_platform::server::with_common_layers(SERVICE_NAME, routes, &settings.http);
        let addr = settings.http.addr;
        let listener = shopgraph_platform::server::bind(addr)
            .await
            .map_err(|source| StartError::Bind { addr, source })?;
        Ok(Self {
            listener,
            router,
            handle,
            settings,
            shutdown,
        })
    }

    /// The address actually bound.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves until `shutdown` resolves, reloading the supergraph file when
    /// it changes; then drains in-flight requests.
    pub async fn run(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let addr = self.listener.local_addr()?;
        tracing::info!(service = SERVICE_NAME, %addr, "listening on http://{addr}/graphql");
        let stop_watch = CancellationToken::new();
        let watcher = tokio::spawn(supergraph::watch(
            self.handle.clone(),
            self.settings.clone(),
            stop_watch.clone(),
        ));
        let grace: Duration = self.settings.http.shutdown_timeout;
        // Streaming connections (websockets, SSE) close as shutdown starts,
        // so draining does not wait for them.
        let streams = self.shutdown.clone();
        let shutdown = async move {
            shutdown.await;
            streams.cancel();
        };
        let result =
            shopgraph_platform::server::serve(self.listener, self.router, shutdown, grace).await;
        stop_watch.cancel();
        if let Err(err) = watcher.await {
            tracing::error!(%err, "supergraph watcher failed");
        }
        tracing::info!(service = SERVICE_NAME, "stopped");
        result
    }
}

//! The life of a subgraph process: open and migrate its store, bind, serve,
//! run background jobs, stop.
//!
//! Each subgraph crate supplies what is its own (migrations, schema,
//! background jobs) and gets the rest from [`ServiceApp`]: the common
//! middleware stack, readiness on its store, graceful shutdown that first
//! drains HTTP, then stops the background jobs, then closes the pool.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use sea_orm::DbErr;
use sea_orm_migration::MigratorTrait;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::db::{Database, DbOpenError, StatementCounter};
use crate::events::EventBus;
use crate::events::live::LiveFeed;
use crate::events::outbox::{Relay, RelaySettings, RelayWaker};
use shopgraph_core::health::{self, ReadinessCheck};
use shopgraph_core::identity::{AuthSetupError, JwtVerifier};
use shopgraph_core::server;
use shopgraph_core::settings::HttpSettings;

use crate::auth::{self, SubgraphAuth};
use crate::settings::ServiceSettings;

/// Why a service could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The store could not be opened.
    #[error(transparent)]
    Database(#[from] DbOpenError),
    /// Migrations failed.
    #[error("cannot apply the {service} migrations")]
    Migrate {
        /// The service.
        service: &'static str,
        /// The driver's error.
        #[source]
        source: DbErr,
    },
    /// Start-up data (demo catalogue...) could not be written.
    #[error("cannot prepare {service} start-up data")]
    Prepare {
        /// The service.
        service: &'static str,
        /// What failed.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The event bus could not be reached.
    #[error("cannot start the {service} event streams")]
    Events {
        /// The service.
        service: &'static str,
        /// The bus failure.
        #[source]
        source: crate::events::BusError,
    },
    /// Direct-token verification could not be set up (the JWKS is unreadable).
    #[error("cannot set up token verification")]
    Auth(#[from] AuthSetupError),
    /// The configuration is unusable (the hop's keys).
    #[error(transparent)]
    Config(#[from] shopgraph_core::config::ConfigError),
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

impl StartError {
    /// Maps a bus failure of `service` (for `map_err`).
    pub fn events(service: &'static str) -> impl FnOnce(crate::events::BusError) -> Self {
        move |source| Self::Events { service, source }
    }
}

/// Opens the store of `settings.name` and applies migrator `M`.
pub async fn open_store<M: MigratorTrait>(
    settings: &ServiceSettings,
) -> Result<Database, StartError> {
    let database = Database::connect(&settings.database, settings.name).await?;
    M::up(&database.conn, None)
        .await
        .map_err(|source| StartError::Migrate {
            service: settings.name,
            source,
        })?;
    Ok(database)
}

/// Applies migrator `M` to the store of `settings.name` and closes it
/// (`shopgraph migrate <service>`).
pub async fn migrate<M: MigratorTrait>(settings: &ServiceSettings) -> Result<(), StartError> {
    open_store::<M>(settings).await?.close().await;
    Ok(())
}

type Job = Box<dyn FnOnce(CancellationToken) -> JoinHandle<()> + Send>;

/// Wraps a subgraph's own routes with identity (401 on bad credentials),
/// health and the common layers: the public port's whole surface
/// (`/graphql`, `/health`, `/health/live`, `/health/ready`); `/metrics` is
/// on the metrics listener ([`metrics_router`]).
pub fn service_router(
    service: &'static str,
    routes: axum::Router,
    readiness: Vec<Arc<dyn ReadinessCheck>>,
    auth: Arc<SubgraphAuth>,
    http: &HttpSettings,
) -> axum::Router {
    let identified = routes.layer(axum::middleware::from_fn_with_state(auth, auth::identify));
    server::with_common_layers(
        service,
        axum::Router::new()
            .merge(identified)
            .merge(health::routes(service, readiness)),
        http,
    )
}

/// The metrics listener's routes: `GET /metrics` (the process's Prometheus
/// exposition) and nothing else. No token, as on the router's admin
/// listener: Prometheus scrapes with a static configuration, and the
/// listener binds loopback (or an internal address the operator chooses).
pub fn metrics_router() -> axum::Router {
    axum::Router::new().route("/metrics", server::metrics_route())
}

/// A subgraph that is migrated and bound, ready to run.
pub struct ServiceApp {
    name: &'static str,
    listener: TcpListener,
    /// The metrics listener (`METRICS_*`), unless `METRICS_ENABLED=false`.
    metrics: Option<TcpListener>,
    router: axum::Router,
    database: Database,
    timeouts: server::ServeTimeouts,
    jobs: Vec<Job>,
    live: Option<LiveFeed>,
}

impl ServiceApp {
    /// Wraps `routes` (the GraphQL endpoint) in the common stack and binds
    /// the listener of `settings` (port 0 picks a free one).
    pub async fn bind(
        settings: &ServiceSettings,
        database: Database,
        routes: axum::Router,
    ) -> Result<Self, StartError> {
        let direct_tokens = match &settings.auth.direct_tokens {
            Some(jwt) => {
                // Only `dev` gets here with the dev secret (`serve` refuses
                // to start without JWT_SECRET or a JWKS).
                if jwt.using_dev_secret {
                    tracing::warn!(
                        service = settings.name,
                        "JWT_SECRET is not set: accepting tokens signed with the public dev secret (dev only)"
                    );
                }
                Some(JwtVerifier::new(jwt).await?)
            }
            None => None,
        };
        let auth = SubgraphAuth::new(
            settings.auth.hop.require_verifier(settings.name)?,
            direct_tokens,
        );
        let router = service_router(
            settings.name,
            routes,
            vec![Arc::new(database.clone()) as Arc<dyn ReadinessCheck>],
            Arc::new(auth),
            &settings.http,
        );
        let addr = settings.http.addr;
        let listener = server::bind(addr)
            .await
            .map_err(|source| StartError::Bind { addr, source })?;
        let metrics = match settings.metrics.addr {
            Some(addr) => Some(
                server::bind(addr)
                    .await
                    .map_err(|source| StartError::Bind { addr, source })?,
            ),
            None => None,
        };
        Ok(Self {
            name: settings.name,
            listener,
            metrics,
            router,
            database,
            timeouts: server::ServeTimeouts::from(&settings.http),
            jobs: Vec::new(),
            live: None,
        })
    }

    /// Adds a background job (a sweeper, a scheduler) started by
    /// [`ServiceApp::run`]; it must return soon after its token is cancelled.
    pub fn with_job<F, Fut>(mut self, job: F) -> Self
    where
        F: FnOnce(CancellationToken) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        self.jobs
            .push(Box::new(move |token| tokio::spawn(job(token))));
        self
    }

    /// Records `feed` as the live feed this service's subscriptions follow,
    /// so that [`ServiceApp::live_feed`] can tell how many are open.
    pub fn with_live_feed(mut self, feed: LiveFeed) -> Self {
        self.live = Some(feed);
        self
    }

    /// Publishes this store's event outbox to `bus` in the background
    /// (woken by `waker` after each commit that wrote events).
    pub fn with_outbox(self, bus: EventBus, waker: RelayWaker) -> Self {
        let relay = Relay::new(
            self.name,
            self.database.conn.clone(),
            bus,
            waker,
            RelaySettings::default(),
        );
        self.with_job(move |stop| relay.run(stop))
    }

    /// The service's name: the `tag` its hop signatures must carry.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// The address actually bound.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// The metrics listener's address actually bound, when it runs.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics
            .as_ref()
            .and_then(|listener| listener.local_addr().ok())
    }

    /// Counts the SQL statements this service executes.
    pub fn statements(&self) -> StatementCounter {
        self.database.statements.clone()
    }

    /// The live feed of this service's subscriptions, if it has one:
    /// [`LiveFeed::subscriptions`] counts the open ones.
    pub fn live_feed(&self) -> Option<LiveFeed> {
        self.live.clone()
    }

    /// Serves until `shutdown` resolves; then drains in-flight requests,
    /// stops background jobs and closes the pool.
    pub async fn run(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let addr = self.listener.local_addr()?;
        let name = self.name;
        tracing::info!(service = name, %addr, "listening on http://{addr}/graphql");
        let stop_jobs = CancellationToken::new();
        let jobs: Vec<JoinHandle<()>> = self
            .jobs
            .into_iter()
            .map(|job| job(stop_jobs.clone()))
            .collect();
        let stop_metrics = CancellationToken::new();
        let metrics = self.metrics.map(|listener| {
            if let Ok(addr) = listener.local_addr() {
                tracing::info!(service = name, %addr, "metrics on http://{addr}/metrics");
            }
            tokio::spawn(server::serve(
                listener,
                metrics_router(),
                stop_metrics.clone().cancelled_owned(),
                self.timeouts,
            ))
        });
        let result = server::serve(self.listener, self.router, shutdown, self.timeouts).await;
        stop_metrics.cancel();
        if let Some(metrics) = metrics {
            match metrics.await {
                Ok(Err(err)) => tracing::error!(service = name, %err, "metrics listener failed"),
                Err(err) => tracing::error!(service = name, %err, "metrics listener task failed"),
                Ok(Ok(())) => {}
            }
        }
        stop_jobs.cancel();
        for job in jobs {
            if let Err(err) = job.await {
                tracing::error!(service = name, %err, "background job failed");
            }
        }
        self.database.close().await;
        tracing::info!(service = name, "stopped");
        result
    }
}

/// Runs `tick` every `interval` until `stop` is cancelled; a failing tick is
/// logged and retried at the next interval. The common shape of sweepers.
pub async fn every<F, Fut, E>(
    name: &'static str,
    interval: Duration,
    stop: CancellationToken,
    mut tick: F,
) where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<(), E>>,
    E: std::error::Error + 'static,
{
    let mut timer = tokio::time::interval(interval);
    timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = timer.tick() => {
                if let Err(err) = tick().await {
                    tracing::warn!(job = name, error = %shopgraph_core::error::error_chain(&err), "background job tick failed");
                }
            }
        }
    }
}

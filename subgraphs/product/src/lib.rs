//! # product-subgraph
//!
//! The catalogue of the shop: products, prices (exact decimals), stock and
//! categories, served as an Apollo Federation v2 subgraph that owns the
//! `Product` entity.
//!
//! * [`domain`] — products and the rules for creating and changing them;
//! * [`store`] — the SeaORM repository (PostgreSQL in production, SQLite
//!   embedded), with batched lookups and atomic stock changes;
//! * [`graphql`] — the schema: thin resolvers over the domain and the store;
//! * [`seed`] — the demo catalogue of `shopgraph dev`.
//!
//! [`ProductApp::build`] wires them to an HTTP listener; `shopgraph` (the
//! binary) and the integration tests both start the subgraph through it.

pub mod domain;
pub mod graphql;
pub mod seed;
pub mod store;

use std::net::SocketAddr;
use std::sync::Arc;

use product_migration::{Migrator, MigratorTrait};
use sea_orm::DbErr;
use shopgraph_platform::config::{ConfigError, Env, invalid};
use shopgraph_platform::db::{Database, DbOpenError, StatementCounter};
use shopgraph_platform::health::ReadinessCheck;
use shopgraph_platform::identity::JwtAuthority;
use shopgraph_platform::money::is_currency_code;
use shopgraph_platform::server;
use shopgraph_platform::settings::{RunMode, ServiceSettings};
use tokio::net::TcpListener;

use crate::domain::ProductError;
use crate::graphql::CatalogSettings;
use crate::store::ProductStore;

/// The subgraph's name in logs, metrics and the supergraph.
pub const SERVICE_NAME: &str = "product";
/// Port of the subgraph in `shopgraph dev` and the default for `serve`.
pub const DEV_PORT: u16 = 4001;

/// Everything the product subgraph is configured with.
#[derive(Debug, Clone)]
pub struct ProductSettings {
    /// Port, store, JWT and GraphQL limits.
    pub service: ServiceSettings,
    /// Currency of products created without one (`SHOP_CURRENCY`).
    pub default_currency: String,
    /// Insert the demo catalogue at start-up (`SEED_DEMO_DATA`).
    pub seed_demo_data: bool,
}

impl ProductSettings {
    /// Reads the settings; `dev` mode seeds demo data unless told not to.
    pub fn from_env(env: &Env, mode: RunMode) -> Result<Self, ConfigError> {
        let service = ServiceSettings::from_env(env, SERVICE_NAME, DEV_PORT, mode)?;
        let default_currency = env.string("SHOP_CURRENCY").unwrap_or_else(|| "EUR".into());
        if !is_currency_code(&default_currency) {
            return Err(invalid(
                "SHOP_CURRENCY",
                &default_currency,
                "an ISO 4217 code of three capital letters, e.g. EUR",
            ));
        }
        let seed_demo_data = env.bool_or("SEED_DEMO_DATA", mode == RunMode::Dev)?;
        Ok(Self {
            service,
            default_currency,
            seed_demo_data,
        })
    }
}

/// Why the subgraph could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The store could not be opened.
    #[error(transparent)]
    Database(#[from] DbOpenError),
    /// Migrations failed.
    #[error("cannot apply the product migrations")]
    Migrate(#[source] DbErr),
    /// The demo catalogue could not be inserted.
    #[error("cannot seed the demo catalogue")]
    Seed(#[source] ProductError),
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

/// A product subgraph that is migrated, seeded and bound, ready to run.
pub struct ProductApp {
    listener: TcpListener,
    router: axum::Router,
    database: Database,
    settings: ProductSettings,
}

impl ProductApp {
    /// Opens the store, applies migrations, seeds if asked and binds the
    /// listener (port 0 picks a free one).
    pub async fn build(settings: ProductSettings) -> Result<Self, StartError> {
        let database = Database::connect(&settings.service.database, SERVICE_NAME).await?;
        Migrator::up(&database.conn, None)
            .await
            .map_err(StartError::Migrate)?;
        let store = ProductStore::new(database.conn.clone());
        if settings.seed_demo_data {
            let inserted = seed::seed(&store, &settings.default_currency)
                .await
                .map_err(StartError::Seed)?;
            tracing::info!(inserted, "demo catalogue ready");
        }

        let schema = graphql::schema(
            store,
            CatalogSettings {
                default_currency: settings.default_currency.clone(),
            },
            &settings.service.graphql,
        );
        let auth = &settings.service.auth;
        if auth.using_dev_secret {
            tracing::warn!(
                "JWT_SECRET is not set: accepting tokens signed with the public dev secret"
            );
        }
        let router = server::service_router(
            SERVICE_NAME,
            shopgraph_platform::graphql::routes(SERVICE_NAME, schema),
            vec![Arc::new(database.clone()) as Arc<dyn ReadinessCheck>],
            Arc::new(JwtAuthority::from_settings(auth)),
            &settings.service.http,
        );
        let addr = settings.service.http.addr;
        let listener = server::bind(addr)
            .await
            .map_err(|source| StartError::Bind { addr, source })?;
        Ok(Self {
            listener,
            router,
            database,
            settings,
        })
    }

    /// The address actually bound.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Counts the SQL statements this subgraph executes.
    pub fn statements(&self) -> StatementCounter {
        self.database.statements.clone()
    }

    /// Serves until `shutdown` resolves, drains in-flight requests, then
    /// closes the pool.
    pub async fn run(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let addr = self.listener.local_addr()?;
        tracing::info!(%addr, "product subgraph listening on http://{addr}/graphql");
        let result = server::serve(
            self.listener,
            self.router,
            shutdown,
            self.settings.service.http.shutdown_timeout,
        )
        .await;
        self.database.close().await;
        tracing::info!("product subgraph stopped");
        result
    }
}

/// Applies pending migrations and returns (`shopgraph migrate product`).
pub async fn migrate(settings: &ProductSettings) -> Result<(), StartError> {
    let database = Database::connect(&settings.service.database, SERVICE_NAME).await?;
    let result = Migrator::up(&database.conn, None)
        .await
        .map_err(StartError::Migrate);
    database.close().await;
    result
}

//! # basket-subgraph
//!
//! One basket per user, priced from the product subgraph, served as an
//! Apollo Federation v2 subgraph. It references `Product` (owned by
//! product), contributes `User.basket`, and serves `Query.me`.
//!
//! * [`domain`] — baskets, lines, exact totals, the `ProductCatalog` port;
//! * [`service`] — the use cases (add, update, remove, clear, re-price)
//!   and the checkout lock payment takes and releases;
//! * [`store`] — the SeaORM repository (PostgreSQL in production, SQLite
//!   embedded) with race-free upserts;
//! * [`catalog_client`] — the catalogue adapter: GraphQL calls to product;
//! * [`graphql`] — the schema;
//! * [`events`] — the basket events it publishes ([`events::outgoing`],
//!   which the store calls) and the checkout settlement on payment
//!   outcomes ([`events::incoming`], which calls the store);
//! * [`sweeper`] — marks idle baskets abandoned (never one being paid for).

pub mod catalog_client;
pub mod domain;
pub mod events;
pub mod graphql;
pub mod service;
pub mod store;
pub mod sweeper;

use std::sync::Arc;
use std::time::Duration;

use basket_migration::Migrator;
use shopgraph_core::config::{ConfigError, Env};
use shopgraph_core::settings::RunMode;
use subgraph_kit::events::inbox::Consumer;
use subgraph_kit::events::outbox::RelayWaker;
use subgraph_kit::events::{EventBus, Topic};
use subgraph_kit::service::open_store;
pub use subgraph_kit::service::{ServiceApp, StartError};
use subgraph_kit::settings::ServiceSettings;
use subgraph_kit::upstream::GraphqlClient;

use crate::catalog_client::GraphqlCatalog;
use crate::graphql::ShopCurrency;
use crate::service::Baskets;
use crate::store::BasketStore;

/// The subgraph's name in logs, metrics and the supergraph.
pub const SERVICE_NAME: &str = "basket";
/// Port of the subgraph in `shopgraph dev` and the default for `serve`.
pub const DEV_PORT: u16 = 4002;

/// Everything the basket subgraph is configured with.
#[derive(Debug, Clone)]
pub struct BasketSettings {
    /// Port, store, JWT and GraphQL limits.
    pub service: ServiceSettings,
    /// GraphQL endpoint of the product subgraph (`PRODUCT_SERVICE_URL`).
    pub product_url: String,
    /// How long a call to product may take (`UPSTREAM_TIMEOUT`).
    pub upstream_timeout: Duration,
    /// Baskets with items untouched this long are abandoned (`BASKET_TTL`).
    pub basket_ttl: Duration,
    /// How often the sweeper looks (`BASKET_SWEEP_INTERVAL`).
    pub sweep_interval: Duration,
}

impl BasketSettings {
    /// Fails closed before serving: basket takes only signed requests and
    /// signs its own calls to product (`HOP_SIGNING_KEY_FILE`).
    pub fn check_hop_keys(&self) -> Result<(), ConfigError> {
        self.service.check_hop_keys()?;
        self.service.auth.hop.require_signer().map(drop)
    }

    /// Reads the settings.
    pub fn from_env(env: &Env, mode: RunMode) -> Result<Self, ConfigError> {
        let service = ServiceSettings::from_env(env, SERVICE_NAME, DEV_PORT, mode)?;
        let product_url = env
            .http_url(
                "PRODUCT_SERVICE_URL",
                "the product subgraph's GraphQL URL, e.g. http://product:4001/graphql",
            )?
            .unwrap_or_else(|| "http://127.0.0.1:4001/graphql".into());
        Ok(Self {
            service,
            product_url,
            upstream_timeout: env.duration_or("UPSTREAM_TIMEOUT", Duration::from_secs(3))?,
            basket_ttl: env.duration_or("BASKET_TTL", Duration::from_secs(24 * 3600))?,
            sweep_interval: env.duration_or("BASKET_SWEEP_INTERVAL", Duration::from_secs(60))?,
        })
    }
}

/// Opens and migrates the store and binds the listener: a basket subgraph
/// (with its abandonment sweeper, checkout consumer and outbox relay on
/// `bus`) ready to [`ServiceApp::run`].
pub async fn build(settings: BasketSettings, bus: EventBus) -> Result<ServiceApp, StartError> {
    let database = open_store::<Migrator>(&settings.service).await?;
    let relay = RelayWaker::default();
    let store = BasketStore::new(database.conn.clone(), relay.clone());
    let catalog = GraphqlCatalog::new(GraphqlClient::new(
        "product",
        settings.product_url.clone(),
        settings.upstream_timeout,
        settings.service.auth.hop.require_signer()?,
    ));
    let baskets = Baskets::new(store.clone(), Arc::new(catalog));
    let schema = graphql::schema(
        baskets,
        ShopCurrency(settings.service.shop_currency.clone()),
        &settings.service.graphql,
    );
    let routes = subgraph_kit::graphql::routes(SERVICE_NAME, schema, &settings.service.graphql);
    let sweeper = sweeper::AbandonmentSweeper::new(store, settings.basket_ttl);
    let interval = settings.sweep_interval;
    let checkouts = Consumer::new(
        "basket-checkout",
        vec![Topic::Payment],
        database.conn.clone(),
        bus.clone(),
        events::incoming::CheckoutHandler,
    )
    .waking(relay.clone());
    Ok(ServiceApp::bind(&settings.service, database, routes)
        .await?
        .with_job(move |stop| sweeper.run(interval, stop))
        .with_job(move |stop| checkouts.run(stop))
        .with_outbox(bus, relay))
}

/// Applies pending migrations and returns (`shopgraph migrate basket`).
pub async fn migrate(settings: &BasketSettings) -> Result<(), StartError> {
    subgraph_kit::service::migrate::<Migrator>(&settings.service).await
}

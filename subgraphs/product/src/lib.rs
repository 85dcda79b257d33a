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
//! * [`events`] — the stock events it publishes ([`events::outgoing`], which
//!   the store calls) and the settlement of checkout reservations by the
//!   payment's outcome ([`events::incoming`], which calls the store);
//! * [`sweeper`] — releases reservations whose payment never settled;
//! * [`seed`] — the demo catalogue of `shopgraph dev`.
//!
//! [`build`] wires them to an HTTP listener; `shopgraph` (the binary) and the
//! integration tests both start the subgraph through it.

pub mod domain;
pub mod events;
pub mod graphql;
pub mod seed;
pub mod store;
pub mod sweeper;

use std::time::Duration;

use product_migration::Migrator;
use shopgraph_core::config::{ConfigError, Env, invalid};
use shopgraph_core::settings::RunMode;
use subgraph_kit::events::inbox::Consumer;
use subgraph_kit::events::live::{DEFAULT_BACKLOG, LiveFeed};
use subgraph_kit::events::outbox::RelayWaker;
use subgraph_kit::events::{EventBus, Topic};
use subgraph_kit::service::{self, open_store};
pub use subgraph_kit::service::{ServiceApp, StartError};
use subgraph_kit::settings::ServiceSettings;

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
    /// Insert the demo catalogue at start-up (`SEED_DEMO_DATA`).
    pub seed_demo_data: bool,
    /// Stock below this publishes `StockLow` (`STOCK_LOW_THRESHOLD`).
    pub low_stock_threshold: i32,
    /// How often expired checkout reservations are released
    /// (`RESERVATION_SWEEP_INTERVAL`).
    pub reservation_sweep_interval: Duration,
}

impl ProductSettings {
    /// Reads the settings; `dev` mode seeds demo data unless told not to.
    pub fn from_env(env: &Env, mode: RunMode) -> Result<Self, ConfigError> {
        let service = ServiceSettings::from_env(env, SERVICE_NAME, DEV_PORT, mode)?;
        let seed_demo_data = env.bool_or("SEED_DEMO_DATA", mode == RunMode::Dev)?;
        let reservation_sweep_interval =
            env.duration_or("RESERVATION_SWEEP_INTERVAL", Duration::from_secs(30))?;
        if reservation_sweep_interval.is_zero() {
            return Err(invalid(
                "RESERVATION_SWEEP_INTERVAL",
                env.raw("RESERVATION_SWEEP_INTERVAL").unwrap_or_default(),
                "a duration above zero, such as 30s",
            ));
        }
        Ok(Self {
            service,
            seed_demo_data,
            low_stock_threshold: env.int_in_or("STOCK_LOW_THRESHOLD", 0..=1_000_000, 5)?,
            reservation_sweep_interval,
        })
    }
}

/// Opens and migrates the store, seeds the demo catalogue if asked, and
/// binds the listener: a product subgraph ready to [`ServiceApp::run`],
/// with its settlement consumer, reservation sweeper, outbox relay and live
/// feed on `bus`.
pub async fn build(settings: ProductSettings, bus: EventBus) -> Result<ServiceApp, StartError> {
    let database = open_store::<Migrator>(&settings.service).await?;
    let relay = RelayWaker::default();
    let store = ProductStore::new(
        database.conn.clone(),
        relay.clone(),
        settings.low_stock_threshold,
    );
    if settings.seed_demo_data {
        let inserted = seed::seed(&store, &settings.service.shop_currency)
            .await
            .map_err(|err| StartError::Prepare {
                service: SERVICE_NAME,
                source: Box::new(err),
            })?;
        tracing::info!(inserted, "demo catalogue ready");
    }
    let (feed, forwarder) = LiveFeed::start(&bus, vec![Topic::Product], DEFAULT_BACKLOG)
        .await
        .map_err(StartError::events(SERVICE_NAME))?;
    let sales = Consumer::new(
        "product-stock",
        vec![Topic::Payment],
        database.conn.clone(),
        bus.clone(),
        events::incoming::SaleHandler::new(store.clone()),
    )
    .waking(relay.clone());
    let sweeper = sweeper::ReservationSweeper::new(store.clone());
    let sweep_interval = settings.reservation_sweep_interval;
    let schema = graphql::schema(
        store,
        CatalogSettings {
            default_currency: settings.service.shop_currency.clone(),
        },
        &settings.service.graphql,
        feed.clone(),
    );
    let routes = subgraph_kit::graphql::routes(SERVICE_NAME, schema, &settings.service.graphql);
    Ok(ServiceApp::bind(&settings.service, database, routes)
        .await?
        .with_live_feed(feed)
        .with_job(move |stop| forwarder.run(stop))
        .with_job(move |stop| sales.run(stop))
        .with_job(move |stop| sweeper.run(sweep_interval, stop))
        .with_outbox(bus, relay))
}

/// Applies pending migrations and returns (`shopgraph migrate product`).
pub async fn migrate(settings: &ProductSettings) -> Result<(), StartError> {
    service::migrate::<Migrator>(&settings.service).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(extra: &[(&'static str, &'static str)]) -> Result<ProductSettings, ConfigError> {
        let [signing, trusted] = shopgraph_core::hop::HopKeyPair::of_this_process().env_vars();
        let mut pairs = vec![signing, trusted];
        pairs.extend_from_slice(extra);
        ProductSettings::from_env(&Env::from_pairs(pairs), RunMode::Serve)
    }

    #[test]
    fn the_reservation_sweep_runs_every_30s_unless_told() {
        assert_eq!(
            settings(&[]).unwrap().reservation_sweep_interval,
            Duration::from_secs(30)
        );
        assert_eq!(
            settings(&[("RESERVATION_SWEEP_INTERVAL", "250ms")])
                .unwrap()
                .reservation_sweep_interval,
            Duration::from_millis(250)
        );
        // A zero interval would spin (and tokio refuses it): refused at start.
        let refused = settings(&[("RESERVATION_SWEEP_INTERVAL", "0s")]).unwrap_err();
        assert!(
            refused.to_string().contains("RESERVATION_SWEEP_INTERVAL"),
            "{refused}"
        );
    }
}

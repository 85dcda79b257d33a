//! # payment-subgraph
//!
//! Payments for baskets, served as an Apollo Federation v2 subgraph that
//! owns the `Payment` entity and adds `User.payments`; its production store
//! is MariaDB.
//!
//! * [`domain`] — payments, the state machine, cards, the provider,
//!   basket and stock ports, the simulated provider;
//! * [`service`] — the use cases (the checkout saga, create, process,
//!   cancel, refund);
//! * [`store`] — the SeaORM repository (idempotency by unique index, status
//!   changes by conditional update);
//! * [`basket_client`] — the basket adapter: GraphQL calls to basket
//!   (read, lock and release the caller's basket);
//! * [`product_client`] — the stock adapter: GraphQL calls to product
//!   (reserve and release a checkout's units);
//! * [`events`] — the payment events the store writes to the outbox
//!   ([`events::outgoing`]; payment consumes no other service's events);
//! * [`graphql`] — the schema;
//! * [`sweeper`] — expires pending payments; reconciles payments left
//!   PROCESSING and refunds left REQUESTED with the provider.

pub mod basket_client;
pub mod domain;
pub mod events;
pub mod graphql;
pub mod product_client;
pub mod service;
pub mod store;
pub mod sweeper;

use std::sync::Arc;
use std::time::Duration;

use payment_migration::Migrator;
use shopgraph_core::config::{ConfigError, Env};
use shopgraph_core::settings::RunMode;
use subgraph_kit::events::live::{DEFAULT_BACKLOG, LiveFeed};
use subgraph_kit::events::outbox::RelayWaker;
use subgraph_kit::events::{EventBus, Topic};
use subgraph_kit::service::open_store;
pub use subgraph_kit::service::{ServiceApp, StartError};
use subgraph_kit::settings::ServiceSettings;
use subgraph_kit::upstream::GraphqlClient;

use crate::basket_client::GraphqlBaskets;
use crate::domain::provider::SimulatedProvider;
use crate::product_client::GraphqlStock;
use crate::service::{Holds, Payments};
use crate::store::PaymentStore;

/// The subgraph's name in logs, metrics and the supergraph.
pub const SERVICE_NAME: &str = "payment";
/// Port of the subgraph in `shopgraph dev` and the default for `serve`.
pub const DEV_PORT: u16 = 4003;

/// Everything the payment subgraph is configured with.
#[derive(Debug, Clone)]
pub struct PaymentSettings {
    /// Port, store, JWT and GraphQL limits.
    pub service: ServiceSettings,
    /// GraphQL endpoint of the basket subgraph (`BASKET_SERVICE_URL`).
    pub basket_url: String,
    /// GraphQL endpoint of the product subgraph (`PRODUCT_SERVICE_URL`,
    /// the name basket reads it under), where checkout reserves stock.
    pub product_url: String,
    /// How long a call to basket or product may take (`UPSTREAM_TIMEOUT`).
    pub upstream_timeout: Duration,
    /// How long a payment may stay PENDING (`PAYMENT_TTL`).
    pub pending_ttl: Duration,
    /// How much longer than its payment a checkout's stock reservation and
    /// basket lock live (`CHECKOUT_SETTLE_MARGIN`).
    pub settle_margin: Duration,
    /// How often expired payments are looked for (`PAYMENT_EXPIRY_INTERVAL`).
    pub expiry_interval: Duration,
    /// How long a payment may stay PROCESSING (a refund REQUESTED) before
    /// the provider is asked what happened (`PAYMENT_RECONCILE_AFTER`);
    /// well above the provider's answer time.
    pub reconcile_after: Duration,
    /// How often that is checked (`PAYMENT_RECONCILE_INTERVAL`).
    pub reconcile_interval: Duration,
}

impl PaymentSettings {
    /// Fails closed before serving: payment takes only signed requests and
    /// signs its own calls to basket and product (`HOP_SIGNING_KEY_FILE`).
    pub fn check_hop_keys(&self) -> Result<(), ConfigError> {
        self.service.check_hop_keys()?;
        self.service.auth.hop.require_signer().map(drop)
    }

    /// Reads the settings.
    pub fn from_env(env: &Env, mode: RunMode) -> Result<Self, ConfigError> {
        let service = ServiceSettings::from_env(env, SERVICE_NAME, DEV_PORT, mode)?;
        let basket_url = env
            .http_url(
                "BASKET_SERVICE_URL",
                "the basket subgraph's GraphQL URL, e.g. http://basket:4002/graphql",
            )?
            .unwrap_or_else(|| "http://127.0.0.1:4002/graphql".into());
        let product_url = env
            .http_url(
                "PRODUCT_SERVICE_URL",
                "the product subgraph's GraphQL URL, e.g. http://product:4001/graphql",
            )?
            .unwrap_or_else(|| "http://127.0.0.1:4001/graphql".into());
        Ok(Self {
            service,
            basket_url,
            product_url,
            upstream_timeout: env.duration_or("UPSTREAM_TIMEOUT", Duration::from_secs(3))?,
            pending_ttl: env.duration_or("PAYMENT_TTL", Duration::from_secs(15 * 60))?,
            settle_margin: env
                .duration_or("CHECKOUT_SETTLE_MARGIN", Duration::from_secs(10 * 60))?,
            expiry_interval: env.duration_or("PAYMENT_EXPIRY_INTERVAL", Duration::from_secs(30))?,
            reconcile_after: env.duration_or("PAYMENT_RECONCILE_AFTER", Duration::from_secs(60))?,
            reconcile_interval: env
                .duration_or("PAYMENT_RECONCILE_INTERVAL", Duration::from_secs(15))?,
        })
    }
}

/// Opens and migrates the store and binds the listener: a payment subgraph
/// (with its expiry and reconciliation sweepers and outbox relay to `bus`) ready to
/// [`ServiceApp::run`].
pub async fn build(settings: PaymentSettings, bus: EventBus) -> Result<ServiceApp, StartError> {
    let database = open_store::<Migrator>(&settings.service).await?;
    let signer = settings.service.auth.hop.require_signer()?;
    let baskets = GraphqlBaskets::new(GraphqlClient::new(
        "basket",
        settings.basket_url.clone(),
        settings.upstream_timeout,
        signer.clone(),
    ));
    let stock = GraphqlStock::new(GraphqlClient::new(
        "product",
        settings.product_url.clone(),
        settings.upstream_timeout,
        signer,
    ));
    let relay = RelayWaker::default();
    let payments = Payments::new(
        PaymentStore::new(database.conn.clone(), relay.clone()),
        Arc::new(baskets),
        Arc::new(stock),
        Arc::new(SimulatedProvider::default()),
        Holds {
            pending_ttl: settings.pending_ttl,
            settle_margin: settings.settle_margin,
        },
    );
    let (feed, forwarder) = LiveFeed::start(&bus, vec![Topic::Payment], DEFAULT_BACKLOG)
        .await
        .map_err(StartError::events(SERVICE_NAME))?;
    let schema = graphql::schema(payments.clone(), &settings.service.graphql, feed.clone());
    let routes = subgraph_kit::graphql::routes(SERVICE_NAME, schema, &settings.service.graphql);
    let interval = settings.expiry_interval;
    let (reconcile_every, reconcile_after) =
        (settings.reconcile_interval, settings.reconcile_after);
    let reconciler = payments.clone();
    Ok(ServiceApp::bind(&settings.service, database, routes)
        .await?
        .with_live_feed(feed)
        .with_job(move |stop| sweeper::run_expiry(payments, interval, stop))
        .with_job(move |stop| {
            sweeper::run_reconciliation(reconciler, reconcile_every, reconcile_after, stop)
        })
        .with_job(move |stop| forwarder.run(stop))
        .with_outbox(bus, relay))
}

/// Applies pending migrations and returns (`shopgraph migrate payment`).
pub async fn migrate(settings: &PaymentSettings) -> Result<(), StartError> {
    subgraph_kit::service::migrate::<Migrator>(&settings.service).await
}

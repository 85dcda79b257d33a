//! # notification-subgraph
//!
//! Per-user notifications, served as an Apollo Federation v2 subgraph that
//! owns the `Notification` entity and adds `User.notifications` and
//! `User.unreadNotificationCount`.
//!
//! * [`domain`] — notifications, their rules and the `Deliverer` port;
//! * [`service`] — the use cases, with the creation path admins use (event
//!   reactions store through the store, in their consumer's transaction);
//! * [`store`] — the SeaORM repository (PostgreSQL in production, SQLite
//!   embedded);
//! * [`delivery`] — in-app delivery and the webhook gateway for e-mail,
//!   SMS and push;
//! * [`events`] — the `NotificationCreated` event behind `notificationAdded`
//!   ([`events::outgoing`], which the store calls) and the reactions to
//!   payment, basket and stock events ([`events::incoming`], which call the
//!   store);
//! * [`graphql`] — the schema;
//! * [`scheduler`] — due deliveries, retries and cleanup.

pub mod delivery;
pub mod domain;
pub mod events;
pub mod graphql;
pub mod scheduler;
pub mod service;
pub mod store;

use std::sync::Arc;
use std::time::Duration;

use notification_migration::Migrator;
use shopgraph_core::config::{ConfigError, Env};
use shopgraph_core::settings::RunMode;
use subgraph_kit::events::inbox::Consumer;
use subgraph_kit::events::live::{DEFAULT_BACKLOG, LiveFeed};
use subgraph_kit::events::outbox::RelayWaker;
use subgraph_kit::events::{EventBus, Topic};
use subgraph_kit::service::open_store;
pub use subgraph_kit::service::{ServiceApp, StartError};
use subgraph_kit::settings::ServiceSettings;

use crate::delivery::GatewayDeliverer;
use crate::service::{Notifications, Policy};
use crate::store::NotificationStore;

/// The subgraph's name in logs, metrics and the supergraph.
pub const SERVICE_NAME: &str = "notification";
/// Port of the subgraph in `shopgraph dev` and the default for `serve`.
pub const DEV_PORT: u16 = 4004;

/// Everything the notification subgraph is configured with.
#[derive(Debug, Clone)]
pub struct NotificationSettings {
    /// Port, store, JWT and GraphQL limits.
    pub service: ServiceSettings,
    /// Retries, backoff and lifetime.
    pub policy: Policy,
    /// Gateway for e-mail, SMS and push (`NOTIFICATION_WEBHOOK_URL`).
    pub webhook_url: Option<String>,
    /// How long a gateway call may take (`UPSTREAM_TIMEOUT`).
    pub delivery_timeout: Duration,
    /// How often due deliveries and retries run (`NOTIFICATION_SCHEDULER_INTERVAL`).
    pub scheduler_interval: Duration,
    /// How often expired notifications are deleted (`CLEANUP_INTERVAL`).
    pub cleanup_interval: Duration,
    /// Users told about low and sold-out stock (`STOCK_ALERT_RECIPIENTS`,
    /// comma-separated user ids).
    pub stock_alert_recipients: Vec<String>,
    /// Events a live subscriber may fall behind by before it is ended
    /// (`SUBSCRIPTION_BUFFER`).
    pub subscription_buffer: usize,
}

impl NotificationSettings {
    /// Reads the settings.
    pub fn from_env(env: &Env, mode: RunMode) -> Result<Self, ConfigError> {
        let service = ServiceSettings::from_env(env, SERVICE_NAME, DEV_PORT, mode)?;
        let webhook_url = env.http_url("NOTIFICATION_WEBHOOK_URL", "an http:// or https:// URL")?;
        let delivery_timeout = env.duration_or("UPSTREAM_TIMEOUT", Duration::from_secs(3))?;
        let claim_timeout =
            env.duration_or("NOTIFICATION_CLAIM_TIMEOUT", Duration::from_secs(60))?;
        if claim_timeout <= delivery_timeout {
            // A claim that lapses while its delivery still runs lets another
            // replica send the same notification.
            return Err(shopgraph_core::config::invalid(
                "NOTIFICATION_CLAIM_TIMEOUT",
                env.raw("NOTIFICATION_CLAIM_TIMEOUT").unwrap_or("60s"),
                "a duration longer than UPSTREAM_TIMEOUT (a delivery must end before its claim lapses)",
            ));
        }
        Ok(Self {
            service,
            policy: Policy {
                max_retries: env.int_in_or("DEFAULT_RETRY_ATTEMPTS", 0..=100, 3)?,
                retry_backoff: env
                    .duration_or("NOTIFICATION_RETRY_BACKOFF", Duration::from_secs(30))?,
                ttl: env.duration_or("NOTIFICATION_TTL", Duration::from_secs(30 * 24 * 3600))?,
                claim_timeout,
            },
            webhook_url,
            delivery_timeout,
            scheduler_interval: env
                .duration_or("NOTIFICATION_SCHEDULER_INTERVAL", Duration::from_secs(5))?,
            cleanup_interval: env.duration_or("CLEANUP_INTERVAL", Duration::from_secs(3600))?,
            stock_alert_recipients: env
                .string("STOCK_ALERT_RECIPIENTS")
                .unwrap_or_else(|| "admin".into())
                .split(',')
                .map(str::trim)
                .filter(|id| !id.is_empty())
                .map(str::to_owned)
                .collect(),
            subscription_buffer: env.int_in_or(
                "SUBSCRIPTION_BUFFER",
                1..=1_000_000,
                DEFAULT_BACKLOG,
            )?,
        })
    }
}

/// Opens and migrates the store and binds the listener: a notification
/// subgraph (with its scheduler and cleanup) ready to [`ServiceApp::run`].
pub async fn build(
    settings: NotificationSettings,
    bus: EventBus,
) -> Result<ServiceApp, StartError> {
    let database = open_store::<Migrator>(&settings.service).await?;
    let deliverer = GatewayDeliverer::new(settings.webhook_url.clone(), settings.delivery_timeout);
    let relay = RelayWaker::default();
    let notifications = Notifications::new(
        NotificationStore::new(database.conn.clone(), relay.clone()),
        Arc::new(deliverer),
        settings.policy.clone(),
    );
    let (feed, forwarder) = LiveFeed::start(
        &bus,
        vec![Topic::Notification],
        settings.subscription_buffer,
    )
    .await
    .map_err(StartError::events(SERVICE_NAME))?;
    let reactions = Consumer::new(
        "notification-reactions",
        vec![Topic::Payment, Topic::Basket, Topic::Product],
        database.conn.clone(),
        bus.clone(),
        events::incoming::ReactionHandler::new(events::incoming::ReactionSettings {
            stock_alert_recipients: settings.stock_alert_recipients.clone(),
            ttl: settings.policy.ttl,
        }),
    )
    .waking(relay.clone());
    let schema = graphql::schema(
        notifications.clone(),
        &settings.service.graphql,
        feed.clone(),
    );
    let routes = subgraph_kit::graphql::routes(SERVICE_NAME, schema, &settings.service.graphql);
    let (scheduler, cleanup) = (notifications.clone(), notifications);
    let (scheduler_every, cleanup_every) = (settings.scheduler_interval, settings.cleanup_interval);
    Ok(ServiceApp::bind(&settings.service, database, routes)
        .await?
        .with_live_feed(feed)
        .with_job(move |stop| scheduler::run_deliveries(scheduler, scheduler_every, stop))
        .with_job(move |stop| scheduler::run_cleanup(cleanup, cleanup_every, stop))
        .with_job(move |stop| forwarder.run(stop))
        .with_job(move |stop| reactions.run(stop))
        .with_outbox(bus, relay))
}

/// Applies pending migrations and returns (`shopgraph migrate notification`).
pub async fn migrate(settings: &NotificationSettings) -> Result<(), StartError> {
    subgraph_kit::service::migrate::<Migrator>(&settings.service).await
}

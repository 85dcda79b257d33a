//! Events: how a state change in one subgraph becomes a reaction in
//! another and a live notification in a client, without loss.
//!
//! The path of one event, in the order it happens:
//!
//! 1. a use case changes its store and, **in the same transaction**, writes
//!    the event to its [`outbox`] table;
//! 2. the outbox [`Relay`](outbox::Relay) publishes pending rows in order to
//!    the [`EventBus`], marks them sent, and retries with backoff while the
//!    broker is away (a restart resumes from the table);
//! 3. a consumer in another subgraph ([`inbox::Consumer`]) receives it,
//!    records the event id and applies its effect in one transaction, and
//!    only then acknowledges the offset: a redelivered event is skipped;
//! 4. every replica keeps a [`live::LiveFeed`] of the topics its
//!    subscriptions need, fanning events out to GraphQL subscriptions.
//!
//! The bus is a port with two adapters: Kafka ([`kafka`], chosen by
//! `KAFKA_BROKERS`) and an in-process log ([`memory`]) for `shopgraph dev`
//! and unit tests. Both give the same at-least-once, per-key ordered
//! delivery the code above relies on. Event types ([`contract::EventKind`])
//! and their data are listed in `platform/subgraph-kit/src/events/README.md`,
//! which also shows where each subgraph keeps what it publishes
//! (`events/outgoing.rs`) and how it reacts (`events/incoming.rs`).

pub mod contract;
pub mod envelope;
pub mod inbox;
pub mod kafka;
pub mod live;
pub mod memory;
pub mod outbox;
pub mod schema;

use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;

pub use envelope::CloudEvent;

use shopgraph_core::config::{ConfigError, Env};

/// The topics Shopgraph publishes to (before any test prefix).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Topic {
    /// StockUpdated, StockLow, StockOut; keyed by product id.
    Product,
    /// BasketCleared, BasketAbandoned; keyed by user id.
    Basket,
    /// PaymentCreated … PaymentExpired; keyed by payment id.
    Payment,
    /// NotificationCreated; keyed by user id (feeds `notificationAdded`).
    Notification,
}

impl Topic {
    /// Every topic, created at start-up.
    pub const ALL: [Topic; 4] = [
        Self::Product,
        Self::Basket,
        Self::Payment,
        Self::Notification,
    ];

    /// The topic's base name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Product => "product-events",
            Self::Basket => "basket-events",
            Self::Payment => "payment-events",
            Self::Notification => "notification-events",
        }
    }

    /// The topic whose base name is `name`.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|topic| topic.name() == name)
    }
}

/// Why the bus could not do what was asked.
#[derive(Debug, Clone, thiserror::Error)]
pub enum BusError {
    /// The broker did not accept or acknowledge the message in time.
    #[error("cannot publish to {topic}: {reason}")]
    Publish {
        /// The topic.
        topic: String,
        /// The client's reason.
        reason: String,
    },
    /// Subscribing, receiving or acknowledging failed.
    #[error("cannot consume {topics}: {reason}")]
    Consume {
        /// The topics.
        topics: String,
        /// The client's reason.
        reason: String,
    },
    /// Topics could not be created at start-up.
    #[error("cannot create topics: {0}")]
    Admin(String),
}

/// Where a consumer starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Start {
    /// A durable consumer group: resume after its last acknowledged
    /// offset, or from the earliest retained event the first time. Members
    /// of one group share the partitions (one replica handles each event).
    Group(String),
    /// A live tail for this process only: every partition from the end, no
    /// group, nothing acknowledged. Each replica sees every new event.
    Live,
    /// A live tail that goes on where an earlier one stood
    /// ([`Subscription::position`]): after a lost broker connection, so the
    /// events published meanwhile are not skipped. Partitions it has no
    /// position for start at the end.
    LiveFrom(Positions),
}

/// Where a live tail stands: per topic (full name) and partition, the
/// offset of the next event it has not received yet.
pub type Positions = std::collections::BTreeMap<String, std::collections::BTreeMap<i32, i64>>;

/// One received event and where it came from.
#[derive(Debug, Clone)]
pub struct Delivery {
    /// The topic (full name, with any prefix).
    pub topic: String,
    /// The partition.
    pub partition: i32,
    /// The offset within the partition.
    pub offset: i64,
    /// The event, or why its bytes are not a CloudEvent.
    pub event: Result<CloudEvent, String>,
}

/// A stream of deliveries from some topics.
pub trait Subscription: Send {
    /// The next delivery; waits until there is one.
    fn next(&mut self) -> BoxFuture<'_, Result<Delivery, BusError>>;
    /// Marks `delivery` (and everything before it in its partition) done:
    /// a restarted group resumes after it.
    fn ack(&mut self, delivery: &Delivery) -> Result<(), BusError>;
    /// Where a live tail stands (empty for a group, whose position the
    /// broker keeps): what [`Start::LiveFrom`] continues from.
    fn position(&self) -> Positions {
        Positions::new()
    }
}

/// The bus port: what the outbox relay, consumers and live feeds need.
pub trait Transport: Send + Sync + 'static {
    /// Creates the topics if missing.
    fn ensure_topics<'a>(&'a self, topics: &'a [String]) -> BoxFuture<'a, Result<(), BusError>>;
    /// Publishes one event under `key`; resolves once the bus holds it
    /// durably (Kafka: acknowledged by all in-sync replicas).
    fn publish<'a>(
        &'a self,
        topic: &'a str,
        key: &'a str,
        payload: Vec<u8>,
    ) -> BoxFuture<'a, Result<(), BusError>>;
    /// Starts consuming `topics` from `start`.
    fn subscribe<'a>(
        &'a self,
        topics: &'a [String],
        start: Start,
    ) -> BoxFuture<'a, Result<Box<dyn Subscription>, BusError>>;
}

/// The event bus a service was given: a transport plus the topic prefix
/// (unique per test run, empty in production). Cheap to clone.
#[derive(Clone)]
pub struct EventBus {
    transport: Arc<dyn Transport>,
    prefix: Arc<str>,
    kind: &'static str,
}

impl std::fmt::Debug for EventBus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventBus")
            .field("kind", &self.kind)
            .field("prefix", &self.prefix)
            .finish()
    }
}

impl EventBus {
    /// The in-process bus (`shopgraph dev`, unit tests): one per process,
    /// shared by every service in it.
    pub fn in_process() -> Self {
        Self::new(
            Arc::new(memory::MemoryTransport::default()),
            "",
            "in-process",
        )
    }

    /// A bus over any transport, with topic names prefixed by `prefix`.
    pub fn new(transport: Arc<dyn Transport>, prefix: &str, kind: &'static str) -> Self {
        Self {
            transport,
            prefix: prefix.into(),
            kind,
        }
    }

    /// Connects as `settings` say: Kafka when brokers are set (topics are
    /// created now), the in-process bus otherwise.
    pub async fn connect(settings: &EventSettings, client_id: &str) -> Result<Self, BusError> {
        let Some(kafka) = &settings.kafka else {
            return Ok(Self::in_process());
        };
        let transport = kafka::KafkaTransport::new(kafka, client_id)?;
        let bus = Self::new(Arc::new(transport), &kafka.topic_prefix, "kafka");
        bus.ensure_topics().await?;
        Ok(bus)
    }

    /// `"kafka"` or `"in-process"`, for logs and health.
    pub fn kind(&self) -> &'static str {
        self.kind
    }

    /// The full name of `topic` on this bus.
    pub fn topic(&self, topic: Topic) -> String {
        format!("{}{}", self.prefix, topic.name())
    }

    /// Creates every Shopgraph topic if missing.
    pub async fn ensure_topics(&self) -> Result<(), BusError> {
        let names: Vec<String> = Topic::ALL.iter().map(|t| self.topic(*t)).collect();
        self.transport.ensure_topics(&names).await
    }

    /// Publishes `event` to `topic`, keyed by its subject.
    pub async fn publish(&self, topic: Topic, event: &CloudEvent) -> Result<(), BusError> {
        let name = self.topic(topic);
        self.transport
            .publish(&name, &event.subject, event.to_bytes())
            .await
    }

    /// Publishes an already encoded event (the outbox stores bytes).
    pub(crate) async fn publish_raw(
        &self,
        topic: &str,
        key: &str,
        payload: Vec<u8>,
    ) -> Result<(), BusError> {
        self.transport.publish(topic, key, payload).await
    }

    /// Starts consuming `topics` from `start`.
    pub async fn subscribe(
        &self,
        topics: &[Topic],
        start: Start,
    ) -> Result<Box<dyn Subscription>, BusError> {
        let names: Vec<String> = topics.iter().map(|t| self.topic(*t)).collect();
        self.transport.subscribe(&names, start).await
    }
}

/// How a service reaches the bus (`KAFKA_*`).
#[derive(Debug, Clone, Default)]
pub struct EventSettings {
    /// Kafka, when `KAFKA_BROKERS` is set; the in-process bus otherwise.
    pub kafka: Option<KafkaSettings>,
}

/// Kafka client settings.
#[derive(Debug, Clone)]
pub struct KafkaSettings {
    /// `KAFKA_BROKERS`: `host:port,host:port`.
    pub brokers: String,
    /// `KAFKA_TOPIC_PREFIX`: prepended to every topic name (tests use a
    /// unique one per run).
    pub topic_prefix: String,
    /// `KAFKA_TOPIC_PARTITIONS`: partitions of topics created at start-up.
    pub partitions: i32,
    /// `KAFKA_REPLICATION_FACTOR`: replicas of topics created at start-up.
    pub replication: i32,
    /// `KAFKA_SESSION_TIMEOUT`: how long a silent group member keeps its
    /// partitions.
    pub session_timeout: Duration,
    /// `KAFKA_PUBLISH_TIMEOUT`: how long a publish may wait for the
    /// broker before the relay backs off and retries.
    pub publish_timeout: Duration,
    /// `KAFKA_CLIENT_PROPERTIES`: extra librdkafka properties for every
    /// client (`key=value,key=value`), e.g. TLS or protocol settings a
    /// particular cluster needs.
    pub client_properties: Vec<(String, String)>,
}

impl EventSettings {
    /// Reads `KAFKA_*`.
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let Some(brokers) = env.string("KAFKA_BROKERS").filter(|b| !b.trim().is_empty()) else {
            return Ok(Self::default());
        };
        Ok(Self {
            kafka: Some(KafkaSettings {
                brokers,
                topic_prefix: env.string("KAFKA_TOPIC_PREFIX").unwrap_or_default(),
                partitions: env.int_in_or("KAFKA_TOPIC_PARTITIONS", 1..=1000, 3)?,
                replication: env.int_in_or("KAFKA_REPLICATION_FACTOR", 1..=10, 1)?,
                session_timeout: env
                    .duration_or("KAFKA_SESSION_TIMEOUT", Duration::from_secs(10))?,
                publish_timeout: env
                    .duration_or("KAFKA_PUBLISH_TIMEOUT", Duration::from_secs(10))?,
                client_properties: client_properties(env)?,
            }),
        })
    }
}

fn client_properties(env: &Env) -> Result<Vec<(String, String)>, ConfigError> {
    let var = "KAFKA_CLIENT_PROPERTIES";
    let Some(raw) = env.raw(var) else {
        return Ok(Vec::new());
    };
    raw.split(',')
        .map(str::trim)
        .filter(|entry| !entry.is_empty())
        .map(|entry| match entry.split_once('=') {
            Some((key, value)) if !key.trim().is_empty() => {
                Ok((key.trim().to_owned(), value.trim().to_owned()))
            }
            _ => Err(shopgraph_core::config::invalid(
                var,
                raw,
                "comma-separated librdkafka properties, key=value",
            )),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    //! The outbox → bus → inbox path on the in-process bus and SQLite.

    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use futures::future::BoxFuture;
    use sea_orm::{DatabaseConnection, DatabaseTransaction, TransactionTrait};
    use sea_orm_migration::prelude::*;
    use serde_json::json;
    use tokio_util::sync::CancellationToken;

    use super::inbox::{Consumer, Handler, HandlerError, Outcome};
    use super::outbox::{Relay, RelaySettings, RelayWaker, enqueue};
    use super::*;

    struct Migrator;
    impl MigratorTrait for Migrator {
        fn migrations() -> Vec<Box<dyn MigrationTrait>> {
            super::schema::migrations()
        }
    }

    async fn store() -> DatabaseConnection {
        // Each connection to `:memory:` is its own database: keep one.
        let mut options = sea_orm::ConnectOptions::new("sqlite::memory:");
        options.max_connections(1);
        let db = sea_orm::Database::connect(options).await.unwrap();
        Migrator::up(&db, None).await.unwrap();
        db
    }

    #[derive(Clone, Default)]
    struct Counting(Arc<AtomicUsize>);
    impl Handler for Counting {
        fn handle<'a>(
            &'a self,
            _txn: &'a DatabaseTransaction,
            event: &'a CloudEvent,
        ) -> BoxFuture<'a, Result<(), HandlerError>> {
            Box::pin(async move {
                #[derive(serde::Deserialize)]
                #[allow(dead_code)]
                struct Data {
                    n: i32,
                }
                event.data::<Data>()?;
                self.0.fetch_add(1, Ordering::SeqCst);
                Ok(())
            })
        }
    }

    #[tokio::test]
    async fn committed_events_are_relayed_in_order_and_applied_once() {
        let bus = EventBus::in_process();
        bus.ensure_topics().await.unwrap();
        let producer = store().await;
        let mut tail = bus.subscribe(&[Topic::Payment], Start::Live).await.unwrap();

        // One committed, one rolled back.
        let txn = producer.begin().await.unwrap();
        for n in 0..3 {
            let event = CloudEvent::new("/t", "T", "p1", &json!({ "n": n })).unwrap();
            enqueue(&txn, Topic::Payment, &event).await.unwrap();
        }
        txn.commit().await.unwrap();
        let txn = producer.begin().await.unwrap();
        let lost = CloudEvent::new("/t", "T", "p1", &json!({ "n": 99 })).unwrap();
        enqueue(&txn, Topic::Payment, &lost).await.unwrap();
        txn.rollback().await.unwrap();
        assert_eq!(Relay::pending(&producer).await.unwrap(), 3);

        let stop = CancellationToken::new();
        let waker = RelayWaker::default();
        let relay = Relay::new(
            "t",
            producer.clone(),
            bus.clone(),
            waker.clone(),
            RelaySettings::default(),
        );
        let relay = tokio::spawn(relay.run(stop.clone()));
        waker.wake();
        let mut seen = Vec::new();
        for _ in 0..3 {
            let delivery = tokio::time::timeout(Duration::from_secs(5), tail.next())
                .await
                .unwrap()
                .unwrap();
            seen.push(delivery.event.unwrap().data::<serde_json::Value>().unwrap()["n"].clone());
        }
        assert_eq!(seen, vec![json!(0), json!(1), json!(2)]);
        stop.cancel();
        relay.await.unwrap();
        assert_eq!(Relay::pending(&producer).await.unwrap(), 0);

        // The same delivery twice: applied once.
        let consumer_store = store().await;
        let handler = Counting::default();
        let consumer = Consumer::new(
            "c",
            vec![Topic::Payment],
            consumer_store,
            bus.clone(),
            handler.clone(),
        );
        let mut group = bus
            .subscribe(&[Topic::Payment], Start::Group("x".into()))
            .await
            .unwrap();
        let delivery = group.next().await.unwrap();
        assert_eq!(consumer.apply(&delivery).await.unwrap(), Outcome::Applied);
        assert_eq!(consumer.apply(&delivery).await.unwrap(), Outcome::Duplicate);
        assert_eq!(handler.0.load(Ordering::SeqCst), 1);

        // Data that can never apply is recorded, not retried forever.
        let bad = CloudEvent::new("/t", "T", "p1", &json!({ "n": "x" })).unwrap();
        let bad = Delivery {
            topic: "t".into(),
            partition: 0,
            offset: 9,
            event: Ok(bad),
        };
        assert_eq!(consumer.apply(&bad).await.unwrap(), Outcome::Rejected);
        assert_eq!(consumer.apply(&bad).await.unwrap(), Outcome::Duplicate);
    }
}

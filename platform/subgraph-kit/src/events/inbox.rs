//! Idempotent consumers: each event's effect applies once, however often
//! the bus delivers it.
//!
//! A [`Consumer`] reads its topics in a durable group. For each event it
//! opens a transaction, records `(consumer, event id)` in `event_inbox`
//! (the primary key refuses a second time), lets the [`Handler`] apply the
//! effect, possibly writing follow-up events to the outbox, and commits;
//! only then is the offset acknowledged. A crash anywhere in between
//! replays the event, and the inbox row (or its absence) decides.

use chrono::{DateTime, Utc};
use futures::future::BoxFuture;
use sea_orm::entity::prelude::*;
use sea_orm::{
    ActiveValue::Set, DatabaseConnection, DatabaseTransaction, SqlErr, TransactionTrait,
};
use tokio_util::sync::CancellationToken;

use super::outbox::{Backoff, RelayWaker};
use super::{CloudEvent, Delivery, EventBus, Start, Subscription, Topic};

/// The `event_inbox` table.
pub mod entity {
    use sea_orm::entity::prelude::*;

    /// One event a consumer has applied.
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "event_inbox")]
    pub struct Model {
        /// The consumer (group) name.
        #[sea_orm(primary_key, auto_increment = false)]
        pub consumer: String,
        /// The CloudEvent id.
        #[sea_orm(primary_key, auto_increment = false)]
        pub event_id: String,
        /// When it was applied.
        pub processed_at: DateTimeUtc,
    }

    /// No relations.
    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// Why a handler could not apply an event.
#[derive(Debug, thiserror::Error)]
pub enum HandlerError {
    /// Worth retrying (the store is away): the event is redelivered.
    #[error(transparent)]
    Transient(#[from] DbErr),
    /// Will never apply (its data is not what its type promises): logged
    /// and recorded as processed so it does not block its partition.
    #[error("{0}")]
    Rejected(String),
}

impl From<super::envelope::MalformedEvent> for HandlerError {
    fn from(err: super::envelope::MalformedEvent) -> Self {
        Self::Rejected(err.to_string())
    }
}

/// What a consumer does with one event, inside the transaction that also
/// records the event as processed.
pub trait Handler: Send + Sync + 'static {
    /// Applies `event` (or ignores a type it does not care about).
    fn handle<'a>(
        &'a self,
        txn: &'a DatabaseTransaction,
        event: &'a CloudEvent,
    ) -> BoxFuture<'a, Result<(), HandlerError>>;
}

/// What happened to one delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The effect was applied now.
    Applied,
    /// It had been applied before: skipped.
    Duplicate,
    /// It can never apply: recorded and skipped.
    Rejected,
}

/// A durable, idempotent consumer of some topics into one store.
pub struct Consumer<H> {
    name: &'static str,
    topics: Vec<Topic>,
    db: DatabaseConnection,
    bus: EventBus,
    handler: H,
    relay: Option<RelayWaker>,
}

impl<H: Handler> Consumer<H> {
    /// Consumer group `name` (shared by the service's replicas) reading
    /// `topics` into `db` through `handler`.
    pub fn new(
        name: &'static str,
        topics: Vec<Topic>,
        db: DatabaseConnection,
        bus: EventBus,
        handler: H,
    ) -> Self {
        Self {
            name,
            topics,
            db,
            bus,
            handler,
            relay: None,
        }
    }

    /// Wakes `relay` after each applied event (the handler writes events).
    pub fn waking(mut self, relay: RelayWaker) -> Self {
        self.relay = Some(relay);
        self
    }

    /// Consumes until `stop` is cancelled.
    pub async fn run(self, stop: CancellationToken) {
        let mut backoff = Backoff::default();
        loop {
            let subscribed = tokio::select! {
                () = stop.cancelled() => return,
                subscribed = self.bus.subscribe(&self.topics, Start::Group(self.name.to_owned())) => subscribed,
            };
            match subscribed {
                Ok(subscription) => {
                    backoff.reset();
                    if self.consume(subscription, &stop).await {
                        return;
                    }
                }
                Err(err) => {
                    tracing::warn!(consumer = self.name, %err, "cannot subscribe; retrying");
                    if backoff.sleep(&stop).await {
                        return;
                    }
                }
            }
        }
    }

    /// Handles deliveries until stopped (`true`) or the subscription fails.
    async fn consume(
        &self,
        mut subscription: Box<dyn Subscription>,
        stop: &CancellationToken,
    ) -> bool {
        let mut backoff = Backoff::default();
        loop {
            let delivery = tokio::select! {
                () = stop.cancelled() => return true,
                delivery = subscription.next() => delivery,
            };
            let delivery = match delivery {
                Ok(delivery) => delivery,
                Err(err) => {
                    // librdkafka reconnects by itself; keep the subscription.
                    tracing::warn!(consumer = self.name, %err, "cannot receive; retrying");
                    if backoff.sleep(stop).await {
                        return true;
                    }
                    continue;
                }
            };
            backoff.reset();
            loop {
                match self.apply(&delivery).await {
                    Ok(outcome) => {
                        crate::metrics::record_event_consumed(self.name, outcome.label());
                        break;
                    }
                    Err(err) => {
                        tracing::warn!(consumer = self.name, %err, offset = delivery.offset, "cannot apply event; retrying");
                        if backoff.sleep(stop).await {
                            return true; // not acknowledged: redelivered later
                        }
                    }
                }
            }
            if let Err(err) = subscription.ack(&delivery) {
                // The effect is recorded; a redelivery will be skipped.
                tracing::warn!(consumer = self.name, %err, "cannot acknowledge offset");
            }
        }
    }

    /// Applies one delivery exactly once; `Err` only for transient failures.
    pub async fn apply(&self, delivery: &Delivery) -> Result<Outcome, DbErr> {
        let event = match &delivery.event {
            Ok(event) => event,
            Err(reason) => {
                tracing::error!(consumer = self.name, topic = %delivery.topic, offset = delivery.offset, %reason, "skipping a message that is not a CloudEvent");
                return Ok(Outcome::Rejected);
            }
        };
        let txn = self.db.begin().await?;
        match self.claim(&txn, event).await {
            Ok(_) => {}
            Err(err) if matches!(err.sql_err(), Some(SqlErr::UniqueConstraintViolation(_))) => {
                tracing::debug!(consumer = self.name, event_id = %event.id, "duplicate delivery skipped");
                return Ok(Outcome::Duplicate);
            }
            Err(err) => return Err(err),
        }
        let outcome = match self.handler.handle(&txn, event).await {
            Ok(()) => Outcome::Applied,
            Err(HandlerError::Transient(err)) => return Err(err),
            Err(HandlerError::Rejected(reason)) => {
                tracing::error!(consumer = self.name, event_id = %event.id, kind = %event.kind, %reason, "event rejected");
                Outcome::Rejected
            }
        };
        if outcome == Outcome::Rejected {
            // Drop any partial effect but keep the inbox row.
            txn.rollback().await?;
            let txn = self.db.begin().await?;
            self.claim(&txn, event).await?;
            txn.commit().await?;
            return Ok(outcome);
        }
        txn.commit().await?;
        if let Some(relay) = &self.relay {
            relay.wake();
        }
        Ok(outcome)
    }
}

impl<H: Handler> Consumer<H> {
    /// Records `event` as processed by this consumer; a unique violation
    /// means it already was.
    async fn claim(&self, txn: &DatabaseTransaction, event: &CloudEvent) -> Result<(), DbErr> {
        entity::Entity::insert(entity::ActiveModel {
            consumer: Set(self.name.to_owned()),
            event_id: Set(event.id.clone()),
            processed_at: Set(crate::clock::now()),
        })
        .exec_without_returning(txn)
        .await
        .map(|_| ())
    }
}

impl Outcome {
    fn label(self) -> &'static str {
        match self {
            Self::Applied => "applied",
            Self::Duplicate => "duplicate",
            Self::Rejected => "rejected",
        }
    }
}

/// Deletes inbox rows older than `before` (their events are long past any
/// redelivery), if there are any: looked for with a read first, so an idle
/// store is not written to.
pub(crate) async fn cleanup(db: &DatabaseConnection, before: DateTime<Utc>) -> Result<(), DbErr> {
    let old = entity::Entity::find()
        .filter(entity::Column::ProcessedAt.lt(before))
        .one(db)
        .await?;
    if old.is_none() {
        return Ok(());
    }
    entity::Entity::delete_many()
        .filter(entity::Column::ProcessedAt.lt(before))
        .exec(db)
        .await?;
    Ok(())
}

//! The transactional outbox: events are rows written with the change they
//! describe, then published by a relay.
//!
//! A use case calls [`enqueue`] on its open transaction; if the transaction
//! rolls back the event never existed, if it commits the event will be
//! published, even when the broker is down right now or the process dies a
//! millisecond later. The [`Relay`] publishes pending rows in `seq` (commit)
//! order, waits for the bus to hold each one, marks it published, and backs
//! off exponentially while the bus fails. With several replicas of a
//! service, one relay at a time holds the store's lease (a row in
//! `event_outbox_lease`, renewed every pass, taken over when it expires),
//! so order holds without locking the outbox rows that use cases insert.

use std::sync::Arc;
use std::time::Duration;

use sea_orm::entity::prelude::*;
use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{ActiveValue::Set, ConnectionTrait, DatabaseConnection, QueryOrder, QuerySelect};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

pub(crate) use shopgraph_core::backoff::Backoff;

use super::contract::EventKind;
use super::{CloudEvent, EventBus, Topic};

/// The `event_outbox_lease` table.
mod lease {
    use sea_orm::entity::prelude::*;

    /// Which relay publishes, until when.
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "event_outbox_lease")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub name: String,
        pub holder: String,
        pub expires_at: DateTimeUtc,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// The `event_outbox` table.
pub mod entity {
    use sea_orm::entity::prelude::*;

    /// One event waiting for, or done with, publication.
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "event_outbox")]
    pub struct Model {
        /// Commit order.
        #[sea_orm(primary_key)]
        pub seq: i64,
        /// The CloudEvent id.
        pub event_id: String,
        /// The topic's base name (see [`super::Topic::name`]).
        pub topic: String,
        /// The partitioning key (the event's subject).
        pub event_key: String,
        /// The CloudEvent as JSON.
        #[sea_orm(column_type = "Text")]
        pub payload: String,
        /// When it was written.
        pub created_at: DateTimeUtc,
        /// When the bus acknowledged it; `None` while pending.
        pub published_at: Option<DateTimeUtc>,
        /// Failed publication attempts.
        pub attempts: i32,
        /// The last publication failure.
        #[sea_orm(column_type = "Text", nullable)]
        pub last_error: Option<String>,
    }

    /// No relations.
    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// A new event of a known `kind` for the outbox: [`CloudEvent::new`] with
/// an encoding failure reported as the store error the surrounding write
/// returns.
pub fn event(
    source: &str,
    kind: EventKind,
    subject: impl Into<String>,
    data: &impl serde::Serialize,
) -> Result<CloudEvent, DbErr> {
    CloudEvent::new(source, kind.as_str(), subject, data)
        .map_err(|err| DbErr::Custom(format!("cannot encode {kind}: {err}")))
}

/// Writes `event` for `topic` into the outbox, inside the caller's
/// transaction.
pub async fn enqueue(
    txn: &impl ConnectionTrait,
    topic: Topic,
    event: &CloudEvent,
) -> Result<(), DbErr> {
    let payload = String::from_utf8(event.to_bytes())
        .map_err(|err| DbErr::Custom(format!("event {} is not UTF-8: {err}", event.id)))?;
    entity::Entity::insert(entity::ActiveModel {
        event_id: Set(event.id.clone()),
        topic: Set(topic.name().to_owned()),
        event_key: Set(event.subject.clone()),
        payload: Set(payload),
        created_at: Set(event.time),
        published_at: Set(None),
        attempts: Set(0),
        last_error: Set(None),
        ..Default::default()
    })
    .exec_without_returning(txn)
    .await?;
    Ok(())
}

/// Wakes the relay right after a commit, so events do not wait for the
/// next poll. Cheap to clone; a use case holds one.
#[derive(Debug, Clone, Default)]
pub struct RelayWaker(Arc<Notify>);

impl RelayWaker {
    /// Tells the relay there is something new.
    pub fn wake(&self) {
        self.0.notify_one();
    }
}

/// Tuning of a relay.
#[derive(Debug, Clone)]
pub struct RelaySettings {
    /// Rows published per pass.
    pub batch: u64,
    /// How often to look for rows when nobody woke the relay (another
    /// replica's commits, rows left by a crash).
    pub poll_interval: Duration,
    /// First retry delay after a failure; doubles up to `max_backoff`.
    pub min_backoff: Duration,
    /// Longest retry delay.
    pub max_backoff: Duration,
    /// How long published rows are kept (for inspection) before deletion.
    pub retention: Duration,
    /// How long a relay's lease lasts without renewal (a dead replica's
    /// relay is replaced after this).
    pub lease: Duration,
}

impl Default for RelaySettings {
    fn default() -> Self {
        Self {
            batch: 100,
            poll_interval: Duration::from_millis(500),
            min_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(5),
            retention: Duration::from_secs(24 * 3600),
            lease: Duration::from_secs(10),
        }
    }
}

/// Publishes one store's outbox to the bus.
pub struct Relay {
    /// This relay's name in the lease.
    id: String,
    service: &'static str,
    db: DatabaseConnection,
    bus: EventBus,
    waker: RelayWaker,
    settings: RelaySettings,
}

/// Why one relay pass stopped early.
#[derive(Debug, thiserror::Error)]
enum PassError {
    #[error(transparent)]
    Db(#[from] DbErr),
    #[error(transparent)]
    Bus(#[from] super::BusError),
}

impl Relay {
    /// A relay for `service`'s store `db`, woken through `waker`.
    pub fn new(
        service: &'static str,
        db: DatabaseConnection,
        bus: EventBus,
        waker: RelayWaker,
        settings: RelaySettings,
    ) -> Self {
        Self {
            id: uuid::Uuid::new_v4().simple().to_string(),
            service,
            db,
            bus,
            waker,
            settings,
        }
    }

    /// Takes or renews the store's relay lease; `false` while another
    /// replica's relay holds it.
    async fn lease(&self) -> Result<bool, DbErr> {
        let now = crate::clock::now();
        let until = now + chrono::Duration::from_std(self.settings.lease).unwrap_or_default();
        let taken = lease::Entity::update_many()
            .col_expr(lease::Column::Holder, Expr::value(self.id.clone()))
            .col_expr(lease::Column::ExpiresAt, Expr::value(until))
            .filter(lease::Column::Name.eq(super::schema::RELAY_LEASE))
            .filter(
                sea_orm::Condition::any()
                    .add(lease::Column::Holder.eq(self.id.as_str()))
                    .add(lease::Column::ExpiresAt.lt(now)),
            )
            .exec(&self.db)
            .await?;
        Ok(taken.rows_affected == 1)
    }

    /// Publishes until `stop` is cancelled; a pending row is never skipped.
    pub async fn run(self, stop: CancellationToken) {
        let mut backoff = Backoff::new(self.settings.min_backoff, self.settings.max_backoff);
        let mut last_cleanup = std::time::Instant::now();
        loop {
            let wait = match self.pass().await {
                Ok(published) => {
                    backoff.reset();
                    if published == self.settings.batch {
                        continue; // more are waiting
                    }
                    self.settings.poll_interval
                }
                Err(err) => {
                    let wait = backoff.next_delay();
                    tracing::warn!(service = self.service, error = %err, retry_in = ?wait, "outbox relay cannot publish; retrying");
                    crate::metrics::record_outbox_failure(self.service);
                    wait
                }
            };
            if last_cleanup.elapsed() > self.settings.poll_interval * 120 {
                last_cleanup = std::time::Instant::now();
                if let Err(err) = self.cleanup().await {
                    tracing::warn!(service = self.service, %err, "outbox cleanup failed");
                }
            }
            tokio::select! {
                () = stop.cancelled() => {
                    // One last pass so a clean shutdown leaves nothing behind.
                    if let Err(err) = self.pass().await {
                        tracing::warn!(service = self.service, error = %err, "outbox left pending at shutdown; it is published at the next start");
                    }
                    return;
                }
                () = self.waker.0.notified() => {}
                () = tokio::time::sleep(wait) => {}
            }
        }
    }

    /// Publishes one batch; returns how many rows it published.
    ///
    /// The batch is sent at once (the idempotent producer keeps per-key
    /// order across in-flight sends) and marked published up to the first
    /// failure. No transaction spans the publishing: the store is never
    /// locked while waiting for the broker, and the marking statement
    /// cannot fail for having read an old snapshot (SQLite refuses to
    /// upgrade such a read transaction, which would republish the batch).
    async fn pass(&self) -> Result<u64, PassError> {
        if !self.lease().await? {
            return Ok(0);
        }
        let rows = entity::Entity::find()
            .filter(entity::Column::PublishedAt.is_null())
            .order_by_asc(entity::Column::Seq)
            .limit(self.settings.batch)
            .all(&self.db)
            .await?;
        let sends = rows.iter().map(|row| {
            let topic = Topic::from_name(&row.topic)
                .map_or_else(|| row.topic.clone(), |t| self.bus.topic(t));
            let payload = row.payload.clone().into_bytes();
            async move { self.bus.publish_raw(&topic, &row.event_key, payload).await }
        });
        let results = futures::future::join_all(sends).await;
        let sent = results.iter().take_while(|r| r.is_ok()).count();
        if let Some(last) = sent.checked_sub(1).map(|i| rows[i].seq) {
            entity::Entity::update_many()
                .col_expr(
                    entity::Column::PublishedAt,
                    Expr::value(crate::clock::now()),
                )
                .filter(entity::Column::PublishedAt.is_null())
                .filter(entity::Column::Seq.lte(last))
                .exec(&self.db)
                .await?;
        }
        let failure = results.into_iter().find_map(Result::err);
        if let (Some(err), Some(row)) = (&failure, rows.get(sent)) {
            // Kept on the row for whoever inspects a stuck outbox.
            entity::Entity::update_many()
                .col_expr(
                    entity::Column::Attempts,
                    Expr::col(entity::Column::Attempts).add(1),
                )
                .col_expr(entity::Column::LastError, Expr::value(err.to_string()))
                .filter(entity::Column::Seq.eq(row.seq))
                .exec(&self.db)
                .await?;
        }
        if sent > 0 {
            crate::metrics::record_outbox_published(self.service, sent as u64);
        }
        match failure {
            Some(err) => Err(err.into()),
            None => Ok(sent as u64),
        }
    }

    async fn cleanup(&self) -> Result<(), DbErr> {
        let retention = chrono::Duration::from_std(self.settings.retention).unwrap_or_default();
        let before = crate::clock::now() - retention;
        entity::Entity::delete_many()
            .filter(entity::Column::PublishedAt.lt(before))
            .exec(&self.db)
            .await?;
        super::inbox::cleanup(&self.db, before).await
    }

    /// Rows not yet published (tests and health).
    pub async fn pending(db: &DatabaseConnection) -> Result<u64, DbErr> {
        entity::Entity::find()
            .filter(entity::Column::PublishedAt.is_null())
            .count(db)
            .await
    }
}

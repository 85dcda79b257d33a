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
//! `event_outbox_lease`, renewed before every batch, taken over when it
//! expires), so order holds without locking the outbox rows that use cases
//! insert.
//!
//! An idle relay writes nothing. It sleeps until a commit wakes it — the
//! in-process [`RelayWaker`] for this process's commits and, on
//! PostgreSQL, a `LISTEN` on the channel the outbox trigger notifies for
//! any process's commits — or until a slow poll, which only reads. It
//! takes the lease only when a read found pending rows, renews it only
//! while batches keep coming, and lets it expire when the outbox is empty
//! (the holder keeps it meanwhile: its next burst costs no takeover).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use sea_orm::entity::prelude::*;
use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{
    ActiveValue::Set, ConnectionTrait, DatabaseBackend, DatabaseConnection, QueryOrder, QuerySelect,
};
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
/// transaction, keyed by its subject (one aggregate's events in order).
pub async fn enqueue(
    txn: &impl ConnectionTrait,
    topic: Topic,
    event: &CloudEvent,
) -> Result<(), DbErr> {
    enqueue_keyed(txn, topic, event, &event.subject).await
}

/// [`enqueue`] under another Kafka key than the subject: events that share
/// `key` go to one partition and stay in order, e.g. all of one user's
/// payments, not only each payment's own events.
pub async fn enqueue_keyed(
    txn: &impl ConnectionTrait,
    topic: Topic,
    event: &CloudEvent,
    key: &str,
) -> Result<(), DbErr> {
    let payload = String::from_utf8(event.to_bytes())
        .map_err(|err| DbErr::Custom(format!("event {} is not UTF-8: {err}", event.id)))?;
    entity::Entity::insert(entity::ActiveModel {
        event_id: Set(event.id.clone()),
        topic: Set(topic.name().to_owned()),
        event_key: Set(key.to_owned()),
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
    /// How often an idle relay looks for rows nobody woke it for (another
    /// replica's commits on a store that cannot notify, rows left by a
    /// crash), and how often a relay that found rows under another
    /// replica's lease looks again. A look is a read.
    pub poll_interval: Duration,
    /// The same while PostgreSQL notifications wake the relay: only a
    /// safety net then.
    pub notified_poll_interval: Duration,
    /// First retry delay after a failure; doubles up to `max_backoff`.
    pub min_backoff: Duration,
    /// Longest retry delay.
    pub max_backoff: Duration,
    /// How long published rows are kept (for inspection) before deletion.
    pub retention: Duration,
    /// How often rows past `retention` are looked for (a read; deleted
    /// only when there are some).
    pub cleanup_interval: Duration,
    /// How long a relay's lease lasts without renewal (a dead replica's
    /// relay is replaced after this).
    pub lease: Duration,
}

impl Default for RelaySettings {
    fn default() -> Self {
        Self {
            batch: 100,
            poll_interval: Duration::from_secs(2),
            notified_poll_interval: Duration::from_secs(30),
            min_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(5),
            retention: Duration::from_secs(24 * 3600),
            cleanup_interval: Duration::from_secs(60),
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

/// What one pass found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pass {
    /// Nothing pending: nothing was written.
    Idle,
    /// Rows are pending but another replica's relay holds the lease
    /// (it publishes them): nothing was written.
    Contended,
    /// Published a whole batch; more may wait.
    Full,
    /// Published the last pending rows.
    Drained,
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
    /// replica's relay holds it. Reads first, so a relay that cannot have
    /// the lease writes nothing; the write itself is conditional, so two
    /// relays racing for an expired lease cannot both win.
    async fn lease(&self) -> Result<bool, DbErr> {
        let now = crate::clock::now();
        let current = lease::Entity::find_by_id(super::schema::RELAY_LEASE)
            .one(&self.db)
            .await?;
        if current.is_some_and(|l| l.holder != self.id && l.expires_at >= now) {
            return Ok(false);
        }
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
        let notified = Arc::new(AtomicBool::new(false));
        let listener = self.listen(notified.clone(), stop.child_token());
        let mut backoff = Backoff::new(self.settings.min_backoff, self.settings.max_backoff);
        let mut next_cleanup = Instant::now() + self.settings.cleanup_interval;
        loop {
            let wait = match self.pass().await {
                Ok(found) => {
                    backoff.reset();
                    match found {
                        Pass::Full => continue, // more are waiting
                        // Rows committed during the pass woke the waker
                        // (or notified): the wait below ends at once.
                        Pass::Idle | Pass::Drained if notified.load(Ordering::Relaxed) => {
                            self.settings.notified_poll_interval
                        }
                        Pass::Idle | Pass::Drained | Pass::Contended => self.settings.poll_interval,
                    }
                }
                Err(err) => {
                    let wait = backoff.next_delay();
                    tracing::warn!(service = self.service, error = %err, retry_in = ?wait, "outbox relay cannot publish; retrying");
                    crate::metrics::record_outbox_failure(self.service);
                    wait
                }
            };
            if Instant::now() >= next_cleanup {
                next_cleanup = Instant::now() + self.settings.cleanup_interval;
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
                    if let Some(listener) = listener {
                        let _ = listener.await;
                    }
                    return;
                }
                () = self.waker.0.notified() => {}
                () = tokio::time::sleep(wait) => {}
            }
        }
    }

    /// On PostgreSQL, a task that wakes this relay whenever any process
    /// commits outbox rows to the store (`LISTEN` on the channel the
    /// outbox trigger notifies), and sets `notified` while it listens.
    /// `None` on other backends: their relays poll.
    fn listen(
        &self,
        notified: Arc<AtomicBool>,
        stop: CancellationToken,
    ) -> Option<tokio::task::JoinHandle<()>> {
        if self.db.get_database_backend() != DatabaseBackend::Postgres {
            return None;
        }
        // A pool of its own: the listening connection is held for the
        // relay's life and must not take one of the service's.
        let options = self.db.get_postgres_connection_pool().connect_options();
        let pool = sea_orm::sqlx::postgres::PgPoolOptions::new()
            .max_connections(1)
            .max_lifetime(None)
            .idle_timeout(None)
            .connect_lazy_with((*options).clone());
        let waker = self.waker.clone();
        let service = self.service;
        let (min, max) = (self.settings.min_backoff, self.settings.max_backoff);
        Some(tokio::spawn(async move {
            let mut backoff = Backoff::new(min, max);
            loop {
                let failure = listen_until_failure(&pool, &waker, &notified, &stop).await;
                notified.store(false, Ordering::Relaxed);
                let Err(err) = failure else {
                    return; // stopped
                };
                // Commits may have gone unheard: look now, then poll fast
                // until listening again.
                waker.wake();
                let wait = backoff.next_delay();
                tracing::warn!(service, error = %err, retry_in = ?wait, "outbox relay cannot listen for commits; polling meanwhile");
                tokio::select! {
                    () = stop.cancelled() => return,
                    () = tokio::time::sleep(wait) => {}
                }
            }
        }))
    }

    /// Publishes one batch if there are pending rows and this relay may;
    /// writes nothing otherwise.
    ///
    /// The batch is sent at once (the idempotent producer keeps per-key
    /// order across in-flight sends) and marked published up to the first
    /// failure. No transaction spans the publishing: the store is never
    /// locked while waiting for the broker, and the marking statement
    /// cannot fail for having read an old snapshot (SQLite refuses to
    /// upgrade such a read transaction, which would republish the batch).
    async fn pass(&self) -> Result<Pass, PassError> {
        let pending = entity::Entity::find()
            .select_only()
            .column(entity::Column::Seq)
            .filter(entity::Column::PublishedAt.is_null())
            .limit(1)
            .into_tuple::<i64>()
            .one(&self.db)
            .await?;
        if pending.is_none() {
            return Ok(Pass::Idle);
        }
        if !self.lease().await? {
            return Ok(Pass::Contended);
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
        if sent > 0 {
            // By seq, not "up to the last one": a row whose transaction
            // took its seq earlier but committed after the read (PostgreSQL
            // and MariaDB hand out seqs before commit) was not sent.
            entity::Entity::update_many()
                .col_expr(
                    entity::Column::PublishedAt,
                    Expr::value(crate::clock::now()),
                )
                .filter(entity::Column::PublishedAt.is_null())
                .filter(entity::Column::Seq.is_in(rows[..sent].iter().map(|row| row.seq)))
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
            None if sent as u64 == self.settings.batch => Ok(Pass::Full),
            None => Ok(Pass::Drained),
        }
    }

    /// Deletes published rows and inbox records past retention, if there
    /// are any (looked for with a read first, so an idle store is not
    /// written to).
    async fn cleanup(&self) -> Result<(), DbErr> {
        let retention = chrono::Duration::from_std(self.settings.retention).unwrap_or_default();
        let before = crate::clock::now() - retention;
        let old = entity::Entity::find()
            .select_only()
            .column(entity::Column::Seq)
            .filter(entity::Column::PublishedAt.lt(before))
            .limit(1)
            .into_tuple::<i64>()
            .one(&self.db)
            .await?;
        if old.is_some() {
            entity::Entity::delete_many()
                .filter(entity::Column::PublishedAt.lt(before))
                .exec(&self.db)
                .await?;
        }
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

/// Listens on the outbox channel with one connection of `pool`, waking
/// `waker` for every notification, until `stop` (`Ok`) or the connection
/// fails in a way it cannot recover from by itself (`Err`).
async fn listen_until_failure(
    pool: &sea_orm::sqlx::PgPool,
    waker: &RelayWaker,
    notified: &AtomicBool,
    stop: &CancellationToken,
) -> Result<(), sea_orm::sqlx::Error> {
    let mut listener = sea_orm::sqlx::postgres::PgListener::connect_with(pool).await?;
    listener.listen(super::schema::OUTBOX_CHANNEL).await?;
    notified.store(true, Ordering::Relaxed);
    // Anything committed before the LISTEN took effect was not announced.
    waker.wake();
    loop {
        tokio::select! {
            () = stop.cancelled() => return Ok(()),
            received = listener.try_recv() => match received? {
                Some(_) => waker.wake(),
                // The connection dropped and was re-established:
                // notifications in between are lost, so look now.
                None => waker.wake(),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    //! The relay on real stores: quiet when idle, woken by other
    //! processes' commits, one publisher at a time.

    use std::collections::HashMap;
    use std::sync::Mutex;
    use std::sync::atomic::AtomicUsize;

    use futures::future::BoxFuture;
    use sea_orm::TransactionTrait;
    use sea_orm_migration::prelude::*;
    use serde_json::json;

    use super::*;
    use crate::db::Database;
    use crate::events::memory::MemoryTransport;
    use crate::events::{BusError, Start, Subscription, Transport};
    use crate::settings::DatabaseSettings;
    use crate::testkit::{TempBackend, TempDatabase};

    struct Migrator;
    impl MigratorTrait for Migrator {
        fn migrations() -> Vec<Box<dyn MigrationTrait>> {
            crate::events::schema::migrations()
        }
    }

    /// A fresh, migrated store on `backend`.
    async fn store(backend: TempBackend) -> (TempDatabase, Database) {
        let temp = TempDatabase::create(backend).await;
        let db = connect(&temp).await;
        Migrator::up(&db.conn, None).await.unwrap();
        (temp, db)
    }

    /// Another pool on the same database: what another replica has.
    async fn connect(temp: &TempDatabase) -> Database {
        let settings = DatabaseSettings {
            url: temp.url.clone(),
            max_connections: 4,
            acquire_timeout: Duration::from_secs(10),
        };
        Database::connect(&settings, "outbox-test").await.unwrap()
    }

    /// Commits one event `{ "n": n }` keyed `key`, waking nobody.
    async fn commit(db: &DatabaseConnection, key: &str, n: usize) {
        let txn = db.begin().await.unwrap();
        let event = CloudEvent::new("/t", "T", key, &json!({ "n": n })).unwrap();
        enqueue(&txn, Topic::Payment, &event).await.unwrap();
        txn.commit().await.unwrap();
    }

    /// The next `count` events of `tail` as (key, n).
    async fn receive(
        tail: &mut Box<dyn Subscription>,
        count: usize,
        within: Duration,
    ) -> Vec<(String, u64)> {
        let mut seen = Vec::with_capacity(count);
        for _ in 0..count {
            let delivery = tokio::time::timeout(within, tail.next())
                .await
                .unwrap_or_else(|_| {
                    panic!("only {} of {count} events published in time", seen.len())
                })
                .unwrap();
            let event = delivery.event.unwrap();
            let n = event.data::<serde_json::Value>().unwrap()["n"]
                .as_u64()
                .unwrap();
            seen.push((event.subject, n));
        }
        seen
    }

    fn quick() -> RelaySettings {
        RelaySettings {
            poll_interval: Duration::from_millis(50),
            notified_poll_interval: Duration::from_millis(50),
            cleanup_interval: Duration::from_millis(50),
            lease: Duration::from_millis(500),
            ..RelaySettings::default()
        }
    }

    /// After publishing, a relay that polls every 50 ms (and looks for rows
    /// to clean up as often) runs 2 s — four lease lengths — without one
    /// write statement, then publishes again when woken.
    async fn an_idle_relay_writes_nothing(backend: TempBackend) {
        let (_temp, db) = store(backend).await;
        let bus = EventBus::in_process();
        bus.ensure_topics().await.unwrap();
        let mut tail = bus.subscribe(&[Topic::Payment], Start::Live).await.unwrap();
        let waker = RelayWaker::default();
        let stop = CancellationToken::new();
        let relay = Relay::new("t", db.conn.clone(), bus.clone(), waker.clone(), quick());
        let relay = tokio::spawn(relay.run(stop.clone()));

        for n in 0..3 {
            commit(&db.conn, "p1", n).await;
        }
        waker.wake();
        let seen = receive(&mut tail, 3, Duration::from_secs(5)).await;
        assert_eq!(seen.iter().map(|(_, n)| *n).collect::<Vec<_>>(), [0, 1, 2]);
        // Let the pass that marked them published finish.
        tokio::time::sleep(Duration::from_millis(300)).await;

        let (statements, writes) = (db.statements.get(), db.statements.writes());
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert_eq!(db.statements.writes(), writes, "an idle relay wrote");
        assert!(
            db.statements.get() >= statements + 10,
            "the relay did not look for rows while idle ({} statements)",
            db.statements.get() - statements
        );

        // The lease expired meanwhile; the next commit takes it again.
        commit(&db.conn, "p1", 3).await;
        waker.wake();
        assert_eq!(
            receive(&mut tail, 1, Duration::from_secs(5)).await,
            [("p1".to_owned(), 3)]
        );
        stop.cancel();
        relay.await.unwrap();
        assert_eq!(Relay::pending(&db.conn).await.unwrap(), 0);
    }

    #[tokio::test]
    async fn an_idle_relay_writes_nothing_on_sqlite() {
        an_idle_relay_writes_nothing(TempBackend::Sqlite).await;
    }

    #[tokio::test]
    async fn an_idle_relay_writes_nothing_on_postgres() {
        an_idle_relay_writes_nothing(TempBackend::Postgres).await;
    }

    #[tokio::test]
    async fn an_idle_relay_writes_nothing_on_mariadb() {
        an_idle_relay_writes_nothing(TempBackend::MariaDb).await;
    }

    /// On PostgreSQL a commit through another pool (another replica),
    /// which wakes nothing in this process, is published at once although
    /// the relay would not poll for a minute.
    #[tokio::test]
    async fn a_commit_by_another_process_wakes_the_relay_on_postgres() {
        let (temp, db) = store(TempBackend::Postgres).await;
        let other = connect(&temp).await;
        let bus = EventBus::in_process();
        bus.ensure_topics().await.unwrap();
        let mut tail = bus.subscribe(&[Topic::Payment], Start::Live).await.unwrap();
        let settings = RelaySettings {
            poll_interval: Duration::from_secs(60),
            notified_poll_interval: Duration::from_secs(60),
            ..RelaySettings::default()
        };
        let stop = CancellationToken::new();
        let relay = Relay::new("t", db.conn.clone(), bus, RelayWaker::default(), settings);
        let relay = tokio::spawn(relay.run(stop.clone()));
        // Past the relay's first look and its LISTEN.
        tokio::time::sleep(Duration::from_millis(500)).await;

        for round in 0..3 {
            let started = Instant::now();
            commit(&other.conn, "p1", round).await;
            assert_eq!(
                receive(&mut tail, 1, Duration::from_secs(5)).await,
                [("p1".to_owned(), round as u64)]
            );
            assert!(
                started.elapsed() < Duration::from_secs(2),
                "{:?}",
                started.elapsed()
            );
        }
        // A rolled-back transaction notifies nobody and publishes nothing.
        let txn = other.conn.begin().await.unwrap();
        let lost = CloudEvent::new("/t", "T", "p1", &json!({ "n": 99 })).unwrap();
        enqueue(&txn, Topic::Payment, &lost).await.unwrap();
        txn.rollback().await.unwrap();
        commit(&other.conn, "p1", 3).await;
        assert_eq!(
            receive(&mut tail, 1, Duration::from_secs(5)).await,
            [("p1".to_owned(), 3)]
        );
        stop.cancel();
        relay.await.unwrap();
    }

    /// Where no notification exists (MariaDB), the relay's read-only poll
    /// finds another replica's commit within its interval.
    #[tokio::test]
    async fn a_commit_by_another_process_is_found_by_the_poll_on_mariadb() {
        let (temp, db) = store(TempBackend::MariaDb).await;
        let other = connect(&temp).await;
        let bus = EventBus::in_process();
        bus.ensure_topics().await.unwrap();
        let mut tail = bus.subscribe(&[Topic::Payment], Start::Live).await.unwrap();
        let settings = RelaySettings {
            poll_interval: Duration::from_millis(200),
            ..RelaySettings::default()
        };
        let stop = CancellationToken::new();
        let relay = Relay::new("t", db.conn.clone(), bus, RelayWaker::default(), settings);
        let relay = tokio::spawn(relay.run(stop.clone()));
        commit(&other.conn, "p1", 7).await;
        assert_eq!(
            receive(&mut tail, 1, Duration::from_secs(3)).await,
            [("p1".to_owned(), 7)]
        );
        stop.cancel();
        relay.await.unwrap();
    }

    /// Who is publishing right now, seen by the bus.
    #[derive(Default)]
    struct Publishers {
        in_flight: Mutex<[usize; 2]>,
        /// A publish that started while the other relay had one in flight.
        overlaps: AtomicUsize,
        published: [AtomicUsize; 2],
    }

    /// The in-process bus, telling [`Publishers`] which relay publishes.
    struct Watched {
        inner: Arc<MemoryTransport>,
        relay: usize,
        publishers: Arc<Publishers>,
    }

    impl Transport for Watched {
        fn ensure_topics<'a>(
            &'a self,
            topics: &'a [String],
        ) -> BoxFuture<'a, Result<(), BusError>> {
            self.inner.ensure_topics(topics)
        }

        fn publish<'a>(
            &'a self,
            topic: &'a str,
            key: &'a str,
            payload: Vec<u8>,
        ) -> BoxFuture<'a, Result<(), BusError>> {
            Box::pin(async move {
                {
                    let mut in_flight = self.publishers.in_flight.lock().unwrap();
                    if in_flight[1 - self.relay] > 0 {
                        self.publishers.overlaps.fetch_add(1, Ordering::SeqCst);
                    }
                    in_flight[self.relay] += 1;
                }
                // Widen the window in which another publisher would show.
                tokio::time::sleep(Duration::from_millis(2)).await;
                let result = self.inner.publish(topic, key, payload).await;
                self.publishers.in_flight.lock().unwrap()[self.relay] -= 1;
                self.publishers.published[self.relay].fetch_add(1, Ordering::SeqCst);
                result
            })
        }

        fn subscribe<'a>(
            &'a self,
            topics: &'a [String],
            start: Start,
        ) -> BoxFuture<'a, Result<Box<dyn Subscription>, BusError>> {
            self.inner.subscribe(topics, start)
        }
    }

    /// Two replicas' relays over one PostgreSQL store while four writers
    /// commit: never two publishers at once, every event once, each key in
    /// commit order; when the publishing one stops, the other takes over.
    #[tokio::test]
    async fn two_relays_never_publish_concurrently() {
        const WRITERS: usize = 4;
        const EACH: usize = 60;
        let (temp, db) = store(TempBackend::Postgres).await;
        let inner = Arc::new(MemoryTransport::default());
        let observer = EventBus::new(inner.clone(), "", "test");
        observer.ensure_topics().await.unwrap();
        let mut tail = observer
            .subscribe(&[Topic::Payment], Start::Live)
            .await
            .unwrap();
        let publishers = Arc::new(Publishers::default());
        let settings = RelaySettings {
            batch: 5,
            poll_interval: Duration::from_millis(50),
            notified_poll_interval: Duration::from_millis(500),
            lease: Duration::from_secs(2),
            ..RelaySettings::default()
        };
        let mut relays = Vec::new();
        for relay in 0..2 {
            let pool = connect(&temp).await;
            let bus = EventBus::new(
                Arc::new(Watched {
                    inner: inner.clone(),
                    relay,
                    publishers: publishers.clone(),
                }),
                "",
                "test",
            );
            let stop = CancellationToken::new();
            let task = Relay::new(
                "t",
                pool.conn.clone(),
                bus,
                RelayWaker::default(),
                settings.clone(),
            );
            relays.push((stop.clone(), tokio::spawn(task.run(stop))));
        }

        let writers: Vec<_> = (0..WRITERS)
            .map(|w| {
                let db = db.conn.clone();
                tokio::spawn(async move {
                    for n in 0..EACH {
                        commit(&db, &format!("w{w}"), n).await;
                    }
                })
            })
            .collect();
        let seen = receive(&mut tail, WRITERS * EACH, Duration::from_secs(20)).await;
        for writer in writers {
            writer.await.unwrap();
        }
        assert_eq!(
            publishers.overlaps.load(Ordering::SeqCst),
            0,
            "two relays published at once"
        );
        let mut by_key: HashMap<String, Vec<u64>> = HashMap::new();
        for (key, n) in seen {
            by_key.entry(key).or_default().push(n);
        }
        for w in 0..WRITERS {
            assert_eq!(
                by_key[&format!("w{w}")],
                (0..EACH as u64).collect::<Vec<_>>(),
                "w{w}: each event once, in commit order"
            );
        }

        // Stop the relay that published most (it held the lease last, or
        // will get it back); the other takes over once its lease expires.
        let busiest = usize::from(
            publishers.published[1].load(Ordering::SeqCst)
                > publishers.published[0].load(Ordering::SeqCst),
        );
        let before = publishers.published[1 - busiest].load(Ordering::SeqCst);
        let (stop, task) = &mut relays[busiest];
        stop.cancel();
        task.await.unwrap();
        for n in 0..10 {
            commit(&db.conn, "after", n).await;
        }
        let after = receive(&mut tail, 10, Duration::from_secs(10)).await;
        assert_eq!(
            after.iter().map(|(_, n)| *n).collect::<Vec<_>>(),
            (0..10).collect::<Vec<_>>()
        );
        assert_eq!(
            publishers.published[1 - busiest].load(Ordering::SeqCst),
            before + 10,
            "the other relay did not take over"
        );
        assert_eq!(publishers.overlaps.load(Ordering::SeqCst), 0);
        let (stop, task) = &mut relays[1 - busiest];
        stop.cancel();
        task.await.unwrap();
        assert_eq!(Relay::pending(&db.conn).await.unwrap(), 0);
    }
}

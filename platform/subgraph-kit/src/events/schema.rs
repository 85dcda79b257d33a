//! The event tables every store that publishes or consumes events has,
//! as one migration each subgraph's migrator includes.
//!
//! * `event_outbox` — events written in the same transaction as the state
//!   change they describe, in commit order (`seq`), until the relay has
//!   published them;
//! * `event_inbox` — the ids of events a consumer has applied, written in
//!   the same transaction as the effect, so a redelivery is a no-op;
//! * `event_outbox_lease` — one row naming the replica whose relay
//!   publishes, until when (replicas take over from a dead one);
//! * on PostgreSQL, a trigger that sends a notification on
//!   [`OUTBOX_CHANNEL`] when a transaction that wrote outbox rows commits,
//!   so every replica's relay wakes on any process's commit.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::DatabaseBackend;

use crate::migration::instant;

/// Every event-table migration, oldest first, for a subgraph's migrator.
pub fn migrations() -> Vec<Box<dyn MigrationTrait>> {
    vec![
        Box::new(CreateEventTables),
        Box::new(CreateOutboxLease),
        Box::new(NotifyOutboxCommits),
    ]
}

/// The PostgreSQL `LISTEN` channel told of committed outbox rows.
pub(crate) const OUTBOX_CHANNEL: &str = "shopgraph_event_outbox";

/// On PostgreSQL, makes every insert into `event_outbox` notify
/// [`OUTBOX_CHANNEL`] (once per statement; PostgreSQL delivers it at
/// commit, and never for a rolled-back transaction). Other backends have
/// no such thing: their relays poll, reading only.
pub struct NotifyOutboxCommits;

impl MigrationName for NotifyOutboxCommits {
    fn name(&self) -> &str {
        "m20261203_000102_notify_outbox_commits"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for NotifyOutboxCommits {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if manager.get_database_backend() != DatabaseBackend::Postgres {
            return Ok(());
        }
        let db = manager.get_connection();
        db.execute_unprepared(&format!(
            "CREATE OR REPLACE FUNCTION shopgraph_event_outbox_notify() RETURNS trigger \
             LANGUAGE plpgsql AS $$ BEGIN PERFORM pg_notify('{OUTBOX_CHANNEL}', ''); \
             RETURN NULL; END $$"
        ))
        .await?;
        db.execute_unprepared("DROP TRIGGER IF EXISTS event_outbox_notify ON event_outbox")
            .await?;
        db.execute_unprepared(
            "CREATE TRIGGER event_outbox_notify AFTER INSERT ON event_outbox \
             FOR EACH STATEMENT EXECUTE FUNCTION shopgraph_event_outbox_notify()",
        )
        .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if manager.get_database_backend() != DatabaseBackend::Postgres {
            return Ok(());
        }
        let db = manager.get_connection();
        db.execute_unprepared("DROP TRIGGER IF EXISTS event_outbox_notify ON event_outbox")
            .await?;
        db.execute_unprepared("DROP FUNCTION IF EXISTS shopgraph_event_outbox_notify()")
            .await?;
        Ok(())
    }
}

/// Creates `event_outbox` and `event_inbox`.
pub struct CreateEventTables;

/// Creates `event_outbox_lease` with its one row.
pub struct CreateOutboxLease;

impl MigrationName for CreateOutboxLease {
    fn name(&self) -> &str {
        "m20261122_000101_create_outbox_lease"
    }
}

#[derive(DeriveIden, Clone, Copy)]
pub(crate) enum EventOutboxLease {
    Table,
    Name,
    Holder,
    ExpiresAt,
}

/// The name of the relay lease row.
pub(crate) const RELAY_LEASE: &str = "relay";

#[async_trait::async_trait]
impl MigrationTrait for CreateOutboxLease {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(EventOutboxLease::Table)
                    .if_not_exists()
                    .col(
                        ColumnDef::new(EventOutboxLease::Name)
                            .string_len(50)
                            .not_null()
                            .primary_key(),
                    )
                    .col(
                        ColumnDef::new(EventOutboxLease::Holder)
                            .string_len(64)
                            .not_null(),
                    )
                    .col(instant(manager, EventOutboxLease::ExpiresAt, false))
                    .to_owned(),
            )
            .await?;
        let expired = chrono::DateTime::<chrono::Utc>::UNIX_EPOCH;
        manager
            .exec_stmt(
                Query::insert()
                    .into_table(EventOutboxLease::Table)
                    .columns([
                        EventOutboxLease::Name,
                        EventOutboxLease::Holder,
                        EventOutboxLease::ExpiresAt,
                    ])
                    .values_panic([RELAY_LEASE.into(), "".into(), expired.into()])
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(
                Table::drop()
                    .table(EventOutboxLease::Table)
                    .if_exists()
                    .to_owned(),
            )
            .await
    }
}

impl MigrationName for CreateEventTables {
    fn name(&self) -> &str {
        "m20261122_000100_create_event_tables"
    }
}

#[derive(DeriveIden, Clone, Copy)]
pub(crate) enum EventOutbox {
    Table,
    Seq,
    EventId,
    Topic,
    EventKey,
    Payload,
    CreatedAt,
    PublishedAt,
    Attempts,
    LastError,
}

#[derive(DeriveIden, Clone, Copy)]
pub(crate) enum EventInbox {
    Table,
    Consumer,
    EventId,
    ProcessedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for CreateEventTables {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let mut seq = ColumnDef::new(EventOutbox::Seq);
        match manager.get_database_backend() {
            // SQLite's AUTOINCREMENT works on INTEGER PRIMARY KEY only.
            DatabaseBackend::Sqlite => seq.integer(),
            _ => seq.big_integer(),
        };
        seq.not_null().auto_increment().primary_key();
        manager
            .create_table(
                Table::create()
                    .table(EventOutbox::Table)
                    .if_not_exists()
                    .col(seq)
                    .col(
                        ColumnDef::new(EventOutbox::EventId)
                            .string_len(64)
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(EventOutbox::Topic)
                            .string_len(100)
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(EventOutbox::EventKey)
                            .string_len(200)
                            .not_null(),
                    )
                    .col(ColumnDef::new(EventOutbox::Payload).text().not_null())
                    .col(instant(manager, EventOutbox::CreatedAt, false))
                    .col(instant(manager, EventOutbox::PublishedAt, true))
                    .col(
                        ColumnDef::new(EventOutbox::Attempts)
                            .integer()
                            .not_null()
                            .default(0),
                    )
                    .col(ColumnDef::new(EventOutbox::LastError).text().null())
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("event_outbox_pending")
                    .table(EventOutbox::Table)
                    .col(EventOutbox::PublishedAt)
                    .col(EventOutbox::Seq)
                    .if_not_exists()
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(EventInbox::Table)
                    .if_not_exists()
                    .col(
                        ColumnDef::new(EventInbox::Consumer)
                            .string_len(100)
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(EventInbox::EventId)
                            .string_len(64)
                            .not_null(),
                    )
                    .col(instant(manager, EventInbox::ProcessedAt, false))
                    .primary_key(
                        Index::create()
                            .col(EventInbox::Consumer)
                            .col(EventInbox::EventId),
                    )
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(
                Table::drop()
                    .table(EventInbox::Table)
                    .if_exists()
                    .to_owned(),
            )
            .await?;
        manager
            .drop_table(
                Table::drop()
                    .table(EventOutbox::Table)
                    .if_exists()
                    .to_owned(),
            )
            .await
    }
}

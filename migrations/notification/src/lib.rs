//! # notification-migration
//!
//! The schema of the notification subgraph's store. Runs on PostgreSQL
//! (production), SQLite (embedded) and MariaDB; the bookkeeping table is
//! `notification_seaql_migrations`.

pub use sea_orm_migration::MigratorTrait;
use sea_orm_migration::prelude::*;

mod m20261122_000001_create_notifications;
mod m20261203_000002_add_delivery_claims;
mod m20261203_000003_add_user_sequences;

/// The notification store's migrations, oldest first.
pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        let mut migrations: Vec<Box<dyn MigrationTrait>> =
            vec![Box::new(m20261122_000001_create_notifications::Migration)];
        // The event tables (outbox, inbox, relay lease) every store has.
        migrations.extend(subgraph_kit::events::schema::migrations());
        migrations.push(Box::new(m20261203_000002_add_delivery_claims::Migration));
        migrations.push(Box::new(m20261203_000003_add_user_sequences::Migration));
        migrations
    }

    fn migration_table_name() -> DynIden {
        "notification_seaql_migrations".into_iden()
    }
}

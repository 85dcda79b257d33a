//! # payment-migration
//!
//! The schema of the payment subgraph's store: payments with their
//! idempotency keys and order fingerprints, the basket lines they were
//! created from, and their refunds. Runs on
//! MariaDB/MySQL (production) and SQLite (embedded); the bookkeeping table is
//! `payment_seaql_migrations`.

pub use sea_orm_migration::MigratorTrait;
use sea_orm_migration::prelude::*;

mod m20261122_000001_create_payments;
mod m20261203_000001_add_order_fingerprint;
mod m20261203_000002_create_refunds;

/// The payment store's migrations, oldest first.
pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        let mut migrations: Vec<Box<dyn MigrationTrait>> =
            vec![Box::new(m20261122_000001_create_payments::Migration)];
        // The event tables (outbox, inbox, relay lease) every store has.
        migrations.extend(subgraph_kit::events::schema::migrations());
        // Later changes of payment's own tables come after the event tables,
        // so stores migrated before them only apply what is new.
        migrations.push(Box::new(m20261203_000001_add_order_fingerprint::Migration));
        migrations.push(Box::new(m20261203_000002_create_refunds::Migration));
        migrations
    }

    fn migration_table_name() -> DynIden {
        "payment_seaql_migrations".into_iden()
    }
}

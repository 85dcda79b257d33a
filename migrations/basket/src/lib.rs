//! # basket-migration
//!
//! The schema of the basket subgraph's store: one basket per user and its
//! items (snapshots of product name and price taken when added), and the
//! checkout lock with the lines each checkout locked. Runs on
//! PostgreSQL (production) and SQLite (embedded); the bookkeeping table is
//! `basket_seaql_migrations` so subgraphs can share a database.

pub use sea_orm_migration::MigratorTrait;
use sea_orm_migration::prelude::*;

mod m20261122_000001_create_baskets;
mod m20261203_000001_checkout_lock;

/// The basket store's migrations, oldest first.
pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        let mut migrations: Vec<Box<dyn MigrationTrait>> =
            vec![Box::new(m20261122_000001_create_baskets::Migration)];
        // The event tables (outbox, inbox, relay lease) every store has.
        migrations.extend(subgraph_kit::events::schema::migrations());
        // After the event tables: migrations run in this order and deployed
        // stores have already applied everything above.
        migrations.push(Box::new(m20261203_000001_checkout_lock::Migration));
        migrations
    }

    fn migration_table_name() -> DynIden {
        "basket_seaql_migrations".into_iden()
    }
}

//! # product-migration
//!
//! The schema of the product subgraph's store, as `sea-orm-migration`
//! migrations that run unchanged on PostgreSQL (production) and SQLite
//! (embedded default). Applied at start-up by the subgraph and by
//! `shopgraph migrate product`; applying them again is a no-op.
//!
//! The bookkeeping table is `product_seaql_migrations`, not SeaORM's default,
//! so several subgraphs may share one database without reading each other's
//! migration history.

pub use sea_orm_migration::MigratorTrait;
use sea_orm_migration::prelude::*;

mod m20261122_000001_create_products;
mod m20261203_000001_create_stock_reservations;

/// The product store's migrations, oldest first.
pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        let mut migrations: Vec<Box<dyn MigrationTrait>> =
            vec![Box::new(m20261122_000001_create_products::Migration)];
        // The event tables (outbox, inbox, relay lease) every store has.
        migrations.extend(subgraph_kit::events::schema::migrations());
        // Later migrations go after the event tables: a store migrated
        // before them has already applied everything above.
        migrations.push(Box::new(
            m20261203_000001_create_stock_reservations::Migration,
        ));
        migrations
    }

    fn migration_table_name() -> DynIden {
        "product_seaql_migrations".into_iden()
    }
}

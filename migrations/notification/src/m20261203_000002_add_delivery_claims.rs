//! Delivery claims: the scheduler replica that is delivering a notification
//! and until when, so several replicas deliver each one once and a claim
//! left by a replica that died lapses.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::{string_len_null, timestamp_with_time_zone_null};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden, Clone, Copy)]
enum Notifications {
    Table,
    ClaimedBy,
    ClaimedUntil,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // One column per statement: SQLite alters one thing at a time.
        manager
            .alter_table(
                Table::alter()
                    .table(Notifications::Table)
                    .add_column_if_not_exists(string_len_null(Notifications::ClaimedBy, 64))
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Notifications::Table)
                    .add_column_if_not_exists(timestamp_with_time_zone_null(
                        Notifications::ClaimedUntil,
                    ))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for column in [Notifications::ClaimedUntil, Notifications::ClaimedBy] {
            manager
                .alter_table(
                    Table::alter()
                        .table(Notifications::Table)
                        .drop_column(column)
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }
}

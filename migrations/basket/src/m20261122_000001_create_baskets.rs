//! Baskets and their items.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::{
    decimal_len, integer, pk_uuid, string_len, timestamp_with_time_zone, uuid,
};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Baskets {
    Table,
    Id,
    UserId,
    Status,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum BasketItems {
    Table,
    BasketId,
    ProductId,
    ProductName,
    Category,
    Quantity,
    UnitPrice,
    Currency,
    AddedAt,
    UpdatedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Baskets::Table)
                    .if_not_exists()
                    .col(pk_uuid(Baskets::Id))
                    // One basket per user: concurrent first uses create one row.
                    .col(string_len(Baskets::UserId, 200).unique_key())
                    .col(string_len(Baskets::Status, 16))
                    .col(timestamp_with_time_zone(Baskets::CreatedAt))
                    .col(timestamp_with_time_zone(Baskets::UpdatedAt))
                    .to_owned(),
            )
            .await?;
        // The abandonment sweeper scans active baskets by last change.
        manager
            .create_index(
                Index::create()
                    .name("idx_baskets_status_updated_at")
                    .table(Baskets::Table)
                    .col(Baskets::Status)
                    .col(Baskets::UpdatedAt)
                    .if_not_exists()
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(BasketItems::Table)
                    .if_not_exists()
                    .col(uuid(BasketItems::BasketId))
                    .col(uuid(BasketItems::ProductId))
                    .col(string_len(BasketItems::ProductName, 200))
                    .col(string_len(BasketItems::Category, 100))
                    .col(
                        integer(BasketItems::Quantity)
                            .check(Expr::col(BasketItems::Quantity).between(1, 999)),
                    )
                    .col(decimal_len(BasketItems::UnitPrice, 12, 2))
                    .col(string_len(BasketItems::Currency, 3))
                    .col(timestamp_with_time_zone(BasketItems::AddedAt))
                    .col(timestamp_with_time_zone(BasketItems::UpdatedAt))
                    .primary_key(
                        Index::create()
                            .col(BasketItems::BasketId)
                            .col(BasketItems::ProductId),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_basket_items_basket")
                            .from(BasketItems::Table, BasketItems::BasketId)
                            .to(Baskets::Table, Baskets::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(
                Table::drop()
                    .table(BasketItems::Table)
                    .if_exists()
                    .to_owned(),
            )
            .await?;
        manager
            .drop_table(Table::drop().table(Baskets::Table).if_exists().to_owned())
            .await
    }
}

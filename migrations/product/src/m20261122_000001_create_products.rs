//! The catalogue: one row per product, with the indexes the `products`
//! query's filters and keyset sorts use.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::{
    decimal_len, integer, pk_uuid, string_len, string_len_null, text_null, timestamp_with_time_zone,
};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden, Clone, Copy)]
enum Products {
    Table,
    Id,
    Name,
    Description,
    Price,
    Currency,
    StockQuantity,
    Category,
    ImageUrl,
    CreatedAt,
    UpdatedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Products::Table)
                    .if_not_exists()
                    .col(pk_uuid(Products::Id))
                    .col(string_len(Products::Name, 200))
                    .col(text_null(Products::Description))
                    .col(
                        decimal_len(Products::Price, 12, 2)
                            .check(Expr::col(Products::Price).gte(0)),
                    )
                    .col(string_len(Products::Currency, 3))
                    .col(
                        integer(Products::StockQuantity)
                            .check(Expr::col(Products::StockQuantity).gte(0)),
                    )
                    .col(string_len(Products::Category, 100))
                    .col(string_len_null(Products::ImageUrl, 2048))
                    .col(timestamp_with_time_zone(Products::CreatedAt))
                    .col(timestamp_with_time_zone(Products::UpdatedAt))
                    .to_owned(),
            )
            .await?;

        // Keyset pagination orders by (sort key, id): one index per sort.
        let indexes: [(&str, &[Products]); 4] = [
            ("idx_products_name_id", &[Products::Name, Products::Id]),
            ("idx_products_price_id", &[Products::Price, Products::Id]),
            (
                "idx_products_created_at_id",
                &[Products::CreatedAt, Products::Id],
            ),
            (
                "idx_products_category_name",
                &[Products::Category, Products::Name],
            ),
        ];
        for (name, columns) in indexes {
            let mut index = Index::create();
            index.name(name).table(Products::Table).if_not_exists();
            for column in columns {
                index.col(*column);
            }
            manager.create_index(index.to_owned()).await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(Products::Table).if_exists().to_owned())
            .await
    }
}

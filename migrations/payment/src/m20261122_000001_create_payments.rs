//! Payments and their lines.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::{
    boolean, decimal_len, integer, pk_uuid, string_len, string_len_null, text_null, uuid, uuid_null,
};
use subgraph_kit::migration::instant;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden, Clone, Copy)]
enum Payments {
    Table,
    Id,
    UserId,
    BasketId,
    Amount,
    RefundedAmount,
    Currency,
    Status,
    Method,
    Provider,
    ProviderId,
    Description,
    Metadata,
    FailureReason,
    Retryable,
    CardLast4,
    IdempotencyKey,
    RequestFingerprint,
    CreatedAt,
    UpdatedAt,
    ProcessedAt,
    ExpiresAt,
}

#[derive(DeriveIden)]
enum PaymentItems {
    Table,
    PaymentId,
    ProductId,
    ProductName,
    Quantity,
    UnitPrice,
    Currency,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Payments::Table)
                    .if_not_exists()
                    .col(pk_uuid(Payments::Id))
                    .col(string_len(Payments::UserId, 200))
                    .col(uuid_null(Payments::BasketId))
                    .col(
                        decimal_len(Payments::Amount, 12, 2)
                            .check(Expr::col(Payments::Amount).gte(0)),
                    )
                    .col(decimal_len(Payments::RefundedAmount, 12, 2))
                    .col(string_len(Payments::Currency, 3))
                    .col(string_len(Payments::Status, 24))
                    .col(string_len(Payments::Method, 24))
                    .col(string_len(Payments::Provider, 32))
                    .col(string_len_null(Payments::ProviderId, 100))
                    .col(text_null(Payments::Description))
                    .col(text_null(Payments::Metadata))
                    .col(string_len_null(Payments::FailureReason, 500))
                    .col(boolean(Payments::Retryable))
                    .col(string_len_null(Payments::CardLast4, 4))
                    .col(string_len(Payments::IdempotencyKey, 200))
                    .col(string_len(Payments::RequestFingerprint, 300))
                    .col(instant(manager, Payments::CreatedAt, false))
                    .col(instant(manager, Payments::UpdatedAt, false))
                    .col(instant(manager, Payments::ProcessedAt, true))
                    .col(instant(manager, Payments::ExpiresAt, true))
                    .to_owned(),
            )
            .await?;
        let indexes: [(&str, &[Payments], bool); 3] = [
            // Idempotency: one payment per (user, key), even under races.
            (
                "uq_payments_user_idempotency_key",
                &[Payments::UserId, Payments::IdempotencyKey],
                true,
            ),
            (
                "idx_payments_user_created",
                &[Payments::UserId, Payments::CreatedAt, Payments::Id],
                false,
            ),
            (
                "idx_payments_status_expires",
                &[Payments::Status, Payments::ExpiresAt],
                false,
            ),
        ];
        for (name, columns, unique) in indexes {
            let mut index = Index::create();
            index.name(name).table(Payments::Table).if_not_exists();
            if unique {
                index.unique();
            }
            for column in columns {
                index.col(*column);
            }
            manager.create_index(index.to_owned()).await?;
        }
        manager
            .create_table(
                Table::create()
                    .table(PaymentItems::Table)
                    .if_not_exists()
                    .col(uuid(PaymentItems::PaymentId))
                    .col(uuid(PaymentItems::ProductId))
                    .col(string_len(PaymentItems::ProductName, 200))
                    .col(integer(PaymentItems::Quantity))
                    .col(decimal_len(PaymentItems::UnitPrice, 12, 2))
                    .col(string_len(PaymentItems::Currency, 3))
                    .primary_key(
                        Index::create()
                            .col(PaymentItems::PaymentId)
                            .col(PaymentItems::ProductId),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_payment_items_payment")
                            .from(PaymentItems::Table, PaymentItems::PaymentId)
                            .to(Payments::Table, Payments::Id)
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
                    .table(PaymentItems::Table)
                    .if_exists()
                    .to_owned(),
            )
            .await?;
        manager
            .drop_table(Table::drop().table(Payments::Table).if_exists().to_owned())
            .await
    }
}

//! Refunds, one row each, recorded before the provider is asked.
//!
//! A refund is REQUESTED (its id is the provider's idempotency key), then
//! SUCCEEDED — in the same transaction as the payment's refunded total and
//! its `PaymentRefunded` event — or FAILED. The amounts of REQUESTED rows
//! are held back from what may still be refunded, so concurrent refunds
//! cannot together exceed the captured amount.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::{decimal_len, pk_uuid, string_len, string_len_null, uuid};
use subgraph_kit::migration::instant;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Payments {
    Table,
    Id,
}

#[derive(DeriveIden, Clone, Copy)]
enum PaymentRefunds {
    Table,
    Id,
    PaymentId,
    Amount,
    Status,
    ProviderRefundId,
    FailureReason,
    CreatedAt,
    UpdatedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(PaymentRefunds::Table)
                    .if_not_exists()
                    .col(pk_uuid(PaymentRefunds::Id))
                    .col(uuid(PaymentRefunds::PaymentId))
                    .col(
                        decimal_len(PaymentRefunds::Amount, 12, 2)
                            .check(Expr::col(PaymentRefunds::Amount).gt(0)),
                    )
                    .col(string_len(PaymentRefunds::Status, 16))
                    .col(string_len_null(PaymentRefunds::ProviderRefundId, 100))
                    .col(string_len_null(PaymentRefunds::FailureReason, 500))
                    .col(instant(manager, PaymentRefunds::CreatedAt, false))
                    .col(instant(manager, PaymentRefunds::UpdatedAt, false))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_payment_refunds_payment")
                            .from(PaymentRefunds::Table, PaymentRefunds::PaymentId)
                            .to(Payments::Table, Payments::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        let indexes: [(&str, &[PaymentRefunds]); 2] = [
            // A payment's refunds (and the REQUESTED ones held back).
            (
                "idx_payment_refunds_payment",
                &[PaymentRefunds::PaymentId, PaymentRefunds::Status],
            ),
            // The sweeper: REQUESTED refunds left behind by a crash.
            (
                "idx_payment_refunds_status_updated",
                &[PaymentRefunds::Status, PaymentRefunds::UpdatedAt],
            ),
        ];
        for (name, columns) in indexes {
            let mut index = Index::create();
            index
                .name(name)
                .table(PaymentRefunds::Table)
                .if_not_exists();
            for column in columns {
                index.col(*column);
            }
            manager.create_index(index.to_owned()).await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(
                Table::drop()
                    .table(PaymentRefunds::Table)
                    .if_exists()
                    .to_owned(),
            )
            .await
    }
}

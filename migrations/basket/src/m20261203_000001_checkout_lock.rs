//! The checkout lock (issue 18): a basket is locked for one payment while
//! it is being paid, and the lines that payment locked are kept so the
//! completed payment removes exactly what it bought.
//!
//! * `baskets.checkout_payment_id` / `baskets.checkout_locked_until` — the
//!   live lock (both null when unlocked; a lock past its time counts as
//!   absent).
//! * `basket_checkout_lines` — one row per (payment, product): the units
//!   that payment locked. A table rather than a JSON column on `baskets`
//!   because the snapshot must outlive the lock: a lock can expire and be
//!   replaced by a newer checkout's lock while the older payment still
//!   settles late, and that payment must still remove only its own lines.
//!   `settled_at` is set when the payment's outcome was applied (or the
//!   checkout released), so a second report of the same outcome changes
//!   nothing; settled rows are pruned after a retention.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::{integer, string_len, uuid};
use subgraph_kit::migration::instant;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Baskets {
    Table,
    Id,
    CheckoutPaymentId,
    CheckoutLockedUntil,
}

#[derive(DeriveIden)]
enum BasketCheckoutLines {
    Table,
    PaymentId,
    ProductId,
    BasketId,
    Quantity,
    UnitPrice,
    Currency,
    LockedAt,
    SettledAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // One column per statement: SQLite alters one column at a time.
        manager
            .alter_table(
                Table::alter()
                    .table(Baskets::Table)
                    .add_column(ColumnDef::new(Baskets::CheckoutPaymentId).uuid().null())
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Baskets::Table)
                    .add_column(instant(manager, Baskets::CheckoutLockedUntil, true))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(BasketCheckoutLines::Table)
                    .if_not_exists()
                    .col(uuid(BasketCheckoutLines::PaymentId))
                    .col(uuid(BasketCheckoutLines::ProductId))
                    .col(uuid(BasketCheckoutLines::BasketId))
                    .col(
                        integer(BasketCheckoutLines::Quantity)
                            .check(Expr::col(BasketCheckoutLines::Quantity).between(1, 999)),
                    )
                    .col(
                        ColumnDef::new(BasketCheckoutLines::UnitPrice)
                            .decimal_len(12, 2)
                            .not_null(),
                    )
                    .col(string_len(BasketCheckoutLines::Currency, 3))
                    .col(instant(manager, BasketCheckoutLines::LockedAt, false))
                    .col(instant(manager, BasketCheckoutLines::SettledAt, true))
                    .primary_key(
                        Index::create()
                            .col(BasketCheckoutLines::PaymentId)
                            .col(BasketCheckoutLines::ProductId),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_basket_checkout_lines_basket")
                            .from(BasketCheckoutLines::Table, BasketCheckoutLines::BasketId)
                            .to(Baskets::Table, Baskets::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        // The sweeper prunes settled rows by age.
        manager
            .create_index(
                Index::create()
                    .name("idx_basket_checkout_lines_settled_at")
                    .table(BasketCheckoutLines::Table)
                    .col(BasketCheckoutLines::SettledAt)
                    .if_not_exists()
                    .to_owned(),
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(
                Table::drop()
                    .table(BasketCheckoutLines::Table)
                    .if_exists()
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Baskets::Table)
                    .drop_column(Baskets::CheckoutLockedUntil)
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Baskets::Table)
                    .drop_column(Baskets::CheckoutPaymentId)
                    .to_owned(),
            )
            .await
    }
}

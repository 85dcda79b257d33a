//! Stock reservations: units a checkout holds between its reserve call and
//! the payment's outcome.
//!
//! Two tables, a header and its lines, rather than one row per
//! (reservation, product): a reservation's status moves as one
//! (`RESERVED → SOLD | RELEASED`), and with the status on one header row
//! that move is a single conditional `UPDATE ... WHERE status = 'RESERVED'`
//! that concurrent settlers (the payment's event, the sweeper, a
//! compensation) cannot both win. The lines carry what was reserved per
//! product, with the price and name the checkout saw.
//!
//! Lines do not reference `products`: a product may be deleted while one of
//! its reservations is still open, and the reservation must keep its record.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::{decimal_len, integer, pk_uuid, string_len, uuid};
use subgraph_kit::migration::instant;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden, Clone, Copy)]
enum StockReservations {
    Table,
    Id,
    UserId,
    Status,
    ExpiresAt,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden, Clone, Copy)]
enum StockReservationLines {
    Table,
    ReservationId,
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
                    .table(StockReservations::Table)
                    .if_not_exists()
                    .col(pk_uuid(StockReservations::Id))
                    .col(string_len(StockReservations::UserId, 200))
                    .col(
                        string_len(StockReservations::Status, 16).check(
                            Expr::col(StockReservations::Status)
                                .is_in(["RESERVED", "SOLD", "RELEASED"]),
                        ),
                    )
                    .col(instant(manager, StockReservations::ExpiresAt, false))
                    .col(instant(manager, StockReservations::CreatedAt, false))
                    .col(instant(manager, StockReservations::UpdatedAt, false))
                    .to_owned(),
            )
            .await?;
        // The sweeper's question: which RESERVED ones are past their time.
        manager
            .create_index(
                Index::create()
                    .name("idx_stock_reservations_status_expires")
                    .table(StockReservations::Table)
                    .col(StockReservations::Status)
                    .col(StockReservations::ExpiresAt)
                    .if_not_exists()
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(StockReservationLines::Table)
                    .if_not_exists()
                    .col(uuid(StockReservationLines::ReservationId))
                    .col(uuid(StockReservationLines::ProductId))
                    .col(string_len(StockReservationLines::ProductName, 200))
                    .col(
                        integer(StockReservationLines::Quantity)
                            .check(Expr::col(StockReservationLines::Quantity).gt(0)),
                    )
                    .col(decimal_len(StockReservationLines::UnitPrice, 12, 2))
                    .col(string_len(StockReservationLines::Currency, 3))
                    .primary_key(
                        Index::create()
                            .col(StockReservationLines::ReservationId)
                            .col(StockReservationLines::ProductId),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_stock_reservation_lines_reservation")
                            .from(
                                StockReservationLines::Table,
                                StockReservationLines::ReservationId,
                            )
                            .to(StockReservations::Table, StockReservations::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        // What a product has held (the stock invariant sums it per product).
        manager
            .create_index(
                Index::create()
                    .name("idx_stock_reservation_lines_product")
                    .table(StockReservationLines::Table)
                    .col(StockReservationLines::ProductId)
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
                    .table(StockReservationLines::Table)
                    .if_exists()
                    .to_owned(),
            )
            .await?;
        manager
            .drop_table(
                Table::drop()
                    .table(StockReservations::Table)
                    .if_exists()
                    .to_owned(),
            )
            .await
    }
}

//! GraphQL shapes of checkout reservations. Every type here is
//! `@inaccessible`: payment calls `reserveStock` and
//! `releaseStockReservation` over the signed hop, and the router's API
//! schema never shows them to clients.

use async_graphql::{Enum, ID, InputObject, SimpleObject};
use chrono::{DateTime, Utc};
use rust_decimal::Decimal;

use crate::domain::{
    ReservationInput, ReservationLineInput, ReservationStatus, StockReservation as Reservation,
};

/// One line to reserve: the payer's basket line as checkout saw it.
#[derive(InputObject)]
#[graphql(inaccessible)]
pub struct StockReservationLineInput {
    /// The product.
    pub product_id: ID,
    /// Units, 1..=999.
    pub quantity: i32,
    /// The unit price checkout will charge; must be the catalogue's now.
    pub unit_price: Decimal,
    /// ISO 4217 code of `unitPrice`.
    pub currency: String,
    /// The product's name in the basket (optional): names a product the
    /// catalogue no longer has in a `PRODUCT_UNAVAILABLE` refusal.
    pub product_name: Option<String>,
}

/// A checkout's reservation request.
#[derive(InputObject)]
#[graphql(inaccessible)]
pub struct ReserveStockInput {
    /// The id to create it under: the future payment's id. The same id
    /// again returns the existing reservation.
    pub reservation_id: ID,
    /// When it lapses if no payment outcome settles it (at most a day ahead).
    pub expires_at: DateTime<Utc>,
    /// What to hold, at most 100 lines, one per product.
    pub lines: Vec<StockReservationLineInput>,
}

impl From<ReserveStockInput> for ReservationInput {
    fn from(input: ReserveStockInput) -> Self {
        Self {
            reservation_id: input.reservation_id.0,
            expires_at: input.expires_at,
            lines: input
                .lines
                .into_iter()
                .map(|line| ReservationLineInput {
                    product_id: line.product_id.0,
                    quantity: line.quantity,
                    unit_price: line.unit_price,
                    currency: line.currency,
                    product_name: line.product_name,
                })
                .collect(),
        }
    }
}

/// Where a reservation is in its life.
#[derive(Enum, Clone, Copy, PartialEq, Eq)]
#[graphql(inaccessible)]
pub enum StockReservationStatus {
    /// Units held for the payment.
    Reserved,
    /// The payment completed.
    Sold,
    /// The units went back to stock.
    Released,
}

impl From<ReservationStatus> for StockReservationStatus {
    fn from(status: ReservationStatus) -> Self {
        match status {
            ReservationStatus::Reserved => Self::Reserved,
            ReservationStatus::Sold => Self::Sold,
            ReservationStatus::Released => Self::Released,
        }
    }
}

/// Units of one product a reservation holds.
#[derive(SimpleObject)]
#[graphql(inaccessible)]
pub struct StockReservationLine {
    /// The product.
    pub product_id: ID,
    /// Units held.
    pub quantity: i32,
}

/// Units held for a checkout until its payment settles.
#[derive(SimpleObject)]
#[graphql(inaccessible)]
pub struct StockReservation {
    /// The reservation's id (the payment's).
    pub id: ID,
    /// Where it is in its life.
    pub status: StockReservationStatus,
    /// When it lapses if still `RESERVED`.
    pub expires_at: DateTime<Utc>,
    /// Its lines, ordered by product id.
    pub lines: Vec<StockReservationLine>,
}

impl From<Reservation> for StockReservation {
    fn from(reservation: Reservation) -> Self {
        Self {
            id: ID(reservation.id.to_string()),
            status: reservation.status.into(),
            expires_at: reservation.expires_at,
            lines: reservation
                .lines
                .into_iter()
                .map(|line| StockReservationLine {
                    product_id: ID(line.product_id.to_string()),
                    quantity: line.quantity,
                })
                .collect(),
        }
    }
}

//! What the product subgraph publishes on `product-events`: the stock
//! events of one stock change.
//!
//! [`stock_events`] turns a change into `StockUpdated`, plus `StockLow`
//! when it crosses below the threshold and `StockOut` when it reaches zero.
//! The store calls it inside the transaction that changes the stock and
//! writes the result to its outbox; nothing here touches the store.

use sea_orm::DbErr;
use subgraph_kit::events::CloudEvent;
use subgraph_kit::events::contract::{EventKind, StockData};
use subgraph_kit::events::outbox;
use uuid::Uuid;

use crate::domain::StockAdjustment;

/// The CloudEvents `source` of this subgraph's events.
pub const SOURCE: &str = "/subgraphs/product";

/// Why stock changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StockReason {
    /// An admin's `adjustStock`.
    Adjustment,
    /// A completed payment (with no reservation, or whose reservation
    /// had expired and was taken again).
    Sale(Uuid),
    /// A checkout's reservation took the units (the payment's id).
    Reservation(Uuid),
    /// A reservation gave its units back: its payment failed, was
    /// cancelled or expired, the checkout was compensated, or the
    /// reservation outlived its `expiresAt` (the payment's id).
    Release(Uuid),
}

impl StockReason {
    /// The `reason` of the event data.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Adjustment => "adjustment",
            Self::Sale(_) => "sale",
            Self::Reservation(_) => "reservation",
            Self::Release(_) => "release",
        }
    }

    /// The payment behind the change, when there is one.
    pub const fn payment_id(self) -> Option<Uuid> {
        match self {
            Self::Adjustment => None,
            Self::Sale(id) | Self::Reservation(id) | Self::Release(id) => Some(id),
        }
    }
}

/// The events one stock change publishes.
pub fn stock_events(
    adjustment: &StockAdjustment,
    threshold: i32,
    reason: StockReason,
) -> Result<Vec<CloudEvent>, DbErr> {
    let previous = adjustment.previous_stock;
    let now = adjustment.product.stock_quantity;
    let data = StockData {
        product_id: adjustment.product.id,
        product_name: adjustment.product.name.clone(),
        previous_quantity: previous,
        stock_quantity: now,
        delta: now - previous,
        low_stock_threshold: threshold,
        reason: reason.as_str().to_owned(),
        payment_id: reason.payment_id(),
    };
    let mut kinds = vec![EventKind::StockUpdated];
    if now == 0 && previous > 0 {
        kinds.push(EventKind::StockOut);
    } else if now < threshold && previous >= threshold {
        kinds.push(EventKind::StockLow);
    }
    kinds
        .into_iter()
        .map(|kind| outbox::event(SOURCE, kind, data.product_id.to_string(), &data))
        .collect()
}

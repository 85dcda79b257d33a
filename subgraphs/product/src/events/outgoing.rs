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
    /// A completed payment.
    Sale(Uuid),
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
        reason: match reason {
            StockReason::Adjustment => "adjustment",
            StockReason::Sale(_) => "sale",
        }
        .to_owned(),
        payment_id: match reason {
            StockReason::Sale(id) => Some(id),
            StockReason::Adjustment => None,
        },
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

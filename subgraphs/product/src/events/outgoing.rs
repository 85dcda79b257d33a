//! The product subgraph's events: the stock events it publishes and the
//! sale reaction it runs (see `platform/subgraph-kit/src/events/README.md`).
//!
//! * [`stock_events`] turns one stock change into `StockUpdated`, plus
//!   `StockLow` when it crosses below the threshold and `StockOut` when it
//!   reaches zero;
//! * [`SaleHandler`] consumes `PaymentCompleted` and takes each line's
//!   units from stock, once per payment however often the event arrives.

use futures::future::BoxFuture;
use sea_orm::{DatabaseTransaction, DbErr};
use subgraph_kit::events::CloudEvent;
use subgraph_kit::events::contract::{PaymentData, StockData, payment, product};
use subgraph_kit::events::inbox::{Handler, HandlerError};
use subgraph_kit::events::outbox;
use uuid::Uuid;

use crate::domain::{ProductError, StockAdjustment};
use crate::store::ProductStore;

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
    let mut kinds = vec![product::STOCK_UPDATED];
    if now == 0 && previous > 0 {
        kinds.push(product::STOCK_OUT);
    } else if now < threshold && previous >= threshold {
        kinds.push(product::STOCK_LOW);
    }
    kinds
        .into_iter()
        .map(|kind| outbox::event(SOURCE, kind, data.product_id.to_string(), &data))
        .collect()
}

/// `PaymentCompleted` → stock taken per line (the consumer group
/// `product-stock`).
pub struct SaleHandler {
    store: ProductStore,
}

impl SaleHandler {
    /// Sales applied to `store`.
    pub fn new(store: ProductStore) -> Self {
        Self { store }
    }
}

impl Handler for SaleHandler {
    fn handle<'a>(
        &'a self,
        txn: &'a DatabaseTransaction,
        event: &'a CloudEvent,
    ) -> BoxFuture<'a, Result<(), HandlerError>> {
        Box::pin(async move {
            if event.kind != payment::COMPLETED {
                return Ok(());
            }
            let sale: PaymentData = event.data()?;
            for line in &sale.items {
                match self
                    .store
                    .sell(txn, line.product_id, line.quantity, sale.payment_id)
                    .await
                {
                    Ok(Some(_)) => {}
                    Ok(None) => {
                        tracing::warn!(product_id = %line.product_id, payment_id = %sale.payment_id, "sold product no longer exists; line skipped");
                    }
                    Err(ProductError::Store(err)) => return Err(HandlerError::Transient(err)),
                    Err(err) => return Err(HandlerError::Rejected(err.to_string())),
                }
            }
            Ok(())
        })
    }
}

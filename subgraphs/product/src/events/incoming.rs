//! What the product subgraph does with other services' events: the sale
//! reaction to `PaymentCompleted` (consumer group `product-stock`).
//!
//! [`SaleHandler`] takes each line's units from stock through the store,
//! which writes the resulting stock events (see [`super::outgoing`]) in the
//! same transaction, once per payment however often the event arrives.

use futures::future::BoxFuture;
use sea_orm::DatabaseTransaction;
use subgraph_kit::events::CloudEvent;
use subgraph_kit::events::contract::{EventKind, PaymentData};
use subgraph_kit::events::inbox::{Handler, HandlerError};

use crate::domain::ProductError;
use crate::store::ProductStore;

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

    /// Takes each line of `sale` from stock (never below zero); a product
    /// deleted since is skipped.
    async fn take_sold_units(
        &self,
        txn: &DatabaseTransaction,
        sale: PaymentData,
    ) -> Result<(), HandlerError> {
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
    }
}

impl Handler for SaleHandler {
    fn handle<'a>(
        &'a self,
        txn: &'a DatabaseTransaction,
        event: &'a CloudEvent,
    ) -> BoxFuture<'a, Result<(), HandlerError>> {
        Box::pin(async move {
            match event.event_kind() {
                Ok(EventKind::PaymentCompleted) => self.take_sold_units(txn, event.data()?).await,
                // No other payment event changes stock.
                Ok(
                    EventKind::PaymentCreated
                    | EventKind::PaymentFailed
                    | EventKind::PaymentRefunded
                    | EventKind::PaymentCancelled
                    | EventKind::PaymentExpired,
                ) => Ok(()),
                // Not on `payment-events`, the one topic this consumer reads.
                Ok(
                    EventKind::StockUpdated
                    | EventKind::StockLow
                    | EventKind::StockOut
                    | EventKind::BasketCleared
                    | EventKind::BasketAbandoned
                    | EventKind::NotificationCreated,
                ) => Ok(()),
                Err(unknown) => {
                    tracing::warn!(event_id = %event.id, %unknown, "sale reaction ignores an event of a type it does not know");
                    Ok(())
                }
            }
        })
    }
}

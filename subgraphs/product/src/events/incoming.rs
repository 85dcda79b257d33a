//! What the product subgraph does with other services' events: the
//! settlement of checkout reservations by the payment's outcome (consumer
//! group `product-stock`).
//!
//! [`SaleHandler`] reacts inside the consumer's transaction (which also
//! records the event id, so a redelivered event is skipped), and every
//! change it makes is a conditional status move, so applying the same
//! outcome twice changes nothing:
//!
//! * `PaymentCompleted` → the payment's reservation becomes `SOLD` (its
//!   units were taken at reserve time). A payment with no reservation (made
//!   before reservations existed) takes its lines' units the old way, never
//!   below zero. A reservation already `RELEASED` (it expired while the
//!   payment was stuck) takes its units again if every line still has
//!   them; otherwise nothing is taken and an ERROR `sold after its
//!   reservation expired` is logged: a paid order the shop must settle by
//!   hand (the README's checkout failure cases).
//! * `PaymentFailed`, `PaymentCancelled`, `PaymentExpired` → a `RESERVED`
//!   reservation is released, its units back in stock.
//!
//! Stock changes write their events (see [`super::outgoing`]) in the same
//! transaction.

use futures::future::BoxFuture;
use sea_orm::DatabaseTransaction;
use subgraph_kit::events::CloudEvent;
use subgraph_kit::events::contract::{EventKind, PaymentData};
use subgraph_kit::events::inbox::{Handler, HandlerError};
use uuid::Uuid;

use crate::domain::{ProductError, ReleaseOutcome, SaleOutcome};
use crate::store::ProductStore;

/// Payment outcomes → reservations sold or released (the consumer group
/// `product-stock`).
pub struct SaleHandler {
    store: ProductStore,
}

impl SaleHandler {
    /// Settlements applied to `store`.
    pub fn new(store: ProductStore) -> Self {
        Self { store }
    }

    /// `PaymentCompleted`: see the module docs.
    async fn settle_sale(
        &self,
        txn: &DatabaseTransaction,
        sale: PaymentData,
    ) -> Result<(), HandlerError> {
        let payment_id = sale.payment_id;
        match self
            .store
            .sell_reserved(txn, payment_id)
            .await
            .map_err(handler_error)?
        {
            SaleOutcome::Sold => {
                tracing::debug!(%payment_id, "reservation sold");
            }
            SaleOutcome::AlreadySold => {
                tracing::debug!(%payment_id, "reservation already sold");
            }
            SaleOutcome::Retaken => {
                tracing::warn!(%payment_id, "sold after its reservation expired; the units were still there and are taken again");
                record_late_sale("retaken");
            }
            SaleOutcome::Short(lines) => {
                record_late_sale("short");
                for line in &lines {
                    tracing::error!(
                        %payment_id,
                        product_id = %line.product_id,
                        product_name = %line.product_name,
                        requested = line.requested,
                        available = line.available,
                        "sold after its reservation expired; not enough units left, nothing taken"
                    );
                }
            }
            SaleOutcome::NoReservation => self.take_sold_units(txn, &sale).await?,
        }
        Ok(())
    }

    /// The sale of a payment made without a reservation: takes each line
    /// from stock (never below zero); a product deleted since is skipped.
    async fn take_sold_units(
        &self,
        txn: &DatabaseTransaction,
        sale: &PaymentData,
    ) -> Result<(), HandlerError> {
        for line in &sale.items {
            match self
                .store
                .sell(txn, line.product_id, line.quantity, sale.payment_id)
                .await
                .map_err(handler_error)?
            {
                Some(_) => {}
                None => {
                    tracing::warn!(product_id = %line.product_id, payment_id = %sale.payment_id, "sold product no longer exists; line skipped");
                }
            }
        }
        Ok(())
    }

    /// `PaymentFailed` / `PaymentCancelled` / `PaymentExpired`: the units
    /// go back to stock if the reservation still holds them.
    async fn release(
        &self,
        txn: &DatabaseTransaction,
        payment_id: Uuid,
        kind: EventKind,
    ) -> Result<(), HandlerError> {
        match self
            .store
            .release_in(txn, payment_id, None)
            .await
            .map_err(handler_error)?
        {
            ReleaseOutcome::Released(reservation) => {
                tracing::info!(%payment_id, outcome = kind.as_str(), lines = reservation.lines.len(), "reservation released");
            }
            ReleaseOutcome::Unchanged(status) => {
                tracing::debug!(%payment_id, outcome = kind.as_str(), status = status.as_str(), "reservation already settled");
            }
            ReleaseOutcome::Unknown => {
                tracing::debug!(%payment_id, outcome = kind.as_str(), "payment without a reservation");
            }
        }
        Ok(())
    }
}

/// A store failure is worth retrying; anything else will never apply.
fn handler_error(err: ProductError) -> HandlerError {
    match err {
        ProductError::Store(err) => HandlerError::Transient(err),
        err => HandlerError::Rejected(err.to_string()),
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
                Ok(EventKind::PaymentCompleted) => self.settle_sale(txn, event.data()?).await,
                Ok(
                    kind @ (EventKind::PaymentFailed
                    | EventKind::PaymentCancelled
                    | EventKind::PaymentExpired),
                ) => {
                    let data: PaymentData = event.data()?;
                    self.release(txn, data.payment_id, kind).await
                }
                // Created: the reservation was made synchronously before it.
                // Refunded: money goes back, the goods are not restocked.
                Ok(EventKind::PaymentCreated | EventKind::PaymentRefunded) => Ok(()),
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
                    tracing::warn!(event_id = %event.id, %unknown, "reservation settlement ignores an event of a type it does not know");
                    Ok(())
                }
            }
        })
    }
}

/// Counts a `PaymentCompleted` that arrived after its reservation had
/// expired, in `stock_reservations_late_sales_total{outcome}`: `retaken`
/// (the units were still there) or `short` (a paid order the shop must
/// settle by hand). Either means `CHECKOUT_SETTLE_MARGIN` was shorter than
/// the events' delay; `short` deserves an alert.
fn record_late_sale(outcome: &'static str) {
    metrics::counter!(
        "stock_reservations_late_sales_total",
        "service" => crate::SERVICE_NAME,
        "outcome" => outcome
    )
    .increment(1);
}

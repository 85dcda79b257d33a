//! What the basket subgraph does with other services' events: the
//! checkout settlement (consumer group `basket-checkout`, reading
//! `payment-events`; the consumer subscribes to topics, and this handler
//! picks the kinds it acts on).
//!
//! [`CheckoutHandler`] settles the payer's basket through the store, in
//! the consumer's transaction, once per event however often it arrives:
//!
//! * `PaymentCompleted` — the units the payment locked at checkout are
//!   removed from the current lines (a line at zero goes), its lock is
//!   cleared and `BasketCleared` lists what was removed; lines added since
//!   the lock stay. A payment that locked nothing (made before the lock
//!   existed) empties the basket, as checkouts did before.
//! * `PaymentFailed`, `PaymentCancelled`, `PaymentExpired` — the payment's
//!   lock is cleared; the lines stay for the next attempt.

use futures::future::BoxFuture;
use sea_orm::DatabaseTransaction;
use subgraph_kit::events::CloudEvent;
use subgraph_kit::events::contract::{EventKind, PaymentData};
use subgraph_kit::events::inbox::{Handler, HandlerError};

use crate::domain::BasketError;
use crate::store::{BasketStore, CheckoutOutcome};

/// Payment outcomes → the payer's basket settled (consumer group
/// `basket-checkout`).
pub struct CheckoutHandler;

impl CheckoutHandler {
    /// Settles the basket of the payer of `payment` as `outcome` says.
    async fn settle(
        txn: &DatabaseTransaction,
        payment: PaymentData,
        outcome: CheckoutOutcome,
    ) -> Result<(), HandlerError> {
        match BasketStore::settle_checkout_in(txn, &payment.user_id, payment.payment_id, outcome)
            .await
        {
            Ok(()) => Ok(()),
            Err(BasketError::Store(err)) => Err(HandlerError::Transient(err)),
            Err(err) => Err(HandlerError::Rejected(err.to_string())),
        }
    }
}

impl Handler for CheckoutHandler {
    fn handle<'a>(
        &'a self,
        txn: &'a DatabaseTransaction,
        event: &'a CloudEvent,
    ) -> BoxFuture<'a, Result<(), HandlerError>> {
        Box::pin(async move {
            match event.event_kind() {
                Ok(EventKind::PaymentCompleted) => {
                    Self::settle(txn, event.data()?, CheckoutOutcome::Completed).await
                }
                Ok(
                    EventKind::PaymentFailed
                    | EventKind::PaymentCancelled
                    | EventKind::PaymentExpired,
                ) => Self::settle(txn, event.data()?, CheckoutOutcome::Abandoned).await,
                // A created payment already holds its lock (taken before it
                // was created); a refund does not put lines back.
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
                    tracing::warn!(event_id = %event.id, %unknown, "checkout reaction ignores an event of a type it does not know");
                    Ok(())
                }
            }
        })
    }
}

//! What the basket subgraph does with other services' events: the
//! checkout reaction to `PaymentCompleted` (consumer group
//! `basket-checkout`).
//!
//! [`CheckoutHandler`] empties the payer's basket through the store, which
//! writes `BasketCleared` (see [`super::outgoing`]) in the same
//! transaction, once per payment however often the event arrives.

use futures::future::BoxFuture;
use sea_orm::DatabaseTransaction;
use subgraph_kit::events::CloudEvent;
use subgraph_kit::events::contract::{EventKind, PaymentData};
use subgraph_kit::events::inbox::{Handler, HandlerError};

use super::outgoing::BasketChange;
use crate::domain::BasketError;
use crate::store::BasketStore;

/// `PaymentCompleted` → the payer's basket emptied (consumer group
/// `basket-checkout`).
pub struct CheckoutHandler;

impl CheckoutHandler {
    /// Empties the basket of the payer of `paid`.
    async fn empty_payers_basket(
        txn: &DatabaseTransaction,
        paid: PaymentData,
    ) -> Result<(), HandlerError> {
        match BasketStore::clear_in(
            txn,
            &paid.user_id,
            BasketChange::ClearedByCheckout(paid.payment_id),
        )
        .await
        {
            Ok(_) => Ok(()),
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
                    Self::empty_payers_basket(txn, event.data()?).await
                }
                // The basket is kept until a payment completes.
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
                    tracing::warn!(event_id = %event.id, %unknown, "checkout reaction ignores an event of a type it does not know");
                    Ok(())
                }
            }
        })
    }
}

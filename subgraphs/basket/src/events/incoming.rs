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
use subgraph_kit::events::contract::{PaymentData, payment};
use subgraph_kit::events::inbox::{Handler, HandlerError};

use super::outgoing::BasketChange;
use crate::domain::BasketError;
use crate::store::BasketStore;

/// `PaymentCompleted` → the payer's basket emptied (consumer group
/// `basket-checkout`).
pub struct CheckoutHandler;

impl Handler for CheckoutHandler {
    fn handle<'a>(
        &'a self,
        txn: &'a DatabaseTransaction,
        event: &'a CloudEvent,
    ) -> BoxFuture<'a, Result<(), HandlerError>> {
        Box::pin(async move {
            if event.kind != payment::COMPLETED {
                return Ok(());
            }
            let paid: PaymentData = event.data()?;
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
        })
    }
}

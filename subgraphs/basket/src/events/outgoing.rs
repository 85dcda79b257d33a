//! The basket subgraph's events: `BasketCleared` and `BasketAbandoned`,
//! and the checkout reaction (see `platform/subgraph-kit/src/events/README.md`).
//!
//! [`CheckoutHandler`] consumes `PaymentCompleted` and empties the payer's
//! basket, once per payment however often the event arrives.

use futures::future::BoxFuture;
use sea_orm::{DatabaseTransaction, DbErr};
use subgraph_kit::events::CloudEvent;
use subgraph_kit::events::contract::{BasketData, PaymentData, basket, payment};
use subgraph_kit::events::inbox::{Handler, HandlerError};
use subgraph_kit::events::outbox;
use uuid::Uuid;

use crate::domain::{Basket, BasketError};
use crate::store::BasketStore;

/// The CloudEvents `source` of this subgraph's events.
pub const SOURCE: &str = "/subgraphs/basket";

/// What happened to a basket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BasketChange {
    /// Its owner emptied it (`clearBasket`).
    ClearedByOwner,
    /// A completed payment bought what it held.
    ClearedByCheckout(Uuid),
    /// Nobody touched it for the basket TTL.
    Abandoned,
}

/// The event of `change` to `basket` (its contents before a clear).
pub fn basket_event(basket: &Basket, change: BasketChange) -> Result<CloudEvent, DbErr> {
    let (kind, reason, payment_id) = match change {
        BasketChange::ClearedByOwner => (basket::CLEARED, "owner", None),
        BasketChange::ClearedByCheckout(id) => (basket::CLEARED, "checkout", Some(id)),
        BasketChange::Abandoned => (basket::ABANDONED, "idle", None),
    };
    let data = BasketData {
        basket_id: basket.id,
        user_id: basket.user_id.clone(),
        item_count: basket.item_count(),
        reason: reason.to_owned(),
        payment_id,
    };
    outbox::event(SOURCE, kind, basket.user_id.clone(), &data)
}

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

//! What the basket subgraph publishes on `basket-events`: `BasketCleared`
//! and `BasketAbandoned`, keyed by the basket's owner.
//!
//! The store calls [`basket_event`] inside the transaction that clears or
//! abandons the basket and writes the result to its outbox; nothing here
//! touches the store.

use sea_orm::DbErr;
use subgraph_kit::events::CloudEvent;
use subgraph_kit::events::contract::{BasketData, EventKind};
use subgraph_kit::events::outbox;
use uuid::Uuid;

use crate::domain::Basket;

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
        BasketChange::ClearedByOwner => (EventKind::BasketCleared, "owner", None),
        BasketChange::ClearedByCheckout(id) => (EventKind::BasketCleared, "checkout", Some(id)),
        BasketChange::Abandoned => (EventKind::BasketAbandoned, "idle", None),
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

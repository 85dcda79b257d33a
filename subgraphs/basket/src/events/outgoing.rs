//! What the basket subgraph publishes on `basket-events`: `BasketCleared`
//! and `BasketAbandoned`, keyed by the basket's owner.
//!
//! The store calls [`basket_event`] inside the transaction that clears or
//! abandons the basket (or removes what a completed checkout bought) and
//! writes the result to its outbox; nothing here touches the store.

use sea_orm::DbErr;
use subgraph_kit::events::CloudEvent;
use subgraph_kit::events::contract::{BasketData, BasketLine, EventKind};
use subgraph_kit::events::outbox;
use uuid::Uuid;

use crate::domain::{Basket, BasketItem};

/// The CloudEvents `source` of this subgraph's events.
pub const SOURCE: &str = "/subgraphs/basket";

/// What happened to a basket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BasketChange {
    /// Its owner emptied it (`clearBasket`).
    ClearedByOwner,
    /// A completed payment bought (some of) what it held.
    ClearedByCheckout(Uuid),
    /// Nobody touched it for the basket TTL.
    Abandoned,
}

/// The event of `change` to `basket`, about `lines`: the lines removed
/// (with the units removed) for a clear, the lines held for an abandonment.
pub fn basket_event(
    basket: &Basket,
    lines: &[BasketItem],
    change: BasketChange,
) -> Result<CloudEvent, DbErr> {
    let (kind, reason, payment_id) = match change {
        BasketChange::ClearedByOwner => (EventKind::BasketCleared, "owner", None),
        BasketChange::ClearedByCheckout(id) => (EventKind::BasketCleared, "checkout", Some(id)),
        BasketChange::Abandoned => (EventKind::BasketAbandoned, "idle", None),
    };
    let data = BasketData {
        basket_id: basket.id,
        user_id: basket.user_id.clone(),
        item_count: lines.iter().map(|line| line.quantity).sum(),
        reason: reason.to_owned(),
        payment_id,
        lines: lines
            .iter()
            .map(|line| BasketLine {
                product_id: line.product_id,
                product_name: line.product_name.clone(),
                quantity: line.quantity,
            })
            .collect(),
    };
    outbox::event(SOURCE, kind, basket.user_id.clone(), &data)
}

//! GraphQL shapes of baskets and the `User` entity's basket field.

use async_graphql::{Context, ID, Object, Result};
use chrono::{DateTime, Utc};
use shopgraph_core::error::{Coded, to_graphql};
use subgraph_kit::auth;
use subgraph_kit::cost::{ASSUMED_BASKET_LINES, list_size};
use subgraph_kit::federation::ProductRef;
use subgraph_kit::graphql::authenticated;
use subgraph_kit::money::Money;

use super::ShopCurrency;
use crate::domain::{Basket, BasketError, BasketItem, BasketStatus as DomainStatus, now};
use crate::service::Baskets;

/// A user's basket.
pub struct BasketNode(pub Basket);

#[Object(name = "Basket")]
impl BasketNode {
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }

    /// Lines, in the order products were first added.
    #[graphql(directive = list_size::apply(ASSUMED_BASKET_LINES, None, None, None))]
    async fn items(&self) -> Vec<BasketItemNode> {
        self.0.items.iter().cloned().map(BasketItemNode).collect()
    }

    /// Units across all lines.
    async fn item_count(&self) -> i32 {
        self.0.item_count()
    }

    /// Sum of the lines' subtotals.
    async fn total(&self, ctx: &Context<'_>) -> Money {
        let default = &ctx.data_unchecked::<ShopCurrency>().0;
        Money::new(self.0.total(), self.0.currency(default))
    }

    async fn status(&self) -> BasketStatus {
        self.0.status.into()
    }

    /// Whether a checkout of this basket is under way (a payment holds its
    /// lock): another checkout is refused until it completes, fails or
    /// lapses. The basket can still be changed meanwhile; what the payment
    /// bought is removed when it completes, and lines added since stay.
    async fn checkout_in_progress(&self) -> bool {
        self.0.checkout_in_progress(now())
    }

    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }

    async fn updated_at(&self) -> DateTime<Utc> {
        self.0.updated_at
    }
}

subgraph_kit::mirror_enum! {
    /// Whether a basket is in use.
    BasketStatus <=> DomainStatus {
        /// Changed recently, or empty.
        Active,
        /// Left with items for longer than the shop's basket TTL.
        Abandoned,
    }
}

/// One product in a basket, priced when it was added or last changed.
pub struct BasketItemNode(pub BasketItem);

#[Object(name = "BasketItem")]
impl BasketItemNode {
    /// The product (its current fields come from the product subgraph).
    async fn product(&self) -> ProductRef {
        ProductRef::new(self.0.product_id)
    }

    /// The product's name when the line was last priced.
    async fn product_name(&self) -> &str {
        &self.0.product_name
    }

    async fn category(&self) -> &str {
        &self.0.category
    }

    async fn quantity(&self) -> i32 {
        self.0.quantity
    }

    /// Unit price when the line was last priced.
    async fn unit_price(&self) -> Money {
        Money::new(self.0.unit_price, self.0.currency.clone())
    }

    /// `unitPrice × quantity`.
    async fn subtotal(&self) -> Money {
        Money::new(self.0.subtotal(), self.0.currency.clone())
    }

    async fn added_at(&self) -> DateTime<Utc> {
        self.0.added_at
    }
}

/// A shop user; other subgraphs add their own fields.
pub struct UserNode {
    pub id: String,
}

#[Object(name = "User")]
impl UserNode {
    async fn id(&self) -> ID {
        ID(self.id.clone())
    }

    /// The user's basket; only the user (or an admin) may see it.
    #[graphql(directive = authenticated::apply())]
    async fn basket(&self, ctx: &Context<'_>) -> Result<BasketNode> {
        let viewer = auth::viewer(ctx)?;
        if viewer.user_id != self.id && !viewer.is_admin() {
            return Err(to_graphql(BasketError::NotYours));
        }
        baskets(ctx)
            .basket(&self.id)
            .await
            .map(BasketNode)
            .map_err(to_graphql)
    }
}

/// The basket use cases from the schema data.
pub fn baskets<'a>(ctx: &Context<'a>) -> &'a Baskets {
    ctx.data_unchecked::<Baskets>()
}

/// Logs upstream failures with their cause before they become errors.
pub fn basket_error(err: BasketError) -> async_graphql::Error {
    if let BasketError::CatalogUnavailable(cause) = &err {
        tracing::warn!(error = %shopgraph_core::error::error_chain(cause), code = %err.code(), "product catalogue call failed");
    }
    to_graphql(err)
}

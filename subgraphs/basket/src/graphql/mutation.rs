//! Write side: the signed-in user's basket changes, and the checkout
//! lock payment takes and releases over the signed hop.
//!
//! `beginCheckout` and `releaseCheckout` are `@inaccessible`: they are in
//! the subgraph's schema (payment calls basket directly) but not in the
//! router's API schema, so no client can call them through the router.
//! Like every field they act for the forwarded signed-in user (the payer)
//! and only ever touch that user's own basket.

use async_graphql::{Context, ID, InputObject, Object, Result};
use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use subgraph_kit::auth;
use subgraph_kit::graphql::authenticated;

use super::types::{BasketNode, basket_error, baskets};
use crate::domain::UncheckedLine;

/// A line payment expects the basket to hold at checkout.
#[derive(InputObject)]
#[graphql(inaccessible)]
pub struct CheckoutLineInput {
    /// The product.
    pub product_id: ID,
    /// Units, 1..=999.
    pub quantity: i32,
    /// The unit price payment charges (at most two decimals).
    pub unit_price: Decimal,
    /// ISO 4217 currency of `unitPrice`.
    pub currency: String,
}

impl From<CheckoutLineInput> for UncheckedLine {
    fn from(line: CheckoutLineInput) -> Self {
        Self {
            product_id: line.product_id.0,
            quantity: line.quantity,
            unit_price: line.unit_price,
            currency: line.currency,
        }
    }
}

/// Root mutation type of the basket subgraph.
pub struct Mutation;

#[Object]
impl Mutation {
    /// Puts `quantity` units of a product in the basket, or adds them to its
    /// line; name and price come from the product subgraph.
    #[graphql(directive = authenticated::apply())]
    async fn add_basket_item(
        &self,
        ctx: &Context<'_>,
        product_id: ID,
        quantity: i32,
    ) -> Result<BasketNode> {
        let viewer = auth::viewer(ctx)?;
        baskets(ctx)
            .add(&viewer.user_id, &product_id, quantity)
            .await
            .map(BasketNode)
            .map_err(basket_error)
    }

    /// Sets a line to `quantity` units (1..=999), re-priced now.
    #[graphql(directive = authenticated::apply())]
    async fn update_basket_item(
        &self,
        ctx: &Context<'_>,
        product_id: ID,
        quantity: i32,
    ) -> Result<BasketNode> {
        let viewer = auth::viewer(ctx)?;
        baskets(ctx)
            .update(&viewer.user_id, &product_id, quantity)
            .await
            .map(BasketNode)
            .map_err(basket_error)
    }

    /// Removes a product's line.
    #[graphql(directive = authenticated::apply())]
    async fn remove_basket_item(&self, ctx: &Context<'_>, product_id: ID) -> Result<BasketNode> {
        let viewer = auth::viewer(ctx)?;
        baskets(ctx)
            .remove(&viewer.user_id, &product_id)
            .await
            .map(BasketNode)
            .map_err(basket_error)
    }

    /// Empties the basket.
    #[graphql(directive = authenticated::apply())]
    async fn clear_basket(&self, ctx: &Context<'_>) -> Result<BasketNode> {
        let viewer = auth::viewer(ctx)?;
        baskets(ctx)
            .clear(&viewer.user_id)
            .await
            .map(BasketNode)
            .map_err(basket_error)
    }

    /// Re-reads the current name and price of every line from the product
    /// catalogue (quantities stay): how a shopper accepts the new prices
    /// after a checkout answered `PRICE_CHANGED`, before checking out again.
    #[graphql(directive = authenticated::apply())]
    async fn confirm_basket_prices(&self, ctx: &Context<'_>) -> Result<BasketNode> {
        let viewer = auth::viewer(ctx)?;
        baskets(ctx)
            .confirm_prices(&viewer.user_id)
            .await
            .map(BasketNode)
            .map_err(basket_error)
    }

    /// Payment's checkout step (internal): locks the payer's basket for
    /// payment `paymentId` until `lockedUntil` (at most a day ahead) if its
    /// lines are exactly `lines` and no other checkout holds it. `CONFLICT`
    /// when the basket changed or another checkout holds it,
    /// `BAD_USER_INPUT` when it is empty. Repeating it is harmless.
    #[graphql(inaccessible, directive = authenticated::apply())]
    async fn begin_checkout(
        &self,
        ctx: &Context<'_>,
        payment_id: ID,
        lines: Vec<CheckoutLineInput>,
        locked_until: DateTime<Utc>,
    ) -> Result<BasketNode> {
        let viewer = auth::viewer(ctx)?;
        let lines = lines.into_iter().map(UncheckedLine::from).collect();
        baskets(ctx)
            .begin_checkout(&viewer.user_id, &payment_id, lines, locked_until)
            .await
            .map(BasketNode)
            .map_err(basket_error)
    }

    /// Payment's compensation (internal): releases the payer's basket from
    /// payment `paymentId`'s checkout. Always `true`: releasing an unknown,
    /// lapsed or settled checkout changes nothing.
    #[graphql(inaccessible, directive = authenticated::apply())]
    async fn release_checkout(&self, ctx: &Context<'_>, payment_id: ID) -> Result<bool> {
        let viewer = auth::viewer(ctx)?;
        baskets(ctx)
            .release_checkout(&viewer.user_id, &payment_id)
            .await
            .map(|()| true)
            .map_err(basket_error)
    }
}

//! Write side: the signed-in user's basket changes.

use async_graphql::{Context, ID, Object, Result};
use subgraph_kit::auth;
use subgraph_kit::graphql::authenticated;

use super::types::{BasketNode, basket_error, baskets};

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
}

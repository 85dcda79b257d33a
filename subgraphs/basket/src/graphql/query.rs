//! Read side: `myBasket`, `me` and the `User` entity.

use async_graphql::{Context, ID, Object, Result};
use subgraph_kit::auth;
use subgraph_kit::graphql::authenticated;

use super::types::{BasketNode, UserNode, basket_error, baskets};

/// Root query type of the basket subgraph.
pub struct Query;

#[Object]
impl Query {
    /// The signed-in user's basket, created empty on first use.
    #[graphql(directive = authenticated::apply())]
    async fn my_basket(&self, ctx: &Context<'_>) -> Result<BasketNode> {
        let viewer = auth::viewer(ctx)?;
        baskets(ctx)
            .basket(&viewer.user_id)
            .await
            .map(BasketNode)
            .map_err(basket_error)
    }

    /// The signed-in user, with every subgraph's per-user fields.
    #[graphql(directive = authenticated::apply())]
    async fn me(&self, ctx: &Context<'_>) -> Result<UserNode> {
        let viewer = auth::viewer(ctx)?;
        Ok(UserNode {
            id: viewer.user_id.clone(),
        })
    }

    /// Federation entry point for `User` representations.
    #[graphql(entity)]
    async fn find_user_by_id(&self, id: ID) -> UserNode {
        UserNode { id: id.0 }
    }
}

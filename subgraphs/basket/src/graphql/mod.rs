//! The basket subgraph's GraphQL API (Federation v2): `myBasket`, the basket
//! mutations, `Query.me` and the `User.basket` field. Every field acts for
//! the signed-in caller.

mod error;
mod mutation;
mod query;
mod types;

use async_graphql::{EmptySubscription, Schema};
use subgraph_kit::settings::GraphqlSettings;

use crate::service::Baskets;
use mutation::Mutation;
use query::Query;

/// The executable schema of the basket subgraph.
pub type BasketSchema = Schema<Query, Mutation, EmptySubscription>;

/// The currency an empty basket reports its zero total in.
#[derive(Debug, Clone)]
pub struct ShopCurrency(pub String);

/// The schema wired to the basket use cases.
pub fn schema(baskets: Baskets, currency: ShopCurrency, limits: &GraphqlSettings) -> BasketSchema {
    subgraph_kit::graphql::federated(Schema::build(Query, Mutation, EmptySubscription), limits)
        .data(baskets)
        .data(currency)
        .finish()
}

/// The federation SDL that composition and `shopgraph sdl basket` use.
pub fn sdl() -> String {
    subgraph_kit::graphql::federation_sdl(Schema::build(Query, Mutation, EmptySubscription))
}

//! The basket subgraph's GraphQL API (Federation v2): `myBasket`, the basket
//! mutations, `Query.me` and the `User.basket` field. Every field acts for
//! the signed-in caller.

mod error;
mod mutation;
mod query;
mod types;

use async_graphql::{EmptySubscription, SDLExportOptions, Schema, SchemaBuilder};
use shopgraph_platform::settings::GraphqlSettings;

use crate::service::Baskets;
use mutation::Mutation;
use query::Query;

/// The executable schema of the basket subgraph.
pub type BasketSchema = Schema<Query, Mutation, EmptySubscription>;

/// The currency an empty basket reports its zero total in.
#[derive(Debug, Clone)]
pub struct ShopCurrency(pub String);

fn builder() -> SchemaBuilder<Query, Mutation, EmptySubscription> {
    Schema::build(Query, Mutation, EmptySubscription).enable_federation()
}

/// The schema wired to the basket use cases.
pub fn schema(baskets: Baskets, currency: ShopCurrency, limits: &GraphqlSettings) -> BasketSchema {
    let mut builder = builder()
        .data(baskets)
        .data(currency)
        .limit_depth(limits.max_depth)
        .limit_complexity(limits.max_complexity);
    if !limits.introspection {
        builder = builder.disable_introspection();
    }
    builder.finish()
}

/// The federation SDL that composition and `shopgraph sdl basket` use.
pub fn sdl() -> String {
    builder()
        .finish()
        .sdl_with_options(SDLExportOptions::new().federation())
}

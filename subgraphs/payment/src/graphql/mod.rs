//! The payment subgraph's GraphQL API (Federation v2): the `Payment`
//! entity, checkout and the payment mutations, lists, and `User.payments`.

mod error;
mod mutation;
mod query;
mod types;

use async_graphql::{EmptySubscription, Schema};
use shopgraph_platform::settings::GraphqlSettings;

use crate::service::Payments;
use mutation::Mutation;
use query::Query;

/// The executable schema of the payment subgraph.
pub type PaymentSchema = Schema<Query, Mutation, EmptySubscription>;

/// The schema wired to the payment use cases.
pub fn schema(payments: Payments, limits: &GraphqlSettings) -> PaymentSchema {
    shopgraph_platform::graphql::federated(
        Schema::build(Query, Mutation, EmptySubscription),
        limits,
    )
    .data(payments)
    .finish()
}

/// The federation SDL that composition and `shopgraph sdl payment` use.
pub fn sdl() -> String {
    shopgraph_platform::graphql::federation_sdl(Schema::build(Query, Mutation, EmptySubscription))
}

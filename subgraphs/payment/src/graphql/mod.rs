//! The payment subgraph's GraphQL API (Federation v2): the `Payment`
//! entity, checkout and the payment mutations, lists, and `User.payments`.

mod error;
mod mutation;
mod query;
mod subscription;
mod types;

use async_graphql::Schema;
use subgraph_kit::events::live::LiveFeed;
use subgraph_kit::settings::GraphqlSettings;

use crate::service::Payments;
use mutation::Mutation;
use query::Query;
use subscription::Subscription;

/// The executable schema of the payment subgraph.
pub type PaymentSchema = Schema<Query, Mutation, Subscription>;

/// The schema wired to the payment use cases, with
/// `paymentStatusChanged` fed by `feed`.
pub fn schema(payments: Payments, limits: &GraphqlSettings, feed: LiveFeed) -> PaymentSchema {
    subgraph_kit::graphql::federated(Schema::build(Query, Mutation, Subscription), limits)
        .data(payments)
        .data(feed)
        .finish()
}

/// The federation SDL that composition and `shopgraph sdl payment` use.
pub fn sdl() -> String {
    subgraph_kit::graphql::federation_sdl(Schema::build(Query, Mutation, Subscription))
}

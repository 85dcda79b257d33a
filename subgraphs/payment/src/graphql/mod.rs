//! The payment subgraph's GraphQL API (Federation v2): the `Payment`
//! entity, checkout and the payment mutations, lists, and `User.payments`.

mod error;
mod mutation;
mod query;
mod types;

use async_graphql::{EmptySubscription, SDLExportOptions, Schema, SchemaBuilder};
use shopgraph_platform::settings::GraphqlSettings;

use crate::service::Payments;
use mutation::Mutation;
use query::Query;

/// The executable schema of the payment subgraph.
pub type PaymentSchema = Schema<Query, Mutation, EmptySubscription>;

fn builder() -> SchemaBuilder<Query, Mutation, EmptySubscription> {
    Schema::build(Query, Mutation, EmptySubscription).enable_federation()
}

/// The schema wired to the payment use cases.
pub fn schema(payments: Payments, limits: &GraphqlSettings) -> PaymentSchema {
    let mut builder = builder()
        .data(payments)
        .limit_depth(limits.max_depth)
        .limit_complexity(limits.max_complexity);
    if !limits.introspection {
        builder = builder.disable_introspection();
    }
    builder.finish()
}

/// The federation SDL that composition and `shopgraph sdl payment` use.
pub fn sdl() -> String {
    builder()
        .finish()
        .sdl_with_options(SDLExportOptions::new().federation())
}

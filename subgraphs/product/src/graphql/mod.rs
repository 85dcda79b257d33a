//! The product subgraph's GraphQL API (Federation v2), a thin adapter:
//! resolvers parse arguments into domain inputs, check the caller's role,
//! call the store and map [`crate::domain::ProductError`] to coded errors.

mod error;
mod loader;
mod mutation;
mod query;
mod types;

use async_graphql::dataloader::DataLoader;
use async_graphql::{EmptySubscription, SDLExportOptions, Schema, SchemaBuilder};
use shopgraph_platform::settings::GraphqlSettings;

use crate::store::ProductStore;
pub use loader::ProductLoader;
use mutation::Mutation;
use query::Query;

/// The executable schema of the product subgraph.
pub type ProductSchema = Schema<Query, Mutation, EmptySubscription>;

/// Settings resolvers need besides the store.
#[derive(Debug, Clone)]
pub struct CatalogSettings {
    /// Currency of products created without one.
    pub default_currency: String,
}

fn builder() -> SchemaBuilder<Query, Mutation, EmptySubscription> {
    Schema::build(Query, Mutation, EmptySubscription).enable_federation()
}

/// The schema wired to `store`.
pub fn schema(
    store: ProductStore,
    catalog: CatalogSettings,
    limits: &GraphqlSettings,
) -> ProductSchema {
    let loader =
        DataLoader::new(ProductLoader::new(store.clone()), tokio::spawn).max_batch_size(1000);
    let mut builder = builder()
        .data(store)
        .data(loader)
        .data(catalog)
        .limit_depth(limits.max_depth)
        .limit_complexity(limits.max_complexity);
    if !limits.introspection {
        builder = builder.disable_introspection();
    }
    builder.finish()
}

/// The federation SDL that composition and `shopgraph sdl product` use.
pub fn sdl() -> String {
    builder()
        .finish()
        .sdl_with_options(SDLExportOptions::new().federation())
}

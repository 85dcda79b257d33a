//! The product subgraph's GraphQL API (Federation v2), a thin adapter:
//! resolvers parse arguments into domain inputs, check the caller's role,
//! call the store and map [`crate::domain::ProductError`] to coded errors.
//! The checkout's reservation mutations are `@inaccessible`: subgraph-only,
//! for payment over the signed hop.

mod error;
mod loader;
mod mutation;
mod query;
mod reservation;
mod subscription;
mod types;

use async_graphql::Schema;
use async_graphql::dataloader::DataLoader;
use subgraph_kit::events::live::LiveFeed;
use subgraph_kit::settings::GraphqlSettings;

use crate::store::ProductStore;
pub use error::product_error;
pub use loader::ProductLoader;
use mutation::Mutation;
use query::Query;
use subscription::Subscription;

/// The executable schema of the product subgraph.
pub type ProductSchema = Schema<Query, Mutation, Subscription>;

/// Settings resolvers need besides the store.
#[derive(Debug, Clone)]
pub struct CatalogSettings {
    /// Currency of products created without one.
    pub default_currency: String,
}

/// The schema wired to `store`, with subscriptions fed by `feed`.
pub fn schema(
    store: ProductStore,
    catalog: CatalogSettings,
    limits: &GraphqlSettings,
    feed: LiveFeed,
) -> ProductSchema {
    let loader =
        DataLoader::new(ProductLoader::new(store.clone()), tokio::spawn).max_batch_size(1000);
    subgraph_kit::graphql::federated(Schema::build(Query, Mutation, Subscription), limits)
        .data(store)
        .data(feed)
        .data(loader)
        .data(catalog)
        .finish()
}

/// The federation SDL that composition and `shopgraph sdl product` use.
pub fn sdl() -> String {
    subgraph_kit::graphql::federation_sdl(Schema::build(Query, Mutation, Subscription))
}

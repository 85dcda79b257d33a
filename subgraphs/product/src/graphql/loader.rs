//! Batches product lookups: every `_entities` representation and every
//! `product(id:)` field resolved in the same tick becomes one SQL query.

use std::collections::HashMap;
use std::sync::Arc;

use async_graphql::dataloader::Loader;
use uuid::Uuid;

use crate::domain::{Product, ProductError};
use crate::store::ProductStore;

/// Loads products by id through [`ProductStore::get_many`].
pub struct ProductLoader {
    store: ProductStore,
}

impl ProductLoader {
    /// A loader over `store`.
    pub fn new(store: ProductStore) -> Self {
        Self { store }
    }
}

impl Loader<Uuid> for ProductLoader {
    type Value = Product;
    type Error = Arc<ProductError>;

    async fn load(&self, keys: &[Uuid]) -> Result<HashMap<Uuid, Product>, Self::Error> {
        let products = self.store.get_many(keys).await.map_err(Arc::new)?;
        Ok(products.into_iter().map(|p| (p.id, p)).collect())
    }
}

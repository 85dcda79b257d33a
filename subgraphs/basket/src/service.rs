//! The basket use cases: what a signed-in user can do with their basket.
//!
//! Each use case validates its input, asks the product catalogue for the
//! current name, price and stock (never the client), and lets the store
//! apply the change in one transaction. If the catalogue cannot be asked,
//! nothing is written.

use std::sync::Arc;

use uuid::Uuid;

use crate::domain::{
    Basket, BasketError, CatalogProduct, MAX_QUANTITY, ProductCatalog, validate_quantity,
};
use crate::store::BasketStore;

/// Basket operations for one store and one catalogue.
#[derive(Clone)]
pub struct Baskets {
    store: BasketStore,
    catalog: Arc<dyn ProductCatalog>,
}

impl Baskets {
    /// Use cases over `store`, priced by `catalog`.
    pub fn new(store: BasketStore, catalog: Arc<dyn ProductCatalog>) -> Self {
        Self { store, catalog }
    }

    /// The user's basket (created empty on first use).
    pub async fn basket(&self, user_id: &str) -> Result<Basket, BasketError> {
        self.store.basket(user_id).await
    }

    /// Adds `quantity` units of a product, or more units to its line.
    pub async fn add(
        &self,
        user_id: &str,
        product_id: &str,
        quantity: i32,
    ) -> Result<Basket, BasketError> {
        let quantity = validate_quantity(quantity)?;
        let product = self.current_product(product_id).await?;
        let max_total = product.stock.clamp(0, MAX_QUANTITY);
        if quantity > max_total {
            return Err(BasketError::over_limit(&product, quantity));
        }
        self.store
            .add_item(user_id, &product, quantity, max_total)
            .await
    }

    /// Sets a line to `quantity` units, re-priced at the current price.
    pub async fn update(
        &self,
        user_id: &str,
        product_id: &str,
        quantity: i32,
    ) -> Result<Basket, BasketError> {
        let quantity = validate_quantity(quantity)?;
        let product = self.current_product(product_id).await?;
        if quantity > product.stock {
            return Err(BasketError::over_limit(&product, quantity));
        }
        self.store.set_quantity(user_id, &product, quantity).await
    }

    /// Removes a product's line.
    pub async fn remove(&self, user_id: &str, product_id: &str) -> Result<Basket, BasketError> {
        let id = parse_product_id(product_id)?;
        self.store.remove_item(user_id, id).await
    }

    /// Empties the basket.
    pub async fn clear(&self, user_id: &str) -> Result<Basket, BasketError> {
        self.store.clear(user_id).await
    }

    async fn current_product(&self, product_id: &str) -> Result<CatalogProduct, BasketError> {
        let id = parse_product_id(product_id)?;
        self.catalog
            .product(id)
            .await?
            .ok_or_else(|| BasketError::ProductNotFound(product_id.to_owned()))
    }
}

fn parse_product_id(id: &str) -> Result<Uuid, BasketError> {
    Uuid::parse_str(id.trim()).map_err(|_| BasketError::ProductNotFound(id.to_owned()))
}

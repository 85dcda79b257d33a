//! The basket use cases: what a signed-in user can do with their basket.
//!
//! Each use case validates its input, asks the product catalogue for the
//! current name, price and stock (never the client), and lets the store
//! apply the change in one transaction. If the catalogue cannot be asked,
//! nothing is written.
//!
//! The checkout use cases ([`Baskets::begin_checkout`],
//! [`Baskets::release_checkout`]) are payment's calls over the signed hop,
//! acting for the payer; [`Baskets::confirm_prices`] is the shopper's
//! re-confirmation after a checkout refused stale prices (`PRICE_CHANGED`).

use std::sync::Arc;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::domain::{
    Basket, BasketError, CatalogProduct, MAX_QUANTITY, ProductCatalog, UncheckedLine, now,
    validate_checkout, validate_quantity,
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

    /// Locks the user's basket for payment `payment_id` if it holds exactly
    /// `lines` and no other checkout holds it, until `locked_until`
    /// (clamped to a day).
    pub async fn begin_checkout(
        &self,
        user_id: &str,
        payment_id: &str,
        lines: Vec<UncheckedLine>,
        locked_until: DateTime<Utc>,
    ) -> Result<Basket, BasketError> {
        let request = validate_checkout(payment_id, lines, locked_until, now())?;
        self.store.begin_checkout(user_id, &request).await
    }

    /// Releases the user's basket from `payment_id`'s checkout; a no-op for
    /// a checkout that is unknown, lapsed or already settled.
    pub async fn release_checkout(
        &self,
        user_id: &str,
        payment_id: &str,
    ) -> Result<(), BasketError> {
        let id = Uuid::parse_str(payment_id.trim()).map_err(|_| BasketError::Invalid {
            field: "paymentId",
            reason: format!("must be a UUID, got {payment_id:?}"),
        })?;
        self.store.release_checkout(user_id, id).await
    }

    /// Re-reads every line's name and price from the catalogue and writes
    /// them into the basket (quantities stay): the shopper accepts the
    /// current prices after a checkout answered `PRICE_CHANGED`. A product
    /// the catalogue no longer knows keeps its line as it was (a checkout
    /// then names it as unavailable). If the catalogue cannot be asked,
    /// nothing is written.
    pub async fn confirm_prices(&self, user_id: &str) -> Result<Basket, BasketError> {
        let basket = self.store.basket(user_id).await?;
        let lookups = basket
            .items
            .iter()
            .map(|item| self.catalog.product(item.product_id));
        let products: Vec<CatalogProduct> = futures::future::try_join_all(lookups)
            .await?
            .into_iter()
            .flatten()
            .collect();
        self.store.reprice(user_id, &products).await
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

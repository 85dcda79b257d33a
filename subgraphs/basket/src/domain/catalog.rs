//! The port through which baskets learn about products.
//!
//! The basket never trusts a client for names, prices or stock: it asks the
//! catalogue (in production, the product subgraph over GraphQL; see
//! `crate::catalog_client`).

use futures::future::BoxFuture;
use rust_decimal::Decimal;
use uuid::Uuid;

/// What a basket needs to know about a product right now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CatalogProduct {
    /// The product.
    pub id: Uuid,
    /// Current name.
    pub name: String,
    /// Current category.
    pub category: String,
    /// Current unit price.
    pub price: Decimal,
    /// Currency of `price`.
    pub currency: String,
    /// Units available now.
    pub stock: i32,
}

/// The catalogue could not be asked (down, timed out, answered nonsense).
#[derive(Debug, thiserror::Error)]
#[error("the product catalogue is unavailable")]
pub struct CatalogUnavailable(#[source] pub Box<dyn std::error::Error + Send + Sync>);

/// Looks products up.
pub trait ProductCatalog: Send + Sync + 'static {
    /// The product, or `None` if it does not exist.
    fn product(
        &self,
        id: Uuid,
    ) -> BoxFuture<'_, Result<Option<CatalogProduct>, CatalogUnavailable>>;
}

//! Everything that can go wrong with a basket.

use sea_orm::DbErr;
use uuid::Uuid;

use super::{CatalogProduct, CatalogUnavailable, MAX_QUANTITY};

/// A basket operation that could not be carried out.
#[derive(Debug, thiserror::Error)]
pub enum BasketError {
    /// An input broke a rule; the message names the field.
    #[error("{field}: {reason}")]
    Invalid {
        /// The argument, as clients spell it.
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// The product does not exist (or the id is malformed).
    #[error("product {0} does not exist")]
    ProductNotFound(String),
    /// The product is not in the basket.
    #[error("product {0} is not in the basket")]
    ItemNotFound(Uuid),
    /// The basket would hold more units than are in stock.
    #[error(
        "quantity: only {available} of product {product_id} in stock; the basket would hold {requested}"
    )]
    InsufficientStock {
        /// The product.
        product_id: Uuid,
        /// Units in stock.
        available: i32,
        /// Units the basket would hold.
        requested: i32,
    },
    /// The basket would exceed the per-product maximum.
    #[error("quantity: a basket holds at most {max} of one product")]
    TooMany {
        /// [`super::MAX_QUANTITY`].
        max: i32,
    },
    /// The product is priced in another currency than the basket.
    #[error("productId: the basket is in {basket}; this product is priced in {product}")]
    CurrencyMismatch {
        /// The basket's currency.
        basket: String,
        /// The product's currency.
        product: String,
    },
    /// A checkout found nothing to buy.
    #[error("the basket is empty")]
    EmptyBasket,
    /// The basket no longer holds the lines a checkout was priced from.
    #[error("the basket changed during checkout: its lines are not the ones being paid for")]
    CheckoutChanged,
    /// Another payment holds the basket's checkout lock.
    #[error("another checkout of this basket is in progress; wait for it to finish or expire")]
    CheckoutInProgress,
    /// The payment's checkout has already ended (completed or released);
    /// it cannot lock the basket again.
    #[error("this checkout has already ended; start a new one")]
    CheckoutSettled,
    /// Another user's basket was asked for.
    #[error("basket not found")]
    NotYours,
    /// The product catalogue could not be asked; nothing was changed.
    #[error(transparent)]
    CatalogUnavailable(#[from] CatalogUnavailable),
    /// The store failed; details go to the logs.
    #[error("basket store failure")]
    Store(#[from] DbErr),
}

impl BasketError {
    /// Why a line may not hold `requested` units of `product`: not enough
    /// stock, or more than the per-product maximum.
    pub fn over_limit(product: &CatalogProduct, requested: i32) -> Self {
        if requested > product.stock {
            Self::InsufficientStock {
                product_id: product.id,
                available: product.stock,
                requested,
            }
        } else {
            Self::TooMany { max: MAX_QUANTITY }
        }
    }
}

//! Everything that can go wrong in the catalogue.

use sea_orm::DbErr;
use subgraph_kit::pagination::PageError;

/// A catalogue operation that could not be carried out.
#[derive(Debug, thiserror::Error)]
pub enum ProductError {
    /// An input field broke a rule; the message names the field.
    #[error("{field}: {reason}")]
    Invalid {
        /// The input field, as clients spell it (`name`, `price`).
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// Pagination arguments were refused.
    #[error(transparent)]
    Page(#[from] PageError),
    /// No product has this id.
    #[error("product {0} does not exist")]
    NotFound(String),
    /// Removing `requested` units would take the stock below zero.
    #[error("product {id} has {available} in stock; cannot remove {requested}")]
    InsufficientStock {
        /// The product.
        id: String,
        /// Units in stock when the adjustment was refused.
        available: i32,
        /// Units the caller tried to remove.
        requested: i64,
    },
    /// Adding units would exceed the largest stock level we store.
    #[error("product {id} cannot hold more than {max} units")]
    StockOverflow {
        /// The product.
        id: String,
        /// The ceiling ([`crate::domain::MAX_STOCK`]).
        max: i32,
    },
    /// The store failed; details go to the logs, not to clients.
    #[error("product store failure")]
    Store(#[from] DbErr),
}

impl ProductError {
    /// Shorthand for [`ProductError::Invalid`].
    pub fn invalid(field: &'static str, reason: impl Into<String>) -> Self {
        Self::Invalid {
            field,
            reason: reason.into(),
        }
    }
}

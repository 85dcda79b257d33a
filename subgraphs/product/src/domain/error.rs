//! Everything that can go wrong in the catalogue.

use sea_orm::DbErr;
use subgraph_kit::pagination::PageError;
use uuid::Uuid;

use super::reservation::{
    PriceChange, Shortage, UnavailableLine, describe_price_changes, describe_shortages,
    describe_unavailable,
};

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
    /// A reservation named products the catalogue does not have (deleted
    /// or unknown); every such line is listed.
    #[error("{}", describe_unavailable(.0))]
    ProductUnavailable(Vec<UnavailableLine>),
    /// A reservation's price or currency is not the catalogue's now; every
    /// such line is listed with both prices.
    #[error("{}", describe_price_changes(.0))]
    PriceChanged(Vec<PriceChange>),
    /// A reservation asked for more units than are left; every such line
    /// is listed with what is left.
    #[error("{}", describe_shortages(.0))]
    OutOfStock(Vec<Shortage>),
    /// A reservation id already used by another payer.
    #[error("reservation {0} already exists for another user")]
    ReservationTaken(Uuid),
    /// A stored reservation holds a status this version does not know
    /// (written by a newer version); nothing is changed.
    #[error("reservation {id} has an unknown status {status}")]
    UnknownReservationStatus {
        /// The reservation.
        id: Uuid,
        /// What is stored.
        status: String,
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

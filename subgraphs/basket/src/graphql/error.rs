//! How basket errors look to clients.

use shopgraph_core::error::{Coded, ErrorCode};

use crate::domain::BasketError;

impl Coded for BasketError {
    fn code(&self) -> ErrorCode {
        match self {
            BasketError::Invalid { .. }
            | BasketError::InsufficientStock { .. }
            | BasketError::TooMany { .. }
            | BasketError::CurrencyMismatch { .. }
            | BasketError::EmptyBasket => ErrorCode::BadUserInput,
            BasketError::CheckoutChanged
            | BasketError::CheckoutInProgress
            | BasketError::CheckoutSettled => ErrorCode::Conflict,
            BasketError::ProductNotFound(_)
            | BasketError::ItemNotFound(_)
            | BasketError::NotYours => ErrorCode::NotFound,
            BasketError::CatalogUnavailable(_) => ErrorCode::SubgraphUnavailable,
            BasketError::Store(_) => ErrorCode::Internal,
        }
    }
}

//! How basket errors look to clients.

use shopgraph_core::error::{Coded, ErrorCode};

use crate::domain::BasketError;

impl Coded for BasketError {
    fn code(&self) -> ErrorCode {
        match self {
            BasketError::Invalid { .. }
            | BasketError::InsufficientStock { .. }
            | BasketError::TooMany { .. }
            | BasketError::CurrencyMismatch { .. } => ErrorCode::BadUserInput,
            BasketError::ProductNotFound(_)
            | BasketError::ItemNotFound(_)
            | BasketError::NotYours => ErrorCode::NotFound,
            BasketError::CatalogUnavailable(_) => ErrorCode::SubgraphUnavailable,
            BasketError::Store(_) => ErrorCode::Internal,
        }
    }
}

//! How catalogue errors look to clients.

use shopgraph_core::error::{Coded, ErrorCode};

use crate::domain::ProductError;

impl Coded for ProductError {
    fn code(&self) -> ErrorCode {
        match self {
            ProductError::Invalid { .. } | ProductError::Page(_) => ErrorCode::BadUserInput,
            ProductError::NotFound(_) => ErrorCode::NotFound,
            ProductError::InsufficientStock { .. } | ProductError::StockOverflow { .. } => {
                ErrorCode::Conflict
            }
            ProductError::Store(_) => ErrorCode::Internal,
        }
    }
}

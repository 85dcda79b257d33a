//! How payment errors look to clients.

use shopgraph_core::error::{Coded, ErrorCode};

use crate::domain::PaymentError;

impl Coded for PaymentError {
    fn code(&self) -> ErrorCode {
        match self {
            PaymentError::Invalid { .. }
            | PaymentError::Page(_)
            | PaymentError::EmptyBasket
            | PaymentError::MixedCurrencies(..) => ErrorCode::BadUserInput,
            PaymentError::NotFound(_) => ErrorCode::NotFound,
            PaymentError::IllegalTransition { .. }
            | PaymentError::IdempotencyConflict(_)
            | PaymentError::RefundRefused(_) => ErrorCode::Conflict,
            PaymentError::Basket(upstream) => upstream.code(),
            PaymentError::ProviderUnavailable(_) => ErrorCode::SubgraphUnavailable,
            PaymentError::Store(_) => ErrorCode::Internal,
        }
    }
}

//! How notification errors look to clients.

use shopgraph_core::error::{Coded, ErrorCode};

use crate::domain::NotificationError;

impl Coded for NotificationError {
    fn code(&self) -> ErrorCode {
        match self {
            NotificationError::Invalid { .. } | NotificationError::Page(_) => {
                ErrorCode::BadUserInput
            }
            NotificationError::NotFound(_) => ErrorCode::NotFound,
            NotificationError::WrongStatus { .. }
            | NotificationError::RetryLimit { .. }
            | NotificationError::BeingDelivered(_) => ErrorCode::Conflict,
            NotificationError::Store(_) => ErrorCode::Internal,
        }
    }
}

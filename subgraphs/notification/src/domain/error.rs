//! Everything that can go wrong with a notification.

use sea_orm::DbErr;
use subgraph_kit::pagination::PageError;

use super::Status;

/// A notification operation that could not be carried out.
#[derive(Debug, thiserror::Error)]
pub enum NotificationError {
    /// An input broke a rule; the message names the field.
    #[error("{field}: {reason}")]
    Invalid {
        /// The input field, as clients spell it.
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// Pagination arguments were refused.
    #[error(transparent)]
    Page(#[from] PageError),
    /// No such notification, or not the caller's.
    #[error("notification {0} does not exist")]
    NotFound(String),
    /// The operation does not apply in the current status.
    #[error("cannot {action} a notification that is {current}")]
    WrongStatus {
        /// The status now.
        current: Status,
        /// What was attempted.
        action: &'static str,
    },
    /// Another replica (or request) is delivering it right now.
    #[error("notification {0} is being delivered; try again later")]
    BeingDelivered(String),
    /// The retry budget is spent.
    #[error("notification {id} was already retried {attempts} times (the limit)")]
    RetryLimit {
        /// The notification.
        id: String,
        /// Retries made.
        attempts: i32,
    },
    /// The store failed; details go to the logs.
    #[error("notification store failure")]
    Store(#[from] DbErr),
}

impl NotificationError {
    /// Shorthand for [`NotificationError::Invalid`].
    pub fn invalid(field: &'static str, reason: impl Into<String>) -> Self {
        Self::Invalid {
            field,
            reason: reason.into(),
        }
    }
}

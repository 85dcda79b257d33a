//! Everything that can go wrong with a payment.

use sea_orm::DbErr;
use subgraph_kit::pagination::PageError;
use subgraph_kit::upstream::UpstreamError;

use super::PaymentStatus;
use super::provider::ProviderError;

/// A payment operation that could not be carried out.
#[derive(Debug, thiserror::Error)]
pub enum PaymentError {
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
    /// There is nothing to pay for.
    #[error("the basket is empty")]
    EmptyBasket,
    /// The basket mixes currencies, so it has no single amount.
    #[error("the basket mixes currencies ({0} and {1})")]
    MixedCurrencies(String, String),
    /// No such payment, or not the caller's.
    #[error("payment {0} does not exist")]
    NotFound(String),
    /// The state machine has no such edge from the current status.
    #[error("cannot {action} a payment that is {current}")]
    IllegalTransition {
        /// The payment's status now.
        current: PaymentStatus,
        /// What was attempted.
        action: &'static str,
    },
    /// The idempotency key was used before for a different request.
    #[error("idempotencyKey {0:?} was already used for a different request")]
    IdempotencyConflict(String),
    /// The basket subgraph could not be asked.
    #[error(transparent)]
    Basket(#[from] UpstreamError),
    /// The provider could not be asked, or did not decide (a refund then
    /// stays requested until the sweeper learns its fate).
    #[error("the payment provider is unavailable")]
    ProviderUnavailable(#[source] ProviderError),
    /// The provider refused a refund; nothing was given back.
    #[error("the payment provider refused the refund: {0}")]
    RefundRefused(String),
    /// The store failed; details go to the logs.
    #[error("payment store failure")]
    Store(#[from] DbErr),
}

impl PaymentError {
    /// Shorthand for [`PaymentError::Invalid`].
    pub fn invalid(field: &'static str, reason: impl Into<String>) -> Self {
        Self::Invalid {
            field,
            reason: reason.into(),
        }
    }
}

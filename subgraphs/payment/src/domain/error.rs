//! Everything that can go wrong with a payment.

use sea_orm::DbErr;
use shopgraph_core::error::ErrorCode;
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
    /// The product subgraph could not be asked to reserve stock.
    #[error(transparent)]
    Stock(UpstreamError),
    /// The product or basket subgraph refused a checkout step with a coded
    /// error (`OUT_OF_STOCK`, `PRICE_CHANGED`, `CONFLICT`...) that the
    /// payer can act on: passed on with the same code, message and
    /// extensions.
    #[error("{message}")]
    Refused {
        /// The upstream's `extensions.code`.
        code: ErrorCode,
        /// The upstream's message (written for the payer).
        message: String,
        /// The upstream's other extensions (the lines concerned...).
        extensions: serde_json::Map<String, serde_json::Value>,
    },
    /// The provider could not carry out a refund.
    #[error("the payment provider is unavailable")]
    ProviderUnavailable(#[source] ProviderError),
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

    /// A checkout step's upstream failure: a refusal the payer can act on
    /// is passed on as [`PaymentError::Refused`], anything else (an outage,
    /// a malformed answer, an unexpected code) is wrapped by `other`.
    pub fn from_checkout_step(err: UpstreamError, other: fn(UpstreamError) -> Self) -> Self {
        let passed = match &err {
            UpstreamError::Rejected {
                code: Some(code), ..
            } => passed_on(code),
            _ => None,
        };
        match (passed, err) {
            (
                Some(code),
                UpstreamError::Rejected {
                    message,
                    extensions,
                    ..
                },
            ) => Self::Refused {
                code,
                message,
                extensions,
            },
            (_, err) => other(err),
        }
    }

    /// Whether this is the basket's refusal to lock: another checkout of
    /// the basket is in progress, or its lines changed meanwhile.
    pub fn is_conflict(&self) -> bool {
        matches!(
            self,
            Self::Refused {
                code: ErrorCode::Conflict,
                ..
            }
        )
    }
}

/// The upstream codes a checkout passes on to its caller as they are.
fn passed_on(code: &str) -> Option<ErrorCode> {
    [
        ErrorCode::OutOfStock,
        ErrorCode::ProductUnavailable,
        ErrorCode::PriceChanged,
        ErrorCode::Conflict,
        ErrorCode::BadUserInput,
    ]
    .into_iter()
    .find(|known| known.as_str() == code)
}

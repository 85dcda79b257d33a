//! The payment provider port and the simulated provider Shopgraph ships.
//!
//! The simulated provider is deterministic, by card number (as the big
//! providers' test modes are):
//!
//! | card | outcome |
//! |---|---|
//! | `4242424242424242` | charged |
//! | `4000000000000002` | declined: `FAILED`, not retryable |
//! | `4000000000000119` | provider error: `FAILED`, retryable |
//! | any other valid card | declined: not a test card |

use futures::future::BoxFuture;
use rust_decimal::Decimal;
use uuid::Uuid;

use super::Card;

/// A charge to make.
#[derive(Debug, Clone)]
pub struct ChargeRequest {
    /// Our payment id (the provider's idempotency key).
    pub payment_id: Uuid,
    /// Amount to capture.
    pub amount: Decimal,
    /// Its currency.
    pub currency: String,
    /// The card.
    pub card: Card,
}

/// What the provider decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChargeOutcome {
    /// Captured; the provider's reference.
    Captured {
        /// Provider reference of the charge.
        provider_id: String,
    },
    /// Refused by the issuer; retrying the same card will not help.
    Declined {
        /// The issuer's reason.
        reason: String,
    },
}

/// The provider failed to decide (outage, timeout); a retry may succeed.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{reason}")]
pub struct ProviderError {
    /// What went wrong.
    pub reason: String,
}

/// A payment provider.
pub trait PaymentProvider: Send + Sync + 'static {
    /// Its name, stored with each payment.
    fn name(&self) -> &'static str;
    /// Captures `request.amount` from the card.
    fn charge(&self, request: ChargeRequest)
    -> BoxFuture<'_, Result<ChargeOutcome, ProviderError>>;
    /// Refunds `amount` of the charge `provider_id`; returns the refund's reference.
    fn refund(
        &self,
        provider_id: &str,
        amount: Decimal,
    ) -> BoxFuture<'_, Result<String, ProviderError>>;
}

/// The deterministic test provider (see the module docs).
#[derive(Debug, Default, Clone)]
pub struct SimulatedProvider;

/// Test card that is always charged.
pub const CARD_SUCCEEDS: &str = "4242424242424242";
/// Test card that is always declined.
pub const CARD_DECLINED: &str = "4000000000000002";
/// Test card whose charge fails with a provider error.
pub const CARD_PROVIDER_ERROR: &str = "4000000000000119";

impl PaymentProvider for SimulatedProvider {
    fn name(&self) -> &'static str {
        "simulated"
    }

    fn charge(
        &self,
        request: ChargeRequest,
    ) -> BoxFuture<'_, Result<ChargeOutcome, ProviderError>> {
        Box::pin(async move {
            match request.card.number() {
                CARD_SUCCEEDS => Ok(ChargeOutcome::Captured {
                    provider_id: format!("sim_ch_{}", request.payment_id.simple()),
                }),
                CARD_DECLINED => Ok(ChargeOutcome::Declined {
                    reason: "card_declined: the issuer declined the card".into(),
                }),
                CARD_PROVIDER_ERROR => Err(ProviderError {
                    reason: "processing_error: the provider could not reach the issuer".into(),
                }),
                _ => Ok(ChargeOutcome::Declined {
                    reason: "card_not_supported: not a test card of the simulated provider".into(),
                }),
            }
        })
    }

    fn refund(
        &self,
        provider_id: &str,
        amount: Decimal,
    ) -> BoxFuture<'_, Result<String, ProviderError>> {
        let reference = format!("sim_re_{provider_id}_{amount}");
        Box::pin(async move { Ok(reference) })
    }
}

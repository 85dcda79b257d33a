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
//!
//! Like a real provider it keeps what it decided, by our ids: charging a
//! payment again returns the first answer, a refund may not take more than
//! is left on its charge, and [`PaymentProvider::lookup`] /
//! [`PaymentProvider::lookup_refund`] answer what happened to a call whose
//! answer we lost. The record lives in the process's memory (one per
//! process, shared by the clones handed to the use cases), so it does not
//! outlive a restart: a payment left PROCESSING by a process that died is
//! "never seen" by the next one and settled FAILED, which is true of the
//! simulation — no money moved that anyone remembers.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

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

/// A refund to make.
#[derive(Debug, Clone)]
pub struct RefundRequest {
    /// Our refund id: the provider's idempotency key, and how the refund
    /// is looked up after a crash ([`PaymentProvider::lookup_refund`]).
    pub refund_id: Uuid,
    /// The provider's reference of the charge to refund.
    pub charge_id: String,
    /// Amount to give back.
    pub amount: Decimal,
    /// Its currency.
    pub currency: String,
}

/// What the provider did with a refund.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RefundOutcome {
    /// Given back; the provider's reference of the refund.
    Refunded {
        /// Provider reference of the refund.
        provider_refund_id: String,
    },
    /// Refused (unknown charge, more than is left on it).
    Refused {
        /// The provider's reason.
        reason: String,
    },
}

/// A payment provider.
///
/// Every call is idempotent by our id (the payment's for a charge, the
/// refund's for a refund), and the provider keeps what it decided, so
/// after a crash between its answer and our commit the sweeper asks it
/// ([`Self::lookup`], [`Self::lookup_refund`]) instead of charging or
/// refunding again.
pub trait PaymentProvider: Send + Sync + 'static {
    /// Its name, stored with each payment.
    fn name(&self) -> &'static str;
    /// Captures `request.amount` from the card.
    fn charge(&self, request: ChargeRequest)
    -> BoxFuture<'_, Result<ChargeOutcome, ProviderError>>;
    /// What the provider decided for the charge of `payment_id`; `None`
    /// if it never received one.
    fn lookup(
        &self,
        payment_id: Uuid,
    ) -> BoxFuture<'_, Result<Option<ChargeOutcome>, ProviderError>>;
    /// Gives back `request.amount` of a captured charge.
    fn refund(&self, request: RefundRequest)
    -> BoxFuture<'_, Result<RefundOutcome, ProviderError>>;
    /// What the provider decided for refund `refund_id`; `None` if it never
    /// received it.
    fn lookup_refund(
        &self,
        refund_id: Uuid,
    ) -> BoxFuture<'_, Result<Option<RefundOutcome>, ProviderError>>;
}

/// The deterministic test provider (see the module docs). Clones share one
/// record of charges and refunds.
#[derive(Debug, Default, Clone)]
pub struct SimulatedProvider {
    ledger: Arc<Mutex<Ledger>>,
}

/// What the simulated provider has decided, by our ids.
#[derive(Debug, Default)]
struct Ledger {
    charges: HashMap<Uuid, ChargeRecord>,
    refunds: HashMap<Uuid, RefundOutcome>,
}

#[derive(Debug)]
struct ChargeRecord {
    outcome: ChargeOutcome,
    amount: Decimal,
    refunded: Decimal,
}

/// Test card that is always charged.
pub const CARD_SUCCEEDS: &str = "4242424242424242";
/// Test card that is always declined.
pub const CARD_DECLINED: &str = "4000000000000002";
/// Test card whose charge fails with a provider error.
pub const CARD_PROVIDER_ERROR: &str = "4000000000000119";

/// The prefix of the simulated provider's charge references.
const CHARGE_PREFIX: &str = "sim_ch_";

impl SimulatedProvider {
    fn ledger(&self) -> MutexGuard<'_, Ledger> {
        self.ledger
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn decide_charge(&self, request: &ChargeRequest) -> Result<ChargeOutcome, ProviderError> {
        let mut ledger = self.ledger();
        if let Some(known) = ledger.charges.get(&request.payment_id) {
            // The same payment again (a retry): the first answer, not a
            // second capture.
            return Ok(known.outcome.clone());
        }
        let outcome = match request.card.number() {
            CARD_SUCCEEDS => ChargeOutcome::Captured {
                provider_id: format!("{CHARGE_PREFIX}{}", request.payment_id.simple()),
            },
            CARD_DECLINED => ChargeOutcome::Declined {
                reason: "card_declined: the issuer declined the card".into(),
            },
            CARD_PROVIDER_ERROR => {
                // Undecided: nothing recorded, so a lookup finds nothing.
                return Err(ProviderError {
                    reason: "processing_error: the provider could not reach the issuer".into(),
                });
            }
            _ => ChargeOutcome::Declined {
                reason: "card_not_supported: not a test card of the simulated provider".into(),
            },
        };
        ledger.charges.insert(
            request.payment_id,
            ChargeRecord {
                outcome: outcome.clone(),
                amount: request.amount,
                refunded: Decimal::ZERO,
            },
        );
        Ok(outcome)
    }

    fn decide_refund(&self, request: &RefundRequest) -> RefundOutcome {
        let mut ledger = self.ledger();
        if let Some(known) = ledger.refunds.get(&request.refund_id) {
            return known.clone();
        }
        let captured = request
            .charge_id
            .strip_prefix(CHARGE_PREFIX)
            .and_then(|id| Uuid::try_parse(id).ok());
        let outcome = match captured {
            None => RefundOutcome::Refused {
                reason: format!("no_such_charge: {} is not a charge", request.charge_id),
            },
            Some(payment_id) => match ledger.charges.get_mut(&payment_id) {
                Some(charge) if !matches!(charge.outcome, ChargeOutcome::Captured { .. }) => {
                    RefundOutcome::Refused {
                        reason: "charge_not_captured: nothing was captured".into(),
                    }
                }
                Some(charge) if charge.refunded + request.amount > charge.amount => {
                    RefundOutcome::Refused {
                        reason: format!(
                            "amount_too_large: {} of {} is left to refund",
                            charge.amount - charge.refunded,
                            charge.amount
                        ),
                    }
                }
                Some(charge) => {
                    charge.refunded += request.amount;
                    refunded(request.refund_id)
                }
                // Its own reference for a charge this process did not
                // make: one captured before a restart (the record lives
                // in memory). Trusted, as it cannot be checked.
                None => refunded(request.refund_id),
            },
        };
        ledger.refunds.insert(request.refund_id, outcome.clone());
        outcome
    }
}

fn refunded(refund_id: Uuid) -> RefundOutcome {
    RefundOutcome::Refunded {
        provider_refund_id: format!("sim_re_{}", refund_id.simple()),
    }
}

impl PaymentProvider for SimulatedProvider {
    fn name(&self) -> &'static str {
        "simulated"
    }

    fn charge(
        &self,
        request: ChargeRequest,
    ) -> BoxFuture<'_, Result<ChargeOutcome, ProviderError>> {
        Box::pin(async move { self.decide_charge(&request) })
    }

    fn lookup(
        &self,
        payment_id: Uuid,
    ) -> BoxFuture<'_, Result<Option<ChargeOutcome>, ProviderError>> {
        Box::pin(async move {
            Ok(self
                .ledger()
                .charges
                .get(&payment_id)
                .map(|charge| charge.outcome.clone()))
        })
    }

    fn refund(
        &self,
        request: RefundRequest,
    ) -> BoxFuture<'_, Result<RefundOutcome, ProviderError>> {
        Box::pin(async move { Ok(self.decide_refund(&request)) })
    }

    fn lookup_refund(
        &self,
        refund_id: Uuid,
    ) -> BoxFuture<'_, Result<Option<RefundOutcome>, ProviderError>> {
        Box::pin(async move { Ok(self.ledger().refunds.get(&refund_id).cloned()) })
    }
}

#[cfg(test)]
mod tests {
    use std::str::FromStr;

    use super::*;

    fn charge_of(payment_id: Uuid, number: &str) -> ChargeRequest {
        ChargeRequest {
            payment_id,
            amount: Decimal::from_str("10.00").unwrap_or_default(),
            currency: "EUR".into(),
            card: Card::parse(number, 12, 2040, "123").expect("a test card"),
        }
    }

    fn refund_of(charge_id: &str, amount: &str) -> RefundRequest {
        RefundRequest {
            refund_id: Uuid::now_v7(),
            charge_id: charge_id.to_owned(),
            amount: Decimal::from_str(amount).unwrap_or_default(),
            currency: "EUR".into(),
        }
    }

    #[tokio::test]
    async fn charges_are_recorded_by_payment_and_answered_once() {
        let provider = SimulatedProvider::default();
        let (paid, declined, errored) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
        let first = provider.charge(charge_of(paid, CARD_SUCCEEDS)).await;
        // A retry with another card gets the first answer: no second capture.
        let again = provider.charge(charge_of(paid, CARD_DECLINED)).await;
        assert_eq!(first.as_ref().ok(), again.as_ref().ok());
        assert!(matches!(first, Ok(ChargeOutcome::Captured { .. })));
        assert_eq!(provider.lookup(paid).await.ok().flatten(), first.ok());

        let refused = provider.charge(charge_of(declined, CARD_DECLINED)).await;
        assert!(matches!(refused, Ok(ChargeOutcome::Declined { .. })));
        assert_eq!(provider.lookup(declined).await.ok().flatten(), refused.ok());

        // A provider error decided nothing: there is nothing to look up.
        assert!(
            provider
                .charge(charge_of(errored, CARD_PROVIDER_ERROR))
                .await
                .is_err()
        );
        assert_eq!(provider.lookup(errored).await.ok().flatten(), None);
        assert_eq!(provider.lookup(Uuid::now_v7()).await.ok().flatten(), None);
    }

    #[tokio::test]
    async fn refunds_never_exceed_the_charge_and_are_answered_once() {
        let provider = SimulatedProvider::default();
        let payment = Uuid::now_v7();
        let Ok(ChargeOutcome::Captured { provider_id }) =
            provider.charge(charge_of(payment, CARD_SUCCEEDS)).await
        else {
            panic!("captured");
        };
        let six = refund_of(&provider_id, "6.00");
        let first = provider.refund(six.clone()).await.ok();
        assert!(matches!(first, Some(RefundOutcome::Refunded { .. })));
        // The same refund id again is the same refund, not a second one.
        assert_eq!(provider.refund(six.clone()).await.ok(), first);
        assert_eq!(
            provider.lookup_refund(six.refund_id).await.ok().flatten(),
            first
        );

        let too_much = provider.refund(refund_of(&provider_id, "4.01")).await;
        assert!(
            matches!(too_much, Ok(RefundOutcome::Refused { .. })),
            "{too_much:?}"
        );
        let rest = provider.refund(refund_of(&provider_id, "4.00")).await;
        assert!(
            matches!(rest, Ok(RefundOutcome::Refunded { .. })),
            "{rest:?}"
        );

        let unknown = provider.refund(refund_of("ch_elsewhere", "1.00")).await;
        assert!(
            matches!(unknown, Ok(RefundOutcome::Refused { .. })),
            "{unknown:?}"
        );
        assert_eq!(
            provider.lookup_refund(Uuid::now_v7()).await.ok().flatten(),
            None
        );
    }
}

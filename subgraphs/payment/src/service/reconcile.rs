//! Reconciliation: settling what a crash (or a lost provider answer) left
//! half done, by asking the provider what happened — never by charging or
//! refunding again.
//!
//! * a payment PROCESSING for longer than the grace period: the provider's
//!   record of its charge decides — captured → COMPLETED, declined →
//!   FAILED, never received → FAILED (retryable: no money moved) — through
//!   the normal status change, so its event is written with it;
//! * a refund REQUESTED for longer than the grace period: refunded →
//!   SUCCEEDED (with `PaymentRefunded`), refused or never received →
//!   FAILED.
//!
//! The grace period must be well above the provider's answer time: a
//! payment still being charged is not touched.

use std::time::Duration;

use super::Payments;
use crate::domain::provider::{ChargeOutcome, RefundOutcome};
use crate::domain::{PaymentError, PaymentStatus, now};
use crate::store::Change;

/// How many rows one pass looks at, at most (the next pass takes the rest).
const BATCH: u64 = 100;

/// Why a payment the provider never saw failed.
pub const NEVER_CHARGED: &str =
    "interrupted: the provider has no record of the charge; nothing was captured";
/// Why a refund the provider never saw failed.
pub const NEVER_REFUNDED: &str =
    "interrupted: the provider has no record of the refund; nothing was given back";

/// What one reconciliation pass settled.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Reconciled {
    /// PROCESSING payments the provider had captured → COMPLETED.
    pub completed: u64,
    /// PROCESSING payments declined or never charged → FAILED.
    pub failed: u64,
    /// REQUESTED refunds the provider had made → SUCCEEDED.
    pub refunds_succeeded: u64,
    /// REQUESTED refunds refused or never received → FAILED.
    pub refunds_failed: u64,
    /// Rows left for a later pass because the provider did not answer.
    pub undecided: u64,
}

impl Payments {
    /// Settles payments PROCESSING and refunds REQUESTED since longer ago
    /// than `after` (see the module docs).
    pub async fn reconcile(&self, after: Duration) -> Result<Reconciled, PaymentError> {
        let cutoff = chrono::Duration::from_std(after)
            .ok()
            .and_then(|after| now().checked_sub_signed(after))
            .unwrap_or(chrono::DateTime::<chrono::Utc>::MIN_UTC);
        let mut done = Reconciled::default();
        for id in self.store.processing_before(cutoff, BATCH).await? {
            let change = match self.provider.lookup(id).await {
                Ok(Some(ChargeOutcome::Captured { provider_id })) => {
                    Change::Completed { provider_id }
                }
                Ok(Some(ChargeOutcome::Declined { reason })) => Change::Failed {
                    reason,
                    retryable: false,
                },
                Ok(None) => Change::Failed {
                    reason: NEVER_CHARGED.into(),
                    retryable: true,
                },
                Err(err) => {
                    tracing::warn!(payment_id = %id, %err, "cannot reconcile a payment: the provider did not answer");
                    done.undecided += 1;
                    continue;
                }
            };
            let target = change.target();
            if self
                .store
                .change_status(id, PaymentStatus::Processing, change)
                .await?
            {
                tracing::warn!(payment_id = %id, status = %target, "payment left PROCESSING reconciled");
                match target {
                    PaymentStatus::Completed => done.completed += 1,
                    _ => done.failed += 1,
                }
            }
        }
        for refund in self.store.requested_refunds_before(cutoff, BATCH).await? {
            let outcome = match self.provider.lookup_refund(refund.id).await {
                Ok(Some(outcome)) => outcome,
                Ok(None) => RefundOutcome::Refused {
                    reason: NEVER_REFUNDED.into(),
                },
                Err(err) => {
                    tracing::warn!(refund_id = %refund.id, %err, "cannot reconcile a refund: the provider did not answer");
                    done.undecided += 1;
                    continue;
                }
            };
            if !self.apply_refund_outcome(&refund, &outcome).await? {
                continue;
            }
            let succeeded = matches!(outcome, RefundOutcome::Refunded { .. });
            tracing::warn!(payment_id = %refund.payment_id, refund_id = %refund.id, succeeded,
                "refund left REQUESTED reconciled");
            if succeeded {
                done.refunds_succeeded += 1;
            } else {
                done.refunds_failed += 1;
            }
        }
        Ok(done)
    }
}

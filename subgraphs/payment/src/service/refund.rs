//! Refunds (admin): recorded, asked of the provider once, settled with
//! their event.
//!
//! 1. the refund is recorded REQUESTED with its amount held back (the
//!    store refuses more than is left, also against concurrent refunds);
//! 2. the provider is asked, with the refund's id as idempotency key;
//! 3. its answer settles the refund: refunded → SUCCEEDED with the
//!    payment's new total and `PaymentRefunded` in one transaction;
//!    refused → FAILED, the amount free again. No answer (outage,
//!    timeout) leaves it REQUESTED: the provider may have refunded, so
//!    only asking it later ([`Payments::reconcile`]) can tell.

use rust_decimal::Decimal;

use super::Payments;
use crate::domain::provider::{RefundOutcome, RefundRequest};
use crate::domain::{Payment, PaymentError, PaymentStatus, Refund, validate_refund};

impl Payments {
    /// Refunds `amount` (all that is left when `None`) of a captured payment.
    pub async fn refund(&self, id: &str, amount: Option<Decimal>) -> Result<Payment, PaymentError> {
        let payment = self.find(id).await?;
        payment
            .status
            .check_transition(PaymentStatus::Refunded, "refund")?;
        let amount = validate_refund(amount, payment.refundable())?;
        let refund = self.store.request_refund(payment.id, amount).await?;
        let request = RefundRequest {
            refund_id: refund.id,
            charge_id: payment.provider_id.clone().unwrap_or_default(),
            amount,
            currency: payment.currency.clone(),
        };
        let outcome = match self.provider.refund(request).await {
            Ok(outcome) => outcome,
            Err(err) => {
                tracing::warn!(payment_id = %payment.id, refund_id = %refund.id, %amount, %err,
                    "the provider did not answer a refund; it stays requested until reconciled");
                return Err(PaymentError::ProviderUnavailable(err));
            }
        };
        self.apply_refund_outcome(&refund, &outcome).await?;
        if let RefundOutcome::Refused { reason } = outcome {
            return Err(PaymentError::RefundRefused(reason));
        }
        self.reload(payment.id).await
    }

    /// Applies the provider's decision on a REQUESTED refund; returns
    /// whether it applied (`false`: the refund was settled already).
    pub(super) async fn apply_refund_outcome(
        &self,
        refund: &Refund,
        outcome: &RefundOutcome,
    ) -> Result<bool, PaymentError> {
        let applied = match outcome {
            RefundOutcome::Refunded { provider_refund_id } => {
                self.store
                    .complete_refund(refund, provider_refund_id)
                    .await?
            }
            RefundOutcome::Refused { reason } => self.store.fail_refund(refund, reason).await?,
        };
        if applied {
            tracing::info!(payment_id = %refund.payment_id, refund_id = %refund.id,
                amount = %refund.amount, ?outcome, "refund settled");
        }
        Ok(applied)
    }
}

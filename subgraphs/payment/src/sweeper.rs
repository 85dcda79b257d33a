//! The payment subgraph's background sweeps: expiry of pending payments,
//! and reconciliation of payments and refunds a crash left half done.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::service::Payments;

/// Runs the expiry step every `interval` until `stop` is cancelled.
pub async fn run_expiry(payments: Payments, interval: Duration, stop: CancellationToken) {
    subgraph_kit::service::every("payment-expiry", interval, stop, || async {
        let expired = payments.expire_due().await?;
        if expired > 0 {
            tracing::info!(expired, "pending payments expired");
        }
        Ok::<(), crate::domain::PaymentError>(())
    })
    .await;
}

/// Every `interval` until `stop` is cancelled, settles payments left
/// PROCESSING and refunds left REQUESTED for longer than `after` by asking
/// the provider ([`Payments::reconcile`]); counts them in
/// `payments_reconciled_total{outcome}` and
/// `payment_refunds_reconciled_total{outcome}`.
pub async fn run_reconciliation(
    payments: Payments,
    interval: Duration,
    after: Duration,
    stop: CancellationToken,
) {
    subgraph_kit::service::every("payment-reconciliation", interval, stop, || async {
        let done = payments.reconcile(after).await?;
        for (name, outcome, count) in [
            ("payments_reconciled_total", "completed", done.completed),
            ("payments_reconciled_total", "failed", done.failed),
            (
                "payment_refunds_reconciled_total",
                "succeeded",
                done.refunds_succeeded,
            ),
            (
                "payment_refunds_reconciled_total",
                "failed",
                done.refunds_failed,
            ),
        ] {
            if count > 0 {
                metrics::counter!(name, "outcome" => outcome).increment(count);
            }
        }
        if done != Default::default() {
            tracing::info!(?done, "reconciliation pass");
        }
        Ok::<(), crate::domain::PaymentError>(())
    })
    .await;
}

//! Expires pending payments whose `expires_at` has passed.

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

//! Background jobs: deliver scheduled notifications when due and retry
//! failures (every `NOTIFICATION_SCHEDULER_INTERVAL`), delete expired ones
//! (every `CLEANUP_INTERVAL`).

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::service::Notifications;

/// Delivers due notifications and retries failures until `stop`.
pub async fn run_deliveries(
    notifications: Notifications,
    interval: Duration,
    stop: CancellationToken,
) {
    subgraph_kit::service::every("notification-scheduler", interval, stop, || async {
        let (delivered, retried) = notifications.run_due().await?;
        if delivered + retried > 0 {
            tracing::info!(delivered, retried, "scheduled deliveries and retries");
        }
        Ok::<(), crate::domain::NotificationError>(())
    })
    .await;
}

/// Deletes expired notifications until `stop`.
pub async fn run_cleanup(
    notifications: Notifications,
    interval: Duration,
    stop: CancellationToken,
) {
    subgraph_kit::service::every("notification-cleanup", interval, stop, || async {
        let deleted = notifications.cleanup_expired().await?;
        if deleted > 0 {
            tracing::info!(deleted, "expired notifications deleted");
        }
        Ok::<(), crate::domain::NotificationError>(())
    })
    .await;
}

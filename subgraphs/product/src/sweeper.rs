//! Releases checkout reservations whose payment never settled: a
//! `RESERVED` reservation past its `expiresAt` gives its units back
//! (`StockUpdated`, reason `release`).
//!
//! Payment asks for `expiresAt` = its own pending deadline plus a margin,
//! so a healthy payment settles (and its event sells or releases the
//! reservation) well before this runs. What is left is a payment whose
//! outcome never arrived; should it complete later, the sale takes the
//! units again if they are still there (see [`crate::events::incoming`]).
//!
//! Every release is counted in `stock_reservations_released_total`
//! (`reason="expired"`) and logged at info.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::domain::{ProductError, now};
use crate::store::ProductStore;

/// Most reservations one pass releases; a larger backlog is worked off
/// pass after pass, each release in its own short transaction.
pub const SWEEP_BATCH: u64 = 500;

/// The periodic reservation expiry.
#[derive(Clone)]
pub struct ReservationSweeper {
    store: ProductStore,
}

impl ReservationSweeper {
    /// A sweeper over `store`.
    pub fn new(store: ProductStore) -> Self {
        Self { store }
    }

    /// One pass: releases the expired reservations (up to [`SWEEP_BATCH`]);
    /// returns how many this pass released.
    pub async fn sweep(&self) -> Result<usize, ProductError> {
        let released = self.store.release_expired(now(), SWEEP_BATCH).await?;
        for reservation in &released {
            tracing::info!(
                reservation_id = %reservation.id,
                user_id = %reservation.user_id,
                expires_at = %reservation.expires_at,
                lines = reservation.lines.len(),
                "expired stock reservation released"
            );
        }
        record_released("expired", released.len());
        Ok(released.len())
    }

    /// Sweeps every `interval` until `stop` is cancelled.
    pub async fn run(self, interval: Duration, stop: CancellationToken) {
        subgraph_kit::service::every("stock-reservation-expiry", interval, stop, || async {
            self.sweep().await.map(|_| ())
        })
        .await;
    }
}

/// Counts `count` reservations released for `reason` (`expired` by the
/// sweeper, `compensation` by a checkout that gave up).
pub(crate) fn record_released(reason: &'static str, count: usize) {
    if count > 0 {
        metrics::counter!(
            "stock_reservations_released_total",
            "service" => crate::SERVICE_NAME,
            "reason" => reason
        )
        .increment(count as u64);
    }
}

//! Marks baskets abandoned when they hold items but nobody touched them for
//! `BASKET_TTL`. (The BasketAbandoned event joins this step in the events
//! issue.)

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::domain::{BasketError, now};
use crate::store::BasketStore;

/// The periodic abandonment check.
#[derive(Clone)]
pub struct AbandonmentSweeper {
    store: BasketStore,
    ttl: Duration,
}

impl AbandonmentSweeper {
    /// A sweeper that abandons baskets idle longer than `ttl`.
    pub fn new(store: BasketStore, ttl: Duration) -> Self {
        Self { store, ttl }
    }

    /// One pass; returns how many baskets were marked.
    pub async fn sweep(&self) -> Result<usize, BasketError> {
        let ttl = chrono::Duration::from_std(self.ttl).unwrap_or(chrono::Duration::MAX);
        let idle_since = now().checked_sub_signed(ttl).unwrap_or_default();
        let marked = self.store.mark_abandoned(idle_since).await?;
        for (basket_id, user_id) in &marked {
            tracing::info!(%basket_id, %user_id, "basket abandoned");
        }
        Ok(marked.len())
    }

    /// Sweeps every `interval` until `stop` is cancelled.
    pub async fn run(self, interval: Duration, stop: CancellationToken) {
        subgraph_kit::service::every("basket-abandonment", interval, stop, || async {
            self.sweep().await.map(|_| ())
        })
        .await;
    }
}

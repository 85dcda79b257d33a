//! Marks baskets abandoned when they hold items but nobody touched them for
//! `BASKET_TTL` (never one a checkout holds), and deletes the locked lines
//! of checkouts settled longer ago than
//! [`crate::store::SETTLED_CHECKOUT_RETENTION`].

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::domain::{BasketError, now};
use crate::store::{BasketStore, SETTLED_CHECKOUT_RETENTION};

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
        let pruned = self
            .store
            .prune_settled_checkouts(now() - SETTLED_CHECKOUT_RETENTION)
            .await?;
        if pruned > 0 {
            tracing::debug!(rows = pruned, "settled checkout lines pruned");
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

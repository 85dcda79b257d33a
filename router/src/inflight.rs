//! Sharing work that is already under way: the first caller with a given
//! key starts the work in its own task; callers with the same key that
//! arrive before it finishes wait for the same result instead of repeating
//! it. The key is forgotten as soon as the result exists, so nothing is
//! cached beyond the work's own lifetime.
//!
//! The router uses it twice: identical client queries in flight share one
//! execution ([`crate::pipeline`]), and identical subgraph query fetches
//! share one request ([`crate::traffic::dedupe`]).

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};

use futures::FutureExt;
use futures::future::{BoxFuture, Shared};
use serde_json::{Map, Value};
use shopgraph_core::identity::Identity;
use tracing::Instrument;

type Pending<V> = Shared<BoxFuture<'static, Option<V>>>;

/// Work in flight, by key.
pub struct InFlight<V> {
    pending: Arc<Mutex<HashMap<Vec<u8>, Pending<V>>>>,
}

impl<V> Default for InFlight<V> {
    fn default() -> Self {
        Self {
            pending: Arc::default(),
        }
    }
}

impl<V: Clone + Send + Sync + 'static> InFlight<V> {
    /// The result of `work` for `key`: started now, or shared with an
    /// identical call already under way (then `work` is dropped unrun).
    /// Returns whether the result was shared, and `None` if the work's task
    /// panicked.
    pub fn run<W>(
        &self,
        key: Vec<u8>,
        work: W,
    ) -> (impl Future<Output = Option<V>> + use<V, W>, bool)
    where
        W: Future<Output = V> + Send + 'static,
    {
        let mut pending = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(shared) = pending.get(&key) {
            return (shared.clone(), true);
        }
        let registry = Arc::clone(&self.pending);
        let task_key = key.clone();
        // A task of its own: the work completes (and leaves the registry)
        // even if every caller waiting for it goes away. It runs in the
        // span of the caller that started it, so its spans (plan nodes,
        // subgraph fetches) stay in that caller's trace instead of each
        // starting a trace of its own.
        let task = tokio::spawn(
            async move {
                let value = work.await;
                registry
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .remove(&task_key);
                value
            }
            .instrument(tracing::Span::current()),
        );
        let shared = async move { task.await.ok() }.boxed().shared();
        pending.insert(key, shared.clone());
        (shared, false)
    }

    /// How many keys are in flight (tests, metrics).
    pub fn len(&self) -> usize {
        self.pending
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    /// Whether nothing is in flight.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The key of work that must only be shared between identical requests:
/// `parts` (operation text and the like), the caller's identity (answers
/// are per user) and the variables, as bytes.
pub fn key(parts: &[&str], identity: &Identity, variables: &Map<String, Value>) -> Vec<u8> {
    let mut key = Vec::with_capacity(parts.iter().map(|p| p.len() + 1).sum::<usize>() + 64);
    for part in parts {
        key.extend_from_slice(part.as_bytes());
        key.push(0);
    }
    if let Identity::User(viewer) = identity {
        key.extend_from_slice(viewer.user_id.as_bytes());
        for role in &viewer.roles {
            key.push(b',');
            key.extend_from_slice(role.as_bytes());
        }
    }
    key.push(0);
    // Serialising a map of JSON values into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut key, variables);
    key
}

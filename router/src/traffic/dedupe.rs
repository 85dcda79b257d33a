//! In-flight deduplication: identical query fetches that overlap in time
//! share one subgraph request.
//!
//! Many clients asking the same thing at the same moment (a catalogue page,
//! a product everybody opens) would otherwise send the same operation to a
//! subgraph many times over. [`Deduplicating`] wraps any [`Fetcher`]: the
//! first caller of a given fetch starts it in its own task, later callers
//! with an identical fetch wait for the same answer, and the entry is
//! removed when the answer arrives, so nothing is cached beyond the
//! request's lifetime.
//!
//! Identical means: same subgraph, same operation text, same variables and
//! same caller identity (answers are per user). Only queries are shared;
//! a mutation always gets its own request.

use std::sync::Arc;

use futures::FutureExt;
use futures::future::BoxFuture;

use crate::inflight::{self, InFlight};
use crate::subgraph::{FetchError, Fetcher, SubgraphRequest, SubgraphResponse};

/// A [`Fetcher`] that shares identical in-flight query fetches.
pub struct Deduplicating<F> {
    inner: Arc<F>,
    in_flight: InFlight<Arc<Result<SubgraphResponse, FetchError>>>,
}

impl<F> Deduplicating<F> {
    /// Wraps `inner`.
    pub fn new(inner: Arc<F>) -> Self {
        Self {
            inner,
            in_flight: InFlight::default(),
        }
    }
}

/// Wraps a fetcher in [`Deduplicating`] (the outermost subgraph layer).
#[derive(Debug, Clone, Copy, Default)]
pub struct DedupeLayer;

impl<F> tower::Layer<F> for DedupeLayer {
    type Service = Deduplicating<F>;

    fn layer(&self, inner: F) -> Deduplicating<F> {
        Deduplicating::new(Arc::new(inner))
    }
}

impl<F: Fetcher> Fetcher for Deduplicating<F> {
    fn fetch<'a>(
        &'a self,
        subgraph: &'a str,
        request: &'a SubgraphRequest<'a>,
    ) -> BoxFuture<'a, Result<SubgraphResponse, FetchError>> {
        if !request.is_query {
            return self.inner.fetch(subgraph, request);
        }
        let key = inflight::key(
            &[subgraph, request.query],
            request.identity,
            &request.variables,
        );
        let inner = Arc::clone(&self.inner);
        let owned_subgraph = subgraph.to_owned();
        let query = request.query.to_owned();
        let operation_name = request.operation_name.map(str::to_owned);
        // The shared fetch runs in its own task, which outlives this
        // caller's borrow: it owns a copy.
        let variables = request.variables.clone();
        let identity = request.identity.clone();
        let (answer, shared) = self.in_flight.run(key, async move {
            let request = SubgraphRequest {
                query: &query,
                operation_name: operation_name.as_deref(),
                variables,
                identity: &identity,
                is_query: true,
            };
            Arc::new(inner.fetch(&owned_subgraph, &request).await)
        });
        if shared {
            metrics::counter!("router_subgraph_dedupe_hits_total", "subgraph" => subgraph.to_owned())
                .increment(1);
        }
        async move {
            let Some(answer) = answer.await else {
                return Err(FetchError::Unreachable {
                    subgraph: subgraph.to_owned(),
                    reason: "the fetch task failed".into(),
                });
            };
            // The only caller (nobody joined) takes the answer as it is;
            // callers who shared it each take a copy.
            Arc::try_unwrap(answer).unwrap_or_else(|shared| match shared.as_ref() {
                Ok(response) => Ok(response.clone()),
                Err(err) => Err(err.clone()),
            })
        }
        .boxed()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use serde_json::{Map, Value, json};
    use shopgraph_core::identity::{Identity, Viewer};

    use super::*;

    /// Answers every fetch after a pause, counting the calls it gets.
    struct Slow {
        calls: AtomicUsize,
    }

    impl Fetcher for Slow {
        fn fetch<'a>(
            &'a self,
            _subgraph: &'a str,
            request: &'a SubgraphRequest<'a>,
        ) -> BoxFuture<'a, Result<SubgraphResponse, FetchError>> {
            self.calls.fetch_add(1, Ordering::SeqCst);
            let user = match request.identity {
                Identity::User(viewer) => viewer.user_id.clone(),
                Identity::Anonymous => "anonymous".into(),
            };
            async move {
                tokio::time::sleep(Duration::from_millis(50)).await;
                Ok(SubgraphResponse {
                    data: Some(json!({ "user": user })),
                    errors: Vec::new(),
                })
            }
            .boxed()
        }
    }

    fn user(id: &str) -> Identity {
        Identity::User(Viewer {
            user_id: id.into(),
            roles: Vec::new(),
        })
    }

    async fn fire(
        fetcher: &Deduplicating<Slow>,
        identities: &[Identity],
        is_query: bool,
    ) -> Vec<Value> {
        let requests: Vec<_> = identities
            .iter()
            .map(|identity| SubgraphRequest {
                query: "{ me }",
                operation_name: None,
                variables: Map::new(),
                identity,
                is_query,
            })
            .collect();
        let fetches = requests
            .iter()
            .map(|request| fetcher.fetch("product", request));
        futures::future::join_all(fetches)
            .await
            .into_iter()
            .map(|answer| answer.expect("answered").data.unwrap_or_default())
            .collect()
    }

    #[tokio::test]
    async fn identical_concurrent_queries_share_one_request_per_caller_identity() {
        let slow = Arc::new(Slow {
            calls: AtomicUsize::new(0),
        });
        let fetcher = Deduplicating::new(slow.clone());
        let callers = [
            user("a"),
            user("a"),
            user("a"),
            user("b"),
            Identity::Anonymous,
        ];
        let answers = fire(&fetcher, &callers, true).await;
        assert_eq!(
            slow.calls.load(Ordering::SeqCst),
            3,
            "one per distinct caller"
        );
        assert_eq!(answers[0], json!({ "user": "a" }));
        assert_eq!(
            answers[3],
            json!({ "user": "b" }),
            "never another user's answer"
        );
        assert!(
            fetcher.in_flight.is_empty(),
            "nothing kept after the answers"
        );

        // Once answered, the next identical query is a new request.
        fire(&fetcher, &[user("a")], true).await;
        assert_eq!(slow.calls.load(Ordering::SeqCst), 4);
    }

    #[tokio::test]
    async fn mutations_are_never_shared() {
        let slow = Arc::new(Slow {
            calls: AtomicUsize::new(0),
        });
        let fetcher = Deduplicating::new(slow.clone());
        fire(&fetcher, &[user("a"), user("a"), user("a")], false).await;
        assert_eq!(slow.calls.load(Ordering::SeqCst), 3);
    }
}

//! The subgraph-side layers, each a [`Fetcher`] wrapping the next, built
//! with tower's `Layer` so [`super::fetch_stack`] reads in order:
//!
//! 1. [`RetryLayer`]: a failed *query* fetch is sent again after a
//!    jittered exponential backoff, within `RETRY_ATTEMPTS` and the
//!    subgraph's retry budget (retries ≤ `RETRY_BUDGET_RATIO` of recent
//!    requests), so retries cannot multiply the load on a failing
//!    subgraph. A mutation is sent again only if it never left the router
//!    (no replica accepted the connection).
//! 2. [`BreakerLayer`]: the subgraph's circuit breaker; open → the fetch
//!    fails at once with [`FetchError::Unavailable`].
//! 3. [`BalanceLayer`]: picks an available replica, counts it in flight,
//!    records latency and passive health; a replica that refuses the
//!    connection is skipped for the next one at once (the request was
//!    never sent, so this is safe for mutations too).

use std::sync::Arc;

use futures::future::BoxFuture;
use shopgraph_core::backoff::Backoff;
use tower::Layer;
use tower::retry::budget::Budget;

use super::upstream::Upstreams;
use crate::subgraph::client::HttpFetcher;
use crate::subgraph::{FetchError, Fetcher, SubgraphRequest, SubgraphResponse};

/// Sends each fetch to a replica of its subgraph.
#[derive(Debug, Clone)]
pub struct BalanceLayer {
    upstreams: Arc<Upstreams>,
}

impl BalanceLayer {
    /// Balances over `upstreams`.
    pub fn new(upstreams: Arc<Upstreams>) -> Self {
        Self { upstreams }
    }
}

impl Layer<HttpFetcher> for BalanceLayer {
    type Service = Balanced;

    fn layer(&self, transport: HttpFetcher) -> Balanced {
        Balanced {
            upstreams: Arc::clone(&self.upstreams),
            transport,
        }
    }
}

/// See [`BalanceLayer`].
#[derive(Debug)]
pub struct Balanced {
    upstreams: Arc<Upstreams>,
    transport: HttpFetcher,
}

impl Fetcher for Balanced {
    fn fetch<'a>(
        &'a self,
        subgraph: &'a str,
        request: &'a SubgraphRequest<'a>,
    ) -> BoxFuture<'a, Result<SubgraphResponse, FetchError>> {
        Box::pin(async move {
            let Some(upstream) = self.upstreams.get(subgraph) else {
                return Err(FetchError::UnknownSubgraph(subgraph.to_owned()));
            };
            let mut tried = 0u64;
            let mut refused = None;
            loop {
                let Some((index, replica)) = upstream.pool.pick(tried) else {
                    return Err(refused.unwrap_or_else(|| FetchError::Unavailable {
                        subgraph: subgraph.to_owned(),
                        reason: "no healthy replica".to_owned(),
                    }));
                };
                tried |= 1 << index;
                let in_flight = replica.begin();
                let result = self
                    .transport
                    .send_to(subgraph, replica.uri(), request)
                    .await;
                let failure = match &result {
                    Err(err) if err.is_subgraph_failure() => Some(err.to_string()),
                    _ => None,
                };
                upstream.pool.finish(in_flight, failure);
                match result {
                    Err(err @ FetchError::Connect { .. }) => refused = Some(err),
                    other => return other,
                }
            }
        })
    }
}

/// Guards each subgraph with its circuit breaker.
#[derive(Debug, Clone)]
pub struct BreakerLayer {
    upstreams: Arc<Upstreams>,
}

impl BreakerLayer {
    /// Uses the breakers of `upstreams`.
    pub fn new(upstreams: Arc<Upstreams>) -> Self {
        Self { upstreams }
    }
}

impl<F: Fetcher> Layer<F> for BreakerLayer {
    type Service = Breaking<F>;

    fn layer(&self, inner: F) -> Breaking<F> {
        Breaking {
            upstreams: Arc::clone(&self.upstreams),
            inner,
        }
    }
}

/// See [`BreakerLayer`].
#[derive(Debug)]
pub struct Breaking<F> {
    upstreams: Arc<Upstreams>,
    inner: F,
}

impl<F: Fetcher> Fetcher for Breaking<F> {
    fn fetch<'a>(
        &'a self,
        subgraph: &'a str,
        request: &'a SubgraphRequest<'a>,
    ) -> BoxFuture<'a, Result<SubgraphResponse, FetchError>> {
        Box::pin(async move {
            let upstream = self.upstreams.get(subgraph);
            let Some(breaker) = upstream.as_ref().and_then(|u| u.breaker.as_ref()) else {
                return self.inner.fetch(subgraph, request).await;
            };
            let permit = match breaker.try_acquire() {
                Ok(permit) => permit,
                Err(refused) => {
                    metrics::counter!("router_circuit_breaker_rejections_total", "subgraph" => subgraph.to_owned())
                        .increment(1);
                    return Err(FetchError::Unavailable {
                        subgraph: subgraph.to_owned(),
                        reason: format!(
                            "its circuit breaker is open (next probe in {} ms)",
                            refused.retry_in.as_millis()
                        ),
                    });
                }
            };
            // Reports the outcome, or frees a probe slot if the caller
            // drops this fetch before it ends.
            let mut guard = PermitGuard {
                breaker,
                permit: Some(permit),
            };
            let result = self.inner.fetch(subgraph, request).await;
            if let Some(permit) = guard.permit.take() {
                let failed = matches!(&result, Err(err) if err.is_subgraph_failure());
                breaker.record(permit, !failed);
            }
            result
        })
    }
}

struct PermitGuard<'a> {
    breaker: &'a super::breaker::CircuitBreaker,
    permit: Option<super::breaker::Permit>,
}

impl Drop for PermitGuard<'_> {
    fn drop(&mut self) {
        if let Some(permit) = self.permit.take() {
            self.breaker.cancel(permit);
        }
    }
}

/// Retries failed query fetches within a budget.
#[derive(Debug, Clone)]
pub struct RetryLayer {
    upstreams: Arc<Upstreams>,
}

impl RetryLayer {
    /// Retries with the settings and budgets of `upstreams`.
    pub fn new(upstreams: Arc<Upstreams>) -> Self {
        Self { upstreams }
    }
}

impl<F: Fetcher> Layer<F> for RetryLayer {
    type Service = Retrying<F>;

    fn layer(&self, inner: F) -> Retrying<F> {
        Retrying {
            upstreams: Arc::clone(&self.upstreams),
            inner,
        }
    }
}

/// See [`RetryLayer`].
#[derive(Debug)]
pub struct Retrying<F> {
    upstreams: Arc<Upstreams>,
    inner: F,
}

/// Whether `err` may be sent again: a query after any transient failure;
/// a mutation only when it was never sent.
fn may_resend(request: &SubgraphRequest<'_>, err: &FetchError) -> bool {
    if request.is_query {
        err.is_transient()
    } else {
        matches!(err, FetchError::Connect { .. })
    }
}

impl<F: Fetcher> Fetcher for Retrying<F> {
    fn fetch<'a>(
        &'a self,
        subgraph: &'a str,
        request: &'a SubgraphRequest<'a>,
    ) -> BoxFuture<'a, Result<SubgraphResponse, FetchError>> {
        Box::pin(async move {
            let Some(upstream) = self.upstreams.get(subgraph) else {
                return self.inner.fetch(subgraph, request).await;
            };
            let settings = &self.upstreams.settings().retry;
            let budget = &upstream.retry_budget;
            budget.deposit();
            let mut backoff = Backoff::new(settings.backoff_min, settings.backoff_max);
            let mut retries = 0;
            loop {
                let result = self.inner.fetch(subgraph, request).await;
                let Err(err) = &result else {
                    return result;
                };
                if retries >= settings.attempts || !may_resend(request, err) {
                    return result;
                }
                if !budget.withdraw() {
                    metrics::counter!("router_subgraph_retry_budget_exhausted_total", "subgraph" => subgraph.to_owned())
                        .increment(1);
                    return result;
                }
                retries += 1;
                metrics::counter!("router_subgraph_retries_total", "subgraph" => subgraph.to_owned())
                    .increment(1);
                tracing::debug!(subgraph, error = %err, retry = retries, "retrying the fetch");
                tokio::time::sleep(backoff.next_delay()).await;
            }
        })
    }
}

/// `ServiceBuilder::option_layer` wraps in `Either`: either side fetches.
impl<A: Fetcher, B: Fetcher> Fetcher for tower::util::Either<A, B> {
    fn fetch<'a>(
        &'a self,
        subgraph: &'a str,
        request: &'a SubgraphRequest<'a>,
    ) -> BoxFuture<'a, Result<SubgraphResponse, FetchError>> {
        match self {
            Self::Left(left) => left.fetch(subgraph, request),
            Self::Right(right) => right.fetch(subgraph, request),
        }
    }
}

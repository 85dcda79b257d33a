//! The rate-limit checkpoint: a tower layer that either refuses a request
//! with 429 or passes it on, adding `RateLimit-*` headers either way.
//!
//! It sees every request of the routes it wraps, including websocket
//! upgrades and SSE or multipart requests, so a subscription costs one
//! request when its connection opens (and nothing per event). A websocket upgrade also
//! carries the limiter on ([`OperationBudget`]): every operation the
//! connection runs then costs one request more.

use std::future::{Future, Ready};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::body::Body;
use axum::response::Response;
use http::{HeaderMap, HeaderName, HeaderValue, Request, header};
use shopgraph_core::graphql_http::response_content_type;

use crate::pipeline::RouterError;
use crate::subscriptions::{OperationBudget, OperationLimit};
use tower::{Layer, Service};

use super::{ClientKey, ClientRateLimiter, Decision, KeyResolver, whole_seconds_up};

/// `RateLimit-Limit`: the most requests a client can have available.
pub const RATELIMIT_LIMIT: HeaderName = HeaderName::from_static("ratelimit-limit");
/// `RateLimit-Remaining`: requests the client may still send at once.
pub const RATELIMIT_REMAINING: HeaderName = HeaderName::from_static("ratelimit-remaining");
/// `RateLimit-Reset`: seconds until the client's budget is full again.
pub const RATELIMIT_RESET: HeaderName = HeaderName::from_static("ratelimit-reset");
/// `RateLimit-Policy`: quota, window and burst, e.g. `100;w=60;burst=10`.
pub const RATELIMIT_POLICY: HeaderName = HeaderName::from_static("ratelimit-policy");

/// Wraps a service so that each request first takes a cell from its
/// client's budget. Build it once (it holds the shared limiter) and clone
/// it freely: a clone is one reference count, which matters because axum
/// clones a route's layers for every request.
#[derive(Clone, Debug)]
pub struct RateLimitLayer {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    limiter: Arc<ClientRateLimiter>,
    keys: KeyResolver,
    limit: HeaderValue,
    policy: Option<HeaderValue>,
    /// `0` to `SMALL_NUMBERS - 1`, formatted once: `RateLimit-Remaining`
    /// and `RateLimit-Reset` are small for usual budgets, and a clone is a
    /// reference count where formatting is an allocation per request.
    small_numbers: Box<[HeaderValue]>,
}

/// How many header values [`Shared::small_numbers`] holds.
const SMALL_NUMBERS: u32 = 256;

impl RateLimitLayer {
    /// A layer deciding with `limiter`, per the key `keys` picks.
    pub fn new(limiter: Arc<ClientRateLimiter>, keys: KeyResolver) -> Self {
        let limit = HeaderValue::from(limiter.limit());
        // Digits, `;`, `=` and letters only: always a valid header value.
        let policy = HeaderValue::from_str(limiter.policy()).ok();
        Self {
            shared: Arc::new(Shared {
                limiter,
                keys,
                limit,
                policy,
                small_numbers: (0..SMALL_NUMBERS).map(HeaderValue::from).collect(),
            }),
        }
    }
}

impl<S> Layer<S> for RateLimitLayer {
    type Service = RateLimitService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RateLimitService {
            inner,
            shared: Arc::clone(&self.shared),
        }
    }
}

/// The service [`RateLimitLayer`] builds: refused requests never reach
/// `inner`.
#[derive(Clone, Debug)]
pub struct RateLimitService<S> {
    inner: S,
    shared: Arc<Shared>,
}

impl<S> Service<Request<Body>> for RateLimitService<S>
where
    S: Service<Request<Body>, Response = Response> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send,
{
    type Response = Response;
    type Error = S::Error;
    type Future = RateLimitFuture<S::Future, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<Body>) -> Self::Future {
        let shared = Arc::clone(&self.shared);
        let key = shared.keys.resolve(&request);
        // The upgrade costs one request here; the connection then charges
        // each operation it runs to the same limiter.
        if is_websocket_upgrade(request.headers()) {
            let limiter: Arc<dyn OperationLimit> = shared.limiter.clone();
            request.extensions_mut().insert(OperationBudget(limiter));
        }
        // The in-memory limiter decides at once: call `inner` now, the
        // instance that was polled ready, with no allocation on the way.
        if let Some(decision) = shared.limiter.check_now(&key) {
            let state = if decision.allowed {
                State::Allowed {
                    inner: self.inner.call(request),
                    shared,
                    decision,
                }
            } else {
                State::Refused {
                    refusal: std::future::ready(Ok(shared.refuse(
                        &key,
                        &decision,
                        request.headers(),
                    ))),
                }
            };
            return RateLimitFuture { state };
        }
        // Redis answers later: keep the instance that was polled ready for
        // that moment and leave a fresh clone for the next call (the usual
        // tower pattern).
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let later = Box::pin(async move {
            let decision = shared.limiter.check(&key).await;
            if !decision.allowed {
                return Ok(shared.refuse(&key, &decision, request.headers()));
            }
            let mut response = inner.call(request).await?;
            shared.write_headers(response.headers_mut(), &decision);
            Ok(response)
        });
        RateLimitFuture {
            state: State::Later { later },
        }
    }
}

pin_project_lite::pin_project! {
    /// The response future of [`RateLimitService`]: a plain state machine
    /// when the in-memory limiter decided, a boxed one while Redis decides.
    pub struct RateLimitFuture<F, E> {
        #[pin]
        state: State<F, E>,
    }
}

pin_project_lite::pin_project! {
    #[project = StateProj]
    enum State<F, E> {
        /// Refused at once.
        Refused {
            #[pin]
            refusal: Ready<Result<Response, E>>,
        },
        /// Let through at once: the inner answer, then the headers.
        Allowed {
            #[pin]
            inner: F,
            shared: Arc<Shared>,
            decision: Decision,
        },
        /// Redis decides, then the inner service answers.
        Later {
            later: Pin<Box<dyn Future<Output = Result<Response, E>> + Send>>,
        },
    }
}

impl<F, E> Future for RateLimitFuture<F, E>
where
    F: Future<Output = Result<Response, E>>,
{
    type Output = Result<Response, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().state.project() {
            StateProj::Refused { refusal } => refusal.poll(cx),
            StateProj::Allowed {
                inner,
                shared,
                decision,
            } => {
                let mut response = std::task::ready!(inner.poll(cx))?;
                shared.write_headers(response.headers_mut(), decision);
                Poll::Ready(Ok(response))
            }
            StateProj::Later { later } => later.as_mut().poll(cx),
        }
    }
}

/// `Upgrade: websocket` (case-insensitive, as RFC 6455 asks).
fn is_websocket_upgrade(headers: &HeaderMap) -> bool {
    headers
        .get(header::UPGRADE)
        .is_some_and(|value| value.as_bytes().eq_ignore_ascii_case(b"websocket"))
}

impl Shared {
    fn write_headers(&self, headers: &mut HeaderMap, decision: &Decision) {
        headers.insert(RATELIMIT_LIMIT, self.limit.clone());
        headers.insert(RATELIMIT_REMAINING, self.number(decision.remaining.into()));
        headers.insert(
            RATELIMIT_RESET,
            self.number(whole_seconds_up(decision.reset_after)),
        );
        if let Some(policy) = &self.policy {
            headers.insert(RATELIMIT_POLICY, policy.clone());
        }
    }

    /// `n` as a header value.
    fn number(&self, n: u64) -> HeaderValue {
        usize::try_from(n)
            .ok()
            .and_then(|index| self.small_numbers.get(index))
            .cloned()
            .unwrap_or_else(|| HeaderValue::from(n))
    }

    /// 429 with `Retry-After` (whole seconds, at least 1), the
    /// `RateLimit-*` headers and a `RATE_LIMITED` GraphQL error.
    fn refuse(&self, key: &ClientKey, decision: &Decision, request: &HeaderMap) -> Response {
        metrics::counter!("router_rate_limited_total", "client" => key.kind()).increment(1);
        tracing::debug!(client = %key, retry_after = ?decision.retry_after, "rate limited");
        let retry_after = whole_seconds_up(decision.retry_after).max(1);
        let mut response =
            RouterError::RateLimited { retry_after }.into_response(response_content_type(request));
        let headers = response.headers_mut();
        headers.insert(header::RETRY_AFTER, self.number(retry_after));
        self.write_headers(headers, decision);
        response
    }
}

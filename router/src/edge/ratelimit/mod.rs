//! Per-client rate limiting of `/graphql` (the router stage, before any
//! parsing or planning).
//!
//! | piece | role |
//! |---|---|
//! | [`RateLimitSettings`] | the `RATE_LIMIT_*` variables |
//! | [`key`] | who a request counts against: JWT subject, else API key digest, else client IP |
//! | [`local`] | in-memory GCRA (`governor`), for one process or while Redis is away |
//! | [`redis`] | the same GCRA as a Lua script in Redis, shared by every router replica |
//! | [`ClientRateLimiter`] | asks Redis, falls back to the local limiter when Redis fails |
//! | [`layer`] | the tower layer: 429 + `Retry-After` + `RateLimit-*` headers, or the inner service |
//!
//! ## The algorithm: GCRA
//!
//! The generic cell rate algorithm is a token bucket kept as one timestamp
//! per client instead of a counter plus a refill timer. With emission
//! interval `T = RATE_LIMIT_WINDOW / RATE_LIMIT_REQUESTS` and burst `B`,
//! the client's state is its *theoretical arrival time* (TAT): when its
//! bucket would be full again if it stopped now. A request arriving at `now`
//! conforms when `max(TAT, now) + T - B·T <= now`, i.e. when at least one of
//! the `B` cells is free; it then moves TAT to `max(TAT, now) + T`.
//! So a fresh client may send `B` requests at once, then one per `T`: in
//! any span of time `t` it is admitted at most `B + t/T` requests, i.e.
//! `RATE_LIMIT_REQUESTS` per `RATE_LIMIT_WINDOW` plus the burst. From TAT
//! alone follow:
//! remaining cells `floor((now - (TAT' - B·T)) / T)`, the wait before the
//! next conforming instant (`Retry-After`), and the time until the bucket is
//! full (`RateLimit-Reset` = `TAT' - now`). One timestamp per client is
//! also what makes the Redis version a single `GET` and `SET` in one script.
//!
//! ## Why Redis uses the server's `TIME`
//!
//! The decision compares the stored TAT with "now". If each router replica
//! passed its own clock, replicas whose clocks differ by Δ would see the
//! same bucket up to Δ/T cells fuller or emptier than it is: a replica
//! running behind would refuse a client another replica admits, one running
//! ahead would hand out cells early, and a clock step would move every
//! bucket at once. Reading `TIME` inside the script gives every replica one
//! clock, the same one that timestamps the state, so the budget is exactly
//! shared whatever the replicas' clocks say. (The script asks for effect
//! replication, so replicas of Redis copy the written TAT, not the call.)
//!
//! ## Redis failures
//!
//! Each Redis call is bounded by `RATE_LIMIT_REDIS_TIMEOUT`. On an error or
//! a timeout the local limiter decides instead, so the router neither lets
//! everything through nor refuses everything; the budget is then per
//! replica until Redis is back. One `warn!` marks the start of an outage and
//! one `info!` its end; `router_rate_limit_fallback_total` counts the
//! decisions taken locally. During an outage Redis is retried at most every
//! [`REDIS_RETRY_EVERY`], so a dead Redis does not add its timeout to every
//! request.
//!
//! ## Headers and metrics
//!
//! `RateLimit-Limit` is the burst (the most cells a client can hold, so
//! `RateLimit-Remaining` never exceeds it); `RateLimit-Policy` carries the
//! sustained quota (`100;w=60;burst=10`). `router_rate_limited_total`
//! (label `client`: subject, api_key, ip, unknown) counts refusals;
//! `router_rate_limit_fallback_total` (label `reason`: error, timeout,
//! backoff) counts local decisions taken because Redis failed.
//!
//! ## Wiring
//!
//! ```ignore
//! let settings = RateLimitSettings::from_env(&env)?;
//! if settings.enabled {
//!     let limiter = Arc::new(ClientRateLimiter::new(&settings, redis_connection_manager)?);
//!     let keys = KeyResolver::new(subject_resolver, settings.trusted_proxy_header.clone());
//!     graphql_routes = graphql_routes.layer(RateLimitLayer::new(limiter, keys));
//! }
//! ```

pub mod key;
pub mod layer;
pub mod local;
pub mod redis;

use std::num::NonZeroU32;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use ::redis::aio::ConnectionManager;
use futures::future::BoxFuture;
use http::HeaderName;
use shopgraph_core::config::{ConfigError, Env, invalid};

use crate::pipeline::RouterError;
use crate::subscriptions::OperationLimit;

pub use key::{ClientKey, KeyResolver, SubjectResolver};
pub use layer::{RateLimitLayer, RateLimitService};
pub use local::LocalLimiter;
pub use redis::RedisLimiter;

/// During a Redis outage, how long after a failure the next request tries
/// Redis again (the ones in between decide locally at once).
pub const REDIS_RETRY_EVERY: Duration = Duration::from_secs(1);

const DEFAULT_REQUESTS: u32 = 100;
const DEFAULT_WINDOW: Duration = Duration::from_secs(60);
const DEFAULT_BURST: u32 = 10;
const DEFAULT_REDIS_TIMEOUT: Duration = Duration::from_millis(100);
const DEFAULT_KEY_PREFIX: &str = "shopgraph:ratelimit";
const MAX_WINDOW: Duration = Duration::from_secs(24 * 60 * 60);
const MAX_REDIS_TIMEOUT: Duration = Duration::from_secs(10);

/// The `RATE_LIMIT_*` variables.
///
/// | variable | default | meaning |
/// |---|---|---|
/// | `RATE_LIMIT_ENABLED` | false | limit `/graphql` per client (opt-in: behind a proxy that is not configured below, every client would share the proxy's address) |
/// | `RATE_LIMIT_REQUESTS` | 100 | requests per window, sustained |
/// | `RATE_LIMIT_WINDOW` | 1m | the window (1ms to 24h) |
/// | `RATE_LIMIT_BURST` | 10 | requests a fresh client may send at once (≥ 1) |
/// | `RATE_LIMIT_TRUSTED_PROXY_HEADER` | unset: TCP peer | header holding the client address, e.g. `x-forwarded-for` (first address), `x-real-ip`, `forwarded` |
/// | `RATE_LIMIT_REDIS_TIMEOUT` | 100ms | longest wait for Redis before the local limiter decides (1ms to 10s) |
/// | `RATE_LIMIT_KEY_PREFIX` | `shopgraph:ratelimit` | prefix of the Redis keys |
///
/// Redis itself is `REDIS_URL`, read by the router's start-up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RateLimitSettings {
    /// Whether the router adds the rate-limit layer at all.
    pub enabled: bool,
    /// Sustained requests per `window`.
    pub requests: u32,
    /// The period `requests` are spread over.
    pub window: Duration,
    /// Requests a client with a full bucket may send at once.
    pub burst: u32,
    /// The header a trusted proxy writes the client address into; `None`
    /// keys anonymous clients by the TCP peer address.
    pub trusted_proxy_header: Option<HeaderName>,
    /// Longest wait for a Redis decision before deciding locally.
    pub redis_timeout: Duration,
    /// Prefix of every Redis key, so routers of different deployments can
    /// share one Redis without sharing budgets.
    pub key_prefix: String,
}

impl Default for RateLimitSettings {
    fn default() -> Self {
        Self {
            enabled: false,
            requests: DEFAULT_REQUESTS,
            window: DEFAULT_WINDOW,
            burst: DEFAULT_BURST,
            trusted_proxy_header: None,
            redis_timeout: DEFAULT_REDIS_TIMEOUT,
            key_prefix: DEFAULT_KEY_PREFIX.to_owned(),
        }
    }
}

impl RateLimitSettings {
    /// Reads the variables in the table above; an invalid value fails
    /// naming its variable.
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let trusted_proxy_header = match env.raw("RATE_LIMIT_TRUSTED_PROXY_HEADER") {
            None => None,
            Some(name) => Some(HeaderName::from_bytes(name.as_bytes()).map_err(|_| {
                invalid(
                    "RATE_LIMIT_TRUSTED_PROXY_HEADER",
                    name,
                    "an HTTP header name such as x-forwarded-for or x-real-ip",
                )
            })?),
        };
        let settings = Self {
            enabled: env.bool_or("RATE_LIMIT_ENABLED", false)?,
            requests: env.int_in_or("RATE_LIMIT_REQUESTS", 1..=1_000_000_000, DEFAULT_REQUESTS)?,
            window: env.duration_or("RATE_LIMIT_WINDOW", DEFAULT_WINDOW)?,
            burst: env.int_in_or("RATE_LIMIT_BURST", 1..=1_000_000, DEFAULT_BURST)?,
            trusted_proxy_header,
            redis_timeout: env.duration_or("RATE_LIMIT_REDIS_TIMEOUT", DEFAULT_REDIS_TIMEOUT)?,
            key_prefix: env
                .string("RATE_LIMIT_KEY_PREFIX")
                .unwrap_or_else(|| DEFAULT_KEY_PREFIX.to_owned()),
        };
        settings.validate()?;
        Ok(settings)
    }

    /// Checks the relations the per-variable parsing cannot: the window's
    /// range, at least one microsecond per request (the Redis script's
    /// resolution) and a usable Redis timeout.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.window < Duration::from_millis(1) || self.window > MAX_WINDOW {
            return Err(invalid(
                "RATE_LIMIT_WINDOW",
                &format!("{:?}", self.window),
                "a duration from 1ms to 24h",
            ));
        }
        if self.requests == 0 || self.window.as_micros() < u128::from(self.requests) {
            return Err(invalid(
                "RATE_LIMIT_REQUESTS",
                &self.requests.to_string(),
                "an integer from 1 to the number of microseconds in RATE_LIMIT_WINDOW",
            ));
        }
        if self.burst == 0 {
            return Err(invalid(
                "RATE_LIMIT_BURST",
                "0",
                "an integer from 1 to 1000000",
            ));
        }
        if self.redis_timeout < Duration::from_millis(1) || self.redis_timeout > MAX_REDIS_TIMEOUT {
            return Err(invalid(
                "RATE_LIMIT_REDIS_TIMEOUT",
                &format!("{:?}", self.redis_timeout),
                "a duration from 1ms to 10s",
            ));
        }
        Ok(())
    }

    /// The emission interval `T = window / requests`: one request's worth
    /// of time.
    pub fn emission_interval(&self) -> Duration {
        let nanos = self.window.as_nanos() / u128::from(self.requests.max(1));
        Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
    }

    /// The `RateLimit-Policy` value, e.g. `100;w=60;burst=10`: the quota,
    /// the window in whole seconds (rounded up, at least 1) and the burst.
    pub fn policy(&self) -> String {
        format!(
            "{};w={};burst={}",
            self.requests,
            whole_seconds_up(self.window).max(1),
            self.burst
        )
    }
}

/// Seconds, rounded up: what `Retry-After` and `RateLimit-Reset` carry.
pub(crate) fn whole_seconds_up(duration: Duration) -> u64 {
    duration.as_secs() + u64::from(duration.subsec_nanos() > 0)
}

/// One rate-limiting decision, from Redis or the local limiter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    /// Whether the request may proceed (it then used one cell).
    pub allowed: bool,
    /// Cells left after this request: requests the client may still send
    /// at once.
    pub remaining: u32,
    /// When refused, how long until a request would conform; zero when
    /// allowed.
    pub retry_after: Duration,
    /// How long until the client's bucket is full again.
    pub reset_after: Duration,
}

/// Why a decision was taken locally although Redis is configured (the
/// `reason` label of `router_rate_limit_fallback_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FallbackReason {
    /// Redis answered with an error or the connection failed.
    Error,
    /// Redis did not answer within `RATE_LIMIT_REDIS_TIMEOUT`.
    Timeout,
    /// A recent failure: Redis is not asked again before
    /// [`REDIS_RETRY_EVERY`] has passed.
    Backoff,
}

impl FallbackReason {
    fn as_str(self) -> &'static str {
        match self {
            Self::Error => "error",
            Self::Timeout => "timeout",
            Self::Backoff => "backoff",
        }
    }
}

/// Decides per [`ClientKey`]: with Redis when one is configured and
/// answering, else with the in-memory limiter. Build it once; the layer
/// shares it across every request and connection.
#[derive(Debug)]
pub struct ClientRateLimiter {
    local: LocalLimiter,
    redis: Option<RedisLimiter>,
    redis_timeout: Duration,
    retry_every: Duration,
    limit: u32,
    policy: String,
    /// Whether the last Redis attempt failed (an outage is in progress).
    degraded: AtomicBool,
    /// Milliseconds since `started` before which Redis is not retried.
    retry_at_ms: AtomicU64,
    fallback_decisions: AtomicU64,
    started: Instant,
}

impl ClientRateLimiter {
    /// A limiter for `settings`, shared through `redis` when given (the
    /// router builds it from `REDIS_URL`, lazily, so that a router starts
    /// and limits locally while Redis is down). Each call waits at most
    /// `RATE_LIMIT_REDIS_TIMEOUT` whatever the manager's own timeouts.
    pub fn new(
        settings: &RateLimitSettings,
        redis: Option<ConnectionManager>,
    ) -> Result<Self, ConfigError> {
        settings.validate()?;
        let interval = settings.emission_interval();
        let burst = NonZeroU32::new(settings.burst)
            .ok_or_else(|| invalid("RATE_LIMIT_BURST", "0", "an integer from 1 to 1000000"))?;
        Ok(Self {
            local: LocalLimiter::new(interval, burst),
            redis: redis.map(|connection| {
                RedisLimiter::new(connection, &settings.key_prefix, interval, settings.burst)
            }),
            redis_timeout: settings.redis_timeout,
            retry_every: REDIS_RETRY_EVERY,
            limit: settings.burst,
            policy: settings.policy(),
            degraded: AtomicBool::new(false),
            retry_at_ms: AtomicU64::new(0),
            fallback_decisions: AtomicU64::new(0),
            started: Instant::now(),
        })
    }

    /// Takes one cell from `key`'s budget at once when the budget is kept
    /// in memory; `None` when it is kept in Redis ([`Self::check`]).
    pub fn check_now(&self, key: &ClientKey) -> Option<Decision> {
        self.redis.is_none().then(|| self.local.check(key))
    }

    /// Takes one cell from `key`'s budget if there is one.
    pub async fn check(&self, key: &ClientKey) -> Decision {
        let Some(redis) = &self.redis else {
            return self.local.check(key);
        };
        if self.elapsed_ms() < self.retry_at_ms.load(Ordering::Relaxed) {
            return self.fallback(key, FallbackReason::Backoff);
        }
        match tokio::time::timeout(self.redis_timeout, redis.check(key)).await {
            Ok(Ok(decision)) => {
                if self.degraded.swap(false, Ordering::Relaxed) {
                    tracing::info!("Redis answers again: rate limits are shared again");
                }
                decision
            }
            Ok(Err(error)) => {
                self.redis_failed(&error.to_string());
                self.fallback(key, FallbackReason::Error)
            }
            Err(_elapsed) => {
                self.redis_failed(&format!("no answer within {:?}", self.redis_timeout));
                self.fallback(key, FallbackReason::Timeout)
            }
        }
    }

    /// The `RateLimit-Limit` value: the burst, the most requests a client
    /// can have available (so `RateLimit-Remaining` never exceeds it).
    pub fn limit(&self) -> u32 {
        self.limit
    }

    /// The `RateLimit-Policy` value.
    pub fn policy(&self) -> &str {
        &self.policy
    }

    /// Whether Redis is configured but currently failing (for health
    /// reports).
    pub fn redis_degraded(&self) -> bool {
        self.degraded.load(Ordering::Relaxed)
    }

    /// Decisions taken locally because Redis failed, since start.
    pub fn fallback_decisions(&self) -> u64 {
        self.fallback_decisions.load(Ordering::Relaxed)
    }

    #[cfg(test)]
    pub(crate) fn with_retry_every(mut self, retry_every: Duration) -> Self {
        self.retry_every = retry_every;
        self
    }

    fn redis_failed(&self, error: &str) {
        let retry_at = self
            .elapsed_ms()
            .saturating_add(u64::try_from(self.retry_every.as_millis()).unwrap_or(u64::MAX));
        self.retry_at_ms.store(retry_at, Ordering::Relaxed);
        if self.degraded.swap(true, Ordering::Relaxed) {
            tracing::debug!(%error, "Redis rate limiter still failing");
        } else {
            tracing::warn!(
                %error,
                "Redis rate limiter unavailable: deciding with the local limiter \
                 (per-replica budgets) until it answers again"
            );
        }
    }

    fn fallback(&self, key: &ClientKey, reason: FallbackReason) -> Decision {
        self.fallback_decisions.fetch_add(1, Ordering::Relaxed);
        metrics::counter!("router_rate_limit_fallback_total", "reason" => reason.as_str())
            .increment(1);
        self.local.check(key)
    }

    fn elapsed_ms(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX)
    }
}

/// Websocket operations take from the same budget as HTTP requests, keyed
/// by the signed-in user (a websocket caller always is one).
impl OperationLimit for ClientRateLimiter {
    fn take<'a>(&'a self, subject: &'a str) -> BoxFuture<'a, Result<(), RouterError>> {
        Box::pin(async move {
            let key = ClientKey::Subject(subject.to_owned());
            let decision = self.check(&key).await;
            if decision.allowed {
                return Ok(());
            }
            metrics::counter!("router_rate_limited_total", "client" => key.kind()).increment(1);
            tracing::debug!(client = %key, retry_after = ?decision.retry_after, "websocket operation rate limited");
            Err(RouterError::RateLimited {
                retry_after: whole_seconds_up(decision.retry_after).max(1),
            })
        })
    }
}

#[cfg(test)]
mod tests;

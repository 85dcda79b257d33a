//! The in-process limiter: `governor`'s keyed GCRA, one cell per client.
//!
//! It decides alone when no Redis is configured, and stands in for Redis
//! while Redis is unreachable. Keys whose bucket has refilled are swept out
//! every [`SWEEP_EVERY`], so a stream of one-off clients (scanners, rotating
//! addresses) cannot grow the map without bound.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use governor::clock::{Clock, DefaultClock};
use governor::middleware::StateInformationMiddleware;
use governor::state::keyed::DefaultKeyedStateStore;
use governor::{Quota, RateLimiter};

use super::Decision;
use super::key::ClientKey;

/// How often keys at full capacity are dropped from memory.
pub const SWEEP_EVERY: Duration = Duration::from_secs(30);

type Keyed = RateLimiter<
    ClientKey,
    DefaultKeyedStateStore<ClientKey>,
    DefaultClock,
    StateInformationMiddleware,
>;

/// A keyed GCRA limiter in this process's memory.
#[derive(Debug)]
pub struct LocalLimiter {
    /// Shared with the sweep task, which may outlive one `check`.
    limiter: Arc<Keyed>,
    interval: Duration,
    burst: u32,
    /// Milliseconds since `started` at which the next sweep is due; a
    /// compare-and-swap on it elects the one request that starts a sweep.
    next_sweep_ms: AtomicU64,
    sweep_every: Duration,
    started: Instant,
}

impl LocalLimiter {
    /// One cell per `interval`, `burst` at once for a fresh client.
    pub fn new(interval: Duration, burst: NonZeroU32) -> Self {
        Self::with_sweep_every(interval, burst, SWEEP_EVERY)
    }

    pub(crate) fn with_sweep_every(
        interval: Duration,
        burst: NonZeroU32,
        sweep_every: Duration,
    ) -> Self {
        // `with_period` refuses only a zero period, which the clamp rules
        // out; the fallback quota is therefore never used.
        let interval = interval.max(Duration::from_nanos(1));
        let quota = Quota::with_period(interval)
            .unwrap_or_else(|| Quota::per_second(NonZeroU32::MIN))
            .allow_burst(burst);
        Self {
            limiter: Arc::new(RateLimiter::keyed(quota).with_middleware()),
            interval,
            burst: burst.get(),
            next_sweep_ms: AtomicU64::new(millis(sweep_every)),
            sweep_every,
            started: Instant::now(),
        }
    }

    /// Takes one cell from `key`'s bucket if it has one.
    pub fn check(&self, key: &ClientKey) -> Decision {
        self.maybe_sweep();
        match self.limiter.check_key(key) {
            Ok(state) => {
                let remaining = state.remaining_burst_capacity();
                Decision {
                    allowed: true,
                    remaining,
                    retry_after: Duration::ZERO,
                    // The bucket is full again once the cells taken are
                    // re-emitted (an upper bound by less than one interval).
                    reset_after: self
                        .interval
                        .saturating_mul(self.burst.saturating_sub(remaining)),
                }
            }
            Err(not_until) => {
                let retry_after = not_until.wait_time_from(self.limiter.clock().now());
                Decision {
                    allowed: false,
                    remaining: 0,
                    retry_after,
                    // From the next conforming instant, the other burst-1
                    // cells still have to be re-emitted.
                    reset_after: retry_after
                        .saturating_add(self.interval.saturating_mul(self.burst.saturating_sub(1))),
                }
            }
        }
    }

    /// Keys currently held in memory.
    pub fn len(&self) -> usize {
        self.limiter.len()
    }

    /// Whether no key is held.
    pub fn is_empty(&self) -> bool {
        self.limiter.is_empty()
    }

    /// Drops the keys whose bucket is full (indistinguishable from a key
    /// never seen) and releases the memory they held.
    pub fn sweep(&self) {
        sweep(&self.limiter);
    }

    fn maybe_sweep(&self) {
        let now = millis(self.started.elapsed());
        let due = self.next_sweep_ms.load(Ordering::Relaxed);
        if now < due {
            return;
        }
        let next = now.saturating_add(millis(self.sweep_every));
        if self
            .next_sweep_ms
            .compare_exchange(due, next, Ordering::Relaxed, Ordering::Relaxed)
            .is_err()
        {
            // Another request won the election.
            return;
        }
        // Retaining walks every shard: keep that off the request's path.
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                let limiter = Arc::clone(&self.limiter);
                drop(runtime.spawn_blocking(move || sweep(&limiter)));
            }
            Err(_) => sweep(&self.limiter),
        }
    }
}

fn sweep(limiter: &Keyed) {
    limiter.retain_recent();
    limiter.shrink_to_fit();
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(last: u8) -> ClientKey {
        ClientKey::ip(std::net::IpAddr::from([192, 0, 2, last]))
    }

    fn burst(n: u32) -> NonZeroU32 {
        NonZeroU32::new(n).unwrap()
    }

    #[test]
    fn a_fresh_key_gets_its_burst_then_waits_one_interval() {
        let second = Duration::from_secs(1);
        let limiter = LocalLimiter::new(second, burst(3));
        let first = limiter.check(&ip(1));
        assert!(first.allowed);
        assert_eq!(first.remaining, 2);
        assert!(first.reset_after <= second);
        assert!(limiter.check(&ip(1)).allowed);
        let last = limiter.check(&ip(1));
        assert!(last.allowed);
        assert_eq!(last.remaining, 0);
        assert!(last.reset_after > 2 * second);
        assert!(last.reset_after <= 3 * second);

        let refused = limiter.check(&ip(1));
        assert!(!refused.allowed);
        assert_eq!(refused.remaining, 0);
        assert!(refused.retry_after > Duration::ZERO);
        assert!(refused.retry_after <= second);
        assert!(refused.reset_after >= 2 * second);
        assert!(refused.reset_after <= 3 * second);
    }

    #[test]
    fn idle_keys_are_swept_once_their_bucket_is_full() {
        let limiter = LocalLimiter::new(Duration::from_millis(10), burst(2));
        for n in 0..50 {
            limiter.check(&ip(n));
        }
        assert_eq!(limiter.len(), 50);
        std::thread::sleep(Duration::from_millis(40));
        limiter.check(&ip(200));
        limiter.sweep();
        // Only the key just used still differs from a fresh one.
        assert_eq!(limiter.len(), 1);
    }

    #[tokio::test]
    async fn requests_trigger_the_periodic_sweep() {
        let limiter =
            LocalLimiter::with_sweep_every(Duration::from_millis(5), burst(1), Duration::ZERO);
        for n in 0..20 {
            limiter.check(&ip(n));
        }
        tokio::time::sleep(Duration::from_millis(30)).await;
        let deadline = Instant::now() + Duration::from_secs(5);
        // Each check elects a sweep on the blocking pool; wait for one that
        // ran after every earlier bucket refilled.
        while limiter.len() > 1 && Instant::now() < deadline {
            limiter.check(&ip(250));
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(limiter.len() <= 1, "{} keys left", limiter.len());
    }
}

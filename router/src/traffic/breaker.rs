//! A circuit breaker per subgraph: stop sending requests to a subgraph
//! that is failing, so it can recover and clients get an answer at once.
//!
//! The state machine is gobreaker's (which the reference gateway's
//! `CIRCUIT_BREAKER_MAX_REQUESTS / INTERVAL / TIMEOUT` variables come
//! from), with a failure *ratio* instead of a hard-coded trip rule:
//!
//! * **closed**: requests pass; outcomes are counted in windows of
//!   `interval`. When, within a window, at least `min_requests` requests
//!   completed and the share of failures reaches `failure_ratio`, the
//!   breaker opens.
//! * **open**: every request is refused ([`Refused`]) for `timeout`; then
//!   the breaker becomes half-open.
//! * **half-open**: up to `max_requests` probes pass; one failure opens it
//!   again, `max_requests` successes close it.
//!
//! Outcomes carry the generation they were admitted in, so a slow answer
//! from before a state change is not counted against the new state.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::Serialize;

use super::settings::BreakerSettings;

/// The breaker's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BreakerState {
    /// Requests pass.
    Closed,
    /// Probing: a few requests pass.
    HalfOpen,
    /// Requests are refused.
    Open,
}

impl BreakerState {
    /// The `router_circuit_breaker_state` gauge value.
    pub const fn gauge(self) -> f64 {
        match self {
            Self::Closed => 0.0,
            Self::HalfOpen => 1.0,
            Self::Open => 2.0,
        }
    }
}

/// A request the breaker let through; hand it back with the outcome.
#[derive(Debug)]
#[must_use = "report the outcome with CircuitBreaker::record"]
pub struct Permit {
    generation: u64,
}

/// The breaker refused the request: it is open (or half-open with its
/// probes already out).
#[derive(Debug, Clone, Copy)]
pub struct Refused {
    /// How long until it probes again (zero while half-open).
    pub retry_in: Duration,
}

/// What the admin API and `/health/detailed` show.
#[derive(Debug, Clone, Serialize)]
pub struct BreakerSnapshot {
    /// The current state.
    pub state: BreakerState,
    /// Requests counted in the current window (or probes while half-open).
    pub requests: u32,
    /// Failures among them.
    pub failures: u32,
    /// Failures in a row.
    pub consecutive_failures: u32,
    /// Milliseconds until an open breaker starts probing.
    pub open_remaining_ms: Option<u64>,
    /// Requests refused since the router started.
    pub refused_total: u64,
    /// Times it opened since the router started.
    pub opened_total: u64,
}

#[derive(Debug)]
struct Inner {
    state: BreakerState,
    generation: u64,
    /// End of the closed window, or of the open period.
    expiry: Instant,
    requests: u32,
    failures: u32,
    successes_in_row: u32,
    failures_in_row: u32,
    refused_total: u64,
    opened_total: u64,
}

/// One subgraph's breaker.
#[derive(Debug)]
pub struct CircuitBreaker {
    subgraph: String,
    settings: BreakerSettings,
    inner: Mutex<Inner>,
}

impl CircuitBreaker {
    /// A closed breaker for `subgraph`.
    pub fn new(subgraph: &str, settings: BreakerSettings) -> Self {
        let breaker = Self {
            subgraph: subgraph.to_owned(),
            inner: Mutex::new(Inner {
                state: BreakerState::Closed,
                generation: 0,
                expiry: Instant::now() + settings.interval,
                requests: 0,
                failures: 0,
                successes_in_row: 0,
                failures_in_row: 0,
                refused_total: 0,
                opened_total: 0,
            }),
            settings,
        };
        breaker.publish(BreakerState::Closed);
        breaker
    }

    /// Lets a request through, or refuses it.
    pub fn try_acquire(&self) -> Result<Permit, Refused> {
        let now = Instant::now();
        let mut inner = self.lock();
        self.advance(&mut inner, now);
        match inner.state {
            BreakerState::Open => {
                inner.refused_total += 1;
                Err(Refused {
                    retry_in: inner.expiry.saturating_duration_since(now),
                })
            }
            BreakerState::HalfOpen if inner.requests >= self.settings.max_requests => {
                inner.refused_total += 1;
                Err(Refused {
                    retry_in: Duration::ZERO,
                })
            }
            _ => {
                inner.requests = inner.requests.saturating_add(1);
                Ok(Permit {
                    generation: inner.generation,
                })
            }
        }
    }

    /// Reports how the permitted request went.
    pub fn record(&self, permit: Permit, success: bool) {
        let now = Instant::now();
        let mut inner = self.lock();
        self.advance(&mut inner, now);
        if permit.generation != inner.generation {
            return;
        }
        if success {
            inner.successes_in_row = inner.successes_in_row.saturating_add(1);
            inner.failures_in_row = 0;
            if inner.state == BreakerState::HalfOpen
                && inner.successes_in_row >= self.settings.max_requests
            {
                self.switch(&mut inner, BreakerState::Closed, now);
            }
            return;
        }
        inner.failures = inner.failures.saturating_add(1);
        inner.failures_in_row = inner.failures_in_row.saturating_add(1);
        inner.successes_in_row = 0;
        let trips = match inner.state {
            BreakerState::HalfOpen => true,
            BreakerState::Closed => {
                inner.requests >= self.settings.min_requests
                    && f64::from(inner.failures)
                        >= self.settings.failure_ratio * f64::from(inner.requests)
            }
            BreakerState::Open => false,
        };
        if trips {
            self.switch(&mut inner, BreakerState::Open, now);
        }
    }

    /// The permitted request ended without an outcome (its caller gave
    /// up): a half-open probe's slot is freed for another probe.
    pub fn cancel(&self, permit: Permit) {
        let mut inner = self.lock();
        if permit.generation == inner.generation && inner.state == BreakerState::HalfOpen {
            inner.requests = inner.requests.saturating_sub(1);
        }
    }

    /// The state and counts, for operators.
    pub fn snapshot(&self) -> BreakerSnapshot {
        let now = Instant::now();
        let mut inner = self.lock();
        self.advance(&mut inner, now);
        BreakerSnapshot {
            state: inner.state,
            requests: inner.requests,
            failures: inner.failures,
            consecutive_failures: inner.failures_in_row,
            open_remaining_ms: (inner.state == BreakerState::Open).then(|| {
                u64::try_from(inner.expiry.saturating_duration_since(now).as_millis())
                    .unwrap_or(u64::MAX)
            }),
            refused_total: inner.refused_total,
            opened_total: inner.opened_total,
        }
    }

    /// Time-driven transitions: a closed window ends, an open period ends.
    fn advance(&self, inner: &mut Inner, now: Instant) {
        if now < inner.expiry {
            return;
        }
        match inner.state {
            BreakerState::Closed => self.new_generation(inner, now),
            BreakerState::Open => self.switch(inner, BreakerState::HalfOpen, now),
            BreakerState::HalfOpen => {}
        }
    }

    fn switch(&self, inner: &mut Inner, state: BreakerState, now: Instant) {
        let previous = inner.state;
        inner.state = state;
        self.new_generation(inner, now);
        if state == BreakerState::Open {
            inner.opened_total += 1;
        }
        match state {
            BreakerState::Open => tracing::warn!(
                subgraph = %self.subgraph,
                from = ?previous,
                open_for = ?self.settings.timeout,
                "circuit breaker opened: failing fast"
            ),
            _ => {
                tracing::info!(subgraph = %self.subgraph, from = ?previous, to = ?state, "circuit breaker")
            }
        }
        self.publish(state);
    }

    fn new_generation(&self, inner: &mut Inner, now: Instant) {
        inner.generation = inner.generation.wrapping_add(1);
        inner.requests = 0;
        inner.failures = 0;
        inner.successes_in_row = 0;
        inner.expiry = match inner.state {
            BreakerState::Closed => now + self.settings.interval,
            BreakerState::Open => now + self.settings.timeout,
            // Half-open lasts until the probes decide.
            BreakerState::HalfOpen => now + Duration::from_secs(365 * 24 * 3600),
        };
    }

    fn publish(&self, state: BreakerState) {
        metrics::gauge!("router_circuit_breaker_state", "subgraph" => self.subgraph.clone())
            .set(state.gauge());
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn breaker(interval_ms: u64, timeout_ms: u64) -> CircuitBreaker {
        CircuitBreaker::new(
            "product",
            BreakerSettings {
                enabled: true,
                interval: Duration::from_millis(interval_ms),
                timeout: Duration::from_millis(timeout_ms),
                max_requests: 2,
                failure_ratio: 0.5,
                min_requests: 4,
            },
        )
    }

    fn run(breaker: &CircuitBreaker, success: bool) -> bool {
        match breaker.try_acquire() {
            Ok(permit) => {
                breaker.record(permit, success);
                true
            }
            Err(_) => false,
        }
    }

    #[test]
    fn opens_on_the_failure_ratio_only_after_the_minimum_requests() {
        let breaker = breaker(60_000, 60_000);
        // Three failures: below the minimum of four requests.
        for _ in 0..3 {
            assert!(run(&breaker, false));
        }
        assert_eq!(breaker.snapshot().state, BreakerState::Closed);
        // The fourth request fails too: 4/4 ≥ 0.5.
        assert!(run(&breaker, false));
        let snapshot = breaker.snapshot();
        assert_eq!(snapshot.state, BreakerState::Open);
        assert_eq!(snapshot.opened_total, 1);
        let refused = breaker.try_acquire().expect_err("open refuses");
        assert!(refused.retry_in > Duration::from_secs(50));
    }

    #[test]
    fn a_healthy_ratio_keeps_it_closed() {
        let breaker = breaker(60_000, 60_000);
        for i in 0..100 {
            assert!(run(&breaker, i % 3 != 2)); // a third fail: below 0.5
        }
        assert_eq!(breaker.snapshot().state, BreakerState::Closed);
    }

    #[test]
    fn half_opens_after_the_timeout_and_closes_after_successful_probes() {
        let breaker = breaker(60_000, 50);
        for _ in 0..4 {
            run(&breaker, false);
        }
        assert_eq!(breaker.snapshot().state, BreakerState::Open);
        std::thread::sleep(Duration::from_millis(80));
        assert_eq!(breaker.snapshot().state, BreakerState::HalfOpen);
        // Two probes may be out at once; a third is refused meanwhile.
        let first = breaker.try_acquire().expect("probe 1");
        let second = breaker.try_acquire().expect("probe 2");
        assert!(breaker.try_acquire().is_err());
        breaker.record(first, true);
        breaker.record(second, true);
        assert_eq!(breaker.snapshot().state, BreakerState::Closed);
        assert!(run(&breaker, true));
    }

    #[test]
    fn a_failed_probe_opens_it_again() {
        let breaker = breaker(60_000, 50);
        for _ in 0..4 {
            run(&breaker, false);
        }
        std::thread::sleep(Duration::from_millis(80));
        assert!(run(&breaker, false));
        assert_eq!(breaker.snapshot().state, BreakerState::Open);
        assert_eq!(breaker.snapshot().opened_total, 2);
    }

    #[test]
    fn old_windows_are_forgotten_and_stale_outcomes_ignored() {
        let breaker = breaker(50, 60_000);
        let stale = breaker.try_acquire().expect("closed");
        for _ in 0..2 {
            run(&breaker, false);
        }
        std::thread::sleep(Duration::from_millis(80));
        // A new window: the two failures are gone, and the stale
        // permit's failure does not count in it.
        breaker.record(stale, false);
        run(&breaker, false);
        let snapshot = breaker.snapshot();
        assert_eq!(snapshot.state, BreakerState::Closed);
        assert_eq!(snapshot.failures, 1);
    }
}

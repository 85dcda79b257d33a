//! One jittered exponential backoff for everything that retries.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

/// Jittered exponential backoff: each delay is the current step ± 25 %
/// (so replicas that failed together do not retry together), and the step
/// doubles up to a cap. The event relay, the consumers, the live feeds and
/// the router's subgraph retries wait with it.
#[derive(Debug)]
pub struct Backoff {
    min: Duration,
    max: Duration,
    step: Duration,
}

impl Default for Backoff {
    /// 100 ms doubling to 5 s.
    fn default() -> Self {
        Self::new(Duration::from_millis(100), Duration::from_secs(5))
    }
}

impl Backoff {
    /// Starts at `min`, doubling up to `max`.
    pub fn new(min: Duration, max: Duration) -> Self {
        Self {
            min,
            max,
            step: min,
        }
    }

    /// Back to the first step (after a success).
    pub fn reset(&mut self) {
        self.step = self.min;
    }

    /// The next delay; the step after it doubles.
    pub fn next_delay(&mut self) -> Duration {
        let spread = uuid::Uuid::new_v4().as_u128() as u64 % 1000;
        let delay = self.step.mul_f64(0.75 + spread as f64 / 2000.0);
        self.step = (self.step * 2).min(self.max);
        delay
    }

    /// Sleeps the next delay; `true` if `stop` was cancelled meanwhile.
    pub async fn sleep(&mut self, stop: &CancellationToken) -> bool {
        let wait = self.next_delay();
        tokio::select! {
            () = stop.cancelled() => true,
            () = tokio::time::sleep(wait) => false,
        }
    }
}

//! The Redis tier of automatic persisted queries, shared by router replicas.
//!
//! Redis is an optimisation here, never a dependency: a query registered on
//! one replica is found by the others, but when Redis errors or is slow the
//! request goes on as a cache miss (the client resends the text) or a
//! skipped write. Every call is bounded by a short timeout, and after a
//! failure Redis is left alone for a moment so that an outage costs one slow
//! call per back-off period rather than one per request.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use super::hash::QueryHash;

/// After a failed or slow call, Redis is skipped for this long.
const BACKOFF: Duration = Duration::from_secs(2);

/// At most one warning per this period; the others are counted and the
/// count is reported with the next warning.
const WARNING_INTERVAL: Duration = Duration::from_secs(30);

/// A Redis connection for persisted queries (it suits any caller that
/// treats Redis as optional): built lazily, so the router starts while Redis
/// is down, and with short connect and response timeouts plus a bounded
/// reconnect back-off, so an unreachable Redis fails calls fast instead of
/// holding requests. Must be called inside a Tokio runtime (the manager
/// spawns its reconnect task); it does no I/O itself.
pub fn connect_redis(url: &str) -> redis::RedisResult<ConnectionManager> {
    let config = ConnectionManagerConfig::new()
        .set_connection_timeout(Some(Duration::from_millis(250)))
        .set_response_timeout(Some(Duration::from_millis(250)))
        .set_number_of_retries(2)
        .set_min_delay(Duration::from_millis(50))
        .set_max_delay(Duration::from_secs(1));
    ConnectionManager::new_lazy_with_config(redis::Client::open(url)?, config)
}

/// Persisted query texts in Redis under `<prefix>:<sha256 hex>`.
pub(super) struct SharedStore {
    /// Cloned per call: the manager multiplexes one connection and
    /// reconnects by itself.
    connection: ConnectionManager,
    prefix: String,
    /// The `EX` of every write, in whole seconds (at least 1).
    ttl_seconds: u64,
    /// The budget of one call; a slower call counts as a failure.
    timeout: Duration,
    health: Mutex<Health>,
}

/// Failure bookkeeping: when to try Redis again and when we last warned.
#[derive(Default)]
struct Health {
    skip_until: Option<Instant>,
    last_warning: Option<Instant>,
    suppressed: u64,
}

impl SharedStore {
    pub(super) fn new(
        connection: ConnectionManager,
        prefix: String,
        ttl: Duration,
        timeout: Duration,
    ) -> Self {
        let ttl_seconds = ttl.as_secs() + u64::from(ttl.subsec_nanos() > 0);
        Self {
            connection,
            prefix,
            ttl_seconds: ttl_seconds.max(1),
            timeout,
            health: Mutex::default(),
        }
    }

    fn key(&self, hash: &QueryHash) -> String {
        format!("{}:{hash}", self.prefix)
    }

    /// The text stored for `hash`, or `None` when absent, when Redis fails
    /// or is slow, or when the stored text does not hash to `hash` (a
    /// corrupted or foreign entry must not run under a borrowed name).
    pub(super) async fn get(&self, hash: &QueryHash) -> Option<String> {
        if self.backing_off() {
            return None;
        }
        let mut connection = self.connection.clone();
        let mut command = redis::cmd("GET");
        command.arg(self.key(hash));
        let text: Option<String> = self
            .bounded("GET", command.query_async(&mut connection))
            .await?;
        let text = text?;
        if QueryHash::of(&text) != *hash {
            self.warn(
                "GET",
                &format!("the text stored under {} has another hash", self.key(hash)),
            );
            return None;
        }
        Some(text)
    }

    /// Stores `text` under `hash` with the configured TTL; a failure is
    /// logged and otherwise ignored.
    pub(super) async fn set(&self, hash: &QueryHash, text: &str) {
        if self.backing_off() {
            return;
        }
        let mut connection = self.connection.clone();
        let mut command = redis::cmd("SET");
        command
            .arg(self.key(hash))
            .arg(text)
            .arg("EX")
            .arg(self.ttl_seconds);
        let _: Option<()> = self
            .bounded("SET", command.query_async(&mut connection))
            .await;
    }

    /// Runs one call within the timeout; `None` (after logging and starting
    /// the back-off) when it fails or takes too long.
    async fn bounded<T>(
        &self,
        what: &str,
        call: impl Future<Output = redis::RedisResult<T>>,
    ) -> Option<T> {
        match tokio::time::timeout(self.timeout, call).await {
            Ok(Ok(value)) => Some(value),
            Ok(Err(err)) => {
                self.fail(what, &err.to_string());
                None
            }
            Err(_) => {
                self.fail(what, &format!("no answer within {:?}", self.timeout));
                None
            }
        }
    }

    fn backing_off(&self) -> bool {
        let health = self.health.lock().unwrap_or_else(|e| e.into_inner());
        health
            .skip_until
            .is_some_and(|until| Instant::now() < until)
    }

    fn fail(&self, what: &str, problem: &str) {
        {
            let mut health = self.health.lock().unwrap_or_else(|e| e.into_inner());
            health.skip_until = Some(Instant::now() + BACKOFF);
        }
        self.warn(what, problem);
    }

    /// Logs at most once per [`WARNING_INTERVAL`], so an outage under load
    /// does not flood the logs.
    fn warn(&self, what: &str, problem: &str) {
        let suppressed = {
            let mut health = self.health.lock().unwrap_or_else(|e| e.into_inner());
            let now = Instant::now();
            if health
                .last_warning
                .is_some_and(|last| now.duration_since(last) < WARNING_INTERVAL)
            {
                health.suppressed += 1;
                return;
            }
            health.last_warning = Some(now);
            std::mem::take(&mut health.suppressed)
        };
        tracing::warn!(
            command = what,
            problem,
            suppressed_since_last_warning = suppressed,
            "persisted queries: Redis call skipped, serving from memory (Redis is retried after {BACKOFF:?})"
        );
    }
}

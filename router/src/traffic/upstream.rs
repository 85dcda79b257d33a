//! Subgraph replicas, their health, and how one is picked.
//!
//! [`Upstreams`] holds, per subgraph, a [`Pool`] of [`Replica`]s, the
//! subgraph's [`CircuitBreaker`] and its retry budget. It outlives
//! supergraph reloads ([`Upstreams::sync`] keeps a subgraph's state while
//! its replica list is unchanged), so health and breaker state survive a
//! schema change.
//!
//! A replica is *available* when its last active health check passed (or
//! none ran yet) and it is not ejected. Passive outlier detection ejects a
//! replica after `OUTLIER_CONSECUTIVE_FAILURES` failures in a row, for
//! `OUTLIER_EJECTION_TIME`, doubling with each ejection in a row. Only
//! available replicas are picked; with none, the fetch fails at once.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use http::Uri;
use serde::Serialize;
use tower::retry::budget::TpsBudget;

use super::breaker::CircuitBreaker;
use super::settings::{ReplicaUrl, Strategy, TrafficSettings};

/// The longest ejection, however many in a row.
const MAX_EJECTION: Duration = Duration::from_secs(300);

/// One replica of a subgraph.
#[derive(Debug)]
pub struct Replica {
    /// Its GraphQL URL, as configured.
    pub url: String,
    /// `host:port`, the `replica` label of metrics.
    pub label: String,
    uri: Uri,
    health_uri: Option<Uri>,
    weight: u32,
    in_flight: AtomicUsize,
    requests: AtomicU64,
    failures: AtomicU64,
    /// Exponentially weighted mean latency, in microseconds.
    latency_us: AtomicU64,
    healthy: AtomicBool,
    passive: Mutex<Passive>,
}

#[derive(Debug, Default)]
struct Passive {
    failures_in_row: u32,
    ejections_in_row: u32,
    ejected_until: Option<Instant>,
    last_error: Option<String>,
}

/// What operators see of a replica.
#[derive(Debug, Clone, Serialize)]
pub struct ReplicaSnapshot {
    /// Its GraphQL URL.
    pub url: String,
    /// Its weighted-round-robin share.
    pub weight: u32,
    /// Whether requests may go to it now.
    pub available: bool,
    /// The last active health check passed (or none ran yet).
    pub healthy: bool,
    /// Ejected by passive outlier detection.
    pub ejected: bool,
    /// Milliseconds left of the ejection.
    pub ejected_remaining_ms: Option<u64>,
    /// Requests in flight now.
    pub in_flight: usize,
    /// Requests since the router started.
    pub requests: u64,
    /// Failed requests since the router started.
    pub failures: u64,
    /// Failures in a row.
    pub consecutive_failures: u32,
    /// Mean latency (exponentially weighted), in milliseconds.
    pub latency_ms: f64,
    /// The last failure or failed health check.
    pub last_error: Option<String>,
}

impl Replica {
    fn new(subgraph: &str, replica: &ReplicaUrl, health_path: &str) -> Option<Self> {
        let uri: Uri = replica.url.parse().ok()?;
        let label = uri.authority().map(|a| a.to_string()).unwrap_or_default();
        let health_uri = Uri::builder()
            .scheme(uri.scheme_str().unwrap_or("http"))
            .authority(label.as_str())
            .path_and_query(health_path)
            .build()
            .ok();
        metrics::gauge!("router_replica_healthy", "subgraph" => subgraph.to_owned(), "replica" => label.clone())
            .set(1.0);
        Some(Self {
            url: replica.url.clone(),
            label,
            uri,
            health_uri,
            weight: replica.weight,
            in_flight: AtomicUsize::new(0),
            requests: AtomicU64::new(0),
            failures: AtomicU64::new(0),
            latency_us: AtomicU64::new(0),
            healthy: AtomicBool::new(true),
            passive: Mutex::new(Passive::default()),
        })
    }

    /// The GraphQL endpoint requests go to.
    pub fn uri(&self) -> &Uri {
        &self.uri
    }

    /// The readiness endpoint active checks ask.
    pub fn health_uri(&self) -> Option<&Uri> {
        self.health_uri.as_ref()
    }

    /// Whether a request may be sent to it now.
    pub fn is_available(&self, now: Instant) -> bool {
        self.healthy.load(Ordering::Relaxed) && !self.is_ejected(now)
    }

    /// The last active health check passed (or none ran yet).
    pub fn is_healthy(&self) -> bool {
        self.healthy.load(Ordering::Relaxed)
    }

    fn is_ejected(&self, now: Instant) -> bool {
        self.passive()
            .ejected_until
            .is_some_and(|until| until > now)
    }

    /// Requests in flight now.
    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Relaxed)
    }

    /// Counts a request in flight until the guard drops (also when the
    /// caller gives up and drops the fetch).
    pub fn begin(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight {
            replica: Arc::clone(self),
            started: Instant::now(),
        }
    }

    /// Records an active health check's result; logs changes.
    pub fn set_healthy(&self, subgraph: &str, healthy: bool, error: Option<String>) {
        let was = self.healthy.swap(healthy, Ordering::Relaxed);
        if was != healthy {
            if healthy {
                tracing::info!(subgraph, replica = %self.url, "replica is healthy again");
            } else {
                tracing::warn!(subgraph, replica = %self.url, error = error.as_deref().unwrap_or(""), "replica failed its health check");
            }
            metrics::gauge!("router_replica_healthy", "subgraph" => subgraph.to_owned(), "replica" => self.label.clone())
                .set(if healthy { 1.0 } else { 0.0 });
        }
        if let Some(error) = error {
            self.passive().last_error = Some(error);
        }
    }

    /// Passive outlier detection: counts the outcome of a request and
    /// ejects the replica after too many failures in a row.
    fn record(&self, subgraph: &str, failure: Option<String>, policy: &EjectionPolicy) {
        self.requests.fetch_add(1, Ordering::Relaxed);
        let mut passive = self.passive();
        let Some(error) = failure else {
            passive.failures_in_row = 0;
            if passive
                .ejected_until
                .is_none_or(|until| until <= Instant::now())
            {
                passive.ejections_in_row = 0;
                passive.ejected_until = None;
            }
            return;
        };
        self.failures.fetch_add(1, Ordering::Relaxed);
        passive.failures_in_row = passive.failures_in_row.saturating_add(1);
        passive.last_error = Some(error);
        let Some(threshold) = policy.failures else {
            return;
        };
        if passive.failures_in_row < threshold {
            return;
        }
        let factor = 1u32 << passive.ejections_in_row.min(16);
        let length = policy.time.saturating_mul(factor).min(MAX_EJECTION);
        passive.ejected_until = Some(Instant::now() + length);
        passive.ejections_in_row = passive.ejections_in_row.saturating_add(1);
        passive.failures_in_row = 0;
        tracing::warn!(subgraph, replica = %self.url, ejected_for = ?length, "replica ejected after consecutive failures");
        metrics::counter!("router_replica_ejections_total", "subgraph" => subgraph.to_owned(), "replica" => self.label.clone())
            .increment(1);
    }

    /// The replica's state, for operators.
    pub fn snapshot(&self) -> ReplicaSnapshot {
        let now = Instant::now();
        let passive = self.passive();
        let ejected_remaining = passive
            .ejected_until
            .filter(|until| *until > now)
            .map(|until| until - now);
        ReplicaSnapshot {
            url: self.url.clone(),
            weight: self.weight,
            available: self.is_healthy() && ejected_remaining.is_none(),
            healthy: self.is_healthy(),
            ejected: ejected_remaining.is_some(),
            ejected_remaining_ms: ejected_remaining
                .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
            in_flight: self.in_flight(),
            requests: self.requests.load(Ordering::Relaxed),
            failures: self.failures.load(Ordering::Relaxed),
            consecutive_failures: passive.failures_in_row,
            latency_ms: self.latency_us.load(Ordering::Relaxed) as f64 / 1000.0,
            last_error: passive.last_error.clone(),
        }
    }

    fn observe_latency(&self, elapsed: Duration) {
        let sample = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
        // EWMA with α = 1/8; racing updates lose a sample, which is fine.
        let old = self.latency_us.load(Ordering::Relaxed);
        let new = if old == 0 {
            sample
        } else {
            old - old / 8 + sample / 8
        };
        self.latency_us.store(new, Ordering::Relaxed);
    }

    fn passive(&self) -> std::sync::MutexGuard<'_, Passive> {
        self.passive.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A request in flight to a replica; dropping it ends the count.
#[derive(Debug)]
pub struct InFlight {
    replica: Arc<Replica>,
    started: Instant,
}

impl InFlight {
    /// The replica.
    pub fn replica(&self) -> &Arc<Replica> {
        &self.replica
    }

    /// How long the request has taken so far.
    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.replica.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

#[derive(Debug, Clone, Copy)]
struct EjectionPolicy {
    failures: Option<u32>,
    time: Duration,
}

/// A subgraph's replicas and how one is picked.
#[derive(Debug)]
pub struct Pool {
    subgraph: String,
    strategy: Strategy,
    balanced: bool,
    replicas: Vec<Arc<Replica>>,
    cursor: AtomicUsize,
    /// Smooth weighted round robin's running weights, one per replica.
    current_weights: Mutex<Vec<i64>>,
    ejection: EjectionPolicy,
}

impl Pool {
    /// The strategy in use.
    pub fn strategy(&self) -> Strategy {
        self.strategy
    }

    /// Every replica, available or not.
    pub fn replicas(&self) -> &[Arc<Replica>] {
        &self.replicas
    }

    /// Whether at least one replica may take requests.
    pub fn has_available(&self) -> bool {
        let now = Instant::now();
        self.replicas.iter().any(|r| r.is_available(now))
    }

    /// Picks an available replica not in `tried` (a bit set of replica
    /// indexes); `None` when there is none.
    pub fn pick(&self, tried: u64) -> Option<(usize, &Arc<Replica>)> {
        let now = Instant::now();
        let candidates = || {
            self.replicas
                .iter()
                .enumerate()
                .filter(move |(index, replica)| {
                    tried & (1 << index) == 0 && replica.is_available(now)
                })
        };
        if !self.balanced {
            return candidates().next();
        }
        match self.strategy {
            Strategy::RoundRobin => {
                let count = candidates().count();
                if count == 0 {
                    return None;
                }
                let turn = self.cursor.fetch_add(1, Ordering::Relaxed) % count;
                candidates().nth(turn)
            }
            Strategy::LeastConnections => {
                // Ties go round in turn, so equal replicas share the load.
                let turn = self.cursor.fetch_add(1, Ordering::Relaxed);
                let count = self.replicas.len().max(1);
                candidates().min_by_key(|(index, replica)| {
                    (replica.in_flight(), (index + count - turn % count) % count)
                })
            }
            Strategy::WeightedRoundRobin => {
                let mut current = self
                    .current_weights
                    .lock()
                    .unwrap_or_else(|p| p.into_inner());
                let mut total = 0i64;
                let mut best: Option<usize> = None;
                for (index, replica) in candidates() {
                    let weight = i64::from(replica.weight);
                    current[index] += weight;
                    total += weight;
                    if best.is_none_or(|b| current[index] > current[b]) {
                        best = Some(index);
                    }
                }
                let best = best?;
                current[best] -= total;
                Some((best, &self.replicas[best]))
            }
        }
    }

    /// Records a finished request on `replica` (latency, metrics, passive
    /// health); `failure` is the error's text when the replica misbehaved.
    pub fn finish(&self, request: InFlight, failure: Option<String>) {
        let replica = request.replica();
        let elapsed = request.elapsed();
        replica.observe_latency(elapsed);
        let outcome = if failure.is_some() { "error" } else { "ok" };
        metrics::counter!(
            "router_subgraph_replica_requests_total",
            "subgraph" => self.subgraph.clone(),
            "replica" => replica.label.clone(),
            "outcome" => outcome,
        )
        .increment(1);
        metrics::histogram!(
            "router_subgraph_replica_request_duration_seconds",
            "subgraph" => self.subgraph.clone(),
            "replica" => replica.label.clone(),
        )
        .record(elapsed.as_secs_f64());
        replica.record(&self.subgraph, failure, &self.ejection);
    }
}

/// A subgraph's traffic state: replicas, breaker, retry budget.
#[derive(Debug)]
pub struct Upstream {
    /// The subgraph's name.
    pub name: String,
    /// Its replicas.
    pub pool: Pool,
    /// Its breaker (`None` when breakers are off).
    pub breaker: Option<CircuitBreaker>,
    /// Retries allowed, as a share of recent requests.
    pub retry_budget: TpsBudget,
    urls: Vec<ReplicaUrl>,
}

/// Every subgraph's traffic state, shared by all requests and kept across
/// supergraph reloads.
#[derive(Debug)]
pub struct Upstreams {
    settings: TrafficSettings,
    subgraphs: RwLock<BTreeMap<String, Arc<Upstream>>>,
}

impl Upstreams {
    /// Empty; [`Upstreams::sync`] fills it from a supergraph.
    pub fn new(settings: TrafficSettings) -> Self {
        Self {
            settings,
            subgraphs: RwLock::default(),
        }
    }

    /// The settings in use.
    pub fn settings(&self) -> &TrafficSettings {
        &self.settings
    }

    /// Makes the subgraphs those of a (re)loaded supergraph: `urls` maps
    /// each subgraph to the URL its SDL names, used when no
    /// `<SUBGRAPH>_SERVICE_URL(S)` overrides it. A subgraph whose replica
    /// list did not change keeps its state.
    pub fn sync(&self, urls: &BTreeMap<String, String>) {
        let mut subgraphs = self.subgraphs.write().unwrap_or_else(|p| p.into_inner());
        let mut next = BTreeMap::new();
        for (name, url) in urls {
            let replicas = self
                .settings
                .replicas
                .get(name)
                .cloned()
                .unwrap_or_else(|| {
                    vec![ReplicaUrl {
                        url: url.clone(),
                        weight: 1,
                    }]
                });
            let upstream = match subgraphs.get(name) {
                Some(existing) if existing.urls == replicas => Arc::clone(existing),
                _ => Arc::new(self.upstream(name, replicas)),
            };
            for replica in upstream.pool.replicas() {
                tracing::info!(subgraph = %name, url = %replica.url, strategy = upstream.pool.strategy.as_str(), "subgraph replica");
            }
            next.insert(name.clone(), upstream);
        }
        *subgraphs = next;
    }

    fn upstream(&self, name: &str, urls: Vec<ReplicaUrl>) -> Upstream {
        let balancer = &self.settings.balancer;
        let replicas: Vec<Arc<Replica>> = urls
            .iter()
            .filter_map(|url| Replica::new(name, url, &balancer.health_path).map(Arc::new))
            .collect();
        let retry = &self.settings.retry;
        Upstream {
            name: name.to_owned(),
            pool: Pool {
                subgraph: name.to_owned(),
                strategy: self.settings.strategy_of(name),
                balanced: balancer.enabled,
                current_weights: Mutex::new(vec![0; replicas.len()]),
                replicas,
                cursor: AtomicUsize::new(0),
                ejection: EjectionPolicy {
                    failures: balancer.outlier_failures,
                    time: balancer.ejection_time,
                },
            },
            breaker: self
                .settings
                .breaker
                .enabled
                .then(|| CircuitBreaker::new(name, self.settings.breaker.clone())),
            retry_budget: TpsBudget::new(
                Duration::from_secs(10),
                retry.budget_min_per_second,
                retry.budget_ratio,
            ),
            urls,
        }
    }

    /// One subgraph's state.
    pub fn get(&self, subgraph: &str) -> Option<Arc<Upstream>> {
        let subgraphs = self.subgraphs.read().unwrap_or_else(|p| p.into_inner());
        subgraphs.get(subgraph).cloned()
    }

    /// Every subgraph's state, by name.
    pub fn all(&self) -> Vec<Arc<Upstream>> {
        let subgraphs = self.subgraphs.read().unwrap_or_else(|p| p.into_inner());
        subgraphs.values().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use shopgraph_core::config::Env;

    fn pool(strategy: &str, urls: &str) -> Arc<Upstream> {
        let env = Env::from_pairs([
            ("PRODUCT_SERVICE_URLS", urls),
            ("LOAD_BALANCER_STRATEGY", strategy),
            ("OUTLIER_CONSECUTIVE_FAILURES", "2"),
            ("OUTLIER_EJECTION_TIME", "50ms"),
        ]);
        let upstreams = Upstreams::new(TrafficSettings::from_env(&env).unwrap());
        upstreams.sync(&[("product".to_owned(), "http://sdl/graphql".to_owned())].into());
        upstreams.get("product").unwrap()
    }

    fn picks(pool: &Pool, n: usize) -> Vec<usize> {
        (0..n).map(|_| pool.pick(0).unwrap().0).collect()
    }

    #[test]
    fn round_robin_takes_turns() {
        let up = pool(
            "round_robin",
            "http://a/graphql,http://b/graphql,http://c/graphql",
        );
        assert_eq!(picks(&up.pool, 6), [0, 1, 2, 0, 1, 2]);
    }

    #[test]
    fn weighted_round_robin_interleaves_by_weight() {
        let up = pool(
            "weighted_round_robin",
            "http://a/graphql;weight=3,http://b/graphql",
        );
        let picked = picks(&up.pool, 8);
        assert_eq!(picked.iter().filter(|&&i| i == 0).count(), 6);
        // Smooth: never three of `a` in a row... a a b a | a a b a
        assert_eq!(picked, [0, 0, 1, 0, 0, 0, 1, 0]);
    }

    #[test]
    fn least_connections_prefers_the_idle_replica() {
        let up = pool("least_connections", "http://a/graphql,http://b/graphql");
        let busy = up.pool.replicas()[0].begin();
        assert_eq!(picks(&up.pool, 3), [1, 1, 1]);
        drop(busy);
        let mut both = picks(&up.pool, 4);
        both.sort_unstable();
        assert_eq!(both, [0, 0, 1, 1]);
    }

    #[test]
    fn failures_in_a_row_eject_a_replica_for_a_while() {
        let up = pool("round_robin", "http://a/graphql,http://b/graphql");
        let a = Arc::clone(&up.pool.replicas()[0]);
        for _ in 0..2 {
            up.pool.finish(a.begin(), Some("connection refused".into()));
        }
        assert!(a.snapshot().ejected);
        assert_eq!(picks(&up.pool, 3), [1, 1, 1]);
        // Excluding the only available one leaves none.
        assert!(up.pool.pick(1 << 1).is_none());
        std::thread::sleep(Duration::from_millis(70));
        assert!(a.is_available(Instant::now()));
        // The second ejection in a row lasts twice as long.
        for _ in 0..2 {
            up.pool.finish(a.begin(), Some("connection refused".into()));
        }
        let left = a.snapshot().ejected_remaining_ms.unwrap();
        assert!(left > 60, "{left}");
    }

    #[test]
    fn unhealthy_replicas_are_skipped_and_none_left_means_none() {
        let up = pool("round_robin", "http://a/graphql,http://b/graphql");
        up.pool.replicas()[1].set_healthy("product", false, Some("503".into()));
        assert_eq!(picks(&up.pool, 3), [0, 0, 0]);
        up.pool.replicas()[0].set_healthy("product", false, None);
        assert!(up.pool.pick(0).is_none());
        assert!(!up.pool.has_available());
    }

    #[test]
    fn reloads_keep_state_of_unchanged_subgraphs() {
        let env = Env::from_pairs([("PRODUCT_SERVICE_URLS", "http://a/graphql")]);
        let upstreams = Upstreams::new(TrafficSettings::from_env(&env).unwrap());
        let urls: BTreeMap<_, _> = [
            ("product".to_owned(), "http://sdl-p/graphql".to_owned()),
            ("basket".to_owned(), "http://sdl-b/graphql".to_owned()),
        ]
        .into();
        upstreams.sync(&urls);
        let before = upstreams.get("product").unwrap();
        assert_eq!(
            upstreams.get("basket").unwrap().pool.replicas()[0].url,
            "http://sdl-b/graphql"
        );
        upstreams.sync(&urls);
        assert!(Arc::ptr_eq(&before, &upstreams.get("product").unwrap()));
    }
}

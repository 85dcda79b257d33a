//! The traffic-management variables: replicas, balancing, health checks,
//! outlier ejection, circuit breakers and retries.
//!
//! The variables, their defaults and meanings are listed once, in the
//! README's Configuration section (kept true by
//! `tests/api/config_reference.rs`); each field below names its variable.

use std::collections::BTreeMap;
use std::time::Duration;

use shopgraph_core::config::{ConfigError, Env, invalid};

/// How a replica is chosen among the healthy ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strategy {
    /// Each replica in turn.
    RoundRobin,
    /// The replica with the fewest requests in flight (ties in turn):
    /// shifts traffic away from a slow replica on its own.
    LeastConnections,
    /// Each replica in proportion to its weight, interleaved (smooth
    /// weighted round robin, as nginx does).
    WeightedRoundRobin,
}

impl Strategy {
    /// The variable's spelling.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::RoundRobin => "round_robin",
            Self::LeastConnections => "least_connections",
            Self::WeightedRoundRobin => "weighted_round_robin",
        }
    }

    fn parse(var: &str, value: &str) -> Result<Self, ConfigError> {
        match value.trim().to_ascii_lowercase().as_str() {
            "round_robin" => Ok(Self::RoundRobin),
            "least_connections" => Ok(Self::LeastConnections),
            "weighted_round_robin" => Ok(Self::WeightedRoundRobin),
            _ => Err(invalid(
                var,
                value,
                "round_robin, least_connections or weighted_round_robin",
            )),
        }
    }
}

/// One replica as configured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplicaUrl {
    /// Its GraphQL endpoint.
    pub url: String,
    /// Its share under `weighted_round_robin` (1..=100).
    pub weight: u32,
}

/// Load balancing and replica health.
#[derive(Debug, Clone)]
pub struct BalancerSettings {
    /// Whether requests are spread at all.
    pub enabled: bool,
    /// The default strategy.
    pub strategy: Strategy,
    /// Subgraph name → its own strategy.
    pub strategies: BTreeMap<String, Strategy>,
    /// Active health check period (`None`: off).
    pub health_interval: Option<Duration>,
    /// Longest wait for one health check.
    pub health_timeout: Duration,
    /// Path of the readiness endpoint on each replica's host.
    pub health_path: String,
    /// Consecutive failures that eject a replica (`None`: never).
    pub outlier_failures: Option<u32>,
    /// The first ejection's length.
    pub ejection_time: Duration,
}

/// The per-subgraph circuit breaker.
#[derive(Debug, Clone)]
pub struct BreakerSettings {
    /// Whether subgraphs have breakers.
    pub enabled: bool,
    /// Closed-state counting window.
    pub interval: Duration,
    /// Open time before probing.
    pub timeout: Duration,
    /// Probes while half-open.
    pub max_requests: u32,
    /// Failure ratio that opens the breaker.
    pub failure_ratio: f64,
    /// Requests in the window before the ratio counts.
    pub min_requests: u32,
}

/// Retries of query fetches.
#[derive(Debug, Clone)]
pub struct RetrySettings {
    /// Whether failed query fetches are retried.
    pub enabled: bool,
    /// Retries after the first attempt.
    pub attempts: u32,
    /// Backoff before the first retry.
    pub backoff_min: Duration,
    /// Longest backoff.
    pub backoff_max: Duration,
    /// Retries per recent request the budget allows.
    pub budget_ratio: f32,
    /// Retries per second always allowed.
    pub budget_min_per_second: u32,
}

/// Everything the subgraph side of the router needs to protect itself.
#[derive(Debug, Clone)]
pub struct TrafficSettings {
    /// Subgraph name → replicas, overriding the supergraph's URL.
    pub replicas: BTreeMap<String, Vec<ReplicaUrl>>,
    /// Balancing and health.
    pub balancer: BalancerSettings,
    /// Circuit breakers.
    pub breaker: BreakerSettings,
    /// Retries.
    pub retry: RetrySettings,
}

impl TrafficSettings {
    /// Reads the variables in the module table.
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let mut replicas = BTreeMap::new();
        // `_SERVICE_URLS` wins over `_SERVICE_URL` for the same subgraph.
        for suffix in ["_SERVICE_URL", "_SERVICE_URLS"] {
            for (var, value) in env.with_suffix(suffix) {
                let name = var[..var.len() - suffix.len()].to_ascii_lowercase();
                replicas.insert(name, parse_replicas(var, value)?);
            }
        }
        let mut strategies = BTreeMap::new();
        for (var, value) in env.with_suffix("_LOAD_BALANCER_STRATEGY") {
            if var == "LOAD_BALANCER_STRATEGY" {
                continue;
            }
            let name = var[..var.len() - "_LOAD_BALANCER_STRATEGY".len()].to_ascii_lowercase();
            strategies.insert(name, Strategy::parse(var, value)?);
        }
        let strategy = match env.raw("LOAD_BALANCER_STRATEGY") {
            Some(value) => Strategy::parse("LOAD_BALANCER_STRATEGY", value)?,
            None => Strategy::RoundRobin,
        };
        let health_interval = env.duration_or("HEALTH_CHECK_INTERVAL", Duration::from_secs(5))?;
        let outlier_failures: u32 = env.int_in_or("OUTLIER_CONSECUTIVE_FAILURES", 0..=1000, 5)?;
        let balancer = BalancerSettings {
            enabled: env.bool_or("LOAD_BALANCER_ENABLED", true)?,
            strategy,
            strategies,
            health_interval: (!health_interval.is_zero()).then_some(health_interval),
            health_timeout: env.duration_or("HEALTH_CHECK_TIMEOUT", Duration::from_secs(2))?,
            health_path: health_path(env)?,
            outlier_failures: (outlier_failures > 0).then_some(outlier_failures),
            ejection_time: env.duration_or("OUTLIER_EJECTION_TIME", Duration::from_secs(10))?,
        };
        let breaker = BreakerSettings {
            enabled: env.bool_or("CIRCUIT_BREAKER_ENABLED", true)?,
            interval: positive(env, "CIRCUIT_BREAKER_INTERVAL", Duration::from_secs(60))?,
            timeout: positive(env, "CIRCUIT_BREAKER_TIMEOUT", Duration::from_secs(30))?,
            max_requests: env.int_in_or("CIRCUIT_BREAKER_MAX_REQUESTS", 1..=10_000, 10)?,
            failure_ratio: ratio(env, "CIRCUIT_BREAKER_FAILURE_RATIO", 0.5)?,
            min_requests: env.int_in_or("CIRCUIT_BREAKER_MIN_REQUESTS", 1..=1_000_000, 10)?,
        };
        let retry = RetrySettings {
            enabled: env.bool_or("RETRY_ENABLED", true)?,
            attempts: env.int_in_or("RETRY_ATTEMPTS", 0..=10, 2)?,
            backoff_min: env.duration_or("RETRY_BACKOFF_MIN", Duration::from_millis(10))?,
            backoff_max: env.duration_or("RETRY_BACKOFF_MAX", Duration::from_millis(200))?,
            budget_ratio: ratio(env, "RETRY_BUDGET_RATIO", 0.2)? as f32,
            budget_min_per_second: env.int_in_or("RETRY_BUDGET_MIN_PER_SECOND", 0..=100_000, 10)?,
        };
        Ok(Self {
            replicas,
            balancer,
            breaker,
            retry,
        })
    }

    /// The strategy of `subgraph`.
    pub fn strategy_of(&self, subgraph: &str) -> Strategy {
        self.balancer
            .strategies
            .get(subgraph)
            .copied()
            .unwrap_or(self.balancer.strategy)
    }
}

fn positive(env: &Env, var: &str, default: Duration) -> Result<Duration, ConfigError> {
    let value = env.duration_or(var, default)?;
    if value.is_zero() {
        return Err(invalid(var, "0", "a duration above zero, e.g. 30s"));
    }
    Ok(value)
}

fn ratio(env: &Env, var: &str, default: f64) -> Result<f64, ConfigError> {
    let Some(raw) = env.raw(var) else {
        return Ok(default);
    };
    match raw.trim().parse::<f64>() {
        Ok(value) if value > 0.0 && value <= 1.0 => Ok(value),
        _ => Err(invalid(
            var,
            raw,
            "a number above 0 and at most 1, e.g. 0.5",
        )),
    }
}

fn health_path(env: &Env) -> Result<String, ConfigError> {
    let path = env.raw("HEALTH_CHECK_PATH").unwrap_or("/health/ready");
    if !path.starts_with('/') {
        return Err(invalid(
            "HEALTH_CHECK_PATH",
            path,
            "a path such as /health/ready",
        ));
    }
    Ok(path.to_owned())
}

/// Parses `url[;weight=N], url...`.
pub fn parse_replicas(var: &str, value: &str) -> Result<Vec<ReplicaUrl>, ConfigError> {
    let expected = "comma-separated http:// URLs, each optionally followed by ;weight=N (1..=100)";
    let mut replicas = Vec::new();
    for entry in value.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let mut parts = entry.split(';').map(str::trim);
        let url = parts.next().unwrap_or_default();
        if !(url.starts_with("http://") || url.starts_with("https://"))
            || url.parse::<http::Uri>().is_err()
        {
            return Err(invalid(var, value, expected));
        }
        let mut weight = 1;
        for option in parts {
            match option.split_once('=') {
                Some(("weight", n)) => match n.trim().parse::<u32>() {
                    Ok(n @ 1..=100) => weight = n,
                    _ => return Err(invalid(var, value, expected)),
                },
                _ => return Err(invalid(var, value, expected)),
            }
        }
        replicas.push(ReplicaUrl {
            url: url.to_owned(),
            weight,
        });
    }
    if replicas.is_empty() {
        return Err(invalid(var, value, expected));
    }
    if replicas.len() > 64 {
        return Err(invalid(var, value, "at most 64 replicas"));
    }
    Ok(replicas)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replicas_weights_and_strategies_come_from_the_environment() {
        let env = Env::from_pairs([
            ("PRODUCT_SERVICE_URL", "http://p0:1/graphql"),
            (
                "PRODUCT_SERVICE_URLS",
                "http://p1:1/graphql;weight=3, http://p2:1/graphql",
            ),
            ("BASKET_SERVICE_URL", "http://b:2/graphql"),
            ("LOAD_BALANCER_STRATEGY", "least_connections"),
            ("PRODUCT_LOAD_BALANCER_STRATEGY", "weighted_round_robin"),
            ("HEALTH_CHECK_INTERVAL", "0s"),
        ]);
        let settings = TrafficSettings::from_env(&env).unwrap();
        assert_eq!(
            settings.replicas["product"],
            vec![
                ReplicaUrl {
                    url: "http://p1:1/graphql".into(),
                    weight: 3
                },
                ReplicaUrl {
                    url: "http://p2:1/graphql".into(),
                    weight: 1
                },
            ]
        );
        assert_eq!(settings.replicas["basket"].len(), 1);
        assert_eq!(
            settings.strategy_of("product"),
            Strategy::WeightedRoundRobin
        );
        assert_eq!(settings.strategy_of("basket"), Strategy::LeastConnections);
        assert_eq!(settings.balancer.health_interval, None);
    }

    #[test]
    fn bad_values_name_the_variable() {
        for (var, value) in [
            ("PRODUCT_SERVICE_URLS", "http://a/graphql;weight=0"),
            ("PRODUCT_SERVICE_URLS", "http://a/graphql;color=red"),
            ("PRODUCT_SERVICE_URLS", " , "),
            ("LOAD_BALANCER_STRATEGY", "random"),
            ("BASKET_LOAD_BALANCER_STRATEGY", "fastest"),
            ("CIRCUIT_BREAKER_FAILURE_RATIO", "1.5"),
            ("CIRCUIT_BREAKER_TIMEOUT", "0s"),
            ("CIRCUIT_BREAKER_MAX_REQUESTS", "0"),
            ("RETRY_ATTEMPTS", "many"),
            ("HEALTH_CHECK_PATH", "health"),
        ] {
            let err = TrafficSettings::from_env(&Env::from_pairs([(var, value)]))
                .expect_err(var)
                .to_string();
            assert!(err.contains(var), "{err}");
        }
    }
}

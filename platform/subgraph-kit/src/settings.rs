//! The settings of one subgraph process, read from the environment.
//!
//! Each service calls [`ServiceSettings::from_env`] with its own name; the
//! name gives it a private prefix (`PRODUCT_PORT`, `PRODUCT_DATABASE_URL`)
//! that wins over the shared variable (`PORT`, `DATABASE_URL`), so one
//! environment can configure a single service or the whole shop.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use shopgraph_core::config::{ConfigError, Env, invalid};
use shopgraph_core::hop::HopSettings;
use shopgraph_core::identity::JwtSettings;
use shopgraph_core::settings::{HttpSettings, RunMode};

/// Which store a service uses and how many connections it may hold.
#[derive(Debug, Clone)]
pub struct DatabaseSettings {
    /// A SeaORM URL: `postgres://`, `mysql://` or `sqlite:`.
    pub url: String,
    /// Pool size (`DATABASE_MAX_CONNECTIONS`).
    pub max_connections: u32,
    /// How long a request waits for a pooled connection (`DATABASE_ACQUIRE_TIMEOUT`).
    pub acquire_timeout: Duration,
}

/// How a subgraph treats callers' tokens.
#[derive(Debug, Clone)]
pub struct AuthSettings {
    /// How a bearer token sent straight to this subgraph is verified
    /// (`JWT_*`, the same rules as the router's), or `None` when direct
    /// tokens are refused (`ACCEPT_DIRECT_TOKENS`). In production clients
    /// call the router, which verifies the token and forwards the caller's
    /// identity, so a direct token is refused; `shopgraph dev` accepts one
    /// so that a subgraph can be run and tried on its own. Default: accepted
    /// in `dev`, refused in `serve`. The `JWT_*` variables are read only
    /// when direct tokens are accepted, so a `serve` subgraph that accepts
    /// them without `JWT_SECRET` or a JWKS fails to start (exit 2), like
    /// the router, instead of trusting the public dev secret.
    pub direct_tokens: Option<JwtSettings>,
    /// The signed hop's keys (`HOP_*`): the public keys this subgraph
    /// trusts, and the private key it signs its own calls to other
    /// subgraphs with. Required in `serve`; generated in `dev`.
    pub hop: HopSettings,
}

impl AuthSettings {
    /// Whether a bearer token sent straight to this subgraph is verified
    /// rather than refused.
    pub fn accepts_direct_tokens(&self) -> bool {
        self.direct_tokens.is_some()
    }
}

/// Guards against expensive GraphQL documents at the subgraph itself.
#[derive(Debug, Clone)]
pub struct GraphqlSettings {
    /// Deepest selection accepted (`GRAPHQL_MAX_DEPTH`).
    pub max_depth: usize,
    /// Highest async-graphql complexity accepted (`GRAPHQL_MAX_COMPLEXITY`).
    pub max_complexity: usize,
    /// Whether schema introspection is served (`GRAPHQL_INTROSPECTION`):
    /// on in `dev`, off in `serve` unless enabled, so a production schema
    /// is not handed to anyone who asks. It also decides whether
    /// federation's `_service` is answered to callers without a hop
    /// signature (signed callers always get it).
    pub introspection: bool,
    /// Whether browsers get GraphiQL at `/graphql` (`GRAPHIQL`): on in
    /// `dev`, off in `serve` unless enabled.
    pub graphiql: bool,
}

/// How far a subgraph's metrics listener port is from its API port by
/// default (product 4001 → 4101), as the router's admin listener (4100) is
/// from its API port (4000).
pub const METRICS_PORT_OFFSET: u16 = 100;

/// Where a subgraph serves Prometheus `/metrics`: a listener of its own,
/// apart from the public GraphQL port, because the series name operations,
/// error codes and statement counts that anonymous callers of the public
/// port have no business reading (issue 17). It binds loopback unless
/// `METRICS_HOST` says otherwise, like the router's admin listener.
#[derive(Debug, Clone)]
pub struct MetricsSettings {
    /// `METRICS_HOST`:`<SERVICE>_METRICS_PORT`, or `None` with
    /// `METRICS_ENABLED=false`; port 0 picks a free port (tests).
    pub addr: Option<SocketAddr>,
}

impl MetricsSettings {
    /// Reads `METRICS_ENABLED`, `METRICS_HOST` and the port of the service
    /// whose own variable is `port_var` (`PRODUCT_METRICS_PORT`); in
    /// `serve` the bare `METRICS_PORT` also works (in `dev` every service
    /// shares one environment, so it would be ambiguous, as `PORT` is).
    pub fn from_env(
        env: &Env,
        port_var: &str,
        default_port: u16,
        mode: RunMode,
    ) -> Result<Self, ConfigError> {
        let enabled = env.bool_or("METRICS_ENABLED", true)?;
        let host = env.ip_or("METRICS_HOST", IpAddr::V4(Ipv4Addr::LOCALHOST))?;
        let port_keys: &[&str] = match mode {
            RunMode::Dev => &[port_var],
            RunMode::Serve => &[port_var, "METRICS_PORT"],
        };
        let port = env.port_or(port_keys, default_port)?;
        Ok(Self {
            addr: enabled.then_some(SocketAddr::new(host, port)),
        })
    }
}

/// Everything a subgraph process needs besides its domain settings.
#[derive(Debug, Clone)]
pub struct ServiceSettings {
    /// The service's name (`product`), used in logs, metrics and variable prefixes.
    pub name: &'static str,
    /// HTTP listener settings.
    pub http: HttpSettings,
    /// The metrics listener (`METRICS_*`), apart from the API port.
    pub metrics: MetricsSettings,
    /// Store settings.
    pub database: DatabaseSettings,
    /// Token verification settings.
    pub auth: AuthSettings,
    /// GraphQL limits.
    pub graphql: GraphqlSettings,
    /// The shop's currency (`SHOP_CURRENCY`, ISO 4217): new products'
    /// default and the currency of an empty basket's zero total.
    pub shop_currency: String,
    /// The event bus (`KAFKA_*`; in-process without `KAFKA_BROKERS`).
    pub events: crate::events::EventSettings,
}

impl ServiceSettings {
    /// Fails closed before a subgraph serves: one that could verify nobody
    /// would have to refuse every request (or, worse, trust headers).
    /// `shopgraph serve` calls it first (exit 2); `migrate` needs no keys.
    pub fn check_hop_keys(&self) -> Result<(), ConfigError> {
        self.auth.hop.require_verifier(self.name).map(drop)
    }

    /// Reads the settings of service `name` whose dev port is `default_port`.
    pub fn from_env(
        env: &Env,
        name: &'static str,
        default_port: u16,
        mode: RunMode,
    ) -> Result<Self, ConfigError> {
        let prefix = name.to_ascii_uppercase();
        let port_var = format!("{prefix}_PORT");
        let http = HttpSettings::from_env(env, &port_var, default_port, mode)?;
        let metrics = MetricsSettings::from_env(
            env,
            &format!("{prefix}_METRICS_PORT"),
            // A service on a free port (0, tests) gets a free metrics port too.
            if default_port == 0 {
                0
            } else {
                default_port.saturating_add(METRICS_PORT_OFFSET)
            },
            mode,
        )?;

        let db_var = format!("{prefix}_DATABASE_URL");
        let url = match env.first_raw(&[&db_var, "DATABASE_URL"]) {
            Some((var, value)) => {
                if ![
                    "postgres://",
                    "postgresql://",
                    "mysql://",
                    "mariadb://",
                    "sqlite:",
                ]
                .iter()
                .any(|scheme| value.starts_with(scheme))
                {
                    return Err(invalid(
                        var,
                        value,
                        "a postgres://, mysql:// or sqlite: URL",
                    ));
                }
                value.replacen("mariadb://", "mysql://", 1)
            }
            None => default_sqlite_url(env, name),
        };
        let database = DatabaseSettings {
            url,
            max_connections: env.int_in_or("DATABASE_MAX_CONNECTIONS", 1..=1000, 10)?,
            acquire_timeout: env
                .duration_or("DATABASE_ACQUIRE_TIMEOUT", Duration::from_secs(10))?,
        };

        let auth = AuthSettings {
            direct_tokens: if env.bool_or("ACCEPT_DIRECT_TOKENS", mode == RunMode::Dev)? {
                Some(JwtSettings::from_env(env, mode)?)
            } else {
                None
            },
            hop: HopSettings::from_env(env, mode)?,
        };

        let graphql = GraphqlSettings {
            max_depth: env.int_in_or("GRAPHQL_MAX_DEPTH", 2..=256, 16)?,
            max_complexity: env.int_in_or("GRAPHQL_MAX_COMPLEXITY", 10..=1_000_000, 20_000)?,
            introspection: env.bool_or("GRAPHQL_INTROSPECTION", mode == RunMode::Dev)?,
            graphiql: env.bool_or("GRAPHIQL", mode == RunMode::Dev)?,
        };

        let shop_currency = env.string("SHOP_CURRENCY").unwrap_or_else(|| "EUR".into());
        if !crate::money::is_currency_code(&shop_currency) {
            return Err(invalid(
                "SHOP_CURRENCY",
                &shop_currency,
                "an ISO 4217 code of three capital letters, e.g. EUR",
            ));
        }

        let events = crate::events::EventSettings::from_env(env)?;

        Ok(Self {
            name,
            http,
            metrics,
            database,
            events,
            auth,
            graphql,
            shop_currency,
        })
    }
}

/// The embedded store: a SQLite file per service under `SHOPGRAPH_DATA_DIR`
/// (default `./.shopgraph-data`), created on first start.
fn default_sqlite_url(env: &Env, name: &str) -> String {
    let dir = env
        .raw("SHOPGRAPH_DATA_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(".shopgraph-data"));
    format!(
        "sqlite://{}?mode=rwc",
        dir.join(format!("{name}.db")).display()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `pairs` plus the hop's keys, without which `serve` does not start.
    fn serve_env<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Env {
        let hop = shopgraph_core::hop::HopKeyPair::of_this_process().env_vars();
        Env::from_pairs(pairs.into_iter().chain(hop))
    }

    #[test]
    fn serve_needs_the_keys_of_the_hop() {
        let settings =
            ServiceSettings::from_env(&Env::default(), "product", 4001, RunMode::Serve).unwrap();
        let err = settings
            .check_hop_keys()
            .expect_err("no unsigned hop in serve")
            .to_string();
        assert!(err.contains("HOP_TRUSTED_KEYS_FILE"), "{err}");
        let dev =
            ServiceSettings::from_env(&Env::default(), "product", 4001, RunMode::Dev).unwrap();
        assert!(dev.check_hop_keys().is_ok(), "dev generates its pair");
    }

    #[test]
    fn service_variables_win_over_shared_ones() {
        let env = serve_env([
            ("PORT", "9000"),
            ("PRODUCT_PORT", "9001"),
            ("DATABASE_URL", "postgres://shared/db"),
            ("PRODUCT_DATABASE_URL", "postgres://own/db"),
        ]);
        let s = ServiceSettings::from_env(&env, "product", 4001, RunMode::Serve).unwrap();
        assert_eq!(s.http.addr.port(), 9001);
        assert_eq!(s.database.url, "postgres://own/db");
    }

    #[test]
    fn dev_mode_ignores_bare_port_and_binds_loopback() {
        let env = Env::from_pairs([("PORT", "9000")]);
        let s = ServiceSettings::from_env(&env, "product", 4001, RunMode::Dev).unwrap();
        assert_eq!(s.http.addr, "127.0.0.1:4001".parse().unwrap());
        assert!(s.database.url.starts_with("sqlite://"));
        let jwt = s
            .auth
            .direct_tokens
            .as_ref()
            .expect("dev accepts direct tokens");
        assert!(jwt.using_dev_secret);
        assert!(s.graphql.introspection && s.graphql.graphiql);
    }

    #[test]
    fn serve_turns_introspection_and_graphiql_off_unless_enabled() {
        let serve =
            ServiceSettings::from_env(&serve_env([]), "product", 4001, RunMode::Serve).unwrap();
        assert!(!serve.graphql.introspection && !serve.graphql.graphiql);
        let env = serve_env([("GRAPHQL_INTROSPECTION", "true"), ("GRAPHIQL", "true")]);
        let enabled = ServiceSettings::from_env(&env, "product", 4001, RunMode::Serve).unwrap();
        assert!(enabled.graphql.introspection && enabled.graphql.graphiql);
    }

    #[test]
    fn direct_tokens_are_refused_in_serve_unless_enabled() {
        let serve =
            ServiceSettings::from_env(&serve_env([]), "product", 4001, RunMode::Serve).unwrap();
        assert!(!serve.auth.accepts_direct_tokens());
        let env = serve_env([
            ("ACCEPT_DIRECT_TOKENS", "true"),
            ("JWT_SECRET", "a-secret-that-is-long-enough-for-hs256"),
        ]);
        let enabled = ServiceSettings::from_env(&env, "product", 4001, RunMode::Serve).unwrap();
        assert!(enabled.auth.accepts_direct_tokens());
        let env = Env::from_pairs([("ACCEPT_DIRECT_TOKENS", "false")]);
        let disabled = ServiceSettings::from_env(&env, "product", 4001, RunMode::Dev).unwrap();
        assert!(!disabled.auth.accepts_direct_tokens());
    }

    #[test]
    fn direct_tokens_in_serve_need_a_secret_or_jwks() {
        let env = serve_env([("ACCEPT_DIRECT_TOKENS", "true")]);
        let err = ServiceSettings::from_env(&env, "product", 4001, RunMode::Serve)
            .expect_err("the public dev secret is for `dev` only")
            .to_string();
        assert!(
            err.contains("JWT_SECRET") && err.contains("JWT_JWKS_URL"),
            "{err}"
        );
        let short = env.with_default("JWT_SECRET", "short");
        let err = ServiceSettings::from_env(&short, "product", 4001, RunMode::Serve)
            .expect_err("a short secret")
            .to_string();
        assert!(err.contains("JWT_SECRET"), "{err}");
    }

    #[test]
    fn metrics_listen_apart_on_loopback_at_the_api_port_plus_100() {
        let serve =
            ServiceSettings::from_env(&Env::default(), "basket", 4002, RunMode::Serve).unwrap();
        assert_eq!(serve.metrics.addr, Some("127.0.0.1:4102".parse().unwrap()));
        let env = Env::from_pairs([("METRICS_PORT", "9100"), ("METRICS_HOST", "0.0.0.0")]);
        let shared = ServiceSettings::from_env(&env, "basket", 4002, RunMode::Serve).unwrap();
        assert_eq!(shared.metrics.addr, Some("0.0.0.0:9100".parse().unwrap()));
        let dev = ServiceSettings::from_env(&env, "basket", 4002, RunMode::Dev).unwrap();
        assert_eq!(
            dev.metrics.addr,
            Some("0.0.0.0:4102".parse().unwrap()),
            "dev ignores the shared METRICS_PORT"
        );
        let own = env.with_default("BASKET_METRICS_PORT", "9102");
        let own = ServiceSettings::from_env(&own, "basket", 4002, RunMode::Dev).unwrap();
        assert_eq!(own.metrics.addr.map(|a| a.port()), Some(9102));
        let off = Env::from_pairs([("METRICS_ENABLED", "false")]);
        let off = ServiceSettings::from_env(&off, "basket", 4002, RunMode::Serve).unwrap();
        assert_eq!(off.metrics.addr, None);
    }

    #[test]
    fn bad_values_name_the_variable() {
        for (var, value) in [
            ("PRODUCT_PORT", "70000"),
            ("DATABASE_URL", "oracle://x"),
            ("GRAPHQL_MAX_DEPTH", "1"),
            ("SHUTDOWN_TIMEOUT", "soon"),
            ("SHOP_CURRENCY", "euro"),
            ("ACCEPT_DIRECT_TOKENS", "maybe"),
            ("PRODUCT_METRICS_PORT", "-1"),
            ("METRICS_HOST", "localhost:9"),
            ("METRICS_ENABLED", "sometimes"),
        ] {
            let env = serve_env([(var, value)]);
            let err = ServiceSettings::from_env(&env, "product", 4001, RunMode::Serve)
                .expect_err(var)
                .to_string();
            assert!(err.contains(var), "{err}");
        }
    }
}

//! The settings every service shares, read from the environment.
//!
//! Each service calls [`ServiceSettings::from_env`] with its own name; the
//! name gives it a private prefix (`PRODUCT_PORT`, `PRODUCT_DATABASE_URL`)
//! that wins over the shared variable (`PORT`, `DATABASE_URL`), so one
//! environment can configure a single service or the whole shop.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use crate::config::{ConfigError, Env, invalid};
use crate::telemetry::{LogFormat, TelemetrySettings};

/// The well-known HS256 secret of `shopgraph dev`: dev tokens are meant to be
/// minted by anyone running the shop locally. Production sets `JWT_SECRET`.
pub const DEV_JWT_SECRET: &str = "shopgraph-dev-secret-do-not-use-in-production";

/// Where a service listens and how it treats in-flight work.
#[derive(Debug, Clone)]
pub struct HttpSettings {
    /// Address to bind; port 0 picks a free port (tests).
    pub addr: SocketAddr,
    /// Largest request body accepted, in bytes (`HTTP_MAX_BODY_BYTES`).
    pub max_body_bytes: usize,
    /// Longest a single request may run before it is answered with 408 (`REQUEST_TIMEOUT`).
    pub request_timeout: Duration,
    /// How long shutdown waits for in-flight requests (`SHUTDOWN_TIMEOUT`).
    pub shutdown_timeout: Duration,
}

impl HttpSettings {
    /// Reads the listener and request limits of a service whose own port
    /// variable is `port_var` (`PRODUCT_PORT`, `ROUTER_PORT`); in `serve`
    /// the bare `PORT` also works (in `dev` every service shares one
    /// environment, so it would be ambiguous). `dev` binds loopback.
    pub fn from_env(
        env: &Env,
        port_var: &str,
        default_port: u16,
        mode: RunMode,
    ) -> Result<Self, ConfigError> {
        let port_keys: &[&str] = match mode {
            RunMode::Dev => &[port_var],
            RunMode::Serve => &[port_var, "PORT"],
        };
        let port = match env.first_raw(port_keys) {
            None => default_port,
            Some((var, value)) => value
                .parse::<u16>()
                .map_err(|_| invalid(var, value, "a TCP port from 0 to 65535"))?,
        };
        let default_host = match mode {
            RunMode::Dev => IpAddr::V4(Ipv4Addr::LOCALHOST),
            RunMode::Serve => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        };
        let host = env.ip_or("HOST", default_host)?;
        Ok(Self {
            addr: SocketAddr::new(host, port),
            max_body_bytes: env.int_in_or(
                "HTTP_MAX_BODY_BYTES",
                1024..=64 * 1024 * 1024,
                2 * 1024 * 1024,
            )?,
            request_timeout: env.duration_or("REQUEST_TIMEOUT", Duration::from_secs(30))?,
            shutdown_timeout: env.duration_or("SHUTDOWN_TIMEOUT", Duration::from_secs(30))?,
        })
    }
}

/// `JWT_SECRET`, if set; a secret shorter than 32 bytes is refused (its
/// value is never echoed in the error).
pub fn jwt_secret(env: &Env) -> Result<Option<String>, ConfigError> {
    match env.raw("JWT_SECRET") {
        Some(secret) if secret.len() < 32 => Err(invalid(
            "JWT_SECRET",
            "<redacted>",
            "a secret of at least 32 bytes",
        )),
        secret => Ok(secret.map(str::to_owned)),
    }
}

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

/// How callers' tokens are verified.
#[derive(Clone)]
pub struct AuthSettings {
    /// HS256 secret (`JWT_SECRET`); the dev secret when unset.
    pub jwt_secret: String,
    /// True when `JWT_SECRET` was not set and the public dev secret is in use.
    pub using_dev_secret: bool,
    /// Expected `iss` claim (`JWT_ISSUER`).
    pub issuer: String,
    /// Expected `aud` claim (`JWT_AUDIENCE`).
    pub audience: String,
    /// Whether a bearer token sent straight to this subgraph is verified
    /// (`ACCEPT_DIRECT_TOKENS`). In production clients call the router, which
    /// verifies the token and forwards the caller's identity, so a direct
    /// token is refused; `shopgraph dev` accepts one so that a subgraph can
    /// be run and tried on its own. Default: true in `dev`, false in `serve`.
    pub accept_direct_tokens: bool,
}

impl std::fmt::Debug for AuthSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthSettings")
            .field("jwt_secret", &"<redacted>")
            .field("using_dev_secret", &self.using_dev_secret)
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .field("accept_direct_tokens", &self.accept_direct_tokens)
            .finish()
    }
}

/// Guards against expensive GraphQL documents at the subgraph itself.
#[derive(Debug, Clone)]
pub struct GraphqlSettings {
    /// Deepest selection accepted (`GRAPHQL_MAX_DEPTH`).
    pub max_depth: usize,
    /// Highest async-graphql complexity accepted (`GRAPHQL_MAX_COMPLEXITY`).
    pub max_complexity: usize,
    /// Whether schema introspection is served (`GRAPHQL_INTROSPECTION`).
    pub introspection: bool,
}

/// Everything a subgraph process needs besides its domain settings.
#[derive(Debug, Clone)]
pub struct ServiceSettings {
    /// The service's name (`product`), used in logs, metrics and variable prefixes.
    pub name: &'static str,
    /// HTTP listener settings.
    pub http: HttpSettings,
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

/// How the process runs, which decides a few defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunMode {
    /// `shopgraph dev`: everything local, loopback only, human logs.
    Dev,
    /// `shopgraph serve`: one service as production runs it.
    Serve,
}

impl ServiceSettings {
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

        let (jwt_secret, using_dev_secret) = match jwt_secret(env)? {
            Some(secret) => (secret, false),
            None => (DEV_JWT_SECRET.to_owned(), true),
        };
        let auth = AuthSettings {
            jwt_secret,
            using_dev_secret,
            issuer: env
                .string("JWT_ISSUER")
                .unwrap_or_else(|| "shopgraph".into()),
            audience: env
                .string("JWT_AUDIENCE")
                .unwrap_or_else(|| "shopgraph".into()),
            accept_direct_tokens: env.bool_or("ACCEPT_DIRECT_TOKENS", mode == RunMode::Dev)?,
        };

        let graphql = GraphqlSettings {
            max_depth: env.int_in_or("GRAPHQL_MAX_DEPTH", 2..=256, 16)?,
            max_complexity: env.int_in_or("GRAPHQL_MAX_COMPLEXITY", 10..=1_000_000, 20_000)?,
            introspection: env.bool_or("GRAPHQL_INTROSPECTION", true)?,
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

impl TelemetrySettings {
    /// Reads `LOG_LEVEL`, `LOG_FORMAT` and `OTEL_EXPORTER_OTLP_ENDPOINT`.
    pub fn from_env(env: &Env, mode: RunMode) -> Result<Self, ConfigError> {
        let level = env.string("LOG_LEVEL").unwrap_or_else(|| "info".into());
        tracing_subscriber::EnvFilter::try_new(&level).map_err(|_| {
            invalid(
                "LOG_LEVEL",
                &level,
                "a level (error, warn, info, debug, trace) or filter directives such as info,sea_orm=warn",
            )
        })?;
        let format = match env.raw("LOG_FORMAT") {
            None if mode == RunMode::Dev => LogFormat::Pretty,
            None => LogFormat::Json,
            Some(value) => match value.to_ascii_lowercase().as_str() {
                "json" => LogFormat::Json,
                "pretty" | "text" | "human" => LogFormat::Pretty,
                _ => return Err(invalid("LOG_FORMAT", value, "json or pretty")),
            },
        };
        let otlp_endpoint = env.http_url(
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            "an http:// or https:// URL of an OTLP/HTTP collector",
        )?;
        Ok(Self {
            level,
            format,
            otlp_endpoint,
            service_name: env
                .string("OTEL_SERVICE_NAME")
                .unwrap_or_else(|| "shopgraph".into()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_variables_win_over_shared_ones() {
        let env = Env::from_pairs([
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
        assert!(s.auth.using_dev_secret);
        assert!(s.auth.accept_direct_tokens);
    }

    #[test]
    fn direct_tokens_are_refused_in_serve_unless_enabled() {
        let serve =
            ServiceSettings::from_env(&Env::default(), "product", 4001, RunMode::Serve).unwrap();
        assert!(!serve.auth.accept_direct_tokens);
        let env = Env::from_pairs([("ACCEPT_DIRECT_TOKENS", "true")]);
        let enabled = ServiceSettings::from_env(&env, "product", 4001, RunMode::Serve).unwrap();
        assert!(enabled.auth.accept_direct_tokens);
        let env = Env::from_pairs([("ACCEPT_DIRECT_TOKENS", "false")]);
        let disabled = ServiceSettings::from_env(&env, "product", 4001, RunMode::Dev).unwrap();
        assert!(!disabled.auth.accept_direct_tokens);
    }

    #[test]
    fn bad_values_name_the_variable() {
        for (var, value) in [
            ("PRODUCT_PORT", "70000"),
            ("DATABASE_URL", "oracle://x"),
            ("JWT_SECRET", "short"),
            ("GRAPHQL_MAX_DEPTH", "1"),
            ("SHUTDOWN_TIMEOUT", "soon"),
            ("SHOP_CURRENCY", "euro"),
            ("ACCEPT_DIRECT_TOKENS", "maybe"),
        ] {
            let env = Env::from_pairs([(var, value)]);
            let err = ServiceSettings::from_env(&env, "product", 4001, RunMode::Serve)
                .expect_err(var)
                .to_string();
            assert!(err.contains(var), "{err}");
        }
    }

    #[test]
    fn telemetry_rejects_unknown_format_and_level() {
        let err =
            TelemetrySettings::from_env(&Env::from_pairs([("LOG_FORMAT", "xml")]), RunMode::Serve)
                .unwrap_err();
        assert!(err.to_string().contains("LOG_FORMAT"));
        let err = TelemetrySettings::from_env(
            &Env::from_pairs([("LOG_LEVEL", "loud=[")]),
            RunMode::Serve,
        )
        .unwrap_err();
        assert!(err.to_string().contains("LOG_LEVEL"));
        let ok = TelemetrySettings::from_env(&Env::default(), RunMode::Serve).unwrap();
        assert_eq!(ok.format, LogFormat::Json);
    }
}

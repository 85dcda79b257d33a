//! The settings every process shares, router and subgraphs alike, read from
//! the environment: where to listen, how to log, the JWT secret's rules and
//! the run mode that picks defaults. A subgraph's own settings (store, event
//! bus, GraphQL limits) live in the subgraph kit.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
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
    /// Longest a connection may take to send a request's headers before it
    /// is closed (`HTTP_HEADER_READ_TIMEOUT`): `REQUEST_TIMEOUT` only starts
    /// once the headers are in, so without it a client sending a byte now
    /// and then would hold a connection forever.
    pub header_read_timeout: Duration,
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
        let port = env.port_or(port_keys, default_port)?;
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
            header_read_timeout: env
                .duration_or("HTTP_HEADER_READ_TIMEOUT", Duration::from_secs(10))?,
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

/// How the process runs, which decides a few defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunMode {
    /// `shopgraph dev`: everything local, loopback only, human logs.
    Dev,
    /// `shopgraph serve`: one service as production runs it.
    Serve,
}

impl TelemetrySettings {
    /// Reads `LOG_LEVEL`, `LOG_FORMAT` and `OTEL_EXPORTER_OTLP_ENDPOINT`.
    pub fn from_env(env: &Env, mode: RunMode) -> Result<Self, ConfigError> {
        let level = env.string("LOG_LEVEL").unwrap_or_else(|| "info".into());
        if !is_log_filter(&level) {
            return Err(invalid(
                "LOG_LEVEL",
                &level,
                "a level (off, error, warn, info, debug, trace) or filter directives such as info,sea_orm=warn",
            ));
        }
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

/// Whether `value` is a level or `tracing` filter directives. Stricter than
/// `EnvFilter` alone, which takes any bare word as a target name: a
/// directive without `=` must be a level, so a typo such as `verbose` or
/// `inf` stops start-up instead of silently logging nothing.
fn is_log_filter(value: &str) -> bool {
    let bare_words_are_levels = value
        .split(',')
        .map(str::trim)
        .filter(|directive| !directive.is_empty())
        .filter(|directive| !directive.contains('=') && !directive.contains('['))
        .all(|level| {
            level
                .parse::<tracing_subscriber::filter::LevelFilter>()
                .is_ok()
        });
    bare_words_are_levels && tracing_subscriber::EnvFilter::try_new(value).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

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
        for typo in ["verbose", "inf", "info,sea_orm", "loud=["] {
            let err = TelemetrySettings::from_env(
                &Env::from_pairs([("LOG_LEVEL", typo)]),
                RunMode::Serve,
            )
            .expect_err(typo);
            assert!(err.to_string().contains("LOG_LEVEL"), "{err}");
        }
        for filter in [
            "debug",
            "WARN",
            "info,sea_orm=warn",
            "shopgraph_router=trace,off",
        ] {
            TelemetrySettings::from_env(&Env::from_pairs([("LOG_LEVEL", filter)]), RunMode::Serve)
                .expect(filter);
        }
        let ok = TelemetrySettings::from_env(&Env::default(), RunMode::Serve).unwrap();
        assert_eq!(ok.format, LogFormat::Json);
    }
}

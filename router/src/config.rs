//! The router's settings, read from the environment.
//!
//! The variables, their defaults and meanings are listed once, in the
//! README's Configuration section (kept true by
//! `tests/api/config_reference.rs`); each field below names its variable.
//!
//! [`RouterSettings`] gathers what each stage reads for itself: the edge's
//! protections ([`crate::edge::security`], [`crate::edge::ratelimit`]),
//! persisted queries ([`crate::pipeline::persisted`]), operation limits
//! ([`crate::planner::limits`]), traffic management
//! ([`crate::traffic::settings`]) and the HTTP limits every process shares.

use std::collections::BTreeMap;
use std::num::NonZeroUsize;
use std::path::PathBuf;
use std::time::Duration;

use shopgraph_core::config::{ConfigError, Env, invalid};
use shopgraph_core::settings::{HttpSettings, RunMode};

// The supergraph's source types live with the supergraph, which builds
// from `SupergraphSettings` rather than from this module (no cycle).
pub use crate::supergraph::{EMBEDDED_SUPERGRAPH, SupergraphSource};

use crate::admin::AdminSettings;
use crate::edge::ratelimit::RateLimitSettings;
use crate::edge::security::SecuritySettings;
use crate::pipeline::persisted::PersistedSettings;
use crate::planner::PlannerSettings;
use crate::planner::limits::OperationLimits;
use crate::supergraph::SupergraphSettings;
use crate::traffic::TrafficSettings;
use shopgraph_core::hop::{HopSettings, HopSigner};
use shopgraph_core::identity::JwtSettings;

/// The router's dev port.
pub const DEFAULT_PORT: u16 = 4000;

/// Everything the router process needs.
#[derive(Debug, Clone)]
pub struct RouterSettings {
    /// Listener, body limit, timeouts.
    pub http: HttpSettings,
    /// The supergraph to serve.
    pub supergraph: SupergraphSource,
    /// How often the supergraph file or URL is checked for changes.
    pub poll_interval: Duration,
    /// Replicas, balancing, health checks, breakers and retries.
    pub traffic: TrafficSettings,
    /// The admin listener (`ADMIN_*`).
    pub admin: AdminSettings,
    /// CORS, security headers, CSRF prevention.
    pub security: SecuritySettings,
    /// Automatic persisted queries and the safelist.
    pub persisted: PersistedSettings,
    /// Per-client rate limiting (`RATE_LIMIT_*`).
    pub rate_limit: RateLimitSettings,
    /// `REDIS_URL`: where router replicas share persisted queries (and
    /// the rate-limit budget); `None` keeps both in memory.
    pub redis_url: Option<String>,
    /// Limit of one subgraph request.
    pub subgraph_timeout: Duration,
    /// Subgraph name → its own limit (`<SUBGRAPH>_SERVICE_TIMEOUT`).
    pub subgraph_timeouts: BTreeMap<String, Duration>,
    /// Whether identical client queries (same document, variables and
    /// caller) in flight at once share one execution.
    pub query_dedupe: bool,
    /// Whether identical in-flight query fetches share one subgraph request.
    pub subgraph_dedupe: bool,
    /// Distinct `apollographql-client-name` values that get a metric label
    /// of their own (`CLIENT_NAMES_MAX`); later ones count as `other`.
    pub client_names_max: usize,
    /// Whether subgraphs are asked for gzip answers: off by default, as
    /// subgraphs usually sit next to the router, where compressing costs
    /// more CPU than the bytes save.
    pub subgraph_compression: bool,
    /// Whether `__schema` / `__type` are answered: on in `dev`, off in
    /// `serve` unless `GRAPHQL_INTROSPECTION=true` (a production API need
    /// not hand its whole schema to anyone who asks).
    pub introspection: bool,
    /// Whether browsers get GraphiQL at `/graphql`: on in `dev`, off in
    /// `serve` unless `GRAPHIQL=true`.
    pub graphiql: bool,
    /// Whether the storefront (`web-demo/`, embedded) is served at `/`:
    /// on in `dev`, off in `serve` unless `STOREFRONT=true`. When on, its
    /// operations are registered persisted queries (it sends only ids).
    pub storefront: bool,
    /// Whether `POST /dev/token` signs demo users in: `dev` only, never
    /// `serve` (not a variable: no setting turns it on there).
    pub dev_tokens: bool,
    /// Plan cache size, plan time limit, token limit.
    pub planner: PlannerSettings,
    /// How bearer tokens are verified; in `serve`, reading them fails
    /// without `JWT_SECRET` or a JWKS (see [`JwtSettings::from_env`]).
    pub auth: JwtSettings,
    /// Signs every request to a subgraph (the signed hop, `HOP_*`); in
    /// `serve` the router does not start without `HOP_SIGNING_KEY_FILE`.
    pub hop_signer: HopSigner,
    /// Websocket, SSE and multipart limits and timers (`SUBSCRIPTION_*`,
    /// `MULTIPART_HEARTBEAT`).
    pub subscriptions: crate::subscriptions::SubscriptionSettings,
}

impl RouterSettings {
    /// Reads the router's settings; `mode` decides defaults (loopback and
    /// the embedded supergraph fallback in `dev`).
    pub fn from_env(env: &Env, mode: RunMode) -> Result<Self, ConfigError> {
        let http = HttpSettings::from_env(env, "ROUTER_PORT", DEFAULT_PORT, mode)?;

        let supergraph = supergraph_source(env, mode)?;
        // A CDN is asked less often than a local file is looked at.
        let default_poll = match supergraph {
            SupergraphSource::Url(_) => Duration::from_secs(10),
            SupergraphSource::File(_) | SupergraphSource::Embedded => Duration::from_secs(2),
        };

        let mut subgraph_timeouts = BTreeMap::new();
        for (var, _) in env.with_suffix("_SERVICE_TIMEOUT") {
            let name = var[..var.len() - "_SERVICE_TIMEOUT".len()].to_ascii_lowercase();
            subgraph_timeouts.insert(name, env.duration_or(var, Duration::ZERO)?);
        }

        let planner = PlannerSettings {
            cache_size: env
                .int_in_or("PLAN_CACHE_SIZE", 1..=1_000_000, 1024)?
                .try_into()
                .map_or(NonZeroUsize::MIN, |n: NonZeroUsize| n),
            max_tokens: env.int_in_or("GRAPHQL_MAX_TOKENS", 100..=1_000_000, 15_000)?,
            limits: OperationLimits::from_env(env)?,
            timeout: plan_timeout(env)?,
            ..PlannerSettings::default()
        };

        let storefront = env.bool_or("STOREFRONT", mode == RunMode::Dev)?;
        let mut persisted = PersistedSettings::from_env(env)?;
        if storefront {
            persisted
                .register_documents(crate::storefront::PERSISTED_DOCUMENTS)
                .map_err(|err| {
                    invalid(
                        "STOREFRONT",
                        "true",
                        &format!(
                            "false: the embedded storefront's operations are unusable ({err})"
                        ),
                    )
                })?;
        }

        Ok(Self {
            http,
            supergraph,
            poll_interval: env.duration_or("SUPERGRAPH_POLL_INTERVAL", default_poll)?,
            traffic: TrafficSettings::from_env(env)?,
            admin: AdminSettings::from_env(env)?,
            security: SecuritySettings::from_env(env, mode)?,
            persisted,
            rate_limit: RateLimitSettings::from_env(env)?,
            redis_url: redis_url(env)?,
            subgraph_timeout: env.duration_or("SUBGRAPH_TIMEOUT", Duration::from_secs(30))?,
            subgraph_timeouts,
            query_dedupe: env.bool_or("QUERY_DEDUPE", true)?,
            subgraph_dedupe: env.bool_or("SUBGRAPH_DEDUPE", true)?,
            client_names_max: env.int_in_or("CLIENT_NAMES_MAX", 1..=10_000, 50)?,
            subgraph_compression: env.bool_or("SUBGRAPH_COMPRESSION", false)?,
            introspection: env.bool_or("GRAPHQL_INTROSPECTION", mode == RunMode::Dev)?,
            graphiql: env.bool_or("GRAPHIQL", mode == RunMode::Dev)?,
            storefront,
            dev_tokens: mode == RunMode::Dev,
            planner,
            auth: JwtSettings::from_env(env, mode)?,
            hop_signer: HopSettings::from_env(env, mode)?.require_signer()?,
            subscriptions: crate::subscriptions::SubscriptionSettings::from_env(
                env,
                Duration::from_secs(10),
            )?,
        })
    }
}

/// `SUPERGRAPH_URL` (with `SUPERGRAPH_URL_HEADER` and
/// `SUPERGRAPH_URL_STARTUP_TIMEOUT`) or `SUPERGRAPH_PATH`, never both: a
/// router must not serve a file while its operators think it follows the
/// registry.
fn supergraph_source(env: &Env, mode: RunMode) -> Result<SupergraphSource, ConfigError> {
    let path = env.raw("SUPERGRAPH_PATH");
    let Some(url) = env.raw("SUPERGRAPH_URL") else {
        return Ok(match path {
            Some(path) => SupergraphSource::File(PathBuf::from(path)),
            None => {
                let default = PathBuf::from("schema/supergraph.graphql");
                if mode == RunMode::Dev && !default.exists() {
                    SupergraphSource::Embedded
                } else {
                    SupergraphSource::File(default)
                }
            }
        });
    };
    if path.is_some() {
        return Err(invalid(
            "SUPERGRAPH_URL",
            url,
            "SUPERGRAPH_PATH unset: the supergraph comes from a file or a URL, not both",
        ));
    }
    let parsed = reqwest::Url::parse(url)
        .ok()
        .filter(|u| matches!(u.scheme(), "http" | "https") && u.has_host())
        .ok_or_else(|| {
            invalid(
                "SUPERGRAPH_URL",
                url,
                "an http:// or https:// URL, e.g. https://cdn.example.com/artifacts/v1/ID/supergraph",
            )
        })?;
    let header = match env.raw("SUPERGRAPH_URL_HEADER") {
        None => None,
        Some(line) => Some(
            crate::supergraph::remote::parse_header(line).ok_or_else(|| {
                // The value is a secret: not echoed.
                invalid(
                    "SUPERGRAPH_URL_HEADER",
                    "(hidden)",
                    "one header as `Name: value`, e.g. `X-Hive-CDN-Key: …`",
                )
            })?,
        ),
    };
    Ok(SupergraphSource::Url(crate::supergraph::SupergraphUrl {
        url: parsed,
        header,
        startup_timeout: env
            .duration_or("SUPERGRAPH_URL_STARTUP_TIMEOUT", Duration::from_secs(30))?,
    }))
}

/// `PLAN_TIMEOUT`: a duration above zero (zero would refuse every new
/// document).
fn plan_timeout(env: &Env) -> Result<Duration, ConfigError> {
    let timeout = env.duration_or("PLAN_TIMEOUT", crate::planner::DEFAULT_PLAN_TIMEOUT)?;
    if timeout.is_zero() {
        return Err(invalid(
            "PLAN_TIMEOUT",
            "0",
            "a duration above zero such as 500ms or 3s",
        ));
    }
    Ok(timeout)
}

fn redis_url(env: &Env) -> Result<Option<String>, ConfigError> {
    let Some(url) = env.raw("REDIS_URL").filter(|u| !u.trim().is_empty()) else {
        return Ok(None);
    };
    if redis::Client::open(url).is_err() {
        return Err(invalid(
            "REDIS_URL",
            url,
            "a redis:// or rediss:// URL, e.g. redis://127.0.0.1:6379",
        ));
    }
    Ok(Some(url.to_owned()))
}

impl RouterSettings {
    /// What building and reloading the supergraph needs.
    pub fn supergraph_settings(&self) -> SupergraphSettings {
        SupergraphSettings {
            source: self.supergraph.clone(),
            poll_interval: self.poll_interval,
            planner: self.planner.clone(),
            subgraph_timeout: self.subgraph_timeout,
            subgraph_timeouts: self.subgraph_timeouts.clone(),
            subgraph_dedupe: self.subgraph_dedupe,
            subgraph_compression: self.subgraph_compression,
            hop_signer: self.hop_signer.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "router-config-test-secret-0123456789";

    /// `pairs`, plus what `serve` cannot start without: a JWT secret and
    /// the hop's signing key.
    fn serve_env<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Env {
        let hop = shopgraph_core::hop::HopKeyPair::of_this_process().env_vars();
        Env::from_pairs(pairs.into_iter().chain([("JWT_SECRET", SECRET)]).chain(hop))
    }

    #[test]
    fn a_supergraph_url_is_one_source_with_its_own_poll_default() {
        let settings = RouterSettings::from_env(
            &serve_env([
                (
                    "SUPERGRAPH_URL",
                    "https://cdn.example.com/artifacts/v1/x/supergraph",
                ),
                ("SUPERGRAPH_URL_HEADER", "X-Hive-CDN-Key: k:1"),
            ]),
            RunMode::Serve,
        )
        .unwrap();
        let SupergraphSource::Url(source) = &settings.supergraph else {
            panic!("a URL source: {:?}", settings.supergraph);
        };
        assert_eq!(source.url.host_str(), Some("cdn.example.com"));
        assert_eq!(source.startup_timeout, Duration::from_secs(30));
        assert_eq!(settings.poll_interval, Duration::from_secs(10));
        assert!(
            !format!("{settings:?}").contains("k:1"),
            "the key is hidden"
        );

        let both = RouterSettings::from_env(
            &serve_env([
                ("SUPERGRAPH_URL", "https://cdn.example.com/s"),
                ("SUPERGRAPH_PATH", "schema/supergraph.graphql"),
            ]),
            RunMode::Serve,
        )
        .unwrap_err()
        .to_string();
        assert!(both.contains("SUPERGRAPH_PATH unset"), "{both}");
        for url in [
            "ftp://cdn.example.com/s",
            "cdn.example.com/s",
            "file:///etc/passwd",
        ] {
            let refused =
                RouterSettings::from_env(&serve_env([("SUPERGRAPH_URL", url)]), RunMode::Serve)
                    .unwrap_err()
                    .to_string();
            assert!(refused.contains("SUPERGRAPH_URL"), "{url}: {refused}");
        }
        let header = RouterSettings::from_env(
            &serve_env([
                ("SUPERGRAPH_URL", "https://cdn.example.com/s"),
                ("SUPERGRAPH_URL_HEADER", "no-colon-secret"),
            ]),
            RunMode::Serve,
        )
        .unwrap_err()
        .to_string();
        assert!(header.contains("SUPERGRAPH_URL_HEADER"), "{header}");
        assert!(!header.contains("no-colon-secret"), "not echoed: {header}");
    }

    #[test]
    fn service_urls_override_the_supergraph_by_subgraph_name() {
        let env = serve_env([
            ("PRODUCT_SERVICE_URL", "http://p:1/graphql"),
            (
                "BASKET_SERVICE_URLS",
                "http://b1:2/graphql;weight=3, http://b2:2/graphql",
            ),
        ]);
        let settings = RouterSettings::from_env(&env, RunMode::Serve).unwrap();
        assert_eq!(
            settings.traffic.replicas["product"][0].url,
            "http://p:1/graphql"
        );
        assert_eq!(settings.traffic.replicas["basket"].len(), 2);
        assert_eq!(settings.traffic.replicas["basket"][0].weight, 3);
        let timed = RouterSettings::from_env(
            &serve_env([("PAYMENT_SERVICE_TIMEOUT", "2s")]),
            RunMode::Serve,
        )
        .unwrap();
        assert_eq!(timed.subgraph_timeouts["payment"], Duration::from_secs(2));
        assert_eq!(settings.http.addr.port(), DEFAULT_PORT);
    }

    #[test]
    fn bad_values_name_the_variable() {
        for (var, value) in [
            ("ROUTER_PORT", "99999"),
            ("PRODUCT_SERVICE_URL", "ftp://x"),
            ("SUBGRAPH_TIMEOUT", "soon"),
            ("GRAPHQL_INTROSPECTION", "maybe"),
            ("PRODUCT_SERVICE_TIMEOUT", "whenever"),
        ] {
            let env = serve_env([(var, value)]);
            let err = RouterSettings::from_env(&env, RunMode::Serve)
                .expect_err(var)
                .to_string();
            assert!(err.contains(var), "{err}");
        }
    }

    #[test]
    fn serve_fails_closed_without_a_secret_and_dev_falls_back() {
        let err = RouterSettings::from_env(&Env::default(), RunMode::Serve)
            .expect_err("no public dev secret in serve")
            .to_string();
        assert!(err.contains("JWT_SECRET"), "{err}");
        let dev = RouterSettings::from_env(&Env::default(), RunMode::Dev).unwrap();
        assert!(dev.auth.using_dev_secret);
        let unsigned =
            RouterSettings::from_env(&Env::from_pairs([("JWT_SECRET", SECRET)]), RunMode::Serve)
                .expect_err("no unsigned hop in serve")
                .to_string();
        assert!(unsigned.contains("HOP_SIGNING_KEY_FILE"), "{unsigned}");
    }

    #[test]
    fn serve_turns_introspection_and_graphiql_off_unless_enabled() {
        let serve = RouterSettings::from_env(&serve_env([]), RunMode::Serve).unwrap();
        assert!(!serve.introspection && !serve.graphiql);
        let dev = RouterSettings::from_env(&Env::default(), RunMode::Dev).unwrap();
        assert!(dev.introspection && dev.graphiql);
        let enabled = RouterSettings::from_env(
            &serve_env([("GRAPHQL_INTROSPECTION", "true"), ("GRAPHIQL", "true")]),
            RunMode::Serve,
        )
        .unwrap();
        assert!(enabled.introspection && enabled.graphiql);
    }

    #[test]
    fn the_storefront_is_on_in_dev_and_dev_tokens_never_exist_in_serve() {
        let serve = RouterSettings::from_env(&serve_env([]), RunMode::Serve).unwrap();
        assert!(!serve.storefront && !serve.dev_tokens);
        let dev = RouterSettings::from_env(&Env::default(), RunMode::Dev).unwrap();
        assert!(dev.storefront && dev.dev_tokens);
        let enabled =
            RouterSettings::from_env(&serve_env([("STOREFRONT", "true")]), RunMode::Serve).unwrap();
        assert!(enabled.storefront && !enabled.dev_tokens);
        let off =
            RouterSettings::from_env(&Env::from_pairs([("STOREFRONT", "false")]), RunMode::Dev)
                .unwrap();
        assert!(!off.storefront && off.dev_tokens);
    }

    #[test]
    fn a_served_storefront_has_its_operations_registered() {
        let registered =
            |settings: &RouterSettings| settings.persisted.manifest.as_ref().map_or(0, |m| m.len());
        let dev = RouterSettings::from_env(&Env::default(), RunMode::Dev).unwrap();
        let documents: serde_json::Map<String, serde_json::Value> =
            serde_json::from_str(crate::storefront::PERSISTED_DOCUMENTS).unwrap();
        assert!(!documents.is_empty());
        assert_eq!(registered(&dev), documents.len());
        let off =
            RouterSettings::from_env(&Env::from_pairs([("STOREFRONT", "false")]), RunMode::Dev)
                .unwrap();
        assert_eq!(registered(&off), 0);
        let serve = RouterSettings::from_env(&serve_env([]), RunMode::Serve).unwrap();
        assert_eq!(registered(&serve), 0);
    }
}

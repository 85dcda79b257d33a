//! Persisted queries: automatic persisted queries (APQ) and the safelist.
//!
//! Runs before planning, on every transport (POST body, GET parameters,
//! websocket `subscribe` payloads), and turns what the client sent into the
//! query text to run:
//!
//! - **APQ** (Apollo protocol): a client sends
//!   `extensions.persistedQuery = {"version":1,"sha256Hash":"<hex>"}` without
//!   the text. A known hash runs its text; an unknown one answers
//!   `PERSISTED_QUERY_NOT_FOUND` (HTTP 200, message `PersistedQueryNotFound`)
//!   and the client resends hash and text, which registers the text. Texts
//!   live in an in-memory LRU and, when Redis is configured, in Redis so
//!   that every router replica knows them (`shared.rs`; Redis trouble only
//!   costs misses, never failed requests).
//! - **Manifest** (`PERSISTED_QUERIES_MANIFEST`): operations registered at
//!   build time ([`manifest`]); a hash-only request naming a manifest id (or
//!   the SHA-256 of a registered body) runs that body, in every mode.
//! - **Safelist** (`PERSISTED_QUERIES_SAFELIST=true`): only manifest
//!   operations run; by id, or as free-form text equal to a registered body
//!   unless `PERSISTED_QUERIES_ALLOW_TEXT=false`.
//!
//! The pipeline calls [`PersistedQueries::apply`] (or [`PersistedQueries::resolve`])
//! and maps a [`PersistedError`] to a GraphQL error with its
//! [`PersistedError::code`] and [`PersistedError::status`].
//!
//! Metric: `router_persisted_queries_total{outcome}`, where `outcome` is
//! `hit` (resolved from the manifest or the in-memory LRU, or safelisted
//! text accepted), `miss` (not in memory, filled from Redis), `registered`
//! (new text stored), `not_found` (hash unknown: the client resends the
//! text) or `rejected` (any refusal). Plain requests outside safelist mode
//! are not counted.

mod hash;
pub mod manifest;
mod shared;

#[cfg(test)]
mod tests;

use std::num::NonZeroUsize;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::StatusCode;
use lru::LruCache;
use redis::aio::ConnectionManager;
use serde_json::Value;
use shopgraph_core::config::{ConfigError, Env, invalid};
use shopgraph_core::error::{Coded, ErrorCode};

pub use hash::QueryHash;
pub use manifest::{Manifest, ManifestError};
use shared::SharedStore;
pub use shared::connect_redis;

/// Default in-memory LRU capacity (`APQ_CACHE_SIZE`).
pub const DEFAULT_CACHE_SIZE: usize = 2000;
/// Default lifetime of a Redis entry (`APQ_REDIS_TTL`).
pub const DEFAULT_REDIS_TTL: Duration = Duration::from_secs(24 * 60 * 60);
/// Default Redis key prefix (`APQ_KEY_PREFIX`).
pub const DEFAULT_KEY_PREFIX: &str = "shopgraph:apq";
/// Default budget of one Redis call; slower calls count as misses.
pub const DEFAULT_REDIS_TIMEOUT: Duration = Duration::from_millis(100);

/// How the router treats persisted queries; read from the environment.
#[derive(Debug, Clone)]
pub struct PersistedSettings {
    /// `APQ_ENABLED`: accept and register automatic persisted queries.
    /// When off, APQ requests get `PERSISTED_QUERY_NOT_SUPPORTED` and Apollo
    /// clients fall back to sending text; manifest ids still resolve.
    pub apq_enabled: bool,
    /// `APQ_CACHE_SIZE`: entries in the in-memory LRU, per router process.
    pub cache_size: NonZeroUsize,
    /// `APQ_REDIS_TTL`: how long Redis keeps a registered text (rounded up
    /// to whole seconds); clients re-register after it expires.
    pub redis_ttl: Duration,
    /// `APQ_KEY_PREFIX`: namespace of the Redis keys, so several routers
    /// (or environments) can share one Redis.
    pub key_prefix: String,
    /// The budget of one Redis call. Not an environment variable: it bounds
    /// the latency a Redis problem may add to a request, and a persisted
    /// query miss is cheap (the client resends the text).
    pub redis_timeout: Duration,
    /// `PERSISTED_QUERIES_MANIFEST`: operations registered ahead of time.
    pub manifest: Option<Arc<Manifest>>,
    /// `PERSISTED_QUERIES_SAFELIST`: only manifest operations run.
    pub safelist: bool,
    /// `PERSISTED_QUERIES_ALLOW_TEXT`: in safelist mode, free-form text
    /// equal to a registered body is accepted; when false, only ids are.
    pub allow_text: bool,
}

impl Default for PersistedSettings {
    /// The defaults of [`PersistedSettings::from_env`] with nothing set.
    fn default() -> Self {
        Self {
            apq_enabled: true,
            cache_size: NonZeroUsize::new(DEFAULT_CACHE_SIZE).unwrap_or(NonZeroUsize::MIN),
            redis_ttl: DEFAULT_REDIS_TTL,
            key_prefix: DEFAULT_KEY_PREFIX.to_owned(),
            redis_timeout: DEFAULT_REDIS_TIMEOUT,
            manifest: None,
            safelist: false,
            allow_text: true,
        }
    }
}

impl PersistedSettings {
    /// Reads the `APQ_*` and `PERSISTED_QUERIES_*` variables, loading the
    /// manifest file; any unusable value is an error naming its variable.
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let defaults = Self::default();
        let apq_enabled = env.bool_or("APQ_ENABLED", defaults.apq_enabled)?;
        let cache_size = env.int_in_or("APQ_CACHE_SIZE", 1..=10_000_000, DEFAULT_CACHE_SIZE)?;
        let cache_size = NonZeroUsize::new(cache_size).unwrap_or(NonZeroUsize::MIN);
        let redis_ttl = env.duration_or("APQ_REDIS_TTL", DEFAULT_REDIS_TTL)?;
        if redis_ttl < Duration::from_secs(1) {
            let value = env.raw("APQ_REDIS_TTL").unwrap_or_default();
            return Err(invalid(
                "APQ_REDIS_TTL",
                value,
                "a duration of at least 1s, such as 1h or 24h",
            ));
        }
        let key_prefix = env.string("APQ_KEY_PREFIX").unwrap_or(defaults.key_prefix);
        let manifest = match env.raw("PERSISTED_QUERIES_MANIFEST") {
            None => None,
            Some(path) => Some(Arc::new(Manifest::load(Path::new(path)).map_err(
                |err| {
                    invalid(
                        "PERSISTED_QUERIES_MANIFEST",
                        path,
                        &format!("the path of an Apollo persisted query manifest ({err})"),
                    )
                },
            )?)),
        };
        let safelist = env.bool_or("PERSISTED_QUERIES_SAFELIST", false)?;
        if safelist && manifest.is_none() {
            return Err(ConfigError::Missing {
                var: "PERSISTED_QUERIES_MANIFEST".to_owned(),
                expected: "the manifest of registered operations, required when \
                           PERSISTED_QUERIES_SAFELIST=true"
                    .to_owned(),
            });
        }
        let allow_text = env.bool_or("PERSISTED_QUERIES_ALLOW_TEXT", true)?;
        if !allow_text && !safelist {
            let value = env.raw("PERSISTED_QUERIES_ALLOW_TEXT").unwrap_or_default();
            return Err(invalid(
                "PERSISTED_QUERIES_ALLOW_TEXT",
                value,
                "true unless PERSISTED_QUERIES_SAFELIST=true (ids-only mode is a safelist mode)",
            ));
        }
        Ok(Self {
            apq_enabled,
            cache_size,
            redis_ttl,
            key_prefix,
            redis_timeout: DEFAULT_REDIS_TIMEOUT,
            manifest,
            safelist,
            allow_text,
        })
    }
}

impl PersistedSettings {
    /// Registers codegen persisted documents (see [`Manifest::add_documents`])
    /// beside the manifest's operations, or as the only ones when there is
    /// no manifest: the router registers the storefront it serves this way.
    pub fn register_documents(&mut self, json: &str) -> Result<usize, ManifestError> {
        let mut manifest = match self.manifest.take() {
            Some(shared) => Arc::try_unwrap(shared).unwrap_or_else(|shared| (*shared).clone()),
            None => Manifest::default(),
        };
        let added = manifest.add_documents(json);
        self.manifest = Some(Arc::new(manifest));
        added
    }
}

/// A persisted query request the router refuses (or, for
/// [`PersistedError::NotFound`], asks the client to complete).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PersistedError {
    /// APQ: the hash is unknown; Apollo clients match this exact message and
    /// resend the request with the query text.
    #[error("PersistedQueryNotFound")]
    NotFound,
    /// The query text does not hash to the `sha256Hash` sent with it (or,
    /// for a manifest id, is not the registered body).
    #[error("the persisted query sha256Hash {hash:?} does not match the query text")]
    HashMismatch {
        /// The hash the client sent.
        hash: String,
    },
    /// APQ is turned off; Apollo clients match this exact message and stop
    /// sending hashes.
    #[error("PersistedQueryNotSupported")]
    NotSupported,
    /// `persistedQuery.version` is not 1, the only version of the protocol.
    #[error("unsupported persisted query version {0}: only version 1 is supported")]
    UnsupportedVersion(String),
    /// `extensions` or `extensions.persistedQuery` is not of the protocol's shape.
    #[error("{0}")]
    Malformed(String),
    /// Safelist mode: the id names no registered operation.
    #[error("persisted query {0:?} is not in the persisted query list")]
    NotInList(String),
    /// Safelist mode: free-form text that is not a registered operation
    /// (including an APQ registration of such text).
    #[error("the query is not in the safelist: only registered operations run on this router")]
    NotInSafelist,
    /// Safelist mode with `PERSISTED_QUERIES_ALLOW_TEXT=false`: a request
    /// without a persisted query id.
    #[error(
        "free-form queries are not accepted by this router: send a registered persisted query id"
    )]
    IdRequired,
}

impl PersistedError {
    /// The `extensions.code` clients see.
    pub const fn code(&self) -> ErrorCode {
        match self {
            Self::NotFound => ErrorCode::PersistedQueryNotFound,
            Self::HashMismatch { .. } => ErrorCode::PersistedQueryHashMismatch,
            Self::NotSupported | Self::UnsupportedVersion(_) => {
                ErrorCode::PersistedQueryNotSupported
            }
            Self::Malformed(_) => ErrorCode::BadRequest,
            Self::NotInList(_) => ErrorCode::PersistedQueryNotInList,
            Self::NotInSafelist | Self::IdRequired => ErrorCode::QueryNotInSafelist,
        }
    }

    /// The HTTP status of the response. `NotFound` is a normal step of the
    /// protocol, answered with 200 like Apollo Router does, so clients and
    /// proxies do not treat it as a failure.
    pub const fn status(&self) -> StatusCode {
        match self {
            Self::NotFound => StatusCode::OK,
            _ => StatusCode::BAD_REQUEST,
        }
    }
}

impl Coded for PersistedError {
    fn code(&self) -> ErrorCode {
        PersistedError::code(self)
    }
}

/// What `router_persisted_queries_total` counts; see the module docs.
#[derive(Debug, Clone, Copy)]
enum Outcome {
    Hit,
    Miss,
    Registered,
    NotFound,
    Rejected,
}

impl Outcome {
    const fn label(self) -> &'static str {
        match self {
            Self::Hit => "hit",
            Self::Miss => "miss",
            Self::Registered => "registered",
            Self::NotFound => "not_found",
            Self::Rejected => "rejected",
        }
    }

    fn record(self) {
        metrics::counter!("router_persisted_queries_total", "outcome" => self.label()).increment(1);
    }
}

/// Resolves persisted queries for the request pipeline. Built once at
/// start-up and shared (`Arc`) by every request.
pub struct PersistedQueries {
    settings: PersistedSettings,
    /// Registered APQ texts of this process, most recently used kept.
    memory: Mutex<LruCache<QueryHash, Arc<str>>>,
    /// Registered APQ texts shared by all replicas, when Redis is configured.
    shared: Option<SharedStore>,
}

impl std::fmt::Debug for PersistedQueries {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PersistedQueries")
            .field("settings", &self.settings)
            .field("redis", &self.shared.is_some())
            .finish()
    }
}

impl PersistedQueries {
    /// Builds the resolver. `redis` shares registered queries between
    /// replicas; [`connect_redis`] builds one that tolerates a Redis outage,
    /// at start-up included.
    pub fn new(settings: PersistedSettings, redis: Option<ConnectionManager>) -> Self {
        let shared = redis.map(|connection| {
            SharedStore::new(
                connection,
                settings.key_prefix.clone(),
                settings.redis_ttl,
                settings.redis_timeout,
            )
        });
        Self {
            memory: Mutex::new(LruCache::new(settings.cache_size)),
            settings,
            shared,
        }
    }

    /// The settings in force.
    pub fn settings(&self) -> &PersistedSettings {
        &self.settings
    }

    /// The pipeline's one-line step: replaces `query` with the persisted
    /// text when the request names one, leaves it alone otherwise, and
    /// refuses what the protocol or the safelist does not allow.
    pub async fn apply(
        &self,
        query: &mut Option<String>,
        extensions: Option<&Value>,
    ) -> Result<(), PersistedError> {
        if let Some(text) = self.resolve(query.as_deref(), extensions).await? {
            *query = Some(text.as_ref().to_owned());
        }
        Ok(())
    }

    /// The query text to run: `Some(text)` when it comes from the persisted
    /// queries (the request's own `query` must be replaced by it), `None`
    /// when the request's own `query` runs unchanged.
    pub async fn resolve(
        &self,
        query: Option<&str>,
        extensions: Option<&Value>,
    ) -> Result<Option<Arc<str>>, PersistedError> {
        let result = self.resolve_inner(query, extensions).await;
        match &result {
            Ok(_) => {}
            Err(PersistedError::NotFound) => Outcome::NotFound.record(),
            Err(_) => Outcome::Rejected.record(),
        }
        result
    }

    async fn resolve_inner(
        &self,
        query: Option<&str>,
        extensions: Option<&Value>,
    ) -> Result<Option<Arc<str>>, PersistedError> {
        // Blank text cannot be a query; APQ clients sometimes send `""`
        // with a hash, which means "no text".
        let text = query.filter(|q| !q.trim().is_empty());
        match self.persisted_query_id(extensions)? {
            None => self.free_form(text),
            Some(id) => self.by_id(id, text).await,
        }
    }

    /// Checks `extensions.persistedQuery` and returns its `sha256Hash` as
    /// sent (a hash, or a manifest id); `None` when the request has none.
    fn persisted_query_id<'a>(
        &self,
        extensions: Option<&'a Value>,
    ) -> Result<Option<&'a str>, PersistedError> {
        let extensions = match extensions {
            None | Some(Value::Null) => return Ok(None),
            Some(Value::Object(map)) => map,
            Some(_) => {
                return Err(PersistedError::Malformed(
                    "`extensions` must be a JSON object".to_owned(),
                ));
            }
        };
        let persisted = match extensions.get("persistedQuery") {
            None | Some(Value::Null) => return Ok(None),
            Some(persisted) => persisted,
        };
        // Without APQ and without a manifest, no shape of `persistedQuery`
        // can succeed: tell the client to stop sending it.
        if !self.settings.apq_enabled && self.settings.manifest.is_none() {
            return Err(PersistedError::NotSupported);
        }
        let Value::Object(persisted) = persisted else {
            return Err(PersistedError::Malformed(
                "`extensions.persistedQuery` must be an object with `version` and `sha256Hash`"
                    .to_owned(),
            ));
        };
        match persisted.get("version") {
            Some(Value::Number(n)) if n.as_u64() == Some(1) => {}
            Some(Value::Number(n)) => {
                return Err(PersistedError::UnsupportedVersion(n.to_string()));
            }
            None => {
                return Err(PersistedError::Malformed(
                    "`extensions.persistedQuery.version` is missing (expected 1)".to_owned(),
                ));
            }
            Some(_) => {
                return Err(PersistedError::Malformed(
                    "`extensions.persistedQuery.version` must be the number 1".to_owned(),
                ));
            }
        }
        match persisted.get("sha256Hash") {
            Some(Value::String(id)) if !id.trim().is_empty() => Ok(Some(id.as_str())),
            Some(Value::String(_)) | None => Err(PersistedError::Malformed(
                "`extensions.persistedQuery.sha256Hash` is missing".to_owned(),
            )),
            Some(_) => Err(PersistedError::Malformed(
                "`extensions.persistedQuery.sha256Hash` must be a string".to_owned(),
            )),
        }
    }

    /// A request without a persisted query id.
    fn free_form(&self, text: Option<&str>) -> Result<Option<Arc<str>>, PersistedError> {
        let Some(manifest) = self.safelist() else {
            return Ok(None);
        };
        // No text at all: the pipeline reports the missing query.
        let Some(text) = text else {
            return Ok(None);
        };
        if !self.settings.allow_text {
            return Err(PersistedError::IdRequired);
        }
        if manifest.contains_body(text) {
            Outcome::Hit.record();
            Ok(None)
        } else {
            Err(PersistedError::NotInSafelist)
        }
    }

    /// A request with `extensions.persistedQuery`, with or without text.
    async fn by_id(
        &self,
        id: &str,
        text: Option<&str>,
    ) -> Result<Option<Arc<str>>, PersistedError> {
        let mismatch = || PersistedError::HashMismatch {
            hash: id.to_owned(),
        };
        if let Some(body) = self.settings.manifest.as_ref().and_then(|m| m.lookup(id)) {
            if let Some(text) = text {
                let hashes_to_id = QueryHash::parse(id) == Some(QueryHash::of(text));
                if !hashes_to_id && text.trim() != body.trim() {
                    return Err(mismatch());
                }
            }
            Outcome::Hit.record();
            return Ok(Some(body.clone()));
        }
        if let Some(manifest) = self.safelist() {
            return match text {
                Some(text) if self.settings.allow_text => {
                    if QueryHash::parse(id) != Some(QueryHash::of(text)) {
                        Err(mismatch())
                    } else if manifest.contains_body(text) {
                        Outcome::Hit.record();
                        Ok(None)
                    } else {
                        Err(PersistedError::NotInSafelist)
                    }
                }
                _ => Err(PersistedError::NotInList(id.to_owned())),
            };
        }
        if !self.settings.apq_enabled {
            return Err(PersistedError::NotSupported);
        }
        let Some(hash) = QueryHash::parse(id) else {
            return Err(PersistedError::Malformed(format!(
                "`extensions.persistedQuery.sha256Hash` must be 64 hexadecimal digits, got {id:?}"
            )));
        };
        match text {
            Some(text) if QueryHash::of(text) != hash => Err(mismatch()),
            Some(text) => {
                self.register(hash, text).await;
                Ok(None)
            }
            None => self.lookup(hash).await,
        }
    }

    /// APQ second step, once the text is known to hash to `hash`: stores it
    /// unless memory already has it (clients that always send both must
    /// not cost a Redis write per request).
    async fn register(&self, hash: QueryHash, text: &str) {
        let known = self.memory().contains(&hash);
        if known {
            Outcome::Hit.record();
        } else {
            self.memory().put(hash, Arc::from(text));
            if let Some(shared) = &self.shared {
                shared.set(&hash, text).await;
            }
            Outcome::Registered.record();
        }
    }

    /// APQ first step: memory, then Redis (filling memory), else not found.
    async fn lookup(&self, hash: QueryHash) -> Result<Option<Arc<str>>, PersistedError> {
        let cached = self.memory().get(&hash).cloned();
        if let Some(text) = cached {
            Outcome::Hit.record();
            return Ok(Some(text));
        }
        if let Some(shared) = &self.shared
            && let Some(text) = shared.get(&hash).await
        {
            let text: Arc<str> = text.into();
            self.memory().put(hash, text.clone());
            Outcome::Miss.record();
            return Ok(Some(text));
        }
        Err(PersistedError::NotFound)
    }

    /// The manifest, when safelist mode is on.
    fn safelist(&self) -> Option<&Manifest> {
        self.settings
            .manifest
            .as_deref()
            .filter(|_| self.settings.safelist)
    }

    /// The LRU; a poisoned lock is taken over, as the cache holds no
    /// invariant a panic could break.
    fn memory(&self) -> std::sync::MutexGuard<'_, LruCache<QueryHash, Arc<str>>> {
        self.memory.lock().unwrap_or_else(|e| e.into_inner())
    }
}

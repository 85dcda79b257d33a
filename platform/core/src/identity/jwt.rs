//! JSON Web Tokens: the one verifier every Shopgraph process uses, and the
//! issuer behind `shopgraph token`.
//!
//! The router verifies every client's token here; a subgraph uses the same
//! [`JwtVerifier`] only for tokens sent to it directly (`ACCEPT_DIRECT_TOKENS`).
//! What the verifier accepts:
//!
//! * **HS256** tokens are verified with the shared secret (`JWT_SECRET`;
//!   in `dev` only, the public dev secret when unset), exactly as
//!   [`TokenIssuer`] signs them;
//! * **RS256 / ES256** tokens are verified with the public key whose `kid`
//!   the token names, from a JSON Web Key Set (`JWT_JWKS_FILE`, or
//!   `JWT_JWKS_URL`, re-fetched every `JWT_JWKS_REFRESH` and, rate-limited,
//!   when a token names an unknown `kid` — how identity providers rotate
//!   keys);
//! * every other algorithm (`none`, HS384, PS256...) is refused, and the
//!   algorithm is chosen by the key, never by the token alone: an HS256 token
//!   "signed" with a published RSA key is checked against the secret and
//!   fails (algorithm confusion);
//! * `exp`, `nbf`, `iss` and `aud` are checked (30 s leeway); `sub` is the
//!   user id and `roles` the roles.
//!
//! Verification itself is `jsonwebtoken`'s; this module only picks the key,
//! and remembers tokens it verified ([`VerifiedTokens`]): a client sends the
//! same token with every request until it expires, and checking its
//! signature again each time was the largest single cost of a request the
//! router answers from its caches.

use std::collections::HashMap;
use std::num::NonZeroUsize;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError, RwLock, Weak};
use std::time::{Duration, Instant};

use super::{AuthError, Identity, Viewer, bearer_token};
use crate::config::{ConfigError, Env, invalid};
use crate::settings::{DEV_JWT_SECRET, RunMode, jwt_secret};
use http::HeaderValue;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, KeyAlgorithm, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;

/// Seconds of clock skew tolerated on `exp` and `nbf`, as in the subgraphs.
const LEEWAY_SECS: u64 = 30;

/// How long one JWKS download may take.
const JWKS_FETCH_TIMEOUT: Duration = Duration::from_secs(10);

/// Where the public keys for RS256/ES256 tokens come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JwksSource {
    /// A JWKS document on disk (`JWT_JWKS_FILE`), read once at start.
    File(PathBuf),
    /// An identity provider's JWKS endpoint (`JWT_JWKS_URL`), fetched at
    /// start and refreshed in the background.
    Url(String),
}

/// How bearer tokens are verified (and, with the HS256 secret, issued).
#[derive(Clone)]
pub struct JwtSettings {
    /// HS256 secret (`JWT_SECRET`). When unset: off if a JWKS is configured
    /// (rather than open to anyone who knows the dev secret); otherwise the
    /// public dev secret in `dev`, and in `serve` no settings at all
    /// ([`JwtSettings::from_env`] fails).
    pub hs256_secret: Option<String>,
    /// True when the public dev secret is in use: only ever in `dev`.
    pub using_dev_secret: bool,
    /// Public keys for RS256/ES256 tokens (`JWT_JWKS_URL` or `JWT_JWKS_FILE`).
    pub jwks: Option<JwksSource>,
    /// Expected `iss` claim (`JWT_ISSUER`).
    pub issuer: String,
    /// Expected `aud` claim (`JWT_AUDIENCE`).
    pub audience: String,
    /// How often a JWKS URL is re-fetched (`JWT_JWKS_REFRESH`).
    pub jwks_refresh: Duration,
    /// The least time between two fetches triggered by unknown `kid`s, so a
    /// flood of forged tokens cannot hammer the identity provider. Not read
    /// from the environment (30 s, or `jwks_refresh` if shorter).
    pub jwks_refetch_cooldown: Duration,
    /// How many verified tokens are remembered until they expire
    /// (`JWT_CACHE_SIZE`; 0 verifies every token every time).
    pub cache_size: usize,
}

impl std::fmt::Debug for JwtSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtSettings")
            .field(
                "hs256_secret",
                &self.hs256_secret.as_ref().map(|_| "<redacted>"),
            )
            .field("using_dev_secret", &self.using_dev_secret)
            .field("jwks", &self.jwks)
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .field("jwks_refresh", &self.jwks_refresh)
            .field("jwks_refetch_cooldown", &self.jwks_refetch_cooldown)
            .field("cache_size", &self.cache_size)
            .finish()
    }
}

impl JwtSettings {
    /// Reads `JWT_SECRET`, `JWT_JWKS_URL` / `JWT_JWKS_FILE`, `JWT_ISSUER`,
    /// `JWT_AUDIENCE` (both default `shopgraph`), `JWT_JWKS_REFRESH`
    /// (default 5m) and `JWT_CACHE_SIZE` (default 10 000). A bad value is a [`ConfigError`] naming the variable.
    ///
    /// Fails closed: in [`RunMode::Serve`], neither `JWT_SECRET` nor a JWKS
    /// is a [`ConfigError::Missing`] naming `JWT_SECRET` (and the JWKS
    /// alternatives), and `JWT_SECRET` set to the public dev secret is
    /// [`ConfigError::Invalid`]. The public dev secret is in the README, so anyone
    /// could mint an admin token for a process that accepted it; only
    /// [`RunMode::Dev`] falls back to it. Every process reads its token
    /// settings here, so this is the one place the rule lives.
    pub fn from_env(env: &Env, mode: RunMode) -> Result<Self, ConfigError> {
        let url = env.http_url(
            "JWT_JWKS_URL",
            "an http:// or https:// URL of a JSON Web Key Set",
        )?;
        let jwks = match (url, env.raw("JWT_JWKS_FILE")) {
            (Some(_), Some(file)) => {
                return Err(invalid(
                    "JWT_JWKS_FILE",
                    file,
                    "unset when JWT_JWKS_URL is set (one source of keys)",
                ));
            }
            (Some(url), None) => Some(JwksSource::Url(url)),
            (None, Some(file)) => Some(JwksSource::File(PathBuf::from(file))),
            (None, None) => None,
        };
        let (hs256_secret, using_dev_secret) = match (jwt_secret(env)?, mode) {
            (Some(secret), RunMode::Serve) if secret == DEV_JWT_SECRET => {
                return Err(invalid(
                    "JWT_SECRET",
                    "<redacted>",
                    "a secret of your own: the public dev secret is accepted only by \
                     `shopgraph dev`",
                ));
            }
            (Some(secret), _) => (Some(secret), false),
            (None, _) if jwks.is_some() => (None, false),
            (None, RunMode::Dev) => (Some(DEV_JWT_SECRET.to_owned()), true),
            (None, RunMode::Serve) => {
                return Err(ConfigError::Missing {
                    var: "JWT_SECRET".into(),
                    expected: "a secret of at least 32 bytes, or a JSON Web Key Set in \
                               JWT_JWKS_URL or JWT_JWKS_FILE; the public dev secret is \
                               accepted only by `shopgraph dev`"
                        .into(),
                });
            }
        };
        let jwks_refresh = env.duration_or("JWT_JWKS_REFRESH", Duration::from_secs(300))?;
        if jwks_refresh < Duration::from_secs(1) {
            return Err(invalid(
                "JWT_JWKS_REFRESH",
                env.raw("JWT_JWKS_REFRESH").unwrap_or_default(),
                "a duration of at least 1s, such as 5m",
            ));
        }
        Ok(Self {
            hs256_secret,
            using_dev_secret,
            jwks,
            issuer: env
                .string("JWT_ISSUER")
                .unwrap_or_else(|| "shopgraph".into()),
            audience: env
                .string("JWT_AUDIENCE")
                .unwrap_or_else(|| "shopgraph".into()),
            jwks_refresh,
            jwks_refetch_cooldown: jwks_refresh.min(Duration::from_secs(30)),
            cache_size: env.int_in_or("JWT_CACHE_SIZE", 0..=1_000_000, 10_000)?,
        })
    }
}

/// Why tokens cannot be verified as configured (the process does not start).
#[derive(Debug, thiserror::Error)]
pub enum AuthSetupError {
    /// The JWKS could not be loaded at start.
    #[error("cannot load the JSON Web Key Set from {location}")]
    Jwks {
        /// The file or URL.
        location: String,
        /// What went wrong.
        #[source]
        source: JwksError,
    },
}

/// Why a JWKS could not be used.
#[derive(Debug, thiserror::Error)]
pub enum JwksError {
    /// The file could not be read.
    #[error("cannot read the file")]
    Read(#[from] std::io::Error),
    /// The URL did not answer with a 2xx.
    #[error("cannot fetch it")]
    Fetch(#[from] reqwest::Error),
    /// The document is not a JWKS.
    #[error("it is not a JSON Web Key Set")]
    Parse(#[from] serde_json::Error),
    /// No key in it can verify tokens here.
    #[error("it holds no RS256 or ES256 (P-256) signing key with a `kid`")]
    NoUsableKeys,
}

/// The claims the verifier reads; `exp`, `nbf`, `iss` and `aud` are checked
/// by `jsonwebtoken` from the raw token.
#[derive(Debug, Deserialize)]
struct Claims {
    sub: String,
    #[serde(default)]
    roles: Vec<String>,
    /// Required and checked by `jsonwebtoken`; kept to know how long the
    /// verified token may be remembered.
    exp: u64,
}

/// One published public key, with the one algorithm it may verify.
struct PublicKey {
    algorithm: Algorithm,
    key: DecodingKey,
}

type KeyMap = HashMap<String, Arc<PublicKey>>;

/// The JWKS keys, shared with the refresh task (which holds only a `Weak`
/// reference, so dropping the [`JwtVerifier`] ends it).
struct KeyStore {
    keys: RwLock<Arc<KeyMap>>,
    /// Wakes the refresh task early: an unknown `kid`, or the store dropped.
    refetch: Arc<Notify>,
    /// When a fetch was last started, for the unknown-`kid` rate limit.
    last_fetch: Mutex<Instant>,
    cooldown: Duration,
}

impl KeyStore {
    fn get(&self, kid: &str) -> Option<Arc<PublicKey>> {
        self.keys
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(kid)
            .cloned()
    }

    fn replace(&self, keys: KeyMap) {
        *self.keys.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(keys);
    }

    /// Asks the refresh task for a fetch unless one started within the cooldown.
    fn request_refetch(&self) {
        let mut last = self
            .last_fetch
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if last.elapsed() >= self.cooldown {
            *last = Instant::now();
            self.refetch.notify_one();
        }
    }
}

impl Drop for KeyStore {
    fn drop(&mut self) {
        // Let a sleeping refresh task notice at once that it has nothing to do.
        self.refetch.notify_one();
    }
}

/// Verifies `Authorization: Bearer <JWT>`: built once per process from
/// [`JwtSettings`], shared by every request.
pub struct JwtVerifier {
    hs256: Option<DecodingKey>,
    using_dev_secret: bool,
    issuer: String,
    audience: String,
    /// `None` when no JWKS is configured: RS256/ES256 are refused.
    keys: Option<Arc<KeyStore>>,
    /// Tokens verified already; `None` when `cache_size` is 0.
    verified: Option<VerifiedTokens>,
}

impl JwtVerifier {
    /// Loads the JWKS, if any: a file is read once; a URL is fetched now and
    /// then every `jwks_refresh` by a background task (which keeps the last
    /// good keys when a fetch fails), and early, rate-limited, when a token
    /// names an unknown `kid`. Must run inside a Tokio runtime.
    pub async fn new(settings: &JwtSettings) -> Result<Self, AuthSetupError> {
        let keys = match &settings.jwks {
            None => None,
            Some(JwksSource::File(path)) => {
                let keys = load_file(path).map_err(|source| AuthSetupError::Jwks {
                    location: path.display().to_string(),
                    source,
                })?;
                Some(Arc::new(KeyStore {
                    keys: RwLock::new(Arc::new(keys)),
                    refetch: Arc::new(Notify::new()),
                    last_fetch: Mutex::new(Instant::now()),
                    // A file is never re-read.
                    cooldown: Duration::MAX,
                }))
            }
            Some(JwksSource::Url(url)) => {
                let http = reqwest::Client::builder()
                    .timeout(JWKS_FETCH_TIMEOUT)
                    .build()
                    .map_err(|err| AuthSetupError::Jwks {
                        location: url.clone(),
                        source: JwksError::Fetch(err),
                    })?;
                let keys = fetch(&http, url)
                    .await
                    .map_err(|source| AuthSetupError::Jwks {
                        location: url.clone(),
                        source,
                    })?;
                let store = Arc::new(KeyStore {
                    keys: RwLock::new(Arc::new(keys)),
                    refetch: Arc::new(Notify::new()),
                    last_fetch: Mutex::new(Instant::now()),
                    cooldown: settings.jwks_refetch_cooldown,
                });
                tokio::spawn(refresh_keys(
                    Arc::downgrade(&store),
                    http,
                    url.clone(),
                    settings.jwks_refresh,
                ));
                Some(store)
            }
        };
        Ok(Self {
            hs256: settings
                .hs256_secret
                .as_ref()
                .map(|secret| DecodingKey::from_secret(secret.as_bytes())),
            using_dev_secret: settings.using_dev_secret,
            issuer: settings.issuer.clone(),
            audience: settings.audience.clone(),
            keys,
            verified: NonZeroUsize::new(settings.cache_size).map(VerifiedTokens::new),
        })
    }

    /// `None` header → [`Identity::Anonymous`]; otherwise the verified
    /// [`Identity::User`], or why the token is refused (answer 401).
    pub fn identify(&self, authorization: Option<&HeaderValue>) -> Result<Identity, AuthError> {
        let Some(value) = authorization else {
            return Ok(Identity::Anonymous);
        };
        let token = bearer_token(value)?;
        Ok(Identity::User(self.verify(token)?))
    }

    /// Whether the public dev secret is in use (only in `dev`, which logs a
    /// warning at start).
    pub fn using_dev_secret(&self) -> bool {
        self.using_dev_secret
    }

    /// Verifies a token and returns its caller; a token verified before
    /// and not expired since is answered from memory, as long as the key
    /// that verified it is still published.
    pub fn verify(&self, token: &str) -> Result<Viewer, AuthError> {
        if let Some(viewer) = self
            .verified
            .as_ref()
            .and_then(|verified| verified.get(token, self.keys.as_deref()))
        {
            return Ok(viewer);
        }
        let (viewer, exp, key) = self.verify_signature(token)?;
        if let Some(verified) = &self.verified {
            verified.insert(token, viewer.clone(), exp, key);
        }
        Ok(viewer)
    }

    /// The full check: the caller, the token's `exp`, and the JWKS key that
    /// verified it (`None` for HS256, whose secret never changes).
    fn verify_signature(&self, token: &str) -> Result<(Viewer, u64, Option<KeyUsed>), AuthError> {
        let header = jsonwebtoken::decode_header(token)?;
        let (data, key) = match header.alg {
            Algorithm::HS256 => {
                let key = self
                    .hs256
                    .as_ref()
                    .ok_or_else(|| AuthError::DisallowedAlgorithm("HS256".into()))?;
                let data =
                    jsonwebtoken::decode::<Claims>(token, key, &self.validation(Algorithm::HS256))?;
                (data, None)
            }
            alg @ (Algorithm::RS256 | Algorithm::ES256) => {
                let store = self
                    .keys
                    .as_ref()
                    .ok_or_else(|| AuthError::DisallowedAlgorithm(format!("{alg:?}")))?;
                let kid = header.kid.ok_or(AuthError::UnknownKey)?;
                let Some(key) = store.get(&kid) else {
                    store.request_refetch();
                    return Err(AuthError::UnknownKey);
                };
                // The key decides the algorithm: an RS256 header on an EC key is refused.
                if key.algorithm != alg {
                    return Err(AuthError::DisallowedAlgorithm(format!("{alg:?}")));
                }
                let data = jsonwebtoken::decode::<Claims>(token, &key.key, &self.validation(alg))?;
                (data, Some(KeyUsed { kid, key }))
            }
            other => return Err(AuthError::DisallowedAlgorithm(format!("{other:?}"))),
        };
        let exp = data.claims.exp;
        let viewer = Viewer::from_claims(data.claims.sub, data.claims.roles)?;
        Ok((viewer, exp, key))
    }

    fn validation(&self, algorithm: Algorithm) -> Validation {
        let mut validation = Validation::new(algorithm);
        validation.set_issuer(&[&self.issuer]);
        validation.set_audience(&[&self.audience]);
        validation.set_required_spec_claims(&["exp", "sub", "iss", "aud"]);
        validation.validate_nbf = true;
        validation.leeway = LEEWAY_SECS;
        validation
    }
}

/// The JWKS key a token was verified with.
struct KeyUsed {
    kid: String,
    key: Arc<PublicKey>,
}

/// Tokens longer than this are verified every time rather than remembered,
/// so a full cache stays a few megabytes.
const MAX_REMEMBERED_TOKEN: usize = 4096;

/// Tokens verified already, until their `exp` (plus the leeway every check
/// allows), least recently used out first. Only tokens that verified are
/// kept, keyed by the whole token, so a forged or altered token never
/// matches one; an RS256/ES256 token is trusted again only while the JWKS
/// still publishes the very key that verified it (a key withdrawn by the
/// identity provider takes its tokens with it at the next refresh; every
/// refresh loads fresh keys, so each token is verified once more then).
struct VerifiedTokens {
    entries: Mutex<lru::LruCache<Box<str>, Verified>>,
}

struct Verified {
    viewer: Viewer,
    /// Remembered until this Unix time.
    until: u64,
    key: Option<KeyUsed>,
}

impl VerifiedTokens {
    fn new(capacity: NonZeroUsize) -> Self {
        Self {
            entries: Mutex::new(lru::LruCache::new(capacity)),
        }
    }

    fn get(&self, token: &str, keys: Option<&KeyStore>) -> Option<Viewer> {
        let now = jsonwebtoken::get_current_timestamp();
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        let entry = entries.get(token)?;
        let key_still_published = match (&entry.key, keys) {
            (None, _) => true,
            (Some(used), Some(keys)) => keys
                .get(&used.kid)
                .is_some_and(|current| Arc::ptr_eq(&current, &used.key)),
            (Some(_), None) => false,
        };
        if now > entry.until || !key_still_published {
            entries.pop(token);
            return None;
        }
        Some(entry.viewer.clone())
    }

    fn insert(&self, token: &str, viewer: Viewer, exp: u64, key: Option<KeyUsed>) {
        if token.len() > MAX_REMEMBERED_TOKEN {
            return;
        }
        let until = exp.saturating_add(LEEWAY_SECS);
        self.entries
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .put(token.into(), Verified { viewer, until, key });
    }
}

impl std::fmt::Debug for JwtVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtVerifier")
            .field("hs256", &self.hs256.as_ref().map(|_| "<redacted>"))
            .field("using_dev_secret", &self.using_dev_secret)
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .field(
                "kids",
                &self.keys.as_ref().map(|store| {
                    let keys = store.keys.read().unwrap_or_else(PoisonError::into_inner);
                    let mut kids: Vec<String> = keys.keys().cloned().collect();
                    kids.sort();
                    kids
                }),
            )
            .finish()
    }
}

/// Signs HS256 tokens with the shared secret: what `shopgraph token` prints
/// and what tests sign in as. Identity providers issue production tokens;
/// this exists so the shop can be tried and tested without one.
#[derive(Clone)]
pub struct TokenIssuer {
    key: EncodingKey,
    issuer: String,
    audience: String,
}

/// The claims [`TokenIssuer`] writes.
#[derive(Serialize)]
struct IssuedClaims<'a> {
    sub: &'a str,
    roles: &'a [&'a str],
    iss: &'a str,
    aud: &'a str,
    iat: u64,
    exp: u64,
}

impl TokenIssuer {
    /// An issuer signing with `secret` for the given `iss` and `aud`.
    pub fn new(secret: &str, issuer: &str, audience: &str) -> Self {
        Self {
            key: EncodingKey::from_secret(secret.as_bytes()),
            issuer: issuer.to_owned(),
            audience: audience.to_owned(),
        }
    }

    /// The issuer matching `settings`, or `None` when HS256 is off (a JWKS
    /// without `JWT_SECRET`: tokens come from the identity provider).
    pub fn from_settings(settings: &JwtSettings) -> Option<Self> {
        let secret = settings.hs256_secret.as_deref()?;
        Some(Self::new(secret, &settings.issuer, &settings.audience))
    }

    /// Mints a token for `user_id` with `roles`, valid for `ttl`.
    pub fn issue(&self, user_id: &str, roles: &[&str], ttl: Duration) -> Result<String, AuthError> {
        let now = jsonwebtoken::get_current_timestamp();
        let claims = IssuedClaims {
            sub: user_id,
            roles,
            iss: &self.issuer,
            aud: &self.audience,
            iat: now,
            exp: now.saturating_add(ttl.as_secs()),
        };
        Ok(jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &self.key,
        )?)
    }
}

/// Re-fetches the JWKS every `period`, or when woken, until the store is gone.
async fn refresh_keys(store: Weak<KeyStore>, http: reqwest::Client, url: String, period: Duration) {
    loop {
        let Some(refetch) = store.upgrade().map(|store| store.refetch.clone()) else {
            return;
        };
        tokio::select! {
            () = tokio::time::sleep(period) => {}
            () = refetch.notified() => {}
        }
        let Some(live) = store.upgrade() else {
            return;
        };
        *live
            .last_fetch
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Instant::now();
        match fetch(&http, &url).await {
            Ok(keys) => {
                tracing::debug!(%url, keys = keys.len(), "JWKS refreshed");
                live.replace(keys);
            }
            Err(err) => tracing::warn!(
                %url,
                error = %crate::error::error_chain(&err),
                "JWKS refresh failed; keeping the previous keys"
            ),
        }
    }
}

fn load_file(path: &std::path::Path) -> Result<KeyMap, JwksError> {
    parse_jwks(&std::fs::read(path)?)
}

async fn fetch(http: &reqwest::Client, url: &str) -> Result<KeyMap, JwksError> {
    let body = http
        .get(url)
        .header(http::header::ACCEPT, "application/json")
        .send()
        .await?
        .error_for_status()?
        .bytes()
        .await?;
    parse_jwks(&body)
}

/// The usable keys of a JWKS document, by `kid`. Keys are judged one by one,
/// so one key of a type `jsonwebtoken` does not know does not hide the rest.
fn parse_jwks(document: &[u8]) -> Result<KeyMap, JwksError> {
    #[derive(Deserialize)]
    struct Document {
        keys: Vec<serde_json::Value>,
    }
    let document: Document = serde_json::from_slice(document)?;
    let keys: KeyMap = document
        .keys
        .into_iter()
        .filter_map(|value| serde_json::from_value::<Jwk>(value).ok())
        .filter_map(|jwk| {
            let kid = jwk.common.key_id.clone()?;
            let key = public_key(&jwk)?;
            Some((kid, Arc::new(key)))
        })
        .collect();
    if keys.is_empty() {
        return Err(JwksError::NoUsableKeys);
    }
    Ok(keys)
}

/// The key and its algorithm, if it is an RS256 or ES256 signing key.
fn public_key(jwk: &Jwk) -> Option<PublicKey> {
    let (algorithm, declared) = match &jwk.algorithm {
        AlgorithmParameters::RSA(_) => (Algorithm::RS256, KeyAlgorithm::RS256),
        AlgorithmParameters::EllipticCurve(params) if params.curve == EllipticCurve::P256 => {
            (Algorithm::ES256, KeyAlgorithm::ES256)
        }
        // Symmetric (`oct`) keys never come from a JWKS; other curves are not accepted.
        _ => return None,
    };
    if jwk.common.key_algorithm.is_some_and(|alg| alg != declared) {
        return None;
    }
    if matches!(jwk.common.public_key_use, Some(ref usage) if *usage != PublicKeyUse::Signature) {
        return None;
    }
    let key = DecodingKey::from_jwk(jwk).ok()?;
    Some(PublicKey { algorithm, key })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::ADMIN_ROLE;
    use serde_json::json;

    const SECRET: &str = "router-test-secret-0123456789abcdef";
    const RSA_PRIVATE: &str = include_str!("../../tests/fixtures/jwt/rsa-private.pem");
    const RSA_PUBLIC: &str = include_str!("../../tests/fixtures/jwt/rsa-public.pem");
    const EC_PRIVATE: &str = include_str!("../../tests/fixtures/jwt/ec-private.pem");
    const JWKS: &str = include_str!("../../tests/fixtures/jwt/jwks.json");

    fn jwks_path() -> String {
        concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/jwt/jwks.json").to_owned()
    }

    /// Settings as `serve` reads them (so tests never lean on the dev secret).
    fn settings(pairs: &[(&str, &str)]) -> JwtSettings {
        JwtSettings::from_env(&Env::from_pairs(pairs.iter().copied()), RunMode::Serve)
            .expect("valid")
    }

    fn claims(overrides: serde_json::Value) -> serde_json::Value {
        let now = jsonwebtoken::get_current_timestamp();
        let mut claims = json!({
            "sub": "user-1", "roles": [ADMIN_ROLE], "iss": "shopgraph", "aud": "shopgraph",
            "iat": now, "exp": now + 600,
        });
        for (key, value) in overrides.as_object().into_iter().flatten() {
            claims[key] = value.clone();
        }
        claims
    }

    fn sign(
        alg: Algorithm,
        kid: Option<&str>,
        key: &EncodingKey,
        claims: &serde_json::Value,
    ) -> String {
        let mut header = Header::new(alg);
        header.kid = kid.map(str::to_owned);
        jsonwebtoken::encode(&header, claims, key).expect("signs")
    }

    fn hs256(secret: &str, claims: &serde_json::Value) -> String {
        sign(
            Algorithm::HS256,
            None,
            &EncodingKey::from_secret(secret.as_bytes()),
            claims,
        )
    }

    fn rs256(kid: &str, claims: &serde_json::Value) -> String {
        let key = EncodingKey::from_rsa_pem(RSA_PRIVATE.as_bytes()).expect("RSA key");
        sign(Algorithm::RS256, Some(kid), &key, claims)
    }

    fn es256(kid: &str, claims: &serde_json::Value) -> String {
        let key = EncodingKey::from_ec_pem(EC_PRIVATE.as_bytes()).expect("EC key");
        sign(Algorithm::ES256, Some(kid), &key, claims)
    }

    fn bearer(token: &str) -> HeaderValue {
        HeaderValue::from_str(&format!("Bearer {token}")).expect("header")
    }

    fn check(auth: &JwtVerifier, token: &str) -> Result<Identity, AuthError> {
        auth.identify(Some(&bearer(token)))
    }

    fn admin_user() -> Identity {
        Identity::User(Viewer {
            user_id: "user-1".into(),
            roles: vec![ADMIN_ROLE.into()],
        })
    }

    #[test]
    fn settings_default_to_the_dev_secret_in_dev_only_and_redact_it() {
        let dev = JwtSettings::from_env(&Env::default(), RunMode::Dev).expect("dev settings");
        assert!(dev.using_dev_secret);
        assert_eq!(dev.hs256_secret.as_deref(), Some(DEV_JWT_SECRET));
        assert_eq!(dev.jwks, None);
        assert_eq!(dev.jwks_refresh, Duration::from_secs(300));
        assert_eq!(dev.issuer, "shopgraph");

        let own = settings(&[("JWT_SECRET", SECRET), ("JWT_JWKS_URL", "https://idp/keys")]);
        assert!(!own.using_dev_secret);
        assert!(!format!("{own:?}").contains(SECRET));
        assert_eq!(own.jwks, Some(JwksSource::Url("https://idp/keys".into())));

        for mode in [RunMode::Dev, RunMode::Serve] {
            let jwks_only = JwtSettings::from_env(
                &Env::from_pairs([("JWT_JWKS_FILE", "/etc/keys.json")]),
                mode,
            )
            .expect("a JWKS is enough");
            assert_eq!(jwks_only.hs256_secret, None, "no dev secret next to a JWKS");
            assert!(!jwks_only.using_dev_secret);
        }
    }

    #[test]
    fn serve_without_a_secret_or_jwks_fails_closed_naming_the_variables() {
        let err = JwtSettings::from_env(&Env::default(), RunMode::Serve)
            .expect_err("serve must not fall back to the public dev secret");
        assert!(
            matches!(&err, ConfigError::Missing { var, .. } if var == "JWT_SECRET"),
            "{err:?}"
        );
        let message = err.to_string();
        for var in ["JWT_SECRET", "JWT_JWKS_URL", "JWT_JWKS_FILE"] {
            assert!(message.contains(var), "{message}");
        }
        assert!(!message.contains(DEV_JWT_SECRET), "{message}");

        // Setting the public secret explicitly is no better than leaving it unset.
        let public = Env::from_pairs([("JWT_SECRET", DEV_JWT_SECRET)]);
        let err = JwtSettings::from_env(&public, RunMode::Serve)
            .expect_err("the public dev secret, set explicitly")
            .to_string();
        assert!(err.contains("JWT_SECRET"), "{err}");
        assert!(
            !err.contains(DEV_JWT_SECRET),
            "the secret is not echoed: {err}"
        );
        let dev = JwtSettings::from_env(&public, RunMode::Dev).expect("dev accepts it");
        assert_eq!(dev.hs256_secret.as_deref(), Some(DEV_JWT_SECRET));
    }

    #[test]
    fn bad_settings_name_the_variable() {
        for pairs in [
            vec![("JWT_SECRET", "short")],
            vec![("JWT_JWKS_URL", "ftp://idp/keys")],
            vec![
                ("JWT_JWKS_URL", "https://idp/keys"),
                ("JWT_JWKS_FILE", "k.json"),
            ],
            vec![("JWT_JWKS_REFRESH", "often")],
            vec![("JWT_JWKS_REFRESH", "10ms")],
        ] {
            let var = pairs.last().map(|(var, _)| *var).unwrap_or_default();
            let err = JwtSettings::from_env(&Env::from_pairs(pairs.clone()), RunMode::Dev)
                .expect_err(var)
                .to_string();
            assert!(err.contains(var), "{err}");
        }
    }

    #[tokio::test]
    async fn hs256_tokens_are_checked_in_full() {
        let auth = JwtVerifier::new(&settings(&[("JWT_SECRET", SECRET)]))
            .await
            .unwrap();
        assert!(!auth.using_dev_secret());
        assert_eq!(auth.identify(None).unwrap(), Identity::Anonymous);
        assert_eq!(
            check(&auth, &hs256(SECRET, &claims(json!({})))).unwrap(),
            admin_user()
        );

        let now = jsonwebtoken::get_current_timestamp();
        let refused = [
            hs256("another-secret-that-is-long-enough!!", &claims(json!({}))),
            hs256(SECRET, &claims(json!({ "exp": now - 3600 }))),
            hs256(SECRET, &claims(json!({ "nbf": now + 3600 }))),
            hs256(SECRET, &claims(json!({ "iss": "someone-else" }))),
            hs256(SECRET, &claims(json!({ "aud": "another-api" }))),
            hs256(SECRET, &claims(json!({ "sub": "" }))),
            hs256(SECRET, &claims(json!({ "roles": ["reader,admin"] }))),
            "not.a.token".to_owned(),
        ];
        for token in &refused {
            assert!(check(&auth, token).is_err(), "accepted {token}");
        }
        for header in ["Basic abc", "Bearer ", "token"] {
            assert!(matches!(
                auth.identify(Some(&HeaderValue::from_static(header))),
                Err(AuthError::MalformedHeader)
            ));
        }
    }

    #[tokio::test]
    async fn issued_tokens_verify_and_refusals_say_why_in_words() {
        let auth = JwtVerifier::new(&settings(&[("JWT_SECRET", SECRET)]))
            .await
            .unwrap();
        let issuer =
            TokenIssuer::from_settings(&settings(&[("JWT_SECRET", SECRET)])).expect("HS256 is on");
        let token = issuer
            .issue("user-1", &[ADMIN_ROLE], Duration::from_secs(60))
            .unwrap();
        assert_eq!(check(&auth, &token).unwrap(), admin_user());

        let now = jsonwebtoken::get_current_timestamp();
        for (token, words) in [
            (
                hs256("another-secret-that-is-long-enough!!", &claims(json!({}))),
                "invalid token: the signature does not match",
            ),
            (
                hs256(SECRET, &claims(json!({ "exp": now - 3600 }))),
                "invalid token: it has expired",
            ),
            (
                hs256(SECRET, &claims(json!({ "iss": "someone-else" }))),
                "invalid token: it was issued by another issuer (iss)",
            ),
            (
                hs256(SECRET, &claims(json!({ "aud": "another-api" }))),
                "invalid token: it is meant for another audience (aud)",
            ),
        ] {
            assert_eq!(check(&auth, &token).unwrap_err().to_string(), words);
        }
        let jwks_only = settings(&[("JWT_JWKS_FILE", &jwks_path())]);
        assert!(TokenIssuer::from_settings(&jwks_only).is_none());
    }

    #[tokio::test]
    async fn unsigned_and_unlisted_algorithms_are_refused() {
        let auth = JwtVerifier::new(&settings(&[("JWT_SECRET", SECRET)]))
            .await
            .unwrap();
        // alg "none": a valid token's claims under {"alg":"none","typ":"JWT"}, unsigned.
        let valid = hs256(SECRET, &claims(json!({})));
        let payload = valid.split('.').nth(1).unwrap_or_default();
        let none = format!("eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.{payload}.");
        assert!(check(&auth, &none).is_err());
        let hs384 = sign(
            Algorithm::HS384,
            None,
            &EncodingKey::from_secret(SECRET.as_bytes()),
            &claims(json!({})),
        );
        assert!(matches!(
            check(&auth, &hs384),
            Err(AuthError::DisallowedAlgorithm(_))
        ));
        // Without a JWKS, asymmetric tokens have no key to be checked with.
        assert!(matches!(
            check(&auth, &rs256("rsa-1", &claims(json!({})))),
            Err(AuthError::DisallowedAlgorithm(_))
        ));
    }

    #[tokio::test]
    async fn rs256_and_es256_verify_with_the_jwks_file() {
        let path = jwks_path();
        let auth = JwtVerifier::new(&settings(&[
            ("JWT_SECRET", SECRET),
            ("JWT_JWKS_FILE", &path),
        ]))
        .await
        .unwrap();
        assert_eq!(
            check(&auth, &rs256("rsa-1", &claims(json!({})))).unwrap(),
            admin_user()
        );
        assert_eq!(
            check(&auth, &es256("ec-1", &claims(json!({})))).unwrap(),
            admin_user()
        );
        assert_eq!(
            check(&auth, &hs256(SECRET, &claims(json!({})))).unwrap(),
            admin_user()
        );

        let now = jsonwebtoken::get_current_timestamp();
        assert!(
            check(
                &auth,
                &rs256("rsa-1", &claims(json!({ "exp": now - 3600 })))
            )
            .is_err()
        );
        assert!(check(&auth, &es256("ec-1", &claims(json!({ "aud": "x" })))).is_err());
        assert!(matches!(
            check(&auth, &rs256("rsa-9", &claims(json!({})))),
            Err(AuthError::UnknownKey)
        ));
        let no_kid = sign(
            Algorithm::RS256,
            None,
            &EncodingKey::from_rsa_pem(RSA_PRIVATE.as_bytes()).unwrap(),
            &claims(json!({})),
        );
        assert!(matches!(check(&auth, &no_kid), Err(AuthError::UnknownKey)));
        // The RSA key signs, but the token claims the EC key's kid.
        assert!(check(&auth, &rs256("ec-1", &claims(json!({})))).is_err());
    }

    #[tokio::test]
    async fn an_hs256_token_signed_with_the_public_key_is_refused() {
        let path = jwks_path();
        for pairs in [
            vec![("JWT_SECRET", SECRET), ("JWT_JWKS_FILE", path.as_str())],
            vec![("JWT_JWKS_FILE", path.as_str())],
        ] {
            let auth = JwtVerifier::new(&settings(&pairs)).await.unwrap();
            for kid in [None, Some("rsa-1")] {
                let forged = sign(
                    Algorithm::HS256,
                    kid,
                    &EncodingKey::from_secret(RSA_PUBLIC.as_bytes()),
                    &claims(json!({})),
                );
                assert!(check(&auth, &forged).is_err(), "{pairs:?} {kid:?}");
            }
        }
        // With a JWKS and no JWT_SECRET, even the dev secret is refused.
        let auth = JwtVerifier::new(&settings(&[("JWT_JWKS_FILE", &path)]))
            .await
            .unwrap();
        assert!(matches!(
            check(&auth, &hs256(DEV_JWT_SECRET, &claims(json!({})))),
            Err(AuthError::DisallowedAlgorithm(_))
        ));
    }

    #[tokio::test]
    async fn unusable_jwks_stop_start_up() {
        let missing =
            JwtVerifier::new(&settings(&[("JWT_JWKS_FILE", "/nonexistent/jwks.json")])).await;
        assert!(matches!(
            missing,
            Err(AuthSetupError::Jwks {
                source: JwksError::Read(_),
                ..
            })
        ));
        assert!(matches!(
            parse_jwks(b"{\"keys\": []}"),
            Err(JwksError::NoUsableKeys)
        ));
        assert!(matches!(parse_jwks(b"<html>"), Err(JwksError::Parse(_))));
        // A symmetric key and a key without kid are ignored; the RSA key stays.
        let mut document: serde_json::Value = serde_json::from_str(JWKS).unwrap();
        let keys = document["keys"].as_array_mut().unwrap();
        keys.push(json!({ "kty": "oct", "kid": "hmac", "k": "c2VjcmV0" }));
        keys.push(json!({ "kty": "OKP", "kid": "weird", "crv": "X448", "x": "AA" }));
        keys[1]["kid"] = serde_json::Value::Null;
        let parsed = parse_jwks(&serde_json::to_vec(&document).unwrap()).unwrap();
        let mut kids: Vec<&String> = parsed.keys().collect();
        kids.sort();
        assert_eq!(kids, ["rsa-1"]);
    }

    /// A JWKS endpoint whose document the test can swap, counting fetches.
    struct JwksServer {
        url: String,
        document: Arc<Mutex<serde_json::Value>>,
        fetches: Arc<std::sync::atomic::AtomicUsize>,
    }

    async fn jwks_server(document: serde_json::Value) -> JwksServer {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let document = Arc::new(Mutex::new(document));
        let fetches = Arc::new(AtomicUsize::new(0));
        let (doc, count) = (document.clone(), fetches.clone());
        let app = axum::Router::new().route(
            "/jwks.json",
            axum::routing::get(move || {
                let doc = doc.clone();
                let count = count.clone();
                async move {
                    count.fetch_add(1, Ordering::SeqCst);
                    let body = doc.lock().unwrap().clone();
                    axum::Json(body)
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        JwksServer {
            url: format!("http://{addr}/jwks.json"),
            document,
            fetches,
        }
    }

    #[tokio::test]
    async fn a_jwks_url_is_fetched_and_refetched_for_a_new_kid() {
        use std::sync::atomic::Ordering;
        let full: serde_json::Value = serde_json::from_str(JWKS).unwrap();
        let mut rsa_only = full.clone();
        rsa_only["keys"].as_array_mut().unwrap().truncate(1);
        let server = jwks_server(rsa_only).await;

        let mut settings = settings(&[("JWT_JWKS_URL", &server.url), ("JWT_JWKS_REFRESH", "1h")]);
        settings.jwks_refetch_cooldown = Duration::from_millis(200);
        let auth = JwtVerifier::new(&settings).await.unwrap();
        assert_eq!(server.fetches.load(Ordering::SeqCst), 1);
        assert_eq!(
            check(&auth, &rs256("rsa-1", &claims(json!({})))).unwrap(),
            admin_user()
        );

        // The provider rotates in the EC key; the first token naming it
        // triggers a refetch, and a later one is accepted.
        *server.document.lock().unwrap() = full;
        let token = es256("ec-1", &claims(json!({})));
        assert!(matches!(check(&auth, &token), Err(AuthError::UnknownKey)));
        let deadline = Instant::now() + Duration::from_secs(5);
        while check(&auth, &token).is_err() {
            assert!(Instant::now() < deadline, "the new key was never fetched");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }

        // Unknown kids are rate-limited: a burst costs at most one fetch.
        let before = server.fetches.load(Ordering::SeqCst);
        for _ in 0..50 {
            let _ = check(&auth, &rs256("forged", &claims(json!({}))));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(server.fetches.load(Ordering::SeqCst) <= before + 1);
    }

    #[tokio::test]
    async fn the_refresh_task_ends_with_the_verifier() {
        let full: serde_json::Value = serde_json::from_str(JWKS).unwrap();
        let server = jwks_server(full).await;
        let auth = JwtVerifier::new(&settings(&[("JWT_JWKS_URL", &server.url)]))
            .await
            .unwrap();
        let store = Arc::downgrade(auth.keys.as_ref().unwrap());
        drop(auth);
        assert!(
            store.upgrade().is_none(),
            "the task holds only a Weak reference"
        );
        let unreachable = JwtVerifier::new(&settings(&[(
            "JWT_JWKS_URL",
            "http://127.0.0.1:1/jwks.json",
        )]))
        .await;
        assert!(matches!(
            unreachable,
            Err(AuthSetupError::Jwks {
                source: JwksError::Fetch(_),
                ..
            })
        ));
    }

    fn remembered(auth: &JwtVerifier) -> usize {
        auth.verified.as_ref().map_or(0, |verified| {
            verified
                .entries
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .len()
        })
    }

    #[tokio::test]
    async fn a_verified_token_is_remembered_until_it_expires_and_only_as_it_is() {
        let auth = JwtVerifier::new(&settings(&[("JWT_SECRET", SECRET)]))
            .await
            .unwrap();
        let token = hs256(SECRET, &claims(json!({})));
        assert_eq!(check(&auth, &token).unwrap(), admin_user());
        assert_eq!(remembered(&auth), 1);
        assert_eq!(check(&auth, &token).unwrap(), admin_user(), "from memory");
        assert_eq!(remembered(&auth), 1);

        // Refused tokens are not remembered; an altered token never
        // matches a remembered one.
        let mut altered = token.clone();
        altered.pop();
        assert!(check(&auth, &altered).is_err());
        assert!(
            check(
                &auth,
                &hs256("another-secret-0123456789abcdef", &claims(json!({})))
            )
            .is_err()
        );
        assert_eq!(remembered(&auth), 1);

        // Past its exp (and the leeway), a remembered token is refused
        // again by the full check.
        let verified = auth.verified.as_ref().expect("on by default");
        verified
            .entries
            .lock()
            .unwrap()
            .get_mut(token.as_str())
            .expect("remembered")
            .until = jsonwebtoken::get_current_timestamp() - 1;
        assert!(verified.get(&token, None).is_none(), "expired in memory");
        assert_eq!(remembered(&auth), 0, "and forgotten");

        // Off with JWT_CACHE_SIZE=0; huge tokens are never remembered.
        let off = JwtVerifier::new(&settings(&[
            ("JWT_SECRET", SECRET),
            ("JWT_CACHE_SIZE", "0"),
        ]))
        .await
        .unwrap();
        assert_eq!(check(&off, &token).unwrap(), admin_user());
        assert!(off.verified.is_none());
        let padded = hs256(
            SECRET,
            &claims(json!({ "padding": "x".repeat(MAX_REMEMBERED_TOKEN) })),
        );
        assert_eq!(check(&auth, &padded).unwrap(), admin_user());
        assert_eq!(remembered(&auth), 0);
    }

    #[tokio::test]
    async fn a_remembered_token_dies_with_the_key_that_verified_it() {
        let path = jwks_path();
        let auth = JwtVerifier::new(&settings(&[("JWT_JWKS_FILE", &path)]))
            .await
            .unwrap();
        let token = rs256("rsa-1", &claims(json!({})));
        assert_eq!(check(&auth, &token).unwrap(), admin_user());
        assert_eq!(remembered(&auth), 1);

        // The identity provider withdraws the key (a refresh without it).
        let store = auth.keys.as_ref().expect("a JWKS");
        let mut keys: KeyMap = (**store.keys.read().unwrap()).clone();
        keys.remove("rsa-1");
        store.replace(keys);
        assert!(matches!(check(&auth, &token), Err(AuthError::UnknownKey)));
        assert_eq!(remembered(&auth), 0);
    }
}

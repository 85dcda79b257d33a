//! The signed hop: how a subgraph knows a request really comes from the
//! router (or from another subgraph acting for the same caller).
//!
//! The router verifies the client's JWT and forwards the caller in the
//! identity headers of [`crate::identity`]. Headers alone prove nothing:
//! anyone who can reach a subgraph port could write them. So every request
//! on the hop carries an [RFC 9421] HTTP Message Signature made with an
//! Ed25519 private key that only the signing services hold; subgraphs hold
//! only public keys ([`HopVerifier`]) and read the identity headers of a
//! request only after its signature checked out.
//!
//! What one signature covers (label `shopgraph`):
//!
//! | component | why |
//! |---|---|
//! | `@method`, `@request-target` | the request cannot be turned into another one |
//! | `content-digest` ([RFC 9530], SHA-256 of the body) | the GraphQL document and variables cannot be changed |
//! | `x-shopgraph-user-id`, `x-shopgraph-user-roles`, `authorization` (each one present) | the caller cannot be changed or added |
//! | `created`, `expires` | a captured request is useless after a short window ([`HopSettings::validity`]) |
//! | `nonce` | a captured request cannot be sent again within the window ([`ReplayGuard`]) |
//! | `keyid`, `alg` | the verifier picks the public key; several are trusted at once, so keys rotate without downtime |
//! | `tag` (the target subgraph's name) | a request signed for one subgraph is refused by another |
//!
//! The verifier refuses anything else: a request with no signature, a
//! second signature beside ours, an unknown key, an identity header the
//! signature does not cover, a body that does not match its digest.
//!
//! Keys come from the environment ([`HopSettings::from_env`]): PEM files
//! (`HOP_SIGNING_KEY_FILE`, `HOP_TRUSTED_KEYS_FILE`) or PEM values.
//! `shopgraph dev` generates a fresh pair at start ([`HopKeyPair`]), so the
//! same code signs and verifies in development as in production; `serve`
//! refuses to start without the keys its role needs.
//!
//! Subscriptions travel differently: the router multiplexes many callers
//! over one websocket per subgraph replica, so the caller cannot be a
//! property of the connection. Each `subscribe` message then carries its
//! operation signed the same way, as if it were a request of its own
//! ([`operation`]).
//!
//! [RFC 9421]: https://www.rfc-editor.org/rfc/rfc9421
//! [RFC 9530]: https://www.rfc-editor.org/rfc/rfc9530

pub mod operation;

use std::collections::HashSet;
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, Uri};
use http_body_util::Full;
use httpsig_hyper::prelude::message_component::HttpMessageComponentId;
use httpsig_hyper::prelude::{
    AlgorithmName, HttpSignatureParams, PublicKey, SecretKey, SigningKey, VerifyingKey,
};
use httpsig_hyper::{
    ContentDigestType, MessageSignature, MessageSignatureReq, RequestContentDigest,
};
use hyper::body::Bytes;

use crate::config::{ConfigError, Env, invalid};
use crate::identity::{USER_ID_HEADER, USER_ROLES_HEADER};
use crate::settings::RunMode;

/// The signature's label in `Signature-Input` and `Signature`.
pub const SIGNATURE_LABEL: &str = "shopgraph";

/// Default of `HOP_SIGNATURE_TTL`: long enough for a slow retry, short
/// enough that a captured request is soon worthless.
pub const DEFAULT_VALIDITY: Duration = Duration::from_secs(30);

/// The longest `HOP_SIGNATURE_TTL` accepted: every signature seen is
/// remembered this long against replays.
pub const MAX_VALIDITY: Duration = Duration::from_secs(300);

/// How far ahead of the verifier's clock a signature's `created` may be
/// (clocks of two hosts are never exactly equal).
pub const CLOCK_SKEW: Duration = Duration::from_secs(5);

/// Headers that name the caller: covered by the signature whenever present.
const IDENTITY_HEADERS: [&str; 3] = [USER_ID_HEADER, USER_ROLES_HEADER, "authorization"];

/// Components every hop signature covers.
const REQUIRED_COMPONENTS: [&str; 3] = ["@method", "@request-target", "content-digest"];

const CONTENT_DIGEST: &str = "content-digest";
const SIGNATURE: &str = "signature";
const SIGNATURE_INPUT: &str = "signature-input";

/// Why a request on the hop was refused, or a signature could not be made.
/// Every refusal is answered 401 `UNAUTHENTICATED`; the message says which
/// check failed, for the operator reading the logs.
#[derive(Debug, thiserror::Error)]
pub enum HopError {
    /// No `Signature`/`Signature-Input` headers.
    #[error("the request is not signed: send it through the router")]
    Unsigned,
    /// The signature headers cannot be read, or hold more than our one signature.
    #[error("the request signature is malformed: {0}")]
    Malformed(String),
    /// A parameter the hop requires is missing or has the wrong value.
    #[error("the request signature {0}")]
    BadParameters(&'static str),
    /// The signature does not cover a component it must cover.
    #[error("the request signature does not cover `{0}`")]
    NotCovered(String),
    /// The signing key is not (or no longer) trusted here.
    #[error("the request is signed with a key this service does not trust")]
    UnknownKey,
    /// The signature was made for another time.
    #[error("the request signature has expired or is not valid yet")]
    Expired,
    /// The signature does not match the request.
    #[error("the request signature does not match the request")]
    BadSignature,
    /// The body does not match its `Content-Digest`.
    #[error("the request body does not match its Content-Digest")]
    BodyMismatch,
    /// This exact signature was seen before.
    #[error("the request signature was already used (replayed request)")]
    Replayed,
    /// Signing failed (a header value that cannot be encoded).
    #[error("cannot sign the request: {0}")]
    Signing(String),
}

/// An Ed25519 key pair in PEM, for `dev` (generated at start) and
/// `shopgraph hop-keys` (written for production).
pub struct HopKeyPair {
    /// PKCS#8 `PRIVATE KEY` PEM: `HOP_SIGNING_KEY(_FILE)` of the signers.
    pub private_pem: String,
    /// SPKI `PUBLIC KEY` PEM: one entry of `HOP_TRUSTED_KEYS(_FILE)`.
    pub public_pem: String,
}

impl HopKeyPair {
    /// A fresh random key pair.
    pub fn generate() -> Self {
        let pair = ed25519_compact::KeyPair::generate();
        Self {
            private_pem: pair.sk.to_pem(),
            public_pem: pair.pk.to_pem(),
        }
    }

    /// The pair `dev` signs and verifies with in this process (generated
    /// at first use). Tests hand it to the `serve` processes they start,
    /// so the whole test topology shares one trusted key.
    pub fn of_this_process() -> &'static Self {
        &dev_pair().0
    }

    /// The variables that give a process this pair: it signs with the
    /// private key and trusts the public one.
    pub fn env_vars(&self) -> [(&'static str, &str); 2] {
        [
            ("HOP_SIGNING_KEY", self.private_pem.as_str()),
            ("HOP_TRUSTED_KEYS", self.public_pem.as_str()),
        ]
    }
}

/// The hop's keys and window, from the environment.
#[derive(Clone)]
pub struct HopSettings {
    /// The key this process signs its hop requests with, if it makes any.
    pub signing_key: Option<SecretKey>,
    /// The public keys whose signatures this process accepts.
    pub trusted_keys: Vec<PublicKey>,
    /// How long a signature stays valid (`HOP_SIGNATURE_TTL`).
    pub validity: Duration,
}

impl std::fmt::Debug for HopSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HopSettings")
            .field(
                "signing_key",
                &self.signing_key.as_ref().map(SigningKey::key_id),
            )
            .field(
                "trusted_keys",
                &self
                    .trusted_keys
                    .iter()
                    .map(VerifyingKey::key_id)
                    .collect::<Vec<_>>(),
            )
            .field("validity", &self.validity)
            .finish()
    }
}

impl HopSettings {
    /// Reads `HOP_SIGNING_KEY_FILE` / `HOP_SIGNING_KEY`,
    /// `HOP_TRUSTED_KEYS_FILE` / `HOP_TRUSTED_KEYS` and `HOP_SIGNATURE_TTL`.
    ///
    /// In [`RunMode::Dev`] a process without a signing key uses the
    /// process's dev key pair (generated once, at first use) and trusts its
    /// public key, so `shopgraph dev` signs and verifies every hop with the
    /// same code as production. In [`RunMode::Serve`] nothing is generated:
    /// [`HopSettings::require_signer`] and [`HopSettings::require_verifier`]
    /// fail naming the variable a role needs.
    pub fn from_env(env: &Env, mode: RunMode) -> Result<Self, ConfigError> {
        let mut signing_key = match pem_setting(env, "HOP_SIGNING_KEY_FILE", "HOP_SIGNING_KEY")? {
            Some((var, pem)) => Some(
                SecretKey::from_pem(&AlgorithmName::Ed25519, pem.trim())
                    .map_err(|_| invalid(var, "<key>", "an Ed25519 private key in PKCS#8 PEM"))?,
            ),
            None => None,
        };
        let mut trusted_keys = match pem_setting(env, "HOP_TRUSTED_KEYS_FILE", "HOP_TRUSTED_KEYS")?
        {
            Some((var, pem)) => parse_public_keys(var, &pem)?,
            None => Vec::new(),
        };
        let validity = env.duration_or("HOP_SIGNATURE_TTL", DEFAULT_VALIDITY)?;
        if validity < Duration::from_secs(1) || validity > MAX_VALIDITY {
            return Err(invalid(
                "HOP_SIGNATURE_TTL",
                &humantime::format_duration(validity).to_string(),
                "a duration between 1s and 5m",
            ));
        }
        if mode == RunMode::Dev && signing_key.is_none() {
            let (_, dev) = dev_pair();
            trusted_keys.push(dev.public_key());
            signing_key = Some(dev.clone());
        }
        Ok(Self {
            signing_key,
            trusted_keys,
            validity,
        })
    }

    /// The signer of a process that sends hop requests (the router; basket
    /// and payment, which call other subgraphs), or the error naming the
    /// missing key.
    pub fn require_signer(&self) -> Result<HopSigner, ConfigError> {
        self.signing_key
            .clone()
            .map(|key| HopSigner::new(key, self.validity))
            .ok_or_else(|| ConfigError::Missing {
                var: "HOP_SIGNING_KEY_FILE".into(),
                expected: "this service signs its requests to subgraphs: a file holding an \
                           Ed25519 private key in PEM (or HOP_SIGNING_KEY with the PEM itself); \
                           `shopgraph hop-keys` makes one"
                    .into(),
            })
    }

    /// The verifier of a subgraph named `audience`, or the error naming
    /// the missing keys: a subgraph in `serve` takes no request it cannot
    /// verify, so it does not start without them.
    pub fn require_verifier(&self, audience: &str) -> Result<HopVerifier, ConfigError> {
        if self.trusted_keys.is_empty() {
            return Err(ConfigError::Missing {
                var: "HOP_TRUSTED_KEYS_FILE".into(),
                expected: "a subgraph in `serve` only accepts requests signed by the router or \
                           another subgraph: a file holding their Ed25519 public keys in PEM (or \
                           HOP_TRUSTED_KEYS with the PEM itself)"
                    .into(),
            });
        }
        Ok(HopVerifier::new(
            audience,
            self.trusted_keys.clone(),
            self.validity,
        ))
    }
}

/// The dev key pair: one per process, so every service of `shopgraph dev`
/// (and of an in-process test) trusts every other.
fn dev_pair() -> &'static (HopKeyPair, SecretKey) {
    static DEV_PAIR: std::sync::OnceLock<(HopKeyPair, SecretKey)> = std::sync::OnceLock::new();
    DEV_PAIR.get_or_init(|| {
        let pair = ed25519_compact::KeyPair::generate();
        let secret = SecretKey::from_bytes(&AlgorithmName::Ed25519, pair.sk.seed().as_ref())
            .unwrap_or_else(|_| unreachable!("a generated Ed25519 seed is 32 bytes"));
        let pems = HopKeyPair {
            private_pem: pair.sk.to_pem(),
            public_pem: pair.pk.to_pem(),
        };
        (pems, secret)
    })
}

/// A PEM setting given either as a file (`<VAR>_FILE`, preferred: secrets
/// mounted as files stay out of `/proc/<pid>/environ`) or as a value.
fn pem_setting(
    env: &Env,
    file_var: &'static str,
    var: &'static str,
) -> Result<Option<(&'static str, String)>, ConfigError> {
    match (env.raw(file_var), env.raw(var)) {
        (Some(_), Some(_)) => Err(invalid(
            var,
            "<both set>",
            &format!("either {file_var} or {var}, not both"),
        )),
        (Some(path), None) => std::fs::read_to_string(path)
            .map(|pem| Some((file_var, pem)))
            .map_err(|err| invalid(file_var, path, &format!("a readable PEM file ({err})"))),
        (None, Some(pem)) => Ok(Some((var, pem.to_owned()))),
        (None, None) => Ok(None),
    }
}

/// Every `PUBLIC KEY` block of `pem` (one or more, for rotation).
fn parse_public_keys(var: &str, pem: &str) -> Result<Vec<PublicKey>, ConfigError> {
    const BEGIN: &str = "-----BEGIN PUBLIC KEY-----";
    const END: &str = "-----END PUBLIC KEY-----";
    let mut keys = Vec::new();
    let mut rest = pem;
    while let Some(start) = rest.find(BEGIN) {
        let Some(end) = rest[start..].find(END) else {
            break;
        };
        let block = &rest[start..start + end + END.len()];
        let key = PublicKey::from_pem(&AlgorithmName::Ed25519, block)
            .map_err(|_| invalid(var, "<key>", "Ed25519 public keys in PEM (SPKI)"))?;
        keys.push(key);
        rest = &rest[start + end + END.len()..];
    }
    // Nothing read, or a block left over that never ended.
    if keys.is_empty() || rest.contains("-----BEGIN") {
        return Err(invalid(
            var,
            "<keys>",
            "one or more Ed25519 public keys in PEM (SPKI), `-----BEGIN PUBLIC KEY-----` blocks",
        ));
    }
    Ok(keys)
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_secs())
}

/// A request on the hop, reassembled for `httpsig` (which signs and
/// verifies whole `http::Request`s): the body is a cheap `Bytes` clone.
fn probe(method: &Method, uri: &Uri, headers: &HeaderMap, body: &Bytes) -> Request<Full<Bytes>> {
    let mut request = Request::new(Full::new(body.clone()));
    *request.method_mut() = method.clone();
    *request.uri_mut() = uri.clone();
    *request.headers_mut() = headers.clone();
    request
}

/// Signs hop requests with this process's private key.
#[derive(Clone)]
pub struct HopSigner {
    key: SecretKey,
    key_id: String,
    validity: Duration,
}

impl std::fmt::Debug for HopSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HopSigner")
            .field("keyid", &self.key_id)
            .finish_non_exhaustive()
    }
}

impl HopSigner {
    /// A signer with `key`, each signature valid for `validity`.
    pub fn new(key: SecretKey, validity: Duration) -> Self {
        Self {
            key_id: SigningKey::key_id(&key),
            key,
            validity,
        }
    }

    /// The id verifiers know this signer's public key by.
    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    /// Adds `Content-Digest`, `Signature-Input` and `Signature` to
    /// `headers` for a request of `method` to `uri` with `body`, addressed
    /// to the subgraph `audience`. Call it last, after every identity
    /// header is in place; any signature already there is replaced.
    pub async fn sign(
        &self,
        method: &Method,
        uri: &Uri,
        headers: &mut HeaderMap,
        body: &Bytes,
        audience: &str,
    ) -> Result<(), HopError> {
        self.sign_at(method, uri, headers, body, audience, unix_now())
            .await
    }

    /// [`HopSigner::sign`] as of `created` (tests sign in the past).
    pub async fn sign_at(
        &self,
        method: &Method,
        uri: &Uri,
        headers: &mut HeaderMap,
        body: &Bytes,
        audience: &str,
        created: u64,
    ) -> Result<(), HopError> {
        let signing = |err: &dyn std::fmt::Display| HopError::Signing(err.to_string());
        headers.remove(SIGNATURE);
        headers.remove(SIGNATURE_INPUT);
        let components = REQUIRED_COMPONENTS
            .iter()
            .copied()
            .chain(
                IDENTITY_HEADERS
                    .iter()
                    .copied()
                    .filter(|name| headers.contains_key(*name)),
            )
            .map(HttpMessageComponentId::try_from)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|err| signing(&err))?;
        let mut params = HttpSignatureParams::try_new(&components).map_err(|err| signing(&err))?;
        params
            .set_created(created)
            .set_expires(created + self.validity.as_secs())
            .set_key_info(&self.key)
            .set_random_nonce()
            .set_tag(audience);
        let mut request = probe(method, uri, headers, body)
            .set_content_digest(&ContentDigestType::Sha256)
            .await
            .map_err(|err| signing(&err))?;
        request
            .set_message_signature(&params, &self.key, Some(SIGNATURE_LABEL))
            .await
            .map_err(|err| signing(&err))?;
        for name in [CONTENT_DIGEST, SIGNATURE_INPUT, SIGNATURE] {
            let value = request
                .headers()
                .get(name)
                .cloned()
                .ok_or_else(|| HopError::Signing(format!("no {name} header was made")))?;
            headers.insert(HeaderName::from_static(name), value);
        }
        Ok(())
    }
}

/// Who signed a verified hop request: the key's id, for logs and metrics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedBy {
    /// The `keyid` of the public key that verified the signature.
    pub key_id: String,
}

/// Checks hop requests addressed to one subgraph against the trusted
/// public keys (see the module docs for every check).
pub struct HopVerifier {
    audience: String,
    keys: Vec<(String, PublicKey)>,
    validity: Duration,
    replays: ReplayGuard,
}

impl std::fmt::Debug for HopVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HopVerifier")
            .field("audience", &self.audience)
            .field(
                "keys",
                &self.keys.iter().map(|(id, _)| id).collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

impl HopVerifier {
    /// A verifier for requests to `audience`, accepting signatures by any
    /// of `keys` that are at most `validity` long.
    pub fn new(audience: &str, keys: Vec<PublicKey>, validity: Duration) -> Self {
        Self {
            audience: audience.to_owned(),
            keys: keys.into_iter().map(|key| (key.key_id(), key)).collect(),
            validity,
            // The latest `expires` accepted: `created` up to one skew
            // ahead, valid up to `validity` plus one skew.
            replays: ReplayGuard::new(validity + 2 * CLOCK_SKEW),
        }
    }

    /// Whether `headers` carry a hop signature at all (a request without
    /// one may still be allowed where direct tokens are accepted).
    pub fn is_signed(headers: &HeaderMap) -> bool {
        headers.contains_key(SIGNATURE) || headers.contains_key(SIGNATURE_INPUT)
    }

    /// Verifies the hop signature of a request of `method` to `uri` with
    /// `headers` and `body`; only then may its identity headers be read.
    pub async fn verify(
        &self,
        method: &Method,
        uri: &Uri,
        headers: &HeaderMap,
        body: &Bytes,
    ) -> Result<SignedBy, HopError> {
        self.verify_at(method, uri, headers, body, unix_now()).await
    }

    async fn verify_at(
        &self,
        method: &Method,
        uri: &Uri,
        headers: &HeaderMap,
        body: &Bytes,
        now: u64,
    ) -> Result<SignedBy, HopError> {
        if !headers.contains_key(SIGNATURE) || !headers.contains_key(SIGNATURE_INPUT) {
            return Err(HopError::Unsigned);
        }
        for name in [SIGNATURE, SIGNATURE_INPUT, CONTENT_DIGEST] {
            if headers.get_all(name).iter().count() > 1 {
                return Err(HopError::Malformed(format!("more than one {name} header")));
            }
        }
        let request = probe(method, uri, headers, body);
        let all_params = request
            .get_signature_params()
            .map_err(|err| HopError::Malformed(err.to_string()))?;
        // Exactly our one signature: a second one (an old signature copied
        // in, say) must not be the one that verifies while ours is checked.
        let params = match (all_params.len(), all_params.get(SIGNATURE_LABEL)) {
            (1, Some(params)) => params,
            _ => {
                return Err(HopError::Malformed(format!(
                    "expected exactly one signature, labelled `{SIGNATURE_LABEL}`"
                )));
            }
        };
        let (key_id, key) = self.check_params(params, headers, now)?;
        request
            .verify_message_signatures(&[(key, Some(key_id))])
            .await
            .map_err(|err| HopError::Malformed(err.to_string()))?
            .pop()
            .ok_or(HopError::BadSignature)?
            .map_err(|_| HopError::BadSignature)?;
        request
            .verify_content_digest()
            .await
            .map_err(|_| HopError::BodyMismatch)?;
        let nonce = params.nonce.as_deref().unwrap_or_default();
        let expires = params.expires.unwrap_or(now);
        if !self.replays.first_use(key_id, nonce, expires, now) {
            return Err(HopError::Replayed);
        }
        Ok(SignedBy {
            key_id: key_id.to_owned(),
        })
    }

    /// Every check that needs no cryptography, cheapest first; returns the
    /// key to verify with.
    fn check_params<'a>(
        &'a self,
        params: &HttpSignatureParams,
        headers: &HeaderMap,
        now: u64,
    ) -> Result<(&'a str, &'a PublicKey), HopError> {
        if params.tag.as_deref() != Some(self.audience.as_str()) {
            return Err(HopError::BadParameters(
                "is addressed to another service (tag)",
            ));
        }
        if params
            .alg
            .as_deref()
            .is_some_and(|alg| alg != AlgorithmName::Ed25519.as_str())
        {
            return Err(HopError::BadParameters(
                "uses an algorithm other than ed25519",
            ));
        }
        let (Some(created), Some(expires)) = (params.created, params.expires) else {
            return Err(HopError::BadParameters("needs `created` and `expires`"));
        };
        if expires < created || expires - created > self.validity.as_secs() + CLOCK_SKEW.as_secs() {
            return Err(HopError::BadParameters(
                "is valid for longer than this service allows",
            ));
        }
        if created > now + CLOCK_SKEW.as_secs() || expires < now {
            return Err(HopError::Expired);
        }
        if !params
            .nonce
            .as_deref()
            .is_some_and(|nonce| (16..=128).contains(&nonce.len()))
        {
            return Err(HopError::BadParameters("needs a nonce"));
        }
        let covered: HashSet<String> = params
            .covered_components
            .iter()
            .map(ToString::to_string)
            .collect();
        for component in REQUIRED_COMPONENTS.iter().copied().chain(
            IDENTITY_HEADERS
                .iter()
                .copied()
                .filter(|name| headers.contains_key(*name)),
        ) {
            if !covered.contains(&format!("\"{component}\"")) {
                return Err(HopError::NotCovered(component.to_owned()));
            }
        }
        let key_id = params
            .keyid
            .as_deref()
            .ok_or(HopError::BadParameters("needs a keyid"))?;
        self.keys
            .iter()
            .find(|(id, _)| id == key_id)
            .map(|(id, key)| (id.as_str(), key))
            .ok_or(HopError::UnknownKey)
    }
}

/// Remembers every signature seen until it expires, so each is accepted
/// once. Two generations, swapped every `period` (the longest a signature
/// can be valid): an entry lives at least one full period, and forgetting
/// costs nothing per request.
///
/// The memory is this process's: a request replayed to another replica of
/// the same subgraph within the window is not caught here (the window, the
/// `tag` and the network policy bound that case; see the README).
pub struct ReplayGuard {
    period: u64,
    state: Mutex<Generations>,
}

struct Generations {
    started: u64,
    current: HashSet<(Box<str>, Box<str>)>,
    previous: HashSet<(Box<str>, Box<str>)>,
}

impl ReplayGuard {
    /// A guard for signatures valid at most `period`.
    pub fn new(period: Duration) -> Self {
        Self {
            period: period.as_secs().max(1),
            // Started "long ago": the first use opens the first generation.
            state: Mutex::new(Generations {
                started: 0,
                current: HashSet::new(),
                previous: HashSet::new(),
            }),
        }
    }

    /// Records (`key_id`, `nonce`) and says whether it was new. A signature
    /// that expires beyond what the generations cover is refused (the
    /// verifier has already bounded `expires`, so this only guards misuse).
    pub fn first_use(&self, key_id: &str, nonce: &str, expires: u64, now: u64) -> bool {
        let mut state = self
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if now >= state.started + self.period {
            let skipped = now >= state.started + 2 * self.period;
            state.previous = std::mem::take(&mut state.current);
            if skipped {
                state.previous.clear();
            }
            state.started = now;
        }
        if expires > now + self.period {
            return false;
        }
        let entry = (Box::from(key_id), Box::from(nonce));
        if state.previous.contains(&entry) {
            return false;
        }
        state.current.insert(entry)
    }
}

/// The header value that tells a client a subgraph wants a hop signature
/// (sent with 401 answers beside `UNAUTHENTICATED`).
pub fn challenge() -> HeaderValue {
    HeaderValue::from_static("Signature realm=\"shopgraph-hop\"")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::{ADMIN_ROLE, Identity, Viewer, forward_identity};

    fn keys() -> (SecretKey, PublicKey) {
        let pair = HopKeyPair::generate();
        (
            SecretKey::from_pem(&AlgorithmName::Ed25519, &pair.private_pem).unwrap(),
            PublicKey::from_pem(&AlgorithmName::Ed25519, &pair.public_pem).unwrap(),
        )
    }

    fn admin() -> Identity {
        Identity::User(Viewer {
            user_id: "alice".into(),
            roles: vec![ADMIN_ROLE.into()],
        })
    }

    struct Signed {
        method: Method,
        uri: Uri,
        headers: HeaderMap,
        body: Bytes,
    }

    async fn signed(signer: &HopSigner, identity: &Identity, created: u64) -> Signed {
        let method = Method::POST;
        let uri: Uri = "http://127.0.0.1:4001/graphql".parse().unwrap();
        let body = Bytes::from_static(br#"{"query":"{ payments { totalCount } }"}"#);
        let mut headers = HeaderMap::new();
        headers.insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        forward_identity(identity, &mut headers);
        signer
            .sign_at(&method, &uri, &mut headers, &body, "payment", created)
            .await
            .unwrap();
        Signed {
            method,
            uri,
            headers,
            body,
        }
    }

    /// The server side sees the origin form of the target.
    fn at_server(request: &Signed) -> Uri {
        request
            .uri
            .path_and_query()
            .unwrap()
            .as_str()
            .parse()
            .unwrap()
    }

    async fn verify(
        verifier: &HopVerifier,
        request: &Signed,
        now: u64,
    ) -> Result<SignedBy, HopError> {
        verifier
            .verify_at(
                &request.method,
                &at_server(request),
                &request.headers,
                &request.body,
                now,
            )
            .await
    }

    #[tokio::test]
    async fn a_signed_request_verifies_once() {
        let (secret, public) = keys();
        let signer = HopSigner::new(secret, DEFAULT_VALIDITY);
        let verifier = HopVerifier::new("payment", vec![public], DEFAULT_VALIDITY);
        let now = unix_now();
        let request = signed(&signer, &admin(), now).await;
        let by = verify(&verifier, &request, now).await.unwrap();
        assert_eq!(by.key_id, signer.key_id());
        assert!(matches!(
            verify(&verifier, &request, now).await,
            Err(HopError::Replayed)
        ));
    }

    #[tokio::test]
    async fn every_tampering_is_refused() {
        let (secret, public) = keys();
        let signer = HopSigner::new(secret, DEFAULT_VALIDITY);
        let verifier = HopVerifier::new("payment", vec![public.clone()], DEFAULT_VALIDITY);
        let now = unix_now();

        let mut request = signed(&signer, &Identity::Anonymous, now).await;
        request
            .headers
            .insert(USER_ID_HEADER, HeaderValue::from_static("alice"));
        assert!(matches!(
            verify(&verifier, &request, now).await,
            Err(HopError::NotCovered(header)) if header == USER_ID_HEADER
        ));

        let mut request = signed(&signer, &admin(), now).await;
        request
            .headers
            .insert(USER_ID_HEADER, HeaderValue::from_static("bob"));
        assert!(matches!(
            verify(&verifier, &request, now).await,
            Err(HopError::BadSignature)
        ));

        let mut request = signed(&signer, &admin(), now).await;
        request.body = Bytes::from_static(br#"{"query":"{ payments { items { id } } }"}"#);
        assert!(matches!(
            verify(&verifier, &request, now).await,
            Err(HopError::BodyMismatch)
        ));

        let mut request = signed(&signer, &admin(), now).await;
        request.method = Method::PUT;
        assert!(matches!(
            verify(&verifier, &request, now).await,
            Err(HopError::BadSignature)
        ));

        let request = signed(&signer, &admin(), now).await;
        let other = HopVerifier::new("product", vec![public.clone()], DEFAULT_VALIDITY);
        assert!(matches!(
            verify(&other, &request, now).await,
            Err(HopError::BadParameters(_))
        ));

        let old = signed(&signer, &admin(), now - 120).await;
        assert!(matches!(
            verify(&verifier, &old, now).await,
            Err(HopError::Expired)
        ));
        let future = signed(&signer, &admin(), now + 60).await;
        assert!(matches!(
            verify(&verifier, &future, now).await,
            Err(HopError::Expired)
        ));

        let mut unsigned = signed(&signer, &admin(), now).await;
        unsigned.headers.remove(SIGNATURE);
        unsigned.headers.remove(SIGNATURE_INPUT);
        assert!(matches!(
            verify(&verifier, &unsigned, now).await,
            Err(HopError::Unsigned)
        ));

        // A second, valid-looking signature beside ours.
        let mut doubled = signed(&signer, &admin(), now).await;
        let copy = signed(&signer, &admin(), now).await;
        let input =
            copy.headers[SIGNATURE_INPUT]
                .to_str()
                .unwrap()
                .replacen("shopgraph=", "other=", 1);
        let signature =
            copy.headers[SIGNATURE]
                .to_str()
                .unwrap()
                .replacen("shopgraph=", "other=", 1);
        let joined = |name: &str, extra: String| {
            HeaderValue::from_str(&format!(
                "{}, {extra}",
                doubled.headers[name].to_str().unwrap()
            ))
            .unwrap()
        };
        let (input, signature) = (joined(SIGNATURE_INPUT, input), joined(SIGNATURE, signature));
        doubled.headers.insert(SIGNATURE_INPUT, input);
        doubled.headers.insert(SIGNATURE, signature);
        assert!(matches!(
            verify(&verifier, &doubled, now).await,
            Err(HopError::Malformed(_))
        ));
    }

    #[tokio::test]
    async fn keys_rotate_by_trusting_old_and_new() {
        let (old_secret, old_public) = keys();
        let (new_secret, new_public) = keys();
        let old = HopSigner::new(old_secret, DEFAULT_VALIDITY);
        let new = HopSigner::new(new_secret, DEFAULT_VALIDITY);
        let now = unix_now();
        let both = HopVerifier::new(
            "payment",
            vec![old_public, new_public.clone()],
            DEFAULT_VALIDITY,
        );
        verify(&both, &signed(&old, &admin(), now).await, now)
            .await
            .unwrap();
        verify(&both, &signed(&new, &admin(), now).await, now)
            .await
            .unwrap();
        let rotated = HopVerifier::new("payment", vec![new_public], DEFAULT_VALIDITY);
        assert!(matches!(
            verify(&rotated, &signed(&old, &admin(), now).await, now).await,
            Err(HopError::UnknownKey)
        ));
        verify(&rotated, &signed(&new, &admin(), now).await, now)
            .await
            .unwrap();
    }

    #[test]
    fn settings_fail_closed_in_serve_and_read_files_or_values() {
        let pair = HopKeyPair::generate();
        let second = HopKeyPair::generate();
        let empty = Env::from_pairs::<&str, &str>([]);
        let serve = HopSettings::from_env(&empty, RunMode::Serve).unwrap();
        assert!(matches!(
            serve.require_signer(),
            Err(ConfigError::Missing { var, .. }) if var == "HOP_SIGNING_KEY_FILE"
        ));
        assert!(matches!(
            serve.require_verifier("product"),
            Err(ConfigError::Missing { var, .. }) if var == "HOP_TRUSTED_KEYS_FILE"
        ));
        // `dev` signs with its own pair and trusts it.
        let dev = HopSettings::from_env(&empty, RunMode::Dev).unwrap();
        let signer = dev.require_signer().unwrap();
        assert_eq!(dev.trusted_keys[0].key_id(), signer.key_id());

        let dir = std::env::temp_dir().join(format!("hop-keys-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let trusted = dir.join("trusted.pem");
        std::fs::write(
            &trusted,
            format!("{}\n{}", pair.public_pem, second.public_pem),
        )
        .unwrap();
        let env = Env::from_pairs([
            ("HOP_SIGNING_KEY", pair.private_pem.as_str()),
            ("HOP_TRUSTED_KEYS_FILE", trusted.to_str().unwrap()),
            ("HOP_SIGNATURE_TTL", "10s"),
        ]);
        let settings = HopSettings::from_env(&env, RunMode::Serve).unwrap();
        assert_eq!(settings.trusted_keys.len(), 2);
        assert_eq!(settings.validity, Duration::from_secs(10));
        assert_eq!(
            settings.require_signer().unwrap().key_id(),
            settings.trusted_keys[0].key_id()
        );
        std::fs::remove_dir_all(&dir).ok();

        for (var, value) in [
            ("HOP_SIGNING_KEY", "not a key"),
            ("HOP_TRUSTED_KEYS", pair.private_pem.as_str()),
            ("HOP_SIGNATURE_TTL", "1h"),
            ("HOP_TRUSTED_KEYS_FILE", "/nonexistent/keys.pem"),
        ] {
            let env = Env::from_pairs([(var, value)]);
            assert!(
                matches!(
                    HopSettings::from_env(&env, RunMode::Dev),
                    Err(ConfigError::Invalid { .. })
                ),
                "{var}={value} must be refused"
            );
        }
    }

    #[test]
    fn the_replay_guard_forgets_only_expired_signatures() {
        let guard = ReplayGuard::new(Duration::from_secs(35));
        let t = 1_000_000;
        assert!(guard.first_use("k", "n1", t + 30, t));
        assert!(!guard.first_use("k", "n1", t + 30, t + 20));
        // One swap later it is still remembered.
        assert!(!guard.first_use("k", "n1", t + 30, t + 36));
        assert!(guard.first_use("k", "n2", t + 66, t + 36));
        // Two periods later it could no longer verify anyway.
        assert!(guard.first_use("k", "n1", t + 120, t + 110));
    }
}

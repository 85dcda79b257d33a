//! Who a request counts against: [`ClientKey`] and the [`KeyResolver`] that
//! picks it from the request.
//!
//! Precedence: the verified JWT subject, else the `x-api-key` header (kept
//! only as a SHA-256 digest), else the client IP (a configured trusted proxy
//! header, else the TCP peer address).

use std::fmt;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, Once};

use axum::extract::ConnectInfo;
use http::{HeaderMap, HeaderName, Request};
use sha2::{Digest, Sha256};

/// The header API clients identify themselves with.
pub const API_KEY_HEADER: &str = "x-api-key";

/// Returns the subject of a valid bearer token of the request (its
/// extensions carry what an earlier layer verified; its headers the
/// token), or `None` (no token, or one that does not verify). The router
/// passes its own verifier, so an unverified `sub` claim can never pick
/// someone else's budget.
pub type SubjectResolver =
    Arc<dyn Fn(&http::Extensions, &HeaderMap) -> Option<String> + Send + Sync>;

/// The identity a request's budget belongs to.
///
/// It is the key of both the in-memory and the Redis limiter; its
/// [`Display`](fmt::Display) form is what logs show and never contains a raw
/// API key.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ClientKey {
    /// The `sub` claim of a verified JWT: one budget per user, whatever
    /// device or address they come from.
    Subject(String),
    /// A client identified by its `x-api-key` header.
    ApiKey(ApiKeyDigest),
    /// An anonymous client, by address (IPv6 by its /64 network, the block
    /// one subscriber usually gets, so rotating addresses inside it does not
    /// buy a new budget).
    Ip(IpAddr),
    /// No subject, API key, trusted header or peer address: only possible
    /// when the server was not started with connect info. These requests
    /// share one budget, and a warning says so once.
    Unknown,
}

impl ClientKey {
    /// A key for the raw `x-api-key` value; only its digest is kept.
    pub fn api_key(raw: &[u8]) -> Self {
        Self::ApiKey(ApiKeyDigest::of(raw))
    }

    /// A key for a client address, normalised: IPv4-mapped IPv6 becomes
    /// IPv4, other IPv6 addresses are reduced to their /64 network.
    pub fn ip(addr: IpAddr) -> Self {
        Self::Ip(match addr.to_canonical() {
            IpAddr::V4(v4) => IpAddr::V4(v4),
            IpAddr::V6(v6) => {
                let network = u128::from(v6) & !((1u128 << 64) - 1);
                IpAddr::V6(Ipv6Addr::from(network))
            }
        })
    }

    /// The kind of key, for metric labels (bounded cardinality).
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Subject(_) => "subject",
            Self::ApiKey(_) => "api_key",
            Self::Ip(_) => "ip",
            Self::Unknown => "unknown",
        }
    }
}

impl fmt::Display for ClientKey {
    /// `sub:<subject>`, `key:<sha256 hex>`, `ip:<address>` or `unknown`:
    /// the suffix of the Redis key and the form logs show.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Subject(subject) => write!(f, "sub:{subject}"),
            Self::ApiKey(digest) => write!(f, "key:{digest}"),
            Self::Ip(addr) => write!(f, "ip:{addr}"),
            Self::Unknown => f.write_str("unknown"),
        }
    }
}

/// The SHA-256 of an API key, hex-encoded: the raw key, a secret, never
/// reaches Redis or a log line.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ApiKeyDigest(String);

impl ApiKeyDigest {
    /// Hashes `raw`.
    pub fn of(raw: &[u8]) -> Self {
        let digest = Sha256::digest(raw);
        let mut hex = String::with_capacity(digest.len() * 2);
        for byte in digest {
            hex.push(char::from(HEX[usize::from(byte >> 4)]));
            hex.push(char::from(HEX[usize::from(byte & 0x0f)]));
        }
        Self(hex)
    }

    /// The lowercase hex digest.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ApiKeyDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// Picks the [`ClientKey`] of a request. Cheap to clone (one `Arc`).
#[derive(Clone)]
pub struct KeyResolver {
    subject: SubjectResolver,
    trusted_proxy_header: Option<HeaderName>,
}

impl fmt::Debug for KeyResolver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyResolver")
            .field("trusted_proxy_header", &self.trusted_proxy_header)
            .finish_non_exhaustive()
    }
}

impl KeyResolver {
    /// `subject` verifies the bearer token; `trusted_proxy_header` (from
    /// `RATE_LIMIT_TRUSTED_PROXY_HEADER`) names the header a proxy in front
    /// of the router writes the client address into.
    pub fn new(subject: SubjectResolver, trusted_proxy_header: Option<HeaderName>) -> Self {
        Self {
            subject,
            trusted_proxy_header,
        }
    }

    /// The key `request` counts against.
    pub fn resolve<B>(&self, request: &Request<B>) -> ClientKey {
        let headers = request.headers();
        if let Some(subject) =
            (self.subject)(request.extensions(), headers).filter(|s| !s.is_empty())
        {
            return ClientKey::Subject(subject);
        }
        if let Some(raw) = headers
            .get(API_KEY_HEADER)
            .map(|value| value.as_bytes())
            .filter(|raw| !raw.iter().all(u8::is_ascii_whitespace))
        {
            return ClientKey::api_key(raw);
        }
        if let Some(addr) = self
            .trusted_proxy_header
            .as_ref()
            .and_then(|name| forwarded_address(headers, name))
        {
            return ClientKey::ip(addr);
        }
        if let Some(ConnectInfo(peer)) = request.extensions().get::<ConnectInfo<SocketAddr>>() {
            return ClientKey::ip(peer.ip());
        }
        static MISSING_PEER: Once = Once::new();
        MISSING_PEER.call_once(|| {
            tracing::warn!(
                "rate limiting: a request has no peer address (serve with connect info); \
                 such requests share one budget"
            );
        });
        ClientKey::Unknown
    }
}

/// The client address in a proxy header: the first element of a list
/// (`x-forwarded-for: client, proxy1, proxy2`), the `for=` parameter of an
/// RFC 7239 `forwarded` header, with an optional port. `None` when absent
/// or unparseable, so the caller falls back to the peer address.
fn forwarded_address(headers: &HeaderMap, name: &HeaderName) -> Option<IpAddr> {
    let value = headers.get(name)?.to_str().ok()?;
    let first = value.split(',').next()?.trim();
    let first = if name.as_str() == "forwarded" {
        first.split(';').find_map(|pair| {
            let (key, value) = pair.split_once('=')?;
            key.trim()
                .eq_ignore_ascii_case("for")
                .then_some(value.trim())
        })?
    } else {
        first
    };
    parse_address(first.trim_matches('"'))
}

/// `1.2.3.4`, `1.2.3.4:80`, `::1`, `[::1]` or `[::1]:80`.
fn parse_address(text: &str) -> Option<IpAddr> {
    if let Ok(addr) = text.parse::<IpAddr>() {
        return Some(addr);
    }
    if let Ok(addr) = text.parse::<SocketAddr>() {
        return Some(addr.ip());
    }
    text.strip_prefix('[')
        .and_then(|rest| rest.strip_suffix(']'))
        .and_then(|inner| inner.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolver(subject: Option<&'static str>, header: Option<&'static str>) -> KeyResolver {
        let subject: SubjectResolver =
            Arc::new(move |_: &http::Extensions, headers: &HeaderMap| {
                // Stands in for the router's verifier: only this exact token is valid.
                let valid = headers
                    .get(http::header::AUTHORIZATION)
                    .is_some_and(|value| value == "Bearer valid");
                subject.filter(|_| valid).map(str::to_owned)
            });
        KeyResolver::new(subject, header.map(HeaderName::from_static))
    }

    fn request(headers: &[(&str, &str)], peer: Option<&str>) -> Request<()> {
        let mut builder = Request::builder().uri("/graphql");
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        let mut request = builder.body(()).unwrap();
        if let Some(peer) = peer {
            let addr: SocketAddr = peer.parse().unwrap();
            request.extensions_mut().insert(ConnectInfo(addr));
        }
        request
    }

    #[test]
    fn a_verified_subject_wins_over_api_key_and_address() {
        let keys = resolver(Some("user-1"), Some("x-forwarded-for"));
        let req = request(
            &[
                ("authorization", "Bearer valid"),
                ("x-api-key", "secret"),
                ("x-forwarded-for", "203.0.113.9"),
            ],
            Some("10.0.0.1:5000"),
        );
        assert_eq!(keys.resolve(&req), ClientKey::Subject("user-1".into()));
    }

    #[test]
    fn an_invalid_token_falls_back_to_the_api_key_digest() {
        let keys = resolver(Some("user-1"), None);
        let req = request(
            &[("authorization", "Bearer forged"), ("x-api-key", "secret")],
            Some("10.0.0.1:5000"),
        );
        let key = keys.resolve(&req);
        // sha256("secret")
        let digest = "2bb80d537b1da3e38bd30361aa855686bde0eacd7162fef6a25fe97bf527a25b";
        assert_eq!(key, ClientKey::ApiKey(ApiKeyDigest(digest.into())));
        assert_eq!(key.to_string(), format!("key:{digest}"));
        assert!(!format!("{key} {key:?}").contains("secret"));
    }

    #[test]
    fn without_subject_or_api_key_the_trusted_header_names_the_client() {
        let keys = resolver(None, Some("x-forwarded-for"));
        let req = request(
            &[("x-forwarded-for", " 203.0.113.9, 10.0.0.2 , 10.0.0.3")],
            Some("10.0.0.1:5000"),
        );
        assert_eq!(
            keys.resolve(&req),
            ClientKey::Ip("203.0.113.9".parse().unwrap())
        );

        let keys = resolver(None, Some("x-real-ip"));
        let req = request(&[("x-real-ip", "198.51.100.7")], Some("10.0.0.1:5000"));
        assert_eq!(
            keys.resolve(&req),
            ClientKey::Ip("198.51.100.7".parse().unwrap())
        );
    }

    #[test]
    fn an_unconfigured_proxy_header_is_ignored() {
        let keys = resolver(None, None);
        let req = request(&[("x-forwarded-for", "203.0.113.9")], Some("10.0.0.1:5000"));
        assert_eq!(
            keys.resolve(&req),
            ClientKey::Ip("10.0.0.1".parse().unwrap())
        );
    }

    #[test]
    fn a_missing_or_garbled_proxy_header_falls_back_to_the_peer() {
        let keys = resolver(None, Some("x-forwarded-for"));
        let absent = request(&[], Some("10.0.0.1:5000"));
        assert_eq!(
            keys.resolve(&absent),
            ClientKey::Ip("10.0.0.1".parse().unwrap())
        );
        let garbled = request(&[("x-forwarded-for", "unknown")], Some("10.0.0.1:5000"));
        assert_eq!(
            keys.resolve(&garbled),
            ClientKey::Ip("10.0.0.1".parse().unwrap())
        );
    }

    #[test]
    fn forwarded_header_ports_and_brackets_are_understood() {
        let keys = resolver(None, Some("forwarded"));
        let req = request(
            &[(
                "forwarded",
                "for=\"[2001:db8::1]:4711\";proto=https, for=10.0.0.2",
            )],
            None,
        );
        assert_eq!(
            keys.resolve(&req),
            ClientKey::Ip("2001:db8::".parse().unwrap())
        );

        let keys = resolver(None, Some("x-forwarded-for"));
        let req = request(&[("x-forwarded-for", "203.0.113.9:8080")], None);
        assert_eq!(
            keys.resolve(&req),
            ClientKey::Ip("203.0.113.9".parse().unwrap())
        );
    }

    #[test]
    fn ipv6_clients_share_their_64_and_mapped_ipv4_is_ipv4() {
        let a = ClientKey::ip("2001:db8:1:2:aaaa::1".parse().unwrap());
        let b = ClientKey::ip("2001:db8:1:2:bbbb::2".parse().unwrap());
        let other = ClientKey::ip("2001:db8:1:3::1".parse().unwrap());
        assert_eq!(a, b);
        assert_ne!(a, other);
        assert_eq!(
            ClientKey::ip("::ffff:192.0.2.1".parse().unwrap()),
            ClientKey::Ip("192.0.2.1".parse().unwrap())
        );
    }

    #[test]
    fn no_address_at_all_is_the_shared_unknown_key() {
        let keys = resolver(None, None);
        assert_eq!(keys.resolve(&request(&[], None)), ClientKey::Unknown);
    }

    #[test]
    fn empty_api_keys_do_not_count_as_keys() {
        let keys = resolver(None, None);
        let req = request(&[("x-api-key", "  ")], Some("10.0.0.1:5000"));
        assert_eq!(
            keys.resolve(&req),
            ClientKey::Ip("10.0.0.1".parse().unwrap())
        );
    }
}

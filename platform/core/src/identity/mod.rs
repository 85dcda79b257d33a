//! Who is calling: the caller's identity, how it travels between services,
//! and the one JWT verifier every process uses.
//!
//! In production clients call the router, which verifies their
//! `Authorization: Bearer <JWT>` with [`JwtVerifier`] and forwards the
//! verified caller to each subgraph in two headers, [`USER_ID_HEADER`] and
//! [`USER_ROLES_HEADER`] ([`forward_identity`] writes them,
//! [`forwarded_identity`] reads them) on a signed hop ([`crate::hop`]). A
//! subgraph reads the forwarded caller only from a request whose signature
//! it verified, and verifies a bearer token itself only where direct tokens
//! are accepted (`ACCEPT_DIRECT_TOKENS`; see the subgraph kit's `auth`).
//!
//! | item | role |
//! |---|---|
//! | [`Identity`], [`Viewer`] | the caller of one request, as every service sees it |
//! | [`jwt`] | [`JwtSettings`] from `JWT_*`, [`JwtVerifier`] (HS256, RS256/ES256 from a JWKS), [`TokenIssuer`] for `shopgraph token` and tests |
//! | [`forward_identity`], [`forwarded_identity`] | the router → subgraph hop |
//! | [`connection_init_authorization`] | the token a websocket client sends in `connection_init` |

pub mod jwt;

use axum::http::{HeaderMap, HeaderValue};
use serde_json::Value;

pub use jwt::{AuthSetupError, JwtSettings, JwtVerifier, TokenIssuer};

/// The role that may change the catalogue, refund payments and so on.
pub const ADMIN_ROLE: &str = "admin";

/// The header carrying the verified caller's user id from the router (or a
/// calling subgraph) to a subgraph.
pub const USER_ID_HEADER: &str = "x-shopgraph-user-id";

/// The header carrying the verified caller's roles, comma-separated, next
/// to [`USER_ID_HEADER`]; absent when the caller has no roles.
pub const USER_ROLES_HEADER: &str = "x-shopgraph-user-roles";

/// A verified caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Viewer {
    /// The token's subject: the user's id.
    pub user_id: String,
    /// Roles granted by the token (`admin`).
    pub roles: Vec<String>,
}

impl Viewer {
    /// A caller from verified claims. Refuses a subject or role that could not
    /// travel intact in the forwarded identity headers (empty, surrounding
    /// whitespace, control characters, a comma inside a role), so what a
    /// subgraph sees is exactly what the token said.
    pub fn from_claims(user_id: String, roles: Vec<String>) -> Result<Self, AuthError> {
        if !is_header_safe(&user_id) {
            return Err(AuthError::InvalidClaims(
                "the subject must be non-empty text without control characters or surrounding spaces",
            ));
        }
        if !roles
            .iter()
            .all(|role| is_header_safe(role) && !role.contains(','))
        {
            return Err(AuthError::InvalidClaims(
                "every role must be non-empty text without commas, control characters or surrounding spaces",
            ));
        }
        Ok(Self { user_id, roles })
    }

    /// Whether the caller may perform admin-only operations.
    pub fn is_admin(&self) -> bool {
        self.roles.iter().any(|role| role == ADMIN_ROLE)
    }
}

fn is_header_safe(value: &str) -> bool {
    !value.is_empty() && value.trim() == value && !value.chars().any(char::is_control)
}

/// The caller of one request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Identity {
    /// No credentials were presented.
    #[default]
    Anonymous,
    /// A verified user.
    User(Viewer),
}

/// Why credentials were refused.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// The header is not `Bearer <token>`.
    #[error("the Authorization header must be `Bearer <token>`")]
    MalformedHeader,
    /// Signature, expiry, issuer or audience check failed; the message says
    /// which in words (`jsonwebtoken`'s own names are enum variants).
    #[error("invalid token: {}", token_problem(.0))]
    InvalidToken(#[from] jsonwebtoken::errors::Error),
    /// The token verified, but its subject or roles are unusable.
    #[error("invalid token: {0}")]
    InvalidClaims(&'static str),
    /// The token is signed with an algorithm this verifier does not accept
    /// (only HS256 with the shared secret, RS256/ES256 with a published key).
    #[error("invalid token: the {0} algorithm is not accepted")]
    DisallowedAlgorithm(String),
    /// The token names a signing key (`kid`) that is not published, or
    /// names none where one is required.
    #[error("invalid token: unknown signing key")]
    UnknownKey,
    /// The forwarded identity headers are present but unreadable.
    #[error("the forwarded identity headers are malformed")]
    MalformedForwardedIdentity,
    /// A bearer token was sent straight to a subgraph that only takes the
    /// identity the router forwards.
    #[error(
        "this service does not accept tokens directly: send the request through the router, which verifies the token"
    )]
    DirectTokenRefused,
}

/// Why `jsonwebtoken` refused a token, in words a client developer can act on.
fn token_problem(err: &jsonwebtoken::errors::Error) -> String {
    use jsonwebtoken::errors::ErrorKind;
    match err.kind() {
        ErrorKind::ExpiredSignature => "it has expired".into(),
        ErrorKind::ImmatureSignature => "it is not valid yet (nbf is in the future)".into(),
        ErrorKind::InvalidSignature => "the signature does not match".into(),
        ErrorKind::InvalidIssuer => "it was issued by another issuer (iss)".into(),
        ErrorKind::InvalidAudience => "it is meant for another audience (aud)".into(),
        ErrorKind::InvalidSubject => "its subject (sub) is not accepted".into(),
        ErrorKind::MissingRequiredClaim(claim) => format!("the `{claim}` claim is missing"),
        ErrorKind::InvalidToken => "it is not a JSON Web Token".into(),
        ErrorKind::InvalidAlgorithm | ErrorKind::InvalidAlgorithmName => {
            "its algorithm does not match the key".into()
        }
        ErrorKind::Base64(_) | ErrorKind::Json(_) | ErrorKind::Utf8(_) => {
            "it is not a well-formed JSON Web Token".into()
        }
        _ => "it cannot be verified".into(),
    }
}

/// The token of an `Authorization: Bearer <token>` header value.
pub fn bearer_token(value: &HeaderValue) -> Result<&str, AuthError> {
    let value = value.to_str().map_err(|_| AuthError::MalformedHeader)?;
    value
        .strip_prefix("Bearer ")
        .or_else(|| value.strip_prefix("bearer "))
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or(AuthError::MalformedHeader)
}

/// A `connection_init` token that no HTTP header could carry.
#[derive(Debug, thiserror::Error)]
#[error("the token in connection_init must be text a header can carry")]
pub struct TokenNotText;

/// The `Authorization` header value a `connection_init` payload carries
/// (`Authorization`, `authorization`, `token` or `authToken`, with or
/// without the `Bearer ` scheme), if any; a token that cannot be a header
/// value is refused. The router and the subgraphs read websocket tokens
/// this one way. The keys are looked for at the top of the payload,
/// then inside its `headers` object: `{ headers: { Authorization } }` is
/// how many Apollo Client setups pass `connectionParams`.
pub fn connection_init_authorization(
    payload: Option<&Value>,
) -> Result<Option<HeaderValue>, TokenNotText> {
    const KEYS: [&str; 4] = ["Authorization", "authorization", "token", "authToken"];
    let from_payload = payload
        .and_then(|payload| {
            [Some(payload), payload.get("headers")]
                .into_iter()
                .flatten()
                .find_map(|place| {
                    KEYS.iter()
                        .find_map(|key| place.get(*key).and_then(Value::as_str))
                })
        })
        .map(|token| {
            let token = token.trim();
            // `get`, not `[..7]`: the payload is the client's, and a
            // non-ASCII token has no char boundary at byte 7 (slicing
            // there panicked, closing 1005 and printing the token).
            let has_scheme = token
                .get(..7)
                .is_some_and(|scheme| scheme.eq_ignore_ascii_case("bearer "));
            if has_scheme && token.len() > 7 {
                token.to_owned()
            } else {
                format!("Bearer {token}")
            }
        });
    from_payload
        .map(|value| HeaderValue::from_str(&value).map_err(|_| TokenNotText))
        .transpose()
}

/// Writes `identity` into `headers` as [`USER_ID_HEADER`] and
/// [`USER_ROLES_HEADER`], replacing any already there; for
/// [`Identity::Anonymous`] both are removed. A viewer whose id cannot be a
/// header value (only possible for one not built with
/// [`Viewer::from_claims`]) is forwarded as anonymous, never as someone else.
pub fn forward_identity(identity: &Identity, headers: &mut HeaderMap) {
    headers.remove(USER_ID_HEADER);
    headers.remove(USER_ROLES_HEADER);
    let Identity::User(viewer) = identity else {
        return;
    };
    let Ok(user_id) = HeaderValue::from_bytes(viewer.user_id.as_bytes()) else {
        tracing::warn!("a user id that is not a valid header value is forwarded as anonymous");
        return;
    };
    headers.insert(USER_ID_HEADER, user_id);
    // Roles that could not be read back intact are dropped: forwarding
    // fewer roles can only deny, never grant.
    let roles: Vec<&str> = viewer
        .roles
        .iter()
        .map(String::as_str)
        .filter(|role| is_header_safe(role) && !role.contains(','))
        .collect();
    if !roles.is_empty()
        && let Ok(roles) = HeaderValue::from_bytes(roles.join(",").as_bytes())
    {
        headers.insert(USER_ROLES_HEADER, roles);
    }
}

/// Reads the identity forwarded by the router: `Ok(None)` when no identity
/// header is present, an error when they are present but malformed (a roles
/// header without a user id, repeated headers, invalid text).
///
/// The headers prove nothing by themselves: call this only for a request
/// whose hop signature verified ([`crate::hop::HopVerifier`]), which covers
/// them; the subgraph kit's `auth` does exactly that.
pub fn forwarded_identity(headers: &HeaderMap) -> Result<Option<Identity>, AuthError> {
    let single = |name: &str| -> Result<Option<&str>, AuthError> {
        let mut values = headers.get_all(name).iter();
        match (values.next(), values.next()) {
            (None, _) => Ok(None),
            (Some(value), None) => std::str::from_utf8(value.as_bytes())
                .map(Some)
                .map_err(|_| AuthError::MalformedForwardedIdentity),
            (Some(_), Some(_)) => Err(AuthError::MalformedForwardedIdentity),
        }
    };
    let user_id = single(USER_ID_HEADER)?;
    let roles = single(USER_ROLES_HEADER)?;
    let Some(user_id) = user_id else {
        return match roles {
            Some(_) => Err(AuthError::MalformedForwardedIdentity),
            None => Ok(None),
        };
    };
    let roles = roles
        .into_iter()
        .flat_map(|roles| roles.split(','))
        .map(str::trim)
        .filter(|role| !role.is_empty())
        .map(str::to_owned)
        .collect();
    let viewer = Viewer::from_claims(user_id.to_owned(), roles)
        .map_err(|_| AuthError::MalformedForwardedIdentity)?;
    Ok(Some(Identity::User(viewer)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(id: &str, roles: &[&str]) -> Identity {
        Identity::User(Viewer {
            user_id: id.into(),
            roles: roles.iter().map(|r| (*r).to_owned()).collect(),
        })
    }

    #[test]
    fn forwarded_identity_round_trips() {
        for identity in [
            user("u1", &[]),
            user("u1", &[ADMIN_ROLE]),
            user("ünïcode-user", &[ADMIN_ROLE, "support"]),
        ] {
            let mut headers = HeaderMap::new();
            forward_identity(&identity, &mut headers);
            assert_eq!(forwarded_identity(&headers).unwrap(), Some(identity));
        }
        let mut headers = HeaderMap::new();
        forward_identity(&user("u1", &[ADMIN_ROLE]), &mut headers);
        forward_identity(&Identity::Anonymous, &mut headers);
        assert!(headers.is_empty());
        assert_eq!(forwarded_identity(&headers).unwrap(), None);
    }

    #[test]
    fn roles_that_cannot_travel_are_dropped_not_split() {
        let mut headers = HeaderMap::new();
        forward_identity(&user("u1", &["reader,admin", "support"]), &mut headers);
        assert_eq!(
            forwarded_identity(&headers).unwrap(),
            Some(user("u1", &["support"]))
        );
        assert!(Viewer::from_claims("u1".into(), vec!["reader,admin".into()]).is_err());
        assert!(Viewer::from_claims(" u1".into(), vec![]).is_err());
        assert!(Viewer::from_claims(String::new(), vec![]).is_err());
    }

    #[test]
    fn malformed_forwarded_headers_are_refused() {
        let mut roles_only = HeaderMap::new();
        roles_only.insert(USER_ROLES_HEADER, HeaderValue::from_static("admin"));
        let mut repeated = HeaderMap::new();
        repeated.append(USER_ID_HEADER, HeaderValue::from_static("u1"));
        repeated.append(USER_ID_HEADER, HeaderValue::from_static("u2"));
        let mut empty = HeaderMap::new();
        empty.insert(USER_ID_HEADER, HeaderValue::from_static(""));
        let mut not_utf8 = HeaderMap::new();
        not_utf8.insert(
            USER_ID_HEADER,
            HeaderValue::from_bytes(b"\xff\xfe").unwrap(),
        );
        for headers in [roles_only, repeated, empty, not_utf8] {
            assert!(matches!(
                forwarded_identity(&headers),
                Err(AuthError::MalformedForwardedIdentity)
            ));
        }
    }
}

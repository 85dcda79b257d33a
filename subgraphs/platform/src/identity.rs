//! Who is calling: one extractor, one place to read it.
//!
//! In production clients call the router, which verifies their
//! `Authorization: Bearer <JWT>` and forwards the verified caller to each
//! subgraph in two headers, [`USER_ID_HEADER`] and [`USER_ROLES_HEADER`]
//! ([`forward_identity`] writes them, [`forwarded_identity`] reads them). A
//! subgraph therefore has one identity path:
//!
//! 1. forwarded identity headers present → that caller;
//! 2. else a bearer token present → verified with the service's
//!    [`JwtAuthority`], but only when direct tokens are accepted
//!    (`ACCEPT_DIRECT_TOKENS`, on in `shopgraph dev` so a subgraph can be run
//!    alone); otherwise 401 telling the client to call through the router;
//! 3. no credentials → [`Identity::Anonymous`].
//!
//! The [`identify`] middleware does this and stores the result as an
//! [`Identity`] request extension; the GraphQL handler copies it into the
//! request data, and resolvers read it with [`viewer`] or [`admin`]. No
//! resolver looks at headers; calls made on the caller's behalf forward what
//! is kept in [`Credentials`]. Credentials that are present but invalid are
//! refused with 401 before any GraphQL runs.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use crate::error::{ErrorCode, coded};
use crate::graphql::error_body;
use crate::settings::AuthSettings;
use crate::upstream::Credentials;

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
    /// Signature, expiry, issuer or audience check failed.
    #[error("invalid token: {0}")]
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

#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    sub: String,
    #[serde(default)]
    roles: Vec<String>,
    iss: String,
    aud: String,
    iat: u64,
    exp: u64,
}

/// Signs and verifies HS256 tokens with one secret, and decides whether a
/// subgraph takes such tokens directly.
#[derive(Clone)]
pub struct JwtAuthority {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    issuer: String,
    audience: String,
    accept_direct_tokens: bool,
}

impl JwtAuthority {
    /// An authority for the secret, issuer, audience and direct-token policy
    /// in `settings`.
    pub fn from_settings(settings: &AuthSettings) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_issuer(&[&settings.issuer]);
        validation.set_audience(&[&settings.audience]);
        validation.set_required_spec_claims(&["exp", "sub", "iss", "aud"]);
        validation.leeway = 30;
        Self {
            encoding: EncodingKey::from_secret(settings.jwt_secret.as_bytes()),
            decoding: DecodingKey::from_secret(settings.jwt_secret.as_bytes()),
            validation,
            issuer: settings.issuer.clone(),
            audience: settings.audience.clone(),
            accept_direct_tokens: settings.accept_direct_tokens,
        }
    }

    /// Mints a token for `user_id` valid for `ttl` (`shopgraph token`, tests).
    pub fn issue(&self, user_id: &str, roles: &[&str], ttl: Duration) -> Result<String, AuthError> {
        let now = jsonwebtoken::get_current_timestamp();
        let claims = Claims {
            sub: user_id.to_owned(),
            roles: roles.iter().map(|r| (*r).to_owned()).collect(),
            iss: self.issuer.clone(),
            aud: self.audience.clone(),
            iat: now,
            exp: now.saturating_add(ttl.as_secs()),
        };
        Ok(jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &self.encoding,
        )?)
    }

    /// Verifies a token and returns its caller.
    pub fn verify(&self, token: &str) -> Result<Viewer, AuthError> {
        let data = jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation)?;
        Viewer::from_claims(data.claims.sub, data.claims.roles)
    }

    /// Reads the caller from an `Authorization` header value, if any.
    pub fn identify(&self, authorization: Option<&HeaderValue>) -> Result<Identity, AuthError> {
        let Some(value) = authorization else {
            return Ok(Identity::Anonymous);
        };
        Ok(Identity::User(self.verify(bearer_token(value)?)?))
    }

    /// Whether a bearer token sent straight to this service is verified
    /// (`ACCEPT_DIRECT_TOKENS`) rather than refused.
    pub fn accepts_direct_tokens(&self) -> bool {
        self.accept_direct_tokens
    }

    /// The caller of a subgraph request: the forwarded identity if present,
    /// else a direct bearer token if this service accepts those, else
    /// anonymous. See the module docs.
    pub fn identify_request(&self, headers: &HeaderMap) -> Result<Identity, AuthError> {
        if let Some(identity) = forwarded_identity(headers)? {
            return Ok(identity);
        }
        match headers.get(header::AUTHORIZATION) {
            None => Ok(Identity::Anonymous),
            Some(_) if !self.accept_direct_tokens => Err(AuthError::DirectTokenRefused),
            Some(authorization) => self.identify(Some(authorization)),
        }
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
/// The headers are trusted as they are: whoever can reach a subgraph can
/// claim any identity. Subgraphs must therefore only be reachable from the
/// router (and each other); authenticating this hop itself (a signed
/// assertion or mTLS) is a later issue.
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

/// Axum middleware: fills the [`Identity`] and [`Credentials`] extensions,
/// or answers 401 (see the module docs for the order of checks).
pub async fn identify(
    State(authority): State<Arc<JwtAuthority>>,
    mut request: Request,
    next: Next,
) -> Response {
    match authority.identify_request(request.headers()) {
        Ok(identity) => {
            let authorization = request.headers().get(header::AUTHORIZATION).cloned();
            request.extensions_mut().insert(Credentials {
                authorization,
                identity: identity.clone(),
            });
            request.extensions_mut().insert(identity);
            next.run(request).await
        }
        Err(err) => {
            let mut response = (
                StatusCode::UNAUTHORIZED,
                error_body(ErrorCode::Unauthenticated, &err.to_string()),
            )
                .into_response();
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer error=\"invalid_token\""),
            );
            response
        }
    }
}

/// The signed-in caller, or `UNAUTHENTICATED`.
pub fn viewer<'a>(ctx: &async_graphql::Context<'a>) -> async_graphql::Result<&'a Viewer> {
    match ctx.data_opt::<Identity>() {
        Some(Identity::User(viewer)) => Ok(viewer),
        _ => Err(coded(
            ErrorCode::Unauthenticated,
            "sign in to perform this operation",
        )),
    }
}

/// The signed-in admin, or `UNAUTHENTICATED` / `FORBIDDEN`.
pub fn admin<'a>(ctx: &async_graphql::Context<'a>) -> async_graphql::Result<&'a Viewer> {
    let viewer = viewer(ctx)?;
    if viewer.is_admin() {
        Ok(viewer)
    } else {
        Err(coded(
            ErrorCode::Forbidden,
            "this operation requires the admin role",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn authority(secret: &str) -> JwtAuthority {
        JwtAuthority::from_settings(&AuthSettings {
            jwt_secret: secret.into(),
            using_dev_secret: false,
            issuer: "shopgraph".into(),
            audience: "shopgraph".into(),
            accept_direct_tokens: true,
        })
    }

    #[test]
    fn issued_tokens_verify() {
        let auth = authority("a-secret-that-is-long-enough-for-hs256");
        let token = auth
            .issue("u1", &[ADMIN_ROLE], Duration::from_secs(60))
            .unwrap();
        let header = HeaderValue::from_str(&format!("Bearer {token}")).unwrap();
        let identity = auth.identify(Some(&header)).unwrap();
        let Identity::User(viewer) = identity else {
            panic!("anonymous")
        };
        assert_eq!(viewer.user_id, "u1");
        assert!(viewer.is_admin());
    }

    #[test]
    fn wrong_secret_expired_and_malformed_are_refused() {
        let auth = authority("a-secret-that-is-long-enough-for-hs256");
        let other = authority("another-secret-that-is-long-enough!!");
        let token = other.issue("u1", &[], Duration::from_secs(60)).unwrap();
        assert!(auth.verify(&token).is_err());
        let now = jsonwebtoken::get_current_timestamp();
        let expired = Claims {
            sub: "u1".into(),
            roles: vec![],
            iss: "shopgraph".into(),
            aud: "shopgraph".into(),
            iat: now - 7200,
            exp: now - 3600,
        };
        let expired =
            jsonwebtoken::encode(&Header::new(Algorithm::HS256), &expired, &auth.encoding).unwrap();
        assert!(auth.verify(&expired).is_err());
        let header = HeaderValue::from_static("Basic abc");
        assert!(matches!(
            auth.identify(Some(&header)),
            Err(AuthError::MalformedHeader)
        ));
        assert_eq!(auth.identify(None).unwrap(), Identity::Anonymous);
    }

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

    #[test]
    fn forwarded_identity_wins_and_direct_tokens_follow_the_policy() {
        let secret = "a-secret-that-is-long-enough-for-hs256";
        let accepting = authority(secret);
        let refusing = JwtAuthority::from_settings(&AuthSettings {
            jwt_secret: secret.into(),
            using_dev_secret: false,
            issuer: "shopgraph".into(),
            audience: "shopgraph".into(),
            accept_direct_tokens: false,
        });
        assert!(accepting.accepts_direct_tokens());
        assert!(!refusing.accepts_direct_tokens());
        let token = accepting.issue("u1", &[], Duration::from_secs(60)).unwrap();
        let mut bearer = HeaderMap::new();
        bearer.insert(
            header::AUTHORIZATION,
            HeaderValue::from_str(&format!("Bearer {token}")).unwrap(),
        );

        assert_eq!(
            accepting.identify_request(&bearer).unwrap(),
            user("u1", &[])
        );
        assert!(matches!(
            refusing.identify_request(&bearer),
            Err(AuthError::DirectTokenRefused)
        ));

        let mut forwarded = bearer.clone();
        forward_identity(&user("u2", &[ADMIN_ROLE]), &mut forwarded);
        for auth in [&accepting, &refusing] {
            assert_eq!(
                auth.identify_request(&forwarded).unwrap(),
                user("u2", &[ADMIN_ROLE])
            );
            assert_eq!(
                auth.identify_request(&HeaderMap::new()).unwrap(),
                Identity::Anonymous
            );
        }
    }
}

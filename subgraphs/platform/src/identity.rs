//! Who is calling: one extractor, one place to read it.
//!
//! The [`identify`] middleware turns the `Authorization: Bearer <JWT>` header
//! into an [`Identity`] request extension; the GraphQL handler copies it into
//! the request data, and resolvers read it with [`viewer`] or [`admin`]. No
//! resolver looks at headers; calls made on the caller's behalf forward the
//! header kept in [`Credentials`]. A token that is present but invalid is
//! refused with 401 before any GraphQL runs; no token means
//! [`Identity::Anonymous`].

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
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

/// A verified caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Viewer {
    /// The token's subject: the user's id.
    pub user_id: String,
    /// Roles granted by the token (`admin`).
    pub roles: Vec<String>,
}

impl Viewer {
    /// Whether the caller may perform admin-only operations.
    pub fn is_admin(&self) -> bool {
        self.roles.iter().any(|role| role == ADMIN_ROLE)
    }
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

/// Why a token was refused.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// The header is not `Bearer <token>`.
    #[error("the Authorization header must be `Bearer <token>`")]
    MalformedHeader,
    /// Signature, expiry, issuer or audience check failed.
    #[error("invalid token: {0}")]
    InvalidToken(#[from] jsonwebtoken::errors::Error),
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

/// Signs and verifies HS256 tokens with one secret.
#[derive(Clone)]
pub struct JwtAuthority {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    issuer: String,
    audience: String,
}

impl JwtAuthority {
    /// An authority for the secret, issuer and audience in `settings`.
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
        Ok(Viewer {
            user_id: data.claims.sub,
            roles: data.claims.roles,
        })
    }

    /// Reads the caller from an `Authorization` header value, if any.
    pub fn identify(&self, authorization: Option<&HeaderValue>) -> Result<Identity, AuthError> {
        let Some(value) = authorization else {
            return Ok(Identity::Anonymous);
        };
        let value = value.to_str().map_err(|_| AuthError::MalformedHeader)?;
        let token = value
            .strip_prefix("Bearer ")
            .or_else(|| value.strip_prefix("bearer "))
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or(AuthError::MalformedHeader)?;
        Ok(Identity::User(self.verify(token)?))
    }
}

/// Axum middleware: fills the [`Identity`] extension or answers 401.
pub async fn identify(
    State(authority): State<Arc<JwtAuthority>>,
    mut request: Request,
    next: Next,
) -> Response {
    let authorization = request.headers().get(header::AUTHORIZATION).cloned();
    match authority.identify(authorization.as_ref()) {
        Ok(identity) => {
            request.extensions_mut().insert(identity);
            request.extensions_mut().insert(Credentials(authorization));
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
}

//! Who is calling a subgraph: one middleware, one place to read it.
//!
//! Every request is checked in this order:
//!
//! 1. it carries a hop signature (see [`shopgraph_core::hop`]) → the
//!    signature is verified against the trusted public keys, body included;
//!    only then are the forwarded identity headers read (none: anonymous).
//!    A bad signature is 401, whatever else the request carries;
//! 2. it carries none → it is refused with 401 unless this subgraph accepts
//!    direct tokens (`ACCEPT_DIRECT_TOKENS`, on in `shopgraph dev` so a
//!    subgraph can be tried on its own); then a bearer token is verified
//!    with the shared [`JwtVerifier`], and no token is anonymous. Identity
//!    headers on an unsigned request are refused, never read.
//!
//! The [`identify`] middleware does this and stores the result as an
//! [`Identity`] request extension (plus [`SignedHop`] when the hop was
//! signed); the GraphQL handler copies them into the request data, and
//! resolvers read the caller with [`viewer`] or [`admin`]. No resolver
//! looks at headers; calls made on the caller's behalf forward what is kept
//! in [`Credentials`].

use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{FromRequest, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use shopgraph_core::error::{ErrorCode, coded};
use shopgraph_core::graphql_http::coded_response;
use shopgraph_core::hop::operation::{OperationRefusal, SignedOperation};
use shopgraph_core::hop::{self, HopError, HopVerifier, SignedBy};
use shopgraph_core::identity::{
    AuthError, Identity, JwtVerifier, USER_ID_HEADER, USER_ROLES_HEADER, Viewer,
    connection_init_authorization, forwarded_identity,
};

use crate::upstream::Credentials;

/// Marks a request that came over a verified hop signature (the router or
/// another subgraph): what only such callers may ask (`_service`) checks it.
#[derive(Debug, Clone)]
pub struct SignedHop(pub SignedBy);

/// Marks an unsigned, anonymous request to a subgraph that accepts direct
/// tokens: a websocket opened by it may still name its caller in
/// `connection_init` (a browser cannot set headers on the upgrade; that is
/// how the subgraph's GraphiQL sends the Headers tab's token), read with
/// [`SubgraphAuth::identify_connection_init`].
#[derive(Clone)]
pub struct UnsignedCaller;

/// A subgraph's identity policy: signed hop requests, and unsigned ones
/// only where direct tokens are accepted.
pub struct SubgraphAuth {
    hop: HopVerifier,
    /// `None` when direct tokens are refused (`ACCEPT_DIRECT_TOKENS=false`):
    /// then every request must be signed.
    direct_tokens: Option<JwtVerifier>,
}

/// Why a subgraph request was refused before any GraphQL ran.
#[derive(Debug, thiserror::Error)]
pub enum Refusal {
    /// The hop signature is missing or does not check out.
    #[error(transparent)]
    Hop(#[from] HopError),
    /// The credentials are unusable.
    #[error(transparent)]
    Auth(#[from] AuthError),
    /// Identity headers on a request that is not signed.
    #[error(
        "identity headers are only accepted on requests signed by the router: send the request through the router"
    )]
    UnsignedIdentity,
}

impl SubgraphAuth {
    /// A policy verifying hop signatures with `hop`, and direct tokens
    /// with `direct_tokens` where they are accepted.
    pub fn new(hop: HopVerifier, direct_tokens: Option<JwtVerifier>) -> Self {
        Self { hop, direct_tokens }
    }

    /// Whether a request without a hop signature may be served (direct
    /// tokens accepted: `ACCEPT_DIRECT_TOKENS`).
    pub fn accepts_unsigned(&self) -> bool {
        self.direct_tokens.is_some()
    }

    /// The caller of a request (see the module docs for the order); `body`
    /// is the whole request body, which a signature covers.
    pub async fn identify_request(
        &self,
        method: &axum::http::Method,
        uri: &axum::http::Uri,
        headers: &HeaderMap,
        body: &Bytes,
    ) -> Result<(Identity, Option<SignedBy>), Refusal> {
        if HopVerifier::is_signed(headers) {
            let signed_by = self.hop.verify(method, uri, headers, body).await?;
            let identity = forwarded_identity(headers)?.unwrap_or_default();
            return Ok((identity, Some(signed_by)));
        }
        let Some(verifier) = &self.direct_tokens else {
            return Err(HopError::Unsigned.into());
        };
        if headers.contains_key(USER_ID_HEADER) || headers.contains_key(USER_ROLES_HEADER) {
            return Err(Refusal::UnsignedIdentity);
        }
        let identity = match headers.get(header::AUTHORIZATION) {
            None => Identity::Anonymous,
            Some(authorization) => verifier.identify(Some(authorization))?,
        };
        Ok((identity, None))
    }

    /// The caller of one operation on a websocket, from its
    /// [`SignedOperation`] (the router's multiplexed connections: see
    /// [`shopgraph_core::hop::operation`]), received at `path`.
    pub async fn identify_operation(
        &self,
        path: &str,
        signed: &SignedOperation,
    ) -> Result<(Identity, SignedBy), OperationRefusal> {
        self.hop.verify_operation(path, signed).await
    }

    /// The caller a websocket's `connection_init` `payload` names (as the
    /// router reads it: [`connection_init_authorization`]), with the
    /// `Authorization` value to forward; `None` when it names none. Only
    /// for a connection whose upgrade was unsigned ([`UnsignedCaller`]), so
    /// only where direct tokens are accepted.
    pub fn identify_connection_init(
        &self,
        payload: &serde_json::Value,
    ) -> Result<Option<(Identity, HeaderValue)>, Refusal> {
        let Some(verifier) = &self.direct_tokens else {
            return Err(HopError::Unsigned.into());
        };
        let authorization =
            connection_init_authorization(Some(payload)).map_err(|_| AuthError::MalformedHeader)?;
        let Some(authorization) = authorization else {
            return Ok(None);
        };
        let identity = verifier.identify(Some(&authorization))?;
        Ok(Some((identity, authorization)))
    }
}

/// Axum middleware: fills the [`Identity`], [`Credentials`] and
/// [`SignedHop`] extensions, or answers 401 `UNAUTHENTICATED` (see the
/// module docs for the order of checks). The body is read here because the
/// signature covers it; the body-size limit outside this layer bounds it.
pub async fn identify(
    State(auth): State<Arc<SubgraphAuth>>,
    request: Request,
    next: Next,
) -> Response {
    let (parts, body) = request.into_parts();
    // axum's own reading: a body over the limit is its 413.
    let body = match Bytes::from_request(Request::new(body), &()).await {
        Ok(body) => body,
        Err(rejection) => return rejection.into_response(),
    };
    match auth
        .identify_request(&parts.method, &parts.uri, &parts.headers, &body)
        .await
    {
        Ok((identity, signed_by)) => {
            let mut request = Request::from_parts(parts, Body::from(body));
            let authorization = request.headers().get(header::AUTHORIZATION).cloned();
            let extensions = request.extensions_mut();
            let anonymous = matches!(identity, Identity::Anonymous);
            extensions.insert(Credentials {
                authorization,
                identity: identity.clone(),
            });
            extensions.insert(identity);
            // A websocket verifies each signed operation it carries.
            extensions.insert(Arc::clone(&auth));
            match signed_by {
                Some(signed_by) => {
                    extensions.insert(SignedHop(signed_by));
                }
                None if anonymous => {
                    extensions.insert(UnsignedCaller);
                }
                None => {}
            }
            next.run(request).await
        }
        Err(refusal) => {
            tracing::debug!(%refusal, uri = %parts.uri, "subgraph request refused");
            let mut response = coded_response(
                StatusCode::UNAUTHORIZED,
                "application/json",
                ErrorCode::Unauthenticated.as_str(),
                &refusal.to_string(),
            );
            if matches!(refusal, Refusal::Hop(_) | Refusal::UnsignedIdentity) {
                response
                    .headers_mut()
                    .insert(header::WWW_AUTHENTICATE, hop::challenge());
            }
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
    use std::time::Duration;

    use axum::body::Bytes;
    use axum::http::{Method, Uri};
    use shopgraph_core::config::Env;
    use shopgraph_core::hop::HopSettings;
    use shopgraph_core::identity::{ADMIN_ROLE, JwtSettings, TokenIssuer, forward_identity};
    use shopgraph_core::settings::RunMode;

    use super::*;

    const SECRET: &str = "a-secret-that-is-long-enough-for-hs256";

    fn user(id: &str, roles: &[&str]) -> Identity {
        Identity::User(Viewer {
            user_id: id.into(),
            roles: roles.iter().map(|r| (*r).to_owned()).collect(),
        })
    }

    #[tokio::test]
    async fn signed_identity_is_read_and_unsigned_identity_never() {
        let hop = HopSettings::from_env(&Env::default(), RunMode::Dev).unwrap();
        let settings =
            JwtSettings::from_env(&Env::from_pairs([("JWT_SECRET", SECRET)]), RunMode::Serve)
                .unwrap();
        let accepting = SubgraphAuth::new(
            hop.require_verifier("product").unwrap(),
            Some(JwtVerifier::new(&settings).await.unwrap()),
        );
        let refusing = SubgraphAuth::new(hop.require_verifier("product").unwrap(), None);
        let signer = hop.require_signer().unwrap();
        let (method, uri, body) = (
            Method::POST,
            Uri::from_static("/graphql"),
            Bytes::from_static(b"{}"),
        );
        let token = TokenIssuer::from_settings(&settings)
            .unwrap()
            .issue("u1", &[], Duration::from_secs(60))
            .unwrap();
        let mut bearer = HeaderMap::new();
        bearer.insert(
            header::AUTHORIZATION,
            HeaderValue::from_str(&format!("Bearer {token}")).unwrap(),
        );

        // A direct token, unsigned: only where direct tokens are accepted.
        let (identity, signed) = accepting
            .identify_request(&method, &uri, &bearer, &body)
            .await
            .unwrap();
        assert_eq!((identity, signed), (user("u1", &[]), None));
        assert!(matches!(
            refusing
                .identify_request(&method, &uri, &bearer, &body)
                .await,
            Err(Refusal::Hop(HopError::Unsigned))
        ));

        // Forged identity headers, unsigned: refused by both.
        let mut forged = bearer.clone();
        forward_identity(&user("u2", &[ADMIN_ROLE]), &mut forged);
        for auth in [&accepting, &refusing] {
            assert!(
                auth.identify_request(&method, &uri, &forged, &body)
                    .await
                    .is_err()
            );
        }

        // The same identity, signed: read, by both.
        for auth in [&accepting, &refusing] {
            let mut signed = HeaderMap::new();
            forward_identity(&user("u2", &[ADMIN_ROLE]), &mut signed);
            signer
                .sign(&method, &uri, &mut signed, &body, "product")
                .await
                .unwrap();
            let (identity, signed_by) = auth
                .identify_request(&method, &uri, &signed, &body)
                .await
                .unwrap();
            assert_eq!(identity, user("u2", &[ADMIN_ROLE]));
            assert_eq!(signed_by.unwrap().key_id, signer.key_id());
        }

        // A websocket's `connection_init`, as GraphiQL sends it: only where
        // direct tokens are accepted, and a bad token is refused.
        let init = serde_json::json!({ "headers": { "Authorization": format!("Bearer {token}") } });
        let (identity, authorization) = accepting
            .identify_connection_init(&init)
            .unwrap()
            .expect("a caller");
        assert_eq!(identity, user("u1", &[]));
        assert_eq!(authorization, bearer[header::AUTHORIZATION]);
        assert!(
            accepting
                .identify_connection_init(&serde_json::json!({}))
                .unwrap()
                .is_none()
        );
        assert!(
            accepting
                .identify_connection_init(&serde_json::json!({ "token": "not-a-jwt" }))
                .is_err()
        );
        assert!(refusing.identify_connection_init(&init).is_err());
    }
}

//! Who is calling a subgraph: one extractor, one place to read it.
//!
//! The caller arrives one of three ways, tried in this order:
//!
//! 1. forwarded identity headers present (the router verified the caller;
//!    see [`shopgraph_core::identity`]) → that caller;
//! 2. else a bearer token present → verified with the shared
//!    [`JwtVerifier`], but only when direct tokens are accepted
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

use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::Next;
use axum::response::Response;
use shopgraph_core::error::{ErrorCode, coded};
use shopgraph_core::graphql_http::coded_response;
use shopgraph_core::identity::{AuthError, Identity, JwtVerifier, Viewer, forwarded_identity};

use crate::upstream::Credentials;

/// A subgraph's identity policy: the forwarded caller first, then a direct
/// token only if this subgraph accepts those.
pub struct SubgraphAuth {
    /// `None` when direct tokens are refused (`ACCEPT_DIRECT_TOKENS=false`).
    direct_tokens: Option<JwtVerifier>,
}

impl SubgraphAuth {
    /// Accepts direct tokens, verified by `verifier`.
    pub fn accepting(verifier: JwtVerifier) -> Self {
        Self {
            direct_tokens: Some(verifier),
        }
    }

    /// Refuses direct tokens: only the router's forwarded caller counts.
    pub fn refusing_direct_tokens() -> Self {
        Self {
            direct_tokens: None,
        }
    }

    /// Whether a bearer token sent straight to this service is verified
    /// (`ACCEPT_DIRECT_TOKENS`) rather than refused.
    pub fn accepts_direct_tokens(&self) -> bool {
        self.direct_tokens.is_some()
    }

    /// The caller of a subgraph request (see the module docs for the order).
    pub fn identify_request(&self, headers: &HeaderMap) -> Result<Identity, AuthError> {
        if let Some(identity) = forwarded_identity(headers)? {
            return Ok(identity);
        }
        match (headers.get(header::AUTHORIZATION), &self.direct_tokens) {
            (None, _) => Ok(Identity::Anonymous),
            (Some(_), None) => Err(AuthError::DirectTokenRefused),
            (Some(authorization), Some(verifier)) => verifier.identify(Some(authorization)),
        }
    }
}

/// Axum middleware: fills the [`Identity`] and [`Credentials`] extensions,
/// or answers 401 (see the module docs for the order of checks).
pub async fn identify(
    State(auth): State<Arc<SubgraphAuth>>,
    mut request: Request,
    next: Next,
) -> Response {
    match auth.identify_request(request.headers()) {
        Ok(identity) => {
            let authorization = request.headers().get(header::AUTHORIZATION).cloned();
            request.extensions_mut().insert(Credentials {
                authorization,
                identity: identity.clone(),
            });
            request.extensions_mut().insert(identity);
            next.run(request).await
        }
        Err(err) => coded_response(
            StatusCode::UNAUTHORIZED,
            "application/json",
            ErrorCode::Unauthenticated.as_str(),
            &err.to_string(),
        ),
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

    use shopgraph_core::config::Env;
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
    async fn forwarded_identity_wins_and_direct_tokens_follow_the_policy() {
        let settings =
            JwtSettings::from_env(&Env::from_pairs([("JWT_SECRET", SECRET)]), RunMode::Serve)
                .unwrap();
        let accepting = SubgraphAuth::accepting(JwtVerifier::new(&settings).await.unwrap());
        let refusing = SubgraphAuth::refusing_direct_tokens();
        assert!(accepting.accepts_direct_tokens());
        assert!(!refusing.accepts_direct_tokens());
        let token = TokenIssuer::from_settings(&settings)
            .unwrap()
            .issue("u1", &[], Duration::from_secs(60))
            .unwrap();
        let mut bearer = HeaderMap::new();
        bearer.insert(
            header::AUTHORIZATION,
            axum::http::HeaderValue::from_str(&format!("Bearer {token}")).unwrap(),
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

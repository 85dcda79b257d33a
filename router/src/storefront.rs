//! Beside the request path: the storefront (`web-demo/`), a single-page
//! app built by Vite and embedded in the binary, and the dev-only sign-in
//! that hands it a demo user's token.
//!
//! | route | when | answers |
//! |---|---|---|
//! | `GET /`, `/assets/…`, any file of `web-demo/dist/` | `STOREFRONT` (on in `dev`, off in `serve`) | the file, with its content type, an `ETag` and cache headers: `/assets/` names carry a content hash, so they are cached for a year (`immutable`); everything else is revalidated (`no-cache`) |
//! | `GET /products/…`, `/basket`, … (no file extension) | `STOREFRONT`, and the request accepts `text/html` | `index.html`: the app's own router draws the page (client routes survive a reload) |
//! | `GET /graphiql/assets/…` | `GRAPHIQL` (not part of the storefront: [`shopgraph_core::graphiql`]) | GraphiQL's files; the storefront never answers under `/graphiql/` |
//! | `POST /dev/token` `{"user":"alice"}` | `dev` only: the route does not exist in `serve` | a JWT for `alice`, `bob` or `admin` (with the `admin` role), signed as `shopgraph token` signs |
//!
//! Every storefront answer carries a Content-Security-Policy allowing only
//! the page's own scripts, styles and connections (`connect-src 'self'`
//! covers the websocket to the same origin); the edge adds the router's
//! other security headers. The page sends its operations by id only; the
//! router registers them while it serves the page ([`PERSISTED_DOCUMENTS`]),
//! so the storefront works in safelist mode too. Nothing is read from disk at run time: the
//! files are compiled in by `rust-embed` (with `debug-embed`, so debug
//! builds and tests serve exactly what a release build serves), and
//! `router/build.rs` rebuilds the crate when `web-demo/dist/` changes.

use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::extract::Request;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde::Deserialize;
use serde_json::json;
use shopgraph_core::error::ErrorCode;
use shopgraph_core::graphql_http::prefers_html;
use shopgraph_core::identity::{ADMIN_ROLE, AuthError, TokenIssuer};
use shopgraph_core::static_files::{self, CACHE_HASHED, CACHE_REVALIDATE};

/// The storefront's build output, compiled into the binary.
#[derive(rust_embed::Embed)]
#[folder = "../web-demo/dist/"]
struct Assets;

/// The storefront's operations as codegen persisted them (id → text): it
/// sends only their ids, so the router that serves it registers them
/// ([`crate::pipeline::persisted::PersistedSettings::register_documents`]).
/// `web-demo/check.sh` keeps this file and the embedded build in step.
pub const PERSISTED_DOCUMENTS: &str =
    include_str!("../../web-demo/src/gql/persisted-documents.json");

/// The page every client route is drawn from.
const INDEX: &str = "index.html";

/// Where Vite puts content-hashed files (safe to cache for ever).
const HASHED_PREFIX: &str = "assets/";

/// GraphiQL's files ([`shopgraph_core::graphiql::ASSETS_PATH`]): never a
/// client route, so a missing one is a 404 whether GraphiQL is on or off.
const GRAPHIQL_PREFIX: &str = "graphiql/";

/// The policy of every storefront answer: the page's own scripts and
/// styles only, requests and websockets to its own origin only, images
/// from itself, `data:` or any HTTPS host (product `imageUrl`s), and never
/// framed.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; \
     style-src 'self'; img-src 'self' data: https:; connect-src 'self'; font-src 'self'; \
     object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'";

/// How long a demo token from `POST /dev/token` stays valid.
pub const DEV_TOKEN_TTL: Duration = Duration::from_secs(12 * 3600);

/// The users `POST /dev/token` signs in as, with their roles: two
/// shoppers and an administrator (as in the README's examples).
pub const DEMO_USERS: [(&str, &[&str]); 3] =
    [("alice", &[]), ("bob", &[]), ("admin", &[ADMIN_ROLE])];

/// The storefront's routes: every path no other route takes. Merge it
/// last: its fallback answers what the others do not.
pub fn routes() -> Router {
    Router::new().fallback(serve)
}

/// `POST /dev/token`, signing with `issuer`. Only `shopgraph dev` adds
/// it ([`crate::config::RouterSettings::dev_tokens`]).
pub fn dev_token_routes(issuer: TokenIssuer) -> Router {
    Router::new().route(
        "/dev/token",
        post(move |headers: HeaderMap, body: axum::body::Bytes| {
            let issuer = issuer.clone();
            async move { dev_token(&issuer, &headers, &body) }
        }),
    )
}

/// Answers a request no other route took: an embedded file, `index.html`
/// for a browser's client route, or 404.
async fn serve(request: Request) -> Response {
    let method = request.method();
    if method != Method::GET && method != Method::HEAD {
        return StatusCode::NOT_FOUND.into_response();
    }
    let path = request.uri().path().trim_start_matches('/');
    let headers = request.headers();
    let path = if path.is_empty() { INDEX } else { path };
    if let Some(file) = Assets::get(path) {
        return file_response(path, file, headers);
    }
    // A client route: a path without a file extension, asked for by a
    // browser. Anything else (a missing script, an API client's typo)
    // stays a plain 404.
    let last = path.rsplit('/').next().unwrap_or(path);
    if !path.starts_with(HASHED_PREFIX)
        && !path.starts_with(GRAPHIQL_PREFIX)
        && !last.contains('.')
        && prefers_html(headers)
        && let Some(file) = Assets::get(INDEX)
    {
        return file_response(INDEX, file, headers);
    }
    StatusCode::NOT_FOUND.into_response()
}

/// One embedded file, cached for a year when its name is content-hashed.
fn file_response(path: &str, file: rust_embed::EmbeddedFile, request: &HeaderMap) -> Response {
    let cache = if path.starts_with(HASHED_PREFIX) {
        CACHE_HASHED
    } else {
        CACHE_REVALIDATE
    };
    static_files::file_response(file, request, cache, CONTENT_SECURITY_POLICY)
}

/// Why `POST /dev/token` refused.
#[derive(Debug, thiserror::Error)]
pub enum DevTokenError {
    /// The body is not JSON (a cross-site form cannot post JSON without a
    /// CORS preflight, which this route never answers).
    #[error("send `content-type: application/json` with a body like {{\"user\":\"alice\"}}")]
    NotJson,
    /// The body is not `{"user": "<name>"}`.
    #[error("the body must be {{\"user\":\"alice\"}}: {0}")]
    BadBody(String),
    /// Not one of [`DEMO_USERS`].
    #[error("user must be one of alice, bob, admin (got `{0}`)")]
    UnknownUser(String),
    /// Signing failed.
    #[error("cannot sign the token")]
    Issue(#[source] AuthError),
}

impl DevTokenError {
    fn status(&self) -> StatusCode {
        match self {
            Self::NotJson => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::BadBody(_) | Self::UnknownUser(_) => StatusCode::BAD_REQUEST,
            Self::Issue(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn code(&self) -> ErrorCode {
        match self {
            Self::NotJson => ErrorCode::BadRequest,
            Self::BadBody(_) | Self::UnknownUser(_) => ErrorCode::BadUserInput,
            Self::Issue(_) => ErrorCode::Internal,
        }
    }
}

impl IntoResponse for DevTokenError {
    fn into_response(self) -> Response {
        if let Self::Issue(err) = &self {
            tracing::error!(%err, "cannot sign a dev token");
        }
        let body = json!({
            "errors": [{ "message": self.to_string(), "extensions": { "code": self.code().as_str() } }]
        });
        (self.status(), Json(body)).into_response()
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DevTokenRequest {
    user: String,
}

/// Signs a token for one of the demo users.
fn dev_token(
    issuer: &TokenIssuer,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Response, DevTokenError> {
    let is_json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split(';').next())
        .is_some_and(|mime| mime.trim().eq_ignore_ascii_case("application/json"));
    if !is_json {
        return Err(DevTokenError::NotJson);
    }
    let request: DevTokenRequest =
        serde_json::from_slice(body).map_err(|err| DevTokenError::BadBody(err.to_string()))?;
    let (user, roles) = DEMO_USERS
        .iter()
        .find(|(name, _)| *name == request.user)
        .ok_or_else(|| DevTokenError::UnknownUser(request.user.chars().take(40).collect()))?;
    let token = issuer
        .issue(user, roles, DEV_TOKEN_TTL)
        .map_err(DevTokenError::Issue)?;
    let mut response = Json(json!({
        "token": token,
        "user": user,
        "roles": roles,
        "expiresIn": DEV_TOKEN_TTL.as_secs(),
    }))
    .into_response();
    // A token is a credential: never kept by a cache.
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use shopgraph_core::identity::{Identity, JwtSettings, JwtVerifier};
    use tower::ServiceExt;

    use super::*;

    const SECRET: &str = "storefront-test-secret-0123456789abcdef";

    fn app() -> Router {
        routes().merge(dev_token_routes(TokenIssuer::new(
            SECRET,
            "shopgraph",
            "shopgraph",
        )))
    }

    async fn get(uri: &str, accept: &str, if_none_match: Option<&str>) -> Response {
        let mut request = Request::builder().uri(uri).header(header::ACCEPT, accept);
        if let Some(tag) = if_none_match {
            request = request.header(header::IF_NONE_MATCH, tag);
        }
        app()
            .oneshot(request.body(Body::empty()).expect("request"))
            .await
            .expect("infallible")
    }

    async fn text(response: Response) -> String {
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .expect("body");
        String::from_utf8(bytes.to_vec()).expect("UTF-8")
    }

    /// The first `/assets/*.js` the embedded `index.html` loads.
    fn entry_script() -> String {
        let index = Assets::get(INDEX).expect("web-demo/dist/index.html is embedded");
        let index = String::from_utf8_lossy(&index.data).into_owned();
        let start = index.find("/assets/").expect("index.html loads /assets/");
        let end = start + index[start..].find('"').expect("quoted");
        index[start..end].to_owned()
    }

    #[tokio::test]
    async fn the_page_and_its_assets_are_served_with_types_caching_and_csp() {
        let page = get("/", "text/html", None).await;
        assert_eq!(page.status(), StatusCode::OK);
        let headers = page.headers().clone();
        assert_eq!(headers[header::CONTENT_TYPE], "text/html; charset=utf-8");
        assert_eq!(headers[header::CACHE_CONTROL], CACHE_REVALIDATE);
        assert_eq!(
            headers[header::CONTENT_SECURITY_POLICY],
            CONTENT_SECURITY_POLICY
        );
        let html = text(page).await;
        assert!(html.contains("<div id=\"root\">"), "{html}");

        let script = entry_script();
        let asset = get(&script, "*/*", None).await;
        assert_eq!(asset.status(), StatusCode::OK, "{script}");
        let content_type = asset.headers()[header::CONTENT_TYPE]
            .to_str()
            .expect("ASCII")
            .to_owned();
        assert!(content_type.contains("javascript"), "{content_type}");
        assert_eq!(asset.headers()[header::CACHE_CONTROL], CACHE_HASHED);

        // Revalidation: the same ETag is a 304 without a body.
        let etag = headers[header::ETAG].to_str().expect("ASCII").to_owned();
        let again = get("/", "text/html", Some(&etag)).await;
        assert_eq!(again.status(), StatusCode::NOT_MODIFIED);
        assert!(text(again).await.is_empty());
        let other = get("/", "text/html", Some("\"something-else\"")).await;
        assert_eq!(other.status(), StatusCode::OK);
    }

    #[tokio::test]
    async fn client_routes_fall_back_to_the_page_for_browsers_only() {
        for route in [
            "/basket",
            "/products/159ae402-6865-54e4-b1ce-7defcf56da78",
            "/orders",
        ] {
            let page = get(route, "text/html,application/xhtml+xml", None).await;
            assert_eq!(page.status(), StatusCode::OK, "{route}");
            assert!(text(page).await.contains("<div id=\"root\">"), "{route}");
            // An API client is told the path does not exist.
            let api = get(route, "application/json", None).await;
            assert_eq!(api.status(), StatusCode::NOT_FOUND, "{route}");
        }
        // Missing files are never the page, even for a browser.
        for missing in [
            "/assets/gone-1234.js",
            "/favicon-missing.png",
            "/assets/nothing",
            "/graphiql/assets/index-1234.js",
            "/graphiql/anything",
        ] {
            let response = get(missing, "text/html", None).await;
            assert_eq!(response.status(), StatusCode::NOT_FOUND, "{missing}");
        }
        let post = app()
            .oneshot(
                Request::builder()
                    .method(Method::POST)
                    .uri("/basket")
                    .body(Body::empty())
                    .expect("request"),
            )
            .await
            .expect("infallible");
        assert_eq!(post.status(), StatusCode::NOT_FOUND);
    }

    async fn dev_token_request(content_type: &str, body: &str) -> Response {
        app()
            .oneshot(
                Request::builder()
                    .method(Method::POST)
                    .uri("/dev/token")
                    .header(header::CONTENT_TYPE, content_type)
                    .body(Body::from(body.to_owned()))
                    .expect("request"),
            )
            .await
            .expect("infallible")
    }

    #[tokio::test]
    async fn dev_tokens_are_real_jwts_the_router_verifies() {
        let env = shopgraph_core::config::Env::from_pairs([("JWT_SECRET", SECRET)]);
        let settings = JwtSettings::from_env(&env, shopgraph_core::settings::RunMode::Dev)
            .expect("JWT settings");
        let verifier = JwtVerifier::new(&settings).await.expect("verifier");
        for (user, admin) in [("alice", false), ("bob", false), ("admin", true)] {
            let response =
                dev_token_request("application/json", &format!(r#"{{"user":"{user}"}}"#)).await;
            assert_eq!(response.status(), StatusCode::OK, "{user}");
            assert_eq!(response.headers()[header::CACHE_CONTROL], "no-store");
            let body: serde_json::Value =
                serde_json::from_str(&text(response).await).expect("JSON");
            let token = body["token"].as_str().expect("a token");
            let header = HeaderValue::from_str(&format!("Bearer {token}")).expect("header");
            match verifier.identify(Some(&header)) {
                Ok(Identity::User(viewer)) => {
                    assert_eq!(viewer.user_id, user);
                    assert_eq!(viewer.is_admin(), admin, "{user}");
                }
                other => panic!("{user}: {other:?}"),
            }
        }
    }

    #[tokio::test]
    async fn dev_token_refuses_unknown_users_and_non_json() {
        let unknown = dev_token_request("application/json", r#"{"user":"mallory"}"#).await;
        assert_eq!(unknown.status(), StatusCode::BAD_REQUEST);
        let body = text(unknown).await;
        assert!(
            body.contains("BAD_USER_INPUT") && body.contains("mallory"),
            "{body}"
        );
        let form = dev_token_request("application/x-www-form-urlencoded", "user=admin").await;
        assert_eq!(form.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
        let malformed = dev_token_request("application/json", r#"{"user":1}"#).await;
        assert_eq!(malformed.status(), StatusCode::BAD_REQUEST);
    }
}

//! HTTP protections for browsers: CORS from an allowlist, security headers
//! on every response, and CSRF prevention on `/graphql`.
//!
//! Layers, outer to inner, as [`SecuritySettings`] applies them:
//!
//! | layer | where | does |
//! |---|---|---|
//! | security headers | every route ([`SecuritySettings::headers_layer`]) | `x-content-type-options`, `x-frame-options`, `referrer-policy`; HSTS behind TLS |
//! | CORS | `/graphql` ([`SecuritySettings::graphql_layer`]) | answers preflights, adds `access-control-*` for allowed origins, and `vary: origin` when origins are listed |
//! | CSRF | `/graphql` | refuses requests a browser would send cross-site without a preflight |
//!
//! CORS sits outside CSRF so that preflights are answered before the CSRF
//! check, and so that a CSRF refusal carries CORS headers and the calling
//! page can read why it was refused.
//!
//! The variables, their defaults and meanings are listed once, in the
//! README's Configuration section (kept true by
//! `tests/api/config_reference.rs`); each field below names its variable.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::extract::Query;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, header};
use axum::response::Response;
use futures::future::{Ready, ready};
use shopgraph_core::config::{ConfigError, Env, invalid};
use shopgraph_core::error::ErrorCode;
use shopgraph_core::graphql_http::{prefers_html, response_content_type};

use crate::pipeline::RouterError;
use shopgraph_core::settings::RunMode;
use tower::layer::util::{Identity, Stack};
use tower::util::Either;
use tower::{Layer, Service, ServiceBuilder};
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::set_header::SetResponseHeaderLayer;

/// Request headers cross-origin clients may send (the CSRF headers are
/// added to these).
const ALLOWED_REQUEST_HEADERS: [&str; 10] = [
    "content-type",
    "authorization",
    "apollo-require-preflight",
    "x-apollo-operation-name",
    "x-api-key",
    "traceparent",
    "tracestate",
    // Apollo Client's `clientAwareness` (name and version of the app).
    "apollographql-client-name",
    "apollographql-client-version",
    // A multipart subscription's `Accept` with the quoted
    // `subscriptionSpec="1.0"` is not a CORS-safelisted value.
    "accept",
];

/// Response headers cross-origin pages may read: rate-limit feedback.
const EXPOSED_RESPONSE_HEADERS: [&str; 5] = [
    "retry-after",
    "ratelimit-limit",
    "ratelimit-remaining",
    "ratelimit-reset",
    "ratelimit-policy",
];

/// How long browsers may cache a preflight answer.
const PREFLIGHT_MAX_AGE: Duration = Duration::from_secs(600);

/// Default of `CSRF_REQUIRED_HEADERS`: the headers Apollo clients send.
const DEFAULT_CSRF_HEADERS: [&str; 2] = ["x-apollo-operation-name", "apollo-require-preflight"];

/// Default of `HSTS_MAX_AGE`: one year.
const DEFAULT_HSTS_MAX_AGE: u64 = 31_536_000;

/// Content types a browser sends cross-site without a preflight (the
/// CORS-safelisted ones).
const SIMPLE_CONTENT_TYPES: [&str; 3] = [
    "application/x-www-form-urlencoded",
    "multipart/form-data",
    "text/plain",
];

/// Which origins get CORS headers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AllowedOrigins {
    /// `*`: any origin (the `dev` default).
    Any,
    /// These exact origins (`https://shop.example`), lower-cased.
    List(Vec<HeaderValue>),
}

/// Cross-origin access to `/graphql`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CorsSettings {
    /// The origins answered.
    pub origins: AllowedOrigins,
    /// Whether browsers may send credentials (cookies); never with
    /// [`AllowedOrigins::Any`].
    pub allow_credentials: bool,
}

/// The router's browser-facing protections, read once at start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecuritySettings {
    /// CORS, or `None` for no CORS headers at all (same-origin only).
    pub cors: Option<CorsSettings>,
    /// Whether the security headers (and HSTS) are added.
    pub security_headers: bool,
    /// `strict-transport-security` max-age, in seconds, for requests that
    /// came over TLS; `None` disables HSTS.
    pub hsts_max_age: Option<u64>,
    /// The headers any of which lets a request past the CSRF check; `None`
    /// turns the check off.
    pub csrf_required_headers: Option<Vec<HeaderName>>,
}

impl SecuritySettings {
    /// Reads the variables in the module's table; `mode` decides the CORS
    /// default (any origin in `dev`, none in `serve`).
    pub fn from_env(env: &Env, mode: RunMode) -> Result<Self, ConfigError> {
        let origins = match env.raw("CORS_ALLOWED_ORIGINS") {
            Some(value) => Some(parse_origins(value)?),
            None if mode == RunMode::Dev => Some(AllowedOrigins::Any),
            None => None,
        };
        let allow_credentials = env.bool_or("CORS_ALLOW_CREDENTIALS", false)?;
        if allow_credentials && origins == Some(AllowedOrigins::Any) {
            return Err(invalid(
                "CORS_ALLOW_CREDENTIALS",
                env.raw("CORS_ALLOW_CREDENTIALS").unwrap_or("true"),
                "false while CORS_ALLOWED_ORIGINS allows any origin (*): browsers refuse \
                 credentials with a wildcard; list the origins instead",
            ));
        }
        let hsts_expected = "a number of seconds from 0 (no HSTS) to 315360000";
        let hsts_max_age = match env.parse::<u64>("HSTS_MAX_AGE", hsts_expected)? {
            None => DEFAULT_HSTS_MAX_AGE,
            Some(seconds) if seconds <= 315_360_000 => seconds,
            Some(seconds) => {
                return Err(invalid("HSTS_MAX_AGE", &seconds.to_string(), hsts_expected));
            }
        };
        let csrf_required_headers = if env.bool_or("CSRF_PREVENTION", true)? {
            Some(match env.raw("CSRF_REQUIRED_HEADERS") {
                Some(value) => parse_header_names("CSRF_REQUIRED_HEADERS", value)?,
                None => DEFAULT_CSRF_HEADERS
                    .iter()
                    .map(|name| HeaderName::from_static(name))
                    .collect(),
            })
        } else {
            None
        };
        Ok(Self {
            cors: origins.map(|origins| CorsSettings {
                origins,
                allow_credentials,
            }),
            security_headers: env.bool_or("SECURITY_HEADERS", true)?,
            hsts_max_age: (hsts_max_age > 0).then_some(hsts_max_age),
            csrf_required_headers,
        })
    }

    /// The CORS layer for `/graphql`, or `None` when no origin is allowed.
    pub fn cors_layer(&self) -> Option<CorsLayer> {
        let cors = self.cors.as_ref()?;
        let mut allowed_headers: Vec<HeaderName> = ALLOWED_REQUEST_HEADERS
            .iter()
            .map(|name| HeaderName::from_static(name))
            .collect();
        // A cross-origin client must be allowed to send the CSRF headers.
        for name in self.csrf_required_headers.iter().flatten() {
            if !allowed_headers.contains(name) {
                allowed_headers.push(name.clone());
            }
        }
        let origin = match &cors.origins {
            AllowedOrigins::Any => AllowOrigin::any(),
            AllowedOrigins::List(origins) => {
                // A predicate over a shared list rather than
                // `AllowOrigin::list`: axum clones the layer for every
                // request, and a list would be copied each time.
                let origins: Arc<[HeaderValue]> = origins.clone().into();
                AllowOrigin::predicate(move |origin, _| origins.contains(origin))
            }
        };
        Some(
            CorsLayer::new()
                .allow_origin(origin)
                .allow_methods([Method::GET, Method::POST, Method::OPTIONS])
                .allow_headers(allowed_headers)
                .expose_headers(EXPOSED_RESPONSE_HEADERS.map(HeaderName::from_static))
                .max_age(PREFLIGHT_MAX_AGE)
                .allow_credentials(cors.allow_credentials)
                // No `Vary` from this layer: it would build and join one
                // for every request. [`SecuritySettings::vary_layer`]
                // appends a fixed one where the answer varies.
                .vary([]),
        )
    }

    /// `Vary: origin` on every `/graphql` answer when the CORS headers
    /// depend on the request's `Origin` (a list of allowed origins), so
    /// that shared caches keep one answer per origin. Only the origin
    /// changes them: the allowed methods and headers are fixed lists, not
    /// mirrored from requests; and with `*` nothing varies.
    pub fn vary_layer(&self) -> Option<SetResponseHeaderLayer<HeaderValue>> {
        match self.cors.as_ref()?.origins {
            AllowedOrigins::Any => None,
            AllowedOrigins::List(_) => Some(SetResponseHeaderLayer::appending(
                header::VARY,
                HeaderValue::from_static("origin"),
            )),
        }
    }

    /// The CSRF layer for `/graphql`, or `None` when `CSRF_PREVENTION` is off.
    pub fn csrf_layer(&self) -> Option<CsrfLayer> {
        self.csrf_required_headers
            .as_ref()
            .map(|headers| CsrfLayer::new(headers.clone()))
    }

    /// The `/graphql` protections as one layer: CORS (with its `Vary`)
    /// outside CSRF prevention (see the module docs for why in that
    /// order); each is absent when turned off.
    pub fn graphql_layer(&self) -> GraphqlProtection {
        ServiceBuilder::new()
            .option_layer(self.vary_layer())
            .option_layer(self.cors_layer())
            .option_layer(self.csrf_layer())
            .into_inner()
    }

    /// The security headers for every response, or `None` when
    /// `SECURITY_HEADERS` is off.
    pub fn headers_layer(&self) -> Option<SecurityHeadersLayer> {
        if !self.security_headers {
            return None;
        }
        let hsts = self.hsts_max_age.and_then(|max_age| {
            // Digits and ASCII only: cannot fail, but never panic.
            HeaderValue::from_str(&format!("max-age={max_age}; includeSubDomains"))
                .inspect_err(|err| tracing::error!(%err, "cannot build the HSTS header"))
                .ok()
        });
        Some(SecurityHeadersLayer { hsts })
    }
}

/// CORS's `Vary`, CORS, then CSRF prevention, each present only when
/// configured ([`SecuritySettings::graphql_layer`]).
pub type GraphqlProtection = Stack<
    Either<CsrfLayer, Identity>,
    Stack<
        Either<CorsLayer, Identity>,
        Stack<Either<SetResponseHeaderLayer<HeaderValue>, Identity>, Identity>,
    >,
>;

/// The headers every response gets.
const SECURITY_HEADERS: [(HeaderName, HeaderValue); 3] = [
    (
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    ),
    (header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY")),
    (
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    ),
];

/// Adds `x-content-type-options`, `x-frame-options` and `referrer-policy`
/// to every response that does not set them itself, and HSTS to
/// responses to requests that came over TLS (`x-forwarded-proto: https`:
/// the router serves plain HTTP behind a TLS proxy, and HSTS sent over
/// plain HTTP is ignored). One layer with one pass over the response,
/// since it wraps every request.
#[derive(Debug, Clone)]
pub struct SecurityHeadersLayer {
    /// `strict-transport-security`, for requests that came over TLS (a
    /// clone is one reference count).
    hsts: Option<HeaderValue>,
}

impl<S> Layer<S> for SecurityHeadersLayer {
    type Service = SetSecurityHeaders<S>;

    fn layer(&self, inner: S) -> Self::Service {
        SetSecurityHeaders {
            inner,
            hsts: self.hsts.clone(),
        }
    }
}

/// The service [`SecurityHeadersLayer`] builds.
#[derive(Debug, Clone)]
pub struct SetSecurityHeaders<S> {
    inner: S,
    hsts: Option<HeaderValue>,
}

impl<S, ReqBody, ResBody> Service<axum::http::Request<ReqBody>> for SetSecurityHeaders<S>
where
    S: Service<axum::http::Request<ReqBody>, Response = axum::http::Response<ResBody>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = SecurityHeadersFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: axum::http::Request<ReqBody>) -> Self::Future {
        // Only a configured HSTS needs the request's scheme looked up.
        let hsts = self
            .hsts
            .as_ref()
            .filter(|_| came_over_tls(request.headers()))
            .cloned();
        SecurityHeadersFuture {
            inner: self.inner.call(request),
            hsts,
        }
    }
}

pin_project_lite::pin_project! {
    /// The response future of [`SetSecurityHeaders`].
    pub struct SecurityHeadersFuture<F> {
        #[pin]
        inner: F,
        hsts: Option<HeaderValue>,
    }
}

impl<F, ResBody, E> Future for SecurityHeadersFuture<F>
where
    F: Future<Output = Result<axum::http::Response<ResBody>, E>>,
{
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let mut response = std::task::ready!(this.inner.poll(cx))?;
        let headers = response.headers_mut();
        for (name, value) in &SECURITY_HEADERS {
            headers.entry(name).or_insert_with(|| value.clone());
        }
        if let Some(hsts) = this.hsts.take() {
            headers
                .entry(header::STRICT_TRANSPORT_SECURITY)
                .or_insert(hsts);
        }
        Poll::Ready(Ok(response))
    }
}

/// Whether the client reached the TLS proxy over HTTPS: the first
/// (client-facing) value of `x-forwarded-proto`.
fn came_over_tls(headers: &HeaderMap) -> bool {
    const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
    headers
        .get(X_FORWARDED_PROTO)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split(',').next())
        .is_some_and(|proto| proto.trim().eq_ignore_ascii_case("https"))
}

fn parse_origins(value: &str) -> Result<AllowedOrigins, ConfigError> {
    let var = "CORS_ALLOWED_ORIGINS";
    let expected = "`*` or comma-separated origins such as https://shop.example \
                    (scheme, host and optional port; no path or trailing slash)";
    let entries: Vec<&str> = value
        .split(',')
        .map(str::trim)
        .filter(|entry| !entry.is_empty())
        .collect();
    if entries == ["*"] {
        return Ok(AllowedOrigins::Any);
    }
    let mut origins = Vec::with_capacity(entries.len());
    for entry in entries {
        if !is_origin(entry) {
            return Err(invalid(var, value, expected));
        }
        let origin = HeaderValue::from_str(&entry.to_ascii_lowercase())
            .map_err(|_| invalid(var, value, expected))?;
        origins.push(origin);
    }
    if origins.is_empty() {
        return Err(invalid(var, value, expected));
    }
    Ok(AllowedOrigins::List(origins))
}

/// `scheme://host[:port]`, as browsers send in `Origin` (custom schemes
/// allowed, for hybrid mobile apps).
fn is_origin(entry: &str) -> bool {
    let Some((scheme, authority)) = entry.split_once("://") else {
        return false;
    };
    let scheme_ok = scheme.starts_with(|c: char| c.is_ascii_alphabetic())
        && scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
    let authority_ok = !authority.is_empty()
        && authority
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']' | '_'));
    scheme_ok && authority_ok
}

fn parse_header_names(var: &str, value: &str) -> Result<Vec<HeaderName>, ConfigError> {
    let expected = "comma-separated header names such as apollo-require-preflight \
                    (set CSRF_PREVENTION=false to turn the check off)";
    let names = value
        .split(',')
        .map(str::trim)
        .filter(|name| !name.is_empty())
        .map(|name| {
            HeaderName::from_bytes(name.to_ascii_lowercase().as_bytes())
                .map_err(|_| invalid(var, value, expected))
        })
        .collect::<Result<Vec<_>, _>>()?;
    if names.is_empty() {
        return Err(invalid(var, value, expected));
    }
    Ok(names)
}

/// CSRF prevention, as Apollo Router does it: a browser sends a request
/// cross-site without asking the server first (a CORS preflight) only when
/// the request is "simple" — no custom header and a form-like content type.
/// Refusing every simple request therefore refuses every request a hostile
/// page could make a browser send, while real clients pass by sending
/// `content-type: application/json` or one of the required headers.
#[derive(Debug, Clone)]
pub struct CsrfLayer {
    required_headers: Arc<[HeaderName]>,
}

impl CsrfLayer {
    /// A check that lets requests carrying any of `required_headers` through.
    pub fn new(required_headers: Vec<HeaderName>) -> Self {
        Self {
            required_headers: required_headers.into(),
        }
    }
}

impl<S> Layer<S> for CsrfLayer {
    type Service = Csrf<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Csrf {
            inner,
            required_headers: Arc::clone(&self.required_headers),
        }
    }
}

/// The service [`CsrfLayer`] wraps around `/graphql`.
#[derive(Debug, Clone)]
pub struct Csrf<S> {
    inner: S,
    required_headers: Arc<[HeaderName]>,
}

impl<S, B> Service<axum::http::Request<B>> for Csrf<S>
where
    S: Service<axum::http::Request<B>, Response = Response>,
{
    type Response = Response;
    type Error = S::Error;
    type Future = futures::future::Either<S::Future, Ready<Result<Response, S::Error>>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: axum::http::Request<B>) -> Self::Future {
        if is_allowed(
            request.method(),
            request.uri(),
            request.headers(),
            &self.required_headers,
        ) {
            return futures::future::Either::Left(self.inner.call(request));
        }
        metrics::counter!("router_errors_total", "code" => ErrorCode::CsrfPrevention.as_str())
            .increment(1);
        let names: Vec<&str> = self
            .required_headers
            .iter()
            .map(HeaderName::as_str)
            .collect();
        let explanation = format!(
            "this request was refused as a possible cross-site request forgery (CSRF): send it with \
             a content-type other than {} (e.g. application/json), or with one of these headers: {} \
             (e.g. `{}: true`)",
            SIMPLE_CONTENT_TYPES.join(", "),
            names.join(", "),
            names.last().copied().unwrap_or("apollo-require-preflight"),
        );
        let refusal = RouterError::CsrfPrevention { explanation };
        futures::future::Either::Right(ready(Ok(
            refusal.into_response(response_content_type(request.headers()))
        )))
    }
}

/// Whether a request can pass the CSRF check: it is exempt, or a browser
/// would have sent a preflight for it.
fn is_allowed(
    method: &Method,
    uri: &axum::http::Uri,
    headers: &HeaderMap,
    required_headers: &[HeaderName],
) -> bool {
    // A preflight itself (CORS answers it), or what nearly every GraphQL
    // client sends, checked first: a JSON body, which browsers preflight.
    if method == Method::OPTIONS || content_type_forces_preflight(headers) {
        return true;
    }
    // Websockets: the subscription protocol authenticates in its own
    // `connection_init` message.
    let websocket = headers
        .get_all(header::UPGRADE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .any(|protocol| protocol.trim().eq_ignore_ascii_case("websocket"));
    if websocket {
        return true;
    }
    // A browser opening GraphiQL. A GET that carries an operation is
    // checked even if it asks for HTML: without GraphiQL, it would run.
    if method == Method::GET && prefers_html(headers) && !carries_operation(uri) {
        return true;
    }
    required_headers.iter().any(|name| {
        headers
            .get(name)
            .is_some_and(|value| !value.as_bytes().iter().all(u8::is_ascii_whitespace))
    })
}

/// Whether the query string has a `query` or `extensions` parameter (a
/// string that does not parse counts as carrying one).
fn carries_operation(uri: &axum::http::Uri) -> bool {
    match Query::<HashMap<String, String>>::try_from_uri(uri) {
        Ok(Query(params)) => params.contains_key("query") || params.contains_key("extensions"),
        Err(_) => true,
    }
}

/// Whether the content type is one a browser only sends after a preflight:
/// present, parseable, and not a CORS-safelisted type. An unparseable or
/// repeated header does not count (a browser may treat it as simple).
fn content_type_forces_preflight(headers: &HeaderMap) -> bool {
    let mut values = headers.get_all(header::CONTENT_TYPE).iter();
    let (Some(value), None) = (values.next(), values.next()) else {
        return false;
    };
    // What nearly every GraphQL client sends, without the parsing below.
    if value.as_bytes().eq_ignore_ascii_case(b"application/json") {
        return true;
    }
    let Ok(value) = value.to_str() else {
        return false;
    };
    let essence = value
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    let Some((kind, subtype)) = essence.split_once('/') else {
        return false;
    };
    is_token(kind) && is_token(subtype) && !SIMPLE_CONTENT_TYPES.contains(&essence.as_str())
}

/// An HTTP token (RFC 9110), as MIME types' parts must be.
fn is_token(part: &str) -> bool {
    !part.is_empty()
        && part.bytes().all(|b| {
            b.is_ascii_alphanumeric()
                || matches!(
                    b,
                    b'!' | b'#'
                        | b'$'
                        | b'%'
                        | b'&'
                        | b'\''
                        | b'*'
                        | b'+'
                        | b'-'
                        | b'.'
                        | b'^'
                        | b'_'
                        | b'`'
                        | b'|'
                        | b'~'
                )
        })
}

#[cfg(test)]
mod tests {
    use axum::Router;
    use axum::body::Body;
    use axum::http::Request;
    use axum::routing::get;
    use http_body_util::BodyExt;
    use serde_json::Value;
    use tower::ServiceExt;

    use super::*;
    use axum::http::StatusCode;

    fn settings(pairs: &[(&str, &str)], mode: RunMode) -> SecuritySettings {
        SecuritySettings::from_env(&Env::from_pairs(pairs.iter().copied()), mode)
            .expect("valid settings")
    }

    /// `/graphql` protected as the router does it, `/framed` a route that
    /// sets its own `x-frame-options`, security headers on both.
    fn app(settings: &SecuritySettings) -> Router {
        let graphql = Router::new().route(
            "/graphql",
            get(|| async { "executed" }).post(|| async { "executed" }),
        );
        let routes = graphql.route_layer(settings.graphql_layer()).route(
            "/framed",
            get(|| async { ([(header::X_FRAME_OPTIONS, "SAMEORIGIN")], "framed") }),
        );
        routes.layer(ServiceBuilder::new().option_layer(settings.headers_layer()))
    }

    async fn send(app: &Router, request: Request<Body>) -> Response {
        app.clone().oneshot(request).await.expect("infallible")
    }

    fn get_request(uri: &str, headers: &[(&str, &str)]) -> Request<Body> {
        request(Method::GET, uri, headers)
    }

    fn request(method: Method, uri: &str, headers: &[(&str, &str)]) -> Request<Body> {
        let mut builder = Request::builder().method(method).uri(uri);
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        builder.body(Body::from("{}")).expect("a request")
    }

    fn header<'r>(response: &'r Response, name: &str) -> Option<&'r str> {
        response.headers().get(name).and_then(|v| v.to_str().ok())
    }

    async fn json(response: Response) -> Value {
        let bytes = response
            .into_body()
            .collect()
            .await
            .expect("a body")
            .to_bytes();
        serde_json::from_slice(&bytes).expect("JSON")
    }

    const QUERY: &str = "/graphql?query=%7B__typename%7D";
    const PREFLIGHT_HEADER: (&str, &str) = ("apollo-require-preflight", "true");

    #[tokio::test]
    async fn allowed_origins_get_cors_headers_and_others_do_not() {
        let app = app(&settings(
            &[(
                "CORS_ALLOWED_ORIGINS",
                "https://shop.example, https://Admin.Shop.example:8443",
            )],
            RunMode::Serve,
        ));
        for origin in ["https://shop.example", "https://admin.shop.example:8443"] {
            let response = send(
                &app,
                get_request(QUERY, &[("origin", origin), PREFLIGHT_HEADER]),
            )
            .await;
            assert_eq!(response.status(), StatusCode::OK);
            assert_eq!(
                header(&response, "access-control-allow-origin"),
                Some(origin)
            );
            let exposed = header(&response, "access-control-expose-headers").unwrap_or_default();
            assert!(
                exposed.contains("retry-after") && exposed.contains("ratelimit-remaining"),
                "{exposed}"
            );
            assert_eq!(header(&response, "access-control-allow-credentials"), None);
            assert_eq!(header(&response, "vary"), Some("origin"));
        }
        // A CSRF refusal is readable by an allowed page.
        let refused = send(
            &app,
            get_request(QUERY, &[("origin", "https://shop.example")]),
        )
        .await;
        assert_eq!(refused.status(), StatusCode::BAD_REQUEST);
        assert_eq!(
            header(&refused, "access-control-allow-origin"),
            Some("https://shop.example")
        );
        let response = send(
            &app,
            get_request(
                QUERY,
                &[("origin", "https://evil.example"), PREFLIGHT_HEADER],
            ),
        )
        .await;
        assert_eq!(
            response.status(),
            StatusCode::OK,
            "same-origin policy, not the server, blocks it"
        );
        assert_eq!(header(&response, "access-control-allow-origin"), None);
        // The answer depends on the origin, so caches must keep them apart.
        assert_eq!(header(&response, "vary"), Some("origin"));
    }

    #[tokio::test]
    async fn preflights_are_answered() {
        let app = app(&settings(
            &[
                ("CORS_ALLOWED_ORIGINS", "https://shop.example"),
                ("CORS_ALLOW_CREDENTIALS", "true"),
            ],
            RunMode::Serve,
        ));
        let response = send(
            &app,
            request(
                Method::OPTIONS,
                "/graphql",
                &[
                    ("origin", "https://shop.example"),
                    ("access-control-request-method", "POST"),
                    (
                        "access-control-request-headers",
                        "content-type,apollo-require-preflight",
                    ),
                ],
            ),
        )
        .await;
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(
            header(&response, "access-control-allow-origin"),
            Some("https://shop.example")
        );
        assert_eq!(
            header(&response, "access-control-allow-credentials"),
            Some("true")
        );
        assert_eq!(header(&response, "access-control-max-age"), Some("600"));
        assert_eq!(header(&response, "vary"), Some("origin"));
        let methods = header(&response, "access-control-allow-methods").unwrap_or_default();
        assert!(
            methods.contains("POST") && methods.contains("GET"),
            "{methods}"
        );
        let allowed = header(&response, "access-control-allow-headers").unwrap_or_default();
        for name in [
            "content-type",
            "authorization",
            "apollo-require-preflight",
            "x-api-key",
            "traceparent",
            // Apollo Client's clientAwareness, and the multipart Accept.
            "apollographql-client-name",
            "apollographql-client-version",
            "accept",
        ] {
            assert!(allowed.contains(name), "{name} in {allowed}");
        }
    }

    #[tokio::test]
    async fn cors_defaults_depend_on_the_mode() {
        let serve = app(&settings(&[], RunMode::Serve));
        let response = send(
            &serve,
            get_request(
                QUERY,
                &[("origin", "https://shop.example"), PREFLIGHT_HEADER],
            ),
        )
        .await;
        assert_eq!(header(&response, "access-control-allow-origin"), None);
        let dev = app(&settings(&[], RunMode::Dev));
        let response = send(
            &dev,
            get_request(
                QUERY,
                &[("origin", "http://localhost:5173"), PREFLIGHT_HEADER],
            ),
        )
        .await;
        assert_eq!(header(&response, "access-control-allow-origin"), Some("*"));
        assert_eq!(header(&response, "vary"), None, "`*` for every origin");
        // CSRF headers configured by the operator may be sent cross-origin.
        let custom = settings(&[("CSRF_REQUIRED_HEADERS", "x-shop-client")], RunMode::Dev);
        let response = send(
            &app(&custom),
            request(
                Method::OPTIONS,
                "/graphql",
                &[
                    ("origin", "http://localhost:5173"),
                    ("access-control-request-method", "GET"),
                    ("access-control-request-headers", "x-shop-client"),
                ],
            ),
        )
        .await;
        let allowed = header(&response, "access-control-allow-headers").unwrap_or_default();
        assert!(allowed.contains("x-shop-client"), "{allowed}");
    }

    #[tokio::test]
    async fn security_headers_are_on_every_response_without_overriding() {
        let app = app(&settings(&[], RunMode::Serve));
        let response = send(&app, get_request(QUERY, &[PREFLIGHT_HEADER])).await;
        assert_eq!(header(&response, "x-content-type-options"), Some("nosniff"));
        assert_eq!(header(&response, "x-frame-options"), Some("DENY"));
        assert_eq!(header(&response, "referrer-policy"), Some("no-referrer"));
        assert_eq!(
            header(&response, "strict-transport-security"),
            None,
            "not over TLS"
        );
        // A CSRF refusal carries them too.
        let refused = send(&app, get_request(QUERY, &[])).await;
        assert_eq!(refused.status(), StatusCode::BAD_REQUEST);
        assert_eq!(header(&refused, "x-frame-options"), Some("DENY"));
        let framed = send(&app, get_request("/framed", &[])).await;
        assert_eq!(header(&framed, "x-frame-options"), Some("SAMEORIGIN"));
        assert_eq!(header(&framed, "x-content-type-options"), Some("nosniff"));
        let off = super::tests::app(&settings(&[("SECURITY_HEADERS", "false")], RunMode::Serve));
        let response = send(
            &off,
            get_request("/framed", &[("x-forwarded-proto", "https")]),
        )
        .await;
        assert_eq!(header(&response, "x-content-type-options"), None);
        assert_eq!(header(&response, "strict-transport-security"), None);
    }

    #[tokio::test]
    async fn hsts_only_for_requests_that_came_over_tls() {
        let app = app(&settings(&[], RunMode::Serve));
        for (proto, expected) in [
            ("https", Some("max-age=31536000; includeSubDomains")),
            ("HTTPS, http", Some("max-age=31536000; includeSubDomains")),
            ("http", None),
            ("http, https", None),
        ] {
            let response = send(
                &app,
                get_request("/framed", &[("x-forwarded-proto", proto)]),
            )
            .await;
            assert_eq!(
                header(&response, "strict-transport-security"),
                expected,
                "{proto}"
            );
        }
        let short = super::tests::app(&settings(&[("HSTS_MAX_AGE", "60")], RunMode::Serve));
        let response = send(
            &short,
            get_request("/framed", &[("x-forwarded-proto", "https")]),
        )
        .await;
        assert_eq!(
            header(&response, "strict-transport-security"),
            Some("max-age=60; includeSubDomains")
        );
        let off = super::tests::app(&settings(&[("HSTS_MAX_AGE", "0")], RunMode::Serve));
        let response = send(
            &off,
            get_request("/framed", &[("x-forwarded-proto", "https")]),
        )
        .await;
        assert_eq!(header(&response, "strict-transport-security"), None);
        assert_eq!(header(&response, "x-frame-options"), Some("SAMEORIGIN"));
    }

    #[tokio::test]
    async fn csrf_refuses_simple_requests() {
        let app = app(&settings(&[], RunMode::Serve));
        let refused = send(&app, get_request(QUERY, &[])).await;
        assert_eq!(refused.status(), StatusCode::BAD_REQUEST);
        let body = json(refused).await;
        assert_eq!(
            body["errors"][0]["extensions"]["code"], "CSRF_PREVENTION",
            "{body}"
        );
        let message = body["errors"][0]["message"].as_str().unwrap_or_default();
        assert!(
            message.contains("apollo-require-preflight")
                && message.contains("x-apollo-operation-name"),
            "{message}"
        );
        for (method, headers) in [
            (Method::POST, vec![("content-type", "text/plain")]),
            (
                Method::POST,
                vec![("content-type", "Text/Plain; charset=utf-8")],
            ),
            (
                Method::POST,
                vec![("content-type", "multipart/form-data; boundary=x")],
            ),
            (
                Method::POST,
                vec![("content-type", "application/x-www-form-urlencoded")],
            ),
            (Method::POST, vec![]),
            (Method::POST, vec![("content-type", "not a mime type")]),
            (Method::GET, vec![("apollo-require-preflight", "  ")]),
            (
                Method::GET,
                vec![("accept", "text/html"), ("apollo-require-preflight", "")],
            ),
        ] {
            let response = send(&app, request(method.clone(), QUERY, &headers)).await;
            assert_eq!(
                response.status(),
                StatusCode::BAD_REQUEST,
                "{method} {headers:?}"
            );
        }
        // GraphiQL's page, but carrying an operation: checked.
        let response = send(&app, get_request(QUERY, &[("accept", "text/html")])).await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    }

    #[tokio::test]
    async fn csrf_lets_preflighted_and_exempt_requests_through() {
        let app = app(&settings(&[], RunMode::Serve));
        for (method, uri, headers) in [
            (Method::GET, QUERY, vec![PREFLIGHT_HEADER]),
            (Method::GET, QUERY, vec![("x-apollo-operation-name", "Me")]),
            (
                Method::POST,
                "/graphql",
                vec![("content-type", "application/json")],
            ),
            (
                Method::POST,
                "/graphql",
                vec![("content-type", "Application/JSON; charset=utf-8")],
            ),
            (
                Method::POST,
                "/graphql",
                vec![("content-type", "application/graphql-response+json")],
            ),
            (
                Method::POST,
                "/graphql",
                vec![("content-type", "text/plain"), PREFLIGHT_HEADER],
            ),
            // GraphiQL in a browser.
            (
                Method::GET,
                "/graphql",
                vec![("accept", "text/html,application/xhtml+xml")],
            ),
            // Websocket subscriptions.
            (
                Method::GET,
                "/graphql",
                vec![("connection", "upgrade"), ("upgrade", "WebSocket")],
            ),
        ] {
            let response = send(&app, request(method.clone(), uri, &headers)).await;
            assert_eq!(
                response.status(),
                StatusCode::OK,
                "{method} {uri} {headers:?}"
            );
        }
        // A preflight is not CSRF's business: without CORS, the route
        // answers (405).
        let response = send(&app, request(Method::OPTIONS, "/graphql", &[])).await;
        assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
        let custom = app_with(&[("CSRF_REQUIRED_HEADERS", "X-Shop-Client")]);
        let response = send(&custom, get_request(QUERY, &[("x-shop-client", "web")])).await;
        assert_eq!(response.status(), StatusCode::OK);
        let response = send(&custom, get_request(QUERY, &[PREFLIGHT_HEADER])).await;
        assert_eq!(
            response.status(),
            StatusCode::BAD_REQUEST,
            "only the configured headers count"
        );
        let off = app_with(&[("CSRF_PREVENTION", "false")]);
        let response = send(&off, get_request(QUERY, &[])).await;
        assert_eq!(response.status(), StatusCode::OK);
    }

    fn app_with(pairs: &[(&str, &str)]) -> Router {
        app(&settings(pairs, RunMode::Serve))
    }

    #[test]
    fn defaults() {
        let serve = settings(&[], RunMode::Serve);
        assert_eq!(serve.cors, None);
        assert!(serve.security_headers);
        assert_eq!(serve.hsts_max_age, Some(31_536_000));
        assert_eq!(
            serve.csrf_required_headers,
            Some(vec![
                HeaderName::from_static("x-apollo-operation-name"),
                HeaderName::from_static("apollo-require-preflight"),
            ])
        );
        assert_eq!(
            settings(&[], RunMode::Dev).cors,
            Some(CorsSettings {
                origins: AllowedOrigins::Any,
                allow_credentials: false
            })
        );
        assert!(serve.cors_layer().is_none());
    }

    #[test]
    fn invalid_values_name_the_variable() {
        for (pairs, mode, var) in [
            (
                vec![("CORS_ALLOWED_ORIGINS", "https://shop.example/")],
                RunMode::Serve,
                "CORS_ALLOWED_ORIGINS",
            ),
            (
                vec![("CORS_ALLOWED_ORIGINS", "shop.example")],
                RunMode::Serve,
                "CORS_ALLOWED_ORIGINS",
            ),
            (
                vec![("CORS_ALLOWED_ORIGINS", "*, https://shop.example")],
                RunMode::Serve,
                "CORS_ALLOWED_ORIGINS",
            ),
            (
                vec![("CORS_ALLOWED_ORIGINS", ",")],
                RunMode::Serve,
                "CORS_ALLOWED_ORIGINS",
            ),
            (
                vec![("CORS_ALLOW_CREDENTIALS", "maybe")],
                RunMode::Serve,
                "CORS_ALLOW_CREDENTIALS",
            ),
            (
                vec![("CORS_ALLOW_CREDENTIALS", "true")],
                RunMode::Dev,
                "CORS_ALLOW_CREDENTIALS",
            ),
            (
                vec![
                    ("CORS_ALLOWED_ORIGINS", "*"),
                    ("CORS_ALLOW_CREDENTIALS", "yes"),
                ],
                RunMode::Serve,
                "CORS_ALLOW_CREDENTIALS",
            ),
            (
                vec![("SECURITY_HEADERS", "perhaps")],
                RunMode::Serve,
                "SECURITY_HEADERS",
            ),
            (
                vec![("HSTS_MAX_AGE", "forever")],
                RunMode::Serve,
                "HSTS_MAX_AGE",
            ),
            (vec![("HSTS_MAX_AGE", "-1")], RunMode::Serve, "HSTS_MAX_AGE"),
            (
                vec![("HSTS_MAX_AGE", "999999999999")],
                RunMode::Serve,
                "HSTS_MAX_AGE",
            ),
            (
                vec![("CSRF_PREVENTION", "sometimes")],
                RunMode::Serve,
                "CSRF_PREVENTION",
            ),
            (
                vec![("CSRF_REQUIRED_HEADERS", "bad header")],
                RunMode::Serve,
                "CSRF_REQUIRED_HEADERS",
            ),
            (
                vec![("CSRF_REQUIRED_HEADERS", " , ")],
                RunMode::Serve,
                "CSRF_REQUIRED_HEADERS",
            ),
        ] {
            let err = SecuritySettings::from_env(&Env::from_pairs(pairs.clone()), mode)
                .expect_err(var)
                .to_string();
            assert!(err.contains(var), "{pairs:?}: {err}");
        }
        // Credentials with listed origins are fine.
        let listed = settings(
            &[
                ("CORS_ALLOWED_ORIGINS", "https://shop.example"),
                ("CORS_ALLOW_CREDENTIALS", "true"),
            ],
            RunMode::Dev,
        );
        assert!(listed.cors.is_some_and(|cors| cors.allow_credentials));
    }
}

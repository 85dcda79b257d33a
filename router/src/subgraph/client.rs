//! The production [`Fetcher`](super::Fetcher): GraphQL over HTTP/1.1 to each subgraph.
//!
//! One pooled `hyper` client serves every subgraph, so connections are kept
//! alive and reused across requests (and closed after [`POOL_IDLE_TIMEOUT`]
//! unused). Each request:
//!
//! * is a `POST` of `{"query", "operationName"?, "variables"}` serialised
//!   straight to bytes, with `accept: application/graphql-response+json,
//!   application/json` and `accept-encoding: gzip` when compression is on,
//!   `identity` otherwise (a gzip answer is decompressed transparently by
//!   `tower-http`'s `Decompression`);
//! * carries the caller's verified identity in the `x-shopgraph-user-*`
//!   headers ([`forward_identity`]) — never the client's own token or
//!   headers — and the current span's W3C `traceparent`;
//! * is signed for the subgraph it goes to ([`HopSigner`]: RFC 9421 over
//!   method, target, body digest and identity headers), afresh for every
//!   attempt, so a retry is never a replay;
//! * gives up after the configured timeout, counting connect, send and the
//!   whole body.
//!
//! A subgraph's GraphQL answer comes back whether it is a 2xx or a 4xx (a
//! GraphQL-over-HTTP server answers an invalid document with 400 and
//! `errors`, which are kept); anything else becomes a [`FetchError`].
//!
//! Subgraph URLs are plain `http://` (subgraphs sit on the internal
//! network); an `https://` URL fails as unreachable.

use std::collections::BTreeMap;
use std::time::Duration;

use http::{HeaderMap, HeaderValue, Method, Request, StatusCode, Uri, header};
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use hyper::body::Bytes;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use serde::Serialize;
use serde_json::{Map, Value};
use shopgraph_core::hop::HopSigner;
use shopgraph_core::identity::forward_identity;
use shopgraph_core::telemetry::inject_trace_context;
use tower::ServiceExt;
use tower_http::decompression::Decompression;
use tracing::Instrument;

use super::{FetchError, SubgraphRequest, SubgraphResponse};

/// How long an unused keep-alive connection stays in the pool.
pub const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// The largest (decompressed) response body accepted from a subgraph; a
/// larger one is [`FetchError::Malformed`] rather than a memory problem.
pub const MAX_RESPONSE_BYTES: usize = 64 * 1024 * 1024;

const ACCEPT: &str = "application/graphql-response+json, application/json";

type HttpClient = Decompression<Client<HttpConnector, Full<Bytes>>>;

/// Sends subgraph operations over pooled HTTP/1.1 connections, to the
/// replica URL the load balancer picked ([`HttpFetcher::send_to`]).
#[derive(Clone)]
pub struct HttpFetcher {
    client: HttpClient,
    timeout: Duration,
    /// Whether subgraphs are asked for gzip answers (`accept-encoding`).
    compression: bool,
    /// Subgraph name → its own timeout, where it differs from `timeout`.
    timeouts: BTreeMap<String, Duration>,
    signer: HopSigner,
}

impl std::fmt::Debug for HttpFetcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpFetcher")
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl HttpFetcher {
    /// One pooled client for all subgraphs and their replicas; every
    /// request gives up after `timeout` (unless its subgraph has its own)
    /// and is signed by `signer`.
    pub fn new(timeout: Duration, signer: HopSigner) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_keepalive(Some(POOL_IDLE_TIMEOUT));
        connector.set_connect_timeout(Some(timeout));
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(POOL_IDLE_TIMEOUT)
            .pool_timer(TokioTimer::new())
            .build(connector);
        Self {
            client: Decompression::new(client),
            timeout,
            compression: true,
            timeouts: BTreeMap::new(),
            signer,
        }
    }

    /// Gives the named subgraphs their own timeout (a slow reporting
    /// subgraph may need longer than the catalogue).
    pub fn with_timeouts(mut self, timeouts: BTreeMap<String, Duration>) -> Self {
        self.timeouts = timeouts;
        self
    }

    /// Whether to ask subgraphs for gzip answers. On by default; worth
    /// turning off when subgraphs are on the same host or a fast network,
    /// where compressing costs the subgraph more CPU than the bytes save.
    pub fn with_compression(mut self, compression: bool) -> Self {
        self.compression = compression;
        self
    }

    /// Sends `request` to one replica of `subgraph` at `uri`, within the
    /// subgraph's timeout, in a `subgraph_request` span. The load balancer
    /// calls this with the replica it picked.
    pub async fn send_to(
        &self,
        subgraph: &str,
        uri: &Uri,
        request: &SubgraphRequest<'_>,
    ) -> Result<SubgraphResponse, FetchError> {
        let span = tracing::info_span!(
            "subgraph_request",
            subgraph,
            url = %uri,
            otel.kind = "client",
            http.status_code = tracing::field::Empty,
        );
        // The span is entered before the trace context is injected, so
        // the subgraph's spans hang under this one.
        let timeout = self.timeout_of(subgraph);
        tokio::time::timeout(timeout, self.send(subgraph, uri.clone(), request))
            .instrument(span)
            .await
            .unwrap_or_else(|_| {
                Err(FetchError::Timeout {
                    subgraph: subgraph.to_owned(),
                    timeout,
                })
            })
    }

    /// The limit of one request to `subgraph`.
    pub fn timeout_of(&self, subgraph: &str) -> Duration {
        self.timeouts.get(subgraph).copied().unwrap_or(self.timeout)
    }

    async fn send(
        &self,
        subgraph: &str,
        uri: Uri,
        request: &SubgraphRequest<'_>,
    ) -> Result<SubgraphResponse, FetchError> {
        let body = serde_json::to_vec(&Body {
            query: request.query,
            operation_name: request.operation_name,
            variables: &request.variables,
        })
        .map_err(|err| malformed(subgraph, format!("cannot encode the request: {err}")))?;

        let body = Bytes::from(body);
        let mut headers = HeaderMap::with_capacity(10);
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        headers.insert(header::ACCEPT, HeaderValue::from_static(ACCEPT));
        // Always explicit: the decompression layer would otherwise announce
        // gzip on its own, and the subgraph would compress every answer.
        let encoding = if self.compression { "gzip" } else { "identity" };
        headers.insert(header::ACCEPT_ENCODING, HeaderValue::from_static(encoding));
        forward_identity(request.identity, &mut headers);
        inject_trace_context(&mut headers);
        self.signer
            .sign(&Method::POST, &uri, &mut headers, &body, subgraph)
            .await
            .map_err(|err| malformed(subgraph, err.to_string()))?;
        let mut http_request = Request::new(Full::new(body));
        *http_request.method_mut() = Method::POST;
        *http_request.uri_mut() = uri;
        *http_request.headers_mut() = headers;

        let response = self
            .client
            .clone()
            .oneshot(http_request)
            .await
            .map_err(|err| {
                let reason = error_chain(&err);
                let subgraph = subgraph.to_owned();
                if err.is_connect() {
                    FetchError::Connect { subgraph, reason }
                } else {
                    FetchError::Unreachable { subgraph, reason }
                }
            })?;
        let status = response.status();
        tracing::Span::current().record("http.status_code", status.as_u16());
        let (parts, body) = response.into_parts();
        let bytes = Limited::new(body, MAX_RESPONSE_BYTES)
            .collect()
            .await
            .map_err(|err| body_error(subgraph, &*err))?
            .to_bytes();
        decode(subgraph, status, &parts.headers, &bytes)
    }
}

/// The GraphQL-over-HTTP request body.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Body<'a> {
    query: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    operation_name: Option<&'a str>,
    variables: &'a Map<String, Value>,
}

/// Turns a status and body into the subgraph's GraphQL answer or an error.
fn decode(
    subgraph: &str,
    status: StatusCode,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<SubgraphResponse, FetchError> {
    let status_error = || FetchError::Status {
        subgraph: subgraph.to_owned(),
        status: status.as_u16(),
    };
    if !status.is_success() && !status.is_client_error() {
        return Err(status_error());
    }
    // sonic-rs: the same serde data model, parsed with SIMD; answers are
    // the biggest JSON the router reads.
    let parsed = sonic_rs::from_slice::<SubgraphResponse>(body)
        .map_err(|err| {
            let content_type = headers
                .get(header::CONTENT_TYPE)
                .and_then(|value| value.to_str().ok())
                .unwrap_or("none");
            format!("not a GraphQL JSON response (content-type {content_type}): {err}")
        })
        .and_then(|response| {
            if response.data.is_none() && response.errors.is_empty() {
                Err("a response with neither data nor errors".to_owned())
            } else {
                Ok(response)
            }
        });
    match parsed {
        Ok(response) => Ok(response),
        // A 4xx without a GraphQL body (404 page, proxy error) says only its status.
        Err(_) if status.is_client_error() => Err(status_error()),
        Err(reason) => Err(malformed(subgraph, reason)),
    }
}

fn malformed(subgraph: &str, reason: String) -> FetchError {
    FetchError::Malformed {
        subgraph: subgraph.to_owned(),
        reason,
    }
}

/// A failure while reading the body: the connection (unreachable), or what
/// came over it (too large, bad gzip: malformed).
fn body_error(subgraph: &str, err: &(dyn std::error::Error + Send + Sync + 'static)) -> FetchError {
    if err.is::<LengthLimitError>() {
        return malformed(
            subgraph,
            format!("the response is larger than {MAX_RESPONSE_BYTES} bytes"),
        );
    }
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(cause) = source {
        if cause.is::<hyper::Error>() {
            return FetchError::Unreachable {
                subgraph: subgraph.to_owned(),
                reason: error_chain(err),
            };
        }
        source = cause.source();
    }
    malformed(subgraph, error_chain(err))
}

fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    shopgraph_core::error::error_chain(err)
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

    use axum::Json;
    use axum::http::HeaderMap as AxumHeaders;
    use axum::response::IntoResponse;
    use axum::routing::post;
    use serde_json::json;
    use shopgraph_core::identity::{ADMIN_ROLE, Identity, Viewer};

    use super::*;
    use crate::subgraph::Fetcher;

    fn test_signer() -> HopSigner {
        shopgraph_core::hop::HopSettings::from_env(
            &shopgraph_core::config::Env::default(),
            shopgraph_core::settings::RunMode::Dev,
        )
        .and_then(|settings| settings.require_signer())
        .expect("dev signs with a generated key")
    }
    use futures::future::BoxFuture;

    /// A stand-in subgraph: echoes what it received, plus routes that
    /// misbehave on purpose; counts TCP connections and gzip answers.
    struct TestSubgraph {
        addr: SocketAddr,
        connections: Arc<AtomicUsize>,
        gzipped: Arc<AtomicBool>,
    }

    async fn echo(headers: AxumHeaders, Json(body): Json<Value>) -> Json<Value> {
        let header = |name: &str| {
            headers
                .get(name)
                .and_then(|value| value.to_str().ok())
                .map(str::to_owned)
        };
        Json(json!({ "data": {
            "body": body,
            "userId": header("x-shopgraph-user-id"),
            "roles": header("x-shopgraph-user-roles"),
            "authorization": header("authorization"),
            "traceparent": header("traceparent"),
            "contentType": header("content-type"),
            "accept": header("accept"),
            "acceptEncoding": header("accept-encoding"),
            "signatureInput": header("signature-input"),
            "padding": "x".repeat(256),
        } }))
    }

    async fn start() -> TestSubgraph {
        use axum::serve::ListenerExt;
        let connections = Arc::new(AtomicUsize::new(0));
        let gzipped = Arc::new(AtomicBool::new(false));
        let seen = gzipped.clone();
        let app = axum::Router::new()
            .route("/graphql", post(echo))
            .route(
                "/gzip",
                post(echo).layer(tower_http::compression::CompressionLayer::new()),
            )
            .route(
                "/slow",
                post(|| async {
                    tokio::time::sleep(Duration::from_secs(5)).await;
                    Json(json!({ "data": {} }))
                }),
            )
            .route(
                "/unavailable",
                post(|| async { (StatusCode::SERVICE_UNAVAILABLE, "upstream down") }),
            )
            .route(
                "/invalid",
                post(|| async {
                    (
                        StatusCode::BAD_REQUEST,
                        Json(json!({ "errors": [{
                            "message": "Unknown field \"nope\"",
                            "extensions": { "code": "GRAPHQL_VALIDATION_FAILED" }
                        }] })),
                    )
                }),
            )
            .route(
                "/missing",
                post(|| async { (StatusCode::NOT_FOUND, "<html>not here</html>") }),
            )
            .route("/html", post(|| async { "<html>hello</html>" }))
            .route("/empty", post(|| async { Json(json!({})) }))
            .layer(axum::middleware::map_response(
                move |response: axum::response::Response| {
                    let seen = seen.clone();
                    async move {
                        if response.headers().get(header::CONTENT_ENCODING)
                            == Some(&HeaderValue::from_static("gzip"))
                        {
                            seen.store(true, Ordering::SeqCst);
                        }
                        response.into_response()
                    }
                },
            ));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("address");
        let counter = connections.clone();
        let listener = listener.tap_io(move |_| {
            counter.fetch_add(1, Ordering::SeqCst);
        });
        tokio::spawn(async move { axum::serve(listener, app).await });
        TestSubgraph {
            addr,
            connections,
            gzipped,
        }
    }

    /// The transport with one fixed URL per subgraph name.
    struct Routes {
        http: HttpFetcher,
        urls: BTreeMap<String, String>,
    }

    impl Routes {
        fn with_timeouts(self, timeouts: BTreeMap<String, Duration>) -> Self {
            Self {
                http: self.http.with_timeouts(timeouts),
                ..self
            }
        }
    }

    impl Fetcher for Routes {
        fn fetch<'a>(
            &'a self,
            subgraph: &'a str,
            request: &'a SubgraphRequest<'a>,
        ) -> BoxFuture<'a, Result<SubgraphResponse, FetchError>> {
            Box::pin(async move {
                let Some(url) = self.urls.get(subgraph) else {
                    return Err(FetchError::UnknownSubgraph(subgraph.to_owned()));
                };
                let uri = url.parse::<Uri>().map_err(|err| FetchError::Unreachable {
                    subgraph: subgraph.to_owned(),
                    reason: err.to_string(),
                })?;
                self.http.send_to(subgraph, &uri, request).await
            })
        }
    }

    fn fetcher(routes: &[(&str, String)], timeout: Duration) -> Routes {
        Routes {
            http: HttpFetcher::new(timeout, test_signer()),
            urls: routes
                .iter()
                .map(|(name, url)| ((*name).to_owned(), url.clone()))
                .collect(),
        }
    }

    fn alice() -> Identity {
        Identity::User(Viewer {
            user_id: "alice".into(),
            roles: vec![ADMIN_ROLE.into(), "support".into()],
        })
    }

    fn request<'a>(identity: &'a Identity) -> SubgraphRequest<'a> {
        let mut variables = Map::new();
        variables.insert("id".into(), json!("p-1"));
        SubgraphRequest {
            query: "query Product($id: ID!) { product(id: $id) { name } }",
            operation_name: Some("Product"),
            variables,
            identity,
            is_query: true,
        }
    }

    #[tokio::test]
    async fn a_request_round_trips_with_identity_and_headers() {
        let server = start().await;
        let url = format!("http://{}/graphql", server.addr);
        let fetcher = fetcher(&[("product", url)], Duration::from_secs(5));
        let identity = alice();
        let response = fetcher.fetch("product", &request(&identity)).await.unwrap();
        assert!(response.errors.is_empty());
        let data = response.data.unwrap();
        assert_eq!(
            data["body"],
            json!({
                "query": "query Product($id: ID!) { product(id: $id) { name } }",
                "operationName": "Product",
                "variables": { "id": "p-1" },
            })
        );
        assert_eq!(data["userId"], "alice");
        assert_eq!(data["roles"], "admin,support");
        assert_eq!(data["authorization"], Value::Null);
        assert_eq!(data["contentType"], "application/json");
        assert_eq!(data["accept"], ACCEPT);
        assert_eq!(data["acceptEncoding"], "gzip");
        let signature_input = data["signatureInput"].as_str().unwrap_or_default();
        assert!(
            signature_input.starts_with("shopgraph=(")
                && signature_input.contains("\"x-shopgraph-user-id\"")
                && signature_input.contains(";tag=\"product\""),
            "{signature_input}"
        );

        let anonymous = Identity::Anonymous;
        let mut unnamed = request(&anonymous);
        unnamed.operation_name = None;
        let data = fetcher
            .fetch("product", &unnamed)
            .await
            .unwrap()
            .data
            .unwrap();
        assert_eq!(data["userId"], Value::Null);
        assert_eq!(data["roles"], Value::Null);
        assert!(data["body"].get("operationName").is_none());
    }

    #[tokio::test]
    async fn connections_are_reused() {
        let server = start().await;
        let url = format!("http://{}/graphql", server.addr);
        let fetcher = fetcher(&[("product", url)], Duration::from_secs(5));
        let identity = alice();
        for _ in 0..3 {
            fetcher.fetch("product", &request(&identity)).await.unwrap();
        }
        assert_eq!(server.connections.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_gzip_response_is_decoded() {
        let server = start().await;
        let url = format!("http://{}/gzip", server.addr);
        let fetcher = fetcher(&[("product", url)], Duration::from_secs(5));
        let identity = alice();
        let data = fetcher
            .fetch("product", &request(&identity))
            .await
            .unwrap()
            .data
            .unwrap();
        assert!(
            server.gzipped.load(Ordering::SeqCst),
            "the server compressed"
        );
        assert_eq!(data["userId"], "alice");
    }

    #[tokio::test]
    async fn graphql_errors_of_a_400_are_kept() {
        let server = start().await;
        let url = format!("http://{}/invalid", server.addr);
        let fetcher = fetcher(&[("product", url)], Duration::from_secs(5));
        let identity = alice();
        let response = fetcher.fetch("product", &request(&identity)).await.unwrap();
        assert_eq!(response.data, None);
        assert_eq!(
            response.errors[0]["extensions"]["code"],
            "GRAPHQL_VALIDATION_FAILED"
        );
    }

    #[tokio::test]
    async fn failures_become_fetch_errors() {
        let server = start().await;
        let closed = {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            format!("http://{}/graphql", listener.local_addr().unwrap())
        };
        let at = |path: &str| format!("http://{}{path}", server.addr);
        let fetcher = fetcher(
            &[
                ("slow", at("/slow")),
                ("down", at("/unavailable")),
                ("missing", at("/missing")),
                ("html", at("/html")),
                ("empty", at("/empty")),
                ("closed", closed),
                ("garbled", "not a url at all".to_owned()),
            ],
            Duration::from_millis(300),
        );
        let identity = alice();
        let request = request(&identity);
        let fetch = |name: &'static str| fetcher.fetch(name, &request);

        assert!(matches!(
            fetch("slow").await,
            Err(FetchError::Timeout { timeout, .. }) if timeout == Duration::from_millis(300)
        ));
        assert!(matches!(
            fetch("down").await,
            Err(FetchError::Status { status: 503, .. })
        ));
        assert!(matches!(
            fetch("missing").await,
            Err(FetchError::Status { status: 404, .. })
        ));
        assert!(matches!(
            fetch("html").await,
            Err(FetchError::Malformed { .. })
        ));
        assert!(matches!(
            fetch("empty").await,
            Err(FetchError::Malformed { .. })
        ));
        assert!(matches!(
            fetch("closed").await,
            Err(FetchError::Connect { .. })
        ));
        assert!(matches!(
            fetch("garbled").await,
            Err(FetchError::Unreachable { .. })
        ));
        assert!(matches!(
            fetch("nowhere").await,
            Err(FetchError::UnknownSubgraph(name)) if name == "nowhere"
        ));

        // A subgraph with its own, shorter limit.
        let own = self::fetcher(&[("slow", at("/slow"))], Duration::from_secs(30))
            .with_timeouts([("slow".to_owned(), Duration::from_millis(100))].into());
        assert!(matches!(
            own.fetch("slow", &request).await,
            Err(FetchError::Timeout { timeout, .. }) if timeout == Duration::from_millis(100)
        ));
    }

    #[test]
    fn the_current_trace_is_propagated() {
        use opentelemetry::trace::TracerProvider as _;
        use tracing_subscriber::layer::SubscriberExt;

        opentelemetry::global::set_text_map_propagator(
            opentelemetry_sdk::propagation::TraceContextPropagator::new(),
        );
        let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder().build();
        let subscriber = tracing_subscriber::registry()
            .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("test")));
        let _guard = tracing::subscriber::set_default(subscriber);

        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let server = start().await;
            let url = format!("http://{}/graphql", server.addr);
            let fetcher = fetcher(&[("product", url)], Duration::from_secs(5));
            let identity = alice();
            let data = fetcher
                .fetch("product", &request(&identity))
                .instrument(tracing::info_span!("client_request"))
                .await
                .unwrap()
                .data
                .unwrap();
            let traceparent = data["traceparent"].as_str().unwrap_or_default();
            // version-traceid-spanid-flags
            assert_eq!(traceparent.split('-').count(), 4, "{data:#}");
        });
    }
}

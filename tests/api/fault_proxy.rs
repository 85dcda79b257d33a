//! A fault-injecting HTTP proxy for the traffic tests.
//!
//! [`FaultProxy`] listens on a loopback port and forwards every request to
//! one real replica (a subgraph process or an in-process test app), so the
//! router under test talks to real services while the test decides, at run
//! time, how the link behaves ([`Mode`]): forwarded (optionally slowed
//! down), answered 500 without reaching the replica, forwarded and then
//! lost (the replica did the work, the router never hears back), or refused
//! like a dead process.
//!
//! The modes shape `POST /graphql` only; other requests (the router's
//! health checks, `GET /health/ready`) are forwarded as they are, except
//! under [`Mode::Refuse`], which refuses everything. The proxy counts the
//! GraphQL requests it received and forwarded, separately from the rest,
//! and records the operation kind of each, so a test can prove that a
//! mutation reached the replica exactly once or that an open breaker sent
//! nothing.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::extract::connect_info::{ConnectInfo, Connected};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::serve::IncomingStream;
use serde_json::Value;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};

/// How the proxy treats `POST /graphql` requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Forward to the replica after waiting `delay` (a slow replica).
    Forward { delay: Duration },
    /// Answer 500 without contacting the replica (a failing replica).
    Fail500,
    /// Forward, let the replica answer, then close the connection without
    /// sending the answer: the request was sent and its effect happened,
    /// but the router never learns the outcome.
    DropAfterForward,
    /// Forward, let the replica answer, then answer 502 instead (a gateway
    /// in between that lost the answer).
    BadGatewayAfterForward,
    /// Refuse connections like a dead process: the listening socket is
    /// closed (connects fail with "connection refused") and open
    /// connections are closed.
    Refuse,
}

impl Mode {
    /// Plain forwarding, no delay.
    pub const PASS: Mode = Mode::Forward {
        delay: Duration::ZERO,
    };
}

/// The kind of a GraphQL operation the proxy saw.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OperationKind {
    Query,
    Mutation,
    Subscription,
    /// The body was not a GraphQL request the proxy could read.
    Unknown,
}

/// One `POST /graphql` the proxy received.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Seen {
    /// The operation's kind.
    pub kind: OperationKind,
    /// Whether it was sent on to the replica.
    pub forwarded: bool,
}

/// What the proxy has seen so far.
#[derive(Debug, Default)]
struct Log {
    graphql: Vec<Seen>,
    /// The `query` text of every GraphQL request, in order (what the
    /// authorization tests check a denied field never reached).
    documents: Vec<String>,
    other: usize,
}

/// State shared by the listener, the handler and the test's handle.
struct Shared {
    /// `scheme://host:port` of the replica.
    origin: String,
    client: reqwest::Client,
    mode: watch::Sender<Mode>,
    /// Whether the listening socket is open (the listener reports it).
    listening: watch::Sender<bool>,
    /// Parent of every open connection's token: cancelled (and replaced)
    /// to close them all.
    connections: Mutex<CancellationToken>,
    log: Mutex<Log>,
}

/// A running proxy in front of one replica; stops when dropped.
pub struct FaultProxy {
    addr: SocketAddr,
    shared: Arc<Shared>,
    server: JoinHandle<()>,
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.server.abort();
        self.shared
            .connections
            .lock()
            .expect("connections lock")
            .cancel();
    }
}

impl FaultProxy {
    /// A proxy forwarding to the GraphQL endpoint `target` (e.g.
    /// `http://127.0.0.1:4001/graphql`), in [`Mode::PASS`].
    pub async fn start(target: &str) -> Self {
        let origin = origin_of(target);
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a free loopback port");
        let addr = listener.local_addr().expect("bound address");
        let (mode, mode_rx) = watch::channel(Mode::PASS);
        let (listening, _) = watch::channel(true);
        let shared = Arc::new(Shared {
            origin,
            client: reqwest::Client::builder()
                .no_proxy()
                .build()
                .expect("an HTTP client"),
            mode,
            listening,
            connections: Mutex::new(CancellationToken::new()),
            log: Mutex::new(Log::default()),
        });
        let listener = ProxyListener {
            addr,
            inner: Some(listener),
            mode: mode_rx,
            shared: Arc::clone(&shared),
        };
        let app = axum::Router::new()
            .fallback(handle)
            .with_state(Arc::clone(&shared))
            .into_make_service_with_connect_info::<Connection>();
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self {
            addr,
            shared,
            server,
        }
    }

    /// The proxy's GraphQL URL: what the router is told the replica is.
    pub fn graphql_url(&self) -> String {
        format!("http://{}/graphql", self.addr)
    }

    /// Switches the mode. Returns once it is in force: after switching to
    /// [`Mode::Refuse`] connects are refused, after switching away from it
    /// the port listens again.
    pub async fn set_mode(&self, mode: Mode) {
        self.shared.mode.send_replace(mode);
        let refusing = mode == Mode::Refuse;
        if refusing {
            let mut connections = self.shared.connections.lock().expect("connections lock");
            connections.cancel();
            *connections = CancellationToken::new();
        }
        let mut listening = self.shared.listening.subscribe();
        tokio::time::timeout(
            Duration::from_secs(5),
            listening.wait_for(|open| *open != refusing),
        )
        .await
        .expect("the proxy's listener follows its mode within 5 s")
        .expect("the proxy's listener is running");
    }

    /// Every `POST /graphql` received so far, in order.
    pub fn seen(&self) -> Vec<Seen> {
        self.shared.log.lock().expect("log lock").graphql.clone()
    }

    /// The `query` text of every `POST /graphql` received so far, in order.
    pub fn documents(&self) -> Vec<String> {
        self.shared.log.lock().expect("log lock").documents.clone()
    }

    /// How many `POST /graphql` requests arrived (whatever the mode did).
    pub fn graphql_received(&self) -> usize {
        self.shared.log.lock().expect("log lock").graphql.len()
    }

    /// How many `POST /graphql` requests were sent on to the replica.
    pub fn graphql_forwarded(&self) -> usize {
        self.count(|seen| seen.forwarded)
    }

    /// How many `POST /graphql` requests of `kind` arrived.
    pub fn received_of(&self, kind: OperationKind) -> usize {
        self.count(|seen| seen.kind == kind)
    }

    /// How many requests other than `POST /graphql` arrived (health checks).
    pub fn other_received(&self) -> usize {
        self.shared.log.lock().expect("log lock").other
    }

    fn count(&self, keep: impl Fn(&Seen) -> bool) -> usize {
        let log = self.shared.log.lock().expect("log lock");
        log.graphql.iter().filter(|seen| keep(seen)).count()
    }
}

/// `http://host:port` of a URL.
fn origin_of(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").expect("an absolute URL");
    let authority = rest.split('/').next().unwrap_or(rest);
    format!("{scheme}://{authority}")
}

/// The per-connection handle the handler gets: cancelling it closes the
/// connection without writing another byte.
#[derive(Clone, Debug)]
struct Connection(CancellationToken);

impl Connected<IncomingStream<'_, ProxyListener>> for Connection {
    fn connect_info(stream: IncomingStream<'_, ProxyListener>) -> Self {
        stream.remote_addr().clone()
    }
}

/// The proxy's listener: a TCP listener that closes its socket while the
/// mode is [`Mode::Refuse`] and binds the same port again afterwards.
struct ProxyListener {
    addr: SocketAddr,
    inner: Option<TcpListener>,
    mode: watch::Receiver<Mode>,
    shared: Arc<Shared>,
}

impl axum::serve::Listener for ProxyListener {
    type Io = ProxyStream;
    type Addr = Connection;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            let refusing = *self.mode.borrow_and_update() == Mode::Refuse;
            if refusing {
                self.inner = None;
                self.shared.listening.send_replace(false);
                if self.mode.changed().await.is_err() {
                    std::future::pending::<()>().await;
                }
                continue;
            }
            if self.inner.is_none() {
                match TcpListener::bind(self.addr).await {
                    Ok(listener) => {
                        self.inner = Some(listener);
                        self.shared.listening.send_replace(true);
                    }
                    Err(_) => {
                        tokio::time::sleep(Duration::from_millis(20)).await;
                        continue;
                    }
                }
            }
            let Some(listener) = &self.inner else {
                continue;
            };
            tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok((stream, _)) => {
                        let token = self
                            .shared
                            .connections
                            .lock()
                            .expect("connections lock")
                            .child_token();
                        let connection = Connection(token.clone());
                        return (ProxyStream::new(stream, token), connection);
                    }
                    Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
                },
                changed = self.mode.changed() => {
                    if changed.is_err() {
                        std::future::pending::<()>().await;
                    }
                }
            }
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        Ok(Connection(CancellationToken::new()))
    }
}

/// A proxied connection that can be cut from outside: once its token is
/// cancelled, reads end and writes fail, so the server drops it without
/// sending anything more.
struct ProxyStream {
    inner: TcpStream,
    killed: Pin<Box<WaitForCancellationFutureOwned>>,
    token: CancellationToken,
}

impl ProxyStream {
    fn new(inner: TcpStream, token: CancellationToken) -> Self {
        let _ = inner.set_nodelay(true);
        Self {
            inner,
            killed: Box::pin(token.clone().cancelled_owned()),
            token,
        }
    }

    fn cut() -> io::Error {
        io::Error::new(io::ErrorKind::ConnectionAborted, "cut by the fault proxy")
    }
}

impl AsyncRead for ProxyStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        // Registers the waker too, so an idle connection closes at once.
        if self.killed.as_mut().poll(cx).is_ready() {
            return Poll::Ready(Err(Self::cut()));
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for ProxyStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if self.token.is_cancelled() {
            return Poll::Ready(Err(Self::cut()));
        }
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.token.is_cancelled() {
            return Poll::Ready(Err(Self::cut()));
        }
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

async fn handle(
    State(shared): State<Arc<Shared>>,
    ConnectInfo(connection): ConnectInfo<Connection>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let is_graphql = method == Method::POST && uri.path() == "/graphql";
    if !is_graphql {
        shared.log.lock().expect("log lock").other += 1;
        return forward(&shared, method, &uri, &headers, body)
            .await
            .unwrap_or_else(|status| status.into_response());
    }
    let kind = operation_kind_of_body(&body);
    let mode = *shared.mode.borrow();
    let forwarded = !matches!(mode, Mode::Fail500 | Mode::Refuse);
    let document = serde_json::from_slice::<Value>(&body)
        .ok()
        .and_then(|request| request["query"].as_str().map(str::to_owned))
        .unwrap_or_default();
    {
        let mut log = shared.log.lock().expect("log lock");
        log.graphql.push(Seen { kind, forwarded });
        log.documents.push(document);
    }
    match mode {
        Mode::Forward { delay } => {
            tokio::time::sleep(delay).await;
            forward(&shared, method, &uri, &headers, body)
                .await
                .unwrap_or_else(|status| status.into_response())
        }
        Mode::Fail500 => (
            StatusCode::INTERNAL_SERVER_ERROR,
            [("content-type", "application/json")],
            r#"{"errors":[{"message":"fault proxy: injected failure"}]}"#,
        )
            .into_response(),
        Mode::DropAfterForward | Mode::BadGatewayAfterForward => {
            // The replica does the work; its answer is thrown away.
            let _ = forward(&shared, method, &uri, &headers, body).await;
            if mode == Mode::DropAfterForward {
                connection.0.cancel();
            }
            (StatusCode::BAD_GATEWAY, "fault proxy: answer lost").into_response()
        }
        // A request that raced the switch to Refuse: close its connection.
        Mode::Refuse => {
            connection.0.cancel();
            StatusCode::SERVICE_UNAVAILABLE.into_response()
        }
    }
}

/// Headers that belong to one connection, not to the message.
const HOP_BY_HOP: [&str; 6] = [
    "connection",
    "keep-alive",
    "transfer-encoding",
    "content-length",
    "host",
    "upgrade",
];

/// Sends the request to the replica and returns its answer (502 when the
/// replica cannot be reached).
async fn forward(
    shared: &Shared,
    method: Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: Bytes,
) -> Result<Response, StatusCode> {
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    let mut request = shared
        .client
        .request(method, format!("{}{}", shared.origin, path))
        .body(body);
    for (name, value) in headers {
        if !HOP_BY_HOP.contains(&name.as_str()) {
            request = request.header(name, value);
        }
    }
    let answer = request.send().await.map_err(|_| StatusCode::BAD_GATEWAY)?;
    let status = answer.status();
    let mut response_headers = HeaderMap::new();
    for (name, value) in answer.headers() {
        if !HOP_BY_HOP.contains(&name.as_str()) {
            response_headers.append(name, value.clone());
        }
    }
    let bytes = answer.bytes().await.map_err(|_| StatusCode::BAD_GATEWAY)?;
    Ok((status, response_headers, bytes).into_response())
}

/// The kind of the operation in a GraphQL request body (a single request
/// or the first of a batch).
fn operation_kind_of_body(body: &[u8]) -> OperationKind {
    let Ok(value) = serde_json::from_slice::<Value>(body) else {
        return OperationKind::Unknown;
    };
    let request = match &value {
        Value::Array(batch) => batch.first().unwrap_or(&Value::Null),
        single => single,
    };
    match request["query"].as_str() {
        Some(document) => operation_kind(document, request["operationName"].as_str()),
        None => OperationKind::Unknown,
    }
}

/// The kind of operation `name` (or of the first operation) in `document`,
/// read with a small scanner that skips comments, strings and fragments.
pub fn operation_kind(document: &str, name: Option<&str>) -> OperationKind {
    let bytes = document.as_bytes();
    let mut depth = 0usize;
    let mut i = 0;
    // The kind of the operation whose header is being read at depth 0.
    let mut pending: Option<OperationKind> = None;
    while i < bytes.len() {
        let c = bytes[i];
        match c {
            b'#' => {
                while i < bytes.len() && bytes[i] != b'\n' {
                    i += 1;
                }
            }
            b'"' => {
                if document[i..].starts_with("\"\"\"") {
                    i += 3;
                    while i < bytes.len() && !document[i..].starts_with("\"\"\"") {
                        i += if bytes[i] == b'\\' { 2 } else { 1 };
                    }
                    i += 2;
                } else {
                    i += 1;
                    while i < bytes.len() && bytes[i] != b'"' {
                        i += if bytes[i] == b'\\' { 2 } else { 1 };
                    }
                }
            }
            b'{' => {
                if depth == 0 {
                    match pending.take() {
                        // `{ ... }`: the query shorthand (anonymous).
                        None if name.is_none() => return OperationKind::Query,
                        Some(kind) if kind != OperationKind::Unknown => return kind,
                        _ => {}
                    }
                }
                depth += 1;
            }
            b'}' => depth = depth.saturating_sub(1),
            b'(' | b'[' => depth += 1,
            b')' | b']' => depth = depth.saturating_sub(1),
            c if depth == 0 && (c.is_ascii_alphabetic() || c == b'_') => {
                let start = i;
                while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_') {
                    i += 1;
                }
                let word = &document[start..i];
                match (pending, word) {
                    (None, "query") => pending = Some(OperationKind::Query),
                    (None, "mutation") => pending = Some(OperationKind::Mutation),
                    (None, "subscription") => pending = Some(OperationKind::Subscription),
                    // A fragment definition: never an operation.
                    (None, _) => pending = Some(OperationKind::Unknown),
                    // The operation's name: keep it only if it is the one asked for.
                    (Some(kind), word) if kind != OperationKind::Unknown => {
                        if name.is_some_and(|wanted| wanted != word) {
                            pending = Some(OperationKind::Unknown);
                        } else {
                            return kind;
                        }
                    }
                    _ => {}
                }
                continue;
            }
            _ => {}
        }
        i += 1;
    }
    OperationKind::Unknown
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::routing::{get, post};
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn operation_kinds_are_read_from_documents() {
        use OperationKind::*;
        assert_eq!(operation_kind("{ categories }", None), Query);
        assert_eq!(operation_kind("  # hi\n query Q { a }", None), Query);
        assert_eq!(
            operation_kind("mutation($x: Int) { a(x: $x) { b } }", None),
            Mutation
        );
        assert_eq!(
            operation_kind(
                "query($representations:[_Any!]!){_entities(representations:$representations){...on Product{name}}}",
                None
            ),
            Query
        );
        assert_eq!(
            operation_kind(
                "fragment F on Product { name }\nmutation M { a { ...F } }",
                None
            ),
            Mutation
        );
        assert_eq!(
            operation_kind(
                "query A { a(s: \"mutation {\") } mutation B { b }",
                Some("B")
            ),
            Mutation
        );
        assert_eq!(operation_kind("subscription { s }", None), Subscription);
        assert_eq!(operation_kind("not graphql", None), Unknown);
    }

    /// A tiny upstream that counts what it served.
    async fn upstream() -> (String, Arc<AtomicUsize>) {
        let served = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&served);
        let app = axum::Router::new()
            .route(
                "/graphql",
                post(move |body: Bytes| {
                    let counter = Arc::clone(&counter);
                    async move {
                        counter.fetch_add(1, Ordering::SeqCst);
                        (
                            [("content-type", "application/json"), ("x-upstream", "yes")],
                            format!(r#"{{"data":{{"echo":{}}}}}"#, body.len()),
                        )
                    }
                }),
            )
            .route("/health/ready", get(|| async { "ready" }));
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("port");
        let url = format!("http://{}/graphql", listener.local_addr().expect("addr"));
        tokio::spawn(async move { axum::serve(listener, app).await });
        (url, served)
    }

    async fn post_query(
        client: &reqwest::Client,
        url: &str,
        query: &str,
    ) -> reqwest::Result<reqwest::Response> {
        client
            .post(url)
            .json(&serde_json::json!({ "query": query }))
            .send()
            .await
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_proxy_forwards_fails_drops_and_refuses_on_command() {
        let (target, served) = upstream().await;
        let proxy = FaultProxy::start(&target).await;
        let url = proxy.graphql_url();
        let client = reqwest::Client::builder()
            .no_proxy()
            .build()
            .expect("client");

        // Forward: the answer comes through with the upstream's headers.
        let answer = post_query(&client, &url, "{ a }").await.expect("forwarded");
        assert_eq!(answer.status(), 200);
        assert_eq!(answer.headers()["x-upstream"], "yes");
        assert!(answer.text().await.expect("body").contains("echo"));
        let health = client
            .get(url.replace("/graphql", "/health/ready"))
            .send()
            .await
            .expect("health forwarded");
        assert_eq!(health.text().await.expect("body"), "ready");
        assert_eq!(proxy.other_received(), 1, "health checks are counted apart");

        // Slow forward.
        proxy
            .set_mode(Mode::Forward {
                delay: Duration::from_millis(200),
            })
            .await;
        let started = std::time::Instant::now();
        post_query(&client, &url, "{ a }").await.expect("forwarded");
        assert!(started.elapsed() >= Duration::from_millis(200));

        // Fail500: answered by the proxy, never forwarded.
        proxy.set_mode(Mode::Fail500).await;
        let failed = post_query(&client, &url, "mutation { m }")
            .await
            .expect("an answer");
        assert_eq!(failed.status(), 500);
        assert_eq!(served.load(Ordering::SeqCst), 2);

        // DropAfterForward: the upstream served it, the client got no answer.
        proxy.set_mode(Mode::DropAfterForward).await;
        let dropped = post_query(&client, &url, "mutation { m }").await;
        assert!(dropped.is_err(), "the connection is cut: {dropped:?}");
        assert_eq!(served.load(Ordering::SeqCst), 3);

        proxy.set_mode(Mode::BadGatewayAfterForward).await;
        let lost = post_query(&client, &url, "{ a }").await.expect("an answer");
        assert_eq!(lost.status(), 502);
        assert_eq!(served.load(Ordering::SeqCst), 4);

        // Refuse: connects fail; pooled connections are closed too.
        proxy.set_mode(Mode::Refuse).await;
        let fresh = reqwest::Client::builder()
            .no_proxy()
            .build()
            .expect("client");
        let refused = post_query(&fresh, &url, "{ a }")
            .await
            .expect_err("refused");
        assert!(refused.is_connect(), "{refused:?}");
        proxy.set_mode(Mode::PASS).await;
        // On a new connection: `client` may still hold a pooled one the
        // refusal closed, and find out only when it sends on it.
        let back = post_query(&fresh, &url, "{ a }")
            .await
            .expect("listening again");
        assert_eq!(back.status(), 200);

        use OperationKind::*;
        let seen: Vec<(OperationKind, bool)> =
            proxy.seen().iter().map(|s| (s.kind, s.forwarded)).collect();
        assert_eq!(
            seen,
            vec![
                (Query, true),
                (Query, true),
                (Mutation, false),
                (Mutation, true),
                (Query, true),
                (Query, true),
            ]
        );
        assert_eq!(proxy.received_of(Mutation), 2);
        assert_eq!(proxy.graphql_forwarded(), 5);
        assert_eq!(served.load(Ordering::SeqCst), 5);
    }
}

//! What the event tests drive: a real Kafka-protocol broker (tansu, see
//! `tests/kafka-broker.sh`; [`Broker`] is shared with the chaos suite in
//! `tests/common/broker.rs`) with a Kafka bus whose topic names are unique
//! to the test, and subscription clients — the Node `graphql-ws` library (as web
//! clients use it), a plain Rust websocket speaking the protocol, and a
//! reader of multipart HTTP subscriptions (Apollo's protocol).

use std::process::Stdio;
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

pub use crate::broker::Broker;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// The `ws://` URL of a router's `/graphql`.
pub fn ws_url(http_url: &str) -> String {
    http_url.replacen("http://", "ws://", 1)
}

/// A subscription through a real Node client, one JSON line per event:
/// the `graphql-ws` library (`tests/subscriptions/subscribe.mjs`) or
/// Apollo Client's `HttpLink` over multipart HTTP
/// (`tests/subscriptions/apollo-subscribe.mjs`).
pub struct NodeSubscriber {
    lines: tokio::io::Lines<BufReader<tokio::process::ChildStdout>>,
    _process: Child,
}

impl NodeSubscriber {
    /// Subscribes with `query` over `graphql-ws` as the holder of
    /// `token`; returns once the connection is acknowledged (or refused:
    /// see [`NodeSubscriber::next`]).
    pub async fn start(url: &str, token: Option<&str>, query: &str, variables: Value) -> Self {
        Self::spawn(
            "subscribe.mjs",
            &[url, token.unwrap_or("-"), query, &variables.to_string()],
        )
        .await
    }

    /// Subscribes with `query` through Apollo Client (`HttpLink`, so
    /// multipart HTTP) at the router's HTTP `url` as the holder of
    /// `token`; after `count` events the client unsubscribes. Prints
    /// `{"ready":true}` once the request is sent.
    pub async fn apollo(
        url: &str,
        token: Option<&str>,
        query: &str,
        variables: Value,
        count: Option<usize>,
    ) -> Self {
        let count = count.map(|count| count.to_string()).unwrap_or_default();
        let mut args = vec![url, token.unwrap_or("-"), query];
        let variables = variables.to_string();
        args.push(&variables);
        if !count.is_empty() {
            args.push(&count);
        }
        Self::spawn("apollo-subscribe.mjs", &args).await
    }

    /// Follows `notificationAdded` as the holder of `token` and never
    /// gives up (`tests/subscriptions/resume-subscribe.mjs`): each
    /// reconnection goes to the next of `urls` (routers behind one
    /// address) and subscribes again after the last notification seen.
    pub async fn resuming(urls: &[String], token: &str, query: &str) -> Self {
        Self::spawn("resume-subscribe.mjs", &[&urls.join(","), token, query]).await
    }

    async fn spawn(script: &str, args: &[&str]) -> Self {
        ensure_node_clients().await;
        let mut process = Command::new("node")
            .arg(format!("{ROOT}/tests/subscriptions/{script}"))
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .expect("node runs");
        let stdout = process.stdout.take().expect("piped stdout");
        Self {
            lines: BufReader::new(stdout).lines(),
            _process: process,
        }
    }

    /// The next line the client printed, within `within`.
    pub async fn next(&mut self, within: Duration) -> Option<Value> {
        let line = tokio::time::timeout(within, self.lines.next_line())
            .await
            .ok()?
            .ok()??;
        serde_json::from_str(&line).ok()
    }

    /// Waits for the `{"ready":true}` line.
    pub async fn ready(&mut self) {
        let line = self.next(Duration::from_secs(10)).await;
        assert_eq!(line, Some(json!({ "ready": true })), "the client connects");
    }

    /// The next event's `data`, skipping nothing.
    pub async fn next_data(&mut self, within: Duration) -> Option<Value> {
        let line = self.next(within).await?;
        Some(line.get("next")?.get("data")?.clone())
    }
}

/// Installs the Node clients' pinned packages once.
async fn ensure_node_clients() {
    static ONCE: tokio::sync::OnceCell<()> = tokio::sync::OnceCell::const_new();
    ONCE.get_or_init(|| async {
        let dir = format!("{ROOT}/tests/subscriptions");
        let installed = ["graphql-ws", "@apollo/client"]
            .iter()
            .all(|package| std::path::Path::new(&format!("{dir}/node_modules/{package}")).exists());
        if installed {
            return;
        }
        let status = Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund", "--loglevel=error"])
            .current_dir(&dir)
            .status()
            .await
            .expect("npm runs");
        assert!(status.success(), "npm ci in tests/subscriptions");
    })
    .await;
}

/// A bare `graphql-transport-ws` connection, for protocol-level checks.
pub struct RawSocket {
    socket: tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
}

/// What the server sent: a protocol message, or the close.
#[derive(Debug, PartialEq)]
pub enum Received {
    Message(Value),
    Closed(u16, String),
}

impl RawSocket {
    /// Connects to a router's `/graphql` with the protocol's sub-protocol.
    pub async fn connect(http_url: &str) -> Self {
        let mut request = ws_url(http_url).into_client_request().expect("a ws URL");
        request.headers_mut().insert(
            http::header::SEC_WEBSOCKET_PROTOCOL,
            http::HeaderValue::from_static("graphql-transport-ws"),
        );
        let (socket, response) = tokio_tungstenite::connect_async(request)
            .await
            .expect("the router upgrades");
        assert_eq!(
            response
                .headers()
                .get(http::header::SEC_WEBSOCKET_PROTOCOL)
                .and_then(|v| v.to_str().ok()),
            Some("graphql-transport-ws")
        );
        Self { socket }
    }

    /// Sends a JSON message.
    pub async fn send(&mut self, message: Value) {
        self.send_text(&message.to_string()).await;
    }

    /// Sends raw text.
    pub async fn send_text(&mut self, text: &str) {
        self.socket
            .send(Message::text(text.to_owned()))
            .await
            .expect("send");
    }

    /// `connection_init` with `token`, expecting the ack.
    pub async fn init(&mut self, token: &str) {
        self.send(json!({ "type": "connection_init", "payload": { "Authorization": format!("Bearer {token}") } }))
            .await;
        assert_eq!(
            self.receive().await,
            Received::Message(json!({ "type": "connection_ack" }))
        );
    }

    /// The next protocol message or the close (server pings skipped).
    pub async fn receive(&mut self) -> Received {
        loop {
            let message = tokio::time::timeout(Duration::from_secs(15), self.socket.next())
                .await
                .expect("the router answers in time");
            match message {
                Some(Ok(Message::Text(text))) => {
                    let value: Value = serde_json::from_str(text.as_str()).expect("JSON");
                    if value["type"] == "ping" {
                        continue;
                    }
                    return Received::Message(value);
                }
                Some(Ok(Message::Close(Some(frame)))) => {
                    return Received::Closed(frame.code.into(), frame.reason.to_string());
                }
                Some(Ok(Message::Close(None))) | None => {
                    return Received::Closed(1005, String::new());
                }
                Some(Ok(_)) => continue,
                Some(Err(err)) => return Received::Closed(1006, err.to_string()),
            }
        }
    }
}

/// The `Accept` Apollo Client's `HttpLink` sends for a subscription.
pub const MULTIPART_ACCEPT: &str = "multipart/mixed;boundary=graphql;subscriptionSpec=1.0,application/graphql-response+json,application/json;q=0.9";

/// The content type of a multipart subscription's response.
pub const MULTIPART_CONTENT_TYPE: &str =
    "multipart/mixed;boundary=\"graphql\";subscriptionSpec=\"1.0\"";

/// The delimiter between multipart parts (the boundary is `graphql`).
const MULTIPART_DELIMITER: &[u8] = b"\r\n--graphql";

/// POSTs `query` to a router's `/graphql` as Apollo Client does for a
/// subscription, as the holder of `token`.
pub async fn post_multipart(
    url: &str,
    token: Option<&str>,
    query: &str,
    variables: Value,
) -> reqwest::Response {
    let mut request = reqwest::Client::new()
        .post(url)
        .header("accept", MULTIPART_ACCEPT)
        .json(&json!({ "query": query, "variables": variables }));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    request.send().await.expect("the router answers")
}

/// One part of a multipart subscription: its JSON (`{}` for a
/// heartbeat), or the final boundary.
#[derive(Debug, PartialEq)]
pub enum Part {
    Json(Value),
    End,
}

/// A multipart HTTP subscription read part by part, checking the framing
/// as it goes ([`MultipartParser`]).
pub struct MultipartStream {
    response: reqwest::Response,
    parser: MultipartParser,
}

impl MultipartStream {
    /// Reads `response`, which must be a `200` multipart subscription.
    pub fn new(response: reqwest::Response) -> Self {
        assert_eq!(response.status(), 200, "a stream starts");
        assert_eq!(
            response.headers()["content-type"],
            MULTIPART_CONTENT_TYPE,
            "the multipart content type"
        );
        Self {
            response,
            parser: MultipartParser::default(),
        }
    }

    /// The next part, heartbeats included; `None` when none came within
    /// `within` or the body ended without the final boundary.
    pub async fn next(&mut self, within: Duration) -> Option<Part> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            if let Some(part) = self.parser.take() {
                return Some(part);
            }
            let chunk = tokio::time::timeout_at(deadline, self.response.chunk())
                .await
                .ok()?
                .ok()??;
            self.parser.push(&chunk);
        }
    }

    /// The next part that is not a heartbeat.
    pub async fn next_payload(&mut self, within: Duration) -> Option<Part> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.next(left).await? {
                Part::Json(value) if value == json!({}) => continue,
                part => return Some(part),
            }
        }
    }
}

/// Splits a multipart subscription body into parts as its bytes arrive,
/// checking the framing: the opening delimiter, `content-type:
/// application/json` on every part, the final boundary.
#[derive(Default)]
pub struct MultipartParser {
    buffer: Vec<u8>,
    opened: bool,
}

impl MultipartParser {
    /// Bytes of the body, as they arrive.
    pub fn push(&mut self, bytes: &[u8]) {
        self.buffer.extend_from_slice(bytes);
    }

    /// A whole part from what arrived, if there is one.
    pub fn take(&mut self) -> Option<Part> {
        if !self.opened {
            if self.buffer.len() < MULTIPART_DELIMITER.len() {
                return None;
            }
            assert!(
                self.buffer.starts_with(MULTIPART_DELIMITER),
                "the body opens with the delimiter: {:?}",
                String::from_utf8_lossy(&self.buffer)
            );
            self.buffer.drain(..MULTIPART_DELIMITER.len());
            self.opened = true;
        }
        if self.buffer.starts_with(b"--\r\n") {
            self.buffer.drain(..4);
            return Some(Part::End);
        }
        let at = self
            .buffer
            .windows(MULTIPART_DELIMITER.len())
            .position(|window| window == MULTIPART_DELIMITER)?;
        let part: Vec<u8> = self
            .buffer
            .drain(..at + MULTIPART_DELIMITER.len())
            .collect();
        Some(Part::Json(read_part(&part[..at])))
    }

    /// What is left after the parts taken (nothing, after the end).
    pub fn rest(&self) -> &[u8] {
        &self.buffer
    }
}

/// A part between two delimiters: `\r\n`, its headers, an empty line and
/// a JSON body.
pub fn read_part(part: &[u8]) -> Value {
    let text = String::from_utf8_lossy(part);
    let (headers, body) = text
        .strip_prefix("\r\n")
        .and_then(|part| part.split_once("\r\n\r\n"))
        .unwrap_or_else(|| panic!("headers, then a body: {text:?}"));
    assert_eq!(
        headers.to_ascii_lowercase(),
        "content-type: application/json",
        "{text:?}"
    );
    serde_json::from_str(body).unwrap_or_else(|err| panic!("a JSON part ({err}): {body:?}"))
}

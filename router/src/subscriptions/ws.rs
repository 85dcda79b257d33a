//! The `graphql-transport-ws` protocol (the `graphql-ws` library's), on
//! `GET /graphql` with `Upgrade: websocket`.
//!
//! One connection, in order:
//!
//! 1. the client has [`SubscriptionSettings::init_timeout`] to send
//!    `connection_init`; its payload carries the token (`Authorization`,
//!    `authorization`, `token` or `authToken`, at the top or inside a
//!    `headers` object as Apollo setups send it; `Bearer ` optional), or the
//!    upgrade request's `Authorization` header does. No valid token:
//!    close `4401 Unauthorized`; a second `connection_init`: `4429`;
//! 2. `connection_ack`; then `subscribe` messages start operations (a
//!    reused live id: `4409`; `subscribe` before the ack: `4401`), each
//!    answered with `next` messages and `complete`, or one `error` when it
//!    cannot start; the client's `complete` stops one; with rate limiting
//!    on, each `subscribe` takes one cell of the user's budget, and one
//!    over it gets an `error` with `RATE_LIMITED` (the connection stays);
//! 3. `ping`/`pong` both ways; the router pings every
//!    [`SubscriptionSettings::keepalive`] and closes a connection silent
//!    for [`SubscriptionSettings::idle_timeout`] (`4408`); anything that
//!    is not a protocol message closes with `4400`.
//!
//! Each connection has one bounded outbound queue. A subscription whose
//! next response finds the queue still full after
//! [`SLOW_CLIENT_GRACE`] ends with a `SUBSCRIPTION_OVERFLOW` error: a
//! slow client costs a bounded amount of memory, a burst does not end a
//! client that reads.
//!
//! Framing, masking and close handshakes are tungstenite's (through axum);
//! this module is only the protocol's state machine.

use shopgraph_core::metrics::GaugeGuard;
use std::collections::HashMap;

use axum::extract::WebSocketUpgrade;
use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket};
use futures::{SinkExt, StreamExt};
use http::HeaderValue;
use serde::Deserialize;
use serde_json::{Value, json};
use shopgraph_core::identity::{Identity, connection_init_authorization};
use tokio::sync::mpsc;
use tokio::sync::mpsc::error::SendTimeoutError;
use tokio::task::JoinHandle;

use super::{GraphqlState, OperationBudget, SLOW_CLIENT_GRACE, SubscriptionSettings, results};
use crate::pipeline::{RouterError, prepare_operation};
use shopgraph_core::graphql_http::GraphqlRequest;

/// The websocket sub-protocol spoken here.
pub const PROTOCOL: &str = "graphql-transport-ws";

/// Socket buffers per connection. tungstenite's defaults (128 KiB each way)
/// would cost a quarter of a megabyte per idle subscriber; client messages
/// are small, and the writer flushes every message anyway.
const READ_BUFFER: usize = 4 * 1024;
const WRITE_BUFFER: usize = 4 * 1024;
/// Largest client message accepted (a `subscribe` carrying a document).
const MAX_MESSAGE: usize = 2 * 1024 * 1024;

/// The upgrade with this protocol and its buffer sizes.
pub fn configure(upgrade: WebSocketUpgrade) -> WebSocketUpgrade {
    upgrade
        .protocols([PROTOCOL])
        .read_buffer_size(READ_BUFFER)
        .write_buffer_size(WRITE_BUFFER)
        .max_message_size(MAX_MESSAGE)
}

#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum ClientMessage {
    ConnectionInit {
        #[serde(default)]
        payload: Option<Value>,
    },
    Ping {
        #[serde(default)]
        payload: Option<Value>,
    },
    Pong {
        #[allow(dead_code)]
        #[serde(default)]
        payload: Option<Value>,
    },
    Subscribe {
        id: String,
        payload: GraphqlRequest,
    },
    Complete {
        id: String,
    },
}

/// Serves one upgraded connection until it closes.
pub async fn serve(
    socket: WebSocket,
    state: GraphqlState,
    upgrade_authorization: Option<HeaderValue>,
    budget: Option<OperationBudget>,
) {
    let settings = state.settings.clone();
    let (mut sink, mut incoming) = socket.split();
    let (outbound, mut queue) = mpsc::channel::<Message>(settings.buffer);
    let writer = tokio::spawn(async move {
        while let Some(message) = queue.recv().await {
            let closing = matches!(message, Message::Close(_));
            if sink.send(message).await.is_err() || closing {
                break;
            }
        }
        let _ = sink.close().await;
    });
    // Down when the task ends, however it ends (a panic included).
    let _gauge = GaugeGuard::new(metrics::gauge!("router_websocket_connections"));
    let mut connection = Connection {
        state,
        settings: settings.clone(),
        outbound: outbound.clone(),
        identity: None,
        operations: HashMap::new(),
        budget,
    };
    let closed = connection
        .run(&mut incoming, upgrade_authorization.as_ref())
        .await;
    // Ending an operation's task drops its subgraph subscription.
    for (_, task) in connection.operations.drain() {
        task.abort();
    }
    // Every close is a `RouterError` with a protocol close code; one
    // without (none today) would end the connection as a bad request.
    if let Some(err) = closed {
        let code = err.close_code().unwrap_or(4400);
        let mut reason = err.message();
        // A close frame's reason may not exceed 123 bytes.
        if reason.len() > 123 {
            let mut end = 120;
            while !reason.is_char_boundary(end) {
                end -= 1;
            }
            reason.truncate(end);
            reason.push_str("...");
        }
        let _ = outbound
            .send(Message::Close(Some(CloseFrame {
                code,
                reason: Utf8Bytes::from(reason),
            })))
            .await;
    }
    drop(connection);
    drop(outbound);
    let _ = writer.await;
}

struct Connection {
    state: GraphqlState,
    settings: SubscriptionSettings,
    outbound: mpsc::Sender<Message>,
    identity: Option<Identity>,
    operations: HashMap<String, JoinHandle<()>>,
    /// The caller's rate limit, when rate limiting is on.
    budget: Option<OperationBudget>,
}

impl Connection {
    /// Reads client messages until the connection should end; returns the
    /// error to close with (none when the client left).
    async fn run(
        &mut self,
        incoming: &mut futures::stream::SplitStream<WebSocket>,
        upgrade_authorization: Option<&HeaderValue>,
    ) -> Option<RouterError> {
        let init_deadline = tokio::time::sleep(self.settings.init_timeout);
        tokio::pin!(init_deadline);
        let mut keepalive = tokio::time::interval(self.settings.keepalive);
        keepalive.reset();
        let idle = tokio::time::sleep(self.settings.idle_timeout);
        tokio::pin!(idle);
        let shutdown = self.state.shutdown.clone();
        loop {
            let message = tokio::select! {
                () = shutdown.cancelled() => {
                    return Some(RouterError::ShuttingDown);
                }
                () = &mut init_deadline, if self.identity.is_none() => {
                    return Some(RouterError::WsInitTimeout);
                }
                () = &mut idle => {
                    return Some(RouterError::WsIdleTimeout);
                }
                _ = keepalive.tick() => {
                    // Best effort: a full queue already means the client is alive but slow.
                    let _ = self.outbound.try_send(text(json!({ "type": "ping" })));
                    continue;
                }
                message = incoming.next() => message,
            };
            idle.as_mut()
                .reset(tokio::time::Instant::now() + self.settings.idle_timeout);
            let text = match message {
                None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return None,
                Some(Ok(Message::Text(text))) => text,
                Some(Ok(Message::Binary(_))) => return Some(RouterError::WsBinaryMessage),
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
            };
            let message = match parse_message(text.as_str()) {
                Ok(message) => message,
                Err(err) => return Some(err),
            };
            if let Some(close) = self.handle(message, upgrade_authorization).await {
                return Some(close);
            }
        }
    }

    async fn handle(
        &mut self,
        message: ClientMessage,
        upgrade_authorization: Option<&HeaderValue>,
    ) -> Option<RouterError> {
        match message {
            ClientMessage::ConnectionInit { payload } => {
                if self.identity.is_some() {
                    return Some(RouterError::WsTooManyInits);
                }
                match self.authenticate(payload.as_ref(), upgrade_authorization) {
                    Ok(identity) => {
                        self.identity = Some(identity);
                        self.send(json!({ "type": "connection_ack" })).await;
                        None
                    }
                    Err(err) => Some(err),
                }
            }
            ClientMessage::Ping { payload } => {
                let mut pong = json!({ "type": "pong" });
                if let Some(payload) = payload {
                    pong["payload"] = payload;
                }
                self.send(pong).await;
                None
            }
            ClientMessage::Pong { .. } => None,
            ClientMessage::Complete { id } => {
                if let Some(task) = self.operations.remove(&id) {
                    task.abort();
                }
                None
            }
            ClientMessage::Subscribe { id, payload } => {
                let Some(identity) = self.identity.clone() else {
                    return Some(RouterError::WsNotAcknowledged);
                };
                self.operations.retain(|_, task| !task.is_finished());
                if self.operations.contains_key(&id) {
                    return Some(RouterError::WsDuplicateId(id));
                }
                // Every operation counts, queries and mutations too, against
                // the user's budget, as the same request over HTTP would; an
                // operation over it is refused alone, the connection stays.
                if let Err(err) = self.take_budget(&identity).await {
                    self.send(
                        json!({ "id": id, "type": "error", "payload": [err.to_graphql_error()] }),
                    )
                    .await;
                    return None;
                }
                if self.operations.len() >= self.settings.per_connection {
                    let error = RouterError::TooManyOperations {
                        max: self.settings.per_connection,
                    }
                    .to_graphql_error();
                    self.send(json!({ "id": id, "type": "error", "payload": [error] }))
                        .await;
                    return None;
                }
                let task = tokio::spawn(operate(
                    id.clone(),
                    payload,
                    identity,
                    self.state.clone(),
                    self.outbound.clone(),
                ));
                self.operations.insert(id, task);
                None
            }
        }
    }

    /// The caller from the `connection_init` payload, else the upgrade
    /// request's `Authorization` header; anonymous callers are refused.
    fn authenticate(
        &self,
        payload: Option<&Value>,
        upgrade_authorization: Option<&HeaderValue>,
    ) -> Result<Identity, RouterError> {
        let header = match payload_authorization(payload)? {
            Some(header) => Some(header),
            None => upgrade_authorization.cloned(),
        };
        match self.state.pipeline.auth.identify(header.as_ref()) {
            Ok(identity @ Identity::User(_)) => Ok(identity),
            Ok(_) => Err(RouterError::WsAnonymous),
            Err(err) => Err(RouterError::WsInvalidToken(err)),
        }
    }

    /// One cell of the caller's rate-limit budget, keyed by the user as
    /// HTTP requests with their token are.
    async fn take_budget(&self, identity: &Identity) -> Result<(), RouterError> {
        let (Some(budget), Identity::User(viewer)) = (&self.budget, identity) else {
            return Ok(());
        };
        budget.0.take(&viewer.user_id).await
    }

    async fn send(&self, message: Value) {
        let _ = self.outbound.send(text(message)).await;
    }
}

/// Reads one text frame from the client: a protocol message, or the
/// refusal that closes the connection (4400).
fn parse_message(text: &str) -> Result<ClientMessage, RouterError> {
    serde_json::from_str::<ClientMessage>(text).map_err(RouterError::WsInvalidMessage)
}

/// The `Authorization` header value a `connection_init` payload carries
/// ([`connection_init_authorization`]), if any; a token that cannot be a
/// header value is refused.
fn payload_authorization(payload: Option<&Value>) -> Result<Option<HeaderValue>, RouterError> {
    connection_init_authorization(payload).map_err(|_| RouterError::WsTokenNotText)
}

/// The websocket's message handling without a socket, for the fuzz targets
/// in `fuzz/` (the `fuzzing` feature): everything [`serve`] does with a
/// client's text frame before it needs the router's state.
#[cfg(feature = "fuzzing")]
pub mod fuzzing {
    use super::{ClientMessage, GraphqlRequest, RouterError, parse_message, payload_authorization};

    /// What one client frame asks for, as the connection would act on it.
    #[derive(Debug)]
    pub enum Frame {
        /// `connection_init`: the `Authorization` value it carries, if any.
        Init(Option<axum::http::HeaderValue>),
        /// `subscribe`: its id and the GraphQL request to prepare.
        Subscribe(String, GraphqlRequest),
        /// `ping`, `pong` or `complete`.
        Other,
    }

    /// Reads `text` as [`super::serve`] reads a frame, and the token of a
    /// `connection_init` as it authenticates it; `Err` is the refusal
    /// that closes the connection.
    pub fn read_frame(text: &str) -> Result<Frame, RouterError> {
        Ok(match parse_message(text)? {
            ClientMessage::ConnectionInit { payload } => {
                Frame::Init(payload_authorization(payload.as_ref())?)
            }
            ClientMessage::Subscribe { id, payload } => Frame::Subscribe(id, payload),
            ClientMessage::Ping { .. }
            | ClientMessage::Pong { .. }
            | ClientMessage::Complete { .. } => Frame::Other,
        })
    }
}

/// Runs one operation and streams its responses into the connection.
async fn operate(
    id: String,
    request: GraphqlRequest,
    identity: Identity,
    state: GraphqlState,
    outbound: mpsc::Sender<Message>,
) {
    let error = |err: RouterError| {
        err.log();
        json!({ "id": id, "type": "error", "payload": [err.to_graphql_error()] })
    };
    let operation = match prepare_operation(&state.pipeline, &request, &identity).await {
        Ok(operation) => operation,
        Err((_, err)) => {
            let _ = outbound.send(text(error(err))).await;
            return;
        }
    };
    let mut responses = match results(operation, identity, &state.settings, &state.subscriber).await
    {
        Ok(responses) => responses,
        Err(err) => {
            let _ = outbound.send(text(error(err))).await;
            return;
        }
    };
    while let Some(outcome) = responses.next().await {
        let message = next_message(&id, &outcome.into_body());
        match outbound.send_timeout(message, SLOW_CLIENT_GRACE).await {
            Ok(()) => {}
            Err(SendTimeoutError::Closed(_)) => return,
            Err(SendTimeoutError::Timeout(_)) => {
                metrics::counter!("router_subscription_overflows_total").increment(1);
                drop(responses); // stop the subgraph subscription first
                let _ = outbound
                    .send(text(error(RouterError::SubscriptionOverflow)))
                    .await;
                return;
            }
        }
    }
    let _ = outbound
        .send(text(json!({ "id": id, "type": "complete" })))
        .await;
}

/// `{"id":…,"type":"next","payload":<body>}` without re-parsing the body.
fn next_message(id: &str, body: &[u8]) -> Message {
    let id = serde_json::to_string(id).unwrap_or_else(|_| "\"\"".into());
    let mut message = String::with_capacity(body.len() + id.len() + 32);
    message.push_str("{\"id\":");
    message.push_str(&id);
    message.push_str(",\"type\":\"next\",\"payload\":");
    message.push_str(&String::from_utf8_lossy(body));
    message.push('}');
    Message::Text(Utf8Bytes::from(message))
}

fn text(message: Value) -> Message {
    Message::Text(Utf8Bytes::from(message.to_string()))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::payload_authorization;

    fn token_of(payload: serde_json::Value) -> Option<String> {
        payload_authorization(Some(&payload))
            .ok()
            .flatten()
            .and_then(|value| value.to_str().ok().map(str::to_owned))
    }

    #[test]
    fn the_token_is_found_flat_or_inside_headers_with_or_without_its_scheme() {
        for payload in [
            json!({ "Authorization": "Bearer abc" }),
            json!({ "authorization": "abc" }),
            json!({ "token": "abc" }),
            json!({ "authToken": "Bearer abc" }),
            json!({ "headers": { "Authorization": "Bearer abc" } }),
            json!({ "headers": { "authorization": "abc" } }),
        ] {
            assert_eq!(
                token_of(payload.clone()).as_deref(),
                Some("Bearer abc"),
                "{payload}"
            );
        }
        // The top level wins over `headers`.
        assert_eq!(
            token_of(json!({ "token": "top", "headers": { "Authorization": "nested" } }))
                .as_deref(),
            Some("Bearer top")
        );
        for payload in [
            json!({}),
            json!({ "headers": {} }),
            json!({ "headers": "Bearer abc" }),
        ] {
            assert_eq!(token_of(payload.clone()), None, "{payload}");
        }
    }
}

//! A subgraph's websocket server: `graphql-transport-ws` on `/graphql/ws`.
//!
//! The router multiplexes: a few connections per subgraph replica carry
//! every caller's subscriptions, thousands on one socket. async-graphql's
//! own websocket server polls every subscription of a connection each time
//! any of them wakes (and starts from the first one again after each
//! message), which costs O(n²) polls to send one event to n subscribers on
//! a connection. This server keeps the protocol's messages
//! ([`async_graphql::http::ClientMessage`]) and axum's framing, and runs a
//! connection's subscriptions in a [`SelectAll`], so a ready subscription
//! costs one poll whatever else the connection carries.
//!
//! Who runs each operation:
//!
//! - a `subscribe` whose payload carries a
//!   [`SignedOperation`](shopgraph_core::hop::operation::SignedOperation)
//!   (`extensions.shopgraphHop`) runs the operation its signature covers,
//!   as the caller it names, once the signature checks out; a bad one is
//!   answered with an `error` message (`UNAUTHENTICATED`) for that id and
//!   the connection goes on;
//! - any other `subscribe` runs as the connection's caller: the identity
//!   the upgrade request carried (signed), or the token an unsigned
//!   connection sent in `connection_init` where direct tokens are accepted
//!   (GraphiQL in `dev`).
//!
//! Resuming: each operation gets a [`Resume`] in its data. A resolver that
//! can pick up where a subscriber left off records a token per event; the
//! token leaves with that event (`extensions.resume`), and a subscriber that
//! lost its connection sends the last one back in its next `subscribe`
//! (`extensions.resume`), which the resolver reads as where to start.
//!
//! Protocol errors close the socket with the codes of the `graphql-ws`
//! reference implementation: 4400 bad message, 4401 subscribe before
//! `connection_ack`, 4403 refused `connection_init`, 4408 no
//! `connection_init` in time, 4409 a repeated subscription id, 4429 a
//! second `connection_init`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_graphql::http::ClientMessage;
use async_graphql::{Data, Executor, Request, Response, ServerError, Value};
use axum::extract::ws::{CloseFrame, Message, WebSocket};
use futures::stream::{AbortHandle, Abortable, BoxStream, SelectAll};
use futures::{StreamExt, stream};
use serde_json::json;
use shopgraph_core::error::ErrorCode;
use shopgraph_core::hop::operation::{EXTENSION, SignedOperation};
use shopgraph_core::identity::Identity;
use tokio::time::Instant;

use crate::auth::SubgraphAuth;
use crate::upstream::Credentials;

/// The subprotocol served; the legacy `subscriptions-transport-ws` is not.
pub const PROTOCOL: &str = "graphql-transport-ws";

/// Subscriptions one connection may run at once: a router carries up to
/// this many callers' subscriptions on one socket before it opens another.
pub const MAX_SUBSCRIPTIONS_PER_CONNECTION: usize = 100_000;

/// Where a subscription can be picked up again after its subscriber lost
/// the connection (see the module docs). Every operation on the websocket
/// gets one in its data.
#[derive(Clone, Default)]
pub struct Resume {
    requested: Option<serde_json::Value>,
    latest: Arc<Mutex<Option<serde_json::Value>>>,
}

impl Resume {
    /// The token of the last event this subscriber received before it
    /// re-subscribed, if it did: a resolver that records tokens starts
    /// after it.
    pub fn requested(&self) -> Option<&serde_json::Value> {
        self.requested.as_ref()
    }

    /// Records the token of the event being produced; it leaves with that
    /// event's response.
    pub fn record(&self, token: serde_json::Value) {
        if let Ok(mut latest) = self.latest.lock() {
            *latest = Some(token);
        }
    }

    fn take(&self) -> Option<serde_json::Value> {
        self.latest.lock().ok().and_then(|mut latest| latest.take())
    }
}

/// Who a connection acts for, as its upgrade request established it.
pub(crate) struct Connection {
    /// The upgrade's caller (anonymous for the router's shared connections).
    pub identity: Identity,
    /// What calls on that caller's behalf forward.
    pub credentials: Credentials,
    /// The subgraph's identity policy: verifies signed operations.
    pub auth: Option<Arc<SubgraphAuth>>,
    /// Whether the upgrade was unsigned and anonymous: then its
    /// `connection_init` may name a caller (direct tokens).
    pub init_names_caller: bool,
    /// The request path of the upgrade, which signed operations are signed for.
    pub path: String,
}

/// Timers of a connection.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Timers {
    /// Time the client has to send `connection_init`.
    pub init: Duration,
    /// A connection silent this long is closed.
    pub idle: Duration,
}

/// One item of a running subscription: its id, which subscription of that
/// id (ids may be reused after `complete`), and a response or its end.
type Item = (String, u64, Option<Response>);

/// Serves one upgraded websocket until either side closes it.
pub(crate) async fn serve<E: Executor>(
    mut socket: WebSocket,
    executor: E,
    mut connection: Connection,
    timers: Timers,
) {
    let mut acknowledged = false;
    let mut running: SelectAll<BoxStream<'static, Item>> = SelectAll::new();
    let mut handles: HashMap<String, (u64, AbortHandle)> = HashMap::new();
    let mut generation = 0_u64;
    let opened = Instant::now();
    let mut last_heard = Instant::now();
    let close = loop {
        let deadline = if acknowledged {
            last_heard + timers.idle
        } else {
            opened + timers.init
        };
        tokio::select! {
            () = tokio::time::sleep_until(deadline) => {
                break if acknowledged {
                    Some((4408, "Connection idle timeout"))
                } else {
                    Some((4408, "Connection initialisation timeout"))
                };
            }
            item = running.next(), if !running.is_empty() => {
                let Some((id, of, response)) = item else { continue };
                if handles.get(&id).is_none_or(|(current, _)| *current != of) {
                    continue; // completed by the client meanwhile
                }
                let message = match response {
                    Some(response) => match outgoing(&id, response) {
                        Outgoing::Next(message) => message,
                        Outgoing::Error(message) => {
                            if let Some((_, handle)) = handles.remove(&id) {
                                handle.abort();
                            }
                            message
                        }
                    },
                    None => {
                        handles.remove(&id);
                        json!({ "id": id, "type": "complete" })
                    }
                };
                if send(&mut socket, &message).await.is_err() {
                    break None;
                }
            }
            message = socket.recv() => {
                let text = match message {
                    None | Some(Err(_)) | Some(Ok(Message::Close(_))) => break None,
                    Some(Ok(Message::Text(text))) => text.as_str().as_bytes().to_vec(),
                    Some(Ok(Message::Binary(bytes))) => bytes.to_vec(),
                    Some(Ok(Message::Ping(_) | Message::Pong(_))) => {
                        last_heard = Instant::now();
                        continue;
                    }
                };
                last_heard = Instant::now();
                let Ok(message) = ClientMessage::from_bytes(&text) else {
                    break Some((4400, "Invalid message received"));
                };
                match message {
                    ClientMessage::ConnectionInit { payload } => {
                        if acknowledged {
                            break Some((4429, "Too many initialisation requests"));
                        }
                        if let Err(refusal) = connection.init(payload.unwrap_or_default()) {
                            tracing::debug!(%refusal, "websocket connection_init refused");
                            break Some((4403, "Forbidden"));
                        }
                        acknowledged = true;
                        if send(&mut socket, &json!({ "type": "connection_ack" })).await.is_err() {
                            break None;
                        }
                    }
                    ClientMessage::Start { id, payload } => {
                        if !acknowledged {
                            break Some((4401, "Unauthorized"));
                        }
                        if handles.contains_key(&id) {
                            // The reference server's words; the id is the client's own.
                            let _ = socket
                                .send(Message::Close(Some(CloseFrame {
                                    code: 4409,
                                    reason: format!("Subscriber for {id} already exists").into(),
                                })))
                                .await;
                            break None;
                        }
                        let runnable = if handles.len() >= MAX_SUBSCRIPTIONS_PER_CONNECTION {
                            Err(coded(
                                ServerError::new(
                                    format!("a connection runs at most {MAX_SUBSCRIPTIONS_PER_CONNECTION} subscriptions"),
                                    None,
                                ),
                                ErrorCode::BadRequest,
                            ))
                        } else {
                            connection.runnable(payload).await
                        };
                        let Runnable { request, resume } = match runnable {
                            Ok(runnable) => runnable,
                            Err(error) => {
                                let message = json!({ "id": id, "type": "error", "payload": [error] });
                                if send(&mut socket, &message).await.is_err() {
                                    break None;
                                }
                                continue;
                            }
                        };
                        generation += 1;
                        let (handle, registration) = AbortHandle::new_pair();
                        let responses = executor
                            .execute_stream(request, None)
                            .map(move |mut response| {
                                if let Some(token) = resume.take() {
                                    response
                                        .extensions
                                        .insert("resume".into(), Value::from_json(token).unwrap_or_default());
                                }
                                response
                            });
                        let end = stream::once(std::future::ready((id.clone(), generation, None)));
                        let tagged = {
                            let (id, of) = (id.clone(), generation);
                            Abortable::new(responses, registration)
                                .map(move |response| (id.clone(), of, Some(response)))
                                .chain(end)
                        };
                        handles.insert(id, (generation, handle));
                        running.push(tagged.boxed());
                    }
                    ClientMessage::Stop { id } => {
                        if let Some((_, handle)) = handles.remove(&id) {
                            handle.abort();
                        }
                    }
                    ClientMessage::ConnectionTerminate => break None,
                    ClientMessage::Ping { payload } => {
                        let mut pong = json!({ "type": "pong" });
                        if let Some(payload) = payload {
                            pong["payload"] = payload;
                        }
                        if send(&mut socket, &pong).await.is_err() {
                            break None;
                        }
                    }
                    ClientMessage::Pong { .. } => {}
                }
            }
        }
    };
    for (_, handle) in handles.into_values() {
        handle.abort();
    }
    if let Some((code, reason)) = close {
        let _ = socket
            .send(Message::Close(Some(CloseFrame {
                code,
                reason: reason.into(),
            })))
            .await;
    }
}

/// An operation ready to run, with the [`Resume`] it was given.
struct Runnable {
    request: Request,
    resume: Resume,
}

impl Connection {
    /// Handles `connection_init`: an unsigned connection may name its
    /// caller with a token; every other connection keeps its caller.
    fn init(&mut self, payload: serde_json::Value) -> Result<(), String> {
        let Some(auth) = self.auth.as_ref().filter(|_| self.init_names_caller) else {
            return Ok(());
        };
        match auth.identify_connection_init(&payload) {
            Ok(Some((identity, authorization))) => {
                self.credentials = Credentials {
                    authorization: Some(authorization),
                    identity: identity.clone(),
                };
                self.identity = identity;
                Ok(())
            }
            Ok(None) => Ok(()),
            Err(refusal) => Err(refusal.to_string()),
        }
    }

    /// The request a `subscribe` payload runs (see the module docs for
    /// whose), or the error to answer it with.
    async fn runnable(&self, mut payload: Request) -> Result<Runnable, ServerError> {
        let (mut request, identity, credentials) = match payload.extensions.remove(EXTENSION) {
            None => (payload, self.identity.clone(), self.credentials.clone()),
            Some(signed) => {
                let refused = |message: String| {
                    coded(ServerError::new(message, None), ErrorCode::Unauthenticated)
                };
                let signed: SignedOperation = signed
                    .into_json()
                    .ok()
                    .and_then(|signed| serde_json::from_value(signed).ok())
                    .ok_or_else(|| refused("the operation's signature cannot be read".into()))?;
                let Some(auth) = &self.auth else {
                    return Err(refused("signed operations are not accepted here".into()));
                };
                let (identity, _) =
                    auth.identify_operation(&self.path, &signed)
                        .await
                        .map_err(|refusal| {
                            tracing::debug!(%refusal, "signed websocket operation refused");
                            refused(refusal.to_string())
                        })?;
                let request: Request = serde_json::from_str(&signed.operation).map_err(|err| {
                    coded(
                        ServerError::new(
                            format!("the signed operation is not a GraphQL request: {err}"),
                            None,
                        ),
                        ErrorCode::BadRequest,
                    )
                })?;
                let credentials = Credentials {
                    authorization: None,
                    identity: identity.clone(),
                };
                (request, identity, credentials)
            }
        };
        let resume = Resume {
            requested: request
                .extensions
                .remove("resume")
                .and_then(|token| token.into_json().ok()),
            latest: Arc::default(),
        };
        let mut data = Data::default();
        data.insert(identity);
        data.insert(credentials);
        data.insert(resume.clone());
        request.data = data;
        Ok(Runnable { request, resume })
    }
}

fn coded(mut error: ServerError, code: ErrorCode) -> ServerError {
    error
        .extensions
        .get_or_insert_with(Default::default)
        .set("code", code.as_str());
    error
}

enum Outgoing {
    /// A `next` message.
    Next(serde_json::Value),
    /// An `error` message: the operation failed before it produced any
    /// result (it did not validate, say); it ends the subscription.
    Error(serde_json::Value),
}

fn outgoing(id: &str, mut response: Response) -> Outgoing {
    let request_error = response.data == Value::Null
        && !response.errors.is_empty()
        && response.errors.iter().all(|e| e.path.is_empty());
    for error in &mut response.errors {
        crate::graphql::ensure_code(error, request_error);
    }
    if request_error {
        Outgoing::Error(json!({ "id": id, "type": "error", "payload": response.errors }))
    } else {
        Outgoing::Next(json!({ "id": id, "type": "next", "payload": response }))
    }
}

async fn send(socket: &mut WebSocket, message: &serde_json::Value) -> Result<(), axum::Error> {
    socket.send(Message::text(message.to_string())).await
}

//! Subscriptions to subgraphs over websockets, speaking
//! `graphql-transport-ws` to each subgraph's `/graphql/ws`, multiplexed:
//! one connection per (subgraph, caller) carries all of that caller's
//! subscriptions to that subgraph, each under its own operation id.
//!
//! The router is the subgraph's only websocket client. It forwards the
//! verified caller in the upgrade request's identity headers (the same hop
//! as HTTP fetches) and the current trace context, so a connection belongs
//! to one caller. It pings every [`PING_INTERVAL`] so the subgraph's idle
//! timeout never fires on a live connection, and answers the subgraph's
//! pings. Ten thousand subscribers of one user cost one upstream socket;
//! ten thousand users cost one each.
//!
//! An [`Events`] stream ends its subscription when dropped (`complete` is
//! sent upstream); the connection closes when its last subscription ends.
//! Each subscription has a bounded buffer. A burst (a resume replaying
//! hundreds of stored notifications) waits for room: reading the socket
//! pauses, and TCP holds the subgraph back. A consumer that takes no
//! event for [`FALL_BEHIND_GRACE`] is ended instead, with a final
//! [`FetchError::FellBehind`] after what it was sent, so it cannot stall
//! the caller's other subscriptions on the connection for longer.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::task::{Context, Poll};
use std::time::Duration;

use futures::{SinkExt, Stream, StreamExt};
use http::HeaderValue;
use hyper::body::Bytes;
use serde_json::{Map, Value, json};
use shopgraph_core::hop::HopSigner;
use shopgraph_core::identity::{Identity, forward_identity};
use shopgraph_core::telemetry::inject_trace_context;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

use super::{FetchError, SubgraphResponse};

/// How often the router pings a subgraph connection.
pub const PING_INTERVAL: Duration = Duration::from_secs(20);
/// Events buffered per subscription between the socket and its consumer.
const BUFFER: usize = 64;
/// How long a full buffer may hold up the connection before its
/// subscription is ended as fallen behind. The router's consumer pulls
/// eagerly (slow clients overflow the client-facing queue instead), so
/// only a consumer stuck on an event's own fetches waits this long.
pub const FALL_BEHIND_GRACE: Duration = Duration::from_secs(5);
const PROTOCOL: &str = "graphql-transport-ws";

/// The websocket URL of a subgraph's subscriptions, from its GraphQL URL
/// (`http://host/graphql` → `ws://host/graphql/ws`).
pub fn websocket_url(graphql_url: &str) -> String {
    let url = if let Some(rest) = graphql_url.strip_prefix("https://") {
        format!("wss://{rest}")
    } else if let Some(rest) = graphql_url.strip_prefix("http://") {
        format!("ws://{rest}")
    } else {
        graphql_url.to_owned()
    };
    format!("{}/ws", url.trim_end_matches('/'))
}

/// Opens subscriptions on subgraphs, sharing connections (see the module
/// docs). Cheap to clone.
#[derive(Clone)]
pub struct Subscriber {
    connections: Arc<tokio::sync::Mutex<Connections>>,
    signer: HopSigner,
}

/// Open connections by (subgraph URL, caller); a connection lives as long
/// as a subscription holds it.
type Connections = HashMap<(String, String), Weak<Connection>>;

/// One subscription's events: `Ok` per `next` (or a final `error`), then
/// the end; one `Err` if the connection is lost or the subscription fell
/// behind. Dropping it ends the subscription.
pub struct Events {
    receiver: mpsc::Receiver<Result<SubgraphResponse, FetchError>>,
    id: u64,
    connection: Arc<Connection>,
}

impl Stream for Events {
    type Item = Result<SubgraphResponse, FetchError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.receiver.poll_recv(cx)
    }
}

impl Drop for Events {
    fn drop(&mut self) {
        let _ = self
            .connection
            .commands
            .send(Command::Complete { id: self.id });
    }
}

/// A shared connection: the handle its subscriptions hold.
struct Connection {
    commands: mpsc::UnboundedSender<Command>,
    next_id: AtomicU64,
    alive: Arc<AtomicBool>,
}

enum Command {
    Subscribe {
        id: u64,
        payload: Value,
        sink: mpsc::Sender<Result<SubgraphResponse, FetchError>>,
    },
    Complete {
        id: u64,
    },
}

impl Subscriber {
    /// A subscriber whose upgrade requests `signer` signs (the signed hop).
    pub fn new(signer: HopSigner) -> Self {
        Self {
            connections: Arc::default(),
            signer,
        }
    }

    /// Opens subscription `query` on `subgraph` at `graphql_url` for
    /// `identity`, connecting (within `timeout`) unless this caller already
    /// has a connection to that subgraph.
    pub async fn subscribe(
        &self,
        subgraph: &str,
        graphql_url: &str,
        query: &str,
        variables: Map<String, Value>,
        identity: &Identity,
        timeout: Duration,
    ) -> Result<Events, FetchError> {
        let connection = self
            .connection(subgraph, graphql_url, identity, timeout)
            .await?;
        let id = connection.next_id.fetch_add(1, Ordering::Relaxed);
        let (sink, receiver) = mpsc::channel(BUFFER);
        let payload = json!({ "query": query, "variables": variables });
        connection
            .commands
            .send(Command::Subscribe { id, payload, sink })
            .map_err(|_| FetchError::Unreachable {
                subgraph: subgraph.to_owned(),
                reason: "the connection closed".into(),
            })?;
        Ok(Events {
            receiver,
            id,
            connection,
        })
    }

    async fn connection(
        &self,
        subgraph: &str,
        graphql_url: &str,
        identity: &Identity,
        timeout: Duration,
    ) -> Result<Arc<Connection>, FetchError> {
        let key = (graphql_url.to_owned(), caller_key(identity));
        let mut connections = self.connections.lock().await;
        if let Some(connection) = connections.get(&key).and_then(Weak::upgrade)
            && connection.alive.load(Ordering::Acquire)
        {
            return Ok(connection);
        }
        connections.retain(|_, weak| weak.strong_count() > 0);
        let handshake = handshake(subgraph, graphql_url, identity, &self.signer);
        let socket = tokio::time::timeout(timeout, handshake)
            .await
            .map_err(|_| FetchError::Timeout {
                subgraph: subgraph.to_owned(),
                timeout,
            })??;
        let (commands, queue) = mpsc::unbounded_channel();
        let alive = Arc::new(AtomicBool::new(true));
        tokio::spawn(pump(subgraph.to_owned(), socket, queue, alive.clone()));
        let connection = Arc::new(Connection {
            commands,
            next_id: AtomicU64::new(1),
            alive,
        });
        connections.insert(key, Arc::downgrade(&connection));
        Ok(connection)
    }
}

/// Which connection a caller uses: its user id and roles.
fn caller_key(identity: &Identity) -> String {
    match identity {
        Identity::User(viewer) => format!("{}\u{0}{}", viewer.user_id, viewer.roles.join(",")),
        _ => String::new(),
    }
}

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Connects, sends `connection_init` and waits for the ack.
async fn handshake(
    subgraph: &str,
    graphql_url: &str,
    identity: &Identity,
    signer: &HopSigner,
) -> Result<Socket, FetchError> {
    let unreachable = |reason: String| FetchError::Unreachable {
        subgraph: subgraph.to_owned(),
        reason,
    };
    let mut request = websocket_url(graphql_url)
        .into_client_request()
        .map_err(|err| unreachable(err.to_string()))?;
    let headers = request.headers_mut();
    headers.insert(
        http::header::SEC_WEBSOCKET_PROTOCOL,
        HeaderValue::from_static(PROTOCOL),
    );
    forward_identity(identity, headers);
    inject_trace_context(headers);
    let (method, uri) = (request.method().clone(), request.uri().clone());
    signer
        .sign(
            &method,
            &uri,
            request.headers_mut(),
            &Bytes::new(),
            subgraph,
        )
        .await
        .map_err(|err| unreachable(err.to_string()))?;
    // Small buffers: a connection per caller, mostly idle.
    let config = WebSocketConfig::default()
        .read_buffer_size(16 * 1024)
        .write_buffer_size(4 * 1024);
    let (mut socket, _) = tokio_tungstenite::connect_async_with_config(request, Some(config), true)
        .await
        .map_err(|err| unreachable(err.to_string()))?;
    send(
        &mut socket,
        json!({ "type": "connection_init", "payload": {} }),
    )
    .await
    .map_err(unreachable)?;
    loop {
        let message = socket
            .next()
            .await
            .ok_or_else(|| unreachable("closed during the handshake".into()))?
            .map_err(|err| unreachable(err.to_string()))?;
        let Some(message) = parse(&message) else {
            continue;
        };
        match message["type"].as_str() {
            Some("connection_ack") => return Ok(socket),
            Some("ping") => send(&mut socket, json!({ "type": "pong" }))
                .await
                .map_err(unreachable)?,
            _ => {
                return Err(unreachable(format!(
                    "unexpected handshake message {message}"
                )));
            }
        }
    }
}

type Sinks = HashMap<u64, mpsc::Sender<Result<SubgraphResponse, FetchError>>>;

/// Runs one connection: commands from its subscriptions out, messages
/// from the subgraph routed to them by id.
async fn pump(
    subgraph: String,
    mut socket: Socket,
    mut commands: mpsc::UnboundedReceiver<Command>,
    alive: Arc<AtomicBool>,
) {
    // How many sockets subscriptions hold open to each subgraph: one per
    // distinct caller today, the figure upstream multiplexing must bring
    // down.
    let open =
        metrics::gauge!("router_subgraph_subscription_connections", "subgraph" => subgraph.clone());
    open.increment(1.0);
    let mut sinks: Sinks = HashMap::new();
    let mut ping = tokio::time::interval(PING_INTERVAL);
    ping.reset();
    let reason = loop {
        tokio::select! {
            command = commands.recv() => match command {
                // Every subscription handle is gone: close.
                None => break None,
                Some(Command::Subscribe { id, payload, sink }) => {
                    let message = json!({ "id": id.to_string(), "type": "subscribe", "payload": payload });
                    if let Err(err) = send(&mut socket, message).await {
                        let _ = sink.try_send(Err(lost(&subgraph, &err)));
                        break Some(err);
                    }
                    sinks.insert(id, sink);
                }
                Some(Command::Complete { id }) => {
                    if sinks.remove(&id).is_some()
                        && let Err(err) = send(&mut socket, json!({ "id": id.to_string(), "type": "complete" })).await
                    {
                        break Some(err);
                    }
                }
            },
            _ = ping.tick() => {
                if let Err(err) = send(&mut socket, json!({ "type": "ping" })).await {
                    break Some(err);
                }
            }
            message = socket.next() => {
                let message = match message {
                    Some(Ok(Message::Close(frame))) => {
                        break Some(frame.map_or_else(|| "closed".to_owned(), |f| format!("closed {}: {}", f.code, f.reason)));
                    }
                    Some(Ok(message)) => message,
                    Some(Err(err)) => break Some(err.to_string()),
                    None => break Some("connection closed".into()),
                };
                if let Err(err) = route(&subgraph, &mut socket, &mut sinks, &message).await {
                    break Some(err);
                }
            }
        }
    };
    alive.store(false, Ordering::Release);
    if let Some(reason) = reason {
        tracing::warn!(subgraph, %reason, subscriptions = sinks.len(), "subgraph subscription connection lost");
        for sink in sinks.values() {
            let _ = sink.try_send(Err(lost(&subgraph, &reason)));
        }
    }
    let _ = socket.close(None).await;
    open.decrement(1.0);
}

/// Hands one subgraph message to the subscription it is for.
async fn route(
    subgraph: &str,
    socket: &mut Socket,
    sinks: &mut Sinks,
    message: &Message,
) -> Result<(), String> {
    let Some(message) = parse(message) else {
        return Ok(());
    };
    let id = message["id"].as_str().and_then(|id| id.parse::<u64>().ok());
    match (message["type"].as_str(), id) {
        (Some("next"), Some(id)) => {
            let Some(sink) = sinks.get(&id) else {
                return Ok(());
            };
            let response = serde_json::from_value::<SubgraphResponse>(message["payload"].clone())
                .unwrap_or_default();
            match sink
                .clone()
                .send_timeout(Ok(response), FALL_BEHIND_GRACE)
                .await
            {
                Ok(()) => Ok(()),
                Err(mpsc::error::SendTimeoutError::Timeout(_)) => {
                    if let Some(sink) = sinks.remove(&id) {
                        tracing::warn!(
                            subgraph,
                            id,
                            "a subscription fell behind its subgraph and was ended"
                        );
                        // Last, after what its buffer holds; gone with the
                        // consumer if it leaves first.
                        let fell_behind = FetchError::FellBehind {
                            subgraph: subgraph.to_owned(),
                        };
                        tokio::spawn(async move { sink.send(Err(fell_behind)).await });
                    }
                    send(socket, json!({ "id": id.to_string(), "type": "complete" })).await
                }
                Err(mpsc::error::SendTimeoutError::Closed(_)) => {
                    sinks.remove(&id);
                    send(socket, json!({ "id": id.to_string(), "type": "complete" })).await
                }
            }
        }
        (Some("error"), Some(id)) => {
            if let Some(sink) = sinks.remove(&id) {
                let errors = match message["payload"].clone() {
                    Value::Array(errors) => errors,
                    other => vec![other],
                };
                let _ = sink.try_send(Ok(SubgraphResponse { data: None, errors }));
            }
            Ok(())
        }
        (Some("complete"), Some(id)) => {
            sinks.remove(&id);
            Ok(())
        }
        (Some("ping"), _) => send(socket, json!({ "type": "pong" })).await,
        _ => Ok(()),
    }
}

fn lost(subgraph: &str, reason: &str) -> FetchError {
    FetchError::Unreachable {
        subgraph: subgraph.to_owned(),
        reason: reason.to_owned(),
    }
}

async fn send<S>(socket: &mut S, message: Value) -> Result<(), String>
where
    S: SinkExt<Message> + Unpin,
    S::Error: std::fmt::Display,
{
    socket
        .send(Message::text(message.to_string()))
        .await
        .map_err(|err| err.to_string())
}

fn parse(message: &Message) -> Option<Value> {
    match message {
        Message::Text(text) => serde_json::from_str(text.as_str()).ok(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn websocket_urls_follow_the_graphql_url() {
        assert_eq!(
            websocket_url("http://127.0.0.1:4004/graphql"),
            "ws://127.0.0.1:4004/graphql/ws"
        );
        assert_eq!(
            websocket_url("https://notification.shop/graphql/"),
            "wss://notification.shop/graphql/ws"
        );
    }
}

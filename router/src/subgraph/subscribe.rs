//! Subscriptions to subgraphs over websockets, speaking
//! `graphql-transport-ws` to each subgraph's `/graphql/ws`, multiplexed:
//! a few connections per subgraph replica carry every caller's
//! subscriptions, each under its own operation id.
//!
//! A connection belongs to the router, not to a caller: its upgrade
//! request is signed on the hop as the router's own (anonymous), and each
//! `subscribe` carries its operation signed for its caller
//! ([`shopgraph_core::hop::operation`]), which the subgraph verifies and
//! runs as that caller. Ten thousand users cost a handful of sockets: a
//! replica gets a new connection only when each open one carries
//! [`SPREAD_AT`] subscriptions, up to [`CONNECTIONS_PER_REPLICA`]; past
//! that the least loaded one takes the next subscription. The router pings
//! every [`PING_INTERVAL`] so the subgraph's idle timeout never fires on a
//! live connection, and answers the subgraph's pings.
//!
//! A [`Subscription`] survives the loss of its connection: it subscribes
//! again, with backoff, on a replica picked afresh, for up to
//! [`RESUBSCRIBE_WINDOW`], passing back the resume token of the last event
//! it received (`extensions.resume`, see `subgraph_kit::subscriptions`),
//! so a resumable field (`notificationAdded`) continues after that event:
//! nothing lost, nothing repeated. Past the window it ends with the
//! connection's error.
//!
//! Each subscription has a bounded buffer. A burst (a resume replaying
//! thousands of stored notifications) waits for room: reading the socket
//! pauses, and TCP holds the subgraph back. A consumer that takes no event
//! for [`FALL_BEHIND_GRACE`] is ended instead, with a final
//! [`FetchError::FellBehind`] after what it was sent, so it cannot stall
//! the other subscriptions on the connection for longer.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use futures::stream::BoxStream;
use futures::{SinkExt, Stream, StreamExt};
use http::HeaderValue;
use hyper::body::Bytes;
use serde_json::{Map, Value, json};
use shopgraph_core::backoff::Backoff;
use shopgraph_core::hop::HopSigner;
use shopgraph_core::hop::operation::EXTENSION;
use shopgraph_core::identity::{Identity, forward_identity};
use shopgraph_core::telemetry::inject_trace_context;
use tokio::sync::mpsc;
use tokio::time::Instant;
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
/// The most connections the router opens to one subgraph replica.
pub const CONNECTIONS_PER_REPLICA: usize = 4;
/// Subscriptions a connection carries before the next one to that replica
/// is opened (while fewer than [`CONNECTIONS_PER_REPLICA`] are).
pub const SPREAD_AT: usize = 1024;
/// How long a subscription whose connection was lost keeps trying to
/// subscribe again before it ends with the connection's error.
pub const RESUBSCRIBE_WINDOW: Duration = Duration::from_secs(30);
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
    replicas: Arc<Mutex<HashMap<String, Arc<tokio::sync::Mutex<Pool>>>>>,
    signer: HopSigner,
}

/// The open connections to one replica (by its GraphQL URL).
#[derive(Default)]
struct Pool(Vec<Arc<Connection>>);

/// Picks the replica a subscription (re)subscribes on: the subgraph's
/// load balancer, asked afresh each time.
pub type PickReplica = Arc<dyn Fn() -> Option<String> + Send + Sync>;

/// What to subscribe to, kept to subscribe again after a lost connection.
pub struct Target {
    /// The subgraph's name (the hop signature's audience, logs).
    pub subgraph: String,
    /// Where to subscribe.
    pub pick: PickReplica,
    /// The operation text.
    pub query: String,
    /// Its variables.
    pub variables: Map<String, Value>,
    /// The caller it runs as.
    pub identity: Identity,
    /// How long opening a connection may take.
    pub timeout: Duration,
}

/// One subscription's events: `Ok` per `next` (or a final `error`), then
/// the end; one `Err` if it could not subscribe again within
/// [`RESUBSCRIBE_WINDOW`] or fell behind. Dropping it ends the
/// subscription.
pub struct Subscription {
    events: BoxStream<'static, Result<SubgraphResponse, FetchError>>,
}

impl Stream for Subscription {
    type Item = Result<SubgraphResponse, FetchError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.events.poll_next_unpin(cx)
    }
}

/// One event as the connection hands it over: the response and its
/// resume token, if the subgraph gave one. Boxed: a channel allocates its
/// first block of 32 slots when it is made, so an idle subscription costs
/// 32 pointers instead of 32 × 168 bytes.
type Delivery = Box<Result<(SubgraphResponse, Option<Value>), FetchError>>;

/// One subscription on one connection. Dropping it sends `complete`.
struct Events {
    receiver: mpsc::Receiver<Delivery>,
    id: u64,
    connection: Arc<Connection>,
}

impl Drop for Events {
    fn drop(&mut self) {
        self.connection.load.fetch_sub(1, Ordering::Relaxed);
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
    /// Subscriptions it carries now.
    load: AtomicUsize,
    alive: Arc<AtomicBool>,
}

enum Command {
    Subscribe {
        id: u64,
        payload: Value,
        sink: mpsc::Sender<Delivery>,
    },
    Complete {
        id: u64,
    },
}

impl Subscriber {
    /// A subscriber whose upgrade requests and operations `signer` signs
    /// (the signed hop).
    pub fn new(signer: HopSigner) -> Self {
        Self {
            replicas: Arc::default(),
            signer,
        }
    }

    /// Opens the subscription `target` describes (connecting, within its
    /// timeout, if no connection to the replica can take it); it subscribes
    /// again by itself when its connection is lost (see the module docs).
    pub async fn subscribe(&self, target: Target) -> Result<Subscription, FetchError> {
        let first = self.subscribe_once(&target, None).await?;
        let state = Resubscribing {
            subscriber: self.clone(),
            target,
            current: Some(first),
            resume: None,
            ended: false,
        };
        let events = futures::stream::unfold(state, |mut state| async move {
            let item = state.next().await?;
            Some((item, state))
        });
        Ok(Subscription {
            events: events.boxed(),
        })
    }

    /// One subscription on one replica, after `resume` if given.
    async fn subscribe_once(
        &self,
        target: &Target,
        resume: Option<&Value>,
    ) -> Result<Events, FetchError> {
        let subgraph = target.subgraph.as_str();
        let unreachable = |reason: String| FetchError::Unreachable {
            subgraph: subgraph.to_owned(),
            reason,
        };
        let graphql_url = (target.pick)().ok_or_else(|| FetchError::Unavailable {
            subgraph: subgraph.to_owned(),
            reason: "no replica is available".into(),
        })?;
        let mut operation = json!({ "query": target.query, "variables": target.variables });
        if let Some(token) = resume {
            operation["extensions"] = json!({ "resume": token });
        }
        let path = websocket_path(&graphql_url);
        let signed = self
            .signer
            .sign_operation(&path, &target.identity, operation.to_string(), subgraph)
            .await
            .map_err(|err| unreachable(err.to_string()))?;
        let payload = json!({ "query": target.query, "extensions": { EXTENSION: signed } });
        let connection = self
            .connection(subgraph, &graphql_url, target.timeout)
            .await?;
        let id = connection.next_id.fetch_add(1, Ordering::Relaxed);
        let (sink, receiver) = mpsc::channel(BUFFER);
        connection.load.fetch_add(1, Ordering::Relaxed);
        let events = Events {
            receiver,
            id,
            connection,
        };
        events
            .connection
            .commands
            .send(Command::Subscribe { id, payload, sink })
            .map_err(|_| unreachable("the connection closed".into()))?;
        Ok(events)
    }

    /// A connection to the replica at `graphql_url` that can take one
    /// more subscription, opened if none can.
    async fn connection(
        &self,
        subgraph: &str,
        graphql_url: &str,
        timeout: Duration,
    ) -> Result<Arc<Connection>, FetchError> {
        let pool = {
            let mut replicas = self
                .replicas
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            Arc::clone(replicas.entry(graphql_url.to_owned()).or_default())
        };
        // One opening at a time per replica; other replicas go on.
        let mut pool = pool.lock().await;
        pool.0
            .retain(|connection| connection.alive.load(Ordering::Acquire));
        let least_loaded = pool
            .0
            .iter()
            .min_by_key(|connection| connection.load.load(Ordering::Relaxed))
            .cloned();
        if let Some(connection) = &least_loaded
            && (connection.load.load(Ordering::Relaxed) < SPREAD_AT
                || pool.0.len() >= CONNECTIONS_PER_REPLICA)
        {
            return Ok(Arc::clone(connection));
        }
        let handshake = handshake(subgraph, graphql_url, &self.signer);
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
            load: AtomicUsize::new(0),
            alive,
        });
        pool.0.push(Arc::clone(&connection));
        Ok(connection)
    }
}

/// A subscription across connections: the one it is on, and the resume
/// token of the last event it passed on.
struct Resubscribing {
    subscriber: Subscriber,
    target: Target,
    current: Option<Events>,
    resume: Option<Value>,
    ended: bool,
}

impl Resubscribing {
    async fn next(&mut self) -> Option<Result<SubgraphResponse, FetchError>> {
        if self.ended {
            return None;
        }
        loop {
            let Some(events) = &mut self.current else {
                match self.resubscribe().await {
                    Ok(events) => {
                        self.current = Some(events);
                        continue;
                    }
                    Err(err) => {
                        self.ended = true;
                        return Some(Err(err));
                    }
                }
            };
            match events.receiver.recv().await.map(|delivery| *delivery) {
                None => return None,
                Some(Ok((response, resume))) => {
                    if resume.is_some() {
                        self.resume = resume;
                    }
                    return Some(Ok(response));
                }
                Some(Err(FetchError::Unreachable { subgraph, reason })) => {
                    tracing::info!(%subgraph, %reason, "subgraph subscription connection lost; subscribing again");
                    metrics::counter!("router_subgraph_resubscriptions_total", "subgraph" => subgraph).increment(1);
                    self.current = None;
                }
                Some(Err(err)) => {
                    self.ended = true;
                    return Some(Err(err));
                }
            }
        }
    }

    /// Subscribes again, with backoff, until it works or
    /// [`RESUBSCRIBE_WINDOW`] has passed.
    async fn resubscribe(&mut self) -> Result<Events, FetchError> {
        let give_up = Instant::now() + RESUBSCRIBE_WINDOW;
        let mut backoff = Backoff::new(Duration::from_millis(50), Duration::from_secs(2));
        loop {
            let attempt = self
                .subscriber
                .subscribe_once(&self.target, self.resume.as_ref());
            let err = match tokio::time::timeout_at(give_up, attempt).await {
                Ok(Ok(events)) => return Ok(events),
                Ok(Err(err)) => err,
                Err(_) => {
                    return Err(FetchError::Timeout {
                        subgraph: self.target.subgraph.clone(),
                        timeout: RESUBSCRIBE_WINDOW,
                    });
                }
            };
            let delay = backoff.next_delay();
            if Instant::now() + delay >= give_up {
                return Err(err);
            }
            tracing::debug!(subgraph = %self.target.subgraph, error = %err, "subscribing again failed; retrying");
            tokio::time::sleep(delay).await;
        }
    }
}

/// The request path of a subgraph's websocket (what operations sent on
/// it are signed for).
fn websocket_path(graphql_url: &str) -> String {
    websocket_url(graphql_url)
        .parse::<http::Uri>()
        .map_or_else(|_| "/graphql/ws".to_owned(), |uri| uri.path().to_owned())
}

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Connects, sends `connection_init` and waits for the ack.
async fn handshake(
    subgraph: &str,
    graphql_url: &str,
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
    // The router's own connection: no caller (each operation names its own).
    forward_identity(&Identity::Anonymous, headers);
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
    let config = WebSocketConfig::default()
        .read_buffer_size(64 * 1024)
        .write_buffer_size(16 * 1024);
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

type Sinks = HashMap<u64, mpsc::Sender<Delivery>>;

/// Runs one connection: commands from its subscriptions out, messages
/// from the subgraph routed to them by id.
async fn pump(
    subgraph: String,
    mut socket: Socket,
    mut commands: mpsc::UnboundedReceiver<Command>,
    alive: Arc<AtomicBool>,
) {
    // How many sockets subscriptions hold open to each subgraph: at most
    // CONNECTIONS_PER_REPLICA per replica.
    let _open = shopgraph_core::metrics::GaugeGuard::new(
        metrics::gauge!("router_subgraph_subscription_connections", "subgraph" => subgraph.clone()),
    );
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
                        let _ = sink.try_send(Box::new(Err(lost(&subgraph, &err))));
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
            let _ = sink.try_send(Box::new(Err(lost(&subgraph, &reason))));
        }
    }
    let _ = socket.close(None).await;
}

/// Hands one subgraph message to the subscription it is for.
async fn route(
    subgraph: &str,
    socket: &mut Socket,
    sinks: &mut Sinks,
    message: &Message,
) -> Result<(), String> {
    let Some(mut message) = parse(message) else {
        return Ok(());
    };
    let id = message["id"].as_str().and_then(|id| id.parse::<u64>().ok());
    match (message["type"].as_str(), id) {
        (Some("next"), Some(id)) => {
            let Some(sink) = sinks.get(&id) else {
                return Ok(());
            };
            let mut payload = message["payload"].take();
            let resume = payload
                .get_mut("extensions")
                .and_then(|extensions| extensions.get_mut("resume"))
                .map(Value::take);
            let response = serde_json::from_value::<SubgraphResponse>(payload).unwrap_or_default();
            match sink
                .clone()
                .send_timeout(Box::new(Ok((response, resume))), FALL_BEHIND_GRACE)
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
                        tokio::spawn(async move { sink.send(Box::new(Err(fell_behind))).await });
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
                let _ = sink.try_send(Box::new(Ok((
                    SubgraphResponse { data: None, errors },
                    None,
                ))));
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

//! Subscriptions to subgraphs: one websocket per client subscription,
//! speaking `graphql-transport-ws` to the subgraph's `/graphql/ws`.
//!
//! The router is the subgraph's only websocket client. It forwards the
//! verified caller in the upgrade request's identity headers (the same hop
//! as HTTP fetches) and the current trace context, sends
//! `connection_init`, waits for the ack, subscribes, and hands every
//! `next` payload to the caller as a [`SubgraphResponse`]. It pings every
//! [`PING_INTERVAL`] so the subgraph's idle timeout never fires on a live
//! subscription, and answers the subgraph's pings.
//!
//! Dropping the receiver ends the subscription: the task sends `complete`
//! and closes the socket. Backpressure is end to end: the channel is
//! bounded, so a slow consumer stops the reads, TCP pushes back, and the
//! subgraph's own bounded buffer ends the subscription if it lasts.

use std::time::Duration;

use futures::{SinkExt, StreamExt};
use http::HeaderValue;
use serde_json::{Map, Value, json};
use shopgraph_platform::identity::{Identity, forward_identity};
use shopgraph_platform::upstream::inject_trace_context;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use super::{FetchError, SubgraphResponse};

/// How often the router pings a subgraph subscription.
pub const PING_INTERVAL: Duration = Duration::from_secs(20);
/// Events buffered between a subgraph socket and the subscription using it.
const BUFFER: usize = 16;
const PROTOCOL: &str = "graphql-transport-ws";
const ID: &str = "1";

/// A subscription's event stream from a subgraph: `Ok` per `next` (or a
/// final `error`), then the end; one `Err` if the connection is lost.
pub type Events = mpsc::Receiver<Result<SubgraphResponse, FetchError>>;

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

/// Opens subscription `query` on `subgraph` at `graphql_url` for
/// `identity`; resolves once the subgraph accepted the connection.
pub async fn subscribe(
    subgraph: &str,
    graphql_url: &str,
    query: &str,
    variables: Map<String, Value>,
    identity: &Identity,
    timeout: Duration,
) -> Result<Events, FetchError> {
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

    let handshake = async {
        let (mut socket, _) = tokio_tungstenite::connect_async(request)
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
                Some("connection_ack") => break,
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
        let subscribe = json!({
            "id": ID,
            "type": "subscribe",
            "payload": { "query": query, "variables": variables },
        });
        send(&mut socket, subscribe).await.map_err(unreachable)?;
        Ok(socket)
    };
    let socket = tokio::time::timeout(timeout, handshake)
        .await
        .map_err(|_| FetchError::Timeout {
            subgraph: subgraph.to_owned(),
            timeout,
        })??;

    let (sender, receiver) = mpsc::channel(BUFFER);
    tokio::spawn(pump(subgraph.to_owned(), socket, sender));
    Ok(receiver)
}

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Moves messages from the socket to `sender` until either side ends.
async fn pump(
    subgraph: String,
    mut socket: Socket,
    sender: mpsc::Sender<Result<SubgraphResponse, FetchError>>,
) {
    let mut ping = tokio::time::interval(PING_INTERVAL);
    ping.reset();
    loop {
        let message = tokio::select! {
            () = sender.closed() => {
                // The client went away: end the subgraph side cleanly.
                let _ = send(&mut socket, json!({ "id": ID, "type": "complete" })).await;
                let _ = socket.close(None).await;
                return;
            }
            _ = ping.tick() => {
                if send(&mut socket, json!({ "type": "ping" })).await.is_err() {
                    lost(&sender, &subgraph, "ping failed").await;
                    return;
                }
                continue;
            }
            message = socket.next() => message,
        };
        let message = match message {
            Some(Ok(message)) => message,
            Some(Err(err)) => {
                lost(&sender, &subgraph, &err.to_string()).await;
                return;
            }
            None => {
                lost(&sender, &subgraph, "connection closed").await;
                return;
            }
        };
        if let Message::Close(frame) = &message {
            let reason = frame.as_ref().map_or_else(
                || "closed".to_owned(),
                |f| format!("closed {}: {}", f.code, f.reason),
            );
            lost(&sender, &subgraph, &reason).await;
            return;
        }
        let Some(message) = parse(&message) else {
            continue;
        };
        match message["type"].as_str() {
            Some("next") => {
                let response =
                    serde_json::from_value::<SubgraphResponse>(message["payload"].clone())
                        .unwrap_or_default();
                if sender.send(Ok(response)).await.is_err() {
                    let _ = send(&mut socket, json!({ "id": ID, "type": "complete" })).await;
                    let _ = socket.close(None).await;
                    return;
                }
            }
            Some("error") => {
                let errors = match message["payload"].clone() {
                    Value::Array(errors) => errors,
                    other => vec![other],
                };
                let _ = sender
                    .send(Ok(SubgraphResponse { data: None, errors }))
                    .await;
                let _ = socket.close(None).await;
                return;
            }
            Some("complete") => {
                let _ = socket.close(None).await;
                return;
            }
            Some("ping") => {
                let _ = send(&mut socket, json!({ "type": "pong" })).await;
            }
            _ => {}
        }
    }
}

async fn lost(
    sender: &mpsc::Sender<Result<SubgraphResponse, FetchError>>,
    subgraph: &str,
    reason: &str,
) {
    tracing::warn!(subgraph, reason, "subgraph subscription lost");
    let _ = sender
        .send(Err(FetchError::Unreachable {
            subgraph: subgraph.to_owned(),
            reason: reason.to_owned(),
        }))
        .await;
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

//! GraphQL over Server-Sent Events, distinct-connections mode: a `POST`
//! (or `GET`) to `/graphql` with `Accept: text/event-stream` streams one
//! `next` event per response and ends with `complete`.
//!
//! The caller authenticates with the `Authorization` header; a request
//! that cannot start gets a coded GraphQL error response instead of a
//! stream, its status from [`RouterError::status`] (anonymous
//! subscription: 401, invalid document: 400, subgraph down: 502).
//! Comments keep idle streams open through proxies. A subscription's
//! responses wait in a bounded queue ([`super::open`]): a client that
//! falls too far behind gets a last `SUBSCRIPTION_OVERFLOW` response.

use std::convert::Infallible;

use axum::body::Bytes;
use axum::http::{HeaderMap, Method, Uri, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use futures::stream;

use super::{GraphqlState, open, unstarted};
use crate::pipeline::{Verified, admit, refusal};

const JSON: &str = "application/json";

/// Whether a request asks for an event stream.
pub fn wants_event_stream(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|accept| accept.contains("text/event-stream"))
}

/// Answers one SSE request; `verified` is the caller as the edge
/// identified it.
pub async fn respond(
    state: &GraphqlState,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    verified: Option<Verified>,
    body: &Bytes,
) -> Response {
    let admitted = match admit(&state.pipeline, method, uri, headers, verified, body).await {
        Ok(admitted) => admitted,
        Err((_, err)) => return refusal(err, JSON),
    };
    let responses = match open(state, admitted).await {
        Ok(responses) => responses,
        Err(err) => return unstarted(err, JSON),
    };
    let events = responses
        .map(|outcome| {
            Ok::<_, Infallible>(
                Event::default()
                    .event("next")
                    .data(String::from_utf8_lossy(&outcome.into_body())),
            )
        })
        .chain(stream::once(async {
            Ok(Event::default().event("complete").data(""))
        }));
    let shutdown = state.shutdown.clone();
    let events = events.take_until(async move { shutdown.cancelled().await });
    Sse::new(events)
        .keep_alive(KeepAlive::new().interval(state.settings.keepalive))
        .into_response()
}

//! GraphQL over Server-Sent Events, distinct-connections mode: a `POST`
//! (or `GET`) to `/graphql` with `Accept: text/event-stream` streams one
//! `next` event per response and ends with `complete`.
//!
//! The caller authenticates with the `Authorization` header; a request
//! that cannot start gets a coded GraphQL error response instead of a
//! stream, its status from [`RouterError::status`] (anonymous
//! subscription: 401, invalid document: 400, subgraph down: 502).
//! Comments keep idle streams open through proxies.

use std::convert::Infallible;

use axum::body::Bytes;
use axum::http::{HeaderMap, Method, Uri, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use futures::stream;

use super::{GraphqlState, results};
use crate::pipeline::{RouterError, prepare_operation, read_request};

const JSON: &str = "application/json";

/// Whether a request asks for an event stream.
pub fn wants_event_stream(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|accept| accept.contains("text/event-stream"))
}

/// A refusal before the operation is prepared: a coded error, no `data`.
fn refuse(err: RouterError) -> Response {
    metrics::counter!("router_errors_total", "code" => err.code().as_str()).increment(1);
    err.log();
    err.into_response(JSON)
}

/// Answers one SSE request.
pub async fn respond(
    state: &GraphqlState,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &Bytes,
) -> Response {
    let request = match read_request(method, uri, headers, body) {
        Ok(request) => request,
        Err(err) => return refuse(err),
    };
    let identity = match state
        .pipeline
        .auth
        .identify(headers.get(header::AUTHORIZATION))
    {
        Ok(identity) => identity,
        Err(err) => return refuse(RouterError::InvalidToken(err.to_string())),
    };
    let operation = match prepare_operation(&state.pipeline, &request, &identity).await {
        Ok(operation) => operation,
        Err((_, err)) => return refuse(err),
    };
    let responses = match results(operation, identity, &state.settings, &state.subscriber).await {
        Ok(responses) => responses,
        Err(err) => {
            // Once prepared, a failure is answered as a response with
            // `data: null`, like the events that would have followed.
            err.log();
            let body = crate::executor::ExecutionResult {
                data: b"null".to_vec(),
                errors: vec![err.to_graphql_error()],
            }
            .into_body();
            let mut response = RouterError::into_response(err, JSON);
            *response.body_mut() = axum::body::Body::from(body);
            return response;
        }
    };
    let events = responses
        .map(|body| {
            Ok::<_, Infallible>(
                Event::default()
                    .event("next")
                    .data(String::from_utf8_lossy(&body)),
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

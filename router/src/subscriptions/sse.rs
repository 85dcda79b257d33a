//! GraphQL over Server-Sent Events, distinct-connections mode: a `POST`
//! (or `GET`) to `/graphql` with `Accept: text/event-stream` streams one
//! `next` event per response and ends with `complete`.
//!
//! The caller authenticates with the `Authorization` header; a request
//! that cannot start (anonymous subscription: 401, invalid document: 400,
//! subgraph down: 502) gets a plain coded GraphQL error response instead
//! of a stream. Comments keep idle streams open through proxies.

use std::convert::Infallible;

use axum::body::Bytes;
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use futures::stream;
use shopgraph_core::error::ErrorCode;
use shopgraph_core::graphql_http::coded_response;

use super::results;
use crate::pipeline::{RouterState, prepare_operation, read_request};

const JSON: &str = "application/json";

/// Whether a request asks for an event stream.
pub fn wants_event_stream(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|accept| accept.contains("text/event-stream"))
}

/// Answers one SSE request.
pub async fn respond(
    state: &RouterState,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &Bytes,
) -> Response {
    let refuse = |status: StatusCode, code: ErrorCode, message: &str| {
        metrics::counter!("router_errors_total", "code" => code.as_str()).increment(1);
        coded_response(status, JSON, code.as_str(), message)
    };
    let request = match read_request(method, uri, headers, body) {
        Ok(request) => request,
        Err(rejection) => {
            return refuse(rejection.status, rejection.code, &rejection.message);
        }
    };
    let identity = match state.auth.identify(headers.get(header::AUTHORIZATION)) {
        Ok(identity) => identity,
        Err(err) => {
            return refuse(
                StatusCode::UNAUTHORIZED,
                ErrorCode::Unauthenticated,
                &err.to_string(),
            );
        }
    };
    let operation = match prepare_operation(state, &request).await {
        Ok(operation) => operation,
        Err((_, rejection)) => {
            return refuse(rejection.status, rejection.code, &rejection.message);
        }
    };
    let responses =
        match results(operation, identity, &state.subscriptions, &state.subscriber).await {
            Ok(responses) => responses,
            Err(err) => {
                let status = match err.code() {
                    "UNAUTHENTICATED" => StatusCode::UNAUTHORIZED,
                    "SUBGRAPH_UNAVAILABLE" => StatusCode::BAD_GATEWAY,
                    _ => StatusCode::INTERNAL_SERVER_ERROR,
                };
                let mut response = (
                    status,
                    [(header::CONTENT_TYPE, JSON)],
                    crate::executor::ExecutionResult {
                        data: b"null".to_vec(),
                        errors: vec![err],
                    }
                    .into_body(),
                )
                    .into_response();
                if status == StatusCode::UNAUTHORIZED {
                    response.headers_mut().insert(
                        header::WWW_AUTHENTICATE,
                        http::HeaderValue::from_static("Bearer"),
                    );
                }
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
        .keep_alive(KeepAlive::new().interval(state.subscriptions.keepalive))
        .into_response()
}

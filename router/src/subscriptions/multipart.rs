//! Apollo's multipart HTTP subscriptions: a `POST` (or `GET`) to
//! `/graphql` with `Accept: multipart/mixed;subscriptionSpec="1.0"` (the
//! transport Apollo Client's `HttpLink`, Apollo iOS and Apollo Kotlin use
//! for subscriptions by default) streams one `multipart/mixed` part per
//! response, with the boundary `graphql`:
//!
//! ```text
//! \r\n--graphql
//! \r\ncontent-type: application/json\r\n\r\n{"payload":{"data":{…}}}\r\n--graphql
//! \r\ncontent-type: application/json\r\n\r\n{}\r\n--graphql                       (heartbeat)
//! \r\ncontent-type: application/json\r\n\r\n{"payload":null,"errors":[…]}\r\n--graphql
//! --\r\n                                                                          (the end)
//! ```
//!
//! * every response is wrapped as `{"payload": <response>}`; errors of an
//!   event (a field the caller may not see, a subgraph's error) stay in
//!   the payload's `errors`;
//! * an idle stream gets a `{}` part every [`SubscriptionSettings::heartbeat`]
//!   (5 s by default), so clients and proxies see it alive;
//! * an error that ends the subscription (the subgraph was lost, the
//!   client fell `SUBSCRIPTION_BUFFER` responses behind, the router shuts
//!   down) is a transport-level error, `{"payload": null, "errors": […]}`,
//!   followed by the final boundary;
//! * the end of the subscription closes the body with the final boundary
//!   (`--graphql--`), which clients read as completion.
//!
//! A request that cannot start is answered like any GraphQL request: one
//! JSON error response with its status (400 invalid document, 401
//! invalid token or anonymous subscriber, 429 over the rate limit, 502
//! subgraph down). A query or mutation sent with this `Accept` gets its
//! one response as JSON when the `Accept` also lists JSON (as Apollo
//! clients' do), else as a single part followed by the final boundary.
//!
//! Identity, rate limit, operation limits, authorization and `after`
//! resumption are the pipeline's ([`crate::pipeline::admit`]), and the
//! responses come from the same subscription execution as the websocket's
//! and SSE's ([`super::open`]); this module only frames them.
//!
//! [`SubscriptionSettings::heartbeat`]: super::SubscriptionSettings::heartbeat

use std::convert::Infallible;
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, HeaderValue, Method, Uri, header};
use axum::response::Response;
use futures::stream::{self, BoxStream};
use futures::{Stream, StreamExt};
use hive_router_query_planner::state::supergraph_state::OperationKind;
use shopgraph_core::graphql_http::response_content_type;
use tokio::time::{Interval, MissedTickBehavior};
use tokio_util::sync::CancellationToken;

use super::{GraphqlState, Outcome, open, unstarted};
use crate::executor::error::GraphqlError;
use crate::pipeline::{Admitted, RouterError, Verified, admit, answer, json_response, refusal};

/// The response's content type: the boundary and the protocol version.
pub const CONTENT_TYPE: &str = "multipart/mixed;boundary=\"graphql\";subscriptionSpec=\"1.0\"";

/// The delimiter before the first part (and after every part).
const DELIMITER: &[u8] = b"\r\n--graphql";
/// What opens every part, after a delimiter.
const PART_HEADERS: &[u8] = b"\r\ncontent-type: application/json\r\n\r\n";
/// What turns the last delimiter into the final one.
const CLOSE: &[u8] = b"--\r\n";
/// A heartbeat part's body.
const HEARTBEAT: &[u8] = b"{}";

/// Whether the `Accept` header lists `multipart/mixed` with
/// `subscriptionSpec=1.0` (quoted or not, any case for the names).
pub fn wants_multipart(headers: &HeaderMap) -> bool {
    media_ranges(headers).any(|range| {
        let mut parts = range.split(';').map(str::trim);
        let kind = parts.next().unwrap_or_default();
        kind.eq_ignore_ascii_case("multipart/mixed")
            && parts.any(|parameter| {
                parameter.split_once('=').is_some_and(|(name, value)| {
                    name.trim().eq_ignore_ascii_case("subscriptionSpec")
                        && value.trim().trim_matches('"') == "1.0"
                })
            })
    })
}

/// Whether the `Accept` header also lists a JSON response type (or a
/// wildcard that covers one), not refused with `q=0`.
fn accepts_json(headers: &HeaderMap) -> bool {
    media_ranges(headers).any(|range| {
        let mut parts = range.split(';').map(str::trim);
        let kind = parts.next().unwrap_or_default();
        let refused = parts.any(|parameter| {
            parameter.split_once('=').is_some_and(|(name, value)| {
                name.trim().eq_ignore_ascii_case("q")
                    && value.trim().parse::<f32>().is_ok_and(|q| q <= 0.0)
            })
        });
        !refused
            && [
                "application/json",
                "application/graphql-response+json",
                "application/*",
                "*/*",
            ]
            .iter()
            .any(|json| kind.eq_ignore_ascii_case(json))
    })
}

/// Every media range of every `Accept` header.
fn media_ranges(headers: &HeaderMap) -> impl Iterator<Item = &str> {
    headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
}

/// Answers one request that accepts multipart subscriptions; `verified`
/// is the caller as the edge identified it.
pub async fn respond(
    state: &GraphqlState,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    verified: Option<Verified>,
    body: &Bytes,
) -> Response {
    let started = Instant::now();
    let content_type = response_content_type(headers);
    let admitted = match admit(&state.pipeline, method, uri, headers, verified, body).await {
        Ok(admitted) if admitted.operation.prepared.kind == OperationKind::Subscription => admitted,
        other => return once(state, method, headers, other, started).await,
    };
    let responses = match open(state, admitted).await {
        Ok(responses) => responses,
        Err(err) => return unstarted(err, content_type),
    };
    let parts = parts(responses, state.settings.heartbeat, state.shutdown.clone());
    multipart_response(Body::from_stream(parts))
}

/// A query or mutation (or a refusal): one response, as JSON when the
/// client accepts it, else as one part.
async fn once(
    state: &GraphqlState,
    method: &Method,
    headers: &HeaderMap,
    admitted: Result<Admitted, (&'static str, RouterError)>,
    started: Instant,
) -> Response {
    let content_type = response_content_type(headers);
    match answer(&state.pipeline, method, headers, admitted, started).await {
        Err(err) => refusal(err, content_type),
        Ok(body) if accepts_json(headers) => json_response(body, content_type),
        Ok(body) => {
            let mut bytes = DELIMITER.to_vec();
            bytes.extend_from_slice(&part(&payload(&body)));
            bytes.extend_from_slice(CLOSE);
            multipart_response(Body::from(bytes))
        }
    }
}

/// A `200` with the multipart content type and `body`.
fn multipart_response(body: Body) -> Response {
    let mut response = Response::new(body);
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE));
    // Parts are read as they come: no cache may keep or merge them.
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// Where the body is.
enum Phase {
    /// Nothing sent yet: the first delimiter is next.
    Start,
    /// Parts and heartbeats.
    Live,
    /// The subscription ended on an error part: the final boundary is next.
    Closing,
    /// The final boundary was sent.
    Done,
}

/// What the body's stream holds between chunks.
struct Parts {
    responses: BoxStream<'static, Outcome>,
    heartbeats: Interval,
    shutdown: CancellationToken,
    phase: Phase,
}

/// The body of a subscription: the first delimiter, a part per response
/// or heartbeat, and the final boundary (see the module docs).
fn parts(
    responses: BoxStream<'static, Outcome>,
    heartbeat: Duration,
    shutdown: CancellationToken,
) -> impl Stream<Item = Result<Bytes, Infallible>> {
    let mut heartbeats =
        tokio::time::interval_at(tokio::time::Instant::now() + heartbeat, heartbeat);
    heartbeats.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let state = Parts {
        responses,
        heartbeats,
        shutdown,
        phase: Phase::Start,
    };
    stream::unfold(state, |mut state| async move {
        let chunk = match state.phase {
            Phase::Done => return None,
            Phase::Start => {
                state.phase = Phase::Live;
                Bytes::from_static(DELIMITER)
            }
            Phase::Closing => {
                state.phase = Phase::Done;
                Bytes::from_static(CLOSE)
            }
            Phase::Live => tokio::select! {
                biased;
                () = state.shutdown.cancelled() => {
                    state.phase = Phase::Closing;
                    Bytes::from(part(&transport_error(RouterError::ShuttingDown.to_graphql_error())))
                }
                next = state.responses.next() => match next {
                    Some(Outcome::Next(body)) => {
                        // Heartbeats fill silences only.
                        state.heartbeats.reset();
                        Bytes::from(part(&payload(&body)))
                    }
                    Some(Outcome::Ended(error)) => {
                        state.phase = Phase::Closing;
                        Bytes::from(part(&transport_error(error)))
                    }
                    None => {
                        state.phase = Phase::Done;
                        Bytes::from_static(CLOSE)
                    }
                },
                _ = state.heartbeats.tick() => Bytes::from(part(HEARTBEAT)),
            },
        };
        Some((Ok(chunk), state))
    })
}

/// One part: its headers, `json`, and the delimiter that ends it (so a
/// client can read the part as soon as it arrives).
fn part(json: &[u8]) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(PART_HEADERS.len() + json.len() + DELIMITER.len());
    bytes.extend_from_slice(PART_HEADERS);
    bytes.extend_from_slice(json);
    bytes.extend_from_slice(DELIMITER);
    bytes
}

/// `{"payload":<response>}` without re-parsing the response.
fn payload(response: &[u8]) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(response.len() + 12);
    bytes.extend_from_slice(b"{\"payload\":");
    bytes.extend_from_slice(response);
    bytes.push(b'}');
    bytes
}

/// `{"payload":null,"errors":[error]}`: the subscription ended on `error`.
fn transport_error(error: GraphqlError) -> Vec<u8> {
    let mut bytes = b"{\"payload\":null,\"errors\":[".to_vec();
    // Serialising strings and maps into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut bytes, &error);
    bytes.extend_from_slice(b"]}");
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A short heartbeat for the tests.
    const HEARTBEAT_EVERY: Duration = Duration::from_millis(200);

    fn accept(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(header::ACCEPT, HeaderValue::from_str(value).expect("ASCII"));
        headers
    }

    /// Apollo Client's, the protocol page's and curl-style spellings are
    /// recognised; `@defer`'s multipart and plain JSON are not.
    #[test]
    fn recognises_the_subscription_spec_in_accept() {
        for yes in [
            "multipart/mixed;boundary=graphql;subscriptionSpec=1.0,application/graphql-response+json,application/json;q=0.9",
            "multipart/mixed;subscriptionSpec=\"1.0\", application/json",
            "application/json, Multipart/Mixed; boundary=\"graphql\"; SUBSCRIPTIONSPEC=\"1.0\"",
        ] {
            assert!(wants_multipart(&accept(yes)), "{yes}");
        }
        for no in [
            "multipart/mixed;deferSpec=20220824, application/json",
            "multipart/mixed;subscriptionSpec=2.0",
            "application/json",
            "text/event-stream",
        ] {
            assert!(!wants_multipart(&accept(no)), "{no}");
        }
        assert!(accepts_json(&accept(
            "multipart/mixed;subscriptionSpec=1.0,application/json;q=0.9"
        )));
        assert!(!accepts_json(&accept(
            "multipart/mixed;subscriptionSpec=1.0"
        )));
    }

    /// Responses, an ending error, heartbeats on silence and the final
    /// boundary, byte for byte.
    #[tokio::test]
    async fn frames_parts_heartbeats_and_the_end() {
        let (sender, receiver) = tokio::sync::mpsc::unbounded_channel::<Outcome>();
        let mut receiver = receiver;
        let responses = stream::poll_fn(move |cx| receiver.poll_recv(cx)).boxed();
        let body = parts(responses, HEARTBEAT_EVERY, CancellationToken::new());
        tokio::pin!(body);
        let mut next = async || {
            let chunk = body.next().await.expect("a chunk").expect("infallible");
            String::from_utf8(chunk.to_vec()).expect("UTF-8")
        };
        assert_eq!(next().await, "\r\n--graphql");
        sender
            .send(Outcome::Next(br#"{"data":{"n":1}}"#.to_vec()))
            .expect("open");
        assert_eq!(
            next().await,
            "\r\ncontent-type: application/json\r\n\r\n{\"payload\":{\"data\":{\"n\":1}}}\r\n--graphql"
        );
        // Silence: a heartbeat, not before its time.
        let before = tokio::time::Instant::now();
        assert_eq!(
            next().await,
            "\r\ncontent-type: application/json\r\n\r\n{}\r\n--graphql"
        );
        assert!(
            before.elapsed() >= HEARTBEAT_EVERY,
            "{:?}",
            before.elapsed()
        );
        sender
            .send(Outcome::Ended(GraphqlError::coded(
                shopgraph_core::error::ErrorCode::SubscriptionOverflow,
                "behind",
            )))
            .expect("open");
        let ended = next().await;
        assert!(
            ended.starts_with("\r\ncontent-type: application/json\r\n\r\n{\"payload\":null,\"errors\":[{\"message\":\"behind\""),
            "{ended}"
        );
        assert!(ended.contains("SUBSCRIPTION_OVERFLOW"), "{ended}");
        assert_eq!(next().await, "--\r\n");
        assert!(
            body.next().await.is_none(),
            "nothing after the final boundary"
        );
    }

    /// A subscription that completes closes the body with the final
    /// boundary right after its last part; a shutdown ends it with an
    /// error part first.
    #[tokio::test]
    async fn completion_and_shutdown_close_the_body() {
        let responses = stream::iter([Outcome::Next(b"{\"data\":null}".to_vec())]).boxed();
        let body: Vec<Bytes> = parts(responses, Duration::from_secs(5), CancellationToken::new())
            .map(|chunk| chunk.expect("infallible"))
            .collect()
            .await;
        let text = String::from_utf8(body.concat()).expect("UTF-8");
        assert_eq!(
            text,
            "\r\n--graphql\r\ncontent-type: application/json\r\n\r\n{\"payload\":{\"data\":null}}\r\n--graphql--\r\n"
        );

        let shutdown = CancellationToken::new();
        shutdown.cancel();
        let body: Vec<Bytes> = parts(stream::pending().boxed(), Duration::from_secs(5), shutdown)
            .map(|chunk| chunk.expect("infallible"))
            .collect()
            .await;
        let text = String::from_utf8(body.concat()).expect("UTF-8");
        assert!(text.starts_with("\r\n--graphql\r\ncontent-type: application/json\r\n\r\n{\"payload\":null,\"errors\":["), "{text}");
        assert!(text.ends_with("\r\n--graphql--\r\n"), "{text}");
    }
}

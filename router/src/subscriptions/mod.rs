//! Stage 2, the transport choice on `/graphql` (between the edge and the pipeline).
//! [`graphql`] is the route's handler: a websocket upgrade speaks the
//! `graphql-transport-ws` protocol ([`ws`]), `Accept: multipart/mixed;
//! subscriptionSpec="1.0"` gets Apollo's multipart HTTP subscriptions
//! ([`multipart`]), `Accept: text/event-stream` gets GraphQL over SSE in
//! distinct-connections mode ([`sse`]), anything else goes to
//! [`crate::pipeline::graphql`]. The streaming transports reuse the
//! pipeline's steps ([`crate::pipeline::admit`] for an HTTP request,
//! [`crate::pipeline::prepare_operation`] for a websocket message), so
//! this module depends on the pipeline and never the other way round.
//!
//! The two HTTP streams (SSE and multipart) read one request each, so
//! they share [`open`]: the operation's responses behind a bounded queue
//! (`SUBSCRIPTION_BUFFER`), as a websocket connection has one.
//!
//! All hand a prepared operation to `results`, which for a subscription
//!
//! 1. finds the plan's source fetch (its `Subscription` node) and opens
//!    that subscription on the subgraph over a websocket
//!    ([`crate::subgraph::subscribe`]), as the verified caller;
//! 2. for every event, runs the rest of the plan — entity fetches to the
//!    other subgraphs — and projects the client's selection, so one event
//!    becomes one complete response;
//! 3. ends when the subgraph completes, or with a `SUBGRAPH_UNAVAILABLE`
//!    response when no replica took the subscription again within
//!    [`subscribe::RESUBSCRIBE_WINDOW`] of a lost connection (until then
//!    the client sees nothing of the loss: a resumable field carries on
//!    after the last event it received).
//!
//! Queries and mutations sent over these transports give one response.
//! Every subscription needs a signed-in caller.

pub mod multipart;
pub mod sse;
pub mod ws;

use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::{State, WebSocketUpgrade};
use axum::http::{HeaderMap, Method, Uri, header};
use axum::response::Response;
use futures::StreamExt;
use futures::stream::{self, BoxStream};
use hive_router_query_planner::state::supergraph_state::OperationKind;
use shopgraph_core::config::{ConfigError, Env};
use shopgraph_core::error::ErrorCode;
use shopgraph_core::identity::Identity;
use tokio::sync::mpsc;
use tokio::sync::mpsc::error::SendTimeoutError;
use tokio_util::sync::CancellationToken;

use crate::executor::error::GraphqlError;
use crate::executor::{ExecutionRequest, ExecutionResult, fetch_variables, subscription_source};
use crate::pipeline::{Admitted, Operation, RouterError, RouterState, Verified, execute};
use crate::subgraph::{FetchError, subscribe};

/// Takes one operation from a caller's rate-limit budget. The edge's
/// limiter implements it ([`crate::edge::ratelimit`]) and hands it to a
/// websocket upgrade as an [`OperationBudget`] extension: the upgrade
/// itself costs one request at the edge, but each `subscribe` message on
/// the open connection is an operation of its own and must cost one too,
/// or one socket would run any number of queries past the limit.
pub trait OperationLimit: Send + Sync {
    /// `Ok` when the operation of the user `subject` may run (it then used
    /// one cell of the budget HTTP requests of that user use), else
    /// [`RouterError::RateLimited`].
    fn take<'a>(
        &'a self,
        subject: &'a str,
    ) -> futures::future::BoxFuture<'a, Result<(), RouterError>>;
}

/// The request extension carrying the rate limit to a websocket
/// connection; absent when rate limiting is off.
#[derive(Clone)]
pub struct OperationBudget(pub std::sync::Arc<dyn OperationLimit>);

/// What the `/graphql` route needs: the pipeline's state plus what only
/// streaming connections use.
#[derive(Clone)]
pub struct GraphqlState {
    /// The pipeline's state, shared by every transport.
    pub pipeline: RouterState,
    /// Limits and timers of websocket, SSE and multipart connections.
    pub settings: SubscriptionSettings,
    /// Subscriptions opened on subgraphs, a few shared connections per replica.
    pub subscriber: subscribe::Subscriber,
    /// Cancelled when the router shuts down: streaming connections close.
    pub shutdown: CancellationToken,
}

/// `GET` and `POST /graphql`: websocket upgrades and event streams are
/// served here, everything else by [`crate::pipeline::graphql`].
// One axum extractor per argument: grouping them would hide what the
// handler reads.
#[allow(clippy::too_many_arguments)]
pub async fn graphql(
    State(state): State<GraphqlState>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    verified: Option<axum::Extension<Verified>>,
    budget: Option<axum::Extension<OperationBudget>>,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
    body: Bytes,
) -> Response {
    if let Ok(upgrade) = upgrade {
        let authorization = headers.get(header::AUTHORIZATION).cloned();
        let budget = budget.map(|axum::Extension(budget)| budget);
        return ws::configure(upgrade)
            .on_upgrade(move |socket| ws::serve(socket, state, authorization, budget));
    }
    let verified = verified.map(|axum::Extension(verified)| verified);
    if multipart::wants_multipart(&headers) {
        return multipart::respond(&state, &method, &uri, &headers, verified, &body).await;
    }
    if sse::wants_event_stream(&headers) {
        return sse::respond(&state, &method, &uri, &headers, verified, &body).await;
    }
    crate::pipeline::graphql(&state.pipeline, &method, &uri, &headers, verified, &body).await
}

/// How long a client's full queue may stay full before its subscription
/// ends with `SUBSCRIPTION_OVERFLOW`. A burst (a resume replaying stored
/// notifications) fills the queue faster than any socket drains it; a
/// client that reads drains it well within this, one that stopped
/// reading does not.
pub(crate) const SLOW_CLIENT_GRACE: Duration = Duration::from_secs(1);

/// Limits and timers of streaming connections.
#[derive(Debug, Clone)]
pub struct SubscriptionSettings {
    /// Responses a client may have waiting (`SUBSCRIPTION_BUFFER`); a
    /// subscription whose next response finds them all still waiting
    /// after [`SLOW_CLIENT_GRACE`] ends with `SUBSCRIPTION_OVERFLOW`.
    pub buffer: usize,
    /// How often the router pings an idle client (`SUBSCRIPTION_KEEPALIVE`).
    pub keepalive: Duration,
    /// How often an idle multipart subscription gets a `{}` heartbeat part
    /// (`MULTIPART_HEARTBEAT`; Apollo's protocol says 5 s).
    pub heartbeat: Duration,
    /// A websocket silent this long (no message, no pong) is closed
    /// (`SUBSCRIPTION_IDLE_TIMEOUT`).
    pub idle_timeout: Duration,
    /// Time a new websocket has to send `connection_init`
    /// (`WS_CONNECTION_INIT_TIMEOUT`).
    pub init_timeout: Duration,
    /// Subscriptions one websocket may run at once
    /// (`SUBSCRIPTIONS_PER_CONNECTION`).
    pub per_connection: usize,
    /// How long opening a subgraph subscription may take.
    pub connect_timeout: Duration,
}

impl SubscriptionSettings {
    /// Reads the variables named above.
    pub fn from_env(env: &Env, connect_timeout: Duration) -> Result<Self, ConfigError> {
        Ok(Self {
            buffer: env.int_in_or("SUBSCRIPTION_BUFFER", 1..=100_000, 128)?,
            keepalive: period(env, "SUBSCRIPTION_KEEPALIVE", Duration::from_secs(15))?,
            heartbeat: period(env, "MULTIPART_HEARTBEAT", Duration::from_secs(5))?,
            idle_timeout: env.duration_or("SUBSCRIPTION_IDLE_TIMEOUT", Duration::from_secs(60))?,
            init_timeout: env.duration_or("WS_CONNECTION_INIT_TIMEOUT", Duration::from_secs(10))?,
            per_connection: env.int_in_or("SUBSCRIPTIONS_PER_CONNECTION", 1..=10_000, 100)?,
            connect_timeout,
        })
    }
}

/// The period of a timer: a duration above zero (a zero period would
/// panic the timer, with the first connection, not at start).
fn period(env: &Env, var: &str, default: Duration) -> Result<Duration, ConfigError> {
    let value = env.duration_or(var, default)?;
    if value.is_zero() {
        return Err(shopgraph_core::config::invalid(
            var,
            "0",
            "a duration above zero such as 5s",
        ));
    }
    Ok(value)
}

/// One item of an operation's responses.
pub(crate) enum Outcome {
    /// A GraphQL response (`data`, maybe `errors`); more may follow.
    Next(Vec<u8>),
    /// The subscription ended on this error (its source was lost, or its
    /// client fell behind); nothing follows. The multipart transport sends
    /// it as a transport-level error, the others as a last response.
    Ended(GraphqlError),
}

impl Outcome {
    /// The GraphQL response that carries it: the body itself, or the
    /// ending error with `data: null`.
    pub(crate) fn into_body(self) -> Vec<u8> {
        match self {
            Self::Next(body) => body,
            Self::Ended(error) => ExecutionResult {
                data: b"null".to_vec(),
                errors: vec![error],
            }
            .into_body(),
        }
    }
}

/// The responses of one operation: one body for a query or mutation, one
/// per event for a subscription.
pub(crate) async fn results(
    operation: Operation,
    identity: Identity,
    settings: &SubscriptionSettings,
    subscriber: &subscribe::Subscriber,
) -> Result<BoxStream<'static, Outcome>, RouterError> {
    if operation.prepared.kind != OperationKind::Subscription {
        let Operation {
            supergraph,
            prepared,
            access,
            variables,
            ..
        } = operation;
        let executed = execute(supergraph, prepared, access, variables, identity).await;
        return Ok(stream::once(async move { Outcome::Next(executed.body.to_vec()) }).boxed());
    }
    if !matches!(identity, Identity::User(_)) {
        return Err(RouterError::SignInToSubscribe);
    }
    let Operation {
        supergraph,
        prepared,
        access,
        variables,
        ..
    } = operation;
    let Some(source) = subscription_source(access.plan(&prepared.plan)) else {
        return Err(RouterError::SubscriptionUnplannable);
    };
    let service = source.service_name.clone();
    // A long-lived stream goes to one available replica, like a fetch;
    // after a lost connection it is picked afresh.
    let Some(upstream) = supergraph.upstreams.get(&service) else {
        return Err(RouterError::NoReplica { service });
    };
    let pick: subscribe::PickReplica = Arc::new(move || {
        upstream
            .pool
            .pick(0)
            .map(|(_, replica)| replica.url.clone())
    });
    let target = subscribe::Target {
        subgraph: service.clone(),
        pick,
        query: source.operation.document_str.clone(),
        variables: fetch_variables(source, &variables),
        identity: identity.clone(),
        timeout: settings.connect_timeout,
    };
    let events = subscriber
        .subscribe(target)
        .await
        .map_err(|source| match source {
            FetchError::Unavailable { .. } => RouterError::NoReplica {
                service: service.clone(),
            },
            source => {
                tracing::warn!(subgraph = %service, error = %source, "cannot open a subgraph subscription");
                RouterError::SubscribeFailed {
                    service: service.clone(),
                    source,
                }
            }
        })?;
    metrics::gauge!("router_active_subscriptions").increment(1.0);
    let guard = ActiveSubscription;
    let responses = events
        .scan(false, |ended, event| {
            // Stop after the first lost-connection response.
            let item = (!*ended).then_some(event);
            *ended |= matches!(item, Some(Err(_)));
            futures::future::ready(item)
        })
        .then(move |event| {
            let supergraph = supergraph.clone();
            let prepared = prepared.clone();
            let access = access.clone();
            let variables = variables.clone();
            let identity = identity.clone();
            let service = service.clone();
            let _alive = &guard;
            async move {
                match event {
                    Ok(event) => {
                        let request = ExecutionRequest {
                            plan: access.plan(&prepared.plan),
                            operation: &prepared.operation,
                            root_type: &prepared.root_type,
                            variables: &variables,
                            identity: &identity,
                            extra_root_fields: Default::default(),
                            denied: access.denied(),
                        };
                        let mut result = supergraph
                            .executor
                            .execute_event(&supergraph.schema, request, &event)
                            .await;
                        GraphqlError::locate(&mut result.errors, |path| prepared.locate(path));
                        Outcome::Next(result.into_body())
                    }
                    Err(FetchError::FellBehind { .. }) => {
                        metrics::counter!("router_subscription_overflows_total").increment(1);
                        let err = RouterError::SubscriptionOverflow;
                        err.log();
                        Outcome::Ended(err.to_graphql_error())
                    }
                    Err(err) => {
                        tracing::warn!(subgraph = %service, error = %err, "subscription source lost");
                        Outcome::Ended(
                            GraphqlError::coded(
                                ErrorCode::SubgraphUnavailable,
                                format!("the {service} subgraph is unavailable; resubscribe"),
                            )
                            .from_service(&service),
                        )
                    }
                }
            }
        });
    Ok(responses.boxed())
}

/// The responses of an admitted HTTP request (SSE or multipart), a
/// subscription's behind a queue of [`SubscriptionSettings::buffer`]
/// responses: a client that falls that far behind gets a last
/// `SUBSCRIPTION_OVERFLOW` error ([`Outcome::Ended`]) and the subgraph
/// subscription ends; a client that goes away ends it too, at once, not
/// at the next event.
pub(crate) async fn open(
    state: &GraphqlState,
    admitted: Admitted,
) -> Result<BoxStream<'static, Outcome>, RouterError> {
    let subscription = admitted.operation.prepared.kind == OperationKind::Subscription;
    let responses = results(
        admitted.operation,
        admitted.identity,
        &state.settings,
        &state.subscriber,
    )
    .await?;
    Ok(if subscription {
        queued(responses, state.settings.buffer)
    } else {
        responses
    })
}

/// `responses` pulled by a task of their own into a queue of `buffer`
/// (see [`open`]).
fn queued(
    mut responses: BoxStream<'static, Outcome>,
    buffer: usize,
) -> BoxStream<'static, Outcome> {
    let (queue, mut receiver) = mpsc::channel(buffer.max(1));
    tokio::spawn(async move {
        loop {
            let next = tokio::select! {
                // The client left: dropping `responses` ends the
                // subgraph subscription.
                () = queue.closed() => return,
                next = responses.next() => next,
            };
            let Some(outcome) = next else { return };
            match queue.send_timeout(outcome, SLOW_CLIENT_GRACE).await {
                Ok(()) => {}
                Err(SendTimeoutError::Closed(_)) => return,
                Err(SendTimeoutError::Timeout(_)) => {
                    metrics::counter!("router_subscription_overflows_total").increment(1);
                    drop(responses); // stop the subgraph subscription first
                    let err = RouterError::SubscriptionOverflow;
                    err.log();
                    let _ = queue.send(Outcome::Ended(err.to_graphql_error())).await;
                    return;
                }
            }
        }
    });
    stream::poll_fn(move |cx| receiver.poll_recv(cx)).boxed()
}

/// The answer to a streaming request whose operation was prepared but
/// could not start (anonymous subscriber, subgraph down): the error's
/// status, and a GraphQL response with `data: null`, like the responses
/// that would have followed.
pub(crate) fn unstarted(err: RouterError, content_type: &'static str) -> Response {
    metrics::counter!("router_errors_total", "code" => err.code().as_str()).increment(1);
    err.log();
    let body = ExecutionResult {
        data: b"null".to_vec(),
        errors: vec![err.to_graphql_error()],
    }
    .into_body();
    let mut response = RouterError::into_response(err, content_type);
    *response.body_mut() = axum::body::Body::from(body);
    response
}

/// Counts a live subscription in `router_active_subscriptions` while it
/// exists.
struct ActiveSubscription;

impl Drop for ActiveSubscription {
    fn drop(&mut self) {
        metrics::gauge!("router_active_subscriptions").decrement(1.0);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    use super::*;

    /// Sets its flag when dropped: tells when a stream was let go.
    struct Dropped(Arc<AtomicBool>);

    impl Drop for Dropped {
        fn drop(&mut self) {
            self.0.store(true, Ordering::SeqCst);
        }
    }

    /// Endless responses that set `dropped` when the stream is let go,
    /// as a subgraph subscription ends when its stream is dropped.
    fn endless(dropped: &Arc<AtomicBool>) -> BoxStream<'static, Outcome> {
        let guard = Dropped(Arc::clone(dropped));
        stream::repeat_with(move || {
            let _alive = &guard;
            Outcome::Next(b"{\"data\":{}}".to_vec())
        })
        .boxed()
    }

    /// A client that reads nothing gets, once it reads, the responses the
    /// queue held and then `SUBSCRIPTION_OVERFLOW`, and the source was
    /// dropped as soon as the queue overflowed.
    #[tokio::test]
    async fn a_client_too_far_behind_ends_with_an_overflow() {
        let dropped = Arc::new(AtomicBool::new(false));
        let mut queued = queued(endless(&dropped), 3);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while !dropped.load(Ordering::SeqCst) {
            assert!(
                tokio::time::Instant::now() < deadline,
                "the source is dropped"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        for _ in 0..3 {
            assert!(matches!(queued.next().await, Some(Outcome::Next(_))));
        }
        match queued.next().await {
            Some(Outcome::Ended(error)) => {
                assert_eq!(error.code(), ErrorCode::SubscriptionOverflow.as_str());
            }
            _ => panic!("an overflow error"),
        }
        assert!(queued.next().await.is_none(), "nothing after the error");
    }

    /// A burst far larger than the queue (a resume's replay) reaches a
    /// client that reads, slower than the burst comes, in full.
    #[tokio::test]
    async fn a_burst_is_paced_to_a_client_that_reads() {
        let burst =
            stream::iter((0..50).map(|n| Outcome::Next(format!("{{\"n\":{n}}}").into_bytes())));
        let mut queued = queued(burst.boxed(), 3);
        for n in 0..50 {
            tokio::time::sleep(Duration::from_millis(10)).await;
            match queued.next().await {
                Some(Outcome::Next(body)) => {
                    assert_eq!(body, format!("{{\"n\":{n}}}").into_bytes());
                }
                _ => panic!("response {n} of the burst"),
            }
        }
        assert!(queued.next().await.is_none(), "the end, no overflow");
    }

    /// A zero heartbeat or keepalive is refused at start: it would panic
    /// the timer of the first streaming connection.
    #[test]
    fn timer_periods_must_be_above_zero() {
        for var in ["MULTIPART_HEARTBEAT", "SUBSCRIPTION_KEEPALIVE"] {
            let env = Env::from_pairs([(var, "0s")]);
            let err = SubscriptionSettings::from_env(&env, Duration::from_secs(1))
                .expect_err("zero is refused");
            assert!(err.to_string().contains(var), "{err}");
        }
        let env = Env::from_pairs([("MULTIPART_HEARTBEAT", "250ms")]);
        let settings = SubscriptionSettings::from_env(&env, Duration::from_secs(1)).expect("valid");
        assert_eq!(settings.heartbeat, Duration::from_millis(250));
    }

    /// A client that goes away ends the source at once, even while no
    /// response is coming.
    #[tokio::test]
    async fn a_client_that_leaves_drops_the_source() {
        let dropped = Arc::new(AtomicBool::new(false));
        let guard = Dropped(Arc::clone(&dropped));
        let silent = stream::pending::<Outcome>()
            .map(move |outcome| {
                let _alive = &guard;
                outcome
            })
            .boxed();
        let queued = queued(silent, 8);
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!dropped.load(Ordering::SeqCst), "alive while the client is");
        drop(queued);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while !dropped.load(Ordering::SeqCst) {
            assert!(
                tokio::time::Instant::now() < deadline,
                "the source is dropped"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

//! The router's GraphQL-over-HTTP endpoint, one request read top to bottom:
//!
//! 1. GraphiQL for browsers (`GET` with `Accept: text/html`);
//! 2. read the request: POST JSON body or GET query string (`BAD_REQUEST`);
//! 3. identify the caller from `Authorization: Bearer` (401 `UNAUTHENTICATED`);
//! 4. prepare: parse, validate, plan — cached ([`crate::planner`]);
//! 5. check the operation against the transport: no mutation over GET
//!    (405), subscriptions need a streaming transport;
//! 6. coerce variables (`BAD_USER_INPUT`);
//! 7. answer introspection, execute the plan ([`crate::executor`]) — or
//!    join an identical query from the same caller already executing — and
//!    write the response (`application/graphql-response+json` when the
//!    client accepts it, else `application/json`).

use std::sync::Arc;
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::Response;
use hive_router_query_planner::state::supergraph_state::OperationKind;
use serde_json::{Map, Value};
use shopgraph_core::error::ErrorCode;
use shopgraph_core::graphql_http::{
    self, GraphqlRequest, ONLY_QUERIES_OVER_GET, coded_response, prefers_html,
    response_content_type,
};

use crate::executor::ExecutionRequest;
use crate::executor::variables;
use crate::inflight::{self, InFlight};
use crate::persisted::PersistedQueries;
use crate::planner::{PlanError, PreparedOperation};
use crate::subscriptions::{SubscriptionSettings, sse, ws};
use crate::supergraph::Supergraph;
use crate::supergraph::SupergraphHandle;
use axum::extract::WebSocketUpgrade;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use shopgraph_core::identity::JwtVerifier;
use shopgraph_core::identity::{AuthError, Identity};
use tokio_util::sync::CancellationToken;

/// What every request needs, shared by all of them.
#[derive(Clone)]
pub struct RouterState {
    /// The current supergraph (hot-reloadable).
    pub supergraph: SupergraphHandle,
    /// Bearer-token verification.
    pub auth: Arc<JwtVerifier>,
    /// Whether `__schema` / `__type` are answered.
    pub introspection: bool,
    /// Whether browsers get GraphiQL.
    pub graphiql: bool,
    /// Whether identical queries in flight share one execution.
    pub query_dedupe: bool,
    /// The executions in flight, for `query_dedupe`.
    pub operations: Arc<InFlight<Arc<Executed>>>,
    /// Limits and timers of websocket and SSE connections.
    pub subscriptions: SubscriptionSettings,
    /// Cancelled when the router shuts down: streaming connections close.
    pub shutdown: CancellationToken,
    /// Subscriptions opened on subgraphs, sharing connections per caller.
    pub subscriber: crate::subgraph::subscribe::Subscriber,
    /// Automatic persisted queries and the safelist.
    pub persisted: Arc<PersistedQueries>,
}

/// The caller of a request, verified once by [`identify_caller`] before
/// the rate limit (which keys on it) and read again by the pipeline.
#[derive(Clone)]
pub struct Verified(pub Arc<Result<Identity, AuthError>>);

/// Verifies `Authorization: Bearer` once per `/graphql` request and
/// leaves the outcome in the request's extensions ([`Verified`]); a bad
/// token is refused later, by the pipeline, with a coded 401.
pub async fn identify_caller(
    State(auth): State<Arc<JwtVerifier>>,
    mut request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let verified = auth.identify(request.headers().get(header::AUTHORIZATION));
    request
        .extensions_mut()
        .insert(Verified(Arc::new(verified)));
    next.run(request).await
}

/// A request refused before execution: status, code and message.
pub(crate) struct Rejection {
    pub(crate) status: StatusCode,
    pub(crate) code: ErrorCode,
    pub(crate) message: String,
}

impl Rejection {
    pub(crate) fn new(status: StatusCode, code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
        }
    }

    pub(crate) fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, ErrorCode::BadRequest, message)
    }
}

/// How many headers a `/graphql` answer is given room for: its content
/// type plus the edge's (three security headers, three CORS headers, four
/// `RateLimit-*`), with one to spare.
const RESPONSE_HEADERS: usize = 12;

/// `GET` and `POST /graphql`: websocket upgrades and event streams go to
/// [`crate::subscriptions`], the rest is answered here.
pub async fn graphql(
    State(state): State<RouterState>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    verified: Option<axum::Extension<Verified>>,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
    body: Bytes,
) -> Response {
    if let Ok(upgrade) = upgrade {
        let authorization = headers.get(header::AUTHORIZATION).cloned();
        return ws::configure(upgrade)
            .on_upgrade(move |socket| ws::serve(socket, state, authorization));
    }
    if sse::wants_event_stream(&headers) {
        return sse::respond(&state, &method, &uri, &headers, &body).await;
    }
    if method == Method::GET && state.graphiql && prefers_html(&headers) {
        return graphql_http::graphiql("Shopgraph");
    }
    let started = Instant::now();
    let content_type = response_content_type(&headers);
    let verified = verified.map(|axum::Extension(verified)| verified);
    let (label, result) = handle(&state, &method, &uri, &headers, verified, &body).await;
    let outcome = match &result {
        Ok((_, false)) => "ok",
        Ok((_, true)) => "error",
        Err(_) => "rejected",
    };
    metrics::counter!("router_requests_total", "operation_type" => label, "outcome" => outcome)
        .increment(1);
    metrics::histogram!("router_request_duration_seconds", "operation_type" => label)
        .record(started.elapsed().as_secs_f64());
    match result {
        Ok((body, _)) => {
            let mut response = Response::new(axum::body::Body::from(body));
            let headers = response.headers_mut();
            // Room for what the edge adds on the way out (security, CORS
            // and rate-limit headers): one allocation, not a regrowth as
            // they arrive.
            headers.reserve(RESPONSE_HEADERS);
            headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
            response
        }
        Err(rejection) => {
            metrics::counter!("router_errors_total", "code" => rejection.code.as_str())
                .increment(1);
            coded_response(
                rejection.status,
                content_type,
                rejection.code.as_str(),
                &rejection.message,
            )
        }
    }
}

/// The request's steps; returns the response body and whether it carries errors.
async fn handle(
    state: &RouterState,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    verified: Option<Verified>,
    body: &Bytes,
) -> (&'static str, Result<(Vec<u8>, bool), Rejection>) {
    let request = match read_request(method, uri, headers, body) {
        Ok(request) => request,
        Err(rejection) => return ("unknown", Err(rejection)),
    };
    let identity = match verified {
        Some(Verified(verified)) => match verified.as_ref() {
            Ok(identity) => Ok(identity.clone()),
            Err(err) => Err(err.to_string()),
        },
        None => state
            .auth
            .identify(headers.get(header::AUTHORIZATION))
            .map_err(|err| err.to_string()),
    };
    let identity = match identity {
        Ok(identity) => identity,
        Err(err) => {
            return (
                "unknown",
                Err(Rejection::new(
                    StatusCode::UNAUTHORIZED,
                    ErrorCode::Unauthenticated,
                    err,
                )),
            );
        }
    };
    let operation = match prepare_operation(state, &request).await {
        Ok(operation) => operation,
        Err((label, rejection)) => return (label, Err(rejection)),
    };
    let label = operation.label();
    match operation.prepared.kind {
        OperationKind::Mutation if method == Method::GET => {
            return (
                label,
                Err(Rejection::new(
                    StatusCode::METHOD_NOT_ALLOWED,
                    ErrorCode::MethodNotAllowed,
                    ONLY_QUERIES_OVER_GET,
                )),
            );
        }
        OperationKind::Subscription => {
            return (
                label,
                Err(Rejection::bad_request(
                    "subscriptions need a streaming transport: a graphql-transport-ws websocket or SSE (Accept: text/event-stream)",
                )),
            );
        }
        _ => {}
    }
    let Operation {
        supergraph,
        prepared,
        variables,
        query,
    } = operation;
    let executed = if state.query_dedupe && prepared.kind == OperationKind::Query {
        // Identical queries from the same caller in flight at once share
        // one execution (queries only: a mutation always runs).
        let name = request.operation_name.as_deref().unwrap_or_default();
        let key = inflight::key(&[&query, name], &identity, &variables);
        let (shared, joined) = state.operations.run(
            key,
            execute(supergraph, Arc::clone(&prepared), variables, identity),
        );
        if joined {
            metrics::counter!("router_query_dedupe_hits_total").increment(1);
        }
        match shared.await {
            Some(executed) => executed,
            None => {
                return (
                    label,
                    Err(Rejection::new(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        ErrorCode::Internal,
                        "the operation failed; see the router's logs",
                    )),
                );
            }
        }
    } else {
        execute(supergraph, Arc::clone(&prepared), variables, identity).await
    };
    for code in &executed.error_codes {
        metrics::counter!("router_errors_total", "code" => code.clone()).increment(1);
    }
    (
        label,
        Ok((executed.body.clone(), !executed.error_codes.is_empty())),
    )
}

/// A request ready to execute: parsed, validated, planned, with its
/// variables coerced.
pub(crate) struct Operation {
    pub(crate) supergraph: Arc<Supergraph>,
    pub(crate) prepared: Arc<PreparedOperation>,
    pub(crate) variables: Map<String, Value>,
    /// The document's text (sent, or found by its persisted query hash).
    pub(crate) query: Arc<str>,
}

impl Operation {
    /// The operation type, for metrics.
    pub(crate) fn label(&self) -> &'static str {
        match self.prepared.kind {
            OperationKind::Query => "query",
            OperationKind::Mutation => "mutation",
            OperationKind::Subscription => "subscription",
        }
    }
}

/// Steps 4 and 6 for every transport: find a persisted query's text,
/// prepare the document (cached) and coerce the variables; refuses with
/// the operation type's label.
pub(crate) async fn prepare_operation(
    state: &RouterState,
    request: &GraphqlRequest,
) -> Result<Operation, (&'static str, Rejection)> {
    let persisted = state
        .persisted
        .resolve(request.query.as_deref(), request.extensions.as_ref())
        .await
        .map_err(|err| {
            (
                "unknown",
                Rejection::new(err.status(), err.code(), err.to_string()),
            )
        })?;
    let query: Arc<str> = match (persisted, request.query.as_deref()) {
        (Some(text), _) => text,
        (None, Some(text)) if !text.trim().is_empty() => Arc::from(text),
        _ => {
            return Err((
                "unknown",
                Rejection::bad_request("the request has no `query`"),
            ));
        }
    };
    let supergraph = state.supergraph.current();
    let prepared = supergraph
        .planner
        .prepare(&query, request.operation_name.as_deref())
        .map_err(|err| ("unknown", plan_rejection(err)))?;
    let mut operation = Operation {
        supergraph,
        prepared,
        variables: Map::new(),
        query,
    };
    let label = operation.label();
    if operation.prepared.introspection.is_some() && !state.introspection {
        return Err((
            label,
            Rejection::new(
                StatusCode::BAD_REQUEST,
                ErrorCode::GraphqlValidationFailed,
                "introspection is disabled on this router",
            ),
        ));
    }
    let empty = Map::new();
    let provided = request.variables.as_ref().unwrap_or(&empty);
    operation.variables = variables::coerce(
        operation.prepared.operation.variable_definitions.as_deref(),
        provided,
    )
    .map_err(|problems| {
        (
            label,
            Rejection::new(
                StatusCode::BAD_REQUEST,
                ErrorCode::BadUserInput,
                problems.join("; "),
            ),
        )
    })?;
    Ok(operation)
}

/// An executed operation: the response body and its errors' codes.
pub struct Executed {
    pub(crate) body: Vec<u8>,
    error_codes: Vec<String>,
}

/// Answers introspection and runs the plan. Owns everything it uses, so
/// it can run as shared work ([`InFlight`]).
pub(crate) async fn execute(
    supergraph: Arc<Supergraph>,
    prepared: Arc<PreparedOperation>,
    variables: Map<String, Value>,
    identity: Identity,
) -> Arc<Executed> {
    let extra_root_fields = prepared
        .introspection
        .as_ref()
        .map(|document| {
            supergraph
                .introspection
                .resolve(document, prepared.name.as_deref(), &variables)
        })
        .unwrap_or_default();
    let result = supergraph
        .executor
        .execute(
            &supergraph.schema,
            ExecutionRequest {
                plan: &prepared.plan,
                operation: &prepared.operation,
                root_type: &prepared.root_type,
                variables: &variables,
                identity: &identity,
                extra_root_fields,
            },
        )
        .await;
    let error_codes = result.errors.iter().map(|e| e.code().to_owned()).collect();
    Arc::new(Executed {
        body: result.into_body(),
        error_codes,
    })
}

/// Step 2: the request as GraphQL over HTTP reads it ([`graphql_http`]).
pub(crate) fn read_request(
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &Bytes,
) -> Result<GraphqlRequest, Rejection> {
    graphql_http::read_request(method, uri, headers, body).map_err(|err| Rejection {
        status: err.status(),
        code: err.code(),
        message: err.to_string(),
    })
}

/// The body limit layer answers 413 in plain text; GraphQL clients get a
/// coded error naming the limit instead, still saying `connection: close`
/// (the unread body is not drained).
pub fn coded_body_limit<B>(response: axum::http::Response<B>) -> Response
where
    B: axum::body::HttpBody<Data = Bytes> + Send + 'static,
    B::Error: Into<axum::BoxError>,
{
    if response.status() != StatusCode::PAYLOAD_TOO_LARGE {
        return response.map(axum::body::Body::new);
    }
    shopgraph_core::server::close_after_too_large(coded_response(
        StatusCode::PAYLOAD_TOO_LARGE,
        "application/json",
        ErrorCode::MaxBodySizeLimit.as_str(),
        "the request body is larger than the router accepts (HTTP_MAX_BODY_BYTES)",
    ))
}

fn plan_rejection(err: PlanError) -> Rejection {
    match err {
        PlanError::Parse(message) => Rejection::new(
            StatusCode::BAD_REQUEST,
            ErrorCode::GraphqlParseFailed,
            message,
        ),
        PlanError::Limit(limit) => {
            Rejection::new(StatusCode::BAD_REQUEST, limit.code(), limit.to_string())
        }
        PlanError::Invalid(messages) => Rejection::new(
            StatusCode::BAD_REQUEST,
            ErrorCode::GraphqlValidationFailed,
            messages.join("; "),
        ),
        PlanError::Plan(message) => {
            tracing::error!(%message, "a valid operation could not be planned");
            Rejection::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                ErrorCode::Internal,
                "the router could not plan this operation",
            )
        }
    }
}

//! Stage 3, the GraphQL pipeline: one plain HTTP GraphQL request read top
//! to bottom, after the edge ([`crate::edge`]) let it through and the
//! transport choice ([`crate::subscriptions::graphql`]) found it is neither
//! a websocket nor an event stream.
//!
//! 1. GraphiQL for browsers (`GET` with `Accept: text/html`);
//! 2. read the request: POST JSON body or GET query string (`BAD_REQUEST`);
//! 3. the caller, as the edge verified it ([`Verified`]; 401 `UNAUTHENTICATED`);
//! 4. persisted queries: find the text of a hash or id ([`persisted`]);
//! 5. prepare: parse, limits, validate, set introspection aside, plan —
//!    cached ([`crate::planner`]); then authorize: fields the schema guards
//!    with `@authenticated` / `@requiresScopes` that the caller may not have
//!    are taken out of the plan and answered `null` with
//!    `UNAUTHORIZED_FIELD_OR_TYPE` ([`crate::planner::authorization`]);
//! 6. check the operation against the transport: no mutation over GET
//!    (405), subscriptions need a streaming transport;
//! 7. coerce variables ([`variables`], `BAD_USER_INPUT`);
//! 8. answer introspection and execute the plan ([`crate::executor`]) — or
//!    join an identical query from the same caller already executing
//!    ([`crate::inflight`]);
//! 9. respond (`application/graphql-response+json` when the client accepts
//!    it, else `application/json`); errors forwarded from subgraphs get the
//!    `locations` of the client's field they belong to; every refusal is a
//!    [`RouterError`] ([`error`]), validation errors with their `locations`.
//!
//! Steps 2 to 7 are shared with the streaming transports through
//! [`admit`] (the websocket, which reads no HTTP request per operation,
//! through [`prepare_operation`]); step 8 for one response through
//! [`answer`].

pub mod clients;
pub mod error;
pub mod persisted;
pub mod variables;

use std::sync::Arc;
use std::time::Instant;

use axum::body::Bytes;
use axum::http::{HeaderMap, HeaderValue, Method, Uri, header};
use axum::response::Response;
use hive_router_query_planner::state::supergraph_state::OperationKind;
use serde_json::{Map, Value};
use shopgraph_core::graphql_http::{self, GraphqlRequest, prefers_html, response_content_type};
use shopgraph_core::identity::JwtVerifier;
use shopgraph_core::identity::{AuthError, Identity};

use crate::executor::ExecutionRequest;
use crate::executor::error::GraphqlError;
use crate::inflight::{self, InFlight};
use crate::planner::PreparedOperation;
use crate::planner::authorization::Access;
use crate::supergraph::{Supergraph, SupergraphHandle};
use clients::ClientNames;
pub use error::RouterError;
use persisted::PersistedQueries;

/// What every request needs, shared by all of them.
#[derive(Clone)]
pub struct RouterState {
    /// The current supergraph (hot-reloadable).
    pub supergraph: SupergraphHandle,
    /// Bearer-token verification, for requests the edge did not identify.
    pub auth: Arc<JwtVerifier>,
    /// Whether `__schema` / `__type` are answered.
    pub introspection: bool,
    /// Whether browsers get GraphiQL.
    pub graphiql: bool,
    /// Whether identical queries in flight share one execution.
    pub query_dedupe: bool,
    /// The executions in flight, for `query_dedupe`.
    pub operations: Arc<InFlight<Arc<Executed>>>,
    /// Automatic persisted queries and the safelist.
    pub persisted: Arc<PersistedQueries>,
    /// Client names with a metric label of their own.
    pub clients: Arc<ClientNames>,
}

/// The caller of a request, verified once by the edge
/// ([`crate::edge::identify_caller`]) before the rate limit, which keys on
/// it, and read again by the pipeline. It lives here, in the lower stage,
/// so the edge depends on the pipeline and never the other way round.
#[derive(Clone)]
pub struct Verified(pub Arc<Result<Identity, AuthError>>);

/// How many headers a `/graphql` answer is given room for: its content
/// type plus the edge's (three security headers, three CORS headers, four
/// `RateLimit-*`), with one to spare.
const RESPONSE_HEADERS: usize = 12;

/// Answers one plain HTTP GraphQL request (`GET` or `POST /graphql`);
/// `verified` is the caller as the edge identified it, if it did.
pub async fn graphql(
    state: &RouterState,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    verified: Option<Verified>,
    body: &Bytes,
) -> Response {
    if method == Method::GET && state.graphiql && prefers_html(headers) {
        // Subscriptions go over the websocket on this same path.
        return shopgraph_core::graphiql::page("Shopgraph", "/graphql");
    }
    let started = Instant::now();
    let content_type = response_content_type(headers);
    let admitted = admit(state, method, uri, headers, verified, body).await;
    match answer(state, method, headers, admitted, started).await {
        Ok(body) => json_response(body, content_type),
        Err(err) => refusal(err, content_type),
    }
}

/// A `200` carrying one GraphQL response body in `content_type`.
pub fn json_response(body: Bytes, content_type: &'static str) -> Response {
    let mut response = Response::new(axum::body::Body::from(body));
    let headers = response.headers_mut();
    // Room for what the edge adds on the way out (security, CORS and
    // rate-limit headers): one allocation, not a regrowth as they arrive.
    headers.reserve(RESPONSE_HEADERS);
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

/// A refusal as a coded GraphQL error response in `content_type`, counted
/// in `router_errors_total` and logged when it is the router's fault.
pub fn refusal(err: RouterError, content_type: &'static str) -> Response {
    metrics::counter!("router_errors_total", "code" => err.code().as_str()).increment(1);
    err.log();
    err.into_response(content_type)
}

/// A request read, its caller identified and its operation prepared
/// (steps 2 to 7): what every transport of an HTTP request starts from.
pub struct Admitted {
    /// The request as sent.
    pub request: GraphqlRequest,
    /// The verified caller.
    pub identity: Identity,
    /// The prepared operation.
    pub operation: Operation,
}

/// Steps 2 to 7 for an HTTP request, whatever answers it (one JSON body,
/// an event stream, multipart parts); a refusal comes with the operation
/// type's label, for metrics.
pub async fn admit(
    state: &RouterState,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    verified: Option<Verified>,
    body: &Bytes,
) -> Result<Admitted, (&'static str, RouterError)> {
    let request = read_request(method, uri, headers, body).map_err(|err| ("unknown", err))?;
    let identity = caller(state, headers, verified).map_err(|err| ("unknown", err))?;
    let operation = prepare_operation(state, &request, &identity).await?;
    Ok(Admitted {
        request,
        identity,
        operation,
    })
}

/// Step 3: the caller as the edge verified it, else from the
/// `Authorization` header (a router without the edge, as in tests); a
/// token that does not verify is refused (401), no token is anonymous.
pub fn caller(
    state: &RouterState,
    headers: &HeaderMap,
    verified: Option<Verified>,
) -> Result<Identity, RouterError> {
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
    identity.map_err(RouterError::InvalidToken)
}

/// Steps 6 and 8 for a request answered with one response body: checks
/// the operation against the transport, executes it and records the
/// request's metrics (by operation type, outcome and client name, from
/// `headers`); `Err` is the refusal to render ([`refusal`]).
pub async fn answer(
    state: &RouterState,
    method: &Method,
    headers: &HeaderMap,
    admitted: Result<Admitted, (&'static str, RouterError)>,
    started: Instant,
) -> Result<Bytes, RouterError> {
    let (label, result) = match admitted {
        Ok(admitted) => execute_once(state, method, admitted).await,
        Err((label, err)) => (label, Err(err)),
    };
    let outcome = match &result {
        Ok((_, false)) => "ok",
        Ok((_, true)) => "error",
        Err(_) => "rejected",
    };
    let client = state.clients.label(headers);
    metrics::counter!("router_requests_total", "operation_type" => label, "outcome" => outcome, "client_name" => client)
        .increment(1);
    metrics::histogram!("router_request_duration_seconds", "operation_type" => label)
        .record(started.elapsed().as_secs_f64());
    result.map(|(body, _)| body)
}

/// Steps 6 and 8; returns the response body and whether it carries errors.
async fn execute_once(
    state: &RouterState,
    method: &Method,
    admitted: Admitted,
) -> (&'static str, Result<(Bytes, bool), RouterError>) {
    let Admitted {
        request,
        identity,
        operation,
    } = admitted;
    let label = operation.label();
    match operation.prepared.kind {
        OperationKind::Mutation if method == Method::GET => {
            return (label, Err(RouterError::MutationOverGet));
        }
        OperationKind::Subscription => return (label, Err(RouterError::SubscriptionOverHttp)),
        _ => {}
    }
    let Operation {
        supergraph,
        prepared,
        access,
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
            execute(
                supergraph,
                Arc::clone(&prepared),
                access,
                variables,
                identity,
            ),
        );
        if joined {
            metrics::counter!("router_query_dedupe_hits_total").increment(1);
        }
        match shared.await {
            Some(executed) => executed,
            None => return (label, Err(RouterError::SharedExecutionFailed)),
        }
    } else {
        execute(
            supergraph,
            Arc::clone(&prepared),
            access,
            variables,
            identity,
        )
        .await
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
pub struct Operation {
    /// The supergraph the operation was planned against (kept through a reload).
    pub supergraph: Arc<Supergraph>,
    /// The cached plan and normalized operation.
    pub prepared: Arc<PreparedOperation>,
    /// What the caller may run of it (the whole plan, or one without the
    /// fields the schema denies it).
    pub access: Access,
    /// The coerced variables.
    pub variables: Map<String, Value>,
    /// The document's text (sent, or found by its persisted query hash).
    pub query: Arc<str>,
}

impl Operation {
    /// The operation type, for metrics.
    pub fn label(&self) -> &'static str {
        match self.prepared.kind {
            OperationKind::Query => "query",
            OperationKind::Mutation => "mutation",
            OperationKind::Subscription => "subscription",
        }
    }
}

/// Steps 4, 5 and 7 for every transport: find a persisted query's text,
/// prepare the document (cached), authorize it for `identity` and coerce
/// the variables; a refusal comes with the operation type's label, for
/// metrics. A subscription whose root field `identity` may not have is
/// refused here (`UNAUTHORIZED_FIELD_OR_TYPE`), before any subgraph is
/// asked.
pub async fn prepare_operation(
    state: &RouterState,
    request: &GraphqlRequest,
    identity: &Identity,
) -> Result<Operation, (&'static str, RouterError)> {
    let persisted = state
        .persisted
        .resolve(request.query.as_deref(), request.extensions.as_ref())
        .await
        .map_err(|err| ("unknown", RouterError::from(err)))?;
    let query: Arc<str> = match (persisted, request.query.as_deref()) {
        (Some(text), _) => text,
        (None, Some(text)) if !text.trim().is_empty() => Arc::from(text),
        _ => return Err(("unknown", RouterError::NoQuery)),
    };
    let supergraph = state.supergraph.current();
    let prepared = supergraph
        .planner
        .prepare_off_workers(Arc::clone(&query), request.operation_name.as_deref())
        .await
        .map_err(|err| ("unknown", RouterError::from(err)))?;
    let access = supergraph
        .planner
        .authorize(&prepared, identity)
        .await
        .map_err(|err| ("unknown", RouterError::from(err)))?;
    let mut operation = Operation {
        supergraph,
        prepared,
        access,
        variables: Map::new(),
        query,
    };
    let label = operation.label();
    if operation.prepared.kind == OperationKind::Subscription
        && let Some(field) = operation.access.denied().and_then(|d| d.root_field())
    {
        return Err((
            label,
            RouterError::UnauthorizedSubscription {
                field: field.to_owned(),
                anonymous: matches!(identity, Identity::Anonymous),
            },
        ));
    }
    if operation.prepared.introspection.is_some() && !state.introspection {
        return Err((label, RouterError::IntrospectionDisabled));
    }
    let empty = Map::new();
    let provided = request.variables.as_ref().unwrap_or(&empty);
    operation.variables = variables::coerce(
        operation.prepared.operation.variable_definitions.as_deref(),
        provided,
    )
    .map_err(|problems| (label, RouterError::Variables(problems)))?;
    Ok(operation)
}

/// An executed operation: the response body and its errors' codes.
pub struct Executed {
    /// The serialized response: shared, not copied, by every request that
    /// joined the execution.
    pub body: Bytes,
    error_codes: Vec<String>,
}

/// Step 8: answers introspection and runs the plan. Owns everything it
/// uses, so it can run as shared work ([`InFlight`]).
pub async fn execute(
    supergraph: Arc<Supergraph>,
    prepared: Arc<PreparedOperation>,
    access: Access,
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
                plan: access.plan(&prepared.plan),
                operation: &prepared.operation,
                root_type: &prepared.root_type,
                variables: &variables,
                identity: &identity,
                extra_root_fields,
                denied: access.denied(),
            },
        )
        .await;
    let mut result = result;
    GraphqlError::locate(&mut result.errors, |path| prepared.locate(path));
    let error_codes = result.errors.iter().map(|e| e.code().to_owned()).collect();
    Arc::new(Executed {
        body: Bytes::from(result.into_body()),
        error_codes,
    })
}

/// Step 2: the request as GraphQL over HTTP reads it ([`graphql_http`]).
pub fn read_request(
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &Bytes,
) -> Result<GraphqlRequest, RouterError> {
    Ok(graphql_http::read_request(method, uri, headers, body)?)
}

//! GraphQL over HTTP for a subgraph: `POST /graphql`, `GET /graphql` for
//! queries, and GraphiQL for browsers.
//!
//! The handler follows the GraphQL-over-HTTP spec: a request that cannot be
//! parsed or validated gets HTTP 400 with `errors` and no `data`; a mutation
//! sent with GET gets 405; `application/graphql-response+json` is used when
//! the client accepts it. Every error leaves with an `extensions.code`, and
//! every request is counted in `/metrics` by operation type.
//!
//! Subscriptions are served at `/graphql/ws` over websockets
//! (`graphql-transport-ws`, as async-graphql implements it). Their only
//! client is the router, which forwards the verified caller in the upgrade
//! request's identity headers; the connection ends after
//! [`SUBSCRIPTION_IDLE_TIMEOUT`] without a message from the router.

use std::time::Instant;

use async_graphql::http::GraphiQLSource;
use async_graphql::parser::types::{DocumentOperations, OperationType};
use async_graphql::{ObjectType, Schema, SchemaBuilder, ServerError, SubscriptionType};
use async_graphql_axum::{
    GraphQLProtocol, GraphQLRequest, GraphQLWebSocket, rejection::GraphQLRejection,
};
use axum::extract::State;
use axum::extract::WebSocketUpgrade;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Router};
use serde_json::json;

use crate::error::ErrorCode;
use crate::identity::Identity;
use crate::metrics;
use crate::settings::GraphqlSettings;
use crate::upstream::Credentials;

const GRAPHQL_RESPONSE_JSON: &str = "application/graphql-response+json";

/// Builds the `/graphql` route for `schema`, served as `service`.
pub fn routes<Q, M, S>(service: &'static str, schema: Schema<Q, M, S>) -> Router
where
    Q: ObjectType + 'static,
    M: ObjectType + 'static,
    S: SubscriptionType + 'static,
{
    let endpoint = Endpoint { service, schema };
    Router::new()
        .route("/graphql", get(handle::<Q, M, S>).post(handle::<Q, M, S>))
        .route("/graphql/ws", get(subscribe::<Q, M, S>))
        .with_state(endpoint)
}

/// How long a subgraph websocket may stay silent (the router pings well
/// within it) before it is closed.
pub const SUBSCRIPTION_IDLE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

async fn subscribe<Q, M, S>(
    State(endpoint): State<Endpoint<Q, M, S>>,
    protocol: GraphQLProtocol,
    upgrade: WebSocketUpgrade,
    identity: Option<Extension<Identity>>,
    credentials: Option<Extension<Credentials>>,
) -> Response
where
    Q: ObjectType + 'static,
    M: ObjectType + 'static,
    S: SubscriptionType + 'static,
{
    let mut data = async_graphql::Data::default();
    data.insert(identity.map(|Extension(i)| i).unwrap_or_default());
    data.insert(credentials.map(|Extension(c)| c).unwrap_or_default());
    let schema = endpoint.schema.clone();
    upgrade
        .protocols(async_graphql::http::ALL_WEBSOCKET_PROTOCOLS)
        // One connection per router caller, mostly idle: small buffers.
        .read_buffer_size(16 * 1024)
        .write_buffer_size(4 * 1024)
        .on_upgrade(move |stream| {
            GraphQLWebSocket::new(stream, schema, protocol)
                .with_data(data)
                .keepalive_timeout(SUBSCRIPTION_IDLE_TIMEOUT)
                .serve()
        })
}

struct Endpoint<Q, M, S> {
    service: &'static str,
    schema: Schema<Q, M, S>,
}

impl<Q, M, S> Clone for Endpoint<Q, M, S> {
    fn clone(&self) -> Self {
        Self {
            service: self.service,
            schema: self.schema.clone(),
        }
    }
}

async fn handle<Q, M, S>(
    State(endpoint): State<Endpoint<Q, M, S>>,
    method: Method,
    headers: HeaderMap,
    identity: Option<Extension<Identity>>,
    credentials: Option<Extension<Credentials>>,
    request: Result<GraphQLRequest, GraphQLRejection>,
) -> Response
where
    Q: ObjectType + 'static,
    M: ObjectType + 'static,
    S: SubscriptionType + 'static,
{
    let started = Instant::now();
    let service = endpoint.service;
    if method == Method::GET && prefers_html(&headers) {
        return Html(GraphiQLSource::build().endpoint("/graphql").finish()).into_response();
    }
    let content_type = response_content_type(&headers);

    let mut request = match request {
        Ok(request) => request.into_inner(),
        Err(rejection) => {
            metrics::record_graphql_error(service, ErrorCode::BadRequest.as_str());
            return coded_response(
                StatusCode::BAD_REQUEST,
                content_type,
                ErrorCode::BadRequest.as_str(),
                &format!("malformed GraphQL request: {}", rejection.0),
            );
        }
    };

    let operation_name = request.operation_name.clone();
    let operation_type = match request.parsed_query() {
        Err(err) => {
            metrics::record_graphql_error(service, ErrorCode::GraphqlParseFailed.as_str());
            return coded_response(
                StatusCode::BAD_REQUEST,
                content_type,
                ErrorCode::GraphqlParseFailed.as_str(),
                &err.message,
            );
        }
        Ok(document) => selected_operation_type(&document.operations, operation_name.as_deref()),
    };
    if method == Method::GET
        && matches!(
            operation_type,
            Some(OperationType::Mutation | OperationType::Subscription)
        )
    {
        metrics::record_graphql_error(service, ErrorCode::MethodNotAllowed.as_str());
        let mut response = coded_response(
            StatusCode::METHOD_NOT_ALLOWED,
            content_type,
            ErrorCode::MethodNotAllowed.as_str(),
            "only queries may be sent with GET; use POST for mutations",
        );
        response
            .headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("POST"));
        return response;
    }

    let identity = identity
        .map(|Extension(identity)| identity)
        .unwrap_or_default();
    let credentials = credentials.map(|Extension(c)| c).unwrap_or_default();
    request = request.data(identity).data(credentials);
    let mut response = endpoint.schema.execute(request).await;

    let request_error = response.data == async_graphql::Value::Null
        && !response.errors.is_empty()
        && response.errors.iter().all(|e| e.path.is_empty());
    for error in &mut response.errors {
        let code = ensure_code(error, request_error);
        metrics::record_graphql_error(service, &code);
    }
    metrics::record_graphql_request(service, operation_label(operation_type), started.elapsed());

    let status = if request_error {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    };
    let body = match serde_json::to_vec(&response) {
        Ok(body) => body,
        Err(err) => {
            tracing::error!(%err, "cannot serialise a GraphQL response");
            return coded_response(
                StatusCode::INTERNAL_SERVER_ERROR,
                content_type,
                ErrorCode::Internal.as_str(),
                "internal server error",
            );
        }
    };
    (status, [(header::CONTENT_TYPE, content_type)], body).into_response()
}

/// Gives an error without `extensions.code` the code its phase implies, and
/// returns the code.
fn ensure_code(error: &mut ServerError, request_error: bool) -> String {
    if let Some(async_graphql::Value::String(code)) =
        error.extensions.as_ref().and_then(|ext| ext.get("code"))
    {
        return code.clone();
    }
    let code = if error.message.starts_with("Invalid value for argument")
        || error.message.starts_with("Failed to parse")
        || error.message.starts_with("Invalid value for variable")
        || !request_error
    {
        ErrorCode::BadUserInput
    } else {
        ErrorCode::GraphqlValidationFailed
    };
    error
        .extensions
        .get_or_insert_with(Default::default)
        .set("code", code.as_str());
    code.as_str().to_owned()
}

fn selected_operation_type(
    operations: &DocumentOperations,
    name: Option<&str>,
) -> Option<OperationType> {
    match (operations, name) {
        (DocumentOperations::Single(op), _) => Some(op.node.ty),
        (DocumentOperations::Multiple(ops), Some(name)) => ops.get(name).map(|op| op.node.ty),
        (DocumentOperations::Multiple(_), None) => None,
    }
}

fn operation_label(ty: Option<OperationType>) -> &'static str {
    match ty {
        Some(OperationType::Query) => "query",
        Some(OperationType::Mutation) => "mutation",
        Some(OperationType::Subscription) => "subscription",
        None => "unknown",
    }
}

/// Whether a browser asked for a page (GraphiQL) rather than JSON.
pub fn prefers_html(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|accept| accept.contains("text/html"))
}

/// `application/graphql-response+json` when the client accepts it, else
/// `application/json` (GraphQL over HTTP).
pub fn response_content_type(headers: &HeaderMap) -> &'static str {
    let accepts_graphql_response = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|accept| accept.contains(GRAPHQL_RESPONSE_JSON));
    if accepts_graphql_response {
        GRAPHQL_RESPONSE_JSON
    } else {
        "application/json"
    }
}

/// A GraphQL-shaped error body: `{"errors":[{"message", "extensions":{"code"}}]}`.
pub fn error_body(code: ErrorCode, message: &str) -> axum::Json<serde_json::Value> {
    axum::Json(error_json(code.as_str(), message))
}

fn error_json(code: &str, message: &str) -> serde_json::Value {
    json!({ "errors": [{ "message": message, "extensions": { "code": code } }] })
}

/// A response carrying one coded GraphQL error and no data.
pub fn coded_response(
    status: StatusCode,
    content_type: &'static str,
    code: &str,
    message: &str,
) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, content_type)],
        error_json(code, message).to_string(),
    )
        .into_response()
}

/// A subgraph's schema builder with Federation v2 on and the shared limits
/// (depth, complexity, introspection switch) applied.
pub fn federated<Q, M, S>(
    builder: SchemaBuilder<Q, M, S>,
    limits: &GraphqlSettings,
) -> SchemaBuilder<Q, M, S>
where
    Q: ObjectType + 'static,
    M: ObjectType + 'static,
    S: SubscriptionType + 'static,
{
    let builder = builder
        .enable_federation()
        .enable_subscription_in_federation()
        .limit_depth(limits.max_depth)
        .limit_complexity(limits.max_complexity);
    if limits.introspection {
        builder
    } else {
        builder.disable_introspection()
    }
}

/// The federation SDL of a subgraph schema (what `shopgraph sdl` prints and
/// composition reads).
pub fn federation_sdl<Q, M, S>(builder: SchemaBuilder<Q, M, S>) -> String
where
    Q: ObjectType + 'static,
    M: ObjectType + 'static,
    S: SubscriptionType + 'static,
{
    builder
        .enable_federation()
        .enable_subscription_in_federation()
        .finish()
        .sdl_with_options(async_graphql::SDLExportOptions::new().federation())
}

/// Declares a GraphQL enum mirroring a domain enum variant for variant,
/// with `From` both ways, so domain types stay free of GraphQL derives.
#[macro_export]
macro_rules! mirror_enum {
    ($(#[$meta:meta])* $name:ident <=> $domain:path { $($(#[$vmeta:meta])* $variant:ident),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(async_graphql::Enum, Clone, Copy, PartialEq, Eq)]
        pub enum $name {
            $($(#[$vmeta])* $variant),+
        }

        impl From<$domain> for $name {
            fn from(value: $domain) -> Self {
                use $domain as Domain;
                match value {
                    $(Domain::$variant => Self::$variant),+
                }
            }
        }

        impl From<$name> for $domain {
            fn from(value: $name) -> Self {
                use $domain as Domain;
                match value {
                    $($name::$variant => Domain::$variant),+
                }
            }
        }
    };
}

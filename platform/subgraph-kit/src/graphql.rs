//! GraphQL over HTTP for a subgraph: `POST /graphql`, `GET /graphql` for
//! queries, and GraphiQL for browsers.
//!
//! The handler follows the GraphQL-over-HTTP spec: a request that cannot be
//! parsed or validated gets HTTP 400 with `errors` and no `data`; a mutation
//! sent with GET gets 405; `application/graphql-response+json` is used when
//! the client accepts it. Every error leaves with an `extensions.code`, and
//! every request is counted in `/metrics` by operation type. Text inputs
//! holding control characters are refused before execution
//! ([`crate::text_input`]).
//!
//! Subscriptions are served at `/graphql/ws` over websockets
//! (`graphql-transport-ws`, as async-graphql implements it). Their only
//! client is the router, which forwards the verified caller in the upgrade
//! request's identity headers; the connection ends after
//! [`SUBSCRIPTION_IDLE_TIMEOUT`] without a message from the router.

use std::time::Instant;

use async_graphql::parser::types::{DocumentOperations, OperationType};
use async_graphql::{ObjectType, Schema, SchemaBuilder, ServerError, SubscriptionType, Variables};
use async_graphql_axum::{GraphQLProtocol, GraphQLWebSocket};
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::WebSocketUpgrade;
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Router};
use shopgraph_core::error::ErrorCode;
use shopgraph_core::graphql_http::{
    self, GraphqlRequest, ONLY_QUERIES_OVER_GET, coded_response, prefers_html,
    response_content_type,
};
use shopgraph_core::identity::Identity;

use crate::metrics;
use crate::settings::GraphqlSettings;
use crate::text_input;
use crate::upstream::Credentials;

/// Builds the `/graphql` route for `schema`, served as `service`, with
/// GraphiQL for browsers if `settings` turn it on (`GRAPHIQL`).
pub fn routes<Q, M, S>(
    service: &'static str,
    schema: Schema<Q, M, S>,
    settings: &GraphqlSettings,
) -> Router
where
    Q: ObjectType + 'static,
    M: ObjectType + 'static,
    S: SubscriptionType + 'static,
{
    let endpoint = Endpoint {
        service,
        schema,
        graphiql: settings.graphiql,
    };
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
    /// Whether a browser's `GET` gets the GraphiQL page (`GRAPHIQL`);
    /// otherwise it is answered as any other GraphQL `GET`.
    graphiql: bool,
}

impl<Q, M, S> Clone for Endpoint<Q, M, S> {
    fn clone(&self) -> Self {
        Self {
            service: self.service,
            schema: self.schema.clone(),
            graphiql: self.graphiql,
        }
    }
}

async fn handle<Q, M, S>(
    State(endpoint): State<Endpoint<Q, M, S>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    identity: Option<Extension<Identity>>,
    credentials: Option<Extension<Credentials>>,
    body: Bytes,
) -> Response
where
    Q: ObjectType + 'static,
    M: ObjectType + 'static,
    S: SubscriptionType + 'static,
{
    let started = Instant::now();
    let service = endpoint.service;
    if endpoint.graphiql && method == Method::GET && prefers_html(&headers) {
        return graphql_http::graphiql(service);
    }
    let content_type = response_content_type(&headers);
    let refuse = |status: StatusCode, code: ErrorCode, message: &str| {
        metrics::record_graphql_error(service, code.as_str());
        coded_response(status, content_type, code.as_str(), message)
    };
    let mut request = match graphql_http::read_request(&method, &uri, &headers, &body) {
        Ok(GraphqlRequest {
            query: Some(query),
            operation_name,
            variables,
            extensions: _,
        }) if !query.trim().is_empty() => {
            let mut request = async_graphql::Request::new(query);
            if let Some(name) = operation_name {
                request = request.operation_name(name);
            }
            if let Some(variables) = variables {
                request = request.variables(Variables::from_json(variables.into()));
            }
            request
        }
        Ok(_) => {
            return refuse(
                StatusCode::BAD_REQUEST,
                ErrorCode::BadRequest,
                "the request has no `query`",
            );
        }
        Err(err) => return refuse(err.status(), err.code(), &err.to_string()),
    };

    let operation_name = request.operation_name.clone();
    let variables = std::mem::take(&mut request.variables);
    let (operation_type, text_check) = match request.parsed_query() {
        Err(err) => {
            return refuse(
                StatusCode::BAD_REQUEST,
                ErrorCode::GraphqlParseFailed,
                &err.message,
            );
        }
        Ok(document) => (
            selected_operation_type(&document.operations, operation_name.as_deref()),
            text_input::check_request(document, operation_name.as_deref(), &variables),
        ),
    };
    request.variables = variables;
    if method == Method::GET
        && matches!(
            operation_type,
            Some(OperationType::Mutation | OperationType::Subscription)
        )
    {
        return refuse(
            StatusCode::METHOD_NOT_ALLOWED,
            ErrorCode::MethodNotAllowed,
            ONLY_QUERIES_OVER_GET,
        );
    }

    if let Err(err) = text_check {
        return refuse(
            StatusCode::BAD_REQUEST,
            ErrorCode::BadUserInput,
            &err.to_string(),
        );
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

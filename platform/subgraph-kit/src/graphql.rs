//! GraphQL over HTTP for a subgraph: `POST /graphql`, `GET /graphql` for
//! queries, and GraphiQL for browsers (the page and its files under
//! `/graphiql/assets/`, [`shopgraph_core::graphiql`]), whose subscriptions
//! go to `/graphql/ws`.
//!
//! The handler follows the GraphQL-over-HTTP spec: a request that cannot be
//! parsed or validated gets HTTP 400 with `errors` and no `data`; a mutation
//! sent with GET gets 405; `application/graphql-response+json` is used when
//! the client accepts it. Every error leaves with an `extensions.code`, and
//! every request is counted in `/metrics` by operation type. Text inputs
//! holding control characters are refused before execution
//! ([`crate::text_input`]).
//!
//! Federation's `_service { sdl }` is answered only to signed hop callers
//! (the router, another subgraph), or to anyone where introspection is on
//! (`GRAPHQL_INTROSPECTION`, on in `dev`): in `serve` the schema is not
//! handed out by default.
//!
//! Subscriptions are served at `/graphql/ws` over websockets
//! (`graphql-transport-ws`, [`crate::subscriptions`]). Their real client
//! is the router, which carries many callers' subscriptions on one
//! connection, each `subscribe` signed for its caller; where direct tokens
//! are accepted (`dev`), an unsigned connection — GraphiQL in a browser —
//! may instead send its token in `connection_init` as it would to the
//! router. The connection ends after [`SUBSCRIPTION_IDLE_TIMEOUT`] without
//! a message from the router.

use std::sync::Arc;
use std::time::Instant;

use async_graphql::parser::types::{
    DocumentOperations, ExecutableDocument, OperationType, Selection,
};
use async_graphql::{ObjectType, Schema, SchemaBuilder, ServerError, SubscriptionType, Variables};
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

use crate::auth::{SignedHop, SubgraphAuth, UnsignedCaller};
use crate::metrics;
use crate::settings::GraphqlSettings;
use crate::subscriptions;
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
        sdl_to_unsigned: settings.introspection,
    };
    let graphiql = endpoint.graphiql;
    let routes = Router::new()
        .route("/graphql", get(handle::<Q, M, S>).post(handle::<Q, M, S>))
        .route(SUBSCRIPTIONS_PATH, get(subscribe::<Q, M, S>))
        .with_state(endpoint);
    if graphiql {
        // The page's script and styles; absent where GraphiQL is off.
        routes.merge(shopgraph_core::graphiql::routes())
    } else {
        routes
    }
}

/// Where a subgraph serves subscriptions (`graphql-transport-ws`).
pub const SUBSCRIPTIONS_PATH: &str = "/graphql/ws";

/// How long a subgraph websocket may stay silent (the router pings well
/// within it) before it is closed.
pub const SUBSCRIPTION_IDLE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

async fn subscribe<Q, M, S>(
    State(endpoint): State<Endpoint<Q, M, S>>,
    uri: Uri,
    upgrade: WebSocketUpgrade,
    identity: Option<Extension<Identity>>,
    credentials: Option<Extension<Credentials>>,
    auth: Option<Extension<Arc<SubgraphAuth>>>,
    unsigned: Option<Extension<UnsignedCaller>>,
) -> Response
where
    Q: ObjectType + 'static,
    M: ObjectType + 'static,
    S: SubscriptionType + 'static,
{
    let connection = subscriptions::Connection {
        identity: identity.map(|Extension(i)| i).unwrap_or_default(),
        credentials: credentials.map(|Extension(c)| c).unwrap_or_default(),
        auth: auth.map(|Extension(auth)| auth),
        // An unsigned, anonymous upgrade (a browser, in `dev`) may name
        // its caller in `connection_init`; the router's connections never do.
        init_names_caller: unsigned.is_some(),
        path: uri.path().to_owned(),
    };
    let timers = subscriptions::Timers {
        init: SUBSCRIPTION_INIT_TIMEOUT,
        idle: SUBSCRIPTION_IDLE_TIMEOUT,
    };
    let schema = endpoint.schema.clone();
    upgrade
        .protocols([subscriptions::PROTOCOL])
        // A router connection carries many subscriptions, most idle.
        .read_buffer_size(16 * 1024)
        .write_buffer_size(16 * 1024)
        .on_upgrade(move |socket| subscriptions::serve(socket, schema, connection, timers))
}

/// Time a new websocket has to send `connection_init`.
pub const SUBSCRIPTION_INIT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

struct Endpoint<Q, M, S> {
    service: &'static str,
    schema: Schema<Q, M, S>,
    /// Whether a browser's `GET` gets the GraphiQL page (`GRAPHIQL`);
    /// otherwise it is answered as any other GraphQL `GET`.
    graphiql: bool,
    /// Whether `_service` is answered to callers without a hop signature.
    sdl_to_unsigned: bool,
}

impl<Q, M, S> Clone for Endpoint<Q, M, S> {
    fn clone(&self) -> Self {
        Self {
            service: self.service,
            schema: self.schema.clone(),
            graphiql: self.graphiql,
            sdl_to_unsigned: self.sdl_to_unsigned,
        }
    }
}

async fn handle<Q, M, S>(
    State(endpoint): State<Endpoint<Q, M, S>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    credentials: Option<Extension<Credentials>>,
    signed: Option<Extension<SignedHop>>,
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
        return shopgraph_core::graphiql::page(service, SUBSCRIPTIONS_PATH);
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
        Ok(document) => {
            if signed.is_none()
                && !endpoint.sdl_to_unsigned
                && selects_service_sdl(document, operation_name.as_deref())
            {
                return refuse(
                    StatusCode::FORBIDDEN,
                    ErrorCode::Forbidden,
                    "`_service` is only answered to the router (signed requests)",
                );
            }
            (
                selected_operation_type(&document.operations, operation_name.as_deref()),
                text_input::check_request(document, operation_name.as_deref(), &variables),
            )
        }
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

    // The caller as the identify middleware found it (anonymous without).
    let credentials = credentials.map(|Extension(c)| c).unwrap_or_default();
    let identity = credentials.identity.clone();
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
pub(crate) fn ensure_code(error: &mut ServerError, request_error: bool) -> String {
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

/// Whether the selected operation asks for `_service` at its root,
/// directly or through (nested) fragments.
fn selects_service_sdl(document: &ExecutableDocument, name: Option<&str>) -> bool {
    let operation = match (&document.operations, name) {
        (DocumentOperations::Single(op), _) => op,
        (DocumentOperations::Multiple(ops), Some(name)) => match ops.get(name) {
            Some(op) => op,
            None => return false,
        },
        (DocumentOperations::Multiple(_), None) => return false,
    };
    let mut pending = vec![&operation.node.selection_set.node];
    let mut seen = std::collections::HashSet::new();
    while let Some(set) = pending.pop() {
        for selection in &set.items {
            match &selection.node {
                Selection::Field(field) if field.node.name.node == "_service" => return true,
                Selection::Field(_) => {}
                Selection::InlineFragment(fragment) => {
                    pending.push(&fragment.node.selection_set.node);
                }
                Selection::FragmentSpread(spread) => {
                    let name = &spread.node.fragment_name.node;
                    if seen.insert(name.clone())
                        && let Some(fragment) = document.fragments.get(name)
                    {
                        pending.push(&fragment.node.selection_set.node);
                    }
                }
            }
        }
    }
    false
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

/// Federation's `@authenticated`: the field may only be read (or run) by a
/// signed-in caller. The router enforces it before it fetches
/// (`router/src/planner/authorization.rs`): an anonymous caller gets the
/// field `null` with `UNAUTHORIZED_FIELD_OR_TYPE`, and the subgraph never
/// sees it. The resolver keeps its own `auth::viewer` check (defence in
/// depth: the directive only declares the rule for the router).
///
/// async-graphql has no built-in `@authenticated` (it has
/// `requires_scopes`), so this is a type directive, applied with
/// `#[graphql(directive = authenticated::apply())]`;
/// [`federation_sdl`] turns its local definition into an import from the
/// federation spec, so composition treats it as federation's directive.
#[async_graphql::TypeDirective(location = "FieldDefinition")]
pub fn authenticated() {}

/// The federation SDL of a subgraph schema (what `shopgraph sdl` prints and
/// composition reads), importing the cost directives it uses
/// ([`crate::cost::link_cost_directives`]).
///
/// async-graphql writes `@requiresScopes` (from `requires_scopes = "..."`)
/// and imports it from federation v2.5, but knows nothing of
/// `@authenticated`: applied through the [`authenticated`] type directive
/// it would come out as a custom directive with its own definition, which
/// composition drops. So the definition is removed and `@authenticated`
/// added to the `@link` import list (`import_authenticated`).
pub fn federation_sdl<Q, M, S>(builder: SchemaBuilder<Q, M, S>) -> String
where
    Q: ObjectType + 'static,
    M: ObjectType + 'static,
    S: SubscriptionType + 'static,
{
    let sdl = builder
        .enable_federation()
        .enable_subscription_in_federation()
        .finish()
        .sdl_with_options(async_graphql::SDLExportOptions::new().federation());
    crate::cost::link_cost_directives(&import_authenticated(&sdl))
}

/// The local definition async-graphql prints for [`authenticated`].
const AUTHENTICATED_DEFINITION: &str = "directive @authenticated on FIELD_DEFINITION";

/// Makes `@authenticated` in `sdl` federation's own: drops the local
/// definition and imports it from the federation spec beside
/// `@requiresScopes`. An SDL without that definition (no field uses it) is
/// returned as it is.
fn import_authenticated(sdl: &str) -> String {
    if !sdl
        .lines()
        .any(|line| line.trim() == AUTHENTICATED_DEFINITION)
    {
        return sdl.to_owned();
    }
    let mut out: Vec<String> = Vec::new();
    let mut skip_blank = false;
    for line in sdl.split_inclusive('\n') {
        if line.trim() == AUTHENTICATED_DEFINITION {
            // Drop its description (the doc comment, a `"""` block right
            // above it) and the blank line after it.
            if out.last().is_some_and(|l| l.trim() == "\"\"\"") {
                out.pop();
                while let Some(previous) = out.pop() {
                    if previous.trim() == "\"\"\"" {
                        break;
                    }
                }
            }
            skip_blank = true;
            continue;
        }
        if skip_blank && line.trim().is_empty() {
            skip_blank = false;
            continue;
        }
        skip_blank = false;
        if line.trim_start().starts_with("import: [") && line.contains("\"@requiresScopes\"") {
            out.push(line.replacen(
                "\"@requiresScopes\"",
                "\"@requiresScopes\", \"@authenticated\"",
                1,
            ));
        } else {
            out.push(line.to_owned());
        }
    }
    out.concat()
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

#[cfg(test)]
mod sdl_tests {
    use super::*;

    /// `@authenticated` leaves the SDL as federation's directive: imported
    /// beside `@requiresScopes`, with no local definition or description
    /// (which would make composition drop it as a custom directive).
    #[test]
    fn authenticated_is_imported_not_defined() {
        let sdl = "type Query {\n\tme: String @authenticated\n}\n\"\"\"\nWhy.\n\"\"\"\ndirective @authenticated on FIELD_DEFINITION\n\nextend schema @link(\n\turl: \"https://specs.apollo.dev/federation/v2.5\",\n\timport: [\"@key\", \"@requiresScopes\"]\n)\n";
        let fixed = import_authenticated(sdl);
        assert_eq!(
            fixed,
            "type Query {\n\tme: String @authenticated\n}\nextend schema @link(\n\turl: \"https://specs.apollo.dev/federation/v2.5\",\n\timport: [\"@key\", \"@requiresScopes\", \"@authenticated\"]\n)\n"
        );
        // Without the directive, nothing changes.
        let plain = "type Query { a: Int }\n";
        assert_eq!(import_authenticated(plain), plain);
    }
}

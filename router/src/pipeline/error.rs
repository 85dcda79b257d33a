//! The router's one edge error: every refusal a client can get from the
//! router itself, whatever the stage or transport that raised it.
//!
//! Each stage keeps its own `thiserror` enum ([`crate::planner::PlanError`],
//! [`crate::pipeline::persisted::PersistedError`], ...) and lifts it into
//! [`RouterError`] with `From`. One exhaustive match then gives the stable
//! `extensions.code` ([`RouterError::code`]), another the HTTP status
//! ([`RouterError::status`]), so no caller maps errors to statuses by hand.
//!
//! Renderings, one per surface:
//!
//! | surface | method | shape |
//! |---|---|---|
//! | `/graphql` (pipeline, SSE and multipart refusals, CSRF, rate limit, body limit) | [`RouterError::into_response`] | `{"errors":[{"message","locations"?,"extensions":{"code"}}]}` |
//! | the admin API | [`RouterError::admin_response`] | `{"error":{"code","message"}}` |
//! | websocket closes | [`RouterError::close_code`] + the message | close frame |
//!
//! Client errors show their own message. Internal ones
//! ([`RouterError::is_internal`]) show generic text; the cause chain goes to
//! the log through [`RouterError::log`].
//!
//! It lives in the pipeline, the stage most of its variants come from; the
//! edge, the streaming transports and the admin API sit above the pipeline
//! in the import graph and use it from here. It imports only the stages
//! below the pipeline (planner, executor, subgraph) for the errors it
//! wraps, so no cycle forms.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use shopgraph_core::error::{ErrorCode, error_chain};
use shopgraph_core::graphql_http::{
    ONLY_QUERIES_OVER_GET, RequestError, error_json, error_response,
};
use shopgraph_core::identity::AuthError;

pub use crate::executor::error::Location;

/// Why the router refused or ended a request. See the module docs for how
/// each surface renders it.
#[derive(Debug, thiserror::Error)]
pub enum RouterError {
    // ---- reading the request (pipeline, SSE, multipart) ----
    /// Not a GraphQL-over-HTTP request (bad JSON, content type, method...).
    #[error(transparent)]
    Request(#[from] RequestError),
    /// The bearer token is present but does not verify: the verifier's
    /// reason (the edge verified it once and shares the outcome, so only
    /// its text can be taken).
    #[error("{0}")]
    InvalidToken(String),
    /// The body (or query string) carries no query text nor persisted query.
    #[error("the request has no `query`")]
    NoQuery,
    /// A persisted query the router refuses (or asks the client to complete).
    #[error(transparent)]
    Persisted(#[from] crate::pipeline::persisted::PersistedError),

    // ---- preparing the operation ----
    /// Not GraphQL, over a limit, invalid, or not plannable.
    #[error(transparent)]
    Plan(#[from] crate::planner::PlanError),
    /// `__schema` / `__type` asked of a router with introspection off.
    #[error("introspection is disabled on this router")]
    IntrospectionDisabled,
    /// The variables do not match the operation's declarations; one
    /// problem per variable.
    #[error("{}", .0.join("; "))]
    Variables(Vec<String>),
    /// A mutation sent with `GET` (GraphQL over HTTP forbids it).
    #[error("{ONLY_QUERIES_OVER_GET}")]
    MutationOverGet,
    /// A subscription sent as a plain HTTP request.
    #[error(
        "subscriptions need a streaming transport: a graphql-transport-ws websocket, SSE (Accept: text/event-stream) or multipart HTTP (Accept: multipart/mixed;subscriptionSpec=\"1.0\")"
    )]
    SubscriptionOverHttp,
    /// A shared execution (`QUERY_DEDUPE`) ended without a result: the
    /// leader's task failed.
    #[error("the operation failed; see the router's logs")]
    SharedExecutionFailed,

    // ---- edge layers ----
    /// The body is over `HTTP_MAX_BODY_BYTES`.
    #[error("the request body is larger than the router accepts (HTTP_MAX_BODY_BYTES)")]
    BodyTooLarge,
    /// The caller's rate-limit budget is spent; the layer adds `Retry-After`
    /// and the `RateLimit-*` headers.
    #[error("rate limit exceeded: retry later (retryAfter: {retry_after} seconds)")]
    RateLimited {
        /// Whole seconds until a request can pass (at least 1).
        retry_after: u64,
    },
    /// A request a browser could send cross-site without a preflight;
    /// the text says what to send instead (it depends on the configured
    /// headers).
    #[error("{explanation}")]
    CsrfPrevention {
        /// What the client must change.
        explanation: String,
    },

    // ---- streaming transports (SSE, multipart, websocket operations) ----
    /// An anonymous caller asked for a subscription.
    #[error("sign in to subscribe")]
    SignInToSubscribe,
    /// The subscription's root field is guarded by `@authenticated` /
    /// `@requiresScopes` and the caller may not have it: the subscription
    /// is refused before any subgraph is asked.
    #[error("Unauthorized field or type: {field}")]
    UnauthorizedSubscription {
        /// `Subscription.field`.
        field: String,
        /// Whether the caller is anonymous (HTTP 401: signing in may help)
        /// rather than signed in without the scopes (403).
        anonymous: bool,
    },
    /// The plan of a subscription has no subscription node.
    #[error("the router could not plan this subscription")]
    SubscriptionUnplannable,
    /// Every replica of the subgraph a subscription starts on is down.
    #[error("the {service} subgraph has no available replica")]
    NoReplica {
        /// The subgraph.
        service: String,
    },
    /// The subgraph subscription could not be opened.
    #[error("the {service} subgraph is unavailable")]
    SubscribeFailed {
        /// The subgraph.
        service: String,
        /// Why, for the logs.
        #[source]
        source: crate::subgraph::FetchError,
    },
    /// A websocket already runs `SUBSCRIPTIONS_PER_CONNECTION` operations.
    #[error("at most {max} operations may run on one connection")]
    TooManyOperations {
        /// The limit.
        max: usize,
    },
    /// The client did not read a subscription's events fast enough.
    #[error(
        "the client did not keep up with this subscription's events; it was ended (resubscribe, with `after` where offered)"
    )]
    SubscriptionOverflow,

    // ---- websocket closes (graphql-transport-ws close codes) ----
    /// A binary frame: not part of the protocol (4400).
    #[error("binary messages are not part of the protocol")]
    WsBinaryMessage,
    /// A text frame that is not a protocol message (4400).
    #[error("Invalid message received: {0}")]
    WsInvalidMessage(#[source] serde_json::Error),
    /// `connection_init` without a usable token, from an anonymous caller (4401).
    #[error("Unauthorized: send a token in the connection_init payload")]
    WsAnonymous,
    /// `connection_init` with a token that does not verify (4401).
    #[error("Unauthorized: {0}")]
    WsInvalidToken(#[source] AuthError),
    /// `connection_init` with a token that cannot be a header value (4401).
    #[error("the token is not valid text")]
    WsTokenNotText,
    /// `subscribe` before `connection_ack` (4401).
    #[error("Unauthorized")]
    WsNotAcknowledged,
    /// No `connection_init` within `WS_CONNECTION_INIT_TIMEOUT` (4408).
    #[error("Connection initialisation timeout")]
    WsInitTimeout,
    /// Nothing heard for `SUBSCRIPTION_IDLE_TIMEOUT` (4408).
    #[error("Connection idle timeout")]
    WsIdleTimeout,
    /// `subscribe` reusing the id of a live operation (4409).
    #[error("Subscriber for {0} already exists")]
    WsDuplicateId(String),
    /// A second `connection_init` (4429).
    #[error("Too many initialisation requests")]
    WsTooManyInits,
    /// The router is shutting down; streaming connections close (1001).
    #[error("the router is shutting down")]
    ShuttingDown,

    // ---- the admin API ----
    /// An admin call without a token.
    #[error("the admin API needs an admin bearer token")]
    AdminAnonymous,
    /// An admin call whose token does not verify.
    #[error("{0}")]
    AdminInvalidToken(#[source] AuthError),
    /// An admin call from a caller without the `admin` role.
    #[error("the admin API needs a token with the admin role")]
    AdminForbidden,
    /// An admin path that does not exist.
    #[error("no such admin endpoint")]
    AdminNoEndpoint,
    /// An admin path naming a subgraph the supergraph does not have.
    #[error("no subgraph named `{0}`")]
    AdminUnknownSubgraph(String),
}

impl RouterError {
    /// The `extensions.code` (or admin `error.code`) clients branch on.
    pub fn code(&self) -> ErrorCode {
        use crate::planner::PlanError;
        match self {
            Self::Request(err) => err.code(),
            Self::Persisted(err) => err.code(),
            Self::Plan(PlanError::Parse(_)) => ErrorCode::GraphqlParseFailed,
            Self::Plan(PlanError::Limit(limit)) => limit.code(),
            Self::Plan(PlanError::Invalid(_)) | Self::IntrospectionDisabled => {
                ErrorCode::GraphqlValidationFailed
            }
            Self::Plan(PlanError::Plan(_)) => ErrorCode::QueryPlanBuildFailed,
            Self::Plan(PlanError::Timeout(_)) => ErrorCode::QueryPlanTimeout,
            Self::NoQuery
            | Self::SubscriptionOverHttp
            | Self::WsBinaryMessage
            | Self::WsInvalidMessage(_)
            | Self::WsInitTimeout
            | Self::WsIdleTimeout
            | Self::WsTooManyInits => ErrorCode::BadRequest,
            Self::InvalidToken(_)
            | Self::SignInToSubscribe
            | Self::WsAnonymous
            | Self::WsInvalidToken(_)
            | Self::WsTokenNotText
            | Self::WsNotAcknowledged
            | Self::AdminAnonymous
            | Self::AdminInvalidToken(_) => ErrorCode::Unauthenticated,
            Self::AdminForbidden => ErrorCode::Forbidden,
            Self::UnauthorizedSubscription { .. } => ErrorCode::UnauthorizedFieldOrType,
            Self::AdminNoEndpoint | Self::AdminUnknownSubgraph(_) => ErrorCode::NotFound,
            Self::WsDuplicateId(_) => ErrorCode::Conflict,
            Self::Variables(_) => ErrorCode::BadUserInput,
            Self::MutationOverGet => ErrorCode::MethodNotAllowed,
            Self::BodyTooLarge => ErrorCode::MaxBodySizeLimit,
            Self::RateLimited { .. } | Self::TooManyOperations { .. } => ErrorCode::RateLimited,
            Self::CsrfPrevention { .. } => ErrorCode::CsrfPrevention,
            Self::NoReplica { .. } | Self::SubscribeFailed { .. } => ErrorCode::SubgraphUnavailable,
            Self::SubscriptionOverflow => ErrorCode::SubscriptionOverflow,
            Self::SharedExecutionFailed | Self::SubscriptionUnplannable | Self::ShuttingDown => {
                ErrorCode::Internal
            }
        }
    }

    /// The HTTP status of a response carrying this error. Errors that only
    /// ever end a websocket get the status they would have over HTTP.
    pub fn status(&self) -> StatusCode {
        use crate::planner::PlanError;
        match self {
            Self::Request(err) => err.status(),
            Self::Persisted(err) => err.status(),
            Self::Plan(PlanError::Plan(_))
            | Self::SharedExecutionFailed
            | Self::SubscriptionUnplannable => StatusCode::INTERNAL_SERVER_ERROR,
            // The router was busy or the document too costly: either way
            // not answered now; the timeout is logged where it happens.
            Self::Plan(PlanError::Timeout(_)) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Plan(_)
            | Self::NoQuery
            | Self::IntrospectionDisabled
            | Self::Variables(_)
            | Self::SubscriptionOverHttp
            | Self::CsrfPrevention { .. }
            | Self::WsBinaryMessage
            | Self::WsInvalidMessage(_) => StatusCode::BAD_REQUEST,
            Self::InvalidToken(_)
            | Self::SignInToSubscribe
            | Self::WsAnonymous
            | Self::WsInvalidToken(_)
            | Self::WsTokenNotText
            | Self::WsNotAcknowledged
            | Self::AdminAnonymous
            | Self::AdminInvalidToken(_) => StatusCode::UNAUTHORIZED,
            Self::UnauthorizedSubscription {
                anonymous: true, ..
            } => StatusCode::UNAUTHORIZED,
            Self::AdminForbidden | Self::UnauthorizedSubscription { .. } => StatusCode::FORBIDDEN,
            Self::AdminNoEndpoint | Self::AdminUnknownSubgraph(_) => StatusCode::NOT_FOUND,
            Self::MutationOverGet => StatusCode::METHOD_NOT_ALLOWED,
            Self::WsInitTimeout | Self::WsIdleTimeout => StatusCode::REQUEST_TIMEOUT,
            Self::WsDuplicateId(_) => StatusCode::CONFLICT,
            Self::BodyTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::RateLimited { .. } | Self::TooManyOperations { .. } | Self::WsTooManyInits => {
                StatusCode::TOO_MANY_REQUESTS
            }
            Self::NoReplica { .. } | Self::SubscribeFailed { .. } => StatusCode::BAD_GATEWAY,
            Self::SubscriptionOverflow | Self::ShuttingDown => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// The websocket close code (graphql-transport-ws) for errors that end
    /// a connection; `None` for errors answered in an `error` message or
    /// over HTTP.
    pub fn close_code(&self) -> Option<u16> {
        match self {
            Self::WsBinaryMessage | Self::WsInvalidMessage(_) => Some(4400),
            Self::WsAnonymous
            | Self::WsInvalidToken(_)
            | Self::WsTokenNotText
            | Self::WsNotAcknowledged => Some(4401),
            Self::WsInitTimeout | Self::WsIdleTimeout => Some(4408),
            Self::WsDuplicateId(_) => Some(4409),
            Self::WsTooManyInits => Some(4429),
            Self::ShuttingDown => Some(1001),
            _ => None,
        }
    }

    /// Whether the message is hidden from the client (a router fault: the
    /// details are for the logs).
    pub fn is_internal(&self) -> bool {
        matches!(
            self.code(),
            ErrorCode::Internal | ErrorCode::QueryPlanBuildFailed
        ) && !matches!(self, Self::SharedExecutionFailed | Self::ShuttingDown)
    }

    /// The text the client sees: the error's own for client errors, a
    /// generic one for internal errors (see [`RouterError::log`]).
    pub fn message(&self) -> String {
        match self {
            Self::Plan(crate::planner::PlanError::Plan(_)) => {
                "the router could not plan this operation".to_owned()
            }
            // The parser's own text: its `Display` adds "syntax error: " for
            // logs, which clients never got.
            Self::Plan(crate::planner::PlanError::Parse(message)) => message.clone(),
            other => other.to_string(),
        }
    }

    /// Where the error points into the client's document (validation
    /// errors); empty when it points nowhere.
    pub fn locations(&self) -> Vec<Location> {
        match self {
            Self::Plan(err) => err.locations(),
            _ => Vec::new(),
        }
    }

    /// The subgraph the error concerns, for `extensions.serviceName`, when
    /// the subgraph itself failed.
    pub fn service(&self) -> Option<&str> {
        match self {
            Self::SubscribeFailed { service, .. } => Some(service),
            _ => None,
        }
    }

    /// `WWW-Authenticate` for a 401: `invalid_token` when a token was sent
    /// and refused by the GraphQL endpoint, a bare challenge otherwise.
    fn www_authenticate(&self) -> Option<&'static str> {
        match self {
            Self::InvalidToken(_) => Some("Bearer error=\"invalid_token\""),
            _ if self.status() == StatusCode::UNAUTHORIZED => Some("Bearer"),
            _ => None,
        }
    }

    /// Logs the cause chain of an internal error (a client error is the
    /// client's business and is not logged). The details go in `reason`,
    /// never in a field named `message`: JSON log lines flatten event
    /// fields beside the event's own `message`.
    pub fn log(&self) {
        if !self.is_internal() {
            return;
        }
        let code = self.code().as_str();
        let reason = error_chain(self);
        match self {
            Self::Plan(_) => {
                tracing::error!(code, %reason, "a valid operation could not be planned");
            }
            _ => tracing::error!(code, %reason, "the router failed to answer an operation"),
        }
    }

    /// The GraphQL error object: message, `locations` when the error points
    /// into the document, `extensions.code`.
    pub fn to_json(&self) -> Value {
        let mut error = json!({ "message": self.message() });
        let locations = self.locations();
        if !locations.is_empty() {
            error["locations"] = json!(locations);
        }
        error["extensions"] = json!({ "code": self.code().as_str() });
        if let Some(service) = self.service() {
            error["extensions"]["serviceName"] = Value::String(service.to_owned());
        }
        error
    }

    /// The error as an entry of a response's `errors` (websocket `error`
    /// payloads, SSE and multipart responses with `data: null`).
    pub fn to_graphql_error(&self) -> crate::executor::error::GraphqlError {
        let mut error = crate::executor::error::GraphqlError::coded(self.code(), self.message())
            .with_locations(self.locations());
        if let Some(service) = self.service() {
            error = error.from_service(service);
        }
        error
    }

    /// A GraphQL response carrying this error and no data, in
    /// `content_type`, with the headers its status calls for (`Allow` on
    /// 405, `WWW-Authenticate` on 401).
    pub fn into_response(self, content_type: &'static str) -> Response {
        let status = self.status();
        let code = self.code();
        let message = self.message();
        let body = if self.locations().is_empty() {
            error_json(code.as_str(), &message)
        } else {
            json!({ "errors": [self.to_json()] })
        };
        let mut response = error_response(status, content_type, body.to_string());
        if let Some(challenge) = self.www_authenticate() {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static(challenge),
            );
        }
        response
    }

    /// The admin API's error response: `{"error":{"code","message"}}`.
    pub fn admin_response(self) -> Response {
        let body = json!({ "error": { "code": self.code().as_str(), "message": self.message() } });
        let mut response = (self.status(), axum::Json(body)).into_response();
        if let Some(challenge) = self.www_authenticate() {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static(challenge),
            );
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::planner::PlanError;

    async fn body(response: Response) -> Value {
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .expect("body");
        serde_json::from_slice(&bytes).expect("JSON")
    }

    /// The statuses and codes the dozen former mapping sites used, now
    /// from one match: a change to any of them is a wire change.
    #[test]
    fn codes_and_statuses_match_the_wire() {
        let cases: Vec<(RouterError, &str, u16)> = vec![
            (RouterError::NoQuery, "BAD_REQUEST", 400),
            (RouterError::MutationOverGet, "METHOD_NOT_ALLOWED", 405),
            (RouterError::SubscriptionOverHttp, "BAD_REQUEST", 400),
            (
                RouterError::IntrospectionDisabled,
                "GRAPHQL_VALIDATION_FAILED",
                400,
            ),
            (
                RouterError::Variables(vec!["a".into(), "b".into()]),
                "BAD_USER_INPUT",
                400,
            ),
            (RouterError::SharedExecutionFailed, "INTERNAL", 500),
            (RouterError::BodyTooLarge, "MAX_BODY_SIZE_LIMIT", 413),
            (
                RouterError::RateLimited { retry_after: 3 },
                "RATE_LIMITED",
                429,
            ),
            (
                RouterError::CsrfPrevention {
                    explanation: "x".into(),
                },
                "CSRF_PREVENTION",
                400,
            ),
            (RouterError::SignInToSubscribe, "UNAUTHENTICATED", 401),
            (
                RouterError::NoReplica {
                    service: "basket".into(),
                },
                "SUBGRAPH_UNAVAILABLE",
                502,
            ),
            (RouterError::SubscriptionUnplannable, "INTERNAL", 500),
            (
                RouterError::Plan(PlanError::Parse("x".into())),
                "GRAPHQL_PARSE_FAILED",
                400,
            ),
            (RouterError::AdminAnonymous, "UNAUTHENTICATED", 401),
            (RouterError::AdminForbidden, "FORBIDDEN", 403),
            (
                RouterError::AdminUnknownSubgraph("x".into()),
                "NOT_FOUND",
                404,
            ),
            (RouterError::AdminNoEndpoint, "NOT_FOUND", 404),
        ];
        for (err, code, status) in cases {
            assert_eq!(err.code().as_str(), code, "{err:?}");
            assert_eq!(err.status().as_u16(), status, "{err:?}");
        }
    }

    /// A valid operation the planner cannot plan: `QUERY_PLAN_BUILD_FAILED`,
    /// HTTP 500, and a message that does not leak the planner's details.
    #[tokio::test]
    async fn an_unplannable_operation_gets_query_plan_build_failed() {
        let err = RouterError::from(PlanError::Plan("satisfiability: no path".into()));
        assert_eq!(err.code(), ErrorCode::QueryPlanBuildFailed);
        assert_eq!(err.code().as_str(), "QUERY_PLAN_BUILD_FAILED");
        assert!(err.is_internal());
        let response = err.into_response("application/json");
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let body = body(response).await;
        assert_eq!(
            body["errors"][0]["extensions"]["code"],
            "QUERY_PLAN_BUILD_FAILED"
        );
        let message = body["errors"][0]["message"].as_str().unwrap_or_default();
        assert_eq!(message, "the router could not plan this operation");
        assert!(!message.contains("satisfiability"));
    }

    /// Clients get the same text as before the error type was unified:
    /// the parser's message without the `Display` prefix, the validation
    /// problems joined.
    #[test]
    fn messages_are_the_ones_clients_got_before() {
        let parse = RouterError::from(PlanError::Parse("Unexpected end of input".into()));
        assert_eq!(parse.message(), "Unexpected end of input");
        let invalid = RouterError::from(PlanError::Invalid(vec![
            crate::planner::Problem::unplaced("a"),
            crate::planner::Problem::unplaced("b"),
        ]));
        assert_eq!(invalid.message(), "a; b");
        assert_eq!(
            RouterError::RateLimited { retry_after: 7 }.message(),
            "rate limit exceeded: retry later (retryAfter: 7 seconds)"
        );
    }

    /// Websocket closes come from the same type, with the protocol's codes.
    #[test]
    fn websocket_closes_have_the_protocol_codes() {
        assert_eq!(RouterError::WsBinaryMessage.close_code(), Some(4400));
        assert_eq!(RouterError::WsAnonymous.close_code(), Some(4401));
        assert_eq!(RouterError::WsNotAcknowledged.close_code(), Some(4401));
        assert_eq!(RouterError::WsIdleTimeout.close_code(), Some(4408));
        assert_eq!(
            RouterError::WsDuplicateId("1".into()).close_code(),
            Some(4409)
        );
        assert_eq!(RouterError::WsTooManyInits.close_code(), Some(4429));
        assert_eq!(RouterError::ShuttingDown.close_code(), Some(1001));
        assert_eq!(RouterError::SignInToSubscribe.close_code(), None);
    }

    /// The GraphQL endpoint's 401 says `invalid_token`; the admin API and an
    /// anonymous subscription send a bare challenge, as before.
    #[tokio::test]
    async fn unauthenticated_responses_keep_their_challenges() {
        let response = RouterError::SignInToSubscribe.into_response("application/json");
        assert_eq!(response.headers()[header::WWW_AUTHENTICATE], "Bearer");
        let response = RouterError::AdminAnonymous.admin_response();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(response.headers()[header::WWW_AUTHENTICATE], "Bearer");
        let body = body(response).await;
        assert_eq!(body["error"]["code"], "UNAUTHENTICATED");
        assert_eq!(
            body["error"]["message"],
            "the admin API needs an admin bearer token"
        );
        let response = RouterError::MutationOverGet.into_response("application/json");
        assert_eq!(response.headers()[header::ALLOW], "POST");
    }
    /// Validation errors say where in the client's document they are (GraphQL
    /// spec, "Errors"), and the response still carries one error with the
    /// same joined message as before.
    #[tokio::test]
    async fn validation_errors_are_answered_with_locations() {
        const SUPERGRAPH: &str = include_str!("../../../schema/supergraph.graphql");
        let planner = crate::planner::QueryPlanner::from_supergraph(SUPERGRAPH, Default::default())
            .expect("the committed supergraph loads");
        let err = planner
            .prepare("{\n  me {\n    id\n    noSuchField\n  }\n}", None)
            .expect_err("invalid");
        assert!(matches!(err, PlanError::Invalid(_)), "{err:?}");
        let message = err.to_string();
        let response = RouterError::from(err).into_response("application/json");
        assert_eq!(response.status(), axum::http::StatusCode::BAD_REQUEST);
        let body = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .expect("body");
        let body: serde_json::Value = serde_json::from_slice(&body).expect("JSON");
        assert_eq!(
            body["errors"][0]["locations"],
            serde_json::json!([{ "line": 4, "column": 5 }])
        );
        assert_eq!(body["errors"][0]["message"], message.as_str());
        assert_eq!(
            body["errors"][0]["extensions"]["code"],
            "GRAPHQL_VALIDATION_FAILED"
        );
        assert_eq!(body["errors"].as_array().map(Vec::len), Some(1));
    }

    /// The keys of one JSON object, in order, duplicates kept (a map type
    /// would silently keep only one of two equal keys).
    struct Keys(Vec<String>);

    impl<'de> serde::Deserialize<'de> for Keys {
        fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
            struct Visitor;
            impl<'de> serde::de::Visitor<'de> for Visitor {
                type Value = Keys;
                fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                    f.write_str("a JSON object")
                }
                fn visit_map<A: serde::de::MapAccess<'de>>(
                    self,
                    mut map: A,
                ) -> Result<Keys, A::Error> {
                    let mut keys = Vec::new();
                    while let Some(key) = map.next_key::<String>()? {
                        map.next_value::<serde::de::IgnoredAny>()?;
                        keys.push(key);
                    }
                    Ok(Keys(keys))
                }
            }
            deserializer.deserialize_map(Visitor)
        }
    }

    /// Collects what a subscriber writes.
    #[derive(Clone, Default)]
    struct Captured(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            if let Ok(mut out) = self.0.lock() {
                out.extend_from_slice(buf);
            }
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// An internal error's log line, formatted as production formats JSON
    /// logs (`flatten_event`: fields beside the event's `message`), has
    /// each key once: the planner's details are `reason`, not a second
    /// `message` that log tools would drop.
    #[test]
    fn internal_error_log_lines_have_no_duplicate_keys() {
        let captured = Captured::default();
        let writer = captured.clone();
        let subscriber = tracing_subscriber::fmt()
            .json()
            .flatten_event(true)
            .with_writer(move || writer.clone())
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            RouterError::from(PlanError::Plan("no path to Product.name".into())).log();
        });
        let output = captured.0.lock().map(|out| out.clone()).unwrap_or_default();
        let output = String::from_utf8(output).expect("UTF-8");
        let lines: Vec<&str> = output.lines().collect();
        assert_eq!(lines.len(), 1, "{output}");
        let Keys(keys) = serde_json::from_str(lines[0]).expect("a JSON object");
        let mut unique = keys.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), keys.len(), "duplicate keys in {}", lines[0]);
        let line: Value = serde_json::from_str(lines[0]).expect("JSON");
        assert_eq!(line["code"], "QUERY_PLAN_BUILD_FAILED");
        assert!(
            line["reason"]
                .as_str()
                .is_some_and(|reason| reason.contains("no path to Product.name")),
            "{line}"
        );
    }
}

//! The error vocabulary clients see.
//!
//! Every error that leaves a Shopgraph service carries a stable,
//! SCREAMING_SNAKE `extensions.code` from [`ErrorCode`]. Domain crates keep
//! their own `thiserror` enums and map them to an [`ErrorCode`] at the GraphQL
//! edge with [`coded`] / [`internal`]; nothing else builds error codes by hand.

use async_graphql::ErrorExtensions;

/// Stable error codes, shared by every subgraph and the router, so clients can
/// branch on `extensions.code` instead of parsing messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    /// The HTTP request is not a GraphQL request (bad JSON, wrong content type).
    BadRequest,
    /// The request could not be parsed as GraphQL.
    GraphqlParseFailed,
    /// The document is not valid against the schema.
    GraphqlValidationFailed,
    /// An argument or input value is out of its allowed range or malformed.
    BadUserInput,
    /// No credentials, or credentials that could not be verified.
    Unauthenticated,
    /// Verified caller without the role the operation needs.
    Forbidden,
    /// The object does not exist (or is not visible to the caller).
    NotFound,
    /// The request conflicts with the current state (stock, status, idempotency).
    Conflict,
    /// Checkout: a line asks for more units than are left (extensions
    /// `lines` name each product, what was asked and what is left).
    OutOfStock,
    /// Checkout: a line's product was deleted or never existed (extensions
    /// `lines` name each product).
    ProductUnavailable,
    /// Checkout: a line's price is no longer the catalogue's (extensions
    /// `lines` carry the basket's and the current price); the client
    /// re-confirms the prices and tries again.
    PriceChanged,
    /// The caller exceeded its request budget.
    RateLimited,
    /// A service this request depends on did not answer.
    SubgraphUnavailable,
    /// The HTTP method is not allowed for this operation (e.g. a mutation over GET).
    MethodNotAllowed,
    /// A subscriber could not keep up with its events and was ended
    /// (resubscribe, with `after` where offered).
    SubscriptionOverflow,
    /// The operation is deeper than `GRAPHQL_MAX_DEPTH` allows.
    MaxDepthLimit,
    /// The operation has more aliases than `GRAPHQL_MAX_ALIASES` allows.
    MaxAliasesLimit,
    /// The operation selects more root fields than `GRAPHQL_MAX_ROOT_FIELDS` allows.
    MaxRootFieldsLimit,
    /// The document has more tokens than `GRAPHQL_MAX_TOKENS` allows.
    MaxTokensLimit,
    /// The operation's estimated cost exceeds `GRAPHQL_MAX_COMPLEXITY`.
    MaxComplexityLimit,
    /// The operation selects more fields in all (fragments expanded,
    /// `__typename` included) than `GRAPHQL_MAX_FIELDS` allows.
    MaxFieldsLimit,
    /// Preparing a new document (parse, limits, validation, planning) took
    /// longer than `PLAN_TIMEOUT`.
    QueryPlanTimeout,
    /// The request body is larger than `HTTP_MAX_BODY_BYTES`.
    MaxBodySizeLimit,
    /// An automatic persisted query hash the router does not know yet:
    /// the client resends with the query text (Apollo APQ protocol).
    PersistedQueryNotFound,
    /// The query text does not hash to the `sha256Hash` sent with it.
    PersistedQueryHashMismatch,
    /// Persisted queries are turned off on this router.
    PersistedQueryNotSupported,
    /// Safelist mode: the persisted query id is not a registered operation.
    PersistedQueryNotInList,
    /// Safelist mode: free-form query text that is not a registered operation.
    QueryNotInSafelist,
    /// A GET or non-JSON POST without a preflight-forcing header: refused
    /// as a possible cross-site request forgery.
    CsrfPrevention,
    /// The operation is valid but the query planner could not plan it (a
    /// router or supergraph limitation, not the client's fault); details
    /// are in the logs only. Hive Router uses the same code.
    QueryPlanBuildFailed,
    /// The router removed a field the caller may not read or run: the
    /// schema declares it `@authenticated` or `@requiresScopes` and the
    /// caller is anonymous or lacks the scopes. The field is `null`, the
    /// rest of the response is served (Apollo Router's code).
    UnauthorizedFieldOrType,
    /// A bug or an infrastructure failure; details are in the logs only.
    Internal,
}

impl ErrorCode {
    /// The wire form placed in `extensions.code`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::BadRequest => "BAD_REQUEST",
            Self::GraphqlParseFailed => "GRAPHQL_PARSE_FAILED",
            Self::GraphqlValidationFailed => "GRAPHQL_VALIDATION_FAILED",
            Self::BadUserInput => "BAD_USER_INPUT",
            Self::Unauthenticated => "UNAUTHENTICATED",
            Self::Forbidden => "FORBIDDEN",
            Self::NotFound => "NOT_FOUND",
            Self::Conflict => "CONFLICT",
            Self::OutOfStock => "OUT_OF_STOCK",
            Self::ProductUnavailable => "PRODUCT_UNAVAILABLE",
            Self::PriceChanged => "PRICE_CHANGED",
            Self::RateLimited => "RATE_LIMITED",
            Self::SubgraphUnavailable => "SUBGRAPH_UNAVAILABLE",
            Self::MethodNotAllowed => "METHOD_NOT_ALLOWED",
            Self::SubscriptionOverflow => "SUBSCRIPTION_OVERFLOW",
            Self::MaxDepthLimit => "MAX_DEPTH_LIMIT",
            Self::MaxAliasesLimit => "MAX_ALIASES_LIMIT",
            Self::MaxRootFieldsLimit => "MAX_ROOT_FIELDS_LIMIT",
            Self::MaxTokensLimit => "MAX_TOKENS_LIMIT",
            Self::MaxComplexityLimit => "MAX_COMPLEXITY_LIMIT",
            Self::MaxFieldsLimit => "MAX_FIELDS_LIMIT",
            Self::QueryPlanTimeout => "QUERY_PLAN_TIMEOUT",
            Self::MaxBodySizeLimit => "MAX_BODY_SIZE_LIMIT",
            Self::PersistedQueryNotFound => "PERSISTED_QUERY_NOT_FOUND",
            Self::PersistedQueryHashMismatch => "PERSISTED_QUERY_HASH_MISMATCH",
            Self::PersistedQueryNotSupported => "PERSISTED_QUERY_NOT_SUPPORTED",
            Self::PersistedQueryNotInList => "PERSISTED_QUERY_NOT_IN_LIST",
            Self::QueryNotInSafelist => "QUERY_NOT_IN_SAFELIST",
            Self::CsrfPrevention => "CSRF_PREVENTION",
            Self::QueryPlanBuildFailed => "QUERY_PLAN_BUILD_FAILED",
            Self::UnauthorizedFieldOrType => "UNAUTHORIZED_FIELD_OR_TYPE",
            Self::Internal => "INTERNAL",
        }
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A GraphQL error whose message is safe to show, tagged with `code`.
pub fn coded(code: ErrorCode, message: impl Into<String>) -> async_graphql::Error {
    async_graphql::Error::new(message.into()).extend_with(|_, ext| ext.set("code", code.as_str()))
}

/// An internal failure: the cause chain goes to the log, the client gets a
/// generic message (never SQL, hostnames or stack details).
pub fn internal(cause: &(dyn std::error::Error + 'static)) -> async_graphql::Error {
    tracing::error!(error = %error_chain(cause), "internal error");
    coded(ErrorCode::Internal, "internal server error")
}

/// A domain error that knows which [`ErrorCode`] it means for a client.
///
/// Domain crates implement it at their GraphQL edge; [`to_graphql`] then
/// turns any such error into a client-safe GraphQL error.
pub trait Coded: std::error::Error + 'static {
    /// The code clients see in `extensions.code`.
    fn code(&self) -> ErrorCode;
}

/// Maps a [`Coded`] error to GraphQL: its message for client errors, a
/// generic message (and a log line with the cause) for [`ErrorCode::Internal`].
pub fn to_graphql<E: Coded>(error: E) -> async_graphql::Error {
    match error.code() {
        ErrorCode::Internal => internal(&error),
        code => coded(code, error.to_string()),
    }
}

/// Renders an error with all its sources, `outer: inner: root`, for logs.
pub fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut rendered = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        rendered.push_str(": ");
        rendered.push_str(&cause.to_string());
        source = cause.source();
    }
    rendered
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn coded_error_carries_extension_code() {
        let err = coded(ErrorCode::NotFound, "no such product");
        let server = err.into_server_error(Default::default());
        let code = server
            .extensions
            .as_ref()
            .and_then(|ext| ext.get("code"))
            .cloned();
        assert_eq!(code, Some(async_graphql::Value::from("NOT_FOUND")));
        assert_eq!(server.message, "no such product");
    }

    #[test]
    fn error_chain_lists_every_source() {
        #[derive(Debug, thiserror::Error)]
        #[error("outer")]
        struct Outer(#[source] std::io::Error);
        let err = Outer(std::io::Error::other("root cause"));
        assert_eq!(error_chain(&err), "outer: root cause");
    }
}

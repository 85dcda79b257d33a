//! GraphQL over HTTP: the front door every Shopgraph server answers the
//! same way, router and subgraphs alike.
//!
//! What a client meets before any GraphQL runs is decided here, once:
//!
//! * [`read_request`]: a `POST` with a JSON body or a `GET` with query
//!   parameters becomes a [`GraphqlRequest`]; anything else is a
//!   [`RequestError`] with its code and HTTP status (400, 415, 405);
//! * [`prefers_html`]: whether a `GET` is a browser asking for a page, which
//!   gets GraphiQL ([`crate::graphiql::page`]) where GraphiQL is on;
//! * [`response_content_type`]: `application/graphql-response+json` when the
//!   client accepts it, else `application/json` (the GraphQL-over-HTTP spec);
//! * [`coded_response`] / [`error_json`]: a body of one coded error, with
//!   the headers its status calls for (`Allow` on 405, `WWW-Authenticate`
//!   on 401).
//!
//! What happens after (executing on an async-graphql schema in a subgraph,
//! planning across subgraphs in the router) is each server's own.

use axum::body::Bytes;
use axum::extract::Query;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::error::ErrorCode;

const GRAPHQL_RESPONSE_JSON: &str = "application/graphql-response+json";

/// What a 405 for a mutation (or subscription) sent with `GET` says.
pub const ONLY_QUERIES_OVER_GET: &str = "only queries may be sent with GET; use POST for mutations";

/// A GraphQL request as clients send it (POST body, GET parameters, a
/// websocket `subscribe` payload).
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GraphqlRequest {
    /// The document; may be absent when a persisted query id stands for it.
    pub query: Option<String>,
    /// Which operation of the document to run.
    pub operation_name: Option<String>,
    /// Variable values, a JSON object.
    #[serde(default)]
    pub variables: Option<Map<String, Value>>,
    /// Protocol extensions (`persistedQuery`, for example).
    #[serde(default)]
    pub extensions: Option<Value>,
}

/// GET parameters: `variables` and `extensions` arrive as JSON strings.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct GetParams {
    query: Option<String>,
    operation_name: Option<String>,
    variables: Option<String>,
    extensions: Option<String>,
}

/// Why an HTTP request is not a GraphQL request.
#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    /// The query string of a GET cannot be read.
    #[error("malformed query string: {0}")]
    QueryString(String),
    /// GET `variables` is not a JSON object.
    #[error("`variables` is not a JSON object: {0}")]
    Variables(serde_json::Error),
    /// GET `extensions` is not JSON.
    #[error("`extensions` is not JSON: {0}")]
    Extensions(serde_json::Error),
    /// A POST whose content type is not JSON.
    #[error("POST requests must have content-type application/json")]
    NotJson,
    /// A POST body that is not a GraphQL request object.
    #[error("malformed GraphQL request: {0}")]
    Body(serde_json::Error),
    /// Neither GET nor POST.
    #[error("use GET or POST")]
    Method,
}

impl RequestError {
    /// The `extensions.code` clients see.
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::Method => ErrorCode::MethodNotAllowed,
            Self::QueryString(_)
            | Self::Variables(_)
            | Self::Extensions(_)
            | Self::NotJson
            | Self::Body(_) => ErrorCode::BadRequest,
        }
    }

    /// The HTTP status of the answer.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::NotJson => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::Method => StatusCode::METHOD_NOT_ALLOWED,
            Self::QueryString(_) | Self::Variables(_) | Self::Extensions(_) | Self::Body(_) => {
                StatusCode::BAD_REQUEST
            }
        }
    }
}

/// Reads a GraphQL request from a `GET` query string or a `POST` JSON body.
pub fn read_request(
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &Bytes,
) -> Result<GraphqlRequest, RequestError> {
    match *method {
        Method::GET => {
            let Query(params) = Query::<GetParams>::try_from_uri(uri)
                .map_err(|err| RequestError::QueryString(err.to_string()))?;
            let variables = params
                .variables
                .filter(|v| !v.trim().is_empty())
                .map(|v| serde_json::from_str::<Option<Map<String, Value>>>(&v))
                .transpose()
                .map_err(RequestError::Variables)?
                .flatten();
            let extensions = params
                .extensions
                .filter(|e| !e.trim().is_empty())
                .map(|e| serde_json::from_str::<Value>(&e))
                .transpose()
                .map_err(RequestError::Extensions)?;
            Ok(GraphqlRequest {
                query: params.query,
                operation_name: params.operation_name,
                variables,
                extensions,
            })
        }
        Method::POST => {
            let json = headers
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|ct| {
                    ct.trim_start()
                        .to_ascii_lowercase()
                        .starts_with("application/json")
                });
            if !json {
                return Err(RequestError::NotJson);
            }
            serde_json::from_slice(body).map_err(RequestError::Body)
        }
        _ => Err(RequestError::Method),
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
pub fn error_json(code: &str, message: &str) -> Value {
    json!({ "errors": [{ "message": message, "extensions": { "code": code } }] })
}

/// A response carrying one coded GraphQL error and no data, with the
/// headers its status requires (see [`error_response`]).
pub fn coded_response(
    status: StatusCode,
    content_type: &'static str,
    code: &str,
    message: &str,
) -> Response {
    error_response(status, content_type, error_json(code, message).to_string())
}

/// A response with an `errors` body already serialised, and the headers
/// its status requires: `Allow: POST` on 405 (only `GET` and `POST` exist,
/// and `GET` was refused) and `WWW-Authenticate` on 401.
pub fn error_response(status: StatusCode, content_type: &'static str, body: String) -> Response {
    let mut response = (status, [(header::CONTENT_TYPE, content_type)], body).into_response();
    match status {
        StatusCode::METHOD_NOT_ALLOWED => {
            response
                .headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static("POST"));
        }
        StatusCode::UNAUTHORIZED => {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer error=\"invalid_token\""),
            );
        }
        _ => {}
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn post(content_type: &str, body: &str) -> Result<GraphqlRequest, RequestError> {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_str(content_type).unwrap(),
        );
        read_request(
            &Method::POST,
            &Uri::from_static("/graphql"),
            &headers,
            &Bytes::from(body.to_owned()),
        )
    }

    fn get(uri: &'static str) -> Result<GraphqlRequest, RequestError> {
        read_request(
            &Method::GET,
            &Uri::from_static(uri),
            &HeaderMap::new(),
            &Bytes::new(),
        )
    }

    #[test]
    fn post_and_get_read_the_same_request() {
        let posted = post(
            "application/json; charset=utf-8",
            r#"{"query":"{ a }","operationName":"A","variables":{"x":1}}"#,
        )
        .unwrap();
        let got = get("/graphql?query=%7B%20a%20%7D&operationName=A&variables=%7B%22x%22%3A1%7D")
            .unwrap();
        for request in [posted, got] {
            assert_eq!(request.query.as_deref(), Some("{ a }"));
            assert_eq!(request.operation_name.as_deref(), Some("A"));
            assert_eq!(request.variables.unwrap()["x"], json!(1));
        }
    }

    #[test]
    fn each_refusal_has_its_code_and_status() {
        let cases = [
            (post("text/plain", "{}"), "BAD_REQUEST", 415),
            (post("application/json", "[1]"), "BAD_REQUEST", 400),
            (get("/graphql?query=x&variables=%5B%5D"), "BAD_REQUEST", 400),
            (get("/graphql?query=x&extensions=%7B"), "BAD_REQUEST", 400),
            (
                read_request(
                    &Method::PUT,
                    &Uri::from_static("/graphql"),
                    &HeaderMap::new(),
                    &Bytes::new(),
                ),
                "METHOD_NOT_ALLOWED",
                405,
            ),
        ];
        for (result, code, status) in cases {
            let err = result.expect_err(code);
            assert_eq!(err.code().as_str(), code, "{err}");
            assert_eq!(err.status().as_u16(), status, "{err}");
        }
    }

    #[test]
    fn refusals_carry_the_headers_their_status_needs() {
        let refused = coded_response(
            StatusCode::METHOD_NOT_ALLOWED,
            "application/json",
            "METHOD_NOT_ALLOWED",
            ONLY_QUERIES_OVER_GET,
        );
        assert_eq!(refused.headers()[header::ALLOW], "POST");
        let unauthenticated = coded_response(
            StatusCode::UNAUTHORIZED,
            "application/json",
            "UNAUTHENTICATED",
            "invalid token",
        );
        assert!(
            unauthenticated
                .headers()
                .contains_key(header::WWW_AUTHENTICATE)
        );
    }
}

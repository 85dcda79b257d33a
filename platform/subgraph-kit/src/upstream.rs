//! Calling another subgraph's GraphQL API (service to service).
//!
//! Basket asks product for prices, payment asks basket for the caller's
//! basket. [`GraphqlClient`] sends one operation with a timeout, forwards
//! the caller's identity (the `x-shopgraph-user-*` headers of
//! [`shopgraph_core::identity`], plus the caller's `Authorization` header when there
//! was one) and W3C trace context, signs the request for the signed hop
//! ([`shopgraph_core::hop`], as the router does), and turns every way a call can fail into
//! an [`UpstreamError`] a resolver can map to `SUBGRAPH_UNAVAILABLE` or pass
//! on with the upstream's own code.

use std::time::Duration;

use http::{HeaderMap, HeaderValue, header};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use shopgraph_core::telemetry::inject_trace_context;

use shopgraph_core::error::{Coded, ErrorCode};
use shopgraph_core::hop::HopSigner;
use shopgraph_core::identity::{Identity, forward_identity};

/// Who the current request acts for, kept so that calls made on the caller's
/// behalf carry the caller's identity. The identify middleware stores it as
/// a request extension; the GraphQL handler puts it in the request data.
#[derive(Debug, Clone, Default)]
pub struct Credentials {
    /// The caller's `Authorization` header as received (a direct token, in
    /// dev), forwarded unchanged; `None` behind the router.
    pub authorization: Option<HeaderValue>,
    /// The caller as this service identified them, forwarded in the
    /// identity headers.
    pub identity: Identity,
}

/// Why a call to another subgraph did not produce data.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    /// Connection refused, timeout, 5xx: the other service is not there.
    #[error("the {service} service is unavailable")]
    Unavailable {
        /// The service called.
        service: &'static str,
        /// What went wrong, for the logs.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The service answered with GraphQL errors.
    #[error("{service}: {message}")]
    Rejected {
        /// The service called.
        service: &'static str,
        /// The first error's `extensions.code`, if any.
        code: Option<String>,
        /// The first error's message.
        message: String,
        /// The first error's other `extensions` (all but `code`), so a
        /// caller that passes the refusal on can keep its details (which
        /// lines are out of stock, the new prices...).
        /// Boxed: most calls never fail, and errors stay small to move.
        extensions: Box<serde_json::Map<String, Value>>,
    },
    /// The answer did not have the expected shape.
    #[error("the {service} service sent an unexpected response")]
    Malformed {
        /// The service called.
        service: &'static str,
        /// The decoding failure.
        #[source]
        source: serde_json::Error,
    },
}

impl Coded for UpstreamError {
    fn code(&self) -> ErrorCode {
        match self {
            Self::Unavailable { .. } => ErrorCode::SubgraphUnavailable,
            Self::Rejected { code, .. } => match code.as_deref() {
                Some("UNAUTHENTICATED") => ErrorCode::Unauthenticated,
                Some("FORBIDDEN") => ErrorCode::Forbidden,
                Some("NOT_FOUND") => ErrorCode::NotFound,
                Some("BAD_USER_INPUT") => ErrorCode::BadUserInput,
                _ => ErrorCode::SubgraphUnavailable,
            },
            Self::Malformed { .. } => ErrorCode::Internal,
        }
    }
}

/// A GraphQL endpoint of another service.
#[derive(Debug, Clone)]
pub struct GraphqlClient {
    service: &'static str,
    url: String,
    /// `url` parsed once, for the signature's `@request-target`.
    uri: http::Uri,
    http: reqwest::Client,
    signer: HopSigner,
}

impl GraphqlClient {
    /// A client for `service` at `url`, signing with `signer`; every call
    /// gives up after `timeout`. The URL was checked to be `http(s)://`
    /// by the settings; one that still does not parse fails every call as
    /// unavailable.
    pub fn new(
        service: &'static str,
        url: impl Into<String>,
        timeout: Duration,
        signer: HopSigner,
    ) -> Self {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(2)))
            .build()
            .unwrap_or_default();
        let url = url.into();
        Self {
            service,
            uri: url.parse().unwrap_or_default(),
            url,
            http,
            signer,
        }
    }

    /// The endpoint called.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Runs `query` and decodes its `data` into `T`.
    pub async fn query<T: DeserializeOwned>(
        &self,
        query: &str,
        variables: Value,
        credentials: Option<&Credentials>,
    ) -> Result<T, UpstreamError> {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::ACCEPT,
            HeaderValue::from_static("application/graphql-response+json, application/json"),
        );
        if let Some(credentials) = credentials {
            if let Some(authorization) = &credentials.authorization {
                headers.insert(header::AUTHORIZATION, authorization.clone());
            }
            forward_identity(&credentials.identity, &mut headers);
        }
        inject_trace_context(&mut headers);
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        let unavailable =
            |source: Box<dyn std::error::Error + Send + Sync>| UpstreamError::Unavailable {
                service: self.service,
                source,
            };
        let body = axum::body::Bytes::from(
            serde_json::to_vec(&json!({ "query": query, "variables": variables }))
                .map_err(|err| unavailable(Box::new(err)))?,
        );
        self.signer
            .sign(
                &http::Method::POST,
                &self.uri,
                &mut headers,
                &body,
                self.service,
            )
            .await
            .map_err(|err| unavailable(Box::new(err)))?;
        let request = self.http.post(&self.url).headers(headers).body(body);

        let response = request
            .send()
            .await
            .map_err(|err| unavailable(Box::new(err)))?;
        let status = response.status();
        if status.is_server_error() {
            return Err(unavailable(format!("HTTP {status}").into()));
        }
        let body: Value = response
            .json()
            .await
            .map_err(|err| unavailable(Box::new(err)))?;
        if let Some(error) = body.get("errors").and_then(|e| e.get(0)) {
            let mut extensions = match error.get("extensions") {
                Some(Value::Object(extensions)) => extensions.clone(),
                _ => serde_json::Map::new(),
            };
            let code = match extensions.remove("code") {
                Some(Value::String(code)) => Some(code),
                _ => None,
            };
            return Err(UpstreamError::Rejected {
                service: self.service,
                code,
                message: error["message"]
                    .as_str()
                    .unwrap_or("unknown error")
                    .to_owned(),
                extensions: Box::new(extensions),
            });
        }
        serde_json::from_value(body.get("data").cloned().unwrap_or(Value::Null)).map_err(|source| {
            UpstreamError::Malformed {
                service: self.service,
                source,
            }
        })
    }
}

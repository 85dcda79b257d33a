//! Stage 7, the wire: talking to subgraphs — one GraphQL request out, one response back.
//!
//! The executor only knows the [`Fetcher`] trait: "send this operation to
//! subgraph `name` on behalf of this caller". [`client::HttpFetcher`] is the
//! transport (pooled keep-alive HTTP, per-subgraph timeout, compression,
//! W3C trace context and identity forwarding); [`crate::traffic::dedupe`] and the
//! traffic-management layers of [`crate::traffic`] wrap it.

pub mod client;
pub mod subscribe;

use futures::future::BoxFuture;
use serde_json::{Map, Value};
use shopgraph_core::identity::Identity;

/// One operation sent to one subgraph.
#[derive(Debug)]
pub struct SubgraphRequest<'a> {
    /// The operation text, as the planner printed it.
    pub query: &'a str,
    /// The operation name sent along (for subgraph logs), if any.
    pub operation_name: Option<&'a str>,
    /// The variables the operation uses (client variables and `representations`).
    pub variables: Map<String, Value>,
    /// Who the client is; forwarded so the subgraph can authorise.
    pub identity: &'a Identity,
    /// Whether the operation is a query: only queries may be shared between
    /// callers ([`crate::traffic::dedupe`]) or retried once sent. Mutations never are.
    pub is_query: bool,
}

/// A subgraph's GraphQL answer, undecoded below `data` and `errors`.
#[derive(Debug, Clone, Default, serde::Deserialize)]
pub struct SubgraphResponse {
    /// The `data` member (`None` when absent or `null`).
    #[serde(default)]
    pub data: Option<Value>,
    /// The `errors` member, each error kept as the subgraph sent it.
    #[serde(default)]
    pub errors: Vec<Value>,
}

/// Why a subgraph produced no GraphQL response at all.
#[derive(Debug, Clone, thiserror::Error)]
pub enum FetchError {
    /// The supergraph names a subgraph no URL is known for.
    #[error("no URL is configured for subgraph `{0}`")]
    UnknownSubgraph(String),
    /// No connection could be made (refused, DNS failure, connect
    /// timeout): the request was never sent, so another replica may take
    /// it, even a mutation.
    #[error("cannot connect to subgraph `{subgraph}`: {reason}")]
    Connect {
        /// The subgraph.
        subgraph: String,
        /// What the transport said.
        reason: String,
    },
    /// The router will not send the request: the subgraph's circuit
    /// breaker is open or none of its replicas is healthy.
    #[error("subgraph `{subgraph}` is unavailable: {reason}")]
    Unavailable {
        /// The subgraph.
        subgraph: String,
        /// Why (for logs and the admin API).
        reason: String,
    },
    /// The connection broke after the request was sent (reset, closed
    /// early): the subgraph may have acted on it.
    #[error("subgraph `{subgraph}` is unreachable: {reason}")]
    Unreachable {
        /// The subgraph.
        subgraph: String,
        /// What the transport said (for logs and the error message).
        reason: String,
    },
    /// No answer within the subgraph timeout.
    #[error("subgraph `{subgraph}` did not answer within {timeout:?}")]
    Timeout {
        /// The subgraph.
        subgraph: String,
        /// The limit that expired.
        timeout: std::time::Duration,
    },
    /// An HTTP status that carries no GraphQL response (5xx, 404...).
    #[error("subgraph `{subgraph}` answered HTTP {status}")]
    Status {
        /// The subgraph.
        subgraph: String,
        /// The HTTP status code.
        status: u16,
    },
    /// A subscription whose consumer took no event for
    /// [`subscribe::FALL_BEHIND_GRACE`] while the subgraph had more: it
    /// was ended upstream rather than hold up the connection.
    #[error("a subscription fell behind subgraph `{subgraph}` and was ended")]
    FellBehind {
        /// The subgraph.
        subgraph: String,
    },
    /// A body that is not a GraphQL JSON response.
    #[error("subgraph `{subgraph}` sent a malformed response: {reason}")]
    Malformed {
        /// The subgraph.
        subgraph: String,
        /// The decoding failure.
        reason: String,
    },
}

impl FetchError {
    /// Whether the subgraph (or its replica) misbehaved: counts against its
    /// circuit breaker and its passive health. The router's own refusals
    /// ([`FetchError::Unavailable`]) and configuration errors do not.
    pub fn is_subgraph_failure(&self) -> bool {
        match self {
            Self::Connect { .. }
            | Self::Unreachable { .. }
            | Self::Timeout { .. }
            | Self::Malformed { .. } => true,
            Self::Status { status, .. } => *status >= 500,
            Self::Unavailable { .. } | Self::UnknownSubgraph(_) | Self::FellBehind { .. } => false,
        }
    }

    /// Whether sending the same query again may succeed: transport
    /// failures and 502/503/504 (overload, restart). Only queries are
    /// retried once sent; see [`crate::traffic::layers::RetryLayer`].
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Connect { .. } | Self::Unreachable { .. } | Self::Timeout { .. } => true,
            Self::Status { status, .. } => matches!(status, 502..=504),
            Self::Malformed { .. }
            | Self::Unavailable { .. }
            | Self::UnknownSubgraph(_)
            | Self::FellBehind { .. } => false,
        }
    }
}

/// Sends operations to subgraphs by name.
///
/// The request is borrowed so that the layers between the executor and
/// the wire ([`crate::traffic`]) can send it again (a retry, a failover to
/// another replica) without copying its variables.
pub trait Fetcher: Send + Sync + 'static {
    /// Sends `request` to the subgraph called `subgraph` (the supergraph's
    /// `join__Graph` name, e.g. `product`).
    fn fetch<'a>(
        &'a self,
        subgraph: &'a str,
        request: &'a SubgraphRequest<'a>,
    ) -> BoxFuture<'a, Result<SubgraphResponse, FetchError>>;
}

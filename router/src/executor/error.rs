//! GraphQL errors as the router returns them: a message, the response path
//! the error belongs to, and `extensions` with at least a `code` (and
//! `serviceName` when a subgraph raised it).

use serde::Serialize;
use serde_json::{Map, Value};
use shopgraph_core::error::ErrorCode;

/// One step of a response path: an object key or a list index.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum PathSegment {
    /// A response key (field name or alias).
    Key(String),
    /// A position in a list.
    Index(usize),
}

/// A position in the client's document (1-based), as GraphQL errors
/// report it in `locations`. Shared by the planner (validation errors) and
/// the executor (subgraph errors mapped to the client's field).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub struct Location {
    /// The line, from 1.
    pub line: usize,
    /// The column, from 1.
    pub column: usize,
}

/// A path in the client's response, root first.
pub type ResponsePath = Vec<PathSegment>;

/// An error in the `errors` member of a response.
#[derive(Debug, Clone, Serialize)]
pub struct GraphqlError {
    /// Human-readable, safe to show.
    pub message: String,
    /// Where the error points into the client's document; empty when it
    /// points nowhere (and then left out of the JSON).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub locations: Vec<Location>,
    /// Where in `data` the error happened, when it belongs to a field.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<ResponsePath>,
    /// Always has `code`; subgraph errors keep their own extensions and add `serviceName`.
    pub extensions: Map<String, Value>,
    /// Whether a subgraph sent this error ([`GraphqlError::from_subgraph`]):
    /// such errors get the `locations` of the client's field their path
    /// names ([`GraphqlError::locate`]).
    #[serde(skip)]
    pub forwarded: bool,
}

impl GraphqlError {
    /// An error raised by the router itself.
    pub fn new(code: &str, message: impl Into<String>) -> Self {
        let mut extensions = Map::new();
        extensions.insert("code".into(), Value::String(code.to_owned()));
        Self {
            message: message.into(),
            locations: Vec::new(),
            path: None,
            extensions,
            forwarded: false,
        }
    }

    /// An error with one of the shared codes.
    pub fn coded(code: ErrorCode, message: impl Into<String>) -> Self {
        Self::new(code.as_str(), message)
    }

    /// Points the error at `locations` in the client's document.
    pub fn with_locations(mut self, locations: Vec<Location>) -> Self {
        self.locations = locations;
        self
    }

    /// Places the error at `path`.
    pub fn at(mut self, path: ResponsePath) -> Self {
        self.path = Some(path);
        self
    }

    /// Tags the error with the subgraph it came from.
    pub fn from_service(mut self, service: &str) -> Self {
        self.extensions
            .insert("serviceName".into(), Value::String(service.to_owned()));
        self
    }

    /// Rebuilds an error a subgraph sent: its message and extensions are kept
    /// (a missing code becomes `INTERNAL`), its `locations` are dropped (they
    /// point into the subgraph's operation, not the client's; see
    /// [`GraphqlError::locate`] for the client's), and the path is the one
    /// the caller computed in the client's response.
    pub fn from_subgraph(raw: &Value, service: &str, path: Option<ResponsePath>) -> Self {
        let message = raw
            .get("message")
            .and_then(Value::as_str)
            .unwrap_or("the subgraph reported an error without a message")
            .to_owned();
        let mut extensions = raw
            .get("extensions")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        extensions
            .entry("code")
            .or_insert_with(|| Value::String(ErrorCode::Internal.as_str().to_owned()));
        extensions.insert("serviceName".into(), Value::String(service.to_owned()));
        Self {
            message,
            locations: Vec::new(),
            path,
            extensions,
            forwarded: true,
        }
    }

    /// Gives every forwarded subgraph error without `locations` the
    /// position of the client's field its path names, as `locate` finds it
    /// (`None`: the error stays without `locations`).
    pub fn locate(errors: &mut [Self], locate: impl Fn(&[PathSegment]) -> Option<Location>) {
        for error in errors.iter_mut() {
            if !error.forwarded || !error.locations.is_empty() {
                continue;
            }
            if let Some(location) = error.path.as_deref().and_then(&locate) {
                error.locations = vec![location];
            }
        }
    }

    /// The error's `extensions.code`.
    pub fn code(&self) -> &str {
        self.extensions
            .get("code")
            .and_then(Value::as_str)
            .unwrap_or(ErrorCode::Internal.as_str())
    }
}

/// Reads a subgraph error's `path` (`["_entities", 3, "name"]`) into segments.
pub fn subgraph_path(raw: &Value) -> Option<ResponsePath> {
    let segments = raw.get("path")?.as_array()?;
    segments
        .iter()
        .map(|segment| match segment {
            Value::String(key) => Some(PathSegment::Key(key.clone())),
            Value::Number(n) => n
                .as_u64()
                .and_then(|n| usize::try_from(n).ok())
                .map(PathSegment::Index),
            _ => None,
        })
        .collect()
}

//! A test OTLP/HTTP receiver for traces.
//!
//! The deploy test (`deploy/compose/ci/`) puts it where the stack's
//! OpenTelemetry Collector would be, and the API tests run it in-process:
//! exporters `POST /v1/traces` as they would to a collector, every span is
//! decoded with the OpenTelemetry protobuf definitions and kept, and
//! `GET /traces/{trace_id}` answers the spans of one trace as JSON, so a
//! test asks "did this request produce spans in router, basket, payment and
//! product, all in one trace?" instead of searching bytes.

use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use prost::Message;
use serde::Serialize;

/// One received span, flattened: enough to check who took part in a trace
/// and how the spans nest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReceivedSpan {
    /// 32 lowercase hex digits, as in `traceparent`.
    pub trace_id: String,
    /// 16 lowercase hex digits.
    pub span_id: String,
    /// Empty for a root span.
    pub parent_span_id: String,
    /// The span's name (`http_request`, `subgraph_request`, …).
    pub name: String,
    /// The resource's `service.name` (`shopgraph-router`, …).
    pub service: String,
}

/// Decodes one OTLP/HTTP protobuf export request into its spans.
pub fn decode(body: &[u8]) -> Result<Vec<ReceivedSpan>, prost::DecodeError> {
    let request = ExportTraceServiceRequest::decode(body)?;
    let mut spans = Vec::new();
    for resource_spans in request.resource_spans {
        let service = resource_spans
            .resource
            .iter()
            .flat_map(|resource| &resource.attributes)
            .find(|attribute| attribute.key == "service.name")
            .and_then(|attribute| attribute.value.as_ref()?.value.as_ref())
            .map(|value| match value {
                Value::StringValue(name) => name.clone(),
                other => format!("{other:?}"),
            })
            .unwrap_or_default();
        for scope_spans in resource_spans.scope_spans {
            for span in scope_spans.spans {
                spans.push(ReceivedSpan {
                    trace_id: hex(&span.trace_id),
                    span_id: hex(&span.span_id),
                    parent_span_id: hex(&span.parent_span_id),
                    name: span.name,
                    service: service.clone(),
                });
            }
        }
    }
    Ok(spans)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

/// Every span received so far.
#[derive(Debug, Clone, Default)]
pub struct Received(Arc<Mutex<Vec<ReceivedSpan>>>);

impl Received {
    /// The spans of one trace, in arrival order.
    pub fn trace(&self, trace_id: &str) -> Vec<ReceivedSpan> {
        let trace_id = trace_id.to_ascii_lowercase();
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .iter()
            .filter(|span| span.trace_id == trace_id)
            .cloned()
            .collect()
    }

    /// Every span that arrived, of every trace (for a failing test's
    /// message).
    pub fn all(&self) -> Vec<ReceivedSpan> {
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    /// How many spans arrived, of every trace.
    pub fn len(&self) -> usize {
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .len()
    }

    /// Whether nothing arrived yet.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn extend(&self, spans: Vec<ReceivedSpan>) {
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .extend(spans);
    }
}

/// `POST /v1/traces` (OTLP/HTTP, protobuf) and `GET /traces/{trace_id}`.
pub fn routes(received: Received) -> axum::Router {
    axum::Router::new()
        .route("/v1/traces", post(export))
        .route("/traces/{trace_id}", get(trace))
        .with_state(received)
}

async fn export(State(received): State<Received>, headers: HeaderMap, body: Bytes) -> Response {
    let protobuf = headers
        .get(header::CONTENT_TYPE)
        .is_some_and(|value| value.as_bytes().starts_with(b"application/x-protobuf"));
    if !protobuf {
        return (
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "this receiver takes OTLP/HTTP protobuf only",
        )
            .into_response();
    }
    match decode(&body) {
        Ok(spans) => {
            received.extend(spans);
            (
                [(header::CONTENT_TYPE, "application/x-protobuf")],
                ExportTraceServiceResponse::default().encode_to_vec(),
            )
                .into_response()
        }
        Err(err) => (
            StatusCode::BAD_REQUEST,
            format!("not an OTLP trace export: {err}"),
        )
            .into_response(),
    }
}

async fn trace(State(received): State<Received>, Path(trace_id): Path<String>) -> Response {
    axum::Json(received.trace(&trace_id)).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue};
    use opentelemetry_proto::tonic::resource::v1::Resource;
    use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};

    #[test]
    fn an_export_decodes_into_spans_with_their_service() {
        let request = ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                resource: Some(Resource {
                    attributes: vec![KeyValue {
                        key: "service.name".into(),
                        value: Some(AnyValue {
                            value: Some(Value::StringValue("shopgraph-router".into())),
                        }),
                    }],
                    ..Resource::default()
                }),
                scope_spans: vec![ScopeSpans {
                    spans: vec![Span {
                        trace_id: vec![0xab; 16],
                        span_id: vec![1; 8],
                        name: "http_request".into(),
                        ..Span::default()
                    }],
                    ..ScopeSpans::default()
                }],
                ..ResourceSpans::default()
            }],
        };
        let spans = decode(&request.encode_to_vec()).expect("decodes");
        assert_eq!(
            spans,
            vec![ReceivedSpan {
                trace_id: "ab".repeat(16),
                span_id: "01".repeat(8),
                parent_span_id: String::new(),
                name: "http_request".into(),
                service: "shopgraph-router".into(),
            }]
        );
        assert!(decode(b"\xff\xff not protobuf").is_err());
    }
}

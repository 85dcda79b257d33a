//! Logs and traces, set up once per process by `main`.
//!
//! Logs go to stdout through `tracing`, as JSON lines (production) or a
//! human format (dev). When `OTEL_EXPORTER_OTLP_ENDPOINT` is set, spans are
//! also exported over OTLP/HTTP, and W3C `traceparent` headers are understood
//! so a trace started by the router continues in the subgraph.

use http::{HeaderMap, HeaderName, HeaderValue};
use opentelemetry::propagation::Injector;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

/// Shape of log lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// One JSON object per line, for log shippers.
    Json,
    /// Coloured, multi-field lines for people.
    Pretty,
}

/// Logging and tracing settings (see [`TelemetrySettings::from_env`]).
#[derive(Debug, Clone)]
pub struct TelemetrySettings {
    /// An `EnvFilter` directive string (`LOG_LEVEL`).
    pub level: String,
    /// Line format (`LOG_FORMAT`).
    pub format: LogFormat,
    /// OTLP/HTTP collector base URL (`OTEL_EXPORTER_OTLP_ENDPOINT`).
    pub otlp_endpoint: Option<String>,
    /// `service.name` resource attribute (`OTEL_SERVICE_NAME`).
    pub service_name: String,
}

/// Why telemetry could not start.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    /// The OTLP exporter could not be built.
    #[error("cannot build the OTLP exporter: {0}")]
    Exporter(#[from] opentelemetry_otlp::ExporterBuildError),
    /// A global subscriber was already installed.
    #[error("tracing is already initialised: {0}")]
    AlreadyInitialised(#[from] tracing_subscriber::util::TryInitError),
}

/// Keeps the trace exporter alive; dropping it flushes pending spans.
#[must_use = "dropping the guard stops trace export"]
pub struct TelemetryGuard {
    provider: Option<SdkTracerProvider>,
}

impl Drop for TelemetryGuard {
    fn drop(&mut self) {
        if let Some(provider) = self.provider.take()
            && let Err(err) = provider.shutdown()
        {
            eprintln!("failed to flush traces: {err}");
        }
    }
}

/// The spans exported over OTLP, whatever `LOG_LEVEL` says: the request,
/// plan and fetch spans are `info`.
const TRACE_LEVEL: &str = "info";

/// Installs the global subscriber. Call exactly once, from `main`.
pub fn init(settings: &TelemetrySettings) -> Result<TelemetryGuard, TelemetryError> {
    // Validated by `TelemetrySettings::from_env`; fall back rather than panic.
    let log_filter = EnvFilter::try_new(&settings.level).unwrap_or_else(|_| EnvFilter::new("info"));
    let fmt_layer = match settings.format {
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .boxed(),
        LogFormat::Pretty => tracing_subscriber::fmt::layer().compact().boxed(),
    }
    .with_filter(log_filter);

    let provider = settings
        .otlp_endpoint
        .as_deref()
        .map(|endpoint| otlp_provider(endpoint, &settings.service_name))
        .transpose()?;
    // Traces have a filter of their own: quieting the logs (`LOG_LEVEL=warn`)
    // must not cut the request spans out of every trace.
    let otel_layer = provider.as_ref().map(|provider| {
        tracing_opentelemetry::layer()
            .with_tracer(provider.tracer("shopgraph"))
            .with_filter(EnvFilter::new(TRACE_LEVEL))
    });
    opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());

    tracing_subscriber::registry()
        .with(fmt_layer)
        .with(otel_layer)
        .try_init()?;
    Ok(TelemetryGuard { provider })
}

fn otlp_provider(endpoint: &str, service_name: &str) -> Result<SdkTracerProvider, TelemetryError> {
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_endpoint(format!("{}/v1/traces", endpoint.trim_end_matches('/')))
        .build()?;
    Ok(SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(
            Resource::builder()
                .with_service_name(service_name.to_owned())
                .build(),
        )
        .build())
}

/// Writes the current tracing span's W3C trace context (`traceparent`,
/// `tracestate`) into `headers` with the global OpenTelemetry propagator, so
/// the called service's spans join the caller's trace. Used for every
/// outgoing call: the router's subgraph fetches and a subgraph's calls to
/// another.
pub fn inject_trace_context(headers: &mut HeaderMap) {
    let context = tracing::Span::current().context();
    opentelemetry::global::get_text_map_propagator(|propagator| {
        propagator.inject_context(&context, &mut HeaderInjector(headers));
    });
}

struct HeaderInjector<'a>(&'a mut HeaderMap);

impl Injector for HeaderInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(key.as_bytes()),
            HeaderValue::from_str(&value),
        ) {
            self.0.insert(name, value);
        }
    }
}

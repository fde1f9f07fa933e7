//! Traces: the `tracing` spans of target [`TARGET`] become OpenTelemetry spans, exported over
//! OTLP/gRPC (`otlp_endpoint`) and/or appended to a JSON-lines file (`trace_file`); with neither
//! configured no OpenTelemetry layer is installed and nothing is exported (the spans still give
//! log lines their fields). The W3C trace context (`traceparent`, `tracestate`) travels in gRPC
//! metadata ([`inject`], [`extract`]); a batch call carries each message's context as well
//! ([`inject_each`], [`extract_each`]).
//!
//! Spans are handed to a batch processor (its own thread) and exported every few seconds;
//! [`Telemetry::shutdown`] flushes what is queued on a graceful stop. A process killed with
//! SIGKILL loses the spans still queued (at most the last few seconds').

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime};

use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry::trace::{
    SpanContext, SpanId, SpanKind, Status, TraceContextExt, TraceFlags, TraceId, TraceState,
    TracerProvider as _,
};
use opentelemetry::{Context, Value};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::{OTelSdkError, OTelSdkResult};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{SdkTracerProvider, SpanData, SpanExporter};
use tonic::metadata::{MetadataKey, MetadataMap, MetadataValue};
use tracing_subscriber::filter::{EnvFilter, Targets};
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::{Layer, Registry};

use crate::config::LogFormat;

/// The target of the spans that are exported: one per protocol step, delivery attempt or
/// application, each with its `transfer_id`. Other spans and every event stay in the logs.
pub const TARGET: &str = "yibao::trace";

/// The metadata key of a batch call's per-message contexts: 25 bytes a message (trace id, span
/// id, flags), in the batch's order, all zero for a message without one.
pub const BATCH_CONTEXTS: &str = "yibao-trace-contexts-bin";

/// The most per-message contexts one batch call carries (8 KB of the peer's 16 KB header
/// budget); later messages of a larger batch go without, and their receiver starts from what
/// it stored for the transfer.
pub const MAX_BATCH_CONTEXTS: usize = 320;

/// Bytes of one per-message context record.
const RECORD: usize = 25;

static ENABLED: AtomicBool = AtomicBool::new(false);

/// Whether traces are exported: only then are contexts read, stored and propagated.
pub fn enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

/// Where traces go.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TraceExport {
    /// The service name every span carries (the bureau's role).
    pub service_name: String,
    /// An OTLP/gRPC collector, e.g. `http://127.0.0.1:4317`.
    pub otlp_endpoint: Option<String>,
    /// A file finished spans are appended to, one JSON object a line.
    pub trace_file: Option<PathBuf>,
}

/// Why traces could not be set up.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TelemetryError {
    /// The trace file could not be opened for appending.
    #[error("trace_file {path}: {source}")]
    TraceFile {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The OTLP exporter could not be built.
    #[error("otlp_endpoint {endpoint}: {message}")]
    Otlp {
        /// The endpoint.
        endpoint: String,
        /// Why.
        message: String,
    },
}

/// The installed exporters; [`Telemetry::shutdown`] flushes them.
#[derive(Debug, Default)]
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

impl Telemetry {
    /// Exports what is queued and stops the exporters (graceful shutdown).
    pub fn shutdown(self) {
        if let Some(provider) = self.provider
            && let Err(error) = provider.shutdown()
        {
            eprintln!("traces: flushing at shutdown failed: {error}");
        }
    }
}

/// Installs the global subscriber: logs filtered by `RUST_LOG` (default `info`) as text or
/// JSON, and — when `export` names an OTLP endpoint or a trace file — the spans of [`TARGET`]
/// as OpenTelemetry spans. Must run inside a Tokio runtime when OTLP is configured. A second
/// call leaves the first subscriber in place (and exports nothing more).
///
/// # Errors
/// If the trace file cannot be opened or the OTLP exporter cannot be built.
pub fn init(format: LogFormat, export: &TraceExport) -> Result<Telemetry, TelemetryError> {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let logs = match format {
        LogFormat::Text => tracing_subscriber::fmt::layer().with_filter(filter).boxed(),
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .json()
            .with_filter(filter)
            .boxed(),
    };
    let provider = provider(export)?;
    let mut layers: Vec<Box<dyn Layer<Registry> + Send + Sync>> = vec![logs];
    if let Some(provider) = &provider {
        let spans = tracing_opentelemetry::layer()
            .with_tracer(provider.tracer("yibao"))
            .with_location(false)
            .with_threads(false)
            .with_tracked_inactivity(false)
            .with_filter(Targets::new().with_target(TARGET, tracing::Level::TRACE));
        layers.push(spans.boxed());
    }
    let installed = Registry::default().with(layers).try_init().is_ok();
    if !installed {
        // A subscriber was there first (a test harness's): keep it, export nothing.
        return Ok(Telemetry::default());
    }
    ENABLED.store(provider.is_some(), Ordering::Relaxed);
    Ok(Telemetry { provider })
}

/// The tracer provider of the configured exporters; none when nothing is configured.
fn provider(export: &TraceExport) -> Result<Option<SdkTracerProvider>, TelemetryError> {
    if export.otlp_endpoint.is_none() && export.trace_file.is_none() {
        return Ok(None);
    }
    let resource = Resource::builder()
        .with_service_name(export.service_name.clone())
        .build();
    let mut builder = SdkTracerProvider::builder().with_resource(resource);
    if let Some(path) = &export.trace_file {
        let file = JsonLinesExporter::open(path, &export.service_name)?;
        builder = builder.with_batch_exporter(file);
    }
    if let Some(endpoint) = &export.otlp_endpoint {
        use opentelemetry_otlp::WithExportConfig as _;
        let otlp = opentelemetry_otlp::SpanExporter::builder()
            .with_tonic()
            .with_endpoint(endpoint.clone())
            .build()
            .map_err(|error| TelemetryError::Otlp {
                endpoint: endpoint.clone(),
                message: error.to_string(),
            })?;
        builder = builder.with_batch_exporter(otlp);
    }
    Ok(Some(builder.build()))
}

/// Appends finished spans to a file, one JSON object a line: `trace_id`, `span_id`,
/// `parent_span_id` (null for a root), `parent_is_remote`, `name`, `kind`, `service`,
/// `start_unix_nano`, `end_unix_nano`, `status` and `attributes` (`transfer_id` among them).
#[derive(Debug)]
pub struct JsonLinesExporter {
    file: Mutex<std::fs::File>,
    service: String,
}

impl JsonLinesExporter {
    /// Opens `path` for appending (created if missing).
    ///
    /// # Errors
    /// If it cannot be opened.
    pub fn open(path: &Path, service: &str) -> Result<Self, TelemetryError> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|source| TelemetryError::TraceFile {
                path: path.to_owned(),
                source,
            })?;
        Ok(Self {
            file: Mutex::new(file),
            service: service.to_owned(),
        })
    }

    /// One span's line, without the newline.
    pub fn line(&self, span: &SpanData) -> String {
        let context = &span.span_context;
        let parent =
            (span.parent_span_id != SpanId::INVALID).then(|| span.parent_span_id.to_string());
        let attributes: serde_json::Map<String, serde_json::Value> = span
            .attributes
            .iter()
            .map(|kv| (kv.key.to_string(), json_value(&kv.value)))
            .collect();
        let status = match &span.status {
            Status::Unset => "unset".to_owned(),
            Status::Ok => "ok".to_owned(),
            Status::Error { description } => format!("error: {description}"),
        };
        serde_json::json!({
            "trace_id": context.trace_id().to_string(),
            "span_id": context.span_id().to_string(),
            "parent_span_id": parent,
            "parent_is_remote": span.parent_span_is_remote,
            "name": span.name,
            "kind": kind_name(&span.span_kind),
            "service": self.service,
            "start_unix_nano": unix_nanos(span.start_time),
            "end_unix_nano": unix_nanos(span.end_time),
            "status": status,
            "attributes": attributes,
        })
        .to_string()
    }
}

impl SpanExporter for JsonLinesExporter {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        let mut text = String::with_capacity(batch.len() * 400);
        for span in &batch {
            let _ = writeln!(text, "{}", self.line(span));
        }
        let mut file = self
            .file
            .lock()
            .map_err(|_| OTelSdkError::InternalFailure("trace file lock poisoned".to_owned()))?;
        // One write for the batch: lines of one batch are never interleaved with another's.
        file.write_all(text.as_bytes())
            .map_err(|error| OTelSdkError::InternalFailure(error.to_string()))
    }

    fn force_flush(&self) -> OTelSdkResult {
        let mut file = self
            .file
            .lock()
            .map_err(|_| OTelSdkError::InternalFailure("trace file lock poisoned".to_owned()))?;
        file.flush()
            .map_err(|error| OTelSdkError::InternalFailure(error.to_string()))
    }

    fn shutdown_with_timeout(&self, _timeout: Duration) -> OTelSdkResult {
        self.force_flush()
    }
}

fn kind_name(kind: &SpanKind) -> &'static str {
    match kind {
        SpanKind::Client => "client",
        SpanKind::Server => "server",
        SpanKind::Producer => "producer",
        SpanKind::Consumer => "consumer",
        SpanKind::Internal => "internal",
    }
}

fn unix_nanos(at: SystemTime) -> u128 {
    at.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |since| since.as_nanos())
}

fn json_value(value: &Value) -> serde_json::Value {
    match value {
        Value::Bool(b) => serde_json::Value::Bool(*b),
        Value::I64(i) => serde_json::Value::from(*i),
        Value::F64(f) => serde_json::Value::from(*f),
        other => serde_json::Value::String(other.to_string()),
    }
}

/// gRPC metadata as a carrier of trace context (the W3C propagator writes and reads it).
struct Metadata<'a>(&'a mut MetadataMap);

impl Injector for Metadata<'_> {
    fn set(&mut self, key: &str, value: String) {
        if let (Ok(key), Ok(value)) = (
            MetadataKey::from_bytes(key.as_bytes()),
            MetadataValue::try_from(value.as_str()),
        ) {
            self.0.insert(key, value);
        }
    }
}

/// Read-only gRPC metadata as a carrier.
struct ReadMetadata<'a>(&'a MetadataMap);

impl Extractor for ReadMetadata<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|value| value.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0
            .keys()
            .filter_map(|key| match key {
                tonic::metadata::KeyRef::Ascii(key) => Some(key.as_str()),
                tonic::metadata::KeyRef::Binary(_) => None,
            })
            .collect()
    }
}

/// Writes `cx`'s span context as `traceparent` (and `tracestate`) into `metadata`; nothing for
/// a context without a valid span.
pub fn inject(cx: &Context, metadata: &mut MetadataMap) {
    TraceContextPropagator::new().inject_context(cx, &mut Metadata(metadata));
}

/// The remote context `metadata`'s `traceparent` names; an empty context when it names none
/// (or an invalid one).
pub fn extract(metadata: &MetadataMap) -> Context {
    TraceContextPropagator::new().extract(&ReadMetadata(metadata))
}

/// A context as the W3C headers write it: (`traceparent`, `tracestate`), or none.
pub fn headers_of(cx: &Context) -> Option<(String, String)> {
    let mut map = std::collections::HashMap::new();
    TraceContextPropagator::new().inject_context(cx, &mut map);
    let traceparent = map.remove("traceparent")?;
    Some((traceparent, map.remove("tracestate").unwrap_or_default()))
}

/// The remote context W3C headers name; an empty context when `traceparent` is not valid.
pub fn context_of(traceparent: &str, tracestate: &str) -> Context {
    let mut map = std::collections::HashMap::new();
    map.insert("traceparent".to_owned(), traceparent.to_owned());
    if !tracestate.is_empty() {
        map.insert("tracestate".to_owned(), tracestate.to_owned());
    }
    TraceContextPropagator::new().extract(&map)
}

/// Writes each message's context of a batch call: `traceparent` is the first message's, and
/// [`BATCH_CONTEXTS`] holds every message's (up to [`MAX_BATCH_CONTEXTS`]) when there is more
/// than one. Nothing when no message has a context.
pub fn inject_each(contexts: &[Context], metadata: &mut MetadataMap) {
    let Some(first) = contexts.first() else {
        return;
    };
    inject(first, metadata);
    let valid = |cx: &Context| cx.span().span_context().is_valid();
    if contexts.len() < 2 || !contexts.iter().any(valid) {
        return;
    }
    let mut bytes = Vec::with_capacity(contexts.len().min(MAX_BATCH_CONTEXTS) * RECORD);
    for cx in contexts.iter().take(MAX_BATCH_CONTEXTS) {
        let span = cx.span();
        let context = span.span_context();
        if context.is_valid() {
            bytes.extend_from_slice(&context.trace_id().to_bytes());
            bytes.extend_from_slice(&context.span_id().to_bytes());
            bytes.push(context.trace_flags().to_u8());
        } else {
            bytes.extend_from_slice(&[0; RECORD]);
        }
    }
    metadata.insert_bin(BATCH_CONTEXTS, MetadataValue::from_bytes(&bytes));
}

/// Each message's remote context of a batch call of `count` messages, in order: from
/// [`BATCH_CONTEXTS`], or for a batch of one from `traceparent`; an empty context for a message
/// the call carries none for.
pub fn extract_each(metadata: &MetadataMap, count: usize) -> Vec<Context> {
    if count == 1 {
        return vec![extract(metadata)];
    }
    let bytes = metadata
        .get_bin(BATCH_CONTEXTS)
        .and_then(|value| value.to_bytes().ok())
        .unwrap_or_default();
    (0..count)
        .map(|index| {
            bytes
                .get(index * RECORD..(index + 1) * RECORD)
                .map_or_else(Context::new, remote_context)
        })
        .collect()
}

/// The remote context of one 25-byte record; empty when it is not a valid one.
fn remote_context(record: &[u8]) -> Context {
    let mut trace = [0_u8; 16];
    let mut span = [0_u8; 8];
    trace.copy_from_slice(&record[..16]);
    span.copy_from_slice(&record[16..24]);
    let context = SpanContext::new(
        TraceId::from_bytes(trace),
        SpanId::from_bytes(span),
        TraceFlags::new(record[24]),
        true,
        TraceState::default(),
    );
    if context.is_valid() {
        Context::new().with_remote_span_context(context)
    } else {
        Context::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TRACEPARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    fn span_context(cx: &Context) -> SpanContext {
        cx.span().span_context().clone()
    }

    #[test]
    fn a_traceparent_goes_into_metadata_and_comes_back_out() {
        let cx = context_of(TRACEPARENT, "vendor=1");
        let mut metadata = MetadataMap::new();
        inject(&cx, &mut metadata);
        assert_eq!(
            metadata.get("traceparent").and_then(|v| v.to_str().ok()),
            Some(TRACEPARENT)
        );
        assert_eq!(
            metadata.get("tracestate").and_then(|v| v.to_str().ok()),
            Some("vendor=1")
        );
        let back = span_context(&extract(&metadata));
        assert!(back.is_remote());
        assert_eq!(
            back.trace_id().to_string(),
            "4bf92f3577b34da6a3ce929d0e0e4736"
        );
        assert_eq!(back.span_id().to_string(), "00f067aa0ba902b7");
        assert_eq!(
            headers_of(&extract(&metadata)).map(|h| h.0).as_deref(),
            Some(TRACEPARENT)
        );
    }

    #[test]
    fn no_or_a_broken_traceparent_is_no_context() {
        assert!(!span_context(&extract(&MetadataMap::new())).is_valid());
        assert!(!span_context(&context_of("00-zz-00f067aa0ba902b7-01", "")).is_valid());
        let all_zero = "00-00000000000000000000000000000000-00f067aa0ba902b7-01";
        assert!(!span_context(&context_of(all_zero, "")).is_valid());
        assert_eq!(headers_of(&Context::new()), None);
    }

    #[test]
    fn a_batch_carries_each_messages_context_in_order() {
        let other = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
        let contexts = [
            context_of(TRACEPARENT, ""),
            Context::new(),
            context_of(other, ""),
        ];
        let mut metadata = MetadataMap::new();
        inject_each(&contexts, &mut metadata);
        let back = extract_each(&metadata, 3);
        let ids: Vec<String> = back
            .iter()
            .map(|cx| span_context(cx).trace_id().to_string())
            .collect();
        assert_eq!(
            ids,
            [
                "4bf92f3577b34da6a3ce929d0e0e4736",
                "00000000000000000000000000000000",
                "0af7651916cd43dd8448eb211c80319c"
            ]
        );
        assert_eq!(
            span_context(&back[2]).span_id().to_string(),
            "b7ad6b7169203331"
        );
        assert!(span_context(&back[2]).is_sampled());
        // The call's own traceparent is the first message's, for any standard middleware.
        assert_eq!(
            metadata.get("traceparent").and_then(|v| v.to_str().ok()),
            Some(TRACEPARENT)
        );
    }

    #[test]
    fn a_batch_of_one_uses_traceparent_and_a_larger_batch_is_bounded() {
        let mut metadata = MetadataMap::new();
        inject_each(&[context_of(TRACEPARENT, "")], &mut metadata);
        assert!(metadata.get_bin(BATCH_CONTEXTS).is_none());
        assert!(span_context(&extract_each(&metadata, 1)[0]).is_valid());

        let many = vec![context_of(TRACEPARENT, ""); MAX_BATCH_CONTEXTS + 5];
        let mut metadata = MetadataMap::new();
        inject_each(&many, &mut metadata);
        let back = extract_each(&metadata, many.len());
        assert!(span_context(&back[MAX_BATCH_CONTEXTS - 1]).is_valid());
        assert!(!span_context(&back[MAX_BATCH_CONTEXTS]).is_valid());
        // A batch call from a bureau that sends no contexts: every message goes without.
        assert!(
            extract_each(&MetadataMap::new(), 4)
                .iter()
                .all(|cx| !span_context(cx).is_valid())
        );
    }

    #[test]
    fn a_finished_span_is_one_json_line_with_its_links_and_transfer_id() {
        let directory = tempfile::tempdir().expect("temporary directory");
        let path = directory.path().join("spans.jsonl");
        let exporter = JsonLinesExporter::open(&path, "transfer-in").expect("opened");
        let provider = SdkTracerProvider::builder()
            .with_simple_exporter(exporter)
            .build();
        let tracer = provider.tracer("test");
        let parent = context_of(TRACEPARENT, "");
        {
            use opentelemetry::trace::{Span as _, Tracer as _};
            let mut span = tracer.start_with_context("receive form", &parent);
            span.set_attribute(opentelemetry::KeyValue::new("transfer_id", "T1"));
            span.end();
        }
        provider.shutdown().expect("flushed");
        let text = std::fs::read_to_string(&path).expect("written");
        let line: serde_json::Value = serde_json::from_str(text.trim()).expect("one JSON line");
        assert_eq!(line["trace_id"], "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(line["parent_span_id"], "00f067aa0ba902b7");
        assert_eq!(line["parent_is_remote"], true);
        assert_eq!(line["name"], "receive form");
        assert_eq!(line["service"], "transfer-in");
        assert_eq!(line["attributes"]["transfer_id"], "T1");
        assert_eq!(line["span_id"].as_str().map(str::len), Some(16));
    }
}

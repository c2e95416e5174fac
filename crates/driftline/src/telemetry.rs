//! OpenTelemetry trace export. When `OTEL_EXPORTER_OTLP_ENDPOINT` (or
//! `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) is set, driftline's spans (each prediction and its
//! steps, each ingest batch and checkpoint) go to that OTLP receiver over HTTP/protobuf.
//! The SDK reads the other standard variables itself: `OTEL_SERVICE_NAME`,
//! `OTEL_RESOURCE_ATTRIBUTES`, `OTEL_EXPORTER_OTLP_{,TRACES_}HEADERS` and `_TIMEOUT`,
//! `OTEL_TRACES_SAMPLER` and `_ARG`, `OTEL_BSP_*`. `OTEL_SDK_DISABLED=true` or
//! `OTEL_TRACES_EXPORTER=none` turn export off.
//!
//! Key decision: no endpoint, no layer. Without export the spans are disabled at their
//! callsites, which costs one cached check each. With export, finished spans go onto the
//! batch span processor's bounded queue (never waited for) and the SDK's own thread posts
//! them with a blocking HTTP client, so the request path never touches the network.
//! `Telemetry::shutdown` flushes what is queued. The queue holds at most
//! `OTEL_BSP_MAX_QUEUE_SIZE` spans (default 2,048) waiting, batched or being posted; a span
//! finished beyond that is dropped and counted in `driftline_trace_spans_dropped_total`
//! ([`ExportQueue`]), where the SDK alone would only log the first drop.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use anyhow::{Context, bail};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{
    BatchConfigBuilder, BatchSpanProcessor, OTEL_BSP_MAX_QUEUE_SIZE_DEFAULT, SdkTracerProvider, SpanData,
    SpanExporter, SpanProcessor,
};
use tracing::Level;
use tracing_subscriber::Layer;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::registry::LookupSpan;

/// The spans exported: driftline's own, at debug and above (they are debug so that logs
/// at the default level never pay for them).
const EXPORTED_TARGETS: &str = "driftline";

/// The export pipeline, when one runs; flush it with [`Telemetry::shutdown`] before exit.
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

impl Telemetry {
    /// Nothing exported.
    pub fn off() -> Self {
        Telemetry { provider: None }
    }

    /// Exports what is still queued (bounded by the SDK's five-second shutdown timeout)
    /// and stops the exporter.
    pub fn shutdown(self) {
        if let Some(provider) = self.provider
            && let Err(error) = provider.shutdown()
        {
            tracing::warn!(%error, "flushing traces at exit");
        }
    }
}

/// A tracing layer chosen at run time.
pub type BoxedLayer<S> = Box<dyn Layer<S> + Send + Sync>;

/// The OpenTelemetry layer and its pipeline when the environment asks for export, else
/// `None`; an error names the variable that cannot be honoured.
pub fn layer<S>() -> anyhow::Result<Option<(BoxedLayer<S>, Telemetry)>>
where
    S: tracing::Subscriber + for<'a> LookupSpan<'a> + Send + Sync,
{
    let Some(endpoint) = export_endpoint()? else {
        return Ok(None);
    };
    check_protocol()?;
    let capacity = queue_capacity()?;
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .build()
        .with_context(|| format!("building the OTLP trace exporter for {endpoint}"))?;
    let queue = Arc::new(ExportQueue::new(
        capacity,
        &driftline_serve::metrics::TRACE_SPANS_DROPPED,
    ));
    let exporter = ReleasingExporter {
        inner: exporter,
        queue: queue.clone(),
    };
    // The SDK's own channel is as large as the queue, so it never fills before ours does.
    let config = BatchConfigBuilder::default()
        .with_max_queue_size(capacity)
        .build();
    let batches = BatchSpanProcessor::builder(exporter)
        .with_batch_config(config)
        .build();
    let provider = SdkTracerProvider::builder()
        .with_span_processor(BoundedProcessor {
            inner: batches,
            queue,
        })
        .with_resource(resource())
        .build();
    let tracer = provider.tracer("driftline");
    let layer = tracing_opentelemetry::layer()
        .with_tracer(tracer)
        .with_tracked_inactivity(false)
        .with_threads(false)
        .with_location(false)
        .with_context_activation(false)
        .with_filter(Targets::new().with_target(EXPORTED_TARGETS, Level::DEBUG));
    Ok(Some((
        Box::new(layer),
        Telemetry {
            provider: Some(provider),
        },
    )))
}

/// The endpoint traces go to, when export is asked for and not turned off.
fn export_endpoint() -> anyhow::Result<Option<String>> {
    let disabled = env("OTEL_SDK_DISABLED").is_some_and(|v| v.eq_ignore_ascii_case("true"))
        || env("OTEL_TRACES_EXPORTER").is_some_and(|v| v.eq_ignore_ascii_case("none"));
    let variable = [
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
        "OTEL_EXPORTER_OTLP_ENDPOINT",
    ]
    .into_iter()
    .find_map(|name| env(name).map(|value| (name, value)));
    let Some((name, endpoint)) = variable.filter(|_| !disabled) else {
        return Ok(None);
    };
    if !endpoint.starts_with("http://") {
        bail!(
            "{name}={endpoint}: this build exports over plain http:// only (to an OpenTelemetry \
             Collector beside driftline, which can forward with TLS)"
        );
    }
    if let Some(exporter) = env("OTEL_TRACES_EXPORTER").filter(|v| v != "otlp") {
        bail!("OTEL_TRACES_EXPORTER={exporter}: only otlp (or none) is supported");
    }
    Ok(Some(endpoint))
}

/// Only `http/protobuf` is built in; gRPC and JSON are refused rather than silently
/// replaced (a gRPC endpoint would not understand the requests).
fn check_protocol() -> anyhow::Result<()> {
    for name in [
        "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
        "OTEL_EXPORTER_OTLP_PROTOCOL",
    ] {
        if let Some(protocol) = env(name) {
            if protocol != "http/protobuf" {
                bail!("{name}={protocol}: only http/protobuf is supported by this build");
            }
            return Ok(());
        }
    }
    Ok(())
}

/// `OTEL_BSP_MAX_QUEUE_SIZE`: how many finished spans may wait for export.
fn queue_capacity() -> anyhow::Result<usize> {
    let Some(value) = env("OTEL_BSP_MAX_QUEUE_SIZE") else {
        return Ok(OTEL_BSP_MAX_QUEUE_SIZE_DEFAULT);
    };
    match value.trim().parse::<usize>() {
        Ok(capacity) if capacity > 0 => Ok(capacity),
        _ => bail!("OTEL_BSP_MAX_QUEUE_SIZE={value}: must be a whole number of spans, at least 1"),
    }
}

/// The places for spans waiting for export: taken when a span finishes, given back once
/// its batch has been posted (or has failed). Full, a span is dropped and counted.
#[derive(Debug)]
struct ExportQueue {
    capacity: usize,
    waiting: AtomicUsize,
    dropped: &'static AtomicU64,
}

impl ExportQueue {
    fn new(capacity: usize, dropped: &'static AtomicU64) -> Self {
        ExportQueue {
            capacity,
            waiting: AtomicUsize::new(0),
            dropped,
        }
    }

    /// Takes a place for one span; `false`, and the drop counted, when none is free.
    fn admit(&self) -> bool {
        if self.waiting.fetch_add(1, Ordering::AcqRel) < self.capacity {
            return true;
        }
        self.waiting.fetch_sub(1, Ordering::AcqRel);
        self.dropped.fetch_add(1, Ordering::Relaxed);
        false
    }

    /// Places held by a batch being posted, given back when it is dropped (also when an
    /// export is abandoned half-way).
    fn held(&self, spans: usize) -> HeldPlaces<'_> {
        HeldPlaces { queue: self, spans }
    }
}

struct HeldPlaces<'a> {
    queue: &'a ExportQueue,
    spans: usize,
}

impl Drop for HeldPlaces<'_> {
    fn drop(&mut self) {
        self.queue.waiting.fetch_sub(self.spans, Ordering::AcqRel);
    }
}

/// The batch span processor, behind the [`ExportQueue`]'s admission.
#[derive(Debug)]
struct BoundedProcessor {
    inner: BatchSpanProcessor,
    queue: Arc<ExportQueue>,
}

impl SpanProcessor for BoundedProcessor {
    fn on_start(&self, span: &mut opentelemetry_sdk::trace::Span, context: &opentelemetry::Context) {
        self.inner.on_start(span, context);
    }

    fn on_end(&self, span: SpanData) {
        if self.queue.admit() {
            self.inner.on_end(span);
        }
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.inner.set_resource(resource);
    }
}

/// The OTLP exporter, giving the [`ExportQueue`] its places back as each batch is done.
#[derive(Debug)]
struct ReleasingExporter<E> {
    inner: E,
    queue: Arc<ExportQueue>,
}

impl<E: SpanExporter> SpanExporter for ReleasingExporter<E> {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        let _held = self.queue.held(batch.len());
        self.inner.export(batch).await
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.inner.set_resource(resource);
    }
}

/// The SDK's resource (service name and attributes from the environment), named
/// `driftline` unless the environment names it.
fn resource() -> Resource {
    let detected = Resource::builder().build();
    let has = |key: &'static str| detected.get(&opentelemetry::Key::new(key));
    let mut builder = Resource::builder();
    if has("service.name").is_none_or(|name| name.as_str().starts_with("unknown_service")) {
        builder = builder.with_service_name("driftline");
    }
    if has("service.version").is_none() {
        builder = builder.with_attribute(opentelemetry::KeyValue::new(
            "service.version",
            env!("CARGO_PKG_VERSION"),
        ));
    }
    builder.build()
}

/// A variable's value, `None` when unset or empty (as the OpenTelemetry spec reads them).
fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|value| !value.trim().is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_export_queue_drops_and_counts_spans_until_a_batch_is_posted() {
        static DROPPED: AtomicU64 = AtomicU64::new(0);
        let queue = ExportQueue::new(2, &DROPPED);
        assert!(queue.admit() && queue.admit());
        assert!(!queue.admit());
        assert!(!queue.admit());
        assert_eq!(DROPPED.load(Ordering::Relaxed), 2);

        let posted = queue.held(2);
        assert!(!queue.admit(), "places come back only when the batch is done");
        drop(posted);
        assert!(queue.admit());
        assert_eq!(DROPPED.load(Ordering::Relaxed), 3);
    }
}

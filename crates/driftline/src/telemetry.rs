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
//! batch span processor's bounded queue (full: dropped and counted by the SDK, never
//! waited for) and the SDK's own thread posts them with a blocking HTTP client, so the
//! request path never touches the network. `Telemetry::shutdown` flushes what is queued.

use anyhow::{Context, bail};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::SdkTracerProvider;
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
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .build()
        .with_context(|| format!("building the OTLP trace exporter for {endpoint}"))?;
    let provider = SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
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

//! Diagnostics on stderr: compact text for people (the default), or one JSON object per
//! line for log pipelines (`--log-format json`, env `DRIFTLINE_LOG_FORMAT=json`).
//!
//! Key decision: a JSON line is flat, `timestamp`, `level`, `target`, `message`, then the
//! event's own fields, and, inside a span that traces record, its `span`, `trace_id` and
//! `span_id`, so a log line leads to its trace. Those ids come from the OpenTelemetry layer
//! rather than from log-level spans: logs at the default level pay nothing for spans.
//! Hot paths log nothing per request at info: a line is a meaningful event (a model
//! loaded, a rollout step, a failure), and per-request facts are metrics and spans.

use std::fmt;
use std::sync::{Arc, OnceLock};

use opentelemetry::trace::TraceContextExt;
use serde_json::{Map, Value};
use tracing::dispatcher::WeakDispatch;
use tracing::field::{Field, Visit};
use tracing::{Dispatch, Event, Subscriber};
use tracing_subscriber::Layer;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

/// How log lines are written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// One compact, human-readable line per event.
    #[default]
    Text,
    /// One JSON object per event: timestamp, level, target, message, fields, trace ids.
    Json,
}

/// The layer writing log lines to stderr in `format`; `json` is the JSON format to use
/// (bound to the dispatcher once built).
pub fn layer<S>(format: LogFormat, json: &JsonLines) -> Box<dyn Layer<S> + Send + Sync>
where
    S: Subscriber + for<'a> LookupSpan<'a> + Send + Sync,
{
    let lines = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    match format {
        LogFormat::Text => Box::new(lines.with_target(false).compact()),
        LogFormat::Json => Box::new(lines.event_format(json.clone())),
    }
}

/// Names the line's own keys take; an event field of the same name is written `field.NAME`.
const RESERVED: [&str; 7] = [
    "timestamp",
    "level",
    "target",
    "message",
    "span",
    "trace_id",
    "span_id",
];

/// The JSON line format. It finds the current span and its trace ids through the
/// dispatcher it was installed in, given by [`JsonLines::bind`] once that is built: while
/// an event is being dispatched, the current dispatcher cannot be asked for.
#[derive(Clone, Default)]
pub struct JsonLines {
    dispatch: Arc<OnceLock<WeakDispatch>>,
}

impl JsonLines {
    /// Tells the format which dispatcher it writes for.
    pub fn bind(&self, dispatch: &Dispatch) {
        let _ = self.dispatch.set(dispatch.downgrade());
    }
}

impl<S, N> FormatEvent<S, N> for JsonLines
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        _: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let metadata = event.metadata();
        let mut line = Map::new();
        let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
        line.insert("timestamp".into(), now.into());
        line.insert("level".into(), metadata.level().as_str().into());
        line.insert("target".into(), metadata.target().into());
        // Keeps `message` in fourth place; the event's message, if any, replaces it.
        line.insert("message".into(), "".into());
        event.record(&mut Fields(&mut line));
        // The SDK's own events may come from inside its span bookkeeping: never look up
        // spans for them.
        let dispatch = self.dispatch.get().and_then(WeakDispatch::upgrade);
        if let Some(dispatch) = dispatch.filter(|_| event.is_contextual())
            && !metadata.target().starts_with("opentelemetry")
        {
            insert_trace(&dispatch, &mut line);
        }
        writeln!(writer, "{}", Value::Object(line))
    }
}

/// The current span's name and, when traces record it, its trace and span ids.
fn insert_trace(dispatch: &Dispatch, line: &mut Map<String, Value>) {
    let current = dispatch.current_span();
    let (Some(id), Some(metadata)) = (current.id(), current.metadata()) else {
        return;
    };
    line.insert("span".into(), metadata.name().into());
    let Some(context) = tracing_opentelemetry::get_otel_context(id, dispatch) else {
        return;
    };
    let span = context.span();
    let ids = span.span_context();
    if ids.is_valid() {
        line.insert("trace_id".into(), format!("{:032x}", ids.trace_id()).into());
        line.insert("span_id".into(), format!("{:016x}", ids.span_id()).into());
    }
}

/// Writes an event's fields into the line, typed where JSON has the type.
struct Fields<'a>(&'a mut Map<String, Value>);

impl Fields<'_> {
    fn put(&mut self, field: &Field, value: Value) {
        let name = field.name();
        let key = if name == "message" || !RESERVED.contains(&name) {
            name.to_string()
        } else {
            format!("field.{name}")
        };
        self.0.insert(key, value);
    }
}

impl Visit for Fields<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.put(field, format!("{value:?}").into());
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.put(field, value.into());
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.put(field, value.into());
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.put(field, value.into());
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        self.put(field, value.into());
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.put(field, value.into());
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.put(field, value.to_string().into());
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::sync::{Arc, Mutex};

    use tracing_subscriber::layer::SubscriberExt;

    use super::*;

    /// A writer the test reads back.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl Write for Captured {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// The lines `emit` logs through the JSON format, with an OpenTelemetry layer when
    /// `traced`, and what `emit` returned.
    fn json_lines<T>(traced: bool, emit: impl FnOnce() -> T) -> (Vec<Map<String, Value>>, T) {
        use opentelemetry::trace::TracerProvider as _;

        let captured = Captured::default();
        let writer = captured.clone();
        let json = JsonLines::default();
        let logs = tracing_subscriber::fmt::layer()
            .with_writer(move || writer.clone())
            .event_format(json.clone());
        let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder().build();
        let otel = traced.then(|| tracing_opentelemetry::layer().with_tracer(provider.tracer("test")));
        let dispatch = Dispatch::new(tracing_subscriber::registry().with(otel).with(logs));
        json.bind(&dispatch);
        let returned = tracing::dispatcher::with_default(&dispatch, emit);
        let text = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
        let lines = text
            .lines()
            .map(|line| match serde_json::from_str(line) {
                Ok(Value::Object(object)) => object,
                other => panic!("not a JSON object: {line} ({other:?})"),
            })
            .collect();
        (lines, returned)
    }

    #[test]
    fn each_event_is_one_json_object_with_level_target_message_and_typed_fields() {
        let (lines, ()) = json_lines(false, || {
            tracing::info!(version = 3, ratio = 0.25, canary = true, reason = %"a \"quoted\"\nline", "champion loaded");
            tracing::warn!(target: "driftline::custom", timestamp = "mine", "field names that clash");
            tracing::error!(error = &std::io::Error::other("disk full") as &dyn std::error::Error);
        });
        assert_eq!(lines.len(), 3);
        let first = &lines[0];
        assert_eq!(
            first.keys().take(4).collect::<Vec<_>>(),
            ["timestamp", "level", "target", "message"]
        );
        assert_eq!(first["level"], "INFO");
        assert_eq!(first["target"], module_path!());
        assert_eq!(first["message"], "champion loaded");
        assert_eq!(first["version"], 3);
        assert_eq!(first["ratio"], 0.25);
        assert_eq!(first["canary"], true);
        assert_eq!(first["reason"], "a \"quoted\"\nline");
        assert!(chrono::DateTime::parse_from_rfc3339(first["timestamp"].as_str().unwrap()).is_ok());

        assert_eq!(lines[1]["target"], "driftline::custom");
        assert_eq!(lines[1]["field.timestamp"], "mine");
        assert_ne!(lines[1]["timestamp"], "mine");

        assert_eq!(lines[2]["level"], "ERROR");
        assert_eq!(lines[2]["message"], "");
        assert_eq!(lines[2]["error"], "disk full");
    }

    #[test]
    fn a_line_inside_a_span_names_it_and_has_no_trace_ids_without_a_tracer() {
        let (lines, ()) = json_lines(false, || {
            let span = tracing::info_span!("predict");
            let _entered = span.enter();
            tracing::info!("inside");
        });
        assert_eq!(lines[0]["span"], "predict");
        assert!(!lines[0].contains_key("trace_id"));
    }

    #[test]
    fn a_line_inside_a_traced_span_carries_its_trace_and_span_ids() {
        use tracing_opentelemetry::OpenTelemetrySpanExt;

        let (lines, ids) = json_lines(true, || {
            tracing::info!("outside any span");
            let span = tracing::debug_span!("ingest_batch");
            let _entered = span.enter();
            tracing::warn!("inside a traced span");
            let context = span.context();
            let ids = context.span().span_context().clone();
            (ids.trace_id(), ids.span_id())
        });
        assert!(!lines[0].contains_key("span") && !lines[0].contains_key("trace_id"));
        assert_eq!(lines[1]["span"], "ingest_batch");
        assert_eq!(lines[1]["trace_id"], format!("{:032x}", ids.0));
        assert_eq!(lines[1]["span_id"], format!("{:016x}", ids.1));
    }
}

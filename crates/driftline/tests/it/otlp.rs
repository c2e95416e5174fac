//! A real OTLP/HTTP trace receiver built from the `opentelemetry-proto` definitions: it
//! answers `POST /v1/traces` (protobuf) as a collector does and keeps what it decoded.
//! The trace test reads the spans back; `examples/otlp_sink.rs` runs it as the benchmark's
//! sink, counting spans only.

// Each includer uses its own part of it (the test reads spans, the sink counts them).
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::routing::post;
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use prost::Message;

/// One received span, flattened for assertions; ids in lowercase hex ("" for none).
#[derive(Debug, Clone)]
pub struct ReceivedSpan {
    pub service: String,
    pub name: String,
    pub trace_id: String,
    pub span_id: String,
    pub parent_span_id: String,
    /// OTLP `SpanKind`: 1 internal, 2 server.
    pub kind: i32,
    pub attributes: BTreeMap<String, String>,
}

#[derive(Default)]
struct Received {
    keep: bool,
    requests: AtomicU64,
    spans: AtomicU64,
    kept: Mutex<Vec<ReceivedSpan>>,
}

/// The receiver, listening on 127.0.0.1 until the process ends.
pub struct Receiver {
    pub port: u16,
    received: Arc<Received>,
}

impl Receiver {
    /// Listens on `port` (0: any free one); `keep` stores every span, else only counts.
    pub fn start(port: u16, keep: bool) -> std::io::Result<Receiver> {
        let listener = std::net::TcpListener::bind(("127.0.0.1", port))?;
        listener.set_nonblocking(true)?;
        let port = listener.local_addr()?.port();
        let received = Arc::new(Received {
            keep,
            ..Received::default()
        });
        let state = received.clone();
        std::thread::Builder::new()
            .name("otlp-receiver".into())
            .spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                runtime.block_on(async move {
                    let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                    let app = axum::Router::new()
                        .route("/v1/traces", post(export))
                        .layer(axum::extract::DefaultBodyLimit::max(64 << 20))
                        .with_state(state);
                    axum::serve(listener, app).await.unwrap();
                });
            })?;
        Ok(Receiver { port, received })
    }

    /// The endpoint to give the exporter (`OTEL_EXPORTER_OTLP_ENDPOINT`).
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Export requests answered so far.
    pub fn requests(&self) -> u64 {
        self.received.requests.load(Ordering::Relaxed)
    }

    /// Spans received so far.
    pub fn span_count(&self) -> u64 {
        self.received.spans.load(Ordering::Relaxed)
    }

    /// Every span kept so far, in arrival order.
    pub fn spans(&self) -> Vec<ReceivedSpan> {
        self.received.kept.lock().unwrap().clone()
    }
}

async fn export(
    State(received): State<Arc<Received>>,
    body: Bytes,
) -> (StatusCode, [(header::HeaderName, &'static str); 1], Vec<u8>) {
    let protobuf = [(header::CONTENT_TYPE, "application/x-protobuf")];
    let Ok(request) = ExportTraceServiceRequest::decode(body) else {
        return (StatusCode::BAD_REQUEST, protobuf, Vec::new());
    };
    received.requests.fetch_add(1, Ordering::Relaxed);
    let mut kept = Vec::new();
    for resource in request.resource_spans {
        let service = resource
            .resource
            .as_ref()
            .and_then(|r| attributes(&r.attributes).remove("service.name"))
            .unwrap_or_default();
        for scope in resource.scope_spans {
            received
                .spans
                .fetch_add(scope.spans.len() as u64, Ordering::Relaxed);
            if !received.keep {
                continue;
            }
            kept.extend(scope.spans.into_iter().map(|span| ReceivedSpan {
                service: service.clone(),
                name: span.name,
                trace_id: hex(&span.trace_id),
                span_id: hex(&span.span_id),
                parent_span_id: hex(&span.parent_span_id),
                kind: span.kind,
                attributes: attributes(&span.attributes),
            }));
        }
    }
    received.kept.lock().unwrap().extend(kept);
    let response = ExportTraceServiceResponse::default().encode_to_vec();
    (StatusCode::OK, protobuf, response)
}

fn attributes(list: &[KeyValue]) -> BTreeMap<String, String> {
    list.iter()
        .map(|kv| (kv.key.clone(), kv.value.as_ref().map(text).unwrap_or_default()))
        .collect()
}

/// An attribute value as text (numbers and booleans in their usual spelling).
fn text(value: &AnyValue) -> String {
    match &value.value {
        Some(any_value::Value::StringValue(s)) => s.clone(),
        Some(any_value::Value::IntValue(i)) => i.to_string(),
        Some(any_value::Value::DoubleValue(d)) => d.to_string(),
        Some(any_value::Value::BoolValue(b)) => b.to_string(),
        other => format!("{other:?}"),
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

//! Traces and logs as an operator receives them: `driftline serve` exporting to a real
//! OTLP/HTTP receiver ([`super::otlp`]), its spans checked for names, parentage and
//! attributes against the ids `/predict` returned, and its JSON log lines parsed.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use super::otlp::{ReceivedSpan, Receiver};
use super::serve::{free_port, http};
use super::{driftline, run};

/// The caller's trace and span in the `traceparent` the test sends.
const CALLER_TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CALLER_SPAN: &str = "00f067aa0ba902b7";
const USER: &str = "user-00042";
/// Predictions the trace test makes (in a few shapes), then counts log lines against.
const PREDICTIONS: usize = 30;

fn body(user: &str) -> String {
    format!(
        r#"{{"user_id":"{user}","event":{{"transaction_amount":83.2,"country":"DE","device":"ios","event_ts":"2024-03-01T12:00:00Z"}}}}"#
    )
}

/// A response's status, headers (lowercase names) and body.
struct Answer {
    status: u16,
    headers: BTreeMap<String, String>,
    json: serde_json::Value,
}

/// POSTs `body` with extra `headers`, keeping the response headers.
fn post(port: u16, path: &str, headers: &[(&str, &str)], body: &str) -> Answer {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let extra: String = headers.iter().map(|(k, v)| format!("{k}: {v}\r\n")).collect();
    write!(
        stream,
        "POST {path} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n{extra}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap();
    let mut lines = head.lines();
    let status = lines
        .next()
        .unwrap()
        .split_whitespace()
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    Answer {
        status,
        headers,
        json: serde_json::from_str(body).unwrap_or_default(),
    }
}

/// A champion (v1) and a shadow (v2) over a small history; serve checkpoints every second.
fn champion_and_shadow(dir: &Path) {
    std::fs::write(
        dir.join("driftline.toml"),
        "[ingest]\ncheckpoint_interval = \"1s\"\n",
    )
    .unwrap();
    run(dir, &["gen", "--count", "4000", "--users", "100", "--to", "log"]);
    run(dir, &["ingest"]);
    for _ in 0..2 {
        super::serve::train_without_gates(dir, "logistic");
    }
    run(dir, &["models", "alias", "set", "shadow", "2"]);
}

/// `serve` exporting to `receiver`, logging JSON at info (ingest's checkpoints at debug);
/// its stderr is piped.
fn serve_traced(dir: &Path, port: u16, receiver: &Receiver) -> Child {
    let child = driftline(dir)
        .args([
            "--log-format",
            "json",
            "serve",
            "--addr",
            &format!("127.0.0.1:{port}"),
        ])
        .env("RUST_LOG", "info,driftline_features::ingest=debug")
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.endpoint())
        .env("OTEL_SERVICE_NAME", "driftline-it")
        // Nothing leaves before the stop: the spans arrive by the shutdown's flush.
        .env("OTEL_BSP_SCHEDULE_DELAY", "600000")
        .env("OTEL_BSP_MAX_QUEUE_SIZE", "8192")
        .env("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "8192")
        .env("CANARY_SPLIT", "0")
        .env("SHADOW_ENABLED", "true")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while http(port, "GET", "/ready", "").map(|(s, _)| s) != Some(200) {
        assert!(Instant::now() < deadline, "the server did not become ready");
        std::thread::sleep(Duration::from_millis(50));
    }
    child
}

/// SIGTERM, as a service manager stops it, then its stderr once it has exited.
fn stop(mut child: Child) -> Vec<String> {
    let stderr = child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
            .collect::<Vec<_>>()
    });
    let status = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(20);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("serve did not stop within 20 s of SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    reader.join().unwrap()
}

fn only<'a>(
    spans: &'a [ReceivedSpan],
    what: impl Fn(&ReceivedSpan) -> bool,
    about: &str,
) -> &'a ReceivedSpan {
    let found: Vec<_> = spans.iter().filter(|s| what(s)).collect();
    assert_eq!(found.len(), 1, "{about}: {found:#?}");
    found[0]
}

fn children<'a>(spans: &'a [ReceivedSpan], parent: &ReceivedSpan) -> BTreeMap<&'a str, &'a ReceivedSpan> {
    spans
        .iter()
        .filter(|s| s.parent_span_id == parent.span_id && s.trace_id == parent.trace_id)
        .map(|s| (s.name.as_str(), s))
        .collect()
}

fn is_trace_id(id: &str) -> bool {
    id.len() == 32
        && id
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        && id != "0".repeat(32)
}

#[test]
fn predictions_and_ingest_batches_export_spans_that_join_the_callers_trace() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    champion_and_shadow(dir);
    let receiver = Receiver::start(0, true).unwrap();
    let port = free_port();
    let server = serve_traced(dir, port, &receiver);

    let fresh = post(port, "/predict", &[], &body(USER));
    let traceparent = format!("00-{CALLER_TRACE}-{CALLER_SPAN}-01");
    let joined = post(port, "/predict", &[("traceparent", &traceparent)], &body(USER));
    let malformed = post(
        port,
        "/predict",
        &[(
            "traceparent",
            &format!("00-{}-{CALLER_SPAN}-01", CALLER_TRACE.to_uppercase()),
        )],
        &body(USER),
    );
    let batch = post(
        port,
        "/v1/predict/batch",
        &[],
        &format!(r#"{{"requests":[{},{}]}}"#, body(USER), body("user-00043")),
    );
    let invalid = post(
        port,
        "/predict",
        &[],
        r#"{"user_id":"u","event":{"transaction_amount":-1}}"#,
    );
    // A newcomer: its event cannot be late against a history.
    let event = r#"{"user_id":"user-99999","transaction_amount":12.5,"country":"US","device":"web","event_ts":"2024-03-01T12:00:00Z"}"#;
    let ingested = post(port, "/v1/events", &[], event);
    for _ in 0..PREDICTIONS - 4 {
        assert_eq!(post(port, "/predict", &[], &body(USER)).status, 200);
    }
    for answer in [&fresh, &joined, &malformed, &batch] {
        assert_eq!(answer.status, 200, "{}", answer.json);
    }
    assert_eq!(invalid.status, 422);
    assert_eq!(ingested.status, 202, "{}", ingested.json);
    // Wait for the server's ingest to apply and checkpoint the event.
    let deadline = Instant::now() + Duration::from_secs(20);
    while super::checkpoint(&dir.join("driftline-data"))["next_offset"] != 4001 {
        assert!(Instant::now() < deadline, "the event was not ingested");
        std::thread::sleep(Duration::from_millis(20));
    }
    // The checkpoint file is written inside the checkpoint's span, which ends a moment
    // later on the ingest thread; a span still open at shutdown is not exported, so give
    // a loaded machine time to close it before stopping the server.
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(receiver.requests(), 0, "spans left before the stop");
    let log = stop(server);
    let spans = receiver.spans();
    assert!(spans.iter().all(|s| s.service == "driftline-it"), "{spans:#?}");

    // A request without traceparent starts a trace: its id is the one returned.
    let trace = fresh.json["trace_id"].as_str().unwrap();
    assert!(is_trace_id(trace), "{trace}");
    let predict = only(
        &spans,
        |s| s.name == "predict" && s.trace_id == trace,
        "the first prediction",
    );
    assert_eq!((predict.parent_span_id.as_str(), predict.kind), ("", 2));
    assert_eq!(
        fresh.headers["traceparent"],
        format!("00-{trace}-{}-01", predict.span_id)
    );
    let attributes = &predict.attributes;
    assert_eq!(attributes["model.version"], "1");
    assert_eq!(attributes["model.variant"], "baseline");
    assert_eq!(
        attributes["prediction.decision"],
        fresh.json["decision"].as_str().unwrap()
    );
    assert_eq!(attributes["http.route"], "/predict");
    assert_eq!(attributes["http.response.status_code"], "200");
    let steps = children(&spans, predict);
    assert_eq!(
        steps.keys().copied().collect::<Vec<_>>(),
        ["feature_lookup", "model_score", "shadow_handoff", "validate"]
    );
    assert_eq!(steps["model_score"].attributes["model.version"], "1");
    assert_eq!(steps["shadow_handoff"].attributes["shadow.queued"], "true");
    let shadow = children(&spans, steps["shadow_handoff"]);
    assert_eq!(shadow["shadow_score"].attributes["model.version"], "2");

    // A valid traceparent: the prediction is the caller's span's child, in its trace.
    assert_eq!(joined.json["trace_id"], CALLER_TRACE);
    let predict = only(
        &spans,
        |s| s.name == "predict" && s.trace_id == CALLER_TRACE,
        "the joined prediction",
    );
    assert_eq!(predict.parent_span_id, CALLER_SPAN);
    assert_eq!(children(&spans, predict).len(), 4);
    assert_eq!(
        joined.headers["traceparent"],
        format!("00-{CALLER_TRACE}-{}-01", predict.span_id)
    );

    // A malformed one is ignored: a new trace, no parent, no error.
    let trace = malformed.json["trace_id"].as_str().unwrap();
    assert!(is_trace_id(trace) && trace != CALLER_TRACE, "{trace}");
    let predict = only(
        &spans,
        |s| s.name == "predict" && s.trace_id == trace,
        "the malformed one",
    );
    assert_eq!(predict.parent_span_id, "");

    // A batch: one server span, an internal `predict` span per request, one trace.
    let results = batch.json["results"].as_array().unwrap();
    let trace = results[0]["trace_id"].as_str().unwrap();
    assert_eq!(results[1]["trace_id"], trace);
    let outer = only(&spans, |s| s.name == "predict_batch", "the batch");
    assert_eq!((outer.trace_id.as_str(), outer.kind), (trace, 2));
    assert_eq!(outer.attributes["batch.size"], "2");
    let items: Vec<_> = spans
        .iter()
        .filter(|s| s.name == "predict" && s.parent_span_id == outer.span_id)
        .collect();
    assert_eq!(items.len(), 2);
    assert!(
        items
            .iter()
            .all(|s| s.kind == 1 && children(&spans, s).len() == 4)
    );

    // A refused request is a span with the error's code, and not an error status (4xx).
    let refused = only(
        &spans,
        |s| s.name == "predict" && s.attributes.contains_key("error.type"),
        "the refused prediction",
    );
    assert_eq!(refused.attributes["error.type"], "invalid_input");
    assert_eq!(refused.attributes["http.response.status_code"], "422");
    assert!(!refused.attributes.contains_key("model.version"));

    // The event's ingest batch: its records and offsets.
    let batch = only(&spans, |s| s.name == "ingest_batch", "the ingest batch");
    assert_eq!(
        (
            batch.attributes["records"].as_str(),
            batch.attributes["offset.first"].as_str(),
            batch.attributes["offset.last"].as_str(),
            batch.attributes["events"].as_str(),
        ),
        ("1", "4000", "4000", "1")
    );
    assert_eq!(batch.parent_span_id, "");
    let checkpoint = only(
        &spans,
        |s| s.name == "ingest_checkpoint" && s.attributes["next_offset"] == "4001",
        "the checkpoint",
    );

    // No span carries the entity id (personal data) or the event's fields.
    for span in &spans {
        assert!(
            span.attributes
                .values()
                .all(|v| !v.contains("user-") && !v.contains("83.2")),
            "{span:#?}"
        );
    }

    // Logs: JSON lines, and nothing per request at info: fewer lines than predictions.
    assert!(!log.is_empty());
    for line in &log {
        let json: serde_json::Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        for key in ["timestamp", "level", "target", "message"] {
            assert!(json[key].is_string(), "no {key}: {line}");
        }
    }
    assert!(
        log.iter().any(|l| l.contains(r#""message":"serving""#)),
        "{log:#?}"
    );
    // A line logged inside a traced span names it and its ids: the exported span's.
    let committed: Vec<serde_json::Value> = log
        .iter()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|l| l["message"] == "checkpoint committed" && l["next_offset"] == 4001)
        .collect();
    assert_eq!(committed.len(), 1, "{log:#?}");
    assert_eq!(committed[0]["span"], "ingest_checkpoint");
    assert_eq!(committed[0]["trace_id"], checkpoint.trace_id.as_str());
    assert_eq!(committed[0]["span_id"], checkpoint.span_id.as_str());
    assert!(log.len() < PREDICTIONS, "{log:#?}");
}

#[test]
fn an_otlp_setting_this_build_cannot_honour_is_refused_by_name() {
    let tmp = tempfile::tempdir().unwrap();
    for (name, value, says) in [
        (
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            "https://collector:4318",
            "plain http:// only",
        ),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc", "only http/protobuf"),
        ("OTEL_BSP_MAX_QUEUE_SIZE", "lots", "a whole number of spans"),
        ("OTEL_BSP_MAX_QUEUE_SIZE", "0", "at least 1"),
    ] {
        let output = driftline(tmp.path())
            .arg("config")
            .env("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:9")
            .env(name, value)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{stderr}");
        assert!(stderr.contains(name) && stderr.contains(says), "{stderr}");
    }
    // Turned off, the same endpoint is not even looked at.
    let output = driftline(tmp.path())
        .arg("config")
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", "https://collector:4318")
        .env("OTEL_SDK_DISABLED", "true")
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

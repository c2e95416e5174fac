//! The streaming drift monitor inside `driftline serve`, watched as a user watches it:
//! generator traffic appended through `/v1/events` and scored through
//! `/v1/predict/batch`, the verdict read from `GET /v1/drift` and the Prometheus gauges.
//! A drift-free continuation of the training stream leaves the amount alone; the
//! generator's 2.5x covariate shift drifts it, and the status, the drifted columns and
//! the gauges say so.

use std::time::{Duration, Instant};

use super::run;
use super::serve::{Server, free_port, http, start, train_without_gates};

/// Events of history the model trains on (~27 hours of event time: the profile's hourly
/// strata cover every hour the live events fall on; with less, live hours the profile
/// lacks are compared with the whole day and the amount drifts without any shift), then
/// drift-free live events, then shifted ones (each as many as the monitor's window).
const HISTORY: usize = 48_000;
const LIVE: usize = 4_000;
/// Prediction requests per batch (the body limit is 64 KiB).
const BATCH: usize = 200;

#[test]
fn a_covariate_shift_streamed_through_the_server_drifts_the_amount_and_the_gauges_say_so() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    std::fs::write(
        dir.join("driftline.toml"),
        "[drift.monitor]\nevaluate_interval_seconds = 0.2\n",
    )
    .unwrap();
    let total = (HISTORY + 2 * LIVE).to_string();
    let onset = (HISTORY + LIVE).to_string();
    run(
        dir,
        &[
            "gen",
            "--count",
            &total,
            "--users",
            "200",
            "--scenario",
            "covariate",
            "--onset",
            &onset,
            "--ramp",
            "0",
            "--out",
            "stream.jsonl",
        ],
    );
    let stream = std::fs::read_to_string(dir.join("stream.jsonl")).unwrap();
    let lines: Vec<&str> = stream.lines().collect();
    assert_eq!(lines.len(), HISTORY + 2 * LIVE);
    std::fs::write(dir.join("history.jsonl"), lines[..HISTORY].join("\n") + "\n").unwrap();
    run(dir, &["ingest", "--from", "history.jsonl"]);
    train_without_gates(dir, "logistic");

    let port = free_port();
    let _server: Server = start(dir, port);
    let before = drift(port);
    assert_ne!(before["status"], "drift", "{before}");

    // A day of history leaves the users' 24 h and 7 d aggregates filling, so on the next
    // day they drift for real (the demo and detection_quality warm up 7 and 30 days
    // first, which a debug-build test cannot afford); the amount comes with each request
    // and must not drift.
    predict_all(port, &lines[HISTORY..HISTORY + LIVE]);
    let stable = drift_after(port, LIVE as u64);
    assert_ne!(stable["status"], "warming_up", "{stable}");
    let amount = column(&stable, "transaction_amount");
    assert_eq!(amount["drift"]["drifted"], false, "{amount}");

    predict_all(port, &lines[HISTORY + LIVE..]);
    let shifted = drift_after(port, 2 * LIVE as u64);
    assert_eq!(shifted["status"], "drift", "{shifted}");
    let drifted: Vec<&str> = shifted["drifted_columns"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|c| c.as_str())
        .collect();
    assert!(drifted.contains(&"transaction_amount"), "{drifted:?}");
    let amount = column(&shifted, "transaction_amount");
    let score = amount["drift"]["score"].as_f64().unwrap();
    assert!(score > 0.1, "{amount}");

    let (_, metrics) = http(port, "GET", "/metrics", "").expect("metrics answer");
    assert!(
        metrics.lines().any(|l| l == "driftline_drift_status 2"),
        "{metrics}"
    );
    let gauge = metrics
        .lines()
        .find(|l| l.starts_with("driftline_feature_drift_score{") && l.contains("\"transaction_amount\""))
        .unwrap_or_else(|| panic!("no amount drift gauge in {metrics}"));
    let value: f64 = gauge.rsplit(' ').next().unwrap().parse().unwrap();
    assert!((value - score).abs() < 1e-9, "{gauge} against {score}");
}

/// Appends `lines` (generator events) through `/v1/events` and, once ingest has applied
/// them, scores them through `/v1/predict/batch`, as a payment system's earlier
/// transactions reach the online store before the next is scored; every request answered.
fn predict_all(port: u16, lines: &[&str]) {
    for batch in lines.chunks(BATCH) {
        let events: Vec<serde_json::Value> = batch
            .iter()
            .map(|line| {
                let mut event: serde_json::Value = serde_json::from_str(line).unwrap();
                event.as_object_mut().unwrap().remove("label");
                event
            })
            .collect();
        let body = serde_json::json!({ "events": events }).to_string();
        let (status, text) = http(port, "POST", "/v1/events", &body).expect("the events are answered");
        assert!(status == 200 || status == 202, "{status} {text}");
        let appended: serde_json::Value = serde_json::from_str(&text).unwrap();
        wait_for_ingest(
            port,
            appended["first_offset"].as_u64().unwrap() + batch.len() as u64,
        );

        let requests: Vec<serde_json::Value> = events
            .into_iter()
            .map(|event| serde_json::json!({"user_id": event["user_id"].clone(), "event": event}))
            .collect();
        let body = serde_json::json!({ "requests": requests }).to_string();
        let (status, text) = http(port, "POST", "/v1/predict/batch", &body).expect("the batch is answered");
        assert_eq!(status, 200, "{text}");
        let answers: serde_json::Value = serde_json::from_str(&text).unwrap();
        let scored = answers["results"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["score"].is_f64())
            .count();
        assert_eq!(scored, batch.len(), "{text}");
    }
}

/// Waits until the server's ingest has applied its log up to `end`.
fn wait_for_ingest(port: u16, end: u64) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (_, metrics) = http(port, "GET", "/metrics", "").expect("metrics answer");
        let applied = metrics
            .lines()
            .find_map(|l| l.strip_prefix("driftline_ingest_next_offset "))
            .and_then(|v| v.parse::<u64>().ok());
        if applied >= Some(end) {
            return;
        }
        assert!(Instant::now() < deadline, "ingest did not reach offset {end}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn drift(port: u16) -> serde_json::Value {
    let (status, text) = http(port, "GET", "/v1/drift", "").expect("/v1/drift answers");
    assert_eq!(status, 200, "{text}");
    serde_json::from_str(&text).unwrap()
}

/// `/v1/drift` once an evaluation has seen `observed` predictions in all.
fn drift_after(port: u16, observed: u64) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let snapshot = drift(port);
        if snapshot["observed_total"].as_u64() >= Some(observed) {
            return snapshot;
        }
        assert!(
            Instant::now() < deadline,
            "no evaluation of {observed} predictions: {snapshot}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn column<'a>(snapshot: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    snapshot["columns"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no column {name} in {snapshot}"))
}

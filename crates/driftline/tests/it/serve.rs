//! `driftline serve` as a user runs it: train, serve, predict with the reference payload,
//! swap the champion from another process under load without a failed request, and kill
//! the server mid-load without losing an acknowledged event.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use super::{driftline, run};

/// A minimal HTTP/1.1 client: method, path, body -> (status, body).
pub(super) fn http(port: u16, method: &str, path: &str, body: &str) -> Option<(u16, String)> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let status = response.split_whitespace().nth(1)?.parse().ok()?;
    let body = response.split_once("\r\n\r\n").map(|(_, b)| b.to_string())?;
    Some((status, body))
}

pub(super) fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub(super) struct Server(pub(super) Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub(super) fn start(dir: &Path, port: u16) -> Server {
    let child = driftline(dir)
        .args(["serve", "--addr", &format!("127.0.0.1:{port}")])
        // No canary share: this test follows the champion; the shadow scores copies.
        .env("CANARY_SPLIT", "0")
        .env("SHADOW_ENABLED", "true")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let server = Server(child);
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if let Some((200, _)) = http(port, "GET", "/ready", "") {
            return server;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("the server did not become ready on port {port}");
}

fn model_version(port: u16, body: &str) -> String {
    let (status, text) = http(port, "POST", "/predict", body).expect("predict answers");
    assert_eq!(status, 200, "{text}");
    let json: serde_json::Value = serde_json::from_str(&text).unwrap();
    json["model_version"].as_str().unwrap().to_string()
}

const QUICKSTART: &str = r#"{"user_id":"user-42","event":{"transaction_amount":83.2,"country":"DE","device":"ios","event_ts":"2024-03-01T12:00:00Z"}}"#;

#[test]
fn serve_predicts_and_swaps_the_champion_set_from_another_process() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    train_two_versions(dir);
    run(dir, &["models", "alias", "set", "shadow", "2"]);
    let port = free_port();
    let _server = start(dir, port);
    assert_eq!(model_version(port, QUICKSTART), "1");
    let (status, text) = http(
        port,
        "POST",
        "/predict",
        r#"{"user_id":"u","event":{"transaction_amount":-1}}"#,
    )
    .unwrap();
    assert_eq!(status, 422, "{text}");
    assert!(text.contains("\"code\":\"invalid_input\""), "{text}");

    // Every prediction so far was also scored by the shadow (v2), off the response path.
    let deadline = Instant::now() + Duration::from_secs(5);
    let shadowed = loop {
        let report = driftline(dir)
            .args(["shadow", "report", "--json"])
            .output()
            .unwrap();
        let json: serde_json::Value = serde_json::from_slice(&report.stdout).unwrap_or_default();
        let pairs = json["comparisons"][0]["pairs"].as_u64().unwrap_or(0);
        if pairs >= 1 || Instant::now() > deadline {
            break json;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(shadowed["comparisons"][0]["shadow_version"], 2, "{shadowed}");

    run(dir, &["models", "promote", "--reason", "e2e"]);
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut seen = model_version(port, QUICKSTART);
    while seen != "2" && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
        seen = model_version(port, QUICKSTART);
    }
    assert_eq!(seen, "2", "the promoted champion was not picked up");
    let (_, metrics) = http(port, "GET", "/metrics", "").unwrap();
    assert!(metrics.contains("driftline_model_version 2"), "{metrics}");
    assert!(
        metrics.contains("driftline_ingest_next_offset 20000"),
        "{metrics}"
    );

    // Roll v1 out again under a latency gate no request can meet: the controller must roll
    // it back by itself after two failed checks, and say why in the audit log.
    let start = r#"{"action":"start","version":1,"plan":{"steps":[0.5,1.0],"interval_seconds":0.2,"min_requests":10,"max_p95_seconds":0.00005,"failed_checks_to_rollback":2}}"#;
    let (status, text) = http(port, "POST", "/v1/rollout", start).unwrap();
    assert_eq!(status, 200, "{text}");
    let deadline = Instant::now() + Duration::from_secs(20);
    let rollout = loop {
        for user in 0..40 {
            let body = format!(
                r#"{{"user_id":"user-{user:05}","event":{{"transaction_amount":50,"country":"US","device":"web","event_ts":"2024-03-01T12:00:00Z"}}}}"#
            );
            http(port, "POST", "/predict", &body);
        }
        let (_, text) = http(port, "GET", "/v1/rollout", "").unwrap();
        let json: serde_json::Value = serde_json::from_str(&text).unwrap();
        if json["controller"]["state"] != "running" || Instant::now() > deadline {
            break json;
        }
    };
    assert_eq!(rollout["controller"]["state"], "rolled_back", "{rollout}");
    assert_eq!(
        (rollout["champion"].as_u64(), rollout["challenger"].as_u64()),
        (Some(2), None)
    );
    let audit = String::from_utf8(run(dir, &["models", "audit", "--limit", "1"]).stdout).unwrap();
    assert!(audit.contains("automatic rollback of v1: p95 latency"), "{audit}");
    assert!(
        metrics
            .contains("serving_app_request_latency_seconds_bucket{model_variant=\"baseline\",le=\"0.001\"}")
    );
}

/// Sets the flag when dropped: stops load threads even when the test panics.
struct StopOnDrop<'a>(&'a std::sync::atomic::AtomicBool);

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

/// Prediction traffic from `clients` threads until `stop` is set: (answered 200, anything
/// else, versions seen).
fn drive_load(
    port: u16,
    clients: usize,
    stop: &std::sync::atomic::AtomicBool,
) -> (u64, Vec<String>, std::collections::BTreeSet<String>) {
    use std::sync::atomic::Ordering;
    std::thread::scope(|scope| {
        let workers: Vec<_> = (0..clients)
            .map(|client| {
                scope.spawn(move || {
                    let (mut ok, mut failures, mut versions) = (0, Vec::new(), std::collections::BTreeSet::new());
                    let mut n = 0u64;
                    while !stop.load(Ordering::Relaxed) {
                        n += 1;
                        let body = format!(
                            r#"{{"user_id":"user-{:05}","event":{{"transaction_amount":{}.5,"country":"US","device":"web","event_ts":"2024-03-01T12:00:00Z"}}}}"#,
                            (n * 7 + client as u64) % 200,
                            n % 900
                        );
                        match http(port, "POST", "/predict", &body) {
                            Some((200, text)) => {
                                ok += 1;
                                let json: serde_json::Value = serde_json::from_str(&text).unwrap();
                                versions.insert(json["model_version"].as_str().unwrap().to_string());
                            }
                            other => failures.push(format!("{other:?}")),
                        }
                    }
                    (ok, failures, versions)
                })
            })
            .collect();
        workers.into_iter().fold(
            (0, Vec::new(), std::collections::BTreeSet::new()),
            |(ok, mut failures, mut versions), worker| {
                let (o, f, v) = worker.join().unwrap();
                failures.extend(f);
                versions.extend(v);
                (ok + o, failures, versions)
            },
        )
    })
}

/// 20,000 events ingested, then v1 (logistic, champion) and v2 (GBT, challenger). The gates
/// are not what these tests are about: floors at 0 so both versions register.
pub(super) fn train_two_versions(dir: &Path) {
    run(dir, &["gen", "--count", "20000", "--users", "200", "--to", "log"]);
    run(dir, &["ingest"]);
    for estimator in ["logistic", "gbt"] {
        train_without_gates(dir, estimator);
    }
}

/// Trains and registers a version with the absolute gates off, so any fit registers.
pub(super) fn train_without_gates(dir: &Path, estimator: &str) {
    let output = driftline(dir)
        .args(["train", "--estimator", estimator])
        .env("MIN_ROC_AUC", "0")
        .env("MIN_AVG_PRECISION", "0")
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn champion_swaps_from_another_process_under_load_fail_no_request() {
    use std::sync::atomic::{AtomicBool, Ordering};
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    train_two_versions(dir);
    let port = free_port();
    let _server = start(dir, port);
    let stop = AtomicBool::new(false);
    let (ok, failures, versions) = std::thread::scope(|scope| {
        let load = scope.spawn(|| drive_load(port, 4, &stop));
        // Stops the load even when a CLI call below panics, so the scope can end.
        let _stop_on_exit = StopOnDrop(&stop);
        // Six champion changes from the CLI, each in its own process, while traffic flows.
        for version in ["2", "1", "2", "1", "2", "1"] {
            run(dir, &["models", "promote", version, "--reason", "load test"]);
            std::thread::sleep(Duration::from_millis(300));
        }
        stop.store(true, Ordering::Relaxed);
        load.join().unwrap()
    });
    assert!(
        failures.is_empty(),
        "{} of {} requests failed: {:?}",
        failures.len(),
        ok,
        &failures[..failures.len().min(5)]
    );
    assert!(ok > 100, "only {ok} requests were served");
    assert_eq!(
        versions.into_iter().collect::<Vec<_>>(),
        ["1", "2"],
        "both champions should have served during the swaps"
    );
}

#[test]
fn kill_9_mid_load_then_restart_keeps_every_acknowledged_event_and_serves_again() {
    use std::sync::atomic::{AtomicBool, Ordering};
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    train_two_versions(dir);
    let port = free_port();
    let mut server = start(dir, port);
    // Acknowledged (202) events for a user the log has never seen, posted just before the kill.
    let events: Vec<String> = (0..3)
        .map(|i| {
            format!(
                r#"{{"event_id":"acked-before-kill-{i}","user_id":"newcomer","transaction_amount":{}.0,"country":"FR","device":"ios","event_ts":"2024-03-01T00:00:0{i}Z"}}"#,
                10 * (i + 1)
            )
        })
        .collect();
    let stop = AtomicBool::new(false);
    let (ok, _failures, _) = std::thread::scope(|scope| {
        let load = scope.spawn(|| drive_load(port, 2, &stop));
        let _stop_on_exit = StopOnDrop(&stop);
        std::thread::sleep(Duration::from_millis(300));
        for event in &events {
            let (status, text) = http(port, "POST", "/v1/events", event).unwrap();
            assert_eq!(status, 202, "{text}");
        }
        let _ = server.0.kill(); // SIGKILL, mid-load.
        let _ = server.0.wait();
        std::thread::sleep(Duration::from_millis(200));
        stop.store(true, Ordering::Relaxed);
        load.join().unwrap()
    });
    assert!(ok > 0, "no request was served before the kill");

    let _restarted = start(dir, port);
    assert_eq!(model_version(port, QUICKSTART), "1");
    // The restarted server replays the log: the three acknowledged events are in its state.
    let deadline = Instant::now() + Duration::from_secs(10);
    let metric = loop {
        let (_, metrics) = http(port, "GET", "/metrics", "").unwrap();
        let line = metrics
            .lines()
            .find(|l| l.starts_with("driftline_ingest_next_offset "))
            .map(String::from)
            .unwrap_or_default();
        if line.ends_with(" 20003") || Instant::now() > deadline {
            break line;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(metric, "driftline_ingest_next_offset 20003");
    drop(_restarted);
    let out = run(dir, &["features", "get", "newcomer"]);
    let vector: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        vector["features"]["transaction_amount_count_24h"], 3.0,
        "{vector}"
    );
    assert_eq!(vector["features"]["transaction_amount_sum_24h"], 60.0, "{vector}");
}

fn chromium() -> Option<String> {
    super::external_tool("DRIFTLINE_TEST_CHROMIUM", "chromium", ".ci/services/chromium.sh")
}

#[test]
fn the_dashboard_renders_models_rollout_traffic_drift_and_audit_in_headless_chromium() {
    let Some(chromium) = chromium() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    train_two_versions(dir);
    // A small, fast monitor so the window is judged within the test.
    std::fs::write(
        dir.join("driftline.toml"),
        "[drift.monitor]\nwindow = 1000\nmin_window = 50\nevaluate_interval_seconds = 0.2\n",
    )
    .unwrap();
    let port = free_port();
    let _server = start(dir, port);
    let rollout = r#"{"action":"start","version":2,"ratio":0.5,"reason":"dashboard test"}"#;
    assert_eq!(http(port, "POST", "/v1/rollout", rollout).unwrap().0, 200);
    for i in 0..120 {
        let body = format!(
            r#"{{"user_id":"user-{:05}","event":{{"event_id":"dashboard-event-{i:04}","transaction_amount":{}.5,"country":"US","device":"web","event_ts":"2024-03-01T12:00:00Z"}}}}"#,
            i % 200,
            (i * 37) % 900
        );
        assert_eq!(http(port, "POST", "/predict", &body).unwrap().0, 200);
        let label = format!(r#"{{"event_id":"dashboard-event-{i:04}","label":{}}}"#, i % 2);
        assert_eq!(http(port, "POST", "/v1/feedback", &label).unwrap().0, 202);
    }
    std::thread::sleep(Duration::from_millis(600)); // one monitor evaluation at least

    let profile = tempfile::tempdir().unwrap();
    let output = std::process::Command::new(&chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            &format!("--user-data-dir={}", profile.path().display()),
            "--virtual-time-budget=5000",
            "--dump-dom",
            &format!("http://127.0.0.1:{port}/"),
        ])
        .output()
        .unwrap();
    let dom = String::from_utf8_lossy(&output.stdout);
    let has = |needle: &str| {
        assert!(
            dom.contains(needle),
            "the rendered dashboard lacks {needle:?}:\n{dom}\n{}",
            String::from_utf8_lossy(&output.stderr)
        )
    };
    has(r#"data-role="champion"><h3>champion <span class="version">v1</span>"#);
    has(r#"data-role="challenger"><h3>challenger <span class="version">v2</span>"#);
    has("canary v2 50%");
    has(r#"<tr data-variant="baseline"><td>baseline</td>"#);
    has(r#"<tr data-variant="canary"><td>canary</td>"#);
    has(r#"<tr data-feature="transaction_amount_count_1h">"#);
    has(r#"<tr data-feature="prediction score">"#);
    has(r#"<tr data-detector="adwin">"#);
    has("dashboard test");
    has(r#"<div id="error" style="display: none;">"#);
    assert!(!dom.contains("loading…"), "a section never rendered:\n{dom}");
}

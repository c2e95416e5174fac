//! The shipped Prometheus rules (`deploy/prometheus/`): promtool accepts them, their unit
//! tests pass, and every metric they name is one a running `driftline serve` exports.
//!
//! Key decision: the exported names come from scraping a real server that has predicted,
//! ingested, joined labels and judged its drift window, not from a list kept by hand, so a
//! renamed metric breaks this test rather than silently muting an alert.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use super::serve::{free_port, http, start, train_two_versions};

fn prometheus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/prometheus")
}

fn promtool() -> Option<String> {
    super::external_tool("DRIFTLINE_TEST_PROMTOOL", "promtool", ".ci/services/promtool.sh")
}

fn promtool_ok(promtool: &str, args: &[&str]) {
    let output = Command::new(promtool)
        .args(args)
        .current_dir(prometheus_dir())
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "promtool {args:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn the_prometheus_rules_check_and_their_unit_tests_pass() {
    let Some(promtool) = promtool() else {
        return;
    };
    promtool_ok(&promtool, &["check", "rules", "driftline-rules.yml"]);
    let mut tests: Vec<String> = std::fs::read_dir(prometheus_dir().join("tests"))
        .unwrap()
        .map(|e| format!("tests/{}", e.unwrap().file_name().to_string_lossy()))
        .filter(|name| name.ends_with(".yml"))
        .collect();
    tests.sort();
    assert!(
        !tests.is_empty(),
        "no promtool unit tests in deploy/prometheus/tests"
    );
    let mut args = vec!["test", "rules"];
    args.extend(tests.iter().map(String::as_str));
    promtool_ok(&promtool, &args);
}

/// The `driftline_*` and `serving_app_*` metric names in `text`, skipping the parts of
/// recording-rule names (`level:metric:operations`).
fn metric_names_in_rules(text: &str) -> BTreeSet<String> {
    let bytes = text.as_bytes();
    let word = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_';
    let mut names = BTreeSet::new();
    let mut i = 0;
    while i < bytes.len() {
        if !word(bytes[i]) || (i > 0 && (word(bytes[i - 1]) || bytes[i - 1].is_ascii_alphabetic())) {
            i += 1;
            continue;
        }
        let end = (i..bytes.len()).find(|&j| !word(bytes[j])).unwrap_or(bytes.len());
        let name = &text[i..end];
        let recording = (i > 0 && bytes[i - 1] == b':') || bytes.get(end) == Some(&b':');
        if !recording && (name.starts_with("driftline_") || name.starts_with("serving_app_")) {
            names.insert(name.to_string());
        }
        i = end;
    }
    names
}

/// The metric families in a /metrics exposition, histogram families also under their
/// `_bucket`, `_sum` and `_count` series names.
fn exported_names(exposition: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for line in exposition.lines() {
        let Some(rest) = line.strip_prefix("# TYPE ") else {
            continue;
        };
        let mut parts = rest.split_whitespace();
        let (Some(name), Some(kind)) = (parts.next(), parts.next()) else {
            continue;
        };
        names.insert(name.to_string());
        if kind == "histogram" || kind == "summary" {
            for suffix in ["_bucket", "_sum", "_count"] {
                names.insert(format!("{name}{suffix}"));
            }
        }
    }
    names
}

#[test]
fn metric_names_are_found_in_rules_and_histograms_expand() {
    let rules = "expr: sum(rate(serving_app_requests_total[5m])) / x\n\
                 record: model_variant:serving_app_request_errors:ratio_rate5m\n\
                 alert: DriftlineRollback\nexpr: increase(driftline_rollbacks_total[15m]) > 0\n";
    let names = metric_names_in_rules(rules);
    assert_eq!(
        names.into_iter().collect::<Vec<_>>(),
        ["driftline_rollbacks_total", "serving_app_requests_total"]
    );
    let exported = exported_names("# TYPE h histogram\nh_bucket{le=\"1\"} 0\n# TYPE g gauge\ng 1\n");
    assert!(exported.contains("h_count") && exported.contains("g") && !exported.contains("g_count"));
}

#[test]
fn every_metric_the_rules_name_is_exported_by_driftline_serve() {
    let rules = std::fs::read_to_string(prometheus_dir().join("driftline-rules.yml")).unwrap();
    let wanted = metric_names_in_rules(&rules);
    assert!(wanted.len() >= 10, "{wanted:?}");

    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    train_two_versions(dir);
    // A small, fast monitor so the window is judged (and its gauges exist) within the test.
    std::fs::write(
        dir.join("driftline.toml"),
        "[drift.monitor]\nwindow = 1000\nmin_window = 50\nevaluate_interval_seconds = 0.2\n",
    )
    .unwrap();
    let port = free_port();
    let _server = start(dir, port);
    for i in 0..120 {
        let event = format!(
            r#"{{"event_id":"deploy-{i:04}","transaction_amount":{}.5,"country":"US","device":"web","event_ts":"2024-03-09T12:00:{:02}Z"}}"#,
            (i * 37) % 900,
            i % 60
        );
        let body = format!(r#"{{"user_id":"user-{:05}","event":{event}}}"#, i % 200);
        assert_eq!(http(port, "POST", "/predict", &body).unwrap().0, 200);
        let label = format!(r#"{{"event_id":"deploy-{i:04}","label":{}}}"#, i % 2);
        assert_eq!(http(port, "POST", "/v1/feedback", &label).unwrap().0, 202);
    }
    let event = r#"{"user_id":"user-00001","event_id":"deploy-ingest-1","transaction_amount":12.5,"country":"US","device":"web","event_ts":"2024-03-09T13:00:00Z"}"#;
    let (status, body) = http(port, "POST", "/v1/events", event).unwrap();
    assert!(status < 300, "{status} {body}");

    // The monitor judges every 0.2 s and ingest applies in the background: poll briefly.
    let mut missing = wanted.clone();
    let mut exposition = String::new();
    for _ in 0..50 {
        let (status, text) = http(port, "GET", "/metrics", "").unwrap();
        assert_eq!(status, 200);
        let exported = exported_names(&text);
        missing = wanted.difference(&exported).cloned().collect();
        exposition = text;
        if missing.is_empty() {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(
        missing.is_empty(),
        "the rules name metrics the server does not export: {missing:?}\n{exposition}"
    );
}

//! The operator-facing files of `deploy/`: Prometheus rules and their promtool unit tests,
//! Grafana dashboards, and the Compose, Kubernetes and systemd deployments.
//!
//! Key decision: every check runs against the real thing, never a list kept by hand. The
//! metric names the rules and dashboards use are compared with the `/metrics` of a
//! running `driftline serve` that has predicted, ingested, joined labels and judged its
//! drift window; PromQL is judged by promtool; deployment commands by the driftline CLI
//! and their configuration by driftline's own loader (`process`).

mod compose;
mod dashboards;
mod kubernetes;
mod process;
mod promql;
mod systemd;
mod yaml;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use super::serve::{free_port, http, start, train_two_versions};

/// Metric families the Redis online store (issue 7, being built on another branch) adds.
/// The Platform dashboard and the online-store alerts use them; they are exported only
/// by a server whose `[online_store] backend = "redis"`, which the server below is not.
/// Expected from the Redis online store: verify these names against its /metrics at merge.
const PENDING_FROM_REDIS_ONLINE_STORE: &[&str] = &[
    "driftline_online_store_degraded_total", // counter: predictions answered with request-only features
    "driftline_online_store_up",             // gauge: 1 while the store answers, 0 when it does not
    "driftline_online_store_errors_total",   // counter by `op`
];

/// Series Prometheus makes itself: `up` per scrape target, `ALERTS` per alert.
const PROMETHEUS_SYNTHETIC: &[&str] = &["up", "ALERTS"];

fn deploy_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy")
}

fn prometheus_dir() -> PathBuf {
    deploy_dir().join("prometheus")
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
    // The Compose stack's Prometheus configuration, which loads the rules beside it.
    promtool_ok(&promtool, &["check", "config", "prometheus.yml"]);
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

/// One rule of `driftline-rules.yml`.
struct Rule {
    /// The alert's name, or the series a recording rule records.
    name: String,
    alert: bool,
    expr: String,
}

fn rules() -> Vec<Rule> {
    let doc = yaml::read_one(&prometheus_dir().join("driftline-rules.yml"));
    let groups = doc["groups"].as_array().expect("rule groups");
    groups
        .iter()
        .flat_map(|g| g["rules"].as_array().expect("rules").iter())
        .map(|rule| Rule {
            name: rule["alert"]
                .as_str()
                .or(rule["record"].as_str())
                .expect("a named rule")
                .to_string(),
            alert: rule["alert"].is_string(),
            expr: rule["expr"].as_str().expect("an expr").to_string(),
        })
        .collect()
}

#[test]
fn every_alert_has_promtool_tests_of_it_firing_and_staying_quiet() {
    let mut fires = BTreeSet::new();
    let mut quiet = BTreeSet::new();
    for entry in std::fs::read_dir(prometheus_dir().join("tests")).unwrap() {
        let test_file = yaml::read_one(&entry.unwrap().path());
        for group in test_file["tests"].as_array().into_iter().flatten() {
            for case in group["alert_rule_test"].as_array().into_iter().flatten() {
                let name = case["alertname"].as_str().unwrap_or_default().to_string();
                if case["exp_alerts"].as_array().is_some_and(|a| !a.is_empty()) {
                    fires.insert(name);
                } else {
                    quiet.insert(name);
                }
            }
        }
    }
    let alerts: Vec<String> = rules().into_iter().filter(|r| r.alert).map(|r| r.name).collect();
    assert!(alerts.len() >= 20, "{alerts:?}");
    let untested: Vec<_> = alerts
        .iter()
        .filter(|a| !fires.contains(*a) || !quiet.contains(*a))
        .collect();
    assert!(
        untested.is_empty(),
        "alerts without a promtool test of them firing and one of them quiet: {untested:?}"
    );
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
fn histogram_families_expand_to_their_series() {
    let exported = exported_names("# TYPE h histogram\nh_bucket{le=\"1\"} 0\n# TYPE g gauge\ng 1\n");
    assert!(exported.contains("h_count") && exported.contains("g") && !exported.contains("g_count"));
}

/// What the rules and dashboards select, by where: metric name -> first user.
fn wanted_metrics() -> BTreeMap<String, String> {
    let rules = rules();
    let recorded: BTreeSet<&str> = rules
        .iter()
        .filter(|r| !r.alert)
        .map(|r| r.name.as_str())
        .collect();
    let mut wanted = BTreeMap::new();
    let queries = rules
        .iter()
        .map(|r| (format!("driftline-rules.yml {}", r.name), r.expr.clone()))
        .chain(dashboards::all_queries().into_iter().map(|q| (q.origin, q.expr)));
    for (origin, expr) in queries {
        for name in promql::metric_names(&expr) {
            if recorded.contains(name.as_str()) || PROMETHEUS_SYNTHETIC.contains(&name.as_str()) {
                continue;
            }
            // Recording rules' outputs are named level:metric:operations; one that no rule
            // records would be an empty series, not a driftline metric.
            assert!(
                !name.contains(':'),
                "{origin} reads {name}, which no rule records"
            );
            wanted.entry(name).or_insert(origin.clone());
        }
    }
    wanted
}

#[test]
fn every_metric_the_rules_and_dashboards_name_is_exported_by_driftline_serve() {
    let wanted = wanted_metrics();
    assert!(wanted.len() >= 40, "{wanted:?}");

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
    let mut missing = Vec::new();
    let mut exposition = String::new();
    for _ in 0..50 {
        let (status, text) = http(port, "GET", "/metrics", "").unwrap();
        assert_eq!(status, 200);
        let exported = exported_names(&text);
        missing = wanted
            .iter()
            .filter(|(name, _)| !exported.contains(*name))
            .map(|(name, origin)| (name.clone(), origin.clone()))
            .collect();
        exposition = text;
        if missing
            .iter()
            .all(|(name, _)| PENDING_FROM_REDIS_ONLINE_STORE.contains(&name.as_str()))
        {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let (pending, unknown): (Vec<_>, Vec<_>) = missing
        .into_iter()
        .partition(|(name, _)| PENDING_FROM_REDIS_ONLINE_STORE.contains(&name.as_str()));
    assert!(
        unknown.is_empty(),
        "rules or dashboards name metrics driftline serve does not export (name, first user): {unknown:?}\n{exposition}"
    );
    if !pending.is_empty() {
        eprintln!("not checked here (expected from the Redis online store): {pending:?}");
    }
}

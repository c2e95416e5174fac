//! End-to-end tests of the `driftline` binary, run as a user would run it.

mod demo;
mod deploy;
mod drift;
#[cfg(feature = "kafka")]
mod kafka;
mod learnability;
mod models;
mod monitor;
mod otlp;
mod redis;
mod replicas;
#[cfg(feature = "kafka")]
mod scale_out;
mod serve;
mod telemetry;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

fn driftline(dir: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_driftline"));
    command
        .current_dir(dir)
        .env_remove("DRIFTLINE_DATA_DIR")
        .env_remove("DRIFTLINE_CONFIG")
        .env("RUST_LOG", "warn");
    command
}

/// An external tool the tests drive (promtool, chromium), from env `var` or `name` on the
/// PATH; `None` (the test skips, saying why) on a developer's machine without it, a
/// failure under .ci/run (`DRIFTLINE_REQUIRE_BACKENDS=1`), whose `script` installs it.
fn external_tool(var: &str, name: &str, script: &str) -> Option<String> {
    let path = std::env::var(var).unwrap_or_else(|_| name.into());
    let found = Command::new(&path)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if found {
        return Some(path);
    }
    assert!(
        std::env::var("DRIFTLINE_REQUIRE_BACKENDS").as_deref() != Ok("1"),
        "{name} is not installed ({script} installs it)"
    );
    eprintln!("skipping: {name} is not installed");
    None
}

fn run(dir: &Path, args: &[&str]) -> Output {
    let output = driftline(dir).args(args).output().expect("driftline runs");
    assert!(
        output.status.success(),
        "driftline {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn seed_events_csv() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/seed/events.csv")
}

/// Writes `count` generated events plus malformed lines every `every` events.
fn events_with_bad_lines(dir: &Path, count: u64, every: usize) -> (PathBuf, usize) {
    let clean = dir.join("clean.jsonl");
    run(
        dir,
        &[
            "gen",
            "--count",
            &count.to_string(),
            "--seed",
            "3",
            "--users",
            "300",
            "--out",
            clean.to_str().unwrap(),
        ],
    );
    let bad = [
        "{\"user_id\": \"user-00001\", \"transaction_amount\": ",
        "not json at all",
        "{\"user_id\":\"user-00002\",\"transaction_amount\":-1,\"country\":\"XX\",\"device\":\"ios\",\"event_ts\":\"2024-03-01T00:00:00Z\"}",
        "{\"event_id\":\"x\",\"user_id\":\"user-00003\",\"transaction_amount\":5,\"country\":\"US\",\"device\":\"web\",\"event_ts\":\"2999-01-01T00:00:00Z\"}",
    ];
    let mut lines = Vec::new();
    let mut bad_count = 0;
    for (i, line) in std::fs::read_to_string(&clean).unwrap().lines().enumerate() {
        if i > 0 && i % every == 0 {
            lines.push(bad[bad_count % bad.len()].to_string());
            bad_count += 1;
        }
        lines.push(line.to_string());
    }
    let mixed = dir.join("mixed.jsonl");
    std::fs::write(&mixed, lines.join("\n") + "\n").unwrap();
    (mixed, bad_count)
}

fn dead_letters(data: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(data.join("dead-letter.jsonl"))
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn checkpoint(data: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(data.join("state/checkpoint.json")).unwrap()).unwrap()
}

#[test]
fn the_seed_quickstart_csv_with_a_bom_ingests_and_serves_features() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(
        dir.path(),
        &["ingest", "--from", seed_events_csv().to_str().unwrap()],
    );
    assert!(stdout(&out).contains("5 events"), "{}", stdout(&out));
    let out = run(dir.path(), &["features", "get", "user-042"]);
    let vector: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(vector["user_id"], "user-042");
    assert_eq!(vector["features"]["transaction_amount_count_1h"], 1.0);
    assert_eq!(vector["features"]["transaction_amount_sum_1h"], 312.77);
}

#[test]
fn malformed_lines_all_reach_the_dead_letter_file_and_good_ones_count_once() {
    let dir = tempfile::tempdir().unwrap();
    let (mixed, bad) = events_with_bad_lines(dir.path(), 5_000, 250);
    let out = run(dir.path(), &["ingest", "--from", mixed.to_str().unwrap()]);
    assert!(stdout(&out).contains("5,000 events"), "{}", stdout(&out));
    let letters = dead_letters(&dir.path().join("driftline-data"));
    assert_eq!(letters.len(), bad);
    assert!(letters.iter().all(|l| !l["reason"].as_str().unwrap().is_empty()));
    assert!(
        letters
            .iter()
            .any(|l| l["reason"].as_str().unwrap().contains("in the future"))
    );

    // Ingesting the same file again appends nothing and counts nothing twice.
    let out = run(dir.path(), &["ingest", "--from", mixed.to_str().unwrap()]);
    assert!(stdout(&out).contains("appended 0 records"), "{}", stdout(&out));
    assert_eq!(
        checkpoint(&dir.path().join("driftline-data"))["stats"]["events"],
        5_000
    );

    // Every good event has exactly one training row.
    let rows = dir.path().join("rows.csv");
    run(
        dir.path(),
        &["features", "training-set", "--out", rows.to_str().unwrap()],
    );
    let text = std::fs::read_to_string(rows).unwrap();
    assert_eq!(text.lines().count(), 5_001);
    assert!(text.starts_with("event_id,user_id,event_ts,label,transaction_amount_count_1h,"));
}

#[test]
fn kill_9_mid_ingest_then_restart_equals_a_from_scratch_run() {
    let dir = tempfile::tempdir().unwrap();
    let (mixed, _) = events_with_bad_lines(dir.path(), 60_000, 1_000);
    std::fs::write(
        dir.path().join("driftline.toml"),
        "[ingest]\ncheckpoint_every = 5000\nbatch_size = 512\n",
    )
    .unwrap();
    let victim = dir.path().join("victim");
    let mut child = driftline(dir.path())
        .args([
            "--data-dir",
            victim.to_str().unwrap(),
            "ingest",
            "--from",
            mixed.to_str().unwrap(),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while !victim.join("state/checkpoint.json").exists() && started.elapsed() < Duration::from_secs(60) {
        std::thread::sleep(Duration::from_millis(5));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let interrupted_at = checkpoint(&victim)["next_offset"].as_u64().unwrap();
    run(
        dir.path(),
        &[
            "--data-dir",
            victim.to_str().unwrap(),
            "ingest",
            "--from",
            mixed.to_str().unwrap(),
        ],
    );

    let fresh = dir.path().join("fresh");
    run(
        dir.path(),
        &[
            "--data-dir",
            fresh.to_str().unwrap(),
            "ingest",
            "--from",
            mixed.to_str().unwrap(),
        ],
    );

    let (a, b) = (checkpoint(&victim), checkpoint(&fresh));
    assert_eq!(a["stats"], b["stats"], "killed after offset {interrupted_at}");
    assert_eq!(a["next_offset"], b["next_offset"]);
    let strip = |letters: Vec<serde_json::Value>| -> Vec<(u64, String)> {
        letters
            .into_iter()
            // The reason may quote the receive time, which differs between the two logs.
            .map(|l| {
                let reason = l["reason"].as_str().unwrap();
                (
                    l["offset"].as_u64().unwrap(),
                    reason.split(" (received at").next().unwrap().to_string(),
                )
            })
            .collect()
    };
    let (victim_letters, fresh_letters) = (strip(dead_letters(&victim)), strip(dead_letters(&fresh)));
    assert_eq!(victim_letters.len(), 59);
    assert!(victim_letters == fresh_letters, "dead letters differ");
    for user in ["user-00001", "user-00017", "user-00150", "user-00299"] {
        let get = |data: &Path| {
            stdout(&run(
                dir.path(),
                &["--data-dir", data.to_str().unwrap(), "features", "get", user],
            ))
        };
        assert_eq!(get(&victim), get(&fresh), "{user}");
    }
    let rows = |data: &Path| {
        let out = dir
            .path()
            .join(format!("{}.csv", data.file_name().unwrap().to_str().unwrap()));
        run(
            dir.path(),
            &[
                "--data-dir",
                data.to_str().unwrap(),
                "features",
                "training-set",
                "--out",
                out.to_str().unwrap(),
            ],
        );
        std::fs::read_to_string(out).unwrap()
    };
    assert!(rows(&victim) == rows(&fresh), "training sets differ");
}

#[test]
fn gen_is_deterministic_per_seed() {
    let dir = tempfile::tempdir().unwrap();
    let concept = [
        "gen",
        "--count",
        "2000",
        "--seed",
        "9",
        "--scenario",
        "concept",
        "--onset",
        "1000",
    ];
    let a = run(dir.path(), &concept);
    let b = run(dir.path(), &concept);
    let c = run(dir.path(), &["gen", "--count", "2000", "--seed", "10"]);
    assert_eq!(a.stdout, b.stdout);
    assert_ne!(a.stdout, c.stdout);
    assert_eq!(stdout(&a).lines().count(), 2000);
}

#[test]
fn an_unknown_config_key_is_named_and_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("driftline.toml"), "[ingest]\nbatch_sise = 10\n").unwrap();
    let out = driftline(dir.path()).args(["config"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("batch_sise"), "{err}");
}

#[test]
fn reference_environment_variables_reach_the_effective_config() {
    let dir = tempfile::tempdir().unwrap();
    let out = driftline(dir.path())
        .args(["config"])
        .env("CANARY_SPLIT", "0.25")
        .env("REDPANDA_BROKERS", "broker:9092")
        .output()
        .unwrap();
    let text = stdout(&out);
    assert!(text.contains("canary_split = 0.25"), "{text}");
    assert!(text.contains("brokers = \"broker:9092\""), "{text}");
    let bad = driftline(dir.path())
        .args(["config"])
        .env("CANARY_SPLIT", "lots")
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("CANARY_SPLIT"));
}

#[test]
fn features_get_for_an_unknown_user_is_a_usage_error() {
    let dir = tempfile::tempdir().unwrap();
    run(
        dir.path(),
        &["ingest", "--from", seed_events_csv().to_str().unwrap()],
    );
    let out = driftline(dir.path())
        .args(["features", "get", "nobody"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no events for 'nobody'"));
}

#[test]
fn ingest_follow_consumes_a_live_stream_as_it_is_appended_and_serves_its_metrics() {
    let dir = tempfile::tempdir().unwrap();
    let metrics_port = serve::free_port();
    std::fs::write(
        dir.path().join("driftline.toml"),
        "[ingest]\ncheckpoint_interval = \"200ms\"\n",
    )
    .unwrap();
    std::fs::create_dir_all(dir.path().join("driftline-data/log")).unwrap();
    let mut follower = driftline(dir.path())
        .args([
            "ingest",
            "--follow",
            "--metrics-addr",
            &format!("127.0.0.1:{metrics_port}"),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Two producers one after the other, paced, while the follower runs.
    run(
        dir.path(),
        &[
            "gen", "--count", "3000", "--seed", "1", "--to", "log", "--rate", "20000",
        ],
    );
    // The second stream starts a day later: replaying old event times would be late.
    run(
        dir.path(),
        &[
            "gen",
            "--count",
            "2000",
            "--seed",
            "2",
            "--start",
            "2024-03-02T00:00:00Z",
            "--to",
            "log",
            "--rate",
            "20000",
        ],
    );
    let data = dir.path().join("driftline-data");
    let started = Instant::now();
    let committed = || {
        std::fs::read(data.join("state/checkpoint.json"))
            .ok()
            .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
            .and_then(|c| c["next_offset"].as_u64())
            .unwrap_or(0)
    };
    while committed() < 5_000 && started.elapsed() < Duration::from_secs(60) {
        std::thread::sleep(Duration::from_millis(50));
    }
    // The worker's own metrics endpoint, as Prometheus scrapes it.
    let (status, metrics) =
        serve::http(metrics_port, "GET", "/metrics", "").expect("the metrics endpoint answers");
    follower.kill().unwrap();
    assert_eq!(status, 200);
    for expected in [
        "driftline_ingest_events_total 5000\n",
        "driftline_ingest_next_offset 5000\n",
        "driftline_ingest_dead_lettered_total 0\n",
        "driftline_ingest_lag_records 0\n",
        "# TYPE driftline_feature_freshness_seconds gauge\n",
    ] {
        assert!(metrics.contains(expected), "{expected:?} missing from\n{metrics}");
    }
    follower.wait().unwrap();
    let stats = checkpoint(&data)["stats"].clone();
    assert_eq!(stats["records"], 5_000);
    // The two seeds share no event ids, so every record is a new event.
    assert_eq!(stats["events"], 5_000, "{stats}");
}

//! `driftline train`, `models` and `evaluate` end to end: gates with their reasons,
//! bit-identical retraining, aliases with an audit trail, and refused corrupt artifacts.

use std::path::Path;
use std::process::Output;

use super::{driftline, run, stdout};

fn run_failing(dir: &Path, args: &[&str]) -> Output {
    let output = driftline(dir).args(args).output().expect("driftline runs");
    assert!(!output.status.success(), "driftline {args:?} should have failed");
    output
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn version_json(dir: &Path, reference: &str) -> serde_json::Value {
    serde_json::from_str(&stdout(&run(dir, &["models", "show", reference]))).unwrap()
}

fn history(dir: &Path) {
    run(
        dir,
        &[
            "gen", "--count", "40000", "--users", "300", "--seed", "5", "--to", "log",
        ],
    );
    run(dir, &["ingest"]);
}

#[test]
fn train_judge_alias_roll_back_and_refuse_a_corrupt_artifact() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let out = stdout(&run(dir, &["models", "list"]));
    assert!(out.contains("no versions of fraud yet"), "{out}");
    history(dir);

    // The first model to pass the gates becomes champion.
    let out = stdout(&run(dir, &["train", "--estimator", "gbt"]));
    assert!(
        out.contains("fraud v1 (gbt)") && out.contains("alias:    champion -> v1"),
        "{out}"
    );
    let v1 = version_json(dir, "champion");
    assert_eq!(v1["version"], 1);
    assert!(v1["card"]["holdout"]["roc_auc"].as_f64().unwrap() > 0.8, "{v1}");
    assert_eq!(
        v1["lineage"]["rows_train"].as_u64().unwrap() * 4,
        v1["lineage"]["rows_holdout"].as_u64().unwrap() * 16
    );

    // Logistic regression trails the boosted champion on the same holdout: rejected, exit 1,
    // the reason named, the version kept for the audit trail and never aliasable.
    let failed = run_failing(dir, &["train"]);
    assert_eq!(failed.status.code(), Some(1));
    let err = stderr(&failed);
    assert!(
        err.contains("v2 was rejected by the gates") && err.contains("champion's"),
        "{err}"
    );
    let v2 = version_json(dir, "2");
    assert_eq!(v2["status"], "rejected");
    assert_eq!(v2["card"]["champion"]["version"], 1);
    let refused = run_failing(dir, &["models", "alias", "set", "challenger", "2"]);
    assert_eq!(refused.status.code(), Some(2), "{}", stderr(&refused));

    // Same data, same seed: a bit-identical artifact (the same sha256), passing as challenger.
    let out = stdout(&run(dir, &["train", "--estimator", "gbt"]));
    assert!(out.contains("alias:    challenger -> v3"), "{out}");
    let v3 = version_json(dir, "challenger");
    assert_eq!(v3["artifact"]["sha256"], v1["artifact"]["sha256"]);

    run(dir, &["models", "promote", "--reason", "canary passed"]);
    assert_eq!(version_json(dir, "champion")["version"], 3);
    run(dir, &["models", "rollback", "--reason", "latency regression"]);
    assert_eq!(version_json(dir, "champion")["version"], 1);
    let audit = stdout(&run(dir, &["models", "audit", "--json"]));
    let entries: Vec<serde_json::Value> = audit.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let actions: Vec<&str> = entries.iter().map(|e| e["action"].as_str().unwrap()).collect();
    assert_eq!(
        actions,
        [
            "rolled_back",
            "promoted",
            "alias_removed",
            "alias_set",
            "registered",
            "rejected",
            "alias_set",
            "registered"
        ]
    );
    assert_eq!(entries[0]["reason"], "latency regression");
    assert_eq!(
        (
            entries[0]["from_version"].as_u64(),
            entries[0]["to_version"].as_u64()
        ),
        (Some(3), Some(1))
    );

    // Evaluate on a point-in-time training set written by the feature store.
    let rows = dir.join("rows.csv");
    run(
        dir,
        &["features", "training-set", "--out", rows.to_str().unwrap()],
    );
    let report: serde_json::Value = serde_json::from_str(&stdout(&run(
        dir,
        &["evaluate", "champion", "--data", rows.to_str().unwrap()],
    )))
    .unwrap();
    assert_eq!(report["version"], 1);
    assert_eq!(report["metrics"]["rows"], 40000);
    assert!(report["metrics"]["roc_auc"].as_f64().unwrap() > 0.8, "{report}");

    // Raw events never seen in training (another seed): features computed point in time
    // from the file's own history, through the same contract and engine.
    let fresh = dir.join("fresh.jsonl");
    run(
        dir,
        &[
            "gen",
            "--count",
            "6000",
            "--users",
            "200",
            "--seed",
            "77",
            "--out",
            fresh.to_str().unwrap(),
        ],
    );
    let report: serde_json::Value = serde_json::from_str(&stdout(&run(
        dir,
        &["evaluate", "1", "--data", fresh.to_str().unwrap()],
    )))
    .unwrap();
    assert_eq!(report["metrics"]["rows"], 6000);
    assert!(report["metrics"]["roc_auc"].as_f64().unwrap() > 0.75, "{report}");
    let bad = dir.join("bad.jsonl");
    std::fs::write(&bad, "{\"user_id\":\"u1\",\"transaction_amount\":-3,\"country\":\"US\",\"device\":\"ios\",\"event_ts\":\"2024-01-01T00:00:00Z\",\"label\":1}\n").unwrap();
    let refused = run_failing(dir, &["evaluate", "1", "--data", bad.to_str().unwrap()]);
    assert_eq!(refused.status.code(), Some(2));
    assert!(
        stderr(&refused).contains("line 1: transaction_amount: -3 is below the minimum 0"),
        "{}",
        stderr(&refused)
    );

    // One flipped byte in the stored artifact: refused, naming the checksum.
    let artifact = dir
        .join("driftline-data/artifacts")
        .join(v1["artifact"]["key"].as_str().unwrap());
    let mut bytes = std::fs::read(&artifact).unwrap();
    bytes[100] ^= 0x01;
    std::fs::write(&artifact, bytes).unwrap();
    let refused = run_failing(dir, &["evaluate", "champion", "--data", rows.to_str().unwrap()]);
    let err = stderr(&refused);
    assert!(err.contains("sha256"), "{err}");
}

#[test]
fn absolute_gates_reject_with_the_threshold_named() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    history(dir);
    let failed = driftline(dir)
        .args(["train"])
        .env("MIN_ROC_AUC", "0.99")
        .output()
        .unwrap();
    assert_eq!(failed.status.code(), Some(1));
    let err = stderr(&failed);
    assert!(err.contains("below 0.9900") || err.contains("0.99"), "{err}");
    let v1 = version_json(dir, "1");
    assert_eq!(v1["status"], "rejected");
    assert!(run_failing(dir, &["models", "show", "champion"]).status.code() == Some(2));
}

#[test]
fn two_processes_registering_at_once_get_consecutive_versions() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    history(dir);
    let children: Vec<_> = (0..3)
        .map(|_| {
            driftline(dir)
                .args(["train", "--no-alias", "--json"])
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let mut versions: Vec<u64> = children
        .into_iter()
        .map(|child| {
            let output = child.wait_with_output().unwrap();
            assert!(output.status.success(), "{}", stderr(&output));
            let v: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
            v["version"].as_u64().unwrap()
        })
        .collect();
    versions.sort_unstable();
    assert_eq!(versions, [1, 2, 3]);
    let audit = stdout(&run(dir, &["models", "audit", "--json"]));
    assert_eq!(
        audit.lines().count(),
        3,
        "three registrations, no alias changes:\n{audit}"
    );
}

#[test]
fn generating_into_a_log_again_continues_its_event_time() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    run(dir, &["gen", "--count", "3000", "--users", "50", "--to", "log"]);
    let again = run(
        dir,
        &[
            "gen", "--count", "3000", "--users", "50", "--seed", "8", "--to", "log",
        ],
    );
    assert!(stderr(&again).contains("continuing from"), "{}", stderr(&again));
    let out = stdout(&run(dir, &["ingest"]));
    assert!(out.contains("6,000 events, 0 labels, 0 dead-lettered"), "{out}");
}

//! `driftline drift report` / `validate` end to end on seed files and generated pairs.

use std::path::{Path, PathBuf};

use super::{driftline, run, stdout};

fn seed(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures/seed")
        .join(name)
}

fn generate(dir: &Path, name: &str, count: u64, seed: u64, scenario: &str) -> PathBuf {
    let path = dir.join(name);
    let count = count.to_string();
    let seed = seed.to_string();
    let out = path.to_str().unwrap().to_string();
    run(
        dir,
        &[
            "gen",
            "--count",
            &count,
            "--seed",
            &seed,
            "--scenario",
            scenario,
            "--onset",
            "0",
            "--ramp",
            "1",
            "--out",
            &out,
        ],
    );
    path
}

fn report(dir: &Path, reference: &Path, current: &Path, extra: &[&str]) -> (String, PathBuf, PathBuf) {
    let (json, html) = (dir.join("report.json"), dir.join("report.html"));
    let mut args = vec![
        "drift",
        "report",
        "--reference",
        reference.to_str().unwrap(),
        "--current",
        current.to_str().unwrap(),
        "--json",
        json.to_str().unwrap(),
        "--out",
        html.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    let output = run(dir, &args);
    (stdout(&output), json, html)
}

fn validate_status(dir: &Path, json: &Path) -> Option<i32> {
    driftline(dir)
        .args(["drift", "validate", json.to_str().unwrap()])
        .output()
        .unwrap()
        .status
        .code()
}

#[test]
fn seed_sample_files_report_their_feature_columns_only() {
    let dir = tempfile::tempdir().unwrap();
    let (summary, json, html) = report(
        dir.path(),
        &seed("drift_reference.csv"),
        &seed("drift_current.csv"),
        &[],
    );
    assert!(summary.contains("transaction_amount"), "{summary}");
    assert!(
        !summary.contains("event_id") && !summary.contains("event_ts"),
        "{summary}"
    );
    let value: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(json).unwrap()).unwrap();
    assert_eq!(value["dataset"]["columns"], 3, "{value}");
    assert_eq!(value["dataset"]["drifted"], false);
    assert!(std::fs::read_to_string(html).unwrap().contains("<svg"));
}

/// The covariate scenario moves amounts only: over the three default feature columns one
/// of three drifts, below Evidently's dataset share of 0.5, so the dataset verdict is
/// taken over the amount column.
#[test]
fn covariate_shift_drifts_the_dataset_and_validate_exits_1() {
    let dir = tempfile::tempdir().unwrap();
    let reference = generate(dir.path(), "ref.csv", 5_000, 1, "none");
    let current = generate(dir.path(), "cur.csv", 5_000, 2, "covariate");
    let (all, _, _) = report(dir.path(), &reference, &current, &[]);
    assert!(
        all.contains("DRIFT") && all.contains("dataset drift: no"),
        "{all}"
    );
    let (summary, json, _) = report(
        dir.path(),
        &reference,
        &current,
        &["--columns", "transaction_amount"],
    );
    assert!(summary.contains("dataset drift: YES"), "{summary}");
    assert_eq!(validate_status(dir.path(), &json), Some(1));
    let lenient = driftline(dir.path())
        .env("DRIFT_FAIL_ON_DATASET", "false")
        .args(["drift", "validate", json.to_str().unwrap()])
        .status()
        .unwrap();
    assert_eq!(lenient.code(), Some(0));
}

#[test]
fn two_seeds_of_the_same_scenario_do_not_drift() {
    let dir = tempfile::tempdir().unwrap();
    let reference = generate(dir.path(), "ref.csv", 5_000, 1, "none");
    let current = generate(dir.path(), "cur.csv", 5_000, 2, "none");
    let (summary, json, _) = report(dir.path(), &reference, &current, &[]);
    assert!(summary.contains("dataset drift: no"), "{summary}");
    assert_eq!(validate_status(dir.path(), &json), Some(0));
}

#[test]
fn per_column_overrides_choose_the_test_and_threshold() {
    let dir = tempfile::tempdir().unwrap();
    let (summary, json, _) = report(
        dir.path(),
        &seed("drift_reference.csv"),
        &seed("drift_current.csv"),
        &["--test", "transaction_amount=psi:0.5", "--test", "country=:0.9"],
    );
    let value: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(json).unwrap()).unwrap();
    let amount = &value["columns"][0];
    assert_eq!(
        (amount["test"].as_str(), amount["threshold"].as_f64()),
        (Some("psi"), Some(0.5)),
        "{summary}"
    );
    assert_eq!(value["columns"][1]["threshold"].as_f64(), Some(0.9));
    let bad = driftline(dir.path())
        .args(["drift", "report", "--test", "x=nope"])
        .args(["--reference", seed("drift_reference.csv").to_str().unwrap()])
        .args(["--current", seed("drift_current.csv").to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("unknown test 'nope'"));
}

/// `[drift.columns.NAME]` in driftline.toml changes a verdict, and a `--test` flag
/// overrides only the part it gives (here the threshold, keeping the configured test).
#[test]
fn a_column_override_in_the_config_file_changes_the_verdict() {
    let dir = tempfile::tempdir().unwrap();
    let reference = generate(dir.path(), "ref.csv", 5_000, 1, "none");
    let current = generate(dir.path(), "cur.csv", 5_000, 2, "covariate");
    let only_amount = ["--columns", "transaction_amount"];
    let amount = |json: &Path| -> serde_json::Value {
        let value: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(json).unwrap()).unwrap();
        value["columns"][0].clone()
    };
    let (summary, json, _) = report(dir.path(), &reference, &current, &only_amount);
    assert!(summary.contains("dataset drift: YES"), "{summary}");
    assert_eq!(amount(&json)["test"], "wasserstein");

    std::fs::write(
        dir.path().join("driftline.toml"),
        "[drift.columns.transaction_amount]\ntest = \"psi\"\nthreshold = 10.0\n",
    )
    .unwrap();
    let (summary, json, _) = report(dir.path(), &reference, &current, &only_amount);
    assert!(summary.contains("dataset drift: no"), "{summary}");
    let column = amount(&json);
    assert_eq!(
        (column["test"].as_str(), column["threshold"].as_f64()),
        (Some("psi"), Some(10.0))
    );
    assert_eq!(column["drifted"], false);

    let flags = [
        "--columns",
        "transaction_amount",
        "--test",
        "transaction_amount=:0.01",
    ];
    let (summary, json, _) = report(dir.path(), &reference, &current, &flags);
    assert!(summary.contains("dataset drift: YES"), "{summary}");
    let column = amount(&json);
    assert_eq!(
        (column["test"].as_str(), column["threshold"].as_f64()),
        (Some("psi"), Some(0.01))
    );

    std::fs::write(
        dir.path().join("driftline.toml"),
        "[drift.columns.transaction_amount]\ntest = \"kss\"\n",
    )
    .unwrap();
    let bad = driftline(dir.path())
        .args(["drift", "report", "--reference", reference.to_str().unwrap()])
        .args(["--current", current.to_str().unwrap()])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&bad.stderr);
    assert_eq!(bad.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("unknown variant `kss`") && stderr.contains("test = \"kss\""),
        "{stderr}"
    );
}

#[test]
fn a_bad_report_file_exits_2_naming_the_problem() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.json");
    std::fs::write(&bad, "{\"not\": \"a report\"}").unwrap();
    let output = driftline(dir.path())
        .args(["drift", "validate", bad.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("is not a drift report"));
    let missing = driftline(dir.path())
        .args([
            "drift",
            "report",
            "--reference",
            "nope.csv",
            "--current",
            "nope.csv",
        ])
        .output()
        .unwrap();
    assert_eq!(missing.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("nope.csv"));
}

#[test]
fn html_for_200k_rows_is_self_contained_and_under_1_mb() {
    let dir = tempfile::tempdir().unwrap();
    let reference = generate(dir.path(), "ref.csv", 200_000, 1, "none");
    let current = generate(dir.path(), "cur.csv", 200_000, 2, "covariate");
    let (_, _, html) = report(dir.path(), &reference, &current, &[]);
    let text = std::fs::read_to_string(html).unwrap();
    assert!(!text.contains("http://") && !text.contains("https://"));
    assert!(text.len() < 1_000_000, "{} bytes", text.len());
}

/// The progress bar is for terminals: a report whose stderr is a pipe writes none, with
/// or without `--quiet`, and the verdicts do not depend on the columns' threads.
#[test]
fn a_report_to_a_pipe_draws_no_progress_bar() {
    let dir = tempfile::tempdir().unwrap();
    let reference = generate(dir.path(), "ref.csv", 20_000, 1, "none");
    let current = generate(dir.path(), "cur.csv", 20_000, 2, "covariate");
    let mut first = None;
    for extra in [&[][..], &["--quiet"][..]] {
        let (_, json, _) = report(dir.path(), &reference, &current, extra);
        let output = driftline(dir.path())
            .args(["drift", "report", "--reference", reference.to_str().unwrap()])
            .args(["--current", current.to_str().unwrap()])
            .args(extra)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            !stderr.contains("reading") && !stderr.contains("testing"),
            "{stderr}"
        );
        let text = std::fs::read_to_string(json).unwrap();
        assert_eq!(first.get_or_insert_with(|| text.clone()), &text);
    }
}

/// A champion's stored profile stands in for the reference file: its own training rows
/// do not drift from it, and a file without its feature columns is refused, naming them.
#[test]
fn model_champion_reference_compares_feature_rows_with_the_stored_profile() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    run(
        dir,
        &[
            "gen", "--count", "40000", "--users", "300", "--seed", "5", "--to", "log",
        ],
    );
    run(dir, &["ingest"]);
    run(dir, &["train", "--estimator", "gbt"]);
    let rows = dir.join("rows.csv");
    run(
        dir,
        &["features", "training-set", "--out", rows.to_str().unwrap()],
    );
    let output = run(
        dir,
        &[
            "drift",
            "report",
            "--reference",
            "model:champion",
            "--current",
            rows.to_str().unwrap(),
        ],
    );
    let summary = stdout(&output);
    assert!(summary.contains("dataset drift: no"), "{summary}");
    // Raw events carry the request fields as text; category features are encoded to
    // the contract's codes before comparing, so the seed sample is compared, not refused.
    let raw = run(
        dir,
        &[
            "drift",
            "report",
            "--reference",
            "model:champion",
            "--current",
            seed("drift_current.csv").to_str().unwrap(),
        ],
    );
    let raw = stdout(&raw);
    assert!(raw.contains("country") && raw.contains("device"), "{raw}");
    let bad = dir.join("other.csv");
    std::fs::write(&bad, "a,b\n1,2\n").unwrap();
    let refused = driftline(dir)
        .args(["drift", "report", "--reference", "model:champion"])
        .args(["--current", bad.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(refused.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("none of the model's feature columns"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
}

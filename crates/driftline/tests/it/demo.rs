//! `driftline demo`, the README's run command, closes the loop by itself: the concept
//! drift is detected, a retrained model passes the gates and the canary, is promoted, and
//! recovers the champion's quality; the audit log tells the story.

use super::{driftline, run};

#[test]
fn the_demo_detects_the_drift_retrains_canaries_and_promotes_a_recovered_model() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    // A shorter live story than the README's (debug build, shared CI cores), on the same
    // history: 400,000 events span 9.3 days, so the baseline trains on rows whose 7-day
    // windows are full. With 200,000 (4.6 days) it trained on partial windows and its
    // quality hovered at the gates (average precision 0.1998 against 0.2 in one run, when
    // the history's event times followed the wall clock; they start at `--start-hour`
    // now, so every run tells the same story).
    let output = driftline(dir)
        .args([
            "demo",
            "--history",
            "400000",
            "--rate",
            "400",
            "--onset-after",
            "10",
            "--deadline",
            "120",
            "--addr",
            "127.0.0.1:0",
        ])
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&output.stdout).to_string();
    assert!(
        output.status.success(),
        "{out}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    for step in [
        "serving: dashboard http://127.0.0.1:",
        "drift begins",
        "detected: concept drift",
        "promoted: v2 promoted",
    ] {
        assert!(out.contains(step), "no {step:?} in:\n{out}");
    }
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("driftline-data/demo/loop-report.json")).unwrap())
            .unwrap();
    let auc = |key: &str| {
        report[key]
            .as_f64()
            .unwrap_or_else(|| panic!("{key} in {report}"))
    };
    let (before, after, retrained) = (
        auc("champion_auc_before_onset"),
        auc("champion_auc_after_onset"),
        auc("retrained_auc"),
    );
    assert!(
        after < before - 0.2,
        "the concept drift should hurt the champion: {report}"
    );
    assert!(
        retrained > before - 0.05,
        "the retrained model should recover: {report}"
    );
    assert_eq!(report["retrained_version"], 2, "{report}");

    let audit = String::from_utf8(
        run(
            dir,
            &[
                "--data-dir",
                "driftline-data/demo",
                "models",
                "audit",
                "--limit",
                "40",
            ],
        )
        .stdout,
    )
    .unwrap();
    for entry in [
        "trigger=concept drift detected by",
        "challenger",
        "passed every rollout step",
    ] {
        assert!(audit.contains(entry), "no {entry:?} in the audit log:\n{audit}");
    }
}

//! Promotion gates: absolute floors on ROC AUC and average precision, and "no worse than
//! the champion, beyond a tolerance".
//!
//! Key decision: this module only compares numbers. The caller scores the candidate and
//! the champion on the same recent holdout; every check is evaluated and reported, not
//! just the first failure, so the audit trail says everything that was judged.

use serde::{Deserialize, Serialize};

use crate::error::ModelError;
use crate::metrics::Metrics;

/// Gate thresholds (the reference stack's `MIN_ROC_AUC` and `MIN_AVG_PRECISION`, plus
/// the tolerated regression against the champion).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Gates {
    /// A candidate's holdout ROC AUC must reach this.
    pub min_roc_auc: f64,
    /// A candidate's holdout average precision must reach this.
    pub min_avg_precision: f64,
    /// A candidate may score at most this much below the champion, on each metric.
    pub max_regression: f64,
}

impl Default for Gates {
    fn default() -> Self {
        Self {
            min_roc_auc: 0.7,
            min_avg_precision: 0.2,
            max_regression: 0.01,
        }
    }
}

/// One judged condition.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GateCheck {
    /// Which gate: `min_roc_auc`, `min_avg_precision`, `champion_roc_auc` or
    /// `champion_avg_precision`.
    pub gate: String,
    /// The candidate's value, when defined.
    pub value: Option<f64>,
    /// The value it had to reach.
    pub threshold: Option<f64>,
    pub passed: bool,
    /// The verdict in words, for the audit log and the CLI.
    pub reason: String,
}

/// Every check, and whether all passed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GateReport {
    pub passed: bool,
    pub checks: Vec<GateCheck>,
}

impl GateReport {
    /// The checks that failed.
    pub fn failures(&self) -> impl Iterator<Item = &GateCheck> {
        self.checks.iter().filter(|c| !c.passed)
    }

    /// One line: "passed" or the reasons of the failures.
    pub fn summary(&self) -> String {
        if self.passed {
            "all gates passed".into()
        } else {
            self.failures()
                .map(|c| c.reason.as_str())
                .collect::<Vec<_>>()
                .join("; ")
        }
    }
}

impl Gates {
    /// Every threshold must be a number from 0 to 1.
    pub fn check(&self) -> Result<(), ModelError> {
        for (name, value) in [
            ("min_roc_auc", self.min_roc_auc),
            ("min_avg_precision", self.min_avg_precision),
            ("max_regression", self.max_regression),
        ] {
            if !(0.0..=1.0).contains(&value) {
                return Err(ModelError::invalid_param(
                    name,
                    format!("{value} must be from 0 to 1"),
                ));
            }
        }
        Ok(())
    }

    /// Judges a candidate's holdout metrics, against the champion's on the same holdout
    /// when there is a champion.
    pub fn evaluate(&self, candidate: &Metrics, champion: Option<&Metrics>) -> GateReport {
        let mut checks = vec![
            floor("min_roc_auc", "ROC AUC", candidate.roc_auc, self.min_roc_auc),
            floor(
                "min_avg_precision",
                "average precision",
                candidate.average_precision,
                self.min_avg_precision,
            ),
        ];
        if let Some(champion) = champion {
            checks.push(no_worse(
                "champion_roc_auc",
                "ROC AUC",
                candidate.roc_auc,
                champion.roc_auc,
                self.max_regression,
            ));
            checks.push(no_worse(
                "champion_avg_precision",
                "average precision",
                candidate.average_precision,
                champion.average_precision,
                self.max_regression,
            ));
        }
        GateReport {
            passed: checks.iter().all(|c| c.passed),
            checks,
        }
    }
}

fn floor(gate: &str, metric: &str, value: Option<f64>, threshold: f64) -> GateCheck {
    let (passed, reason) = match value {
        None => (
            false,
            format!("{metric} is undefined on the holdout (it needs both classes)"),
        ),
        Some(v) if v >= threshold => (true, format!("{metric} {v:.4} reaches {threshold:.4}")),
        Some(v) => (
            false,
            format!("{metric} {v:.4} is below the minimum {threshold:.4}"),
        ),
    };
    GateCheck {
        gate: gate.into(),
        value,
        threshold: Some(threshold),
        passed,
        reason,
    }
}

fn no_worse(
    gate: &str,
    metric: &str,
    value: Option<f64>,
    champion: Option<f64>,
    tolerance: f64,
) -> GateCheck {
    let threshold = champion.map(|c| c - tolerance);
    let (passed, reason) = match (value, champion) {
        (_, None) => (
            true,
            format!("the champion has no {metric} on this holdout to compare with"),
        ),
        (None, Some(_)) => (
            false,
            format!("{metric} is undefined on the holdout (it needs both classes)"),
        ),
        (Some(v), Some(c)) if v >= c - tolerance => (
            true,
            format!("{metric} {v:.4} is within {tolerance} of the champion's {c:.4} or better"),
        ),
        (Some(v), Some(c)) => (
            false,
            format!("{metric} {v:.4} is more than {tolerance} below the champion's {c:.4}"),
        ),
    };
    GateCheck {
        gate: gate.into(),
        value,
        threshold,
        passed,
        reason,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Metrics of a small holdout at threshold 0.5.
    fn metrics(scores: &[f64], labels: &[bool]) -> Metrics {
        Metrics::compute(scores, labels, 0.5).unwrap()
    }

    fn strong() -> Metrics {
        metrics(
            &[0.9, 0.8, 0.3, 0.2, 0.1, 0.7],
            &[true, true, false, false, false, true],
        )
    }

    fn weak() -> Metrics {
        metrics(
            &[0.9, 0.2, 0.3, 0.8, 0.1, 0.4],
            &[true, true, false, false, false, true],
        )
    }

    #[test]
    fn a_good_candidate_without_a_champion_passes_the_floors() {
        let report = Gates::default().evaluate(&strong(), None);
        assert!(report.passed, "{}", report.summary());
        assert_eq!(report.checks.len(), 2);
    }

    #[test]
    fn every_failed_floor_is_reported_with_its_reason() {
        let gates = Gates {
            min_roc_auc: 0.9,
            min_avg_precision: 0.95,
            ..Gates::default()
        };
        let report = gates.evaluate(&weak(), None);
        assert!(!report.passed);
        let failed: Vec<&str> = report.failures().map(|c| c.gate.as_str()).collect();
        assert_eq!(failed, ["min_roc_auc", "min_avg_precision"]);
        assert!(
            report.summary().contains("is below the minimum 0.9000"),
            "{}",
            report.summary()
        );
    }

    #[test]
    fn a_candidate_worse_than_the_champion_beyond_the_tolerance_fails() {
        let gates = Gates {
            min_roc_auc: 0.0,
            min_avg_precision: 0.0,
            max_regression: 0.01,
        };
        let report = gates.evaluate(&weak(), Some(&strong()));
        assert!(!report.passed);
        assert!(report.failures().any(|c| c.gate == "champion_roc_auc"));
        let same = gates.evaluate(&strong(), Some(&strong()));
        assert!(same.passed, "equal to the champion passes: {}", same.summary());
        let tolerant = Gates {
            max_regression: 1.0,
            ..gates
        };
        assert!(tolerant.evaluate(&weak(), Some(&strong())).passed);
    }

    #[test]
    fn a_single_class_holdout_fails_the_floors_instead_of_passing_silently() {
        let one_class = metrics(&[0.2, 0.4], &[false, false]);
        let report = Gates::default().evaluate(&one_class, None);
        assert!(!report.passed);
        assert!(report.summary().contains("undefined"), "{}", report.summary());
    }

    #[test]
    fn thresholds_outside_0_to_1_are_rejected_naming_the_field() {
        let err = Gates {
            max_regression: -0.1,
            ..Gates::default()
        }
        .check()
        .unwrap_err();
        assert!(err.to_string().contains("max_regression"), "{err}");
    }
}

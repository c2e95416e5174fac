//! The vocabulary of drift configuration: the named drift tests and a column's choice of
//! test and threshold, as `[drift.columns.NAME]` in `driftline.toml` spells them.
//!
//! Key decision: these types live here, not in `driftline-drift`, so configuration is
//! parsed into them directly (a misspelt test is an error naming the key at load) and the
//! batch report and the streaming monitor read one definition. The mathematics of each
//! test stays in `driftline-drift`.

use serde::{Deserialize, Serialize};

/// A drift test, by Evidently's name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StatTest {
    /// Two-sample Kolmogorov–Smirnov p-value (numeric only).
    Ks,
    /// Chi-square p-value on category counts.
    #[serde(rename = "chisquare")]
    ChiSquare,
    /// Two-proportion Z-test p-value.
    #[serde(rename = "z")]
    ZTest,
    /// Jensen–Shannon distance (base 2) on Evidently's bins.
    #[serde(rename = "jensenshannon")]
    JensenShannon,
    /// Wasserstein distance normed by the reference standard deviation (numeric only).
    Wasserstein,
    /// Population stability index on Evidently's bins.
    Psi,
    /// Hellinger distance.
    Hellinger,
}

impl StatTest {
    /// Every test, in the order they are documented.
    pub const ALL: [StatTest; 7] = [
        StatTest::Ks,
        StatTest::ChiSquare,
        StatTest::ZTest,
        StatTest::JensenShannon,
        StatTest::Wasserstein,
        StatTest::Psi,
        StatTest::Hellinger,
    ];

    /// Whether the score is a p-value (else a distance).
    pub fn is_p_value(self) -> bool {
        matches!(self, StatTest::Ks | StatTest::ChiSquare | StatTest::ZTest)
    }

    /// Whether the test needs numbers (KS and Wasserstein cannot compare categories).
    pub fn numeric_only(self) -> bool {
        matches!(self, StatTest::Ks | StatTest::Wasserstein)
    }

    /// Evidently's default threshold: 0.05 for p-values, 0.1 for distances.
    pub fn default_threshold(self) -> f64 {
        if self.is_p_value() { 0.05 } else { 0.1 }
    }

    /// Evidently's verdict for a score against a threshold: KS drifts when p <= threshold,
    /// chi-square and Z when p < threshold, every distance when score >= threshold. A NaN
    /// score never drifts.
    pub fn drifted(self, score: f64, threshold: f64) -> bool {
        match self {
            StatTest::Ks => score <= threshold,
            StatTest::ChiSquare | StatTest::ZTest => score < threshold,
            _ => score >= threshold,
        }
    }

    /// The test of an Evidently name ("ks", "chisquare", "z", "jensenshannon",
    /// "wasserstein", "psi", "hellinger").
    pub fn from_name(name: &str) -> Option<StatTest> {
        Self::ALL.into_iter().find(|t| t.name() == name)
    }

    pub fn name(self) -> &'static str {
        match self {
            StatTest::Ks => "ks",
            StatTest::ChiSquare => "chisquare",
            StatTest::ZTest => "z",
            StatTest::JensenShannon => "jensenshannon",
            StatTest::Wasserstein => "wasserstein",
            StatTest::Psi => "psi",
            StatTest::Hellinger => "hellinger",
        }
    }
}

/// `[drift.columns.NAME]`: one column's test and threshold instead of the defaults.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ColumnOverride {
    /// The test to run instead of the default: ks, chisquare, z, jensenshannon,
    /// wasserstein, psi or hellinger.
    pub test: Option<StatTest>,
    /// The threshold to use instead of the test's default (a p-value in [0, 1] for ks,
    /// chisquare and z; a distance >= 0 otherwise).
    pub threshold: Option<f64>,
}

impl ColumnOverride {
    /// Checks the threshold against the test's kind; the error names the field.
    pub fn check(&self) -> Result<(), String> {
        let Some(threshold) = self.threshold else {
            return Ok(());
        };
        match self.test {
            Some(test) if test.is_p_value() && !(0.0..=1.0).contains(&threshold) => Err(format!(
                "threshold: {threshold} must be from 0 to 1 for the p-value test {}",
                test.name()
            )),
            _ if !(threshold.is_finite() && threshold >= 0.0) => {
                Err(format!("threshold: must be a number >= 0, got {threshold}"))
            }
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_match_serde() {
        for test in StatTest::ALL {
            assert_eq!(StatTest::from_name(test.name()), Some(test));
            assert_eq!(
                serde_json::to_string(&test).unwrap(),
                format!("\"{}\"", test.name())
            );
        }
        assert_eq!(StatTest::from_name("t-test"), None);
    }

    #[test]
    fn comparison_direction_follows_evidently() {
        assert!(StatTest::Ks.drifted(0.05, 0.05));
        assert!(!StatTest::ChiSquare.drifted(0.05, 0.05));
        assert!(StatTest::Wasserstein.drifted(0.1, 0.1));
        assert!(!StatTest::ZTest.drifted(f64::NAN, 0.05));
        assert!(!StatTest::JensenShannon.drifted(f64::NAN, 0.1));
    }

    #[test]
    fn override_thresholds_are_checked_against_the_test_kind() {
        let ks = |t| ColumnOverride {
            test: Some(StatTest::Ks),
            threshold: Some(t),
        };
        assert!(ks(0.01).check().is_ok());
        assert!(ks(2.0).check().unwrap_err().starts_with("threshold:"));
        let distance = ColumnOverride {
            test: None,
            threshold: Some(2.0),
        };
        assert!(distance.check().is_ok());
        assert!(
            ColumnOverride {
                threshold: Some(-1.0),
                ..distance
            }
            .check()
            .is_err()
        );
    }
}

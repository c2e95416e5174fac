//! Which test and threshold each column gets: Evidently's data-drift preset by default,
//! every choice overridable per column.
//!
//! Key decision: the default rule is Evidently's `_get_default_stattest`, verbatim: with at
//! most 1,000 reference values (after dropping missing ones), numeric columns with more
//! than 5 distinct values (reference and current together) get KS, others chi-square
//! when more than 2 distinct values and the Z-test otherwise; above 1,000 reference
//! values, numeric columns with more than 5 distinct values get the normed Wasserstein
//! distance and everything else Jensen–Shannon. The dataset drifts when the share of
//! drifted columns is at least `drift_share`. Whether a column is numeric is decided
//! before, as Evidently's `infer_column_type` decides it (`crate::report`'s alignment:
//! few-valued integers are categories).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

pub use driftline_core::drift::ColumnOverride;

use crate::data::ColumnValues;
use crate::stattest::{ColumnType, PairedCounts, StatTest};

/// Reference size up to which Evidently chooses statistical tests over distances.
pub const SMALL_REFERENCE_ROWS: usize = 1000;

/// How drift is judged.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DriftConfig {
    /// Threshold of the p-value tests (KS, chi-square, Z). Evidently's default 0.05; the
    /// CLI takes it from `drift.p_value_threshold` (env `DRIFT_P_VALUE_THRESHOLD`).
    pub p_value_threshold: f64,
    /// Threshold of the distances (Wasserstein, Jensen–Shannon, PSI, Hellinger).
    pub distance_threshold: f64,
    /// The dataset drifts when at least this share of columns drift.
    pub drift_share: f64,
    /// Per-column test and threshold, by column name.
    pub columns: BTreeMap<String, ColumnOverride>,
}

impl Default for DriftConfig {
    fn default() -> Self {
        Self {
            p_value_threshold: 0.05,
            distance_threshold: 0.1,
            drift_share: 0.5,
            columns: BTreeMap::new(),
        }
    }
}

impl DriftConfig {
    /// Rejects thresholds outside their range.
    pub fn check(&self) -> Result<(), String> {
        let in_unit = |name: &str, x: f64| {
            if (0.0..=1.0).contains(&x) {
                Ok(())
            } else {
                Err(format!("{name} must be within [0, 1], got {x}"))
            }
        };
        in_unit("p_value_threshold", self.p_value_threshold)?;
        in_unit("drift_share", self.drift_share)?;
        if self.distance_threshold.is_nan() || self.distance_threshold < 0.0 {
            return Err(format!(
                "distance_threshold must be >= 0, got {}",
                self.distance_threshold
            ));
        }
        for (name, o) in &self.columns {
            o.check().map_err(|e| format!("column '{name}': {e}"))?;
        }
        Ok(())
    }

    /// The test and threshold for a column pair.
    pub fn choose(&self, name: &str, reference: &ColumnValues, current: &ColumnValues) -> (StatTest, f64) {
        let test = self
            .columns
            .get(name)
            .and_then(|o| o.test)
            .unwrap_or_else(|| default_test(reference, current));
        (test, self.threshold(name, test))
    }

    /// The threshold of `test` on column `name`: the column's own, else the configured
    /// threshold of p-value tests or of distances.
    pub fn threshold(&self, name: &str, test: StatTest) -> f64 {
        self.columns
            .get(name)
            .and_then(|o| o.threshold)
            .unwrap_or(if test.is_p_value() {
                self.p_value_threshold
            } else {
                self.distance_threshold
            })
    }
}

/// Evidently's default test for a column pair.
pub fn default_test(reference: &ColumnValues, current: &ColumnValues) -> StatTest {
    let distinct = combined_unique_count(reference, current);
    let small = reference.len() <= SMALL_REFERENCE_ROWS;
    match (ColumnType::of(reference), small) {
        (ColumnType::Numeric, true) if distinct > 5 => StatTest::Ks,
        (_, true) if distinct > 2 => StatTest::ChiSquare,
        (_, true) => StatTest::ZTest,
        (ColumnType::Numeric, false) if distinct > 5 => StatTest::Wasserstein,
        (_, false) => StatTest::JensenShannon,
    }
}

/// Distinct values over reference and current together.
pub fn combined_unique_count(reference: &ColumnValues, current: &ColumnValues) -> usize {
    PairedCounts::of(reference, current).labels.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn numeric(values: impl IntoIterator<Item = f64>) -> ColumnValues {
        let mut sorted: Vec<f64> = values.into_iter().collect();
        sorted.sort_by(f64::total_cmp);
        ColumnValues::Numeric {
            sorted,
            integer_valued: false,
        }
    }

    fn categorical(pairs: &[(&str, u64)]) -> ColumnValues {
        ColumnValues::Categorical {
            counts: pairs.iter().map(|(k, n)| (k.to_string(), *n)).collect(),
        }
    }

    #[test]
    fn small_references_get_statistical_tests_as_in_evidently() {
        let many = numeric((0..100).map(f64::from));
        assert_eq!(default_test(&many, &many), StatTest::Ks);
        let few = numeric((0..100).map(|i| f64::from(i % 4)));
        assert_eq!(default_test(&few, &few), StatTest::ChiSquare);
        let two = numeric((0..100).map(|i| f64::from(i % 2)));
        assert_eq!(default_test(&two, &two), StatTest::ZTest);
        let cats = categorical(&[("a", 5), ("b", 5), ("c", 1)]);
        assert_eq!(default_test(&cats, &cats), StatTest::ChiSquare);
        let binary = categorical(&[("a", 5), ("b", 5)]);
        assert_eq!(default_test(&binary, &binary), StatTest::ZTest);
    }

    #[test]
    fn references_above_1000_rows_get_distances() {
        let many = numeric((0..1001).map(f64::from));
        assert_eq!(default_test(&many, &many), StatTest::Wasserstein);
        let few = numeric((0..1001).map(|i| f64::from(i % 5)));
        assert_eq!(default_test(&few, &few), StatTest::JensenShannon);
        let cats = categorical(&[("a", 600), ("b", 401)]);
        assert_eq!(default_test(&cats, &cats), StatTest::JensenShannon);
    }

    #[test]
    fn exactly_1000_reference_rows_is_still_small() {
        let r = numeric((0..1000).map(f64::from));
        assert_eq!(default_test(&r, &r), StatTest::Ks);
    }

    #[test]
    fn per_column_overrides_win_and_thresholds_follow_the_test_kind() {
        let mut config = DriftConfig {
            p_value_threshold: 0.01,
            ..DriftConfig::default()
        };
        let r = numeric((0..100).map(f64::from));
        assert_eq!(config.choose("x", &r, &r), (StatTest::Ks, 0.01));
        config.columns.insert(
            "x".into(),
            ColumnOverride {
                test: Some(StatTest::Psi),
                threshold: None,
            },
        );
        assert_eq!(config.choose("x", &r, &r), (StatTest::Psi, 0.1));
        config.columns.get_mut("x").unwrap().threshold = Some(0.2);
        assert_eq!(config.choose("x", &r, &r), (StatTest::Psi, 0.2));
    }

    #[test]
    fn config_rejects_out_of_range_thresholds_and_unknown_keys() {
        let bad = DriftConfig {
            p_value_threshold: 1.5,
            ..DriftConfig::default()
        };
        assert!(bad.check().is_err());
        assert!(serde_json::from_str::<DriftConfig>(r#"{"p_value": 0.1}"#).is_err());
        let parsed: DriftConfig = serde_json::from_str(r#"{"columns": {"x": {"test": "psi"}}}"#).unwrap();
        assert_eq!(parsed.columns["x"].test, Some(StatTest::Psi));
    }
}

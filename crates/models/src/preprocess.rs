//! Preprocessing fitted inside a model: per-column standardisation with mean imputation and
//! optional missing-indicator columns.
//!
//! The design decision: a column counts as constant by scikit-learn's `StandardScaler` rule
//! (`var <= n·eps·var + (n·mean·eps)²`), not `var == 0`, because a two-pass variance of a
//! constant non-representable value (0.1) is rounding noise, and dividing by that noise would
//! blow the column up. Constant columns keep scale 1. Missing values become the training
//! mean (0 after scaling); an indicator column per training column that had any missing
//! value lets the model still use "was missing" as a signal.

use serde::{Deserialize, Serialize};

use crate::dataset::Dataset;
use crate::error::ModelError;

/// How to fit a [`Standardizer`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StandardizerParams {
    /// Append one 0/1 column per input column that had a missing value in training,
    /// 1 when the value is missing. Default `true`.
    pub missing_indicators: bool,
}

impl Default for StandardizerParams {
    fn default() -> Self {
        StandardizerParams {
            missing_indicators: true,
        }
    }
}

impl StandardizerParams {
    /// Checks the parameters (every combination is currently valid).
    pub fn check(&self) -> Result<(), ModelError> {
        Ok(())
    }

    /// Learns each column's mean and population standard deviation from its non-missing
    /// values. A column with no values gets mean 0 and scale 1.
    pub fn fit(&self, data: &Dataset) -> Result<Standardizer, ModelError> {
        self.check()?;
        let n_cols = data.n_cols();
        let mut means = Vec::with_capacity(n_cols);
        let mut scales = Vec::with_capacity(n_cols);
        let mut indicators = Vec::new();
        for j in 0..n_cols {
            let column = || (0..data.n_rows()).map(|i| data.row(i)[j]).filter(|v| !v.is_nan());
            let n = column().count();
            let (mean, scale) = if n == 0 {
                (0.0, 1.0)
            } else {
                let mean = neumaier(column()) / n as f64;
                let var = neumaier(column().map(|v| (v - mean) * (v - mean))) / n as f64;
                let nf = n as f64;
                let upper = nf * f64::EPSILON * var + (nf * mean * f64::EPSILON).powi(2);
                (mean, if var <= upper { 1.0 } else { var.sqrt() })
            };
            if !mean.is_finite() || !scale.is_finite() {
                return Err(ModelError::NonFinite {
                    what: "column mean or scale",
                });
            }
            means.push(mean);
            scales.push(scale);
            if self.missing_indicators && n < data.n_rows() {
                indicators.push(j);
            }
        }
        Standardizer::from_parts(data.columns().to_vec(), means, scales, indicators)
    }
}

/// Compensated (Neumaier) sum, in iteration order.
pub(crate) fn neumaier(values: impl Iterator<Item = f64>) -> f64 {
    let mut acc = Neumaier::default();
    values.for_each(|v| acc.add(v));
    acc.total()
}

/// The running state of a [`neumaier`] sum, for loops that add as they go.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Neumaier {
    sum: f64,
    comp: f64,
}

impl Neumaier {
    #[inline]
    pub(crate) fn add(&mut self, v: f64) {
        let t = self.sum + v;
        self.comp += if self.sum.abs() >= v.abs() {
            (self.sum - t) + v
        } else {
            (v - t) + self.sum
        };
        self.sum = t;
    }

    pub(crate) fn total(&self) -> f64 {
        self.sum + self.comp
    }
}

/// A fitted standardiser: `(x - mean) / scale` per column, missing → 0, then the
/// missing-indicator columns in input-column order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "RawStandardizer")]
pub struct Standardizer {
    columns: Vec<String>,
    means: Vec<f64>,
    scales: Vec<f64>,
    indicators: Vec<usize>,
}

/// The unchecked serialised form of a [`Standardizer`].
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStandardizer {
    columns: Vec<String>,
    means: Vec<f64>,
    scales: Vec<f64>,
    indicators: Vec<usize>,
}

impl TryFrom<RawStandardizer> for Standardizer {
    type Error = ModelError;

    fn try_from(raw: RawStandardizer) -> Result<Self, Self::Error> {
        Standardizer::from_parts(raw.columns, raw.means, raw.scales, raw.indicators)
    }
}

impl Standardizer {
    fn from_parts(
        columns: Vec<String>,
        means: Vec<f64>,
        scales: Vec<f64>,
        indicators: Vec<usize>,
    ) -> Result<Self, ModelError> {
        let n = columns.len();
        if means.len() != n || scales.len() != n {
            return Err(ModelError::Inconsistent(format!(
                "{n} columns but {} means and {} scales",
                means.len(),
                scales.len()
            )));
        }
        if means.iter().any(|m| !m.is_finite()) || scales.iter().any(|s| !(s.is_finite() && *s > 0.0)) {
            return Err(ModelError::Inconsistent(
                "means must be finite and scales finite and positive".into(),
            ));
        }
        if indicators.windows(2).any(|w| w[0] >= w[1]) || indicators.last().is_some_and(|&j| j >= n) {
            return Err(ModelError::Inconsistent(format!(
                "indicator columns must be increasing positions below {n}"
            )));
        }
        Ok(Standardizer {
            columns,
            means,
            scales,
            indicators,
        })
    }

    /// The number of input columns a row must have.
    pub fn n_inputs(&self) -> usize {
        self.columns.len()
    }

    /// The number of values [`Standardizer::transform_row`] writes: inputs plus indicators.
    pub fn n_outputs(&self) -> usize {
        self.columns.len() + self.indicators.len()
    }

    /// The input column names.
    pub fn columns(&self) -> &[String] {
        &self.columns
    }

    /// The per-column training means (of non-missing values).
    pub fn means(&self) -> &[f64] {
        &self.means
    }

    /// The per-column scales (population standard deviation, 1 for constant columns).
    pub fn scales(&self) -> &[f64] {
        &self.scales
    }

    /// The positions of the input columns that have a missing-indicator output.
    pub fn indicator_columns(&self) -> &[usize] {
        &self.indicators
    }

    /// The output column names: the inputs, then `"<name>__missing"` per indicator.
    pub fn output_names(&self) -> Vec<String> {
        let indicators = self
            .indicators
            .iter()
            .map(|&j| format!("{}__missing", self.columns[j]));
        self.columns.iter().cloned().chain(indicators).collect()
    }

    /// Replaces `out`'s contents with the transformed `row` ([`Self::n_outputs`] values).
    ///
    /// # Panics
    /// If `row.len() != self.n_inputs()` (a caller that did not check the width has a bug;
    /// the model's batch API checks and returns [`ModelError::WidthMismatch`]).
    pub fn transform_row(&self, row: &[f64], out: &mut Vec<f64>) {
        assert_eq!(
            row.len(),
            self.n_inputs(),
            "row width differs from the fitted columns"
        );
        out.clear();
        out.extend(
            row.iter()
                .zip(self.means.iter().zip(&self.scales))
                .map(|(&x, (&m, &s))| if x.is_nan() { 0.0 } else { (x - m) / s }),
        );
        out.extend(
            self.indicators
                .iter()
                .map(|&j| if row[j].is_nan() { 1.0 } else { 0.0 }),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(features: Vec<f64>, n_cols: usize) -> Dataset {
        let rows = features.len() / n_cols;
        let cols = (0..n_cols).map(|i| format!("c{i}")).collect();
        Dataset::new(features, vec![false; rows], cols).unwrap()
    }

    #[test]
    fn scales_imputes_and_flags_missing_values() {
        // c0: 1, 3, NaN -> mean 2, std 1. c1: constant 0.1 -> scale 1. c2: all missing.
        let d = data(
            vec![1.0, 0.1, f64::NAN, 3.0, 0.1, f64::NAN, f64::NAN, 0.1, f64::NAN],
            3,
        );
        let s = StandardizerParams::default().fit(&d).unwrap();
        assert_eq!(s.means()[0], 2.0);
        assert_eq!(s.scales(), &[1.0, 1.0, 1.0]);
        assert_eq!(s.indicator_columns(), &[0, 2]);
        assert_eq!(s.output_names(), ["c0", "c1", "c2", "c0__missing", "c2__missing"]);
        let mut out = Vec::new();
        s.transform_row(&[3.0, 0.1, f64::NAN], &mut out);
        // 0.1 - mean(0.1, 0.1, 0.1) is rounding noise, not blown up by a tiny scale.
        assert!(out[1].abs() < 1e-16, "{out:?}");
        out[1] = 0.0;
        assert_eq!(out, [1.0, 0.0, 0.0, 0.0, 1.0]);
        s.transform_row(&[f64::NAN, 0.1, 5.0], &mut out);
        out[1] = 0.0;
        assert_eq!(out, [0.0, 0.0, 5.0, 1.0, 0.0]);
    }

    #[test]
    fn constant_column_of_an_unrepresentable_value_is_not_blown_up() {
        let d = data(vec![0.1; 1000], 1);
        let s = StandardizerParams::default().fit(&d).unwrap();
        assert_eq!(s.scales(), &[1.0]);
        let mut out = Vec::new();
        s.transform_row(&[0.1], &mut out);
        assert!(out[0].abs() < 1e-15, "{out:?}");
    }

    #[test]
    fn indicators_can_be_turned_off() {
        let d = data(vec![1.0, f64::NAN], 1);
        let s = StandardizerParams {
            missing_indicators: false,
        }
        .fit(&d)
        .unwrap();
        assert_eq!(s.n_outputs(), 1);
    }

    #[test]
    fn deserialising_rejects_inconsistent_parts() {
        let ok = StandardizerParams::default()
            .fit(&data(vec![1.0, 2.0], 1))
            .unwrap();
        let back: Standardizer = serde_json::from_str(&serde_json::to_string(&ok).unwrap()).unwrap();
        assert_eq!(back, ok);
        let bad = r#"{"columns":["a"],"means":[0.0],"scales":[0.0],"indicators":[]}"#;
        assert!(serde_json::from_str::<Standardizer>(bad).is_err());
        let bad = r#"{"columns":["a"],"means":[0.0],"scales":[1.0],"indicators":[1]}"#;
        assert!(serde_json::from_str::<Standardizer>(bad).is_err());
    }
}

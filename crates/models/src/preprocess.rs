//! Preprocessing fitted inside a model: numeric columns are standardised with mean
//! imputation, categorical columns one-hot encoded with unknown categories ignored, and
//! optional missing-indicator columns flag what was missing.
//!
//! The design decisions: a numeric column counts as constant by scikit-learn's
//! `StandardScaler` rule (`var <= n·eps·var + (n·mean·eps)²`), not `var == 0`, because a
//! two-pass variance of a constant non-representable value (0.1) is rounding noise, and
//! dividing by that noise would blow the column up; constant columns keep scale 1. Missing
//! numbers become the training mean (0 after scaling). A categorical column gets one 0/1
//! output per category seen in training (sorted by code); a category never seen in
//! training, or a missing one, sets none of them, as scikit-learn's
//! `OneHotEncoder(handle_unknown="ignore")`. An indicator column per training column that had
//! any missing value lets the model still use "was missing" as a signal.

use std::cmp::Ordering;

use serde::{Deserialize, Serialize};

use crate::dataset::{ColumnType, Dataset};
use crate::error::ModelError;

/// How to fit a [`Preprocessor`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PreprocessParams {
    /// Append one 0/1 column per input column that had a missing value in training,
    /// 1 when the value is missing. Default `true`.
    pub missing_indicators: bool,
    /// At most this many categories per categorical column are one-hot encoded (the most
    /// frequent; ties by code); rarer ones are treated like unknown ones. At least 1.
    /// Default 256.
    pub max_categories: usize,
}

impl Default for PreprocessParams {
    fn default() -> Self {
        PreprocessParams {
            missing_indicators: true,
            max_categories: 256,
        }
    }
}

impl PreprocessParams {
    /// Checks the parameters.
    pub fn check(&self) -> Result<(), ModelError> {
        if self.max_categories == 0 {
            return Err(ModelError::invalid_param(
                "max_categories",
                "0 would encode no category at all; use at least 1",
            ));
        }
        Ok(())
    }

    /// Learns each numeric column's mean and population standard deviation from its
    /// non-missing values (a column with no values gets mean 0 and scale 1), and each
    /// categorical column's categories.
    pub fn fit(&self, data: &Dataset) -> Result<Preprocessor, ModelError> {
        self.check()?;
        let mut encodings = Vec::with_capacity(data.n_cols());
        let mut indicators = Vec::new();
        for (j, kind) in data.column_types().iter().enumerate() {
            let column = || (0..data.n_rows()).map(|i| data.row(i)[j]).filter(|v| !v.is_nan());
            let encoding = match kind {
                ColumnType::Numeric => fit_scale(column)?,
                ColumnType::Categorical => fit_one_hot(column(), self.max_categories),
            };
            encodings.push(encoding);
            if self.missing_indicators && column().count() < data.n_rows() {
                indicators.push(j);
            }
        }
        Preprocessor::from_parts(data.columns().to_vec(), encodings, indicators)
    }
}

fn fit_scale<I: Iterator<Item = f64>>(column: impl Fn() -> I) -> Result<Encoding, ModelError> {
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
    Ok(Encoding::Scale { mean, scale })
}

/// The `max` most frequent values (ties broken by the smaller code), sorted by code. `-0.0`
/// is the category `0` (adding `0.0` turns it into `+0.0`), as in scikit-learn.
fn fit_one_hot(values: impl Iterator<Item = f64>, max: usize) -> Encoding {
    let mut sorted: Vec<f64> = values.map(|v| v + 0.0).collect();
    sorted.sort_by(f64::total_cmp);
    let mut counts: Vec<(f64, usize)> = Vec::new();
    for v in sorted {
        match counts.last_mut() {
            Some((last, n)) if *last == v => *n += 1,
            _ => counts.push((v, 1)),
        }
    }
    if counts.len() > max {
        counts.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.total_cmp(&b.0)));
        counts.truncate(max);
    }
    let mut categories: Vec<f64> = counts.into_iter().map(|(v, _)| v).collect();
    categories.sort_by(f64::total_cmp);
    Encoding::OneHot { categories }
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

/// How one input column becomes outputs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Encoding {
    /// One output, `(x - mean) / scale`; missing becomes 0 (the mean).
    Scale {
        /// The training mean of the non-missing values.
        mean: f64,
        /// The population standard deviation (1 for constant columns).
        scale: f64,
    },
    /// One 0/1 output per category, in this (ascending) order; unknown or missing sets none.
    OneHot {
        /// The category codes seen in training, strictly ascending.
        categories: Vec<f64>,
    },
}

impl Encoding {
    /// The number of outputs this column produces.
    fn width(&self) -> usize {
        match self {
            Encoding::Scale { .. } => 1,
            Encoding::OneHot { categories } => categories.len(),
        }
    }

    fn check(&self) -> Result<(), String> {
        match self {
            Encoding::Scale { mean, scale } if !(mean.is_finite() && scale.is_finite() && *scale > 0.0) => {
                Err("means must be finite and scales finite and positive".into())
            }
            Encoding::OneHot { categories }
                if categories.iter().any(|c| !c.is_finite())
                    || categories.windows(2).any(|w| w[0] >= w[1]) =>
            {
                Err("categories must be finite and strictly ascending".into())
            }
            _ => Ok(()),
        }
    }

    fn write(&self, x: f64, out: &mut Vec<f64>) {
        match self {
            Encoding::Scale { mean, scale } => out.push(if x.is_nan() { 0.0 } else { (x - mean) / scale }),
            Encoding::OneHot { categories } => {
                let hit = lookup(categories, x);
                out.extend((0..categories.len()).map(|k| if Some(k) == hit { 1.0 } else { 0.0 }));
            }
        }
    }
}

/// The position of `x` among the sorted `categories`. Numeric order, so -0.0 finds the
/// category 0 (even one stored as -0.0 by an older fit); a NaN compares as none and finds
/// nothing.
fn lookup(categories: &[f64], x: f64) -> Option<usize> {
    categories
        .binary_search_by(|c| c.partial_cmp(&x).unwrap_or(Ordering::Less))
        .ok()
}

/// A fitted preprocessor: each input column's [`Encoding`] in column order, then the
/// missing-indicator columns in input-column order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "RawPreprocessor")]
pub struct Preprocessor {
    columns: Vec<String>,
    encodings: Vec<Encoding>,
    indicators: Vec<usize>,
    #[serde(skip)]
    n_outputs: usize,
}

/// The unchecked serialised form of a [`Preprocessor`].
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPreprocessor {
    columns: Vec<String>,
    encodings: Vec<Encoding>,
    indicators: Vec<usize>,
}

impl TryFrom<RawPreprocessor> for Preprocessor {
    type Error = ModelError;

    fn try_from(raw: RawPreprocessor) -> Result<Self, Self::Error> {
        Preprocessor::from_parts(raw.columns, raw.encodings, raw.indicators)
    }
}

impl Preprocessor {
    fn from_parts(
        columns: Vec<String>,
        encodings: Vec<Encoding>,
        indicators: Vec<usize>,
    ) -> Result<Self, ModelError> {
        let n = columns.len();
        if encodings.len() != n {
            return Err(ModelError::Inconsistent(format!(
                "{n} columns but {} encodings",
                encodings.len()
            )));
        }
        for (name, encoding) in columns.iter().zip(&encodings) {
            encoding
                .check()
                .map_err(|reason| ModelError::Inconsistent(format!("column {name:?}: {reason}")))?;
        }
        if indicators.windows(2).any(|w| w[0] >= w[1]) || indicators.last().is_some_and(|&j| j >= n) {
            return Err(ModelError::Inconsistent(format!(
                "indicator columns must be increasing positions below {n}"
            )));
        }
        let n_outputs = encodings.iter().map(Encoding::width).sum::<usize>() + indicators.len();
        Ok(Preprocessor {
            columns,
            encodings,
            indicators,
            n_outputs,
        })
    }

    /// The number of input columns a row must have.
    pub fn n_inputs(&self) -> usize {
        self.columns.len()
    }

    /// The number of values [`Preprocessor::transform_row`] writes.
    pub fn n_outputs(&self) -> usize {
        self.n_outputs
    }

    /// The input column names.
    pub fn columns(&self) -> &[String] {
        &self.columns
    }

    /// Each input column's encoding, in column order.
    pub fn encodings(&self) -> &[Encoding] {
        &self.encodings
    }

    /// The positions of the input columns that have a missing-indicator output.
    pub fn indicator_columns(&self) -> &[usize] {
        &self.indicators
    }

    /// The output column names: a scaled column keeps its name, a one-hot output is
    /// `"<name>=<code>"`, then `"<name>__missing"` per indicator.
    pub fn output_names(&self) -> Vec<String> {
        let mut names = Vec::with_capacity(self.n_outputs);
        for (name, encoding) in self.columns.iter().zip(&self.encodings) {
            match encoding {
                Encoding::Scale { .. } => names.push(name.clone()),
                Encoding::OneHot { categories } => {
                    names.extend(categories.iter().map(|c| format!("{name}={c}")))
                }
            }
        }
        names.extend(
            self.indicators
                .iter()
                .map(|&j| format!("{}__missing", self.columns[j])),
        );
        names
    }

    /// `Σ weights[k] · transformed(row)[k]`, summed in output order exactly as
    /// `transform_row` followed by a sequential dot product would, without materialising the
    /// transformed row (the serving path: no allocation per prediction).
    ///
    /// # Panics
    /// If `row.len() != self.n_inputs()` or `weights.len() != self.n_outputs()`.
    pub fn dot(&self, row: &[f64], weights: &[f64]) -> f64 {
        assert_eq!(
            row.len(),
            self.n_inputs(),
            "row width differs from the fitted columns"
        );
        assert_eq!(weights.len(), self.n_outputs, "one weight per output");
        let mut sum = -0.0;
        let mut k = 0;
        for (&x, encoding) in row.iter().zip(&self.encodings) {
            match encoding {
                Encoding::Scale { mean, scale } => {
                    let v = if x.is_nan() { 0.0 } else { (x - mean) / scale };
                    sum += weights[k] * v;
                    k += 1;
                }
                Encoding::OneHot { categories } => {
                    let hit = lookup(categories, x);
                    for c in 0..categories.len() {
                        sum += weights[k] * if Some(c) == hit { 1.0 } else { 0.0 };
                        k += 1;
                    }
                }
            }
        }
        for &j in &self.indicators {
            sum += weights[k] * if row[j].is_nan() { 1.0 } else { 0.0 };
            k += 1;
        }
        sum
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
        for (&x, encoding) in row.iter().zip(&self.encodings) {
            encoding.write(x, out);
        }
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
        let s = PreprocessParams::default().fit(&d).unwrap();
        assert_eq!(
            s.encodings()[0],
            Encoding::Scale {
                mean: 2.0,
                scale: 1.0
            }
        );
        assert!(matches!(s.encodings()[1], Encoding::Scale { scale: 1.0, .. }));
        assert_eq!(
            s.encodings()[2],
            Encoding::Scale {
                mean: 0.0,
                scale: 1.0
            }
        );
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
        let s = PreprocessParams::default().fit(&d).unwrap();
        assert!(matches!(s.encodings()[0], Encoding::Scale { scale: 1.0, .. }));
        let mut out = Vec::new();
        s.transform_row(&[0.1], &mut out);
        assert!(out[0].abs() < 1e-15, "{out:?}");
    }

    #[test]
    fn indicators_can_be_turned_off() {
        let d = data(vec![1.0, f64::NAN], 1);
        let s = PreprocessParams {
            missing_indicators: false,
            ..PreprocessParams::default()
        }
        .fit(&d)
        .unwrap();
        assert_eq!(s.n_outputs(), 1);
    }

    #[test]
    fn deserialising_rejects_inconsistent_parts() {
        let ok = PreprocessParams::default().fit(&data(vec![1.0, 2.0], 1)).unwrap();
        let back: Preprocessor = serde_json::from_str(&serde_json::to_string(&ok).unwrap()).unwrap();
        assert_eq!(back, ok);
        let bad =
            r#"{"columns":["a"],"encodings":[{"type":"scale","mean":0.0,"scale":0.0}],"indicators":[]}"#;
        assert!(serde_json::from_str::<Preprocessor>(bad).is_err());
        let bad =
            r#"{"columns":["a"],"encodings":[{"type":"scale","mean":0.0,"scale":1.0}],"indicators":[1]}"#;
        assert!(serde_json::from_str::<Preprocessor>(bad).is_err());
        let bad =
            r#"{"columns":["a"],"encodings":[{"type":"one_hot","categories":[2.0,1.0]}],"indicators":[]}"#;
        assert!(serde_json::from_str::<Preprocessor>(bad).is_err());
    }

    #[test]
    fn one_hot_encodes_categories_and_ignores_unknown_and_missing_ones() {
        // c0 numeric, c1 categorical codes 3, 1, 3, NaN.
        let d = data(vec![1.0, 3.0, 2.0, 1.0, 3.0, 3.0, 4.0, f64::NAN], 2)
            .with_column_types(vec![ColumnType::Numeric, ColumnType::Categorical])
            .unwrap();
        let s = PreprocessParams::default().fit(&d).unwrap();
        assert_eq!(s.output_names(), ["c0", "c1=1", "c1=3", "c1__missing"]);
        let mut out = Vec::new();
        s.transform_row(&[2.5, 3.0], &mut out);
        assert_eq!(out[1..], [0.0, 1.0, 0.0]);
        s.transform_row(&[2.5, 7.0], &mut out);
        assert_eq!(out[1..], [0.0, 0.0, 0.0], "an unknown category sets nothing");
        s.transform_row(&[2.5, f64::NAN], &mut out);
        assert_eq!(out[1..], [0.0, 0.0, 1.0], "a missing one only its indicator");
        let back: Preprocessor = serde_json::from_str(&serde_json::to_string(&s).unwrap()).unwrap();
        assert_eq!(back, s);
        assert_eq!(back.n_outputs(), 4);
    }

    #[test]
    fn negative_zero_is_the_same_category_as_zero() {
        // As scikit-learn's OneHotEncoder: -0.0 == 0.0, one category, matched both ways.
        let d = data(vec![-0.0, 0.0, 1.0], 1)
            .with_column_types(vec![ColumnType::Categorical])
            .unwrap();
        let s = PreprocessParams::default().fit(&d).unwrap();
        assert_eq!(s.output_names(), ["c0=0", "c0=1"]);
        let mut out = Vec::new();
        for zero in [0.0, -0.0] {
            s.transform_row(&[zero], &mut out);
            assert_eq!(out, [1.0, 0.0], "{zero:?}");
        }
        let only_positive = data(vec![0.0, 1.0], 1)
            .with_column_types(vec![ColumnType::Categorical])
            .unwrap();
        let s = PreprocessParams::default().fit(&only_positive).unwrap();
        s.transform_row(&[-0.0], &mut out);
        assert_eq!(out, [1.0, 0.0]);
    }

    #[test]
    fn dot_equals_transform_then_a_sequential_dot_product_bit_for_bit() {
        let d = data(
            vec![
                1.0,
                3.0,
                0.5,
                2.0,
                1.0,
                f64::NAN,
                f64::NAN,
                3.0,
                7.25,
                4.0,
                2.0,
                -1.0,
            ],
            3,
        )
        .with_column_types(vec![
            ColumnType::Numeric,
            ColumnType::Categorical,
            ColumnType::Numeric,
        ])
        .unwrap();
        let p = PreprocessParams::default().fit(&d).unwrap();
        let weights: Vec<f64> = (0..p.n_outputs()).map(|k| 0.37 * k as f64 - 1.1).collect();
        let mut out = Vec::new();
        for row in [
            [2.5, 3.0, 0.1],
            [f64::NAN, 9.0, f64::NAN],
            [-4.0, 1.0, 1e6],
            [0.0, -0.0, 0.0],
        ] {
            p.transform_row(&row, &mut out);
            let expected: f64 = weights.iter().zip(&out).map(|(w, x)| w * x).sum();
            assert_eq!(p.dot(&row, &weights).to_bits(), expected.to_bits(), "{row:?}");
        }
    }

    #[test]
    fn only_the_most_frequent_categories_are_kept() {
        let d = data(vec![5.0, 5.0, 5.0, 1.0, 1.0, 9.0, 2.0], 1)
            .with_column_types(vec![ColumnType::Categorical])
            .unwrap();
        let params = PreprocessParams {
            max_categories: 2,
            ..PreprocessParams::default()
        };
        let s = params.fit(&d).unwrap();
        assert_eq!(s.output_names(), ["c0=1", "c0=5"]);
    }
}

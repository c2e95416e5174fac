//! A validated training or evaluation set: a row-major feature matrix, one label per row, and
//! the column names.
//!
//! The design decision: features are one flat `Vec<f64>` (row-major, `NaN` = missing), so a
//! row is a slice and fitting walks memory in order; the constructor checks the shape once
//! and every consumer can then index without re-checking. A categorical column holds its
//! category codes as numbers, and its [`ColumnType`] tells preprocessing to one-hot encode
//! it rather than scale it.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::error::ModelError;

/// What a column's numbers mean.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ColumnType {
    /// A quantity: scaled by preprocessing.
    #[default]
    Numeric,
    /// A category code (any number naming a category): one-hot encoded by preprocessing.
    Categorical,
}

/// Rows of numeric features with binary labels. Built with [`Dataset::new`], which checks
/// the shape, so `features.len() == labels.len() * columns.len()` always holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "RawDataset")]
pub struct Dataset {
    features: Vec<f64>,
    labels: Vec<bool>,
    columns: Vec<String>,
    column_types: Vec<ColumnType>,
}

/// The unchecked serialised form of a [`Dataset`].
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDataset {
    features: Vec<Option<f64>>,
    labels: Vec<bool>,
    columns: Vec<String>,
    #[serde(default)]
    column_types: Option<Vec<ColumnType>>,
}

impl TryFrom<RawDataset> for Dataset {
    type Error = ModelError;

    fn try_from(raw: RawDataset) -> Result<Self, Self::Error> {
        // JSON has no NaN: serde_json writes it as null, so null reads back as missing.
        let features = raw.features.into_iter().map(|v| v.unwrap_or(f64::NAN)).collect();
        let data = Dataset::new(features, raw.labels, raw.columns)?;
        match raw.column_types {
            Some(types) => data.with_column_types(types),
            None => Ok(data),
        }
    }
}

impl Dataset {
    /// Checks and wraps a row-major feature matrix (`labels.len()` rows of `columns.len()`
    /// values; `NaN` = missing). Errors when there are no rows or columns, the lengths
    /// disagree, a column name repeats, or a value is infinite.
    pub fn new(features: Vec<f64>, labels: Vec<bool>, columns: Vec<String>) -> Result<Self, ModelError> {
        if columns.is_empty() {
            return Err(ModelError::NoColumns);
        }
        if labels.is_empty() {
            return Err(ModelError::NoRows);
        }
        let expected = labels.len().checked_mul(columns.len());
        if expected != Some(features.len()) {
            return Err(ModelError::ShapeMismatch {
                features: features.len(),
                rows: labels.len(),
                columns: columns.len(),
                expected: expected.unwrap_or(usize::MAX),
            });
        }
        let mut seen = HashMap::with_capacity(columns.len());
        for (i, name) in columns.iter().enumerate() {
            if let Some(first) = seen.insert(name.as_str(), i) {
                return Err(ModelError::DuplicateColumn {
                    name: name.clone(),
                    first,
                    second: i,
                });
            }
        }
        if let Some(i) = features.iter().position(|v| v.is_infinite()) {
            return Err(ModelError::NonFiniteFeature {
                row: i / columns.len(),
                column: columns[i % columns.len()].clone(),
                value: features[i],
            });
        }
        let column_types = vec![ColumnType::Numeric; columns.len()];
        Ok(Dataset {
            features,
            labels,
            columns,
            column_types,
        })
    }

    /// Sets every column's type (all are [`ColumnType::Numeric`] after [`Dataset::new`]).
    /// Errors unless there is exactly one type per column.
    pub fn with_column_types(mut self, column_types: Vec<ColumnType>) -> Result<Self, ModelError> {
        if column_types.len() != self.columns.len() {
            return Err(ModelError::Inconsistent(format!(
                "{} column types for {} columns",
                column_types.len(),
                self.columns.len()
            )));
        }
        self.column_types = column_types;
        Ok(self)
    }

    /// The number of rows.
    pub fn n_rows(&self) -> usize {
        self.labels.len()
    }

    /// The number of feature columns.
    pub fn n_cols(&self) -> usize {
        self.columns.len()
    }

    /// Row `i`'s features.
    ///
    /// # Panics
    /// If `i >= n_rows()`.
    pub fn row(&self, i: usize) -> &[f64] {
        let n = self.columns.len();
        &self.features[i * n..(i + 1) * n]
    }

    /// All rows' features, row-major.
    pub fn features(&self) -> &[f64] {
        &self.features
    }

    /// One label per row.
    pub fn labels(&self) -> &[bool] {
        &self.labels
    }

    /// The column names, in feature order.
    pub fn columns(&self) -> &[String] {
        &self.columns
    }

    /// Each column's type, in feature order.
    pub fn column_types(&self) -> &[ColumnType] {
        &self.column_types
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cols(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("c{i}")).collect()
    }

    #[test]
    fn accepts_a_well_shaped_matrix_with_missing_values() {
        let d = Dataset::new(vec![1.0, f64::NAN, 3.0, 4.0], vec![true, false], cols(2)).unwrap();
        assert_eq!((d.n_rows(), d.n_cols()), (2, 2));
        assert_eq!(d.row(1), &[3.0, 4.0]);
    }

    #[test]
    fn rejects_bad_shapes_with_clear_errors() {
        let err = Dataset::new(vec![1.0; 5], vec![true, false], cols(2)).unwrap_err();
        assert_eq!(
            err,
            ModelError::ShapeMismatch {
                features: 5,
                rows: 2,
                columns: 2,
                expected: 4
            }
        );
        assert!(err.to_string().contains("expected 4"), "{err}");
        assert_eq!(Dataset::new(vec![], vec![], cols(2)), Err(ModelError::NoRows));
        assert_eq!(
            Dataset::new(vec![], vec![true], vec![]),
            Err(ModelError::NoColumns)
        );
        let dup = Dataset::new(vec![1.0, 2.0], vec![true], vec!["a".into(), "a".into()]);
        assert!(matches!(
            dup,
            Err(ModelError::DuplicateColumn {
                first: 0,
                second: 1,
                ..
            })
        ));
        let inf = Dataset::new(vec![1.0, 2.0, f64::INFINITY, 0.0], vec![true, false], cols(2));
        assert!(
            matches!(inf, Err(ModelError::NonFiniteFeature { row: 1, ref column, .. }) if column == "c0")
        );
    }

    #[test]
    fn serde_round_trip_keeps_missing_values_and_validates() {
        let d = Dataset::new(vec![1.0, f64::NAN], vec![true], cols(2)).unwrap();
        let json = serde_json::to_string(&d).unwrap();
        let back: Dataset = serde_json::from_str(&json).unwrap();
        assert_eq!(back.row(0)[0], 1.0);
        assert!(back.row(0)[1].is_nan());
        let typed = d
            .with_column_types(vec![ColumnType::Numeric, ColumnType::Categorical])
            .unwrap();
        let back: Dataset = serde_json::from_str(&serde_json::to_string(&typed).unwrap()).unwrap();
        assert_eq!(back.column_types(), typed.column_types());
        let bad = r#"{"features":[1.0],"labels":[true],"columns":["a","b"]}"#;
        assert!(
            serde_json::from_str::<Dataset>(bad)
                .unwrap_err()
                .to_string()
                .contains("expected 2")
        );
    }
}

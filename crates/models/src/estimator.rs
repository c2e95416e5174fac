//! The estimators selectable in configuration, as one parameter type and one fitted type.
//!
//! Key decision: a closed `#[serde(tag = "type")]` enum on both sides rather than trait
//! objects, so a fitted model serialises with its kind and deserialises without a
//! registry of constructors, and a new estimator is a compile error until every `match`
//! handles it. Serving holds a [`FittedModel`] and calls it through [`Model`].

use serde::{Deserialize, Serialize};

use crate::dataset::Dataset;
use crate::error::ModelError;
use crate::gbt::{Gbt, GbtParams};
use crate::logistic::{LogisticRegression, LogisticRegressionParams};
use crate::model::Model;

/// Which estimator to fit, with its parameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum EstimatorParams {
    /// L2 logistic regression (scikit-learn's default `LogisticRegression`).
    Logistic(LogisticRegressionParams),
    /// Histogram gradient-boosted trees (scikit-learn's `HistGradientBoostingClassifier`).
    Gbt(GbtParams),
}

impl Default for EstimatorParams {
    fn default() -> Self {
        EstimatorParams::Logistic(LogisticRegressionParams::default())
    }
}

impl EstimatorParams {
    /// The estimator's name as configured: `logistic` or `gbt`.
    pub fn kind(&self) -> &'static str {
        match self {
            EstimatorParams::Logistic(_) => "logistic",
            EstimatorParams::Gbt(_) => "gbt",
        }
    }

    /// Checks the parameters, naming the first one out of range.
    pub fn check(&self) -> Result<(), ModelError> {
        match self {
            EstimatorParams::Logistic(p) => p.check(),
            EstimatorParams::Gbt(p) => p.check(),
        }
    }

    /// Fits the chosen estimator on `data`.
    pub fn fit(&self, data: &Dataset) -> Result<FittedModel, ModelError> {
        Ok(match self {
            EstimatorParams::Logistic(p) => FittedModel::Logistic(p.fit(data)?),
            EstimatorParams::Gbt(p) => FittedModel::Gbt(p.fit(data)?),
        })
    }
}

/// A fitted model of any kind.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum FittedModel {
    /// A fitted logistic regression.
    Logistic(LogisticRegression),
    /// Fitted boosted trees.
    Gbt(Gbt),
}

impl FittedModel {
    /// The estimator's name: `logistic` or `gbt`.
    pub fn kind(&self) -> &'static str {
        match self {
            FittedModel::Logistic(_) => "logistic",
            FittedModel::Gbt(_) => "gbt",
        }
    }

    fn inner(&self) -> &dyn Model {
        match self {
            FittedModel::Logistic(m) => m,
            FittedModel::Gbt(m) => m,
        }
    }
}

impl Model for FittedModel {
    fn columns(&self) -> &[String] {
        self.inner().columns()
    }

    fn predict_proba_row(&self, row: &[f64]) -> f64 {
        self.inner().predict_proba_row(row)
    }

    fn predict_proba(&self, features: &[f64], out: &mut [f64]) -> Result<(), ModelError> {
        self.inner().predict_proba(features, out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data() -> Dataset {
        let features = (0..200).map(|i| f64::from(i % 20)).collect();
        let labels = (0..200).map(|i| i % 20 >= 12).collect();
        Dataset::new(features, labels, vec!["x".into()]).unwrap()
    }

    #[test]
    fn both_kinds_fit_score_and_round_trip_through_json() {
        let gbt = GbtParams {
            min_samples_leaf: 5,
            ..GbtParams::default()
        };
        for params in [EstimatorParams::default(), EstimatorParams::Gbt(gbt)] {
            let model = params.fit(&data()).unwrap();
            assert_eq!(model.kind(), params.kind());
            let json = serde_json::to_string(&model).unwrap();
            assert!(
                json.starts_with(&format!(r#"{{"type":"{}""#, params.kind())),
                "{json}"
            );
            let back: FittedModel = serde_json::from_str(&json).unwrap();
            assert_eq!(back, model);
            assert!(model.predict_proba_row(&[19.0]) > model.predict_proba_row(&[0.0]));
        }
    }

    #[test]
    fn params_read_from_a_tagged_table_and_reject_unknown_keys() {
        let p: EstimatorParams = serde_json::from_str(r#"{"type":"gbt","max_iter":50}"#).unwrap();
        assert!(matches!(p, EstimatorParams::Gbt(GbtParams { max_iter: 50, .. })));
        let err = serde_json::from_str::<EstimatorParams>(r#"{"type":"logistic","cc":2.0}"#).unwrap_err();
        assert!(err.to_string().contains("cc"), "{err}");
    }
}

//! driftline-models: turning training sets into models and judging them.
//!
//! - [`metrics`]: evaluation metrics of scored, labelled rows (ROC AUC, average
//!   precision, log loss, Brier score, calibration error, confusion counts), matching
//!   scikit-learn's definitions so gates mean what teams expect.
//! - [`gates`]: promotion gates, absolute floors and "no worse than the champion".
//! - [`dataset`]: a validated row-major feature matrix with labels and column names.
//! - [`error`]: the one error type of datasets, preprocessing and estimators.
//! - [`preprocess`]: standardisation with mean imputation, one-hot encoding of categories
//!   (unknown ones ignored) and missing-indicator columns.
//! - [`lbfgs`]: limited-memory BFGS with a strong-Wolfe line search, stopping like scipy's.
//! - [`logistic`]: L2 logistic regression reaching scikit-learn's `lbfgs` optimum.
//! - [`model`]: the `Model` trait every fitted estimator implements (batch prediction
//!   with width checks provided).
//! - [`gbt`]: histogram gradient-boosted trees for binary classification, like sklearn's.
//! - [`estimator`]: the configurable choice of estimator and the fitted model of any kind.

pub mod dataset;
pub mod error;
pub mod estimator;
pub mod gates;
pub mod gbt;
pub mod lbfgs;
pub mod logistic;
pub mod metrics;
pub mod model;
pub mod preprocess;

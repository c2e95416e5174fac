//! driftline-models: turning training sets into models and judging them.
//!
//! - [`metrics`]: evaluation metrics of scored, labelled rows (ROC AUC, average
//!   precision, log loss, Brier score, calibration error, confusion counts), matching
//!   scikit-learn's definitions so gates mean what teams expect.

pub mod metrics;

//! The model card: what a version is, how it was judged and on what data, as stored in the
//! registry beside the version and shown by `driftline models show`.
//!
//! Key decision: the card holds everything a reviewer needs to accept or reject the
//! version without re-running anything (holdout and training metrics, the champion's
//! metrics on the very same holdout, every gate check with its reason), and nothing that
//! would make two identical trainings' artifacts differ; timings live here, not in the
//! artifact.

use driftline_models::gates::GateReport;
use driftline_models::metrics::Metrics;
use serde::{Deserialize, Serialize};

/// A trained version's card.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelCard {
    /// `logistic` or `gbt`.
    pub estimator: String,
    /// The estimator's parameters as fitted.
    pub params: serde_json::Value,
    /// How the fit ended (iterations, trees, optimiser status).
    pub fit: serde_json::Value,
    /// Metrics on the holdout, the numbers the gates judge.
    pub holdout: Metrics,
    /// Metrics on the training rows (a large gap to `holdout` means overfitting).
    pub train: Metrics,
    /// The champion at training time, scored on the same holdout.
    pub champion: Option<ChampionComparison>,
    /// Every gate check and the verdict.
    pub gates: GateReport,
    /// Where the rows came from.
    pub data: DataSummary,
    /// Seconds spent fitting.
    pub fit_seconds: f64,
}

/// The champion a candidate was compared with.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChampionComparison {
    /// The champion's version.
    pub version: u32,
    /// Its metrics on the candidate's holdout; `None` when it could not score it.
    pub holdout: Option<Metrics>,
    /// Why it could not be compared, when it could not.
    pub note: Option<String>,
}

/// The rows behind a version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DataSummary {
    /// Events replayed from history (labelled or not, warm-up excluded).
    pub events: u64,
    /// Labelled rows in the window (after `last_events`).
    pub labelled: u64,
    /// Rows fitted on.
    pub rows_train: u64,
    /// Rows evaluated on.
    pub rows_holdout: u64,
    /// The positive rate of the training rows.
    pub label_rate: f64,
    /// `time` or `stratified`.
    pub split: String,
    /// Event time of the first and last labelled row (RFC 3339).
    pub first_event: Option<String>,
    /// See `first_event`.
    pub last_event: Option<String>,
    /// Event time of the first holdout row, for a time split.
    pub holdout_from: Option<String>,
}

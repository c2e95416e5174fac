//! What an evaluation of the monitor's window reports: the JSON of `GET /v1/drift` and the
//! source of the drift gauges.
//!
//! Key decision: every number is finite or absent. A statistic that comes out NaN (a
//! chi-square over one category) is `None`, so the JSON never holds a `null` where a
//! reader expects a number and the snapshot round-trips through serde.

use driftline_core::drift::StatTest;
use driftline_core::profile::ColumnKind;
use serde::{Deserialize, Serialize};

/// The monitor's overall verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MonitorStatus {
    /// Fewer than `min_window` predictions in the window: no verdict yet.
    WarmingUp,
    /// No feature column and not the scores drift.
    Stable,
    /// At least one feature column or the scores drift (listed in `drifted_columns`).
    Drift,
}

/// One evaluation of the window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MonitorSnapshot {
    pub status: MonitorStatus,
    /// Capacity of the window (predictions).
    pub window: usize,
    /// Predictions needed before any verdict.
    pub min_window: usize,
    /// Predictions in the window now.
    pub observed: usize,
    /// Predictions observed since the monitor started.
    pub observed_total: u64,
    /// One per feature column, in the profile's order.
    pub columns: Vec<ColumnSnapshot>,
    /// Dataset drift over the feature columns; `None` while warming up.
    pub dataset: Option<DatasetVerdict>,
    /// Prediction (score) drift against the profile's scores; `None` when the profile
    /// holds no scores.
    pub score: Option<ColumnSnapshot>,
    /// The columns (features, then `score`) whose verdict is drift: the status is `drift`
    /// when this is not empty.
    #[serde(default)]
    pub drifted_columns: Vec<String>,
    /// What the window was compared with: the hours it covers, when the reference is
    /// seasonal; `None` when the whole reference was used (a profile without strata).
    #[serde(default)]
    pub season: Option<SeasonSnapshot>,
}

/// The window's hours of day, matched with the same hours of the reference period.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SeasonSnapshot {
    /// The hour-of-day feature column rows are assigned by.
    pub column: String,
    /// Window rows per hour of day (index = UTC hour).
    pub window_hours: Vec<u64>,
    /// Window rows without a valid hour (compared with the whole reference).
    pub unassigned: u64,
}

impl MonitorSnapshot {
    /// The column called `name` (the score column is `score`).
    pub fn column(&self, name: &str) -> Option<&ColumnSnapshot> {
        self.columns
            .iter()
            .chain(self.score.as_ref())
            .find(|c| c.name == name)
    }
}

/// The share of drifted feature columns against `drift_share`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct DatasetVerdict {
    /// Feature columns that received a verdict. This is Evidently's dataset rule, reported
    /// for dashboards; the monitor's status follows any drifted column (`drifted_columns`).
    pub columns: usize,
    pub drifted_columns: usize,
    /// drifted_columns / columns (0 when no column has a verdict).
    pub share: f64,
    pub drift_share: f64,
    /// share >= drift_share, with at least one column judged.
    pub drifted: bool,
}

/// One column of the window against its reference.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ColumnSnapshot {
    pub name: String,
    pub kind: ColumnKind,
    /// The drift verdict; `None` while warming up or when a side has no values.
    pub drift: Option<ColumnVerdict>,
    /// Why there is no verdict, when there is none.
    pub skipped: Option<String>,
    pub quality: DataQuality,
    pub histogram: ColumnHistogram,
}

/// A column's drift test, with a p-value beside the distance that decides.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ColumnVerdict {
    /// The test that decides (normed Wasserstein or Jensen–Shannon unless configured).
    pub test: StatTest,
    /// Its distance or p-value; `None` when it is undefined (never drifts).
    pub score: Option<f64>,
    /// The threshold applied: the configured one, or the noise floor when that is higher.
    pub threshold: f64,
    /// The configured threshold (`distance_threshold`, `p_value_threshold` or the
    /// column's own).
    #[serde(default)]
    pub configured_threshold: f64,
    /// The distance windows of the reference's own drift-free rows reach (mean plus
    /// [`NOISE_SDS`](super::NOISE_SDS) standard deviations, scaled to this window's rows),
    /// when the profile measured it
    /// and the column's threshold is not configured: a change must stand above it.
    #[serde(default)]
    pub noise_floor: Option<f64>,
    pub drifted: bool,
    /// The test of the p-value reported beside: KS (asymptotic law) for numbers,
    /// chi-square for categories, or the deciding test itself when that is a p-value test.
    pub p_value_test: StatTest,
    /// `None` when undefined (a chi-square over a single category).
    pub p_value: Option<f64>,
    /// The deciding test's score is past its threshold (the distance reaches it, or the
    /// p-value of a p-value test is below it).
    #[serde(default)]
    pub exceeds_threshold: bool,
    /// The p-value is below `significance_level` (for a p-value test: `exceeds_threshold`).
    /// A distance drifts only when both hold.
    #[serde(default)]
    pub significant: bool,
    /// The p-value a distance's change must beat: `drift.p_value_threshold` divided by the
    /// number of columns judged (Bonferroni), so one evaluation's family of tests keeps
    /// that false-positive rate.
    #[serde(default)]
    pub significance_level: f64,
    /// Values in the reference the window was compared with (the effective size of the
    /// hour-matched mixture, or the profile's sample).
    #[serde(default)]
    pub reference_size: usize,
}

/// Data-quality rates in the window, beside the reference's.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct DataQuality {
    /// Share of the window's values that are missing (NaN).
    pub missing_rate: f64,
    /// The same share in the reference data (over the window's hours of day, when the
    /// reference is seasonal).
    pub reference_missing_rate: f64,
    /// Numeric columns: share of present values outside the reference's [min, max].
    pub out_of_range_rate: Option<f64>,
    /// Categorical columns: share of present values whose code the reference never saw.
    pub unknown_category_rate: Option<f64>,
}

/// Reference and window counts over the same bins.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ColumnHistogram {
    /// The profile's equal-width bins over the reference [min, max].
    Numeric {
        edges: Vec<f64>,
        reference: Vec<u64>,
        current: Vec<u64>,
        /// Window values below the first edge and above the last.
        current_below: u64,
        current_above: u64,
    },
    /// A number with at most 20 distinct reference values, one bin per value (the
    /// reference's counts are those of the profile's sample).
    Values {
        /// The reference's values, ascending.
        values: Vec<f64>,
        reference: Vec<u64>,
        current: Vec<u64>,
        /// Window values the reference never took.
        current_other: u64,
    },
    /// The reference's category codes, ascending.
    Categorical {
        categories: Vec<i64>,
        reference: Vec<u64>,
        current: Vec<u64>,
        /// Window values of codes the reference never saw.
        current_unknown: u64,
    },
    /// The reference has no values to bin.
    Empty,
}

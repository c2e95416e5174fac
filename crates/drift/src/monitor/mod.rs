//! The streaming drift monitor: a count-based sliding window of live feature vectors and
//! scores, evaluated against the champion's reference profile, plus the concept-drift
//! detectors on the stream of labelled errors.
//!
//! Key decision: the request path only copies. [`StreamMonitor::observe`] writes one row
//! into a preallocated ring buffer behind a `std::sync::Mutex` held for the copy alone (no
//! allocation, no statistics); [`StreamMonitor::evaluate`] copies the filled rows out under
//! the lock and runs every test outside it, so a slow evaluation never blocks a request.
//! Verdicts use distances (normed Wasserstein, Jensen–Shannon) with p-values beside them,
//! because at thousands of rows a p-value flags differences too small to matter.

mod column;
mod snapshot;

#[cfg(test)]
mod tests;

use std::sync::{Mutex, MutexGuard, PoisonError};

use driftline_core::config::DriftSettings;
use driftline_core::profile::{ColumnKind, ReferenceProfile};

pub use snapshot::{
    ColumnHistogram, ColumnSnapshot, ColumnVerdict, DataQuality, DatasetVerdict, MonitorSnapshot,
    MonitorStatus,
};

use crate::concept::{ConceptEvent, ConceptMonitor, ConceptParams};
use crate::selection::DriftConfig;
use column::ColumnModel;

/// The name the score column answers to in overrides and snapshots.
pub const SCORE_COLUMN: &str = "score";

/// How the monitor windows and judges.
#[derive(Debug, Clone, PartialEq)]
pub struct MonitorConfig {
    /// Predictions in the window.
    pub window: usize,
    /// Predictions needed before any verdict.
    pub min_window: usize,
    /// Thresholds, drift share and per-column overrides (`p_value_threshold` applies to a
    /// column configured with a p-value test).
    pub drift: DriftConfig,
    /// The concept-drift detectors.
    pub concept: ConceptParams,
}

impl Default for MonitorConfig {
    fn default() -> Self {
        Self::from_settings(&DriftSettings::default())
    }
}

impl MonitorConfig {
    /// `[drift]`, `[drift.columns.NAME]` and `[drift.monitor]` as the monitor reads them.
    pub fn from_settings(settings: &DriftSettings) -> Self {
        let monitor = &settings.monitor;
        MonitorConfig {
            window: monitor.window,
            min_window: monitor.min_window,
            drift: DriftConfig {
                p_value_threshold: settings.p_value_threshold,
                distance_threshold: monitor.distance_threshold,
                drift_share: monitor.drift_share,
                columns: settings.columns.clone(),
            },
            concept: ConceptParams::default(),
        }
    }

    pub fn check(&self) -> Result<(), MonitorError> {
        if self.window == 0 || self.min_window == 0 || self.min_window > self.window {
            return Err(MonitorError::Config(format!(
                "window ({}) and min_window ({}) must be at least 1, min_window at most window",
                self.window, self.min_window
            )));
        }
        self.drift.check().map_err(MonitorError::Config)?;
        self.concept
            .adwin
            .check()
            .map_err(|e| MonitorError::Config(e.to_string()))?;
        self.concept
            .page_hinkley
            .check()
            .map_err(|e| MonitorError::Config(e.to_string()))?;
        self.concept
            .ddm
            .check()
            .map_err(|e| MonitorError::Config(e.to_string()))
    }
}

/// What can go wrong building or feeding a monitor.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum MonitorError {
    #[error("drift monitor configuration: {0}")]
    Config(String),
    #[error("a feature vector of {got} values, but the reference profile has {expected} columns")]
    Width { got: usize, expected: usize },
}

/// The most recent rows (features then score), oldest overwritten first.
#[derive(Debug)]
struct Ring {
    /// `capacity * stride` values, row-major.
    values: Box<[f64]>,
    stride: usize,
    capacity: usize,
    /// The row written next.
    next: usize,
    /// Rows filled.
    len: usize,
    /// Rows ever written.
    total: u64,
}

impl Ring {
    fn new(capacity: usize, stride: usize) -> Self {
        Ring {
            values: vec![0.0; capacity * stride].into_boxed_slice(),
            stride,
            capacity,
            next: 0,
            len: 0,
            total: 0,
        }
    }

    fn push(&mut self, features: &[f64], score: f64) {
        let start = self.next * self.stride;
        let row = &mut self.values[start..start + self.stride];
        row[..features.len()].copy_from_slice(features);
        row[features.len()] = score;
        self.next += 1;
        if self.next == self.capacity {
            self.next = 0;
        }
        self.len = (self.len + 1).min(self.capacity);
        self.total += 1;
    }

    /// The filled rows, in storage order (the window is a multiset: order is irrelevant to
    /// every test).
    fn filled(&self) -> &[f64] {
        &self.values[..self.len * self.stride]
    }
}

/// Sliding-window drift monitor of one model's live traffic. `Send + Sync`: share it
/// behind an `Arc` and call [`observe`](Self::observe) from every request.
#[derive(Debug)]
pub struct StreamMonitor {
    columns: Vec<ColumnModel>,
    /// Absent when the profile holds no scores.
    score: Option<ColumnModel>,
    window: usize,
    min_window: usize,
    drift_share: f64,
    ring: Mutex<Ring>,
    concept: Mutex<ConceptMonitor>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // The guarded data is plain numbers, valid after any panic: never refuse it.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl StreamMonitor {
    /// A monitor of traffic against `profile` (features in the profile's column order).
    pub fn new(profile: &ReferenceProfile, config: &MonitorConfig) -> Result<Self, MonitorError> {
        config.check()?;
        let columns = profile
            .columns
            .iter()
            .map(|c| ColumnModel::of_profile(c, &config.drift))
            .collect::<Result<Vec<_>, _>>()
            .map_err(MonitorError::Config)?;
        let score = profile
            .scores
            .as_ref()
            .map(|s| ColumnModel::new(SCORE_COLUMN, ColumnKind::Numeric, s, None, &config.drift))
            .transpose()
            .map_err(MonitorError::Config)?;
        Ok(StreamMonitor {
            ring: Mutex::new(Ring::new(config.window, columns.len() + 1)),
            concept: Mutex::new(
                ConceptMonitor::new(config.concept.clone())
                    .map_err(|e| MonitorError::Config(e.to_string()))?,
            ),
            columns,
            score,
            window: config.window,
            min_window: config.min_window,
            drift_share: config.drift.drift_share,
        })
    }

    /// Names of the feature columns, in the order `observe` expects them.
    pub fn columns(&self) -> impl Iterator<Item = &str> {
        self.columns.iter().map(|c| c.name.as_str())
    }

    /// Adds one prediction: its feature vector (NaN = missing) and score (NaN when there
    /// is none). Copies into the window; no allocation.
    pub fn observe(&self, features: &[f64], score: f64) -> Result<(), MonitorError> {
        if features.len() != self.columns.len() {
            return Err(MonitorError::Width {
                got: features.len(),
                expected: self.columns.len(),
            });
        }
        lock(&self.ring).push(features, score);
        Ok(())
    }

    /// Adds one labelled prediction to the concept-drift detectors (`error`: the decision
    /// disagreed with the label) and returns what is news: a detector entering its warning
    /// zone or detecting drift.
    pub fn observe_outcome(&self, error: bool) -> Vec<ConceptEvent> {
        lock(&self.concept).update(error)
    }

    /// Evaluates the window: copies it out under the lock, tests outside it.
    pub fn evaluate(&self) -> MonitorSnapshot {
        let stride = self.columns.len() + 1;
        let mut rows = Vec::with_capacity(self.window * stride);
        let total = {
            let ring = lock(&self.ring);
            rows.extend_from_slice(ring.filled());
            ring.total
        };
        let concept = lock(&self.concept).snapshot();
        let observed = rows.len() / stride;
        let judge = observed >= self.min_window;
        let column_values = |j: usize| -> Vec<f64> { rows.iter().skip(j).step_by(stride).copied().collect() };
        let columns: Vec<ColumnSnapshot> = self
            .columns
            .iter()
            .enumerate()
            .map(|(j, model)| model.evaluate(column_values(j), judge))
            .collect();
        let score = self
            .score
            .as_ref()
            .map(|model| model.evaluate(column_values(stride - 1), judge));
        let dataset = judge.then(|| self.dataset_verdict(&columns));
        let drifted = |c: &ColumnSnapshot| c.drift.is_some_and(|d| d.drifted);
        let status = if !judge {
            MonitorStatus::WarmingUp
        } else if dataset.is_some_and(|d| d.drifted) || score.as_ref().is_some_and(drifted) {
            MonitorStatus::Drift
        } else {
            MonitorStatus::Stable
        };
        MonitorSnapshot {
            status,
            window: self.window,
            min_window: self.min_window,
            observed,
            observed_total: total,
            columns,
            dataset,
            score,
            concept,
        }
    }

    fn dataset_verdict(&self, columns: &[ColumnSnapshot]) -> DatasetVerdict {
        let judged = columns.iter().filter(|c| c.drift.is_some()).count();
        let drifted = columns
            .iter()
            .filter(|c| c.drift.is_some_and(|d| d.drifted))
            .count();
        let share = if judged == 0 {
            0.0
        } else {
            drifted as f64 / judged as f64
        };
        DatasetVerdict {
            columns: judged,
            drifted_columns: drifted,
            share,
            drift_share: self.drift_share,
            drifted: judged > 0 && share >= self.drift_share,
        }
    }
}

//! The streaming drift monitor: a count-based sliding window of live feature vectors and
//! scores, evaluated against the champion's reference profile. (Concept drift, on the
//! stream of labelled errors, is [`crate::concept`]'s, run where labels join predictions.)
//!
//! Key decisions. The request path only copies: [`StreamMonitor::observe`] writes one row
//! into a preallocated ring buffer behind a `std::sync::Mutex` held for the copy alone (no
//! allocation, no statistics); [`StreamMonitor::evaluate`] copies the filled rows out under
//! the lock and runs every test outside it, so a slow evaluation never blocks a request.
//!
//! Like is compared with like: when the profile holds hour-of-day strata (a model with an
//! hour-of-day feature), each column of the window is compared with the same hours of the
//! reference period, weighted as the window covers them ([`season`]). A window of a few
//! hours is otherwise compared with whole days, and every feature with a daily cycle (the
//! hour itself, 1 h counts, the score: fraud happens at night) "drifts" twice a day.
//!
//! A column drifts when its distance (normed Wasserstein, Jensen–Shannon, unless
//! configured) reaches the threshold **and** its p-value (KS, chi-square) is below
//! `p_value_threshold / columns`: the distance says the change is large enough to matter
//! and does not grow with the window, as a p-value alone would; the p-value says it is
//! not noise, which a distance alone cannot at `min_window` rows or against a quiet
//! hour's few reference rows. The status is `drift` when any feature column or the score
//! drifts; Evidently's dataset rule (a share of drifted columns) is reported beside it.
//!
//! Both guards assume a window's rows are independent, and they are not: one user's
//! events repeat that user's state, so a per-user 24 h maximum takes the same value on
//! all of them and a single fraud burst moves the window's upper tail. When the profile
//! carries the reference's window spread ([`measure_window_spread`], measured on
//! held-out windows of the training window's latest events when the model is fitted), a distance must also
//! reach that column's noise floor (mean + [`NOISE_SDS`] standard deviations of drift-free windows).
//! This was chosen over two alternatives. Requiring drift over consecutive evaluations
//! does not help: the windows overlap, and a cluster of dependent rows stays in the
//! window for its whole length, as a real change does; only a persistence longer than
//! the window would separate them, which delays every detection by a window. Correcting
//! p-values by an effective sample size needs to know which rows share a user, which
//! the vector does not say. The floor only raises the bar where the reference itself
//! is noisy (per-user maxima and deviations over short windows), so a column whose
//! windows agree with the reference (the request amount, the means, the 7-day
//! aggregates) keeps the configured threshold.

mod column;
mod season;
mod snapshot;
mod spread;

#[cfg(test)]
mod tests;

use std::sync::{Mutex, MutexGuard, PoisonError};

use driftline_core::config::DriftSettings;
use driftline_core::profile::{ColumnKind, HourStratum, ReferenceProfile, Seasons, StratumColumn};

pub use snapshot::{
    ColumnHistogram, ColumnSnapshot, ColumnVerdict, DataQuality, DatasetVerdict, MonitorSnapshot,
    MonitorStatus, SeasonSnapshot,
};
pub use spread::{
    BLOCKS, HeldOutDistances, NOISE_SDS, ReferenceRows, SPREAD_ROWS, held_out_distances,
    measure_window_spread, noise_floor,
};

use crate::selection::DriftConfig;
use column::ColumnModel;
use season::{ColumnStrata, HourMix};

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
        }
    }

    pub fn check(&self) -> Result<(), MonitorError> {
        if self.window == 0 || self.min_window == 0 || self.min_window > self.window {
            return Err(MonitorError::Config(format!(
                "window ({}) and min_window ({}) must be at least 1, min_window at most window",
                self.window, self.min_window
            )));
        }
        self.drift.check().map_err(MonitorError::Config)
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
    /// The family-wise false-positive rate of one evaluation's tests.
    p_value_threshold: f64,
    /// The hour-of-day column and its index, when the profile has strata.
    season: Option<(String, usize)>,
    ring: Mutex<Ring>,
}

/// One column's strata (picked from each hour by `pick`), when every hour has them.
fn strata(
    seasons: Option<&Seasons>,
    pick: impl Fn(&HourStratum) -> Option<&StratumColumn>,
) -> Option<ColumnStrata> {
    let hours: Option<Vec<&StratumColumn>> = seasons?.hours.iter().map(pick).collect();
    hours.map(|h| ColumnStrata::new(h.into_iter()))
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // The guarded data is plain numbers, valid after any panic: never refuse it.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl StreamMonitor {
    /// A monitor of traffic against `profile` (features in the profile's column order).
    pub fn new(profile: &ReferenceProfile, config: &MonitorConfig) -> Result<Self, MonitorError> {
        config.check()?;
        let seasons = profile.seasons.as_ref();
        let season = seasons
            .map(|s| {
                profile
                    .columns
                    .iter()
                    .position(|c| c.name == s.column)
                    .map(|at| (s.column.clone(), at))
                    .ok_or_else(|| {
                        MonitorError::Config(format!(
                            "the profile's season column '{}' is not one of its columns",
                            s.column
                        ))
                    })
            })
            .transpose()?;
        let noise = |name: &str| {
            let spread = profile.window_spread.as_ref()?;
            spread.columns.get(name).map(|d| (*d, spread.window))
        };
        let columns = profile
            .columns
            .iter()
            .enumerate()
            .map(|(j, c)| {
                let strata = strata(seasons, |h| h.columns.get(j));
                ColumnModel::of_profile(c, strata, noise(&c.name), &config.drift)
            })
            .collect::<Result<Vec<_>, _>>()
            .map_err(MonitorError::Config)?;
        let score = profile
            .scores
            .as_ref()
            .map(|s| {
                let strata = strata(seasons, |h| h.scores.as_ref());
                let noise = noise(SCORE_COLUMN);
                ColumnModel::new(
                    SCORE_COLUMN,
                    ColumnKind::Numeric,
                    s,
                    None,
                    strata,
                    noise,
                    &config.drift,
                )
            })
            .transpose()
            .map_err(MonitorError::Config)?;
        Ok(StreamMonitor {
            ring: Mutex::new(Ring::new(config.window, columns.len() + 1)),
            columns,
            score,
            window: config.window,
            min_window: config.min_window,
            drift_share: config.drift.drift_share,
            p_value_threshold: config.drift.p_value_threshold,
            season,
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

    /// Evaluates the window: copies it out under the lock, tests outside it.
    pub fn evaluate(&self) -> MonitorSnapshot {
        let stride = self.columns.len() + 1;
        let mut rows = Vec::with_capacity(self.window * stride);
        let total = {
            let ring = lock(&self.ring);
            rows.extend_from_slice(ring.filled());
            ring.total
        };
        let observed = rows.len() / stride;
        let judge = observed >= self.min_window;
        let column_values = |j: usize| -> Vec<f64> { rows.iter().skip(j).step_by(stride).copied().collect() };
        let mix = self
            .season
            .as_ref()
            .map(|(_, at)| HourMix::of(rows.iter().skip(*at).step_by(stride).copied()));
        let tests = self.columns.len() + usize::from(self.score.is_some());
        let significance = self.p_value_threshold / tests as f64;
        let columns: Vec<ColumnSnapshot> = self
            .columns
            .iter()
            .enumerate()
            .map(|(j, model)| model.evaluate(column_values(j), judge, mix.as_ref(), significance))
            .collect();
        let score = self
            .score
            .as_ref()
            .map(|model| model.evaluate(column_values(stride - 1), judge, mix.as_ref(), significance));
        let dataset = judge.then(|| self.dataset_verdict(&columns));
        let drifted_columns: Vec<String> = columns
            .iter()
            .chain(&score)
            .filter(|c| c.drift.is_some_and(|d| d.drifted))
            .map(|c| c.name.clone())
            .collect();
        let status = if !judge {
            MonitorStatus::WarmingUp
        } else if drifted_columns.is_empty() {
            MonitorStatus::Stable
        } else {
            MonitorStatus::Drift
        };
        let season = self
            .season
            .as_ref()
            .zip(mix)
            .map(|((column, _), mix)| SeasonSnapshot {
                column: column.clone(),
                window_hours: mix.rows.to_vec(),
                unassigned: mix.unassigned,
            });
        MonitorSnapshot {
            status,
            window: self.window,
            min_window: self.min_window,
            observed,
            observed_total: total,
            columns,
            dataset,
            score,
            drifted_columns,
            season,
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

//! Hour-of-day strata of a reference profile: per UTC hour, each column's values (a
//! sorted sample of order statistics, or category counts) and the scores, so the drift
//! monitor can compare a live window with the same hours of the reference period.
//!
//! Key decision: the stratum key is the model's own hour-of-day feature column (values
//! 0..=23), not a separate timestamp, so the monitor reads a live row's hour from the
//! vector it already copies and training and serving cannot disagree about it. Rows whose
//! hour is missing or not an integer in 0..=23 belong to no stratum (the monitor judges
//! them against the whole reference). Strata keep at most `season_sample_size` order
//! statistics per numeric column: a window is compared with a mixture of a few strata, so
//! a few hundred quantiles each keep KS within `1 / (2 · season_sample_size)` of the
//! stratum's own data at a fraction of the profile's size.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{ColumnKind, as_code, sample_sorted};

/// Hours in a day: strata are indexed 0..HOURS.
pub const HOURS: usize = 24;

/// The reference data split by the hour of day of each row.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Seasons {
    /// The hour-of-day column (values 0..=23) the rows were split by.
    pub column: String,
    /// One stratum per hour, index = hour (always [`HOURS`] entries).
    pub hours: Vec<HourStratum>,
    /// The decision threshold (a score at or above it is declined) each hour's
    /// [`HourStratum::decision_offsets`] were measured at, when they were. Absent from
    /// profiles before format 5.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decision_threshold: Option<f64>,
}

/// The reference rows of one hour of day.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HourStratum {
    /// Rows whose hour column holds this hour.
    pub rows: usize,
    /// One per profile column, in column order.
    pub columns: Vec<StratumColumn>,
    /// The model's scores on these rows, when the profile has scores.
    pub scores: Option<StratumColumn>,
    /// How far the model's scores miss this hour's label rate, when the profile has both
    /// scores and labels and the hour has at least [`MIN_CALIBRATION_LABELS`] of each
    /// class: the offset `b` on the log-odds scale for which the scores' mean,
    /// recalibrated as `σ(logit(p) + b)`, equals the hour's share of positive labels
    /// (recalibration in the large, per hour). The concept-drift detectors expect errors
    /// from recalibrated scores, so a daily cycle the model does not capture (fraud at
    /// night) is not mistaken for drift. Absent from profiles before format 4.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logit_offset: Option<f64>,
    /// The same recalibration measured within each decision of the hour, when the
    /// profile was calibrated with a decision threshold ([`Seasons::calibrate`]):
    /// approved and declined predictions each get the offset that makes their
    /// recalibrated scores add up to their own positives. An error is a positive among
    /// the approved or a negative among the declined, so the expected errors then add up
    /// to the hour's errors, which one offset per hour does not promise: at the start of
    /// the night, when fraud episodes begin and their first events are approved, the
    /// hour's fraud rate is right but too little of it falls on the approved. Absent
    /// from profiles before format 5.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decision_offsets: Option<DecisionOffsets>,
}

/// An hour's log-odds offsets by decision (see [`HourStratum::decision_offsets`]); each
/// is `None` when that decision's rows hold fewer than [`MIN_CALIBRATION_LABELS`] of
/// either class.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct DecisionOffsets {
    /// For scores below the threshold.
    pub approved: Option<f64>,
    /// For scores at or above it.
    pub declined: Option<f64>,
}

/// An hour needs this many positive and negative labels for its [`HourStratum::logit_offset`].
pub const MIN_CALIBRATION_LABELS: usize = 20;

/// The log-odds of `p`, with `p` kept within `[1e-9, 1 − 1e-9]` so 0 and 1 stay finite.
fn logit(p: f64) -> f64 {
    let p = p.clamp(1e-9, 1.0 - 1e-9);
    (p / (1.0 - p)).ln()
}

fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

/// `score` recalibrated by `logit_offset` (see [`HourStratum::logit_offset`]).
pub fn recalibrate(score: f64, logit_offset: f64) -> f64 {
    sigmoid(logit(score) + logit_offset)
}

/// The offset `b` with `Σ σ(logit(pᵢ) + b) = positives`, by bisection (the sum rises
/// monotonically with `b`); `None` with fewer than [`MIN_CALIBRATION_LABELS`] of either
/// class.
fn logit_offset(scored: &[(f64, bool)]) -> Option<f64> {
    let positives = scored.iter().filter(|(_, l)| *l).count();
    if positives < MIN_CALIBRATION_LABELS || scored.len() - positives < MIN_CALIBRATION_LABELS {
        return None;
    }
    let logits: Vec<f64> = scored.iter().map(|(s, _)| logit(*s)).collect();
    let expected = |b: f64| logits.iter().map(|x| sigmoid(x + b)).sum::<f64>();
    let target = positives as f64;
    let (mut low, mut high) = (-30.0_f64, 30.0_f64);
    for _ in 0..60 {
        let mid = 0.5 * (low + high);
        if expected(mid) < target {
            low = mid;
        } else {
            high = mid;
        }
    }
    Some(0.5 * (low + high))
}

/// One column's values within a stratum. NaN counts as missing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StratumColumn {
    /// Non-missing values.
    pub count: usize,
    pub missing: usize,
    /// Numeric columns and scores: at most `season_sample_size` evenly spaced order
    /// statistics of the non-missing values, ascending (all of them when few enough).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sample: Vec<f64>,
    /// Categorical columns: code -> count.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub categories: Option<BTreeMap<i64, usize>>,
}

impl Seasons {
    /// The stratum of `hour`, if it is one.
    pub fn hour(&self, hour: usize) -> Option<&HourStratum> {
        self.hours.get(hour)
    }

    /// Measures each hour's [`HourStratum::logit_offset`] again, and its
    /// [`HourStratum::decision_offsets`] at `decision_threshold`, over `scored` labelled
    /// rows (hour of day, the model's score, label) instead of the rows the strata were
    /// fitted on: a longer stretch of history holds more of each hour's rare positives
    /// (a few days hold ~100 fraud labels an hour, a noisy offset). Rows with a missing
    /// score or no hour are skipped; an offset short of [`MIN_CALIBRATION_LABELS`] of
    /// either class is `None`.
    pub fn calibrate(
        &mut self,
        scored: impl IntoIterator<Item = (Option<usize>, f64, bool)>,
        decision_threshold: f64,
    ) {
        let mut hour_scored: Vec<Vec<(f64, bool)>> = vec![Vec::new(); HOURS];
        for (hour, score, label) in scored {
            if let (Some(hour), false) = (hour.filter(|&h| h < HOURS), score.is_nan()) {
                hour_scored[hour].push((score, label));
            }
        }
        for (stratum, scored) in self.hours.iter_mut().zip(&hour_scored) {
            stratum.logit_offset = logit_offset(scored);
            let (declined, approved): (Vec<_>, Vec<_>) = scored
                .iter()
                .copied()
                .partition(|(score, _)| *score >= decision_threshold);
            stratum.decision_offsets = Some(DecisionOffsets {
                approved: logit_offset(&approved),
                declined: logit_offset(&declined),
            });
        }
        self.decision_threshold = Some(decision_threshold);
    }
}

/// `v` as an hour of day, when it is an integer in 0..=23.
pub fn hour_of(v: f64) -> Option<usize> {
    (v.fract() == 0.0 && (0.0..HOURS as f64).contains(&v)).then_some(v as usize)
}

/// Marks a row that belongs to no stratum.
const NO_HOUR: u8 = u8::MAX;

/// Splits rows by hour while [`ReferenceProfile::fit`](super::ReferenceProfile::fit)
/// reads them.
#[derive(Debug)]
pub(super) struct SeasonBuilder {
    name: String,
    column: usize,
    /// [hour][column] -> non-missing values.
    values: Vec<Vec<Vec<f64>>>,
    /// [hour][column] -> missing count.
    missing: Vec<Vec<usize>>,
    /// Each row's hour (or [`NO_HOUR`]), for the scores that arrive separately.
    row_hours: Vec<u8>,
}

impl SeasonBuilder {
    pub fn new(name: &str, column: usize, columns: usize) -> Self {
        SeasonBuilder {
            name: name.to_string(),
            column,
            values: vec![vec![Vec::new(); columns]; HOURS],
            missing: vec![vec![0; columns]; HOURS],
            row_hours: Vec::new(),
        }
    }

    /// Adds one row (already checked: finite or NaN, codes where categorical).
    pub fn push(&mut self, row: &[f64]) {
        let Some(hour) = hour_of(row[self.column]) else {
            self.row_hours.push(NO_HOUR);
            return;
        };
        self.row_hours.push(hour as u8);
        for (j, &v) in row.iter().enumerate() {
            if v.is_nan() {
                self.missing[hour][j] += 1;
            } else {
                self.values[hour][j].push(v);
            }
        }
    }

    /// The strata, with `scores` (one per row, NaN = missing) split the same way, and
    /// with `labels` (one per row) each hour's calibration of the scores.
    pub fn finish(
        self,
        kinds: &[ColumnKind],
        scores: Option<&[f64]>,
        labels: Option<&[bool]>,
        sample_size: usize,
    ) -> Seasons {
        let mut hour_scores: Vec<Vec<f64>> = vec![Vec::new(); HOURS];
        let mut hour_missing_scores = [0usize; HOURS];
        let mut hour_scored: Vec<Vec<(f64, bool)>> = vec![Vec::new(); HOURS];
        if let Some(scores) = scores {
            for (r, (&hour, &s)) in self.row_hours.iter().zip(scores).enumerate() {
                if hour == NO_HOUR {
                    continue;
                }
                if s.is_nan() {
                    hour_missing_scores[usize::from(hour)] += 1;
                } else {
                    hour_scores[usize::from(hour)].push(s);
                    if let Some(labels) = labels {
                        hour_scored[usize::from(hour)].push((s, labels[r]));
                    }
                }
            }
        }
        let mut rows = [0usize; HOURS];
        for &hour in self.row_hours.iter().filter(|&&h| h != NO_HOUR) {
            rows[usize::from(hour)] += 1;
        }
        let hours = self
            .values
            .into_iter()
            .zip(self.missing)
            .zip(hour_scores.into_iter().zip(hour_missing_scores))
            .enumerate()
            .map(
                |(hour, ((values, missing), (scores_h, missing_scores)))| HourStratum {
                    rows: rows[hour],
                    columns: values
                        .into_iter()
                        .zip(missing)
                        .zip(kinds)
                        .map(|((values, missing), &kind)| stratum_column(values, missing, kind, sample_size))
                        .collect(),
                    scores: scores
                        .map(|_| stratum_column(scores_h, missing_scores, ColumnKind::Numeric, sample_size)),
                    logit_offset: logit_offset(&hour_scored[hour]),
                    decision_offsets: None,
                },
            )
            .collect();
        Seasons {
            column: self.name,
            hours,
            decision_threshold: None,
        }
    }
}

fn stratum_column(
    mut values: Vec<f64>,
    missing: usize,
    kind: ColumnKind,
    sample_size: usize,
) -> StratumColumn {
    values.sort_unstable_by(f64::total_cmp);
    let count = values.len();
    match kind {
        ColumnKind::Numeric => StratumColumn {
            count,
            missing,
            sample: sample_sorted(&values, sample_size),
            categories: None,
        },
        ColumnKind::Categorical => {
            let mut categories = BTreeMap::new();
            for v in values {
                let code = as_code(v).expect("categorical values were checked to be codes");
                *categories.entry(code).or_insert(0) += 1;
            }
            StratumColumn {
                count,
                missing,
                sample: Vec::new(),
                categories: Some(categories),
            }
        }
    }
}

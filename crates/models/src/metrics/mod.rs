//! Evaluation metrics of binary classifiers: scored (probability in `[0, 1]`), labelled
//! rows in, the numbers that gate model promotion out.
//!
//! Every metric follows scikit-learn's definition (`roc_auc_score`,
//! `average_precision_score`, `log_loss`, `brier_score_loss`), so a team sees the numbers it
//! knows; `tests.rs` checks them against fixtures produced by scikit-learn itself
//! (`tests/fixtures/make_metrics_fixtures.py`).
//!
//! The design decision: the ranking metrics (ROC AUC, average precision) are computed from
//! one sort of the scores, split by label, and one walk over the *distinct* scores from the
//! highest down. Tied scores form one threshold group, which is what gives sklearn's tie
//! handling (trapezoid rule for AUC, one step per distinct score for AP). AUC is accumulated
//! in exact integer arithmetic and divided once; the sums of floats use compensated
//! (Neumaier) summation, so 10M rows lose no accuracy.
//!
//! The free functions take validated input (same lengths, scores in `[0, 1]`) and panic on
//! a length mismatch; [`Metrics::compute`] validates and reports bad input as a
//! [`MetricsError`] instead.

use serde::{Deserialize, Serialize};

#[cfg(test)]
mod tests;

/// The number of equal-width bins [`Metrics::compute`] uses for the expected calibration
/// error.
pub const ECE_BINS: usize = 10;

/// Input that metrics cannot be computed from.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum MetricsError {
    /// Scores and labels differ in length.
    #[error("{scores} scores but {labels} labels: each row needs one score and one label")]
    LengthMismatch {
        /// The number of scores.
        scores: usize,
        /// The number of labels.
        labels: usize,
    },
    /// There are no rows.
    #[error("no rows: metrics need at least one scored, labelled row")]
    Empty,
    /// A score is NaN, infinite or outside `[0, 1]`.
    #[error("score at index {index} is {value}: scores must be probabilities in [0, 1]")]
    InvalidScore {
        /// The row's position.
        index: usize,
        /// The offending score.
        value: f64,
    },
    /// The decision threshold is NaN or infinite.
    #[error("threshold is {value}: it must be a finite number")]
    InvalidThreshold {
        /// The offending threshold.
        value: f64,
    },
}

/// Counts of predictions against labels at one decision threshold.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Confusion {
    /// Positives predicted positive.
    pub tp: u64,
    /// Negatives predicted positive.
    pub fp: u64,
    /// Negatives predicted negative.
    pub tn: u64,
    /// Positives predicted negative (`fn` in JSON; `fn` is a Rust keyword).
    #[serde(rename = "fn")]
    pub fn_: u64,
}

/// All the evaluation metrics of one set of scored, labelled rows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Metrics {
    /// The number of rows evaluated.
    pub rows: u64,
    /// The number of rows labelled positive.
    pub positives: u64,
    /// The fraction of rows labelled positive (`positives / rows`).
    pub label_rate: f64,
    /// The decision threshold of `confusion`: a row is predicted positive when its score is
    /// at least this.
    pub threshold: f64,
    /// Area under the ROC curve, ties counted half (sklearn `roc_auc_score`); `null` when
    /// only one class is present.
    pub roc_auc: Option<f64>,
    /// Average precision, the step-wise (not interpolated) area under the precision-recall
    /// curve with one step per distinct score (sklearn `average_precision_score`); `null`
    /// when there are no positives.
    pub average_precision: Option<f64>,
    /// Mean cross-entropy in nats, probabilities clipped to `[ε, 1 − ε]` with ε the f64
    /// machine epsilon (sklearn `log_loss`). Lower is better.
    pub log_loss: f64,
    /// Mean squared difference between score and label (sklearn `brier_score_loss`). Lower
    /// is better.
    pub brier_score: f64,
    /// Expected calibration error over `calibration_bins` equal-width bins: the row-weighted
    /// mean of |mean score − positive rate| per bin. Lower is better.
    pub expected_calibration_error: f64,
    /// The number of bins of `expected_calibration_error`.
    pub calibration_bins: usize,
    /// Confusion counts at `threshold`.
    pub confusion: Confusion,
}

impl Metrics {
    /// Validates the rows and computes every metric, with [`ECE_BINS`] calibration bins.
    ///
    /// Sorts the scores once (O(n log n), one allocation of 8 bytes per row).
    pub fn compute(scores: &[f64], labels: &[bool], threshold: f64) -> Result<Metrics, MetricsError> {
        validate(scores, labels)?;
        if !threshold.is_finite() {
            return Err(MetricsError::InvalidThreshold { value: threshold });
        }
        let ranked = Ranked::new(scores, labels);
        let rows = scores.len() as u64;
        let positives = ranked.positives() as u64;
        Ok(Metrics {
            rows,
            positives,
            label_rate: positives as f64 / rows as f64,
            threshold,
            roc_auc: ranked.roc_auc(),
            average_precision: ranked.average_precision(),
            log_loss: log_loss(scores, labels),
            brier_score: brier_score(scores, labels),
            expected_calibration_error: expected_calibration_error(scores, labels, ECE_BINS),
            calibration_bins: ECE_BINS,
            confusion: confusion_at(scores, labels, threshold),
        })
    }
}

/// Checks that scores and labels can be evaluated: same non-zero length, every score a
/// probability in `[0, 1]`. The first bad score is named by index and value.
pub fn validate(scores: &[f64], labels: &[bool]) -> Result<(), MetricsError> {
    if scores.len() != labels.len() {
        return Err(MetricsError::LengthMismatch {
            scores: scores.len(),
            labels: labels.len(),
        });
    }
    if scores.is_empty() {
        return Err(MetricsError::Empty);
    }
    match scores.iter().position(|s| !(0.0..=1.0).contains(s)) {
        Some(index) => Err(MetricsError::InvalidScore {
            index,
            value: scores[index],
        }),
        None => Ok(()),
    }
}

/// Area under the ROC curve, as sklearn's `roc_auc_score`: the probability that a random
/// positive scores above a random negative, ties counting one half. `None` when only one
/// class is present (or there are no rows).
///
/// # Panics
/// If `scores` and `labels` differ in length.
pub fn roc_auc(scores: &[f64], labels: &[bool]) -> Option<f64> {
    Ranked::new(scores, labels).roc_auc()
}

/// Standard error of a ROC AUC measured on `positives` and `negatives` rows, by Hanley and
/// McNeil (1982, Radiology 143:29), which models each class's placement distribution as
/// exponential: SE² = (A(1−A) + (n₁−1)(Q₁−A²) + (n₂−1)(Q₂−A²)) / (n₁n₂), with
/// Q₁ = A/(2−A) and Q₂ = 2A²/(1+A). It assumes independent rows; rows that come in
/// correlated bursts (fraud episodes of one user) make the true error larger. Infinite
/// when a class is empty.
pub fn roc_auc_standard_error(auc: f64, positives: usize, negatives: usize) -> f64 {
    if positives == 0 || negatives == 0 {
        return f64::INFINITY;
    }
    let (n1, n2) = (positives as f64, negatives as f64);
    let q1 = auc / (2.0 - auc);
    let q2 = 2.0 * auc * auc / (1.0 + auc);
    let a2 = auc * auc;
    let variance = (auc * (1.0 - auc) + (n1 - 1.0) * (q1 - a2) + (n2 - 1.0) * (q2 - a2)) / (n1 * n2);
    variance.max(0.0).sqrt()
}

/// Average precision, as sklearn's `average_precision_score`: Σ (Rₖ − Rₖ₋₁)·Pₖ over the
/// distinct scores from the highest down, tied scores forming one step (no
/// interpolation). `None` when there are no positives (sklearn warns and returns 0 there).
///
/// # Panics
/// If `scores` and `labels` differ in length.
pub fn average_precision(scores: &[f64], labels: &[bool]) -> Option<f64> {
    Ranked::new(scores, labels).average_precision()
}

/// Mean log loss (cross-entropy, in nats), as sklearn's `log_loss`: the probability given
/// to the true class is clipped to `[ε, 1 − ε]`, ε = [`f64::EPSILON`] (sklearn ≥ 1.5).
/// Like sklearn, a negative row's probability is computed as `1 − score` before clipping.
/// NaN for no rows.
///
/// # Panics
/// If `scores` and `labels` differ in length.
pub fn log_loss(scores: &[f64], labels: &[bool]) -> f64 {
    assert_same_len(scores, labels);
    const EPS: f64 = f64::EPSILON;
    let mut sum = NeumaierSum::default();
    for (&s, &y) in scores.iter().zip(labels) {
        let p_true = if y { s } else { 1.0 - s };
        sum.add(-p_true.clamp(EPS, 1.0 - EPS).ln());
    }
    sum.total() / scores.len() as f64
}

/// Brier score, as sklearn's `brier_score_loss`: the mean of (score − label)². NaN for no
/// rows.
///
/// # Panics
/// If `scores` and `labels` differ in length.
pub fn brier_score(scores: &[f64], labels: &[bool]) -> f64 {
    assert_same_len(scores, labels);
    let mut sum = NeumaierSum::default();
    for (&s, &y) in scores.iter().zip(labels) {
        let d = s - f64::from(u8::from(y));
        sum.add(d * d);
    }
    sum.total() / scores.len() as f64
}

/// Expected calibration error over `bins` equal-width bins of `[0, 1]`: bin b holds the
/// scores with `min(⌊score · bins⌋, bins − 1) = b` (so 1.0 falls in the last bin), and
/// ECE = Σ (n_b / N)·|mean score_b − positive rate_b| over non-empty bins. NaN for no rows.
///
/// # Panics
/// If `bins` is 0, or `scores` and `labels` differ in length.
pub fn expected_calibration_error(scores: &[f64], labels: &[bool], bins: usize) -> f64 {
    assert_same_len(scores, labels);
    assert!(bins > 0, "expected_calibration_error needs at least one bin");
    // Per bin: rows, positives, sum of scores.
    let mut acc = vec![(0u64, 0u64, NeumaierSum::default()); bins];
    for (&s, &y) in scores.iter().zip(labels) {
        // `as usize` saturates: NaN and negatives land in bin 0, which only matters for
        // unvalidated input.
        let b = ((s * bins as f64).floor() as usize).min(bins - 1);
        let (n, pos, sum) = &mut acc[b];
        *n += 1;
        *pos += u64::from(y);
        sum.add(s);
    }
    let total = scores.len() as f64;
    let mut ece = NeumaierSum::default();
    for (n, pos, sum) in acc.into_iter().filter(|(n, _, _)| *n > 0) {
        let n = n as f64;
        ece.add((n / total) * (sum.total() / n - pos as f64 / n).abs());
    }
    ece.total()
}

/// Confusion counts when a row is predicted positive iff its score is `>= threshold`.
///
/// # Panics
/// If `scores` and `labels` differ in length.
pub fn confusion_at(scores: &[f64], labels: &[bool], threshold: f64) -> Confusion {
    assert_same_len(scores, labels);
    let mut c = Confusion::default();
    for (&s, &y) in scores.iter().zip(labels) {
        match (s >= threshold, y) {
            (true, true) => c.tp += 1,
            (true, false) => c.fp += 1,
            (false, false) => c.tn += 1,
            (false, true) => c.fn_ += 1,
        }
    }
    c
}

fn assert_same_len(scores: &[f64], labels: &[bool]) {
    assert_eq!(
        scores.len(),
        labels.len(),
        "scores and labels must have the same length"
    );
}

/// Scores split by label, each sorted descending: the one sort the ranking metrics share.
struct Ranked {
    positives: Vec<f64>,
    negatives: Vec<f64>,
}

/// One distinct score: how many positives and negatives have it.
#[derive(Debug, Clone, Copy)]
struct Group {
    tp: u64,
    fp: u64,
}

impl Ranked {
    fn new(scores: &[f64], labels: &[bool]) -> Ranked {
        assert_same_len(scores, labels);
        let n_pos = labels.iter().filter(|&&y| y).count();
        let mut positives = Vec::with_capacity(n_pos);
        let mut negatives = Vec::with_capacity(scores.len() - n_pos);
        for (&s, &y) in scores.iter().zip(labels) {
            // `+ 0.0` turns -0.0 into 0.0, so the two tie as they do in sklearn.
            if y {
                positives.push(s + 0.0)
            } else {
                negatives.push(s + 0.0)
            }
        }
        positives.sort_unstable_by(|a, b| b.total_cmp(a));
        negatives.sort_unstable_by(|a, b| b.total_cmp(a));
        Ranked { positives, negatives }
    }

    fn positives(&self) -> usize {
        self.positives.len()
    }

    /// Calls `f` once per distinct score, from the highest down.
    fn for_each_group(&self, mut f: impl FnMut(Group)) {
        let (pos, neg) = (&self.positives, &self.negatives);
        let (mut i, mut j) = (0, 0);
        while i < pos.len() || j < neg.len() {
            let score = match (pos.get(i), neg.get(j)) {
                (Some(&p), Some(&n)) => p.max(n),
                (Some(&p), None) => p,
                (None, Some(&n)) => n,
                (None, None) => unreachable!("loop condition"),
            };
            let (i0, j0) = (i, j);
            while i < pos.len() && pos[i] == score {
                i += 1;
            }
            while j < neg.len() && neg[j] == score {
                j += 1;
            }
            f(Group {
                tp: (i - i0) as u64,
                fp: (j - j0) as u64,
            });
        }
    }

    fn roc_auc(&self) -> Option<f64> {
        let (p, n) = (self.positives.len() as u128, self.negatives.len() as u128);
        if p == 0 || n == 0 {
            return None;
        }
        // Twice the area, in units of one positive-negative pair: each negative scores
        // below every positive seen before its group (2) and ties those in its group (1).
        let mut twice_area: u128 = 0;
        let mut tp_above: u128 = 0;
        self.for_each_group(|g| {
            twice_area += u128::from(g.fp) * (2 * tp_above + u128::from(g.tp));
            tp_above += u128::from(g.tp);
        });
        Some(twice_area as f64 / (2 * p * n) as f64)
    }

    fn average_precision(&self) -> Option<f64> {
        if self.positives.is_empty() {
            return None;
        }
        let (mut tp, mut fp) = (0u64, 0u64);
        let mut sum = NeumaierSum::default();
        self.for_each_group(|g| {
            tp += g.tp;
            fp += g.fp;
            if g.tp > 0 {
                sum.add(g.tp as f64 * (tp as f64 / (tp + fp) as f64));
            }
        });
        Some(sum.total() / self.positives.len() as f64)
    }
}

/// Neumaier's compensated sum: the error of adding n terms stays O(ε), not O(nε).
#[derive(Debug, Clone, Copy, Default)]
struct NeumaierSum {
    sum: f64,
    compensation: f64,
}

impl NeumaierSum {
    fn add(&mut self, x: f64) {
        let t = self.sum + x;
        self.compensation += if self.sum.abs() >= x.abs() {
            (self.sum - t) + x
        } else {
            (x - t) + self.sum
        };
        self.sum = t;
    }

    fn total(self) -> f64 {
        self.sum + self.compensation
    }
}

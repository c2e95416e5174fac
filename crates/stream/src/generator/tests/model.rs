//! A tiny fraud model for tests: history features, logistic regression, ROC AUC.
//!
//! Key decision: the features are the ones a real feature pipeline would compute from
//! each user's past events only (count in the last hour, amount z-score, country and
//! device unlike the user's usual, night hour), so a passing test shows the fraud
//! signal is learnable from history, not just present in hidden state.

use std::collections::{HashMap, VecDeque};

use chrono::{DateTime, Timelike};

use crate::generator::GeneratedEvent;

/// Number of features per event (without the intercept).
pub(super) const FEATURES: usize = 6;
/// Index of the raw log amount among the features.
pub(super) const LOG_AMOUNT: usize = 5;

/// One user's past, as the features need it.
#[derive(Default)]
struct History {
    recent: VecDeque<i64>,
    count: f64,
    mean_log_amount: f64,
    sum_squares: f64,
    countries: HashMap<&'static str, u32>,
    devices: HashMap<&'static str, u32>,
}

impl History {
    fn features(&mut self, second: i64, log_amount: f64, event: &GeneratedEvent) -> [f64; FEATURES] {
        while self.recent.front().is_some_and(|&t| t <= second - 3600) {
            self.recent.pop_front();
        }
        let z = if self.count >= 3.0 {
            let sd = (self.sum_squares / (self.count - 1.0)).sqrt().max(0.2);
            (log_amount - self.mean_log_amount) / sd
        } else {
            0.0
        };
        let hour = DateTime::from_timestamp(second, 0).unwrap().hour();
        [
            (self.recent.len() as f64).ln_1p(),
            z,
            unusual(&self.countries, event.country.unwrap()),
            unusual(&self.devices, event.device.unwrap()),
            f64::from(u8::from(hour < 6)),
            log_amount,
        ]
    }

    fn record(&mut self, second: i64, log_amount: f64, event: &GeneratedEvent) {
        self.recent.push_back(second);
        self.count += 1.0;
        let delta = log_amount - self.mean_log_amount;
        self.mean_log_amount += delta / self.count;
        self.sum_squares += delta * (log_amount - self.mean_log_amount);
        *self.countries.entry(event.country.unwrap()).or_default() += 1;
        *self.devices.entry(event.device.unwrap()).or_default() += 1;
    }
}

/// 1 if `value` is not the most frequent value so far (0 with no history).
fn unusual(counts: &HashMap<&'static str, u32>, value: &str) -> f64 {
    let most = counts.values().copied().max().unwrap_or(0);
    let seen = counts.get(value).copied().unwrap_or(0);
    f64::from(u8::from(most > 0 && seen < most))
}

/// Point-in-time features of every event (events must be in event-time order).
pub(super) fn history_features(events: &[GeneratedEvent]) -> Vec<[f64; FEATURES]> {
    let mut users: HashMap<&str, History> = HashMap::new();
    events
        .iter()
        .map(|event| {
            let second = DateTime::parse_from_rfc3339(&event.event_ts).unwrap().timestamp();
            let log_amount = event.transaction_amount.unwrap().ln();
            let history = users.entry(event.user_id.as_str()).or_default();
            let row = history.features(second, log_amount, event);
            history.record(second, log_amount, event);
            row
        })
        .collect()
}

/// Logistic regression on standardised features.
pub(super) struct Logistic {
    means: [f64; FEATURES],
    scales: [f64; FEATURES],
    /// Intercept first.
    weights: [f64; FEATURES + 1],
}

impl Logistic {
    /// Fits by Newton's method (a dozen steps, light ridge) on the chosen features.
    pub(super) fn fit(rows: &[[f64; FEATURES]], labels: &[u8], used: &[usize]) -> Self {
        let (means, scales) = standardisation(rows, used);
        let mut model = Self {
            means,
            scales,
            weights: [0.0; FEATURES + 1],
        };
        for _ in 0..12 {
            model.newton_step(rows, labels);
        }
        model
    }

    pub(super) fn score(&self, row: &[f64; FEATURES]) -> f64 {
        let inputs = self.inputs(row);
        inputs.iter().zip(&self.weights).map(|(x, w)| x * w).sum()
    }

    fn inputs(&self, row: &[f64; FEATURES]) -> [f64; FEATURES + 1] {
        std::array::from_fn(|k| {
            if k == 0 {
                1.0
            } else {
                (row[k - 1] - self.means[k - 1]) / self.scales[k - 1]
            }
        })
    }

    fn newton_step(&mut self, rows: &[[f64; FEATURES]], labels: &[u8]) {
        const N: usize = FEATURES + 1;
        let mut gradient = [0.0; N];
        let mut hessian = [[0.0; N]; N];
        for (row, &label) in rows.iter().zip(labels) {
            let x = self.inputs(row);
            let p = 1.0 / (1.0 + (-self.score(row)).exp());
            let weight = p * (1.0 - p);
            for a in 0..N {
                gradient[a] += (f64::from(label) - p) * x[a];
                for b in 0..N {
                    hessian[a][b] += weight * x[a] * x[b];
                }
            }
        }
        for (a, row) in hessian.iter_mut().enumerate() {
            row[a] += 1e-3 * rows.len() as f64 + 1e-9;
        }
        let step = solve(hessian, gradient);
        for (w, s) in self.weights.iter_mut().zip(step) {
            *w += s;
        }
    }
}

/// Means and standard deviations; unused features get scale infinity (input 0).
fn standardisation(rows: &[[f64; FEATURES]], used: &[usize]) -> ([f64; FEATURES], [f64; FEATURES]) {
    let n = rows.len() as f64;
    let means: [f64; FEATURES] = std::array::from_fn(|k| rows.iter().map(|r| r[k]).sum::<f64>() / n);
    let scales = std::array::from_fn(|k| {
        if !used.contains(&k) {
            return f64::INFINITY;
        }
        let variance = rows.iter().map(|r| (r[k] - means[k]).powi(2)).sum::<f64>() / n;
        variance.sqrt().max(1e-9)
    });
    (means, scales)
}

/// Solves `a x = b` by Gaussian elimination with partial pivoting.
fn solve<const N: usize>(mut a: [[f64; N]; N], mut b: [f64; N]) -> [f64; N] {
    for col in 0..N {
        let pivot = (col..N)
            .max_by(|&i, &j| a[i][col].abs().total_cmp(&a[j][col].abs()))
            .unwrap();
        a.swap(col, pivot);
        b.swap(col, pivot);
        let pivot_row = a[col];
        for row in col + 1..N {
            let factor = a[row][col] / pivot_row[col];
            for (target, source) in a[row][col..].iter_mut().zip(&pivot_row[col..]) {
                *target -= factor * source;
            }
            b[row] -= factor * b[col];
        }
    }
    let mut x = [0.0; N];
    for row in (0..N).rev() {
        let tail: f64 = (row + 1..N).map(|k| a[row][k] * x[k]).sum();
        x[row] = (b[row] - tail) / a[row][row];
    }
    x
}

/// ROC AUC of `scores` against binary `labels` (ties count half).
pub(super) fn auc(scores: &[f64], labels: &[u8]) -> f64 {
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[a].total_cmp(&scores[b]));
    let mut rank_sum = 0.0;
    let mut start = 0;
    while start < order.len() {
        let mut end = start;
        while end + 1 < order.len() && scores[order[end + 1]] == scores[order[start]] {
            end += 1;
        }
        let average_rank = (start + end) as f64 / 2.0 + 1.0;
        for &i in &order[start..=end] {
            if labels[i] == 1 {
                rank_sum += average_rank;
            }
        }
        start = end + 1;
    }
    let positives = labels.iter().filter(|&&l| l == 1).count() as f64;
    let negatives = labels.len() as f64 - positives;
    (rank_sum - positives * (positives + 1.0) / 2.0) / (positives * negatives)
}

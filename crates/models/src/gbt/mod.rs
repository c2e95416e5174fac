//! Histogram-based gradient-boosted trees for binary classification, in the manner of
//! scikit-learn's `HistGradientBoostingClassifier`.
//!
//! Features are binned once into `u8` codes by training quantiles (missing values get a
//! bin of their own and each split learns which side they go to); each iteration fits one
//! regression tree to the log-loss gradients and hessians, grown best-first up to
//! `max_leaf_nodes`. The design decision: everything is single-threaded with a fixed
//! summation order and seeded, sorted splits, so the same data and parameters give a
//! bit-identical model. The fitted [`Gbt`] keeps raw-value thresholds, not the binning,
//! so scoring needs only the row. Early stopping watches the log loss of a seeded,
//! stratified validation split and keeps the trees up to its best iteration.

mod binning;
mod tree;

#[cfg(test)]
mod tests;

use serde::{Deserialize, Serialize};

use crate::dataset::Dataset;
use crate::error::ModelError;
use crate::model::{Model, log1p_exp, sigmoid};

use binning::BinMapper;
use tree::{Binned, GrowParams, Grower};
pub use tree::{Node, Tree};

/// How to fit a [`Gbt`]. Defaults are scikit-learn's, except `max_iter` (200, with early
/// stopping always on by default rather than only above 10,000 rows).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GbtParams {
    /// Shrinkage applied to every leaf value. Finite, in (0, 1]. Default 0.1.
    pub learning_rate: f64,
    /// Maximum boosting iterations (trees). At least 1. Default 200.
    pub max_iter: usize,
    /// Maximum leaves per tree. At least 2. Default 31.
    pub max_leaf_nodes: usize,
    /// Maximum depth of a tree (the root is depth 0); `None` for no limit. At least 1.
    pub max_depth: Option<usize>,
    /// Minimum training rows in a leaf. At least 1. Default 20.
    pub min_samples_leaf: usize,
    /// L2 penalty on leaf values. Finite and >= 0. Default 0.
    pub l2_regularization: f64,
    /// Bins per feature, the one for missing values included. In 3..=255. Default 255.
    pub max_bins: usize,
    /// Hold out `validation_fraction` of the rows and stop when their log loss stops
    /// improving. Default true.
    pub early_stopping: bool,
    /// The share of rows held out for early stopping. In (0, 1). Default 0.1.
    pub validation_fraction: f64,
    /// Stop after this many iterations without an improvement of more than `tol`. At
    /// least 1. Default 10.
    pub n_iter_no_change: usize,
    /// The least validation log-loss decrease that counts as an improvement. Finite and
    /// >= 0. Default 1e-7.
    pub tol: f64,
    /// Seed of the validation split. Default 0.
    pub seed: u64,
}

impl Default for GbtParams {
    fn default() -> Self {
        GbtParams {
            learning_rate: 0.1,
            max_iter: 200,
            max_leaf_nodes: 31,
            max_depth: None,
            min_samples_leaf: 20,
            l2_regularization: 0.0,
            max_bins: 255,
            early_stopping: true,
            validation_fraction: 0.1,
            n_iter_no_change: 10,
            tol: 1e-7,
            seed: 0,
        }
    }
}

impl GbtParams {
    /// Checks every parameter, naming the first one out of range.
    pub fn check(&self) -> Result<(), ModelError> {
        if !(self.learning_rate.is_finite() && self.learning_rate > 0.0 && self.learning_rate <= 1.0) {
            return Err(ModelError::invalid_param(
                "learning_rate",
                format!("{} is not in (0, 1]", self.learning_rate),
            ));
        }
        if self.max_iter == 0 {
            return Err(ModelError::invalid_param(
                "max_iter",
                "0 iterations fit nothing; use at least 1",
            ));
        }
        if self.max_leaf_nodes < 2 {
            return Err(ModelError::invalid_param(
                "max_leaf_nodes",
                format!("{} is below 2", self.max_leaf_nodes),
            ));
        }
        if self.max_depth == Some(0) {
            return Err(ModelError::invalid_param(
                "max_depth",
                "0 allows no split; use at least 1 or none",
            ));
        }
        if self.min_samples_leaf == 0 {
            return Err(ModelError::invalid_param("min_samples_leaf", "0 is below 1"));
        }
        if !(self.l2_regularization.is_finite() && self.l2_regularization >= 0.0) {
            return Err(ModelError::invalid_param(
                "l2_regularization",
                format!("{} is not a finite number >= 0", self.l2_regularization),
            ));
        }
        if !(3..=255).contains(&self.max_bins) {
            return Err(ModelError::invalid_param(
                "max_bins",
                format!("{} is not in 3..=255", self.max_bins),
            ));
        }
        if !(self.validation_fraction > 0.0 && self.validation_fraction < 1.0) {
            return Err(ModelError::invalid_param(
                "validation_fraction",
                format!("{} is not in (0, 1)", self.validation_fraction),
            ));
        }
        if self.n_iter_no_change == 0 {
            return Err(ModelError::invalid_param("n_iter_no_change", "0 is below 1"));
        }
        if !(self.tol.is_finite() && self.tol >= 0.0) {
            return Err(ModelError::invalid_param(
                "tol",
                format!("{} is not a finite number >= 0", self.tol),
            ));
        }
        Ok(())
    }

    /// Bins the training rows, then boosts trees on the log loss. Errors on invalid
    /// parameters or single-class labels (in the training part, after any validation
    /// hold-out).
    pub fn fit(&self, data: &Dataset) -> Result<Gbt, ModelError> {
        self.check()?;
        let labels = data.labels();
        let positives = labels.iter().filter(|&&y| y).count();
        if positives == 0 || positives == data.n_rows() {
            return Err(ModelError::SingleClass {
                label: positives > 0,
                rows: data.n_rows(),
            });
        }
        let (train, valid) = if self.early_stopping {
            stratified_split(labels, self.validation_fraction, self.seed)
        } else {
            ((0..data.n_rows()).collect(), Vec::new())
        };
        let y: Vec<f64> = train.iter().map(|&i| f64::from(u8::from(labels[i]))).collect();
        let train_pos = y.iter().filter(|&&v| v == 1.0).count();
        if train_pos == 0 || train_pos == y.len() {
            return Err(ModelError::SingleClass {
                label: train_pos > 0,
                rows: y.len(),
            });
        }

        let mapper = BinMapper::fit(data, &train, self.max_bins - 1);
        let n_value_bins: Vec<usize> = (0..data.n_cols()).map(|f| mapper.n_value_bins(f)).collect();
        let codes = mapper.transform(data, &train);
        let rate = train_pos as f64 / y.len() as f64;
        let baseline = (rate / (1.0 - rate)).ln();

        let mut grower = Grower::new(
            Binned {
                codes: &codes,
                n_rows: train.len(),
                n_value_bins: &n_value_bins,
                edges: &mapper.edges,
            },
            GrowParams {
                max_leaf_nodes: self.max_leaf_nodes,
                max_depth: self.max_depth,
                min_samples_leaf: self.min_samples_leaf,
                l2: self.l2_regularization,
                learning_rate: self.learning_rate,
            },
        );
        let n = train.len();
        let mut raw = vec![baseline; n];
        let (mut g, mut h) = (vec![0.0; n], vec![0.0; n]);
        let mut valid_raw = vec![baseline; valid.len()];
        let valid_y: Vec<bool> = valid.iter().map(|&i| labels[i]).collect();
        let mut trees = Vec::new();
        let mut best = (log_loss(&valid_raw, &valid_y), 0usize);
        let mut valid_losses = Vec::new();
        for it in 1..=self.max_iter {
            for ((gi, hi), (&r, &yi)) in g.iter_mut().zip(h.iter_mut()).zip(raw.iter().zip(&y)) {
                let p = sigmoid(r);
                *gi = p - yi;
                *hi = p * (1.0 - p);
            }
            let tree = grower.grow(&g, &h, &mut raw);
            if raw.iter().any(|r| !r.is_finite()) {
                return Err(ModelError::NonFinite { what: "raw score" });
            }
            if !valid.is_empty() {
                for (v, &i) in valid_raw.iter_mut().zip(&valid) {
                    *v += tree.predict_row(data.row(i));
                }
            }
            trees.push(tree);
            if self.early_stopping {
                let loss = log_loss(&valid_raw, &valid_y);
                valid_losses.push(loss);
                if loss < best.0 - self.tol {
                    best = (loss, it);
                } else if it - best.1 >= self.n_iter_no_change {
                    break;
                }
            }
        }
        let n_iter = trees.len();
        if self.early_stopping {
            trees.truncate(best.1);
        }
        Ok(Gbt {
            columns: data.columns().to_vec(),
            baseline,
            trees,
            fit: GbtFitSummary { n_iter, valid_losses },
        })
    }
}

/// How a fit went, kept with the model for inspection.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GbtFitSummary {
    /// Boosting iterations run (the model may keep fewer trees: those up to the best
    /// validation loss).
    pub n_iter: usize,
    /// The validation log loss after each iteration (empty without early stopping).
    pub valid_losses: Vec<f64>,
}

/// A fitted gradient-boosted classifier: a baseline log-odds plus the trees' sum.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "RawGbt")]
pub struct Gbt {
    columns: Vec<String>,
    baseline: f64,
    trees: Vec<Tree>,
    fit: GbtFitSummary,
}

/// The unchecked serialised form of a [`Gbt`].
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawGbt {
    columns: Vec<String>,
    baseline: f64,
    trees: Vec<Tree>,
    fit: GbtFitSummary,
}

impl TryFrom<RawGbt> for Gbt {
    type Error = ModelError;

    fn try_from(raw: RawGbt) -> Result<Self, Self::Error> {
        if raw.columns.is_empty() {
            return Err(ModelError::Inconsistent("a model without columns".into()));
        }
        if !raw.baseline.is_finite() {
            return Err(ModelError::Inconsistent("the baseline must be finite".into()));
        }
        for (k, t) in raw.trees.iter().enumerate() {
            t.validate(raw.columns.len())
                .map_err(|e| ModelError::Inconsistent(format!("tree {k}: {e}")))?;
        }
        Ok(Gbt {
            columns: raw.columns,
            baseline: raw.baseline,
            trees: raw.trees,
            fit: raw.fit,
        })
    }
}

impl Gbt {
    /// The log-odds before any tree: that of the training label rate.
    pub fn baseline(&self) -> f64 {
        self.baseline
    }

    /// The kept trees, in boosting order.
    pub fn trees(&self) -> &[Tree] {
        &self.trees
    }

    /// How the fit went.
    pub fn fit_summary(&self) -> &GbtFitSummary {
        &self.fit
    }

    /// The raw score (log-odds) of one raw row (`NaN` = missing).
    ///
    /// # Panics
    /// If `row` is narrower than the fitted columns; [`Self::predict_proba`] checks instead.
    pub fn decision_row(&self, row: &[f64]) -> f64 {
        let mut acc = self.baseline;
        for t in &self.trees {
            acc += t.predict_row(row);
        }
        acc
    }
}

impl Model for Gbt {
    fn columns(&self) -> &[String] {
        &self.columns
    }

    fn predict_proba_row(&self, row: &[f64]) -> f64 {
        sigmoid(self.decision_row(row))
    }
}

/// Splits row indices into (train, validation), each class shuffled by `seed` and
/// `fraction` of it (rounded, keeping at least one row of each class in training) held
/// out. Both lists come back sorted.
fn stratified_split(labels: &[bool], fraction: f64, seed: u64) -> (Vec<usize>, Vec<usize>) {
    let mut rng = SplitMix64(seed);
    let (mut train, mut valid) = (Vec::new(), Vec::new());
    for class in [false, true] {
        let mut idx: Vec<usize> = (0..labels.len()).filter(|&i| labels[i] == class).collect();
        for k in (1..idx.len()).rev() {
            let j = (rng.next() % (k as u64 + 1)) as usize;
            idx.swap(k, j);
        }
        let n_valid = ((idx.len() as f64 * fraction).round() as usize).min(idx.len().saturating_sub(1));
        valid.extend_from_slice(&idx[..n_valid]);
        train.extend_from_slice(&idx[n_valid..]);
    }
    train.sort_unstable();
    valid.sort_unstable();
    (train, valid)
}

/// Vigna's splitmix64: a small, fixed generator, so the split never depends on a crate.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

/// Mean log loss of raw scores (log-odds), computed stably.
fn log_loss(raw: &[f64], y: &[bool]) -> f64 {
    if raw.is_empty() {
        return 0.0;
    }
    let mut acc = 0.0;
    for (&z, &yi) in raw.iter().zip(y) {
        // -log p(y) = log(1 + e^z) - y z
        acc += log1p_exp(z) - if yi { z } else { 0.0 };
    }
    acc / raw.len() as f64
}

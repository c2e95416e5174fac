//! L2-regularised logistic regression, fitted by our own L-BFGS to the same optimum as
//! scikit-learn's `LogisticRegression(penalty="l2", solver="lbfgs")`.
//!
//! The objective is sklearn's: minimise `0.5·‖w‖² + C·Σᵢ logloss(yᵢ, w·xᵢ + b)`, the
//! intercept `b` not penalised. The design decision: like sklearn, the optimiser sees it
//! divided by `C·n` (mean log loss plus `‖w‖²/(2Cn)`), so `tol` bounds the same scaled
//! gradient as sklearn's `gtol` and a given `tol` stops at the same accuracy. Inputs pass
//! through a [`Preprocessor`] (standardisation, one-hot encoding, missing indicators)
//! fitted on the training set and stored in the model, so a fitted model scores raw rows.
//!
//! The second decision: the loss and its gradient are summed over fixed chunks of
//! `CHUNK_ROWS` = 16,384 rows (a constant, never derived from the thread count or the
//! machine), each chunk's loss compensated (Neumaier) and its gradient a plain sum of at
//! most that many terms, and the chunks' partials combined, compensated, **in chunk
//! order**. The chunks (and the rows of the preprocessed design matrix) are computed on up
//! to [`LogisticRegressionParams::threads`] threads with `std::thread::scope`, handed out
//! one at a time; a fit of one chunk stays on the calling thread. Which thread computes a
//! chunk never changes its bits, so the same data gives bit-identical coefficients on 1
//! thread or 16, on any machine. `tests.rs` checks the fit against fixtures made by sklearn
//! itself (`tests/fixtures/make_logistic_fixtures.py`, and for one-hot encoding and missing
//! indicators `tests/fixtures/make_onehot_fixture.py`), and the bits across thread counts.

use serde::{Deserialize, Serialize};

use crate::dataset::Dataset;
use crate::error::ModelError;
use crate::lbfgs::{self, LbfgsOptions, Status};
use crate::model::{Model, check_rows, log1p_exp, log1p_exp_and_sigmoid, sigmoid};
use crate::preprocess::{Neumaier, PreprocessParams, Preprocessor, neumaier};

use chunks::CHUNK_ROWS;

mod chunks;
#[cfg(test)]
mod tests;

/// How to fit a [`LogisticRegression`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogisticRegressionParams {
    /// Inverse regularisation strength, as sklearn's `C`: larger fits the data harder.
    /// Finite and > 0. Default 1.0.
    pub c: f64,
    /// Maximum L-BFGS iterations. At least 1. Default 1000 (sklearn's 100 can stop short
    /// of its own tolerance on poorly scaled data; ours is standardised, so 1000 is a
    /// ceiling rarely reached).
    pub max_iter: usize,
    /// Stop when the largest component of the scaled gradient is at most `tol`, as
    /// sklearn's `tol` (scipy's `gtol`). Finite and >= 0. Default 1e-4.
    pub tol: f64,
    /// Fit an (unpenalised) intercept. Default true.
    pub fit_intercept: bool,
    /// The preprocessing fitted with the model.
    pub preprocess: PreprocessParams,
    /// Threads for building the design matrix and evaluating the objective: `None` (the
    /// default) uses the machine's available parallelism, at most 4; `Some(n)` uses `n`
    /// (at least 1). Fits of at most one chunk (16,384 rows) stay on the calling thread.
    /// The fitted model does not depend on it, to the bit.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub threads: Option<usize>,
}

impl Default for LogisticRegressionParams {
    fn default() -> Self {
        LogisticRegressionParams {
            c: 1.0,
            max_iter: 1000,
            tol: 1e-4,
            fit_intercept: true,
            preprocess: PreprocessParams::default(),
            threads: None,
        }
    }
}

impl LogisticRegressionParams {
    /// Checks every parameter, naming the first one out of range.
    pub fn check(&self) -> Result<(), ModelError> {
        if !(self.c.is_finite() && self.c > 0.0) {
            return Err(ModelError::invalid_param(
                "c",
                format!("{} is not a finite number > 0", self.c),
            ));
        }
        if self.max_iter == 0 {
            return Err(ModelError::invalid_param(
                "max_iter",
                "0 iterations cannot fit anything; use at least 1",
            ));
        }
        if !(self.tol.is_finite() && self.tol >= 0.0) {
            return Err(ModelError::invalid_param(
                "tol",
                format!("{} is not a finite number >= 0", self.tol),
            ));
        }
        if self.threads == Some(0) {
            return Err(ModelError::invalid_param(
                "threads",
                "0 threads cannot fit anything; use at least 1, or leave it unset for automatic",
            ));
        }
        self.preprocess.check()
    }

    /// Fits the preprocessor, then the regularised logistic model on the preprocessed rows.
    /// Errors on invalid parameters, single-class labels, or a non-finite optimum.
    pub fn fit(&self, data: &Dataset) -> Result<LogisticRegression, ModelError> {
        self.check()?;
        let positives = data.labels().iter().filter(|&&y| y).count();
        if positives == 0 || positives == data.n_rows() {
            return Err(ModelError::SingleClass {
                label: positives > 0,
                rows: data.n_rows(),
            });
        }
        let preprocessor = self.preprocess.fit(data)?;
        let threads = chunks::threads(self.threads);
        let design = Design::new(&preprocessor, data, threads);
        let scale = 1.0 / (self.c * data.n_rows() as f64);
        let n_params = design.p + usize::from(self.fit_intercept);
        let opts = LbfgsOptions {
            max_iter: self.max_iter,
            gtol: self.tol,
            ..LbfgsOptions::default()
        };
        let fit_intercept = self.fit_intercept;
        let objective = |theta: &[f64], grad: &mut [f64]| {
            let b = if fit_intercept { theta[design.p] } else { 0.0 };
            design.scaled_objective(&theta[..design.p], b, scale, grad, fit_intercept, threads)
        };
        let min = lbfgs::minimize(objective, vec![0.0; n_params], &opts).ok_or(ModelError::NonFinite {
            what: "objective at the starting point",
        })?;
        if !min.f.is_finite() || min.x.iter().any(|v| !v.is_finite()) {
            return Err(ModelError::NonFinite { what: "coefficient" });
        }
        let intercept = if self.fit_intercept { min.x[design.p] } else { 0.0 };
        let mut coefficients = min.x;
        coefficients.truncate(design.p);
        Ok(LogisticRegression {
            preprocessor,
            coefficients,
            intercept,
            fit: FitSummary {
                n_iter: min.n_iter,
                n_evals: min.n_evals,
                status: min.status,
                grad_max: min.grad_max,
            },
        })
    }
}

/// How a fit ended: the optimiser's account, kept with the model for inspection.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FitSummary {
    /// L-BFGS iterations taken.
    pub n_iter: usize,
    /// Objective evaluations made.
    pub n_evals: usize,
    /// Why the optimiser stopped.
    pub status: Status,
    /// The largest component of the scaled gradient at the solution.
    pub grad_max: f64,
}

/// A fitted logistic regression: the preprocessor and the linear model over its outputs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "RawLogisticRegression")]
pub struct LogisticRegression {
    preprocessor: Preprocessor,
    coefficients: Vec<f64>,
    intercept: f64,
    fit: FitSummary,
}

/// The unchecked serialised form of a [`LogisticRegression`].
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLogisticRegression {
    preprocessor: Preprocessor,
    coefficients: Vec<f64>,
    intercept: f64,
    fit: FitSummary,
}

impl TryFrom<RawLogisticRegression> for LogisticRegression {
    type Error = ModelError;

    fn try_from(raw: RawLogisticRegression) -> Result<Self, Self::Error> {
        if raw.coefficients.len() != raw.preprocessor.n_outputs() {
            return Err(ModelError::Inconsistent(format!(
                "{} coefficients for {} preprocessed features",
                raw.coefficients.len(),
                raw.preprocessor.n_outputs()
            )));
        }
        if !raw.intercept.is_finite() || raw.coefficients.iter().any(|c| !c.is_finite()) {
            return Err(ModelError::Inconsistent(
                "coefficients and intercept must be finite".into(),
            ));
        }
        let RawLogisticRegression {
            preprocessor,
            coefficients,
            intercept,
            fit,
        } = raw;
        Ok(LogisticRegression {
            preprocessor,
            coefficients,
            intercept,
            fit,
        })
    }
}

impl LogisticRegression {
    /// The fitted preprocessing.
    pub fn preprocessor(&self) -> &Preprocessor {
        &self.preprocessor
    }

    /// One weight per preprocessed feature ([`Preprocessor::output_names`] order).
    pub fn coefficients(&self) -> &[f64] {
        &self.coefficients
    }

    /// The intercept (0 when fitted without one).
    pub fn intercept(&self) -> f64 {
        self.intercept
    }

    /// How the optimiser finished.
    pub fn fit_summary(&self) -> &FitSummary {
        &self.fit
    }

    fn predict_with(&self, row: &[f64], buf: &mut Vec<f64>) -> f64 {
        self.preprocessor.transform_row(row, buf);
        sigmoid(linear(&self.coefficients, buf) + self.intercept)
    }

    /// sklearn's (unscaled) objective on `data`: `0.5·‖w‖² + C·Σᵢ logloss_i`.
    pub fn objective(&self, data: &Dataset, c: f64) -> f64 {
        let design = Design::new(&self.preprocessor, data, chunks::threads(None));
        let z = design.margins(&self.coefficients, self.intercept);
        let loss = neumaier(z.iter().zip(&design.y).map(|(&z, &y)| log1p_exp(z) - y * z));
        0.5 * linear(&self.coefficients, &self.coefficients) + c * loss
    }
}

impl Model for LogisticRegression {
    fn columns(&self) -> &[String] {
        self.preprocessor.columns()
    }

    /// No allocation: the preprocessing is folded into the dot product.
    fn predict_proba_row(&self, row: &[f64]) -> f64 {
        sigmoid(self.preprocessor.dot(row, &self.coefficients) + self.intercept)
    }

    /// Reuses one preprocessing buffer across rows.
    fn predict_proba(&self, features: &[f64], out: &mut [f64]) -> Result<(), ModelError> {
        let width = check_rows(features, out.len(), self.preprocessor.n_inputs())?;
        let mut buf = Vec::with_capacity(self.preprocessor.n_outputs());
        for (row, o) in features.chunks_exact(width).zip(out.iter_mut()) {
            *o = self.predict_with(row, &mut buf);
        }
        Ok(())
    }
}

/// The preprocessed design matrix (row-major, n × p) and 0/1 targets.
struct Design {
    x: Vec<f64>,
    y: Vec<f64>,
    p: usize,
}

/// One chunk's sums: of the loss terms (compensated), and of the residuals `σ(z) − y` times
/// each feature, then of the residuals alone (the intercept's), each a plain sum.
///
/// Plain because a compensated gradient sum cost 15–20% more per evaluation (its
/// `|sum| >= |term|` branch mispredicts as the terms change sign, and a branch-free TwoSum
/// is more flops), while a plain sum of at most [`CHUNK_ROWS`] terms errs by at most
/// ~`CHUNK_ROWS·ε` relative to the sum of their magnitudes (~4e-12), whatever `n`: the
/// chunks are then combined compensated.
struct ChunkSums {
    loss: f64,
    grad: Vec<f64>,
}

impl Design {
    /// Preprocesses every row, chunk by chunk on up to `threads` threads (each row's
    /// output depends only on the row, so the matrix is the same whatever the count).
    fn new(preprocessor: &Preprocessor, data: &Dataset, threads: usize) -> Design {
        let p = preprocessor.n_outputs();
        let mut x = vec![0.0; data.n_rows() * p];
        if p > 0 {
            chunks::fill_chunks(&mut x, CHUNK_ROWS * p, threads, |c, part| {
                let mut buf = Vec::with_capacity(p);
                for (k, out) in part.chunks_exact_mut(p).enumerate() {
                    preprocessor.transform_row(data.row(c * CHUNK_ROWS + k), &mut buf);
                    out.copy_from_slice(&buf);
                }
            });
        }
        let y = data.labels().iter().map(|&l| if l { 1.0 } else { 0.0 }).collect();
        Design { x, y, p }
    }

    fn margins(&self, w: &[f64], b: f64) -> Vec<f64> {
        self.x
            .chunks_exact(self.p)
            .map(|row| linear(w, row) + b)
            .collect()
    }

    /// `mean logloss + scale/2·‖w‖²` with `scale = 1/(C·n)`, and its gradient into `grad`
    /// (`[∂w.., ∂b]`, the last only when fitting an intercept).
    ///
    /// Each chunk of rows is one pass ([`Design::chunk_sums`]), on up to `threads`
    /// threads; the chunks' sums are combined in chunk order, so the result does not
    /// depend on `threads` to the bit.
    fn scaled_objective(
        &self,
        w: &[f64],
        b: f64,
        scale: f64,
        grad: &mut [f64],
        fit_intercept: bool,
        threads: usize,
    ) -> f64 {
        let n_rows = self.y.len();
        let parts = chunks::map_chunks(chunks::n_chunks(n_rows), threads, |c| self.chunk_sums(c, w, b));
        let mut loss = Neumaier::default();
        let mut sums = vec![Neumaier::default(); self.p + 1];
        for part in &parts {
            loss.add(part.loss);
            sums.iter_mut().zip(&part.grad).for_each(|(s, &v)| s.add(v));
        }
        let n = n_rows as f64;
        let (grad_w, grad_rest) = grad.split_at_mut(self.p);
        for ((g, s), wj) in grad_w.iter_mut().zip(&sums).zip(w) {
            *g = s.total() / n + scale * wj;
        }
        if fit_intercept {
            grad_rest[0] = sums[self.p].total() / n;
        }
        loss.total() / n + 0.5 * scale * linear(w, w)
    }

    /// Chunk `c`'s sums, in one pass over its rows: each margin is used at once for its
    /// loss term and its gradient contribution, from one `exp`.
    fn chunk_sums(&self, c: usize, w: &[f64], b: f64) -> ChunkSums {
        let p = self.p;
        let start = c * CHUNK_ROWS;
        let end = (start + CHUNK_ROWS).min(self.y.len());
        let mut loss = Neumaier::default();
        let mut grad_w = vec![0.0; p];
        let mut grad_b = 0.0;
        for (row, &yi) in self.x[start * p..end * p]
            .chunks_exact(p)
            .zip(&self.y[start..end])
        {
            let zi = linear(w, row) + b;
            let (log1p_exp_z, sigmoid_z) = log1p_exp_and_sigmoid(zi);
            loss.add(log1p_exp_z - yi * zi);
            let r = sigmoid_z - yi;
            grad_b += r;
            grad_w.iter_mut().zip(row).for_each(|(g, x)| *g += r * x);
        }
        ChunkSums {
            loss: loss.total(),
            grad: grad_w.iter().chain([&grad_b]).copied().collect(),
        }
    }
}

fn linear(w: &[f64], x: &[f64]) -> f64 {
    w.iter().zip(x).map(|(a, b)| a * b).sum()
}

//! The one interface that evaluation, gates and serving use for any fitted model.
//!
//! Key decision: two required methods (the input columns, one row's probability); batch
//! prediction with its width check and whole-dataset prediction are provided, so every
//! estimator gets them identically (the shape of ripgrep's `Matcher`). An estimator may
//! still override the batch form when it can reuse buffers across rows.

use crate::dataset::Dataset;
use crate::error::ModelError;

/// A fitted binary classifier over named numeric columns (`NaN` = missing).
pub trait Model {
    /// The input columns a row must have, in order.
    fn columns(&self) -> &[String];

    /// The probability of the positive class for one raw row.
    ///
    /// # Panics
    /// May panic if `row` is narrower than [`Model::columns`]; the batch forms check.
    fn predict_proba_row(&self, row: &[f64]) -> f64;

    /// Probabilities for row-major raw `features` into `out` (one per row). Errors when
    /// `features` is not `out.len()` rows of the fitted width.
    fn predict_proba(&self, features: &[f64], out: &mut [f64]) -> Result<(), ModelError> {
        let width = check_rows(features, out.len(), self.columns().len())?;
        for (row, o) in features.chunks_exact(width).zip(out.iter_mut()) {
            *o = self.predict_proba_row(row);
        }
        Ok(())
    }

    /// Probabilities for every row of `data`, whose columns must match the fitted ones.
    fn predict_dataset(&self, data: &Dataset) -> Result<Vec<f64>, ModelError> {
        if data.columns() != self.columns() {
            return Err(ModelError::WidthMismatch {
                expected: self.columns().len(),
                got: data.n_cols(),
            });
        }
        let mut out = vec![0.0; data.n_rows()];
        self.predict_proba(data.features(), &mut out)?;
        Ok(out)
    }
}

/// Checks that `features` holds exactly `rows` rows of `width` values; returns `width`.
pub fn check_rows(features: &[f64], rows: usize, width: usize) -> Result<usize, ModelError> {
    if features.len() != rows * width {
        return Err(ModelError::WidthMismatch {
            expected: rows * width,
            got: features.len(),
        });
    }
    Ok(width)
}

/// `1 / (1 + e^{-z})` without overflow.
pub(crate) fn sigmoid(z: f64) -> f64 {
    if z >= 0.0 {
        1.0 / (1.0 + (-z).exp())
    } else {
        let e = z.exp();
        e / (1.0 + e)
    }
}

/// `ln(1 + e^z)` without overflow or loss of precision.
pub(crate) fn log1p_exp(z: f64) -> f64 {
    if z > 0.0 {
        z + (-z).exp().ln_1p()
    } else {
        z.exp().ln_1p()
    }
}

/// `(log1p_exp(z), sigmoid(z))` from one `exp`: both take `e^{-|z|}`, and each branch
/// here is the same arithmetic as in [`log1p_exp`] and [`sigmoid`], so the results are
/// bit-identical to calling the two.
#[inline]
pub(crate) fn log1p_exp_and_sigmoid(z: f64) -> (f64, f64) {
    let e = (-z.abs()).exp();
    let log1p_exp = if z > 0.0 { z + e.ln_1p() } else { e.ln_1p() };
    let sigmoid = if z >= 0.0 { 1.0 / (1.0 + e) } else { e / (1.0 + e) };
    (log1p_exp, sigmoid)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fused_log1p_exp_and_sigmoid_match_the_separate_functions_to_the_bit() {
        let mut zs = vec![
            0.0, -0.0, 1e-300, -1e-300, 36.0, -36.0, 710.0, -745.0, 800.0, -800.0,
        ];
        zs.extend((-4000..=4000).map(|i| f64::from(i) * 0.01 + 0.003));
        for z in zs {
            let (l, s) = log1p_exp_and_sigmoid(z);
            assert_eq!(l.to_bits(), log1p_exp(z).to_bits(), "log1p_exp({z})");
            assert_eq!(s.to_bits(), sigmoid(z).to_bits(), "sigmoid({z})");
        }
    }
}

//! Quantile binning of raw feature values into `u8` codes.
//!
//! Per feature, the bin edges are midpoints between distinct values when there are few,
//! otherwise quantiles of (a deterministic subsample of) the non-missing training values,
//! as scikit-learn's `_BinMapper`. Value `x` lands in the first bin `b` with
//! `x <= edges[b]` (the last value bin is unbounded above); missing values get their own
//! code, one past the last value bin.

use crate::dataset::Dataset;

/// At most this many rows are used to find the bin edges (sklearn's `subsample`).
const SUBSAMPLE: usize = 200_000;

/// The fitted bin edges of every feature.
#[derive(Debug, Clone)]
pub(crate) struct BinMapper {
    /// Per feature, the increasing upper edges of all value bins but the last.
    pub(crate) edges: Vec<Vec<f64>>,
}

impl BinMapper {
    /// Finds the edges from the rows `rows` of `data`, with at most `max_value_bins` value
    /// bins per feature.
    pub(crate) fn fit(data: &Dataset, rows: &[usize], max_value_bins: usize) -> BinMapper {
        let step = rows.len().div_ceil(SUBSAMPLE).max(1);
        let sample: Vec<usize> = rows.iter().copied().step_by(step).collect();
        let edges = (0..data.n_cols())
            .map(|f| {
                let mut vals: Vec<f64> = sample
                    .iter()
                    .map(|&i| data.row(i)[f])
                    .filter(|v| !v.is_nan())
                    .collect();
                vals.sort_by(f64::total_cmp);
                feature_edges(&vals, max_value_bins)
            })
            .collect();
        BinMapper { edges }
    }

    /// The number of value bins of feature `f` (its missing code).
    pub(crate) fn n_value_bins(&self, f: usize) -> usize {
        self.edges[f].len() + 1
    }

    /// The code of `x` for feature `f`.
    pub(crate) fn code(&self, f: usize, x: f64) -> u8 {
        let edges = &self.edges[f];
        if x.is_nan() {
            return (edges.len() + 1) as u8;
        }
        edges.partition_point(|&e| e < x) as u8
    }

    /// Column-major codes of `rows` of `data` (`codes[f * rows.len() + k]`).
    pub(crate) fn transform(&self, data: &Dataset, rows: &[usize]) -> Vec<u8> {
        let n = rows.len();
        let mut codes = vec![0u8; n * data.n_cols()];
        for (k, &i) in rows.iter().enumerate() {
            for (f, &x) in data.row(i).iter().enumerate() {
                codes[f * n + k] = self.code(f, x);
            }
        }
        codes
    }
}

/// Edges for sorted non-missing values `vals`.
fn feature_edges(vals: &[f64], max_value_bins: usize) -> Vec<f64> {
    let mut distinct: Vec<f64> = vals.to_vec();
    distinct.dedup();
    if distinct.len() <= max_value_bins {
        return distinct.windows(2).map(|w| w[0] + (w[1] - w[0]) / 2.0).collect();
    }
    // Quantiles at k / max_value_bins, k = 1..max_value_bins-1, linearly interpolated
    // (numpy's default), then de-duplicated.
    let n = vals.len();
    let mut edges: Vec<f64> = (1..max_value_bins)
        .map(|k| {
            let pos = k as f64 / max_value_bins as f64 * (n - 1) as f64;
            let lo = pos.floor() as usize;
            let hi = (lo + 1).min(n - 1);
            let frac = pos - lo as f64;
            vals[lo] + (vals[hi] - vals[lo]) * frac
        })
        .collect();
    edges.dedup();
    edges
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn few_distinct_values_get_midpoint_edges_and_missing_its_own_code() {
        let edges = feature_edges(&[1.0, 1.0, 2.0, 4.0], 10);
        assert_eq!(edges, vec![1.5, 3.0]);
        let m = BinMapper { edges: vec![edges] };
        assert_eq!(m.code(0, 1.0), 0);
        assert_eq!(m.code(0, 1.5), 0);
        assert_eq!(m.code(0, 2.0), 1);
        assert_eq!(m.code(0, 100.0), 2);
        assert_eq!(m.code(0, f64::NAN), 3);
        assert_eq!(m.n_value_bins(0), 3);
    }

    #[test]
    fn many_values_are_cut_at_quantiles() {
        let vals: Vec<f64> = (0..1000).map(f64::from).collect();
        let edges = feature_edges(&vals, 4);
        assert_eq!(edges, vec![249.75, 499.5, 749.25]);
    }
}

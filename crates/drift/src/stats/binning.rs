//! numpy's histogram rules, reproduced bit for bit where the drift tests depend on them:
//! `np.histogram_bin_edges(x, bins="sturges")` and `np.histogram(x, edges)`.
//!
//! Key decision: counts are taken by binary search on the edge array (numpy's path for
//! explicit edges, which Evidently always uses): bin i holds `edges[i] <= x < edges[i+1]`,
//! the last bin also holds its right edge, and values outside the edges are dropped.

/// Equal-width edges by Sturges' rule over the values' range, as
/// `np.histogram_bin_edges(values, bins="sturges")` on a float array.
///
/// `integer_valued` reproduces numpy's rule for integer arrays (a bin width below 1 is
/// raised to 1), which applies when pandas would have read the column as integers.
pub fn sturges_edges(min: f64, max: f64, count: usize, integer_valued: bool) -> Vec<f64> {
    let (mut first, mut last) = (min, max);
    if first == last {
        first -= 0.5;
        last += 0.5;
    }
    let mut width = (max - min) / ((count as f64).log2() + 1.0);
    let bins = if width != 0.0 {
        if integer_valued && width < 1.0 {
            width = 1.0;
        }
        ((last - first) / width).ceil() as usize
    } else {
        1
    };
    linspace(first, last, bins + 1)
}

/// `np.linspace(start, stop, num)` with `endpoint=True`.
pub fn linspace(start: f64, stop: f64, num: usize) -> Vec<f64> {
    if num == 1 {
        return vec![start];
    }
    let div = (num - 1) as f64;
    let delta = stop - start;
    let step = delta / div;
    let mut out: Vec<f64> = if step == 0.0 {
        (0..num).map(|i| i as f64 / div * delta + start).collect()
    } else {
        (0..num).map(|i| i as f64 * step + start).collect()
    };
    out[num - 1] = stop;
    out
}

/// The bin of `x` for the given ascending edges, or `None` when outside them.
pub fn bin_of(edges: &[f64], x: f64) -> Option<usize> {
    let (first, last) = (*edges.first()?, *edges.last()?);
    if !(x >= first && x <= last) {
        return None;
    }
    if x == last {
        return Some(edges.len() - 2);
    }
    // Number of edges <= x, minus one.
    Some(edges.partition_point(|e| *e <= x) - 1)
}

/// `np.histogram(values, edges)[0]`.
pub fn histogram(values: &[f64], edges: &[f64]) -> Vec<u64> {
    let mut counts = vec![0u64; edges.len().saturating_sub(1)];
    for &x in values {
        if let Some(b) = bin_of(edges, x) {
            counts[b] += 1;
        }
    }
    counts
}

/// Evidently's `feel_zeroes`: zero shares become 0.0001, or the smallest non-zero share
/// divided by 10^6 when that share is itself at most 0.0001.
pub fn fill_zeroes(percents: &mut [f64]) {
    let smallest = percents
        .iter()
        .copied()
        .filter(|p| *p != 0.0)
        .fold(f64::INFINITY, f64::min);
    if !smallest.is_finite() {
        return;
    }
    let fill = if smallest <= 0.0001 {
        smallest / 1e6
    } else {
        0.0001
    };
    percents.iter_mut().filter(|p| **p == 0.0).for_each(|p| *p = fill);
}

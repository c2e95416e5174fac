//! Two-sample statistics for drift detection, each answering as the scipy/numpy function
//! named in its doc comment does (checked against committed fixtures made by
//! `tests/fixtures/make_stats_fixtures.py`).
//!
//! Key decision: these functions are plain mathematics on slices and counts; which one
//! runs on a column, how the column is binned and where the threshold lies is decided in
//! [`crate::stattest`] and [`crate::selection`], so the numerical code stays testable in
//! isolation against scipy.

pub mod binning;
pub mod kolmogorov;

#[cfg(test)]
mod tests;

use serde::{Deserialize, Serialize};
use statrs::distribution::{ChiSquared, ContinuousCDF, Normal};

/// A statistic that cannot be computed from the given input.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum StatsError {
    #[error("{what} is empty")]
    Empty { what: &'static str },
    #[error("{what}: {reason}")]
    Invalid { what: &'static str, reason: String },
}

impl StatsError {
    fn invalid(what: &'static str, reason: impl Into<String>) -> Self {
        StatsError::Invalid {
            what,
            reason: reason.into(),
        }
    }
}

/// How the KS p-value was computed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KsMethod {
    /// Exact lattice-path count (both samples at most 10,000 values).
    Exact,
    /// The one-sample KS law at the effective size n·m/(n+m) (scipy's "asymp").
    Asymptotic,
}

/// Result of [`ks_2samp`].
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct KsTest {
    pub statistic: f64,
    pub p_value: f64,
    pub method: KsMethod,
}

/// scipy's `MAX_AUTO_N`: `method='auto'` is exact when both samples are at most this size.
pub const KS_MAX_EXACT_N: usize = 10_000;

/// Two-sided two-sample Kolmogorov–Smirnov test, as `scipy.stats.ks_2samp(a, b)` with its
/// defaults (`alternative='two-sided'`, `method='auto'`). Inputs need not be sorted; NaN
/// must already be removed.
///
/// As scipy does, the exact path reports the statistic rounded to the lattice
/// `h / lcm(n1, n2)`, and falls back to the asymptotic law when the exact count fails.
pub fn ks_2samp(a: &[f64], b: &[f64]) -> Result<KsTest, StatsError> {
    let mut a = a.to_vec();
    let mut b = b.to_vec();
    a.sort_by(f64::total_cmp);
    b.sort_by(f64::total_cmp);
    ks_2samp_sorted(&a, &b)
}

/// [`ks_2samp`] on samples already sorted ascending (no copy).
pub fn ks_2samp_sorted(a: &[f64], b: &[f64]) -> Result<KsTest, StatsError> {
    if a.is_empty() || b.is_empty() {
        return Err(StatsError::Empty { what: "a KS sample" });
    }
    let (n1, n2) = (a.len() as u64, b.len() as u64);
    let d = ks_statistic_sorted(a, b);
    let g = gcd(n1, n2);
    if a.len().max(b.len()) <= KS_MAX_EXACT_N {
        let lcm = (n1 / g) * n2;
        let h = (d * lcm as f64).round_ties_even() as u64;
        let d_lattice = h as f64 / lcm as f64;
        if h == 0 {
            return Ok(KsTest {
                statistic: d_lattice,
                p_value: 1.0,
                method: KsMethod::Exact,
            });
        }
        let p = if n1 == n2 {
            kolmogorov::prob_outside_square(n1, h)
        } else {
            kolmogorov::prob_outside_band(n1, n2, g, h)
        };
        if (0.0..=1.0).contains(&p) {
            return Ok(KsTest {
                statistic: d_lattice,
                p_value: p,
                method: KsMethod::Exact,
            });
        }
        return Ok(ks_asymptotic(n1, n2, d_lattice));
    }
    Ok(ks_asymptotic(n1, n2, d))
}

/// [`ks_2samp_sorted`] with the asymptotic law whatever the sizes, as
/// `scipy.stats.ks_2samp(a, b, method="asymp")`: O(n + m) where the exact count is
/// O(n · m) for well-separated samples.
pub fn ks_2samp_sorted_asymptotic(a: &[f64], b: &[f64]) -> Result<KsTest, StatsError> {
    if a.is_empty() || b.is_empty() {
        return Err(StatsError::Empty { what: "a KS sample" });
    }
    Ok(ks_asymptotic(
        a.len() as u64,
        b.len() as u64,
        ks_statistic_sorted(a, b),
    ))
}

fn ks_asymptotic(n1: u64, n2: u64, d: f64) -> KsTest {
    let (m, n) = (n1.max(n2) as f64, n1.min(n2) as f64);
    let en = m * n / (m + n);
    let p = kolmogorov::kolmogorov_sf(en.round_ties_even() as u64, d);
    KsTest {
        statistic: d,
        p_value: p.clamp(0.0, 1.0),
        method: KsMethod::Asymptotic,
    }
}

/// sup |F_a - F_b| over the pooled values, both samples sorted ascending.
pub fn ks_statistic_sorted(a: &[f64], b: &[f64]) -> f64 {
    let (n1, n2) = (a.len() as f64, b.len() as f64);
    let (mut i, mut j) = (0usize, 0usize);
    let (mut max_diff, mut min_diff) = (f64::NEG_INFINITY, f64::INFINITY);
    while i < a.len() || j < b.len() {
        let next = match (a.get(i), b.get(j)) {
            (Some(x), Some(y)) => x.min(*y),
            (Some(x), None) => *x,
            (None, Some(y)) => *y,
            (None, None) => unreachable!(),
        };
        while i < a.len() && a[i] <= next {
            i += 1;
        }
        while j < b.len() && b[j] <= next {
            j += 1;
        }
        let diff = i as f64 / n1 - j as f64 / n2;
        max_diff = max_diff.max(diff);
        min_diff = min_diff.min(diff);
    }
    let min_s = (-min_diff).clamp(0.0, 1.0);
    if min_s > max_diff { min_s } else { max_diff }
}

fn gcd(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

/// Result of a chi-square goodness-of-fit test.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ChiSquareTest {
    pub statistic: f64,
    /// NaN when there are no degrees of freedom (one category), as scipy answers.
    pub p_value: f64,
    pub degrees_of_freedom: usize,
}

/// Pearson's chi-square test of observed against expected frequencies, as
/// `scipy.stats.chisquare(f_obs, f_exp)`. An expected frequency of zero with a non-zero
/// observation gives an infinite statistic and a p-value of 0.
pub fn chisquare(observed: &[f64], expected: &[f64]) -> Result<ChiSquareTest, StatsError> {
    if observed.is_empty() {
        return Err(StatsError::Empty {
            what: "chi-square observations",
        });
    }
    if observed.len() != expected.len() {
        return Err(StatsError::invalid(
            "chi-square",
            format!(
                "{} observed but {} expected frequencies",
                observed.len(),
                expected.len()
            ),
        ));
    }
    let (obs_sum, exp_sum) = (observed.iter().sum::<f64>(), expected.iter().sum::<f64>());
    if (obs_sum - exp_sum).abs() / obs_sum.min(exp_sum) > 1e-8 {
        return Err(StatsError::invalid(
            "chi-square",
            format!("observed frequencies sum to {obs_sum} but expected to {exp_sum}"),
        ));
    }
    let statistic: f64 = observed
        .iter()
        .zip(expected)
        .map(|(o, e)| (o - e).powi(2) / e)
        .sum();
    let dof = observed.len() - 1;
    Ok(ChiSquareTest {
        statistic,
        p_value: chi_square_sf(statistic, dof),
        degrees_of_freedom: dof,
    })
}

/// Survival function of the chi-square distribution (scipy `chi2.sf`).
pub fn chi_square_sf(x: f64, dof: usize) -> f64 {
    if dof == 0 || x.is_nan() {
        return f64::NAN;
    }
    if x == f64::INFINITY {
        return 0.0;
    }
    if x <= 0.0 {
        return 1.0;
    }
    ChiSquared::new(dof as f64).map(|d| d.sf(x)).unwrap_or(f64::NAN)
}

/// Standard normal CDF (scipy `norm.cdf`).
pub fn normal_cdf(x: f64) -> f64 {
    Normal::standard().cdf(x)
}

/// Result of [`proportions_z_test`].
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ZTest {
    pub statistic: f64,
    pub p_value: f64,
}

/// Two-sided two-proportion Z-test with a pooled proportion, as Evidently's
/// `proportions_diff_z_stat_ind` + `proportions_diff_z_test`: p1 = ones1/n1,
/// p2 = ones2/n2, z = (p1 - p2) / sqrt(P(1-P)(1/n1 + 1/n2)), p = 2(1 - Φ(|z|)).
/// NaN when both samples hold one and the same value (P is 0 or 1).
pub fn proportions_z_test(ones1: u64, n1: u64, ones2: u64, n2: u64) -> Result<ZTest, StatsError> {
    if n1 == 0 || n2 == 0 {
        return Err(StatsError::Empty {
            what: "a Z-test sample",
        });
    }
    let (n1f, n2f) = (n1 as f64, n2 as f64);
    let p1 = ones1 as f64 / n1f;
    let p2 = ones2 as f64 / n2f;
    let pooled = (p1 * n1f + p2 * n2f) / (n1f + n2f);
    let z = (p1 - p2) / (pooled * (1.0 - pooled) * (1.0 / n1f + 1.0 / n2f)).sqrt();
    Ok(ZTest {
        statistic: z,
        p_value: 2.0 * (1.0 - normal_cdf(z.abs())),
    })
}

/// `scipy.special.rel_entr(x, y)`.
fn rel_entr(x: f64, y: f64) -> f64 {
    if x > 0.0 && y > 0.0 {
        x * (x / y).ln()
    } else if x == 0.0 && y >= 0.0 {
        0.0
    } else {
        f64::INFINITY
    }
}

/// Jensen–Shannon distance between two (not necessarily normalised) distributions, as
/// `scipy.spatial.distance.jensenshannon(p, q, base)`.
pub fn jensen_shannon_distance(p: &[f64], q: &[f64], base: Option<f64>) -> Result<f64, StatsError> {
    if p.is_empty() {
        return Err(StatsError::Empty {
            what: "a distribution",
        });
    }
    if p.len() != q.len() {
        return Err(StatsError::invalid(
            "Jensen-Shannon",
            format!("distributions of {} and {} bins", p.len(), q.len()),
        ));
    }
    let (p_sum, q_sum) = (p.iter().sum::<f64>(), q.iter().sum::<f64>());
    let (mut left, mut right) = (0.0, 0.0);
    for (pi, qi) in p.iter().zip(q) {
        let (pn, qn) = (pi / p_sum, qi / q_sum);
        let m = (pn + qn) / 2.0;
        left += rel_entr(pn, m);
        right += rel_entr(qn, m);
    }
    let mut js = left + right;
    if let Some(base) = base {
        js /= base.ln();
    }
    Ok((js / 2.0).sqrt())
}

/// First Wasserstein distance between two empirical distributions, as
/// `scipy.stats.wasserstein_distance(u, v)`: the area between their CDFs.
pub fn wasserstein_distance(u: &[f64], v: &[f64]) -> Result<f64, StatsError> {
    let mut u = u.to_vec();
    let mut v = v.to_vec();
    u.sort_by(f64::total_cmp);
    v.sort_by(f64::total_cmp);
    wasserstein_distance_sorted(&u, &v)
}

/// [`wasserstein_distance`] on samples already sorted ascending.
pub fn wasserstein_distance_sorted(u: &[f64], v: &[f64]) -> Result<f64, StatsError> {
    if u.is_empty() || v.is_empty() {
        return Err(StatsError::Empty {
            what: "a Wasserstein sample",
        });
    }
    let (nu, nv) = (u.len() as f64, v.len() as f64);
    let (mut i, mut j) = (0usize, 0usize);
    let mut previous: Option<f64> = None;
    let mut total = 0.0;
    // Walk the pooled sorted values; between consecutive pooled values x_k <= x_{k+1} the
    // CDFs are constant at (#u <= x_k)/nu and (#v <= x_k)/nv.
    while i < u.len() || j < v.len() {
        let next = match (u.get(i), v.get(j)) {
            (Some(x), Some(y)) if x <= y => {
                i += 1;
                *x
            }
            (Some(_), Some(y)) => {
                j += 1;
                *y
            }
            (Some(x), None) => {
                i += 1;
                *x
            }
            (None, Some(y)) => {
                j += 1;
                *y
            }
            (None, None) => unreachable!(),
        };
        if let Some(prev) = previous {
            let delta = next - prev;
            if delta != 0.0 {
                // Counts of values <= prev: everything consumed before `next`.
                let cu = count_le(u, prev, i);
                let cv = count_le(v, prev, j);
                total += (cu as f64 / nu - cv as f64 / nv).abs() * delta;
            }
        }
        previous = Some(next);
    }
    Ok(total)
}

/// Number of values <= `x` in the sorted slice, knowing the first `consumed` are <= the
/// current pooled value (so only a short scan back is needed).
fn count_le(sorted: &[f64], x: f64, consumed: usize) -> usize {
    let mut k = consumed.min(sorted.len());
    while k > 0 && sorted[k - 1] > x {
        k -= 1;
    }
    k
}

/// Population standard deviation (numpy `np.std`, ddof = 0), two-pass.
pub fn population_std(values: &[f64]) -> f64 {
    let n = values.len() as f64;
    let mean = values.iter().sum::<f64>() / n;
    (values.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n).sqrt()
}

/// Wasserstein distance divided by the reference's population standard deviation,
/// floored at 0.001 (Evidently's `wasserstein_distance_norm`).
pub fn wasserstein_distance_norm(reference: &[f64], current: &[f64]) -> Result<f64, StatsError> {
    let norm = population_std(reference).max(0.001);
    Ok(wasserstein_distance(reference, current)? / norm)
}

/// Population stability index over already-binned percentages with no zeros (Evidently's
/// `psi`): Σ (r - c) · ln(r / c).
pub fn psi(reference_percents: &[f64], current_percents: &[f64]) -> f64 {
    reference_percents
        .iter()
        .zip(current_percents)
        .map(|(r, c)| (r - c) * (r / c).ln())
        .sum()
}

/// Hellinger distance between two probability vectors (Evidently's definition):
/// sqrt(1 - clip(Σ sqrt(p·q), 0, 1)). For densities pass `p·q` already weighted by the
/// bin width through `weight`.
pub fn hellinger_from_probabilities(p: &[f64], q: &[f64], weight: f64) -> f64 {
    let affinity: f64 = p.iter().zip(q).map(|(a, b)| (a * b).sqrt() * weight).sum();
    (1.0 - affinity.clamp(0.0, 1.0)).sqrt()
}

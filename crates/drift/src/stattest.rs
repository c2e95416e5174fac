//! The named drift tests, applied to a reference/current column pair exactly as
//! Evidently's stattests do (binning, zero filling, which value the Z-test counts).
//!
//! Key decision: the drift verdict's comparison direction is Evidently's, per test: KS
//! drifts when p <= threshold, chi-square and Z when p < threshold, every distance when
//! score >= threshold. A NaN score never drifts. [`StatTest`] itself is defined in
//! `driftline-core` (configuration names it) and re-exported here.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

pub use driftline_core::drift::StatTest;

use crate::data::ColumnValues;
use crate::stats::{self, StatsError, binning};

/// Numeric or categorical, as the report shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ColumnType {
    Numeric,
    Categorical,
}

impl ColumnType {
    pub fn of(values: &ColumnValues) -> ColumnType {
        match values {
            ColumnValues::Numeric { .. } => ColumnType::Numeric,
            ColumnValues::Categorical { .. } => ColumnType::Categorical,
        }
    }
}

/// Whether `test` can run on a column of this type (KS and Wasserstein need numbers).
pub fn applies_to(test: StatTest, column_type: ColumnType) -> bool {
    !(test.numeric_only() && column_type == ColumnType::Categorical)
}

/// What a test found.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TestOutcome {
    /// The test statistic (KS D, chi-square, z) or the distance itself.
    pub statistic: f64,
    /// For p-value tests.
    pub p_value: Option<f64>,
    /// The value compared with the threshold: the p-value or the distance.
    pub score: f64,
}

/// Runs `test` on a column pair of the same type, missing values already removed.
pub fn run(
    test: StatTest,
    reference: &ColumnValues,
    current: &ColumnValues,
) -> Result<TestOutcome, StatsError> {
    if reference.is_empty() || current.is_empty() {
        return Err(StatsError::Empty {
            what: "a reference or current column (after dropping missing values)",
        });
    }
    let column_type = ColumnType::of(reference);
    if !applies_to(test, column_type) || column_type != ColumnType::of(current) {
        return Err(StatsError::Invalid {
            what: "test",
            reason: format!("{} does not apply to a {column_type:?} column", test.name()),
        });
    }
    match test {
        StatTest::Ks => {
            let (a, b) = (numbers(reference), numbers(current));
            let ks = stats::ks_2samp_sorted(a, b)?;
            Ok(p_outcome(ks.statistic, ks.p_value))
        }
        StatTest::Wasserstein => {
            let (a, b) = (numbers(reference), numbers(current));
            let norm = stats::population_std(a).max(0.001);
            let d = stats::wasserstein_distance_sorted(a, b)? / norm;
            Ok(distance_outcome(d))
        }
        StatTest::ChiSquare => {
            let paired = PairedCounts::of(reference, current);
            let k_norm = paired.current_total() / paired.reference_total();
            let expected: Vec<f64> = paired.reference.iter().map(|&r| r as f64 * k_norm).collect();
            let observed: Vec<f64> = paired.current.iter().map(|&c| c as f64).collect();
            let chi = stats::chisquare(&observed, &expected)?;
            Ok(p_outcome(chi.statistic, chi.p_value))
        }
        StatTest::ZTest => z_test(reference, current),
        StatTest::JensenShannon => {
            let (r, c) = binned_percents(reference, current, false);
            // Evidently 0.7 calls scipy's jensenshannon without a base: natural logarithm.
            Ok(distance_outcome(stats::jensen_shannon_distance(&r, &c, None)?))
        }
        StatTest::Psi => {
            let (r, c) = binned_percents(reference, current, true);
            Ok(distance_outcome(stats::psi(&r, &c)))
        }
        StatTest::Hellinger => Ok(distance_outcome(hellinger(reference, current))),
    }
}

fn p_outcome(statistic: f64, p_value: f64) -> TestOutcome {
    TestOutcome {
        statistic,
        p_value: Some(p_value),
        score: p_value,
    }
}

fn distance_outcome(d: f64) -> TestOutcome {
    TestOutcome {
        statistic: d,
        p_value: None,
        score: d,
    }
}

fn numbers(values: &ColumnValues) -> &[f64] {
    match values {
        ColumnValues::Numeric { sorted, .. } => sorted,
        ColumnValues::Categorical { .. } => &[],
    }
}

/// Category (or distinct-number) counts of both samples over the union of their values,
/// in sorted value order.
#[derive(Debug, Clone, PartialEq)]
pub struct PairedCounts {
    pub labels: Vec<String>,
    pub reference: Vec<u64>,
    pub current: Vec<u64>,
}

impl PairedCounts {
    pub fn of(reference: &ColumnValues, current: &ColumnValues) -> PairedCounts {
        match (reference, current) {
            (ColumnValues::Numeric { sorted: r, .. }, ColumnValues::Numeric { sorted: c, .. }) => {
                Self::of_numbers(r, c)
            }
            _ => {
                let (r, c) = (category_counts(reference), category_counts(current));
                let mut union: BTreeMap<&str, (u64, u64)> = BTreeMap::new();
                for (k, n) in &r {
                    union.entry(k.as_str()).or_default().0 = *n;
                }
                for (k, n) in &c {
                    union.entry(k.as_str()).or_default().1 = *n;
                }
                PairedCounts {
                    labels: union.keys().map(|k| k.to_string()).collect(),
                    reference: union.values().map(|v| v.0).collect(),
                    current: union.values().map(|v| v.1).collect(),
                }
            }
        }
    }

    fn of_numbers(r: &[f64], c: &[f64]) -> PairedCounts {
        let (mut i, mut j) = (0, 0);
        let mut out = PairedCounts {
            labels: Vec::new(),
            reference: Vec::new(),
            current: Vec::new(),
        };
        while i < r.len() || j < c.len() {
            let v = match (r.get(i), c.get(j)) {
                (Some(x), Some(y)) => x.min(*y),
                (Some(x), None) => *x,
                (None, Some(y)) => *y,
                (None, None) => unreachable!(),
            };
            let (i0, j0) = (i, j);
            while i < r.len() && r[i] == v {
                i += 1;
            }
            while j < c.len() && c[j] == v {
                j += 1;
            }
            out.labels.push(format!("{v}"));
            out.reference.push((i - i0) as u64);
            out.current.push((j - j0) as u64);
        }
        out
    }

    pub fn reference_total(&self) -> f64 {
        self.reference.iter().sum::<u64>() as f64
    }

    pub fn current_total(&self) -> f64 {
        self.current.iter().sum::<u64>() as f64
    }
}

fn category_counts(values: &ColumnValues) -> BTreeMap<String, u64> {
    match values.clone().into_categorical() {
        ColumnValues::Categorical { counts } => counts,
        ColumnValues::Numeric { .. } => unreachable!("into_categorical gives categories"),
    }
}

/// Distinct non-missing values.
pub fn unique_count(values: &ColumnValues) -> usize {
    match values {
        ColumnValues::Numeric { sorted, .. } => {
            sorted.windows(2).filter(|w| w[0] != w[1]).count() + usize::from(!sorted.is_empty())
        }
        ColumnValues::Categorical { counts } => counts.len(),
    }
}

/// Evidently's Z-test: the first value in sorted order against all others.
fn z_test(reference: &ColumnValues, current: &ColumnValues) -> Result<TestOutcome, StatsError> {
    let paired = PairedCounts::of(reference, current);
    let one_value = |counts: &[u64]| counts.iter().filter(|&&n| n > 0).count() == 1;
    if one_value(&paired.reference) && one_value(&paired.current) && paired.labels.len() == 1 {
        return Ok(TestOutcome {
            statistic: f64::NAN,
            p_value: Some(1.0),
            score: 1.0,
        });
    }
    let (n1, n2) = (paired.reference_total() as u64, paired.current_total() as u64);
    let ones1 = n1 - paired.reference[0];
    let ones2 = n2 - paired.current[0];
    let z = stats::proportions_z_test(ones1, n1, ones2, n2)?;
    Ok(p_outcome(z.statistic, z.p_value))
}

/// Whether Evidently bins this pair with Sturges' rule (numeric with more than 20
/// distinct reference values) rather than one bin per value.
pub fn uses_sturges_bins(reference: &ColumnValues) -> bool {
    matches!(reference, ColumnValues::Numeric { .. }) && unique_count(reference) > 20
}

/// Evidently's `get_binned_data`: shares per bin for both samples.
pub fn binned_percents(
    reference: &ColumnValues,
    current: &ColumnValues,
    fill_zeroes: bool,
) -> (Vec<f64>, Vec<f64>) {
    let (mut r, mut c) = if uses_sturges_bins(reference) {
        let (a, b) = (numbers(reference), numbers(current));
        let edges = combined_sturges_edges(reference, current);
        let share = |values: &[f64]| -> Vec<f64> {
            binning::histogram(values, &edges)
                .into_iter()
                .map(|n| n as f64 / values.len() as f64)
                .collect()
        };
        (share(a), share(b))
    } else {
        let paired = PairedCounts::of(reference, current);
        let (rt, ct) = (paired.reference_total(), paired.current_total());
        (
            paired.reference.iter().map(|&n| n as f64 / rt).collect(),
            paired.current.iter().map(|&n| n as f64 / ct).collect(),
        )
    };
    if fill_zeroes {
        binning::fill_zeroes(&mut r);
        binning::fill_zeroes(&mut c);
    }
    (r, c)
}

fn integer_valued(values: &ColumnValues) -> bool {
    matches!(
        values,
        ColumnValues::Numeric {
            integer_valued: true,
            ..
        }
    )
}

/// Sturges edges over reference and current combined.
pub fn combined_sturges_edges(reference: &ColumnValues, current: &ColumnValues) -> Vec<f64> {
    let (a, b) = (numbers(reference), numbers(current));
    let min = a[0].min(b[0]);
    let max = a[a.len() - 1].max(b[b.len() - 1]);
    let integers = integer_valued(reference) && integer_valued(current);
    binning::sturges_edges(min, max, a.len() + b.len(), integers)
}

/// Evidently's Hellinger distance: on category shares, or on Sturges density histograms
/// whose edges come from the distinct values of both samples.
fn hellinger(reference: &ColumnValues, current: &ColumnValues) -> f64 {
    let paired = PairedCounts::of(reference, current);
    match reference {
        ColumnValues::Categorical { .. } => {
            let (rt, ct) = (paired.reference_total(), paired.current_total());
            let p: Vec<f64> = paired.reference.iter().map(|&n| n as f64 / rt).collect();
            let q: Vec<f64> = paired.current.iter().map(|&n| n as f64 / ct).collect();
            stats::hellinger_from_probabilities(&p, &q, 1.0)
        }
        ColumnValues::Numeric { .. } => {
            let distinct = paired.labels.len();
            let (a, b) = (numbers(reference), numbers(current));
            let min = a[0].min(b[0]);
            let max = a[a.len() - 1].max(b[b.len() - 1]);
            let integers = integer_valued(reference) && integer_valued(current);
            let edges = binning::sturges_edges(min, max, distinct, integers);
            let density = |values: &[f64]| -> Vec<f64> {
                let counts = binning::histogram(values, &edges);
                let total = counts.iter().sum::<u64>() as f64;
                counts
                    .iter()
                    .zip(edges.windows(2))
                    .map(|(&n, w)| n as f64 / (w[1] - w[0]) / total)
                    .collect()
            };
            let width = (edges[edges.len() - 1] - edges[0]) / (edges.len() - 1) as f64;
            stats::hellinger_from_probabilities(&density(a), &density(b), width)
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    use super::*;

    fn column(case: &Value, key: &str) -> ColumnValues {
        let values = case[key].as_array().unwrap();
        if case["kind"] == "numeric" {
            let mut sorted: Vec<f64> = values.iter().map(|v| v.as_f64().unwrap()).collect();
            sorted.sort_by(f64::total_cmp);
            ColumnValues::Numeric {
                sorted,
                integer_valued: false,
            }
        } else {
            let mut counts = BTreeMap::new();
            for v in values {
                *counts.entry(v.as_str().unwrap().to_string()).or_insert(0) += 1;
            }
            ColumnValues::Categorical { counts }
        }
    }

    fn check(test: StatTest, r: &ColumnValues, c: &ColumnValues, expected: &Value, tol: f64, name: &str) {
        let Some(expected) = expected.as_f64() else {
            return;
        };
        let got = run(test, r, c).unwrap().score;
        assert!(
            (got - expected).abs() <= tol,
            "{name} {}: got {got}, expected {expected}",
            test.name()
        );
    }

    #[test]
    fn column_tests_match_evidentlys_definitions_computed_with_scipy() {
        let fixtures: Value =
            serde_json::from_str(include_str!("../tests/fixtures/stats_expected.json")).unwrap();
        for case in fixtures["evidently"].as_array().unwrap() {
            let name = case["name"].as_str().unwrap();
            let (r, c) = (column(case, "reference"), column(case, "current"));
            check(
                StatTest::JensenShannon,
                &r,
                &c,
                &case["jensenshannon"],
                1e-9,
                name,
            );
            check(StatTest::Psi, &r, &c, &case["psi"], 1e-9, name);
            check(StatTest::Hellinger, &r, &c, &case["hellinger"], 1e-9, name);
            check(
                StatTest::ChiSquare,
                &r,
                &c,
                &case["chisquare_p_value"],
                1e-6,
                name,
            );
            check(StatTest::ZTest, &r, &c, &case["z_p_value"], 1e-6, name);
            if case["kind"] == "numeric" {
                check(
                    StatTest::Wasserstein,
                    &r,
                    &c,
                    &case["wasserstein_norm"],
                    1e-9,
                    name,
                );
                check(StatTest::Ks, &r, &c, &case["ks_p_value"], 1e-6, name);
            }
        }
    }
}

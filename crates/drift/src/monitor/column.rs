//! One monitored column: its reference, prepared once from the profile, and the
//! evaluation of the window's values against it.
//!
//! Key decision: the drift tests are the batch report's own ([`stattest::run`]), run
//! against the hour-matched mixture of the profile's strata when the profile has them
//! ([`super::season`]) and against the whole reference otherwise (the profile's sorted
//! sample for numbers, exact category counts). A column configured with a distance
//! drifts only when the distance reaches its threshold (the change matters) **and** the
//! p-value beside it is below the evaluation's significance level (the change is not
//! the noise of a small window or of a quiet hour's few reference rows); a column
//! configured with a p-value test is decided by it alone, as in the batch report. The KS
//! p-value beside a distance uses the asymptotic law (scipy's `method="asymp"`), because
//! the exact count costs O(n · m) on a drifted column and a p-value far below any
//! threshold gains nothing from exactness; the categorical one is the chi-square test of
//! homogeneity of the two samples (the reference counted as a sample, not as exact
//! shares, since a quiet hour's reference is small).
//!
//! A number with at most [`MAX_DISCRETE_VALUES`] distinct reference values (a count of
//! events, of distinct countries) is judged as the categories it is: Jensen–Shannon over
//! one bin per value, the chi-square test of homogeneity beside it, and a histogram of
//! values instead of equal-width bins that would split or merge its few values.

use std::collections::{BTreeMap, BTreeSet};

use driftline_core::drift::StatTest;
use driftline_core::profile::{ColumnKind, ColumnProfile, DistanceSpread, NumericSummary};

use super::season::{ColumnStrata, HourMix};
use super::snapshot::{ColumnHistogram, ColumnSnapshot, ColumnVerdict, DataQuality};
use super::spread;
use crate::data::ColumnValues;
use crate::selection::DriftConfig;
use crate::stats::{self, binning};
use crate::stattest::{self, ColumnType, PairedCounts};

/// A column's reference and its test.
#[derive(Debug, Clone)]
pub(super) struct ColumnModel {
    pub name: String,
    pub kind: ColumnKind,
    /// The test that decides, and its threshold.
    pub test: StatTest,
    pub threshold: f64,
    /// The reference's window-to-window spread of this column's distance and the window
    /// it was measured at, when the profile has one, the test is a distance and the
    /// threshold was not configured for this column (see [`spread`]).
    noise: Option<(DistanceSpread, usize)>,
    reference: ColumnValues,
    /// Non-missing reference values (the sample may be smaller).
    reference_count: usize,
    /// Hour-of-day strata, when the profile has them.
    strata: Option<ColumnStrata>,
    reference_missing_rate: f64,
    /// Numeric: the [min, max] the out-of-range rate accepts (the profile's accepted
    /// range), and the reference's histogram.
    range: Option<(f64, f64)>,
    edges: Vec<f64>,
    reference_bins: Vec<u64>,
    /// Numeric with at most [`MAX_DISCRETE_VALUES`] distinct values: the reference's
    /// values, ascending, and their counts in the profile's sample (empty otherwise).
    discrete_values: Vec<f64>,
    discrete_counts: Vec<u64>,
    /// Categorical: the reference's codes, ascending.
    categories: Vec<i64>,
}

/// A numeric column with at most this many distinct reference values is judged value by
/// value: Jensen–Shannon over one bin per value, a per-value histogram, the chi-square
/// test of homogeneity beside. 20 is Evidently's own line between one bin per value and
/// Sturges bins (PSI, Jensen–Shannon on numbers).
pub(super) const MAX_DISCRETE_VALUES: usize = 20;

/// Whether a column of this kind with `unique` distinct reference values is a number
/// judged value by value (counts such as "events in 1 h", "distinct countries in 24 h").
pub(super) fn is_discrete(kind: ColumnKind, unique: usize) -> bool {
    kind == ColumnKind::Numeric && unique <= MAX_DISCRETE_VALUES
}

/// The test a column of this kind gets unless configured otherwise: the normed
/// Wasserstein distance for numbers with more than [`MAX_DISCRETE_VALUES`] distinct
/// values, Jensen–Shannon for everything else. This departs from Evidently's batch rule
/// (Wasserstein from 6 distinct values) on purpose: a Wasserstein distance normed by a
/// small count column's tiny standard deviation swings with the mix of users in the
/// window, and equal-width bins over a handful of integers split or merge values at
/// random; one bin per value compares exactly what the column can take.
pub(super) fn default_test(kind: ColumnKind, unique: usize) -> StatTest {
    if kind == ColumnKind::Numeric && unique > MAX_DISCRETE_VALUES {
        StatTest::Wasserstein
    } else {
        StatTest::JensenShannon
    }
}

fn column_type(kind: ColumnKind) -> ColumnType {
    match kind {
        ColumnKind::Numeric => ColumnType::Numeric,
        ColumnKind::Categorical => ColumnType::Categorical,
    }
}

impl ColumnModel {
    /// Prepares a column (the score column is named `score`); the error names the column
    /// when its configured test cannot compare its kind.
    pub fn new(
        name: &str,
        kind: ColumnKind,
        summary: &NumericSummary,
        categories: Option<&BTreeMap<i64, usize>>,
        strata: Option<ColumnStrata>,
        noise: Option<(DistanceSpread, usize)>,
        config: &DriftConfig,
    ) -> Result<Self, String> {
        let overrides = config.columns.get(name);
        let test = overrides
            .and_then(|o| o.test)
            .unwrap_or(default_test(kind, summary.unique));
        let threshold_configured = overrides.is_some_and(|o| o.threshold.is_some());
        let noise = noise.filter(|_| !test.is_p_value() && !threshold_configured);
        if !stattest::applies_to(test, column_type(kind)) {
            return Err(format!(
                "column '{name}': {} compares numbers and the column is categorical",
                test.name()
            ));
        }
        let stats = summary.stats.as_ref();
        let (reference, categories) = match kind {
            ColumnKind::Numeric => (
                ColumnValues::Numeric {
                    sorted: summary.sample.clone(),
                    integer_valued: false,
                },
                Vec::new(),
            ),
            ColumnKind::Categorical => {
                let counts = categories.cloned().unwrap_or_default();
                let values = ColumnValues::Categorical {
                    counts: counts.iter().map(|(c, n)| (c.to_string(), *n as u64)).collect(),
                };
                (values, counts.into_keys().collect())
            }
        };
        let numeric = kind == ColumnKind::Numeric;
        let histogram = stats.filter(|_| numeric).map(|s| &s.histogram);
        let (discrete_values, discrete_counts) = if is_discrete(kind, summary.unique) {
            distinct_counts(&summary.sample)
        } else {
            (Vec::new(), Vec::new())
        };
        Ok(ColumnModel {
            name: name.to_string(),
            kind,
            test,
            threshold: config.threshold(name, test),
            noise,
            reference,
            reference_count: summary.count,
            strata,
            reference_missing_rate: summary.missing_rate,
            range: stats.filter(|_| numeric).map(|s| (s.min, s.max)),
            edges: histogram.map(|h| h.edges.clone()).unwrap_or_default(),
            reference_bins: histogram
                .map(|h| h.counts.iter().map(|&n| n as u64).collect())
                .unwrap_or_default(),
            discrete_values,
            discrete_counts,
            categories,
        })
    }

    /// Judged value by value (see [`is_discrete`]).
    fn discrete(&self) -> bool {
        !self.discrete_values.is_empty()
    }

    /// A feature column of the profile.
    pub fn of_profile(
        column: &ColumnProfile,
        strata: Option<ColumnStrata>,
        noise: Option<(DistanceSpread, usize)>,
        config: &DriftConfig,
    ) -> Result<Self, String> {
        let mut model = Self::new(
            &column.name,
            column.kind,
            &column.summary,
            column.categories.as_ref(),
            strata,
            noise,
            config,
        )?;
        model.range = column.accepted_range().map(|[min, max]| (min, max));
        Ok(model)
    }

    /// The noise floor for a window of `rows` rows, when the profile measured one.
    fn noise_floor(&self, rows: usize) -> Option<f64> {
        self.noise
            .as_ref()
            .map(|(spread, window)| spread::noise_floor(spread, *window, rows))
    }

    /// Evaluates the window's values of this column (any order, NaN = missing) against
    /// the reference for hours `mix` (the whole reference when `None`); a verdict only
    /// when `judge`, drift only with a p-value below `significance`.
    pub fn evaluate(
        &self,
        mut values: Vec<f64>,
        judge: bool,
        mix: Option<&HourMix>,
        significance: f64,
    ) -> ColumnSnapshot {
        let total = values.len();
        values.retain(|v| !v.is_nan());
        let missing_rate = share(total - values.len(), total);
        let (current, mut quality, histogram) = match self.kind {
            ColumnKind::Numeric => self.numeric(values, missing_rate),
            ColumnKind::Categorical => self.categorical(&values, missing_rate),
        };
        if let (Some(strata), Some(mix)) = (&self.strata, mix) {
            quality.reference_missing_rate = strata.missing_rate(mix, self.reference_missing_rate);
        }
        let (drift, skipped) = if !judge {
            (
                None,
                Some("warming up: the window is shorter than min_window".to_string()),
            )
        } else {
            let seasonal = self
                .strata
                .as_ref()
                .zip(mix)
                .and_then(|(strata, mix)| strata.mixture(mix, &self.reference, self.reference_count));
            let reference = seasonal.as_ref().unwrap_or(&self.reference);
            match self.verdict(reference, &current, significance, self.noise_floor(total)) {
                Ok(verdict) => (Some(verdict), None),
                Err(reason) => (None, Some(reason)),
            }
        };
        ColumnSnapshot {
            name: self.name.clone(),
            kind: self.kind,
            drift,
            skipped,
            quality,
            histogram,
        }
    }

    fn numeric(
        &self,
        mut present: Vec<f64>,
        missing_rate: f64,
    ) -> (ColumnValues, DataQuality, ColumnHistogram) {
        present.sort_unstable_by(f64::total_cmp);
        let (below, above) = match self.range {
            Some((min, max)) => (
                present.partition_point(|&v| v < min),
                present.len() - present.partition_point(|&v| v <= max),
            ),
            None => (0, 0),
        };
        let quality = DataQuality {
            missing_rate,
            reference_missing_rate: self.reference_missing_rate,
            out_of_range_rate: Some(share(below + above, present.len())),
            unknown_category_rate: None,
        };
        let histogram = if self.discrete() {
            self.value_histogram(&present)
        } else if self.edges.is_empty() {
            ColumnHistogram::Empty
        } else {
            ColumnHistogram::Numeric {
                edges: self.edges.clone(),
                reference: self.reference_bins.clone(),
                current: binning::histogram(&present, &self.edges),
                current_below: below as u64,
                current_above: above as u64,
            }
        };
        let current = ColumnValues::Numeric {
            sorted: present,
            integer_valued: false,
        };
        (current, quality, histogram)
    }

    /// Window counts of each reference value (`present` ascending); values the
    /// reference never took are counted together.
    fn value_histogram(&self, present: &[f64]) -> ColumnHistogram {
        let (values, counts) = distinct_counts(present);
        let mut current = vec![0u64; self.discrete_values.len()];
        let mut current_other = 0;
        for (v, n) in values.iter().zip(counts) {
            match self.discrete_values.binary_search_by(|r| r.total_cmp(v)) {
                Ok(at) => current[at] += n,
                Err(_) => current_other += n,
            }
        }
        ColumnHistogram::Values {
            values: self.discrete_values.clone(),
            reference: self.discrete_counts.clone(),
            current,
            current_other,
        }
    }

    fn categorical(
        &self,
        present: &[f64],
        missing_rate: f64,
    ) -> (ColumnValues, DataQuality, ColumnHistogram) {
        let mut by_code: BTreeMap<i64, u64> = BTreeMap::new();
        let mut not_a_code = 0u64;
        for &v in present {
            if v.fract() == 0.0 && v.abs() < 9.0e15 {
                *by_code.entry(v as i64).or_default() += 1;
            } else {
                not_a_code += 1;
            }
        }
        let known: BTreeSet<i64> = self.categories.iter().copied().collect();
        let unknown = not_a_code
            + by_code
                .iter()
                .filter(|(c, _)| !known.contains(c))
                .map(|(_, n)| n)
                .sum::<u64>();
        let quality = DataQuality {
            missing_rate,
            reference_missing_rate: self.reference_missing_rate,
            out_of_range_rate: None,
            unknown_category_rate: Some(share(unknown as usize, present.len())),
        };
        let histogram = if self.categories.is_empty() {
            ColumnHistogram::Empty
        } else {
            let reference = match &self.reference {
                ColumnValues::Categorical { counts } => {
                    self.categories.iter().map(|c| counts[&c.to_string()]).collect()
                }
                ColumnValues::Numeric { .. } => unreachable!("categorical columns have counts"),
            };
            ColumnHistogram::Categorical {
                categories: self.categories.clone(),
                reference,
                current: self
                    .categories
                    .iter()
                    .map(|c| by_code.get(c).copied().unwrap_or(0))
                    .collect(),
                current_unknown: unknown,
            }
        };
        let mut counts: BTreeMap<String, u64> =
            by_code.into_iter().map(|(c, n)| (c.to_string(), n)).collect();
        if not_a_code > 0 {
            counts.insert("not a code".to_string(), not_a_code);
        }
        (ColumnValues::Categorical { counts }, quality, histogram)
    }

    /// The deciding test and the p-value beside it, against `reference`; a distance must
    /// also reach `noise_floor`, when there is one.
    fn verdict(
        &self,
        reference: &ColumnValues,
        current: &ColumnValues,
        significance: f64,
        noise_floor: Option<f64>,
    ) -> Result<ColumnVerdict, String> {
        if reference.is_empty() {
            return Err("the reference has no values in this column".into());
        }
        if current.is_empty() {
            return Err("every value in the window is missing".into());
        }
        let run = |test| stattest::run(test, reference, current).map_err(|e| e.to_string());
        let decided = run(self.test)?;
        let (p_value_test, p_value) = match (self.test.is_p_value(), reference, current) {
            (true, _, _) => (self.test, decided.p_value),
            (false, ColumnValues::Numeric { sorted: r, .. }, ColumnValues::Numeric { sorted: c, .. })
                if !self.discrete() =>
            {
                let ks = stats::ks_2samp_sorted_asymptotic(r, c).map_err(|e| e.to_string())?;
                (StatTest::Ks, Some(ks.p_value))
            }
            (false, _, _) => (StatTest::ChiSquare, homogeneity_p_value(reference, current)),
        };
        let p_value = p_value.and_then(finite);
        let threshold = noise_floor.map_or(self.threshold, |floor| floor.max(self.threshold));
        let exceeds_threshold = self.test.drifted(decided.score, threshold);
        let (significant, drifted) = if self.test.is_p_value() {
            (exceeds_threshold, exceeds_threshold)
        } else {
            let significant = p_value.is_some_and(|p| p < significance);
            (significant, exceeds_threshold && significant)
        };
        Ok(ColumnVerdict {
            test: self.test,
            score: finite(decided.score),
            threshold,
            configured_threshold: self.threshold,
            noise_floor: noise_floor.and_then(finite),
            drifted,
            p_value_test,
            p_value,
            exceeds_threshold,
            significant,
            significance_level: significance,
            reference_size: reference.len(),
        })
    }
}

/// The distinct values of ascending `sorted` and how often each occurs.
fn distinct_counts(sorted: &[f64]) -> (Vec<f64>, Vec<u64>) {
    let (mut values, mut counts): (Vec<f64>, Vec<u64>) = (Vec::new(), Vec::new());
    for &v in sorted {
        match values.last() {
            Some(&last) if last == v => *counts.last_mut().expect("a count per value") += 1,
            _ => {
                values.push(v);
                counts.push(1);
            }
        }
    }
    (values, counts)
}

/// The chi-square test of homogeneity of two samples' category counts (scipy's
/// `chi2_contingency` without continuity correction); `None` with a single category.
fn homogeneity_p_value(reference: &ColumnValues, current: &ColumnValues) -> Option<f64> {
    let paired = PairedCounts::of(reference, current);
    let (r_total, c_total) = (paired.reference_total(), paired.current_total());
    let total = r_total + c_total;
    let mut statistic = 0.0;
    let mut categories = 0;
    for (&r, &c) in paired.reference.iter().zip(&paired.current) {
        let in_category = (r + c) as f64;
        if in_category == 0.0 {
            continue;
        }
        categories += 1;
        for (observed, side_total) in [(r as f64, r_total), (c as f64, c_total)] {
            let expected = in_category * side_total / total;
            statistic += (observed - expected).powi(2) / expected;
        }
    }
    (categories > 1).then(|| stats::chi_square_sf(statistic, categories - 1))
}

fn finite(x: f64) -> Option<f64> {
    x.is_finite().then_some(x)
}

fn share(part: usize, whole: usize) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 / whole as f64
    }
}

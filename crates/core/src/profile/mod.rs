//! The reference profile stored with every trained model: per-column summaries of the
//! training data (moments, exact quantiles, histogram, a sorted sample, category counts)
//! from which the drift monitor runs KS / Wasserstein / chi-square / Jensen-Shannon / PSI
//! tests against live traffic without re-reading the training set.
//!
//! Key decision: each column's non-missing values are sorted once, and everything
//! order-dependent comes from that sorted copy: quantiles (numpy's default linear
//! method), the exact unique count, category counts, histogram counts (by binary search
//! on the edges, so a value is counted in exactly the bin its edges say) and the sample
//! (evenly spaced order statistics, so it is deterministic and, being the empirical
//! quantile function, a KS reference within `1 / (2 * sample_size)` of the full data).
//! With `season_column` set (the model's hour-of-day feature), the rows are also split
//! by hour of day into [`Seasons`], so a live window can be compared with the same hours
//! of the reference period instead of the whole day.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::features::{FeatureKind, FeatureSpec};

mod season;
#[cfg(test)]
mod tests;

pub use season::{
    DecisionOffsets, HOURS, HourStratum, MIN_CALIBRATION_LABELS, Seasons, StratumColumn, hour_of, recalibrate,
};

/// Bumped whenever the serialised shape of [`ReferenceProfile`] changes. Version 2 added
/// the optional hour-of-day strata ([`ReferenceProfile::seasons`]), version 3 the
/// optional window spread ([`ReferenceProfile::window_spread`]), version 4 each hour's
/// score calibration ([`HourStratum::logit_offset`]), version 5 its calibration by
/// decision ([`HourStratum::decision_offsets`], [`Seasons::decision_threshold`]), version 6
/// each numeric column's accepted range ([`ColumnProfile::range`]).
pub const FORMAT_VERSION: u32 = 6;

/// Every format this build reads: a version-1 profile is a version-2 profile without
/// strata (the monitor then compares with the whole reference), a version-2 profile a
/// version-3 profile without a window spread (the monitor then uses its thresholds alone),
/// a version-3 profile a version-4 profile without hourly calibration (the concept
/// detectors then expect errors from the bare scores), a version-4 profile a version-5
/// profile without calibration by decision (the hour's one offset serves both), a
/// version-5 profile a version-6 profile whose ranges are its rows' own.
pub const READABLE_FORMATS: [u32; 6] = [1, 2, 3, 4, 5, 6];

/// How a column is profiled, which in turn picks the drift tests run on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ColumnKind {
    /// Continuous values: a sorted sample is kept for KS / Wasserstein.
    Numeric,
    /// A 0/1 flag or a small integer category code: value -> count is kept for chi-square,
    /// Jensen-Shannon and PSI. Non-missing values must be integers.
    Categorical,
}

impl ColumnKind {
    /// The kind of one feature column: category codes and changed flags are categorical, the
    /// rest numeric.
    pub fn of(kind: &FeatureKind) -> ColumnKind {
        match kind {
            FeatureKind::RequestCategory { .. } | FeatureKind::Changed { .. } => ColumnKind::Categorical,
            FeatureKind::Aggregate { .. }
            | FeatureKind::Zscore { .. }
            | FeatureKind::SecondsSinceLast
            | FeatureKind::RequestNumber { .. }
            | FeatureKind::HourOfDay => ColumnKind::Numeric,
        }
    }

    /// The kinds of a feature spec's columns, in column order.
    pub fn for_spec(spec: &FeatureSpec) -> Vec<ColumnKind> {
        spec.columns.iter().map(|c| ColumnKind::of(&c.kind)).collect()
    }
}

/// What a profile records.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ProfileParams {
    /// Equal-width histogram bins over [min, max] of each column (at least 1).
    pub bins: usize,
    /// Quantile levels in [0, 1], computed exactly with linear interpolation.
    pub quantiles: Vec<f64>,
    /// At most this many non-missing values are kept per numeric column (at least 1).
    pub sample_size: usize,
    /// The hour-of-day column (values 0..=23) to split the rows by, for a seasonal
    /// reference; `None` keeps no strata.
    pub season_column: Option<String>,
    /// At most this many non-missing values are kept per numeric column and hour
    /// (at least 1).
    pub season_sample_size: usize,
}

impl Default for ProfileParams {
    fn default() -> Self {
        Self {
            bins: 20,
            quantiles: vec![0.01, 0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99],
            sample_size: 5000,
            season_column: None,
            season_sample_size: 256,
        }
    }
}

impl ProfileParams {
    pub fn check(&self) -> Result<(), ProfileError> {
        if self.bins == 0 {
            return Err(ProfileError::Params("bins must be at least 1".into()));
        }
        if self.sample_size == 0 {
            return Err(ProfileError::Params("sample_size must be at least 1".into()));
        }
        if self.season_sample_size == 0 {
            return Err(ProfileError::Params(
                "season_sample_size must be at least 1".into(),
            ));
        }
        if let Some(q) = self.quantiles.iter().find(|q| !(0.0..=1.0).contains(*q)) {
            return Err(ProfileError::Params(format!("quantile {q} is not within [0, 1]")));
        }
        Ok(())
    }
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ProfileError {
    #[error("invalid profile parameters: {0}")]
    Params(String),
    #[error("no columns to profile")]
    NoColumns,
    #[error("{names} column names but {kinds} column kinds")]
    KindsMismatch { names: usize, kinds: usize },
    #[error("column '{column}' appears more than once")]
    DuplicateColumn { column: String },
    #[error("no rows to profile")]
    NoRows,
    #[error("row {row} has {len} values but there are {expected} columns")]
    RowLength { row: usize, len: usize, expected: usize },
    #[error("row-major data has {len} values, not a multiple of {columns} columns")]
    RaggedData { len: usize, columns: usize },
    #[error("{what} has {len} entries but there are {rows} rows")]
    LengthMismatch {
        what: &'static str,
        len: usize,
        rows: usize,
    },
    #[error("column '{column}': row {row} is {value}; only finite values or NaN (missing) are allowed")]
    NonFinite { column: String, row: usize, value: f64 },
    #[error("column '{column}' is categorical but row {row} is {value}, not an integer code")]
    NotACode { column: String, row: usize, value: f64 },
    #[error("season_column '{column}' is not one of the profiled columns")]
    UnknownSeasonColumn { column: String },
}

/// The profile of a training set, stored with the model it trained.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReferenceProfile {
    /// [`FORMAT_VERSION`] at the time of fitting.
    pub format_version: u32,
    /// The parameters the profile was fitted with.
    pub params: ProfileParams,
    /// Rows in the reference data.
    pub rows: usize,
    /// Labels, when given.
    pub labels: Option<LabelSummary>,
    /// The model's scores on the reference data, when given (named "score").
    pub scores: Option<NumericSummary>,
    /// One profile per column, in input column order.
    pub columns: Vec<ColumnProfile>,
    /// The rows split by hour of day, when `params.season_column` was set (absent in
    /// format-1 profiles).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seasons: Option<Seasons>,
    /// How far windows of the reference period's own rows drift from the rest of it,
    /// measured by the drift monitor after fitting (absent in format-1 and -2 profiles,
    /// and when the reference was too short to hold windows).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window_spread: Option<WindowSpread>,
}

/// The drift distances that windows of drift-free reference rows reach, per column: the
/// noise the monitor's thresholds must stand above. Rows of one entity are not
/// independent (a per-user 24 h maximum repeats on each of that user's events), so
/// windows vary more than an independent sample of the same size would; this measures
/// how much more, on the reference's own windows in time order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WindowSpread {
    /// Rows per window measured.
    pub window: usize,
    /// Windows evaluated.
    pub windows: usize,
    /// Per column name (the score column is `score`), the spread of its deciding
    /// distance; columns decided by a p-value are absent.
    pub columns: BTreeMap<String, DistanceSpread>,
}

/// Mean, standard deviation and maximum of one column's distance over the windows.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct DistanceSpread {
    pub mean: f64,
    pub std: f64,
    pub max: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LabelSummary {
    pub positives: usize,
    /// positives / rows.
    pub rate: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ColumnProfile {
    pub name: String,
    pub kind: ColumnKind,
    pub summary: NumericSummary,
    /// Categorical columns only: value -> count over non-missing values.
    pub categories: Option<BTreeMap<i64, usize>>,
    /// Numeric columns: `[min, max]` of the values the monitor's out-of-range rate accepts,
    /// when set wider than the profiled rows' own by [`ReferenceProfile::widen_ranges`]
    /// (absent before format 6).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub range: Option<[f64; 2]>,
}

impl ColumnProfile {
    /// Numeric columns: the values the out-of-range rate accepts, `[min, max]`: the
    /// widened [`range`](Self::range), else the profiled rows' minimum and maximum.
    pub fn accepted_range(&self) -> Option<[f64; 2]> {
        if self.kind != ColumnKind::Numeric {
            return None;
        }
        self.range
            .or_else(|| self.summary.stats.as_ref().map(|s| [s.min, s.max]))
    }
}

/// The distribution of one column's values. NaN counts as missing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NumericSummary {
    /// Non-missing values.
    pub count: usize,
    pub missing: usize,
    /// missing / (count + missing).
    pub missing_rate: f64,
    /// Exact number of distinct non-missing values (-0 and 0 are one value).
    pub unique: usize,
    /// `None` when every value is missing.
    pub stats: Option<Stats>,
    /// Numeric columns and scores: at most `sample_size` non-missing values, ascending,
    /// evenly spaced order statistics (all values when there are few enough). Empty for
    /// categorical columns.
    pub sample: Vec<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Stats {
    pub mean: f64,
    /// Population standard deviation.
    pub std: f64,
    pub min: f64,
    pub max: f64,
    /// One per `params.quantiles`, in that order.
    pub quantiles: Vec<Quantile>,
    pub histogram: Histogram,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Quantile {
    pub q: f64,
    pub value: f64,
}

/// Equal-width bins over [min, max]: bin `i` holds `edges[i] <= v < edges[i + 1]`, the last
/// bin also holds `max`. A constant column has one bin with `edges == [min, max]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Histogram {
    pub edges: Vec<f64>,
    pub counts: Vec<usize>,
}

impl ReferenceProfile {
    /// Profiles `rows` (each with one value per column, NaN = missing). `labels` and
    /// `scores`, when given, have one entry per row; NaN scores are missing.
    pub fn fit<'a>(
        columns: &[String],
        kinds: &[ColumnKind],
        rows: impl IntoIterator<Item = &'a [f64]>,
        labels: Option<&[bool]>,
        scores: Option<&[f64]>,
        params: &ProfileParams,
    ) -> Result<ReferenceProfile, ProfileError> {
        params.check()?;
        if columns.is_empty() {
            return Err(ProfileError::NoColumns);
        }
        if columns.len() != kinds.len() {
            return Err(ProfileError::KindsMismatch {
                names: columns.len(),
                kinds: kinds.len(),
            });
        }
        let mut seen = std::collections::HashSet::new();
        if let Some(dup) = columns.iter().find(|c| !seen.insert(c.as_str())) {
            return Err(ProfileError::DuplicateColumn { column: dup.clone() });
        }

        let mut seasons = params
            .season_column
            .as_ref()
            .map(|name| {
                columns
                    .iter()
                    .position(|c| c == name)
                    .map(|at| season::SeasonBuilder::new(name, at, columns.len()))
                    .ok_or_else(|| ProfileError::UnknownSeasonColumn { column: name.clone() })
            })
            .transpose()?;

        // One pass over the rows: split into per-column non-missing values.
        let n_cols = columns.len();
        let rows = rows.into_iter();
        let mut values: Vec<Vec<f64>> = (0..n_cols)
            .map(|_| Vec::with_capacity(rows.size_hint().0))
            .collect();
        let mut missing = vec![0usize; n_cols];
        let mut n_rows = 0;
        for (r, row) in rows.enumerate() {
            if row.len() != n_cols {
                return Err(ProfileError::RowLength {
                    row: r,
                    len: row.len(),
                    expected: n_cols,
                });
            }
            for (j, &v) in row.iter().enumerate() {
                if v.is_nan() {
                    missing[j] += 1;
                    continue;
                }
                if v.is_infinite() {
                    return Err(ProfileError::NonFinite {
                        column: columns[j].clone(),
                        row: r,
                        value: v,
                    });
                }
                if kinds[j] == ColumnKind::Categorical && as_code(v).is_none() {
                    return Err(ProfileError::NotACode {
                        column: columns[j].clone(),
                        row: r,
                        value: v,
                    });
                }
                values[j].push(v);
            }
            if let Some(seasons) = &mut seasons {
                seasons.push(row);
            }
            n_rows += 1;
        }
        if n_rows == 0 {
            return Err(ProfileError::NoRows);
        }

        let labels_in = labels;
        let labels = labels
            .map(|labels| {
                check_len("labels", labels.len(), n_rows)?;
                let positives = labels.iter().filter(|&&l| l).count();
                Ok(LabelSummary {
                    positives,
                    rate: positives as f64 / n_rows as f64,
                })
            })
            .transpose()?;
        let raw_scores = scores;
        let scores = scores
            .map(|scores| {
                check_len("scores", scores.len(), n_rows)?;
                let mut present = Vec::with_capacity(scores.len());
                for (r, &s) in scores.iter().enumerate() {
                    if s.is_infinite() {
                        return Err(ProfileError::NonFinite {
                            column: "score".into(),
                            row: r,
                            value: s,
                        });
                    }
                    if !s.is_nan() {
                        present.push(s);
                    }
                }
                let missing = n_rows - present.len();
                Ok(summarise(present, missing, true, params).0)
            })
            .transpose()?;

        let seasons = seasons.map(|s| s.finish(kinds, raw_scores, labels_in, params.season_sample_size));
        let columns = summarise_columns(columns, kinds, values, missing, params);
        Ok(ReferenceProfile {
            format_version: FORMAT_VERSION,
            params: params.clone(),
            rows: n_rows,
            labels,
            scores,
            columns,
            seasons,
            window_spread: None,
        })
    }

    /// [`fit`](Self::fit) over row-major `data` with `columns.len()` values per row.
    pub fn fit_row_major(
        columns: &[String],
        kinds: &[ColumnKind],
        data: &[f64],
        labels: Option<&[bool]>,
        scores: Option<&[f64]>,
        params: &ProfileParams,
    ) -> Result<ReferenceProfile, ProfileError> {
        if columns.is_empty() {
            return Err(ProfileError::NoColumns);
        }
        if !data.len().is_multiple_of(columns.len()) {
            return Err(ProfileError::RaggedData {
                len: data.len(),
                columns: columns.len(),
            });
        }
        Self::fit(
            columns,
            kinds,
            data.chunks_exact(columns.len()),
            labels,
            scores,
            params,
        )
    }

    /// The profile of the column called `name`.
    pub fn column(&self, name: &str) -> Option<&ColumnProfile> {
        self.columns.iter().find(|c| c.name == name)
    }

    /// Widens each numeric column's accepted range to cover `rows`' finite values too
    /// (row-major, one value per profile column in order). Training passes the latest
    /// events of its window: a per-user count or maximum reaches values in a few weeks
    /// that the days trained on never held, and a live window would read them as out of
    /// range although nothing changed (docs/drift.md).
    pub fn widen_ranges(&mut self, rows: &[f64]) -> Result<(), ProfileError> {
        let width = self.columns.len();
        if width == 0 || !rows.len().is_multiple_of(width) {
            return Err(ProfileError::RaggedData {
                len: rows.len(),
                columns: width,
            });
        }
        for (j, column) in self.columns.iter_mut().enumerate() {
            let Some(before) = column.accepted_range() else {
                continue;
            };
            let [mut min, mut max] = before;
            for &v in rows.iter().skip(j).step_by(width).filter(|v| v.is_finite()) {
                min = min.min(v);
                max = max.max(v);
            }
            if [min, max] != before {
                column.range = Some([min, max]);
            }
        }
        Ok(())
    }
}

fn check_len(what: &'static str, len: usize, rows: usize) -> Result<(), ProfileError> {
    if len == rows {
        Ok(())
    } else {
        Err(ProfileError::LengthMismatch { what, len, rows })
    }
}

/// `v` as a categorical code, when it is an integer within i64.
fn as_code(v: f64) -> Option<i64> {
    // 2^63 is exactly representable; every integer-valued f64 in [-2^63, 2^63) fits.
    const LIMIT: f64 = 9_223_372_036_854_775_808.0;
    (v.fract() == 0.0 && (-LIMIT..LIMIT).contains(&v)).then_some(v as i64)
}

/// Summarises each column, spreading the columns over the available cores (each column
/// is independent, and sorting dominates).
fn summarise_columns(
    names: &[String],
    kinds: &[ColumnKind],
    values: Vec<Vec<f64>>,
    missing: Vec<usize>,
    params: &ProfileParams,
) -> Vec<ColumnProfile> {
    let work: Vec<_> = names
        .iter()
        .zip(kinds)
        .zip(values.into_iter().zip(missing))
        .map(|((name, &kind), (values, missing))| (name, kind, values, missing))
        .collect();
    let profile = |(name, kind, values, missing): (&String, ColumnKind, Vec<f64>, usize)| {
        let (summary, categories) = summarise(values, missing, kind == ColumnKind::Numeric, params);
        ColumnProfile {
            name: name.clone(),
            kind,
            summary,
            categories: (kind == ColumnKind::Categorical).then_some(categories),
            range: None,
        }
    };
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(work.len());
    if threads <= 1 {
        return work.into_iter().map(profile).collect();
    }
    // Contiguous chunks, so the output keeps column order.
    let per_thread = work.len().div_ceil(threads);
    let mut chunks: Vec<Vec<_>> = Vec::new();
    let mut work = work.into_iter().peekable();
    while work.peek().is_some() {
        chunks.push(work.by_ref().take(per_thread).collect());
    }
    std::thread::scope(|s| {
        let handles: Vec<_> = chunks
            .into_iter()
            .map(|chunk| s.spawn(move || chunk.into_iter().map(profile).collect::<Vec<_>>()))
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("profiling a column does not panic"))
            .collect()
    })
}

/// Summarises the non-missing (finite) `values`; also returns value -> count (filled
/// only when `numeric` is false, where every value is an integer code).
fn summarise(
    mut values: Vec<f64>,
    missing: usize,
    numeric: bool,
    params: &ProfileParams,
) -> (NumericSummary, BTreeMap<i64, usize>) {
    let count = values.len();
    let total = count + missing;
    let missing_rate = if total == 0 {
        0.0
    } else {
        missing as f64 / total as f64
    };
    let mut categories = BTreeMap::new();
    if count == 0 {
        let summary = NumericSummary {
            count,
            missing,
            missing_rate,
            unique: 0,
            stats: None,
            sample: Vec::new(),
        };
        return (summary, categories);
    }

    // Welford, in input order.
    let (mut mean, mut m2) = (0.0f64, 0.0f64);
    for (i, &v) in values.iter().enumerate() {
        let delta = v - mean;
        mean += delta / (i + 1) as f64;
        m2 += delta * (v - mean);
    }
    let std = (m2 / count as f64).max(0.0).sqrt();

    values.sort_unstable_by(f64::total_cmp);
    // total_cmp puts -0 before 0; min and max are the numeric extremes either way.
    let (min, max) = (values[0], values[count - 1]);

    let mut unique = 0;
    let mut start = 0;
    while start < count {
        // `==` so that -0 and 0 are one value.
        let first = values[start];
        let run = values[start..].iter().take_while(|&&v| v == first).count();
        unique += 1;
        if !numeric {
            let code = as_code(values[start]).expect("categorical values were checked to be codes");
            *categories.entry(code).or_insert(0) += run;
        }
        start += run;
    }

    let quantiles = params
        .quantiles
        .iter()
        .map(|&q| Quantile {
            q,
            value: quantile_sorted(&values, q),
        })
        .collect();
    let histogram = histogram_sorted(&values, params.bins);
    let sample = if numeric {
        sample_sorted(&values, params.sample_size)
    } else {
        Vec::new()
    };
    let summary = NumericSummary {
        count,
        missing,
        missing_rate,
        unique,
        stats: Some(Stats {
            mean,
            std,
            min,
            max,
            quantiles,
            histogram,
        }),
        sample,
    };
    (summary, categories)
}

/// numpy's default (`method="linear"`) quantile of ascending, non-empty `sorted`,
/// including its interpolation formula, so results match to the last bit.
fn quantile_sorted(sorted: &[f64], q: f64) -> f64 {
    let h = (sorted.len() - 1) as f64 * q;
    let lo = (h.floor() as usize).min(sorted.len() - 1);
    let hi = (lo + 1).min(sorted.len() - 1);
    let t = h - lo as f64;
    let (a, b) = (sorted[lo], sorted[hi]);
    let diff = b - a;
    let value = if t >= 0.5 {
        b - diff * (1.0 - t)
    } else {
        a + diff * t
    };
    // Guard against rounding outside the bracketing values.
    value.clamp(a.min(b), a.max(b))
}

/// Equal-width histogram of ascending, non-empty `sorted`, counted by binary search on
/// the edges.
fn histogram_sorted(sorted: &[f64], bins: usize) -> Histogram {
    let (min, max) = (sorted[0], sorted[sorted.len() - 1]);
    if min == max {
        return Histogram {
            edges: vec![min, max],
            counts: vec![sorted.len()],
        };
    }
    let span = max - min;
    let mut edges = Vec::with_capacity(bins + 1);
    let mut previous = min;
    for i in 0..=bins {
        let t = i as f64 / bins as f64;
        let edge = if i == 0 {
            min
        } else if i == bins {
            max
        } else if span.is_finite() {
            min + span * t
        } else {
            // max - min overflows: interpolate without forming it.
            min * (1.0 - t) + max * t
        };
        // Rounding must never make edges decrease or leave [min, max].
        let edge = edge.clamp(previous, max);
        edges.push(edge);
        previous = edge;
    }
    let mut counts = Vec::with_capacity(bins);
    let mut below = 0; // values before the current bin
    for i in 0..bins {
        let end = if i + 1 == bins {
            sorted.len()
        } else {
            sorted.partition_point(|&v| v < edges[i + 1])
        };
        counts.push(end - below);
        below = end;
    }
    Histogram { edges, counts }
}

/// At most `size` values of ascending `sorted`: all of them, or the order statistics at
/// the midpoints of `size` equal slices (ascending, deterministic).
fn sample_sorted(sorted: &[f64], size: usize) -> Vec<f64> {
    let n = sorted.len();
    if n <= size {
        return sorted.to_vec();
    }
    (0..size)
        .map(|i| {
            // floor((2i + 1) * n / (2 * size)) < n, computed without overflow in u128.
            let idx = ((2 * i as u128 + 1) * n as u128 / (2 * size as u128)) as usize;
            sorted[idx]
        })
        .collect()
}

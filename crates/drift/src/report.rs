//! The drift report: per-column verdicts and histograms, the dataset verdict, as JSON and
//! as one self-contained HTML page.
//!
//! Key decision: the report holds aggregates only. Numeric histograms have at most
//! [`HISTOGRAM_BINS`] equal-width bins over the pooled range, categorical ones the
//! [`TOP_CATEGORIES`] most frequent values plus "(other)", the same bins for reference
//! and current, so the JSON and the HTML stay a few kilobytes per column at any row count.
//! Columns are independent, so they are tested in parallel on scoped threads. Column types
//! follow Evidently's inference on the current data (integers of at most 10 values are
//! categories, text of mostly distinct values is free text, skipped), so a team moving
//! over sees the same tests; `bench/parity_vs_evidently.py` checks it on awkward files.

use std::borrow::Cow;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::DriftError;
use crate::data::{ColumnValues, Table};
use crate::selection::{DriftConfig, combined_unique_count};
use crate::stats::binning;
use crate::stattest::{self, ColumnType, PairedCounts, StatTest};

/// Bins of a numeric column's histogram.
pub const HISTOGRAM_BINS: usize = 20;
/// Categories shown before the rest are pooled into "(other)".
pub const TOP_CATEGORIES: usize = 20;

/// Reference and current counts over the same bins.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Histogram {
    /// `edges.len() == reference.len() + 1`.
    Numeric {
        edges: Vec<f64>,
        reference: Vec<u64>,
        current: Vec<u64>,
    },
    Categorical {
        labels: Vec<String>,
        reference: Vec<u64>,
        current: Vec<u64>,
    },
}

/// The verdict on one column.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ColumnDrift {
    pub name: String,
    #[serde(rename = "type")]
    pub column_type: ColumnType,
    pub test: StatTest,
    pub threshold: f64,
    /// The value compared with the threshold: the p-value or the distance.
    pub score: Option<f64>,
    /// The test statistic (KS D, chi-square, z; the distance for distances).
    pub statistic: Option<f64>,
    pub p_value: Option<f64>,
    pub drifted: bool,
    pub reference_count: usize,
    pub current_count: usize,
    pub reference_missing: usize,
    pub current_missing: usize,
    pub histogram: Histogram,
}

/// A column left out, and why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SkippedColumn {
    pub name: String,
    pub reason: String,
}

/// The verdict on the whole dataset.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DatasetDrift {
    pub columns: usize,
    pub drifted_columns: usize,
    pub share: f64,
    /// The share at or above which the dataset drifts.
    pub drift_share: f64,
    pub drifted: bool,
}

/// Where one side's data came from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Source {
    pub path: String,
    pub rows: usize,
}

/// A whole drift report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DriftReport {
    pub reference: Source,
    pub current: Source,
    pub columns: Vec<ColumnDrift>,
    pub skipped: Vec<SkippedColumn>,
    pub dataset: DatasetDrift,
}

/// Which columns to compare.
#[derive(Debug, Clone, Default)]
pub struct ColumnSelection {
    /// Exactly these, in this order (all shared columns when `None`).
    pub only: Option<Vec<String>>,
    /// Left out unless named in `only`: the contract's id, entity, timestamp and label.
    pub excluded: Vec<String>,
}

/// A categorical column whose reference values are all distinct over at least this many
/// rows is taken for an identifier and skipped.
pub const ID_MIN_ROWS: usize = 50;

/// Integers with at most this many distinct current values are categories, as Evidently's
/// `infer_column_type` types an int64 column (`INTEGER_CARDINALITY_LIMIT`).
pub const INTEGER_CATEGORY_LIMIT: usize = 10;

/// One column's outcome: tested, or skipped with a reason.
enum Outcome {
    Tested(ColumnDrift),
    Skipped(SkippedColumn),
}

impl DriftReport {
    /// Compares every selected column of `current` with `reference`.
    pub fn build(
        reference: &Table,
        current: &Table,
        selection: &ColumnSelection,
        config: &DriftConfig,
    ) -> Result<DriftReport, DriftError> {
        Self::build_with_progress(reference, current, selection, config, &|| {})
    }

    /// [`build`](Self::build), calling `on_column` as each column is done. Columns are
    /// tested in parallel, one contiguous share of them per available core, and reported
    /// in selection order.
    pub fn build_with_progress(
        reference: &Table,
        current: &Table,
        selection: &ColumnSelection,
        config: &DriftConfig,
        on_column: &(dyn Fn() + Sync),
    ) -> Result<DriftReport, DriftError> {
        config.check().map_err(DriftError::Config)?;
        let names = selected_names(reference, current, selection)?;
        let test = |name: &String| {
            let outcome = test_column(name, reference, current, selection, config);
            on_column();
            outcome
        };
        let outcomes = in_parallel(&names, test);
        let mut columns = Vec::new();
        let mut skipped = Vec::new();
        for outcome in outcomes {
            match outcome? {
                Outcome::Tested(column) => columns.push(column),
                Outcome::Skipped(column) => skipped.push(column),
            }
        }
        if columns.is_empty() {
            return Err(DriftError::NoColumns(format!(
                "none of the selected columns can be tested ({} skipped)",
                skipped.len()
            )));
        }
        let drifted_columns = columns.iter().filter(|c| c.drifted).count();
        let share = drifted_columns as f64 / columns.len() as f64;
        Ok(DriftReport {
            reference: source(reference),
            current: source(current),
            dataset: DatasetDrift {
                columns: columns.len(),
                drifted_columns,
                share,
                drift_share: config.drift_share,
                drifted: share >= config.drift_share,
            },
            columns,
            skipped,
        })
    }

    /// Pretty JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("a report always serialises")
    }

    /// Parses a report written by [`DriftReport::to_json`].
    pub fn from_json(text: &str) -> Result<DriftReport, serde_json::Error> {
        serde_json::from_str(text)
    }

    /// One self-contained HTML page (inline CSS and SVG, no scripts, no network).
    pub fn to_html(&self) -> String {
        html::render(self)
    }
}

mod html;

fn finite(x: f64) -> Option<f64> {
    x.is_finite().then_some(x)
}

fn source(table: &Table) -> Source {
    Source {
        path: table.path.display().to_string(),
        rows: table.rows,
    }
}

fn selected_names(
    reference: &Table,
    current: &Table,
    selection: &ColumnSelection,
) -> Result<Vec<String>, DriftError> {
    match &selection.only {
        Some(only) => {
            for name in only {
                for table in [reference, current] {
                    if table.column(name).is_none() {
                        return Err(DriftError::NoColumns(format!(
                            "column '{name}' is not in {}",
                            table.path.display()
                        )));
                    }
                }
            }
            Ok(only.clone())
        }
        None => Ok(reference
            .columns
            .iter()
            .map(|c| c.name.clone())
            .filter(|n| current.column(n).is_some() && !selection.excluded.contains(n))
            .collect()),
    }
}

/// `work` applied to every item on up to `available_parallelism` scoped threads, each
/// taking a contiguous share; results in item order.
fn in_parallel<T: Sync, R: Send>(items: &[T], work: impl Fn(&T) -> R + Sync) -> Vec<R> {
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(items.len());
    if threads <= 1 {
        return items.iter().map(work).collect();
    }
    let per_thread = items.len().div_ceil(threads);
    std::thread::scope(|scope| {
        let work = &work;
        let handles: Vec<_> = items
            .chunks(per_thread)
            .map(|chunk| scope.spawn(move || chunk.iter().map(work).collect::<Vec<R>>()))
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("testing a column does not panic"))
            .collect()
    })
}

/// Tests one selected column (present in both tables).
fn test_column(
    name: &str,
    reference: &Table,
    current: &Table,
    selection: &ColumnSelection,
    config: &DriftConfig,
) -> Result<Outcome, DriftError> {
    let (Some(r), Some(c)) = (reference.column(name), current.column(name)) else {
        unreachable!("selected names are in both tables")
    };
    let skip = |reason: &str| {
        Ok(Outcome::Skipped(SkippedColumn {
            name: name.to_string(),
            reason: reason.into(),
        }))
    };
    let configured = config.columns.get(name);
    let chosen_test = configured.and_then(|o| o.test);
    let keep_numbers = chosen_test.is_some_and(StatTest::numeric_only);
    let (rv, cv) = aligned(&r.values, &c.values, keep_numbers);
    if selection.only.is_none() {
        if looks_like_identifier(&rv) {
            return skip("every reference value is distinct (an identifier)");
        }
        if configured.is_none() && looks_like_free_text(&c.values) {
            return skip(
                "free text (more than half of the current values are distinct): Evidently's \
                 preset judges text with a domain classifier, which driftline does not train; \
                 name the column in --columns or configure it in [drift.columns] to compare \
                 its values as categories",
            );
        }
    }
    if rv.is_empty() || cv.is_empty() {
        return skip("no non-missing values in the reference or the current data");
    }
    let (test, threshold) = config.choose(name, &rv, &cv);
    let outcome = stattest::run(test, &rv, &cv).map_err(|source| DriftError::Stats {
        column: name.to_string(),
        source,
    })?;
    Ok(Outcome::Tested(ColumnDrift {
        column_type: ColumnType::of(&rv),
        test,
        threshold,
        score: finite(outcome.score),
        statistic: finite(outcome.statistic),
        p_value: outcome.p_value.and_then(finite),
        drifted: test.drifted(outcome.score, threshold),
        reference_count: rv.len(),
        current_count: cv.len(),
        reference_missing: r.missing,
        current_missing: c.missing,
        histogram: histogram(&rv, &cv),
        name: name.to_string(),
    }))
}

/// Both sides as the same type (borrowed when they already are, so a million-row column
/// is not copied): categorical when either side is, or when the current side holds
/// integers with few distinct values (Evidently types columns by the current data, and an
/// int64 column of at most [`INTEGER_CATEGORY_LIMIT`] values is categorical there),
/// unless `keep_numbers` (the column's configured test needs numbers).
fn aligned<'a>(
    reference: &'a ColumnValues,
    current: &'a ColumnValues,
    keep_numbers: bool,
) -> (Cow<'a, ColumnValues>, Cow<'a, ColumnValues>) {
    let same_type = match (reference, current) {
        (ColumnValues::Numeric { .. }, ColumnValues::Numeric { .. }) => {
            keep_numbers || !few_integers(current)
        }
        (ColumnValues::Categorical { .. }, ColumnValues::Categorical { .. }) => true,
        _ => false,
    };
    if same_type {
        (Cow::Borrowed(reference), Cow::Borrowed(current))
    } else {
        (
            Cow::Owned(reference.clone().into_categorical()),
            Cow::Owned(current.clone().into_categorical()),
        )
    }
}

/// Integers as pandas reads int64 (no decimal point, no missing cell) with at most
/// [`INTEGER_CATEGORY_LIMIT`] distinct values.
fn few_integers(values: &ColumnValues) -> bool {
    match values {
        ColumnValues::Numeric {
            sorted,
            integer_valued: true,
        } => {
            let distinct = sorted.chunk_by(|a, b| a == b).count();
            distinct <= INTEGER_CATEGORY_LIMIT
        }
        _ => false,
    }
}

/// Text whose distinct values are more than half of its non-missing values, as Evidently's
/// `infer_column_type` tells free text from categories, over at least [`ID_MIN_ROWS`]
/// values: below that a few categories are mostly distinct too (five events from five
/// countries), and Evidently's classifier has too few words to train on (it fails on
/// the reference stack's own sample files).
fn looks_like_free_text(current: &ColumnValues) -> bool {
    match current {
        ColumnValues::Categorical { counts } => {
            let values = current.len();
            values >= ID_MIN_ROWS && 2 * counts.len() > values
        }
        ColumnValues::Numeric { .. } => false,
    }
}

fn looks_like_identifier(reference: &ColumnValues) -> bool {
    match reference {
        ColumnValues::Categorical { counts } => {
            reference.len() >= ID_MIN_ROWS && counts.values().all(|&n| n == 1)
        }
        ColumnValues::Numeric { .. } => false,
    }
}

/// The report's histogram of a column pair.
fn histogram(reference: &ColumnValues, current: &ColumnValues) -> Histogram {
    match (reference, current) {
        (ColumnValues::Numeric { sorted: r, .. }, ColumnValues::Numeric { sorted: c, .. })
            if combined_unique_count(reference, current) > TOP_CATEGORIES =>
        {
            let min = r[0].min(c[0]);
            let max = r[r.len() - 1].max(c[c.len() - 1]);
            let (first, last) = if min == max {
                (min - 0.5, max + 0.5)
            } else {
                (min, max)
            };
            let edges = binning::linspace(first, last, HISTOGRAM_BINS + 1);
            Histogram::Numeric {
                reference: binning::histogram(r, &edges),
                current: binning::histogram(c, &edges),
                edges,
            }
        }
        _ => top_categories(PairedCounts::of(reference, current)),
    }
}

fn top_categories(paired: PairedCounts) -> Histogram {
    let mut order: Vec<usize> = (0..paired.labels.len()).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(paired.reference[i] + paired.current[i]));
    let (shown, rest) = order.split_at(order.len().min(TOP_CATEGORIES));
    let mut labels: Vec<String> = shown.iter().map(|&i| paired.labels[i].clone()).collect();
    let mut reference: Vec<u64> = shown.iter().map(|&i| paired.reference[i]).collect();
    let mut current: Vec<u64> = shown.iter().map(|&i| paired.current[i]).collect();
    if !rest.is_empty() {
        labels.push(format!("(other: {})", rest.len()));
        reference.push(rest.iter().map(|&i| paired.reference[i]).sum());
        current.push(rest.iter().map(|&i| paired.current[i]).sum());
    }
    Histogram::Categorical {
        labels,
        reference,
        current,
    }
}

/// Writes `text` to `path`, naming the path on failure.
pub fn write_file(path: &Path, text: &str) -> std::io::Result<()> {
    std::fs::write(path, text)
}

#[cfg(test)]
mod tests;

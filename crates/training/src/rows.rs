//! Labelled training rows from offline history, and the train / holdout split.
//!
//! Key decision: rows are kept in event-time order, exactly as history replays them, so
//! a time split is a cut and "the most recent N events" a truncation; the stratified
//! split shuffles indices with a seeded ChaCha generator and sorts each side back into
//! time order, so the same data and seed give the same split on every machine.
//! [`RecentRows`] keeps the feature vectors and labels of the latest events of the
//! replay, labelled or not, in a fixed ring: the drift monitor's noise floor and the
//! hourly score calibration are measured on them, over a longer stretch of the window
//! than the rows trained on.

use driftline_core::config::SplitKind;
use driftline_core::features::FeatureSpec;
use driftline_core::profile::ColumnKind;
use driftline_core::time::Timestamp;
use driftline_features::compute::FeatureEngine;
use driftline_features::offline::OfflineStore;
use driftline_features::training::{TrainingSummary, TrainingWindow, replay};
use driftline_models::dataset::{ColumnType, Dataset};
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;

use crate::error::TrainError;

/// Labelled rows in event-time order: features row-major, one label and time per row.
#[derive(Debug, Clone, PartialEq)]
pub struct LabelledRows {
    /// The feature columns.
    pub columns: Vec<String>,
    /// Each column's kind (numeric or categorical).
    pub kinds: Vec<ColumnKind>,
    /// Row-major feature values, `NaN` = missing.
    pub features: Vec<f64>,
    /// One label per row.
    pub labels: Vec<bool>,
    /// One event time per row, ascending.
    pub times: Vec<Timestamp>,
}

impl LabelledRows {
    /// An empty set with `spec`'s columns.
    pub fn new(spec: &FeatureSpec) -> Self {
        LabelledRows {
            columns: spec.names().map(String::from).collect(),
            kinds: ColumnKind::for_spec(spec),
            features: Vec::new(),
            labels: Vec::new(),
            times: Vec::new(),
        }
    }

    /// The number of rows.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether there are no rows.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Row `i`'s features.
    pub fn row(&self, i: usize) -> &[f64] {
        let width = self.columns.len();
        &self.features[i * width..(i + 1) * width]
    }

    /// Keeps only the most recent `n` rows.
    pub fn keep_last(&mut self, n: usize) {
        let drop = self.len().saturating_sub(n);
        self.features.drain(..drop * self.columns.len());
        self.labels.drain(..drop);
        self.times.drain(..drop);
    }

    /// The rows at `indices` (ascending) as a dataset with column types set.
    pub fn dataset(&self, indices: &[usize]) -> Result<Dataset, TrainError> {
        let mut features = Vec::with_capacity(indices.len() * self.columns.len());
        for &i in indices {
            features.extend_from_slice(self.row(i));
        }
        let labels = indices.iter().map(|&i| self.labels[i]).collect();
        let types = self.kinds.iter().map(|k| column_type(*k)).collect();
        Ok(Dataset::new(features, labels, self.columns.clone())?.with_column_types(types)?)
    }
}

/// The feature vectors and labels of the latest `capacity` events replayed (labelled or
/// not), in a ring that never grows past `capacity` rows.
#[derive(Debug, Clone, PartialEq)]
pub struct RecentRows {
    width: usize,
    capacity: usize,
    /// Row-major; once full, row `next` is the oldest.
    values: Vec<f64>,
    /// One per row.
    labels: Vec<Option<bool>>,
    next: usize,
}

/// [`RecentRows`] in time order.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RecentEvents {
    /// Row-major feature vectors, oldest first.
    pub rows: Vec<f64>,
    /// One per row.
    pub labels: Vec<Option<bool>>,
}

impl RecentRows {
    /// A ring of at most `capacity` rows of `width` values (`capacity` 0 keeps nothing).
    pub fn new(width: usize, capacity: usize) -> Self {
        RecentRows {
            width,
            capacity,
            values: Vec::new(),
            labels: Vec::new(),
            next: 0,
        }
    }

    /// A ring that keeps nothing, for replays that need only the labelled rows.
    pub fn none() -> Self {
        RecentRows::new(0, 0)
    }

    /// Keeps `row` and its label, dropping the oldest row when full.
    pub fn push(&mut self, row: &[f64], label: Option<bool>) {
        if self.capacity == 0 || self.width == 0 {
            return;
        }
        debug_assert_eq!(row.len(), self.width);
        if self.labels.len() < self.capacity {
            self.values.extend_from_slice(row);
            self.labels.push(label);
        } else {
            let at = self.next * self.width;
            self.values[at..at + self.width].copy_from_slice(row);
            self.labels[self.next] = label;
            self.next = (self.next + 1) % self.capacity;
        }
    }

    /// The number of rows kept.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether no row is kept.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// The rows kept, oldest first.
    pub fn into_events(mut self) -> RecentEvents {
        self.values.rotate_left(self.next * self.width);
        self.labels.rotate_left(self.next);
        RecentEvents {
            rows: self.values,
            labels: self.labels,
        }
    }
}

/// The model-side type of a profiled column kind.
pub fn column_type(kind: ColumnKind) -> ColumnType {
    match kind {
        ColumnKind::Numeric => ColumnType::Numeric,
        ColumnKind::Categorical => ColumnType::Categorical,
    }
}

/// Replays history in `window` and keeps the labelled rows, and every event's vector in
/// `recent`; `progress` sees the number of events replayed so far, every 16,384 events.
pub fn collect(
    offline: &dyn OfflineStore,
    engine: &FeatureEngine,
    window: TrainingWindow,
    recent: &mut RecentRows,
    progress: &mut dyn FnMut(u64),
) -> Result<(LabelledRows, TrainingSummary), TrainError> {
    let mut rows = LabelledRows::new(engine.spec());
    let mut seen = 0u64;
    let summary = replay(offline, engine, window, &mut |event, vector| {
        seen += 1;
        if seen.is_multiple_of(16_384) {
            progress(seen);
        }
        recent.push(&vector.values, event.label);
        if let Some(label) = event.label {
            rows.features.extend_from_slice(&vector.values);
            rows.labels.push(label);
            rows.times.push(event.ts);
        }
        Ok(())
    })?;
    progress(seen);
    Ok((rows, summary))
}

/// Row indices of the training part and the holdout, each ascending.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Split {
    /// The rows fitted on.
    pub train: Vec<usize>,
    /// The rows evaluated on.
    pub holdout: Vec<usize>,
}

impl Split {
    /// Splits `labels` (in time order): a time split holds out the most recent
    /// `fraction`; a stratified one a seeded random `fraction` of each class. Errors when
    /// either side would lack a class, naming the side.
    pub fn new(labels: &[bool], kind: SplitKind, fraction: f64, seed: u64) -> Result<Split, TrainError> {
        let n = labels.len();
        let split = match kind {
            SplitKind::Time => {
                let holdout = holdout_size(n, fraction);
                Split {
                    train: (0..n - holdout).collect(),
                    holdout: (n - holdout..n).collect(),
                }
            }
            SplitKind::Stratified => stratified(labels, fraction, seed),
        };
        for (side, rows) in [("training", &split.train), ("holdout", &split.holdout)] {
            let positives = rows.iter().filter(|&&i| labels[i]).count();
            if positives == 0 || positives == rows.len() {
                return Err(TrainError::Data(format!(
                    "the {side} part has {} rows, {positives} of them positive: both classes are \
                     needed; ingest more labelled history or widen the training window",
                    rows.len()
                )));
            }
        }
        Ok(split)
    }
}

/// `ceil(n · fraction)`, at least 1 and leaving at least 1 row to train on (0 when n < 2).
fn holdout_size(n: usize, fraction: f64) -> usize {
    if n < 2 {
        return 0;
    }
    ((n as f64 * fraction).ceil() as usize).clamp(1, n - 1)
}

fn stratified(labels: &[bool], fraction: f64, seed: u64) -> Split {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let (mut train, mut holdout) = (Vec::new(), Vec::new());
    for class in [false, true] {
        let mut members: Vec<usize> = (0..labels.len()).filter(|&i| labels[i] == class).collect();
        members.shuffle(&mut rng);
        let k = holdout_size(members.len(), fraction);
        holdout.extend_from_slice(&members[..k]);
        train.extend_from_slice(&members[k..]);
    }
    train.sort_unstable();
    holdout.sort_unstable();
    Split { train, holdout }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(n: usize) -> Vec<bool> {
        (0..n).map(|i| i % 5 == 0).collect()
    }

    #[test]
    fn recent_rows_keep_the_latest_rows_oldest_first() {
        let mut recent = RecentRows::new(2, 3);
        assert!(recent.is_empty());
        let label = |i: i32| (i % 3 != 0).then_some(i % 2 == 0);
        for i in 0..2 {
            recent.push(&[f64::from(i), -f64::from(i)], label(i));
        }
        let two = recent.clone().into_events();
        assert_eq!(two.rows, vec![0.0, -0.0, 1.0, -1.0]);
        assert_eq!(two.labels, vec![None, Some(false)]);
        for i in 2..7 {
            recent.push(&[f64::from(i), -f64::from(i)], label(i));
        }
        assert_eq!(recent.len(), 3);
        let three = recent.into_events();
        assert_eq!(three.rows, vec![4.0, -4.0, 5.0, -5.0, 6.0, -6.0]);
        assert_eq!(three.labels, vec![Some(true), Some(false), None]);
    }

    #[test]
    fn recent_rows_of_capacity_zero_keep_nothing() {
        let mut recent = RecentRows::none();
        recent.push(&[1.0, 2.0], Some(true));
        assert!(recent.is_empty());
        assert_eq!(recent.into_events(), RecentEvents::default());
    }

    #[test]
    fn a_time_split_holds_out_the_most_recent_rows() {
        let s = Split::new(&labels(100), SplitKind::Time, 0.2, 0).unwrap();
        assert_eq!(s.train, (0..80).collect::<Vec<_>>());
        assert_eq!(s.holdout, (80..100).collect::<Vec<_>>());
    }

    #[test]
    fn a_stratified_split_keeps_the_label_rate_and_is_seeded() {
        let l = labels(1000);
        let s = Split::new(&l, SplitKind::Stratified, 0.2, 9).unwrap();
        assert_eq!(s.holdout.len(), 200);
        assert_eq!(s.holdout.iter().filter(|&&i| l[i]).count(), 40);
        assert!(s.train.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(s, Split::new(&l, SplitKind::Stratified, 0.2, 9).unwrap());
        assert_ne!(s, Split::new(&l, SplitKind::Stratified, 0.2, 10).unwrap());
        let mut all: Vec<usize> = s.train.iter().chain(&s.holdout).copied().collect();
        all.sort_unstable();
        assert_eq!(all, (0..1000).collect::<Vec<_>>());
    }

    #[test]
    fn a_side_without_both_classes_is_refused_with_the_reason() {
        // All positives are early, so the most recent 20% hold none.
        let l: Vec<bool> = (0..100).map(|i| i < 10).collect();
        let err = Split::new(&l, SplitKind::Time, 0.2, 0).unwrap_err().to_string();
        assert!(
            err.contains("holdout part has 20 rows, 0 of them positive"),
            "{err}"
        );
        assert!(Split::new(&[true], SplitKind::Time, 0.2, 0).is_err());
    }
}

//! Feature vectors from entity state: the one implementation used by serving, by
//! `features get` and by training-set replay.
//!
//! Key decision: a vector is computed in a single backward pass over the entity's
//! events strictly before the as-of point, newest first, adding each event to the
//! smallest window that contains it and then merging the nested windows. The pass visits
//! events in a fixed order, so the same state always yields bit-identical values; there
//! are no running sums to drift apart.

use driftline_core::event::{Event, FieldValue};
use driftline_core::features::{AggFunction, FeatureKind, FeatureSpec, FeatureVector};
use driftline_core::time::{MICROS_PER_SECOND, Span};

use crate::state::{AsOf, EntityState};

/// Computes vectors for one feature layout. Cheap to clone; build once per process.
#[derive(Debug, Clone)]
pub struct FeatureEngine {
    spec: FeatureSpec,
    /// Every distinct window, ascending.
    windows: Vec<Span>,
    /// Data fields that need windowed statistics.
    fields: Vec<usize>,
    /// Category count per field index (0 for numeric fields).
    categories: Vec<usize>,
}

/// Statistics of one field's values in one window.
///
/// Numeric values are summed shifted by the newest value of the pass, so the variance
/// `S2/n - (S1/n)^2` stays accurate (no cancellation around a large mean) without a
/// division per event.
#[derive(Debug, Clone, Copy, Default)]
struct Stats {
    count: u32,
    sum: f64,
    shifted_sum: f64,
    shifted_squares: f64,
    min: f64,
    max: f64,
    /// Bit per category seen (fields with up to 64 categories).
    seen: u64,
}

impl Stats {
    fn add_number(&mut self, x: f64, shift: f64) {
        if self.count == 0 {
            self.min = x;
            self.max = x;
        } else {
            self.min = self.min.min(x);
            self.max = self.max.max(x);
        }
        self.count += 1;
        self.sum += x;
        let d = x - shift;
        self.shifted_sum += d;
        self.shifted_squares += d * d;
    }

    fn add_category(&mut self, bit: u64) {
        self.count += 1;
        self.seen |= bit;
    }

    /// These statistics plus those of `other` (a disjoint set of events).
    fn merged(&self, other: &Stats) -> Stats {
        if other.count == 0 {
            return *self;
        }
        if self.count == 0 {
            return *other;
        }
        Stats {
            count: self.count + other.count,
            sum: self.sum + other.sum,
            shifted_sum: self.shifted_sum + other.shifted_sum,
            shifted_squares: self.shifted_squares + other.shifted_squares,
            min: self.min.min(other.min),
            max: self.max.max(other.max),
            seen: self.seen | other.seen,
        }
    }

    fn std(&self) -> f64 {
        let n = f64::from(self.count);
        let mean_shift = self.shifted_sum / n;
        (self.shifted_squares / n - mean_shift * mean_shift)
            .max(0.0)
            .sqrt()
    }

    /// `newest` is the field's newest value in the pass, which is the last value of
    /// every non-empty window.
    fn value(&self, function: AggFunction, newest: f64) -> f64 {
        let empty = self.count == 0;
        match function {
            AggFunction::Count => f64::from(self.count),
            AggFunction::Sum => self.sum,
            AggFunction::DistinctCount => f64::from(self.seen.count_ones()),
            _ if empty => f64::NAN,
            AggFunction::Mean => self.sum / f64::from(self.count),
            AggFunction::Std => self.std(),
            AggFunction::Min => self.min,
            AggFunction::Max => self.max,
            AggFunction::Last => newest,
        }
    }
}

/// The outcome of one backward pass: `stats[f * windows + w]`, and per field the newest
/// value seen.
struct WindowStats {
    stats: Vec<Stats>,
    newest: Vec<f64>,
}

impl FeatureEngine {
    pub fn new(spec: FeatureSpec, categories_per_field: Vec<usize>) -> Self {
        let mut windows = Vec::new();
        let mut fields = Vec::new();
        for column in &spec.columns {
            let (field, window) = match column.kind {
                FeatureKind::Aggregate { field, window, .. } => (field, window),
                FeatureKind::Zscore { field, window } => (field, window),
                _ => continue,
            };
            if !windows.contains(&window) {
                windows.push(window);
            }
            if !fields.contains(&field) {
                fields.push(field);
            }
        }
        windows.sort();
        Self {
            spec,
            windows,
            fields,
            categories: categories_per_field,
        }
    }

    /// The engine for a checked configuration.
    pub fn from_config(config: &driftline_core::config::Config) -> Self {
        let categories = config
            .contract
            .fields()
            .iter()
            .map(|f| match &f.kind {
                driftline_core::contract::FieldKind::Category { values } => values.len(),
                driftline_core::contract::FieldKind::Float { .. } => 0,
            })
            .collect();
        Self::new(config.features.clone(), categories)
    }

    pub fn spec(&self) -> &FeatureSpec {
        &self.spec
    }

    /// The vector as of `as_of`. `request` is the event being scored: it supplies the
    /// request features, the z-score's value and the "changed" comparisons; without it
    /// those columns are missing.
    pub fn vector(&self, state: &EntityState, request: Option<&Event>, as_of: AsOf) -> FeatureVector {
        let end = state.position(as_of);
        let stats = self.window_stats(state, end, as_of.time());
        let previous = end.checked_sub(1);
        let values = self
            .spec
            .columns
            .iter()
            .map(|column| match column.kind {
                FeatureKind::Aggregate {
                    field,
                    function,
                    window,
                } => {
                    let (s, newest) = self.stats_for(&stats, field, window);
                    s.value(function, newest)
                }
                FeatureKind::Zscore { field, window } => {
                    let (s, _) = self.stats_for(&stats, field, window);
                    zscore(request_value(request, field), s)
                }
                FeatureKind::SecondsSinceLast => previous
                    .map(|p| (as_of.time() - state.keys()[p].ts) as f64 / MICROS_PER_SECOND as f64)
                    .unwrap_or(f64::NAN),
                FeatureKind::Changed { field } => match (previous, request_value(request, field)) {
                    (Some(p), Some(now)) => {
                        let before = state.values_of(p)[field];
                        if before.is_nan() {
                            f64::NAN
                        } else {
                            f64::from(u8::from(before != now))
                        }
                    }
                    _ => f64::NAN,
                },
                FeatureKind::RequestNumber { field } => request_value(request, field).unwrap_or(f64::NAN),
                FeatureKind::RequestCategory { field } => match request.map(|r| r.values[field]) {
                    Some(FieldValue::Category(c)) => f64::from(c),
                    Some(_) | None => f64::NAN,
                },
                FeatureKind::HourOfDay => request.map(|r| f64::from(r.ts.hour_of_day())).unwrap_or(f64::NAN),
            })
            .collect();
        FeatureVector { values }
    }

    /// One backward pass over the events before `end`, newest first. Each event is
    /// added once, to the smallest window containing it; the windows are nested, so each
    /// window is then the previous one plus its own events.
    fn window_stats(&self, state: &EntityState, end: usize, now: i64) -> WindowStats {
        let n_windows = self.windows.len();
        let mut stats = vec![Stats::default(); self.fields.len() * n_windows];
        let mut newest = vec![f64::NAN; self.fields.len()];
        let keys = state.keys();
        let mut smallest = 0;
        for i in (0..end).rev() {
            let age = now - keys[i].ts;
            while smallest < n_windows && age >= self.windows[smallest].micros() {
                smallest += 1;
            }
            if smallest == n_windows {
                break;
            }
            let values = state.values_of(i);
            for (f, &field) in self.fields.iter().enumerate() {
                let x = values[field];
                if x.is_nan() {
                    continue;
                }
                let bucket = &mut stats[f * n_windows + smallest];
                if self.categories[field] > 0 {
                    // distinct_count is limited to 64 categories; wider fields only count.
                    bucket.add_category(if x < 64.0 { 1u64 << (x as u32) } else { 0 });
                } else {
                    if newest[f].is_nan() {
                        newest[f] = x;
                    }
                    bucket.add_number(x, newest[f]);
                }
            }
        }
        for field_stats in stats.chunks_mut(n_windows) {
            for w in 1..n_windows {
                field_stats[w] = field_stats[w - 1].merged(&field_stats[w]);
            }
        }
        WindowStats { stats, newest }
    }

    fn stats_for<'a>(&self, stats: &'a WindowStats, field: usize, window: Span) -> (&'a Stats, f64) {
        let f = self
            .fields
            .iter()
            .position(|&x| x == field)
            .expect("field planned");
        let w = self
            .windows
            .iter()
            .position(|&x| x == window)
            .expect("window planned");
        (&stats.stats[f * self.windows.len() + w], stats.newest[f])
    }
}

fn request_value(request: Option<&Event>, field: usize) -> Option<f64> {
    match request?.values[field] {
        FieldValue::Number(x) => Some(x),
        FieldValue::Category(c) => Some(f64::from(c)),
        FieldValue::Missing => None,
    }
}

fn zscore(value: Option<f64>, history: &Stats) -> f64 {
    let std = if history.count > 0 {
        history.std()
    } else {
        f64::NAN
    };
    match value {
        Some(x) if history.count >= 2 && std > 0.0 => (x - history.sum / f64::from(history.count)) / std,
        _ => f64::NAN,
    }
}

#[cfg(test)]
mod tests;

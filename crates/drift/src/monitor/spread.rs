//! The reference's own window-to-window variation: how far windows of drift-free
//! reference rows, in time order, drift by the monitor's own tests. It sets each column's
//! noise floor, the distance a live window must reach before it counts as a change.
//!
//! Why: a window's rows are not an independent sample. One user's events repeat that
//! user's state (a 24 h maximum amount is the same on each of their events until it
//! changes; a fraud burst puts one high value on ten rows), so two windows of 5,000 rows
//! differ far more than two independent samples of 5,000 would, and by how much depends
//! on the column. No test on the window alone can see this (it has no user ids); the
//! reference period can, because it is a drift-free stream with the same structure. So
//! the spread is measured, not assumed, once, when the profile is fitted, and the monitor
//! reads it from the profile.
//!
//! Key decision: the windows are held out, and judged as the live ones will be. The
//! reference is cut into [`BLOCKS`] consecutive blocks; each block's windows are judged
//! against a profile fitted on other rows, so a window is never compared with itself (an
//! hour-matched reference of a two-day period would otherwise be half the window's own
//! rows). Those rows are as many consecutive rows beside the block as the monitored
//! profile is fitted on (`ReferenceRows::profile_rows`; all the other blocks when there is
//! no room): live windows are compared with one period's profile, and that period's own
//! sample of the users (its quiet or busy days) moves every live distance. Judged against
//! the other seven blocks instead (up to session 8), the held-out windows saw a smaller,
//! steadier noise than the live ones, whose distances ran 10-25% higher on average and up
//! to 1.7 times as spread on the generator, so the floor needed ten standard deviations
//! and still let through 0-3 false alarms a million. A window that falls mostly on hours
//! the fitted rows do not cover is skipped: live windows are compared with strata of those
//! hours, not with the whole day. The floor is the mean plus [`NOISE_SDS`] standard
//! deviations of the held-out distances: about 250 disjoint windows of 4,000 pass in a
//! million events, over some 30 columns, so a per-column, per-window false-alarm rate
//! near 1 in 10^5 is what "no false alarm in a million events" asks. That would be 4
//! standard deviations of a normal tail, but the distances of per-user statistics (24 h
//! maxima and deviations, 1 h counts) are heavy-tailed, so the multiplier is measured,
//! not derived (docs/drift.md has the sweep). The spread needs that much history:
//! measured on a 2.3-day training window's ~55 windows, the floors followed how quiet
//! those days happened to be and no multiplier served every seed.

use std::collections::BTreeMap;

use driftline_core::profile::{
    ColumnKind, DistanceSpread, HOURS, ProfileParams, ReferenceProfile, WindowSpread,
};

use super::{MonitorConfig, MonitorError, MonitorSnapshot, StreamMonitor, season::MIN_STRATUM_ROWS};

/// Consecutive blocks the reference is cut into for held-out windows.
pub const BLOCKS: usize = 8;

/// Standard deviations above the mean held-out distance where a column's noise floor
/// lies. Nine, swept on the generator over eight seeds (docs/drift.md): no false alarm in
/// a million drift-free events on seven (one on the eighth), a 10% shift of amounts caught
/// within 4,000 events on seven (5,999 on the eighth); ten lost seed 13's shift, eight
/// let through more alarms. Six seeds never used to choose it: no false alarm and the
/// shift within 4,000 events on five (the sixth: five alarms, 7,999 events).
pub const NOISE_SDS: f64 = 9.0;

/// Windows judged per block at most (they overlap; more add little).
const WINDOWS_PER_BLOCK: usize = 12;

/// At most this many of the latest reference rows are used (8 profile fits of them);
/// training keeps this many of its window's latest events to measure the spread on.
pub const SPREAD_ROWS: usize = 400_000;

/// A window whose rows fall on hours the fitted blocks do not cover more than this share
/// is skipped.
const MAX_UNCOVERED_SHARE: f64 = 0.1;

/// The reference rows a profile was fitted on, in time order, for
/// [`measure_window_spread`].
#[derive(Debug, Clone, Copy)]
pub struct ReferenceRows<'a> {
    pub columns: &'a [String],
    pub kinds: &'a [ColumnKind],
    /// Row-major, `columns.len()` values a row, oldest first.
    pub rows: &'a [f64],
    /// The model's score of each row, when the profile has scores.
    pub scores: Option<&'a [f64]>,
    /// The parameters the profile was fitted with.
    pub params: &'a ProfileParams,
    /// Rows the monitored profile itself is fitted on, when fewer than the reference's:
    /// each block's windows are then judged against a profile of that many consecutive
    /// rows beside the block (before it when there is room, else after), not against
    /// every other block, so the floor holds the noise of a profile of that size.
    pub profile_rows: Option<usize>,
}

/// Measures the spread of each distance-decided column over held-out windows of
/// `config.window` rows. `None` when the reference is too short to hold a window in each
/// block.
pub fn measure_window_spread(
    reference: ReferenceRows<'_>,
    config: &MonitorConfig,
) -> Result<Option<WindowSpread>, MonitorError> {
    Ok(held_out_distances(reference, config)?.map(|held_out| held_out.spread(config.window)))
}

/// Every distance of the held-out windows [`measure_window_spread`] summarises.
#[derive(Debug, Clone, PartialEq)]
pub struct HeldOutDistances {
    /// Windows judged.
    pub windows: usize,
    /// Per distance-decided column, its distance in each window where it had one.
    pub distances: BTreeMap<String, Vec<f64>>,
}

impl HeldOutDistances {
    /// The profile's summary of these distances, measured on windows of `window` rows:
    /// each column's mean, standard deviation and maximum.
    pub fn spread(&self, window: usize) -> WindowSpread {
        let columns = self
            .distances
            .iter()
            .filter(|(_, d)| !d.is_empty())
            .map(|(name, d)| (name.clone(), spread_of(d)))
            .collect();
        WindowSpread {
            window,
            windows: self.windows,
            columns,
        }
    }
}

/// The distances of [`measure_window_spread`]'s held-out windows, one per window and
/// column, for studying their distribution. `None` as there.
pub fn held_out_distances(
    reference: ReferenceRows<'_>,
    config: &MonitorConfig,
) -> Result<Option<HeldOutDistances>, MonitorError> {
    let width = reference.columns.len();
    if width == 0 {
        return Ok(None);
    }
    let total = reference.rows.len() / width;
    let skip = total.saturating_sub(SPREAD_ROWS);
    let used = total - skip;
    let block = used / BLOCKS;
    if block < config.window {
        return Ok(None);
    }
    let step = (config.window / 5)
        .max((block - config.window) / WINDOWS_PER_BLOCK)
        .max(1);
    let mut distances: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    let mut windows = 0;
    for b in 0..BLOCKS {
        let start = skip + b * block;
        let end = if b + 1 == BLOCKS { total } else { start + block };
        let fitted = profile_span(total, (start, end), reference.profile_rows);
        let monitor = held_out_monitor(&reference, (start, end), fitted, config)?;
        let covered = covered_hours(&reference, (start, end));
        for at in start..end {
            let row = &reference.rows[at * width..(at + 1) * width];
            let score = reference.scores.map_or(f64::NAN, |s| s[at]);
            monitor.observe(row, score)?;
            let seen = at + 1 - start;
            if seen >= config.window && (seen - config.window).is_multiple_of(step) {
                let snapshot = monitor.evaluate();
                if mostly_covered(&snapshot, covered.as_ref()) {
                    windows += 1;
                    record(&snapshot, &mut distances);
                }
            }
        }
    }
    Ok((windows > 0).then_some(HeldOutDistances { windows, distances }))
}

/// A monitor of the profile fitted on the reference rows `fitted` spans, less the
/// held-out block `[start, end)`.
fn held_out_monitor(
    reference: &ReferenceRows<'_>,
    (start, end): (usize, usize),
    (from, to): (usize, usize),
    config: &MonitorConfig,
) -> Result<StreamMonitor, MonitorError> {
    let width = reference.columns.len();
    let kept = || (from..to).filter(|&r| r < start || r >= end);
    let rows: Vec<f64> = kept()
        .flat_map(|r| reference.rows[r * width..(r + 1) * width].iter().copied())
        .collect();
    let scores: Option<Vec<f64>> = reference.scores.map(|s| kept().map(|r| s[r]).collect());
    let profile = ReferenceProfile::fit_row_major(
        reference.columns,
        reference.kinds,
        &rows,
        None,
        scores.as_deref(),
        reference.params,
    )
    .map_err(|e| MonitorError::Config(format!("profiling the reference outside a held-out block: {e}")))?;
    StreamMonitor::new(&profile, config)
}

/// The rows `[from, to)` a held-out block's profile is fitted on (less the block itself):
/// every row, or `profile_rows` consecutive rows beside the block.
pub(super) fn profile_span(
    total: usize,
    (start, end): (usize, usize),
    profile_rows: Option<usize>,
) -> (usize, usize) {
    match profile_rows {
        Some(n) if n <= start => (start - n, start),
        Some(n) if end + n <= total => (end, end + n),
        _ => (0, total),
    }
}

/// Hours of day the reference covers outside the block `[start, end)` (`None` without a
/// season column): hours with at least [`MIN_STRATUM_ROWS`] rows there. A window mostly
/// on hours found nowhere else in the reference is skipped (a short reference's block
/// can hold hours no other block has). A profile-sized span may lack more hours than
/// that (a model fitted on an hour of events); its windows on those hours are judged as
/// the live monitor judges windows on hours its profile lacks, so they count.
fn covered_hours(reference: &ReferenceRows<'_>, (start, end): (usize, usize)) -> Option<[bool; HOURS]> {
    let season = reference.params.season_column.as_ref()?;
    let at = reference.columns.iter().position(|c| c == season)?;
    let width = reference.columns.len();
    let total = reference.rows.len() / width;
    let mut rows = [0usize; HOURS];
    for r in (0..total).filter(|&r| r < start || r >= end) {
        if let Some(h) = driftline_core::profile::hour_of(reference.rows[r * width + at]) {
            rows[h] += 1;
        }
    }
    Some(rows.map(|n| n >= MIN_STRATUM_ROWS))
}

fn mostly_covered(snapshot: &MonitorSnapshot, covered: Option<&[bool; HOURS]>) -> bool {
    let (Some(season), Some(covered)) = (&snapshot.season, covered) else {
        return true;
    };
    let total: u64 = season.window_hours.iter().sum::<u64>() + season.unassigned;
    let uncovered: u64 = season
        .window_hours
        .iter()
        .zip(covered)
        .filter(|(_, c)| !**c)
        .map(|(n, _)| n)
        .sum();
    total > 0 && (uncovered as f64) <= MAX_UNCOVERED_SHARE * total as f64
}

/// Appends each distance-decided column's distance.
fn record(snapshot: &MonitorSnapshot, distances: &mut BTreeMap<String, Vec<f64>>) {
    for column in snapshot.columns.iter().chain(&snapshot.score) {
        let Some(verdict) = &column.drift else { continue };
        if verdict.test.is_p_value() {
            continue;
        }
        if let Some(d) = verdict.score {
            distances.entry(column.name.clone()).or_default().push(d);
        }
    }
}

fn spread_of(distances: &[f64]) -> DistanceSpread {
    let n = distances.len() as f64;
    let mean = distances.iter().sum::<f64>() / n;
    let variance = distances.iter().map(|d| (d - mean).powi(2)).sum::<f64>() / n;
    DistanceSpread {
        mean,
        std: variance.sqrt(),
        max: distances.iter().copied().fold(f64::NEG_INFINITY, f64::max),
    }
}

/// The distance a column's window of `rows` must reach to stand above the reference's
/// window-to-window noise: `mean + NOISE_SDS · std` measured at `measured_window` rows,
/// scaled by `sqrt(measured_window / rows)` (sampling noise shrinks as the square root of
/// the rows judged, so a half-filled window needs more).
pub fn noise_floor(spread: &DistanceSpread, measured_window: usize, rows: usize) -> f64 {
    let at_measured = spread.mean + NOISE_SDS * spread.std;
    at_measured * (measured_window as f64 / rows.max(1) as f64).sqrt()
}

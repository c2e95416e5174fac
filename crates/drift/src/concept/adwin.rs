//! ADWIN (Bifet & Gavaldà 2007, the ADWIN2 bucket compression), as river's
//! `drift.ADWIN` computes it.
//!
//! Key decision: the window is an exponential histogram. Row `i` holds up to
//! `max_buckets + 1` buckets of `2^i` values each (their sum and their sum of squared
//! deviations), oldest first; when a row overflows, its two oldest buckets merge into one
//! bucket of the next row. Every `clock` values every split of the window into an older
//! and a newer part is tested, oldest split first; on a significant difference in means
//! the oldest bucket is dropped and the test restarts. As in river, a detector that
//! reported drift is reset on its next update.

use serde::{Deserialize, Serialize};

use super::{DetectorState, DriftDetector, ParamError};

/// river's `ADWIN(delta=0.002, clock=32, max_buckets=5, min_window_length=5,
/// grace_period=10)`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdwinParams {
    /// Significance of the test that two sub-windows differ, in (0, 1).
    pub delta: f64,
    /// The window is tested every `clock` values (at least 1).
    pub clock: u32,
    /// Buckets of each size kept before two are merged (at least 1).
    pub max_buckets: usize,
    /// Sub-windows shorter than this are not compared (at least 1).
    pub min_window_length: u32,
    /// No test until the window holds more than this many values.
    pub grace_period: u32,
}

impl Default for AdwinParams {
    fn default() -> Self {
        AdwinParams {
            delta: 0.002,
            clock: 32,
            max_buckets: 5,
            min_window_length: 5,
            grace_period: 10,
        }
    }
}

impl AdwinParams {
    pub fn check(&self) -> Result<(), ParamError> {
        let bad = |parameter, reason: &str| Err(ParamError::new("adwin", parameter, reason));
        if !(self.delta > 0.0 && self.delta < 1.0) {
            return bad("delta", "must be between 0 and 1 (exclusive)");
        }
        if self.clock == 0 {
            return bad("clock", "must be at least 1");
        }
        if self.max_buckets == 0 {
            return bad("max_buckets", "must be at least 1");
        }
        if self.min_window_length == 0 {
            return bad("min_window_length", "must be at least 1");
        }
        Ok(())
    }
}

/// Buckets of one size, oldest first: (sum of values, sum of squared deviations).
#[derive(Debug, Clone, Default)]
struct Row {
    buckets: Vec<(f64, f64)>,
}

impl Row {
    fn drop_oldest(&mut self, n: usize) {
        self.buckets.drain(..n);
    }
}

/// The ADaptive WINdowing detector.
#[derive(Debug, Clone)]
pub struct Adwin {
    params: AdwinParams,
    /// Row `i` holds buckets of `2^i` values.
    rows: Vec<Row>,
    /// Values in the window.
    width: f64,
    /// Their sum.
    pub(super) total: f64,
    /// Their sum of squared deviations from the window mean (river's `variance`).
    pub(super) variance: f64,
    /// Updates since the last reset.
    tick: u64,
    detections: u64,
    state: DetectorState,
}

impl Default for Adwin {
    fn default() -> Self {
        Self::new(AdwinParams::default()).expect("river's defaults are valid")
    }
}

impl Adwin {
    pub fn new(params: AdwinParams) -> Result<Self, ParamError> {
        params.check()?;
        let mut adwin = Adwin {
            params,
            rows: Vec::new(),
            width: 0.0,
            total: 0.0,
            variance: 0.0,
            tick: 0,
            detections: 0,
            state: DetectorState::Stable,
        };
        adwin.reset();
        Ok(adwin)
    }

    /// Values in the current window.
    pub fn width(&self) -> f64 {
        self.width
    }

    /// The window's mean (0 when empty), river's `estimation`.
    pub fn estimation(&self) -> f64 {
        if self.width == 0.0 {
            0.0
        } else {
            self.total / self.width
        }
    }

    /// Drifts detected since the last reset (river's `n_detections`).
    pub fn detections(&self) -> u64 {
        self.detections
    }

    fn insert(&mut self, x: f64) {
        self.rows[0].buckets.push((x, 0.0));
        self.width += 1.0;
        let mut increment = 0.0;
        if self.width > 1.0 {
            let d = x - self.total / (self.width - 1.0);
            increment = (self.width - 1.0) * d * d / self.width;
        }
        self.variance += increment;
        self.total += x;
        self.compress();
    }

    /// Merges the two oldest buckets of every full row into the next row.
    fn compress(&mut self) {
        let full = self.params.max_buckets + 1;
        let mut i = 0;
        while self.rows[i].buckets.len() == full {
            let size = (1u64 << i) as f64;
            let ((t0, v0), (t1, v1)) = (self.rows[i].buckets[0], self.rows[i].buckets[1]);
            let (mu0, mu1) = (t0 / size, t1 / size);
            let merged = (t0 + t1, v0 + v1 + size * 0.5 * (mu0 - mu1) * (mu0 - mu1));
            if i + 1 == self.rows.len() {
                self.rows.push(Row::default());
            }
            self.rows[i + 1].buckets.push(merged);
            self.rows[i].drop_oldest(2);
            i += 1;
        }
    }

    /// Drops the oldest bucket.
    fn drop_oldest(&mut self) {
        let last = self.rows.len() - 1;
        let n = (1u64 << last) as f64;
        let (u, v) = self.rows[last].buckets[0];
        let mu = u / n;
        self.width -= n;
        self.total -= u;
        let mu_window = self.total / self.width;
        self.variance -= v + n * self.width * (mu - mu_window) * (mu - mu_window) / (n + self.width);
        self.rows[last].drop_oldest(1);
        if self.rows[last].buckets.is_empty() {
            self.rows.pop();
        }
    }

    /// Tests every split of the window, dropping the oldest bucket while some split
    /// differs; true when one did.
    fn detect(&mut self) -> bool {
        self.tick += 1;
        let due = self.tick.is_multiple_of(u64::from(self.params.clock));
        if !due || self.width <= f64::from(self.params.grace_period) {
            return false;
        }
        let mut changed = false;
        while self.find_cut() {
            changed = true;
            self.drop_oldest();
        }
        changed
    }

    /// Whether some split (older part, newer part) differs significantly, scanning from
    /// the oldest bucket; the newest bucket is never a part of its own.
    fn find_cut(&self) -> bool {
        let min_length = f64::from(self.params.min_window_length);
        let (mut n0, mut n1) = (0.0, self.width);
        let (mut u0, mut u1) = (0.0, self.total);
        for (i, row) in self.rows.iter().enumerate().rev() {
            let size = (1u64 << i) as f64;
            for (k, &(t, _)) in row.buckets.iter().enumerate() {
                n0 += size;
                n1 -= size;
                u0 += t;
                u1 -= t;
                if i == 0 && k + 1 == row.buckets.len() {
                    return false;
                }
                let delta_mean = (u0 / n0) - (u1 / n1);
                if n1 >= min_length && n0 >= min_length && self.significant(n0, n1, delta_mean) {
                    return true;
                }
            }
        }
        false
    }

    /// The Hoeffding-style cut test of ADWIN with the window's variance.
    fn significant(&self, n0: f64, n1: f64, delta_mean: f64) -> bool {
        let min_length = f64::from(self.params.min_window_length);
        let delta_prime = (2.0 * self.width.ln() / self.params.delta).ln();
        let m_recip = 1.0 / (n0 - min_length + 1.0) + 1.0 / (n1 - min_length + 1.0);
        let epsilon = (2.0 * m_recip * (self.variance / self.width) * delta_prime).sqrt()
            + 2.0 / 3.0 * delta_prime * m_recip;
        delta_mean.abs() > epsilon
    }
}

impl DriftDetector for Adwin {
    fn update(&mut self, x: f64) -> DetectorState {
        if self.state == DetectorState::Drift {
            self.reset();
        }
        self.insert(x);
        if self.detect() {
            self.detections += 1;
            self.state = DetectorState::Drift;
        }
        self.state
    }

    fn state(&self) -> DetectorState {
        self.state
    }

    fn reset(&mut self) {
        self.rows = vec![Row {
            buckets: Vec::with_capacity(self.params.max_buckets + 1),
        }];
        self.width = 0.0;
        self.total = 0.0;
        self.variance = 0.0;
        self.tick = 0;
        self.detections = 0;
        self.state = DetectorState::Stable;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_statistics_follow_the_values() {
        let mut adwin = Adwin::default();
        for x in [1.0, 2.0, 3.0, 4.0, 5.0] {
            assert_eq!(adwin.update(x), DetectorState::Stable);
        }
        assert_eq!((adwin.width(), adwin.estimation()), (5.0, 3.0));
        assert!((adwin.variance - 10.0).abs() < 1e-12);
    }

    #[test]
    fn buckets_merge_into_powers_of_two_without_losing_values() {
        let mut adwin = Adwin::default();
        for _ in 0..1000 {
            adwin.update(1.0);
        }
        let counted: f64 = adwin
            .rows
            .iter()
            .enumerate()
            .map(|(i, row)| row.buckets.len() as f64 * (1u64 << i) as f64)
            .sum();
        assert_eq!((counted, adwin.width()), (1000.0, 1000.0));
        assert!(adwin.rows.iter().all(|r| r.buckets.len() <= 5));
        assert_eq!(adwin.detections(), 0);
    }

    #[test]
    fn a_large_shift_is_detected_and_the_next_update_starts_afresh() {
        let mut adwin = Adwin::default();
        let mut detected_at = None;
        for i in 0..400 {
            let x = if i < 200 { 0.0 } else { 10.0 };
            if adwin.update(x) == DetectorState::Drift {
                detected_at = Some(i);
                break;
            }
        }
        assert!(detected_at.is_some_and(|i| i >= 200));
        assert_eq!(adwin.update(10.0), DetectorState::Stable);
        assert_eq!(adwin.width(), 1.0, "reset before the value after a drift");
    }

    #[test]
    fn parameters_out_of_range_are_named() {
        let err = Adwin::new(AdwinParams {
            delta: 0.0,
            ..AdwinParams::default()
        })
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "adwin.delta: must be between 0 and 1 (exclusive)"
        );
        assert!(
            Adwin::new(AdwinParams {
                clock: 0,
                ..AdwinParams::default()
            })
            .is_err()
        );
    }
}

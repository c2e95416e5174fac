//! The Page–Hinkley test (a CUSUM of deviations from the running mean), as river's
//! `drift.PageHinkley` computes it.
//!
//! Key decision: river's fading factor `alpha` multiplies the cumulative sums before each
//! deviation is added, and its decrease statistic starts from a maximum of -1 rather than
//! minus infinity; both are kept, since they decide where drift fires. Page–Hinkley has no
//! warning zone.

use serde::{Deserialize, Serialize};

use super::{DetectorState, DriftDetector, ParamError, RunningMean};

/// Which direction of change in the mean counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PageHinkleyMode {
    Up,
    Down,
    #[default]
    Both,
}

/// river's `PageHinkley(min_instances=30, delta=0.005, threshold=50, alpha=1-0.0001,
/// mode="both")`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PageHinkleyParams {
    /// No drift is reported before this many values.
    pub min_instances: u64,
    /// Magnitude of change tolerated (subtracted from each deviation).
    pub delta: f64,
    /// The cumulative deviation that signals drift (lambda).
    pub threshold: f64,
    /// Fading factor of the cumulative sums, in (0, 1].
    pub alpha: f64,
    pub mode: PageHinkleyMode,
}

impl Default for PageHinkleyParams {
    fn default() -> Self {
        PageHinkleyParams {
            min_instances: 30,
            delta: 0.005,
            threshold: 50.0,
            alpha: 1.0 - 0.0001,
            mode: PageHinkleyMode::Both,
        }
    }
}

impl PageHinkleyParams {
    pub fn check(&self) -> Result<(), ParamError> {
        let bad = |parameter, reason: &str| Err(ParamError::new("page_hinkley", parameter, reason));
        if !(self.delta.is_finite() && self.delta >= 0.0) {
            return bad("delta", "must be a number >= 0");
        }
        if !(self.threshold.is_finite() && self.threshold > 0.0) {
            return bad("threshold", "must be a number above 0");
        }
        if !(self.alpha > 0.0 && self.alpha <= 1.0) {
            return bad("alpha", "must be in (0, 1]");
        }
        Ok(())
    }
}

/// The Page–Hinkley detector.
#[derive(Debug, Clone)]
pub struct PageHinkley {
    params: PageHinkleyParams,
    pub(super) mean: RunningMean,
    pub(super) sum_increase: f64,
    pub(super) sum_decrease: f64,
    pub(super) min_increase: f64,
    pub(super) max_decrease: f64,
    state: DetectorState,
}

impl Default for PageHinkley {
    fn default() -> Self {
        Self::new(PageHinkleyParams::default()).expect("river's defaults are valid")
    }
}

impl PageHinkley {
    pub fn new(params: PageHinkleyParams) -> Result<Self, ParamError> {
        params.check()?;
        let mut detector = PageHinkley {
            params,
            mean: RunningMean::default(),
            sum_increase: 0.0,
            sum_decrease: 0.0,
            min_increase: 0.0,
            max_decrease: 0.0,
            state: DetectorState::Stable,
        };
        detector.reset();
        Ok(detector)
    }

    fn drifted(&self) -> bool {
        let increase = self.sum_increase - self.min_increase;
        let decrease = self.max_decrease - self.sum_decrease;
        let threshold = self.params.threshold;
        match self.params.mode {
            PageHinkleyMode::Up => increase > threshold,
            PageHinkleyMode::Down => decrease > threshold,
            PageHinkleyMode::Both => increase > threshold || decrease > threshold,
        }
    }
}

impl DriftDetector for PageHinkley {
    fn update(&mut self, x: f64) -> DetectorState {
        if self.state == DetectorState::Drift {
            self.reset();
        }
        self.mean.update(x);
        let deviation = x - self.mean.mean;
        let (alpha, delta) = (self.params.alpha, self.params.delta);
        self.sum_increase = alpha * self.sum_increase + deviation - delta;
        self.sum_decrease = alpha * self.sum_decrease + deviation + delta;
        self.min_increase = self.min_increase.min(self.sum_increase);
        self.max_decrease = self.max_decrease.max(self.sum_decrease);
        if self.mean.n >= self.params.min_instances as f64 && self.drifted() {
            self.state = DetectorState::Drift;
        }
        self.state
    }

    fn state(&self) -> DetectorState {
        self.state
    }

    fn reset(&mut self) {
        self.mean = RunningMean::default();
        self.sum_increase = 0.0;
        self.sum_decrease = 0.0;
        self.min_increase = f64::INFINITY;
        self.max_decrease = -1.0;
        self.state = DetectorState::Stable;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nothing_fires_before_min_instances() {
        let mut ph = PageHinkley::default();
        for i in 0..29 {
            let x = if i < 5 { 0.0 } else { 1000.0 };
            assert_eq!(ph.update(x), DetectorState::Stable);
        }
        assert_eq!(ph.update(1000.0), DetectorState::Drift, "the 30th value may fire");
    }

    #[test]
    fn the_mode_picks_the_direction() {
        let run = |mode, high_then_low: bool| {
            let mut ph = PageHinkley::new(PageHinkleyParams {
                mode,
                ..PageHinkleyParams::default()
            })
            .unwrap();
            (0..400).any(|i| {
                let first = if high_then_low { 10.0 } else { 0.0 };
                let x = if i < 200 { first } else { 10.0 - first };
                ph.update(x) == DetectorState::Drift
            })
        };
        assert!(run(PageHinkleyMode::Up, false) && !run(PageHinkleyMode::Up, true));
        assert!(run(PageHinkleyMode::Down, true) && !run(PageHinkleyMode::Down, false));
        assert!(run(PageHinkleyMode::Both, true) && run(PageHinkleyMode::Both, false));
    }

    #[test]
    fn parameters_out_of_range_are_named() {
        let err = PageHinkley::new(PageHinkleyParams {
            alpha: 1.5,
            ..PageHinkleyParams::default()
        })
        .unwrap_err();
        assert_eq!(err.to_string(), "page_hinkley.alpha: must be in (0, 1]");
    }
}

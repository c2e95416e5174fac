//! DDM, the Drift Detection Method of Gama et al. (2004), as river's `drift.binary.DDM`
//! computes it.
//!
//! Key decision: river's rule, kept exactly: after `warm_start` errors the detector
//! remembers the running error rate `p` and its binomial standard deviation `s` where
//! `p + s` was lowest, and compares the current `p + s` with `p_min + k * s_min` (k = 2 for
//! a warning, 3 for drift), strictly. If the lowest point had no errors at all (`s_min` =
//! 0), the first error after it is a drift, as in river. [`Ddm::update_excess`] runs the
//! same rule on a deseasonalised stream, with the standard deviation the model's own
//! probabilities imply.

use serde::{Deserialize, Serialize};

use super::{DetectorState, DriftDetector, ParamError, RunningMean};

/// river's `DDM(warm_start=30, warning_threshold=2, drift_threshold=3)`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DdmParams {
    /// Errors seen before any warning or drift.
    pub warm_start: u64,
    /// Standard deviations above the best `p + s` that mean a warning.
    pub warning_threshold: f64,
    /// Standard deviations above the best `p + s` that mean drift.
    pub drift_threshold: f64,
}

impl Default for DdmParams {
    fn default() -> Self {
        DdmParams {
            warm_start: 30,
            warning_threshold: 2.0,
            drift_threshold: 3.0,
        }
    }
}

impl DdmParams {
    pub fn check(&self) -> Result<(), ParamError> {
        let bad = |parameter, reason: &str| Err(ParamError::new("ddm", parameter, reason));
        if !(self.warning_threshold.is_finite() && self.warning_threshold > 0.0) {
            return bad("warning_threshold", "must be a number above 0");
        }
        if !(self.drift_threshold.is_finite() && self.drift_threshold >= self.warning_threshold) {
            return bad("drift_threshold", "must be a number at least warning_threshold");
        }
        Ok(())
    }
}

/// The DDM detector, on a stream of 0/1 errors.
#[derive(Debug, Clone)]
pub struct Ddm {
    params: DdmParams,
    pub(super) error_rate: RunningMean,
    /// (p_min, s_min) once past the warm start.
    pub(super) best: Option<(f64, f64)>,
    /// p_min + s_min, infinite before the first.
    best_sum: f64,
    /// [`Ddm::update_excess`]: the mean of the expected variances.
    variance: RunningMean,
    state: DetectorState,
}

impl Default for Ddm {
    fn default() -> Self {
        Self::new(DdmParams::default()).expect("river's defaults are valid")
    }
}

impl Ddm {
    pub fn new(params: DdmParams) -> Result<Self, ParamError> {
        params.check()?;
        Ok(Ddm {
            params,
            error_rate: RunningMean::default(),
            best: None,
            best_sum: f64::INFINITY,
            variance: RunningMean::default(),
            state: DetectorState::Stable,
        })
    }
}

impl Ddm {
    /// DDM on a stream of excess errors (the error minus the error the model expected for
    /// that prediction, [`super::expected_error`]) with `variance` the Bernoulli variance
    /// the model expected (`e · (1 − e)`): the standard deviation of the running mean is
    /// the one those expectations imply, `sqrt(mean variance / n)`, instead of river's
    /// `sqrt(p · (1 − p) / n)`, which assumes one error rate for the whole stream and
    /// collapses to 0 when the first predictions happen to be right. The warm-up and
    /// the 2σ / 3σ rules are river's.
    pub fn update_excess(&mut self, excess: f64, variance: f64) -> DetectorState {
        self.step(excess, Some(variance))
    }

    fn step(&mut self, x: f64, variance: Option<f64>) -> DetectorState {
        if self.state == DetectorState::Drift {
            self.reset();
        }
        self.error_rate.update(x);
        let (p, n) = (self.error_rate.mean, self.error_rate.n);
        let s = match variance {
            None => (p * (1.0 - p) / n).sqrt(),
            Some(v) => {
                self.variance.update(v.max(0.0));
                (self.variance.mean / n).sqrt()
            }
        };
        if n <= self.params.warm_start as f64 {
            return self.state;
        }
        if p + s <= self.best_sum {
            self.best = Some((p, s));
            self.best_sum = p + s;
        }
        let Some((p_min, s_min)) = self.best else {
            // Only a NaN input can leave no minimum; it is not a change.
            return self.state;
        };
        self.state = if p + s > p_min + self.params.drift_threshold * s_min {
            DetectorState::Drift
        } else if p + s > p_min + self.params.warning_threshold * s_min {
            DetectorState::Warning
        } else {
            DetectorState::Stable
        };
        self.state
    }
}

impl DriftDetector for Ddm {
    fn update(&mut self, x: f64) -> DetectorState {
        self.step(x, None)
    }

    fn state(&self) -> DetectorState {
        self.state
    }

    fn reset(&mut self) {
        self.error_rate = RunningMean::default();
        self.best = None;
        self.best_sum = f64::INFINITY;
        self.variance = RunningMean::default();
        self.state = DetectorState::Stable;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rising_error_rate_warns_before_it_drifts() {
        let mut ddm = Ddm::default();
        let mut states = Vec::new();
        for i in 0..2000 {
            // 10% errors, then 60%.
            let error = if i < 1000 {
                i % 10 == 0
            } else {
                i % 5 != 0 && i % 5 != 1
            };
            states.push(ddm.update(f64::from(u8::from(error))));
        }
        let first_warning = states.iter().position(|s| *s == DetectorState::Warning).unwrap();
        let first_drift = states.iter().position(|s| *s == DetectorState::Drift).unwrap();
        assert!(
            1000 <= first_warning && first_warning < first_drift,
            "{first_warning} {first_drift}"
        );
    }

    #[test]
    fn the_first_error_after_an_error_free_warm_start_is_a_drift_as_in_river() {
        let mut ddm = Ddm::default();
        for _ in 0..40 {
            assert_eq!(ddm.update(0.0), DetectorState::Stable);
        }
        assert_eq!(ddm.update(1.0), DetectorState::Drift);
        assert_eq!(ddm.update(0.0), DetectorState::Stable, "reset after the drift");
    }

    #[test]
    fn drift_threshold_below_warning_threshold_is_refused() {
        let err = Ddm::new(DdmParams {
            drift_threshold: 1.0,
            ..DdmParams::default()
        })
        .unwrap_err();
        assert!(err.to_string().starts_with("ddm.drift_threshold"), "{err}");
    }
}

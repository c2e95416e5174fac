//! Concept drift on the model's error stream: ADWIN, Page–Hinkley and DDM, and a
//! [`ConceptMonitor`] that runs all three on the same stream of 0/1 errors (a delayed label
//! joined to its prediction by `event_id`).
//!
//! Key decision: each detector is a port of the Python package `river` (0.26.1) that fires
//! at exactly the indices river's does (checked against `tests/fixtures/concept_expected.json`,
//! made by `make_concept_fixture.py`), including river's reset rule: a detector that
//! reported drift starts afresh on its next update. Arithmetic is written in river's
//! operation order, so the floating-point results, and hence the indices, agree.
//!
//! Deseasonalised input ([`ConceptMonitor::update_expected`]): an error rate with a daily
//! cycle (fraud, and so errors, concentrate at night) is a change in the mean that ADWIN
//! and Page–Hinkley correctly detect twice a day. Fed instead the **excess error**, the
//! error (0/1) minus the probability of an error the model itself gave that prediction
//! ([`expected_error`]: `1 − score` for a decline, `score` for an approval), the
//! detectors see a stream whose mean is 0 whatever the hour while the model's
//! probabilities stay calibrated, and rises when the world no longer behaves as the
//! model expects (concept drift): a covariate shift moves the scores, and the
//! expectation with them. ADWIN and Page–Hinkley are shift-invariant and run unchanged
//! with river's parameters; DDM, whose binomial deviation assumes one error rate, takes
//! the deviation the expectations imply ([`Ddm::update_excess`]). Where the model's
//! scores miss the daily cycle (a logistic model cannot bend its hour-of-day term into a
//! night peak), [`HourlyCalibration`] recalibrates them per hour and per decision to
//! the reference period's label rates first, so the expectation follows the clock the
//! errors follow.

mod adwin;
mod ddm;
mod page_hinkley;

#[cfg(test)]
mod tests;

pub use adwin::{Adwin, AdwinParams};
pub use ddm::{Ddm, DdmParams};
pub use page_hinkley::{PageHinkley, PageHinkleyMode, PageHinkleyParams};

use driftline_core::profile::{HOURS, ReferenceProfile, recalibrate};
use serde::{Deserialize, Serialize};

/// What a detector concluded after its latest update.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DetectorState {
    /// No change detected.
    #[default]
    Stable,
    /// DDM only: the error rate is rising towards the drift level.
    Warning,
    /// A change was detected; the detector resets on its next update.
    Drift,
}

/// A parameter outside its valid range, named.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{detector}.{parameter}: {reason}")]
pub struct ParamError {
    pub detector: &'static str,
    pub parameter: &'static str,
    pub reason: String,
}

impl ParamError {
    fn new(detector: &'static str, parameter: &'static str, reason: impl Into<String>) -> Self {
        ParamError {
            detector,
            parameter,
            reason: reason.into(),
        }
    }
}

/// A change detector over a stream of numbers.
pub trait DriftDetector {
    /// Adds one value and returns the state after it.
    fn update(&mut self, x: f64) -> DetectorState;
    /// The state after the latest update.
    fn state(&self) -> DetectorState;
    /// Forgets everything seen (the state becomes [`DetectorState::Stable`]).
    fn reset(&mut self);
}

/// river's `stats.Mean`, whose exact update order the detectors' thresholds depend on.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
struct RunningMean {
    n: f64,
    mean: f64,
}

impl RunningMean {
    fn update(&mut self, x: f64) {
        self.n += 1.0;
        self.mean += (1.0 / self.n) * (x - self.mean);
    }
}

/// The three detectors of the error stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DetectorKind {
    Adwin,
    PageHinkley,
    Ddm,
}

impl DetectorKind {
    pub const ALL: [DetectorKind; 3] = [DetectorKind::Adwin, DetectorKind::PageHinkley, DetectorKind::Ddm];

    /// The name used in JSON and metric labels.
    pub fn name(self) -> &'static str {
        match self {
            DetectorKind::Adwin => "adwin",
            DetectorKind::PageHinkley => "page_hinkley",
            DetectorKind::Ddm => "ddm",
        }
    }
}

/// Parameters of the three detectors (river's defaults).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ConceptParams {
    pub adwin: AdwinParams,
    pub page_hinkley: PageHinkleyParams,
    pub ddm: DdmParams,
}

/// One detector's history as the monitor reports it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct DetectorStatus {
    pub detector: DetectorKind,
    /// The state after the latest error.
    pub state: DetectorState,
    /// Times the detector entered the warning zone (a run of warnings counts once).
    pub warnings: u64,
    /// Drifts detected.
    pub drifts: u64,
    /// Index in the error stream (0-based) of the latest warning, if any.
    pub last_warning_index: Option<u64>,
    /// Index in the error stream (0-based) of the latest drift, if any.
    pub last_drift_index: Option<u64>,
}

impl DetectorStatus {
    fn new(detector: DetectorKind) -> Self {
        DetectorStatus {
            detector,
            state: DetectorState::Stable,
            warnings: 0,
            drifts: 0,
            last_warning_index: None,
            last_drift_index: None,
        }
    }

    /// Records the state after error `index`; returns it when it is news (a drift, or the
    /// start of a warning zone).
    fn record(&mut self, state: DetectorState, index: u64) -> Option<ConceptEvent> {
        let previous = std::mem::replace(&mut self.state, state);
        let news = match state {
            DetectorState::Stable => false,
            DetectorState::Warning => {
                self.last_warning_index = Some(index);
                previous != DetectorState::Warning
            }
            DetectorState::Drift => {
                self.last_drift_index = Some(index);
                true
            }
        };
        if !news {
            return None;
        }
        match state {
            DetectorState::Warning => self.warnings += 1,
            _ => self.drifts += 1,
        }
        Some(ConceptEvent {
            detector: self.detector,
            state,
            index,
        })
    }
}

/// A detector entering the warning zone or detecting drift.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ConceptEvent {
    pub detector: DetectorKind,
    /// [`DetectorState::Warning`] or [`DetectorState::Drift`].
    pub state: DetectorState,
    /// Index of the error that caused it (0-based).
    pub index: u64,
}

/// The probability that a prediction with `score` (the model's probability of the
/// positive class) is wrong, by the model's own account: a decline is wrong when the label
/// is negative (`1 − score`), an approval when it is positive (`score`). Scores outside
/// [0, 1] are clamped.
pub fn expected_error(score: f64, declined: bool) -> f64 {
    let p = if score.is_nan() {
        0.0
    } else {
        score.clamp(0.0, 1.0)
    };
    if declined { 1.0 - p } else { p }
}

/// Per hour of day, the log-odds offset that recalibrates a model's scores to its
/// reference period's label rate ([`HourStratum::logit_offset`]), and where measured
/// one per decision ([`HourStratum::decision_offsets`]), for [`expected_error`]s that
/// follow the daily cycle. Empty (no change to any score) for a profile without hour
/// strata or labels, and for hours with too few labels.
///
/// [`HourStratum::logit_offset`]: driftline_core::profile::HourStratum::logit_offset
/// [`HourStratum::decision_offsets`]: driftline_core::profile::HourStratum::decision_offsets
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct HourlyCalibration {
    /// Per hour: the hour's offset, and its approved and declined offsets.
    offsets: [HourOffsets; HOURS],
}

#[derive(Debug, Clone, Copy, Default, PartialEq)]
struct HourOffsets {
    hour: Option<f64>,
    approved: Option<f64>,
    declined: Option<f64>,
}

impl HourlyCalibration {
    /// The calibration `profile` measured.
    pub fn of(profile: &ReferenceProfile) -> Self {
        let mut offsets = [HourOffsets::default(); HOURS];
        if let Some(seasons) = &profile.seasons {
            for (slot, hour) in offsets.iter_mut().zip(&seasons.hours) {
                let by_decision = hour.decision_offsets;
                *slot = HourOffsets {
                    hour: hour.logit_offset,
                    approved: by_decision.and_then(|d| d.approved),
                    declined: by_decision.and_then(|d| d.declined),
                };
            }
        }
        HourlyCalibration { offsets }
    }

    /// The probability that a prediction made at `hour` (UTC, 0..=23; anything else is
    /// left uncalibrated) with `score` is wrong: [`expected_error`] of the score
    /// recalibrated by its decision's offset in that hour, or else the hour's.
    pub fn expected_error(&self, score: f64, declined: bool, hour: usize) -> f64 {
        let offset = self.offsets.get(hour).and_then(|o| {
            let by_decision = if declined { o.declined } else { o.approved };
            by_decision.or(o.hour)
        });
        let score = match offset {
            Some(offset) if score.is_finite() => recalibrate(score, offset),
            _ => score,
        };
        expected_error(score, declined)
    }
}

/// ADWIN, Page–Hinkley and DDM on one stream of prediction errors.
#[derive(Debug, Clone)]
pub struct ConceptMonitor {
    adwin: Adwin,
    page_hinkley: PageHinkley,
    ddm: Ddm,
    statuses: [DetectorStatus; 3],
    observations: u64,
    errors: u64,
    /// [`update_expected`](Self::update_expected): the sum of expected errors, and errors
    /// and observations since ADWIN's latest drift.
    expected_errors: f64,
    since_change: (u64, u64),
    deseasonalised: bool,
}

impl Default for ConceptMonitor {
    fn default() -> Self {
        Self::new(ConceptParams::default()).expect("river's defaults are valid")
    }
}

impl ConceptMonitor {
    pub fn new(params: ConceptParams) -> Result<Self, ParamError> {
        Ok(ConceptMonitor {
            adwin: Adwin::new(params.adwin)?,
            page_hinkley: PageHinkley::new(params.page_hinkley)?,
            ddm: Ddm::new(params.ddm)?,
            statuses: DetectorKind::ALL.map(DetectorStatus::new),
            observations: 0,
            errors: 0,
            expected_errors: 0.0,
            since_change: (0, 0),
            deseasonalised: false,
        })
    }

    /// Adds one labelled prediction with the probability of an error the model gave it
    /// (`expected`, see [`expected_error`]): the detectors see the excess error
    /// `error − expected`, not the error, so a daily cycle of the error rate that the
    /// model's scores foresee is not a change. Feed one monitor either this or
    /// [`update`](Self::update), not both.
    pub fn update_expected(&mut self, error: bool, expected: f64) -> Vec<ConceptEvent> {
        let expected = if expected.is_nan() {
            0.0
        } else {
            expected.clamp(0.0, 1.0)
        };
        self.deseasonalised = true;
        let excess = f64::from(u8::from(error)) - expected;
        self.expected_errors += expected;
        let states = [
            self.adwin.update(excess),
            self.page_hinkley.update(excess),
            self.ddm.update_excess(excess, expected * (1.0 - expected)),
        ];
        self.since_change = if states[0] == DetectorState::Drift {
            (0, 0)
        } else {
            (self.since_change.0 + u64::from(error), self.since_change.1 + 1)
        };
        self.record(error, states)
    }

    fn record(&mut self, error: bool, states: [DetectorState; 3]) -> Vec<ConceptEvent> {
        let index = self.observations;
        self.observations += 1;
        self.errors += u64::from(error);
        self.statuses
            .iter_mut()
            .zip(states)
            .filter_map(|(status, state)| status.record(state, index))
            .collect()
    }

    /// Adds one labelled prediction (`error`: the decision disagreed with the label) and
    /// returns what is news: a detector entering its warning zone or detecting drift.
    /// Allocates only when there is news.
    pub fn update(&mut self, error: bool) -> Vec<ConceptEvent> {
        let x = f64::from(u8::from(error));
        let states = [
            self.adwin.update(x),
            self.page_hinkley.update(x),
            self.ddm.update(x),
        ];
        self.record(error, states)
    }

    /// The state of every detector and the error rates.
    pub fn snapshot(&self) -> ConceptSnapshot {
        let (recent_error_rate, excess_error_rate, expected_error_rate) = if self.deseasonalised {
            (
                rate(self.since_change.0, self.since_change.1),
                Some(self.adwin.estimation()),
                Some(self.expected_errors / self.observations.max(1) as f64),
            )
        } else {
            (self.adwin.estimation(), None, None)
        };
        ConceptSnapshot {
            observations: self.observations,
            errors: self.errors,
            error_rate: rate(self.errors, self.observations),
            recent_error_rate,
            recent_window: self.adwin.width() as u64,
            detectors: self.statuses.to_vec(),
            expected_error_rate,
            excess_error_rate,
        }
    }
}

fn rate(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 / whole as f64
    }
}

/// What [`ConceptMonitor::snapshot`] reports (part of `GET /v1/drift`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConceptSnapshot {
    /// Labelled predictions seen.
    pub observations: u64,
    /// Of which errors.
    pub errors: u64,
    /// errors / observations (0 before any).
    pub error_rate: f64,
    /// The error rate since the last change: over ADWIN's current window, or (when the
    /// detectors see excess errors) since ADWIN's latest drift.
    pub recent_error_rate: f64,
    /// Length of ADWIN's current window.
    pub recent_window: u64,
    /// ADWIN, Page–Hinkley, DDM, in that order.
    pub detectors: Vec<DetectorStatus>,
    /// The mean probability of an error the model gave the labelled predictions, when the
    /// detectors see excess errors.
    #[serde(default)]
    pub expected_error_rate: Option<f64>,
    /// Errors beyond the model's expectation over ADWIN's current window (mean of
    /// `error − expected`), when the detectors see excess errors.
    #[serde(default)]
    pub excess_error_rate: Option<f64>,
}

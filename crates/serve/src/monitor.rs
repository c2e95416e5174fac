//! The live monitors inside the server: concept drift on the champion's labelled errors
//! (ADWIN, Page-Hinkley and DDM from `driftline-drift`), exposed as Prometheus metrics,
//! as `GET /v1/drift`, as log lines, and as signals to the retrainer.
//!
//! Key decision: the detectors run where labels join predictions (`POST /v1/feedback`),
//! off the `/predict` path, under one short mutex; only the champion's (baseline) errors
//! feed them, since the canary is judged by the rollout controller, and they restart
//! whenever the champion changes, because a new model's error stream is a new stream.

use std::fmt::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use driftline_drift::concept::{ConceptMonitor, ConceptSnapshot, DetectorKind, DetectorState};

use crate::feedback::Joined;
use crate::metrics::Variant;

/// The concept-drift detectors of the serving champion.
pub struct ConceptWatch {
    monitor: Mutex<ConceptMonitor>,
    /// The latest [`RECENT`] errors, for the error rate a drift is reported with.
    recent: Mutex<RecentErrors>,
    /// The champion version the detectors are watching.
    version: AtomicU64,
    /// Per detector (ADWIN, Page-Hinkley, DDM): warnings and drifts since the server started.
    warnings: [AtomicU64; 3],
    drifts: [AtomicU64; 3],
}

/// Labelled predictions the reported error rate covers.
pub const RECENT: usize = 500;

#[derive(Default)]
struct RecentErrors {
    window: std::collections::VecDeque<bool>,
    errors: usize,
}

impl RecentErrors {
    fn push(&mut self, error: bool) {
        if self.window.len() == RECENT && self.window.pop_front() == Some(true) {
            self.errors -= 1;
        }
        self.window.push_back(error);
        self.errors += usize::from(error);
    }

    fn rate(&self) -> f64 {
        self.errors as f64 / self.window.len().max(1) as f64
    }
}

/// A detector's drift, for the retrainer.
#[derive(Debug, Clone, PartialEq)]
pub struct ConceptDrift {
    /// `adwin`, `page_hinkley` or `ddm`.
    pub detector: &'static str,
    /// The champion's error rate over its latest [`RECENT`] labelled predictions.
    pub error_rate: f64,
}

impl Default for ConceptWatch {
    fn default() -> Self {
        ConceptWatch {
            monitor: Mutex::new(ConceptMonitor::default()),
            recent: Mutex::default(),
            version: AtomicU64::new(0),
            warnings: Default::default(),
            drifts: Default::default(),
        }
    }
}

impl ConceptWatch {
    /// Feeds the champion's newly labelled predictions; returns the drifts detected.
    pub fn observe(&self, joined: &[Joined]) -> Vec<ConceptDrift> {
        let mut monitor = self.monitor.lock().expect("concept monitor lock");
        let mut recent = self.recent.lock().expect("recent errors lock");
        let mut drifts = Vec::new();
        for j in joined
            .iter()
            .filter(|j| j.prediction.variant == Variant::Baseline)
        {
            recent.push(j.error());
            for event in monitor.update(j.error()) {
                let i = DetectorKind::ALL
                    .iter()
                    .position(|k| *k == event.detector)
                    .expect("a known detector");
                let name = event.detector.name();
                match event.state {
                    DetectorState::Warning => {
                        self.warnings[i].fetch_add(1, Ordering::Relaxed);
                        tracing::info!(detector = name, index = event.index, "concept drift warning");
                    }
                    DetectorState::Drift => {
                        self.drifts[i].fetch_add(1, Ordering::Relaxed);
                        let error_rate = recent.rate();
                        tracing::warn!(
                            detector = name,
                            index = event.index,
                            error_rate,
                            "concept drift detected"
                        );
                        drifts.push(ConceptDrift {
                            detector: name,
                            error_rate,
                        });
                    }
                    DetectorState::Stable => {}
                }
            }
        }
        drifts
    }

    /// Starts afresh for a new champion `version` (no-op when it is the one watched).
    pub fn watch(&self, version: u32) {
        if self.version.swap(u64::from(version), Ordering::Relaxed) != u64::from(version) {
            *self.monitor.lock().expect("concept monitor lock") = ConceptMonitor::default();
            *self.recent.lock().expect("recent errors lock") = RecentErrors::default();
        }
    }

    /// The detectors' states and the error rates.
    pub fn snapshot(&self) -> ConceptSnapshot {
        self.monitor.lock().expect("concept monitor lock").snapshot()
    }

    /// Appends the Prometheus metrics.
    pub fn render(&self, out: &mut String) {
        let snapshot = self.snapshot();
        let _ = writeln!(
            out,
            "# HELP driftline_concept_drift_state Concept-drift detector state on the champion's errors: 0 stable, 1 warning, 2 drift.\n# TYPE driftline_concept_drift_state gauge"
        );
        for status in &snapshot.detectors {
            let code = match status.state {
                DetectorState::Stable => 0,
                DetectorState::Warning => 1,
                DetectorState::Drift => 2,
            };
            let _ = writeln!(
                out,
                "driftline_concept_drift_state{{detector=\"{}\"}} {code}",
                status.detector.name()
            );
        }
        for (name, help, counts) in [
            (
                "driftline_concept_drift_warnings_total",
                "Concept-drift warnings (DDM) since the server started.",
                &self.warnings,
            ),
            (
                "driftline_concept_drifts_total",
                "Concept drifts detected since the server started.",
                &self.drifts,
            ),
        ] {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
            for (kind, count) in DetectorKind::ALL.iter().zip(counts) {
                let _ = writeln!(
                    out,
                    "{name}{{detector=\"{}\"}} {}",
                    kind.name(),
                    count.load(Ordering::Relaxed)
                );
            }
        }
        let _ = writeln!(
            out,
            "# HELP driftline_concept_error_rate The champion's error rate on labelled predictions since the last detected change.\n# TYPE driftline_concept_error_rate gauge\ndriftline_concept_error_rate {}",
            snapshot.recent_error_rate
        );
        let _ = writeln!(
            out,
            "# HELP driftline_concept_labelled_total Labelled champion predictions the detectors have seen (since the champion changed).\n# TYPE driftline_concept_labelled_total gauge\ndriftline_concept_labelled_total {}",
            snapshot.observations
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::feedback::Prediction;

    fn joined(variant: Variant, error: bool) -> Joined {
        Joined {
            prediction: Prediction {
                variant,
                score: 0.1,
                decline: false,
            },
            label: error,
        }
    }

    #[test]
    fn a_jump_in_the_champions_errors_is_detected_and_the_canary_is_ignored() {
        let watch = ConceptWatch::default();
        watch.watch(1);
        // 2,000 labelled predictions at a 2% error rate, then errors every other time.
        let calm: Vec<Joined> = (0..2_000)
            .map(|i| joined(Variant::Baseline, i % 50 == 0))
            .collect();
        assert!(watch.observe(&calm).is_empty(), "no drift in a stable stream");
        let canary: Vec<Joined> = (0..2_000).map(|_| joined(Variant::Canary, true)).collect();
        assert!(
            watch.observe(&canary).is_empty(),
            "canary errors are not the champion's"
        );
        let storm: Vec<Joined> = (0..500).map(|i| joined(Variant::Baseline, i % 2 == 0)).collect();
        let drifts = watch.observe(&storm);
        assert!(
            !drifts.is_empty(),
            "a jump from 2% to 50% errors must be detected"
        );
        assert!(
            drifts.iter().all(|d| d.error_rate > 0.03),
            "above the calm 2%: {drifts:?}"
        );
        let mut text = String::new();
        watch.render(&mut text);
        assert!(
            text.contains("driftline_concept_drifts_total{detector=\"adwin\"}"),
            "{text}"
        );
        watch.watch(2);
        assert_eq!(
            watch.snapshot().observations,
            0,
            "a new champion starts a new stream"
        );
    }
}

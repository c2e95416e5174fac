//! The live monitors inside the server, against the serving champion: data drift of the
//! features and scores it is asked about (a sliding window judged against its training
//! profile) and concept drift on its labelled errors (ADWIN, Page-Hinkley and DDM), both
//! from `driftline-drift`, exposed as Prometheus gauges, as `GET /v1/drift`, as log lines,
//! and as signals to the retrainer.
//!
//! Key decision: `/predict` only copies the vector and score into the window (tens of
//! nanoseconds); judging the window runs every `drift.monitor.evaluate_interval_seconds`
//! on a blocking thread, and the routes read its latest snapshot. Concept detectors run
//! where labels join predictions (`POST /v1/feedback`). Only the champion's (baseline)
//! traffic feeds either, since the canary is judged by the rollout controller, and both
//! restart whenever the champion changes: a new model has a new reference and a new error
//! stream. The concept detectors see each labelled prediction's excess error (the error
//! minus the probability of one the model gave it), so the daily cycle of the error rate
//! is not a change; the data-drift window is judged against the same hours of the
//! champion's training period when its profile has hour-of-day strata.

use std::fmt::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwapOption;
use driftline_core::config::RetrainSettings;
use driftline_core::profile::ReferenceProfile;
use driftline_drift::concept::{
    ConceptMonitor, ConceptSnapshot, DetectorKind, DetectorState, HourlyCalibration,
};
use driftline_drift::monitor::{
    ColumnSnapshot, MonitorConfig, MonitorSnapshot, MonitorStatus, StreamMonitor,
};

use crate::feedback::Joined;
use crate::metrics::Variant;
use crate::state::AppState;

/// The concept-drift detectors of the serving champion.
pub struct ConceptWatch {
    monitor: Mutex<ConceptMonitor>,
    /// What the watched champion expects of its errors.
    baseline: Mutex<ErrorBaseline>,
    /// The latest [`RECENT`] errors, for the error rate a drift is reported with.
    recent: Mutex<RecentErrors>,
    /// `retrain.concept_min_error_increase`: how far above its baseline the champion's
    /// recent errors must be for a drift to be harmful (see [`harmful`]).
    min_error_increase: f64,
    /// The champion version the detectors are watching.
    version: AtomicU64,
    /// Per detector (ADWIN, Page-Hinkley, DDM): warnings, drifts and harmful drifts since
    /// the server started.
    warnings: [AtomicU64; 3],
    drifts: [AtomicU64; 3],
    harmful_drifts: [AtomicU64; 3],
}

/// The watched champion's own account of its errors.
#[derive(Debug, Clone, Copy, Default)]
struct ErrorBaseline {
    /// Its hourly score calibration, from its profile.
    calibration: HourlyCalibration,
    /// The share of wrong decisions on its holdout, from its card.
    holdout_error_rate: Option<f64>,
}

/// Whether a detector's drift is harm, not just change: the error rate of the latest
/// [`RECENT`] labelled predictions is at least `1 + min_error_increase` times the larger
/// of the champion's holdout error rate and the rate it expected of those predictions
/// (scores recalibrated for their hour and decision). Detectors also fire when errors
/// fall or swing with the clock, and at night, when fraud and so errors run at several
/// times the day's, a burst of one fraud ring's missed events is the night's normal;
/// none of these calls for a new model or a person.
pub fn harmful(
    error_rate: f64,
    expected_error_rate: f64,
    holdout_error_rate: Option<f64>,
    min_error_increase: f64,
) -> bool {
    let baseline = holdout_error_rate.unwrap_or(0.0).max(expected_error_rate);
    error_rate >= baseline * (1.0 + min_error_increase)
}

/// Labelled predictions the reported error rate covers.
pub const RECENT: usize = 500;

/// The latest [`RECENT`] labelled predictions' errors and the errors the model expected
/// of them, for an error rate and its expectation.
#[derive(Default)]
pub struct RecentErrors {
    /// Each prediction's error and expected error.
    window: std::collections::VecDeque<(bool, f64)>,
    errors: usize,
    /// The expected errors of the window, summed anew on every push (500 additions; a
    /// running sum would drift by rounding over millions of predictions).
    expected: f64,
}

impl RecentErrors {
    /// Adds one prediction: whether it was wrong and the probability it had of being
    /// wrong by the model's (calibrated) account.
    pub fn push(&mut self, error: bool, expected: f64) {
        if self.window.len() == RECENT && self.window.pop_front().is_some_and(|(e, _)| e) {
            self.errors -= 1;
        }
        self.window.push_back((error, expected));
        self.errors += usize::from(error);
        self.expected = self.window.iter().map(|(_, x)| x).sum();
    }

    /// The share of errors among them (0 before any).
    pub fn rate(&self) -> f64 {
        self.errors as f64 / self.window.len().max(1) as f64
    }

    /// The mean expected error over them (0 before any).
    pub fn expected_rate(&self) -> f64 {
        self.expected / self.window.len().max(1) as f64
    }
}

/// A detector's drift, for the retrainer.
#[derive(Debug, Clone, PartialEq)]
pub struct ConceptDrift {
    /// `adwin`, `page_hinkley` or `ddm`.
    pub detector: &'static str,
    /// The champion's error rate over its latest [`RECENT`] labelled predictions.
    pub error_rate: f64,
    /// Whether the errors are far enough above the champion's baseline to matter
    /// ([`harmful`]): only such drifts are retraining votes and alerts.
    pub harmful: bool,
}

impl Default for ConceptWatch {
    fn default() -> Self {
        ConceptWatch::new(RetrainSettings::default().concept_min_error_increase)
    }
}

impl ConceptWatch {
    /// Detectors judging drifts harmful at `min_error_increase` above the baseline.
    pub fn new(min_error_increase: f64) -> Self {
        ConceptWatch {
            monitor: Mutex::new(ConceptMonitor::default()),
            baseline: Mutex::default(),
            recent: Mutex::default(),
            min_error_increase,
            version: AtomicU64::new(0),
            warnings: Default::default(),
            drifts: Default::default(),
            harmful_drifts: Default::default(),
        }
    }

    /// Feeds the champion's newly labelled predictions; returns the drifts detected.
    pub fn observe(&self, joined: &[Joined]) -> Vec<ConceptDrift> {
        let baseline = *self.baseline.lock().expect("error baseline lock");
        let mut monitor = self.monitor.lock().expect("concept monitor lock");
        let mut recent = self.recent.lock().expect("recent errors lock");
        let mut drifts = Vec::new();
        for j in joined
            .iter()
            .filter(|j| j.prediction.variant == Variant::Baseline)
        {
            let p = &j.prediction;
            let expected = baseline
                .calibration
                .expected_error(p.score, p.decline, usize::from(p.hour));
            recent.push(j.error(), expected);
            for event in monitor.update_expected(j.error(), expected) {
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
                        let (error_rate, expected_error_rate) = (recent.rate(), recent.expected_rate());
                        let harmful = harmful(
                            error_rate,
                            expected_error_rate,
                            baseline.holdout_error_rate,
                            self.min_error_increase,
                        );
                        if harmful {
                            self.harmful_drifts[i].fetch_add(1, Ordering::Relaxed);
                        }
                        tracing::warn!(
                            detector = name,
                            index = event.index,
                            error_rate,
                            expected_error_rate,
                            harmful,
                            "concept drift detected"
                        );
                        drifts.push(ConceptDrift {
                            detector: name,
                            error_rate,
                            harmful,
                        });
                    }
                    DetectorState::Stable => {}
                }
            }
        }
        drifts
    }

    /// Starts afresh for a new champion `version` with reference `profile` and the error
    /// rate of its holdout (no-op when it is the one watched).
    pub fn watch(&self, version: u32, profile: &ReferenceProfile, holdout_error_rate: Option<f64>) {
        if self.version.swap(u64::from(version), Ordering::Relaxed) != u64::from(version) {
            *self.baseline.lock().expect("error baseline lock") = ErrorBaseline {
                calibration: HourlyCalibration::of(profile),
                holdout_error_rate,
            };
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
            (
                "driftline_concept_harmful_drifts_total",
                "Concept drifts detected while the champion's latest 500 labelled predictions erred at (1 + retrain.concept_min_error_increase) times the larger of its holdout error rate and the rate it expected of them, since the server started.",
                &self.harmful_drifts,
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

/// The data-drift window of the serving champion and its latest verdict.
pub struct DataWatch {
    config: MonitorConfig,
    /// The window, with the champion version whose profile it judges against.
    monitor: ArcSwapOption<(u32, StreamMonitor)>,
    latest: Mutex<Option<MonitorSnapshot>>,
}

impl DataWatch {
    /// A watch judging with `config`; it starts once a champion is set.
    pub fn new(config: MonitorConfig) -> Self {
        DataWatch {
            config,
            monitor: ArcSwapOption::empty(),
            latest: Mutex::new(None),
        }
    }

    /// How the window is judged (a retrained profile's window spread is measured with it).
    pub fn config(&self) -> &MonitorConfig {
        &self.config
    }

    /// Starts a fresh window against champion `version`'s training profile (no-op when it
    /// is the one watched).
    pub fn watch(&self, version: u32, profile: &ReferenceProfile) {
        if self.monitor.load().as_ref().is_some_and(|m| m.0 == version) {
            return;
        }
        match StreamMonitor::new(profile, &self.config) {
            Ok(monitor) => {
                self.monitor.store(Some(Arc::new((version, monitor))));
                *self.latest.lock().expect("drift snapshot lock") = None;
            }
            Err(error) => {
                tracing::error!(version, %error, "the champion's profile cannot be monitored");
                self.monitor.store(None);
            }
        }
    }

    /// One champion prediction: its feature vector and score.
    pub fn observe(&self, features: &[f64], score: f64) {
        if let Some(monitor) = self.monitor.load().as_ref() {
            // The vector comes from the engine whose fingerprint matched the model's, so
            // its width is the profile's; a mismatch would be a bug, not a request's fault.
            let _ = monitor.1.observe(features, score);
        }
    }

    /// Judges the window now (milliseconds: call off the async runtime) and keeps the verdict.
    pub fn evaluate(&self) -> Option<MonitorSnapshot> {
        let monitor = self.monitor.load_full()?;
        let snapshot = monitor.1.evaluate();
        *self.latest.lock().expect("drift snapshot lock") = Some(snapshot.clone());
        Some(snapshot)
    }

    /// The latest verdict, if any evaluation ran since the champion was set.
    pub fn latest(&self) -> Option<MonitorSnapshot> {
        self.latest.lock().expect("drift snapshot lock").clone()
    }

    /// Appends the Prometheus gauges of the latest verdict.
    pub fn render(&self, out: &mut String) {
        let Some(snapshot) = self.latest() else {
            return;
        };
        let status = match snapshot.status {
            MonitorStatus::WarmingUp => 0,
            MonitorStatus::Stable => 1,
            MonitorStatus::Drift => 2,
        };
        let _ = writeln!(
            out,
            "# HELP driftline_drift_status Live data-drift monitor: 0 warming up, 1 stable, 2 drift (a feature or the score drifts).\n# TYPE driftline_drift_status gauge\ndriftline_drift_status {status}"
        );
        let _ = writeln!(
            out,
            "# HELP driftline_drift_window_size Champion predictions in the monitor's window.\n# TYPE driftline_drift_window_size gauge\ndriftline_drift_window_size {}",
            snapshot.observed
        );
        if let Some(dataset) = &snapshot.dataset {
            let _ = writeln!(
                out,
                "# HELP driftline_dataset_drift_share Share of features whose drift score crosses its threshold.\n# TYPE driftline_dataset_drift_share gauge\ndriftline_dataset_drift_share {}",
                dataset.share
            );
            let _ = writeln!(
                out,
                "# HELP driftline_dataset_drift 1 when at least drift_share of the features drift (Evidently's dataset rule; the status follows any drifted column).\n# TYPE driftline_dataset_drift gauge\ndriftline_dataset_drift {}",
                u8::from(dataset.drifted)
            );
        }
        if let Some(score) = snapshot
            .score
            .as_ref()
            .and_then(|s| s.drift.as_ref())
            .and_then(|d| d.score)
        {
            let _ = writeln!(
                out,
                "# HELP driftline_prediction_drift_score Drift of the champion's scores against its training scores (normed Wasserstein by default).\n# TYPE driftline_prediction_drift_score gauge\ndriftline_prediction_drift_score {score}"
            );
        }
        render_columns(out, &snapshot.columns);
    }
}

/// Per-feature gauges, one family at a time as the exposition format requires.
fn render_columns(out: &mut String, columns: &[ColumnSnapshot]) {
    type Value = fn(&ColumnSnapshot) -> Option<f64>;
    let families: [(&str, &str, Value); 6] = [
        (
            "driftline_feature_drift_score",
            "Per-feature drift score of the live window against the champion's training data.",
            |c| c.drift.as_ref().and_then(|d| d.score),
        ),
        (
            "driftline_feature_drift_p_value",
            "Per-feature p-value reported beside the score (KS or chi-square).",
            |c| c.drift.as_ref().and_then(|d| d.p_value),
        ),
        (
            "driftline_feature_drifted",
            "1 when the feature drifts: its distance reaches the threshold and its p-value is significant.",
            |c| c.drift.as_ref().map(|d| f64::from(u8::from(d.drifted))),
        ),
        (
            "driftline_feature_missing_rate",
            "Share of the window's values that are missing.",
            |c| Some(c.quality.missing_rate),
        ),
        (
            "driftline_feature_out_of_range_rate",
            "Share of the window's values outside the training range (numeric features).",
            |c| c.quality.out_of_range_rate,
        ),
        (
            "driftline_feature_unknown_category_rate",
            "Share of the window's values that are categories training never saw.",
            |c| c.quality.unknown_category_rate,
        ),
    ];
    for (name, help, value) in families {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge");
        for column in columns {
            if let Some(v) = value(column).filter(|v| v.is_finite()) {
                let _ = writeln!(out, "{name}{{feature=\"{}\"}} {v}", column.name);
            }
        }
    }
}

/// Evaluates the data-drift window every `interval`, for ever, and tells the retrainer.
/// Logs when drift starts and when it ends, not at every evaluation in between.
pub async fn run_evaluations(state: Arc<AppState>, interval: Duration) {
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut drifting = false;
    loop {
        tick.tick().await;
        let shared = state.clone();
        let Ok(Some(snapshot)) = tokio::task::spawn_blocking(move || shared.data_drift.evaluate()).await
        else {
            continue;
        };
        let drift = snapshot.status == MonitorStatus::Drift;
        if let (Some(dataset), Some(retrainer)) = (&snapshot.dataset, state.retrainer.get()) {
            retrainer.observe_data_drift(
                drift,
                dataset.share,
                snapshot.observed_total,
                snapshot.window as u64,
            );
        }
        match (drifting, drift) {
            (false, true) => tracing::warn!(
                columns = %snapshot.drifted_columns.join(","),
                share = snapshot.dataset.as_ref().map(|d| d.share),
                "live data drift against the champion's training data"
            ),
            (true, false) => tracing::info!("live data no longer drifts from the champion's training data"),
            _ => {}
        }
        drifting = drift;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::feedback::Prediction;

    fn joined(variant: Variant, error: bool) -> Joined {
        joined_at(variant, error, 12)
    }

    /// An approval with score 0.1 at `hour`, wrong (fraud after all) when `error`.
    fn joined_at(variant: Variant, error: bool, hour: u8) -> Joined {
        Joined {
            prediction: Prediction {
                variant,
                score: 0.1,
                decline: false,
                hour,
            },
            label: error,
        }
    }

    /// A reference period of 2,000 approvals an hour with score 0.1, of which
    /// `night_fraud` in 1,000 at hours 0..6 and 20 in 1,000 by day turned out fraud.
    fn profile(night_fraud: usize) -> ReferenceProfile {
        use driftline_core::profile::{ColumnKind, ProfileParams};
        let (mut hours, mut labels) = (Vec::new(), Vec::new());
        for hour in 0..24 {
            let fraud = if hour < 6 { night_fraud } else { 20 };
            for i in 0..2_000 {
                hours.push(hour as f64);
                labels.push(i % 1_000 < fraud);
            }
        }
        let params = ProfileParams {
            season_column: Some("hour".into()),
            ..ProfileParams::default()
        };
        ReferenceProfile::fit_row_major(
            &["hour".to_string()],
            &[ColumnKind::Numeric],
            &hours,
            Some(&labels),
            Some(&vec![0.1; hours.len()]),
            &params,
        )
        .unwrap()
    }

    #[test]
    fn a_drift_is_harmful_only_well_above_both_the_holdout_and_the_expectation() {
        // The champion's holdout error rate is 4%: 7% is change, not harm; 8% is harm.
        assert!(!harmful(0.07, 0.01, Some(0.04), 1.0));
        assert!(harmful(0.08, 0.01, Some(0.04), 1.0));
        // At night it expects 6% of its recent predictions: 10% is twice its 2% holdout
        // but not twice its expectation.
        assert!(!harmful(0.10, 0.06, Some(0.02), 1.0));
        assert!(harmful(0.13, 0.06, Some(0.02), 1.0));
        // Without a card the expectation alone sets the bar; the increase is configurable.
        assert!(harmful(0.025, 0.01, None, 1.0));
        assert!(!harmful(0.025, 0.01, None, 2.0));
    }

    #[test]
    fn recent_errors_keep_the_latest_predictions_errors_and_expectations() {
        let mut recent = RecentErrors::default();
        assert_eq!((recent.rate(), recent.expected_rate()), (0.0, 0.0));
        for i in 0..RECENT {
            recent.push(i % 10 == 0, 0.05);
        }
        assert!((recent.rate() - 0.1).abs() < 1e-12);
        assert!((recent.expected_rate() - 0.05).abs() < 1e-12);
        // Half the window replaced by errorless predictions expected at 0.01.
        for _ in 0..RECENT / 2 {
            recent.push(false, 0.01);
        }
        assert!((recent.rate() - 0.05).abs() < 1e-12, "{}", recent.rate());
        assert!((recent.expected_rate() - 0.03).abs() < 1e-12);
    }

    #[test]
    fn errors_are_expected_at_the_rate_the_champions_profile_measured_for_their_hour() {
        // A day at 2% fraud, then a night at 40%, which a score of 0.1 does not foresee
        // but the reference period showed: no drift. Against a reference without that
        // night, it is one.
        let day = (0..3_000).map(|i| joined_at(Variant::Baseline, i % 50 == 0, 6 + (i / 500) as u8));
        let night = (0..3_000).map(|i| joined_at(Variant::Baseline, i % 5 < 2, (i / 500) as u8));
        let night: Vec<Joined> = day.chain(night).collect();
        let seen_before = ConceptWatch::default();
        seen_before.watch(1, &profile(400), None);
        assert!(seen_before.observe(&night).is_empty());
        let news = ConceptWatch::default();
        news.watch(1, &profile(20), None);
        assert!(!news.observe(&night).is_empty());
    }

    #[test]
    fn a_jump_in_the_champions_errors_is_detected_and_the_canary_is_ignored() {
        let watch = ConceptWatch::default();
        watch.watch(1, &profile(20), Some(0.02));
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
        assert!(
            drifts.iter().any(|d| d.harmful),
            "well above twice the 2% holdout: {drifts:?}"
        );
        let mut text = String::new();
        watch.render(&mut text);
        assert!(
            text.contains("driftline_concept_drifts_total{detector=\"adwin\"}"),
            "{text}"
        );
        assert!(
            text.contains("driftline_concept_harmful_drifts_total{detector=\"adwin\"}"),
            "{text}"
        );
        watch.watch(2, &profile(20), Some(0.02));
        assert_eq!(
            watch.snapshot().observations,
            0,
            "a new champion starts a new stream"
        );
    }
}

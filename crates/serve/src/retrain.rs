//! The closed loop: a trigger (sustained data drift, concept drift on the champion's
//! errors, a schedule, or a person) retrains on recent labelled history, the gates judge
//! the candidate against the champion on the same holdout, a candidate that passes becomes
//! `challenger` and the rollout controller canaries it to promotion or rollback.
//!
//! Key decision: the retrainer owns no model logic. It decides *when* (a pure
//! [`Triggers::next`] over signals the monitors push in, with a cooldown and at most one
//! retraining at a time) and then calls the same training pipeline as `driftline train`
//! and the same rollout controller as `POST /v1/rollout`. Every registry step carries its
//! reason: the version's `trigger` tag records why it was trained, the alias change and
//! the controller's promote or rollback record what was decided and on which metrics.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use driftline_core::config::RetrainSettings;
use driftline_core::time::Timestamp;
use driftline_features::compute::FeatureEngine;
use driftline_features::offline::OfflineStore;
use driftline_features::training::TrainingWindow;
use driftline_registry::CHALLENGER;
use driftline_training::config::TrainingConfig;
use driftline_training::pipeline::{AliasPolicy, TrainOutcome, fit_candidate, judge_and_register};
use driftline_training::rows::{RecentRows, collect};
use serde::Serialize;

use crate::controller;
use crate::models::reload;
use crate::rollout::{self, RolloutPlan, RolloutStatus};
use crate::state::AppState;

/// Why a retraining started.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Trigger {
    /// The live monitor found dataset drift this many evaluations in a row.
    DataDrift { windows: u32, share: f64 },
    /// A concept-drift detector reported drift on the champion's labelled errors.
    ConceptDrift { detector: String, error_rate: f64 },
    /// The schedule came round.
    Schedule,
    /// A person asked (`POST /v1/retrain`).
    Manual { reason: String },
}

impl Trigger {
    /// The metric label.
    pub fn kind(&self) -> &'static str {
        match self {
            Trigger::DataDrift { .. } => "data_drift",
            Trigger::ConceptDrift { .. } => "concept_drift",
            Trigger::Schedule => "schedule",
            Trigger::Manual { .. } => "manual",
        }
    }

    /// One sentence for the audit log and the narrative.
    pub fn describe(&self) -> String {
        match self {
            Trigger::DataDrift { windows, share } => format!(
                "data drift in {windows} consecutive monitor windows ({:.0}% of features drifted)",
                100.0 * share
            ),
            Trigger::ConceptDrift { detector, error_rate } => format!(
                "concept drift detected by {detector} (champion error rate {:.1}%)",
                100.0 * error_rate
            ),
            Trigger::Schedule => "scheduled retraining".into(),
            Trigger::Manual { reason } => format!("manual: {reason}"),
        }
    }

    /// Whether the new world began recently, so training should start at the detection.
    fn is_drift(&self) -> bool {
        matches!(self, Trigger::DataDrift { .. } | Trigger::ConceptDrift { .. })
    }
}

/// What the monitors reported since the last decision.
#[derive(Debug, Default)]
struct Signals {
    /// Consecutive monitor evaluations with dataset drift, and the last share.
    data_drift_streak: u32,
    data_drift_share: f64,
    /// The monitor's `observed_total` at the streak's first evaluation, the predictions
    /// it saw since, and its window.
    data_drift_started: u64,
    data_drift_predictions: u64,
    data_drift_window: u64,
    /// Concept drifts reported and not yet acted on: when, which detector, error rate.
    concept_drifts: Vec<(Instant, String, f64)>,
    /// A manual request not yet acted on.
    manual: Option<String>,
}

/// The trigger logic: pure given the signals, the clock and what is running.
struct Triggers<'a> {
    settings: &'a RetrainSettings,
    signals: &'a mut Signals,
}

/// Concept drifts agree when reported within this long of each other.
pub const CONCEPT_VOTE_WINDOW: Duration = Duration::from_secs(60);

impl Triggers<'_> {
    /// Concept drift once `concept_votes` distinct detectors reported it within
    /// [`CONCEPT_VOTE_WINDOW`]; the reports are consumed when it fires.
    fn concept_trigger(&mut self, now: Instant) -> Option<Trigger> {
        let drifts = &mut self.signals.concept_drifts;
        drifts.retain(|(at, _, _)| now.duration_since(*at) <= CONCEPT_VOTE_WINDOW);
        if !self.settings.on_concept_drift {
            return None;
        }
        let mut detectors: Vec<&str> = drifts.iter().map(|(_, d, _)| d.as_str()).collect();
        detectors.sort_unstable();
        detectors.dedup();
        if detectors.len() < self.settings.concept_votes as usize {
            return None;
        }
        let detector = detectors.join(" and ");
        let error_rate = drifts.last().map_or(0.0, |d| d.2);
        drifts.clear();
        Some(Trigger::ConceptDrift { detector, error_rate })
    }

    /// The trigger to act on now, consuming it; `None` while cooling down or when nothing
    /// fired. A manual request ignores the cooldown and the `enabled` switch.
    fn next(
        &mut self,
        now: Instant,
        cooldown_until: Option<Instant>,
        last_start: Option<Instant>,
    ) -> Option<Trigger> {
        if let Some(reason) = self.signals.manual.take() {
            return Some(Trigger::Manual { reason });
        }
        if !self.settings.enabled || cooldown_until.is_some_and(|until| now < until) {
            // Signals seen while cooling down are stale by the time it ends.
            self.signals.concept_drifts.clear();
            return None;
        }
        if let Some(trigger) = self.concept_trigger(now) {
            return Some(trigger);
        }
        let windows = self.settings.data_drift_windows;
        let signals = &mut *self.signals;
        if windows > 0
            && signals.data_drift_streak >= windows
            && signals.data_drift_predictions >= signals.data_drift_window
        {
            signals.data_drift_streak = 0;
            signals.data_drift_predictions = 0;
            return Some(Trigger::DataDrift {
                windows,
                share: signals.data_drift_share,
            });
        }
        let every = self.settings.schedule_seconds;
        if every > 0.0 && last_start.is_none_or(|at| now.duration_since(at).as_secs_f64() >= every) {
            return Some(Trigger::Schedule);
        }
        None
    }
}

/// A finished retraining, as `/v1/drift` and the dashboard show it.
#[derive(Debug, Clone, Serialize)]
pub struct RetrainRecord {
    /// Why it started.
    pub trigger: Trigger,
    /// When it started and ended (RFC 3339).
    pub started_at: String,
    pub finished_at: String,
    /// `promoted`, `rolled_back`, `rejected`, `registered` (no rollout), `gave_up`, `failed`.
    pub outcome: &'static str,
    /// The version trained, when one was registered.
    pub version: Option<u32>,
    /// Holdout ROC AUC of the candidate and of the champion on the same holdout.
    pub candidate_roc_auc: Option<f64>,
    pub champion_roc_auc: Option<f64>,
    /// What happened, in a sentence.
    pub detail: String,
}

/// Where the retrainer is.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum RetrainState {
    /// Waiting for a trigger.
    Idle,
    /// Triggered; the window holds too few labelled events so far.
    WaitingForLabels {
        trigger: Trigger,
        labelled: u64,
        needed: u64,
    },
    /// Fitting and judging a candidate.
    Training { trigger: Trigger },
    /// The candidate is being canaried.
    RollingOut { trigger: Trigger, version: u32 },
}

/// `GET /v1/drift`'s `retrain` part.
#[derive(Debug, Clone, Serialize)]
pub struct RetrainStatus {
    pub state: RetrainState,
    /// Seconds left of the cooldown, when cooling down.
    pub cooldown_seconds_left: Option<f64>,
    /// The most recent retrainings, newest last (at most [`HISTORY`]).
    pub history: Vec<RetrainRecord>,
}

/// Retrainings kept in [`RetrainStatus::history`].
pub const HISTORY: usize = 20;

const TRIGGER_KINDS: [&str; 4] = ["data_drift", "concept_drift", "schedule", "manual"];
const OUTCOMES: [&str; 6] = [
    "promoted",
    "rolled_back",
    "rejected",
    "registered",
    "gave_up",
    "failed",
];
const ACTOR: &str = "driftline retrainer";

/// The retrainer's shared state: signals in, status and counters out.
pub struct Retrainer {
    settings: RetrainSettings,
    signals: Mutex<Signals>,
    running: AtomicBool,
    state: Mutex<RetrainState>,
    history: Mutex<Vec<RetrainRecord>>,
    cooldown_until: Mutex<Option<Instant>>,
    last_start: Mutex<Option<Instant>>,
    triggers: [AtomicU64; TRIGGER_KINDS.len()],
    outcomes: [AtomicU64; OUTCOMES.len()],
}

impl Retrainer {
    /// A retrainer following `settings`.
    pub fn new(settings: RetrainSettings) -> Self {
        Retrainer {
            settings,
            signals: Mutex::default(),
            running: AtomicBool::new(false),
            state: Mutex::new(RetrainState::Idle),
            history: Mutex::default(),
            cooldown_until: Mutex::default(),
            last_start: Mutex::default(),
            triggers: Default::default(),
            outcomes: Default::default(),
        }
    }

    /// One evaluation of the live data-drift monitor: `drifted` is its status (a feature
    /// column or the score drifts against the champion's seasonal reference), `share`
    /// the share of drifted features reported with it, `observed_total` the predictions it
    /// has seen and `window` its window. A streak triggers once it is
    /// `data_drift_windows` evaluations long *and* has lasted a whole window of new
    /// predictions: at low traffic many evaluations see nearly the same window, and a
    /// drift-free stream's blips (a cluster of one user's rows) last half a window at most
    /// (docs/drift.md), where a real change lasts.
    pub fn observe_data_drift(&self, drifted: bool, share: f64, observed_total: u64, window: u64) {
        let mut signals = self.signals.lock().expect("retrain signals lock");
        if drifted {
            if signals.data_drift_streak == 0 {
                signals.data_drift_started = observed_total;
            }
            signals.data_drift_streak += 1;
            signals.data_drift_predictions = observed_total.saturating_sub(signals.data_drift_started);
        } else {
            signals.data_drift_streak = 0;
            signals.data_drift_predictions = 0;
        }
        signals.data_drift_share = share;
        signals.data_drift_window = window;
    }

    /// A concept-drift detector fired on the champion's errors: counted as a vote only
    /// when it is `harmful` (`crate::monitor::harmful`: the recent errors well above both
    /// the champion's holdout rate and what it expected of those predictions).
    pub fn observe_concept_drift(&self, detector: &str, error_rate: f64, harmful: bool) {
        if !harmful {
            tracing::info!(
                detector,
                error_rate,
                "concept change without more errors than the champion's holdout or expectation: \
                 not a retraining vote"
            );
            return;
        }
        self.signals
            .lock()
            .expect("retrain signals lock")
            .concept_drifts
            .push((Instant::now(), detector.to_string(), error_rate));
    }

    /// A person asks for a retraining; refused while one runs.
    pub fn request(&self, reason: String) -> Result<(), &'static str> {
        if self.running.load(Ordering::Acquire) {
            return Err("a retraining is already running");
        }
        self.signals.lock().expect("retrain signals lock").manual = Some(reason);
        Ok(())
    }

    /// What it is doing and has done.
    pub fn status(&self) -> RetrainStatus {
        let now = Instant::now();
        RetrainStatus {
            state: self.state.lock().expect("retrain state lock").clone(),
            cooldown_seconds_left: self
                .cooldown_until
                .lock()
                .expect("cooldown lock")
                .filter(|until| *until > now)
                .map(|until| until.duration_since(now).as_secs_f64()),
            history: self.history.lock().expect("retrain history lock").clone(),
        }
    }

    /// Appends the Prometheus metrics.
    pub fn render(&self, out: &mut String) {
        use std::fmt::Write;
        let _ = writeln!(
            out,
            "# HELP driftline_retrain_triggers_total Retrainings started, by trigger.\n# TYPE driftline_retrain_triggers_total counter"
        );
        for (kind, count) in TRIGGER_KINDS.iter().zip(&self.triggers) {
            let _ = writeln!(
                out,
                "driftline_retrain_triggers_total{{trigger=\"{kind}\"}} {}",
                count.load(Ordering::Relaxed)
            );
        }
        let _ = writeln!(
            out,
            "# HELP driftline_retrain_outcomes_total Retrainings finished, by outcome.\n# TYPE driftline_retrain_outcomes_total counter"
        );
        for (outcome, count) in OUTCOMES.iter().zip(&self.outcomes) {
            let _ = writeln!(
                out,
                "driftline_retrain_outcomes_total{{outcome=\"{outcome}\"}} {}",
                count.load(Ordering::Relaxed)
            );
        }
        let _ = writeln!(
            out,
            "# HELP driftline_retrain_running 1 while a retraining (waiting, training or rolling out) runs.\n# TYPE driftline_retrain_running gauge\ndriftline_retrain_running {}",
            u8::from(self.running.load(Ordering::Relaxed))
        );
    }

    fn next_trigger(&self) -> Option<Trigger> {
        if self.running.load(Ordering::Acquire) {
            return None;
        }
        let now = Instant::now();
        let cooldown_until = *self.cooldown_until.lock().expect("cooldown lock");
        let last_start = *self.last_start.lock().expect("last start lock");
        let mut signals = self.signals.lock().expect("retrain signals lock");
        Triggers {
            settings: &self.settings,
            signals: &mut signals,
        }
        .next(now, cooldown_until, last_start)
    }

    fn set_state(&self, state: RetrainState) {
        *self.state.lock().expect("retrain state lock") = state;
    }

    fn finish(&self, record: RetrainRecord) {
        if let Some(i) = OUTCOMES.iter().position(|o| *o == record.outcome) {
            self.outcomes[i].fetch_add(1, Ordering::Relaxed);
        }
        tracing::info!(trigger = %record.trigger.describe(), outcome = record.outcome, detail = %record.detail, "retraining finished");
        let mut history = self.history.lock().expect("retrain history lock");
        history.push(record);
        if history.len() > HISTORY {
            history.remove(0);
        }
        drop(history);
        *self.cooldown_until.lock().expect("cooldown lock") =
            Some(Instant::now() + Duration::from_secs_f64(self.settings.cooldown_seconds));
        self.set_state(RetrainState::Idle);
        self.running.store(false, Ordering::Release);
    }
}

/// Checks for a trigger every second and runs one retraining at a time, for ever.
pub async fn run(state: Arc<AppState>, engine: FeatureEngine, offline: Arc<dyn OfflineStore>) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tick.tick().await;
        let Some(retrainer) = state.retrainer.get() else {
            continue;
        };
        if !state.is_controller() {
            // Another replica is the controller: it retrains for everyone.
            continue;
        }
        if state.challenger.load().is_some() {
            // A rollout is in progress (perhaps a person's): do not stack another on it.
            continue;
        }
        let Some(trigger) = retrainer.next_trigger() else {
            continue;
        };
        retrainer.running.store(true, Ordering::Release);
        *retrainer.last_start.lock().expect("last start lock") = Some(Instant::now());
        if let Some(i) = TRIGGER_KINDS.iter().position(|k| *k == trigger.kind()) {
            retrainer.triggers[i].fetch_add(1, Ordering::Relaxed);
        }
        tracing::info!(trigger = %trigger.describe(), "retraining triggered");
        tokio::spawn(retrain(state.clone(), engine.clone(), offline.clone(), trigger));
    }
}

/// One retraining, from trigger to outcome.
async fn retrain(
    state: Arc<AppState>,
    engine: FeatureEngine,
    offline: Arc<dyn OfflineStore>,
    trigger: Trigger,
) {
    let retrainer = state.retrainer.get().expect("the retrainer runs only once set");
    let started_at = Timestamp::now().to_rfc3339();
    let record = |outcome, version, candidate, champion, detail: String| RetrainRecord {
        trigger: trigger.clone(),
        started_at: started_at.clone(),
        finished_at: Timestamp::now().to_rfc3339(),
        outcome,
        version,
        candidate_roc_auc: candidate,
        champion_roc_auc: champion,
        detail,
    };
    let result = retrain_steps(&state, retrainer, &engine, &offline, &trigger).await;
    let finished = match result {
        Ok(Finished {
            outcome,
            version,
            candidate,
            champion,
            detail,
        }) => record(outcome, version, candidate, champion, detail),
        Err(error) => record("failed", None, None, None, error),
    };
    retrainer.finish(finished);
}

struct Finished {
    outcome: &'static str,
    version: Option<u32>,
    candidate: Option<f64>,
    champion: Option<f64>,
    detail: String,
}

async fn retrain_steps(
    state: &Arc<AppState>,
    retrainer: &Retrainer,
    engine: &FeatureEngine,
    offline: &Arc<dyn OfflineStore>,
    trigger: &Trigger,
) -> Result<Finished, String> {
    let settings = &retrainer.settings;
    let control = state.control.get().ok_or("the registry is not open")?;
    let mut training = TrainingConfig::from_settings(&state.model_settings, &state.gate_settings)
        .map_err(|e| e.to_string())?;
    training.monitor = state.data_drift.config().clone();
    // A drift trigger trains on the new world: events since the detection, less the lookback.
    let from = trigger.is_drift().then(|| {
        let detected = state.latest_event_time();
        Timestamp(detected.micros() - (settings.lookback_seconds * 1e6) as i64)
    });
    training.window = TrainingWindow { from, to: None };
    training.last_events = Some(settings.max_events);
    let labelled = wait_for_labels(retrainer, engine, offline, trigger, training.window).await?;
    if labelled < settings.min_labels {
        return Ok(Finished {
            outcome: "gave_up",
            version: None,
            candidate: None,
            champion: None,
            detail: format!(
                "{labelled} of the {} labelled events needed arrived within {} s",
                settings.min_labels, settings.max_wait_seconds
            ),
        });
    }
    retrainer.set_state(RetrainState::Training {
        trigger: trigger.clone(),
    });
    let (fit_engine, fit_offline, fit_config) = (engine.clone(), offline.clone(), training.clone());
    let candidate = tokio::task::spawn_blocking(move || {
        fit_candidate(&fit_config, fit_offline.as_ref(), &fit_engine, &mut |_| {})
    })
    .await
    .map_err(|e| format!("training task: {e}"))?
    .map_err(|e| format!("training: {e}"))?;
    let outcome = judge_and_register(
        candidate,
        &training,
        control.registry.as_ref(),
        &control.artifacts,
        AliasPolicy::None,
        ACTOR,
    )
    .await
    .map_err(|e| format!("registering: {e}"))?;
    let version = outcome.version.version;
    let (candidate_auc, champion_auc) = aucs(&outcome);
    control
        .registry
        .set_tag(&control.model, version, "trigger", &trigger.describe(), ACTOR)
        .await
        .map_err(|e| format!("tagging v{version}: {e}"))?;
    let finished = |outcome, detail| Finished {
        outcome,
        version: Some(version),
        candidate: candidate_auc,
        champion: champion_auc,
        detail,
    };
    if !outcome.passed() {
        return Ok(finished(
            "rejected",
            format!(
                "v{version} rejected by the gates: {}",
                outcome.card.gates.summary()
            ),
        ));
    }
    let comparison = compare(candidate_auc, champion_auc);
    let plan = rollout_plan(&state.rollout_plan, trigger);
    if settings.rollout {
        controller::record_start(control, version, Some(&plan), plan.steps[0])
            .await
            .map_err(|e| format!("recording v{version}'s rollout plan: {e}"))?;
    }
    control
        .registry
        .set_alias(
            &control.model,
            CHALLENGER,
            version,
            &format!("retrained on {}; {comparison}", trigger.describe()),
            ACTOR,
        )
        .await
        .map_err(|e| format!("making v{version} challenger: {e}"))?;
    reload(state, control).await;
    if !settings.rollout {
        return Ok(finished(
            "registered",
            format!("v{version} is challenger ({comparison}); automatic rollout is off"),
        ));
    }
    retrainer.set_state(RetrainState::RollingOut {
        trigger: trigger.clone(),
        version,
    });
    rollout::run(state.clone(), version, plan, 0).await;
    // The controller's watch may have started it first: either way, wait for its end.
    let status = rollout::finished(state, version).await;
    Ok(match status {
        RolloutStatus::Promoted { .. } => finished("promoted", format!("v{version} promoted ({comparison})")),
        RolloutStatus::RolledBack { reason, .. } => {
            finished("rolled_back", format!("{reason} ({comparison})"))
        }
        other => finished("failed", format!("the rollout of v{version} ended as {other:?}")),
    })
}

/// Polls the training window until it holds `min_labels` labelled events or the wait is
/// over; returns how many it holds.
async fn wait_for_labels(
    retrainer: &Retrainer,
    engine: &FeatureEngine,
    offline: &Arc<dyn OfflineStore>,
    trigger: &Trigger,
    window: TrainingWindow,
) -> Result<u64, String> {
    let settings = &retrainer.settings;
    let deadline = Instant::now() + Duration::from_secs_f64(settings.max_wait_seconds);
    loop {
        let (engine, offline) = (engine.clone(), offline.clone());
        let labelled = tokio::task::spawn_blocking(move || {
            collect(
                offline.as_ref(),
                &engine,
                window,
                &mut RecentRows::none(),
                &mut |_| {},
            )
            .map(|(rows, _)| rows.len() as u64)
        })
        .await
        .map_err(|e| format!("counting labels: {e}"))?
        .map_err(|e| format!("counting labels: {e}"))?;
        if labelled >= settings.min_labels || Instant::now() >= deadline {
            return Ok(labelled);
        }
        retrainer.set_state(RetrainState::WaitingForLabels {
            trigger: trigger.clone(),
            labelled,
            needed: settings.min_labels,
        });
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}

/// The configured plan, except after concept drift: the champion is then known to be
/// wrong, so disagreeing with it is no evidence against the challenger; every step waits
/// for the labelled AUC comparison instead.
fn rollout_plan(configured: &RolloutPlan, trigger: &Trigger) -> RolloutPlan {
    let mut plan = configured.clone();
    if matches!(trigger, Trigger::ConceptDrift { .. }) {
        plan.max_disagreement = 1.0;
        plan.require_labels = true;
    }
    plan
}

fn aucs(outcome: &TrainOutcome) -> (Option<f64>, Option<f64>) {
    let champion = outcome
        .card
        .champion
        .as_ref()
        .and_then(|c| c.holdout.as_ref())
        .and_then(|m| m.roc_auc);
    (outcome.card.holdout.roc_auc, champion)
}

fn compare(candidate: Option<f64>, champion: Option<f64>) -> String {
    let show = |x: Option<f64>| x.map_or("undefined".to_string(), |v| format!("{v:.4}"));
    format!(
        "holdout ROC AUC {} against the champion's {} on the same rows",
        show(candidate),
        show(champion)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn triggers(settings: &RetrainSettings, signals: &mut Signals) -> Option<Trigger> {
        Triggers { settings, signals }.next(Instant::now(), None, None)
    }

    #[test]
    fn a_concept_change_that_is_not_harmful_is_not_a_vote() {
        let retrainer = Retrainer::new(RetrainSettings::default());
        retrainer.observe_concept_drift("adwin", 0.07, false);
        retrainer.observe_concept_drift("ddm", 0.07, false);
        assert_eq!(retrainer.next_trigger(), None);
        retrainer.observe_concept_drift("adwin", 0.08, true);
        retrainer.observe_concept_drift("ddm", 0.081, true);
        assert_eq!(retrainer.next_trigger().map(|t| t.kind()), Some("concept_drift"));
    }

    #[test]
    fn concept_drift_needs_two_detectors_agreeing_within_a_minute() {
        let settings = RetrainSettings::default();
        let now = Instant::now();
        let long_ago = now - CONCEPT_VOTE_WINDOW - Duration::from_secs(1);
        let mut signals = Signals {
            concept_drifts: vec![
                (long_ago, "adwin".into(), 0.1),
                (now, "ddm".into(), 0.2),
                (now, "ddm".into(), 0.2),
            ],
            ..Signals::default()
        };
        let mut t = Triggers {
            settings: &settings,
            signals: &mut signals,
        };
        assert_eq!(
            t.next(now, None, None),
            None,
            "DDM twice and a stale ADWIN are one vote"
        );
        t.signals.concept_drifts.push((now, "page_hinkley".into(), 0.3));
        assert_eq!(
            t.next(now, None, None),
            Some(Trigger::ConceptDrift {
                detector: "ddm and page_hinkley".into(),
                error_rate: 0.3
            })
        );
        assert!(t.signals.concept_drifts.is_empty());
    }

    /// A retrainer fed `evaluations` (drifted, observed_total) of a 4,000-row window.
    fn fed(evaluations: &[(bool, u64)]) -> Retrainer {
        let retrainer = Retrainer::new(RetrainSettings::default());
        for &(drifted, observed) in evaluations {
            retrainer.observe_data_drift(drifted, 0.6, observed, 4_000);
        }
        retrainer
    }

    fn next_trigger(retrainer: &Retrainer) -> Option<Trigger> {
        let settings = RetrainSettings::default();
        triggers(&settings, &mut retrainer.signals.lock().unwrap())
    }

    #[test]
    fn data_drift_triggers_after_the_configured_streak_once_it_spans_a_window() {
        let expected = Some(Trigger::DataDrift {
            windows: 3,
            share: 0.6,
        });
        // Two evaluations: too short a streak, however many predictions it spans.
        assert_eq!(next_trigger(&fed(&[(true, 10_000), (true, 20_000)])), None);
        // Many evaluations of nearly the same window (slow traffic): a blip, not yet.
        let slow: Vec<(bool, u64)> = (0..20).map(|i| (true, 10_000 + i * 150)).collect();
        assert_eq!(next_trigger(&fed(&slow)), None);
        // The same streak once a whole window of new predictions has passed.
        let retrainer = fed(&[(true, 10_000), (true, 12_000), (true, 14_000)]);
        assert_eq!(next_trigger(&retrainer), expected);
        assert_eq!(next_trigger(&retrainer), None, "the streak was consumed");
        // A stable evaluation restarts the count of predictions as well.
        let broken = fed(&[
            (true, 10_000),
            (true, 13_000),
            (false, 14_000),
            (true, 14_500),
            (true, 16_000),
            (true, 18_000),
        ]);
        assert_eq!(next_trigger(&broken), None);
        broken.observe_data_drift(true, 0.6, 18_500, 4_000);
        assert_eq!(next_trigger(&broken), expected);
    }

    #[test]
    fn cooldown_and_the_switch_hold_automatic_triggers_but_not_a_person() {
        let settings = RetrainSettings::default();
        let now = Instant::now();
        let mut signals = Signals {
            concept_drifts: vec![(now, "adwin".into(), 0.3), (now, "ddm".into(), 0.3)],
            ..Signals::default()
        };
        let cooling = Some(now + Duration::from_secs(60));
        let mut t = Triggers {
            settings: &settings,
            signals: &mut signals,
        };
        assert_eq!(t.next(now, cooling, None), None);
        assert!(
            t.signals.concept_drifts.is_empty(),
            "drifts seen while cooling down are dropped"
        );
        t.signals.manual = Some("new labels".into());
        assert_eq!(
            t.next(now, cooling, None),
            Some(Trigger::Manual {
                reason: "new labels".into()
            })
        );
        let off = RetrainSettings {
            enabled: false,
            ..RetrainSettings::default()
        };
        let mut signals = Signals {
            concept_drifts: vec![(now, "adwin".into(), 0.3), (now, "ddm".into(), 0.3)],
            ..Signals::default()
        };
        assert_eq!(triggers(&off, &mut signals), None);
    }

    #[test]
    fn concept_drift_comes_before_data_drift_and_schedules_repeat() {
        let settings = RetrainSettings {
            schedule_seconds: 10.0,
            ..RetrainSettings::default()
        };
        let now = Instant::now();
        let mut signals = Signals {
            data_drift_streak: 5,
            data_drift_share: 0.5,
            data_drift_predictions: 5_000,
            data_drift_window: 4_000,
            concept_drifts: vec![(now, "page_hinkley".into(), 0.2), (now, "adwin".into(), 0.2)],
            ..Signals::default()
        };
        assert_eq!(triggers(&settings, &mut signals).unwrap().kind(), "concept_drift");
        assert_eq!(triggers(&settings, &mut signals).unwrap().kind(), "data_drift");
        let mut t = Triggers {
            settings: &settings,
            signals: &mut signals,
        };
        assert_eq!(t.next(now, None, None), Some(Trigger::Schedule));
        assert_eq!(t.next(now, None, Some(now - Duration::from_secs(5))), None);
        assert_eq!(
            t.next(now, None, Some(now - Duration::from_secs(10))),
            Some(Trigger::Schedule)
        );
    }
}

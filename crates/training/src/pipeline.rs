//! The training pipeline: history → labelled rows → split → fit → evaluate → profile →
//! gates against the champion → artifact → registry → alias.
//!
//! Key decision: two halves. [`fit_candidate`] is synchronous, CPU-bound and touches no
//! registry, so a server can run it on a blocking thread; [`judge_and_register`] is the
//! short async half that compares with the champion on the *same holdout rows*, stores
//! the artifact and registers the version, as `rejected` when a gate fails (kept for the
//! audit trail, never aliasable).

use std::time::Instant;

use driftline_core::config::SplitKind;
use driftline_core::features::FeatureSpec;
use driftline_core::profile::{ProfileParams, ReferenceProfile, WindowSpread, hour_of};
use driftline_drift::monitor::{MonitorConfig, ReferenceRows, SPREAD_ROWS, measure_window_spread};
use driftline_features::compute::FeatureEngine;
use driftline_features::offline::OfflineStore;
use driftline_models::dataset::Dataset;
use driftline_models::estimator::{EstimatorParams, FittedModel};
use driftline_models::metrics::Metrics;
use driftline_models::model::Model;
use driftline_registry::{
    ArtifactStore, CHALLENGER, CHAMPION, Lineage, ModelVersion, NewVersion, Registry, RegistryError,
    VersionStatus,
};

use crate::bundle::{BUNDLE_FORMAT_VERSION, ModelBundle};
use crate::card::{ChampionComparison, DataSummary, ModelCard};
use crate::config::TrainingConfig;
use crate::error::TrainError;
use crate::rows::{LabelledRows, RecentEvents, RecentRows, Split, collect};

/// Where a training run is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress {
    /// Replaying history: events so far.
    Replaying(u64),
    /// Fitting on this many rows.
    Fitting(u64),
    /// Scoring, profiling and judging.
    Evaluating,
}

/// A fitted, evaluated model not yet judged against the champion or registered.
#[derive(Debug, Clone)]
pub struct Candidate {
    /// The artifact to store.
    pub bundle: ModelBundle,
    /// The card so far (champion comparison and gates are filled in by judging).
    pub card: ModelCard,
    /// The holdout rows, on which the champion is scored too.
    pub holdout: Dataset,
    /// How it was trained.
    pub lineage: Lineage,
}

/// How a model's training rows are profiled: the defaults, split by the hour-of-day
/// feature when there is one (the monitor's seasonal reference).
pub fn profile_params(spec: &FeatureSpec) -> ProfileParams {
    ProfileParams {
        season_column: spec.hour_of_day_column().map(String::from),
        ..ProfileParams::default()
    }
}

/// Profiles the training rows (in time order) with their labels and scores.
pub fn profile_training_rows(
    rows: &LabelledRows,
    train: &Dataset,
    train_scores: &[f64],
    spec: &FeatureSpec,
) -> Result<ReferenceProfile, TrainError> {
    ReferenceProfile::fit_row_major(
        &rows.columns,
        &rows.kinds,
        train.features(),
        Some(train.labels()),
        Some(train_scores),
        &profile_params(spec),
    )
    .map_err(|e| TrainError::Data(format!("profiling the training rows: {e}")))
}

/// How far windows of `recent` (the latest events of the training window, labelled or
/// not, in `rows`' columns; `scores` the model's, one per row) drift from the rest by
/// `monitor`'s tests: the noise floor the drift monitor's thresholds stand above (see
/// `driftline_drift::monitor::measure_window_spread`). `None` when `recent` is too short
/// to hold a window in each held-out block.
///
/// Why the recent events and not the training rows: a model trained on the latest 100,000
/// labelled events would measure its floor on a few windows a block, and the floor would
/// follow how quiet those days happened to be (docs/drift.md: on 80,000 training rows one
/// column's spread came out 0.025 on one seed and 0.008 on another; on 400,000 events
/// the seeds agreed). The events are the training window's, the world the model was
/// trained for: a drift-triggered retraining's window starts at the detection, so its
/// floor never spans the change it answers.
///
/// `profile_rows`, the rows the monitored profile is fitted on, makes each held-out block
/// be judged against a profile of that many consecutive events beside it: the live
/// monitor compares with one period's profile, whose own sample of the users is part of
/// every live distance (docs/drift.md, session 9).
pub fn recent_window_spread(
    rows: &LabelledRows,
    recent: &RecentEvents,
    scores: &[f64],
    spec: &FeatureSpec,
    monitor: &MonitorConfig,
    profile_rows: Option<usize>,
) -> Result<Option<WindowSpread>, TrainError> {
    let params = profile_params(spec);
    let reference = ReferenceRows {
        columns: &rows.columns,
        kinds: &rows.kinds,
        rows: &recent.rows,
        scores: Some(scores),
        params: &params,
        profile_rows,
    };
    measure_window_spread(reference, monitor)
        .map_err(|e| TrainError::Data(format!("measuring the recent events' window spread: {e}")))
}

/// Measures the profile's hourly score calibration, per hour and per decision at
/// `decision_threshold` (see `driftline_core::profile::Seasons::calibrate`), over
/// `recent`'s labelled events (`columns` their columns, `scores` the model's), not only
/// the rows trained on: the concept-drift detectors expect errors from it, and a few
/// days hold ~100 fraud labels an hour, so the offsets of a short training window are
/// noisy enough to read as drift. Nothing changes when the profile has no strata.
pub fn calibrate_on_recent(
    profile: &mut ReferenceProfile,
    columns: &[String],
    recent: &RecentEvents,
    scores: &[f64],
    decision_threshold: f64,
) {
    let Some(seasons) = &mut profile.seasons else {
        return;
    };
    let Some(at) = columns.iter().position(|c| *c == seasons.column) else {
        return;
    };
    let width = columns.len();
    let scored = recent
        .labels
        .iter()
        .zip(scores)
        .enumerate()
        .filter_map(|(r, (label, &score))| Some((hour_of(recent.rows[r * width + at]), score, (*label)?)));
    seasons.calibrate(scored, decision_threshold);
}

/// Builds the training rows from `offline` history and fits, scores and profiles a model.
pub fn fit_candidate(
    config: &TrainingConfig,
    offline: &dyn OfflineStore,
    engine: &FeatureEngine,
    progress: &mut dyn FnMut(Progress),
) -> Result<Candidate, TrainError> {
    let mut recent = RecentRows::new(engine.spec().names().count(), SPREAD_ROWS);
    let (mut rows, summary) = collect(offline, engine, config.window, &mut recent, &mut |n| {
        progress(Progress::Replaying(n))
    })?;
    if let Some(n) = config.last_events {
        rows.keep_last(usize::try_from(n).unwrap_or(usize::MAX));
    }
    if rows.len() < 2 {
        return Err(TrainError::Data(format!(
            "{} labelled events in the training window ({} events replayed): ingest labelled \
             history first (driftline gen | driftline ingest)",
            rows.len(),
            summary.rows
        )));
    }
    let split = Split::new(&rows.labels, config.split, config.holdout_fraction, config.seed)?;
    let train = rows.dataset(&split.train)?;
    let holdout = rows.dataset(&split.holdout)?;
    // The datasets hold copies of every row; free the originals before fitting.
    rows.features = Vec::new();
    progress(Progress::Fitting(train.n_rows() as u64));
    let started = Instant::now();
    let model = config.estimator.fit(&train)?;
    let fit_seconds = started.elapsed().as_secs_f64();
    progress(Progress::Evaluating);
    let train_scores = model.predict_dataset(&train)?;
    let train_metrics = metrics(&train_scores, &train, config.decision_threshold)?;
    let holdout_metrics = metrics(
        &model.predict_dataset(&holdout)?,
        &holdout,
        config.decision_threshold,
    )?;
    let mut profile = profile_training_rows(&rows, &train, &train_scores, engine.spec())?;
    let recent = recent.into_events();
    let mut recent_scores = vec![0.0; recent.labels.len()];
    model.predict_proba(&recent.rows, &mut recent_scores)?;
    profile.window_spread = recent_window_spread(
        &rows,
        &recent,
        &recent_scores,
        engine.spec(),
        &config.monitor,
        Some(train.n_rows()),
    )?;
    calibrate_on_recent(
        &mut profile,
        &rows.columns,
        &recent,
        &recent_scores,
        config.decision_threshold,
    );
    profile
        .widen_ranges(&recent.rows)
        .map_err(|e| TrainError::Data(format!("widening the profile's ranges to the recent events: {e}")))?;
    let fingerprint = engine.spec().fingerprint();
    let data = data_summary(
        &rows,
        &split,
        config.split,
        summary.rows,
        train_metrics.label_rate,
    );
    let lineage = Lineage {
        data_from: data.first_event.clone(),
        data_to: data.last_event.clone(),
        events: summary.rows,
        rows_train: train.n_rows() as u64,
        rows_holdout: holdout.n_rows() as u64,
        label_rate: train_metrics.label_rate,
        feature_fingerprint: fingerprint.clone(),
        params: params_json(&config.estimator),
        driftline_version: env!("CARGO_PKG_VERSION").to_string(),
        seed: Some(config.seed),
        champion_at_training: None,
    };
    // The absolute gates for now; judging adds the comparison with the champion.
    let gates = config.gates.evaluate(&holdout_metrics, None);
    let card = ModelCard {
        estimator: model.kind().to_string(),
        params: params_json(&config.estimator),
        fit: fit_json(&model),
        holdout: holdout_metrics,
        train: train_metrics,
        champion: None,
        gates,
        data,
        fit_seconds,
    };
    let bundle = ModelBundle {
        format_version: BUNDLE_FORMAT_VERSION,
        driftline_version: env!("CARGO_PKG_VERSION").to_string(),
        feature_fingerprint: fingerprint,
        decision_threshold: config.decision_threshold,
        model,
        profile,
    };
    Ok(Candidate {
        bundle,
        card,
        holdout,
        lineage,
    })
}

fn metrics(scores: &[f64], data: &Dataset, threshold: f64) -> Result<Metrics, TrainError> {
    Metrics::compute(scores, data.labels(), threshold)
        .map_err(|e| TrainError::Data(format!("evaluating: {e}")))
}

fn data_summary(
    rows: &LabelledRows,
    split: &Split,
    kind: SplitKind,
    events: u64,
    label_rate: f64,
) -> DataSummary {
    let time = |i: Option<&usize>| i.map(|&i| rows.times[i].to_rfc3339());
    DataSummary {
        events,
        labelled: rows.len() as u64,
        rows_train: split.train.len() as u64,
        rows_holdout: split.holdout.len() as u64,
        label_rate,
        split: match kind {
            SplitKind::Time => "time".into(),
            SplitKind::Stratified => "stratified".into(),
        },
        first_event: rows.times.first().map(|t| t.to_rfc3339()),
        last_event: rows.times.last().map(|t| t.to_rfc3339()),
        holdout_from: match kind {
            SplitKind::Time => time(split.holdout.first()),
            SplitKind::Stratified => None,
        },
    }
}

fn params_json(params: &EstimatorParams) -> serde_json::Value {
    serde_json::to_value(params).expect("parameters serialise")
}

fn fit_json(model: &FittedModel) -> serde_json::Value {
    let summary = match model {
        FittedModel::Logistic(m) => serde_json::to_value(m.fit_summary()),
        FittedModel::Gbt(m) => serde_json::to_value(m.fit_summary()),
    };
    summary.expect("fit summaries serialise")
}

/// Which alias a version that passes its gates receives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AliasPolicy {
    /// `champion` when the model has none yet, `challenger` otherwise.
    #[default]
    Auto,
    /// `champion` straight away (the previous one stays in the audit log for rollback).
    Champion,
    /// `challenger`.
    Challenger,
    /// None: only registered.
    None,
}

/// What a training run ended with.
#[derive(Debug, Clone)]
pub struct TrainOutcome {
    /// The registered version (status `rejected` when a gate failed).
    pub version: ModelVersion,
    /// Its card.
    pub card: ModelCard,
    /// The alias it received, if any.
    pub alias: Option<&'static str>,
}

impl TrainOutcome {
    /// Whether every gate passed.
    pub fn passed(&self) -> bool {
        self.card.gates.passed
    }
}

/// Scores the champion on the candidate's holdout, runs the gates, stores the artifact and
/// registers the version (rejected when a gate failed), then sets the alias `policy` says.
pub async fn judge_and_register(
    mut candidate: Candidate,
    config: &TrainingConfig,
    registry: &dyn Registry,
    artifacts: &ArtifactStore,
    policy: AliasPolicy,
    actor: &str,
) -> Result<TrainOutcome, TrainError> {
    let champion = match registry.champion(&config.name).await {
        Err(RegistryError::ModelNotFound { .. }) => None,
        other => other?,
    };
    let comparison = match &champion {
        Some(version) => Some(compare_with(version, &candidate, artifacts).await?),
        None => None,
    };
    let champion_metrics = comparison.as_ref().and_then(|c| c.holdout.as_ref());
    let gates = config.gates.evaluate(&candidate.card.holdout, champion_metrics);
    candidate.card.champion = comparison;
    candidate.card.gates = gates;
    candidate.lineage.champion_at_training = champion.as_ref().map(|v| v.version);
    let card = candidate.card;
    let artifact = artifacts.put(&config.name, candidate.bundle.to_bytes()).await?;
    let passed = card.gates.passed;
    let new = NewVersion {
        model: config.name.clone(),
        status: if passed {
            VersionStatus::Registered
        } else {
            VersionStatus::Rejected
        },
        artifact,
        card: serde_json::to_value(&card).expect("cards serialise"),
        lineage: candidate.lineage,
        tags: Default::default(),
        reason: verdict(&card),
        actor: actor.to_string(),
    };
    let version = registry.register(new).await?;
    let alias = if passed {
        set_alias(registry, &version, champion.is_some(), policy, &card, actor).await?
    } else {
        None
    };
    Ok(TrainOutcome { version, card, alias })
}

async fn compare_with(
    champion: &ModelVersion,
    candidate: &Candidate,
    artifacts: &ArtifactStore,
) -> Result<ChampionComparison, TrainError> {
    let bundle = load_bundle(champion, artifacts).await?;
    let (holdout, note) = if bundle.model.columns() != candidate.holdout.columns() {
        let note = format!(
            "champion v{} was trained on other feature columns, so it cannot score this holdout; \
             the no-worse-than-champion gate was not applied",
            champion.version
        );
        (None, Some(note))
    } else {
        let scores = bundle.model.predict_dataset(&candidate.holdout)?;
        (
            Some(metrics(
                &scores,
                &candidate.holdout,
                candidate.card.holdout.threshold,
            )?),
            None,
        )
    };
    Ok(ChampionComparison {
        version: champion.version,
        holdout,
        note,
    })
}

/// The audit-log reason of a registration.
fn verdict(card: &ModelCard) -> String {
    let auc = card
        .holdout
        .roc_auc
        .map_or("undefined".into(), |v| format!("{v:.4}"));
    let ap = card
        .holdout
        .average_precision
        .map_or("undefined".into(), |v| format!("{v:.4}"));
    let measured = format!("holdout ROC AUC {auc}, average precision {ap}");
    if card.gates.passed {
        format!("passed the gates: {measured}")
    } else {
        format!("rejected by the gates: {}", card.gates.summary())
    }
}

async fn set_alias(
    registry: &dyn Registry,
    version: &ModelVersion,
    has_champion: bool,
    policy: AliasPolicy,
    card: &ModelCard,
    actor: &str,
) -> Result<Option<&'static str>, TrainError> {
    let alias = match policy {
        AliasPolicy::None => return Ok(None),
        AliasPolicy::Auto if !has_champion => CHAMPION,
        AliasPolicy::Champion => CHAMPION,
        AliasPolicy::Auto | AliasPolicy::Challenger => CHALLENGER,
    };
    let reason = match (alias, has_champion) {
        (CHAMPION, false) => format!("first model to pass the gates; {}", verdict(card)),
        (CHAMPION, true) => format!("trained with --promote; {}", verdict(card)),
        _ => format!("candidate for the champion; {}", verdict(card)),
    };
    registry
        .set_alias(&version.model, alias, version.version, &reason, actor)
        .await?;
    Ok(Some(alias))
}

/// Loads and checks a registered version's bundle (its sha256 verified by the store).
pub async fn load_bundle(
    version: &ModelVersion,
    artifacts: &ArtifactStore,
) -> Result<ModelBundle, TrainError> {
    ModelBundle::from_bytes(&artifacts.get(&version.artifact).await?)
}

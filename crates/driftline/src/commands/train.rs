//! `driftline train`: fit a model on offline history, judge it, register it.

use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, ValueEnum};
use driftline_core::config::{Config, SplitKind};
use driftline_core::time::Timestamp;
use driftline_drift::monitor::MonitorConfig;
use driftline_features::compute::FeatureEngine;
use driftline_features::offline::open_store;
use driftline_features::paths::DataPaths;
use driftline_models::estimator::EstimatorParams;
use driftline_models::metrics::Metrics;
use driftline_training::card::ModelCard;
use driftline_training::config::TrainingConfig;
use driftline_training::pipeline::{AliasPolicy, Progress, TrainOutcome, fit_candidate, judge_and_register};

use super::registry::Models;
use super::{emit, progress_bar, thousands};
use crate::settings::UsageError;

#[derive(Args, Debug)]
pub struct TrainArgs {
    /// The estimator, with its default parameters (overrides [model.estimator]).
    #[arg(long, value_enum)]
    estimator: Option<EstimatorKind>,
    /// First event time trained on (RFC 3339). Overrides model.from.
    #[arg(long, value_name = "TS")]
    from: Option<Timestamp>,
    /// First event time not trained on (RFC 3339). Overrides model.to.
    #[arg(long, value_name = "TS")]
    to: Option<Timestamp>,
    /// Train on only the most recent N labelled events. Overrides model.last_events.
    #[arg(long, value_name = "N")]
    last: Option<u64>,
    /// How the holdout is chosen. Overrides model.split.
    #[arg(long, value_enum)]
    split: Option<SplitArg>,
    /// Make the new version champion at once if it passes the gates (default: champion
    /// only when there is none, else challenger).
    #[arg(long, conflicts_with = "no_alias")]
    promote: bool,
    /// Register the version without giving it an alias.
    #[arg(long)]
    no_alias: bool,
    /// Print the registered version and its card as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(ValueEnum, Clone, Copy, Debug)]
enum EstimatorKind {
    Logistic,
    Gbt,
}

#[derive(ValueEnum, Clone, Copy, Debug)]
enum SplitArg {
    Time,
    Stratified,
}

pub fn run(config: Config, args: TrainArgs) -> anyhow::Result<ExitCode> {
    let training = training_config(&config, &args)?;
    let paths = DataPaths::new(config.settings.data_dir());
    let engine = FeatureEngine::from_config(&config);
    let offline = open_store(&config, &paths).context("opening the offline store")?;
    let models = Models::open(&config)?;
    let bar = progress_bar(None, "replaying");
    let candidate = fit_candidate(&training, offline.as_ref(), &engine, &mut |p| match p {
        Progress::Replaying(n) => bar.set_position(n),
        Progress::Fitting(rows) => bar.set_message(format!("fitting {} rows", thousands(rows))),
        Progress::Evaluating => bar.set_message("evaluating"),
    });
    bar.finish_and_clear();
    let candidate = candidate.map_err(|e| UsageError(format!("training {}: {e}", training.name)))?;
    let policy = match (args.promote, args.no_alias) {
        (true, _) => AliasPolicy::Champion,
        (_, true) => AliasPolicy::None,
        _ => AliasPolicy::Auto,
    };
    let outcome = models
        .runtime
        .block_on(judge_and_register(
            candidate,
            &training,
            models.registry.as_ref(),
            &models.artifacts,
            policy,
            "driftline train",
        ))
        .with_context(|| format!("registering {}", training.name))?;
    if args.json {
        emit(&serde_json::to_string_pretty(&outcome.version)?)?;
    } else {
        emit(&narrate(&outcome))?;
    }
    if outcome.passed() {
        Ok(ExitCode::SUCCESS)
    } else {
        eprintln!(
            "error: {} v{} was rejected by the gates (kept as rejected for the audit trail): {}",
            outcome.version.model,
            outcome.version.version,
            outcome.card.gates.summary()
        );
        Ok(ExitCode::from(1))
    }
}

/// `[model]` with the flags applied on top.
fn training_config(config: &Config, args: &TrainArgs) -> anyhow::Result<TrainingConfig> {
    let mut training = TrainingConfig::from_settings(&config.settings.model, &config.settings.gates)
        .map_err(|e| UsageError(e.to_string()))?;
    training.monitor = MonitorConfig::from_settings(&config.settings.drift);
    match args.estimator {
        Some(EstimatorKind::Logistic) if training.estimator.kind() != "logistic" => {
            training.estimator = EstimatorParams::Logistic(Default::default());
        }
        Some(EstimatorKind::Gbt) if training.estimator.kind() != "gbt" => {
            training.estimator = EstimatorParams::Gbt(driftline_models::gbt::GbtParams {
                seed: training.seed,
                ..Default::default()
            });
        }
        _ => {}
    }
    if args.from.is_some() {
        training.window.from = args.from;
    }
    if args.to.is_some() {
        training.window.to = args.to;
    }
    if let Some(n) = args.last {
        if n == 0 {
            return Err(UsageError("--last must be at least 1".into()).into());
        }
        training.last_events = Some(n);
    }
    match args.split {
        Some(SplitArg::Time) => training.split = SplitKind::Time,
        Some(SplitArg::Stratified) => training.split = SplitKind::Stratified,
        None => {}
    }
    Ok(training)
}

fn narrate(outcome: &TrainOutcome) -> String {
    let (v, card) = (&outcome.version, &outcome.card);
    let mut lines = vec![format!(
        "{} v{} ({}) trained on {} rows in {:.2} s, evaluated on {} holdout rows ({} split{})",
        v.model,
        v.version,
        card.estimator,
        thousands(card.data.rows_train),
        card.fit_seconds,
        thousands(card.data.rows_holdout),
        card.data.split,
        card.data
            .holdout_from
            .as_deref()
            .map(|t| format!(", from {t}"))
            .unwrap_or_default(),
    )];
    lines.push(format!("  holdout:  {}", metrics_line(&card.holdout)));
    if let Some(champion) = &card.champion {
        match (&champion.holdout, &champion.note) {
            (Some(m), _) => lines.push(format!(
                "  champion v{} on the same rows: {}",
                champion.version,
                metrics_line(m)
            )),
            (None, Some(note)) => lines.push(format!("  champion: {note}")),
            (None, None) => {}
        }
    }
    lines.push(gates_line(card));
    lines.push(match outcome.alias {
        Some(alias) => format!("  alias:    {alias} -> v{}", v.version),
        None if card.gates.passed => "  alias:    none (--no-alias)".into(),
        None => format!("  status:   rejected (v{} kept for the audit trail)", v.version),
    });
    lines.join("\n")
}

fn metrics_line(m: &Metrics) -> String {
    let opt = |v: Option<f64>| v.map_or("n/a".into(), |v| format!("{v:.4}"));
    format!(
        "ROC AUC {}  avg precision {}  log loss {:.4}  Brier {:.4}  ECE {:.4}  label rate {:.3}",
        opt(m.roc_auc),
        opt(m.average_precision),
        m.log_loss,
        m.brier_score,
        m.expected_calibration_error,
        m.label_rate
    )
}

fn gates_line(card: &ModelCard) -> String {
    let checks: Vec<String> = card
        .gates
        .checks
        .iter()
        .map(|c| format!("{} {}", if c.passed { "ok" } else { "FAILED" }, c.reason))
        .collect();
    format!(
        "  gates:    {}\n            {}",
        if card.gates.passed { "passed" } else { "FAILED" },
        checks.join("\n            ")
    )
}

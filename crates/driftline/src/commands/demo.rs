//! `driftline demo`: the pipeline built so far, end to end on a fresh synthetic stream,
//! narrated. Generates events into the embedded log (with a few malformed records mixed
//! in), ingests them, shows one user's live feature vector, writes a point-in-time
//! training set, trains a baseline champion on the history before the drift, then
//! retrains on the drifted history and shows the gates judge both on the same holdout.
//!
//! Key decision: the demo owns `<data-dir>/demo` and starts it afresh each run, so it
//! never touches the user's own data and always tells the same story for a seed.

use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context;
use clap::Args;
use driftline_core::config::Config;
use driftline_core::time::Timestamp;
use driftline_features::compute::FeatureEngine;
use driftline_features::offline::ParquetOfflineStore;
use driftline_features::paths::DataPaths;
use driftline_features::training::TrainingWindow;
use driftline_models::metrics::Metrics;
use driftline_stream::generator::Scenario;
use driftline_stream::log::LogWriter;
use driftline_training::config::TrainingConfig;
use driftline_training::pipeline::{AliasPolicy, TrainOutcome, fit_candidate, judge_and_register};

use super::generate::{GenArgs, log_config};
use super::registry::Models;
use super::{emit, thousands};

#[derive(Args, Debug)]
pub struct DemoArgs {
    /// Drift scenario of the synthetic stream: none, covariate, categorical, concept or
    /// quality.
    #[arg(long, default_value = "concept")]
    pub scenario: Scenario,
    /// Number of events to generate.
    #[arg(long, default_value_t = 200_000)]
    pub events: u64,
    /// Seed of the synthetic stream.
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
}

const MALFORMED: [&str; 3] = [
    r#"{"user_id":"user-00001","transaction_amount":-5,"country":"XX","device":"ios","event_ts":"2024-03-01T00:00:00Z"}"#,
    r#"{"user_id":"user-00002","transaction_amount":12.5,"country":"US","device":"web""#,
    r#"{"event_id":"demo-bad-0003","transaction_amount":"lots","country":"DE","device":"tablet","event_ts":"soon"}"#,
];

pub fn run(mut config: Config, args: DemoArgs) -> anyhow::Result<ExitCode> {
    let root = config.settings.data_dir().join("demo");
    if root.exists() {
        std::fs::remove_dir_all(&root)
            .with_context(|| format!("clearing the previous demo in {}", root.display()))?;
    }
    config.settings.data_dir = Some(root.clone());
    let paths = DataPaths::new(&root);
    let started = Instant::now();
    say(&started, &format!("driftline demo in {}", root.display()))?;

    let stream = GenArgs {
        count: args.events,
        seed: args.seed,
        users: 2_000,
        scenario: args.scenario,
        onset: args.events / 2,
        ramp: args.events / 20,
        rate: None,
        start: None,
        out_of_order: 0.01,
        out: None,
        to: None,
        format: None,
    };
    let mut generator = driftline_stream::generator::Generator::new(stream.generator_config())?;
    let drift = append_generated(
        &mut generator,
        &paths,
        &config,
        args.events,
        stream.onset,
        stream.ramp,
    )?;
    say(
        &started,
        &format!(
            "generated {} transactions from 2,000 users ({} drift from event {}, 1% out of order) plus {} malformed records",
            thousands(args.events),
            args.scenario,
            thousands(stream.onset),
            MALFORMED.len()
        ),
    )?;

    let summary = super::ingest::ingest(config.clone(), &paths, "log", false, true)?;
    for line in summary.lines() {
        say(&started, line)?;
    }

    let user = busiest_user(&paths)?;
    let vector = super::features::get(config.clone(), &paths, &user, None)?;
    let features = &vector["features"];
    say(
        &started,
        &format!(
            "{user}'s live features as of {}: {} transactions in the last hour, {} in 24h (mean amount {:.2}), {} countries and {} devices in 7d",
            vector["as_of"].as_str().unwrap_or_default(),
            count(&features["transaction_amount_count_1h"]),
            count(&features["transaction_amount_count_24h"]),
            features["transaction_amount_mean_24h"]
                .as_f64()
                .unwrap_or(f64::NAN),
            count(&features["country_distinct_count_7d"]),
            count(&features["device_distinct_count_7d"]),
        ),
    )?;

    let out = root.join("training-set.parquet");
    let training = super::features::training_set(&config, &paths, Default::default(), &out)?;
    say(
        &started,
        &format!(
            "point-in-time training set: {} rows x {} features, fraud rate {:.2}% -> {}",
            thousands(training.rows),
            config.features.len(),
            100.0 * training.positives as f64 / training.labelled.max(1) as f64,
            out.display()
        ),
    )?;
    if let Some((onset, drifted)) = drift {
        train_before_and_after(&config, onset, drifted, &started)?;
    }

    say(&started, "explore:")?;
    let dir = root.display();
    emit(&format!("    driftline --data-dir {dir} models list"))?;
    emit(&format!("    driftline --data-dir {dir} models show champion"))?;
    emit(&format!("    driftline --data-dir {dir} models audit"))?;
    emit(&format!("    driftline --data-dir {dir} features get {user}"))?;
    emit(&format!(
        "    driftline --data-dir {dir} features training-set --out rows.csv"
    ))?;
    emit(&format!("    head -3 {dir}/dead-letter.jsonl"))?;
    Ok(ExitCode::SUCCESS)
}

/// Trains the baseline on history before the drift's `onset` (it becomes champion), then a
/// candidate on the history since the drift is complete (`drifted`), judged against the
/// champion on the same recent rows.
fn train_before_and_after(
    config: &Config,
    onset: Timestamp,
    drifted: Timestamp,
    started: &Instant,
) -> anyhow::Result<()> {
    let mut training = TrainingConfig::from_settings(&config.settings.model, &config.settings.gates)?;
    let models = Models::open(config)?;
    let engine = FeatureEngine::from_config(config);
    let offline = ParquetOfflineStore::new(
        DataPaths::new(config.settings.data_dir()).offline(),
        config.contract.clone(),
    );
    for (window, what) in [
        (
            TrainingWindow {
                from: None,
                to: Some(onset),
            },
            "baseline on the history before the drift",
        ),
        (
            TrainingWindow {
                from: Some(drifted),
                to: None,
            },
            "retrained on the history since the drift",
        ),
    ] {
        training.window = window;
        let candidate = fit_candidate(&training, &offline, &engine, &mut |_| {})?;
        let outcome = models.runtime.block_on(judge_and_register(
            candidate,
            &training,
            models.registry.as_ref(),
            &models.artifacts,
            AliasPolicy::Auto,
            "driftline demo",
        ))?;
        say(started, &narrate_training(what, &outcome))?;
    }
    Ok(())
}

fn narrate_training(what: &str, outcome: &TrainOutcome) -> String {
    let auc = |m: Option<&Metrics>| {
        m.and_then(|m| m.roc_auc)
            .map_or("n/a".into(), |v| format!("{v:.3}"))
    };
    let card = &outcome.card;
    let champion = card.champion.as_ref().map_or(String::new(), |c| {
        format!(
            "; champion v{} scores {} on the same holdout",
            c.version,
            auc(c.holdout.as_ref())
        )
    });
    let verdict = match (card.gates.passed, outcome.alias) {
        (true, Some(alias)) => format!("passed the gates -> {alias}"),
        (true, None) => "passed the gates".into(),
        (false, _) => format!("rejected: {}", card.gates.summary()),
    };
    format!(
        "{} v{} ({}, {what}): {} rows, holdout ROC AUC {}{champion}: {verdict}",
        outcome.version.model,
        outcome.version.version,
        card.estimator,
        thousands(card.data.rows_train + card.data.rows_holdout),
        auc(Some(&card.holdout)),
    )
}

fn count(value: &serde_json::Value) -> u64 {
    value.as_f64().unwrap_or(0.0) as u64
}

fn say(started: &Instant, text: &str) -> anyhow::Result<()> {
    emit(&format!("[{:>6.2}s] {text}", started.elapsed().as_secs_f64()))
}

/// Appends `count` generated events (and the malformed records); returns the event times
/// of event number `onset` (counting from 0) and `onset + ramp`, when the drift starts and
/// when it is complete, if the stream reaches them.
fn append_generated(
    generator: &mut driftline_stream::generator::Generator,
    paths: &DataPaths,
    config: &Config,
    count: u64,
    onset: u64,
    ramp: u64,
) -> anyhow::Result<Option<(Timestamp, Timestamp)>> {
    let (mut started, mut complete) = (None, None);
    let mut writer =
        LogWriter::open(&paths.log(), log_config(config)).context("opening the demo event log")?;
    let now = chrono::Utc::now().timestamp_micros();
    let mut event = Default::default();
    let mut buf = Vec::new();
    let every = (count / (MALFORMED.len() as u64 + 1)).max(1);
    for i in 0..count {
        if i > 0 && i.is_multiple_of(every) {
            let bad = MALFORMED[(i / every - 1) as usize % MALFORMED.len()];
            writer.append(bad.as_bytes(), now)?;
        }
        generator.next_into(&mut event);
        if i == onset {
            started = event.event_ts.parse().ok();
        }
        if i == onset + ramp {
            complete = event.event_ts.parse().ok();
        }
        buf.clear();
        event.write_json(&mut buf);
        writer.append(&buf, now)?;
    }
    writer.flush()?;
    Ok(started.zip(complete))
}

/// The user with the most events in the log: the one with the richest story to show.
fn busiest_user(paths: &DataPaths) -> anyhow::Result<String> {
    let mut counts = std::collections::HashMap::<String, u64>::new();
    let mut reader = driftline_stream::log::LogReader::open(&paths.log())?;
    let mut batch = driftline_stream::log::RecordBatch::new();
    while reader.read_into(8192, &mut batch)? > 0 {
        for record in batch.iter() {
            if let Ok(value) = serde_json::from_slice::<serde_json::Value>(record.payload)
                && let Some(user) = value["user_id"].as_str()
            {
                *counts.entry(user.to_string()).or_default() += 1;
            }
        }
    }
    counts
        .into_iter()
        .max_by(|a, b| a.1.cmp(&b.1).then(b.0.cmp(&a.0)))
        .map(|(user, _)| user)
        .context("the demo log has no users")
}

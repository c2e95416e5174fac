//! `driftline features`: one entity's vector, or a point-in-time training set.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context;
use clap::Subcommand;
use driftline_core::config::{Config, OnlineBackend};
use driftline_core::time::Timestamp;
use driftline_features::compute::FeatureEngine;
use driftline_features::ingest::Ingestor;
use driftline_features::offline::open_store;
use driftline_features::online::OnlineStore;
use driftline_features::paths::DataPaths;
use driftline_features::redis::RedisOnlineStore;
use driftline_features::state::{AsOf, EntityState, EventKey};
use driftline_features::training::{TrainingSetWriter, TrainingSummary, TrainingWindow, replay};

use super::{emit, thousands};
use crate::settings::UsageError;

#[derive(Subcommand, Debug)]
pub enum FeaturesCommand {
    /// Print an entity's feature vector as JSON: as of its latest event (that event
    /// included), or as a request at --at would see it (events strictly before).
    Get {
        /// The entity id, e.g. user-00042.
        user_id: String,
        /// Point in time (RFC 3339).
        #[arg(long, value_name = "TS")]
        at: Option<Timestamp>,
    },
    /// Write a point-in-time correct training set: one row per event in [from, to),
    /// computed only from that entity's events strictly before it.
    TrainingSet {
        /// First event time included (RFC 3339). Default: the start of history.
        #[arg(long, value_name = "TS")]
        from: Option<Timestamp>,
        /// First event time excluded (RFC 3339). Default: the end of history.
        #[arg(long, value_name = "TS")]
        to: Option<Timestamp>,
        /// Output file: .parquet or .csv.
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
}

pub fn run(config: Config, command: FeaturesCommand) -> anyhow::Result<ExitCode> {
    let paths = DataPaths::new(config.settings.data_dir());
    match command {
        FeaturesCommand::Get { user_id, at } => {
            let json = get(config, &paths, &user_id, at)?;
            emit(&serde_json::to_string_pretty(&json)?)?;
        }
        FeaturesCommand::TrainingSet { from, to, out } => {
            let started = Instant::now();
            let summary = training_set(&config, &paths, TrainingWindow { from, to }, &out)?;
            emit(&format!(
                "wrote {} rows ({} labelled, {} positive) to {} in {:.2} s",
                thousands(summary.rows),
                thousands(summary.labelled),
                thousands(summary.positives),
                out.display(),
                started.elapsed().as_secs_f64()
            ))?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The vector of `user_id` as JSON, from state rebuilt from snapshot and log.
pub fn get(
    config: Config,
    paths: &DataPaths,
    user_id: &str,
    at: Option<Timestamp>,
) -> anyhow::Result<serde_json::Value> {
    let engine = FeatureEngine::from_config(&config);
    if config.settings.online_store.backend == OnlineBackend::Redis {
        let redis = &config.settings.redis;
        // Writer 0: this process only reads.
        let store = RedisOnlineStore::open(redis, 0).context("opening the Redis online store")?;
        let state = store
            .get(user_id)
            .with_context(|| format!("reading '{user_id}' from Redis"))?
            .filter(|s| !s.is_empty())
            .ok_or_else(|| {
                UsageError(format!(
                    "no state for '{user_id}' in Redis at {}",
                    store.describe()
                ))
            })?;
        return Ok(vector_json(&engine, &state, user_id, at));
    }
    let ingestor = Ingestor::restore(config, paths.clone()).context("rebuilding feature state")?;
    ingestor.store().with_state(user_id, |state| {
        let state = state
            .filter(|s| !s.is_empty())
            .ok_or_else(|| UsageError(format!("no events for '{user_id}' in {}", paths.root().display())))?;
        Ok(vector_json(&engine, state, user_id, at))
    })
}

/// The vector of a non-empty state as JSON: as of `at`, or through its latest event.
fn vector_json(
    engine: &FeatureEngine,
    state: &EntityState,
    user_id: &str,
    at: Option<Timestamp>,
) -> serde_json::Value {
    let (as_of, label) = match at {
        Some(ts) => (
            AsOf::Before(EventKey {
                ts: ts.micros(),
                id: 0,
            }),
            ts,
        ),
        None => {
            let latest = Timestamp(state.latest_key().expect("non-empty").ts);
            (AsOf::Through(latest), latest)
        }
    };
    let vector = engine.vector(state, None, as_of);
    serde_json::json!({
        "user_id": user_id,
        "as_of": label.to_rfc3339(),
        "events_considered": state.position(as_of),
        "features": vector.to_json(engine.spec()),
    })
}

pub fn training_set(
    config: &Config,
    paths: &DataPaths,
    window: TrainingWindow,
    out: &std::path::Path,
) -> anyhow::Result<TrainingSummary> {
    let engine = FeatureEngine::from_config(config);
    let offline = open_store(config, paths).context("opening the offline store")?;
    let mut writer = TrainingSetWriter::create(out, &config.contract, &engine)
        .with_context(|| format!("creating {}", out.display()))?;
    let summary = replay(offline.as_ref(), &engine, window, &mut |event, vector| {
        writer.write(event, vector)
    })
    .context("replaying offline history")?;
    writer
        .finish()
        .with_context(|| format!("writing {}", out.display()))?;
    Ok(summary)
}

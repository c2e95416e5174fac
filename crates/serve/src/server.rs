//! `driftline serve`: the embedded platform's server process. It ingests the event log
//! into the online store in-process, loads the registry's champion, hot-swaps it when an
//! alias changes (from this process, the CLI in another one, or a controller), and serves
//! the HTTP API.
//!
//! Key decision: in embedded mode the server owns the data directory's ingest (it takes
//! the ingest lock and follows the log on a thread), so the online state it reads is the
//! one ingest writes, with no copy and no network hop. A stop without a checkpoint loses
//! nothing: restart replays the log from the last checkpoint, as ingest always does. With
//! `[online_store] backend = "redis"` the server ingests nothing: `driftline ingest`
//! workers write state to Redis and every replica reads it there (events posted to
//! `/v1/events` still go to the data directory's log, for an `ingest --follow` on it), and
//! a label a replica cannot join travels over Redis to the replica that made the prediction.

use std::sync::Arc;
use std::time::Duration;

use driftline_core::config::{Config, OnlineBackend};
use driftline_drift::monitor::MonitorConfig;
use driftline_features::compute::FeatureEngine;
use driftline_features::ingest::Ingestor;
use driftline_features::offline::{OfflineStore, open_store};
use driftline_features::paths::DataPaths;
use driftline_features::redis::{RedisStateReader, subscribe_labels};
use driftline_stream::log::{LogConfig, LogReader};

use crate::api::app;
use crate::controller;
use crate::ingest::LogSink;
use crate::models::{Control, reload, watch_registry};
use crate::monitor::{self, ConceptWatch, DataWatch};
use crate::retrain::{self, Retrainer};
use crate::shadow::Shadow;
use crate::state::{AppState, OnlineState};

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// Opening or restoring feature state failed (another ingest holding the lock, say).
    #[error("starting ingest: {0}")]
    Ingest(String),
    /// The online store could not be set up (a bad `[redis]` setting, say).
    #[error("opening the online store: {0}")]
    OnlineStore(String),
    /// The registry or artifact store could not be opened.
    #[error(transparent)]
    Registry(#[from] driftline_registry::OpenError),
    /// The address could not be bound.
    #[error("listening on {addr}: {source}")]
    Bind {
        /// The address.
        addr: String,
        /// Why.
        source: std::io::Error,
    },
}

/// Starts everything and serves until `shutdown` completes.
pub async fn run(
    config: Config,
    addr: &str,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    let state = start(config).await?;
    let listener = bind(addr).await?;
    serve(listener, state, shutdown).await
}

/// Binds the listening socket.
pub async fn bind(addr: &str) -> Result<tokio::net::TcpListener, ServeError> {
    tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| ServeError::Bind {
            addr: addr.to_string(),
            source,
        })
}

/// Serves the API on `listener` until `shutdown` completes.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: Arc<AppState>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    let addr = listener
        .local_addr()
        .map_or_else(|_| "?".to_string(), |a| a.to_string());
    tracing::info!(%addr, "serving");
    axum::serve(listener, app(state))
        .with_graceful_shutdown(shutdown)
        .await
        .map_err(|source| ServeError::Bind { addr, source })
}

/// Starts the platform behind the API: ingest following the log, the registry's models
/// loaded and watched, the shadow queue, the retrainer. Returns the state the routes serve.
pub async fn start(config: Config) -> Result<Arc<AppState>, ServeError> {
    let data_dir = config.settings.data_dir();
    let paths = DataPaths::new(&data_dir);
    let engine = FeatureEngine::from_config(&config);
    let (store, ingestor) = open_online_state(&config, &paths).await?;
    let mut state = AppState::with_store(config.contract.clone(), engine, store);
    state.set_canary_ratio(config.settings.serve.canary_split);
    state.assignment = config.settings.serve.canary_assignment;
    state.admin_token = config.settings.serve.admin_token.clone();
    state.shadow_enabled = config.settings.serve.shadow_enabled;
    state.rollout_plan = config.settings.serve.rollout.clone();
    state.data_drift = DataWatch::new(MonitorConfig::from_settings(&config.settings.drift));
    state.concept = ConceptWatch::new(config.settings.retrain.concept_min_error_increase);
    state.model_settings = config.settings.model.clone();
    state.gate_settings = config.settings.gates.clone();
    state
        .retrainer
        .set(Retrainer::new(config.settings.retrain.clone()))
        .ok();
    let state = Arc::new(state);
    let shadow = Shadow::start(state.clone(), shadow_log(&data_dir));
    state.shadow.set(shadow).ok();
    state
        .log
        .set(LogSink::new(
            paths.log(),
            LogConfig::from_settings(&config.settings.log),
        ))
        .ok();
    if let Some(ingestor) = ingestor {
        state.metrics.observe_ingest(ingestor.next_offset(), 0, 0);
        follow_log(ingestor, paths.clone(), state.clone());
    } else {
        join_shared_labels(&config, state.clone())?;
    }
    let stores = driftline_registry::open(&config.settings).await?;
    let control = Control {
        registry: stores.registry,
        artifacts: stores.artifacts,
        model: config.settings.model.name.clone(),
    };
    reload(&state, &control).await;
    tokio::spawn(watch_registry(state.clone(), control.clone()));
    state.control.set(control.clone()).ok();
    tokio::spawn(controller::run(state.clone(), control));
    let offline = open_offline(&config, &paths).await?;
    tokio::spawn(monitor::run_evaluations(
        state.clone(),
        Duration::from_secs_f64(config.settings.drift.monitor.evaluate_interval_seconds),
    ));
    tokio::spawn(retrain::run(
        state.clone(),
        FeatureEngine::from_config(&config),
        offline,
    ));
    Ok(state)
}

/// The offline store the retrainer reads, opened off the async threads (a database
/// backend connects synchronously).
async fn open_offline(config: &Config, paths: &DataPaths) -> Result<Arc<dyn OfflineStore>, ServeError> {
    let (config, paths) = (config.clone(), paths.clone());
    tokio::task::spawn_blocking(move || open_store(&config, &paths))
        .await
        .map_err(|e| ServeError::Ingest(e.to_string()))?
        .map_err(|e| ServeError::Ingest(format!("opening the offline store: {e}")))
}

/// The store `/predict` reads and, in embedded mode, the ingest that keeps it fresh.
async fn open_online_state(
    config: &Config,
    paths: &DataPaths,
) -> Result<(OnlineState, Option<Ingestor>), ServeError> {
    match config.settings.online_store.backend {
        OnlineBackend::Embedded => {
            let ingestor = open_ingest(config, paths)?;
            Ok((OnlineState::Embedded(ingestor.store().clone()), Some(ingestor)))
        }
        OnlineBackend::Redis => {
            let reader = RedisStateReader::new(&config.settings.redis)
                .map_err(|e| ServeError::OnlineStore(e.to_string()))?;
            match reader.ping().await {
                Ok(()) => tracing::info!(redis = reader.address(), "reading online state from Redis"),
                Err(error) => tracing::warn!(
                    redis = reader.address(),
                    %error,
                    "Redis does not answer yet; predictions use request features alone until it does"
                ),
            }
            Ok((OnlineState::Redis(reader), None))
        }
    }
}

/// With Redis, labels other replicas could not join arrive on its labels channel; this
/// replica joins the ones whose prediction it made (see `features::redis::labels`).
fn join_shared_labels(config: &Config, state: Arc<AppState>) -> Result<(), ServeError> {
    subscribe_labels(&config.settings.redis, move |labels| {
        crate::api::join_labels(&state, &labels);
    })
    .map_err(|e| ServeError::OnlineStore(format!("starting the labels subscriber: {e}")))
}

fn open_ingest(config: &Config, paths: &DataPaths) -> Result<Ingestor, ServeError> {
    std::fs::create_dir_all(paths.log()).map_err(|e| ServeError::Ingest(e.to_string()))?;
    Ingestor::open(config.clone(), paths.clone()).map_err(|e| {
        ServeError::Ingest(format!(
            "{e} (serve ingests the data directory's log itself: stop any `driftline ingest` on it)"
        ))
    })
}

/// Follows the event log on its own thread for as long as the process lives, reporting
/// progress into the metrics.
fn follow_log(mut ingestor: Ingestor, paths: DataPaths, state: Arc<AppState>) {
    std::thread::Builder::new()
        .name("ingest".into())
        .spawn(move || {
            let result = LogReader::open(&paths.log())
                .map_err(|e| e.to_string())
                .and_then(|mut reader| {
                    let mut report = |ingest: &Ingestor| {
                        let stats = ingest.stats();
                        state.metrics.observe_ingest(
                            ingest.next_offset(),
                            stats.events,
                            stats.dead_lettered(),
                        );
                        state.metrics.observe_ingest_lag(ingest.lag());
                    };
                    ingestor
                        .run(&mut reader, true, &mut report)
                        .map_err(|e| e.to_string())
                });
            if let Err(error) = result {
                tracing::error!(%error, "ingest stopped; predictions use the state it reached");
            }
        })
        .expect("spawning the ingest thread");
}

/// Where shadow pairs are appended.
pub fn shadow_log(data_dir: &std::path::Path) -> std::path::PathBuf {
    data_dir.join("shadow.jsonl")
}

/// The address to listen on: the flag, else `serve.addr`.
pub fn listen_address(config: &Config, flag: Option<&str>) -> String {
    flag.map(String::from)
        .unwrap_or_else(|| config.settings.serve.addr.clone())
}

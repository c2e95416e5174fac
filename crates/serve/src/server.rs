//! `driftline serve`: the embedded platform's server process. It ingests the event log
//! into the online store in-process, loads the registry's champion, hot-swaps it when an
//! alias changes (from this process, the CLI in another one, or a controller), and serves
//! the HTTP API.
//!
//! Key decision: in embedded mode the server owns the data directory's ingest (it takes
//! the ingest lock and follows the log on a thread), so the online state it reads is the
//! one ingest writes, with no copy and no network hop. A stop without a checkpoint loses
//! nothing: restart replays the log from the last checkpoint, as ingest always does.

use std::sync::Arc;

use driftline_core::config::Config;
use driftline_features::compute::FeatureEngine;
use driftline_features::ingest::Ingestor;
use driftline_features::paths::DataPaths;
use driftline_registry::{ArtifactStore, CHALLENGER, CHAMPION, Registry, RegistryConfig, RegistryError};
use driftline_stream::log::LogReader;
use driftline_training::pipeline::load_bundle;

use crate::api::app;
use crate::state::{AppState, LoadedModel};

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// Opening or restoring feature state failed (another ingest holding the lock, say).
    #[error("starting ingest: {0}")]
    Ingest(String),
    /// The registry or artifact store could not be opened.
    #[error("opening the model registry: {0}")]
    Registry(String),
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
    let data_dir = config.settings.data_dir();
    let paths = DataPaths::new(&data_dir);
    let engine = FeatureEngine::from_config(&config);
    let ingestor = open_ingest(&config, &paths)?;
    let mut state = AppState::new(config.contract.clone(), engine, ingestor.store().clone());
    state.set_canary_ratio(config.settings.serve.canary_split);
    state.assignment = config.settings.serve.canary_assignment;
    let state = Arc::new(state);
    follow_log(ingestor, paths.clone());
    let registry = RegistryConfig::default()
        .build(&data_dir)
        .await
        .map_err(|e| ServeError::Registry(e.to_string()))?;
    let artifacts =
        ArtifactStore::local(&paths.artifacts()).map_err(|e| ServeError::Registry(e.to_string()))?;
    let name = config.settings.model.name.clone();
    reload_champion(&state, registry.as_ref(), &artifacts, &name).await;
    tokio::spawn(watch_champion(state.clone(), registry, artifacts, name));
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| ServeError::Bind {
            addr: addr.to_string(),
            source,
        })?;
    tracing::info!(addr = %listener.local_addr().map_or(addr.to_string(), |a| a.to_string()), "serving");
    axum::serve(listener, app(state))
        .with_graceful_shutdown(shutdown)
        .await
        .map_err(|source| ServeError::Bind {
            addr: addr.to_string(),
            source,
        })
}

fn open_ingest(config: &Config, paths: &DataPaths) -> Result<Ingestor, ServeError> {
    std::fs::create_dir_all(paths.log()).map_err(|e| ServeError::Ingest(e.to_string()))?;
    Ingestor::open(config.clone(), paths.clone()).map_err(|e| {
        ServeError::Ingest(format!(
            "{e} (serve ingests the data directory's log itself: stop any `driftline ingest` on it)"
        ))
    })
}

/// Follows the event log on its own thread for as long as the process lives.
fn follow_log(mut ingestor: Ingestor, paths: DataPaths) {
    std::thread::Builder::new()
        .name("ingest".into())
        .spawn(move || {
            let result = LogReader::open(&paths.log())
                .map_err(|e| e.to_string())
                .and_then(|mut reader| {
                    ingestor
                        .run(&mut reader, true, &mut |_| {})
                        .map_err(|e| e.to_string())
                });
            if let Err(error) = result {
                tracing::error!(%error, "ingest stopped; predictions use the state it reached");
            }
        })
        .expect("spawning the ingest thread");
}

/// Reloads the champion whenever the registry reports a change.
async fn watch_champion(
    state: Arc<AppState>,
    registry: Arc<dyn Registry>,
    artifacts: ArtifactStore,
    name: String,
) {
    let mut changes = registry.watch();
    while changes.changed().await.is_ok() {
        reload_champion(&state, registry.as_ref(), &artifacts, &name).await;
    }
}

/// Loads the champion and the challenger when they differ from the ones serving. A version
/// that cannot be loaded (corrupt artifact, other feature definitions) is refused and the
/// current one kept.
async fn reload_champion(state: &AppState, registry: &dyn Registry, artifacts: &ArtifactStore, name: &str) {
    if let Some(champion) = load_alias(state, registry, artifacts, name, CHAMPION, &state.champion).await {
        let version = champion.as_ref().map(|m| m.version.version);
        if let Some(model) = champion {
            let previous = state.swap_champion(model);
            tracing::info!(?version, ?previous, "champion loaded");
        }
    }
    if let Some(challenger) =
        load_alias(state, registry, artifacts, name, CHALLENGER, &state.challenger).await
    {
        let version = challenger.as_ref().map(|m| m.version.version);
        let previous = state.swap_challenger(challenger);
        tracing::info!(?version, ?previous, "challenger changed");
    }
}

/// `Some(new)` when `alias` now names another version than `slot` holds (`Some(None)`
/// when the alias is gone), `None` when nothing changed or the new version was refused.
async fn load_alias(
    state: &AppState,
    registry: &dyn Registry,
    artifacts: &ArtifactStore,
    name: &str,
    alias: &str,
    slot: &arc_swap::ArcSwapOption<LoadedModel>,
) -> Option<Option<LoadedModel>> {
    let target = match registry.resolve(name, alias).await {
        Ok(target) => target,
        Err(RegistryError::ModelNotFound { .. }) => None,
        Err(error) => {
            tracing::error!(%error, alias, "reading the registry; keeping the current model");
            return None;
        }
    };
    let serving = slot.load().as_ref().map(|m| m.version.version);
    if serving == target.as_ref().map(|v| v.version) {
        return None;
    }
    let Some(version) = target else {
        return Some(None);
    };
    let bundle = match load_bundle(&version, artifacts).await {
        Ok(bundle) => bundle,
        Err(error) => {
            tracing::error!(version = version.version, alias, %error, "refusing the new version; keeping the current one");
            return None;
        }
    };
    if bundle.feature_fingerprint != state.engine.spec().fingerprint() {
        tracing::error!(
            version = version.version,
            alias,
            "refusing the new version: it was trained on other feature definitions than this server computes"
        );
        return None;
    }
    Some(Some(LoadedModel { version, bundle }))
}

/// The address to listen on: the flag, else `serve.addr`.
pub fn listen_address(config: &Config, flag: Option<&str>) -> String {
    flag.map(String::from)
        .unwrap_or_else(|| config.settings.serve.addr.clone())
}

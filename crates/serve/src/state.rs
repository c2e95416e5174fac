//! What every request handler shares: the contract, the feature engine, the online store,
//! the model serving now and the metrics.
//!
//! Key decision: the champion sits behind an `ArcSwapOption`, so a request loads it with one
//! atomic read (no lock, no await) and a hot swap never blocks or fails a request in
//! flight; a request keeps the `Arc` of the model it started with.

use std::sync::Arc;

use arc_swap::ArcSwapOption;
use driftline_core::contract::Contract;
use driftline_features::compute::FeatureEngine;
use driftline_features::online::EmbeddedOnlineStore;
use driftline_registry::ModelVersion;
use driftline_training::bundle::ModelBundle;

use crate::metrics::ServeMetrics;

/// A registered version loaded for serving.
#[derive(Debug)]
pub struct LoadedModel {
    /// Its registry record.
    pub version: ModelVersion,
    /// Its verified bundle (model, threshold, profile).
    pub bundle: ModelBundle,
}

/// Shared state of the HTTP handlers.
pub struct AppState {
    /// The event contract requests are validated against.
    pub contract: Contract,
    /// Computes feature vectors, the same code as training.
    pub engine: FeatureEngine,
    /// Per-entity feature state, kept fresh by the ingest follower.
    pub store: Arc<EmbeddedOnlineStore>,
    /// The model answering `/predict`; `None` until a champion exists.
    pub champion: ArcSwapOption<LoadedModel>,
    /// Prometheus metrics.
    pub metrics: ServeMetrics,
    /// The largest request body accepted, in bytes.
    pub body_limit: usize,
}

impl AppState {
    /// State with no model loaded yet.
    pub fn new(contract: Contract, engine: FeatureEngine, store: Arc<EmbeddedOnlineStore>) -> Self {
        AppState {
            contract,
            engine,
            store,
            champion: ArcSwapOption::empty(),
            metrics: ServeMetrics::default(),
            body_limit: 64 * 1024,
        }
    }

    /// Makes `model` the one serving; returns the version it replaced.
    pub fn swap_champion(&self, model: LoadedModel) -> Option<u32> {
        self.metrics.set_model(model.version.version);
        self.champion
            .swap(Some(Arc::new(model)))
            .map(|previous| previous.version.version)
    }
}

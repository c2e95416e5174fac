//! What every request handler shares: the contract, the feature engine, the online store,
//! the model serving now and the metrics.
//!
//! Key decision: the champion sits behind an `ArcSwapOption`, so a request loads it with one
//! atomic read (no lock, no await) and a hot swap never blocks or fails a request in
//! flight; a request keeps the `Arc` of the model it started with.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use arc_swap::ArcSwapOption;
use driftline_core::config::CanaryAssignment;
use driftline_core::contract::Contract;
use driftline_features::compute::FeatureEngine;
use driftline_features::online::EmbeddedOnlineStore;
use driftline_registry::ModelVersion;
use driftline_training::bundle::ModelBundle;

use crate::feedback::Feedback;
use crate::ingest::LogSink;
use crate::metrics::ServeMetrics;
use crate::models::Control;
use crate::rollout::{RolloutPlan, RolloutStatus};
use crate::shadow::{Shadow, ShadowMetrics};

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
    /// The model being rolled out, answering the canary share of traffic.
    pub challenger: ArcSwapOption<LoadedModel>,
    /// The canary share (f64 bits), 0..=1.
    canary_ratio: AtomicU64,
    /// Sticky (by entity hash) or random assignment to the canary.
    pub assignment: CanaryAssignment,
    /// Prometheus metrics.
    pub metrics: ServeMetrics,
    /// The largest request body accepted, in bytes.
    pub body_limit: usize,
    /// The registry handle admin actions use; unset until the registry is open.
    pub control: OnceLock<Control>,
    /// The bearer token admin endpoints require, when set.
    pub admin_token: Option<String>,
    /// What the rollout controller is doing.
    pub rollout: Mutex<RolloutStatus>,
    /// The plan a started rollout follows unless the request overrides it.
    pub rollout_plan: RolloutPlan,
    /// The model scoring copies of requests off the response path (alias `shadow`).
    pub shadow_model: ArcSwapOption<LoadedModel>,
    /// Whether copies are sent to the shadow (`serve.shadow_enabled`, `SHADOW_ENABLED`).
    pub shadow_enabled: bool,
    /// The shadow queue, once started.
    pub shadow: OnceLock<Shadow>,
    /// Counters of the shadow path.
    pub shadow_metrics: ShadowMetrics,
    /// The event log HTTP ingest appends to, once open.
    pub log: OnceLock<LogSink>,
    /// Recent predictions during a rollout, joined with delayed labels.
    pub feedback: Mutex<Feedback>,
}

impl AppState {
    /// State with no model loaded yet.
    pub fn new(contract: Contract, engine: FeatureEngine, store: Arc<EmbeddedOnlineStore>) -> Self {
        AppState {
            contract,
            engine,
            store,
            champion: ArcSwapOption::empty(),
            challenger: ArcSwapOption::empty(),
            canary_ratio: AtomicU64::new(0f64.to_bits()),
            assignment: CanaryAssignment::Sticky,
            metrics: ServeMetrics::default(),
            body_limit: 64 * 1024,
            control: OnceLock::new(),
            admin_token: None,
            rollout: Mutex::new(RolloutStatus::Idle),
            rollout_plan: RolloutPlan::default(),
            shadow_model: ArcSwapOption::empty(),
            shadow_enabled: false,
            shadow: OnceLock::new(),
            shadow_metrics: ShadowMetrics::default(),
            log: OnceLock::new(),
            feedback: Mutex::new(Feedback::default()),
        }
    }

    /// The canary share of traffic.
    pub fn canary_ratio(&self) -> f64 {
        f64::from_bits(self.canary_ratio.load(Ordering::Relaxed))
    }

    /// Sets the canary share, clamped to 0..=1.
    pub fn set_canary_ratio(&self, ratio: f64) {
        let ratio = if ratio.is_nan() {
            0.0
        } else {
            ratio.clamp(0.0, 1.0)
        };
        self.canary_ratio.store(ratio.to_bits(), Ordering::Relaxed);
    }

    /// Makes `model` (or nobody) the challenger; returns the version it replaced.
    pub fn swap_challenger(&self, model: Option<LoadedModel>) -> Option<u32> {
        self.challenger
            .swap(model.map(Arc::new))
            .map(|previous| previous.version.version)
    }

    /// Makes `model` the one serving; returns the version it replaced.
    pub fn swap_champion(&self, model: LoadedModel) -> Option<u32> {
        self.metrics.set_model(model.version.version);
        self.champion
            .swap(Some(Arc::new(model)))
            .map(|previous| previous.version.version)
    }
}

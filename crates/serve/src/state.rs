//! What every request handler shares: the contract, the feature engine, the online store,
//! the model serving now and the metrics.
//!
//! Key decision: the champion sits behind an `ArcSwapOption`, so a request loads it with one
//! atomic read (no lock, no await) and a hot swap never blocks or fails a request in
//! flight; a request keeps the `Arc` of the model it started with.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use arc_swap::ArcSwapOption;
use driftline_core::config::{CanaryAssignment, GateSettings, ModelSettings};
use driftline_core::contract::Contract;
use driftline_core::time::Timestamp;
use driftline_drift::monitor::MonitorConfig;
use driftline_features::compute::FeatureEngine;
use driftline_features::online::EmbeddedOnlineStore;
use driftline_features::redis::RedisStateReader;
use driftline_registry::ModelVersion;
use driftline_training::bundle::ModelBundle;

use crate::dashboard::TrafficHistory;
use crate::feedback::Feedback;
use crate::ingest::LogSink;
use crate::metrics::{ServeMetrics, Variant};
use crate::models::Control;
use crate::monitor::{ConceptWatch, DataWatch};
use crate::retrain::Retrainer;
use crate::rollout::{RolloutPlan, RolloutStatus};
use crate::shadow::{Shadow, ShadowMetrics};

/// Where `/predict` reads entity state.
pub enum OnlineState {
    /// In this process, kept fresh by the server's own ingest thread; read in place.
    Embedded(Arc<EmbeddedOnlineStore>),
    /// Redis, kept fresh by `driftline ingest` workers; read with `redis.timeout_ms` as
    /// the deadline, request-only features when it is missed.
    Redis(RedisStateReader),
}

impl OnlineState {
    /// Whether reads currently succeed (always for the embedded store).
    pub fn is_up(&self) -> bool {
        match self {
            OnlineState::Embedded(_) => true,
            OnlineState::Redis(reader) => reader.is_up(),
        }
    }
}

/// A registered version loaded for serving.
#[derive(Debug)]
pub struct LoadedModel {
    /// Its registry record.
    pub version: ModelVersion,
    /// Its verified bundle (model, threshold, profile).
    pub bundle: ModelBundle,
}

impl LoadedModel {
    /// The share of wrong decisions on its holdout, from its card.
    pub fn holdout_error_rate(&self) -> Option<f64> {
        let confusion = &self.version.card["holdout"]["confusion"];
        let count = |key: &str| confusion[key].as_f64();
        let wrong = count("fp")? + count("fn")?;
        let total = wrong + count("tp")? + count("tn")?;
        (total > 0.0).then(|| wrong / total)
    }
}

/// Shared state of the HTTP handlers.
pub struct AppState {
    /// The event contract requests are validated against.
    pub contract: Contract,
    /// Computes feature vectors, the same code as training.
    pub engine: FeatureEngine,
    /// Per-entity feature state, kept fresh by ingest (in-process, or workers via Redis).
    pub store: OnlineState,
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
    /// Recent predictions, joined with delayed labels.
    pub feedback: Mutex<Feedback>,
    /// Recent per-variant counters for `/v1/traffic`.
    pub traffic: TrafficHistory,
    /// Concept-drift detectors on the champion's labelled errors.
    pub concept: ConceptWatch,
    /// The data-drift window of the champion's traffic.
    pub data_drift: DataWatch,
    /// The closed loop, once started.
    pub retrainer: OnceLock<Retrainer>,
    /// This replica's standing in its model's controller election (see
    /// [`crate::controller`]); unset until the registry is open.
    pub leadership: OnceLock<driftline_registry::Leadership>,
    /// What a retraining fits (`[model]`) and the gates it must pass (`[gates]`).
    pub model_settings: ModelSettings,
    pub gate_settings: GateSettings,
    /// The latest event time a prediction was asked for (µs), the loop's "now" in event time.
    latest_event_micros: AtomicI64,
}

impl AppState {
    /// State with no model loaded yet, over an embedded store.
    pub fn new(contract: Contract, engine: FeatureEngine, store: Arc<EmbeddedOnlineStore>) -> Self {
        Self::with_store(contract, engine, OnlineState::Embedded(store))
    }

    /// State with no model loaded yet, over any online store.
    pub fn with_store(contract: Contract, engine: FeatureEngine, store: OnlineState) -> Self {
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
            traffic: TrafficHistory::default(),
            concept: ConceptWatch::default(),
            data_drift: DataWatch::new(MonitorConfig::default()),
            retrainer: OnceLock::new(),
            leadership: OnceLock::new(),
            model_settings: ModelSettings::default(),
            gate_settings: GateSettings::default(),
            latest_event_micros: AtomicI64::new(0),
        }
    }

    /// Whether this replica is its model's controller: it drives rollouts and retraining.
    /// A server that has not joined an election (no registry yet, unit tests) is the only
    /// candidate, so it is.
    pub fn is_controller(&self) -> bool {
        self.leadership.get().is_none_or(|l| l.is_leader())
    }

    /// Notes the event time of a prediction request.
    pub fn observe_event_time(&self, ts: Timestamp) {
        self.latest_event_micros.fetch_max(ts.micros(), Ordering::Relaxed);
    }

    /// The latest event time a prediction was asked for; wall-clock now before any.
    pub fn latest_event_time(&self) -> Timestamp {
        match self.latest_event_micros.load(Ordering::Relaxed) {
            0 => Timestamp::now(),
            micros => Timestamp(micros),
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
        let incoming = model.as_ref().map(|m| m.version.version);
        let previous = self
            .challenger
            .swap(model.map(Arc::new))
            .map(|previous| previous.version.version);
        if previous != incoming {
            self.feedback
                .lock()
                .expect("feedback lock")
                .reset_recent(Variant::Canary);
        }
        previous
    }

    /// Makes `model` the one serving; returns the version it replaced.
    pub fn swap_champion(&self, model: LoadedModel) -> Option<u32> {
        let incoming = model.version.version;
        self.metrics.set_model(incoming);
        let model = Arc::new(model);
        let previous = self
            .champion
            .swap(Some(Arc::clone(&model)))
            .map(|previous| previous.version.version);
        if previous != Some(incoming) {
            self.feedback
                .lock()
                .expect("feedback lock")
                .reset_recent(Variant::Baseline);
        }
        // Both start afresh only for a version they are not already watching.
        self.concept
            .watch(incoming, &model.bundle.profile, model.holdout_error_rate());
        self.data_drift.watch(incoming, &model.bundle.profile);
        previous
    }
}

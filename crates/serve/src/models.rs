//! Which versions serve: loading the registry's champion and challenger into the state,
//! on start, on every registry change notification, and after an admin action.
//!
//! Key decision: a version is swapped in only once its artifact is verified and its
//! feature fingerprint matches the engine this server runs; anything else is refused with
//! a log line and the current model keeps serving, so a bad alias change cannot take
//! `/predict` down.

use std::sync::Arc;

use arc_swap::ArcSwapOption;
use driftline_registry::{ArtifactStore, CHALLENGER, CHAMPION, Registry, RegistryError};
use driftline_training::pipeline::load_bundle;

use crate::controller;
use crate::state::{AppState, LoadedModel};

/// The alias of the model that scores copies of requests, when shadowing is enabled.
pub const SHADOW: &str = "shadow";

/// What the server needs to change and reload models.
#[derive(Clone)]
pub struct Control {
    /// The registry the aliases live in.
    pub registry: Arc<dyn Registry>,
    /// Where the bundles are.
    pub artifacts: ArtifactStore,
    /// The registered model served.
    pub model: String,
}

/// Reloads the models whenever the registry reports a change.
pub async fn watch_registry(state: Arc<AppState>, control: Control) {
    let mut changes = control.registry.watch();
    while changes.changed().await.is_ok() {
        reload(&state, &control).await;
    }
}

/// Loads the champion and the challenger when they differ from the ones serving.
pub async fn reload(state: &AppState, control: &Control) {
    if let Some(Some(model)) = load_alias(state, control, CHAMPION, &state.champion).await {
        let version = model.version.version;
        let previous = state.swap_champion(model);
        tracing::info!(version, ?previous, "champion loaded");
    }
    if let Some(shadow) = load_alias(state, control, SHADOW, &state.shadow_model).await {
        let version = shadow.as_ref().map(|m| m.version.version);
        state.shadow_model.store(shadow.map(Arc::new));
        tracing::info!(?version, "shadow changed");
    }
    if let Some(challenger) = load_alias(state, control, CHALLENGER, &state.challenger).await {
        let version = challenger.as_ref().map(|m| m.version.version);
        let previous = state.swap_challenger(challenger);
        tracing::info!(?version, ?previous, "challenger changed");
    }
    apply_recorded_share(state, control).await;
}

/// Routes the share of traffic the challenger's tags record (see [`crate::controller`]),
/// so every replica splits traffic as the controller or an admin decided.
async fn apply_recorded_share(state: &AppState, control: &Control) {
    let Some(serving) = state.challenger.load().as_ref().map(|m| m.version.version) else {
        return;
    };
    match control.registry.resolve(&control.model, CHALLENGER).await {
        Ok(Some(version)) if version.version == serving => {
            if let Some(share) = controller::recorded_share(&version) {
                state.set_canary_ratio(share);
            }
        }
        Ok(_) | Err(RegistryError::ModelNotFound { .. }) => {}
        Err(error) => tracing::warn!(%error, "reading the challenger's share; keeping the current one"),
    }
}

/// `Some(new)` when `alias` now names another version than `slot` holds (`Some(None)`
/// when the alias is gone), `None` when nothing changed or the new version was refused.
async fn load_alias(
    state: &AppState,
    control: &Control,
    alias: &str,
    slot: &ArcSwapOption<LoadedModel>,
) -> Option<Option<LoadedModel>> {
    let target = match control.registry.resolve(&control.model, alias).await {
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
    let bundle = match load_bundle(&version, &control.artifacts).await {
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

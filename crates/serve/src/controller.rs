//! The controller: of all the replicas serving a model, the elected one drives its
//! rollouts and retraining, and every replica routes the traffic split it records.
//!
//! Key decision: a rollout's shared state lives on the challenger version as registry tags
//! ([`PLAN_TAG`], [`STEP_TAG`], [`SHARE_TAG`]), written before the alias moves and at
//! every step. Tags are audited like every change and pushed to every replica by the
//! registry's watch, so all replicas send the same share of traffic to the canary within
//! the watch's delay, and a newly elected controller resumes a rollout at the step the
//! dead one reached. Election is the registry's ([`driftline_registry::election`]): a
//! PostgreSQL session advisory lock, or a file lock beside the SQLite registry.

use std::sync::Arc;

use driftline_registry::{CHALLENGER, ModelVersion};

use crate::models::Control;
use crate::rollout::{self, RolloutPlan};
use crate::state::AppState;

/// The tag holding the rollout plan (JSON) the controller follows, or [`MANUAL`].
pub const PLAN_TAG: &str = "rollout.plan";
/// The tag holding the 0-based step of the plan in progress.
pub const STEP_TAG: &str = "rollout.step";
/// The tag holding the share of traffic every replica sends to the challenger.
pub const SHARE_TAG: &str = "canary_share";
/// [`PLAN_TAG`]'s value when a person holds the share: no controller moves it.
pub const MANUAL: &str = "manual";

const ACTOR: &str = "driftline controller";

/// The election role of `model`'s controller.
pub fn role(model: &str) -> String {
    format!("controller:{model}")
}

/// Joins the election, then resumes any rollout left unfinished whenever this replica is
/// (or becomes) the controller and whenever the registry changes.
pub async fn run(state: Arc<AppState>, control: Control) {
    let leadership = control.registry.campaign(&role(&control.model));
    let mut standing = leadership.subscribe();
    if state.leadership.set(leadership).is_err() {
        tracing::error!("the controller was started twice; the second one stops");
        return;
    }
    let mut changes = control.registry.watch();
    loop {
        let leader = *standing.borrow_and_update();
        state.metrics.set_controller(leader);
        if leader {
            resume(&state, &control).await;
        }
        tokio::select! {
            changed = standing.changed() => if changed.is_err() { return },
            changed = changes.changed() => if changed.is_err() { return },
        }
    }
}

/// Starts driving the challenger's rollout if its tags hold a plan and nobody here drives
/// it yet (the rollout claims it, so a second start is a no-op).
async fn resume(state: &Arc<AppState>, control: &Control) {
    let challenger = match control.registry.resolve(&control.model, CHALLENGER).await {
        Ok(Some(version)) => version,
        Ok(None) | Err(driftline_registry::RegistryError::ModelNotFound { .. }) => return,
        Err(error) => {
            tracing::warn!(%error, "reading the challenger to resume its rollout");
            return;
        }
    };
    let Some((plan, step)) = recorded_plan(&challenger) else {
        return;
    };
    if rollout::is_driving(state, challenger.version) {
        return;
    }
    tracing::info!(
        version = challenger.version,
        step,
        "resuming the challenger's rollout"
    );
    tokio::spawn(rollout::run(state.clone(), challenger.version, plan, step));
}

/// The plan and step a version's tags record, if a controller should drive it.
pub fn recorded_plan(version: &ModelVersion) -> Option<(RolloutPlan, usize)> {
    let text = version.tags.get(PLAN_TAG)?;
    if text == MANUAL {
        return None;
    }
    let plan: RolloutPlan = match serde_json::from_str(text) {
        Ok(plan) => plan,
        Err(error) => {
            tracing::error!(version = version.version, %error, "the recorded rollout plan is unreadable; not resuming");
            return None;
        }
    };
    let step = version
        .tags
        .get(STEP_TAG)
        .and_then(|s| s.parse::<usize>().ok())
        .unwrap_or(0)
        .min(plan.steps.len().saturating_sub(1));
    Some((plan, step))
}

/// The share a version's tags record, if any.
pub fn recorded_share(version: &ModelVersion) -> Option<f64> {
    version.tags.get(SHARE_TAG)?.parse().ok()
}

/// Records how `version` is to be rolled out (`None`: held manually) and its first share,
/// before it becomes challenger, so every replica reads both when the alias arrives.
pub async fn record_start(
    control: &Control,
    version: u32,
    plan: Option<&RolloutPlan>,
    share: f64,
) -> Result<(), driftline_registry::RegistryError> {
    let plan = match plan {
        Some(plan) => serde_json::to_string(plan).expect("plans serialise"),
        None => MANUAL.to_string(),
    };
    tag(control, version, PLAN_TAG, &plan).await?;
    tag(control, version, STEP_TAG, "0").await?;
    tag(control, version, SHARE_TAG, &share.to_string()).await
}

/// Records the step a rollout entered and the share it routes.
pub async fn record_step(
    control: &Control,
    version: u32,
    step: usize,
    share: f64,
) -> Result<(), driftline_registry::RegistryError> {
    tag(control, version, STEP_TAG, &step.to_string()).await?;
    tag(control, version, SHARE_TAG, &share.to_string()).await
}

/// Records a share set by hand.
pub async fn record_share(
    control: &Control,
    version: u32,
    share: f64,
) -> Result<(), driftline_registry::RegistryError> {
    tag(control, version, SHARE_TAG, &share.to_string()).await
}

async fn tag(
    control: &Control,
    version: u32,
    key: &str,
    value: &str,
) -> Result<(), driftline_registry::RegistryError> {
    control
        .registry
        .set_tag(&control.model, version, key, value, ACTOR)
        .await
        .map(|_| ())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn tagged(tags: &[(&str, &str)]) -> ModelVersion {
        let json = serde_json::json!({
            "model": "m", "version": 3, "created_at": "2026-01-01T00:00:00Z",
            "status": "registered",
            "artifact": {"key": "k", "sha256": "s", "size": 1},
            "card": {}, "lineage": {
                "data_from": null, "data_to": null, "events": 0, "rows_train": 0,
                "rows_holdout": 0, "label_rate": 0.0, "feature_fingerprint": "f",
                "params": {}, "driftline_version": "0", "seed": null,
                "champion_at_training": null
            },
            "tags": tags.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect::<BTreeMap<_, _>>(),
        });
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn a_recorded_plan_resumes_at_its_step_and_a_manual_share_is_not_driven() {
        let plan = RolloutPlan {
            steps: vec![0.1, 0.5, 1.0],
            ..RolloutPlan::default()
        };
        let text = serde_json::to_string(&plan).unwrap();
        let version = tagged(&[(PLAN_TAG, &text), (STEP_TAG, "1"), (SHARE_TAG, "0.5")]);
        assert_eq!(recorded_plan(&version), Some((plan.clone(), 1)));
        assert_eq!(recorded_share(&version), Some(0.5));
        // A step past the plan's end (a plan edited by hand) resumes at its last step.
        let beyond = tagged(&[(PLAN_TAG, &text), (STEP_TAG, "9")]);
        assert_eq!(recorded_plan(&beyond), Some((plan, 2)));
        let manual = tagged(&[(PLAN_TAG, MANUAL), (SHARE_TAG, "0.25")]);
        assert_eq!(recorded_plan(&manual), None);
        assert_eq!(recorded_share(&manual), Some(0.25));
        assert_eq!(recorded_plan(&tagged(&[(PLAN_TAG, "{not json")])), None);
        assert_eq!(recorded_share(&tagged(&[])), None);
    }
}

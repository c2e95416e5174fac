//! `[model]` and `[gates]` checked into what the pipeline runs with.
//!
//! Key decision: core's configuration keeps the estimator as a raw TOML table (core does
//! not know the estimators), and this module turns it into typed parameters with
//! unknown keys refused, so `driftline train` and `driftline config` fail fast with the
//! key's name.

use driftline_core::config::{GateSettings, ModelSettings, SplitKind};
use driftline_core::time::Timestamp;
use driftline_drift::monitor::MonitorConfig;
use driftline_features::training::TrainingWindow;
use driftline_models::estimator::EstimatorParams;
use driftline_models::gates::Gates;
use driftline_models::gbt::GbtParams;
use serde::Deserialize;

use crate::error::TrainError;

/// Everything the pipeline needs to know about one training run.
#[derive(Debug, Clone, PartialEq)]
pub struct TrainingConfig {
    /// The registered model's name.
    pub name: String,
    /// The estimator and its parameters (seeded from `seed` where it has a seed).
    pub estimator: EstimatorParams,
    /// Scores at or above this are decided positive.
    pub decision_threshold: f64,
    /// The share of rows held out.
    pub holdout_fraction: f64,
    /// How the holdout is chosen.
    pub split: SplitKind,
    /// The seed of every random choice.
    pub seed: u64,
    /// The event-time window of history trained on.
    pub window: TrainingWindow,
    /// Keep only the most recent N labelled rows of the window.
    pub last_events: Option<u64>,
    /// The promotion gates.
    pub gates: Gates,
    /// The drift monitor the model will be watched by: the profile's window spread is
    /// measured with its window and tests (`[drift]`; the defaults unless a caller that
    /// reads `[drift]` sets it).
    pub monitor: MonitorConfig,
}

impl TrainingConfig {
    /// Checks `[model]` and `[gates]`; errors name the key.
    pub fn from_settings(model: &ModelSettings, gates: &GateSettings) -> Result<Self, TrainError> {
        let estimator = estimator(&model.estimator, model.seed)?;
        let time = |key: &str, text: &Option<String>| {
            text.as_deref()
                .map(|t| {
                    Timestamp::parse_rfc3339(t).map_err(|e| TrainError::Config(format!("model.{key}: {e}")))
                })
                .transpose()
        };
        let gates = Gates {
            min_roc_auc: gates.min_roc_auc,
            min_avg_precision: gates.min_avg_precision,
            max_regression: gates.max_regression,
        };
        gates
            .check()
            .map_err(|e| TrainError::Config(format!("gates: {e}")))?;
        Ok(TrainingConfig {
            name: model.name.clone(),
            estimator,
            decision_threshold: model.decision_threshold,
            holdout_fraction: model.holdout_fraction,
            split: model.split,
            seed: model.seed,
            window: TrainingWindow {
                from: time("from", &model.from)?,
                to: time("to", &model.to)?,
            },
            last_events: model.last_events,
            gates,
            monitor: MonitorConfig::default(),
        })
    }
}

/// Parses `[model.estimator]`. The boosted trees' seed defaults to `model.seed` unless the
/// table sets its own.
fn estimator(table: &toml::Table, seed: u64) -> Result<EstimatorParams, TrainError> {
    let bad = |e: String| TrainError::Config(format!("model.estimator: {e}"));
    if !table.contains_key("type") {
        return Err(bad("needs `type = \"logistic\"` or `type = \"gbt\"`".into()));
    }
    let mut params = EstimatorParams::deserialize(toml::Value::Table(table.clone()))
        .map_err(|e| bad(e.message().to_string()))?;
    if let EstimatorParams::Gbt(GbtParams { seed: s, .. }) = &mut params
        && !table.contains_key("seed")
    {
        *s = seed;
    }
    params.check().map_err(|e| bad(e.to_string()))?;
    Ok(params)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(toml_text: &str) -> ModelSettings {
        #[derive(Deserialize)]
        struct Wrapper {
            model: ModelSettings,
        }
        toml::from_str::<Wrapper>(toml_text).unwrap().model
    }

    #[test]
    fn the_defaults_are_logistic_regression_with_the_time_split() {
        let c = TrainingConfig::from_settings(&ModelSettings::default(), &GateSettings::default()).unwrap();
        assert_eq!(c.estimator.kind(), "logistic");
        assert_eq!(c.split, SplitKind::Time);
        assert_eq!(c.gates.min_roc_auc, 0.7);
    }

    #[test]
    fn gbt_takes_the_model_seed_unless_it_sets_its_own() {
        let s = settings("[model]\nseed = 7\n[model.estimator]\ntype = \"gbt\"\nmax_iter = 30\n");
        let c = TrainingConfig::from_settings(&s, &GateSettings::default()).unwrap();
        assert!(matches!(
            c.estimator,
            EstimatorParams::Gbt(GbtParams {
                seed: 7,
                max_iter: 30,
                ..
            })
        ));
        let s = settings("[model]\nseed = 7\n[model.estimator]\ntype = \"gbt\"\nseed = 3\n");
        let c = TrainingConfig::from_settings(&s, &GateSettings::default()).unwrap();
        assert!(matches!(
            c.estimator,
            EstimatorParams::Gbt(GbtParams { seed: 3, .. })
        ));
    }

    #[test]
    fn bad_estimator_tables_name_the_problem() {
        let cases = [
            ("[model.estimator]\nc = 2.0\n", "needs `type"),
            ("[model.estimator]\ntype = \"forest\"\n", "forest"),
            ("[model.estimator]\ntype = \"logistic\"\ncc = 2.0\n", "cc"),
            (
                "[model.estimator]\ntype = \"logistic\"\nc = -1.0\n",
                "invalid parameter c",
            ),
        ];
        for (text, expected) in cases {
            let err = TrainingConfig::from_settings(
                &settings(&format!("[model]\n{text}")),
                &GateSettings::default(),
            )
            .unwrap_err()
            .to_string();
            assert!(
                err.contains("model.estimator") && err.contains(expected),
                "{text}: {err}"
            );
        }
    }
}

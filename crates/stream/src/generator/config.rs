//! Generator configuration and its validation.
//!
//! Key decision: the config is plain serde data (`deny_unknown_fields`, defaults for
//! every field) so the CLI and `driftline.toml` can both fill it; [`GeneratorConfig::check`]
//! rejects values the generator cannot honour before any event is produced.

use serde::{Deserialize, Serialize};

use super::scenario::{DriftSchedule, Scenario};

/// 2024-03-01T00:00:00Z, the default event time of the first event.
pub const DEFAULT_START_TS: i64 = 1_709_251_200;
/// 9999-01-01T00:00:00Z: later starts could run past four-digit years.
const MAX_START_TS: i64 = 253_370_764_800;

/// How to generate a synthetic transaction stream.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GeneratorConfig {
    /// Seed of every random choice: the same config always yields byte-identical output.
    pub seed: u64,
    /// Number of users (card holders), at least 1. Fewer users means a longer history
    /// per user for the same number of events.
    pub users: u32,
    /// The drift to inject: none, covariate, categorical, concept or quality.
    pub scenario: Scenario,
    /// Index (0-based) of the first event that may be drifted.
    pub onset: u64,
    /// Number of events over which the drift grows linearly to full strength; 0 = abrupt.
    pub ramp: u64,
    /// Event time of the first event, unix seconds (UTC).
    pub start_ts: i64,
    /// Mean event-time spacing between legit events, in milliseconds, averaged over a
    /// day (the rate follows users' hours, slower at night). Fraud bursts come on top.
    pub mean_interarrival_ms: f64,
    /// Fraction of events, in [0, 1], whose `event_ts` is set back by 1 to 60 seconds,
    /// as if they arrived late. 0 keeps event time non-decreasing.
    pub out_of_order_fraction: f64,
}

impl Default for GeneratorConfig {
    fn default() -> Self {
        Self {
            seed: 42,
            users: 2_000,
            scenario: Scenario::None,
            onset: 50_000,
            ramp: 10_000,
            start_ts: DEFAULT_START_TS,
            mean_interarrival_ms: 2_000.0,
            out_of_order_fraction: 0.0,
        }
    }
}

impl GeneratorConfig {
    /// Checks every field the generator relies on.
    pub fn check(&self) -> Result<(), GeneratorError> {
        if self.users == 0 {
            return Err(GeneratorError::invalid("users", "must be at least 1"));
        }
        if !(self.mean_interarrival_ms.is_finite() && self.mean_interarrival_ms > 0.0) {
            return Err(GeneratorError::invalid(
                "mean_interarrival_ms",
                format!("must be a positive number, got {}", self.mean_interarrival_ms),
            ));
        }
        if !(0.0..=1.0).contains(&self.out_of_order_fraction) {
            return Err(GeneratorError::invalid(
                "out_of_order_fraction",
                format!("must be within [0, 1], got {}", self.out_of_order_fraction),
            ));
        }
        if !(0..=MAX_START_TS).contains(&self.start_ts) {
            return Err(GeneratorError::invalid(
                "start_ts",
                format!("must be between 1970 and 9999, got {}", self.start_ts),
            ));
        }
        Ok(())
    }

    /// The drift schedule of `onset` and `ramp`.
    pub fn schedule(&self) -> DriftSchedule {
        DriftSchedule {
            onset: self.onset,
            ramp: self.ramp,
        }
    }
}

/// Why a generator could not be built.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum GeneratorError {
    /// A config field is out of range.
    #[error("invalid generator config: `{field}` {reason}")]
    InvalidConfig {
        /// The offending field.
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },
}

impl GeneratorError {
    fn invalid(field: &'static str, reason: impl Into<String>) -> Self {
        Self::InvalidConfig {
            field,
            reason: reason.into(),
        }
    }
}

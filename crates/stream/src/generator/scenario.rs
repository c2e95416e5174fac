//! Drift scenarios and the schedule that says how far a drift has progressed.
//!
//! Key decision: a drift is one number, its intensity `i` in [0, 1], computed from the
//! event index alone (0 before `onset`, linear over `ramp` events, then 1). Each
//! scenario is a function of `i`, so every event can report how drifted it is and tests
//! can check the schedule exactly.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Which drift the generator injects after the onset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scenario {
    /// Stationary: no drift at all.
    #[default]
    None,
    /// Amounts scale up (to 2.5×) and spread out; fraud stays relative to user habits.
    Covariate,
    /// The country mix moves to IN and BR as users relocate and travel there.
    Categorical,
    /// The fraud pattern changes: card testing at home, while large foreign night
    /// bursts become legitimate travel.
    Concept,
    /// Data quality degrades: nulls, out-of-range amounts, unknown categories.
    Quality,
}

impl Scenario {
    /// Every scenario, in documentation order.
    pub const ALL: [Scenario; 5] = [
        Scenario::None,
        Scenario::Covariate,
        Scenario::Categorical,
        Scenario::Concept,
        Scenario::Quality,
    ];

    /// The lowercase name used on the command line and in config files.
    pub fn name(self) -> &'static str {
        match self {
            Scenario::None => "none",
            Scenario::Covariate => "covariate",
            Scenario::Categorical => "categorical",
            Scenario::Concept => "concept",
            Scenario::Quality => "quality",
        }
    }
}

impl fmt::Display for Scenario {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A scenario name that is not one of [`Scenario::ALL`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown drift scenario `{given}`; valid scenarios: none, covariate, categorical, concept, quality")]
pub struct UnknownScenario {
    /// The name as given.
    pub given: String,
}

impl FromStr for Scenario {
    type Err = UnknownScenario;

    /// Parses a scenario name, ignoring ASCII case and surrounding whitespace.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let wanted = text.trim();
        Scenario::ALL
            .into_iter()
            .find(|scenario| scenario.name().eq_ignore_ascii_case(wanted))
            .ok_or_else(|| UnknownScenario {
                given: text.to_owned(),
            })
    }
}

/// When a drift starts and how quickly it reaches full strength.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DriftSchedule {
    /// Index of the first event that may be drifted.
    pub onset: u64,
    /// Number of events over which intensity grows linearly to 1; 0 means abrupt.
    pub ramp: u64,
}

impl DriftSchedule {
    /// Intensity of the event at `index` (0-based): 0 before `onset`; during the ramp,
    /// `(index - onset + 1) / ramp`, so the ramp's last event is the first at 1; then 1.
    pub fn intensity(&self, index: u64) -> f64 {
        if index < self.onset {
            0.0
        } else if self.ramp == 0 {
            1.0
        } else {
            let progressed = index - self.onset + 1;
            (progressed as f64 / self.ramp as f64).min(1.0)
        }
    }
}

//! What each scenario changes, as a function of drift intensity.
//!
//! Key decision: every scenario knob is a pure function of (scenario, intensity) and
//! equals the stationary value at intensity 0. Together with drawing the same random
//! numbers whatever the knobs say, this makes every scenario's pre-onset events
//! byte-identical to the `none` stream of the same seed.

use super::catalog::{BASE_COUNTRY_MIX, DRIFTED_COUNTRY_MIX, blend};
use super::scenario::Scenario;

/// `covariate`: amounts are scaled by up to this factor...
const MAX_AMOUNT_SCALE: f64 = 2.5;
/// ...and their log spread widened by up to this factor.
const MAX_SPREAD_SCALE: f64 = 1.5;
/// `categorical`: share of users whose home moves to their drifted home.
const MAX_MOVED_SHARE: f64 = 0.6;
/// `quality`: share of events with a defect at full intensity.
pub(crate) const MAX_DEFECT_RATE: f64 = 0.15;

/// Shares of each episode kind among episode starts (before hour weighting).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct EpisodeMix {
    /// Classic fraud: large, foreign, new device, at night.
    pub fraud: f64,
    /// `concept`: card testing, small amounts at home in daytime, in rapid bursts.
    pub card_testing: f64,
    /// `concept`: legitimate travel that looks like classic fraud.
    pub travel: f64,
}

/// The scenario's knobs at one intensity.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Effects {
    /// Reported intensity: 0 throughout for `none`.
    pub intensity: f64,
    pub amount_scale: f64,
    pub spread_scale: f64,
    /// Users with `move_rank` below this live at their drifted home.
    pub moved_share: f64,
    /// Mix of destinations for travel and foreign fraud.
    pub country_mix: [f64; 7],
    pub episodes: EpisodeMix,
    pub defect_rate: f64,
}

impl Effects {
    pub(crate) fn at(scenario: Scenario, intensity: f64) -> Self {
        let i = if scenario == Scenario::None {
            0.0
        } else {
            intensity
        };
        let only = |wanted: Scenario| if scenario == wanted { i } else { 0.0 };
        let covariate = only(Scenario::Covariate);
        let categorical = only(Scenario::Categorical);
        let concept = only(Scenario::Concept);
        Self {
            intensity: i,
            amount_scale: 1.0 + (MAX_AMOUNT_SCALE - 1.0) * covariate,
            spread_scale: 1.0 + (MAX_SPREAD_SCALE - 1.0) * covariate,
            moved_share: MAX_MOVED_SHARE * categorical,
            country_mix: blend(&BASE_COUNTRY_MIX, &DRIFTED_COUNTRY_MIX, categorical),
            episodes: EpisodeMix {
                fraud: 1.0 - concept,
                card_testing: concept,
                travel: concept,
            },
            defect_rate: MAX_DEFECT_RATE * only(Scenario::Quality),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_scenario_is_stationary_at_intensity_zero() {
        let stationary = Effects::at(Scenario::None, 0.0);
        for scenario in Scenario::ALL {
            assert_eq!(Effects::at(scenario, 0.0), stationary, "{scenario}");
        }
    }

    #[test]
    fn none_ignores_intensity() {
        assert_eq!(Effects::at(Scenario::None, 1.0), Effects::at(Scenario::None, 0.0));
    }
}

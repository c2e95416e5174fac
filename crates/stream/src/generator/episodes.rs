//! Episodes: short bursts of one user's transactions, scheduled apart from legit traffic.
//!
//! Key decision: episode starts are their own Poisson process in event time, thinned by
//! hour of day (classic fraud and travel prefer 0-5 UTC, card testing prefers daytime).
//! Once started, an episode schedules its next event a few minutes (or seconds) later,
//! and the generator merges it with legit traffic in time order. So a burst really is
//! dense in event time, whatever the user's usual rate.

use rand::Rng;
use rand_distr::{Distribution, Exp1, Poisson};

use super::catalog::{Country, Device, other_device, pick_excluding};
use super::effects::EpisodeMix;

/// Target share of classic fraud events among all events, before label noise.
const FRAUD_EVENT_SHARE: f64 = 0.03;
/// Hour weight of night-loving kinds in 0-5 UTC, and elsewhere (mean 1 over the day).
const NIGHT_WEIGHTS: (f64, f64) = (3.0, 1.0 / 3.0);
/// Hour weight of day-loving kinds in 9-20 UTC, and elsewhere (mean 1 over the day).
const DAY_WEIGHTS: (f64, f64) = (1.6, 0.4);
/// Upper bound of the summed hour weights of all kinds, for thinning.
const MAX_WEIGHT_SUM: f64 = NIGHT_WEIGHTS.0 + DAY_WEIGHTS.0 + NIGHT_WEIGHTS.0;

/// What an episode is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum EpisodeKind {
    /// Classic fraud: amounts several times the user's usual, often abroad and on a
    /// new device, minutes apart, mostly at night. Label 1.
    Fraud,
    /// `concept` scenario fraud: tiny amounts at home on the usual device, in daytime,
    /// seconds apart. Label 1.
    CardTesting,
    /// `concept` scenario travel: looks like classic fraud but is the user. Label 0.
    Travel,
}

/// How long an episode of a kind lasts and how its events are spaced.
struct Rhythm {
    min_events: u32,
    mean_extra_events: f64,
    min_gap_ms: f64,
    mean_gap_ms: f64,
}

impl EpisodeKind {
    pub(crate) fn label(self) -> u8 {
        match self {
            EpisodeKind::Fraud | EpisodeKind::CardTesting => 1,
            EpisodeKind::Travel => 0,
        }
    }

    fn rhythm(self) -> Rhythm {
        match self {
            EpisodeKind::Fraud | EpisodeKind::Travel => Rhythm {
                min_events: 2,
                mean_extra_events: 2.5,
                min_gap_ms: 20_000.0,
                mean_gap_ms: 240_000.0,
            },
            EpisodeKind::CardTesting => Rhythm {
                min_events: 3,
                mean_extra_events: 5.0,
                min_gap_ms: 2_000.0,
                mean_gap_ms: 12_000.0,
            },
        }
    }
}

/// Mean event-time gap (ms) between candidate episode starts, such that classic fraud
/// makes up [`FRAUD_EVENT_SHARE`] of events when legit events are `legit_gap_ms` apart.
pub(crate) fn mean_candidate_gap_ms(legit_gap_ms: f64) -> f64 {
    let rhythm = EpisodeKind::Fraud.rhythm();
    let events_per_episode = f64::from(rhythm.min_events) + rhythm.mean_extra_events;
    let fraud_per_legit = FRAUD_EVENT_SHARE / (1.0 - FRAUD_EVENT_SHARE);
    let episodes_per_ms = fraud_per_legit / events_per_episode / legit_gap_ms;
    1.0 / (episodes_per_ms * MAX_WEIGHT_SUM)
}

/// What a candidate start in `hour` becomes, from the uniform `u`: a kind, or nothing.
pub(crate) fn choose_kind(mix: &EpisodeMix, hour: usize, u: f64) -> Option<EpisodeKind> {
    let night = if hour < 6 {
        NIGHT_WEIGHTS.0
    } else {
        NIGHT_WEIGHTS.1
    };
    let day = if (9..21).contains(&hour) {
        DAY_WEIGHTS.0
    } else {
        DAY_WEIGHTS.1
    };
    let weighted = [
        (EpisodeKind::Fraud, mix.fraud * night),
        (EpisodeKind::CardTesting, mix.card_testing * day),
        (EpisodeKind::Travel, mix.travel * night),
    ];
    let mut remaining = u * MAX_WEIGHT_SUM;
    for (kind, weight) in weighted {
        if remaining < weight {
            return Some(kind);
        }
        remaining -= weight;
    }
    None
}

/// A running episode.
#[derive(Debug, Clone)]
pub(crate) struct Episode {
    pub user: u32,
    pub kind: EpisodeKind,
    /// Events still to come, including the one due at `next_due_ms`.
    pub remaining: u32,
    pub next_due_ms: f64,
    pub country: Country,
    pub device: Device,
}

/// Where a new episode happens, relative to the user's current home and usual device.
pub(crate) struct Whereabouts<'a> {
    pub home: Country,
    pub device: Device,
    /// Destination mix for going abroad.
    pub country_mix: &'a [f64; 7],
}

impl Episode {
    /// Starts an episode whose first event happens now (`now_ms`).
    pub(crate) fn start(
        kind: EpisodeKind,
        user: u32,
        now_ms: f64,
        place: &Whereabouts<'_>,
        rng: &mut impl Rng,
    ) -> Self {
        let (abroad_chance, new_device_chance) = match kind {
            EpisodeKind::Fraud => (0.75, 0.6),
            EpisodeKind::CardTesting => (0.0, 0.0),
            EpisodeKind::Travel => (1.0, 0.5),
        };
        let country = if rng.random::<f64>() < abroad_chance {
            pick_excluding(place.country_mix, usize::from(place.home), rng.random()) as Country
        } else {
            place.home
        };
        let device = if rng.random::<f64>() < new_device_chance {
            other_device(place.device, rng.random())
        } else {
            place.device
        };
        let rhythm = kind.rhythm();
        let extra = Poisson::new(rhythm.mean_extra_events)
            .expect("episode length mean is positive")
            .sample(rng);
        Self {
            user,
            kind,
            remaining: rhythm.min_events + extra as u32,
            next_due_ms: now_ms,
            country,
            device,
        }
    }

    /// Consumes the event due now; returns false when the episode is over.
    pub(crate) fn advance(&mut self, rng: &mut impl Rng) -> bool {
        self.remaining -= 1;
        let rhythm = self.kind.rhythm();
        let exponential: f64 = Exp1.sample(rng);
        self.next_due_ms += rhythm.min_gap_ms + exponential * (rhythm.mean_gap_ms - rhythm.min_gap_ms);
        self.remaining > 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const STATIONARY: EpisodeMix = EpisodeMix {
        fraud: 1.0,
        card_testing: 0.0,
        travel: 0.0,
    };

    fn acceptance(mix: &EpisodeMix, hour: usize, kind: EpisodeKind) -> f64 {
        let steps = 10_000;
        let hits = (0..steps)
            .filter(|step| choose_kind(mix, hour, (*step as f64 + 0.5) / steps as f64) == Some(kind))
            .count();
        hits as f64 / steps as f64
    }

    #[test]
    fn classic_fraud_prefers_the_night() {
        let night = acceptance(&STATIONARY, 3, EpisodeKind::Fraud);
        let day = acceptance(&STATIONARY, 14, EpisodeKind::Fraud);
        assert!((night / day - 9.0).abs() < 0.1, "night {night} day {day}");
    }

    #[test]
    fn hour_weights_average_to_one() {
        let night: f64 = (0..24)
            .map(|h| if h < 6 { NIGHT_WEIGHTS.0 } else { NIGHT_WEIGHTS.1 })
            .sum();
        let day: f64 = (0..24)
            .map(|h| {
                if (9..21).contains(&h) {
                    DAY_WEIGHTS.0
                } else {
                    DAY_WEIGHTS.1
                }
            })
            .sum();
        assert!((night / 24.0 - 1.0).abs() < 1e-9);
        assert!((day / 24.0 - 1.0).abs() < 1e-9);
    }
}

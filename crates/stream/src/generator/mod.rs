//! The synthetic card-transaction stream, with drift scenarios (`driftline gen`).
//!
//! Key decision: everything is a deterministic function of the config. Randomness comes
//! only from seeded `ChaCha8Rng` streams (never `thread_rng`, never hash-map order),
//! so the same seed yields byte-identical output, and every scenario's events before
//! the onset are byte-identical to the `none` stream of the same seed.
//!
//! # Generative model
//!
//! **Users.** Each user gets a persistent profile when the generator is built: a home
//! country (US 40%, GB 12, DE 12, FR 10, CA 10, IN 10, BR 6), a usual device (ios 40%,
//! android 35, web 25), a typical amount (log-normal, median 50, wide across users) with
//! a personal spread, an activity weight (log-normal: the busiest users transact ~20×
//! as often as the median one) and preferred hours (a bump centred between 08 and 21
//! UTC).
//!
//! **Legit traffic.** Events arrive in event time as a Poisson process whose rate
//! follows the population's hours (quiet at night), `mean_interarrival_ms` apart on
//! average. Each picks a user by activity × affinity for the hour; the amount is
//! log-normal around the user's typical one (1% are splurges several times larger),
//! the country is home (2% abroad), the device the usual one (8% another).
//!
//! **Fraud.** Episodes start as a separate Poisson process, nine times as likely per
//! hour in 00-05 UTC as in daytime, against a uniformly chosen user: 2 + Poisson(2.5)
//! transactions ~4 minutes apart, each ~4× the user's typical amount, 75% abroad and 60%
//! on another device, all labelled 1. Fraud is ~3% of events. Labels are then noisy:
//! 3% of fraud is labelled 0, 0.3% of legit labelled 1. So the amount relative to the
//! user's history, recent-burst counts, country/device changes and hour of day predict
//! the label well, while the raw amount alone is weaker (typical amounts vary ~20×
//! between users).
//!
//! # Drift scenarios
//!
//! Intensity `i` is 0 before `onset`, grows linearly over `ramp` events, then stays 1
//! (see [`DriftSchedule`]); each event reports it as `drift_intensity` (always 0 for
//! `none`).
//!
//! - `none`: stationary.
//! - `covariate`: every amount is scaled by `1 + 1.5i` and its spread widened by
//!   `1 + 0.5i`; fraud is still ~4× the user's (scaled) typical amount.
//! - `categorical`: a share `0.6i` of users move their home to a mostly IN/BR country,
//!   and travel and foreign fraud go to a mix shifted the same way.
//! - `concept`: episode starts become, with weight `i`, card testing (1-5 amounts, at
//!   home, usual device, daytime, 3 + Poisson(5) tries seconds apart; label 1) and
//!   travel (large, foreign, often a new device, at night, minutes apart: the old fraud
//!   pattern, now label 0); classic fraud keeps weight `1 - i`.
//! - `quality`: each event, with probability `0.15i`, gets one defect: null amount,
//!   country or device, a negative or >5000 amount, country `XX` or device `tablet`.
//!
//! Event time never decreases unless `out_of_order_fraction` sets some events back by
//! up to a minute.

mod alias;
mod catalog;
mod config;
mod effects;
mod engine;
mod episodes;
mod event;
mod format;
mod population;
mod quality;
mod scenario;

#[cfg(test)]
mod tests;

pub use catalog::{COUNTRIES, DEVICES, UNKNOWN_COUNTRY, UNKNOWN_DEVICE};
pub use config::{DEFAULT_START_TS, GeneratorConfig, GeneratorError};
pub use engine::Generator;
pub use event::{CSV_HEADER, GeneratedEvent};
pub use scenario::{DriftSchedule, Scenario, UnknownScenario};

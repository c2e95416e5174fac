//! The user population: persistent per-user profiles, and who transacts at a given hour.
//!
//! Key decision: a legit event's user is drawn by rejection: pick a user by activity
//! (alias table), keep them with probability equal to their affinity for the current
//! hour. That samples exactly `activity × hour affinity` in O(1) memory per user, and
//! the population's summed affinity per hour gives the diurnal event rate.

use rand::Rng;
use rand_distr::StandardNormal;

use super::alias::AliasTable;
use super::catalog::{BASE_COUNTRY_MIX, Country, DEVICE_MIX, DRIFTED_COUNTRY_MIX, Device, pick};

/// Median of users' typical amounts.
const MEDIAN_TYPICAL_AMOUNT: f64 = 50.0;
/// Spread (log scale) of typical amounts across users: wide, so the raw amount is a weak
/// fraud signal while the amount relative to the user's own habit is a strong one.
const TYPICAL_AMOUNT_LOG_SPREAD: f64 = 1.1;
/// Range of each user's own amount spread (log scale) around their typical amount.
const USER_AMOUNT_LOG_SPREAD: (f64, f64) = (0.3, 0.55);
/// Spread (log scale) of activity weights: the busiest users are ~20× the median.
const ACTIVITY_LOG_SPREAD: f64 = 1.0;
/// Users' preferred hours centre somewhere in this UTC range...
const PREFERRED_HOUR_CENTRE: (f64, f64) = (8.0, 21.0);
/// ...with this width (standard deviation, hours).
const PREFERRED_HOUR_WIDTH: (f64, f64) = (2.0, 4.0);
/// Affinity outside the preferred hours: users are sometimes up at night.
const AFFINITY_FLOOR: f64 = 0.05;

/// One user's persistent habits, drawn once when the population is created.
#[derive(Debug, Clone)]
pub(crate) struct UserProfile {
    /// `user-00042` (one-based, five digits or more).
    pub id: Box<str>,
    pub home: Country,
    /// Home after the `categorical` scenario moves this user.
    pub drifted_home: Country,
    /// Uniform in [0, 1): the user has moved once `rank < intensity × MOVING_SHARE`.
    pub move_rank: f64,
    pub device: Device,
    /// ln of the user's typical amount.
    pub log_typical: f64,
    /// Standard deviation of ln amount around `log_typical`.
    pub log_spread: f64,
    /// Relative willingness to transact in each UTC hour, in (0, 1].
    pub hour_affinity: [f64; 24],
}

/// Every user, with the distributions used to pick them.
#[derive(Debug, Clone)]
pub(crate) struct Population {
    users: Vec<UserProfile>,
    activity: AliasTable,
    /// Legit event rate per UTC hour relative to the daily mean (mean 1).
    relative_rate: [f64; 24],
}

impl Population {
    /// Draws `count` (at least 1) profiles from `rng`, in user order.
    pub(crate) fn generate(count: u32, rng: &mut impl Rng) -> Self {
        let mut users = Vec::with_capacity(count as usize);
        let mut activity = Vec::with_capacity(count as usize);
        for index in 0..count {
            users.push(draw_profile(index, rng));
            activity.push(draw_lognormal(0.0, ACTIVITY_LOG_SPREAD, rng));
        }
        let relative_rate = relative_hourly_rate(&users, &activity);
        Self {
            users,
            activity: AliasTable::new(&activity),
            relative_rate,
        }
    }

    pub(crate) fn user(&self, index: u32) -> &UserProfile {
        &self.users[index as usize]
    }

    /// Legit event rate in `hour` relative to the daily mean.
    pub(crate) fn relative_rate(&self, hour: usize) -> f64 {
        self.relative_rate[hour]
    }

    /// A user with probability proportional to activity × affinity for `hour`.
    pub(crate) fn draw_active(&self, hour: usize, rng: &mut impl Rng) -> u32 {
        loop {
            let candidate = self.activity.sample(rng);
            if rng.random::<f64>() < self.user(candidate).hour_affinity[hour] {
                return candidate;
            }
        }
    }

    /// Any user, uniformly: fraud victims are not chosen by how busy they are.
    pub(crate) fn draw_uniform(&self, rng: &mut impl Rng) -> u32 {
        rng.random_range(0..self.users.len() as u32)
    }
}

fn draw_profile(index: u32, rng: &mut impl Rng) -> UserProfile {
    let home = pick(&BASE_COUNTRY_MIX, rng.random()) as Country;
    let drifted_home = pick(&DRIFTED_COUNTRY_MIX, rng.random()) as Country;
    let move_rank = rng.random();
    let device = pick(&DEVICE_MIX, rng.random()) as Device;
    let log_typical =
        MEDIAN_TYPICAL_AMOUNT.ln() + TYPICAL_AMOUNT_LOG_SPREAD * rng.sample::<f64, _>(StandardNormal);
    let log_spread = rng.random_range(USER_AMOUNT_LOG_SPREAD.0..USER_AMOUNT_LOG_SPREAD.1);
    let centre = rng.random_range(PREFERRED_HOUR_CENTRE.0..PREFERRED_HOUR_CENTRE.1);
    let width = rng.random_range(PREFERRED_HOUR_WIDTH.0..PREFERRED_HOUR_WIDTH.1);
    UserProfile {
        id: format!("user-{:05}", u64::from(index) + 1).into_boxed_str(),
        home,
        drifted_home,
        move_rank,
        device,
        log_typical,
        log_spread,
        hour_affinity: hour_affinity(centre, width),
    }
}

/// A bump around `centre` (hours, UTC) of the given width, wrapping round midnight.
fn hour_affinity(centre: f64, width: f64) -> [f64; 24] {
    std::array::from_fn(|hour| {
        let distance = (hour as f64 + 0.5 - centre).abs();
        let distance = distance.min(24.0 - distance);
        let bump = (-distance * distance / (2.0 * width * width)).exp();
        AFFINITY_FLOOR + (1.0 - AFFINITY_FLOOR) * bump
    })
}

/// Σ activity × affinity per hour, scaled to a mean of 1 over the day.
fn relative_hourly_rate(users: &[UserProfile], activity: &[f64]) -> [f64; 24] {
    let mut rate = [0.0; 24];
    for (user, weight) in users.iter().zip(activity) {
        for (hour, slot) in rate.iter_mut().enumerate() {
            *slot += weight * user.hour_affinity[hour];
        }
    }
    let mean = rate.iter().sum::<f64>() / 24.0;
    rate.map(|r| r / mean)
}

pub(crate) fn draw_lognormal(log_median: f64, log_spread: f64, rng: &mut impl Rng) -> f64 {
    (log_median + log_spread * rng.sample::<f64, _>(StandardNormal)).exp()
}

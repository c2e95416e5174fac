//! The fixed category vocabularies (countries, devices) and the mixes they are drawn from.
//!
//! Key decision: categories are indices into `&'static str` tables, so events own no
//! category strings and nothing ever needs JSON or CSV escaping. Every draw from a mix
//! consumes exactly one uniform number, whatever the mix, so a drifting (blended) mix
//! leaves the random stream, and therefore the pre-onset events, untouched.

/// The countries of the fraud contract, in index order.
pub const COUNTRIES: [&str; 7] = ["US", "CA", "GB", "DE", "FR", "IN", "BR"];
/// The devices of the fraud contract, in index order.
pub const DEVICES: [&str; 3] = ["ios", "android", "web"];
/// The out-of-vocabulary country written by the `quality` scenario.
pub const UNKNOWN_COUNTRY: &str = "XX";
/// The out-of-vocabulary device written by the `quality` scenario.
pub const UNKNOWN_DEVICE: &str = "tablet";

/// Index of a country in [`COUNTRIES`].
pub(crate) type Country = u8;
/// Index of a device in [`DEVICES`].
pub(crate) type Device = u8;

/// Home-country mix of the population: US 40%, CA 10, GB 12, DE 12, FR 10, IN 10, BR 6.
pub(crate) const BASE_COUNTRY_MIX: [f64; 7] = [0.40, 0.10, 0.12, 0.12, 0.10, 0.10, 0.06];
/// Where the `categorical` scenario moves activity: IN and BR dominate.
pub(crate) const DRIFTED_COUNTRY_MIX: [f64; 7] = [0.08, 0.03, 0.03, 0.03, 0.03, 0.45, 0.35];
/// Usual-device mix of the population.
pub(crate) const DEVICE_MIX: [f64; 3] = [0.40, 0.35, 0.25];

/// The index that the uniform `u` in [0, 1) selects from `weights` (summing to 1).
pub(crate) fn pick(weights: &[f64], u: f64) -> usize {
    let mut cumulative = 0.0;
    for (index, weight) in weights.iter().enumerate() {
        cumulative += weight;
        if u < cumulative {
            return index;
        }
    }
    weights.len() - 1
}

/// Like [`pick`], but never returns `excluded`: the mix renormalised without it.
pub(crate) fn pick_excluding(weights: &[f64], excluded: usize, u: f64) -> usize {
    let total: f64 = 1.0 - weights[excluded];
    let mut remaining = u * total;
    let mut last = excluded;
    for (index, weight) in weights.iter().enumerate() {
        if index == excluded {
            continue;
        }
        last = index;
        if remaining < *weight {
            return index;
        }
        remaining -= weight;
    }
    last
}

/// The mix a fraction `t` (in [0, 1]) of the way from `from` to `to`.
pub(crate) fn blend(from: &[f64; 7], to: &[f64; 7], t: f64) -> [f64; 7] {
    std::array::from_fn(|index| from[index] * (1.0 - t) + to[index] * t)
}

/// A device other than `usual`, uniformly, from the uniform `u` in [0, 1).
pub(crate) fn other_device(usual: Device, u: f64) -> Device {
    let others = (DEVICES.len() - 1) as f64;
    let step = 1 + (u * others) as u8;
    (usual + step.min(others as u8)) % DEVICES.len() as u8
}

//! The `quality` scenario's defects: nulls, out-of-range amounts, unknown categories.
//!
//! Key decision: at most one defect per event, drawn from its own random stream with
//! probability `intensity × 15%`, so the defect rate is exact in expectation and the
//! rest of the stream (users, amounts, labels) is the same as without defects.

use rand::Rng;

use super::catalog::{UNKNOWN_COUNTRY, UNKNOWN_DEVICE};
use super::event::GeneratedEvent;

/// One way an event can be broken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Defect {
    NullAmount,
    NullCountry,
    NullDevice,
    NegativeAmount,
    HugeAmount,
    UnknownCountry,
    UnknownDevice,
}

const DEFECTS: [Defect; 7] = [
    Defect::NullAmount,
    Defect::NullCountry,
    Defect::NullDevice,
    Defect::NegativeAmount,
    Defect::HugeAmount,
    Defect::UnknownCountry,
    Defect::UnknownDevice,
];

/// Breaks `event` with probability `rate`; returns whether it did.
pub(crate) fn degrade(event: &mut GeneratedEvent, rate: f64, rng: &mut impl Rng) -> bool {
    if rate <= 0.0 || rng.random::<f64>() >= rate {
        return false;
    }
    let amount = event.transaction_amount.unwrap_or(1.0);
    match DEFECTS[rng.random_range(0..DEFECTS.len())] {
        Defect::NullAmount => event.transaction_amount = None,
        Defect::NullCountry => event.country = None,
        Defect::NullDevice => event.device = None,
        Defect::NegativeAmount => event.transaction_amount = Some(-amount.max(0.01)),
        Defect::HugeAmount => {
            let cents = rng.random_range(500_001..5_000_000);
            event.transaction_amount = Some(cents as f64 / 100.0);
        }
        Defect::UnknownCountry => event.country = Some(UNKNOWN_COUNTRY),
        Defect::UnknownDevice => event.device = Some(UNKNOWN_DEVICE),
    }
    true
}

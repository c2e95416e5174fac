//! Hand-rolled, allocation-free text for the hot path: amounts, RFC 3339 timestamps and
//! ULID-like event ids.
//!
//! Key decision: no `format!`, chrono formatting or `serde_json::Value` per event. The
//! timestamp text is cached per second, amounts are written from integer cents, and ids
//! are Crockford base32 of (event-time ms, seed tag, bijective mix of the event index),
//! which makes them unique within a stream by construction, not by luck.

/// Crockford's base32 alphabet (no I, L, O, U), as ULIDs use.
pub(crate) const CROCKFORD: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";

/// Length of an event id.
pub(crate) const EVENT_ID_LEN: usize = 26;

/// Appends `amount` with exactly two decimals (`83.20`, `-4.05`), rounding to cents.
pub(crate) fn write_amount(out: &mut Vec<u8>, amount: f64) {
    let cents = (amount * 100.0).round() as i64;
    if cents < 0 {
        out.push(b'-');
    }
    let cents = cents.unsigned_abs();
    write_decimal(out, cents / 100);
    let fraction = (cents % 100) as u8;
    out.extend_from_slice(&[b'.', b'0' + fraction / 10, b'0' + fraction % 10]);
}

/// Appends `value` in decimal.
pub(crate) fn write_decimal(out: &mut Vec<u8>, mut value: u64) {
    let mut digits = [0u8; 20];
    let mut start = digits.len();
    loop {
        start -= 1;
        digits[start] = b'0' + (value % 10) as u8;
        value /= 10;
        if value == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[start..]);
}

/// Rounds to cents, the precision every amount is written with.
pub(crate) fn round_to_cents(amount: f64) -> f64 {
    (amount * 100.0).round() / 100.0
}

/// `YYYY-MM-DDTHH:MM:SSZ` for unix seconds, remembering the last second formatted
/// (consecutive events often share one).
#[derive(Debug, Clone)]
pub(crate) struct TimestampText {
    second: i64,
    text: [u8; 20],
}

impl TimestampText {
    pub(crate) fn new() -> Self {
        let mut cache = Self {
            second: 0,
            text: *b"0000-00-00T00:00:00Z",
        };
        cache.render(0);
        cache
    }

    /// The RFC 3339 text of `second` (unix seconds, years 0 to 9999).
    pub(crate) fn format(&mut self, second: i64) -> &str {
        if second != self.second {
            self.render(second);
        }
        std::str::from_utf8(&self.text).expect("timestamp text is ASCII")
    }

    fn render(&mut self, second: i64) {
        let (year, month, day) = civil_from_days(second.div_euclid(86_400));
        let of_day = second.rem_euclid(86_400);
        let t = &mut self.text;
        put_digits(&mut t[0..4], year.clamp(0, 9999) as u64);
        put_digits(&mut t[5..7], u64::from(month));
        put_digits(&mut t[8..10], u64::from(day));
        put_digits(&mut t[11..13], (of_day / 3600) as u64);
        put_digits(&mut t[14..16], (of_day / 60 % 60) as u64);
        put_digits(&mut t[17..19], (of_day % 60) as u64);
        self.second = second;
    }
}

/// Writes `value` zero-padded into all of `slot`.
fn put_digits(slot: &mut [u8], mut value: u64) {
    for byte in slot.iter_mut().rev() {
        *byte = b'0' + (value % 10) as u8;
        value /= 10;
    }
}

/// (year, month, day) of a day count since 1970-01-01 in the proleptic Gregorian
/// calendar (Howard Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let shifted = days + 719_468;
    let era = shifted.div_euclid(146_097);
    let day_of_era = shifted.rem_euclid(146_097);
    let year_of_era = (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = (day_of_year - (153 * month_index + 2) / 5 + 1) as u32;
    let month = if month_index < 10 {
        month_index + 3
    } else {
        month_index - 9
    } as u32;
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// Deterministic, collision-free event ids for one seed.
#[derive(Debug, Clone, Copy)]
pub(crate) struct EventIds {
    key: u64,
    tag: u16,
}

impl EventIds {
    pub(crate) fn for_seed(seed: u64) -> Self {
        let key = mix64(seed ^ 0x6472_6966_746c_696e); // "driftlin"
        Self {
            key,
            tag: mix64(key) as u16,
        }
    }

    /// The id of the `index`-th event, stamped with its event time in unix ms. The low
    /// 64 bits are a bijection of `index`, so no two events of a stream share an id.
    pub(crate) fn id(&self, index: u64, unix_ms: i64) -> [u8; EVENT_ID_LEN] {
        let time = (unix_ms as u64) & ((1 << 48) - 1);
        let randomness = (u128::from(self.tag) << 64) | u128::from(mix64(index ^ self.key));
        let value = (u128::from(time) << 80) | randomness;
        std::array::from_fn(|i| CROCKFORD[((value >> (125 - 5 * i)) & 31) as usize])
    }
}

/// The splitmix64 finaliser: a bijection on u64 that scrambles every bit.
pub(crate) fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{DateTime, SecondsFormat};
    use proptest::prelude::*;

    fn amount_text(amount: f64) -> String {
        let mut out = Vec::new();
        write_amount(&mut out, amount);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn amounts_have_two_decimals() {
        assert_eq!(amount_text(83.2), "83.20");
        assert_eq!(amount_text(0.0), "0.00");
        assert_eq!(amount_text(0.05), "0.05");
        assert_eq!(amount_text(4999.999), "5000.00");
        assert_eq!(amount_text(-4.05), "-4.05");
        assert_eq!(amount_text(12345.6), "12345.60");
    }

    #[test]
    fn event_ids_are_crockford_and_sort_by_time() {
        let ids = EventIds::for_seed(1);
        let early = ids.id(5, 1_709_251_200_000);
        let late = ids.id(4, 1_709_251_200_001);
        assert!(early.iter().all(|c| CROCKFORD.contains(c)));
        assert!(early < late, "the time prefix orders ids");
        assert_ne!(ids.id(5, 0), EventIds::for_seed(2).id(5, 0));
    }

    proptest! {
        #[test]
        fn timestamps_match_chrono(second in -2_000_000_000i64..253_402_300_799) {
            let expected = DateTime::from_timestamp(second, 0)
                .unwrap()
                .to_rfc3339_opts(SecondsFormat::Secs, true);
            let mut text = TimestampText::new();
            prop_assert_eq!(text.format(second), expected);
        }

        #[test]
        fn amounts_parse_back_to_the_cent(cents in -1_000_000_000i64..1_000_000_000) {
            let amount = cents as f64 / 100.0;
            let parsed: f64 = amount_text(amount).parse().unwrap();
            prop_assert_eq!((parsed * 100.0).round() as i64, cents);
        }
    }
}

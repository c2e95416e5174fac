//! Event time: timestamps as microseconds since the Unix epoch (UTC) and spans such as
//! `1h` or `7d`.
//!
//! Key decision: a plain `i64` of microseconds is the one time type on every hot path
//! (ordering, windows, storage); RFC 3339 text exists only at the edges.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, SecondsFormat, Timelike, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Microseconds since 1970-01-01T00:00:00Z.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Timestamp(pub i64);

pub const MICROS_PER_SECOND: i64 = 1_000_000;

impl Timestamp {
    /// Parses RFC 3339 text (`2024-03-01T12:00:00Z`, fractional seconds and offsets
    /// allowed); the result is normalised to UTC.
    pub fn parse_rfc3339(text: &str) -> Result<Self, String> {
        if let Some(ts) = parse_utc_fast(text.as_bytes()) {
            return Ok(ts);
        }
        let parsed = DateTime::parse_from_rfc3339(text.trim())
            .map_err(|e| format!("'{text}' is not an RFC 3339 timestamp ({e})"))?;
        Ok(Self(parsed.timestamp_micros()))
    }

    /// The current wall-clock time.
    pub fn now() -> Self {
        Self(chrono::Utc::now().timestamp_micros())
    }

    pub fn from_unix_seconds(seconds: i64) -> Self {
        Self(seconds * MICROS_PER_SECOND)
    }

    pub fn micros(self) -> i64 {
        self.0
    }

    pub fn millis(self) -> i64 {
        self.0.div_euclid(1000)
    }

    /// Hour of day in UTC, 0..=23.
    pub fn hour_of_day(self) -> u32 {
        self.to_datetime().map(|t| t.hour()).unwrap_or(0)
    }

    /// Days since the epoch; the partition key of offline history.
    pub fn day_number(self) -> i64 {
        self.0.div_euclid(86_400 * MICROS_PER_SECOND)
    }

    pub fn to_datetime(self) -> Option<DateTime<Utc>> {
        DateTime::from_timestamp_micros(self.0)
    }

    pub fn to_rfc3339(self) -> String {
        match self.to_datetime() {
            Some(t) => t.to_rfc3339_opts(SecondsFormat::AutoSi, true),
            None => format!("@{}us", self.0),
        }
    }

    pub fn saturating_add(self, span: Span) -> Self {
        Self(self.0.saturating_add(span.0))
    }

    pub fn saturating_sub(self, span: Span) -> Self {
        Self(self.0.saturating_sub(span.0))
    }
}

/// The common shape `YYYY-MM-DDTHH:MM:SS[.f{1,9}]Z`, parsed without chrono's general
/// machinery (it is on every event's path). Anything else, or anything out of range,
/// returns `None` and goes through chrono, which also writes the error message.
fn parse_utc_fast(b: &[u8]) -> Option<Timestamp> {
    if b.len() < 20 || b.last() != Some(&b'Z') {
        return None;
    }
    let punctuation = [(4, b'-'), (7, b'-'), (10, b'T'), (13, b':'), (16, b':')];
    if punctuation
        .iter()
        .any(|&(i, c)| b[i] != c && !(i == 10 && b[i] == b't'))
    {
        return None;
    }
    let number = |range: std::ops::Range<usize>| -> Option<i64> {
        b[range].iter().try_fold(0i64, |n, d| {
            d.is_ascii_digit().then(|| n * 10 + i64::from(d - b'0'))
        })
    };
    let (year, month, day) = (number(0..4)?, number(5..7)?, number(8..10)?);
    let (hour, minute, second) = (number(11..13)?, number(14..16)?, number(17..19)?);
    let micros = match &b[19..b.len() - 1] {
        [] => 0,
        [b'.', digits @ ..] if (1..=9).contains(&digits.len()) => {
            let mut value = number(20..20 + digits.len())?;
            for _ in digits.len()..6 {
                value *= 10;
            }
            for _ in 6..digits.len() {
                value /= 10;
            }
            value
        }
        _ => return None,
    };
    let in_range = (1..=12).contains(&month)
        && (1..=days_in_month(year, month)).contains(&day)
        && hour < 24
        && minute < 60
        && second < 60;
    if !in_range {
        return None;
    }
    let seconds = days_from_civil(year, month, day) * 86_400 + hour * 3_600 + minute * 60 + second;
    Some(Timestamp(seconds * MICROS_PER_SECOND + micros))
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let month_index = (month + 9) % 12;
    let day_of_year = (153 * month_index + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_rfc3339())
    }
}

impl FromStr for Timestamp {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse_rfc3339(s)
    }
}

/// A non-negative length of event time, written as a number and a unit:
/// `250ms`, `30s`, `10m`, `1h`, `7d`, `2w`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Span(pub i64);

impl Span {
    pub const ZERO: Span = Span(0);

    pub fn from_seconds(seconds: i64) -> Self {
        Self(seconds * MICROS_PER_SECOND)
    }

    pub fn micros(self) -> i64 {
        self.0
    }
}

impl FromStr for Span {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let text = text.trim();
        let split = text
            .find(|c: char| !c.is_ascii_digit())
            .ok_or_else(|| format!("'{text}' has no unit (use ms, s, m, h, d or w, as in '24h')"))?;
        let (digits, unit) = text.split_at(split);
        let amount: i64 = digits
            .parse()
            .map_err(|_| format!("'{text}' must start with a whole number, as in '24h'"))?;
        let unit_micros = match unit {
            "ms" => 1_000,
            "s" => MICROS_PER_SECOND,
            "m" => 60 * MICROS_PER_SECOND,
            "h" => 3_600 * MICROS_PER_SECOND,
            "d" => 86_400 * MICROS_PER_SECOND,
            "w" => 7 * 86_400 * MICROS_PER_SECOND,
            other => {
                return Err(format!(
                    "'{text}' has unknown unit '{other}' (use ms, s, m, h, d or w)"
                ));
            }
        };
        amount
            .checked_mul(unit_micros)
            .map(Span)
            .ok_or_else(|| format!("'{text}' is too long"))
    }
}

impl fmt::Display for Span {
    /// Days from two days up, then hours, minutes, seconds, milliseconds: "24h", "7d",
    /// "30d", "90m", the way people write windows.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const DAY: i64 = 86_400 * MICROS_PER_SECOND;
        if self.0 >= 2 * DAY && self.0 % DAY == 0 {
            return write!(f, "{}d", self.0 / DAY);
        }
        const UNITS: [(&str, i64); 4] = [
            ("h", 3_600 * MICROS_PER_SECOND),
            ("m", 60 * MICROS_PER_SECOND),
            ("s", MICROS_PER_SECOND),
            ("ms", 1_000),
        ];
        for (unit, size) in UNITS {
            if self.0 != 0 && self.0 % size == 0 {
                return write!(f, "{}{unit}", self.0 / size);
            }
        }
        write!(f, "{}us", self.0)
    }
}

impl Serialize for Span {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Span {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_parse_and_print_in_their_largest_whole_unit() {
        assert_eq!("1h".parse::<Span>().unwrap(), Span::from_seconds(3600));
        assert_eq!("7d".parse::<Span>().unwrap().to_string(), "7d");
        assert_eq!("1w".parse::<Span>().unwrap().to_string(), "7d");
        assert_eq!("24h".parse::<Span>().unwrap().to_string(), "24h");
        assert_eq!("1d".parse::<Span>().unwrap().to_string(), "24h");
        assert_eq!("90m".parse::<Span>().unwrap().to_string(), "90m");
        assert_eq!("250ms".parse::<Span>().unwrap().micros(), 250_000);
    }

    #[test]
    fn spans_without_unit_or_number_are_rejected_with_the_reason() {
        assert!("24".parse::<Span>().unwrap_err().contains("no unit"));
        assert!("h".parse::<Span>().unwrap_err().contains("whole number"));
        assert!("3y".parse::<Span>().unwrap_err().contains("unknown unit 'y'"));
    }

    proptest::proptest! {
        /// The fast path must agree with chrono on every input, valid or not.
        #[test]
        fn the_fast_path_agrees_with_chrono(
            year in 0i64..10000, month in 0i64..14, day in 0i64..33, hour in 0i64..25,
            minute in 0i64..61, second in 0i64..61, fraction in proptest::option::of("[0-9]{1,9}"),
        ) {
            let fraction = fraction.map(|f| format!(".{f}")).unwrap_or_default();
            let text = format!("{year:04}-{month:02}-{day:02}T{hour:02}:{minute:02}:{second:02}{fraction}Z");
            let chrono = DateTime::parse_from_rfc3339(&text).ok().map(|t| t.timestamp_micros());
            let fast = parse_utc_fast(text.as_bytes()).map(|t| t.micros());
            if let Some(fast) = fast {
                proptest::prop_assert_eq!(Some(fast), chrono, "{}", text);
            }
            proptest::prop_assert_eq!(Timestamp::parse_rfc3339(&text).ok().map(|t| t.micros()), chrono, "{}", text);
        }

        #[test]
        fn arbitrary_text_never_panics_and_matches_chrono(text in "[0-9T:.Z-]{18,32}") {
            let chrono = DateTime::parse_from_rfc3339(text.trim()).ok().map(|t| t.timestamp_micros());
            proptest::prop_assert_eq!(Timestamp::parse_rfc3339(&text).ok().map(|t| t.micros()), chrono);
        }
    }

    #[test]
    fn timestamps_normalise_offsets_to_utc() {
        let a = Timestamp::parse_rfc3339("2024-03-01T12:00:00Z").unwrap();
        let b = Timestamp::parse_rfc3339("2024-03-01T13:00:00+01:00").unwrap();
        assert_eq!(a, b);
        assert_eq!(a.to_rfc3339(), "2024-03-01T12:00:00Z");
        assert_eq!(a.hour_of_day(), 12);
        assert!(Timestamp::parse_rfc3339("2024-03-01 12:00").is_err());
    }
}

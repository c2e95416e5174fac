//! Per-entity feature state: the entity's recent events, kept in event-time order.
//!
//! Key decision: state holds the raw recent events (time, id hash and field values)
//! rather than running aggregates. Every feature is then computed from exactly the
//! events strictly before the one being scored, in the same order, whether the caller is
//! serving (online state) or building a training set (replaying history). That makes
//! point-in-time correctness and train/serve equality hold by construction, lets
//! out-of-order events within the allowed lateness slot into place, and bounds memory
//! by the retention span and a per-entity event cap.
//!
//! A state also counts the events ever inserted into it ([`EntityState::applied`]): its
//! version. Applying is deterministic and every worker applies an entity's events in the
//! order of its Kafka partition, so of two states of one entity the one with more events
//! applied is the later one; the shared store keeps the later one (see [`crate::redis`]).

use driftline_core::event::{Event, FieldValue};
use driftline_core::features::FeatureSpec;
use driftline_core::time::Timestamp;

/// Total order of an entity's events: event time, then a hash of the event id to break
/// ties deterministically.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct EventKey {
    pub ts: i64,
    pub id: u64,
}

impl EventKey {
    pub fn of(event: &Event) -> Self {
        Self {
            ts: event.ts.micros(),
            id: id_hash(&event.event_id),
        }
    }
}

/// The stable 64-bit hash of an event id used for ordering ties and de-duplication.
pub fn id_hash(event_id: &str) -> u64 {
    xxhash_rust::xxh3::xxh3_64(event_id.as_bytes())
}

/// Where a feature vector is taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AsOf {
    /// Strictly before this event: what the event itself is scored and trained with.
    Before(EventKey),
    /// After every event at or before this time: the entity's current picture.
    Through(Timestamp),
}

impl AsOf {
    pub fn time(self) -> i64 {
        match self {
            AsOf::Before(key) => key.ts,
            AsOf::Through(ts) => ts.micros(),
        }
    }
}

/// What applying an event to state did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    Inserted,
    /// The same (event id, event time) is already in state.
    Duplicate,
    /// Older than the entity's latest event minus the allowed lateness.
    Late {
        watermark: i64,
    },
}

/// One entity's retained events in ascending [`EventKey`] order, with their field values
/// stored flat (`width` values per event; categories as their index, missing as NaN).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct EntityState {
    keys: Vec<EventKey>,
    values: Vec<f64>,
    /// Index of the first live event; evicted events before it are dropped lazily.
    head: usize,
    width: usize,
    /// The latest event time ever applied (evicted or not).
    watermark: i64,
    /// Events ever inserted (evicted or not): the state's version.
    applied: u64,
}

impl EntityState {
    pub fn new(width: usize) -> Self {
        Self {
            width,
            watermark: i64::MIN,
            ..Self::default()
        }
    }

    /// Live events, oldest first.
    pub fn keys(&self) -> &[EventKey] {
        &self.keys[self.head..]
    }

    /// Field values of the `i`-th live event.
    pub fn values_of(&self, i: usize) -> &[f64] {
        let start = (self.head + i) * self.width;
        &self.values[start..start + self.width]
    }

    pub fn len(&self) -> usize {
        self.keys.len() - self.head
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn width(&self) -> usize {
        self.width
    }

    pub fn watermark(&self) -> Option<Timestamp> {
        (self.watermark != i64::MIN).then_some(Timestamp(self.watermark))
    }

    /// Events ever inserted into this state, evicted or not: its version (module header).
    pub fn applied(&self) -> u64 {
        self.applied
    }

    pub fn latest_key(&self) -> Option<EventKey> {
        self.keys().last().copied()
    }

    /// Number of live events strictly before `as_of`.
    pub fn position(&self, as_of: AsOf) -> usize {
        match as_of {
            AsOf::Before(key) => self.keys().partition_point(|k| *k < key),
            AsOf::Through(ts) => self.keys().partition_point(|k| k.ts <= ts.micros()),
        }
    }

    /// Applies one event: inserted in order, or refused as a duplicate or as late.
    pub fn apply(&mut self, event: &Event, spec: &FeatureSpec) -> Applied {
        let key = EventKey::of(event);
        // Events nearly always arrive in order: then they go at the end, no search needed.
        let at = match self.keys().last() {
            Some(last) if key <= *last => self.keys().partition_point(|k| *k < key),
            _ => self.len(),
        };
        if self.keys().get(at) == Some(&key) {
            return Applied::Duplicate;
        }
        if self.watermark != i64::MIN
            && key.ts < self.watermark.saturating_sub(spec.allowed_lateness.micros())
        {
            return Applied::Late {
                watermark: self.watermark,
            };
        }
        self.insert_at(at, key, &event.values);
        self.watermark = self.watermark.max(key.ts);
        self.applied += 1;
        self.evict(spec);
        Applied::Inserted
    }

    fn insert_at(&mut self, at: usize, key: EventKey, values: &[FieldValue]) {
        debug_assert_eq!(values.len(), self.width);
        let flat = values.iter().map(|v| match v {
            FieldValue::Number(x) => *x,
            FieldValue::Category(c) => f64::from(*c),
            FieldValue::Missing => f64::NAN,
        });
        if at == self.len() {
            self.keys.push(key);
            self.values.extend(flat);
        } else {
            let index = self.head + at;
            self.keys.insert(index, key);
            let start = index * self.width;
            self.values.splice(start..start, flat);
        }
    }

    /// Drops events older than the retention span and beyond the per-entity cap.
    fn evict(&mut self, spec: &FeatureSpec) {
        let horizon = self.watermark.saturating_sub(spec.retention.micros());
        let expired = match self.keys().first() {
            Some(oldest) if oldest.ts < horizon => self.keys().partition_point(|k| k.ts < horizon),
            _ => 0,
        };
        let over_cap = self.len().saturating_sub(spec.max_events_per_entity);
        self.head += expired.max(over_cap);
        if self.head > 32 && self.head * 2 > self.keys.len() {
            self.keys.drain(..self.head);
            self.values.drain(..self.head * self.width);
            self.head = 0;
        }
    }

    /// Appends the binary form: a format byte, events applied, watermark, width, count,
    /// keys, values. The Redis store's compare-and-set reads the events applied where they
    /// are, right after the format byte (`crate::redis`): keep them there.
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.push(STATE_FORMAT);
        out.extend_from_slice(&self.applied.to_le_bytes());
        out.extend_from_slice(&self.watermark.to_le_bytes());
        out.extend_from_slice(&(self.width as u32).to_le_bytes());
        out.extend_from_slice(&(self.len() as u32).to_le_bytes());
        for key in self.keys() {
            out.extend_from_slice(&key.ts.to_le_bytes());
            out.extend_from_slice(&key.id.to_le_bytes());
        }
        for value in &self.values[self.head * self.width..] {
            out.extend_from_slice(&value.to_le_bytes());
        }
    }

    /// Reads the form written by [`EntityState::encode`], returning the bytes consumed.
    /// Format 1 (before states counted their events) reads with its live events as the
    /// count: a lower bound, so a later state never looks older than it.
    pub fn decode(bytes: &[u8]) -> Result<(Self, usize), String> {
        let mut r = ByteReader { bytes, at: 0 };
        let format = r.take::<1>()?[0];
        let applied = match format {
            STATE_FORMAT => Some(u64::from_le_bytes(r.take()?)),
            FORMAT_WITHOUT_COUNT => None,
            _ => return Err(format!("unknown entity state format {format}")),
        };
        let watermark = i64::from_le_bytes(r.take()?);
        let width = u32::from_le_bytes(r.take()?) as usize;
        let len = u32::from_le_bytes(r.take()?) as usize;
        let mut keys = Vec::with_capacity(len);
        for _ in 0..len {
            let ts = i64::from_le_bytes(r.take()?);
            let id = u64::from_le_bytes(r.take()?);
            keys.push(EventKey { ts, id });
        }
        let mut values = Vec::with_capacity(len * width);
        for _ in 0..len * width {
            values.push(f64::from_le_bytes(r.take()?));
        }
        if keys.windows(2).any(|w| w[0] >= w[1]) {
            return Err("entity state events are out of order".into());
        }
        let state = Self {
            applied: applied.unwrap_or(keys.len() as u64),
            keys,
            values,
            head: 0,
            width,
            watermark,
        };
        Ok((state, r.at))
    }
}

const STATE_FORMAT: u8 = 2;
/// The format before [`EntityState::applied`] existed; still read (snapshots, Redis).
const FORMAT_WITHOUT_COUNT: u8 = 1;

struct ByteReader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl ByteReader<'_> {
    fn take<const N: usize>(&mut self) -> Result<[u8; N], String> {
        let end = self.at + N;
        let chunk = self
            .bytes
            .get(self.at..end)
            .ok_or_else(|| format!("entity state is truncated at byte {}", self.at))?;
        self.at = end;
        Ok(chunk.try_into().expect("length checked"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use driftline_core::config::Config;

    fn event(id: &str, ts: i64, amount: f64) -> Event {
        Event {
            event_id: id.into(),
            entity: "u".into(),
            ts: Timestamp::from_unix_seconds(ts),
            label: None,
            values: vec![
                FieldValue::Number(amount),
                FieldValue::Category(1),
                FieldValue::Missing,
            ],
        }
    }

    #[test]
    fn out_of_order_events_within_lateness_are_inserted_in_place() {
        let spec = Config::fraud_default().features;
        let mut state = EntityState::new(3);
        assert_eq!(
            state.apply(&event("a-0000000000", 1000, 1.0), &spec),
            Applied::Inserted
        );
        assert_eq!(
            state.apply(&event("c-0000000000", 1200, 3.0), &spec),
            Applied::Inserted
        );
        assert_eq!(
            state.apply(&event("b-0000000000", 1100, 2.0), &spec),
            Applied::Inserted
        );
        let amounts: Vec<f64> = (0..state.len()).map(|i| state.values_of(i)[0]).collect();
        assert_eq!(amounts, [1.0, 2.0, 3.0]);
        assert!(state.values_of(0)[2].is_nan());
    }

    #[test]
    fn replays_are_duplicates_and_events_beyond_lateness_are_late() {
        let spec = Config::fraud_default().features;
        let mut state = EntityState::new(3);
        state.apply(&event("a-0000000000", 10_000, 1.0), &spec);
        assert_eq!(
            state.apply(&event("a-0000000000", 10_000, 1.0), &spec),
            Applied::Duplicate
        );
        let late = state.apply(&event("z-0000000000", 10_000 - 601, 1.0), &spec);
        assert!(matches!(late, Applied::Late { .. }));
        assert_eq!(state.len(), 1);
    }

    #[test]
    fn retention_and_the_cap_bound_memory() {
        let mut spec = Config::fraud_default().features;
        spec.max_events_per_entity = 50;
        let mut state = EntityState::new(3);
        for i in 0..200 {
            state.apply(&event(&format!("id-{i:08}"), i, i as f64), &spec);
        }
        assert_eq!(state.len(), 50);
        assert_eq!(state.values_of(0)[0], 150.0);
        let day = 86_400;
        state.apply(&event("far-00000000", 200 + 40 * day, 0.0), &spec);
        assert_eq!(state.len(), 1, "everything older than 30d + lateness is gone");
    }

    #[test]
    fn encoding_round_trips() {
        let spec = Config::fraud_default().features;
        let mut state = EntityState::new(3);
        for i in 0..100 {
            state.apply(&event(&format!("id-{i:08}"), i * 10, i as f64 * 1.5), &spec);
        }
        let mut bytes = Vec::new();
        state.encode(&mut bytes);
        let (decoded, used) = EntityState::decode(&bytes).unwrap();
        assert_eq!(used, bytes.len());
        assert_eq!(decoded.keys(), state.keys());
        assert_eq!(decoded.watermark, state.watermark);
        assert_eq!(decoded.applied(), 100);
        assert!(EntityState::decode(&bytes[..bytes.len() - 1]).is_err());
    }

    #[test]
    fn the_count_of_applied_events_outlives_eviction_and_ignores_refusals() {
        let mut spec = Config::fraud_default().features;
        spec.max_events_per_entity = 10;
        let mut state = EntityState::new(3);
        for i in 0..30 {
            state.apply(&event(&format!("id-{i:08}"), 1000 + i, 1.0), &spec);
        }
        state.apply(&event("id-00000029", 1029, 1.0), &spec);
        state.apply(&event("late-0000000", 1, 1.0), &spec);
        assert_eq!((state.len(), state.applied()), (10, 30));
    }

    #[test]
    fn format_1_reads_with_its_live_events_as_the_count() {
        let spec = Config::fraud_default().features;
        let mut state = EntityState::new(3);
        for i in 0..5 {
            state.apply(&event(&format!("id-{i:08}"), i, 2.0), &spec);
        }
        let mut bytes = Vec::new();
        state.encode(&mut bytes);
        // Format 1 is format 2 without the count after the format byte.
        let mut old = vec![FORMAT_WITHOUT_COUNT];
        old.extend_from_slice(&bytes[9..]);
        let (decoded, used) = EntityState::decode(&old).unwrap();
        assert_eq!(used, old.len());
        let mut again = Vec::new();
        decoded.encode(&mut again);
        assert_eq!(again, bytes, "the same state, counted 5");
    }
}

//! The event contract: fields declared in configuration, and the validator that turns a
//! raw JSON object or CSV row into a typed [`Record`].
//!
//! Key decision: JSON is decoded straight into per-field slots by a `DeserializeSeed`
//! that knows the contract (no intermediate `serde_json::Value`, no allocation per
//! key), and validation collects every bad field before failing, so a producer learns
//! everything wrong with a record from one error.

use std::borrow::Cow;
use std::fmt;

use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde::{Deserialize, Serialize};

use crate::event::{Event, FieldError, FieldValue, InvalidRecord, LabelUpdate, Record};
use crate::time::{Span, Timestamp};

/// `[contract]` in `driftline.toml`: the shape every event must have.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ContractConfig {
    /// Name of the field holding the entity id (the key of per-entity feature state).
    pub entity: String,
    /// Name of the event id field. Ids must be unique per event; absent ids are generated.
    pub event_id: String,
    /// Name of the event-time field (RFC 3339).
    pub timestamp: String,
    /// Name of the optional 0/1 label field.
    pub label: String,
    /// Shortest accepted event id.
    pub min_event_id_len: usize,
    /// How far in the future (relative to the time the record was received) an event
    /// time may be before the record is rejected.
    pub max_clock_skew: Span,
    /// What to do with keys the contract does not declare: `ignore` or `reject`.
    pub unknown_fields: UnknownFields,
    /// The data fields, in order.
    pub fields: Vec<FieldConfig>,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum UnknownFields {
    Ignore,
    Reject,
}

/// One `[[contract.fields]]` entry.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct FieldConfig {
    /// The key in the event.
    pub name: String,
    /// `float` (a finite number) or `category` (one of `values`).
    #[serde(rename = "type")]
    pub kind: FieldType,
    /// Whether the field must be present and non-null.
    #[serde(default = "yes")]
    pub required: bool,
    /// Smallest accepted value (float fields).
    #[serde(default)]
    pub min: Option<f64>,
    /// Largest accepted value (float fields).
    #[serde(default)]
    pub max: Option<f64>,
    /// The accepted categories, case-sensitive (category fields).
    #[serde(default)]
    pub values: Vec<String>,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum FieldType {
    Float,
    Category,
}

impl Default for ContractConfig {
    /// The fraud demo's contract, the shipped default.
    fn default() -> Self {
        let category = |name: &str, values: &[&str]| FieldConfig {
            name: name.into(),
            kind: FieldType::Category,
            required: true,
            min: None,
            max: None,
            values: values.iter().map(|v| v.to_string()).collect(),
        };
        Self {
            entity: "user_id".into(),
            event_id: "event_id".into(),
            timestamp: "event_ts".into(),
            label: "label".into(),
            min_event_id_len: 10,
            max_clock_skew: Span::from_seconds(300),
            unknown_fields: UnknownFields::Ignore,
            fields: vec![
                FieldConfig {
                    name: "transaction_amount".into(),
                    kind: FieldType::Float,
                    required: true,
                    min: Some(0.0),
                    max: Some(5000.0),
                    values: vec![],
                },
                category("country", &["US", "CA", "GB", "DE", "FR", "IN", "BR"]),
                category("device", &["ios", "android", "web"]),
            ],
        }
    }
}

/// A checked data field.
#[derive(Debug, Clone, PartialEq)]
pub struct Field {
    pub name: String,
    pub required: bool,
    pub kind: FieldKind,
}

#[derive(Debug, Clone, PartialEq)]
pub enum FieldKind {
    Float { min: f64, max: f64 },
    Category { values: Vec<String> },
}

/// The checked contract. Build it with [`Contract::new`].
#[derive(Debug, Clone, PartialEq)]
pub struct Contract {
    entity: String,
    event_id: String,
    timestamp: String,
    label: String,
    min_event_id_len: usize,
    max_clock_skew: Span,
    reject_unknown: bool,
    fields: Vec<Field>,
}

/// Slot positions of the four reserved fields; data fields follow.
const ENTITY: usize = 0;
const EVENT_ID: usize = 1;
const TIMESTAMP: usize = 2;
const LABEL: usize = 3;
const RESERVED: usize = 4;
const MAX_ID_LEN: usize = 128;
const MAX_ENTITY_LEN: usize = 256;

impl Contract {
    /// Checks a `[contract]` section; errors name the offending key.
    pub fn new(config: &ContractConfig) -> Result<Self, String> {
        let mut names = vec![
            ("entity".to_string(), &config.entity),
            ("event_id".to_string(), &config.event_id),
            ("timestamp".to_string(), &config.timestamp),
            ("label".to_string(), &config.label),
        ];
        for (i, f) in config.fields.iter().enumerate() {
            names.push((format!("fields[{i}].name"), &f.name));
        }
        for (i, (key, name)) in names.iter().enumerate() {
            if name.trim().is_empty() {
                return Err(format!("contract.{key}: a field name must not be empty"));
            }
            if names[..i].iter().any(|(_, other)| other == name) {
                return Err(format!("contract.{key}: field name '{name}' is used twice"));
            }
        }
        let fields = config
            .fields
            .iter()
            .enumerate()
            .map(|(i, f)| check_field(i, f))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            entity: config.entity.clone(),
            event_id: config.event_id.clone(),
            timestamp: config.timestamp.clone(),
            label: config.label.clone(),
            min_event_id_len: config.min_event_id_len,
            max_clock_skew: config.max_clock_skew,
            reject_unknown: config.unknown_fields == UnknownFields::Reject,
            fields,
        })
    }

    pub fn fields(&self) -> &[Field] {
        &self.fields
    }

    pub fn field_index(&self, name: &str) -> Option<usize> {
        self.fields.iter().position(|f| f.name == name)
    }

    pub fn entity_field(&self) -> &str {
        &self.entity
    }

    pub fn event_id_field(&self) -> &str {
        &self.event_id
    }

    pub fn timestamp_field(&self) -> &str {
        &self.timestamp
    }

    pub fn label_field(&self) -> &str {
        &self.label
    }

    fn slot_of(&self, key: &str) -> Option<usize> {
        if key == self.entity {
            Some(ENTITY)
        } else if key == self.event_id {
            Some(EVENT_ID)
        } else if key == self.timestamp {
            Some(TIMESTAMP)
        } else if key == self.label {
            Some(LABEL)
        } else {
            self.fields
                .iter()
                .position(|f| f.name == key)
                .map(|i| i + RESERVED)
        }
    }

    /// Decodes one JSON object into slots. Malformed JSON is a whole-record error.
    pub fn parse_json<'a>(&self, json: &'a [u8]) -> Result<RawRecord<'a>, InvalidRecord> {
        let mut de = serde_json::Deserializer::from_slice(json);
        let raw = RecordSeed { contract: self }
            .deserialize(&mut de)
            .and_then(|raw| de.end().map(|_| raw))
            .map_err(|e| InvalidRecord::whole(format!("not a valid JSON object: {e}")))?;
        Ok(raw)
    }

    /// Validates decoded slots into a record, reporting every bad field at once.
    pub fn validate(&self, raw: RawRecord<'_>, ctx: &ValidateContext<'_>) -> Result<Record, InvalidRecord> {
        let mut errors = Vec::new();
        let path = |name: &str| format!("{}{name}", ctx.path_prefix);
        for key in &raw.unknown {
            errors.push(FieldError {
                field: path(key),
                reason: "is not a field of the contract".into(),
            });
        }
        if self.is_label_only(&raw, ctx) {
            return self.validate_label_only(&raw, ctx, errors);
        }
        let entity = self.check_entity(&raw.slots[ENTITY], ctx, &mut errors);
        let ts = self.check_timestamp(&raw.slots[TIMESTAMP], ctx, &mut errors);
        let event_id = self.check_event_id(&raw.slots[EVENT_ID], ctx, &mut errors);
        let label = check_label(&raw.slots[LABEL]).map_err(|reason| FieldError {
            field: path(&self.label),
            reason,
        });
        let label = label.unwrap_or_else(|e| {
            errors.push(e);
            None
        });
        let values: Vec<FieldValue> = self
            .fields
            .iter()
            .zip(&raw.slots[RESERVED..])
            .map(|(field, slot)| {
                check_value(field, slot).unwrap_or_else(|reason| {
                    errors.push(FieldError {
                        field: path(&field.name),
                        reason,
                    });
                    FieldValue::Missing
                })
            })
            .collect();
        if !errors.is_empty() {
            return Err(InvalidRecord { errors });
        }
        let (entity, ts) = (entity.expect("checked"), ts.expect("checked"));
        let event_id = event_id.unwrap_or_else(|| ctx.ids.generate(ts));
        Ok(Record::Event(Event {
            event_id,
            entity,
            ts,
            label,
            values,
        }))
    }

    /// Parses and validates one JSON record in one step.
    pub fn validate_json(&self, json: &[u8], ctx: &ValidateContext<'_>) -> Result<Record, InvalidRecord> {
        let raw = self.parse_json(json)?;
        self.validate(raw, ctx)
    }

    /// A record with an id and a label and nothing else is a delayed label.
    fn is_label_only(&self, raw: &RawRecord<'_>, ctx: &ValidateContext<'_>) -> bool {
        let present = |slot: &Slot<'_>| !matches!(slot, Slot::Absent);
        ctx.default_entity.is_none()
            && present(&raw.slots[EVENT_ID])
            && present(&raw.slots[LABEL])
            && !present(&raw.slots[ENTITY])
            && !present(&raw.slots[TIMESTAMP])
            && !raw.slots[RESERVED..].iter().any(present)
    }

    fn validate_label_only(
        &self,
        raw: &RawRecord<'_>,
        ctx: &ValidateContext<'_>,
        mut errors: Vec<FieldError>,
    ) -> Result<Record, InvalidRecord> {
        let event_id = self.check_event_id(&raw.slots[EVENT_ID], ctx, &mut errors);
        let label = match check_label(&raw.slots[LABEL]) {
            Ok(Some(label)) => Some(label),
            Ok(None) => {
                errors.push(FieldError {
                    field: format!("{}{}", ctx.path_prefix, self.label),
                    reason: "a label record needs a 0 or 1 label".into(),
                });
                None
            }
            Err(reason) => {
                errors.push(FieldError {
                    field: format!("{}{}", ctx.path_prefix, self.label),
                    reason,
                });
                None
            }
        };
        match (event_id, label) {
            (Some(event_id), Some(label)) if errors.is_empty() => {
                Ok(Record::Label(LabelUpdate { event_id, label }))
            }
            _ => Err(InvalidRecord { errors }),
        }
    }

    fn check_entity(
        &self,
        slot: &Slot<'_>,
        ctx: &ValidateContext<'_>,
        errors: &mut Vec<FieldError>,
    ) -> Option<String> {
        let fail = |errors: &mut Vec<FieldError>, reason: String| {
            errors.push(FieldError {
                field: format!("{}{}", ctx.path_prefix, self.entity),
                reason,
            })
        };
        let from_event = match slot {
            Slot::Absent | Slot::Null => None,
            Slot::Text(text) => Some(text.as_ref()),
            other => {
                fail(errors, format!("must be a string, got {}", other.describe()));
                return None;
            }
        };
        let entity = match (from_event, ctx.default_entity) {
            (Some(own), Some(outer)) if own != outer => {
                fail(
                    errors,
                    format!("'{own}' does not match the request's {} '{outer}'", self.entity),
                );
                return None;
            }
            (Some(own), _) => own,
            (None, Some(outer)) => outer,
            (None, None) => {
                fail(errors, "is required".into());
                return None;
            }
        };
        if entity.trim().is_empty() {
            fail(errors, "must not be empty".into());
            None
        } else if entity.len() > MAX_ENTITY_LEN {
            fail(
                errors,
                format!("is {} bytes long; the limit is {MAX_ENTITY_LEN}", entity.len()),
            );
            None
        } else {
            Some(entity.to_string())
        }
    }

    fn check_timestamp(
        &self,
        slot: &Slot<'_>,
        ctx: &ValidateContext<'_>,
        errors: &mut Vec<FieldError>,
    ) -> Option<Timestamp> {
        let result = match slot {
            Slot::Absent | Slot::Null => Err("is required".to_string()),
            Slot::Text(text) => Timestamp::parse_rfc3339(text).and_then(|ts| {
                let limit = ctx.now.saturating_add(self.max_clock_skew);
                if ts > limit {
                    Err(format!(
                        "{ts} is in the future by more than the allowed clock skew of {} (received at {})",
                        self.max_clock_skew, ctx.now
                    ))
                } else {
                    Ok(ts)
                }
            }),
            other => Err(format!("must be an RFC 3339 string, got {}", other.describe())),
        };
        result
            .map_err(|reason| {
                errors.push(FieldError {
                    field: format!("{}{}", ctx.path_prefix, self.timestamp),
                    reason,
                })
            })
            .ok()
    }

    fn check_event_id(
        &self,
        slot: &Slot<'_>,
        ctx: &ValidateContext<'_>,
        errors: &mut Vec<FieldError>,
    ) -> Option<String> {
        let result = match slot {
            Slot::Absent | Slot::Null => return None,
            Slot::Text(id) if char_count(id) < self.min_event_id_len => Err(format!(
                "'{id}' is shorter than the minimum of {} characters",
                self.min_event_id_len
            )),
            Slot::Text(id) if id.len() > MAX_ID_LEN => Err(format!("is longer than {MAX_ID_LEN} bytes")),
            Slot::Text(id) if has_space_or_control(id) => {
                Err("must not contain whitespace or control characters".into())
            }
            Slot::Text(id) => Ok(id.to_string()),
            other => Err(format!("must be a string, got {}", other.describe())),
        };
        result
            .map_err(|reason| {
                errors.push(FieldError {
                    field: format!("{}{}", ctx.path_prefix, self.event_id),
                    reason,
                })
            })
            .ok()
    }
}

/// Characters in `text`; ids are nearly always ASCII, where that is the byte length.
fn char_count(text: &str) -> usize {
    if text.is_ascii() {
        text.len()
    } else {
        text.chars().count()
    }
}

fn has_space_or_control(text: &str) -> bool {
    if text.is_ascii() {
        text.bytes().any(|b| b <= b' ' || b == 0x7f)
    } else {
        text.chars().any(|c| c.is_control() || c.is_whitespace())
    }
}

fn check_field(index: usize, f: &FieldConfig) -> Result<Field, String> {
    let at = format!("contract.fields[{index}] ({})", f.name);
    let kind = match f.kind {
        FieldType::Float => {
            if !f.values.is_empty() {
                return Err(format!("{at}: `values` only applies to category fields"));
            }
            let (min, max) = (f.min.unwrap_or(f64::MIN), f.max.unwrap_or(f64::MAX));
            if min.is_nan() || max.is_nan() || min > max {
                return Err(format!("{at}: min {min} is above max {max}"));
            }
            FieldKind::Float { min, max }
        }
        FieldType::Category => {
            if f.min.is_some() || f.max.is_some() {
                return Err(format!("{at}: `min` and `max` only apply to float fields"));
            }
            if f.values.is_empty() {
                return Err(format!("{at}: a category field needs a non-empty `values` list"));
            }
            if f.values.len() > u16::MAX as usize {
                return Err(format!("{at}: at most {} categories", u16::MAX));
            }
            for (i, v) in f.values.iter().enumerate() {
                if f.values[..i].contains(v) {
                    return Err(format!("{at}: category '{v}' is listed twice"));
                }
            }
            FieldKind::Category {
                values: f.values.clone(),
            }
        }
    };
    Ok(Field {
        name: f.name.clone(),
        required: f.required,
        kind,
    })
}

fn check_label(slot: &Slot<'_>) -> Result<Option<bool>, String> {
    match slot {
        Slot::Absent | Slot::Null => Ok(None),
        Slot::Bool(b) => Ok(Some(*b)),
        Slot::Number(x) if *x == 0.0 => Ok(Some(false)),
        Slot::Number(x) if *x == 1.0 => Ok(Some(true)),
        Slot::Text(t) if matches!(t.trim(), "0" | "false") => Ok(Some(false)),
        Slot::Text(t) if matches!(t.trim(), "1" | "true") => Ok(Some(true)),
        other => Err(format!("must be 0 or 1, got {}", other.describe())),
    }
}

fn check_value(field: &Field, slot: &Slot<'_>) -> Result<FieldValue, String> {
    if matches!(slot, Slot::Absent | Slot::Null) {
        return if field.required {
            Err("is required".into())
        } else {
            Ok(FieldValue::Missing)
        };
    }
    match &field.kind {
        FieldKind::Float { min, max } => {
            let x = match slot {
                Slot::Number(x) => *x,
                Slot::Text(t) => t
                    .trim()
                    .parse::<f64>()
                    .map_err(|_| format!("must be a number, got '{t}'"))?,
                other => return Err(format!("must be a number, got {}", other.describe())),
            };
            if !x.is_finite() {
                Err(format!("must be a finite number, got {x}"))
            } else if x < *min {
                Err(format!("{x} is below the minimum {min}"))
            } else if x > *max {
                Err(format!("{x} is above the maximum {max}"))
            } else {
                Ok(FieldValue::Number(x))
            }
        }
        FieldKind::Category { values } => match slot {
            Slot::Text(t) => values
                .iter()
                .position(|v| v == t)
                .map(|i| FieldValue::Category(i as u16))
                .ok_or_else(|| format!("'{t}' is not one of {}", values.join(", "))),
            other => Err(format!(
                "must be one of {}, got {}",
                values.join(", "),
                other.describe()
            )),
        },
    }
}

/// Where ids come from for events that arrive without one.
#[derive(Debug, Clone, Copy)]
pub enum IdSource<'a> {
    /// A fresh random ULID (requests that are not replayed).
    Random,
    /// A ULID derived from the record's bytes and its event time, so replaying the same
    /// record yields the same id and de-duplication holds.
    DerivedFrom(&'a [u8]),
}

impl IdSource<'_> {
    fn generate(&self, ts: Timestamp) -> String {
        let millis = ts.millis().clamp(0, (1i64 << 48) - 1) as u64;
        match self {
            IdSource::Random => ulid::Ulid::from_parts(millis, rand_bits()).to_string(),
            IdSource::DerivedFrom(bytes) => {
                let hash = xxhash_rust::xxh3::xxh3_128(bytes);
                ulid::Ulid::from_parts(millis, hash).to_string()
            }
        }
    }
}

fn rand_bits() -> u128 {
    ulid::Ulid::new().random()
}

/// What validation needs to know besides the record itself.
#[derive(Debug, Clone, Copy)]
pub struct ValidateContext<'a> {
    /// When the record was received; timestamps beyond `now + max_clock_skew` are
    /// rejected. Stream consumers pass the record's append time, so a replay decides
    /// exactly as the first pass did.
    pub now: Timestamp,
    /// The entity from the enclosing request (`{"user_id": ..., "event": {...}}`).
    pub default_entity: Option<&'a str>,
    /// Prefix for field paths in errors, such as `event.`.
    pub path_prefix: &'a str,
    pub ids: IdSource<'a>,
}

/// A record decoded into slots (entity, event id, timestamp, label, then data fields).
#[derive(Debug, Clone, PartialEq)]
pub struct RawRecord<'a> {
    slots: Vec<Slot<'a>>,
    unknown: Vec<Cow<'a, str>>,
}

impl RawRecord<'_> {
    fn empty(contract: &Contract) -> Self {
        Self {
            slots: vec![Slot::Absent; RESERVED + contract.fields.len()],
            unknown: Vec::new(),
        }
    }
}

/// One decoded value before validation.
#[derive(Debug, Clone, PartialEq)]
pub enum Slot<'a> {
    Absent,
    Null,
    Bool(bool),
    Number(f64),
    Text(Cow<'a, str>),
    /// A JSON array or object, named for the error message.
    Other(&'static str),
}

impl Slot<'_> {
    fn describe(&self) -> String {
        match self {
            Slot::Absent => "nothing".into(),
            Slot::Null => "null".into(),
            Slot::Bool(b) => format!("the boolean {b}"),
            Slot::Number(x) => format!("the number {x}"),
            Slot::Text(t) => format!("the string '{t}'"),
            Slot::Other(what) => (*what).into(),
        }
    }
}

struct RecordSeed<'c> {
    contract: &'c Contract,
}

impl<'de> DeserializeSeed<'de> for RecordSeed<'_> {
    type Value = RawRecord<'de>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for RecordSeed<'_> {
    type Value = RawRecord<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut raw = RawRecord::empty(self.contract);
        while let Some(key) = map.next_key::<Cow<'de, str>>()? {
            match self.contract.slot_of(&key) {
                Some(slot) => raw.slots[slot] = map.next_value::<SlotValue<'de>>()?.0,
                None => {
                    map.next_value::<IgnoredAny>()?;
                    if self.contract.reject_unknown {
                        raw.unknown.push(key);
                    }
                }
            }
        }
        Ok(raw)
    }
}

struct SlotValue<'a>(Slot<'a>);

impl<'de> Deserialize<'de> for SlotValue<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(SlotVisitor)
    }
}

struct SlotVisitor;

impl<'de> Visitor<'de> for SlotVisitor {
    type Value = SlotValue<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Self::Value, E> {
        Ok(SlotValue(Slot::Bool(v)))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Self::Value, E> {
        Ok(SlotValue(Slot::Number(v as f64)))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Self::Value, E> {
        Ok(SlotValue(Slot::Number(v as f64)))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Self::Value, E> {
        Ok(SlotValue(Slot::Number(v)))
    }
    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(SlotValue(Slot::Text(Cow::Borrowed(v))))
    }
    fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
        Ok(SlotValue(Slot::Text(Cow::Owned(v.to_owned()))))
    }
    fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
        Ok(SlotValue(Slot::Text(Cow::Owned(v))))
    }
    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(SlotValue(Slot::Null))
    }
    fn visit_none<E>(self) -> Result<Self::Value, E> {
        Ok(SlotValue(Slot::Null))
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(SlotValue(Slot::Other("an array")))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(SlotValue(Slot::Other("an object")))
    }
}

#[cfg(test)]
mod tests;

//! Validated records: what the contract's validator produces and everything downstream
//! consumes.
//!
//! Key decision: field values are a small `Copy` enum indexed by the contract's field
//! order (categories as indexes into the declared list), so feature code never touches
//! strings or maps on the hot path.

use crate::time::Timestamp;

/// One validated event of the contract.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub event_id: String,
    pub entity: String,
    pub ts: Timestamp,
    /// The label when the event carries one; labels may also arrive later by `event_id`.
    pub label: Option<bool>,
    /// One value per data field of the contract, in declaration order.
    pub values: Vec<FieldValue>,
}

/// A data field's value after validation.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum FieldValue {
    /// Absent or null in an optional field.
    Missing,
    Number(f64),
    /// Index into the field's declared categories.
    Category(u16),
}

impl FieldValue {
    pub fn as_number(self) -> Option<f64> {
        match self {
            FieldValue::Number(x) => Some(x),
            _ => None,
        }
    }

    pub fn as_category(self) -> Option<u16> {
        match self {
            FieldValue::Category(c) => Some(c),
            _ => None,
        }
    }
}

/// A label that arrives after its event, joined by `event_id` when history is read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabelUpdate {
    pub event_id: String,
    pub label: bool,
}

/// What one stream record turns out to be.
#[derive(Debug, Clone, PartialEq)]
pub enum Record {
    Event(Event),
    Label(LabelUpdate),
}

/// One field that failed validation: its path (`event.transaction_amount`, or `$` for
/// the whole record) and the reason in plain words.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct FieldError {
    pub field: String,
    pub reason: String,
}

/// Every problem found in one record, reported together.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, serde::Serialize)]
#[error("{}", describe(.errors))]
pub struct InvalidRecord {
    pub errors: Vec<FieldError>,
}

impl InvalidRecord {
    pub fn whole(reason: impl Into<String>) -> Self {
        Self {
            errors: vec![FieldError {
                field: "$".into(),
                reason: reason.into(),
            }],
        }
    }
}

fn describe(errors: &[FieldError]) -> String {
    let parts: Vec<String> = errors
        .iter()
        .map(|e| format!("{}: {}", e.field, e.reason))
        .collect();
    match parts.len() {
        1 => parts[0].clone(),
        n => format!("{n} invalid fields: {}", parts.join("; ")),
    }
}

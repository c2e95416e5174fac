//! One generated event and its two wire forms: a JSON object and a CSV row.
//!
//! Key decision: the writers append bytes directly (no serde, no `Value`), in the
//! contract's field order, because every category comes from a fixed ASCII vocabulary
//! that never needs escaping; only nulls need care (JSON `null`, empty CSV cell).

use super::format::write_amount;

/// Header line of the CSV form (no line terminator), same as the sample data.
pub const CSV_HEADER: &str = "event_id,user_id,transaction_amount,country,device,event_ts,label";

/// One synthetic transaction.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct GeneratedEvent {
    /// 26-character ULID-like id (Crockford base32), unique within a stream.
    pub event_id: String,
    /// `user-00042`.
    pub user_id: String,
    /// Two decimals; `None` or outside `0..=5000` only in the `quality` scenario.
    pub transaction_amount: Option<f64>,
    /// One of `US CA GB DE FR IN BR`; `None` or `XX` only in the `quality` scenario.
    pub country: Option<&'static str>,
    /// One of `ios android web`; `None` or `tablet` only in the `quality` scenario.
    pub device: Option<&'static str>,
    /// RFC 3339 UTC with second precision, e.g. `2024-03-01T12:00:00Z`.
    pub event_ts: String,
    /// 1 for fraud, 0 for legitimate (after a little label noise).
    pub label: u8,
    /// How far the scenario's drift has progressed at this event, in [0, 1]. Not written.
    pub drift_intensity: f64,
}

impl GeneratedEvent {
    /// Appends the event as one JSON object (no line terminator), fields in contract
    /// order.
    pub fn write_json(&self, out: &mut Vec<u8>) {
        self.write_json_fields(out);
        out.extend_from_slice(b",\"label\":");
        out.push(b'0' + self.label);
        out.push(b'}');
    }

    /// Like [`write_json`](Self::write_json) without the label: the event as it arrives
    /// before anyone knows whether it was fraud (the label follows later, by `event_id`).
    pub fn write_json_unlabelled(&self, out: &mut Vec<u8>) {
        self.write_json_fields(out);
        out.push(b'}');
    }

    fn write_json_fields(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(b"{\"event_id\":\"");
        out.extend_from_slice(self.event_id.as_bytes());
        out.extend_from_slice(b"\",\"user_id\":\"");
        out.extend_from_slice(self.user_id.as_bytes());
        out.extend_from_slice(b"\",\"transaction_amount\":");
        match self.transaction_amount {
            Some(amount) => write_amount(out, amount),
            None => out.extend_from_slice(b"null"),
        }
        out.extend_from_slice(b",\"country\":");
        write_json_string(out, self.country);
        out.extend_from_slice(b",\"device\":");
        write_json_string(out, self.device);
        out.extend_from_slice(b",\"event_ts\":\"");
        out.extend_from_slice(self.event_ts.as_bytes());
        out.push(b'"');
    }

    /// Appends the event as one CSV row matching [`CSV_HEADER`] (no line terminator);
    /// nulls are empty cells.
    pub fn write_csv_row(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self.event_id.as_bytes());
        out.push(b',');
        out.extend_from_slice(self.user_id.as_bytes());
        out.push(b',');
        if let Some(amount) = self.transaction_amount {
            write_amount(out, amount);
        }
        out.push(b',');
        out.extend_from_slice(self.country.unwrap_or("").as_bytes());
        out.push(b',');
        out.extend_from_slice(self.device.unwrap_or("").as_bytes());
        out.push(b',');
        out.extend_from_slice(self.event_ts.as_bytes());
        out.push(b',');
        out.push(b'0' + self.label);
    }
}

/// A quoted vocabulary word, or `null`.
fn write_json_string(out: &mut Vec<u8>, value: Option<&str>) {
    match value {
        Some(text) => {
            out.push(b'"');
            out.extend_from_slice(text.as_bytes());
            out.push(b'"');
        }
        None => out.extend_from_slice(b"null"),
    }
}

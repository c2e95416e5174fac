//! HTTP ingest: `POST /v1/events` and `POST /v1/feedback` append records to the embedded
//! event log, which the server's ingest thread then applies like any other producer's.
//!
//! Key decision: every record of a request is validated by the contract first, and the
//! request is all or nothing: one bad record refuses the whole request (422, each bad
//! field named with its index), so a client never has to guess which half landed. Valid
//! records are appended as the exact bytes received, flushed (and fsynced when
//! `log.fsync`) before the answer, so a 202 means durable. The log's writer lock is taken
//! on first use and kept; if another producer holds it, the request is refused with 503.

use std::path::PathBuf;
use std::sync::Mutex;

use driftline_core::contract::{Contract, IdSource, ValidateContext};
use driftline_core::event::{FieldError, LabelUpdate, Record};
use driftline_core::time::Timestamp;
use driftline_stream::log::{LogConfig, LogError, LogWriter};
use serde::Serialize;
use serde_json::value::RawValue;

use crate::error::ApiError;

/// The most records one request may carry.
pub const MAX_RECORDS: usize = 10_000;

/// The event log HTTP ingest appends to.
pub struct LogSink {
    dir: PathBuf,
    config: LogConfig,
    writer: Mutex<Option<LogWriter>>,
}

/// What a request appended.
#[derive(Debug, Serialize)]
pub struct Appended {
    pub accepted: usize,
    /// The log offset of the first record appended.
    pub first_offset: u64,
    /// The delayed labels among them (for joining with recent predictions).
    #[serde(skip)]
    pub labels: Vec<LabelUpdate>,
}

/// Which records an endpoint takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Events (label optional).
    Events,
    /// Delayed labels: `{"event_id": ..., "label": 0|1}`.
    Labels,
}

impl LogSink {
    /// A sink for the log in `dir` (opened on first append).
    pub fn new(dir: PathBuf, config: LogConfig) -> Self {
        LogSink {
            dir,
            config,
            writer: Mutex::new(None),
        }
    }

    /// Validates every record, then appends them all and flushes. Blocking (file I/O).
    pub fn append(
        &self,
        contract: &Contract,
        records: &[&RawValue],
        kind: Kind,
    ) -> Result<Appended, ApiError> {
        let labels = validate(contract, records, kind)?;
        let mut guard = self.writer.lock().expect("log writer lock");
        if guard.is_none() {
            *guard = Some(LogWriter::open(&self.dir, self.config).map_err(open_error)?);
        }
        let writer = guard.as_mut().expect("opened above");
        let now = chrono::Utc::now().timestamp_micros();
        let first_offset = writer.next_offset();
        for record in records {
            writer
                .append(record.get().as_bytes(), now)
                .map_err(|e| ApiError::Internal(format!("appending to the event log: {e}")))?;
        }
        writer
            .flush()
            .map_err(|e| ApiError::Internal(format!("flushing the event log: {e}")))?;
        Ok(Appended {
            accepted: records.len(),
            first_offset,
            labels,
        })
    }
}

fn open_error(error: LogError) -> ApiError {
    match error {
        LogError::Locked { .. } => ApiError::Busy(
            "another producer holds the event log's writer lock (a running `driftline gen --to log`?)".into(),
        ),
        other => ApiError::Internal(format!("opening the event log: {other}")),
    }
}

/// Every record must be of `kind` and valid; all errors are reported, paths prefixed with
/// the record's index when there are several. Returns the labels among them.
fn validate(contract: &Contract, records: &[&RawValue], kind: Kind) -> Result<Vec<LabelUpdate>, ApiError> {
    let mut labels = Vec::new();
    let now = Timestamp::now();
    let mut errors = Vec::new();
    for (i, record) in records.iter().enumerate() {
        let prefix = if records.len() == 1 {
            String::new()
        } else {
            format!("{}[{i}].", kind.field())
        };
        let bytes = record.get().as_bytes();
        let ctx = ValidateContext {
            now,
            default_entity: None,
            path_prefix: &prefix,
            ids: IdSource::DerivedFrom(bytes),
        };
        match (contract.validate_json(bytes, &ctx), kind) {
            (Ok(Record::Event(_)), Kind::Events) => {}
            (Ok(Record::Label(update)), Kind::Labels) => labels.push(update),
            (Ok(_), _) => errors.push(FieldError {
                // The whole record: `$` alone, or the record's index in a batch.
                field: if prefix.is_empty() {
                    "$".into()
                } else {
                    prefix.trim_end_matches('.').into()
                },
                reason: kind.wrong_kind().into(),
            }),
            (Err(invalid), _) => errors.extend(invalid.errors),
        }
    }
    if errors.is_empty() {
        Ok(labels)
    } else {
        Err(ApiError::Invalid(errors))
    }
}

impl Kind {
    /// The batch field name: `events` or `labels`.
    pub fn field(self) -> &'static str {
        match self {
            Kind::Events => "events",
            Kind::Labels => "labels",
        }
    }

    fn wrong_kind(self) -> &'static str {
        match self {
            Kind::Events => "is a delayed label (only an id and a label): send it to /v1/feedback",
            Kind::Labels => "is an event: feedback takes only {\"event_id\": ..., \"label\": 0 or 1}",
        }
    }
}

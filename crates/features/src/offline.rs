//! The offline store seam and its embedded implementation: Parquet files partitioned by
//! event day.
//!
//! Layout under the store's root:
//! `events/day=YYYY-MM-DD/part-{first_offset:020}-{end_offset:020}.parquet` and
//! `labels/part-{first_offset:020}-{end_offset:020}.parquet`, where the offsets are the
//! log range the file came from. Key decision: files are written once per ingest
//! checkpoint (never per event) and named by their log range, so after a crash any file
//! beyond the last committed offset is recognisably uncommitted and is deleted before
//! those events are replayed: history never holds an event twice.

use std::collections::HashMap;
use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::builder::{
    Float64Builder, Int8Builder, StringBuilder, TimestampMicrosecondBuilder, UInt64Builder,
};
use arrow_array::cast::AsArray;
use arrow_array::types::{Float64Type, Int8Type, TimestampMicrosecondType};
use arrow_array::{Array, ArrayRef, RecordBatch};
use arrow_schema::{DataType, Field, Schema, SchemaRef, TimeUnit};
use driftline_core::contract::{Contract, FieldKind};
use driftline_core::event::{Event, FieldValue, LabelUpdate};
use driftline_core::time::Timestamp;
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;

use crate::state::EventKey;

#[derive(Debug, thiserror::Error)]
pub enum OfflineError {
    #[error("{action} {path}: {source}")]
    Io {
        action: &'static str,
        path: String,
        source: std::io::Error,
    },
    #[error("parquet file {path}: {reason}")]
    Format { path: String, reason: String },
    /// The PostgreSQL offline store failed (what it was doing and why).
    #[error("offline store: {0}")]
    Database(String),
}

fn io_error(action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> OfflineError {
    let path = path.display().to_string();
    move |source| OfflineError::Io { action, path, source }
}

fn format_error(path: &Path) -> impl Fn(String) -> OfflineError {
    let path = path.display().to_string();
    move |reason| OfflineError::Format {
        path: path.clone(),
        reason,
    }
}

/// An event bound for history with the log offset it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct HistoryEvent {
    pub offset: u64,
    pub event: Event,
}

/// Event history for training: append in batches, scan in event-time order.
pub trait OfflineStore: Send + Sync {
    /// Durably appends the events and labels read from the log range `offsets`.
    fn append(
        &self,
        offsets: std::ops::Range<u64>,
        events: &[HistoryEvent],
        labels: &[LabelUpdate],
    ) -> Result<(), OfflineError>;

    /// Removes anything appended from offsets at or after `offset` (uncommitted work).
    fn discard_from(&self, offset: u64) -> Result<(), OfflineError>;

    /// Whether it keeps one row per event id, ignoring an event appended again (so ingest
    /// may offer it an event it cannot tell was stored: see `Ingestor`'s duplicates).
    fn keyed_by_event_id(&self) -> bool {
        false
    }

    /// Calls `visit` with the events whose time is in `[from, to)`, in ascending
    /// event-time order, one day at a time, with delayed labels joined by `event_id`
    /// (a delayed label overrides the one the event carried).
    fn scan(
        &self,
        from: Option<Timestamp>,
        to: Option<Timestamp>,
        visit: &mut dyn FnMut(&[Event]) -> Result<(), OfflineError>,
    ) -> Result<(), OfflineError>;
}

/// The offline store `[offline_store]` names, for the data directory at `paths`:
/// Parquet files there, or the `[postgres]` database shared by every worker.
pub fn open_store(
    config: &driftline_core::config::Config,
    paths: &crate::paths::DataPaths,
) -> Result<Arc<dyn OfflineStore>, OfflineError> {
    use driftline_core::config::OfflineBackend;
    let settings = &config.settings;
    match settings.offline_store.backend {
        OfflineBackend::Parquet => Ok(Arc::new(ParquetOfflineStore::new(
            paths.offline(),
            config.contract.clone(),
        ))),
        #[cfg(feature = "postgres")]
        OfflineBackend::Postgres => {
            let source = match &settings.offline_store.source {
                Some(source) => source.clone(),
                None => default_source(paths.root()),
            };
            let store = crate::offline_pg::PostgresOfflineStore::open(
                &settings.postgres,
                config.contract.clone(),
                &source,
            )?;
            Ok(Arc::new(store))
        }
        #[cfg(not(feature = "postgres"))]
        OfflineBackend::Postgres => Err(OfflineError::Database(
            "offline_store.backend = \"postgres\" needs the cargo feature `postgres`, which this build leaves out".into(),
        )),
    }
}

/// This host's name and the data directory's absolute path: stable across restarts of
/// one worker, distinct between workers.
#[cfg(feature = "postgres")]
fn default_source(data_dir: &Path) -> String {
    let host = std::env::var("HOSTNAME")
        .ok()
        .or_else(|| fs::read_to_string("/proc/sys/kernel/hostname").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into());
    let dir = fs::canonicalize(data_dir).unwrap_or_else(|_| data_dir.to_path_buf());
    format!("{host}:{}", dir.display())
}

/// Parquet files on the local filesystem.
pub struct ParquetOfflineStore {
    root: PathBuf,
    contract: Contract,
    schema: SchemaRef,
}

impl ParquetOfflineStore {
    pub fn new(root: impl Into<PathBuf>, contract: Contract) -> Self {
        let schema = event_schema(&contract);
        Self {
            root: root.into(),
            contract,
            schema,
        }
    }

    fn events_dir(&self) -> PathBuf {
        self.root.join("events")
    }

    fn labels_dir(&self) -> PathBuf {
        self.root.join("labels")
    }

    /// Every committed event file, by day directory in ascending order.
    fn day_dirs(&self) -> Result<Vec<(i64, PathBuf)>, OfflineError> {
        let dir = self.events_dir();
        let mut days = Vec::new();
        for entry in list(&dir)? {
            let name = entry
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or_default()
                .to_string();
            if let Some(day) = name.strip_prefix("day=").and_then(parse_day) {
                days.push((day, entry));
            }
        }
        days.sort();
        Ok(days)
    }

    fn write_events(
        &self,
        offsets: &std::ops::Range<u64>,
        events: &[HistoryEvent],
    ) -> Result<(), OfflineError> {
        let mut by_day: HashMap<i64, Vec<&HistoryEvent>> = HashMap::new();
        for e in events {
            by_day.entry(e.event.ts.day_number()).or_default().push(e);
        }
        for (day, events) in by_day {
            let dir = self.events_dir().join(format!("day={}", format_day(day)));
            fs::create_dir_all(&dir).map_err(io_error("creating", &dir))?;
            let batch = self.events_batch(&events)?;
            write_parquet(&dir.join(part_name(offsets)), batch)?;
        }
        Ok(())
    }

    fn events_batch(&self, events: &[&HistoryEvent]) -> Result<RecordBatch, OfflineError> {
        let n = events.len();
        let mut offsets = UInt64Builder::with_capacity(n);
        let mut ids = StringBuilder::with_capacity(n, n * 26);
        let mut entities = StringBuilder::with_capacity(n, n * 12);
        let mut times = TimestampMicrosecondBuilder::with_capacity(n).with_timezone("UTC");
        let mut labels = Int8Builder::with_capacity(n);
        for e in events {
            offsets.append_value(e.offset);
            ids.append_value(&e.event.event_id);
            entities.append_value(&e.event.entity);
            times.append_value(e.event.ts.micros());
            labels.append_option(e.event.label.map(i8::from));
        }
        let mut columns: Vec<ArrayRef> = vec![
            Arc::new(offsets.finish()),
            Arc::new(ids.finish()),
            Arc::new(entities.finish()),
            Arc::new(times.finish()),
            Arc::new(labels.finish()),
        ];
        for (i, field) in self.contract.fields().iter().enumerate() {
            columns.push(match &field.kind {
                FieldKind::Float { .. } => {
                    let mut b = Float64Builder::with_capacity(n);
                    for e in events {
                        b.append_option(e.event.values[i].as_number());
                    }
                    Arc::new(b.finish())
                }
                FieldKind::Category { values } => {
                    let mut b = StringBuilder::with_capacity(n, n * 4);
                    for e in events {
                        b.append_option(e.event.values[i].as_category().map(|c| &values[c as usize]));
                    }
                    Arc::new(b.finish())
                }
            });
        }
        RecordBatch::try_new(self.schema.clone(), columns).map_err(|e| OfflineError::Format {
            path: self.root.display().to_string(),
            reason: e.to_string(),
        })
    }

    fn read_events(&self, path: &Path, out: &mut Vec<Event>) -> Result<(), OfflineError> {
        let bad = format_error(path);
        for batch in read_parquet(path)? {
            let column = |name: &str| {
                batch
                    .column_by_name(name)
                    .cloned()
                    .ok_or_else(|| bad(format!("has no column {name}")))
            };
            let ids = column("event_id")?;
            let ids = ids.as_string::<i32>();
            let entities = column(self.contract.entity_field())?;
            let entities = entities.as_string::<i32>();
            let times = column(self.contract.timestamp_field())?;
            let times = times.as_primitive::<TimestampMicrosecondType>();
            let labels = column(self.contract.label_field())?;
            let labels = labels.as_primitive::<Int8Type>();
            let fields: Vec<ArrayRef> = self
                .contract
                .fields()
                .iter()
                .map(|f| column(&f.name))
                .collect::<Result<_, _>>()?;
            for row in 0..batch.num_rows() {
                let values = self
                    .contract
                    .fields()
                    .iter()
                    .zip(&fields)
                    .map(|(field, array)| field_value(&field.kind, array, row))
                    .collect();
                out.push(Event {
                    event_id: ids.value(row).to_string(),
                    entity: entities.value(row).to_string(),
                    ts: Timestamp(times.value(row)),
                    label: labels.is_valid(row).then(|| labels.value(row) != 0),
                    values,
                });
            }
        }
        Ok(())
    }

    fn delayed_labels(&self) -> Result<HashMap<String, bool>, OfflineError> {
        let mut labels = HashMap::new();
        let mut files = list(&self.labels_dir())?;
        files.sort();
        for path in files.iter().filter(|p| is_part(p)) {
            for batch in read_parquet(path)? {
                let ids = batch.column(0).as_string::<i32>();
                let values = batch.column(1).as_primitive::<Int8Type>();
                for row in 0..batch.num_rows() {
                    labels.insert(ids.value(row).to_string(), values.value(row) != 0);
                }
            }
        }
        Ok(labels)
    }
}

fn field_value(kind: &FieldKind, array: &ArrayRef, row: usize) -> FieldValue {
    if array.is_null(row) {
        return FieldValue::Missing;
    }
    match kind {
        FieldKind::Float { .. } => FieldValue::Number(array.as_primitive::<Float64Type>().value(row)),
        FieldKind::Category { values } => {
            let text = array.as_string::<i32>().value(row);
            values
                .iter()
                .position(|v| v == text)
                .map(|c| FieldValue::Category(c as u16))
                .unwrap_or(FieldValue::Missing)
        }
    }
}

impl OfflineStore for ParquetOfflineStore {
    fn append(
        &self,
        offsets: std::ops::Range<u64>,
        events: &[HistoryEvent],
        labels: &[LabelUpdate],
    ) -> Result<(), OfflineError> {
        if !events.is_empty() {
            self.write_events(&offsets, events)?;
        }
        if !labels.is_empty() {
            let dir = self.labels_dir();
            fs::create_dir_all(&dir).map_err(io_error("creating", &dir))?;
            let mut ids = StringBuilder::new();
            let mut values = Int8Builder::new();
            for l in labels {
                ids.append_value(&l.event_id);
                values.append_value(i8::from(l.label));
            }
            let schema = Arc::new(Schema::new(vec![
                Field::new("event_id", DataType::Utf8, false),
                Field::new(self.contract.label_field(), DataType::Int8, false),
            ]));
            let batch = RecordBatch::try_new(schema, vec![Arc::new(ids.finish()), Arc::new(values.finish())])
                .map_err(|e| format_error(&dir)(e.to_string()))?;
            write_parquet(&dir.join(part_name(&offsets)), batch)?;
        }
        Ok(())
    }

    fn discard_from(&self, offset: u64) -> Result<(), OfflineError> {
        let mut files = list(&self.labels_dir())?;
        for (_, day) in self.day_dirs()? {
            files.extend(list(&day)?);
        }
        for file in files {
            let uncommitted = part_first_offset(&file).is_some_and(|first| first >= offset);
            let temporary = file.extension().is_some_and(|e| e == "tmp");
            if uncommitted || temporary {
                fs::remove_file(&file).map_err(io_error("removing", &file))?;
                tracing::info!(file = %file.display(), "removed uncommitted history file");
            }
        }
        Ok(())
    }

    fn scan(
        &self,
        from: Option<Timestamp>,
        to: Option<Timestamp>,
        visit: &mut dyn FnMut(&[Event]) -> Result<(), OfflineError>,
    ) -> Result<(), OfflineError> {
        let labels = self.delayed_labels()?;
        let first_day = from.map(Timestamp::day_number).unwrap_or(i64::MIN);
        let last_day = to
            .map(|t| Timestamp(t.micros() - 1).day_number())
            .unwrap_or(i64::MAX);
        let in_range = |ts: Timestamp| from.is_none_or(|f| ts >= f) && to.is_none_or(|t| ts < t);
        for (day, dir) in self.day_dirs()? {
            if day < first_day || day > last_day {
                continue;
            }
            let mut events = Vec::new();
            let mut files = list(&dir)?;
            files.retain(|f| is_part(f));
            files.sort();
            for file in files {
                self.read_events(&file, &mut events)?;
            }
            events.retain(|e| in_range(e.ts));
            for e in &mut events {
                if let Some(label) = labels.get(&e.event_id) {
                    e.label = Some(*label);
                }
            }
            events.sort_by_cached_key(EventKey::of);
            visit(&events)?;
        }
        Ok(())
    }
}

/// The columns identifying an event, shared by history files and training sets:
/// event id, entity, event time (UTC microseconds) and the nullable 0/1 label.
pub(crate) fn event_key_fields(contract: &Contract) -> Vec<Field> {
    vec![
        Field::new("event_id", DataType::Utf8, false),
        Field::new(contract.entity_field(), DataType::Utf8, false),
        Field::new(
            contract.timestamp_field(),
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            false,
        ),
        Field::new(contract.label_field(), DataType::Int8, true),
    ]
}

fn event_schema(contract: &Contract) -> SchemaRef {
    let mut fields = vec![Field::new("log_offset", DataType::UInt64, false)];
    fields.extend(event_key_fields(contract));
    for field in contract.fields() {
        let data_type = match field.kind {
            FieldKind::Float { .. } => DataType::Float64,
            FieldKind::Category { .. } => DataType::Utf8,
        };
        fields.push(Field::new(&field.name, data_type, true));
    }
    Arc::new(Schema::new(fields))
}

/// Writes one Parquet file atomically (temporary name, fsync, rename).
pub fn write_parquet(path: &Path, batch: RecordBatch) -> Result<(), OfflineError> {
    let tmp = path.with_extension("tmp");
    let file = File::create(&tmp).map_err(io_error("creating", &tmp))?;
    let props = WriterProperties::builder()
        .set_compression(Compression::SNAPPY)
        .build();
    let bad = format_error(path);
    let mut writer =
        ArrowWriter::try_new(file, batch.schema(), Some(props)).map_err(|e| bad(e.to_string()))?;
    writer.write(&batch).map_err(|e| bad(e.to_string()))?;
    let file = writer.into_inner().map_err(|e| bad(e.to_string()))?;
    file.sync_all().map_err(io_error("syncing", &tmp))?;
    fs::rename(&tmp, path).map_err(io_error("renaming", path))?;
    Ok(())
}

fn read_parquet(path: &Path) -> Result<Vec<RecordBatch>, OfflineError> {
    let bad = format_error(path);
    let file = File::open(path).map_err(io_error("opening", path))?;
    let reader = ParquetRecordBatchReaderBuilder::try_new(file)
        .and_then(|b| b.with_batch_size(8192).build())
        .map_err(|e| bad(e.to_string()))?;
    reader.map(|b| b.map_err(|e| bad(e.to_string()))).collect()
}

fn list(dir: &Path) -> Result<Vec<PathBuf>, OfflineError> {
    match fs::read_dir(dir) {
        Ok(entries) => entries
            .map(|e| e.map(|e| e.path()).map_err(io_error("listing", dir)))
            .collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(io_error("listing", dir)(e)),
    }
}

fn part_name(offsets: &std::ops::Range<u64>) -> String {
    format!("part-{:020}-{:020}.parquet", offsets.start, offsets.end)
}

fn is_part(path: &Path) -> bool {
    path.extension().is_some_and(|e| e == "parquet")
}

fn part_first_offset(path: &Path) -> Option<u64> {
    let name = path.file_name()?.to_str()?;
    name.strip_prefix("part-")?.split('-').next()?.parse().ok()
}

fn format_day(day: i64) -> String {
    Timestamp(day * 86_400 * 1_000_000).to_rfc3339()[..10].to_string()
}

fn parse_day(text: &str) -> Option<i64> {
    Timestamp::parse_rfc3339(&format!("{text}T00:00:00Z"))
        .ok()
        .map(Timestamp::day_number)
}

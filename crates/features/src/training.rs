//! Point-in-time training sets: history replayed in event-time order through the
//! feature engine.
//!
//! Key decision: the row for event `e` is computed from the entity's state *before* `e`
//! is applied, with the same [`FeatureEngine`] and [`EntityState`] that serving uses, so
//! a row can only see the entity's events strictly before `e`, and equals the vector
//! the online store gives for `e`. History before `--from` (one retention span) is
//! replayed too, so the first rows have full windows.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::builder::{Float64Builder, Int8Builder, StringBuilder, TimestampMicrosecondBuilder};
use arrow_array::{ArrayRef, RecordBatch};
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use driftline_core::contract::Contract;
use driftline_core::event::Event;
use driftline_core::features::FeatureVector;
use driftline_core::time::Timestamp;
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::metadata::KeyValue;
use parquet::file::properties::WriterProperties;

use crate::compute::FeatureEngine;
use crate::offline::{OfflineError, OfflineStore, event_key_fields};
use crate::state::{AsOf, EntityState, EventKey};

/// Which events get a row.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TrainingWindow {
    pub from: Option<Timestamp>,
    pub to: Option<Timestamp>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TrainingSummary {
    pub rows: u64,
    pub labelled: u64,
    pub positives: u64,
    /// Events replayed only to warm up state before `from`.
    pub warmup_events: u64,
}

/// Replays history and calls `row` for each event in the window, in event-time order.
pub fn replay(
    offline: &dyn OfflineStore,
    engine: &FeatureEngine,
    window: TrainingWindow,
    row: &mut dyn FnMut(&Event, &FeatureVector) -> Result<(), OfflineError>,
) -> Result<TrainingSummary, OfflineError> {
    let spec = engine.spec();
    let warmup_from = window.from.map(|f| f.saturating_sub(spec.retention));
    let mut states: HashMap<String, EntityState> = HashMap::new();
    let mut summary = TrainingSummary::default();
    offline.scan(warmup_from, window.to, &mut |events| {
        for event in events {
            let state = states
                .entry(event.entity.clone())
                .or_insert_with(|| EntityState::new(event.values.len()));
            if window.from.is_none_or(|f| event.ts >= f) {
                let vector = engine.vector(state, Some(event), AsOf::Before(EventKey::of(event)));
                row(event, &vector)?;
                summary.rows += 1;
                if let Some(label) = event.label {
                    summary.labelled += 1;
                    summary.positives += u64::from(label);
                }
            } else {
                summary.warmup_events += 1;
            }
            state.apply(event, spec);
        }
        Ok(())
    })?;
    Ok(summary)
}

/// Writes rows to Parquet or CSV, chosen by the file extension.
pub struct TrainingSetWriter {
    inner: Sink,
    path: PathBuf,
}

enum Sink {
    Parquet {
        writer: Box<ArrowWriter<File>>,
        schema: SchemaRef,
        rows: Box<RowBuffer>,
    },
    Csv(BufWriter<File>),
}

/// Columns buffered for the next Parquet row group.
struct RowBuffer {
    ids: StringBuilder,
    entities: StringBuilder,
    times: TimestampMicrosecondBuilder,
    labels: Int8Builder,
    features: Vec<Float64Builder>,
    len: usize,
}

const ROW_GROUP: usize = 65_536;

/// Parquet key-value metadata naming the feature layout of a training set.
pub const FINGERPRINT_KEY: &str = "driftline.feature_fingerprint";

impl TrainingSetWriter {
    pub fn create(path: &Path, contract: &Contract, engine: &FeatureEngine) -> Result<Self, OfflineError> {
        let io = |action| {
            let path = path.display().to_string();
            move |source| OfflineError::Io { action, path, source }
        };
        let file = File::create(path).map_err(io("creating"))?;
        let names: Vec<&str> = engine.spec().names().collect();
        let is_csv = path.extension().is_some_and(|e| e.eq_ignore_ascii_case("csv"));
        let inner = if is_csv {
            let mut out = BufWriter::with_capacity(1 << 20, file);
            let mut header = vec![
                "event_id",
                contract.entity_field(),
                contract.timestamp_field(),
                contract.label_field(),
            ];
            header.extend(&names);
            writeln!(out, "{}", header.join(",")).map_err(io("writing"))?;
            Sink::Csv(out)
        } else {
            let schema = training_schema(contract, &names);
            // The layout fingerprint travels with the rows, so a model trained on them can
            // refuse vectors of another layout.
            let props = WriterProperties::builder()
                .set_compression(Compression::SNAPPY)
                .set_key_value_metadata(Some(vec![KeyValue::new(
                    FINGERPRINT_KEY.to_string(),
                    engine.spec().fingerprint(),
                )]))
                .build();
            let writer = ArrowWriter::try_new(file, schema.clone(), Some(props)).map_err(|e| {
                OfflineError::Format {
                    path: path.display().to_string(),
                    reason: e.to_string(),
                }
            })?;
            Sink::Parquet {
                writer: Box::new(writer),
                schema,
                rows: Box::new(RowBuffer::new(names.len())),
            }
        };
        Ok(Self {
            inner,
            path: path.to_path_buf(),
        })
    }

    pub fn write(&mut self, event: &Event, vector: &FeatureVector) -> Result<(), OfflineError> {
        match &mut self.inner {
            Sink::Csv(out) => write_csv_row(out, event, vector).map_err(|source| OfflineError::Io {
                action: "writing",
                path: self.path.display().to_string(),
                source,
            }),
            Sink::Parquet { rows, .. } => {
                rows.push(event, vector);
                if rows.len >= ROW_GROUP {
                    self.flush_rows()
                } else {
                    Ok(())
                }
            }
        }
    }

    fn flush_rows(&mut self) -> Result<(), OfflineError> {
        let Sink::Parquet { writer, schema, rows } = &mut self.inner else {
            return Ok(());
        };
        if rows.len == 0 {
            return Ok(());
        }
        let batch = rows.finish(schema.clone());
        let bad = |e: String| OfflineError::Format {
            path: self.path.display().to_string(),
            reason: e,
        };
        writer
            .write(&batch.map_err(|e| bad(e.to_string()))?)
            .map_err(|e| bad(e.to_string()))
    }

    pub fn finish(mut self) -> Result<(), OfflineError> {
        self.flush_rows()?;
        let path = self.path.display().to_string();
        match self.inner {
            Sink::Csv(mut out) => out.flush().map_err(|source| OfflineError::Io {
                action: "writing",
                path,
                source,
            }),
            Sink::Parquet { writer, .. } => writer.close().map(|_| ()).map_err(|e| OfflineError::Format {
                path,
                reason: e.to_string(),
            }),
        }
    }
}

impl RowBuffer {
    fn new(features: usize) -> Self {
        Self {
            ids: StringBuilder::new(),
            entities: StringBuilder::new(),
            times: TimestampMicrosecondBuilder::new().with_timezone("UTC"),
            labels: Int8Builder::new(),
            features: (0..features).map(|_| Float64Builder::new()).collect(),
            len: 0,
        }
    }

    fn push(&mut self, event: &Event, vector: &FeatureVector) {
        self.ids.append_value(&event.event_id);
        self.entities.append_value(&event.entity);
        self.times.append_value(event.ts.micros());
        self.labels.append_option(event.label.map(i8::from));
        for (builder, value) in self.features.iter_mut().zip(&vector.values) {
            builder.append_option(value.is_finite().then_some(*value));
        }
        self.len += 1;
    }

    fn finish(&mut self, schema: SchemaRef) -> Result<RecordBatch, arrow_schema::ArrowError> {
        let mut columns: Vec<ArrayRef> = vec![
            Arc::new(self.ids.finish()),
            Arc::new(self.entities.finish()),
            Arc::new(self.times.finish()),
            Arc::new(self.labels.finish()),
        ];
        columns.extend(self.features.iter_mut().map(|b| Arc::new(b.finish()) as ArrayRef));
        self.len = 0;
        RecordBatch::try_new(schema, columns)
    }
}

fn training_schema(contract: &Contract, names: &[&str]) -> SchemaRef {
    let mut fields = event_key_fields(contract);
    fields.extend(names.iter().map(|n| Field::new(*n, DataType::Float64, true)));
    Arc::new(Schema::new(fields))
}

fn write_csv_row(out: &mut impl Write, event: &Event, vector: &FeatureVector) -> std::io::Result<()> {
    write!(
        out,
        "{},{},{},",
        csv_text(&event.event_id),
        csv_text(&event.entity),
        event.ts
    )?;
    if let Some(label) = event.label {
        write!(out, "{}", u8::from(label))?;
    }
    for value in &vector.values {
        if value.is_finite() {
            write!(out, ",{value}")?;
        } else {
            out.write_all(b",")?;
        }
    }
    out.write_all(b"\n")
}

fn csv_text(text: &str) -> std::borrow::Cow<'_, str> {
    if text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\"")).into()
    } else {
        text.into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::offline::{HistoryEvent, ParquetOfflineStore};
    use arrow_array::cast::AsArray;
    use arrow_array::types::Float64Type;
    use driftline_core::config::Config;
    use driftline_core::event::FieldValue;
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

    fn history(n: usize) -> Vec<HistoryEvent> {
        (0..n)
            .map(|i| HistoryEvent {
                offset: i as u64,
                event: Event {
                    event_id: format!("evt-{i:08}"),
                    entity: format!("user-{}", i % 3),
                    // Spans two days, so two partitions are read in order.
                    ts: Timestamp::from_unix_seconds(1_709_251_200 + i as i64 * 3_000),
                    label: Some(i % 7 == 0),
                    values: vec![
                        FieldValue::Number(i as f64),
                        FieldValue::Category((i % 7) as u16),
                        FieldValue::Missing,
                    ],
                },
            })
            .collect()
    }

    #[test]
    fn parquet_training_sets_hold_every_row_with_the_layout_fingerprint() {
        let dir = tempfile::tempdir().unwrap();
        let config = Config::fraud_default();
        let engine = FeatureEngine::from_config(&config);
        let offline = ParquetOfflineStore::new(dir.path().join("offline"), config.contract.clone());
        offline.append(0..60, &history(60), &[]).unwrap();

        let path = dir.path().join("rows.parquet");
        let mut writer = TrainingSetWriter::create(&path, &config.contract, &engine).unwrap();
        let mut expected = Vec::new();
        let summary = replay(&offline, &engine, TrainingWindow::default(), &mut |e, v| {
            expected.push(
                v.values[engine
                    .spec()
                    .names()
                    .position(|n| n == "transaction_amount_count_24h")
                    .unwrap()],
            );
            writer.write(e, v)
        })
        .unwrap();
        writer.finish().unwrap();
        assert_eq!(summary.rows, 60);
        assert_eq!(summary.positives, 9);

        let reader = ParquetRecordBatchReaderBuilder::try_new(File::open(&path).unwrap()).unwrap();
        let metadata = reader
            .metadata()
            .file_metadata()
            .key_value_metadata()
            .unwrap()
            .clone();
        let fingerprint = metadata.iter().find(|kv| kv.key == FINGERPRINT_KEY).unwrap();
        assert_eq!(
            fingerprint.value.as_deref(),
            Some(engine.spec().fingerprint().as_str())
        );
        let batches: Vec<RecordBatch> = reader.build().unwrap().map(Result::unwrap).collect();
        let counts: Vec<f64> = batches
            .iter()
            .flat_map(|b| {
                let column = b.column_by_name("transaction_amount_count_24h").unwrap();
                column.as_primitive::<Float64Type>().values().to_vec()
            })
            .collect();
        assert_eq!(counts, expected);
        assert!(expected.iter().any(|c| *c > 0.0), "windows see earlier events");
    }

    #[test]
    fn a_window_starting_later_warms_state_up_from_earlier_history() {
        let dir = tempfile::tempdir().unwrap();
        let config = Config::fraud_default();
        let engine = FeatureEngine::from_config(&config);
        let offline = ParquetOfflineStore::new(dir.path().join("offline"), config.contract.clone());
        offline.append(0..60, &history(60), &[]).unwrap();
        let from = Timestamp::from_unix_seconds(1_709_251_200 + 30 * 3_000);
        let mut all = Vec::new();
        replay(&offline, &engine, TrainingWindow::default(), &mut |e, v| {
            all.push((e.event_id.clone(), v.clone()));
            Ok(())
        })
        .unwrap();
        let mut later = Vec::new();
        let summary = replay(
            &offline,
            &engine,
            TrainingWindow {
                from: Some(from),
                to: None,
            },
            &mut |e, v| {
                later.push((e.event_id.clone(), v.clone()));
                Ok(())
            },
        )
        .unwrap();
        assert_eq!(summary.warmup_events, 30);
        assert_eq!(later.len(), 30);
        for ((id_a, a), (id_b, b)) in all[30..].iter().zip(&later) {
            assert_eq!(id_a, id_b);
            assert!(a.same_as(b), "{id_a}: rows after --from equal the full replay's");
        }
    }
}

//! `driftline evaluate`: a registered model scored on a file of labelled rows: either
//! feature rows (the Parquet or CSV that `driftline features training-set` writes, or any
//! file with the model's feature columns and a label column), or raw events (CSV or JSON
//! lines in the contract's shape, such as the reference stack's `events.csv`), whose
//! features are computed point in time from the file's own earlier events.
//!
//! Key decision: columns are matched by name, never by position, so extra columns (ids,
//! times) are ignored and a file missing one of the model's columns is refused naming it;
//! rows without a label are counted and skipped, not guessed. Raw events go through the
//! same contract validation and the same feature engine as ingest and training, and only
//! when the model was trained on the configured feature definitions (same fingerprint).

use std::fs::File;
use std::path::Path;

use arrow_array::cast::AsArray;
use arrow_array::types::{Float32Type, Float64Type, Int8Type, Int16Type, Int32Type, Int64Type};
use arrow_array::{Array, RecordBatch};
use arrow_schema::DataType;
use std::collections::HashMap;

use driftline_core::contract::{Contract, IdSource, ValidateContext};
use driftline_core::event::Record;
use driftline_core::time::Timestamp;
use driftline_features::compute::FeatureEngine;
use driftline_features::state::{Applied, AsOf, EntityState, EventKey};
use driftline_models::dataset::Dataset;
use driftline_models::metrics::Metrics;
use driftline_models::model::Model;
use driftline_stream::input::{InputReader, InputSource};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use serde::Serialize;

use crate::bundle::ModelBundle;
use crate::error::TrainError;

/// Labelled rows read from a file, in the model's column order.
#[derive(Debug, Clone, PartialEq)]
pub struct FileRows {
    /// Row-major features.
    pub features: Vec<f64>,
    /// One label per row.
    pub labels: Vec<bool>,
    /// Rows skipped because their label was empty.
    pub unlabelled: u64,
}

/// The result of evaluating a model on a file.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Evaluation {
    /// Rows skipped for having no label.
    pub unlabelled_rows: u64,
    /// The metrics at the model's decision threshold.
    pub metrics: Metrics,
}

/// Scores `bundle`'s model on the labelled rows of `path`: feature rows when the file has
/// the model's columns, raw events otherwise (see the module header).
pub fn evaluate_file(
    bundle: &ModelBundle,
    path: &Path,
    contract: &Contract,
    engine: &FeatureEngine,
) -> Result<Evaluation, TrainError> {
    let columns = bundle.model.columns();
    let rows = if has_feature_columns(path, columns)? {
        read_rows(path, columns, contract.label_field())?
    } else {
        if bundle.feature_fingerprint != engine.spec().fingerprint() {
            return Err(TrainError::DataFile {
                path: path.display().to_string(),
                reason: "has no feature columns, and the configured feature definitions differ from                          the ones the model was trained on, so they cannot be computed from raw events"
                    .into(),
            });
        }
        rows_from_events(path, contract, engine)?
    };
    if rows.labels.is_empty() {
        return Err(TrainError::DataFile {
            path: path.display().to_string(),
            reason: format!("no labelled rows ({} without a label)", rows.unlabelled),
        });
    }
    let data = Dataset::new(rows.features, rows.labels, columns.to_vec())?;
    let scores = bundle.model.predict_dataset(&data)?;
    let metrics = Metrics::compute(&scores, data.labels(), bundle.decision_threshold)
        .map_err(|e| TrainError::Data(format!("evaluating: {e}")))?;
    Ok(Evaluation {
        unlabelled_rows: rows.unlabelled,
        metrics,
    })
}

/// Whether the file is a table holding every model column (JSON lines are always events).
fn has_feature_columns(path: &Path, columns: &[String]) -> Result<bool, TrainError> {
    let fail = |reason: String| TrainError::DataFile {
        path: path.display().to_string(),
        reason,
    };
    let names: Vec<String> = match extension(path).as_str() {
        "csv" => csv::Reader::from_path(path)
            .and_then(|mut r| r.headers().cloned())
            .map_err(|e| fail(e.to_string()))?
            .iter()
            .map(|h| h.trim_start_matches('\u{feff}').to_string())
            .collect(),
        "jsonl" | "json" | "ndjson" => return Ok(false),
        _ => {
            let file = File::open(path).map_err(|e| fail(e.to_string()))?;
            let builder = ParquetRecordBatchReaderBuilder::try_new(file).map_err(|e| fail(e.to_string()))?;
            builder
                .schema()
                .fields()
                .iter()
                .map(|f| f.name().clone())
                .collect()
        }
    };
    Ok(columns.iter().all(|c| names.contains(c)))
}

fn extension(path: &Path) -> String {
    path.extension()
        .map(|e| e.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default()
}

/// Point-in-time rows of the events in a CSV or JSON-lines file: each event's vector is
/// computed from its entity's earlier events in the same file, exactly as training
/// replays history. Delayed-label records in the file are joined by event id. An invalid
/// record is refused naming its line, field and reason.
pub fn rows_from_events(
    path: &Path,
    contract: &Contract,
    engine: &FeatureEngine,
) -> Result<FileRows, TrainError> {
    let fail = |reason: String| TrainError::DataFile {
        path: path.display().to_string(),
        reason,
    };
    let mut reader =
        InputReader::open(&InputSource::File(path.to_path_buf()), 0).map_err(|e| fail(e.to_string()))?;
    let now = Timestamp::now();
    let (mut events, mut delayed) = (Vec::new(), HashMap::new());
    while let Some(record) = reader.next_record().map_err(|e| fail(e.to_string()))? {
        let ctx = ValidateContext {
            now,
            default_entity: None,
            path_prefix: "",
            ids: IdSource::DerivedFrom(&record.json),
        };
        match contract.validate_json(&record.json, &ctx) {
            Ok(Record::Event(event)) => events.push(event),
            Ok(Record::Label(update)) => {
                delayed.insert(update.event_id, update.label);
            }
            Err(invalid) => return Err(fail(format!("line {}: {invalid}", record.line))),
        }
    }
    events.sort_by_key(EventKey::of);
    let spec = engine.spec();
    let mut states: HashMap<String, EntityState> = HashMap::new();
    let mut rows = FileRows {
        features: Vec::new(),
        labels: Vec::new(),
        unlabelled: 0,
    };
    for event in &events {
        let state = states
            .entry(event.entity.clone())
            .or_insert_with(|| EntityState::new(event.values.len()));
        let vector = engine.vector(state, Some(event), AsOf::Before(EventKey::of(event)));
        if state.apply(event, spec) == Applied::Duplicate {
            continue;
        }
        match delayed.get(&event.event_id).copied().or(event.label) {
            Some(label) => {
                rows.features.extend_from_slice(&vector.values);
                rows.labels.push(label);
            }
            None => rows.unlabelled += 1,
        }
    }
    Ok(rows)
}

/// Reads the `columns` and the `label` column of a CSV or Parquet file.
pub fn read_rows(path: &Path, columns: &[String], label: &str) -> Result<FileRows, TrainError> {
    let fail = |reason: String| TrainError::DataFile {
        path: path.display().to_string(),
        reason,
    };
    if extension(path) == "csv" {
        read_csv(path, columns, label).map_err(fail)
    } else {
        read_parquet(path, columns, label).map_err(fail)
    }
}

/// The positions of `columns` then `label` among `header`, or which one is missing.
fn positions<'a>(
    header: impl Iterator<Item = &'a str> + Clone,
    columns: &[String],
    label: &str,
) -> Result<Vec<usize>, String> {
    let find = |name: &str| {
        header
            .clone()
            .position(|h| h == name)
            .ok_or_else(|| format!("no column {name:?}, which the model needs"))
    };
    columns.iter().map(|c| find(c)).chain([find(label)]).collect()
}

fn read_csv(path: &Path, columns: &[String], label: &str) -> Result<FileRows, String> {
    let mut reader = csv::Reader::from_path(path).map_err(|e| e.to_string())?;
    let header = reader.headers().map_err(|e| e.to_string())?.clone();
    let at = positions(
        header.iter().map(|h| h.trim_start_matches('\u{feff}')),
        columns,
        label,
    )?;
    let (label_at, feature_at) = at.split_last().expect("the label position is last");
    let mut rows = FileRows {
        features: Vec::new(),
        labels: Vec::new(),
        unlabelled: 0,
    };
    for (line, record) in reader.records().enumerate() {
        let record = record.map_err(|e| e.to_string())?;
        let row = line + 2;
        let Some(label) = parse_label(record.get(*label_at).unwrap_or(""))
            .map_err(|e| format!("row {row}, column {label:?}: {e}"))?
        else {
            rows.unlabelled += 1;
            continue;
        };
        for (&j, name) in feature_at.iter().zip(columns) {
            let text = record.get(j).unwrap_or("").trim();
            let value = match text {
                "" | "NaN" | "nan" | "null" => f64::NAN,
                _ => text
                    .parse::<f64>()
                    .map_err(|_| format!("row {row}, column {name:?}: {text:?} is not a number"))?,
            };
            rows.features.push(value);
        }
        rows.labels.push(label);
    }
    Ok(rows)
}

fn parse_label(text: &str) -> Result<Option<bool>, String> {
    match text.trim() {
        "" | "null" => Ok(None),
        "0" | "0.0" | "false" => Ok(Some(false)),
        "1" | "1.0" | "true" => Ok(Some(true)),
        other => Err(format!("label must be 0 or 1, got {other:?}")),
    }
}

fn read_parquet(path: &Path, columns: &[String], label: &str) -> Result<FileRows, String> {
    let file = File::open(path).map_err(|e| e.to_string())?;
    let builder = ParquetRecordBatchReaderBuilder::try_new(file).map_err(|e| e.to_string())?;
    let schema = builder.schema().clone();
    let at = positions(schema.fields().iter().map(|f| f.name().as_str()), columns, label)?;
    let mut rows = FileRows {
        features: Vec::new(),
        labels: Vec::new(),
        unlabelled: 0,
    };
    for batch in builder.build().map_err(|e| e.to_string())? {
        read_batch(&batch.map_err(|e| e.to_string())?, &at, columns, label, &mut rows)?;
    }
    Ok(rows)
}

fn read_batch(
    batch: &RecordBatch,
    at: &[usize],
    columns: &[String],
    label: &str,
    rows: &mut FileRows,
) -> Result<(), String> {
    let (label_at, feature_at) = at.split_last().expect("the label position is last");
    let label_column = batch.column(*label_at);
    for i in 0..batch.num_rows() {
        let Some(y) = numeric(label_column.as_ref(), i, label)? else {
            rows.unlabelled += 1;
            continue;
        };
        if y != 0.0 && y != 1.0 {
            return Err(format!("column {label:?}: label must be 0 or 1, got {y}"));
        }
        for (&j, name) in feature_at.iter().zip(columns) {
            rows.features
                .push(numeric(batch.column(j).as_ref(), i, name)?.unwrap_or(f64::NAN));
        }
        rows.labels.push(y == 1.0);
    }
    Ok(())
}

/// Row `i` of a numeric or boolean column as f64; `None` when null.
fn numeric(array: &dyn Array, i: usize, name: &str) -> Result<Option<f64>, String> {
    if array.is_null(i) {
        return Ok(None);
    }
    Ok(Some(match array.data_type() {
        DataType::Float64 => array.as_primitive::<Float64Type>().value(i),
        DataType::Float32 => f64::from(array.as_primitive::<Float32Type>().value(i)),
        DataType::Int8 => f64::from(array.as_primitive::<Int8Type>().value(i)),
        DataType::Int16 => f64::from(array.as_primitive::<Int16Type>().value(i)),
        DataType::Int32 => f64::from(array.as_primitive::<Int32Type>().value(i)),
        DataType::Int64 => array.as_primitive::<Int64Type>().value(i) as f64,
        DataType::Boolean => f64::from(u8::from(array.as_boolean().value(i))),
        other => return Err(format!("column {name:?} has type {other}, not a number")),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_columns_are_matched_by_name_and_unlabelled_rows_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rows.csv");
        std::fs::write(&path, "id,label,b,a\nx,1,2.5,\ny,,1,1\nz,0,NaN,3\n").unwrap();
        let rows = read_rows(&path, &["a".into(), "b".into()], "label").unwrap();
        assert_eq!(rows.labels, [true, false]);
        assert_eq!(rows.unlabelled, 1);
        assert!(rows.features[0].is_nan());
        assert_eq!(rows.features[1], 2.5);
        assert_eq!(rows.features[2], 3.0);
        assert!(rows.features[3].is_nan());
    }

    #[test]
    fn bad_files_are_refused_naming_the_column_and_row() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rows.csv");
        std::fs::write(&path, "label,a\n1,2\n").unwrap();
        let err = read_rows(&path, &["a".into(), "b".into()], "label")
            .unwrap_err()
            .to_string();
        assert!(err.contains("no column \"b\""), "{err}");
        std::fs::write(&path, "label,a\n1,2\n0,abc\n").unwrap();
        let err = read_rows(&path, &["a".into()], "label").unwrap_err().to_string();
        assert!(err.contains("row 3, column \"a\""), "{err}");
        std::fs::write(&path, "label,a\n2,2\n").unwrap();
        let err = read_rows(&path, &["a".into()], "label").unwrap_err().to_string();
        assert!(err.contains("label must be 0 or 1"), "{err}");
    }
}

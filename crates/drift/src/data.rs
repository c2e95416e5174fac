//! Reading reference and current data (CSV, Parquet, JSON lines) into per-column
//! summaries the drift tests need: sorted non-missing numbers, or category counts.
//!
//! Key decision: columns are typed by content, as pandas would: a column whose every
//! non-missing value parses as a finite number is numeric, anything else categorical.
//! Missing values (empty cells, null, NaN) and infinities are dropped, as Evidently drops
//! them before testing. Categorical columns keep only value counts, so memory stays
//! bounded by the number of distinct values, not rows. When a column turns out textual
//! after numbers were seen, the numbers already read become categories under their
//! shortest decimal form ("1.0" becomes "1").

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

use arrow_array::cast::AsArray;
use arrow_array::types::{
    Float32Type, Float64Type, Int8Type, Int16Type, Int32Type, Int64Type, UInt8Type, UInt16Type, UInt32Type,
    UInt64Type,
};
use arrow_array::{Array, RecordBatch};
use arrow_schema::DataType;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

/// A file that cannot be read as a table.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    #[error("reading {path}: {reason}")]
    Read { path: PathBuf, reason: String },
    #[error("{path}: unsupported file type (expected .csv, .parquet, .jsonl, .ndjson or .json)")]
    Format { path: PathBuf },
    #[error("{path}: no rows")]
    Empty { path: PathBuf },
    #[error("{path}: line {line}: {reason}")]
    Line {
        path: PathBuf,
        line: usize,
        reason: String,
    },
}

/// The values of one column, missing values removed.
#[derive(Debug, Clone, PartialEq)]
pub enum ColumnValues {
    /// Numbers sorted ascending. `integer_valued` when every value was written as an
    /// integer and none was missing (pandas would read the column as int64, which changes
    /// numpy's Sturges bin width rule).
    Numeric { sorted: Vec<f64>, integer_valued: bool },
    /// Value -> count.
    Categorical { counts: BTreeMap<String, u64> },
}

impl ColumnValues {
    /// Non-missing values.
    pub fn len(&self) -> usize {
        match self {
            ColumnValues::Numeric { sorted, .. } => sorted.len(),
            ColumnValues::Categorical { counts } => counts.values().sum::<u64>() as usize,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The same values as categories (numbers under their shortest decimal form).
    pub fn into_categorical(self) -> ColumnValues {
        match self {
            ColumnValues::Numeric { sorted, .. } => {
                let mut counts = BTreeMap::new();
                for x in sorted {
                    *counts.entry(format_number(x)).or_insert(0) += 1;
                }
                ColumnValues::Categorical { counts }
            }
            categorical => categorical,
        }
    }
}

fn format_number(x: f64) -> String {
    format!("{x}")
}

/// One named column.
#[derive(Debug, Clone, PartialEq)]
pub struct Column {
    pub name: String,
    pub values: ColumnValues,
    /// Missing or non-finite cells dropped.
    pub missing: usize,
}

/// A file read into columns.
#[derive(Debug, Clone, PartialEq)]
pub struct Table {
    pub path: PathBuf,
    pub rows: usize,
    /// In file order.
    pub columns: Vec<Column>,
}

impl Table {
    pub fn column(&self, name: &str) -> Option<&Column> {
        self.columns.iter().find(|c| c.name == name)
    }
}

impl Column {
    /// Replaces text categories by their position in `values` (the contract's code for a
    /// category field, which is what a model's profile counts). Labels not in `values`
    /// are kept as they are, so they show up as categories the reference never had.
    pub fn encode_categories(&mut self, values: &[String]) {
        if let ColumnValues::Categorical { counts } = &mut self.values {
            let mut encoded = BTreeMap::new();
            for (label, n) in std::mem::take(counts) {
                let key = values
                    .iter()
                    .position(|v| *v == label)
                    .map(|i| i.to_string())
                    .unwrap_or(label);
                *encoded.entry(key).or_insert(0) += n;
            }
            *counts = encoded;
        }
    }
}

/// Which columns to keep while reading.
#[derive(Debug, Clone, Default)]
pub struct ReadOptions {
    /// Keep only these (all when `None`).
    pub only: Option<Vec<String>>,
    /// Never read these (ignored for columns named in `only`): ids and timestamps are
    /// all-distinct text, whose counts would cost memory in proportion to the rows.
    pub skip: Vec<String>,
}

impl ReadOptions {
    fn wants(&self, name: &str) -> bool {
        match &self.only {
            Some(only) => only.iter().any(|c| c == name),
            None => !self.skip.iter().any(|c| c == name),
        }
    }
}

/// Accumulates one column while reading.
#[derive(Debug, Default)]
struct ColumnBuilder {
    numbers: Vec<f64>,
    categories: Option<HashMap<String, u64>>,
    missing: usize,
    all_integer_text: bool,
}

impl ColumnBuilder {
    fn new() -> Self {
        Self {
            all_integer_text: true,
            ..Self::default()
        }
    }

    fn push_missing(&mut self) {
        self.missing += 1;
    }

    /// A cell of text: a number when it parses as one, else a category.
    fn push_text(&mut self, raw: &str) {
        let text = raw.trim();
        if text.is_empty() || text.eq_ignore_ascii_case("nan") || text.eq_ignore_ascii_case("null") {
            return self.push_missing();
        }
        if self.categories.is_none()
            && let Ok(x) = text.parse::<f64>()
        {
            if text.parse::<i64>().is_err() {
                self.all_integer_text = false;
            }
            return self.push_number(x);
        }
        self.push_category(text);
    }

    fn push_number(&mut self, x: f64) {
        if !x.is_finite() {
            return self.push_missing();
        }
        match &mut self.categories {
            Some(counts) => *counts.entry(format_number(x)).or_insert(0) += 1,
            None => self.numbers.push(x),
        }
    }

    fn push_category(&mut self, text: &str) {
        let counts = self.categories.get_or_insert_with(|| {
            let mut counts = HashMap::new();
            for x in std::mem::take(&mut self.numbers) {
                *counts.entry(format_number(x)).or_insert(0) += 1;
            }
            counts
        });
        match counts.get_mut(text) {
            Some(n) => *n += 1,
            None => {
                counts.insert(text.to_string(), 1);
            }
        }
    }

    fn finish(self, name: String) -> Column {
        let values = match self.categories {
            Some(counts) => ColumnValues::Categorical {
                counts: counts.into_iter().collect(),
            },
            None => {
                let mut sorted = self.numbers;
                sorted.sort_unstable_by(f64::total_cmp);
                ColumnValues::Numeric {
                    sorted,
                    integer_valued: self.all_integer_text && self.missing == 0,
                }
            }
        };
        Column {
            name,
            values,
            missing: self.missing,
        }
    }
}

/// Reads a CSV, Parquet or JSON-lines file, chosen by extension.
pub fn read_table(path: &Path, options: &ReadOptions) -> Result<Table, DataError> {
    read_table_with_progress(path, options, &|_| {})
}

/// Rows between two progress reports.
const PROGRESS_ROWS: usize = 65_536;

/// [`read_table`], calling `on_bytes` with the bytes of the file read since its last call
/// (every [`PROGRESS_ROWS`] rows or so, and at the end: the calls add up to the file size;
/// Parquet's are estimated from the rows decoded).
pub fn read_table_with_progress(
    path: &Path,
    options: &ReadOptions,
    on_bytes: &dyn Fn(u64),
) -> Result<Table, DataError> {
    let extension = path
        .extension()
        .map(|e| e.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default();
    let mut progress = Progress::new(path, on_bytes);
    let table = match extension.as_str() {
        "csv" => read_csv(path, options, &mut progress),
        "parquet" | "pq" => read_parquet(path, options, &mut progress),
        "jsonl" | "ndjson" | "json" => read_json_lines(path, options, &mut progress),
        _ => Err(DataError::Format { path: path.into() }),
    }?;
    progress.finish();
    if table.rows == 0 {
        return Err(DataError::Empty { path: path.into() });
    }
    Ok(table)
}

/// Turns positions in a file into byte deltas for a progress callback.
struct Progress<'a> {
    on_bytes: &'a dyn Fn(u64),
    size: u64,
    reported: u64,
}

impl<'a> Progress<'a> {
    fn new(path: &Path, on_bytes: &'a dyn Fn(u64)) -> Self {
        Progress {
            on_bytes,
            size: std::fs::metadata(path).map_or(0, |m| m.len()),
            reported: 0,
        }
    }

    /// The reader is at byte `position` of the file.
    fn at(&mut self, position: u64) {
        let position = position.min(self.size);
        if position > self.reported {
            (self.on_bytes)(position - self.reported);
            self.reported = position;
        }
    }

    /// `done` of `total` rows are decoded (formats without byte positions).
    fn rows(&mut self, done: usize, total: usize) {
        if total > 0 {
            self.at((self.size as f64 * done as f64 / total as f64) as u64);
        }
    }

    fn finish(&mut self) {
        self.at(self.size);
    }
}

fn read_error(path: &Path, reason: impl ToString) -> DataError {
    DataError::Read {
        path: path.into(),
        reason: reason.to_string(),
    }
}

fn read_csv(path: &Path, options: &ReadOptions, progress: &mut Progress) -> Result<Table, DataError> {
    let mut reader = csv::Reader::from_path(path).map_err(|e| read_error(path, e))?;
    let headers: Vec<String> = reader
        .headers()
        .map_err(|e| read_error(path, e))?
        .iter()
        .map(|h| h.trim_start_matches('\u{feff}').to_string())
        .collect();
    let kept: Vec<usize> = (0..headers.len())
        .filter(|&i| options.wants(&headers[i]))
        .collect();
    let mut builders: Vec<ColumnBuilder> = kept.iter().map(|_| ColumnBuilder::new()).collect();
    let mut record = csv::StringRecord::new();
    let mut rows = 0;
    while reader.read_record(&mut record).map_err(|e| read_error(path, e))? {
        rows += 1;
        if rows % PROGRESS_ROWS == 0 {
            progress.at(reader.position().byte());
        }
        for (builder, &i) in builders.iter_mut().zip(&kept) {
            match record.get(i) {
                Some(cell) => builder.push_text(cell),
                None => builder.push_missing(),
            }
        }
    }
    Ok(finish_table(
        path,
        rows,
        kept.iter().map(|&i| headers[i].clone()),
        builders,
    ))
}

fn finish_table(
    path: &Path,
    rows: usize,
    names: impl Iterator<Item = String>,
    builders: Vec<ColumnBuilder>,
) -> Table {
    Table {
        path: path.into(),
        rows,
        columns: names.zip(builders).map(|(name, b)| b.finish(name)).collect(),
    }
}

fn read_json_lines(path: &Path, options: &ReadOptions, progress: &mut Progress) -> Result<Table, DataError> {
    let file = File::open(path).map_err(|e| read_error(path, e))?;
    let mut names: Vec<String> = Vec::new();
    let mut builders: Vec<ColumnBuilder> = Vec::new();
    let mut rows = 0;
    let mut position = 0u64;
    for (index, line) in BufReader::new(file).lines().enumerate() {
        let line = line.map_err(|e| read_error(path, e))?;
        position += line.len() as u64 + 1;
        if index % PROGRESS_ROWS == 0 {
            progress.at(position);
        }
        if line.trim().is_empty() {
            continue;
        }
        let object: serde_json::Map<String, serde_json::Value> =
            serde_json::from_str(&line).map_err(|e| DataError::Line {
                path: path.into(),
                line: index + 1,
                reason: format!("not a JSON object: {e}"),
            })?;
        let mut seen = vec![false; names.len()];
        for (key, value) in object {
            if !options.wants(&key) {
                continue;
            }
            let at = match names.iter().position(|n| *n == key) {
                Some(at) => at,
                None => {
                    names.push(key);
                    let mut builder = ColumnBuilder::new();
                    (0..rows).for_each(|_| builder.push_missing());
                    builders.push(builder);
                    seen.push(false);
                    names.len() - 1
                }
            };
            seen[at] = true;
            push_json(&mut builders[at], &value);
        }
        for (builder, seen) in builders.iter_mut().zip(seen) {
            if !seen {
                builder.push_missing();
            }
        }
        rows += 1;
    }
    Ok(finish_table(path, rows, names.into_iter(), builders))
}

fn push_json(builder: &mut ColumnBuilder, value: &serde_json::Value) {
    use serde_json::Value;
    match value {
        Value::Null => builder.push_missing(),
        Value::Number(n) => {
            if !(n.is_i64() || n.is_u64()) {
                builder.all_integer_text = false;
            }
            builder.push_number(n.as_f64().unwrap_or(f64::NAN));
        }
        Value::String(s) if s.is_empty() => builder.push_missing(),
        Value::String(s) => builder.push_category(s),
        Value::Bool(b) => builder.push_category(if *b { "true" } else { "false" }),
        other => builder.push_category(&other.to_string()),
    }
}

fn read_parquet(path: &Path, options: &ReadOptions, progress: &mut Progress) -> Result<Table, DataError> {
    let file = File::open(path).map_err(|e| read_error(path, e))?;
    let builder = ParquetRecordBatchReaderBuilder::try_new(file).map_err(|e| read_error(path, e))?;
    let total_rows = usize::try_from(builder.metadata().file_metadata().num_rows()).unwrap_or(0);
    let schema = builder.schema().clone();
    let kept: Vec<usize> = (0..schema.fields().len())
        .filter(|&i| options.wants(schema.field(i).name()))
        .collect();
    let mut builders: Vec<ColumnBuilder> = kept.iter().map(|_| ColumnBuilder::new()).collect();
    let mut rows = 0;
    for batch in builder.build().map_err(|e| read_error(path, e))? {
        let batch: RecordBatch = batch.map_err(|e| read_error(path, e))?;
        for (builder, &i) in builders.iter_mut().zip(&kept) {
            push_arrow(builder, batch.column(i).as_ref()).map_err(|reason| {
                read_error(path, format!("column '{}': {reason}", schema.field(i).name()))
            })?;
        }
        rows += batch.num_rows();
        progress.rows(rows, total_rows);
    }
    let names = kept.iter().map(|&i| schema.field(i).name().clone());
    Ok(finish_table(path, rows, names, builders))
}

fn push_arrow(builder: &mut ColumnBuilder, array: &dyn Array) -> Result<(), String> {
    macro_rules! numbers {
        ($t:ty, $integer:expr) => {{
            let values = array.as_primitive::<$t>();
            if !$integer {
                builder.all_integer_text = false;
            }
            for i in 0..array.len() {
                if array.is_null(i) {
                    builder.push_missing();
                } else {
                    builder.push_number(values.value(i) as f64);
                }
            }
        }};
    }
    match array.data_type() {
        DataType::Float64 => numbers!(Float64Type, false),
        DataType::Float32 => numbers!(Float32Type, false),
        DataType::Int8 => numbers!(Int8Type, true),
        DataType::Int16 => numbers!(Int16Type, true),
        DataType::Int32 => numbers!(Int32Type, true),
        DataType::Int64 => numbers!(Int64Type, true),
        DataType::UInt8 => numbers!(UInt8Type, true),
        DataType::UInt16 => numbers!(UInt16Type, true),
        DataType::UInt32 => numbers!(UInt32Type, true),
        DataType::UInt64 => numbers!(UInt64Type, true),
        DataType::Utf8 => {
            let values = array.as_string::<i32>();
            for i in 0..array.len() {
                if array.is_null(i) || values.value(i).is_empty() {
                    builder.push_missing();
                } else {
                    builder.push_category(values.value(i));
                }
            }
        }
        DataType::LargeUtf8 => {
            let values = array.as_string::<i64>();
            for i in 0..array.len() {
                if array.is_null(i) || values.value(i).is_empty() {
                    builder.push_missing();
                } else {
                    builder.push_category(values.value(i));
                }
            }
        }
        DataType::Boolean => {
            let values = array.as_boolean();
            for i in 0..array.len() {
                if array.is_null(i) {
                    builder.push_missing();
                } else {
                    builder.push_category(if values.value(i) { "true" } else { "false" });
                }
            }
        }
        other => return Err(format!("unsupported Parquet type {other}")),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    #[test]
    fn csv_columns_are_typed_by_content_and_missing_cells_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(dir.path(), "a.csv", "x,c,m\n1,a,2\n2.5,b,\n3,a,x\n");
        let table = read_table(&path, &ReadOptions::default()).unwrap();
        assert_eq!(table.rows, 3);
        let x = table.column("x").unwrap();
        assert_eq!(
            x.values,
            ColumnValues::Numeric {
                sorted: vec![1.0, 2.5, 3.0],
                integer_valued: false
            }
        );
        let ColumnValues::Categorical { counts } = &table.column("c").unwrap().values else {
            panic!("c is categorical")
        };
        assert_eq!(counts.get("a"), Some(&2));
        let m = table.column("m").unwrap();
        assert_eq!(m.missing, 1);
        assert!(matches!(&m.values, ColumnValues::Categorical { counts } if counts.get("2") == Some(&1)));
    }

    #[test]
    fn text_categories_encode_to_contract_codes_and_unknown_ones_stay() {
        let mut column = Column {
            name: "country".into(),
            values: ColumnValues::Categorical {
                counts: [("GB".to_string(), 2), ("XX".to_string(), 1)]
                    .into_iter()
                    .collect(),
            },
            missing: 0,
        };
        column.encode_categories(&["US".to_string(), "GB".to_string()]);
        let ColumnValues::Categorical { counts } = &column.values else {
            panic!("still categorical")
        };
        assert_eq!((counts.get("1"), counts.get("XX")), (Some(&2), Some(&1)));
    }

    #[test]
    fn json_lines_with_absent_keys_count_them_missing() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(
            dir.path(),
            "a.jsonl",
            "{\"x\": 1, \"c\": \"a\"}\n{\"c\": \"b\"}\n",
        );
        let table = read_table(&path, &ReadOptions::default()).unwrap();
        assert_eq!(table.rows, 2);
        assert_eq!(table.column("x").unwrap().missing, 1);
    }

    #[test]
    fn unknown_extension_and_empty_files_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let txt = write(dir.path(), "a.txt", "x\n1\n");
        assert!(matches!(
            read_table(&txt, &ReadOptions::default()),
            Err(DataError::Format { .. })
        ));
        let empty = write(dir.path(), "b.csv", "x\n");
        assert!(matches!(
            read_table(&empty, &ReadOptions::default()),
            Err(DataError::Empty { .. })
        ));
    }
}

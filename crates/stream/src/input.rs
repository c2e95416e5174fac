//! Readers for event files: JSON lines or CSV (with or without a UTF-8 byte-order mark),
//! from a path or standard input.
//!
//! Key decision: every record comes out as the bytes of one JSON object, the same form
//! the event log and Kafka carry, so one validator serves every source. JSON lines pass
//! through untouched (never re-encoded); a CSV row becomes an object of its header's
//! names to the cell text (empty cells are null), and the contract coerces the text.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum InputError {
    #[error("reading {source_name}: {error}")]
    Io { source_name: String, error: io::Error },
    #[error("{source_name} line {line}: {reason}")]
    Csv {
        source_name: String,
        line: u64,
        reason: String,
    },
}

/// Where records are read from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InputSource {
    Stdin,
    File(PathBuf),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputFormat {
    JsonLines,
    Csv,
}

impl InputSource {
    pub fn name(&self) -> String {
        match self {
            InputSource::Stdin => "standard input".into(),
            InputSource::File(p) => p.display().to_string(),
        }
    }
}

/// One record of an input: its 1-based line number and the JSON object bytes. A CSV
/// row that cannot be split into cells still yields a record (its raw text), so the
/// validator dead-letters it with a reason instead of the reader stopping.
#[derive(Debug, Clone, PartialEq)]
pub struct InputRecord {
    pub line: u64,
    pub json: Vec<u8>,
    /// Bytes of the input consumed through the end of this record.
    pub end_byte: u64,
}

/// Streams the records of a JSON-lines or CSV input.
pub struct InputReader {
    source_name: String,
    reader: Box<dyn BufRead + Send>,
    format: InputFormat,
    headers: Vec<String>,
    line: u64,
    bytes: u64,
    buf: Vec<u8>,
}

const BOM: &[u8] = b"\xEF\xBB\xBF";

impl InputReader {
    /// Opens `source`, skipping `skip_bytes` (a resume position from an earlier run). The
    /// format is CSV for a `.csv` path or when the first byte is not `{`.
    pub fn open(source: &InputSource, skip_bytes: u64) -> Result<Self, InputError> {
        let source_name = source.name();
        let io_err = |error| InputError::Io {
            source_name: source_name.clone(),
            error,
        };
        let raw: Box<dyn Read + Send> = match source {
            InputSource::Stdin => Box::new(io::stdin()),
            InputSource::File(path) => Box::new(File::open(path).map_err(io_err)?),
        };
        let mut reader: Box<dyn BufRead + Send> = Box::new(BufReader::with_capacity(1 << 20, raw));
        let mut bytes = 0;
        if reader.fill_buf().map_err(io_err)?.starts_with(BOM) {
            reader.consume(BOM.len());
            bytes += BOM.len() as u64;
        }
        let first = reader.fill_buf().map_err(io_err)?.first().copied();
        let is_csv_path = matches!(source, InputSource::File(p) if has_csv_extension(p));
        let format = if is_csv_path || first.is_some_and(|b| b != b'{' && !b.is_ascii_whitespace()) {
            InputFormat::Csv
        } else {
            InputFormat::JsonLines
        };
        let mut this = Self {
            source_name,
            reader,
            format,
            headers: Vec::new(),
            line: 0,
            bytes,
            buf: Vec::new(),
        };
        if format == InputFormat::Csv {
            let header = this.next_line()?.unwrap_or_default();
            this.headers = split_csv(&header).map_err(|reason| this.csv_error(reason))?;
        }
        while this.bytes < skip_bytes {
            if this.next_line()?.is_none() {
                break;
            }
        }
        Ok(this)
    }

    pub fn format(&self) -> InputFormat {
        self.format
    }

    /// The next record, or `None` at the end. Blank lines are skipped.
    pub fn next_record(&mut self) -> Result<Option<InputRecord>, InputError> {
        loop {
            let Some(line) = self.next_line()? else {
                return Ok(None);
            };
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            let json = match self.format {
                InputFormat::JsonLines => line,
                InputFormat::Csv => self.csv_row_to_json(&line),
            };
            return Ok(Some(InputRecord {
                line: self.line,
                json,
                end_byte: self.bytes,
            }));
        }
    }

    fn next_line(&mut self) -> Result<Option<Vec<u8>>, InputError> {
        self.buf.clear();
        let n = self
            .reader
            .read_until(b'\n', &mut self.buf)
            .map_err(|error| InputError::Io {
                source_name: self.source_name.clone(),
                error,
            })?;
        if n == 0 {
            return Ok(None);
        }
        self.line += 1;
        self.bytes += n as u64;
        let mut line = std::mem::take(&mut self.buf);
        while line.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
            line.pop();
        }
        Ok(Some(line))
    }

    /// A row becomes an object of header names to cells. A row that cannot be split, or
    /// has the wrong number of cells, becomes a JSON string naming the problem and holding
    /// the raw text: not an object, so the validator dead-letters it with that reason.
    fn csv_row_to_json(&self, line: &[u8]) -> Vec<u8> {
        let cells = split_csv(line).and_then(|cells| {
            if cells.len() == self.headers.len() {
                Ok(cells)
            } else {
                Err(format!(
                    "expected {} cells, found {}",
                    self.headers.len(),
                    cells.len()
                ))
            }
        });
        let cells = match cells {
            Ok(cells) => cells,
            Err(reason) => {
                let text = format!(
                    "CSV line {}: {reason}: {}",
                    self.line,
                    String::from_utf8_lossy(line)
                );
                return serde_json::Value::String(text).to_string().into_bytes();
            }
        };
        let mut object = serde_json::Map::with_capacity(self.headers.len());
        for (name, cell) in self.headers.iter().zip(cells) {
            let value = if cell.is_empty() {
                serde_json::Value::Null
            } else {
                serde_json::Value::String(cell)
            };
            object.insert(name.clone(), value);
        }
        serde_json::Value::Object(object).to_string().into_bytes()
    }

    fn csv_error(&self, reason: String) -> InputError {
        InputError::Csv {
            source_name: self.source_name.clone(),
            line: self.line,
            reason,
        }
    }
}

fn has_csv_extension(path: &Path) -> bool {
    path.extension().is_some_and(|e| e.eq_ignore_ascii_case("csv"))
}

/// Splits one CSV line (RFC 4180 quoting; no newlines inside quoted cells).
fn split_csv(line: &[u8]) -> Result<Vec<String>, String> {
    let mut reader = csv::ReaderBuilder::new().has_headers(false).from_reader(line);
    let mut record = csv::StringRecord::new();
    match reader.read_record(&mut record) {
        Ok(true) => Ok(record.iter().map(|c| c.trim().to_string()).collect()),
        Ok(false) => Ok(Vec::new()),
        Err(e) => Err(format!("not a CSV row: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn read_all(content: &[u8], name: &str) -> Vec<InputRecord> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(name);
        File::create(&path).unwrap().write_all(content).unwrap();
        let mut reader = InputReader::open(&InputSource::File(path), 0).unwrap();
        std::iter::from_fn(|| reader.next_record().unwrap()).collect()
    }

    #[test]
    fn the_seed_csv_with_a_bom_reads_as_json_objects() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/seed/events.csv");
        let content = std::fs::read(&path).expect("the seed sample file");
        assert!(content.starts_with(BOM), "the seed file has a BOM");
        let records = read_all(&content, "events.csv");
        assert_eq!(records.len(), 5);
        let first: serde_json::Value = serde_json::from_slice(&records[0].json).unwrap();
        assert_eq!(first["event_id"], "01HQA7F9G4G1YJ2R4D8K2J3A5S");
        assert_eq!(first["transaction_amount"], "89.23");
        assert_eq!(records[0].line, 2);
    }

    #[test]
    fn json_lines_pass_through_untouched_and_blank_lines_are_skipped() {
        let records = read_all(b"{\"a\": 1}\r\n\n  \n{not json\n", "x.jsonl");
        assert_eq!(records.len(), 2);
        assert_eq!(records[0].json, b"{\"a\": 1}");
        assert_eq!(records[1].json, b"{not json");
        assert_eq!(records[1].line, 4);
    }

    #[test]
    fn resuming_from_a_byte_position_skips_whole_lines() {
        let content = b"{\"n\":1}\n{\"n\":2}\n{\"n\":3}\n";
        let all = read_all(content, "x.jsonl");
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.jsonl");
        std::fs::write(&path, content).unwrap();
        let mut reader = InputReader::open(&InputSource::File(path), all[0].end_byte).unwrap();
        let next = reader.next_record().unwrap().unwrap();
        assert_eq!(next.json, b"{\"n\":2}");
    }

    #[test]
    fn csv_rows_with_the_wrong_number_of_cells_carry_the_reason() {
        let records = read_all(b"a,b\n1,2,3\n\"open,2\n", "x.csv");
        let first: serde_json::Value = serde_json::from_slice(&records[0].json).unwrap();
        assert_eq!(first, "CSV line 2: expected 2 cells, found 3: 1,2,3");
        let second: serde_json::Value = serde_json::from_slice(&records[1].json).unwrap();
        assert!(second.as_str().unwrap().starts_with("CSV line 3: "), "{second}");
    }

    #[test]
    fn empty_csv_cells_become_null() {
        let records = read_all(b"user_id,transaction_amount\nu-1,\n", "x.csv");
        let row: serde_json::Value = serde_json::from_slice(&records[0].json).unwrap();
        assert_eq!(row["transaction_amount"], serde_json::Value::Null);
    }
}

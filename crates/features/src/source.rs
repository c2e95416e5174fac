//! Appending an input file (or standard input) to the event log, resumably.
//!
//! Key decision: the file's progress (bytes done, log end at that moment) is saved
//! after each flushed chunk. On a rerun after a crash, records the log gained after the
//! last save are compared byte for byte with the file's next records and skipped when
//! equal, so an interrupted `ingest --from FILE` rerun appends every line exactly once.

use std::fs::{self, File};
use std::io::Write;
use std::path::PathBuf;

use driftline_stream::input::{InputReader, InputRecord, InputSource};
use driftline_stream::log::{LogConfig, LogReader, LogWriter, RecordBatch};
use serde::{Deserialize, Serialize};

use crate::ingest::IngestError;
use crate::paths::DataPaths;

const CHUNK: usize = 16_384;

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Progress {
    source: String,
    bytes_done: u64,
    log_end: u64,
}

/// What appending an input did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AppendReport {
    pub appended: u64,
    /// Records found already in the log from an interrupted earlier run.
    pub already_in_log: u64,
    /// Where in the input this run started (0 unless resuming).
    pub resumed_at_byte: u64,
}

/// Appends every record of `source` to the log under `paths`, resuming a file where an
/// earlier run stopped. `progress` receives the count appended so far.
pub fn append_input(
    source: &InputSource,
    paths: &DataPaths,
    log_config: LogConfig,
    progress: &mut dyn FnMut(u64),
) -> Result<AppendReport, IngestError> {
    let mut writer = LogWriter::open(&paths.log(), log_config)?;
    let progress_path = progress_file(source, paths)?;
    let saved = match &progress_path {
        Some(path) => match load_progress(path)? {
            Some(saved) => saved,
            None => {
                // Saved before the first append, so a crash in the first chunk resumes too.
                save_progress(path, source, 0, writer.next_offset())?;
                Progress {
                    log_end: writer.next_offset(),
                    ..Progress::default()
                }
            }
        },
        None => Progress {
            log_end: writer.next_offset(),
            ..Progress::default()
        },
    };
    let mut input = InputReader::open(source, saved.bytes_done)?;
    let mut report = AppendReport {
        resumed_at_byte: saved.bytes_done,
        ..AppendReport::default()
    };
    let mut pending = skip_already_appended(
        &mut input,
        paths,
        saved.log_end,
        writer.next_offset(),
        &mut report,
    )?;
    let mut bytes_done = saved.bytes_done;
    loop {
        let mut chunk = 0;
        while chunk < CHUNK {
            let Some(record) = pending.take().map(Ok).or_else(|| input.next_record().transpose()) else {
                break;
            };
            let record = record?;
            writer.append(&record.json, now_micros())?;
            bytes_done = record.end_byte;
            chunk += 1;
        }
        if chunk == 0 {
            break;
        }
        writer.flush()?;
        report.appended += chunk as u64;
        if let Some(path) = &progress_path {
            save_progress(path, source, bytes_done, writer.next_offset())?;
        }
        progress(report.appended);
    }
    Ok(report)
}

/// Skips input records that an interrupted run appended after its last saved progress.
/// Returns the first input record that is not in the log, if one was read.
fn skip_already_appended(
    input: &mut InputReader,
    paths: &DataPaths,
    saved_log_end: u64,
    log_end: u64,
    report: &mut AppendReport,
) -> Result<Option<InputRecord>, IngestError> {
    if log_end <= saved_log_end {
        return Ok(None);
    }
    let mut reader = LogReader::open(&paths.log())?;
    reader.seek(saved_log_end)?;
    let mut batch = RecordBatch::new();
    while reader.read_into(CHUNK, &mut batch)? > 0 {
        for logged in batch.iter() {
            let Some(record) = input.next_record()? else {
                return Ok(None);
            };
            if record.json != logged.payload {
                return Ok(Some(record));
            }
            report.already_in_log += 1;
        }
    }
    Ok(None)
}

fn progress_file(source: &InputSource, paths: &DataPaths) -> Result<Option<PathBuf>, IngestError> {
    let InputSource::File(path) = source else {
        return Ok(None);
    };
    let canonical = fs::canonicalize(path).map_err(|e| IngestError::Io {
        action: "opening",
        path: path.display().to_string(),
        source: e,
    })?;
    let dir = paths.sources();
    fs::create_dir_all(&dir).map_err(|e| IngestError::Io {
        action: "creating",
        path: dir.display().to_string(),
        source: e,
    })?;
    let key = xxhash_rust::xxh3::xxh3_64(canonical.to_string_lossy().as_bytes());
    Ok(Some(dir.join(format!("{key:016x}.json"))))
}

fn load_progress(path: &PathBuf) -> Result<Option<Progress>, IngestError> {
    match fs::read(path) {
        Ok(bytes) => Ok(serde_json::from_slice(&bytes).ok()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(IngestError::Io {
            action: "reading",
            path: path.display().to_string(),
            source: e,
        }),
    }
}

fn save_progress(
    path: &PathBuf,
    source: &InputSource,
    bytes_done: u64,
    log_end: u64,
) -> Result<(), IngestError> {
    let progress = Progress {
        source: source.name(),
        bytes_done,
        log_end,
    };
    let tmp = path.with_extension("tmp");
    let io = |action, source| IngestError::Io {
        action,
        path: tmp.display().to_string(),
        source,
    };
    let mut file = File::create(&tmp).map_err(|e| io("creating", e))?;
    file.write_all(&serde_json::to_vec(&progress).expect("progress serialises"))
        .map_err(|e| io("writing", e))?;
    file.sync_all().map_err(|e| io("syncing", e))?;
    fs::rename(&tmp, path).map_err(|e| io("renaming", e))
}

fn now_micros() -> i64 {
    chrono::Utc::now().timestamp_micros()
}

#[cfg(test)]
mod tests {
    use super::*;
    use driftline_stream::log::FsyncPolicy;

    fn lines(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("{{\"n\":{i}}}")).collect()
    }

    fn log_payloads(paths: &DataPaths) -> Vec<Vec<u8>> {
        let mut reader = LogReader::open(&paths.log()).unwrap();
        let mut batch = RecordBatch::new();
        let mut all = Vec::new();
        while reader.read_into(1000, &mut batch).unwrap() > 0 {
            all.extend(batch.iter().map(|r| r.payload.to_vec()));
        }
        all
    }

    fn config() -> LogConfig {
        LogConfig {
            fsync: FsyncPolicy::Never,
            ..LogConfig::default()
        }
    }

    #[test]
    fn a_crash_after_appending_but_before_saving_progress_appends_nothing_twice() {
        let dir = tempfile::tempdir().unwrap();
        let paths = DataPaths::new(dir.path().join("data"));
        let input = dir.path().join("events.jsonl");
        let all = lines(40_000);
        std::fs::write(&input, all.join("\n") + "\n").unwrap();
        let source = InputSource::File(input);

        // Another producer wrote first; then the crashed run appended 20,500 of the
        // file's records but saved only its initial progress (nothing done yet).
        let mut writer = LogWriter::open(&paths.log(), config()).unwrap();
        writer.append(b"{\"other\":1}", 0).unwrap();
        let progress = progress_file(&source, &paths).unwrap().unwrap();
        save_progress(&progress, &source, 0, writer.next_offset()).unwrap();
        for line in &all[..20_500] {
            writer.append(line.as_bytes(), 0).unwrap();
        }
        writer.flush().unwrap();
        drop(writer);

        let report = append_input(&source, &paths, config(), &mut |_| {}).unwrap();
        assert_eq!(report.already_in_log, 20_500);
        assert_eq!(report.appended, 19_500);
        let payloads = log_payloads(&paths);
        assert_eq!(payloads.len(), 40_001);
        assert!(payloads[1..].iter().zip(&all).all(|(p, l)| p == l.as_bytes()));

        let again = append_input(&source, &paths, config(), &mut |_| {}).unwrap();
        assert_eq!(
            (again.appended, again.already_in_log),
            (0, 0),
            "a finished file appends nothing"
        );
        assert_eq!(
            again.resumed_at_byte,
            std::fs::metadata(dir.path().join("events.jsonl")).unwrap().len()
        );
    }

    #[test]
    fn a_file_that_grew_resumes_where_the_last_run_ended() {
        let dir = tempfile::tempdir().unwrap();
        let paths = DataPaths::new(dir.path().join("data"));
        let input = dir.path().join("events.jsonl");
        let all = lines(100);
        std::fs::write(&input, all[..60].join("\n") + "\n").unwrap();
        let source = InputSource::File(input.clone());
        assert_eq!(
            append_input(&source, &paths, config(), &mut |_| {})
                .unwrap()
                .appended,
            60
        );
        std::fs::write(&input, all.join("\n") + "\n").unwrap();
        assert_eq!(
            append_input(&source, &paths, config(), &mut |_| {})
                .unwrap()
                .appended,
            40
        );
        assert_eq!(log_payloads(&paths).len(), 100);
    }
}

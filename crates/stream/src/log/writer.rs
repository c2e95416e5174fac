//! The single writer of a log directory: buffers frames, rolls segments, and cuts a torn
//! tail off the last segment when it opens.
//!
//! Key decision: exclusivity is an OS file lock on `DIR/writer.lock`, not a pid file, so
//! a writer killed with -9 never leaves a stale lock: the kernel drops it with the
//! process. After any failed write or fsync the writer is poisoned rather than guessing
//! what reached the disk; reopening runs the same recovery as after a crash.

use std::fs::{self, File, OpenOptions, TryLockError};
use std::io::{Seek, SeekFrom, Write};
use std::ops::Range;
use std::path::{Path, PathBuf};

use super::cursor::SegmentCursor;
use super::frame::{self, MAX_PAYLOAD_BYTES};
use super::{LogConfig, LogError, segment};

const LOCK_FILE: &str = "writer.lock";
/// Buffered frames are written to the file once they reach this size, even before a
/// flush, to bound memory.
const WRITE_BUFFER_BYTES: usize = 1 << 20;

/// What [`LogWriter::open`] found at the end of the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecoveryReport {
    /// The segment that was checked: the last one, the only one a crash can tear.
    pub segment: PathBuf,
    /// Complete, valid records kept in that segment.
    pub records_kept: u64,
    /// Bytes cut from the segment's end; 0 after a clean shutdown.
    pub bytes_truncated: u64,
    /// Why the first dropped byte could not start a valid frame, if any were dropped.
    pub reason: Option<String>,
}

/// Appends records to a log directory. At most one exists per directory, across
/// processes; dropping it flushes (errors are logged, call [`flush`](Self::flush) to
/// see them) and releases the lock.
#[derive(Debug)]
pub struct LogWriter {
    dir: PathBuf,
    config: LogConfig,
    segment: ActiveSegment,
    /// Encoded frames not yet written to the segment file.
    pending: Vec<u8>,
    next_offset: u64,
    recovered: RecoveryReport,
    poisoned: bool,
    _lock: File,
}

/// The segment being appended to.
#[derive(Debug)]
struct ActiveSegment {
    path: PathBuf,
    file: File,
    /// Bytes in the file (excluding frames still buffered).
    written: u64,
}

impl LogWriter {
    /// Opens (creating if needed) the log in `dir` for appending, taking the writer
    /// lock and truncating a torn tail of the last segment.
    pub fn open(dir: &Path, config: LogConfig) -> Result<Self, LogError> {
        fs::create_dir_all(dir).map_err(|e| LogError::io(dir, e))?;
        let lock = lock_directory(dir)?;
        let (segment, next_offset, recovered) = match segment::list(dir)?.last() {
            Some(&base) => recover_last_segment(dir, base)?,
            None => {
                let segment = ActiveSegment::create(dir, 0, config)?;
                let recovered = RecoveryReport::clean(&segment.path, 0);
                (segment, 0, recovered)
            }
        };
        Ok(Self {
            dir: dir.to_path_buf(),
            config,
            segment,
            pending: Vec::with_capacity(WRITE_BUFFER_BYTES),
            next_offset,
            recovered,
            poisoned: false,
            _lock: lock,
        })
    }

    /// Buffers one record and returns its offset. It is visible to readers (and, per
    /// the fsync policy, durable) after the next [`flush`](Self::flush); it may become
    /// visible earlier when the buffer fills or the segment rolls.
    pub fn append(&mut self, payload: &[u8], append_ts_micros: i64) -> Result<u64, LogError> {
        self.check_usable()?;
        check_payload_size(payload)?;
        if self.segment_is_full_for(payload.len()) {
            self.roll()?;
        }
        let offset = self.next_offset;
        frame::encode(&mut self.pending, offset, append_ts_micros, payload);
        self.next_offset += 1;
        if self.pending.len() >= WRITE_BUFFER_BYTES {
            self.write_pending()?;
        }
        Ok(offset)
    }

    /// Buffers several records with one timestamp and returns their offsets. On an
    /// error, the records before the failing one stay appended.
    pub fn append_batch<'a>(
        &mut self,
        payloads: impl IntoIterator<Item = &'a [u8]>,
        append_ts_micros: i64,
    ) -> Result<Range<u64>, LogError> {
        let first = self.next_offset;
        for payload in payloads {
            self.append(payload, append_ts_micros)?;
        }
        Ok(first..self.next_offset)
    }

    /// Writes buffered records to the segment file and, with
    /// [`FsyncPolicy::EveryFlush`](super::FsyncPolicy::EveryFlush), fsyncs it. Records
    /// appended before are then visible to readers.
    pub fn flush(&mut self) -> Result<(), LogError> {
        self.check_usable()?;
        self.write_pending()?;
        if self.config.fsync.syncs() {
            self.sync_segment()?;
        }
        Ok(())
    }

    /// The offset the next appended record will get.
    pub fn next_offset(&self) -> u64 {
        self.next_offset
    }

    /// What opening found at the end of the log.
    pub fn recovered(&self) -> &RecoveryReport {
        &self.recovered
    }

    /// The log directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn check_usable(&self) -> Result<(), LogError> {
        if self.poisoned {
            return Err(LogError::Poisoned {
                path: self.segment.path.clone(),
            });
        }
        Ok(())
    }

    /// Whether a frame for `payload_len` bytes must go to a new segment. A segment
    /// always takes its first frame, however large.
    fn segment_is_full_for(&self, payload_len: usize) -> bool {
        let len = self.segment.written + self.pending.len() as u64;
        let frame_len = frame::frame_len(payload_len) as u64;
        len > 0 && len + frame_len > self.config.segment_bytes
    }

    /// Seals the active segment (completely written, fsynced per policy) and only then
    /// creates the next, so a reader that sees the new file may trust the old one.
    fn roll(&mut self) -> Result<(), LogError> {
        self.write_pending()?;
        if self.config.fsync.syncs() {
            self.sync_segment()?;
        }
        let next = ActiveSegment::create(&self.dir, self.next_offset, self.config)?;
        tracing::debug!(
            sealed = %self.segment.path.display(),
            sealed_bytes = self.segment.written,
            next = %next.path.display(),
            "log segment rolled"
        );
        self.segment = next;
        Ok(())
    }

    fn write_pending(&mut self) -> Result<(), LogError> {
        if self.pending.is_empty() {
            return Ok(());
        }
        if let Err(e) = self.segment.file.write_all(&self.pending) {
            self.poisoned = true;
            return Err(LogError::io(&self.segment.path, e));
        }
        self.segment.written += self.pending.len() as u64;
        self.pending.clear();
        Ok(())
    }

    fn sync_segment(&mut self) -> Result<(), LogError> {
        if let Err(e) = self.segment.file.sync_data() {
            self.poisoned = true;
            return Err(LogError::io(&self.segment.path, e));
        }
        Ok(())
    }
}

impl Drop for LogWriter {
    fn drop(&mut self) {
        if self.poisoned || self.pending.is_empty() {
            return;
        }
        if let Err(error) = self.flush() {
            tracing::error!(%error, "flushing the log writer on drop failed");
        }
    }
}

impl ActiveSegment {
    /// Creates the empty segment based at `base_offset`; it must not exist yet.
    fn create(dir: &Path, base_offset: u64, config: LogConfig) -> Result<Self, LogError> {
        let path = segment::path(dir, base_offset);
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(|e| LogError::io(&path, e))?;
        if config.fsync.syncs() {
            segment::sync_dir(dir)?;
        }
        Ok(Self {
            path,
            file,
            written: 0,
        })
    }
}

impl RecoveryReport {
    fn clean(segment: &Path, records_kept: u64) -> Self {
        Self {
            segment: segment.to_path_buf(),
            records_kept,
            bytes_truncated: 0,
            reason: None,
        }
    }
}

fn lock_directory(dir: &Path) -> Result<File, LogError> {
    let path = dir.join(LOCK_FILE);
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| LogError::io(&path, e))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(TryLockError::WouldBlock) => Err(LogError::Locked { path }),
        Err(TryLockError::Error(e)) => Err(LogError::io(&path, e)),
    }
}

fn check_payload_size(payload: &[u8]) -> Result<(), LogError> {
    match payload.len() {
        len if len > MAX_PAYLOAD_BYTES => Err(LogError::PayloadTooLarge {
            len,
            max: MAX_PAYLOAD_BYTES,
        }),
        _ => Ok(()),
    }
}

/// Scans the last segment, truncates it after its last valid frame, and opens it for
/// appending. Returns the segment, the next offset and the report.
fn recover_last_segment(
    dir: &Path,
    base_offset: u64,
) -> Result<(ActiveSegment, u64, RecoveryReport), LogError> {
    let path = segment::path(dir, base_offset);
    let mut cursor = SegmentCursor::open(&path, base_offset)?;
    let tail = cursor.skip_to_end()?;
    let valid_len = cursor.position();
    let next_offset = cursor.next_offset();

    let mut file = OpenOptions::new()
        .write(true)
        .open(&path)
        .map_err(|e| LogError::io(&path, e))?;
    let io_error = |e| LogError::io(&path, e);
    let file_len = file.metadata().map_err(io_error)?.len();
    let mut report = RecoveryReport::clean(&path, next_offset - base_offset);
    if file_len > valid_len {
        file.set_len(valid_len).map_err(io_error)?;
        file.sync_all().map_err(io_error)?;
        report.bytes_truncated = file_len - valid_len;
        report.reason = tail.problem();
        tracing::warn!(
            segment = %path.display(),
            bytes_truncated = report.bytes_truncated,
            records_kept = report.records_kept,
            next_offset,
            reason = report.reason.as_deref().unwrap_or("unknown"),
            "truncated a torn tail of the log"
        );
    }
    file.seek(SeekFrom::Start(valid_len)).map_err(io_error)?;
    let segment = ActiveSegment {
        path: path.clone(),
        file,
        written: valid_len,
    };
    Ok((segment, next_offset, report))
}

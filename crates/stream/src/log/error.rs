//! Errors of the embedded log.
//!
//! Key decision: every variant about a file names that file (and corruption its byte
//! position), because the reader of "corrupt log" is an operator who must find the
//! segment to inspect or restore.

use std::io;
use std::path::{Path, PathBuf};

/// What can go wrong writing, reading or committing to the embedded log.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    /// An operating-system call on a log file or directory failed.
    #[error("I/O error on {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// Bytes that must be a complete, valid frame (or offset file) are not.
    #[error("corrupt log file {} at byte {position}: {reason}", path.display())]
    Corrupt {
        path: PathBuf,
        position: u64,
        reason: String,
    },
    /// Another [`LogWriter`](super::LogWriter) holds the directory's writer lock.
    #[error("the log is locked by another writer ({})", path.display())]
    Locked { path: PathBuf },
    /// An earlier write or fsync failed, so the writer no longer knows what is on disk.
    /// Drop it and open a new one, which recovers the segment's tail.
    #[error("an earlier write to {} failed; reopen the log writer", path.display())]
    Poisoned { path: PathBuf },
    /// A payload is larger than a frame may hold.
    #[error("payload of {len} bytes exceeds the {max}-byte maximum")]
    PayloadTooLarge { len: usize, max: usize },
    /// A seek to an offset the log does not hold.
    #[error("offset {requested} is outside the log, which holds offsets {start}..{end}")]
    OffsetOutOfRange { requested: u64, start: u64, end: u64 },
    /// A consumer group name that cannot be used as a file name.
    #[error("invalid consumer group name {group:?}: {reason}")]
    InvalidGroup { group: String, reason: &'static str },
}

impl LogError {
    pub(super) fn io(path: &Path, source: io::Error) -> Self {
        Self::Io {
            path: path.to_path_buf(),
            source,
        }
    }

    pub(super) fn corrupt(path: &Path, position: u64, reason: impl Into<String>) -> Self {
        Self::Corrupt {
            path: path.to_path_buf(),
            position,
            reason: reason.into(),
        }
    }
}

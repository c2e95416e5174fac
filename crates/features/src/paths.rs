//! Where the embedded platform keeps its files under the data directory.
//!
//! Key decision: one type names every path, so no module invents its own layout.

use std::path::{Path, PathBuf};

/// The layout of a data directory.
#[derive(Debug, Clone)]
pub struct DataPaths {
    root: PathBuf,
}

impl DataPaths {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The embedded event log's segments.
    pub fn log(&self) -> PathBuf {
        self.root.join("log")
    }

    /// Ingest checkpoints, feature-state snapshots and the ingest lock.
    pub fn state(&self) -> PathBuf {
        self.root.join("state")
    }

    pub fn checkpoint(&self) -> PathBuf {
        self.state().join("checkpoint.json")
    }

    pub fn snapshot(&self, next_offset: u64) -> PathBuf {
        self.state().join(format!("snapshot-{next_offset:020}.bin"))
    }

    pub fn ingest_lock(&self) -> PathBuf {
        self.state().join("ingest.lock")
    }

    /// Progress of file inputs appended to the log, for resuming after a crash.
    pub fn sources(&self) -> PathBuf {
        self.state().join("sources")
    }

    /// Offline history (Parquet).
    pub fn offline(&self) -> PathBuf {
        self.root.join("offline")
    }

    /// Records that could not be ingested, one JSON object per line with the reason.
    pub fn dead_letters(&self) -> PathBuf {
        self.root.join("dead-letter.jsonl")
    }

    /// Model artifacts, content-addressed by sha256.
    pub fn artifacts(&self) -> PathBuf {
        self.root.join("artifacts")
    }
}

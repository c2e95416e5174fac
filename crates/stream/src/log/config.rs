//! Configuration of the embedded log writer.
//!
//! Key decision: durability is one explicit policy applied at [`flush`] time, not per
//! append, so a producer chooses its batch size and thereby its fsync rate.
//!
//! [`flush`]: super::LogWriter::flush

use serde::{Deserialize, Serialize};

/// How a [`LogWriter`](super::LogWriter) lays out and persists its segments.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    /// Size in bytes after which the writer starts a new segment file (default 64 MiB).
    /// A segment always holds at least one record, so one large record may exceed it.
    pub segment_bytes: u64,
    /// When written data is forced to stable storage (default `every_flush`).
    pub fsync: FsyncPolicy,
}

impl LogConfig {
    /// The log's settings from `[log]` of `driftline.toml`.
    pub fn from_settings(settings: &driftline_core::config::LogSettings) -> Self {
        LogConfig {
            segment_bytes: settings.segment_bytes,
            fsync: if settings.fsync {
                FsyncPolicy::EveryFlush
            } else {
                FsyncPolicy::Never
            },
        }
    }
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            segment_bytes: 64 << 20,
            fsync: FsyncPolicy::EveryFlush,
        }
    }
}

/// When the writer calls `fsync` on its files.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FsyncPolicy {
    /// Never: data survives a killed process (it is in the OS page cache once flushed)
    /// but not a power loss. For tests, benchmarks and re-creatable data.
    Never,
    /// On every flush, on a segment roll and after creating a file: flushed records
    /// survive a power loss.
    #[default]
    EveryFlush,
}

impl FsyncPolicy {
    pub(super) fn syncs(self) -> bool {
        matches!(self, Self::EveryFlush)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_fields_take_defaults_and_unknown_fields_are_refused() {
        let parsed: LogConfig = serde_json::from_str(r#"{"segment_bytes": 1024}"#).unwrap();
        assert_eq!(parsed.segment_bytes, 1024);
        assert_eq!(parsed.fsync, FsyncPolicy::EveryFlush);
        let never: LogConfig = serde_json::from_str(r#"{"fsync": "never"}"#).unwrap();
        assert_eq!(never.segment_bytes, LogConfig::default().segment_bytes);
        assert_eq!(never.fsync, FsyncPolicy::Never);
        assert!(serde_json::from_str::<LogConfig>(r#"{"segment_size": 1}"#).is_err());
    }
}

//! Where the feed stands in each partition, written down before every batch it appends.
//!
//! Key decision: an intent record, not a completion record. Before a batch is appended to
//! the log, the feed saves the log's end, every partition's next offset, the batch's
//! (partition, offset) sequence and a hash of each payload. After a crash, the log records
//! from that end onward are compared with the hashes in order: the matching prefix is
//! exactly what reached the log, so the positions after it are known without guessing,
//! even if another producer appended to the log in between (its records do not match).
//! One small file write per batch, no write per message.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::KafkaError;
use crate::log::{LogReader, RecordBatch};

/// Consecutive offsets of one partition, in append order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Run {
    pub partition: i32,
    pub first: i64,
    pub count: u32,
}

/// The batch about to be appended, and where every partition stood before it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Intent {
    pub topic: String,
    /// The log's end (next offset) before the batch.
    pub log_start: u64,
    /// Each partition's next Kafka offset before the batch.
    pub positions: BTreeMap<i32, i64>,
    /// The batch's messages in append order.
    pub runs: Vec<Run>,
    /// xxh3-64 of each message's payload, in append order.
    pub hashes: Vec<u64>,
}

/// Adds message `(partition, offset)` to the end of `runs`.
pub(crate) fn push_message(runs: &mut Vec<Run>, partition: i32, offset: i64) {
    if let Some(last) = runs.last_mut()
        && last.partition == partition
        && last.first + i64::from(last.count) == offset
    {
        last.count += 1;
        return;
    }
    runs.push(Run {
        partition,
        first: offset,
        count: 1,
    });
}

pub(crate) fn payload_hash(payload: &[u8]) -> u64 {
    xxhash_rust::xxh3::xxh3_64(payload)
}

impl Intent {
    /// The positions once the first `appended` messages of the batch are in the log.
    pub fn positions_after(&self, appended: usize) -> BTreeMap<i32, i64> {
        let mut positions = self.positions.clone();
        let mut left = appended as u64;
        for run in &self.runs {
            if left == 0 {
                break;
            }
            let taken = left.min(u64::from(run.count));
            positions.insert(run.partition, run.first + taken as i64);
            left -= taken;
        }
        positions
    }

    /// How many of the batch's messages reached the log: the length of the prefix of the
    /// log records from `log_start` whose payloads hash as the batch's do.
    pub fn appended(&self, log_dir: &Path, log_end: u64) -> Result<usize, KafkaError> {
        if log_end <= self.log_start || self.hashes.is_empty() {
            return Ok(0);
        }
        let mut reader = LogReader::open(log_dir)?;
        reader.seek(self.log_start)?;
        let mut batch = RecordBatch::new();
        let mut matched = 0;
        while matched < self.hashes.len() {
            let want = (self.hashes.len() - matched).min(4096);
            if reader.read_into(want, &mut batch)? == 0 {
                break;
            }
            for record in batch.iter() {
                if payload_hash(record.payload) != self.hashes[matched] {
                    return Ok(matched);
                }
                matched += 1;
            }
        }
        Ok(matched)
    }

    pub fn load(path: &Path) -> Result<Option<Self>, KafkaError> {
        match fs::read(path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| KafkaError::Progress {
                    path: path.display().to_string(),
                    reason: e.to_string(),
                }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(KafkaError::Io {
                action: "reading",
                path: path.display().to_string(),
                source,
            }),
        }
    }

    /// Replaces the file atomically; with `sync`, durably (file and directory fsynced).
    pub fn save(&self, path: &Path, sync: bool) -> Result<(), KafkaError> {
        let tmp = path.with_extension("tmp");
        let io = |action, path: &PathBuf| {
            let path = path.display().to_string();
            move |source| KafkaError::Io { action, path, source }
        };
        let mut file = File::create(&tmp).map_err(io("creating", &tmp))?;
        file.write_all(&serde_json::to_vec(self).expect("an intent serialises"))
            .map_err(io("writing", &tmp))?;
        if sync {
            file.sync_all().map_err(io("syncing", &tmp))?;
        }
        fs::rename(&tmp, path).map_err(io("renaming", &tmp))?;
        if sync && let Some(dir) = path.parent() {
            File::open(dir)
                .and_then(|d| d.sync_all())
                .map_err(io("syncing", &dir.to_path_buf()))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::{FsyncPolicy, LogConfig, LogWriter};

    fn intent(messages: &[(i32, i64, &str)], log_start: u64) -> Intent {
        let mut intent = Intent {
            topic: "t".into(),
            log_start,
            positions: BTreeMap::from([(0, 10), (1, 5), (2, 7)]),
            ..Intent::default()
        };
        for (partition, offset, payload) in messages {
            push_message(&mut intent.runs, *partition, *offset);
            intent.hashes.push(payload_hash(payload.as_bytes()));
        }
        intent
    }

    #[test]
    fn runs_group_consecutive_offsets_of_one_partition() {
        let i = intent(
            &[
                (0, 10, "a"),
                (0, 11, "b"),
                (1, 5, "c"),
                (0, 12, "d"),
                (0, 14, "e"),
            ],
            0,
        );
        let counts: Vec<(i32, i64, u32)> = i.runs.iter().map(|r| (r.partition, r.first, r.count)).collect();
        assert_eq!(counts, vec![(0, 10, 2), (1, 5, 1), (0, 12, 1), (0, 14, 1)]);
        assert_eq!(i.positions_after(0), i.positions);
        assert_eq!(i.positions_after(3), BTreeMap::from([(0, 12), (1, 6), (2, 7)]));
        assert_eq!(i.positions_after(5), BTreeMap::from([(0, 15), (1, 6), (2, 7)]));
    }

    #[test]
    fn a_crash_mid_batch_is_resolved_by_the_matching_prefix_even_after_a_foreign_append() {
        let dir = tempfile::tempdir().unwrap();
        let config = LogConfig {
            fsync: FsyncPolicy::Never,
            ..LogConfig::default()
        };
        let mut writer = LogWriter::open(dir.path(), config).unwrap();
        writer.append(b"before", 0).unwrap();
        let messages = [(0, 10, "m0"), (1, 5, "m1"), (0, 11, "m2"), (2, 7, "m3")];
        let i = intent(&messages, writer.next_offset());
        // Two of the four reached the log, then another producer appended.
        writer.append(b"m0", 0).unwrap();
        writer.append(b"m1", 0).unwrap();
        writer.append(b"foreign", 0).unwrap();
        writer.flush().unwrap();
        let appended = i.appended(dir.path(), writer.next_offset()).unwrap();
        assert_eq!(appended, 2);
        assert_eq!(
            i.positions_after(appended),
            BTreeMap::from([(0, 11), (1, 6), (2, 7)])
        );
        assert_eq!(i.appended(dir.path(), 1).unwrap(), 0, "nothing past the start");

        let path = dir.path().join("progress.json");
        i.save(&path, true).unwrap();
        assert_eq!(Intent::load(&path).unwrap(), Some(i));
        assert_eq!(Intent::load(&dir.path().join("none.json")).unwrap(), None);
    }
}

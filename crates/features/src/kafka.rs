//! `ingest --from kafka` in embedded mode: a [`KafkaFeed`] appends the topic to the event
//! log and the ordinary ingest loop consumes it.
//!
//! Key decision (why not apply Kafka messages to state directly): the log is the system
//! of record that `features get`, `serve` and crash recovery replay, so every event must
//! be in it anyway. The order of durable steps per batch is: intent saved, records
//! appended and fsynced, positions advanced; then, at each ingest checkpoint (history
//! files, dead letters, snapshot, checkpoint.json), the group's offsets are committed up
//! to the checkpointed log offset. A `kill -9` anywhere loses nothing (Kafka still has
//! whatever the log lacks) and duplicates nothing (the feed resumes at the positions
//! recorded beside the log, and ingest undoes everything past its checkpoint and replays
//! the log), and event-id de-duplication in [`crate::state`] catches anything that does
//! arrive twice, so state is as if each event arrived once.

use std::path::PathBuf;
use std::time::Duration;

use driftline_core::config::Config;
use driftline_stream::kafka::KafkaFeed;
use driftline_stream::log::LogConfig;

use crate::ingest::{Feed, IngestError};
use crate::paths::DataPaths;

impl Feed for KafkaFeed {
    fn fill(&mut self, wait: Duration) -> Result<bool, IngestError> {
        Ok(self
            .pump(wait)
            .map_err(|e| IngestError::Feed(Box::new(e)))?
            .caught_up)
    }

    fn checkpointed(&mut self, next_offset: u64) -> Result<(), IngestError> {
        self.commit(next_offset)
            .map_err(|e| IngestError::Feed(Box::new(e)))
    }

    fn assignment_epoch(&self) -> u64 {
        KafkaFeed::assignment_epoch(self)
    }
}

/// Where the feed of `topic` records its positions in the data directory.
pub fn progress_path(paths: &DataPaths, topic: &str) -> PathBuf {
    let safe: String = topic
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let hash = xxhash_rust::xxh3::xxh3_64(topic.as_bytes());
    paths.sources().join(format!("kafka-{safe}-{hash:08x}.json"))
}

/// Joins `[kafka]`'s group and opens the feed into the data directory's log.
pub fn open_feed(
    config: &Config,
    paths: &DataPaths,
    log_config: LogConfig,
) -> Result<KafkaFeed, IngestError> {
    let sources = paths.sources();
    std::fs::create_dir_all(&sources).map_err(|source| IngestError::Io {
        action: "creating",
        path: sources.display().to_string(),
        source,
    })?;
    let settings = &config.settings.kafka;
    KafkaFeed::open(
        settings,
        &paths.log(),
        log_config,
        progress_path(paths, &settings.topic),
        config.settings.ingest.batch_size,
    )
    .map_err(|e| IngestError::Feed(Box::new(e)))
}

//! [`KafkaFeed`]: a consumer-group member that appends a topic's messages to the event
//! log, durably and exactly once per message, and commits the group's offsets when told
//! that ingest has checkpointed past them.
//!
//! Key decision: the feed never holds a message it has acknowledged anywhere but in the
//! log. Each [`KafkaFeed::pump`] polls one batch, writes its intent
//! ([`super::progress`]), appends it and flushes (fsynced per `[log] fsync`); only then do
//! the positions advance. [`KafkaFeed::commit`] maps a checkpointed log offset back to the
//! positions that were current when the log reached it, so Kafka never hears of progress
//! that ingest has not made durable.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use driftline_core::config::KafkaSettings;
use rdkafka::consumer::{CommitMode, Consumer};
use rdkafka::error::KafkaError as RdKafkaError;
use rdkafka::message::Message;
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{Offset, TopicPartitionList};

use super::KafkaError;
use super::consumer::{FeedConsumer, METADATA_TIMEOUT, Shared, subscribe};
use super::progress::{Intent, Run, payload_hash, push_message};
use crate::log::{FsyncPolicy, LogConfig, LogWriter};

/// What one [`KafkaFeed::pump`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pumped {
    /// Messages appended to the log.
    pub appended: usize,
    /// Every assigned partition is at its end and nothing was appended: the log holds
    /// everything this worker's partitions had.
    pub caught_up: bool,
}

/// Counts since the feed was opened.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FeedStats {
    /// Messages appended to the log.
    pub appended: u64,
    /// Redelivered messages skipped because the log already held them.
    pub skipped: u64,
    /// Successful offset commits.
    pub commits: u64,
    /// Offset commits Kafka refused (retried with the next checkpoint).
    pub failed_commits: u64,
}

/// One polled batch: payloads in an arena, with their runs and hashes for the intent.
#[derive(Default)]
struct Batch {
    /// Every partition's next offset before the batch.
    before: BTreeMap<i32, i64>,
    arena: Vec<u8>,
    ends: Vec<usize>,
    runs: Vec<Run>,
    hashes: Vec<u64>,
}

impl Batch {
    fn push(&mut self, partition: i32, offset: i64, payload: &[u8]) {
        self.arena.extend_from_slice(payload);
        self.ends.push(self.arena.len());
        push_message(&mut self.runs, partition, offset);
        self.hashes.push(payload_hash(payload));
    }

    fn payloads(&self) -> impl Iterator<Item = &[u8]> {
        let starts = std::iter::once(0).chain(self.ends.iter().copied());
        starts
            .zip(self.ends.iter().copied())
            .map(|(s, e)| &self.arena[s..e])
    }

    fn len(&self) -> usize {
        self.ends.len()
    }

    fn clear(&mut self) {
        self.arena.clear();
        self.ends.clear();
        self.runs.clear();
        self.hashes.clear();
    }
}

/// What the feed knows of the partitions while it polls; apart from the consumer, so a
/// polled message (which borrows the consumer) can be taken in place.
struct Intake {
    topic: String,
    /// Next offset per partition, counting the batch being polled.
    positions: BTreeMap<i32, i64>,
    assigned: BTreeSet<i32>,
    ever_assigned: bool,
    at_end: BTreeSet<i32>,
    /// Partitions that delivered a message since the last rebalance.
    resumed: BTreeSet<i32>,
    /// Rebalances so far that assigned this worker a partition it did not hold.
    gained_assignments: u64,
    batch: Batch,
    skipped: u64,
}

impl Intake {
    /// Adds a message to the batch unless the log (or the batch) already holds it:
    /// brokers redeliver after a rebalance, and some repeat a batch within one fetch.
    fn take(&mut self, partition: i32, offset: i64, payload: Option<&[u8]>) {
        self.at_end.remove(&partition);
        let expected = self.positions.get(&partition).copied();
        if expected.is_some_and(|next| offset < next) {
            self.skipped += 1;
            return;
        }
        if let Some(next) = expected
            && offset > next
            && !self.resumed.contains(&partition)
        {
            // Normal after compaction or retention; on a broker that answers a fetch
            // with the record batch after the one holding the requested offset
            // (tansu 0.6), lost data. Either way, say so.
            tracing::warn!(
                topic = %self.topic,
                partition,
                expected = next,
                delivered = offset,
                "the broker skipped offsets on resuming this partition"
            );
        }
        self.resumed.insert(partition);
        self.positions.insert(partition, offset + 1);
        self.batch.push(partition, offset, payload.unwrap_or_default());
    }

    /// Takes in a rebalance the callback recorded. End-of-partition marks are dropped: a
    /// (re)assigned partition reports its end again once reached.
    fn refresh_assignment(&mut self, shared: &Mutex<Shared>) {
        let mut shared = shared.lock().expect("feed state lock");
        if shared.changed {
            shared.changed = false;
            if shared.assigned.iter().any(|p| !self.assigned.contains(p)) {
                self.gained_assignments += 1;
            }
            self.assigned.clone_from(&shared.assigned);
            self.at_end.clear();
            self.resumed.clear();
        }
    }

    fn caught_up(&self) -> bool {
        !self.assigned.is_empty() && self.assigned.iter().all(|p| self.at_end.contains(p))
    }
}

/// Kafka topic -> embedded event log. See the module header.
pub struct KafkaFeed {
    consumer: FeedConsumer,
    shared: Arc<Mutex<Shared>>,
    writer: LogWriter,
    progress_path: PathBuf,
    sync: bool,
    max_batch: usize,
    intake: Intake,
    /// (log end after a batch, positions then), oldest first, not yet committed.
    uncommitted: VecDeque<(u64, BTreeMap<i32, i64>)>,
    /// When a message last arrived (or the watermarks were last checked).
    last_message: Instant,
    opened: Instant,
    /// Give up when no partition was assigned this long after opening.
    assignment_timeout: Option<Duration>,
    stats: FeedStats,
}

/// How long without messages before the feed asks the broker where the ends are.
const WATERMARK_CHECK_AFTER: Duration = Duration::from_secs(2);

impl KafkaFeed {
    /// Opens the log for appending, recovers the positions recorded in `progress_path`
    /// (resolving a batch a crash interrupted), joins the group and subscribes.
    pub fn open(
        settings: &KafkaSettings,
        log_dir: &Path,
        log_config: LogConfig,
        progress_path: PathBuf,
        max_batch: usize,
    ) -> Result<Self, KafkaError> {
        let writer = LogWriter::open(log_dir, log_config)?;
        let positions = recover(settings, log_dir, &writer, &progress_path)?;
        let shared = Arc::new(Mutex::new(Shared {
            positions: positions.clone(),
            ..Shared::default()
        }));
        let consumer = subscribe(settings, shared.clone())?;
        let uncommitted = VecDeque::from([(writer.next_offset(), positions.clone())]);
        Ok(Self {
            consumer,
            shared,
            writer,
            progress_path,
            sync: log_config.fsync == FsyncPolicy::EveryFlush,
            max_batch: max_batch.max(1),
            intake: Intake {
                topic: settings.topic.clone(),
                positions,
                assigned: BTreeSet::new(),
                ever_assigned: false,
                at_end: BTreeSet::new(),
                resumed: BTreeSet::new(),
                gained_assignments: 0,
                batch: Batch::default(),
                skipped: 0,
            },
            uncommitted,
            last_message: Instant::now(),
            opened: Instant::now(),
            assignment_timeout: None,
            stats: FeedStats::default(),
        })
    }

    pub fn stats(&self) -> FeedStats {
        FeedStats {
            skipped: self.intake.skipped,
            ..self.stats
        }
    }

    /// Makes [`KafkaFeed::pump`] fail when the group has assigned no partition this long
    /// after opening (all of them held by other members, say): for a run that is meant to
    /// end, rather than a standby worker.
    pub fn set_assignment_timeout(&mut self, timeout: Option<Duration>) {
        self.assignment_timeout = timeout;
    }

    /// How many rebalances so far assigned this worker a partition it did not hold: when
    /// it changes, keys of those partitions may have been processed by another worker
    /// meanwhile (state shared through Redis must then be read again).
    pub fn assignment_epoch(&self) -> u64 {
        self.intake.gained_assignments
    }

    /// The partitions assigned to this worker now.
    pub fn assigned(&self) -> Vec<i32> {
        self.intake.assigned.iter().copied().collect()
    }

    /// Polls up to one batch (waiting at most `wait` for the first message) and appends
    /// it to the log durably.
    pub fn pump(&mut self, wait: Duration) -> Result<Pumped, KafkaError> {
        let intake = &mut self.intake;
        intake.batch.clear();
        intake.batch.before.clone_from(&intake.positions);
        let mut timeout = wait;
        while intake.batch.len() < self.max_batch {
            let polled = self.consumer.poll(timeout);
            timeout = Duration::ZERO;
            intake.refresh_assignment(&self.shared);
            match polled {
                None => break,
                Some(Ok(message)) => {
                    if message.topic() == intake.topic {
                        intake.take(message.partition(), message.offset(), message.payload());
                    }
                }
                Some(Err(RdKafkaError::PartitionEOF(partition))) => {
                    intake.at_end.insert(partition);
                }
                Some(Err(error)) => poll_error(error)?,
            }
        }
        let appended = self.append_batch()?;
        self.check_assigned()?;
        if appended > 0 {
            self.last_message = Instant::now();
        } else if !self.intake.caught_up() && self.last_message.elapsed() >= WATERMARK_CHECK_AFTER {
            self.check_watermarks();
        }
        let caught_up = appended == 0 && self.intake.caught_up();
        Ok(Pumped { appended, caught_up })
    }

    fn check_assigned(&mut self) -> Result<(), KafkaError> {
        if !self.intake.assigned.is_empty() {
            self.intake.ever_assigned = true;
        }
        match self.assignment_timeout {
            Some(timeout) if !self.intake.ever_assigned && self.opened.elapsed() > timeout => {
                Err(KafkaError::NotAssigned {
                    topic: self.intake.topic.clone(),
                    seconds: timeout.as_secs(),
                })
            }
            _ => Ok(()),
        }
    }

    /// Marks as at their end the assigned partitions whose recorded position has reached
    /// the broker's high watermark. End-of-partition events are the fast path; this is
    /// the fallback for an event librdkafka delivered elsewhere (or not at all), so a
    /// non-following ingest cannot wait for ever.
    fn check_watermarks(&mut self) {
        self.last_message = Instant::now();
        let intake = &mut self.intake;
        let waiting: Vec<i32> = intake.assigned.difference(&intake.at_end).copied().collect();
        for partition in waiting {
            match self
                .consumer
                .fetch_watermarks(&intake.topic, partition, METADATA_TIMEOUT)
            {
                Ok((low, high)) => {
                    let position = intake.positions.get(&partition).copied().unwrap_or(low);
                    if position >= high {
                        intake.at_end.insert(partition);
                    }
                }
                Err(error) => tracing::warn!(partition, %error, "fetching a partition's watermarks"),
            }
        }
    }

    fn append_batch(&mut self) -> Result<usize, KafkaError> {
        let batch = &mut self.intake.batch;
        let n = batch.len();
        if n == 0 {
            return Ok(0);
        }
        let intent = Intent {
            topic: self.intake.topic.clone(),
            log_start: self.writer.next_offset(),
            positions: std::mem::take(&mut batch.before),
            runs: std::mem::take(&mut batch.runs),
            hashes: std::mem::take(&mut batch.hashes),
        };
        intent.save(&self.progress_path, self.sync)?;
        tracing::debug!(log_start = intent.log_start, runs = ?intent.runs, "appending a Kafka batch");
        let now = chrono::Utc::now().timestamp_micros();
        for payload in batch.payloads() {
            self.writer.append(payload, now)?;
        }
        self.writer.flush()?;
        let positions = &self.intake.positions;
        debug_assert_eq!(&intent.positions_after(n), positions);
        self.shared.lock().expect("feed state lock").positions = positions.clone();
        self.uncommitted
            .push_back((self.writer.next_offset(), positions.clone()));
        self.stats.appended += n as u64;
        Ok(n)
    }

    /// Commits to the group the positions that were current when the log reached
    /// `next_offset` (every record before it is checkpointed), for the partitions this
    /// worker holds. A refused commit is logged and counted, not fatal: the log already
    /// holds the messages, and the next checkpoint commits again.
    pub fn commit(&mut self, next_offset: u64) -> Result<(), KafkaError> {
        let mut due = None;
        while self
            .uncommitted
            .front()
            .is_some_and(|(end, _)| *end <= next_offset)
        {
            due = self.uncommitted.pop_front();
        }
        let Some((end, positions)) = due else {
            return Ok(());
        };
        // Keep the entry: a later commit at the same offset (say after a rebalance)
        // still finds it.
        self.uncommitted.push_front((end, positions.clone()));
        let topic = &self.intake.topic;
        let mut tpl = TopicPartitionList::new();
        for (&partition, &offset) in positions.iter().filter(|(p, _)| self.intake.assigned.contains(p)) {
            tpl.add_partition_offset(topic, partition, Offset::Offset(offset))
                .map_err(KafkaError::client("building the offsets to commit"))?;
        }
        if tpl.count() == 0 {
            return Ok(());
        }
        match self.consumer.commit(&tpl, CommitMode::Sync) {
            Ok(()) => self.stats.commits += 1,
            Err(error) => {
                self.stats.failed_commits += 1;
                tracing::warn!(%error, %topic, "Kafka refused the offset commit; retrying at the next checkpoint");
            }
        }
        Ok(())
    }
}

/// Errors that stop the feed; anything else librdkafka reports from a poll (a broker
/// going away, a transient fetch error) it also retries by itself, so it is only logged.
fn poll_error(error: RdKafkaError) -> Result<(), KafkaError> {
    let fatal = matches!(
        error.rdkafka_error_code(),
        Some(
            RDKafkaErrorCode::Fatal
                | RDKafkaErrorCode::UnknownTopicOrPartition
                | RDKafkaErrorCode::UnknownTopic
                | RDKafkaErrorCode::TopicAuthorizationFailed
                | RDKafkaErrorCode::GroupAuthorizationFailed
                | RDKafkaErrorCode::SaslAuthenticationFailed
                | RDKafkaErrorCode::Authentication
        )
    );
    if fatal {
        return Err(KafkaError::Client {
            action: "consuming".into(),
            source: error,
        });
    }
    tracing::warn!(%error, "Kafka consumer");
    Ok(())
}

/// The positions recorded beside the log, with an interrupted batch resolved against
/// what actually reached the log.
fn recover(
    settings: &KafkaSettings,
    log_dir: &Path,
    writer: &LogWriter,
    progress_path: &Path,
) -> Result<BTreeMap<i32, i64>, KafkaError> {
    let Some(intent) = Intent::load(progress_path)? else {
        return Ok(BTreeMap::new());
    };
    if intent.topic != settings.topic {
        return Err(KafkaError::Progress {
            path: progress_path.display().to_string(),
            reason: format!("records topic '{}', not '{}'", intent.topic, settings.topic),
        });
    }
    let log_end = writer.next_offset();
    let appended = intent.appended(log_dir, log_end)?;
    if appended < intent.hashes.len() {
        tracing::info!(
            appended,
            batch = intent.hashes.len(),
            "resuming a Kafka batch that an interrupted run had partly appended"
        );
    }
    if log_end > intent.log_start + appended as u64 && appended < intent.hashes.len() {
        tracing::warn!(
            records = log_end - intent.log_start - appended as u64,
            "the event log has records after the interrupted Kafka batch from another producer"
        );
    }
    Ok(intent.positions_after(appended))
}

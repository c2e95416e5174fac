//! Ingest: the consumer that turns the event log into feature state, offline history
//! and dead letters.
//!
//! Every record is validated against the contract, then applied to its entity's state
//! (inserted in event-time order, or refused as a duplicate or as late). Valid events go
//! to history, everything refused goes to the dead-letter file with its reason: nothing
//! is dropped silently. Key decision: a checkpoint commits history files, dead letters,
//! a state snapshot and the log offset together, and on start everything past the last
//! checkpoint is undone (uncommitted history files deleted, the dead-letter file cut
//! back), so a `kill -9` at any moment followed by a restart ends in exactly the state
//! of one uninterrupted run. Readers (`serve`, `features get`) use the same code in
//! read-only mode: latest snapshot, then replay of the log tail. With `[online_store]
//! backend = "redis"` the ingest process also publishes every entity a batch changed to
//! Redis before the next batch (so before the checkpoint that commits Kafka offsets), and
//! checks entities another worker may have written against it (see [`crate::redis`]); a
//! duplicate refused by a state adopted that way is still offered to a history keyed by
//! event id (PostgreSQL), as the worker that applied it may have died before committing it.
//! Each batch read is an `ingest_batch` span and each checkpoint an `ingest_checkpoint`
//! span.

use std::collections::HashSet;
use std::fs::{self, File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use driftline_core::config::{Config, OnlineBackend};
use driftline_core::contract::{IdSource, ValidateContext};
use driftline_core::event::{Event, InvalidRecord, LabelUpdate, Record};
use driftline_core::time::Timestamp;
use driftline_stream::log::{LogError, LogReader, RecordBatch};
use serde::{Deserialize, Serialize};

use crate::offline::{HistoryEvent, OfflineError, OfflineStore, ParquetOfflineStore};
use crate::online::{EmbeddedOnlineStore, OnlineStore, SharedOnlineStore, StoreError};
use crate::paths::DataPaths;
use crate::state::{Applied, EntityState};

#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error(transparent)]
    Log(#[from] LogError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Offline(#[from] OfflineError),
    #[error(transparent)]
    Input(#[from] driftline_stream::input::InputError),
    #[error("{action} {path}: {source}")]
    Io {
        action: &'static str,
        path: String,
        source: std::io::Error,
    },
    #[error("another ingest process holds {0}; only one may run per data directory")]
    Locked(String),
    #[error("checkpoint {path} is unreadable: {reason}")]
    Checkpoint { path: String, reason: String },
    /// A feed's source failed (Kafka, say).
    #[error(transparent)]
    Feed(Box<dyn std::error::Error + Send + Sync>),
}

fn io_error(action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> IngestError {
    let path = path.display().to_string();
    move |source| IngestError::Io { action, path, source }
}

/// Counts since the data directory was created; persisted with each checkpoint.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IngestStats {
    /// Log records consumed.
    pub records: u64,
    /// Events applied to state and history.
    pub events: u64,
    /// Delayed labels stored.
    pub labels: u64,
    /// Records that failed validation.
    pub invalid: u64,
    /// Events already ingested (same id and time).
    pub duplicates: u64,
    /// Events older than their entity's latest minus the allowed lateness.
    pub late: u64,
}

impl IngestStats {
    pub fn dead_lettered(&self) -> u64 {
        self.invalid + self.duplicates + self.late
    }
}

/// What was committed last: everything before `next_offset` is reflected in the
/// snapshot, the history files and the first `dead_letter_bytes` of the dead letters.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Checkpoint {
    pub next_offset: u64,
    pub snapshot: Option<String>,
    pub dead_letter_bytes: u64,
    pub stats: IngestStats,
    pub committed_at: String,
}

impl Checkpoint {
    pub fn load(paths: &DataPaths) -> Result<Option<Self>, IngestError> {
        let path = paths.checkpoint();
        match fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| IngestError::Checkpoint {
                    path: path.display().to_string(),
                    reason: e.to_string(),
                }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_error("reading", &path)(e)),
        }
    }

    fn store(&self, paths: &DataPaths) -> Result<(), IngestError> {
        let path = paths.checkpoint();
        let tmp = path.with_extension("tmp");
        let bytes = serde_json::to_vec_pretty(self).expect("checkpoint serialises");
        let mut file = File::create(&tmp).map_err(io_error("creating", &tmp))?;
        file.write_all(&bytes).map_err(io_error("writing", &tmp))?;
        file.sync_all().map_err(io_error("syncing", &tmp))?;
        fs::rename(&tmp, &path).map_err(io_error("renaming", &path))?;
        sync_dir(&paths.state())
    }
}

fn sync_dir(dir: &Path) -> Result<(), IngestError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_error("syncing", dir))
}

/// Whether the consumer owns the data directory's outputs or only rebuilds state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Commit,
    ReadOnly,
}

/// The log consumer. Build with [`Ingestor::open`] (the one ingest process) or
/// [`Ingestor::restore`] (a reader rebuilding state).
pub struct Ingestor {
    config: Config,
    paths: DataPaths,
    mode: Mode,
    store: Arc<EmbeddedOnlineStore>,
    /// The shared store (Redis) this worker keeps in step, when configured.
    shared: Option<SharedState>,
    offline: Arc<dyn OfflineStore>,
    dead_letters: Option<DeadLetters>,
    pending_events: Vec<HistoryEvent>,
    pending_labels: Vec<LabelUpdate>,
    committed_offset: u64,
    next_offset: u64,
    stats: IngestStats,
    last_checkpoint: Instant,
    lag: IngestLag,
    _lock: Option<File>,
}

/// How far ingest trails the log, as of its last read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct IngestLag {
    /// Records in the log not applied yet: 0 when the last read reached the end, else
    /// measured at most once a second.
    pub records: u64,
    /// Append time of the last record applied, µs since the epoch (0 before any).
    pub last_append_micros: i64,
}

impl IngestLag {
    /// Seconds the oldest unapplied record has waited at most: 0 when caught up, else the
    /// time since the last applied record was appended (the next one is no older).
    pub fn seconds(&self, now_micros: i64) -> f64 {
        if self.records == 0 || self.last_append_micros == 0 {
            0.0
        } else {
            (now_micros - self.last_append_micros).max(0) as f64 / 1e6
        }
    }
}

/// One record's fate before state is consulted.
enum Decoded {
    Invalid(InvalidRecord),
    Label(LabelUpdate),
    Event(Event),
}

impl Ingestor {
    /// Opens the data directory as its one ingest process: takes the lock, then undoes
    /// anything written after the last checkpoint.
    pub fn open(config: Config, paths: DataPaths) -> Result<Self, IngestError> {
        fs::create_dir_all(paths.state()).map_err(io_error("creating", &paths.state()))?;
        let lock_path = paths.ingest_lock();
        let lock = File::create(&lock_path).map_err(io_error("creating", &lock_path))?;
        if lock.try_lock().is_err() {
            return Err(IngestError::Locked(lock_path.display().to_string()));
        }
        let checkpoint = Checkpoint::load(&paths)?.unwrap_or_default();
        let store = load_snapshot(&paths, &checkpoint)?;
        let offline = crate::offline::open_store(&config, &paths)?;
        offline.discard_from(checkpoint.next_offset)?;
        let dead_letters = DeadLetters::open(&paths.dead_letters(), checkpoint.dead_letter_bytes)?;
        let shared = open_shared(&config, &paths)?;
        Ok(Self {
            config,
            paths,
            mode: Mode::Commit,
            store: Arc::new(store),
            shared,
            offline,
            dead_letters: Some(dead_letters),
            pending_events: Vec::new(),
            pending_labels: Vec::new(),
            committed_offset: checkpoint.next_offset,
            next_offset: checkpoint.next_offset,
            stats: checkpoint.stats,
            last_checkpoint: Instant::now(),
            lag: IngestLag::default(),
            _lock: Some(lock),
        })
    }

    /// Rebuilds feature state without writing anything: the latest snapshot, then the
    /// log from its offset to the end.
    pub fn restore(config: Config, paths: DataPaths) -> Result<Self, IngestError> {
        let checkpoint = Checkpoint::load(&paths)?.unwrap_or_default();
        let store = match load_snapshot(&paths, &checkpoint) {
            // Ingest replaced the snapshot between our two reads: read both again.
            Err(IngestError::Store(StoreError::Io { source, .. }))
                if source.kind() == std::io::ErrorKind::NotFound =>
            {
                let checkpoint = Checkpoint::load(&paths)?.unwrap_or_default();
                return Self::restore_from(config, paths, checkpoint);
            }
            other => other?,
        };
        let mut this = Self::read_only(config, paths, checkpoint, store);
        this.catch_up()?;
        Ok(this)
    }

    fn restore_from(config: Config, paths: DataPaths, checkpoint: Checkpoint) -> Result<Self, IngestError> {
        let store = load_snapshot(&paths, &checkpoint)?;
        let mut this = Self::read_only(config, paths, checkpoint, store);
        this.catch_up()?;
        Ok(this)
    }

    fn read_only(
        config: Config,
        paths: DataPaths,
        checkpoint: Checkpoint,
        store: EmbeddedOnlineStore,
    ) -> Self {
        // A reader never writes history: the local files stand in for any backend.
        let offline: Arc<dyn OfflineStore> =
            Arc::new(ParquetOfflineStore::new(paths.offline(), config.contract.clone()));
        Self {
            config,
            paths,
            mode: Mode::ReadOnly,
            store: Arc::new(store),
            shared: None,
            offline,
            dead_letters: None,
            pending_events: Vec::new(),
            pending_labels: Vec::new(),
            committed_offset: checkpoint.next_offset,
            next_offset: checkpoint.next_offset,
            stats: checkpoint.stats,
            last_checkpoint: Instant::now(),
            lag: IngestLag::default(),
            _lock: None,
        }
    }

    fn catch_up(&mut self) -> Result<(), IngestError> {
        if !self.paths.log().exists() {
            return Ok(());
        }
        let mut reader = LogReader::open(&self.paths.log())?;
        self.run(&mut reader, false, &mut |_| {})
    }

    pub fn store(&self) -> &Arc<EmbeddedOnlineStore> {
        &self.store
    }

    pub fn stats(&self) -> IngestStats {
        self.stats
    }

    /// The shared store this process publishes state to (Redis), if any.
    pub fn shared_store(&self) -> Option<String> {
        self.shared.as_ref().map(|s| s.store.describe())
    }

    /// The next log offset this consumer will read.
    pub fn next_offset(&self) -> u64 {
        self.next_offset
    }

    /// How far this consumer trails the log, as of its last read in [`run`](Self::run).
    pub fn lag(&self) -> IngestLag {
        self.lag
    }

    /// Consumes the log from the committed offset: to its end, or for ever when
    /// `follow` is set (checkpointing at least every `ingest.checkpoint_interval`).
    /// `progress` is called after every batch.
    pub fn run(
        &mut self,
        reader: &mut LogReader,
        follow: bool,
        progress: &mut dyn FnMut(&Ingestor),
    ) -> Result<(), IngestError> {
        self.run_fed(reader, &mut LogTail, follow, progress)
    }

    /// [`Ingestor::run`] with a [`Feed`] appending to the log as it goes: the loop asks
    /// the feed for more whenever it has consumed what the log holds, and tells it after
    /// every checkpoint. Without `follow` it ends when the feed is caught up and the log
    /// is consumed.
    pub fn run_fed(
        &mut self,
        reader: &mut LogReader,
        feed: &mut dyn Feed,
        follow: bool,
        progress: &mut dyn FnMut(&Ingestor),
    ) -> Result<(), IngestError> {
        reader.seek(self.next_offset)?;
        let mut batch = RecordBatch::new();
        let batch_size = self.config.settings.ingest.batch_size;
        let mut lag_measured = Instant::now() - Duration::from_secs(1);
        let mut wait = Duration::ZERO;
        loop {
            let caught_up = feed.fill(wait)?;
            if let Some(shared) = &mut self.shared {
                shared.enter_epoch(feed.assignment_epoch());
            }
            let n = reader.read_into(batch_size, &mut batch)?;
            let lag_before = self.lag;
            if n > 0 {
                self.process_traced(&batch)?;
                self.lag.last_append_micros = batch.get(n - 1).map_or(0, |r| r.append_ts_micros);
            }
            if n < batch_size {
                self.lag.records = 0;
            } else if lag_measured.elapsed() >= Duration::from_secs(1) {
                self.lag.records = reader.end_offset()?.saturating_sub(self.next_offset);
                lag_measured = Instant::now();
            }
            if n > 0 || self.lag != lag_before {
                progress(self);
            }
            if self.checkpoint_due(follow) {
                self.checkpoint()?;
                feed.checkpointed(self.committed_offset)?;
            }
            if n == 0 && caught_up && !follow {
                break;
            }
            wait = if n == 0 { IDLE_WAIT } else { Duration::ZERO };
        }
        self.checkpoint()?;
        feed.checkpointed(self.committed_offset)
    }

    fn checkpoint_due(&self, follow: bool) -> bool {
        let interval =
            Duration::from_micros(self.config.settings.ingest.checkpoint_interval.micros().max(0) as u64);
        self.uncommitted() >= self.config.settings.ingest.checkpoint_every as u64
            || (follow && self.uncommitted() > 0 && self.last_checkpoint.elapsed() >= interval)
    }

    fn uncommitted(&self) -> u64 {
        self.next_offset - self.committed_offset
    }

    /// [`Ingestor::process`] in an `ingest_batch` span: the records, their offsets and
    /// what became of them (disabled, so free, unless traces are exported).
    fn process_traced(&mut self, batch: &RecordBatch) -> Result<(), IngestError> {
        let offset = |i: usize| batch.get(i).map_or(0, |r| r.offset);
        let span = tracing::debug_span!(
            "ingest_batch",
            records = batch.len(),
            offset.first = offset(0),
            offset.last = offset(batch.len().saturating_sub(1)),
            events = tracing::field::Empty,
            labels = tracing::field::Empty,
            dead_lettered = tracing::field::Empty,
        );
        let before = self.stats;
        span.in_scope(|| self.process(batch))?;
        span.record("events", self.stats.events - before.events);
        span.record("labels", self.stats.labels - before.labels);
        span.record(
            "dead_lettered",
            self.stats.dead_lettered() - before.dead_lettered(),
        );
        Ok(())
    }

    /// Applies one batch of log records.
    pub fn process(&mut self, batch: &RecordBatch) -> Result<(), IngestError> {
        let decoded: Vec<(u64, i64, Decoded)> = batch
            .iter()
            .map(|record| {
                let ctx = ValidateContext {
                    now: Timestamp(record.append_ts_micros),
                    default_entity: None,
                    path_prefix: "",
                    ids: IdSource::DerivedFrom(record.payload),
                };
                let decoded = match self.config.contract.validate_json(record.payload, &ctx) {
                    Ok(Record::Event(event)) => Decoded::Event(event),
                    Ok(Record::Label(label)) => Decoded::Label(label),
                    Err(invalid) => Decoded::Invalid(invalid),
                };
                (record.offset, record.append_ts_micros, decoded)
            })
            .collect();
        let applied = self.apply_events(&decoded)?;
        let mut applied = applied.into_iter();
        for ((offset, received, decoded), record) in decoded.into_iter().zip(batch.iter()) {
            self.stats.records += 1;
            self.next_offset = offset + 1;
            match decoded {
                Decoded::Invalid(invalid) => {
                    self.stats.invalid += 1;
                    self.dead_letter(offset, received, "invalid", &invalid, record.payload)?;
                }
                Decoded::Label(label) => {
                    self.stats.labels += 1;
                    if self.mode == Mode::Commit {
                        self.pending_labels.push(label);
                    }
                }
                Decoded::Event(event) => match applied.next().expect("one outcome per event") {
                    Applied::Inserted => {
                        self.stats.events += 1;
                        if self.mode == Mode::Commit {
                            self.pending_events.push(HistoryEvent { offset, event });
                        }
                    }
                    Applied::Duplicate => {
                        self.stats.duplicates += 1;
                        let why = InvalidRecord::whole(format!(
                            "duplicate: event {} at {} was already ingested",
                            event.event_id, event.ts
                        ));
                        self.dead_letter(offset, received, "duplicate", &why, record.payload)?;
                        if self.mode == Mode::Commit && self.history_may_lack(&event) {
                            self.pending_events.push(HistoryEvent { offset, event });
                        }
                    }
                    Applied::Late { watermark } => {
                        self.stats.late += 1;
                        let why = InvalidRecord::whole(format!(
                            "late: event time {} is more than the allowed lateness {} behind {}'s latest event at {}",
                            event.ts,
                            self.config.features.allowed_lateness,
                            event.entity,
                            Timestamp(watermark)
                        ));
                        self.dead_letter(offset, received, "late", &why, record.payload)?;
                    }
                },
            }
        }
        Ok(())
    }

    /// Whether a duplicate may be missing from history: the state that holds it was adopted
    /// from another worker, which applied it but may never commit it (killed before its
    /// checkpoint, and perhaps never back). Offered again only to a history keyed by event
    /// id, which keeps the first copy; elsewhere it would be a second row.
    fn history_may_lack(&self, event: &Event) -> bool {
        self.shared
            .as_ref()
            .is_some_and(|shared| shared.adopted_in_epoch(&event.entity))
            && self.offline.keyed_by_event_id()
    }

    /// Applies a batch's events to state; with a shared store, first adopts what other
    /// writers stored for entities not verified in this epoch, then publishes the changes.
    fn apply_events(&mut self, decoded: &[(u64, i64, Decoded)]) -> Result<Vec<Applied>, IngestError> {
        let events: Vec<&Event> = decoded
            .iter()
            .filter_map(|(_, _, d)| match d {
                Decoded::Event(e) => Some(e),
                _ => None,
            })
            .collect();
        let entities: Vec<&str> = events.iter().map(|e| e.entity.as_str()).collect();
        let mut applied = vec![Applied::Inserted; events.len()];
        let spec = &self.config.features;
        let width = self.config.contract.fields().len();
        if let Some(shared) = &mut self.shared {
            shared.adopt_foreign(&entities, &self.store)?;
        }
        self.store.update_each(&entities, width, &mut |i, state| {
            applied[i] = state.apply(events[i], spec)
        })?;
        if let Some(shared) = &self.shared {
            let mut changed: Vec<&str> = entities
                .iter()
                .zip(&applied)
                .filter(|(_, applied)| **applied == Applied::Inserted)
                .map(|(entity, _)| *entity)
                .collect();
            changed.sort_unstable();
            changed.dedup();
            let refused = shared.store.publish(&changed, &self.store)?;
            if refused > 0 {
                tracing::debug!(
                    refused,
                    "the shared store holds later states of some entities (another worker got further); not overwritten"
                );
            }
        }
        Ok(applied)
    }

    fn dead_letter(
        &mut self,
        offset: u64,
        received: i64,
        kind: &str,
        why: &InvalidRecord,
        payload: &[u8],
    ) -> Result<(), IngestError> {
        match &mut self.dead_letters {
            Some(dead_letters) => dead_letters.write(offset, received, kind, why, payload),
            None => Ok(()),
        }
    }

    /// Commits history, dead letters, a snapshot and the offset, in that order.
    pub fn checkpoint(&mut self) -> Result<(), IngestError> {
        if self.mode == Mode::ReadOnly || self.next_offset == self.committed_offset {
            return Ok(());
        }
        let span = tracing::debug_span!("ingest_checkpoint", next_offset = self.next_offset);
        let _entered = span.enter();
        let range = self.committed_offset..self.next_offset;
        self.offline
            .append(range, &self.pending_events, &self.pending_labels)?;
        self.pending_events.clear();
        self.pending_labels.clear();
        let dead_letter_bytes = self
            .dead_letters
            .as_mut()
            .map(DeadLetters::sync)
            .transpose()?
            .unwrap_or(0);
        let snapshot = self.paths.snapshot(self.next_offset);
        self.store.write_snapshot(&snapshot)?;
        let checkpoint = Checkpoint {
            next_offset: self.next_offset,
            snapshot: snapshot.file_name().map(|n| n.to_string_lossy().into_owned()),
            dead_letter_bytes,
            stats: self.stats,
            committed_at: chrono::Utc::now().to_rfc3339(),
        };
        checkpoint.store(&self.paths)?;
        self.committed_offset = self.next_offset;
        self.last_checkpoint = Instant::now();
        remove_old_snapshots(&self.paths, &snapshot)?;
        tracing::debug!(
            next_offset = self.next_offset,
            events = self.stats.events,
            "checkpoint committed"
        );
        Ok(())
    }
}

/// How long the ingest loop lets a feed wait for new records when the log is consumed.
const IDLE_WAIT: Duration = Duration::from_millis(10);

/// A source that appends to the event log while ingest consumes it (Kafka, say).
pub trait Feed {
    /// Appends what the source has ready, waiting at most `wait` when it has nothing.
    /// Returns whether it is caught up: the log holds everything the source had.
    fn fill(&mut self, wait: Duration) -> Result<bool, IngestError>;

    /// Called after each checkpoint: every log record before `next_offset` is durably
    /// reflected in state, history and dead letters.
    fn checkpointed(&mut self, next_offset: u64) -> Result<(), IngestError> {
        let _ = next_offset;
        Ok(())
    }

    /// Changes whenever the source's keys may have been processed by another worker since
    /// this one last saw them (a Kafka rebalance that assigned new partitions); constant
    /// for a source only this process reads.
    fn assignment_epoch(&self) -> u64 {
        0
    }
}

/// The shared store and which entities were checked against it in this epoch.
struct SharedState {
    store: Box<dyn SharedOnlineStore>,
    /// xxh3 of the entities verified since the epoch began.
    verified: HashSet<u64>,
    /// xxh3 of the entities whose state was adopted from another writer in this epoch.
    adopted: HashSet<u64>,
    epoch: u64,
}

impl SharedState {
    fn new(store: Box<dyn SharedOnlineStore>) -> Self {
        Self {
            store,
            verified: HashSet::new(),
            adopted: HashSet::new(),
            epoch: 0,
        }
    }

    fn adopted_in_epoch(&self, entity: &str) -> bool {
        self.adopted
            .contains(&xxhash_rust::xxh3::xxh3_64(entity.as_bytes()))
    }

    /// A new epoch (partitions newly assigned) makes every entity unverified again.
    fn enter_epoch(&mut self, epoch: u64) {
        if epoch != self.epoch {
            tracing::info!(
                epoch,
                "assignment changed; entities will be checked against the shared store again"
            );
            self.epoch = epoch;
            self.verified.clear();
            self.adopted.clear();
        }
    }

    /// Reads the entities of `entities` not yet verified in this epoch from the shared
    /// store (one round trip) and adopts the states another writer stored last.
    fn adopt_foreign(&mut self, entities: &[&str], local: &EmbeddedOnlineStore) -> Result<(), StoreError> {
        let mut unverified: Vec<&str> = Vec::new();
        for entity in entities {
            if self
                .verified
                .insert(xxhash_rust::xxh3::xxh3_64(entity.as_bytes()))
            {
                unverified.push(entity);
            }
        }
        if unverified.is_empty() {
            return Ok(());
        }
        let foreign = self.store.foreign_states(&unverified)?;
        let adopted: Vec<(&str, &EntityState)> = unverified
            .iter()
            .zip(&foreign)
            .filter_map(|(entity, state)| state.as_ref().map(|s| (*entity, s)))
            .collect();
        if !adopted.is_empty() {
            tracing::debug!(entities = adopted.len(), "adopted states another worker stored");
            local.put_batch(&adopted)?;
            self.adopted.extend(
                adopted
                    .iter()
                    .map(|(entity, _)| xxhash_rust::xxh3::xxh3_64(entity.as_bytes())),
            );
        }
        Ok(())
    }
}

/// The shared store `[online_store]` names, connected as this data directory's writer.
fn open_shared(config: &Config, paths: &DataPaths) -> Result<Option<SharedState>, IngestError> {
    match config.settings.online_store.backend {
        OnlineBackend::Embedded => Ok(None),
        #[cfg(feature = "redis")]
        OnlineBackend::Redis => {
            let writer = writer_id(paths)?;
            let store = crate::redis::RedisOnlineStore::open(&config.settings.redis, writer)?;
            tracing::info!(redis = %store.describe(), writer = format!("{writer:016x}"), "publishing entity state to Redis");
            Ok(Some(SharedState::new(Box::new(store))))
        }
        #[cfg(not(feature = "redis"))]
        OnlineBackend::Redis => Err(IngestError::Store(StoreError::Backend(
            "online_store.backend = \"redis\" needs the cargo feature `redis`, which this build leaves out"
                .into(),
        ))),
    }
}

/// This data directory's writer id (`state/writer-id`, 16 hex digits), created on first use.
fn writer_id(paths: &DataPaths) -> Result<u64, IngestError> {
    let path = paths.state().join("writer-id");
    match fs::read_to_string(&path) {
        Ok(text) => u64::from_str_radix(text.trim(), 16).map_err(|e| IngestError::Checkpoint {
            path: path.display().to_string(),
            reason: format!("not a writer id: {e}"),
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos());
            let seed = format!("{}:{nanos}:{}", std::process::id(), paths.root().display());
            let id = xxhash_rust::xxh3::xxh3_64(seed.as_bytes());
            let tmp = path.with_extension("tmp");
            let mut file = File::create(&tmp).map_err(io_error("creating", &tmp))?;
            file.write_all(format!("{id:016x}\n").as_bytes())
                .map_err(io_error("writing", &tmp))?;
            file.sync_all().map_err(io_error("syncing", &tmp))?;
            fs::rename(&tmp, &path).map_err(io_error("renaming", &path))?;
            sync_dir(&paths.state())?;
            Ok(id)
        }
        Err(e) => Err(io_error("reading", &path)(e)),
    }
}

/// The log alone: other processes append to it, so there is nothing to fill but time.
pub struct LogTail;

impl Feed for LogTail {
    fn fill(&mut self, wait: Duration) -> Result<bool, IngestError> {
        if !wait.is_zero() {
            std::thread::sleep(wait);
        }
        Ok(true)
    }
}

fn load_snapshot(paths: &DataPaths, checkpoint: &Checkpoint) -> Result<EmbeddedOnlineStore, IngestError> {
    match &checkpoint.snapshot {
        Some(name) => Ok(EmbeddedOnlineStore::load_snapshot(&paths.state().join(name))?),
        None => Ok(EmbeddedOnlineStore::default()),
    }
}

fn remove_old_snapshots(paths: &DataPaths, keep: &Path) -> Result<(), IngestError> {
    for entry in fs::read_dir(paths.state()).map_err(io_error("listing", &paths.state()))? {
        let path = entry.map_err(io_error("listing", &paths.state()))?.path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        if name.starts_with("snapshot-") && path != keep {
            fs::remove_file(&path).map_err(io_error("removing", &path))?;
        }
    }
    Ok(())
}

/// The dead-letter file: one JSON object per refused record.
struct DeadLetters {
    path: std::path::PathBuf,
    out: BufWriter<File>,
    bytes: u64,
    line: Vec<u8>,
}

#[derive(Serialize)]
struct DeadLetter<'a> {
    offset: u64,
    received_at: String,
    kind: &'a str,
    reason: String,
    errors: &'a [driftline_core::event::FieldError],
    record: std::borrow::Cow<'a, str>,
}

impl DeadLetters {
    /// Opens for appending after cutting the file back to its committed length.
    fn open(path: &Path, committed_bytes: u64) -> Result<Self, IngestError> {
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(io_error("opening", path))?;
        let len = file.metadata().map_err(io_error("reading", path))?.len();
        if len > committed_bytes {
            file.set_len(committed_bytes)
                .map_err(io_error("truncating", path))?;
            tracing::info!(path = %path.display(), dropped_bytes = len - committed_bytes, "cut uncommitted dead letters");
        }
        Ok(Self {
            path: path.to_path_buf(),
            out: BufWriter::with_capacity(1 << 16, file),
            bytes: committed_bytes.min(len),
            line: Vec::new(),
        })
    }

    fn write(
        &mut self,
        offset: u64,
        received: i64,
        kind: &str,
        why: &InvalidRecord,
        payload: &[u8],
    ) -> Result<(), IngestError> {
        let letter = DeadLetter {
            offset,
            received_at: Timestamp(received).to_rfc3339(),
            kind,
            reason: why.to_string(),
            errors: &why.errors,
            record: String::from_utf8_lossy(payload),
        };
        self.line.clear();
        serde_json::to_writer(&mut self.line, &letter).expect("dead letter serialises");
        self.line.push(b'\n');
        self.out
            .write_all(&self.line)
            .map_err(io_error("writing", &self.path))?;
        self.bytes += self.line.len() as u64;
        Ok(())
    }

    /// Flushes and fsyncs; returns the committed length.
    fn sync(&mut self) -> Result<u64, IngestError> {
        self.out.flush().map_err(io_error("writing", &self.path))?;
        self.out
            .get_ref()
            .sync_all()
            .map_err(io_error("syncing", &self.path))?;
        Ok(self.bytes)
    }
}

#[cfg(test)]
mod tests;

//! The online store seam and its embedded implementation.
//!
//! [`OnlineStore`] is what serving reads and ingest writes: batch get and batch put of
//! serialised per-entity state, which is exactly what a Redis backend does with one key
//! per entity and pipelining. Key decision: the embedded store keeps states in a
//! sharded in-process map and overrides the read-modify-write path to update in place,
//! so embedded ingest pays no serialisation; snapshots make restarts cheap.

use std::collections::HashMap;
use std::fs::{self, File};
use std::io::{BufWriter, Read, Write};
use std::path::Path;
use std::sync::RwLock;

use crate::state::EntityState;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{action} {path}: {source}")]
    Io {
        action: &'static str,
        path: String,
        source: std::io::Error,
    },
    #[error("snapshot {path} is unreadable: {reason}")]
    CorruptSnapshot { path: String, reason: String },
    #[error("online store: {0}")]
    Backend(String),
}

impl StoreError {
    pub fn io(action: &'static str, path: &Path, source: std::io::Error) -> Self {
        Self::Io {
            action,
            path: path.display().to_string(),
            source,
        }
    }
}

/// Per-entity feature state, by entity id.
pub trait OnlineStore: Send + Sync {
    /// States of the given entities, `None` for unknown ones, in the order asked.
    fn get_many(&self, entities: &[&str]) -> Result<Vec<Option<EntityState>>, StoreError>;

    /// Replaces the states of many entities at once.
    fn put_batch(&self, states: &[(&str, &EntityState)]) -> Result<(), StoreError>;

    /// One entity's state.
    fn get(&self, entity: &str) -> Result<Option<EntityState>, StoreError> {
        Ok(self.get_many(&[entity])?.pop().flatten())
    }

    /// Applies `update(i, state)` for each `entities[i]` in order (an entity may repeat;
    /// unknown entities start from `EntityState::new(width)`), then stores the results.
    fn update_each(
        &self,
        entities: &[&str],
        width: usize,
        update: &mut dyn FnMut(usize, &mut EntityState),
    ) -> Result<(), StoreError> {
        let mut unique: Vec<&str> = entities.to_vec();
        unique.sort_unstable();
        unique.dedup();
        let fetched = self.get_many(&unique)?;
        let mut states: HashMap<&str, EntityState> = unique
            .iter()
            .zip(fetched)
            .map(|(e, s)| (*e, s.unwrap_or_else(|| EntityState::new(width))))
            .collect();
        for (i, entity) in entities.iter().enumerate() {
            update(i, states.get_mut(entity).expect("fetched above"));
        }
        let batch: Vec<(&str, &EntityState)> = states.iter().map(|(e, s)| (*e, s)).collect();
        self.put_batch(&batch)
    }
}

/// A store other processes read (Redis when scaled out) that ingest keeps in step with
/// its own state: what a worker changed is published after every batch, and an entity
/// another writer may have moved on is checked before it is applied to. Why ingest keeps
/// its own state beside it: see [`crate::redis`].
pub trait SharedOnlineStore: Send + Sync {
    /// The stored states of `entities` that another writer wrote last, in order (`None`:
    /// absent, or last written by this writer).
    fn foreign_states(&self, entities: &[&str]) -> Result<Vec<Option<EntityState>>, StoreError>;

    /// Stores the current states of `entities` as `local` holds them, except where the
    /// shared store holds a later version of one (another writer got further); returns how
    /// many it refused for that reason.
    fn publish(&self, entities: &[&str], local: &EmbeddedOnlineStore) -> Result<usize, StoreError>;

    /// Where it is, for messages.
    fn describe(&self) -> String;
}

const SHARDS: usize = 64;
const SNAPSHOT_MAGIC: &[u8; 8] = b"DLSNAP01";

/// In-process, sharded by entity hash so serving threads rarely contend with ingest.
pub struct EmbeddedOnlineStore {
    shards: Vec<RwLock<HashMap<String, EntityState>>>,
}

impl Default for EmbeddedOnlineStore {
    fn default() -> Self {
        Self {
            shards: (0..SHARDS).map(|_| RwLock::new(HashMap::new())).collect(),
        }
    }
}

impl EmbeddedOnlineStore {
    fn shard(&self, entity: &str) -> &RwLock<HashMap<String, EntityState>> {
        let hash = xxhash_rust::xxh3::xxh3_64(entity.as_bytes());
        &self.shards[(hash % SHARDS as u64) as usize]
    }

    /// Number of entities held.
    pub fn len(&self) -> usize {
        self.shards.iter().map(|s| s.read().expect("lock").len()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Runs `f` on one entity's state without copying it.
    pub fn with_state<T>(&self, entity: &str, f: impl FnOnce(Option<&EntityState>) -> T) -> T {
        let shard = self.shard(entity).read().expect("online store lock poisoned");
        f(shard.get(entity))
    }

    /// Writes every state to `path` atomically (temporary file, fsync, rename): a magic
    /// header, the entity count, then length-prefixed id and state, then a CRC32.
    pub fn write_snapshot(&self, path: &Path) -> Result<(), StoreError> {
        let tmp = path.with_extension("tmp");
        let file = File::create(&tmp).map_err(|e| StoreError::io("creating", &tmp, e))?;
        let mut out = BufWriter::with_capacity(1 << 20, file);
        let mut hasher = crc32fast::Hasher::new();
        let mut buf = Vec::with_capacity(1 << 16);
        buf.extend_from_slice(SNAPSHOT_MAGIC);
        buf.extend_from_slice(&(self.len() as u64).to_le_bytes());
        for shard in &self.shards {
            let shard = shard.read().expect("online store lock poisoned");
            let mut entities: Vec<_> = shard.iter().collect();
            entities.sort_unstable_by(|a, b| a.0.cmp(b.0));
            for (entity, state) in entities {
                buf.extend_from_slice(&(entity.len() as u32).to_le_bytes());
                buf.extend_from_slice(entity.as_bytes());
                state.encode(&mut buf);
                if buf.len() > 1 << 16 {
                    hasher.update(&buf);
                    out.write_all(&buf)
                        .map_err(|e| StoreError::io("writing", &tmp, e))?;
                    buf.clear();
                }
            }
        }
        hasher.update(&buf);
        buf.extend_from_slice(&hasher.finalize().to_le_bytes());
        out.write_all(&buf)
            .map_err(|e| StoreError::io("writing", &tmp, e))?;
        let file = out
            .into_inner()
            .map_err(|e| StoreError::io("writing", &tmp, e.into_error()))?;
        file.sync_all().map_err(|e| StoreError::io("syncing", &tmp, e))?;
        fs::rename(&tmp, path).map_err(|e| StoreError::io("renaming", path, e))?;
        Ok(())
    }

    /// Reads a snapshot written by [`EmbeddedOnlineStore::write_snapshot`].
    pub fn load_snapshot(path: &Path) -> Result<Self, StoreError> {
        let corrupt = |reason: String| StoreError::CorruptSnapshot {
            path: path.display().to_string(),
            reason,
        };
        let mut bytes = Vec::new();
        File::open(path)
            .and_then(|mut f| f.read_to_end(&mut bytes))
            .map_err(|e| StoreError::io("reading", path, e))?;
        if bytes.len() < 20 || &bytes[..8] != SNAPSHOT_MAGIC {
            return Err(corrupt("not a driftline snapshot".into()));
        }
        let (body, crc) = bytes.split_at(bytes.len() - 4);
        if crc32fast::hash(body) != u32::from_le_bytes(crc.try_into().expect("4 bytes")) {
            return Err(corrupt("checksum mismatch".into()));
        }
        let count = u64::from_le_bytes(body[8..16].try_into().expect("8 bytes"));
        let store = Self::default();
        let mut at = 16;
        for _ in 0..count {
            let len_bytes = body.get(at..at + 4).ok_or_else(|| corrupt("truncated".into()))?;
            let len = u32::from_le_bytes(len_bytes.try_into().expect("4 bytes")) as usize;
            at += 4;
            let entity = body
                .get(at..at + len)
                .and_then(|b| std::str::from_utf8(b).ok())
                .ok_or_else(|| corrupt("bad entity id".into()))?
                .to_string();
            at += len;
            let (state, used) = EntityState::decode(&body[at..]).map_err(corrupt)?;
            at += used;
            store.shard(&entity).write().expect("lock").insert(entity, state);
        }
        Ok(store)
    }
}

impl OnlineStore for EmbeddedOnlineStore {
    fn get_many(&self, entities: &[&str]) -> Result<Vec<Option<EntityState>>, StoreError> {
        Ok(entities
            .iter()
            .map(|e| {
                self.shard(e)
                    .read()
                    .expect("online store lock poisoned")
                    .get(*e)
                    .cloned()
            })
            .collect())
    }

    fn put_batch(&self, states: &[(&str, &EntityState)]) -> Result<(), StoreError> {
        for (entity, state) in states {
            self.shard(entity)
                .write()
                .expect("online store lock poisoned")
                .insert(entity.to_string(), (*state).clone());
        }
        Ok(())
    }

    fn update_each(
        &self,
        entities: &[&str],
        width: usize,
        update: &mut dyn FnMut(usize, &mut EntityState),
    ) -> Result<(), StoreError> {
        for (i, entity) in entities.iter().enumerate() {
            let mut shard = self.shard(entity).write().expect("online store lock poisoned");
            match shard.get_mut(*entity) {
                Some(state) => update(i, state),
                None => {
                    let mut state = EntityState::new(width);
                    update(i, &mut state);
                    shard.insert(entity.to_string(), state);
                }
            }
        }
        Ok(())
    }
}

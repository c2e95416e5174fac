//! The Redis online store: one key per entity, `{key_prefix}state:{entity}`, holding the
//! entity's state in the snapshot's binary form ([`EntityState::encode`], which starts with
//! the state's version) behind a 9-byte header (format, writer id); reads are pipelined
//! `MGET`s, ingest's
//! writes one script call per batch that stores each state unless a later one is there
//! (every write refreshes the TTL).
//!
//! `driftline ingest` workers write it ([`RedisOnlineStore`], synchronous, as ingest is);
//! `serve` replicas read it ([`RedisStateReader`], async, with a deadline and a breaker).
//!
//! Key decision: Redis is the shared copy and, across workers, the source of truth, but
//! each worker still keeps its own state in the data directory (snapshot + event log) as
//! its replay base, and writes every entity a batch changed to Redis before the next batch,
//! so before the checkpoint that commits Kafka offsets. Why not read every entity from
//! Redis on every batch: a worker that is killed and restarted replays the log tail since
//! its last checkpoint, and must replay it onto the state *as of that checkpoint* so that
//! the tail's events go to history and dead letters exactly as the first time; Redis may
//! already hold the tail's effect (written before the kill), which would turn the replay
//! into duplicates. Replaying onto the local snapshot gives, by determinism, byte-identical
//! state in Redis and locally.
//!
//! What a worker must not trust locally is an entity another worker wrote since: after a
//! Kafka rebalance moved its partition here (or back), or when this worker restarts after
//! others took over. So every value carries the id of the worker that wrote it
//! (`state/writer-id` in its data directory), and the ingest loop verifies an entity once
//! per *assignment epoch* (at start, and whenever partitions are newly assigned) before
//! applying its events: a state in Redis written by another worker replaces the local one
//! (the other worker moved on from it; any of our uncommitted events it already holds then
//! come back as duplicates), one written by this worker or absent leaves the local one
//! (ours is the same or, after a kill, the replay reproduces it). In steady state a batch
//! therefore costs one write and no read.
//!
//! Writes are monotonic: every value carries its state's version ([`EntityState::applied`],
//! the events ever applied to it, which orders the states of an entity because every worker
//! applies its events in partition order), and a write is refused, inside Redis and
//! atomically ([`STORE_UNLESS_LATER`]), when the key holds a later version. Why: the
//! verification above is once per epoch, so without it a restarted worker replaying its
//! tail could overwrite what another worker stored meanwhile (it took the partition over,
//! read the same uncommitted range and moved on), and an entity with no later event would
//! stay stale; a zombie (a worker that lost its partitions but still writes) is fenced the
//! same way. A refused worker's local state is behind, not wrong: it catches up as it
//! applies the same events, and its writes land again from the version Redis holds.

mod labels;
mod reader;
#[doc(hidden)]
pub mod testing;

use std::sync::Mutex;
use std::time::{Duration, Instant};

use driftline_core::config::RedisSettings;
use redis::{ConnectionAddr, ConnectionInfo, IntoConnectionInfo, RedisConnectionInfo};

pub use labels::{decode_labels, encode_labels, labels_channel, subscribe_labels};
pub use reader::{ReadError, RedisStateReader};

use crate::online::{EmbeddedOnlineStore, OnlineStore, SharedOnlineStore, StoreError};
use crate::state::EntityState;

/// The first byte of every value: the layout of what follows.
const VALUE_FORMAT: u8 = 1;
/// Format byte plus the writer id.
const HEADER_LEN: usize = 9;

/// Stores each value unless its key holds a later version of the entity's state (module
/// header). `KEYS`: the state keys; `ARGV[1]`: the TTL in seconds (0: none); `ARGV[1 + i]`:
/// the value for `KEYS[i]`. Returns how many values it refused. The version is where
/// [`encode_value`] and [`EntityState::encode`] put it: after the 9-byte header, the
/// state's format byte (2: the first with a version; a stored format 1 is older than any)
/// and then the count, bytes 11-18 (Lua counts from 1). Only those first 18 bytes of the
/// stored value are read (`GETRANGE`, empty when the key is absent): copying whole states
/// of a few KB into Lua made Redis spend five times the CPU of plain `SET`s. Versions are
/// compared byte by byte from the most significant, as Lua 5.1 numbers cannot hold 64 bits.
const STORE_UNLESS_LATER: &str = r"
local function later(stored, value)
  if string.byte(stored, 10) ~= 2 or #stored < 18 then return false end
  for at = 18, 11, -1 do
    local s, v = string.byte(stored, at), string.byte(value, at)
    if s ~= v then return s > v end
  end
  return false
end
local ttl = tonumber(ARGV[1])
local refused = 0
for i, key in ipairs(KEYS) do
  local value = ARGV[i + 1]
  local stored = redis.call('GETRANGE', key, 0, 17)
  if later(stored, value) then
    refused = refused + 1
  elseif ttl > 0 then
    redis.call('SET', key, value, 'EX', ttl)
  else
    redis.call('SET', key, value)
  end
end
return refused
";

/// How long a synchronous writer keeps retrying a Redis that does not answer before the
/// ingest run fails (its supervisor restarts it; replay from the checkpoint is exact).
const RETRY_FOR: Duration = Duration::from_secs(30);
/// Socket timeouts of the synchronous connection: a hung server is an error, not a hang.
const IO_TIMEOUT: Duration = Duration::from_secs(10);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// The Redis key of an entity's state.
pub fn state_key(prefix: &str, entity: &str) -> String {
    format!("{prefix}state:{entity}")
}

/// `redis://host:port/db`, for messages (never the password).
pub fn address(settings: &RedisSettings) -> String {
    format!("redis://{}:{}/{}", settings.host, settings.port, settings.db)
}

fn connection_info(settings: &RedisSettings) -> Result<ConnectionInfo, StoreError> {
    let mut redis = RedisConnectionInfo::default().set_db(i64::from(settings.db));
    if let Some(username) = &settings.username {
        redis = redis.set_username(username);
    }
    if let Some(password) = &settings.password {
        redis = redis.set_password(password);
    }
    let info = ConnectionAddr::Tcp(settings.host.clone(), settings.port)
        .into_connection_info()
        .map_err(|e| backend(settings, "configuring the connection", &e))?;
    Ok(info.set_redis_settings(redis))
}

fn backend(settings: &RedisSettings, action: &str, error: &redis::RedisError) -> StoreError {
    StoreError::Backend(format!("Redis at {}: {action}: {error}", address(settings)))
}

/// Appends a value: header, then the state's binary form.
pub fn encode_value(writer: u64, state: &EntityState, out: &mut Vec<u8>) {
    out.push(VALUE_FORMAT);
    out.extend_from_slice(&writer.to_le_bytes());
    state.encode(out);
}

/// The writer id and state of a value written by [`encode_value`] (its state in any
/// format [`EntityState::decode`] reads).
pub fn decode_value(bytes: &[u8]) -> Result<(u64, EntityState), String> {
    match bytes.first() {
        Some(&VALUE_FORMAT) if bytes.len() >= HEADER_LEN => {}
        Some(&format) if format != VALUE_FORMAT => {
            return Err(format!("unknown value format {format}"));
        }
        _ => return Err(format!("a {}-byte value is too short", bytes.len())),
    }
    let writer = u64::from_le_bytes(bytes[1..HEADER_LEN].try_into().expect("8 bytes"));
    let (state, used) = EntityState::decode(&bytes[HEADER_LEN..])?;
    if HEADER_LEN + used != bytes.len() {
        return Err(format!(
            "{} bytes after the state",
            bytes.len() - HEADER_LEN - used
        ));
    }
    Ok((writer, state))
}

/// Ingest's side of the store: a synchronous connection (re-established after an error,
/// retried for [`RETRY_FOR`]) that reads and writes batches in one round trip each.
pub struct RedisOnlineStore {
    settings: RedisSettings,
    client: redis::Client,
    connection: Mutex<Option<redis::Connection>>,
    /// The id written into every value; see the module header.
    writer: u64,
}

impl RedisOnlineStore {
    /// Connects (failing at once when the server cannot be reached or refuses the
    /// credentials) as writer `writer`.
    pub fn open(settings: &RedisSettings, writer: u64) -> Result<Self, StoreError> {
        let client = redis::Client::open(connection_info(settings)?)
            .map_err(|e| backend(settings, "configuring the client", &e))?;
        let store = Self {
            settings: settings.clone(),
            client,
            connection: Mutex::new(None),
            writer,
        };
        let mut connection = store.connect().map_err(|e| backend(settings, "connecting", &e))?;
        redis::cmd("PING")
            .query::<String>(&mut connection)
            .map_err(|e| backend(settings, "PING", &e))?;
        *store.connection.lock().expect("redis connection lock") = Some(connection);
        Ok(store)
    }

    /// This writer's id.
    pub fn writer(&self) -> u64 {
        self.writer
    }

    /// `redis://host:port/db` and the key prefix, for messages.
    pub fn describe(&self) -> String {
        format!(
            "{} (keys {}state:*)",
            address(&self.settings),
            self.settings.key_prefix
        )
    }

    fn key(&self, entity: &str) -> String {
        state_key(&self.settings.key_prefix, entity)
    }

    fn connect(&self) -> redis::RedisResult<redis::Connection> {
        let connection = self.client.get_connection_with_timeout(CONNECT_TIMEOUT)?;
        connection.set_read_timeout(Some(IO_TIMEOUT))?;
        connection.set_write_timeout(Some(IO_TIMEOUT))?;
        Ok(connection)
    }

    /// Runs `op` on the connection, reconnecting and retrying with backoff while the
    /// error is the connection's (refused, dropped, timed out) for up to [`RETRY_FOR`];
    /// any other error (a refused command, bad credentials) fails at once.
    fn with_connection<T>(
        &self,
        action: &str,
        mut op: impl FnMut(&mut redis::Connection) -> redis::RedisResult<T>,
    ) -> Result<T, StoreError> {
        let started = Instant::now();
        let mut pause = Duration::from_millis(50);
        let mut guard = self.connection.lock().expect("redis connection lock");
        loop {
            let result = match guard.as_mut() {
                Some(connection) => op(connection),
                None => self.connect().and_then(|mut connection| {
                    let result = op(&mut connection);
                    *guard = Some(connection);
                    result
                }),
            };
            match result {
                Ok(value) => return Ok(value),
                Err(error) if transient(&error) && started.elapsed() < RETRY_FOR => {
                    tracing::warn!(redis = %address(&self.settings), %error, retry_in_ms = pause.as_millis() as u64, "{action} failed; reconnecting");
                    *guard = None;
                    std::thread::sleep(pause);
                    pause = (pause * 2).min(Duration::from_secs(2));
                }
                Err(error) => return Err(backend(&self.settings, action, &error)),
            }
        }
    }

    /// The raw values of `entities`' keys, in order, in one `MGET`.
    fn get_values(&self, entities: &[&str]) -> Result<Vec<Option<Vec<u8>>>, StoreError> {
        if entities.is_empty() {
            return Ok(Vec::new());
        }
        let keys: Vec<String> = entities.iter().map(|e| self.key(e)).collect();
        self.with_connection("MGET", |connection| {
            redis::cmd("MGET").arg(&keys).query(connection)
        })
    }

    fn decode(&self, entity: &str, bytes: &[u8]) -> Result<(u64, EntityState), StoreError> {
        decode_value(bytes).map_err(|reason| {
            StoreError::Backend(format!(
                "Redis at {}: the value of {} is unreadable: {reason}",
                address(&self.settings),
                self.key(entity)
            ))
        })
    }

    /// Writes encoded values in one pipeline of `SET key value [EX ttl]`.
    fn set_values(&self, values: &[(String, Vec<u8>)]) -> Result<(), StoreError> {
        if values.is_empty() {
            return Ok(());
        }
        let mut pipe = redis::pipe();
        for (key, value) in values {
            let set = pipe.cmd("SET").arg(key).arg(value.as_slice());
            if self.settings.ttl_seconds > 0 {
                set.arg("EX").arg(self.settings.ttl_seconds);
            }
            set.ignore();
        }
        self.with_connection("SET pipeline", |connection| pipe.exec(connection))
    }
}

impl RedisOnlineStore {
    /// Writes encoded values in one [`STORE_UNLESS_LATER`] call; returns how many it
    /// refused because their key held a later version.
    fn store_unless_later(&self, values: &[(String, Vec<u8>)]) -> Result<usize, StoreError> {
        if values.is_empty() {
            return Ok(0);
        }
        let mut eval = redis::cmd("EVAL");
        eval.arg(STORE_UNLESS_LATER).arg(values.len());
        for (key, _) in values {
            eval.arg(key);
        }
        eval.arg(self.settings.ttl_seconds);
        for (_, value) in values {
            eval.arg(value.as_slice());
        }
        let refused: u64 =
            self.with_connection("EVAL (store unless later)", |connection| eval.query(connection))?;
        Ok(refused as usize)
    }
}

/// Errors of the connection rather than of the command: worth a reconnect and a retry.
fn transient(error: &redis::RedisError) -> bool {
    error.is_io_error()
        || error.is_connection_dropped()
        || error.is_connection_refusal()
        || error.is_timeout()
}

impl OnlineStore for RedisOnlineStore {
    fn get_many(&self, entities: &[&str]) -> Result<Vec<Option<EntityState>>, StoreError> {
        let values = self.get_values(entities)?;
        entities
            .iter()
            .zip(values)
            .map(|(entity, value)| {
                value
                    .map(|bytes| self.decode(entity, &bytes).map(|(_, state)| state))
                    .transpose()
            })
            .collect()
    }

    fn put_batch(&self, states: &[(&str, &EntityState)]) -> Result<(), StoreError> {
        let values: Vec<(String, Vec<u8>)> = states
            .iter()
            .map(|(entity, state)| {
                let mut value = Vec::new();
                encode_value(self.writer, state, &mut value);
                (self.key(entity), value)
            })
            .collect();
        self.set_values(&values)
    }
}

impl SharedOnlineStore for RedisOnlineStore {
    fn foreign_states(&self, entities: &[&str]) -> Result<Vec<Option<EntityState>>, StoreError> {
        let values = self.get_values(entities)?;
        entities
            .iter()
            .zip(values)
            .map(|(entity, value)| match value {
                None => Ok(None),
                Some(bytes) => {
                    let (writer, state) = self.decode(entity, &bytes)?;
                    Ok((writer != self.writer).then_some(state))
                }
            })
            .collect()
    }

    fn publish(&self, entities: &[&str], local: &EmbeddedOnlineStore) -> Result<usize, StoreError> {
        let values: Vec<(String, Vec<u8>)> = entities
            .iter()
            .filter_map(|entity| {
                local.with_state(entity, |state| {
                    state.map(|state| {
                        let mut value = Vec::with_capacity(HEADER_LEN + 25 + state.len() * 64);
                        encode_value(self.writer, state, &mut value);
                        (self.key(entity), value)
                    })
                })
            })
            .collect();
        self.store_unless_later(&values)
    }

    fn describe(&self) -> String {
        RedisOnlineStore::describe(self)
    }
}

#[cfg(test)]
mod tests;

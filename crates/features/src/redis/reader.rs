//! [`RedisStateReader`]: how `serve` reads entity state from Redis on the request path.
//!
//! Key decision: a read never waits longer than `redis.timeout_ms`, and a Redis that is
//! down is not asked at all for a while. The connection manager (one multiplexed
//! connection, re-established in the background after it drops) carries the reads; a
//! small circuit breaker in front of it opens after a failed or late read and lets one
//! probe through after a backoff (50 ms doubling to 1 s), so a dead Redis costs requests
//! nothing but a branch and is not hammered with reconnects, and the first probe that
//! succeeds closes it again: recovery needs no restart.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use driftline_core::config::RedisSettings;
use driftline_core::event::LabelUpdate;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use super::{address, connection_info, decode_value, state_key};
use crate::online::StoreError;
use crate::state::EntityState;

/// Why a read gave no state.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReadError {
    /// The breaker is open after recent failures: Redis was not asked.
    #[error("Redis is marked down after recent failures; not asked")]
    Skipped,
    /// No answer within the deadline.
    #[error("no answer from Redis within {0} ms")]
    Timeout(u64),
    /// Redis answered with an error, or the connection failed.
    #[error("Redis: {0}")]
    Failed(String),
    /// A value could not be decoded.
    #[error("the value of {key} is unreadable: {reason}")]
    Corrupt { key: String, reason: String },
}

impl ReadError {
    /// Whether Redis was actually asked (and failed): what the error counter counts.
    pub fn attempted(&self) -> bool {
        !matches!(self, ReadError::Skipped)
    }
}

const MIN_BACKOFF: Duration = Duration::from_millis(50);
const MAX_BACKOFF: Duration = Duration::from_secs(1);

/// Reads entity states with a deadline; cheap to share (`&self` everywhere).
pub struct RedisStateReader {
    manager: ConnectionManager,
    prefix: String,
    labels_channel: String,
    deadline: Duration,
    address: String,
    breaker: Breaker,
}

impl RedisStateReader {
    /// A reader of `settings`' server. Connects lazily, so it can be created (and serve
    /// can start) while Redis is down; must be called inside a Tokio runtime.
    pub fn new(settings: &RedisSettings) -> Result<Self, StoreError> {
        let client = redis::Client::open(connection_info(settings)?)
            .map_err(|e| StoreError::Backend(format!("Redis at {}: {e}", address(settings))))?;
        let deadline = Duration::from_millis(settings.timeout_ms.max(1));
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(deadline.max(Duration::from_millis(500))))
            // The deadline is applied per read below; a late answer is dropped there.
            .set_response_timeout(None)
            .set_number_of_retries(2)
            .set_min_delay(Duration::from_millis(20))
            .set_max_delay(Duration::from_millis(500))
            .set_pipeline_buffer_size(4096);
        let manager = client
            .get_connection_manager_lazy(config)
            .map_err(|e| StoreError::Backend(format!("Redis at {}: {e}", address(settings))))?;
        Ok(Self {
            manager,
            prefix: settings.key_prefix.clone(),
            labels_channel: super::labels_channel(&settings.key_prefix),
            deadline,
            address: address(settings),
            breaker: Breaker::new(),
        })
    }

    /// `redis://host:port/db`.
    pub fn address(&self) -> &str {
        &self.address
    }

    /// Whether the last read succeeded (true before any).
    pub fn is_up(&self) -> bool {
        self.breaker.up.load(Ordering::Relaxed)
    }

    /// One entity's state (`None` when Redis has none).
    pub async fn get(&self, entity: &str) -> Result<Option<EntityState>, ReadError> {
        let key = state_key(&self.prefix, entity);
        let value: Option<Vec<u8>> = self.query(redis::cmd("GET").arg(&key)).await?;
        value.map(|bytes| decode(&key, &bytes)).transpose()
    }

    /// Many entities' states, in order, in one `MGET`.
    pub async fn get_many(&self, entities: &[&str]) -> Result<Vec<Option<EntityState>>, ReadError> {
        if entities.is_empty() {
            return Ok(Vec::new());
        }
        let keys: Vec<String> = entities.iter().map(|e| state_key(&self.prefix, e)).collect();
        let values: Vec<Option<Vec<u8>>> = self.query(redis::cmd("MGET").arg(&keys)).await?;
        if values.len() != keys.len() {
            return Err(ReadError::Failed(format!(
                "MGET of {} keys answered {} values",
                keys.len(),
                values.len()
            )));
        }
        keys.iter()
            .zip(values)
            .map(|(key, value)| value.map(|bytes| decode(key, &bytes)).transpose())
            .collect()
    }

    /// Publishes labels this replica could not join on the shared labels channel (see
    /// [`super::labels`]), within the deadline and through the breaker like a read.
    pub async fn publish_labels(&self, labels: &[LabelUpdate]) -> Result<(), ReadError> {
        if labels.is_empty() {
            return Ok(());
        }
        let mut publish = redis::cmd("PUBLISH");
        publish
            .arg(&self.labels_channel)
            .arg(super::encode_labels(labels));
        self.query::<i64>(&publish).await.map(|_| ())
    }

    /// `PING` within the deadline (through the breaker, like any read).
    pub async fn ping(&self) -> Result<(), ReadError> {
        self.query::<String>(&redis::cmd("PING")).await.map(|_| ())
    }

    async fn query<T: redis::FromRedisValue>(&self, command: &redis::Cmd) -> Result<T, ReadError> {
        if !self.breaker.allow() {
            return Err(ReadError::Skipped);
        }
        let mut connection = self.manager.clone();
        let result =
            match tokio::time::timeout(self.deadline, command.query_async::<T>(&mut connection)).await {
                Ok(Ok(value)) => Ok(value),
                Ok(Err(error)) => Err(ReadError::Failed(error.to_string())),
                Err(_) => Err(ReadError::Timeout(self.deadline.as_millis() as u64)),
            };
        match &result {
            Ok(_) => self.breaker.succeeded(&self.address),
            Err(error) => self.breaker.failed(&self.address, error),
        }
        result
    }
}

fn decode(key: &str, bytes: &[u8]) -> Result<EntityState, ReadError> {
    decode_value(bytes)
        .map(|(_, state)| state)
        .map_err(|reason| ReadError::Corrupt {
            key: key.to_string(),
            reason,
        })
}

/// Closed (reads go through) until a read fails; then open until `retry_at`, when one
/// caller wins the right to probe (the others keep skipping until it reports back or the
/// next backoff passes). Times are µs since `origin`; `retry_at == 0` means closed.
struct Breaker {
    origin: Instant,
    retry_at: AtomicU64,
    backoff_micros: AtomicU64,
    up: AtomicBool,
}

impl Breaker {
    fn new() -> Self {
        Self {
            origin: Instant::now(),
            retry_at: AtomicU64::new(0),
            backoff_micros: AtomicU64::new(MIN_BACKOFF.as_micros() as u64),
            up: AtomicBool::new(true),
        }
    }

    fn now(&self) -> u64 {
        self.origin.elapsed().as_micros() as u64 + 1
    }

    fn allow(&self) -> bool {
        self.allow_at(self.now())
    }

    fn allow_at(&self, now: u64) -> bool {
        let retry_at = self.retry_at.load(Ordering::Acquire);
        if retry_at == 0 {
            return true;
        }
        if now < retry_at {
            return false;
        }
        // Only the caller that moves `retry_at` on probes; everybody else waits for it.
        let next = now + self.backoff_micros.load(Ordering::Relaxed);
        self.retry_at
            .compare_exchange(retry_at, next, Ordering::AcqRel, Ordering::Relaxed)
            .is_ok()
    }

    fn succeeded(&self, address: &str) {
        if self.retry_at.swap(0, Ordering::AcqRel) != 0 || !self.up.load(Ordering::Relaxed) {
            tracing::info!(redis = %address, "Redis answers again; reading online state from it");
        }
        self.backoff_micros
            .store(MIN_BACKOFF.as_micros() as u64, Ordering::Relaxed);
        self.up.store(true, Ordering::Relaxed);
    }

    fn failed(&self, address: &str, error: &ReadError) {
        self.failed_at(self.now(), address, error);
    }

    fn failed_at(&self, now: u64, address: &str, error: &ReadError) {
        if matches!(error, ReadError::Corrupt { .. }) {
            // Redis answered; the value is the problem, not the server.
            self.succeeded(address);
            return;
        }
        let backoff = self.backoff_micros.load(Ordering::Relaxed);
        self.retry_at.store(now + backoff, Ordering::Release);
        self.backoff_micros.store(
            (backoff * 2).min(MAX_BACKOFF.as_micros() as u64),
            Ordering::Relaxed,
        );
        if self.up.swap(false, Ordering::Relaxed) {
            tracing::warn!(redis = %address, %error, "online state unavailable; answering from request features until Redis is back");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000;

    #[test]
    fn the_breaker_opens_on_failure_lets_one_probe_through_and_closes_on_success() {
        let breaker = Breaker::new();
        assert!(
            breaker.allow_at(10) && breaker.allow_at(11),
            "closed: every read goes through"
        );
        breaker.failed_at(1_000 * MS, "test", &ReadError::Timeout(25));
        assert!(!breaker.up.load(Ordering::Relaxed));
        assert!(
            !breaker.allow_at(1_049 * MS),
            "open: reads are skipped during the backoff"
        );
        assert!(
            breaker.allow_at(1_050 * MS),
            "after the backoff one probe goes through"
        );
        assert!(!breaker.allow_at(1_051 * MS), "and only one");
        breaker.failed_at(1_060 * MS, "test", &ReadError::Failed("refused".into()));
        assert!(
            !breaker.allow_at(1_159 * MS),
            "the backoff doubled after the failed probe"
        );
        assert!(breaker.allow_at(1_160 * MS));
        breaker.succeeded("test");
        assert!(breaker.up.load(Ordering::Relaxed));
        assert!(
            breaker.allow_at(1_161 * MS) && breaker.allow_at(1_162 * MS),
            "closed again"
        );
        breaker.failed_at(2_000 * MS, "test", &ReadError::Timeout(25));
        assert!(
            breaker.allow_at(2_050 * MS),
            "a success reset the backoff to its minimum"
        );
    }

    #[test]
    fn the_backoff_is_capped() {
        let breaker = Breaker::new();
        let mut now = 0;
        for _ in 0..20 {
            breaker.failed_at(now, "test", &ReadError::Timeout(25));
            now += MAX_BACKOFF.as_micros() as u64;
            assert!(breaker.allow_at(now), "never closed for longer than the cap");
        }
    }

    #[test]
    fn a_corrupt_value_does_not_open_the_breaker() {
        let breaker = Breaker::new();
        breaker.failed(
            "test",
            &ReadError::Corrupt {
                key: "k".into(),
                reason: "short".into(),
            },
        );
        assert!(breaker.allow());
        assert!(breaker.up.load(Ordering::Relaxed));
    }
}

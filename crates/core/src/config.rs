//! Configuration: `driftline.toml`, environment variables and flags, checked into one
//! [`Config`].
//!
//! Precedence is built-in defaults < file < environment < flags. The file is strict
//! (`deny_unknown_fields`, so a typo names the key), and the reference stack's variable
//! names (`CANARY_SPLIT`, `POSTGRES_HOST`, ...) keep working. Key decision: the
//! environment is passed in as a lookup function, so this module stays pure and the
//! precedence rules are unit-tested without touching the process environment.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::contract::{Contract, ContractConfig};
use crate::drift::ColumnOverride;
use crate::features::{FeatureSpec, FeaturesConfig};
use crate::profile::ColumnKind;
use crate::time::Timestamp;

/// Everything `driftline.toml` can say. Each section has working defaults: an empty
/// file (or none) runs the fraud demo on embedded storage.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
#[serde(deny_unknown_fields, default)]
pub struct Settings {
    /// Where embedded state lives (event log, feature snapshots, offline history).
    /// Default `./driftline-data`; `DRIFTLINE_DATA_DIR` or `--data-dir` override it.
    pub data_dir: Option<PathBuf>,
    pub contract: ContractConfig,
    pub features: FeaturesConfig,
    pub log: LogSettings,
    pub ingest: IngestSettings,
    pub serve: ServeSettings,
    pub kafka: KafkaSettings,
    pub online_store: OnlineStoreSettings,
    pub redis: RedisSettings,
    pub registry: RegistrySettings,
    pub offline_store: OfflineStoreSettings,
    pub postgres: PostgresSettings,
    pub object_store: ObjectStoreSettings,
    pub drift: DriftSettings,
    pub gates: GateSettings,
    pub model: ModelSettings,
    pub retrain: RetrainSettings,
}

/// `[log]`: the embedded event log.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct LogSettings {
    /// A new segment file starts when the active one passes this size.
    pub segment_bytes: u64,
    /// fsync on every flush (a batch of appends). Off trades durability on power loss
    /// (not on process crash) for speed.
    pub fsync: bool,
}

impl Default for LogSettings {
    fn default() -> Self {
        Self {
            segment_bytes: 64 << 20,
            fsync: true,
        }
    }
}

/// `[ingest]`: the consumer that turns the log into feature state and history.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct IngestSettings {
    /// Records read from the log per batch.
    pub batch_size: usize,
    /// Events between checkpoints (offline history flushed, feature state snapshotted,
    /// offset committed). A crash replays at most this many events.
    pub checkpoint_every: usize,
    /// Longest time between checkpoints while following a live log.
    pub checkpoint_interval: crate::time::Span,
}

impl Default for IngestSettings {
    fn default() -> Self {
        Self {
            batch_size: 4096,
            checkpoint_every: 500_000,
            checkpoint_interval: crate::time::Span::from_seconds(10),
        }
    }
}

/// `[serve]`: the HTTP server.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ServeSettings {
    /// Listen address. Default `0.0.0.0:8000`.
    pub addr: String,
    /// Share of traffic (0..=1) sent to the canary model. Env `CANARY_SPLIT`.
    pub canary_split: f64,
    /// Score every request with the shadow model too. Env `SHADOW_ENABLED`.
    pub shadow_enabled: bool,
    /// How requests are assigned to the canary: `sticky` (a stable hash of the entity id,
    /// so a user keeps their variant) or `random` (per request, as the reference stack).
    pub canary_assignment: CanaryAssignment,
    /// When set, admin endpoints (rollout, aliases, ingest) require
    /// `Authorization: Bearer <token>`. Env `DRIFTLINE_ADMIN_TOKEN`.
    pub admin_token: Option<String>,
    /// The rollout controller's default plan.
    pub rollout: RolloutPlan,
}

/// `[serve.rollout]`: how the rollout controller takes a challenger to champion, and what
/// each step must meet (a `start` action may override any field).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RolloutPlan {
    /// Canary shares, ascending, each in (0, 1].
    pub steps: Vec<f64>,
    /// Seconds between checks.
    pub interval_seconds: f64,
    /// Canary requests a step needs before it is judged.
    pub min_requests: u64,
    /// The canary's p95 latency must stay at or under this (seconds).
    pub max_p95_seconds: f64,
    /// The canary's error rate must stay at or under this.
    pub max_error_rate: f64,
    /// The share of canary requests the champion would have decided differently must stay
    /// at or under this.
    pub max_disagreement: f64,
    /// Consecutive failed checks that roll the challenger back.
    pub failed_checks_to_rollback: u32,
    /// Labelled predictions (delayed labels through `/v1/feedback`) each variant needs in a
    /// step before ROC AUC is compared.
    pub min_labels: u64,
    /// The canary's ROC AUC on labelled feedback may trail the champion's by at most this,
    /// beyond the one-sided 95% sampling margin of the difference.
    pub max_auc_drop: f64,
    /// Judge a step only once both variants have `min_labels` labelled predictions, so
    /// the AUC comparison always applies (the retrainer sets this when concept drift
    /// triggered it: the champion is then known to be wrong, and disagreeing with it is
    /// no evidence against the challenger).
    pub require_labels: bool,
}

impl Default for RolloutPlan {
    fn default() -> Self {
        RolloutPlan {
            steps: vec![0.05, 0.2, 0.5, 1.0],
            interval_seconds: 10.0,
            min_requests: 200,
            max_p95_seconds: 0.2,
            max_error_rate: 0.01,
            max_disagreement: 0.2,
            failed_checks_to_rollback: 2,
            min_labels: 200,
            max_auc_drop: 0.02,
            require_labels: false,
        }
    }
}

impl RolloutPlan {
    /// Checks the plan, naming the first field out of range.
    pub fn check(&self) -> Result<(), String> {
        if self.steps.is_empty()
            || self.steps.iter().any(|s| !(*s > 0.0 && *s <= 1.0))
            || self.steps.windows(2).any(|w| w[0] >= w[1])
        {
            return Err("steps: needs ascending shares in (0, 1]".into());
        }
        if !(self.interval_seconds.is_finite() && self.interval_seconds > 0.0) {
            return Err("interval_seconds: must be above 0".into());
        }
        for (name, value) in [
            ("max_p95_seconds", self.max_p95_seconds),
            ("max_error_rate", self.max_error_rate),
            ("max_disagreement", self.max_disagreement),
            ("max_auc_drop", self.max_auc_drop),
        ] {
            if !(value.is_finite() && value >= 0.0) {
                return Err(format!("{name}: must be a number >= 0"));
            }
        }
        if self.failed_checks_to_rollback == 0 {
            return Err("failed_checks_to_rollback: must be at least 1".into());
        }
        Ok(())
    }
}

/// How `/predict` picks the canary for a request.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum CanaryAssignment {
    #[default]
    Sticky,
    Random,
}

impl Default for ServeSettings {
    fn default() -> Self {
        Self {
            addr: "0.0.0.0:8000".into(),
            canary_split: 0.1,
            shadow_enabled: false,
            canary_assignment: CanaryAssignment::Sticky,
            admin_token: None,
            rollout: RolloutPlan::default(),
        }
    }
}

/// `[kafka]`: the scale-out event stream (any Kafka API broker: Kafka, Redpanda, MSK).
/// `driftline gen --to kafka` produces to it (message key = entity id, value = the event
/// JSON, the bytes a JSON-lines file holds); `driftline ingest --from kafka` consumes it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct KafkaSettings {
    /// Bootstrap servers, comma separated. Env `REDPANDA_BROKERS` or `KAFKA_BROKERS`.
    pub brokers: String,
    /// Topic of raw events. Env `EVENT_TOPIC`.
    pub topic: String,
    /// Consumer group of ingest workers: the topic's partitions are shared among the
    /// group's members, and its committed offsets show the group's progress.
    pub group: String,
    /// librdkafka properties passed through unchanged to the producer and the consumer,
    /// for TLS, SASL and tuning, e.g. `"security.protocol" = "SASL_SSL"`. Keys with dots
    /// must be quoted in TOML; numbers and booleans are accepted and passed as text.
    /// The keys driftline manages are refused: `bootstrap.servers` and
    /// `metadata.broker.list` (use `brokers`), `group.id` (use `group`), and
    /// `enable.auto.commit`, `enable.auto.offset.store` and `enable.partition.eof`
    /// (ingest commits offsets itself, after each checkpoint).
    #[serde(deserialize_with = "property_values")]
    pub properties: std::collections::BTreeMap<String, String>,
}

/// `[kafka.properties]` keys that driftline sets itself, with what to use instead.
pub const KAFKA_MANAGED_PROPERTIES: &[(&str, &str)] = &[
    ("bootstrap.servers", "set kafka.brokers"),
    ("metadata.broker.list", "set kafka.brokers"),
    ("group.id", "set kafka.group"),
    (
        "enable.auto.commit",
        "ingest commits offsets itself, after each checkpoint",
    ),
    (
        "enable.auto.offset.store",
        "ingest commits offsets itself, after each checkpoint",
    ),
    (
        "enable.partition.eof",
        "ingest uses end-of-partition events to know when it has caught up",
    ),
];

impl Default for KafkaSettings {
    fn default() -> Self {
        Self {
            brokers: "localhost:9092".into(),
            topic: "transactions".into(),
            group: "driftline-ingest".into(),
            properties: Default::default(),
        }
    }
}

impl KafkaSettings {
    fn check(&self) -> Result<(), ConfigError> {
        for (key, instead) in KAFKA_MANAGED_PROPERTIES {
            if self.properties.contains_key(*key) {
                return Err(ConfigError::Invalid(format!(
                    "kafka.properties.\"{key}\" is managed by driftline: {instead}"
                )));
            }
        }
        if self.topic.is_empty() || self.group.is_empty() || self.brokers.is_empty() {
            return Err(ConfigError::Invalid(
                "kafka.brokers, kafka.topic and kafka.group must not be empty".into(),
            ));
        }
        Ok(())
    }
}

/// Reads a table of librdkafka properties whose values may be strings, numbers or
/// booleans (librdkafka takes every value as text).
fn property_values<'de, D>(deserializer: D) -> Result<std::collections::BTreeMap<String, String>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Value {
        Text(String),
        Integer(i64),
        Float(f64),
        Bool(bool),
    }
    let table = std::collections::BTreeMap::<String, Value>::deserialize(deserializer)?;
    Ok(table
        .into_iter()
        .map(|(key, value)| {
            let text = match value {
                Value::Text(s) => s,
                Value::Integer(i) => i.to_string(),
                Value::Float(f) => f.to_string(),
                Value::Bool(b) => b.to_string(),
            };
            (key, text)
        })
        .collect())
}

/// `[online_store]`: where per-entity feature state lives for serving.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
#[serde(deny_unknown_fields, default)]
pub struct OnlineStoreSettings {
    /// `embedded` (default): in the process, rebuilt from the data directory's log, and
    /// `serve` ingests that log itself. `redis`: the `[redis]` server, written by
    /// `driftline ingest` workers and read by every `serve` replica (which then ingests
    /// nothing itself). Env `DRIFTLINE_ONLINE_STORE`.
    pub backend: OnlineBackend,
}

/// Which store holds online feature state.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum OnlineBackend {
    #[default]
    Embedded,
    Redis,
}

/// `[redis]`: the scale-out online store (one key per entity, `{key_prefix}state:{id}`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct RedisSettings {
    /// Env `REDIS_HOST`.
    pub host: String,
    /// Env `REDIS_PORT`.
    pub port: u16,
    /// The database number (`SELECT`).
    pub db: u32,
    /// The ACL user name, when the server has users (Redis 6+); unset: `default`.
    pub username: Option<String>,
    /// The password (`AUTH`); unset: none. Env `REDIS_PASSWORD`.
    pub password: Option<String>,
    /// Prefix of every key driftline writes.
    pub key_prefix: String,
    /// Seconds an entity's state lives after its last write (refreshed by every write), so
    /// entities that stopped sending events do not stay for ever. 0: no expiry. At least
    /// the features' retention span (longest window plus allowed lateness), since state
    /// younger than that still counts in a window.
    pub ttl_seconds: u64,
    /// `serve`'s deadline for reading feature state, in milliseconds. A read that misses
    /// it is answered from the request alone (`"features": "request_only"`), never a 5xx.
    pub timeout_ms: u64,
}

impl Default for RedisSettings {
    fn default() -> Self {
        Self {
            host: "localhost".into(),
            port: 6379,
            db: 0,
            username: None,
            password: None,
            key_prefix: "driftline:".into(),
            ttl_seconds: 35 * 86_400,
            timeout_ms: 25,
        }
    }
}

/// `[offline_store]`: where event and label history lives (what training reads).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
#[serde(deny_unknown_fields, default)]
pub struct OfflineStoreSettings {
    /// `parquet` (default): files under the data directory, one machine's history.
    /// `postgres`: tables in the `[postgres]` database, shared by every ingest worker
    /// and read by training anywhere. Env `DRIFTLINE_OFFLINE_STORE`.
    pub backend: OfflineBackend,
    /// `postgres` only: the name this worker's rows carry, so a restart discards only its
    /// own uncommitted rows. Must stay the same across restarts of one data directory.
    /// Unset: the host name and the data directory's absolute path.
    pub source: Option<String>,
}

/// Which store holds history.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum OfflineBackend {
    #[default]
    Parquet,
    Postgres,
}

impl RedisSettings {
    fn check(&self, retention: crate::time::Span) -> Result<(), ConfigError> {
        if self.host.is_empty() || self.port == 0 {
            return Err(ConfigError::Invalid(
                "redis.host must not be empty and redis.port must be from 1 to 65535".into(),
            ));
        }
        if self.timeout_ms == 0 {
            return Err(ConfigError::Invalid("redis.timeout_ms must be at least 1".into()));
        }
        let retention_seconds = retention.micros().max(0) as u64 / 1_000_000;
        if self.ttl_seconds != 0 && self.ttl_seconds < retention_seconds {
            return Err(ConfigError::Invalid(format!(
                "redis.ttl_seconds: {} is shorter than the features' retention span ({} s, the longest window plus the allowed lateness), so state a window still counts would expire; use at least that, or 0 for no expiry",
                self.ttl_seconds, retention_seconds
            )));
        }
        Ok(())
    }
}

/// `[registry]`: where model versions, aliases and the audit log live.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct RegistrySettings {
    /// `sqlite` (default): one file in the data directory, shared by the processes of one
    /// machine. `postgres`: the database of `[postgres]`, shared by every replica, which
    /// see an alias change within milliseconds (LISTEN/NOTIFY).
    pub backend: RegistryBackend,
    /// SQLite only: the database file, relative to the data directory.
    pub path: PathBuf,
    /// SQLite only: how often, in milliseconds, changes made by other processes are looked
    /// for (serving hot-swaps models within this delay). At least 1.
    pub poll_interval_ms: u64,
}

/// Which database holds the registry.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum RegistryBackend {
    #[default]
    Sqlite,
    Postgres,
}

impl Default for RegistrySettings {
    fn default() -> Self {
        Self {
            backend: RegistryBackend::Sqlite,
            path: PathBuf::from("registry.db"),
            poll_interval_ms: 200,
        }
    }
}

impl RegistrySettings {
    fn check(&self) -> Result<(), ConfigError> {
        if self.poll_interval_ms == 0 {
            return Err(ConfigError::Invalid(
                "registry.poll_interval_ms must be at least 1".into(),
            ));
        }
        if self.backend == RegistryBackend::Sqlite && self.path.as_os_str().is_empty() {
            return Err(ConfigError::Invalid("registry.path must not be empty".into()));
        }
        Ok(())
    }
}

/// `[postgres]`: the scale-out offline store and registry.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct PostgresSettings {
    /// Env `POSTGRES_HOST`.
    pub host: String,
    /// Env `POSTGRES_PORT`.
    pub port: u16,
    /// Env `POSTGRES_USER`.
    pub user: String,
    /// Env `POSTGRES_PASSWORD`.
    pub password: String,
    /// Env `POSTGRES_DB`.
    pub database: String,
}

impl Default for PostgresSettings {
    fn default() -> Self {
        Self {
            host: "localhost".into(),
            port: 5432,
            user: "postgres".into(),
            password: String::new(),
            database: "driftline".into(),
        }
    }
}

/// `[object_store]`: where model artifacts live: the data directory, or S3 (AWS, MinIO
/// or any S3-compatible server).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ObjectStoreSettings {
    /// `local` (default): `<data_dir>/artifacts`. `s3`: the bucket below, shared by every
    /// replica.
    pub backend: ArtifactBackend,
    /// S3 only: the endpoint URL of an S3-compatible server (requests are path-style;
    /// `http://` is allowed for a local server). Unset: AWS itself. Env `MINIO_ENDPOINT`.
    pub endpoint: Option<String>,
    /// S3 only: the access key id. Unset: AWS's usual sources (`AWS_ACCESS_KEY_ID`, an
    /// instance role). Env `MINIO_ACCESS_KEY` (or `MINIO_ROOT_USER`).
    pub access_key: Option<String>,
    /// S3 only: the secret key. Env `MINIO_SECRET_KEY` (or `MINIO_ROOT_PASSWORD`).
    pub secret_key: Option<String>,
    /// S3 only: the bucket, which must exist. Env `MINIO_BUCKET`.
    pub bucket: String,
    /// S3 only: the region.
    pub region: String,
}

/// Where model artifacts are stored.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum ArtifactBackend {
    #[default]
    Local,
    S3,
}

impl ObjectStoreSettings {
    fn check(&self) -> Result<(), ConfigError> {
        if self.backend != ArtifactBackend::S3 {
            return Ok(());
        }
        if self.bucket.trim().is_empty() {
            return Err(ConfigError::Invalid(
                "object_store.bucket must not be empty".into(),
            ));
        }
        if self.access_key.is_some() != self.secret_key.is_some() {
            return Err(ConfigError::Invalid(
                "object_store.access_key and object_store.secret_key must be set together".into(),
            ));
        }
        if let Some(endpoint) = &self.endpoint
            && !(endpoint.starts_with("http://") || endpoint.starts_with("https://"))
        {
            return Err(ConfigError::Invalid(format!(
                "object_store.endpoint must be an http:// or https:// URL, got {endpoint:?}"
            )));
        }
        Ok(())
    }
}

impl Default for ObjectStoreSettings {
    fn default() -> Self {
        Self {
            backend: ArtifactBackend::Local,
            endpoint: None,
            access_key: None,
            secret_key: None,
            bucket: "mlops-demo".into(),
            region: "us-east-1".into(),
        }
    }
}

/// `[drift]`: batch drift reports and the streaming monitor.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct DriftSettings {
    /// Default `--reference` of `drift report`. Env `DRIFT_REFERENCE_PATH`.
    pub reference_path: Option<PathBuf>,
    /// Default `--current` of `drift report`. Env `DRIFT_CURRENT_PATH`.
    pub current_path: Option<PathBuf>,
    /// p-value below which a statistical test calls drift. Env `DRIFT_P_VALUE_THRESHOLD`.
    pub p_value_threshold: f64,
    /// `drift validate` fails when the dataset drifts. Env `DRIFT_FAIL_ON_DATASET`.
    pub fail_on_dataset: bool,
    /// `[drift.columns.NAME]`: one column's test and/or threshold, used by `drift report`
    /// (where `--test` flags override it) and by the streaming monitor. `NAME = "score"`
    /// addresses the monitor's prediction (score) drift.
    pub columns: BTreeMap<String, ColumnOverride>,
    /// `[drift.monitor]`: the streaming monitor of live features and scores.
    pub monitor: MonitorSettings,
}

impl Default for DriftSettings {
    fn default() -> Self {
        Self {
            reference_path: None,
            current_path: None,
            p_value_threshold: 0.05,
            fail_on_dataset: true,
            columns: BTreeMap::new(),
            monitor: MonitorSettings::default(),
        }
    }
}

impl DriftSettings {
    /// Checks every value, naming the key of the first one out of range. Overrides that
    /// give a numbers-only test (ks, wasserstein) to a categorical feature are refused.
    fn check(&self, features: &FeatureSpec) -> Result<(), ConfigError> {
        check_range("drift.p_value_threshold", self.p_value_threshold)?;
        for (name, column) in &self.columns {
            let key = format!("drift.columns.{name}");
            column
                .check()
                .map_err(|e| ConfigError::Invalid(format!("{key}.{e}")))?;
            let Some(test) = column.test.filter(|t| t.numeric_only()) else {
                continue;
            };
            let categorical = features
                .columns
                .iter()
                .any(|c| &c.name == name && ColumnKind::of(&c.kind) == ColumnKind::Categorical);
            if categorical {
                return Err(ConfigError::Invalid(format!(
                    "{key}.test: {} compares numbers, and feature {name} is categorical",
                    test.name()
                )));
            }
        }
        self.monitor
            .check()
            .map_err(|e| ConfigError::Invalid(format!("drift.monitor.{e}")))
    }
}

/// `[drift.monitor]`: sliding windows of live feature vectors and scores inside `serve`,
/// compared with the champion's reference profile.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct MonitorSettings {
    /// The most recent this many predictions form the window (count-based). 4,000: the
    /// noise floor scales with the square root of the rows and a shift's distance does
    /// not, so a 10% shift of amounts stands further above the floor in a 4,000-row window
    /// than in a 5,000-row one and is caught within 4,000 events (docs/drift.md).
    pub window: usize,
    /// No verdict until the window holds this many predictions (status `warming_up`).
    pub min_window: usize,
    /// Seconds between evaluations of the window (gauges and `GET /v1/drift`).
    pub evaluate_interval_seconds: f64,
    /// Distance (normed Wasserstein for numbers, Jensen–Shannon for categories) at or
    /// above which a column drifts, unless `[drift.columns.NAME]` says otherwise, provided
    /// its p-value (KS, chi-square) is also below `drift.p_value_threshold` divided by the
    /// number of columns: the distance keeps large windows from crying wolf, the p-value
    /// small ones. The window is compared with the same hours of the champion's training
    /// period when its profile has hour-of-day strata; the status is `drift` when any
    /// feature or the score drifts.
    pub distance_threshold: f64,
    /// Evidently's dataset rule, reported beside the status (`driftline_dataset_drift`):
    /// the dataset drifts when at least this share of columns drift.
    pub drift_share: f64,
}

impl Default for MonitorSettings {
    fn default() -> Self {
        Self {
            window: 4000,
            min_window: 500,
            evaluate_interval_seconds: 5.0,
            distance_threshold: 0.1,
            drift_share: 0.5,
        }
    }
}

impl MonitorSettings {
    /// Checks the values, naming the first field out of range.
    pub fn check(&self) -> Result<(), String> {
        if self.window == 0 {
            return Err("window: must be at least 1".into());
        }
        if self.min_window == 0 || self.min_window > self.window {
            return Err(format!(
                "min_window: must be from 1 to window ({}), got {}",
                self.window, self.min_window
            ));
        }
        if !(self.evaluate_interval_seconds.is_finite() && self.evaluate_interval_seconds > 0.0) {
            return Err("evaluate_interval_seconds: must be a number above 0".into());
        }
        if !(self.distance_threshold.is_finite() && self.distance_threshold >= 0.0) {
            return Err("distance_threshold: must be a number >= 0".into());
        }
        if !(0.0..=1.0).contains(&self.drift_share) {
            return Err(format!("drift_share: {} must be from 0 to 1", self.drift_share));
        }
        Ok(())
    }
}

/// `[gates]`: what a trained model must reach to be registered as a candidate.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct GateSettings {
    /// Env `MIN_ROC_AUC`.
    pub min_roc_auc: f64,
    /// Env `MIN_AVG_PRECISION`.
    pub min_avg_precision: f64,
    /// How far below the champion (scored on the same holdout) a candidate's ROC AUC
    /// and average precision may be.
    pub max_regression: f64,
}

impl Default for GateSettings {
    fn default() -> Self {
        Self {
            min_roc_auc: 0.7,
            min_avg_precision: 0.2,
            max_regression: 0.01,
        }
    }
}

/// `[model]`: what `driftline train` fits, on which rows, and how it is judged.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ModelSettings {
    /// The registered model's name. Default `fraud`.
    pub name: String,
    /// The estimator: `type = "logistic"` or `"gbt"`, plus that estimator's parameters
    /// (checked by the trainer, which owns them). Default logistic regression.
    pub estimator: toml::Table,
    /// A score at or above this is decided positive (confusion counts, `/predict`).
    pub decision_threshold: f64,
    /// The share of (the most recent, for a time split) rows held out for evaluation.
    pub holdout_fraction: f64,
    /// `time` (the most recent rows are the holdout) or `stratified` (a seeded random
    /// holdout with the label rate of the whole).
    pub split: SplitKind,
    /// Seeds everything random in training: same data and seed, same artifact.
    pub seed: u64,
    /// First event time trained on (RFC 3339). Default: the start of history.
    pub from: Option<String>,
    /// First event time not trained on (RFC 3339). Default: the end of history.
    pub to: Option<String>,
    /// Train on only the most recent N labelled events of the window.
    pub last_events: Option<u64>,
}

/// How the holdout is chosen.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum SplitKind {
    #[default]
    Time,
    Stratified,
}

impl Default for ModelSettings {
    fn default() -> Self {
        let mut estimator = toml::Table::new();
        estimator.insert("type".into(), "logistic".into());
        Self {
            name: "fraud".into(),
            estimator,
            decision_threshold: 0.5,
            holdout_fraction: 0.2,
            split: SplitKind::Time,
            seed: 42,
            from: None,
            to: None,
            last_events: None,
        }
    }
}

impl ModelSettings {
    fn check(&self) -> Result<(), ConfigError> {
        check_range("model.decision_threshold", self.decision_threshold)?;
        if !(self.holdout_fraction > 0.0 && self.holdout_fraction < 1.0) {
            return Err(ConfigError::Invalid(format!(
                "model.holdout_fraction must be between 0 and 1 (exclusive), got {}",
                self.holdout_fraction
            )));
        }
        if self.last_events == Some(0) {
            return Err(ConfigError::Invalid(
                "model.last_events must be at least 1".into(),
            ));
        }
        for (key, value) in [("model.from", &self.from), ("model.to", &self.to)] {
            if let Some(text) = value {
                Timestamp::parse_rfc3339(text)
                    .map_err(|reason| ConfigError::Invalid(format!("{key}: {reason}")))?;
            }
        }
        Ok(())
    }
}

/// `[retrain]`: the closed loop. When `driftline serve` retrains by itself, on which data,
/// and what happens to the candidate. Manual retraining (`POST /v1/retrain`) works
/// whatever the triggers say.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct RetrainSettings {
    /// Whether the automatic triggers are armed at all.
    pub enabled: bool,
    /// Retrain when the live monitor's status is `drift` (a feature or the score drifts
    /// against the champion's reference) in this many consecutive evaluations, once they
    /// span a whole window of new predictions (0 = never on data drift).
    pub data_drift_windows: u32,
    /// Retrain when concept-drift detectors (ADWIN, Page-Hinkley, DDM) on the champion's
    /// labelled errors report drift.
    pub on_concept_drift: bool,
    /// How many of the three detectors must report drift within a minute of each other
    /// (1 to 3): one alone raises more false alarms on low error rates (DDM especially).
    pub concept_votes: u32,
    /// A detector's drift counts only when the champion's recent error rate exceeds both
    /// its holdout error rate and the errors it expected of those predictions (scores
    /// recalibrated by hour and decision) by at least this fraction (1.0: twice as many).
    /// Detectors also fire when errors fall, or swing with the time of day; neither calls
    /// for a new model.
    pub concept_min_error_increase: f64,
    /// Retrain every this many seconds whatever the drift (0 = no schedule).
    pub schedule_seconds: f64,
    /// After a retraining ends (promoted, rolled back or rejected), triggers wait this long.
    pub cooldown_seconds: f64,
    /// A drift-triggered retraining trains on events from this many seconds before the
    /// drift was detected onward (event time), so the new model learns the new world;
    /// scheduled and manual ones train on the most recent `max_events`.
    pub lookback_seconds: f64,
    /// At most this many of the most recent labelled events are trained on.
    pub max_events: u64,
    /// Labelled events the window must hold before fitting; the retrainer waits for them.
    pub min_labels: u64,
    /// A retraining still short of `min_labels` after this many seconds gives up.
    pub max_wait_seconds: f64,
    /// Roll a candidate that passed the gates out through `[serve.rollout]` (else it stays
    /// `challenger` for a person to start).
    pub rollout: bool,
}

impl Default for RetrainSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            data_drift_windows: 3,
            on_concept_drift: true,
            concept_votes: 2,
            concept_min_error_increase: 1.0,
            schedule_seconds: 0.0,
            cooldown_seconds: 300.0,
            lookback_seconds: 0.0,
            max_events: 50_000,
            min_labels: 2_000,
            max_wait_seconds: 600.0,
            rollout: true,
        }
    }
}

impl RetrainSettings {
    fn check(&self) -> Result<(), ConfigError> {
        for (key, value) in [
            ("retrain.schedule_seconds", self.schedule_seconds),
            ("retrain.cooldown_seconds", self.cooldown_seconds),
            ("retrain.lookback_seconds", self.lookback_seconds),
            ("retrain.max_wait_seconds", self.max_wait_seconds),
            (
                "retrain.concept_min_error_increase",
                self.concept_min_error_increase,
            ),
        ] {
            if !(value.is_finite() && value >= 0.0) {
                return Err(ConfigError::Invalid(format!(
                    "{key}: {value} must be a number of seconds >= 0"
                )));
            }
        }
        if !(1..=3).contains(&self.concept_votes) {
            return Err(ConfigError::Invalid(format!(
                "retrain.concept_votes: {} must be 1, 2 or 3 (of ADWIN, Page-Hinkley, DDM)",
                self.concept_votes
            )));
        }
        if self.min_labels < 2 || self.max_events < self.min_labels {
            return Err(ConfigError::Invalid(format!(
                "retrain.min_labels ({}) must be at least 2 and at most retrain.max_events ({})",
                self.min_labels, self.max_events
            )));
        }
        Ok(())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{0}")]
    Parse(String),
    #[error("environment variable {var}: {reason}")]
    Env { var: &'static str, reason: String },
    #[error("{0}")]
    Invalid(String),
}

type EnvSetter = fn(&mut Settings, &str) -> Result<(), String>;

/// Environment variables read on top of the file, in the order applied. Where two
/// names mean the same thing, the later one wins.
pub const ENV_VARS: &[(&str, EnvSetter)] = &[
    ("DRIFTLINE_DATA_DIR", |s, v| {
        s.data_dir = Some(v.into());
        Ok(())
    }),
    ("CANARY_SPLIT", |s, v| {
        s.serve.canary_split = parse_fraction(v)?;
        Ok(())
    }),
    ("SHADOW_ENABLED", |s, v| {
        s.serve.shadow_enabled = parse_bool(v)?;
        Ok(())
    }),
    ("KAFKA_BROKERS", |s, v| {
        s.kafka.brokers = non_empty(v)?;
        Ok(())
    }),
    ("REDPANDA_BROKERS", |s, v| {
        s.kafka.brokers = non_empty(v)?;
        Ok(())
    }),
    ("EVENT_TOPIC", |s, v| {
        s.kafka.topic = non_empty(v)?;
        Ok(())
    }),
    ("REDIS_HOST", |s, v| {
        s.redis.host = non_empty(v)?;
        Ok(())
    }),
    ("REDIS_PORT", |s, v| {
        s.redis.port = parse_port(v)?;
        Ok(())
    }),
    ("DRIFTLINE_OFFLINE_STORE", |s, v| {
        s.offline_store.backend = match v {
            "parquet" => OfflineBackend::Parquet,
            "postgres" => OfflineBackend::Postgres,
            other => return Err(format!("'{other}' is not an offline store (parquet or postgres)")),
        };
        Ok(())
    }),
    ("REDIS_PASSWORD", |s, v| {
        s.redis.password = Some(v.into());
        Ok(())
    }),
    ("DRIFTLINE_ONLINE_STORE", |s, v| {
        s.online_store.backend = match v.trim() {
            "embedded" => OnlineBackend::Embedded,
            "redis" => OnlineBackend::Redis,
            _ => return Err(format!("expected embedded or redis, got '{v}'")),
        };
        Ok(())
    }),
    ("POSTGRES_HOST", |s, v| {
        s.postgres.host = non_empty(v)?;
        Ok(())
    }),
    ("POSTGRES_PORT", |s, v| {
        s.postgres.port = parse_port(v)?;
        Ok(())
    }),
    ("POSTGRES_USER", |s, v| {
        s.postgres.user = non_empty(v)?;
        Ok(())
    }),
    ("POSTGRES_PASSWORD", |s, v| {
        s.postgres.password = v.into();
        Ok(())
    }),
    ("POSTGRES_DB", |s, v| {
        s.postgres.database = non_empty(v)?;
        Ok(())
    }),
    ("MINIO_ENDPOINT", |s, v| {
        s.object_store.endpoint = Some(non_empty(v)?);
        Ok(())
    }),
    ("MINIO_ROOT_USER", |s, v| {
        s.object_store.access_key = Some(non_empty(v)?);
        Ok(())
    }),
    ("MINIO_ACCESS_KEY", |s, v| {
        s.object_store.access_key = Some(non_empty(v)?);
        Ok(())
    }),
    ("MINIO_ROOT_PASSWORD", |s, v| {
        s.object_store.secret_key = Some(v.into());
        Ok(())
    }),
    ("MINIO_SECRET_KEY", |s, v| {
        s.object_store.secret_key = Some(v.into());
        Ok(())
    }),
    ("MINIO_BUCKET", |s, v| {
        s.object_store.bucket = non_empty(v)?;
        Ok(())
    }),
    ("DRIFT_REFERENCE_PATH", |s, v| {
        s.drift.reference_path = Some(non_empty(v)?.into());
        Ok(())
    }),
    ("DRIFT_CURRENT_PATH", |s, v| {
        s.drift.current_path = Some(non_empty(v)?.into());
        Ok(())
    }),
    ("DRIFT_P_VALUE_THRESHOLD", |s, v| {
        s.drift.p_value_threshold = parse_fraction(v)?;
        Ok(())
    }),
    ("DRIFT_FAIL_ON_DATASET", |s, v| {
        s.drift.fail_on_dataset = parse_bool(v)?;
        Ok(())
    }),
    ("DRIFTLINE_ADMIN_TOKEN", |s, v| {
        s.serve.admin_token = Some(non_empty(v)?);
        Ok(())
    }),
    ("MIN_ROC_AUC", |s, v| {
        s.gates.min_roc_auc = parse_fraction(v)?;
        Ok(())
    }),
    ("MIN_AVG_PRECISION", |s, v| {
        s.gates.min_avg_precision = parse_fraction(v)?;
        Ok(())
    }),
];

fn non_empty(v: &str) -> Result<String, String> {
    let v = v.trim();
    if v.is_empty() {
        Err("must not be empty".into())
    } else {
        Ok(v.to_string())
    }
}

fn parse_fraction(v: &str) -> Result<f64, String> {
    match v.trim().parse::<f64>() {
        Ok(x) if (0.0..=1.0).contains(&x) => Ok(x),
        _ => Err(format!("expected a number from 0 to 1, got '{v}'")),
    }
}

fn parse_port(v: &str) -> Result<u16, String> {
    v.trim()
        .parse::<u16>()
        .ok()
        .filter(|p| *p > 0)
        .ok_or_else(|| format!("expected a port number from 1 to 65535, got '{v}'"))
}

fn parse_bool(v: &str) -> Result<bool, String> {
    match v.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Ok(true),
        "0" | "false" | "no" | "off" | "" => Ok(false),
        _ => Err(format!("expected true or false, got '{v}'")),
    }
}

impl Settings {
    /// Parses `driftline.toml` text. Unknown keys are errors that name the key.
    pub fn from_toml(text: &str) -> Result<Self, ConfigError> {
        toml::from_str(text).map_err(|e| ConfigError::Parse(e.to_string()))
    }

    /// Applies the environment on top: `lookup` returns a variable's value if set.
    pub fn apply_env(&mut self, lookup: impl Fn(&str) -> Option<String>) -> Result<(), ConfigError> {
        for (var, set) in ENV_VARS {
            if let Some(value) = lookup(var) {
                set(self, &value).map_err(|reason| ConfigError::Env { var, reason })?;
            }
        }
        Ok(())
    }

    /// The data directory in effect.
    pub fn data_dir(&self) -> PathBuf {
        self.data_dir
            .clone()
            .unwrap_or_else(|| PathBuf::from("driftline-data"))
    }
}

/// Checked configuration: settings plus the contract and feature layout built from them.
#[derive(Debug, Clone)]
pub struct Config {
    pub settings: Settings,
    pub contract: Contract,
    pub features: FeatureSpec,
}

impl Config {
    pub fn check(settings: Settings) -> Result<Self, ConfigError> {
        let contract = Contract::new(&settings.contract).map_err(ConfigError::Invalid)?;
        let features = FeatureSpec::new(&settings.features, &contract).map_err(ConfigError::Invalid)?;
        check_range("serve.canary_split", settings.serve.canary_split)?;
        settings.drift.check(&features)?;
        check_range("gates.min_roc_auc", settings.gates.min_roc_auc)?;
        check_range("gates.min_avg_precision", settings.gates.min_avg_precision)?;
        check_range("gates.max_regression", settings.gates.max_regression)?;
        settings.model.check()?;
        settings.retrain.check()?;
        settings.registry.check()?;
        settings.object_store.check()?;
        settings.kafka.check()?;
        settings.redis.check(features.retention)?;
        settings
            .serve
            .rollout
            .check()
            .map_err(|e| ConfigError::Invalid(format!("serve.rollout.{e}")))?;
        if settings.ingest.batch_size == 0 || settings.ingest.checkpoint_every == 0 {
            return Err(ConfigError::Invalid(
                "ingest.batch_size and ingest.checkpoint_every must be at least 1".into(),
            ));
        }
        Ok(Self {
            settings,
            contract,
            features,
        })
    }

    /// The fraud demo with no file and no environment.
    pub fn fraud_default() -> Self {
        Self::check(Settings::default()).expect("the built-in defaults are valid")
    }
}

fn check_range(key: &str, value: f64) -> Result<(), ConfigError> {
    if (0.0..=1.0).contains(&value) {
        Ok(())
    } else {
        Err(ConfigError::Invalid(format!(
            "{key}: {value} must be from 0 to 1"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| map.get(k).cloned()
    }

    #[test]
    fn the_shipped_example_config_loads_and_equals_the_defaults() {
        let shipped = Settings::from_toml(include_str!("../../../driftline.toml")).unwrap();
        assert_eq!(shipped, Settings::default());
        Config::check(shipped).unwrap();
    }

    #[test]
    fn an_unknown_key_is_named_in_the_error() {
        let err = Settings::from_toml("[serve]\ncanary_splitt = 0.2\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("unknown field `canary_splitt`"), "{err}");
        let err = Settings::from_toml("[sevre]\n").unwrap_err().to_string();
        assert!(err.contains("unknown field `sevre`"), "{err}");
    }

    #[test]
    fn backends_are_chosen_by_key_and_checked() {
        let s = Settings::from_toml("[registry]\nbackend = \"postgres\"\n[object_store]\nbackend = \"s3\"\n")
            .unwrap();
        assert_eq!(s.registry.backend, RegistryBackend::Postgres);
        assert_eq!(s.object_store.backend, ArtifactBackend::S3);
        Config::check(s).unwrap();
        let err = Settings::from_toml("[registry]\nbackend = \"oracle\"\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("backend") && err.contains("unknown variant `oracle`"),
            "{err}"
        );
        let err = Settings::from_toml("[object_store]\nbakend = \"s3\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("unknown field `bakend`"), "{err}");
        for (toml, key) in [
            ("[registry]\npoll_interval_ms = 0\n", "registry.poll_interval_ms"),
            ("[registry]\npath = \"\"\n", "registry.path"),
            (
                "[object_store]\nbackend = \"s3\"\nbucket = \"\"\n",
                "object_store.bucket",
            ),
            (
                "[object_store]\nbackend = \"s3\"\naccess_key = \"a\"\n",
                "object_store.access_key",
            ),
            (
                "[object_store]\nbackend = \"s3\"\nendpoint = \"minio:9000\"\n",
                "object_store.endpoint",
            ),
        ] {
            let err = Config::check(Settings::from_toml(toml).unwrap())
                .unwrap_err()
                .to_string();
            assert!(err.contains(key), "{toml}: {err}");
        }
    }

    #[test]
    fn the_online_store_is_chosen_by_key_or_env_and_redis_settings_are_checked() {
        let s =
            Settings::from_toml("[online_store]\nbackend = \"redis\"\n[redis]\nttl_seconds = 0\n").unwrap();
        assert_eq!(s.online_store.backend, OnlineBackend::Redis);
        Config::check(s).unwrap();
        let mut s = Settings::default();
        assert_eq!(s.online_store.backend, OnlineBackend::Embedded);
        s.apply_env(env(&[
            ("DRIFTLINE_ONLINE_STORE", "redis"),
            ("REDIS_PASSWORD", "pw"),
        ]))
        .unwrap();
        assert_eq!(s.online_store.backend, OnlineBackend::Redis);
        assert_eq!(s.redis.password.as_deref(), Some("pw"));
        let err = s
            .apply_env(env(&[("DRIFTLINE_ONLINE_STORE", "memcached")]))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("DRIFTLINE_ONLINE_STORE") && err.contains("memcached"),
            "{err}"
        );
        let err = Settings::from_toml("[online_store]\nbackend = \"memcached\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("unknown variant `memcached`"), "{err}");
        for (toml, key) in [
            ("[redis]\ntimeout_ms = 0\n", "redis.timeout_ms"),
            ("[redis]\nttl_seconds = 86400\n", "redis.ttl_seconds"),
            ("[redis]\nhost = \"\"\n", "redis.host"),
        ] {
            let err = Config::check(Settings::from_toml(toml).unwrap())
                .unwrap_err()
                .to_string();
            assert!(err.contains(key), "{toml}: {err}");
        }
    }

    #[test]
    fn environment_overrides_the_file_and_the_file_overrides_defaults() {
        let mut s = Settings::from_toml("[serve]\ncanary_split = 0.2\nshadow_enabled = true\n").unwrap();
        assert_eq!(s.serve.canary_split, 0.2);
        s.apply_env(env(&[
            ("CANARY_SPLIT", "0.35"),
            ("REDIS_PORT", "6380"),
            ("POSTGRES_DB", "feast"),
        ]))
        .unwrap();
        assert_eq!(s.serve.canary_split, 0.35);
        assert!(
            s.serve.shadow_enabled,
            "the file's value stays when the env is silent"
        );
        assert_eq!(s.redis.port, 6380);
        assert_eq!(s.postgres.database, "feast");
    }

    #[test]
    fn every_reference_variable_is_read() {
        let vars = [
            ("CANARY_SPLIT", "0.5"),
            ("SHADOW_ENABLED", "true"),
            ("REDPANDA_BROKERS", "rp:9092"),
            ("EVENT_TOPIC", "tx"),
            ("REDIS_HOST", "cache"),
            ("REDIS_PORT", "7000"),
            ("POSTGRES_HOST", "db"),
            ("POSTGRES_PORT", "5433"),
            ("POSTGRES_USER", "feast"),
            ("POSTGRES_PASSWORD", "secret"),
            ("POSTGRES_DB", "offline"),
            ("MINIO_ENDPOINT", "http://minio:9000"),
            ("MINIO_ACCESS_KEY", "ak"),
            ("MINIO_SECRET_KEY", "sk"),
            ("MINIO_BUCKET", "models"),
            ("DRIFT_REFERENCE_PATH", "ref.csv"),
            ("DRIFT_CURRENT_PATH", "cur.csv"),
            ("MIN_ROC_AUC", "0.8"),
            ("MIN_AVG_PRECISION", "0.4"),
        ];
        let mut s = Settings::default();
        s.apply_env(env(&vars)).unwrap();
        assert_eq!(s.serve.canary_split, 0.5);
        assert!(s.serve.shadow_enabled);
        assert_eq!(s.kafka.brokers, "rp:9092");
        assert_eq!(s.kafka.topic, "tx");
        assert_eq!((s.redis.host.as_str(), s.redis.port), ("cache", 7000));
        assert_eq!(
            (
                s.postgres.host.as_str(),
                s.postgres.port,
                s.postgres.user.as_str()
            ),
            ("db", 5433, "feast")
        );
        assert_eq!(
            (s.postgres.password.as_str(), s.postgres.database.as_str()),
            ("secret", "offline")
        );
        assert_eq!(s.object_store.endpoint.as_deref(), Some("http://minio:9000"));
        assert_eq!(s.object_store.access_key.as_deref(), Some("ak"));
        assert_eq!(s.object_store.secret_key.as_deref(), Some("sk"));
        assert_eq!(s.object_store.bucket, "models");
        assert_eq!(s.drift.reference_path, Some(PathBuf::from("ref.csv")));
        assert_eq!(s.drift.current_path, Some(PathBuf::from("cur.csv")));
        assert_eq!((s.gates.min_roc_auc, s.gates.min_avg_precision), (0.8, 0.4));
    }

    #[test]
    fn bad_environment_values_name_the_variable_and_the_reason() {
        let mut s = Settings::default();
        let err = s
            .apply_env(env(&[("CANARY_SPLIT", "1.5")]))
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "environment variable CANARY_SPLIT: expected a number from 0 to 1, got '1.5'"
        );
        let err = s
            .apply_env(env(&[("REDIS_PORT", "http")]))
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("environment variable REDIS_PORT"), "{err}");
    }

    #[test]
    fn kafka_properties_pass_through_as_text_and_managed_keys_are_refused() {
        let s = Settings::from_toml(
            "[kafka.properties]\n\"security.protocol\" = \"SASL_SSL\"\n\"session.timeout.ms\" = 6000\n\"enable.ssl.certificate.verification\" = false\n",
        )
        .unwrap();
        assert_eq!(s.kafka.properties["security.protocol"], "SASL_SSL");
        assert_eq!(s.kafka.properties["session.timeout.ms"], "6000");
        assert_eq!(s.kafka.properties["enable.ssl.certificate.verification"], "false");
        Config::check(s).unwrap();
        let s = Settings::from_toml("[kafka.properties]\n\"enable.auto.commit\" = true\n").unwrap();
        let err = Config::check(s).unwrap_err().to_string();
        assert!(
            err.contains("enable.auto.commit") && err.contains("managed"),
            "{err}"
        );
    }

    #[test]
    fn out_of_range_file_values_are_rejected_naming_the_key() {
        let s = Settings::from_toml("[gates]\nmin_roc_auc = 3\n").unwrap();
        let err = Config::check(s).unwrap_err().to_string();
        assert!(err.starts_with("gates.min_roc_auc"), "{err}");
    }

    #[test]
    fn drift_column_overrides_and_monitor_settings_parse() {
        let s = Settings::from_toml(
            "[drift.columns.transaction_amount]\ntest = \"psi\"\nthreshold = 0.2\n\
             [drift.columns.score]\nthreshold = 0.05\n\
             [drift.monitor]\nwindow = 1000\nmin_window = 100\n",
        )
        .unwrap();
        let amount = &s.drift.columns["transaction_amount"];
        assert_eq!(
            (amount.test, amount.threshold),
            (Some(crate::drift::StatTest::Psi), Some(0.2))
        );
        assert_eq!(s.drift.columns["score"].test, None);
        assert_eq!((s.drift.monitor.window, s.drift.monitor.min_window), (1000, 100));
        assert_eq!(
            s.drift.monitor.evaluate_interval_seconds, 5.0,
            "unset keys keep their defaults"
        );
        Config::check(s).unwrap();
    }

    #[test]
    fn a_misspelt_drift_test_or_key_is_named_at_load() {
        let err = Settings::from_toml("[drift.columns.amount]\ntest = \"kss\"\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("unknown variant `kss`") && err.contains(r#"test = "kss""#),
            "{err}"
        );
        let err = Settings::from_toml("[drift.columns.amount]\ntreshold = 0.1\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("unknown field `treshold`"), "{err}");
        let err = Settings::from_toml("[drift.monitor]\nwindow_size = 10\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("unknown field `window_size`"), "{err}");
    }

    #[test]
    fn out_of_range_drift_settings_name_their_key() {
        let cases = [
            ("[drift.monitor]\nmin_window = 6000\n", "drift.monitor.min_window"),
            ("[drift.monitor]\nwindow = 0\n", "drift.monitor.window"),
            (
                "[drift.monitor]\nevaluate_interval_seconds = 0\n",
                "drift.monitor.evaluate_interval_seconds",
            ),
            (
                "[drift.monitor]\ndistance_threshold = -0.1\n",
                "drift.monitor.distance_threshold",
            ),
            (
                "[drift.monitor]\ndrift_share = 1.5\n",
                "drift.monitor.drift_share",
            ),
            (
                "[drift.columns.x]\ntest = \"ks\"\nthreshold = 2\n",
                "drift.columns.x.threshold",
            ),
            ("[drift.columns.x]\nthreshold = -1\n", "drift.columns.x.threshold"),
            (
                "[drift.columns.country]\ntest = \"wasserstein\"\n",
                "drift.columns.country.test",
            ),
            ("[drift]\np_value_threshold = 2\n", "drift.p_value_threshold"),
        ];
        for (toml, key) in cases {
            let err = Config::check(Settings::from_toml(toml).unwrap())
                .unwrap_err()
                .to_string();
            assert!(err.starts_with(key), "{toml}: {err}");
        }
        let ok = Settings::from_toml("[drift.columns.transaction_amount]\ntest = \"ks\"\n").unwrap();
        Config::check(ok).unwrap();
    }
}

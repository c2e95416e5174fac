//! Connection settings of the SQLite registry.
//!
//! Key decision: these are runtime knobs with safe defaults; the user-facing, serde side
//! is [`crate::config::RegistryConfig::Sqlite`], which builds them.

use std::time::Duration;

/// How a [`super::SqliteRegistry`] connects and watches for changes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqliteOptions {
    /// How often changes made by other processes are looked for (default 200 ms).
    pub poll_interval: Duration,
    /// How long a write waits for another writer's lock before failing (default 5 s).
    pub busy_timeout: Duration,
    /// The most connections the pool opens (default 4).
    pub max_connections: u32,
}

impl Default for SqliteOptions {
    fn default() -> Self {
        Self {
            poll_interval: Duration::from_millis(200),
            busy_timeout: Duration::from_secs(5),
            max_connections: 4,
        }
    }
}

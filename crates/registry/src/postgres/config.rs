//! Connection settings of the PostgreSQL registry.
//!
//! Key decision: the connection itself is sqlx's [`PgConnectOptions`] (so a URL, a
//! `.pgpass` file and TLS settings all work as sqlx documents them); the user-facing side
//! is `[postgres]` in `driftline.toml`, turned into these by
//! [`crate::config::RegistryConfig::from_settings`].

use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::PgConnectOptions;

use crate::error::{DbContext, RegistryError};

/// How a [`super::PostgresRegistry`] connects.
#[derive(Debug, Clone)]
pub struct PostgresOptions {
    /// The server, database and credentials.
    pub connect: PgConnectOptions,
    /// The most connections the pool opens (default 4), besides the one that listens.
    pub max_connections: u32,
    /// How long a query waits for a connection, including connecting (default 10 s).
    pub acquire_timeout: Duration,
}

impl PostgresOptions {
    /// Options with default pool settings for `connect`.
    pub fn new(connect: PgConnectOptions) -> Self {
        Self {
            connect: connect.application_name("driftline-registry"),
            max_connections: 4,
            acquire_timeout: Duration::from_secs(10),
        }
    }

    /// Options from a `postgres://user:password@host:port/database` URL.
    pub fn from_url(url: &str) -> Result<Self, RegistryError> {
        PgConnectOptions::from_str(url)
            .ctx("reading the PostgreSQL URL")
            .map(Self::new)
    }

    /// The same server and credentials, another database.
    pub fn with_database(mut self, database: &str) -> Self {
        self.connect = self.connect.database(database);
        self
    }
}

//! The embedded registry backend: one SQLite file, shared safely by several processes.
//!
//! Key decisions:
//! - Every change runs in a `BEGIN IMMEDIATE` transaction, which takes SQLite's write lock
//!   up front (waiting up to the busy timeout), so read-then-write sequences such as
//!   "next version number" never race another process and never fail with a stale
//!   snapshot. What a change does is [`crate::sql`]'s, shared with PostgreSQL; this module
//!   only answers its queries ([`Tx`]) in SQLite's SQL and types.
//! - Timestamps are RFC 3339 UTC text with microseconds: readable in the `sqlite3` shell,
//!   sortable as text, and exact on a round trip (values are truncated to microseconds
//!   before they are stored, so what `register` returns equals what `version` reads).
//! - Other processes' changes are noticed by polling `MAX(id)` of the audit log, only
//!   while someone holds a [`Registry::watch`] receiver.

mod config;
#[cfg(test)]
mod tests;

pub use config::SqliteOptions;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, SecondsFormat, Utc};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow, SqliteSynchronous,
};
use sqlx::{Row, Sqlite, Transaction};
use tokio::sync::watch;
use tokio::task::AbortHandle;

use crate::election::{self, Leadership};
use crate::error::{DbContext, RegistryError};
use crate::migrate::{self, Migration, MigrationTx, SCHEMA_MIGRATIONS_DDL};
use crate::registry::{Registry, Result};
use crate::sql::{self, NewAudit, TagMap, Tx, from_json, parse_stored, to_json, to_version};
use crate::types::{Alias, ArtifactRef, AuditAction, AuditEntry, ModelVersion, NewVersion, VersionStatus};

/// The SQLite schema, in order.
pub const MIGRATIONS: &[Migration] = &[Migration {
    version: 1,
    name: "init",
    sql: include_str!("migrations/0001_init.sql"),
}];

/// The columns of `model_versions`, in the order [`version_from_row`] reads them.
const VERSION_COLUMNS: &str = "model, version, created_at, status, artifact_key, \
     artifact_sha256, artifact_size, card, lineage";

/// The columns of `audit_log`, in the order [`audit_from_row`] reads them.
const AUDIT_COLUMNS: &str = "id, at, model, action, alias, from_version, to_version, reason, actor";

/// A registry in one SQLite file. Cheap to clone; clones share the pool and the watch.
#[derive(Debug, Clone)]
pub struct SqliteRegistry {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    pool: SqlitePool,
    changes: Arc<watch::Sender<i64>>,
    poller: AbortHandle,
    /// The database file, beside which election lock files live.
    path: std::path::PathBuf,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.poller.abort();
    }
}

impl SqliteRegistry {
    /// Opens (creating it and its directories if absent) the registry at `path`, in WAL
    /// mode with foreign keys on, applies pending migrations, and starts the change poll.
    ///
    /// Must be called within a Tokio runtime.
    pub async fn open(path: &Path, options: &SqliteOptions) -> Result<Self> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|source| RegistryError::Io {
                context: "creating the registry directory",
                path: dir.to_owned(),
                source,
            })?;
        }
        let connect = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(options.busy_timeout)
            .foreign_keys(true);
        let pool = connect_pool(connect, options).await?;
        run_migrations(&pool).await?;
        let latest = latest_audit_id(&pool).await?;
        let changes = Arc::new(watch::Sender::new(latest));
        let poller = tokio::spawn(poll_changes(
            pool.clone(),
            Arc::clone(&changes),
            options.poll_interval,
        ))
        .abort_handle();
        Ok(Self {
            inner: Arc::new(Inner {
                pool,
                changes,
                poller,
                path: path.to_owned(),
            }),
        })
    }

    /// The connection pool (for backend-specific tests and maintenance).
    pub fn pool(&self) -> &SqlitePool {
        &self.inner.pool
    }

    /// Begins a write transaction holding the database's write lock.
    async fn write(&self) -> Result<SqliteTx> {
        self.inner
            .pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .ctx("beginning a write transaction")
    }

    /// Begins a read transaction, so multi-query reads see one snapshot.
    async fn read(&self) -> Result<SqliteTx> {
        self.inner.pool.begin().await.ctx("beginning a read")
    }

    /// Commits a change and tells this handle's watchers about its audit entry `id`.
    async fn commit(&self, tx: SqliteTx, id: i64) -> Result<()> {
        tx.commit().await.ctx("committing")?;
        sql::raise(&self.inner.changes, id);
        Ok(())
    }
}

/// A transaction on the registry file.
type SqliteTx = Transaction<'static, Sqlite>;

/// Polls the audit log's latest id while anyone watches; errors are retried next tick.
async fn poll_changes(pool: SqlitePool, changes: Arc<watch::Sender<i64>>, interval: std::time::Duration) {
    let mut ticker = tokio::time::interval(interval.max(std::time::Duration::from_millis(1)));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        if changes.receiver_count() == 0 {
            continue;
        }
        if let Ok(id) = latest_audit_id(&pool).await {
            sql::raise(&changes, id);
        }
    }
}

/// The largest audit id, 0 for an empty log.
async fn latest_audit_id(pool: &SqlitePool) -> Result<i64> {
    let id: Option<i64> = sqlx::query_scalar("SELECT MAX(id) FROM audit_log")
        .fetch_one(pool)
        .await
        .ctx("reading the latest audit id")?;
    Ok(id.unwrap_or(0))
}

/// Connects the pool, retrying while SQLite answers "database is locked" without waiting.
///
/// Each connection first switches the file to WAL, which upgrades a read transaction to a
/// write. While another process holds the file's reserved lock (a second `driftline
/// train` creating the registry in a new directory, still in rollback mode), SQLite fails
/// that upgrade with `SQLITE_BUSY` at once, without calling the busy handler, since
/// waiting could deadlock. So the busy timeout does not cover it: this does, retrying for
/// as long as that timeout allows.
async fn connect_pool(connect: SqliteConnectOptions, options: &SqliteOptions) -> Result<SqlitePool> {
    let give_up = tokio::time::Instant::now() + options.busy_timeout;
    let mut pause = Duration::from_millis(5);
    loop {
        let attempt = SqlitePoolOptions::new()
            .max_connections(options.max_connections.max(1))
            .connect_with(connect.clone())
            .await;
        match attempt {
            Err(e) if is_busy(&e) && tokio::time::Instant::now() + pause < give_up => {
                tracing::debug!(error = %e, "registry database busy while connecting; retrying");
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_millis(200));
            }
            attempt => return attempt.ctx("opening the registry database"),
        }
    }
}

/// Whether SQLite failed with `SQLITE_BUSY` (any of its extended codes).
fn is_busy(error: &sqlx::Error) -> bool {
    const SQLITE_BUSY: i32 = 5;
    let code = match error {
        sqlx::Error::Database(e) => e.code().and_then(|c| c.parse::<i32>().ok()),
        _ => None,
    };
    code.is_some_and(|c| c & 0xff == SQLITE_BUSY)
}

/// Applies pending [`MIGRATIONS`] in one write transaction (so concurrent openers
/// migrate once).
async fn run_migrations(pool: &SqlitePool) -> Result<()> {
    let mut tx = pool
        .begin_with("BEGIN IMMEDIATE")
        .await
        .ctx("beginning migrations")?;
    migrate::run(&mut tx, MIGRATIONS).await?;
    tx.commit().await.ctx("committing migrations")
}

#[async_trait]
impl MigrationTx for SqliteTx {
    async fn applied(&mut self) -> Result<Vec<i64>, sqlx::Error> {
        sqlx::query(SCHEMA_MIGRATIONS_DDL).execute(&mut **self).await?;
        sqlx::query_scalar("SELECT version FROM schema_migrations")
            .fetch_all(&mut **self)
            .await
    }

    async fn apply(&mut self, m: &Migration, applied_at: &str) -> Result<(), sqlx::Error> {
        // Several statements, no parameters: sent as one simple query.
        sqlx::Executor::execute(&mut **self, m.sql).await?;
        sqlx::query("INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)")
            .bind(m.version)
            .bind(m.name)
            .bind(applied_at)
            .execute(&mut **self)
            .await?;
        Ok(())
    }
}

/// The stored spelling of a time.
fn timestamp(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// Reads a stored time.
fn parse_time(s: &str, what: &str) -> Result<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| RegistryError::corrupt(what, format!("timestamp {s:?}: {e}")))
}

/// The named column of a row, as a corrupt-row error if it does not decode.
fn col<'r, T>(row: &'r SqliteRow, name: &str) -> Result<T>
where
    T: sqlx::Decode<'r, Sqlite> + sqlx::Type<Sqlite>,
{
    row.try_get(name)
        .map_err(|e| RegistryError::corrupt(format!("column {name}"), e))
}

/// A `model_versions` row (without tags).
fn version_from_row(row: &SqliteRow) -> Result<ModelVersion> {
    let model: String = col(row, "model")?;
    let version = to_version(col(row, "version")?, "model_versions.version")?;
    let what = format!("version {version} of {model}");
    let size: i64 = col(row, "artifact_size")?;
    Ok(ModelVersion {
        created_at: parse_time(&col::<String>(row, "created_at")?, &what)?,
        status: parse_stored(&col::<String>(row, "status")?, &what, VersionStatus::parse)?,
        artifact: ArtifactRef {
            key: col(row, "artifact_key")?,
            sha256: col(row, "artifact_sha256")?,
            size: u64::try_from(size)
                .map_err(|_| RegistryError::corrupt(&what, format!("negative size {size}")))?,
        },
        card: from_json(&col::<String>(row, "card")?, &what)?,
        lineage: from_json(&col::<String>(row, "lineage")?, &what)?,
        tags: BTreeMap::new(),
        model,
        version,
    })
}

/// An `audit_log` row.
fn audit_from_row(row: &SqliteRow) -> Result<AuditEntry> {
    let id: i64 = col(row, "id")?;
    let what = format!("audit entry {id}");
    let version = |name: &str| -> Result<Option<u32>> {
        col::<Option<i64>>(row, name)?
            .map(|v| to_version(v, &what))
            .transpose()
    };
    Ok(AuditEntry {
        id,
        at: parse_time(&col::<String>(row, "at")?, &what)?,
        model: col(row, "model")?,
        action: parse_stored(&col::<String>(row, "action")?, &what, AuditAction::parse)?,
        alias: col(row, "alias")?,
        from_version: version("from_version")?,
        to_version: version("to_version")?,
        reason: col(row, "reason")?,
        actor: col(row, "actor")?,
    })
}

#[async_trait]
impl Tx for SqliteTx {
    async fn model_exists(&mut self, model: &str) -> Result<bool> {
        let found: Option<String> = sqlx::query_scalar("SELECT name FROM models WHERE name = $1")
            .bind(model)
            .fetch_optional(&mut **self)
            .await
            .ctx("looking up a model")?;
        Ok(found.is_some())
    }

    async fn next_version(&mut self, model: &str, at: DateTime<Utc>) -> Result<u32> {
        sqlx::query(
            "INSERT INTO models (name, latest_version, created_at) VALUES ($1, 0, $2) \
             ON CONFLICT (name) DO NOTHING",
        )
        .bind(model)
        .bind(timestamp(at))
        .execute(&mut **self)
        .await
        .ctx("creating a model")?;
        let v: i64 = sqlx::query_scalar(
            "UPDATE models SET latest_version = latest_version + 1 WHERE name = $1 \
             RETURNING latest_version",
        )
        .bind(model)
        .fetch_one(&mut **self)
        .await
        .ctx("numbering a version")?;
        to_version(v, "models.latest_version")
    }

    async fn insert_version(&mut self, v: &ModelVersion) -> Result<()> {
        sqlx::query(&format!(
            "INSERT INTO model_versions ({VERSION_COLUMNS}) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
        ))
        .bind(&v.model)
        .bind(i64::from(v.version))
        .bind(timestamp(v.created_at))
        .bind(v.status.as_str())
        .bind(&v.artifact.key)
        .bind(&v.artifact.sha256)
        .bind(v.artifact.size as i64)
        .bind(to_json(&v.card, "model card")?)
        .bind(to_json(&v.lineage, "lineage")?)
        .execute(&mut **self)
        .await
        .ctx("registering a version")?;
        Ok(())
    }

    async fn version_rows(&mut self, model: &str, version: Option<u32>) -> Result<Vec<ModelVersion>> {
        let sql = format!(
            "SELECT {VERSION_COLUMNS} FROM model_versions \
             WHERE model = $1 AND ($2 IS NULL OR version = $2) ORDER BY version"
        );
        let rows = sqlx::query(&sql)
            .bind(model)
            .bind(version.map(i64::from))
            .fetch_all(&mut **self)
            .await
            .ctx("reading versions")?;
        rows.iter().map(version_from_row).collect()
    }

    async fn tags(&mut self, model: &str, version: Option<u32>) -> Result<TagMap> {
        let rows = sqlx::query(
            "SELECT version, key, value FROM version_tags \
             WHERE model = $1 AND ($2 IS NULL OR version = $2)",
        )
        .bind(model)
        .bind(version.map(i64::from))
        .fetch_all(&mut **self)
        .await
        .ctx("reading tags")?;
        let mut tags = TagMap::new();
        for row in &rows {
            let v = to_version(col(row, "version")?, "version_tags.version")?;
            tags.entry(v)
                .or_default()
                .insert(col(row, "key")?, col(row, "value")?);
        }
        Ok(tags)
    }

    async fn set_tag(&mut self, model: &str, version: u32, key: &str, value: &str) -> Result<()> {
        sqlx::query(
            "INSERT INTO version_tags (model, version, key, value) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (model, version, key) DO UPDATE SET value = excluded.value",
        )
        .bind(model)
        .bind(i64::from(version))
        .bind(key)
        .bind(value)
        .execute(&mut **self)
        .await
        .ctx("setting a tag")?;
        Ok(())
    }

    async fn alias_target(&mut self, model: &str, alias: &str) -> Result<Option<u32>> {
        let v: Option<i64> = sqlx::query_scalar("SELECT version FROM aliases WHERE model = $1 AND name = $2")
            .bind(model)
            .bind(alias)
            .fetch_optional(&mut **self)
            .await
            .ctx("reading an alias")?;
        v.map(|v| to_version(v, "aliases.version")).transpose()
    }

    async fn upsert_alias(
        &mut self,
        model: &str,
        alias: &str,
        version: u32,
        at: DateTime<Utc>,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO aliases (model, name, version, updated_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (model, name) DO UPDATE SET version = excluded.version, \
             updated_at = excluded.updated_at",
        )
        .bind(model)
        .bind(alias)
        .bind(i64::from(version))
        .bind(timestamp(at))
        .execute(&mut **self)
        .await
        .ctx("setting an alias")?;
        Ok(())
    }

    async fn delete_alias(&mut self, model: &str, alias: &str) -> Result<()> {
        sqlx::query("DELETE FROM aliases WHERE model = $1 AND name = $2")
            .bind(model)
            .bind(alias)
            .execute(&mut **self)
            .await
            .ctx("removing an alias")?;
        Ok(())
    }

    async fn aliases(&mut self, model: &str) -> Result<Vec<Alias>> {
        let rows = sqlx::query(
            "SELECT model, name, version, updated_at FROM aliases WHERE model = $1 ORDER BY name",
        )
        .bind(model)
        .fetch_all(&mut **self)
        .await
        .ctx("listing aliases")?;
        rows.iter()
            .map(|row| {
                let name: String = col(row, "name")?;
                Ok(Alias {
                    model: col(row, "model")?,
                    version: to_version(col(row, "version")?, "aliases.version")?,
                    updated_at: parse_time(&col::<String>(row, "updated_at")?, &name)?,
                    name,
                })
            })
            .collect()
    }

    async fn models(&mut self) -> Result<Vec<String>> {
        sqlx::query_scalar("SELECT name FROM models ORDER BY name")
            .fetch_all(&mut **self)
            .await
            .ctx("listing models")
    }

    async fn append_audit(&mut self, entry: &NewAudit<'_>, at: DateTime<Utc>) -> Result<i64> {
        sqlx::query_scalar(
            "INSERT INTO audit_log (at, model, action, alias, from_version, to_version, reason, actor) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id",
        )
        .bind(timestamp(at))
        .bind(entry.model)
        .bind(entry.action.as_str())
        .bind(entry.alias)
        .bind(entry.from_version.map(i64::from))
        .bind(entry.to_version.map(i64::from))
        .bind(entry.reason)
        .bind(entry.actor)
        .fetch_one(&mut **self)
        .await
        .ctx("appending to the audit log")
    }

    async fn audit(&mut self, model: Option<&str>, limit: i64) -> Result<Vec<AuditEntry>> {
        let sql = format!(
            "SELECT {AUDIT_COLUMNS} FROM audit_log WHERE ($1 IS NULL OR model = $1) \
             ORDER BY id DESC LIMIT $2"
        );
        let rows = sqlx::query(&sql)
            .bind(model)
            .bind(limit)
            .fetch_all(&mut **self)
            .await
            .ctx("reading the audit log")?;
        rows.iter().map(audit_from_row).collect()
    }

    async fn alias_history(&mut self, model: &str, alias: &str) -> Result<Vec<AuditEntry>> {
        let sql =
            format!("SELECT {AUDIT_COLUMNS} FROM audit_log WHERE model = $1 AND alias = $2 ORDER BY id");
        let rows = sqlx::query(&sql)
            .bind(model)
            .bind(alias)
            .fetch_all(&mut **self)
            .await
            .ctx("reading an alias's history")?;
        rows.iter().map(audit_from_row).collect()
    }
}

#[async_trait]
impl Registry for SqliteRegistry {
    async fn register(&self, new: NewVersion) -> Result<ModelVersion> {
        let mut tx = self.write().await?;
        let (version, entry) = sql::register(&mut tx, new).await?;
        self.commit(tx, entry.id).await?;
        Ok(version)
    }

    async fn version(&self, model: &str, version: u32) -> Result<ModelVersion> {
        sql::version(&mut self.read().await?, model, version).await
    }

    async fn versions(&self, model: &str) -> Result<Vec<ModelVersion>> {
        sql::versions(&mut self.read().await?, model).await
    }

    async fn models(&self) -> Result<Vec<String>> {
        self.read().await?.models().await
    }

    async fn set_alias(
        &self,
        model: &str,
        alias: &str,
        version: u32,
        reason: &str,
        actor: &str,
    ) -> Result<AuditEntry> {
        let mut tx = self.write().await?;
        let entry = sql::set_alias(&mut tx, model, alias, version, reason, actor).await?;
        self.commit(tx, entry.id).await?;
        Ok(entry)
    }

    async fn remove_alias(&self, model: &str, alias: &str, reason: &str, actor: &str) -> Result<AuditEntry> {
        let mut tx = self.write().await?;
        let entry = sql::remove_alias(&mut tx, model, alias, reason, actor).await?;
        self.commit(tx, entry.id).await?;
        Ok(entry)
    }

    async fn aliases(&self, model: &str) -> Result<Vec<Alias>> {
        sql::aliases(&mut self.read().await?, model).await
    }

    async fn set_tag(
        &self,
        model: &str,
        version: u32,
        key: &str,
        value: &str,
        actor: &str,
    ) -> Result<AuditEntry> {
        let mut tx = self.write().await?;
        let entry = sql::set_tag(&mut tx, model, version, key, value, actor).await?;
        self.commit(tx, entry.id).await?;
        Ok(entry)
    }

    async fn promote(
        &self,
        model: &str,
        version: Option<u32>,
        reason: &str,
        actor: &str,
    ) -> Result<AuditEntry> {
        let mut tx = self.write().await?;
        let entry = sql::promote(&mut tx, model, version, reason, actor).await?;
        self.commit(tx, entry.id).await?;
        Ok(entry)
    }

    async fn rollback(&self, model: &str, reason: &str, actor: &str) -> Result<AuditEntry> {
        let mut tx = self.write().await?;
        let entry = sql::rollback(&mut tx, model, reason, actor).await?;
        self.commit(tx, entry.id).await?;
        Ok(entry)
    }

    async fn audit(&self, model: Option<&str>, limit: usize) -> Result<Vec<AuditEntry>> {
        sql::audit(&mut self.read().await?, model, limit).await
    }

    fn watch(&self) -> watch::Receiver<i64> {
        self.inner.changes.subscribe()
    }

    fn campaign(&self, role: &str) -> Leadership {
        let lock = election_lock_path(&self.inner.path, role);
        let role = role.to_string();
        Leadership::campaign(move |sender| election::campaign_with_file_lock(lock, role, sender))
    }
}

/// `registry.db.<role>.lock` beside the database, the role's unsafe characters replaced.
fn election_lock_path(database: &Path, role: &str) -> std::path::PathBuf {
    let safe: String = role
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let mut name = database.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".{safe}.lock"));
    database.with_file_name(name)
}

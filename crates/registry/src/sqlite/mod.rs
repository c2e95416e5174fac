//! The embedded registry backend: one SQLite file, shared safely by several processes.
//!
//! Key decisions:
//! - Every change runs in a `BEGIN IMMEDIATE` transaction, which takes SQLite's write lock
//!   up front (waiting up to the busy timeout), so read-then-write sequences such as
//!   "next version number" never race another process and never fail with a stale
//!   snapshot. Versions are numbered by a counter row in `models`, incremented with
//!   `UPDATE … RETURNING`, the same statement that serialises writers in Postgres.
//! - SQL uses `$n` placeholders, `ON CONFLICT … DO UPDATE` and `RETURNING`, all valid in
//!   Postgres too, so a Postgres backend differs only in its migrations.
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

use async_trait::async_trait;
use chrono::{DateTime, SecondsFormat, Utc};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow, SqliteSynchronous,
};
use sqlx::{Row, SqliteConnection, Transaction};
use tokio::sync::watch;
use tokio::task::AbortHandle;

use crate::error::{DbContext, RegistryError};
use crate::migrate::{self, Migration, SCHEMA_MIGRATIONS_DDL};
use crate::registry::{Registry, Result, is_champion_change, rollback_target};
use crate::types::{
    Alias, ArtifactRef, AuditAction, AuditEntry, CHALLENGER, CHAMPION, ModelVersion, NewVersion,
    VersionStatus, check_alias_name, check_model_name, check_name,
};

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
        let pool = SqlitePoolOptions::new()
            .max_connections(options.max_connections.max(1))
            .connect_with(connect)
            .await
            .ctx("opening the registry database")?;
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
            }),
        })
    }

    /// The connection pool (for backend-specific tests and maintenance).
    pub fn pool(&self) -> &SqlitePool {
        &self.inner.pool
    }

    /// Begins a write transaction holding the database's write lock.
    async fn write(&self) -> Result<Transaction<'static, sqlx::Sqlite>> {
        self.inner
            .pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .ctx("beginning a write transaction")
    }

    /// Begins a read transaction, so multi-query reads see one snapshot.
    async fn read(&self) -> Result<Transaction<'static, sqlx::Sqlite>> {
        self.inner.pool.begin().await.ctx("beginning a read")
    }

    /// Commits `tx` and tells watchers about audit entry `id`.
    /// Appends the change's audit entry, commits, and tells watchers: every write ends so.
    async fn commit_with(
        &self,
        mut tx: Transaction<'static, sqlx::Sqlite>,
        entry: NewAudit<'_>,
    ) -> Result<AuditEntry> {
        let audit = append_audit(&mut tx, entry).await?;
        tx.commit().await.ctx("committing")?;
        notify(&self.inner.changes, audit.id);
        Ok(audit)
    }
}

/// Raises the watched id to `id` (never lowers it: local and polled news may interleave).
fn notify(changes: &watch::Sender<i64>, id: i64) {
    changes.send_if_modified(|latest| {
        let newer = id > *latest;
        if newer {
            *latest = id;
        }
        newer
    });
}

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
            notify(&changes, id);
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

/// Applies pending [`MIGRATIONS`] in one write transaction (so concurrent openers
/// migrate once).
async fn run_migrations(pool: &SqlitePool) -> Result<()> {
    let mut tx = pool
        .begin_with("BEGIN IMMEDIATE")
        .await
        .ctx("beginning migrations")?;
    sqlx::query(SCHEMA_MIGRATIONS_DDL)
        .execute(&mut *tx)
        .await
        .ctx("creating schema_migrations")?;
    let applied: Vec<i64> = sqlx::query_scalar("SELECT version FROM schema_migrations")
        .fetch_all(&mut *tx)
        .await
        .ctx("reading schema_migrations")?;
    for m in migrate::pending(MIGRATIONS, &applied)? {
        let failed = |e: sqlx::Error| RegistryError::Migration {
            version: m.version,
            name: m.name.into(),
            reason: e.to_string(),
        };
        sqlx::raw_sql(m.sql).execute(&mut *tx).await.map_err(failed)?;
        sqlx::query("INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)")
            .bind(m.version)
            .bind(m.name)
            .bind(timestamp(now()))
            .execute(&mut *tx)
            .await
            .map_err(failed)?;
    }
    tx.commit().await.ctx("committing migrations")
}

/// The current time, truncated to the microseconds that are stored.
fn now() -> DateTime<Utc> {
    let t = Utc::now();
    DateTime::from_timestamp_micros(t.timestamp_micros()).unwrap_or(t)
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

/// A stored version number as `u32`.
fn to_version(v: i64, what: &str) -> Result<u32> {
    u32::try_from(v).map_err(|_| RegistryError::corrupt(what, format!("version {v} out of range")))
}

/// The named column of a row, as a corrupt-row error if it does not decode.
fn col<'r, T>(row: &'r SqliteRow, name: &str) -> Result<T>
where
    T: sqlx::Decode<'r, sqlx::Sqlite> + sqlx::Type<sqlx::Sqlite>,
{
    row.try_get(name)
        .map_err(|e| RegistryError::corrupt(format!("column {name}"), e))
}

/// Parses a JSON column.
fn json<T: serde::de::DeserializeOwned>(text: &str, what: &str) -> Result<T> {
    serde_json::from_str(text).map_err(|e| RegistryError::corrupt(what, e))
}

/// A `model_versions` row (without tags).
fn version_from_row(row: &SqliteRow) -> Result<ModelVersion> {
    let model: String = col(row, "model")?;
    let version = to_version(col(row, "version")?, "model_versions.version")?;
    let what = format!("version {version} of {model}");
    let status: String = col(row, "status")?;
    let size: i64 = col(row, "artifact_size")?;
    Ok(ModelVersion {
        created_at: parse_time(&col::<String>(row, "created_at")?, &what)?,
        status: VersionStatus::parse(&status)
            .ok_or_else(|| RegistryError::corrupt(&what, format!("unknown status {status:?}")))?,
        artifact: ArtifactRef {
            key: col(row, "artifact_key")?,
            sha256: col(row, "artifact_sha256")?,
            size: u64::try_from(size)
                .map_err(|_| RegistryError::corrupt(&what, format!("negative size {size}")))?,
        },
        card: json(&col::<String>(row, "card")?, &what)?,
        lineage: json(&col::<String>(row, "lineage")?, &what)?,
        tags: BTreeMap::new(),
        model,
        version,
    })
}

/// An `audit_log` row.
fn audit_from_row(row: &SqliteRow) -> Result<AuditEntry> {
    let id: i64 = col(row, "id")?;
    let what = format!("audit entry {id}");
    let action: String = col(row, "action")?;
    let version = |name: &str| -> Result<Option<u32>> {
        col::<Option<i64>>(row, name)?
            .map(|v| to_version(v, &what))
            .transpose()
    };
    Ok(AuditEntry {
        id,
        at: parse_time(&col::<String>(row, "at")?, &what)?,
        model: col(row, "model")?,
        action: AuditAction::parse(&action)
            .ok_or_else(|| RegistryError::corrupt(&what, format!("unknown action {action:?}")))?,
        alias: col(row, "alias")?,
        from_version: version("from_version")?,
        to_version: version("to_version")?,
        reason: col(row, "reason")?,
        actor: col(row, "actor")?,
    })
}

/// An audit entry to append.
struct NewAudit<'a> {
    model: &'a str,
    action: AuditAction,
    alias: Option<&'a str>,
    from_version: Option<u32>,
    to_version: Option<u32>,
    reason: &'a str,
    actor: &'a str,
}

/// Appends an audit entry and returns it with its id.
async fn append_audit(conn: &mut SqliteConnection, entry: NewAudit<'_>) -> Result<AuditEntry> {
    let at = now();
    let id: i64 = sqlx::query_scalar(
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
    .fetch_one(&mut *conn)
    .await
    .ctx("appending to the audit log")?;
    Ok(AuditEntry {
        id,
        at,
        model: entry.model.to_owned(),
        action: entry.action,
        alias: entry.alias.map(str::to_owned),
        from_version: entry.from_version,
        to_version: entry.to_version,
        reason: entry.reason.to_owned(),
        actor: entry.actor.to_owned(),
    })
}

/// Fails with [`RegistryError::ModelNotFound`] unless the model has a version.
async fn require_model(conn: &mut SqliteConnection, model: &str) -> Result<()> {
    check_model_name(model)?;
    let found: Option<String> = sqlx::query_scalar("SELECT name FROM models WHERE name = $1")
        .bind(model)
        .fetch_optional(&mut *conn)
        .await
        .ctx("looking up a model")?;
    match found {
        Some(_) => Ok(()),
        None => Err(RegistryError::ModelNotFound {
            model: model.to_owned(),
        }),
    }
}

/// One version with its tags, or the not-found error naming the model or the version.
async fn fetch_version(conn: &mut SqliteConnection, model: &str, version: u32) -> Result<ModelVersion> {
    require_model(conn, model).await?;
    let sql = format!("SELECT {VERSION_COLUMNS} FROM model_versions WHERE model = $1 AND version = $2");
    let row = sqlx::query(&sql)
        .bind(model)
        .bind(i64::from(version))
        .fetch_optional(&mut *conn)
        .await
        .ctx("reading a version")?
        .ok_or_else(|| RegistryError::VersionNotFound {
            model: model.to_owned(),
            version,
        })?;
    let mut found = version_from_row(&row)?;
    let mut tags = fetch_tags(conn, model, Some(version)).await?;
    found.tags = tags.remove(&version).unwrap_or_default();
    Ok(found)
}

/// The tags of one version or of all versions of a model, by version.
async fn fetch_tags(
    conn: &mut SqliteConnection,
    model: &str,
    version: Option<u32>,
) -> Result<BTreeMap<u32, BTreeMap<String, String>>> {
    let rows = sqlx::query(
        "SELECT version, key, value FROM version_tags \
         WHERE model = $1 AND ($2 IS NULL OR version = $2)",
    )
    .bind(model)
    .bind(version.map(i64::from))
    .fetch_all(&mut *conn)
    .await
    .ctx("reading tags")?;
    let mut tags: BTreeMap<u32, BTreeMap<String, String>> = BTreeMap::new();
    for row in &rows {
        let v = to_version(col(row, "version")?, "version_tags.version")?;
        tags.entry(v)
            .or_default()
            .insert(col(row, "key")?, col(row, "value")?);
    }
    Ok(tags)
}

/// A version that may receive an alias: it exists and was not rejected.
async fn aliasable(conn: &mut SqliteConnection, model: &str, version: u32) -> Result<()> {
    let found = fetch_version(conn, model, version).await?;
    match found.status {
        VersionStatus::Registered => Ok(()),
        VersionStatus::Rejected => Err(RegistryError::RejectedVersion {
            model: model.to_owned(),
            version,
        }),
    }
}

/// The version an alias points at, if it is set.
async fn alias_target(conn: &mut SqliteConnection, model: &str, alias: &str) -> Result<Option<u32>> {
    let v: Option<i64> = sqlx::query_scalar("SELECT version FROM aliases WHERE model = $1 AND name = $2")
        .bind(model)
        .bind(alias)
        .fetch_optional(&mut *conn)
        .await
        .ctx("reading an alias")?;
    v.map(|v| to_version(v, "aliases.version")).transpose()
}

/// Creates or moves an alias.
async fn upsert_alias(conn: &mut SqliteConnection, model: &str, alias: &str, version: u32) -> Result<()> {
    sqlx::query(
        "INSERT INTO aliases (model, name, version, updated_at) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (model, name) DO UPDATE SET version = excluded.version, \
         updated_at = excluded.updated_at",
    )
    .bind(model)
    .bind(alias)
    .bind(i64::from(version))
    .bind(timestamp(now()))
    .execute(&mut *conn)
    .await
    .ctx("setting an alias")?;
    Ok(())
}

/// Deletes an alias (which must exist).
async fn delete_alias(conn: &mut SqliteConnection, model: &str, alias: &str) -> Result<()> {
    sqlx::query("DELETE FROM aliases WHERE model = $1 AND name = $2")
        .bind(model)
        .bind(alias)
        .execute(&mut *conn)
        .await
        .ctx("removing an alias")?;
    Ok(())
}

/// The model's champion changes, oldest first.
async fn champion_history(conn: &mut SqliteConnection, model: &str) -> Result<Vec<AuditEntry>> {
    let sql = format!("SELECT {AUDIT_COLUMNS} FROM audit_log WHERE model = $1 AND alias = $2 ORDER BY id");
    let rows = sqlx::query(&sql)
        .bind(model)
        .bind(CHAMPION)
        .fetch_all(&mut *conn)
        .await
        .ctx("reading the champion's history")?;
    let entries = rows.iter().map(audit_from_row).collect::<Result<Vec<_>>>()?;
    Ok(entries.into_iter().filter(is_champion_change).collect())
}

/// Gives a new version of `model` its number: creates the model's counter row if
/// needed, then increments it. Runs under the write lock.
async fn next_version(conn: &mut SqliteConnection, model: &str, at: &str) -> Result<u32> {
    sqlx::query(
        "INSERT INTO models (name, latest_version, created_at) VALUES ($1, 0, $2) \
         ON CONFLICT (name) DO NOTHING",
    )
    .bind(model)
    .bind(at)
    .execute(&mut *conn)
    .await
    .ctx("creating a model")?;
    let v: i64 = sqlx::query_scalar(
        "UPDATE models SET latest_version = latest_version + 1 WHERE name = $1 \
         RETURNING latest_version",
    )
    .bind(model)
    .fetch_one(&mut *conn)
    .await
    .ctx("numbering a version")?;
    to_version(v, "models.latest_version")
}

/// Checks what `register` is given, before any write.
fn check_new_version(new: &NewVersion) -> Result<()> {
    check_model_name(&new.model)?;
    new.artifact.check()?;
    if i64::try_from(new.artifact.size).is_err() {
        return Err(RegistryError::InvalidArtifact {
            reason: format!("size {} is too large", new.artifact.size),
        });
    }
    new.tags.keys().try_for_each(|k| check_name("tag key", k))
}

/// Serialises a JSON column of a new version.
fn to_json<T: serde::Serialize>(value: &T, what: &str) -> Result<String> {
    serde_json::to_string(value).map_err(|e| RegistryError::corrupt(what, e))
}

#[async_trait]
impl Registry for SqliteRegistry {
    async fn register(&self, new: NewVersion) -> Result<ModelVersion> {
        check_new_version(&new)?;
        let card = to_json(&new.card, "model card")?;
        let lineage = to_json(&new.lineage, "lineage")?;
        let created_at = now();
        let at = timestamp(created_at);
        let mut tx = self.write().await?;
        let version = next_version(&mut tx, &new.model, &at).await?;
        sqlx::query(&format!(
            "INSERT INTO model_versions ({VERSION_COLUMNS}) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
        ))
        .bind(&new.model)
        .bind(i64::from(version))
        .bind(&at)
        .bind(new.status.as_str())
        .bind(&new.artifact.key)
        .bind(&new.artifact.sha256)
        .bind(new.artifact.size as i64)
        .bind(card)
        .bind(lineage)
        .execute(&mut *tx)
        .await
        .ctx("registering a version")?;
        for (key, value) in &new.tags {
            insert_tag(&mut tx, &new.model, version, key, value).await?;
        }
        let action = match new.status {
            VersionStatus::Registered => AuditAction::Registered,
            VersionStatus::Rejected => AuditAction::Rejected,
        };
        let entry = NewAudit {
            model: &new.model,
            action,
            alias: None,
            from_version: None,
            to_version: Some(version),
            reason: &new.reason,
            actor: &new.actor,
        };
        self.commit_with(tx, entry).await?;
        Ok(ModelVersion {
            model: new.model,
            version,
            created_at,
            status: new.status,
            artifact: new.artifact,
            card: new.card,
            lineage: new.lineage,
            tags: new.tags,
        })
    }

    async fn version(&self, model: &str, version: u32) -> Result<ModelVersion> {
        let mut tx = self.read().await?;
        fetch_version(&mut tx, model, version).await
    }

    async fn versions(&self, model: &str) -> Result<Vec<ModelVersion>> {
        let mut tx = self.read().await?;
        require_model(&mut tx, model).await?;
        let sql = format!("SELECT {VERSION_COLUMNS} FROM model_versions WHERE model = $1 ORDER BY version");
        let rows = sqlx::query(&sql)
            .bind(model)
            .fetch_all(&mut *tx)
            .await
            .ctx("listing versions")?;
        let mut tags = fetch_tags(&mut tx, model, None).await?;
        rows.iter()
            .map(|row| {
                let mut v = version_from_row(row)?;
                v.tags = tags.remove(&v.version).unwrap_or_default();
                Ok(v)
            })
            .collect()
    }

    async fn models(&self) -> Result<Vec<String>> {
        sqlx::query_scalar("SELECT name FROM models ORDER BY name")
            .fetch_all(&self.inner.pool)
            .await
            .ctx("listing models")
    }

    async fn set_alias(
        &self,
        model: &str,
        alias: &str,
        version: u32,
        reason: &str,
        actor: &str,
    ) -> Result<AuditEntry> {
        check_model_name(model)?;
        check_alias_name(alias)?;
        let mut tx = self.write().await?;
        aliasable(&mut tx, model, version).await?;
        let previous = alias_target(&mut tx, model, alias).await?;
        upsert_alias(&mut tx, model, alias, version).await?;
        let entry = NewAudit {
            model,
            action: AuditAction::AliasSet,
            alias: Some(alias),
            from_version: previous,
            to_version: Some(version),
            reason,
            actor,
        };
        self.commit_with(tx, entry).await
    }

    async fn remove_alias(&self, model: &str, alias: &str, reason: &str, actor: &str) -> Result<AuditEntry> {
        check_alias_name(alias)?;
        let mut tx = self.write().await?;
        require_model(&mut tx, model).await?;
        let previous =
            alias_target(&mut tx, model, alias)
                .await?
                .ok_or_else(|| RegistryError::AliasNotFound {
                    model: model.to_owned(),
                    alias: alias.to_owned(),
                })?;
        delete_alias(&mut tx, model, alias).await?;
        let entry = NewAudit {
            model,
            action: AuditAction::AliasRemoved,
            alias: Some(alias),
            from_version: Some(previous),
            to_version: None,
            reason,
            actor,
        };
        self.commit_with(tx, entry).await
    }

    async fn aliases(&self, model: &str) -> Result<Vec<Alias>> {
        let mut tx = self.read().await?;
        require_model(&mut tx, model).await?;
        let rows = sqlx::query(
            "SELECT model, name, version, updated_at FROM aliases WHERE model = $1 ORDER BY name",
        )
        .bind(model)
        .fetch_all(&mut *tx)
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

    async fn set_tag(
        &self,
        model: &str,
        version: u32,
        key: &str,
        value: &str,
        actor: &str,
    ) -> Result<AuditEntry> {
        check_name("tag key", key)?;
        let mut tx = self.write().await?;
        fetch_version(&mut tx, model, version).await?;
        insert_tag(&mut tx, model, version, key, value).await?;
        let reason = format!("{key}={value}");
        let entry = NewAudit {
            model,
            action: AuditAction::TagSet,
            alias: None,
            from_version: None,
            to_version: Some(version),
            reason: &reason,
            actor,
        };
        self.commit_with(tx, entry).await
    }

    async fn promote(
        &self,
        model: &str,
        version: Option<u32>,
        reason: &str,
        actor: &str,
    ) -> Result<AuditEntry> {
        let mut tx = self.write().await?;
        require_model(&mut tx, model).await?;
        let challenger = alias_target(&mut tx, model, CHALLENGER).await?;
        let target = version
            .or(challenger)
            .ok_or_else(|| RegistryError::NoChallenger {
                model: model.to_owned(),
            })?;
        aliasable(&mut tx, model, target).await?;
        let previous = alias_target(&mut tx, model, CHAMPION).await?;
        if challenger == Some(target) {
            delete_alias(&mut tx, model, CHALLENGER).await?;
            let removal_reason = format!("promoted to champion: {reason}");
            let removal = NewAudit {
                model,
                action: AuditAction::AliasRemoved,
                alias: Some(CHALLENGER),
                from_version: Some(target),
                to_version: None,
                reason: &removal_reason,
                actor,
            };
            append_audit(&mut tx, removal).await?;
        }
        upsert_alias(&mut tx, model, CHAMPION, target).await?;
        let entry = NewAudit {
            model,
            action: AuditAction::Promoted,
            alias: Some(CHAMPION),
            from_version: previous,
            to_version: Some(target),
            reason,
            actor,
        };
        self.commit_with(tx, entry).await
    }

    async fn rollback(&self, model: &str, reason: &str, actor: &str) -> Result<AuditEntry> {
        let mut tx = self.write().await?;
        require_model(&mut tx, model).await?;
        let current = alias_target(&mut tx, model, CHAMPION).await?;
        let history = champion_history(&mut tx, model).await?;
        let target = rollback_target(&history, current).ok_or_else(|| RegistryError::NothingToRollBack {
            model: model.to_owned(),
        })?;
        aliasable(&mut tx, model, target).await?;
        upsert_alias(&mut tx, model, CHAMPION, target).await?;
        let entry = NewAudit {
            model,
            action: AuditAction::RolledBack,
            alias: Some(CHAMPION),
            from_version: current,
            to_version: Some(target),
            reason,
            actor,
        };
        self.commit_with(tx, entry).await
    }

    async fn audit(&self, model: Option<&str>, limit: usize) -> Result<Vec<AuditEntry>> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let sql = format!(
            "SELECT {AUDIT_COLUMNS} FROM audit_log WHERE ($1 IS NULL OR model = $1) \
             ORDER BY id DESC LIMIT $2"
        );
        let rows = sqlx::query(&sql)
            .bind(model)
            .bind(limit)
            .fetch_all(&self.inner.pool)
            .await
            .ctx("reading the audit log")?;
        rows.iter().map(audit_from_row).collect()
    }

    fn watch(&self) -> watch::Receiver<i64> {
        self.inner.changes.subscribe()
    }
}

/// Sets a tag of a version (insert or overwrite).
async fn insert_tag(
    conn: &mut SqliteConnection,
    model: &str,
    version: u32,
    key: &str,
    value: &str,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO version_tags (model, version, key, value) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (model, version, key) DO UPDATE SET value = excluded.value",
    )
    .bind(model)
    .bind(i64::from(version))
    .bind(key)
    .bind(value)
    .execute(&mut *conn)
    .await
    .ctx("setting a tag")?;
    Ok(())
}

//! The scale-out registry backend: PostgreSQL, shared by every replica and process.
//!
//! Key decisions:
//! - What a change does is [`crate::sql`]'s, shared with SQLite; this module answers its
//!   queries ([`Tx`]) in PostgreSQL's SQL and native types (TIMESTAMPTZ, JSON, identity).
//! - Writers serialise per model: every write transaction first takes a
//!   transaction-scoped advisory lock on the model's name, so versions number 1, 2, 3…
//!   without gaps and read-then-write changes (promote, rollback) never interleave, while
//!   changes to different models run in parallel. Reads run in a read-only
//!   `REPEATABLE READ` transaction, so a multi-query read sees one snapshot.
//! - [`Registry::watch`] is pushed, not polled: each change calls `pg_notify` with its
//!   audit id inside its transaction, and a listener task ([`listen`]) relays it, so other
//!   processes see an alias change within milliseconds of its commit.
//! - Migrations run through the shared runner under an advisory lock, so replicas that
//!   start together migrate once.

mod config;
mod listen;
#[cfg(test)]
mod tests;

pub use config::PostgresOptions;

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::postgres::{PgPool, PgPoolOptions, PgRow};
use sqlx::{Postgres, Row, Transaction};
use tokio::sync::watch;
use tokio::task::AbortHandle;

use crate::election::{self, Leadership};
use crate::error::{DbContext, RegistryError};
use crate::migrate::{self, Migration, MigrationTx, SCHEMA_MIGRATIONS_DDL};
use crate::registry::{Registry, Result};
use crate::sql::{self, NewAudit, TagMap, Tx, from_json, parse_stored, to_json, to_version};
use crate::types::{Alias, ArtifactRef, AuditAction, AuditEntry, ModelVersion, NewVersion, VersionStatus};

/// The PostgreSQL schema, in order.
pub const MIGRATIONS: &[Migration] = &[Migration {
    version: 1,
    name: "init",
    sql: include_str!("migrations/0001_init.sql"),
}];

/// The first key of the registry's per-model advisory locks (the second is the name's
/// hash), so they cannot collide with other users of advisory locks in the database.
const MODEL_LOCK_CLASS: i32 = 0x4452_4c52; // "DRLR"
/// The first key of the controller-election advisory locks (the second is the role's hash).
const CONTROLLER_LOCK_CLASS: i32 = 0x4452_4c43; // "DRLC"
/// The advisory lock held while migrating.
const MIGRATION_LOCK: i64 = 0x4452_4c52_4d49_4752; // "DRLRMIGR"

/// The columns of `model_versions` as written.
const VERSION_COLUMNS: &str = "model, version, created_at, status, artifact_key, \
     artifact_sha256, artifact_size, card, lineage";
/// The columns of `model_versions` as [`version_from_row`] reads them (JSON as text).
const VERSION_SELECT: &str = "model, version, created_at, status, artifact_key, \
     artifact_sha256, artifact_size, card::text AS card, lineage::text AS lineage";
/// The columns of `audit_log`, as [`audit_from_row`] reads them.
const AUDIT_COLUMNS: &str = "id, at, model, action, alias, from_version, to_version, reason, actor";

/// A registry in a PostgreSQL database. Cheap to clone; clones share the pool and watch.
#[derive(Debug, Clone)]
pub struct PostgresRegistry {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    pool: PgPool,
    changes: Arc<watch::Sender<i64>>,
    listener: AbortHandle,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.listener.abort();
    }
}

/// A transaction on the registry database.
type PgTx = Transaction<'static, Postgres>;

impl PostgresRegistry {
    /// Connects, applies pending migrations and starts listening for changes.
    ///
    /// Must be called within a Tokio runtime.
    pub async fn open(options: &PostgresOptions) -> Result<Self> {
        let pool = PgPoolOptions::new()
            .max_connections(options.max_connections.max(1))
            .acquire_timeout(options.acquire_timeout)
            .connect_with(options.connect.clone())
            .await
            .ctx("connecting to the registry database")?;
        run_migrations(&pool).await?;
        let latest = latest_audit_id(&pool).await?;
        let changes = Arc::new(watch::Sender::new(latest));
        let listener = tokio::spawn(listen::relay_changes(pool.clone(), Arc::clone(&changes))).abort_handle();
        Ok(Self {
            inner: Arc::new(Inner {
                pool,
                changes,
                listener,
            }),
        })
    }

    /// The connection pool (for backend-specific tests and maintenance).
    pub fn pool(&self) -> &PgPool {
        &self.inner.pool
    }

    /// Begins a write transaction holding `model`'s lock.
    async fn write(&self, model: &str) -> Result<PgTx> {
        let mut tx = self
            .inner
            .pool
            .begin()
            .await
            .ctx("beginning a write transaction")?;
        sqlx::query("SELECT pg_advisory_xact_lock($1, hashtext($2))")
            .bind(MODEL_LOCK_CLASS)
            .bind(model)
            .execute(&mut *tx)
            .await
            .ctx("locking the model")?;
        Ok(tx)
    }

    /// Begins a read-only transaction on one snapshot.
    async fn read(&self) -> Result<PgTx> {
        self.inner
            .pool
            .begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            .await
            .ctx("beginning a read")
    }

    /// Notifies every listener of audit entry `id` as part of the change, commits, and
    /// tells this handle's watchers at once.
    async fn commit(&self, mut tx: PgTx, id: i64) -> Result<()> {
        sqlx::query("SELECT pg_notify($1, $2)")
            .bind(listen::CHANNEL)
            .bind(id.to_string())
            .execute(&mut *tx)
            .await
            .ctx("notifying the change")?;
        tx.commit().await.ctx("committing")?;
        sql::raise(&self.inner.changes, id);
        Ok(())
    }
}

/// The largest audit id, 0 for an empty log.
async fn latest_audit_id(pool: &PgPool) -> Result<i64> {
    let id: Option<i64> = sqlx::query_scalar("SELECT MAX(id) FROM audit_log")
        .fetch_one(pool)
        .await
        .ctx("reading the latest audit id")?;
    Ok(id.unwrap_or(0))
}

/// Applies pending [`MIGRATIONS`] in one transaction under the migration lock.
async fn run_migrations(pool: &PgPool) -> Result<()> {
    let mut tx = pool.begin().await.ctx("beginning migrations")?;
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(MIGRATION_LOCK)
        .execute(&mut *tx)
        .await
        .ctx("taking the migration lock")?;
    migrate::run(&mut tx, MIGRATIONS).await?;
    tx.commit().await.ctx("committing migrations")
}

#[async_trait]
impl MigrationTx for PgTx {
    async fn applied(&mut self) -> Result<Vec<i64>, sqlx::Error> {
        // `IF NOT EXISTS` on an existing table raises a NOTICE, which sqlx logs at INFO on
        // every start: not news to a user.
        sqlx::query("SET LOCAL client_min_messages TO WARNING")
            .execute(&mut **self)
            .await?;
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

/// The named column of a row, as a corrupt-row error if it does not decode.
fn col<'r, T>(row: &'r PgRow, name: &str) -> Result<T>
where
    T: sqlx::Decode<'r, Postgres> + sqlx::Type<Postgres>,
{
    row.try_get(name)
        .map_err(|e| RegistryError::corrupt(format!("column {name}"), e))
}

/// A `model_versions` row (without tags).
fn version_from_row(row: &PgRow) -> Result<ModelVersion> {
    let model: String = col(row, "model")?;
    let version = to_version(col(row, "version")?, "model_versions.version")?;
    let what = format!("version {version} of {model}");
    let size: i64 = col(row, "artifact_size")?;
    Ok(ModelVersion {
        created_at: col(row, "created_at")?,
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
fn audit_from_row(row: &PgRow) -> Result<AuditEntry> {
    let id: i64 = col(row, "id")?;
    let what = format!("audit entry {id}");
    let version = |name: &str| -> Result<Option<u32>> {
        col::<Option<i64>>(row, name)?
            .map(|v| to_version(v, &what))
            .transpose()
    };
    Ok(AuditEntry {
        id,
        at: col(row, "at")?,
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
impl Tx for PgTx {
    async fn model_exists(&mut self, model: &str) -> Result<bool> {
        let found: Option<String> = sqlx::query_scalar("SELECT name FROM models WHERE name = $1")
            .bind(model)
            .fetch_optional(&mut **self)
            .await
            .ctx("looking up a model")?;
        Ok(found.is_some())
    }

    async fn next_version(&mut self, model: &str, at: DateTime<Utc>) -> Result<u32> {
        let v: i64 = sqlx::query_scalar(
            "INSERT INTO models (name, latest_version, created_at) VALUES ($1, 1, $2) \
             ON CONFLICT (name) DO UPDATE SET latest_version = models.latest_version + 1 \
             RETURNING latest_version",
        )
        .bind(model)
        .bind(at)
        .fetch_one(&mut **self)
        .await
        .ctx("numbering a version")?;
        to_version(v, "models.latest_version")
    }

    async fn insert_version(&mut self, v: &ModelVersion) -> Result<()> {
        sqlx::query(&format!(
            "INSERT INTO model_versions ({VERSION_COLUMNS}) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8::json, $9::json)"
        ))
        .bind(&v.model)
        .bind(i64::from(v.version))
        .bind(v.created_at)
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
            "SELECT {VERSION_SELECT} FROM model_versions \
             WHERE model = $1 AND ($2::BIGINT IS NULL OR version = $2) ORDER BY version"
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
             WHERE model = $1 AND ($2::BIGINT IS NULL OR version = $2)",
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
        .bind(at)
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
                Ok(Alias {
                    model: col(row, "model")?,
                    name: col(row, "name")?,
                    version: to_version(col(row, "version")?, "aliases.version")?,
                    updated_at: col(row, "updated_at")?,
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
        .bind(at)
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
            "SELECT {AUDIT_COLUMNS} FROM audit_log WHERE ($1::TEXT IS NULL OR model = $1) \
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
impl Registry for PostgresRegistry {
    async fn register(&self, new: NewVersion) -> Result<ModelVersion> {
        let mut tx = self.write(&new.model).await?;
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
        let mut tx = self.write(model).await?;
        let entry = sql::set_alias(&mut tx, model, alias, version, reason, actor).await?;
        self.commit(tx, entry.id).await?;
        Ok(entry)
    }

    async fn remove_alias(&self, model: &str, alias: &str, reason: &str, actor: &str) -> Result<AuditEntry> {
        let mut tx = self.write(model).await?;
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
        let mut tx = self.write(model).await?;
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
        let mut tx = self.write(model).await?;
        let entry = sql::promote(&mut tx, model, version, reason, actor).await?;
        self.commit(tx, entry.id).await?;
        Ok(entry)
    }

    async fn rollback(&self, model: &str, reason: &str, actor: &str) -> Result<AuditEntry> {
        let mut tx = self.write(model).await?;
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
        let connect = (*self.inner.pool.connect_options()).clone();
        let role = role.to_string();
        Leadership::campaign(move |sender| {
            election::campaign_with_advisory_lock(connect, CONTROLLER_LOCK_CLASS, role, sender)
        })
    }
}

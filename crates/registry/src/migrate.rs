//! Embedded schema migrations: an ordered list of SQL scripts, applied once each.
//!
//! Key decision: our own small runner, not sqlx's `migrate!` macro. Each backend holds a
//! `&[Migration]` of `include_str!` scripts and opens one transaction that holds its
//! schema lock (SQLite's write lock, a Postgres advisory lock); [`run`] reads the versions
//! recorded in `schema_migrations`, asks [`pending`] what to run, runs it and records it.
//! Only the SQL differs between SQLite and Postgres; the plan (and its refusal of a
//! database migrated by a newer program) is shared.

use async_trait::async_trait;
use chrono::{SecondsFormat, Utc};

use crate::error::{DbContext, RegistryError};

/// The table that records applied migrations (portable DDL).
pub const SCHEMA_MIGRATIONS_DDL: &str = "CREATE TABLE IF NOT EXISTS schema_migrations (
    version BIGINT PRIMARY KEY,
    name TEXT NOT NULL,
    applied_at TEXT NOT NULL
)";

/// One schema change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Migration {
    /// Its number; a list is strictly ascending from 1.
    pub version: i64,
    /// A short name, recorded with the version.
    pub name: &'static str,
    /// The script (several statements).
    pub sql: &'static str,
}

/// A backend's migration transaction, holding the schema lock until it commits.
#[async_trait]
pub(crate) trait MigrationTx: Send {
    /// Creates `schema_migrations` if absent ([`SCHEMA_MIGRATIONS_DDL`]) and returns the
    /// versions it records.
    async fn applied(&mut self) -> Result<Vec<i64>, sqlx::Error>;
    /// Runs one script (several statements) and records it as applied at `applied_at`.
    async fn apply(&mut self, migration: &Migration, applied_at: &str) -> Result<(), sqlx::Error>;
}

/// Applies the pending migrations of `all` inside `tx` (the caller commits).
pub(crate) async fn run(tx: &mut impl MigrationTx, all: &[Migration]) -> Result<(), RegistryError> {
    let applied = tx.applied().await.ctx("reading schema_migrations")?;
    let applied_at = Utc::now().to_rfc3339_opts(SecondsFormat::Micros, true);
    for m in pending(all, &applied)? {
        tx.apply(m, &applied_at)
            .await
            .map_err(|e| RegistryError::Migration {
                version: m.version,
                name: m.name.into(),
                reason: e.to_string(),
            })?;
    }
    Ok(())
}

/// The migrations of `all` not yet in `applied`, in order.
///
/// Refuses a database that records a version this program does not know: it was
/// migrated by a newer driftline, and writing to it could corrupt it.
pub fn pending<'a>(all: &'a [Migration], applied: &[i64]) -> Result<Vec<&'a Migration>, RegistryError> {
    if let Some(&unknown) = applied.iter().find(|v| !all.iter().any(|m| m.version == **v)) {
        return Err(RegistryError::Migration {
            version: unknown,
            name: "unknown".into(),
            reason: "the database was migrated by a newer driftline; upgrade this program".into(),
        });
    }
    Ok(all.iter().filter(|m| !applied.contains(&m.version)).collect())
}

/// Checks that `all` is numbered 1, 2, 3… (a test of each backend's list).
pub fn check_list(all: &[Migration]) -> Result<(), String> {
    for (i, m) in all.iter().enumerate() {
        let expected = i as i64 + 1;
        if m.version != expected {
            return Err(format!(
                "migration {:?} is numbered {}, expected {expected}",
                m.name, m.version
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: &[Migration] = &[
        Migration {
            version: 1,
            name: "init",
            sql: "",
        },
        Migration {
            version: 2,
            name: "more",
            sql: "",
        },
    ];

    #[test]
    fn pending_is_what_is_not_applied_in_order() {
        let names = |p: Vec<&Migration>| p.iter().map(|m| m.name).collect::<Vec<_>>();
        assert_eq!(names(pending(ALL, &[]).unwrap()), ["init", "more"]);
        assert_eq!(names(pending(ALL, &[1]).unwrap()), ["more"]);
        assert!(pending(ALL, &[1, 2]).unwrap().is_empty());
        assert!(check_list(ALL).is_ok());
    }

    #[test]
    fn a_database_from_a_newer_program_is_refused() {
        let err = pending(ALL, &[1, 2, 3]).unwrap_err();
        assert!(
            matches!(err, RegistryError::Migration { version: 3, .. }),
            "{err}"
        );
    }
}

//! The shared suite against SQLite (a fresh file per case), and what only SQLite has:
//! two handles on one file, the audit triggers, migrations and the on-disk layout.

use std::sync::Arc;
use std::time::Duration;

use tempfile::TempDir;

use super::*;
use crate::suite;

/// A fresh registry in a temporary directory (kept alive by the returned guard).
async fn fresh() -> (SqliteRegistry, TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let reg = open(&dir).await;
    (reg, dir)
}

/// Opens (another handle on) the registry in `dir`, polling every 20 ms.
async fn open(dir: &TempDir) -> SqliteRegistry {
    let options = SqliteOptions {
        poll_interval: Duration::from_millis(20),
        ..SqliteOptions::default()
    };
    SqliteRegistry::open(&dir.path().join("registry.db"), &options)
        .await
        .unwrap()
}

macro_rules! suite_cases {
    ($($case:ident),* $(,)?) => {$(
        #[tokio::test]
        async fn $case() {
            let (reg, _dir) = fresh().await;
            suite::$case(&reg).await;
        }
    )*};
}

suite_cases!(
    numbering_is_per_model_and_monotonic,
    aliases_set_resolve_and_remove,
    missing_things_are_named,
    rejected_versions_cannot_be_aliased,
    invalid_names_are_refused,
    tags_are_set_and_audited,
    promote_the_challenger,
    promote_an_explicit_version,
    promote_without_a_challenger,
    rollback_walks_back_through_champions,
    rollback_restores_a_removed_champion,
    audit_is_newest_first_with_a_limit,
    watch_sees_local_changes,
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_registration_from_two_handles_has_no_gaps() {
    let dir = tempfile::tempdir().unwrap();
    let a: Arc<dyn Registry> = Arc::new(open(&dir).await);
    let b: Arc<dyn Registry> = Arc::new(open(&dir).await);
    suite::concurrent_registration_has_no_gaps(a, b, 60).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_promotions_from_two_handles_chain_in_the_audit_log() {
    let dir = tempfile::tempdir().unwrap();
    let a: Arc<dyn Registry> = Arc::new(open(&dir).await);
    let b: Arc<dyn Registry> = Arc::new(open(&dir).await);
    suite::concurrent_promotions_chain_in_the_audit_log(a, b, 40).await;
}

#[tokio::test]
async fn watch_sees_changes_made_through_another_handle() {
    let dir = tempfile::tempdir().unwrap();
    let watcher = open(&dir).await;
    let writer = open(&dir).await;
    suite::watch_sees_other_handles(&watcher, &writer).await;
}

#[tokio::test]
async fn audit_rows_cannot_be_updated_or_deleted() {
    let (reg, _dir) = fresh().await;
    suite::numbering_is_per_model_and_monotonic(&reg).await;
    let before = reg.audit(None, 100).await.unwrap();
    for sql in [
        "UPDATE audit_log SET reason = 'rewritten'",
        "UPDATE audit_log SET actor = 'someone else' WHERE id = 1",
        "DELETE FROM audit_log WHERE id = 1",
        "DELETE FROM audit_log",
    ] {
        let err = sqlx::query(sql).execute(reg.pool()).await.unwrap_err();
        assert!(err.to_string().contains("append-only"), "{sql}: {err}");
    }
    assert_eq!(reg.audit(None, 100).await.unwrap(), before);
}

#[tokio::test]
async fn open_creates_directories_and_reopens_with_data_intact() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a/b/registry.db");
    let reg = SqliteRegistry::open(&path, &SqliteOptions::default())
        .await
        .unwrap();
    suite::promote_the_challenger(&reg).await;
    drop(reg);
    let reopened = SqliteRegistry::open(&path, &SqliteOptions::default())
        .await
        .unwrap();
    assert_eq!(reopened.champion("m").await.unwrap().unwrap().version, 2);
    let latest = reopened.audit(None, 1).await.unwrap()[0].id;
    assert_eq!(
        *reopened.watch().borrow(),
        latest,
        "the watch starts at the latest id"
    );
    let applied: Vec<i64> = sqlx::query_scalar("SELECT version FROM schema_migrations")
        .fetch_all(reopened.pool())
        .await
        .unwrap();
    assert_eq!(applied, [1], "migrations apply once");
}

/// Another process writing to a registry file still in rollback mode (a second `driftline
/// train` creating it) holds the reserved lock while this one's connection switches the
/// file to WAL. The switch upgrades a read transaction, so SQLite answers "database is
/// locked" at once instead of waiting its busy timeout; the open retries until it can.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn opening_while_another_connection_writes_in_rollback_mode_waits_for_it() {
    use sqlx::Connection;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("registry.db");
    let rollback = SqliteConnectOptions::new()
        .filename(&path)
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Delete);
    let mut writer = sqlx::SqliteConnection::connect_with(&rollback).await.unwrap();
    sqlx::query("BEGIN IMMEDIATE").execute(&mut writer).await.unwrap();
    sqlx::query("CREATE TABLE other_writer (x INTEGER)")
        .execute(&mut writer)
        .await
        .unwrap();
    let release = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        sqlx::query("COMMIT").execute(&mut writer).await.unwrap();
        writer
    });
    let opened = SqliteRegistry::open(&path, &SqliteOptions::default()).await;
    assert!(opened.is_ok(), "{}", opened.unwrap_err());
    release.await.unwrap().close().await.unwrap();
    let reg = opened.unwrap();
    suite::numbering_is_per_model_and_monotonic(&reg).await;
}

#[tokio::test]
async fn the_database_is_in_wal_mode_with_foreign_keys() {
    let (reg, _dir) = fresh().await;
    let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
        .fetch_one(reg.pool())
        .await
        .unwrap();
    assert_eq!(mode, "wal");
    let fk: i64 = sqlx::query_scalar("PRAGMA foreign_keys")
        .fetch_one(reg.pool())
        .await
        .unwrap();
    assert_eq!(fk, 1);
}

#[tokio::test]
async fn a_database_from_a_newer_program_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let reg = open(&dir).await;
    sqlx::query("INSERT INTO schema_migrations (version, name, applied_at) VALUES (99, 'future', 'x')")
        .execute(reg.pool())
        .await
        .unwrap();
    drop(reg);
    let path = dir.path().join("registry.db");
    let err = SqliteRegistry::open(&path, &SqliteOptions::default())
        .await
        .unwrap_err();
    assert!(
        matches!(err, RegistryError::Migration { version: 99, .. }),
        "{err}"
    );
}

#[test]
fn migrations_are_numbered_from_one() {
    crate::migrate::check_list(MIGRATIONS).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exactly_one_process_controls_a_model_and_a_successor_takes_over() {
    let dir = tempfile::tempdir().unwrap();
    let a = open(&dir).await;
    let b = open(&dir).await;
    suite::exactly_one_leader_and_a_successor(&a, &b).await;
}

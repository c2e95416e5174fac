//! The shared suite against PostgreSQL (a fresh database per case on the server at
//! `DRIFTLINE_TEST_POSTGRES_URL`), and what only PostgreSQL has: two registries on two
//! pools, pushed watches and their reconnection, the audit trigger, migrations.

use std::sync::Arc;
use std::time::{Duration, Instant};

use sqlx::{Connection, Executor, PgConnection};

use super::*;
use crate::suite::{self, new_version};
use crate::testenv;
use crate::types::CHAMPION;

/// The server when `DRIFTLINE_TEST_POSTGRES_URL` is unset.
const DEFAULT_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// A database created for one test and dropped (with its connections) when dropped.
struct TestDb {
    admin: PostgresOptions,
    name: String,
}

impl TestDb {
    /// Creates a uniquely named database; `None` (after saying why) when the server is
    /// unreachable and backends are not required.
    async fn create() -> Option<TestDb> {
        let url = std::env::var("DRIFTLINE_TEST_POSTGRES_URL").unwrap_or_else(|_| DEFAULT_URL.into());
        let admin = PostgresOptions::from_url(&url).unwrap();
        let mut conn = match PgConnection::connect_with(&admin.connect).await {
            Ok(conn) => conn,
            Err(e) => return testenv::unavailable("PostgreSQL", &url, e),
        };
        let name = testenv::unique_name("driftline_test");
        conn.execute(format!("CREATE DATABASE {name}").as_str())
            .await
            .unwrap_or_else(|e| panic!("creating database {name} at {url}: {e}"));
        conn.close().await.ok();
        Some(TestDb { admin, name })
    }

    /// The options of a registry in this database.
    fn options(&self) -> PostgresOptions {
        self.admin.clone().with_database(&self.name)
    }

    /// Opens a registry (a new pool and listener) on this database.
    async fn open(&self) -> PostgresRegistry {
        PostgresRegistry::open(&self.options()).await.unwrap()
    }
}

impl Drop for TestDb {
    /// Drops the database on a thread of its own (drop cannot await), forcing out the
    /// connections of registries still open.
    fn drop(&mut self) {
        let connect = self.admin.connect.clone();
        let sql = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name);
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async {
                let mut conn = PgConnection::connect_with(&connect).await?;
                conn.execute(sql.as_str()).await?;
                conn.close().await
            })
        })
        .join();
        if let Ok(Err(e)) = dropped {
            eprintln!("dropping test database {}: {e}", self.name);
        }
    }
}

macro_rules! suite_cases {
    ($($case:ident),* $(,)?) => {$(
        #[tokio::test]
        async fn $case() {
            let Some(db) = TestDb::create().await else { return };
            let reg = db.open().await;
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
async fn concurrent_registration_from_two_registries_has_no_gaps() {
    let Some(db) = TestDb::create().await else { return };
    let a: Arc<dyn Registry> = Arc::new(db.open().await);
    let b: Arc<dyn Registry> = Arc::new(db.open().await);
    suite::concurrent_registration_has_no_gaps(a, b, 60).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_promotions_from_two_registries_chain_in_the_audit_log() {
    let Some(db) = TestDb::create().await else { return };
    let a: Arc<dyn Registry> = Arc::new(db.open().await);
    let b: Arc<dyn Registry> = Arc::new(db.open().await);
    suite::concurrent_promotions_chain_in_the_audit_log(a, b, 40).await;
}

#[tokio::test]
async fn watch_sees_changes_made_through_another_registry() {
    let Some(db) = TestDb::create().await else { return };
    let watcher = db.open().await;
    let writer = db.open().await;
    suite::watch_sees_other_handles(&watcher, &writer).await;
}

/// Waits until `rx` reaches `id`, returning how long it took; fails after `within`.
async fn time_to_reach(rx: &mut watch::Receiver<i64>, id: i64, within: Duration) -> Duration {
    let start = Instant::now();
    let reached = tokio::time::timeout(within, rx.wait_for(|latest| *latest >= id))
        .await
        .is_ok();
    assert!(
        reached,
        "watch stayed at {} for {within:?}, expected {id}",
        *rx.borrow()
    );
    start.elapsed()
}

#[tokio::test]
async fn an_alias_change_reaches_another_registrys_watch_within_a_second() {
    let Some(db) = TestDb::create().await else { return };
    let replica = db.open().await;
    let controller = db.open().await;
    controller
        .register(new_version("m", VersionStatus::Registered, "v1"))
        .await
        .unwrap();
    let mut rx = replica.watch();
    let mut slowest = Duration::ZERO;
    for round in 0..5 {
        let start = Instant::now();
        let entry = controller
            .set_alias("m", CHAMPION, 1, &format!("round {round}"), "ci")
            .await
            .unwrap();
        time_to_reach(&mut rx, entry.id, Duration::from_secs(1)).await;
        slowest = slowest.max(start.elapsed());
    }
    eprintln!("slowest alias change, from the call to the other registry's watch: {slowest:?}");
}

/// Terminates the server processes of this database's listening connections.
async fn kill_listeners(db: &TestDb) -> u64 {
    let mut admin = PgConnection::connect_with(&db.admin.connect).await.unwrap();
    let killed: Vec<bool> = sqlx::query_scalar(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE datname = $1 AND query LIKE 'LISTEN%'",
    )
    .bind(&db.name)
    .fetch_all(&mut admin)
    .await
    .unwrap();
    killed.into_iter().filter(|k| *k).count() as u64
}

#[tokio::test]
async fn the_watch_reconnects_and_catches_up_after_losing_its_connection() {
    let Some(db) = TestDb::create().await else { return };
    let replica = db.open().await;
    let writer = db.open().await;
    let mut rx = replica.watch();
    writer
        .register(new_version("m", VersionStatus::Registered, "v1"))
        .await
        .unwrap();
    let first = writer.promote("m", Some(1), "r", "a").await.unwrap();
    time_to_reach(&mut rx, first.id, Duration::from_secs(1)).await;
    assert_eq!(kill_listeners(&db).await, 2, "both registries listen");
    // A change made while the replica is reconnecting is not lost: it catches up.
    let missed = writer.set_alias("m", "canary", 1, "r", "a").await.unwrap();
    time_to_reach(&mut rx, missed.id, Duration::from_secs(5)).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let after = writer.remove_alias("m", "canary", "r", "a").await.unwrap();
    let took = time_to_reach(&mut rx, after.id, Duration::from_secs(1)).await;
    eprintln!("after reconnecting, a change arrived in {took:?}");
}

#[tokio::test]
async fn a_rolled_back_change_notifies_nobody() {
    let Some(db) = TestDb::create().await else { return };
    let replica = db.open().await;
    let writer = db.open().await;
    writer
        .register(new_version("m", VersionStatus::Registered, "v1"))
        .await
        .unwrap();
    let mut rx = replica.watch();
    let latest = writer.audit(None, 1).await.unwrap()[0].id;
    time_to_reach(&mut rx, latest, Duration::from_secs(1)).await;
    rx.mark_unchanged();
    let refused = writer.promote("m", Some(7), "no such version", "a").await;
    assert!(matches!(refused, Err(RegistryError::VersionNotFound { .. })));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!rx.has_changed().unwrap(), "a failed change is not news");
}

#[tokio::test]
async fn audit_rows_cannot_be_updated_deleted_or_truncated() {
    let Some(db) = TestDb::create().await else { return };
    let reg = db.open().await;
    suite::numbering_is_per_model_and_monotonic(&reg).await;
    let before = reg.audit(None, 100).await.unwrap();
    for sql in [
        "UPDATE audit_log SET reason = 'rewritten'",
        "UPDATE audit_log SET actor = 'someone else' WHERE id = 1",
        "DELETE FROM audit_log WHERE id = 1",
        "DELETE FROM audit_log",
        "TRUNCATE audit_log",
    ] {
        let err = sqlx::query(sql).execute(reg.pool()).await.unwrap_err();
        assert!(err.to_string().contains("append-only"), "{sql}: {err}");
    }
    assert_eq!(reg.audit(None, 100).await.unwrap(), before);
}

#[tokio::test]
async fn reopening_keeps_data_and_migrates_once() {
    let Some(db) = TestDb::create().await else { return };
    let (a, b) = tokio::join!(db.open(), db.open());
    suite::promote_the_challenger(&a).await;
    drop((a, b));
    let reopened = db.open().await;
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
    assert_eq!(applied, [1], "migrations apply once, even opened twice at once");
}

#[tokio::test]
async fn cards_read_back_as_written_and_times_are_timestamptz() {
    let Some(db) = TestDb::create().await else { return };
    let reg = db.open().await;
    let mut new = new_version("m", VersionStatus::Registered, "v1");
    new.card = serde_json::json!({"zeta": 1, "alpha": {"b": 2, "a": 1}});
    let written = serde_json::to_string(&new.card).unwrap();
    reg.register(new).await.unwrap();
    let read = reg.version("m", 1).await.unwrap();
    assert_eq!(serde_json::to_string(&read.card).unwrap(), written);
    let kind: String = sqlx::query_scalar(
        "SELECT data_type FROM information_schema.columns \
         WHERE table_name = 'model_versions' AND column_name = 'created_at'",
    )
    .fetch_one(reg.pool())
    .await
    .unwrap();
    assert_eq!(kind, "timestamp with time zone");
}

#[tokio::test]
async fn a_database_from_a_newer_program_is_refused() {
    let Some(db) = TestDb::create().await else { return };
    let reg = db.open().await;
    sqlx::query("INSERT INTO schema_migrations (version, name, applied_at) VALUES (99, 'future', 'x')")
        .execute(reg.pool())
        .await
        .unwrap();
    drop(reg);
    let err = PostgresRegistry::open(&db.options()).await.unwrap_err();
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
async fn exactly_one_replica_controls_a_model_and_a_successor_takes_over() {
    let Some(db) = TestDb::create().await else { return };
    let a = db.open().await;
    let b = db.open().await;
    suite::exactly_one_leader_and_a_successor(&a, &b).await;
}

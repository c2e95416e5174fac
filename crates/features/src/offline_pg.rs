//! The scale-out offline store: event and label history in PostgreSQL, shared by every
//! ingest worker and read by training wherever it runs.
//!
//! Tables (in the `[postgres]` database): `driftline_events`, one typed column per
//! contract field beside the event id, entity, event time and label, indexed for
//! time-range scans per entity (`entity, time`) and overall (`time`); and
//! `driftline_labels`, delayed labels in arrival order. Every row records the log it came
//! from (`log_source`, a worker's data directory) and its offset there.
//!
//! Key decisions:
//! - Appends are bulk loads: one `COPY ... FROM STDIN` (CSV) into a temporary table, then
//!   one `INSERT ... SELECT ... ON CONFLICT (event_id) DO NOTHING`, all in the transaction
//!   that ingest's checkpoint commits. An event delivered twice (a Kafka redelivery to
//!   another worker after a rebalance) is therefore kept once: idempotent by event id.
//! - `discard_from` (a restart undoing what followed its checkpoint) deletes only the
//!   calling worker's *labels* past its checkpoint; the worker replays those offsets from
//!   its own log afterwards and appends them again. Events past the checkpoint stay: they
//!   are idempotent by event id, so a replay that re-inserts them changes nothing, and a
//!   replay may instead judge them duplicates (another worker took the partition over,
//!   applied them and published the state this worker adopts from Redis) and write no
//!   history for them, while that other worker's insert of them was skipped as a conflict
//!   with these very rows. Deleting them lost events that way (seen in the scale-out test).
//! - The seam is synchronous (ingest runs on its own thread, training on blocking
//!   threads), so the store drives `sqlx` on a private single-threaded runtime on a thread
//!   of its own, and callers wait for its answers: no runtime is ever entered (or
//!   dropped) on a caller's thread, whatever that thread is, and no second PostgreSQL
//!   client joins the build.

use std::fmt::Write as _;
use std::sync::{Arc, Mutex, mpsc};

use chrono::{DateTime, Utc};
use driftline_core::config::PostgresSettings;
use driftline_core::contract::{Contract, FieldKind};
use driftline_core::event::{Event, FieldValue, LabelUpdate};
use driftline_core::time::Timestamp;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions, PgRow};
use sqlx::{Row, postgres::PgConnection};

use crate::offline::{HistoryEvent, OfflineError, OfflineStore};
use crate::state::EventKey;

/// The events table.
pub const EVENTS_TABLE: &str = "driftline_events";
/// The delayed-labels table.
pub const LABELS_TABLE: &str = "driftline_labels";
/// A day in microseconds: scans hand training one day of events at a time.
const DAY_MICROS: i64 = 86_400 * 1_000_000;

/// History in a PostgreSQL database.
pub struct PostgresOfflineStore {
    inner: Arc<Inner>,
    /// Work for the store's thread; closing it ends the thread.
    jobs: Mutex<mpsc::Sender<Job>>,
}

/// What the store's thread shares with callers.
struct Inner {
    pool: PgPool,
    contract: Contract,
    /// Which log this process appends from (see the module header).
    source: String,
    /// The events table's columns in order: key columns, then one per contract field.
    columns: Vec<String>,
}

/// A unit of work run to completion on the store's runtime.
type Job = Box<dyn FnOnce(&tokio::runtime::Runtime) + Send>;

/// Starts the thread that owns the store's runtime; it ends when the sender is dropped.
fn spawn_runtime_thread() -> Result<mpsc::Sender<Job>, OfflineError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| OfflineError::Database(format!("starting the offline store's runtime: {e}")))?;
    let (sender, jobs) = mpsc::channel::<Job>();
    std::thread::Builder::new()
        .name("offline-store".into())
        .spawn(move || {
            for job in jobs {
                job(&runtime);
            }
        })
        .map_err(|e| OfflineError::Database(format!("starting the offline store's thread: {e}")))?;
    Ok(sender)
}

/// Runs the future `work` makes on the store's runtime and waits for its result. The
/// future is made on the store's thread, so it need not be `Send` (sqlx's transaction
/// futures are not, in general).
fn on_runtime<T, F, Fut>(jobs: &Mutex<mpsc::Sender<Job>>, work: F) -> Result<T, OfflineError>
where
    T: Send + 'static,
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future<Output = Result<T, OfflineError>>,
{
    let (reply, answer) = mpsc::sync_channel(1);
    let job: Job = Box::new(move |runtime| {
        let _ = reply.send(runtime.block_on(work()));
    });
    let gone = || OfflineError::Database("the offline store's thread has stopped".into());
    jobs.lock().map_err(|_| gone())?.send(job).map_err(|_| gone())?;
    answer.recv().map_err(|_| gone())?
}

fn database_error(action: &'static str) -> impl Fn(sqlx::Error) -> OfflineError {
    move |error| OfflineError::Database(format!("{action}: {error}"))
}

/// `name` quoted as an SQL identifier.
fn quoted(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

impl PostgresOfflineStore {
    /// Connects to `[postgres]`, creating the tables and indexes if absent and adding a
    /// column for any contract field the table lacks; `source` names this process's log.
    pub fn open(settings: &PostgresSettings, contract: Contract, source: &str) -> Result<Self, OfflineError> {
        let mut connect = PgConnectOptions::new()
            .host(&settings.host)
            .port(settings.port)
            .username(&settings.user)
            .database(&settings.database);
        if !settings.password.is_empty() {
            connect = connect.password(&settings.password);
        }
        let jobs = Mutex::new(spawn_runtime_thread()?);
        let pool = on_runtime(&jobs, move || async move {
            PgPoolOptions::new()
                .max_connections(4)
                .connect_with(connect)
                .await
                .map_err(database_error("connecting to the offline store database"))
        })?;
        let mut columns = vec![
            "event_id".to_string(),
            contract.entity_field().to_string(),
            contract.timestamp_field().to_string(),
            contract.label_field().to_string(),
        ];
        columns.extend(contract.fields().iter().map(|f| f.name.clone()));
        let inner = Arc::new(Inner {
            pool,
            contract,
            source: source.to_string(),
            columns,
        });
        let schema = inner.clone();
        on_runtime(&jobs, move || async move { schema.create_schema().await })?;
        Ok(Self { inner, jobs })
    }
}

impl Inner {
    /// The DDL, idempotent: several workers may open the store at once.
    async fn create_schema(&self) -> Result<(), OfflineError> {
        let c = &self.contract;
        let (entity, ts, label) = (
            quoted(c.entity_field()),
            quoted(c.timestamp_field()),
            quoted(c.label_field()),
        );
        let mut ddl = format!(
            "SELECT pg_advisory_xact_lock(hashtext('{EVENTS_TABLE}'));
             CREATE TABLE IF NOT EXISTS {EVENTS_TABLE} (
                 event_id text PRIMARY KEY,
                 {entity} text NOT NULL,
                 {ts} timestamptz NOT NULL,
                 {label} smallint,
                 log_source text NOT NULL,
                 log_offset bigint NOT NULL);
             CREATE INDEX IF NOT EXISTS {EVENTS_TABLE}_entity_time ON {EVENTS_TABLE} ({entity}, {ts});
             CREATE INDEX IF NOT EXISTS {EVENTS_TABLE}_time ON {EVENTS_TABLE} ({ts});
             CREATE INDEX IF NOT EXISTS {EVENTS_TABLE}_log ON {EVENTS_TABLE} (log_source, log_offset);
             CREATE TABLE IF NOT EXISTS {LABELS_TABLE} (
                 id bigserial PRIMARY KEY,
                 event_id text NOT NULL,
                 {label} smallint NOT NULL,
                 log_source text NOT NULL,
                 log_offset bigint NOT NULL);
             CREATE INDEX IF NOT EXISTS {LABELS_TABLE}_event ON {LABELS_TABLE} (event_id, id);
             CREATE INDEX IF NOT EXISTS {LABELS_TABLE}_log ON {LABELS_TABLE} (log_source, log_offset);"
        );
        for field in c.fields() {
            let sql_type = match field.kind {
                FieldKind::Float { .. } => "double precision",
                FieldKind::Category { .. } => "text",
            };
            let _ = write!(
                ddl,
                "ALTER TABLE {EVENTS_TABLE} ADD COLUMN IF NOT EXISTS {} {sql_type};",
                quoted(&field.name)
            );
        }
        let mut tx = self
            .pool
            .begin()
            .await
            .map_err(database_error("creating the offline tables"))?;
        sqlx::raw_sql(&ddl)
            .execute(&mut *tx)
            .await
            .map_err(database_error("creating the offline tables"))?;
        tx.commit()
            .await
            .map_err(database_error("creating the offline tables"))?;
        self.check_column_types().await
    }

    /// Refuses a table whose columns have other types than this contract's (a field that
    /// changed kind), naming the column.
    async fn check_column_types(&self) -> Result<(), OfflineError> {
        let rows = sqlx::query(
            "SELECT column_name, data_type FROM information_schema.columns \
             WHERE table_schema = current_schema() AND table_name = $1",
        )
        .bind(EVENTS_TABLE)
        .fetch_all(&self.pool)
        .await
        .map_err(database_error("reading the offline table's columns"))?;
        for field in self.contract.fields() {
            let expected = match field.kind {
                FieldKind::Float { .. } => "double precision",
                FieldKind::Category { .. } => "text",
            };
            let found = rows
                .iter()
                .find(|r| r.get::<String, _>(0) == field.name)
                .map(|r| r.get::<String, _>(1));
            if found.as_deref() != Some(expected) {
                return Err(OfflineError::Database(format!(
                    "{EVENTS_TABLE}.{}: column type {found:?}, but the contract's field needs {expected}",
                    field.name
                )));
            }
        }
        Ok(())
    }

    /// Delayed labels as CSV rows. They carry no offset of their own: the log range's
    /// start orders them for `discard_from`, and `id` keeps their arrival order.
    fn labels_csv(
        &self,
        offsets: &std::ops::Range<u64>,
        labels: &[LabelUpdate],
    ) -> Result<Vec<u8>, OfflineError> {
        let mut out = csv::Writer::from_writer(Vec::new());
        let start = offsets.start.to_string();
        for l in labels {
            out.write_record([
                l.event_id.as_str(),
                if l.label { "1" } else { "0" },
                &self.source,
                &start,
            ])
            .map_err(|err| OfflineError::Database(format!("encoding labels: {err}")))?;
        }
        out.into_inner()
            .map_err(|err| OfflineError::Database(format!("encoding labels: {err}")))
    }

    /// The events as CSV rows in [`Inner::columns`] order plus source and offset.
    fn events_csv(&self, events: &[HistoryEvent]) -> Result<Vec<u8>, OfflineError> {
        let mut out = csv::Writer::from_writer(Vec::with_capacity(events.len() * 96));
        let mut record: Vec<String> = Vec::with_capacity(self.columns.len() + 2);
        for e in events {
            record.clear();
            record.push(e.event.event_id.clone());
            record.push(e.event.entity.clone());
            record.push(e.event.ts.to_rfc3339());
            record.push(e.event.label.map_or(String::new(), |l| u8::from(l).to_string()));
            for (field, value) in self.contract.fields().iter().zip(&e.event.values) {
                record.push(match (value, &field.kind) {
                    (FieldValue::Number(x), _) => x.to_string(),
                    (FieldValue::Category(c), FieldKind::Category { values }) => values[*c as usize].clone(),
                    _ => String::new(),
                });
            }
            record.push(self.source.clone());
            record.push(e.offset.to_string());
            out.write_record(&record).map_err(|err| {
                OfflineError::Database(format!("encoding event {}: {err}", e.event.event_id))
            })?;
        }
        out.into_inner()
            .map_err(|err| OfflineError::Database(format!("encoding events: {err}")))
    }

    async fn append_async(
        &self,
        events: Option<Vec<u8>>,
        labels: Option<Vec<u8>>,
    ) -> Result<(), OfflineError> {
        let failed = database_error("appending history");
        let mut tx = self.pool.begin().await.map_err(&failed)?;
        if let Some(csv) = events {
            let mut columns: Vec<String> = self.columns.iter().map(|c| quoted(c)).collect();
            columns.extend(["log_source".into(), "log_offset".into()]);
            let columns = columns.join(", ");
            sqlx::raw_sql(&format!(
                "CREATE TEMP TABLE IF NOT EXISTS {EVENTS_TABLE}_in \
                 (LIKE {EVENTS_TABLE} INCLUDING DEFAULTS) ON COMMIT DELETE ROWS"
            ))
            .execute(&mut *tx)
            .await
            .map_err(&failed)?;
            copy_in(
                &mut tx,
                &format!("COPY {EVENTS_TABLE}_in ({columns}) FROM STDIN WITH (FORMAT csv)"),
                csv,
            )
            .await?;
            sqlx::raw_sql(&format!(
                "INSERT INTO {EVENTS_TABLE} ({columns}) SELECT {columns} FROM {EVENTS_TABLE}_in \
                 ON CONFLICT (event_id) DO NOTHING"
            ))
            .execute(&mut *tx)
            .await
            .map_err(&failed)?;
        }
        if let Some(csv) = labels {
            let label = quoted(self.contract.label_field());
            copy_in(
                &mut tx,
                &format!(
                    "COPY {LABELS_TABLE} (event_id, {label}, log_source, log_offset) FROM STDIN WITH (FORMAT csv)"
                ),
                csv,
            )
            .await?;
        }
        tx.commit().await.map_err(&failed)
    }

    async fn discard_async(&self, offset: u64) -> Result<(), OfflineError> {
        // Labels only: events are idempotent by id and may be the only copy (module header).
        let failed = database_error("discarding uncommitted labels");
        let removed = sqlx::query(&format!(
            "DELETE FROM {LABELS_TABLE} WHERE log_source = $1 AND log_offset >= $2"
        ))
        .bind(&self.source)
        .bind(offset as i64)
        .execute(&self.pool)
        .await
        .map_err(&failed)?
        .rows_affected();
        if removed > 0 {
            tracing::info!(
                table = LABELS_TABLE,
                removed,
                offset,
                "removed uncommitted labels"
            );
        }
        Ok(())
    }

    /// The first and last event time in `[from, to)`, in microseconds.
    async fn time_range(
        &self,
        from: Option<Timestamp>,
        to: Option<Timestamp>,
    ) -> Result<Option<(i64, i64)>, OfflineError> {
        let ts = quoted(self.contract.timestamp_field());
        let row = sqlx::query(&format!(
            "SELECT min({ts}), max({ts}) FROM {EVENTS_TABLE} \
             WHERE ($1::timestamptz IS NULL OR {ts} >= $1) AND ($2::timestamptz IS NULL OR {ts} < $2)"
        ))
        .bind(from.map(to_datetime))
        .bind(to.map(to_datetime))
        .fetch_one(&self.pool)
        .await
        .map_err(database_error("reading the history's time range"))?;
        let first: Option<DateTime<Utc>> = row.get(0);
        let last: Option<DateTime<Utc>> = row.get(1);
        Ok(first.zip(last).map(|(f, l)| (micros(f), micros(l))))
    }

    /// Events in `[from, to)` with delayed labels joined (the latest wins).
    async fn events_between(&self, from: i64, to: i64) -> Result<Vec<Event>, OfflineError> {
        let label = quoted(self.contract.label_field());
        let ts = quoted(self.contract.timestamp_field());
        let select: Vec<String> = self
            .columns
            .iter()
            .map(|c| {
                if *c == self.contract.label_field() {
                    format!("COALESCE(late.{label}, e.{label})")
                } else {
                    format!("e.{}", quoted(c))
                }
            })
            .collect();
        let rows = sqlx::query(&format!(
            "SELECT {} FROM {EVENTS_TABLE} e LEFT JOIN LATERAL \
             (SELECT l.{label} FROM {LABELS_TABLE} l WHERE l.event_id = e.event_id ORDER BY l.id DESC LIMIT 1) late ON true \
             WHERE e.{ts} >= $1 AND e.{ts} < $2",
            select.join(", ")
        ))
        .bind(to_datetime(Timestamp(from)))
        .bind(to_datetime(Timestamp(to)))
        .fetch_all(&self.pool)
        .await
        .map_err(database_error("reading history"))?;
        let mut events: Vec<Event> = rows.iter().map(|row| self.event_from_row(row)).collect();
        events.sort_by_cached_key(EventKey::of);
        Ok(events)
    }

    fn event_from_row(&self, row: &PgRow) -> Event {
        let values = self
            .contract
            .fields()
            .iter()
            .enumerate()
            .map(|(i, field)| match &field.kind {
                FieldKind::Float { .. } => row
                    .get::<Option<f64>, _>(4 + i)
                    .map_or(FieldValue::Missing, FieldValue::Number),
                FieldKind::Category { values } => row
                    .get::<Option<String>, _>(4 + i)
                    .and_then(|text| values.iter().position(|v| *v == text))
                    .map_or(FieldValue::Missing, |c| FieldValue::Category(c as u16)),
            })
            .collect();
        Event {
            event_id: row.get(0),
            entity: row.get(1),
            ts: Timestamp(micros(row.get(2))),
            label: row.get::<Option<i16>, _>(3).map(|l| l != 0),
            values,
        }
    }
}

/// Streams `csv` into `statement` (a `COPY ... FROM STDIN`).
async fn copy_in(connection: &mut PgConnection, statement: &str, csv: Vec<u8>) -> Result<(), OfflineError> {
    let failed = database_error("bulk-loading history (COPY)");
    let mut copy = connection.copy_in_raw(statement).await.map_err(&failed)?;
    if let Err(error) = copy.send(csv).await {
        copy.abort(error.to_string()).await.ok();
        return Err(failed(error));
    }
    copy.finish().await.map_err(&failed)?;
    Ok(())
}

fn to_datetime(ts: Timestamp) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(ts.micros()).unwrap_or_default()
}

fn micros(time: DateTime<Utc>) -> i64 {
    time.timestamp_micros()
}

impl OfflineStore for PostgresOfflineStore {
    fn append(
        &self,
        offsets: std::ops::Range<u64>,
        events: &[HistoryEvent],
        labels: &[LabelUpdate],
    ) -> Result<(), OfflineError> {
        if events.is_empty() && labels.is_empty() {
            return Ok(());
        }
        // Encoded here, on the caller's thread: the store's thread only talks to the database.
        let events = (!events.is_empty())
            .then(|| self.inner.events_csv(events))
            .transpose()?;
        let labels = (!labels.is_empty())
            .then(|| self.inner.labels_csv(&offsets, labels))
            .transpose()?;
        let inner = self.inner.clone();
        on_runtime(&self.jobs, move || async move {
            inner.append_async(events, labels).await
        })
    }

    /// `event_id` is the primary key and appends skip ids already stored.
    fn keyed_by_event_id(&self) -> bool {
        true
    }

    fn discard_from(&self, offset: u64) -> Result<(), OfflineError> {
        let inner = self.inner.clone();
        on_runtime(
            &self.jobs,
            move || async move { inner.discard_async(offset).await },
        )
    }

    fn scan(
        &self,
        from: Option<Timestamp>,
        to: Option<Timestamp>,
        visit: &mut dyn FnMut(&[Event]) -> Result<(), OfflineError>,
    ) -> Result<(), OfflineError> {
        let inner = self.inner.clone();
        let range = on_runtime(
            &self.jobs,
            move || async move { inner.time_range(from, to).await },
        )?;
        let Some((first, last)) = range else {
            return Ok(());
        };
        let end = to.map_or(last + 1, |t| t.micros().min(last + 1));
        let mut day = first.div_euclid(DAY_MICROS);
        while day * DAY_MICROS < end {
            let start = (day * DAY_MICROS).max(from.map_or(i64::MIN, |f| f.micros()));
            let stop = ((day + 1) * DAY_MICROS).min(end);
            let inner = self.inner.clone();
            let events = on_runtime(&self.jobs, move || async move {
                inner.events_between(start, stop).await
            })?;
            if !events.is_empty() {
                visit(&events)?;
            }
            day += 1;
        }
        Ok(())
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use std::str::FromStr;

    use driftline_core::config::Config;
    use sqlx::Connection;

    use super::*;
    use crate::offline::ParquetOfflineStore;

    /// A database of its own, dropped at the end; `None` (skip) without a server unless
    /// `DRIFTLINE_REQUIRE_BACKENDS=1`, as under .ci/run.
    pub(crate) struct TestDatabase {
        admin: PgConnectOptions,
        pub(crate) settings: PostgresSettings,
    }

    impl TestDatabase {
        pub(crate) fn create() -> Option<Self> {
            let Ok(url) = std::env::var("DRIFTLINE_TEST_POSTGRES_URL") else {
                assert!(
                    std::env::var("DRIFTLINE_REQUIRE_BACKENDS").as_deref() != Ok("1"),
                    "DRIFTLINE_TEST_POSTGRES_URL is not set (.ci/services/postgres-s3.sh exports it)"
                );
                eprintln!("skipping: DRIFTLINE_TEST_POSTGRES_URL is not set");
                return None;
            };
            let admin = PgConnectOptions::from_str(&url).expect("DRIFTLINE_TEST_POSTGRES_URL parses");
            let name = format!(
                "driftline_offline_{}_{}",
                std::process::id(),
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .as_nanos()
            );
            admin_sql(&admin, format!("CREATE DATABASE {name}"));
            let settings = PostgresSettings {
                host: admin.get_host().to_string(),
                port: admin.get_port(),
                user: admin.get_username().to_string(),
                password: String::new(),
                database: name,
            };
            Some(Self { admin, settings })
        }

        pub(crate) fn open(&self, source: &str) -> PostgresOfflineStore {
            PostgresOfflineStore::open(&self.settings, Config::fraud_default().contract, source).unwrap()
        }
    }

    impl Drop for TestDatabase {
        fn drop(&mut self) {
            admin_sql(
                &self.admin,
                format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.settings.database),
            );
        }
    }

    fn admin_sql(admin: &PgConnectOptions, sql: String) {
        let admin = admin.clone();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async move {
            let mut connection = sqlx::PgConnection::connect_with(&admin).await.unwrap();
            sqlx::raw_sql(&sql).execute(&mut connection).await.unwrap();
        });
    }

    /// Events over three days with every kind of value, sub-second times and names that
    /// need CSV quoting.
    fn history(range: std::ops::Range<usize>) -> Vec<HistoryEvent> {
        range
            .map(|i| HistoryEvent {
                offset: i as u64,
                event: Event {
                    event_id: format!("evt-{i:08}"),
                    entity: if i % 5 == 0 {
                        format!("user \"{i}\", quoted")
                    } else {
                        format!("user-{}", i % 3)
                    },
                    ts: Timestamp(1_709_251_200_000_000 + i as i64 * 3_000_000_123),
                    label: [Some(true), Some(false), None][i % 3],
                    values: vec![
                        if i % 4 == 0 {
                            FieldValue::Missing
                        } else {
                            FieldValue::Number(i as f64 / 3.0)
                        },
                        FieldValue::Category((i % 7) as u16),
                        if i % 6 == 0 {
                            FieldValue::Missing
                        } else {
                            FieldValue::Category((i % 3) as u16)
                        },
                    ],
                },
            })
            .collect()
    }

    fn labels(ids: &[(usize, bool)]) -> Vec<LabelUpdate> {
        ids.iter()
            .map(|&(i, label)| LabelUpdate {
                event_id: format!("evt-{i:08}"),
                label,
            })
            .collect()
    }

    /// Every day's events, in the order and grouping `scan` gives them.
    fn scanned(store: &dyn OfflineStore, from: Option<Timestamp>, to: Option<Timestamp>) -> Vec<Vec<Event>> {
        let mut days = Vec::new();
        store
            .scan(from, to, &mut |events| {
                days.push(events.to_vec());
                Ok(())
            })
            .unwrap();
        days
    }

    #[test]
    fn scans_match_the_parquet_store_exactly_with_delayed_labels_and_time_windows() {
        let Some(db) = TestDatabase::create() else { return };
        let postgres = db.open("worker-a");
        let dir = tempfile::tempdir().unwrap();
        let parquet = ParquetOfflineStore::new(dir.path(), Config::fraud_default().contract);
        for store in [&postgres as &dyn OfflineStore, &parquet] {
            store
                .append(0..60, &history(0..60), &labels(&[(3, true)]))
                .unwrap();
            store
                .append(60..100, &history(60..90), &labels(&[(3, false), (70, true)]))
                .unwrap();
        }
        let all = scanned(&postgres, None, None);
        assert_eq!(all, scanned(&parquet, None, None));
        assert_eq!(all.iter().map(Vec::len).sum::<usize>(), 90);
        assert!(all.len() >= 3, "one visit per day");
        let by_id = |id: &str| all.iter().flatten().find(|e| e.event_id == id).unwrap().clone();
        assert_eq!(
            by_id("evt-00000003").label,
            Some(false),
            "the latest delayed label wins"
        );
        assert_eq!(by_id("evt-00000070").label, Some(true));
        let (from, to) = (Timestamp(all[0][5].ts.micros()), Timestamp(all[1][3].ts.micros()));
        assert_eq!(
            scanned(&postgres, Some(from), Some(to)),
            scanned(&parquet, Some(from), Some(to))
        );
        assert_eq!(
            scanned(&postgres, Some(from), Some(from)),
            Vec::<Vec<Event>>::new()
        );
    }

    #[test]
    fn a_redelivered_event_is_kept_once_and_a_restart_discards_only_its_own_uncommitted_labels() {
        let Some(db) = TestDatabase::create() else { return };
        let (a, b) = (db.open("worker-a"), db.open("worker-b"));
        a.append(0..50, &history(0..50), &[]).unwrap();
        // Worker b is handed events 40..60 again after a rebalance: 40..50 are not doubled.
        let mut redelivered = history(40..60);
        for (offset, e) in redelivered.iter_mut().enumerate() {
            e.offset = offset as u64;
        }
        b.append(0..20, &redelivered, &[]).unwrap();
        let count = |store: &dyn OfflineStore| scanned(store, None, None).iter().map(Vec::len).sum::<usize>();
        assert_eq!(count(&a), 60);
        // Worker a crashed after writing offsets 50..80 but before its checkpoint.
        a.append(50..80, &history(60..80), &labels(&[(1, true)])).unwrap();
        assert_eq!(count(&a), 80);
        a.discard_from(50).unwrap();
        assert_eq!(
            count(&a),
            80,
            "events stay: idempotent by id, and a replay may judge them duplicates and skip them"
        );
        let day = scanned(&a, None, None);
        assert_eq!(
            day.iter()
                .flatten()
                .find(|e| e.event_id == "evt-00000001")
                .unwrap()
                .label,
            history(1..2)[0].event.label,
            "the uncommitted delayed label is gone too"
        );
        // Reopening (a restart) keeps every row and creates nothing twice.
        drop(a);
        assert_eq!(count(&db.open("worker-a")), 80);
    }

    #[test]
    fn a_column_of_another_type_than_the_contract_is_refused_by_name() {
        let Some(db) = TestDatabase::create() else { return };
        drop(db.open("worker-a"));
        // transaction_amount becomes a category, but its column holds numbers.
        let mut changed = Config::fraud_default().settings.contract;
        changed.fields[0].kind = driftline_core::contract::FieldType::Category;
        changed.fields[0].values = vec!["small".into(), "large".into()];
        (changed.fields[0].min, changed.fields[0].max) = (None, None);
        let contract = Contract::new(&changed).expect("the changed contract is valid");
        let error = PostgresOfflineStore::open(&db.settings, contract, "worker-a")
            .err()
            .expect("refused");
        assert!(
            error.to_string().contains("driftline_events.transaction_amount"),
            "{error}"
        );
    }
}

//! Against a real Redis (see [`super::testing`]): every test writes under a key prefix of
//! its own and deletes its keys at the end.

use driftline_core::config::{Config, OnlineBackend, RedisSettings};
use driftline_core::event::{Event, FieldValue};
use driftline_core::time::Timestamp;
use driftline_stream::log::{LogConfig, LogReader, LogWriter};

use super::testing::test_redis;
use super::*;
use crate::ingest::Ingestor;
use crate::paths::DataPaths;

fn state_with(events: usize, seed: u64) -> EntityState {
    let spec = Config::fraud_default().features;
    let mut state = EntityState::new(3);
    for i in 0..events {
        let event = Event {
            event_id: format!("ev-{seed:04}-{i:06}"),
            entity: "u".into(),
            ts: Timestamp::from_unix_seconds(1_700_000_000 + (i as i64) * 60),
            label: None,
            values: vec![
                FieldValue::Number((seed as f64) + i as f64 * 0.5),
                FieldValue::Category((i % 7) as u16),
                if i % 5 == 0 {
                    FieldValue::Missing
                } else {
                    FieldValue::Category((i % 3) as u16)
                },
            ],
        };
        state.apply(&event, &spec);
    }
    state
}

fn bytes_of(state: &EntityState) -> Vec<u8> {
    let mut out = Vec::new();
    state.encode(&mut out);
    out
}

#[test]
fn states_round_trip_with_their_ttl() {
    let Some(redis) = test_redis() else { return };
    let store = RedisOnlineStore::open(&redis.settings, 7).unwrap();
    let (a, b) = (state_with(40, 1), state_with(3, 2));
    store.put_batch(&[("alice", &a), ("bob", &b)]).unwrap();
    let got = store.get_many(&["bob", "nobody", "alice"]).unwrap();
    assert_eq!(got[0].as_ref().map(bytes_of), Some(bytes_of(&b)));
    assert!(got[1].is_none());
    assert_eq!(got[2].as_ref().map(bytes_of), Some(bytes_of(&a)));

    let mut raw = redis.connection();
    let key = state_key(&redis.settings.key_prefix, "alice");
    let ttl: i64 = redis::cmd("TTL").arg(&key).query(&mut raw).unwrap();
    let configured = redis.settings.ttl_seconds as i64;
    assert!(ttl > configured - 60 && ttl <= configured, "TTL {ttl}");
    let value: Vec<u8> = redis::cmd("GET").arg(&key).query(&mut raw).unwrap();
    assert_eq!(
        decode_value(&value).unwrap().0,
        7,
        "the writer id is in the value"
    );

    let forever = RedisSettings {
        ttl_seconds: 0,
        ..redis.settings.clone()
    };
    RedisOnlineStore::open(&forever, 7)
        .unwrap()
        .put_batch(&[("alice", &a)])
        .unwrap();
    let ttl: i64 = redis::cmd("TTL").arg(&key).query(&mut raw).unwrap();
    assert_eq!(ttl, -1, "ttl_seconds = 0 writes keys without expiry");
}

#[test]
fn batches_of_thousands_go_in_one_pipeline_each_way() {
    let Some(redis) = test_redis() else { return };
    let store = RedisOnlineStore::open(&redis.settings, 1).unwrap();
    let names: Vec<String> = (0..3000).map(|i| format!("user-{i:05}")).collect();
    let states: Vec<EntityState> = (0..3000).map(|i| state_with(1 + i % 50, i as u64)).collect();
    let batch: Vec<(&str, &EntityState)> = names.iter().map(String::as_str).zip(&states).collect();
    store.put_batch(&batch).unwrap();
    let entities: Vec<&str> = names.iter().map(String::as_str).collect();
    let got = store.get_many(&entities).unwrap();
    assert_eq!(got.len(), 3000);
    for (state, got) in states.iter().zip(&got) {
        assert_eq!(got.as_ref().map(bytes_of), Some(bytes_of(state)));
    }
    assert_eq!(redis.keys().len(), 3000);
}

#[test]
fn only_states_another_writer_stored_are_foreign() {
    let Some(redis) = test_redis() else { return };
    let (ours, theirs) = (
        RedisOnlineStore::open(&redis.settings, 1).unwrap(),
        RedisOnlineStore::open(&redis.settings, 2).unwrap(),
    );
    let local = EmbeddedOnlineStore::default();
    local
        .put_batch(&[("a", &state_with(5, 1)), ("b", &state_with(6, 2))])
        .unwrap();
    ours.publish(&["a"], &local).unwrap();
    theirs.publish(&["b"], &local).unwrap();
    let seen = ours.foreign_states(&["a", "b", "c"]).unwrap();
    assert!(seen[0].is_none(), "our own write is not foreign");
    assert_eq!(seen[1].as_ref().map(bytes_of), Some(bytes_of(&state_with(6, 2))));
    assert!(seen[2].is_none(), "absent");
}

#[test]
fn an_unreadable_value_is_an_error_naming_its_key() {
    let Some(redis) = test_redis() else { return };
    let key = state_key(&redis.settings.key_prefix, "mangled");
    let _: () = redis::cmd("SET")
        .arg(&key)
        .arg(b"\x01\x02".as_slice())
        .query(&mut redis.connection())
        .unwrap();
    let store = RedisOnlineStore::open(&redis.settings, 1).unwrap();
    let error = store.get("mangled").unwrap_err().to_string();
    assert!(error.contains(&key), "{error}");
}

#[test]
fn an_unreachable_server_fails_opening_with_its_address() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let settings = RedisSettings {
        host: "127.0.0.1".into(),
        port,
        ..RedisSettings::default()
    };
    let error = RedisOnlineStore::open(&settings, 1).err().unwrap().to_string();
    assert!(error.contains(&format!("redis://127.0.0.1:{port}/0")), "{error}");
}

#[test]
fn the_async_reader_reads_what_ingest_wrote_and_answers_within_its_deadline_when_the_server_is_gone() {
    let Some(redis) = test_redis() else { return };
    let store = RedisOnlineStore::open(&redis.settings, 1).unwrap();
    let (a, b) = (state_with(30, 3), state_with(2, 4));
    store.put_batch(&[("a", &a), ("b", &b)]).unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let reader = RedisStateReader::new(&redis.settings).unwrap();
        assert_eq!(
            reader.get("a").await.unwrap().as_ref().map(bytes_of),
            Some(bytes_of(&a))
        );
        assert!(reader.get("zz").await.unwrap().is_none());
        let many = reader.get_many(&["b", "zz", "a"]).await.unwrap();
        let many: Vec<Option<Vec<u8>>> = many.iter().map(|s| s.as_ref().map(bytes_of)).collect();
        assert_eq!(many, [Some(bytes_of(&b)), None, Some(bytes_of(&a))]);
        assert!(reader.is_up());

        // A port nobody listens on: the first read fails, the next is not even tried.
        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = closed.local_addr().unwrap().port();
        drop(closed);
        let gone = RedisStateReader::new(&RedisSettings {
            port,
            ..redis.settings.clone()
        })
        .unwrap();
        let first = gone.get("a").await.unwrap_err();
        assert!(first.attempted(), "{first}");
        assert!(!gone.is_up());
        assert_eq!(gone.get("a").await.unwrap_err(), ReadError::Skipped);
    });
}

/// Appends `events` (JSON lines) to the log of a data directory.
fn append(paths: &DataPaths, lines: &[String]) {
    std::fs::create_dir_all(paths.log()).unwrap();
    let mut writer = LogWriter::open(&paths.log(), LogConfig::default()).unwrap();
    for line in lines {
        writer.append(line.as_bytes(), 1_700_100_000_000_000).unwrap();
    }
    writer.flush().unwrap();
}

fn event_line(user: usize, i: usize) -> String {
    format!(
        r#"{{"event_id":"evt-{user:03}-{i:06}","user_id":"user-{user:03}","transaction_amount":{},"country":"DE","device":"ios","event_ts":"2023-11-14T{:02}:{:02}:00Z"}}"#,
        10.0 + (i * 7 % 300) as f64,
        i / 60 % 24,
        i % 60
    )
}

fn ingest(config: &Config, paths: &DataPaths) -> Ingestor {
    let mut ingestor = Ingestor::open(config.clone(), paths.clone()).unwrap();
    let mut reader = LogReader::open(&paths.log()).unwrap();
    ingestor.run(&mut reader, false, &mut |_| {}).unwrap();
    ingestor
}

fn redis_config(settings: &RedisSettings) -> Config {
    let mut config = Config::fraud_default();
    config.settings.online_store.backend = OnlineBackend::Redis;
    config.settings.redis = settings.clone();
    config
}

#[test]
fn ingest_publishes_every_changed_entity_and_a_worker_taking_over_adopts_what_the_other_wrote() {
    let Some(redis) = test_redis() else { return };
    let config = redis_config(&redis.settings);
    let users = 20;
    let first: Vec<String> = (0..users)
        .flat_map(|u| (0..30).map(move |i| event_line(u, i)))
        .collect();
    let second: Vec<String> = (0..users)
        .flat_map(|u| (30..50).map(move |i| event_line(u, i)))
        .collect();
    // Worker A ingests the first part; worker B (another data directory, as after a
    // rebalance) gets the rest of the same users' events, plus a replay of A's last one.
    let tmp = tempfile::tempdir().unwrap();
    let (a, b, whole) = (
        DataPaths::new(tmp.path().join("a")),
        DataPaths::new(tmp.path().join("b")),
        DataPaths::new(tmp.path().join("whole")),
    );
    append(&a, &first);
    let worker_a = ingest(&config, &a);
    assert!(
        worker_a
            .shared_store()
            .unwrap()
            .contains(&redis.settings.key_prefix)
    );
    let mut replayed = vec![first.last().unwrap().clone()];
    replayed.extend(second.iter().cloned());
    append(&b, &replayed);
    let worker_b = ingest(&config, &b);
    assert_eq!(
        worker_b.stats().duplicates,
        1,
        "A's event, already in the adopted state"
    );
    assert_eq!(worker_b.stats().events, second.len() as u64);

    // One embedded run over all events is the reference.
    append(&whole, &[first.clone(), second.clone()].concat());
    let reference = ingest(&Config::fraud_default(), &whole);
    let store = RedisOnlineStore::open(&redis.settings, 99).unwrap();
    let names: Vec<String> = (0..users).map(|u| format!("user-{u:03}")).collect();
    let entities: Vec<&str> = names.iter().map(String::as_str).collect();
    for (entity, stored) in entities.iter().zip(store.get_many(&entities).unwrap()) {
        let expected = reference.store().with_state(entity, |s| bytes_of(s.unwrap()));
        assert_eq!(stored.as_ref().map(bytes_of), Some(expected), "{entity}");
        let local = worker_b.store().with_state(entity, |s| bytes_of(s.unwrap()));
        assert_eq!(
            local,
            bytes_of(stored.as_ref().unwrap()),
            "{entity}: B's own state too"
        );
    }
    assert_eq!(redis.keys().len(), users);
}

#[test]
fn a_restarted_worker_replays_onto_its_checkpoint_not_onto_its_own_later_writes() {
    let Some(redis) = test_redis() else { return };
    let mut config = redis_config(&redis.settings);
    config.settings.ingest.checkpoint_every = 100;
    config.settings.ingest.batch_size = 25;
    let lines: Vec<String> = (0..10)
        .flat_map(|u| (0..40).map(move |i| event_line(u, i)))
        .collect();
    let tmp = tempfile::tempdir().unwrap();
    let paths = DataPaths::new(tmp.path().join("w"));
    append(&paths, &lines);
    {
        // Process past the checkpoint at 300 without committing: as if killed at 375.
        let mut ingestor = Ingestor::open(config.clone(), paths.clone()).unwrap();
        let mut reader = LogReader::open(&paths.log()).unwrap();
        let mut batch = driftline_stream::log::RecordBatch::new();
        while ingestor.next_offset() < 375 {
            reader.read_into(25, &mut batch).unwrap();
            ingestor.process(&batch).unwrap();
            if ingestor.next_offset().is_multiple_of(100) {
                ingestor.checkpoint().unwrap();
            }
        }
    }
    let restarted = ingest(&config, &paths);
    assert_eq!(
        restarted.stats().duplicates,
        0,
        "the tail was re-applied, not refused"
    );
    assert_eq!(restarted.stats().events, 400);
    let reference = ingest(&Config::fraud_default(), &{
        let whole = DataPaths::new(tmp.path().join("whole"));
        append(&whole, &lines);
        whole
    });
    let store = RedisOnlineStore::open(&redis.settings, 99).unwrap();
    for u in 0..10 {
        let entity = format!("user-{u:03}");
        let expected = reference.store().with_state(&entity, |s| bytes_of(s.unwrap()));
        assert_eq!(
            store.get(&entity).unwrap().as_ref().map(bytes_of),
            Some(expected),
            "{entity}"
        );
    }
}

/// Lines of `users` users' events `from..to`, interleaved (every user in turn), so each
/// batch of a few dozen touches every user.
fn interleaved(users: usize, from: usize, to: usize) -> Vec<String> {
    (from..to)
        .flat_map(|i| (0..users).map(move |u| event_line(u, i)))
        .collect()
}

/// Consumes the log of `paths` up to `stop`, checkpointing every 100 records, then drops
/// the ingestor without a final checkpoint: a worker killed at `stop`.
fn ingest_until_killed(config: &Config, paths: &DataPaths, stop: u64) {
    let mut ingestor = Ingestor::open(config.clone(), paths.clone()).unwrap();
    let mut reader = LogReader::open(&paths.log()).unwrap();
    let mut batch = driftline_stream::log::RecordBatch::new();
    while ingestor.next_offset() < stop {
        reader.read_into(25, &mut batch).unwrap();
        ingestor.process(&batch).unwrap();
        if ingestor.next_offset().is_multiple_of(100) {
            ingestor.checkpoint().unwrap();
        }
    }
}

/// The data directories of workers A and B under `root`, after A consumed the first 40
/// events of each of `users` users, checkpointing at 300 and killed at 375 (having
/// published states through 375).
fn two_workers_a_killed_at_375(
    config: &Config,
    root: &std::path::Path,
    users: usize,
) -> (DataPaths, DataPaths) {
    let (a, b) = (DataPaths::new(root.join("a")), DataPaths::new(root.join("b")));
    append(&a, &interleaved(users, 0, 40));
    ingest_until_killed(config, &a, 375);
    (a, b)
}

fn small_batches(mut config: Config) -> Config {
    config.settings.ingest.checkpoint_every = 100;
    config.settings.ingest.batch_size = 25;
    config
}

#[test]
fn a_restarted_worker_replaying_its_tail_never_overwrites_what_a_worker_that_took_over_stored_since() {
    let Some(redis) = test_redis() else { return };
    let config = small_batches(redis_config(&redis.settings));
    let users = 10;
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = two_workers_a_killed_at_375(&config, tmp.path(), users);
    // A restarts and replays the first batch of its tail: every user is verified against
    // Redis in this epoch (A's own writes: the local replay is kept).
    let mut restarted = Ingestor::open(config.clone(), a.clone()).unwrap();
    let mut reader = LogReader::open(&a.log()).unwrap();
    reader.seek(restarted.next_offset()).unwrap();
    let mut batch = driftline_stream::log::RecordBatch::new();
    reader.read_into(25, &mut batch).unwrap();
    restarted.process(&batch).unwrap();
    // Meanwhile B took the partition over: Kafka redelivers from A's committed 300, then
    // newer events. B adopts A's states and moves every user on.
    append(&b, &interleaved(users, 30, 50));
    let worker_b = ingest(&config, &b);
    assert_eq!(
        worker_b.stats().duplicates,
        75,
        "A's published tail, held by the adopted states"
    );
    // A goes on replaying its tail: states older than what B stored.
    while restarted.next_offset() < 400 {
        reader.read_into(25, &mut batch).unwrap();
        restarted.process(&batch).unwrap();
    }
    assert_eq!(restarted.stats().duplicates, 0, "A re-applied its own tail");

    let whole = DataPaths::new(tmp.path().join("whole"));
    append(&whole, &interleaved(users, 0, 50));
    let reference = ingest(&Config::fraud_default(), &whole);
    let store = RedisOnlineStore::open(&redis.settings, 99).unwrap();
    for u in 0..users {
        let entity = format!("user-{u:03}");
        let expected = reference.store().with_state(&entity, |s| s.map(bytes_of));
        let stored = store.get(&entity).unwrap();
        assert_eq!(stored.as_ref().map(|s| s.applied()), Some(50), "{entity}");
        assert_eq!(stored.as_ref().map(bytes_of), expected, "{entity}");
    }
}

#[test]
fn values_without_a_version_are_read_and_replaced_by_any_version() {
    let Some(redis) = test_redis() else { return };
    let key = state_key(&redis.settings.key_prefix, "old");
    let state = state_with(12, 5);
    // Written before states counted their events: state format 1, the count left out.
    let mut old = vec![VALUE_FORMAT];
    old.extend_from_slice(&3u64.to_le_bytes());
    old.push(1);
    old.extend_from_slice(&bytes_of(&state)[9..]);
    let _: () = redis::cmd("SET")
        .arg(&key)
        .arg(old.as_slice())
        .query(&mut redis.connection())
        .unwrap();
    let store = RedisOnlineStore::open(&redis.settings, 1).unwrap();
    let (writer, read) = decode_value(&old).unwrap();
    assert_eq!((writer, bytes_of(&read)), (3, bytes_of(&state)));
    let local = EmbeddedOnlineStore::default();
    local.put_batch(&[("old", &state_with(2, 6))]).unwrap();
    assert_eq!(
        store.publish(&["old"], &local).unwrap(),
        0,
        "nothing to compare with"
    );
    assert_eq!(store.get("old").unwrap().map(|s| s.applied()), Some(2));
}

#[test]
fn a_publish_stores_each_state_unless_the_key_holds_a_later_version() {
    let Some(redis) = test_redis() else { return };
    let (ours, theirs) = (
        RedisOnlineStore::open(&redis.settings, 1).unwrap(),
        RedisOnlineStore::open(&redis.settings, 2).unwrap(),
    );
    let (behind, ahead) = (EmbeddedOnlineStore::default(), EmbeddedOnlineStore::default());
    // Versions 256 and 257 differ only above the lowest byte: compared as numbers.
    behind
        .put_batch(&[("x", &state_with(257, 1)), ("y", &state_with(4, 1))])
        .unwrap();
    ahead
        .put_batch(&[
            ("x", &state_with(256, 1)),
            ("y", &state_with(9, 1)),
            ("z", &state_with(1, 1)),
        ])
        .unwrap();
    assert_eq!(theirs.publish(&["x", "y", "z"], &ahead).unwrap(), 0);
    assert_eq!(ours.publish(&["x", "y"], &behind).unwrap(), 1, "y is behind");
    let stored = |e: &str| ours.get(e).unwrap().map(|s| s.applied());
    assert_eq!(
        (stored("x"), stored("y"), stored("z")),
        (Some(257), Some(9), Some(1))
    );
    assert_eq!(
        ours.publish(&["y"], &ahead).unwrap(),
        0,
        "an equal version is stored"
    );
    assert!(ours.foreign_states(&["y"]).unwrap()[0].is_none(), "ours again");
}

#[cfg(feature = "postgres")]
#[test]
fn events_a_killed_worker_applied_but_never_committed_reach_a_shared_history_through_the_worker_that_took_over()
 {
    use crate::offline::OfflineStore;
    use crate::offline_pg::tests::TestDatabase;
    let Some(redis) = test_redis() else { return };
    let Some(database) = TestDatabase::create() else {
        return;
    };
    let mut config = small_batches(redis_config(&redis.settings));
    config.settings.offline_store.backend = driftline_core::config::OfflineBackend::Postgres;
    config.settings.postgres = database.settings.clone();
    let users = 10;
    let tmp = tempfile::tempdir().unwrap();
    // A commits history through 300, publishes states through 375, and never comes back.
    let (_, b) = two_workers_a_killed_at_375(&config, tmp.path(), users);
    append(&b, &interleaved(users, 30, 50));
    let worker_b = ingest(&config, &b);
    assert_eq!(worker_b.stats().duplicates, 75);
    let mut stored = 0;
    database
        .open("reader")
        .scan(None, None, &mut |events| {
            stored += events.len();
            Ok(())
        })
        .unwrap();
    assert_eq!(stored, 500, "history holds every event once");
}

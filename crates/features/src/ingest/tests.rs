//! Ingest end to end on real logs: the online/training equality property, dead letters,
//! crash recovery, read-only restore and the single-process lock.

use std::collections::HashMap;

use driftline_core::config::Config;
use driftline_core::features::FeatureVector;
use driftline_stream::log::{FsyncPolicy, LogConfig, LogWriter};
use proptest::prelude::*;

use super::*;
use crate::compute::FeatureEngine;
use crate::state::{AsOf, EventKey};
use crate::training::{TrainingWindow, replay};

const COUNTRIES: [&str; 7] = ["US", "CA", "GB", "DE", "FR", "IN", "BR"];
const DEVICES: [&str; 3] = ["ios", "android", "web"];
const T0: i64 = 1_709_251_200;

fn config(checkpoint_every: usize) -> Config {
    let mut settings = driftline_core::config::Settings::default();
    settings.ingest.checkpoint_every = checkpoint_every;
    settings.ingest.batch_size = 7;
    Config::check(settings).unwrap()
}

fn payload(
    id: usize,
    user: usize,
    ts: i64,
    amount: f64,
    country: usize,
    device: usize,
    label: bool,
) -> Vec<u8> {
    let ts = Timestamp::from_unix_seconds(ts).to_rfc3339();
    format!(
        r#"{{"event_id":"evt-{id:010}","user_id":"user-{user}","transaction_amount":{amount},"country":"{}","device":"{}","event_ts":"{ts}","label":{}}}"#,
        COUNTRIES[country],
        DEVICES[device],
        u8::from(label)
    )
    .into_bytes()
}

fn write_log(paths: &DataPaths, payloads: &[Vec<u8>]) {
    let mut writer = LogWriter::open(
        &paths.log(),
        LogConfig {
            fsync: FsyncPolicy::Never,
            ..LogConfig::default()
        },
    )
    .unwrap();
    for p in payloads {
        writer.append(p, chrono::Utc::now().timestamp_micros()).unwrap();
    }
    writer.flush().unwrap();
}

fn ingest_all(config: &Config, paths: &DataPaths) -> Ingestor {
    let mut ingestor = Ingestor::open(config.clone(), paths.clone()).unwrap();
    let mut reader = LogReader::open(&paths.log()).unwrap();
    ingestor.run(&mut reader, false, &mut |_| {}).unwrap();
    ingestor
}

fn training_rows(config: &Config, paths: &DataPaths) -> Vec<(Event, FeatureVector)> {
    let engine = FeatureEngine::from_config(config);
    let offline = ParquetOfflineStore::new(paths.offline(), config.contract.clone());
    let mut rows = Vec::new();
    replay(&offline, &engine, TrainingWindow::default(), &mut |e, v| {
        rows.push((e.clone(), v.clone()));
        Ok(())
    })
    .unwrap();
    rows
}

fn snapshot_bytes(ingestor: &Ingestor, dir: &Path) -> Vec<u8> {
    let path = dir.join("compare.bin");
    ingestor.store().write_snapshot(&path).unwrap();
    fs::read(path).unwrap()
}

/// (user, ts, amount, country, device, label, arrival delay in seconds)
type Spec = (usize, i64, u16, usize, usize, bool, i64);

fn stream() -> impl Strategy<Value = Vec<Spec>> {
    prop::collection::vec(
        (
            0usize..4,
            1i64..900,
            1u16..2000,
            0usize..7,
            0usize..3,
            any::<bool>(),
            0i64..900,
        ),
        1..120,
    )
}

/// Events in arrival order, with event times that advance and arrive up to 15 min late
/// (some beyond the 10 min allowed lateness), plus replays of a few of them.
fn payloads_of(spec: &[Spec]) -> Vec<Vec<u8>> {
    let mut ts = T0;
    let mut arrivals: Vec<(i64, Vec<u8>)> = spec
        .iter()
        .enumerate()
        .map(|(i, &(user, step, amount, country, device, label, delay))| {
            ts += step;
            let amount = f64::from(amount) / 4.0;
            (ts + delay, payload(i, user, ts, amount, country, device, label))
        })
        .collect();
    arrivals.sort_by_key(|(arrival, _)| *arrival);
    let mut payloads: Vec<Vec<u8>> = arrivals.into_iter().map(|(_, p)| p).collect();
    let replays: Vec<Vec<u8>> = payloads.iter().step_by(5).cloned().collect();
    payloads.extend(replays);
    payloads
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(40))]

    /// The property the whole design rests on: for every ingested event, the vector the
    /// online state gives for it equals its training-set row, bit for bit.
    #[test]
    fn online_vectors_equal_training_rows(spec in stream()) {
        let dir = tempfile::tempdir().unwrap();
        let paths = DataPaths::new(dir.path());
        let config = config(13);
        write_log(&paths, &payloads_of(&spec));
        let ingestor = ingest_all(&config, &paths);
        let engine = FeatureEngine::from_config(&config);
        let rows = training_rows(&config, &paths);
        prop_assert_eq!(rows.len() as u64, ingestor.stats().events);
        for (event, row) in &rows {
            let online = ingestor.store().with_state(&event.entity, |state| {
                engine.vector(state.unwrap(), Some(event), AsOf::Before(EventKey::of(event)))
            });
            prop_assert!(online.same_as(row), "event {}: online {:?} != training {:?}", event.event_id, online.values, row.values);
        }
        let stats = ingestor.stats();
        prop_assert_eq!(stats.records, stats.events + stats.dead_lettered());
    }
}

#[test]
fn every_record_is_counted_once_and_every_refusal_has_a_reason() {
    let dir = tempfile::tempdir().unwrap();
    let paths = DataPaths::new(dir.path());
    let mut payloads = vec![
        payload(1, 1, T0, 10.0, 0, 0, false),
        payload(2, 1, T0 + 3600, 20.0, 0, 0, false),
        b"{not json".to_vec(),
        payload(1, 1, T0, 10.0, 0, 0, false),
        payload(3, 1, T0 - 3600, 5.0, 0, 0, false),
        br#"{"user_id":"u","transaction_amount":9999,"country":"XX","device":"ios","event_ts":"2024-03-01T00:00:00Z"}"#.to_vec(),
        br#"{"event_id":"evt-0000000002","label":1}"#.to_vec(),
    ];
    payloads.push(payload(4, 2, T0, 1.0, 1, 1, true));
    write_log(&paths, &payloads);
    let ingestor = ingest_all(&config(100), &paths);
    let stats = ingestor.stats();
    assert_eq!(
        stats,
        IngestStats {
            records: 8,
            events: 3,
            labels: 1,
            invalid: 2,
            duplicates: 1,
            late: 1
        }
    );
    let letters: Vec<serde_json::Value> = fs::read_to_string(paths.dead_letters())
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let kinds: Vec<&str> = letters.iter().map(|l| l["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["invalid", "duplicate", "late", "invalid"]);
    assert_eq!(letters[0]["offset"], 2);
    assert!(
        letters[0]["reason"]
            .as_str()
            .unwrap()
            .contains("not a valid JSON object")
    );
    assert_eq!(
        letters[3]["errors"].as_array().unwrap().len(),
        2,
        "amount and country both reported"
    );
    let rows = training_rows(&config(100), &paths);
    let labelled = rows.iter().find(|(e, _)| e.event_id == "evt-0000000002").unwrap();
    assert_eq!(
        labelled.0.label,
        Some(true),
        "the delayed label is joined on read"
    );
}

#[test]
fn a_crash_between_checkpoints_recovers_to_the_state_of_an_uninterrupted_run() {
    let spec: Vec<Spec> = (0..400)
        .map(|i| {
            (
                i % 7,
                1 + (i as i64 * 37) % 200,
                (i * 13 % 1999) as u16 + 1,
                i % 7,
                i % 3,
                i % 11 == 0,
                (i as i64 * 53) % 700,
            )
        })
        .collect();
    let mut payloads = payloads_of(&spec);
    payloads.insert(100, b"garbage".to_vec());
    payloads.insert(300, b"{\"user_id\": 5}".to_vec());
    let config = config(50);

    let clean_dir = tempfile::tempdir().unwrap();
    let clean = DataPaths::new(clean_dir.path());
    write_log(&clean, &payloads);
    let uninterrupted = ingest_all(&config, &clean);

    let dir = tempfile::tempdir().unwrap();
    let paths = DataPaths::new(dir.path());
    write_log(&paths, &payloads);
    {
        // Consume part of the log: some checkpoints land, then the process dies with
        // uncommitted history files and dead letters on disk.
        let mut ingestor = Ingestor::open(config.clone(), paths.clone()).unwrap();
        let mut reader = LogReader::open(&paths.log()).unwrap();
        let mut batch = RecordBatch::new();
        for _ in 0..41 {
            reader.read_into(7, &mut batch).unwrap();
            ingestor.process(&batch).unwrap();
            if ingestor.uncommitted() >= 50 {
                ingestor.checkpoint().unwrap();
            }
        }
        let uncommitted = ingestor.committed_offset..ingestor.next_offset;
        assert!(!uncommitted.is_empty());
        ingestor
            .offline
            .append(uncommitted, &ingestor.pending_events, &ingestor.pending_labels)
            .unwrap();
        ingestor.dead_letters.as_mut().unwrap().sync().unwrap();
    }
    let resumed = ingest_all(&config, &paths);

    assert_eq!(resumed.stats(), uninterrupted.stats());
    assert_eq!(
        snapshot_bytes(&resumed, dir.path()),
        snapshot_bytes(&uninterrupted, clean_dir.path())
    );
    // The two logs were written at different moments, so compare letters without it.
    let letters = |paths: &DataPaths| -> Vec<String> {
        fs::read_to_string(paths.dead_letters())
            .unwrap()
            .lines()
            .map(|l| {
                let mut v: serde_json::Value = serde_json::from_str(l).unwrap();
                v.as_object_mut().unwrap().remove("received_at");
                v.to_string()
            })
            .collect()
    };
    let (resumed_letters, clean_letters) = (letters(&paths), letters(&clean));
    assert!(
        resumed_letters.len() > 2,
        "replays and garbage were dead-lettered"
    );
    assert!(
        resumed_letters == clean_letters,
        "{resumed_letters:#?} != {clean_letters:#?}"
    );
    let ids =
        |rows: Vec<(Event, FeatureVector)>| rows.into_iter().map(|(e, _)| e.event_id).collect::<Vec<_>>();
    assert_eq!(
        ids(training_rows(&config, &paths)),
        ids(training_rows(&config, &clean))
    );
}

#[test]
fn readers_restore_state_from_the_snapshot_plus_the_log_tail() {
    let dir = tempfile::tempdir().unwrap();
    let paths = DataPaths::new(dir.path());
    let spec: Vec<Spec> = (0..100).map(|i| (i % 3, 30, 100, 0, 0, false, 0)).collect();
    let payloads = payloads_of(&spec);
    let config = config(1_000_000);
    write_log(&paths, &payloads[..60]);
    let ingested = ingest_all(&config, &paths);
    drop(ingested);
    write_log(&paths, &payloads[60..]);
    let restored = Ingestor::restore(config.clone(), paths.clone()).unwrap();
    assert_eq!(restored.next_offset(), payloads.len() as u64);
    let full_dir = tempfile::tempdir().unwrap();
    let full = DataPaths::new(full_dir.path());
    write_log(&full, &payloads);
    let from_scratch = ingest_all(&config, &full);
    assert_eq!(
        snapshot_bytes(&restored, dir.path()),
        snapshot_bytes(&from_scratch, full_dir.path())
    );
    assert!(
        Checkpoint::load(&paths).unwrap().unwrap().next_offset == 60,
        "readers never commit"
    );
    let mut counts: HashMap<String, usize> = HashMap::new();
    for e in ["user-0", "user-1", "user-2"] {
        counts.insert(e.into(), restored.store().with_state(e, |s| s.unwrap().len()));
    }
    assert_eq!(
        counts.values().sum::<usize>(),
        100,
        "the 20 replays are not applied twice"
    );
}

#[test]
fn a_second_ingest_process_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let paths = DataPaths::new(dir.path());
    let _first = Ingestor::open(config(10), paths.clone()).unwrap();
    let second = Ingestor::open(config(10), paths);
    assert!(matches!(second, Err(IngestError::Locked(_))));
}

//! Against a real broker: `DRIFTLINE_TEST_KAFKA_BROKERS` (default 127.0.0.1:9092; CI's
//! `.ci/services/kafka.sh` starts one). Without one the tests print why and pass, unless
//! `DRIFTLINE_REQUIRE_BACKENDS=1`, when they fail.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use driftline_core::config::KafkaSettings;

use super::*;
use crate::log::{FsyncPolicy, LogConfig, LogReader, RecordBatch};

/// Settings for a fresh topic of `partitions`, or `None` (after saying why) when no
/// broker is reachable and none is required.
fn broker(partitions: i32) -> Option<KafkaSettings> {
    let brokers =
        std::env::var("DRIFTLINE_TEST_KAFKA_BROKERS").unwrap_or_else(|_| "127.0.0.1:9092".to_string());
    let unique = format!(
        "{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    );
    let settings = KafkaSettings {
        brokers: brokers.clone(),
        topic: format!("driftline-test-{unique}"),
        group: format!("driftline-test-group-{unique}"),
        ..KafkaSettings::default()
    };
    if let Err(error) = admin::probe(&settings, Duration::from_secs(5)) {
        if std::env::var("DRIFTLINE_REQUIRE_BACKENDS").as_deref() == Ok("1") {
            panic!("Kafka at {brokers} is required (DRIFTLINE_REQUIRE_BACKENDS=1): {error}");
        }
        eprintln!("skipping: no Kafka broker at {brokers} ({error}); set DRIFTLINE_TEST_KAFKA_BROKERS");
        return None;
    }
    admin::create_topic(&settings, &settings.topic, partitions).unwrap();
    Some(settings)
}

fn log_config() -> LogConfig {
    LogConfig {
        fsync: FsyncPolicy::Never,
        ..LogConfig::default()
    }
}

fn produce(settings: &KafkaSettings, count: usize) -> Vec<Vec<u8>> {
    let mut sink = KafkaSink::connect(settings).unwrap();
    let payloads: Vec<Vec<u8>> = (0..count)
        .map(|i| format!("{{\"user_id\":\"user-{:03}\",\"n\":{i}}}", i % 37).into_bytes())
        .collect();
    for (i, payload) in payloads.iter().enumerate() {
        sink.send(format!("user-{:03}", i % 37).as_bytes(), payload)
            .unwrap();
    }
    assert_eq!(sink.finish().unwrap().delivered, count as u64);
    payloads
}

/// Pumps until the feed is caught up; returns the messages appended.
fn drain(feed: &mut KafkaFeed) -> usize {
    let started = Instant::now();
    let mut appended = 0;
    loop {
        let pumped = feed.pump(Duration::from_millis(100)).unwrap();
        appended += pumped.appended;
        if pumped.caught_up {
            return appended;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "not caught up after 60 s"
        );
    }
}

fn log_payloads(dir: &std::path::Path) -> Vec<Vec<u8>> {
    let mut reader = LogReader::open(dir).unwrap();
    let mut batch = RecordBatch::new();
    let mut all = Vec::new();
    while reader.read_into(1000, &mut batch).unwrap() > 0 {
        all.extend(batch.iter().map(|r| r.payload.to_vec()));
    }
    all
}

/// Each entity's payloads in log order: what must match, since a key's messages keep
/// their order within its partition but partitions interleave freely.
fn by_entity(payloads: &[Vec<u8>]) -> BTreeMap<String, Vec<Vec<u8>>> {
    let mut map: BTreeMap<String, Vec<Vec<u8>>> = BTreeMap::new();
    for p in payloads {
        let value: serde_json::Value = serde_json::from_slice(p).unwrap();
        map.entry(value["user_id"].as_str().unwrap().to_string())
            .or_default()
            .push(p.clone());
    }
    map
}

#[test]
fn a_keyed_topic_reaches_the_log_whole_and_in_order_per_entity() {
    let Some(settings) = broker(3) else { return };
    let produced = produce(&settings, 5_000);
    let dir = tempfile::tempdir().unwrap();
    let progress = dir.path().join("kafka.json");
    let mut feed = KafkaFeed::open(&settings, &dir.path().join("log"), log_config(), progress, 1000).unwrap();
    assert_eq!(drain(&mut feed), 5_000);
    assert_eq!(feed.assigned(), vec![0, 1, 2]);
    let logged = log_payloads(&dir.path().join("log"));
    assert_eq!(by_entity(&logged), by_entity(&produced));
    feed.commit(logged.len() as u64).unwrap();
    assert_eq!(feed.stats().commits, 1);
}

#[test]
fn a_restart_before_any_commit_appends_nothing_twice() {
    let Some(settings) = broker(2) else { return };
    produce(&settings, 2_000);
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("log");
    let progress = dir.path().join("kafka.json");
    let mut feed = KafkaFeed::open(&settings, &log, log_config(), progress.clone(), 500).unwrap();
    assert_eq!(drain(&mut feed), 2_000);
    drop(feed); // no commit: Kafka redelivers everything to the next member

    let more = produce(&settings, 300);
    let mut feed = KafkaFeed::open(&settings, &log, log_config(), progress, 500).unwrap();
    assert_eq!(drain(&mut feed), 300, "only the new messages");
    let logged = log_payloads(&log);
    assert_eq!(logged.len(), 2_300);
    assert!(more.iter().all(|m| logged.contains(m)));
}

#[test]
fn a_committed_group_resumes_after_its_commit_in_a_fresh_data_directory() {
    let Some(settings) = broker(1) else { return };
    produce(&settings, 1_000);
    let first = tempfile::tempdir().unwrap();
    let mut feed = KafkaFeed::open(
        &settings,
        &first.path().join("log"),
        log_config(),
        first.path().join("kafka.json"),
        256,
    )
    .unwrap();
    assert_eq!(drain(&mut feed), 1_000);
    feed.commit(1_000).unwrap();
    drop(feed);
    produce(&settings, 10);
    // Another worker of the group, with nothing recorded locally, starts at the commit.
    let second = tempfile::tempdir().unwrap();
    let mut feed = KafkaFeed::open(
        &settings,
        &second.path().join("log"),
        log_config(),
        second.path().join("kafka.json"),
        256,
    )
    .unwrap();
    assert_eq!(drain(&mut feed), 10);
}

#[test]
fn a_missing_topic_is_named() {
    let Some(mut settings) = broker(1) else { return };
    settings.topic = format!("{}-absent", settings.topic);
    let err = KafkaSink::connect(&settings).err().unwrap().to_string();
    assert!(err.contains("does not exist"), "{err}");
}

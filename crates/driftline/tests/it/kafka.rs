//! `gen --to kafka` and `ingest --from kafka` against a real broker, as a user runs them.
//!
//! The broker is `DRIFTLINE_TEST_KAFKA_BROKERS` (default 127.0.0.1:9092; CI's
//! `.ci/services/kafka.sh` starts one). Without one these tests print why and pass,
//! unless `DRIFTLINE_REQUIRE_BACKENDS=1`, when they fail. Each test makes its own topic.

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use driftline_core::config::KafkaSettings;
use driftline_stream::kafka::{KafkaSink, admin};

use super::{checkpoint, dead_letters, driftline, events_with_bad_lines, stdout};

fn required() -> bool {
    std::env::var("DRIFTLINE_REQUIRE_BACKENDS").as_deref() == Ok("1")
}

/// A fresh topic of `partitions` on the test broker, or `None` (having said why).
pub(super) fn topic(partitions: i32) -> Option<KafkaSettings> {
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
        topic: format!("driftline-e2e-{unique}"),
        group: format!("driftline-e2e-{unique}"),
        ..KafkaSettings::default()
    };
    if let Err(error) = admin::probe(&settings, Duration::from_secs(5)) {
        assert!(
            !required(),
            "Kafka at {brokers} is required (DRIFTLINE_REQUIRE_BACKENDS=1): {error}"
        );
        eprintln!("skipping: no Kafka broker at {brokers} ({error}); set DRIFTLINE_TEST_KAFKA_BROKERS");
        return None;
    }
    admin::create_topic(&settings, &settings.topic, partitions).unwrap();
    Some(settings)
}

/// `driftline` with the broker and topic from the environment, as the reference stack
/// passes them, and the group from `config` (a file name in `dir`). A short session
/// timeout lets a restarted worker rejoin soon after a `kill -9`; with librdkafka's
/// default (45 s) the group waits that long for the dead member.
pub(super) fn with_kafka(dir: &Path, kafka: &KafkaSettings, config: &str, group: &str) -> Command {
    std::fs::write(
        dir.join(config),
        format!(
            "[kafka]\ngroup = \"{group}\"\n\n[kafka.properties]\n\"session.timeout.ms\" = 6000\n\n[ingest]\ncheckpoint_every = 5000\nbatch_size = 512\n"
        ),
    )
    .unwrap();
    let mut command = driftline(dir);
    command
        .env("REDPANDA_BROKERS", &kafka.brokers)
        .env("EVENT_TOPIC", &kafka.topic)
        .args(["--config", config]);
    command
}

pub(super) fn ok(mut command: Command, args: &[&str]) -> Output {
    let output = command.args(args).output().expect("driftline runs");
    assert!(
        output.status.success(),
        "driftline {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

fn training_set(dir: &Path, data: &Path) -> String {
    let out = dir.join(format!("{}.csv", data.file_name().unwrap().to_str().unwrap()));
    super::run(
        dir,
        &[
            "--data-dir",
            data.to_str().unwrap(),
            "features",
            "training-set",
            "--out",
            out.to_str().unwrap(),
        ],
    );
    std::fs::read_to_string(out).unwrap()
}

fn features(dir: &Path, data: &Path, user: &str) -> String {
    stdout(&super::run(
        dir,
        &["--data-dir", data.to_str().unwrap(), "features", "get", user],
    ))
}

/// Produces each line of `file` keyed by its `user_id` (or `-` when it has none), one
/// message per record batch: tansu 0.6 answers a fetch from an offset inside a record
/// batch with the batches after it, losing the rest of that batch for any consumer that
/// resumes there (a broker bug; Kafka returns the batch holding the offset). With one
/// message per batch every resume point is a batch boundary.
pub(super) fn produce_lines(kafka: &KafkaSettings, file: &Path) -> usize {
    let mut producer_settings = kafka.clone();
    producer_settings
        .properties
        .insert("batch.num.messages".into(), "1".into());
    let mut sink = KafkaSink::connect(&producer_settings).unwrap();
    let text = std::fs::read_to_string(file).unwrap();
    for line in text.lines() {
        let key = serde_json::from_str::<serde_json::Value>(line)
            .ok()
            .and_then(|v| v["user_id"].as_str().map(str::to_string))
            .unwrap_or_else(|| "-".into());
        sink.send(key.as_bytes(), line.as_bytes()).unwrap();
    }
    sink.finish().unwrap().delivered as usize
}

#[test]
fn gen_to_kafka_then_ingest_from_kafka_equals_ingesting_the_same_file() {
    let Some(kafka) = topic(3) else { return };
    let dir = tempfile::tempdir().unwrap();
    let gen_args = [
        "gen",
        "--count",
        "20000",
        "--seed",
        "5",
        "--users",
        "300",
        "--out-of-order",
        "0.02",
    ];
    let produced = ok(
        with_kafka(dir.path(), &kafka, "k.toml", &kafka.group),
        &[&gen_args[..], &["--to", "kafka"]].concat(),
    );
    assert!(
        String::from_utf8_lossy(&produced.stderr).contains("produced 20,000 events"),
        "{}",
        String::from_utf8_lossy(&produced.stderr)
    );
    let file = dir.path().join("events.jsonl");
    super::run(
        dir.path(),
        &[&gen_args[..], &["--out", file.to_str().unwrap()]].concat(),
    );

    let from_file = dir.path().join("from-file");
    super::run(
        dir.path(),
        &[
            "--data-dir",
            from_file.to_str().unwrap(),
            "ingest",
            "--from",
            file.to_str().unwrap(),
        ],
    );
    let from_kafka = dir.path().join("from-kafka");
    let out = ok(
        with_kafka(dir.path(), &kafka, "k.toml", &kafka.group),
        &[
            "--data-dir",
            from_kafka.to_str().unwrap(),
            "ingest",
            "--from",
            "kafka",
        ],
    );
    let summary = stdout(&out);
    assert!(summary.contains("appended 20,000 messages"), "{summary}");
    assert!(summary.contains("partitions [0, 1, 2]"), "{summary}");

    assert_eq!(checkpoint(&from_kafka)["stats"], checkpoint(&from_file)["stats"]);
    assert!(
        training_set(dir.path(), &from_kafka) == training_set(dir.path(), &from_file),
        "training sets differ"
    );
    for user in ["user-00001", "user-00150", "user-00299"] {
        assert_eq!(
            features(dir.path(), &from_kafka, user),
            features(dir.path(), &from_file, user)
        );
    }

    // The group committed its offsets: a rerun has nothing new to append.
    let again = stdout(&ok(
        with_kafka(dir.path(), &kafka, "k.toml", &kafka.group),
        &[
            "--data-dir",
            from_kafka.to_str().unwrap(),
            "ingest",
            "--from",
            "kafka",
        ],
    ));
    assert!(again.contains("appended 0 messages"), "{again}");
}

/// Dead letters as a sorted list of (kind, record): log offsets differ between two runs,
/// since partitions interleave differently each time.
fn letters(data: &Path) -> Vec<(String, String)> {
    let mut letters: Vec<(String, String)> = dead_letters(data)
        .into_iter()
        .map(|l| {
            (
                l["kind"].as_str().unwrap().to_string(),
                l["record"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    letters.sort();
    letters
}

#[test]
fn kill_9_mid_kafka_ingest_then_restart_equals_a_clean_run() {
    let Some(kafka) = topic(3) else { return };
    let dir = tempfile::tempdir().unwrap();
    let (mixed, bad) = events_with_bad_lines(dir.path(), 60_000, 1_000);
    let produced = Instant::now();
    let total = produce_lines(&kafka, &mixed);
    eprintln!(
        "produced {total} messages in {:.1} s",
        produced.elapsed().as_secs_f64()
    );
    assert_eq!(total, 60_000 + bad);

    let (victim_group, fresh_group) = (
        format!("{}-victim", kafka.group),
        format!("{}-fresh", kafka.group),
    );
    let victim = dir.path().join("victim");
    let mut child = with_kafka(dir.path(), &kafka, "victim.toml", &victim_group)
        .args([
            "--data-dir",
            victim.to_str().unwrap(),
            "ingest",
            "--from",
            "kafka",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while !victim.join("state/checkpoint.json").exists() && started.elapsed() < Duration::from_secs(60) {
        std::thread::sleep(Duration::from_millis(2));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let interrupted_at = checkpoint(&victim)["next_offset"].as_u64().unwrap();
    assert!(interrupted_at < total as u64, "the kill came after the end");
    let restarted = Instant::now();
    let resumed = stdout(&ok(
        with_kafka(dir.path(), &kafka, "victim.toml", &victim_group),
        &[
            "--data-dir",
            victim.to_str().unwrap(),
            "ingest",
            "--from",
            "kafka",
        ],
    ));

    eprintln!("resumed in {:.1} s: {resumed}", restarted.elapsed().as_secs_f64());
    let fresh = dir.path().join("fresh");
    ok(
        with_kafka(dir.path(), &kafka, "fresh.toml", &fresh_group),
        &["--data-dir", fresh.to_str().unwrap(), "ingest", "--from", "kafka"],
    );

    let (a, b) = (checkpoint(&victim), checkpoint(&fresh));
    assert_eq!(
        a["stats"], b["stats"],
        "killed at offset {interrupted_at}; {resumed}"
    );
    assert_eq!(a["stats"]["events"], 60_000);
    assert_eq!(a["stats"]["duplicates"], 0, "nothing reached the log twice");
    assert_eq!(a["next_offset"], total, "the log holds each message once");
    let victim_letters = letters(&victim);
    assert_eq!(
        victim_letters.len(),
        bad,
        "every malformed message is dead-lettered"
    );
    assert!(victim_letters.iter().all(|(kind, _)| kind == "invalid"));
    assert!(victim_letters == letters(&fresh), "dead letters differ");
    for user in ["user-00001", "user-00017", "user-00150", "user-00299"] {
        assert_eq!(
            features(dir.path(), &victim, user),
            features(dir.path(), &fresh, user),
            "{user}"
        );
    }
    assert!(
        training_set(dir.path(), &victim) == training_set(dir.path(), &fresh),
        "training sets differ"
    );
}

/// The confluent-kafka Python package (librdkafka 2.x), if installed.
fn python_kafka() -> bool {
    let found = Command::new("python3")
        .args(["-c", "import confluent_kafka"])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !found {
        assert!(
            !required(),
            "the interop check needs python3 with confluent-kafka (pip install confluent-kafka)"
        );
        eprintln!("skipping: python3 -c 'import confluent_kafka' failed (pip install confluent-kafka)");
    }
    found
}

const PY_PRODUCE: &str = r#"
import sys, json
from confluent_kafka import Producer
brokers, topic, path = sys.argv[1:4]
p = Producer({"bootstrap.servers": brokers})
n = 0
for line in open(path):
    line = line.rstrip("\n")
    p.produce(topic, key=json.loads(line)["user_id"], value=line)
    n += 1
    if n % 1000 == 0:
        p.poll(0)
left = p.flush(30)
assert left == 0, f"{left} undelivered"
print(n)
"#;

const PY_CONSUME: &str = r#"
import sys, json, time
from confluent_kafka import Consumer, KafkaError
brokers, topic, group, want = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
c = Consumer({"bootstrap.servers": brokers, "group.id": group, "auto.offset.reset": "earliest"})
c.subscribe([topic])
seen, mismatched, deadline = 0, 0, time.time() + 60
while seen < want and time.time() < deadline:
    m = c.poll(0.5)
    if m is None or m.error():
        continue
    event = json.loads(m.value())
    if m.key().decode() != event["user_id"]:
        mismatched += 1
    seen += 1
c.close()
print(seen, mismatched)
"#;

#[test]
fn a_standard_client_produces_what_driftline_ingests_and_reads_what_it_produces() {
    let Some(kafka) = topic(2) else { return };
    if !python_kafka() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("events.jsonl");
    super::run(
        dir.path(),
        &[
            "gen",
            "--count",
            "3000",
            "--seed",
            "8",
            "--out",
            file.to_str().unwrap(),
        ],
    );
    let produced = Command::new("python3")
        .args([
            "-c",
            PY_PRODUCE,
            &kafka.brokers,
            &kafka.topic,
            file.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(
        produced.status.success(),
        "{}",
        String::from_utf8_lossy(&produced.stderr)
    );
    let out = stdout(&ok(
        with_kafka(dir.path(), &kafka, "k.toml", &kafka.group),
        &["ingest", "--from", "kafka"],
    ));
    assert!(out.contains("3,000 events"), "{out}");

    // And the other way: what driftline produces, a standard consumer reads, keyed by user.
    let other = topic(2).unwrap();
    ok(
        with_kafka(dir.path(), &other, "k.toml", &other.group),
        &["gen", "--count", "2000", "--seed", "9", "--to", "kafka"],
    );
    let consumed = Command::new("python3")
        .args([
            "-c",
            PY_CONSUME,
            &other.brokers,
            &other.topic,
            "py-reader",
            "2000",
        ])
        .output()
        .unwrap();
    assert!(
        consumed.status.success(),
        "{}",
        String::from_utf8_lossy(&consumed.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&consumed.stdout).trim(), "2000 0");
}

#[test]
fn a_missing_topic_is_one_clear_sentence() {
    let Some(kafka) = topic(1) else { return };
    let dir = tempfile::tempdir().unwrap();
    let absent = KafkaSettings {
        topic: format!("{}-absent", kafka.topic),
        ..kafka
    };
    let out = with_kafka(dir.path(), &absent, "k.toml", "g")
        .args(["ingest", "--from", "kafka"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("does not exist"), "{err}");
}

//! The whole scale-out deployment on loopback, as an operator runs it: two `ingest`
//! workers in one Kafka consumer group and two `serve` replicas, sharing Redis (online
//! state), PostgreSQL (offline store and registry) and S3 (artifacts).
//!
//! One worker is killed with SIGKILL mid-stream and restarted; when the topic is consumed,
//! PostgreSQL holds every event exactly once and Redis holds, for every user, exactly the
//! state a single embedded ingest of the same events produces. Both replicas answer from
//! that online state with the same scores, a label posted to either joins the prediction
//! where it was made, an alias change reaches both, exactly one is the controller, and
//! killing it hands the role to the other.
//!
//! Needs all four backends; without them it says why and passes, unless
//! `DRIFTLINE_REQUIRE_BACKENDS=1` (as under .ci/run), when it fails.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use driftline_core::config::{Config, KafkaSettings, RedisSettings};
use driftline_features::ingest::Ingestor;
use driftline_features::online::OnlineStore;
use driftline_features::paths::DataPaths;
use driftline_features::redis::testing::test_redis;

use super::kafka::{produce_lines, topic};
use super::redis::{encode_all, metric, predict, redis_states, users};
use super::replicas::{TestDatabase, is_controller, replica, sole_controller, wait_for};
use super::serve::{Server, free_port, http, train_without_gates};
use super::{checkpoint, driftline, run};

const EVENTS: usize = 30_000;
const USERS: usize = 300;

/// A fresh bucket on the test S3 server (moto creates one on an unsigned `PUT /name`), or
/// `None` having said why.
fn test_bucket() -> Option<(String, String)> {
    let endpoint =
        std::env::var("DRIFTLINE_TEST_S3_ENDPOINT").unwrap_or_else(|_| "http://127.0.0.1:5000".into());
    let address = endpoint.trim_start_matches("http://").trim_end_matches('/');
    let name = format!(
        "driftline-scale-out-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos()
    );
    let created = TcpStream::connect(address).and_then(|mut stream| {
        stream.set_read_timeout(Some(Duration::from_secs(5)))?;
        write!(
            stream,
            "PUT /{name} HTTP/1.1\r\nHost: {address}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        )?;
        let mut answer = String::new();
        stream.read_to_string(&mut answer)?;
        Ok(answer)
    });
    match created {
        Ok(answer) if answer.starts_with("HTTP/1.1 2") => Some((endpoint, name)),
        outcome => {
            assert!(
                std::env::var("DRIFTLINE_REQUIRE_BACKENDS").as_deref() != Ok("1"),
                "the S3 server at {endpoint} is required: {outcome:?}"
            );
            eprintln!("skipping: no S3 server at {endpoint} ({outcome:?})");
            None
        }
    }
}

/// The one configuration every process of the deployment reads.
fn shared_config(
    database: &TestDatabase,
    redis: &RedisSettings,
    kafka: &KafkaSettings,
    (endpoint, bucket): &(String, String),
) -> String {
    format!(
        "{registry}
[offline_store]
backend = \"postgres\"

[online_store]
backend = \"redis\"

[redis]
host = \"{redis_host}\"
port = {redis_port}
key_prefix = \"{prefix}\"

[object_store]
backend = \"s3\"
endpoint = \"{endpoint}\"
bucket = \"{bucket}\"
region = \"us-east-1\"
access_key = \"driftline-test\"
secret_key = \"driftline-test\"

[kafka]
brokers = \"{brokers}\"
topic = \"{topic}\"
group = \"{group}\"

[kafka.properties]
\"session.timeout.ms\" = 6000

[ingest]
checkpoint_every = 2000
checkpoint_interval = \"1s\"
batch_size = 256
",
        registry = database.config(),
        redis_host = redis.host,
        redis_port = redis.port,
        prefix = redis.key_prefix,
        brokers = kafka.brokers,
        topic = kafka.topic,
        group = kafka.group,
    )
}

/// A process directory holding the shared configuration (and its own data directory).
fn process_dir(root: &Path, name: &str, config: &str) -> std::path::PathBuf {
    let dir = root.join(name);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("driftline.toml"), config).unwrap();
    dir
}

/// `ingest --from kafka --follow` in `dir`, killed when dropped.
fn ingest_worker(dir: &Path) -> Server {
    Server(
        driftline(dir)
            .args(["ingest", "--from", "kafka", "--follow"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    )
}

/// The log offset a worker has checkpointed up to (0 before its first checkpoint).
fn checkpointed_offset(worker: &Path) -> u64 {
    std::fs::read(worker.join("driftline-data/state/checkpoint.json"))
        .ok()
        .and_then(|bytes| serde_json::from_slice::<serde_json::Value>(&bytes).ok())
        .and_then(|checkpoint| checkpoint["next_offset"].as_u64())
        .unwrap_or(0)
}

/// Writes the first `lines` lines of `from` to `to`, and the rest to `rest`.
fn split_lines(from: &Path, lines: usize, to: &Path, rest: &Path) {
    let text = std::fs::read_to_string(from).unwrap();
    let all: Vec<&str> = text.lines().collect();
    std::fs::write(to, all[..lines].join("\n") + "\n").unwrap();
    std::fs::write(rest, all[lines..].join("\n") + "\n").unwrap();
}

/// Events in the offline store (0 before a worker has created its table).
fn stored_events(database: &TestDatabase) -> usize {
    if database.scalar("SELECT to_regclass('driftline_events') IS NULL") == "t" {
        return 0;
    }
    database
        .scalar("SELECT count(*) FROM driftline_events")
        .parse()
        .expect("a count")
}

/// `/predict` for `user-{user}` (the reference quickstart body), which must answer 200.
fn predict_ok(port: u16, user: usize) -> serde_json::Value {
    let (status, json) = predict(port, user);
    assert_eq!(status, 200, "{json}");
    json
}

#[test]
fn two_ingest_workers_and_two_replicas_share_kafka_redis_postgres_and_s3() {
    let Some(database) = TestDatabase::create() else {
        return;
    };
    let Some(redis) = test_redis() else { return };
    let Some(kafka) = topic(4) else { return };
    let Some(bucket) = test_bucket() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let config = shared_config(&database, &redis.settings, &kafka, &bucket);

    let events = root.join("events.jsonl");
    run(
        root,
        &[
            "gen",
            "--count",
            &EVENTS.to_string(),
            "--users",
            &USERS.to_string(),
            "--seed",
            "8",
            "--out",
            events.to_str().unwrap(),
        ],
    );
    let (first, second) = (root.join("first.jsonl"), root.join("second.jsonl"));
    split_lines(&events, EVENTS / 2, &first, &second);

    // Phase 1: both workers consume the first half; a model is trained from PostgreSQL.
    assert_eq!(produce_lines(&kafka, &first), EVENTS / 2);
    let (worker_a, worker_b) = (
        process_dir(root, "worker-a", &config),
        process_dir(root, "worker-b", &config),
    );
    let mut workers = [Some(ingest_worker(&worker_a)), Some(ingest_worker(&worker_b))];
    wait_for(Duration::from_secs(120), "the first half in PostgreSQL", || {
        (stored_events(&database) == EVENTS / 2).then_some(())
    });
    let control = process_dir(root, "control", &config);
    for estimator in ["logistic", "gbt"] {
        train_without_gates(&control, estimator);
    }

    // Phase 2: the second half streams in; worker a is killed mid-stream and restarted.
    let a_before = checkpointed_offset(&worker_a);
    let killed_at = std::thread::scope(|scope| {
        let producer = scope.spawn(|| produce_lines(&kafka, &second));
        let (_, took) = wait_for(Duration::from_secs(120), "worker a to move on", || {
            (checkpointed_offset(&worker_a) > a_before).then_some(())
        });
        let mut victim = workers[0].take().unwrap();
        victim.0.kill().unwrap(); // SIGKILL
        victim.0.wait().unwrap();
        assert_eq!(producer.join().unwrap(), EVENTS - EVENTS / 2);
        took
    });
    let stored_at_kill = stored_events(&database);
    eprintln!("killed worker a {killed_at:?} into the second half, {stored_at_kill} events stored");
    assert!(stored_at_kill < EVENTS, "the kill came after the end");
    std::thread::sleep(Duration::from_secs(2));
    workers[0] = Some(ingest_worker(&worker_a));
    let (_, drained) = wait_for(Duration::from_secs(180), "every event in PostgreSQL", || {
        (stored_events(&database) == EVENTS).then_some(())
    });
    eprintln!("all {EVENTS} events stored {drained:?} after the restart");

    // Nothing lost, nothing counted twice: Redis equals one embedded ingest of the file.
    let embedded = root.join("embedded");
    run(
        root,
        &[
            "--data-dir",
            embedded.to_str().unwrap(),
            "ingest",
            "--from",
            events.to_str().unwrap(),
        ],
    );
    assert_eq!(checkpoint(&embedded)["stats"]["events"], EVENTS);
    let names = users(USERS);
    let entities: Vec<&str> = names.iter().map(String::as_str).collect();
    let expected = encode_all(
        Ingestor::restore(Config::fraud_default(), DataPaths::new(&embedded))
            .unwrap()
            .store()
            .get_many(&entities)
            .unwrap(),
    );
    assert!(expected.iter().flatten().count() > 250, "most users have state");
    // A worker may still be rewriting redelivered duplicates (the same state) for a moment.
    let deadline = Instant::now() + Duration::from_secs(15);
    let differing = loop {
        let shared = redis_states(&redis.settings, &names);
        let differing: Vec<&str> = (0..USERS)
            .filter(|&u| shared[u] != expected[u])
            .map(|u| entities[u])
            .collect();
        if differing.is_empty() || Instant::now() > deadline {
            break differing;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(
        differing.is_empty(),
        "{} users' Redis state differs from one embedded ingest: {:?}",
        differing.len(),
        &differing[..differing.len().min(10)]
    );
    assert_eq!(
        database.scalar("SELECT count(DISTINCT log_source) FROM driftline_events"),
        "2",
        "both workers wrote history"
    );

    // Two replicas read that state, from S3 artifacts and the PostgreSQL registry.
    let (replica_a, replica_b) = (
        process_dir(root, "serve-a", &config),
        process_dir(root, "serve-b", &config),
    );
    let ports = [free_port(), free_port()];
    let mut replicas = vec![
        Some(replica(&replica_a, ports[0])),
        Some(replica(&replica_b, ports[1])),
    ];
    for user in [0, 7, 42, 123, 299] {
        let (a, b) = (predict_ok(ports[0], user), predict_ok(ports[1], user));
        assert_eq!(a["features"], "online", "{a}");
        assert_eq!(
            (&a["score"], &a["model_version"]),
            (&b["score"], &b["model_version"])
        );
    }

    // A label posted to the replica that did not make the prediction joins where it was made.
    let joined = |port: u16| metric(port, "driftline_feedback_labels_joined_total ");
    let made_on_a = predict_ok(ports[0], 7);
    let feedback = format!(r#"{{"event_id":{},"label":1}}"#, made_on_a["event_id"]);
    let (status, text) = http(ports[1], "POST", "/v1/feedback", &feedback).unwrap();
    assert_eq!(status, 202, "{text}");
    let (_, took) = wait_for(Duration::from_secs(5), "the label to join on replica a", || {
        (joined(ports[0]) == 1.0).then_some(())
    });
    eprintln!("a label posted to replica b joined on replica a {took:?} later");
    assert_eq!(joined(ports[1]), 0.0, "replica b made no prediction to join");

    let (leader, _) = wait_for(Duration::from_secs(10), "a controller", || {
        sole_controller(&ports)
    });
    run(&control, &["models", "alias", "set", "champion", "2"]);
    for port in ports {
        wait_for(
            Duration::from_secs(1),
            "the new champion on every replica",
            || (predict_ok(port, 42)["model_version"] == "2").then_some(()),
        );
    }
    let mut killed = replicas[leader].take().unwrap();
    killed.0.kill().unwrap();
    killed.0.wait().unwrap();
    let (_, took) = wait_for(Duration::from_secs(10), "the survivor to take over", || {
        is_controller(ports[1 - leader]).then_some(())
    });
    eprintln!("the surviving replica became controller {took:?} after the kill");
    drop((replicas, workers));
}

//! The Redis online store as a user runs it: ingest workers write entity state to Redis and
//! `serve` reads it there; a worker killed mid-stream ends, after a restart, in exactly the
//! state of an uninterrupted run; Redis stopped or killed under load turns `/predict` into
//! request-only answers (always a 200, said in the response and the metrics), and serving
//! recovers by itself when Redis is back.
//!
//! The shared server is `DRIFTLINE_TEST_REDIS_URL` (each test under a key prefix of its
//! own); the outage test starts a private `redis-server` on a free port. Without them the
//! tests say why and pass, unless `DRIFTLINE_REQUIRE_BACKENDS=1`, when they fail.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use driftline_core::config::{Config, RedisSettings};
use driftline_features::ingest::Ingestor;
use driftline_features::online::OnlineStore;
use driftline_features::paths::DataPaths;
use driftline_features::redis::RedisOnlineStore;
use driftline_features::redis::testing::test_redis;

use super::replicas::replica;
use super::serve::{free_port, http, train_without_gates};
use super::{external_tool, run, stdout};

/// `[online_store]` and `[redis]` selecting `redis` under its prefix, plus `extra`.
fn redis_toml(redis: &RedisSettings, extra: &str) -> String {
    format!(
        "[online_store]\nbackend = \"redis\"\n\n[redis]\nhost = \"{}\"\nport = {}\nkey_prefix = \"{}\"\n\n{extra}",
        redis.host, redis.port, redis.key_prefix
    )
}

/// Every user's state as Redis holds it (encoded, writer id aside), `None` where absent.
pub(super) fn redis_states(redis: &RedisSettings, users: &[String]) -> Vec<Option<Vec<u8>>> {
    let store = RedisOnlineStore::open(redis, 0).unwrap();
    let entities: Vec<&str> = users.iter().map(String::as_str).collect();
    encode_all(store.get_many(&entities).unwrap())
}

pub(super) fn encode_all(
    states: Vec<Option<driftline_features::state::EntityState>>,
) -> Vec<Option<Vec<u8>>> {
    states
        .into_iter()
        .map(|s| {
            s.map(|s| {
                let mut bytes = Vec::new();
                s.encode(&mut bytes);
                bytes
            })
        })
        .collect()
}

pub(super) fn users(n: usize) -> Vec<String> {
    (0..n).map(|u| format!("user-{u:05}")).collect()
}

#[test]
fn ingest_to_redis_holds_exactly_the_embedded_state_and_features_get_reads_it() {
    let Some(redis) = test_redis() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let file = dir.join("events.jsonl");
    run(
        dir,
        &[
            "gen",
            "--count",
            "20000",
            "--users",
            "200",
            "--seed",
            "4",
            "--out",
            file.to_str().unwrap(),
        ],
    );
    std::fs::write(dir.join("redis.toml"), redis_toml(&redis.settings, "")).unwrap();
    let (remote, local) = (dir.join("remote"), dir.join("local"));
    let out = stdout(&run(
        dir,
        &[
            "--config",
            "redis.toml",
            "--data-dir",
            remote.to_str().unwrap(),
            "ingest",
            "--from",
            file.to_str().unwrap(),
        ],
    ));
    assert!(out.contains("written to Redis at"), "{out}");
    run(
        dir,
        &[
            "--data-dir",
            local.to_str().unwrap(),
            "ingest",
            "--from",
            file.to_str().unwrap(),
        ],
    );

    let names = users(200);
    let embedded = Ingestor::restore(Config::fraud_default(), DataPaths::new(&local)).unwrap();
    let entities: Vec<&str> = names.iter().map(String::as_str).collect();
    let expected = encode_all(embedded.store().get_many(&entities).unwrap());
    assert!(expected.iter().flatten().count() > 150, "most users have state");
    assert!(
        redis_states(&redis.settings, &names) == expected,
        "Redis differs from the embedded state"
    );
    for user in ["user-00001", "user-00042", "user-00150"] {
        let from_redis = stdout(&run(dir, &["--config", "redis.toml", "features", "get", user]));
        let from_log = stdout(&run(
            dir,
            &["--data-dir", local.to_str().unwrap(), "features", "get", user],
        ));
        assert_eq!(from_redis, from_log, "{user}");
    }
}

#[cfg(feature = "kafka")]
#[test]
fn kill_9_mid_kafka_ingest_to_redis_then_restart_equals_an_uninterrupted_run() {
    use super::kafka::{ok, produce_lines, topic, with_kafka};
    use super::{checkpoint, events_with_bad_lines};

    let Some(kafka) = topic(3) else { return };
    let (Some(victim_redis), Some(fresh_redis)) = (test_redis(), test_redis()) else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let (mixed, bad) = events_with_bad_lines(dir, 30_000, 1_000);
    let total = produce_lines(&kafka, &mixed);
    assert_eq!(total, 30_000 + bad);

    let worker = |name: &str, redis: &RedisSettings, group: &str| {
        let config = format!("{name}.toml");
        let command = with_kafka(dir, &kafka, &config, group);
        let mut text = std::fs::read_to_string(dir.join(&config)).unwrap();
        text.push_str(&redis_toml(redis, ""));
        std::fs::write(dir.join(&config), text).unwrap();
        command
    };
    let victim = dir.join("victim");
    let victim_group = format!("{}-victim", kafka.group);
    let mut child = worker("victim", &victim_redis.settings, &victim_group)
        .args([
            "--data-dir",
            victim.to_str().unwrap(),
            "ingest",
            "--from",
            "kafka",
            "--follow",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while !victim.join("state/checkpoint.json").exists() && started.elapsed() < Duration::from_secs(60) {
        std::thread::sleep(Duration::from_millis(2));
    }
    child.kill().unwrap(); // SIGKILL, mid-stream
    child.wait().unwrap();
    let interrupted_at = checkpoint(&victim)["next_offset"].as_u64().unwrap();
    assert!(interrupted_at < total as u64, "the kill came after the end");
    let resumed = stdout(&ok(
        worker("victim", &victim_redis.settings, &victim_group),
        &[
            "--data-dir",
            victim.to_str().unwrap(),
            "ingest",
            "--from",
            "kafka",
        ],
    ));

    let fresh = dir.join("fresh");
    ok(
        worker("fresh", &fresh_redis.settings, &format!("{}-fresh", kafka.group)),
        &["--data-dir", fresh.to_str().unwrap(), "ingest", "--from", "kafka"],
    );
    let (a, b) = (checkpoint(&victim), checkpoint(&fresh));
    assert_eq!(
        a["stats"], b["stats"],
        "killed at offset {interrupted_at}; {resumed}"
    );
    assert_eq!(a["stats"]["events"], 30_000);
    assert_eq!(a["stats"]["duplicates"], 0, "{resumed}");
    let names = users(300);
    let (killed, clean) = (
        redis_states(&victim_redis.settings, &names),
        redis_states(&fresh_redis.settings, &names),
    );
    assert!(clean.iter().flatten().count() > 250, "most users have state");
    assert!(
        killed == clean,
        "Redis state after kill and restart differs from the clean run's"
    );
}

/// A `redis-server` of this test's own on a free port, persisting only on `SAVE`.
struct PrivateRedis {
    bin: String,
    dir: PathBuf,
    port: u16,
    child: Option<Child>,
}

impl PrivateRedis {
    fn start(bin: &str, dir: &Path) -> Self {
        let mut redis = PrivateRedis {
            bin: bin.to_string(),
            dir: dir.to_path_buf(),
            port: free_port(),
            child: None,
        };
        redis.restart();
        redis
    }

    /// Starts the server (again, on the same port, loading what it last saved).
    fn restart(&mut self) {
        let child = Command::new(&self.bin)
            .args([
                "--port",
                &self.port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .arg("--dir")
            .arg(&self.dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting redis-server");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.command("PING").as_deref() != Some("+PONG") {
            assert!(
                Instant::now() < deadline,
                "redis-server did not start on {}",
                self.port
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// One inline command; the first line of the answer.
    fn command(&self, command: &str) -> Option<String> {
        let mut stream = TcpStream::connect(("127.0.0.1", self.port)).ok()?;
        stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
        stream.write_all(format!("{command}\r\n").as_bytes()).ok()?;
        let mut buffer = [0u8; 256];
        let n = stream.read(&mut buffer).ok()?;
        let text = String::from_utf8_lossy(&buffer[..n]);
        text.lines().next().map(str::to_string)
    }

    fn signal(&self, signal: &str) {
        let pid = self.child.as_ref().expect("running").id().to_string();
        let status = Command::new("kill").args([signal, &pid]).status().unwrap();
        assert!(status.success(), "kill {signal} {pid}");
    }

    fn kill_9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn settings(&self) -> RedisSettings {
        RedisSettings {
            host: "127.0.0.1".into(),
            port: self.port,
            key_prefix: "outage:".into(),
            ..RedisSettings::default()
        }
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        if self.child.is_some() {
            self.signal("-CONT");
        }
        self.kill_9();
    }
}

pub(super) fn predict(port: u16, user: usize) -> (u16, serde_json::Value) {
    let body = format!(
        r#"{{"user_id":"user-{user:05}","event":{{"transaction_amount":83.2,"country":"DE","device":"ios","event_ts":"2024-03-01T12:00:00Z"}}}}"#
    );
    let (status, text) = http(port, "POST", "/predict", &body).expect("the server answers");
    (
        status,
        serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text)),
    )
}

pub(super) fn metric(port: u16, name: &str) -> f64 {
    let (_, text) = http(port, "GET", "/metrics", "").unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(name).and_then(|v| v.trim().parse().ok()))
        .unwrap_or_else(|| panic!("{name} missing from /metrics"))
}

/// Polls `/predict` for `user` until it is answered from online state with `score`.
fn wait_for_online(port: u16, user: usize, score: &serde_json::Value, why: &str) {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let (status, json) = predict(port, user);
        assert_eq!(status, 200, "{json}");
        if json["features"] == "online" && &json["score"] == score {
            return;
        }
        assert!(Instant::now() < deadline, "not recovered {why}: {json}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn redis_stopped_or_killed_under_load_degrades_predict_to_request_features_and_recovers() {
    let Some(bin) = external_tool(
        "DRIFTLINE_TEST_REDIS_SERVER",
        "redis-server",
        ".ci/services/postgres-s3.sh",
    ) else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let redis_dir = dir.join("redis");
    std::fs::create_dir_all(&redis_dir).unwrap();
    let mut redis = PrivateRedis::start(&bin, &redis_dir);
    std::fs::write(dir.join("driftline.toml"), redis_toml(&redis.settings(), "")).unwrap();
    run(dir, &["gen", "--count", "20000", "--users", "200", "--to", "log"]);
    run(dir, &["ingest"]);
    train_without_gates(dir, "logistic");
    let port = free_port();
    let _server = replica(dir, port);
    let (status, online) = predict(port, 42);
    assert_eq!(
        (status, &online["features"]),
        (200, &serde_json::json!("online")),
        "{online}"
    );
    let score = online["score"].clone();

    let stop = AtomicBool::new(false);
    let answers: Mutex<Vec<(u16, String)>> = Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for worker in 0..2 {
            let (stop, answers) = (&stop, &answers);
            scope.spawn(move || {
                let started = Instant::now();
                let mut user = worker;
                while !stop.load(Ordering::Relaxed) && started.elapsed() < Duration::from_secs(90) {
                    let (status, json) = predict(port, user % 200);
                    let features = json["features"].as_str().unwrap_or_default().to_string();
                    answers.lock().unwrap().push((status, features));
                    user += 2;
                    // Bounded: each request is a new connection (ephemeral ports).
                    std::thread::sleep(Duration::from_millis(5));
                }
            });
        }
        let _stop_on_exit = StopOnDrop(&stop);

        // Slow: the server stops answering but keeps its connections.
        redis.signal("-STOP");
        std::thread::sleep(Duration::from_millis(500));
        for user in [1, 2, 3] {
            let (status, json) = predict(port, user);
            assert_eq!(
                (status, json["features"].as_str()),
                (200, Some("request_only")),
                "{json}"
            );
        }
        assert_eq!(metric(port, "driftline_online_store_up "), 0.0);
        let degraded = metric(port, "driftline_online_store_degraded_total ");
        assert!(degraded >= 3.0, "{degraded}");
        assert!(metric(port, "driftline_online_store_errors_total{op=\"get\"} ") >= 1.0);
        redis.signal("-CONT");
        wait_for_online(port, 42, &score, "after SIGCONT");
        assert_eq!(metric(port, "driftline_online_store_up "), 1.0);

        // Down: killed (having saved its data), then started again on the same port.
        assert_eq!(redis.command("SAVE").as_deref(), Some("+OK"));
        redis.kill_9();
        std::thread::sleep(Duration::from_millis(500));
        let (status, json) = predict(port, 42);
        assert_eq!(
            (status, json["features"].as_str()),
            (200, Some("request_only")),
            "{json}"
        );
        assert!(metric(port, "driftline_online_store_degraded_total ") > degraded);
        redis.restart();
        wait_for_online(port, 42, &score, "after a restart of Redis");
    });
    let answers = answers.into_inner().unwrap();
    let failed: Vec<_> = answers.iter().filter(|(status, _)| *status != 200).collect();
    assert!(
        failed.is_empty(),
        "{} of {} requests failed: {failed:?}",
        failed.len(),
        answers.len()
    );
    let degraded = answers.iter().filter(|(_, f)| f == "request_only").count();
    let online = answers.iter().filter(|(_, f)| f == "online").count();
    assert!(
        degraded > 0 && online > 0,
        "{degraded} degraded, {online} online answers under load"
    );
    assert_eq!(
        metric(
            port,
            "serving_app_request_exceptions_total{model_variant=\"baseline\"} "
        ),
        0.0
    );
}

struct StopOnDrop<'a>(&'a AtomicBool);

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

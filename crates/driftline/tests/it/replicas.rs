//! Two `serve` replicas sharing one PostgreSQL registry, as a scale-out deployment runs
//! them: an alias change reaches both within a second, exactly one is the controller, a
//! rollout started on either routes the same share on both, and when the controller is
//! killed the other takes over and resumes the rollout.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::serve::{Server, free_port, http, train_without_gates};
use super::{driftline, run};

/// A database of its own on the test PostgreSQL server, dropped at the end.
pub(super) struct TestDatabase {
    admin_url: String,
    name: String,
    host: String,
    port: String,
    user: String,
}

impl TestDatabase {
    /// `None` (the test skips) without `DRIFTLINE_TEST_POSTGRES_URL`; a failure under
    /// .ci/run, which exports it.
    pub(super) fn create() -> Option<Self> {
        let Ok(admin_url) = std::env::var("DRIFTLINE_TEST_POSTGRES_URL") else {
            assert!(
                std::env::var("DRIFTLINE_REQUIRE_BACKENDS").as_deref() != Ok("1"),
                "DRIFTLINE_TEST_POSTGRES_URL is not set (.ci/services/postgres-s3.sh exports it)"
            );
            eprintln!("skipping: DRIFTLINE_TEST_POSTGRES_URL is not set");
            return None;
        };
        let rest = admin_url.split_once("://").map_or(admin_url.as_str(), |(_, r)| r);
        let (credentials, address) = rest.split_once('@').unwrap_or(("postgres", rest));
        let user = credentials.split(':').next().unwrap_or("postgres").to_string();
        let address = address.split('/').next().unwrap_or(address);
        let (host, port) = address.split_once(':').unwrap_or((address, "5432"));
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        let name = format!("driftline_replicas_{}_{nanos}", std::process::id());
        let (host, port) = (host.to_string(), port.to_string());
        let database = Self {
            admin_url,
            name,
            host,
            port,
            user,
        };
        database.psql(&format!("CREATE DATABASE {}", database.name));
        Some(database)
    }

    /// Runs `sql` on the server's admin database (creating this one).
    fn psql(&self, sql: &str) {
        run_psql(&[&self.admin_url], sql);
    }

    /// The first column of the first row `sql` returns in this database, as text.
    pub(super) fn scalar(&self, sql: &str) -> String {
        let rows_only = [
            "-t", "-h", &self.host, "-p", &self.port, "-U", &self.user, "-d", &self.name,
        ];
        run_psql(&rows_only, sql)
    }

    /// The `[registry]` and `[postgres]` tables that point driftline at this database.
    pub(super) fn config(&self) -> String {
        format!(
            "[registry]\nbackend = \"postgres\"\n\n[postgres]\nhost = \"{}\"\nport = {}\nuser = \"{}\"\ndatabase = \"{}\"\n",
            self.host, self.port, self.user, self.name
        )
    }
}

/// `psql` with `connection` arguments (and flags) running `sql`, failing the test on an
/// error; its unaligned output, trimmed.
fn run_psql(connection: &[&str], sql: &str) -> String {
    let output = Command::new("psql")
        .args(connection)
        .args(["-v", "ON_ERROR_STOP=1", "-qAc", sql])
        .output()
        .expect("psql runs (Debian's postgresql-client)");
    assert!(
        output.status.success(),
        "{sql}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).trim().to_string()
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let _ = Command::new("psql")
            .args([
                &self.admin_url,
                "-qc",
                &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name),
            ])
            .output();
    }
}

/// Starts a replica: its own data directory and port, the shared registry.
pub(super) fn replica(dir: &Path, port: u16) -> Server {
    let child = driftline(dir)
        .args(["serve", "--addr", &format!("127.0.0.1:{port}")])
        .env("CANARY_SPLIT", "0")
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let server = Server(child);
    wait_for(Duration::from_secs(30), "the replica to become ready", || {
        matches!(http(port, "GET", "/ready", ""), Some((200, _))).then_some(())
    });
    server
}

/// Polls `probe` every 20 ms until it yields, failing after `within`; returns the value
/// and how long it took.
pub(super) fn wait_for<T>(
    within: Duration,
    what: &str,
    mut probe: impl FnMut() -> Option<T>,
) -> (T, Duration) {
    let start = Instant::now();
    loop {
        if let Some(value) = probe() {
            return (value, start.elapsed());
        }
        assert!(
            start.elapsed() < within,
            "timed out after {within:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

pub(super) fn is_controller(port: u16) -> bool {
    http(port, "GET", "/metrics", "")
        .is_some_and(|(_, text)| text.contains("\ndriftline_controller_leader 1\n"))
}

fn rollout(port: u16) -> serde_json::Value {
    let (_, text) = http(port, "GET", "/v1/rollout", "").expect("the replica answers");
    serde_json::from_str(&text).unwrap()
}

/// Exactly one of the ports' replicas reports being the controller; returns its index.
pub(super) fn sole_controller(ports: &[u16]) -> Option<usize> {
    let leaders: Vec<usize> = (0..ports.len()).filter(|&i| is_controller(ports[i])).collect();
    assert!(leaders.len() <= 1, "two controllers at once: {leaders:?}");
    leaders.first().copied()
}

#[test]
fn two_replicas_share_aliases_and_the_split_and_a_new_controller_resumes_the_rollout() {
    let Some(database) = TestDatabase::create() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    for dir in [&a, &b] {
        std::fs::create_dir_all(dir).unwrap();
        std::fs::write(dir.join("driftline.toml"), database.config()).unwrap();
        run(dir, &["gen", "--count", "20000", "--users", "200", "--to", "log"]);
        run(dir, &["ingest"]);
    }
    // Artifacts on a shared file system (a deployment would use S3): both read a's.
    std::os::unix::fs::symlink(
        a.join("driftline-data/artifacts"),
        b.join("driftline-data/artifacts"),
    )
    .unwrap();
    for estimator in ["logistic", "gbt"] {
        train_without_gates(&a, estimator);
    }
    let ports = [free_port(), free_port()];
    let mut replicas = vec![Some(replica(&a, ports[0])), Some(replica(&b, ports[1]))];

    let (leader, took) = wait_for(Duration::from_secs(10), "a controller", || {
        sole_controller(&ports)
    });
    eprintln!("replica {leader} was elected controller in {took:?}");
    for _ in 0..5 {
        std::thread::sleep(Duration::from_millis(200));
        assert_eq!(
            sole_controller(&ports),
            Some(leader),
            "the controller changed with nobody dying"
        );
    }

    // An alias moved from a third process reaches both replicas within a second.
    run(&a, &["models", "alias", "set", "champion", "2"]);
    let moved = Instant::now();
    for port in ports {
        wait_for(
            Duration::from_secs(1),
            "the new champion on every replica",
            || (rollout(port)["champion"] == 2).then_some(()),
        );
    }
    eprintln!(
        "both replicas served the new champion {:?} after the change",
        moved.elapsed()
    );

    // A rollout started on the replica that is not the controller: the controller drives
    // it (a step no canary can pass, so it stays at its first share), both route its share.
    let follower = 1 - leader;
    let start = r#"{"action":"start","version":1,"plan":{"steps":[0.3,1.0],"interval_seconds":0.2,"min_requests":1000000}}"#;
    let (status, text) = http(ports[follower], "POST", "/v1/rollout", start).unwrap();
    assert_eq!(status, 200, "{text}");
    for port in ports {
        wait_for(
            Duration::from_secs(1),
            "the canary share on every replica",
            || {
                let split = rollout(port);
                (split["challenger"] == 1 && split["canary_ratio"] == 0.3).then_some(())
            },
        );
    }
    wait_for(
        Duration::from_secs(2),
        "the controller to drive the rollout",
        || (rollout(ports[leader])["controller"]["state"] == "running").then_some(()),
    );
    assert_ne!(rollout(ports[follower])["controller"]["state"], "running");

    // kill -9 the controller: the survivor is elected and resumes the rollout.
    let mut killed = replicas[leader].take().unwrap();
    killed.0.kill().unwrap();
    killed.0.wait().unwrap();
    let died = Instant::now();
    wait_for(Duration::from_secs(10), "the survivor to take over", || {
        is_controller(ports[follower]).then_some(())
    });
    wait_for(
        Duration::from_secs(5),
        "the survivor to resume the rollout",
        || {
            let split = rollout(ports[follower]);
            (split["controller"]["state"] == "running" && split["controller"]["version"] == 1).then_some(())
        },
    );
    eprintln!(
        "the survivor controlled and resumed the rollout {:?} after the kill",
        died.elapsed()
    );
    assert_eq!(rollout(ports[follower])["canary_ratio"], 0.3);
    drop(replicas);
}

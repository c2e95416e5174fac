//! Test support for this crate's tests and its dependents': the test Redis under a key
//! prefix of its own.
//!
//! The server is `DRIFTLINE_TEST_REDIS_URL` (default `redis://127.0.0.1:6379`;
//! `.ci/services/postgres-s3.sh` makes sure one runs). Without one a test says why and
//! passes, unless `DRIFTLINE_REQUIRE_BACKENDS=1`, when it fails. Key decision: every
//! [`TestRedis`] has a unique prefix and deletes its keys when dropped, so tests share the
//! server without seeing each other.

use driftline_core::config::RedisSettings;

use super::{RedisOnlineStore, connection_info};

/// The test server under a fresh prefix, or `None` (having said why).
pub fn test_redis() -> Option<TestRedis> {
    let url = std::env::var("DRIFTLINE_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    let (host, port) = host_and_port(&url);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let settings = RedisSettings {
        host,
        port,
        key_prefix: format!("driftline-test:{}-{n}-{nanos:x}:", std::process::id()),
        ..RedisSettings::default()
    };
    match RedisOnlineStore::open(&settings, 1) {
        Ok(_) => Some(TestRedis { settings }),
        Err(error) => {
            assert!(
                std::env::var("DRIFTLINE_REQUIRE_BACKENDS").as_deref() != Ok("1"),
                "Redis at {url} is unreachable and DRIFTLINE_REQUIRE_BACKENDS=1: {error}"
            );
            eprintln!("skipping: Redis at {url} is unreachable ({error}); set DRIFTLINE_TEST_REDIS_URL");
            None
        }
    }
}

fn host_and_port(url: &str) -> (String, u16) {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split('/').next().unwrap_or(rest);
    let authority = authority.rsplit_once('@').map_or(authority, |(_, a)| a);
    match authority.rsplit_once(':') {
        Some((host, port)) => (host.to_string(), port.parse().expect("a port number")),
        None => (authority.to_string(), 6379),
    }
}

/// A key prefix on the test server, whose keys are deleted on drop.
pub struct TestRedis {
    pub settings: RedisSettings,
}

impl TestRedis {
    pub fn connection(&self) -> redis::Connection {
        redis::Client::open(connection_info(&self.settings).unwrap())
            .unwrap()
            .get_connection()
            .unwrap()
    }

    pub fn keys(&self) -> Vec<String> {
        let mut connection = self.connection();
        let pattern = format!("{}*", self.settings.key_prefix);
        let keys: Vec<String> = redis::cmd("KEYS").arg(&pattern).query(&mut connection).unwrap();
        keys
    }
}

impl Drop for TestRedis {
    fn drop(&mut self) {
        let keys = self.keys();
        if !keys.is_empty() {
            let _: Result<(), _> = redis::cmd("DEL").arg(&keys).query(&mut self.connection());
        }
    }
}

//! How backend tests find their servers, and what they do when one is absent.
//!
//! Key decision: on a developer's machine an unreachable server skips the test, saying
//! why; with `DRIFTLINE_REQUIRE_BACKENDS=1` (set by `.ci/run`) it fails, so CI can never
//! pass by skipping. Every test works in a uniquely named database or bucket.

use std::fmt::Display;
use std::sync::atomic::{AtomicU32, Ordering};

/// Whether an unreachable backend fails the test instead of skipping it.
pub fn backends_required() -> bool {
    std::env::var("DRIFTLINE_REQUIRE_BACKENDS").is_ok_and(|v| v == "1")
}

/// Skips (returning `None`) or, when backends are required, fails the test.
pub fn unavailable<T>(backend: &str, address: &str, why: impl Display) -> Option<T> {
    if backends_required() {
        panic!("{backend} at {address} is unreachable and DRIFTLINE_REQUIRE_BACKENDS=1: {why}");
    }
    eprintln!(
        "skipping: {backend} at {address} is unreachable ({why}); \
         set DRIFTLINE_REQUIRE_BACKENDS=1 to fail instead"
    );
    None
}

/// `{prefix}_{pid}_{n}_{nanos}`: unique across the tests of this process and across runs.
pub fn unique_name(prefix: &str) -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!("{prefix}_{}_{n}_{nanos:x}", std::process::id())
}

//! Prometheus metrics of the server, on atomics, rendered as the text exposition format.
//!
//! Key decision: the reference stack's names and label (`serving_app_request_latency_seconds`,
//! `serving_app_requests_total`, `serving_app_request_exceptions_total`, by `model_variant`)
//! so its dashboards keep working, with sub-millisecond latency buckets added below its
//! 50 ms floor; counters are relaxed atomics indexed by a small closed set of variants, so
//! the hot path takes no lock and no label is ever an entity id.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Which model answered: the reference stack's variant names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Variant {
    /// The champion.
    Baseline,
    /// The challenger under a canary rollout.
    Canary,
}

impl Variant {
    /// The label value and `canary_variant` in responses.
    pub fn name(self) -> &'static str {
        match self {
            Variant::Baseline => "baseline",
            Variant::Canary => "canary",
        }
    }

    const ALL: [Variant; 2] = [Variant::Baseline, Variant::Canary];

    fn index(self) -> usize {
        self as usize
    }
}

/// Upper bounds of the latency histogram, in seconds: sub-millisecond resolution, then the
/// reference stack's own buckets.
pub const LATENCY_BUCKETS: [f64; 14] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.5, 1.0, 2.5,
];

#[derive(Default)]
struct Histogram {
    buckets: [AtomicU64; LATENCY_BUCKETS.len()],
    count: AtomicU64,
    sum_nanos: AtomicU64,
}

impl Histogram {
    fn observe(&self, elapsed: Duration) {
        let seconds = elapsed.as_secs_f64();
        if let Some(i) = LATENCY_BUCKETS.iter().position(|&b| seconds <= b) {
            self.buckets[i].fetch_add(1, Ordering::Relaxed);
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_nanos.fetch_add(
            u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
    }
}

#[derive(Default)]
struct PerVariant {
    latency: Histogram,
    requests: AtomicU64,
    exceptions: AtomicU64,
}

/// Every metric the server exports.
#[derive(Default)]
pub struct ServeMetrics {
    variants: [PerVariant; 2],
    invalid_requests: AtomicU64,
    model_version: AtomicU64,
    model_swaps: AtomicU64,
    online_lookup: Histogram,
}

impl ServeMetrics {
    /// One answered prediction.
    pub fn observe_request(&self, variant: Variant, elapsed: Duration) {
        let v = &self.variants[variant.index()];
        v.requests.fetch_add(1, Ordering::Relaxed);
        v.latency.observe(elapsed);
    }

    /// A prediction that failed on our side.
    pub fn observe_exception(&self, variant: Variant) {
        self.variants[variant.index()]
            .exceptions
            .fetch_add(1, Ordering::Relaxed);
    }

    /// A request refused as invalid (4xx).
    pub fn observe_invalid(&self) {
        self.invalid_requests.fetch_add(1, Ordering::Relaxed);
    }

    /// One online-store lookup (feature state read and vector computed).
    pub fn observe_lookup(&self, elapsed: Duration) {
        self.online_lookup.observe(elapsed);
    }

    /// The champion now serving.
    pub fn set_model(&self, version: u32) {
        self.model_version.store(u64::from(version), Ordering::Relaxed);
        self.model_swaps.fetch_add(1, Ordering::Relaxed);
    }

    /// The text exposition format.
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(8192);
        out.push_str("# HELP serving_app_request_latency_seconds Prediction latency, request received to response built.\n");
        out.push_str("# TYPE serving_app_request_latency_seconds histogram\n");
        for variant in Variant::ALL {
            render_histogram(
                &mut out,
                "serving_app_request_latency_seconds",
                &format!("model_variant=\"{}\"", variant.name()),
                &self.variants[variant.index()].latency,
            );
        }
        counter_family(
            &mut out,
            "serving_app_requests_total",
            "Predictions answered.",
            |v| &self.variants[v.index()].requests,
        );
        counter_family(
            &mut out,
            "serving_app_request_exceptions_total",
            "Predictions that failed on the server's side.",
            |v| &self.variants[v.index()].exceptions,
        );
        let gauge = |out: &mut String, name: &str, help: &str, kind: &str, value: u64| {
            let _ = write!(
                out,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}\n"
            );
        };
        gauge(
            &mut out,
            "driftline_invalid_requests_total",
            "Requests refused as invalid input (4xx).",
            "counter",
            self.invalid_requests.load(Ordering::Relaxed),
        );
        gauge(
            &mut out,
            "driftline_model_version",
            "The registry version of the champion serving (0 = none).",
            "gauge",
            self.model_version.load(Ordering::Relaxed),
        );
        gauge(
            &mut out,
            "driftline_model_swaps_total",
            "Models loaded without a restart (the first load included).",
            "counter",
            self.model_swaps.load(Ordering::Relaxed),
        );
        out.push_str(
            "# HELP driftline_online_lookup_seconds Online feature lookup: state read and vector computed.\n",
        );
        out.push_str("# TYPE driftline_online_lookup_seconds histogram\n");
        render_histogram(
            &mut out,
            "driftline_online_lookup_seconds",
            "",
            &self.online_lookup,
        );
        out
    }
}

fn counter_family<'a>(out: &mut String, name: &str, help: &str, value: impl Fn(Variant) -> &'a AtomicU64) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
    for variant in Variant::ALL {
        let _ = writeln!(
            out,
            "{name}{{model_variant=\"{}\"}} {}",
            variant.name(),
            value(variant).load(Ordering::Relaxed)
        );
    }
}

fn render_histogram(out: &mut String, name: &str, labels: &str, h: &Histogram) {
    let sep = if labels.is_empty() { "" } else { "," };
    let mut cumulative = 0;
    for (bound, bucket) in LATENCY_BUCKETS.iter().zip(&h.buckets) {
        cumulative += bucket.load(Ordering::Relaxed);
        let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"{bound}\"}} {cumulative}");
    }
    let count = h.count.load(Ordering::Relaxed);
    let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {count}");
    let sum = h.sum_nanos.load(Ordering::Relaxed) as f64 / 1e9;
    let braces = |s: &str| {
        if s.is_empty() {
            String::new()
        } else {
            format!("{{{s}}}")
        }
    };
    let _ = writeln!(out, "{name}_sum{} {sum}", braces(labels));
    let _ = writeln!(out, "{name}_count{} {count}", braces(labels));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histograms_are_cumulative_and_labelled_by_variant() {
        let m = ServeMetrics::default();
        m.observe_request(Variant::Baseline, Duration::from_micros(300));
        m.observe_request(Variant::Baseline, Duration::from_millis(30));
        m.observe_request(Variant::Canary, Duration::from_secs(10));
        let text = m.render();
        for line in [
            "serving_app_request_latency_seconds_bucket{model_variant=\"baseline\",le=\"0.00025\"} 0",
            "serving_app_request_latency_seconds_bucket{model_variant=\"baseline\",le=\"0.0005\"} 1",
            "serving_app_request_latency_seconds_bucket{model_variant=\"baseline\",le=\"0.05\"} 2",
            "serving_app_request_latency_seconds_bucket{model_variant=\"baseline\",le=\"+Inf\"} 2",
            "serving_app_request_latency_seconds_bucket{model_variant=\"canary\",le=\"2.5\"} 0",
            "serving_app_request_latency_seconds_bucket{model_variant=\"canary\",le=\"+Inf\"} 1",
            "serving_app_requests_total{model_variant=\"baseline\"} 2",
            "serving_app_request_exceptions_total{model_variant=\"canary\"} 0",
            "driftline_online_lookup_seconds_count 0",
        ] {
            assert!(text.lines().any(|l| l == line), "missing {line:?} in\n{text}");
        }
    }
}

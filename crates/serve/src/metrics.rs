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

use driftline_features::ingest::IngestLag;

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

    /// Both variants, in index order.
    pub const ALL: [Variant; 2] = [Variant::Baseline, Variant::Canary];

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

/// A point-in-time copy of one variant's counters; the difference of two is a window.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct VariantSnapshot {
    /// Per-bucket (not cumulative) latency counts, [`LATENCY_BUCKETS`] order, then +Inf.
    pub latency: [u64; LATENCY_BUCKETS.len() + 1],
    pub requests: u64,
    pub exceptions: u64,
    /// Canary requests also scored by the champion, and how many decided differently.
    pub compared: u64,
    pub disagreements: u64,
}

impl VariantSnapshot {
    /// The counts since `earlier`.
    pub fn since(&self, earlier: &VariantSnapshot) -> VariantSnapshot {
        let mut latency = [0; LATENCY_BUCKETS.len() + 1];
        for (i, slot) in latency.iter_mut().enumerate() {
            *slot = self.latency[i].saturating_sub(earlier.latency[i]);
        }
        VariantSnapshot {
            latency,
            requests: self.requests.saturating_sub(earlier.requests),
            exceptions: self.exceptions.saturating_sub(earlier.exceptions),
            compared: self.compared.saturating_sub(earlier.compared),
            disagreements: self.disagreements.saturating_sub(earlier.disagreements),
        }
    }

    /// Quantile `q` of the latencies (seconds) interpolated linearly within its bucket, as
    /// Prometheus' `histogram_quantile` estimates it; `None` without requests, the largest
    /// finite bound when it falls in the +Inf bucket.
    pub fn latency_estimate(&self, q: f64) -> Option<f64> {
        let total: u64 = self.latency.iter().sum();
        if total == 0 {
            return None;
        }
        let rank = q.clamp(0.0, 1.0) * total as f64;
        let mut seen = 0.0;
        for (i, &count) in self.latency.iter().enumerate() {
            let upper = match LATENCY_BUCKETS.get(i) {
                Some(&upper) => upper,
                None => return LATENCY_BUCKETS.last().copied(),
            };
            if count > 0 && seen + count as f64 >= rank {
                let lower = if i == 0 { 0.0 } else { LATENCY_BUCKETS[i - 1] };
                return Some(lower + (upper - lower) * (rank - seen) / count as f64);
            }
            seen += count as f64;
        }
        LATENCY_BUCKETS.last().copied()
    }

    /// The upper bound of the bucket holding quantile `q` of the latencies (seconds), the
    /// way Prometheus' `histogram_quantile` bounds it; `None` without requests.
    pub fn latency_quantile(&self, q: f64) -> Option<f64> {
        let total: u64 = self.latency.iter().sum();
        if total == 0 {
            return None;
        }
        let rank = (q * total as f64).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (i, count) in self.latency.iter().enumerate() {
            seen += count;
            if seen >= rank {
                return Some(LATENCY_BUCKETS.get(i).copied().unwrap_or(f64::INFINITY));
            }
        }
        Some(f64::INFINITY)
    }
}

/// An ingest loop's progress, exported by the server (in-process ingest) and by an ingest
/// worker (`driftline ingest --metrics-addr`) under the same names.
#[derive(Default)]
pub struct IngestMetrics {
    next_offset: AtomicU64,
    events: AtomicU64,
    dead_lettered: AtomicU64,
    last_batch_micros: AtomicU64,
    lag_records: AtomicU64,
    last_append_micros: AtomicU64,
}

impl IngestMetrics {
    /// Progress after a batch: next log offset, events applied, records dead-lettered.
    pub fn observe(&self, next_offset: u64, events: u64, dead_lettered: u64) {
        self.next_offset.store(next_offset, Ordering::Relaxed);
        self.events.store(events, Ordering::Relaxed);
        self.dead_lettered.store(dead_lettered, Ordering::Relaxed);
        let now = chrono::Utc::now().timestamp_micros();
        self.last_batch_micros
            .store(u64::try_from(now).unwrap_or(0), Ordering::Relaxed);
    }

    /// The next event-log offset to apply.
    pub fn next_offset(&self) -> u64 {
        self.next_offset.load(Ordering::Relaxed)
    }

    /// How far ingest trails the event log.
    pub fn observe_lag(&self, lag: IngestLag) {
        self.lag_records.store(lag.records, Ordering::Relaxed);
        self.last_append_micros.store(
            u64::try_from(lag.last_append_micros).unwrap_or(0),
            Ordering::Relaxed,
        );
    }

    /// Appends the text exposition of these metrics to `out`.
    pub fn render(&self, out: &mut String) {
        for (name, help, kind, value) in [
            (
                "driftline_ingest_next_offset",
                "The next event-log offset ingest will apply.",
                "gauge",
                self.next_offset.load(Ordering::Relaxed),
            ),
            (
                "driftline_ingest_lag_records",
                "Event-log records not yet applied to online state.",
                "gauge",
                self.lag_records.load(Ordering::Relaxed),
            ),
            (
                "driftline_ingest_events_total",
                "Events applied to online state since the process started.",
                "counter",
                self.events.load(Ordering::Relaxed),
            ),
            (
                "driftline_ingest_dead_lettered_total",
                "Records ingest refused (invalid, duplicate, late) since the process started.",
                "counter",
                self.dead_lettered.load(Ordering::Relaxed),
            ),
        ] {
            gauge(out, name, help, kind, value);
        }
        let now = chrono::Utc::now().timestamp_micros();
        let last = self.last_batch_micros.load(Ordering::Relaxed);
        if last > 0 {
            let age = (now as f64 - last as f64).max(0.0) / 1e6;
            let _ = write!(
                out,
                "# HELP driftline_feature_freshness_seconds Seconds since the online state last applied a batch of events.\n\
                 # TYPE driftline_feature_freshness_seconds gauge\ndriftline_feature_freshness_seconds {age}\n"
            );
        }
        let lag = IngestLag {
            records: self.lag_records.load(Ordering::Relaxed),
            last_append_micros: self.last_append_micros.load(Ordering::Relaxed) as i64,
        };
        let _ = write!(
            out,
            "# HELP driftline_ingest_lag_seconds How long the oldest event-log record not yet applied has waited at most (0 when caught up).\n\
             # TYPE driftline_ingest_lag_seconds gauge\ndriftline_ingest_lag_seconds {}\n",
            lag.seconds(now)
        );
    }
}

/// Every metric the server exports.
#[derive(Default)]
pub struct ServeMetrics {
    variants: [PerVariant; 2],
    invalid_requests: AtomicU64,
    model_version: AtomicU64,
    model_swaps: AtomicU64,
    online_lookup: Histogram,
    ingested: AtomicU64,
    /// The in-process ingest's progress (embedded mode).
    pub ingest: IngestMetrics,
    labels_joined: AtomicU64,
    canary_compared: AtomicU64,
    canary_disagreements: AtomicU64,
    /// 0 idle, 1 running, 2 promoted, 3 rolled back.
    rollout_state: AtomicU64,
    /// 1 while this replica is the elected controller.
    controller_leader: AtomicU64,
    rollout_step: AtomicU64,
    canary_ratio_bits: AtomicU64,
    rollbacks: AtomicU64,
    online_store_degraded: AtomicU64,
    /// Failed online-store reads and writes.
    online_store_errors: [AtomicU64; 2],
}

/// An online-store operation, the `op` label of `driftline_online_store_errors_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreOp {
    Get,
    Put,
}

impl StoreOp {
    const ALL: [StoreOp; 2] = [StoreOp::Get, StoreOp::Put];

    fn name(self) -> &'static str {
        match self {
            StoreOp::Get => "get",
            StoreOp::Put => "put",
        }
    }
}

impl ServeMetrics {
    /// One answered prediction.
    pub fn observe_request(&self, variant: Variant, elapsed: Duration) {
        let v = &self.variants[variant.index()];
        v.requests.fetch_add(1, Ordering::Relaxed);
        v.latency.observe(elapsed);
    }

    /// The ingest thread's progress: next log offset, events applied, records dead-lettered.
    pub fn observe_ingest(&self, next_offset: u64, events: u64, dead_lettered: u64) {
        self.ingest.observe(next_offset, events, dead_lettered);
    }

    /// The next event-log offset the ingest thread will apply.
    pub fn ingest_next_offset(&self) -> u64 {
        self.ingest.next_offset()
    }

    /// How far the ingest thread trails the event log.
    pub fn observe_ingest_lag(&self, lag: IngestLag) {
        self.ingest.observe_lag(lag);
    }

    /// Delayed labels that matched a remembered prediction.
    pub fn observe_labels_joined(&self, joined: u64) {
        self.labels_joined.fetch_add(joined, Ordering::Relaxed);
    }

    /// Records accepted by HTTP ingest.
    pub fn observe_ingested(&self, records: u64) {
        self.ingested.fetch_add(records, Ordering::Relaxed);
    }

    /// A canary request also scored by the champion: whether their decisions differed.
    pub fn observe_comparison(&self, disagreed: bool) {
        self.canary_compared.fetch_add(1, Ordering::Relaxed);
        if disagreed {
            self.canary_disagreements.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Whether this replica is the elected controller.
    pub fn set_controller(&self, leader: bool) {
        self.controller_leader.store(u64::from(leader), Ordering::Relaxed);
    }

    /// The rollout's state (0 idle, 1 running, 2 promoted, 3 rolled back) and step.
    pub fn set_rollout(&self, state: u64, step: u64) {
        self.rollout_state.store(state, Ordering::Relaxed);
        self.rollout_step.store(step, Ordering::Relaxed);
    }

    /// The canary share in effect.
    pub fn set_ratio(&self, ratio: f64) {
        self.canary_ratio_bits.store(ratio.to_bits(), Ordering::Relaxed);
    }

    /// An automatic rollback.
    pub fn observe_rollback(&self) {
        self.rollbacks.fetch_add(1, Ordering::Relaxed);
    }

    /// The current counters of `variant`.
    pub fn snapshot(&self, variant: Variant) -> VariantSnapshot {
        let v = &self.variants[variant.index()];
        let mut latency = [0; LATENCY_BUCKETS.len() + 1];
        for (slot, bucket) in latency.iter_mut().zip(&v.latency.buckets) {
            *slot = bucket.load(Ordering::Relaxed);
        }
        let count = v.latency.count.load(Ordering::Relaxed);
        latency[LATENCY_BUCKETS.len()] = count.saturating_sub(latency.iter().sum());
        let canary = variant == Variant::Canary;
        VariantSnapshot {
            latency,
            requests: v.requests.load(Ordering::Relaxed),
            exceptions: v.exceptions.load(Ordering::Relaxed),
            compared: if canary {
                self.canary_compared.load(Ordering::Relaxed)
            } else {
                0
            },
            disagreements: if canary {
                self.canary_disagreements.load(Ordering::Relaxed)
            } else {
                0
            },
        }
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

    /// A prediction answered from request features alone because the online store did not
    /// answer in time.
    pub fn observe_degraded(&self) {
        self.online_store_degraded.fetch_add(1, Ordering::Relaxed);
    }

    /// A failed online-store operation.
    pub fn observe_store_error(&self, op: StoreOp) {
        self.online_store_errors[op as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// Predictions answered from request features alone so far.
    pub fn degraded(&self) -> u64 {
        self.online_store_degraded.load(Ordering::Relaxed)
    }

    /// `driftline_online_store_up`, `driftline_online_store_degraded_total` and
    /// `driftline_online_store_errors_total{op}`; `up` is whether reads succeed now.
    pub fn render_online_store(&self, out: &mut String, up: bool) {
        let _ = write!(
            out,
            "# HELP driftline_online_store_up Whether the online store answers reads (1) or is down (0).\n\
             # TYPE driftline_online_store_up gauge\ndriftline_online_store_up {}\n\
             # HELP driftline_online_store_degraded_total Predictions answered from request features alone because the online store did not answer within its deadline.\n\
             # TYPE driftline_online_store_degraded_total counter\ndriftline_online_store_degraded_total {}\n\
             # HELP driftline_online_store_errors_total Failed online-store operations (timeouts included); serve only reads, ingest workers write.\n\
             # TYPE driftline_online_store_errors_total counter\n",
            u8::from(up),
            self.online_store_degraded.load(Ordering::Relaxed)
        );
        for op in StoreOp::ALL {
            let _ = writeln!(
                out,
                "driftline_online_store_errors_total{{op=\"{}\"}} {}",
                op.name(),
                self.online_store_errors[op as usize].load(Ordering::Relaxed)
            );
        }
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
        for (name, help, kind, value) in [
            (
                "driftline_http_ingested_records_total",
                "Events and labels accepted by POST /v1/events and /v1/feedback.",
                "counter",
                self.ingested.load(Ordering::Relaxed),
            ),
            (
                "driftline_feedback_labels_joined_total",
                "Delayed labels (POST /v1/feedback) that matched a remembered prediction.",
                "counter",
                self.labels_joined.load(Ordering::Relaxed),
            ),
            (
                "driftline_canary_compared_total",
                "Canary requests also scored by the champion.",
                "counter",
                self.canary_compared.load(Ordering::Relaxed),
            ),
            (
                "driftline_canary_disagreements_total",
                "Canary requests the champion would have decided differently.",
                "counter",
                self.canary_disagreements.load(Ordering::Relaxed),
            ),
            (
                "driftline_controller_leader",
                "1 while this replica is the model's elected controller (drives rollouts and retraining).",
                "gauge",
                self.controller_leader.load(Ordering::Relaxed),
            ),
            (
                "driftline_rollout_state",
                "Rollout state: 0 idle, 1 running, 2 promoted, 3 rolled back.",
                "gauge",
                self.rollout_state.load(Ordering::Relaxed),
            ),
            (
                "driftline_rollout_step",
                "The rollout step in progress (0-based).",
                "gauge",
                self.rollout_step.load(Ordering::Relaxed),
            ),
            (
                "driftline_rollbacks_total",
                "Automatic rollbacks by the rollout controller.",
                "counter",
                self.rollbacks.load(Ordering::Relaxed),
            ),
        ] {
            gauge(&mut out, name, help, kind, value);
        }
        self.ingest.render(&mut out);
        let ratio = f64::from_bits(self.canary_ratio_bits.load(Ordering::Relaxed));
        let _ = write!(
            out,
            "# HELP driftline_canary_ratio The share of traffic routed to the challenger.\n\
             # TYPE driftline_canary_ratio gauge\ndriftline_canary_ratio {ratio}\n"
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

/// One unlabelled sample with its HELP and TYPE lines.
/// Finished spans the trace exporter dropped because its queue was full. Process-wide,
/// as the exporter is: the binary's telemetry pipeline counts, every `/metrics` reports.
pub static TRACE_SPANS_DROPPED: AtomicU64 = AtomicU64::new(0);

/// `driftline_trace_spans_dropped_total` (0 while traces are not exported).
pub fn render_trace_export(out: &mut String) {
    gauge(
        out,
        "driftline_trace_spans_dropped_total",
        "Finished spans dropped because the trace export queue (OTEL_BSP_MAX_QUEUE_SIZE) was full.",
        "counter",
        TRACE_SPANS_DROPPED.load(Ordering::Relaxed),
    );
}

fn gauge(out: &mut String, name: &str, help: &str, kind: &str, value: u64) {
    let _ = write!(
        out,
        "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}\n"
    );
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

    #[test]
    fn online_store_metrics_count_by_op() {
        let m = ServeMetrics::default();
        m.observe_degraded();
        m.observe_degraded();
        m.observe_store_error(StoreOp::Get);
        let mut text = String::new();
        m.render_online_store(&mut text, false);
        for line in [
            "driftline_online_store_up 0",
            "driftline_online_store_degraded_total 2",
            "driftline_online_store_errors_total{op=\"get\"} 1",
            "driftline_online_store_errors_total{op=\"put\"} 0",
        ] {
            assert!(text.lines().any(|l| l == line), "missing {line:?} in\n{text}");
        }
    }
}

//! Shadow scoring: a shadow model scores a copy of each prediction off the response path,
//! and every pair (primary and shadow score, agreement, the shadow's latency) is counted
//! and appended to a shadow log for review (`driftline shadow report`).
//!
//! Key decision: the request hands the vector it already computed to a bounded queue with
//! `try_send` and returns; a full queue drops the copy and counts the drop, so the shadow
//! can never add latency to, or fail, a primary request. One task scores and writes, in
//! arrival order, with a buffered writer flushed about once a second. Its `shadow_score`
//! span continues the prediction's trace from the hand-off.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use driftline_models::model::Model;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use crate::state::AppState;

/// Copies waiting for the shadow; beyond this they are dropped (and counted).
pub const QUEUE: usize = 10_000;

/// Upper bounds of the |primary − shadow| score histogram.
pub const DIFF_BUCKETS: [f64; 7] = [0.001, 0.01, 0.05, 0.1, 0.2, 0.5, 1.0];

/// One prediction's copy for the shadow.
pub struct ShadowJob {
    pub event_id: String,
    pub vector: Vec<f64>,
    pub primary_version: u32,
    pub primary_score: f64,
    pub primary_decision: bool,
    /// The hand-off span's context, so the shadow's scoring joins the prediction's trace
    /// (empty when nothing records traces); `None` when the prediction's steps are not
    /// traced (its trace is unsampled), and then the scoring opens no span either.
    pub trace: Option<opentelemetry::Context>,
}

/// One line of the shadow log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShadowPair {
    /// When the pair was scored (RFC 3339).
    pub at: String,
    pub event_id: String,
    pub primary_version: u32,
    pub shadow_version: u32,
    pub primary_score: f64,
    pub shadow_score: f64,
    /// Whether both decided the same at their own thresholds.
    pub agree: bool,
    pub shadow_latency_us: u64,
}

/// Counters of the shadow path.
#[derive(Default)]
pub struct ShadowMetrics {
    pub scored: AtomicU64,
    pub agreements: AtomicU64,
    pub dropped: AtomicU64,
    pub errors: AtomicU64,
    pub diff_buckets: [AtomicU64; DIFF_BUCKETS.len()],
    diff_sum_micro: AtomicU64,
}

impl ShadowMetrics {
    fn observe(&self, pair: &ShadowPair) {
        self.scored.fetch_add(1, Ordering::Relaxed);
        if pair.agree {
            self.agreements.fetch_add(1, Ordering::Relaxed);
        }
        let diff = (pair.primary_score - pair.shadow_score).abs();
        if let Some(i) = DIFF_BUCKETS.iter().position(|&b| diff <= b) {
            self.diff_buckets[i].fetch_add(1, Ordering::Relaxed);
        }
        self.diff_sum_micro
            .fetch_add((diff * 1e6).round() as u64, Ordering::Relaxed);
    }

    /// The text exposition of the shadow metrics.
    pub fn render(&self, out: &mut String) {
        use std::fmt::Write;
        let scored = self.scored.load(Ordering::Relaxed);
        for (name, help, value) in [
            (
                "driftline_shadow_scored_total",
                "Predictions also scored by the shadow model.",
                scored,
            ),
            (
                "driftline_shadow_agreements_total",
                "Shadow-scored predictions where both models decided the same.",
                self.agreements.load(Ordering::Relaxed),
            ),
            (
                "driftline_shadow_dropped_total",
                "Copies dropped because the shadow queue was full.",
                self.dropped.load(Ordering::Relaxed),
            ),
            (
                "driftline_shadow_errors_total",
                "Copies the shadow model could not score.",
                self.errors.load(Ordering::Relaxed),
            ),
        ] {
            let _ = write!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {value}\n"
            );
        }
        let name = "driftline_shadow_score_difference";
        let _ = write!(
            out,
            "# HELP {name} |primary score - shadow score| per pair.\n# TYPE {name} histogram\n"
        );
        let mut cumulative = 0;
        for (bound, bucket) in DIFF_BUCKETS.iter().zip(&self.diff_buckets) {
            cumulative += bucket.load(Ordering::Relaxed);
            let _ = writeln!(out, "{name}_bucket{{le=\"{bound}\"}} {cumulative}");
        }
        let sum = self.diff_sum_micro.load(Ordering::Relaxed) as f64 / 1e6;
        let _ = write!(
            out,
            "{name}_bucket{{le=\"+Inf\"}} {scored}\n{name}_sum {sum}\n{name}_count {scored}\n"
        );
    }
}

/// The sending side, held by the state.
pub struct Shadow {
    sender: mpsc::Sender<ShadowJob>,
}

impl Shadow {
    /// Starts the shadow task writing pairs to `log`.
    pub fn start(state: Arc<AppState>, log: PathBuf) -> Shadow {
        let (sender, receiver) = mpsc::channel(QUEUE);
        tokio::spawn(score_copies(state, receiver, log));
        Shadow { sender }
    }

    /// Hands a copy to the shadow without waiting; a full queue drops it (counted).
    /// Returns whether it was queued.
    pub fn offer(&self, job: ShadowJob, metrics: &ShadowMetrics) -> bool {
        let queued = self.sender.try_send(job).is_ok();
        if !queued {
            metrics.dropped.fetch_add(1, Ordering::Relaxed);
        }
        queued
    }
}

async fn score_copies(state: Arc<AppState>, mut receiver: mpsc::Receiver<ShadowJob>, log: PathBuf) {
    let mut writer = match open_log(&log) {
        Ok(writer) => Some(writer),
        Err(error) => {
            tracing::error!(path = %log.display(), %error, "cannot open the shadow log; pairs are only counted");
            None
        }
    };
    let mut last_flush = Instant::now();
    while let Some(job) = receiver.recv().await {
        let Some(shadow) = state.shadow_model.load_full() else {
            continue;
        };
        let span = match job.trace {
            Some(trace) => {
                let span = tracing::debug_span!("shadow_score", model.version = shadow.version.version);
                crate::trace::continue_in(&span, trace);
                span
            }
            None => tracing::Span::none(),
        };
        let started = Instant::now();
        let score = span.in_scope(|| shadow.bundle.model.predict_proba_row(&job.vector));
        let latency = started.elapsed();
        if !score.is_finite() {
            state.shadow_metrics.errors.fetch_add(1, Ordering::Relaxed);
            continue;
        }
        let pair = ShadowPair {
            at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
            event_id: job.event_id,
            primary_version: job.primary_version,
            shadow_version: shadow.version.version,
            primary_score: job.primary_score,
            shadow_score: score,
            agree: job.primary_decision == (score >= shadow.bundle.decision_threshold),
            shadow_latency_us: u64::try_from(latency.as_micros()).unwrap_or(u64::MAX),
        };
        state.shadow_metrics.observe(&pair);
        if let Some(out) = writer.as_mut() {
            let line = serde_json::to_string(&pair).expect("pairs serialise");
            let written = writeln!(out, "{line}");
            let flushed = if last_flush.elapsed() >= Duration::from_secs(1) || receiver.is_empty() {
                last_flush = Instant::now();
                out.flush()
            } else {
                Ok(())
            };
            if let Err(error) = written.and(flushed) {
                tracing::error!(%error, "writing the shadow log; pairs are only counted from now on");
                writer = None;
            }
        }
    }
}

fn open_log(path: &Path) -> std::io::Result<std::io::BufWriter<std::fs::File>> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let file = std::fs::OpenOptions::new().create(true).append(true).open(path)?;
    Ok(std::io::BufWriter::new(file))
}

/// A summary of a shadow log, per (primary, shadow) version pair.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ShadowReport {
    /// Lines that were not shadow pairs (skipped).
    pub unreadable_lines: u64,
    /// One entry per (primary version, shadow version), in order of first appearance.
    pub comparisons: Vec<Comparison>,
}

/// How one shadow version compared with one primary version.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Comparison {
    pub primary_version: u32,
    pub shadow_version: u32,
    pub pairs: u64,
    /// The share of pairs decided the same.
    pub agreement_rate: f64,
    pub mean_abs_score_difference: f64,
    pub p50_abs_score_difference: f64,
    pub p95_abs_score_difference: f64,
    pub max_abs_score_difference: f64,
    pub shadow_latency_p50_us: u64,
    pub shadow_latency_p99_us: u64,
}

/// Reads a shadow log and summarises it.
pub fn report(path: &Path) -> std::io::Result<ShadowReport> {
    use std::io::BufRead;
    let file = std::fs::File::open(path)?;
    let mut groups: Vec<((u32, u32), Vec<ShadowPair>)> = Vec::new();
    let mut unreadable_lines = 0;
    for line in std::io::BufReader::new(file).lines() {
        let Ok(pair) = serde_json::from_str::<ShadowPair>(&line?) else {
            unreadable_lines += 1;
            continue;
        };
        let key = (pair.primary_version, pair.shadow_version);
        match groups.iter_mut().find(|(k, _)| *k == key) {
            Some((_, pairs)) => pairs.push(pair),
            None => groups.push((key, vec![pair])),
        }
    }
    let comparisons = groups
        .into_iter()
        .map(|((p, s), pairs)| compare(p, s, &pairs))
        .collect();
    Ok(ShadowReport {
        unreadable_lines,
        comparisons,
    })
}

fn compare(primary_version: u32, shadow_version: u32, pairs: &[ShadowPair]) -> Comparison {
    let n = pairs.len();
    let mut diffs: Vec<f64> = pairs
        .iter()
        .map(|p| (p.primary_score - p.shadow_score).abs())
        .collect();
    diffs.sort_by(f64::total_cmp);
    let mut latencies: Vec<u64> = pairs.iter().map(|p| p.shadow_latency_us).collect();
    latencies.sort_unstable();
    // Nearest rank: the smallest value with at least q of the pairs at or below it.
    let rank = |q: f64| ((q * n as f64).ceil() as usize).clamp(1, n) - 1;
    Comparison {
        primary_version,
        shadow_version,
        pairs: n as u64,
        agreement_rate: pairs.iter().filter(|p| p.agree).count() as f64 / n as f64,
        mean_abs_score_difference: diffs.iter().sum::<f64>() / n as f64,
        p50_abs_score_difference: diffs[rank(0.5)],
        p95_abs_score_difference: diffs[rank(0.95)],
        max_abs_score_difference: diffs[n - 1],
        shadow_latency_p50_us: latencies[rank(0.5)],
        shadow_latency_p99_us: latencies[rank(0.99)],
    }
}

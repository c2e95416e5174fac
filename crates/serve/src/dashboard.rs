//! The built-in dashboard at `/`: champion and challenger with their cards, the rollout and
//! traffic split, request rate and latency per variant, live feature drift with
//! reference-vs-current histograms, concept drift and retraining, and the audit trail.
//!
//! Key decision: one self-contained HTML page (inline CSS, JavaScript and SVG; no CDN, no
//! build step) compiled into the binary, which polls the same JSON API every user can call
//! (`/v1/models`, `/v1/rollout`, `/v1/traffic`, `/v1/drift`, `/v1/audit`). The dashboard
//! therefore shows nothing the API does not, and needs no server-side rendering.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::State;
use axum::response::Html;
use serde::Serialize;

use crate::metrics::{Variant, VariantSnapshot};
use crate::state::AppState;

/// The page.
pub const PAGE: &str = include_str!("dashboard.html");

/// How far back `/v1/traffic` latency quantiles reach.
pub const TRAFFIC_WINDOW: Duration = Duration::from_secs(60);

/// Samples of the per-variant counters kept at most every few seconds, so latency
/// quantiles describe the last minute rather than the whole uptime.
#[derive(Default)]
pub struct TrafficHistory {
    samples: Mutex<VecDeque<(Instant, [VariantSnapshot; 2])>>,
}

impl TrafficHistory {
    const SAMPLE_EVERY: Duration = Duration::from_secs(5);

    /// Records `now` (when the last sample is old enough) and returns the counts since the
    /// oldest sample within [`TRAFFIC_WINDOW`], with the seconds they span.
    fn window(&self, now: Instant, current: [VariantSnapshot; 2]) -> ([VariantSnapshot; 2], f64) {
        let mut samples = self.samples.lock().expect("traffic history lock");
        while samples
            .front()
            .is_some_and(|(at, _)| now.duration_since(*at) > TRAFFIC_WINDOW)
        {
            samples.pop_front();
        }
        if samples
            .back()
            .is_none_or(|(at, _)| now.duration_since(*at) >= Self::SAMPLE_EVERY)
        {
            samples.push_back((now, current));
        }
        let (since, base) = samples.front().copied().expect("a sample was just pushed");
        let window = [current[0].since(&base[0]), current[1].since(&base[1])];
        (window, now.duration_since(since).as_secs_f64())
    }
}

/// One variant's traffic for the dashboard.
#[derive(Debug, Serialize)]
pub struct VariantTraffic {
    /// `baseline` or `canary`.
    pub variant: &'static str,
    /// Answered since the server started (rates come from differences of this).
    pub requests: u64,
    /// Internal errors since the server started.
    pub errors: u64,
    /// Latency quantiles over the last minute, seconds.
    pub p50_seconds: Option<f64>,
    pub p95_seconds: Option<f64>,
    pub p99_seconds: Option<f64>,
    /// ROC AUC of the latest labelled predictions, and how many there are.
    pub live_roc_auc: Option<f64>,
    pub live_labelled: usize,
}

/// `GET /v1/traffic`.
#[derive(Debug, Serialize)]
pub struct Traffic {
    /// Seconds the latency quantiles span.
    pub window_seconds: f64,
    pub variants: Vec<VariantTraffic>,
}

/// `GET /`.
pub async fn page() -> Html<&'static str> {
    Html(PAGE)
}

/// `GET /v1/traffic`: per-variant requests, errors, recent latency quantiles and live AUC.
pub async fn traffic(State(state): State<Arc<AppState>>) -> Json<Traffic> {
    let current = Variant::ALL.map(|v| state.metrics.snapshot(v));
    let (window, window_seconds) = state.traffic.window(Instant::now(), current);
    let feedback = state.feedback.lock().expect("feedback lock");
    let variants = Variant::ALL
        .iter()
        .map(|&variant| {
            let recent = &window[variant as usize];
            let (live_roc_auc, live_labelled) = feedback.live_roc_auc(variant);
            VariantTraffic {
                variant: variant.name(),
                requests: current[variant as usize].requests,
                errors: current[variant as usize].exceptions,
                p50_seconds: recent.latency_estimate(0.5),
                p95_seconds: recent.latency_estimate(0.95),
                p99_seconds: recent.latency_estimate(0.99),
                live_roc_auc,
                live_labelled,
            }
        })
        .collect();
    Json(Traffic {
        window_seconds,
        variants,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn requests(n: u64) -> [VariantSnapshot; 2] {
        let mut s = VariantSnapshot {
            requests: n,
            ..VariantSnapshot::default()
        };
        s.latency[3] = n;
        [s, VariantSnapshot::default()]
    }

    #[test]
    fn the_window_forgets_samples_older_than_a_minute() {
        let history = TrafficHistory::default();
        let t0 = Instant::now();
        assert_eq!(history.window(t0, requests(10)).0[0].requests, 0);
        let (window, seconds) = history.window(t0 + Duration::from_secs(30), requests(40));
        assert_eq!((window[0].requests, seconds), (30, 30.0));
        // t0's sample is now over a minute old: the window starts at the 30 s sample.
        let (window, seconds) = history.window(t0 + Duration::from_secs(61), requests(100));
        assert_eq!((window[0].requests, seconds), (60, 31.0));
    }
}

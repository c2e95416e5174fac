//! Delayed labels joined with recent predictions: the quality of each variant live (ROC
//! AUC over its latest labelled predictions), the labelled pairs a rollout is judged on
//! (canary against champion), and the champion's error stream the concept-drift
//! detectors watch.
//!
//! Key decision: `/predict` remembers every prediction (event id → variant, score,
//! decision) in a bounded FIFO of [`CAPACITY`] entries, so memory stays bounded and a label
//! arriving up to that many predictions later still joins; labels arriving through
//! `/v1/feedback` are matched against it once and then forgotten. Ids are kept as their
//! xxh3-64 hash, so the hot path allocates nothing (two ids colliding among 200,000 is a
//! one-in-10^9 event, and would only mis-join one label).

use std::collections::{HashMap, VecDeque};

use driftline_core::event::LabelUpdate;

use crate::metrics::Variant;

/// Predictions remembered for joining with labels.
pub const CAPACITY: usize = 200_000;

/// Labelled predictions per variant the live ROC AUC is computed over.
pub const LIVE_WINDOW: usize = 2_000;

/// A prediction as `/predict` answered it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Prediction {
    /// Which model answered.
    pub variant: Variant,
    /// Its score.
    pub score: f64,
    /// Whether it declined (score at or above the model's threshold).
    pub decline: bool,
    /// The event's hour of day (UTC), for the concept detectors' hourly calibration.
    pub hour: u8,
}

/// A prediction whose label arrived.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Joined {
    /// The prediction.
    pub prediction: Prediction,
    /// The true label.
    pub label: bool,
}

impl Joined {
    /// Whether the decision was wrong.
    pub fn error(&self) -> bool {
        self.prediction.decline != self.label
    }
}

fn id_key(event_id: &str) -> u64 {
    xxhash_rust::xxh3::xxh3_64(event_id.as_bytes())
}

/// Recent predictions and the labelled scores joined so far.
#[derive(Default)]
pub struct Feedback {
    order: VecDeque<u64>,
    predictions: HashMap<u64, Prediction>,
    /// Per variant (baseline, canary): (score, label) pairs since the rollout began.
    labelled: [Vec<(f64, bool)>; 2],
    /// Per variant: the latest [`LIVE_WINDOW`] (score, label) pairs.
    recent: [VecDeque<(f64, bool)>; 2],
}

impl Feedback {
    /// Remembers one prediction, forgetting the oldest beyond [`CAPACITY`].
    pub fn remember(&mut self, event_id: &str, prediction: Prediction) {
        let key = id_key(event_id);
        if self.predictions.insert(key, prediction).is_none() {
            self.order.push_back(key);
        }
        while self.order.len() > CAPACITY {
            if let Some(oldest) = self.order.pop_front() {
                self.predictions.remove(&oldest);
            }
        }
    }

    /// Joins labels with remembered predictions: returns the matched ones, in label order,
    /// and the labels whose prediction this process does not remember (made by another
    /// replica, or forgotten).
    pub fn join(&mut self, labels: &[LabelUpdate]) -> (Vec<Joined>, Vec<LabelUpdate>) {
        let mut joined = Vec::new();
        let mut unmatched = Vec::new();
        for label in labels {
            let Some(prediction) = self.predictions.remove(&id_key(&label.event_id)) else {
                unmatched.push(label.clone());
                continue;
            };
            let pair = (prediction.score, label.label);
            let variant = prediction.variant as usize;
            self.labelled[variant].push(pair);
            let recent = &mut self.recent[variant];
            if recent.len() == LIVE_WINDOW {
                recent.pop_front();
            }
            recent.push_back(pair);
            joined.push(Joined {
                prediction,
                label: label.label,
            });
        }
        (joined, unmatched)
    }

    /// The labelled (scores, labels) of a variant since the last [`reset_labelled`](Self::reset_labelled).
    pub fn labelled(&self, variant: Variant) -> (Vec<f64>, Vec<bool>) {
        self.labelled[variant as usize].iter().copied().unzip()
    }

    /// ROC AUC of a variant's latest labelled predictions, with how many there are; `None`
    /// while they hold only one class.
    pub fn live_roc_auc(&self, variant: Variant) -> (Option<f64>, usize) {
        let recent = &self.recent[variant as usize];
        let (scores, labels): (Vec<f64>, Vec<bool>) = recent.iter().copied().unzip();
        (driftline_models::metrics::roc_auc(&scores, &labels), recent.len())
    }

    /// Forgets the labelled pairs (a new rollout judges its own).
    pub fn reset_labelled(&mut self) {
        self.labelled = Default::default();
    }

    /// Forgets a variant's recent window (its model changed).
    pub fn reset_recent(&mut self, variant: Variant) {
        self.recent[variant as usize].clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn label(id: &str, label: bool) -> LabelUpdate {
        LabelUpdate {
            event_id: id.into(),
            label,
        }
    }

    fn prediction(variant: Variant, score: f64) -> Prediction {
        Prediction {
            variant,
            score,
            decline: score >= 0.5,
            hour: 12,
        }
    }

    #[test]
    fn live_auc_covers_only_the_latest_window() {
        let mut f = Feedback::default();
        // An old, perfectly wrong stretch, then LIVE_WINDOW perfectly right predictions.
        let total = LIVE_WINDOW + 100;
        for i in 0..total {
            let right = i >= 100;
            let positive = i % 2 == 0;
            let score = if positive == right { 0.9 } else { 0.1 };
            f.remember(&format!("e{i}"), prediction(Variant::Baseline, score));
            f.join(&[label(&format!("e{i}"), positive)]);
        }
        assert_eq!(f.live_roc_auc(Variant::Baseline), (Some(1.0), LIVE_WINDOW));
        assert_eq!(f.live_roc_auc(Variant::Canary), (None, 0));
        f.reset_recent(Variant::Baseline);
        assert_eq!(f.live_roc_auc(Variant::Baseline), (None, 0));
    }

    #[test]
    fn labels_of_predictions_made_elsewhere_come_back_for_other_replicas() {
        let mut f = Feedback::default();
        f.remember("mine", prediction(Variant::Baseline, 0.2));
        let (joined, unmatched) = f.join(&[label("theirs", true), label("mine", false), label("mine", true)]);
        assert_eq!(joined.len(), 1);
        assert_eq!(unmatched, [label("theirs", true), label("mine", true)]);
    }

    #[test]
    fn labels_join_the_remembered_prediction_once() {
        let mut f = Feedback::default();
        f.remember("a", prediction(Variant::Canary, 0.9));
        f.remember("b", prediction(Variant::Baseline, 0.1));
        let (joined, _) = f.join(&[label("a", true), label("zzz", false), label("a", false)]);
        assert_eq!(
            joined,
            [Joined {
                prediction: prediction(Variant::Canary, 0.9),
                label: true
            }]
        );
        assert!(!joined[0].error(), "a decline of a positive is right");
        assert_eq!(f.labelled(Variant::Canary), (vec![0.9], vec![true]));
        assert_eq!(f.labelled(Variant::Baseline), (vec![], vec![]));
        f.reset_labelled();
        assert_eq!(f.labelled(Variant::Canary).0.len(), 0);
    }
}

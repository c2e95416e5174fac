//! Delayed labels joined with recent predictions, so a rollout can be judged on quality
//! (ROC AUC of the canary against the champion) and not only on latency and errors.
//!
//! Key decision: only while a challenger is being rolled out does `/predict` remember its
//! predictions (event id → variant and score), in a bounded FIFO of [`CAPACITY`] entries,
//! so the hot path pays nothing otherwise and memory stays bounded; labels arriving
//! through `/v1/feedback` are matched against it and kept per variant for the whole
//! rollout.

use std::collections::{HashMap, VecDeque};

use driftline_core::event::LabelUpdate;

use crate::metrics::Variant;

/// Predictions remembered for joining with labels.
pub const CAPACITY: usize = 200_000;

/// Recent predictions and the labelled scores joined so far.
#[derive(Default)]
pub struct Feedback {
    order: VecDeque<String>,
    predictions: HashMap<String, (Variant, f64)>,
    /// Per variant (baseline, canary): (score, label) pairs.
    labelled: [Vec<(f64, bool)>; 2],
}

impl Feedback {
    /// Remembers one prediction, forgetting the oldest beyond [`CAPACITY`].
    pub fn remember(&mut self, event_id: &str, variant: Variant, score: f64) {
        if self
            .predictions
            .insert(event_id.to_string(), (variant, score))
            .is_none()
        {
            self.order.push_back(event_id.to_string());
        }
        while self.order.len() > CAPACITY {
            if let Some(oldest) = self.order.pop_front() {
                self.predictions.remove(&oldest);
            }
        }
    }

    /// Joins labels with remembered predictions; returns how many matched.
    pub fn join(&mut self, labels: &[LabelUpdate]) -> usize {
        let mut matched = 0;
        for label in labels {
            if let Some((variant, score)) = self.predictions.remove(&label.event_id) {
                self.labelled[variant as usize].push((score, label.label));
                matched += 1;
            }
        }
        matched
    }

    /// The labelled (scores, labels) of a variant.
    pub fn labelled(&self, variant: Variant) -> (Vec<f64>, Vec<bool>) {
        self.labelled[variant as usize].iter().copied().unzip()
    }

    /// Forgets the labelled pairs (a new rollout judges its own).
    pub fn reset_labelled(&mut self) {
        self.labelled = Default::default();
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

    #[test]
    fn labels_join_the_remembered_prediction_once() {
        let mut f = Feedback::default();
        f.remember("a", Variant::Canary, 0.9);
        f.remember("b", Variant::Baseline, 0.1);
        assert_eq!(
            f.join(&[label("a", true), label("zzz", false), label("a", false)]),
            1
        );
        assert_eq!(f.labelled(Variant::Canary), (vec![0.9], vec![true]));
        assert_eq!(f.labelled(Variant::Baseline), (vec![], vec![]));
        f.reset_labelled();
        assert_eq!(f.labelled(Variant::Canary).0.len(), 0);
    }
}

//! Labels shared between `serve` replicas: a delayed label posted to one replica reaches
//! the replica that served its prediction.
//!
//! Each replica remembers the predictions it served (event id → score, variant) in memory,
//! so a label joins only where its prediction was made. Behind a load balancer the label
//! usually arrives elsewhere. Key decision: a replica that cannot join a label itself
//! publishes it on the Redis channel `{key_prefix}labels`, and every replica subscribes
//! and joins what it can. Only unmatched labels travel (no write per prediction), and a
//! label joins at most once: predictions are forgotten when joined, and the publisher has
//! already failed to join it. Pub/sub is at-most-once: a replica that is disconnected
//! when a label is published misses it, which costs one labelled pair of the monitors,
//! not data (labels are also appended to the replica's log like any other).

use std::borrow::Cow;
use std::time::Duration;

use driftline_core::config::RedisSettings;
use driftline_core::event::LabelUpdate;
use serde::{Deserialize, Serialize};

use super::{address, connection_info};

/// The channel labels are published on.
pub fn labels_channel(prefix: &str) -> String {
    format!("{prefix}labels")
}

#[derive(Serialize, Deserialize)]
struct WireLabel<'a> {
    #[serde(borrow)]
    event_id: Cow<'a, str>,
    label: bool,
}

/// The message for `labels`: a JSON array of `{"event_id", "label"}`.
pub fn encode_labels(labels: &[LabelUpdate]) -> Vec<u8> {
    let wire: Vec<WireLabel> = labels
        .iter()
        .map(|l| WireLabel {
            event_id: Cow::Borrowed(&l.event_id),
            label: l.label,
        })
        .collect();
    serde_json::to_vec(&wire).expect("labels serialise")
}

/// The labels of a message written by [`encode_labels`].
pub fn decode_labels(payload: &[u8]) -> Result<Vec<LabelUpdate>, String> {
    let wire: Vec<WireLabel> = serde_json::from_slice(payload).map_err(|e| e.to_string())?;
    Ok(wire
        .into_iter()
        .map(|l| LabelUpdate {
            event_id: l.event_id.into_owned(),
            label: l.label,
        })
        .collect())
}

/// Subscribes to the labels channel on a thread of its own, for as long as the process
/// lives, calling `deliver` with each message's labels. A lost connection is retried with
/// a backoff (100 ms doubling to 5 s); a malformed message is logged and skipped.
pub fn subscribe_labels(
    settings: &RedisSettings,
    deliver: impl Fn(Vec<LabelUpdate>) + Send + 'static,
) -> std::io::Result<()> {
    let settings = settings.clone();
    std::thread::Builder::new()
        .name("redis-labels".into())
        .spawn(move || {
            let mut pause = Duration::from_millis(100);
            loop {
                match listen(&settings, &deliver, &mut pause) {
                    Ok(()) => {}
                    Err(error) => tracing::warn!(
                        redis = %address(&settings),
                        %error,
                        retry_in_ms = pause.as_millis() as u64,
                        "the shared labels subscription failed; retrying"
                    ),
                }
                std::thread::sleep(pause);
                pause = (pause * 2).min(Duration::from_secs(5));
            }
        })
        .map(|_| ())
}

/// One subscription, until its connection fails. Resets `pause` once subscribed.
fn listen(
    settings: &RedisSettings,
    deliver: &impl Fn(Vec<LabelUpdate>),
    pause: &mut Duration,
) -> Result<(), String> {
    let client = redis::Client::open(connection_info(settings).map_err(|e| e.to_string())?)
        .map_err(|e| e.to_string())?;
    let mut connection = client
        .get_connection_with_timeout(Duration::from_secs(5))
        .map_err(|e| e.to_string())?;
    let mut pubsub = connection.as_pubsub();
    let channel = labels_channel(&settings.key_prefix);
    pubsub.subscribe(&channel).map_err(|e| e.to_string())?;
    *pause = Duration::from_millis(100);
    tracing::debug!(%channel, "subscribed to shared labels");
    loop {
        let message = pubsub.get_message().map_err(|e| e.to_string())?;
        let payload: Vec<u8> = message.get_payload().map_err(|e| e.to_string())?;
        match decode_labels(&payload) {
            Ok(labels) => deliver(labels),
            Err(reason) => tracing::warn!(%channel, %reason, "skipping a malformed labels message"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_round_trip_through_the_wire_form() {
        let labels = vec![
            LabelUpdate {
                event_id: "01HQWY5CG05WE29ARB5MN3KBZ2".into(),
                label: true,
            },
            LabelUpdate {
                event_id: "evt-\"quoted\"".into(),
                label: false,
            },
        ];
        assert_eq!(decode_labels(&encode_labels(&labels)).unwrap(), labels);
        assert!(decode_labels(b"[{\"event_id\": 3}]").is_err());
    }
}

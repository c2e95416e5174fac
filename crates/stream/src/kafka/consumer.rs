//! The group consumer behind the feed, and what a rebalance tells it.
//!
//! Key decision: when the group assigns a partition this worker has fed into its log
//! before, consumption starts at the position recorded beside the log, not at the group's
//! committed offset, which lags it by up to one checkpoint. The rebalance callback sets
//! those offsets on the assignment itself, so redelivered messages are not even fetched;
//! a partition new to this worker starts at the committed offset (or `auto.offset.reset`).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use driftline_core::config::KafkaSettings;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, RebalanceProtocol};
use rdkafka::error::KafkaResult;
use rdkafka::types::{RDKafkaErrorCode, RDKafkaRespErr};
use rdkafka::{ClientContext, Offset, TopicPartitionList};

use super::KafkaError;
use super::config::{Role, client_config};

pub(crate) const METADATA_TIMEOUT: Duration = Duration::from_secs(10);

/// What the rebalance callback shares with the feed (both run on the polling thread).
#[derive(Debug, Default)]
pub(crate) struct Shared {
    /// Next offset per partition, as recorded beside the log.
    pub positions: BTreeMap<i32, i64>,
    /// Partitions currently assigned to this worker.
    pub assigned: BTreeSet<i32>,
    /// Set by a rebalance, cleared by the feed when it has looked.
    pub changed: bool,
}

pub(crate) struct FeedContext {
    topic: String,
    shared: Arc<Mutex<Shared>>,
}

impl ClientContext for FeedContext {
    /// librdkafka reports some end-of-partition events (around rebalances) on the main
    /// queue as "global errors"; they are not errors, and the feed does not rely on them
    /// (see `KafkaFeed::pump`). Everything else is a warning: librdkafka retries it.
    fn error(&self, error: rdkafka::error::KafkaError, reason: &str) {
        if error.rdkafka_error_code() == Some(RDKafkaErrorCode::PartitionEOF) {
            tracing::debug!(%reason, "end of a partition, reported globally");
        } else {
            tracing::warn!(%error, %reason, "Kafka client");
        }
    }
}

impl ConsumerContext for FeedContext {
    fn rebalance(&self, consumer: &BaseConsumer<Self>, err: RDKafkaRespErr, tpl: &mut TopicPartitionList) {
        let cooperative = matches!(consumer.rebalance_protocol(), RebalanceProtocol::Cooperative);
        let result = match err {
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS => {
                self.resume_at_recorded_positions(tpl);
                if cooperative {
                    consumer.incremental_assign(tpl)
                } else {
                    consumer.assign(tpl)
                }
            }
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS => {
                self.revoke(tpl);
                if cooperative {
                    consumer.incremental_unassign(tpl)
                } else {
                    consumer.unassign()
                }
            }
            other => {
                tracing::warn!(error = %RDKafkaErrorCode::from(other), "rebalance failed; dropping the assignment");
                self.revoke(tpl);
                consumer.unassign()
            }
        };
        if let Err(error) = result {
            tracing::warn!(%error, "applying a rebalance");
        }
    }

    fn commit_callback(&self, result: KafkaResult<()>, _offsets: &TopicPartitionList) {
        if let Err(error) = result {
            tracing::warn!(%error, "committing offsets to Kafka");
        }
    }
}

impl FeedContext {
    fn resume_at_recorded_positions(&self, tpl: &mut TopicPartitionList) {
        let mut shared = self.shared.lock().expect("feed state lock");
        let partitions: Vec<i32> = tpl
            .elements_for_topic(&self.topic)
            .iter()
            .map(|e| e.partition())
            .collect();
        for &partition in &partitions {
            if let Some(&position) = shared.positions.get(&partition)
                && let Err(error) = tpl.set_partition_offset(&self.topic, partition, Offset::Offset(position))
            {
                tracing::warn!(partition, %error, "setting the start offset of an assigned partition");
            }
            shared.assigned.insert(partition);
        }
        shared.changed = true;
        tracing::info!(topic = %self.topic, ?partitions, positions = ?shared.positions, "partitions assigned");
    }

    fn revoke(&self, tpl: &TopicPartitionList) {
        let mut shared = self.shared.lock().expect("feed state lock");
        for element in tpl.elements_for_topic(&self.topic) {
            shared.assigned.remove(&element.partition());
        }
        shared.changed = true;
        tracing::info!(topic = %self.topic, "partitions revoked");
    }
}

pub(crate) type FeedConsumer = BaseConsumer<FeedContext>;

/// Creates the group consumer and subscribes it to the topic, after checking the topic
/// exists (a missing topic would otherwise just never be assigned).
pub(crate) fn subscribe(
    settings: &KafkaSettings,
    shared: Arc<Mutex<Shared>>,
) -> Result<FeedConsumer, KafkaError> {
    let context = FeedContext {
        topic: settings.topic.clone(),
        shared,
    };
    let consumer: FeedConsumer = client_config(settings, Role::Consumer)
        .create_with_context(context)
        .map_err(KafkaError::client("creating the Kafka consumer"))?;
    check_topic(consumer.client(), settings)?;
    consumer
        .subscribe(&[&settings.topic])
        .map_err(KafkaError::client(format!(
            "subscribing to topic '{}'",
            settings.topic
        )))?;
    Ok(consumer)
}

/// Fails with [`KafkaError::NoTopic`] when the brokers do not know the topic.
pub(crate) fn check_topic<C: ClientContext>(
    client: &rdkafka::client::Client<C>,
    settings: &KafkaSettings,
) -> Result<usize, KafkaError> {
    let metadata = client
        .fetch_metadata(Some(&settings.topic), METADATA_TIMEOUT)
        .map_err(KafkaError::client(format!(
            "fetching metadata of topic '{}' from {}",
            settings.topic, settings.brokers
        )))?;
    let partitions = metadata
        .topics()
        .iter()
        .find(|t| t.name() == settings.topic && t.error().is_none())
        .map(|t| t.partitions().len())
        .unwrap_or(0);
    if partitions == 0 {
        return Err(KafkaError::NoTopic {
            topic: settings.topic.clone(),
            brokers: settings.brokers.clone(),
        });
    }
    Ok(partitions)
}

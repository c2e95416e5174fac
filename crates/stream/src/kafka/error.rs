//! Errors of the Kafka backend, each naming what was being done and to which brokers or
//! topic, since most of them are a misconfiguration a user has to fix.

use crate::log::LogError;

#[derive(Debug, thiserror::Error)]
pub enum KafkaError {
    /// The librdkafka error is the source (shown as the cause), not repeated here.
    #[error("{action}")]
    Client {
        action: String,
        source: rdkafka::error::KafkaError,
    },
    #[error(
        "topic '{topic}' does not exist on {brokers}; create it first (e.g. `rpk topic create {topic}` or `kafka-topics.sh --create --topic {topic}`)"
    )]
    NoTopic { topic: String, brokers: String },
    #[error("{failed} of {sent} messages were not delivered to topic '{topic}'; the first error: {first}")]
    Undelivered {
        topic: String,
        sent: u64,
        failed: u64,
        first: String,
    },
    #[error(
        "no partition of topic '{topic}' was assigned to this worker within {seconds} s (do other members of the group hold them all?)"
    )]
    NotAssigned { topic: String, seconds: u64 },
    #[error(transparent)]
    Log(#[from] LogError),
    #[error("{action} {path}: {source}")]
    Io {
        action: &'static str,
        path: String,
        source: std::io::Error,
    },
    #[error("Kafka progress file {path}: {reason}")]
    Progress { path: String, reason: String },
}

impl KafkaError {
    pub(crate) fn client(action: impl Into<String>) -> impl FnOnce(rdkafka::error::KafkaError) -> Self {
        let action = action.into();
        move |source| KafkaError::Client { action, source }
    }
}

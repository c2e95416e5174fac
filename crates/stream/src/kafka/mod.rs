//! The Kafka source and sink (cargo feature `kafka`, on by default): any Kafka API broker
//! (Kafka, Redpanda, MSK) through librdkafka, compiled from the `rdkafka` crate's bundled
//! sources.
//!
//! - [`KafkaSink`] produces events: message key = entity id, value = the event JSON, the
//!   same bytes a JSON-lines file holds (`driftline gen --to kafka`).
//! - [`KafkaFeed`] consumes a topic as a member of a consumer group and appends every
//!   message's value to the embedded event log (`driftline ingest --from kafka`).
//! - [`admin`]: topic creation and a reachability probe, for tests and setup.
//!
//! Key decision: in embedded mode the event log is driftline's system of record, so Kafka
//! is a *feed* into it rather than a second code path. A batch of messages is appended to
//! the log durably, ingest consumes the log as it always does (feature state is a pure
//! function of the log), and the group's offsets are committed to Kafka only after an
//! ingest checkpoint has made state, history and dead letters durable (at-least-once).
//! Where each partition stands is kept beside the log too ([`progress`]): before a batch
//! is appended, its partitions, offsets and payload hashes are written down, so after a
//! crash the feed knows exactly which of those messages reached the log and resumes
//! after them, even when Kafka's committed offsets are older. Redelivered messages are
//! skipped by offset; anything that still slips through twice (another writer's records
//! in between, a power loss with fsync off) is caught by the event-id de-duplication of
//! ingest, so feature state is always as if each event arrived once.

pub mod admin;
mod config;
mod consumer;
mod error;
mod feed;
mod progress;
mod sink;

#[cfg(test)]
mod tests;

pub use error::KafkaError;
pub use feed::{FeedStats, KafkaFeed, Pumped};
pub use sink::{KafkaSink, SinkReport};

//! [`KafkaSink`]: produces events to the topic, keyed by entity id.
//!
//! Key decision: the key is the entity id, so the default partitioner sends all of an
//! entity's events to one partition in order, and each ingest worker of a group sees
//! every event of the entities it owns. Delivery is checked, not assumed: failures are
//! counted by the delivery callback and [`KafkaSink::finish`] reports them.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use driftline_core::config::KafkaSettings;
use rdkafka::ClientContext;
use rdkafka::error::{KafkaError as RdKafkaError, RDKafkaErrorCode};
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};

use super::KafkaError;
use super::config::{Role, client_config};
use super::consumer::check_topic;

/// How long [`KafkaSink::finish`] waits for outstanding deliveries.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(60);

#[derive(Default)]
struct Deliveries {
    failed: AtomicU64,
    first_error: Mutex<Option<String>>,
}

impl ClientContext for Deliveries {}

impl ProducerContext for Deliveries {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        if let Err((error, _)) = result {
            self.failed.fetch_add(1, Ordering::Relaxed);
            let mut first = self.first_error.lock().expect("delivery error lock");
            first.get_or_insert_with(|| error.to_string());
        }
    }
}

/// What a finished sink delivered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SinkReport {
    pub delivered: u64,
}

/// A producer of events to one topic.
pub struct KafkaSink {
    producer: BaseProducer<Deliveries>,
    topic: String,
    sent: u64,
}

impl KafkaSink {
    /// Connects and checks that the topic exists.
    pub fn connect(settings: &KafkaSettings) -> Result<Self, KafkaError> {
        let producer: BaseProducer<Deliveries> = client_config(settings, Role::Producer)
            .create_with_context(Deliveries::default())
            .map_err(KafkaError::client("creating the Kafka producer"))?;
        check_topic(producer.client(), settings)?;
        Ok(Self {
            producer,
            topic: settings.topic.clone(),
            sent: 0,
        })
    }

    /// Queues one message; waits for room when librdkafka's queue is full.
    pub fn send(&mut self, key: &[u8], payload: &[u8]) -> Result<(), KafkaError> {
        let mut record = BaseRecord::to(&self.topic).key(key).payload(payload);
        loop {
            match self.producer.send(record) {
                Ok(()) => break,
                Err((RdKafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                    record = back;
                    self.producer.poll(Duration::from_millis(10));
                }
                Err((error, _)) => {
                    return Err(KafkaError::Client {
                        action: format!("producing to topic '{}'", self.topic),
                        source: error,
                    });
                }
            }
        }
        self.sent += 1;
        if self.sent.is_multiple_of(1024) {
            self.producer.poll(Duration::ZERO);
        }
        Ok(())
    }

    /// Messages queued so far.
    pub fn sent(&self) -> u64 {
        self.sent
    }

    /// Waits until every queued message is delivered or has failed; fails if any did.
    pub fn finish(self) -> Result<SinkReport, KafkaError> {
        self.producer
            .flush(FLUSH_TIMEOUT)
            .map_err(KafkaError::client(format!(
                "waiting for deliveries to topic '{}'",
                self.topic
            )))?;
        let context = self.producer.context();
        let failed = context.failed.load(Ordering::Relaxed);
        if failed > 0 {
            let first = context.first_error.lock().expect("delivery error lock").clone();
            return Err(KafkaError::Undelivered {
                topic: self.topic.clone(),
                sent: self.sent,
                failed,
                first: first.unwrap_or_default(),
            });
        }
        Ok(SinkReport { delivered: self.sent })
    }
}

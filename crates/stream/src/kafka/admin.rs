//! Topic administration and a reachability probe: what tests and first-time setup need,
//! kept here so that no other crate touches librdkafka types.
//!
//! Key decision: synchronous functions over librdkafka's admin futures, driven by a
//! minimal thread-parking executor, so callers need no async runtime.

use std::future::Future;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

use driftline_core::config::KafkaSettings;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;

use super::KafkaError;
use super::config::{Role, client_config};

/// Checks that the brokers answer a metadata request within `timeout`.
pub fn probe(settings: &KafkaSettings, timeout: Duration) -> Result<(), KafkaError> {
    let admin = admin(settings)?;
    admin
        .inner()
        .fetch_metadata(None, timeout)
        .map(|_| ())
        .map_err(KafkaError::client(format!(
            "reaching Kafka brokers {}",
            settings.brokers
        )))
}

/// Creates topic `name` with `partitions` partitions (replication factor 1).
pub fn create_topic(settings: &KafkaSettings, name: &str, partitions: i32) -> Result<(), KafkaError> {
    let admin = admin(settings)?;
    let topic = NewTopic::new(name, partitions, TopicReplication::Fixed(1));
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
    let results = block_on(admin.create_topics([&topic], &options))
        .map_err(KafkaError::client(format!("creating topic '{name}'")))?;
    for result in results {
        if let Err((_, code)) = result {
            return Err(KafkaError::Client {
                action: format!("creating topic '{name}'"),
                source: rdkafka::error::KafkaError::AdminOp(code),
            });
        }
    }
    Ok(())
}

fn admin(settings: &KafkaSettings) -> Result<AdminClient<DefaultClientContext>, KafkaError> {
    client_config(settings, Role::Admin)
        .create()
        .map_err(KafkaError::client("creating the Kafka admin client"))
}

struct Unpark(std::thread::Thread);

impl Wake for Unpark {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }
}

fn block_on<F: Future>(future: F) -> F::Output {
    let mut future = std::pin::pin!(future);
    let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut context = Context::from_waker(&waker);
    loop {
        if let Poll::Ready(output) = future.as_mut().poll(&mut context) {
            return output;
        }
        std::thread::park();
    }
}

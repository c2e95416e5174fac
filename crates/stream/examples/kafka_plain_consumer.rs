//! The control for `ingest --from kafka`'s throughput (docs/benchmarks.md): a plain
//! rdkafka consumer that joins a fresh group, reads a topic from its start until every
//! partition reports its end, and touches each payload (sums its bytes), nothing more.
//!
//! `cargo run --release -p driftline-stream --example kafka_plain_consumer -- BROKERS TOPIC`

use std::collections::BTreeSet;
use std::time::Instant;

use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [brokers, topic] = &args[..] else {
        eprintln!("usage: kafka_plain_consumer BROKERS TOPIC");
        std::process::exit(2);
    };
    let group = format!("plain-{}", std::process::id());
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", &group)
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "true")
        .set("auto.offset.reset", "earliest")
        .create()
        .expect("consumer");
    let started = Instant::now();
    consumer.subscribe(&[topic]).expect("subscribe");
    let (mut messages, mut bytes, mut at_end) = (0u64, 0u64, BTreeSet::new());
    loop {
        match consumer.poll(std::time::Duration::from_millis(100)) {
            Some(Ok(m)) => {
                messages += 1;
                bytes += m
                    .payload()
                    .map_or(0, |p| p.iter().map(|&b| u64::from(b)).sum::<u64>() & 1);
                at_end.remove(&m.partition());
            }
            Some(Err(KafkaError::PartitionEOF(p))) => {
                at_end.insert(p);
                let assigned = consumer.assignment().expect("assignment");
                if assigned
                    .elements()
                    .iter()
                    .all(|e| at_end.contains(&e.partition()))
                {
                    break;
                }
            }
            Some(Err(e)) => eprintln!("{e}"),
            None => {}
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    println!(
        "{messages} messages in {elapsed:.2} s ({:.0}/s) [checksum {bytes}]",
        messages as f64 / elapsed
    );
}

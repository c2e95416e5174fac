//! librdkafka client configuration from `[kafka]`.
//!
//! Key decision: driftline's own settings are applied first and the user's
//! `[kafka.properties]` after them, so any librdkafka property (TLS, SASL, timeouts,
//! compression) can be set; the few keys whose value driftline's guarantees depend on are
//! refused when the configuration is checked (`KAFKA_MANAGED_PROPERTIES` in core), so
//! they cannot be overridden here by accident.

use driftline_core::config::KafkaSettings;
use rdkafka::ClientConfig;

/// Which client a configuration is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    Producer,
    Consumer,
    Admin,
}

/// The librdkafka configuration of a `role` client.
pub(crate) fn client_config(settings: &KafkaSettings, role: Role) -> ClientConfig {
    let mut config = ClientConfig::new();
    config.set("bootstrap.servers", &settings.brokers);
    match role {
        Role::Producer => {
            config.set("client.id", "driftline-producer");
        }
        Role::Admin => {
            config.set("client.id", "driftline-admin");
        }
        Role::Consumer => {
            config
                .set("client.id", "driftline-ingest")
                .set("group.id", &settings.group)
                // Offsets are committed by the feed after each ingest checkpoint.
                .set("enable.auto.commit", "false")
                .set("enable.auto.offset.store", "false")
                // End-of-partition events tell a non-following ingest when it is done.
                .set("enable.partition.eof", "true")
                // A new group reads the topic from its start, not only what comes next.
                .set("auto.offset.reset", "earliest");
        }
    }
    for (key, value) in &settings.properties {
        config.set(key, value);
    }
    config
}

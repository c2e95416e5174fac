//! driftline's event streams: where events come from and where they are kept.
//!
//! - [`log`]: the embedded append-only segment log, driftline's system of record when
//!   no Kafka is configured. Payloads are opaque bytes (one JSON event each), exactly
//!   what a Kafka message value would be, so the consumer code is the same for both.
//! - [`generator`]: the synthetic fraud stream with drift scenarios (`driftline gen`).
//! - [`input`]: readers for JSON lines and CSV files (with or without a UTF-8 BOM).
//! - `kafka` (cargo feature `kafka`): the Kafka source (a feed into the log) and sink.

pub mod generator;
pub mod input;
#[cfg(feature = "kafka")]
pub mod kafka;
pub mod log;

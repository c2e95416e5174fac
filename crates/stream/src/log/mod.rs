//! The embedded append-only event log: driftline's system of record when no Kafka is
//! configured.
//!
//! Producers append opaque payloads (one JSON event each) through the single
//! [`LogWriter`]; consumers read from an offset with a [`LogReader`] and keep their
//! position with [`commit`] / [`load_committed`]. Feature state is rebuilt by replaying
//! the log, so every frame carries a checksum and its own offset, and a torn tail left by
//! a crash is cut off when the writer reopens.
//!
//! # On-disk format
//!
//! ```text
//! DIR/
//!   writer.lock                      OS lock held by the one LogWriter (contents unused)
//!   00000000000000000000.log         segments, named by the offset of their first record
//!   00000000000000004096.log
//!   consumers/<group>.offset         committed "next offset" of a group, ASCII decimal + '\n'
//! ```
//!
//! A segment is a plain concatenation of frames, with no file header. Each frame is,
//! little endian:
//!
//! ```text
//! u32 payload_len | u32 crc32 | u64 offset | i64 append_ts_micros | payload
//! ```
//!
//! - The CRC-32 (IEEE, `crc32fast`) covers `offset`, `append_ts_micros` and the payload,
//!   i.e. every frame byte after the CRC field.
//! - `payload_len` above [`MAX_PAYLOAD_BYTES`] (16 MiB) is corruption.
//! - Offsets are dense: they start at 0 and grow by one per record across segments, so
//!   a segment's first frame holds the offset in its file name, and a reader checks every
//!   frame's offset against the one it expects.
//! - The writer rolls to a new segment before a record that would take the active one
//!   past [`LogConfig::segment_bytes`]; a segment always holds at least one record, so a
//!   single large record may exceed the limit. The previous segment is completely
//!   written (and, with [`FsyncPolicy::EveryFlush`], fsynced) before the next file is
//!   created, so a reader that sees a later segment knows the earlier one is sealed.
//!
//! # Crash recovery and concurrent readers
//!
//! The key decision: only the last segment can be torn, and what lies past its last
//! complete frame is never trusted. [`LogWriter::open`] truncates the last segment at
//! the first frame that is incomplete or invalid (bad length, CRC or offset). A
//! [`LogReader`], which may run in another process while a writer appends, treats an
//! incomplete frame at the end of the active segment — or a CRC-invalid frame that is its
//! very last bytes — as "not written yet" and returns nothing for now; any other invalid
//! frame, and anything invalid in a sealed segment, is [`LogError::Corrupt`] naming the
//! file and byte position.

mod config;
mod cursor;
mod error;
mod frame;
mod offsets;
mod reader;
mod record;
mod segment;
mod writer;

#[cfg(test)]
mod tests;

pub use config::{FsyncPolicy, LogConfig};
pub use error::LogError;
pub use frame::{HEADER_BYTES, MAX_PAYLOAD_BYTES};
pub use offsets::{commit, load_committed};
pub use reader::LogReader;
pub use record::{OwnedRecord, Record, RecordBatch, RecordBatchIter};
pub use writer::{LogWriter, RecoveryReport};

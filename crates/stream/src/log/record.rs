//! Records as handed to consumers: borrowed, owned, or packed into a reusable batch.
//!
//! Key decision: [`RecordBatch`] keeps all payloads of a batch in one byte arena plus a
//! small entry per record, so a consumer that reuses it reads without allocating per
//! record.

/// One record, borrowing its payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Record<'a> {
    /// Position in the log: dense, starting at 0.
    pub offset: u64,
    /// The timestamp the producer gave at append time, in microseconds since the epoch.
    pub append_ts_micros: i64,
    /// The opaque payload (one JSON event in driftline).
    pub payload: &'a [u8],
}

/// One record owning its payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnedRecord {
    /// Position in the log: dense, starting at 0.
    pub offset: u64,
    /// The timestamp the producer gave at append time, in microseconds since the epoch.
    pub append_ts_micros: i64,
    /// The opaque payload (one JSON event in driftline).
    pub payload: Vec<u8>,
}

impl From<Record<'_>> for OwnedRecord {
    fn from(record: Record<'_>) -> Self {
        Self {
            offset: record.offset,
            append_ts_micros: record.append_ts_micros,
            payload: record.payload.to_vec(),
        }
    }
}

impl OwnedRecord {
    /// This record with a borrowed payload.
    pub fn as_record(&self) -> Record<'_> {
        Record {
            offset: self.offset,
            append_ts_micros: self.append_ts_micros,
            payload: &self.payload,
        }
    }
}

/// A batch of records read by [`LogReader::read_into`](super::LogReader::read_into),
/// reusable across reads so its buffers are allocated once.
#[derive(Debug, Clone, Default)]
pub struct RecordBatch {
    payloads: Vec<u8>,
    entries: Vec<Entry>,
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    offset: u64,
    append_ts_micros: i64,
    /// End of this record's payload in `payloads`; it starts where the previous one ends.
    payload_end: usize,
}

impl RecordBatch {
    /// An empty batch.
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of records in the batch.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the batch holds no records.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The record at `index` (0 is the batch's first record).
    pub fn get(&self, index: usize) -> Option<Record<'_>> {
        let entry = self.entries.get(index)?;
        let payload_start = match index {
            0 => 0,
            _ => self.entries[index - 1].payload_end,
        };
        Some(Record {
            offset: entry.offset,
            append_ts_micros: entry.append_ts_micros,
            payload: &self.payloads[payload_start..entry.payload_end],
        })
    }

    /// The records in offset order.
    pub fn iter(&self) -> RecordBatchIter<'_> {
        RecordBatchIter { batch: self, next: 0 }
    }

    /// Removes all records, keeping the allocated buffers.
    pub fn clear(&mut self) {
        self.payloads.clear();
        self.entries.clear();
    }

    pub(super) fn push(&mut self, record: Record<'_>) {
        self.payloads.extend_from_slice(record.payload);
        self.entries.push(Entry {
            offset: record.offset,
            append_ts_micros: record.append_ts_micros,
            payload_end: self.payloads.len(),
        });
    }
}

impl<'a> IntoIterator for &'a RecordBatch {
    type Item = Record<'a>;
    type IntoIter = RecordBatchIter<'a>;

    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

/// Iterator over the records of a [`RecordBatch`].
#[derive(Debug, Clone)]
pub struct RecordBatchIter<'a> {
    batch: &'a RecordBatch,
    next: usize,
}

impl<'a> Iterator for RecordBatchIter<'a> {
    type Item = Record<'a>;

    fn next(&mut self) -> Option<Record<'a>> {
        let record = self.batch.get(self.next)?;
        self.next += 1;
        Some(record)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let remaining = self.batch.len() - self.next;
        (remaining, Some(remaining))
    }
}

impl ExactSizeIterator for RecordBatchIter<'_> {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batch_returns_each_payload_separately_and_reuses_after_clear() {
        let mut batch = RecordBatch::new();
        for (offset, payload) in [(3, &b"ab"[..]), (4, b""), (5, b"cde")] {
            batch.push(Record {
                offset,
                append_ts_micros: 9,
                payload,
            });
        }
        let payloads: Vec<&[u8]> = batch.iter().map(|r| r.payload).collect();
        assert_eq!(payloads, [&b"ab"[..], b"", b"cde"]);
        assert_eq!(batch.get(2).unwrap().offset, 5);
        assert!(batch.get(3).is_none());
        batch.clear();
        assert!(batch.is_empty());
    }
}

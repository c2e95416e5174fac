//! Reading the log from an offset, including while a writer (in any process) appends.
//!
//! Key decision: the reader never writes and never trusts bytes past the last complete
//! frame of the active segment: there it answers "nothing yet" and re-reads them on the
//! next call. It moves on to the next segment only after re-reading the current one
//! to its end *after* seeing the next file, because the writer creates that file only
//! once the current one is completely written.

use std::fs;
use std::path::{Path, PathBuf};

use super::cursor::{SegmentCursor, Step, Tail};
use super::record::{OwnedRecord, Record, RecordBatch};
use super::{LogError, segment};

/// A sequential reader of a log directory. Many may exist beside the one writer.
#[derive(Debug)]
pub struct LogReader {
    dir: PathBuf,
    /// `None` until the log has a segment.
    cursor: Option<SegmentCursor>,
    /// Whether a later segment exists, so the current one is complete.
    sealed: bool,
}

impl LogReader {
    /// Opens the log in `dir` (which must exist) at its first record.
    pub fn open(dir: &Path) -> Result<Self, LogError> {
        fs::metadata(dir).map_err(|e| LogError::io(dir, e))?;
        let mut reader = Self {
            dir: dir.to_path_buf(),
            cursor: None,
            sealed: false,
        };
        reader.open_first_segment()?;
        Ok(reader)
    }

    /// Positions the reader so that the next record read has offset `offset`, which
    /// may be the end of the log. Costs a scan from the start of the offset's segment.
    pub fn seek(&mut self, offset: u64) -> Result<(), LogError> {
        let bases = segment::list(&self.dir)?;
        let Some(base) = bases.iter().rev().copied().find(|&base| base <= offset) else {
            return self.seek_before_first_segment(offset, &bases);
        };
        let is_last = bases.last() == Some(&base);
        let mut cursor = SegmentCursor::open(&segment::path(&self.dir, base), base)?;
        while cursor.next_offset() < offset {
            if let Step::End(tail) = cursor.next_frame()? {
                let start = bases.first().copied().unwrap_or(base);
                return Err(seek_past_end(&cursor, offset, start, &tail, is_last));
            }
        }
        self.cursor = Some(cursor);
        self.sealed = false;
        Ok(())
    }

    /// The offset of the next record [`read_batch`](Self::read_batch) returns.
    pub fn position(&self) -> u64 {
        self.cursor.as_ref().map_or(0, SegmentCursor::next_offset)
    }

    /// Reads up to `max_records` complete, valid records into `out` (cleared first) and
    /// returns how many. 0 means the end for now: a later call returns records appended
    /// since, across segment rolls too.
    pub fn read_batch(&mut self, max_records: usize, out: &mut Vec<OwnedRecord>) -> Result<usize, LogError> {
        out.clear();
        self.read_with(max_records, |record| out.push(record.into()))
    }

    /// Like [`read_batch`](Self::read_batch), into a reusable [`RecordBatch`] that
    /// keeps all payloads in one buffer: no allocation per record.
    pub fn read_into(&mut self, max_records: usize, batch: &mut RecordBatch) -> Result<usize, LogError> {
        batch.clear();
        self.read_with(max_records, |record| batch.push(record))
    }

    /// The offset the writer will give its next record, as far as complete valid
    /// frames on disk show now. Scans the unread part of the last segment.
    pub fn end_offset(&self) -> Result<u64, LogError> {
        let Some(&last) = segment::list(&self.dir)?.last() else {
            return Ok(0);
        };
        let mut cursor = match &self.cursor {
            Some(current) if current.base_offset() == last => {
                SegmentCursor::open_at(current.path(), last, current.position(), current.next_offset())?
            }
            _ => SegmentCursor::open(&segment::path(&self.dir, last), last)?,
        };
        cursor.skip_to_end()?;
        Ok(cursor.next_offset())
    }

    fn read_with(&mut self, max_records: usize, mut emit: impl FnMut(Record<'_>)) -> Result<usize, LogError> {
        let mut count = 0;
        while count < max_records {
            let Some(cursor) = self.cursor.as_mut() else {
                if self.open_first_segment()? {
                    continue;
                }
                break;
            };
            match cursor.next_frame()? {
                Step::Record(record) => {
                    emit(record);
                    count += 1;
                }
                Step::End(tail) => {
                    if !self.continue_after(&tail)? {
                        break;
                    }
                }
            }
        }
        Ok(count)
    }

    /// Decides what the end of the current segment means. Returns whether reading can
    /// go on now (the segment turned out sealed), or fails on corruption.
    fn continue_after(&mut self, tail: &Tail) -> Result<bool, LogError> {
        let Some(cursor) = self.cursor.as_mut() else {
            return Ok(false);
        };
        if !tail.may_be_in_progress() {
            return Err(cursor.corrupt(tail.problem().unwrap_or_default()));
        }
        if self.sealed {
            return match tail.problem() {
                None => self.open_next_segment().map(|()| true),
                Some(problem) => Err(cursor.corrupt(format!(
                    "{problem} at the end of a segment that a later segment follows"
                ))),
            };
        }
        // Whatever the current segment showed may predate the next one's creation:
        // read it again to its end before trusting that end.
        cursor.rewind()?;
        self.sealed = segment::next_after(&self.dir, cursor.base_offset())?.is_some();
        Ok(self.sealed)
    }

    /// Starts reading at the first segment, if there is one yet.
    fn open_first_segment(&mut self) -> Result<bool, LogError> {
        let Some(&base) = segment::list(&self.dir)?.first() else {
            return Ok(false);
        };
        self.cursor = Some(SegmentCursor::open(&segment::path(&self.dir, base), base)?);
        self.sealed = false;
        Ok(true)
    }

    /// Moves from the sealed current segment to the next, which must continue its
    /// offsets without a gap.
    fn open_next_segment(&mut self) -> Result<(), LogError> {
        let Some(current) = self.cursor.as_ref() else {
            return Ok(());
        };
        let expected = current.next_offset();
        let next = segment::next_after(&self.dir, current.base_offset())?;
        let Some(base) = next else {
            return Err(current.corrupt("the later segment disappeared"));
        };
        let path = segment::path(&self.dir, base);
        if base != expected {
            let reason = format!("segment starts at offset {base}, expected {expected}");
            return Err(LogError::corrupt(&path, 0, reason));
        }
        self.cursor = Some(SegmentCursor::open(&path, base)?);
        self.sealed = false;
        Ok(())
    }

    fn seek_before_first_segment(&mut self, offset: u64, bases: &[u64]) -> Result<(), LogError> {
        match bases.first() {
            None if offset == 0 => {
                self.cursor = None;
                Ok(())
            }
            None => Err(LogError::OffsetOutOfRange {
                requested: offset,
                start: 0,
                end: 0,
            }),
            Some(&start) => Err(LogError::OffsetOutOfRange {
                requested: offset,
                start,
                end: self.end_offset()?,
            }),
        }
    }
}

/// The error for a seek to `offset` beyond where the segment's valid frames end, in a
/// log whose first offset is `start`.
fn seek_past_end(cursor: &SegmentCursor, offset: u64, start: u64, tail: &Tail, is_last: bool) -> LogError {
    match (is_last && tail.may_be_in_progress(), tail.problem()) {
        (true, _) => LogError::OffsetOutOfRange {
            requested: offset,
            start,
            end: cursor.next_offset(),
        },
        (false, Some(problem)) => cursor.corrupt(problem),
        (false, None) => cursor.corrupt(format!(
            "segment ends at offset {} before the next segment starts",
            cursor.next_offset()
        )),
    }
}

#[cfg(test)]
mod tests {
    use std::fs::OpenOptions;
    use std::io::Write;

    use tempfile::TempDir;

    use super::*;
    use crate::log::frame;

    fn frames(offsets: std::ops::Range<u64>) -> Vec<u8> {
        let mut bytes = Vec::new();
        for offset in offsets {
            frame::encode(&mut bytes, offset, 0, &offset.to_le_bytes());
        }
        bytes
    }

    /// The race this guards against: the reader hits the end of segment A, then the
    /// writer finishes A and creates B, then the reader sees B. Moving on to B without
    /// re-reading A would skip A's last records.
    #[test]
    fn segment_completed_just_before_the_next_appears_is_read_to_its_new_end() {
        let dir = TempDir::new().unwrap();
        let first = segment::path(dir.path(), 0);
        fs::write(&first, frames(0..2)).unwrap();
        let mut reader = LogReader::open(dir.path()).unwrap();
        let cursor = reader.cursor.as_mut().unwrap();
        let tail = cursor.skip_to_end().unwrap();
        assert_eq!(tail, Tail::Clean);

        let mut file = OpenOptions::new().append(true).open(&first).unwrap();
        file.write_all(&frames(2..3)).unwrap();
        fs::write(segment::path(dir.path(), 3), frames(3..4)).unwrap();

        assert!(reader.continue_after(&tail).unwrap());
        let mut records = Vec::new();
        reader.read_batch(10, &mut records).unwrap();
        let offsets: Vec<u64> = records.iter().map(|r| r.offset).collect();
        assert_eq!(offsets, [2, 3]);
    }
}

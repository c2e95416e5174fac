//! Sequential frame scanning over one segment file, shared by the reader and by the
//! writer's torn-tail recovery.
//!
//! Key decision: the cursor reads the file in large chunks into one reusable buffer and
//! lends payloads out of it, so scanning costs no allocation per record. Bytes past the
//! last complete frame are never trusted across calls: [`SegmentCursor::rewind`] drops
//! them, so the next read fetches whatever a concurrent writer has finished since.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use super::LogError;
use super::frame::{self, Decoded, FrameHeader, Invalid};
use super::record::Record;

/// Bytes requested from the file per read; a larger frame grows the buffer.
const READ_CHUNK_BYTES: usize = 1 << 20;

/// A read position inside one segment, with the offset its next frame must carry.
#[derive(Debug)]
pub(super) struct SegmentCursor {
    path: PathBuf,
    base_offset: u64,
    file: File,
    /// Bytes read from the file; `buf[head..filled]` are not consumed yet.
    buf: Vec<u8>,
    head: usize,
    filled: usize,
    /// File position of `buf[0]`.
    buf_position: u64,
    next_offset: u64,
}

/// One step of a scan.
#[derive(Debug)]
pub(super) enum Step<'a> {
    /// A complete, valid frame; the cursor has moved past it.
    Record(Record<'a>),
    /// No further complete frame; the cursor stays at the first byte not consumed.
    End(Tail),
}

/// What follows the last complete frame of a segment, as of the scan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Tail {
    /// Nothing: the file ends right after the last complete frame.
    Clean,
    /// The start of a frame, `bytes` long, up to the end of the file.
    Partial { bytes: u64 },
    /// A frame that fails validation.
    Invalid {
        reason: String,
        /// A complete frame whose checksum alone is wrong and that ends the file:
        /// on an active segment, possibly a write still in progress.
        unverified_last_frame: bool,
    },
}

impl Tail {
    /// Whether a writer may still complete what follows the last frame.
    pub fn may_be_in_progress(&self) -> bool {
        match self {
            Self::Clean | Self::Partial { .. } => true,
            Self::Invalid {
                unverified_last_frame,
                ..
            } => *unverified_last_frame,
        }
    }

    /// Why the tail is not a clean end, or `None` when it is.
    pub fn problem(&self) -> Option<String> {
        match self {
            Self::Clean => None,
            Self::Partial { bytes } => Some(format!("incomplete frame of {bytes} bytes")),
            Self::Invalid { reason, .. } => Some(reason.clone()),
        }
    }
}

impl SegmentCursor {
    /// A cursor at the start of the segment based at `base_offset`.
    pub fn open(path: &Path, base_offset: u64) -> Result<Self, LogError> {
        Self::open_at(path, base_offset, 0, base_offset)
    }

    /// A cursor at byte `position` of a segment, where the frame of `next_offset` starts.
    pub fn open_at(path: &Path, base_offset: u64, position: u64, next_offset: u64) -> Result<Self, LogError> {
        let mut file = File::open(path).map_err(|e| LogError::io(path, e))?;
        if position > 0 {
            file.seek(SeekFrom::Start(position))
                .map_err(|e| LogError::io(path, e))?;
        }
        Ok(Self {
            path: path.to_path_buf(),
            base_offset,
            file,
            buf: vec![0; READ_CHUNK_BYTES],
            head: 0,
            filled: 0,
            buf_position: position,
            next_offset,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn base_offset(&self) -> u64 {
        self.base_offset
    }

    /// The offset the next frame must carry.
    pub fn next_offset(&self) -> u64 {
        self.next_offset
    }

    /// Byte position in the file of the next frame.
    pub fn position(&self) -> u64 {
        self.buf_position + self.head as u64
    }

    /// The next complete, valid frame, or what ends the segment for now.
    pub fn next_frame(&mut self) -> Result<Step<'_>, LogError> {
        loop {
            match frame::decode(&self.buf[self.head..self.filled], self.next_offset) {
                Decoded::Frame(header) => return Ok(Step::Record(self.consume(header))),
                Decoded::NeedBytes(needed) => {
                    if self.read_more(needed)? == 0 {
                        return Ok(Step::End(self.partial_tail()));
                    }
                }
                Decoded::Invalid(invalid) => return Ok(Step::End(self.invalid_tail(&invalid)?)),
            }
        }
    }

    /// Consumes every complete frame and returns what ends the segment.
    pub fn skip_to_end(&mut self) -> Result<Tail, LogError> {
        loop {
            if let Step::End(tail) = self.next_frame()? {
                return Ok(tail);
            }
        }
    }

    /// Forgets bytes read past the consumed position, so they are read again next time.
    pub fn rewind(&mut self) -> Result<(), LogError> {
        let position = self.position();
        self.file
            .seek(SeekFrom::Start(position))
            .map_err(|e| LogError::io(&self.path, e))?;
        self.buf_position = position;
        self.head = 0;
        self.filled = 0;
        Ok(())
    }

    /// A corruption error at the cursor's position.
    pub fn corrupt(&self, reason: impl Into<String>) -> LogError {
        LogError::corrupt(&self.path, self.position(), reason)
    }

    fn consume(&mut self, header: FrameHeader) -> Record<'_> {
        let payload_start = self.head + frame::HEADER_BYTES;
        let payload_end = self.head + header.frame_len();
        self.head = payload_end;
        self.next_offset += 1;
        Record {
            offset: header.offset,
            append_ts_micros: header.append_ts_micros,
            payload: &self.buf[payload_start..payload_end],
        }
    }

    /// Reads once from the file so that up to `needed` unconsumed bytes fit in the
    /// buffer. Returns the number of bytes read; 0 means end of file.
    fn read_more(&mut self, needed: usize) -> Result<usize, LogError> {
        self.compact();
        if self.buf.len() < needed {
            self.buf.resize(needed, 0);
        }
        let read = loop {
            match self.file.read(&mut self.buf[self.filled..]) {
                Ok(read) => break read,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(LogError::io(&self.path, e)),
            }
        };
        self.filled += read;
        Ok(read)
    }

    /// Moves the unconsumed bytes (less than one frame) to the front of the buffer.
    fn compact(&mut self) {
        if self.head == 0 {
            return;
        }
        self.buf.copy_within(self.head..self.filled, 0);
        self.buf_position += self.head as u64;
        self.filled -= self.head;
        self.head = 0;
    }

    fn partial_tail(&self) -> Tail {
        match self.filled - self.head {
            0 => Tail::Clean,
            bytes => Tail::Partial { bytes: bytes as u64 },
        }
    }

    fn invalid_tail(&self, invalid: &Invalid) -> Result<Tail, LogError> {
        let unverified_last_frame = match invalid {
            Invalid::Checksum { frame_len, .. } => !self.bytes_follow(*frame_len)?,
            Invalid::Length { .. } | Invalid::Offset { .. } => false,
        };
        Ok(Tail::Invalid {
            reason: invalid.to_string(),
            unverified_last_frame,
        })
    }

    /// Whether the file holds more bytes after the `frame_len` bytes at the position.
    fn bytes_follow(&self, frame_len: usize) -> Result<bool, LogError> {
        if self.filled - self.head > frame_len {
            return Ok(true);
        }
        let file_len = self
            .file
            .metadata()
            .map_err(|e| LogError::io(&self.path, e))?
            .len();
        Ok(file_len > self.position() + frame_len as u64)
    }
}

//! The byte layout of one record frame, and its validation.
//!
//! Layout, little endian: `u32 payload_len | u32 crc32 | u64 offset | i64 ts | payload`.
//! Key decision: the CRC covers every byte after the CRC field (offset, timestamp and
//! payload), one contiguous slice, so encoding and checking are each a single
//! `crc32fast::hash` call.

use std::fmt;

/// Bytes in a frame before the payload.
pub const HEADER_BYTES: usize = 24;
/// The largest payload a frame may carry; a larger length field is corruption.
pub const MAX_PAYLOAD_BYTES: usize = 16 << 20;

/// Where the checksummed part of a frame starts (right after the CRC field).
const CHECKED_FROM: usize = 8;

/// Total frame size for a payload of `payload_len` bytes.
pub(super) fn frame_len(payload_len: usize) -> usize {
    HEADER_BYTES + payload_len
}

/// Appends one frame to `out`. The caller has checked `payload.len() <= MAX_PAYLOAD_BYTES`.
pub(super) fn encode(out: &mut Vec<u8>, offset: u64, append_ts_micros: i64, payload: &[u8]) {
    debug_assert!(payload.len() <= MAX_PAYLOAD_BYTES);
    let start = out.len();
    let payload_len = u32::try_from(payload.len()).expect("payload length checked by caller");
    out.extend_from_slice(&payload_len.to_le_bytes());
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(&offset.to_le_bytes());
    out.extend_from_slice(&append_ts_micros.to_le_bytes());
    out.extend_from_slice(payload);
    let crc = crc32fast::hash(&out[start + CHECKED_FROM..]);
    out[start + 4..start + CHECKED_FROM].copy_from_slice(&crc.to_le_bytes());
}

/// The validated header of a complete frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct FrameHeader {
    pub offset: u64,
    pub append_ts_micros: i64,
    pub payload_len: usize,
}

impl FrameHeader {
    pub fn frame_len(&self) -> usize {
        frame_len(self.payload_len)
    }
}

/// What the bytes at a frame position hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Decoded {
    /// A complete frame with a valid checksum and the expected offset.
    Frame(FrameHeader),
    /// Not enough bytes yet: the frame needs this many bytes in total.
    NeedBytes(usize),
    /// The bytes cannot be the expected frame.
    Invalid(Invalid),
}

/// Why a frame was rejected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Invalid {
    /// The length field exceeds [`MAX_PAYLOAD_BYTES`], so the frame's extent is unknown.
    Length { payload_len: u64 },
    /// A complete frame whose checksum does not match its contents.
    Checksum {
        frame_len: usize,
        stored: u32,
        computed: u32,
    },
    /// A checksum-valid frame that carries another offset than the expected one.
    Offset {
        frame_len: usize,
        found: u64,
        expected: u64,
    },
}

impl fmt::Display for Invalid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Length { payload_len } => write!(
                f,
                "payload length {payload_len} exceeds the {MAX_PAYLOAD_BYTES}-byte maximum"
            ),
            Self::Checksum { stored, computed, .. } => write!(
                f,
                "checksum mismatch (stored {stored:08x}, computed {computed:08x})"
            ),
            Self::Offset { found, expected, .. } => {
                write!(f, "frame holds offset {found}, expected {expected}")
            }
        }
    }
}

/// Decodes the frame at the start of `bytes`, which must carry `expected_offset`.
pub(super) fn decode(bytes: &[u8], expected_offset: u64) -> Decoded {
    let Some(header) = bytes.get(..HEADER_BYTES) else {
        return Decoded::NeedBytes(HEADER_BYTES);
    };
    let payload_len = u32::from_le_bytes(field(header, 0));
    let payload_len = match usize::try_from(payload_len) {
        Ok(len) if len <= MAX_PAYLOAD_BYTES => len,
        _ => {
            return Decoded::Invalid(Invalid::Length {
                payload_len: u64::from(payload_len),
            });
        }
    };
    let frame_len = frame_len(payload_len);
    let Some(frame) = bytes.get(..frame_len) else {
        return Decoded::NeedBytes(frame_len);
    };
    let stored = u32::from_le_bytes(field(header, 4));
    let computed = crc32fast::hash(&frame[CHECKED_FROM..]);
    if stored != computed {
        return Decoded::Invalid(Invalid::Checksum {
            frame_len,
            stored,
            computed,
        });
    }
    let offset = u64::from_le_bytes(field(header, 8));
    if offset != expected_offset {
        return Decoded::Invalid(Invalid::Offset {
            frame_len,
            found: offset,
            expected: expected_offset,
        });
    }
    Decoded::Frame(FrameHeader {
        offset,
        append_ts_micros: i64::from_le_bytes(field(header, 16)),
        payload_len,
    })
}

/// The `N` header bytes starting at `at`; `header` is always `HEADER_BYTES` long.
fn field<const N: usize>(header: &[u8], at: usize) -> [u8; N] {
    header[at..at + N]
        .try_into()
        .expect("field lies within the header")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one_frame(offset: u64, payload: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        encode(&mut out, offset, -7, payload);
        out
    }

    #[test]
    fn encoded_frame_decodes_to_its_fields() {
        let bytes = one_frame(42, b"hello");
        assert_eq!(bytes.len(), HEADER_BYTES + 5);
        let expected = FrameHeader {
            offset: 42,
            append_ts_micros: -7,
            payload_len: 5,
        };
        assert_eq!(decode(&bytes, 42), Decoded::Frame(expected));
    }

    #[test]
    fn short_input_asks_for_the_missing_bytes() {
        let bytes = one_frame(0, b"hello");
        assert_eq!(decode(&bytes[..10], 0), Decoded::NeedBytes(HEADER_BYTES));
        assert_eq!(decode(&bytes[..26], 0), Decoded::NeedBytes(29));
    }

    #[test]
    fn flipped_payload_byte_fails_the_checksum() {
        let mut bytes = one_frame(0, b"hello");
        bytes[HEADER_BYTES + 1] ^= 0x01;
        assert!(matches!(
            decode(&bytes, 0),
            Decoded::Invalid(Invalid::Checksum { frame_len: 29, .. })
        ));
    }

    #[test]
    fn flipped_timestamp_byte_fails_the_checksum() {
        let mut bytes = one_frame(0, b"hello");
        bytes[17] ^= 0x80;
        assert!(matches!(
            decode(&bytes, 0),
            Decoded::Invalid(Invalid::Checksum { .. })
        ));
    }

    #[test]
    fn unexpected_offset_is_invalid_even_with_a_good_checksum() {
        let bytes = one_frame(5, b"x");
        assert!(matches!(
            decode(&bytes, 4),
            Decoded::Invalid(Invalid::Offset {
                found: 5,
                expected: 4,
                ..
            })
        ));
    }

    #[test]
    fn oversized_length_is_invalid_before_reading_the_payload() {
        let mut bytes = one_frame(0, b"x");
        let too_long = u32::try_from(MAX_PAYLOAD_BYTES + 1).unwrap();
        bytes[..4].copy_from_slice(&too_long.to_le_bytes());
        assert!(matches!(
            decode(&bytes, 0),
            Decoded::Invalid(Invalid::Length { .. })
        ));
    }
}

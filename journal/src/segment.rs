//! Segment files: `journal-<first seq, 20 digits>.seg`, pre-allocated, each opening
//! with a 64-byte header, then records back to back, then zeros.
//!
//! ```text
//! offset  size  field
//!      0     8  magic "BOURSEJ1"
//!      8     4  format version (1)
//!     12     4  CRC32C of bytes 16..64
//!     16     8  sequence number of the first record
//!     24     4  CRC of the record before this segment (0 for the very first)
//!     28    36  zero
//! ```
//!
//! `scan` walks one segment's records and checks each against the chain: the expected
//! next sequence number and the previous record's checksum.

use bourse_core::ids::Seq;

use crate::record::{Decoded, Record, decode};

pub const SEGMENT_HEADER_BYTES: usize = 64;
const MAGIC: &[u8; 8] = b"BOURSEJ1";
const VERSION: u32 = 1;

pub fn segment_name(first_seq: Seq) -> String {
    format!("journal-{:020}.seg", first_seq.get())
}

/// The first sequence number of a segment file name, if it is one.
pub fn parse_segment_name(name: &str) -> Option<Seq> {
    let digits = name.strip_prefix("journal-")?.strip_suffix(".seg")?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok().map(Seq::new)
}

/// A segment's header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SegmentHeader {
    pub first_seq: Seq,
    pub prev_crc: u32,
}

impl SegmentHeader {
    pub fn encode(&self) -> [u8; SEGMENT_HEADER_BYTES] {
        let mut bytes = [0; SEGMENT_HEADER_BYTES];
        bytes[0..8].copy_from_slice(MAGIC);
        bytes[8..12].copy_from_slice(&VERSION.to_le_bytes());
        bytes[16..24].copy_from_slice(&self.first_seq.get().to_le_bytes());
        bytes[24..28].copy_from_slice(&self.prev_crc.to_le_bytes());
        let crc = crc32c::crc32c(&bytes[16..]);
        bytes[12..16].copy_from_slice(&crc.to_le_bytes());
        bytes
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, &'static str> {
        let Some(bytes) = bytes.get(..SEGMENT_HEADER_BYTES) else {
            return Err("segment shorter than its header");
        };
        if bytes.iter().all(|&b| b == 0) {
            return Err("segment header never written");
        }
        if &bytes[0..8] != MAGIC {
            return Err("not a Bourse journal segment (bad magic)");
        }
        if bytes[8..12] != VERSION.to_le_bytes() {
            return Err("unsupported journal format version");
        }
        if crc32c::crc32c(&bytes[16..]) != u32::from_le_bytes(bytes[12..16].try_into().expect("4 bytes")) {
            return Err("segment header checksum mismatch");
        }
        Ok(Self {
            first_seq: Seq::new(u64::from_le_bytes(bytes[16..24].try_into().expect("8 bytes"))),
            prev_crc: u32::from_le_bytes(bytes[24..28].try_into().expect("4 bytes")),
        })
    }
}

/// Where the chain stands: the next record must have this sequence number and name
/// this checksum as its predecessor's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Chain {
    pub next_seq: Seq,
    pub prev_crc: u32,
}

/// How a segment's scan ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ScanEnd {
    /// Zeros from `offset` to the end of the segment: a clean end.
    Clean { offset: usize },
    /// Something that is not the next record of the chain at `offset`.
    Bad { offset: usize, reason: &'static str },
}

/// Walks `bytes` (a whole segment) from its first record, handing each record that
/// continues `chain` to `visit` and advancing `chain`.
pub fn scan<'a>(bytes: &'a [u8], chain: &mut Chain, mut visit: impl FnMut(&Record<'a>, usize)) -> ScanEnd {
    let mut offset = SEGMENT_HEADER_BYTES;
    loop {
        match decode(&bytes[offset.min(bytes.len())..]) {
            Decoded::Empty => {
                if bytes[offset.min(bytes.len())..].iter().any(|&b| b != 0) {
                    return ScanEnd::Bad { offset, reason: "zeros followed by data" };
                }
                return ScanEnd::Clean { offset };
            }
            Decoded::Invalid(reason) => return ScanEnd::Bad { offset, reason },
            Decoded::Valid(record, len) => {
                if record.seq != chain.next_seq {
                    return ScanEnd::Bad { offset, reason: "sequence number out of order" };
                }
                if record.prev_crc != chain.prev_crc {
                    return ScanEnd::Bad { offset, reason: "hash chain broken (previous checksum differs)" };
                }
                visit(&record, offset);
                chain.next_seq = Seq::new(record.seq.get() + 1);
                chain.prev_crc = record.crc;
                offset += len;
            }
        }
    }
}

/// Whether any valid record starts at an 8-byte boundary at or after `from`.
pub fn valid_record_after(bytes: &[u8], from: usize) -> Option<(usize, Seq)> {
    let start = from.div_ceil(8) * 8;
    (start..bytes.len()).step_by(8).find_map(|offset| match decode(&bytes[offset..]) {
        Decoded::Valid(record, _) => Some((offset, record.seq)),
        _ => None,
    })
}

/// The evidence that damage at `bad` is corruption rather than a torn tail:
/// - a whole, checksummed record at `bad` itself (a record out of place is never a
///   torn write);
/// - any valid record past the damaged record's claimed extent;
/// - inside that extent, a valid record that the next record chains from. A lone
///   record-shaped run of bytes there proves nothing: a torn record's payload may
///   carry bytes that look like a record.
pub fn record_beyond_damage(bytes: &[u8], bad: usize) -> Option<(usize, Seq)> {
    let rest = &bytes[bad.min(bytes.len())..];
    if let Decoded::Valid(record, _) = decode(rest) {
        return Some((bad, record.seq));
    }
    let claimed = rest
        .get(0..4)
        .map(|len| u32::from_le_bytes(len.try_into().expect("4 bytes")) as usize)
        .filter(|&len| len <= crate::record::PAYLOAD_BYTES_MAX)
        .map(crate::record::encoded_len)
        .filter(|&extent| bad + extent <= bytes.len());
    let extent_end = bad + claimed.unwrap_or(8).max(8);
    if let Some(found) = valid_record_after(bytes, extent_end) {
        return Some(found);
    }
    (bad.div_ceil(8) * 8 + 8..extent_end).step_by(8).find_map(|offset| {
        let Decoded::Valid(record, len) = decode(&bytes[offset..]) else { return None };
        match decode(&bytes[(offset + len).min(bytes.len())..]) {
            Decoded::Valid(next, _) if next.seq.get() == record.seq.get() + 1 && next.prev_crc == record.crc => {
                Some((offset, record.seq))
            }
            _ => None,
        }
    })
}

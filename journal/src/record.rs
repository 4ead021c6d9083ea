//! The record format. Every record is self-describing and checked:
//!
//! ```text
//! offset  size  field
//!      0     4  payload length (bytes)
//!      4     4  CRC32C of bytes 8 .. 32 + length (the rest of the header and the payload)
//!      8     8  sequence number
//!     16     8  timestamp (ns since the Unix epoch, command time)
//!     24     2  kind (a `CommandKind`, or `KIND_CHECKPOINT`)
//!     26     2  reserved, zero
//!     28     4  CRC of the previous record (the hash chain)
//!     32     n  payload
//!             …  zero padding to a multiple of 8
//! ```
//!
//! The chain makes a missing, reordered or misplaced record visible: each record names
//! the checksum of the one before it, across segment boundaries.

use bourse_core::ids::{Seq, Timestamp};

pub const HEADER_BYTES: usize = 32;
/// Largest payload a record may carry.
pub const PAYLOAD_BYTES_MAX: usize = 64 * 1024;
/// `kind` of a checkpoint record: the engine's state hash at a snapshot.
pub const KIND_CHECKPOINT: u16 = 0xC0DE;

/// A record as read back: borrowed from the mapped segment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Record<'a> {
    pub seq: Seq,
    pub timestamp: Timestamp,
    pub kind: u16,
    pub crc: u32,
    pub prev_crc: u32,
    pub payload: &'a [u8],
}

/// Bytes a record of `payload_len` takes, padding included.
pub const fn encoded_len(payload_len: usize) -> usize {
    (HEADER_BYTES + payload_len).div_ceil(8) * 8
}

/// Writes a record into `out` (exactly `encoded_len(payload.len())` bytes) and returns
/// its CRC.
pub fn encode(out: &mut [u8], seq: Seq, timestamp: Timestamp, kind: u16, prev_crc: u32, payload: &[u8]) -> u32 {
    assert!(payload.len() <= PAYLOAD_BYTES_MAX, "payload within PAYLOAD_BYTES_MAX");
    let total = encoded_len(payload.len());
    assert_eq!(out.len(), total);
    out[0..4].copy_from_slice(&(payload.len() as u32).to_le_bytes());
    out[8..16].copy_from_slice(&seq.get().to_le_bytes());
    out[16..24].copy_from_slice(&timestamp.as_nanos().to_le_bytes());
    out[24..26].copy_from_slice(&kind.to_le_bytes());
    out[26..28].fill(0);
    out[28..32].copy_from_slice(&prev_crc.to_le_bytes());
    out[HEADER_BYTES..HEADER_BYTES + payload.len()].copy_from_slice(payload);
    out[HEADER_BYTES + payload.len()..].fill(0);
    let crc = crc32c::crc32c(&out[8..HEADER_BYTES + payload.len()]);
    out[4..8].copy_from_slice(&crc.to_le_bytes());
    crc
}

/// What is at an offset of a segment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decoded<'a> {
    /// A record whose checksum holds.
    Valid(Record<'a>, usize),
    /// Zeros: nothing was ever written here.
    Empty,
    /// Bytes that are not a valid record.
    Invalid(&'static str),
}

/// Reads the record at the start of `bytes`, checking its length and checksum (not
/// its place in the chain: that is the scanner's job).
pub fn decode(bytes: &[u8]) -> Decoded<'_> {
    if bytes.len() < HEADER_BYTES {
        return if bytes.iter().all(|&b| b == 0) { Decoded::Empty } else { Decoded::Invalid("truncated header") };
    }
    let header = &bytes[..HEADER_BYTES];
    if header.iter().all(|&b| b == 0) {
        return Decoded::Empty;
    }
    let word = |range: std::ops::Range<usize>| u32::from_le_bytes(header[range].try_into().expect("4 bytes"));
    let long = |range: std::ops::Range<usize>| u64::from_le_bytes(header[range].try_into().expect("8 bytes"));
    let len = word(0..4) as usize;
    if len > PAYLOAD_BYTES_MAX {
        return Decoded::Invalid("length above the maximum");
    }
    let total = encoded_len(len);
    if total > bytes.len() {
        return Decoded::Invalid("record runs past the end of the segment");
    }
    let crc = word(4..8);
    if crc32c::crc32c(&bytes[8..HEADER_BYTES + len]) != crc {
        return Decoded::Invalid("checksum mismatch");
    }
    if header[26..28] != [0, 0] || bytes[HEADER_BYTES + len..total].iter().any(|&b| b != 0) {
        return Decoded::Invalid("non-zero reserved bytes");
    }
    let record = Record {
        seq: Seq::new(long(8..16)),
        timestamp: Timestamp::from_nanos(long(16..24)),
        kind: u16::from_le_bytes([header[24], header[25]]),
        crc,
        prev_crc: word(28..32),
        payload: &bytes[HEADER_BYTES..HEADER_BYTES + len],
    };
    Decoded::Valid(record, total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_detects_damage() {
        let payload = b"hello journal";
        let mut buffer = vec![0; encoded_len(payload.len())];
        assert_eq!(buffer.len() % 8, 0);
        let crc = encode(&mut buffer, Seq::new(7), Timestamp::from_nanos(99), 3, 0xABCD, payload);
        let Decoded::Valid(record, len) = decode(&buffer) else { panic!("valid record") };
        assert_eq!(
            (record.seq, record.timestamp, record.kind, record.crc, record.prev_crc),
            (Seq::new(7), Timestamp::from_nanos(99), 3, crc, 0xABCD)
        );
        assert_eq!((record.payload, len), (&payload[..], buffer.len()));
        for byte in 0..buffer.len() {
            let mut damaged = buffer.clone();
            damaged[byte] ^= 0x10;
            assert!(!matches!(decode(&damaged), Decoded::Valid(..)), "a flip at byte {byte} is caught");
        }
        assert_eq!(decode(&[0; 64]), Decoded::Empty);
        assert_eq!(decode(&buffer[..20]), Decoded::Invalid("truncated header"));
    }
}

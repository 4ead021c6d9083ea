//! The reader: every record from a sequence number on, across segments, each checked
//! again as it is read (checksum and chain).

use std::sync::Arc;

use bourse_core::ids::Seq;

use crate::error::JournalError;
use crate::journal::list_segments;
use crate::record::Record;
use crate::segment::{Chain, ScanEnd, SegmentHeader, scan};
use crate::storage::Storage;

/// Calls `visit` with every record whose sequence number is at least `from`, in
/// order, stopping at the first error `visit` returns. Returns the last sequence
/// number read, if any. Damage anywhere is an error.
pub fn read_from<E: From<JournalError>>(
    storage: &Arc<dyn Storage>,
    from: Seq,
    visit: impl FnMut(&Record<'_>) -> Result<(), E>,
) -> Result<Option<Seq>, E> {
    read_range(storage, from, None, visit)
}

/// As `read_from`, but only up to `last` (inclusive): what lies after it, such as a
/// torn tail that a read-only open reported but did not cut, is not read.
pub fn read_range<E: From<JournalError>>(
    storage: &Arc<dyn Storage>,
    from: Seq,
    last: Option<Seq>,
    mut visit: impl FnMut(&Record<'_>) -> Result<(), E>,
) -> Result<Option<Seq>, E> {
    let past_last = |next: Seq| last.is_some_and(|last| next > last);
    let segments = list_segments(storage.as_ref())?;
    // Start at the last segment whose first record is not after `from`.
    let start = segments.iter().rposition(|(first, _)| *first <= from).unwrap_or(0);
    let mut chain: Option<Chain> = None;
    let mut read = None;
    for (first_seq, name) in &segments[start..] {
        let describe = storage.describe(name);
        let file = storage.open(name).map_err(|source| JournalError::io("opening", &describe, source))?;
        let bytes = file.bytes();
        let header = SegmentHeader::decode(bytes).map_err(|reason| JournalError::Corrupt {
            file: describe.clone(),
            offset: 0,
            seq: *first_seq,
            reason,
        })?;
        let mut segment_chain = match chain {
            None => Chain { next_seq: header.first_seq, prev_crc: header.prev_crc },
            Some(chain) if chain.next_seq == header.first_seq && chain.prev_crc == header.prev_crc => chain,
            Some(chain) => {
                let reason = "segment does not continue the chain of the one before";
                return Err(JournalError::Corrupt { file: describe, offset: 0, seq: chain.next_seq, reason }.into());
            }
        };
        let mut failure = None;
        let end = scan(bytes, &mut segment_chain, |record, _| {
            if failure.is_none() && record.seq >= from && !past_last(record.seq) {
                read = Some(record.seq);
                if let Err(error) = visit(record) {
                    failure = Some(error);
                }
            }
        });
        if let Some(error) = failure {
            return Err(error);
        }
        if past_last(segment_chain.next_seq) {
            return Ok(read);
        }
        if let ScanEnd::Bad { offset, reason } = end {
            return Err(JournalError::Corrupt {
                file: describe,
                offset: offset as u64,
                seq: segment_chain.next_seq,
                reason,
            }
            .into());
        }
        chain = Some(segment_chain);
    }
    Ok(read)
}

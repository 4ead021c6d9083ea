//! Opening a journal: find the segments, walk the whole chain, repair a torn tail,
//! refuse corruption; then the writer appends and the reader replays.

use std::sync::Arc;

use bourse_core::ids::Seq;
use log::warn;

use crate::error::JournalError;
use crate::segment::{
    Chain, ScanEnd, SegmentHeader, parse_segment_name, record_beyond_damage, scan, valid_record_after,
};
use crate::storage::Storage;

/// A segment of the journal, as found on open.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SegmentInfo {
    pub name: String,
    pub first_seq: Seq,
    /// Records in it.
    pub records: u64,
    /// Bytes of records (after its header).
    pub bytes_used: u64,
    pub bytes_total: u64,
}

/// A torn tail that opening cut off.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Truncation {
    pub segment: String,
    pub offset: u64,
    /// Non-zero bytes that were dropped.
    pub bytes: u64,
    /// Why the tail was not a record.
    pub reason: &'static str,
    /// Later segments removed because they held no record.
    pub removed_segments: Vec<String>,
}

/// What opening found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OpenReport {
    pub segments: Vec<SegmentInfo>,
    /// Where the chain stands after the last valid record.
    pub chain: Chain,
    /// The last record, if any.
    pub last_seq: Option<Seq>,
    pub records: u64,
    pub truncation: Option<Truncation>,
}

impl OpenReport {
    pub fn first_seq(&self) -> Option<Seq> {
        self.segments.first().map(|segment| segment.first_seq)
    }
}

/// The journal's segment names in order, with their first sequence numbers.
pub(crate) fn list_segments(storage: &dyn Storage) -> Result<Vec<(Seq, String)>, JournalError> {
    let mut segments: Vec<(Seq, String)> = storage
        .list()
        .map_err(|source| JournalError::io("listing", "the journal directory", source))?
        .into_iter()
        .filter_map(|name| parse_segment_name(&name).map(|seq| (seq, name)))
        .collect();
    segments.sort();
    Ok(segments)
}

/// Walks every segment; repairs a torn tail (when `repair`) or refuses corruption.
/// With `repair` false nothing is changed, and a torn tail is reported as found.
pub fn open_and_check(storage: &Arc<dyn Storage>, repair: bool) -> Result<OpenReport, JournalError> {
    let segments = list_segments(storage.as_ref())?;
    let mut report = OpenReport {
        segments: Vec::new(),
        chain: Chain { next_seq: Seq::new(1), prev_crc: 0 },
        last_seq: None,
        records: 0,
        truncation: None,
    };
    for (index, (first_seq, name)) in segments.iter().enumerate() {
        let file = storage.open(name).map_err(|source| JournalError::io("opening", &storage.describe(name), source))?;
        let bytes = file.bytes();
        let header = SegmentHeader::decode(bytes);
        let header_problem = match header {
            Err(reason) => Some(reason),
            Ok(header) if header.first_seq != *first_seq => Some("segment header names another first sequence"),
            Ok(header)
                if index > 0
                    && (header.first_seq != report.chain.next_seq || header.prev_crc != report.chain.prev_crc) =>
            {
                Some("segment does not continue the chain of the one before")
            }
            Ok(_) => None,
        };
        if let Some(reason) = header_problem {
            let last = index + 1 == segments.len();
            let holds_records = valid_record_after(bytes, crate::segment::SEGMENT_HEADER_BYTES).is_some();
            if last && !holds_records && header.is_err() {
                // A crash between creating a segment and writing its header.
                return finish_torn(storage, repair, report, &segments[index..], name, 0, bytes, reason);
            }
            let seq = if index == 0 { *first_seq } else { report.chain.next_seq };
            return Err(JournalError::Corrupt { file: storage.describe(name), offset: 0, seq, reason });
        }
        let header = header.expect("checked above");
        if index == 0 {
            report.chain = Chain { next_seq: header.first_seq, prev_crc: header.prev_crc };
        }
        let mut records = 0;
        let end = scan(bytes, &mut report.chain, |_, _| records += 1);
        report.records += records;
        if records > 0 {
            report.last_seq = Some(Seq::new(report.chain.next_seq.get() - 1));
        }
        let (ScanEnd::Clean { offset: used } | ScanEnd::Bad { offset: used, .. }) = end;
        report.segments.push(SegmentInfo {
            name: name.clone(),
            first_seq: *first_seq,
            records,
            bytes_used: (used - crate::segment::SEGMENT_HEADER_BYTES) as u64,
            bytes_total: bytes.len() as u64,
        });
        if let ScanEnd::Bad { offset, reason } = end {
            let later_valid = record_beyond_damage(bytes, offset).is_some()
                || segments[index + 1..].iter().any(|(_, later)| segment_holds_data(storage.as_ref(), later));
            if later_valid {
                return Err(JournalError::Corrupt {
                    file: storage.describe(name),
                    offset: offset as u64,
                    seq: report.chain.next_seq,
                    reason,
                });
            }
            let removed = &segments[index + 1..];
            return finish_torn(storage, repair, report, removed, name, offset, bytes, reason);
        }
    }
    Ok(report)
}

/// Whether a later segment has a header or any record in it.
fn segment_holds_data(storage: &dyn Storage, name: &str) -> bool {
    storage
        .open(name)
        .is_ok_and(|file| SegmentHeader::decode(file.bytes()).is_ok() || valid_record_after(file.bytes(), 0).is_some())
}

#[allow(clippy::too_many_arguments)]
fn finish_torn(
    storage: &Arc<dyn Storage>,
    repair: bool,
    mut report: OpenReport,
    removed: &[(Seq, String)],
    name: &str,
    offset: usize,
    bytes: &[u8],
    reason: &'static str,
) -> Result<OpenReport, JournalError> {
    let dropped = bytes[offset..].iter().filter(|&&b| b != 0).count() as u64;
    let removed_segments: Vec<String> =
        removed.iter().map(|(_, name)| name.clone()).filter(|other| other != name).collect();
    let whole_segment = offset == 0;
    if repair {
        let describe = storage.describe(name);
        if whole_segment {
            storage.remove(name).map_err(|source| JournalError::io("removing", &describe, source))?;
        } else {
            let mut file = storage.open(name).map_err(|source| JournalError::io("opening", &describe, source))?;
            let zeros = vec![0; bytes.len() - offset];
            file.write(offset as u64, &zeros).map_err(|source| JournalError::io("repairing", &describe, source))?;
            file.sync(0, bytes.len() as u64).map_err(|source| JournalError::io("syncing", &describe, source))?;
        }
        for other in &removed_segments {
            storage.remove(other).map_err(|source| JournalError::io("removing", &storage.describe(other), source))?;
        }
        storage.sync_dir().map_err(|source| JournalError::io("syncing", "the journal directory", source))?;
        warn!(
            "journal: torn tail in {describe} at offset {offset} ({reason}): {dropped} bytes dropped, {} later segment(s) removed; the journal ends at sequence {}",
            removed_segments.len(),
            report.last_seq.map_or(0, Seq::get)
        );
    }
    if whole_segment {
        report.segments.retain(|segment| segment.name != name);
    }
    report.truncation =
        Some(Truncation { segment: name.to_owned(), offset: offset as u64, bytes: dropped, reason, removed_segments });
    Ok(report)
}

//! The writer: appends records to the current segment's mapping, rolls to a new
//! pre-allocated segment when one is full, and makes batches durable per the mode
//! (group commit): `Sync` before any reply, `Batch` every interval, `Async` never
//! explicitly.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bourse_core::ids::{Seq, Timestamp};

use crate::error::JournalError;
use crate::journal::OpenReport;
use crate::record::{PAYLOAD_BYTES_MAX, encode, encoded_len};
use crate::segment::{Chain, SEGMENT_HEADER_BYTES, SegmentHeader, segment_name};
use crate::storage::{Storage, StorageFile};

/// When appended records become durable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Durability {
    /// Every batch is synced (msync) before `commit` returns.
    Sync,
    /// Batches are synced at most `interval` apart; a process crash loses nothing
    /// (the mapping survives it), a power cut up to `interval` of acknowledged batches.
    Batch { interval: Duration },
    /// Never synced explicitly; the operating system writes back when it likes.
    Async,
}

impl Default for Durability {
    fn default() -> Self {
        Durability::Batch { interval: Duration::from_millis(2) }
    }
}

#[derive(Clone, Copy, Debug)]
pub struct JournalConfig {
    /// Bytes per segment file, pre-allocated.
    pub segment_bytes: u64,
    pub durability: Durability,
}

impl Default for JournalConfig {
    fn default() -> Self {
        Self { segment_bytes: 64 * 1024 * 1024, durability: Durability::default() }
    }
}

/// What a commit made of the records appended so far.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Committed {
    /// The last record appended (in the mapping: safe from a process crash).
    pub written: Option<Seq>,
    /// The last record known durable (synced).
    pub durable: Option<Seq>,
}

/// Counters for metrics and benchmarks.
#[derive(Clone, Copy, Debug, Default)]
pub struct WriterStats {
    pub records: u64,
    pub bytes: u64,
    pub syncs: u64,
    pub segments_created: u64,
    /// Time spent in the last sync.
    pub last_sync: Duration,
}

pub struct JournalWriter {
    storage: Arc<dyn Storage>,
    config: JournalConfig,
    segment: Option<(String, Box<dyn StorageFile>)>,
    offset: usize,
    synced_offset: usize,
    chain: Chain,
    written: Option<Seq>,
    durable: Option<Seq>,
    last_sync_at: Instant,
    scratch: Vec<u8>,
    stats: WriterStats,
    failed: Option<String>,
}

impl std::fmt::Debug for JournalWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JournalWriter")
            .field("chain", &self.chain)
            .field("written", &self.written)
            .finish_non_exhaustive()
    }
}

impl JournalWriter {
    /// Continues the journal `report` describes (from `open_and_check` with repair).
    pub fn new(storage: Arc<dyn Storage>, config: JournalConfig, report: &OpenReport) -> Result<Self, JournalError> {
        Self::resuming(storage, config, report, None)
    }

    /// As `new`, for an engine that has applied everything up to `applied` (restored
    /// from a snapshot): an empty journal starts right after it.
    pub fn resuming(
        storage: Arc<dyn Storage>,
        config: JournalConfig,
        report: &OpenReport,
        applied: Option<Seq>,
    ) -> Result<Self, JournalError> {
        assert!(
            config.segment_bytes as usize >= SEGMENT_HEADER_BYTES + encoded_len(PAYLOAD_BYTES_MAX),
            "segment too small"
        );
        let mut writer = Self {
            storage,
            config,
            segment: None,
            offset: 0,
            synced_offset: 0,
            chain: match (report.last_seq, applied) {
                (None, Some(applied)) if report.segments.is_empty() => {
                    Chain { next_seq: Seq::new(applied.get() + 1), prev_crc: 0 }
                }
                _ => report.chain,
            },
            written: report.last_seq,
            durable: report.last_seq,
            last_sync_at: Instant::now(),
            scratch: Vec::with_capacity(encoded_len(PAYLOAD_BYTES_MAX)),
            stats: WriterStats::default(),
            failed: None,
        };
        if let Some(last) = report.segments.last() {
            let file = writer
                .storage
                .open(&last.name)
                .map_err(|source| JournalError::io("opening", &writer.storage.describe(&last.name), source))?;
            writer.offset = SEGMENT_HEADER_BYTES + last.bytes_used as usize;
            writer.synced_offset = writer.offset;
            writer.segment = Some((last.name.clone(), file));
        }
        Ok(writer)
    }

    /// The sequence number the next record gets.
    pub fn next_seq(&self) -> Seq {
        self.chain.next_seq
    }

    pub fn stats(&self) -> WriterStats {
        self.stats
    }

    pub fn durability(&self) -> Durability {
        self.config.durability
    }

    /// Appends one record and returns its sequence number. Not durable until a commit
    /// says so. After any I/O failure the writer refuses everything (the caller must
    /// stop: what was acknowledged is safe, what was not is not).
    pub fn append(&mut self, timestamp: Timestamp, kind: u16, payload: &[u8]) -> Result<Seq, JournalError> {
        if let Some(reason) = &self.failed {
            return Err(JournalError::Poisoned(reason.clone()));
        }
        if payload.len() > PAYLOAD_BYTES_MAX {
            return Err(JournalError::PayloadTooLarge { len: payload.len(), max: PAYLOAD_BYTES_MAX });
        }
        let len = encoded_len(payload.len());
        let fits = self.segment.as_ref().is_some_and(|(_, file)| self.offset + len <= file.len() as usize);
        if !fits {
            self.roll()?;
        }
        let seq = self.chain.next_seq;
        self.scratch.resize(len, 0);
        let crc = encode(&mut self.scratch, seq, timestamp, kind, self.chain.prev_crc, payload);
        let (name, file) = self.segment.as_mut().expect("a segment after roll");
        if let Err(source) = file.write(self.offset as u64, &self.scratch) {
            let error = JournalError::io("writing", &self.storage.describe(name), source);
            return Err(self.fail(error));
        }
        self.offset += len;
        self.chain = Chain { next_seq: Seq::new(seq.get() + 1), prev_crc: crc };
        self.written = Some(seq);
        self.stats.records += 1;
        self.stats.bytes += len as u64;
        Ok(seq)
    }

    /// Ends a batch: makes it durable if the mode says so now.
    pub fn commit(&mut self) -> Result<Committed, JournalError> {
        if let Some(reason) = &self.failed {
            return Err(JournalError::Poisoned(reason.clone()));
        }
        let due = match self.config.durability {
            Durability::Sync => true,
            Durability::Batch { interval } => self.last_sync_at.elapsed() >= interval,
            Durability::Async => false,
        };
        if due {
            self.sync()?;
        }
        Ok(self.committed())
    }

    /// Makes everything appended durable now.
    pub fn sync(&mut self) -> Result<Committed, JournalError> {
        if let Some(reason) = &self.failed {
            return Err(JournalError::Poisoned(reason.clone()));
        }
        if self.offset > self.synced_offset {
            let started = Instant::now();
            let (name, file) = self.segment.as_mut().expect("written bytes live in a segment");
            let range = (self.synced_offset as u64, (self.offset - self.synced_offset) as u64);
            if let Err(source) = file.sync(range.0, range.1) {
                let error = JournalError::io("syncing", &self.storage.describe(name), source);
                return Err(self.fail(error));
            }
            self.stats.last_sync = started.elapsed();
            self.stats.syncs += 1;
            self.synced_offset = self.offset;
        }
        self.last_sync_at = Instant::now();
        self.durable = self.written;
        Ok(self.committed())
    }

    pub fn committed(&self) -> Committed {
        Committed { written: self.written, durable: self.durable }
    }

    fn fail(&mut self, error: JournalError) -> JournalError {
        self.failed = Some(error.to_string());
        error
    }

    /// Seals the current segment (synced) and starts the next.
    fn roll(&mut self) -> Result<(), JournalError> {
        // The sealed segment is synced in every mode: a later segment must never reach
        // the disk before the end of the one it continues, or a power cut would leave a
        // hole with valid records after it (corruption, not a torn tail).
        if self.segment.is_some() {
            self.sync()?;
        }
        let name = segment_name(self.chain.next_seq);
        if self.segment.as_ref().is_some_and(|(current, _)| *current == name) {
            // The current segment holds no record (a repair cut it back to its header)
            // and is too short for this one: start it again at full size.
            self.segment = None;
            if let Err(source) = self.storage.remove(&name) {
                return Err(self.fail(JournalError::io("removing", &self.storage.describe(&name), source)));
            }
        }
        let header = SegmentHeader { first_seq: self.chain.next_seq, prev_crc: self.chain.prev_crc };
        let created = self.storage.create(&name, self.config.segment_bytes).and_then(|mut file| {
            file.write(0, &header.encode())?;
            file.sync(0, SEGMENT_HEADER_BYTES as u64)?;
            Ok(file)
        });
        let file = match created {
            Ok(file) => file,
            Err(source) => return Err(self.fail(JournalError::io("creating", &self.storage.describe(&name), source))),
        };
        if let Err(source) = self.storage.sync_dir() {
            return Err(self.fail(JournalError::io("syncing", "the journal directory", source)));
        }
        self.segment = Some((name, file));
        self.offset = SEGMENT_HEADER_BYTES;
        self.synced_offset = SEGMENT_HEADER_BYTES;
        self.stats.segments_created += 1;
        Ok(())
    }
}

//! `bourse-journal`: the write-ahead command log. Nothing is executed that is not
//! here first, and nothing acknowledged is lost.
//!
//! - `storage`: the `Storage` trait, the only I/O (so faults can be injected).
//! - `mmap`: `FileStorage`, real files mapped with memmap2.
//! - `faults`: `MemStorage`, in-memory files that fail, crash torn, flip bits, truncate.
//! - `record`: the record format (length, CRC32C, seq, time, kind, previous CRC, payload).
//! - `segment`: segment files, their header, and the chain-checking scan.
//! - `journal`: opening: walk the chain, repair a torn tail, refuse corruption.
//! - `writer`: appends, segment roll, group commit per durability mode.
//! - `reader`: replays records from any sequence number across segments.
//! - `codec`: commands and checkpoints as record payloads.
//! - `error`: `JournalError`, naming file, offset and sequence.

pub mod codec;
pub mod error;
pub mod faults;
pub mod journal;
mod mmap;
pub mod reader;
pub mod record;
pub mod segment;
pub mod storage;
pub mod writer;

pub use error::JournalError;
pub use faults::{Faults, MemStorage};
pub use journal::{OpenReport, SegmentInfo, Truncation, open_and_check};
pub use mmap::FileStorage;
pub use reader::{read_from, read_range};
pub use storage::{Storage, StorageFile};
pub use writer::{Committed, Durability, JournalConfig, JournalWriter, WriterStats};

//! Snapshot files: the engine's whole state at a journal sequence number.
//!
//! ```text
//! offset  size  field
//!      0     8  magic "BOURSES1"
//!      8     4  format version (4: the terms of cross-border payments and quote
//!                 executions held for review; 3: cross-border quotes and remainders
//!                 joined the rows; 2: rule versions, rule history, risk counters and
//!                 review holds; 1 had none of them)
//!     12     4  CRC32C of bytes 16..64
//!     16     8  sequence number of the last command applied
//!     24    16  the engine's state hash at that point
//!     40     8  payload length
//!     48     4  CRC32C of the payload
//!     52    12  zero
//!     64     n  payload: `EngineState`, archived with rkyv 0.8
//! ```
//!
//! Written to `<name>.tmp`, synced, renamed into place, and the directory synced; the
//! newest `keep` are kept. Loading maps the file, checks both checksums, validates the
//! archive (bytecheck), rebuilds the engine, and compares the state hash; a snapshot
//! that fails any of it is skipped for the one before.

use std::sync::Arc;

use bourse_core::ids::Seq;
use bourse_core::state::{ArchivedEngineState, EngineState};
use bourse_core::{Capacity, Engine, StateHash};
use bourse_journal::Storage;
use log::warn;
use rkyv::rancor;
use thiserror::Error;

const MAGIC: &[u8; 8] = b"BOURSES1";
/// Bumped whenever `EngineState`'s rows change: a snapshot of another version is
/// skipped (and recovery falls back to an older one, or to the journal from empty).
const VERSION: u32 = 4;
pub const SNAPSHOT_HEADER_BYTES: usize = 64;

pub fn snapshot_name(seq: Seq) -> String {
    format!("snapshot-{:020}.snap", seq.get())
}

pub fn parse_snapshot_name(name: &str) -> Option<Seq> {
    let digits = name.strip_prefix("snapshot-")?.strip_suffix(".snap")?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok().map(Seq::new)
}

#[derive(Debug, Error)]
pub enum SnapshotError {
    #[error("snapshot I/O error {action} {file}: {source}")]
    Io {
        action: &'static str,
        file: String,
        #[source]
        source: std::io::Error,
    },
    #[error("snapshot {file} is not valid: {reason}")]
    Invalid { file: String, reason: String },
}

fn io_error(action: &'static str, file: String) -> impl FnOnce(std::io::Error) -> SnapshotError {
    move |source| SnapshotError::Io { action, file, source }
}

/// A snapshot's header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SnapshotHeader {
    pub seq: Seq,
    pub state_hash: StateHash,
    pub payload_bytes: u64,
    pub payload_crc: u32,
}

impl SnapshotHeader {
    fn encode(&self) -> [u8; SNAPSHOT_HEADER_BYTES] {
        let mut bytes = [0; SNAPSHOT_HEADER_BYTES];
        bytes[0..8].copy_from_slice(MAGIC);
        bytes[8..12].copy_from_slice(&VERSION.to_le_bytes());
        bytes[16..24].copy_from_slice(&self.seq.get().to_le_bytes());
        bytes[24..40].copy_from_slice(&self.state_hash.0.to_le_bytes());
        bytes[40..48].copy_from_slice(&self.payload_bytes.to_le_bytes());
        bytes[48..52].copy_from_slice(&self.payload_crc.to_le_bytes());
        let crc = crc32c::crc32c(&bytes[16..]);
        bytes[12..16].copy_from_slice(&crc.to_le_bytes());
        bytes
    }

    fn decode(bytes: &[u8]) -> Result<Self, String> {
        let bytes = bytes.get(..SNAPSHOT_HEADER_BYTES).ok_or("shorter than its header")?;
        if &bytes[0..8] != MAGIC {
            return Err("not a Bourse snapshot (bad magic)".into());
        }
        if bytes[8..12] != VERSION.to_le_bytes() {
            return Err("unsupported snapshot format version".into());
        }
        let header_crc = u32::from_le_bytes(bytes[12..16].try_into().expect("4 bytes"));
        if crc32c::crc32c(&bytes[16..]) != header_crc {
            return Err("header checksum mismatch".into());
        }
        Ok(Self {
            seq: Seq::new(u64::from_le_bytes(bytes[16..24].try_into().expect("8 bytes"))),
            state_hash: StateHash(u128::from_le_bytes(bytes[24..40].try_into().expect("16 bytes"))),
            payload_bytes: u64::from_le_bytes(bytes[40..48].try_into().expect("8 bytes")),
            payload_crc: u32::from_le_bytes(bytes[48..52].try_into().expect("4 bytes")),
        })
    }
}

/// What writing a snapshot took.
#[derive(Clone, Debug)]
pub struct Written {
    pub name: String,
    pub header: SnapshotHeader,
    pub bytes: u64,
    pub removed: Vec<String>,
}

/// Serializes `state` (taken at `seq`, with `state_hash`) and writes it durably; keeps
/// the newest `keep` snapshots.
pub fn write_snapshot(
    storage: &Arc<dyn Storage>,
    seq: Seq,
    state_hash: StateHash,
    state: &EngineState,
    keep: usize,
) -> Result<Written, SnapshotError> {
    let name = snapshot_name(seq);
    let payload = rkyv::to_bytes::<rancor::Error>(state)
        .map_err(|error| SnapshotError::Invalid { file: name.clone(), reason: format!("serializing: {error}") })?;
    let header =
        SnapshotHeader { seq, state_hash, payload_bytes: payload.len() as u64, payload_crc: crc32c::crc32c(&payload) };
    let temporary = format!("{name}.tmp");
    let _ = storage.remove(&temporary);
    let total = (SNAPSHOT_HEADER_BYTES + payload.len()) as u64;
    let mut file = storage.create(&temporary, total).map_err(io_error("creating", storage.describe(&temporary)))?;
    file.write(0, &header.encode()).map_err(io_error("writing", storage.describe(&temporary)))?;
    file.write(SNAPSHOT_HEADER_BYTES as u64, &payload).map_err(io_error("writing", storage.describe(&temporary)))?;
    file.sync(0, total).map_err(io_error("syncing", storage.describe(&temporary)))?;
    drop(file);
    storage.rename(&temporary, &name).map_err(io_error("renaming", storage.describe(&temporary)))?;
    storage.sync_dir().map_err(io_error("syncing", storage.describe("")))?;
    let removed = prune(storage, keep)?;
    Ok(Written { name, header, bytes: total, removed })
}

/// Removes all but the newest `keep` snapshots (and stale temporary files).
fn prune(storage: &Arc<dyn Storage>, keep: usize) -> Result<Vec<String>, SnapshotError> {
    let mut removed = Vec::new();
    let names = storage.list().map_err(io_error("listing", storage.describe("")))?;
    let temporary = |name: &&String| name.starts_with("snapshot-") && name.rsplit('.').next() == Some("tmp");
    for name in names.iter().filter(temporary) {
        storage.remove(name).map_err(io_error("removing", storage.describe(name)))?;
        removed.push(name.clone());
    }
    let snapshots = list_snapshots(storage)?;
    for (_, name) in snapshots.iter().rev().skip(keep.max(1)) {
        storage.remove(name).map_err(io_error("removing", storage.describe(name)))?;
        removed.push(name.clone());
    }
    Ok(removed)
}

/// Snapshot files, oldest first.
pub fn list_snapshots(storage: &Arc<dyn Storage>) -> Result<Vec<(Seq, String)>, SnapshotError> {
    let mut snapshots: Vec<(Seq, String)> = storage
        .list()
        .map_err(io_error("listing", storage.describe("")))?
        .into_iter()
        .filter_map(|name| parse_snapshot_name(&name).map(|seq| (seq, name)))
        .collect();
    snapshots.sort();
    Ok(snapshots)
}

/// A snapshot read back and checked.
#[derive(Debug)]
pub struct Loaded {
    pub name: String,
    pub header: SnapshotHeader,
    pub engine: Engine,
}

/// Reads one snapshot with every check; `with` gets the validated archive (zero-copy,
/// straight from the mapping) and builds what the caller wants from it.
pub fn read_snapshot<T>(
    storage: &Arc<dyn Storage>,
    name: &str,
    with: impl FnOnce(&SnapshotHeader, &ArchivedEngineState) -> Result<T, String>,
) -> Result<T, SnapshotError> {
    let invalid = |reason: String| SnapshotError::Invalid { file: storage.describe(name), reason };
    let file = storage.open(name).map_err(io_error("opening", storage.describe(name)))?;
    let bytes = file.bytes();
    let header = SnapshotHeader::decode(bytes).map_err(invalid)?;
    let end = usize::try_from(header.payload_bytes).ok().and_then(|len| SNAPSHOT_HEADER_BYTES.checked_add(len));
    let payload =
        end.and_then(|end| bytes.get(SNAPSHOT_HEADER_BYTES..end)).ok_or_else(|| invalid("payload cut short".into()))?;
    if crc32c::crc32c(payload) != header.payload_crc {
        return Err(invalid("payload checksum mismatch".into()));
    }
    // The archive must be 16-byte aligned: a mapping is (its base is a page, the
    // payload starts at 64); an in-memory file may not be, so copy then.
    let aligned;
    let payload = if payload.as_ptr().align_offset(16) == 0 {
        payload
    } else {
        let mut copy = rkyv::util::AlignedVec::<16>::with_capacity(payload.len());
        copy.extend_from_slice(payload);
        aligned = copy;
        &aligned[..]
    };
    let archived = rkyv::access::<ArchivedEngineState, rancor::Error>(payload)
        .map_err(|error| invalid(format!("archive does not validate: {error}")))?;
    with(&header, archived).map_err(invalid)
}

/// Loads one snapshot into an engine and proves it: the rebuilt engine's state hash
/// must equal the header's.
pub fn load_snapshot(storage: &Arc<dyn Storage>, name: &str, capacity: Capacity) -> Result<Loaded, SnapshotError> {
    let (header, engine) = read_snapshot(storage, name, |header, archived| {
        let state: EngineState = rkyv::deserialize::<EngineState, rancor::Error>(archived)
            .map_err(|error| format!("deserializing: {error}"))?;
        let engine = Engine::from_state(&state, capacity).map_err(|error| error.to_string())?;
        if engine.state_hash() != header.state_hash {
            return Err(format!("state hash {} differs from the recorded {}", engine.state_hash(), header.state_hash));
        }
        Ok((*header, engine))
    })?;
    Ok(Loaded { name: name.to_owned(), header, engine })
}

/// The newest snapshot that passes every check, falling back to older ones (each
/// failure is logged and returned alongside).
pub fn load_newest(
    storage: &Arc<dyn Storage>,
    capacity: Capacity,
) -> Result<(Option<Loaded>, Vec<SnapshotError>), SnapshotError> {
    let mut failures = Vec::new();
    for (_, name) in list_snapshots(storage)?.iter().rev() {
        match load_snapshot(storage, name, capacity) {
            Ok(loaded) => return Ok((Some(loaded), failures)),
            Err(error) => {
                warn!("{error}; falling back to the previous snapshot");
                failures.push(error);
            }
        }
    }
    Ok((None, failures))
}

//! Recovery: the newest valid snapshot, then the journal after it, replayed through
//! the very `Engine::apply` that runs live, and proved: wherever the journal holds a
//! checkpoint (the state hash recorded when a snapshot was taken), the replayed
//! engine's hash must match it.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

use bourse_core::command::SequencedCommand;
use bourse_core::config::Config;
use bourse_core::ids::Seq;
use bourse_core::{Capacity, Engine, StateHash};
use bourse_journal::codec::{Checkpoint, decode_command};
use bourse_journal::record::KIND_CHECKPOINT;
use bourse_journal::{JournalError, OpenReport, Storage, open_and_check, read_range};
use thiserror::Error;

use crate::snapshot::{SnapshotError, load_newest};

/// How many commands ahead of `apply` replay prefetches (see `Engine::prefetch`).
const REPLAY_PREFETCH: usize = 8;

/// The two halves of a data directory.
#[derive(Clone)]
pub struct DataStores {
    pub journal: Arc<dyn Storage>,
    pub snapshots: Arc<dyn Storage>,
}

impl std::fmt::Debug for DataStores {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DataStores").field("journal", &self.journal.describe("")).finish_non_exhaustive()
    }
}

#[derive(Debug, Error)]
pub enum RecoveryError {
    #[error(transparent)]
    Journal(#[from] JournalError),
    #[error(transparent)]
    Snapshot(#[from] SnapshotError),
    #[error("the journal starts at sequence {journal_first} but the newest valid snapshot is at {}: commands {} ..= {} are missing", snapshot.map_or(0, Seq::get), snapshot.map_or(1, |seq| seq.get() + 1), journal_first - 1)]
    Gap { snapshot: Option<Seq>, journal_first: u64 },
    #[error("the newest valid snapshot is at sequence {} but the journal ends at {}: the journal lost commands the snapshot holds (a power cut before the journal was synced?); refusing to start — move journal/ aside to start a fresh journal from the snapshot", snapshot.get(), journal_last.get())]
    SnapshotAhead { snapshot: Seq, journal_last: Seq },
    #[error("replay diverged: after sequence {} the state hash is {actual}, but the checkpoint recorded {expected}", applied.get())]
    Diverged { applied: Seq, expected: StateHash, actual: StateHash },
}

/// What recovery did.
#[derive(Debug)]
pub struct Recovered {
    pub engine: Engine,
    /// The snapshot it started from: its file name and sequence number.
    pub snapshot: Option<(String, Seq)>,
    /// Snapshots skipped because they failed a check (newest first).
    pub snapshot_failures: Vec<SnapshotError>,
    pub journal: OpenReport,
    /// Commands replayed after the snapshot.
    pub replayed: u64,
    /// Checkpoints whose state hash the replay matched.
    pub checkpoints_verified: u64,
}

/// Recovers the engine from `stores`. With `repair`, a torn journal tail is cut off;
/// without, the files are only read. `progress` is told of each replayed sequence.
pub fn recover(
    stores: &DataStores,
    config: &Config,
    capacity: Capacity,
    repair: bool,
    mut progress: impl FnMut(Seq),
) -> Result<Recovered, RecoveryError> {
    let journal = open_and_check(&stores.journal, repair)?;
    let (loaded, snapshot_failures) = load_newest(&stores.snapshots, capacity)?;
    // `load_newest` proved the engine's hash equals the header's: compare the header's.
    let (mut engine, snapshot, snapshot_hash) = match loaded {
        Some(loaded) => (loaded.engine, Some((loaded.name, loaded.header.seq)), Some(loaded.header.state_hash)),
        None => (Engine::with_capacity(config, capacity), None, None),
    };
    let start = snapshot.as_ref().map_or(Seq::new(1), |(_, seq)| Seq::new(seq.get() + 1));
    if let Some(first) = journal.first_seq()
        && first > start
        && journal.records > 0
    {
        return Err(RecoveryError::Gap {
            snapshot: snapshot.as_ref().map(|(_, seq)| *seq),
            journal_first: first.get(),
        });
    }
    if let (Some((_, snapshot_seq)), Some(journal_last)) = (&snapshot, journal.last_seq)
        && *snapshot_seq > journal_last
    {
        return Err(RecoveryError::SnapshotAhead { snapshot: *snapshot_seq, journal_last });
    }
    // Up to the last valid record: a read-only recovery leaves a torn tail in place.
    let Some(last) = journal.last_seq.filter(|&last| last >= start) else {
        return Ok(Recovered { engine, snapshot, snapshot_failures, journal, replayed: 0, checkpoints_verified: 0 });
    };
    let last = Some(last);
    let checkpoints = checkpoints_from(&stores.journal, Seq::new(start.get() - 1), last)?;
    let mut replayed = 0;
    let mut checkpoints_verified = 0;
    // The snapshot itself, against the checkpoint journaled when it was taken.
    if let (Some(expected), Some(actual)) = (checkpoints.get(&Seq::new(start.get() - 1)), snapshot_hash) {
        if actual != *expected {
            return Err(RecoveryError::Diverged { applied: Seq::new(start.get() - 1), expected: *expected, actual });
        }
        checkpoints_verified += 1;
    }
    let mut events = Vec::with_capacity(64);
    // Commands wait in a short queue before they are applied, so that the memory each
    // will touch is prefetched while the ones before it run (as in the runtime).
    let mut pending: VecDeque<SequencedCommand> = VecDeque::with_capacity(REPLAY_PREFETCH + 1);
    let mut apply_next = |engine: &mut Engine, pending: &mut VecDeque<SequencedCommand>| {
        let Some(command) = pending.pop_front() else { return Ok(()) };
        events.clear();
        engine.apply(&command, &mut events);
        replayed += 1;
        progress(command.seq);
        if let Some(expected) = checkpoints.get(&command.seq) {
            let actual = engine.state_hash();
            if actual != *expected {
                return Err(RecoveryError::Diverged { applied: command.seq, expected: *expected, actual });
            }
            checkpoints_verified += 1;
        }
        Ok(())
    };
    read_range::<RecoveryError>(&stores.journal, start, last, |record| {
        if record.kind == KIND_CHECKPOINT {
            return Ok(());
        }
        let command = decode_command(record.seq, record.kind, record.payload)?;
        let command = SequencedCommand { seq: record.seq, timestamp: record.timestamp, command };
        engine.prefetch(&command);
        pending.push_back(command);
        if pending.len() > REPLAY_PREFETCH { apply_next(&mut engine, &mut pending) } else { Ok(()) }
    })?;
    while !pending.is_empty() {
        apply_next(&mut engine, &mut pending)?;
    }
    Ok(Recovered { engine, snapshot, snapshot_failures, journal, replayed, checkpoints_verified })
}

/// Every checkpoint in the journal from `start` on: the state hash after each
/// `applied` sequence number.
pub fn checkpoints_from(
    journal: &Arc<dyn Storage>,
    start: Seq,
    last: Option<Seq>,
) -> Result<BTreeMap<Seq, StateHash>, RecoveryError> {
    let mut checkpoints = BTreeMap::new();
    read_range::<RecoveryError>(journal, start, last, |record| {
        if record.kind == KIND_CHECKPOINT {
            let checkpoint = Checkpoint::decode(record.seq, record.kind, record.payload)?;
            if checkpoint.applied >= start {
                checkpoints.insert(checkpoint.applied, StateHash(checkpoint.state_hash));
            }
        }
        Ok(())
    })?;
    Ok(checkpoints)
}

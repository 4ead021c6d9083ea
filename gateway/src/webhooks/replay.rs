//! Deriving notifications again from the journal: after a restart (the commands the
//! engine applied before the crash but whose notifications the outbox did not yet
//! hold) and whenever the publisher dropped batches because the webhook thread was
//! behind.
//!
//! A private engine starts from the newest valid snapshot at or before the last
//! command already derived (or from empty, when the journal still begins at sequence
//! 1), and replays the journal through `Engine::apply`, handing out the events of the
//! commands not yet derived. It reads only records the runtime has already applied
//! (the range is bounded by what the publisher has seen), never the tail being
//! written. The engine is kept for the next gap while it is recent, so a second gap
//! only replays what lies between the two.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use bourse_core::command::SequencedCommand;
use bourse_core::config::Config as EngineConfig;
use bourse_core::event::Event;
use bourse_core::ids::{Seq, Timestamp};
use bourse_core::{Capacity, Engine};
use bourse_journal::codec::decode_command;
use bourse_journal::record::KIND_CHECKPOINT;
use bourse_journal::{JournalError, read_range};
use bourse_snapshots::recovery::DataStores;
use bourse_snapshots::snapshot::{list_snapshots, load_snapshot};

/// Why a range could not be replayed.
#[derive(Debug, thiserror::Error)]
pub(super) enum ReplayError {
    #[error("stopping")]
    Stopped,
    #[error(transparent)]
    Journal(#[from] JournalError),
    #[error("listing snapshots: {0}")]
    Snapshots(String),
    #[error(
        "no valid snapshot at or before sequence {after} and the journal does not begin at sequence {expected} (it begins at {found})"
    )]
    NoStart { after: u64, expected: u64, found: u64 },
    #[error("the journal ends at sequence {last} before {through}")]
    ShortJournal { last: u64, through: u64 },
}

/// A private engine replaying the journal.
pub(super) struct Replayer {
    stores: DataStores,
    config: EngineConfig,
    /// The engine and the last journal record it has consumed (commands and
    /// checkpoints alike).
    engine: Option<(Engine, u64)>,
    used_at: Instant,
}

impl std::fmt::Debug for Replayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Replayer").field("at", &self.engine.as_ref().map(|(_, at)| *at)).finish_non_exhaustive()
    }
}

impl Replayer {
    pub(super) fn new(stores: DataStores, config: EngineConfig) -> Self {
        Self { stores, config, engine: None, used_at: Instant::now() }
    }

    /// Replays the journal up to `through`, handing `on_command` the sequence number,
    /// time and events of every command after `after`; it returns `false` to stop
    /// (`Err(Stopped)`), as does `stop`.
    pub(super) fn replay(
        &mut self,
        after: u64,
        through: u64,
        stop: &AtomicBool,
        mut on_command: impl FnMut(Seq, Timestamp, &[Event]) -> bool,
    ) -> Result<(), ReplayError> {
        self.used_at = Instant::now();
        if self.engine.as_ref().is_none_or(|(_, at)| *at > after) {
            self.engine = None;
            self.engine = Some(self.start(after)?);
        }
        let (engine, at) = self.engine.as_mut().expect("just set");
        if *at >= through {
            return Ok(());
        }
        let first = *at + 1;
        let mut events = Vec::with_capacity(64);
        let last =
            read_range::<ReplayError>(&self.stores.journal, Seq::new(first), Some(Seq::new(through)), |record| {
                if stop.load(Ordering::Relaxed) {
                    return Err(ReplayError::Stopped);
                }
                if *at == first - 1 && record.seq.get() != first {
                    return Err(ReplayError::NoStart { after, expected: first, found: record.seq.get() });
                }
                *at = record.seq.get();
                if record.kind == KIND_CHECKPOINT {
                    return Ok(());
                }
                let command = decode_command(record.seq, record.kind, record.payload)?;
                events.clear();
                engine.apply(&SequencedCommand { seq: record.seq, timestamp: record.timestamp, command }, &mut events);
                if record.seq.get() > after && !on_command(record.seq, record.timestamp, &events) {
                    return Err(ReplayError::Stopped);
                }
                Ok(())
            });
        let last = match last {
            Ok(last) => last.map_or(0, Seq::get),
            Err(error) => {
                // An engine stopped part-way is still consistent up to `at`; a failed
                // one is rebuilt next time.
                if !matches!(error, ReplayError::Stopped) {
                    self.engine = None;
                }
                return Err(error);
            }
        };
        if last < through {
            self.engine = None;
            return Err(ReplayError::ShortJournal { last, through });
        }
        Ok(())
    }

    /// The newest valid snapshot at or before `after`, else an empty engine.
    fn start(&self, after: u64) -> Result<(Engine, u64), ReplayError> {
        let snapshots =
            list_snapshots(&self.stores.snapshots).map_err(|error| ReplayError::Snapshots(error.to_string()))?;
        for (seq, name) in snapshots.iter().rev().filter(|(seq, _)| seq.get() <= after) {
            match load_snapshot(&self.stores.snapshots, name, Capacity::default()) {
                Ok(loaded) => return Ok((loaded.engine, seq.get())),
                Err(error) => log::warn!("webhooks: {error}; trying an older snapshot"),
            }
        }
        Ok((Engine::new(&self.config), 0))
    }

    /// Drops the private engine when it was last used more than `idle` ago.
    pub(super) fn release_if_idle(&mut self, idle: Duration) {
        if self.engine.is_some() && self.used_at.elapsed() > idle {
            self.engine = None;
        }
    }
}

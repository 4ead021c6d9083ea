//! The idempotency table: what each keyed command came to, per (account, key), so a
//! retry gets the original outcome and a reused key with other content is refused.
//!
//! Bound and retention (`limits`): an entry lives `IDEMPOTENCY_RETENTION` of command
//! time, then is forgotten; at most `IDEMPOTENCY_ENTRIES_MAX` live at once, and when
//! the table is full of younger entries, new keyed commands are refused rather than
//! forgetting a key early.

use std::collections::VecDeque;

use rustc_hash::FxHashMap;

use crate::event::Outcome;
use crate::ids::{AccountId, IdempotencyKey, Timestamp};
use crate::limits::{IDEMPOTENCY_ENTRIES_MAX, IDEMPOTENCY_RETENTION};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Entry {
    pub(crate) fingerprint: u64,
    pub(crate) outcome: Outcome,
}

/// What the table says of a keyed command about to run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Lookup {
    /// Never seen: run it.
    New,
    /// Seen with the same content: return this.
    Replay(Outcome),
    /// Seen with different content.
    Conflict,
}

pub(crate) type Scope = (AccountId, IdempotencyKey);

#[derive(Clone, Debug, Default)]
pub(crate) struct IdempotencyTable {
    entries: FxHashMap<Scope, Entry>,
    /// Entries in the order they were made (so by time), for retention.
    order: VecDeque<(Timestamp, Scope)>,
}

impl IdempotencyTable {
    pub(crate) fn with_capacity(capacity: usize) -> Self {
        let capacity = capacity.min(IDEMPOTENCY_ENTRIES_MAX);
        Self {
            entries: FxHashMap::with_capacity_and_hasher(capacity, rustc_hash::FxBuildHasher),
            order: VecDeque::with_capacity(capacity),
        }
    }

    /// Entries in the order they were recorded.
    pub(crate) fn restore(entries: impl Iterator<Item = (Timestamp, Scope, Entry)>) -> Self {
        let mut table = Self::default();
        for (at, scope, entry) in entries {
            table.entries.insert(scope, entry);
            table.order.push_back((at, scope));
        }
        table
    }

    pub(crate) fn lookup(&self, scope: Scope, fingerprint: u64) -> Lookup {
        match self.entries.get(&scope) {
            None => Lookup::New,
            Some(entry) if entry.fingerprint == fingerprint => Lookup::Replay(entry.outcome),
            Some(_) => Lookup::Conflict,
        }
    }

    pub(crate) fn has_room(&self) -> bool {
        self.entries.len() < IDEMPOTENCY_ENTRIES_MAX
    }

    pub(crate) fn record(&mut self, now: Timestamp, scope: Scope, entry: Entry) {
        let previous = self.entries.insert(scope, entry);
        assert!(previous.is_none(), "an idempotency key is recorded once");
        self.order.push_back((now, scope));
    }

    /// Forgets every entry older than the retention window at `now`.
    pub(crate) fn expire(&mut self, now: Timestamp) {
        while let Some(&(recorded_at, scope)) = self.order.front() {
            if recorded_at.saturating_add(IDEMPOTENCY_RETENTION) > now {
                break;
            }
            self.order.pop_front();
            let removed = self.entries.remove(&scope);
            assert!(removed.is_some(), "retention order and table agree");
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    /// Entries oldest first, with the time each was recorded.
    pub(crate) fn iter_in_order(&self) -> impl Iterator<Item = (Timestamp, Scope, &Entry)> {
        self.order.iter().map(|&(at, scope)| (at, scope, &self.entries[&scope]))
    }

    pub(crate) fn check_invariants(&self) {
        assert_eq!(self.entries.len(), self.order.len(), "one retention slot per entry");
        assert!(self.entries.len() <= IDEMPOTENCY_ENTRIES_MAX);
        let mut previous = Timestamp::default();
        for &(at, scope) in &self.order {
            assert!(at >= previous, "retention order is by time");
            assert!(self.entries.contains_key(&scope));
            previous = at;
        }
    }
}

//! The idempotency table: what each keyed command came to, per (account, key), so a
//! retry gets the original outcome and a reused key with other content is refused.
//!
//! Bound and retention (`limits`): an entry lives `IDEMPOTENCY_RETENTION` of command
//! time, then is forgotten; at most `IDEMPOTENCY_ENTRIES_MAX` live at once, and when
//! the table is full of younger entries, new keyed commands are refused rather than
//! forgetting a key early.

use std::collections::VecDeque;

use super::keytable::{Key, KeyTable, Value};
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

/// `Scope` as stored in the key table.
type Packed = Key;

fn pack((account, key): Scope) -> Packed {
    let key = key.get();
    Key { key: [(key >> 64) as u64, key as u64], account: account.get() }
}

fn unpack(packed: Packed) -> Scope {
    let key = (u128::from(packed.key[0]) << 64) | u128::from(packed.key[1]);
    (AccountId::new(packed.account), IdempotencyKey::new(key))
}

/// `Entry` as stored: the outcome in one word (two bits of kind, the rest its value).
type Stored = Value;

const OUTCOME_SHIFT: u32 = 62;

trait StoredEntry {
    fn new(entry: Entry) -> Self;
    fn entry(self) -> Entry;
}

impl StoredEntry for Stored {
    fn new(entry: Entry) -> Self {
        let (kind, value) = entry.outcome.code();
        assert!(value < 1 << OUTCOME_SHIFT, "payment ids stay below 2^62");
        Self { fingerprint: entry.fingerprint, outcome: (u64::from(kind) << OUTCOME_SHIFT) | value }
    }
    fn entry(self) -> Entry {
        let value = self.outcome & ((1 << OUTCOME_SHIFT) - 1);
        let kind = (self.outcome >> OUTCOME_SHIFT) as u8;
        let outcome = Outcome::from_code(kind, value).expect("stored from an outcome");
        Entry { fingerprint: self.fingerprint, outcome }
    }
}

#[derive(Clone, Debug, Default)]
pub(crate) struct IdempotencyTable {
    entries: KeyTable,
    /// Entries in the order they were made (so by time), for retention.
    order: VecDeque<(Timestamp, Packed)>,
}

impl IdempotencyTable {
    pub(crate) fn with_capacity(capacity: usize) -> Self {
        let capacity = capacity.min(IDEMPOTENCY_ENTRIES_MAX);
        Self { entries: KeyTable::with_capacity(capacity), order: VecDeque::with_capacity(capacity) }
    }

    /// Entries in the order they were recorded.
    pub(crate) fn restore(entries: impl ExactSizeIterator<Item = (Timestamp, Scope, Entry)>) -> Self {
        let mut table = Self::with_capacity(entries.len());
        for (at, scope, entry) in entries {
            // A repeated key is not inserted twice; the caller sees the count differ.
            if !table.entries.contains(&pack(scope)) {
                table.entries.insert(pack(scope), Stored::new(entry));
            }
            table.order.push_back((at, pack(scope)));
        }
        table
    }

    pub(crate) fn lookup(&self, scope: Scope, fingerprint: u64) -> Lookup {
        match self.entries.get(&pack(scope)).as_ref() {
            None => Lookup::New,
            Some(stored) if stored.fingerprint == fingerprint => Lookup::Replay(stored.entry().outcome),
            Some(_) => Lookup::Conflict,
        }
    }

    /// Starts loading where `scope` is or would be.
    pub(crate) fn prefetch(&self, scope: Scope) {
        self.entries.prefetch(&pack(scope));
    }

    pub(crate) fn has_room(&self) -> bool {
        self.entries.len() < IDEMPOTENCY_ENTRIES_MAX
    }

    pub(crate) fn record(&mut self, now: Timestamp, scope: Scope, entry: Entry) {
        let packed = pack(scope);
        self.entries.insert(packed, Stored::new(entry));
        self.order.push_back((now, packed));
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
    pub(crate) fn iter_in_order(&self) -> impl Iterator<Item = (Timestamp, Scope, Entry)> + '_ {
        self.order.iter().map(|&(at, packed)| {
            (at, unpack(packed), self.entries.get(&packed).expect("retention order and table agree").entry())
        })
    }

    pub(crate) fn check_invariants(&self) {
        assert_eq!(self.entries.len(), self.order.len(), "one retention slot per entry");
        assert!(self.entries.len() <= IDEMPOTENCY_ENTRIES_MAX);
        let mut previous = Timestamp::default();
        for &(at, scope) in &self.order {
            assert!(at >= previous, "retention order is by time");
            assert!(self.entries.contains(&scope));
            previous = at;
        }
    }
}

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

/// `Scope` as stored: 24 bytes at 8-byte alignment rather than 32 at 16, because the
/// table is the engine's largest and most randomly accessed structure.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct Packed {
    key: [u64; 2],
    account: u32,
}

impl Packed {
    fn new((account, key): Scope) -> Self {
        let key = key.get();
        Self { key: [(key >> 64) as u64, key as u64], account: account.get() }
    }
    fn scope(self) -> Scope {
        let key = (u128::from(self.key[0]) << 64) | u128::from(self.key[1]);
        (AccountId::new(self.account), IdempotencyKey::new(key))
    }
}

/// `Entry` as stored: the outcome in one word (two bits of kind, the rest its value).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Stored {
    fingerprint: u64,
    outcome: u64,
}

const OUTCOME_SHIFT: u32 = 62;

impl Stored {
    fn new(entry: Entry) -> Self {
        let (kind, value) = match entry.outcome {
            Outcome::Accepted { payment: None } => (0, 0),
            Outcome::Accepted { payment: Some(payment) } => (1, payment.get()),
            Outcome::Rejected(reason) => (2, reason as u64),
        };
        assert!(value < 1 << OUTCOME_SHIFT, "payment ids stay below 2^62");
        Self { fingerprint: entry.fingerprint, outcome: (kind << OUTCOME_SHIFT) | value }
    }
    fn entry(self) -> Entry {
        let value = self.outcome & ((1 << OUTCOME_SHIFT) - 1);
        let outcome = match self.outcome >> OUTCOME_SHIFT {
            0 => Outcome::Accepted { payment: None },
            1 => Outcome::Accepted { payment: Some(crate::ids::PaymentId::new(value)) },
            _ => Outcome::Rejected(crate::event::RejectReason::from_code(value).expect("stored from a reason")),
        };
        Entry { fingerprint: self.fingerprint, outcome }
    }
}

#[derive(Clone, Debug, Default)]
pub(crate) struct IdempotencyTable {
    entries: FxHashMap<Packed, Stored>,
    /// Entries in the order they were made (so by time), for retention.
    order: VecDeque<(Timestamp, Packed)>,
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
            table.entries.insert(Packed::new(scope), Stored::new(entry));
            table.order.push_back((at, Packed::new(scope)));
        }
        table
    }

    pub(crate) fn lookup(&self, scope: Scope, fingerprint: u64) -> Lookup {
        match self.entries.get(&Packed::new(scope)) {
            None => Lookup::New,
            Some(stored) if stored.fingerprint == fingerprint => Lookup::Replay(stored.entry().outcome),
            Some(_) => Lookup::Conflict,
        }
    }

    pub(crate) fn has_room(&self) -> bool {
        self.entries.len() < IDEMPOTENCY_ENTRIES_MAX
    }

    pub(crate) fn record(&mut self, now: Timestamp, scope: Scope, entry: Entry) {
        let packed = Packed::new(scope);
        let previous = self.entries.insert(packed, Stored::new(entry));
        assert!(previous.is_none(), "an idempotency key is recorded once");
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
        self.order.iter().map(|&(at, packed)| (at, packed.scope(), self.entries[&packed].entry()))
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

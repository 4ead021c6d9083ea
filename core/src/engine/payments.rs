//! Payment records: every transfer, split leg and authorization, by `PaymentId`, kept
//! for refunds for `limits::PAYMENT_RETENTION` of command time; and the expiry index of
//! open authorizations.
//!
//! Ids are assigned in order, so records live in a ring indexed by `id - first_id`:
//! O(1) lookup, O(1) amortized append and eviction, no per-record allocation.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};

use crate::ids::{AccountId, AssetId, PaymentId, Timestamp};
use crate::limits::{AUTHORIZATIONS_OPEN_MAX, PAYMENT_RETENTION, PAYMENTS_MAX};
use crate::money::Amount;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum PaymentKind {
    Transfer,
    SplitLeg,
    Authorization,
    /// A cross-border payment: `asset` and `amount` are what the payee received, so a
    /// refund goes back in that currency (it is not converted back).
    CrossBorder,
}

/// Where an authorization stands. Transfers, split legs and cross-border payments are
/// always `Settled`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum PaymentState {
    Settled,
    Open,
    Captured,
    Voided,
    Expired,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct PaymentRecord {
    pub(crate) payer: AccountId,
    pub(crate) payee: AccountId,
    pub(crate) asset: AssetId,
    pub(crate) kind: PaymentKind,
    pub(crate) state: PaymentState,
    /// Authorized amount; for transfers and legs, the amount paid.
    pub(crate) amount: Amount,
    /// What reached the payee: captured so far, or the whole amount of a transfer.
    pub(crate) paid: Amount,
    pub(crate) refunded: Amount,
    pub(crate) created_at: Timestamp,
    /// For authorizations only.
    pub(crate) expires_at: Timestamp,
}

impl PaymentRecord {
    /// What an open authorization still holds in the payer's account.
    pub(crate) fn held(&self) -> Amount {
        if self.state == PaymentState::Open {
            self.amount.checked_sub(self.paid).expect("paid never exceeds authorized")
        } else {
            Amount::ZERO
        }
    }
}

#[derive(Clone, Debug)]
pub(crate) struct PaymentBook {
    first_id: u64,
    records: VecDeque<PaymentRecord>,
    /// Open authorizations by expiry; entries of authorizations closed early stay
    /// until their time comes and are skipped then.
    expiries: BinaryHeap<Reverse<(Timestamp, PaymentId)>>,
    open_authorizations: usize,
}

impl PaymentBook {
    pub(crate) fn with_capacity(capacity: usize) -> Self {
        Self {
            first_id: 1,
            records: VecDeque::with_capacity(capacity.min(PAYMENTS_MAX)),
            expiries: BinaryHeap::new(),
            open_authorizations: 0,
        }
    }

    /// Records as a snapshot kept them, from `first_id` on; the expiry index is rebuilt.
    pub(crate) fn restore(first_id: u64, records: Vec<PaymentRecord>) -> Self {
        // Room to grow, so the first payment after a restore does not copy the ring.
        let mut ring = VecDeque::with_capacity((records.len() * 2).clamp(1024, PAYMENTS_MAX));
        ring.extend(records);
        let mut book = Self { first_id, records: ring, expiries: BinaryHeap::new(), open_authorizations: 0 };
        for (index, record) in book.records.iter().enumerate() {
            if record.state == PaymentState::Open {
                book.open_authorizations += 1;
                book.expiries.push(Reverse((record.expires_at, PaymentId::new(first_id + index as u64))));
            }
        }
        book
    }

    pub(crate) fn has_room(&self, count: usize) -> bool {
        self.records.len() + count <= PAYMENTS_MAX
    }

    pub(crate) fn has_room_for_authorization(&self) -> bool {
        self.has_room(1) && self.open_authorizations < AUTHORIZATIONS_OPEN_MAX
    }

    pub(crate) fn next_id(&self) -> PaymentId {
        PaymentId::new(self.first_id + self.records.len() as u64)
    }

    pub(crate) fn push(&mut self, record: PaymentRecord) -> PaymentId {
        assert!(self.has_room(1), "room checked before committing");
        let id = self.next_id();
        if record.kind == PaymentKind::Authorization {
            assert_eq!(record.state, PaymentState::Open);
            self.open_authorizations += 1;
            self.expiries.push(Reverse((record.expires_at, id)));
        }
        self.records.push_back(record);
        id
    }

    pub(crate) fn get(&self, id: PaymentId) -> Option<&PaymentRecord> {
        let index = id.get().checked_sub(self.first_id)?;
        self.records.get(usize::try_from(index).ok()?)
    }

    pub(crate) fn get_mut(&mut self, id: PaymentId) -> Option<&mut PaymentRecord> {
        let index = id.get().checked_sub(self.first_id)?;
        self.records.get_mut(usize::try_from(index).ok()?)
    }

    /// Marks an open authorization closed (captured, voided or expired).
    pub(crate) fn close(&mut self, id: PaymentId, state: PaymentState) {
        assert_ne!(state, PaymentState::Open);
        let record = self.get_mut(id).expect("closing a known payment");
        assert_eq!(record.state, PaymentState::Open, "only an open authorization closes");
        record.state = state;
        self.open_authorizations -= 1;
    }

    /// The next open authorization whose expiry is at or before `now`, if any.
    pub(crate) fn pop_expired(&mut self, now: Timestamp) -> Option<PaymentId> {
        while let Some(&Reverse((expires_at, id))) = self.expiries.peek() {
            if expires_at > now {
                return None;
            }
            self.expiries.pop();
            if self.get(id).is_some_and(|record| record.state == PaymentState::Open) {
                return Some(id);
            }
        }
        None
    }

    /// Forgets records older than the retention window at `now`.
    pub(crate) fn evict(&mut self, now: Timestamp) {
        while let Some(front) = self.records.front() {
            if front.created_at.saturating_add(PAYMENT_RETENTION) > now {
                break;
            }
            assert_ne!(front.state, PaymentState::Open, "retention outlives every authorization");
            self.records.pop_front();
            self.first_id += 1;
        }
    }

    pub(crate) fn first_id(&self) -> u64 {
        self.first_id
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = (PaymentId, &PaymentRecord)> {
        self.records.iter().enumerate().map(|(index, record)| (PaymentId::new(self.first_id + index as u64), record))
    }

    pub(crate) fn len(&self) -> usize {
        self.records.len()
    }

    pub(crate) fn check_invariants(&self) {
        let open = self.records.iter().filter(|record| record.state == PaymentState::Open).count();
        assert_eq!(open, self.open_authorizations, "open authorization count");
        let indexed: rustc_hash::FxHashSet<(Timestamp, PaymentId)> =
            self.expiries.iter().map(|&Reverse(entry)| entry).collect();
        for (id, record) in self.iter() {
            assert!(record.paid <= record.amount, "payment {id} paid more than its amount");
            assert!(record.refunded <= record.paid, "payment {id} refunded more than paid");
            assert_ne!(record.payer, record.payee, "payment {id} pays itself");
            if record.state == PaymentState::Open {
                assert!(indexed.contains(&(record.expires_at, id)), "open authorization {id} is in the expiry index");
            }
        }
    }
}

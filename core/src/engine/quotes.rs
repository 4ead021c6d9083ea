//! The quote table: every quote issued and not yet expired, executed or not, by
//! `QuoteId`, with an expiry index driven by command time.
//!
//! Bound (`limits::QUOTES_MAX`): a quote stays until its expiry even once executed, so
//! that a second execution is told `QuoteUsed` rather than `UnknownQuote`; a quote
//! past its expiry is forgotten at the start of the next command, and an id below
//! `next_id` that is not here is `QuoteExpired`. Ids are assigned in command order,
//! so they are the same in a replay and after a snapshot.
//!
//! A hash map (no iteration order reaches an output: exports and the state hash sort by
//! id) and a min-heap of (expiry, id): one entry per quote, removed only at expiry,
//! so each quote costs one insert and one pop, and nothing allocates once the tables
//! have grown to their working size.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use rustc_hash::FxHashMap;

use crate::ids::{AccountId, AssetId, QuoteId, Timestamp};
use crate::limits::QUOTES_MAX;
use crate::money::Amount;
use crate::route::Route;

/// What the engine remembers of a quote: enough to execute it (the route and the two
/// amounts) and to say who may.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Quote {
    pub(crate) payer: AccountId,
    pub(crate) payee: AccountId,
    pub(crate) from: AssetId,
    pub(crate) to: AssetId,
    pub(crate) route: Route,
    pub(crate) send: Amount,
    pub(crate) receive: Amount,
    pub(crate) expires_at: Timestamp,
    pub(crate) used: bool,
}

/// Where a quote id stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Lookup {
    Live(Quote),
    /// Issued, and forgotten at its expiry.
    Expired,
    /// Never issued.
    Unknown,
}

/// Quotes kept at first, so that the first few thousand never grow the tables.
const INITIAL_CAPACITY: usize = 4096;

#[derive(Clone, Debug)]
pub(crate) struct QuoteBook {
    quotes: FxHashMap<QuoteId, Quote>,
    expiries: BinaryHeap<Reverse<(Timestamp, QuoteId)>>,
    next_id: u64,
}

impl QuoteBook {
    pub(crate) fn new() -> Self {
        Self {
            quotes: FxHashMap::with_capacity_and_hasher(INITIAL_CAPACITY, rustc_hash::FxBuildHasher),
            expiries: BinaryHeap::with_capacity(INITIAL_CAPACITY),
            next_id: 1,
        }
    }

    /// Quotes as a snapshot kept them; `None` if an id repeats or is not below `next_id`.
    pub(crate) fn restore(next_id: u64, quotes: impl ExactSizeIterator<Item = (QuoteId, Quote)>) -> Option<Self> {
        let mut book = Self::new();
        book.quotes.reserve(quotes.len());
        book.next_id = next_id;
        for (id, quote) in quotes {
            if id.get() == 0 || id.get() >= next_id || book.quotes.insert(id, quote).is_some() {
                return None;
            }
            book.expiries.push(Reverse((quote.expires_at, id)));
        }
        Some(book)
    }

    pub(crate) fn has_room(&self) -> bool {
        self.quotes.len() < QUOTES_MAX
    }

    /// Stores a new quote under the next id.
    pub(crate) fn insert(&mut self, quote: Quote) -> QuoteId {
        assert!(self.has_room(), "room checked before committing");
        let id = QuoteId::new(self.next_id);
        self.next_id += 1;
        self.quotes.insert(id, quote);
        self.expiries.push(Reverse((quote.expires_at, id)));
        id
    }

    pub(crate) fn lookup(&self, id: QuoteId) -> Lookup {
        match self.quotes.get(&id) {
            Some(quote) => Lookup::Live(*quote),
            None if id.get() != 0 && id.get() < self.next_id => Lookup::Expired,
            None => Lookup::Unknown,
        }
    }

    pub(crate) fn mark_used(&mut self, id: QuoteId) {
        let quote = self.quotes.get_mut(&id).expect("marking a live quote");
        assert!(!quote.used, "a quote is executed once");
        quote.used = true;
    }

    /// Forgets every quote whose expiry is at or before `now`.
    pub(crate) fn expire(&mut self, now: Timestamp) {
        while let Some(&Reverse((expires_at, id))) = self.expiries.peek() {
            if expires_at > now {
                break;
            }
            self.expiries.pop();
            let removed = self.quotes.remove(&id);
            assert!(removed.is_some(), "expiry index and table agree");
        }
    }

    pub(crate) fn next_id(&self) -> u64 {
        self.next_id
    }

    pub(crate) fn len(&self) -> usize {
        self.quotes.len()
    }

    /// Every quote, by id (allocates: for snapshots and the state hash only).
    pub(crate) fn sorted(&self) -> Vec<(QuoteId, Quote)> {
        let mut quotes: Vec<(QuoteId, Quote)> = self.quotes.iter().map(|(&id, &quote)| (id, quote)).collect();
        quotes.sort_unstable_by_key(|&(id, _)| id);
        quotes
    }

    pub(crate) fn check_invariants(&self, now: Timestamp) {
        assert_eq!(self.quotes.len(), self.expiries.len(), "one expiry entry per quote");
        assert!(self.quotes.len() <= QUOTES_MAX);
        for Reverse((expires_at, id)) in &self.expiries {
            let quote = self.quotes.get(id).expect("every expiry entry names a quote");
            assert_eq!(quote.expires_at, *expires_at, "quote {id}: expiry index");
            assert!(quote.expires_at > now, "quote {id}: a kept quote has not expired");
            assert!(id.get() < self.next_id, "quote {id}: ids are assigned in order");
            assert_ne!(quote.payer, quote.payee, "quote {id}: pays itself");
            assert_ne!(quote.from, quote.to, "quote {id}: converts nothing");
        }
    }
}

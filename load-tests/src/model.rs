//! The reconciliation model and the verification record: what the load's own
//! clients did to balances (deposits are the baseline; transfers, captures and fills
//! with their fees come from the replies' events), the failures found while checking
//! every reply, and the matching of makers' execution reports to the taker's send.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::time::Instant;

use crate::catalog::Market;
use crate::limits::{EXEC_TAKERS_MAX, FAILURE_SAMPLES_MAX};
use crate::stats::Latency;

/// Changes to balances (`available + held`) in minor units, per (account, asset index).
#[derive(Clone, Debug, Default)]
pub(crate) struct Ledger {
    pub(crate) deltas: HashMap<(u64, usize), i128>,
}

impl Ledger {
    pub(crate) fn add(&mut self, account: u64, asset: usize, delta: i128) {
        *self.deltas.entry((account, asset)).or_default() += delta;
    }

    /// One fill of `account`'s order: base one way, quote (notional and fee) the other.
    pub(crate) fn fill(&mut self, account: u64, market: &Market, buy: bool, lots: i64, notional: i128, fee: i128) {
        let base = i128::from(lots) * market.lot_minor;
        if buy {
            self.add(account, market.base, base);
            self.add(account, market.quote, -(notional + fee));
        } else {
            self.add(account, market.base, -base);
            self.add(account, market.quote, notional - fee);
        }
    }

    /// A payment from `from` to `to`.
    pub(crate) fn pay(&mut self, from: u64, to: u64, asset: usize, amount: i128) {
        self.add(from, asset, -amount);
        self.add(to, asset, amount);
    }

    pub(crate) fn merge(&mut self, other: &Ledger) {
        for (key, delta) in &other.deltas {
            *self.deltas.entry(*key).or_default() += delta;
        }
    }
}

/// Verification failures by kind, with a few examples of each.
#[derive(Clone, Debug, Default)]
pub(crate) struct Failures {
    pub(crate) counts: BTreeMap<&'static str, u64>,
    pub(crate) samples: BTreeMap<&'static str, Vec<String>>,
}

impl Failures {
    pub(crate) fn record(&mut self, kind: &'static str, detail: impl FnOnce() -> String) {
        *self.counts.entry(kind).or_default() += 1;
        let samples = self.samples.entry(kind).or_default();
        if samples.len() < FAILURE_SAMPLES_MAX {
            samples.push(detail());
        }
    }

    pub(crate) fn total(&self) -> u64 {
        self.counts.values().sum()
    }

    pub(crate) fn merge(&mut self, other: &Failures) {
        for (kind, count) in &other.counts {
            *self.counts.entry(kind).or_default() += count;
        }
        for (kind, samples) in &other.samples {
            let mine = self.samples.entry(kind).or_default();
            for sample in samples {
                if mine.len() < FAILURE_SAMPLES_MAX {
                    mine.push(sample.clone());
                }
            }
        }
    }
}

/// Matches each maker's execution report (a push, or a FIX report ending in `m`) to
/// the send of the taker's command with the same journal sequence number, whichever
/// is seen first: the latency from the taker's send to the maker being told.
#[derive(Debug, Default)]
pub(crate) struct ExecTracker {
    takers: HashMap<u64, (Instant, Instant)>,
    taker_order: VecDeque<u64>,
    waiting: HashMap<u64, Vec<Instant>>,
    pub(crate) latency: Latency,
    pub(crate) matched: u64,
    /// Maker reports dropped because too many waited for a taker.
    pub(crate) dropped: u64,
}

impl ExecTracker {
    pub(crate) fn taker(&mut self, seq: u64, intended: Instant, sent: Instant) {
        if self.takers.contains_key(&seq) {
            return;
        }
        if let Some(waiting) = self.waiting.remove(&seq) {
            for at in waiting {
                self.latency.record(intended, sent, at);
                self.matched += 1;
            }
        }
        self.takers.insert(seq, (intended, sent));
        self.taker_order.push_back(seq);
        while self.taker_order.len() > EXEC_TAKERS_MAX {
            if let Some(old) = self.taker_order.pop_front() {
                self.takers.remove(&old);
            }
        }
    }

    pub(crate) fn maker(&mut self, seq: u64, at: Instant) {
        if let Some(&(intended, sent)) = self.takers.get(&seq) {
            self.latency.record(intended, sent, at);
            self.matched += 1;
        } else if self.waiting.len() < EXEC_TAKERS_MAX {
            self.waiting.entry(seq).or_default().push(at);
        } else {
            self.dropped += 1;
        }
    }

    /// Maker reports whose taker was never seen.
    pub(crate) fn unmatched(&self) -> u64 {
        self.waiting.values().map(|waiting| waiting.len() as u64).sum::<u64>() + self.dropped
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn makers_match_takers_in_either_order() {
        let start = Instant::now();
        let mut tracker = ExecTracker::default();
        tracker.maker(7, start + Duration::from_micros(50));
        tracker.taker(7, start, start + Duration::from_micros(10));
        tracker.maker(7, start + Duration::from_micros(60));
        tracker.maker(8, start);
        assert_eq!((tracker.matched, tracker.unmatched()), (2, 1));
        assert_eq!(tracker.latency.from_intended.len(), 2);
    }

    #[test]
    fn failures_keep_counts_and_a_few_samples() {
        let mut failures = Failures::default();
        for index in 0..10 {
            failures.record("duplicate", || format!("id {index}"));
        }
        let mut other = Failures::default();
        other.record("lost", String::new);
        failures.merge(&other);
        assert_eq!(failures.total(), 11);
        assert_eq!(failures.samples["duplicate"].len(), FAILURE_SAMPLES_MAX);
    }
}

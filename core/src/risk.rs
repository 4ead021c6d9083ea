//! The account actor's risk counters: what left the account today (per asset) and the
//! times of its recent payments. Both are driven by command time only.
//!
//! - Daily outflow is per **calendar UTC day** of command time (`timestamp /
//!   NANOS_PER_DAY`): exact and O(1), one total per asset, reset by the first outflow
//!   of a new day. (A rolling 24 hours would need every payment's time, or buckets and
//!   an approximation; the price of the calendar day is that up to twice the limit
//!   can leave around midnight UTC.)
//! - Payments per minute count the payments in `(now - PAYMENT_WINDOW, now]`: a ring
//!   of their times, at most `limits::PAYMENTS_PER_MINUTE_MAX` long, times older than
//!   the window dropped as new ones come.
//!
//! Bounded: one total per asset the account sent today, and at most
//! `PAYMENTS_PER_MINUTE_MAX` times. Only accounts that paid since the first rule set
//! was published have counters at all (`Account::risk`).

use std::collections::VecDeque;

use smallvec::SmallVec;

use crate::ids::{AssetId, Timestamp};
use crate::limits::{NANOS_PER_DAY, PAYMENT_WINDOW, PAYMENTS_PER_MINUTE_MAX};
use crate::money::Amount;

/// The calendar UTC day of a command time, counted from 1970-01-01.
pub fn utc_day(at: Timestamp) -> u64 {
    at.as_nanos() / NANOS_PER_DAY
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RiskCounters {
    /// The day `outflow` counts (`utc_day`).
    day: u64,
    /// What left the account on `day`, per asset, ordered by asset.
    outflow: SmallVec<[(AssetId, Amount); 2]>,
    /// Times of the latest payments, oldest first.
    payments: VecDeque<Timestamp>,
}

impl RiskCounters {
    /// Counters as a snapshot kept them; `outflow` ordered by asset, `payments` by time.
    pub(crate) fn restore(day: u64, outflow: &[(AssetId, Amount)], payments: &[Timestamp]) -> Self {
        Self { day, outflow: outflow.iter().copied().collect(), payments: payments.iter().copied().collect() }
    }

    /// What left the account in `asset` on the day of `now`.
    pub fn outflow_on(&self, now: Timestamp, asset: AssetId) -> Amount {
        if self.day != utc_day(now) {
            return Amount::ZERO;
        }
        self.outflow.iter().find(|(candidate, _)| *candidate == asset).map_or(Amount::ZERO, |&(_, amount)| amount)
    }

    /// Payments in `(now - PAYMENT_WINDOW, now]`.
    pub fn payments_in_window(&self, now: Timestamp) -> usize {
        let start = now.as_nanos().saturating_sub(PAYMENT_WINDOW.as_nanos());
        // Newest last: count back until one is out of the window.
        self.payments.iter().rev().take_while(|at| at.as_nanos() > start).count()
    }

    /// Counts a payment of `amount` of `asset` at `now`.
    pub(crate) fn record(&mut self, now: Timestamp, asset: AssetId, amount: Amount) {
        let day = utc_day(now);
        if self.day != day {
            self.day = day;
            self.outflow.clear();
        }
        let slot = match self.outflow.binary_search_by_key(&asset, |&(candidate, _)| candidate) {
            Ok(position) => &mut self.outflow[position].1,
            Err(position) => {
                self.outflow.insert(position, (asset, Amount::ZERO));
                &mut self.outflow[position].1
            }
        };
        // The day's outflow of an asset is bounded by what the asset can total.
        *slot = slot.checked_add(amount).unwrap_or(Amount::MAX);
        let start = now.as_nanos().saturating_sub(PAYMENT_WINDOW.as_nanos());
        while self.payments.front().is_some_and(|at| at.as_nanos() <= start) {
            self.payments.pop_front();
        }
        if self.payments.len() == PAYMENTS_PER_MINUTE_MAX as usize {
            self.payments.pop_front();
        }
        self.payments.push_back(now);
    }

    /// Takes `amount` back off the outflow of the day of `at` (a payment held for
    /// review and then rejected), if that day is still the one counted.
    pub(crate) fn give_back(&mut self, at: Timestamp, asset: AssetId, amount: Amount) {
        if self.day != utc_day(at) {
            return;
        }
        if let Some((_, total)) = self.outflow.iter_mut().find(|(candidate, _)| *candidate == asset) {
            *total = total.saturating_sub(amount);
        }
    }

    pub fn day(&self) -> u64 {
        self.day
    }

    /// The day's outflow per asset (of `day()`, which may be past).
    pub fn outflow(&self) -> &[(AssetId, Amount)] {
        &self.outflow
    }

    /// The payment times kept, oldest first.
    pub fn payment_times(&self) -> impl ExactSizeIterator<Item = Timestamp> + '_ {
        self.payments.iter().copied()
    }

    /// Nothing counted: the same as having no counters.
    pub fn is_empty(&self) -> bool {
        self.outflow.is_empty() && self.payments.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::limits::NANOS_PER_SECOND;

    const USD: AssetId = AssetId::new(0);

    fn at(seconds: u64) -> Timestamp {
        Timestamp::from_nanos(1_700_006_400 * NANOS_PER_SECOND + seconds * NANOS_PER_SECOND)
    }

    fn amount(units: u64) -> Amount {
        Amount::new(units).unwrap()
    }

    #[test]
    fn the_day_resets_at_midnight_utc() {
        // 1_700_006_400 is a midnight (19_676 days after the epoch).
        assert_eq!(utc_day(at(0)), 19_676);
        assert_eq!(utc_day(Timestamp::from_nanos(at(0).as_nanos() - 1)), 19_675);
        let mut counters = RiskCounters::default();
        counters.record(at(10), USD, amount(300));
        counters.record(at(86_399), USD, amount(200));
        assert_eq!(counters.outflow_on(at(86_399), USD), amount(500));
        assert_eq!(counters.outflow_on(at(86_400), USD), Amount::ZERO, "a new day starts from zero");
        counters.record(at(86_400), USD, amount(1));
        assert_eq!(counters.outflow_on(at(86_400), USD), amount(1));
        counters.give_back(at(10), USD, amount(1));
        assert_eq!(counters.outflow_on(at(86_400), USD), amount(1), "yesterday's give-back changes nothing today");
    }

    #[test]
    fn the_minute_window_is_half_open_and_bounded() {
        let mut counters = RiskCounters::default();
        counters.record(at(0), USD, amount(1));
        counters.record(at(30), USD, amount(1));
        assert_eq!(counters.payments_in_window(at(59)), 2);
        assert_eq!(counters.payments_in_window(at(60)), 1, "a payment exactly 60 s ago is out");
        assert_eq!(counters.payments_in_window(at(90)), 0);
        for _ in 0..2 * PAYMENTS_PER_MINUTE_MAX {
            counters.record(at(100), USD, amount(1));
        }
        assert_eq!(counters.payment_times().len(), PAYMENTS_PER_MINUTE_MAX as usize);
        assert_eq!(counters.payments_in_window(at(100)), PAYMENTS_PER_MINUTE_MAX as usize);
    }
}

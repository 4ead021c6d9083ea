//! The generator's shadow of one market's book: a naive, obviously-correct order book
//! (a `BTreeMap` of FIFO queues per side) that follows the engine's matching rules —
//! price-time priority, fills at the maker's price, self-trade prevention
//! `CancelTaker` (the incoming order stops at its own resting order, which stays),
//! and an amend that changes the price leaving its place and arriving again as a
//! taker. The generator runs every command it makes through it, so that it knows
//! which orders are live and where (cancels and moves target live orders only), what
//! the last trade price is, and how many trades the engine must report.
//!
//! Orders are named by `Ticket`: the index of their placement within the market, in
//! generation order. The engine's order ids are assigned later, once the markets'
//! streams are interleaved.

use std::collections::{BTreeMap, VecDeque};

use bourse_core::book::{Price, Qty, Side};

/// A placement within one market: its index in generation order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct Ticket(u32);

impl Ticket {
    pub(crate) fn index(self) -> usize {
        self.0 as usize
    }
}

/// A live resting order, as the generator sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Resting {
    pub(crate) ticket: Ticket,
    pub(crate) account: u32,
    pub(crate) side: Side,
    pub(crate) price: Price,
}

#[derive(Clone, Copy, Debug)]
struct ShadowOrder {
    account: u32,
    side: Side,
    price: Price,
    remaining: Qty,
    resting: bool,
}

/// What one command did to the book.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct StepOutcome {
    /// Fills (one `Trade` event each).
    pub(crate) trades: u32,
    /// Price of the last fill, if any.
    pub(crate) last_price: Option<Price>,
}

/// One market's book. See the module documentation.
#[derive(Clone, Debug, Default)]
pub(crate) struct ShadowBook {
    bids: BTreeMap<Price, VecDeque<Ticket>>,
    asks: BTreeMap<Price, VecDeque<Ticket>>,
    orders: Vec<ShadowOrder>,
    /// Resting tickets, oldest first.
    live: LiveTickets,
    bid_orders: usize,
    ask_orders: usize,
}

impl ShadowBook {
    /// Resting orders on `side`.
    pub(crate) fn orders_on(&self, side: Side) -> usize {
        match side {
            Side::Buy => self.bid_orders,
            Side::Sell => self.ask_orders,
        }
    }

    /// Resting orders on both sides.
    pub(crate) fn resting(&self) -> usize {
        self.live.len()
    }

    /// Price levels on both sides.
    pub(crate) fn levels(&self) -> usize {
        self.bids.len() + self.asks.len()
    }

    /// Tickets handed out so far (placements, filled or not).
    pub(crate) fn placements(&self) -> usize {
        self.orders.len()
    }

    /// The `rank`-th oldest resting order, from 0 (`rank < resting()`).
    pub(crate) fn oldest(&self, rank: usize) -> Resting {
        let ticket = self.live.nth(rank);
        let order = &self.orders[ticket.index()];
        Resting { ticket, account: order.account, side: order.side, price: order.price }
    }

    /// A new order by `account`: matches, then rests what is left if `rests` (a GTC
    /// limit order) and self-trade prevention did not stop it.
    pub(crate) fn place(
        &mut self,
        account: u32,
        side: Side,
        price: Price,
        qty: Qty,
        rests: bool,
    ) -> (Ticket, StepOutcome) {
        let ticket = Ticket(u32::try_from(self.orders.len()).expect("fewer than 2^32 placements per market"));
        self.orders.push(ShadowOrder { account, side, price, remaining: qty, resting: false });
        let outcome = self.arrive(ticket, rests);
        (ticket, outcome)
    }

    /// Cancels a resting order.
    pub(crate) fn cancel(&mut self, ticket: Ticket) {
        self.unlink(ticket);
        self.forget(ticket);
    }

    /// Moves a resting order to `price` (which differs from its own): it leaves its
    /// level and arrives again as a taker for its whole remainder.
    pub(crate) fn amend_price(&mut self, ticket: Ticket, price: Price) -> StepOutcome {
        assert_ne!(self.orders[ticket.index()].price, price, "a move changes the price");
        self.unlink(ticket);
        self.orders[ticket.index()].price = price;
        self.arrive(ticket, true)
    }

    /// Matches the order in `ticket` (not in any level), then rests or drops it.
    fn arrive(&mut self, ticket: Ticket, rests: bool) -> StepOutcome {
        let (outcome, self_trade) = self.take(ticket);
        let order = self.orders[ticket.index()];
        let stays = rests && !order.remaining.is_zero() && !self_trade;
        if stays {
            self.side_mut(order.side).entry(order.price).or_default().push_back(ticket);
            *self.count_mut(order.side) += 1;
            if !order.resting {
                self.orders[ticket.index()].resting = true;
                self.live.insert(ticket);
            }
        } else {
            self.forget(ticket);
        }
        outcome
    }

    /// Price-time matching of the order in `ticket` against the opposite side;
    /// returns what traded and whether self-trade prevention stopped it.
    fn take(&mut self, ticket: Ticket) -> (StepOutcome, bool) {
        let taker = self.orders[ticket.index()];
        let mut remaining = taker.remaining;
        let mut outcome = StepOutcome::default();
        let mut self_trade = false;
        while !remaining.is_zero() {
            let Some((price, maker)) = self.best(taker.side.opposite()) else { break };
            if !taker.side.crosses(taker.price, price) {
                break;
            }
            if self.orders[maker.index()].account == taker.account {
                self_trade = true;
                break;
            }
            let maker_order = &mut self.orders[maker.index()];
            let qty = remaining.min(maker_order.remaining);
            remaining = remaining.minus(qty);
            maker_order.remaining = maker_order.remaining.minus(qty);
            outcome.trades += 1;
            outcome.last_price = Some(price);
            if maker_order.remaining.is_zero() {
                self.unlink(maker);
                self.forget(maker);
            }
        }
        self.orders[ticket.index()].remaining = remaining;
        (outcome, self_trade)
    }

    /// The best price on `side` and the oldest order there.
    fn best(&self, side: Side) -> Option<(Price, Ticket)> {
        let level = match side {
            Side::Buy => self.bids.last_key_value(),
            Side::Sell => self.asks.first_key_value(),
        };
        level.map(|(&price, queue)| (price, *queue.front().expect("levels are never empty")))
    }

    /// Takes a resting order out of its level (it stays live until `forget`).
    fn unlink(&mut self, ticket: Ticket) {
        let ShadowOrder { side, price, .. } = self.orders[ticket.index()];
        let levels = self.side_mut(side);
        let queue = levels.get_mut(&price).expect("a resting order's level exists");
        let position = queue.iter().position(|&queued| queued == ticket).expect("the order is in its level");
        queue.remove(position);
        if queue.is_empty() {
            levels.remove(&price);
        }
        *self.count_mut(side) -= 1;
    }

    /// Drops a ticket from the live list (if it was resting).
    fn forget(&mut self, ticket: Ticket) {
        let order = &mut self.orders[ticket.index()];
        if order.resting {
            order.resting = false;
            self.live.remove(ticket);
        }
    }

    fn side_mut(&mut self, side: Side) -> &mut BTreeMap<Price, VecDeque<Ticket>> {
        match side {
            Side::Buy => &mut self.bids,
            Side::Sell => &mut self.asks,
        }
    }

    fn count_mut(&mut self, side: Side) -> &mut usize {
        match side {
            Side::Buy => &mut self.bid_orders,
            Side::Sell => &mut self.ask_orders,
        }
    }
}

/// The set of resting tickets, ordered by age: a Fenwick tree of live flags over
/// ticket indexes, so that the k-th oldest is found in O(log n). It doubles (and is
/// rebuilt in O(n)) as tickets outgrow it.
#[derive(Clone, Debug, Default)]
struct LiveTickets {
    /// `tree[i - 1]` counts the live tickets in `(i - lowbit(i), i]`, 1-based.
    tree: Vec<u32>,
    flags: Vec<bool>,
    len: usize,
}

impl LiveTickets {
    fn len(&self) -> usize {
        self.len
    }

    fn insert(&mut self, ticket: Ticket) {
        let index = ticket.index();
        if index >= self.tree.len() {
            self.grow(index + 1);
        }
        debug_assert!(!self.flags[index]);
        self.flags[index] = true;
        self.len += 1;
        self.add(index, 1);
    }

    fn remove(&mut self, ticket: Ticket) {
        let index = ticket.index();
        debug_assert!(self.flags[index]);
        self.flags[index] = false;
        self.len -= 1;
        self.add(index, u32::MAX);
    }

    /// Adds `delta` (wrapping: `u32::MAX` is minus one) at `index`.
    fn add(&mut self, index: usize, delta: u32) {
        let mut position = index + 1;
        while position <= self.tree.len() {
            self.tree[position - 1] = self.tree[position - 1].wrapping_add(delta);
            position += position & position.wrapping_neg();
        }
    }

    /// The live ticket with `rank` live tickets before it.
    fn nth(&self, rank: usize) -> Ticket {
        assert!(rank < self.len, "rank {rank} of {} live tickets", self.len);
        let mut position = 0;
        let mut remaining = rank as u32;
        let mut step = self.tree.len();
        while step > 0 {
            let next = position + step;
            if next <= self.tree.len() && self.tree[next - 1] <= remaining {
                position = next;
                remaining -= self.tree[next - 1];
            }
            step /= 2;
        }
        Ticket(position as u32)
    }

    /// Room for `needed` tickets: the next power of two, rebuilt from the flags.
    fn grow(&mut self, needed: usize) {
        let size = needed.next_power_of_two().max(64);
        self.flags.resize(size, false);
        self.tree = self.flags.iter().map(|&live| u32::from(live)).collect();
        for position in 1..=size {
            let parent = position + (position & position.wrapping_neg());
            if parent <= size {
                self.tree[parent - 1] += self.tree[position - 1];
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn price(ticks: u64) -> Price {
        Price::new(ticks).unwrap()
    }

    fn qty(lots: u64) -> Qty {
        Qty::new(lots).unwrap()
    }

    #[test]
    fn matches_best_price_then_oldest_and_rests_the_rest() {
        let mut book = ShadowBook::default();
        let (first, _) = book.place(1, Side::Sell, price(101), qty(5), true);
        let (second, _) = book.place(2, Side::Sell, price(101), qty(5), true);
        book.place(3, Side::Sell, price(100), qty(2), true);
        let (_, outcome) = book.place(4, Side::Buy, price(101), qty(10), true);
        assert_eq!(outcome, StepOutcome { trades: 3, last_price: Some(price(101)) });
        // 2 at 100, 5 from the first at 101, 3 of the second: the buyer is filled.
        assert_eq!(book.resting(), 1);
        assert_eq!(book.oldest(0).ticket, second);
        assert_ne!(book.oldest(0).ticket, first);
        assert_eq!(book.levels(), 1);
    }

    #[test]
    fn live_tickets_rank_by_age_through_growth() {
        let mut live = LiveTickets::default();
        for index in 0..1000 {
            live.insert(Ticket(index));
        }
        for index in (0..1000).step_by(3) {
            live.remove(Ticket(index));
        }
        let expected: Vec<u32> = (0..1000).filter(|index| index % 3 != 0).collect();
        assert_eq!(live.len(), expected.len());
        for (rank, &index) in expected.iter().enumerate() {
            assert_eq!(live.nth(rank), Ticket(index));
        }
    }

    #[test]
    fn self_trade_stops_the_incoming_order_and_keeps_the_resting_one() {
        let mut book = ShadowBook::default();
        book.place(1, Side::Sell, price(100), qty(5), true);
        let (_, outcome) = book.place(1, Side::Buy, price(100), qty(5), true);
        assert_eq!(outcome.trades, 0);
        assert_eq!((book.resting(), book.orders_on(Side::Sell), book.orders_on(Side::Buy)), (1, 1, 0));
    }

    #[test]
    fn a_move_that_crosses_trades_and_a_move_that_does_not_goes_to_the_back() {
        let mut book = ShadowBook::default();
        let (ask, _) = book.place(1, Side::Sell, price(105), qty(3), true);
        let (bid, _) = book.place(2, Side::Buy, price(100), qty(5), true);
        let (other_bid, _) = book.place(3, Side::Buy, price(101), qty(1), true);
        assert_eq!(book.amend_price(bid, price(101)).trades, 0);
        // Now at 101 behind `other_bid`; moving the ask down to 101 fills the older first.
        let outcome = book.amend_price(ask, price(101));
        assert_eq!(outcome.trades, 2);
        assert_eq!(book.resting(), 1);
        assert_eq!(book.oldest(0).ticket, bid);
        assert_ne!(book.oldest(0).ticket, other_bid);
        book.cancel(bid);
        assert_eq!((book.resting(), book.levels()), (0, 0));
    }
}

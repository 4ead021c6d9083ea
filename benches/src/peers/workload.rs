//! The seeded book-only workload of the `peers` suite (described in full at the top of
//! `peers.rs`): the engine-neutral commands every adapter is given, and the generator,
//! which runs each command through a small reference book as it draws the stream. The
//! reference is what tells the generator which orders are still live (so a cancel
//! always targets a resting order) and what every engine must end with: fills, filled
//! lots, best bid and ask, and the lots resting on each side.
//!
//! The reference is deliberately naive and shares no code with `bourse_core::book`:
//! a `BTreeMap` of price levels per side, each a queue of order ids, with cancelled
//! ids skipped lazily when they reach the front.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::rc::Rc;

use bourse_core::book::{OrderId, Price, Qty, Side};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// The price every order is drawn around, in ticks.
pub(crate) const MID_TICKS: u64 = 100_000;
/// Smallest and largest order, in lots.
pub(crate) const QTY_LOTS_MIN: u64 = 1;
pub(crate) const QTY_LOTS_MAX: u64 = 10;
/// Traders placing orders. Trader `t` buys as account `2t` and sells as `2t + 1`, so
/// no account ever meets its own order and self-trade prevention never fires (the
/// peers have none to match it).
pub(crate) const TRADERS: u32 = 500;

/// The two command mixes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, clap::ValueEnum)]
pub(crate) enum Mix {
    /// Limit orders only.
    Limits,
    /// From the book `Limits` leaves: limit orders and, with `cancel_percent` odds, a
    /// cancel of a resting order.
    LimitCancel,
}

impl Mix {
    pub(crate) const ALL: [Mix; 2] = [Mix::Limits, Mix::LimitCancel];

    pub(crate) fn name(self) -> &'static str {
        match self {
            Mix::Limits => "limits",
            Mix::LimitCancel => "limit-cancel",
        }
    }

    /// The `ChaCha8` stream this mix draws from, so that each mix is its own sequence
    /// under one seed.
    fn stream(self) -> u64 {
        match self {
            Mix::Limits => 1,
            Mix::LimitCancel => 2,
        }
    }
}

/// What the workloads look like.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Shape {
    /// Commands in each mix's stream.
    pub(crate) commands: usize,
    /// Percent of the limit-cancel mix's commands that cancel a resting order.
    pub(crate) cancel_percent: u32,
    /// Prices are drawn uniformly from `MID_TICKS ± band_ticks`.
    pub(crate) band_ticks: u64,
    pub(crate) seed: u64,
}

/// A good-till-cancelled limit order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Limit {
    pub(crate) id: OrderId,
    pub(crate) account: u32,
    pub(crate) side: Side,
    pub(crate) price: Price,
    pub(crate) qty: Qty,
}

/// A cancel, by the order's owner, of an order the reference says is resting.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Cancel {
    pub(crate) id: OrderId,
    pub(crate) account: u32,
}

/// One command of the stream, as every engine receives it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Command {
    Limit(Limit),
    Cancel(Cancel),
}

/// What an engine reports while it runs: kept by the timed loop, so it is just
/// counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Tally {
    /// Trades: one per resting order an incoming order met.
    pub(crate) fills: u64,
    pub(crate) filled_lots: u64,
    /// Cancels the engine said found nothing (engines that report it).
    pub(crate) cancels_missed: u64,
    /// Calls the engine answered with an error (engines whose API can fail).
    pub(crate) errors: u64,
}

/// The top of a book and what rests on each side, read after a run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Top {
    pub(crate) best_bid_ticks: Option<u64>,
    pub(crate) best_ask_ticks: Option<u64>,
    pub(crate) bid_lots: u64,
    pub(crate) ask_lots: u64,
}

/// Everything an engine must agree on after a run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Outcome {
    pub(crate) tally: Tally,
    pub(crate) top: Top,
}

/// Figures about the stream itself, from the reference.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Stats {
    pub(crate) limits: u64,
    pub(crate) cancels: u64,
    /// Limit orders that traded at least one lot on arrival.
    pub(crate) limits_crossing: u64,
    /// Limit orders that traded all their lots on arrival (they never rest).
    pub(crate) limits_filled_on_arrival: u64,
    pub(crate) resting_orders_start: u64,
    pub(crate) resting_orders_max: u64,
    pub(crate) resting_orders_end: u64,
    pub(crate) levels_end: u64,
}

/// One mix's measured stream, generated before any timing, with what the reference
/// book says every engine must end with.
#[derive(Clone, Debug)]
pub(crate) struct Workload {
    pub(crate) mix: Mix,
    pub(crate) shape: Shape,
    /// Applied to a fresh book before the clock starts: nothing for `limits`; the
    /// whole `limits` stream for `limit-cancel`, which starts from the book it leaves.
    pub(crate) setup: Rc<[Command]>,
    pub(crate) commands: Rc<[Command]>,
    /// Fills of `commands` alone; the book as it is after `setup` and `commands`.
    pub(crate) expected: Outcome,
    pub(crate) stats: Stats,
}

impl Workload {
    /// Orders the book sees in all: a book pre-sized for this never grows.
    pub(crate) fn limits_total(&self) -> usize {
        self.setup.iter().chain(self.commands.iter()).filter(|command| matches!(command, Command::Limit(_))).count()
    }

    /// Both mixes: `limits` from an empty book, then `limit-cancel` from the book
    /// `limits` leaves.
    pub(crate) fn generate(shape: Shape) -> [Workload; 2] {
        let mut generator = Generator { shape, reference: Reference::default(), next_id: 1 };
        let nothing: Rc<[Command]> = Rc::new([]);
        let limits = generator.mix(Mix::Limits, nothing);
        let limit_cancel = generator.mix(Mix::LimitCancel, Rc::clone(&limits.commands));
        [limits, limit_cancel]
    }
}

/// Draws the mixes one after the other, through one reference book.
struct Generator {
    shape: Shape,
    reference: Reference,
    next_id: u64,
}

impl Generator {
    fn mix(&mut self, mix: Mix, setup: Rc<[Command]>) -> Workload {
        let mut rng = ChaCha8Rng::seed_from_u64(self.shape.seed);
        rng.set_stream(mix.stream());
        let cancel_percent = if mix == Mix::Limits { 0 } else { self.shape.cancel_percent };
        let reference = &mut self.reference;
        reference.tally = Tally::default();
        let mut stats = Stats { resting_orders_start: reference.live.len() as u64, ..Stats::default() };
        let mut commands = Vec::with_capacity(self.shape.commands);
        for _ in 0..self.shape.commands {
            let cancels = !reference.live.is_empty() && rng.random_range(0..100) < cancel_percent;
            let command = if cancels {
                let target = reference.live[rng.random_range(0..reference.live.len())];
                stats.cancels += 1;
                Command::Cancel(reference.cancel(target))
            } else {
                let limit = draw_limit(&mut rng, &self.shape, OrderId::new(self.next_id));
                self.next_id += 1;
                stats.limits += 1;
                let traded = reference.limit(&limit);
                stats.limits_crossing += u64::from(!traded.is_zero());
                stats.limits_filled_on_arrival += u64::from(traded == limit.qty);
                Command::Limit(limit)
            };
            commands.push(command);
            stats.resting_orders_max = stats.resting_orders_max.max(reference.live.len() as u64);
        }
        stats.resting_orders_end = reference.live.len() as u64;
        stats.levels_end = (reference.bids.len() + reference.asks.len()) as u64;
        Workload { mix, shape: self.shape, setup, commands: commands.into(), expected: reference.outcome(), stats }
    }
}

fn draw_limit(rng: &mut ChaCha8Rng, shape: &Shape, id: OrderId) -> Limit {
    let side = if rng.random_bool(0.5) { Side::Buy } else { Side::Sell };
    let trader = rng.random_range(0..TRADERS);
    let ticks = rng.random_range(MID_TICKS - shape.band_ticks..=MID_TICKS + shape.band_ticks);
    let lots = rng.random_range(QTY_LOTS_MIN..=QTY_LOTS_MAX);
    Limit {
        id,
        account: 2 * trader + u32::from(side == Side::Sell),
        side,
        price: Price::new(ticks).expect("the band is within PRICE_TICKS_MAX"),
        qty: Qty::new(lots).expect("small quantities are within QTY_LOTS_MAX"),
    }
}

/// A resting order in the reference book.
#[derive(Clone, Copy, Debug)]
struct Resting {
    account: u32,
    side: Side,
    price: u64,
    lots: u64,
    /// Where its id is in `Reference::live`.
    live_index: usize,
}

/// One price level of the reference: the lots of its live orders and the ids in
/// arrival order, cancelled ones included until they reach the front.
#[derive(Clone, Debug, Default)]
struct RefLevel {
    lots: u64,
    queue: VecDeque<OrderId>,
}

/// The naive reference book.
#[derive(Clone, Debug, Default)]
struct Reference {
    bids: BTreeMap<u64, RefLevel>,
    asks: BTreeMap<u64, RefLevel>,
    resting: HashMap<OrderId, Resting>,
    /// Ids of the resting orders, in no particular order, for drawing cancels.
    live: Vec<OrderId>,
    tally: Tally,
}

impl Reference {
    /// Matches `limit` by price-time priority, rests what remains; returns the lots
    /// it traded on arrival.
    fn limit(&mut self, limit: &Limit) -> Qty {
        let price = limit.price.ticks();
        let mut remaining = limit.qty.lots();
        while remaining > 0 {
            let opposite = match limit.side {
                Side::Buy => self.asks.first_entry(),
                Side::Sell => self.bids.last_entry(),
            };
            let Some(mut level) = opposite else { break };
            let crosses = match limit.side {
                Side::Buy => price >= *level.key(),
                Side::Sell => price <= *level.key(),
            };
            if !crosses {
                break;
            }
            let maker_id = *level.get().queue.front().expect("a level with lots has orders");
            let Some(maker) = self.resting.get_mut(&maker_id) else {
                level.get_mut().queue.pop_front(); // cancelled earlier
                continue;
            };
            let lots = remaining.min(maker.lots);
            remaining -= lots;
            maker.lots -= lots;
            level.get_mut().lots -= lots;
            self.tally.fills += 1;
            self.tally.filled_lots += lots;
            let maker_done = maker.lots == 0;
            if maker_done {
                level.get_mut().queue.pop_front();
            }
            if level.get().lots == 0 {
                level.remove();
            }
            if maker_done {
                self.forget(maker_id);
            }
        }
        if remaining > 0 {
            let side = match limit.side {
                Side::Buy => &mut self.bids,
                Side::Sell => &mut self.asks,
            };
            let level = side.entry(price).or_default();
            level.lots += remaining;
            level.queue.push_back(limit.id);
            let resting = Resting {
                account: limit.account,
                side: limit.side,
                price,
                lots: remaining,
                live_index: self.live.len(),
            };
            self.resting.insert(limit.id, resting);
            self.live.push(limit.id);
        }
        Qty::new(limit.qty.lots() - remaining).expect("at most the order's quantity")
    }

    /// Takes a live order off the book; returns the cancel command for it.
    fn cancel(&mut self, id: OrderId) -> Cancel {
        let order = self.forget(id);
        let side = match order.side {
            Side::Buy => &mut self.bids,
            Side::Sell => &mut self.asks,
        };
        let level = side.get_mut(&order.price).expect("a live order's level exists");
        level.lots -= order.lots;
        if level.lots == 0 {
            side.remove(&order.price);
        }
        Cancel { id, account: order.account }
    }

    /// Drops `id` from the live set (its queue entry is skipped later).
    fn forget(&mut self, id: OrderId) -> Resting {
        let order = self.resting.remove(&id).expect("only live orders are forgotten");
        self.live.swap_remove(order.live_index);
        if let Some(&moved) = self.live.get(order.live_index) {
            self.resting.get_mut(&moved).expect("live ids rest").live_index = order.live_index;
        }
        order
    }

    fn outcome(&self) -> Outcome {
        let lots = |side: &BTreeMap<u64, RefLevel>| side.values().map(|level| level.lots).sum();
        Outcome {
            tally: self.tally,
            top: Top {
                best_bid_ticks: self.bids.last_key_value().map(|(&price, _)| price),
                best_ask_ticks: self.asks.first_key_value().map(|(&price, _)| price),
                bid_lots: lots(&self.bids),
                ask_lots: lots(&self.asks),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shape(seed: u64) -> Shape {
        Shape { commands: 20_000, cancel_percent: 20, band_ticks: 20, seed }
    }

    fn limit(id: u64, side: Side, ticks: u64, lots: u64) -> Limit {
        let account = u32::from(side == Side::Sell);
        Limit { id: OrderId::new(id), account, side, price: Price::new(ticks).unwrap(), qty: Qty::new(lots).unwrap() }
    }

    #[test]
    fn the_reference_matches_by_price_then_time() {
        let mut reference = Reference::default();
        assert!(reference.limit(&limit(1, Side::Sell, 101, 5)).is_zero());
        assert!(reference.limit(&limit(2, Side::Sell, 100, 3)).is_zero());
        assert!(reference.limit(&limit(3, Side::Sell, 100, 4)).is_zero());
        reference.cancel(OrderId::new(2));
        // Takes 4 at 100 (order 3; order 2 was cancelled), then 2 of order 1 at 101.
        assert_eq!(reference.limit(&limit(4, Side::Buy, 101, 6)).lots(), 6);
        let outcome = reference.outcome();
        assert_eq!(outcome.tally, Tally { fills: 2, filled_lots: 6, ..Tally::default() });
        assert_eq!(outcome.top, Top { best_bid_ticks: None, best_ask_ticks: Some(101), bid_lots: 0, ask_lots: 3 });
        assert_eq!(reference.live, vec![OrderId::new(1)]);
    }

    #[test]
    fn a_seed_names_one_stream_per_mix() {
        let [limits, limit_cancel] = Workload::generate(shape(7));
        let [again, _] = Workload::generate(shape(7));
        let [other, _] = Workload::generate(shape(8));
        assert_eq!(limits.commands, again.commands);
        assert_ne!(limits.commands, other.commands);
        assert_eq!(limit_cancel.setup, limits.commands);
        assert!(limits.setup.is_empty());
    }

    #[test]
    fn cancels_target_live_orders_and_about_half_the_limits_cross() {
        let [_, workload] = Workload::generate(shape(7));
        let stats = workload.stats;
        assert_eq!(stats.limits + stats.cancels, 20_000);
        assert!((3_000..5_000).contains(&stats.cancels), "{stats:?}");
        let crossing_percent = 100 * stats.limits_crossing / stats.limits;
        assert!((35..65).contains(&crossing_percent), "{stats:?}");
        // Replaying the stream, every cancel names an order resting at that point.
        let mut reference = Reference::default();
        for command in workload.setup.iter() {
            let Command::Limit(limit) = command else { panic!("the setup is limit orders") };
            reference.limit(limit);
        }
        assert_eq!(reference.live.len() as u64, stats.resting_orders_start);
        reference.tally = Tally::default();
        for command in workload.commands.iter() {
            match command {
                Command::Limit(limit) => {
                    reference.limit(limit);
                }
                Command::Cancel(cancel) => {
                    assert_eq!(reference.resting[&cancel.id].account, cancel.account);
                    reference.cancel(cancel.id);
                }
            }
        }
        assert_eq!(reference.outcome(), workload.expected);
    }
}

//! Property and differential tests of the order book and matching (STYLE §12).
//!
//! `RefBook` is a deliberately naive reference book written from the matching
//! specification rather than from the engine: per side a `BTreeMap` from price to a
//! `VecDeque` of orders, full scans to find an order, and the rules spelled out one by
//! one (price-time priority, fills at the maker's price, self-trade prevention,
//! GTC / IOC / FOK, post-only, cancel, cancel-all, amend). Three properties use it:
//!
//! - `engine_matches_the_reference_book`: random streams of order commands through the
//!   real `Engine` (funds never limit, so both see the same orders accepted). After
//!   every command the engine's trades equal the model's fills (price, quantity, maker,
//!   taker, in order), its order life-cycle events (accepted, cancelled and why,
//!   amended, rejected and why) equal the model's, and the resting books are identical
//!   per side, per level, order by order (id and remaining, in FIFO order).
//! - `book_matches_the_reference_book`: the same streams against `Book`, `OrderSlab`,
//!   `take` and `walk` alone, through a trivial `Fills`.
//! - `funded_streams_keep_every_invariant`: streams where funds do limit (small
//!   deposits, non-zero fees, several KYC tiers, deposits, withdrawals, tier changes,
//!   freezes, quote-budget market buys). After every command: `check_invariants()`,
//!   and checks computed only from the events and the public book: the book is
//!   uncrossed, the resting orders are exactly those the events leave resting, every
//!   trade is at the maker's price, within the taker's limit and charges the scheduled
//!   fees, every hold equals what the account's resting orders reserve, every balance
//!   equals what the events moved, and per asset the accounts plus the house hold what
//!   was deposited minus what was withdrawn.

use std::collections::{BTreeMap, VecDeque};

use bourse_core::Engine;
use bourse_core::book::{
    Book, Fills, MarketId, MatchEnd, NewOrder, OrderId, OrderNode, OrderSlab, Price, Qty, SelfTradePrevention, Side,
    Taker, TimeInForce, take, walk,
};
use bourse_core::command::{
    AmendOrder, CancelAll, CancelOrder, Command, Deposit, FreezeAccount, OpenAccount, OrderRef, OrderSize, PlaceOrder,
    SequencedCommand, SetKycTier, UnfreezeAccount, Withdraw,
};
use bourse_core::config::Config;
use bourse_core::event::{CancelReason, Event, RejectReason};
use bourse_core::ids::{AccountId, AssetId, IdempotencyKey, KycTier, OwnerId, Reference, Seq, Timestamp};
use bourse_core::money::Amount;
use proptest::collection::vec;
use proptest::prelude::*;

/// Prices are `MID ± PRICE_BAND` ticks: narrow, so that books cross often.
const MID: u64 = 100;
const PRICE_BAND: i8 = 4;
const QTY_MAX: u64 = 12;
/// Accounts a stream names at most (`Op` account numbers are reduced modulo the count).
const ACCOUNTS_MAX: u8 = 8;

const MARKET: MarketId = MarketId::new(0);
const BASE: AssetId = AssetId::new(0);
const QUOTE: AssetId = AssetId::new(1);

/// The funded market: a lot is 100 base units, a tick 5 quote units per lot.
const FUNDED_LOT: u64 = 100;
const FUNDED_TICK: u64 = 5;
/// (maker, taker) bps per KYC tier; tiers past the last use the last.
const FUNDED_FEES: [(u16, u16); 4] = [(10, 25), (30, 5), (0, 0), (1_000, 1_000)];

fn price(ticks: u64) -> Price {
    Price::new(ticks).expect("test prices are valid")
}

fn qty(lots: u64) -> Qty {
    Qty::new(lots).expect("test quantities are valid")
}

fn amount(minor_units: u64) -> Amount {
    Amount::new(minor_units).expect("test amounts are valid")
}

fn offset_price(offset: i8) -> u64 {
    MID.checked_add_signed(i64::from(offset)).expect("the band stays above zero")
}

// ---------------------------------------------------------------------------------
// What a book does, as both the model and the engine report it.
// ---------------------------------------------------------------------------------

/// The order life-cycle part of the events of one command.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Life {
    Accepted { order: u64 },
    Trade { price: u64, qty: u64, maker: u64, taker: u64, maker_remaining: u64, taker_remaining: u64 },
    Cancelled { order: u64, remaining: u64, reason: CancelReason },
    Amended { order: u64, price: u64, qty: u64, priority_kept: bool },
    Rejected(RejectReason),
}

fn life_of(events: &[Event]) -> Vec<Life> {
    events
        .iter()
        .filter_map(|event| match *event {
            Event::OrderAccepted { order, .. } => Some(Life::Accepted { order: order.get() }),
            Event::Trade { price, qty, maker_order, taker_order, maker_remaining, taker_remaining, .. } => {
                Some(Life::Trade {
                    price: price.ticks(),
                    qty: qty.lots(),
                    maker: maker_order.get(),
                    taker: taker_order.get(),
                    maker_remaining: maker_remaining.lots(),
                    taker_remaining: taker_remaining.lots(),
                })
            }
            Event::OrderCancelled { order, remaining, reason, .. } => {
                Some(Life::Cancelled { order: order.get(), remaining: remaining.lots(), reason })
            }
            Event::OrderAmended { order, price, qty, priority_kept, .. } => {
                Some(Life::Amended { order: order.get(), price: price.ticks(), qty: qty.lots(), priority_kept })
            }
            Event::Rejected { reason, .. } => Some(Life::Rejected(reason)),
            _ => None,
        })
        .collect()
}

/// (price, qty, maker, taker) of each fill, in order.
fn fills_of(life: &[Life]) -> Vec<(u64, u64, u64, u64)> {
    life.iter()
        .filter_map(|entry| match *entry {
            Life::Trade { price, qty, maker, taker, .. } => Some((price, qty, maker, taker)),
            _ => None,
        })
        .collect()
}

/// One side of a book, best level first: (price, FIFO of (order id, remaining)).
type SideView = Vec<(u64, Vec<(u64, u64)>)>;
/// Bids, then asks.
type BookView = [SideView; 2];

/// The resting book as the engine's public API shows it.
fn book_view(book: &Book, slab: &OrderSlab) -> BookView {
    [Side::Buy, Side::Sell].map(|side| {
        book.side(side)
            .levels()
            .map(|level| {
                let mut fifo = Vec::new();
                let mut cursor = Some(level.head());
                while let Some(slot) = cursor {
                    let node = slab.get(slot);
                    assert_eq!((node.side(), node.price()), (side, level.price()), "order sits at its own level");
                    fifo.push((node.id().get(), node.remaining().lots()));
                    cursor = slab.next_in_level(slot);
                }
                (level.price().ticks(), fifo)
            })
            .collect()
    })
}

// ---------------------------------------------------------------------------------
// The reference book.
// ---------------------------------------------------------------------------------

/// An order arriving at a book.
#[derive(Clone, Copy, Debug)]
struct Arrival {
    account: u32,
    side: Side,
    /// `None`: a market order, any price.
    limit: Option<u64>,
    qty: u64,
    time_in_force: TimeInForce,
    post_only: bool,
    /// `None`: the default.
    stp: Option<SelfTradePrevention>,
}

impl Arrival {
    fn stp(&self) -> SelfTradePrevention {
        self.stp.unwrap_or(SelfTradePrevention::CancelTaker)
    }
}

/// One resting order of the reference book.
#[derive(Clone, Copy, Debug)]
struct RefOrder {
    id: u64,
    account: u32,
    side: Side,
    price: u64,
    remaining: u64,
    stp: SelfTradePrevention,
    post_only: bool,
}

/// What a stream asks a book to do, with every choice made.
#[derive(Clone, Copy, Debug)]
enum Action {
    Place(Arrival),
    Cancel {
        account: u32,
        order: u64,
    },
    Amend {
        account: u32,
        order: u64,
        price: Option<u64>,
        qty: Option<u64>,
    },
    /// `scoped`: names the market rather than every market.
    CancelAll {
        account: u32,
        scoped: bool,
    },
}

/// Whether an order on `side` at `limit` trades with a resting order at `resting`.
fn would_trade(side: Side, limit: Option<u64>, resting: u64) -> bool {
    match (side, limit) {
        (_, None) => true,
        (Side::Buy, Some(limit)) => limit >= resting,
        (Side::Sell, Some(limit)) => limit <= resting,
    }
}

#[derive(Debug)]
struct RefBook {
    bids: BTreeMap<u64, VecDeque<RefOrder>>,
    asks: BTreeMap<u64, VecDeque<RefOrder>>,
    next_id: u64,
}

impl RefBook {
    fn new() -> Self {
        Self { bids: BTreeMap::new(), asks: BTreeMap::new(), next_id: 1 }
    }

    fn queues_mut(&mut self, side: Side) -> &mut BTreeMap<u64, VecDeque<RefOrder>> {
        match side {
            Side::Buy => &mut self.bids,
            Side::Sell => &mut self.asks,
        }
    }

    /// The levels of `side`, best first: highest bid, lowest ask.
    fn levels(&self, side: Side) -> Vec<(u64, &VecDeque<RefOrder>)> {
        match side {
            Side::Buy => self.bids.iter().rev().map(|(&price, queue)| (price, queue)).collect(),
            Side::Sell => self.asks.iter().map(|(&price, queue)| (price, queue)).collect(),
        }
    }

    fn best(&self, side: Side) -> Option<u64> {
        self.levels(side).first().map(|&(price, _)| price)
    }

    fn view(&self) -> BookView {
        [Side::Buy, Side::Sell].map(|side| {
            self.levels(side)
                .into_iter()
                .map(|(price, queue)| (price, queue.iter().map(|order| (order.id, order.remaining)).collect()))
                .collect()
        })
    }

    /// Every resting order, by id.
    fn resting(&self) -> Vec<RefOrder> {
        let mut orders: Vec<RefOrder> = self.bids.values().chain(self.asks.values()).flatten().copied().collect();
        orders.sort_by_key(|order| order.id);
        orders
    }

    fn find(&self, id: u64) -> Option<RefOrder> {
        self.resting().into_iter().find(|order| order.id == id)
    }

    fn remove(&mut self, id: u64) -> Option<RefOrder> {
        let order = self.find(id)?;
        let queues = self.queues_mut(order.side);
        let queue = queues.get_mut(&order.price).expect("an order's level exists");
        queue.retain(|other| other.id != id);
        if queue.is_empty() {
            queues.remove(&order.price);
        }
        Some(order)
    }

    fn apply(&mut self, action: &Action) -> Vec<Life> {
        let mut out = Vec::new();
        match *action {
            Action::Place(arrival) => self.place(&arrival, &mut out),
            Action::Cancel { account, order } => match self.find(order).filter(|found| found.account == account) {
                Some(found) => {
                    self.remove(order);
                    out.push(Life::Cancelled { order, remaining: found.remaining, reason: CancelReason::Requested });
                }
                None => out.push(Life::Rejected(RejectReason::UnknownOrder)),
            },
            Action::Amend { account, order, price, qty } => self.amend(account, order, price, qty, &mut out),
            Action::CancelAll { account, .. } => {
                for order in self.resting().into_iter().filter(|order| order.account == account) {
                    self.remove(order.id);
                    let (order, remaining) = (order.id, order.remaining);
                    out.push(Life::Cancelled { order, remaining, reason: CancelReason::CancelAll });
                }
            }
        }
        out
    }

    fn crosses_on_arrival(&self, side: Side, limit: Option<u64>) -> bool {
        self.best(side.opposite()).is_some_and(|best| would_trade(side, limit, best))
    }

    fn place(&mut self, arrival: &Arrival, out: &mut Vec<Life>) {
        if arrival.post_only && self.crosses_on_arrival(arrival.side, arrival.limit) {
            return out.push(Life::Rejected(RejectReason::PostOnlyWouldTake));
        }
        let id = self.next_id;
        self.next_id += 1;
        out.push(Life::Accepted { order: id });
        if arrival.time_in_force == TimeInForce::Fok && self.fillable(arrival) < arrival.qty {
            return out.push(Life::Cancelled { order: id, remaining: arrival.qty, reason: CancelReason::FillOrKill });
        }
        self.enter(id, arrival, out);
    }

    /// Lots `arrival` would fill, walking the book exactly as matching would.
    fn fillable(&self, arrival: &Arrival) -> u64 {
        let mut total = 0;
        for (price, queue) in self.levels(arrival.side.opposite()) {
            if !would_trade(arrival.side, arrival.limit, price) {
                break;
            }
            for maker in queue {
                if total == arrival.qty {
                    return total;
                }
                if maker.account == arrival.account {
                    if arrival.stp() == SelfTradePrevention::CancelMaker {
                        continue;
                    }
                    return total;
                }
                total += maker.remaining.min(arrival.qty - total);
            }
        }
        total
    }

    /// Matches `arrival` (order `id`), then rests or cancels what is left.
    fn enter(&mut self, id: u64, arrival: &Arrival, out: &mut Vec<Life>) {
        let opposite = arrival.side.opposite();
        let mut remaining = arrival.qty;
        let mut stopped_by_self_trade = false;
        while remaining > 0 {
            let Some(price) = self.best(opposite) else { break };
            if !would_trade(arrival.side, arrival.limit, price) {
                break;
            }
            let queues = self.queues_mut(opposite);
            let queue = queues.get_mut(&price).expect("the best level exists");
            let maker = queue.front_mut().expect("a level is never empty");
            if maker.account == arrival.account {
                let (order, remaining) = (maker.id, maker.remaining);
                match arrival.stp() {
                    SelfTradePrevention::CancelTaker => {
                        stopped_by_self_trade = true;
                        break;
                    }
                    SelfTradePrevention::CancelMaker | SelfTradePrevention::CancelBoth => {
                        queue.pop_front();
                        out.push(Life::Cancelled { order, remaining, reason: CancelReason::SelfTrade });
                    }
                }
                if queue.is_empty() {
                    queues.remove(&price);
                }
                if arrival.stp() == SelfTradePrevention::CancelBoth {
                    stopped_by_self_trade = true;
                    break;
                }
                continue;
            }
            let fill = remaining.min(maker.remaining);
            remaining -= fill;
            maker.remaining -= fill;
            out.push(Life::Trade {
                price,
                qty: fill,
                maker: maker.id,
                taker: id,
                maker_remaining: maker.remaining,
                taker_remaining: remaining,
            });
            if maker.remaining == 0 {
                queue.pop_front();
            }
            if queue.is_empty() {
                queues.remove(&price);
            }
        }
        if remaining == 0 {
            return;
        }
        match arrival.limit {
            Some(price) if arrival.time_in_force == TimeInForce::Gtc && !stopped_by_self_trade => {
                let order = RefOrder {
                    id,
                    account: arrival.account,
                    side: arrival.side,
                    price,
                    remaining,
                    stp: arrival.stp(),
                    post_only: arrival.post_only,
                };
                self.queues_mut(arrival.side).entry(price).or_default().push_back(order);
            }
            _ => {
                let reason = if stopped_by_self_trade { CancelReason::SelfTrade } else { CancelReason::Unfilled };
                out.push(Life::Cancelled { order: id, remaining, reason });
            }
        }
    }

    fn amend(&mut self, account: u32, id: u64, price: Option<u64>, qty: Option<u64>, out: &mut Vec<Life>) {
        if price.is_none() && qty.is_none() {
            return out.push(Life::Rejected(RejectReason::InvalidOrder));
        }
        let Some(order) = self.find(id).filter(|order| order.account == account) else {
            return out.push(Life::Rejected(RejectReason::UnknownOrder));
        };
        let (new_price, new_qty) = (price.unwrap_or(order.price), qty.unwrap_or(order.remaining));
        if new_price == order.price && new_qty == order.remaining {
            return out.push(Life::Rejected(RejectReason::InvalidOrder));
        }
        if new_price == order.price && new_qty < order.remaining {
            let queue = self.queues_mut(order.side).get_mut(&order.price).expect("an order's level exists");
            let resting = queue.iter_mut().find(|other| other.id == id).expect("the order is in its level");
            resting.remaining = new_qty;
            return out.push(Life::Amended { order: id, price: new_price, qty: new_qty, priority_kept: true });
        }
        if order.post_only && self.crosses_on_arrival(order.side, Some(new_price)) {
            return out.push(Life::Rejected(RejectReason::PostOnlyWouldTake));
        }
        self.remove(id);
        out.push(Life::Amended { order: id, price: new_price, qty: new_qty, priority_kept: false });
        let arrival = Arrival {
            account,
            side: order.side,
            limit: Some(new_price),
            qty: new_qty,
            time_in_force: TimeInForce::Gtc,
            post_only: order.post_only,
            stp: Some(order.stp),
        };
        self.enter(id, &arrival, out);
    }
}

// ---------------------------------------------------------------------------------
// Random streams.
// ---------------------------------------------------------------------------------

#[derive(Clone, Copy, Debug)]
enum Kind {
    Gtc,
    Ioc,
    Fok,
    PostOnly,
    MarketIoc,
    MarketFok,
}

/// Which order a cancel or amend names.
#[derive(Clone, Copy, Debug)]
enum Target {
    /// One of the resting orders (index modulo their number).
    Resting(u16),
    /// Any id handed out so far, resting or not.
    Any(u16),
}

#[derive(Clone, Copy, Debug)]
enum Change {
    Price(i8),
    Qty(u64),
    Both(i8, u64),
    /// The remaining quantity minus this much (at least 1): keeps priority.
    Shrink(u64),
}

#[derive(Clone, Copy, Debug)]
enum Op {
    Place {
        account: u8,
        side: Side,
        kind: Kind,
        offset: i8,
        qty: u64,
        stp: Option<SelfTradePrevention>,
    },
    /// `by`: `None` for the order's owner, else an account number.
    Cancel {
        by: Option<u8>,
        target: Target,
    },
    Amend {
        by: Option<u8>,
        target: Target,
        change: Change,
    },
    CancelAll {
        account: u8,
        scoped: bool,
    },
}

/// A resting order as a stream needs to know it: (id, account, remaining).
type Pickable = (u64, u32, u64);

fn resolve(op: &Op, resting: &[Pickable], next_id: u64, accounts: u32) -> Action {
    let pick = |by: Option<u8>, target: Target| {
        let found = match target {
            Target::Resting(index) if !resting.is_empty() => Some(resting[usize::from(index) % resting.len()]),
            Target::Resting(_) => None,
            Target::Any(index) => {
                let id = 1 + u64::from(index) % next_id;
                Some(resting.iter().copied().find(|&(other, _, _)| other == id).unwrap_or((id, 0, 1)))
            }
        };
        let (order, owner, remaining) = found.unwrap_or((1, 0, 1));
        let account = by.map_or(owner, |by| u32::from(by) % accounts);
        (account, order, remaining)
    };
    match *op {
        Op::Place { account, side, kind, offset, qty, stp } => {
            let (limit, time_in_force, post_only) = match kind {
                Kind::Gtc => (Some(offset_price(offset)), TimeInForce::Gtc, false),
                Kind::Ioc => (Some(offset_price(offset)), TimeInForce::Ioc, false),
                Kind::Fok => (Some(offset_price(offset)), TimeInForce::Fok, false),
                Kind::PostOnly => (Some(offset_price(offset)), TimeInForce::Gtc, true),
                Kind::MarketIoc => (None, TimeInForce::Ioc, false),
                Kind::MarketFok => (None, TimeInForce::Fok, false),
            };
            let account = u32::from(account) % accounts;
            Action::Place(Arrival { account, side, limit, qty, time_in_force, post_only, stp })
        }
        Op::Cancel { by, target } => {
            let (account, order, _) = pick(by, target);
            Action::Cancel { account, order }
        }
        Op::Amend { by, target, change } => {
            let (account, order, remaining) = pick(by, target);
            let (price, qty) = match change {
                Change::Price(offset) => (Some(offset_price(offset)), None),
                Change::Qty(qty) => (None, Some(qty)),
                Change::Both(offset, qty) => (Some(offset_price(offset)), Some(qty)),
                Change::Shrink(less) => (None, Some(remaining.saturating_sub(less).max(1))),
            };
            Action::Amend { account, order, price, qty }
        }
        Op::CancelAll { account, scoped } => Action::CancelAll { account: u32::from(account) % accounts, scoped },
    }
}

fn side_strategy() -> impl Strategy<Value = Side> {
    prop_oneof![Just(Side::Buy), Just(Side::Sell)]
}

fn stp_strategy() -> impl Strategy<Value = Option<SelfTradePrevention>> {
    prop_oneof![
        Just(None),
        Just(Some(SelfTradePrevention::CancelTaker)),
        Just(Some(SelfTradePrevention::CancelMaker)),
        Just(Some(SelfTradePrevention::CancelBoth)),
    ]
}

fn kind_strategy() -> impl Strategy<Value = Kind> {
    prop_oneof![
        8 => Just(Kind::Gtc),
        2 => Just(Kind::Ioc),
        2 => Just(Kind::Fok),
        2 => Just(Kind::PostOnly),
        1 => Just(Kind::MarketIoc),
        1 => Just(Kind::MarketFok),
    ]
}

fn target_strategy() -> impl Strategy<Value = Target> {
    prop_oneof![5 => any::<u16>().prop_map(Target::Resting), 1 => any::<u16>().prop_map(Target::Any)]
}

fn offset_strategy() -> impl Strategy<Value = i8> {
    -PRICE_BAND..=PRICE_BAND
}

fn change_strategy() -> impl Strategy<Value = Change> {
    prop_oneof![
        offset_strategy().prop_map(Change::Price),
        (1..=QTY_MAX).prop_map(Change::Qty),
        (offset_strategy(), 1..=QTY_MAX).prop_map(|(offset, qty)| Change::Both(offset, qty)),
        (1..=QTY_MAX).prop_map(Change::Shrink),
    ]
}

fn op_strategy() -> impl Strategy<Value = Op> {
    let place = (0..ACCOUNTS_MAX, side_strategy(), kind_strategy(), offset_strategy(), 1..=QTY_MAX, stp_strategy())
        .prop_map(|(account, side, kind, offset, qty, stp)| Op::Place { account, side, kind, offset, qty, stp });
    let by = || prop_oneof![6 => Just(None), 1 => (0..ACCOUNTS_MAX).prop_map(Some)];
    let cancel = (by(), target_strategy()).prop_map(|(by, target)| Op::Cancel { by, target });
    let amend =
        (by(), target_strategy(), change_strategy()).prop_map(|(by, target, change)| Op::Amend { by, target, change });
    let cancel_all = (0..ACCOUNTS_MAX, any::<bool>()).prop_map(|(account, scoped)| Op::CancelAll { account, scoped });
    prop_oneof![16 => place, 2 => cancel, 4 => amend, 1 => cancel_all]
}

// ---------------------------------------------------------------------------------
// The engine, driven command by command.
// ---------------------------------------------------------------------------------

struct Driver {
    engine: Engine,
    seq: u64,
    keys: u128,
    events: Vec<Event>,
}

impl Driver {
    fn new(config: &str) -> Self {
        let config = Config::from_toml_str(config).expect("test configuration is valid");
        Self { engine: Engine::new(&config), seq: 0, keys: 0, events: Vec::new() }
    }

    /// Applies `command`; its events are in `self.events`.
    fn apply(&mut self, command: Command) {
        self.seq += 1;
        self.events.clear();
        let sequenced =
            SequencedCommand { seq: Seq::new(self.seq), timestamp: Timestamp::from_nanos(self.seq * 1_000), command };
        self.engine.apply(&sequenced, &mut self.events);
    }

    fn next_key(&mut self) -> IdempotencyKey {
        self.keys += 1;
        IdempotencyKey::new(self.keys)
    }

    fn open(&mut self, tier: u8) {
        let owner = OwnerId::new(self.seq + 1);
        let kyc_tier = KycTier::new(tier).expect("valid tier");
        self.apply(Command::OpenAccount(OpenAccount { owner, kyc_tier }));
    }

    fn deposit(&mut self, account: u32, asset: AssetId, minor_units: u64) {
        let key = self.next_key();
        let reference = Reference::new("deposit").expect("short reference");
        let (account, amount) = (AccountId::new(account), amount(minor_units));
        self.apply(Command::Deposit(Deposit { account, key, asset, amount, reference }));
    }

    fn view(&self) -> BookView {
        let market = self.engine.market(MARKET).expect("the market exists");
        book_view(market.book(), self.engine.orders())
    }

    /// Resting orders, by id.
    fn pickable(&self) -> Vec<Pickable> {
        let mut orders: Vec<Pickable> = self
            .engine
            .orders()
            .iter()
            .map(|(_, node)| (node.id().get(), node.account(), node.remaining().lots()))
            .collect();
        orders.sort_unstable();
        orders
    }
}

fn market_config(lot: u64, tick: u64, fees: &[(u16, u16)]) -> String {
    let fees: Vec<String> =
        fees.iter().map(|(maker, taker)| format!("{{ maker_bps = {maker}, taker_bps = {taker} }}")).collect();
    format!(
        "[[assets]]\ncode = \"BTC\"\nscale = 8\n[[assets]]\ncode = \"USD\"\nscale = 2\n\
         [[markets]]\nbase = \"BTC\"\nquote = \"USD\"\nlot = {lot}\ntick = {tick}\n\
         qty_min = 1\nqty_max = 1000000\nfees = [{}]\n",
        fees.join(", ")
    )
}

fn order_command(action: &Action) -> Command {
    match *action {
        Action::Place(arrival) => Command::PlaceOrder(PlaceOrder {
            by: AccountId::new(arrival.account),
            market: MARKET,
            side: arrival.side,
            price: arrival.limit.map(price),
            size: OrderSize::Qty(qty(arrival.qty)),
            time_in_force: arrival.time_in_force,
            post_only: arrival.post_only,
            stp: arrival.stp,
            client_order_id: None,
        }),
        Action::Cancel { account, order } => {
            Command::CancelOrder(CancelOrder { by: AccountId::new(account), order: OrderRef::Id(OrderId::new(order)) })
        }
        Action::Amend { account, order, price: new_price, qty: new_qty } => Command::AmendOrder(AmendOrder {
            by: AccountId::new(account),
            order: OrderRef::Id(OrderId::new(order)),
            price: new_price.map(price),
            qty: new_qty.map(qty),
        }),
        Action::CancelAll { account, scoped } => {
            Command::CancelAll(CancelAll { by: AccountId::new(account), market: scoped.then_some(MARKET) })
        }
    }
}

// ---------------------------------------------------------------------------------
// Differential: engine against the reference book.
// ---------------------------------------------------------------------------------

fn run_engine_differential(accounts: u8, fees: bool, ops: &[Op]) -> Result<(), TestCaseError> {
    let fees: &[(u16, u16)] = if fees { &[(10, 20)] } else { &[(0, 0)] };
    let mut driver = Driver::new(&market_config(1, 1, fees));
    for account in 0..u32::from(accounts) {
        driver.open(0);
        for asset in [BASE, QUOTE] {
            driver.deposit(account, asset, 1 << 40);
        }
    }
    let mut model = RefBook::new();
    for (step, op) in ops.iter().enumerate() {
        let resting: Vec<Pickable> =
            model.resting().iter().map(|order| (order.id, order.account, order.remaining)).collect();
        prop_assert_eq!(&driver.pickable(), &resting, "resting orders before step {}", step);
        let action = resolve(op, &resting, model.next_id, u32::from(accounts));
        let expected = model.apply(&action);
        driver.apply(order_command(&action));
        let actual = life_of(&driver.events);
        prop_assert_eq!(fills_of(&actual), fills_of(&expected), "fills at step {}: {:?}", step, action);
        prop_assert_eq!(&actual, &expected, "order events at step {}: {:?}", step, action);
        prop_assert_eq!(driver.view(), model.view(), "book after step {}: {:?}", step, action);
        driver.engine.check_invariants();
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn engine_matches_the_reference_book(
        accounts in 3..=ACCOUNTS_MAX,
        fees in any::<bool>(),
        ops in vec(op_strategy(), 1..500),
    ) {
        run_engine_differential(accounts, fees, &ops)?;
    }
}

// ---------------------------------------------------------------------------------
// Differential: the book alone (`Book`, `OrderSlab`, `take`, `walk`).
// ---------------------------------------------------------------------------------

/// Records fills and self-trade cancels as life-cycle entries.
struct Recorder<'a> {
    out: &'a mut Vec<Life>,
    taker: u64,
    taker_remaining: u64,
}

impl Fills for Recorder<'_> {
    fn fill(&mut self, maker: &mut OrderNode, qty: Qty) {
        self.taker_remaining -= qty.lots();
        self.out.push(Life::Trade {
            price: maker.price().ticks(),
            qty: qty.lots(),
            maker: maker.id().get(),
            taker: self.taker,
            maker_remaining: maker.remaining().lots() - qty.lots(),
            taker_remaining: self.taker_remaining,
        });
    }

    fn self_trade_cancel(&mut self, maker: &OrderNode) {
        let (order, remaining) = (maker.id().get(), maker.remaining().lots());
        self.out.push(Life::Cancelled { order, remaining, reason: CancelReason::SelfTrade });
    }
}

/// A bare book with the least glue that turns actions into book operations.
struct BareBook {
    book: Book,
    slab: OrderSlab,
    next_id: u64,
}

impl BareBook {
    fn new() -> Self {
        Self { book: Book::new(), slab: OrderSlab::with_capacity(64), next_id: 1 }
    }

    fn pickable(&self) -> Vec<Pickable> {
        let mut orders: Vec<Pickable> =
            self.slab.iter().map(|(_, node)| (node.id().get(), node.account(), node.remaining().lots())).collect();
        orders.sort_unstable();
        orders
    }

    fn crosses_on_arrival(&self, side: Side, limit: Price) -> bool {
        self.book.side(side.opposite()).best().is_some_and(|level| side.crosses(limit, level.price()))
    }

    fn apply(&mut self, action: &Action) -> Vec<Life> {
        let mut out = Vec::new();
        match *action {
            Action::Place(arrival) => self.place(&arrival, &mut out),
            Action::Cancel { account, order } => match self.find(account, order) {
                Some(node) => {
                    self.remove(&node);
                    let (order, remaining) = (node.id().get(), node.remaining().lots());
                    out.push(Life::Cancelled { order, remaining, reason: CancelReason::Requested });
                }
                None => out.push(Life::Rejected(RejectReason::UnknownOrder)),
            },
            Action::Amend { account, order, price, qty } => self.amend(account, order, price, qty, &mut out),
            Action::CancelAll { account, .. } => {
                let mut nodes: Vec<OrderNode> =
                    self.slab.account_orders(account).map(|slot| *self.slab.get(slot)).collect();
                nodes.sort_by_key(OrderNode::id);
                for node in nodes {
                    self.remove(&node);
                    let (order, remaining) = (node.id().get(), node.remaining().lots());
                    out.push(Life::Cancelled { order, remaining, reason: CancelReason::CancelAll });
                }
            }
        }
        out
    }

    fn find(&self, account: u32, order: u64) -> Option<OrderNode> {
        let slot = self.slab.find(OrderId::new(order))?;
        Some(*self.slab.get(slot)).filter(|node| node.account() == account)
    }

    fn remove(&mut self, node: &OrderNode) {
        let slot = self.slab.find(node.id()).expect("the order rests");
        self.book.side_mut(node.side()).unlink(&mut self.slab, slot);
        self.slab.remove(slot);
    }

    fn place(&mut self, arrival: &Arrival, out: &mut Vec<Life>) {
        if arrival.post_only && arrival.limit.is_some_and(|limit| self.crosses_on_arrival(arrival.side, price(limit))) {
            return out.push(Life::Rejected(RejectReason::PostOnlyWouldTake));
        }
        let id = self.next_id;
        self.next_id += 1;
        out.push(Life::Accepted { order: id });
        let taker = Taker {
            account: arrival.account,
            side: arrival.side,
            limit: arrival.limit.map(price),
            remaining: qty(arrival.qty),
            stp: arrival.stp(),
        };
        if arrival.time_in_force == TimeInForce::Fok {
            let mut fillable = 0;
            walk(&self.book, &self.slab, &taker, |_, offered| {
                fillable += offered.lots();
                offered
            });
            if fillable < arrival.qty {
                return out.push(Life::Cancelled {
                    order: id,
                    remaining: arrival.qty,
                    reason: CancelReason::FillOrKill,
                });
            }
        }
        self.run(id, taker, arrival.time_in_force == TimeInForce::Gtc, arrival.post_only, out);
    }

    fn run(&mut self, id: u64, mut taker: Taker, rests: bool, post_only: bool, out: &mut Vec<Life>) {
        let mut recorder = Recorder { out, taker: id, taker_remaining: taker.remaining.lots() };
        let end = take(&mut self.book, &mut self.slab, &mut taker, &mut recorder);
        if taker.remaining.is_zero() {
            return;
        }
        match taker.limit {
            Some(limit) if rests && end != MatchEnd::SelfTrade => {
                let slot = self.slab.insert(&NewOrder {
                    id: OrderId::new(id),
                    client_order_id: None,
                    account: taker.account,
                    market: MARKET,
                    side: taker.side,
                    price: limit,
                    remaining: taker.remaining,
                    held: 0,
                    maker_bps: 0,
                    taker_bps: 0,
                    stp: taker.stp,
                    post_only,
                });
                self.book.side_mut(taker.side).push_back(&mut self.slab, slot);
            }
            _ => {
                let reason = if end == MatchEnd::SelfTrade { CancelReason::SelfTrade } else { CancelReason::Unfilled };
                out.push(Life::Cancelled { order: id, remaining: taker.remaining.lots(), reason });
            }
        }
    }

    fn amend(&mut self, account: u32, order: u64, new_price: Option<u64>, new_qty: Option<u64>, out: &mut Vec<Life>) {
        if new_price.is_none() && new_qty.is_none() {
            return out.push(Life::Rejected(RejectReason::InvalidOrder));
        }
        let Some(node) = self.find(account, order) else {
            return out.push(Life::Rejected(RejectReason::UnknownOrder));
        };
        let limit = new_price.map_or(node.price(), price);
        let remaining = new_qty.map_or(node.remaining(), qty);
        if limit == node.price() && remaining == node.remaining() {
            return out.push(Life::Rejected(RejectReason::InvalidOrder));
        }
        let amended =
            |priority_kept| Life::Amended { order, price: limit.ticks(), qty: remaining.lots(), priority_kept };
        if limit == node.price() && remaining < node.remaining() {
            let slot = self.slab.find(node.id()).expect("the order rests");
            self.book.side_mut(node.side()).reduce(&mut self.slab, slot, node.remaining().minus(remaining));
            return out.push(amended(true));
        }
        if node.post_only() && self.crosses_on_arrival(node.side(), limit) {
            return out.push(Life::Rejected(RejectReason::PostOnlyWouldTake));
        }
        self.remove(&node);
        out.push(amended(false));
        let taker = Taker { account, side: node.side(), limit: Some(limit), remaining, stp: node.stp() };
        self.run(order, taker, true, node.post_only(), out);
    }
}

fn run_book_differential(accounts: u8, ops: &[Op]) -> Result<(), TestCaseError> {
    let mut bare = BareBook::new();
    let mut model = RefBook::new();
    for (step, op) in ops.iter().enumerate() {
        let resting: Vec<Pickable> =
            model.resting().iter().map(|order| (order.id, order.account, order.remaining)).collect();
        prop_assert_eq!(&bare.pickable(), &resting, "resting orders before step {}", step);
        let action = resolve(op, &resting, model.next_id, u32::from(accounts));
        let expected = model.apply(&action);
        let actual = bare.apply(&action);
        prop_assert_eq!(&actual, &expected, "book events at step {}: {:?}", step, action);
        prop_assert_eq!(book_view(&bare.book, &bare.slab), model.view(), "book after step {}: {:?}", step, action);
        bare.slab.check_invariants();
        prop_assert_eq!(
            bare.book.check_invariants(&bare.slab),
            bare.slab.len(),
            "orders in levels after step {}",
            step
        );
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn book_matches_the_reference_book(
        accounts in 2..=ACCOUNTS_MAX,
        ops in vec(op_strategy(), 1..500),
    ) {
        run_book_differential(accounts, &ops)?;
    }
}

// ---------------------------------------------------------------------------------
// Invariants where funds limit.
// ---------------------------------------------------------------------------------

#[derive(Clone, Copy, Debug)]
enum FundedOp {
    Book(Op),
    /// A market buy spending at most this much quote, fees included.
    Budget {
        account: u8,
        budget: u64,
    },
    Deposit {
        account: u8,
        base: bool,
        amount: u64,
    },
    Withdraw {
        account: u8,
        base: bool,
        amount: u64,
    },
    SetTier {
        account: u8,
        tier: u8,
    },
    Freeze {
        account: u8,
        frozen: bool,
    },
}

fn funded_op_strategy() -> impl Strategy<Value = FundedOp> {
    let account = || 0..ACCOUNTS_MAX;
    prop_oneof![
        20 => op_strategy().prop_map(FundedOp::Book),
        2 => (account(), 1..8_000_u64).prop_map(|(account, budget)| FundedOp::Budget { account, budget }),
        1 => (account(), any::<bool>(), 1..20_000_u64)
            .prop_map(|(account, base, amount)| FundedOp::Deposit { account, base, amount }),
        1 => (account(), any::<bool>(), 1..20_000_u64)
            .prop_map(|(account, base, amount)| FundedOp::Withdraw { account, base, amount }),
        1 => (account(), 0..=5_u8).prop_map(|(account, tier)| FundedOp::SetTier { account, tier }),
        1 => (account(), prop::bool::weighted(0.15)).prop_map(|(account, frozen)| FundedOp::Freeze { account, frozen }),
    ]
}

/// What the events say about one accepted order. Its fee rates are those of its
/// account's KYC tier when it was accepted, and stay with it (amends included).
#[derive(Clone, Copy, Debug)]
struct ShadowOrder {
    account: u32,
    side: Side,
    limit: Option<u64>,
    remaining: u64,
    /// A GTC limit order: what it does not fill rests.
    rests: bool,
    budget: bool,
    maker_bps: u16,
    taker_bps: u16,
}

/// The state the events describe, rebuilt from nothing but the events.
#[derive(Debug, Default)]
struct Shadow {
    tiers: Vec<u8>,
    /// Accepted orders not yet known to be gone.
    orders: BTreeMap<u64, ShadowOrder>,
    /// available + held per (account, asset).
    balances: BTreeMap<(u32, u16), i128>,
    /// Deposits minus withdrawals, per asset.
    inflow: [i128; 2],
    /// Fees the house collected, per asset.
    fees: [i128; 2],
    next_id: u64,
}

fn rate(tier: u8) -> (u16, u16) {
    FUNDED_FEES[usize::from(tier).min(FUNDED_FEES.len() - 1)]
}

fn fee(notional: u64, bps: u16) -> u64 {
    notional * u64::from(bps) / 10_000
}

impl Shadow {
    fn new() -> Self {
        Self { next_id: 1, ..Self::default() }
    }

    fn credit(&mut self, account: u32, asset: AssetId, delta: i128) {
        *self.balances.entry((account, asset.get())).or_default() += delta;
    }

    fn absorb(&mut self, events: &[Event]) -> Result<(), TestCaseError> {
        for event in events {
            self.absorb_one(event)?;
        }
        for (id, order) in &self.orders {
            prop_assert!(order.rests || order.remaining == 0, "order {} left unfilled without a cancel", id);
        }
        self.orders.retain(|_, order| order.remaining > 0);
        Ok(())
    }

    fn absorb_one(&mut self, event: &Event) -> Result<(), TestCaseError> {
        match *event {
            Event::AccountOpened { account, kyc_tier, .. } => {
                prop_assert_eq!(account.get() as usize, self.tiers.len());
                self.tiers.push(kyc_tier.get());
            }
            Event::KycTierChanged { account, kyc_tier } => self.tiers[account.get() as usize] = kyc_tier.get(),
            Event::Deposited { account, asset, amount, .. } => {
                self.credit(account.get(), asset, i128::from(amount.minor_units()));
                self.inflow[usize::from(asset.get())] += i128::from(amount.minor_units());
            }
            Event::Withdrawn { account, asset, amount, .. } => {
                self.credit(account.get(), asset, -i128::from(amount.minor_units()));
                self.inflow[usize::from(asset.get())] -= i128::from(amount.minor_units());
            }
            Event::OrderAccepted { order, account, side, price, qty, time_in_force, .. } => {
                prop_assert_eq!(order.get(), self.next_id, "order ids are handed out 1, 2, 3, ...");
                self.next_id += 1;
                let (maker_bps, taker_bps) = rate(self.tiers[account.get() as usize]);
                let shadow = ShadowOrder {
                    account: account.get(),
                    side,
                    limit: price.map(Price::ticks),
                    remaining: qty.lots(),
                    rests: price.is_some() && time_in_force == TimeInForce::Gtc,
                    budget: qty.is_zero(),
                    maker_bps,
                    taker_bps,
                };
                self.orders.insert(order.get(), shadow);
            }
            Event::Trade { .. } => self.trade(event)?,
            Event::OrderCancelled { order, remaining, .. } => {
                let shadow = self.orders.remove(&order.get());
                prop_assert!(shadow.is_some(), "order {} cancelled but not live", order);
                let shadow = shadow.expect("checked");
                let expected = if shadow.budget { 0 } else { shadow.remaining };
                prop_assert_eq!(remaining.lots(), expected, "order {} cancelled with what it had left", order);
            }
            Event::OrderAmended { order, price, qty, .. } => {
                let shadow = self.orders.get_mut(&order.get());
                prop_assert!(shadow.is_some(), "order {} amended but not live", order);
                let shadow = shadow.expect("checked");
                shadow.limit = Some(price.ticks());
                shadow.remaining = qty.lots();
            }
            _ => {}
        }
        Ok(())
    }

    fn trade(&mut self, event: &Event) -> Result<(), TestCaseError> {
        let Event::Trade {
            price,
            qty,
            taker_side,
            maker_order,
            taker_order,
            maker_account,
            taker_account,
            maker_fee,
            taker_fee,
            maker_remaining,
            taker_remaining,
            ..
        } = *event
        else {
            unreachable!("called with trades only")
        };
        let (price, lots) = (price.ticks(), qty.lots());
        let maker = self.orders.get(&maker_order.get()).copied();
        let taker = self.orders.get(&taker_order.get()).copied();
        prop_assert!(maker.is_some() && taker.is_some(), "trade between live orders: {:?}", event);
        let (mut maker, mut taker) = (maker.expect("checked"), taker.expect("checked"));
        prop_assert_eq!((maker.account, taker.account), (maker_account.get(), taker_account.get()));
        prop_assert!(maker.account != taker.account, "no self-trade: {:?}", event);
        prop_assert_eq!((maker.side, taker.side), (taker_side.opposite(), taker_side));
        prop_assert_eq!(maker.limit, Some(price), "fills at the maker's price");
        prop_assert!(would_trade(taker.side, taker.limit, price), "fills within the taker's limit");
        prop_assert!(lots > 0 && lots <= maker.remaining, "fill within the maker's remainder");
        maker.remaining -= lots;
        prop_assert_eq!(maker_remaining.lots(), maker.remaining);
        if !taker.budget {
            prop_assert!(lots <= taker.remaining, "fill within the taker's remainder");
            taker.remaining -= lots;
            prop_assert_eq!(taker_remaining.lots(), taker.remaining);
        }
        let notional = price * lots * FUNDED_TICK;
        let base = lots * FUNDED_LOT;
        prop_assert_eq!(maker_fee.minor_units(), fee(notional, maker.maker_bps), "maker fee");
        prop_assert_eq!(taker_fee.minor_units(), fee(notional, taker.taker_bps), "taker fee");
        let (maker_fee, taker_fee) = (i128::from(maker_fee.minor_units()), i128::from(taker_fee.minor_units()));
        let (notional, base) = (i128::from(notional), i128::from(base));
        let (buyer, seller, buyer_fee, seller_fee) = match taker.side {
            Side::Buy => (taker.account, maker.account, taker_fee, maker_fee),
            Side::Sell => (maker.account, taker.account, maker_fee, taker_fee),
        };
        self.credit(buyer, BASE, base);
        self.credit(buyer, QUOTE, -(notional + buyer_fee));
        self.credit(seller, BASE, -base);
        self.credit(seller, QUOTE, notional - seller_fee);
        self.fees[usize::from(QUOTE.get())] += maker_fee + taker_fee;
        self.orders.insert(maker_order.get(), maker);
        self.orders.insert(taker_order.get(), taker);
        Ok(())
    }

    fn pickable(&self) -> Vec<Pickable> {
        self.orders.iter().map(|(&id, order)| (id, order.account, order.remaining)).collect()
    }

    /// What the account's resting orders reserve of `asset`.
    fn expected_held(&self, account: u32, asset: AssetId) -> u64 {
        self.orders
            .values()
            .filter(|order| order.account == account)
            .map(|order| match order.side {
                Side::Buy if asset == QUOTE => {
                    let limit = order.limit.expect("resting orders have a price");
                    let notional = limit * order.remaining * FUNDED_TICK;
                    notional + fee(notional, order.maker_bps.max(order.taker_bps))
                }
                Side::Sell if asset == BASE => order.remaining * FUNDED_LOT,
                Side::Buy | Side::Sell => 0,
            })
            .sum()
    }
}

fn funded_command(op: &FundedOp, shadow: &Shadow, driver: &mut Driver) -> Command {
    let accounts = shadow.tiers.len() as u32;
    let account = |number: u8| AccountId::new(u32::from(number) % accounts);
    let asset = |base: bool| if base { BASE } else { QUOTE };
    let reference = Reference::new("funded").expect("short reference");
    match *op {
        FundedOp::Book(op) => order_command(&resolve(&op, &shadow.pickable(), shadow.next_id, accounts)),
        FundedOp::Budget { account: number, budget } => Command::PlaceOrder(PlaceOrder {
            by: account(number),
            market: MARKET,
            side: Side::Buy,
            price: None,
            size: OrderSize::QuoteBudget(amount(budget)),
            time_in_force: TimeInForce::Ioc,
            post_only: false,
            stp: None,
            client_order_id: None,
        }),
        FundedOp::Deposit { account: number, base, amount: minor_units } => Command::Deposit(Deposit {
            account: account(number),
            key: driver.next_key(),
            asset: asset(base),
            amount: amount(minor_units),
            reference,
        }),
        FundedOp::Withdraw { account: number, base, amount: minor_units } => Command::Withdraw(Withdraw {
            account: account(number),
            key: driver.next_key(),
            asset: asset(base),
            amount: amount(minor_units),
            reference,
        }),
        FundedOp::SetTier { account: number, tier } => Command::SetKycTier(SetKycTier {
            account: account(number),
            kyc_tier: KycTier::new(tier).expect("valid tier"),
        }),
        FundedOp::Freeze { account: number, frozen: true } => {
            Command::FreezeAccount(FreezeAccount { account: account(number) })
        }
        FundedOp::Freeze { account: number, frozen: false } => {
            Command::UnfreezeAccount(UnfreezeAccount { account: account(number) })
        }
    }
}

/// Every check of the funded property, from the events (`shadow`) and the public book.
fn check_funded(engine: &Engine, shadow: &Shadow) -> Result<(), TestCaseError> {
    engine.check_invariants();
    let book = engine.market(MARKET).expect("the market exists").book();
    if let (Some(bid), Some(ask)) = (book.best_bid(), book.best_ask()) {
        prop_assert!(bid.price() < ask.price(), "best bid {} below best ask {}", bid.price(), ask.price());
    }
    let mut in_book: Vec<(u64, u32, Side, u64, u64)> = engine
        .orders()
        .iter()
        .map(|(_, node)| (node.id().get(), node.account(), node.side(), node.price().ticks(), node.remaining().lots()))
        .collect();
    in_book.sort_unstable();
    let from_events: Vec<(u64, u32, Side, u64, u64)> = shadow
        .orders
        .iter()
        .map(|(&id, order)| (id, order.account, order.side, order.limit.unwrap_or(0), order.remaining))
        .collect();
    prop_assert_eq!(in_book, from_events, "the book holds what the events left resting");
    let view = book_view(book, engine.orders());
    let in_levels: usize = view.iter().flatten().map(|(_, fifo)| fifo.len()).sum();
    prop_assert_eq!(in_levels, shadow.orders.len(), "every resting order is in a level");
    let mut sums = [0_i128; 2];
    for account in 0..shadow.tiers.len() as u32 {
        for asset in [BASE, QUOTE] {
            let balance = engine.balance(AccountId::new(account), asset).expect("the account exists");
            let expected_held = shadow.expected_held(account, asset);
            prop_assert_eq!(balance.held().minor_units(), expected_held, "held of {} asset {:?}", account, asset);
            let total = i128::from(balance.total().minor_units());
            let expected_total = shadow.balances.get(&(account, asset.get())).copied().unwrap_or(0);
            prop_assert_eq!(total, expected_total, "balance of {} asset {:?}", account, asset);
            sums[usize::from(asset.get())] += total;
        }
    }
    for asset in [BASE, QUOTE] {
        let index = usize::from(asset.get());
        let fees = i128::from(engine.totals()[index].fees().minor_units());
        prop_assert_eq!(fees, shadow.fees[index], "house fees of asset {:?}", asset);
        prop_assert_eq!(sums[index] + fees, shadow.inflow[index], "conservation of asset {:?}", asset);
    }
    Ok(())
}

/// Per account: KYC tier, quote deposit, base deposit.
fn funded_accounts_strategy() -> impl Strategy<Value = Vec<(u8, u64, u64)>> {
    vec((0..=4_u8, 0..60_000_u64, 0..4_000_u64), 3..=6)
}

fn run_funded(accounts: &[(u8, u64, u64)], ops: &[FundedOp]) -> Result<(), TestCaseError> {
    let mut driver = Driver::new(&market_config(FUNDED_LOT, FUNDED_TICK, &FUNDED_FEES));
    let mut shadow = Shadow::new();
    for (number, &(tier, quote, base)) in (0_u32..).zip(accounts) {
        driver.open(tier);
        shadow.absorb(&driver.events)?;
        for (asset, minor_units) in [(QUOTE, quote), (BASE, base)] {
            if minor_units > 0 {
                driver.deposit(number, asset, minor_units);
                shadow.absorb(&driver.events)?;
            }
        }
    }
    check_funded(&driver.engine, &shadow)?;
    for (step, op) in ops.iter().enumerate() {
        let command = funded_command(op, &shadow, &mut driver);
        driver.apply(command);
        shadow.absorb(&driver.events)?;
        check_funded(&driver.engine, &shadow).map_err(|error| {
            TestCaseError::fail(format!("after step {step} ({op:?}): {error}\nevents: {:#?}", driver.events))
        })?;
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn funded_streams_keep_every_invariant(
        accounts in funded_accounts_strategy(),
        ops in vec(funded_op_strategy(), 1..500),
    ) {
        run_funded(&accounts, &ops)?;
    }
}

// ---------------------------------------------------------------------------------
// Hand-checked examples and regressions.
// ---------------------------------------------------------------------------------

fn limit_order(account: u32, side: Side, limit: u64, lots: u64, time_in_force: TimeInForce) -> Arrival {
    Arrival { account, side, limit: Some(limit), qty: lots, time_in_force, post_only: false, stp: None }
}

/// The reference book and the bare book, against answers worked out by hand: price
/// then time priority across levels, each self-trade policy, a fill-or-kill kill, a
/// post-only rejection, and both kinds of amend.
#[test]
fn reference_and_bare_books_give_the_hand_checked_answers() {
    use CancelReason::{FillOrKill, SelfTrade};
    use Life::{Accepted, Amended, Cancelled, Rejected, Trade};
    use Side::{Buy, Sell};
    use TimeInForce::{Fok, Gtc, Ioc};
    let trade = |price, qty, maker, taker, maker_remaining, taker_remaining| Trade {
        price,
        qty,
        maker,
        taker,
        maker_remaining,
        taker_remaining,
    };
    let steps: Vec<(Action, Vec<Life>)> = vec![
        (Action::Place(limit_order(0, Buy, 100, 2, Gtc)), vec![Accepted { order: 1 }]),
        (Action::Place(limit_order(1, Buy, 100, 3, Gtc)), vec![Accepted { order: 2 }]),
        (Action::Place(limit_order(0, Buy, 101, 1, Gtc)), vec![Accepted { order: 3 }]),
        (
            Action::Place(limit_order(2, Sell, 100, 4, Ioc)),
            vec![
                Accepted { order: 4 },
                trade(101, 1, 3, 4, 0, 3),
                trade(100, 2, 1, 4, 0, 1),
                trade(100, 1, 2, 4, 2, 0),
            ],
        ),
        (
            Action::Place(limit_order(1, Sell, 100, 5, Gtc)),
            vec![Accepted { order: 5 }, Cancelled { order: 5, remaining: 5, reason: SelfTrade }],
        ),
        (
            Action::Place(Arrival { stp: Some(SelfTradePrevention::CancelMaker), ..limit_order(1, Sell, 99, 5, Gtc) }),
            vec![Accepted { order: 6 }, Cancelled { order: 2, remaining: 2, reason: SelfTrade }],
        ),
        (
            Action::Place(limit_order(0, Buy, 99, 6, Fok)),
            vec![Accepted { order: 7 }, Cancelled { order: 7, remaining: 6, reason: FillOrKill }],
        ),
        (
            Action::Place(Arrival { post_only: true, ..limit_order(0, Buy, 99, 1, Gtc) }),
            vec![Rejected(RejectReason::PostOnlyWouldTake)],
        ),
        (Action::Amend { account: 0, order: 6, price: None, qty: Some(3) }, vec![Rejected(RejectReason::UnknownOrder)]),
        (
            Action::Amend { account: 1, order: 6, price: None, qty: Some(3) },
            vec![Amended { order: 6, price: 99, qty: 3, priority_kept: true }],
        ),
        (Action::Place(limit_order(2, Buy, 98, 1, Gtc)), vec![Accepted { order: 8 }]),
        (
            Action::Amend { account: 1, order: 6, price: Some(98), qty: None },
            vec![Amended { order: 6, price: 98, qty: 3, priority_kept: false }, trade(98, 1, 8, 6, 0, 2)],
        ),
    ];
    let mut model = RefBook::new();
    let mut bare = BareBook::new();
    for (action, expected) in &steps {
        assert_eq!(&model.apply(action), expected, "reference book: {action:?}");
        assert_eq!(&bare.apply(action), expected, "bare book: {action:?}");
    }
    let expected: BookView = [vec![], vec![(98, vec![(6, 2)])]];
    assert_eq!(model.view(), expected);
    assert_eq!(book_view(&bare.book, &bare.slab), expected);
}

/// A taker sell that fills a resting buy never credited the buyer (the maker) with the
/// base it bought: `settle_taker_sell` took the seller's base and credited nobody, so
/// base vanished and the engine's own conservation assert fired on the first such trade.
#[test]
fn a_sell_into_a_resting_buy_credits_the_buyer_with_base() {
    let mut driver = Driver::new(&market_config(1, 1, &[(0, 0)]));
    for account in 0..2 {
        driver.open(0);
        driver.deposit(account, BASE, 1_000);
        driver.deposit(account, QUOTE, 1_000);
    }
    driver.apply(order_command(&Action::Place(limit_order(0, Side::Buy, 100, 1, TimeInForce::Gtc))));
    driver.apply(order_command(&Action::Place(limit_order(1, Side::Sell, 100, 1, TimeInForce::Gtc))));
    let fills = fills_of(&life_of(&driver.events));
    assert_eq!(fills, vec![(100, 1, 1, 2)]);
    let total = |account, asset| driver.engine.balance(AccountId::new(account), asset).map(|b| b.total().minor_units());
    assert_eq!((total(0, BASE), total(0, QUOTE)), (Some(1_001), Some(900)), "the buyer");
    assert_eq!((total(1, BASE), total(1, QUOTE)), (Some(999), Some(1_100)), "the seller");
    driver.engine.check_invariants();
}

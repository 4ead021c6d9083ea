//! Exchange tests of the engine: units, holds and fees, settlement of fills, time in
//! force, client order ids, cancel, cancel-all and amend, self-trade prevention, every
//! rejection an order command can produce, market data, and market configuration.
//!
//! Every command goes through `Bench::apply`, which after each step runs
//! `Engine::check_invariants` (conservation, holds equal to what resting orders
//! reserve, uncrossed books), checks that each market's `market_seq` grows by exactly
//! one per `Trade` and `BookChanged` event, and rebuilds every book from the
//! `BookChanged` events alone to compare it with the engine's levels. Every rejection
//! goes through `Bench::rejects`, which checks that the command changed nothing against
//! a twin engine that saw a `Tick` with the same stamp instead (order commands have no
//! idempotency record).
//!
//! `RejectReason::CapacityExceeded` is not covered: the bounds it guards (orders open
//! across the engine, price levels per side, markets) are far too large to fill here.
//!
//! Units in the BTC/USD market: a lot is 0.0001 BTC (10 000 sat) and a tick is one
//! cent per lot, so `price × qty` is the quote amount in cents.

use std::collections::BTreeMap;

use bourse_core::Engine;
use bourse_core::book::{ClientOrderId, MarketId, OrderId, Price, Qty, SelfTradePrevention, Side, TimeInForce};
use bourse_core::command::{
    AddMarket, AmendOrder, CancelAll, CancelOrder, Command, Deposit, FreezeAccount, OpenAccount, OrderRef, OrderSize,
    PlaceOrder, SequencedCommand,
};
use bourse_core::config::{Config, ConfigError};
use bourse_core::event::{CancelReason, Event, RejectReason};
use bourse_core::ids::{AccountId, AssetId, IdempotencyKey, KycTier, OwnerId, Reference, Seq, Timestamp};
use bourse_core::limits::{ORDERS_PER_ACCOUNT_MAX, PRICE_TICKS_MAX};
use bourse_core::market::{FeeRate, FeeSchedule, MarketError, MarketSpec, PriceError};
use bourse_core::money::Amount;

const ASSETS_TOML: &str = r#"
[[assets]]
code = "BTC"
scale = 8
[[assets]]
code = "USD"
scale = 2
[[assets]]
code = "EUR"
scale = 2
"#;

/// BTC/USD: a lot is 0.0001 BTC, a tick 1 cent per lot (100 USD per BTC).
/// EUR/USD: a lot is 100 EUR, a tick 1 cent per lot (0.0001 USD per EUR).
const MARKETS_TOML: &str = r#"
[[markets]]
base = "BTC"
quote = "USD"
lot = 10000
tick = 1
qty_min = 1
qty_max = 1000000
fees = [{ maker_bps = 10, taker_bps = 20 }, { maker_bps = 5, taker_bps = 10 }]

[[markets]]
base = "EUR"
quote = "USD"
lot = 10000
tick = 1
qty_min = 5
qty_max = 100000
fees = [{ maker_bps = 1, taker_bps = 2 }]
"#;

const BTC: AssetId = AssetId::new(0);
const USD: AssetId = AssetId::new(1);
const EUR: AssetId = AssetId::new(2);
const BTC_USD: MarketId = MarketId::new(0);
const EUR_USD: MarketId = MarketId::new(1);
/// Not configured.
const NO_MARKET: MarketId = MarketId::new(7);
/// Never opened.
const NOBODY: AccountId = AccountId::new(999);
/// Satoshis in one BTC/USD lot.
const LOT: u64 = 10_000;
/// Command time of the first command.
const START: u64 = 1_700_000_000_000_000_000;

// ---------------------------------------------------------------------------------
// The bench: an engine, its sequencer, a market-data client, and the checks run after
// every step.
// ---------------------------------------------------------------------------------

#[derive(Clone)]
struct Bench {
    engine: Engine,
    seq: u64,
    owners: u64,
    keys: u128,
    /// Every book as a market-data client rebuilds it from `BookChanged` alone.
    mirror: BTreeMap<(MarketId, Side, Price), (Qty, u32)>,
    /// The last `market_seq` seen, per market.
    market_seqs: Vec<u64>,
}

impl Bench {
    fn new() -> Self {
        let config = Config::from_toml_str(&format!("{ASSETS_TOML}{MARKETS_TOML}")).expect("test config is valid");
        let engine = Engine::new(&config);
        for (code, id) in [("BTC", BTC), ("USD", USD), ("EUR", EUR)] {
            assert_eq!(engine.assets().find(code).map(|(found, _)| found), Some(id));
        }
        Self { engine, seq: 0, owners: 0, keys: 0, mirror: BTreeMap::new(), market_seqs: Vec::new() }
    }

    /// Applies `command` with the next sequence number, runs every check, and returns
    /// the events.
    fn apply(&mut self, command: Command) -> Vec<Event> {
        let events = self.apply_unchecked(command);
        self.engine.check_invariants();
        events
    }

    /// As `apply`, without the O(n) `check_invariants` (for loops of thousands of
    /// orders, which check them every so often instead). Market data is still checked.
    fn apply_unchecked(&mut self, command: Command) -> Vec<Event> {
        self.seq += 1;
        let timestamp = Timestamp::from_nanos(START + self.seq);
        let sequenced = SequencedCommand { seq: Seq::new(self.seq), timestamp, command };
        let mut events = Vec::new();
        self.engine.apply(&sequenced, &mut events);
        self.follow_market_data(&events);
        events
    }

    /// Plays the market-data client: no gap or repeat in any market's sequence, and
    /// the levels rebuilt from `BookChanged` are exactly the engine's.
    fn follow_market_data(&mut self, events: &[Event]) {
        self.market_seqs.resize(self.engine.markets().len(), 0);
        for event in events {
            let (market, market_seq) = match *event {
                Event::Trade { market, market_seq, .. } => (market, market_seq),
                Event::BookChanged { market, market_seq, side, price, total, orders } => {
                    assert_eq!(total.is_zero(), orders == 0, "a level is empty exactly when it has no orders");
                    if orders == 0 {
                        self.mirror.remove(&(market, side, price));
                    } else {
                        self.mirror.insert((market, side, price), (total, orders));
                    }
                    (market, market_seq)
                }
                _ => continue,
            };
            let last = &mut self.market_seqs[market.get() as usize];
            assert_eq!(market_seq, *last + 1, "market {market}: market data skipped or repeated a number");
            *last = market_seq;
        }
        let mut levels = BTreeMap::new();
        for (index, market) in self.engine.markets().iter().enumerate() {
            let id = MarketId::new(index as u32);
            assert_eq!(market.market_seq(), self.market_seqs[index], "market {id}: sequence published");
            for side in [Side::Buy, Side::Sell] {
                for level in market.book().side(side).levels() {
                    levels.insert((id, side, level.price()), (level.total(), level.count()));
                }
            }
        }
        assert_eq!(self.mirror, levels, "the book rebuilt from market data is the engine's");
    }

    /// Applies a command that must be rejected for `reason` and change nothing.
    fn rejects(&mut self, command: Command, reason: RejectReason) {
        let kind = command.kind();
        let mut twin = self.clone();
        twin.apply(Command::Tick);
        assert_eq!(self.apply(command), [Event::Rejected { kind, reason }]);
        assert_eq!(self.engine.state_hash(), twin.engine.state_hash(), "a rejected {kind:?} changed the state");
    }

    fn open(&mut self, tier: u8) -> AccountId {
        self.owners += 1;
        let kyc_tier = KycTier::new(tier).expect("a valid tier");
        match self.apply(Command::OpenAccount(OpenAccount { owner: OwnerId::new(self.owners), kyc_tier }))[..] {
            [Event::AccountOpened { account, .. }] => account,
            ref events => panic!("account not opened: {events:?}"),
        }
    }

    fn fund(&mut self, account: AccountId, asset: AssetId, minor_units: u64) {
        self.keys += 1;
        let reference = Reference::new("wire").expect("a valid reference");
        let deposit =
            Deposit { account, key: IdempotencyKey::new(self.keys), asset, amount: amount(minor_units), reference };
        let events = self.apply(Command::Deposit(deposit));
        assert!(matches!(events[0], Event::Deposited { .. }), "deposit refused: {events:?}");
    }

    /// A new account of `tier` holding `minor_units` of `asset`.
    fn trader(&mut self, tier: u8, asset: AssetId, minor_units: u64) -> AccountId {
        let account = self.open(tier);
        self.fund(account, asset, minor_units);
        account
    }

    /// Places an order that must be accepted; returns its id and the events.
    fn place(&mut self, order: PlaceOrder) -> (OrderId, Vec<Event>) {
        let events = self.apply(Command::PlaceOrder(order));
        match events.first() {
            Some(&Event::OrderAccepted { order, .. }) => (order, events),
            _ => panic!("order refused: {events:?}"),
        }
    }

    /// Places a BTC/USD GTC limit order that must rest in full without trading.
    fn rest(&mut self, by: AccountId, side: Side, price: u64, qty: u64) -> OrderId {
        self.rest_order(limit(by, side, price, qty))
    }

    fn rest_order(&mut self, order: PlaceOrder) -> OrderId {
        let (id, events) = self.place(order);
        assert!(fills(&events).is_empty() && cancels(&events).is_empty(), "order did not rest: {events:?}");
        id
    }

    fn cancel(&mut self, by: AccountId, order: OrderRef) -> Vec<Event> {
        self.apply(Command::CancelOrder(CancelOrder { by, order }))
    }

    fn amend(&mut self, by: AccountId, order: OrderId, price: Option<u64>, qty: Option<u64>) -> Vec<Event> {
        self.apply(amend(by, OrderRef::Id(order), price, qty))
    }

    fn available(&self, account: AccountId, asset: AssetId) -> u64 {
        self.engine.balance(account, asset).expect("account exists").available().minor_units()
    }

    fn held(&self, account: AccountId, asset: AssetId) -> u64 {
        self.engine.balance(account, asset).expect("account exists").held().minor_units()
    }

    /// What the house has collected in `asset`.
    fn fees(&self, asset: AssetId) -> u64 {
        self.engine.totals()[usize::from(asset.get())].fees().minor_units()
    }

    /// The levels of one side, best first: (price, total lots, orders).
    fn levels(&self, market: MarketId, side: Side) -> Vec<(u64, u64, u32)> {
        let book = self.engine.market(market).expect("market exists").book();
        book.side(side).levels().map(|level| (level.price().ticks(), level.total().lots(), level.count())).collect()
    }
}

// ---------------------------------------------------------------------------------
// Commands and views of events.
// ---------------------------------------------------------------------------------

fn price(ticks: u64) -> Price {
    Price::new(ticks).expect("a valid price")
}

fn qty(lots: u64) -> Qty {
    Qty::new(lots).expect("a valid quantity")
}

fn amount(minor_units: u64) -> Amount {
    Amount::new(minor_units).expect("a valid amount")
}

fn client(id: u128) -> ClientOrderId {
    ClientOrderId::new(id).expect("a non-zero client order id")
}

/// A BTC/USD GTC limit order.
fn limit(by: AccountId, side: Side, price_ticks: u64, lots: u64) -> PlaceOrder {
    PlaceOrder {
        by,
        market: BTC_USD,
        side,
        price: Some(price(price_ticks)),
        size: OrderSize::Qty(qty(lots)),
        time_in_force: TimeInForce::Gtc,
        post_only: false,
        stp: None,
        client_order_id: None,
    }
}

/// A BTC/USD IOC market order by quantity.
fn market_order(by: AccountId, side: Side, lots: u64) -> PlaceOrder {
    PlaceOrder { price: None, time_in_force: TimeInForce::Ioc, ..limit(by, side, 1, lots) }
}

/// A BTC/USD market buy spending at most `budget` cents, fees included.
fn budget_buy(by: AccountId, budget: u64) -> PlaceOrder {
    PlaceOrder { size: OrderSize::QuoteBudget(amount(budget)), ..market_order(by, Side::Buy, 1) }
}

fn amend(by: AccountId, order: OrderRef, price_ticks: Option<u64>, lots: Option<u64>) -> Command {
    Command::AmendOrder(AmendOrder { by, order, price: price_ticks.map(price), qty: lots.map(qty) })
}

fn cancel_all(by: AccountId, market: Option<MarketId>) -> Command {
    Command::CancelAll(CancelAll { by, market })
}

/// One `Trade` event, in integers.
#[derive(Debug, PartialEq, Eq)]
struct Fill {
    maker: OrderId,
    taker: OrderId,
    price: u64,
    qty: u64,
    maker_fee: u64,
    taker_fee: u64,
}

fn fills(events: &[Event]) -> Vec<Fill> {
    events
        .iter()
        .filter_map(|event| match *event {
            Event::Trade { maker_order, taker_order, price, qty, maker_fee, taker_fee, .. } => Some(Fill {
                maker: maker_order,
                taker: taker_order,
                price: price.ticks(),
                qty: qty.lots(),
                maker_fee: maker_fee.minor_units(),
                taker_fee: taker_fee.minor_units(),
            }),
            _ => None,
        })
        .collect()
}

/// Every `OrderCancelled`: (order, lots remaining, reason).
fn cancels(events: &[Event]) -> Vec<(OrderId, u64, CancelReason)> {
    events
        .iter()
        .filter_map(|event| match *event {
            Event::OrderCancelled { order, remaining, reason, .. } => Some((order, remaining.lots(), reason)),
            _ => None,
        })
        .collect()
}

/// The `OrderAmended` event: (order, price, lots, priority kept).
fn amended(events: &[Event]) -> Option<(OrderId, u64, u64, bool)> {
    events.iter().find_map(|event| match *event {
        Event::OrderAmended { order, price, qty, priority_kept, .. } => {
            Some((order, price.ticks(), qty.lots(), priority_kept))
        }
        _ => None,
    })
}

/// Market data of one command, in order.
#[derive(Debug, PartialEq, Eq)]
enum Feed {
    Trade { market_seq: u64, price: u64, qty: u64 },
    Level { market_seq: u64, side: Side, price: u64, total: u64, orders: u32 },
}

fn feed(events: &[Event]) -> Vec<Feed> {
    events
        .iter()
        .filter_map(|event| match *event {
            Event::Trade { market_seq, price, qty, .. } => {
                Some(Feed::Trade { market_seq, price: price.ticks(), qty: qty.lots() })
            }
            Event::BookChanged { market_seq, side, price, total, orders, .. } => {
                Some(Feed::Level { market_seq, side, price: price.ticks(), total: total.lots(), orders })
            }
            _ => None,
        })
        .collect()
}

// ---------------------------------------------------------------------------------
// Units, holds, fees and settlement.
// ---------------------------------------------------------------------------------

#[test]
fn a_fill_moves_base_and_quote_at_the_makers_price_and_fees_go_to_the_house() {
    let mut t = Bench::new();
    let seller = t.trader(0, BTC, 100 * LOT);
    let buyer = t.trader(0, USD, 100_000);
    let sell = t.rest(seller, Side::Sell, 650, 100);
    assert_eq!((t.available(seller, BTC), t.held(seller, BTC)), (0, 100 * LOT));

    // A buy at 660 fills at the maker's 650: 60 lots × 650 = 39 000 cents; maker fee
    // 10 bps = 39, taker fee 20 bps = 78.
    let (buy, events) = t.place(limit(buyer, Side::Buy, 660, 60));
    let fill = Fill { maker: sell, taker: buy, price: 650, qty: 60, maker_fee: 39, taker_fee: 78 };
    assert_eq!(fills(&events), [fill]);
    assert!(events.iter().any(|event| matches!(
        *event,
        Event::Trade { maker_account, taker_account, taker_side: Side::Buy, maker_remaining, taker_remaining, .. }
            if maker_account == seller && taker_account == buyer
                && maker_remaining == qty(40) && taker_remaining == Qty::ZERO
    )));

    assert_eq!((t.available(buyer, BTC), t.available(buyer, USD), t.held(buyer, USD)), (60 * LOT, 100_000 - 39_078, 0));
    assert_eq!((t.available(seller, BTC), t.held(seller, BTC)), (0, 40 * LOT));
    assert_eq!(t.available(seller, USD), 39_000 - 39);
    assert_eq!((t.fees(USD), t.fees(BTC)), (117, 0));
    assert_eq!(t.levels(BTC_USD, Side::Sell), [(650, 40, 1)]);
    assert!(t.levels(BTC_USD, Side::Buy).is_empty());
    assert_eq!(t.engine.market(BTC_USD).and_then(bourse_core::market::Market::last_price), Some(price(650)));
}

#[test]
fn fees_follow_the_kyc_tier_and_round_down_on_each_fill() {
    let mut t = Bench::new();
    let seller = t.trader(1, BTC, 6 * LOT);
    // Tier 7 is past the schedule's last tier, so it pays tier 1's 5/10 bps.
    let buyer_tier_7 = t.trader(7, USD, 10_000);
    let buyer_tier_0 = t.trader(0, USD, 10_000);
    let sell = t.rest(seller, Side::Sell, 651, 6);

    // 3 lots at 651 = 1953 cents. Tier 1 maker: 5 bps = 0.97 → 0 on each fill (on the
    // 3906 of both fills together it would have been 1).
    let (first, events) = t.place(limit(buyer_tier_7, Side::Buy, 651, 3));
    assert_eq!(fills(&events), [Fill { maker: sell, taker: first, price: 651, qty: 3, maker_fee: 0, taker_fee: 1 }]);
    let (second, events) = t.place(limit(buyer_tier_0, Side::Buy, 651, 3));
    assert_eq!(fills(&events), [Fill { maker: sell, taker: second, price: 651, qty: 3, maker_fee: 0, taker_fee: 3 }]);

    assert_eq!(t.available(seller, USD), 3_906);
    assert_eq!(t.available(buyer_tier_7, USD), 10_000 - 1_954);
    assert_eq!(t.available(buyer_tier_0, USD), 10_000 - 1_956);
    assert_eq!(t.fees(USD), 4);
}

#[test]
fn a_limit_buy_holds_its_notional_plus_the_higher_of_its_two_fees() {
    let mut t = Bench::new();
    // Tier 0: 65 000 + 20 bps (the taker fee, the higher) = 65 130.
    let buyer = t.trader(0, USD, 65_129);
    t.rejects(Command::PlaceOrder(limit(buyer, Side::Buy, 650, 100)), RejectReason::InsufficientFunds);
    t.fund(buyer, USD, 1);
    t.rest(buyer, Side::Buy, 650, 100);
    assert_eq!((t.available(buyer, USD), t.held(buyer, USD)), (0, 65_130));

    // Tier 1: 65 000 + 10 bps.
    let tier_1 = t.trader(1, USD, 100_000);
    t.rest(tier_1, Side::Buy, 650, 100);
    assert_eq!(t.held(tier_1, USD), 65_065);

    // A market whose maker fee is the higher: 65 000 + 30 bps.
    let events = t.apply(Command::AddMarket(AddMarket { spec: spec(BTC, EUR, 30, 10) }));
    let [Event::MarketAdded { market: btc_eur, .. }] = events[..] else { panic!("market not added: {events:?}") };
    let euro_buyer = t.trader(0, EUR, 100_000);
    t.rest_order(PlaceOrder { market: btc_eur, ..limit(euro_buyer, Side::Buy, 650, 100) });
    assert_eq!(t.held(euro_buyer, EUR), 65_195);
}

#[test]
fn a_limit_sell_holds_its_lots_of_base() {
    let mut t = Bench::new();
    let seller = t.trader(0, BTC, 7 * LOT - 1);
    t.rejects(Command::PlaceOrder(limit(seller, Side::Sell, 650, 7)), RejectReason::InsufficientFunds);
    t.fund(seller, BTC, 1);
    t.rest(seller, Side::Sell, 650, 7);
    assert_eq!((t.available(seller, BTC), t.held(seller, BTC), t.held(seller, USD)), (0, 7 * LOT, 0));
}

#[test]
fn a_resting_buy_filled_as_maker_pays_the_maker_fee_and_gets_the_rest_of_its_hold_back() {
    let mut t = Bench::new();
    let buyer = t.trader(0, USD, 65_130);
    let seller = t.trader(0, BTC, 100 * LOT);
    t.rest(buyer, Side::Buy, 650, 100);

    // 40 lots at 650 = 26 000; the maker pays 10 bps = 26, not the 52 it held for.
    let (_, events) = t.place(limit(seller, Side::Sell, 640, 40));
    assert_eq!(
        fills(&events).iter().map(|fill| (fill.price, fill.maker_fee, fill.taker_fee)).collect::<Vec<_>>(),
        [(650, 26, 52)]
    );
    // What the remaining 60 lots need: 39 000 + 78.
    assert_eq!((t.held(buyer, USD), t.available(buyer, USD)), (39_078, 26));
    assert_eq!(t.available(seller, USD), 26_000 - 52);

    t.place(limit(seller, Side::Sell, 650, 60));
    // Nothing stays held once the order has left the book; it paid 65 000 + 65.
    assert_eq!((t.held(buyer, USD), t.available(buyer, USD), t.available(buyer, BTC)), (0, 65, 100 * LOT));
    assert!(t.engine.orders().is_empty());
    assert_eq!(t.fees(USD), 26 + 52 + 39 + 78);
}

#[test]
fn a_crossing_limit_buy_pays_the_makers_price_and_rests_the_rest_with_an_exact_hold() {
    let mut t = Bench::new();
    let seller = t.trader(0, BTC, 40 * LOT);
    let buyer = t.trader(0, USD, 100_000);
    t.rest(seller, Side::Sell, 650, 40);
    let (_, events) = t.place(limit(buyer, Side::Buy, 660, 100));
    assert_eq!(fills(&events).len(), 1);
    // Paid 26 000 + 52 for the fill; holds 39 600 + 79 for 60 lots at 660; the price
    // improvement and the unused fee hold are back.
    assert_eq!((t.held(buyer, USD), t.available(buyer, USD)), (39_679, 100_000 - 26_052 - 39_679));
    assert_eq!(t.levels(BTC_USD, Side::Buy), [(660, 60, 1)]);
    assert!(t.levels(BTC_USD, Side::Sell).is_empty());
}

#[test]
fn a_market_buy_by_quantity_holds_exactly_what_walking_the_book_costs() {
    let mut t = Bench::new();
    let seller_a = t.trader(0, BTC, 10 * LOT);
    let seller_b = t.trader(0, BTC, 10 * LOT);
    let at_650 = t.rest(seller_a, Side::Sell, 650, 10);
    let at_651 = t.rest(seller_b, Side::Sell, 651, 10);
    // 10 × 650 + 13 fee, then 5 × 651 + 6 fee (6.51 rounded down) = 9774.
    let buyer = t.trader(0, USD, 9_773);
    t.rejects(Command::PlaceOrder(market_order(buyer, Side::Buy, 15)), RejectReason::InsufficientFunds);
    t.fund(buyer, USD, 1);
    let (taker, events) = t.place(market_order(buyer, Side::Buy, 15));
    assert_eq!(
        fills(&events),
        [
            Fill { maker: at_650, taker, price: 650, qty: 10, maker_fee: 6, taker_fee: 13 },
            Fill { maker: at_651, taker, price: 651, qty: 5, maker_fee: 3, taker_fee: 6 },
        ]
    );
    assert!(cancels(&events).is_empty());
    assert_eq!((t.available(buyer, USD), t.held(buyer, USD), t.available(buyer, BTC)), (0, 0, 15 * LOT));
    assert_eq!(t.levels(BTC_USD, Side::Sell), [(651, 5, 1)]);
}

#[test]
fn a_market_order_fills_what_the_book_has_and_cancels_the_rest() {
    let mut t = Bench::new();
    let seller = t.trader(0, BTC, 10 * LOT);
    let buyer = t.trader(0, USD, 100_000);
    t.rest(seller, Side::Sell, 650, 10);
    let (taker, events) = t.place(market_order(buyer, Side::Buy, 25));
    assert_eq!(fills(&events).iter().map(|fill| fill.qty).sum::<u64>(), 10);
    assert_eq!(cancels(&events), [(taker, 15, CancelReason::Unfilled)]);
    assert_eq!((t.available(buyer, USD), t.held(buyer, USD)), (100_000 - 6_513, 0));

    // Into an empty book: accepted, then cancelled whole, nothing held.
    let (sell, events) = t.place(market_order(buyer, Side::Sell, 1));
    assert!(fills(&events).is_empty());
    assert_eq!(cancels(&events), [(sell, 1, CancelReason::Unfilled)]);
    assert_eq!((t.held(buyer, BTC), t.available(buyer, BTC)), (0, 10 * LOT));
    assert!(t.engine.orders().is_empty());
}

#[test]
fn a_quote_budget_buys_as_many_lots_as_it_pays_for_fee_included() {
    let mut t = Bench::new();
    let seller = t.trader(0, BTC, 10 * LOT);
    let buyer = t.trader(0, USD, 10_000);
    let sell = t.rest(seller, Side::Sell, 650, 10);

    // 4 lots cost 2600 + 5 (5.2 rounded down) = 2605 exactly; 5 lots would cost 3256.
    let (taker, events) = t.place(budget_buy(buyer, 2_605));
    assert!(matches!(events[0], Event::OrderAccepted { qty, price: None, .. } if qty == Qty::ZERO));
    assert_eq!(fills(&events), [Fill { maker: sell, taker, price: 650, qty: 4, maker_fee: 2, taker_fee: 5 }]);
    assert_eq!(cancels(&events), [(taker, 0, CancelReason::BudgetSpent)]);
    assert_eq!((t.available(buyer, USD), t.held(buyer, USD), t.available(buyer, BTC)), (10_000 - 2_605, 0, 4 * LOT));

    // One cent less buys 3 lots (1950 + 3) and the rest of the budget comes back.
    let (_, events) = t.place(budget_buy(buyer, 2_604));
    assert_eq!(fills(&events).iter().map(|fill| fill.qty).collect::<Vec<_>>(), [3]);
    assert_eq!((t.available(buyer, USD), t.held(buyer, USD)), (10_000 - 2_605 - 1_953, 0));

    // Less than one lot's price buys nothing.
    let (taker, events) = t.place(budget_buy(buyer, 600));
    assert!(fills(&events).is_empty());
    assert_eq!(cancels(&events), [(taker, 0, CancelReason::BudgetSpent)]);
    assert_eq!((t.available(buyer, USD), t.held(buyer, USD)), (10_000 - 2_605 - 1_953, 0));
    assert_eq!(t.levels(BTC_USD, Side::Sell), [(650, 3, 1)]);
}

#[test]
fn a_quote_budget_walks_several_levels_and_stops_when_the_book_runs_out() {
    let mut t = Bench::new();
    let seller = t.trader(0, BTC, 12 * LOT);
    let buyer = t.trader(0, USD, 100_000);
    t.rest(seller, Side::Sell, 650, 2);
    t.rest(seller, Side::Sell, 651, 10);
    // 2 lots at 650 cost 1302; the 3698 left buy 5 lots at 651 (3261), not 6 (3913).
    let (_, events) = t.place(budget_buy(buyer, 5_000));
    assert_eq!(fills(&events).iter().map(|fill| (fill.price, fill.qty)).collect::<Vec<_>>(), [(650, 2), (651, 5)]);
    assert_eq!((t.available(buyer, USD), t.held(buyer, USD)), (100_000 - 1_302 - 3_261, 0));

    // More budget than the book: buys the 5 lots left, the rest is cancelled.
    let (taker, events) = t.place(budget_buy(buyer, 50_000));
    assert_eq!(fills(&events).iter().map(|fill| fill.qty).sum::<u64>(), 5);
    assert_eq!(cancels(&events), [(taker, 0, CancelReason::BudgetSpent)]);
    assert_eq!((t.available(buyer, USD), t.held(buyer, USD)), (100_000 - 1_302 - 3_261 - 3_261, 0));
    assert!(t.engine.orders().is_empty());
}

// ---------------------------------------------------------------------------------
// Time in force and post-only.
// ---------------------------------------------------------------------------------

#[test]
fn ioc_fills_what_it_can_and_never_rests() {
    let mut t = Bench::new();
    let seller = t.trader(0, BTC, 5 * LOT);
    let buyer = t.trader(0, USD, 100_000);
    t.rest(seller, Side::Sell, 650, 5);
    let ioc = |lots, price_ticks| PlaceOrder {
        time_in_force: TimeInForce::Ioc,
        ..limit(buyer, Side::Buy, price_ticks, lots)
    };

    let (taker, events) = t.place(ioc(8, 655));
    assert_eq!(fills(&events).iter().map(|fill| (fill.price, fill.qty)).collect::<Vec<_>>(), [(650, 5)]);
    assert_eq!(cancels(&events), [(taker, 3, CancelReason::Unfilled)]);
    // Nothing crosses now: cancelled whole, and no market data at all.
    let (taker, events) = t.place(ioc(8, 655));
    assert_eq!(cancels(&events), [(taker, 8, CancelReason::Unfilled)]);
    assert!(feed(&events).is_empty());
    assert_eq!((t.held(buyer, USD), t.available(buyer, USD)), (0, 100_000 - 3_256));
    assert!(t.engine.orders().is_empty());
}

#[test]
fn fok_fills_entirely_or_is_cancelled_without_a_fill_or_a_hold() {
    let mut t = Bench::new();
    let seller = t.trader(0, BTC, 10 * LOT);
    let buyer = t.trader(0, USD, 100_000);
    t.rest(seller, Side::Sell, 650, 5);
    t.rest(seller, Side::Sell, 651, 5);
    let fok = |lots, price_ticks| PlaceOrder {
        time_in_force: TimeInForce::Fok,
        ..limit(buyer, Side::Buy, price_ticks, lots)
    };
    let market_seq = t.engine.market(BTC_USD).map(bourse_core::market::Market::market_seq);

    // 11 lots wanted, 10 offered; 10 wanted at 650, 5 offered there.
    for (lots, price_ticks) in [(11, 651), (10, 650)] {
        let events = t.apply(Command::PlaceOrder(fok(lots, price_ticks)));
        match events[..] {
            [Event::OrderAccepted { order, .. }, Event::OrderCancelled { order: cancelled, remaining, reason, .. }] => {
                assert_eq!((cancelled, remaining, reason), (order, qty(lots), CancelReason::FillOrKill));
            }
            _ => panic!("expected accepted then killed, and nothing else: {events:?}"),
        }
    }
    assert_eq!((t.available(buyer, USD), t.held(buyer, USD)), (100_000, 0));
    assert_eq!(t.engine.market(BTC_USD).map(bourse_core::market::Market::market_seq), market_seq);

    let (_, events) = t.place(fok(10, 651));
    assert_eq!(fills(&events).iter().map(|fill| fill.qty).sum::<u64>(), 10);
    assert!(cancels(&events).is_empty());
    assert!(t.engine.orders().is_empty());
    assert_eq!(t.held(buyer, USD), 0);

    // A fill-or-kill market sell into an empty book.
    let (sell, events) = t.place(PlaceOrder { time_in_force: TimeInForce::Fok, ..market_order(buyer, Side::Sell, 1) });
    assert_eq!(cancels(&events), [(sell, 1, CancelReason::FillOrKill)]);
}

#[test]
fn post_only_rests_and_is_rejected_if_it_would_take() {
    let mut t = Bench::new();
    let seller = t.trader(0, BTC, 5 * LOT);
    let buyer = t.trader(0, USD, 100_000);
    t.rest(seller, Side::Sell, 650, 5);
    let post_only = |price_ticks| PlaceOrder { post_only: true, ..limit(buyer, Side::Buy, price_ticks, 5) };
    t.rejects(Command::PlaceOrder(post_only(650)), RejectReason::PostOnlyWouldTake);
    t.rejects(Command::PlaceOrder(post_only(700)), RejectReason::PostOnlyWouldTake);
    let order = t.rest_order(post_only(649));
    assert_eq!(t.levels(BTC_USD, Side::Buy), [(649, 5, 1)]);

    // It is filled as a maker, at the maker fee: 5 × 649 = 3245, 10 bps = 3.
    let other_seller = t.trader(0, BTC, 5 * LOT);
    let (taker, events) = t.place(limit(other_seller, Side::Sell, 600, 5));
    assert_eq!(fills(&events), [Fill { maker: order, taker, price: 649, qty: 5, maker_fee: 3, taker_fee: 6 }]);
    assert_eq!((t.held(buyer, USD), t.available(buyer, USD)), (0, 100_000 - 3_248));
}

// ---------------------------------------------------------------------------------
// Client order ids, cancel and cancel-all.
// ---------------------------------------------------------------------------------

#[test]
fn client_order_ids_are_unique_among_the_accounts_live_orders_only() {
    let mut t = Bench::new();
    let alice = t.trader(0, USD, 100_000);
    let bob = t.trader(0, USD, 100_000);
    let seller = t.trader(0, BTC, 10 * LOT);
    let tagged = |by, id| PlaceOrder { client_order_id: Some(client(id)), ..limit(by, Side::Buy, 600, 1) };

    let first = t.rest_order(tagged(alice, 7));
    t.rejects(Command::PlaceOrder(tagged(alice, 7)), RejectReason::DuplicateClientOrderId);
    let ioc = PlaceOrder { time_in_force: TimeInForce::Ioc, ..tagged(alice, 7) };
    t.rejects(Command::PlaceOrder(ioc), RejectReason::DuplicateClientOrderId);
    // Another account has ids of its own.
    let bobs = t.rest_order(tagged(bob, 7));

    // Cancelled by the client's id, it frees the id.
    let events = t.cancel(alice, OrderRef::Client(client(7)));
    assert_eq!(cancels(&events), [(first, 1, CancelReason::Requested)]);
    assert_eq!(t.levels(BTC_USD, Side::Buy), [(600, 1, 1)]);
    let second = t.rest_order(tagged(alice, 7));
    assert_ne!(second, first);

    // Filled, it frees the id too.
    let (_, events) = t.place(limit(seller, Side::Sell, 600, 2));
    assert_eq!(fills(&events).iter().map(|fill| fill.maker).collect::<Vec<_>>(), [bobs, second]);
    let third = t.rest_order(tagged(alice, 7));
    t.rest_order(tagged(bob, 7));

    // Nobody can see another account's orders, by either id.
    t.rejects(Command::CancelOrder(CancelOrder { by: bob, order: OrderRef::Id(third) }), RejectReason::UnknownOrder);
    t.rest_order(tagged(alice, 9));
    let by_client = Command::CancelOrder(CancelOrder { by: bob, order: OrderRef::Client(client(9)) });
    t.rejects(by_client, RejectReason::UnknownOrder);
}

#[test]
fn cancel_releases_the_hold_and_publishes_the_emptied_level() {
    let mut t = Bench::new();
    let buyer = t.trader(0, USD, 100_000);
    let order = t.rest(buyer, Side::Buy, 650, 100);
    assert_eq!(t.held(buyer, USD), 65_130);
    let events = t.cancel(buyer, OrderRef::Id(order));
    assert_eq!(cancels(&events), [(order, 100, CancelReason::Requested)]);
    let emptied = Feed::Level { market_seq: 2, side: Side::Buy, price: 650, total: 0, orders: 0 };
    assert_eq!(feed(&events), [emptied]);
    assert_eq!((t.held(buyer, USD), t.available(buyer, USD)), (0, 100_000));
    t.rejects(Command::CancelOrder(CancelOrder { by: buyer, order: OrderRef::Id(order) }), RejectReason::UnknownOrder);
}

#[test]
fn cancel_all_cancels_in_order_id_order_in_every_market_or_in_one() {
    let mut t = Bench::new();
    let alice = t.open(0);
    t.fund(alice, USD, 1_000_000);
    t.fund(alice, BTC, 10 * LOT);
    t.fund(alice, EUR, 1_000_000);
    let bob = t.trader(0, USD, 100_000);
    let eur = |side, price_ticks| PlaceOrder { market: EUR_USD, ..limit(alice, side, price_ticks, 5) };

    let o1 = t.rest(alice, Side::Buy, 600, 1);
    let o2 = t.rest_order(eur(Side::Sell, 10_900));
    let o3 = t.rest(alice, Side::Sell, 700, 1);
    let o4 = t.rest_order(eur(Side::Buy, 10_800));
    let bobs = t.rest(bob, Side::Buy, 600, 1);

    let events = t.apply(cancel_all(alice, Some(EUR_USD)));
    assert_eq!(cancels(&events), [(o2, 5, CancelReason::CancelAll), (o4, 5, CancelReason::CancelAll)]);
    assert_eq!((t.held(alice, EUR), t.held(alice, USD)), (0, 601));
    let events = t.apply(cancel_all(alice, None));
    assert_eq!(cancels(&events), [(o1, 1, CancelReason::CancelAll), (o3, 1, CancelReason::CancelAll)]);
    assert_eq!((t.held(alice, USD), t.held(alice, BTC), t.held(alice, EUR)), (0, 0, 0));
    assert_eq!(
        (t.available(alice, USD), t.available(alice, BTC), t.available(alice, EUR)),
        (1_000_000, 10 * LOT, 1_000_000)
    );

    // Bob's order is untouched; with nothing left, cancel-all does nothing.
    assert_eq!(t.engine.orders().len(), 1);
    assert!(t.engine.orders().find(bobs).is_some());
    assert!(cancels(&t.apply(cancel_all(alice, None))).is_empty());
}

// ---------------------------------------------------------------------------------
// Amend.
// ---------------------------------------------------------------------------------

#[test]
fn amending_the_quantity_down_at_the_same_price_keeps_priority() {
    let mut t = Bench::new();
    let alice = t.trader(0, BTC, 10 * LOT);
    let bob = t.trader(0, BTC, 10 * LOT);
    let taker = t.trader(0, USD, 100_000);
    let alice_order = t.rest(alice, Side::Sell, 650, 10);
    let bob_order = t.rest(bob, Side::Sell, 650, 10);

    let events = t.amend(alice, alice_order, None, Some(4));
    assert_eq!(amended(&events), Some((alice_order, 650, 4, true)));
    assert_eq!((t.held(alice, BTC), t.available(alice, BTC)), (4 * LOT, 6 * LOT));
    assert_eq!(t.levels(BTC_USD, Side::Sell), [(650, 14, 2)]);

    // Alice is still first in the queue.
    let (_, events) = t.place(limit(taker, Side::Buy, 650, 5));
    assert_eq!(
        fills(&events).iter().map(|fill| (fill.maker, fill.qty)).collect::<Vec<_>>(),
        [(alice_order, 4), (bob_order, 1)]
    );
}

#[test]
fn amending_a_buy_down_releases_what_the_smaller_order_no_longer_needs() {
    let mut t = Bench::new();
    let buyer = t.trader(0, USD, 6_513);
    let order = t.rest(buyer, Side::Buy, 650, 10);
    let events = t.amend(buyer, order, Some(650), Some(9));
    assert_eq!(amended(&events), Some((order, 650, 9, true)));
    // 5850 + 11 (11.7 rounded down).
    assert_eq!((t.held(buyer, USD), t.available(buyer, USD)), (5_861, 652));
}

#[test]
fn amending_the_quantity_up_or_the_price_loses_priority() {
    let mut t = Bench::new();
    let alice = t.trader(0, BTC, 20 * LOT);
    let bob = t.trader(0, BTC, 20 * LOT);
    let taker = t.trader(0, USD, 100_000);
    let alice_650 = t.rest(alice, Side::Sell, 650, 10);
    let bob_650 = t.rest(bob, Side::Sell, 650, 10);
    let events = t.amend(alice, alice_650, None, Some(12));
    assert_eq!(amended(&events), Some((alice_650, 650, 12, false)));
    assert_eq!(t.held(alice, BTC), 12 * LOT);
    let (_, events) = t.place(limit(taker, Side::Buy, 650, 5));
    assert_eq!(fills(&events).iter().map(|fill| fill.maker).collect::<Vec<_>>(), [bob_650]);

    // Alice moves from 652 to 651, where Bob already waits: she goes behind him.
    let alice_652 = t.rest(alice, Side::Sell, 652, 5);
    let bob_651 = t.rest(bob, Side::Sell, 651, 5);
    assert_eq!(amended(&t.amend(alice, alice_652, Some(651), None)), Some((alice_652, 651, 5, false)));
    assert_eq!(t.levels(BTC_USD, Side::Sell), [(650, 17, 2), (651, 10, 2)]);
    let (_, events) = t.place(limit(taker, Side::Buy, 651, 24));
    let makers: Vec<_> = fills(&events).iter().map(|fill| (fill.maker, fill.qty)).collect();
    assert_eq!(makers, [(bob_650, 5), (alice_650, 12), (bob_651, 5), (alice_652, 2)]);
}

#[test]
fn amending_to_a_crossing_price_trades_at_once_as_a_taker() {
    let mut t = Bench::new();
    let seller = t.trader(0, BTC, 5 * LOT);
    let buyer = t.trader(0, USD, 10_000);
    let sell = t.rest(seller, Side::Sell, 650, 5);
    let buy = t.rest(buyer, Side::Buy, 640, 10);
    assert_eq!(t.held(buyer, USD), 6_412);

    let events = t.amend(buyer, buy, Some(655), None);
    assert_eq!(amended(&events), Some((buy, 655, 10, false)));
    // The taker fee (20 bps of 3250 = 6), at the maker's price.
    assert_eq!(fills(&events), [Fill { maker: sell, taker: buy, price: 650, qty: 5, maker_fee: 3, taker_fee: 6 }]);
    // 5 lots rest at 655: 3275 + 6.
    assert_eq!((t.held(buyer, USD), t.available(buyer, USD)), (3_281, 10_000 - 3_256 - 3_281));
    assert_eq!(t.levels(BTC_USD, Side::Buy), [(655, 5, 1)]);
    assert!(t.levels(BTC_USD, Side::Sell).is_empty());
}

#[test]
fn amend_rejections_leave_the_order_untouched() {
    let mut t = Bench::new();
    let buyer = t.trader(0, USD, 6_513);
    let seller = t.trader(0, BTC, 5 * LOT);
    let other = t.open(0);
    let order = t.rest_order(PlaceOrder { client_order_id: Some(client(1)), ..limit(buyer, Side::Buy, 650, 10) });
    let by_id = OrderRef::Id(order);

    t.rejects(amend(buyer, by_id, None, None), RejectReason::InvalidOrder);
    t.rejects(amend(buyer, by_id, Some(650), Some(10)), RejectReason::InvalidOrder);
    t.rejects(amend(buyer, OrderRef::Client(client(1)), Some(650), None), RejectReason::InvalidOrder);
    t.rejects(amend(buyer, by_id, None, Some(0)), RejectReason::InvalidQuantity);
    t.rejects(amend(buyer, by_id, None, Some(1_000_001)), RejectReason::InvalidQuantity);
    t.rejects(amend(buyer, by_id, Some(PRICE_TICKS_MAX), Some(1_000_000)), RejectReason::InvalidPrice);
    // Its hold is all the buyer has: 10 more cents for 651, 651 more for 11 lots.
    t.rejects(amend(buyer, by_id, Some(651), None), RejectReason::InsufficientFunds);
    t.rejects(amend(buyer, by_id, None, Some(11)), RejectReason::InsufficientFunds);
    t.rejects(amend(other, by_id, None, Some(5)), RejectReason::UnknownOrder);
    t.rejects(amend(other, OrderRef::Client(client(1)), None, Some(5)), RejectReason::UnknownOrder);
    t.rejects(amend(NOBODY, by_id, None, Some(5)), RejectReason::UnknownAccount);

    // A post-only order may not be amended into taking.
    let sell = t.rest_order(PlaceOrder { post_only: true, ..limit(seller, Side::Sell, 700, 5) });
    t.rejects(amend(seller, OrderRef::Id(sell), Some(650), None), RejectReason::PostOnlyWouldTake);
    assert_eq!(amended(&t.amend(seller, sell, Some(651), None)), Some((sell, 651, 5, false)));

    // Freezing takes the account's orders off the books and releases their holds.
    let events = t.apply(Command::FreezeAccount(FreezeAccount { account: buyer }));
    assert_eq!(cancels(&events), [(order, 10, CancelReason::AccountFrozen)]);
    assert_eq!(t.held(buyer, USD), 0);
    t.rejects(amend(buyer, by_id, None, Some(5)), RejectReason::UnknownOrder);
}

// ---------------------------------------------------------------------------------
// Self-trade prevention.
// ---------------------------------------------------------------------------------

/// A bench with Alice (BTC and USD) and Bob (BTC), both tier 0.
fn two_traders() -> (Bench, AccountId, AccountId) {
    let mut t = Bench::new();
    let alice = t.trader(0, BTC, 10 * LOT);
    t.fund(alice, USD, 100_000);
    let bob = t.trader(0, BTC, 10 * LOT);
    (t, alice, bob)
}

fn with_stp(order: PlaceOrder, stp: SelfTradePrevention) -> PlaceOrder {
    PlaceOrder { stp: Some(stp), ..order }
}

#[test]
fn self_trade_prevention_cancels_the_taker_by_default() {
    let (mut t, alice, bob) = two_traders();
    let bobs = t.rest(bob, Side::Sell, 649, 3);
    let own = t.rest(alice, Side::Sell, 650, 5);
    let (taker, events) = t.place(limit(alice, Side::Buy, 650, 10));
    assert_eq!(fills(&events).iter().map(|fill| (fill.maker, fill.qty)).collect::<Vec<_>>(), [(bobs, 3)]);
    assert_eq!(cancels(&events), [(taker, 7, CancelReason::SelfTrade)]);
    // The resting order is untouched, and nothing is held for the taker.
    assert!(t.engine.orders().find(own).is_some());
    assert_eq!(t.levels(BTC_USD, Side::Sell), [(650, 5, 1)]);
    assert!(t.levels(BTC_USD, Side::Buy).is_empty());
    assert_eq!((t.held(alice, USD), t.held(alice, BTC)), (0, 5 * LOT));
}

#[test]
fn cancel_maker_removes_the_own_resting_order_and_matching_goes_on() {
    let (mut t, alice, bob) = two_traders();
    let own = t.rest(alice, Side::Sell, 650, 5);
    let bobs = t.rest(bob, Side::Sell, 651, 5);
    let (taker, events) = t.place(with_stp(limit(alice, Side::Buy, 651, 10), SelfTradePrevention::CancelMaker));
    assert_eq!(cancels(&events), [(own, 5, CancelReason::SelfTrade)]);
    assert_eq!(
        fills(&events).iter().map(|fill| (fill.maker, fill.taker, fill.qty)).collect::<Vec<_>>(),
        [(bobs, taker, 5)]
    );
    assert!(t.levels(BTC_USD, Side::Sell).is_empty());
    assert_eq!(t.levels(BTC_USD, Side::Buy), [(651, 5, 1)]);
    assert_eq!((t.held(alice, BTC), t.available(alice, BTC)), (0, 15 * LOT));
}

#[test]
fn cancel_both_removes_the_resting_order_and_the_taker() {
    let (mut t, alice, _) = two_traders();
    let own = t.rest(alice, Side::Sell, 650, 5);
    let (taker, events) = t.place(with_stp(limit(alice, Side::Buy, 650, 10), SelfTradePrevention::CancelBoth));
    assert!(fills(&events).is_empty());
    assert_eq!(cancels(&events), [(own, 5, CancelReason::SelfTrade), (taker, 10, CancelReason::SelfTrade)]);
    assert!(t.engine.orders().is_empty());
    assert_eq!((t.held(alice, BTC), t.held(alice, USD)), (0, 0));
    assert_eq!((t.available(alice, BTC), t.available(alice, USD)), (10 * LOT, 100_000));
}

// ---------------------------------------------------------------------------------
// Rejections. Each leaves the state untouched (`Bench::rejects`).
// ---------------------------------------------------------------------------------

#[test]
fn orders_of_unknown_or_frozen_accounts_and_unknown_markets_are_rejected() {
    let mut t = Bench::new();
    let buyer = t.trader(0, USD, 100_000);
    t.rest(buyer, Side::Buy, 600, 1);
    t.rejects(Command::PlaceOrder(limit(NOBODY, Side::Buy, 600, 1)), RejectReason::UnknownAccount);
    t.rejects(
        Command::CancelOrder(CancelOrder { by: NOBODY, order: OrderRef::Id(OrderId::new(1)) }),
        RejectReason::UnknownAccount,
    );
    t.rejects(cancel_all(NOBODY, None), RejectReason::UnknownAccount);
    let elsewhere = PlaceOrder { market: NO_MARKET, ..limit(buyer, Side::Buy, 600, 1) };
    t.rejects(Command::PlaceOrder(elsewhere), RejectReason::UnknownMarket);
    t.rejects(cancel_all(buyer, Some(NO_MARKET)), RejectReason::UnknownMarket);
    t.rejects(
        Command::CancelOrder(CancelOrder { by: buyer, order: OrderRef::Id(OrderId::new(99)) }),
        RejectReason::UnknownOrder,
    );
    t.rejects(
        Command::CancelOrder(CancelOrder { by: buyer, order: OrderRef::Client(client(99)) }),
        RejectReason::UnknownOrder,
    );

    t.apply(Command::FreezeAccount(FreezeAccount { account: buyer }));
    t.rejects(Command::PlaceOrder(limit(buyer, Side::Buy, 600, 1)), RejectReason::AccountFrozen);
    t.rejects(Command::PlaceOrder(market_order(buyer, Side::Buy, 1)), RejectReason::AccountFrozen);
}

#[test]
fn quantities_outside_the_market_bounds_are_rejected() {
    let mut t = Bench::new();
    let rich = t.trader(0, USD, 1_000_000_000);
    t.fund(rich, BTC, 2_000_000 * LOT);
    t.fund(rich, EUR, 1_000_000_000);
    let reject =
        |t: &mut Bench, order: PlaceOrder| t.rejects(Command::PlaceOrder(order), RejectReason::InvalidQuantity);
    reject(&mut t, limit(rich, Side::Buy, 600, 0));
    reject(&mut t, market_order(rich, Side::Sell, 0));
    reject(&mut t, limit(rich, Side::Sell, 600, 1_000_001));
    reject(&mut t, PlaceOrder { market: EUR_USD, ..limit(rich, Side::Buy, 10_000, 4) });
    reject(&mut t, PlaceOrder { market: EUR_USD, ..limit(rich, Side::Sell, 10_000, 100_001) });
    // The bounds themselves are fine.
    t.rest_order(PlaceOrder { market: EUR_USD, ..limit(rich, Side::Buy, 10_000, 5) });
    t.rest(rich, Side::Sell, 700, 1_000_000);
    t.rejects(Command::PlaceOrder(budget_buy(rich, 0)), RejectReason::InvalidAmount);
}

#[test]
fn a_buy_whose_quote_amount_cannot_be_held_has_an_invalid_price() {
    let mut t = Bench::new();
    let buyer = t.trader(0, USD, 1_000);
    // 2^48 ticks × 10^6 lots × 1 cent is past `AMOUNT_MAX`.
    t.rejects(Command::PlaceOrder(limit(buyer, Side::Buy, PRICE_TICKS_MAX, 1_000_000)), RejectReason::InvalidPrice);
}

#[test]
fn combinations_that_make_no_sense_are_invalid_orders() {
    let mut t = Bench::new();
    let rich = t.trader(0, USD, 1_000_000);
    t.fund(rich, BTC, 100 * LOT);
    let buy = limit(rich, Side::Buy, 600, 1);
    let market = market_order(rich, Side::Buy, 1);
    let budget = budget_buy(rich, 1_000);
    let cases = [
        PlaceOrder { time_in_force: TimeInForce::Gtc, ..market },
        PlaceOrder { post_only: true, ..market },
        PlaceOrder { post_only: true, time_in_force: TimeInForce::Ioc, ..buy },
        PlaceOrder { post_only: true, time_in_force: TimeInForce::Fok, ..buy },
        PlaceOrder { price: Some(price(600)), ..budget },
        PlaceOrder { side: Side::Sell, ..budget },
        PlaceOrder { time_in_force: TimeInForce::Fok, ..budget },
        PlaceOrder { time_in_force: TimeInForce::Gtc, ..budget },
    ];
    for order in cases {
        t.rejects(Command::PlaceOrder(order), RejectReason::InvalidOrder);
    }
}

#[test]
fn orders_the_account_cannot_pay_for_are_rejected() {
    let mut t = Bench::new();
    let seller = t.trader(0, BTC, 10 * LOT);
    let poor = t.trader(0, USD, 100);
    t.fund(poor, BTC, LOT - 1);
    t.rest(seller, Side::Sell, 650, 10);
    let reject = |t: &mut Bench, order| t.rejects(Command::PlaceOrder(order), RejectReason::InsufficientFunds);
    reject(&mut t, limit(poor, Side::Buy, 600, 1));
    reject(&mut t, limit(poor, Side::Sell, 700, 1));
    reject(&mut t, market_order(poor, Side::Buy, 1));
    reject(&mut t, market_order(poor, Side::Sell, 1));
    reject(&mut t, budget_buy(poor, 101));
}

/// Alice with `ORDERS_PER_ACCOUNT_MAX` one-lot sells resting at 1000, and BTC and USD
/// to spare. The invariants are checked every 1000 orders rather than after each
/// (each check is O(orders)); market data is still checked after every command.
fn at_the_order_cap() -> (Bench, AccountId, Vec<OrderId>) {
    let mut t = Bench::new();
    let alice = t.trader(0, BTC, 2 * u64::from(ORDERS_PER_ACCOUNT_MAX) * LOT);
    t.fund(alice, USD, 1_000_000);
    let mut orders = Vec::new();
    for index in 1..=ORDERS_PER_ACCOUNT_MAX {
        let events = t.apply_unchecked(Command::PlaceOrder(limit(alice, Side::Sell, 1_000, 1)));
        match events.first() {
            Some(&Event::OrderAccepted { order, .. }) => orders.push(order),
            _ => panic!("order {index} refused: {events:?}"),
        }
        if index % 1_000 == 0 {
            t.engine.check_invariants();
        }
    }
    assert_eq!(t.engine.orders().open_count(alice.get()), ORDERS_PER_ACCOUNT_MAX);
    assert_eq!(t.levels(BTC_USD, Side::Sell), [(1_000, u64::from(ORDERS_PER_ACCOUNT_MAX), ORDERS_PER_ACCOUNT_MAX)]);
    (t, alice, orders)
}

#[test]
fn an_account_may_rest_at_most_orders_per_account_max_orders() {
    let (mut t, alice, orders) = at_the_order_cap();
    t.rejects(Command::PlaceOrder(limit(alice, Side::Sell, 1_001, 1)), RejectReason::TooManyOrders);
    t.rejects(Command::PlaceOrder(limit(alice, Side::Buy, 900, 1)), RejectReason::TooManyOrders);
    // Orders that never rest are still allowed, and other accounts are not affected.
    let ioc = PlaceOrder { time_in_force: TimeInForce::Ioc, ..limit(alice, Side::Buy, 900, 1) };
    let (order, events) = t.place(ioc);
    assert_eq!(cancels(&events), [(order, 1, CancelReason::Unfilled)]);
    let bob = t.trader(0, USD, 1_000);
    t.rest(bob, Side::Buy, 900, 1);
    // Amending a quantity does not add an order.
    assert_eq!(amended(&t.amend(alice, orders[0], None, Some(2))), Some((orders[0], 1_000, 2, false)));
    assert_eq!(amended(&t.amend(alice, orders[0], None, Some(1))), Some((orders[0], 1_000, 1, true)));
    // One order gone makes room for one more.
    t.cancel(alice, OrderRef::Id(orders[1]));
    t.rest(alice, Side::Sell, 1_001, 1);
    t.rejects(Command::PlaceOrder(limit(alice, Side::Sell, 1_001, 1)), RejectReason::TooManyOrders);
}

#[test]
fn amending_the_price_at_the_order_cap_is_not_a_new_order() {
    // Bug: an amend to a new price checks for room to rest one more order while the
    // amended order still counts, so an account at `ORDERS_PER_ACCOUNT_MAX` cannot move
    // any of its orders (amending the quantity up, which also re-queues, works).
    let (mut t, alice, orders) = at_the_order_cap();
    let events = t.amend(alice, orders[0], Some(1_001), None);
    assert_eq!(amended(&events), Some((orders[0], 1_001, 1, false)), "{events:?}");
    assert_eq!(t.engine.orders().open_count(alice.get()), ORDERS_PER_ACCOUNT_MAX);
}

// ---------------------------------------------------------------------------------
// Market data.
// ---------------------------------------------------------------------------------

#[test]
fn market_data_reports_each_trade_and_each_changed_level_in_sequence() {
    let mut t = Bench::new();
    let seller = t.trader(0, BTC, 20 * LOT);
    let buyer = t.trader(0, USD, 100_000);
    t.rest(seller, Side::Sell, 650, 5);
    t.rest(seller, Side::Sell, 650, 5);
    let last = t.rest(seller, Side::Sell, 651, 5);

    let (_, events) = t.place(limit(buyer, Side::Buy, 651, 12));
    assert_eq!(
        feed(&events),
        [
            Feed::Trade { market_seq: 4, price: 650, qty: 5 },
            Feed::Trade { market_seq: 5, price: 650, qty: 5 },
            Feed::Trade { market_seq: 6, price: 651, qty: 2 },
            Feed::Level { market_seq: 7, side: Side::Sell, price: 650, total: 0, orders: 0 },
            Feed::Level { market_seq: 8, side: Side::Sell, price: 651, total: 3, orders: 1 },
        ]
    );
    // A buy that takes one side and rests on the other publishes both levels.
    let (bid, events) = t.place(limit(buyer, Side::Buy, 652, 5));
    assert_eq!(
        feed(&events),
        [
            Feed::Trade { market_seq: 9, price: 651, qty: 3 },
            Feed::Level { market_seq: 10, side: Side::Sell, price: 651, total: 0, orders: 0 },
            Feed::Level { market_seq: 11, side: Side::Buy, price: 652, total: 2, orders: 1 },
        ]
    );
    assert!(t.engine.orders().find(last).is_none());
    // Amends publish the level they leave and the level they join.
    let events = t.amend(buyer, bid, Some(640), Some(1));
    assert_eq!(
        feed(&events),
        [
            Feed::Level { market_seq: 12, side: Side::Buy, price: 652, total: 0, orders: 0 },
            Feed::Level { market_seq: 13, side: Side::Buy, price: 640, total: 1, orders: 1 },
        ]
    );

    // Each market counts on its own.
    let euro_seller = t.trader(0, EUR, 1_000_000);
    let (_, events) = t.place(PlaceOrder { market: EUR_USD, ..limit(euro_seller, Side::Sell, 10_900, 5) });
    assert_eq!(feed(&events), [Feed::Level { market_seq: 1, side: Side::Sell, price: 10_900, total: 5, orders: 1 }]);
    assert_eq!(t.engine.market(BTC_USD).map(bourse_core::market::Market::market_seq), Some(13));
}

/// A xorshift generator, so that the stream is the same on every run.
struct Rng(u64);

impl Rng {
    fn below(&mut self, bound: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % bound
    }

    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len() as u64) as usize]
    }
}

fn random_order(rng: &mut Rng, by: AccountId) -> PlaceOrder {
    let (market, mid, lots_min) = rng.pick(&[(BTC_USD, 650, 1), (BTC_USD, 650, 1), (EUR_USD, 10_850, 5)]);
    let client_order_id = if rng.below(4) == 0 { Some(client(u128::from(1 + rng.below(5)))) } else { None };
    let order = PlaceOrder {
        by,
        market,
        side: rng.pick(&[Side::Buy, Side::Sell]),
        price: Some(price(mid - 5 + rng.below(11))),
        size: OrderSize::Qty(qty(lots_min + rng.below(20))),
        time_in_force: TimeInForce::Gtc,
        post_only: false,
        stp: rng.pick(&[None, Some(SelfTradePrevention::CancelMaker), Some(SelfTradePrevention::CancelBoth)]),
        client_order_id,
    };
    match rng.below(10) {
        0 => PlaceOrder { time_in_force: TimeInForce::Ioc, ..order },
        1 => PlaceOrder { time_in_force: TimeInForce::Fok, ..order },
        2 => PlaceOrder { price: None, time_in_force: rng.pick(&[TimeInForce::Ioc, TimeInForce::Fok]), ..order },
        3 => {
            let size = OrderSize::QuoteBudget(amount(1 + rng.below(20_000)));
            PlaceOrder { side: Side::Buy, price: None, size, time_in_force: TimeInForce::Ioc, ..order }
        }
        4 => PlaceOrder { post_only: true, ..order },
        _ => order,
    }
}

/// A resting order chosen at random, with its owner.
fn random_resting(t: &Bench, rng: &mut Rng) -> Option<(AccountId, OrderId, u64)> {
    let mut resting: Vec<_> =
        t.engine.orders().iter().map(|(_, node)| (node.id(), node.account(), node.price().ticks())).collect();
    if resting.is_empty() {
        return None;
    }
    resting.sort_unstable();
    let (order, account, price_ticks) = rng.pick(&resting);
    Some((AccountId::new(account), order, price_ticks))
}

#[test]
fn a_long_mixed_stream_keeps_market_data_gapless_and_the_books_consistent() {
    let mut t = Bench::new();
    let traders: Vec<AccountId> = (0..4)
        .map(|index| {
            let account = t.open(index % 2);
            t.fund(account, BTC, 100_000 * LOT);
            t.fund(account, USD, 100_000_000);
            t.fund(account, EUR, 1_000_000_000);
            account
        })
        .collect();
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let (mut trades, mut level_updates, mut amends) = (0, 0, 0);
    for _ in 0..2_000 {
        let by = rng.pick(&traders);
        let resting = random_resting(&t, &mut rng);
        let command = match (rng.below(10), resting) {
            (6, Some((owner, order, _))) => Command::CancelOrder(CancelOrder { by: owner, order: OrderRef::Id(order) }),
            (7 | 8, Some((owner, order, price_ticks))) => {
                let new_price = (rng.below(2) == 0).then(|| price_ticks + rng.below(7) - 3);
                let new_qty = if rng.below(2) == 0 { Some(1 + rng.below(25)) } else { None };
                amend(owner, OrderRef::Id(order), new_price, new_qty)
            }
            (9, _) => cancel_all(by, rng.pick(&[None, Some(BTC_USD), Some(EUR_USD)])),
            _ => Command::PlaceOrder(random_order(&mut rng, by)),
        };
        for event in t.apply(command) {
            match event {
                Event::Trade { .. } => trades += 1,
                Event::BookChanged { .. } => level_updates += 1,
                Event::OrderAmended { .. } => amends += 1,
                _ => {}
            }
        }
    }
    // The stream did exercise the book.
    assert!(trades > 300 && level_updates > 1_000 && amends > 100, "{trades} {level_updates} {amends}");
    assert!(t.engine.reconcile().is_balanced());
}

// ---------------------------------------------------------------------------------
// Markets: configuration, run-time addition, decimal conversion.
// ---------------------------------------------------------------------------------

fn spec(base: AssetId, quote: AssetId, maker_bps: u16, taker_bps: u16) -> MarketSpec {
    MarketSpec {
        base,
        quote,
        lot: LOT,
        tick: 1,
        qty_min: qty(1),
        qty_max: qty(1_000_000),
        fees: FeeSchedule::new(vec![FeeRate { maker_bps, taker_bps }]).expect("a valid fee schedule"),
    }
}

#[test]
fn markets_load_from_toml_with_their_fees_per_tier() {
    let t = Bench::new();
    let btc_usd = t.engine.market(BTC_USD).expect("configured").spec();
    assert_eq!(
        (btc_usd.base, btc_usd.quote, btc_usd.lot, btc_usd.tick, btc_usd.qty_min, btc_usd.qty_max),
        (BTC, USD, 10_000, 1, qty(1), qty(1_000_000))
    );
    let tiers = [FeeRate { maker_bps: 10, taker_bps: 20 }, FeeRate { maker_bps: 5, taker_bps: 10 }];
    assert_eq!(btc_usd.fees.tiers(), tiers);
    assert_eq!(btc_usd.fees.rate(KycTier::new(9).expect("a valid tier")), tiers[1]);
    let eur_usd = t.engine.market(EUR_USD).expect("configured").spec();
    assert_eq!((eur_usd.base, eur_usd.quote, eur_usd.qty_min, eur_usd.qty_max), (EUR, USD, qty(5), qty(100_000)));
    assert!(t.engine.market(NO_MARKET).is_none());

    // Without fees, a market is free.
    let text = format!(
        "{ASSETS_TOML}[[markets]]\nbase = \"EUR\"\nquote = \"USD\"\nlot = 1\ntick = 1\nqty_min = 1\nqty_max = 9\n"
    );
    let config = Config::from_toml_str(&text).expect("a valid config");
    assert_eq!(config.markets()[0].fees, FeeSchedule::free());
}

#[test]
fn bad_market_declarations_fail_to_load_with_a_reason() {
    let load = |market: &str| Config::from_toml_str(&format!("{ASSETS_TOML}[[markets]]\n{market}\n"));
    let good = "lot = 1\ntick = 1\nqty_min = 1\nqty_max = 10";
    let pair = "base = \"BTC\"\nquote = \"USD\"";
    let market = |error| Err(ConfigError::Market(error));
    let cases = [
        (format!("base = \"ETH\"\nquote = \"USD\"\n{good}"), Err(ConfigError::UnknownAsset { code: "ETH".into() })),
        (format!("base = \"USD\"\nquote = \"USD\"\n{good}"), market(MarketError::SameAsset)),
        (format!("{pair}\nlot = 0\ntick = 1\nqty_min = 1\nqty_max = 10"), market(MarketError::ZeroUnit)),
        (format!("{pair}\nlot = 1\ntick = 0\nqty_min = 1\nqty_max = 10"), market(MarketError::ZeroUnit)),
        (
            format!("{pair}\nlot = 1\ntick = 1\nqty_min = 0\nqty_max = 10"),
            market(MarketError::QtyBounds { min: 0, max: 10 }),
        ),
        (
            format!("{pair}\nlot = 1\ntick = 1\nqty_min = 11\nqty_max = 10"),
            market(MarketError::QtyBounds { min: 11, max: 10 }),
        ),
        (
            format!("{pair}\n{good}\nfees = [{{ maker_bps = 1001, taker_bps = 0 }}]"),
            market(MarketError::FeeTooHigh { bps: 1_001 }),
        ),
        (
            format!("{pair}\n{good}\nfees = [{}]", ["{ maker_bps = 1, taker_bps = 1 }"; 11].join(", ")),
            market(MarketError::FeeTiers { count: 11 }),
        ),
    ];
    for (text, expected) in cases {
        assert_eq!(load(&text), expected, "{text}");
    }
    let twice = format!("{ASSETS_TOML}{MARKETS_TOML}[[markets]]\n{pair}\n{good}\n");
    let duplicate = MarketError::Duplicate { base: "BTC".into(), quote: "USD".into() };
    assert_eq!(Config::from_toml_str(&twice), market(duplicate));
}

#[test]
fn markets_can_be_added_at_run_time_and_trade_at_once() {
    let mut t = Bench::new();
    let events = t.apply(Command::AddMarket(AddMarket { spec: spec(BTC, EUR, 10, 20) }));
    let btc_eur = MarketId::new(2);
    assert_eq!(events, [Event::MarketAdded { market: btc_eur, base: BTC, quote: EUR }]);
    assert_eq!(t.engine.market(btc_eur).map(|market| market.spec().clone()), Some(spec(BTC, EUR, 10, 20)));

    let seller = t.trader(0, BTC, LOT);
    let buyer = t.trader(0, EUR, 10_000);
    let (_, events) = t.place(PlaceOrder { market: btc_eur, ..limit(seller, Side::Sell, 650, 1) });
    assert_eq!(feed(&events), [Feed::Level { market_seq: 1, side: Side::Sell, price: 650, total: 1, orders: 1 }]);
    let (_, events) = t.place(PlaceOrder { market: btc_eur, ..market_order(buyer, Side::Buy, 1) });
    assert_eq!(
        fills(&events).iter().map(|fill| (fill.price, fill.maker_fee, fill.taker_fee)).collect::<Vec<_>>(),
        [(650, 0, 1)]
    );
    assert_eq!((t.available(seller, EUR), t.available(buyer, EUR), t.available(buyer, BTC)), (650, 10_000 - 651, LOT));
    assert_eq!(t.fees(EUR), 1);
}

#[test]
fn bad_or_duplicate_markets_are_rejected_at_run_time() {
    let mut t = Bench::new();
    t.apply(Command::AddMarket(AddMarket { spec: spec(BTC, EUR, 10, 20) }));
    let good = spec(USD, EUR, 0, 0);
    let bad = [
        spec(BTC, EUR, 0, 0),
        spec(BTC, USD, 10, 20),
        MarketSpec { base: AssetId::new(9), ..good.clone() },
        MarketSpec { quote: USD, ..good.clone() },
        MarketSpec { lot: 0, ..good.clone() },
        MarketSpec { tick: 0, ..good.clone() },
        MarketSpec { qty_min: Qty::ZERO, ..good.clone() },
        MarketSpec { qty_min: qty(11), qty_max: qty(10), ..good.clone() },
        // The largest order's base amount does not fit an `Amount`.
        MarketSpec { lot: u64::MAX / 2, ..good.clone() },
    ];
    for spec in bad {
        t.rejects(Command::AddMarket(AddMarket { spec }), RejectReason::InvalidMarket);
    }
    assert_eq!(t.engine.markets().len(), 3);
    assert!(matches!(t.apply(Command::AddMarket(AddMarket { spec: good }))[..], [Event::MarketAdded { .. }]));
}

#[test]
fn prices_and_quantities_round_trip_through_decimals() {
    let t = Bench::new();
    let assets = t.engine.assets();
    let btc_usd = t.engine.market(BTC_USD).expect("configured");
    assert_eq!(btc_usd.spec().price_increment(assets).to_string(), "100");
    assert_eq!(btc_usd.spec().parse_price(assets, "65000"), Ok(price(650)));
    assert_eq!(btc_usd.spec().parse_price(assets, " 65100.00 "), Ok(price(651)));
    assert!(matches!(btc_usd.spec().parse_price(assets, "65050"), Err(PriceError::OffTick { .. })));
    assert!(matches!(btc_usd.spec().parse_price(assets, "0"), Err(PriceError::OutOfRange { .. })));
    assert!(matches!(btc_usd.spec().parse_price(assets, "sixty"), Err(PriceError::NotANumber { .. })));
    let past_max =
        btc_usd.spec().price_to_decimal(assets, price(PRICE_TICKS_MAX)) + btc_usd.spec().price_increment(assets);
    assert!(matches!(btc_usd.spec().parse_price(assets, &past_max.to_string()), Err(PriceError::OutOfRange { .. })));
    assert_eq!(btc_usd.spec().parse_qty(assets, "0.0001"), Ok(qty(1)));
    assert_eq!(btc_usd.spec().parse_qty(assets, "0.5"), Ok(qty(5_000)));
    assert!(matches!(btc_usd.spec().parse_qty(assets, "0.00015"), Err(PriceError::OffLot { .. })));
    assert!(matches!(btc_usd.spec().parse_qty(assets, "-1"), Err(PriceError::Quantity(_))));
    // 0.5 BTC at 65 000 USD is 32 500 USD: price × qty × tick cents.
    assert_eq!(btc_usd.spec().quote_amount(price(650), qty(5_000)), Some(amount(3_250_000)));

    let eur_usd = t.engine.market(EUR_USD).expect("configured");
    assert_eq!(eur_usd.spec().price_increment(assets).to_string(), "0.0001");
    assert_eq!(eur_usd.spec().parse_price(assets, "1.0850"), Ok(price(10_850)));
    assert!(matches!(eur_usd.spec().parse_price(assets, "1.08505"), Err(PriceError::OffTick { .. })));
    assert_eq!(eur_usd.spec().parse_qty(assets, "100"), Ok(qty(1)));
    assert!(matches!(eur_usd.spec().parse_qty(assets, "150"), Err(PriceError::OffLot { .. })));

    for market in [btc_usd, eur_usd] {
        for ticks in [1, 2, 99, 650, 10_850, 65_432, PRICE_TICKS_MAX - 1, PRICE_TICKS_MAX] {
            let text = market.spec().price_to_decimal(assets, price(ticks)).to_string();
            assert_eq!(market.spec().parse_price(assets, &text), Ok(price(ticks)), "{text}");
        }
        for lots in [1, 3, 5_000, 1_000_000, 123_456_789] {
            let text = market.spec().qty_to_decimal(assets, qty(lots)).to_string();
            assert_eq!(market.spec().parse_qty(assets, &text), Ok(qty(lots)), "{text}");
        }
    }
}

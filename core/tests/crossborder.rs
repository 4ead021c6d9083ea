//! Cross-border payments: quotes, execution of quotes, direct payments under a rate
//! limit, smart routing, expiry, slippage, idempotency, determinism and snapshots.
//!
//! Every command goes through `World::apply`, which runs `Engine::check_invariants`
//! (conservation per asset including the house's fee and remainder accounts, holds
//! equal to what orders reserve, uncrossed books, the quote table) after each step.
//!
//! The property tests at the end check, on small random books:
//! - the route and amounts of every quote against a brute-force reference that
//!   enumerates every route within the hop limit and prices it lot by lot (so the
//!   chosen route is never worse for the payee than any other);
//! - that a cross-border command moves exactly the quoted (or planned) amounts or
//!   nothing at all, and that every asset is conserved across multi-hop conversions.
//!
//! Units of the fixed world: every market's lot is one whole base unit (100 minor
//! units) and its tick one quote minor unit per lot, so a price in ticks is quote
//! minor units per whole base unit: EUR/USD at 108 is 1.08 USD per EUR, USD/JPY at 150
//! is 150 JPY per USD. Taker fees are 20 bps at tier 0, 10 bps at tier 1.

use std::collections::BTreeMap;

use bourse_core::Engine;
use bourse_core::asset::{Asset, AssetCode, AssetTable};
use bourse_core::book::{MarketId, Price, Qty, Side, TimeInForce};
use bourse_core::command::{
    ActivateRules, Command, CommandKind, CrossBorderAmount, Deposit, ExecuteQuote, FreezeAccount, OpenAccount,
    OrderSize, PayCrossBorder, PlaceOrder, PublishRules, QuotePayment, RateLimit, Refund, ReviewDecision,
    RollbackRules, SequencedCommand, Transfer, UnfreezeAccount, Withdraw,
};
use bourse_core::config::{Config, CrossBorderConfig};
use bourse_core::event::{Event, Outcome, RejectReason};
use bourse_core::ids::{
    AccountId, AssetId, HoldId, IdempotencyKey, KycTier, OwnerId, PaymentId, QuoteId, Reference, RuleVersion, Seq,
    Timestamp,
};
use bourse_core::limits::NANOS_PER_SECOND;
use bourse_core::market::{FeeRate, FeeSchedule, MarketSpec};
use bourse_core::money::Amount;
use bourse_core::route::Route;
use bourse_core::rules::{RuleKind, RuleSet};
use bourse_core::state::EngineState;
use proptest::prelude::*;

const CONFIG: &str = r#"
[[assets]]
code = "EUR"
scale = 2
[[assets]]
code = "USD"
scale = 2
[[assets]]
code = "JPY"
scale = 0
[[assets]]
code = "GBP"
scale = 2
[[assets]]
code = "CHF"
scale = 2

[[markets]]
base = "EUR"
quote = "USD"
lot = 100
tick = 1
qty_min = 1
qty_max = 1000000
fees = [{ maker_bps = 10, taker_bps = 20 }, { maker_bps = 5, taker_bps = 10 }]

[[markets]]
base = "USD"
quote = "JPY"
lot = 100
tick = 1
qty_min = 1
qty_max = 1000000
fees = [{ maker_bps = 10, taker_bps = 20 }, { maker_bps = 5, taker_bps = 10 }]

[[markets]]
base = "EUR"
quote = "JPY"
lot = 100
tick = 1
qty_min = 1
qty_max = 1000000
fees = [{ maker_bps = 10, taker_bps = 20 }, { maker_bps = 5, taker_bps = 10 }]

[[markets]]
base = "GBP"
quote = "USD"
lot = 100
tick = 1
qty_min = 50
qty_max = 1000000
fees = [{ maker_bps = 10, taker_bps = 20 }, { maker_bps = 5, taker_bps = 10 }]

[crossborder]
max_hops = 2
quote_ttl_ms = 30000
"#;

const EUR: AssetId = AssetId::new(0);
const USD: AssetId = AssetId::new(1);
const JPY: AssetId = AssetId::new(2);
const GBP: AssetId = AssetId::new(3);
/// Traded in no market.
const CHF: AssetId = AssetId::new(4);
const EUR_USD: MarketId = MarketId::new(0);
const USD_JPY: MarketId = MarketId::new(1);
const EUR_JPY: MarketId = MarketId::new(2);
const GBP_USD: MarketId = MarketId::new(3);
const START: u64 = 1_700_000_000_000_000_000;
/// Command time between two commands.
const STEP: u64 = 1_000;

// ---------------------------------------------------------------------------------
// The world: an engine, its sequencer, and helpers.
// ---------------------------------------------------------------------------------

#[derive(Clone)]
struct World {
    engine: Engine,
    seq: u64,
    now: u64,
    owners: u64,
    keys: u128,
    /// Every command applied, as the sequencer stamped it.
    log: Vec<SequencedCommand>,
}

impl World {
    fn new() -> Self {
        Self::with_config(&Config::from_toml_str(CONFIG).expect("test configuration is valid"))
    }

    fn with_config(config: &Config) -> Self {
        Self { engine: Engine::new(config), seq: 0, now: START, owners: 0, keys: 0, log: Vec::new() }
    }

    fn apply(&mut self, command: Command) -> Vec<Event> {
        let events = self.apply_unchecked(command);
        self.engine.check_invariants();
        events
    }

    fn apply_unchecked(&mut self, command: Command) -> Vec<Event> {
        self.seq += 1;
        self.now += STEP;
        let sequenced =
            SequencedCommand { seq: Seq::new(self.seq), timestamp: Timestamp::from_nanos(self.now), command };
        let mut events = Vec::new();
        self.engine.apply(&sequenced, &mut events);
        self.log.push(sequenced);
        events
    }

    /// Lets `nanos` of command time pass (then one `Tick`).
    fn wait(&mut self, nanos: u64) {
        self.now += nanos - STEP;
        self.apply(Command::Tick);
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
        let key = self.key();
        let reference = Reference::new("wire").expect("a valid reference");
        let deposit = Deposit { account, key, asset, amount: amount(minor_units), reference };
        let events = self.apply(Command::Deposit(deposit));
        assert!(matches!(events[0], Event::Deposited { .. }), "deposit refused: {events:?}");
    }

    fn key(&mut self) -> IdempotencyKey {
        self.keys += 1;
        IdempotencyKey::new(self.keys)
    }

    /// An account of `tier` holding plenty of every asset, to make markets.
    fn maker(&mut self, tier: u8) -> AccountId {
        let account = self.open(tier);
        for asset in [EUR, USD, JPY, GBP] {
            self.fund(account, asset, 1_000_000_000_000);
        }
        account
    }

    /// A GTC limit order that must rest without trading.
    fn rest(&mut self, by: AccountId, market: MarketId, side: Side, price_ticks: u64, lots: u64) {
        let events = self.apply(Command::PlaceOrder(limit(by, market, side, price_ticks, lots)));
        assert!(matches!(events[0], Event::OrderAccepted { .. }), "order refused: {events:?}");
        assert!(!events.iter().any(|event| matches!(event, Event::Trade { .. })), "order traded: {events:?}");
    }

    fn quote(
        &mut self,
        by: AccountId,
        payee: AccountId,
        from: AssetId,
        to: AssetId,
        how: CrossBorderAmount,
    ) -> Vec<Event> {
        let command = QuotePayment { by, payee, from, to, amount: how, max_hops: None, ttl: None };
        self.apply(Command::QuotePayment(command))
    }

    fn execute(&mut self, by: AccountId, quote: QuoteId) -> Vec<Event> {
        let key = self.key();
        self.apply(Command::ExecuteQuote(ExecuteQuote { by, key, quote }))
    }

    #[allow(clippy::too_many_arguments)]
    fn pay(
        &mut self,
        by: AccountId,
        payee: AccountId,
        (from, to): (AssetId, AssetId),
        how: CrossBorderAmount,
        limit: RateLimit,
        max_hops: Option<u8>,
    ) -> Vec<Event> {
        let key = self.key();
        self.apply(Command::PayCrossBorder(PayCrossBorder { by, key, payee, from, to, amount: how, limit, max_hops }))
    }

    fn available(&self, account: AccountId, asset: AssetId) -> u64 {
        self.engine.balance(account, asset).expect("account exists").available().minor_units()
    }

    fn fees(&self, asset: AssetId) -> u64 {
        self.engine.totals()[usize::from(asset.get())].fees().minor_units()
    }

    fn remainders(&self, asset: AssetId) -> u64 {
        self.engine.totals()[usize::from(asset.get())].remainders().minor_units()
    }

    /// Every balance, every book level and every running total: what "nothing moved"
    /// compares.
    fn money(&self) -> Money {
        let mut balances = BTreeMap::new();
        for index in 0..self.engine.account_count() as u32 {
            let account = self.engine.account(AccountId::new(index)).expect("open");
            for balance in account.balances() {
                balances.insert((index, balance.asset().get()), (balance.available(), balance.held()));
            }
        }
        let mut levels = BTreeMap::new();
        for (index, market) in self.engine.markets().iter().enumerate() {
            for side in [Side::Buy, Side::Sell] {
                for level in market.book().side(side).levels() {
                    levels.insert(
                        (index, side == Side::Sell, level.price().ticks()),
                        (level.total().lots(), level.count()),
                    );
                }
            }
        }
        let totals = self
            .engine
            .totals()
            .iter()
            .map(|totals| (totals.in_accounts(), totals.fees(), totals.remainders()))
            .collect();
        Money { balances, levels, totals }
    }
}

#[derive(Debug, PartialEq, Eq)]
struct Money {
    balances: BTreeMap<(u32, u16), (Amount, Amount)>,
    levels: BTreeMap<(usize, bool, u64), (u64, u32)>,
    totals: Vec<(Amount, Amount, Amount)>,
}

fn amount(minor_units: u64) -> Amount {
    Amount::new(minor_units).expect("a valid amount")
}

fn limit(by: AccountId, market: MarketId, side: Side, price_ticks: u64, lots: u64) -> PlaceOrder {
    PlaceOrder {
        by,
        market,
        side,
        price: Some(Price::new(price_ticks).expect("a valid price")),
        size: OrderSize::Qty(Qty::new(lots).expect("a valid quantity")),
        time_in_force: TimeInForce::Gtc,
        post_only: false,
        stp: None,
        client_order_id: None,
    }
}

fn market_sell(by: AccountId, market: MarketId, lots: u64) -> Command {
    Command::PlaceOrder(PlaceOrder {
        price: None,
        time_in_force: TimeInForce::Ioc,
        ..limit(by, market, Side::Sell, 1, lots)
    })
}

fn send(minor_units: u64) -> CrossBorderAmount {
    CrossBorderAmount::Send(amount(minor_units))
}

fn receive(minor_units: u64) -> CrossBorderAmount {
    CrossBorderAmount::Receive(amount(minor_units))
}

fn route(markets: &[MarketId]) -> Route {
    Route::new(markets).expect("a valid route")
}

/// One leg, from a `QuoteLeg` or a `CrossBorderLeg`: (market, side, lots, input,
/// output, taker fee, remainder).
type LegView = (MarketId, Side, u64, u64, u64, u64, u64);

fn quote_legs(events: &[Event]) -> Vec<LegView> {
    events
        .iter()
        .filter_map(|event| match *event {
            Event::QuoteLeg { market, side, qty, input, output, taker_fee, remainder, .. } => Some((
                market,
                side,
                qty.lots(),
                input.minor_units(),
                output.minor_units(),
                taker_fee.minor_units(),
                remainder.minor_units(),
            )),
            _ => None,
        })
        .collect()
}

fn paid_legs(events: &[Event]) -> Vec<LegView> {
    events
        .iter()
        .filter_map(|event| match *event {
            Event::CrossBorderLeg { market, side, qty, input, output, taker_fee, remainder, .. } => Some((
                market,
                side,
                qty.lots(),
                input.minor_units(),
                output.minor_units(),
                taker_fee.minor_units(),
                remainder.minor_units(),
            )),
            _ => None,
        })
        .collect()
}

/// The `Quoted` event: (quote, route, send, receive, expires at).
fn quoted(events: &[Event]) -> (QuoteId, Route, u64, u64, Timestamp) {
    events
        .iter()
        .find_map(|event| match *event {
            Event::Quoted { quote, route, send, receive, expires_at, .. } => {
                Some((quote, route, send.minor_units(), receive.minor_units(), expires_at))
            }
            _ => None,
        })
        .unwrap_or_else(|| panic!("no quote: {events:?}"))
}

fn runners_up(events: &[Event]) -> Vec<(u8, Route, u64, u64)> {
    events
        .iter()
        .filter_map(|event| match *event {
            Event::QuoteRunnerUp { rank, route, send, receive, .. } => {
                Some((rank, route, send.minor_units(), receive.minor_units()))
            }
            _ => None,
        })
        .collect()
}

/// The `CrossBorderPaid` event: (payment, send, receive, route, surplus, quote).
fn paid(events: &[Event]) -> (PaymentId, u64, u64, Route, u64, Option<QuoteId>) {
    events
        .iter()
        .find_map(|event| match *event {
            Event::CrossBorderPaid { payment, send, receive, route, surplus, quote, .. } => {
                Some((payment, send.minor_units(), receive.minor_units(), route, surplus.minor_units(), quote))
            }
            _ => None,
        })
        .unwrap_or_else(|| panic!("not paid: {events:?}"))
}

fn rejection(events: &[Event]) -> Option<RejectReason> {
    events.iter().find_map(|event| match *event {
        Event::Rejected { reason, .. } => Some(reason),
        _ => None,
    })
}

/// (maker fee, taker fee) of every `Trade`, in order.
fn trade_fees(events: &[Event]) -> Vec<(MarketId, u64, u64, u64, u64)> {
    events
        .iter()
        .filter_map(|event| match *event {
            Event::Trade { market, price, qty, maker_fee, taker_fee, .. } => {
                Some((market, price.ticks(), qty.lots(), maker_fee.minor_units(), taker_fee.minor_units()))
            }
            _ => None,
        })
        .collect()
}

/// A world with a payer (tier 0, 10,000 EUR), a payee, a maker and the books of the
/// two-hop example: EUR/USD bids 108 × 2,000; USD/JPY bids 150 × 5,000; EUR/JPY bids
/// 160 × 5,000 (worse than 1.08 × 150 = 162 through USD).
fn two_hop_world() -> (World, AccountId, AccountId, AccountId) {
    let mut world = World::new();
    let maker = world.maker(0);
    let payer = world.open(0);
    world.fund(payer, EUR, 1_000_000);
    let payee = world.open(0);
    world.rest(maker, EUR_USD, Side::Buy, 108, 2_000);
    world.rest(maker, USD_JPY, Side::Buy, 150, 5_000);
    world.rest(maker, EUR_JPY, Side::Buy, 160, 5_000);
    (world, payer, payee, maker)
}

// ---------------------------------------------------------------------------------
// Quote and execute.
// ---------------------------------------------------------------------------------

#[test]
fn one_hop_quote_then_execute_moves_exactly_the_quoted_amounts() {
    let mut world = World::new();
    let maker = world.maker(0);
    let payer = world.open(0);
    world.fund(payer, EUR, 500_000);
    let payee = world.open(0);
    // Two bids for EUR in JPY: 500 EUR at 162, 1,000 EUR at 161.
    world.rest(maker, EUR_JPY, Side::Buy, 162, 500);
    world.rest(maker, EUR_JPY, Side::Buy, 161, 1_000);

    let events = world.quote(payer, payee, EUR, JPY, send(100_000));
    let legs = quote_legs(&events);
    let (quote, chosen, quoted_send, quoted_receive, expires_at) = quoted(&events);
    assert_eq!(chosen, route(&[EUR_JPY]));
    // 500 × 162 = 81,000 less 162 fee; 500 × 161 = 80,500 less 161 fee (20 bps, rounded down).
    assert_eq!((quoted_send, quoted_receive), (100_000, 80_838 + 80_339));
    assert_eq!(quote_legs(&events), [(EUR_JPY, Side::Sell, 1_000, 100_000, 161_177, 323, 0)]);
    assert_eq!(expires_at, Timestamp::from_nanos(world.now + 30 * NANOS_PER_SECOND));
    assert!(runners_up(&events).is_empty(), "no other route: {events:?}");
    // A quote moves nothing.
    assert_eq!(world.available(payer, EUR), 500_000);

    let fees_before = world.fees(JPY);
    let events = world.execute(payer, quote);
    let (payment, sent, received, paid_route, surplus, from_quote) = paid(&events);
    assert_eq!((sent, received, paid_route, surplus, from_quote), (100_000, 161_177, chosen, 0, Some(quote)));
    assert_eq!(paid_legs(&events), legs, "execution on unchanged books is the quote, leg by leg");
    // Makers are paid their own fee (10 bps), the payer its taker fee, each per fill.
    assert_eq!(trade_fees(&events), [(EUR_JPY, 162, 500, 81, 162), (EUR_JPY, 161, 500, 80, 161)]);
    assert_eq!(world.fees(JPY) - fees_before, 81 + 162 + 80 + 161);
    assert_eq!(world.available(payer, EUR), 400_000);
    assert_eq!(world.available(payer, JPY), 0);
    assert_eq!(world.available(payee, JPY), 161_177);
    assert_eq!(world.engine.balance(maker, EUR).unwrap().available().minor_units(), 1_000_000_000_000 + 100_000);
    assert!(payment.get() >= 1);
    // The levels the legs took are published.
    assert!(events.iter().any(|event| matches!(event, Event::BookChanged { market: EUR_JPY, .. })));
}

#[test]
fn two_hop_route_through_usd_beats_the_direct_market() {
    let (mut world, payer, payee, _maker) = two_hop_world();
    let events = world.quote(payer, payee, EUR, JPY, receive(150_000));
    let (quote, chosen, quoted_send, quoted_receive, _) = quoted(&events);
    assert_eq!(chosen, route(&[EUR_USD, USD_JPY]));
    assert_eq!((quoted_send, quoted_receive), (93_000, 150_000));
    assert_eq!(
        quote_legs(&events),
        [
            // 930 EUR at 1.08: 1,004.40 USD less 2.00 fee; 0.40 USD more than leg 2 needs.
            (EUR_USD, Side::Sell, 930, 93_000, 100_240, 200, 40),
            // 1,002 USD at 150: 150,300 JPY less 300 fee: exactly what the payee gets.
            (USD_JPY, Side::Sell, 1_002, 100_200, 150_000, 300, 0),
        ]
    );
    // The direct market needs 940 EUR (150,400 − 300 JPY fee ≥ 150,000).
    assert_eq!(runners_up(&events), [(1, route(&[EUR_JPY]), 94_000, 150_000)]);

    let events = world.execute(payer, quote);
    assert_eq!((paid(&events).1, paid(&events).2, paid(&events).4), (93_000, 150_000, 0));
    assert_eq!(paid_legs(&events), quote_legs_of_example());
    assert_eq!(world.available(payer, EUR), 1_000_000 - 93_000);
    assert_eq!((world.available(payer, USD), world.available(payer, JPY)), (0, 0), "intermediates pass through");
    assert_eq!(world.available(payee, JPY), 150_000);
    assert_eq!(world.remainders(USD), 40, "the lot-rounding remainder is the house's, recorded");
    assert_eq!(world.remainders(EUR) + world.remainders(JPY), 0);
    let report = world.engine.reconcile();
    assert!(report.is_balanced());
    assert_eq!(report.assets[usize::from(USD.get())].remainders, 40);
}

fn quote_legs_of_example() -> Vec<LegView> {
    vec![(EUR_USD, Side::Sell, 930, 93_000, 100_240, 200, 40), (USD_JPY, Side::Sell, 1_002, 100_200, 150_000, 300, 0)]
}

// ---------------------------------------------------------------------------------
// Expiry, slippage, limits.
// ---------------------------------------------------------------------------------

#[test]
fn a_quote_expires_by_command_time() {
    let (mut world, payer, payee, _) = two_hop_world();
    let (quote, _, _, _, expires_at) = quoted(&world.quote(payer, payee, EUR, JPY, receive(150_000)));
    assert_eq!(world.engine.quotes_kept(), 1);
    // One nanosecond before its expiry it still executes (on a twin).
    let mut early = world.clone();
    early.now = expires_at.as_nanos() - 1 - STEP;
    assert_eq!(paid(&early.execute(payer, quote)).2, 150_000);
    // At its expiry it is forgotten, and executing it moves nothing.
    world.now = expires_at.as_nanos() - STEP;
    let before = world.money();
    let events = world.execute(payer, quote);
    assert_eq!(rejection(&events), Some(RejectReason::QuoteExpired), "{events:?}");
    assert_eq!(world.money(), before);
    assert_eq!(world.engine.quotes_kept(), 0);

    // A quote's own lifetime, bounded.
    let ttl = |nanos| QuotePayment {
        by: payer,
        payee,
        from: EUR,
        to: JPY,
        amount: receive(1_000),
        max_hops: None,
        ttl: Some(Timestamp::from_nanos(nanos)),
    };
    let events = world.apply(Command::QuotePayment(ttl(NANOS_PER_SECOND)));
    assert_eq!(quoted(&events).4, Timestamp::from_nanos(world.now + NANOS_PER_SECOND));
    for nanos in [0, 300 * NANOS_PER_SECOND + 1] {
        let events = world.apply(Command::QuotePayment(ttl(nanos)));
        assert_eq!(rejection(&events), Some(RejectReason::InvalidExpiry));
    }
    world.wait(NANOS_PER_SECOND);
    assert_eq!(world.engine.quotes_kept(), 0, "expired while idle, by a Tick");
}

#[test]
fn execution_is_refused_when_the_books_moved_past_the_quote() {
    let (mut world, payer, payee, maker) = two_hop_world();
    world.rest(maker, EUR_USD, Side::Buy, 107, 1_000);
    let (quote, _, quoted_send, ..) = quoted(&world.quote(payer, payee, EUR, JPY, receive(150_000)));
    assert_eq!(quoted_send, 93_000);
    // Someone sells 1,500 EUR into the 108 bid: 500 are left there, the rest is at 107.
    let seller = world.open(0);
    world.fund(seller, EUR, 150_000);
    world.apply(market_sell(seller, EUR_USD, 1_500));

    let before = world.money();
    let events = world.execute(payer, quote);
    assert_eq!(rejection(&events), Some(RejectReason::RateMoved));
    // 500 at 108 and 434 at 107 now: 934 EUR instead of 930, 4,302 ppm (0.43%) worse.
    let moved =
        Event::RateMoved { payer, asset: EUR, limit: amount(93_000), achievable: amount(93_400), moved_ppm: 4_302 };
    assert_eq!(
        events,
        [
            moved,
            Event::Rejected { kind: bourse_core::command::CommandKind::ExecuteQuote, reason: RejectReason::RateMoved }
        ]
    );
    assert_eq!(world.money(), before, "nothing moved");

    // The quote is still open: once the bid is back, it executes (with a new key).
    world.rest(maker, EUR_USD, Side::Buy, 108, 1_500);
    let events = world.execute(payer, quote);
    assert_eq!((paid(&events).1, paid(&events).2), (93_000, 150_000));
}

#[test]
fn a_better_book_at_execution_leaves_the_surplus_to_the_house() {
    let (mut world, payer, payee, maker) = two_hop_world();
    let (quote, ..) = quoted(&world.quote(payer, payee, EUR, JPY, receive(150_000)));
    world.rest(maker, EUR_USD, Side::Buy, 109, 2_000);
    let events = world.execute(payer, quote);
    let (_, sent, received, _, surplus, _) = paid(&events);
    // The payer sends and the payee receives exactly the quoted amounts; 922 EUR were
    // enough, and the 8 EUR the quote no longer needed are the house's.
    assert_eq!((sent, received, surplus), (93_000, 150_000, 800));
    assert_eq!(
        paid_legs(&events),
        [(EUR_USD, Side::Sell, 922, 92_200, 100_298, 200, 98), (USD_JPY, Side::Sell, 1_002, 100_200, 150_000, 300, 0)]
    );
    assert_eq!(world.available(payer, EUR), 1_000_000 - 93_000);
    assert_eq!(world.available(payee, JPY), 150_000);
    assert_eq!((world.remainders(EUR), world.remainders(USD)), (800, 98));
    assert!(world.engine.reconcile().is_balanced());
}

#[test]
fn a_direct_payment_meets_its_limit_or_moves_nothing() {
    let (mut world, payer, payee, _) = two_hop_world();
    // Send 1,000 EUR: 1,077.84 USD through EUR/USD, of which USD/JPY takes 1,077 USD for
    // 161,550 JPY less 323 fee.
    let before = world.money();
    let events = world.pay(payer, payee, (EUR, JPY), send(100_000), RateLimit::MinReceive(amount(161_300)), None);
    assert_eq!(rejection(&events), Some(RejectReason::RateMoved));
    let moved =
        Event::RateMoved { payer, asset: JPY, limit: amount(161_300), achievable: amount(161_227), moved_ppm: 453 };
    assert_eq!(events[0], moved);
    assert_eq!(world.money(), before);

    let events = world.pay(payer, payee, (EUR, JPY), send(100_000), RateLimit::MinReceive(amount(161_227)), None);
    let (_, sent, received, chosen, surplus, quote) = paid(&events);
    assert_eq!((sent, received, chosen, surplus, quote), (100_000, 161_227, route(&[EUR_USD, USD_JPY]), 0, None));
    assert_eq!(
        paid_legs(&events),
        [
            (EUR_USD, Side::Sell, 1_000, 100_000, 107_784, 216, 84),
            (USD_JPY, Side::Sell, 1_077, 107_700, 161_227, 323, 0)
        ]
    );
    assert_eq!(world.available(payee, JPY), 161_227);
    assert_eq!(world.remainders(USD), 84);

    // Receive 150,000 JPY for at most 929 EUR: the best route needs 930.
    let before = world.money();
    let events = world.pay(payer, payee, (EUR, JPY), receive(150_000), RateLimit::MaxSend(amount(92_900)), None);
    let moved =
        Event::RateMoved { payer, asset: EUR, limit: amount(92_900), achievable: amount(93_000), moved_ppm: 1_077 };
    assert_eq!(events[0], moved);
    assert_eq!(world.money(), before);
    // With one hop only, the direct market is the route.
    let events = world.pay(payer, payee, (EUR, JPY), receive(150_000), RateLimit::MaxSend(amount(94_000)), Some(1));
    assert_eq!((paid(&events).1, paid(&events).3), (94_000, route(&[EUR_JPY])));
}

#[test]
fn a_thin_top_of_book_does_not_hide_a_better_route() {
    // Routes are priced in order of a bound from their best prices alone, and pricing
    // stops when no bound left can beat the best found. The direct market's top (one
    // lot at 170) promises more than the route through USD (1.08 × 150 = 162), but
    // its depth (161) gives less: 170 + 160,839 − 321 = 160,688 JPY against 161,227.
    let (mut world, payer, payee, maker) = two_hop_world();
    world.rest(maker, EUR_JPY, Side::Buy, 170, 1);
    world.rest(maker, EUR_JPY, Side::Buy, 161, 5_000);
    let events = world.pay(payer, payee, (EUR, JPY), send(100_000), RateLimit::MinReceive(amount(1)), None);
    assert_eq!((paid(&events).2, paid(&events).3), (161_227, route(&[EUR_USD, USD_JPY])));
    // A quote shows the direct market (untouched) as the runner-up, with what it gives.
    world.rest(maker, EUR_USD, Side::Buy, 108, 1_000);
    world.rest(maker, USD_JPY, Side::Buy, 150, 1_077);
    let events = world.quote(payer, payee, EUR, JPY, send(100_000));
    assert_eq!(quoted(&events).3, 161_227);
    assert_eq!(runners_up(&events), [(1, route(&[EUR_JPY]), 100_000, 160_688)]);
}

#[test]
fn fees_follow_the_payers_tier_per_leg() {
    let mut world = World::new();
    let maker = world.maker(0);
    let payer = world.open(1);
    world.fund(payer, EUR, 500_000);
    let payee = world.open(0);
    world.rest(maker, EUR_JPY, Side::Buy, 162, 500);
    world.rest(maker, EUR_JPY, Side::Buy, 161, 1_000);
    // 10 bps at tier 1: 81 and 80 (80.5 rounded down).
    let events = world.quote(payer, payee, EUR, JPY, send(100_000));
    assert_eq!(quote_legs(&events), [(EUR_JPY, Side::Sell, 1_000, 100_000, 161_339, 161, 0)]);
    let events = world.execute(payer, quoted(&events).0);
    assert_eq!(trade_fees(&events), [(EUR_JPY, 162, 500, 81, 81), (EUR_JPY, 161, 500, 80, 80)]);
}

#[test]
fn legs_are_fills_so_the_markets_minimum_order_size_does_not_apply() {
    // GBP/USD's orders are at least 50 lots; a 10 GBP payment's leg is a 10-lot fill.
    let mut world = World::new();
    let maker = world.maker(0);
    let payer = world.open(0);
    world.fund(payer, GBP, 1_000);
    let payee = world.open(0);
    world.rest(maker, GBP_USD, Side::Buy, 127, 100);
    let events = world.pay(payer, payee, (GBP, USD), send(1_000), RateLimit::MinReceive(amount(1)), None);
    // 10 × 127 = 1,270 cents less 2 fee.
    assert_eq!(paid_legs(&events), [(GBP_USD, Side::Sell, 10, 1_000, 1_268, 2, 0)]);
    assert_eq!(world.available(payee, USD), 1_268);
}

#[test]
fn a_buy_leg_spends_its_input_on_the_asks() {
    // USD → EUR buys EUR on EUR/USD: the input is quote (fee included), the output base.
    let mut world = World::new();
    let maker = world.maker(0);
    let payer = world.open(0);
    world.fund(payer, USD, 1_000_000);
    let payee = world.open(0);
    world.rest(maker, EUR_USD, Side::Sell, 110, 300);
    world.rest(maker, EUR_USD, Side::Sell, 111, 300);
    // Send at most 500 USD: 300 EUR at 1.10 cost 330.00 + 0.66 fee; of the 169.34 USD
    // left, 152 EUR at 1.11 cost 168.72 + 0.33 fee (153 would cost 170.13). 0.29 USD is
    // not enough for another lot and stays with the payer.
    let events = world.quote(payer, payee, USD, EUR, send(50_000));
    assert_eq!(quote_legs(&events), [(EUR_USD, Side::Buy, 452, 49_971, 45_200, 99, 0)]);
    let events = world.execute(payer, quoted(&events).0);
    assert_eq!((paid(&events).1, paid(&events).2), (49_971, 45_200));
    assert_eq!(trade_fees(&events), [(EUR_USD, 110, 300, 33, 66), (EUR_USD, 111, 152, 16, 33)]);
    assert_eq!(world.available(payer, USD), 1_000_000 - 49_971);
    assert_eq!(world.available(payee, EUR), 45_200);
}

// ---------------------------------------------------------------------------------
// Refusals.
// ---------------------------------------------------------------------------------

/// Applies a quote that must be refused for `reason` and change nothing.
fn refuses_quote(world: &mut World, command: QuotePayment, reason: RejectReason) {
    let mut twin = world.clone();
    twin.apply(Command::Tick);
    let events = world.apply(Command::QuotePayment(command));
    assert_eq!(events, [Event::Rejected { kind: bourse_core::command::CommandKind::QuotePayment, reason }]);
    assert_eq!(world.engine.state_hash(), twin.engine.state_hash(), "a refused quote changed the state");
}

#[test]
fn no_route_insufficient_liquidity_and_bad_shapes_are_refused() {
    let (mut world, payer, payee, _) = two_hop_world();
    let quote = |from, to, how, max_hops| QuotePayment { by: payer, payee, from, to, amount: how, max_hops, ttl: None };
    // CHF trades nowhere; GBP reaches JPY only through USD (two hops).
    refuses_quote(&mut world, quote(EUR, CHF, receive(100), None), RejectReason::NoRoute);
    refuses_quote(&mut world, quote(GBP, JPY, send(100), Some(1)), RejectReason::NoRoute);
    refuses_quote(&mut world, quote(EUR, EUR, send(100), None), RejectReason::NoRoute);
    // EUR → USD → GBP exists, but nobody offers GBP.
    refuses_quote(&mut world, quote(EUR, GBP, receive(100), None), RejectReason::InsufficientLiquidity);
    // More JPY than every route's depth together.
    refuses_quote(&mut world, quote(EUR, JPY, receive(1_000_000_000), None), RejectReason::InsufficientLiquidity);
    refuses_quote(&mut world, quote(EUR, JPY, send(1_000_000_000), None), RejectReason::InsufficientLiquidity);
    refuses_quote(&mut world, quote(EUR, JPY, send(0), None), RejectReason::InvalidAmount);
    refuses_quote(&mut world, quote(EUR, JPY, send(10), Some(0)), RejectReason::TooManyLegs);
    refuses_quote(&mut world, quote(EUR, JPY, send(10), Some(4)), RejectReason::TooManyLegs);
    refuses_quote(&mut world, quote(EUR, AssetId::new(9), send(10), None), RejectReason::UnknownAsset);
    refuses_quote(
        &mut world,
        QuotePayment { payee: payer, ..quote(EUR, JPY, send(10), None) },
        RejectReason::SameAccount,
    );
    let nobody = AccountId::new(999);
    refuses_quote(
        &mut world,
        QuotePayment { payee: nobody, ..quote(EUR, JPY, send(10), None) },
        RejectReason::UnknownAccount,
    );
    // A payment larger than the payer's balance (10 EUR).
    let poor = world.open(0);
    world.fund(poor, EUR, 1_000);
    let before = world.money();
    let events = world.pay(poor, payee, (EUR, JPY), receive(2_000), RateLimit::MaxSend(amount(1_000_000)), None);
    assert_eq!(rejection(&events), Some(RejectReason::InsufficientFunds));
    assert_eq!(world.money(), before);
    // A frozen payee receives nothing.
    world.apply(Command::FreezeAccount(FreezeAccount { account: payee }));
    refuses_quote(&mut world, quote(EUR, JPY, send(10_000), None), RejectReason::AccountFrozen);
    let events = world.pay(payer, payee, (EUR, JPY), send(10_000), RateLimit::MinReceive(amount(1)), None);
    assert_eq!(rejection(&events), Some(RejectReason::AccountFrozen));
    assert_eq!(world.money(), before);
}

#[test]
fn the_payers_own_order_ends_the_liquidity_it_can_take() {
    // Self-trade prevention, as for any taker: matching stops at the payer's own
    // resting order (cancel-taker), so the route walks no further either.
    let mut world = World::new();
    let maker = world.maker(0);
    let payer = world.maker(0);
    let payee = world.open(0);
    world.rest(maker, EUR_JPY, Side::Buy, 160, 1_000);
    world.rest(payer, EUR_JPY, Side::Buy, 159, 10);
    world.rest(maker, EUR_JPY, Side::Buy, 158, 1_000);
    let events = world.quote(payer, payee, EUR, JPY, send(100_000));
    assert_eq!(quote_legs(&events)[0].2, 1_000, "1,000 lots above the payer's own bid");
    refuses_quote(
        &mut world,
        QuotePayment { by: payer, payee, from: EUR, to: JPY, amount: send(150_000), max_hops: Some(1), ttl: None },
        RejectReason::InsufficientLiquidity,
    );
}

#[test]
fn executing_a_quote_is_idempotent_and_happens_once() {
    let (mut world, payer, payee, _) = two_hop_world();
    let (quote, ..) = quoted(&world.quote(payer, payee, EUR, JPY, receive(150_000)));
    let key = world.key();
    let command = Command::ExecuteQuote(ExecuteQuote { by: payer, key, quote });
    let (payment, ..) = paid(&world.apply(command.clone()));
    let kind = bourse_core::command::CommandKind::ExecuteQuote;
    let before = world.money();
    // The same key and content: the original outcome again, nothing moves.
    let replayed = Event::Replayed { kind, original: Outcome::Accepted { payment: Some(payment) } };
    assert_eq!(world.apply(command), [replayed]);
    // The same key, another quote: a conflict.
    let (other, ..) = quoted(&world.quote(payer, payee, EUR, JPY, receive(1_000)));
    let conflict = world.apply(Command::ExecuteQuote(ExecuteQuote { by: payer, key, quote: other }));
    assert_eq!(conflict, [Event::Rejected { kind, reason: RejectReason::IdempotencyConflict }]);
    // The used quote under a new key; someone else's quote; a quote never issued.
    assert_eq!(rejection(&world.execute(payer, quote)), Some(RejectReason::QuoteUsed));
    assert_eq!(rejection(&world.execute(payee, other)), Some(RejectReason::UnknownQuote));
    assert_eq!(rejection(&world.execute(payer, QuoteId::new(999))), Some(RejectReason::UnknownQuote));
    assert_eq!(world.money(), before);

    // A direct payment replays too.
    let key = world.key();
    let pay = PayCrossBorder {
        by: payer,
        key,
        payee,
        from: EUR,
        to: JPY,
        amount: send(10_000),
        limit: RateLimit::MinReceive(amount(1)),
        max_hops: None,
    };
    let (payment, ..) = paid(&world.apply(Command::PayCrossBorder(pay)));
    let before = world.money();
    let again = world.apply(Command::PayCrossBorder(pay));
    assert_eq!(
        again,
        [Event::Replayed {
            kind: bourse_core::command::CommandKind::PayCrossBorder,
            original: Outcome::Accepted { payment: Some(payment) }
        }]
    );
    let changed = PayCrossBorder { amount: send(10_001), ..pay };
    assert_eq!(rejection(&world.apply(Command::PayCrossBorder(changed))), Some(RejectReason::IdempotencyConflict));
    assert_eq!(world.money(), before);
}

#[test]
fn a_cross_border_payment_is_refunded_in_the_currency_received() {
    let (mut world, payer, payee, _) = two_hop_world();
    let (quote, ..) = quoted(&world.quote(payer, payee, EUR, JPY, receive(150_000)));
    let (payment, ..) = paid(&world.execute(payer, quote));
    let key = world.key();
    let events = world.apply(Command::Refund(Refund { by: payee, key, payment, asset: JPY, amount: amount(50_000) }));
    assert!(matches!(events[0], Event::Refunded { .. }), "{events:?}");
    assert_eq!((world.available(payer, JPY), world.available(payee, JPY)), (50_000, 100_000));
    let key = world.key();
    let events = world.apply(Command::Refund(Refund { by: payee, key, payment, asset: JPY, amount: amount(100_001) }));
    assert_eq!(rejection(&events), Some(RejectReason::ExceedsRefundable));
}

// ---------------------------------------------------------------------------------
// Determinism and snapshots.
// ---------------------------------------------------------------------------------

/// A session of every cross-border command kind, accepted and refused, with the books
/// moving in between; returns the world and its log.
fn session() -> World {
    let (mut world, payer, payee, maker) = two_hop_world();
    let other = world.open(1);
    world.fund(other, USD, 10_000_000);
    for step in 0..12_u64 {
        let events = world.quote(payer, payee, EUR, JPY, receive(10_000 + step * 1_000));
        if step % 3 != 2 {
            let quote = quoted(&events).0;
            world.execute(payer, quote);
        }
        world.pay(other, payee, (USD, EUR), send(5_000 + step), RateLimit::MinReceive(amount(1)), None);
        // 28 EUR buy 30.18 USD: refused every other step.
        world.pay(payer, other, (EUR, USD), receive(3_000 + step), RateLimit::MaxSend(amount(2_800 - step % 2)), None);
        world.rest(maker, EUR_USD, Side::Sell, 112 + step % 3, 50);
        world.rest(maker, EUR_USD, Side::Buy, 108 - step % 2, 40);
        if step % 4 == 3 {
            world.wait(31 * NANOS_PER_SECOND);
        }
    }
    world
}

#[test]
fn the_same_commands_give_the_same_events_and_state() {
    let world = session();
    let config = Config::from_toml_str(CONFIG).expect("valid");
    let replay = |log: &[SequencedCommand]| {
        let mut engine = Engine::new(&config);
        let mut events = Vec::new();
        for command in log {
            let mut out = Vec::new();
            engine.apply(command, &mut out);
            events.push(out);
        }
        (engine.state_hash(), events)
    };
    let (hash, events) = replay(&world.log);
    assert_eq!(hash, world.engine.state_hash());
    assert_eq!(replay(&world.log), (hash, events.clone()));
    let accepted = events.iter().flatten().filter(|event| matches!(event, Event::CrossBorderPaid { .. })).count();
    let refused = events.iter().flatten().filter(|event| matches!(event, Event::Rejected { .. })).count();
    assert!(accepted >= 20 && refused >= 5, "the session exercises both outcomes: {accepted} paid, {refused} refused");
}

#[test]
fn a_snapshot_mid_way_continues_exactly_as_the_live_engine() {
    let world = session();
    let config = Config::from_toml_str(CONFIG).expect("valid");
    for cut in [world.log.len() / 3, world.log.len() / 2, world.log.len() - 5] {
        let mut live = Engine::new(&config);
        for command in &world.log[..cut] {
            live.apply(command, &mut Vec::new());
        }
        let state = live.export_state();
        // Through rkyv, as a snapshot file stores it.
        let bytes = rkyv::to_bytes::<rkyv::rancor::Error>(&state).expect("archives");
        let archived = rkyv::from_bytes::<bourse_core::state::EngineState, rkyv::rancor::Error>(&bytes).expect("reads");
        assert_eq!(archived, state);
        let mut rebuilt = Engine::from_state(&archived, bourse_core::Capacity::default()).expect("a valid state");
        rebuilt.check_invariants();
        assert_eq!(rebuilt.state_hash(), live.state_hash(), "cut at {cut}");
        assert_eq!(rebuilt.export_state(), state);
        assert_eq!(rebuilt.quotes_kept(), live.quotes_kept());
        for command in &world.log[cut..] {
            let (mut from_live, mut from_rebuilt) = (Vec::new(), Vec::new());
            live.apply(command, &mut from_live);
            rebuilt.apply(command, &mut from_rebuilt);
            assert_eq!(from_rebuilt, from_live, "command {}", command.seq);
        }
        assert_eq!(rebuilt.state_hash(), live.state_hash());
    }
}

#[test]
fn quote_state_that_cannot_be_is_refused_on_rebuild() {
    let (mut world, payer, payee, _) = two_hop_world();
    world.quote(payer, payee, EUR, JPY, receive(150_000));
    let state = world.engine.export_state();
    assert_eq!(state.quotes.len(), 1);
    let mut broken = state.clone();
    broken.quotes[0].markets = [USD_JPY.get(), EUR_USD.get(), 0];
    assert!(Engine::from_state(&broken, bourse_core::Capacity::default()).is_err(), "a route that does not chain");
    let mut broken = state.clone();
    broken.quotes[0].id = broken.crossborder.next_quote_id;
    assert!(Engine::from_state(&broken, bourse_core::Capacity::default()).is_err(), "an id not yet issued");
    let mut broken = state.clone();
    broken.crossborder.max_hops = 9;
    assert!(Engine::from_state(&broken, bourse_core::Capacity::default()).is_err(), "a hop limit past the bound");
    let mut broken = state;
    broken.quotes[0].expires_at = broken.now;
    assert!(Engine::from_state(&broken, bourse_core::Capacity::default()).is_err(), "an expired quote");
}

#[test]
fn the_configured_defaults_are_engine_state() {
    let config = Config::from_toml_str(CONFIG)
        .expect("valid")
        .with_crossborder(CrossBorderConfig { max_hops: 1, quote_ttl: Timestamp::from_nanos(NANOS_PER_SECOND) })
        .expect("valid defaults");
    let mut world = World::with_config(&config);
    let maker = world.maker(0);
    let payer = world.open(0);
    let payee = world.open(0);
    world.rest(maker, GBP_USD, Side::Buy, 127, 100);
    world.rest(maker, USD_JPY, Side::Buy, 150, 5_000);
    // One hop by default: GBP reaches JPY only through USD.
    let events = world.quote(payer, payee, GBP, JPY, receive(1_000));
    assert_eq!(rejection(&events), Some(RejectReason::NoRoute));
    let command =
        QuotePayment { by: payer, payee, from: GBP, to: JPY, amount: receive(1_000), max_hops: Some(2), ttl: None };
    let events = world.apply(Command::QuotePayment(command));
    assert_eq!(quoted(&events).1, route(&[GBP_USD, USD_JPY]));
    assert_eq!(quoted(&events).4, Timestamp::from_nanos(world.now + NANOS_PER_SECOND), "the default lifetime");
    let rebuilt = Engine::from_state(&world.engine.export_state(), bourse_core::Capacity::default()).expect("valid");
    assert_eq!(rebuilt.crossborder_defaults().max_hops, 1);
    assert_eq!(rebuilt.crossborder_defaults().quote_ttl, Timestamp::from_nanos(NANOS_PER_SECOND));
}

// ---------------------------------------------------------------------------------
// Risk rules and review on cross-border payments.
// ---------------------------------------------------------------------------------

/// Publishes `toml` and makes it the fully active rule version.
fn rules(world: &mut World, toml: &str) -> RuleVersion {
    let rules = RuleSet::from_toml_str(toml).expect("valid rules");
    let version = match world.apply(Command::PublishRules(PublishRules { rules }))[..] {
        [Event::RulesPublished { version }] => version,
        ref events => panic!("rules not published: {events:?}"),
    };
    let events = world.apply(Command::ActivateRules(ActivateRules { version, share_bps: 10_000 }));
    assert_eq!(events, [Event::RulesActivated { version, share_bps: 10_000 }]);
    version
}

/// The state rows without what every command changes (its sequence number and time)
/// and the idempotency memory.
fn rows_but_clock_and_keys(engine: &Engine) -> EngineState {
    let mut state = engine.export_state();
    (state.last_seq, state.now) = (None, 0);
    state.idempotency.clear();
    state
}

/// Applies `command`, which must be refused, and checks that it changed nothing but
/// the command clock and, for a keyed command, one idempotency entry remembering
/// `reason`: every row is as before, and the state hash with the old clock and keys put
/// back is the old hash.
fn refused(world: &mut World, command: Command, reason: RejectReason) -> Vec<Event> {
    let keyed = !matches!(command, Command::QuotePayment(_) | Command::ReviewDecision(_));
    let (before, hash_before) = (world.engine.export_state(), world.engine.state_hash());
    let rows_before = rows_but_clock_and_keys(&world.engine);
    let events = world.apply(command);
    assert_eq!(rejection(&events), Some(reason), "{events:?}");
    assert_eq!(rows_but_clock_and_keys(&world.engine), rows_before, "a refusal moved something: {events:?}");
    let mut after = world.engine.export_state();
    let (kept, new) = after.idempotency.split_at(before.idempotency.len());
    assert_eq!(kept, &before.idempotency[..]);
    let remembered: Vec<(u8, u64)> = new.iter().map(|row| (row.outcome, row.value)).collect();
    assert_eq!(remembered, if keyed { vec![(2, reason as u64)] } else { vec![] });
    (after.last_seq, after.now, after.idempotency) = (before.last_seq, before.now, before.idempotency);
    let restored = Engine::from_state(&after, bourse_core::Capacity::default()).expect("a valid state");
    assert_eq!(restored.state_hash(), hash_before, "the state hash moved with the refusal");
    events
}

fn assert_violated(events: &[Event], kind: CommandKind, account: AccountId, rule: RuleKind, version: RuleVersion) {
    let reason = RejectReason::RuleViolation;
    assert_eq!(events, [Event::RuleViolated { kind, account, rule, version }, Event::Rejected { kind, reason }]);
}

/// A payment of `eur` minor units of EUR into USD from `by` to `payee` (one hop: EUR/USD
/// bids at 108, where whole lots make the payer send exactly `eur` when it is a whole
/// number of euros), as a command of `kind`; an `ExecuteQuote` is quoted first.
fn eur_to_usd(world: &mut World, kind: CommandKind, by: AccountId, payee: AccountId, eur: u64) -> Command {
    let key = world.key();
    match kind {
        CommandKind::PayCrossBorder => Command::PayCrossBorder(PayCrossBorder {
            by,
            key,
            payee,
            from: EUR,
            to: USD,
            amount: send(eur),
            limit: RateLimit::MinReceive(amount(1)),
            max_hops: None,
        }),
        CommandKind::ExecuteQuote => {
            let quote = quoted(&world.quote(by, payee, EUR, USD, send(eur))).0;
            Command::ExecuteQuote(ExecuteQuote { by, key, quote })
        }
        _ => unreachable!("a cross-border payment"),
    }
}

fn outflow_today(world: &World, account: AccountId, asset: AssetId) -> u64 {
    let now = Timestamp::from_nanos(world.now);
    world.engine.account(account).expect("open").risk().map_or(0, |risk| risk.outflow_on(now, asset).minor_units())
}

fn held(world: &World, account: AccountId, asset: AssetId) -> u64 {
    world.engine.balance(account, asset).expect("open").held().minor_units()
}

fn hold_of(events: &[Event]) -> HoldId {
    match events.first() {
        Some(&Event::HeldForReview { hold, .. }) => hold,
        _ => panic!("not held for review: {events:?}"),
    }
}

fn decide(world: &mut World, hold: HoldId, approve: bool) -> Vec<Event> {
    world.apply(Command::ReviewDecision(ReviewDecision { hold, approve }))
}

/// Every payment rule, at its limit and one past it, on a cross-border command of
/// `kind`, sending EUR (the payer's rules are in EUR; the payees hold none).
fn check_every_rule_on(kind: CommandKind) {
    let (mut world, payer, payee, _) = two_hop_world();
    let (shunned, shunning) = (world.open(0), world.open(0));
    // Made (quoted) before the rules: the rules decide at execution.
    let to_shunned = eur_to_usd(&mut world, kind, payer, shunned, 1_000);
    let to_shunning = eur_to_usd(&mut world, kind, payer, shunning, 1_000);
    let v1 = rules(
        &mut world,
        &format!(
            "[tiers.0]\nmax_single_payment = {{ EUR = \"500.00\" }}\npayments_per_minute = 3\n\
             daily_outflow = {{ EUR = \"1200.00\" }}\n\
             [accounts.{payer}]\nblocked_counterparties = [{shunned}]\n\
             [accounts.{shunning}]\nblocked_counterparties = [{payer}]"
        ),
    );
    let violation = RejectReason::RuleViolation;
    // Blocked counterparty, both ways: by the payer's rules, and by the payee's.
    let events = refused(&mut world, to_shunned, violation);
    assert_violated(&events, kind, payer, RuleKind::BlockedCounterparty, v1);
    let events = refused(&mut world, to_shunning, violation);
    assert_violated(&events, kind, shunning, RuleKind::BlockedCounterparty, v1);
    // The largest single payment is on what is sent: 500.00 EUR passes, 501.00 does not.
    let command = eur_to_usd(&mut world, kind, payer, payee, 50_100);
    assert_violated(&refused(&mut world, command, violation), kind, payer, RuleKind::MaxSinglePayment, v1);
    let command = eur_to_usd(&mut world, kind, payer, payee, 50_000);
    assert_eq!(paid(&world.apply(command)).1, 50_000);
    // Payments per minute count cross-border payments and transfers together.
    let key = world.key();
    let transfer = Transfer { by: payer, key, to: payee, asset: EUR, amount: amount(40_000) };
    assert!(matches!(world.apply(Command::Transfer(transfer))[0], Event::Transferred { .. }));
    let command = eur_to_usd(&mut world, kind, payer, payee, 20_000);
    assert_eq!(paid(&world.apply(command)).1, 20_000);
    let command = eur_to_usd(&mut world, kind, payer, payee, 1_000);
    assert_violated(&refused(&mut world, command, violation), kind, payer, RuleKind::PaymentsPerMinute, v1);
    // A minute later: the daily outflow has 1,100.00 EUR of the three payments.
    world.wait(60 * NANOS_PER_SECOND);
    assert_eq!(outflow_today(&world, payer, EUR), 110_000);
    let command = eur_to_usd(&mut world, kind, payer, payee, 20_000);
    assert_violated(&refused(&mut world, command, violation), kind, payer, RuleKind::DailyOutflow, v1);
    let command = eur_to_usd(&mut world, kind, payer, payee, 10_000);
    assert_eq!(paid(&world.apply(command)).1, 10_000, "exactly the day's limit");
    assert_eq!(outflow_today(&world, payer, EUR), 120_000);
    let command = eur_to_usd(&mut world, kind, payer, payee, 100);
    assert_violated(&refused(&mut world, command, violation), kind, payer, RuleKind::DailyOutflow, v1);
    // A withdrawal meets the same counter.
    let key = world.key();
    let reference = Reference::new("out").expect("valid");
    let withdraw = Withdraw { account: payer, key, asset: EUR, amount: amount(1), reference };
    let events = refused(&mut world, Command::Withdraw(withdraw), violation);
    assert_violated(&events, CommandKind::Withdraw, payer, RuleKind::DailyOutflow, v1);
    assert_eq!(world.available(payer, EUR), 1_000_000 - 50_000 - 40_000 - 20_000 - 10_000);
}

#[test]
fn every_payment_rule_applies_to_pay_cross_border() {
    check_every_rule_on(CommandKind::PayCrossBorder);
}

#[test]
fn every_payment_rule_applies_to_execute_quote() {
    check_every_rule_on(CommandKind::ExecuteQuote);
}

/// A quote moves no money: a blocked counterparty (either way) refuses it, the limits
/// and the review threshold do not (they decide when it is executed).
#[test]
fn a_quote_is_refused_for_a_blocked_counterparty_only() {
    let (mut world, payer, payee, _) = two_hop_world();
    let (shunned, shunning) = (world.open(0), world.open(0));
    world.fund(shunned, EUR, 100_000);
    let v1 = rules(
        &mut world,
        &format!(
            "[tiers.0]\nmax_single_payment = {{ EUR = \"1.00\" }}\nreview_threshold = {{ EUR = \"1.00\" }}\n\
             [accounts.{payer}]\nblocked_counterparties = [{shunned}]\n\
             [accounts.{shunning}]\nblocked_counterparties = [{payer}]"
        ),
    );
    let quote = |by, payee| {
        Command::QuotePayment(QuotePayment {
            by,
            payee,
            from: EUR,
            to: USD,
            amount: send(10_000),
            max_hops: None,
            ttl: None,
        })
    };
    let (kind, blocked, violation) =
        (CommandKind::QuotePayment, RuleKind::BlockedCounterparty, RejectReason::RuleViolation);
    assert_violated(&refused(&mut world, quote(payer, shunned), violation), kind, payer, blocked, v1);
    assert_violated(&refused(&mut world, quote(shunned, payer), violation), kind, payer, blocked, v1);
    assert_violated(&refused(&mut world, quote(payer, shunning), violation), kind, shunning, blocked, v1);
    assert_eq!((world.engine.quotes_kept(), world.engine.export_state().crossborder.next_quote_id), (0, 1));
    // Above the payer's single-payment limit: quoted, and refused at execution.
    let (quote, ..) = quoted(&world.apply(quote(payer, payee)));
    let key = world.key();
    let events = refused(&mut world, Command::ExecuteQuote(ExecuteQuote { by: payer, key, quote }), violation);
    assert_violated(&events, CommandKind::ExecuteQuote, payer, RuleKind::MaxSinglePayment, v1);
}

/// A `PayCrossBorder` above the review threshold holds its `MaxSend` limit; approved
/// after the books improved, it is routed again on the books of the decision, and what
/// it did not send is released and leaves the day's outflow.
#[test]
fn a_held_cross_border_payment_is_made_on_the_books_of_the_decision() {
    let (mut world, payer, payee, maker) = two_hop_world();
    let v1 = rules(&mut world, "[tiers.0]\nreview_threshold = { EUR = \"100.00\" }");
    let key = world.key();
    let command = Command::PayCrossBorder(PayCrossBorder {
        by: payer,
        key,
        payee,
        from: EUR,
        to: USD,
        amount: receive(30_000),
        limit: RateLimit::MaxSend(amount(30_000)),
        max_hops: None,
    });
    let events = world.apply(command.clone());
    let hold = hold_of(&events);
    // At 108 the plan needs 279 EUR; what is held is the limit, 300 EUR.
    assert_eq!(
        events[0],
        Event::HeldForReview {
            hold,
            kind: CommandKind::PayCrossBorder,
            payer,
            payee: Some(payee),
            asset: EUR,
            amount: amount(30_000),
            rule: RuleKind::ReviewThreshold,
            version: v1
        }
    );
    assert!(!events.iter().any(|event| matches!(event, Event::Trade { .. } | Event::CrossBorderPaid { .. })));
    assert_eq!((held(&world, payer, EUR), world.available(payer, EUR)), (30_000, 1_000_000 - 30_000));
    assert_eq!(outflow_today(&world, payer, EUR), 30_000, "the held amount counts");
    assert_eq!(world.available(payee, USD), 0);
    let info = world.engine.review_hold(hold).expect("pending");
    assert_eq!((info.kind, info.payee, info.approved), (CommandKind::PayCrossBorder, Some(payee), None));
    let original = Outcome::HeldForReview { hold };
    assert_eq!(world.apply(command.clone()), [Event::Replayed { kind: CommandKind::PayCrossBorder, original }]);

    // A better bid arrives; the decision is taken on these books.
    world.rest(maker, EUR_USD, Side::Buy, 110, 500);
    let mut twin = world.clone();
    twin.apply(Command::RollbackRules(RollbackRules { to_version: RuleVersion::NONE }));
    let Command::PayCrossBorder(pay) = command else { unreachable!() };
    let key = twin.key();
    let unheld = twin.apply(Command::PayCrossBorder(PayCrossBorder { key, ..pay }));
    let events = decide(&mut world, hold, true);
    assert_eq!(
        events[0],
        Event::ReviewApproved { hold, payer, payee: Some(payee), asset: EUR, amount: amount(30_000) }
    );
    let (payment, sent, received, paid_route, surplus, quote) = paid(&events);
    // 274 EUR at 1.10 (less 60 cents fee) give 300.80 USD: 80 cents of remainder.
    assert_eq!((sent, received, paid_route, surplus, quote), (27_400, 30_000, route(&[EUR_USD]), 0, None));
    assert_eq!(paid_legs(&events), [(EUR_USD, Side::Sell, 274, 27_400, 30_080, 60, 80)]);
    assert_eq!(paid_legs(&events), paid_legs(&unheld), "as a payment made now, without review");
    assert_eq!(trade_fees(&events).iter().map(|trade| trade.1).collect::<Vec<_>>(), [110]);
    let position = |matches: fn(&Event) -> bool| events.iter().position(matches).expect("present");
    assert!(position(|e| matches!(e, Event::Trade { .. })) < position(|e| matches!(e, Event::CrossBorderPaid { .. })));
    assert!(events.iter().any(|event| matches!(event, Event::BookChanged { market: EUR_USD, .. })));
    assert!(events.iter().any(|event| matches!(event, Event::BalanceChanged { account, .. } if *account == payee)));
    assert_eq!((held(&world, payer, EUR), world.available(payer, EUR)), (0, 1_000_000 - 27_400));
    assert_eq!(world.available(payee, USD), 30_000);
    assert_eq!(outflow_today(&world, payer, EUR), 27_400, "the unused 26 EUR left the day's outflow");
    assert_eq!(world.engine.pending_reviews().count(), 0);
    let original = Outcome::Accepted { payment: Some(payment) };
    assert_eq!(decide(&mut world, hold, true), [Event::Replayed { kind: CommandKind::ReviewDecision, original }]);
}

/// A `MinReceive` payment holds what its plan needs; rejected, the funds and the day's
/// outflow come back, and the room it took is free again.
#[test]
fn a_rejected_cross_border_hold_gives_back_the_funds_and_the_outflow() {
    let (mut world, payer, payee, _) = two_hop_world();
    let v1 =
        rules(&mut world, "[tiers.0]\nreview_threshold = { EUR = \"500.00\" }\ndaily_outflow = { EUR = \"1000.00\" }");
    let kind = CommandKind::PayCrossBorder;
    let command = eur_to_usd(&mut world, kind, payer, payee, 60_000);
    let hold = hold_of(&world.apply(command));
    assert_eq!((held(&world, payer, EUR), outflow_today(&world, payer, EUR)), (60_000, 60_000));
    let command = eur_to_usd(&mut world, kind, payer, payee, 50_000);
    assert_violated(
        &refused(&mut world, command, RejectReason::RuleViolation),
        kind,
        payer,
        RuleKind::DailyOutflow,
        v1,
    );

    let events = decide(&mut world, hold, false);
    assert_eq!(
        events[0],
        Event::ReviewRejected { hold, payer, payee: Some(payee), asset: EUR, amount: amount(60_000) }
    );
    assert!(!events.iter().any(|event| matches!(event, Event::Trade { .. })));
    assert_eq!((held(&world, payer, EUR), world.available(payer, EUR)), (0, 1_000_000));
    assert_eq!((outflow_today(&world, payer, EUR), world.available(payee, USD)), (0, 0));
    let command = eur_to_usd(&mut world, kind, payer, payee, 50_000);
    assert_eq!(paid(&world.apply(command)).1, 50_000, "the day's room is back");
}

/// An approval the books no longer allow is refused with the reason (and the
/// `RateMoved` detail), changes nothing, and leaves the hold pending: once the books
/// are back it goes ahead, and a rejection always works.
#[test]
fn an_approval_past_the_limit_is_refused_and_the_hold_stays_pending() {
    let (mut world, payer, payee, maker) = two_hop_world();
    world.rest(maker, EUR_USD, Side::Buy, 100, 5_000);
    rules(&mut world, "[tiers.0]\nreview_threshold = { EUR = \"100.00\" }");
    let key = world.key();
    let pay = PayCrossBorder {
        by: payer,
        key,
        payee,
        from: EUR,
        to: USD,
        amount: receive(30_000),
        limit: RateLimit::MaxSend(amount(30_000)),
        max_hops: None,
    };
    let direct = hold_of(&world.apply(Command::PayCrossBorder(pay)));
    let (quote, _, quoted_send, quoted_receive, _) = quoted(&world.quote(payer, payee, EUR, USD, receive(30_000)));
    assert_eq!((quoted_send, quoted_receive), (27_900, 30_000));
    let events = world.execute(payer, quote);
    let executed = hold_of(&events);
    assert!(
        matches!(events[0], Event::HeldForReview { kind: CommandKind::ExecuteQuote, amount: held, .. } if held == amount(27_900))
    );
    // The held quote is used: it cannot be executed beside its hold.
    assert_eq!(rejection(&world.execute(payer, quote)), Some(RejectReason::QuoteUsed));
    assert_eq!(held(&world, payer, EUR), 30_000 + 27_900);

    // Someone sells into the 108 bid: at 100 the payee's 300 USD take 301 EUR.
    let seller = world.maker(0);
    world.apply(market_sell(seller, EUR_USD, 2_000));
    let kind = CommandKind::ReviewDecision;
    let rejected = Event::Rejected { kind, reason: RejectReason::RateMoved };
    let events = refused(
        &mut world,
        Command::ReviewDecision(ReviewDecision { hold: direct, approve: true }),
        RejectReason::RateMoved,
    );
    let moved =
        Event::RateMoved { payer, asset: EUR, limit: amount(30_000), achievable: amount(30_100), moved_ppm: 3_334 };
    assert_eq!(events, [moved, rejected]);
    let events = refused(
        &mut world,
        Command::ReviewDecision(ReviewDecision { hold: executed, approve: true }),
        RejectReason::RateMoved,
    );
    let moved =
        Event::RateMoved { payer, asset: EUR, limit: amount(27_900), achievable: amount(30_100), moved_ppm: 78_854 };
    assert_eq!(events, [moved, rejected]);
    let pending: Vec<HoldId> = world.engine.pending_reviews().map(|info| info.hold).collect();
    assert_eq!(pending, [direct, executed]);

    // The bid is back: the quote's hold goes ahead with exactly the quoted amounts.
    world.rest(maker, EUR_USD, Side::Buy, 108, 2_000);
    let events = decide(&mut world, executed, true);
    assert!(matches!(events[0], Event::ReviewApproved { hold, .. } if hold == executed));
    let (_, sent, received, _, surplus, from_quote) = paid(&events);
    assert_eq!((sent, received, surplus, from_quote), (27_900, 30_000, 0, Some(quote)));
    // The other is rejected: its funds are back.
    assert!(matches!(decide(&mut world, direct, false)[0], Event::ReviewRejected { .. }));
    assert_eq!((held(&world, payer, EUR), world.available(payer, EUR)), (0, 1_000_000 - 27_900));
    assert_eq!(world.available(payee, USD), 30_000);
}

/// A held quote is executable until the quote's own expiry; an approval needs the
/// accounts movable. Both refusals leave the hold pending.
#[test]
fn a_held_quote_cannot_be_approved_after_its_expiry_or_with_a_frozen_payee() {
    let (mut world, payer, payee, _) = two_hop_world();
    rules(&mut world, "[tiers.0]\nreview_threshold = { EUR = \"1.00\" }");
    let command = eur_to_usd(&mut world, CommandKind::ExecuteQuote, payer, payee, 10_000);
    let hold = hold_of(&world.apply(command));
    world.apply(Command::FreezeAccount(FreezeAccount { account: payee }));
    let decision = Command::ReviewDecision(ReviewDecision { hold, approve: true });
    refused(&mut world, decision.clone(), RejectReason::AccountFrozen);
    world.apply(Command::UnfreezeAccount(UnfreezeAccount { account: payee }));
    world.wait(30 * NANOS_PER_SECOND);
    assert_eq!(world.engine.quotes_kept(), 0, "the quote itself is forgotten");
    let events = refused(&mut world, decision, RejectReason::QuoteExpired);
    assert_eq!(events, [Event::Rejected { kind: CommandKind::ReviewDecision, reason: RejectReason::QuoteExpired }]);
    assert_eq!(world.engine.pending_reviews().count(), 1);
    assert!(matches!(decide(&mut world, hold, false)[0], Event::ReviewRejected { .. }));
    assert_eq!((held(&world, payer, EUR), world.available(payer, EUR)), (0, 1_000_000));
}

/// Rules, refusals, holds of both kinds and decisions, with the books moving; the
/// index in the log after which both kinds of hold are pending.
fn session_with_rules() -> (World, usize) {
    let (mut world, payer, payee, maker) = two_hop_world();
    let other = world.open(0);
    world.fund(other, EUR, 1_000_000);
    rules(
        &mut world,
        &format!(
            "[tiers.0]\nreview_threshold = {{ EUR = \"300.00\" }}\n\
             max_single_payment = {{ EUR = \"2000.00\" }}\n[accounts.{other}]\nblocked_counterparties = [{payer}]"
        ),
    );
    let mut both_pending = 0;
    for step in 0..8_u64 {
        let kind = if step % 2 == 0 { CommandKind::PayCrossBorder } else { CommandKind::ExecuteQuote };
        let by = if step % 3 == 0 { other } else { payer };
        let command = eur_to_usd(&mut world, kind, by, payee, 40_000 + step * 5_000);
        let direct = hold_of(&world.apply(command));
        let command = eur_to_usd(&mut world, CommandKind::ExecuteQuote, payer, payee, 40_000 + step * 100);
        let executed = hold_of(&world.apply(command));
        // Paid; blocked (a quote too); past the single-payment limit.
        for (to, eur, kind) in
            [(payee, 10_000, kind), (other, 1_000, CommandKind::PayCrossBorder), (payee, 250_000, kind)]
        {
            let command = eur_to_usd(&mut world, kind, payer, to, eur);
            world.apply(command);
        }
        world.quote(payer, other, EUR, USD, send(1_000));
        if step == 2 {
            both_pending = world.log.len();
        }
        world.rest(maker, EUR_USD, Side::Buy, 106 + step % 4, 1_500);
        world.apply(market_sell(maker, EUR_USD, 50 + step * 20));
        decide(&mut world, direct, step % 3 != 1);
        decide(&mut world, executed, step % 2 == 0);
        world.wait(20 * NANOS_PER_SECOND);
    }
    (world, both_pending)
}

#[test]
fn cross_border_holds_replay_and_survive_a_snapshot() {
    let (world, both_pending) = session_with_rules();
    let config = Config::from_toml_str(CONFIG).expect("valid");
    let replay = |log: &[SequencedCommand]| {
        let mut engine = Engine::new(&config);
        let events: Vec<Vec<Event>> = log
            .iter()
            .map(|command| {
                let mut out = Vec::new();
                engine.apply(command, &mut out);
                out
            })
            .collect();
        (engine.state_hash(), events)
    };
    let (hash, events) = replay(&world.log);
    assert_eq!(hash, world.engine.state_hash());
    assert_eq!(replay(&world.log), (hash, events.clone()));
    let count = |matches: fn(&Event) -> bool| events.iter().flatten().filter(|event| matches(event)).count();
    assert!(count(|e| matches!(e, Event::HeldForReview { kind: CommandKind::PayCrossBorder, .. })) >= 2);
    assert!(count(|e| matches!(e, Event::HeldForReview { kind: CommandKind::ExecuteQuote, .. })) >= 8);
    assert!(count(|e| matches!(e, Event::ReviewApproved { .. })) >= 4);
    assert!(count(|e| matches!(e, Event::ReviewRejected { .. })) >= 4);
    assert!(count(|e| matches!(e, Event::RuleViolated { .. })) >= 8);
    assert!(count(|e| matches!(e, Event::Rejected { kind: CommandKind::ReviewDecision, .. })) >= 1);

    for cut in [both_pending, world.log.len() / 2, world.log.len() - 3] {
        let mut live = Engine::new(&config);
        for command in &world.log[..cut] {
            live.apply(command, &mut Vec::new());
        }
        let state = live.export_state();
        if cut == both_pending {
            let pending_kinds: Vec<CommandKind> = live.pending_reviews().map(|info| info.kind).collect();
            assert!(pending_kinds.contains(&CommandKind::PayCrossBorder), "{pending_kinds:?}");
            assert!(pending_kinds.contains(&CommandKind::ExecuteQuote), "{pending_kinds:?}");
            assert_eq!(state.review_crossborder.len(), state.review_holds.iter().filter(|row| row.kind >= 4).count());
        }
        let bytes = rkyv::to_bytes::<rkyv::rancor::Error>(&state).expect("archives");
        let archived = rkyv::from_bytes::<EngineState, rkyv::rancor::Error>(&bytes).expect("reads");
        assert_eq!(archived, state);
        let mut rebuilt = Engine::from_state(&archived, bourse_core::Capacity::default()).expect("a valid state");
        rebuilt.check_invariants();
        assert_eq!(rebuilt.state_hash(), live.state_hash(), "cut at {cut}");
        assert_eq!(rebuilt.export_state(), state);
        for (index, command) in world.log[cut..].iter().enumerate() {
            let mut out = Vec::new();
            rebuilt.apply(command, &mut out);
            assert_eq!(out, events[cut + index], "command {}", command.seq);
        }
        assert_eq!(rebuilt.state_hash(), hash);
    }
}

/// The held terms of a cross-border payment and of a quote execution held for review
/// are state: an export changed in one term only rebuilds to another state hash, while
/// the unchanged export rebuilds to the same one.
#[test]
fn the_state_hash_covers_the_held_terms() {
    let (mut world, payer, payee, _) = two_hop_world();
    rules(&mut world, "[tiers.0]\nreview_threshold = { EUR = \"1.00\" }");
    for kind in [CommandKind::PayCrossBorder, CommandKind::ExecuteQuote] {
        let command = eur_to_usd(&mut world, kind, payer, payee, 10_000);
        hold_of(&world.apply(command));
    }
    let state = world.engine.export_state();
    let kinds: Vec<(u8, u64)> = state.review_holds.iter().map(|row| (row.kind, row.id)).collect();
    let terms: Vec<u64> = state.review_crossborder.iter().map(|row| row.hold).collect();
    assert_eq!((kinds, terms), (vec![(4, 1), (5, 2)], vec![1, 2]));
    let (pay, quote) = (state.review_crossborder[0], state.review_crossborder[1]);
    assert_eq!((pay.limit_mode, pay.limit), RateLimit::MinReceive(amount(1)).code());
    assert_eq!((pay.max_hops, pay.to), (2, USD.get()));
    assert_eq!((quote.hops, quote.markets), (1, [EUR_USD.get(), 0, 0]));
    let rebuilt_hash = |state: &EngineState| {
        let rebuilt = Engine::from_state(state, bourse_core::Capacity::default()).expect("a valid state");
        rebuilt.check_invariants();
        rebuilt.state_hash()
    };
    let hash = world.engine.state_hash();
    assert_eq!(rebuilt_hash(&state), hash, "the unchanged export rebuilds to the same hash");
    let changed = |what: &str, change: &dyn Fn(&mut EngineState)| {
        let mut changed = state.clone();
        change(&mut changed);
        assert_ne!(changed, state, "{what}: the change changes a row");
        assert_ne!(rebuilt_hash(&changed), hash, "the state hash misses {what}");
    };
    changed("a held payment's rate limit", &|state| state.review_crossborder[0].limit = 2);
    changed("a held payment's hop limit", &|state| state.review_crossborder[0].max_hops = 1);
    changed("a held payment's target asset", &|state| state.review_crossborder[0].to = JPY.get());
    changed("a held quote's receive", &|state| state.review_crossborder[1].receive -= 1);
    changed("a held quote's route", &|state| {
        // EUR to JPY, then JPY to USD: the same assets by another (valid) route.
        (state.review_crossborder[1].hops, state.review_crossborder[1].markets) =
            (2, [EUR_JPY.get(), USD_JPY.get(), 0]);
    });
    changed("a held quote's expiry", &|state| state.review_holds[1].expires_at -= 1);
}

#[test]
fn cross_border_hold_rows_that_cannot_be_are_refused_on_rebuild() {
    let (mut world, payer, payee, _) = two_hop_world();
    rules(&mut world, "[tiers.0]\nreview_threshold = { EUR = \"1.00\" }");
    for kind in [CommandKind::PayCrossBorder, CommandKind::ExecuteQuote] {
        let command = eur_to_usd(&mut world, kind, payer, payee, 10_000);
        hold_of(&world.apply(command));
    }
    let state = world.engine.export_state();
    assert_eq!(state.review_crossborder.len(), 2);
    let rebuild = |state: &EngineState| Engine::from_state(state, bourse_core::Capacity::default());
    assert_eq!(rebuild(&state).expect("valid").state_hash(), world.engine.state_hash());
    let broken = |change: &dyn Fn(&mut EngineState)| {
        let mut broken = state.clone();
        change(&mut broken);
        rebuild(&broken).is_err()
    };
    assert!(broken(&|state| state.review_crossborder.truncate(1)), "a quote's hold without its terms");
    assert!(broken(&|state| state.review_crossborder[0].hold = 2), "terms of another hold");
    assert!(broken(&|state| state.review_crossborder[0].amount_mode = 7), "an amount of no mode");
    assert!(broken(&|state| state.review_crossborder[0].limit = 0), "a limit of zero");
    assert!(broken(&|state| state.review_crossborder[0].max_hops = 4), "a hop limit past the bound");
    assert!(broken(&|state| state.review_crossborder[0].to = state.review_holds[0].asset), "nothing to convert");
    assert!(broken(&|state| state.review_crossborder[1].markets = [USD_JPY.get(), 0, 0]), "a route from USD");
    assert!(broken(&|state| state.review_crossborder[1].quote = 99), "a quote never issued");
    assert!(broken(&|state| state.review_holds[1].payee = payer.get()), "paying itself");
    assert!(broken(&|state| state.review_holds[0].kind = 0), "a transfer with cross-border terms");
}

// ---------------------------------------------------------------------------------
// Property tests on small random books.
// ---------------------------------------------------------------------------------

/// `SplitMix64`: the random worlds are built from one seed, which a failing case prints.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in `low..=high`.
    fn range(&mut self, low: u64, high: u64) -> u64 {
        low + self.next() % (high - low + 1)
    }
    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.next() as usize % items.len()]
    }
}

const RANDOM_ASSETS: u16 = 4;

/// Four assets and, for each pair, no market, one either way round, or both; random
/// lots, ticks, order size bounds and fees. Routes of up to three hops by default.
fn random_config(rng: &mut Rng) -> Config {
    let assets = (0..RANDOM_ASSETS)
        .map(|index| Asset::new(AssetCode::new(["AAA", "BBB", "CCC", "DDD"][usize::from(index)]).expect("code"), 2))
        .collect::<Result<Vec<_>, _>>()
        .expect("valid assets");
    let mut markets = Vec::new();
    for low in 0..RANDOM_ASSETS {
        for high in low + 1..RANDOM_ASSETS {
            let (a, b) = (AssetId::new(low), AssetId::new(high));
            let pairs: &[(AssetId, AssetId)] = match rng.range(0, 3) {
                0 => &[],
                1 => &[(a, b)],
                2 => &[(b, a)],
                _ => &[(a, b), (b, a)],
            };
            for &(base, quote) in pairs {
                let taker_bps = rng.pick(&[0, 7, 20, 100]);
                let fees = FeeSchedule::new(vec![
                    FeeRate { maker_bps: rng.pick(&[0, 5]), taker_bps },
                    FeeRate { maker_bps: 0, taker_bps: taker_bps / 2 },
                ])
                .expect("valid fees");
                markets.push(MarketSpec {
                    base,
                    quote,
                    lot: rng.pick(&[1, 10, 100]),
                    tick: rng.pick(&[1, 2, 5]),
                    qty_min: Qty::new(1).expect("lots"),
                    qty_max: Qty::new(rng.pick(&[1_000_000, 1_000_000, 40])).expect("lots"),
                    fees,
                });
            }
        }
    }
    let crossborder = CrossBorderConfig { max_hops: 3, ..CrossBorderConfig::default() };
    Config::new(AssetTable::new(assets).expect("valid table"), markets)
        .expect("valid markets")
        .with_crossborder(crossborder)
        .expect("valid defaults")
}

/// Funds `account` with plenty of every random asset.
fn fund_all(world: &mut World, account: AccountId, minor_units: u64) {
    for asset in 0..RANDOM_ASSETS {
        world.fund(account, AssetId::new(asset), minor_units);
    }
}

/// Rests a few random levels on each side of every market (asks above a mid price,
/// bids below), each of one or two orders of the given makers. With `values` (a price
/// per asset), mid prices are the cross rates within ±3%, so that routes compete
/// closely; without, they are anything.
fn populate(world: &mut World, rng: &mut Rng, makers: &[AccountId], values: Option<[u64; 4]>) {
    for index in 0..world.engine.markets().len() {
        let market = MarketId::new(index as u32);
        let spec = world.engine.markets()[index].spec().clone();
        let mid = match values {
            Some(values) => {
                let (base, quote) = (values[usize::from(spec.base.get())], values[usize::from(spec.quote.get())]);
                let exact = base * spec.lot * 1_000 / (quote * spec.tick);
                (exact * rng.range(970, 1_030) / 1_000_000).clamp(3, 5_000)
            }
            None => rng.range(20, 300),
        };
        for side in [Side::Sell, Side::Buy] {
            let step = rng.range(1, 3);
            // One side in eight is empty.
            let levels = if rng.range(0, 7) == 0 { 0 } else { rng.range(1, 5) };
            for level in 0..levels {
                let offset = 1 + level * step;
                let price = if side == Side::Sell { mid + offset } else { mid.saturating_sub(offset) };
                if price == 0 {
                    continue;
                }
                for _ in 0..rng.range(1, 2) {
                    let maker = rng.pick(makers);
                    let events = world.apply(Command::PlaceOrder(limit(maker, market, side, price, rng.range(1, 30))));
                    assert!(matches!(events[0], Event::OrderAccepted { .. }), "{events:?}");
                }
            }
        }
    }
}

/// One market as a brute-force reference sees it: its units, the payer's taker fee,
/// and its resting orders as (price, lots) in matching order.
struct RefMarket {
    base: AssetId,
    quote: AssetId,
    lot: u128,
    tick: u128,
    qty_max: u64,
    bps: u128,
    bids: Vec<(u128, u64)>,
    asks: Vec<(u128, u64)>,
}

/// A leg priced by the reference: (lots, input, output, fee).
type RefFill = (u64, u128, u128, u128);

impl RefMarket {
    fn of(engine: &Engine, tier: KycTier) -> Vec<RefMarket> {
        let orders = engine.orders();
        let side_orders = |market: &bourse_core::market::Market, side| {
            let mut list = Vec::new();
            for level in market.book().side(side).levels() {
                let mut cursor = Some(level.head());
                while let Some(slot) = cursor {
                    let order = orders.get(slot);
                    list.push((u128::from(order.price().ticks()), order.remaining().lots()));
                    cursor = orders.next_in_level(slot);
                }
            }
            list
        };
        engine
            .markets()
            .iter()
            .map(|market| {
                let spec = market.spec();
                RefMarket {
                    base: spec.base,
                    quote: spec.quote,
                    lot: u128::from(spec.lot),
                    tick: u128::from(spec.tick),
                    qty_max: spec.qty_max.lots(),
                    bps: u128::from(spec.fees.rate(tier).taker_bps),
                    bids: side_orders(market, Side::Buy),
                    asks: side_orders(market, Side::Sell),
                }
            })
            .collect()
    }

    /// Exactly `lots` taken order by order, one fee per order rounded down.
    fn take(&self, side: Side, lots: u64) -> Option<RefFill> {
        let orders = if side == Side::Buy { &self.asks } else { &self.bids };
        let (mut left, mut quote, mut fee) = (lots, 0, 0);
        for &(price, size) in orders {
            let taken = left.min(size);
            let notional = price * self.tick * u128::from(taken);
            let order_fee = notional * self.bps / 10_000;
            fee += order_fee;
            quote += if side == Side::Buy { notional + order_fee } else { notional - order_fee };
            left -= taken;
        }
        if left > 0 {
            return None;
        }
        let base = u128::from(lots) * self.lot;
        Some(if side == Side::Buy { (lots, quote, base, fee) } else { (lots, base, quote, fee) })
    }

    /// The most a leg makes of `input`, lot by lot.
    fn forward(&self, side: Side, input: u128) -> Option<RefFill> {
        if side == Side::Sell {
            let lots = u64::try_from(input / self.lot).ok()?;
            return if lots == 0 || lots > self.qty_max { None } else { self.take(side, lots) };
        }
        let mut lots = 0;
        while lots < self.qty_max && self.take(side, lots + 1).is_some_and(|fill| fill.1 <= input) {
            lots += 1;
        }
        let fill = self.take(side, lots).filter(|_| lots > 0)?;
        // The budget, not the book or the order size, must be what ended it.
        let more = lots < self.qty_max && self.take(side, lots + 1).is_some();
        (more || fill.1 == input).then_some(fill)
    }

    /// The least input from which a leg makes `need`, lot by lot.
    fn backward(&self, side: Side, need: u128) -> Option<RefFill> {
        if side == Side::Buy {
            let lots = u64::try_from(need.div_ceil(self.lot)).ok()?;
            return if lots == 0 || lots > self.qty_max { None } else { self.take(side, lots) };
        }
        (1..=self.qty_max).map_while(|lots| self.take(side, lots)).find(|fill| fill.2 >= need)
    }

    /// The payer's side and what it ends with, entering with `asset`.
    fn leg(&self, asset: AssetId) -> Option<(Side, AssetId)> {
        if asset == self.quote {
            Some((Side::Buy, self.base))
        } else if asset == self.base {
            Some((Side::Sell, self.quote))
        } else {
            None
        }
    }
}

/// A route priced by the reference.
#[derive(Clone, Debug, PartialEq, Eq)]
struct RefPlan {
    route: Route,
    legs: Vec<LegView>,
    send: u128,
    receive: u128,
}

/// Every simple path of at most `max_hops` markets from `from` to `to`, any order.
fn ref_paths(markets: &[RefMarket], from: AssetId, to: AssetId, max_hops: usize) -> Vec<Vec<usize>> {
    fn extend(
        markets: &[RefMarket],
        path: &mut Vec<usize>,
        seen: &mut Vec<AssetId>,
        to: AssetId,
        max_hops: usize,
        out: &mut Vec<Vec<usize>>,
    ) {
        let at = *seen.last().expect("starts somewhere");
        for (index, market) in markets.iter().enumerate() {
            let Some((_, next)) = market.leg(at) else { continue };
            if seen.contains(&next) {
                continue;
            }
            path.push(index);
            if next == to {
                out.push(path.clone());
            } else if path.len() < max_hops {
                seen.push(next);
                extend(markets, path, seen, to, max_hops, out);
                seen.pop();
            }
            path.pop();
        }
    }
    let mut out = Vec::new();
    extend(markets, &mut Vec::new(), &mut vec![from], to, max_hops, &mut out);
    out
}

fn ref_plan_receive(markets: &[RefMarket], path: &[usize], from: AssetId, receive: u128) -> Option<RefPlan> {
    let mut sides = Vec::new();
    let mut asset = from;
    for &index in path {
        let (side, next) = markets[index].leg(asset).expect("paths chain");
        sides.push(side);
        asset = next;
    }
    let mut legs = Vec::new();
    let mut need = receive;
    for (&index, &side) in path.iter().zip(&sides).rev() {
        let (lots, input, output, fee) = markets[index].backward(side, need)?;
        let narrow = |value: u128| u64::try_from(value).expect("small amounts");
        legs.push((
            MarketId::new(index as u32),
            side,
            lots,
            narrow(input),
            narrow(output),
            narrow(fee),
            narrow(output - need),
        ));
        need = input;
    }
    legs.reverse();
    let route = route(&path.iter().map(|&index| MarketId::new(index as u32)).collect::<Vec<_>>());
    Some(RefPlan { route, legs, send: need, receive })
}

fn ref_plan_send(markets: &[RefMarket], path: &[usize], from: AssetId, send: u128) -> Option<RefPlan> {
    let mut asset = from;
    let mut amount = send;
    for &index in path {
        let (side, next) = markets[index].leg(asset).expect("paths chain");
        amount = markets[index].forward(side, amount)?.2;
        asset = next;
    }
    let plan = ref_plan_receive(markets, path, from, amount);
    let plan = plan.expect("re-sizing backwards from the forward output always succeeds");
    assert!(plan.send <= send);
    Some(plan)
}

/// What the brute force expects of a quote: the ranked plans, or the refusal.
fn ref_quote(
    markets: &[RefMarket],
    (from, to): (AssetId, AssetId),
    how: CrossBorderAmount,
    max_hops: usize,
) -> Result<Vec<RefPlan>, RejectReason> {
    let paths = ref_paths(markets, from, to, max_hops);
    if paths.is_empty() {
        return Err(RejectReason::NoRoute);
    }
    let mut plans: Vec<RefPlan> = paths
        .iter()
        .filter_map(|path| match how {
            CrossBorderAmount::Send(send) => ref_plan_send(markets, path, from, u128::from(send.minor_units())),
            CrossBorderAmount::Receive(receive) => {
                ref_plan_receive(markets, path, from, u128::from(receive.minor_units()))
            }
        })
        .collect();
    if plans.is_empty() {
        return Err(RejectReason::InsufficientLiquidity);
    }
    plans.sort_by_key(|plan| (std::cmp::Reverse(plan.receive), plan.send, plan.route));
    Ok(plans)
}

/// A random world: makers with books, a payer of a random tier, a payee.
fn random_world(seed: u64) -> (World, Rng, AccountId, AccountId, Vec<AccountId>) {
    let mut rng = Rng(seed);
    let mut world = World::with_config(&random_config(&mut rng));
    let makers: Vec<AccountId> = (0..2).map(|_| world.open(0)).collect();
    for &maker in &makers {
        fund_all(&mut world, maker, 1_000_000_000_000);
    }
    let values = (rng.range(0, 1) == 0).then(|| [0; 4].map(|_: u64| rng.range(50, 200)));
    populate(&mut world, &mut rng, &makers, values);
    let payer = world.open(u8::try_from(rng.range(0, 1)).expect("tier"));
    let payee = world.open(0);
    (world, rng, payer, payee, makers)
}

fn random_request(rng: &mut Rng) -> ((AssetId, AssetId), CrossBorderAmount, u8) {
    let from = AssetId::new(u16::try_from(rng.range(0, u64::from(RANDOM_ASSETS) - 1)).expect("asset"));
    let to = AssetId::new(
        (from.get() + u16::try_from(rng.range(1, u64::from(RANDOM_ASSETS) - 1)).expect("asset")) % RANDOM_ASSETS,
    );
    let size = rng.pick(&[10, 100, 1_000, 1_000, 5_000, 20_000]);
    let amount = amount(rng.range(1, size));
    let how = if rng.range(0, 1) == 0 { CrossBorderAmount::Send(amount) } else { CrossBorderAmount::Receive(amount) };
    ((from, to), how, u8::try_from(rng.range(1, 3)).expect("hops"))
}

/// The engine's quote is the brute force's best route, leg for leg, with its runners-up.
fn check_routing_against_brute_force(seed: u64) -> Result<(), TestCaseError> {
    let (mut world, mut rng, payer, payee, _) = random_world(seed);
    fund_all(&mut world, payer, 1_000_000_000_000);
    let tier = world.engine.account(payer).expect("open").kyc_tier();
    for _ in 0..12 {
        let ((from, to), how, max_hops) = random_request(&mut rng);
        let expected = ref_quote(&RefMarket::of(&world.engine, tier), (from, to), how, usize::from(max_hops));
        // A direct payment whose limit never binds takes the best route too (routing
        // that keeps one route prunes harder than a quote that keeps four).
        let mut twin = world.clone();
        let limit = match how {
            CrossBorderAmount::Send(_) => RateLimit::MinReceive(amount(1)),
            CrossBorderAmount::Receive(_) => RateLimit::MaxSend(Amount::MAX),
        };
        let events = twin.pay(payer, payee, (from, to), how, limit, Some(max_hops));
        match &expected {
            Err(reason) => prop_assert_eq!(rejection(&events), Some(*reason)),
            Ok(plans) => {
                let (_, send, receive, chosen, surplus, _) = paid(&events);
                prop_assert_eq!(
                    (chosen, u128::from(send), u128::from(receive), surplus),
                    (plans[0].route, plans[0].send, plans[0].receive, 0)
                );
                prop_assert_eq!(paid_legs(&events), plans[0].legs.clone());
            }
        }
        let command = QuotePayment { by: payer, payee, from, to, amount: how, max_hops: Some(max_hops), ttl: None };
        let events = world.apply(Command::QuotePayment(command));
        match expected {
            Err(reason) => prop_assert_eq!(rejection(&events), Some(reason), "{:?} {:?}", how, events),
            Ok(plans) => {
                let (_, chosen, send, receive, _) = quoted(&events);
                let best = &plans[0];
                prop_assert_eq!(chosen, best.route, "{:?}: {:?} vs {:?}", how, events, plans);
                prop_assert_eq!((u128::from(send), u128::from(receive)), (best.send, best.receive));
                prop_assert_eq!(quote_legs(&events), best.legs.clone());
                // Never worse for the payee than any route within the hop limit.
                for plan in &plans {
                    prop_assert!(u128::from(receive) >= plan.receive);
                    if matches!(how, CrossBorderAmount::Receive(_)) {
                        prop_assert!(u128::from(send) <= plan.send);
                    }
                }
                let expected_runners_up: Vec<(u8, Route, u64, u64)> = plans[1..]
                    .iter()
                    .take(3)
                    .enumerate()
                    .map(|(rank, plan)| (rank as u8 + 1, plan.route, plan.send as u64, plan.receive as u64))
                    .collect();
                prop_assert_eq!(runners_up(&events), expected_runners_up);
            }
        }
    }
    Ok(())
}

/// A snapshot of two accounts' totals (available + held) per asset.
fn totals_of(world: &World, account: AccountId) -> Vec<u64> {
    (0..RANDOM_ASSETS)
        .map(|asset| world.engine.balance(account, AssetId::new(asset)).expect("open").total().minor_units())
        .collect()
}

/// Σ accounts + fees + remainders = deposits − withdrawals, per asset, recomputed here.
fn assert_conserved(world: &World) {
    for asset in 0..RANDOM_ASSETS {
        let asset = AssetId::new(asset);
        let in_accounts: u128 = (0..world.engine.account_count() as u32)
            .map(|index| {
                u128::from(world.engine.balance(AccountId::new(index), asset).expect("open").total().minor_units())
            })
            .sum();
        let totals = world.engine.totals()[usize::from(asset.get())];
        let house = u128::from(totals.fees().minor_units()) + u128::from(totals.remainders().minor_units());
        assert_eq!(in_accounts + house, totals.deposited() - totals.withdrawn(), "asset {asset} conserved");
    }
}

/// A cross-border command moved exactly what its events say (and, for a quote, what
/// was quoted), or nothing at all.
fn check_exactly_or_nothing(seed: u64) -> Result<(), TestCaseError> {
    let (mut world, mut rng, _, payee, makers) = random_world(seed);
    let payers: Vec<AccountId> = (0..3).map(|tier| world.open(tier % 2)).collect();
    for &payer in &payers {
        let balance = rng.pick(&[1_000, 100_000, 10_000_000]);
        fund_all(&mut world, payer, balance);
    }
    let mover = world.open(0);
    fund_all(&mut world, mover, 1_000_000_000);
    let mut quotes: Vec<(QuoteId, AccountId, (u64, u64))> = Vec::new();
    for _ in 0..80 {
        let payer = rng.pick(&payers);
        let ((from, to), how, max_hops) = random_request(&mut rng);
        let command = match rng.range(0, 6) {
            0 | 1 => Command::QuotePayment(QuotePayment {
                by: payer,
                payee,
                from,
                to,
                amount: how,
                max_hops: Some(max_hops),
                ttl: None,
            }),
            2 | 3 if !quotes.is_empty() => {
                let (quote, owner, _) = rng.pick(&quotes);
                let by = if rng.range(0, 9) == 0 { payer } else { owner };
                Command::ExecuteQuote(ExecuteQuote { by, key: world.key(), quote })
            }
            2..=4 => {
                let most = rng.pick(&[100, 10_000, 1_000_000]);
                let limit = amount(rng.range(1, most));
                let limit = if rng.range(0, 1) == 0 { RateLimit::MinReceive(limit) } else { RateLimit::MaxSend(limit) };
                let key = world.key();
                Command::PayCrossBorder(PayCrossBorder {
                    by: payer,
                    key,
                    payee,
                    from,
                    to,
                    amount: how,
                    limit,
                    max_hops: Some(max_hops),
                })
            }
            5 => {
                // The books move: a maker rests a new order (which may trade) or a mover takes liquidity.
                let market = MarketId::new(
                    u32::try_from(rng.range(0, world.engine.markets().len().max(1) as u64 - 1)).expect("index"),
                );
                if world.engine.markets().is_empty() {
                    continue;
                }
                let side = if rng.range(0, 1) == 0 { Side::Buy } else { Side::Sell };
                if rng.range(0, 1) == 0 {
                    Command::PlaceOrder(limit(rng.pick(&makers), market, side, rng.range(1, 320), rng.range(1, 30)))
                } else {
                    Command::PlaceOrder(PlaceOrder {
                        price: None,
                        time_in_force: TimeInForce::Ioc,
                        ..limit(mover, market, side, 1, rng.range(1, 40))
                    })
                }
            }
            _ => {
                world.wait(rng.range(1, 40) * NANOS_PER_SECOND);
                continue;
            }
        };
        let is_payment = matches!(command, Command::ExecuteQuote(_) | Command::PayCrossBorder(_));
        let quoted_amounts = match command {
            Command::ExecuteQuote(execute) => quotes.iter().find(|entry| entry.0 == execute.quote).map(|entry| entry.2),
            _ => None,
        };
        let (payer_of, payee_of) = match command {
            Command::ExecuteQuote(execute) => (execute.by, payee),
            Command::PayCrossBorder(pay) => (pay.by, pay.payee),
            _ => (payer, payee),
        };
        let money_before = world.money();
        let (payer_before, payee_before) = (totals_of(&world, payer_of), totals_of(&world, payee_of));
        let events = world.apply(command);
        assert_conserved(&world);
        if let Some(quote) = events.iter().find_map(|event| match *event {
            Event::Quoted { quote, payer, send, receive, .. } => {
                Some((quote, payer, (send.minor_units(), receive.minor_units())))
            }
            _ => None,
        }) {
            quotes.push(quote);
        }
        if !is_payment {
            continue;
        }
        if rejection(&events).is_some() || events.iter().any(|event| matches!(event, Event::Replayed { .. })) {
            prop_assert_eq!(world.money(), money_before, "a refused payment moved something: {:?}", events);
            continue;
        }
        let (_, send, receive, _, surplus, from_quote) = paid(&events);
        let legs = paid_legs(&events);
        if let Some((quoted_send, quoted_receive)) = quoted_amounts {
            prop_assert!(from_quote.is_some());
            prop_assert_eq!(
                (send, receive),
                (quoted_send, quoted_receive),
                "an executed quote moves exactly what it said"
            );
        }
        let Some((from, to)) = events.iter().find_map(|event| match *event {
            Event::CrossBorderPaid { from, to, .. } => Some((from, to)),
            _ => None,
        }) else {
            unreachable!("paid above")
        };
        // The legs chain: each gives the next exactly what it takes, the rest is remainder.
        prop_assert_eq!(legs[0].3 + surplus, send);
        for pair in legs.windows(2) {
            prop_assert_eq!(pair[0].4 - pair[0].6, pair[1].3);
        }
        let last = legs[legs.len() - 1];
        prop_assert_eq!(last.4 - last.6, receive);
        // The payer gave exactly `send` and nothing else; the payee got exactly `receive`.
        let (payer_after, payee_after) = (totals_of(&world, payer_of), totals_of(&world, payee_of));
        for asset in 0..RANDOM_ASSETS {
            let index = usize::from(asset);
            let payer_change = if asset == from.get() { send } else { 0 };
            let payee_change = if asset == to.get() { receive } else { 0 };
            prop_assert_eq!(payer_after[index], payer_before[index] - payer_change, "payer, asset {}", asset);
            prop_assert_eq!(payee_after[index], payee_before[index] + payee_change, "payee, asset {}", asset);
        }
        // The house's remainder account grew by exactly the legs' remainders and the surplus.
        let mut remainders = vec![0_u64; usize::from(RANDOM_ASSETS)];
        remainders[usize::from(from.get())] += surplus;
        for &(market, side, ..) in &legs {
            let spec = world.engine.market(market).expect("market").spec();
            let output = if side == Side::Buy { spec.base } else { spec.quote };
            let remainder = legs.iter().find(|leg| leg.0 == market).expect("this leg").6;
            remainders[usize::from(output.get())] += remainder;
        }
        for asset in 0..RANDOM_ASSETS {
            let before = money_before.totals[usize::from(asset)].2.minor_units();
            prop_assert_eq!(world.remainders(AssetId::new(asset)) - before, remainders[usize::from(asset)]);
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn the_chosen_route_is_the_brute_forces_best(seed in any::<u64>()) {
        check_routing_against_brute_force(seed)?;
    }

    #[test]
    fn a_cross_border_payment_moves_exactly_its_amounts_or_nothing(seed in any::<u64>()) {
        check_exactly_or_nothing(seed)?;
    }
}

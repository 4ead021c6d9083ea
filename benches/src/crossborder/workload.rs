//! The seeded cross-border workload (described in full at the top of `crossborder.rs`):
//! the world (20 currencies, 32 markets, makers and their books, payers), its setup
//! commands, and the generator of the measured streams. The generator applies every
//! command it makes to its own engine as it goes, so that it knows each quote's id,
//! what each payment took from the books (which the replenishment puts back), and
//! what the engine must answer; the timed runs replay the same stream on fresh
//! engines and must end in the same state.

use std::collections::BTreeMap;

use anyhow::{Context, ensure};
use bourse_core::asset::{Asset, AssetCode, AssetTable};
use bourse_core::book::{MarketId, OrderId, Price, Qty, Side, TimeInForce};
use bourse_core::command::{
    AmendOrder, Command, CommandKind, CrossBorderAmount, Deposit, ExecuteQuote, OpenAccount, OrderRef, OrderSize,
    PayCrossBorder, PlaceOrder, QuotePayment, RateLimit, SequencedCommand, Transfer,
};
use bourse_core::config::{Config, CrossBorderConfig};
use bourse_core::event::Event;
use bourse_core::ids::{AccountId, AssetId, IdempotencyKey, KycTier, OwnerId, Reference, Seq, Timestamp};
use bourse_core::limits::NANOS_PER_SECOND;
use bourse_core::market::{FeeRate, FeeSchedule, MarketSpec};
use bourse_core::money::Amount;
use bourse_core::{Capacity, Engine, StateHash};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::payments::outcomes::{OutcomesByKind, Tally};

/// A currency: its code and its value in US dollars per whole unit (the cross rates of
/// the books follow from these).
struct Currency {
    code: &'static str,
    usd: f64,
}

/// Every currency has six decimal places, so that a lot worth ten cents or less still
/// prices to 1/10,000 or finer with a tick of one minor unit (`lot_minor_units`).
const SCALE: u32 = 6;
/// `10^SCALE`: minor units per whole unit.
const MINOR_PER_UNIT: f64 = 1_000_000.0;
const _: () = assert!(10_u64.pow(SCALE) == 1_000_000);

const CURRENCIES: [Currency; 20] = [
    Currency { code: "USD", usd: 1.0 },
    Currency { code: "EUR", usd: 1.08 },
    Currency { code: "JPY", usd: 0.0067 },
    Currency { code: "GBP", usd: 1.27 },
    Currency { code: "CHF", usd: 1.12 },
    Currency { code: "CAD", usd: 0.73 },
    Currency { code: "AUD", usd: 0.66 },
    Currency { code: "NZD", usd: 0.61 },
    Currency { code: "CNY", usd: 0.138 },
    Currency { code: "HKD", usd: 0.128 },
    Currency { code: "SGD", usd: 0.74 },
    Currency { code: "SEK", usd: 0.095 },
    Currency { code: "NOK", usd: 0.093 },
    Currency { code: "DKK", usd: 0.145 },
    Currency { code: "MXN", usd: 0.058 },
    Currency { code: "BRL", usd: 0.20 },
    Currency { code: "INR", usd: 0.012 },
    Currency { code: "KRW", usd: 0.00075 },
    Currency { code: "ZAR", usd: 0.054 },
    Currency { code: "USDT", usd: 1.0 },
];

/// (base, quote): every currency against USD, the European crosses against EUR, and the
/// Asian and Latin American ones against USDT. Pairs without a market (e.g. GBP→JPY,
/// CNY→KRW, MXN→ZAR) route through USD, EUR or USDT.
const MARKETS: [(&str, &str); 32] = [
    ("EUR", "USD"),
    ("GBP", "USD"),
    ("AUD", "USD"),
    ("NZD", "USD"),
    ("USDT", "USD"),
    ("USD", "JPY"),
    ("USD", "CHF"),
    ("USD", "CAD"),
    ("USD", "CNY"),
    ("USD", "HKD"),
    ("USD", "SGD"),
    ("USD", "SEK"),
    ("USD", "NOK"),
    ("USD", "DKK"),
    ("USD", "MXN"),
    ("USD", "BRL"),
    ("USD", "INR"),
    ("USD", "KRW"),
    ("USD", "ZAR"),
    ("EUR", "GBP"),
    ("EUR", "CHF"),
    ("EUR", "SEK"),
    ("EUR", "NOK"),
    ("EUR", "DKK"),
    ("EUR", "JPY"),
    ("EUR", "CNY"),
    ("USDT", "CNY"),
    ("USDT", "HKD"),
    ("USDT", "SGD"),
    ("USDT", "INR"),
    ("USDT", "KRW"),
    ("USDT", "BRL"),
];

/// Price levels per side of every book.
pub(crate) const LEVELS_PER_SIDE: u64 = 50;
/// What one resting order (one per level) is worth.
const LEVEL_USD: f64 = 50_000.0;
/// Half the spread, and the step between levels, in parts of the mid price.
const HALF_SPREAD: f64 = 0.000_1;
const LEVEL_STEP: f64 = 0.000_1;
/// Fees per KYC tier: makers 1 bp; takers 5 bps at tier 0, 3 bps from tier 1.
const FEES: [(u16, u16); 2] = [(1, 5), (1, 3)];
/// Deposited into every payer in every currency, and into every maker in both of its
/// market's currencies.
const PAYER_USD: f64 = 4_000_000.0;
const MAKER_USD: f64 = 500_000_000.0;
/// Payments are worth 10 to 5,000 USD (log-uniform), and one in fifty 20,000 to 200,000.
const PAYMENT_USD: (f64, f64) = (10.0, 5_000.0);
const LARGE_PAYMENT_USD: (f64, f64) = (20_000.0, 200_000.0);
const LARGE_PAYMENT_ONE_IN: u32 = 50;
/// Rate protection of a direct payment: at most 3% worse than the value cross rate.
const LIMIT_SLACK: f64 = 0.03;
/// Command time: from 2026-01-01T00:00:00Z, 10 µs apart; quotes live one second.
const START_NS: u64 = 1_767_225_600 * NANOS_PER_SECOND;
const COMMAND_SPACING_NS: u64 = 10_000;
const QUOTE_TTL_MS: u64 = 1_000;

/// What is measured: one kind of cross-border command on one class of currency pair.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Flavour {
    /// `PayCrossBorder` with a rate limit, books replenished.
    Pay,
    /// `QuotePayment` alone (the books never move).
    Quote,
    /// `QuotePayment` then `ExecuteQuote` of that quote, books replenished.
    QuoteExecute,
    /// The baseline: a plain `Transfer` of what `Pay` would send, in the payer's
    /// currency, between the same payers (the same draws, so the same accounts and
    /// amounts); nothing to convert, so the books are never touched.
    Transfer,
}

impl Flavour {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Flavour::Pay => "pay",
            Flavour::Quote => "quote",
            Flavour::QuoteExecute => "quote+execute",
            Flavour::Transfer => "transfer",
        }
    }

    /// The command kind whose count is the result's `ops`.
    pub(crate) fn measured_kind(self) -> CommandKind {
        match self {
            Flavour::Pay => CommandKind::PayCrossBorder,
            Flavour::Quote => CommandKind::QuotePayment,
            Flavour::QuoteExecute => CommandKind::ExecuteQuote,
            Flavour::Transfer => CommandKind::Transfer,
        }
    }
}

/// The class of currency pair: with a market of its own, or only through a third
/// currency.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Pairs {
    Direct,
    Indirect,
}

impl Pairs {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Pairs::Direct => "1-hop",
            Pairs::Indirect => "2-hop",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Shape {
    pub(crate) flavour: Flavour,
    pub(crate) pairs: Pairs,
    /// Measured commands (payments, quotes or executions).
    pub(crate) ops: usize,
    pub(crate) accounts: u32,
    pub(crate) max_hops: u8,
    /// Payments between two replenishments of the books.
    pub(crate) replenish_every: usize,
    pub(crate) seed: u64,
}

/// The currencies, markets, makers and payers, and the commands that set them up.
#[derive(Clone, Debug)]
pub(crate) struct World {
    pub(crate) config: Config,
    pub(crate) setup: Vec<SequencedCommand>,
    pub(crate) direct: Vec<(AssetId, AssetId)>,
    pub(crate) indirect: Vec<(AssetId, AssetId)>,
    payers: Vec<AccountId>,
    makers: Vec<AccountId>,
    /// Lots per resting order, per market.
    order_lots: Vec<u64>,
    pub(crate) resting_orders: usize,
}

/// USD per minor unit of `asset`.
fn usd_per_minor(asset: AssetId) -> f64 {
    CURRENCIES[usize::from(asset.get())].usd / MINOR_PER_UNIT
}

fn asset_of(code: &str) -> AssetId {
    let index = CURRENCIES.iter().position(|currency| currency.code == code).expect("a listed currency");
    AssetId::new(index as u16)
}

/// Minor units of `asset` worth `usd`, at least one.
fn minor_units(asset: AssetId, usd: f64) -> u64 {
    ((usd / usd_per_minor(asset)).round() as u64).max(1)
}

/// Base minor units per lot: the smallest power of ten whose price is at least 10,000
/// quote minor units, so that one tick is at most 1/10,000 of the price and a lot is
/// worth one to ten cents (EUR/USD: 0.01 EUR; USD/JPY: 0.0001 USD; EUR/CHF: 0.1 EUR).
fn lot_minor_units(base: AssetId, quote: AssetId) -> u64 {
    let per_minor = usd_per_minor(base) / usd_per_minor(quote);
    let mut lot = 1;
    while (lot as f64) * per_minor < 10_000.0 {
        lot *= 10;
    }
    lot
}

impl World {
    pub(crate) fn build(accounts: u32, max_hops: u8) -> anyhow::Result<Self> {
        let assets = CURRENCIES
            .iter()
            .map(|currency| Asset::new(AssetCode::new(currency.code)?, SCALE))
            .collect::<Result<Vec<_>, _>>()?;
        let fees =
            FeeSchedule::new(FEES.iter().map(|&(maker_bps, taker_bps)| FeeRate { maker_bps, taker_bps }).collect())?;
        let mut specs = Vec::new();
        for (base, quote) in MARKETS {
            let (base, quote) = (asset_of(base), asset_of(quote));
            specs.push(MarketSpec {
                base,
                quote,
                lot: lot_minor_units(base, quote),
                tick: 1,
                qty_min: Qty::new(1).context("lots")?,
                qty_max: Qty::new(1 << 40).context("lots")?,
                fees: fees.clone(),
            });
        }
        let crossborder = CrossBorderConfig { max_hops, quote_ttl: Timestamp::from_nanos(QUOTE_TTL_MS * 1_000_000) };
        let config = Config::new(AssetTable::new(assets)?, specs.clone())?.with_crossborder(crossborder)?;

        let mut direct = Vec::new();
        let mut indirect = Vec::new();
        for from in 0..CURRENCIES.len() as u16 {
            for to in 0..CURRENCIES.len() as u16 {
                let (from, to) = (AssetId::new(from), AssetId::new(to));
                if from == to {
                    continue;
                }
                let has_market = specs
                    .iter()
                    .any(|spec| (spec.base == from && spec.quote == to) || (spec.base == to && spec.quote == from));
                if has_market { direct.push((from, to)) } else { indirect.push((from, to)) }
            }
        }

        let mut setup = Setup::default();
        let payers: Vec<AccountId> = (0..accounts).map(|index| setup.open(u8::from(index % 2 == 1))).collect();
        let makers: Vec<AccountId> = (0..specs.len()).map(|_| setup.open(0)).collect();
        for &payer in &payers {
            for asset in 0..CURRENCIES.len() as u16 {
                let asset = AssetId::new(asset);
                setup.deposit(payer, asset, minor_units(asset, PAYER_USD));
            }
        }
        let mut order_lots = Vec::new();
        let mut resting_orders = 0;
        for (index, spec) in specs.iter().enumerate() {
            let maker = makers[index];
            setup.deposit(maker, spec.base, minor_units(spec.base, MAKER_USD));
            setup.deposit(maker, spec.quote, minor_units(spec.quote, MAKER_USD));
            let lot_usd = spec.lot as f64 * usd_per_minor(spec.base);
            let lots = ((LEVEL_USD / lot_usd).round() as u64).max(1);
            order_lots.push(lots);
            // Quote minor units per lot at the value cross rate.
            let mid = spec.lot as f64 * usd_per_minor(spec.base) / usd_per_minor(spec.quote);
            for level in 0..LEVELS_PER_SIDE {
                let away = HALF_SPREAD + LEVEL_STEP * level as f64;
                let ask = (mid * (1.0 + away)).ceil() as u64;
                let bid = (mid * (1.0 - away)).floor() as u64;
                let market = MarketId::new(index as u32);
                setup.push(place(maker, market, Side::Sell, ask, lots));
                setup.push(place(maker, market, Side::Buy, bid, lots));
                resting_orders += 2;
            }
        }
        Ok(Self { config, setup: setup.stamped(), direct, indirect, payers, makers, order_lots, resting_orders })
    }

    /// Sizes for an engine that runs `shape`'s stream without growing a table.
    pub(crate) fn capacity(&self, shape: &Shape) -> Capacity {
        let deposits = self.payers.len() * CURRENCIES.len() + 2 * self.makers.len();
        Capacity {
            accounts: self.payers.len() + self.makers.len(),
            payments: shape.ops,
            idempotency_keys: deposits + shape.ops,
            orders: self.resting_orders * 2,
        }
    }

    /// An engine with the setup applied.
    pub(crate) fn prepared_engine(&self, shape: &Shape) -> anyhow::Result<Engine> {
        let mut engine = Engine::with_capacity(&self.config, self.capacity(shape));
        let mut events = Vec::new();
        for command in &self.setup {
            events.clear();
            engine.apply(command, &mut events);
            let rejected = events.iter().find(|event| matches!(event, Event::Rejected { .. }));
            ensure!(rejected.is_none(), "setup command {command:?} was refused: {rejected:?}");
        }
        Ok(engine)
    }
}

/// Builds the setup commands, numbering accounts and keys as the engine will.
#[derive(Default)]
struct Setup {
    commands: Vec<Command>,
    accounts: u32,
    keys: u128,
}

impl Setup {
    fn open(&mut self, tier: u8) -> AccountId {
        let kyc_tier = KycTier::new(tier).expect("a valid tier");
        self.commands
            .push(Command::OpenAccount(OpenAccount { owner: OwnerId::new(u64::from(self.accounts)), kyc_tier }));
        self.accounts += 1;
        AccountId::new(self.accounts - 1)
    }

    fn deposit(&mut self, account: AccountId, asset: AssetId, minor_units: u64) {
        self.keys += 1;
        let reference = Reference::new("setup").expect("a short reference");
        let amount = Amount::new(minor_units).expect("below AMOUNT_MAX");
        self.commands.push(Command::Deposit(Deposit {
            account,
            key: IdempotencyKey::new(self.keys),
            asset,
            amount,
            reference,
        }));
    }

    fn push(&mut self, command: Command) {
        self.commands.push(command);
    }
}

impl Setup {
    /// The commands, stamped from the start of command time.
    fn stamped(self) -> Vec<SequencedCommand> {
        self.commands.into_iter().enumerate().map(|(index, command)| stamp(index as u64, command)).collect()
    }
}

fn stamp(index: u64, command: Command) -> SequencedCommand {
    SequencedCommand {
        seq: Seq::new(index + 1),
        timestamp: Timestamp::from_nanos(START_NS + index * COMMAND_SPACING_NS),
        command,
    }
}

fn place(by: AccountId, market: MarketId, side: Side, price_ticks: u64, lots: u64) -> Command {
    Command::PlaceOrder(PlaceOrder {
        by,
        market,
        side,
        price: Some(Price::new(price_ticks).expect("a price above zero")),
        size: OrderSize::Qty(Qty::new(lots).expect("a valid quantity")),
        time_in_force: TimeInForce::Gtc,
        post_only: false,
        stp: None,
        client_order_id: None,
    })
}

/// A measured stream, generated (and applied once) before any timing.
#[derive(Clone, Debug)]
pub(crate) struct Workload {
    pub(crate) shape: Shape,
    pub(crate) stream: Vec<SequencedCommand>,
    /// What the engine answered when the stream was generated.
    pub(crate) tally: Tally,
    pub(crate) state_hash: StateHash,
    /// Payments made, and their legs and fills, summed.
    pub(crate) payments: u64,
    pub(crate) legs: u64,
    pub(crate) trades: u64,
    /// Quotes made, and the runners-up they showed, summed.
    pub(crate) quotes: u64,
    pub(crate) runners_up: u64,
    pub(crate) replenish_commands: u64,
}

impl Workload {
    pub(crate) fn expected(&self) -> &OutcomesByKind {
        &self.tally.outcomes
    }
}

/// Makes the stream of `shape` on `world`, applying it to an engine as it goes.
pub(crate) fn generate(world: &World, shape: Shape) -> anyhow::Result<Workload> {
    let mut generator = Generator {
        world,
        shape,
        engine: world.prepared_engine(&shape)?,
        rng: ChaCha8Rng::seed_from_u64(shape.seed),
        next_index: world.setup.len() as u64,
        keys: 1 << 64,
        events: Vec::with_capacity(4096),
        touched: BTreeMap::new(),
        workload: Workload {
            shape,
            stream: Vec::with_capacity(shape.ops * 3),
            tally: Tally::default(),
            state_hash: StateHash(0),
            payments: 0,
            legs: 0,
            trades: 0,
            quotes: 0,
            runners_up: 0,
            replenish_commands: 0,
        },
    };
    for op in 0..shape.ops {
        generator.op()?;
        if (op + 1) % shape.replenish_every == 0 || op + 1 == shape.ops {
            generator.replenish();
        }
    }
    let mut workload = generator.workload;
    workload.state_hash = generator.engine.state_hash();
    generator.engine.check_invariants();
    Ok(workload)
}

struct Generator<'a> {
    world: &'a World,
    shape: Shape,
    engine: Engine,
    rng: ChaCha8Rng,
    next_index: u64,
    keys: u128,
    events: Vec<Event>,
    /// Maker orders the stream traded with since the last replenishment, by id: where
    /// they rest and what they have left.
    touched: BTreeMap<OrderId, (MarketId, Side, Price, u64)>,
    workload: Workload,
}

impl Generator<'_> {
    /// Appends `command` to the stream and applies it; returns its events.
    fn apply(&mut self, command: Command) -> &[Event] {
        let command = stamp(self.next_index, command);
        self.next_index += 1;
        self.events.clear();
        self.engine.apply(&command, &mut self.events);
        self.workload.tally.record(command.command.kind(), &self.events);
        for event in &self.events {
            match *event {
                Event::Trade { market, price, taker_side, maker_order, maker_remaining, .. } => {
                    self.workload.trades += 1;
                    self.touched.insert(maker_order, (market, taker_side.opposite(), price, maker_remaining.lots()));
                }
                Event::CrossBorderLeg { .. } => self.workload.legs += 1,
                Event::CrossBorderPaid { .. } => self.workload.payments += 1,
                Event::Quoted { .. } => self.workload.quotes += 1,
                Event::QuoteRunnerUp { .. } => self.workload.runners_up += 1,
                _ => {}
            }
        }
        self.workload.stream.push(command);
        &self.events
    }

    fn key(&mut self) -> IdempotencyKey {
        self.keys += 1;
        IdempotencyKey::new(self.keys)
    }

    /// One measured operation (and, for quote+execute, the quote before it).
    fn op(&mut self) -> anyhow::Result<()> {
        let pairs = match self.shape.pairs {
            Pairs::Direct => &self.world.direct,
            Pairs::Indirect => &self.world.indirect,
        };
        let (from, to) = pairs[self.rng.random_range(0..pairs.len())];
        let payers = &self.world.payers;
        let by = payers[self.rng.random_range(0..payers.len())];
        let payee = loop {
            let payee = payers[self.rng.random_range(0..payers.len())];
            if payee != by {
                break payee;
            }
        };
        let (low, high) = if self.rng.random_ratio(1, LARGE_PAYMENT_ONE_IN) { LARGE_PAYMENT_USD } else { PAYMENT_USD };
        let usd = (low.ln() + self.rng.random::<f64>() * (high.ln() - low.ln())).exp();
        let sends = self.rng.random_bool(0.5);
        let amount = if sends {
            CrossBorderAmount::Send(Amount::new(minor_units(from, usd)).context("amount")?)
        } else {
            CrossBorderAmount::Receive(Amount::new(minor_units(to, usd)).context("amount")?)
        };
        let max_hops = None;
        match self.shape.flavour {
            Flavour::Pay => {
                let limit = if sends {
                    RateLimit::MinReceive(Amount::new(minor_units(to, usd * (1.0 - LIMIT_SLACK))).context("limit")?)
                } else {
                    RateLimit::MaxSend(Amount::new(minor_units(from, usd * (1.0 + LIMIT_SLACK))).context("limit")?)
                };
                let key = self.key();
                self.apply(Command::PayCrossBorder(PayCrossBorder {
                    by,
                    key,
                    payee,
                    from,
                    to,
                    amount,
                    limit,
                    max_hops,
                }));
            }
            Flavour::Transfer => {
                let amount = Amount::new(minor_units(from, usd)).context("amount")?;
                let key = self.key();
                self.apply(Command::Transfer(Transfer { by, key, to: payee, asset: from, amount }));
            }
            Flavour::Quote | Flavour::QuoteExecute => {
                let quote = QuotePayment { by, payee, from, to, amount, max_hops, ttl: None };
                let quote = self.apply(Command::QuotePayment(quote)).iter().find_map(|event| match *event {
                    Event::Quoted { quote, .. } => Some(quote),
                    _ => None,
                });
                if self.shape.flavour == Flavour::QuoteExecute {
                    let quote = quote.context("a quote to execute (every quote of this workload is accepted)")?;
                    let key = self.key();
                    self.apply(Command::ExecuteQuote(ExecuteQuote { by, key, quote }));
                }
            }
        }
        Ok(())
    }

    /// Puts back what the stream took from the books since the last time: an order
    /// filled in full is placed again (same maker, side and price), one filled in part
    /// is amended back to its size (it goes to the back of its level).
    fn replenish(&mut self) {
        let touched = std::mem::take(&mut self.touched);
        for (order, (market, side, price, remaining)) in touched {
            let lots = self.world.order_lots[market.get() as usize];
            if remaining == lots {
                continue;
            }
            let command = if remaining == 0 {
                place(self.world.makers[market.get() as usize], market, side, price.ticks(), lots)
            } else {
                Command::AmendOrder(AmendOrder {
                    by: self.world.makers[market.get() as usize],
                    order: OrderRef::Id(order),
                    price: None,
                    qty: Some(Qty::new(lots).expect("a valid quantity")),
                })
            };
            self.apply(command);
            self.workload.replenish_commands += 1;
        }
        // Amends and new orders trade with nothing (they rest where they were), so the
        // replenishment itself touches no order.
        debug_assert!(self.touched.is_empty());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lots_price_finely_and_books_are_sane() {
        let world = World::build(10, 2).unwrap();
        assert_eq!(world.config.markets().len(), 32);
        assert_eq!(world.direct.len(), 64);
        assert_eq!(world.indirect.len(), 20 * 19 - 64);
        for spec in world.config.markets() {
            let mid = spec.lot as f64 * usd_per_minor(spec.base) / usd_per_minor(spec.quote);
            assert!(mid >= 10_000.0, "{spec:?}: {mid}");
            assert!(spec.lot as f64 * usd_per_minor(spec.base) <= 0.12, "a lot is worth ten cents or less: {spec:?}");
        }
        let engine = world.prepared_engine(&Shape {
            flavour: Flavour::Pay,
            pairs: Pairs::Direct,
            ops: 10,
            accounts: 10,
            max_hops: 2,
            replenish_every: 10,
            seed: 1,
        });
        let engine = engine.unwrap();
        engine.check_invariants();
        assert_eq!(engine.orders().len(), world.resting_orders);
    }
}

//! The per-market command generator, after exchange-core's `TestOrdersGenerator`
//! (described in full at the top of `matching.rs`). Each market is generated on its
//! own, from its own `ChaCha8` stream, against its own `ShadowBook`; the streams are
//! interleaved afterwards.

use bourse_core::book::{Price, Qty, Side, TimeInForce};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::shadow::{Resting, ShadowBook, StepOutcome, Ticket};

/// A move takes an order this share of the way to the last trade price (at least one
/// tick): exchange-core's `CENTRAL_MOVE_ALPHA`.
const CENTRAL_MOVE_ALPHA: f64 = 0.01;
/// Cancels and moves pick among this many of the oldest resting orders: exchange-core
/// draws a position among the first 512 entries of its insertion-ordered map of live
/// orders.
const PICK_AMONG_OLDEST: usize = 512;
/// How often the book's size is sampled for the statistics, in commands per market
/// (exchange-core's `CHECK_ORDERBOOK_STAT_EVERY_NTH_COMMAND`).
const SAMPLE_EVERY_COMMANDS: usize = 512;
/// The fill stops with an error after this many placements per target order: the
/// book never grew (a bug, not a workload).
const FILL_PLACEMENTS_PER_ORDER_MAX: usize = 100;

/// One command of one market, before the engine's order ids are known.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Step {
    Place { account: u32, side: Side, price: Price, qty: Qty, time_in_force: TimeInForce },
    Cancel { account: u32, ticket: Ticket },
    Move { account: u32, ticket: Ticket, price: Price },
}

/// The kinds of command in the mix.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum StepKind {
    Gtc,
    Ioc,
    Cancel,
    Move,
}

impl StepKind {
    pub(crate) const ALL: [StepKind; 4] = [StepKind::Gtc, StepKind::Ioc, StepKind::Cancel, StepKind::Move];

    pub(crate) fn of(step: &Step) -> Self {
        match step {
            Step::Place { time_in_force: TimeInForce::Gtc, .. } => StepKind::Gtc,
            Step::Place { .. } => StepKind::Ioc,
            Step::Cancel { .. } => StepKind::Cancel,
            Step::Move { .. } => StepKind::Move,
        }
    }

    pub(crate) fn name(self) -> &'static str {
        match self {
            StepKind::Gtc => "gtc",
            StepKind::Ioc => "ioc",
            StepKind::Cancel => "cancel",
            StepKind::Move => "move",
        }
    }
}

/// How one market's prices are drawn: exchange-core's session parameters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct PriceBand {
    /// Where the market starts trading (the first "last trade price").
    pub(crate) mid: u64,
    /// The spread of new limit orders around the last trade price.
    pub(crate) deviation: u64,
    pub(crate) min: u64,
    pub(crate) max: u64,
}

impl PriceBand {
    /// exchange-core's single-book benchmark: mid 100,000 ticks, deviation 5,000,
    /// band 50,000 to 150,000 (its `CENTRAL_PRICE`, `PRICE_DEVIATION_DEFAULT`,
    /// `MIN_PRICE`, `MAX_PRICE`).
    pub(crate) const CLASSIC: PriceBand = PriceBand::around(100_000);

    /// exchange-core's per-symbol draw: mid = 10^(3.3 + 1.5·U + 1.5·U) ticks (about
    /// 2,000 to 2,000,000).
    pub(crate) fn draw(rng: &mut impl Rng) -> Self {
        let exponent = 3.3 + rng.random::<f64>() * 1.5 + rng.random::<f64>() * 1.5;
        Self::around(10_f64.powf(exponent) as u64)
    }

    /// Deviation = min(5% of mid, 10,000) ticks, band = mid ± 5 deviations.
    const fn around(mid: u64) -> Self {
        let deviation = if mid / 20 < 10_000 { mid / 20 } else { 10_000 };
        Self { mid, deviation, min: mid - 5 * deviation, max: mid + 5 * deviation }
    }
}

/// What one market's measured stream did, from the shadow book.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub(crate) struct MarketStats {
    /// Commands of each kind, in `StepKind::ALL` order.
    pub(crate) kinds: [u64; 4],
    /// Commands that produced at least one fill.
    pub(crate) commands_traded: u64,
    pub(crate) trades: u64,
    /// Sums of resting orders and of price levels over `samples` samples.
    pub(crate) resting_sum: u64,
    pub(crate) levels_sum: u64,
    pub(crate) samples: u64,
    /// Most orders resting at once, fill included.
    pub(crate) resting_peak: usize,
    /// Orders resting after the fill, and at the end.
    pub(crate) resting_after_fill: usize,
    pub(crate) resting_at_end: usize,
    pub(crate) levels_at_end: usize,
    /// Trades during the fill (a few GTC orders cross as the fill goes).
    pub(crate) fill_trades: u64,
}

/// One market's generator: exchange-core's session, with a shadow book.
#[derive(Debug)]
pub(crate) struct Session {
    rng: ChaCha8Rng,
    book: ShadowBook,
    first_account: u32,
    accounts: u32,
    band: PriceBand,
    last_trade: u64,
    target_half: usize,
    stats: MarketStats,
}

impl Session {
    /// A session for one market whose traders are accounts
    /// `first_account..first_account + accounts`, aiming at `target_orders` resting.
    pub(crate) fn new(
        seed: u64,
        stream: u64,
        band: PriceBand,
        (first_account, accounts): (u32, u32),
        target_orders: usize,
    ) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        rng.set_stream(stream);
        Self {
            rng,
            book: ShadowBook::default(),
            first_account,
            accounts,
            band,
            last_trade: band.mid,
            target_half: target_orders.div_ceil(2),
            stats: MarketStats::default(),
        }
    }

    pub(crate) fn stats(&self) -> &MarketStats {
        &self.stats
    }

    pub(crate) fn placements(&self) -> usize {
        self.book.placements()
    }

    /// GTC orders on either side until each side has half the target.
    pub(crate) fn fill(&mut self) -> anyhow::Result<Vec<Step>> {
        let mut steps = Vec::with_capacity(2 * self.target_half);
        let placements_max = FILL_PLACEMENTS_PER_ORDER_MAX * 2 * self.target_half.max(1);
        while self.book.orders_on(Side::Buy) < self.target_half || self.book.orders_on(Side::Sell) < self.target_half {
            anyhow::ensure!(
                steps.len() < placements_max,
                "the fill made {placements_max} orders and the book is still short"
            );
            let side = self.side();
            if self.book.orders_on(side) >= self.target_half {
                continue;
            }
            let (step, outcome) = self.place_limit(side);
            self.stats.fill_trades += u64::from(outcome.trades);
            steps.push(step);
        }
        self.stats.resting_after_fill = self.book.resting();
        Ok(steps)
    }

    /// The measured stream: `commands` commands.
    pub(crate) fn generate(&mut self, commands: usize) -> Vec<Step> {
        let mut steps = Vec::with_capacity(commands);
        while steps.len() < commands {
            let Some((step, outcome)) = self.next() else { continue };
            let stats = &mut self.stats;
            stats.kinds[StepKind::ALL.iter().position(|&kind| kind == StepKind::of(&step)).expect("listed")] += 1;
            stats.trades += u64::from(outcome.trades);
            stats.commands_traded += u64::from(outcome.trades > 0);
            steps.push(step);
            if steps.len() % SAMPLE_EVERY_COMMANDS == 0 {
                self.sample();
            }
        }
        self.stats.resting_at_end = self.book.resting();
        self.stats.levels_at_end = self.book.levels();
        steps
    }

    fn sample(&mut self) {
        self.stats.resting_sum += self.book.resting() as u64;
        self.stats.levels_sum += self.book.levels() as u64;
        self.stats.samples += 1;
    }

    /// exchange-core's choice: a side at random; if that side is short of its target, a
    /// GTC order 2 times in 10 (always, when very short), a cancel 1 in 10, else a move;
    /// if not, an IOC order 2 times in 40, a cancel 1 in 40, else a move. Cancels and
    /// moves pick a resting order of either side uniformly. `None` when there is no
    /// resting order to pick (the caller draws again).
    fn next(&mut self) -> Option<(Step, StepOutcome)> {
        let side = self.side();
        let lack = self.target_half.saturating_sub(self.book.orders_on(side));
        let growing = lack > 0;
        let fast = lack > SAMPLE_EVERY_COMMANDS.min(self.target_half * 3 / 4);
        let draw = self.rng.random_range(
            0..match (growing, fast) {
                (true, true) => 2,
                (true, false) => 10,
                (false, _) => 40,
            },
        );
        let step = match draw {
            0 | 1 if growing => self.place_limit(side),
            0 | 1 => self.place_ioc(side),
            _ if self.book.resting() == 0 => return None,
            2 => self.cancel(),
            _ => self.move_toward_last_trade(),
        };
        Some(step)
    }

    fn side(&mut self) -> Side {
        if self.rng.random_range(0..4) >= 2 { Side::Buy } else { Side::Sell }
    }

    fn account(&mut self) -> u32 {
        self.first_account + self.rng.random_range(0..self.accounts)
    }

    /// exchange-core's size: 1 + a·b·c with a, b, c uniform in 0..6 (1 to 126 lots,
    /// mostly small).
    fn size(&mut self) -> Qty {
        let lots =
            1 + self.rng.random_range(0..6_u64) * self.rng.random_range(0..6_u64) * self.rng.random_range(0..6_u64);
        Qty::new(lots).expect("at most 126 lots")
    }

    /// A GTC order on the passive side of the last trade price: at a distance that is
    /// the mean of four uniform draws below a deviation itself drawn as U²·deviation,
    /// so most orders sit near the price and a few far out.
    fn place_limit(&mut self, side: Side) -> (Step, StepOutcome) {
        let account = self.account();
        let qty = self.size();
        let spread = 1 + (self.rng.random::<f64>().powi(2) * self.band.deviation as f64) as u64;
        let sum: u64 = (0..4).map(|_| self.rng.random_range(0..spread)).sum();
        let offset = (sum / 4 * 2).abs_diff(spread);
        let ticks = match side {
            Side::Buy => self.last_trade.checked_sub(offset).expect("the band stays far above zero"),
            Side::Sell => self.last_trade + offset,
        };
        let price = Price::new(ticks).expect("the band stays far above zero");
        let (_, outcome) = self.book.place(account, side, price, qty, true);
        self.after(outcome);
        (Step::Place { account, side, price, qty, time_in_force: TimeInForce::Gtc }, outcome)
    }

    /// An IOC order at the far edge of the band: it takes what it can at any price.
    fn place_ioc(&mut self, side: Side) -> (Step, StepOutcome) {
        let account = self.account();
        let qty = self.size();
        let ticks = match side {
            Side::Buy => self.band.max,
            Side::Sell => self.band.min,
        };
        let price = Price::new(ticks).expect("the band stays far above zero");
        let (_, outcome) = self.book.place(account, side, price, qty, false);
        self.after(outcome);
        (Step::Place { account, side, price, qty, time_in_force: TimeInForce::Ioc }, outcome)
    }

    /// exchange-core's pick for a cancel or a move: uniformly among the oldest
    /// `PICK_AMONG_OLDEST` resting orders of the market.
    fn pick(&mut self) -> Resting {
        let among = self.book.resting().min(PICK_AMONG_OLDEST);
        self.book.oldest(self.rng.random_range(0..among))
    }

    fn cancel(&mut self) -> (Step, StepOutcome) {
        let resting = self.pick();
        self.book.cancel(resting.ticket);
        (Step::Cancel { account: resting.account, ticket: resting.ticket }, StepOutcome::default())
    }

    /// Moves a resting order 1% of the way to the last trade price (at least a tick;
    /// a tick up or down at random when it is already there).
    fn move_toward_last_trade(&mut self) -> (Step, StepOutcome) {
        let resting = self.pick();
        let previous = resting.price.ticks();
        let shift = |distance: u64| (distance as f64 * CENTRAL_MOVE_ALPHA).ceil() as u64;
        let ticks = match previous.cmp(&self.last_trade) {
            std::cmp::Ordering::Greater => previous - shift(previous - self.last_trade),
            std::cmp::Ordering::Less => previous + shift(self.last_trade - previous),
            std::cmp::Ordering::Equal if self.rng.random_bool(0.5) => previous + 1,
            std::cmp::Ordering::Equal => previous - 1,
        };
        let price = Price::new(ticks).expect("the band stays far above zero");
        let outcome = self.book.amend_price(resting.ticket, price);
        self.after(outcome);
        (Step::Move { account: resting.account, ticket: resting.ticket, price }, outcome)
    }

    /// Follows the last trade price (kept inside the band) and the peak book size.
    fn after(&mut self, outcome: StepOutcome) {
        if let Some(price) = outcome.last_price {
            self.last_trade = price.ticks().clamp(self.band.min, self.band.max);
        }
        self.stats.resting_peak = self.stats.resting_peak.max(self.book.resting());
    }
}

//! The seeded matching workload (described in full at the top of `matching.rs`): the
//! configuration (assets and markets), the setup commands that open and fund every
//! account, and the fill and measured streams — each market generated on its own by a
//! `Session`, then the markets interleaved at random and the engine's order ids
//! assigned in the interleaved order.

use bourse_core::asset::{Asset, AssetCode, AssetTable};
use bourse_core::book::{MarketId, OrderId, Qty};
use bourse_core::command::{
    AmendOrder, CancelOrder, Command, Deposit, OpenAccount, OrderRef, OrderSize, PlaceOrder, SequencedCommand,
};
use bourse_core::config::Config;
use bourse_core::ids::{AccountId, AssetId, IdempotencyKey, KycTier, OwnerId, Reference, Seq, Timestamp};
use bourse_core::limits::NANOS_PER_SECOND;
use bourse_core::market::{FeeRate, FeeSchedule, MarketSpec};
use bourse_core::money::Amount;
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;

use super::generator::{MarketStats, PriceBand, Session, Step};

/// Deposited into every account in its market's base and quote: 10^11 minor units, a
/// thousand times what the largest order can hold.
const DEPOSIT_MINOR_UNITS: u64 = 100_000_000_000;
/// Maker and taker fees of every market (one tier for every KYC tier).
pub(crate) const FEES: FeeRate = FeeRate { maker_bps: 10, taker_bps: 20 };
/// Largest order the markets accept, in lots (the workload's are at most 126).
const QTY_LOTS_MAX: u64 = 1_000_000;
/// Setup commands per account: one open, one deposit per asset of its market.
pub(crate) const SETUP_COMMANDS_PER_ACCOUNT: u64 = 3;
/// Command time of the first setup command: 2026-01-01T00:00:00Z.
const START_NS: u64 = 1_767_225_600 * NANOS_PER_SECOND;
/// Command time between consecutive commands: 1 µs.
const COMMAND_SPACING_NS: u64 = 1_000;

/// What the workload looks like.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Shape {
    pub(crate) markets: u32,
    pub(crate) accounts: u32,
    /// Resting orders aimed at, over all markets.
    pub(crate) orders: usize,
    pub(crate) commands: usize,
    pub(crate) seed: u64,
}

impl Shape {
    /// The share of `total` that market `market` gets (the first markets take the
    /// remainder, one each).
    fn share(self, total: usize, market: u32) -> usize {
        let markets = self.markets as usize;
        total / markets + usize::from((market as usize) < total % markets)
    }

    /// Accounts `first..first + count` trade in `market`.
    pub(crate) fn traders(self, market: u32) -> (u32, u32) {
        let per_market = self.accounts / self.markets;
        let extra = if market + 1 == self.markets { self.accounts % self.markets } else { 0 };
        (market * per_market, per_market + extra)
    }

    /// The market account `account` trades in.
    fn market_of(self, account: u32) -> u32 {
        (account / (self.accounts / self.markets)).min(self.markets - 1)
    }

    /// Assets needed for `markets` distinct pairs: n with n·(n − 1) ≥ markets.
    fn asset_count(self) -> u32 {
        (2..=u32::from(u16::MAX)).find(|n| n * (n - 1) >= self.markets).expect("markets are at most MARKETS_MAX")
    }

    /// Market `market`'s (base, quote): every ordered pair of distinct assets, once.
    fn pair(self, market: u32) -> (AssetId, AssetId) {
        let others = self.asset_count() - 1;
        let base = market / others;
        let offset = market % others;
        let quote = if offset < base { offset } else { offset + 1 };
        (AssetId::new(base as u16), AssetId::new(quote as u16))
    }

    pub(crate) fn setup_commands(self) -> u64 {
        SETUP_COMMANDS_PER_ACCOUNT * u64::from(self.accounts)
    }
}

/// What the shadow books predict for the whole workload, and how it looked.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct Prediction {
    /// Every market's statistics, summed (peaks and end figures summed too).
    pub(crate) total: MarketStats,
    /// The markets' price bands, in market order.
    pub(crate) bands: Vec<PriceBand>,
}

/// The command streams, generated before any timing, and what they must do.
#[derive(Clone, Debug)]
pub(crate) struct Workload {
    pub(crate) shape: Shape,
    pub(crate) config: Config,
    /// Fills the books (applied after setup, untimed).
    pub(crate) fill: Vec<SequencedCommand>,
    /// The measured stream.
    pub(crate) commands: Vec<SequencedCommand>,
    pub(crate) prediction: Prediction,
}

impl Workload {
    pub(crate) fn generate(shape: Shape) -> anyhow::Result<Self> {
        let mut rng = ChaCha8Rng::seed_from_u64(shape.seed);
        let mut sessions = Vec::with_capacity(shape.markets as usize);
        let mut fills = Vec::with_capacity(shape.markets as usize);
        let mut streams = Vec::with_capacity(shape.markets as usize);
        let mut prediction = Prediction::default();
        for market in 0..shape.markets {
            let band = if market == 0 { PriceBand::CLASSIC } else { PriceBand::draw(&mut rng) };
            let target = shape.share(shape.orders, market);
            let mut session = Session::new(shape.seed, u64::from(market) + 1, band, shape.traders(market), target);
            fills.push(session.fill()?);
            streams.push(session.generate(shape.share(shape.commands, market)));
            prediction.bands.push(band);
            sessions.push(session);
        }
        prediction.total = sum_stats(sessions.iter().map(Session::stats));
        let mut ids = OrderIds::new(&sessions);
        let first_fill = shape.setup_commands();
        let fill = interleave(&mut rng, fills, first_fill, &mut ids);
        let first_measured = first_fill + fill.len() as u64;
        let commands = interleave(&mut rng, streams, first_measured, &mut ids);
        Ok(Self { shape, config: config(shape)?, fill, commands, prediction })
    }
}

fn sum_stats<'a>(all: impl Iterator<Item = &'a MarketStats>) -> MarketStats {
    all.fold(MarketStats::default(), |mut sum, stats| {
        for (total, count) in sum.kinds.iter_mut().zip(stats.kinds) {
            *total += count;
        }
        sum.commands_traded += stats.commands_traded;
        sum.trades += stats.trades;
        sum.resting_sum += stats.resting_sum;
        sum.levels_sum += stats.levels_sum;
        sum.samples += stats.samples;
        sum.resting_peak += stats.resting_peak;
        sum.resting_after_fill += stats.resting_after_fill;
        sum.resting_at_end += stats.resting_at_end;
        sum.levels_at_end += stats.levels_at_end;
        sum.fill_trades += stats.fill_trades;
        sum
    })
}

/// The engine's id for each market's tickets, assigned as placements come in the
/// interleaved stream (the engine numbers accepted orders from 1, and every
/// placement of the workload is accepted).
struct OrderIds {
    by_market: Vec<Vec<OrderId>>,
    next: u64,
}

impl OrderIds {
    fn new(sessions: &[Session]) -> Self {
        Self { by_market: sessions.iter().map(|session| Vec::with_capacity(session.placements())).collect(), next: 1 }
    }

    fn command(&mut self, market: u32, step: Step) -> Command {
        let ids = &mut self.by_market[market as usize];
        let market = MarketId::new(market);
        match step {
            Step::Place { account, side, price, qty, time_in_force } => {
                ids.push(OrderId::new(self.next));
                self.next += 1;
                Command::PlaceOrder(PlaceOrder {
                    by: AccountId::new(account),
                    market,
                    side,
                    price: Some(price),
                    size: OrderSize::Qty(qty),
                    time_in_force,
                    post_only: false,
                    stp: None,
                    client_order_id: None,
                })
            }
            Step::Cancel { account, ticket } => Command::CancelOrder(CancelOrder {
                by: AccountId::new(account),
                order: OrderRef::Id(ids[ticket.index()]),
            }),
            Step::Move { account, ticket, price } => Command::AmendOrder(AmendOrder {
                by: AccountId::new(account),
                order: OrderRef::Id(ids[ticket.index()]),
                price: Some(price),
                qty: None,
            }),
        }
    }
}

/// Interleaves the markets' streams at random (each market's own order kept), as
/// sequenced commands numbered from `first_index`.
fn interleave(
    rng: &mut ChaCha8Rng,
    streams: Vec<Vec<Step>>,
    first_index: u64,
    ids: &mut OrderIds,
) -> Vec<SequencedCommand> {
    let total: usize = streams.iter().map(Vec::len).sum();
    let mut order: Vec<u32> = Vec::with_capacity(total);
    for (market, stream) in streams.iter().enumerate() {
        order.extend(std::iter::repeat_n(market as u32, stream.len()));
    }
    order.shuffle(rng);
    let mut cursors: Vec<std::vec::IntoIter<Step>> = streams.into_iter().map(Vec::into_iter).collect();
    order
        .into_iter()
        .enumerate()
        .map(|(position, market)| {
            let step = cursors[market as usize].next().expect("one tag per step");
            stamp(first_index + position as u64, ids.command(market, step))
        })
        .collect()
}

/// The engine configuration: enough assets for every market to be its own pair, and
/// the markets (lot and tick of one minor unit, fees `FEES`).
fn config(shape: Shape) -> anyhow::Result<Config> {
    let assets = (0..shape.asset_count())
        .map(|index| Ok(Asset::new(AssetCode::new(&format!("A{index:03}"))?, 2)?))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let fees = FeeSchedule::new(vec![FEES])?;
    let markets = (0..shape.markets)
        .map(|market| {
            let (base, quote) = shape.pair(market);
            MarketSpec {
                base,
                quote,
                lot: 1,
                tick: 1,
                qty_min: Qty::new(1).expect("one lot"),
                qty_max: Qty::new(QTY_LOTS_MAX).expect("below the limit"),
                fees: fees.clone(),
            }
        })
        .collect();
    Ok(Config::new(AssetTable::new(assets)?, markets)?)
}

/// The commands that open every account, then fund each with `DEPOSIT_MINOR_UNITS` of
/// its market's base and quote; made on demand, so that millions of them are never
/// held at once.
pub(crate) fn setup_commands(shape: Shape) -> impl Iterator<Item = SequencedCommand> {
    (0..shape.setup_commands()).map(move |index| stamp(index, setup_command(shape, index)))
}

fn setup_command(shape: Shape, index: u64) -> Command {
    let accounts = u64::from(shape.accounts);
    if index < accounts {
        let kyc_tier = KycTier::new(1).expect("tier 1 exists");
        return Command::OpenAccount(OpenAccount { owner: OwnerId::new(index + 1), kyc_tier });
    }
    let deposit = index - accounts;
    let account = (deposit / 2) as u32;
    let (base, quote) = shape.pair(shape.market_of(account));
    Command::Deposit(Deposit {
        account: AccountId::new(account),
        key: IdempotencyKey::new(u128::from(deposit)),
        asset: if deposit.is_multiple_of(2) { base } else { quote },
        amount: Amount::new(DEPOSIT_MINOR_UNITS).expect("below AMOUNT_MAX"),
        reference: Reference::new("BENCH-SETUP").expect("short enough"),
    })
}

/// The `index`-th command of a run (setup first), with its sequence number and time.
fn stamp(index: u64, command: Command) -> SequencedCommand {
    let timestamp = Timestamp::from_nanos(START_NS + index * COMMAND_SPACING_NS);
    SequencedCommand { seq: Seq::new(index + 1), timestamp, command }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shape(markets: u32) -> Shape {
        Shape { markets, accounts: 100 * markets, orders: 100 * markets as usize, commands: 2_000, seed: 7 }
    }

    #[test]
    fn every_market_is_its_own_pair() {
        for markets in [1, 2, 3, 7, 1000] {
            let shape = shape(markets);
            let mut pairs: Vec<_> = (0..markets).map(|market| shape.pair(market)).collect();
            assert!(
                pairs
                    .iter()
                    .all(|(base, quote)| base != quote && u32::from(base.get().max(quote.get())) < shape.asset_count())
            );
            pairs.sort_unstable();
            pairs.dedup();
            assert_eq!(pairs.len(), markets as usize);
        }
    }

    #[test]
    fn accounts_are_split_between_markets() {
        let shape = Shape { markets: 3, accounts: 10, orders: 30, commands: 30, seed: 1 };
        assert_eq!([shape.traders(0), shape.traders(1), shape.traders(2)], [(0, 3), (3, 3), (6, 4)]);
        let markets: Vec<u32> = (0..10).map(|account| shape.market_of(account)).collect();
        assert_eq!(markets, [0, 0, 0, 1, 1, 1, 2, 2, 2, 2]);
    }

    #[test]
    fn a_seed_names_one_stream() {
        let first = Workload::generate(shape(2)).unwrap();
        assert_eq!(first.commands, Workload::generate(shape(2)).unwrap().commands);
        let other = Workload::generate(Shape { seed: 8, ..shape(2) }).unwrap();
        assert_ne!(first.commands, other.commands);
        assert_eq!(first.commands.len(), 2_000);
    }
}

//! The seeded exchange the `snapshot` and `recovery` suites build, through the same
//! `Engine::apply` that runs live, so every hold, total and book is one the engine
//! made itself:
//!
//! - **Assets**: USD (scale 2) and one base asset per market (BTC, ETH, ... scale 8).
//! - **Markets**: `BASE/USD` for each base; a lot is 0.01 of the base, a tick one cent
//!   per lot (one USD per whole base unit); fees by KYC tier 0..=3: 10/20, 8/16, 5/10
//!   and 2/5 basis points (maker/taker). Market `m` trades around a mid price of
//!   `20,000 + 7,919 m` ticks.
//! - **Accounts**: account `a` trades on market `a mod markets`, has KYC tier
//!   `a mod 4`, and is funded with 100,000,000.00 USD and 10,000 of its base asset:
//!   two assets each. Setup is every `OpenAccount`, then both deposits of each account
//!   in account order (deposit keys are their index, below 2^32).
//! - **Passive orders**: GTC limits, buy or sell with even odds, 1 to `levels` ticks
//!   from the mid on their own side (nearer prices likelier: the distance is
//!   `1 + (levels - 1) u²` for `u` uniform in [0, 1)), 1 to 100 lots. Such an order
//!   never crosses another passive order.

use std::fmt::Write as _;

use anyhow::Context;
use bourse_core::book::{ClientOrderId, MarketId, Price, Qty, Side, TimeInForce};
use bourse_core::command::{Command, Deposit, OpenAccount, OrderSize, PlaceOrder};
use bourse_core::config::Config;
use bourse_core::ids::{AccountId, AssetId, IdempotencyKey, KycTier, OwnerId, Reference, Timestamp};
use bourse_core::limits::NANOS_PER_SECOND;
use bourse_core::money::Amount;
use rand::Rng;

/// The quote asset of every market.
pub(crate) const USD: AssetId = AssetId::new(0);
/// Base assets, one per market.
const BASE_CODES: [&str; 16] = [
    "BTC", "ETH", "SOL", "XRP", "ADA", "DOT", "LTC", "AVAX", "LINK", "ATOM", "XLM", "NEAR", "UNI", "AAVE", "ALGO",
    "FIL",
];
/// Markets the exchange can have: one per base asset.
pub(crate) const MARKETS_MAX: u32 = BASE_CODES.len() as u32;
/// Base minor units per lot: 0.01 of a base unit of scale 8.
const LOT: u64 = 1_000_000;
/// Maker and taker fees, in basis points, by KYC tier.
const FEES_BPS: [(u16, u16); 4] = [(10, 20), (8, 16), (5, 10), (2, 5)];
/// Deposited into each account: 100,000,000.00 USD.
const USD_DEPOSIT_MINOR_UNITS: u64 = 10_000_000_000;
/// Deposited into each account: 10,000 of its base asset.
const BASE_DEPOSIT_MINOR_UNITS: u64 = 1_000_000_000_000;
/// Largest passive order, in lots.
pub(crate) const ORDER_LOTS_MAX: u64 = 100;
/// Setup commands per account: one open, two deposits.
pub(crate) const SETUP_COMMANDS_PER_ACCOUNT: u64 = 3;
/// Command time of the first command: 2026-01-01T00:00:00Z.
pub(crate) const START_NS: u64 = 1_767_225_600 * NANOS_PER_SECOND;

/// The engine configuration of an exchange with `markets` markets.
pub(crate) fn config(markets: u32) -> anyhow::Result<Config> {
    Config::from_toml_str(&config_toml(markets)).context("the exchange configuration")
}

fn config_toml(markets: u32) -> String {
    let mut toml = String::from("[[assets]]\ncode = \"USD\"\nscale = 2\n");
    for code in &BASE_CODES[..markets as usize] {
        let _ = write!(toml, "\n[[assets]]\ncode = \"{code}\"\nscale = 8\n");
    }
    let fees: Vec<String> =
        FEES_BPS.iter().map(|(maker, taker)| format!("{{ maker_bps = {maker}, taker_bps = {taker} }}")).collect();
    for code in &BASE_CODES[..markets as usize] {
        let _ = write!(
            toml,
            "\n[[markets]]\nbase = \"{code}\"\nquote = \"USD\"\nlot = {LOT}\ntick = 1\nqty_min = 1\nqty_max = 1000000\nfees = [{}]\n",
            fees.join(", ")
        );
    }
    toml
}

/// An exchange's shape: how many accounts and markets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Exchange {
    pub(crate) accounts: u32,
    pub(crate) markets: u32,
}

impl Exchange {
    pub(crate) fn new(accounts: u32, markets: u32) -> anyhow::Result<Self> {
        anyhow::ensure!(accounts >= 2, "at least two accounts");
        anyhow::ensure!((1..=MARKETS_MAX).contains(&markets), "markets must be 1..={MARKETS_MAX}");
        Ok(Self { accounts, markets })
    }

    pub(crate) fn setup_command_count(self) -> u64 {
        SETUP_COMMANDS_PER_ACCOUNT * u64::from(self.accounts)
    }

    /// The market `account` trades on.
    pub(crate) fn market_of(self, account: AccountId) -> MarketId {
        MarketId::new(account.get() % self.markets)
    }

    /// The `index`-th setup command: opens first, then two deposits per account.
    pub(crate) fn setup_command(self, index: u64) -> Command {
        let accounts = u64::from(self.accounts);
        if index < accounts {
            let kyc_tier = KycTier::new((index % FEES_BPS.len() as u64) as u8).expect("tiers 0..=3 exist");
            return Command::OpenAccount(OpenAccount { owner: OwnerId::new(index + 1), kyc_tier });
        }
        let deposit = index - accounts;
        let account = AccountId::new((deposit / 2) as u32);
        let (asset, amount) = if deposit % 2 == 1 {
            (base_asset(self.market_of(account)), BASE_DEPOSIT_MINOR_UNITS)
        } else {
            (USD, USD_DEPOSIT_MINOR_UNITS)
        };
        Command::Deposit(Deposit {
            account,
            key: IdempotencyKey::new(u128::from(deposit)),
            asset,
            amount: Amount::new(amount).expect("far below AMOUNT_MAX"),
            reference: Reference::new("BENCH-SETUP").expect("short enough"),
        })
    }

    /// A GTC limit order of `account` that rests: see the module documentation.
    pub(crate) fn passive_order(
        self,
        rng: &mut impl Rng,
        account: AccountId,
        levels: u64,
        client_order_id: Option<u128>,
    ) -> PlaceOrder {
        let market = self.market_of(account);
        let side = if rng.random_bool(0.5) { Side::Buy } else { Side::Sell };
        let price = passive_price(rng, market, side, levels);
        let qty = Qty::new(rng.random_range(1..=ORDER_LOTS_MAX)).expect("a positive quantity");
        PlaceOrder {
            by: account,
            market,
            side,
            price: Some(price),
            size: OrderSize::Qty(qty),
            time_in_force: TimeInForce::Gtc,
            post_only: false,
            stp: None,
            client_order_id: client_order_id.and_then(ClientOrderId::new),
        }
    }
}

/// The base asset of `market`.
pub(crate) fn base_asset(market: MarketId) -> AssetId {
    AssetId::new(1 + market.get() as u16)
}

/// The mid price of `market`, in ticks.
pub(crate) fn mid_ticks(market: MarketId) -> u64 {
    20_000 + 7_919 * u64::from(market.get())
}

/// A price 1 to `levels` ticks from the mid of `market`, on `side`'s own side.
pub(crate) fn passive_price(rng: &mut impl Rng, market: MarketId, side: Side, levels: u64) -> Price {
    let u: f64 = rng.random();
    let distance = 1 + ((levels - 1) as f64 * u * u) as u64;
    let mid = mid_ticks(market);
    let ticks = match side {
        Side::Buy => mid - distance,
        Side::Sell => mid + distance,
    };
    Price::new(ticks).expect("mids are far above the deepest level")
}

/// The command time `offset_ns` after the start.
pub(crate) fn time_at(offset_ns: u64) -> Timestamp {
    Timestamp::from_nanos(START_NS + offset_ns)
}

/// Levels a side may span: the mid of market 0 must stay above the deepest bid.
pub(crate) const LEVELS_MAX: u64 = 10_000;

#[cfg(test)]
mod tests {
    use bourse_core::command::SequencedCommand;
    use bourse_core::event::Event;
    use bourse_core::ids::Seq;
    use bourse_core::{Capacity, Engine};
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    use super::*;

    #[test]
    fn setup_and_passive_orders_are_all_accepted_and_rest() {
        let exchange = Exchange::new(40, 3).unwrap();
        let mut engine = Engine::with_capacity(&config(3).unwrap(), Capacity::default());
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let mut events = Vec::new();
        let setup = (0..exchange.setup_command_count()).map(|index| exchange.setup_command(index));
        let orders = (0..500).map(|index| {
            let account = AccountId::new(rng.random_range(0..exchange.accounts));
            Command::PlaceOrder(exchange.passive_order(&mut rng, account, 50, Some(index + 1)))
        });
        for (index, command) in setup.chain(orders.collect::<Vec<_>>()).enumerate() {
            events.clear();
            let sequenced = SequencedCommand { seq: Seq::new(index as u64 + 1), timestamp: time_at(0), command };
            engine.apply(&sequenced, &mut events);
            assert!(!events.iter().any(|event| matches!(event, Event::Rejected { .. } | Event::Trade { .. })));
        }
        assert_eq!(engine.orders().len(), 500);
        assert_eq!(
            engine.balance(AccountId::new(5), base_asset(MarketId::new(2))).unwrap().total().minor_units(),
            BASE_DEPOSIT_MINOR_UNITS
        );
        engine.check_invariants();
    }
}

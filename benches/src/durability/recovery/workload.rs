//! The recovery suite's command stream after setup, drawn from one `ChaCha8Rng` seeded
//! with `--seed` and steered by the engine it is applied to (the generator looks at
//! which orders still rest, so cancels and amends name live orders):
//!
//! - 40% `Transfer`: USD between two distinct accounts drawn uniformly, 0.01 to
//!   100.00, each with a fresh idempotency key;
//! - 36% `PlaceOrder` on the account's market: 85% passive GTC limits (they rest, see
//!   `exchange`), 10% aggressive GTC limits 3 ticks through the mid (they take what
//!   rests near it and rest the remainder), 5% IOC limits 5 ticks through the mid (the
//!   remainder is cancelled); 1 to 100 lots; every other one with a client order id;
//! - 20% `CancelOrder` of a resting order, by id;
//! - 4% `AmendOrder`: a resting order moved to a new passive price.
//!
//! A cancel or amend with no resting order to name (early in the stream) is a
//! transfer instead.

use bourse_core::Engine;
use bourse_core::book::{ClientOrderId, MarketId, OrderId, Price, Qty, Side, TimeInForce};
use bourse_core::command::{AmendOrder, CancelOrder, Command, OrderRef, OrderSize, PlaceOrder, Transfer};
use bourse_core::event::Event;
use bourse_core::ids::{AccountId, IdempotencyKey};
use bourse_core::money::Amount;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::durability::exchange::{self, Exchange, ORDER_LOTS_MAX, USD};

/// Cumulative percentages of the mix: transfers, then placements, then cancels; the
/// rest amends.
const TRANSFER_BELOW: u32 = 40;
const PLACE_BELOW: u32 = 76;
const CANCEL_BELOW: u32 = 96;
/// Of the placements: passive below the first, aggressive GTC below the second, IOC
/// for the rest.
const PASSIVE_BELOW: u32 = 85;
const AGGRESSIVE_BELOW: u32 = 95;
/// How far through the mid an aggressive GTC and an IOC order are priced, in ticks.
const AGGRESSIVE_TICKS: u64 = 3;
const IOC_TICKS: u64 = 5;
/// Largest transfer: 100.00 USD (the smallest is 0.01).
const TRANSFER_MINOR_UNITS_MAX: u64 = 10_000;
/// Tries to find a resting order among the candidates before giving up.
const LIVE_PICK_TRIES: usize = 8;

/// The share of each kind in the mix, for the report.
pub(crate) const MIX_TEXT: &str = "40% transfers, 36% orders (85% passive GTC, 10% aggressive GTC, 5% IOC), \
                                   20% cancels, 4% amends";

pub(crate) struct Generator {
    exchange: Exchange,
    levels: u64,
    rng: ChaCha8Rng,
    /// Orders accepted as GTC, some of which may since have filled or been cancelled.
    candidates: Vec<(AccountId, OrderId)>,
    keys_issued: u64,
    orders_placed: u64,
}

impl Generator {
    pub(crate) fn new(exchange: Exchange, levels: u64, seed: u64) -> Self {
        Self {
            exchange,
            levels,
            rng: ChaCha8Rng::seed_from_u64(seed),
            candidates: Vec::new(),
            keys_issued: 0,
            orders_placed: 0,
        }
    }

    /// The next command, given the engine as it stands.
    pub(crate) fn next(&mut self, engine: &Engine) -> Command {
        let roll = self.rng.random_range(0..100);
        if roll < TRANSFER_BELOW {
            return self.transfer();
        }
        if roll < PLACE_BELOW {
            return self.place();
        }
        let cancel = roll < CANCEL_BELOW;
        let Some((account, order, index)) = self.pick_live(engine) else { return self.transfer() };
        if cancel {
            self.candidates.swap_remove(index);
            return Command::CancelOrder(CancelOrder { by: account, order: OrderRef::Id(order) });
        }
        let slot = engine.orders().find(order).expect("picked among resting orders");
        let node = engine.orders().get(slot);
        let mut price = exchange::passive_price(&mut self.rng, node.market(), node.side(), self.levels);
        if price == node.price() {
            let ticks = match node.side() {
                Side::Buy => price.ticks() - 1,
                Side::Sell => price.ticks() + 1,
            };
            price = Price::new(ticks).expect("far above zero");
        }
        Command::AmendOrder(AmendOrder { by: account, order: OrderRef::Id(order), price: Some(price), qty: None })
    }

    /// Keeps track of the GTC orders the last command's events accepted.
    pub(crate) fn observe(&mut self, events: &[Event]) {
        for event in events {
            if let Event::OrderAccepted { order, account, time_in_force: TimeInForce::Gtc, .. } = event {
                self.candidates.push((*account, *order));
            }
        }
    }

    fn transfer(&mut self) -> Command {
        let accounts = self.exchange.accounts;
        let by = self.rng.random_range(0..accounts);
        let draw = self.rng.random_range(0..accounts - 1);
        let to = if draw >= by { draw + 1 } else { draw };
        let amount = self.rng.random_range(1..=TRANSFER_MINOR_UNITS_MAX);
        Command::Transfer(Transfer {
            by: AccountId::new(by),
            key: self.key(),
            to: AccountId::new(to),
            asset: USD,
            amount: Amount::new(amount).expect("small"),
        })
    }

    fn place(&mut self) -> Command {
        let account = AccountId::new(self.rng.random_range(0..self.exchange.accounts));
        self.orders_placed += 1;
        let client_order_id = (self.orders_placed % 2 == 1).then_some(u128::from(self.orders_placed));
        let kind = self.rng.random_range(0..100);
        if kind < PASSIVE_BELOW {
            return Command::PlaceOrder(self.exchange.passive_order(
                &mut self.rng,
                account,
                self.levels,
                client_order_id,
            ));
        }
        let (time_in_force, through) =
            if kind < AGGRESSIVE_BELOW { (TimeInForce::Gtc, AGGRESSIVE_TICKS) } else { (TimeInForce::Ioc, IOC_TICKS) };
        let market = self.exchange.market_of(account);
        let side = if self.rng.random_bool(0.5) { Side::Buy } else { Side::Sell };
        let qty = Qty::new(self.rng.random_range(1..=ORDER_LOTS_MAX)).expect("positive");
        Command::PlaceOrder(PlaceOrder {
            by: account,
            market,
            side,
            price: Some(aggressive_price(market, side, through)),
            size: OrderSize::Qty(qty),
            time_in_force,
            post_only: false,
            stp: None,
            client_order_id: client_order_id.and_then(ClientOrderId::new),
        })
    }

    /// A resting order among the candidates: (account, order, index in candidates).
    /// Candidates found no longer resting are dropped.
    fn pick_live(&mut self, engine: &Engine) -> Option<(AccountId, OrderId, usize)> {
        for _ in 0..LIVE_PICK_TRIES {
            if self.candidates.is_empty() {
                return None;
            }
            let index = self.rng.random_range(0..self.candidates.len());
            let (account, order) = self.candidates[index];
            if engine.orders().find(order).is_some() {
                return Some((account, order, index));
            }
            self.candidates.swap_remove(index);
        }
        None
    }

    /// A fresh key: bit 127 set, 63 random bits, then a counter (never repeats, and
    /// disjoint from the setup deposits' keys, which are below 2^32).
    fn key(&mut self) -> IdempotencyKey {
        self.keys_issued += 1;
        let random = self.rng.random::<u64>() | (1 << 63);
        IdempotencyKey::new((u128::from(random) << 64) | u128::from(self.keys_issued))
    }
}

/// `through` ticks past the mid of `market`, on the far side for `side`.
fn aggressive_price(market: MarketId, side: Side, through: u64) -> Price {
    let mid = exchange::mid_ticks(market);
    let ticks = match side {
        Side::Buy => mid + through,
        Side::Sell => mid - through,
    };
    Price::new(ticks).expect("mids are far above zero")
}

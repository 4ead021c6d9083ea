//! Settlement of fills: the `Fills` the engine hands to the matching loop. Each fill
//! moves base and quote between the two accounts and the fees to the house, inside
//! the same command, and keeps every order's hold equal to what it still reserves.

use super::ledger::Ledger;
use crate::book::{Fills, MarketId, OrderId, OrderNode, Price, Qty, Side};
use crate::event::{CancelReason, Event};
use crate::ids::{AccountId, AssetId};
use crate::market::{MarketSpec, fee};
use crate::money::Amount;

/// The incoming order's side of the settlement.
#[derive(Clone, Copy, Debug)]
pub(super) struct TakerFunds {
    pub(super) order: OrderId,
    pub(super) account: AccountId,
    pub(super) side: Side,
    pub(super) taker_bps: u16,
    /// What is still held for the incoming order (quote for a buy, base for a sell).
    pub(super) held: Amount,
    /// Lots it still wants, for the trade reports; zero for a budget order.
    pub(super) wanted: Qty,
    /// A market buy limited by `held` rather than by a quantity.
    pub(super) budget: bool,
}

pub(super) struct Settlement<'a> {
    pub(super) ledger: &'a mut Ledger,
    pub(super) out: &'a mut Vec<Event>,
    pub(super) spec: &'a MarketSpec,
    pub(super) market: MarketId,
    pub(super) market_seq: &'a mut u64,
    pub(super) last_price: &'a mut Option<Price>,
    pub(super) touched_levels: &'a mut Vec<(MarketId, Side, Price)>,
    pub(super) taker: TakerFunds,
}

/// The asset an order on `side` holds: quote for a buy, base for a sell.
pub(super) fn hold_asset(spec: &MarketSpec, side: Side) -> AssetId {
    match side {
        Side::Buy => spec.quote,
        Side::Sell => spec.base,
    }
}

/// What a resting order must hold for `qty` lots at `price`.
pub(super) fn resting_hold(spec: &MarketSpec, side: Side, price: Price, qty: Qty, hold_bps: u16) -> Option<Amount> {
    match side {
        Side::Buy => spec.buy_hold(price, qty, hold_bps),
        Side::Sell => spec.base_amount(qty),
    }
}

pub(super) fn touch_level(touched: &mut Vec<(MarketId, Side, Price)>, level: (MarketId, Side, Price)) {
    if !touched.contains(&level) {
        touched.push(level);
    }
}

impl Settlement<'_> {
    /// What a buy of `qty` lots at `price` costs a taker, fee included.
    fn taker_cost(&self, price: Price, qty: Qty) -> Option<Amount> {
        let notional = self.spec.quote_amount(price, qty)?;
        notional.checked_add(fee(notional, self.taker.taker_bps))
    }

    fn settle_taker_buy(
        &mut self,
        maker: &mut OrderNode,
        notional: Amount,
        base: Amount,
        taker_fee: Amount,
        maker_fee: Amount,
    ) {
        let (spec, taker) = (self.spec, self.taker);
        let maker_account = AccountId::new(maker.account);
        let cost = notional.checked_add(taker_fee).expect("covered by the taker's hold");
        self.ledger.debit_held(taker.account, spec.quote, cost);
        self.taker.held = taker.held.checked_sub(cost).expect("a taker's hold covers its fills");
        self.ledger.credit(taker.account, spec.base, base);
        self.ledger.debit_held(maker_account, spec.base, base);
        maker.held = maker.held.checked_sub(base.minor_units()).expect("a sell holds its base");
        self.ledger.credit(maker_account, spec.quote, notional.checked_sub(maker_fee).expect("fee below notional"));
    }

    fn settle_taker_sell(
        &mut self,
        maker: &mut OrderNode,
        qty: Qty,
        notional: Amount,
        base: Amount,
        taker_fee: Amount,
        maker_fee: Amount,
    ) {
        let (spec, taker) = (self.spec, self.taker);
        let maker_account = AccountId::new(maker.account);
        self.ledger.debit_held(taker.account, spec.base, base);
        self.taker.held = taker.held.checked_sub(base).expect("a sell holds its base");
        self.ledger.credit(taker.account, spec.quote, notional.checked_sub(taker_fee).expect("fee below notional"));
        // The maker's hold shrinks to what its remainder needs; what the fill did not
        // use (a maker fee below the held taker fee) goes back to available.
        let hold_bps = maker.maker_bps.max(maker.taker_bps);
        let held_after = resting_hold(spec, Side::Buy, maker.price, maker.remaining.minus(qty), hold_bps)
            .expect("smaller than before");
        let cost = notional.checked_add(maker_fee).expect("covered by the maker's hold");
        let released = maker
            .held
            .checked_sub(held_after.minor_units())
            .and_then(|freed| freed.checked_sub(cost.minor_units()))
            .expect("a buy's hold covers its fills");
        self.ledger.debit_held(maker_account, spec.quote, cost);
        self.ledger.release(maker_account, spec.quote, Amount::new(released).expect("bounded"));
        self.ledger.credit(maker_account, spec.base, base);
        maker.held = held_after.minor_units();
    }
}

impl Fills for Settlement<'_> {
    fn affordable(&mut self, price: Price, wanted: Qty) -> Qty {
        if !self.taker.budget {
            return wanted;
        }
        let budget = u128::from(self.taker.held.minor_units());
        let unit = u128::from(price.ticks()) * u128::from(self.spec.tick);
        let guess = budget * 10_000 / (unit * (10_000 + u128::from(self.taker.taker_bps)));
        let mut lots = Qty::new(u64::try_from(guess).unwrap_or(u64::MAX).min(wanted.lots())).unwrap_or(wanted);
        // The guess ignores fee rounding (which only makes lots cheaper): step up while
        // one more lot still fits the budget.
        while lots < wanted {
            let more = lots.plus(Qty::new(1).expect("one lot"));
            match self.taker_cost(price, more) {
                Some(cost) if cost <= self.taker.held => lots = more,
                _ => break,
            }
        }
        lots
    }

    fn fill(&mut self, maker: &mut OrderNode, qty: Qty) {
        let spec = self.spec;
        let price = maker.price;
        let notional = spec.quote_amount(price, qty).expect("bounded by the maker's hold");
        let base = spec.base_amount(qty).expect("bounded by the market's order size");
        let taker_fee = fee(notional, self.taker.taker_bps);
        let maker_fee = fee(notional, maker.maker_bps);
        match self.taker.side {
            Side::Buy => self.settle_taker_buy(maker, notional, base, taker_fee, maker_fee),
            Side::Sell => self.settle_taker_sell(maker, qty, notional, base, taker_fee, maker_fee),
        }
        self.ledger.collect_fee(spec.quote, taker_fee.checked_add(maker_fee).expect("fees below notional"));
        if !self.taker.budget {
            self.taker.wanted = self.taker.wanted.minus(qty);
        }
        *self.market_seq += 1;
        *self.last_price = Some(price);
        touch_level(self.touched_levels, (self.market, maker.side, price));
        self.out.push(Event::Trade {
            market: self.market,
            market_seq: *self.market_seq,
            price,
            qty,
            taker_side: self.taker.side,
            maker_order: maker.id,
            taker_order: self.taker.order,
            maker_account: AccountId::new(maker.account),
            taker_account: self.taker.account,
            maker_fee,
            taker_fee,
            maker_remaining: maker.remaining.minus(qty),
            taker_remaining: self.taker.wanted,
        });
    }

    fn self_trade_cancel(&mut self, maker: &OrderNode) {
        let account = AccountId::new(maker.account);
        let asset = hold_asset(self.spec, maker.side);
        self.ledger.release(account, asset, Amount::new(maker.held).expect("bounded"));
        touch_level(self.touched_levels, (self.market, maker.side, maker.price));
        self.out.push(Event::OrderCancelled {
            order: maker.id,
            account,
            market: self.market,
            remaining: maker.remaining,
            reason: CancelReason::SelfTrade,
        });
    }
}

//! Matching: an incoming order takes liquidity from the opposite side, best price
//! first and oldest order first at each price (price-time priority), with self-trade
//! prevention. What a fill *means* (moving money) is the caller's: it is told of each
//! fill through `Fills`, so the very same loop serves the engine and the book-only
//! benchmarks. `walk` is the read-only twin used to price an order before it runs
//! (fill-or-kill checks, market-order holds, quotes).

use super::levels::Book;
use super::slab::{OrderNode, OrderSlab};
use super::types::{Price, Qty, SelfTradePrevention, Side};

/// The incoming order, as far as matching cares.
#[derive(Clone, Copy, Debug)]
pub struct Taker {
    pub account: u32,
    pub side: Side,
    /// `None` for a market order: any price.
    pub limit: Option<Price>,
    pub remaining: Qty,
    pub stp: SelfTradePrevention,
}

/// Why matching stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MatchEnd {
    /// Nothing remains of the incoming order.
    Filled,
    /// No more resting orders at an acceptable price.
    NoLiquidity,
    /// Self-trade prevention stopped the incoming order (`CancelTaker`, `CancelBoth`).
    SelfTrade,
    /// `Fills::affordable` allowed less than the next fill wanted.
    Budget,
}

/// What the caller does with each fill.
pub trait Fills {
    /// The most lots the taker may take at `price`, out of `wanted` (a quote budget);
    /// all of them by default.
    fn affordable(&mut self, _price: Price, wanted: Qty) -> Qty {
        wanted
    }
    /// `qty` trades at the maker's price. `maker` is the resting order before the fill
    /// (its `remaining` still includes `qty`); the caller may change its `held`.
    fn fill(&mut self, maker: &mut OrderNode, qty: Qty);
    /// A resting order of the taker's own account is cancelled by self-trade
    /// prevention; it leaves the book right after this call.
    fn self_trade_cancel(&mut self, maker: &OrderNode);
    /// A resting order was filled completely and has left the book.
    fn maker_done(&mut self, _maker: &OrderNode) {}
}

/// Matches `taker` against the opposite side of `book` until it is filled, the price
/// no longer crosses, self-trade prevention stops it, or its budget runs out.
pub fn take(book: &mut Book, slab: &mut OrderSlab, taker: &mut Taker, fills: &mut impl Fills) -> MatchEnd {
    let opposite = book.side_mut(taker.side.opposite());
    loop {
        if taker.remaining.is_zero() {
            return MatchEnd::Filled;
        }
        let Some(level) = opposite.levels.last_mut() else {
            return MatchEnd::NoLiquidity;
        };
        if taker.limit.is_some_and(|limit| !taker.side.crosses(limit, level.price())) {
            return MatchEnd::NoLiquidity;
        }
        let price = level.price();
        let slot = level.head();
        let maker = slab.get_mut(slot);
        if maker.account == taker.account {
            fills_self_trade(taker.stp, fills, maker);
            if taker.stp != SelfTradePrevention::CancelTaker {
                opposite.unlink(slab, slot);
                slab.remove(slot);
            }
            if taker.stp == SelfTradePrevention::CancelMaker {
                continue;
            }
            return MatchEnd::SelfTrade;
        }
        let wanted = taker.remaining.min(maker.remaining);
        let qty = fills.affordable(price, wanted);
        if qty.is_zero() {
            return MatchEnd::Budget;
        }
        fills.fill(maker, qty);
        taker.remaining = taker.remaining.minus(qty);
        maker.remaining = maker.remaining.minus(qty);
        let maker_done = maker.remaining.is_zero();
        // The maker is at the head of the best level: adjust that level directly
        // instead of searching for it again.
        level.reduce_total(qty);
        if maker_done {
            opposite.unlink(slab, slot);
            let node = slab.remove(slot);
            fills.maker_done(&node);
        }
        if qty < wanted {
            return MatchEnd::Budget;
        }
    }
}

fn fills_self_trade(stp: SelfTradePrevention, fills: &mut impl Fills, maker: &OrderNode) {
    if stp != SelfTradePrevention::CancelTaker {
        fills.self_trade_cancel(maker);
    }
}

/// Walks what `taker` would trade with, without changing anything: `visit` is offered
/// each resting order it would meet, in matching order, with the lots it would take
/// from it, and returns the lots it accepts; walking stops when it accepts fewer,
/// when the taker is filled, or where `take` would stop.
pub fn walk(book: &Book, slab: &OrderSlab, taker: &Taker, mut visit: impl FnMut(&OrderNode, Qty) -> Qty) {
    let mut remaining = taker.remaining;
    for level in book.side(taker.side.opposite()).levels() {
        if taker.limit.is_some_and(|limit| !taker.side.crosses(limit, level.price())) {
            return;
        }
        let mut cursor = Some(level.head());
        while let Some(slot) = cursor {
            if remaining.is_zero() {
                return;
            }
            let maker = slab.get(slot);
            cursor = maker.next;
            if maker.account == taker.account {
                if taker.stp == SelfTradePrevention::CancelMaker {
                    continue;
                }
                return;
            }
            let offered = remaining.min(maker.remaining);
            let accepted = visit(maker, offered);
            remaining = remaining.minus(accepted.min(offered));
            if accepted < offered {
                return;
            }
        }
    }
}

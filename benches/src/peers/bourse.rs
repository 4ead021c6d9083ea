//! Bourse's own order book, driven exactly as the engine drives it
//! (`core/src/engine/trade.rs`, `execute` and `cancel_resting`), minus money: `take`
//! with a `Fills` that only counts, then `OrderSlab::insert` + `BookSide::push_back`
//! for what remains; a cancel is `OrderSlab::find` and the owner check of
//! `find_order`, then `BookSide::unlink` + `OrderSlab::remove`.

use bourse_core::book::{
    Book, Fills, MarketId, MatchEnd, NewOrder, OrderNode, OrderSlab, Qty, SelfTradePrevention, Side, Taker, take,
};

use super::BookUnderTest;
use super::workload::{Cancel, Limit, Tally, Top};

/// The one market of the benchmark.
const MARKET: MarketId = MarketId::new(0);

/// `Book` and `OrderSlab`, as one engine market holds them.
#[derive(Debug)]
pub(crate) struct Bourse {
    book: Book,
    slab: OrderSlab,
}

/// The trivial `Fills`: what the engine settles, only counted.
impl Fills for Tally {
    #[inline]
    fn fill(&mut self, _maker: &mut OrderNode, qty: Qty) {
        self.fills += 1;
        self.filled_lots += qty.lots();
    }

    fn self_trade_cancel(&mut self, _maker: &OrderNode) {
        unreachable!("no account trades on both sides, and CancelTaker never reports a maker");
    }
}

impl BookUnderTest for Bourse {
    fn with_capacity(orders: usize) -> Self {
        Self { book: Book::new(), slab: OrderSlab::with_capacity(orders) }
    }

    #[inline]
    fn limit(&mut self, limit: &Limit, tally: &mut Tally) {
        let stp = SelfTradePrevention::default();
        let mut taker =
            Taker { account: limit.account, side: limit.side, limit: Some(limit.price), remaining: limit.qty, stp };
        let end = take(&mut self.book, &mut self.slab, &mut taker, tally);
        if taker.remaining.is_zero() || end == MatchEnd::SelfTrade {
            return;
        }
        let slot = self.slab.insert(&NewOrder {
            id: limit.id,
            client_order_id: None,
            account: limit.account,
            market: MARKET,
            side: limit.side,
            price: limit.price,
            remaining: taker.remaining,
            held: 0,
            maker_bps: 0,
            taker_bps: 0,
            stp,
            post_only: false,
        });
        self.book.side_mut(limit.side).push_back(&mut self.slab, slot);
    }

    #[inline]
    fn cancel(&mut self, cancel: &Cancel, tally: &mut Tally) {
        let found = self.slab.find(cancel.id).filter(|&slot| self.slab.get(slot).account() == cancel.account);
        let Some(slot) = found else {
            tally.cancels_missed += 1;
            return;
        };
        let node = *self.slab.get(slot);
        self.book.side_mut(node.side()).unlink(&mut self.slab, slot);
        self.slab.remove(slot);
    }

    fn top(&self) -> Top {
        let lots = |side: Side| self.book.side(side).levels().map(|level| level.total().lots()).sum();
        Top {
            best_bid_ticks: self.book.best_bid().map(|level| level.price().ticks()),
            best_ask_ticks: self.book.best_ask().map(|level| level.price().ticks()),
            bid_lots: lots(Side::Buy),
            ask_lots: lots(Side::Sell),
        }
    }

    fn check_invariants(&self) {
        self.slab.check_invariants();
        assert_eq!(self.book.check_invariants(&self.slab), self.slab.len(), "every resting order is in the book");
    }
}

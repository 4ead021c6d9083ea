//! orderbook-rs 0.15 (`orderbook_rs::OrderBook<()>`): a concurrent book (a lock-free
//! skip list of price levels per side, `DashMap` indexes, a submit gate) used here from
//! one thread. A limit order is `add_limit_order_with_result`, the documented call
//! that returns the fills of the order (`TradeResult`); a cancel is `cancel_order`.
//!
//! Configured like for like: ids are `Id::Sequential` (the plain `u64` variant); the
//! book is built with no listeners, no risk limits, no fees, no order-state tracker,
//! self-trade prevention off (its default, `STPMode::None`) and no tick or lot size;
//! orders carry no user (`Hash32::zero()`, what `add_limit_order_with_result` sends);
//! and the clock is a constant, because Bourse's book keeps no timestamps.

use std::sync::Arc;

use bourse_core::book::Side;
use orderbook_rs::prelude::{Clock, Id, OrderBook, TimeInForce, TimestampMs};

use super::BookUnderTest;
use super::workload::{Cancel, Limit, Tally, Top};

/// A clock that always reads the same instant: orderbook-rs reads its clock on every
/// submit (order timestamp, expiry check, taker timestamp); the other books have none.
#[derive(Debug)]
struct FixedClock;

impl Clock for FixedClock {
    fn now_millis(&self) -> TimestampMs {
        TimestampMs::new(0)
    }
}

pub(crate) struct OrderbookRs {
    book: OrderBook<()>,
}

impl std::fmt::Debug for OrderbookRs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OrderbookRs").finish_non_exhaustive()
    }
}

fn side(side: Side) -> orderbook_rs::prelude::Side {
    match side {
        Side::Buy => orderbook_rs::prelude::Side::Buy,
        Side::Sell => orderbook_rs::prelude::Side::Sell,
    }
}

impl BookUnderTest for OrderbookRs {
    /// orderbook-rs has no way to pre-size its indexes.
    fn with_capacity(_orders: usize) -> Self {
        Self { book: OrderBook::with_clock("PEERS", Arc::new(FixedClock)) }
    }

    #[inline]
    fn limit(&mut self, limit: &Limit, tally: &mut Tally) {
        let result = self.book.add_limit_order_with_result(
            Id::Sequential(limit.id.get()),
            u128::from(limit.price.ticks()),
            limit.qty.lots(),
            side(limit.side),
            TimeInForce::Gtc,
            None,
        );
        match result {
            Ok((_, Some(trades))) => {
                let trades = trades.match_result.trades().as_vec();
                tally.fills += trades.len() as u64;
                tally.filled_lots += trades.iter().map(|trade| trade.quantity().as_u64()).sum::<u64>();
            }
            Ok((_, None)) => {}
            Err(_) => tally.errors += 1,
        }
    }

    #[inline]
    fn cancel(&mut self, cancel: &Cancel, tally: &mut Tally) {
        match self.book.cancel_order(Id::Sequential(cancel.id.get())) {
            Ok(Some(_)) => {}
            Ok(None) => tally.cancels_missed += 1,
            Err(_) => tally.errors += 1,
        }
    }

    fn top(&self) -> Top {
        let lots = |side: orderbook_rs::prelude::Side| self.book.total_depth_at_levels(usize::MAX, side).ok();
        Top {
            best_bid_ticks: self.book.best_bid().map(|price| price as u64),
            best_ask_ticks: self.book.best_ask().map(|price| price as u64),
            bid_lots: lots(orderbook_rs::prelude::Side::Buy).expect("depth fits in u64"),
            ask_lots: lots(orderbook_rs::prelude::Side::Sell).expect("depth fits in u64"),
        }
    }
}

//! lobster 0.7 (`lobster::OrderBook`): a `BTreeMap` of price levels per side, each a
//! `Vec` of arena indexes, and a `HashMap` from order id to arena slot. Its one entry
//! point is `execute(OrderType)`, which returns an `OrderEvent` carrying a `Vec` of
//! fills; the adapter calls it once per command and counts those fills.

use bourse_core::book::Side;
use lobster::{OrderBook, OrderEvent, OrderType};

use super::BookUnderTest;
use super::workload::{Cancel, Limit, Tally, Top};

/// Orders a price level's queue has room for before it grows: lobster's default.
const QUEUE_CAPACITY: usize = 10;
/// Levels `depth` pre-sizes its answer for.
const DEPTH_LEVELS: usize = 1024;

#[derive(Debug)]
pub(crate) struct Lobster {
    book: OrderBook,
}

fn side(side: Side) -> lobster::Side {
    match side {
        Side::Buy => lobster::Side::Bid,
        Side::Sell => lobster::Side::Ask,
    }
}

impl BookUnderTest for Lobster {
    /// The arena is pre-sized for every order of the stream (lobster keeps a filled
    /// order's slot, so this is what it needs never to grow); stats tracking is off.
    fn with_capacity(orders: usize) -> Self {
        Self { book: OrderBook::new(orders, QUEUE_CAPACITY, false) }
    }

    #[inline]
    fn limit(&mut self, limit: &Limit, tally: &mut Tally) {
        let order = OrderType::Limit {
            id: u128::from(limit.id.get()),
            side: side(limit.side),
            qty: limit.qty.lots(),
            price: limit.price.ticks(),
        };
        match self.book.execute(order) {
            OrderEvent::Filled { filled_qty, fills, .. } | OrderEvent::PartiallyFilled { filled_qty, fills, .. } => {
                tally.fills += fills.len() as u64;
                tally.filled_lots += filled_qty;
            }
            OrderEvent::Placed { .. } => {}
            OrderEvent::Unfilled { .. } | OrderEvent::Canceled { .. } => tally.errors += 1,
        }
    }

    /// lobster answers every cancel with `Canceled`, found or not, so it cannot
    /// report a miss.
    #[inline]
    fn cancel(&mut self, cancel: &Cancel, tally: &mut Tally) {
        let event = self.book.execute(OrderType::Cancel { id: u128::from(cancel.id.get()) });
        if !matches!(event, OrderEvent::Canceled { .. }) {
            tally.errors += 1;
        }
    }

    fn top(&self) -> Top {
        // `depth` reports every non-empty level whatever it is asked for; the
        // argument only sizes its vectors.
        let depth = self.book.depth(DEPTH_LEVELS);
        Top {
            best_bid_ticks: self.book.max_bid(),
            best_ask_ticks: self.book.min_ask(),
            bid_lots: depth.bids.iter().map(|level| level.qty).sum(),
            ask_lots: depth.asks.iter().map(|level| level.qty).sum(),
        }
    }
}

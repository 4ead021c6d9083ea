//! Price levels of one market: per side, a vector of levels sorted so that the best
//! price is last. Best-price lookup is O(1); finding a level is a binary search over
//! contiguous memory; adding or removing a level near the top of the book (where
//! nearly all activity is) moves only a few entries. Each level is a FIFO of orders
//! linked through the slab, so adding and removing an order is O(1) once the level is
//! found.

use super::slab::{OrderSlab, Slot};
use super::types::{Price, Qty, Side};

/// One price level: the total resting there and its FIFO of orders.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Level {
    price: Price,
    total: Qty,
    count: u32,
    head: Slot,
    tail: Slot,
}

impl Level {
    pub fn price(&self) -> Price {
        self.price
    }
    /// Lots resting at this price.
    pub fn total(&self) -> Qty {
        self.total
    }
    /// Orders resting at this price.
    pub fn count(&self) -> u32 {
        self.count
    }
    /// The oldest order: first to fill.
    pub fn head(&self) -> Slot {
        self.head
    }
    pub(super) fn reduce_total(&mut self, qty: Qty) {
        self.total = self.total.minus(qty);
    }
}

/// One side of a book. Levels are ordered by `key`, which grows towards the best
/// price, so the best level is the last.
#[derive(Clone, Debug)]
pub struct BookSide {
    side: Side,
    pub(super) levels: Vec<Level>,
}

impl BookSide {
    fn new(side: Side) -> Self {
        Self { side, levels: Vec::new() }
    }

    fn key(&self, price: Price) -> u64 {
        match self.side {
            Side::Buy => price.ticks(),
            Side::Sell => u64::MAX - price.ticks(),
        }
    }

    fn position(&self, price: Price) -> Result<usize, usize> {
        let key = self.key(price);
        self.levels.binary_search_by_key(&key, |level| self.key(level.price))
    }

    pub fn side(&self) -> Side {
        self.side
    }

    pub fn best(&self) -> Option<&Level> {
        self.levels.last()
    }

    pub fn level(&self, price: Price) -> Option<&Level> {
        self.position(price).ok().map(|index| &self.levels[index])
    }

    /// Levels from the best outwards.
    pub fn levels(&self) -> impl Iterator<Item = &Level> {
        self.levels.iter().rev()
    }

    pub fn len(&self) -> usize {
        self.levels.len()
    }

    pub fn is_empty(&self) -> bool {
        self.levels.is_empty()
    }

    /// Appends the order in `slot` to the back of its price's FIFO, creating the level
    /// if needed.
    pub fn push_back(&mut self, slab: &mut OrderSlab, slot: Slot) {
        let node = *slab.get(slot);
        debug_assert_eq!(node.side, self.side);
        match self.position(node.price) {
            Ok(index) => {
                let level = &mut self.levels[index];
                slab.get_mut(level.tail).next = Some(slot);
                let order = slab.get_mut(slot);
                order.prev = Some(level.tail);
                order.next = None;
                level.tail = slot;
                level.total = level.total.plus(node.remaining);
                level.count += 1;
            }
            Err(index) => {
                let order = slab.get_mut(slot);
                order.prev = None;
                order.next = None;
                let level = Level { price: node.price, total: node.remaining, count: 1, head: slot, tail: slot };
                self.levels.insert(index, level);
            }
        }
    }

    /// Unlinks the order in `slot` from its level, dropping the level if it empties.
    /// The order stays in the slab.
    pub fn unlink(&mut self, slab: &mut OrderSlab, slot: Slot) {
        let node = *slab.get(slot);
        let index = self.position(node.price).expect("a resting order's level exists");
        let level = &mut self.levels[index];
        match node.prev {
            Some(prev) => slab.get_mut(prev).next = node.next,
            None => level.head = node.next.unwrap_or(level.head),
        }
        match node.next {
            Some(next) => slab.get_mut(next).prev = node.prev,
            None => level.tail = node.prev.unwrap_or(level.tail),
        }
        level.count -= 1;
        level.total = level.total.minus(node.remaining);
        if level.count == 0 {
            self.levels.remove(index);
        }
    }

    /// Takes `qty` off the order in `slot` where it stands (a fill, or an amend down
    /// that keeps priority). The caller removes the order if nothing is left.
    pub fn reduce(&mut self, slab: &mut OrderSlab, slot: Slot, qty: Qty) {
        let order = slab.get_mut(slot);
        order.remaining = order.remaining.minus(qty);
        let price = order.price;
        let index = self.position(price).expect("a resting order's level exists");
        let level = &mut self.levels[index];
        level.total = level.total.minus(qty);
    }

    /// Checks the side against the slab: ordering, FIFO links, totals and counts.
    pub fn check_invariants(&self, slab: &OrderSlab) -> usize {
        let mut orders = 0;
        for pair in self.levels.windows(2) {
            assert!(self.key(pair[0].price) < self.key(pair[1].price), "levels strictly ordered");
        }
        for level in &self.levels {
            let mut total = Qty::ZERO;
            let mut count = 0;
            let mut previous = None;
            let mut cursor = Some(level.head);
            while let Some(slot) = cursor {
                let node = slab.get(slot);
                assert_eq!(node.price, level.price, "order at its level's price");
                assert_eq!(node.side, self.side, "order on its side");
                assert_eq!(node.prev, previous, "FIFO back link");
                total = total.plus(node.remaining);
                count += 1;
                previous = Some(slot);
                cursor = node.next;
            }
            assert_eq!(previous, Some(level.tail), "FIFO tail");
            assert_eq!(total, level.total, "level total equals the sum of its orders");
            assert_eq!(count, level.count, "level count");
            orders += count as usize;
        }
        orders
    }
}

/// Both sides of one market's book.
#[derive(Clone, Debug)]
pub struct Book {
    bids: BookSide,
    asks: BookSide,
}

impl Default for Book {
    fn default() -> Self {
        Self::new()
    }
}

impl Book {
    pub fn new() -> Self {
        Self { bids: BookSide::new(Side::Buy), asks: BookSide::new(Side::Sell) }
    }

    pub fn side(&self, side: Side) -> &BookSide {
        match side {
            Side::Buy => &self.bids,
            Side::Sell => &self.asks,
        }
    }

    pub fn side_mut(&mut self, side: Side) -> &mut BookSide {
        match side {
            Side::Buy => &mut self.bids,
            Side::Sell => &mut self.asks,
        }
    }

    pub fn best_bid(&self) -> Option<&Level> {
        self.bids.best()
    }

    pub fn best_ask(&self) -> Option<&Level> {
        self.asks.best()
    }

    /// Whether the book is crossed (a bid at or above an ask): never true between
    /// commands.
    pub fn is_crossed(&self) -> bool {
        match (self.bids.best(), self.asks.best()) {
            (Some(bid), Some(ask)) => bid.price >= ask.price,
            _ => false,
        }
    }

    /// Checks both sides; returns how many orders rest in the book.
    pub fn check_invariants(&self, slab: &OrderSlab) -> usize {
        assert!(!self.is_crossed(), "book crossed between commands");
        self.bids.check_invariants(slab) + self.asks.check_invariants(slab)
    }
}

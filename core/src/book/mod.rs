//! The order book, on its own: no accounts, no money. The engine's market actors are
//! built on it, and the book-only benchmarks drive the very same code.
//!
//! - `types`: ids, price (ticks), quantity (lots), side, time in force, self-trade
//!   prevention.
//! - `slab`: every resting order in one pre-sized slab, indexed by id, by client id and
//!   by account.
//! - `levels`: per side, price levels sorted best-last, each a FIFO through the slab.
//! - `matching`: price-time priority matching with self-trade prevention, and its
//!   read-only twin `walk`.

mod levels;
mod matching;
mod slab;
mod types;

pub use levels::{Book, BookSide, Level};
pub use matching::{Fills, MatchEnd, Taker, take, walk};
pub use slab::{NewOrder, OrderNode, OrderSlab, Slot};
pub use types::{ClientOrderId, MarketId, OrderId, Price, Qty, SelfTradePrevention, Side, TimeInForce};

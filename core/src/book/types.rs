//! The book's vocabulary: market and order ids, price in ticks, quantity in lots,
//! sides, time in force and self-trade prevention.

use std::fmt;
use std::num::{NonZeroU64, NonZeroU128};

use serde::{Deserialize, Serialize};

crate::ids::id_newtype!(
    /// A market (currency pair): its index in the engine's market table.
    MarketId(u32), index
);
crate::ids::id_newtype!(
    /// An order, assigned by the engine in command order (the first is 1).
    OrderId(u64)
);

/// A client's own id for an order (FIX ClOrdID): up to 16 bytes, never zero, unique
/// among the account's live orders.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ClientOrderId(NonZeroU128);

impl ClientOrderId {
    /// `None` for zero, which is not an id.
    pub const fn new(value: u128) -> Option<Self> {
        match NonZeroU128::new(value) {
            Some(value) => Some(Self(value)),
            None => None,
        }
    }
    /// Packs up to 16 bytes of text (FIX `ClOrdID`, a client's string id); `None` for an
    /// empty or longer text.
    pub fn from_text(text: &str) -> Option<Self> {
        let bytes = text.as_bytes();
        if bytes.is_empty() || bytes.len() > 16 {
            return None;
        }
        let mut packed = [0_u8; 16];
        packed[..bytes.len()].copy_from_slice(bytes);
        Self::new(u128::from_be_bytes(packed))
    }
    /// The text packed by `from_text` (trailing zero bytes dropped), if it is UTF-8.
    pub fn to_text(self) -> Option<String> {
        let bytes = self.0.get().to_be_bytes();
        let end = bytes.iter().rposition(|&b| b != 0).map_or(0, |last| last + 1);
        String::from_utf8(bytes[..end].to_vec()).ok()
    }
    pub const fn get(self) -> u128 {
        self.0.get()
    }
}

/// A price: a whole number of ticks (quote minor units per lot per step), above zero.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "u64", into = "u64")]
pub struct Price(NonZeroU64);

impl TryFrom<u64> for Price {
    type Error = &'static str;
    fn try_from(ticks: u64) -> Result<Self, Self::Error> {
        Price::new(ticks).ok_or("price of zero or above PRICE_TICKS_MAX")
    }
}

impl From<Price> for u64 {
    fn from(price: Price) -> u64 {
        price.ticks()
    }
}

impl Price {
    /// `None` for zero or above `limits::PRICE_TICKS_MAX`.
    pub const fn new(ticks: u64) -> Option<Self> {
        if ticks > crate::limits::PRICE_TICKS_MAX {
            return None;
        }
        match NonZeroU64::new(ticks) {
            Some(ticks) => Some(Self(ticks)),
            None => None,
        }
    }
    pub const fn ticks(self) -> u64 {
        self.0.get()
    }
}

impl fmt::Display for Price {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// A quantity: a whole number of lots (base minor units per lot, per market).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize)]
#[serde(try_from = "u64", into = "u64")]
pub struct Qty(u64);

impl TryFrom<u64> for Qty {
    type Error = &'static str;
    fn try_from(lots: u64) -> Result<Self, Self::Error> {
        Qty::new(lots).ok_or("quantity above QTY_LOTS_MAX")
    }
}

impl From<Qty> for u64 {
    fn from(qty: Qty) -> u64 {
        qty.lots()
    }
}

impl Qty {
    pub const ZERO: Qty = Qty(0);

    /// `None` above `limits::QTY_LOTS_MAX`.
    pub const fn new(lots: u64) -> Option<Self> {
        if lots <= crate::limits::QTY_LOTS_MAX { Some(Self(lots)) } else { None }
    }
    pub const fn lots(self) -> u64 {
        self.0
    }
    pub const fn is_zero(self) -> bool {
        self.0 == 0
    }
    #[must_use]
    pub const fn min(self, other: Qty) -> Qty {
        if self.0 <= other.0 { self } else { other }
    }
    /// `self - other`; the caller knows `other <= self`.
    #[must_use]
    pub fn minus(self, other: Qty) -> Qty {
        Qty(self.0.checked_sub(other.0).expect("quantity never goes negative"))
    }
    /// `self + other`, both bounded by `limits::QTY_LOTS_MAX`, so a level total of
    /// `limits::ORDERS_OPEN_MAX` orders still fits.
    #[must_use]
    pub fn plus(self, other: Qty) -> Qty {
        Qty(self.0.checked_add(other.0).expect("level totals fit in u64"))
    }
}

impl fmt::Display for Qty {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Side {
    Buy,
    Sell,
}

impl Side {
    #[must_use]
    pub const fn opposite(self) -> Side {
        match self {
            Side::Buy => Side::Sell,
            Side::Sell => Side::Buy,
        }
    }

    /// Whether an order on this side at `limit` trades with a resting order at `resting`.
    pub const fn crosses(self, limit: Price, resting: Price) -> bool {
        match self {
            Side::Buy => limit.ticks() >= resting.ticks(),
            Side::Sell => limit.ticks() <= resting.ticks(),
        }
    }
}

/// How long an order may wait for a fill.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum TimeInForce {
    /// Good till cancelled: what does not fill rests on the book.
    Gtc,
    /// Immediate or cancel: fills what it can now, the rest is cancelled.
    Ioc,
    /// Fill or kill: fills entirely now, or not at all.
    Fok,
}

/// What happens when an order would trade with a resting order of the same account.
///
/// The default is `CancelTaker`: the incoming order's remainder is cancelled and the
/// resting order keeps its place (the choice of most venues, and the one that never
/// removes liquidity a client deliberately posted).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub enum SelfTradePrevention {
    #[default]
    CancelTaker,
    /// The resting order is cancelled and matching goes on.
    CancelMaker,
    /// Both the resting order and the incoming remainder are cancelled.
    CancelBoth,
}

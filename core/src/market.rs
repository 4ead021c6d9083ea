//! Markets: one per currency pair. A `MarketSpec` says how a pair trades (lot, tick,
//! order size bounds, fees per KYC tier); a `Market` is the actor: the spec, the book
//! and the market-data sequence number.
//!
//! Units: a quantity is a number of lots (`lot` base minor units each); a price is a
//! number of ticks (`tick` quote minor units per lot each), so the quote amount of
//! `qty` lots at `price` is `price × qty × tick` minor units, exactly.

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::asset::{Asset, AssetTable};
use crate::book::{Book, Price, Qty};
use crate::ids::{AssetId, KycTier};
use crate::limits::{FEE_BPS_MAX, KYC_TIER_MAX, QTY_LOTS_MAX};
use crate::money::Amount;

/// Maker and taker fee of one KYC tier, in basis points of the quote amount. Fees are
/// rounded down: the house never takes more than the schedule says.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub struct FeeRate {
    pub maker_bps: u16,
    pub taker_bps: u16,
}

/// A fee rate per KYC tier; tiers beyond the last listed use the last.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "Vec<FeeRate>", into = "Vec<FeeRate>")]
pub struct FeeSchedule {
    tiers: Vec<FeeRate>,
}

impl FeeSchedule {
    pub fn new(tiers: Vec<FeeRate>) -> Result<Self, MarketError> {
        if tiers.is_empty() || tiers.len() > usize::from(KYC_TIER_MAX) + 1 {
            return Err(MarketError::FeeTiers { count: tiers.len() });
        }
        if let Some(rate) = tiers.iter().find(|rate| rate.maker_bps > FEE_BPS_MAX || rate.taker_bps > FEE_BPS_MAX) {
            return Err(MarketError::FeeTooHigh { bps: rate.maker_bps.max(rate.taker_bps) });
        }
        Ok(Self { tiers })
    }

    /// No fees at all.
    pub fn free() -> Self {
        Self { tiers: vec![FeeRate::default()] }
    }

    pub fn rate(&self, tier: KycTier) -> FeeRate {
        let index = usize::from(tier.get()).min(self.tiers.len() - 1);
        self.tiers[index]
    }

    pub fn tiers(&self) -> &[FeeRate] {
        &self.tiers
    }
}

impl TryFrom<Vec<FeeRate>> for FeeSchedule {
    type Error = MarketError;
    fn try_from(tiers: Vec<FeeRate>) -> Result<Self, Self::Error> {
        Self::new(tiers)
    }
}

impl From<FeeSchedule> for Vec<FeeRate> {
    fn from(schedule: FeeSchedule) -> Self {
        schedule.tiers
    }
}

/// How a pair trades.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct MarketSpec {
    pub base: AssetId,
    pub quote: AssetId,
    /// Base minor units per lot.
    pub lot: u64,
    /// Quote minor units per lot per price step.
    pub tick: u64,
    pub qty_min: Qty,
    pub qty_max: Qty,
    pub fees: FeeSchedule,
}

impl MarketSpec {
    /// Checks the spec against the asset table.
    pub fn validate(&self, assets: &AssetTable) -> Result<(), MarketError> {
        if !assets.contains(self.base) || !assets.contains(self.quote) {
            return Err(MarketError::UnknownAsset);
        }
        if self.base == self.quote {
            return Err(MarketError::SameAsset);
        }
        if self.lot == 0 || self.tick == 0 {
            return Err(MarketError::ZeroUnit);
        }
        if self.qty_min.is_zero() || self.qty_min > self.qty_max || self.qty_max.lots() > QTY_LOTS_MAX {
            return Err(MarketError::QtyBounds { min: self.qty_min.lots(), max: self.qty_max.lots() });
        }
        if self.base_amount(self.qty_max).is_none() {
            return Err(MarketError::QtyBounds { min: self.qty_min.lots(), max: self.qty_max.lots() });
        }
        Ok(())
    }

    /// Base minor units of `qty` lots; `None` past `limits::AMOUNT_MAX`.
    pub fn base_amount(&self, qty: Qty) -> Option<Amount> {
        Amount::new(qty.lots().checked_mul(self.lot)?)
    }

    /// Quote minor units of `qty` lots at `price`; `None` past `limits::AMOUNT_MAX`.
    pub fn quote_amount(&self, price: Price, qty: Qty) -> Option<Amount> {
        // In 64 bits: `tick` is at least 1, so the partial product overflows only if
        // the whole one does.
        Amount::new(price.ticks().checked_mul(qty.lots())?.checked_mul(self.tick)?)
    }

    /// What a buy of `qty` lots at `price` reserves: the quote amount plus the highest
    /// fee it could pay at `bps`.
    pub fn buy_hold(&self, price: Price, qty: Qty, bps: u16) -> Option<Amount> {
        let notional = self.quote_amount(price, qty)?;
        notional.checked_add(fee(notional, bps))
    }
}

/// The fee at `bps` on `notional`, rounded down (in the customer's favour).
pub fn fee(notional: Amount, bps: u16) -> Amount {
    let notional = notional.minor_units();
    // 64-bit when the product fits (nearly always): a 128-bit division is a library
    // call, a 64-bit one by a constant a multiplication.
    let fee = match notional.checked_mul(u64::from(bps)) {
        Some(product) => product / 10_000,
        None => (u128::from(notional) * u128::from(bps) / 10_000) as u64,
    };
    Amount::new(fee).expect("a fee is at most the notional")
}

/// One market actor: how it trades, its book, and its market-data sequence.
#[derive(Clone, Debug)]
pub struct Market {
    pub(crate) spec: MarketSpec,
    pub(crate) book: Book,
    /// Increments with every trade and every level change it publishes, so that a
    /// client rebuilding the book from updates can detect a gap.
    pub(crate) market_seq: u64,
    pub(crate) last_price: Option<Price>,
}

impl Market {
    pub(crate) fn new(spec: MarketSpec) -> Self {
        Self { spec, book: Book::new(), market_seq: 0, last_price: None }
    }
    pub fn spec(&self) -> &MarketSpec {
        &self.spec
    }
    pub fn book(&self) -> &Book {
        &self.book
    }
    pub fn market_seq(&self) -> u64 {
        self.market_seq
    }
    pub fn last_price(&self) -> Option<Price> {
        self.last_price
    }
    pub(crate) fn next_market_seq(&mut self) -> u64 {
        self.market_seq += 1;
        self.market_seq
    }
}

/// Decimal prices and quantities, as clients write them, to and from ticks and lots.
impl MarketSpec {
    /// Parses a client's price (quote units per one whole base unit, e.g. `"65000.5"`
    /// USD per BTC) into ticks; it must fall exactly on the tick grid.
    pub fn parse_price(&self, assets: &AssetTable, text: &str) -> Result<Price, PriceError> {
        let (base, quote) = self.assets(assets);
        let decimal: Decimal = text.trim().parse().map_err(|_| PriceError::NotANumber { text: text.to_owned() })?;
        // ticks = price × (lot / 10^base_scale) × 10^quote_scale / tick
        let numerator = decimal
            .checked_mul(Decimal::from(self.lot))
            .and_then(|value| value.checked_mul(Decimal::from(10_u64.pow(quote.scale()))))
            .ok_or_else(|| PriceError::OutOfRange { text: text.to_owned() })?;
        let denominator = Decimal::from(self.tick) * Decimal::from(10_u64.pow(base.scale()));
        let ticks =
            numerator.checked_div(denominator).ok_or_else(|| PriceError::OutOfRange { text: text.to_owned() })?;
        if ticks.fract() != Decimal::ZERO {
            return Err(PriceError::OffTick { text: text.to_owned(), increment: self.price_increment(assets) });
        }
        let ticks = u64::try_from(ticks).map_err(|_| PriceError::OutOfRange { text: text.to_owned() })?;
        Price::new(ticks).ok_or_else(|| PriceError::OutOfRange { text: text.to_owned() })
    }

    /// The price of `ticks` in quote units per whole base unit.
    pub fn price_to_decimal(&self, assets: &AssetTable, price: Price) -> Decimal {
        let (base, quote) = self.assets(assets);
        let numerator =
            Decimal::from(price.ticks()) * Decimal::from(self.tick) * Decimal::from(10_u64.pow(base.scale()));
        let denominator = Decimal::from(self.lot) * Decimal::from(10_u64.pow(quote.scale()));
        (numerator / denominator).normalize()
    }

    /// The smallest price step, in quote units per whole base unit.
    pub fn price_increment(&self, assets: &AssetTable) -> Decimal {
        self.price_to_decimal(assets, Price::new(1).expect("one tick is a price"))
    }

    /// Parses a client's quantity in base units (e.g. `"0.5"` BTC) into lots; it must
    /// be a whole number of lots.
    pub fn parse_qty(&self, assets: &AssetTable, text: &str) -> Result<Qty, PriceError> {
        let (base, _) = self.assets(assets);
        let amount = base.parse_amount(text).map_err(|error| PriceError::Quantity(error.to_string()))?;
        if amount.minor_units() % self.lot != 0 {
            let lot = base.format_amount(Amount::new(self.lot).unwrap_or(Amount::ZERO));
            return Err(PriceError::OffLot { text: text.to_owned(), lot });
        }
        Qty::new(amount.minor_units() / self.lot).ok_or_else(|| PriceError::OutOfRange { text: text.to_owned() })
    }

    /// A quantity in base units, as a decimal.
    pub fn qty_to_decimal(&self, assets: &AssetTable, qty: Qty) -> Decimal {
        let (base, _) = self.assets(assets);
        let minor = i128::from(qty.lots()) * i128::from(self.lot);
        Decimal::from_i128_with_scale(minor, base.scale()).normalize()
    }

    fn assets<'a>(&self, assets: &'a AssetTable) -> (&'a Asset, &'a Asset) {
        let base = assets.get(self.base).expect("market assets validated on add");
        let quote = assets.get(self.quote).expect("market assets validated on add");
        (base, quote)
    }
}

/// What is wrong with a market declaration.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum MarketError {
    #[error("market names an asset that is not configured")]
    UnknownAsset,
    #[error("market's base and quote are the same asset")]
    SameAsset,
    #[error("market's lot and tick must be at least 1 minor unit")]
    ZeroUnit,
    #[error("market's order size bounds {min}..={max} lots are not valid")]
    QtyBounds { min: u64, max: u64 },
    #[error("market fee schedule must list 1 to {} tiers, got {count}", KYC_TIER_MAX as usize + 1)]
    FeeTiers { count: usize },
    #[error("market fee of {bps} bps is above the maximum of {FEE_BPS_MAX}")]
    FeeTooHigh { bps: u16 },
    #[error("market {base}/{quote} is declared twice")]
    Duplicate { base: String, quote: String },
}

/// What is wrong with a price or quantity a client wrote.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum PriceError {
    #[error("price {text:?} is not a decimal number")]
    NotANumber { text: String },
    #[error("{text:?} is not on the price grid: the increment is {increment}")]
    OffTick { text: String, increment: Decimal },
    #[error("{text:?} is out of range")]
    OutOfRange { text: String },
    #[error("quantity {text:?} is not a whole number of lots of {lot}")]
    OffLot { text: String, lot: String },
    #[error("{0}")]
    Quantity(String),
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::asset::AssetCode;

    fn world() -> (AssetTable, MarketSpec) {
        let assets = AssetTable::new(vec![
            Asset::new(AssetCode::new("BTC").unwrap(), 8).unwrap(),
            Asset::new(AssetCode::new("USD").unwrap(), 2).unwrap(),
        ])
        .unwrap();
        // A lot is 0.0001 BTC; a tick is 1 cent per lot, so 100 USD per BTC.
        let spec = MarketSpec {
            base: AssetId::new(0),
            quote: AssetId::new(1),
            lot: 10_000,
            tick: 1,
            qty_min: Qty::new(1).unwrap(),
            qty_max: Qty::new(1_000_000).unwrap(),
            fees: FeeSchedule::free(),
        };
        spec.validate(&assets).unwrap();
        (assets, spec)
    }

    #[test]
    fn prices_and_quantities_convert_on_the_grid() {
        let (assets, market) = world();
        assert_eq!(market.price_increment(&assets).to_string(), "100");
        assert_eq!(market.parse_price(&assets, "65000").unwrap().ticks(), 650);
        assert_eq!(market.price_to_decimal(&assets, Price::new(650).unwrap()).to_string(), "65000");
        assert!(matches!(market.parse_price(&assets, "65050"), Err(PriceError::OffTick { .. })));
        assert!(matches!(market.parse_price(&assets, "0"), Err(PriceError::OutOfRange { .. })));
        assert!(matches!(market.parse_price(&assets, "-100"), Err(PriceError::OutOfRange { .. })));
        assert!(matches!(market.parse_price(&assets, "x"), Err(PriceError::NotANumber { .. })));
        assert_eq!(market.parse_qty(&assets, "0.5").unwrap().lots(), 5_000);
        assert!(matches!(market.parse_qty(&assets, "0.00005"), Err(PriceError::OffLot { .. })));
        assert_eq!(market.qty_to_decimal(&assets, Qty::new(5_000).unwrap()).to_string(), "0.5");
        // 0.5 BTC at 65000 USD = 32500 USD.
        let notional = market.quote_amount(Price::new(650).unwrap(), Qty::new(5_000).unwrap()).unwrap();
        assert_eq!(notional.minor_units(), 3_250_000);
    }

    /// The quote amount is the exact product, and `None` exactly when that is past
    /// `AMOUNT_MAX`, whichever factor is large (it is computed in 64 bits).
    #[test]
    fn quote_amounts_are_exact_up_to_the_amount_bound() {
        let (_, market) = world();
        let (price_max, lots_max) = (crate::limits::PRICE_TICKS_MAX, QTY_LOTS_MAX);
        let prices = [1, 2, 650, (1 << 15) + 1, 1 << 32, price_max - 1, price_max];
        let lots = [0, 1, 3, 5_000, (1 << 15) - 1, 1 << 33, lots_max];
        for tick in [1, 2, 100, (1 << 16) + 3, 1 << 40, u64::MAX / 2, u64::MAX] {
            let spec = MarketSpec { tick, ..market.clone() };
            for (&price, &lots) in prices.iter().flat_map(|price| lots.iter().map(move |lots| (price, lots))) {
                let product = (u128::from(price) * u128::from(lots)).checked_mul(u128::from(tick));
                let exact = product.and_then(|product| u64::try_from(product).ok()).and_then(Amount::new);
                let computed = spec.quote_amount(Price::new(price).unwrap(), Qty::new(lots).unwrap());
                assert_eq!(computed, exact, "{price} ticks × {lots} lots × {tick}");
            }
        }
    }

    #[test]
    fn fees_round_down_and_holds_cover_them() {
        assert_eq!(fee(Amount::new(9_999).unwrap(), 10).minor_units(), 9);
        assert_eq!(fee(Amount::new(10_000).unwrap(), 10).minor_units(), 10);
        let (_, market) = world();
        let hold = market.buy_hold(Price::new(650).unwrap(), Qty::new(3).unwrap(), 25).unwrap();
        assert_eq!(hold.minor_units(), 1950 + 4);
    }

    #[test]
    fn specs_and_fee_schedules_are_validated() {
        let (assets, market) = world();
        let mut spec = market.clone();
        spec.quote = spec.base;
        assert_eq!(spec.validate(&assets), Err(MarketError::SameAsset));
        let mut spec = market.clone();
        spec.lot = 0;
        assert_eq!(spec.validate(&assets), Err(MarketError::ZeroUnit));
        let mut spec = market.clone();
        spec.qty_min = Qty::ZERO;
        assert!(matches!(spec.validate(&assets), Err(MarketError::QtyBounds { .. })));
        assert!(FeeSchedule::new(vec![]).is_err());
        assert!(FeeSchedule::new(vec![FeeRate { maker_bps: 0, taker_bps: FEE_BPS_MAX + 1 }]).is_err());
        let schedule =
            FeeSchedule::new(vec![FeeRate { maker_bps: 10, taker_bps: 20 }, FeeRate { maker_bps: 5, taker_bps: 10 }])
                .unwrap();
        assert_eq!(schedule.rate(KycTier::new(7).unwrap()).taker_bps, 10);
    }
}

//! Routes of cross-border payments: the markets a payment converts through, in order,
//! from the currency the payer sends to the one the payee receives. A route has one to
//! `limits::ROUTE_HOPS_MAX` legs and is stored inline (no allocation), so that events
//! and quotes carrying it stay `Copy` and small.
//!
//! Each leg is a taker trade of the payer on one market: where the leg's input is the
//! market's quote currency the payer buys the base, where it is the base the payer
//! sells it (`Route::sides`).

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::asset::AssetTable;
use crate::book::{MarketId, Side};
use crate::ids::AssetId;
use crate::limits::ROUTE_HOPS_MAX;
use crate::market::MarketSpec;
use crate::money::Amount;

/// One to `ROUTE_HOPS_MAX` markets, in the order the payment crosses them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "RawRoute", into = "RawRoute")]
pub struct Route {
    hops: u8,
    /// Unused slots are market 0, so that equal routes compare equal.
    markets: [MarketId; ROUTE_HOPS_MAX],
}

/// A route's wire shape, checked on the way in.
#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
struct RawRoute {
    hops: u8,
    markets: [MarketId; ROUTE_HOPS_MAX],
}

impl TryFrom<RawRoute> for Route {
    type Error = &'static str;
    fn try_from(raw: RawRoute) -> Result<Self, Self::Error> {
        let route = Route::new(raw.markets.get(..usize::from(raw.hops)).ok_or("route of more than ROUTE_HOPS_MAX")?)
            .ok_or("route of no market")?;
        if route.markets != raw.markets {
            return Err("route with markets past its hops");
        }
        Ok(route)
    }
}

impl From<Route> for RawRoute {
    fn from(route: Route) -> Self {
        RawRoute { hops: route.hops, markets: route.markets }
    }
}

impl Route {
    /// `None` for no market or more than `ROUTE_HOPS_MAX`.
    pub fn new(markets: &[MarketId]) -> Option<Self> {
        if markets.is_empty() || markets.len() > ROUTE_HOPS_MAX {
            return None;
        }
        let mut slots = [MarketId::new(0); ROUTE_HOPS_MAX];
        slots[..markets.len()].copy_from_slice(markets);
        Some(Self { hops: markets.len() as u8, markets: slots })
    }

    /// The markets, first leg first.
    pub fn markets(&self) -> &[MarketId] {
        &self.markets[..usize::from(self.hops)]
    }

    /// Legs (markets) in the route.
    pub fn hops(&self) -> usize {
        usize::from(self.hops)
    }

    /// Walks the route from `from` through `markets` (looked up by id): each leg's
    /// side and the asset it ends in. `None` if a market is unknown or does not trade
    /// the asset the previous leg ended in.
    pub fn legs<'a>(
        &self,
        from: AssetId,
        spec: impl Fn(MarketId) -> Option<&'a MarketSpec>,
    ) -> Option<[(Side, AssetId); ROUTE_HOPS_MAX]> {
        let mut legs = [(Side::Buy, from); ROUTE_HOPS_MAX];
        let mut asset = from;
        for (index, &market) in self.markets().iter().enumerate() {
            let spec = spec(market)?;
            let (side, next) = leg_side(spec, asset)?;
            legs[index] = (side, next);
            asset = next;
        }
        Some(legs)
    }
}

/// The payer's side on a market it enters holding `input`, and what it leaves with:
/// it buys the base with the quote currency, or sells the base for it.
pub fn leg_side(spec: &MarketSpec, input: AssetId) -> Option<(Side, AssetId)> {
    if input == spec.quote {
        Some((Side::Buy, spec.base))
    } else if input == spec.base {
        Some((Side::Sell, spec.quote))
    } else {
        None
    }
}

/// Significant digits a displayed rate keeps: more than any market's prices carry,
/// few enough that 1/3 does not print 28 threes.
pub const RATE_SIGNIFICANT_DIGITS: u32 = 12;

/// The all-in rate of a conversion: whole units of `to` received per whole unit of
/// `from` sent (fees and rounding included), for display, rounded half-even to
/// [`RATE_SIGNIFICANT_DIGITS`]. `None` for a zero send or an unknown asset. Decimals
/// stay at the edge: the engine never uses this.
pub fn rate(assets: &AssetTable, from: AssetId, send: Amount, to: AssetId, receive: Amount) -> Option<Decimal> {
    let (from, to) = (assets.get(from)?, assets.get(to)?);
    if send.is_zero() {
        return None;
    }
    let send = Decimal::from_i128_with_scale(i128::from(send.minor_units()), from.scale());
    let receive = Decimal::from_i128_with_scale(i128::from(receive.minor_units()), to.scale());
    let rate = receive.checked_div(send)?;
    let rounded = rate.round_sf(RATE_SIGNIFICANT_DIGITS).unwrap_or(rate);
    Some(rounded.normalize())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::asset::{Asset, AssetCode};

    #[test]
    fn routes_are_bounded_and_compare_by_their_markets() {
        let one = MarketId::new(1);
        let two = MarketId::new(2);
        assert!(Route::new(&[]).is_none());
        assert!(Route::new(&[one; ROUTE_HOPS_MAX + 1]).is_none());
        let route = Route::new(&[one, two]).unwrap();
        assert_eq!(route.markets(), &[one, two]);
        assert_eq!(route.hops(), 2);
        assert_eq!(route, Route::new(&[one, two]).unwrap());
        assert_ne!(route, Route::new(&[two, one]).unwrap());
        let raw = RawRoute { hops: 1, markets: [one, two, MarketId::new(0)] };
        assert!(Route::try_from(raw).is_err(), "a market past the hops is refused");
        let raw = RawRoute { hops: 4, markets: [one; ROUTE_HOPS_MAX] };
        assert!(Route::try_from(raw).is_err());
    }

    #[test]
    fn rates_are_in_whole_units() {
        let assets = AssetTable::new(vec![
            Asset::new(AssetCode::new("EUR").unwrap(), 2).unwrap(),
            Asset::new(AssetCode::new("JPY").unwrap(), 0).unwrap(),
        ])
        .unwrap();
        let (eur, jpy) = (AssetId::new(0), AssetId::new(1));
        // 1,000.00 EUR → 162,345 JPY: 162.345 JPY per EUR.
        let rate = rate(&assets, eur, Amount::new(100_000).unwrap(), jpy, Amount::new(162_345).unwrap()).unwrap();
        assert_eq!(rate.to_string(), "162.345");
        // 1,800.00 EUR → 300,000 JPY: 166.666… kept to twelve significant digits.
        let rate =
            super::rate(&assets, eur, Amount::new(180_000).unwrap(), jpy, Amount::new(300_000).unwrap()).unwrap();
        assert_eq!(rate.to_string(), "166.666666667");
        let tiny = super::rate(&assets, jpy, Amount::new(3).unwrap(), eur, Amount::new(1).unwrap()).unwrap();
        assert_eq!(tiny.to_string(), "0.00333333333333", "small rates keep their digits");
        assert!(super::rate(&assets, eur, Amount::ZERO, jpy, Amount::ZERO).is_none());
    }
}

//! The markets and assets the load trades, as the server describes them (`markets`),
//! and the arithmetic the reconciliation model needs: price ticks and lots from the
//! decimals in replies, notional and fees in quote minor units (fees rounded down, as
//! the engine charges them).

use anyhow::{Context, bail};
use serde_json::{Value, json};

use crate::crossborder::{Pair, resolve_pairs};
use crate::dec::{Dec, format_units};
use crate::ws::BlockingWs;

/// The markets the mix trades, with the mid price orders are placed around. Passive
/// orders rest 1 to `PASSIVE_TICKS` ticks from the mid on their side; immediate orders
/// cross to `PASSIVE_TICKS` ticks beyond it, so they take what rests there.
pub(crate) const MARKETS: &[(&str, &str)] =
    &[("BTC-USD", "65000"), ("EUR-USD", "1.0850"), ("GBP-USD", "1.2700"), ("USD-JPY", "150.00")];
/// How far from the mid passive orders rest, in ticks (and immediate orders reach).
pub(crate) const PASSIVE_TICKS: i64 = 10;
/// Orders are 1 to this many times the market's minimum quantity.
pub(crate) const ORDER_LOTS_MAX: i64 = 4;

/// What every account of the load (trading and merchant) is funded with, per asset,
/// in whole units.
pub(crate) const FUNDING: &[(&str, &str)] =
    &[("USD", "10000000"), ("EUR", "10000000"), ("GBP", "10000000"), ("JPY", "1000000000"), ("BTC", "1000")];
/// The asset payments move.
pub(crate) const PAYMENT_ASSET: &str = "USD";

#[derive(Clone, Debug)]
pub(crate) struct Asset {
    pub(crate) code: String,
    pub(crate) scale: u32,
}

#[derive(Clone, Debug)]
pub(crate) struct Market {
    pub(crate) symbol: String,
    pub(crate) base: usize,
    pub(crate) quote: usize,
    price_increment: Dec,
    lot: Dec,
    /// Base minor units per lot.
    pub(crate) lot_minor: i128,
    /// Quote minor units per lot per price tick: notional = ticks × lots × this.
    pub(crate) tick_minor: i128,
    /// Lots in the smallest and the largest order.
    pub(crate) qty_min_lots: i64,
    pub(crate) qty_max_lots: i64,
    pub(crate) mid_ticks: i64,
    /// (maker, taker) basis points for KYC tier 0, the tier of every load account.
    pub(crate) fee_bps: (u32, u32),
}

/// The assets, the traded markets, and the cross-border pairs paid through them.
#[derive(Clone, Debug)]
pub(crate) struct Catalog {
    pub(crate) assets: Vec<Asset>,
    pub(crate) markets: Vec<Market>,
    pub(crate) pairs: Vec<Pair>,
}

impl Catalog {
    /// Asks the server (`markets`) and keeps the markets of [`MARKETS`].
    pub(crate) fn load(admin: &mut BlockingWs) -> anyhow::Result<Catalog> {
        let reply = admin.call_ok(json!({"op": "markets"}))?;
        Catalog::from_reply(&reply["result"])
    }

    pub(crate) fn from_reply(result: &Value) -> anyhow::Result<Catalog> {
        let mut assets = Vec::new();
        for asset in result["assets"].as_array().context("markets: no assets")? {
            let code = asset["asset"].as_str().context("an asset without a code")?.to_owned();
            let scale = asset["scale"].as_u64().and_then(|scale| u32::try_from(scale).ok()).context("asset scale")?;
            assets.push(Asset { code, scale });
        }
        let listed = result["markets"].as_array().context("markets: no markets")?;
        let mut markets = Vec::new();
        for (symbol, mid) in MARKETS {
            let Some(market) = listed.iter().find(|market| market["market"] == *symbol) else {
                bail!("the server has no market {symbol} (the load trades {MARKETS:?})");
            };
            markets.push(Market::from_listing(market, &assets, mid).with_context(|| format!("market {symbol}"))?);
        }
        let mut catalog = Catalog { assets, markets, pairs: Vec::new() };
        catalog.pairs = resolve_pairs(&catalog).map_err(anyhow::Error::msg)?;
        Ok(catalog)
    }

    pub(crate) fn asset(&self, code: &str) -> Option<usize> {
        self.assets.iter().position(|asset| asset.code == code)
    }

    pub(crate) fn market(&self, symbol: &str) -> Option<usize> {
        self.markets.iter().position(|market| market.symbol == symbol)
    }

    /// An amount in an asset's minor units, from its decimal string.
    pub(crate) fn minor(&self, asset: usize, text: &str) -> Option<i128> {
        Dec::parse(text)?.to_scale(self.assets[asset].scale)
    }

    pub(crate) fn format_minor(&self, asset: usize, minor: i128) -> String {
        format_units(minor, self.assets[asset].scale)
    }
}

fn decimal(value: &Value, name: &str) -> anyhow::Result<Dec> {
    value[name].as_str().and_then(Dec::parse).with_context(|| format!("{name} is not a decimal string"))
}

impl Market {
    fn from_listing(listing: &Value, assets: &[Asset], mid: &str) -> anyhow::Result<Market> {
        let find = |name: &str| {
            let code = listing[name].as_str().unwrap_or_default();
            assets.iter().position(|asset| asset.code == code).with_context(|| format!("unknown {name} asset {code}"))
        };
        let (base, quote) = (find("base")?, find("quote")?);
        let price_increment = decimal(listing, "price_increment")?;
        let lot = decimal(listing, "lot")?;
        let lot_minor = lot.to_scale(assets[base].scale).context("the lot is not whole base minor units")?;
        let tick_minor = price_increment
            .mul(lot)
            .and_then(|tick| tick.to_scale(assets[quote].scale))
            .context("a tick is not whole quote minor units")?;
        let qty_min_lots = decimal(listing, "qty_min")?.div_exact(lot).context("qty_min is not whole lots")?;
        let qty_max_lots = decimal(listing, "qty_max")?.div_exact(lot).context("qty_max is not whole lots")?;
        let mid_ticks = Dec::parse(mid).and_then(|mid| mid.div_exact(price_increment)).context("the mid price")?;
        let tier0 = &listing["fees_by_kyc_tier"][0];
        let bps = |name: &str| tier0[name].as_u64().and_then(|bps| u32::try_from(bps).ok());
        let fee_bps = (bps("maker_bps").unwrap_or(0), bps("taker_bps").unwrap_or(0));
        if mid_ticks <= i128::from(PASSIVE_TICKS) {
            bail!("the mid price is too close to zero for orders {PASSIVE_TICKS} ticks below it");
        }
        Ok(Market {
            symbol: listing["market"].as_str().unwrap_or_default().to_owned(),
            base,
            quote,
            price_increment,
            lot,
            lot_minor,
            tick_minor,
            qty_min_lots: i64::try_from(qty_min_lots).context("qty_min")?,
            qty_max_lots: i64::try_from(qty_max_lots).context("qty_max")?,
            mid_ticks: i64::try_from(mid_ticks).context("the mid price")?,
            fee_bps,
        })
    }

    /// The price string of `ticks`.
    pub(crate) fn price_text(&self, ticks: i64) -> String {
        let scale = self.price_increment.scale();
        let units = self.price_increment.to_scale(scale).unwrap_or(1) * i128::from(ticks);
        format_units(units, scale)
    }

    /// The quantity string of `lots`.
    pub(crate) fn qty_text(&self, lots: i64) -> String {
        let scale = self.lot.scale();
        let units = self.lot.to_scale(scale).unwrap_or(1) * i128::from(lots);
        format_units(units, scale)
    }

    pub(crate) fn ticks(&self, price: &str) -> Option<i64> {
        Dec::parse(price)?.div_exact(self.price_increment).and_then(|ticks| i64::try_from(ticks).ok())
    }

    pub(crate) fn lots(&self, qty: &str) -> Option<i64> {
        Dec::parse(qty)?.div_exact(self.lot).and_then(|lots| i64::try_from(lots).ok())
    }

    /// Quote minor units of `lots` at `ticks`.
    pub(crate) fn notional(&self, ticks: i64, lots: i64) -> i128 {
        i128::from(ticks) * i128::from(lots) * self.tick_minor
    }

    /// The fee on `notional` at `bps`, rounded down (as `bourse_core::market::fee`).
    pub(crate) fn fee(notional: i128, bps: u32) -> i128 {
        notional * i128::from(bps) / 10_000
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listing() -> Value {
        json!({
            "markets": [
                {"market": "BTC-USD", "base": "BTC", "quote": "USD", "price_increment": "1", "lot": "0.01", "qty_min": "0.01", "qty_max": "10000", "fees_by_kyc_tier": [{"maker_bps": 10, "taker_bps": 20}]},
                {"market": "EUR-USD", "base": "EUR", "quote": "USD", "price_increment": "0.0001", "lot": "100", "qty_min": "100", "qty_max": "100000000", "fees_by_kyc_tier": [{"maker_bps": 1, "taker_bps": 2}]},
                {"market": "GBP-USD", "base": "GBP", "quote": "USD", "price_increment": "0.0001", "lot": "100", "qty_min": "100", "qty_max": "100000000", "fees_by_kyc_tier": [{"maker_bps": 1, "taker_bps": 2}]},
                {"market": "USD-JPY", "base": "USD", "quote": "JPY", "price_increment": "0.01", "lot": "100", "qty_min": "100", "qty_max": "100000000", "fees_by_kyc_tier": [{"maker_bps": 1, "taker_bps": 2}]}
            ],
            "assets": [{"asset": "USD", "scale": 2}, {"asset": "EUR", "scale": 2}, {"asset": "GBP", "scale": 2}, {"asset": "JPY", "scale": 0}, {"asset": "BTC", "scale": 8}]
        })
    }

    #[test]
    fn the_grid_and_fees_follow_the_listing() {
        let catalog = Catalog::from_reply(&listing()).unwrap();
        let btc = &catalog.markets[0];
        assert_eq!((btc.lot_minor, btc.tick_minor, btc.mid_ticks, btc.qty_min_lots), (1_000_000, 1, 65_000, 1));
        assert_eq!(btc.price_text(64_990), "64990");
        assert_eq!(btc.qty_text(3), "0.03");
        assert_eq!((btc.ticks("65000"), btc.lots("0.2")), (Some(65_000), Some(20)));
        // 0.2 BTC at 65000 = 13000.00 USD; taker fee 20 bps = 26.00 (README walkthrough).
        assert_eq!(btc.notional(65_000, 20), 1_300_000);
        assert_eq!(Market::fee(1_300_000, btc.fee_bps.1), 2_600);
        let eur = &catalog.markets[1];
        assert_eq!((eur.price_text(10_850), eur.qty_text(2), eur.tick_minor), ("1.0850".into(), "200".into(), 1));
        let jpy = &catalog.markets[3];
        assert_eq!((jpy.price_text(15_000), jpy.notional(15_000, 1)), ("150.00".into(), 15_000));
        assert_eq!(Market::fee(9_999, 10), 9, "fees round down");
    }
}

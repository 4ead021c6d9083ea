//! Engine configuration from TOML, validated on load. The core reads no files: the
//! caller hands over the text (and names the file in its own error).
//!
//! ```toml
//! [[assets]]
//! code = "USD"
//! scale = 2
//!
//! [[markets]]
//! base = "BTC"         # what is bought and sold
//! quote = "USD"        # what it is priced in
//! lot = 10000          # base minor units per lot (0.0001 BTC)
//! tick = 1             # quote minor units per lot per price step
//! qty_min = 1          # lots
//! qty_max = 1000000    # lots
//! fees = [{ maker_bps = 10, taker_bps = 20 }, { maker_bps = 5, taker_bps = 10 }]  # by KYC tier
//! ```

use serde::Deserialize;
use thiserror::Error;

use crate::asset::{Asset, AssetCode, AssetError, AssetTable};
use crate::book::Qty;
use crate::limits::MARKETS_MAX;
use crate::market::{FeeRate, FeeSchedule, MarketError, MarketSpec};

/// A validated configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    assets: AssetTable,
    markets: Vec<MarketSpec>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    assets: Vec<RawAsset>,
    #[serde(default)]
    markets: Vec<RawMarket>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMarket {
    base: String,
    quote: String,
    lot: u64,
    tick: u64,
    qty_min: u64,
    qty_max: u64,
    #[serde(default)]
    fees: Vec<RawFee>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFee {
    maker_bps: u16,
    taker_bps: u16,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAsset {
    code: String,
    scale: u32,
}

impl Config {
    /// A configuration of `assets` and `markets`, validated.
    pub fn new(assets: AssetTable, markets: Vec<MarketSpec>) -> Result<Self, ConfigError> {
        for (index, spec) in markets.iter().enumerate() {
            spec.validate(&assets)?;
            if markets[..index].iter().any(|earlier| earlier.base == spec.base && earlier.quote == spec.quote) {
                let code = |id| assets.get(id).map_or_else(String::new, |asset| asset.code().to_string());
                return Err(MarketError::Duplicate { base: code(spec.base), quote: code(spec.quote) }.into());
            }
        }
        if markets.len() > MARKETS_MAX {
            return Err(ConfigError::TooManyMarkets { count: markets.len() });
        }
        Ok(Self { assets, markets })
    }

    /// Parses and validates a TOML configuration.
    pub fn from_toml_str(text: &str) -> Result<Self, ConfigError> {
        let raw: RawConfig = toml::from_str(text).map_err(|error| ConfigError::Syntax(error.message().to_owned()))?;
        if raw.assets.is_empty() {
            return Err(ConfigError::NoAssets);
        }
        let assets = raw
            .assets
            .into_iter()
            .map(|raw| Asset::new(AssetCode::new(&raw.code)?, raw.scale))
            .collect::<Result<Vec<_>, _>>()?;
        let assets = AssetTable::new(assets)?;
        let markets = raw.markets.into_iter().map(|raw| raw.resolve(&assets)).collect::<Result<Vec<_>, _>>()?;
        Self::new(assets, markets)
    }

    pub fn markets(&self) -> &[MarketSpec] {
        &self.markets
    }

    pub fn assets(&self) -> &AssetTable {
        &self.assets
    }
}

impl RawMarket {
    fn resolve(self, assets: &AssetTable) -> Result<MarketSpec, ConfigError> {
        let find = |code: &str| {
            assets.find(code).map(|(id, _)| id).ok_or_else(|| ConfigError::UnknownAsset { code: code.to_owned() })
        };
        let bounds = MarketError::QtyBounds { min: self.qty_min, max: self.qty_max };
        let fees = if self.fees.is_empty() {
            FeeSchedule::free()
        } else {
            FeeSchedule::new(
                self.fees.iter().map(|fee| FeeRate { maker_bps: fee.maker_bps, taker_bps: fee.taker_bps }).collect(),
            )?
        };
        Ok(MarketSpec {
            base: find(&self.base)?,
            quote: find(&self.quote)?,
            lot: self.lot,
            tick: self.tick,
            qty_min: Qty::new(self.qty_min).ok_or_else(|| bounds.clone())?,
            qty_max: Qty::new(self.qty_max).ok_or(bounds)?,
            fees,
        })
    }
}

/// What is wrong with a configuration.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum ConfigError {
    #[error("configuration is not valid TOML for Bourse: {0}")]
    Syntax(String),
    #[error("configuration declares no assets")]
    NoAssets,
    #[error(transparent)]
    Asset(#[from] AssetError),
    #[error(transparent)]
    Market(#[from] MarketError),
    #[error("market names asset {code}, which is not declared")]
    UnknownAsset { code: String },
    #[error("{count} markets declared; at most {MARKETS_MAX} are allowed")]
    TooManyMarkets { count: usize },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loads_assets_in_order() {
        let config =
            Config::from_toml_str("[[assets]]\ncode = \"USD\"\nscale = 2\n[[assets]]\ncode = \"JPY\"\nscale = 0\n")
                .unwrap();
        assert_eq!(config.assets().len(), 2);
        let (id, jpy) = config.assets().find("JPY").unwrap();
        assert_eq!((id.get(), jpy.scale()), (1, 0));
    }

    #[test]
    fn rejects_bad_configurations_with_a_reason() {
        let cases = [
            ("assets = []", ConfigError::NoAssets),
            ("[[assets]]\ncode = \"usd\"\nscale = 2", ConfigError::Asset(AssetError::BadCode { code: "usd".into() })),
            (
                "[[assets]]\ncode = \"USD\"\nscale = 40",
                ConfigError::Asset(AssetError::BadScale { code: "USD".into(), scale: 40 }),
            ),
            (
                "[[assets]]\ncode = \"USD\"\nscale = 2\n[[assets]]\ncode = \"USD\"\nscale = 2",
                ConfigError::Asset(AssetError::Duplicate { code: "USD".into() }),
            ),
        ];
        for (text, expected) in cases {
            assert_eq!(Config::from_toml_str(text), Err(expected), "{text}");
        }
        let unknown = Config::from_toml_str("[[assets]]\ncode = \"USD\"\nscale = 2\ncolour = 1");
        assert!(matches!(unknown, Err(ConfigError::Syntax(message)) if message.contains("colour")));
        assert!(matches!(Config::from_toml_str("assets = "), Err(ConfigError::Syntax(_))));
    }
}

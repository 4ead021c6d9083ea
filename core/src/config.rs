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
//!
//! [crossborder]        # optional; these are the defaults
//! max_hops = 2         # markets a route may chain when a command does not say (1..=3)
//! quote_ttl_ms = 30000 # how long a quote stays executable when a command does not say
//! ```

use serde::Deserialize;
use thiserror::Error;

use crate::asset::{Asset, AssetCode, AssetError, AssetTable};
use crate::book::Qty;
use crate::ids::Timestamp;
use crate::limits::{MARKETS_MAX, NANOS_PER_SECOND, QUOTE_TTL_MAX, ROUTE_HOPS_MAX};
use crate::market::{FeeRate, FeeSchedule, MarketError, MarketSpec};

/// A validated configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    assets: AssetTable,
    markets: Vec<MarketSpec>,
    crossborder: CrossBorderConfig,
}

/// Defaults of cross-border commands that leave them out. They become engine state (a
/// snapshot keeps them), so a restarted engine decides as the one that stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CrossBorderConfig {
    /// Markets a route may chain (`1..=limits::ROUTE_HOPS_MAX`).
    pub max_hops: u8,
    /// How long a quote stays executable (at most `limits::QUOTE_TTL_MAX`).
    pub quote_ttl: Timestamp,
}

impl Default for CrossBorderConfig {
    fn default() -> Self {
        Self { max_hops: 2, quote_ttl: Timestamp::from_nanos(30 * NANOS_PER_SECOND) }
    }
}

impl CrossBorderConfig {
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.max_hops == 0 || usize::from(self.max_hops) > ROUTE_HOPS_MAX {
            return Err(ConfigError::MaxHops { hops: self.max_hops });
        }
        if self.quote_ttl.as_nanos() == 0 || self.quote_ttl > QUOTE_TTL_MAX {
            return Err(ConfigError::QuoteTtl { ms: self.quote_ttl.as_nanos() / 1_000_000 });
        }
        Ok(())
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    assets: Vec<RawAsset>,
    #[serde(default)]
    markets: Vec<RawMarket>,
    #[serde(default)]
    crossborder: RawCrossBorder,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawCrossBorder {
    max_hops: Option<u8>,
    quote_ttl_ms: Option<u64>,
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
        Ok(Self { assets, markets, crossborder: CrossBorderConfig::default() })
    }

    /// The same configuration with other cross-border defaults.
    pub fn with_crossborder(mut self, crossborder: CrossBorderConfig) -> Result<Self, ConfigError> {
        crossborder.validate()?;
        self.crossborder = crossborder;
        Ok(self)
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
        let defaults = CrossBorderConfig::default();
        let quote_ttl = match raw.crossborder.quote_ttl_ms {
            Some(ms) => Timestamp::from_nanos(ms.checked_mul(1_000_000).ok_or(ConfigError::QuoteTtl { ms })?),
            None => defaults.quote_ttl,
        };
        let crossborder =
            CrossBorderConfig { max_hops: raw.crossborder.max_hops.unwrap_or(defaults.max_hops), quote_ttl };
        Self::new(assets, markets)?.with_crossborder(crossborder)
    }

    pub fn markets(&self) -> &[MarketSpec] {
        &self.markets
    }

    pub fn assets(&self) -> &AssetTable {
        &self.assets
    }

    pub fn crossborder(&self) -> CrossBorderConfig {
        self.crossborder
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
    #[error("crossborder.max_hops = {hops}: a route chains 1 to {ROUTE_HOPS_MAX} markets")]
    MaxHops { hops: u8 },
    #[error("crossborder.quote_ttl_ms = {ms}: a quote lives 1 ms to {} ms", QUOTE_TTL_MAX.as_nanos() / 1_000_000)]
    QuoteTtl { ms: u64 },
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

    #[test]
    fn crossborder_defaults_and_bounds() {
        let usd = "[[assets]]\ncode = \"USD\"\nscale = 2\n";
        let config = Config::from_toml_str(usd).unwrap();
        assert_eq!(config.crossborder(), CrossBorderConfig::default());
        let config =
            Config::from_toml_str(&format!("{usd}[crossborder]\nmax_hops = 3\nquote_ttl_ms = 5000\n")).unwrap();
        assert_eq!(config.crossborder().max_hops, 3);
        assert_eq!(config.crossborder().quote_ttl, Timestamp::from_nanos(5 * NANOS_PER_SECOND));
        let cases = [
            ("max_hops = 0", ConfigError::MaxHops { hops: 0 }),
            ("max_hops = 4", ConfigError::MaxHops { hops: 4 }),
            ("quote_ttl_ms = 0", ConfigError::QuoteTtl { ms: 0 }),
            ("quote_ttl_ms = 300001", ConfigError::QuoteTtl { ms: 300_001 }),
        ];
        for (line, expected) in cases {
            assert_eq!(Config::from_toml_str(&format!("{usd}[crossborder]\n{line}\n")), Err(expected), "{line}");
        }
        let unknown = Config::from_toml_str(&format!("{usd}[crossborder]\nhops = 2\n"));
        assert!(matches!(unknown, Err(ConfigError::Syntax(message)) if message.contains("hops")));
    }
}

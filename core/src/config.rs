//! Engine configuration from TOML, validated on load. The core reads no files: the
//! caller hands over the text (and names the file in its own error).
//!
//! ```toml
//! [[assets]]
//! code = "USD"
//! scale = 2
//! ```

use serde::Deserialize;
use thiserror::Error;

use crate::asset::{Asset, AssetCode, AssetError, AssetTable};

/// A validated configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    assets: AssetTable,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    assets: Vec<RawAsset>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAsset {
    code: String,
    scale: u32,
}

impl Config {
    pub fn new(assets: AssetTable) -> Self {
        Self { assets }
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
        Ok(Self { assets: AssetTable::new(assets)? })
    }

    pub fn assets(&self) -> &AssetTable {
        &self.assets
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

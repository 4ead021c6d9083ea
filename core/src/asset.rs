//! Assets and the decimal edge: an asset has a code and a scale (USD 2, JPY 0, BTC 8),
//! and converts between what clients write (`"12.50"`) and minor units (`1250`).

use std::fmt;

use rust_decimal::Decimal;
use thiserror::Error;

use crate::ids::AssetId;
use crate::limits::{AMOUNT_MAX, ASSET_CODE_BYTES_MAX, ASSET_SCALE_MAX, ASSETS_MAX};
use crate::money::Amount;

/// An asset's ticker: 2 to `limits::ASSET_CODE_BYTES_MAX` ASCII upper-case letters or
/// digits, starting with a letter.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct AssetCode {
    len: u8,
    bytes: [u8; ASSET_CODE_BYTES_MAX],
}

impl AssetCode {
    pub fn new(code: &str) -> Result<Self, AssetError> {
        let source = code.as_bytes();
        let shape_ok = (2..=ASSET_CODE_BYTES_MAX).contains(&source.len())
            && source[0].is_ascii_uppercase()
            && source.iter().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit());
        if !shape_ok {
            return Err(AssetError::BadCode { code: code.to_owned() });
        }
        let mut bytes = [0; ASSET_CODE_BYTES_MAX];
        bytes[..source.len()].copy_from_slice(source);
        Ok(Self { len: source.len() as u8, bytes })
    }

    pub fn as_str(&self) -> &str {
        // Only ASCII bytes are ever stored.
        std::str::from_utf8(&self.bytes[..usize::from(self.len)]).unwrap_or_default()
    }
}

impl fmt::Debug for AssetCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Display for AssetCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One asset: its code and how many decimal places its minor unit has.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Asset {
    code: AssetCode,
    scale: u32,
}

impl Asset {
    pub fn new(code: AssetCode, scale: u32) -> Result<Self, AssetError> {
        if scale > ASSET_SCALE_MAX {
            return Err(AssetError::BadScale { code: code.to_string(), scale });
        }
        Ok(Self { code, scale })
    }

    pub fn code(&self) -> AssetCode {
        self.code
    }

    pub fn scale(&self) -> u32 {
        self.scale
    }

    /// Parses a client's decimal string into minor units of this asset. Rejects
    /// negatives, more decimals than the scale, and anything above `limits::AMOUNT_MAX`.
    pub fn parse_amount(&self, text: &str) -> Result<Amount, AmountError> {
        let decimal: Decimal = text.trim().parse().map_err(|_| AmountError::NotANumber { text: text.to_owned() })?;
        self.amount_from_decimal(decimal, text)
    }

    /// Converts a decimal into minor units of this asset, with the same rules as
    /// `parse_amount`; `text` is what the error quotes.
    pub fn amount_from_decimal(&self, decimal: Decimal, text: &str) -> Result<Amount, AmountError> {
        if decimal.is_sign_negative() && !decimal.is_zero() {
            return Err(AmountError::Negative { text: text.to_owned() });
        }
        let normalized = decimal.normalize();
        if normalized.scale() > self.scale {
            return Err(AmountError::TooManyDecimals {
                text: text.to_owned(),
                asset: self.code.to_string(),
                scale: self.scale,
            });
        }
        let too_large = || AmountError::TooLarge { text: text.to_owned(), asset: self.code.to_string() };
        let factor = 10_i128.pow(self.scale - normalized.scale());
        let minor = normalized.mantissa().checked_mul(factor).ok_or_else(too_large)?;
        let minor = u64::try_from(minor).map_err(|_| too_large())?;
        if minor > AMOUNT_MAX {
            return Err(too_large());
        }
        Amount::new(minor).ok_or_else(too_large)
    }

    /// Formats minor units of this asset as a decimal string with exactly `scale`
    /// places: 1250 USD is `"12.50"`, 5 JPY is `"5"`.
    pub fn format_amount(&self, amount: Amount) -> String {
        self.amount_to_decimal(amount).to_string()
    }

    pub fn amount_to_decimal(&self, amount: Amount) -> Decimal {
        Decimal::from_i128_with_scale(i128::from(amount.minor_units()), self.scale)
    }
}

/// The assets an engine knows, indexed by `AssetId`.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct AssetTable {
    assets: Vec<Asset>,
}

impl AssetTable {
    /// Fails on a repeated code or more than `limits::ASSETS_MAX` assets.
    pub fn new(assets: Vec<Asset>) -> Result<Self, AssetError> {
        if assets.len() > ASSETS_MAX {
            return Err(AssetError::TooMany { count: assets.len() });
        }
        for (index, asset) in assets.iter().enumerate() {
            if assets[..index].iter().any(|earlier| earlier.code == asset.code) {
                return Err(AssetError::Duplicate { code: asset.code.to_string() });
            }
        }
        Ok(Self { assets })
    }

    pub fn len(&self) -> usize {
        self.assets.len()
    }

    pub fn is_empty(&self) -> bool {
        self.assets.is_empty()
    }

    pub fn get(&self, id: AssetId) -> Option<&Asset> {
        self.assets.get(id.index())
    }

    pub fn contains(&self, id: AssetId) -> bool {
        id.index() < self.assets.len()
    }

    /// The asset with this code, e.g. `"USD"`.
    pub fn find(&self, code: &str) -> Option<(AssetId, &Asset)> {
        self.assets
            .iter()
            .enumerate()
            .find(|(_, asset)| asset.code.as_str() == code)
            .map(|(index, asset)| (AssetId::new(index as u16), asset))
    }

    pub fn iter(&self) -> impl Iterator<Item = (AssetId, &Asset)> {
        self.assets.iter().enumerate().map(|(index, asset)| (AssetId::new(index as u16), asset))
    }
}

/// What is wrong with an asset declaration.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum AssetError {
    #[error(
        "asset code {code:?} must be 2 to {ASSET_CODE_BYTES_MAX} upper-case ASCII letters or digits, starting with a letter"
    )]
    BadCode { code: String },
    #[error("asset {code}: scale {scale} is above the maximum of {ASSET_SCALE_MAX}")]
    BadScale { code: String, scale: u32 },
    #[error("asset {code} is declared twice")]
    Duplicate { code: String },
    #[error("{count} assets declared; at most {ASSETS_MAX} are allowed")]
    TooMany { count: usize },
}

/// What is wrong with an amount a client wrote.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum AmountError {
    #[error("amount {text:?} is not a decimal number")]
    NotANumber { text: String },
    #[error("amount {text:?} is negative")]
    Negative { text: String },
    #[error("amount {text:?} has more decimal places than {asset} allows ({scale})")]
    TooManyDecimals { text: String, asset: String, scale: u32 },
    #[error("amount {text:?} is too large for {asset}")]
    TooLarge { text: String, asset: String },
}

#[cfg(test)]
mod tests {
    use super::*;

    fn asset(code: &str, scale: u32) -> Asset {
        Asset::new(AssetCode::new(code).unwrap(), scale).unwrap()
    }

    #[test]
    fn parses_and_formats_at_the_asset_scale() {
        let usd = asset("USD", 2);
        assert_eq!(usd.parse_amount("12.50").unwrap().minor_units(), 1250);
        assert_eq!(usd.parse_amount("12.5").unwrap().minor_units(), 1250);
        assert_eq!(usd.parse_amount("12.500").unwrap().minor_units(), 1250);
        assert_eq!(usd.parse_amount("7").unwrap().minor_units(), 700);
        assert_eq!(usd.parse_amount("0").unwrap(), Amount::ZERO);
        assert_eq!(usd.format_amount(Amount::new(1250).unwrap()), "12.50");
        assert_eq!(usd.format_amount(Amount::new(5).unwrap()), "0.05");
        let jpy = asset("JPY", 0);
        assert_eq!(jpy.parse_amount("150000").unwrap().minor_units(), 150_000);
        assert_eq!(jpy.format_amount(Amount::new(5).unwrap()), "5");
        let btc = asset("BTC", 8);
        assert_eq!(btc.parse_amount("0.00000001").unwrap().minor_units(), 1);
        assert_eq!(btc.format_amount(Amount::new(123_456_789).unwrap()), "1.23456789");
    }

    #[test]
    fn rejects_bad_amounts_with_a_named_reason() {
        let usd = asset("USD", 2);
        assert!(matches!(usd.parse_amount("1.234"), Err(AmountError::TooManyDecimals { .. })));
        assert!(matches!(usd.parse_amount("-1"), Err(AmountError::Negative { .. })));
        assert!(matches!(usd.parse_amount("abc"), Err(AmountError::NotANumber { .. })));
        assert!(matches!(usd.parse_amount(""), Err(AmountError::NotANumber { .. })));
        assert!(matches!(usd.parse_amount("92233720368547758.08"), Err(AmountError::TooLarge { .. })));
        assert_eq!(usd.parse_amount("92233720368547758.07").unwrap(), Amount::MAX);
        let message = usd.parse_amount("1.234").unwrap_err().to_string();
        assert!(message.contains("USD") && message.contains("1.234"), "{message}");
        let btc = asset("BTC", 18);
        assert!(matches!(btc.parse_amount("100"), Err(AmountError::TooLarge { .. })));
    }

    #[test]
    fn asset_codes_and_tables_are_validated() {
        assert!(AssetCode::new("usd").is_err());
        assert!(AssetCode::new("U").is_err());
        assert!(AssetCode::new("1USD").is_err());
        assert!(AssetCode::new("USDT").is_ok());
        assert!(Asset::new(AssetCode::new("XXX").unwrap(), ASSET_SCALE_MAX + 1).is_err());
        let duplicate = AssetTable::new(vec![asset("USD", 2), asset("USD", 2)]);
        assert_eq!(duplicate, Err(AssetError::Duplicate { code: "USD".into() }));
        let table = AssetTable::new(vec![asset("USD", 2), asset("JPY", 0)]).unwrap();
        assert_eq!(table.find("JPY").unwrap().0, AssetId::new(1));
        assert!(table.find("EUR").is_none());
    }
}

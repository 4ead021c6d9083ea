//! Decimal strings at the edge: the API's amounts, prices and quantities (`"12.50"`)
//! as exact integers of `10^-scale` units. No floating point touches money here
//! either: the reconciliation model counts minor units in `i128`.

/// A decimal: `units × 10^-scale` ("12.50" is 1250 at scale 2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Dec {
    units: i128,
    scale: u32,
}

/// Digits after the point a decimal may have (beyond, parsing fails).
const SCALE_MAX: u32 = 30;

impl Dec {
    /// Parses `-?digits(.digits)?`; `None` for anything else.
    pub(crate) fn parse(text: &str) -> Option<Dec> {
        let (negative, digits) = match text.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, text),
        };
        let (whole, fraction) = digits.split_once('.').unwrap_or((digits, ""));
        if whole.is_empty() && fraction.is_empty() {
            return None;
        }
        let scale = u32::try_from(fraction.len()).ok().filter(|scale| *scale <= SCALE_MAX)?;
        let mut units: i128 = 0;
        for byte in whole.bytes().chain(fraction.bytes()) {
            if !byte.is_ascii_digit() {
                return None;
            }
            units = units.checked_mul(10)?.checked_add(i128::from(byte - b'0'))?;
        }
        Some(Dec { units: if negative { -units } else { units }, scale })
    }

    /// The value in units of `10^-scale`, when exact (`None` if digits would be lost
    /// or it overflows).
    pub(crate) fn to_scale(self, scale: u32) -> Option<i128> {
        if scale >= self.scale {
            self.units.checked_mul(10_i128.checked_pow(scale - self.scale)?)
        } else {
            let divisor = 10_i128.checked_pow(self.scale - scale)?;
            (self.units % divisor == 0).then_some(self.units / divisor)
        }
    }

    /// The exact product.
    pub(crate) fn mul(self, other: Dec) -> Option<Dec> {
        Some(Dec { units: self.units.checked_mul(other.units)?, scale: self.scale.checked_add(other.scale)? })
    }

    /// How many whole `step`s make this value, when it is an exact multiple.
    pub(crate) fn div_exact(self, step: Dec) -> Option<i128> {
        let scale = self.scale.max(step.scale);
        let (value, step) = (self.to_scale(scale)?, step.to_scale(scale)?);
        (step != 0 && value % step == 0).then(|| value / step)
    }

    pub(crate) fn scale(self) -> u32 {
        self.scale
    }
}

/// `units` at `scale` as a decimal string with exactly `scale` digits after the point.
pub(crate) fn format_units(units: i128, scale: u32) -> String {
    let sign = if units < 0 { "-" } else { "" };
    let magnitude = units.unsigned_abs();
    if scale == 0 {
        return format!("{sign}{magnitude}");
    }
    let divisor = 10_u128.pow(scale);
    format!("{sign}{}.{:0width$}", magnitude / divisor, magnitude % divisor, width = scale as usize)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimals_parse_scale_and_format_exactly() {
        let price = Dec::parse("65000").unwrap();
        let qty = Dec::parse("0.03").unwrap();
        assert_eq!(price.mul(qty).unwrap().to_scale(2), Some(195_000));
        assert_eq!(Dec::parse("12.505").unwrap().to_scale(2), None, "digits would be lost");
        assert_eq!(Dec::parse("1.0850").unwrap().div_exact(Dec::parse("0.0001").unwrap()), Some(10_850));
        assert_eq!(Dec::parse("0.5").unwrap().div_exact(Dec::parse("0.2").unwrap()), None);
        for bad in ["", ".", "1.2.3", "1e5", "abc", "--1"] {
            assert_eq!(Dec::parse(bad), None, "{bad:?}");
        }
        assert_eq!(format_units(1250, 2), "12.50");
        assert_eq!(format_units(-5, 3), "-0.005");
        assert_eq!(format_units(7, 0), "7");
    }
}

//! Money as integers: `Amount` counts minor units of one asset (cents of USD,
//! satoshis of BTC). Arithmetic is checked and never wraps; decimals appear only at
//! the edge, in `Asset::parse_amount` and `Asset::format_amount`.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::limits::AMOUNT_MAX;

/// A non-negative count of minor units, at most `limits::AMOUNT_MAX`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize)]
#[serde(try_from = "u64", into = "u64")]
pub struct Amount(u64);

impl TryFrom<u64> for Amount {
    type Error = &'static str;
    fn try_from(minor_units: u64) -> Result<Self, Self::Error> {
        Amount::new(minor_units).ok_or("amount above AMOUNT_MAX")
    }
}

impl From<Amount> for u64 {
    fn from(amount: Amount) -> u64 {
        amount.0
    }
}

impl Amount {
    pub const ZERO: Amount = Amount(0);
    pub const MAX: Amount = Amount(AMOUNT_MAX);

    /// `None` above `limits::AMOUNT_MAX`.
    pub const fn new(minor_units: u64) -> Option<Self> {
        if minor_units <= AMOUNT_MAX { Some(Self(minor_units)) } else { None }
    }

    pub const fn minor_units(self) -> u64 {
        self.0
    }

    pub const fn is_zero(self) -> bool {
        self.0 == 0
    }

    /// `None` when the sum passes `limits::AMOUNT_MAX`.
    #[must_use]
    pub const fn checked_add(self, other: Amount) -> Option<Amount> {
        match self.0.checked_add(other.0) {
            Some(sum) => Amount::new(sum),
            None => None,
        }
    }

    /// `None` when `other` is larger than `self`.
    #[must_use]
    pub const fn checked_sub(self, other: Amount) -> Option<Amount> {
        match self.0.checked_sub(other.0) {
            Some(difference) => Some(Amount(difference)),
            None => None,
        }
    }

    /// `self - other`, or zero when `other` is larger.
    #[must_use]
    pub const fn saturating_sub(self, other: Amount) -> Amount {
        Amount(self.0.saturating_sub(other.0))
    }
}

impl fmt::Display for Amount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arithmetic_is_checked_at_both_ends() {
        let one = Amount::new(1).unwrap();
        assert_eq!(Amount::MAX.checked_add(one), None);
        assert_eq!(Amount::ZERO.checked_sub(one), None);
        assert_eq!(one.checked_sub(one), Some(Amount::ZERO));
        assert_eq!(Amount::new(AMOUNT_MAX + 1), None);
        assert_eq!(Amount::ZERO.saturating_sub(one), Amount::ZERO);
    }
}

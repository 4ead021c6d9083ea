//! Identifiers and instants as newtypes: an `AccountId` is never confused with an
//! `AssetId`, a sequence number or a count.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Declares an identifier newtype: `new`, `get`, `Display`, and (with `index`) a
/// dense table index.
macro_rules! id_newtype {
    ($(#[$doc:meta])* $name:ident($raw:ty)) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
        pub struct $name($raw);

        impl $name {
            pub const fn new(value: $raw) -> Self {
                Self(value)
            }
            pub const fn get(self) -> $raw {
                self.0
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                write!(f, "{}", self.0)
            }
        }
    };
    ($(#[$doc:meta])* $name:ident($raw:ty), index) => {
        $crate::ids::id_newtype!($(#[$doc])* $name($raw));

        impl $name {
            pub(crate) const fn index(self) -> usize {
                self.0 as usize
            }
        }
    };
}
pub(crate) use id_newtype;

id_newtype!(
    /// An account: a dense index assigned by the engine when the account opens.
    AccountId(u32), index
);
id_newtype!(
    /// An asset: its index in the configuration's asset table.
    AssetId(u16), index
);
id_newtype!(
    /// A payment record (transfer, split leg, authorization), assigned in command order.
    PaymentId(u64)
);
id_newtype!(
    /// A cross-border quote, assigned in command order (the first is 1).
    QuoteId(u64)
);
id_newtype!(
    /// The external customer (person or merchant) who owns an account.
    OwnerId(u64)
);
id_newtype!(
    /// A client-chosen key (a UUID, say) that makes a money-moving command idempotent
    /// within the account that issues it.
    IdempotencyKey(u128)
);
id_newtype!(
    /// A command's position in the journal. Strictly increasing, never reused.
    Seq(u64)
);
id_newtype!(
    /// A payment held for an operator's review, assigned in command order from 1.
    HoldId(u64)
);
id_newtype!(
    /// A published rule set: 1, 2, … in publish order. `RuleVersion::NONE` (0) names
    /// "no rule set" (a rollback to it lifts every rule).
    RuleVersion(u32)
);

impl RuleVersion {
    pub const NONE: RuleVersion = RuleVersion(0);
}

/// Command time: nanoseconds since the Unix epoch, stamped by the sequencer. The
/// engine never reads a clock; every deadline is compared with this.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize)]
pub struct Timestamp(u64);

impl Timestamp {
    pub const fn from_nanos(nanos: u64) -> Self {
        Self(nanos)
    }
    pub const fn as_nanos(self) -> u64 {
        self.0
    }
    /// `self + duration`, saturating at the end of time rather than wrapping.
    #[must_use]
    pub const fn saturating_add(self, duration: Timestamp) -> Self {
        Self(self.0.saturating_add(duration.0))
    }
}

/// A know-your-customer tier: `0..=limits::KYC_TIER_MAX`; higher tiers get higher limits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "u8", into = "u8")]
pub struct KycTier(u8);

impl TryFrom<u8> for KycTier {
    type Error = &'static str;
    fn try_from(tier: u8) -> Result<Self, Self::Error> {
        KycTier::new(tier).ok_or("KYC tier above KYC_TIER_MAX")
    }
}

impl From<KycTier> for u8 {
    fn from(tier: KycTier) -> u8 {
        tier.0
    }
}

impl KycTier {
    /// `None` when the tier is above `limits::KYC_TIER_MAX`.
    pub const fn new(tier: u8) -> Option<Self> {
        if tier <= crate::limits::KYC_TIER_MAX { Some(Self(tier)) } else { None }
    }
    pub const fn get(self) -> u8 {
        self.0
    }
}

/// An external reference (a bank transfer id, say) of at most
/// `limits::REFERENCE_BYTES_MAX` bytes of UTF-8, stored inline so that commands and
/// events carrying it never allocate.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Reference {
    len: u8,
    bytes: [u8; crate::limits::REFERENCE_BYTES_MAX],
}

impl Reference {
    /// `None` when `text` is longer than `limits::REFERENCE_BYTES_MAX` bytes.
    pub fn new(text: &str) -> Option<Self> {
        let source = text.as_bytes();
        if source.len() > crate::limits::REFERENCE_BYTES_MAX {
            return None;
        }
        let mut bytes = [0; crate::limits::REFERENCE_BYTES_MAX];
        bytes[..source.len()].copy_from_slice(source);
        Some(Self { len: source.len() as u8, bytes })
    }

    pub fn as_str(&self) -> &str {
        // Built only from a `&str` cut at its full length, so always valid UTF-8.
        std::str::from_utf8(&self.bytes[..usize::from(self.len)]).unwrap_or_default()
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }
}

impl TryFrom<String> for Reference {
    type Error = &'static str;
    fn try_from(text: String) -> Result<Self, Self::Error> {
        Reference::new(&text).ok_or("reference longer than REFERENCE_BYTES_MAX")
    }
}

impl From<Reference> for String {
    fn from(reference: Reference) -> String {
        reference.as_str().to_owned()
    }
}

impl fmt::Debug for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Reference({:?})", self.as_str())
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reference_keeps_text_and_refuses_overlong() {
        let reference = Reference::new("SEPA-2026-000123").unwrap();
        assert_eq!(reference.as_str(), "SEPA-2026-000123");
        assert!(Reference::new(&"x".repeat(crate::limits::REFERENCE_BYTES_MAX)).is_some());
        assert!(Reference::new(&"x".repeat(crate::limits::REFERENCE_BYTES_MAX + 1)).is_none());
    }

    #[test]
    fn kyc_tier_is_bounded() {
        assert_eq!(KycTier::new(0).unwrap().get(), 0);
        assert!(KycTier::new(crate::limits::KYC_TIER_MAX).is_some());
        assert!(KycTier::new(crate::limits::KYC_TIER_MAX + 1).is_none());
    }
}

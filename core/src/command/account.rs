//! Account lifecycle commands: open, freeze, unfreeze, change KYC tier. Operator
//! commands; none moves money, so none carries an idempotency key.

use crate::ids::{AccountId, KycTier, OwnerId};
use serde::{Deserialize, Serialize};

/// Opens an account for `owner`; the engine assigns the next `AccountId`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpenAccount {
    pub owner: OwnerId,
    pub kyc_tier: KycTier,
}

/// Stops every movement of money into or out of an account (releases of its own
/// holds still happen).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FreezeAccount {
    pub account: AccountId,
}

/// Lifts a freeze.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnfreezeAccount {
    pub account: AccountId,
}

/// Moves an account to another KYC tier.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SetKycTier {
    pub account: AccountId,
    pub kyc_tier: KycTier,
}

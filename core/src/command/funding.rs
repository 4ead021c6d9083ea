//! Money entering and leaving the system: deposits and withdrawals, each against an
//! external reference (the bank transfer, card settlement or chain transaction).

use super::{CommandKind, Fingerprint, Keyed, require_positive};
use crate::event::RejectReason;
use crate::ids::{AccountId, AssetId, IdempotencyKey, Reference};
use crate::money::Amount;
use serde::{Deserialize, Serialize};

/// Credits `amount` of `asset` to `account` from outside.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Deposit {
    pub account: AccountId,
    pub key: IdempotencyKey,
    pub asset: AssetId,
    pub amount: Amount,
    pub reference: Reference,
}

/// Debits `amount` of `asset` from `account`'s available balance to outside.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Withdraw {
    pub account: AccountId,
    pub key: IdempotencyKey,
    pub asset: AssetId,
    pub amount: Amount,
    pub reference: Reference,
}

impl Deposit {
    pub fn check(&self) -> Result<(), RejectReason> {
        require_positive(self.amount)
    }
}

impl Withdraw {
    pub fn check(&self) -> Result<(), RejectReason> {
        require_positive(self.amount)
    }
}

fn funding_fingerprint(
    kind: CommandKind,
    account: AccountId,
    asset: AssetId,
    amount: Amount,
    reference: &Reference,
) -> u64 {
    let mut fingerprint = Fingerprint::new(kind);
    fingerprint.u32(account.get()).u32(u32::from(asset.get())).u64(amount.minor_units()).bytes(reference.as_bytes());
    fingerprint.finish()
}

impl Keyed for Deposit {
    fn principal(&self) -> AccountId {
        self.account
    }
    fn key(&self) -> IdempotencyKey {
        self.key
    }
    fn fingerprint(&self) -> u64 {
        funding_fingerprint(CommandKind::Deposit, self.account, self.asset, self.amount, &self.reference)
    }
}

impl Keyed for Withdraw {
    fn principal(&self) -> AccountId {
        self.account
    }
    fn key(&self) -> IdempotencyKey {
        self.key
    }
    fn fingerprint(&self) -> u64 {
        funding_fingerprint(CommandKind::Withdraw, self.account, self.asset, self.amount, &self.reference)
    }
}

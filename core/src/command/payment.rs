//! Payments between accounts: transfer; two-phase authorize → capture (partial or
//! full) or void; split payment to several payees at once; refund of what was paid.
//! Each carries an idempotency key scoped to the account it acts for (`by`).

use super::{CommandKind, Fingerprint, Keyed, require_positive};
use crate::event::RejectReason;
use crate::ids::{AccountId, AssetId, IdempotencyKey, PaymentId, Timestamp};
use crate::limits::SPLIT_LEGS_MAX;
use crate::money::Amount;
use serde::{Deserialize, Serialize};

/// Moves `amount` of `asset` from `by`'s available balance to `to`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Transfer {
    pub by: AccountId,
    pub key: IdempotencyKey,
    pub to: AccountId,
    pub asset: AssetId,
    pub amount: Amount,
}

/// Holds `amount` of `asset` in `by`'s account for `payee`, until captured, voided or
/// `expires_at` (command time) passes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Authorize {
    pub by: AccountId,
    pub key: IdempotencyKey,
    pub payee: AccountId,
    pub asset: AssetId,
    pub amount: Amount,
    pub expires_at: Timestamp,
}

/// The payee (`by`) takes `amount` of an open authorization. With `last`, whatever
/// remains of the hold is released to the payer; otherwise it stays open for further
/// captures until it is fully captured, voided or expires.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Capture {
    pub by: AccountId,
    pub key: IdempotencyKey,
    pub payment: PaymentId,
    pub asset: AssetId,
    pub amount: Amount,
    pub last: bool,
}

/// Payer or payee (`by`) cancels an open authorization; its hold is released.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Void {
    pub by: AccountId,
    pub key: IdempotencyKey,
    pub payment: PaymentId,
}

/// One payee of a split payment.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SplitLeg {
    pub payee: AccountId,
    pub amount: Amount,
}

/// `by` pays several payees in one asset: every leg or none.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SplitPayment {
    pub by: AccountId,
    pub key: IdempotencyKey,
    pub asset: AssetId,
    pub legs: Vec<SplitLeg>,
}

/// The payee (`by`) of a payment sends back `amount` of what it received; the total
/// refunded never exceeds what was paid (captured, for an authorization).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Refund {
    pub by: AccountId,
    pub key: IdempotencyKey,
    pub payment: PaymentId,
    pub asset: AssetId,
    pub amount: Amount,
}

impl Transfer {
    pub fn check(&self) -> Result<(), RejectReason> {
        require_positive(self.amount)?;
        if self.by == self.to { Err(RejectReason::SameAccount) } else { Ok(()) }
    }
}

impl Authorize {
    pub fn check(&self) -> Result<(), RejectReason> {
        require_positive(self.amount)?;
        if self.by == self.payee { Err(RejectReason::SameAccount) } else { Ok(()) }
    }
}

impl Capture {
    pub fn check(&self) -> Result<(), RejectReason> {
        require_positive(self.amount)
    }
}

impl Void {
    #[allow(clippy::unnecessary_wraps, clippy::unused_self)] // Same shape as its siblings.
    pub fn check(&self) -> Result<(), RejectReason> {
        Ok(())
    }
}

impl SplitPayment {
    pub fn check(&self) -> Result<(), RejectReason> {
        if self.legs.is_empty() || self.legs.len() > SPLIT_LEGS_MAX {
            return Err(RejectReason::TooManyLegs);
        }
        for (index, leg) in self.legs.iter().enumerate() {
            require_positive(leg.amount)?;
            if leg.payee == self.by {
                return Err(RejectReason::SameAccount);
            }
            if self.legs[..index].iter().any(|earlier| earlier.payee == leg.payee) {
                return Err(RejectReason::DuplicatePayee);
            }
        }
        Ok(())
    }
}

impl Refund {
    pub fn check(&self) -> Result<(), RejectReason> {
        require_positive(self.amount)
    }
}

macro_rules! keyed {
    ($type:ty, |$command:ident, $fingerprint:ident| $body:block) => {
        impl Keyed for $type {
            fn principal(&self) -> AccountId {
                self.by
            }
            fn key(&self) -> IdempotencyKey {
                self.key
            }
            fn fingerprint(&self) -> u64 {
                let $command = self;
                let mut $fingerprint = Fingerprint::new(kind_of::<$type>());
                $fingerprint.u32($command.by.get());
                $body
                $fingerprint.finish()
            }
        }
    };
}

trait Kind {
    const KIND: CommandKind;
}
impl Kind for Transfer {
    const KIND: CommandKind = CommandKind::Transfer;
}
impl Kind for Authorize {
    const KIND: CommandKind = CommandKind::Authorize;
}
impl Kind for Capture {
    const KIND: CommandKind = CommandKind::Capture;
}
impl Kind for Void {
    const KIND: CommandKind = CommandKind::Void;
}
impl Kind for SplitPayment {
    const KIND: CommandKind = CommandKind::SplitPayment;
}
impl Kind for Refund {
    const KIND: CommandKind = CommandKind::Refund;
}
const fn kind_of<T: Kind>() -> CommandKind {
    T::KIND
}

keyed!(Transfer, |command, fingerprint| {
    fingerprint.u32(command.to.get()).u32(u32::from(command.asset.get())).u64(command.amount.minor_units());
});
keyed!(Authorize, |command, fingerprint| {
    fingerprint
        .u32(command.payee.get())
        .u32(u32::from(command.asset.get()))
        .u64(command.amount.minor_units())
        .u64(command.expires_at.as_nanos());
});
keyed!(Capture, |command, fingerprint| {
    fingerprint
        .u64(command.payment.get())
        .u32(u32::from(command.asset.get()))
        .u64(command.amount.minor_units())
        .u64(u64::from(command.last));
});
keyed!(Void, |command, fingerprint| {
    fingerprint.u64(command.payment.get());
});
keyed!(SplitPayment, |command, fingerprint| {
    fingerprint.u32(u32::from(command.asset.get())).u32(command.legs.len() as u32);
    for leg in &command.legs {
        fingerprint.u32(leg.payee.get()).u64(leg.amount.minor_units());
    }
});
keyed!(Refund, |command, fingerprint| {
    fingerprint.u64(command.payment.get()).u32(u32::from(command.asset.get())).u64(command.amount.minor_units());
});

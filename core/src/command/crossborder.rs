//! Cross-border payments: the payer sends one currency and the payee receives another,
//! converted along a route of up to `limits::ROUTE_HOPS_MAX` markets within the one
//! command (all legs or none).
//!
//! - `QuotePayment` prices a payment from the live books and keeps the quote until it
//!   expires; not keyed (it moves no money), but journaled like every command.
//! - `ExecuteQuote` moves exactly the quoted amounts along the quoted route, or nothing.
//! - `PayCrossBorder` routes and pays in one command, under a rate protection limit.
//!
//! `ExecuteQuote` and `PayCrossBorder` carry an idempotency key, and pass the risk
//! rules, like payments (on what the payer sends); above the review threshold they are
//! held for review (`engine::review`) and their key remembers `HeldForReview`.

use serde::{Deserialize, Serialize};

use super::{CommandKind, Fingerprint, Keyed, require_positive};
use crate::event::RejectReason;
use crate::ids::{AccountId, AssetId, IdempotencyKey, QuoteId, Timestamp};
use crate::limits::{QUOTE_TTL_MAX, ROUTE_HOPS_MAX};
use crate::money::Amount;

/// Which side of a cross-border payment the amount fixes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum CrossBorderAmount {
    /// The payer sends at most this much of `from` ("send 1,000 EUR"). What is sent is
    /// what the route can convert: lots are whole, so it may be a little less, and
    /// what is not sent stays with the payer.
    Send(Amount),
    /// The payee receives exactly this much of `to` ("X must receive 150,000 JPY").
    Receive(Amount),
}

impl CrossBorderAmount {
    pub fn amount(self) -> Amount {
        match self {
            CrossBorderAmount::Send(amount) | CrossBorderAmount::Receive(amount) => amount,
        }
    }

    /// As (mode, minor units), mode 0 send and 1 receive: the one encoding that
    /// fingerprints, the state hash and snapshot rows share.
    pub fn code(self) -> (u8, u64) {
        match self {
            CrossBorderAmount::Send(amount) => (0, amount.minor_units()),
            CrossBorderAmount::Receive(amount) => (1, amount.minor_units()),
        }
    }

    /// The amount `code` gave; `None` for a pair it never gives or an amount of zero.
    pub fn from_code(mode: u8, minor_units: u64) -> Option<Self> {
        let amount = Amount::new(minor_units).filter(|amount| !amount.is_zero())?;
        match mode {
            0 => Some(CrossBorderAmount::Send(amount)),
            1 => Some(CrossBorderAmount::Receive(amount)),
            _ => None,
        }
    }
}

/// The worst outcome the payer accepts from a `PayCrossBorder`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum RateLimit {
    /// The payee must receive at least this much of `to`.
    MinReceive(Amount),
    /// The payer must send at most this much of `from`.
    MaxSend(Amount),
}

impl RateLimit {
    /// As (mode, minor units), mode 0 minimum receive and 1 maximum send (shared like
    /// `CrossBorderAmount::code`).
    pub fn code(self) -> (u8, u64) {
        match self {
            RateLimit::MinReceive(limit) => (0, limit.minor_units()),
            RateLimit::MaxSend(limit) => (1, limit.minor_units()),
        }
    }

    /// The limit `code` gave; `None` for a pair it never gives or a limit of zero.
    pub fn from_code(mode: u8, minor_units: u64) -> Option<Self> {
        let limit = Amount::new(minor_units).filter(|limit| !limit.is_zero())?;
        match mode {
            0 => Some(RateLimit::MinReceive(limit)),
            1 => Some(RateLimit::MaxSend(limit)),
            _ => None,
        }
    }
}

/// Prices a payment from `by` to `payee` of `from` into `to`, walking the live books
/// over every route of at most `max_hops` markets (the engine's default when `None`).
/// The quote is executable by `by` until `ttl` (the engine's default when `None`) of
/// command time has passed. Of the risk rules, only a blocked counterparty (either
/// way) refuses a quote: it moves no money; the limits and the review threshold are
/// asked when it is executed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuotePayment {
    pub by: AccountId,
    pub payee: AccountId,
    pub from: AssetId,
    pub to: AssetId,
    pub amount: CrossBorderAmount,
    pub max_hops: Option<u8>,
    pub ttl: Option<Timestamp>,
}

/// Executes quote `quote` of `by`: moves exactly its send and receive amounts along
/// its route, or nothing (if the books moved against it).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExecuteQuote {
    pub by: AccountId,
    pub key: IdempotencyKey,
    pub quote: QuoteId,
}

/// Routes and pays in one command: the best route of at most `max_hops` markets (the
/// engine's default when `None`) that meets `limit`, or nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PayCrossBorder {
    pub by: AccountId,
    pub key: IdempotencyKey,
    pub payee: AccountId,
    pub from: AssetId,
    pub to: AssetId,
    pub amount: CrossBorderAmount,
    pub limit: RateLimit,
    pub max_hops: Option<u8>,
}

/// Shape checks shared by quotes and direct payments.
fn check_payment(
    by: AccountId,
    payee: AccountId,
    from: AssetId,
    to: AssetId,
    amount: CrossBorderAmount,
    max_hops: Option<u8>,
) -> Result<(), RejectReason> {
    require_positive(amount.amount())?;
    if by == payee {
        return Err(RejectReason::SameAccount);
    }
    if from == to {
        // Nothing to convert: that is a transfer.
        return Err(RejectReason::NoRoute);
    }
    if max_hops.is_some_and(|hops| hops == 0 || usize::from(hops) > ROUTE_HOPS_MAX) {
        return Err(RejectReason::TooManyLegs);
    }
    Ok(())
}

impl QuotePayment {
    pub fn check(&self) -> Result<(), RejectReason> {
        check_payment(self.by, self.payee, self.from, self.to, self.amount, self.max_hops)?;
        if self.ttl.is_some_and(|ttl| ttl.as_nanos() == 0 || ttl > QUOTE_TTL_MAX) {
            return Err(RejectReason::InvalidExpiry);
        }
        Ok(())
    }
}

impl ExecuteQuote {
    #[allow(clippy::unnecessary_wraps, clippy::unused_self)] // Same shape as its siblings.
    pub fn check(&self) -> Result<(), RejectReason> {
        Ok(())
    }
}

impl PayCrossBorder {
    pub fn check(&self) -> Result<(), RejectReason> {
        check_payment(self.by, self.payee, self.from, self.to, self.amount, self.max_hops)?;
        match self.limit {
            RateLimit::MinReceive(limit) | RateLimit::MaxSend(limit) => require_positive(limit),
        }
    }
}

impl Keyed for ExecuteQuote {
    fn principal(&self) -> AccountId {
        self.by
    }
    fn key(&self) -> IdempotencyKey {
        self.key
    }
    fn fingerprint(&self) -> u64 {
        let mut fingerprint = Fingerprint::new(CommandKind::ExecuteQuote);
        fingerprint.u32(self.by.get()).u64(self.quote.get());
        fingerprint.finish()
    }
}

impl Keyed for PayCrossBorder {
    fn principal(&self) -> AccountId {
        self.by
    }
    fn key(&self) -> IdempotencyKey {
        self.key
    }
    fn fingerprint(&self) -> u64 {
        let (mode, amount) = self.amount.code();
        let (limit_mode, limit) = self.limit.code();
        let mut fingerprint = Fingerprint::new(CommandKind::PayCrossBorder);
        fingerprint
            .u32(self.by.get())
            .u32(self.payee.get())
            .u32(u32::from(self.from.get()) | (u32::from(self.to.get()) << 16))
            .u64(u64::from(mode))
            .u64(amount)
            .u64(u64::from(limit_mode))
            .u64(limit)
            .u64(self.max_hops.map_or(0, |hops| u64::from(hops) + 1));
        fingerprint.finish()
    }
}

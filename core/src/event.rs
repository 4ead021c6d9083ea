//! Events: what the engine says happened. A business rejection is an event like any
//! other (STYLE §7): journaled commands replay to the same events, rejections included.

use serde::{Deserialize, Serialize};

use crate::command::CommandKind;
use crate::ids::{AccountId, AssetId, KycTier, OwnerId, PaymentId, Reference, Timestamp};
use crate::money::Amount;

/// Why a command was refused. The state is left as it was (apart from remembering
/// the outcome under the command's idempotency key).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum RejectReason {
    /// The account does not exist.
    UnknownAccount,
    /// The asset is not in the configuration.
    UnknownAsset,
    /// The payment does not exist (or has aged out of `limits::PAYMENT_RETENTION`).
    UnknownPayment,
    /// Not enough available balance.
    InsufficientFunds,
    /// An account involved is frozen.
    AccountFrozen,
    /// The command names a different asset than the payment it refers to.
    AssetMismatch,
    /// The amount is zero.
    InvalidAmount,
    /// The authorization expired before this command.
    AuthorizationExpired,
    /// The authorization was already fully captured or voided.
    AuthorizationClosed,
    /// A capture above what remains of the authorization.
    ExceedsAuthorization,
    /// A refund above what was paid and not yet refunded.
    ExceedsRefundable,
    /// The payment cannot be refunded (an authorization with nothing captured).
    NotRefundable,
    /// A capture or void names a payment that is not an authorization.
    NotAnAuthorization,
    /// The account acting (`by`) is not the party this command needs.
    NotParty,
    /// Payer and payee are the same account.
    SameAccount,
    /// A split payment names the same payee twice.
    DuplicatePayee,
    /// A split payment with no legs or more than `limits::SPLIT_LEGS_MAX`.
    TooManyLegs,
    /// An authorization expiry not in the future, or beyond
    /// `limits::AUTHORIZATION_DURATION_MAX`.
    InvalidExpiry,
    /// The idempotency key was used before with different content.
    IdempotencyConflict,
    /// The asset's total would pass `limits::AMOUNT_MAX`.
    Overflow,
    /// A bounded table is full (accounts, payments, authorizations, idempotency keys).
    CapacityExceeded,
}

/// What a keyed command came to; remembered under its idempotency key and returned
/// again to a retry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Outcome {
    /// Done; the payment it created, if any (the first leg's, for a split payment).
    Accepted {
        payment: Option<PaymentId>,
    },
    Rejected(RejectReason),
}

/// Something that happened, in the order it happened.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event {
    AccountOpened {
        account: AccountId,
        owner: OwnerId,
        kyc_tier: KycTier,
    },
    AccountFrozen {
        account: AccountId,
    },
    AccountUnfrozen {
        account: AccountId,
    },
    KycTierChanged {
        account: AccountId,
        kyc_tier: KycTier,
    },
    Deposited {
        account: AccountId,
        asset: AssetId,
        amount: Amount,
        reference: Reference,
    },
    Withdrawn {
        account: AccountId,
        asset: AssetId,
        amount: Amount,
        reference: Reference,
    },
    /// A transfer, or one leg of a split payment.
    Transferred {
        payment: PaymentId,
        from: AccountId,
        to: AccountId,
        asset: AssetId,
        amount: Amount,
    },
    Authorized {
        payment: PaymentId,
        payer: AccountId,
        payee: AccountId,
        asset: AssetId,
        amount: Amount,
        expires_at: Timestamp,
    },
    /// `amount` moved from the payer's hold to the payee; `released` went back to the
    /// payer's available balance (a last capture below the authorized amount).
    Captured {
        payment: PaymentId,
        amount: Amount,
        captured_total: Amount,
        released: Amount,
    },
    Voided {
        payment: PaymentId,
        released: Amount,
    },
    AuthorizationExpired {
        payment: PaymentId,
        released: Amount,
    },
    /// A split payment completed; its legs are the `Transferred` events just before,
    /// with payment ids `first_payment ..= first_payment + legs - 1`.
    SplitPaid {
        first_payment: PaymentId,
        payer: AccountId,
        asset: AssetId,
        total: Amount,
        legs: u8,
    },
    Refunded {
        payment: PaymentId,
        amount: Amount,
        refunded_total: Amount,
    },
    /// An account's balance of an asset after the command (one per account and asset
    /// the command changed).
    BalanceChanged {
        account: AccountId,
        asset: AssetId,
        available: Amount,
        held: Amount,
    },
    Rejected {
        kind: CommandKind,
        reason: RejectReason,
    },
    /// A retry of a keyed command with the same content: nothing moved, and this is
    /// what the original came to.
    Replayed {
        kind: CommandKind,
        original: Outcome,
    },
}

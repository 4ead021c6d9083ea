//! Events: what the engine says happened. A business rejection is an event like any
//! other (STYLE §7): journaled commands replay to the same events, rejections included.

use serde::{Deserialize, Serialize};

use crate::book::{ClientOrderId, MarketId, OrderId, Price, Qty, Side, TimeInForce};
use crate::command::CommandKind;
use crate::ids::{AccountId, AssetId, HoldId, KycTier, OwnerId, PaymentId, QuoteId, Reference, RuleVersion, Timestamp};
use crate::money::Amount;
use crate::route::Route;
use crate::rules::RuleKind;

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
    /// The market does not exist.
    UnknownMarket,
    /// The order does not exist, is no longer resting, or is not the caller's.
    UnknownOrder,
    /// A quantity of zero, outside the market's bounds, or too large to price.
    InvalidQuantity,
    /// A price whose quote amount is too large to hold.
    InvalidPrice,
    /// A combination of order fields that does not make sense (a market order that
    /// rests, a budget on a sell, post-only that may not rest, an amend changing nothing).
    InvalidOrder,
    /// The account already has a live order with this client order id.
    DuplicateClientOrderId,
    /// The account has `limits::ORDERS_PER_ACCOUNT_MAX` orders resting.
    TooManyOrders,
    /// A post-only order would have traded on arrival.
    PostOnlyWouldTake,
    /// A market specification that does not validate, or a pair that already trades.
    InvalidMarket,
    /// A bounded table is full (accounts, payments, authorizations, idempotency keys,
    /// quotes).
    CapacityExceeded,
    /// A risk or compliance rule refused the command; the `Event::RuleViolated` just
    /// before names the rule and the version.
    RuleViolation,
    /// A rule set that does not validate against the engine's assets, a share above
    /// 10,000 bps, or a rollback to a version that is not earlier than those in effect.
    InvalidRules,
    /// No rule set was published with this version.
    UnknownRuleVersion,
    /// No payment is held for review under this id (or its decision was forgotten).
    UnknownHold,
    /// The hold was already decided the other way.
    HoldDecided,
    /// No chain of markets of at most the hop limit converts the sent currency into the
    /// received one (or they are the same currency: that is a transfer).
    NoRoute,
    /// Routes exist, but none has the depth to convert the amount (within the
    /// markets' largest order size).
    InsufficientLiquidity,
    /// The quote does not exist or is not the caller's.
    UnknownQuote,
    /// The quote's time ran out before this command.
    QuoteExpired,
    /// The quote was executed already.
    QuoteUsed,
    /// The books moved so that the quote or the payment's limit can no longer be met;
    /// the `Event::RateMoved` just before says by how much. Nothing moved.
    RateMoved,
}

impl RejectReason {
    /// Every reason, in declaration order: `ALL[reason as usize] == reason`.
    pub const ALL: [RejectReason; 41] = [
        RejectReason::UnknownAccount,
        RejectReason::UnknownAsset,
        RejectReason::UnknownPayment,
        RejectReason::InsufficientFunds,
        RejectReason::AccountFrozen,
        RejectReason::AssetMismatch,
        RejectReason::InvalidAmount,
        RejectReason::AuthorizationExpired,
        RejectReason::AuthorizationClosed,
        RejectReason::ExceedsAuthorization,
        RejectReason::ExceedsRefundable,
        RejectReason::NotRefundable,
        RejectReason::NotAnAuthorization,
        RejectReason::NotParty,
        RejectReason::SameAccount,
        RejectReason::DuplicatePayee,
        RejectReason::TooManyLegs,
        RejectReason::InvalidExpiry,
        RejectReason::IdempotencyConflict,
        RejectReason::Overflow,
        RejectReason::UnknownMarket,
        RejectReason::UnknownOrder,
        RejectReason::InvalidQuantity,
        RejectReason::InvalidPrice,
        RejectReason::InvalidOrder,
        RejectReason::DuplicateClientOrderId,
        RejectReason::TooManyOrders,
        RejectReason::PostOnlyWouldTake,
        RejectReason::InvalidMarket,
        RejectReason::CapacityExceeded,
        RejectReason::RuleViolation,
        RejectReason::InvalidRules,
        RejectReason::UnknownRuleVersion,
        RejectReason::UnknownHold,
        RejectReason::HoldDecided,
        RejectReason::NoRoute,
        RejectReason::InsufficientLiquidity,
        RejectReason::UnknownQuote,
        RejectReason::QuoteExpired,
        RejectReason::QuoteUsed,
        RejectReason::RateMoved,
    ];

    /// The reason whose discriminant is `code`.
    pub fn from_code(code: u64) -> Option<RejectReason> {
        usize::try_from(code).ok().and_then(|index| Self::ALL.get(index).copied())
    }
}

/// Why an order (or what remained of it) left the book without filling.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum CancelReason {
    /// The owner cancelled it.
    Requested,
    /// The owner cancelled all its orders.
    CancelAll,
    /// Immediate-or-cancel (and market) orders do not rest.
    Unfilled,
    /// A fill-or-kill order could not fill entirely.
    FillOrKill,
    /// Self-trade prevention.
    SelfTrade,
    /// A market buy spent its quote budget.
    BudgetSpent,
    /// The account was frozen.
    AccountFrozen,
}

/// What a keyed command came to; remembered under its idempotency key and returned
/// again to a retry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Outcome {
    /// Done; the payment it created or acted on, if any (the first leg's, for a split
    /// payment; the authorization, for a capture or void; none for a refund).
    Accepted {
        payment: Option<PaymentId>,
    },
    Rejected(RejectReason),
    /// A rule held the payment for an operator's review: its funds are held under
    /// `hold` until a `ReviewDecision`.
    HeldForReview {
        hold: HoldId,
    },
}

impl Outcome {
    /// The outcome as (kind, value): 0 accepted without a payment; 1 accepted with
    /// payment `value`; 2 rejected with the reason whose discriminant is `value`; 3
    /// held for review under hold `value`. The one encoding the idempotency table, the
    /// state hash and snapshots share.
    pub fn code(self) -> (u8, u64) {
        match self {
            Outcome::Accepted { payment: None } => (0, 0),
            Outcome::Accepted { payment: Some(payment) } => (1, payment.get()),
            Outcome::Rejected(reason) => (2, reason as u64),
            Outcome::HeldForReview { hold } => (3, hold.get()),
        }
    }

    /// The outcome `code` gave, or `None` for a pair it never gives.
    pub fn from_code(kind: u8, value: u64) -> Option<Outcome> {
        match kind {
            0 if value == 0 => Some(Outcome::Accepted { payment: None }),
            1 => Some(Outcome::Accepted { payment: Some(PaymentId::new(value)) }),
            2 => RejectReason::from_code(value).map(Outcome::Rejected),
            3 if value != 0 => Some(Outcome::HeldForReview { hold: HoldId::new(value) }),
            _ => None,
        }
    }
}

/// Something that happened, in the order it happened.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
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
        payer: AccountId,
        payee: AccountId,
        asset: AssetId,
        amount: Amount,
        captured_total: Amount,
        released: Amount,
    },
    Voided {
        payment: PaymentId,
        payer: AccountId,
        payee: AccountId,
        asset: AssetId,
        released: Amount,
    },
    AuthorizationExpired {
        payment: PaymentId,
        payer: AccountId,
        payee: AccountId,
        asset: AssetId,
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
    /// The payee sent `amount` back to the payer.
    Refunded {
        payment: PaymentId,
        payer: AccountId,
        payee: AccountId,
        asset: AssetId,
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
    MarketAdded {
        market: MarketId,
        base: AssetId,
        quote: AssetId,
    },
    /// An order passed every check and its funds are held; trades, a cancel of its
    /// remainder, or nothing (it rests) follow. `qty` is zero for a budget order.
    OrderAccepted {
        order: OrderId,
        account: AccountId,
        market: MarketId,
        side: Side,
        price: Option<Price>,
        qty: Qty,
        time_in_force: TimeInForce,
        client_order_id: Option<ClientOrderId>,
    },
    /// One fill between a resting (maker) and an incoming (taker) order, at the maker's
    /// price. Fees are in the quote asset; `*_remaining` is what each order has left
    /// (zero for the taker when it is a budget order).
    Trade {
        market: MarketId,
        market_seq: u64,
        price: Price,
        qty: Qty,
        taker_side: Side,
        maker_order: OrderId,
        taker_order: OrderId,
        maker_account: AccountId,
        taker_account: AccountId,
        maker_fee: Amount,
        taker_fee: Amount,
        maker_remaining: Qty,
        taker_remaining: Qty,
    },
    OrderCancelled {
        order: OrderId,
        account: AccountId,
        market: MarketId,
        remaining: Qty,
        reason: CancelReason,
    },
    /// The order now rests at `price` with `qty` remaining; `priority_kept` says
    /// whether it kept its place in the queue.
    OrderAmended {
        order: OrderId,
        account: AccountId,
        market: MarketId,
        price: Price,
        qty: Qty,
        priority_kept: bool,
    },
    /// Market data: the level at `price` on `side` now holds `total` lots in `orders`
    /// orders (zero: the level is gone).
    BookChanged {
        market: MarketId,
        market_seq: u64,
        side: Side,
        price: Price,
        total: Qty,
        orders: u32,
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
    /// A rule set was published as `version`.
    RulesPublished {
        version: RuleVersion,
    },
    /// `version` is in effect for the accounts whose rollout bucket is below
    /// `share_bps` (10,000: for everyone, as the fully active version; 0: the rollout
    /// ended).
    RulesActivated {
        version: RuleVersion,
        share_bps: u16,
    },
    /// `to` is the fully active version for everyone again (`RuleVersion::NONE`: no
    /// rules); `from` was the highest version in effect.
    RulesRolledBack {
        from: RuleVersion,
        to: RuleVersion,
    },
    /// The rule `rule` of `account`'s rules, version `version`, refused a command of
    /// `kind`; a `Rejected { reason: RuleViolation }` follows. `account` is whose rules
    /// decided (the payee's, when the payee blocks the payer).
    RuleViolated {
        kind: CommandKind,
        account: AccountId,
        rule: RuleKind,
        version: RuleVersion,
    },
    /// A payment of `kind` waits for an operator's review: `amount` is held in the
    /// payer's account under `hold`. `payee` is `None` for a withdrawal and a split
    /// payment (its payees hear of it if it is approved). `rule` of the payer's rules,
    /// version `version`, decided it.
    HeldForReview {
        hold: HoldId,
        kind: CommandKind,
        payer: AccountId,
        payee: Option<AccountId>,
        asset: AssetId,
        amount: Amount,
        rule: RuleKind,
        version: RuleVersion,
    },
    /// An operator approved the hold; the payment's own events follow (`Transferred`,
    /// `Authorized`, `Transferred`s and `SplitPaid`, or `Withdrawn`).
    ReviewApproved {
        hold: HoldId,
        payer: AccountId,
        payee: Option<AccountId>,
        asset: AssetId,
        amount: Amount,
    },
    /// An operator rejected the hold: `amount` went back to the payer's available
    /// balance.
    ReviewRejected {
        hold: HoldId,
        payer: AccountId,
        payee: Option<AccountId>,
        asset: AssetId,
        amount: Amount,
    },
    /// One leg of a quote: on `market` the payer would trade `qty` lots on `side`,
    /// giving `input` and getting `output` (after its taker fee). `taker_fee` is in the
    /// market's quote currency (part of `input` on a buy, taken from `output` on a
    /// sell); `remainder` is what of `output` the next leg (or the payee) would not use
    /// and the house would keep (lots are whole). The `Quoted` event follows the legs.
    QuoteLeg {
        quote: QuoteId,
        payer: AccountId,
        payee: AccountId,
        leg: u8,
        market: MarketId,
        side: Side,
        qty: Qty,
        input: Amount,
        output: Amount,
        taker_fee: Amount,
        remainder: Amount,
    },
    /// A route the quote considered and did not choose, `rank` 1 being the next best:
    /// what the payer would send and the payee receive through it.
    QuoteRunnerUp {
        quote: QuoteId,
        payer: AccountId,
        payee: AccountId,
        rank: u8,
        route: Route,
        send: Amount,
        receive: Amount,
    },
    /// A quote: through `route`, the payer sends `send` of `from` and the payee receives
    /// `receive` of `to`, if executed before `expires_at`. Its legs (`QuoteLeg`) and
    /// runners-up (`QuoteRunnerUp`) are the events just before.
    Quoted {
        quote: QuoteId,
        payer: AccountId,
        payee: AccountId,
        from: AssetId,
        to: AssetId,
        send: Amount,
        receive: Amount,
        route: Route,
        expires_at: Timestamp,
    },
    /// One leg of a cross-border payment, after its `Trade`s: the payer's taker order
    /// `order` took `qty` lots on `market`, giving `input` and getting `output` (after
    /// `taker_fee`, in the market's quote currency); `remainder` of `output` went to the
    /// house's remainder account (lots are whole).
    CrossBorderLeg {
        payment: PaymentId,
        payer: AccountId,
        payee: AccountId,
        leg: u8,
        market: MarketId,
        side: Side,
        order: OrderId,
        qty: Qty,
        input: Amount,
        output: Amount,
        taker_fee: Amount,
        remainder: Amount,
    },
    /// A cross-border payment completed: the payer sent `send` of `from`, the payee
    /// received `receive` of `to`. `surplus` of `from` is what an executed quote's
    /// price no longer needed (the books moved in the payer's favour): the house's,
    /// recorded in its remainder account. Its legs are the `CrossBorderLeg` events
    /// just before.
    CrossBorderPaid {
        payment: PaymentId,
        payer: AccountId,
        payee: AccountId,
        from: AssetId,
        to: AssetId,
        send: Amount,
        receive: Amount,
        route: Route,
        surplus: Amount,
        quote: Option<QuoteId>,
    },
    /// Why a cross-border command is about to be rejected with `RateMoved`: the limit
    /// (a quote's send, a `MaxSend`, or a `MinReceive`) is `limit` of `asset`; the
    /// books now give `achievable` (the least the payer would send, or the most the
    /// payee would receive), `moved_ppm` parts per million worse.
    RateMoved {
        payer: AccountId,
        asset: AssetId,
        limit: Amount,
        achievable: Amount,
        moved_ppm: u32,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_stay_small() {
        // Events are copied into every batch: the cross-border ones are no larger than
        // `Trade`, the largest before them (96 bytes on 64-bit targets).
        assert!(std::mem::size_of::<Event>() <= 96, "{}", std::mem::size_of::<Event>());
    }

    #[test]
    fn reject_reason_codes_round_trip() {
        for (index, reason) in RejectReason::ALL.iter().enumerate() {
            assert_eq!(*reason as usize, index);
            assert_eq!(RejectReason::from_code(index as u64), Some(*reason));
        }
        assert_eq!(RejectReason::from_code(RejectReason::ALL.len() as u64), None);
    }

    #[test]
    fn outcome_codes_round_trip_and_refuse_what_they_never_give() {
        let outcomes = [
            Outcome::Accepted { payment: None },
            Outcome::Accepted { payment: Some(PaymentId::new(42)) },
            Outcome::Rejected(RejectReason::InsufficientFunds),
            Outcome::Rejected(RejectReason::CapacityExceeded),
            Outcome::Rejected(RejectReason::HoldDecided),
            Outcome::HeldForReview { hold: HoldId::new(7) },
        ];
        for outcome in outcomes {
            let (kind, value) = outcome.code();
            assert_eq!(Outcome::from_code(kind, value), Some(outcome));
        }
        assert_eq!(Outcome::from_code(0, 7), None);
        assert_eq!(Outcome::from_code(2, RejectReason::ALL.len() as u64), None);
        assert_eq!(Outcome::from_code(3, 0), None, "hold ids start at 1");
        assert_eq!(Outcome::from_code(4, 0), None);
    }
}

//! The JSON API shared by HTTP (`POST /v1/rpc`) and WebSocket (`/v1/ws`): requests
//! in (`request`), replies, pushes and market data out (`render`). Documented with
//! examples in `docs/API.md`.

pub mod render;
pub mod request;

use bourse_core::event::RejectReason;
use serde_json::{Value, json};

/// An error as clients see it: `{code, message}`, with the HTTP status it maps to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiError {
    pub status: u16,
    pub code: &'static str,
    pub message: String,
    /// For a rate limit: when to try again.
    pub retry_after_ms: Option<u64>,
}

impl ApiError {
    pub fn new(status: u16, code: &'static str, message: impl Into<String>) -> Self {
        Self { status, code, message: message.into(), retry_after_ms: None }
    }
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(400, code, message)
    }
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(403, "forbidden", message)
    }
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(500, "internal", message)
    }
    /// A rejection the gateway can tell without the engine (same code as the engine's).
    pub fn rejected(reason: RejectReason) -> Self {
        Self::new(422, reject_code(reason), reject_message(reason))
    }
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(503, "unavailable", message)
    }

    /// `{"id": id, "ok": false, "error": {"code", "message"}}`.
    pub fn to_reply(&self, id: &Value) -> Value {
        json!({ "id": id, "ok": false, "error": { "code": self.code, "message": self.message } })
    }
}

impl From<crate::auth::AuthError> for ApiError {
    fn from(error: crate::auth::AuthError) -> Self {
        ApiError {
            retry_after_ms: error.retry_after_ms(),
            ..ApiError::new(error.http_status(), error.code(), error.to_string())
        }
    }
}

impl From<bourse_snapshots::runtime::SubmitError> for ApiError {
    fn from(error: bourse_snapshots::runtime::SubmitError) -> Self {
        match error {
            bourse_snapshots::runtime::SubmitError::Busy(_) => ApiError::new(503, "busy", error.to_string()),
            bourse_snapshots::runtime::SubmitError::Stopped => ApiError::new(503, "shutting_down", error.to_string()),
        }
    }
}

/// The stable `snake_case` code of an engine rejection.
pub fn reject_code(reason: RejectReason) -> &'static str {
    match reason {
        RejectReason::UnknownAccount => "unknown_account",
        RejectReason::UnknownAsset => "unknown_asset",
        RejectReason::UnknownPayment => "unknown_payment",
        RejectReason::InsufficientFunds => "insufficient_funds",
        RejectReason::AccountFrozen => "account_frozen",
        RejectReason::AssetMismatch => "asset_mismatch",
        RejectReason::InvalidAmount => "invalid_amount",
        RejectReason::AuthorizationExpired => "authorization_expired",
        RejectReason::AuthorizationClosed => "authorization_closed",
        RejectReason::ExceedsAuthorization => "exceeds_authorization",
        RejectReason::ExceedsRefundable => "exceeds_refundable",
        RejectReason::NotRefundable => "not_refundable",
        RejectReason::NotAnAuthorization => "not_an_authorization",
        RejectReason::NotParty => "not_party",
        RejectReason::SameAccount => "same_account",
        RejectReason::DuplicatePayee => "duplicate_payee",
        RejectReason::TooManyLegs => "too_many_legs",
        RejectReason::InvalidExpiry => "invalid_expiry",
        RejectReason::IdempotencyConflict => "idempotency_conflict",
        RejectReason::Overflow => "overflow",
        RejectReason::UnknownMarket => "unknown_market",
        RejectReason::UnknownOrder => "unknown_order",
        RejectReason::InvalidQuantity => "invalid_quantity",
        RejectReason::InvalidPrice => "invalid_price",
        RejectReason::InvalidOrder => "invalid_order",
        RejectReason::DuplicateClientOrderId => "duplicate_client_order_id",
        RejectReason::TooManyOrders => "too_many_orders",
        RejectReason::PostOnlyWouldTake => "post_only_would_take",
        RejectReason::InvalidMarket => "invalid_market",
        RejectReason::CapacityExceeded => "capacity_exceeded",
        RejectReason::RuleViolation => "rule_violation",
        RejectReason::InvalidRules => "invalid_rules",
        RejectReason::UnknownRuleVersion => "unknown_rule_version",
        RejectReason::UnknownHold => "unknown_hold",
        RejectReason::HoldDecided => "hold_decided",
        RejectReason::NoRoute => "no_route",
        RejectReason::InsufficientLiquidity => "insufficient_liquidity",
        RejectReason::UnknownQuote => "unknown_quote",
        RejectReason::QuoteExpired => "quote_expired",
        RejectReason::QuoteUsed => "quote_used",
        RejectReason::RateMoved => "rate_moved",
    }
}

/// What a rejection means, in a sentence.
pub fn reject_message(reason: RejectReason) -> &'static str {
    match reason {
        RejectReason::UnknownAccount => "the account does not exist",
        RejectReason::UnknownAsset => "the asset is not configured",
        RejectReason::UnknownPayment => "the payment does not exist (or has aged out)",
        RejectReason::InsufficientFunds => "not enough available balance",
        RejectReason::AccountFrozen => "an account involved is frozen",
        RejectReason::AssetMismatch => "the asset is not the payment's asset",
        RejectReason::InvalidAmount => "the amount must be above zero",
        RejectReason::AuthorizationExpired => "the authorization has expired",
        RejectReason::AuthorizationClosed => "the authorization was already fully captured or voided",
        RejectReason::ExceedsAuthorization => "the capture is more than remains of the authorization",
        RejectReason::ExceedsRefundable => "the refund is more than was paid and not yet refunded",
        RejectReason::NotRefundable => "nothing of this payment was paid, so nothing can be refunded",
        RejectReason::NotAnAuthorization => "the payment is not an authorization",
        RejectReason::NotParty => "the acting account is not the party this command needs",
        RejectReason::SameAccount => "payer and payee are the same account",
        RejectReason::DuplicatePayee => "a split payment names the same payee twice",
        RejectReason::TooManyLegs => "a split payment needs 1 to 16 legs",
        RejectReason::InvalidExpiry => "the expiry is not in the future or is too far ahead",
        RejectReason::IdempotencyConflict => "the key was used before for a different command",
        RejectReason::Overflow => "the amount would overflow the asset's total",
        RejectReason::UnknownMarket => "the market does not exist",
        RejectReason::UnknownOrder => "no such open order of this account",
        RejectReason::InvalidQuantity => "the quantity is zero, outside the market's bounds, or too large",
        RejectReason::InvalidPrice => "the price is too large to hold",
        RejectReason::InvalidOrder => {
            "the order's fields do not go together (a market order that rests, a budget on a sell, post-only that cannot rest, an amend changing nothing)"
        }
        RejectReason::DuplicateClientOrderId => "the account already has an open order with this client_order_id",
        RejectReason::TooManyOrders => "the account has the maximum number of open orders",
        RejectReason::PostOnlyWouldTake => "the post-only order would have traded on arrival",
        RejectReason::InvalidMarket => "the market specification is not valid or the pair already trades",
        RejectReason::CapacityExceeded => "a bounded table is full",
        RejectReason::RuleViolation => "a risk or compliance rule refused the command",
        RejectReason::InvalidRules => {
            "the rule set does not validate, the share is above 10000 bps, or the rollback is not to an earlier version"
        }
        RejectReason::UnknownRuleVersion => "no rule set was published with this version",
        RejectReason::UnknownHold => "no payment is held for review under this id",
        RejectReason::HoldDecided => "the hold was already decided the other way",
        RejectReason::NoRoute => "no chain of markets within the hop limit converts these currencies",
        RejectReason::InsufficientLiquidity => "no route has the depth to convert this amount",
        RejectReason::UnknownQuote => "no such quote of this account",
        RejectReason::QuoteExpired => "the quote has expired",
        RejectReason::QuoteUsed => "the quote was executed already",
        RejectReason::RateMoved => "the books moved past the quote or the limit; nothing moved",
    }
}

//! The engine's whole state as plain rows: what a snapshot stores and what recovery
//! rebuilds an engine from (`Engine::export_state`, `Engine::from_state`).
//!
//! Flat vectors rather than nested ones, so that a million accounts are a few large
//! allocations, and rows in canonical order (accounts by id, orders in book order), so
//! that rebuilding restores exactly the same state hash.

use rkyv::{Archive, Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Eq, Archive, Serialize, Deserialize)]
pub struct EngineState {
    pub assets: Vec<AssetRow>,
    pub last_seq: Option<u64>,
    pub now: u64,
    pub accounts: Vec<AccountRow>,
    /// Every balance, ordered by account then asset.
    pub balances: Vec<BalanceRow>,
    pub totals: Vec<TotalsRow>,
    pub payments_first_id: u64,
    pub payments: Vec<PaymentRow>,
    /// In the order they were recorded.
    pub idempotency: Vec<IdempotencyRow>,
    pub markets: Vec<MarketRow>,
    /// Per market, bids best first then asks best first, each level's orders in queue order.
    pub orders: Vec<OrderRow>,
    pub next_order_id: u64,
    /// Published rule sets, version 1 first, each as its canonical TOML
    /// (`RuleSet::to_toml_string`), compiled again on rebuild.
    pub rule_versions: Vec<String>,
    /// The fully active rule version (0: none).
    pub rules_base: u32,
    /// The rollout in progress: its version (0: none) and share in basis points.
    pub rules_rollout_version: u32,
    pub rules_rollout_share_bps: u16,
    /// Every rule change, in the order made.
    pub rule_changes: Vec<RuleChangeRow>,
    /// Accounts with risk counters, by account.
    pub risk_counters: Vec<RiskCounterRow>,
    /// Their day's outflow, ordered by account then asset.
    pub risk_outflows: Vec<RiskOutflowRow>,
    /// Their recent payment times, ordered by account then time.
    pub risk_payment_times: Vec<RiskPaymentTimeRow>,
    /// Payments held for review, pending and decided, by hold id.
    pub review_holds: Vec<ReviewHoldRow>,
    /// The legs of held split payments, by hold then leg order.
    pub review_legs: Vec<ReviewLegRow>,
    /// The terms of held cross-border payments and quote executions, by hold.
    pub review_crossborder: Vec<ReviewCrossBorderRow>,
    pub next_hold_id: u64,
    pub crossborder: CrossBorderRow,
    /// Quotes kept (open or executed, not yet expired), by id.
    pub quotes: Vec<QuoteRow>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Archive, Serialize, Deserialize)]
pub struct RuleChangeRow {
    pub seq: u64,
    pub at: u64,
    /// 0 published `version`; 1 activated `version` for `share_bps`; 2 rolled back
    /// from `from` to `version`.
    pub kind: u8,
    pub version: u32,
    pub share_bps: u16,
    pub from: u32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Archive, Serialize, Deserialize)]
pub struct RiskCounterRow {
    pub account: u32,
    /// The UTC day (since the epoch) the outflow rows count.
    pub day: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Archive, Serialize, Deserialize)]
pub struct RiskOutflowRow {
    pub account: u32,
    pub asset: u16,
    pub amount: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Archive, Serialize, Deserialize)]
pub struct RiskPaymentTimeRow {
    pub account: u32,
    pub at: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Archive, Serialize, Deserialize)]
pub struct ReviewHoldRow {
    pub id: u64,
    /// 0 transfer, 1 authorization, 2 split payment, 3 withdrawal, 4 cross-border
    /// payment, 5 quote execution (4 and 5 have a `ReviewCrossBorderRow`).
    pub kind: u8,
    pub payer: u32,
    /// The payee of a transfer, authorization, cross-border payment or quote (else 0).
    pub payee: u32,
    /// What is held: the source asset of a cross-border payment or quote.
    pub asset: u16,
    pub amount: u64,
    /// An authorization's or a held quote's expiry (else 0).
    pub expires_at: u64,
    /// A withdrawal's reference (else empty).
    pub reference: String,
    pub version: u32,
    pub created_at: u64,
    /// 0 pending, 1 approved, 2 rejected.
    pub decision: u8,
    pub decided_at: u64,
    /// The decision's outcome, as `Outcome::code` (when decided).
    pub outcome: u8,
    pub outcome_value: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Archive, Serialize, Deserialize)]
pub struct ReviewLegRow {
    pub hold: u64,
    pub payee: u32,
    pub amount: u64,
}

/// What a held cross-border payment (hold kind 4) or quote execution (kind 5) needs to
/// be made at the decision, beside its `ReviewHoldRow`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Archive, Serialize, Deserialize)]
pub struct ReviewCrossBorderRow {
    pub hold: u64,
    /// The asset the payee receives.
    pub to: u16,
    /// Kind 4: the command's amount and limit, as `CrossBorderAmount::code` and
    /// `RateLimit::code`, and its hop limit (else zeros).
    pub amount_mode: u8,
    pub amount: u64,
    pub limit_mode: u8,
    pub limit: u64,
    pub max_hops: u8,
    /// Kind 5: the quote's id, its route (markets first leg first, `markets[hops..]`
    /// zero) and what the payee receives (else zeros).
    pub quote: u64,
    pub hops: u8,
    pub markets: [u32; crate::limits::ROUTE_HOPS_MAX],
    pub receive: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Archive, Serialize, Deserialize)]
pub struct AssetRow {
    pub code: String,
    pub scale: u32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Archive, Serialize, Deserialize)]
pub struct AccountRow {
    pub owner: u64,
    pub kyc_tier: u8,
    pub frozen: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Archive, Serialize, Deserialize)]
pub struct BalanceRow {
    pub account: u32,
    pub asset: u16,
    pub available: u64,
    pub held: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Archive, Serialize, Deserialize)]
pub struct TotalsRow {
    pub in_accounts: u64,
    pub fees: u64,
    /// The house's remainder account (cross-border rounding and quote surpluses).
    pub remainders: u64,
    pub deposited: u128,
    pub withdrawn: u128,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Archive, Serialize, Deserialize)]
pub struct PaymentRow {
    pub payer: u32,
    pub payee: u32,
    pub asset: u16,
    /// 0 transfer, 1 split leg, 2 authorization, 3 cross-border.
    pub kind: u8,
    /// 0 settled, 1 open, 2 captured, 3 voided, 4 expired.
    pub state: u8,
    pub amount: u64,
    pub paid: u64,
    pub refunded: u64,
    pub created_at: u64,
    pub expires_at: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Archive, Serialize, Deserialize)]
pub struct IdempotencyRow {
    pub recorded_at: u64,
    pub account: u32,
    pub key: u128,
    pub fingerprint: u64,
    /// 0 accepted without a payment, 1 accepted with payment `value`, 2 rejected with
    /// the reason whose discriminant is `value`.
    pub outcome: u8,
    pub value: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Archive, Serialize, Deserialize)]
pub struct MarketRow {
    pub base: u16,
    pub quote: u16,
    pub lot: u64,
    pub tick: u64,
    pub qty_min: u64,
    pub qty_max: u64,
    /// (maker bps, taker bps) per KYC tier.
    pub fees: Vec<(u16, u16)>,
    pub market_seq: u64,
    pub last_price: Option<u64>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Archive, Serialize, Deserialize)]
pub struct OrderRow {
    pub id: u64,
    pub client_order_id: Option<u128>,
    pub account: u32,
    pub market: u32,
    /// 0 buy, 1 sell.
    pub side: u8,
    pub price: u64,
    pub remaining: u64,
    pub held: u64,
    pub maker_bps: u16,
    pub taker_bps: u16,
    /// 0 cancel taker, 1 cancel maker, 2 cancel both.
    pub stp: u8,
    pub post_only: bool,
}

/// Cross-border defaults and the next quote id.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Archive, Serialize, Deserialize)]
pub struct CrossBorderRow {
    pub max_hops: u8,
    pub quote_ttl_ns: u64,
    pub next_quote_id: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Archive, Serialize, Deserialize)]
pub struct QuoteRow {
    pub id: u64,
    pub payer: u32,
    pub payee: u32,
    pub from: u16,
    pub to: u16,
    /// Markets of the route, first leg first; `markets[hops..]` are zero.
    pub hops: u8,
    pub markets: [u32; crate::limits::ROUTE_HOPS_MAX],
    pub send: u64,
    pub receive: u64,
    pub expires_at: u64,
    pub used: bool,
}

//! Every bound the engine keeps, in one place (STYLE §9).
//!
//! Hitting one of these is a clear, tested rejection (`RejectReason::CapacityExceeded`,
//! `TooManyLegs`, `InvalidExpiry`, ...) or a configuration error, never a silent drop.

use crate::ids::Timestamp;

/// Assets a configuration may declare (asset ids are `u16`; the cap keeps per-asset
/// arrays small enough to scan on every command).
pub const ASSETS_MAX: usize = 256;
/// Decimal places an asset may have: `rust_decimal` carries 28, but `10^scale` must
/// leave room for whole units in an `i64`.
pub const ASSET_SCALE_MAX: u32 = 18;
/// Bytes in an asset code such as `USD` or `USDT`.
pub const ASSET_CODE_BYTES_MAX: usize = 12;
/// Open accounts (ids are dense `u32` indexes).
pub const ACCOUNTS_MAX: usize = 64 * 1024 * 1024;
/// KYC tiers are `0..=KYC_TIER_MAX`.
pub const KYC_TIER_MAX: u8 = 9;
/// Largest amount of any asset, in minor units, and largest total of an asset held
/// across all accounts: deposits that would push an asset's total past it are
/// rejected, so no single balance can overflow either.
pub const AMOUNT_MAX: u64 = i64::MAX as u64;
/// Payees in one split payment.
pub const SPLIT_LEGS_MAX: usize = 16;
/// Bytes of an external reference (bank reference of a deposit or withdrawal).
pub const REFERENCE_BYTES_MAX: usize = 32;

/// Nanoseconds per second of command time.
pub const NANOS_PER_SECOND: u64 = 1_000_000_000;
/// Nanoseconds per day of command time.
pub const NANOS_PER_DAY: u64 = 86_400 * NANOS_PER_SECOND;

/// Longest an authorization may stay open before it expires by itself.
pub const AUTHORIZATION_DURATION_MAX: Timestamp = Timestamp::from_nanos(30 * NANOS_PER_DAY);
/// Authorizations open at once, across all accounts.
pub const AUTHORIZATIONS_OPEN_MAX: usize = 4 * 1024 * 1024;

/// Idempotency entries are remembered for this long (command time) after the command
/// that made them; a key reused within this window returns the original outcome.
pub const IDEMPOTENCY_RETENTION: Timestamp = Timestamp::from_nanos(NANOS_PER_DAY);
/// Idempotency entries held at once. When the table is full of entries younger than
/// the retention window, new keyed commands are rejected with `CapacityExceeded`
/// rather than forgetting a key early.
pub const IDEMPOTENCY_ENTRIES_MAX: usize = 8 * 1024 * 1024;

/// Payment records (transfers, split legs, authorizations) are kept for refunds for
/// this long (command time). Must exceed `AUTHORIZATION_DURATION_MAX`, so an open
/// authorization is never evicted.
pub const PAYMENT_RETENTION: Timestamp = Timestamp::from_nanos(90 * NANOS_PER_DAY);
/// Payment records held at once; past it, new payments are rejected with
/// `CapacityExceeded` until old ones age out.
pub const PAYMENTS_MAX: usize = 32 * 1024 * 1024;

const _: () = assert!(PAYMENT_RETENTION.as_nanos() > AUTHORIZATION_DURATION_MAX.as_nanos());
const _: () = assert!(ASSETS_MAX <= u16::MAX as usize + 1);
const _: () = assert!(ACCOUNTS_MAX <= u32::MAX as usize);

/// Markets (currency pairs) an engine may hold.
pub const MARKETS_MAX: usize = 4096;
/// Highest price, in ticks.
pub const PRICE_TICKS_MAX: u64 = 1 << 48;
/// Largest order, in lots.
pub const QTY_LOTS_MAX: u64 = 1 << 48;
/// Highest maker or taker fee, in basis points (10%).
pub const FEE_BPS_MAX: u16 = 1_000;
/// Orders resting at once, across all markets.
pub const ORDERS_OPEN_MAX: usize = 16 * 1024 * 1024;
/// Orders one account may have resting at once, across all markets.
pub const ORDERS_PER_ACCOUNT_MAX: u32 = 10_000;
/// Price levels on one side of one book: keeps inserting a level O(levels) bounded.
pub const PRICE_LEVELS_PER_SIDE_MAX: usize = 100_000;
/// Levels a depth request may ask for, per side.
pub const DEPTH_LEVELS_MAX: usize = 1_000;

// Risk and compliance rules (`rules`, `engine::rules`, `engine::review`).

/// Rule set versions that may be published (numbered 1, 2, …); past it, a publish is
/// rejected with `CapacityExceeded`.
pub const RULE_VERSIONS_MAX: u32 = 1_000;
/// Rule changes (publish, activate, roll back) the engine keeps in its history; past
/// it, rule changes are rejected with `CapacityExceeded`.
pub const RULE_CHANGES_MAX: usize = 10_000;
/// Accounts with limits of their own in one rule set.
pub const RULE_OVERRIDES_MAX: usize = 500;
/// Per-asset amounts (order notional, single payment, daily outflow, review
/// threshold) in one rule set, across every tier and account.
pub const RULE_AMOUNT_ENTRIES_MAX: usize = 500;
/// Blocked counterparties in one rule set, across every list.
pub const RULE_BLOCKED_MAX: usize = 2_000;
/// Bytes of a rule set's description.
pub const RULE_DESCRIPTION_BYTES_MAX: usize = 200;
/// Bytes of one amount as written in a rule set (`"10000.00"`).
pub const RULE_AMOUNT_TEXT_BYTES_MAX: usize = 32;
/// Highest `payments_per_minute` a rule may set; also the most payment times an
/// account's counters keep.
pub const PAYMENTS_PER_MINUTE_MAX: u32 = 120;
/// The window `payments_per_minute` counts over: payments in `(now - 60 s, now]`.
pub const PAYMENT_WINDOW: Timestamp = Timestamp::from_nanos(60 * NANOS_PER_SECOND);
/// Rollout buckets: an account is in a rollout of `share_bps` when its bucket
/// (`rules::rollout_bucket`) is below `share_bps`.
pub const ROLLOUT_BUCKETS: u16 = 10_000;
/// Payments held for review at once; past it, a payment that would be held is
/// rejected with `CapacityExceeded`.
pub const REVIEW_HOLDS_PENDING_MAX: usize = 65_536;
/// Review holds remembered at once, pending and decided.
pub const REVIEW_HOLDS_MAX: usize = 1_048_576;
/// A decided review hold is remembered this long (command time) after its decision,
/// so that a repeated decision replays instead of failing.
pub const REVIEW_DECISION_RETENTION: Timestamp = IDEMPOTENCY_RETENTION;

const _: () = assert!(PAYMENTS_PER_MINUTE_MAX as usize <= 1024);
const _: () = assert!(REVIEW_HOLDS_PENDING_MAX <= REVIEW_HOLDS_MAX);
/// Markets (legs) a cross-border route may chain: at most `ROUTE_HOPS_MAX - 1`
/// intermediate currencies between what the payer sends and what the payee receives.
pub const ROUTE_HOPS_MAX: usize = 3;
/// Routes one cross-border command considers: the simple paths within its hop limit,
/// in depth-first order by market id. Paths past this count are not considered (a
/// bound only a configuration with hundreds of markets per currency reaches).
pub const ROUTES_CONSIDERED_MAX: usize = 1024;
/// Runners-up a quote reports beside the route it chose.
pub const QUOTE_RUNNERS_UP_MAX: usize = 3;
/// Quotes held at once, open or used, until they expire; past it, new quotes are
/// rejected with `CapacityExceeded` until old ones expire.
pub const QUOTES_MAX: usize = 1024 * 1024;
/// Longest a quote may stay executable.
pub const QUOTE_TTL_MAX: Timestamp = Timestamp::from_nanos(300 * NANOS_PER_SECOND);

const _: () = assert!(ROUTE_HOPS_MAX >= 1 && ROUTE_HOPS_MAX <= u8::MAX as usize);

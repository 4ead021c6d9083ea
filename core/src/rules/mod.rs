//! Risk and compliance rules as data: a `RuleSet` says, per KYC tier and per account,
//! how much an account may do (order notional, open orders, single payment, daily
//! outflow, payments per minute), from which amount a payment waits for an operator's
//! review, and whom it may not deal with. Operators publish rule sets as numbered,
//! immutable versions and activate, roll out or roll back versions with journaled
//! commands (`engine::rules` keeps them; the engine enforces them).
//!
//! - `compile`: a rule set checked against the asset table, in the form the engine
//!   looks limits up in, and its canonical text.
//! - `diff`: the readable difference of two rule sets.
//!
//! The format (TOML here; the same fields in JSON). Amounts are decimal strings at the
//! asset's scale, keyed by asset code; every field may be left out (no limit):
//!
//! ```toml
//! description = "Q3 limits"
//! blocked_counterparties = [13]        # nobody may pay, or be paid by, account 13
//!
//! [tiers.0]                            # KYC tier 0, and tiers above it not listed
//! max_open_orders = 20
//! payments_per_minute = 5
//! max_order_notional = { USD = "10000.00" }  # per quote asset
//! max_single_payment = { USD = "1000.00" }
//! daily_outflow = { USD = "2000.00" }        # per calendar UTC day of command time
//! review_threshold = { USD = "500.00" }      # above it, a payment waits for review
//!
//! [tiers.2]
//! daily_outflow = { USD = "50000.00" }
//!
//! [accounts.42]                        # replaces its tier's values, field by field
//! daily_outflow = { USD = "250000.00" }
//! blocked_counterparties = [7]         # added to the global and tier lists
//! ```
//!
//! Semantics, all decided by the rules of the version in effect for the account (see
//! `engine::rules`):
//! - A tier not listed uses the nearest listed tier below it; below the lowest listed
//!   tier there are no limits.
//! - An account entry replaces its tier's value field by field, and per asset for the
//!   per-asset fields; blocked lists add up (global ∪ tier ∪ account).
//! - Every limit is "at most": a payment of exactly `max_single_payment`, or that
//!   brings the day's outflow to exactly `daily_outflow`, passes; `review_threshold`
//!   holds payments strictly above it.
//!
//! A `RuleSet` always satisfies the size bounds of `limits` (`RULE_*`): it can only be
//! built through `RuleSet::new`, which deserialization goes through too, so a rule set
//! that reached a command always fits a journal record.

mod compile;
mod diff;

pub use compile::RuleSetError;
pub(crate) use compile::{AccountLimits, CompiledRules, compile};
pub use diff::diff;

use std::collections::BTreeMap;
use std::fmt::{self, Write as _};

use serde::{Deserialize, Serialize};

use crate::ids::{AccountId, KycTier};
use crate::limits::{
    ACCOUNTS_MAX, ASSET_CODE_BYTES_MAX, ORDERS_PER_ACCOUNT_MAX, PAYMENTS_PER_MINUTE_MAX, ROLLOUT_BUCKETS,
    RULE_AMOUNT_ENTRIES_MAX, RULE_AMOUNT_TEXT_BYTES_MAX, RULE_BLOCKED_MAX, RULE_DESCRIPTION_BYTES_MAX,
    RULE_OVERRIDES_MAX,
};

/// Amounts by asset code, as written: `{ USD = "10000.00" }`.
pub type AmountByAsset = BTreeMap<String, String>;

/// The limits of one KYC tier or one account. `None` or a missing asset: no limit.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    /// Resting orders the account may have at once, across all markets.
    #[serde(default)]
    pub max_open_orders: Option<u32>,
    /// Payments (transfers, authorizations, split payments, withdrawals) the account
    /// may make in any 60 seconds of command time.
    #[serde(default)]
    pub payments_per_minute: Option<u32>,
    /// Accounts this one may neither pay nor be paid by.
    #[serde(default)]
    pub blocked_counterparties: Vec<AccountId>,
    /// Largest order, by the quote asset of its market: price × quantity (a market
    /// order: what it would fill at against the book now; a budget: the budget).
    #[serde(default)]
    pub max_order_notional: AmountByAsset,
    /// Largest single payment (a split payment's total).
    #[serde(default)]
    pub max_single_payment: AmountByAsset,
    /// Most money that may leave the account per calendar UTC day of command time:
    /// transfers, authorizations (when authorized), split payments, withdrawals.
    #[serde(default)]
    pub daily_outflow: AmountByAsset,
    /// Payments above this wait, funds held, for an operator's decision.
    #[serde(default)]
    pub review_threshold: AmountByAsset,
}

impl Limits {
    fn amount_maps(&self) -> [(RuleKind, &AmountByAsset); 4] {
        [
            (RuleKind::MaxOrderNotional, &self.max_order_notional),
            (RuleKind::MaxSinglePayment, &self.max_single_payment),
            (RuleKind::DailyOutflow, &self.daily_outflow),
            (RuleKind::ReviewThreshold, &self.review_threshold),
        ]
    }
}

/// The plain fields of a rule set, as an operator writes them (`RuleSet::new` checks
/// them).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleSetData {
    /// Free text for the people reading the history.
    #[serde(default)]
    pub description: String,
    /// Accounts nobody may pay or be paid by, whatever the tier.
    #[serde(default)]
    pub blocked_counterparties: Vec<AccountId>,
    /// Limits by KYC tier (keys `"0"` to `"9"`).
    #[serde(default, with = "tier_keys")]
    pub tiers: BTreeMap<KycTier, Limits>,
    /// Limits of single accounts (keys are account ids), over their tier's.
    #[serde(default, with = "account_keys")]
    pub accounts: BTreeMap<AccountId, Limits>,
}

/// A rule set within every size bound (see the module documentation). Plain data:
/// what it means for money is decided when it is published against the engine's
/// assets (`Engine::validate_rules`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "RuleSetData", into = "RuleSetData")]
pub struct RuleSet {
    data: RuleSetData,
}

impl TryFrom<RuleSetData> for RuleSet {
    type Error = RuleSetError;
    fn try_from(data: RuleSetData) -> Result<Self, Self::Error> {
        RuleSet::new(data)
    }
}

impl From<RuleSet> for RuleSetData {
    fn from(rules: RuleSet) -> Self {
        rules.data
    }
}

impl RuleSet {
    /// Checks every size bound and the range of every count.
    pub fn new(data: RuleSetData) -> Result<Self, RuleSetError> {
        let too_many = |what: &'static str, count: usize, max: usize| {
            if count > max { Err(RuleSetError::TooMany { what, count, max }) } else { Ok(()) }
        };
        too_many("bytes of description", data.description.len(), RULE_DESCRIPTION_BYTES_MAX)?;
        too_many("accounts with limits of their own", data.accounts.len(), RULE_OVERRIDES_MAX)?;
        let limits = || data.tiers.values().chain(data.accounts.values());
        let blocked = data.blocked_counterparties.len()
            + limits().map(|limits| limits.blocked_counterparties.len()).sum::<usize>();
        too_many("blocked counterparties", blocked, RULE_BLOCKED_MAX)?;
        let amounts = limits().flat_map(Limits::amount_maps).map(|(_, map)| map.len()).sum::<usize>();
        too_many("per-asset amounts", amounts, RULE_AMOUNT_ENTRIES_MAX)?;
        let accounts = data.accounts.keys().chain(&data.blocked_counterparties);
        let all_blocked = accounts.chain(limits().flat_map(|limits| &limits.blocked_counterparties));
        if let Some(account) = all_blocked.into_iter().find(|account| account.get() as usize >= ACCOUNTS_MAX) {
            return Err(RuleSetError::BadAccount { account: account.get() });
        }
        for (scope, limits) in data.scopes() {
            for (rule, map) in limits.amount_maps() {
                for (code, text) in map {
                    if code.len() > ASSET_CODE_BYTES_MAX || text.len() > RULE_AMOUNT_TEXT_BYTES_MAX {
                        let (code, text) = (truncated(code), truncated(text));
                        return Err(RuleSetError::BadAmount { scope, rule, code, text, reason: "too long".into() });
                    }
                }
            }
            let bounds = [
                (RuleKind::MaxOpenOrders, limits.max_open_orders, ORDERS_PER_ACCOUNT_MAX),
                (RuleKind::PaymentsPerMinute, limits.payments_per_minute, PAYMENTS_PER_MINUTE_MAX),
            ];
            for (rule, value, max) in bounds {
                if let Some(value) = value.filter(|&value| value > max) {
                    return Err(RuleSetError::AboveMaximum { scope, rule, value, max });
                }
            }
        }
        Ok(Self { data })
    }

    pub fn data(&self) -> &RuleSetData {
        &self.data
    }

    /// Reads a rule set from TOML (see the module documentation).
    pub fn from_toml_str(text: &str) -> Result<Self, RuleSetError> {
        toml::from_str(text).map_err(|error| RuleSetError::Syntax(error.to_string()))
    }

    /// The rule set as TOML, readable by `from_toml_str`: empty fields left out,
    /// amounts as inline tables, tiers before accounts, fields in the order of `Limits`.
    pub fn to_toml_string(&self) -> String {
        let mut text = String::new();
        if !self.data.description.is_empty() {
            let _ = writeln!(text, "description = {}", toml::Value::from(self.data.description.as_str()));
        }
        if !self.data.blocked_counterparties.is_empty() {
            let _ = writeln!(text, "blocked_counterparties = {}", accounts_text(&self.data.blocked_counterparties));
        }
        for (scope, limits) in self.data.scopes() {
            let section = match scope {
                Scope::Tier(tier) => format!("tiers.{}", tier.get()),
                Scope::Account(account) => format!("accounts.{account}"),
            };
            let _ = writeln!(text, "{}[{section}]", if text.is_empty() { "" } else { "\n" });
            write_limits(&mut text, limits);
        }
        text
    }
}

/// An asset code as a TOML key: bare when it can be (every real code), else quoted.
fn key_text(code: &str) -> String {
    let bare =
        !code.is_empty() && code.bytes().all(|byte| byte.is_ascii_alphanumeric() || byte == b'_' || byte == b'-');
    if bare { code.to_owned() } else { toml::Value::from(code).to_string() }
}

fn accounts_text(accounts: &[AccountId]) -> String {
    let ids: Vec<String> = accounts.iter().map(ToString::to_string).collect();
    format!("[{}]", ids.join(", "))
}

fn write_limits(text: &mut String, limits: &Limits) {
    for (rule, value) in
        [(RuleKind::MaxOpenOrders, limits.max_open_orders), (RuleKind::PaymentsPerMinute, limits.payments_per_minute)]
    {
        if let Some(value) = value {
            let _ = writeln!(text, "{rule} = {value}");
        }
    }
    if !limits.blocked_counterparties.is_empty() {
        let _ = writeln!(text, "{} = {}", RuleKind::BlockedCounterparty, accounts_text(&limits.blocked_counterparties));
    }
    for (rule, map) in limits.amount_maps() {
        if !map.is_empty() {
            let entries: Vec<String> = map
                .iter()
                .map(|(code, amount)| format!("{} = {}", key_text(code), toml::Value::from(amount.as_str())))
                .collect();
            let _ = writeln!(text, "{rule} = {{ {} }}", entries.join(", "));
        }
    }
}

impl RuleSetData {
    /// Every tier's and every account's limits, tiers first.
    fn scopes(&self) -> impl Iterator<Item = (Scope, &Limits)> {
        let tiers = self.tiers.iter().map(|(tier, limits)| (Scope::Tier(*tier), limits));
        tiers.chain(self.accounts.iter().map(|(account, limits)| (Scope::Account(*account), limits)))
    }
}

fn truncated(text: &str) -> String {
    let mut end = text.len().min(40);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_owned()
}

/// Whose limits: a KYC tier's or one account's.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Scope {
    Tier(KycTier),
    Account(AccountId),
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Scope::Tier(tier) => write!(f, "tier {}", tier.get()),
            Scope::Account(account) => write!(f, "account {account}"),
        }
    }
}

/// Which rule made a decision: named in `Event::RuleViolated` and
/// `Event::HeldForReview`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum RuleKind {
    MaxOrderNotional,
    MaxOpenOrders,
    MaxSinglePayment,
    DailyOutflow,
    PaymentsPerMinute,
    ReviewThreshold,
    BlockedCounterparty,
}

impl RuleKind {
    /// Every rule, in declaration order: `ALL[rule as usize] == rule`.
    pub const ALL: [RuleKind; 7] = [
        RuleKind::MaxOrderNotional,
        RuleKind::MaxOpenOrders,
        RuleKind::MaxSinglePayment,
        RuleKind::DailyOutflow,
        RuleKind::PaymentsPerMinute,
        RuleKind::ReviewThreshold,
        RuleKind::BlockedCounterparty,
    ];

    /// The field's name in a rule set (`daily_outflow`); `blocked_counterparties` for
    /// a blocked counterparty.
    pub fn name(self) -> &'static str {
        match self {
            RuleKind::MaxOrderNotional => "max_order_notional",
            RuleKind::MaxOpenOrders => "max_open_orders",
            RuleKind::MaxSinglePayment => "max_single_payment",
            RuleKind::DailyOutflow => "daily_outflow",
            RuleKind::PaymentsPerMinute => "payments_per_minute",
            RuleKind::ReviewThreshold => "review_threshold",
            RuleKind::BlockedCounterparty => "blocked_counterparties",
        }
    }
}

impl fmt::Display for RuleKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The rollout bucket of an account, `0..limits::ROLLOUT_BUCKETS`: a fixed hash of its
/// id alone, so an account is in the same bucket for every version, every rollout and
/// every replay. A rollout of `share_bps` reaches the accounts whose bucket is below it.
pub fn rollout_bucket(account: AccountId) -> u16 {
    const SEED: u64 = 0x6275_636b_6574_7331; // "buckets1"
    let hash = xxhash_rust::xxh3::xxh3_64_with_seed(&account.get().to_le_bytes(), SEED);
    (hash % u64::from(ROLLOUT_BUCKETS)) as u16
}

/// Map keys as strings (`"3"`), the one key type TOML, JSON and postcard all carry.
macro_rules! string_keys {
    ($module:ident, $key:ty, $parse:expr, $show:expr, $what:literal) => {
        mod $module {
            use std::collections::BTreeMap;

            use serde::de::Error as _;
            use serde::{Deserialize, Deserializer, Serializer};

            use super::Limits;

            pub(super) fn serialize<S: Serializer>(
                map: &BTreeMap<$key, Limits>,
                serializer: S,
            ) -> Result<S::Ok, S::Error> {
                let show: fn(&$key) -> String = $show;
                serializer.collect_map(map.iter().map(|(key, limits)| (show(key), limits)))
            }

            pub(super) fn deserialize<'de, D: Deserializer<'de>>(
                deserializer: D,
            ) -> Result<BTreeMap<$key, Limits>, D::Error> {
                let parse: fn(&str) -> Option<$key> = $parse;
                let raw = BTreeMap::<String, Limits>::deserialize(deserializer)?;
                let mut map = BTreeMap::new();
                for (text, limits) in raw {
                    let key =
                        parse(&text).ok_or_else(|| D::Error::custom(format!(concat!("{:?} is not ", $what), text)))?;
                    if map.insert(key, limits).is_some() {
                        return Err(D::Error::custom(format!(concat!($what, " {} is listed twice"), text)));
                    }
                }
                Ok(map)
            }
        }
    };
}

string_keys!(
    tier_keys,
    crate::ids::KycTier,
    |text| text.parse::<u8>().ok().and_then(crate::ids::KycTier::new),
    |tier| tier.get().to_string(),
    "a KYC tier (0 to 9)"
);
string_keys!(
    account_keys,
    crate::ids::AccountId,
    |text| text.parse::<u32>().ok().map(crate::ids::AccountId::new),
    |account| account.get().to_string(),
    "an account id"
);

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = r#"
description = "Q3 limits"
blocked_counterparties = [13]

[tiers.0]
max_open_orders = 20
payments_per_minute = 5
max_order_notional = { USD = "10000.00" }
max_single_payment = { USD = "1000.00" }
daily_outflow = { USD = "2000.00" }
review_threshold = { USD = "500.00" }

[tiers.2]
daily_outflow = { USD = "50000.00" }

[accounts.42]
daily_outflow = { USD = "250000.00" }
blocked_counterparties = [7]
"#;

    #[test]
    fn the_documented_example_reads_and_prints_back() {
        let rules = RuleSet::from_toml_str(EXAMPLE).unwrap();
        let data = rules.data();
        assert_eq!(data.description, "Q3 limits");
        assert_eq!(data.blocked_counterparties, [AccountId::new(13)]);
        let tier0 = &data.tiers[&KycTier::new(0).unwrap()];
        assert_eq!(tier0.max_open_orders, Some(20));
        assert_eq!(tier0.daily_outflow["USD"], "2000.00");
        assert_eq!(data.accounts[&AccountId::new(42)].blocked_counterparties, [AccountId::new(7)]);
        let printed = rules.to_toml_string();
        assert_eq!(RuleSet::from_toml_str(&printed).unwrap(), rules, "{printed}");
        let expected = "description = \"Q3 limits\"\nblocked_counterparties = [13]\n\n[tiers.0]\nmax_open_orders = 20\n\
            payments_per_minute = 5\nmax_order_notional = { USD = \"10000.00\" }\nmax_single_payment = { USD = \"1000.00\" }\n\
            daily_outflow = { USD = \"2000.00\" }\nreview_threshold = { USD = \"500.00\" }\n\n[tiers.2]\n\
            daily_outflow = { USD = \"50000.00\" }\n\n[accounts.42]\nblocked_counterparties = [7]\n\
            daily_outflow = { USD = \"250000.00\" }\n";
        assert_eq!(printed, expected);
        let odd =
            RuleSet::from_toml_str("description = 'say \"hi\"'\n[tiers.1]\nreview_threshold = { \"U S\" = \"1\" }")
                .unwrap();
        assert_eq!(RuleSet::from_toml_str(&odd.to_toml_string()).unwrap(), odd, "quotes survive the round trip");
    }

    #[test]
    fn typos_and_bad_keys_are_errors_not_silence() {
        let typo = RuleSet::from_toml_str("[tiers.0]\ndaily_outfow = { USD = \"1\" }");
        assert!(matches!(typo, Err(RuleSetError::Syntax(ref message)) if message.contains("daily_outfow")), "{typo:?}");
        let tier = RuleSet::from_toml_str("[tiers.10]\nmax_open_orders = 1");
        assert!(matches!(tier, Err(RuleSetError::Syntax(ref message)) if message.contains("KYC tier")), "{tier:?}");
        let twice = RuleSet::from_toml_str("[tiers.1]\nmax_open_orders = 1\n[tiers.01]\nmax_open_orders = 2");
        assert!(matches!(twice, Err(RuleSetError::Syntax(ref message)) if message.contains("twice")), "{twice:?}");
        let account = RuleSet::from_toml_str("[accounts.x]\nmax_open_orders = 1");
        assert!(account.is_err());
    }

    #[test]
    fn every_size_bound_is_checked() {
        let mut data =
            RuleSetData { description: "x".repeat(RULE_DESCRIPTION_BYTES_MAX + 1), ..RuleSetData::default() };
        assert!(matches!(RuleSet::new(data.clone()), Err(RuleSetError::TooMany { .. })));
        data.description.clear();
        data.blocked_counterparties = (0..=RULE_BLOCKED_MAX as u32).map(AccountId::new).collect();
        assert!(matches!(
            RuleSet::new(data.clone()),
            Err(RuleSetError::TooMany { what: "blocked counterparties", .. })
        ));
        data.blocked_counterparties.clear();
        data.accounts = (0..=RULE_OVERRIDES_MAX as u32).map(|id| (AccountId::new(id), Limits::default())).collect();
        assert!(matches!(RuleSet::new(data.clone()), Err(RuleSetError::TooMany { .. })));
        data.accounts.clear();
        let mut limits = Limits { payments_per_minute: Some(PAYMENTS_PER_MINUTE_MAX + 1), ..Limits::default() };
        data.tiers.insert(KycTier::new(0).unwrap(), limits.clone());
        assert!(matches!(RuleSet::new(data.clone()), Err(RuleSetError::AboveMaximum { .. })));
        limits.payments_per_minute = Some(PAYMENTS_PER_MINUTE_MAX);
        limits.daily_outflow.insert("USD".into(), "1".repeat(RULE_AMOUNT_TEXT_BYTES_MAX + 1));
        data.tiers.insert(KycTier::new(0).unwrap(), limits.clone());
        assert!(matches!(RuleSet::new(data.clone()), Err(RuleSetError::BadAmount { .. })));
        limits.daily_outflow.clear();
        limits.review_threshold =
            (0..=RULE_AMOUNT_ENTRIES_MAX).map(|index| (format!("A{index}"), "1".into())).collect();
        data.tiers.insert(KycTier::new(0).unwrap(), limits);
        assert!(matches!(RuleSet::new(data.clone()), Err(RuleSetError::TooMany { what: "per-asset amounts", .. })));
        data.tiers.clear();
        data.blocked_counterparties = vec![AccountId::new(ACCOUNTS_MAX as u32)];
        assert!(matches!(RuleSet::new(data), Err(RuleSetError::BadAccount { .. })));
    }

    #[test]
    fn buckets_are_fixed_and_spread() {
        let buckets: Vec<u16> = (0..20_000).map(|id| rollout_bucket(AccountId::new(id))).collect();
        assert!(buckets.iter().all(|&bucket| bucket < ROLLOUT_BUCKETS));
        // The same account, the same bucket, always: a fixed hash with a fixed seed. These
        // values are pinned: changing them would move accounts between rollouts on upgrade.
        assert_eq!([buckets[0], buckets[1], buckets[12_345]], [2003, 4497, 2308]);
        let below_half = buckets.iter().filter(|&&bucket| bucket < 5_000).count();
        assert!((9_400..=10_600).contains(&below_half), "{below_half} of 20000 below 50%");
    }
}

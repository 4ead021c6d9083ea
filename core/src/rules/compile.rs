//! A rule set checked against the engine's assets: asset codes resolved to ids,
//! amounts parsed at each asset's scale, tiers filled in from the nearest listed tier
//! below, blocked lists sorted. This is what the engine looks limits up in, without
//! allocating, on every payment and order.
//!
//! Compiling also gives the rule set's canonical text (amounts at the asset's scale,
//! blocked lists sorted and without repeats): what the engine stores and prints.

use rustc_hash::FxHashMap;
use smallvec::SmallVec;
use thiserror::Error;

use super::{AmountByAsset, Limits, RuleKind, RuleSet, RuleSetData, Scope};
use crate::asset::AssetTable;
use crate::ids::{AccountId, AssetId, KycTier};
use crate::limits::KYC_TIER_MAX;
use crate::money::Amount;

/// What is wrong with a rule set.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum RuleSetError {
    #[error("the rule set does not parse: {0}")]
    Syntax(String),
    #[error("{count} {what}: at most {max} are allowed")]
    TooMany { what: &'static str, count: usize, max: usize },
    #[error("account {account} is not an account id")]
    BadAccount { account: u32 },
    #[error("{scope}: {rule} {value} is above the maximum of {max}")]
    AboveMaximum { scope: Scope, rule: RuleKind, value: u32, max: u32 },
    #[error("{scope}: {rule} names asset {code:?}, which the engine does not have")]
    UnknownAsset { scope: Scope, rule: RuleKind, code: String },
    #[error("{scope}: {rule} {code} {text:?}: {reason}")]
    BadAmount { scope: Scope, rule: RuleKind, code: String, text: String, reason: String },
}

/// Amounts by asset id, few enough to scan.
type Amounts = SmallVec<[(AssetId, Amount); 2]>;

/// One tier's or one account's limits, resolved.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct CompiledLimits {
    pub(crate) max_open_orders: Option<u32>,
    pub(crate) payments_per_minute: Option<u32>,
    /// Sorted, without repeats.
    pub(crate) blocked: Vec<AccountId>,
    pub(crate) max_order_notional: Amounts,
    pub(crate) max_single_payment: Amounts,
    pub(crate) daily_outflow: Amounts,
    pub(crate) review_threshold: Amounts,
}

impl CompiledLimits {
    pub(crate) fn amounts(&self, rule: RuleKind) -> &[(AssetId, Amount)] {
        match rule {
            RuleKind::MaxOrderNotional => &self.max_order_notional,
            RuleKind::MaxSinglePayment => &self.max_single_payment,
            RuleKind::DailyOutflow => &self.daily_outflow,
            RuleKind::ReviewThreshold => &self.review_threshold,
            RuleKind::MaxOpenOrders | RuleKind::PaymentsPerMinute | RuleKind::BlockedCounterparty => &[],
        }
    }

    pub(crate) fn count(&self, rule: RuleKind) -> Option<u32> {
        match rule {
            RuleKind::MaxOpenOrders => self.max_open_orders,
            RuleKind::PaymentsPerMinute => self.payments_per_minute,
            _ => None,
        }
    }

    pub(crate) fn amount(&self, rule: RuleKind, asset: AssetId) -> Option<Amount> {
        self.amounts(rule).iter().find(|(candidate, _)| *candidate == asset).map(|&(_, amount)| amount)
    }

    pub(crate) fn blocks(&self, account: AccountId) -> bool {
        self.blocked.binary_search(&account).is_ok()
    }
}

/// A rule set ready for the engine.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct CompiledRules {
    /// Blocked for everyone; sorted.
    blocked: Vec<AccountId>,
    /// Per KYC tier: the index in `tier_limits` of the nearest listed tier at or below.
    tier_index: [Option<u8>; KYC_TIER_MAX as usize + 1],
    tier_limits: Vec<CompiledLimits>,
    overrides: FxHashMap<AccountId, CompiledLimits>,
}

impl CompiledRules {
    /// The limits that apply to `account` at `tier`, looked up once (the tier's index
    /// and the probe for its own limits): what every check of one command asks.
    #[inline]
    pub(crate) fn limits_for(&self, account: AccountId, tier: KycTier) -> AccountLimits<'_> {
        let tier = self.tier_index[usize::from(tier.get())].map(|index| &self.tier_limits[usize::from(index)]);
        AccountLimits { blocked: &self.blocked, tier, own: self.overrides.get(&account) }
    }
}

/// The limits of one account at one tier, resolved: the global blocked list, its
/// tier's limits and its own, if any.
#[derive(Clone, Copy, Debug)]
pub(crate) struct AccountLimits<'a> {
    blocked: &'a [AccountId],
    tier: Option<&'a CompiledLimits>,
    own: Option<&'a CompiledLimits>,
}

impl AccountLimits<'_> {
    /// The limit `rule` sets on `asset`: the account's own value if it has one for the
    /// asset, else its tier's.
    pub(crate) fn amount(&self, rule: RuleKind, asset: AssetId) -> Option<Amount> {
        let own = self.own.and_then(|own| own.amount(rule, asset));
        own.or_else(|| self.tier.and_then(|tier| tier.amount(rule, asset)))
    }

    /// The count `rule` allows (`MaxOpenOrders`, `PaymentsPerMinute`).
    pub(crate) fn count(&self, rule: RuleKind) -> Option<u32> {
        self.own.and_then(|own| own.count(rule)).or_else(|| self.tier.and_then(|tier| tier.count(rule)))
    }

    /// Whether the account may not deal with `counterparty`: the global, tier and
    /// account lists together.
    pub(crate) fn blocks(&self, counterparty: AccountId) -> bool {
        self.blocked.binary_search(&counterparty).is_ok()
            || self.tier.is_some_and(|tier| tier.blocks(counterparty))
            || self.own.is_some_and(|own| own.blocks(counterparty))
    }
}

/// Checks `rules` against `assets`: returns the canonical rule set and its compiled form.
pub(crate) fn compile(rules: &RuleSet, assets: &AssetTable) -> Result<(RuleSet, CompiledRules), RuleSetError> {
    let data = rules.data();
    let mut canonical = RuleSetData {
        description: data.description.clone(),
        blocked_counterparties: sorted(&data.blocked_counterparties),
        ..RuleSetData::default()
    };
    let mut compiled = CompiledRules { blocked: canonical.blocked_counterparties.clone(), ..CompiledRules::default() };
    for (tier, limits) in &data.tiers {
        let (text, limits) = compile_limits(Scope::Tier(*tier), limits, assets)?;
        canonical.tiers.insert(*tier, text);
        let index = compiled.tier_limits.len() as u8;
        compiled.tier_limits.push(limits);
        // Every tier from this one up, until the next listed tier overwrites it.
        for slot in &mut compiled.tier_index[usize::from(tier.get())..] {
            *slot = Some(index);
        }
    }
    for (account, limits) in &data.accounts {
        let (text, limits) = compile_limits(Scope::Account(*account), limits, assets)?;
        canonical.accounts.insert(*account, text);
        compiled.overrides.insert(*account, limits);
    }
    let canonical = RuleSet::new(canonical).expect("canonical text is no larger than what it came from");
    Ok((canonical, compiled))
}

fn sorted(accounts: &[AccountId]) -> Vec<AccountId> {
    let mut accounts = accounts.to_vec();
    accounts.sort_unstable();
    accounts.dedup();
    accounts
}

fn compile_limits(
    scope: Scope,
    limits: &Limits,
    assets: &AssetTable,
) -> Result<(Limits, CompiledLimits), RuleSetError> {
    let mut text = Limits {
        max_open_orders: limits.max_open_orders,
        payments_per_minute: limits.payments_per_minute,
        blocked_counterparties: sorted(&limits.blocked_counterparties),
        ..Limits::default()
    };
    let mut compiled = CompiledLimits {
        max_open_orders: limits.max_open_orders,
        payments_per_minute: limits.payments_per_minute,
        blocked: text.blocked_counterparties.clone(),
        ..CompiledLimits::default()
    };
    for (rule, map) in limits.amount_maps() {
        let (canonical, amounts) = compile_amounts(scope, rule, map, assets)?;
        match rule {
            RuleKind::MaxOrderNotional => (text.max_order_notional, compiled.max_order_notional) = (canonical, amounts),
            RuleKind::MaxSinglePayment => (text.max_single_payment, compiled.max_single_payment) = (canonical, amounts),
            RuleKind::DailyOutflow => (text.daily_outflow, compiled.daily_outflow) = (canonical, amounts),
            RuleKind::ReviewThreshold => (text.review_threshold, compiled.review_threshold) = (canonical, amounts),
            RuleKind::MaxOpenOrders | RuleKind::PaymentsPerMinute | RuleKind::BlockedCounterparty => {
                unreachable!("amount_maps lists the per-asset rules only")
            }
        }
    }
    Ok((text, compiled))
}

fn compile_amounts(
    scope: Scope,
    rule: RuleKind,
    map: &AmountByAsset,
    assets: &AssetTable,
) -> Result<(AmountByAsset, Amounts), RuleSetError> {
    let mut canonical = AmountByAsset::new();
    let mut amounts = Amounts::new();
    for (code, text) in map {
        let Some((id, asset)) = assets.find(code) else {
            return Err(RuleSetError::UnknownAsset { scope, rule, code: code.clone() });
        };
        let amount = asset.parse_amount(text).map_err(|error| RuleSetError::BadAmount {
            scope,
            rule,
            code: code.clone(),
            text: text.clone(),
            reason: error.to_string(),
        })?;
        canonical.insert(code.clone(), asset.format_amount(amount));
        amounts.push((id, amount));
    }
    amounts.sort_unstable_by_key(|&(asset, _)| asset);
    Ok((canonical, amounts))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    fn assets() -> AssetTable {
        let config = "[[assets]]\ncode = \"USD\"\nscale = 2\n[[assets]]\ncode = \"JPY\"\nscale = 0\n";
        Config::from_toml_str(config).unwrap().assets().clone()
    }

    fn tier(tier: u8) -> KycTier {
        KycTier::new(tier).unwrap()
    }

    #[test]
    fn tiers_inherit_from_below_and_accounts_override_per_field() {
        let rules = RuleSet::from_toml_str(
            r#"
[tiers.1]
daily_outflow = { USD = "100", JPY = "5000" }
max_open_orders = 3
[tiers.4]
daily_outflow = { USD = "1000" }
[accounts.7]
daily_outflow = { USD = "7777.7" }
"#,
        )
        .unwrap();
        let (canonical, compiled) = compile(&rules, &assets()).unwrap();
        let (usd, jpy) = (AssetId::new(0), AssetId::new(1));
        let outflow = |account: u32, at: u8, asset| {
            compiled.limits_for(AccountId::new(account), tier(at)).amount(RuleKind::DailyOutflow, asset)
        };
        assert_eq!(outflow(1, 0, usd), None, "below the lowest listed tier: no limit");
        assert_eq!(outflow(1, 1, usd), Amount::new(10_000));
        assert_eq!(outflow(1, 3, usd), Amount::new(10_000), "tier 3 uses tier 1");
        assert_eq!(outflow(1, 9, usd), Amount::new(100_000), "tier 9 uses tier 4");
        assert_eq!(outflow(1, 9, jpy), None, "tier 4 lists no JPY limit and does not inherit tier 1's");
        assert_eq!(outflow(7, 1, usd), Amount::new(777_770), "the account's own USD limit");
        assert_eq!(outflow(7, 1, jpy), Amount::new(5_000), "JPY still from its tier");
        assert_eq!(compiled.limits_for(AccountId::new(7), tier(2)).count(RuleKind::MaxOpenOrders), Some(3));
        let text = canonical.data();
        assert_eq!(text.tiers[&tier(1)].daily_outflow["USD"], "100.00", "canonical amounts at the asset's scale");
        assert_eq!(text.accounts[&AccountId::new(7)].daily_outflow["USD"], "7777.70");
    }

    #[test]
    fn unknown_assets_and_bad_amounts_are_named() {
        let unknown = RuleSet::from_toml_str("[tiers.0]\nmax_single_payment = { EUR = \"1\" }").unwrap();
        let error = compile(&unknown, &assets()).unwrap_err();
        assert_eq!(error.to_string(), "tier 0: max_single_payment names asset \"EUR\", which the engine does not have");
        let bad = RuleSet::from_toml_str("[accounts.3]\nreview_threshold = { JPY = \"1.5\" }").unwrap();
        let error = compile(&bad, &assets()).unwrap_err();
        assert!(error.to_string().starts_with("account 3: review_threshold JPY \"1.5\""), "{error}");
        let negative = RuleSet::from_toml_str("[tiers.0]\ndaily_outflow = { USD = \"-1\" }").unwrap();
        assert!(matches!(compile(&negative, &assets()), Err(RuleSetError::BadAmount { .. })));
    }

    #[test]
    fn blocked_lists_add_up_and_are_canonical() {
        let rules = RuleSet::from_toml_str(
            "blocked_counterparties = [9, 3, 9]\n[tiers.0]\nblocked_counterparties = [5]\n[accounts.1]\nblocked_counterparties = [6]",
        )
        .unwrap();
        let (canonical, compiled) = compile(&rules, &assets()).unwrap();
        assert_eq!(canonical.data().blocked_counterparties, [AccountId::new(3), AccountId::new(9)]);
        let blocks = |account: u32, other: u32| {
            compiled.limits_for(AccountId::new(account), tier(0)).blocks(AccountId::new(other))
        };
        assert!(blocks(1, 3) && blocks(1, 5) && blocks(1, 6) && blocks(2, 9) && blocks(2, 5));
        assert!(!blocks(2, 6), "account 1's own list is its own");
        assert!(!blocks(2, 4));
    }
}

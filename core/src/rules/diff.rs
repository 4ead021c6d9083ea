//! The readable difference between two rule sets, one line per changed value:
//!
//! ```text
//! description: "Q3 limits" -> "Q4 limits"
//! all accounts: blocked_counterparties +13
//! tier 1: daily_outflow USD 10000.00 -> 20000.00
//! tier 2: max_open_orders (none) -> 50
//! account 42: blocked_counterparties -7
//! ```
//!
//! Amounts are compared by value (`"100"` and `"100.00"` are the same limit) and
//! shown as each side wrote them; `(none)` is "no limit". Tiers, then accounts, in
//! numeric order; fields in the order of `Limits`; assets by code.

use std::collections::{BTreeMap, BTreeSet};

use rust_decimal::Decimal;

use super::{AmountByAsset, Limits, RuleKind, RuleSet, Scope};
use crate::ids::AccountId;

const NONE: &str = "(none)";

/// One line per difference from `before` to `after`; empty when they set the same
/// limits.
pub fn diff(before: &RuleSet, after: &RuleSet) -> Vec<String> {
    let (before, after) = (before.data(), after.data());
    let mut lines = Vec::new();
    if before.description != after.description {
        lines.push(format!("description: {:?} -> {:?}", before.description, after.description));
    }
    blocked_lines("all accounts", &before.blocked_counterparties, &after.blocked_counterparties, &mut lines);
    let scopes = |tiers: &BTreeMap<_, Limits>, accounts: &BTreeMap<_, Limits>| -> BTreeMap<Scope, Limits> {
        let tiers = tiers.iter().map(|(tier, limits)| (Scope::Tier(*tier), limits.clone()));
        tiers.chain(accounts.iter().map(|(account, limits)| (Scope::Account(*account), limits.clone()))).collect()
    };
    let (old, new) = (scopes(&before.tiers, &before.accounts), scopes(&after.tiers, &after.accounts));
    let empty = Limits::default();
    for scope in old.keys().chain(new.keys()).collect::<BTreeSet<_>>() {
        let (was, now) = (old.get(scope).unwrap_or(&empty), new.get(scope).unwrap_or(&empty));
        limits_lines(&scope.to_string(), was, now, &mut lines);
    }
    lines
}

fn limits_lines(scope: &str, was: &Limits, now: &Limits, lines: &mut Vec<String>) {
    let counts = [
        (RuleKind::MaxOpenOrders, was.max_open_orders, now.max_open_orders),
        (RuleKind::PaymentsPerMinute, was.payments_per_minute, now.payments_per_minute),
    ];
    for (rule, was, now) in counts {
        if was != now {
            let show = |value: Option<u32>| value.map_or_else(|| NONE.to_owned(), |value| value.to_string());
            lines.push(format!("{scope}: {rule} {} -> {}", show(was), show(now)));
        }
    }
    blocked_lines(scope, &was.blocked_counterparties, &now.blocked_counterparties, lines);
    for ((rule, was), (_, now)) in was.amount_maps().into_iter().zip(now.amount_maps()) {
        amount_lines(scope, rule, was, now, lines);
    }
}

fn amount_lines(scope: &str, rule: RuleKind, was: &AmountByAsset, now: &AmountByAsset, lines: &mut Vec<String>) {
    for code in was.keys().chain(now.keys()).collect::<BTreeSet<_>>() {
        let (old, new) = (was.get(code), now.get(code));
        let same = match (old, new) {
            (Some(old), Some(new)) => same_amount(old, new),
            (old, new) => old == new,
        };
        if !same {
            let show = |text: Option<&String>| text.map_or(NONE, String::as_str).to_owned();
            lines.push(format!("{scope}: {rule} {code} {} -> {}", show(old), show(new)));
        }
    }
}

fn same_amount(old: &str, new: &str) -> bool {
    match (old.trim().parse::<Decimal>(), new.trim().parse::<Decimal>()) {
        (Ok(old), Ok(new)) => old == new,
        _ => old == new,
    }
}

fn blocked_lines(scope: &str, was: &[AccountId], now: &[AccountId], lines: &mut Vec<String>) {
    let (was, now): (BTreeSet<_>, BTreeSet<_>) = (was.iter().collect(), now.iter().collect());
    let added = now.difference(&was).map(|account| format!("+{account}"));
    let removed = was.difference(&now).map(|account| format!("-{account}"));
    let changes: Vec<String> = added.chain(removed).collect();
    if !changes.is_empty() {
        lines.push(format!("{scope}: {} {}", RuleKind::BlockedCounterparty, changes.join(" ")));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(text: &str) -> RuleSet {
        RuleSet::from_toml_str(text).unwrap()
    }

    #[test]
    fn one_line_per_change_in_a_stable_order() {
        let before = rules(
            r#"
description = "Q3"
blocked_counterparties = [13]
[tiers.1]
daily_outflow = { USD = "10000.00" }
payments_per_minute = 5
[accounts.42]
blocked_counterparties = [7]
"#,
        );
        let after = rules(
            r#"
description = "Q4"
blocked_counterparties = [13, 14]
[tiers.1]
daily_outflow = { USD = "20000.00", JPY = "1000" }
payments_per_minute = 5
[tiers.2]
max_open_orders = 50
"#,
        );
        assert_eq!(
            diff(&before, &after),
            [
                r#"description: "Q3" -> "Q4""#,
                "all accounts: blocked_counterparties +14",
                "tier 1: daily_outflow JPY (none) -> 1000",
                "tier 1: daily_outflow USD 10000.00 -> 20000.00",
                "tier 2: max_open_orders (none) -> 50",
                "account 42: blocked_counterparties -7",
            ]
        );
        assert!(diff(&after, &after).is_empty());
        let reverse = diff(&after, &before);
        assert!(reverse.contains(&"tier 2: max_open_orders 50 -> (none)".to_owned()), "{reverse:?}");
    }

    #[test]
    fn amounts_compare_by_value() {
        let (short, long) = (
            rules("[tiers.0]\nreview_threshold = { USD = \"100\" }"),
            rules("[tiers.0]\nreview_threshold = { USD = \"100.00\" }"),
        );
        assert!(diff(&short, &long).is_empty());
        let other = rules("[tiers.0]\nreview_threshold = { USD = \"100.01\" }");
        assert_eq!(diff(&long, &other), ["tier 0: review_threshold USD 100.00 -> 100.01"]);
    }
}

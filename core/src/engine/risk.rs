//! Enforcement of the rules in effect (`engine::rules`) on payments and orders.
//!
//! Payments (transfers, authorizations, split payments, withdrawals, quote executions
//! and cross-border payments, these on what the payer sends in the source asset; and
//! whatever else sends money out, through `gate_payment` / `record_outflow`) are
//! checked after every other check has passed, in this order, against the payer's
//! rules unless said otherwise:
//! 1. blocked counterparty: the payer's lists name a payee, or a payee's lists (its
//!    own version and tier) name the payer;
//! 2. `max_single_payment` (a split payment's total);
//! 3. `payments_per_minute`;
//! 4. `daily_outflow` (what left today plus this payment);
//! 5. `review_threshold`: a payment above it is held for review (`engine::review`)
//!    instead of made.
//!
//! Orders: `max_order_notional` (by quote asset) and `max_open_orders` (only for an
//! order that may rest), checked after every other check, before anything is held.
//!
//! Quotes move no money: only rule 1 refuses them (`engine::crossborder`).
//!
//! A refusal is `Event::RuleViolated` (rule, version, whose rules) followed by
//! `Rejected { reason: RuleViolation }`. Captures, voids and refunds are not checked:
//! they act on a payment that already passed, or send money back.
//!
//! Cost: with no version in effect, one branch. With one, each command resolves the
//! rules of each account it asks once (`AccountRules`: the version by the rollout
//! bucket's hash, the account's tier, a hash-map probe for its own limits), then a few
//! short scans and binary searches; nothing allocates but an account's first counters
//! (once).

use super::Engine;
use crate::account::Account;
use crate::command::CommandKind;
use crate::event::{Event, RejectReason};
use crate::ids::{AccountId, AssetId, RuleVersion, Timestamp};
use crate::money::Amount;
use crate::rules::{AccountLimits, RuleKind};

/// A rule's decision against a command: which rule, of whose rules, which version.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RuleViolation {
    /// Whose rules decided.
    pub account: AccountId,
    pub rule: RuleKind,
    pub version: RuleVersion,
}

/// The rules in effect for one account, resolved once per command: the version that
/// decides for it and its limits at its tier. Every check of the command asks this.
#[derive(Clone, Copy, Debug)]
struct AccountRules<'a> {
    account: AccountId,
    version: RuleVersion,
    limits: AccountLimits<'a>,
    state: &'a Account,
}

impl AccountRules<'_> {
    fn violation(&self, rule: RuleKind) -> RuleViolation {
        RuleViolation { account: self.account, rule, version: self.version }
    }

    /// The account's lists name `counterparty`.
    fn check_blocked(&self, counterparty: AccountId) -> Result<(), RuleViolation> {
        if self.limits.blocks(counterparty) {
            return Err(self.violation(RuleKind::BlockedCounterparty));
        }
        Ok(())
    }

    /// The payer-side limits on `amount` of `asset` leaving the account at `now`:
    /// single payment, payments per minute, daily outflow.
    fn check_outflow(&self, now: Timestamp, asset: AssetId, amount: Amount) -> Result<(), RuleViolation> {
        let limits = &self.limits;
        if limits.amount(RuleKind::MaxSinglePayment, asset).is_some_and(|max| amount > max) {
            return Err(self.violation(RuleKind::MaxSinglePayment));
        }
        let counters = self.state.risk();
        if let Some(max) = limits.count(RuleKind::PaymentsPerMinute) {
            let recent = counters.map_or(0, |counters| counters.payments_in_window(now));
            if recent >= max as usize {
                return Err(self.violation(RuleKind::PaymentsPerMinute));
            }
        }
        if let Some(max) = limits.amount(RuleKind::DailyOutflow, asset) {
            let today = counters.map_or(Amount::ZERO, |counters| counters.outflow_on(now, asset));
            if today.checked_add(amount).is_none_or(|total| total > max) {
                return Err(self.violation(RuleKind::DailyOutflow));
            }
        }
        Ok(())
    }

    /// `Some` when `amount` of `asset` is above the account's review threshold: the
    /// payment waits for an operator.
    fn review_needed(&self, asset: AssetId, amount: Amount) -> Option<RuleViolation> {
        let threshold = self.limits.amount(RuleKind::ReviewThreshold, asset)?;
        (amount > threshold).then(|| self.violation(RuleKind::ReviewThreshold))
    }
}

impl Engine {
    /// The rules in effect for `account` (an existing account), resolved.
    #[inline]
    fn rules_for(&self, account: AccountId) -> Option<AccountRules<'_>> {
        let (version, rules) = self.rules.version_of(account)?;
        let state = self.ledger.get(account)?;
        Some(AccountRules { account, version, limits: rules.limits_for(account, state.kyc_tier()), state })
    }

    /// Whether `payer` and `payee` may deal with each other: neither's rules block the
    /// other.
    pub(super) fn check_counterparty(&self, payer: AccountId, payee: AccountId) -> Result<(), RuleViolation> {
        self.check_payee(self.rules_for(payer).as_ref(), payer, payee)
    }

    /// `check_counterparty` with the payer's rules already resolved.
    fn check_payee(
        &self,
        payer_rules: Option<&AccountRules<'_>>,
        payer: AccountId,
        payee: AccountId,
    ) -> Result<(), RuleViolation> {
        if let Some(rules) = payer_rules {
            rules.check_blocked(payee)?;
        }
        self.rules_for(payee).map_or(Ok(()), |rules| rules.check_blocked(payer))
    }

    /// Counts `amount` of `asset` leaving `account` now (daily outflow, payments per
    /// minute), once any rule set has been published. Call it when the money leaves
    /// (or is held for review), after `gate_payment` passed.
    pub(crate) fn record_outflow(&mut self, account: AccountId, asset: AssetId, amount: Amount) {
        if !self.rules.counting() {
            return;
        }
        let now = self.now;
        if let Some(state) = self.ledger.get_mut(account) {
            state.risk_mut().record(now, asset, amount);
        }
    }

    /// Takes `amount` of `asset` back off `account`'s outflow of the day of `at` (a held
    /// payment rejected, or made for less than was held), if that day is still the one
    /// counted.
    pub(super) fn take_back_outflow(&mut self, account: AccountId, at: Timestamp, asset: AssetId, amount: Amount) {
        if let Some(state) = self.ledger.get_mut(account) {
            state.risk_mut().give_back(at, asset, amount);
        }
    }

    /// Reports `violation` of a command of `kind` and gives the reason to reject it with.
    pub(crate) fn violated(kind: CommandKind, violation: RuleViolation, out: &mut Vec<Event>) -> RejectReason {
        let RuleViolation { account, rule, version } = violation;
        out.push(Event::RuleViolated { kind, account, rule, version });
        RejectReason::RuleViolation
    }

    /// Every payment rule for `payer` paying `amount` of `asset` to `payees` (none for
    /// a withdrawal). `Ok(Some(review))` when the payment must wait for review.
    pub(super) fn gate_payment(
        &self,
        kind: CommandKind,
        payer: AccountId,
        payees: impl IntoIterator<Item = AccountId>,
        asset: AssetId,
        amount: Amount,
        out: &mut Vec<Event>,
    ) -> Result<Option<RuleViolation>, RejectReason> {
        if !self.rules.any_in_effect() {
            return Ok(None);
        }
        let payer_rules = self.rules_for(payer);
        for payee in payees {
            self.check_payee(payer_rules.as_ref(), payer, payee)
                .map_err(|violation| Self::violated(kind, violation, out))?;
        }
        let Some(rules) = payer_rules else { return Ok(None) };
        rules.check_outflow(self.now, asset, amount).map_err(|violation| Self::violated(kind, violation, out))?;
        Ok(rules.review_needed(asset, amount))
    }

    /// The order rules for `account`: `notional` (computed only if a limit applies)
    /// at most `max_order_notional` of `quote`, and, for an order that may rest, fewer
    /// resting orders than `max_open_orders`.
    pub(super) fn gate_order(
        &self,
        kind: CommandKind,
        account: AccountId,
        quote: AssetId,
        notional: impl FnOnce() -> Option<Amount>,
        rests: bool,
        out: &mut Vec<Event>,
    ) -> Result<(), RejectReason> {
        let Some(rules) = self.rules_for(account) else { return Ok(()) };
        let violation = |rule, out: &mut Vec<Event>| Self::violated(kind, rules.violation(rule), out);
        if let Some(max) = rules.limits.amount(RuleKind::MaxOrderNotional, quote)
            && notional().is_none_or(|notional| notional > max)
        {
            return Err(violation(RuleKind::MaxOrderNotional, out));
        }
        if let Some(max) = rules.limits.count(RuleKind::MaxOpenOrders)
            && rests
            && self.orders.open_count(account.get()) >= max
        {
            return Err(violation(RuleKind::MaxOpenOrders, out));
        }
        Ok(())
    }
}

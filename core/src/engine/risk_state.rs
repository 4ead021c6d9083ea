//! The rules' share of the state rows (`state::EngineState`): rule versions (as
//! canonical TOML, compiled again on rebuild), what is in effect, the change history,
//! the accounts' risk counters and the review holds. Split from `state` to keep each
//! file about one thing; the same contract: rebuild gives the same `state_hash`.

use std::collections::BTreeMap;

use super::Engine;
use super::crossborder::{HeldCrossBorder, HeldQuote};
use super::review::{Decision, HeldPayment, ReviewBook, ReviewHold};
use super::rules::{PublishedVersion, RuleBook, RuleChange, RuleChangeKind};
use super::state::StateError;
use crate::account::Account;
use crate::asset::AssetTable;
use crate::command::{CrossBorderAmount, RateLimit, SplitLeg};
use crate::event::Outcome;
use crate::ids::{AccountId, AssetId, HoldId, QuoteId, Reference, RuleVersion, Seq, Timestamp};
use crate::limits::{ROLLOUT_BUCKETS, ROUTE_HOPS_MAX, SPLIT_LEGS_MAX};
use crate::market::Market;
use crate::money::Amount;
use crate::risk::RiskCounters;
use crate::rules::{RuleSet, compile};
use crate::state::{
    EngineState, ReviewCrossBorderRow, ReviewHoldRow, ReviewLegRow, RiskCounterRow, RiskOutflowRow, RiskPaymentTimeRow,
    RuleChangeRow,
};

fn bad(what: impl Into<String>) -> StateError {
    StateError::new(what)
}

/// The rows of everything rules-related, filled into `state`.
pub(super) fn export(engine: &Engine, state: &mut EngineState) {
    state.rule_versions = engine.rules.versions().map(|published| published.text.clone()).collect();
    state.rules_base = engine.rules.base().get();
    let (rollout_version, rollout_share) =
        engine.rules.rollout().map_or((0, 0), |(version, share)| (version.get(), share));
    (state.rules_rollout_version, state.rules_rollout_share_bps) = (rollout_version, rollout_share);
    state.rule_changes = engine.rules.history().iter().map(change_row).collect();
    for (index, account) in engine.ledger.accounts().iter().enumerate() {
        let Some(counters) = account.risk() else { continue };
        let account = index as u32;
        state.risk_counters.push(RiskCounterRow { account, day: counters.day() });
        state.risk_outflows.extend(counters.outflow().iter().map(|&(asset, amount)| RiskOutflowRow {
            account,
            asset: asset.get(),
            amount: amount.minor_units(),
        }));
        state
            .risk_payment_times
            .extend(counters.payment_times().map(|at| RiskPaymentTimeRow { account, at: at.as_nanos() }));
    }
    for (id, hold) in engine.reviews.iter() {
        state.review_holds.push(hold_row(id, hold));
        if let HeldPayment::Split { legs } = &hold.payment {
            state.review_legs.extend(legs.iter().map(|leg| ReviewLegRow {
                hold: id.get(),
                payee: leg.payee.get(),
                amount: leg.amount.minor_units(),
            }));
        }
        state.review_crossborder.extend(crossborder_row(id, &hold.payment));
    }
    state.next_hold_id = engine.reviews.next_id();
}

fn change_row(change: &RuleChange) -> RuleChangeRow {
    let (kind, version, share_bps, from) = match change.kind {
        RuleChangeKind::Published { version } => (0, version, 0, RuleVersion::NONE),
        RuleChangeKind::Activated { version, share_bps } => (1, version, share_bps, RuleVersion::NONE),
        RuleChangeKind::RolledBack { from, to } => (2, to, 0, from),
    };
    RuleChangeRow {
        seq: change.seq.get(),
        at: change.at.as_nanos(),
        kind,
        version: version.get(),
        share_bps,
        from: from.get(),
    }
}

fn hold_row(id: HoldId, hold: &ReviewHold) -> ReviewHoldRow {
    let (kind, payee, expires_at, reference) = match &hold.payment {
        HeldPayment::Transfer { payee } => (0, payee.get(), 0, String::new()),
        HeldPayment::Authorize { payee, expires_at } => (1, payee.get(), expires_at.as_nanos(), String::new()),
        HeldPayment::Split { .. } => (2, 0, 0, String::new()),
        HeldPayment::Withdraw { reference } => (3, 0, 0, reference.as_str().to_owned()),
        HeldPayment::CrossBorder(payment) => (4, payment.payee.get(), 0, String::new()),
        HeldPayment::ExecuteQuote(quote) => (5, quote.payee.get(), quote.expires_at.as_nanos(), String::new()),
    };
    let (decision, decided_at, (outcome, outcome_value)) = match hold.decision {
        None => (0, 0, (0, 0)),
        Some(decision) => (if decision.approve { 1 } else { 2 }, decision.at.as_nanos(), decision.outcome.code()),
    };
    ReviewHoldRow {
        id: id.get(),
        kind,
        payer: hold.payer.get(),
        payee,
        asset: hold.asset.get(),
        amount: hold.amount.minor_units(),
        expires_at,
        reference,
        version: hold.version.get(),
        created_at: hold.created_at.as_nanos(),
        decision,
        decided_at,
        outcome,
        outcome_value,
    }
}

/// The cross-border terms of a held payment, if it is one.
fn crossborder_row(id: HoldId, payment: &HeldPayment) -> Option<ReviewCrossBorderRow> {
    let empty = ReviewCrossBorderRow {
        hold: id.get(),
        to: 0,
        amount_mode: 0,
        amount: 0,
        limit_mode: 0,
        limit: 0,
        max_hops: 0,
        quote: 0,
        hops: 0,
        markets: [0; ROUTE_HOPS_MAX],
        receive: 0,
    };
    match payment {
        HeldPayment::CrossBorder(payment) => {
            let ((amount_mode, amount), (limit_mode, limit)) = (payment.amount.code(), payment.limit.code());
            let (to, max_hops) = (payment.to.get(), payment.max_hops);
            Some(ReviewCrossBorderRow { to, amount_mode, amount, limit_mode, limit, max_hops, ..empty })
        }
        HeldPayment::ExecuteQuote(quote) => {
            let mut markets = [0; ROUTE_HOPS_MAX];
            for (slot, market) in markets.iter_mut().zip(quote.route.markets()) {
                *slot = market.get();
            }
            let hops = quote.route.hops() as u8;
            let (to, receive) = (quote.to.get(), quote.receive.minor_units());
            Some(ReviewCrossBorderRow { to, quote: quote.quote.get(), hops, markets, receive, ..empty })
        }
        HeldPayment::Transfer { .. }
        | HeldPayment::Authorize { .. }
        | HeldPayment::Split { .. }
        | HeldPayment::Withdraw { .. } => None,
    }
}

/// What a hold's rows say it will do if approved (its split legs and cross-border
/// terms already matched to it).
fn held_payment(
    row: &ReviewHoldRow,
    legs: Vec<SplitLeg>,
    terms: Option<&ReviewCrossBorderRow>,
    (assets, markets, state): (&AssetTable, &[Market], &EngineState),
    known_account: &impl Fn(u32) -> bool,
) -> Result<HeldPayment, String> {
    let payee = AccountId::new(row.payee);
    Ok(match (row.kind, terms) {
        (0 | 1 | 4 | 5, _) if !known_account(row.payee) || row.payee == row.payer => {
            return Err("unknown payee".to_owned());
        }
        (0, _) => HeldPayment::Transfer { payee },
        (1, _) => HeldPayment::Authorize { payee, expires_at: Timestamp::from_nanos(row.expires_at) },
        (2, _) if (1..=SPLIT_LEGS_MAX).contains(&legs.len()) => HeldPayment::Split { legs },
        (3, _) => HeldPayment::Withdraw { reference: Reference::new(&row.reference).ok_or("reference")? },
        (4 | 5, Some(terms)) if assets.contains(AssetId::new(terms.to)) => {
            held_crossborder(row, terms, markets, state.crossborder.next_quote_id)?
        }
        _ => return Err("kind, legs or assets".to_owned()),
    })
}

/// A hold's decision from its row: `None` while pending.
fn decision_of(row: &ReviewHoldRow) -> Result<Option<Decision>, &'static str> {
    match row.decision {
        0 => Ok(None),
        1 | 2 => Ok(Some(Decision {
            approve: row.decision == 1,
            at: Timestamp::from_nanos(row.decided_at),
            outcome: Outcome::from_code(row.outcome, row.outcome_value).ok_or("outcome")?,
        })),
        _ => Err("decision"),
    }
}

/// A held cross-border payment (kind 4) or quote execution (kind 5) from its rows.
fn held_crossborder(
    row: &ReviewHoldRow,
    terms: &ReviewCrossBorderRow,
    markets: &[Market],
    next_quote_id: u64,
) -> Result<HeldPayment, String> {
    let (payee, from, to) = (AccountId::new(row.payee), AssetId::new(row.asset), AssetId::new(terms.to));
    if row.kind == 4 {
        let amount = CrossBorderAmount::from_code(terms.amount_mode, terms.amount).ok_or("cross-border amount")?;
        let limit = RateLimit::from_code(terms.limit_mode, terms.limit).ok_or("cross-border limit")?;
        let max_hops = terms.max_hops;
        if max_hops == 0 || usize::from(max_hops) > ROUTE_HOPS_MAX || from == to {
            return Err("hop limit or assets".to_owned());
        }
        return Ok(HeldPayment::CrossBorder(HeldCrossBorder { payee, to, amount, limit, max_hops }));
    }
    if terms.quote == 0 || terms.quote >= next_quote_id {
        return Err("a quote id not issued".to_owned());
    }
    let route = super::state::restore_route(terms.hops, &terms.markets, (from, to), markets)?;
    let receive = Amount::new(terms.receive).filter(|amount| !amount.is_zero()).ok_or("quote receive")?;
    let (quote, expires_at) = (QuoteId::new(terms.quote), Timestamp::from_nanos(row.expires_at));
    Ok(HeldPayment::ExecuteQuote(HeldQuote { quote, payee, to, route, receive, expires_at }))
}

/// The rule book from its rows: every version compiled again against `assets`.
pub(super) fn restore_rules(state: &EngineState, assets: &AssetTable) -> Result<RuleBook, StateError> {
    let mut versions = Vec::with_capacity(state.rule_versions.len());
    for (index, text) in state.rule_versions.iter().enumerate() {
        let what = |error: String| bad(format!("rule version {}: {error}", index + 1));
        let rules = RuleSet::from_toml_str(text).map_err(|error| what(error.to_string()))?;
        let (rules, compiled) = compile(&rules, assets).map_err(|error| what(error.to_string()))?;
        versions.push(PublishedVersion::new(rules, compiled));
    }
    let published = |version: u32| (1..=versions.len()).contains(&(version as usize));
    let base = RuleVersion::new(state.rules_base);
    if base != RuleVersion::NONE && !published(base.get()) {
        return Err(bad(format!("the base rule version {} was never published", base.get())));
    }
    let rollout = match (state.rules_rollout_version, state.rules_rollout_share_bps) {
        (0, _) => None,
        (version, share) if published(version) && 0 < share && share < ROLLOUT_BUCKETS => {
            Some((RuleVersion::new(version), share))
        }
        (version, share) => return Err(bad(format!("a rollout of rule version {version} to {share} bps"))),
    };
    let history = state.rule_changes.iter().map(|row| change_of(row, &published)).collect::<Result<Vec<_>, _>>()?;
    Ok(RuleBook::restore(versions, base, rollout, history))
}

fn change_of(row: &RuleChangeRow, published: &impl Fn(u32) -> bool) -> Result<RuleChange, StateError> {
    let version = RuleVersion::new(row.version);
    let kind = match row.kind {
        0 if published(row.version) => RuleChangeKind::Published { version },
        1 if published(row.version) => RuleChangeKind::Activated { version, share_bps: row.share_bps },
        2 => RuleChangeKind::RolledBack { from: RuleVersion::new(row.from), to: version },
        _ => {
            return Err(bad(format!(
                "rule change at sequence {} of kind {} names version {}",
                row.seq, row.kind, row.version
            )));
        }
    };
    Ok(RuleChange { seq: Seq::new(row.seq), at: Timestamp::from_nanos(row.at), kind })
}

/// Puts the counters of the rows into `accounts`.
pub(super) fn restore_counters(
    state: &EngineState,
    accounts: &mut [Account],
    assets: &AssetTable,
) -> Result<(), StateError> {
    let mut outflows = state.risk_outflows.iter().peekable();
    let mut times = state.risk_payment_times.iter().peekable();
    let mut previous = None;
    for row in &state.risk_counters {
        if previous.is_some_and(|previous| previous >= row.account) {
            return Err(bad("risk counter rows out of account order"));
        }
        previous = Some(row.account);
        let account = accounts
            .get_mut(row.account as usize)
            .ok_or_else(|| bad(format!("risk counters of unknown account {}", row.account)))?;
        let mut outflow = Vec::new();
        while let Some(entry) = outflows.next_if(|entry| entry.account == row.account) {
            let asset = AssetId::new(entry.asset);
            let amount = Amount::new(entry.amount).ok_or_else(|| bad("risk outflow above AMOUNT_MAX"))?;
            if !assets.contains(asset) || outflow.last().is_some_and(|&(last, _)| last >= asset) {
                return Err(bad(format!(
                    "account {}: risk outflow of asset {} unknown or out of order",
                    row.account, entry.asset
                )));
            }
            outflow.push((asset, amount));
        }
        let mut payments = Vec::new();
        while let Some(entry) = times.next_if(|entry| entry.account == row.account) {
            let at = Timestamp::from_nanos(entry.at);
            if payments.last().is_some_and(|&last| last > at) || at.as_nanos() > state.now {
                return Err(bad(format!("account {}: payment times out of order or in the future", row.account)));
            }
            payments.push(at);
        }
        if payments.len() > crate::limits::PAYMENTS_PER_MINUTE_MAX as usize {
            return Err(bad(format!("account {}: more payment times than kept", row.account)));
        }
        account.set_risk(RiskCounters::restore(row.day, &outflow, &payments));
    }
    if outflows.next().is_some() || times.next().is_some() {
        return Err(bad("risk rows for accounts without counters, or out of order"));
    }
    Ok(())
}

/// The review holds from their rows.
pub(super) fn restore_reviews(
    state: &EngineState,
    assets: &AssetTable,
    markets: &[Market],
    known_account: impl Fn(u32) -> bool,
) -> Result<ReviewBook, StateError> {
    let mut holds = BTreeMap::new();
    let mut legs = state.review_legs.iter().peekable();
    let mut crossborder = state.review_crossborder.iter().peekable();
    for row in &state.review_holds {
        let id = HoldId::new(row.id);
        let what = |problem: &str| bad(format!("review hold {}: {problem}", row.id));
        if row.id == 0 || row.id >= state.next_hold_id || holds.contains_key(&id) {
            return Err(what("id out of range or repeated"));
        }
        if !known_account(row.payer) || !assets.contains(AssetId::new(row.asset)) {
            return Err(what("unknown payer or asset"));
        }
        let amount = Amount::new(row.amount).filter(|amount| !amount.is_zero()).ok_or_else(|| what("amount"))?;
        let mut held_legs = Vec::new();
        while let Some(leg) = legs.next_if(|leg| leg.hold == row.id) {
            let leg_amount =
                Amount::new(leg.amount).filter(|amount| !amount.is_zero()).ok_or_else(|| what("leg amount"))?;
            if !known_account(leg.payee) {
                return Err(what("unknown leg payee"));
            }
            held_legs.push(SplitLeg { payee: AccountId::new(leg.payee), amount: leg_amount });
        }
        let legs_total = held_legs.iter().try_fold(Amount::ZERO, |total, leg| total.checked_add(leg.amount));
        if (row.kind == 2) == held_legs.is_empty() || (row.kind == 2 && legs_total != Some(amount)) {
            return Err(what("legs that do not belong to it or do not add up to its amount"));
        }
        let terms = crossborder.next_if(|terms| terms.hold == row.id);
        if matches!(row.kind, 4 | 5) != terms.is_some() {
            return Err(what("cross-border terms that do not belong to it"));
        }
        let payment = held_payment(row, held_legs, terms, (assets, markets, state), &known_account)
            .map_err(|problem| what(&problem))?;
        let decision = decision_of(row).map_err(what)?;
        let version = RuleVersion::new(row.version);
        let created_at = Timestamp::from_nanos(row.created_at);
        holds.insert(
            id,
            ReviewHold {
                payment,
                payer: AccountId::new(row.payer),
                asset: AssetId::new(row.asset),
                amount,
                version,
                created_at,
                decision,
            },
        );
    }
    if legs.next().is_some() || crossborder.next().is_some() {
        return Err(bad("review legs or cross-border terms of unknown holds, or out of order"));
    }
    if state.next_hold_id == 0 {
        return Err(bad("hold ids start at 1"));
    }
    Ok(ReviewBook::restore(holds, state.next_hold_id))
}

//! Handlers for cross-border payments: quote, execute a quote, pay in one command.
//!
//! The payer holds what a leg spends → the market actor matches it as a taker (normal
//! `Trade` and `BookChanged` events, maker fees to the makers, the taker fee of the
//! payer's tier per leg) → the next leg spends what the last one gave → the payee is
//! credited. All legs or none, and without a scratch copy or a rollback: a route is
//! priced first by a read-only walk of its books (`routing`), which gives exactly what
//! the fills will (the same walk order, the same per-fill fee rounding), and the books
//! of one route are distinct markets, so no leg changes what another leg walked. Every
//! check is made against that plan before the first ledger call; applying it cannot
//! fail, and asserts that each leg moved exactly what was planned.
//!
//! Rounding (DESIGN §2): lots are whole, so a leg may give a little more than the next
//! leg (or the payee) takes; that remainder, and the surplus of an executed quote whose
//! route got cheaper, go to the house's remainder account of that asset (kept apart
//! from fees, shown by `reconcile`), never to the payee and never dropped. The payee
//! gets exactly the quoted or planned amount; fees are the schedule's, rounded down.
//!
//! Rules (`engine::risk`): `ExecuteQuote` and `PayCrossBorder` are payments like the
//! others. Once every other check has passed (the quote, the accounts, the funds, the
//! route and its limit), and before the first ledger call, `gate_payment` asks the
//! payer's and payee's rules, on the amount the payer sends in the source asset (the
//! quote's send, or the plan's): blocked counterparty both ways, `max_single_payment`,
//! `payments_per_minute`, `daily_outflow` (one counter with withdrawals and transfers),
//! then `review_threshold`. The money that moves is counted with `record_outflow`.
//! `QuotePayment` moves nothing, so only a blocked counterparty refuses it, early
//! (after the shape, the accounts and the quote table's room, before routing): a quote
//! that could never be executed is not issued.
//!
//! Review: a payment above the threshold is held (`engine::review`), not made. What is
//! held is the most its approval may send, in the source asset:
//! - `ExecuteQuote`: the quote's send. The quote is marked used at once, so it cannot
//!   be executed a second time beside the hold, and stays used if the hold is rejected.
//!   Its terms (route, amounts, expiry) are kept in the hold, because the quote table
//!   forgets the quote at its expiry.
//! - `PayCrossBorder` under `MaxSend(most)`: `most` (no more than a `Send` amount
//!   offered, nor the payer's available balance; never less than the plan needs now).
//! - `PayCrossBorder` under `MinReceive`: what the plan needs now. The hold is then
//!   the payment's send limit too.
//!
//! The rules are asked on what the plan sends now; what is held counts in the day's
//! outflow (and as one payment) while it waits, like any held payment, so a `MaxSend`
//! hold counts up to its limit until the decision gives back what was not sent.
//!
//! Approval plans again on the books of the decision (`plan_held_payment`,
//! `plan_held_quote`), under the original protection: the quote's exact amounts on its
//! route until its expiry (after it, `QuoteExpired`), or the route choice of a
//! `PayCrossBorder` under its limit and within the hold. Applying the plan first
//! releases the hold, then pays as any cross-border payment; what it did not send stays
//! available and is taken off the day's outflow it was counted in. A plan that cannot
//! be made now rejects the decision with its reason (`RateMoved` after its event,
//! `InsufficientLiquidity`, `NoRoute`, `QuoteExpired`, `AccountFrozen`…) and changes
//! nothing: the hold stays pending.

use super::payments::{PaymentKind, PaymentRecord, PaymentState};
use super::review::HeldPayment;
use super::routing::{Plan, Planner, Routed, SELECTED_MAX, Selection, Target};
use super::settle::{Settlement, TakerFunds, hold_asset};
use super::{Engine, Reviewed};
use crate::book::{MarketId, MatchEnd, OrderId, SelfTradePrevention, Side, Taker, take};
use crate::command::{CommandKind, CrossBorderAmount, ExecuteQuote, PayCrossBorder, QuotePayment, RateLimit};
use crate::event::{Event, Outcome, RejectReason};
use crate::ids::{AccountId, AssetId, KycTier, PaymentId, QuoteId, Timestamp};
use crate::market::Market;
use crate::money::Amount;
use crate::route::Route;

use super::quotes::{Lookup, Quote};

/// Who pays whom, from what into what.
#[derive(Clone, Copy, Debug)]
struct Parties {
    payer: AccountId,
    payee: AccountId,
    from: AssetId,
    to: AssetId,
}

/// A `PayCrossBorder` held for review: what routing it again needs. The payer, the
/// source asset and the amount held are the hold's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct HeldCrossBorder {
    pub(crate) payee: AccountId,
    pub(crate) to: AssetId,
    pub(crate) amount: CrossBorderAmount,
    pub(crate) limit: RateLimit,
    /// The hop limit in force when it was held (the command's, or the default then).
    pub(crate) max_hops: u8,
}

/// An `ExecuteQuote` held for review: the quote's terms. Its send is the amount held.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct HeldQuote {
    pub(crate) quote: QuoteId,
    pub(crate) payee: AccountId,
    pub(crate) to: AssetId,
    pub(crate) route: Route,
    pub(crate) receive: Amount,
    pub(crate) expires_at: Timestamp,
}

/// A held cross-border payment planned on the books of the decision, ready to make.
#[derive(Clone, Copy, Debug)]
pub(super) struct HeldPlan {
    parties: Parties,
    tier: KycTier,
    plan: Plan,
    surplus: Amount,
    quote: Option<QuoteId>,
}

impl Engine {
    pub(super) fn quote_payment(&mut self, command: &QuotePayment, out: &mut Vec<Event>) {
        if let Err(reason) = self.try_quote_payment(command, out) {
            out.push(Event::Rejected { kind: CommandKind::QuotePayment, reason });
        }
    }

    fn try_quote_payment(&mut self, command: &QuotePayment, out: &mut Vec<Event>) -> Result<(), RejectReason> {
        command.check()?;
        let parties = Parties { payer: command.by, payee: command.payee, from: command.from, to: command.to };
        let tier = self.require_parties(parties)?;
        if !self.quotes.has_room() {
            return Err(RejectReason::CapacityExceeded);
        }
        // The only rule a quote is asked: it moves no money (see the module documentation).
        self.check_counterparty(parties.payer, parties.payee)
            .map_err(|violation| Self::violated(CommandKind::QuotePayment, violation, out))?;
        let max_hops = command.max_hops.unwrap_or(self.crossborder.max_hops);
        let target = target(command.amount);
        let selection = match self.route(parties, tier, target, max_hops, SELECTED_MAX, |_| true) {
            Routed::Chosen(selection) => selection,
            Routed::NoRoute => return Err(RejectReason::NoRoute),
            Routed::NoLiquidity | Routed::Limit(_) => return Err(RejectReason::InsufficientLiquidity),
        };
        let ttl = command.ttl.unwrap_or(self.crossborder.quote_ttl);
        let expires_at = self.now.saturating_add(ttl);
        let best = *selection.best();
        let quote = self.quotes.insert(Quote {
            payer: parties.payer,
            payee: parties.payee,
            from: parties.from,
            to: parties.to,
            route: best.route,
            send: best.send,
            receive: best.receive,
            expires_at,
            used: false,
        });
        push_quote_events(quote, parties, &selection, expires_at, out);
        Ok(())
    }

    pub(super) fn execute_quote(&mut self, command: &ExecuteQuote, out: &mut Vec<Event>) -> Reviewed {
        command.check()?;
        let quote = match self.quotes.lookup(command.quote) {
            Lookup::Live(quote) if quote.payer == command.by => quote,
            Lookup::Live(_) | Lookup::Unknown => return Err(RejectReason::UnknownQuote),
            Lookup::Expired => return Err(RejectReason::QuoteExpired),
        };
        if quote.used {
            return Err(RejectReason::QuoteUsed);
        }
        let parties = Parties { payer: quote.payer, payee: quote.payee, from: quote.from, to: quote.to };
        let tier = self.require_parties(parties)?;
        self.require_funds(parties.payer, parties.from, quote.send)?;
        if !self.payments.has_room(1) {
            return Err(RejectReason::CapacityExceeded);
        }
        let (plan, surplus) = self.plan_quote(parties, tier, quote.route, quote.send, quote.receive, out)?;
        let kind = CommandKind::ExecuteQuote;
        if let Some(review) = self.gate_payment(kind, parties.payer, [parties.payee], parties.from, quote.send, out)? {
            let (payee, to, route, receive, expires_at) =
                (quote.payee, quote.to, quote.route, quote.receive, quote.expires_at);
            let held =
                HeldPayment::ExecuteQuote(HeldQuote { quote: command.quote, payee, to, route, receive, expires_at });
            let outcome = self.hold_for_review(held, parties.payer, parties.from, quote.send, review, out)?;
            self.quotes.mark_used(command.quote);
            return Ok(outcome);
        }
        self.record_outflow(parties.payer, parties.from, quote.send);
        let payment = self.pay_along(parties, tier, &plan, surplus, Some(command.quote), out);
        self.quotes.mark_used(command.quote);
        Ok(Outcome::Accepted { payment: Some(payment) })
    }

    pub(super) fn pay_cross_border(&mut self, command: &PayCrossBorder, out: &mut Vec<Event>) -> Reviewed {
        command.check()?;
        let parties = Parties { payer: command.by, payee: command.payee, from: command.from, to: command.to };
        let tier = self.require_parties(parties)?;
        if !self.payments.has_room(1) {
            return Err(RejectReason::CapacityExceeded);
        }
        let max_hops = command.max_hops.unwrap_or(self.crossborder.max_hops);
        let plan = self.plan_direct(parties, tier, target(command.amount), (command.limit, None), max_hops, out)?;
        self.require_funds(parties.payer, parties.from, plan.send)?;
        let kind = CommandKind::PayCrossBorder;
        if let Some(review) = self.gate_payment(kind, parties.payer, [parties.payee], parties.from, plan.send, out)? {
            let held = self.amount_to_hold(command, plan.send);
            let (payee, to, amount, limit) = (command.payee, command.to, command.amount, command.limit);
            let payment = HeldPayment::CrossBorder(HeldCrossBorder { payee, to, amount, limit, max_hops });
            return self.hold_for_review(payment, parties.payer, parties.from, held, review, out);
        }
        self.record_outflow(parties.payer, parties.from, plan.send);
        let payment = self.pay_along(parties, tier, &plan, Amount::ZERO, None, out);
        Ok(Outcome::Accepted { payment: Some(payment) })
    }

    /// What a `PayCrossBorder` held for review holds: the most its approval may send
    /// (see the module documentation). At least `plan_send`, which the caller checked
    /// the payer has.
    fn amount_to_hold(&self, command: &PayCrossBorder, plan_send: Amount) -> Amount {
        let RateLimit::MaxSend(most) = command.limit else { return plan_send };
        let offered = match command.amount {
            CrossBorderAmount::Send(offered) => offered.min(most),
            CrossBorderAmount::Receive(_) => most,
        };
        let available = self.ledger.get(command.by).expect("checked").available(command.from);
        let held = offered.min(available);
        assert!(held >= plan_send, "the plan is within the limit and the funds");
        held
    }

    /// The quote's route sized for exactly its receive amount on the books of now, and
    /// the surplus its send leaves; `RateMoved` (after its event) if it needs more.
    fn plan_quote(
        &self,
        parties: Parties,
        tier: KycTier,
        route: Route,
        send: Amount,
        receive: Amount,
        out: &mut Vec<Event>,
    ) -> Result<(Plan, Amount), RejectReason> {
        let planner = self.planner(parties.payer, tier);
        let sides = planner.sides(route, parties.from).expect("markets are never removed");
        let plan = planner.plan_receive(route, sides, receive).ok_or(RejectReason::InsufficientLiquidity)?;
        let Some(surplus) = send.checked_sub(plan.send) else {
            out.push(rate_moved(parties.payer, parties.from, send, plan.send));
            return Err(RejectReason::RateMoved);
        };
        Ok((plan, surplus))
    }

    /// The best route for `target` within `max_hops` that meets `limit` and, for a
    /// payment held for review, sends at most what is held; `RateMoved` (after its
    /// event) when routes carry the amount but none within.
    fn plan_direct(
        &mut self,
        parties: Parties,
        tier: KycTier,
        target: Target,
        (limit, held): (RateLimit, Option<Amount>),
        max_hops: u8,
        out: &mut Vec<Event>,
    ) -> Result<Plan, RejectReason> {
        let within_hold = move |plan: &Plan| held.is_none_or(|held| plan.send <= held);
        let meets = |plan: &Plan| {
            within_hold(plan)
                && match limit {
                    RateLimit::MinReceive(least) => plan.receive >= least,
                    RateLimit::MaxSend(most) => plan.send <= most,
                }
        };
        match self.route(parties, tier, target, max_hops, 1, meets) {
            Routed::Chosen(selection) => Ok(*selection.best()),
            Routed::NoRoute => Err(RejectReason::NoRoute),
            Routed::NoLiquidity => Err(RejectReason::InsufficientLiquidity),
            Routed::Limit(best) => {
                let Parties { payer, from, to, .. } = parties;
                out.push(match limit {
                    RateLimit::MinReceive(least) if best.receive < least => rate_moved(payer, to, least, best.receive),
                    RateLimit::MinReceive(_) => rate_moved(payer, from, held.expect("refused by the hold"), best.send),
                    RateLimit::MaxSend(most) => {
                        let most = held.map_or(most, |held| held.min(most));
                        rate_moved(payer, from, most, best.send)
                    }
                });
                Err(RejectReason::RateMoved)
            }
        }
    }

    /// A held `PayCrossBorder` planned on the books of now, from `held` of `from` that
    /// `payer` holds: every check of the command but the rules. `Err` changes nothing.
    pub(super) fn plan_held_payment(
        &mut self,
        payment: &HeldCrossBorder,
        payer: AccountId,
        (from, held): (AssetId, Amount),
        out: &mut Vec<Event>,
    ) -> Result<HeldPlan, RejectReason> {
        let parties = Parties { payer, payee: payment.payee, from, to: payment.to };
        let tier = self.require_parties(parties)?;
        if !self.payments.has_room(1) {
            return Err(RejectReason::CapacityExceeded);
        }
        // Offering more than is held could only find plans the hold cannot pay for.
        let target = match payment.amount {
            CrossBorderAmount::Send(offered) => Target::Send(offered.min(held)),
            CrossBorderAmount::Receive(receive) => Target::Receive(receive),
        };
        let plan = self.plan_direct(parties, tier, target, (payment.limit, Some(held)), payment.max_hops, out)?;
        Ok(HeldPlan { parties, tier, plan, surplus: Amount::ZERO, quote: None })
    }

    /// A held `ExecuteQuote` planned on the books of now: the quote's exact amounts, on
    /// its route, before its expiry. `Err` changes nothing.
    pub(super) fn plan_held_quote(
        &mut self,
        quote: &HeldQuote,
        payer: AccountId,
        (from, send): (AssetId, Amount),
        out: &mut Vec<Event>,
    ) -> Result<HeldPlan, RejectReason> {
        if quote.expires_at <= self.now {
            return Err(RejectReason::QuoteExpired);
        }
        let parties = Parties { payer, payee: quote.payee, from, to: quote.to };
        let tier = self.require_parties(parties)?;
        if !self.payments.has_room(1) {
            return Err(RejectReason::CapacityExceeded);
        }
        let (plan, surplus) = self.plan_quote(parties, tier, quote.route, send, quote.receive, out)?;
        Ok(HeldPlan { parties, tier, plan, surplus, quote: Some(quote.quote) })
    }

    /// Makes a planned held payment: releases the `held` amount, pays along the plan as
    /// any cross-border payment, and takes what it did not send off the outflow of the
    /// day it was held (`held_at`). Cannot fail.
    pub(super) fn pay_held(
        &mut self,
        planned: &HeldPlan,
        held: Amount,
        held_at: Timestamp,
        out: &mut Vec<Event>,
    ) -> PaymentId {
        let HeldPlan { parties, tier, plan, surplus, quote } = *planned;
        self.ledger.release(parties.payer, parties.from, held);
        let payment = self.pay_along(parties, tier, &plan, surplus, quote, out);
        let sent = plan.send.checked_add(surplus).expect("at most what was held");
        let unused = held.checked_sub(sent).expect("a held payment sends at most what is held");
        if !unused.is_zero() {
            self.take_back_outflow(parties.payer, held_at, parties.from, unused);
        }
        payment
    }

    /// Both accounts exist and may move money, and both assets are configured; the
    /// payer's tier (which sets its taker fees).
    fn require_parties(&self, parties: Parties) -> Result<KycTier, RejectReason> {
        self.require_asset(parties.from)?;
        self.require_asset(parties.to)?;
        let tier = self.require_movable(parties.payer)?.kyc_tier();
        self.require_movable(parties.payee)?;
        Ok(tier)
    }

    fn planner(&self, payer: AccountId, tier: KycTier) -> Planner<'_> {
        Planner { markets: &self.markets, orders: &self.orders, payer, tier }
    }

    /// The `keep` best routes for `target` that `accept` takes (see `routing`).
    fn route(
        &mut self,
        parties: Parties,
        tier: KycTier,
        target: Target,
        max_hops: u8,
        keep: usize,
        accept: impl Fn(&Plan) -> bool,
    ) -> Routed {
        let mut candidates = std::mem::take(&mut self.scratch_candidates);
        let planner = self.planner(parties.payer, tier);
        let assets = (parties.from, parties.to);
        let routed = if planner.candidates(&self.route_graph, assets, usize::from(max_hops), target, &mut candidates) {
            planner.select(&candidates, target, keep, accept)
        } else {
            Routed::NoRoute
        };
        self.scratch_candidates = candidates;
        routed
    }

    /// Applies a checked plan: each leg a taker trade of the payer, remainders and the
    /// surplus to the house, the receive amount to the payee. Cannot fail.
    fn pay_along(
        &mut self,
        parties: Parties,
        tier: KycTier,
        plan: &Plan,
        surplus: Amount,
        quote: Option<QuoteId>,
        out: &mut Vec<Event>,
    ) -> PaymentId {
        let payment = self.payments.next_id();
        let Parties { payer, payee, from, to } = parties;
        for (index, leg) in plan.legs().iter().enumerate() {
            let spec = self.markets[leg.market.index()].spec();
            let taker_bps = spec.fees.rate(tier).taker_bps;
            let (input_asset, output_asset) = match leg.side {
                Side::Buy => (spec.quote, spec.base),
                Side::Sell => (spec.base, spec.quote),
            };
            debug_assert_eq!(input_asset, hold_asset(spec, leg.side));
            let order = OrderId::new(self.next_order_id);
            self.next_order_id += 1;
            let before = self.ledger.get(payer).expect("checked").available(output_asset);
            self.ledger.hold(payer, input_asset, leg.input);
            let funds = TakerFunds {
                order,
                account: payer,
                side: leg.side,
                taker_bps,
                held: leg.input,
                wanted: leg.qty,
                budget: false,
            };
            self.take_leg(leg.market, funds, out);
            let after = self.ledger.get(payer).expect("checked").available(output_asset);
            assert_eq!(after.checked_sub(before), Some(leg.output), "a leg gives exactly what was planned");
            if !leg.remainder.is_zero() {
                self.ledger.debit(payer, output_asset, leg.remainder);
                self.ledger.collect_remainder(output_asset, leg.remainder);
            }
            out.push(Event::CrossBorderLeg {
                payment,
                payer,
                payee,
                leg: index as u8,
                market: leg.market,
                side: leg.side,
                order,
                qty: leg.qty,
                input: leg.input,
                output: leg.output,
                taker_fee: leg.taker_fee,
                remainder: leg.remainder,
            });
        }
        if !surplus.is_zero() {
            self.ledger.debit(payer, from, surplus);
            self.ledger.collect_remainder(from, surplus);
        }
        self.ledger.debit(payer, to, plan.receive);
        self.ledger.credit(payee, to, plan.receive);
        let recorded = self.payments.push(PaymentRecord {
            payer,
            payee,
            asset: to,
            kind: PaymentKind::CrossBorder,
            state: PaymentState::Settled,
            amount: plan.receive,
            paid: plan.receive,
            refunded: Amount::ZERO,
            created_at: self.now,
            expires_at: self.now,
        });
        assert_eq!(recorded, payment);
        let send = plan.send.checked_add(surplus).expect("at most what the payer had");
        let (receive, route) = (plan.receive, plan.route);
        out.push(Event::CrossBorderPaid { payment, payer, payee, from, to, send, receive, route, surplus, quote });
        payment
    }

    /// One leg: the payer's held input matched as a taker order of exactly the planned
    /// lots, settled fill by fill like any order.
    fn take_leg(&mut self, market_id: MarketId, funds: TakerFunds, out: &mut Vec<Event>) {
        let Market { spec, book, market_seq, last_price } = &mut self.markets[market_id.index()];
        let mut settlement = Settlement {
            ledger: &mut self.ledger,
            out,
            spec,
            market: market_id,
            market_seq,
            last_price,
            touched_levels: &mut self.touched_levels,
            taker: funds,
        };
        let mut taker = Taker {
            account: funds.account.get(),
            side: funds.side,
            limit: None,
            remaining: funds.wanted,
            stp: SelfTradePrevention::CancelTaker,
        };
        let end = take(book, &mut self.orders, &mut taker, &mut settlement);
        assert_eq!(end, MatchEnd::Filled, "a planned leg fills");
        assert!(settlement.taker.held.is_zero(), "a planned leg spends exactly its input");
    }
}

fn target(amount: CrossBorderAmount) -> Target {
    match amount {
        CrossBorderAmount::Send(send) => Target::Send(send),
        CrossBorderAmount::Receive(receive) => Target::Receive(receive),
    }
}

/// The event that says how far the books are from `limit`: `achievable` is worse by
/// `moved_ppm` parts per million of the limit (rounded up).
fn rate_moved(payer: AccountId, asset: AssetId, limit: Amount, achievable: Amount) -> Event {
    let (limit_units, achievable_units) = (u128::from(limit.minor_units()), u128::from(achievable.minor_units()));
    let moved = limit_units.abs_diff(achievable_units) * 1_000_000;
    let moved_ppm = u32::try_from(moved.div_ceil(limit_units.max(1))).unwrap_or(u32::MAX);
    Event::RateMoved { payer, asset, limit, achievable, moved_ppm }
}

fn push_quote_events(
    quote: QuoteId,
    parties: Parties,
    selection: &Selection,
    expires_at: crate::ids::Timestamp,
    out: &mut Vec<Event>,
) {
    let Parties { payer, payee, from, to } = parties;
    let best = selection.best();
    for (index, leg) in best.legs().iter().enumerate() {
        out.push(Event::QuoteLeg {
            quote,
            payer,
            payee,
            leg: index as u8,
            market: leg.market,
            side: leg.side,
            qty: leg.qty,
            input: leg.input,
            output: leg.output,
            taker_fee: leg.taker_fee,
            remainder: leg.remainder,
        });
    }
    for (rank, plan) in selection.runners_up().enumerate() {
        let (route, send, receive) = (plan.route, plan.send, plan.receive);
        out.push(Event::QuoteRunnerUp { quote, payer, payee, rank: rank as u8 + 1, route, send, receive });
    }
    let (send, receive, route) = (best.send, best.receive, best.route);
    out.push(Event::Quoted { quote, payer, payee, from, to, send, receive, route, expires_at });
}

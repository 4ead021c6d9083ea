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

use super::payments::{PaymentKind, PaymentRecord, PaymentState};
use super::routing::{Plan, Planner, Routed, SELECTED_MAX, Selection, Target};
use super::settle::{Settlement, TakerFunds, hold_asset};
use super::{Engine, Handled};
use crate::book::{MarketId, MatchEnd, OrderId, SelfTradePrevention, Side, Taker, take};
use crate::command::{CommandKind, CrossBorderAmount, ExecuteQuote, PayCrossBorder, QuotePayment, RateLimit};
use crate::event::{Event, RejectReason};
use crate::ids::{AccountId, AssetId, KycTier, PaymentId, QuoteId};
use crate::market::Market;
use crate::money::Amount;

use super::quotes::{Lookup, Quote};

/// Who pays whom, from what into what.
#[derive(Clone, Copy, Debug)]
struct Parties {
    payer: AccountId,
    payee: AccountId,
    from: AssetId,
    to: AssetId,
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

    pub(super) fn execute_quote(&mut self, command: &ExecuteQuote, out: &mut Vec<Event>) -> Handled {
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
        let planner = self.planner(parties.payer, tier);
        let sides = planner.sides(quote.route, quote.from).expect("markets are never removed");
        let plan =
            planner.plan_receive(quote.route, sides, quote.receive).ok_or(RejectReason::InsufficientLiquidity)?;
        let Some(surplus) = quote.send.checked_sub(plan.send) else {
            out.push(rate_moved(parties.payer, parties.from, quote.send, plan.send));
            return Err(RejectReason::RateMoved);
        };
        let payment = self.pay_along(parties, tier, &plan, surplus, Some(command.quote), out);
        self.quotes.mark_used(command.quote);
        Ok(Some(payment))
    }

    pub(super) fn pay_cross_border(&mut self, command: &PayCrossBorder, out: &mut Vec<Event>) -> Handled {
        command.check()?;
        let parties = Parties { payer: command.by, payee: command.payee, from: command.from, to: command.to };
        let tier = self.require_parties(parties)?;
        if !self.payments.has_room(1) {
            return Err(RejectReason::CapacityExceeded);
        }
        let max_hops = command.max_hops.unwrap_or(self.crossborder.max_hops);
        let meets = |plan: &Plan| match command.limit {
            RateLimit::MinReceive(least) => plan.receive >= least,
            RateLimit::MaxSend(most) => plan.send <= most,
        };
        let plan = match self.route(parties, tier, target(command.amount), max_hops, 1, meets) {
            Routed::Chosen(selection) => *selection.best(),
            Routed::NoRoute => return Err(RejectReason::NoRoute),
            Routed::NoLiquidity => return Err(RejectReason::InsufficientLiquidity),
            Routed::Limit(best) => {
                out.push(match command.limit {
                    RateLimit::MinReceive(least) => rate_moved(parties.payer, parties.to, least, best.receive),
                    RateLimit::MaxSend(most) => rate_moved(parties.payer, parties.from, most, best.send),
                });
                return Err(RejectReason::RateMoved);
            }
        };
        self.require_funds(parties.payer, parties.from, plan.send)?;
        Ok(Some(self.pay_along(parties, tier, &plan, Amount::ZERO, None, out)))
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

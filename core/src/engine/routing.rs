//! Smart routing: which chain of markets converts what the payer sends into what the
//! payee receives most favourably, priced by walking the live books exactly as the
//! matching will fill them. Read-only: nothing here changes the engine.
//!
//! **Legs.** On each market of a route the payer is a taker: it buys the base with the
//! quote currency, or sells the base for it. A leg is priced fill by fill in matching
//! order (`book::walk`, the twin of `take`, self-trade prevention included: liquidity
//! ends at the payer's own resting order), each fill's quote amount and the taker fee
//! of the payer's KYC tier (rounded down per fill) computed by the very functions
//! `settle` charges with (`MarketSpec::quote_amount`, `market::fee`). So a plan's
//! amounts are exactly what applying it moves; the engine asserts as much when it
//! applies one.
//!
//! **Sizing.** Lots are whole, so a leg converts in steps. `plan_receive` sizes the
//! route backwards from the amount the payee must get: each leg takes the fewest lots
//! whose output covers what the next leg (or the payee) needs. `plan_send` first walks
//! forwards from what the payer offers (each leg takes the most lots its input pays
//! for), then re-sizes backwards from what came out, so that every leg uses no more
//! than it must: the payer sends at most what it offered, and what lot rounding leaves
//! over (a leg's output the next leg cannot use) is at most one step of that leg. The
//! forward output bounds the backward pass (every leg's input and output grow with its
//! lots), so the re-sizing always succeeds and gives the payee exactly the forward
//! amount.
//!
//! **Route choice.** Candidates are the simple paths (no currency twice) of at most the
//! hop limit, found depth-first by market id over the market graph. Each gets an integer
//! bound from the top of its books alone (fees and depth only make it worse): an upper
//! bound of what the payee can receive, or a lower bound of what the payer must send.
//! Candidates are priced exactly in order of their bound, and pricing stops once no
//! remaining bound can reach the K-th best route found, so the result is the same as
//! pricing every route. Best is: the payee receives most, then the payer sends least,
//! then fewer hops, then lower market ids.

use std::cmp::Reverse;

use crate::book::{MarketId, OrderSlab, Price, Qty, SelfTradePrevention, Side, Taker, walk};
use crate::ids::{AccountId, AssetId, KycTier};
use crate::limits::{QUOTE_RUNNERS_UP_MAX, ROUTE_HOPS_MAX, ROUTES_CONSIDERED_MAX};
use crate::market::{Market, MarketSpec, fee};
use crate::money::Amount;
use crate::route::Route;

const _: () = assert!(ROUTE_HOPS_MAX == 3, "RouteGraph::paths spells out three levels");

/// The most routes a selection keeps: the chosen one and the runners-up.
pub(crate) const SELECTED_MAX: usize = 1 + QUOTE_RUNNERS_UP_MAX;

/// The markets each asset trades in, by asset: the graph routes are found in.
#[derive(Clone, Debug, Default)]
pub(crate) struct RouteGraph {
    /// Per asset index, `(market, the other asset)` in market-id order.
    edges: Vec<Vec<(MarketId, AssetId)>>,
}

impl RouteGraph {
    pub(crate) fn new(asset_count: usize, markets: &[Market]) -> Self {
        let mut graph = Self { edges: vec![Vec::new(); asset_count] };
        for (index, market) in markets.iter().enumerate() {
            graph.add(MarketId::new(index as u32), market.spec());
        }
        graph
    }

    pub(crate) fn add(&mut self, market: MarketId, spec: &MarketSpec) {
        self.edges[spec.base.index()].push((market, spec.quote));
        self.edges[spec.quote.index()].push((market, spec.base));
    }

    fn from(&self, asset: AssetId) -> &[(MarketId, AssetId)] {
        self.edges.get(asset.index()).map_or(&[], Vec::as_slice)
    }

    /// Every simple path from `from` to `to` of at most `max_hops` markets, depth-first
    /// by market id, at most `ROUTES_CONSIDERED_MAX` of them.
    pub(crate) fn paths(&self, from: AssetId, to: AssetId, max_hops: usize, mut each: impl FnMut(Route)) {
        let mut count = 0;
        // False once the bound is reached: the walk stops there.
        let mut emit = |markets: &[MarketId]| {
            each(Route::new(markets).expect("one to three markets"));
            count += 1;
            count < ROUTES_CONSIDERED_MAX
        };
        for &(first, one) in self.from(from) {
            if one == to {
                if !emit(&[first]) {
                    return;
                }
                continue;
            }
            if max_hops < 2 {
                continue;
            }
            for &(second, two) in self.from(one) {
                if two == to {
                    if !emit(&[first, second]) {
                        return;
                    }
                    continue;
                }
                if max_hops < 3 || two == from {
                    continue;
                }
                for &(third, three) in self.from(two) {
                    if three == to && !emit(&[first, second, third]) {
                        return;
                    }
                }
            }
        }
    }
}

/// What a route must deliver.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Target {
    /// The payer sends at most this much.
    Send(Amount),
    /// The payee receives exactly this much.
    Receive(Amount),
}

/// One leg as planned: the payer's taker trade on one market.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct LegPlan {
    pub(crate) market: MarketId,
    pub(crate) side: Side,
    pub(crate) qty: Qty,
    /// What the payer gives: quote (fee included) on a buy, base on a sell.
    pub(crate) input: Amount,
    /// What the payer gets: base on a buy, quote (after the fee) on a sell.
    pub(crate) output: Amount,
    /// The taker fee, in the market's quote currency.
    pub(crate) taker_fee: Amount,
    /// What of `output` the next leg (or the payee) does not use.
    pub(crate) remainder: Amount,
}

impl LegPlan {
    const EMPTY: LegPlan = LegPlan {
        market: MarketId::new(0),
        side: Side::Buy,
        qty: Qty::ZERO,
        input: Amount::ZERO,
        output: Amount::ZERO,
        taker_fee: Amount::ZERO,
        remainder: Amount::ZERO,
    };
}

/// A route priced leg by leg.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Plan {
    pub(crate) route: Route,
    legs: [LegPlan; ROUTE_HOPS_MAX],
    pub(crate) send: Amount,
    pub(crate) receive: Amount,
}

impl Plan {
    pub(crate) fn legs(&self) -> &[LegPlan] {
        &self.legs[..self.route.hops()]
    }

    /// Orders plans best first: the payee receives most, the payer sends least, then
    /// fewer hops and lower market ids.
    fn rank(&self) -> (Reverse<Amount>, Amount, Route) {
        (Reverse(self.receive), self.send, self.route)
    }
}

/// What one leg takes and gives, in minor units.
#[derive(Clone, Copy, Debug, Default)]
struct Fill {
    lots: u64,
    input: u128,
    output: u128,
    fee: u128,
}

/// One market as a leg sees it: the side the payer takes from and its fee.
struct Leg<'a> {
    market: &'a Market,
    orders: &'a OrderSlab,
    side: Side,
    payer: u32,
    taker_bps: u16,
}

impl Leg<'_> {
    fn spec(&self) -> &MarketSpec {
        self.market.spec()
    }

    fn taker(&self, lots: u64) -> Taker {
        Taker {
            account: self.payer,
            side: self.side,
            limit: None,
            remaining: Qty::new(lots).expect("bounded by the market's order size"),
            stp: SelfTradePrevention::CancelTaker,
        }
    }

    /// The quote amount of `lots` at `price` (`MarketSpec::quote_amount`, as settlement
    /// computes it). `lots` is at most a resting order's remainder at `price`, whose
    /// quote amount fits.
    fn notional(&self, price: Price, lots: u64) -> Amount {
        let lots = Qty::new(lots).expect("at most a resting order's quantity");
        self.spec().quote_amount(price, lots).expect("a resting order's quote amount fits")
    }

    /// The quote amount of `lots` at `price` and the payer's taker fee on it
    /// (`market::fee`, as settlement charges it), in minor units.
    fn notional_and_fee(&self, price: Price, lots: u64) -> (u128, u128) {
        let notional = self.notional(price, lots);
        (u128::from(notional.minor_units()), u128::from(fee(notional, self.taker_bps).minor_units()))
    }

    /// The quote amount of one lot at `price`, in minor units.
    fn unit(&self, price: Price) -> u128 {
        u128::from(self.notional(price, 1).minor_units())
    }

    /// Walks the payer's side of the book for up to `lots`, handing each fill's lots
    /// and price to `visit`, which returns the lots it takes.
    fn walk(&self, lots: u64, mut visit: impl FnMut(u64, Price) -> u64) {
        walk(self.market.book(), self.orders, &self.taker(lots), |maker, offered| {
            Qty::new(visit(offered.lots(), maker.price())).expect("at most what was offered")
        });
    }

    /// Exactly `lots`, taken fill by fill; `None` if the book has fewer.
    fn take_lots(&self, lots: u64) -> Option<Fill> {
        let mut fill = Fill::default();
        self.walk(lots, |offered, price| {
            let (notional, fee) = self.notional_and_fee(price, offered);
            fill.lots += offered;
            fill.fee += fee;
            match self.side {
                Side::Buy => fill.input += notional + fee,
                Side::Sell => fill.output += notional - fee,
            }
            offered
        });
        (fill.lots == lots).then(|| self.with_base(fill))
    }

    /// Adds the base side of a fill: what a buy gets or a sell gives.
    fn with_base(&self, mut fill: Fill) -> Fill {
        let base = u128::from(fill.lots) * u128::from(self.spec().lot);
        match self.side {
            Side::Buy => fill.output = base,
            Side::Sell => fill.input = base,
        }
        fill
    }

    /// A buy of the most lots `budget` pays for, fees included; `None` if the book (or
    /// the market's order size) runs out before the budget does.
    fn buy_with_budget(&self, budget: u128) -> Option<Fill> {
        let mut fill = Fill::default();
        let mut budget_spent = false;
        self.walk(self.spec().qty_max.lots(), |offered, price| {
            let left = budget - fill.input;
            let cost = |lots: u64| {
                let (notional, fee) = self.notional_and_fee(price, lots);
                notional + fee
            };
            let unit = self.unit(price);
            // Fees round down, so the estimate is at most one lot short.
            let per_lot_ceiling = unit * (10_000 + u128::from(self.taker_bps));
            let estimate = mul_div(left, 10_000, per_lot_ceiling, Rounding::Down).unwrap_or(u128::MAX);
            let mut lots = u64::try_from(estimate).unwrap_or(u64::MAX).min(offered);
            if lots < offered && cost(lots + 1) <= left {
                lots += 1;
            }
            let (notional, fee) = self.notional_and_fee(price, lots);
            fill.lots += lots;
            fill.fee += fee;
            fill.input += notional + fee;
            budget_spent |= lots < offered;
            lots
        });
        let viable = fill.lots > 0 && (budget_spent || fill.input == budget);
        viable.then(|| self.with_base(fill))
    }

    /// A sell of the fewest lots whose proceeds (after fees) reach `need`; `None` if
    /// the book (or the market's order size) runs out first.
    fn sell_for_at_least(&self, need: u128) -> Option<Fill> {
        let mut fill = Fill::default();
        let mut reached = false;
        self.walk(self.spec().qty_max.lots(), |offered, price| {
            if reached {
                return 0;
            }
            let proceeds = |lots: u64| {
                let (notional, fee) = self.notional_and_fee(price, lots);
                notional - fee
            };
            let lots = if fill.output + proceeds(offered) >= need {
                reached = true;
                let short = need - fill.output;
                // Proceeds per lot are at least unit × (1 − fee): start there and step
                // down while one lot fewer still reaches `need` (proceeds never shrink
                // with more lots, so the first miss is below the fewest).
                let per_lot_floor = self.unit(price) * (10_000 - u128::from(self.taker_bps));
                let estimate = mul_div(short, 10_000, per_lot_floor, Rounding::Up).unwrap_or(u128::MAX);
                let mut lots = u64::try_from(estimate).unwrap_or(u64::MAX).clamp(1, offered);
                while lots > 1 && proceeds(lots - 1) >= short {
                    lots -= 1;
                }
                lots
            } else {
                offered
            };
            let (notional, fee) = self.notional_and_fee(price, lots);
            fill.lots += lots;
            fill.fee += fee;
            fill.output += notional - fee;
            lots
        });
        (reached && fill.lots > 0).then(|| self.with_base(fill))
    }

    /// The most this leg makes of `input`.
    fn forward(&self, input: Amount) -> Option<Fill> {
        match self.side {
            Side::Buy => self.buy_with_budget(u128::from(input.minor_units())),
            Side::Sell => {
                let lots = input.minor_units() / self.spec().lot;
                if lots == 0 || lots > self.spec().qty_max.lots() {
                    return None;
                }
                self.take_lots(lots)
            }
        }
    }

    /// The least input from which this leg makes at least `need`.
    fn backward(&self, need: Amount) -> Option<Fill> {
        match self.side {
            Side::Buy => {
                let lots = need.minor_units().div_ceil(self.spec().lot);
                if lots == 0 || lots > self.spec().qty_max.lots() {
                    return None;
                }
                self.take_lots(lots)
            }
            Side::Sell => self.sell_for_at_least(u128::from(need.minor_units())),
        }
    }

    /// The best price on the payer's side as (quote units per lot, base units per lot);
    /// `None` for an empty side.
    fn best_rate(&self) -> Option<(u128, u128)> {
        let best = self.market.book().side(self.side.opposite()).best()?;
        Some((self.unit(best.price()), u128::from(self.spec().lot)))
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Rounding {
    Down,
    Up,
}

/// `a × b / c`, rounded as asked; `None` if `a × b` overflows. In 64 bits when the
/// operands allow (nearly always): a 128-bit division is a slow library call.
fn mul_div(a: u128, b: u128, c: u128, rounding: Rounding) -> Option<u128> {
    let narrow = (u64::try_from(a), u64::try_from(b), u64::try_from(c));
    if let (Ok(a), Ok(b), Ok(c)) = narrow
        && let Some(product) = a.checked_mul(b)
    {
        let quotient = if rounding == Rounding::Up { product.div_ceil(c) } else { product / c };
        return Some(u128::from(quotient));
    }
    let product = a.checked_mul(b)?;
    Some(if rounding == Rounding::Up { product.div_ceil(c) } else { product / c })
}

/// A fill's amounts as `Amount`s; `None` past `limits::AMOUNT_MAX`.
fn amounts(fill: Fill) -> Option<(Qty, Amount, Amount, Amount)> {
    let amount = |value: u128| u64::try_from(value).ok().and_then(Amount::new);
    Some((Qty::new(fill.lots)?, amount(fill.input)?, amount(fill.output)?, amount(fill.fee)?))
}

/// A candidate route: its sides, and the bound it is ranked by.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Candidate {
    route: Route,
    sides: [Side; ROUTE_HOPS_MAX],
    /// Send: an upper bound of what the payee receives (`None`: unbounded). Receive: a
    /// lower bound of what the payer sends (`None`: zero).
    bound: Option<u128>,
    /// Position in enumeration order, the last tie-break.
    index: usize,
}

/// The best routes found, best first.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Selection {
    plans: [Option<Plan>; SELECTED_MAX],
    len: usize,
    keep: usize,
}

impl Selection {
    fn new(keep: usize) -> Self {
        assert!((1..=SELECTED_MAX).contains(&keep));
        Self { plans: [None; SELECTED_MAX], len: 0, keep }
    }

    fn full(&self) -> bool {
        self.len == self.keep
    }

    fn last(&self) -> Option<&Plan> {
        self.len.checked_sub(1).and_then(|index| self.plans[index].as_ref())
    }

    fn insert(&mut self, plan: Plan) {
        let position = self.plans[..self.len].iter().flatten().position(|kept| plan.rank() < kept.rank());
        let position = position.unwrap_or(self.len);
        if position >= self.keep {
            return;
        }
        let end = self.len.min(self.keep - 1);
        self.plans.copy_within(position..end, position + 1);
        self.plans[position] = Some(plan);
        self.len = (self.len + 1).min(self.keep);
    }

    pub(crate) fn best(&self) -> &Plan {
        self.plans[0].as_ref().expect("a selection has a best route")
    }

    /// The routes after the best, next best first.
    pub(crate) fn runners_up(&self) -> impl Iterator<Item = &Plan> {
        self.plans[1..self.len].iter().flatten()
    }
}

/// How routing came out. Returned by value once per command: boxing the selection
/// would allocate on the hot path.
#[derive(Clone, Copy, Debug)]
#[allow(clippy::large_enum_variant)]
pub(crate) enum Routed {
    Chosen(Selection),
    /// No chain of markets within the hop limit.
    NoRoute,
    /// Routes exist; none has the depth.
    NoLiquidity,
    /// Routes can carry the amount, but none within the limit: the best of them.
    Limit(Plan),
}

/// Prices routes for one payer from the live books.
pub(crate) struct Planner<'a> {
    pub(crate) markets: &'a [Market],
    pub(crate) orders: &'a OrderSlab,
    pub(crate) payer: AccountId,
    pub(crate) tier: KycTier,
}

impl<'a> Planner<'a> {
    fn leg(&self, market: MarketId, side: Side) -> Leg<'a> {
        let market = &self.markets[market.index()];
        let taker_bps = market.spec().fees.rate(self.tier).taker_bps;
        Leg { market, orders: self.orders, side, payer: self.payer.get(), taker_bps }
    }

    /// Each leg's side along `route` from `from`; `None` if the markets do not chain.
    pub(crate) fn sides(&self, route: Route, from: AssetId) -> Option<[Side; ROUTE_HOPS_MAX]> {
        let legs = route.legs(from, |market| self.markets.get(market.index()).map(Market::spec))?;
        Some(legs.map(|(side, _)| side))
    }

    /// The route sized backwards so that the payee gets exactly `receive`.
    pub(crate) fn plan_receive(&self, route: Route, sides: [Side; ROUTE_HOPS_MAX], receive: Amount) -> Option<Plan> {
        let mut legs = [LegPlan::EMPTY; ROUTE_HOPS_MAX];
        let mut need = receive;
        for index in (0..route.hops()).rev() {
            let market = route.markets()[index];
            let leg = self.leg(market, sides[index]);
            let (qty, input, output, taker_fee) = amounts(leg.backward(need)?)?;
            let remainder = output.checked_sub(need).expect("a leg covers what it was sized for");
            legs[index] = LegPlan { market, side: sides[index], qty, input, output, taker_fee, remainder };
            need = input;
        }
        Some(Plan { route, legs, send: need, receive })
    }

    /// The route walked forwards from at most `send`, then re-sized backwards from what
    /// came out (see the module documentation).
    pub(crate) fn plan_send(&self, route: Route, sides: [Side; ROUTE_HOPS_MAX], send: Amount) -> Option<Plan> {
        let mut amount = send;
        for (index, &market) in route.markets().iter().enumerate() {
            let (_, _, output, _) = amounts(self.leg(market, sides[index]).forward(amount)?)?;
            amount = output;
        }
        let plan = self.plan_receive(route, sides, amount).expect("the forward walk bounds the backward one");
        assert!(plan.send <= send, "re-sizing never sends more than offered");
        Some(plan)
    }

    fn plan(&self, candidate: &Candidate, target: Target) -> Option<Plan> {
        match target {
            Target::Send(send) => self.plan_send(candidate.route, candidate.sides, send),
            Target::Receive(receive) => self.plan_receive(candidate.route, candidate.sides, receive),
        }
    }

    /// The bound a candidate is ranked by, from the best price of each leg (see
    /// `Candidate::bound`); `Err(())` if a leg's book side is empty.
    fn bound(&self, route: Route, sides: [Side; ROUTE_HOPS_MAX], target: Target) -> Result<Option<u128>, ()> {
        let mut rates = [(0_u128, 0_u128); ROUTE_HOPS_MAX];
        for (index, &market) in route.markets().iter().enumerate() {
            rates[index] = self.leg(market, sides[index]).best_rate().ok_or(())?;
        }
        let rates = &rates[..route.hops()];
        // Output per input is at most `unit / lot` on a sell and `lot / unit` on a buy.
        let ratio = |index: usize| {
            let (unit, lot) = rates[index];
            if sides[index] == Side::Sell { (unit, lot) } else { (lot, unit) }
        };
        Ok(match target {
            Target::Send(send) => (0..rates.len()).try_fold(u128::from(send.minor_units()), |bound, index| {
                let (numerator, denominator) = ratio(index);
                mul_div(bound, numerator, denominator, Rounding::Up)
            }),
            Target::Receive(receive) => {
                (0..rates.len()).rev().try_fold(u128::from(receive.minor_units()), |bound, index| {
                    let (numerator, denominator) = ratio(index);
                    mul_div(bound, denominator, numerator, Rounding::Down)
                })
            }
        })
    }

    /// The candidate routes from `from` to `to` within `max_hops`, in `scratch`, ranked
    /// by bound; false when there is no path at all.
    pub(crate) fn candidates(
        &self,
        graph: &RouteGraph,
        (from, to): (AssetId, AssetId),
        max_hops: usize,
        target: Target,
        scratch: &mut Vec<Candidate>,
    ) -> bool {
        scratch.clear();
        let mut paths = 0;
        graph.paths(from, to, max_hops, |route| {
            paths += 1;
            let sides = self.sides(route, from).expect("paths follow the graph");
            if let Ok(bound) = self.bound(route, sides, target) {
                scratch.push(Candidate { route, sides, bound, index: scratch.len() });
            }
        });
        match target {
            Target::Send(_) => {
                scratch.sort_unstable_by_key(|c| (Reverse(c.bound.unwrap_or(u128::MAX)), c.index));
            }
            Target::Receive(_) => scratch.sort_unstable_by_key(|c| (c.bound.unwrap_or(0), c.index)),
        }
        paths > 0
    }

    /// Prices `candidates` (ranked by `candidates`) best bound first and keeps the
    /// `keep` best plans that `accept` takes.
    pub(crate) fn select(
        &self,
        candidates: &[Candidate],
        target: Target,
        keep: usize,
        accept: impl Fn(&Plan) -> bool,
    ) -> Routed {
        let mut selection = Selection::new(keep);
        let mut best_refused: Option<Plan> = None;
        for candidate in candidates {
            if let Some(kth) = selection.last().filter(|_| selection.full()) {
                let out_of_reach = match (target, candidate.bound) {
                    (Target::Send(_), Some(most)) => most < u128::from(kth.receive.minor_units()),
                    (Target::Receive(_), Some(least)) => least > u128::from(kth.send.minor_units()),
                    (_, None) => false,
                };
                if out_of_reach {
                    break;
                }
            }
            let Some(plan) = self.plan(candidate, target) else { continue };
            if accept(&plan) {
                selection.insert(plan);
            } else if best_refused.is_none_or(|best| plan.rank() < best.rank()) {
                best_refused = Some(plan);
            }
        }
        match (selection.len, best_refused) {
            (0, Some(best)) => Routed::Limit(best),
            (0, None) => Routed::NoLiquidity,
            _ => Routed::Chosen(selection),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(receive: u64, send: u64, market: u32) -> Plan {
        let route = Route::new(&[MarketId::new(market)]).unwrap();
        let amount = |value| Amount::new(value).unwrap();
        Plan { route, legs: [LegPlan::EMPTY; ROUTE_HOPS_MAX], send: amount(send), receive: amount(receive) }
    }

    #[test]
    fn mul_div_agrees_in_both_widths() {
        let wide = u128::from(u64::MAX) * 3;
        for (a, b, c) in [(7, 3, 2), (10, 10_000, 3), (u128::from(u64::MAX), 2, 5), (wide, 7, 11), (0, 5, 3)] {
            let exact_down = a * b / c;
            let exact_up = (a * b).div_ceil(c);
            assert_eq!(mul_div(a, b, c, Rounding::Down), Some(exact_down), "{a} {b} {c}");
            assert_eq!(mul_div(a, b, c, Rounding::Up), Some(exact_up), "{a} {b} {c}");
        }
        assert_eq!(mul_div(u128::MAX, 2, 1, Rounding::Down), None);
    }

    #[test]
    fn paths_are_simple_within_the_hop_limit_and_bounded_in_number() {
        // Assets 0..4 and a market between every pair, each way round once.
        let mut graph = RouteGraph { edges: vec![Vec::new(); 4] };
        let mut market = 0;
        for base in 0..4_u16 {
            for quote in base + 1..4 {
                graph.edges[usize::from(base)].push((MarketId::new(market), AssetId::new(quote)));
                graph.edges[usize::from(quote)].push((MarketId::new(market), AssetId::new(base)));
                market += 1;
            }
        }
        let count = |max_hops| {
            let mut routes = Vec::new();
            graph.paths(AssetId::new(0), AssetId::new(3), max_hops, |route| routes.push(route));
            routes
        };
        // Direct; through 1 or 2; through 1 then 2, or 2 then 1.
        assert_eq!(count(1).len(), 1);
        assert_eq!(count(2).len(), 3);
        assert_eq!(count(3).len(), 5);
        // A dense graph stops at the bound.
        let assets = 40_u16;
        let mut dense = RouteGraph { edges: vec![Vec::new(); usize::from(assets)] };
        let mut market = 0;
        for base in 0..assets {
            for quote in base + 1..assets {
                dense.edges[usize::from(base)].push((MarketId::new(market), AssetId::new(quote)));
                dense.edges[usize::from(quote)].push((MarketId::new(market), AssetId::new(base)));
                market += 1;
            }
        }
        let mut routes = 0;
        dense.paths(AssetId::new(0), AssetId::new(1), 3, |_| routes += 1);
        assert_eq!(routes, ROUTES_CONSIDERED_MAX);
    }

    #[test]
    fn selection_keeps_the_best_in_order() {
        let mut selection = Selection::new(3);
        for (receive, send, market) in [(10, 5, 1), (12, 5, 2), (12, 4, 3), (9, 1, 4), (11, 5, 5), (12, 4, 0)] {
            selection.insert(plan(receive, send, market));
        }
        let kept: Vec<u32> = std::iter::once(selection.best())
            .chain(selection.runners_up())
            .map(|plan| plan.route.markets()[0].get())
            .collect();
        assert_eq!(kept, [0, 3, 2], "most received, then least sent, then lower market");
        assert!(selection.full());
        let mut one = Selection::new(1);
        one.insert(plan(5, 5, 1));
        one.insert(plan(4, 5, 2));
        assert_eq!(one.best().route.markets()[0].get(), 1);
        assert_eq!(one.runners_up().count(), 0);
    }
}

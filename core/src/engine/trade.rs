//! Handlers for the exchange: add a market; place, cancel, cancel-all and amend
//! orders. Every check comes first; then funds are held, the order matches (settling
//! each fill through `settle::Settlement`), and what remains rests or is cancelled.

use super::Engine;
use super::settle::{Settlement, TakerFunds, hold_asset, resting_hold, touch_level};
use crate::book::{
    ClientOrderId, MarketId, MatchEnd, NewOrder, OrderId, Price, Qty, Side, Slot, Taker, TimeInForce, take, walk,
};
use crate::command::{AddMarket, AmendOrder, CancelAll, CancelOrder, CommandKind, OrderRef, OrderSize, PlaceOrder};
use crate::event::{CancelReason, Event, RejectReason};
use crate::ids::AccountId;
use crate::limits::{MARKETS_MAX, ORDERS_OPEN_MAX, ORDERS_PER_ACCOUNT_MAX, PRICE_LEVELS_PER_SIDE_MAX, QTY_LOTS_MAX};
use crate::market::{Market, fee};
use crate::money::Amount;

/// An accepted order about to match: everything `execute` needs.
#[derive(Clone, Copy, Debug)]
struct Incoming {
    order: OrderId,
    market: MarketId,
    taker: Taker,
    funds: TakerFunds,
    /// Rests what it does not fill (a GTC limit order).
    rests: bool,
    maker_bps: u16,
    client_order_id: Option<ClientOrderId>,
    post_only: bool,
}

impl Engine {
    pub(super) fn add_market(&mut self, command: &AddMarket, out: &mut Vec<Event>) {
        let spec = &command.spec;
        let duplicate =
            self.markets.iter().any(|market| market.spec().base == spec.base && market.spec().quote == spec.quote);
        let reason = if spec.validate(&self.assets).is_err() || duplicate {
            Some(RejectReason::InvalidMarket)
        } else if self.markets.len() >= MARKETS_MAX {
            Some(RejectReason::CapacityExceeded)
        } else {
            None
        };
        if let Some(reason) = reason {
            return out.push(Event::Rejected { kind: CommandKind::AddMarket, reason });
        }
        let market = MarketId::new(self.markets.len() as u32);
        self.markets.push(Market::new(spec.clone()));
        self.route_graph.add(market, spec);
        out.push(Event::MarketAdded { market, base: spec.base, quote: spec.quote });
    }

    pub(super) fn place_order(&mut self, command: &PlaceOrder, out: &mut Vec<Event>) {
        if let Err(reason) = self.try_place_order(command, out) {
            out.push(Event::Rejected { kind: CommandKind::PlaceOrder, reason });
        }
    }

    fn try_place_order(&mut self, command: &PlaceOrder, out: &mut Vec<Event>) -> Result<(), RejectReason> {
        command.check()?;
        let market = self.markets.get(command.market.index()).ok_or(RejectReason::UnknownMarket)?;
        let account = self.require_movable(command.by)?;
        let spec = market.spec();
        let rate = spec.fees.rate(account.kyc_tier());
        let hold_bps = rate.maker_bps.max(rate.taker_bps);
        let qty = match command.size {
            OrderSize::Qty(qty) if qty < spec.qty_min || qty > spec.qty_max => {
                return Err(RejectReason::InvalidQuantity);
            }
            OrderSize::Qty(qty) => qty,
            OrderSize::QuoteBudget(_) => Qty::new(QTY_LOTS_MAX).expect("the largest quantity"),
        };
        if let Some(client_order_id) = command.client_order_id
            && self.orders.find_client(command.by.get(), client_order_id).is_some()
        {
            return Err(RejectReason::DuplicateClientOrderId);
        }
        let rests = command.price.is_some() && command.time_in_force == TimeInForce::Gtc;
        if let (true, Some(price)) = (rests, command.price) {
            self.require_room_to_rest(command.by, command.market, command.side, price)?;
        }
        let taker = Taker {
            account: command.by.get(),
            side: command.side,
            limit: command.price,
            remaining: qty,
            stp: command.stp.unwrap_or_default(),
        };
        if command.post_only && self.would_take(command.market, command.side, command.price) {
            return Err(RejectReason::PostOnlyWouldTake);
        }
        let asset = hold_asset(spec, command.side);
        let hold = match (command.side, command.price, command.size) {
            (_, _, OrderSize::QuoteBudget(budget)) => budget,
            (Side::Sell, price, OrderSize::Qty(qty)) => {
                // A sell must be payable too: its quote amount has to be representable.
                if price.is_some_and(|price| spec.quote_amount(price, qty).is_none()) {
                    return Err(RejectReason::InvalidPrice);
                }
                spec.base_amount(qty).ok_or(RejectReason::InvalidQuantity)?
            }
            (Side::Buy, Some(price), OrderSize::Qty(qty)) => {
                spec.buy_hold(price, qty, hold_bps).ok_or(RejectReason::InvalidPrice)?
            }
            (Side::Buy, None, OrderSize::Qty(_)) => self.market_buy_cost(market, &taker, rate.taker_bps)?,
        };
        self.require_funds(command.by, asset, hold)?;
        let notional = || match (command.price, command.size) {
            (_, OrderSize::QuoteBudget(budget)) => Some(budget),
            (Some(price), OrderSize::Qty(qty)) => spec.quote_amount(price, qty),
            (None, OrderSize::Qty(_)) => self.market_notional(market, &taker),
        };
        self.gate_order(CommandKind::PlaceOrder, command.by, spec.quote, notional, rests, out)?;
        let killed = command.time_in_force == TimeInForce::Fok && self.fillable(market, &taker) < qty;

        let order = OrderId::new(self.next_order_id);
        self.next_order_id += 1;
        let budget = matches!(command.size, OrderSize::QuoteBudget(_));
        out.push(Event::OrderAccepted {
            order,
            account: command.by,
            market: command.market,
            side: command.side,
            price: command.price,
            qty: if budget { Qty::ZERO } else { qty },
            time_in_force: command.time_in_force,
            client_order_id: command.client_order_id,
        });
        if killed {
            let (account, market, reason) = (command.by, command.market, CancelReason::FillOrKill);
            out.push(Event::OrderCancelled { order, account, market, remaining: qty, reason });
            return Ok(());
        }
        self.ledger.hold(command.by, asset, hold);
        let funds = TakerFunds {
            order,
            account: command.by,
            side: command.side,
            taker_bps: rate.taker_bps,
            held: hold,
            wanted: if budget { Qty::ZERO } else { qty },
            budget,
        };
        let incoming = Incoming {
            order,
            market: command.market,
            taker,
            funds,
            rests,
            maker_bps: rate.maker_bps,
            client_order_id: command.client_order_id,
            post_only: command.post_only,
        };
        self.execute(incoming, None, out);
        Ok(())
    }

    /// Matches an accepted order whose funds are held, then rests or cancels what
    /// remains and releases whatever of its hold it no longer needs. An amended order
    /// brings its own slot (`reuse`, unlinked from its level), which it keeps if it
    /// rests, so a move costs no slab or index churn.
    fn execute(&mut self, mut incoming: Incoming, reuse: Option<Slot>, out: &mut Vec<Event>) {
        let Market { spec, book, market_seq, last_price } = &mut self.markets[incoming.market.index()];
        let spec = &*spec;
        let mut settlement = Settlement {
            ledger: &mut self.ledger,
            out,
            spec,
            market: incoming.market,
            market_seq,
            last_price,
            touched_levels: &mut self.touched_levels,
            taker: incoming.funds,
        };
        let end = take(book, &mut self.orders, &mut incoming.taker, &mut settlement);
        let funds = settlement.taker;
        let remaining = incoming.taker.remaining;
        let asset = hold_asset(spec, incoming.taker.side);
        let account = funds.account;

        let rests_at =
            incoming.taker.limit.filter(|_| incoming.rests && !remaining.is_zero() && end != MatchEnd::SelfTrade);
        let Some(price) = rests_at else {
            if let Some(slot) = reuse {
                self.orders.remove(slot);
            }
            self.ledger.release(account, asset, funds.held);
            if !remaining.is_zero() {
                let reason = match end {
                    MatchEnd::SelfTrade => CancelReason::SelfTrade,
                    MatchEnd::Budget | MatchEnd::NoLiquidity if funds.budget => CancelReason::BudgetSpent,
                    MatchEnd::Filled | MatchEnd::NoLiquidity | MatchEnd::Budget => CancelReason::Unfilled,
                };
                let remaining = if funds.budget { Qty::ZERO } else { remaining };
                out.push(Event::OrderCancelled {
                    order: incoming.order,
                    account,
                    market: incoming.market,
                    remaining,
                    reason,
                });
            }
            return;
        };
        let hold_bps = incoming.maker_bps.max(funds.taker_bps);
        let held = resting_hold(spec, incoming.taker.side, price, remaining, hold_bps).expect("below the order's hold");
        self.ledger.release(
            account,
            asset,
            funds.held.checked_sub(held).expect("a remainder needs less than the whole"),
        );
        let slot = match reuse {
            Some(slot) => {
                let node = self.orders.get_mut(slot);
                (node.price, node.remaining, node.held) = (price, remaining, held.minor_units());
                slot
            }
            None => self.orders.insert(&NewOrder {
                id: incoming.order,
                client_order_id: incoming.client_order_id,
                account: account.get(),
                market: incoming.market,
                side: incoming.taker.side,
                price,
                remaining,
                held: held.minor_units(),
                maker_bps: incoming.maker_bps,
                taker_bps: funds.taker_bps,
                stp: incoming.taker.stp,
                post_only: incoming.post_only,
            }),
        };
        self.markets[incoming.market.index()].book.side_mut(incoming.taker.side).push_back(&mut self.orders, slot);
        touch_level(&mut self.touched_levels, (incoming.market, incoming.taker.side, price));
    }

    pub(super) fn cancel_order(&mut self, command: &CancelOrder, out: &mut Vec<Event>) {
        match self.find_order(command.by, command.order) {
            Ok(slot) => self.cancel_resting(slot, CancelReason::Requested, out),
            Err(reason) => out.push(Event::Rejected { kind: CommandKind::CancelOrder, reason }),
        }
    }

    /// Cancels every resting order of `account` (in `market`, if given), in order-id
    /// order so that the events do not depend on how the account's chain was built.
    pub(super) fn cancel_orders_of(
        &mut self,
        account: AccountId,
        market: Option<MarketId>,
        reason: CancelReason,
        out: &mut Vec<Event>,
    ) {
        let mut slots = std::mem::take(&mut self.scratch_slots);
        slots.clear();
        slots.extend(
            self.orders
                .account_orders(account.get())
                .filter(|&slot| market.is_none_or(|market| self.orders.get(slot).market() == market)),
        );
        slots.sort_unstable_by_key(|&slot| self.orders.get(slot).id());
        for &slot in &slots {
            self.cancel_resting(slot, reason, out);
        }
        self.scratch_slots = slots;
    }

    pub(super) fn cancel_all(&mut self, command: &CancelAll, out: &mut Vec<Event>) {
        let reject = |out: &mut Vec<Event>, reason| out.push(Event::Rejected { kind: CommandKind::CancelAll, reason });
        if self.ledger.get(command.by).is_none() {
            return reject(out, RejectReason::UnknownAccount);
        }
        if command.market.is_some_and(|market| market.index() >= self.markets.len()) {
            return reject(out, RejectReason::UnknownMarket);
        }
        self.cancel_orders_of(command.by, command.market, CancelReason::CancelAll, out);
    }

    pub(super) fn amend_order(&mut self, command: &AmendOrder, out: &mut Vec<Event>) {
        if let Err(reason) = self.try_amend_order(command, out) {
            out.push(Event::Rejected { kind: CommandKind::AmendOrder, reason });
        }
    }

    fn try_amend_order(&mut self, command: &AmendOrder, out: &mut Vec<Event>) -> Result<(), RejectReason> {
        command.check()?;
        let slot = self.find_order(command.by, command.order)?;
        self.require_movable(command.by)?;
        let node = *self.orders.get(slot);
        let spec = self.markets[node.market().index()].spec();
        let price = command.price.unwrap_or(node.price());
        let qty = command.qty.unwrap_or(node.remaining());
        if price == node.price() && qty == node.remaining() {
            return Err(RejectReason::InvalidOrder);
        }
        let grows = qty > node.remaining();
        if qty > spec.qty_max || (grows && qty < spec.qty_min) {
            return Err(RejectReason::InvalidQuantity);
        }
        let hold_bps = node.maker_bps().max(node.taker_bps());
        let held = resting_hold(spec, node.side(), price, qty, hold_bps).ok_or(RejectReason::InvalidPrice)?;
        let held_before = Amount::new(node.held()).expect("bounded");
        let (account, market, asset) = (command.by, node.market(), hold_asset(spec, node.side()));
        if price != node.price() || grows {
            let notional = || spec.quote_amount(price, qty);
            self.gate_order(CommandKind::AmendOrder, account, spec.quote, notional, false, out)?;
        }
        if price == node.price() && !grows {
            // Smaller at the same price: keeps its place in the queue.
            let book = &mut self.markets[market.index()].book;
            book.side_mut(node.side()).reduce(&mut self.orders, slot, node.remaining().minus(qty));
            self.orders.get_mut(slot).held = held.minor_units();
            self.ledger.release(account, asset, held_before.checked_sub(held).expect("smaller hold"));
            touch_level(&mut self.touched_levels, (market, node.side(), price));
            let priority_kept = true;
            out.push(Event::OrderAmended { order: node.id(), account, market, price, qty, priority_kept });
            return Ok(());
        }
        if node.post_only() && self.would_take(market, node.side(), Some(price)) {
            return Err(RejectReason::PostOnlyWouldTake);
        }
        // The order keeps its slot in the account's count; only a level may be new.
        self.require_level_room(market, node.side(), price, Some(node.price()))?;
        if let Some(extra) = held.checked_sub(held_before) {
            self.require_funds(account, asset, extra)?;
        }

        // Leaves its place and comes back as a new arrival under the same id (and slot).
        self.markets[market.index()].book.side_mut(node.side()).unlink(&mut self.orders, slot);
        touch_level(&mut self.touched_levels, (market, node.side(), node.price()));
        match held.checked_sub(held_before) {
            Some(extra) => self.ledger.hold(account, asset, extra),
            None => self.ledger.release(account, asset, held_before.checked_sub(held).expect("smaller hold")),
        }
        out.push(Event::OrderAmended { order: node.id(), account, market, price, qty, priority_kept: false });
        let taker =
            Taker { account: account.get(), side: node.side(), limit: Some(price), remaining: qty, stp: node.stp() };
        let funds = TakerFunds {
            order: node.id(),
            account,
            side: node.side(),
            taker_bps: node.taker_bps(),
            held,
            wanted: qty,
            budget: false,
        };
        let incoming = Incoming {
            order: node.id(),
            market,
            taker,
            funds,
            rests: true,
            maker_bps: node.maker_bps(),
            client_order_id: node.client_order_id(),
            post_only: node.post_only(),
        };
        self.execute(incoming, Some(slot), out);
        Ok(())
    }

    /// Takes a resting order off the book and releases its hold.
    fn cancel_resting(&mut self, slot: Slot, reason: CancelReason, out: &mut Vec<Event>) {
        let node = *self.orders.get(slot);
        let market = &mut self.markets[node.market().index()];
        market.book.side_mut(node.side()).unlink(&mut self.orders, slot);
        self.orders.remove(slot);
        let account = AccountId::new(node.account());
        let asset = hold_asset(market.spec(), node.side());
        self.ledger.release(account, asset, Amount::new(node.held()).expect("bounded"));
        touch_level(&mut self.touched_levels, (node.market(), node.side(), node.price()));
        out.push(Event::OrderCancelled {
            order: node.id(),
            account,
            market: node.market(),
            remaining: node.remaining(),
            reason,
        });
    }

    /// The resting order `order` of `by`; someone else's order is as unknown as a
    /// missing one.
    fn find_order(&self, by: AccountId, order: OrderRef) -> Result<Slot, RejectReason> {
        if self.ledger.get(by).is_none() {
            return Err(RejectReason::UnknownAccount);
        }
        let slot = match order {
            OrderRef::Id(id) => self.orders.find(id).filter(|&slot| self.orders.get(slot).account() == by.get()),
            OrderRef::Client(client_order_id) => self.orders.find_client(by.get(), client_order_id),
        };
        slot.ok_or(RejectReason::UnknownOrder)
    }

    /// There is room for one more resting order of `account` at `price`.
    fn require_room_to_rest(
        &self,
        account: AccountId,
        market: MarketId,
        side: Side,
        price: Price,
    ) -> Result<(), RejectReason> {
        if self.orders.open_count(account.get()) >= ORDERS_PER_ACCOUNT_MAX {
            return Err(RejectReason::TooManyOrders);
        }
        if self.orders.len() >= ORDERS_OPEN_MAX {
            return Err(RejectReason::CapacityExceeded);
        }
        self.require_level_room(market, side, price, None)
    }

    /// A level at `price` exists or may be added; `leaving` is the price of a level
    /// the moving order leaves (which may free one).
    fn require_level_room(
        &self,
        market: MarketId,
        side: Side,
        price: Price,
        leaving: Option<Price>,
    ) -> Result<(), RejectReason> {
        let book_side = self.markets[market.index()].book.side(side);
        // Cheap test first: the searches only matter for a side at its bound.
        if book_side.len() < PRICE_LEVELS_PER_SIDE_MAX {
            return Ok(());
        }
        let frees_one = leaving.and_then(|price| book_side.level(price)).is_some_and(|level| level.count() == 1);
        if book_side.level(price).is_none() && !frees_one {
            return Err(RejectReason::CapacityExceeded);
        }
        Ok(())
    }

    /// Whether an order at `price` (any price, for `None`) would trade on arrival.
    fn would_take(&self, market: MarketId, side: Side, price: Option<Price>) -> bool {
        let opposite = self.markets[market.index()].book.side(side.opposite());
        opposite.best().is_some_and(|best| price.is_none_or(|price| side.crosses(price, best.price())))
    }

    /// Lots `taker` could fill right now.
    fn fillable(&self, market: &Market, taker: &Taker) -> Qty {
        let mut total = Qty::ZERO;
        walk(&market.book, &self.orders, taker, |_, offered| {
            total = total.plus(offered);
            offered
        });
        total
    }

    /// The quote amount a market order would fill at against the book now, without
    /// fees: its notional, for `max_order_notional`.
    fn market_notional(&self, market: &Market, taker: &Taker) -> Option<Amount> {
        let spec = market.spec();
        let mut total = Some(Amount::ZERO);
        walk(&market.book, &self.orders, taker, |maker, offered| {
            let notional = spec.quote_amount(maker.price(), offered);
            total = total.zip(notional).and_then(|(total, notional)| total.checked_add(notional));
            offered
        });
        total
    }

    /// What a market buy by quantity will pay, fees included, walking the book as the
    /// fills will (one fee per fill, each rounded down).
    fn market_buy_cost(&self, market: &Market, taker: &Taker, taker_bps: u16) -> Result<Amount, RejectReason> {
        let spec = market.spec();
        let mut cost = Some(Amount::ZERO);
        walk(&market.book, &self.orders, taker, |maker, offered| {
            let notional = spec.quote_amount(maker.price(), offered);
            cost = cost
                .zip(notional)
                .and_then(|(cost, notional)| cost.checked_add(notional)?.checked_add(fee(notional, taker_bps)));
            offered
        });
        cost.ok_or(RejectReason::InvalidQuantity)
    }
}

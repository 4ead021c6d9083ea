//! The order-entry application: FIX orders into the engine through the hub, and an
//! ExecutionReport for every state change of the session's orders.
//!
//! - NewOrderSingle (D) → `PlaceOrder`: Symbol (55) a market such as `BTC-USD`, Side
//!   (54) 1 or 2, OrdType (40) 1 market or 2 limit, OrderQty (38) and Price (44) in
//!   decimals on the market's lot and tick grid, TimeInForce (59) 1 GTC, 3 IOC or 4 FOK
//!   (default GTC for a limit, IOC for a market order), ExecInst (18) 6 post-only,
//!   ClOrdID (11) up to 16 bytes, Account (1) one of the session's accounts (default the
//!   first). What cannot be an order is answered at once with an ExecutionReport
//!   Rejected (OrdRejReason 103, Text 58); a resent D (PossResend) whose ClOrdID is live
//!   is ignored.
//! - OrderCancelRequest (F) → `CancelOrder`, OrderCancelReplaceRequest (G) →
//!   `AmendOrder` (OrderQty is the new total; the engine keeps the remainder), the order
//!   named by OrigClOrdID (41). A failure is an OrderCancelReject (9).
//! - The engine's events become ExecutionReports (8): New (150=0), Trade (F) with
//!   LastQty/LastPx for each fill, taker or maker (fills of resting orders arrive as
//!   hub pushes), Canceled (4), Replaced (5), Rejected (8). ExecID is
//!   `<command seq>-<event index>` (a trade adds `m` or `t`): unique and stable across
//!   restarts; rejections made here, before the engine, use `L<start ms>-<n>`.
//! - Any other application message: BusinessMessageReject (j), 380=3.
//!
//! The session tracks the orders it placed (and, when created, the resting orders of
//! its accounts that carry a client order id). Orders placed on the same accounts by
//! other channels are not reported here.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use bourse_core::book::{ClientOrderId, MarketId, OrderId, Price, Qty, Side, TimeInForce};
use bourse_core::command::{AmendOrder, CancelOrder, Command, OrderRef, OrderSize, PlaceOrder};
use bourse_core::event::{CancelReason, Event, RejectReason};
use bourse_core::ids::{AccountId, Seq, Timestamp};
use rust_decimal::Decimal;
use tokio::sync::mpsc;

use super::codec::{Message, OutMessage};
use super::config::FixSessionConfig;
use super::session::{Application, Outbox, Rejection};
use super::tags;
use super::time;
use crate::hub::{Delivery, Hub, SessionHandle};
use crate::metrics::Transport;
use crate::principal::Principal;
use crate::view::{MarketView, ReadModel};

/// Live orders tracked per session; beyond, new orders are refused here.
pub const ORDERS_MAX: usize = 100_000;
/// Requests awaiting the engine's answer per session.
pub const REQUESTS_MAX: usize = 10_000;

/// OrdRejReason (103) values used.
mod ord_rej_reason {
    pub(super) const EXCHANGE_OPTION: u32 = 0;
    pub(super) const UNKNOWN_SYMBOL: u32 = 1;
    pub(super) const EXCHANGE_CLOSED: u32 = 2;
    pub(super) const EXCEEDS_LIMIT: u32 = 3;
    pub(super) const DUPLICATE_ORDER: u32 = 6;
    pub(super) const UNSUPPORTED_CHARACTERISTIC: u32 = 11;
    pub(super) const INCORRECT_QUANTITY: u32 = 13;
    pub(super) const UNKNOWN_ACCOUNT: u32 = 15;
    pub(super) const OTHER: u32 = 99;
}

/// CxlRejReason (102) values used.
mod cxl_rej_reason {
    pub(super) const UNKNOWN_ORDER: u32 = 1;
    pub(super) const EXCHANGE_OPTION: u32 = 2;
    pub(super) const DUPLICATE_CL_ORD_ID: u32 = 6;
    pub(super) const OTHER: u32 = 99;
}

/// ExecType (150) and OrdStatus (39) characters.
const NEW: &str = "0";
const PARTIALLY_FILLED: &str = "1";
const FILLED: &str = "2";
const CANCELED: &str = "4";
const REPLACED: &str = "5";
const REJECTED: &str = "8";
const TRADE: &str = "F";

/// A refusal decided here: (OrdRejReason or CxlRejReason, Text).
type Refusal = (u32, String);

#[derive(Clone, Debug)]
struct Order {
    id: OrderId,
    account: AccountId,
    market: MarketId,
    cl_ord_id: String,
    side: Side,
    limit: bool,
    time_in_force: TimeInForce,
    price: Option<Price>,
    /// The total ordered, fills included.
    order_qty: Qty,
    cum_qty: Qty,
    /// Σ fill price × fill quantity, for AvgPx.
    notional: Decimal,
    /// Cancelled or rejected: nothing leaves.
    closed: bool,
}

impl Order {
    fn leaves(&self) -> Qty {
        if self.closed {
            return Qty::ZERO;
        }
        Qty::new(self.order_qty.lots().saturating_sub(self.cum_qty.lots())).unwrap_or(Qty::ZERO)
    }

    fn status(&self) -> &'static str {
        if self.cum_qty.is_zero() {
            NEW
        } else if self.leaves().is_zero() {
            FILLED
        } else {
            PARTIALLY_FILLED
        }
    }
}

/// A NewOrderSingle on its way to the engine.
#[derive(Clone, Debug)]
struct NewOrder {
    cl_ord_id: String,
    account: AccountId,
    market: MarketId,
    side: Side,
    limit: bool,
    time_in_force: TimeInForce,
    price: Option<Price>,
    qty: Qty,
}

/// An F or G on its way to the engine.
#[derive(Clone, Debug)]
struct Change {
    replace: bool,
    cl_ord_id: String,
    orig_cl_ord_id: String,
    account: AccountId,
    order: Option<OrderId>,
}

#[derive(Clone, Debug)]
enum Request {
    New(NewOrder),
    Change(Change),
}

/// Where an ExecutionReport comes from: the command's seq and time.
#[derive(Clone, Copy, Debug)]
struct Origin {
    seq: Seq,
    time: Timestamp,
}

/// The order-entry application of one FIX session.
#[derive(Debug)]
pub struct OrderEntry {
    hub: Arc<Hub>,
    principal: Principal,
    accounts: Vec<AccountId>,
    handle: SessionHandle,
    events: Option<mpsc::Receiver<Delivery>>,
    next_request: u32,
    requests: HashMap<u32, Request>,
    orders: HashMap<OrderId, Order>,
    by_cl_ord_id: HashMap<(AccountId, String), OrderId>,
    started_ms: i64,
    local_exec: u64,
    /// When each request in flight was read, for the end-to-end latency metric.
    sent_at: HashMap<u32, Instant>,
    logged_on: bool,
}

fn side_of(value: Option<&[u8]>) -> Result<Side, Refusal> {
    match value {
        Some(b"1") => Ok(Side::Buy),
        Some(b"2") => Ok(Side::Sell),
        _ => Err((ord_rej_reason::UNSUPPORTED_CHARACTERISTIC, "Side (54) must be 1 (Buy) or 2 (Sell)".into())),
    }
}

fn side_code(side: Side) -> &'static str {
    match side {
        Side::Buy => "1",
        Side::Sell => "2",
    }
}

fn time_in_force_code(time_in_force: TimeInForce) -> &'static str {
    match time_in_force {
        TimeInForce::Gtc => "1",
        TimeInForce::Ioc => "3",
        TimeInForce::Fok => "4",
    }
}

fn ord_rej_reason_of(reason: RejectReason) -> u32 {
    match reason {
        RejectReason::UnknownMarket => ord_rej_reason::UNKNOWN_SYMBOL,
        RejectReason::UnknownAccount => ord_rej_reason::UNKNOWN_ACCOUNT,
        RejectReason::InsufficientFunds | RejectReason::TooManyOrders => ord_rej_reason::EXCEEDS_LIMIT,
        RejectReason::DuplicateClientOrderId => ord_rej_reason::DUPLICATE_ORDER,
        RejectReason::InvalidQuantity => ord_rej_reason::INCORRECT_QUANTITY,
        RejectReason::InvalidOrder => ord_rej_reason::UNSUPPORTED_CHARACTERISTIC,
        RejectReason::AccountFrozen => ord_rej_reason::EXCHANGE_OPTION,
        _ => ord_rej_reason::OTHER,
    }
}

fn cxl_rej_reason_of(reason: RejectReason) -> u32 {
    match reason {
        RejectReason::UnknownOrder => cxl_rej_reason::UNKNOWN_ORDER,
        RejectReason::DuplicateClientOrderId => cxl_rej_reason::DUPLICATE_CL_ORD_ID,
        RejectReason::AccountFrozen => cxl_rej_reason::EXCHANGE_OPTION,
        _ => cxl_rej_reason::OTHER,
    }
}

fn cancel_reason_text(reason: CancelReason) -> &'static str {
    match reason {
        CancelReason::Requested => "Canceled on request",
        CancelReason::CancelAll => "Canceled with all the account's orders",
        CancelReason::Unfilled => "Unfilled remainder of an immediate order",
        CancelReason::FillOrKill => "Fill-or-kill order could not fill entirely",
        CancelReason::SelfTrade => "Self-trade prevention",
        CancelReason::BudgetSpent => "Quote budget spent",
        CancelReason::AccountFrozen => "Account frozen",
    }
}

fn transact_time(time: Timestamp) -> [u8; time::TIMESTAMP_MS_LEN] {
    time::timestamp_ms(i64::try_from(time.as_nanos() / 1_000_000).unwrap_or(i64::MAX))
}

impl OrderEntry {
    /// A factory for `acceptor::serve`/`spawn`: one application per session, on `hub`.
    pub fn factory(hub: Arc<Hub>) -> impl Fn(&FixSessionConfig) -> anyhow::Result<OrderEntry> + Send + Sync + 'static {
        move |config| OrderEntry::new(Arc::clone(&hub), config)
    }

    /// Registers the session with the hub, acting for its configured accounts.
    pub fn new(hub: Arc<Hub>, config: &FixSessionConfig) -> anyhow::Result<Self> {
        if config.accounts.is_empty() {
            anyhow::bail!("FIX session {} declares no accounts", config.name());
        }
        let accounts: Vec<AccountId> = config.accounts.iter().copied().map(AccountId::new).collect();
        let principal = Principal::accounts(accounts.iter().copied());
        let (handle, events) = hub.open_session(principal.clone());
        let mut entry = OrderEntry {
            hub,
            principal,
            accounts,
            handle,
            events: Some(events),
            next_request: 1,
            requests: HashMap::new(),
            orders: HashMap::new(),
            by_cl_ord_id: HashMap::new(),
            started_ms: time::now_ms(),
            local_exec: 0,
            sent_at: HashMap::new(),
            logged_on: false,
        };
        entry.adopt_resting_orders();
        Ok(entry)
    }

    /// Tracks the resting orders of the session's accounts that carry a client order
    /// id (placed through FIX before a restart, most likely), so their fills are reported.
    fn adopt_resting_orders(&mut self) {
        let hub = Arc::clone(&self.hub);
        let view = hub.view();
        for &account in &self.accounts {
            for order in view.open_orders(account) {
                let Some(cl_ord_id) = order.client_order_id.and_then(ClientOrderId::to_text) else { continue };
                self.by_cl_ord_id.insert((account, cl_ord_id.clone()), order.id);
                self.orders.insert(
                    order.id,
                    Order {
                        id: order.id,
                        account,
                        market: order.market,
                        cl_ord_id,
                        side: order.side,
                        limit: true,
                        time_in_force: TimeInForce::Gtc,
                        price: Some(order.price),
                        order_qty: order.remaining,
                        cum_qty: Qty::ZERO,
                        notional: Decimal::ZERO,
                        closed: false,
                    },
                );
            }
        }
    }

    /// The account a message acts for: Account (1), or the session's first.
    fn account(&self, message: &Message) -> Result<AccountId, Refusal> {
        let Some(text) = message.get_str(tags::ACCOUNT) else { return Ok(self.accounts[0]) };
        text.parse::<u32>()
            .ok()
            .map(AccountId::new)
            .filter(|account| self.principal.may_act_for(*account))
            .ok_or_else(|| (ord_rej_reason::UNKNOWN_ACCOUNT, format!("Account {text} is not one of this session's")))
    }

    fn submit(&mut self, command: Command, request: Request) -> Result<(), Refusal> {
        if self.requests.len() >= REQUESTS_MAX {
            return Err((ord_rej_reason::EXCEEDS_LIMIT, "Too many requests awaiting an answer".into()));
        }
        let mut id = self.next_request;
        while self.requests.contains_key(&id) {
            id = id.wrapping_add(1);
        }
        self.next_request = id.wrapping_add(1);
        self.handle.submit(id, command).map_err(|error| (ord_rej_reason::EXCHANGE_CLOSED, error.to_string()))?;
        self.requests.insert(id, request);
        self.sent_at.insert(id, Instant::now());
        Ok(())
    }

    fn local_exec_id(&mut self, message: &mut OutMessage) {
        self.local_exec += 1;
        message.set_fmt(tags::EXEC_ID, format_args!("L{}-{}", self.started_ms, self.local_exec));
    }

    // ---- inbound ---------------------------------------------------------------------

    fn parse_new(&self, message: &Message) -> Result<NewOrder, Refusal> {
        let cl_ord_id = message.get_str(tags::CL_ORD_ID).unwrap_or_default().to_string();
        if ClientOrderId::from_text(&cl_ord_id).is_none() {
            return Err((ord_rej_reason::OTHER, "ClOrdID (11) must be 1 to 16 bytes".into()));
        }
        let account = self.account(message)?;
        let side = side_of(message.get(tags::SIDE))?;
        let limit = match message.get(tags::ORD_TYPE) {
            Some(b"1") => false,
            Some(b"2") => true,
            _ => {
                let text = "OrdType (40) must be 1 (Market) or 2 (Limit)";
                return Err((ord_rej_reason::UNSUPPORTED_CHARACTERISTIC, text.into()));
            }
        };
        let time_in_force = match (message.get(tags::TIME_IN_FORCE), limit) {
            (None, true) | (Some(b"1"), _) => TimeInForce::Gtc,
            (None, false) | (Some(b"3"), _) => TimeInForce::Ioc,
            (Some(b"4"), _) => TimeInForce::Fok,
            (Some(_), _) => {
                let text = "TimeInForce (59) must be 1 (GTC), 3 (IOC) or 4 (FOK)";
                return Err((ord_rej_reason::UNSUPPORTED_CHARACTERISTIC, text.into()));
            }
        };
        let view = self.hub.view();
        let symbol = message.get_str(tags::SYMBOL).unwrap_or_default();
        let market = view
            .market_by_symbol(symbol)
            .ok_or_else(|| (ord_rej_reason::UNKNOWN_SYMBOL, format!("Unknown symbol {symbol:?}")))?;
        let qty_text = message
            .get_str(tags::ORDER_QTY)
            .ok_or_else(|| (ord_rej_reason::INCORRECT_QUANTITY, "OrderQty (38) is required".to_string()))?;
        let qty = market
            .spec
            .parse_qty(view.assets(), qty_text)
            .map_err(|error| (ord_rej_reason::INCORRECT_QUANTITY, error.to_string()))?;
        let price = if limit {
            let text = message
                .get_str(tags::PRICE)
                .ok_or_else(|| (ord_rej_reason::OTHER, "Price (44) is required for a limit order".to_string()))?;
            Some(
                market
                    .spec
                    .parse_price(view.assets(), text)
                    .map_err(|error| (ord_rej_reason::OTHER, error.to_string()))?,
            )
        } else {
            None
        };
        Ok(NewOrder { cl_ord_id, account, market: market.id, side, limit, time_in_force, price, qty })
    }

    fn new_order(&mut self, message: &Message, out: &mut Outbox) {
        let outcome = self.parse_new(message).and_then(|order| {
            if message.flag(tags::POSS_RESEND)
                && self.by_cl_ord_id.contains_key(&(order.account, order.cl_ord_id.clone()))
            {
                return Ok(());
            }
            if self.orders.len() >= ORDERS_MAX {
                return Err((ord_rej_reason::EXCEEDS_LIMIT, "Too many live orders on this session".into()));
            }
            let command = Command::PlaceOrder(PlaceOrder {
                by: order.account,
                market: order.market,
                side: order.side,
                price: order.price,
                size: OrderSize::Qty(order.qty),
                time_in_force: order.time_in_force,
                post_only: message.get_str(18).is_some_and(|exec_inst| exec_inst.split(' ').any(|code| code == "6")),
                stp: None,
                client_order_id: ClientOrderId::from_text(&order.cl_ord_id),
            });
            self.submit(command, Request::New(order))
        });
        if let Err((reason, text)) = outcome {
            self.reject_new_here(message, reason, &text, out);
        }
    }

    /// An ExecutionReport Rejected for a D refused before the engine.
    fn reject_new_here(&mut self, message: &Message, reason: u32, text: &str, out: &mut Outbox) {
        let report = out.message("8");
        self.local_exec_id(report);
        report.set(tags::ORDER_ID, "NONE").set(tags::EXEC_TYPE, REJECTED).set(tags::ORD_STATUS, REJECTED);
        for tag in
            [tags::CL_ORD_ID, tags::ACCOUNT, tags::SIDE, tags::SYMBOL, tags::ORDER_QTY, tags::ORD_TYPE, tags::PRICE]
        {
            if let Some(value) = message.get(tag) {
                report.set(tag, value);
            }
        }
        report.set(tags::LEAVES_QTY, "0").set(tags::CUM_QTY, "0").set(tags::AVG_PX, "0");
        report.set_u64(tags::ORD_REJ_REASON, u64::from(reason)).set(tags::TEXT, text);
        report.set(tags::TRANSACT_TIME, time::timestamp_ms(time::now_ms()));
    }

    /// Parses an F or G into a change of a known (or client-id-named) order.
    fn parse_change(&self, message: &Message, replace: bool) -> Result<(Change, Command), Refusal> {
        let cl_ord_id = message.get_str(tags::CL_ORD_ID).unwrap_or_default().to_string();
        let orig_cl_ord_id = message.get_str(tags::ORIG_CL_ORD_ID).unwrap_or_default().to_string();
        let account = self.account(message).map_err(|(_, text)| (cxl_rej_reason::OTHER, text))?;
        let order = self
            .by_cl_ord_id
            .get(&(account, orig_cl_ord_id.clone()))
            .and_then(|id| self.orders.get(id))
            .ok_or_else(|| (cxl_rej_reason::UNKNOWN_ORDER, format!("Unknown order {orig_cl_ord_id:?}")))?;
        let change = Change { replace, cl_ord_id, orig_cl_ord_id, account, order: Some(order.id) };
        if !replace {
            let command = Command::CancelOrder(CancelOrder { by: order.account, order: OrderRef::Id(order.id) });
            return Ok((change, command));
        }
        if side_of(message.get(tags::SIDE)).ok() != Some(order.side) {
            return Err((cxl_rej_reason::OTHER, "Side (54) cannot change".into()));
        }
        if !order.limit || message.get(tags::ORD_TYPE) != Some(b"2") {
            return Err((cxl_rej_reason::OTHER, "Only limit orders can be replaced, as limit orders".into()));
        }
        let view = self.hub.view();
        let market = view
            .market(order.market)
            .ok_or_else(|| (cxl_rej_reason::UNKNOWN_ORDER, "The order's market is gone".to_string()))?;
        let price = match message.get_str(tags::PRICE) {
            Some(text) => Some(
                market
                    .spec
                    .parse_price(view.assets(), text)
                    .map_err(|error| (cxl_rej_reason::OTHER, error.to_string()))?,
            ),
            None => None,
        };
        let qty_text = message
            .get_str(tags::ORDER_QTY)
            .ok_or_else(|| (cxl_rej_reason::OTHER, "OrderQty (38) is required".to_string()))?;
        let order_qty = market
            .spec
            .parse_qty(view.assets(), qty_text)
            .map_err(|error| (cxl_rej_reason::OTHER, error.to_string()))?;
        if order_qty <= order.cum_qty {
            return Err((cxl_rej_reason::OTHER, "OrderQty (38) is not above the quantity already filled".into()));
        }
        let remaining = Qty::new(order_qty.lots().saturating_sub(order.cum_qty.lots())).unwrap_or(Qty::ZERO);
        let new_price = price.filter(|price| Some(*price) != order.price);
        let new_qty = (remaining != order.leaves()).then_some(remaining);
        if new_price.is_none() && new_qty.is_none() {
            return Err((cxl_rej_reason::OTHER, "Neither Price (44) nor OrderQty (38) changes".into()));
        }
        let command = Command::AmendOrder(AmendOrder {
            by: order.account,
            order: OrderRef::Id(order.id),
            price: new_price,
            qty: new_qty,
        });
        Ok((change, command))
    }

    fn change_order(&mut self, message: &Message, replace: bool, out: &mut Outbox) {
        let outcome = self.parse_change(message, replace).and_then(|(change, command)| {
            self.submit(command, Request::Change(change)).map_err(|(_, text)| (cxl_rej_reason::OTHER, text))
        });
        if let Err((reason, text)) = outcome {
            let change = Change {
                replace,
                cl_ord_id: message.get_str(tags::CL_ORD_ID).unwrap_or_default().to_string(),
                orig_cl_ord_id: message.get_str(tags::ORIG_CL_ORD_ID).unwrap_or_default().to_string(),
                account: self.account(message).unwrap_or(self.accounts[0]),
                order: None,
            };
            let order = self.by_cl_ord_id.get(&(change.account, change.orig_cl_ord_id.clone())).copied();
            let change = Change { order, ..change };
            self.cancel_reject(&change, reason, &text, None, out);
        }
    }

    /// An OrderCancelReject (9).
    fn cancel_reject(&mut self, change: &Change, reason: u32, text: &str, origin: Option<Origin>, out: &mut Outbox) {
        let known = change.order.and_then(|id| self.orders.get(&id));
        let reply = out.message("9");
        match known {
            Some(order) => {
                reply.set_fmt(tags::ORDER_ID, format_args!("{}", order.id.get())).set(tags::ORD_STATUS, order.status())
            }
            None => reply.set(tags::ORDER_ID, "NONE").set(tags::ORD_STATUS, REJECTED),
        };
        reply.set(tags::CL_ORD_ID, &change.cl_ord_id).set(tags::ORIG_CL_ORD_ID, &change.orig_cl_ord_id);
        reply.set_fmt(tags::ACCOUNT, format_args!("{}", change.account.get()));
        reply.set(tags::CXL_REJ_RESPONSE_TO, if change.replace { "2" } else { "1" });
        reply.set_u64(tags::CXL_REJ_REASON, u64::from(reason)).set(tags::TEXT, text);
        let now = origin.map_or_else(|| time::timestamp_ms(time::now_ms()), |origin| transact_time(origin.time));
        reply.set(tags::TRANSACT_TIME, now);
    }

    // ---- engine results --------------------------------------------------------------

    /// Whether `event` concerns one of the tracked orders.
    fn concerns(&self, event: &Event) -> bool {
        match event {
            Event::Trade { maker_order, taker_order, .. } => {
                self.orders.contains_key(maker_order) || self.orders.contains_key(taker_order)
            }
            Event::OrderCancelled { order, .. } | Event::OrderAmended { order, .. } => self.orders.contains_key(order),
            _ => false,
        }
    }

    fn deliver(&mut self, delivery: &Delivery, out: &mut Outbox) {
        let request = match delivery {
            Delivery::Reply { request, .. } => {
                if let Some(at) = self.sent_at.remove(request) {
                    self.hub.metrics.end_to_end(Transport::Fix).record(at.elapsed());
                }
                self.requests.remove(request)
            }
            Delivery::Push { .. } => None,
        };
        let events = delivery.events();
        if request.is_none() && !events.iter().any(|event| self.concerns(event)) {
            return;
        }
        let applied = delivery.applied();
        let origin = Origin { seq: applied.seq, time: applied.timestamp };
        let hub = Arc::clone(&self.hub);
        let view = hub.view();
        let change = match &request {
            Some(Request::Change(change)) => Some(change),
            _ => None,
        };
        for (index, event) in events.iter().enumerate() {
            match (event, &request) {
                (Event::OrderAccepted { order, .. }, Some(Request::New(new))) => {
                    self.accepted(*order, new, &view, origin, index, out);
                }
                (Event::Rejected { reason, .. }, Some(Request::New(new))) => {
                    rejected(new, *reason, &view, origin, index, out);
                }
                (Event::Rejected { reason, .. }, Some(Request::Change(change))) => {
                    let text = format!("{reason:?}");
                    self.cancel_reject(change, cxl_rej_reason_of(*reason), &text, Some(origin), out);
                }
                _ => self.order_event(event, change, &view, origin, index, out),
            }
        }
    }

    fn accepted(
        &mut self,
        id: OrderId,
        new: &NewOrder,
        view: &ReadModel,
        origin: Origin,
        index: usize,
        out: &mut Outbox,
    ) {
        let order = Order {
            id,
            account: new.account,
            market: new.market,
            cl_ord_id: new.cl_ord_id.clone(),
            side: new.side,
            limit: new.limit,
            time_in_force: new.time_in_force,
            price: new.price,
            order_qty: new.qty,
            cum_qty: Qty::ZERO,
            notional: Decimal::ZERO,
            closed: false,
        };
        report(out, &order, view, origin, NEW, NEW)
            .set_fmt(tags::EXEC_ID, format_args!("{}-{index}", origin.seq.get()));
        self.by_cl_ord_id.insert((order.account, order.cl_ord_id.clone()), id);
        self.orders.insert(id, order);
    }

    /// Trades, cancels and amends of tracked orders.
    fn order_event(
        &mut self,
        event: &Event,
        change: Option<&Change>,
        view: &ReadModel,
        origin: Origin,
        index: usize,
        out: &mut Outbox,
    ) {
        match *event {
            Event::Trade { price, qty, maker_order, taker_order, maker_remaining, taker_remaining, .. } => {
                for (order, remaining, role) in
                    [(maker_order, maker_remaining, 'm'), (taker_order, taker_remaining, 't')]
                {
                    self.fill(order, price, qty, remaining, view, origin, (index, role), out);
                }
            }
            Event::OrderCancelled { order: id, reason, .. } => {
                let Some(mut order) = self.orders.remove(&id) else { return };
                self.by_cl_ord_id.remove(&(order.account, order.cl_ord_id.clone()));
                let requested = change.filter(|change| !change.replace && change.order == Some(id));
                let orig = requested.map(|change| std::mem::replace(&mut order.cl_ord_id, change.cl_ord_id.clone()));
                order.closed = true;
                let message = report(out, &order, view, origin, CANCELED, CANCELED);
                message.set(tags::TEXT, cancel_reason_text(reason));
                message.set_fmt(tags::EXEC_ID, format_args!("{}-{index}", origin.seq.get()));
                if let Some(orig) = orig {
                    message.set(tags::ORIG_CL_ORD_ID, orig);
                }
            }
            Event::OrderAmended { order: id, price, qty, .. } => {
                let Some(order) = self.orders.get_mut(&id) else { return };
                order.price = Some(price);
                order.order_qty = Qty::new(order.cum_qty.lots().saturating_add(qty.lots())).unwrap_or(order.order_qty);
                let mut orig = None;
                if let Some(change) = change.filter(|change| change.replace && change.order == Some(id)) {
                    self.by_cl_ord_id.remove(&(order.account, order.cl_ord_id.clone()));
                    orig = Some(std::mem::replace(&mut order.cl_ord_id, change.cl_ord_id.clone()));
                    self.by_cl_ord_id.insert((order.account, order.cl_ord_id.clone()), id);
                }
                let order = order.clone();
                let message = report(out, &order, view, origin, REPLACED, order.status());
                message.set_fmt(tags::EXEC_ID, format_args!("{}-{index}", origin.seq.get()));
                if let Some(orig) = orig {
                    message.set(tags::ORIG_CL_ORD_ID, orig);
                }
            }
            _ => {}
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn fill(
        &mut self,
        id: OrderId,
        price: Price,
        qty: Qty,
        remaining: Qty,
        view: &ReadModel,
        origin: Origin,
        (index, role): (usize, char),
        out: &mut Outbox,
    ) {
        let Some(order) = self.orders.get_mut(&id) else { return };
        let market = view.market(order.market);
        let price_decimal = market.map_or(Decimal::ZERO, |market| market.spec.price_to_decimal(view.assets(), price));
        let qty_decimal = market.map_or(Decimal::ZERO, |market| market.spec.qty_to_decimal(view.assets(), qty));
        order.cum_qty = Qty::new(order.cum_qty.lots().saturating_add(qty.lots())).unwrap_or(order.cum_qty);
        order.notional = price_decimal
            .checked_mul(qty_decimal)
            .and_then(|value| order.notional.checked_add(value))
            .unwrap_or(order.notional);
        order.order_qty = Qty::new(order.cum_qty.lots().saturating_add(remaining.lots())).unwrap_or(order.order_qty);
        let order = order.clone();
        if remaining.is_zero() {
            self.orders.remove(&id);
            self.by_cl_ord_id.remove(&(order.account, order.cl_ord_id.clone()));
        }
        let message = report(out, &order, view, origin, TRADE, order.status());
        message.set_fmt(tags::EXEC_ID, format_args!("{}-{index}{role}", origin.seq.get()));
        message
            .set_fmt(tags::LAST_PX, format_args!("{price_decimal}"))
            .set_fmt(tags::LAST_QTY, format_args!("{qty_decimal}"));
    }
}

/// An ExecutionReport Rejected for a D the engine refused.
fn rejected(new: &NewOrder, reason: RejectReason, view: &ReadModel, origin: Origin, index: usize, out: &mut Outbox) {
    let order = Order {
        id: OrderId::new(0),
        account: new.account,
        market: new.market,
        cl_ord_id: new.cl_ord_id.clone(),
        side: new.side,
        limit: new.limit,
        time_in_force: new.time_in_force,
        price: new.price,
        order_qty: new.qty,
        cum_qty: Qty::ZERO,
        notional: Decimal::ZERO,
        closed: true,
    };
    let message = report(out, &order, view, origin, REJECTED, REJECTED);
    message.set_fmt(tags::EXEC_ID, format_args!("{}-{index}", origin.seq.get()));
    message.set_u64(tags::ORD_REJ_REASON, u64::from(ord_rej_reason_of(reason)));
    message.set_fmt(tags::TEXT, format_args!("{reason:?}"));
}

/// An ExecutionReport of `order` after the change, without ExecID (the caller sets it).
/// Order id 0 (never assigned) is written `NONE`.
fn report<'a>(
    out: &'a mut Outbox,
    order: &Order,
    view: &ReadModel,
    origin: Origin,
    exec_type: &str,
    status: &str,
) -> &'a mut OutMessage {
    let market: Option<&MarketView> = view.market(order.market);
    let decimal = |qty: Qty| market.map_or(Decimal::ZERO, |market| market.spec.qty_to_decimal(view.assets(), qty));
    let message = out.message("8");
    match order.id.get() {
        0 => message.set(tags::ORDER_ID, "NONE"),
        id => message.set_u64(tags::ORDER_ID, id),
    };
    message.set(tags::CL_ORD_ID, &order.cl_ord_id).set(tags::EXEC_TYPE, exec_type).set(tags::ORD_STATUS, status);
    message.set_fmt(tags::ACCOUNT, format_args!("{}", order.account.get()));
    if let Some(market) = market {
        message.set(tags::SYMBOL, &market.symbol);
    }
    message.set(tags::SIDE, side_code(order.side)).set(tags::ORD_TYPE, if order.limit { "2" } else { "1" });
    message.set(tags::TIME_IN_FORCE, time_in_force_code(order.time_in_force));
    if let (Some(price), Some(market)) = (order.price, market) {
        message.set_fmt(tags::PRICE, format_args!("{}", market.spec.price_to_decimal(view.assets(), price)));
    }
    let cum = decimal(order.cum_qty);
    let average = order.notional.checked_div(cum).map_or(Decimal::ZERO, |average| average.round_dp(12).normalize());
    message.set_fmt(tags::ORDER_QTY, format_args!("{}", decimal(order.order_qty)));
    message.set_fmt(tags::CUM_QTY, format_args!("{cum}"));
    message.set_fmt(tags::LEAVES_QTY, format_args!("{}", decimal(order.leaves())));
    message.set_fmt(tags::AVG_PX, format_args!("{average}"));
    message.set(tags::TRANSACT_TIME, transact_time(origin.time));
    message
}

impl Application for OrderEntry {
    type Event = Delivery;

    /// The hub's deliveries; if the hub dropped this session (a slow consumer), it
    /// registers again (requests then in flight get no report).
    fn take_events(&mut self) -> Option<mpsc::Receiver<Delivery>> {
        if let Some(events) = self.events.take() {
            return Some(events);
        }
        log::warn!(
            "fix: the hub dropped an order-entry session; registering again ({} requests lost)",
            self.requests.len()
        );
        let (handle, events) = self.hub.open_session(self.principal.clone());
        self.handle = handle;
        self.requests.clear();
        self.sent_at.clear();
        Some(events)
    }

    fn on_logon(&mut self, _out: &mut Outbox) {
        if !self.logged_on {
            self.logged_on = true;
            self.hub.metrics.session_opened(Transport::Fix);
        }
    }

    fn on_logout(&mut self) {
        if self.logged_on {
            self.logged_on = false;
            self.hub.metrics.session_closed(Transport::Fix);
        }
    }

    fn on_message(&mut self, message: &Message, out: &mut Outbox) -> Result<(), Rejection> {
        match message.msg_type() {
            b"D" => self.new_order(message, out),
            b"F" => self.change_order(message, false, out),
            b"G" => self.change_order(message, true, out),
            _ => return Err(Rejection::UnsupportedMessageType),
        }
        Ok(())
    }

    fn on_event(&mut self, delivery: Delivery, out: &mut Outbox) {
        self.deliver(&delivery, out);
    }
}

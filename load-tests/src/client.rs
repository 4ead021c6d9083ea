//! One trading session (WebSocket or FIX) and everything it knows: the requests in
//! flight, its resting orders and open authorizations, its share of the
//! reconciliation model, its measurements and the failures it found.
//!
//! The sender thread calls [`ClientState::prepare`] when the session's next request
//! is due: it chooses the operation (from the mix, falling back so that every request
//! makes sense: a cancel needs a resting order), records it in flight and frames it
//! into the connection's output. The reader thread calls `on_ws_message` /
//! `on_fix_message` with what arrives: every reply must answer exactly one request in
//! flight, with the right id and the right op, and its events must agree with what was
//! asked; fills must belong to the session's orders and carry the scheduled fee.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use rand::Rng as _;
use rand::SeedableRng as _;
use rand_chacha::ChaCha8Rng;

use crate::catalog::{Catalog, Market, ORDER_LOTS_MAX, PASSIVE_TICKS, PAYMENT_ASSET};
use crate::crossborder::{self, OpenQuote, Parties, QUOTE_TTL_MS, SLACK_BPS, TIGHT_ONE_IN, Terms};
use crate::fix::{FixMessage, FixWriter, tag};
use crate::limits::{
    IN_FLIGHT_PER_CLIENT_MAX, LIVE_ORDERS_PER_CLIENT_MAX, OPEN_AUTHORIZATIONS_PER_CLIENT_MAX,
    OPEN_QUOTES_PER_CLIENT_MAX,
};
use crate::mix::{Mix, OpKind, Transport};
use crate::model::{ExecTracker, Failures, Ledger};
use crate::stats::{Outcome, SessionStats};
use crate::wire::{Event, Incoming};
use crate::ws::{Masker, OPCODE_PONG, OPCODE_TEXT, encode_frame};

/// What every session shares.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) catalog: Catalog,
    pub(crate) mix: Mix,
    /// Time zero of the run's timelines.
    pub(crate) since: Instant,
    pub(crate) counters: Counters,
    pub(crate) exec: Mutex<ExecTracker>,
    /// Soak: keep every acknowledged command's sequence number and outcome, to find
    /// it again in the journal after a crash.
    pub(crate) record_acks: bool,
}

/// Live counters for the progress bar and the orchestration.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) sent: AtomicU64,
    pub(crate) acked: AtomicU64,
    pub(crate) in_flight: AtomicU64,
    pub(crate) failures: AtomicU64,
    pub(crate) shed: AtomicU64,
    pub(crate) barriers_answered: AtomicU64,
    pub(crate) fills: AtomicU64,
}

/// Who a session is.
#[derive(Clone, Debug)]
pub(crate) struct Identity {
    pub(crate) index: usize,
    pub(crate) transport: Transport,
    /// The account it trades and pays from.
    pub(crate) account: u64,
    /// WebSocket sessions: the second account of their key, payee of their
    /// authorizations and payer of their cross-border payments (it rests no orders, so
    /// no route stops at its own order).
    pub(crate) merchant: Option<u64>,
    /// Accounts its transfers go to (other sessions').
    pub(crate) payees: Vec<u64>,
    /// FIX: its `SenderCompID`.
    pub(crate) comp_id: String,
}

/// Something the reader needs written (a pong, a heartbeat): the sender writes it.
#[derive(Debug)]
pub(crate) enum Control {
    Pong(Vec<u8>),
    Heartbeat(Option<String>),
}

/// Control frames waiting for the sender, shared by a connection's reader and sender.
#[derive(Debug, Default)]
pub(crate) struct Outbox {
    pub(crate) waiting: AtomicBool,
    pub(crate) items: Mutex<Vec<Control>>,
}

impl Outbox {
    pub(crate) fn push(&self, control: Control) {
        self.items.lock().expect("outbox lock").push(control);
        self.waiting.store(true, Ordering::Release);
    }
}

/// The write side of a connection, owned by its sender thread.
#[derive(Debug)]
pub(crate) struct SendSide {
    pub(crate) out: Vec<u8>,
    pub(crate) masker: Masker,
    pub(crate) fix: Option<FixWriter>,
    scratch: String,
    /// Requests framed into `out` and not yet written whole: (the offset just past
    /// the request's last byte, its number), in order.
    pub(crate) unwritten: Vec<(usize, u64)>,
}

impl SendSide {
    pub(crate) fn new(seed: u64, fix: Option<FixWriter>) -> SendSide {
        SendSide {
            out: Vec::with_capacity(64 * 1024),
            masker: Masker::new(seed),
            fix,
            scratch: String::with_capacity(512),
            unwritten: Vec::with_capacity(256),
        }
    }

    /// Frames the waiting control messages.
    pub(crate) fn write_controls(&mut self, outbox: &Outbox) {
        if !outbox.waiting.swap(false, Ordering::AcqRel) {
            return;
        }
        let items = std::mem::take(&mut *outbox.items.lock().expect("outbox lock"));
        for item in items {
            match (item, self.fix.as_mut()) {
                (Control::Pong(payload), _) => encode_frame(&mut self.out, OPCODE_PONG, &payload, &mut self.masker),
                (Control::Heartbeat(test_request), Some(fix)) => {
                    let message = fix.start("0");
                    if let Some(id) = test_request {
                        message.field(tag::TEST_REQ_ID, id);
                    }
                    message.finish(&mut self.out);
                }
                (Control::Heartbeat(_), None) => {}
            }
        }
    }
}

/// A session: who it is, its state (locked by sender and reader in turn), and its outbox.
#[derive(Debug)]
pub(crate) struct Client {
    pub(crate) identity: Identity,
    pub(crate) state: Mutex<ClientState>,
    pub(crate) outbox: Arc<Outbox>,
}

impl Client {
    pub(crate) fn new(identity: Identity, seed: u64) -> Client {
        let state = ClientState::new(seed ^ (identity.index as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
        Client { identity, state: Mutex::new(state), outbox: Arc::new(Outbox::default()) }
    }

    pub(crate) fn lock(&self) -> std::sync::MutexGuard<'_, ClientState> {
        self.state.lock().expect("a client's state lock")
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Side {
    Buy,
    Sell,
}

impl Side {
    fn name(self) -> &'static str {
        match self {
            Side::Buy => "buy",
            Side::Sell => "sell",
        }
    }
    fn fix(self) -> &'static str {
        match self {
            Side::Buy => "1",
            Side::Sell => "2",
        }
    }
}

/// What a request asked, to check its reply against.
#[derive(Clone, Copy, Debug)]
enum Detail {
    Place {
        market: usize,
        side: Side,
        ticks: i64,
        lots: i64,
        ioc: bool,
    },
    Cancel {
        order: u64,
    },
    /// The new price (`price_change`) or the new remaining quantity; the other as it was.
    Amend {
        order: u64,
        market: usize,
        ticks: i64,
        lots: i64,
        price_change: bool,
    },
    Transfer {
        to: u64,
        amount: i128,
    },
    Authorize {
        amount: i128,
    },
    Capture {
        payment: u64,
        amount: i128,
    },
    Void {
        payment: u64,
    },
    /// From the merchant account to `payee`: at most `offered` of the pair's `from`,
    /// the payee to get at least `min_receive` of its `to`.
    PayCrossBorder {
        pair: usize,
        payee: u64,
        offered: i128,
        min_receive: i128,
    },
    /// A quote, from the merchant account to `payee`, for exactly `receive` of the pair's `to`.
    QuotePayment {
        pair: usize,
        payee: u64,
        receive: i128,
    },
    ExecuteQuote {
        quote: OpenQuote,
    },
    /// WebSocket: a cancel of an order that does not exist; FIX: a buy the account
    /// cannot pay for. Either way the engine rejects it.
    Barrier,
}

#[derive(Clone, Copy, Debug)]
struct InFlight {
    op: OpKind,
    intended: Instant,
    sent: Instant,
    detail: Detail,
}

#[derive(Clone, Debug)]
struct LiveOrder {
    market: usize,
    side: Side,
    ticks: i64,
    remaining: i64,
    /// FIX: `OrderQty`, the total ordered (fills included).
    total: i64,
    /// The request number of its current `ClOrdID`.
    cl: u64,
    /// A cancel or amend of it is in flight.
    busy: bool,
    /// The gateway refused a cancel or amend of it as `unknown_order` from its read
    /// model, which may be ahead of this session's deliveries: the fill or cancel that
    /// ended it must still arrive (checked at the end).
    gone: bool,
    ioc: bool,
    placed: (Instant, Instant),
}

impl LiveOrder {
    /// An order just accepted (or found resting) with `lots` left of `lots`, its
    /// `ClOrdID` request `cl`, placed at `placed` (intended, sent).
    fn new(market: usize, side: Side, ticks: i64, lots: i64, cl: u64, ioc: bool, placed: (Instant, Instant)) -> Self {
        Self { market, side, ticks, remaining: lots, total: lots, cl, busy: false, gone: false, ioc, placed }
    }
}

#[derive(Clone, Copy, Debug)]
struct OpenAuth {
    payment: u64,
    amount: i128,
    busy: bool,
}

/// An acknowledged command, for the soak's journal check.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct AckRecord {
    pub(crate) seq: u64,
    pub(crate) op: OpKind,
    pub(crate) by: u64,
    pub(crate) accepted: bool,
    /// The order or payment it made or acted on.
    pub(crate) target: Option<u64>,
    /// Payments: the amount, in the payment asset's minor units.
    pub(crate) amount: Option<i128>,
}

/// A session's state.
#[derive(Debug)]
pub(crate) struct ClientState {
    rng: ChaCha8Rng,
    next_request: u64,
    in_flight: HashMap<u64, InFlight>,
    placing: usize,
    orders: HashMap<u64, LiveOrder>,
    authorizations: Vec<OpenAuth>,
    quotes: Vec<OpenQuote>,
    pub(crate) ledger: Ledger,
    pub(crate) stats: SessionStats,
    pub(crate) failures: Failures,
    pub(crate) acks: Vec<AckRecord>,
    /// The last journal sequence number seen on this session (replies and pushes come in order).
    last_seq: u64,
    /// FIX: the next `MsgSeqNum` expected from the server.
    fix_in_seq: u64,
    pub(crate) pushes: u64,
    pub(crate) fills: u64,
    pub(crate) barrier_answered: bool,
    pub(crate) barrier_sent: bool,
    /// The connection is up (set at login, cleared when the reader sees it close).
    pub(crate) connected: bool,
}

/// The client order id / `ClOrdID` of request `n` of session `index` (at most 16 bytes).
fn cl_text(index: usize, n: u64) -> String {
    format!("{index:x}.{n:x}")
}

/// The request number in a `ClOrdID`, when it is one of session `index`'s.
fn cl_number(index: usize, text: &str) -> Option<u64> {
    let (session, n) = text.split_once('.')?;
    (usize::from_str_radix(session, 16).ok()? == index).then(|| u64::from_str_radix(n, 16).ok()).flatten()
}

/// The journal sequence number in an `ExecID` `<seq>-<index>[m|t]` (none for `L…`, made
/// by the gateway), and whether the report is a maker's (`m`) fill.
fn exec_seq(exec_id: &str) -> Option<(u64, bool)> {
    let (seq, rest) = exec_id.split_once('-')?;
    Some((seq.parse().ok()?, rest.ends_with('m')))
}

impl ClientState {
    fn new(seed: u64) -> ClientState {
        ClientState {
            rng: ChaCha8Rng::seed_from_u64(seed),
            next_request: 1,
            in_flight: HashMap::with_capacity(1024),
            placing: 0,
            orders: HashMap::with_capacity(LIVE_ORDERS_PER_CLIENT_MAX * 2),
            authorizations: Vec::new(),
            quotes: Vec::new(),
            ledger: Ledger::default(),
            stats: SessionStats::default(),
            failures: Failures::default(),
            acks: Vec::new(),
            last_seq: 0,
            fix_in_seq: 1,
            pushes: 0,
            fills: 0,
            barrier_answered: false,
            barrier_sent: false,
            connected: false,
        }
    }

    /// A FIX Logon was answered: the server's next `MsgSeqNum`.
    pub(crate) fn logged_on(&mut self, next_in_seq: u64) {
        self.fix_in_seq = next_in_seq;
        self.connected = true;
    }

    /// Requests in flight by operation (what was lost, at the end).
    pub(crate) fn in_flight_ops(&self) -> Vec<OpKind> {
        self.in_flight.values().map(|flight| flight.op).collect()
    }

    /// After a reconnection (soak): forget what was in flight (its outcome is found
    /// in the journal) and the FIX sequence; the orders and authorizations are set again
    /// by the caller from the server's state.
    pub(crate) fn reconnected(&mut self, orders: Vec<(u64, usize, bool, i64, i64, u64)>) -> usize {
        let lost = self.in_flight.len();
        self.in_flight.clear();
        self.placing = 0;
        self.fix_in_seq = 1;
        self.last_seq = 0;
        self.authorizations.retain(|auth| !auth.busy);
        self.quotes.retain(|quote| !quote.busy);
        let now = Instant::now();
        self.orders = orders
            .into_iter()
            .map(|(id, market, buy, ticks, lots, cl)| {
                let side = if buy { Side::Buy } else { Side::Sell };
                (id, LiveOrder::new(market, side, ticks, lots, cl, false, (now, now)))
            })
            .collect();
        lost
    }

    fn fail(&mut self, shared: &Shared, kind: &'static str, detail: impl FnOnce() -> String) {
        shared.counters.failures.fetch_add(1, Ordering::Relaxed);
        self.failures.record(kind, detail);
    }

    // ---- sending -----------------------------------------------------------------------

    /// Chooses, records and frames the next request. `false` when it was shed (too
    /// many in flight already).
    pub(crate) fn prepare(&mut self, who: &Identity, shared: &Shared, intended: Instant, side: &mut SendSide) -> bool {
        if self.in_flight.len() >= IN_FLIGHT_PER_CLIENT_MAX {
            shared.counters.shed.fetch_add(1, Ordering::Relaxed);
            return false;
        }
        let (op, detail) = self.choose(who, shared);
        self.send(who, shared, intended, side, op, detail);
        true
    }

    /// Requests whose last byte a write just took: their actual send time is `at`. (A
    /// reply that won the race with this stamp was timed from the framing, a few
    /// microseconds earlier.)
    pub(crate) fn written(&mut self, requests: impl Iterator<Item = u64>, at: Instant) {
        for n in requests {
            if let Some(flight) = self.in_flight.get_mut(&n) {
                flight.sent = at;
            }
        }
    }

    /// Frames the end-of-run barrier.
    pub(crate) fn prepare_barrier(&mut self, who: &Identity, shared: &Shared, side: &mut SendSide) {
        let now = Instant::now();
        self.barrier_sent = true;
        self.send(who, shared, now, side, OpKind::Barrier, Detail::Barrier);
    }

    fn send(
        &mut self,
        who: &Identity,
        shared: &Shared,
        intended: Instant,
        side: &mut SendSide,
        op: OpKind,
        detail: Detail,
    ) {
        let n = self.next_request;
        self.next_request += 1;
        match who.transport {
            Transport::Ws => encode_ws(who, &shared.catalog, n, detail, side),
            Transport::Fix => self.encode_fix(who, &shared.catalog, n, detail, side),
        }
        if let Detail::Place { .. } = detail {
            self.placing += 1;
        }
        side.unwritten.push((side.out.len(), n));
        // Stamped again when the write that carries its last byte returns (`written`).
        let sent = Instant::now();
        self.in_flight.insert(n, InFlight { op, intended, sent, detail });
        self.stats.ops[op.index()].sent += 1;
        if op != OpKind::Barrier {
            shared.counters.sent.fetch_add(1, Ordering::Relaxed);
        }
        shared.counters.in_flight.fetch_add(1, Ordering::Relaxed);
    }

    fn choose(&mut self, who: &Identity, shared: &Shared) -> (OpKind, Detail) {
        let idle_orders = self.orders.values().filter(|order| !order.busy && !order.ioc).count();
        let idle_auths = self.authorizations.iter().filter(|auth| !auth.busy).count();
        let idle_quotes = self.quotes.iter().filter(|quote| !quote.busy).count();
        let op =
            match shared.mix.draw(who.transport, &mut self.rng) {
                OpKind::CancelOrder | OpKind::AmendOrder if idle_orders == 0 => OpKind::PlaceOrder,
                OpKind::PlaceOrder if self.orders.len() + self.placing >= LIVE_ORDERS_PER_CLIENT_MAX => {
                    if idle_orders > 0 { OpKind::CancelOrder } else { OpKind::PlaceIoc }
                }
                OpKind::Capture | OpKind::Void if idle_auths == 0 => OpKind::Authorize,
                OpKind::Authorize if self.authorizations.len() >= OPEN_AUTHORIZATIONS_PER_CLIENT_MAX => {
                    if idle_auths > 0 { OpKind::Capture } else { OpKind::Transfer }
                }
                OpKind::ExecuteQuote if idle_quotes == 0 => OpKind::QuotePayment,
                OpKind::QuotePayment if self.quotes.len() >= OPEN_QUOTES_PER_CLIENT_MAX => {
                    if idle_quotes > 0 {
                        OpKind::ExecuteQuote
                    } else {
                        OpKind::PayCrossBorder
                    }
                }
                op => op,
            };
        let detail = match op {
            OpKind::PlaceOrder | OpKind::PlaceIoc => self.plan_place(&shared.catalog, op == OpKind::PlaceIoc),
            OpKind::CancelOrder => {
                let order = self.pick_order(idle_orders);
                Detail::Cancel { order }
            }
            OpKind::AmendOrder => self.plan_amend(&shared.catalog, idle_orders),
            OpKind::Transfer => {
                let to = who.payees[self.rng.random_range(0..who.payees.len())];
                Detail::Transfer { to, amount: self.rng.random_range(1..=5_000) }
            }
            OpKind::Authorize => Detail::Authorize { amount: self.rng.random_range(100..=10_000) },
            OpKind::Capture | OpKind::Void => {
                let pick = self.rng.random_range(0..idle_auths);
                let auth = self.authorizations.iter_mut().filter(|auth| !auth.busy).nth(pick).expect("counted above");
                auth.busy = true;
                let (payment, amount) = (auth.payment, auth.amount);
                if op == OpKind::Capture {
                    // Most captures take it all; some take half (`last` releases the rest).
                    let amount = if self.rng.random_bool(0.7) { amount } else { (amount / 2).max(1) };
                    Detail::Capture { payment, amount }
                } else {
                    Detail::Void { payment }
                }
            }
            OpKind::PayCrossBorder => {
                let (pair, payee, send) = self.draw_cross_border(who, &shared.catalog);
                let estimate = crossborder::mid_receive(&shared.catalog.markets, &shared.catalog.pairs[pair], send);
                let tight = self.rng.random_ratio(1, TIGHT_ONE_IN);
                let min_receive = if tight { estimate } else { estimate * (10_000 - SLACK_BPS) / 10_000 };
                Detail::PayCrossBorder { pair, payee, offered: send, min_receive: min_receive.max(1) }
            }
            OpKind::QuotePayment => {
                let (pair, payee, send) = self.draw_cross_border(who, &shared.catalog);
                let estimate = crossborder::mid_receive(&shared.catalog.markets, &shared.catalog.pairs[pair], send);
                Detail::QuotePayment { pair, payee, receive: (estimate * (10_000 - SLACK_BPS) / 10_000).max(1) }
            }
            OpKind::ExecuteQuote => {
                let pick = self.rng.random_range(0..idle_quotes);
                let quote = self.quotes.iter_mut().filter(|quote| !quote.busy).nth(pick).expect("counted above");
                quote.busy = true;
                Detail::ExecuteQuote { quote: *quote }
            }
            OpKind::Barrier => Detail::Barrier,
        };
        (op, detail)
    }

    /// A pair, a payee (any other account of the load; the session's own trading
    /// account instead of its merchant, the payer) and an amount to send.
    fn draw_cross_border(&mut self, who: &Identity, catalog: &Catalog) -> (usize, u64, i128) {
        let pair = self.rng.random_range(0..catalog.pairs.len());
        let (least, most) = catalog.pairs[pair].send_minor;
        let send = self.rng.random_range(least..=most);
        let picked = who.payees[self.rng.random_range(0..who.payees.len())];
        let payee = if Some(picked) == who.merchant { who.account } else { picked };
        (pair, payee, send)
    }

    fn plan_place(&mut self, catalog: &Catalog, ioc: bool) -> Detail {
        let market = self.rng.random_range(0..catalog.markets.len());
        let spec = &catalog.markets[market];
        let side = if self.rng.random_bool(0.5) { Side::Buy } else { Side::Sell };
        let lots = spec.qty_min_lots * self.rng.random_range(1..=ORDER_LOTS_MAX);
        let away = if ioc { -PASSIVE_TICKS } else { self.rng.random_range(1..=PASSIVE_TICKS) };
        let ticks = match side {
            Side::Buy => spec.mid_ticks - away,
            Side::Sell => spec.mid_ticks + away,
        };
        Detail::Place { market, side, ticks, lots, ioc }
    }

    /// One of the idle resting orders, marked busy.
    fn pick_order(&mut self, idle: usize) -> u64 {
        let pick = self.rng.random_range(0..idle);
        let (id, order) =
            self.orders.iter_mut().filter(|(_, order)| !order.busy && !order.ioc).nth(pick).expect("counted above");
        order.busy = true;
        *id
    }

    fn plan_amend(&mut self, catalog: &Catalog, idle: usize) -> Detail {
        let order = self.pick_order(idle);
        let live = &self.orders[&order];
        let spec = &catalog.markets[live.market];
        let market = live.market;
        if live.remaining > spec.qty_min_lots && self.rng.random_bool(0.5) {
            let lots = live.remaining - spec.qty_min_lots;
            return Detail::Amend { order, market, ticks: live.ticks, lots, price_change: false };
        }
        // One tick nearer to or further from the mid, staying on its side.
        let away = (live.ticks - spec.mid_ticks).abs();
        let away = if away >= PASSIVE_TICKS || (away > 1 && self.rng.random_bool(0.5)) { away - 1 } else { away + 1 };
        let ticks = match live.side {
            Side::Buy => spec.mid_ticks - away,
            Side::Sell => spec.mid_ticks + away,
        };
        Detail::Amend { order, market, ticks, lots: live.remaining, price_change: true }
    }

    fn encode_fix(&mut self, who: &Identity, catalog: &Catalog, n: u64, detail: Detail, side: &mut SendSide) {
        let fix = side.fix.as_mut().expect("a FIX session has a FIX writer");
        let cl = cl_text(who.index, n);
        match detail {
            Detail::Place { market, side: order_side, ticks, lots, ioc } => {
                let spec = &catalog.markets[market];
                let message = fix.start("D");
                let now = message.now_text().to_owned();
                message
                    .field(tag::CL_ORD_ID, &cl)
                    .field(tag::ACCOUNT, who.account)
                    .field(tag::HANDL_INST, 1)
                    .field(tag::SYMBOL, &spec.symbol)
                    .field(tag::SIDE, order_side.fix())
                    .field(tag::ORDER_QTY, spec.qty_text(lots))
                    .field(tag::ORD_TYPE, 2)
                    .field(tag::PRICE, spec.price_text(ticks))
                    .field(tag::TIME_IN_FORCE, if ioc { 3 } else { 1 })
                    .field(tag::TRANSACT_TIME, now);
            }
            Detail::Cancel { order } | Detail::Amend { order, .. } => {
                let live = &self.orders[&order];
                let spec = &catalog.markets[live.market];
                let replace = matches!(detail, Detail::Amend { .. });
                let message = fix.start(if replace { "G" } else { "F" });
                let now = message.now_text().to_owned();
                message
                    .field(tag::CL_ORD_ID, &cl)
                    .field(tag::ORIG_CL_ORD_ID, cl_text(who.index, live.cl))
                    .field(tag::ACCOUNT, who.account)
                    .field(tag::SYMBOL, &spec.symbol)
                    .field(tag::SIDE, live.side.fix());
                if let Detail::Amend { ticks, lots, .. } = detail {
                    // OrderQty is the new total: what was filled plus the new remainder.
                    let total = live.total - live.remaining + lots;
                    message
                        .field(tag::HANDL_INST, 1)
                        .field(tag::ORDER_QTY, spec.qty_text(total))
                        .field(tag::ORD_TYPE, 2)
                        .field(tag::PRICE, spec.price_text(ticks));
                }
                message.field(tag::TRANSACT_TIME, now);
            }
            Detail::Barrier => {
                let spec = &catalog.markets[0];
                let message = fix.start("D");
                let now = message.now_text().to_owned();
                message
                    .field(tag::CL_ORD_ID, &cl)
                    .field(tag::ACCOUNT, who.account)
                    .field(tag::HANDL_INST, 1)
                    .field(tag::SYMBOL, &spec.symbol)
                    .field(tag::SIDE, 1)
                    .field(tag::ORDER_QTY, spec.qty_text(spec.qty_max_lots))
                    .field(tag::ORD_TYPE, 2)
                    .field(tag::PRICE, spec.price_text(spec.mid_ticks))
                    .field(tag::TIME_IN_FORCE, 1)
                    .field(tag::TRANSACT_TIME, now);
            }
            Detail::Transfer { .. }
            | Detail::Authorize { .. }
            | Detail::Capture { .. }
            | Detail::Void { .. }
            | Detail::PayCrossBorder { .. }
            | Detail::QuotePayment { .. }
            | Detail::ExecuteQuote { .. } => {
                unreachable!("FIX sessions send orders only (the mix draws orders for FIX)")
            }
        }
        fix.finish(&mut side.out);
    }

    // ---- receiving: common -------------------------------------------------------------

    /// Replies and pushes carry journal sequence numbers in order: a WebSocket message
    /// names one command (strictly increasing), FIX reports may share one.
    fn observe_seq(&mut self, shared: &Shared, seq: u64, strict: bool) {
        let in_order = if strict { seq > self.last_seq } else { seq >= self.last_seq };
        if !in_order {
            let last = self.last_seq;
            self.fail(shared, "out_of_order", || format!("seq {seq} after seq {last}"));
        }
        self.last_seq = self.last_seq.max(seq);
    }

    /// Takes the request `n` out of flight and records its acknowledgement; `None`
    /// (and a failure) when `n` is not in flight: answered twice, or never asked.
    fn answer(&mut self, shared: &Shared, n: u64, now: Instant, outcome: Outcome<'_>) -> Option<InFlight> {
        let Some(flight) = self.in_flight.remove(&n) else {
            if n < self.next_request {
                self.fail(shared, "duplicated", || format!("request {n} answered again: {outcome:?}"));
            } else {
                self.fail(shared, "mismatched", || format!("a reply to request {n}, never sent: {outcome:?}"));
            }
            return None;
        };
        if let Detail::Place { .. } = flight.detail {
            self.placing = self.placing.saturating_sub(1);
        }
        // The gateway may refuse (no `seq`) only a cancel or amend of an order its read
        // model no longer has open; any other refusal (busy, rate limited, malformed…)
        // is an answer the load did not get, so the run fails rather than count it.
        if let Outcome::Refused(code) = outcome
            && !(code == "unknown_order" && matches!(flight.detail, Detail::Cancel { .. } | Detail::Amend { .. }))
        {
            self.fail(shared, "refused", || format!("{} request {n} refused by the gateway: {code}", flight.op));
        }
        self.stats.acked(flight.op, flight.intended, flight.sent, now, outcome, shared.since);
        shared.counters.in_flight.fetch_sub(1, Ordering::Relaxed);
        if flight.op == OpKind::Barrier {
            self.barrier_answered = true;
            shared.counters.barriers_answered.fetch_add(1, Ordering::Relaxed);
        } else {
            shared.counters.acked.fetch_add(1, Ordering::Relaxed);
        }
        Some(flight)
    }

    fn record_ack(&mut self, shared: &Shared, record: AckRecord) {
        if shared.record_acks {
            self.acks.push(record);
        }
    }

    /// A cancel or amend refused because the order is not open. From the engine (with
    /// a `seq`) the order must not be one the session believes resting: the fill or
    /// cancel that ended it has a lower `seq`, so it arrived first. From the gateway (no
    /// `seq`, answered from its read model) that event may still be on its way: the
    /// order is marked and must be gone by the end.
    fn order_gone(&mut self, shared: &Shared, order: u64, code: &str, seq: Option<u64>) {
        if seq.is_none() {
            if let Some(live) = self.orders.get_mut(&order) {
                live.gone = true;
            }
        } else if self.orders.remove(&order).is_some() {
            self.fail(shared, "order_vanished", || {
                format!("order {order}: {code}, but no fill or cancel said it was gone")
            });
        }
    }

    /// Orders refused as unknown whose end never arrived (checked after the barrier).
    pub(crate) fn vanished_orders(&self) -> Vec<u64> {
        self.orders.iter().filter(|(_, order)| order.gone).map(|(id, _)| *id).collect()
    }

    fn release(&mut self, order: u64) {
        if let Some(live) = self.orders.get_mut(&order) {
            live.busy = false;
        }
    }

    /// A fill of one of the session's orders (`lots` at `ticks`, `remaining` after it).
    #[allow(clippy::too_many_arguments)]
    fn fill(
        &mut self,
        who: &Identity,
        shared: &Shared,
        order_id: u64,
        (ticks, lots, remaining): (i64, i64, Option<i64>),
        fee: Option<i128>,
        maker: bool,
        seq: Option<u64>,
        now: Instant,
    ) {
        let Some(order) = self.orders.get_mut(&order_id) else {
            self.fail(shared, "unmatched_fill", || format!("a fill of order {order_id}, not one of the session's"));
            return;
        };
        let spec = &shared.catalog.markets[order.market];
        let overfill = lots > order.remaining;
        order.remaining -= lots.min(order.remaining);
        let (left, side, placed, market) = (order.remaining, order.side, order.placed, order.market);
        if left == 0 {
            self.orders.remove(&order_id);
        }
        let notional = spec.notional(ticks, lots);
        let expected_fee = Market::fee(notional, if maker { spec.fee_bps.0 } else { spec.fee_bps.1 });
        self.ledger.fill(who.account, spec, side == Side::Buy, lots, notional, expected_fee);
        self.fills += 1;
        shared.counters.fills.fetch_add(1, Ordering::Relaxed);
        if overfill {
            self.fail(shared, "overfill", || format!("order {order_id} filled {lots} lots with fewer remaining"));
        }
        if let Some(reported) = remaining.filter(|reported| *reported != left) {
            self.fail(shared, "mismatched", || {
                format!("order {order_id}: {reported} lots remaining reported, {left} expected")
            });
        }
        if let Some(fee) = fee.filter(|fee| *fee != expected_fee) {
            let symbol = &shared.catalog.markets[market].symbol;
            self.fail(shared, "fee", || {
                format!("{symbol} fill of order {order_id}: fee {fee}, the schedule says {expected_fee}")
            });
        }
        if let Some(seq) = seq {
            let mut exec = shared.exec.lock().expect("exec tracker lock");
            if maker {
                exec.maker(seq, now);
            } else {
                exec.taker(seq, placed.0, placed.1);
            }
        }
    }
}

/// Frames a WebSocket request.
fn encode_ws(who: &Identity, catalog: &Catalog, n: u64, detail: Detail, side: &mut SendSide) {
    let text = &mut side.scratch;
    text.clear();
    let by = who.account;
    let usd = catalog.asset(PAYMENT_ASSET).expect("the payment asset exists");
    let key = |n: u64| format!("{:08x}{n:024x}", who.index);
    let _ = match detail {
        Detail::Place { market, side: order_side, ticks, lots, ioc } => {
            let spec = &catalog.markets[market];
            write!(
                text,
                r#"{{"id":{n},"op":"place_order","by":{by},"market":"{}","side":"{}","price":"{}","qty":"{}","client_order_id":"{}"{}}}"#,
                spec.symbol,
                order_side.name(),
                spec.price_text(ticks),
                spec.qty_text(lots),
                cl_text(who.index, n),
                if ioc { r#","time_in_force":"ioc""# } else { "" }
            )
        }
        Detail::Cancel { order } => write!(text, r#"{{"id":{n},"op":"cancel_order","by":{by},"order_id":{order}}}"#),
        Detail::Amend { order, market, ticks, lots, price_change } => {
            // Only what changes: a smaller quantity alone keeps the order's priority.
            let spec = &catalog.markets[market];
            let (field, value) =
                if price_change { ("price", spec.price_text(ticks)) } else { ("qty", spec.qty_text(lots)) };
            write!(text, r#"{{"id":{n},"op":"amend_order","by":{by},"order_id":{order},"{field}":"{value}"}}"#)
        }
        Detail::Transfer { to, amount } => write!(
            text,
            r#"{{"id":{n},"op":"transfer","by":{by},"to":{to},"asset":"{PAYMENT_ASSET}","amount":"{}","key":"{}"}}"#,
            catalog.format_minor(usd, amount),
            key(n)
        ),
        Detail::Authorize { amount } => write!(
            text,
            r#"{{"id":{n},"op":"authorize","by":{by},"payee":{},"asset":"{PAYMENT_ASSET}","amount":"{}","expires_in":3600,"key":"{}"}}"#,
            who.merchant.expect("a WebSocket session has a merchant account"),
            catalog.format_minor(usd, amount),
            key(n)
        ),
        Detail::Capture { payment, amount } => write!(
            text,
            r#"{{"id":{n},"op":"capture","by":{},"payment":{payment},"asset":"{PAYMENT_ASSET}","amount":"{}","last":true,"key":"{}"}}"#,
            who.merchant.expect("a WebSocket session has a merchant account"),
            catalog.format_minor(usd, amount),
            key(n)
        ),
        Detail::Void { payment } => {
            write!(text, r#"{{"id":{n},"op":"void","by":{by},"payment":{payment},"key":"{}"}}"#, key(n))
        }
        Detail::PayCrossBorder { pair, payee, offered, min_receive } => {
            let pair = &catalog.pairs[pair];
            write!(
                text,
                r#"{{"id":{n},"op":"pay_cross_border","by":{},"payee":{payee},"from":"{}","to":"{}","send":"{}","min_receive":"{}","key":"{}"}}"#,
                who.merchant.expect("a WebSocket session has a merchant account"),
                catalog.assets[pair.from].code,
                catalog.assets[pair.to].code,
                catalog.format_minor(pair.from, offered),
                catalog.format_minor(pair.to, min_receive),
                key(n)
            )
        }
        Detail::QuotePayment { pair, payee, receive } => {
            let pair = &catalog.pairs[pair];
            write!(
                text,
                r#"{{"id":{n},"op":"quote_payment","by":{},"payee":{payee},"from":"{}","to":"{}","receive":"{}","ttl_ms":{QUOTE_TTL_MS}}}"#,
                who.merchant.expect("a WebSocket session has a merchant account"),
                catalog.assets[pair.from].code,
                catalog.assets[pair.to].code,
                catalog.format_minor(pair.to, receive),
            )
        }
        Detail::ExecuteQuote { quote } => write!(
            text,
            r#"{{"id":{n},"op":"execute_quote","by":{},"quote":{},"key":"{}"}}"#,
            who.merchant.expect("a WebSocket session has a merchant account"),
            quote.quote,
            key(n)
        ),
        Detail::Barrier => write!(text, r#"{{"id":{n},"op":"cancel_order","by":{by},"order_id":999999999999}}"#),
    };
    encode_frame(&mut side.out, OPCODE_TEXT, text.as_bytes(), &mut side.masker);
}

// ---- receiving: WebSocket -------------------------------------------------------------

impl ClientState {
    /// One whole WebSocket text message from the server.
    pub(crate) fn on_ws_message(&mut self, who: &Identity, shared: &Shared, text: &[u8], now: Instant) {
        let incoming: Incoming<'_> = match serde_json::from_slice(text) {
            Ok(incoming) => incoming,
            Err(error) => {
                let text = String::from_utf8_lossy(&text[..text.len().min(200)]).into_owned();
                self.fail(shared, "malformed", || format!("{error}: {text}"));
                return;
            }
        };
        if incoming.channel.as_deref() == Some("account") {
            self.on_push(who, shared, &incoming, now);
        } else if let Some(n) = incoming.id {
            self.on_reply(who, shared, n, &incoming, now);
        } else {
            let error = incoming.error.as_ref().map(|error| format!("{}: {}", error.code, error.message));
            self.fail(shared, "unsolicited", || error.unwrap_or_else(|| String::from_utf8_lossy(text).into_owned()));
        }
    }

    fn on_reply(&mut self, who: &Identity, shared: &Shared, n: u64, incoming: &Incoming<'_>, now: Instant) {
        let code = incoming.error.as_ref().map_or("", |error| error.code.as_ref());
        let outcome = match (incoming.ok, incoming.seq) {
            (Some(true), _) => Outcome::Ok,
            (Some(false), Some(_)) => Outcome::Rejected(code),
            _ => Outcome::Refused(if code.is_empty() { "malformed" } else { code }),
        };
        let Some(flight) = self.answer(shared, n, now, outcome) else { return };
        if let Some(seq) = incoming.seq {
            self.observe_seq(shared, seq, true);
        }
        if incoming.replayed {
            self.fail(shared, "replayed", || format!("request {n} ({}) answered as a replay", flight.op));
        }
        let ok = outcome == Outcome::Ok;
        let result = incoming.result.as_ref();
        let target = match flight.detail {
            Detail::Place { .. } => result.and_then(|result| result.order_id),
            Detail::Cancel { order } | Detail::Amend { order, .. } => Some(order),
            Detail::Capture { payment, .. } | Detail::Void { payment } => Some(payment),
            Detail::QuotePayment { .. } => result.and_then(|result| result.quote),
            _ => result.and_then(|result| result.payment),
        };
        if let Some(seq) = incoming.seq {
            let by = if matches!(
                flight.detail,
                Detail::Capture { .. }
                    | Detail::PayCrossBorder { .. }
                    | Detail::QuotePayment { .. }
                    | Detail::ExecuteQuote { .. }
            ) {
                who.merchant.unwrap_or(who.account)
            } else {
                who.account
            };
            let amount = match flight.detail {
                Detail::Transfer { amount, .. } | Detail::Authorize { amount } | Detail::Capture { amount, .. } => {
                    Some(amount)
                }
                Detail::PayCrossBorder { offered, .. } => Some(offered),
                Detail::QuotePayment { receive, .. } => Some(receive),
                _ => None,
            };
            self.record_ack(shared, AckRecord { seq, op: flight.op, by, accepted: ok, target, amount });
        }
        let events = &incoming.events;
        match flight.detail {
            Detail::Place { .. } if ok => self.placed_ws(who, shared, n, flight, target, incoming.seq, events, now),
            Detail::Cancel { order } | Detail::Amend { order, .. } if ok => {
                let expected = if flight.op == OpKind::CancelOrder { "order_cancelled" } else { "order_amended" };
                if !events.iter().any(|event| event.kind == expected && event.order_id == Some(order)) {
                    self.fail(shared, "mismatched", || format!("{} of order {order}: no {expected} event", flight.op));
                }
                self.order_events(who, shared, events, incoming.seq, now, false);
                if flight.op == OpKind::CancelOrder && self.orders.remove(&order).is_some() {
                    self.fail(shared, "mismatched", || format!("order {order} still resting after its cancel"));
                }
                self.release(order);
            }
            Detail::Cancel { order } | Detail::Amend { order, .. } if code == "unknown_order" => {
                self.order_gone(shared, order, code, incoming.seq);
            }
            Detail::Cancel { order } | Detail::Amend { order, .. } => self.release(order),
            Detail::Barrier if ok => self.fail(shared, "mismatched", || "the barrier was accepted".into()),
            Detail::Transfer { .. } | Detail::Authorize { .. } | Detail::Capture { .. } | Detail::Void { .. } => {
                self.paid(
                    who,
                    shared,
                    n,
                    flight.detail,
                    ok && outcome != Outcome::Refused(code),
                    outcome,
                    target,
                    events,
                );
            }
            Detail::PayCrossBorder { .. } | Detail::QuotePayment { .. } | Detail::ExecuteQuote { .. } => {
                self.cross_border(who, shared, n, flight, outcome, incoming, now);
            }
            Detail::Place { .. } | Detail::Barrier => {}
        }
    }

    /// The reply to a cross-border request. A rejection must be one the op may
    /// legitimately meet (`crossborder::legitimate_rejection`); a payment must check
    /// out (`crossborder::check_paid`), and then the model books the payer's send and
    /// the payee's receive. Fills of the session's own resting orders by the legs are
    /// in this reply, not pushed: they are accounted like any maker's fills.
    #[allow(clippy::too_many_arguments)]
    fn cross_border(
        &mut self,
        who: &Identity,
        shared: &Shared,
        n: u64,
        flight: InFlight,
        outcome: Outcome<'_>,
        incoming: &Incoming<'_>,
        now: Instant,
    ) {
        if let Detail::ExecuteQuote { quote } = flight.detail {
            if let Outcome::Refused(_) = outcome {
                if let Some(open) = self.quotes.iter_mut().find(|open| open.quote == quote.quote) {
                    open.busy = false;
                }
            } else {
                self.quotes.retain(|open| open.quote != quote.quote);
            }
        }
        match outcome {
            Outcome::Ok => {}
            Outcome::Rejected(code) if crossborder::legitimate_rejection(flight.op, code) => return,
            Outcome::Rejected(code) => {
                let message = incoming.error.as_ref().map(|error| error.message.to_string()).unwrap_or_default();
                self.fail(shared, "unexpected_rejection", || format!("{} request {n}: {code}: {message}", flight.op));
                return;
            }
            // Reported as a failure by `answer`.
            Outcome::Refused(_) => return,
        }
        let payer = who.merchant.expect("a WebSocket session has a merchant account");
        let (catalog, result, events) = (&shared.catalog, incoming.result.as_ref(), &incoming.events);
        let parties = |pair: usize, payee: u64| {
            let pair = &catalog.pairs[pair];
            Parties { payer, payee, from: pair.from, to: pair.to }
        };
        let (parties, terms) = match flight.detail {
            Detail::QuotePayment { pair, payee, receive } => {
                match crossborder::check_quoted(catalog, parties(pair, payee), receive, result, events) {
                    Ok((quote, send)) => self.quotes.push(OpenQuote { quote, payee, pair, send, receive, busy: false }),
                    Err(why) => self.fail(shared, "mismatched", || format!("quote_payment request {n}: {why}")),
                }
                return;
            }
            Detail::PayCrossBorder { pair, payee, offered, min_receive } => {
                (parties(pair, payee), Terms::Direct { offered, min_receive })
            }
            Detail::ExecuteQuote { quote: open } => (
                parties(open.pair, open.payee),
                Terms::Quote { quote: open.quote, send: open.send, receive: open.receive },
            ),
            _ => return,
        };
        match crossborder::check_paid(catalog, parties, terms, result, events) {
            Ok(paid) => {
                self.ledger.add(parties.payer, parties.from, -paid.send);
                self.ledger.add(parties.payee, parties.to, paid.receive);
                if let (Some(seq), true) = (incoming.seq, paid.taker_fills > 0) {
                    shared.exec.lock().expect("exec tracker lock").taker(seq, flight.intended, flight.sent);
                }
            }
            Err(why) => self.fail(shared, "mismatched", || format!("{} request {n}: {why}", flight.op)),
        }
        let own = events.iter().filter(|event| !(event.kind == "fill" && event.account == Some(payer)));
        self.order_events(who, shared, own, incoming.seq, now, true);
    }

    #[allow(clippy::too_many_arguments)]
    fn placed_ws(
        &mut self,
        who: &Identity,
        shared: &Shared,
        n: u64,
        flight: InFlight,
        order_id: Option<u64>,
        seq: Option<u64>,
        events: &[Event<'_>],
        now: Instant,
    ) {
        let Detail::Place { market, side, ticks, lots, ioc } = flight.detail else { return };
        let Some(order_id) = order_id else {
            self.fail(shared, "mismatched", || format!("place_order {n}: no order_id in the result"));
            return;
        };
        let spec = &shared.catalog.markets[market];
        let cl = cl_text(who.index, n);
        let matches = events.iter().any(|event| {
            event.kind == "order_accepted"
                && event.order_id == Some(order_id)
                && event.client_order_id.as_deref() == Some(cl.as_str())
                && event.market.as_deref() == Some(spec.symbol.as_str())
                && event.side.as_deref() == Some(side.name())
                && event.price.as_deref().and_then(|price| spec.ticks(price)) == Some(ticks)
                && event.qty.as_deref().and_then(|qty| spec.lots(qty)) == Some(lots)
        });
        if !matches {
            self.fail(shared, "mismatched", || {
                format!("place_order {n}: order_accepted does not match {cl} {} {ticks}x{lots}", side.name())
            });
        }
        let placed = (flight.intended, flight.sent);
        self.orders.insert(order_id, LiveOrder::new(market, side, ticks, lots, n, ioc, placed));
        self.order_events(who, shared, events, seq, now, false);
        if ioc && self.orders.remove(&order_id).is_some() {
            self.fail(shared, "mismatched", || format!("immediate-or-cancel order {order_id} was left resting"));
        }
    }

    /// Fills, cancels and amends among `events` (a reply's, or a push's). `push`: of
    /// another session's command (so fills are the maker's).
    fn order_events<'e, 'a: 'e>(
        &mut self,
        who: &Identity,
        shared: &Shared,
        events: impl IntoIterator<Item = &'e Event<'a>>,
        seq: Option<u64>,
        now: Instant,
        push: bool,
    ) {
        for event in events {
            match event.kind.as_ref() {
                "fill" => self.ws_fill(who, shared, event, seq, now, push),
                "order_cancelled" => {
                    let id = event.order_id.unwrap_or_default();
                    if self.orders.remove(&id).is_none() && push {
                        self.fail(shared, "unmatched_fill", || {
                            format!("a cancel of order {id}, not one of the session's")
                        });
                    }
                }
                "order_amended" => {
                    let id = event.order_id.unwrap_or_default();
                    let Some(order) = self.orders.get_mut(&id) else { continue };
                    let spec = &shared.catalog.markets[order.market];
                    let (ticks, lots) = (
                        event.price.as_deref().and_then(|p| spec.ticks(p)),
                        event.qty.as_deref().and_then(|q| spec.lots(q)),
                    );
                    if let (Some(ticks), Some(lots)) = (ticks, lots) {
                        order.total += lots - order.remaining;
                        (order.ticks, order.remaining) = (ticks, lots);
                    } else {
                        self.fail(shared, "malformed", || format!("order_amended of {id} without price or qty"));
                    }
                }
                _ => {}
            }
        }
    }

    fn ws_fill(
        &mut self,
        who: &Identity,
        shared: &Shared,
        event: &Event<'_>,
        seq: Option<u64>,
        now: Instant,
        push: bool,
    ) {
        let order_id = event.order_id.unwrap_or_default();
        let Some(order) = self.orders.get(&order_id) else {
            self.fail(shared, "unmatched_fill", || format!("a fill of order {order_id}, not one of the session's"));
            return;
        };
        let spec = &shared.catalog.markets[order.market];
        let parsed = (
            event.price.as_deref().and_then(|price| spec.ticks(price)),
            event.qty.as_deref().and_then(|qty| spec.lots(qty)),
            event.remaining.as_deref().and_then(|qty| spec.lots(qty)),
            event.fee.as_deref().and_then(|fee| shared.catalog.minor(spec.quote, fee)),
        );
        let (Some(ticks), Some(lots), remaining, Some(fee)) = parsed else {
            self.fail(shared, "malformed", || format!("a fill of order {order_id} without price, qty or fee"));
            return;
        };
        if event.market.as_deref() != Some(spec.symbol.as_str())
            || event.side.as_deref() != Some(order.side.name())
            || event.account != Some(who.account)
        {
            self.fail(shared, "mismatched", || format!("a fill of order {order_id} in another market or side"));
        }
        let maker = event.liquidity.as_deref() == Some("maker");
        if maker != push {
            self.fail(shared, "mismatched", || {
                format!(
                    "a {} fill of order {order_id} in a {}",
                    if maker { "maker" } else { "taker" },
                    if push { "push" } else { "reply" }
                )
            });
        }
        self.fill(who, shared, order_id, (ticks, lots, remaining), Some(fee), maker, seq, now);
    }

    #[allow(clippy::too_many_arguments)]
    fn paid(
        &mut self,
        who: &Identity,
        shared: &Shared,
        n: u64,
        detail: Detail,
        ok: bool,
        outcome: Outcome<'_>,
        payment: Option<u64>,
        events: &[Event<'_>],
    ) {
        let usd = shared.catalog.asset(PAYMENT_ASSET).expect("the payment asset exists");
        let amount_of =
            |event: &Event<'_>| event.amount.as_deref().and_then(|amount| shared.catalog.minor(usd, amount));
        let merchant = who.merchant.unwrap_or(who.account);
        match detail {
            Detail::Capture { payment: id, .. } | Detail::Void { payment: id } => {
                if matches!(outcome, Outcome::Refused(_)) {
                    if let Some(auth) = self.authorizations.iter_mut().find(|auth| auth.payment == id) {
                        auth.busy = false;
                    }
                    return;
                }
                self.authorizations.retain(|auth| auth.payment != id);
            }
            _ => {}
        }
        if !ok {
            return;
        }
        let found = match detail {
            Detail::Transfer { to, amount } => events.iter().find(|event| {
                event.kind == "transferred"
                    && event.account_from() == Some(who.account)
                    && event.account_to() == Some(to)
                    && amount_of(event) == Some(amount)
                    && event.payment == payment
            }),
            Detail::Authorize { amount } => events.iter().find(|event| {
                event.kind == "authorized"
                    && event.payer == Some(who.account)
                    && event.payee == Some(merchant)
                    && amount_of(event) == Some(amount)
                    && event.payment == payment
            }),
            Detail::Capture { payment: id, amount } => events.iter().find(|event| {
                event.kind == "captured"
                    && event.payment == Some(id)
                    && event.payee == Some(merchant)
                    && amount_of(event) == Some(amount)
            }),
            Detail::Void { payment: id } => {
                events.iter().find(|event| event.kind == "voided" && event.payment == Some(id))
            }
            _ => None,
        };
        if found.is_none() {
            self.fail(shared, "mismatched", || format!("request {n}: the events do not show the {detail:?} asked for"));
            return;
        }
        match detail {
            Detail::Transfer { to, amount } => self.ledger.pay(who.account, to, usd, amount),
            Detail::Capture { amount, .. } => self.ledger.pay(who.account, merchant, usd, amount),
            Detail::Authorize { amount } => {
                let payment = payment.unwrap_or_default();
                self.authorizations.push(OpenAuth { payment, amount, busy: false });
            }
            _ => {}
        }
    }

    fn on_push(&mut self, who: &Identity, shared: &Shared, incoming: &Incoming<'_>, now: Instant) {
        self.pushes += 1;
        if let Some(seq) = incoming.seq {
            self.observe_seq(shared, seq, true);
        }
        self.order_events(who, shared, &incoming.events, incoming.seq, now, true);
    }
}

// ---- receiving: FIX -------------------------------------------------------------------

impl ClientState {
    /// One whole FIX message from the server.
    pub(crate) fn on_fix_message(
        &mut self,
        who: &Identity,
        shared: &Shared,
        message: &FixMessage<'_>,
        outbox: &Outbox,
        now: Instant,
    ) {
        match message.seq() {
            Some(seq) if seq == self.fix_in_seq => self.fix_in_seq += 1,
            seq => {
                let expected = self.fix_in_seq;
                self.fail(shared, "fix_sequence", || format!("MsgSeqNum {seq:?}, expected {expected}"));
                self.fix_in_seq = seq.map_or(expected, |seq| seq + 1);
            }
        }
        match message.msg_type() {
            "8" => self.execution_report(who, shared, message, now),
            "9" => self.cancel_reject(who, shared, message, now),
            "0" | "A" | "5" => {}
            "1" => outbox.push(Control::Heartbeat(message.get(tag::TEST_REQ_ID).map(str::to_owned))),
            "4" => {
                if let Some(next) = message.get(tag::NEW_SEQ_NO).and_then(|text| text.parse().ok()) {
                    self.fix_in_seq = next;
                }
            }
            other => {
                let text = message.get(tag::TEXT).unwrap_or_default().to_owned();
                let begin = message.get(tag::BEGIN_SEQ_NO).unwrap_or_default().to_owned();
                self.fail(shared, "fix_reject", || format!("35={other}: {text} {begin}"));
            }
        }
    }

    fn execution_report(&mut self, who: &Identity, shared: &Shared, message: &FixMessage<'_>, now: Instant) {
        let exec_type = message.get(tag::EXEC_TYPE).unwrap_or_default();
        let n = message.get(tag::CL_ORD_ID).and_then(|cl| cl_number(who.index, cl));
        let exec = message.get(tag::EXEC_ID).and_then(exec_seq);
        let seq = exec.map(|(seq, _)| seq);
        if let Some(seq) = seq {
            self.observe_seq(shared, seq, false);
        }
        let order_id = message.get(tag::ORDER_ID).and_then(|id| id.parse::<u64>().ok());
        let flight = n.and_then(|n| self.in_flight.get(&n).copied());
        match (exec_type, flight) {
            ("0", Some(InFlight { detail: Detail::Place { .. } | Detail::Barrier, .. })) => {
                self.fix_new(who, shared, n.unwrap_or_default(), order_id, seq, message, now);
            }
            ("8", Some(InFlight { detail: Detail::Place { .. } | Detail::Barrier, .. })) => {
                let text = message.get(tag::TEXT).unwrap_or("rejected");
                let outcome = if seq.is_some() { Outcome::Rejected(text) } else { Outcome::Refused(text) };
                if let Some(flight) = self.answer(shared, n.unwrap_or_default(), now, outcome)
                    && let Some(seq) = seq
                {
                    self.record_ack(
                        shared,
                        AckRecord { seq, op: flight.op, by: who.account, accepted: false, target: None, amount: None },
                    );
                }
            }
            ("4" | "5", Some(InFlight { detail: Detail::Cancel { order } | Detail::Amend { order, .. }, op, .. })) => {
                let expected = if op == OpKind::CancelOrder { "4" } else { "5" };
                let flight = self.answer(shared, n.unwrap_or_default(), now, Outcome::Ok);
                if exec_type != expected || order_id != Some(order) {
                    self.fail(shared, "mismatched", || {
                        format!("{op} of order {order}: ExecType {exec_type} for order {order_id:?}")
                    });
                }
                if let (Some(seq), Some(flight)) = (seq, flight) {
                    self.record_ack(
                        shared,
                        AckRecord {
                            seq,
                            op: flight.op,
                            by: who.account,
                            accepted: true,
                            target: Some(order),
                            amount: None,
                        },
                    );
                }
                if exec_type == "4" {
                    self.orders.remove(&order);
                } else {
                    self.fix_replaced(shared, order, n.unwrap_or_default(), message);
                }
            }
            ("F", _) => self.fix_fill(who, shared, order_id.unwrap_or_default(), exec, message, now),
            ("4", None) => {
                // An immediate order's unfilled rest, or self-trade prevention.
                let id = order_id.unwrap_or_default();
                if self.orders.remove(&id).is_none() {
                    self.fail(shared, "unmatched_fill", || format!("a cancel of order {id}, not one of the session's"));
                }
            }
            _ => {
                let cl = message.get(tag::CL_ORD_ID).unwrap_or_default().to_owned();
                self.fail(shared, "mismatched", || {
                    format!("an ExecutionReport 150={exec_type} for ClOrdID {cl}, unexpected")
                });
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn fix_new(
        &mut self,
        who: &Identity,
        shared: &Shared,
        n: u64,
        order_id: Option<u64>,
        seq: Option<u64>,
        message: &FixMessage<'_>,
        now: Instant,
    ) {
        let Some(flight) = self.answer(shared, n, now, Outcome::Ok) else { return };
        let Detail::Place { market, side, ticks, lots, ioc } = flight.detail else {
            self.fail(shared, "mismatched", || "the barrier was accepted".into());
            return;
        };
        let spec = &shared.catalog.markets[market];
        let (Some(order_id), Some(seq)) = (order_id, seq) else {
            self.fail(shared, "mismatched", || format!("New for request {n} without OrderID or ExecID"));
            return;
        };
        self.record_ack(
            shared,
            AckRecord { seq, op: flight.op, by: who.account, accepted: true, target: Some(order_id), amount: None },
        );
        let matches = message.get(tag::SYMBOL) == Some(spec.symbol.as_str())
            && message.get(tag::SIDE) == Some(side.fix())
            && message.get(tag::PRICE).and_then(|price| spec.ticks(price)) == Some(ticks)
            && message.get(tag::ORDER_QTY).and_then(|qty| spec.lots(qty)) == Some(lots)
            && message.get(tag::ACCOUNT).and_then(|account| account.parse().ok()) == Some(who.account);
        if !matches {
            self.fail(shared, "mismatched", || format!("New for request {n} does not match the order sent"));
        }
        let placed = (flight.intended, flight.sent);
        self.orders.insert(order_id, LiveOrder::new(market, side, ticks, lots, n, ioc, placed));
    }

    fn fix_replaced(&mut self, shared: &Shared, order: u64, n: u64, message: &FixMessage<'_>) {
        let Some(live) = self.orders.get_mut(&order) else {
            self.fail(shared, "mismatched", || format!("Replaced for order {order}, not one of the session's"));
            return;
        };
        let spec = &shared.catalog.markets[live.market];
        let values = (
            message.get(tag::PRICE).and_then(|price| spec.ticks(price)),
            message.get(tag::ORDER_QTY).and_then(|qty| spec.lots(qty)),
            message.get(tag::LEAVES_QTY).and_then(|qty| spec.lots(qty)),
        );
        let (Some(ticks), Some(total), Some(leaves)) = values else {
            self.fail(shared, "malformed", || {
                format!("Replaced for order {order} without Price, OrderQty or LeavesQty")
            });
            return;
        };
        (live.ticks, live.total, live.remaining, live.cl, live.busy) = (ticks, total, leaves, n, false);
    }

    fn fix_fill(
        &mut self,
        who: &Identity,
        shared: &Shared,
        order_id: u64,
        exec: Option<(u64, bool)>,
        message: &FixMessage<'_>,
        now: Instant,
    ) {
        let Some(order) = self.orders.get(&order_id) else {
            self.fail(shared, "unmatched_fill", || format!("a fill of order {order_id}, not one of the session's"));
            return;
        };
        let spec = &shared.catalog.markets[order.market];
        let values = (
            message.get(tag::LAST_PX).and_then(|price| spec.ticks(price)),
            message.get(tag::LAST_QTY).and_then(|qty| spec.lots(qty)),
            message.get(tag::LEAVES_QTY).and_then(|qty| spec.lots(qty)),
        );
        let ((Some(ticks), Some(lots), leaves), Some((seq, maker))) = (values, exec) else {
            self.fail(shared, "malformed", || format!("a fill of order {order_id} without LastPx, LastQty or ExecID"));
            return;
        };
        // FIX carries no fee: the model charges the schedule's.
        self.fill(who, shared, order_id, (ticks, lots, leaves), None, maker, Some(seq), now);
    }

    fn cancel_reject(&mut self, who: &Identity, shared: &Shared, message: &FixMessage<'_>, now: Instant) {
        let n = message.get(tag::CL_ORD_ID).and_then(|cl| cl_number(who.index, cl)).unwrap_or_default();
        let reason = message.get(tag::CXL_REJ_REASON).unwrap_or("?");
        let code = format!("cxl_rej_reason_{reason}");
        let Some(flight) = self.answer(shared, n, now, Outcome::Rejected(&code)) else { return };
        match flight.detail {
            Detail::Cancel { order } | Detail::Amend { order, .. } if reason == "1" => {
                self.order_gone(shared, order, &code, None);
            }
            Detail::Cancel { order } | Detail::Amend { order, .. } => self.release(order),
            _ => self.fail(shared, "mismatched", || {
                format!("an OrderCancelReject for request {n}, not a cancel or replace")
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_order_ids_and_exec_ids_parse_back() {
        let text = cl_text(0x1f, 0x2a);
        assert!(text.len() <= 16);
        assert_eq!(cl_number(0x1f, &text), Some(0x2a));
        assert_eq!(cl_number(0x1e, &text), None, "another session's");
        assert_eq!(cl_text(511, u64::from(u32::MAX)).len(), 12);
        assert_eq!(exec_seq("1234-3m"), Some((1234, true)));
        assert_eq!(exec_seq("1234-0"), Some((1234, false)));
        assert_eq!(exec_seq("L1795-7"), None);
    }
}

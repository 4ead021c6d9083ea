//! The hub between sessions and the runtime, and the publisher (DESIGN.md §3 step 4).
//!
//! A session (WebSocket, FIX, or one HTTP request) submits commands through the hub
//! with a request number; the token handed to the runtime is
//! `session << 32 | request`, so the publisher finds the session again without a
//! table lookup per command. The publisher (`Publisher::publish`: on the runtime's
//! own thread with the fused pipeline, else on a thread of its own) takes each applied
//! batch, brings the read model up to date, then routes: the reply to the session that asked, a
//! `Push` to every other session bound to an account the events concern, and
//! market-data updates to the market's broadcast channel. A batch is shared (`Arc`)
//! by every delivery made from it: routing copies no events.
//!
//! A session that lets its delivery queue fill is a slow consumer: the hub drops it
//! (its receiver sees the channel close) rather than block the publisher or grow
//! without bound.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use bourse_core::book::{MarketId, Price, Qty, Side};
use bourse_core::command::{Command, CommandKind};
use bourse_core::event::Event;
use bourse_core::ids::{AccountId, Seq, Timestamp};
use bourse_core::market::MarketSpec;
use bourse_snapshots::runtime::{Applied, AppliedBatch, RuntimeStats, SubmitError, Submitter, Token};
use crossbeam_channel::Receiver;
use dashmap::DashMap;
use parking_lot::{Mutex, RwLock, RwLockReadGuard};
use smallvec::SmallVec;
use tokio::sync::{broadcast, mpsc, oneshot};

use crate::metrics::{CommandOutcome, Metrics};
use crate::principal::Principal;
use crate::view::{Bbo, ReadModel, TradeView};

pub type SessionId = u32;

/// Deliveries a session may have waiting before it counts as a slow consumer.
pub const SESSION_QUEUE: usize = 16_384;
/// Market-data updates a subscriber may fall behind by before it must resynchronise.
pub const MARKET_FEED_CAPACITY: usize = 16_384;

/// Tokens of one-shot waiters (HTTP requests) have the top bit set.
const WAITER_BIT: u64 = 1 << 63;

/// Something for a session: a reply to its own command, or another command's events
/// that concern one of its accounts.
#[derive(Clone, Debug)]
pub enum Delivery {
    /// The result of a command this session submitted (`request` as given to submit).
    Reply { request: u32, batch: Arc<AppliedBatch>, index: usize },
    /// Another command's events that concern one of this session's accounts.
    Push { batch: Arc<AppliedBatch>, index: usize },
}

impl Delivery {
    fn parts(&self) -> (&Arc<AppliedBatch>, usize) {
        match self {
            Delivery::Reply { batch, index, .. } | Delivery::Push { batch, index } => (batch, *index),
        }
    }
    pub fn applied(&self) -> &Applied {
        let (batch, index) = self.parts();
        &batch.items[index]
    }
    pub fn events(&self) -> &[Event] {
        let (batch, index) = self.parts();
        batch.events_of(&batch.items[index])
    }
}

/// One level that changed: (market-data sequence, side, price, total lots, orders).
pub type LevelChange = (u64, Side, Price, Qty, u32);

/// What one command changed in one market's public data.
#[derive(Clone, Debug)]
pub struct MarketUpdate {
    pub market: MarketId,
    pub seq: Seq,
    pub levels: SmallVec<[LevelChange; 4]>,
    pub trades: SmallVec<[TradeView; 2]>,
    /// Best bid and ask after the command.
    pub bbo: Bbo,
    /// The market-data sequence number after the command.
    pub market_seq: u64,
}

struct SessionEntry {
    tx: mpsc::Sender<Delivery>,
    principal: Principal,
}

/// Shared by every session and the publisher.
pub struct Hub {
    submitter: Submitter,
    stats: Arc<RuntimeStats>,
    sessions: DashMap<SessionId, SessionEntry>,
    by_account: DashMap<AccountId, SmallVec<[SessionId; 2]>>,
    next_session: AtomicU32,
    waiters: DashMap<u64, oneshot::Sender<Delivery>>,
    next_waiter: AtomicU64,
    view: RwLock<ReadModel>,
    feeds: RwLock<Vec<broadcast::Sender<Arc<MarketUpdate>>>>,
    /// Specs of markets being added, by token: the `MarketAdded` event names only the
    /// assets.
    new_markets: Mutex<HashMap<Token, MarketSpec>>,
    /// Rule sets being published, by token: `RulesPublished` names only the version.
    new_rules: Mutex<HashMap<Token, bourse_core::rules::RuleSet>>,
    accepting: AtomicBool,
    publisher_queue: AtomicUsize,
    /// Also handed every applied batch, never blocking (merchant webhooks).
    batch_tap: std::sync::OnceLock<crate::webhooks::Feed>,
    pub metrics: Arc<Metrics>,
}

impl std::fmt::Debug for Hub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hub").field("sessions", &self.sessions.len()).finish_non_exhaustive()
    }
}

/// A registered session; dropping it unregisters.
#[derive(Debug)]
pub struct SessionHandle {
    id: SessionId,
    principal: Principal,
    hub: Arc<Hub>,
}

impl SessionHandle {
    pub fn id(&self) -> SessionId {
        self.id
    }
    pub fn principal(&self) -> &Principal {
        &self.principal
    }
    pub fn hub(&self) -> &Arc<Hub> {
        &self.hub
    }

    /// Queues `command`; its reply comes back as `Delivery::Reply { request, .. }`.
    pub fn submit(&self, request: u32, command: Command) -> Result<(), SubmitError> {
        self.hub.submit((u64::from(self.id) << 32) | u64::from(request), command)
    }
}

impl Drop for SessionHandle {
    fn drop(&mut self) {
        self.hub.unregister(self.id);
    }
}

impl Hub {
    pub fn new(submitter: Submitter, stats: Arc<RuntimeStats>, view: ReadModel, metrics: Arc<Metrics>) -> Arc<Hub> {
        let feeds = (0..view.markets().len()).map(|_| broadcast::channel(MARKET_FEED_CAPACITY).0).collect();
        Arc::new(Hub {
            submitter,
            stats,
            sessions: DashMap::new(),
            by_account: DashMap::new(),
            next_session: AtomicU32::new(1),
            waiters: DashMap::new(),
            next_waiter: AtomicU64::new(1),
            view: RwLock::new(view),
            feeds: RwLock::new(feeds),
            new_markets: Mutex::new(HashMap::new()),
            new_rules: Mutex::new(HashMap::new()),
            accepting: AtomicBool::new(true),
            publisher_queue: AtomicUsize::new(0),
            batch_tap: std::sync::OnceLock::new(),
            metrics,
        })
    }

    /// Registers a session acting as `principal`. Deliveries arrive on the receiver;
    /// a client principal also receives pushes for its accounts.
    pub fn open_session(self: &Arc<Self>, principal: Principal) -> (SessionHandle, mpsc::Receiver<Delivery>) {
        let id = self.next_session.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = mpsc::channel(SESSION_QUEUE);
        if let Some(accounts) = principal.account_list() {
            for account in accounts {
                self.by_account.entry(*account).or_default().push(id);
            }
        }
        self.sessions.insert(id, SessionEntry { tx, principal: principal.clone() });
        (SessionHandle { id, principal, hub: self.clone() }, rx)
    }

    fn unregister(&self, id: SessionId) {
        if let Some((_, entry)) = self.sessions.remove(&id)
            && let Some(accounts) = entry.principal.account_list()
        {
            for account in accounts {
                if let Some(mut sessions) = self.by_account.get_mut(account) {
                    sessions.retain(|session| *session != id);
                }
                self.by_account.remove_if(account, |_, sessions| sessions.is_empty());
            }
        }
    }

    /// Submits one command and waits for its reply (HTTP). `None`: the runtime stopped
    /// before replying.
    pub async fn call(&self, command: Command) -> Result<Option<Delivery>, SubmitError> {
        let token = WAITER_BIT | self.next_waiter.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        self.waiters.insert(token, tx);
        if let Err(error) = self.submit(token, command) {
            self.waiters.remove(&token);
            return Err(error);
        }
        Ok(rx.await.ok())
    }

    fn submit(&self, token: Token, command: Command) -> Result<(), SubmitError> {
        if !self.accepting.load(Ordering::Acquire) {
            return Err(SubmitError::Stopped);
        }
        if let Command::AddMarket(add) = &command {
            self.new_markets.lock().insert(token, add.spec.clone());
        }
        if let Command::PublishRules(publish) = &command {
            self.new_rules.lock().insert(token, publish.rules.clone());
        }
        let result = self.submitter.submit(command, token);
        if result.is_err() {
            self.new_markets.lock().remove(&token);
            self.new_rules.lock().remove(&token);
        }
        result
    }

    /// Hands every batch the publisher routes from now on to `feed` as well (once).
    pub fn tap_batches(&self, feed: crate::webhooks::Feed) {
        let _ = self.batch_tap.set(feed);
    }

    /// Refuses every submission from now on (shutdown).
    pub fn stop_accepting(&self) {
        self.accepting.store(false, Ordering::Release);
    }

    pub fn is_accepting(&self) -> bool {
        self.accepting.load(Ordering::Acquire)
    }

    pub fn view(&self) -> RwLockReadGuard<'_, ReadModel> {
        self.view.read()
    }

    pub fn runtime_stats(&self) -> &RuntimeStats {
        &self.stats
    }

    pub fn publisher_queue(&self) -> usize {
        self.publisher_queue.load(Ordering::Relaxed)
    }

    /// A receiver of `market`'s updates from now on; take the depth snapshot after
    /// subscribing and skip updates at or below its market-data sequence number.
    pub fn subscribe_market(&self, market: MarketId) -> Option<broadcast::Receiver<Arc<MarketUpdate>>> {
        self.feeds.read().get(market.get() as usize).map(broadcast::Sender::subscribe)
    }

    /// Sessions registered right now.
    pub fn session_count(&self) -> usize {
        self.sessions.len()
    }

    /// The publisher on a thread of its own: runs until the runtime's output closes
    /// (after shutdown).
    pub fn run_publisher(self: &Arc<Self>, batches: &Receiver<AppliedBatch>) {
        let mut publisher = Publisher::new(self.clone());
        while let Ok(batch) = batches.recv() {
            self.publisher_queue.store(batches.len(), Ordering::Relaxed);
            publisher.publish(batch);
        }
    }

    fn update_view(&self, batch: &AppliedBatch, updates: &mut Vec<MarketUpdate>) {
        let mut view = self.view.write();
        for item in &batch.items {
            let events = batch.events_of(item);
            let spec =
                (item.kind == CommandKind::AddMarket).then(|| self.new_markets.lock().remove(&item.token)).flatten();
            view.apply(item.seq, item.timestamp, events, spec.as_ref());
            if matches!(item.kind, CommandKind::PublishRules | CommandKind::ActivateRules | CommandKind::RollbackRules)
            {
                let rules = (item.kind == CommandKind::PublishRules)
                    .then(|| self.new_rules.lock().remove(&item.token))
                    .flatten();
                view.apply_rules(events, rules.as_ref());
            }
            if let Some(spec) = &spec {
                let mut feeds = self.feeds.write();
                while feeds.len() < view.markets().len() {
                    feeds.push(broadcast::channel(MARKET_FEED_CAPACITY).0);
                }
                let added = events.iter().find_map(|event| match *event {
                    Event::MarketAdded { market, .. } => Some(market),
                    _ => None,
                });
                if let (Some(market), Some(tap)) = (added, self.batch_tap.get()) {
                    tap.market_added(market, spec);
                }
            }
            let first = updates.len();
            for event in events {
                let (market, level, trade) = match *event {
                    Event::BookChanged { market, market_seq, side, price, total, orders } => {
                        (market, Some((market_seq, side, price, total, orders)), None)
                    }
                    Event::Trade { market, market_seq, price, qty, taker_side, .. } => (
                        market,
                        None,
                        Some(TradeView { market_seq, price, qty, taker_side, timestamp: item.timestamp }),
                    ),
                    _ => continue,
                };
                let position = updates[first..].iter().position(|update| update.market == market);
                let update = if let Some(position) = position {
                    &mut updates[first + position]
                } else {
                    updates.push(MarketUpdate {
                        market,
                        seq: item.seq,
                        levels: SmallVec::new(),
                        trades: SmallVec::new(),
                        bbo: (None, None),
                        market_seq: 0,
                    });
                    updates.last_mut().expect("just pushed")
                };
                update.levels.extend(level);
                update.trades.extend(trade);
            }
            for update in &mut updates[first..] {
                if let Some(market) = view.market(update.market) {
                    update.bbo = market.bbo();
                    update.market_seq = market.market_seq;
                }
            }
        }
    }

    /// Counts `item`'s outcome; returns its pipeline latency (none for a tick), for the
    /// publisher to record with the rest of its batch's.
    fn count(&self, item: &Applied, events: &[Event], now: u64) -> Option<u64> {
        if item.kind == CommandKind::Tick {
            return None;
        }
        let outcome = match events.last() {
            Some(Event::Rejected { reason, .. }) => {
                self.metrics.rejection(*reason);
                CommandOutcome::Rejected
            }
            Some(Event::Replayed { .. }) => CommandOutcome::Replayed,
            _ => CommandOutcome::Accepted,
        };
        self.metrics.command(item.kind, outcome);
        Some(now.saturating_sub(item.timestamp.as_nanos()))
    }

    /// Sends the reply for `item`; returns the session it went to, if any.
    fn reply(&self, item: &Applied, batch: &Arc<AppliedBatch>, index: usize) -> Option<SessionId> {
        if item.token & WAITER_BIT != 0 {
            if let Some((_, waiter)) = self.waiters.remove(&item.token) {
                let _ = waiter.send(Delivery::Reply { request: 0, batch: batch.clone(), index });
            }
            return None;
        }
        let session = (item.token >> 32) as SessionId;
        if session == 0 {
            return None;
        }
        let request = item.token as u32;
        self.deliver(session, Delivery::Reply { request, batch: batch.clone(), index });
        Some(session)
    }

    fn deliver(&self, session: SessionId, delivery: Delivery) {
        let full = match self.sessions.get(&session) {
            Some(entry) => matches!(entry.tx.try_send(delivery), Err(mpsc::error::TrySendError::Full(_))),
            None => false,
        };
        if full {
            log::warn!("session {session} is not reading its deliveries ({SESSION_QUEUE} waiting): disconnecting it");
            self.metrics.slow_consumer();
            self.unregister(session);
        }
    }
}

/// Routes applied batches: the read model first, then per command the reply to the
/// session that asked and pushes to the sessions of the accounts concerned, then
/// market data and the webhook tap. Runs on the publisher thread, or on the runtime's
/// own thread (`InlinePublisher`); it never blocks on a session (a full queue
/// disconnects that session).
pub struct Publisher {
    hub: Arc<Hub>,
    updates: Vec<MarketUpdate>,
    targets: SmallVec<[SessionId; 8]>,
    /// The batch's pipeline latencies, recorded under one lock at its end; grows to
    /// the largest batch once, then is reused.
    pipeline_ns: Vec<u64>,
}

impl std::fmt::Debug for Publisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Publisher").finish_non_exhaustive()
    }
}

impl Publisher {
    pub fn new(hub: Arc<Hub>) -> Self {
        Self { hub, updates: Vec::new(), targets: SmallVec::new(), pipeline_ns: Vec::with_capacity(256) }
    }

    pub fn publish(&mut self, batch: AppliedBatch) {
        let hub = &*self.hub;
        if !batch.items.is_empty() {
            let count = batch.items.len() as u64;
            hub.metrics.engine.record_nanos_n(batch.apply_ns / count, count);
        }
        let batch = Arc::new(batch);
        self.updates.clear();
        hub.update_view(&batch, &mut self.updates);
        // Counted before any reply goes out, as when each command took the lock itself:
        // a client that has its reply finds its command in `/metrics`.
        let now = wall_clock_nanos();
        self.pipeline_ns.clear();
        for item in &batch.items {
            self.pipeline_ns.extend(hub.count(item, batch.events_of(item), now));
        }
        hub.metrics.pipeline.record_all_nanos(&self.pipeline_ns);
        for (index, item) in batch.items.iter().enumerate() {
            let events = batch.events_of(item);
            let requester = hub.reply(item, &batch, index);
            self.targets.clear();
            for event in events {
                for account in concerned(event) {
                    if let Some(sessions) = hub.by_account.get(&account) {
                        self.targets.extend(sessions.iter().copied().filter(|session| Some(*session) != requester));
                    }
                }
            }
            self.targets.sort_unstable();
            self.targets.dedup();
            for session in &self.targets {
                hub.deliver(*session, Delivery::Push { batch: batch.clone(), index });
            }
            hub.metrics.pushed(self.targets.len() as u64);
        }
        if !self.updates.is_empty() {
            let feeds = hub.feeds.read();
            for update in self.updates.drain(..) {
                if let Some(feed) = feeds.get(update.market.get() as usize) {
                    // No subscriber is not an error.
                    let _ = feed.send(Arc::new(update));
                    hub.metrics.market_data(1);
                }
            }
        }
        if let Some(tap) = hub.batch_tap.get() {
            tap.offer(&batch);
        }
    }
}

/// The publisher run on the runtime's thread (`[server] pipeline = "fused"`): no
/// publisher thread, no hand-off between the engine and the sessions' queues. The hub
/// is made after the runtime (it needs the runtime's submitter), so batches applied
/// before its slot is set (idle ticks) wait here and go out, in order, with the next.
pub struct InlinePublisher {
    slot: Arc<std::sync::OnceLock<Arc<Hub>>>,
    publisher: Option<Publisher>,
    waiting: Vec<AppliedBatch>,
}

impl std::fmt::Debug for InlinePublisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InlinePublisher").field("waiting", &self.waiting.len()).finish_non_exhaustive()
    }
}

impl InlinePublisher {
    /// The sink, and the slot to put the hub in once it exists.
    pub fn new() -> (Self, Arc<std::sync::OnceLock<Arc<Hub>>>) {
        let slot = Arc::new(std::sync::OnceLock::new());
        (Self { slot: slot.clone(), publisher: None, waiting: Vec::new() }, slot)
    }
}

impl bourse_snapshots::runtime::OutputSink for InlinePublisher {
    fn deliver(&mut self, batch: AppliedBatch) {
        if self.publisher.is_none() {
            let Some(hub) = self.slot.get() else {
                self.waiting.push(batch);
                return;
            };
            self.publisher = Some(Publisher::new(hub.clone()));
        }
        let publisher = self.publisher.as_mut().expect("set above");
        for waiting in self.waiting.drain(..) {
            publisher.publish(waiting);
        }
        publisher.publish(batch);
    }
}

/// The accounts an event concerns (whose sessions are told of it).
pub fn concerned(event: &Event) -> SmallVec<[AccountId; 2]> {
    let mut accounts = SmallVec::new();
    match *event {
        Event::AccountOpened { account, .. }
        | Event::AccountFrozen { account }
        | Event::AccountUnfrozen { account }
        | Event::KycTierChanged { account, .. }
        | Event::Deposited { account, .. }
        | Event::Withdrawn { account, .. }
        | Event::BalanceChanged { account, .. }
        | Event::OrderAccepted { account, .. }
        | Event::OrderCancelled { account, .. }
        | Event::OrderAmended { account, .. } => accounts.push(account),
        Event::Transferred { from, to, .. } => accounts.extend([from, to]),
        Event::Authorized { payer, payee, .. }
        | Event::Captured { payer, payee, .. }
        | Event::Voided { payer, payee, .. }
        | Event::AuthorizationExpired { payer, payee, .. }
        | Event::Refunded { payer, payee, .. }
        | Event::CrossBorderPaid { payer, payee, .. } => accounts.extend([payer, payee]),
        // A quote and the legs of a cross-border payment are the payer's business; the
        // payee hears of the payment (`CrossBorderPaid`).
        Event::SplitPaid { payer, .. }
        | Event::QuoteLeg { payer, .. }
        | Event::QuoteRunnerUp { payer, .. }
        | Event::Quoted { payer, .. }
        | Event::CrossBorderLeg { payer, .. } => accounts.push(payer),
        Event::Trade { maker_account, taker_account, .. } => accounts.extend([maker_account, taker_account]),
        Event::HeldForReview { payer, payee, .. }
        | Event::ReviewApproved { payer, payee, .. }
        | Event::ReviewRejected { payer, payee, .. } => {
            accounts.push(payer);
            accounts.extend(payee);
        }
        // Operator commands and rejections: the reply tells whoever asked.
        Event::MarketAdded { .. }
        | Event::BookChanged { .. }
        | Event::Rejected { .. }
        | Event::Replayed { .. }
        | Event::RulesPublished { .. }
        | Event::RulesActivated { .. }
        | Event::RulesRolledBack { .. }
        | Event::RuleViolated { .. }
        | Event::RateMoved { .. } => {}
    }
    accounts
}

pub fn wall_clock_nanos() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX))
}

/// `Timestamp` of now, for commands that carry a deadline relative to now.
pub fn now_timestamp() -> Timestamp {
    Timestamp::from_nanos(wall_clock_nanos())
}

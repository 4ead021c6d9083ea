//! The engine: one deterministic state machine that owns every actor.
//! `apply(command) -> events`, run to completion one command at a time.
//!
//! - `ledger`: account actors and the only code that changes a balance.
//! - `idempotency`: what keyed commands came to, for retries.
//! - `keytable`: the open-addressing table under it, one slot per entry, prefetchable.
//! - `payments`: payment records and the expiry index of authorizations.
//! - `accounts`: handlers for account lifecycle, deposits and withdrawals.
//! - `pay`: handlers for transfers, two-phase payments, split payments, refunds.
//! - `trade`: handlers for markets and orders: place, cancel, cancel-all, amend.
//! - `settle`: settlement of each fill between the two accounts and the house.
//! - `rules`: published rule versions, what is in effect for whom, the change history.
//! - `risk`: enforcement of the rules in effect on payments and orders.
//! - `review`: payments held for an operator's review, and the decision on them.
//! - `routing`: smart routing: route candidates, exact pricing of a route by walking
//!   its books, the choice of the best routes.
//! - `quotes`: the quote table and its expiry by command time.
//! - `crossborder`: handlers for quotes and cross-border payments (all legs or none).
//! - `inspect`: the state hash, full reconciliation and invariant checks.
//! - `state`: export to plain rows and rebuild from them (snapshots, recovery).

mod accounts;
mod crossborder;
mod idempotency;
mod inspect;
mod keytable;
mod ledger;
mod pay;
mod payments;
mod quotes;
mod review;
mod risk;
mod risk_state;
mod routing;
mod rules;
mod settle;
mod state;
mod trade;

pub use inspect::StateHash;
pub use review::ReviewHoldInfo;
pub use risk::RuleViolation;
pub use rules::{RuleChange, RuleChangeKind};
pub use state::StateError;

use crate::account::{Account, Balance};
use crate::asset::AssetTable;
use crate::book::{MarketId, OrderSlab, Price, Side, Slot};
use crate::command::{Command, CommandKind, Keyed, SequencedCommand};
use crate::config::{Config, CrossBorderConfig};
use crate::event::{Event, Outcome, RejectReason};
use crate::ids::{AccountId, AssetId, PaymentId, Seq, Timestamp};
use crate::market::Market;
use idempotency::{Entry, IdempotencyTable, Lookup};
use ledger::Ledger;
use payments::{PaymentBook, PaymentState};
use quotes::QuoteBook;
use review::ReviewBook;
use routing::{Candidate, RouteGraph};
use rules::RuleBook;

/// What a handler returns: the payment it created (if any), or why it refused. A
/// handler checks everything before it changes anything, so `Err` leaves the state
/// exactly as it found it.
type Handled = Result<Option<PaymentId>, RejectReason>;

/// What a handler that may hold its payment for review returns: its outcome.
type Reviewed = Result<Outcome, RejectReason>;

/// A keyed handler's result as the outcome its key remembers.
trait IntoOutcome {
    fn into_outcome(self) -> Result<Outcome, RejectReason>;
}

impl IntoOutcome for Handled {
    fn into_outcome(self) -> Result<Outcome, RejectReason> {
        self.map(|payment| Outcome::Accepted { payment })
    }
}

impl IntoOutcome for Reviewed {
    fn into_outcome(self) -> Result<Outcome, RejectReason> {
        self
    }
}

/// A depth snapshot of one market: `(price, total lots, orders)` per level, best first.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Depth {
    pub market_seq: u64,
    pub bids: Vec<(Price, crate::book::Qty, u32)>,
    pub asks: Vec<(Price, crate::book::Qty, u32)>,
}

impl Depth {
    /// Best bid and best offer.
    pub fn best(&self) -> (Option<Price>, Option<Price>) {
        (self.bids.first().map(|level| level.0), self.asks.first().map(|level| level.0))
    }
}

/// Sizes to reserve up front, so that the hot path does not grow tables.
#[derive(Clone, Copy, Debug, Default)]
pub struct Capacity {
    pub accounts: usize,
    pub payments: usize,
    pub idempotency_keys: usize,
    /// Resting orders.
    pub orders: usize,
}

/// The deterministic engine. See the module documentation.
#[derive(Clone, Debug)]
pub struct Engine {
    assets: AssetTable,
    ledger: Ledger,
    payments: PaymentBook,
    idempotency: IdempotencyTable,
    markets: Vec<Market>,
    orders: OrderSlab,
    next_order_id: u64,
    /// Levels the current command changed, for the market-data updates sent after it.
    touched_levels: Vec<(MarketId, Side, Price)>,
    /// Reused by cancel-all, so that it never allocates in steady state.
    scratch_slots: Vec<Slot>,
    /// Risk and compliance rule versions, what is in effect, their history.
    rules: RuleBook,
    /// Payments held for review.
    reviews: ReviewBook,
    /// Cross-border defaults (from the configuration; kept in snapshots).
    crossborder: CrossBorderConfig,
    quotes: QuoteBook,
    /// Which markets each asset trades in (derived from `markets`).
    route_graph: RouteGraph,
    /// Reused by routing, so that it never allocates in steady state.
    scratch_candidates: Vec<Candidate>,
    last_seq: Option<Seq>,
    now: Timestamp,
}

impl Engine {
    pub fn new(config: &Config) -> Self {
        Self::with_capacity(config, Capacity::default())
    }

    pub fn with_capacity(config: &Config, capacity: Capacity) -> Self {
        let markets: Vec<Market> = config.markets().iter().cloned().map(Market::new).collect();
        Self {
            assets: config.assets().clone(),
            ledger: Ledger::new(config.assets().len(), capacity.accounts),
            payments: PaymentBook::with_capacity(capacity.payments),
            idempotency: IdempotencyTable::with_capacity(capacity.idempotency_keys),
            route_graph: RouteGraph::new(config.assets().len(), &markets),
            markets,
            orders: OrderSlab::with_capacity(capacity.orders),
            next_order_id: 1,
            touched_levels: Vec::with_capacity(64),
            scratch_slots: Vec::new(),
            rules: RuleBook::default(),
            reviews: ReviewBook::default(),
            crossborder: config.crossborder(),
            quotes: QuoteBook::new(),
            scratch_candidates: Vec::with_capacity(64),
            last_seq: None,
            now: Timestamp::default(),
        }
    }

    /// Applies one command, appending what happened to `out`. Sequence numbers must
    /// grow and time must not go backwards (the sequencer's contract; a breach is a
    /// bug and panics).
    pub fn apply(&mut self, command: &SequencedCommand, out: &mut Vec<Event>) {
        assert!(self.last_seq.is_none_or(|last| command.seq > last), "sequence numbers only grow");
        assert!(command.timestamp >= self.now, "command time never goes backwards");
        self.last_seq = Some(command.seq);
        self.now = command.timestamp;

        self.expire_authorizations(out);
        self.idempotency.expire(self.now);
        self.payments.evict(self.now);
        self.reviews.forget(self.now);
        self.quotes.expire(self.now);
        self.dispatch(&command.command, out);
        self.publish_levels(out);

        let ledger = &mut self.ledger;
        ledger.drain_touched(|account, state, asset| {
            let balance = state.balance(asset);
            out.push(Event::BalanceChanged { account, asset, available: balance.available(), held: balance.held() });
        });
        self.ledger.assert_conserved();
    }

    /// A hint, with no effect on the state: starts loading the memory `command` will
    /// touch first (its idempotency slot and its accounts). Called a few commands ahead
    /// of `apply` by whoever holds a batch, it overlaps the cache misses of a large
    /// idempotency table and of many accounts.
    pub fn prefetch(&self, command: &SequencedCommand) {
        let (principal, key, other) = match &command.command {
            Command::Deposit(c) => (c.account, c.key, None),
            Command::Withdraw(c) => (c.account, c.key, None),
            Command::Transfer(c) => (c.by, c.key, Some(c.to)),
            Command::Authorize(c) => (c.by, c.key, Some(c.payee)),
            Command::Capture(c) => (c.by, c.key, None),
            Command::Void(c) => (c.by, c.key, None),
            Command::SplitPayment(c) => (c.by, c.key, None),
            Command::Refund(c) => (c.by, c.key, None),
            Command::ExecuteQuote(c) => (c.by, c.key, None),
            Command::PayCrossBorder(c) => (c.by, c.key, Some(c.payee)),
            _ => return,
        };
        self.idempotency.prefetch((principal, key));
        for account in std::iter::once(principal).chain(other) {
            if let Some(state) = self.ledger.get(account) {
                crate::prefetch::prefetch(state);
                // Past two assets the balances live on the heap, where a payment in
                // many currencies searches them (up to eight cache lines).
                crate::prefetch::prefetch_lines(state.balances(), 8);
            }
        }
    }

    fn dispatch(&mut self, command: &Command, out: &mut Vec<Event>) {
        match command {
            Command::OpenAccount(c) => self.open_account(c, out),
            Command::FreezeAccount(c) => self.set_frozen(CommandKind::FreezeAccount, c.account, true, out),
            Command::UnfreezeAccount(c) => self.set_frozen(CommandKind::UnfreezeAccount, c.account, false, out),
            Command::SetKycTier(c) => self.set_kyc_tier(*c, out),
            Command::Deposit(c) => self.keyed(CommandKind::Deposit, c, out, Self::deposit),
            Command::Withdraw(c) => self.keyed(CommandKind::Withdraw, c, out, Self::withdraw),
            Command::Transfer(c) => self.keyed(CommandKind::Transfer, c, out, Self::transfer),
            Command::Authorize(c) => self.keyed(CommandKind::Authorize, c, out, Self::authorize),
            Command::Capture(c) => self.keyed(CommandKind::Capture, c, out, Self::capture),
            Command::Void(c) => self.keyed(CommandKind::Void, c, out, Self::void),
            Command::SplitPayment(c) => self.keyed(CommandKind::SplitPayment, c, out, Self::split_payment),
            Command::Refund(c) => self.keyed(CommandKind::Refund, c, out, Self::refund),
            Command::AddMarket(c) => self.add_market(c, out),
            Command::PlaceOrder(c) => self.place_order(c, out),
            Command::CancelOrder(c) => self.cancel_order(c, out),
            Command::CancelAll(c) => self.cancel_all(c, out),
            Command::AmendOrder(c) => self.amend_order(c, out),
            Command::Tick => {}
            Command::PublishRules(c) => self.publish_rules(c, out),
            Command::ActivateRules(c) => self.activate_rules(*c, out),
            Command::RollbackRules(c) => self.rollback_rules(*c, out),
            Command::ReviewDecision(c) => self.review_decision(*c, out),
            Command::QuotePayment(c) => self.quote_payment(c, out),
            Command::ExecuteQuote(c) => self.keyed(CommandKind::ExecuteQuote, c, out, Self::execute_quote),
            Command::PayCrossBorder(c) => self.keyed(CommandKind::PayCrossBorder, c, out, Self::pay_cross_border),
        }
    }

    /// Market data: one update per level the command changed, with the level as it
    /// stands now, each with the next sequence number of its market.
    fn publish_levels(&mut self, out: &mut Vec<Event>) {
        for &(market_id, side, price) in &self.touched_levels {
            let market = &mut self.markets[market_id.index()];
            let (total, orders) = market
                .book
                .side(side)
                .level(price)
                .map_or((crate::book::Qty::ZERO, 0), |level| (level.total(), level.count()));
            let market_seq = market.next_market_seq();
            out.push(Event::BookChanged { market: market_id, market_seq, side, price, total, orders });
        }
        self.touched_levels.clear();
    }

    /// Runs a keyed command at most once per (account, key): a retry with the same
    /// content replays the recorded outcome, other content is a conflict, and the
    /// outcome of a first run (success or rejection) is recorded for good.
    fn keyed<C: Keyed, R: IntoOutcome>(
        &mut self,
        kind: CommandKind,
        command: &C,
        out: &mut Vec<Event>,
        handler: fn(&mut Self, &C, &mut Vec<Event>) -> R,
    ) {
        let reject = |out: &mut Vec<Event>, reason| out.push(Event::Rejected { kind, reason });
        // Keys are scoped to an existing account: refusing unknown ones here keeps
        // garbage from filling the table.
        if self.ledger.get(command.principal()).is_none() {
            return reject(out, RejectReason::UnknownAccount);
        }
        let scope = (command.principal(), command.key());
        let fingerprint = command.fingerprint();
        match self.idempotency.lookup(scope, fingerprint) {
            Lookup::Replay(original) => return out.push(Event::Replayed { kind, original }),
            Lookup::Conflict => return reject(out, RejectReason::IdempotencyConflict),
            Lookup::New => {}
        }
        if !self.idempotency.has_room() {
            return reject(out, RejectReason::CapacityExceeded);
        }
        let outcome = match handler(self, command, out).into_outcome() {
            Ok(outcome) => outcome,
            Err(reason) => {
                reject(out, reason);
                Outcome::Rejected(reason)
            }
        };
        self.idempotency.record(self.now, scope, Entry { fingerprint, outcome });
    }

    /// Releases every authorization whose expiry has come, oldest expiry first.
    fn expire_authorizations(&mut self, out: &mut Vec<Event>) {
        while let Some(payment) = self.payments.pop_expired(self.now) {
            let record = *self.payments.get(payment).expect("expiry index names a live record");
            let released = record.held();
            self.ledger.release(record.payer, record.asset, released);
            self.payments.close(payment, PaymentState::Expired);
            out.push(Event::AuthorizationExpired {
                payment,
                payer: record.payer,
                payee: record.payee,
                asset: record.asset,
                released,
            });
        }
    }

    pub fn assets(&self) -> &AssetTable {
        &self.assets
    }

    pub fn account(&self, account: AccountId) -> Option<&Account> {
        self.ledger.get(account)
    }

    /// The balance of `asset` in `account`; `None` if the account does not exist.
    pub fn balance(&self, account: AccountId, asset: AssetId) -> Option<Balance> {
        self.ledger.get(account).map(|state| state.balance(asset))
    }

    pub fn account_count(&self) -> usize {
        self.ledger.len()
    }

    /// The last command applied.
    pub fn last_seq(&self) -> Option<Seq> {
        self.last_seq
    }

    /// The time of the last command applied.
    pub fn now(&self) -> Timestamp {
        self.now
    }

    /// Idempotency entries currently remembered.
    pub fn idempotency_entries(&self) -> usize {
        self.idempotency.len()
    }

    /// Payment records currently kept.
    pub fn payment_records(&self) -> usize {
        self.payments.len()
    }

    /// Quotes currently kept (open or executed, until they expire).
    pub fn quotes_kept(&self) -> usize {
        self.quotes.len()
    }

    /// The cross-border defaults commands fall back on.
    pub fn crossborder_defaults(&self) -> CrossBorderConfig {
        self.crossborder
    }

    pub fn market(&self, market: MarketId) -> Option<&Market> {
        self.markets.get(market.index())
    }

    /// Market data on request: the top `levels` price levels of each side (at most
    /// `limits::DEPTH_LEVELS_MAX`), best first, with the market-data sequence number
    /// they are current at, so a client can apply the `BookChanged` updates that follow.
    pub fn depth(&self, market: MarketId, levels: usize) -> Option<Depth> {
        let market = self.markets.get(market.index())?;
        let levels = levels.min(crate::limits::DEPTH_LEVELS_MAX);
        let side = |side: Side| {
            market
                .book
                .side(side)
                .levels()
                .take(levels)
                .map(|level| (level.price(), level.total(), level.count()))
                .collect()
        };
        Some(Depth { market_seq: market.market_seq(), bids: side(Side::Buy), asks: side(Side::Sell) })
    }

    pub fn markets(&self) -> &[Market] {
        &self.markets
    }

    /// Every resting order.
    pub fn orders(&self) -> &OrderSlab {
        &self.orders
    }

    /// Per-asset running totals, indexed by asset id.
    pub fn totals(&self) -> &[crate::reconcile::AssetTotals] {
        self.ledger.totals()
    }
}

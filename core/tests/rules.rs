//! Risk and compliance rules: every rule at its limit (accepted) and one past it
//! (rejected, naming the rule and the version), review holds (approve, reject, their
//! balances, events and idempotency), rule versions (publish, validation, activation,
//! rollout by share, rollback, history), counters by command time (the UTC day, the
//! 60-second window), replay determinism (two engines; export and rebuild midway), and
//! a property test whose every payment's rule decision is checked against a naive
//! reference model (`random::Reference`).
//!
//! Every command goes through `Bench::apply_at`, which after each step runs
//! `Engine::check_invariants` (conservation; every hold equal to what authorizations,
//! orders and review holds reserve) and rebuilds the engine from `export_state`,
//! requiring the same state hash: rule versions, history, counters and holds are all
//! state that a snapshot must carry.
#![allow(clippy::unwrap_used, clippy::format_push_string, clippy::type_complexity, clippy::doc_markdown)]

use bourse_core::book::{MarketId, Price, Qty, Side, TimeInForce};
use bourse_core::command::{
    ActivateRules, AmendOrder, Authorize, Capture, Command, CommandKind, Deposit, FreezeAccount, OpenAccount, OrderRef,
    OrderSize, PlaceOrder, PublishRules, ReviewDecision, RollbackRules, SequencedCommand, SetKycTier, SplitLeg,
    SplitPayment, Transfer, UnfreezeAccount, Withdraw,
};
use bourse_core::config::Config;
use bourse_core::event::{Event, Outcome, RejectReason};
use bourse_core::ids::{
    AccountId, AssetId, HoldId, IdempotencyKey, KycTier, OwnerId, Reference, RuleVersion, Seq, Timestamp,
};
use bourse_core::limits::{NANOS_PER_DAY, NANOS_PER_SECOND, REVIEW_DECISION_RETENTION};
use bourse_core::money::Amount;
use bourse_core::rules::{RuleKind, RuleSet, diff, rollout_bucket};
use bourse_core::state::EngineState;
use bourse_core::{Capacity, Engine, RuleChangeKind};

const CONFIG: &str = r#"
[[assets]]
code = "USD"
scale = 2
[[assets]]
code = "BTC"
scale = 8
[[markets]]
base = "BTC"
quote = "USD"
lot = 10000
tick = 1
qty_min = 1
qty_max = 1000000
fees = [{ maker_bps = 0, taker_bps = 0 }]
"#;

const USD: AssetId = AssetId::new(0);
const BTC: AssetId = AssetId::new(1);
const BTC_USD: MarketId = MarketId::new(0);
const SECOND: u64 = NANOS_PER_SECOND;
/// Noon UTC of 2023-11-15 (1_700_006_400 is its midnight).
const START: u64 = (1_700_006_400 + 12 * 3_600) * SECOND;
/// The next midnight UTC after `START`.
const MIDNIGHT: u64 = 1_700_006_400 * SECOND + NANOS_PER_DAY;

// ---------------------------------------------------------------------------------
// The bench.
// ---------------------------------------------------------------------------------

#[derive(Clone)]
struct Bench {
    engine: Engine,
    seq: u64,
    now: u64,
    keys: u128,
    owners: u64,
}

impl Bench {
    fn new() -> Self {
        let config = Config::from_toml_str(CONFIG).unwrap();
        Self { engine: Engine::new(&config), seq: 0, now: START, keys: 0, owners: 0 }
    }

    /// Applies `command` at `at`, checks every invariant and that a rebuilt engine has
    /// the same hash, and returns the events.
    fn apply_at(&mut self, at: u64, command: Command) -> Vec<Event> {
        self.seq += 1;
        self.now = at;
        let sequenced = SequencedCommand { seq: Seq::new(self.seq), timestamp: Timestamp::from_nanos(at), command };
        let mut events = Vec::new();
        self.engine.apply(&sequenced, &mut events);
        self.engine.check_invariants();
        let rebuilt = Engine::from_state(&self.engine.export_state(), Capacity::default()).unwrap();
        assert_eq!(rebuilt.state_hash(), self.engine.state_hash(), "rebuilt after {events:?}");
        events
    }

    fn apply(&mut self, command: Command) -> Vec<Event> {
        self.apply_at(self.now, command)
    }

    fn key(&mut self) -> IdempotencyKey {
        self.keys += 1;
        IdempotencyKey::new(self.keys)
    }

    fn open(&mut self, tier: u8) -> AccountId {
        self.owners += 1;
        let command = OpenAccount { owner: OwnerId::new(self.owners), kyc_tier: KycTier::new(tier).unwrap() };
        match self.apply(Command::OpenAccount(command))[..] {
            [Event::AccountOpened { account, .. }] => account,
            ref events => panic!("not opened: {events:?}"),
        }
    }

    fn fund(&mut self, account: AccountId, asset: AssetId, minor_units: u64) {
        let key = self.key();
        let deposit = Deposit { account, key, asset, amount: amount(minor_units), reference: reference("wire") };
        let events = self.apply(Command::Deposit(deposit));
        assert!(matches!(events[0], Event::Deposited { .. }), "{events:?}");
    }

    /// An account at `tier` holding 1,000,000.00 USD and 10 BTC.
    fn rich(&mut self, tier: u8) -> AccountId {
        let account = self.open(tier);
        self.fund(account, USD, 100_000_000);
        self.fund(account, BTC, 1_000_000_000);
        account
    }

    fn publish(&mut self, toml: &str) -> RuleVersion {
        let rules = RuleSet::from_toml_str(toml).unwrap();
        match self.apply(Command::PublishRules(PublishRules { rules }))[..] {
            [Event::RulesPublished { version }] => version,
            ref events => panic!("not published: {events:?}"),
        }
    }

    fn activate(&mut self, version: RuleVersion, share_bps: u16) {
        let events = self.apply(Command::ActivateRules(ActivateRules { version, share_bps }));
        assert_eq!(events, [Event::RulesActivated { version, share_bps }]);
    }

    /// Publishes `toml` and makes it the fully active version.
    fn rules(&mut self, toml: &str) -> RuleVersion {
        let version = self.publish(toml);
        self.activate(version, 10_000);
        version
    }

    fn transfer_at(&mut self, at: u64, by: AccountId, to: AccountId, cents: u64) -> Vec<Event> {
        let key = self.key();
        self.apply_at(at, Command::Transfer(Transfer { by, key, to, asset: USD, amount: amount(cents) }))
    }

    fn transfer(&mut self, by: AccountId, to: AccountId, cents: u64) -> Vec<Event> {
        self.transfer_at(self.now, by, to, cents)
    }

    fn withdraw(&mut self, account: AccountId, cents: u64) -> Vec<Event> {
        let key = self.key();
        let withdraw = Withdraw { account, key, asset: USD, amount: amount(cents), reference: reference("out") };
        self.apply(Command::Withdraw(withdraw))
    }

    fn authorize(&mut self, by: AccountId, payee: AccountId, cents: u64) -> Vec<Event> {
        let key = self.key();
        let expires_at = Timestamp::from_nanos(self.now + 3_600 * SECOND);
        let authorize = Authorize { by, key, payee, asset: USD, amount: amount(cents), expires_at };
        self.apply(Command::Authorize(authorize))
    }

    fn split(&mut self, by: AccountId, legs: &[(AccountId, u64)]) -> Vec<Event> {
        let key = self.key();
        let legs = legs.iter().map(|&(payee, cents)| SplitLeg { payee, amount: amount(cents) }).collect();
        self.apply(Command::SplitPayment(SplitPayment { by, key, asset: USD, legs }))
    }

    fn decide(&mut self, hold: HoldId, approve: bool) -> Vec<Event> {
        self.apply(Command::ReviewDecision(ReviewDecision { hold, approve }))
    }

    fn place(&mut self, order: PlaceOrder) -> Vec<Event> {
        self.apply(Command::PlaceOrder(order))
    }

    fn available(&self, account: AccountId, asset: AssetId) -> u64 {
        self.engine.balance(account, asset).unwrap().available().minor_units()
    }

    fn held(&self, account: AccountId, asset: AssetId) -> u64 {
        self.engine.balance(account, asset).unwrap().held().minor_units()
    }
}

fn amount(minor_units: u64) -> Amount {
    Amount::new(minor_units).unwrap()
}

fn reference(text: &str) -> Reference {
    Reference::new(text).unwrap()
}

fn version(number: u32) -> RuleVersion {
    RuleVersion::new(number)
}

/// A GTC limit order in BTC/USD: a lot is 0.0001 BTC, a tick one cent per lot, so the
/// notional is `price × lots` cents.
fn limit(by: AccountId, side: Side, price: u64, lots: u64) -> PlaceOrder {
    PlaceOrder {
        by,
        market: BTC_USD,
        side,
        price: Some(Price::new(price).unwrap()),
        size: OrderSize::Qty(Qty::new(lots).unwrap()),
        time_in_force: TimeInForce::Gtc,
        post_only: false,
        stp: None,
        client_order_id: None,
    }
}

/// The events of a rule's refusal, and nothing else (no balance moved).
fn assert_violated(events: &[Event], kind: CommandKind, account: AccountId, rule: RuleKind, version: RuleVersion) {
    assert_eq!(
        events,
        [
            Event::RuleViolated { kind, account, rule, version },
            Event::Rejected { kind, reason: RejectReason::RuleViolation }
        ],
        "expected {rule} of version {} to refuse",
        version.get()
    );
}

fn accepted(events: &[Event]) -> bool {
    !events.iter().any(|event| matches!(event, Event::Rejected { .. } | Event::HeldForReview { .. }))
}

fn held_for_review(events: &[Event]) -> HoldId {
    match events.first() {
        Some(&Event::HeldForReview { hold, .. }) => hold,
        _ => panic!("not held: {events:?}"),
    }
}

// ---------------------------------------------------------------------------------
// No rules: nothing changes.
// ---------------------------------------------------------------------------------

/// Publishing without activating decides nothing; with nothing published the state
/// holds no trace of rules.
#[test]
fn publishing_alone_changes_no_decision() {
    let mut bench = Bench::new();
    let (payer, payee) = (bench.rich(0), bench.open(0));
    let mut twin = bench.clone();
    bench.publish("[tiers.0]\nmax_single_payment = { USD = \"1.00\" }\npayments_per_minute = 1");
    twin.apply(Command::Tick);
    for cents in [50_000, 60_000, 70_000] {
        assert_eq!(bench.transfer(payer, payee, cents), twin.transfer(payer, payee, cents));
    }
    assert_eq!(bench.engine.rule_version_of(payer), RuleVersion::NONE);
    assert!(twin.engine.export_state().rule_versions.is_empty() && twin.engine.export_state().risk_counters.is_empty());
    // Counting starts with the first publish, so a later activation sees today's outflow.
    assert_eq!(
        bench.engine.account(payer).unwrap().risk().unwrap().outflow_on(Timestamp::from_nanos(START), USD),
        amount(180_000)
    );
    assert!(twin.engine.account(payer).unwrap().risk().is_none());
}

// ---------------------------------------------------------------------------------
// Every rule: at the limit passes, one past it is refused, naming rule and version.
// ---------------------------------------------------------------------------------

#[test]
fn max_single_payment_on_every_kind_of_payment() {
    let mut bench = Bench::new();
    let (payer, payee, other) = (bench.rich(1), bench.open(1), bench.open(1));
    let v1 = bench.rules("[tiers.0]\nmax_single_payment = { USD = \"100.00\" }");
    assert!(accepted(&bench.transfer(payer, payee, 10_000)));
    let before = bench.available(payer, USD);
    assert_violated(
        &bench.transfer(payer, payee, 10_001),
        CommandKind::Transfer,
        payer,
        RuleKind::MaxSinglePayment,
        v1,
    );
    assert_eq!(bench.available(payer, USD), before, "a refusal moves nothing");
    assert!(accepted(&bench.withdraw(payer, 10_000)));
    assert_violated(&bench.withdraw(payer, 10_001), CommandKind::Withdraw, payer, RuleKind::MaxSinglePayment, v1);
    assert!(accepted(&bench.authorize(payer, payee, 10_000)));
    assert_violated(
        &bench.authorize(payer, payee, 10_001),
        CommandKind::Authorize,
        payer,
        RuleKind::MaxSinglePayment,
        v1,
    );
    assert!(accepted(&bench.split(payer, &[(payee, 5_000), (other, 5_000)])));
    let split = bench.split(payer, &[(payee, 5_000), (other, 5_001)]);
    assert_violated(&split, CommandKind::SplitPayment, payer, RuleKind::MaxSinglePayment, v1);
    // Another asset has no limit.
    let key = bench.key();
    let btc = Transfer { by: payer, key, to: payee, asset: BTC, amount: amount(500_000_000) };
    assert!(accepted(&bench.apply(Command::Transfer(btc))));
}

/// A refused keyed command's key remembers the refusal: a retry replays it.
#[test]
fn a_refusal_is_remembered_under_its_key() {
    let mut bench = Bench::new();
    let (payer, payee) = (bench.rich(0), bench.open(0));
    let v1 = bench.rules("[tiers.0]\nmax_single_payment = { USD = \"1.00\" }");
    let transfer =
        Command::Transfer(Transfer { by: payer, key: bench.key(), to: payee, asset: USD, amount: amount(101) });
    assert_violated(&bench.apply(transfer.clone()), CommandKind::Transfer, payer, RuleKind::MaxSinglePayment, v1);
    bench.apply(Command::RollbackRules(RollbackRules { to_version: RuleVersion::NONE }));
    let original = Outcome::Rejected(RejectReason::RuleViolation);
    assert_eq!(bench.apply(transfer), [Event::Replayed { kind: CommandKind::Transfer, original }]);
}

#[test]
fn daily_outflow_adds_transfers_withdrawals_authorizations_and_splits() {
    let mut bench = Bench::new();
    let (payer, payee, other) = (bench.rich(2), bench.open(2), bench.open(2));
    let v1 = bench.rules("[tiers.2]\ndaily_outflow = { USD = \"1000.00\" }");
    assert!(accepted(&bench.transfer(payer, payee, 40_000)));
    assert!(accepted(&bench.withdraw(payer, 20_000)));
    assert!(accepted(&bench.authorize(payer, payee, 20_000)));
    assert!(accepted(&bench.split(payer, &[(payee, 10_000), (other, 9_999)])));
    // 999.99 gone: one cent is left today.
    assert_violated(&bench.transfer(payer, payee, 2), CommandKind::Transfer, payer, RuleKind::DailyOutflow, v1);
    assert_violated(&bench.withdraw(payer, 2), CommandKind::Withdraw, payer, RuleKind::DailyOutflow, v1);
    assert!(accepted(&bench.transfer(payer, payee, 1)), "exactly the limit");
    assert_violated(&bench.transfer(payer, payee, 1), CommandKind::Transfer, payer, RuleKind::DailyOutflow, v1);
    // Money coming in does not make room; captures and refunds are not outflow.
    bench.fund(payer, USD, 100_000);
    assert_violated(&bench.transfer(payer, payee, 1), CommandKind::Transfer, payer, RuleKind::DailyOutflow, v1);
}

/// The day is the calendar UTC day of command time: the last nanosecond before
/// midnight still counts against today, midnight starts a new day.
#[test]
fn daily_outflow_resets_at_midnight_utc_by_command_time() {
    let mut bench = Bench::new();
    let (payer, payee) = (bench.rich(0), bench.open(0));
    let v1 = bench.rules("[tiers.0]\ndaily_outflow = { USD = \"100.00\" }");
    assert!(accepted(&bench.transfer(payer, payee, 10_000)));
    let last_nanosecond = MIDNIGHT - 1;
    let refused = bench.transfer_at(last_nanosecond, payer, payee, 1);
    assert_violated(&refused, CommandKind::Transfer, payer, RuleKind::DailyOutflow, v1);
    assert!(accepted(&bench.transfer_at(MIDNIGHT, payer, payee, 10_000)), "a new day");
    let refused = bench.transfer_at(MIDNIGHT + 3_600 * SECOND, payer, payee, 1);
    assert_violated(&refused, CommandKind::Transfer, payer, RuleKind::DailyOutflow, v1);
}

/// Payments per minute count accepted payments in `(now - 60 s, now]`.
#[test]
fn payments_per_minute_is_a_sliding_window_of_command_time() {
    let mut bench = Bench::new();
    let (payer, payee) = (bench.rich(0), bench.open(0));
    let v1 = bench.rules("[tiers.0]\npayments_per_minute = 3");
    let t0 = bench.now + SECOND;
    assert!(accepted(&bench.transfer_at(t0, payer, payee, 100)));
    assert!(accepted(&bench.transfer_at(t0 + SECOND, payer, payee, 100)));
    bench.now = t0 + 2 * SECOND;
    assert!(accepted(&bench.withdraw(payer, 100)), "withdrawals are payments too: the third");
    let refused = bench.transfer_at(t0 + 60 * SECOND - 1, payer, payee, 100);
    assert_violated(&refused, CommandKind::Transfer, payer, RuleKind::PaymentsPerMinute, v1);
    // Exactly 60 s after the first, it has left the window; the refusal did not count.
    assert!(accepted(&bench.transfer_at(t0 + 60 * SECOND, payer, payee, 100)));
    let refused = bench.transfer_at(t0 + 60 * SECOND, payer, payee, 100);
    assert_violated(&refused, CommandKind::Transfer, payer, RuleKind::PaymentsPerMinute, v1);
    // The payee's count is its own.
    assert!(accepted(&bench.transfer_at(t0 + 60 * SECOND, payee, payer, 100)));
}

#[test]
fn blocked_counterparties_in_both_directions() {
    let mut bench = Bench::new();
    let (alice, bob, carol, dave) = (bench.rich(0), bench.rich(0), bench.rich(1), bench.rich(0));
    let toml = format!(
        "blocked_counterparties = [{bob}]\n[tiers.1]\nblocked_counterparties = [{dave}]\n[accounts.{alice}]\nblocked_counterparties = [{carol}]"
    );
    let v1 = bench.rules(&toml);
    let blocked = RuleKind::BlockedCounterparty;
    // Global list: nobody pays bob, bob pays nobody (the payee's rules refuse).
    assert_violated(&bench.transfer(alice, bob, 100), CommandKind::Transfer, alice, blocked, v1);
    assert_violated(&bench.transfer(bob, alice, 100), CommandKind::Transfer, alice, blocked, v1);
    assert_violated(&bench.authorize(carol, bob, 100), CommandKind::Authorize, carol, blocked, v1);
    // Alice's own list: alice and carol, either way, by alice's rules.
    assert_violated(&bench.transfer(alice, carol, 100), CommandKind::Transfer, alice, blocked, v1);
    assert_violated(&bench.transfer(carol, alice, 100), CommandKind::Transfer, alice, blocked, v1);
    // Tier 1's list (carol's tier): carol and dave.
    assert_violated(&bench.transfer(dave, carol, 100), CommandKind::Transfer, carol, blocked, v1);
    assert!(accepted(&bench.transfer(dave, alice, 100)));
    // One blocked leg refuses the whole split.
    let split = bench.split(dave, &[(alice, 100), (bob, 100)]);
    assert_violated(&split, CommandKind::SplitPayment, dave, blocked, v1);
    // Withdrawals have no counterparty.
    assert!(accepted(&bench.withdraw(bob, 100)));
}

#[test]
fn max_order_notional_by_quote_asset() {
    let mut bench = Bench::new();
    let (trader, maker) = (bench.rich(0), bench.rich(5));
    let v1 = bench.rules("[tiers.0]\nmax_order_notional = { USD = \"1000.00\" }");
    let notional = RuleKind::MaxOrderNotional;
    // Notional = price × lots cents: 1000 × 100 = 1000.00 USD.
    assert!(accepted(&bench.place(limit(trader, Side::Buy, 1_000, 100))));
    assert_violated(&bench.place(limit(trader, Side::Buy, 1_000, 101)), CommandKind::PlaceOrder, trader, notional, v1);
    assert_violated(&bench.place(limit(trader, Side::Sell, 100_001, 1)), CommandKind::PlaceOrder, trader, notional, v1);
    // A market order's notional is what it would fill at now.
    for price in [2_000, 3_000] {
        assert!(accepted(&bench.place(limit(maker, Side::Sell, price, 20))));
    }
    let market_buy = |lots| PlaceOrder {
        price: None,
        size: OrderSize::Qty(Qty::new(lots).unwrap()),
        time_in_force: TimeInForce::Ioc,
        ..limit(trader, Side::Buy, 1, 1)
    };
    // 20 × 2000 + 20 × 3000 = 1000.00; one lot more would cost 30.00 more.
    let events = bench.place(market_buy(40));
    assert!(accepted(&events) && events.iter().filter(|event| matches!(event, Event::Trade { .. })).count() == 2);
    bench.place(limit(maker, Side::Sell, 2_000, 20));
    bench.place(limit(maker, Side::Sell, 3_000, 21));
    assert_violated(&bench.place(market_buy(41)), CommandKind::PlaceOrder, trader, notional, v1);
    let budget = |cents| PlaceOrder { size: OrderSize::QuoteBudget(amount(cents)), ..market_buy(1) };
    assert_violated(&bench.place(budget(100_001)), CommandKind::PlaceOrder, trader, notional, v1);
    assert!(accepted(&bench.place(budget(100_000))));
    // Amends: growing past the limit is refused, shrinking is always fine.
    let order = match bench.place(limit(trader, Side::Buy, 500, 100))[0] {
        Event::OrderAccepted { order, .. } => order,
        ref event => panic!("{event:?}"),
    };
    let amend = |price: Option<u64>, lots: Option<u64>| {
        Command::AmendOrder(AmendOrder {
            by: trader,
            order: OrderRef::Id(order),
            price: price.map(|price| Price::new(price).unwrap()),
            qty: lots.map(|lots| Qty::new(lots).unwrap()),
        })
    };
    assert!(accepted(&bench.apply(amend(None, Some(200)))), "500 × 200 = 1000.00");
    assert_violated(&bench.apply(amend(Some(501), None)), CommandKind::AmendOrder, trader, notional, v1);
    assert!(accepted(&bench.apply(amend(None, Some(10)))));
}

#[test]
fn max_open_orders_counts_resting_orders_only() {
    let mut bench = Bench::new();
    let trader = bench.rich(0);
    let v1 = bench.rules("[tiers.0]\nmax_open_orders = 2");
    let first = bench.place(limit(trader, Side::Buy, 100, 1));
    assert!(accepted(&first));
    assert!(accepted(&bench.place(limit(trader, Side::Buy, 101, 1))));
    let third = bench.place(limit(trader, Side::Buy, 102, 1));
    assert_violated(&third, CommandKind::PlaceOrder, trader, RuleKind::MaxOpenOrders, v1);
    let ioc = PlaceOrder { time_in_force: TimeInForce::Ioc, ..limit(trader, Side::Buy, 102, 1) };
    assert!(accepted(&bench.place(ioc)), "an order that cannot rest is not an open order");
    let Event::OrderAccepted { order, .. } = first[0] else { panic!() };
    bench.apply(Command::CancelOrder(bourse_core::command::CancelOrder { by: trader, order: OrderRef::Id(order) }));
    assert!(accepted(&bench.place(limit(trader, Side::Buy, 102, 1))));
}

/// An account's own limits replace its tier's field by field; a tier change changes
/// which tier's limits apply at once.
#[test]
fn account_limits_and_tier_changes() {
    let mut bench = Bench::new();
    let (vip, plain, payee) = (bench.rich(0), bench.rich(0), bench.open(0));
    let toml = format!(
        "[tiers.0]\nmax_single_payment = {{ USD = \"10.00\" }}\ndaily_outflow = {{ USD = \"15.00\" }}\n\
         [tiers.3]\nmax_single_payment = {{ USD = \"50.00\" }}\n\
         [accounts.{vip}]\nmax_single_payment = {{ USD = \"20.00\" }}"
    );
    let v1 = bench.rules(&toml);
    assert!(accepted(&bench.transfer(vip, payee, 1_500)), "the account's own 20.00");
    assert_violated(&bench.transfer(plain, payee, 1_500), CommandKind::Transfer, plain, RuleKind::MaxSinglePayment, v1);
    // The vip still has its tier's daily outflow: 15.00 are gone.
    assert_violated(&bench.transfer(vip, payee, 1), CommandKind::Transfer, vip, RuleKind::DailyOutflow, v1);
    let tier = KycTier::new(4).unwrap();
    bench.apply(Command::SetKycTier(SetKycTier { account: plain, kyc_tier: tier }));
    assert!(accepted(&bench.transfer(plain, payee, 5_000)), "tier 4 uses tier 3's limits, and has no daily limit");
    assert_violated(&bench.transfer(plain, payee, 5_001), CommandKind::Transfer, plain, RuleKind::MaxSinglePayment, v1);
}

// ---------------------------------------------------------------------------------
// Review holds.
// ---------------------------------------------------------------------------------

#[test]
fn a_transfer_above_the_threshold_waits_for_review_then_is_approved() {
    let mut bench = Bench::new();
    let (payer, payee) = (bench.rich(0), bench.open(0));
    let v1 = bench.rules("[tiers.0]\nreview_threshold = { USD = \"500.00\" }");
    assert!(accepted(&bench.transfer(payer, payee, 50_000)), "at the threshold: no review");
    let key = bench.key();
    let transfer = Command::Transfer(Transfer { by: payer, key, to: payee, asset: USD, amount: amount(50_001) });
    let events = bench.apply(transfer.clone());
    let hold = held_for_review(&events);
    assert_eq!(
        events[0],
        Event::HeldForReview {
            hold,
            kind: CommandKind::Transfer,
            payer,
            payee: Some(payee),
            asset: USD,
            amount: amount(50_001),
            rule: RuleKind::ReviewThreshold,
            version: v1
        }
    );
    assert_eq!(bench.held(payer, USD), 50_001, "the amount is held");
    assert_eq!(bench.available(payee, USD), 50_000, "and has not arrived");
    let pending: Vec<_> = bench.engine.pending_reviews().map(|info| info.hold).collect();
    assert_eq!(pending, [hold]);
    // A retry of the held transfer says it is held, and moves nothing.
    let original = Outcome::HeldForReview { hold };
    assert_eq!(bench.apply(transfer.clone()), [Event::Replayed { kind: CommandKind::Transfer, original }]);

    let events = bench.decide(hold, true);
    let approved = Event::ReviewApproved { hold, payer, payee: Some(payee), asset: USD, amount: amount(50_001) };
    assert_eq!(events[0], approved);
    let Event::Transferred { payment, from, to, amount: paid, .. } = events[1] else { panic!("{events:?}") };
    assert_eq!((from, to, paid), (payer, payee, amount(50_001)));
    assert_eq!((bench.held(payer, USD), bench.available(payee, USD)), (0, 100_001));
    assert_eq!(bench.engine.pending_reviews().count(), 0);
    // The decision is idempotent by its hold; the other decision is refused.
    let original = Outcome::Accepted { payment: Some(payment) };
    assert_eq!(bench.decide(hold, true), [Event::Replayed { kind: CommandKind::ReviewDecision, original }]);
    let kind = CommandKind::ReviewDecision;
    assert_eq!(bench.decide(hold, false), [Event::Rejected { kind, reason: RejectReason::HoldDecided }]);
    assert_eq!(
        bench.apply(transfer),
        [Event::Replayed { kind: CommandKind::Transfer, original: Outcome::HeldForReview { hold } }]
    );
    // The payee may refund what arrived, as for any transfer.
    let key = bench.key();
    let refund = bourse_core::command::Refund { by: payee, key, payment, asset: USD, amount: amount(1) };
    assert!(accepted(&bench.apply(Command::Refund(refund))));
    // Decisions are forgotten after their retention.
    let later = bench.now + REVIEW_DECISION_RETENTION.as_nanos();
    let events = bench.apply_at(later, Command::ReviewDecision(ReviewDecision { hold, approve: true }));
    assert_eq!(events, [Event::Rejected { kind, reason: RejectReason::UnknownHold }]);
}

#[test]
fn a_rejected_review_releases_the_funds_and_the_days_outflow() {
    let mut bench = Bench::new();
    let (payer, payee) = (bench.rich(0), bench.open(0));
    let v1 = bench.rules("[tiers.0]\nreview_threshold = { USD = \"100.00\" }\ndaily_outflow = { USD = \"300.00\" }");
    let hold = held_for_review(&bench.transfer(payer, payee, 20_000));
    // The held amount counts against today until the decision.
    assert_violated(&bench.transfer(payer, payee, 10_001), CommandKind::Transfer, payer, RuleKind::DailyOutflow, v1);
    let before = bench.available(payer, USD);
    let events = bench.decide(hold, false);
    assert_eq!(
        events[0],
        Event::ReviewRejected { hold, payer, payee: Some(payee), asset: USD, amount: amount(20_000) }
    );
    assert_eq!(bench.available(payer, USD), before + 20_000);
    assert_eq!((bench.held(payer, USD), bench.engine.balance(payee, USD).unwrap().total().minor_units()), (0, 0));
    assert!(accepted(&bench.transfer(payer, payee, 10_000)), "rejected: the day's room is back");
    let original = Outcome::Accepted { payment: None };
    assert_eq!(bench.decide(hold, false), [Event::Replayed { kind: CommandKind::ReviewDecision, original }]);
    let kind = CommandKind::ReviewDecision;
    assert_eq!(bench.decide(hold, true), [Event::Rejected { kind, reason: RejectReason::HoldDecided }]);
    assert_eq!(bench.decide(HoldId::new(99), true), [Event::Rejected { kind, reason: RejectReason::UnknownHold }]);
}

#[test]
fn held_authorizations_splits_and_withdrawals_complete_as_themselves() {
    let mut bench = Bench::new();
    let (payer, payee, other) = (bench.rich(0), bench.open(0), bench.open(0));
    bench.rules("[tiers.0]\nreview_threshold = { USD = \"1.00\" }");
    let deposited = bench.engine.totals()[USD.get() as usize].withdrawn();

    let hold = held_for_review(&bench.authorize(payer, payee, 500));
    let events = bench.decide(hold, true);
    let Event::Authorized { payment, amount: authorized, .. } = events[1] else { panic!("{events:?}") };
    assert_eq!((authorized, bench.held(payer, USD)), (amount(500), 500), "the hold became the authorization");
    let key = bench.key();
    let capture = Capture { by: payee, key, payment, asset: USD, amount: amount(500), last: true };
    assert!(accepted(&bench.apply(Command::Capture(capture))));
    assert_eq!(bench.available(payee, USD), 500);

    let hold = held_for_review(&bench.split(payer, &[(payee, 300), (other, 200)]));
    assert!(matches!(bench.engine.review_hold(hold), Some(info) if info.payee.is_none() && info.amount == amount(500)));
    let events = bench.decide(hold, true);
    let legs: Vec<_> = events.iter().filter(|event| matches!(event, Event::Transferred { .. })).collect();
    assert_eq!(legs.len(), 2);
    assert!(
        events.iter().any(|event| matches!(event, Event::SplitPaid { legs: 2, total, .. } if *total == amount(500)))
    );
    assert_eq!((bench.available(payee, USD), bench.available(other, USD)), (800, 200));

    let hold = held_for_review(&bench.withdraw(payer, 700));
    assert_eq!(bench.engine.totals()[USD.get() as usize].withdrawn(), deposited, "not withdrawn while held");
    let events = bench.decide(hold, true);
    assert!(matches!(events[1], Event::Withdrawn { amount: withdrawn, .. } if withdrawn == amount(700)));
    assert_eq!(bench.engine.totals()[USD.get() as usize].withdrawn(), deposited + 700);
    assert_eq!(bench.held(payer, USD), 0);
}

/// Approval needs the accounts unfrozen and an authorization's expiry still ahead;
/// otherwise it is refused and the hold stays pending (a rejection always works).
#[test]
fn an_approval_that_cannot_go_ahead_leaves_the_hold_pending() {
    let mut bench = Bench::new();
    let (payer, payee) = (bench.rich(0), bench.open(0));
    bench.rules("[tiers.0]\nreview_threshold = { USD = \"1.00\" }");
    let hold = held_for_review(&bench.transfer(payer, payee, 1_000));
    bench.apply(Command::FreezeAccount(FreezeAccount { account: payee }));
    let kind = CommandKind::ReviewDecision;
    assert_eq!(bench.decide(hold, true), [Event::Rejected { kind, reason: RejectReason::AccountFrozen }]);
    assert_eq!(bench.engine.pending_reviews().count(), 1);
    bench.apply(Command::UnfreezeAccount(UnfreezeAccount { account: payee }));
    assert!(matches!(bench.decide(hold, true)[0], Event::ReviewApproved { .. }));

    let hold = held_for_review(&bench.authorize(payer, payee, 1_000));
    let after_expiry = bench.now + 3_600 * SECOND;
    let events = bench.apply_at(after_expiry, Command::ReviewDecision(ReviewDecision { hold, approve: true }));
    assert_eq!(events, [Event::Rejected { kind, reason: RejectReason::InvalidExpiry }]);
    assert_eq!(bench.held(payer, USD), 1_000);
    assert!(matches!(bench.decide(hold, false)[0], Event::ReviewRejected { .. }));
    assert_eq!(bench.held(payer, USD), 0);
}

/// A payment that breaks a limit is refused even if it is also above the review
/// threshold: review is the last rule asked.
#[test]
fn limits_come_before_review() {
    let mut bench = Bench::new();
    let (payer, payee) = (bench.rich(0), bench.open(0));
    let v1 = bench.rules("[tiers.0]\nreview_threshold = { USD = \"1.00\" }\nmax_single_payment = { USD = \"5.00\" }");
    assert_violated(&bench.transfer(payer, payee, 501), CommandKind::Transfer, payer, RuleKind::MaxSinglePayment, v1);
    held_for_review(&bench.transfer(payer, payee, 500));
}

// ---------------------------------------------------------------------------------
// Versions: publish, validation, activation, rollout, rollback, history, diff.
// ---------------------------------------------------------------------------------

#[test]
fn publishing_validates_against_the_engines_assets() {
    let mut bench = Bench::new();
    let rules = RuleSet::from_toml_str("[tiers.0]\ndaily_outflow = { EUR = \"1.00\" }").unwrap();
    let error = bench.engine.validate_rules(&rules).unwrap_err();
    assert!(error.to_string().contains("EUR"), "{error}");
    let events = bench.apply(Command::PublishRules(PublishRules { rules }));
    assert_eq!(events, [Event::Rejected { kind: CommandKind::PublishRules, reason: RejectReason::InvalidRules }]);
    let too_fine = RuleSet::from_toml_str("[tiers.0]\ndaily_outflow = { USD = \"1.001\" }").unwrap();
    let events = bench.apply(Command::PublishRules(PublishRules { rules: too_fine }));
    assert_eq!(events, [Event::Rejected { kind: CommandKind::PublishRules, reason: RejectReason::InvalidRules }]);
    assert_eq!(bench.engine.rule_versions(), 0, "a refused rule set takes no version number");
    let v1 = bench.publish("[tiers.0]\ndaily_outflow = { USD = \"1\" }");
    assert_eq!(v1, version(1));
    let text = bench.engine.rule_set(v1).unwrap().data().tiers[&KycTier::new(0).unwrap()].daily_outflow["USD"].clone();
    assert_eq!(text, "1.00", "stored canonical");
    let reject = |kind, reason| [Event::Rejected { kind, reason }];
    let activate = |version, share_bps| Command::ActivateRules(ActivateRules { version, share_bps });
    let activate_kind = CommandKind::ActivateRules;
    assert_eq!(bench.apply(activate(version(2), 10_000)), reject(activate_kind, RejectReason::UnknownRuleVersion));
    assert_eq!(
        bench.apply(activate(RuleVersion::NONE, 10_000)),
        reject(activate_kind, RejectReason::UnknownRuleVersion)
    );
    assert_eq!(bench.apply(activate(v1, 10_001)), reject(activate_kind, RejectReason::InvalidRules));
    let rollback = |to_version| Command::RollbackRules(RollbackRules { to_version });
    let rollback_kind = CommandKind::RollbackRules;
    assert_eq!(
        bench.apply(rollback(RuleVersion::NONE)),
        reject(rollback_kind, RejectReason::InvalidRules),
        "nothing in effect"
    );
    bench.activate(v1, 10_000);
    assert_eq!(bench.apply(rollback(v1)), reject(rollback_kind, RejectReason::InvalidRules), "not earlier");
    assert_eq!(bench.apply(rollback(version(5))), reject(rollback_kind, RejectReason::UnknownRuleVersion));
}

/// Rollback puts an earlier version (or none) back for everyone; decisions name the
/// version that made them, and the history lists every change with its sequence
/// number and time.
#[test]
fn rollback_and_history() {
    let mut bench = Bench::new();
    let (payer, payee) = (bench.rich(0), bench.open(0));
    let v1 = bench.rules("[tiers.0]\nmax_single_payment = { USD = \"10.00\" }");
    let v2 = bench.rules("[tiers.0]\nmax_single_payment = { USD = \"5.00\" }");
    let single = RuleKind::MaxSinglePayment;
    assert_violated(&bench.transfer(payer, payee, 600), CommandKind::Transfer, payer, single, v2);
    let events = bench.apply(Command::RollbackRules(RollbackRules { to_version: v1 }));
    assert_eq!(events, [Event::RulesRolledBack { from: v2, to: v1 }]);
    assert!(accepted(&bench.transfer(payer, payee, 600)));
    assert_violated(&bench.transfer(payer, payee, 1_001), CommandKind::Transfer, payer, single, v1);
    let events = bench.apply(Command::RollbackRules(RollbackRules { to_version: RuleVersion::NONE }));
    assert_eq!(events, [Event::RulesRolledBack { from: v1, to: RuleVersion::NONE }]);
    assert!(accepted(&bench.transfer(payer, payee, 100_000)), "no rules at all");
    // Going forward again is an activation.
    bench.activate(v2, 10_000);
    assert_violated(&bench.transfer(payer, payee, 501), CommandKind::Transfer, payer, single, v2);

    let kinds: Vec<RuleChangeKind> = bench.engine.rule_history().iter().map(|change| change.kind).collect();
    assert_eq!(
        kinds,
        [
            RuleChangeKind::Published { version: v1 },
            RuleChangeKind::Activated { version: v1, share_bps: 10_000 },
            RuleChangeKind::Published { version: v2 },
            RuleChangeKind::Activated { version: v2, share_bps: 10_000 },
            RuleChangeKind::RolledBack { from: v2, to: v1 },
            RuleChangeKind::RolledBack { from: v1, to: RuleVersion::NONE },
            RuleChangeKind::Activated { version: v2, share_bps: 10_000 },
        ]
    );
    let history = bench.engine.rule_history();
    assert!(history.windows(2).all(|pair| pair[0].seq < pair[1].seq));
    assert!(history.iter().all(|change| change.at.as_nanos() == START));
    let lines = diff(bench.engine.rule_set(v1).unwrap(), bench.engine.rule_set(v2).unwrap());
    assert_eq!(lines, ["tier 0: max_single_payment USD 10.00 -> 5.00"]);
}

/// A rollout reaches the accounts whose bucket is below the share; the same accounts
/// for every version and every replay, a wider share a superset, and about
/// `share / 10_000` of many accounts.
#[test]
fn rollout_by_share_is_a_fixed_set_of_accounts() {
    let mut bench = Bench::new();
    let accounts: Vec<AccountId> = (0..2_000).map(|_| bench.open(0)).collect();
    let v1 = bench.rules("[tiers.0]\nmax_single_payment = { USD = \"100.00\" }");
    let v2 = bench.publish("[tiers.0]\nmax_single_payment = { USD = \"50.00\" }");
    let v3 = bench.publish("[tiers.0]\nmax_single_payment = { USD = \"20.00\" }");
    let on = |bench: &Bench, version| -> Vec<AccountId> {
        accounts.iter().copied().filter(|&account| bench.engine.rule_version_of(account) == version).collect()
    };
    assert_eq!(on(&bench, v1).len(), accounts.len());
    bench.activate(v2, 2_500);
    let quarter = on(&bench, v2);
    assert!((400..=600).contains(&quarter.len()), "{} of 2000 at 25%", quarter.len());
    assert!(quarter.iter().all(|&account| rollout_bucket(account) < 2_500));
    assert_eq!(on(&bench, v1).len() + quarter.len(), accounts.len(), "the others keep version 1");
    bench.activate(v2, 5_000);
    let half = on(&bench, v2);
    assert!(quarter.iter().all(|account| half.contains(account)), "a wider share keeps the accounts it had");
    assert!((900..=1_100).contains(&half.len()), "{} of 2000 at 50%", half.len());
    bench.activate(v3, 2_500);
    assert_eq!(on(&bench, v3), quarter, "another version at the same share: the same accounts");
    assert!(on(&bench, v2).is_empty(), "one rollout at a time");
    // Decisions follow: one account in, one out.
    let (inside, outside) = (quarter[0], accounts.iter().copied().find(|account| !quarter.contains(account)).unwrap());
    for account in [inside, outside] {
        bench.fund(account, USD, 1_000_000);
    }
    let payee = accounts[1_999];
    assert_violated(
        &bench.transfer(inside, payee, 2_001),
        CommandKind::Transfer,
        inside,
        RuleKind::MaxSinglePayment,
        v3,
    );
    assert!(accepted(&bench.transfer(outside, payee, 2_001)));
    assert_violated(
        &bench.transfer(outside, payee, 10_001),
        CommandKind::Transfer,
        outside,
        RuleKind::MaxSinglePayment,
        v1,
    );
    // Ending the rollout: everyone on version 1 again; 10,000 makes a version the base.
    bench.activate(v3, 0);
    assert_eq!(on(&bench, v1).len(), accounts.len());
    bench.activate(v3, 10_000);
    assert_eq!(on(&bench, v3).len(), accounts.len());
    // A rebuilt engine (as after a restart) puts every account where it was.
    let rebuilt = Engine::from_state(&bench.engine.export_state(), Capacity::default()).unwrap();
    assert!(accounts.iter().all(|&account| rebuilt.rule_version_of(account) == bench.engine.rule_version_of(account)));
}

// ---------------------------------------------------------------------------------
// Replay determinism.
// ---------------------------------------------------------------------------------

/// A day of mixed commands under rules: publish, rollout, payments at every rule,
/// holds and decisions, orders, midnight, rollback.
fn scenario() -> Vec<(u64, Command)> {
    let mut bench = Bench::new();
    let mut commands = Vec::new();
    let mut record = |at: u64, command: Command| commands.push((at, command));
    let tier = KycTier::new(0).unwrap();
    for owner in 0..40 {
        record(START, Command::OpenAccount(OpenAccount { owner: OwnerId::new(owner), kyc_tier: tier }));
    }
    for account in 0..40 {
        let key = IdempotencyKey::new(1_000 + u128::from(account));
        let deposit = Deposit {
            account: AccountId::new(account),
            key,
            asset: USD,
            amount: amount(1_000_000),
            reference: reference("in"),
        };
        record(START, Command::Deposit(deposit));
        let key = IdempotencyKey::new(2_000 + u128::from(account));
        let deposit = Deposit {
            account: AccountId::new(account),
            key,
            asset: BTC,
            amount: amount(100_000_000),
            reference: reference("in"),
        };
        record(START, Command::Deposit(deposit));
    }
    let publish = |toml: &str| Command::PublishRules(PublishRules { rules: RuleSet::from_toml_str(toml).unwrap() });
    record(
        START,
        publish(
            "[tiers.0]\nmax_single_payment = { USD = \"500.00\" }\ndaily_outflow = { USD = \"2000.00\" }\npayments_per_minute = 4\nreview_threshold = { USD = \"300.00\" }\nmax_open_orders = 3\nmax_order_notional = { USD = \"4.00\" }\nblocked_counterparties = [7]",
        ),
    );
    record(START, Command::ActivateRules(ActivateRules { version: version(1), share_bps: 10_000 }));
    record(
        START,
        publish(
            "[tiers.0]\nmax_single_payment = { USD = \"250.00\" }\npayments_per_minute = 2\nreview_threshold = { USD = \"100.00\" }",
        ),
    );
    record(START, Command::ActivateRules(ActivateRules { version: version(2), share_bps: 3_000 }));
    let mut at = START;
    for step in 0..600_u64 {
        at += 7 * SECOND + step % 13 * SECOND;
        // Account 3 pays in bursts, to meet the per-minute limits.
        let by = AccountId::new(if step % 50 < 8 { 3 } else { (step * 7 % 40) as u32 });
        let to = AccountId::new(((step * 11 + 3) % 40) as u32);
        let key = IdempotencyKey::new(10_000 + u128::from(step));
        let cents = 1_000 + step * 7_919 % 60_000;
        let command = match step % 9 {
            0..=2 if by != to => Command::Transfer(Transfer { by, key, to, asset: USD, amount: amount(cents) }),
            3 => Command::Withdraw(Withdraw {
                account: by,
                key,
                asset: USD,
                amount: amount(cents / 2),
                reference: reference("out"),
            }),
            4 if by != to => {
                let expires_at = Timestamp::from_nanos(at + 600 * SECOND);
                Command::Authorize(Authorize { by, key, payee: to, asset: USD, amount: amount(cents), expires_at })
            }
            5 => Command::ReviewDecision(ReviewDecision { hold: HoldId::new(1 + step / 20), approve: step % 2 == 0 }),
            6 => Command::PlaceOrder(limit(
                by,
                if step % 2 == 0 { Side::Buy } else { Side::Sell },
                100 + step % 50,
                1 + step % 5,
            )),
            7 if step == 304 => Command::RollbackRules(RollbackRules { to_version: version(1) }),
            7 if step % 4 == 3 => {
                Command::SetKycTier(SetKycTier { account: by, kyc_tier: KycTier::new((step % 3) as u8).unwrap() })
            }
            _ => Command::Tick,
        };
        record(at, command);
    }
    // Past midnight: a new day's outflow.
    for step in 0..40 {
        let (by, to) = (AccountId::new(step), AccountId::new((step + 1) % 40));
        let key = IdempotencyKey::new(50_000 + u128::from(step));
        record(
            MIDNIGHT + u64::from(step),
            Command::Transfer(Transfer { by, key, to, asset: USD, amount: amount(20_000) }),
        );
    }
    // The scenario must exercise what it is about.
    for (at, command) in &commands {
        bench.apply_at(*at, command.clone());
    }
    commands
}

fn run(engine: &mut Engine, commands: &[(u64, Command)], first_seq: u64) -> Vec<Vec<Event>> {
    commands
        .iter()
        .enumerate()
        .map(|(index, (at, command))| {
            let sequenced = SequencedCommand {
                seq: Seq::new(first_seq + index as u64),
                timestamp: Timestamp::from_nanos(*at),
                command: command.clone(),
            };
            let mut events = Vec::new();
            engine.apply(&sequenced, &mut events);
            events
        })
        .collect()
}

#[test]
fn replay_gives_the_same_decisions_and_state() {
    let commands = scenario();
    let config = Config::from_toml_str(CONFIG).unwrap();
    let (mut one, mut two) = (Engine::new(&config), Engine::new(&config));
    let events = run(&mut one, &commands, 1);
    assert_eq!(events, run(&mut two, &commands, 1));
    assert_eq!(one.state_hash(), two.state_hash());
    let all: Vec<&Event> = events.iter().flatten().collect();
    let count = |matches: fn(&Event) -> bool| all.iter().filter(|event| matches(event)).count();
    let rules_seen: std::collections::BTreeSet<RuleKind> = all
        .iter()
        .filter_map(|event| match event {
            Event::RuleViolated { rule, .. } | Event::HeldForReview { rule, .. } => Some(*rule),
            _ => None,
        })
        .collect();
    assert!(rules_seen.len() >= 6, "the scenario exercises most rules: {rules_seen:?}");
    assert!(count(|event| matches!(event, Event::ReviewApproved { .. })) > 0);
    assert!(count(|event| matches!(event, Event::ReviewRejected { .. })) > 0);
    let versions: std::collections::BTreeSet<u32> = all
        .iter()
        .filter_map(|event| match event {
            Event::RuleViolated { version, .. } => Some(version.get()),
            _ => None,
        })
        .collect();
    assert_eq!(versions, [1, 2].into(), "decisions by both versions of the rollout");

    // Export and rebuild midway, then go on: the same events and state as without.
    for cut in [commands.len() / 3, commands.len() / 2, commands.len() - 30] {
        let mut first = Engine::new(&config);
        run(&mut first, &commands[..cut], 1);
        let mut rebuilt = Engine::from_state(&first.export_state(), Capacity::default()).unwrap();
        assert_eq!(rebuilt.state_hash(), first.state_hash());
        let rest = run(&mut rebuilt, &commands[cut..], cut as u64 + 1);
        assert_eq!(rest, events[cut..], "after a rebuild at {cut}");
        assert_eq!(rebuilt.state_hash(), one.state_hash());
    }
}

/// With rules in effect the state hash covers them: an exported state changed in one
/// field only (a rule version's text, the version in effect, a risk counter, a review
/// hold) rebuilds to another hash, while the unchanged export rebuilds to the same one.
#[test]
fn the_state_hash_covers_rules_counters_and_holds() {
    let mut bench = Bench::new();
    let (payer, payee) = (bench.rich(0), bench.open(0));
    bench.publish("[tiers.0]\nmax_single_payment = { USD = \"100000.00\" }");
    bench.rules("[tiers.0]\nreview_threshold = { USD = \"10.00\" }");
    assert!(accepted(&bench.transfer(payer, payee, 100)));
    held_for_review(&bench.transfer(payer, payee, 5_000));
    let state = bench.engine.export_state();
    assert_eq!((state.rules_base, state.rule_versions.len()), (2, 2));
    assert_eq!(state.risk_counters.len(), 1);
    assert_eq!(state.risk_outflows.len(), 1);
    assert_eq!(state.risk_payment_times.len(), 2);
    assert_eq!((state.review_holds.len(), state.review_holds[0].version), (1, 2));
    let rebuilt_hash = |state: &EngineState| {
        let rebuilt = Engine::from_state(state, Capacity::default()).unwrap();
        rebuilt.check_invariants();
        rebuilt.state_hash()
    };
    let hash = bench.engine.state_hash();
    assert_eq!(rebuilt_hash(&state), hash, "the unchanged export rebuilds to the same hash");
    let changed = |what: &str, change: &dyn Fn(&mut EngineState)| {
        let mut changed = state.clone();
        change(&mut changed);
        assert_ne!(changed, state, "{what}: the change changes a row");
        assert_ne!(rebuilt_hash(&changed), hash, "the state hash misses {what}");
    };
    changed("a rule version's text", &|state| {
        let text = state.rule_versions[1].replace("10.00", "20.00");
        state.rule_versions[1] = RuleSet::from_toml_str(&text).unwrap().to_toml_string();
    });
    changed("the rule version in effect", &|state| state.rules_base = 1);
    changed("the day the risk counters count", &|state| state.risk_counters[0].day -= 1);
    changed("a risk outflow", &|state| state.risk_outflows[0].amount -= 1);
    changed("a risk payment time", &|state| state.risk_payment_times[0].at -= 1);
    changed("a review hold's rule version", &|state| state.review_holds[0].version = 1);
    changed("a review hold's time", &|state| state.review_holds[0].created_at -= 1);
}

// ---------------------------------------------------------------------------------
// Property: random rule sets and commands never break conservation or panic, and
// every rule decision on a payment is the one a naive reference model predicts.
// ---------------------------------------------------------------------------------

mod random {
    use bourse_core::command::{CrossBorderAmount, ExecuteQuote, PayCrossBorder, QuotePayment, RateLimit};
    use std::collections::BTreeMap;

    use bourse_core::ids::QuoteId;
    use proptest::prelude::*;
    use proptest::test_runner::TestCaseError;

    use super::*;

    const ACCOUNTS: u32 = 6;

    /// One tier's or one account's limits as generated: USD amounts in cents.
    #[derive(Clone, Debug)]
    struct Limits {
        notional: Option<u64>,
        single: Option<u64>,
        daily: Option<u64>,
        review: Option<u64>,
        open: Option<u32>,
        per_minute: Option<u32>,
        blocked: Vec<u32>,
    }

    /// A generated rule set: the global blocked list, limits for a few distinct tiers
    /// and for at most one account.
    #[derive(Clone, Debug)]
    struct Rules {
        blocked: Vec<u32>,
        tiers: Vec<(u8, Limits)>,
        account: Option<(u32, Limits)>,
    }

    /// Random limits for a few tiers and one account, small enough to be met.
    fn rule_set() -> impl Strategy<Value = Rules> {
        let amount = || prop::option::of(0..8_000_u64);
        let review = prop::option::weighted(0.8, 0..3_000_u64);
        let blocked = || prop_oneof![3 => Just(Vec::new()), 1 => prop::collection::vec(0..ACCOUNTS + 1, 1..2)];
        let limits =
            (amount(), amount(), amount(), review, prop::option::of(0..4_u32), prop::option::of(0..4_u32), blocked())
                .prop_map(|(notional, single, daily, review, open, per_minute, blocked)| Limits {
                    notional,
                    single,
                    daily,
                    review,
                    open,
                    per_minute,
                    blocked,
                });
        let scope = (0..4_u8, limits.clone());
        (blocked(), prop::collection::vec(scope, 1..4), prop::option::of((0..ACCOUNTS, limits))).prop_map(
            |(blocked, mut tiers, account)| {
                let mut seen = Vec::new();
                tiers.retain(|(tier, _)| {
                    if seen.contains(tier) {
                        false
                    } else {
                        seen.push(*tier);
                        true
                    }
                });
                Rules { blocked, tiers, account }
            },
        )
    }

    impl Rules {
        /// The rule set as TOML (the format of `bourse_core::rules`).
        fn toml(&self) -> String {
            let list = |ids: &[u32]| ids.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ");
            let section = |text: &mut String, limits: &Limits| {
                for (name, value) in [
                    ("max_order_notional", limits.notional),
                    ("max_single_payment", limits.single),
                    ("daily_outflow", limits.daily),
                    ("review_threshold", limits.review),
                ] {
                    if let Some(cents) = value {
                        text.push_str(&format!("{name} = {{ USD = \"{}.{:02}\" }}\n", cents / 100, cents % 100));
                    }
                }
                for (name, value) in [("max_open_orders", limits.open), ("payments_per_minute", limits.per_minute)] {
                    if let Some(value) = value {
                        text.push_str(&format!("{name} = {value}\n"));
                    }
                }
                text.push_str(&format!("blocked_counterparties = [{}]\n", list(&limits.blocked)));
            };
            let mut text = format!("blocked_counterparties = [{}]\n", list(&self.blocked));
            for (tier, limits) in &self.tiers {
                text.push_str(&format!("[tiers.{tier}]\n"));
                section(&mut text, limits);
            }
            if let Some((account, limits)) = &self.account {
                text.push_str(&format!("[accounts.{account}]\n"));
                section(&mut text, limits);
            }
            text
        }

        /// A field of the limits of `account` at `tier`, read the naive way: its own
        /// value if its own limits set one, else that of the nearest listed tier at or
        /// below `tier`, else none.
        fn limit<T: Copy>(&self, account: u32, tier: u8, field: impl Fn(&Limits) -> Option<T>) -> Option<T> {
            let own = self.account.as_ref().filter(|(id, _)| *id == account).and_then(|(_, limits)| field(limits));
            let tier = self.tiers.iter().filter(|(listed, _)| *listed <= tier).max_by_key(|(listed, _)| *listed);
            own.or_else(|| tier.and_then(|(_, limits)| field(limits)))
        }

        /// Whether `account` at `tier` may not deal with `other`: global, tier and own
        /// lists together.
        fn blocks(&self, account: u32, tier: u8, other: u32) -> bool {
            let tier = self.tiers.iter().filter(|(listed, _)| *listed <= tier).max_by_key(|(listed, _)| *listed);
            let own = self.account.as_ref().filter(|(id, _)| *id == account);
            self.blocked.contains(&other)
                || tier.is_some_and(|(_, limits)| limits.blocked.contains(&other))
                || own.is_some_and(|(_, limits)| limits.blocked.contains(&other))
        }
    }

    #[derive(Clone, Debug)]
    enum Step {
        Transfer(u32, u32, u64),
        Withdraw(u32, u64),
        Authorize(u32, u32, u64),
        Capture(u32, u64, u64),
        Split(u32, u32, u32, u64),
        Order(u32, bool, u64, u64, bool),
        Amend(u32, u64, u64),
        Decide(u64, bool),
        /// A cross-border payment: payer, payee, amount, USD into BTC (else BTC into
        /// USD), under a `MaxSend` of the amount (else `MinReceive` of one unit).
        PayCrossBorder(u32, u32, u64, bool, bool),
        Quote(u32, u32, u64),
        /// Executes a quote issued in the run (chosen by index), by its payer or, if
        /// not `own`, by some other account.
        Execute(u32, bool),
        Publish(usize),
        Activate(u32, u16),
        Rollback(u32),
        Tier(u32, u8),
        Freeze(u32, bool),
        Wait(u64),
    }

    fn step() -> impl Strategy<Value = Step> {
        let account = || 0..ACCOUNTS;
        let cents = || 1..4_000_u64;
        prop_oneof![
            6 => (account(), account(), cents()).prop_map(|(by, to, cents)| Step::Transfer(by, to, cents)),
            2 => (account(), cents()).prop_map(|(by, cents)| Step::Withdraw(by, cents)),
            2 => (account(), account(), cents()).prop_map(|(by, to, cents)| Step::Authorize(by, to, cents)),
            1 => (account(), 1..30_u64, cents()).prop_map(|(by, payment, cents)| Step::Capture(by, payment, cents)),
            2 => (account(), account(), account(), cents()).prop_map(|(by, one, two, cents)| Step::Split(by, one, two, cents)),
            4 => (account(), any::<bool>(), 1..600_u64, 1..6_u64, any::<bool>()).prop_map(|(by, buy, price, lots, gtc)| Step::Order(by, buy, price, lots, gtc)),
            1 => (account(), 1..40_u64, 1..8_u64).prop_map(|(by, order, lots)| Step::Amend(by, order, lots)),
            4 => (1..10_u64, any::<bool>()).prop_map(|(hold, approve)| Step::Decide(hold, approve)),
            4 => (account(), account(), cents(), any::<bool>(), any::<bool>()).prop_map(|(by, to, cents, buy, max_send)| Step::PayCrossBorder(by, to, cents, buy, max_send)),
            2 => (account(), account(), cents()).prop_map(|(by, to, cents)| Step::Quote(by, to, cents)),
            2 => (0..64_u32, prop::bool::weighted(0.9)).prop_map(|(choice, own)| Step::Execute(choice, own)),
            1 => (0..3_usize).prop_map(Step::Publish),
            2 => (0..5_u32, prop_oneof![Just(0_u16), Just(10_000), 0..10_001_u16, Just(10_001)]).prop_map(|(version, share)| Step::Activate(version, share)),
            1 => (0..5_u32).prop_map(Step::Rollback),
            1 => (account(), 0..4_u8).prop_map(|(account, tier)| Step::Tier(account, tier)),
            1 => (account(), any::<bool>()).prop_map(|(account, frozen)| Step::Freeze(account, frozen)),
            2 => prop_oneof![1..90_u64, Just(3_600), Just(86_400)].prop_map(Step::Wait),
        ]
    }

    fn command(step: &Step, rule_sets: &[Rules], quotes: &[Issued], key: IdempotencyKey, now: u64) -> Option<Command> {
        let id = AccountId::new;
        let command = match *step {
            Step::Transfer(by, to, cents) => {
                Command::Transfer(Transfer { by: id(by), key, to: id(to), asset: USD, amount: amount(cents) })
            }
            Step::Withdraw(by, cents) => Command::Withdraw(Withdraw {
                account: id(by),
                key,
                asset: USD,
                amount: amount(cents),
                reference: reference("w"),
            }),
            Step::Authorize(by, to, cents) => {
                let expires_at = Timestamp::from_nanos(now + 120 * SECOND);
                Command::Authorize(Authorize {
                    by: id(by),
                    key,
                    payee: id(to),
                    asset: USD,
                    amount: amount(cents),
                    expires_at,
                })
            }
            Step::Capture(by, payment, cents) => Command::Capture(Capture {
                by: id(by),
                key,
                payment: bourse_core::ids::PaymentId::new(payment),
                asset: USD,
                amount: amount(cents),
                last: cents % 2 == 0,
            }),
            Step::Split(by, one, two, cents) => {
                let legs = vec![
                    SplitLeg { payee: id(one), amount: amount(cents) },
                    SplitLeg { payee: id(two), amount: amount(cents / 2 + 1) },
                ];
                Command::SplitPayment(SplitPayment { by: id(by), key, asset: USD, legs })
            }
            Step::Order(by, buy, price, lots, gtc) => {
                let side = if buy { Side::Buy } else { Side::Sell };
                let time_in_force = if gtc { TimeInForce::Gtc } else { TimeInForce::Ioc };
                Command::PlaceOrder(PlaceOrder { time_in_force, ..limit(id(by), side, price, lots) })
            }
            Step::Amend(by, order, lots) => Command::AmendOrder(AmendOrder {
                by: id(by),
                order: OrderRef::Id(bourse_core::book::OrderId::new(order)),
                price: None,
                qty: Some(Qty::new(lots).unwrap()),
            }),
            Step::Decide(hold, approve) => Command::ReviewDecision(ReviewDecision { hold: HoldId::new(hold), approve }),
            Step::PayCrossBorder(by, to, cents, buy, max_send) => {
                // Sending BTC: 1 to 50 lots (0.0001 BTC each).
                let (from, to_asset, sent) =
                    if buy { (USD, BTC, cents) } else { (BTC, USD, (cents % 50 + 1) * 10_000) };
                let limit = if max_send { RateLimit::MaxSend(amount(sent)) } else { RateLimit::MinReceive(amount(1)) };
                let amount = CrossBorderAmount::Send(amount(sent));
                Command::PayCrossBorder(PayCrossBorder {
                    by: id(by),
                    key,
                    payee: id(to),
                    from,
                    to: to_asset,
                    amount,
                    limit,
                    max_hops: None,
                })
            }
            Step::Quote(by, to, cents) => Command::QuotePayment(QuotePayment {
                by: id(by),
                payee: id(to),
                from: USD,
                to: BTC,
                amount: CrossBorderAmount::Send(amount(cents)),
                max_hops: None,
                ttl: None,
            }),
            Step::Execute(choice, own) => {
                let Issued { quote, payer, .. } = *quotes.get(choice as usize % quotes.len().max(1))?;
                let by = if own { payer } else { id((payer.get() + 1) % ACCOUNTS) };
                Command::ExecuteQuote(ExecuteQuote { by, key, quote })
            }
            Step::Publish(index) => Command::PublishRules(PublishRules {
                rules: RuleSet::from_toml_str(&rule_sets.get(index)?.toml()).unwrap(),
            }),
            Step::Activate(number, share_bps) => {
                Command::ActivateRules(ActivateRules { version: version(number), share_bps })
            }
            Step::Rollback(number) => Command::RollbackRules(RollbackRules { to_version: version(number) }),
            Step::Tier(account, tier) => {
                Command::SetKycTier(SetKycTier { account: id(account), kyc_tier: KycTier::new(tier).unwrap() })
            }
            Step::Freeze(account, true) => Command::FreezeAccount(FreezeAccount { account: id(account) }),
            Step::Freeze(account, false) => Command::UnfreezeAccount(UnfreezeAccount { account: id(account) }),
            Step::Wait(_) => Command::Tick,
        };
        Some(command)
    }

    /// Accounts at tiers 0 to 3 with 2,000.00 USD and 0.5 BTC each, depth in the book
    /// for cross-border payments (the last account asks 1.00 USD per lot for 2,000
    /// lots and bids 0.90 for 1,000), and the first rule set in effect for everyone.
    fn setup(rules: &Rules) -> Bench {
        let mut bench = Bench::new();
        for tier in 0..ACCOUNTS {
            let account = bench.open((tier % 4) as u8);
            bench.fund(account, USD, 200_000);
            bench.fund(account, BTC, 50_000_000);
        }
        let maker = AccountId::new(ACCOUNTS - 1);
        assert!(accepted(&bench.place(limit(maker, Side::Sell, 100, 2_000))));
        assert!(accepted(&bench.place(limit(maker, Side::Buy, 90, 1_000))));
        bench.rules(&rules.toml());
        bench
    }

    /// A quote issued in the run.
    #[derive(Clone, Copy, Debug)]
    struct Issued {
        quote: QuoteId,
        payer: AccountId,
        payee: AccountId,
        from: AssetId,
    }

    /// What a command asks the rules, if anything: a payment by `payer` to `payees` in
    /// `asset` (of `amount`, or for a cross-border payment what it sends), or a quote,
    /// which only a blocked counterparty refuses.
    #[derive(Clone, Debug)]
    struct Asked {
        kind: CommandKind,
        payer: u32,
        payees: Vec<u32>,
        asset: AssetId,
        amount: Option<u64>,
        quote_only: bool,
    }

    /// What the rules decide about a command that passed every other check.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    enum Verdict {
        Pass,
        Violated(AccountId, RuleKind, RuleVersion),
        Review(RuleVersion),
    }

    /// A naive model of rule enforcement, written from the documentation of
    /// `bourse_core::rules` and `engine::risk`, not from the engine's code: which version
    /// decides for an account (the base, or the rollout below its share of buckets),
    /// an account's limits at its tier, and every payment made or held, kept in full
    /// with its command time and amount, the window and the day counted by scanning
    /// them.
    #[derive(Debug)]
    struct Reference {
        /// Version `v` is at index `v - 1`.
        versions: Vec<Rules>,
        /// 0: none.
        base: u32,
        rollout: Option<(u32, u16)>,
        tiers: Vec<u8>,
        /// (account, command time) of every payment made or held.
        payments: Vec<(u32, u64)>,
        /// What left each (account, asset) on each UTC day, review give-backs taken off.
        outflow: BTreeMap<(u32, AssetId, u64), u64>,
        /// The pending holds: payer, asset, amount, UTC day held.
        holds: BTreeMap<HoldId, (u32, AssetId, u64, u64)>,
    }

    fn day(at: u64) -> u64 {
        at / NANOS_PER_DAY
    }

    impl Reference {
        /// The state `setup` leaves: `first` fully active, no payment yet.
        fn new(first: &Rules, bench: &Bench) -> Self {
            let tiers = (0..ACCOUNTS)
                .map(|account| bench.engine.account(AccountId::new(account)).unwrap().kyc_tier().get())
                .collect();
            Self {
                versions: vec![first.clone()],
                base: 1,
                rollout: None,
                tiers,
                payments: Vec::new(),
                outflow: BTreeMap::new(),
                holds: BTreeMap::new(),
            }
        }

        /// The version in effect for `account` (0: none).
        fn version_of(&self, account: u32) -> u32 {
            match self.rollout {
                Some((version, share_bps)) if rollout_bucket(AccountId::new(account)) < share_bps => version,
                _ => self.base,
            }
        }

        fn rules_of(&self, account: u32) -> Option<(u32, &Rules)> {
            let version = self.version_of(account);
            (version != 0).then(|| (version, &self.versions[version as usize - 1]))
        }

        /// The rules' decision on `asked`, of `amount`, at `now`: blocked counterparties
        /// both ways, payee by payee; then the payer's single payment, payments per
        /// minute, daily outflow and review threshold (USD amounts only).
        fn verdict(&self, asked: &Asked, amount: u64, now: u64) -> Verdict {
            let payer = asked.payer;
            let violated = |account: u32, rule, version: u32| {
                Verdict::Violated(AccountId::new(account), rule, RuleVersion::new(version))
            };
            let tier = |account: u32| self.tiers[account as usize];
            for &payee in &asked.payees {
                for (account, other) in [(payer, payee), (payee, payer)] {
                    if let Some((version, rules)) = self.rules_of(account)
                        && rules.blocks(account, tier(account), other)
                    {
                        return violated(account, RuleKind::BlockedCounterparty, version);
                    }
                }
            }
            let Some((version, rules)) = self.rules_of(payer).filter(|_| !asked.quote_only) else {
                return Verdict::Pass;
            };
            let usd = |field: fn(&Limits) -> Option<u64>| {
                if asked.asset == USD { rules.limit(payer, tier(payer), field) } else { None }
            };
            if usd(|limits| limits.single).is_some_and(|max| amount > max) {
                return violated(payer, RuleKind::MaxSinglePayment, version);
            }
            if let Some(max) = rules.limit(payer, tier(payer), |limits| limits.per_minute) {
                let window = self.payments.iter().filter(|&&(account, at)| account == payer && at + 60 * SECOND > now);
                if window.count() >= max as usize {
                    return violated(payer, RuleKind::PaymentsPerMinute, version);
                }
            }
            let today = self.outflow.get(&(payer, asked.asset, day(now))).copied().unwrap_or(0);
            if usd(|limits| limits.daily).is_some_and(|max| today + amount > max) {
                return violated(payer, RuleKind::DailyOutflow, version);
            }
            if usd(|limits| limits.review).is_some_and(|threshold| amount > threshold) {
                return Verdict::Review(RuleVersion::new(version));
            }
            Verdict::Pass
        }

        fn record(&mut self, payer: u32, asset: AssetId, amount: u64, now: u64) {
            self.payments.push((payer, now));
            *self.outflow.entry((payer, asset, day(now))).or_default() += amount;
        }

        fn give_back(&mut self, (payer, asset, _, day): (u32, AssetId, u64, u64), amount: u64) {
            let total = self.outflow.get_mut(&(payer, asset, day)).expect("held on that day");
            *total = total.checked_sub(amount).expect("gives back no more than was counted");
        }

        /// Checks the engine's `events` for the command `asked` against the verdict, given
        /// the events of the same command with no rules in effect (`plain`); counts the
        /// payment if it was made or held.
        fn check(&mut self, asked: &Asked, plain: &[Event], events: &[Event], now: u64) -> Result<(), TestCaseError> {
            let kind = asked.kind;
            let refused = |account, rule, version| {
                vec![
                    Event::RuleViolated { kind, account, rule, version },
                    Event::Rejected { kind, reason: RejectReason::RuleViolation },
                ]
            };
            let passed_other_checks = !plain.iter().any(|event| matches!(event, Event::Rejected { .. }));
            if asked.quote_only {
                // A quote's counterparties are asked before routing: a quote refused
                // without rules may still be refused by them first.
                match self.verdict(asked, 0, now) {
                    Verdict::Violated(account, rule, version) if passed_other_checks || events != plain => {
                        prop_assert_eq!(events, &refused(account, rule, version)[..]);
                    }
                    _ => prop_assert_eq!(events, plain),
                }
                return Ok(());
            }
            if !passed_other_checks {
                prop_assert_eq!(events, plain, "refused before the rules are asked");
                return Ok(());
            }
            let sent = plain.iter().find_map(|event| match event {
                Event::CrossBorderPaid { send, .. } => Some(send.minor_units()),
                _ => None,
            });
            let amount = asked.amount.or(sent).expect("a cross-border payment made without rules sends");
            match self.verdict(asked, amount, now) {
                Verdict::Pass => {
                    prop_assert_eq!(events, plain, "the rules let it through");
                    self.record(asked.payer, asked.asset, amount, now);
                }
                Verdict::Violated(account, rule, version) => {
                    prop_assert_eq!(events, &refused(account, rule, version)[..]);
                }
                Verdict::Review(version) => match *events {
                    [Event::HeldForReview { hold, payer, asset, amount: held, rule, version: by, .. }, ..]
                        if rule == RuleKind::ReviewThreshold
                            && by == version
                            && payer.get() == asked.payer
                            && asset == asked.asset =>
                    {
                        self.record(asked.payer, asset, held.minor_units(), now);
                        self.holds.insert(hold, (asked.payer, asset, held.minor_units(), day(now)));
                    }
                    _ => prop_assert!(false, "expected a hold for review by version {}: {:?}", version.get(), events),
                },
            }
            Ok(())
        }

        /// Follows what `events` change for the rules: versions published (`published`
        /// is the rule set of a `Publish` step), activated, rolled back; tiers; review
        /// decisions, which give back what a hold counted and did not send.
        fn follow(&mut self, events: &[Event], published: Option<&Rules>) {
            for event in events {
                match *event {
                    Event::RulesPublished { version } => {
                        self.versions.push(published.expect("a publish step").clone());
                        assert_eq!(version.get() as usize, self.versions.len());
                    }
                    Event::RulesActivated { share_bps: 0, .. } => self.rollout = None,
                    Event::RulesActivated { version, share_bps: 10_000 } => {
                        (self.base, self.rollout) = (version.get(), None);
                    }
                    Event::RulesActivated { version, share_bps } => self.rollout = Some((version.get(), share_bps)),
                    Event::RulesRolledBack { to, .. } => (self.base, self.rollout) = (to.get(), None),
                    Event::KycTierChanged { account, kyc_tier } => self.tiers[account.get() as usize] = kyc_tier.get(),
                    Event::ReviewRejected { hold, .. } => {
                        let held = self.holds.remove(&hold).expect("a pending hold");
                        self.give_back(held, held.2);
                    }
                    Event::ReviewApproved { hold, .. } => {
                        let held = self.holds.remove(&hold).expect("a pending hold");
                        let sent = events.iter().find_map(|event| match event {
                            Event::CrossBorderPaid { send, .. } => Some(send.minor_units()),
                            _ => None,
                        });
                        if let Some(sent) = sent {
                            self.give_back(held, held.2 - sent);
                        }
                    }
                    _ => {}
                }
            }
        }
    }

    /// What `command` asks the rules, if anything.
    fn asked(command: &Command, quotes: &[Issued]) -> Option<Asked> {
        let payment = |kind, payer: AccountId, payees: &[AccountId], asset, amount: Option<Amount>| Asked {
            kind,
            payer: payer.get(),
            payees: payees.iter().map(|payee| payee.get()).collect(),
            asset,
            amount: amount.map(Amount::minor_units),
            quote_only: false,
        };
        Some(match command {
            Command::Transfer(t) => payment(CommandKind::Transfer, t.by, &[t.to], t.asset, Some(t.amount)),
            Command::Withdraw(w) => payment(CommandKind::Withdraw, w.account, &[], w.asset, Some(w.amount)),
            Command::Authorize(a) => payment(CommandKind::Authorize, a.by, &[a.payee], a.asset, Some(a.amount)),
            Command::SplitPayment(split) => {
                let payees: Vec<AccountId> = split.legs.iter().map(|leg| leg.payee).collect();
                let total = split.legs.iter().map(|leg| leg.amount.minor_units()).sum();
                payment(CommandKind::SplitPayment, split.by, &payees, split.asset, Some(amount(total)))
            }
            Command::PayCrossBorder(pay) => payment(CommandKind::PayCrossBorder, pay.by, &[pay.payee], pay.from, None),
            Command::ExecuteQuote(execute) => {
                let issued = quotes.iter().find(|issued| issued.quote == execute.quote)?;
                payment(CommandKind::ExecuteQuote, issued.payer, &[issued.payee], issued.from, None)
            }
            Command::QuotePayment(quote) => Asked {
                quote_only: true,
                ..payment(CommandKind::QuotePayment, quote.by, &[quote.payee], quote.from, None)
            },
            _ => return None,
        })
    }

    /// The events of `command` applied to a copy of the engine with no rules in
    /// effect (rolled back to none first), at the same command time: whether it passes
    /// every other check and, for a cross-border payment, what it sends.
    fn without_rules(bench: &Bench, command: &Command) -> Vec<Event> {
        let mut engine = bench.engine.clone();
        let at = Timestamp::from_nanos(bench.now);
        let mut seq = bench.seq;
        let mut apply = |engine: &mut Engine, command: Command| {
            seq += 1;
            let mut events = Vec::new();
            engine.apply(&SequencedCommand { seq: Seq::new(seq), timestamp: at, command }, &mut events);
            events
        };
        if engine.rules_in_effect() != (RuleVersion::NONE, None) {
            let events = apply(&mut engine, Command::RollbackRules(RollbackRules { to_version: RuleVersion::NONE }));
            assert!(matches!(events[..], [Event::RulesRolledBack { .. }]), "{events:?}");
        }
        apply(&mut engine, command.clone())
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

        /// Every invariant after every step, replay to the same state, and every rule
        /// decision on a payment (and a quote's blocked counterparty) as the naive
        /// `Reference` predicts it.
        #[test]
        fn random_rules_and_commands_keep_every_invariant(
            rule_sets in prop::collection::vec(rule_set(), 1..4),
            steps in prop::collection::vec(step(), 1..160),
        ) {
            let mut bench = setup(&rule_sets[0]);
            let mut reference = Reference::new(&rule_sets[0], &bench);
            let mut commands = Vec::new();
            let mut quotes = Vec::new();
            for step in &steps {
                if let Step::Wait(seconds) = step {
                    bench.now += seconds * SECOND;
                }
                let key = bench.key();
                if let Some(command) = command(step, &rule_sets, &quotes, key, bench.now) {
                    commands.push((bench.now, command.clone()));
                    let asked = asked(&command, &quotes);
                    let plain = asked.as_ref().map(|_| without_rules(&bench, &command));
                    // Invariants and the rebuild are checked inside, after every step.
                    let events = bench.apply(command);
                    if let (Some(asked), Some(plain)) = (asked, plain) {
                        reference.check(&asked, &plain, &events, bench.now)?;
                    }
                    let published = match step {
                        Step::Publish(index) => rule_sets.get(*index),
                        _ => None,
                    };
                    reference.follow(&events, published);
                    for event in &events {
                        if let Event::RuleViolated { version, .. } | Event::HeldForReview { version, .. } = event {
                            prop_assert!(version.get() >= 1 && version.get() <= bench.engine.rule_versions());
                        }
                        // Review thresholds are in USD only: what a cross-border payment
                        // sends in BTC is never held.
                        if let Event::HeldForReview { kind: CommandKind::PayCrossBorder | CommandKind::ExecuteQuote, asset, .. } = event {
                            prop_assert_eq!(*asset, USD);
                        }
                        if let Event::Quoted { quote, payer, payee, from, .. } = *event {
                            quotes.push(Issued { quote, payer, payee, from });
                        }
                    }
                }
            }
            // Conservation in full: deposits less withdrawals is what accounts and fees hold.
            prop_assert!(bench.engine.reconcile().is_balanced());
            // Replaying the whole run reaches the same state.
            let mut twin = setup(&rule_sets[0]);
            prop_assert_eq!(twin.seq as usize, bench.seq as usize - commands.len());
            for (at, command) in &commands {
                twin.apply_at(*at, command.clone());
            }
            prop_assert_eq!(twin.engine.state_hash(), bench.engine.state_hash());
        }
    }
}

//! Command-level tests of the account and payment engine: every command, every
//! rejection reason it can produce, idempotency, authorization expiry, and the events
//! each command emits.
//!
//! Every command goes through `Bench::apply_at`, which after each step runs
//! `Engine::check_invariants` and checks that the `BalanceChanged` events come last,
//! carry the post-command balances, and name every (account, asset) whose balance
//! moved. Every rejection goes through `Bench::rejects`, which checks that the command
//! changed nothing against a twin engine that saw a `Tick` with the same stamp instead:
//! for a keyed command the remembered outcome is the one difference allowed, a retry
//! replays it, and once it ages out the two states hash the same.
//!
//! `RejectReason::CapacityExceeded` is not covered: every table it guards holds
//! millions of entries (`limits`), too many to fill in a unit test.

use bourse_core::Engine;
use bourse_core::command::{
    Authorize, Capture, Command, CommandKind, Deposit, FreezeAccount, OpenAccount, Refund, SequencedCommand,
    SetKycTier, SplitLeg, SplitPayment, Transfer, UnfreezeAccount, Void, Withdraw,
};
use bourse_core::config::Config;
use bourse_core::event::{Event, Outcome, RejectReason};
use bourse_core::ids::{AccountId, AssetId, IdempotencyKey, KycTier, OwnerId, PaymentId, Reference, Seq, Timestamp};
use bourse_core::limits::{
    AMOUNT_MAX, AUTHORIZATION_DURATION_MAX, IDEMPOTENCY_RETENTION, NANOS_PER_SECOND, PAYMENT_RETENTION, SPLIT_LEGS_MAX,
};
use bourse_core::money::Amount;

const CONFIG: &str = r#"
[[assets]]
code = "USD"
scale = 2
[[assets]]
code = "JPY"
scale = 0
[[assets]]
code = "BTC"
scale = 8
"#;

const USD: AssetId = AssetId::new(0);
const JPY: AssetId = AssetId::new(1);
const BTC: AssetId = AssetId::new(2);
/// Not in the configuration.
const XAU: AssetId = AssetId::new(3);
/// Never opened.
const NOBODY: AccountId = AccountId::new(9_999);
/// Never created.
const NO_PAYMENT: PaymentId = PaymentId::new(9_999);

/// Command time of the first command of every test.
const START: u64 = 1_700_000_000 * NANOS_PER_SECOND;
const HOUR: u64 = 3_600 * NANOS_PER_SECOND;
/// Keys `Bench::fund` uses, far from the small keys the tests choose.
const FUNDING_KEYS: u128 = 1 << 100;
const NOTHING: [Event; 0] = [];

// ---------------------------------------------------------------------------------
// The bench: an engine, its sequencer, and the checks run after every step.
// ---------------------------------------------------------------------------------

#[derive(Clone)]
struct Bench {
    engine: Engine,
    seq: u64,
    now: u64,
    owners: u64,
    funding_keys: u128,
}

impl Bench {
    fn new() -> Self {
        let config = Config::from_toml_str(CONFIG).expect("test configuration is valid");
        let engine = Engine::new(&config);
        for (code, id) in [("USD", USD), ("JPY", JPY), ("BTC", BTC)] {
            assert_eq!(engine.assets().find(code).map(|(found, _)| found), Some(id));
        }
        Self { engine, seq: 0, now: START, owners: 0, funding_keys: FUNDING_KEYS }
    }

    /// Applies `command` with the next sequence number at time `at`, checks the
    /// invariants and the balance events, and returns the events.
    fn apply_at(&mut self, at: u64, command: Command) -> Vec<Event> {
        let before = self.engine.clone();
        self.seq += 1;
        self.now = at;
        let sequenced = SequencedCommand { seq: Seq::new(self.seq), timestamp: Timestamp::from_nanos(at), command };
        let mut events = Vec::new();
        self.engine.apply(&sequenced, &mut events);
        self.engine.check_invariants();
        assert_balance_events(&before, &self.engine, &events);
        events
    }

    /// Applies `command` at the current command time.
    fn apply(&mut self, command: Command) -> Vec<Event> {
        self.apply_at(self.now, command)
    }

    fn tick_at(&mut self, at: u64) -> Vec<Event> {
        self.apply_at(at, Command::Tick)
    }

    fn open(&mut self) -> AccountId {
        self.owners += 1;
        let command = OpenAccount { owner: OwnerId::new(self.owners), kyc_tier: tier(1) };
        match self.apply(Command::OpenAccount(command))[..] {
            [Event::AccountOpened { account, .. }] => account,
            ref events => panic!("account not opened: {events:?}"),
        }
    }

    fn fund(&mut self, account: AccountId, asset: AssetId, minor_units: u64) {
        self.funding_keys += 1;
        let events = self.apply(deposit(account, self.funding_keys, asset, minor_units));
        assert!(matches!(events[0], Event::Deposited { .. }), "deposit refused: {events:?}");
    }

    fn funded(&mut self, asset: AssetId, minor_units: u64) -> AccountId {
        let account = self.open();
        self.fund(account, asset, minor_units);
        account
    }

    /// Applies a command that must create a payment, and returns its id.
    fn pay(&mut self, command: Command) -> PaymentId {
        let events = self.apply(command);
        events
            .iter()
            .find_map(|event| match *event {
                Event::Transferred { payment, .. } | Event::Authorized { payment, .. } => Some(payment),
                _ => None,
            })
            .unwrap_or_else(|| panic!("no payment made: {events:?}"))
    }

    /// Applies a command that must be accepted.
    fn accepts(&mut self, command: Command) -> Vec<Event> {
        let events = self.apply(command);
        assert!(!events.iter().any(|event| matches!(event, Event::Rejected { .. })), "refused: {events:?}");
        events
    }

    /// (available, held) of `asset` in `account`.
    fn balance(&self, account: AccountId, asset: AssetId) -> (u64, u64) {
        let balance = self.engine.balance(account, asset).expect("account exists");
        (balance.available().minor_units(), balance.held().minor_units())
    }

    /// Applies a command that must be refused for `reason` and change nothing. A keyed
    /// command's rejection is remembered under its key (and only that).
    fn rejects(&mut self, command: Command, reason: RejectReason) {
        let recorded = is_keyed(command.kind());
        self.refuses(command, reason, recorded);
    }

    /// As `rejects`, for a keyed command refused before its key is looked at or
    /// recorded (unknown principal, idempotency conflict): nothing at all changes.
    fn rejects_unrecorded(&mut self, command: Command, reason: RejectReason) {
        self.refuses(command, reason, false);
    }

    fn refuses(&mut self, command: Command, reason: RejectReason, recorded: bool) {
        let kind = command.kind();
        let mut twin = self.clone();
        assert_eq!(twin.apply(Command::Tick), NOTHING, "no expiry may be due in a rejection check");
        assert_eq!(self.apply(command.clone()), [Event::Rejected { kind, reason }]);
        if !recorded {
            assert_eq!(self.engine.state_hash(), twin.engine.state_hash(), "refused {kind:?} changed the state");
            return;
        }
        assert_eq!(self.engine.idempotency_entries(), twin.engine.idempotency_entries() + 1, "outcome remembered");
        assert_same_books(&self.engine, &twin.engine);
        let mut retry = self.clone();
        assert_eq!(retry.apply(command), [Event::Replayed { kind, original: Outcome::Rejected(reason) }]);
        // Once the remembered outcome ages out, nothing tells the two engines apart.
        let later = self.now + IDEMPOTENCY_RETENTION.as_nanos();
        let mut aged = self.clone();
        aged.tick_at(later);
        twin.tick_at(later);
        assert_eq!(aged.engine.state_hash(), twin.engine.state_hash(), "refused {kind:?} changed more than its key");
    }

    /// Applies a retry that must replay `original` and change nothing.
    fn replays(&mut self, command: Command, original: Outcome) {
        let kind = command.kind();
        let mut twin = self.clone();
        twin.apply(Command::Tick);
        assert_eq!(self.apply(command), [Event::Replayed { kind, original }]);
        assert_eq!(self.engine.state_hash(), twin.engine.state_hash(), "a replay changed the state");
    }
}

fn is_keyed(kind: CommandKind) -> bool {
    matches!(
        kind,
        CommandKind::Deposit
            | CommandKind::Withdraw
            | CommandKind::Transfer
            | CommandKind::Authorize
            | CommandKind::Capture
            | CommandKind::Void
            | CommandKind::SplitPayment
            | CommandKind::Refund
    )
}

fn account_ids(engine: &Engine) -> impl Iterator<Item = AccountId> {
    (0..engine.account_count()).map(|index| AccountId::new(u32::try_from(index).expect("few accounts")))
}

/// (available, held), zero for an account or asset never touched.
fn amounts(engine: &Engine, account: AccountId, asset: AssetId) -> (Amount, Amount) {
    engine.balance(account, asset).map_or((Amount::ZERO, Amount::ZERO), |b| (b.available(), b.held()))
}

/// `BalanceChanged` events close the list, once per (account, asset), carry the
/// balance after the command, and name every balance the command moved.
fn assert_balance_events(before: &Engine, after: &Engine, events: &[Event]) {
    let first = events.iter().position(|event| matches!(event, Event::BalanceChanged { .. }));
    let tail = &events[first.unwrap_or(events.len())..];
    let mut reported = Vec::new();
    for event in tail {
        let Event::BalanceChanged { account, asset, available, held } = *event else {
            panic!("BalanceChanged events come last: {events:?}");
        };
        assert_eq!((available, held), amounts(after, account, asset), "stale balance in {event:?}");
        assert!(!reported.contains(&(account, asset)), "reported twice: {event:?}");
        reported.push((account, asset));
    }
    for account in account_ids(after) {
        for (asset, _) in after.assets().iter() {
            if amounts(before, account, asset) != amounts(after, account, asset) {
                assert!(reported.contains(&(account, asset)), "unreported change of {account}/{asset:?}: {events:?}");
            }
        }
    }
}

/// Accounts, totals, payment count and reconciliation agree.
fn assert_same_books(engine: &Engine, twin: &Engine) {
    assert_eq!(engine.account_count(), twin.account_count());
    for account in account_ids(engine) {
        assert_eq!(engine.account(account), twin.account(account), "account {account}");
    }
    assert_eq!(engine.totals(), twin.totals());
    assert_eq!(engine.payment_records(), twin.payment_records());
    assert_eq!(engine.reconcile(), twin.reconcile());
}

// ---------------------------------------------------------------------------------
// Command builders.
// ---------------------------------------------------------------------------------

fn amount(minor_units: u64) -> Amount {
    Amount::new(minor_units).expect("within AMOUNT_MAX")
}

fn tier(tier: u8) -> KycTier {
    KycTier::new(tier).expect("valid tier")
}

fn reference(text: &str) -> Reference {
    Reference::new(text).expect("short reference")
}

fn bc(account: AccountId, asset: AssetId, available: u64, held: u64) -> Event {
    Event::BalanceChanged { account, asset, available: amount(available), held: amount(held) }
}

fn rejected(kind: CommandKind, reason: RejectReason) -> Event {
    Event::Rejected { kind, reason }
}

fn accepted(payment: PaymentId) -> Outcome {
    Outcome::Accepted { payment: Some(payment) }
}

fn deposit(account: AccountId, key: u128, asset: AssetId, minor_units: u64) -> Command {
    deposit_ref(account, key, asset, minor_units, "BANK-1")
}

fn deposit_ref(account: AccountId, key: u128, asset: AssetId, minor_units: u64, text: &str) -> Command {
    let key = IdempotencyKey::new(key);
    Command::Deposit(Deposit { account, key, asset, amount: amount(minor_units), reference: reference(text) })
}

fn withdraw(account: AccountId, key: u128, asset: AssetId, minor_units: u64) -> Command {
    let key = IdempotencyKey::new(key);
    Command::Withdraw(Withdraw { account, key, asset, amount: amount(minor_units), reference: reference("OUT-1") })
}

fn transfer(by: AccountId, key: u128, to: AccountId, asset: AssetId, minor_units: u64) -> Command {
    Command::Transfer(Transfer { by, key: IdempotencyKey::new(key), to, asset, amount: amount(minor_units) })
}

fn authorize(by: AccountId, key: u128, payee: AccountId, asset: AssetId, minor_units: u64, expires_at: u64) -> Command {
    Command::Authorize(Authorize {
        by,
        key: IdempotencyKey::new(key),
        payee,
        asset,
        amount: amount(minor_units),
        expires_at: Timestamp::from_nanos(expires_at),
    })
}

fn capture(by: AccountId, key: u128, payment: PaymentId, asset: AssetId, minor_units: u64, last: bool) -> Command {
    Command::Capture(Capture { by, key: IdempotencyKey::new(key), payment, asset, amount: amount(minor_units), last })
}

fn void(by: AccountId, key: u128, payment: PaymentId) -> Command {
    Command::Void(Void { by, key: IdempotencyKey::new(key), payment })
}

fn split(by: AccountId, key: u128, asset: AssetId, legs: &[(AccountId, u64)]) -> Command {
    let legs = legs.iter().map(|&(payee, minor_units)| SplitLeg { payee, amount: amount(minor_units) }).collect();
    Command::SplitPayment(SplitPayment { by, key: IdempotencyKey::new(key), asset, legs })
}

fn refund(by: AccountId, key: u128, payment: PaymentId, asset: AssetId, minor_units: u64) -> Command {
    Command::Refund(Refund { by, key: IdempotencyKey::new(key), payment, asset, amount: amount(minor_units) })
}

fn freeze(account: AccountId) -> Command {
    Command::FreezeAccount(FreezeAccount { account })
}

fn unfreeze(account: AccountId) -> Command {
    Command::UnfreezeAccount(UnfreezeAccount { account })
}

fn stamped(seq: u64, at: u64) -> SequencedCommand {
    SequencedCommand { seq: Seq::new(seq), timestamp: Timestamp::from_nanos(at), command: Command::Tick }
}

/// A payer with 100 USD, a payee, and an authorization of 40 USD between them that
/// expires in an hour.
fn authorized() -> (Bench, AccountId, AccountId, PaymentId) {
    let mut t = Bench::new();
    let (payer, payee) = (t.funded(USD, 100), t.open());
    let payment = t.pay(authorize(payer, 1, payee, USD, 40, t.now + HOUR));
    (t, payer, payee, payment)
}

// ---------------------------------------------------------------------------------
// Account lifecycle.
// ---------------------------------------------------------------------------------

#[test]
fn open_account_assigns_dense_ids() {
    let mut t = Bench::new();
    let owner = OwnerId::new(77);
    for index in 0..3 {
        let events = t.apply(Command::OpenAccount(OpenAccount { owner, kyc_tier: tier(2) }));
        let account = AccountId::new(index);
        assert_eq!(events, [Event::AccountOpened { account, owner, kyc_tier: tier(2) }]);
        let opened = t.engine.account(account).expect("opened");
        assert_eq!((opened.owner(), opened.kyc_tier(), opened.is_frozen()), (owner, tier(2), false));
        assert!(opened.balances().is_empty());
    }
    assert_eq!(t.engine.account_count(), 3);
}

#[test]
fn freeze_and_unfreeze_toggle_the_flag() {
    let mut t = Bench::new();
    let account = t.open();
    assert_eq!(t.apply(freeze(account)), [Event::AccountFrozen { account }]);
    assert!(t.engine.account(account).expect("open").is_frozen());
    // Freezing twice is harmless and says so again.
    assert_eq!(t.apply(freeze(account)), [Event::AccountFrozen { account }]);
    assert_eq!(t.apply(unfreeze(account)), [Event::AccountUnfrozen { account }]);
    assert!(!t.engine.account(account).expect("open").is_frozen());
    t.fund(account, USD, 5);
}

#[test]
fn set_kyc_tier_changes_the_tier() {
    let mut t = Bench::new();
    let account = t.open();
    let events = t.apply(Command::SetKycTier(SetKycTier { account, kyc_tier: tier(9) }));
    assert_eq!(events, [Event::KycTierChanged { account, kyc_tier: tier(9) }]);
    assert_eq!(t.engine.account(account).expect("open").kyc_tier(), tier(9));
}

#[test]
fn lifecycle_commands_on_an_unknown_account_are_rejected() {
    let mut t = Bench::new();
    t.open();
    t.rejects(freeze(NOBODY), RejectReason::UnknownAccount);
    t.rejects(unfreeze(NOBODY), RejectReason::UnknownAccount);
    let set_tier = Command::SetKycTier(SetKycTier { account: NOBODY, kyc_tier: tier(3) });
    t.rejects(set_tier, RejectReason::UnknownAccount);
}

// ---------------------------------------------------------------------------------
// Deposits and withdrawals.
// ---------------------------------------------------------------------------------

#[test]
fn deposit_credits_available() {
    let mut t = Bench::new();
    let account = t.open();
    let events = t.apply(deposit_ref(account, 1, USD, 1250, "SEPA-7"));
    let deposited = Event::Deposited { account, asset: USD, amount: amount(1250), reference: reference("SEPA-7") };
    assert_eq!(events, [deposited, bc(account, USD, 1250, 0)]);
    assert_eq!(t.engine.totals()[usize::from(USD.get())].deposited(), 1250);
}

#[test]
fn withdraw_debits_available_down_to_zero() {
    let mut t = Bench::new();
    let account = t.funded(USD, 1000);
    let events = t.apply(withdraw(account, 1, USD, 400));
    let withdrawn = Event::Withdrawn { account, asset: USD, amount: amount(400), reference: reference("OUT-1") };
    assert_eq!(events, [withdrawn, bc(account, USD, 600, 0)]);
    t.accepts(withdraw(account, 2, USD, 600));
    assert_eq!(t.balance(account, USD), (0, 0));
    assert_eq!(t.engine.totals()[usize::from(USD.get())].withdrawn(), 1000);
}

#[test]
fn balances_are_kept_per_asset() {
    let mut t = Bench::new();
    let (a, b) = (t.open(), t.open());
    assert_eq!(t.apply(deposit(a, 1, USD, 1250))[1..], [bc(a, USD, 1250, 0)]);
    assert_eq!(t.apply(deposit(a, 2, JPY, 150_000))[1..], [bc(a, JPY, 150_000, 0)]);
    assert_eq!(t.apply(deposit(a, 3, BTC, 1))[1..], [bc(a, BTC, 1, 0)]);
    // A JPY transfer reports JPY balances only.
    assert_eq!(t.apply(transfer(a, 4, b, JPY, 500))[1..], [bc(a, JPY, 149_500, 0), bc(b, JPY, 500, 0)]);
    assert_eq!((t.balance(a, USD), t.balance(a, BTC), t.balance(b, USD)), ((1250, 0), (1, 0), (0, 0)));
}

#[test]
fn held_funds_cannot_be_withdrawn() {
    let (mut t, payer, _, _) = authorized();
    t.rejects(withdraw(payer, 2, USD, 61), RejectReason::InsufficientFunds);
    t.accepts(withdraw(payer, 3, USD, 60));
    assert_eq!(t.balance(payer, USD), (0, 40));
}

#[test]
fn deposit_past_the_asset_maximum_overflows() {
    let mut t = Bench::new();
    let (whale, other) = (t.funded(USD, AMOUNT_MAX), t.open());
    // The bound is on the asset's total, not on one balance.
    t.rejects(deposit(other, 1, USD, 1), RejectReason::Overflow);
    t.rejects(deposit(whale, 2, USD, 1), RejectReason::Overflow);
    t.fund(other, JPY, AMOUNT_MAX);
    t.accepts(withdraw(whale, 3, USD, 1));
    t.accepts(deposit(other, 4, USD, 1));
}

// ---------------------------------------------------------------------------------
// Transfers.
// ---------------------------------------------------------------------------------

#[test]
fn transfer_moves_available_between_accounts() {
    let mut t = Bench::new();
    let (from, to) = (t.funded(USD, 100), t.open());
    let events = t.apply(transfer(from, 1, to, USD, 30));
    let payment = PaymentId::new(1);
    let transferred = Event::Transferred { payment, from, to, asset: USD, amount: amount(30) };
    assert_eq!(events, [transferred, bc(from, USD, 70, 0), bc(to, USD, 30, 0)]);
    assert_eq!(t.pay(transfer(from, 2, to, USD, 70)), PaymentId::new(2));
    assert_eq!((t.balance(from, USD), t.balance(to, USD)), ((0, 0), (100, 0)));
}

// ---------------------------------------------------------------------------------
// Authorize, capture, void.
// ---------------------------------------------------------------------------------

#[test]
fn authorize_holds_the_payers_funds() {
    let mut t = Bench::new();
    let (payer, payee) = (t.funded(USD, 100), t.open());
    let expires_at = t.now + HOUR;
    let events = t.apply(authorize(payer, 1, payee, USD, 40, expires_at));
    let payment = PaymentId::new(1);
    let expires_at = Timestamp::from_nanos(expires_at);
    let authorized = Event::Authorized { payment, payer, payee, asset: USD, amount: amount(40), expires_at };
    // The payee's balance does not move until a capture.
    assert_eq!(events, [authorized, bc(payer, USD, 60, 40)]);
}

#[test]
fn partial_capture_pays_part_of_the_hold_and_keeps_the_rest() {
    let (mut t, payer, payee, payment) = authorized();
    let events = t.apply(capture(payee, 2, payment, USD, 15, false));
    let captured = Event::Captured {
        payment,
        payer,
        payee,
        asset: USD,
        amount: amount(15),
        captured_total: amount(15),
        released: Amount::ZERO,
    };
    assert_eq!(events, [captured, bc(payer, USD, 60, 25), bc(payee, USD, 15, 0)]);
}

#[test]
fn full_capture_closes_the_authorization() {
    let (mut t, payer, payee, payment) = authorized();
    let events = t.apply(capture(payee, 2, payment, USD, 40, false));
    let captured = Event::Captured {
        payment,
        payer,
        payee,
        asset: USD,
        amount: amount(40),
        captured_total: amount(40),
        released: Amount::ZERO,
    };
    assert_eq!(events, [captured, bc(payer, USD, 60, 0), bc(payee, USD, 40, 0)]);
    t.rejects(capture(payee, 3, payment, USD, 1, false), RejectReason::AuthorizationClosed);
}

#[test]
fn last_capture_releases_the_rest_to_the_payer() {
    let (mut t, payer, payee, payment) = authorized();
    let events = t.apply(capture(payee, 2, payment, USD, 10, true));
    let captured = Event::Captured {
        payment,
        payer,
        payee,
        asset: USD,
        amount: amount(10),
        captured_total: amount(10),
        released: amount(30),
    };
    assert_eq!(events, [captured, bc(payer, USD, 90, 0), bc(payee, USD, 10, 0)]);
    t.rejects(capture(payee, 3, payment, USD, 1, false), RejectReason::AuthorizationClosed);
    t.rejects(void(payer, 4, payment), RejectReason::AuthorizationClosed);
}

#[test]
fn several_partial_captures_add_up_and_the_one_that_completes_closes() {
    let (mut t, payer, payee, payment) = authorized();
    let mut total = 0;
    for (key, step) in [(2, 10), (3, 5), (4, 25)] {
        total += step;
        let events = t.apply(capture(payee, key, payment, USD, step, false));
        let captured_total = amount(total);
        assert_eq!(
            events[0],
            Event::Captured {
                payment,
                payer,
                payee,
                asset: USD,
                amount: amount(step),
                captured_total,
                released: Amount::ZERO
            }
        );
        assert_eq!((t.balance(payer, USD), t.balance(payee, USD)), ((60, 40 - total), (total, 0)));
    }
    t.rejects(capture(payee, 5, payment, USD, 1, false), RejectReason::AuthorizationClosed);
    t.rejects(void(payee, 6, payment), RejectReason::AuthorizationClosed);
}

#[test]
fn void_by_the_payer_releases_the_hold() {
    let (mut t, payer, payee, payment) = authorized();
    assert_eq!(
        t.apply(void(payer, 2, payment)),
        [Event::Voided { payment, payer, payee, asset: USD, released: amount(40) }, bc(payer, USD, 100, 0)]
    );
    t.rejects(void(payee, 3, payment), RejectReason::AuthorizationClosed);
    t.rejects(capture(payee, 4, payment, USD, 1, false), RejectReason::AuthorizationClosed);
}

#[test]
fn void_by_the_payee_releases_what_was_not_captured() {
    let (mut t, payer, payee, payment) = authorized();
    t.accepts(capture(payee, 2, payment, USD, 15, false));
    assert_eq!(
        t.apply(void(payee, 3, payment)),
        [Event::Voided { payment, payer, payee, asset: USD, released: amount(25) }, bc(payer, USD, 85, 0)]
    );
    assert_eq!(t.balance(payee, USD), (15, 0));
}

#[test]
fn void_and_expiry_release_the_hold_of_a_frozen_payer() {
    let (mut t, payer, payee, first) = authorized();
    let second = t.pay(authorize(payer, 2, payee, USD, 50, t.now + HOUR));
    t.apply(freeze(payer));
    // Releasing a hold is not money entering or leaving the account.
    assert_eq!(
        t.apply(void(payer, 3, first))[0],
        Event::Voided { payment: first, payer, payee, asset: USD, released: amount(40) }
    );
    let events = t.tick_at(t.now + HOUR);
    assert_eq!(
        events,
        [
            Event::AuthorizationExpired { payment: second, payer, payee, asset: USD, released: amount(50) },
            bc(payer, USD, 100, 0)
        ]
    );
}

// ---------------------------------------------------------------------------------
// Tick and authorization expiry.
// ---------------------------------------------------------------------------------

#[test]
fn tick_alone_does_nothing() {
    let mut t = Bench::new();
    t.funded(USD, 100);
    let before = t.engine.state_hash();
    assert_eq!(t.tick_at(t.now + HOUR), NOTHING);
    assert_ne!(t.engine.state_hash(), before, "time and sequence are part of the state");
    assert_eq!(t.engine.now(), Timestamp::from_nanos(START + HOUR));
}

#[test]
fn tick_expires_an_authorization_at_its_expiry_not_before() {
    let (mut t, payer, payee, payment) = authorized();
    let expires_at = t.now + HOUR;
    assert_eq!(t.tick_at(expires_at - 1), NOTHING);
    assert_eq!(t.balance(payer, USD), (60, 40));
    let events = t.tick_at(expires_at);
    assert_eq!(
        events,
        [
            Event::AuthorizationExpired { payment, payer, payee, asset: USD, released: amount(40) },
            bc(payer, USD, 100, 0)
        ]
    );
    assert_eq!(t.tick_at(expires_at + HOUR), NOTHING);
}

#[test]
fn expiry_runs_before_the_command_that_reaches_it() {
    let mut t = Bench::new();
    let (payer, payee) = (t.funded(USD, 100), t.open());
    let expires_at = t.now + HOUR;
    let held = t.pay(authorize(payer, 1, payee, USD, 100, expires_at));
    // The transfer can only succeed with the funds the expiry releases.
    let events = t.apply_at(expires_at, transfer(payer, 2, payee, USD, 100));
    let transferred =
        Event::Transferred { payment: PaymentId::new(2), from: payer, to: payee, asset: USD, amount: amount(100) };
    let expired = Event::AuthorizationExpired { payment: held, payer, payee, asset: USD, released: amount(100) };
    assert_eq!(events, [expired, transferred, bc(payer, USD, 0, 0), bc(payee, USD, 100, 0)]);
}

#[test]
fn capture_at_the_expiry_instant_is_too_late() {
    let (mut t, payer, payee, payment) = authorized();
    let events = t.apply_at(t.now + HOUR, capture(payee, 2, payment, USD, 40, false));
    let expired = Event::AuthorizationExpired { payment, payer, payee, asset: USD, released: amount(40) };
    let refused = rejected(CommandKind::Capture, RejectReason::AuthorizationExpired);
    assert_eq!(events, [expired, refused, bc(payer, USD, 100, 0)]);
    assert_eq!(t.balance(payee, USD), (0, 0));
}

#[test]
fn authorizations_expire_soonest_first_then_by_payment_id() {
    let mut t = Bench::new();
    let (payer, payee) = (t.funded(USD, 100), t.open());
    let now = t.now;
    let late = t.pay(authorize(payer, 1, payee, USD, 10, now + 2 * HOUR));
    let early = t.pay(authorize(payer, 2, payee, USD, 20, now + HOUR));
    let tied = t.pay(authorize(payer, 3, payee, USD, 30, now + HOUR));
    let events = t.tick_at(now + 3 * HOUR);
    let expired = |payment, released| Event::AuthorizationExpired {
        payment,
        payer,
        payee,
        asset: USD,
        released: amount(released),
    };
    assert_eq!(events, [expired(early, 20), expired(tied, 30), expired(late, 10), bc(payer, USD, 100, 0)]);
}

#[test]
fn expiry_after_a_partial_capture_releases_only_the_rest() {
    let (mut t, payer, payee, payment) = authorized();
    t.accepts(capture(payee, 2, payment, USD, 15, false));
    let events = t.tick_at(t.now + HOUR);
    assert_eq!(
        events,
        [
            Event::AuthorizationExpired { payment, payer, payee, asset: USD, released: amount(25) },
            bc(payer, USD, 85, 0)
        ]
    );
    // What was captured stays refundable.
    t.accepts(refund(payee, 3, payment, USD, 15));
    assert_eq!(t.balance(payer, USD), (100, 0));
}

#[test]
fn closed_authorizations_do_not_expire_later() {
    let (mut t, payer, payee, voided) = authorized();
    let captured = t.pay(authorize(payer, 2, payee, USD, 60, t.now + HOUR));
    t.accepts(void(payee, 3, voided));
    t.accepts(capture(payee, 4, captured, USD, 60, false));
    assert_eq!(t.tick_at(t.now + 2 * HOUR), NOTHING);
}

// ---------------------------------------------------------------------------------
// Split payments.
// ---------------------------------------------------------------------------------

#[test]
fn split_payment_pays_every_leg() {
    let mut t = Bench::new();
    let (payer, b, c) = (t.funded(USD, 100), t.open(), t.open());
    let events = t.apply(split(payer, 1, USD, &[(b, 30), (c, 20)]));
    let (first, second) = (PaymentId::new(1), PaymentId::new(2));
    let leg = |payment, to, minor| Event::Transferred { payment, from: payer, to, asset: USD, amount: amount(minor) };
    let paid = Event::SplitPaid { first_payment: first, payer, asset: USD, total: amount(50), legs: 2 };
    let balances = [bc(payer, USD, 50, 0), bc(b, USD, 30, 0), bc(c, USD, 20, 0)];
    assert_eq!(events[..3], [leg(first, b, 30), leg(second, c, 20), paid]);
    assert_eq!(events[3..], balances);
    t.replays(split(payer, 1, USD, &[(b, 30), (c, 20)]), accepted(first));
}

#[test]
fn split_payment_takes_one_to_split_legs_max_legs() {
    let mut t = Bench::new();
    let payer = t.funded(USD, 1_000);
    let payees: Vec<AccountId> = (0..=SPLIT_LEGS_MAX).map(|_| t.open()).collect();
    let legs: Vec<(AccountId, u64)> = payees.iter().map(|&payee| (payee, 1)).collect();
    t.rejects(split(payer, 1, USD, &[]), RejectReason::TooManyLegs);
    t.rejects(split(payer, 2, USD, &legs), RejectReason::TooManyLegs);
    t.accepts(split(payer, 3, USD, &legs[..1]));
    let events = t.accepts(split(payer, 4, USD, &legs[..SPLIT_LEGS_MAX]));
    let paid = Event::SplitPaid {
        first_payment: PaymentId::new(2),
        payer,
        asset: USD,
        total: amount(SPLIT_LEGS_MAX as u64),
        legs: SPLIT_LEGS_MAX as u8,
    };
    assert_eq!(events[SPLIT_LEGS_MAX], paid);
}

#[test]
fn split_payment_is_all_legs_or_none() {
    let mut t = Bench::new();
    let (payer, b, c, frozen) = (t.funded(USD, 100), t.open(), t.open(), t.open());
    t.apply(freeze(frozen));
    // The refusal of a later leg leaves the earlier ones unpaid.
    t.rejects(split(payer, 1, USD, &[(b, 10), (c, 10), (frozen, 10)]), RejectReason::AccountFrozen);
    t.rejects(split(payer, 2, USD, &[(b, 10), (c, 10), (NOBODY, 10)]), RejectReason::UnknownAccount);
    // Each leg fits the balance; together they do not.
    t.rejects(split(payer, 3, USD, &[(b, 60), (c, 41)]), RejectReason::InsufficientFunds);
    t.rejects(split(payer, 4, USD, &[(b, 10), (c, 0)]), RejectReason::InvalidAmount);
    t.rejects(split(payer, 5, USD, &[(b, 10), (payer, 10)]), RejectReason::SameAccount);
    t.rejects(split(payer, 6, USD, &[(b, 10), (c, 10), (b, 10)]), RejectReason::DuplicatePayee);
}

#[test]
fn split_payment_total_past_the_amount_maximum_is_insufficient_funds() {
    let mut t = Bench::new();
    let (payer, b, c) = (t.funded(USD, AMOUNT_MAX), t.open(), t.open());
    // No balance can cover a total that does not fit an amount.
    t.rejects(split(payer, 1, USD, &[(b, AMOUNT_MAX), (c, 1)]), RejectReason::InsufficientFunds);
    t.accepts(split(payer, 2, USD, &[(b, AMOUNT_MAX - 1), (c, 1)]));
}

// ---------------------------------------------------------------------------------
// Refunds.
// ---------------------------------------------------------------------------------

#[test]
fn refund_of_a_transfer_partial_then_the_rest() {
    let mut t = Bench::new();
    let (payer, payee) = (t.funded(USD, 100), t.open());
    let payment = t.pay(transfer(payer, 1, payee, USD, 50));
    let events = t.apply(refund(payee, 2, payment, USD, 20));
    let refunded =
        Event::Refunded { payment, payer, payee, asset: USD, amount: amount(20), refunded_total: amount(20) };
    assert_eq!(events, [refunded, bc(payee, USD, 30, 0), bc(payer, USD, 70, 0)]);
    t.rejects(refund(payee, 3, payment, USD, 31), RejectReason::ExceedsRefundable);
    let events = t.apply(refund(payee, 4, payment, USD, 30));
    assert_eq!(
        events[0],
        Event::Refunded { payment, payer, payee, asset: USD, amount: amount(30), refunded_total: amount(50) }
    );
    t.rejects(refund(payee, 5, payment, USD, 1), RejectReason::ExceedsRefundable);
    assert_eq!((t.balance(payer, USD), t.balance(payee, USD)), ((100, 0), (0, 0)));
}

#[test]
fn refund_of_a_split_leg_is_bounded_by_that_leg() {
    let mut t = Bench::new();
    let (payer, b, c) = (t.funded(USD, 100), t.open(), t.open());
    t.accepts(split(payer, 1, USD, &[(b, 30), (c, 20)]));
    let second_leg = PaymentId::new(2);
    t.fund(c, USD, 100);
    t.rejects(refund(c, 2, second_leg, USD, 21), RejectReason::ExceedsRefundable);
    t.rejects(refund(b, 3, second_leg, USD, 1), RejectReason::NotParty);
    let events = t.apply(refund(c, 4, second_leg, USD, 20));
    let refunded = Event::Refunded {
        payment: second_leg,
        payer,
        payee: c,
        asset: USD,
        amount: amount(20),
        refunded_total: amount(20),
    };
    assert_eq!(events, [refunded, bc(c, USD, 100, 0), bc(payer, USD, 70, 0)]);
}

#[test]
fn refund_of_an_authorization_is_bounded_by_what_was_captured() {
    let (mut t, payer, payee, payment) = authorized();
    t.accepts(capture(payee, 2, payment, USD, 25, true));
    t.fund(payee, USD, 100);
    t.rejects(refund(payee, 3, payment, USD, 26), RejectReason::ExceedsRefundable);
    let events = t.apply(refund(payee, 4, payment, USD, 10));
    let refunded =
        Event::Refunded { payment, payer, payee, asset: USD, amount: amount(10), refunded_total: amount(10) };
    assert_eq!(events, [refunded, bc(payee, USD, 115, 0), bc(payer, USD, 85, 0)]);
    t.accepts(refund(payee, 5, payment, USD, 15));
    t.rejects(refund(payee, 6, payment, USD, 1), RejectReason::ExceedsRefundable);
}

#[test]
fn refund_of_an_open_partly_captured_authorization_is_allowed() {
    let (mut t, payer, payee, payment) = authorized();
    t.accepts(capture(payee, 2, payment, USD, 15, false));
    t.accepts(refund(payee, 3, payment, USD, 15));
    assert_eq!(t.balance(payer, USD), (75, 25));
    // The hold is untouched by the refund and can still be captured.
    t.accepts(capture(payee, 4, payment, USD, 25, false));
}

#[test]
fn refund_needs_the_funds_and_both_parties_movable() {
    let mut t = Bench::new();
    let (payer, payee, elsewhere) = (t.funded(USD, 100), t.open(), t.open());
    let payment = t.pay(transfer(payer, 1, payee, USD, 50));
    t.accepts(transfer(payee, 2, elsewhere, USD, 40));
    t.rejects(refund(payee, 3, payment, USD, 11), RejectReason::InsufficientFunds);
    t.apply(freeze(payer));
    t.rejects(refund(payee, 4, payment, USD, 10), RejectReason::AccountFrozen);
    t.apply(unfreeze(payer));
    t.apply(freeze(payee));
    t.rejects(refund(payee, 5, payment, USD, 10), RejectReason::AccountFrozen);
    t.apply(unfreeze(payee));
    t.accepts(refund(payee, 6, payment, USD, 10));
}

#[test]
fn payments_age_out_of_refunds_after_payment_retention() {
    let mut t = Bench::new();
    let (payer, payee) = (t.funded(USD, 100), t.open());
    let payment = t.pay(transfer(payer, 1, payee, USD, 50));
    let retention = PAYMENT_RETENTION.as_nanos();
    let events = t.apply_at(START + retention - 1, refund(payee, 2, payment, USD, 10));
    assert!(matches!(events[0], Event::Refunded { .. }), "{events:?}");
    t.tick_at(START + retention);
    t.rejects(refund(payee, 3, payment, USD, 10), RejectReason::UnknownPayment);
    assert_eq!(t.engine.payment_records(), 0);
}

// ---------------------------------------------------------------------------------
// Every rejection reason.
// ---------------------------------------------------------------------------------

#[test]
fn rejects_unknown_account() {
    let (mut t, payer, payee, payment) = authorized();
    // Acting for an account that does not exist: refused before the key is recorded.
    let reason = RejectReason::UnknownAccount;
    t.rejects_unrecorded(deposit(NOBODY, 1, USD, 10), reason);
    t.rejects_unrecorded(withdraw(NOBODY, 1, USD, 10), reason);
    t.rejects_unrecorded(transfer(NOBODY, 1, payee, USD, 10), reason);
    t.rejects_unrecorded(authorize(NOBODY, 1, payee, USD, 10, t.now + HOUR), reason);
    t.rejects_unrecorded(capture(NOBODY, 1, payment, USD, 10, false), reason);
    t.rejects_unrecorded(void(NOBODY, 1, payment), reason);
    t.rejects_unrecorded(split(NOBODY, 1, USD, &[(payee, 10)]), reason);
    t.rejects_unrecorded(refund(NOBODY, 1, payment, USD, 10), reason);
    // Paying an account that does not exist.
    t.rejects(transfer(payer, 11, NOBODY, USD, 10), reason);
    t.rejects(authorize(payer, 12, NOBODY, USD, 10, t.now + HOUR), reason);
    t.rejects(split(payer, 13, USD, &[(NOBODY, 10)]), reason);
}

#[test]
fn rejects_unknown_asset() {
    let mut t = Bench::new();
    let (payer, payee) = (t.funded(USD, 100), t.open());
    let reason = RejectReason::UnknownAsset;
    t.rejects(deposit(payer, 1, XAU, 10), reason);
    t.rejects(withdraw(payer, 2, XAU, 10), reason);
    t.rejects(transfer(payer, 3, payee, XAU, 10), reason);
    t.rejects(authorize(payer, 4, payee, XAU, 10, t.now + HOUR), reason);
    t.rejects(split(payer, 5, XAU, &[(payee, 10)]), reason);
    assert!(t.engine.account(payer).expect("open").balances().iter().all(|balance| balance.asset() == USD));
}

#[test]
fn rejects_unknown_payment() {
    let mut t = Bench::new();
    let payee = t.open();
    t.rejects(capture(payee, 1, NO_PAYMENT, USD, 10, false), RejectReason::UnknownPayment);
    t.rejects(void(payee, 2, NO_PAYMENT), RejectReason::UnknownPayment);
    t.rejects(refund(payee, 3, NO_PAYMENT, USD, 10), RejectReason::UnknownPayment);
}

#[test]
fn rejects_insufficient_funds() {
    let mut t = Bench::new();
    let (payer, payee) = (t.funded(USD, 100), t.open());
    let reason = RejectReason::InsufficientFunds;
    t.rejects(withdraw(payer, 1, USD, 101), reason);
    t.rejects(transfer(payer, 2, payee, USD, 101), reason);
    t.rejects(authorize(payer, 3, payee, USD, 101, t.now + HOUR), reason);
    t.rejects(split(payer, 4, USD, &[(payee, 101)]), reason);
    // Funds in one asset do not pay in another.
    t.rejects(transfer(payer, 5, payee, JPY, 1), reason);
    t.accepts(transfer(payer, 6, payee, USD, 100));
    t.rejects(transfer(payer, 7, payee, USD, 1), reason);
}

#[test]
fn rejects_money_into_or_out_of_a_frozen_account() {
    let mut t = Bench::new();
    let (payer, payee) = (t.funded(USD, 100), t.funded(USD, 100));
    let reason = RejectReason::AccountFrozen;
    t.apply(freeze(payee));
    t.rejects(deposit(payee, 1, USD, 10), reason);
    t.rejects(withdraw(payee, 2, USD, 10), reason);
    t.rejects(transfer(payer, 3, payee, USD, 10), reason);
    t.rejects(authorize(payer, 4, payee, USD, 10, t.now + HOUR), reason);
    t.rejects(split(payer, 5, USD, &[(payee, 10)]), reason);
    t.apply(unfreeze(payee));
    t.apply(freeze(payer));
    t.rejects(transfer(payer, 6, payee, USD, 10), reason);
    t.rejects(authorize(payer, 7, payee, USD, 10, t.now + HOUR), reason);
    t.rejects(split(payer, 8, USD, &[(payee, 10)]), reason);
}

#[test]
fn rejects_capture_when_either_party_is_frozen() {
    let (mut t, payer, payee, payment) = authorized();
    t.apply(freeze(payer));
    t.rejects(capture(payee, 2, payment, USD, 10, false), RejectReason::AccountFrozen);
    t.apply(unfreeze(payer));
    t.apply(freeze(payee));
    t.rejects(capture(payee, 3, payment, USD, 10, false), RejectReason::AccountFrozen);
    t.apply(unfreeze(payee));
    t.accepts(capture(payee, 4, payment, USD, 10, false));
}

#[test]
fn rejects_asset_mismatch() {
    let (mut t, _, payee, payment) = authorized();
    t.rejects(capture(payee, 2, payment, JPY, 10, false), RejectReason::AssetMismatch);
    t.accepts(capture(payee, 3, payment, USD, 10, false));
    t.rejects(refund(payee, 4, payment, JPY, 10), RejectReason::AssetMismatch);
    // An asset the configuration does not know cannot match either.
    t.rejects(refund(payee, 5, payment, XAU, 10), RejectReason::AssetMismatch);
}

#[test]
fn rejects_zero_amounts() {
    let (mut t, payer, payee, payment) = authorized();
    t.accepts(capture(payee, 2, payment, USD, 10, false));
    let reason = RejectReason::InvalidAmount;
    t.rejects(deposit(payer, 11, USD, 0), reason);
    t.rejects(withdraw(payer, 12, USD, 0), reason);
    t.rejects(transfer(payer, 13, payee, USD, 0), reason);
    t.rejects(authorize(payer, 14, payee, USD, 0, t.now + HOUR), reason);
    t.rejects(capture(payee, 15, payment, USD, 0, false), reason);
    t.rejects(capture(payee, 16, payment, USD, 0, true), reason);
    t.rejects(split(payer, 17, USD, &[(payee, 0)]), reason);
    t.rejects(refund(payee, 18, payment, USD, 0), reason);
}

#[test]
fn rejects_capture_and_void_of_an_expired_authorization() {
    let (mut t, payer, payee, payment) = authorized();
    t.tick_at(t.now + HOUR);
    t.rejects(capture(payee, 2, payment, USD, 10, false), RejectReason::AuthorizationExpired);
    t.rejects(void(payer, 3, payment), RejectReason::AuthorizationExpired);
    t.rejects(void(payee, 4, payment), RejectReason::AuthorizationExpired);
}

#[test]
fn rejects_capture_above_what_the_authorization_still_holds() {
    let (mut t, _, payee, payment) = authorized();
    t.rejects(capture(payee, 2, payment, USD, 41, false), RejectReason::ExceedsAuthorization);
    t.rejects(capture(payee, 3, payment, USD, 41, true), RejectReason::ExceedsAuthorization);
    t.accepts(capture(payee, 4, payment, USD, 30, false));
    t.rejects(capture(payee, 5, payment, USD, 11, false), RejectReason::ExceedsAuthorization);
    t.accepts(capture(payee, 6, payment, USD, 10, false));
}

#[test]
fn rejects_refund_of_an_authorization_with_nothing_captured() {
    let mut t = Bench::new();
    let (payer, payee) = (t.funded(USD, 100), t.funded(USD, 100));
    let now = t.now;
    let open = t.pay(authorize(payer, 1, payee, USD, 10, now + HOUR));
    let voided = t.pay(authorize(payer, 2, payee, USD, 10, now + HOUR));
    let expired = t.pay(authorize(payer, 3, payee, USD, 10, now + 1));
    t.accepts(void(payer, 4, voided));
    t.tick_at(now + 1);
    t.rejects(refund(payee, 5, open, USD, 1), RejectReason::NotRefundable);
    t.rejects(refund(payee, 6, voided, USD, 1), RejectReason::NotRefundable);
    t.rejects(refund(payee, 7, expired, USD, 1), RejectReason::NotRefundable);
}

#[test]
fn rejects_capture_and_void_of_a_settled_payment() {
    let mut t = Bench::new();
    let (payer, payee) = (t.funded(USD, 100), t.open());
    let transferred = t.pay(transfer(payer, 1, payee, USD, 10));
    t.accepts(split(payer, 2, USD, &[(payee, 10)]));
    let leg = PaymentId::new(2);
    let reason = RejectReason::NotAnAuthorization;
    t.rejects(capture(payee, 3, transferred, USD, 10, false), reason);
    t.rejects(void(payer, 4, transferred), reason);
    t.rejects(capture(payee, 5, leg, USD, 10, true), reason);
    t.rejects(void(payee, 6, leg), reason);
}

#[test]
fn rejects_a_party_acting_in_a_role_it_does_not_have() {
    let (mut t, payer, payee, payment) = authorized();
    let stranger = t.funded(USD, 100);
    let reason = RejectReason::NotParty;
    // Only the payee captures.
    t.rejects(capture(payer, 2, payment, USD, 10, false), reason);
    t.rejects(capture(stranger, 3, payment, USD, 10, false), reason);
    t.rejects(void(stranger, 4, payment), reason);
    t.accepts(capture(payee, 5, payment, USD, 10, false));
    // Only the payee refunds.
    t.rejects(refund(payer, 6, payment, USD, 10), reason);
    t.rejects(refund(stranger, 7, payment, USD, 10), reason);
}

#[test]
fn rejects_paying_oneself() {
    let mut t = Bench::new();
    let payer = t.funded(USD, 100);
    let reason = RejectReason::SameAccount;
    t.rejects(transfer(payer, 1, payer, USD, 10), reason);
    t.rejects(authorize(payer, 2, payer, USD, 10, t.now + HOUR), reason);
    t.rejects(split(payer, 3, USD, &[(payer, 10)]), reason);
}

#[test]
fn rejects_duplicate_payee() {
    let mut t = Bench::new();
    let (payer, payee) = (t.funded(USD, 100), t.open());
    t.rejects(split(payer, 1, USD, &[(payee, 10), (payee, 10)]), RejectReason::DuplicatePayee);
}

#[test]
fn rejects_expiry_not_in_the_future_or_too_far() {
    let mut t = Bench::new();
    let (payer, payee) = (t.funded(USD, 100), t.open());
    let (now, longest) = (t.now, AUTHORIZATION_DURATION_MAX.as_nanos());
    let reason = RejectReason::InvalidExpiry;
    t.rejects(authorize(payer, 1, payee, USD, 10, now - 1), reason);
    t.rejects(authorize(payer, 2, payee, USD, 10, now), reason);
    t.rejects(authorize(payer, 3, payee, USD, 10, now + longest + 1), reason);
    t.pay(authorize(payer, 4, payee, USD, 10, now + 1));
    t.pay(authorize(payer, 5, payee, USD, 10, now + longest));
}

// ---------------------------------------------------------------------------------
// Idempotency.
// ---------------------------------------------------------------------------------

#[test]
fn every_keyed_command_replays_its_original_outcome() {
    let mut t = Bench::new();
    let (payer, payee, other) = (t.funded(USD, 1_000), t.open(), t.open());
    let expires_at = t.now + HOUR;
    let (transferred, held, split_first) = (PaymentId::new(1), PaymentId::new(2), PaymentId::new(3));
    let cases = [
        (deposit(payer, 1, USD, 100), Outcome::Accepted { payment: None }),
        (withdraw(payer, 2, USD, 100), Outcome::Accepted { payment: None }),
        (transfer(payer, 3, payee, USD, 100), accepted(transferred)),
        (authorize(payer, 4, payee, USD, 100, expires_at), accepted(held)),
        (capture(payee, 5, held, USD, 10, false), accepted(held)),
        (void(payer, 6, held), accepted(held)),
        (split(payer, 7, USD, &[(payee, 10), (other, 20)]), accepted(split_first)),
        (refund(payee, 8, transferred, USD, 50), Outcome::Accepted { payment: None }),
    ];
    for (command, original) in cases {
        t.accepts(command.clone());
        t.replays(command, original);
    }
}

#[test]
fn replay_returns_the_original_outcome_after_the_state_moved_on() {
    let mut t = Bench::new();
    let (payer, payee) = (t.funded(USD, 100), t.open());
    let payment = t.pay(transfer(payer, 1, payee, USD, 100));
    // The payer could not pay again, but a retry is not a second payment.
    t.replays(transfer(payer, 1, payee, USD, 100), accepted(payment));
    assert_eq!(t.balance(payee, USD), (100, 0));
}

#[test]
fn a_rejection_stays_the_answer_for_its_key_after_funds_arrive() {
    let mut t = Bench::new();
    let (payer, payee) = (t.open(), t.open());
    t.rejects(transfer(payer, 1, payee, USD, 50), RejectReason::InsufficientFunds);
    t.fund(payer, USD, 100);
    // TigerBeetle's rule: an outcome, once given, is the outcome for that key.
    t.replays(transfer(payer, 1, payee, USD, 50), Outcome::Rejected(RejectReason::InsufficientFunds));
    t.accepts(transfer(payer, 2, payee, USD, 50));
}

#[test]
fn reusing_a_key_with_other_content_conflicts() {
    let (mut t, payer, payee, payment) = authorized();
    let conflict = RejectReason::IdempotencyConflict;
    t.accepts(deposit(payer, 2, USD, 10));
    t.rejects_unrecorded(deposit(payer, 2, USD, 11), conflict);
    t.rejects_unrecorded(deposit(payer, 2, JPY, 10), conflict);
    t.rejects_unrecorded(deposit_ref(payer, 2, USD, 10, "BANK-2"), conflict);
    // Keys belong to the account, not to a kind of command.
    t.rejects_unrecorded(withdraw(payer, 2, USD, 10), conflict);
    t.accepts(capture(payee, 3, payment, USD, 10, false));
    t.rejects_unrecorded(capture(payee, 3, payment, USD, 10, true), conflict);
    // The conflicts did not overwrite what the keys first meant.
    t.replays(deposit(payer, 2, USD, 10), Outcome::Accepted { payment: None });
    t.replays(capture(payee, 3, payment, USD, 10, false), accepted(payment));
}

#[test]
fn reusing_the_key_of_a_rejection_with_other_content_conflicts() {
    let mut t = Bench::new();
    let (payer, payee) = (t.open(), t.open());
    t.rejects(transfer(payer, 1, payee, USD, 50), RejectReason::InsufficientFunds);
    t.fund(payer, USD, 100);
    t.rejects_unrecorded(transfer(payer, 1, payee, USD, 40), RejectReason::IdempotencyConflict);
}

/// Bug: the fingerprint of a split payment hashes only its first `SPLIT_LEGS_MAX`
/// legs (`command/payment.rs`, `keyed!(SplitPayment, ..)`), so reusing a key for an
/// over-long split that differs after them replays instead of conflicting.
#[test]
fn split_fingerprint_covers_every_leg() {
    let mut t = Bench::new();
    let payer = t.funded(USD, 1_000);
    let mut legs: Vec<(AccountId, u64)> = (0..=SPLIT_LEGS_MAX).map(|_| (t.open(), 1)).collect();
    t.rejects(split(payer, 1, USD, &legs), RejectReason::TooManyLegs);
    legs[SPLIT_LEGS_MAX].1 = 2;
    t.rejects_unrecorded(split(payer, 1, USD, &legs), RejectReason::IdempotencyConflict);
}

#[test]
fn keys_are_scoped_to_the_acting_account() {
    let mut t = Bench::new();
    let (a, b) = (t.funded(USD, 100), t.funded(USD, 100));
    let events = t.accepts(transfer(a, 7, b, USD, 10));
    assert!(matches!(events[0], Event::Transferred { .. }));
    let events = t.accepts(transfer(b, 7, a, USD, 10));
    assert!(matches!(events[0], Event::Transferred { .. }));
    t.accepts(deposit(a, 8, USD, 5));
    t.accepts(deposit(b, 8, USD, 5));
    assert_eq!((t.balance(a, USD), t.balance(b, USD)), ((105, 0), (105, 0)));
}

#[test]
fn a_key_refused_for_an_unknown_account_is_not_remembered() {
    let mut t = Bench::new();
    let next = AccountId::new(1);
    t.open();
    t.rejects_unrecorded(deposit(next, 1, USD, 10), RejectReason::UnknownAccount);
    assert_eq!(t.open(), next);
    assert_eq!(t.accepts(deposit(next, 1, USD, 10))[1..], [bc(next, USD, 10, 0)]);
}

#[test]
fn a_key_is_forgotten_after_idempotency_retention() {
    let mut t = Bench::new();
    let account = t.open();
    let retention = IDEMPOTENCY_RETENTION.as_nanos();
    t.apply_at(START + HOUR, deposit(account, 1, USD, 10));
    t.apply_at(START + HOUR + retention - 1, Command::Tick);
    t.replays(deposit(account, 1, USD, 10), Outcome::Accepted { payment: None });
    t.tick_at(START + HOUR + retention);
    assert_eq!(t.accepts(deposit(account, 1, USD, 10))[1..], [bc(account, USD, 20, 0)]);
    // And is remembered anew from there.
    t.replays(deposit(account, 1, USD, 10), Outcome::Accepted { payment: None });
}

// ---------------------------------------------------------------------------------
// The sequencer's contract.
// ---------------------------------------------------------------------------------

#[test]
fn sequence_may_skip_and_time_may_stand_still() {
    let mut engine = Engine::new(&Config::from_toml_str(CONFIG).expect("valid"));
    let mut events = Vec::new();
    engine.apply(&stamped(1, START), &mut events);
    engine.apply(&stamped(5, START), &mut events);
    assert_eq!(engine.last_seq(), Some(Seq::new(5)));
    assert!(events.is_empty());
    engine.check_invariants();
}

#[test]
#[should_panic(expected = "sequence numbers only grow")]
fn a_repeated_sequence_number_panics() {
    let mut engine = Engine::new(&Config::from_toml_str(CONFIG).expect("valid"));
    engine.apply(&stamped(5, START), &mut Vec::new());
    engine.apply(&stamped(5, START + 1), &mut Vec::new());
}

#[test]
#[should_panic(expected = "sequence numbers only grow")]
fn a_decreasing_sequence_number_panics() {
    let mut engine = Engine::new(&Config::from_toml_str(CONFIG).expect("valid"));
    engine.apply(&stamped(5, START), &mut Vec::new());
    engine.apply(&stamped(4, START + 1), &mut Vec::new());
}

#[test]
#[should_panic(expected = "command time never goes backwards")]
fn time_going_backwards_panics() {
    let mut engine = Engine::new(&Config::from_toml_str(CONFIG).expect("valid"));
    engine.apply(&stamped(1, START), &mut Vec::new());
    engine.apply(&stamped(2, START - 1), &mut Vec::new());
}

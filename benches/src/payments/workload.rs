//! The seeded payments workload (described in full at the top of `payments.rs`): the
//! setup commands that open and fund every account, and the generator of the measured
//! stream. The generator keeps a shadow ledger (available balance per account and
//! asset) so that it knows, before the engine runs, which commands succeed, which
//! payment id each authorization gets, and how many of each kind are accepted.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use bourse_core::command::{
    ActivateRules, Authorize, Capture, Command, CommandKind, Deposit, OpenAccount, PublishRules, SequencedCommand,
    Transfer, Void,
};
use bourse_core::ids::{
    AccountId, AssetId, IdempotencyKey, KycTier, OwnerId, PaymentId, Reference, RuleVersion, Seq, Timestamp,
};
use bourse_core::limits::NANOS_PER_SECOND;
use bourse_core::money::Amount;
use bourse_core::rules::RuleSet;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::outcomes::{self, OutcomesByKind};

/// The engine configuration: two assets, both with two decimal places.
pub(crate) const CONFIG_TOML: &str = "[[assets]]\ncode = \"USD\"\nscale = 2\n\n[[assets]]\ncode = \"EUR\"\nscale = 2\n";
/// USD and EUR, as `CONFIG_TOML` numbers them.
const ASSETS: [AssetId; 2] = [AssetId::new(0), AssetId::new(1)];
/// Setup commands per account: one open, one deposit per asset.
pub(crate) const SETUP_COMMANDS_PER_ACCOUNT: u64 = 1 + ASSETS.len() as u64;

/// The rule set of `--rules`, in effect for every account before the stream: a limit
/// of each kind a payment is checked against except `payments_per_minute` (a hot
/// account pays thousands of times in the stream's second of command time), each out
/// of the stream's reach (a payment is at most 100.00; no account can send 1e8 in a
/// day), a blocked list naming an account that is never opened, and a few accounts
/// with limits of their own. So every payment is asked every rule and none refuses
/// or holds it: the predictions stand as they are.
pub(crate) const RULES_TOML: &str = r#"
description = "bourse-bench payments --rules"
blocked_counterparties = [67108863]

[tiers.0]
max_single_payment = { USD = "1000.00", EUR = "1000.00" }
daily_outflow = { USD = "100000000.00", EUR = "100000000.00" }
review_threshold = { USD = "500.00", EUR = "500.00" }

[accounts.1]
max_single_payment = { USD = "2000.00" }

[accounts.2]
review_threshold = { EUR = "900.00" }

[accounts.3]
blocked_counterparties = [67108862]
"#;
/// Commands that put `RULES_TOML` in effect after setup: publish, activate.
const RULES_COMMANDS: u64 = 2;

/// Deposited into every account in each asset: 1,000,000.00.
const DEPOSIT_MINOR_UNITS: u64 = 100_000_000;
/// Largest payment: 100.00 (the smallest is 0.01).
const PAYMENT_MINOR_UNITS_MAX: u64 = 10_000;
/// Command time of the first setup command: 2026-01-01T00:00:00Z.
const START_NS: u64 = 1_767_225_600 * NANOS_PER_SECOND;
/// Command time between consecutive commands: 1 µs.
const COMMAND_SPACING_NS: u64 = 1_000;
/// Authorizations expire an hour of command time after they are made: never, within
/// a run (a million commands span one second).
const AUTHORIZATION_TTL_NS: u64 = 3_600 * NANOS_PER_SECOND;
/// An authorization is captured or voided 1 to this many commands after it is made.
const COMPLETION_DELAY_COMMANDS_MAX: usize = 2_000;
/// Of the completions: below the first, a full capture; below the second, a partial
/// last capture (the rest is released); the remainder, a void.
const COMPLETION_PERCENT_FULL_CAPTURE: u32 = 80;
const COMPLETION_PERCENT_PARTIAL_CAPTURE: u32 = 90;

/// What the workload looks like.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Shape {
    pub(crate) accounts: u32,
    pub(crate) commands: usize,
    pub(crate) hot_accounts: u32,
    pub(crate) hot_percent: u32,
    pub(crate) two_phase_percent: u32,
    pub(crate) seed: u64,
    /// Whether `RULES_TOML` is in effect (`--rules`).
    pub(crate) rules: bool,
}

/// The measured command stream, generated before any timing, and the outcomes the
/// shadow ledger predicts for it.
#[derive(Clone, Debug)]
pub(crate) struct Workload {
    pub(crate) shape: Shape,
    pub(crate) commands: Vec<SequencedCommand>,
    pub(crate) expected: OutcomesByKind,
}

impl Workload {
    pub(crate) fn generate(shape: Shape) -> Self {
        let mut generator = Generator::new(shape);
        let first_index = setup_count(shape);
        let commands = (0..shape.commands)
            .map(|position| {
                let index = first_index + position as u64;
                stamp(index, generator.next(position, time_of(index)))
            })
            .collect();
        Self { shape, commands, expected: generator.expected }
    }
}

/// The commands that open `accounts` accounts, then deposit 1,000,000.00 of each asset
/// into each; made on demand, so that millions of them are never held at once.
pub(crate) fn setup_commands(accounts: u32) -> impl Iterator<Item = SequencedCommand> {
    let accounts = u64::from(accounts);
    (0..SETUP_COMMANDS_PER_ACCOUNT * accounts).map(move |index| stamp(index, setup_command(index, accounts)))
}

/// With `shape.rules`, the commands that put `RULES_TOML` in effect for everyone,
/// numbered right after `setup_commands`; else none.
pub(crate) fn rules_commands(shape: Shape) -> impl Iterator<Item = SequencedCommand> {
    let first = SETUP_COMMANDS_PER_ACCOUNT * u64::from(shape.accounts);
    let rules = RuleSet::from_toml_str(RULES_TOML).expect("the benchmark's rule set is valid");
    let commands = [
        Command::PublishRules(PublishRules { rules }),
        Command::ActivateRules(ActivateRules { version: RuleVersion::new(1), share_bps: 10_000 }),
    ];
    let count = if shape.rules { RULES_COMMANDS as usize } else { 0 };
    commands.into_iter().take(count).zip(first..).map(|(command, index)| stamp(index, command))
}

/// Commands applied before the stream: `setup_commands`, then `rules_commands`.
fn setup_count(shape: Shape) -> u64 {
    SETUP_COMMANDS_PER_ACCOUNT * u64::from(shape.accounts) + if shape.rules { RULES_COMMANDS } else { 0 }
}

fn setup_command(index: u64, accounts: u64) -> Command {
    if index < accounts {
        let kyc_tier = KycTier::new(1).expect("tier 1 exists");
        return Command::OpenAccount(OpenAccount { owner: OwnerId::new(index + 1), kyc_tier });
    }
    let deposit = index - accounts;
    let per_account = ASSETS.len() as u64;
    Command::Deposit(Deposit {
        account: AccountId::new((deposit / per_account) as u32),
        // Below 2^64: disjoint from the stream's keys, which have bit 127 set.
        key: IdempotencyKey::new(u128::from(deposit)),
        asset: ASSETS[(deposit % per_account) as usize],
        amount: minor_units(DEPOSIT_MINOR_UNITS),
        reference: Reference::new("BENCH-SETUP").expect("short enough"),
    })
}

/// The `index`-th command of a run (setup first), with its sequence number and time.
fn stamp(index: u64, command: Command) -> SequencedCommand {
    SequencedCommand { seq: Seq::new(index + 1), timestamp: time_of(index), command }
}

fn time_of(index: u64) -> Timestamp {
    Timestamp::from_nanos(START_NS + index * COMMAND_SPACING_NS)
}

fn minor_units(value: u64) -> Amount {
    Amount::new(value).expect("workload amounts are far below AMOUNT_MAX")
}

/// An authorization the shadow ledger expects the engine to accept, waiting for its
/// capture or void. Ordered by when that is due.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Pending {
    due: usize,
    payment: PaymentId,
    payer: AccountId,
    payee: AccountId,
    asset: AssetId,
    amount: u64,
}

struct Generator {
    shape: Shape,
    rng: ChaCha8Rng,
    hot: Vec<AccountId>,
    /// The shadow ledger: available balance per account, per asset.
    available: Vec<[u64; ASSETS.len()]>,
    /// The id the engine will give the next accepted transfer or authorization.
    next_payment: u64,
    keys_issued: u64,
    pending: BinaryHeap<Reverse<Pending>>,
    expected: OutcomesByKind,
}

impl Generator {
    fn new(shape: Shape) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(shape.seed);
        let hot_count = shape.hot_accounts.min(shape.accounts) as usize;
        let hot = rand::seq::index::sample(&mut rng, shape.accounts as usize, hot_count)
            .into_iter()
            .map(|index| AccountId::new(index as u32))
            .collect();
        Self {
            shape,
            rng,
            hot,
            available: vec![[DEPOSIT_MINOR_UNITS; ASSETS.len()]; shape.accounts as usize],
            // The engine numbers payments from 1, and setup creates none.
            next_payment: 1,
            keys_issued: 0,
            pending: BinaryHeap::new(),
            expected: OutcomesByKind::new(),
        }
    }

    /// The command at `position` of the stream: a due completion if there is one,
    /// else a new payment (two-phase with probability `two_phase_percent`).
    fn next(&mut self, position: usize, now: Timestamp) -> Command {
        if self.pending.peek().is_some_and(|Reverse(pending)| pending.due <= position) {
            let Reverse(pending) = self.pending.pop().expect("peeked just above");
            return self.complete(pending);
        }
        let (payer, payee) = self.parties();
        let asset = ASSETS[self.rng.random_range(0..ASSETS.len())];
        let amount = self.rng.random_range(1..=PAYMENT_MINOR_UNITS_MAX);
        if self.rng.random_range(0..100) < self.shape.two_phase_percent {
            self.authorize(position, now, (payer, payee), asset, amount)
        } else {
            self.transfer((payer, payee), asset, amount)
        }
    }

    /// Payer and payee, distinct; with probability `hot_percent`, one of them (payer
    /// or payee, evenly) is drawn from the hot set.
    fn parties(&mut self) -> (AccountId, AccountId) {
        if self.rng.random_range(0..100) < self.shape.hot_percent {
            let hot = self.hot[self.rng.random_range(0..self.hot.len())];
            let other = self.other_than(hot);
            if self.rng.random_bool(0.5) { (hot, other) } else { (other, hot) }
        } else {
            let payer = AccountId::new(self.rng.random_range(0..self.shape.accounts));
            (payer, self.other_than(payer))
        }
    }

    /// An account drawn uniformly from all but `account`.
    fn other_than(&mut self, account: AccountId) -> AccountId {
        let draw = self.rng.random_range(0..self.shape.accounts - 1);
        AccountId::new(if draw >= account.get() { draw + 1 } else { draw })
    }

    fn transfer(&mut self, (by, to): (AccountId, AccountId), asset: AssetId, amount: u64) -> Command {
        let funded = self.debit(by, asset, amount);
        if funded {
            self.credit(to, asset, amount);
            self.next_payment += 1;
        }
        outcomes::count(&mut self.expected, CommandKind::Transfer, funded);
        Command::Transfer(Transfer { by, key: self.key(), to, asset, amount: minor_units(amount) })
    }

    fn authorize(
        &mut self,
        position: usize,
        now: Timestamp,
        (payer, payee): (AccountId, AccountId),
        asset: AssetId,
        amount: u64,
    ) -> Command {
        let funded = self.debit(payer, asset, amount);
        if funded {
            let payment = PaymentId::new(self.next_payment);
            self.next_payment += 1;
            let due = position + self.rng.random_range(1..=COMPLETION_DELAY_COMMANDS_MAX);
            self.pending.push(Reverse(Pending { due, payment, payer, payee, asset, amount }));
        }
        outcomes::count(&mut self.expected, CommandKind::Authorize, funded);
        Command::Authorize(Authorize {
            by: payer,
            key: self.key(),
            payee,
            asset,
            amount: minor_units(amount),
            expires_at: now.saturating_add(Timestamp::from_nanos(AUTHORIZATION_TTL_NS)),
        })
    }

    /// Captures (fully or partly) or voids an authorization; always accepted.
    fn complete(&mut self, pending: Pending) -> Command {
        let Pending { payment, payer, payee, asset, amount, .. } = pending;
        let roll = self.rng.random_range(0..100);
        if roll >= COMPLETION_PERCENT_PARTIAL_CAPTURE {
            self.credit(payer, asset, amount);
            let by = if self.rng.random_bool(0.5) { payer } else { payee };
            outcomes::count(&mut self.expected, CommandKind::Void, true);
            return Command::Void(Void { by, key: self.key(), payment });
        }
        let captured = if roll < COMPLETION_PERCENT_FULL_CAPTURE || amount == 1 {
            amount
        } else {
            self.rng.random_range(1..amount)
        };
        self.credit(payee, asset, captured);
        self.credit(payer, asset, amount - captured);
        outcomes::count(&mut self.expected, CommandKind::Capture, true);
        Command::Capture(Capture {
            by: payee,
            key: self.key(),
            payment,
            asset,
            amount: minor_units(captured),
            last: true,
        })
    }

    fn debit(&mut self, account: AccountId, asset: AssetId, amount: u64) -> bool {
        let balance = &mut self.available[account.get() as usize][usize::from(asset.get())];
        let funded = *balance >= amount;
        if funded {
            *balance -= amount;
        }
        funded
    }

    fn credit(&mut self, account: AccountId, asset: AssetId, amount: u64) {
        self.available[account.get() as usize][usize::from(asset.get())] += amount;
    }

    /// A fresh key: bit 127 set, 63 random bits, then a counter, so keys look like
    /// random UUIDs yet never repeat.
    fn key(&mut self) -> IdempotencyKey {
        self.keys_issued += 1;
        let random = self.rng.random::<u64>() | (1 << 63);
        IdempotencyKey::new((u128::from(random) << 64) | u128::from(self.keys_issued))
    }
}

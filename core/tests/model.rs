//! Model-based tests of the ledger engine (STYLE §12).
//!
//! `RefLedger` is a deliberately naive reference ledger (`Vec`, `BTreeMap`, full
//! scans), written from the specification of the commands rather than from the
//! engine, so that the two can disagree: rejection reasons in a fixed order per
//! command, expiry of authorizations before anything else, idempotency per
//! (principal, key) for `limits::IDEMPOTENCY_RETENTION`, payment records kept for
//! `limits::PAYMENT_RETENTION`, and the payment an outcome names as `Outcome`
//! documents it. Random command streams over a small world
//! (three assets, up to eight accounts, small amounts, large time jumps, bad and
//! retried commands) drive the engine and the reference side by side, and after
//! every step the tests check:
//!
//! - the engine's own `check_invariants()`;
//! - conservation per asset, against deposits minus withdrawals summed from the
//!   engine's own events;
//! - every hold equals what the account's open authorizations still reserve;
//! - a replayed (or unrecorded) keyed command changes nothing but command time;
//! - the engine and the reference agree on the outcome, the events and every
//!   balance, account flag and table size.
//!
//! Around it: determinism (the same stream gives the same events and the same
//! `state_hash()` on fresh engines; different states hash differently), a check that
//! the random streams reach every outcome worth comparing, the reference against a
//! stream worked out by hand, and regression tests for engine bugs the comparison
//! found.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use bourse_core::command::{
    Authorize, Capture, Command, Deposit, FreezeAccount, OpenAccount, Refund, SequencedCommand, SetKycTier, SplitLeg,
    SplitPayment, Transfer, UnfreezeAccount, Void, Withdraw,
};
use bourse_core::config::Config;
use bourse_core::event::{Event, Outcome, RejectReason};
use bourse_core::ids::{AccountId, AssetId, IdempotencyKey, KycTier, OwnerId, PaymentId, Reference, Seq, Timestamp};
use bourse_core::limits::{
    AMOUNT_MAX, AUTHORIZATION_DURATION_MAX, IDEMPOTENCY_RETENTION, KYC_TIER_MAX, NANOS_PER_DAY, NANOS_PER_SECOND,
    PAYMENT_RETENTION, SPLIT_LEGS_MAX,
};
use bourse_core::money::Amount;
use bourse_core::{Engine, StateHash};
use proptest::prelude::*;
use proptest::strategy::ValueTree;

/// Assets in the test world: ids `0..ASSET_COUNT` exist, anything above does not.
const ASSET_COUNT: u16 = 3;
/// Accounts the driver opens at most; ids up to 9 (and `u32::MAX`) are still named.
const WORLD_ACCOUNTS_MAX: usize = 8;

fn config() -> Config {
    Config::from_toml_str(
        "[[assets]]\ncode = \"USD\"\nscale = 2\n\
         [[assets]]\ncode = \"EUR\"\nscale = 2\n\
         [[assets]]\ncode = \"BTC\"\nscale = 8\n",
    )
    .expect("test configuration is valid")
}

fn amount(minor_units: u64) -> Amount {
    Amount::new(minor_units.min(AMOUNT_MAX)).expect("clamped to AMOUNT_MAX")
}

fn tier(value: u8) -> KycTier {
    KycTier::new(value % (KYC_TIER_MAX + 1)).expect("reduced into range")
}

fn reference(tag: u8) -> Reference {
    Reference::new(&format!("REF-{tag}")).expect("short reference")
}

// ---------------------------------------------------------------------------------
// The reference ledger.
// ---------------------------------------------------------------------------------

/// What a command came to, as the reference sees it and as read off engine events.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Observed {
    /// Done (non-keyed commands too); the payment created or acted on, if any.
    Accepted(Option<PaymentId>),
    Rejected(RejectReason),
    /// A retry: nothing ran, and this is what the original came to.
    Replayed(Outcome),
}

impl From<Outcome> for Observed {
    fn from(outcome: Outcome) -> Self {
        match outcome {
            Outcome::Accepted { payment } => Observed::Accepted(payment),
            Outcome::Rejected(reason) => Observed::Rejected(reason),
            // This model publishes no rules, so nothing is ever held for review.
            Outcome::HeldForReview { hold } => panic!("hold {hold} without a rule set"),
        }
    }
}

/// Reads an outcome off the events the engine emitted for one command: the payment
/// a command created or acted on is named by its first payment event (a transfer,
/// the first leg of a split, an authorization, the authorization captured or voided;
/// a refund names none), as `Outcome` documents.
fn observed_from_events(events: &[Event]) -> Observed {
    let mut observed = Observed::Accepted(None);
    for event in events {
        match *event {
            Event::Rejected { reason, .. } => return Observed::Rejected(reason),
            Event::Replayed { original, .. } => return Observed::Replayed(original),
            Event::Transferred { payment, .. }
            | Event::Authorized { payment, .. }
            | Event::Captured { payment, .. }
            | Event::Voided { payment, .. }
                if observed == Observed::Accepted(None) =>
            {
                observed = Observed::Accepted(Some(payment));
            }
            _ => {}
        }
    }
    observed
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct RefBalance {
    available: u64,
    held: u64,
}

#[derive(Clone, Debug)]
struct RefAccount {
    owner: OwnerId,
    kyc_tier: KycTier,
    frozen: bool,
    balances: BTreeMap<u16, RefBalance>,
}

impl RefAccount {
    fn balance(&self, asset: AssetId) -> RefBalance {
        self.balances.get(&asset.get()).copied().unwrap_or_default()
    }

    fn balance_mut(&mut self, asset: AssetId) -> &mut RefBalance {
        self.balances.entry(asset.get()).or_default()
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum RefKind {
    Transfer,
    SplitLeg,
    Authorization,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum RefState {
    Settled,
    Open,
    Captured,
    Voided,
    Expired,
}

#[derive(Clone, Copy, Debug)]
struct RefPayment {
    kind: RefKind,
    state: RefState,
    payer: AccountId,
    payee: AccountId,
    asset: AssetId,
    /// Transferred, or authorized.
    amount: u64,
    /// Transferred, or captured so far.
    paid: u64,
    refunded: u64,
    created_at: u64,
    expires_at: u64,
}

impl RefPayment {
    /// What an open authorization still reserves in the payer's `held`.
    fn remaining(&self) -> u64 {
        if self.state == RefState::Open { self.amount - self.paid } else { 0 }
    }
}

#[derive(Clone, Debug)]
struct RefKeyRecord {
    recorded_at: u64,
    command: Command,
    outcome: Outcome,
}

type Handled = Result<Option<PaymentId>, RejectReason>;

fn ensure(ok: bool, reason: RejectReason) -> Result<(), RejectReason> {
    if ok { Ok(()) } else { Err(reason) }
}

/// The naive reference ledger. See the module documentation.
#[derive(Clone, Debug)]
struct RefLedger {
    now: u64,
    accounts: Vec<RefAccount>,
    /// Payment records still kept (`limits::PAYMENT_RETENTION`), by id.
    payments: BTreeMap<u64, RefPayment>,
    next_payment: u64,
    /// Idempotency entries by (principal, key).
    keys: BTreeMap<(u32, u128), RefKeyRecord>,
}

impl RefLedger {
    fn new() -> Self {
        Self { now: 0, accounts: Vec::new(), payments: BTreeMap::new(), next_payment: 1, keys: BTreeMap::new() }
    }

    fn account(&self, id: AccountId) -> Option<&RefAccount> {
        self.accounts.get(id.get() as usize)
    }

    fn account_mut(&mut self, id: AccountId) -> &mut RefAccount {
        self.accounts.get_mut(id.get() as usize).expect("account checked before it is changed")
    }

    fn balance(&self, id: AccountId, asset: AssetId) -> RefBalance {
        self.account(id).map(|account| account.balance(asset)).unwrap_or_default()
    }

    fn asset_known(asset: AssetId) -> bool {
        asset.get() < ASSET_COUNT
    }

    /// Everything of `asset` in every account, available and held.
    fn asset_total(&self, asset: AssetId) -> u128 {
        self.accounts
            .iter()
            .map(|account| {
                let balance = account.balance(asset);
                u128::from(balance.available) + u128::from(balance.held)
            })
            .sum()
    }

    /// The account exists and is not frozen.
    fn movable(&self, id: AccountId) -> Result<&RefAccount, RejectReason> {
        let account = self.account(id).ok_or(RejectReason::UnknownAccount)?;
        ensure(!account.frozen, RejectReason::AccountFrozen)?;
        Ok(account)
    }

    fn open_remaining(&self, account: AccountId, asset: AssetId) -> u64 {
        self.payments
            .values()
            .filter(|payment| payment.payer == account && payment.asset == asset)
            .map(RefPayment::remaining)
            .sum()
    }

    fn new_payment(&mut self, payment: RefPayment) -> PaymentId {
        let id = self.next_payment;
        self.next_payment += 1;
        self.payments.insert(id, payment);
        PaymentId::new(id)
    }

    /// Applies one command at `now`; returns its outcome and the events the engine
    /// should emit for it, `BalanceChanged` aside.
    fn apply(&mut self, now: Timestamp, command: &Command) -> (Observed, Vec<Event>) {
        assert!(now.as_nanos() >= self.now, "driver keeps time monotonic");
        self.now = now.as_nanos();
        let mut events = Vec::new();
        self.expire_authorizations(&mut events);
        let now = self.now;
        self.keys.retain(|_, record| record.recorded_at.saturating_add(IDEMPOTENCY_RETENTION.as_nanos()) > now);
        self.payments.retain(|_, payment| payment.created_at.saturating_add(PAYMENT_RETENTION.as_nanos()) > now);
        let observed = match command {
            Command::OpenAccount(c) => {
                let account = AccountId::new(self.accounts.len() as u32);
                self.accounts.push(RefAccount {
                    owner: c.owner,
                    kyc_tier: c.kyc_tier,
                    frozen: false,
                    balances: BTreeMap::new(),
                });
                events.push(Event::AccountOpened { account, owner: c.owner, kyc_tier: c.kyc_tier });
                Observed::Accepted(None)
            }
            Command::FreezeAccount(c) => self.operator(command, c.account, &mut events),
            Command::UnfreezeAccount(c) => self.operator(command, c.account, &mut events),
            Command::SetKycTier(c) => self.operator(command, c.account, &mut events),
            Command::Deposit(c) => self.keyed(command, c.account, c.key, &mut events),
            Command::Withdraw(c) => self.keyed(command, c.account, c.key, &mut events),
            Command::Transfer(c) => self.keyed(command, c.by, c.key, &mut events),
            Command::Authorize(c) => self.keyed(command, c.by, c.key, &mut events),
            Command::Capture(c) => self.keyed(command, c.by, c.key, &mut events),
            Command::Void(c) => self.keyed(command, c.by, c.key, &mut events),
            Command::SplitPayment(c) => self.keyed(command, c.by, c.key, &mut events),
            Command::Refund(c) => self.keyed(command, c.by, c.key, &mut events),
            other => {
                assert_eq!(*other, Command::Tick, "the reference models accounts, funding and payments only");
                Observed::Accepted(None)
            }
        };
        (observed, events)
    }

    /// Open authorizations whose expiry has come, by (expiry, id): released and
    /// closed as expired.
    fn expire_authorizations(&mut self, events: &mut Vec<Event>) {
        let mut due: Vec<(u64, u64)> = self
            .payments
            .iter()
            .filter(|(_, payment)| payment.state == RefState::Open && payment.expires_at <= self.now)
            .map(|(&id, payment)| (payment.expires_at, id))
            .collect();
        due.sort_unstable();
        for (_, id) in due {
            let payment = self.payments[&id];
            let released = payment.remaining();
            let balance = self.account_mut(payment.payer).balance_mut(payment.asset);
            balance.held -= released;
            balance.available += released;
            self.payments.get_mut(&id).expect("due payment exists").state = RefState::Expired;
            events.push(Event::AuthorizationExpired {
                payment: PaymentId::new(id),
                payer: payment.payer,
                payee: payment.payee,
                asset: payment.asset,
                released: amount(released),
            });
        }
    }

    /// Freeze, unfreeze, KYC tier: only an unknown account is refused.
    fn operator(&mut self, command: &Command, account: AccountId, events: &mut Vec<Event>) -> Observed {
        if self.account(account).is_none() {
            events.push(Event::Rejected { kind: command.kind(), reason: RejectReason::UnknownAccount });
            return Observed::Rejected(RejectReason::UnknownAccount);
        }
        let state = self.account_mut(account);
        match command {
            Command::FreezeAccount(_) => {
                state.frozen = true;
                events.push(Event::AccountFrozen { account });
            }
            Command::UnfreezeAccount(_) => {
                state.frozen = false;
                events.push(Event::AccountUnfrozen { account });
            }
            Command::SetKycTier(c) => {
                state.kyc_tier = c.kyc_tier;
                events.push(Event::KycTierChanged { account, kyc_tier: c.kyc_tier });
            }
            _ => unreachable!("not an operator command"),
        }
        Observed::Accepted(None)
    }

    fn keyed(
        &mut self,
        command: &Command,
        principal: AccountId,
        key: IdempotencyKey,
        events: &mut Vec<Event>,
    ) -> Observed {
        let kind = command.kind();
        if self.account(principal).is_none() {
            events.push(Event::Rejected { kind, reason: RejectReason::UnknownAccount });
            return Observed::Rejected(RejectReason::UnknownAccount);
        }
        let scope = (principal.get(), key.get());
        if let Some(record) = self.keys.get(&scope) {
            if record.command == *command {
                events.push(Event::Replayed { kind, original: record.outcome });
                return Observed::Replayed(record.outcome);
            }
            events.push(Event::Rejected { kind, reason: RejectReason::IdempotencyConflict });
            return Observed::Rejected(RejectReason::IdempotencyConflict);
        }
        let handled = match command {
            Command::Deposit(c) => self.deposit(c, events),
            Command::Withdraw(c) => self.withdraw(c, events),
            Command::Transfer(c) => self.transfer(c, events),
            Command::Authorize(c) => self.authorize(c, events),
            Command::Capture(c) => self.capture(c, events),
            Command::Void(c) => self.void(c, events),
            Command::SplitPayment(c) => self.split_payment(c, events),
            Command::Refund(c) => self.refund(c, events),
            _ => unreachable!("not a keyed command"),
        };
        let outcome = match handled {
            Ok(payment) => Outcome::Accepted { payment },
            Err(reason) => {
                events.push(Event::Rejected { kind, reason });
                Outcome::Rejected(reason)
            }
        };
        self.keys.insert(scope, RefKeyRecord { recorded_at: self.now, command: command.clone(), outcome });
        outcome.into()
    }

    fn deposit(&mut self, c: &Deposit, events: &mut Vec<Event>) -> Handled {
        let units = c.amount.minor_units();
        ensure(units > 0, RejectReason::InvalidAmount)?;
        ensure(Self::asset_known(c.asset), RejectReason::UnknownAsset)?;
        self.movable(c.account)?;
        ensure(self.asset_total(c.asset) + u128::from(units) <= u128::from(AMOUNT_MAX), RejectReason::Overflow)?;
        self.account_mut(c.account).balance_mut(c.asset).available += units;
        events.push(Event::Deposited { account: c.account, asset: c.asset, amount: c.amount, reference: c.reference });
        Ok(None)
    }

    fn withdraw(&mut self, c: &Withdraw, events: &mut Vec<Event>) -> Handled {
        let units = c.amount.minor_units();
        ensure(units > 0, RejectReason::InvalidAmount)?;
        ensure(Self::asset_known(c.asset), RejectReason::UnknownAsset)?;
        let account = self.movable(c.account)?;
        ensure(account.balance(c.asset).available >= units, RejectReason::InsufficientFunds)?;
        self.account_mut(c.account).balance_mut(c.asset).available -= units;
        events.push(Event::Withdrawn { account: c.account, asset: c.asset, amount: c.amount, reference: c.reference });
        Ok(None)
    }

    fn transfer(&mut self, c: &Transfer, events: &mut Vec<Event>) -> Handled {
        let units = c.amount.minor_units();
        ensure(units > 0, RejectReason::InvalidAmount)?;
        ensure(c.by != c.to, RejectReason::SameAccount)?;
        ensure(Self::asset_known(c.asset), RejectReason::UnknownAsset)?;
        self.movable(c.to)?;
        let payer = self.movable(c.by)?;
        ensure(payer.balance(c.asset).available >= units, RejectReason::InsufficientFunds)?;
        self.account_mut(c.by).balance_mut(c.asset).available -= units;
        self.account_mut(c.to).balance_mut(c.asset).available += units;
        let payment = self.new_payment(RefPayment {
            kind: RefKind::Transfer,
            state: RefState::Settled,
            payer: c.by,
            payee: c.to,
            asset: c.asset,
            amount: units,
            paid: units,
            refunded: 0,
            created_at: self.now,
            expires_at: 0,
        });
        events.push(Event::Transferred { payment, from: c.by, to: c.to, asset: c.asset, amount: c.amount });
        Ok(Some(payment))
    }

    fn authorize(&mut self, c: &Authorize, events: &mut Vec<Event>) -> Handled {
        let units = c.amount.minor_units();
        ensure(units > 0, RejectReason::InvalidAmount)?;
        ensure(c.by != c.payee, RejectReason::SameAccount)?;
        ensure(Self::asset_known(c.asset), RejectReason::UnknownAsset)?;
        self.movable(c.payee)?;
        let expires_at = c.expires_at.as_nanos();
        let latest = self.now.saturating_add(AUTHORIZATION_DURATION_MAX.as_nanos());
        ensure(expires_at > self.now && expires_at <= latest, RejectReason::InvalidExpiry)?;
        let payer = self.movable(c.by)?;
        ensure(payer.balance(c.asset).available >= units, RejectReason::InsufficientFunds)?;
        let balance = self.account_mut(c.by).balance_mut(c.asset);
        balance.available -= units;
        balance.held += units;
        let payment = self.new_payment(RefPayment {
            kind: RefKind::Authorization,
            state: RefState::Open,
            payer: c.by,
            payee: c.payee,
            asset: c.asset,
            amount: units,
            paid: 0,
            refunded: 0,
            created_at: self.now,
            expires_at,
        });
        events.push(Event::Authorized {
            payment,
            payer: c.by,
            payee: c.payee,
            asset: c.asset,
            amount: c.amount,
            expires_at: c.expires_at,
        });
        Ok(Some(payment))
    }

    /// The checks capture and void share once the payment is known: it is an
    /// authorization and it is still open.
    fn open_authorization(
        &self,
        id: PaymentId,
        may_act: impl Fn(&RefPayment) -> bool,
    ) -> Result<RefPayment, RejectReason> {
        let payment = *self.payments.get(&id.get()).ok_or(RejectReason::UnknownPayment)?;
        ensure(payment.kind == RefKind::Authorization, RejectReason::NotAnAuthorization)?;
        ensure(may_act(&payment), RejectReason::NotParty)?;
        ensure(payment.state != RefState::Expired, RejectReason::AuthorizationExpired)?;
        ensure(payment.state == RefState::Open, RejectReason::AuthorizationClosed)?;
        Ok(payment)
    }

    fn capture(&mut self, c: &Capture, events: &mut Vec<Event>) -> Handled {
        let units = c.amount.minor_units();
        ensure(units > 0, RejectReason::InvalidAmount)?;
        let payment = self.open_authorization(c.payment, |payment| payment.payee == c.by)?;
        ensure(c.asset == payment.asset, RejectReason::AssetMismatch)?;
        ensure(units <= payment.amount - payment.paid, RejectReason::ExceedsAuthorization)?;
        self.movable(payment.payer)?;
        self.movable(payment.payee)?;
        self.account_mut(payment.payer).balance_mut(payment.asset).held -= units;
        self.account_mut(payment.payee).balance_mut(payment.asset).available += units;
        let captured_total = payment.paid + units;
        let remaining = payment.amount - captured_total;
        let mut released = 0;
        if c.last || remaining == 0 {
            released = remaining;
            let balance = self.account_mut(payment.payer).balance_mut(payment.asset);
            balance.held -= released;
            balance.available += released;
        }
        let record = self.payments.get_mut(&c.payment.get()).expect("checked above");
        record.paid = captured_total;
        if c.last || remaining == 0 {
            record.state = RefState::Captured;
        }
        events.push(Event::Captured {
            payment: c.payment,
            payer: payment.payer,
            payee: payment.payee,
            asset: payment.asset,
            amount: c.amount,
            captured_total: amount(captured_total),
            released: amount(released),
        });
        Ok(Some(c.payment))
    }

    fn void(&mut self, c: &Void, events: &mut Vec<Event>) -> Handled {
        let payment = self.open_authorization(c.payment, |payment| payment.payer == c.by || payment.payee == c.by)?;
        let released = payment.remaining();
        let balance = self.account_mut(payment.payer).balance_mut(payment.asset);
        balance.held -= released;
        balance.available += released;
        self.payments.get_mut(&c.payment.get()).expect("checked above").state = RefState::Voided;
        events.push(Event::Voided {
            payment: c.payment,
            payer: payment.payer,
            payee: payment.payee,
            asset: payment.asset,
            released: amount(released),
        });
        Ok(Some(c.payment))
    }

    fn split_payment(&mut self, c: &SplitPayment, events: &mut Vec<Event>) -> Handled {
        ensure(!c.legs.is_empty() && c.legs.len() <= SPLIT_LEGS_MAX, RejectReason::TooManyLegs)?;
        for (index, leg) in c.legs.iter().enumerate() {
            ensure(!leg.amount.is_zero(), RejectReason::InvalidAmount)?;
            ensure(leg.payee != c.by, RejectReason::SameAccount)?;
            ensure(c.legs[..index].iter().all(|earlier| earlier.payee != leg.payee), RejectReason::DuplicatePayee)?;
        }
        ensure(Self::asset_known(c.asset), RejectReason::UnknownAsset)?;
        for leg in &c.legs {
            self.movable(leg.payee)?;
        }
        let payer = self.movable(c.by)?;
        let total: u128 = c.legs.iter().map(|leg| u128::from(leg.amount.minor_units())).sum();
        ensure(u128::from(payer.balance(c.asset).available) >= total, RejectReason::InsufficientFunds)?;
        let mut first_payment = None;
        for leg in &c.legs {
            let units = leg.amount.minor_units();
            self.account_mut(c.by).balance_mut(c.asset).available -= units;
            self.account_mut(leg.payee).balance_mut(c.asset).available += units;
            let payment = self.new_payment(RefPayment {
                kind: RefKind::SplitLeg,
                state: RefState::Settled,
                payer: c.by,
                payee: leg.payee,
                asset: c.asset,
                amount: units,
                paid: units,
                refunded: 0,
                created_at: self.now,
                expires_at: 0,
            });
            first_payment.get_or_insert(payment);
            events.push(Event::Transferred { payment, from: c.by, to: leg.payee, asset: c.asset, amount: leg.amount });
        }
        let first_payment = first_payment.expect("at least one leg");
        events.push(Event::SplitPaid {
            first_payment,
            payer: c.by,
            asset: c.asset,
            total: amount(total as u64),
            legs: c.legs.len() as u8,
        });
        Ok(Some(first_payment))
    }

    fn refund(&mut self, c: &Refund, events: &mut Vec<Event>) -> Handled {
        let units = c.amount.minor_units();
        ensure(units > 0, RejectReason::InvalidAmount)?;
        let payment = *self.payments.get(&c.payment.get()).ok_or(RejectReason::UnknownPayment)?;
        ensure(payment.payee == c.by, RejectReason::NotParty)?;
        ensure(payment.asset == c.asset, RejectReason::AssetMismatch)?;
        ensure(payment.paid > 0, RejectReason::NotRefundable)?;
        ensure(units <= payment.paid - payment.refunded, RejectReason::ExceedsRefundable)?;
        self.movable(payment.payer)?;
        let payee = self.movable(payment.payee)?;
        ensure(payee.balance(c.asset).available >= units, RejectReason::InsufficientFunds)?;
        self.account_mut(payment.payee).balance_mut(c.asset).available -= units;
        self.account_mut(payment.payer).balance_mut(c.asset).available += units;
        let record = self.payments.get_mut(&c.payment.get()).expect("checked above");
        record.refunded += units;
        events.push(Event::Refunded {
            payment: c.payment,
            payer: payment.payer,
            payee: payment.payee,
            asset: payment.asset,
            amount: c.amount,
            refunded_total: amount(record.refunded),
        });
        Ok(None)
    }
}

/// The account a keyed command acts for and its key; `None` for the others.
fn scope(command: &Command) -> Option<(AccountId, IdempotencyKey)> {
    match command {
        Command::Deposit(c) => Some((c.account, c.key)),
        Command::Withdraw(c) => Some((c.account, c.key)),
        Command::Transfer(c) => Some((c.by, c.key)),
        Command::Authorize(c) => Some((c.by, c.key)),
        Command::Capture(c) => Some((c.by, c.key)),
        Command::Void(c) => Some((c.by, c.key)),
        Command::SplitPayment(c) => Some((c.by, c.key)),
        Command::Refund(c) => Some((c.by, c.key)),
        _ => None,
    }
}

// ---------------------------------------------------------------------------------
// Abstract steps, resolved against the reference into concrete commands.
// ---------------------------------------------------------------------------------

/// An amount, possibly relative to what the context makes exact (all available, the
/// rest of an authorization, what is still refundable, room left under `AMOUNT_MAX`).
#[derive(Clone, Copy, Debug)]
enum AmountPick {
    Units(u64),
    Exact,
    ExactPlusOne,
}

impl AmountPick {
    fn resolve(self, exact: u64) -> Amount {
        match self {
            AmountPick::Units(units) => amount(units),
            AmountPick::Exact => amount(exact),
            AmountPick::ExactPlusOne => amount(exact.saturating_add(1)),
        }
    }
}

#[derive(Clone, Copy, Debug)]
enum KeyPick {
    /// A key never used before.
    Fresh,
    /// One of a few keys shared by every command (collisions on purpose).
    Pool(u8),
}

#[derive(Clone, Copy, Debug)]
enum PaymentPick {
    /// The `n`-th most recent payment id (0 when there is none: unknown).
    Recent(u8),
    Absolute(u64),
    /// One of the open authorizations, if any (else the most recent payment).
    OpenAuthorization(u8),
}

/// Who acts on a payment.
#[derive(Clone, Copy, Debug)]
enum PartyPick {
    Payee,
    Payer,
    Account(u32),
}

#[derive(Clone, Copy, Debug)]
enum AssetChoice {
    OfPayment,
    Asset(u16),
}

#[derive(Clone, Debug)]
enum Op {
    Open {
        owner: u64,
        tier: u8,
    },
    Freeze(u32),
    Unfreeze(u32),
    SetKyc(u32, u8),
    Deposit {
        account: u32,
        key: KeyPick,
        asset: u16,
        amount: AmountPick,
        reference: u8,
    },
    Withdraw {
        account: u32,
        key: KeyPick,
        asset: u16,
        amount: AmountPick,
        reference: u8,
    },
    Transfer {
        by: u32,
        key: KeyPick,
        to: u32,
        asset: u16,
        amount: AmountPick,
    },
    Authorize {
        by: u32,
        key: KeyPick,
        payee: u32,
        asset: u16,
        amount: AmountPick,
        expires_in: u64,
    },
    Capture {
        by: PartyPick,
        key: KeyPick,
        payment: PaymentPick,
        asset: AssetChoice,
        amount: AmountPick,
        last: bool,
    },
    Void {
        by: PartyPick,
        key: KeyPick,
        payment: PaymentPick,
    },
    Split {
        by: u32,
        key: KeyPick,
        asset: u16,
        legs: Vec<(u32, AmountPick)>,
    },
    Refund {
        by: PartyPick,
        key: KeyPick,
        payment: PaymentPick,
        asset: AssetChoice,
        amount: AmountPick,
    },
    /// The `n`-th most recent keyed command again, unchanged.
    Retry(u8),
    /// The `n`-th most recent keyed command again, same principal and key, one field
    /// changed (chosen by the second number).
    Tweak(u8, u8),
    Tick,
}

#[derive(Clone, Debug)]
struct Step {
    /// Nanoseconds of command time before this step.
    delay: u64,
    op: Op,
}

/// The same keyed command with one field changed; principal and key stay.
fn tweak(command: &Command, selector: u8) -> Command {
    let bump = |value: Amount| amount(if value == Amount::MAX { AMOUNT_MAX - 1 } else { value.minor_units() + 1 });
    match command.clone() {
        Command::Deposit(mut c) => match selector % 3 {
            0 => Command::Deposit(Deposit { amount: bump(c.amount), ..c }),
            1 => {
                c.reference = reference(c.reference.as_bytes().len() as u8 + 100);
                Command::Deposit(c)
            }
            _ => Command::Withdraw(Withdraw {
                account: c.account,
                key: c.key,
                asset: c.asset,
                amount: c.amount,
                reference: c.reference,
            }),
        },
        Command::Withdraw(c) => match selector % 2 {
            0 => Command::Withdraw(Withdraw { amount: bump(c.amount), ..c }),
            _ => Command::Deposit(Deposit {
                account: c.account,
                key: c.key,
                asset: c.asset,
                amount: c.amount,
                reference: c.reference,
            }),
        },
        Command::Transfer(c) => match selector % 2 {
            0 => Command::Transfer(Transfer { amount: bump(c.amount), ..c }),
            _ => Command::Transfer(Transfer { to: AccountId::new(c.to.get().wrapping_add(1)), ..c }),
        },
        Command::Authorize(c) => match selector % 2 {
            0 => Command::Authorize(Authorize { amount: bump(c.amount), ..c }),
            _ => Command::Authorize(Authorize { expires_at: Timestamp::from_nanos(c.expires_at.as_nanos() + 1), ..c }),
        },
        Command::Capture(c) => match selector % 2 {
            0 => Command::Capture(Capture { amount: bump(c.amount), ..c }),
            _ => Command::Capture(Capture { last: !c.last, ..c }),
        },
        Command::Void(c) => Command::Void(Void { payment: PaymentId::new(c.payment.get().wrapping_add(1)), ..c }),
        Command::SplitPayment(mut c) => {
            // The last leg is the one a fingerprint of the first legs would miss.
            match c.legs.last_mut() {
                Some(leg) => leg.amount = bump(leg.amount),
                None => c.legs.push(SplitLeg { payee: AccountId::new(0), amount: amount(1) }),
            }
            Command::SplitPayment(c)
        }
        Command::Refund(c) => Command::Refund(Refund { amount: bump(c.amount), ..c }),
        other => other,
    }
}

// ---------------------------------------------------------------------------------
// The driver: one engine and one reference, fed the same commands, checked after
// every step.
// ---------------------------------------------------------------------------------

struct Driver {
    engine: Engine,
    model: RefLedger,
    seq: u64,
    now: u64,
    next_key: u128,
    /// Every keyed command issued, oldest first (for retries and reused keys).
    keyed_history: Vec<Command>,
    /// Every command applied, and every event the engine emitted, in order.
    commands: Vec<SequencedCommand>,
    events: Vec<Event>,
    /// Per asset, summed from the engine's own `Deposited` / `Withdrawn` events.
    deposited: Vec<u128>,
    withdrawn: Vec<u128>,
    /// Steps whose outcome was a replay, an idempotency conflict, and so on (a
    /// coverage count, printed by the tests that want it).
    tally: BTreeMap<String, usize>,
    /// Whether each step is checked; the determinism and coverage tests only need the
    /// commands, events and tally.
    checked: bool,
}

impl Driver {
    fn new(checked: bool) -> Self {
        Self {
            checked,
            engine: Engine::new(&config()),
            model: RefLedger::new(),
            seq: 0,
            now: 0,
            next_key: 1_000,
            keyed_history: Vec::new(),
            commands: Vec::new(),
            events: Vec::new(),
            deposited: vec![0; usize::from(ASSET_COUNT)],
            withdrawn: vec![0; usize::from(ASSET_COUNT)],
            tally: BTreeMap::new(),
        }
    }

    /// A world to start from: five accounts with some of every asset.
    fn prelude() -> Vec<Step> {
        let mut steps = Vec::new();
        for owner in 0..5 {
            steps.push(Step { delay: 0, op: Op::Open { owner, tier: owner as u8 } });
        }
        for account in 0..5 {
            for asset in 0..ASSET_COUNT {
                let op =
                    Op::Deposit { account, key: KeyPick::Fresh, asset, amount: AmountPick::Units(150), reference: 0 };
                steps.push(Step { delay: 0, op });
            }
        }
        steps
    }

    /// Runs the prelude and `steps`, checking every step against the reference.
    fn run(steps: &[Step]) -> Result<Self, TestCaseError> {
        Self::run_with(steps, true)
    }

    /// Runs the prelude and `steps` without checks: the commands the reference
    /// resolved, the engine's events and the reference's tally.
    fn run_unchecked(steps: &[Step]) -> Self {
        Self::run_with(steps, false).expect("nothing is checked")
    }

    fn run_with(steps: &[Step], checked: bool) -> Result<Self, TestCaseError> {
        let mut driver = Self::new(checked);
        for step in Self::prelude().iter().chain(steps) {
            driver.step(step)?;
        }
        Ok(driver)
    }

    fn step(&mut self, step: &Step) -> Result<(), TestCaseError> {
        self.now += step.delay;
        self.seq += 1;
        let command = self.resolve(&step.op);
        let sequenced =
            SequencedCommand { seq: Seq::new(self.seq), timestamp: Timestamp::from_nanos(self.now), command };
        self.execute(sequenced)
    }

    fn key(&mut self, pick: KeyPick) -> IdempotencyKey {
        match pick {
            KeyPick::Fresh => {
                self.next_key += 1;
                IdempotencyKey::new(self.next_key)
            }
            KeyPick::Pool(index) => IdempotencyKey::new(u128::from(index)),
        }
    }

    fn payment(&self, pick: PaymentPick) -> PaymentId {
        let recent = |back: u8| PaymentId::new(self.model.next_payment.saturating_sub(1 + u64::from(back)));
        match pick {
            PaymentPick::Recent(back) => recent(back),
            PaymentPick::Absolute(id) => PaymentId::new(id),
            PaymentPick::OpenAuthorization(index) => {
                let open: Vec<u64> = self
                    .model
                    .payments
                    .iter()
                    .filter(|(_, payment)| payment.state == RefState::Open)
                    .map(|(&id, _)| id)
                    .collect();
                if open.is_empty() { recent(0) } else { PaymentId::new(open[usize::from(index) % open.len()]) }
            }
        }
    }

    /// Payer, payee and asset of a payment pick, and who acts, if the reference knows
    /// the payment.
    fn party(&self, payment: PaymentId, by: PartyPick) -> (AccountId, Option<RefPayment>) {
        let record = self.model.payments.get(&payment.get()).copied();
        let account = match (by, record) {
            (PartyPick::Payee, Some(record)) => record.payee,
            (PartyPick::Payer, Some(record)) => record.payer,
            (PartyPick::Account(account), _) => AccountId::new(account),
            (_, None) => AccountId::new(0),
        };
        (account, record)
    }

    fn available(&self, account: u32, asset: u16) -> u64 {
        self.model.balance(AccountId::new(account), AssetId::new(asset)).available
    }

    fn history_back(&self, back: u8) -> Option<&Command> {
        self.keyed_history.iter().rev().nth(usize::from(back))
    }

    fn resolve(&mut self, op: &Op) -> Command {
        match op {
            Op::Open { owner, tier: value } => {
                if self.model.accounts.len() >= WORLD_ACCOUNTS_MAX {
                    return Command::Tick;
                }
                Command::OpenAccount(OpenAccount { owner: OwnerId::new(*owner), kyc_tier: tier(*value) })
            }
            Op::Freeze(account) => Command::FreezeAccount(FreezeAccount { account: AccountId::new(*account) }),
            Op::Unfreeze(account) => Command::UnfreezeAccount(UnfreezeAccount { account: AccountId::new(*account) }),
            Op::SetKyc(account, value) => {
                Command::SetKycTier(SetKycTier { account: AccountId::new(*account), kyc_tier: tier(*value) })
            }
            Op::Deposit { account, key, asset, amount: pick, reference: tag } => {
                let total = if RefLedger::asset_known(AssetId::new(*asset)) {
                    self.model.asset_total(AssetId::new(*asset))
                } else {
                    0
                };
                let room = u64::try_from(u128::from(AMOUNT_MAX).saturating_sub(total)).expect("below AMOUNT_MAX");
                Command::Deposit(Deposit {
                    account: AccountId::new(*account),
                    key: self.key(*key),
                    asset: AssetId::new(*asset),
                    amount: pick.resolve(room),
                    reference: reference(*tag),
                })
            }
            Op::Withdraw { account, key, asset, amount: pick, reference: tag } => Command::Withdraw(Withdraw {
                account: AccountId::new(*account),
                key: self.key(*key),
                asset: AssetId::new(*asset),
                amount: pick.resolve(self.available(*account, *asset)),
                reference: reference(*tag),
            }),
            Op::Transfer { by, key, to, asset, amount: pick } => Command::Transfer(Transfer {
                by: AccountId::new(*by),
                key: self.key(*key),
                to: AccountId::new(*to),
                asset: AssetId::new(*asset),
                amount: pick.resolve(self.available(*by, *asset)),
            }),
            Op::Authorize { by, key, payee, asset, amount: pick, expires_in } => Command::Authorize(Authorize {
                by: AccountId::new(*by),
                key: self.key(*key),
                payee: AccountId::new(*payee),
                asset: AssetId::new(*asset),
                amount: pick.resolve(self.available(*by, *asset)),
                expires_at: Timestamp::from_nanos(self.now + expires_in),
            }),
            Op::Capture { by, key, payment, asset, amount: pick, last } => {
                let payment = self.payment(*payment);
                let (by, record) = self.party(payment, *by);
                Command::Capture(Capture {
                    by,
                    key: self.key(*key),
                    payment,
                    asset: asset_of(*asset, record),
                    amount: pick.resolve(record.map_or(0, |record| record.amount - record.paid)),
                    last: *last,
                })
            }
            Op::Void { by, key, payment } => {
                let payment = self.payment(*payment);
                let (by, _) = self.party(payment, *by);
                Command::Void(Void { by, key: self.key(*key), payment })
            }
            Op::Split { by, key, asset, legs } => {
                let exact = self.available(*by, *asset);
                let legs = legs
                    .iter()
                    .map(|&(payee, pick)| SplitLeg { payee: AccountId::new(payee), amount: pick.resolve(exact) });
                Command::SplitPayment(SplitPayment {
                    by: AccountId::new(*by),
                    key: self.key(*key),
                    asset: AssetId::new(*asset),
                    legs: legs.collect(),
                })
            }
            Op::Refund { by, key, payment, asset, amount: pick } => {
                let payment = self.payment(*payment);
                let (by, record) = self.party(payment, *by);
                Command::Refund(Refund {
                    by,
                    key: self.key(*key),
                    payment,
                    asset: asset_of(*asset, record),
                    amount: pick.resolve(record.map_or(0, |record| record.paid - record.refunded)),
                })
            }
            Op::Retry(back) => self.history_back(*back).cloned().unwrap_or(Command::Tick),
            Op::Tweak(back, selector) => {
                self.history_back(*back).map_or(Command::Tick, |command| tweak(command, *selector))
            }
            Op::Tick => Command::Tick,
        }
    }

    /// Every command applied so far, one per line: the reproduction in a failure.
    fn history(&self) -> String {
        let mut text = String::new();
        for command in &self.commands {
            let _ =
                writeln!(text, "  #{} t={}ns {:?}", command.seq.get(), command.timestamp.as_nanos(), command.command);
        }
        text
    }

    /// The model's balances of every account and asset.
    fn model_balances(&self) -> Vec<Vec<RefBalance>> {
        self.model
            .accounts
            .iter()
            .map(|account| (0..ASSET_COUNT).map(|asset| account.balance(AssetId::new(asset))).collect())
            .collect()
    }

    fn execute(&mut self, sequenced: SequencedCommand) -> Result<(), TestCaseError> {
        let command = sequenced.command.clone();
        let keyed = scope(&command);
        let principal_known = keyed.is_some_and(|(account, _)| self.model.account(account).is_some());
        // Remembered before this command's retention sweep.
        let remembered = keyed.is_some_and(|(account, key)| self.model.keys.contains_key(&(account.get(), key.get())));
        let evicted = self.model.payments.len();
        let before = self.model_balances();
        let (expected, expected_events) = self.model.apply(sequenced.timestamp, &command);

        // A keyed command that is replayed, conflicts or names no account must leave
        // the state exactly as a `Tick` at the same seq and time would.
        let unrecorded = self.checked
            && keyed.is_some()
            && (!principal_known
                || matches!(expected, Observed::Replayed(_) | Observed::Rejected(RejectReason::IdempotencyConflict)));
        let shadow = unrecorded.then(|| {
            let mut shadow = self.engine.clone();
            let mut events = Vec::new();
            shadow.apply(&SequencedCommand { command: Command::Tick, ..sequenced.clone() }, &mut events);
            (shadow.state_hash(), events)
        });

        let mut events = Vec::new();
        self.engine.apply(&sequenced, &mut events);
        self.commands.push(sequenced);
        if keyed.is_some() {
            self.keyed_history.push(command.clone());
        }
        self.events.extend_from_slice(&events);
        *self.tally.entry(tally_name(&command, expected)).or_default() += 1;
        if remembered
            && !matches!(expected, Observed::Replayed(_) | Observed::Rejected(RejectReason::IdempotencyConflict))
        {
            *self.tally.entry("key forgotten at this command, then run again".to_owned()).or_default() += 1;
        }
        if self.model.payments.len() < evicted {
            *self.tally.entry("payment records aged out".to_owned()).or_default() += 1;
        }
        if !self.checked {
            return Ok(());
        }

        self.engine.check_invariants();
        let observed = observed_from_events(&events);
        prop_assert_eq!(
            observed,
            expected,
            "outcome differs (engine left, reference right) at the last command of:\n{}",
            self.history()
        );
        let domain_events: Vec<Event> =
            events.iter().copied().filter(|event| !matches!(event, Event::BalanceChanged { .. })).collect();
        prop_assert_eq!(
            &domain_events,
            &expected_events,
            "events differ (engine left, reference right) at the last command of:\n{}",
            self.history()
        );
        if let Some((hash, tick_events)) = shadow {
            prop_assert_eq!(self.engine.state_hash(), hash, "an unrecorded keyed command changed the state");
            // Its events are the tick's (expiries, the balances they changed) plus the
            // verdict, and nothing else.
            let is_balance = |event: &&Event| matches!(event, Event::BalanceChanged { .. });
            let is_verdict = |event: &&Event| matches!(event, Event::Replayed { .. } | Event::Rejected { .. });
            let (tick_balances, mut tick_domain): (Vec<Event>, Vec<Event>) = tick_events.iter().partition(is_balance);
            tick_domain.extend(events.iter().filter(is_verdict).take(1));
            let balances: Vec<Event> = events.iter().filter(is_balance).copied().collect();
            prop_assert_eq!(&domain_events, &tick_domain, "an unrecorded keyed command did more than give its verdict");
            prop_assert_eq!(&balances, &tick_balances, "an unrecorded keyed command changed a balance");
        }
        self.check_balances(&before, &events)?;
        self.check_conservation(&events)?;
        Ok(())
    }

    /// Balances, holds, flags and table sizes against the reference; `BalanceChanged`
    /// events against the balances they report.
    fn check_balances(&self, before: &[Vec<RefBalance>], events: &[Event]) -> Result<(), TestCaseError> {
        prop_assert_eq!(self.engine.account_count(), self.model.accounts.len());
        prop_assert_eq!(self.engine.idempotency_entries(), self.model.keys.len(), "idempotency entries");
        prop_assert_eq!(self.engine.payment_records(), self.model.payments.len(), "payment records kept");
        for (index, account) in self.model.accounts.iter().enumerate() {
            let id = AccountId::new(index as u32);
            let state = self.engine.account(id).expect("counted above");
            prop_assert_eq!(state.owner(), account.owner);
            prop_assert_eq!(state.kyc_tier(), account.kyc_tier);
            prop_assert_eq!(state.is_frozen(), account.frozen, "account {} frozen flag", index);
            for asset in (0..ASSET_COUNT).map(AssetId::new) {
                let balance = self.engine.balance(id, asset).expect("account exists");
                let engine =
                    RefBalance { available: balance.available().minor_units(), held: balance.held().minor_units() };
                prop_assert_eq!(
                    engine,
                    account.balance(asset),
                    "balance of account {} asset {} (engine left, reference right) after:\n{}",
                    index,
                    asset.get(),
                    self.history()
                );
                prop_assert_eq!(
                    engine.held,
                    self.model.open_remaining(id, asset),
                    "held is what open authorizations reserve"
                );
                let was =
                    before.get(index).map_or(RefBalance::default(), |balances| balances[usize::from(asset.get())]);
                let reported = events.iter().any(|event| {
                    matches!(event, Event::BalanceChanged { account, asset: a, .. } if *account == id && *a == asset)
                });
                prop_assert!(was == engine || reported, "a balance changed without a BalanceChanged event");
            }
        }
        let mut seen = BTreeSet::new();
        for event in events {
            if let Event::BalanceChanged { account, asset, available, held } = *event {
                prop_assert!(seen.insert((account, asset)), "one BalanceChanged per account and asset");
                let now = self.engine.balance(account, asset).expect("reported account exists");
                prop_assert_eq!((now.available(), now.held()), (available, held), "BalanceChanged reports the balance");
            }
        }
        Ok(())
    }

    /// What the accounts hold of each asset is deposits minus withdrawals, both summed
    /// from the engine's own events.
    fn check_conservation(&mut self, events: &[Event]) -> Result<(), TestCaseError> {
        for event in events {
            match *event {
                Event::Deposited { asset, amount, .. } => {
                    self.deposited[usize::from(asset.get())] += u128::from(amount.minor_units());
                }
                Event::Withdrawn { asset, amount, .. } => {
                    self.withdrawn[usize::from(asset.get())] += u128::from(amount.minor_units());
                }
                _ => {}
            }
        }
        for asset in 0..ASSET_COUNT {
            let in_accounts: u128 = (0..self.engine.account_count())
                .map(|index| {
                    let balance =
                        self.engine.balance(AccountId::new(index as u32), AssetId::new(asset)).expect("exists");
                    u128::from(balance.available().minor_units()) + u128::from(balance.held().minor_units())
                })
                .sum();
            let index = usize::from(asset);
            prop_assert_eq!(in_accounts + self.withdrawn[index], self.deposited[index], "asset {} conserved", asset);
        }
        Ok(())
    }
}

fn asset_of(choice: AssetChoice, record: Option<RefPayment>) -> AssetId {
    match (choice, record) {
        (AssetChoice::OfPayment, Some(record)) => record.asset,
        (AssetChoice::OfPayment, None) => AssetId::new(0),
        (AssetChoice::Asset(asset), _) => AssetId::new(asset),
    }
}

fn tally_name(command: &Command, observed: Observed) -> String {
    match observed {
        Observed::Accepted(_) => format!("{:?} accepted", command.kind()),
        Observed::Rejected(reason) => format!("{:?} {reason:?}", command.kind()),
        Observed::Replayed(_) => format!("{:?} replayed", command.kind()),
    }
}

// ---------------------------------------------------------------------------------
// Strategies.
// ---------------------------------------------------------------------------------

fn account_pick() -> impl Strategy<Value = u32> {
    prop_oneof![24 => 0..8_u32, 1 => 8..10_u32, 1 => Just(u32::MAX)]
}

fn asset_pick() -> impl Strategy<Value = u16> {
    prop_oneof![20 => 0..ASSET_COUNT, 1 => Just(ASSET_COUNT), 1 => Just(u16::MAX)]
}

fn key_pick() -> impl Strategy<Value = KeyPick> {
    prop_oneof![5 => Just(KeyPick::Fresh), 2 => (0..4_u8).prop_map(KeyPick::Pool)]
}

/// Mostly small amounts, so that both success and `InsufficientFunds` are common.
fn amount_pick() -> impl Strategy<Value = AmountPick> {
    prop_oneof![
        1 => Just(AmountPick::Units(0)),
        24 => (1..=25_u64).prop_map(AmountPick::Units),
        6 => (26..=300_u64).prop_map(AmountPick::Units),
        4 => Just(AmountPick::Exact),
        2 => Just(AmountPick::ExactPlusOne),
        1 => (0..3_u64).prop_map(|below| AmountPick::Units(AMOUNT_MAX - below)),
    ]
}

/// Deposits: mostly small; rarely the exact room left under `AMOUNT_MAX` (or one more).
fn deposit_pick() -> impl Strategy<Value = AmountPick> {
    prop_oneof![
        1 => Just(AmountPick::Units(0)),
        40 => (1..=60_u64).prop_map(AmountPick::Units),
        10 => (61..=500_u64).prop_map(AmountPick::Units),
        1 => Just(AmountPick::Exact),
        1 => Just(AmountPick::ExactPlusOne),
        1 => (0..3_u64).prop_map(|above| AmountPick::Units(AMOUNT_MAX / 2 + above)),
    ]
}

fn payment_pick() -> impl Strategy<Value = PaymentPick> {
    prop_oneof![
        3 => (0..6_u8).prop_map(PaymentPick::Recent),
        8 => (0..6_u8).prop_map(PaymentPick::OpenAuthorization),
        1 => prop_oneof![(0..=60_u64), Just(u64::MAX)].prop_map(PaymentPick::Absolute),
    ]
}

fn party_pick() -> impl Strategy<Value = PartyPick> {
    prop_oneof![8 => Just(PartyPick::Payee), 1 => Just(PartyPick::Payer), 1 => account_pick().prop_map(PartyPick::Account)]
}

fn asset_choice() -> impl Strategy<Value = AssetChoice> {
    prop_oneof![8 => Just(AssetChoice::OfPayment), 1 => asset_pick().prop_map(AssetChoice::Asset)]
}

/// Command time between two steps: often none, sometimes exactly one idempotency
/// retention, sometimes days (authorizations expire; records age out).
fn delay() -> impl Strategy<Value = u64> {
    prop_oneof![
        30 => Just(0_u64),
        2 => 1..=1_000_u64,
        20 => (1..=30_u64).prop_map(|seconds| seconds * NANOS_PER_SECOND),
        6 => (1..=3_600_u64).prop_map(|seconds| seconds * NANOS_PER_SECOND),
        3 => (1..=36_u64).prop_map(|hours| hours * 3_600 * NANOS_PER_SECOND),
        1 => Just(NANOS_PER_DAY),
        1 => (1..=31_u64).prop_map(|days| days * NANOS_PER_DAY),
    ]
}

/// How far after the command an authorization expires, out-of-range ones included.
fn expires_in() -> impl Strategy<Value = u64> {
    let duration_max = AUTHORIZATION_DURATION_MAX.as_nanos();
    prop_oneof![
        1 => Just(0_u64),
        10 => (1..=120_u64).prop_map(|seconds| seconds * NANOS_PER_SECOND),
        6 => (1..=48_u64).prop_map(|hours| hours * 3_600 * NANOS_PER_SECOND),
        2 => (1..=30_u64).prop_map(|days| days * NANOS_PER_DAY),
        1 => Just(duration_max),
        1 => Just(duration_max + 1),
    ]
}

fn legs() -> impl Strategy<Value = Vec<(u32, AmountPick)>> {
    prop_oneof![
        12 => prop::collection::vec((account_pick(), amount_pick()), 1..=3),
        1 => Just(Vec::new()),
        // Past the limit, and far enough past it that a fingerprint must chain.
        2 => prop::collection::vec((account_pick(), amount_pick()), SPLIT_LEGS_MAX - 1..=2 * SPLIT_LEGS_MAX + 8),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        1 => (0..4_u64, any::<u8>()).prop_map(|(owner, tier)| Op::Open { owner, tier }),
        1 => account_pick().prop_map(Op::Freeze),
        6 => account_pick().prop_map(Op::Unfreeze),
        1 => (account_pick(), any::<u8>()).prop_map(|(account, tier)| Op::SetKyc(account, tier)),
        8 => (account_pick(), key_pick(), asset_pick(), deposit_pick(), 0..3_u8).prop_map(
            |(account, key, asset, amount, reference)| Op::Deposit { account, key, asset, amount, reference }
        ),
        4 => (account_pick(), key_pick(), asset_pick(), amount_pick(), 0..3_u8).prop_map(
            |(account, key, asset, amount, reference)| Op::Withdraw { account, key, asset, amount, reference }
        ),
        8 => (account_pick(), key_pick(), account_pick(), asset_pick(), amount_pick())
            .prop_map(|(by, key, to, asset, amount)| Op::Transfer { by, key, to, asset, amount }),
        10 => (account_pick(), key_pick(), account_pick(), asset_pick(), amount_pick(), expires_in()).prop_map(
            |(by, key, payee, asset, amount, expires_in)| Op::Authorize { by, key, payee, asset, amount, expires_in }
        ),
        7 => (party_pick(), key_pick(), payment_pick(), asset_choice(), amount_pick(), prop::bool::weighted(0.3))
            .prop_map(|(by, key, payment, asset, amount, last)| Op::Capture { by, key, payment, asset, amount, last }),
        3 => (party_pick(), key_pick(), payment_pick()).prop_map(|(by, key, payment)| Op::Void { by, key, payment }),
        4 => (account_pick(), key_pick(), asset_pick(), legs())
            .prop_map(|(by, key, asset, legs)| Op::Split { by, key, asset, legs }),
        5 => (party_pick(), key_pick(), payment_pick(), asset_choice(), amount_pick())
            .prop_map(|(by, key, payment, asset, amount)| Op::Refund { by, key, payment, asset, amount }),
        5 => (0..8_u8).prop_map(Op::Retry),
        3 => (0..8_u8, any::<u8>()).prop_map(|(back, selector)| Op::Tweak(back, selector)),
        2 => Just(Op::Tick),
    ]
}

fn stream(length: std::ops::RangeInclusive<usize>) -> impl Strategy<Value = Vec<Step>> {
    prop::collection::vec((delay(), op()).prop_map(|(delay, op)| Step { delay, op }), length)
}

// ---------------------------------------------------------------------------------
// Tests.
// ---------------------------------------------------------------------------------

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, max_shrink_iters: 4_096, ..ProptestConfig::default() })]

    /// The engine and the reference agree on every outcome, event and balance, and
    /// every invariant holds after every step.
    #[test]
    fn engine_matches_reference_ledger(steps in stream(200..=2_000)) {
        Driver::run(&steps)?;
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 12, ..ProptestConfig::default() })]

    /// The same stream gives the same events and the same state hash, step by step,
    /// on two fresh engines.
    #[test]
    fn same_stream_same_events_and_state_hash(steps in stream(200..=1_000)) {
        let driver = Driver::run_unchecked(&steps);
        let mut first = Engine::new(&config());
        let mut second = Engine::new(&config());
        let (mut first_events, mut second_events) = (Vec::new(), Vec::new());
        for command in &driver.commands {
            first.apply(command, &mut first_events);
            second.apply(command, &mut second_events);
            prop_assert_eq!(first.state_hash(), second.state_hash(), "hashes differ after seq {}", command.seq.get());
        }
        prop_assert_eq!(&first_events, &second_events);
        prop_assert_eq!(&first_events, &driver.events);
        prop_assert_eq!(first.state_hash(), driver.engine.state_hash());
    }
}

/// Applies `command` at `seq` / `timestamp` to a copy of `base`.
fn hash_after(base: &Engine, seq: u64, timestamp: u64, command: Command) -> StateHash {
    let mut engine = base.clone();
    let sequenced = SequencedCommand { seq: Seq::new(seq), timestamp: Timestamp::from_nanos(timestamp), command };
    engine.apply(&sequenced, &mut Vec::new());
    engine.state_hash()
}

/// States that differ in one thing each (a balance, a hold, a flag, a tier, an
/// account, an idempotency entry, a payment record, command time) hash differently;
/// equal states hash equally.
#[test]
fn state_hash_tells_different_states_apart() {
    let mut base = Engine::new(&config());
    let mut driver_seq = 0;
    let mut setup = |command| {
        driver_seq += 1;
        let sequenced = SequencedCommand { seq: Seq::new(driver_seq), timestamp: Timestamp::from_nanos(10), command };
        base.apply(&sequenced, &mut Vec::new());
    };
    for owner in 0..2 {
        setup(Command::OpenAccount(OpenAccount { owner: OwnerId::new(owner), kyc_tier: tier(1) }));
    }
    let (a, b) = (AccountId::new(0), AccountId::new(1));
    let (usd, eur) = (AssetId::new(0), AssetId::new(1));
    let key = IdempotencyKey::new(7);
    let deposit = |account, key, asset, units| {
        Command::Deposit(Deposit { account, key, asset, amount: amount(units), reference: reference(0) })
    };
    setup(deposit(a, IdempotencyKey::new(1), usd, 100));

    let (seq, at) = (100, 20);
    let expires_at = Timestamp::from_nanos(at + NANOS_PER_SECOND);
    let variants = [
        ("tick", Command::Tick),
        ("deposit 1 USD to a", deposit(a, key, usd, 1)),
        ("deposit 2 USD to a", deposit(a, key, usd, 2)),
        ("deposit 1 USD to b", deposit(b, key, usd, 1)),
        ("deposit 1 EUR to a", deposit(a, key, eur, 1)),
        ("deposit 1 USD to a, other key", deposit(a, IdempotencyKey::new(8), usd, 1)),
        ("rejected deposit (entry only)", deposit(a, key, usd, 0)),
        ("freeze a", Command::FreezeAccount(FreezeAccount { account: a })),
        ("kyc tier of a", Command::SetKycTier(SetKycTier { account: a, kyc_tier: tier(5) })),
        ("open account", Command::OpenAccount(OpenAccount { owner: OwnerId::new(9), kyc_tier: tier(1) })),
        ("transfer 1 a to b", Command::Transfer(Transfer { by: a, key, to: b, asset: usd, amount: amount(1) })),
        (
            "authorize 1 a to b",
            Command::Authorize(Authorize { by: a, key, payee: b, asset: usd, amount: amount(1), expires_at }),
        ),
    ];
    let mut hashes: Vec<(&str, StateHash)> =
        variants.iter().map(|(name, command)| (*name, hash_after(&base, seq, at, command.clone()))).collect();
    hashes.push(("tick, later", hash_after(&base, seq, at + 1, Command::Tick)));
    hashes.push(("tick, other seq", hash_after(&base, seq + 1, at, Command::Tick)));
    for (index, (name, hash)) in hashes.iter().enumerate() {
        for (other, other_hash) in &hashes[..index] {
            assert_ne!(hash, other_hash, "{name} and {other} hash alike");
        }
    }
    // Equal states, equal hashes: a copy, and the same command applied twice.
    assert_eq!(base.clone().state_hash(), base.state_hash());
    assert_eq!(hash_after(&base, seq, at, deposit(a, key, usd, 1)), hashes[1].1);
}

/// The reference agrees with itself on a hand-written stream whose outcomes are
/// worked out by hand: a guard against a model that agrees with the engine only
/// because both are wrong the same way.
#[test]
fn reference_ledger_follows_the_specification_by_hand() {
    let mut model = RefLedger::new();
    let at = |model: &mut RefLedger, time: u64, command: Command| model.apply(Timestamp::from_nanos(time), &command).0;
    let (a, b) = (AccountId::new(0), AccountId::new(1));
    let usd = AssetId::new(0);
    for owner in 0..2 {
        at(&mut model, 0, Command::OpenAccount(OpenAccount { owner: OwnerId::new(owner), kyc_tier: tier(0) }));
    }
    let deposit = Command::Deposit(Deposit {
        account: a,
        key: IdempotencyKey::new(1),
        asset: usd,
        amount: amount(100),
        reference: reference(0),
    });
    assert_eq!(at(&mut model, 1, deposit.clone()), Observed::Accepted(None));
    assert_eq!(at(&mut model, 2, deposit.clone()), Observed::Replayed(Outcome::Accepted { payment: None }));
    assert_eq!(model.balance(a, usd), RefBalance { available: 100, held: 0 });
    let authorize = Command::Authorize(Authorize {
        by: a,
        key: IdempotencyKey::new(2),
        payee: b,
        asset: usd,
        amount: amount(60),
        expires_at: Timestamp::from_nanos(1_000),
    });
    assert_eq!(at(&mut model, 3, authorize), Observed::Accepted(Some(PaymentId::new(1))));
    assert_eq!(model.balance(a, usd), RefBalance { available: 40, held: 60 });
    let capture = |key, units, last| {
        Command::Capture(Capture {
            by: b,
            key: IdempotencyKey::new(key),
            payment: PaymentId::new(1),
            asset: usd,
            amount: amount(units),
            last,
        })
    };
    assert_eq!(at(&mut model, 4, capture(3, 61, false)), Observed::Rejected(RejectReason::ExceedsAuthorization));
    assert_eq!(at(&mut model, 5, capture(4, 20, false)), Observed::Accepted(Some(PaymentId::new(1))));
    assert_eq!(model.balance(a, usd), RefBalance { available: 40, held: 40 });
    assert_eq!(model.balance(b, usd), RefBalance { available: 20, held: 0 });
    // Expiry at exactly `expires_at` releases the remaining 40.
    assert_eq!(at(&mut model, 1_000, Command::Tick), Observed::Accepted(None));
    assert_eq!(model.balance(a, usd), RefBalance { available: 80, held: 0 });
    assert_eq!(at(&mut model, 1_001, capture(5, 1, false)), Observed::Rejected(RejectReason::AuthorizationExpired));
    let refund = |key, units| {
        Command::Refund(Refund {
            by: b,
            key: IdempotencyKey::new(key),
            payment: PaymentId::new(1),
            asset: usd,
            amount: amount(units),
        })
    };
    assert_eq!(at(&mut model, 1_002, refund(6, 21)), Observed::Rejected(RejectReason::ExceedsRefundable));
    assert_eq!(at(&mut model, 1_003, refund(7, 20)), Observed::Accepted(None));
    assert_eq!(model.balance(a, usd), RefBalance { available: 100, held: 0 });
    // The deposit's key is forgotten one retention after it was recorded, so the same
    // command runs again.
    let forgotten = 1 + IDEMPOTENCY_RETENTION.as_nanos();
    assert_eq!(at(&mut model, forgotten, deposit), Observed::Accepted(None));
    assert_eq!(model.balance(a, usd), RefBalance { available: 200, held: 0 });
}

/// The stream strategy reaches every outcome the differential test is meant to
/// compare: a coverage check on the generator itself, on fixed seeds.
#[test]
fn random_streams_reach_every_outcome() {
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    let mut tally: BTreeMap<String, usize> = BTreeMap::new();
    let mut expiries = 0;
    for _ in 0..8 {
        let steps = stream(1_500..=1_500).new_tree(&mut runner).expect("strategy generates").current();
        let driver = Driver::run_unchecked(&steps);
        for (name, count) in driver.tally {
            *tally.entry(name).or_default() += count;
        }
        expiries += driver.events.iter().filter(|event| matches!(event, Event::AuthorizationExpired { .. })).count();
    }
    let wanted = [
        "Deposit accepted",
        "Deposit InvalidAmount",
        "Deposit UnknownAsset",
        "Deposit AccountFrozen",
        "Deposit Overflow",
        "Deposit replayed",
        "Deposit IdempotencyConflict",
        "Withdraw accepted",
        "Withdraw InsufficientFunds",
        "Transfer accepted",
        "Transfer SameAccount",
        "Transfer UnknownAccount",
        "Transfer InsufficientFunds",
        "Transfer AccountFrozen",
        "Authorize accepted",
        "Authorize InvalidExpiry",
        "Authorize InsufficientFunds",
        "Capture accepted",
        "Capture replayed",
        "Capture UnknownPayment",
        "Capture NotAnAuthorization",
        "Capture NotParty",
        "Capture AuthorizationExpired",
        "Capture AuthorizationClosed",
        "Capture AssetMismatch",
        "Capture ExceedsAuthorization",
        "Void accepted",
        "Void AuthorizationExpired",
        "Void AuthorizationClosed",
        "SplitPayment accepted",
        "SplitPayment TooManyLegs",
        "SplitPayment DuplicatePayee",
        "SplitPayment SameAccount",
        "SplitPayment InsufficientFunds",
        "SplitPayment IdempotencyConflict",
        "Refund accepted",
        "Refund NotRefundable",
        "Refund ExceedsRefundable",
        "Refund InsufficientFunds",
        "Refund NotParty",
        "FreezeAccount UnknownAccount",
        "key forgotten at this command, then run again",
        "payment records aged out",
    ];
    let missing: Vec<&str> = wanted.iter().copied().filter(|name| !tally.contains_key(*name)).collect();
    assert!(missing.is_empty(), "never reached: {missing:?}\ntally: {tally:#?}");
    assert!(expiries > 0, "no authorization ever expired");
    println!("expiries: {expiries}\ntally: {tally:#?}");
}

/// Applies `commands` one by one (seq 1, 2, ..., at the time given with each) to a
/// fresh engine and a fresh reference, and returns what each came to on each side:
/// (engine, reference).
fn timed_outcomes_side_by_side(commands: &[(u64, Command)]) -> Vec<(Observed, Observed)> {
    let mut engine = Engine::new(&config());
    let mut model = RefLedger::new();
    let mut seq = 0;
    commands
        .iter()
        .map(|(time, command)| {
            seq += 1;
            let mut events = Vec::new();
            let timestamp = Timestamp::from_nanos(*time);
            let sequenced = SequencedCommand { seq: Seq::new(seq), timestamp, command: command.clone() };
            engine.apply(&sequenced, &mut events);
            engine.check_invariants();
            (observed_from_events(&events), model.apply(timestamp, command).0)
        })
        .collect()
}

/// `timed_outcomes_side_by_side`, every command at time 0.
fn outcomes_side_by_side(commands: &[Command]) -> Vec<(Observed, Observed)> {
    let timed: Vec<(u64, Command)> = commands.iter().map(|command| (0, command.clone())).collect();
    timed_outcomes_side_by_side(&timed)
}

fn open(owner: u64) -> Command {
    Command::OpenAccount(OpenAccount { owner: OwnerId::new(owner), kyc_tier: tier(0) })
}

fn split(by: u32, key: u128, legs: &[(u32, u64)]) -> Command {
    Command::SplitPayment(SplitPayment {
        by: AccountId::new(by),
        key: IdempotencyKey::new(key),
        asset: AssetId::new(0),
        legs: legs
            .iter()
            .map(|&(payee, units)| SplitLeg { payee: AccountId::new(payee), amount: amount(units) })
            .collect(),
    })
}

/// Regression (engine bug, found by `engine_matches_reference_ledger`): a split payment
/// whose legs add up past `AMOUNT_MAX` is refused with `InsufficientFunds` inside the
/// per-leg loop, as soon as the running total overflows, so an unknown or frozen payee
/// in a later leg, and a frozen payer, are reported as `InsufficientFunds` instead of
/// the `UnknownAccount` / `AccountFrozen` the specified order (every payee, then the
/// payer's freeze, then funds) gives. Shrunk reproduction: freeze account 3, then
/// account 4 splits `[(0, AMOUNT_MAX), (1, 1), (3, 1)]`.
#[test]
fn split_payment_checks_every_payee_and_the_payer_before_an_overflowing_total() {
    let (a, b, c, d) = (0, 1, 2, 3);
    let freeze = |account| Command::FreezeAccount(FreezeAccount { account: AccountId::new(account) });
    let setup = || (0..4).map(open).collect::<Vec<_>>();
    let cases = [
        (
            "later payee frozen",
            vec![freeze(d)],
            split(a, 1, &[(b, AMOUNT_MAX), (c, 1), (d, 1)]),
            RejectReason::AccountFrozen,
        ),
        ("later payee unknown", vec![], split(a, 1, &[(b, AMOUNT_MAX), (c, 1), (99, 1)]), RejectReason::UnknownAccount),
        ("payer frozen", vec![freeze(a)], split(a, 1, &[(b, AMOUNT_MAX), (c, 1)]), RejectReason::AccountFrozen),
    ];
    let mut failures = Vec::new();
    for (name, before, command, expected) in cases {
        let mut commands = setup();
        commands.extend(before);
        commands.push(command);
        let (engine, reference) = *outcomes_side_by_side(&commands).last().expect("one command at least");
        assert_eq!(reference, Observed::Rejected(expected), "{name}: the reference follows the specification");
        if engine != reference {
            failures.push(format!("{name}: engine {engine:?}, specification {reference:?}"));
        }
    }
    assert!(failures.is_empty(), "split payment rejection order:\n{}", failures.join("\n"));
}

/// Regression (engine bug, fixed in 3ff1b4a): the fingerprint of a split payment
/// covered only its first `SPLIT_LEGS_MAX` legs, so a reused key whose command differed
/// only in a later leg was replayed instead of refused as a conflict. Checked past the
/// limit and past the length where the fingerprint buffer chains.
#[test]
fn split_payment_retry_differing_in_a_late_leg_is_a_conflict() {
    for legs_count in [SPLIT_LEGS_MAX + 1, 2 * SPLIT_LEGS_MAX + 8] {
        let legs: Vec<(u32, u64)> = (0..legs_count).map(|index| (1 + index as u32, 1)).collect();
        let mut changed = legs.clone();
        changed.last_mut().expect("legs").1 = 2;
        let commands = [open(0), open(1), split(0, 9, &legs), split(0, 9, &changed), split(0, 9, &legs)];
        let outcomes = outcomes_side_by_side(&commands);
        let conflict = Observed::Rejected(RejectReason::IdempotencyConflict);
        let replay = Observed::Replayed(Outcome::Rejected(RejectReason::TooManyLegs));
        assert_eq!(
            outcomes[2],
            (Observed::Rejected(RejectReason::TooManyLegs), Observed::Rejected(RejectReason::TooManyLegs))
        );
        assert_eq!(outcomes[3], (conflict, conflict), "{legs_count} legs, last one changed");
        assert_eq!(outcomes[4], (replay, replay), "{legs_count} legs, unchanged");
    }
}

/// Payment records are kept `limits::PAYMENT_RETENTION` of command time after they are
/// made, then forgotten (`limits` documents this; the random streams rarely land on
/// the exact instant): a refund a nanosecond before works, one at exactly the
/// retention names an unknown payment.
#[test]
fn payment_records_age_out_at_exactly_the_retention() {
    let (a, b, usd) = (AccountId::new(0), AccountId::new(1), AssetId::new(0));
    let made_at = 5;
    let retention = PAYMENT_RETENTION.as_nanos();
    let refund = |key, time| {
        let refund =
            Refund { by: b, key: IdempotencyKey::new(key), payment: PaymentId::new(1), asset: usd, amount: amount(1) };
        (time, Command::Refund(refund))
    };
    let deposit =
        Deposit { account: a, key: IdempotencyKey::new(1), asset: usd, amount: amount(100), reference: reference(0) };
    let transfer = Transfer { by: a, key: IdempotencyKey::new(2), to: b, asset: usd, amount: amount(10) };
    let commands = [
        (0, open(0)),
        (0, open(1)),
        (0, Command::Deposit(deposit)),
        (made_at, Command::Transfer(transfer)),
        refund(3, made_at + retention - 1),
        refund(4, made_at + retention),
    ];
    let outcomes = timed_outcomes_side_by_side(&commands);
    let paid = Observed::Accepted(Some(PaymentId::new(1)));
    let unknown = Observed::Rejected(RejectReason::UnknownPayment);
    assert_eq!(outcomes[3], (paid, paid));
    assert_eq!(outcomes[4], (Observed::Accepted(None), Observed::Accepted(None)), "kept until the retention");
    assert_eq!(outcomes[5], (unknown, unknown), "forgotten at exactly the retention");
}

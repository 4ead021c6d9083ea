//! Durability of snapshots, recovery and the runtime (STYLE §12–13), in memory
//! wherever it can be (`MemStorage`), on real files where the mapping matters.
//!
//! - Snapshots: a written and reloaded engine (quotes included) has the live one's
//!   state hash and behaves the same; a bit flip anywhere or a cut in the newest snapshot falls back
//!   to the one before and names the file; stale `.tmp` files are ignored and pruned;
//!   only the newest `keep` are kept.
//! - Recovery: snapshot + journal replay equals the live engine over random command
//!   streams (proptest), with the journal alone too, checkpoints verified; a wrong
//!   checkpoint is `Diverged` at its sequence; a journal that starts after the
//!   snapshot is a `Gap`, one that starts before it is fine; a read-only recovery of
//!   a torn journal stops at the tear; a snapshot past the journal's end is refused.
//! - Runtime: every token comes back once, in order, with the events an independent
//!   engine gives; snapshots every N commands and at shutdown, each followed by its
//!   checkpoint; a restart recovers the same state; a power cut of its storage (while
//!   it runs, or after a failed sync left a batch unsynced) loses nothing acknowledged
//!   in `Sync` mode, and never leaves a snapshot ahead of the journal in `Batch` mode.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bourse_core::book::{ClientOrderId, MarketId, OrderId, Price, Qty, Side, TimeInForce};
use bourse_core::command::{
    AmendOrder, Authorize, CancelAll, CancelOrder, Capture, Command, CommandKind, CrossBorderAmount, Deposit,
    ExecuteQuote, FreezeAccount, OpenAccount, OrderRef, OrderSize, PayCrossBorder, PlaceOrder, QuotePayment, RateLimit,
    Refund, SequencedCommand, SetKycTier, SplitLeg, SplitPayment, Transfer, UnfreezeAccount, Void, Withdraw,
};
use bourse_core::config::Config;
use bourse_core::event::Event;
use bourse_core::ids::{
    AccountId, AssetId, IdempotencyKey, KycTier, OwnerId, PaymentId, QuoteId, Reference, Seq, Timestamp,
};
use bourse_core::limits::{NANOS_PER_DAY, NANOS_PER_SECOND};
use bourse_core::money::Amount;
use bourse_core::{Capacity, Engine, StateHash};
use bourse_journal::codec::{Checkpoint, command_kind, decode_command, encode_command};
use bourse_journal::record::KIND_CHECKPOINT;
use bourse_journal::{
    Durability, Faults, FileStorage, JournalConfig, JournalError, JournalWriter, MemStorage, Storage, open_and_check,
    read_from,
};
use bourse_snapshots::runtime::TOKEN_INTERNAL;
use bourse_snapshots::snapshot::{parse_snapshot_name, snapshot_name};
use bourse_snapshots::{
    AppliedBatch, DataStores, RecoveryError, Runtime, RuntimeConfig, Token, list_snapshots, load_newest, load_snapshot,
    recover, write_snapshot,
};
use crossbeam_channel::{Receiver, RecvTimeoutError, unbounded};
use proptest::prelude::*;
use proptest::sample::Index;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

// ---------------------------------------------------------------------------------
// The world: two assets, one market, a handful of accounts, and a command mix.
// ---------------------------------------------------------------------------------

const CONFIG: &str = r#"
[[assets]]
code = "BTC"
scale = 8
[[assets]]
code = "USD"
scale = 2
[[markets]]
base = "BTC"
quote = "USD"
lot = 10000
tick = 1
qty_min = 1
qty_max = 1000000
fees = [{ maker_bps = 10, taker_bps = 20 }, { maker_bps = 5, taker_bps = 10 }]
"#;

/// Accounts the prelude opens; command mixes name ids up to `ACCOUNTS_NAMED - 1`, so
/// some name accounts that do not exist (until an `OpenAccount` makes them).
const PRELUDE_ACCOUNTS: u32 = 5;
const ACCOUNTS_NAMED: u32 = 7;
/// Bounds every wait on the runtime.
const WAIT: Duration = Duration::from_secs(20);

fn config() -> Config {
    Config::from_toml_str(CONFIG).unwrap()
}

fn journal_config(durability: Durability) -> JournalConfig {
    // The smallest segment that holds a largest record, so that rolls happen.
    JournalConfig { segment_bytes: 72 * 1024, durability }
}

fn mem_stores() -> (MemStorage, MemStorage, DataStores) {
    let (journal, snapshots) = (MemStorage::new(), MemStorage::new());
    let stores = DataStores { journal: Arc::new(journal.clone()), snapshots: Arc::new(snapshots.clone()) };
    (journal, snapshots, stores)
}

fn amount(minor_units: u64) -> Amount {
    Amount::new(minor_units).unwrap()
}

fn account(index: u32) -> AccountId {
    AccountId::new(index % ACCOUNTS_NAMED)
}

/// Keys from a small range, so that retries (replays) and reuse (conflicts) happen.
fn key(value: u64) -> IdempotencyKey {
    IdempotencyKey::new(u128::from(value % 40))
}

/// Accounts with money in both assets: what every stream starts with.
fn prelude() -> Vec<Command> {
    let mut commands = Vec::new();
    for owner in 0..PRELUDE_ACCOUNTS {
        let kyc_tier = KycTier::new((owner % 2) as u8).unwrap();
        commands.push(Command::OpenAccount(OpenAccount { owner: OwnerId::new(u64::from(owner) + 100), kyc_tier }));
    }
    for index in 0..PRELUDE_ACCOUNTS {
        for (asset, minor_units) in [(0, 10_000_000_000), (1, 100_000_000)] {
            commands.push(Command::Deposit(Deposit {
                account: AccountId::new(index),
                key: IdempotencyKey::new(1_000 + u128::from(index) * 2 + u128::from(asset)),
                asset: AssetId::new(asset),
                amount: amount(minor_units),
                reference: Reference::new("prelude").unwrap(),
            }));
        }
    }
    commands
}

/// One random step of a stream: which command (`pick`), its raw parameters, and how
/// far command time jumps before it.
#[derive(Clone, Copy, Debug)]
struct Op {
    pick: u8,
    a: u32,
    b: u32,
    c: u64,
    jump: u8,
}

fn op() -> impl Strategy<Value = Op> {
    (any::<u8>(), any::<u32>(), any::<u32>(), any::<u64>(), any::<u8>()).prop_map(|(pick, a, b, c, jump)| Op {
        pick,
        a,
        b,
        c,
        jump,
    })
}

fn random_op(rng: &mut ChaCha8Rng) -> Op {
    Op { pick: rng.random(), a: rng.random(), b: rng.random(), c: rng.random(), jump: rng.random() }
}

impl Op {
    /// Nanoseconds of command time before this step: mostly a microsecond, sometimes
    /// an hour, now and then two days (authorizations and idempotency keys expire).
    fn time_step(self) -> u64 {
        match self.jump % 32 {
            0 => 2 * NANOS_PER_DAY,
            1..=3 => 3_600 * NANOS_PER_SECOND,
            _ => 1_000,
        }
    }

    /// The command, for a command time of `now` (authorization expiries are relative
    /// to it). Good and bad ones: unknown accounts, assets, markets and payments,
    /// zero amounts, reused keys, crossing and resting orders.
    fn command(self, now: u64) -> Command {
        let Op { pick, a, b, c, .. } = self;
        let by = account(a);
        let order_id = OrderId::new(c % 60);
        match pick % 23 {
            0 => Command::OpenAccount(OpenAccount {
                owner: OwnerId::new(u64::from(a)),
                kyc_tier: KycTier::new((b % 3) as u8).unwrap(),
            }),
            1 | 2 => Command::Deposit(Deposit {
                account: by,
                key: key(c),
                asset: AssetId::new((b % 3) as u16),
                amount: amount(c % 100_000),
                reference: Reference::new("wire").unwrap(),
            }),
            3 => Command::Withdraw(Withdraw {
                account: by,
                key: key(c),
                asset: AssetId::new((b % 2) as u16),
                amount: amount(c % 50_000),
                reference: Reference::new("out").unwrap(),
            }),
            4 | 5 => Command::Transfer(Transfer {
                by,
                key: key(c),
                to: account(b),
                asset: AssetId::new(((c >> 8) % 2) as u16),
                amount: amount((c >> 12) % 20_000),
            }),
            6 => Command::Authorize(Authorize {
                by,
                key: key(c),
                payee: account(b),
                asset: AssetId::new(1),
                amount: amount((c >> 8) % 5_000),
                expires_at: Timestamp::from_nanos(now + 1 + (c >> 16) % (2 * NANOS_PER_DAY)),
            }),
            7 => Command::Capture(Capture {
                by,
                key: key(c),
                payment: PaymentId::new((c >> 8) % 30),
                asset: AssetId::new(1),
                amount: amount((c >> 16) % 3_000),
                last: b % 2 == 0,
            }),
            8 => Command::Void(Void { by, key: key(c), payment: PaymentId::new((c >> 8) % 30) }),
            9 => Command::Refund(Refund {
                by,
                key: key(c),
                payment: PaymentId::new((c >> 8) % 30),
                asset: AssetId::new((b % 2) as u16),
                amount: amount((c >> 16) % 2_000),
            }),
            10 => Command::SplitPayment(SplitPayment {
                by,
                key: key(c),
                asset: AssetId::new(1),
                legs: (0..=b % 3)
                    .map(|leg| SplitLeg { payee: account(a + 1 + leg), amount: amount((c >> (8 * leg)) % 1_000) })
                    .collect(),
            }),
            11..=13 => Command::PlaceOrder(PlaceOrder {
                by,
                market: MarketId::new(u32::from(c % 16 == 0)),
                side: if b % 2 == 0 { Side::Buy } else { Side::Sell },
                price: Price::new(95 + (c >> 8) % 11),
                size: OrderSize::Qty(Qty::new((c >> 16) % 20).unwrap()),
                time_in_force: TimeInForce::Gtc,
                post_only: (c >> 24) % 8 == 0,
                stp: None,
                client_order_id: ClientOrderId::new(u128::from((c >> 32) % 50)),
            }),
            14 => {
                let market_order = (c >> 40) % 2 == 0;
                let side = if b % 2 == 0 { Side::Buy } else { Side::Sell };
                let size = if market_order && side == Side::Buy && (c >> 44) % 2 == 0 {
                    OrderSize::QuoteBudget(amount((c >> 16) % 5_000))
                } else {
                    OrderSize::Qty(Qty::new((c >> 16) % 30).unwrap())
                };
                Command::PlaceOrder(PlaceOrder {
                    by,
                    market: MarketId::new(0),
                    side,
                    price: if market_order { None } else { Price::new(95 + (c >> 8) % 11) },
                    size,
                    time_in_force: if (b >> 1) % 2 == 0 { TimeInForce::Ioc } else { TimeInForce::Fok },
                    post_only: false,
                    stp: None,
                    client_order_id: None,
                })
            }
            15 => Command::CancelOrder(CancelOrder {
                by,
                order: match ClientOrderId::new(u128::from((c >> 8) % 50)) {
                    Some(client) if b % 2 == 0 => OrderRef::Client(client),
                    _ => OrderRef::Id(order_id),
                },
            }),
            16 => Command::CancelAll(CancelAll { by, market: (b % 2 == 0).then(|| MarketId::new(0)) }),
            17 => Command::AmendOrder(AmendOrder {
                by,
                order: OrderRef::Id(order_id),
                price: if b % 3 == 0 { None } else { Price::new(95 + (c >> 8) % 11) },
                qty: if b % 3 == 1 { None } else { Qty::new((c >> 16) % 25) },
            }),
            18 if b % 4 == 0 => Command::FreezeAccount(FreezeAccount { account: by }),
            18 => Command::UnfreezeAccount(UnfreezeAccount { account: by }),
            20 => Command::QuotePayment(QuotePayment {
                by,
                payee: account(b),
                from: AssetId::new((c % 3) as u16),
                to: AssetId::new(((c >> 2) % 3) as u16),
                amount: cross_border_amount(c),
                max_hops: ((c >> 24) % 4 != 0).then_some(((c >> 26) % 4) as u8),
                ttl: ((c >> 28) % 2 == 0).then(|| Timestamp::from_nanos(((c >> 30) % 400) * NANOS_PER_SECOND)),
            }),
            21 => Command::ExecuteQuote(ExecuteQuote { by, key: key(c), quote: QuoteId::new((c >> 8) % 30) }),
            22 => Command::PayCrossBorder(PayCrossBorder {
                by,
                key: key(c),
                payee: account(b),
                from: AssetId::new((c % 3) as u16),
                to: AssetId::new(((c >> 2) % 3) as u16),
                amount: cross_border_amount(c),
                limit: if (c >> 24) % 2 == 0 {
                    RateLimit::MinReceive(amount((c >> 28) % 3_000))
                } else {
                    RateLimit::MaxSend(amount((c >> 28) % 300_000))
                },
                max_hops: None,
            }),
            _ if b % 2 == 0 => Command::Tick,
            _ => Command::SetKycTier(SetKycTier { account: by, kyc_tier: KycTier::new((c % 10) as u8).unwrap() }),
        }
    }
}

/// A cross-border amount from random bits: send or receive, sometimes zero.
fn cross_border_amount(c: u64) -> CrossBorderAmount {
    let minor_units = amount((c >> 4) % 200_000);
    if (c >> 3).is_multiple_of(2) {
        CrossBorderAmount::Send(minor_units)
    } else {
        CrossBorderAmount::Receive(minor_units)
    }
}

/// A deterministic stream for the runtime, whose clock is the wall clock: expiries
/// are set relative to now.
fn workload(count: usize, seed: u64) -> Vec<Command> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos() as u64;
    let mut commands = prelude();
    while commands.len() < count {
        commands.push(random_op(&mut rng).command(now));
    }
    commands.truncate(count);
    commands
}

fn apply(engine: &mut Engine, seq: Seq, timestamp: Timestamp, command: &Command) -> Vec<Event> {
    let mut out = Vec::new();
    engine.apply(&SequencedCommand { seq, timestamp, command: command.clone() }, &mut out);
    out
}

/// An engine run the way the runtime runs it, on the thread of the test: each command
/// journaled (and committed) first, then applied with the same sequence number and
/// time; a snapshot is `export_state` + `write_snapshot` + a checkpoint record.
struct Live {
    engine: Engine,
    writer: JournalWriter,
    stores: DataStores,
    now: u64,
    payload: Vec<u8>,
}

impl Live {
    fn new(stores: &DataStores) -> Self {
        let report = open_and_check(&stores.journal, true).unwrap();
        let writer = JournalWriter::new(stores.journal.clone(), journal_config(Durability::Sync), &report).unwrap();
        Self { engine: Engine::new(&config()), writer, stores: stores.clone(), now: 1_000_000, payload: Vec::new() }
    }

    fn run(&mut self, command: &Command, time_step: u64) -> Vec<Event> {
        self.now += time_step;
        let timestamp = Timestamp::from_nanos(self.now);
        encode_command(command, &mut self.payload);
        let seq = self.writer.append(timestamp, command_kind(command), &self.payload).unwrap();
        self.writer.commit().unwrap();
        apply(&mut self.engine, seq, timestamp, command)
    }

    fn run_op(&mut self, op: Op) -> Vec<Event> {
        let command = op.command(self.now + op.time_step());
        self.run(&command, op.time_step())
    }

    fn run_prelude(&mut self) {
        for command in prelude() {
            self.run(&command, 1_000);
        }
    }

    /// A snapshot of the engine as it stands, and its checkpoint in the journal.
    fn snapshot(&mut self, keep: usize) -> (String, Seq) {
        let seq = self.engine.last_seq().unwrap();
        let hash = self.engine.state_hash();
        let written = write_snapshot(&self.stores.snapshots, seq, hash, &self.engine.export_state(), keep).unwrap();
        self.checkpoint(Checkpoint::new(seq, hash));
        (written.name, seq)
    }

    fn checkpoint(&mut self, checkpoint: Checkpoint) -> Seq {
        checkpoint.encode(&mut self.payload);
        let seq = self.writer.append(Timestamp::from_nanos(self.now), KIND_CHECKPOINT, &self.payload).unwrap();
        self.writer.commit().unwrap();
        seq
    }
}

fn recover_stores(stores: &DataStores) -> Result<bourse_snapshots::Recovered, RecoveryError> {
    recover(stores, &config(), Capacity::default(), true, |_| {})
}

/// Every command record of the journal, in order.
fn journal_commands(journal: &Arc<dyn Storage>) -> Vec<SequencedCommand> {
    let mut commands = Vec::new();
    read_from::<JournalError>(journal, Seq::new(1), |record| {
        if record.kind != KIND_CHECKPOINT {
            let command = decode_command(record.seq, record.kind, record.payload)?;
            commands.push(SequencedCommand { seq: record.seq, timestamp: record.timestamp, command });
        }
        Ok(())
    })
    .unwrap();
    commands
}

/// An engine fed every command of the journal from empty, through nothing but
/// `Engine::apply`: the reference recovery is compared with.
fn replay_from_empty(journal: &Arc<dyn Storage>) -> Engine {
    let mut engine = Engine::new(&config());
    let mut out = Vec::new();
    for command in journal_commands(journal) {
        out.clear();
        engine.apply(&command, &mut out);
    }
    engine
}

/// An engine with every kind of state a snapshot must carry: accounts, balances and
/// holds, open authorizations, idempotency entries, resting orders on both sides.
fn rich_engine(seed: u64, steps: usize) -> (Engine, Vec<(Seq, Timestamp, Command)>) {
    let mut engine = Engine::new(&config());
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut now = 1_000_000;
    let mut history = Vec::new();
    let mut commands: Vec<(u64, Command)> = prelude().into_iter().map(|command| (1_000, command)).collect();
    for _ in 0..steps {
        let op = random_op(&mut rng);
        commands.push((op.time_step(), op.command(now + op.time_step())));
        now += op.time_step();
    }
    let mut run = |engine: &mut Engine, seq: u64, now: u64, command: Command| {
        let (seq, timestamp) = (Seq::new(seq), Timestamp::from_nanos(now));
        apply(engine, seq, timestamp, &command);
        history.push((seq, timestamp, command));
    };
    now = 1_000_000;
    let mut seq = 0;
    for (step, command) in commands {
        now += step;
        seq += 1;
        run(&mut engine, seq, now, command);
    }
    // Make sure of an open authorization and orders resting on both sides.
    let extra = [
        Command::Authorize(Authorize {
            by: AccountId::new(1),
            key: IdempotencyKey::new(7_000),
            payee: AccountId::new(2),
            asset: AssetId::new(1),
            amount: amount(1_234),
            expires_at: Timestamp::from_nanos(now + NANOS_PER_DAY),
        }),
        Command::PlaceOrder(PlaceOrder {
            by: AccountId::new(3),
            market: MarketId::new(0),
            side: Side::Buy,
            price: Price::new(50),
            size: OrderSize::Qty(Qty::new(3).unwrap()),
            time_in_force: TimeInForce::Gtc,
            post_only: true,
            stp: None,
            client_order_id: ClientOrderId::new(9_001),
        }),
        Command::PlaceOrder(PlaceOrder {
            by: AccountId::new(4),
            market: MarketId::new(0),
            side: Side::Sell,
            price: Price::new(500),
            size: OrderSize::Qty(Qty::new(4).unwrap()),
            time_in_force: TimeInForce::Gtc,
            post_only: true,
            stp: None,
            client_order_id: ClientOrderId::new(9_002),
        }),
    ];
    for command in extra {
        now += 1_000;
        seq += 1;
        run(&mut engine, seq, now, command);
    }
    // And of a quote, by a new account (so neither frozen nor resting an order).
    let payer = AccountId::new(engine.account_count() as u32);
    let quote = QuotePayment {
        by: payer,
        payee: AccountId::new(2),
        from: AssetId::new(0),
        to: AssetId::new(1),
        amount: CrossBorderAmount::Receive(amount(90)),
        max_hops: None,
        ttl: None,
    };
    let owner = OwnerId::new(7_777);
    let kyc_tier = KycTier::new(0).unwrap();
    for command in [Command::OpenAccount(OpenAccount { owner, kyc_tier }), Command::QuotePayment(quote)] {
        now += 1_000;
        seq += 1;
        run(&mut engine, seq, now, command);
    }
    engine.check_invariants();
    (engine, history)
}

fn assert_rich(engine: &Engine) {
    let state = engine.export_state();
    assert!(engine.account_count() >= PRELUDE_ACCOUNTS as usize);
    assert!(state.payments.iter().any(|payment| payment.state == 1), "an open authorization");
    assert!(engine.idempotency_entries() > 0, "idempotency entries");
    assert!(state.orders.iter().any(|order| order.side == 0), "a resting bid");
    assert!(state.orders.iter().any(|order| order.side == 1), "a resting ask");
    assert!(!state.quotes.is_empty(), "a quote");
}

/// The same commands after the snapshot give the same events on both engines.
fn assert_same_future(live: &Engine, loaded: &Engine, seed: u64) {
    let (mut live, mut loaded) = (live.clone(), loaded.clone());
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut seq = live.last_seq().unwrap().get();
    let mut now = live.now().as_nanos();
    for _ in 0..200 {
        let op = random_op(&mut rng);
        now += op.time_step();
        seq += 1;
        let command = op.command(now);
        let (seq, timestamp) = (Seq::new(seq), Timestamp::from_nanos(now));
        assert_eq!(
            apply(&mut loaded, seq, timestamp, &command),
            apply(&mut live, seq, timestamp, &command),
            "command {seq:?}: {command:?}"
        );
    }
    assert_eq!(loaded.state_hash(), live.state_hash());
    loaded.check_invariants();
}

// ---------------------------------------------------------------------------------
// 1. Snapshot round trip.
// ---------------------------------------------------------------------------------

#[test]
fn a_snapshot_round_trip_keeps_the_state_hash_in_memory_and_on_files() {
    let dir = tempfile::tempdir().unwrap();
    let storages: [(&str, Arc<dyn Storage>); 2] = [
        ("memory", Arc::new(MemStorage::new())),
        ("files", Arc::new(FileStorage::new(dir.path().join("snapshots")).unwrap())),
    ];
    for (label, storage) in storages {
        for (seed, steps) in [(1, 0), (2, 300), (3, 1_500)] {
            let (engine, _) = rich_engine(seed, steps);
            assert_rich(&engine);
            let seq = engine.last_seq().unwrap();
            let written = write_snapshot(&storage, seq, engine.state_hash(), &engine.export_state(), 3).unwrap();
            assert_eq!(written.name, snapshot_name(seq));
            assert_eq!(written.header.seq, seq);
            assert_eq!(written.bytes, storage.open(&written.name).unwrap().len(), "{label}");
            let loaded = load_snapshot(&storage, &written.name, Capacity::default()).unwrap();
            assert_eq!(loaded.header.seq, seq, "{label}");
            assert_eq!(loaded.engine.state_hash(), engine.state_hash(), "{label}, seed {seed}");
            assert_eq!(loaded.engine.export_state(), engine.export_state(), "{label}, seed {seed}");
            assert_eq!(loaded.engine.last_seq(), engine.last_seq());
            assert_eq!(loaded.engine.now(), engine.now());
            loaded.engine.check_invariants();
            assert_same_future(&engine, &loaded.engine, seed);
        }
        let (newest, failures) = load_newest(&storage, Capacity::default()).unwrap();
        assert!(failures.is_empty(), "{label}: {failures:?}");
        assert_eq!(newest.unwrap().header.seq, rich_engine(3, 1_500).0.last_seq().unwrap());
    }
}

// ---------------------------------------------------------------------------------
// 2. Faults on snapshots.
// ---------------------------------------------------------------------------------

/// Two snapshots, older and newer, in one memory storage.
struct TwoSnapshots {
    storage: MemStorage,
    shared: Arc<dyn Storage>,
    older: (String, StateHash),
    newer: (String, StateHash),
}

fn two_snapshots() -> TwoSnapshots {
    let storage = MemStorage::new();
    let shared: Arc<dyn Storage> = Arc::new(storage.clone());
    let mut names = Vec::new();
    for steps in [200, 400] {
        let (engine, _) = rich_engine(11, steps);
        let seq = engine.last_seq().unwrap();
        let written = write_snapshot(&shared, seq, engine.state_hash(), &engine.export_state(), 3).unwrap();
        names.push((written.name, engine.state_hash()));
    }
    let newer = names.pop().unwrap();
    let older = names.pop().unwrap();
    TwoSnapshots { storage, shared, older, newer }
}

impl TwoSnapshots {
    /// `load_newest` must skip the newer snapshot, name it, and load the older one.
    fn assert_falls_back(&self, what: &str) {
        let (loaded, failures) = load_newest(&self.shared, Capacity::default()).unwrap();
        let loaded = loaded.unwrap_or_else(|| panic!("{what}: the older snapshot loads"));
        assert_eq!(loaded.name, self.older.0, "{what}");
        assert_eq!(loaded.engine.state_hash(), self.older.1, "{what}");
        assert_eq!(failures.len(), 1, "{what}: {failures:?}");
        let message = failures[0].to_string();
        assert!(message.contains(&self.newer.0), "{what}: the failure names the file: {message}");
    }

    fn assert_newest_loads(&self) {
        let (loaded, failures) = load_newest(&self.shared, Capacity::default()).unwrap();
        assert!(failures.is_empty(), "{failures:?}");
        assert_eq!(loaded.unwrap().engine.state_hash(), self.newer.1);
    }
}

#[test]
fn a_bit_flip_anywhere_in_the_newest_snapshot_falls_back_to_the_one_before() {
    let snapshots = two_snapshots();
    snapshots.assert_newest_loads();
    let len = snapshots.storage.contents(&snapshots.newer.0).unwrap().len();
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    // Every byte of the header, the first and last bytes of the payload, and a sample
    // of the rest.
    let mut offsets: Vec<usize> = (0..64).chain([64, 65, len - 2, len - 1]).collect();
    offsets.extend((0..300).map(|_| rng.random_range(64..len)));
    for offset in offsets {
        let bit = rng.random_range(0..8);
        snapshots.storage.flip_bit(&snapshots.newer.0, offset, bit);
        snapshots.assert_falls_back(&format!("bit {bit} of byte {offset} of {len}"));
        snapshots.storage.flip_bit(&snapshots.newer.0, offset, bit);
    }
    snapshots.assert_newest_loads();
}

#[test]
fn a_truncated_newest_snapshot_falls_back_to_the_one_before() {
    let snapshots = two_snapshots();
    let original = snapshots.storage.contents(&snapshots.newer.0).unwrap();
    let len = original.len();
    for cut in [0, 1, 40, 63, 64, 65, len / 2, len - 8, len - 1] {
        snapshots.storage.truncate(&snapshots.newer.0, cut);
        snapshots.assert_falls_back(&format!("cut to {cut} of {len} bytes"));
        // Put it back whole.
        snapshots.shared.remove(&snapshots.newer.0).unwrap();
        let mut file = snapshots.shared.create(&snapshots.newer.0, len as u64).unwrap();
        file.write(0, &original).unwrap();
        file.sync(0, len as u64).unwrap();
        snapshots.assert_newest_loads();
    }
}

#[test]
fn corrupt_snapshot_files_on_disk_fall_back_too() {
    let dir = tempfile::tempdir().unwrap();
    let shared: Arc<dyn Storage> = Arc::new(FileStorage::new(dir.path()).unwrap());
    let mut written = Vec::new();
    for steps in [100, 250] {
        let (engine, _) = rich_engine(21, steps);
        let seq = engine.last_seq().unwrap();
        written.push((write_snapshot(&shared, seq, engine.state_hash(), &engine.export_state(), 3).unwrap(), engine));
    }
    let newest = dir.path().join(&written[1].0.name);
    let original = std::fs::read(&newest).unwrap();
    let damaged = [
        ("flip in the header", {
            let mut bytes = original.clone();
            bytes[20] ^= 0x04;
            bytes
        }),
        ("flip in the payload", {
            let mut bytes = original.clone();
            let middle = bytes.len() / 2;
            bytes[middle] ^= 0x80;
            bytes
        }),
        ("cut short", original[..original.len() - 3].to_vec()),
        ("empty", Vec::new()),
    ];
    for (what, bytes) in damaged {
        std::fs::write(&newest, &bytes).unwrap();
        let (loaded, failures) = load_newest(&shared, Capacity::default()).unwrap();
        let loaded = loaded.unwrap();
        assert_eq!(loaded.name, written[0].0.name, "{what}");
        assert_eq!(loaded.engine.state_hash(), written[0].1.state_hash(), "{what}");
        assert_eq!(failures.len(), 1, "{what}");
        assert!(failures[0].to_string().contains(&newest.display().to_string()), "{what}: {}", failures[0]);
    }
    std::fs::write(&newest, &original).unwrap();
    let (loaded, failures) = load_newest(&shared, Capacity::default()).unwrap();
    assert!(failures.is_empty());
    assert_eq!(loaded.unwrap().engine.state_hash(), written[1].1.state_hash());
}

#[test]
fn a_stale_temporary_file_is_ignored_and_pruned() {
    let snapshots = two_snapshots();
    let newer_bytes = snapshots.storage.contents(&snapshots.newer.0).unwrap();
    // A crash mid-write leaves `<name>.tmp`: one of garbage and one that is a whole,
    // valid snapshot that was never renamed; both newer than any real snapshot.
    let stale = [
        (format!("{}.tmp", snapshot_name(Seq::new(900_000))), vec![0xAB; 100]),
        (format!("{}.tmp", snapshot_name(Seq::new(900_001))), newer_bytes),
        (format!("{}.tmp", snapshot_name(Seq::new(1))), Vec::new()),
    ];
    for (name, bytes) in &stale {
        let mut file = snapshots.shared.create(name, bytes.len() as u64).unwrap();
        file.write(0, bytes).unwrap();
        file.sync(0, bytes.len() as u64).unwrap();
    }
    snapshots.assert_newest_loads();
    let (engine, _) = rich_engine(11, 600);
    let seq = engine.last_seq().unwrap();
    let written = write_snapshot(&snapshots.shared, seq, engine.state_hash(), &engine.export_state(), 3).unwrap();
    for (name, _) in &stale {
        assert!(written.removed.contains(name), "{name} pruned: {:?}", written.removed);
    }
    let names = snapshots.shared.list().unwrap();
    assert!(names.iter().all(|name| parse_snapshot_name(name).is_some()), "{names:?}");
    assert_eq!(names.len(), 3, "{names:?}");
    let (loaded, failures) = load_newest(&snapshots.shared, Capacity::default()).unwrap();
    assert!(failures.is_empty());
    assert_eq!(loaded.unwrap().engine.state_hash(), engine.state_hash());
}

#[test]
fn only_the_newest_k_snapshots_are_kept() {
    let (_, history) = rich_engine(31, 120);
    for keep in [0, 1, 3] {
        let shared: Arc<dyn Storage> = Arc::new(MemStorage::new());
        let mut replayed = Engine::new(&config());
        let mut seqs = Vec::new();
        for (index, (seq, timestamp, command)) in history.iter().enumerate() {
            apply(&mut replayed, *seq, *timestamp, command);
            if index % 20 == 19 {
                let written =
                    write_snapshot(&shared, *seq, replayed.state_hash(), &replayed.export_state(), keep).unwrap();
                seqs.push(*seq);
                let kept: Vec<Seq> = list_snapshots(&shared).unwrap().into_iter().map(|(seq, _)| seq).collect();
                let expected = &seqs[seqs.len().saturating_sub(keep.max(1))..];
                assert_eq!(kept, expected, "keep {keep}");
                if seqs.len() > keep.max(1) {
                    assert_eq!(written.removed, vec![snapshot_name(seqs[seqs.len() - keep.max(1) - 1])]);
                }
            }
        }
        assert!(seqs.len() >= 6);
        let (loaded, _) = load_newest(&shared, Capacity::default()).unwrap();
        assert_eq!(loaded.unwrap().header.seq, *seqs.last().unwrap());
    }
}

// ---------------------------------------------------------------------------------
// 3. Snapshot + replay = live.
// ---------------------------------------------------------------------------------

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, failure_persistence: None, ..ProptestConfig::default() })]

    /// Two snapshots (each followed by its checkpoint) at random points of a random
    /// stream; recovery from the newest, from the one before it (the newest damaged),
    /// and from the journal alone all equal the live engine, and go on to behave like
    /// it.
    #[test]
    fn snapshot_plus_replay_equals_the_live_engine(
        ops in prop::collection::vec(op(), 1..160),
        first in any::<Index>(),
        second in any::<Index>(),
        tail in prop::collection::vec(op(), 0..30),
    ) {
        let (_, snapshot_memory, stores) = mem_stores();
        let mut live = Live::new(&stores);
        live.run_prelude();
        let first = first.index(ops.len() + 1);
        let second = first.max(second.index(ops.len() + 1));
        let mut taken = Vec::new();
        for index in 0..=ops.len() {
            if index == first {
                taken.push(live.snapshot(3));
            }
            if index == second {
                taken.push(live.snapshot(3));
            }
            if let Some(op) = ops.get(index) {
                live.run_op(*op);
            }
        }
        live.engine.check_invariants();
        let hash = live.engine.state_hash();
        let (newest_name, newest_seq) = taken[1].clone();
        let (_, oldest_seq) = taken[0];

        // From the newest snapshot.
        let recovered = recover_stores(&stores).unwrap();
        prop_assert_eq!(recovered.engine.state_hash(), hash);
        prop_assert_eq!(recovered.snapshot.clone(), Some((newest_name.clone(), newest_seq)));
        prop_assert!(recovered.snapshot_failures.is_empty());
        prop_assert_eq!(recovered.engine.last_seq(), live.engine.last_seq());
        prop_assert!(recovered.engine.reconcile().is_balanced());

        // From the journal alone.
        let alone = DataStores { journal: stores.journal.clone(), snapshots: Arc::new(MemStorage::new()) };
        let from_journal = recover_stores(&alone).unwrap();
        prop_assert_eq!(from_journal.engine.state_hash(), hash);
        prop_assert!(from_journal.snapshot.is_none());
        prop_assert_eq!(from_journal.checkpoints_verified, if oldest_seq == newest_seq { 1 } else { 2 });

        // From the older snapshot, the newer one damaged: the checkpoint after it is
        // verified on the way.
        if oldest_seq != newest_seq {
            let len = snapshot_memory.contents(&newest_name).unwrap().len();
            snapshot_memory.flip_bit(&newest_name, len / 2, 3);
            let fallen_back = recover_stores(&stores).unwrap();
            prop_assert_eq!(fallen_back.engine.state_hash(), hash);
            prop_assert_eq!(fallen_back.snapshot.as_ref().map(|(_, seq)| *seq), Some(oldest_seq));
            prop_assert_eq!(fallen_back.snapshot_failures.len(), 1);
            prop_assert!(fallen_back.checkpoints_verified >= 1);
            snapshot_memory.flip_bit(&newest_name, len / 2, 3);
        }

        // The recovered engine goes on exactly like the live one.
        let mut continued = recovered.engine;
        for op in tail {
            let events = live.run_op(op);
            let last = live.engine.last_seq().unwrap();
            let command = op.command(live.now);
            prop_assert_eq!(apply(&mut continued, last, live.engine.now(), &command), events);
        }
        prop_assert_eq!(continued.state_hash(), live.engine.state_hash());
        continued.check_invariants();
    }
}

/// A live engine over a journal long enough to roll over several segments.
fn long_journal(commands: usize, snapshot_every: usize) -> (MemStorage, DataStores, Live) {
    let (journal, _, stores) = mem_stores();
    let mut live = Live::new(&stores);
    live.run_prelude();
    let mut rng = ChaCha8Rng::seed_from_u64(41);
    for index in 0..commands {
        live.run_op(random_op(&mut rng));
        if snapshot_every > 0 && index % snapshot_every == snapshot_every - 1 {
            live.snapshot(2);
        }
    }
    (journal, stores, live)
}

#[test]
fn recovery_from_the_journal_alone_replays_every_segment() {
    let (_, stores, live) = long_journal(4_500, 1_000);
    let report = open_and_check(&stores.journal, false).unwrap();
    assert!(report.segments.len() >= 3, "{} segments", report.segments.len());
    let alone = DataStores { journal: stores.journal.clone(), snapshots: Arc::new(MemStorage::new()) };
    let mut progress = Vec::new();
    let recovered = recover(&alone, &config(), Capacity::default(), true, |seq| progress.push(seq)).unwrap();
    assert_eq!(recovered.engine.state_hash(), live.engine.state_hash());
    assert_eq!(recovered.replayed, 4_500 + prelude().len() as u64);
    assert_eq!(progress.len() as u64, recovered.replayed);
    assert!(progress.windows(2).all(|pair| pair[0] < pair[1]));
    assert_eq!(recovered.checkpoints_verified, 4);
    recovered.engine.check_invariants();
    // And from the newest snapshot: only the commands after it are replayed.
    let recovered = recover_stores(&stores).unwrap();
    assert_eq!(recovered.engine.state_hash(), live.engine.state_hash());
    let (_, snapshot_seq) = recovered.snapshot.unwrap();
    let after = journal_commands(&stores.journal).iter().filter(|command| command.seq > snapshot_seq).count();
    assert_eq!(recovered.replayed, after as u64);
}

#[test]
fn a_checkpoint_with_a_wrong_hash_is_divergence_naming_the_sequence() {
    for with_snapshot in [false, true] {
        let (_, stores) = {
            let (journal, _, stores) = mem_stores();
            (journal, stores)
        };
        let mut live = Live::new(&stores);
        live.run_prelude();
        let mut rng = ChaCha8Rng::seed_from_u64(51);
        for _ in 0..50 {
            live.run_op(random_op(&mut rng));
        }
        if with_snapshot {
            live.snapshot(2);
        }
        for _ in 0..50 {
            live.run_op(random_op(&mut rng));
        }
        let applied = live.engine.last_seq().unwrap();
        let right = live.engine.state_hash();
        live.checkpoint(Checkpoint::new(applied, StateHash(right.0 ^ 1)));
        for _ in 0..10 {
            live.run_op(random_op(&mut rng));
        }
        match recover_stores(&stores) {
            Err(RecoveryError::Diverged { applied: at, expected, actual }) => {
                assert_eq!(at, applied);
                assert_eq!(expected, StateHash(right.0 ^ 1));
                assert_eq!(actual, right);
                let message = RecoveryError::Diverged { applied: at, expected, actual }.to_string();
                assert!(message.contains(&format!("sequence {}", applied.get())), "{message}");
            }
            other => panic!("with snapshot {with_snapshot}: expected divergence, got {other:?}"),
        }
    }
}

/// The first sequence number of the journal's second segment.
fn second_segment_start(stores: &DataStores) -> (String, Seq) {
    let report = open_and_check(&stores.journal, false).unwrap();
    assert!(report.segments.len() >= 2);
    (report.segments[0].name.clone(), report.segments[1].first_seq)
}

/// The engine after every journaled command up to `upto`, as a snapshot.
fn snapshot_at(stores: &DataStores, upto: Seq) -> StateHash {
    let mut engine = Engine::new(&config());
    let mut out = Vec::new();
    for command in journal_commands(&stores.journal).into_iter().filter(|command| command.seq <= upto) {
        engine.apply(&command, &mut out);
    }
    assert_eq!(engine.last_seq(), Some(upto));
    write_snapshot(&stores.snapshots, upto, engine.state_hash(), &engine.export_state(), 3).unwrap();
    engine.state_hash()
}

#[test]
fn a_snapshot_newer_than_the_journal_start_is_fine() {
    let (_, stores, live) = long_journal(2_500, 0);
    let (first_segment, second_start) = second_segment_start(&stores);
    // A snapshot well inside the journal: replay from just after it.
    let middle = Seq::new(second_start.get() + 10);
    snapshot_at(&stores, middle);
    let recovered = recover_stores(&stores).unwrap();
    assert_eq!(recovered.snapshot.as_ref().map(|(_, seq)| *seq), Some(middle));
    assert_eq!(recovered.engine.state_hash(), live.engine.state_hash());
    // The segments the snapshot covers can go: a snapshot at the last record of the
    // removed segment (the journal starts right after it) is enough.
    let boundary = Seq::new(second_start.get() - 1);
    snapshot_at(&stores, boundary);
    stores.snapshots.remove(&snapshot_name(middle)).unwrap();
    stores.journal.remove(&first_segment).unwrap();
    let recovered = recover_stores(&stores).unwrap();
    assert_eq!(recovered.snapshot.as_ref().map(|(_, seq)| *seq), Some(boundary));
    assert_eq!(recovered.engine.state_hash(), live.engine.state_hash());
}

#[test]
fn a_journal_that_starts_after_the_snapshot_is_a_gap() {
    let (_, stores, _) = long_journal(2_500, 0);
    let (first_segment, second_start) = second_segment_start(&stores);
    // A snapshot two commands short of the second segment, kept aside.
    let short = Seq::new(second_start.get() - 2);
    let with_snapshot = DataStores { journal: stores.journal.clone(), snapshots: Arc::new(MemStorage::new()) };
    snapshot_at(&with_snapshot, short);
    stores.journal.remove(&first_segment).unwrap();
    // No snapshot at all.
    match recover_stores(&stores) {
        Err(RecoveryError::Gap { snapshot: None, journal_first }) => assert_eq!(journal_first, second_start.get()),
        other => panic!("expected a gap, got {other:?}"),
    }
    // The snapshot misses the command just before the journal's start.
    match recover_stores(&with_snapshot) {
        Err(error @ RecoveryError::Gap { .. }) => {
            let RecoveryError::Gap { snapshot, journal_first } = &error else { unreachable!() };
            assert_eq!((*snapshot, *journal_first), (Some(short), second_start.get()));
            let message = error.to_string();
            let missing = format!("{} ..= {}", short.get() + 1, second_start.get() - 1);
            assert!(message.contains(&missing), "{message}");
        }
        other => panic!("expected a gap, got {other:?}"),
    }
}

/// Regression: `recover` without `repair` ("the files are only read") fails on a
/// journal with a torn tail, which `open_and_check` itself reports as a torn tail and
/// not as corruption: the replay (`read_from`) runs into the tail and calls it
/// "damage, not a torn tail". A read-only recovery of a crashed data directory must
/// give what a repairing one gives, and change nothing.
#[test]
fn a_read_only_recovery_of_a_torn_journal_stops_at_the_tear() {
    let mut failures = Vec::new();
    for case in ["a torn record", "a segment whose header was never written"] {
        let (journal, _, stores) = mem_stores();
        let mut live = Live::new(&stores);
        live.run_prelude();
        let mut rng = ChaCha8Rng::seed_from_u64(91);
        for _ in 0..100 {
            live.run_op(random_op(&mut rng));
        }
        let report = open_and_check(&stores.journal, false).unwrap();
        let last = report.segments.last().unwrap();
        if case == "a torn record" {
            // The first bytes of a record, its checksum cut: what a power cut leaves.
            let mut file = stores.journal.open(&last.name).unwrap();
            file.write(64 + last.bytes_used, &[0x17, 0, 0, 0, 0xAA, 0xBB]).unwrap();
            file.sync(0, file.len()).unwrap();
        } else {
            // A crash between creating the next segment and writing its header.
            let next = bourse_journal::segment::segment_name(report.chain.next_seq);
            stores.journal.create(&next, journal_config(Durability::Sync).segment_bytes).unwrap();
        }
        let before: Vec<_> = stores.journal.list().unwrap().iter().map(|name| journal.contents(name)).collect();
        let report = open_and_check(&stores.journal, false).unwrap();
        assert!(report.truncation.is_some(), "{case}: the journal calls it a torn tail");
        match recover(&stores, &config(), Capacity::default(), false, |_| {}) {
            Ok(recovered) => assert_eq!(recovered.engine.state_hash(), live.engine.state_hash(), "{case}"),
            Err(error) => failures.push(format!("{case}: {error}")),
        }
        let after: Vec<_> = stores.journal.list().unwrap().iter().map(|name| journal.contents(name)).collect();
        assert_eq!(before, after, "{case}: a read-only recovery changes nothing");
        let repaired = recover_stores(&stores).unwrap();
        assert_eq!(repaired.engine.state_hash(), live.engine.state_hash(), "{case}");
    }
    assert!(failures.is_empty(), "read-only recovery refused a torn tail: {failures:#?}");
}

// ---------------------------------------------------------------------------------
// 4. The runtime.
// ---------------------------------------------------------------------------------

fn runtime_config(durability: Durability, snapshot_every_commands: u64) -> RuntimeConfig {
    RuntimeConfig {
        journal: journal_config(durability),
        queue_capacity: 256,
        batch_max: 16,
        snapshot_every_commands,
        snapshot_every: Duration::from_hours(1),
        snapshots_kept: 2,
        // No idle ticks in these tests: every output is a submitted command.
        idle_tick: Duration::from_hours(1),
    }
}

/// One command as the runtime applied it.
#[derive(Clone, Debug)]
struct Output {
    seq: Seq,
    timestamp: Timestamp,
    token: Token,
    events: Vec<Event>,
}

fn outputs_of(batch: &AppliedBatch) -> impl Iterator<Item = Output> + '_ {
    batch.items.iter().map(|item| Output {
        seq: item.seq,
        timestamp: item.timestamp,
        token: item.token,
        events: batch.events_of(item).to_vec(),
    })
}

/// Receives outputs until `count` commands came back (bounded in time).
fn receive(output: &Receiver<AppliedBatch>, count: usize, into: &mut Vec<Output>) {
    let deadline = Instant::now() + WAIT;
    while into.len() < count {
        let left = deadline.saturating_duration_since(Instant::now());
        let batch = output.recv_timeout(left).unwrap_or_else(|error| {
            panic!("{} of {count} outputs arrived before {error}", into.len());
        });
        for item in outputs_of(&batch) {
            assert_ne!(item.token, TOKEN_INTERNAL, "no idle ticks expected");
            into.push(item);
        }
    }
}

/// Checks that the tokens `first_token..` came back once each, in submission order,
/// and that an independent engine applying the same commands at the same sequence
/// numbers and times gives the same events. Returns that engine.
fn check_outputs(reference: &mut Engine, outputs: &[Output], commands: &[Command], first_token: Token) {
    for (index, output) in outputs.iter().enumerate() {
        assert_eq!(output.token, first_token + index as Token, "tokens in submission order, once each");
        if index > 0 {
            assert!(output.seq > outputs[index - 1].seq);
        }
        let command = &commands[(output.token - first_token) as usize];
        let events = apply(reference, output.seq, output.timestamp, command);
        assert_eq!(events, output.events, "token {}: {command:?}", output.token);
    }
}

#[test]
fn the_runtime_returns_every_token_once_in_order_and_snapshots_at_shutdown() {
    let (_, _, stores) = mem_stores();
    let recovered = recover_stores(&stores).unwrap();
    let (sender, output) = unbounded();
    // No periodic snapshots: the only one is shutdown's.
    let runtime = Runtime::start(
        &stores,
        runtime_config(Durability::Sync, u64::MAX),
        recovered.engine,
        &recovered.journal,
        sender,
    )
    .unwrap();
    let commands = workload(2_500, 61);
    let submitter = runtime.submitter();
    let mut outputs = Vec::new();
    for (index, command) in commands.iter().enumerate() {
        submitter.submit_blocking(command.clone(), index as Token + 1).unwrap();
    }
    receive(&output, commands.len(), &mut outputs);
    let mut reference = Engine::new(&config());
    check_outputs(&mut reference, &outputs, &commands, 1);
    let stats = runtime.stats().clone();
    let report = runtime.shutdown();
    assert!(output.try_recv().is_err(), "nothing but the submitted commands came out");
    let last = outputs.last().unwrap().seq;
    assert_eq!(report.final_snapshot, Some(last));
    assert!(report.last_seq >= Some(last));
    assert_eq!(stats.commands.load(Ordering::Relaxed), commands.len() as u64);
    assert_eq!(stats.snapshots.load(Ordering::Relaxed), 1);
    assert!(submitter.submit(Command::Tick, 1).is_err(), "a stopped runtime takes nothing");

    let recovered = recover_stores(&stores).unwrap();
    assert_eq!(recovered.snapshot.as_ref().map(|(_, seq)| *seq), Some(last));
    assert_eq!(recovered.replayed, 0);
    assert_eq!(recovered.engine.state_hash(), reference.state_hash());
    assert!(recovered.journal.segments.len() > 1, "the journal rolled");
    assert_eq!(replay_from_empty(&stores.journal).state_hash(), reference.state_hash());
}

#[test]
fn the_runtime_snapshots_every_n_commands_and_restarts_where_it_stopped() {
    let (_, _, stores) = mem_stores();
    let mut reference = Engine::new(&config());
    let mut first_token = 1;
    for run in 0..3_u64 {
        let recovered = recover_stores(&stores).unwrap();
        assert_eq!(recovered.engine.state_hash(), reference.state_hash(), "run {run}");
        if run > 0 {
            assert!(recovered.snapshot.is_some());
        }
        let (sender, output) = unbounded();
        let every = 100;
        let config = runtime_config(Durability::Sync, every);
        let runtime = Runtime::start(&stores, config, recovered.engine, &recovered.journal, sender).unwrap();
        let commands = workload(900, 70 + run);
        // Closed loop, 50 commands at a time: the queue never fills, so each snapshot's
        // checkpoint finds room in it (see the test after this one for when it does not).
        let mut outputs = Vec::new();
        for (index, command) in commands.iter().enumerate() {
            runtime.submitter().submit_blocking(command.clone(), first_token + index as Token).unwrap();
            if index % 50 == 49 {
                receive(&output, index + 1, &mut outputs);
            }
        }
        receive(&output, commands.len(), &mut outputs);
        check_outputs(&mut reference, &outputs, &commands, first_token);
        first_token += commands.len() as Token;
        let stats = runtime.stats().clone();
        let report = runtime.shutdown();
        // A snapshot after at most `every + batch_max` commands, and one at shutdown.
        let periodic = commands.len() as u64 / (every + config.batch_max as u64);
        // The engine never waits for the writer: a snapshot due while the previous one
        // is still being written is skipped (and counted).
        let taken = stats.snapshots.load(Ordering::Relaxed);
        let skipped = stats.snapshots_skipped.load(Ordering::Relaxed);
        assert!(taken + skipped > periodic, "run {run}: {taken} snapshots, {skipped} skipped");
        assert!(taken >= 2, "run {run}: a periodic snapshot and the final one");
        assert!(stats.snapshot_pause_ns_max.load(Ordering::Relaxed) > 0, "the pause is measured");
        assert!(
            stats.snapshot_pause_ns_max.load(Ordering::Relaxed) >= stats.snapshot_pause_ns_last.load(Ordering::Relaxed)
        );
        assert_eq!(report.final_snapshot, Some(outputs.last().unwrap().seq));
        let kept = list_snapshots(&stores.snapshots).unwrap();
        assert_eq!(kept.len(), config.snapshots_kept, "run {run}: {kept:?}");
        assert_eq!(kept.last().unwrap().0, outputs.last().unwrap().seq);
    }
    let recovered = recover_stores(&stores).unwrap();
    assert_eq!(recovered.engine.state_hash(), reference.state_hash());
    assert_eq!(replay_from_empty(&stores.journal).state_hash(), reference.state_hash());
    // The checkpoints the runtime journaled after its snapshots all hold.
    let alone = DataStores { journal: stores.journal.clone(), snapshots: Arc::new(MemStorage::new()) };
    let from_journal = recover_stores(&alone).unwrap();
    assert_eq!(from_journal.engine.state_hash(), reference.state_hash());
    assert!(from_journal.checkpoints_verified >= 6, "{} checkpoints", from_journal.checkpoints_verified);
}

/// Regression: the snapshot writer hands its checkpoint to the sequencer with
/// `try_send` on the submission queue, so whenever clients keep that queue full, which
/// is exactly under sustained load, the checkpoint is dropped without a trace: the
/// journal then holds no proof for the snapshots, and a recovery that falls back to
/// an older snapshot verifies nothing. Every snapshot written while the runtime runs
/// must be followed by its checkpoint in the journal.
#[test]
fn every_snapshot_is_followed_by_its_checkpoint_even_under_a_full_queue() {
    let mut dropped = Vec::new();
    for seed in 0..3 {
        let (_, _, stores) = mem_stores();
        let recovered = recover_stores(&stores).unwrap();
        let (sender, output) = unbounded();
        let config = RuntimeConfig { queue_capacity: 2, ..runtime_config(Durability::Sync, 50) };
        let runtime = Runtime::start(&stores, config, recovered.engine, &recovered.journal, sender).unwrap();
        let commands = Arc::new(workload(3_000, 101 + seed));
        // Open loop: the feeder keeps the queue full.
        let feeder = {
            let (submitter, commands) = (runtime.submitter(), commands.clone());
            std::thread::spawn(move || {
                for (index, command) in commands.iter().enumerate() {
                    submitter.submit_blocking(command.clone(), index as Token + 1).unwrap();
                }
            })
        };
        let mut outputs = Vec::new();
        receive(&output, commands.len(), &mut outputs);
        feeder.join().unwrap();
        let written_while_running = runtime.stats().snapshots.load(Ordering::Relaxed);
        assert!(written_while_running >= 5, "{written_while_running} snapshots");
        // One more command, waited for; a checkpoint queued later still is journaled
        // by the shutdown, which drains the queue. Only the one being written may miss.
        runtime.submitter().submit_blocking(Command::Tick, 99_999).unwrap();
        receive(&output, outputs.len() + 1, &mut outputs);
        runtime.shutdown();
        let mut checkpoints = 0;
        read_from::<JournalError>(&stores.journal, Seq::new(1), |record| {
            checkpoints += u64::from(record.kind == KIND_CHECKPOINT);
            Ok(())
        })
        .unwrap();
        if checkpoints + 1 < written_while_running {
            dropped.push(format!("{written_while_running} snapshots written while running, {checkpoints} checkpoints"));
        }
    }
    assert!(dropped.is_empty(), "checkpoints dropped: {dropped:?}");
}

// ---------------------------------------------------------------------------------
// 5. A power cut of the runtime's storage.
// ---------------------------------------------------------------------------------

/// What a run cut by a power failure left: the storages as cuts at a few moments
/// left them, the commands acknowledged before the first cut, and everything the
/// runtime applied (the cuts were taken while it ran; it went on to the end on the
/// original storage).
struct PowerCut {
    images: Vec<DataStores>,
    commands: Arc<Vec<Command>>,
    acknowledged: Vec<Output>,
    applied: Vec<Output>,
}

const CUTS_PER_RUN: u64 = 4;

fn run_and_cut_power(snapshot_every: u64, count: usize, seed: u64) -> PowerCut {
    let (journal, snapshots, stores) = mem_stores();
    let recovered = recover_stores(&stores).unwrap();
    let (sender, output) = unbounded();
    let config = runtime_config(Durability::Sync, snapshot_every);
    let runtime = Runtime::start(&stores, config, recovered.engine, &recovered.journal, sender).unwrap();
    let commands = Arc::new(workload(count, seed));
    let feeder = {
        let (submitter, commands) = (runtime.submitter(), commands.clone());
        std::thread::spawn(move || {
            for (index, command) in commands.iter().enumerate() {
                submitter.submit_blocking(command.clone(), index as Token + 1).unwrap();
            }
        })
    };
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let cut_after = rng.random_range(1..count);
    let mut acknowledged = Vec::new();
    receive(&output, cut_after, &mut acknowledged);
    // Snapshots first, then the journal: whatever a snapshot holds was journaled
    // before the journal's images are taken, and every acknowledged command was
    // durable before the first of them. (`crash` leaves the original untouched.)
    let snapshots_image = Arc::new(snapshots.crash(seed));
    let images = (0..CUTS_PER_RUN)
        .map(|cut| DataStores {
            journal: Arc::new(journal.crash(seed * CUTS_PER_RUN + cut)),
            snapshots: Arc::new(snapshots_image.process_crash()),
        })
        .collect();
    let mut applied = acknowledged.clone();
    receive(&output, count, &mut applied);
    feeder.join().unwrap();
    runtime.shutdown();
    PowerCut { images, commands, acknowledged, applied }
}

/// Recovers one image of a power cut and checks it against what was acknowledged and
/// applied; returns whether recovery cut a torn tail.
fn check_power_cut(cut: &PowerCut, stores: &DataStores, what: &str) -> bool {
    let recovered = recover_stores(stores).unwrap();
    let last = recovered.engine.last_seq();
    recovered.engine.check_invariants();
    assert!(recovered.engine.reconcile().is_balanced(), "{what}");
    // The journal is a prefix of what the runtime applied, and holds every
    // acknowledged command, each the one submitted with its token.
    let journaled = journal_commands(&stores.journal);
    assert!(journaled.len() >= cut.acknowledged.len(), "{what}");
    assert!(journaled.len() <= cut.applied.len(), "{what}");
    for (record, output) in journaled.iter().zip(&cut.applied) {
        assert_eq!((record.seq, record.timestamp), (output.seq, output.timestamp), "{what}");
        assert_eq!(record.command, cut.commands[output.token as usize - 1], "{what}");
    }
    let acknowledged_last = cut.acknowledged.last().unwrap().seq;
    assert!(Some(acknowledged_last) <= last, "{what}: acknowledged {acknowledged_last:?}, recovered {last:?}");
    // The same state as an independent replay of the same commands.
    let mut reference = Engine::new(&config());
    for output in &cut.applied[..journaled.len()] {
        apply(&mut reference, output.seq, output.timestamp, &cut.commands[output.token as usize - 1]);
    }
    assert_eq!(recovered.engine.state_hash(), reference.state_hash(), "{what}");
    assert_eq!(replay_from_empty(&stores.journal).state_hash(), reference.state_hash(), "{what}");
    let torn = recovered.journal.truncation.is_some();

    continue_after(stores, recovered, reference, what);
    torn
}

/// Starts a runtime on what recovery gave, runs a few more commands through it, and
/// checks them and the state after another recovery against `reference` (an engine
/// equal to the recovered one).
fn continue_after(stores: &DataStores, recovered: bourse_snapshots::Recovered, mut reference: Engine, what: &str) {
    let (sender, output) = unbounded();
    let config = runtime_config(Durability::Sync, 150);
    let runtime = Runtime::start(stores, config, recovered.engine, &recovered.journal, sender).unwrap();
    let more = workload(60, 1_000);
    for (index, command) in more.iter().enumerate() {
        runtime.submitter().submit_blocking(command.clone(), 10_000 + index as Token).unwrap();
    }
    let mut outputs = Vec::new();
    receive(&output, more.len(), &mut outputs);
    check_outputs(&mut reference, &outputs, &more, 10_000);
    runtime.shutdown();
    assert_eq!(recover_stores(stores).unwrap().engine.state_hash(), reference.state_hash(), "{what}");
}

#[test]
fn a_power_cut_in_sync_mode_loses_no_acknowledged_command() {
    let mut torn = 0;
    for seed in 0..8 {
        let cut = run_and_cut_power(150, 1_500, seed);
        for (index, stores) in cut.images.iter().enumerate() {
            torn += usize::from(check_power_cut(&cut, stores, &format!("seed {seed}, cut {index}")));
        }
    }
    eprintln!("power cuts: {torn} of {} torn", 8 * CUTS_PER_RUN);
}

/// Receives outputs until the runtime's engine stops, or `count` came back (bounded
/// in time).
fn receive_until_stopped(output: &Receiver<AppliedBatch>, count: usize, into: &mut Vec<Output>) {
    let deadline = Instant::now() + WAIT;
    while into.len() < count {
        match output.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(batch) => into.extend(outputs_of(&batch)),
            Err(RecvTimeoutError::Disconnected) => return,
            Err(RecvTimeoutError::Timeout) => panic!("the runtime did not stop after {} outputs", into.len()),
        }
    }
}

/// A sync that fails stops the runtime with its batch written but neither durable
/// nor acknowledged; a power cut then tears that batch at a random point. Recovery
/// must keep every acknowledged command and nothing that is not a clean prefix.
#[test]
fn a_failed_sync_then_a_power_cut_keeps_every_acknowledged_command() {
    let mut torn = 0;
    for seed in 0..8 {
        let (journal, snapshots, stores) = mem_stores();
        let recovered = recover_stores(&stores).unwrap();
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        journal.set_faults(Faults { fail_writes_after: None, fail_syncs_after: Some(rng.random_range(5..60)) });
        let (sender, output) = unbounded();
        let settings = runtime_config(Durability::Sync, 100);
        let runtime = Runtime::start(&stores, settings, recovered.engine, &recovered.journal, sender).unwrap();
        let commands = Arc::new(workload(1_500, seed));
        let feeder = {
            let (submitter, commands) = (runtime.submitter(), commands.clone());
            std::thread::spawn(move || {
                for (index, command) in commands.iter().enumerate() {
                    if submitter.submit_blocking(command.clone(), index as Token + 1).is_err() {
                        return;
                    }
                }
            })
        };
        let mut acknowledged = Vec::new();
        receive_until_stopped(&output, commands.len(), &mut acknowledged);
        assert!(acknowledged.len() < commands.len(), "seed {seed}: the failed sync stopped the runtime");
        runtime.shutdown();
        feeder.join().unwrap();
        let mut reference = Engine::new(&config());
        check_outputs(&mut reference, &acknowledged, &commands, 1);
        for cut in 0..CUTS_PER_RUN {
            let what = format!("seed {seed}, cut {cut}");
            let image = DataStores {
                journal: Arc::new(journal.crash(seed * CUTS_PER_RUN + cut)),
                snapshots: Arc::new(snapshots.crash(cut)),
            };
            let recovered = recover_stores(&image).unwrap();
            torn += usize::from(recovered.journal.truncation.is_some());
            // The journal is the submitted commands in order, up to somewhere at or
            // after the last acknowledged one.
            let journaled = journal_commands(&image.journal);
            assert!(journaled.len() >= acknowledged.len(), "{what}");
            for (index, record) in journaled.iter().enumerate() {
                assert_eq!(record.command, commands[index], "{what}: journal command {index}");
            }
            for (record, output) in journaled.iter().zip(&acknowledged) {
                assert_eq!((record.seq, record.timestamp), (output.seq, output.timestamp), "{what}");
            }
            assert!(recovered.engine.last_seq() >= acknowledged.last().map(|output| output.seq), "{what}");
            assert!(recovered.engine.reconcile().is_balanced(), "{what}");
            recovered.engine.check_invariants();
            assert_eq!(recovered.engine.state_hash(), replay_from_empty(&image.journal).state_hash(), "{what}");
            if journaled.len() == acknowledged.len() {
                assert_eq!(recovered.engine.state_hash(), reference.state_hash(), "{what}");
            }
            assert!(recovered.engine.last_seq() <= recovered.journal.last_seq, "{what}");
            // The writer carries on from the repaired tail.
            continue_after(&image, recovered, replay_from_empty(&image.journal), &what);
        }
    }
    // The point of the test: torn tails were made and repaired.
    assert!(torn > 0, "no power cut tore the unsynced batch");
    eprintln!("failed sync + power cut: {torn} of {} torn", 8 * CUTS_PER_RUN);
}

/// Regression (the root of the next test's failure): recovery takes a snapshot whose
/// sequence number is past the end of the journal (here the journal lost its last
/// 50 commands, as an unsynced tail does in a power cut) and returns an engine ahead
/// of the journal; the runtime started on it numbers its first command below the
/// engine's last one and the engine thread panics. Recovery must refuse such a
/// snapshot (or fall back to an older one), or leave something the runtime can run.
#[test]
fn a_snapshot_past_the_end_of_the_journal_is_refused_or_usable() {
    let (_, _, full) = mem_stores();
    let (_, _, cut) = mem_stores();
    let mut live = Live::new(&full);
    let mut behind = Live::new(&cut);
    live.run_prelude();
    behind.run_prelude();
    let mut rng = ChaCha8Rng::seed_from_u64(81);
    for step in 0..100 {
        let op = random_op(&mut rng);
        live.run_op(op);
        if step < 50 {
            behind.run_op(op);
        }
    }
    let (_, snapshot_seq) = live.snapshot(2);
    let stores = DataStores { journal: cut.journal.clone(), snapshots: full.snapshots.clone() };
    let recovered = match recover_stores(&stores) {
        Err(refused) => return eprintln!("refused: {refused}"),
        Ok(recovered) => recovered,
    };
    let (sender, output) = unbounded();
    let config = runtime_config(Durability::Sync, 1_000);
    let runtime = Runtime::start(&stores, config, recovered.engine, &recovered.journal, sender).unwrap();
    runtime.submitter().submit_blocking(Command::Tick, 1).unwrap();
    let first = output.recv_timeout(WAIT);
    runtime.shutdown();
    let batch = first.unwrap_or_else(|error| {
        panic!(
            "recovery used the snapshot at {snapshot_seq:?} though the journal ends at {:?}, and the runtime \
             started on it applies nothing: its first command was numbered {:?} ({error})",
            recovered.journal.last_seq, recovered.journal.chain.next_seq
        )
    });
    assert!(batch.items[0].seq > snapshot_seq);
}

/// An idle runtime journals a `Tick` (token `TOKEN_INTERNAL`) so that command time
/// moves on; it is recovered like any command.
#[test]
fn an_idle_runtime_journals_ticks_that_recover_like_commands() {
    let (_, _, stores) = mem_stores();
    let recovered = recover_stores(&stores).unwrap();
    let (sender, output) = unbounded();
    let config = RuntimeConfig { idle_tick: Duration::from_millis(5), ..runtime_config(Durability::Sync, 1_000) };
    let runtime = Runtime::start(&stores, config, recovered.engine, &recovered.journal, sender).unwrap();
    let mut ticks = Vec::new();
    while ticks.len() < 3 {
        let batch = output.recv_timeout(WAIT).unwrap();
        ticks.extend(batch.items.iter().map(|item| (item.token, item.kind, item.seq)));
    }
    runtime.shutdown();
    assert!(ticks.iter().all(|&(token, kind, _)| token == TOKEN_INTERNAL && kind == CommandKind::Tick), "{ticks:?}");
    let recovered = recover_stores(&stores).unwrap();
    assert!(recovered.engine.last_seq() >= Some(ticks[2].2));
    assert_eq!(recovered.engine.state_hash(), replay_from_empty(&stores.journal).state_hash());
}

/// Regression: in `Batch` (and `Async`) mode the runtime writes a snapshot as soon as
/// the engine has applied a batch, without waiting for the journal to be durable up
/// to it; after a power cut the snapshot is ahead of the journal, recovery accepts
/// it, and the writer numbers the next command below the engine's last sequence
/// (the engine thread then panics, "sequence numbers only grow").
#[test]
fn a_power_cut_in_batch_mode_never_leaves_the_snapshot_ahead_of_the_journal() {
    let mut ahead = Vec::new();
    for seed in 0..4 {
        let (journal, snapshots, stores) = mem_stores();
        let recovered = recover_stores(&stores).unwrap();
        let (sender, output) = unbounded();
        // Never synced by interval (the segment never fills either): before the cut,
        // only the snapshots are durable.
        let config = runtime_config(Durability::Batch { interval: Duration::from_hours(1) }, 50);
        let runtime = Runtime::start(&stores, config, recovered.engine, &recovered.journal, sender).unwrap();
        let commands = workload(400, seed);
        for (index, command) in commands.iter().enumerate() {
            runtime.submitter().submit_blocking(command.clone(), index as Token + 1).unwrap();
        }
        let mut outputs = Vec::new();
        receive(&output, commands.len(), &mut outputs);
        // Drive the runtime (ticks, each waited for) until a snapshot near the end is
        // written, or for a bounded while (a runtime that holds snapshots back until
        // the journal is durable may never write one here): progress, not sleep.
        let stats = runtime.stats().clone();
        for token in 1_000..1_500 {
            if stats.last_snapshot_seq.load(Ordering::Relaxed) >= 300 {
                break;
            }
            runtime.submitter().submit_blocking(Command::Tick, token).unwrap();
            receive(&output, outputs.len() + 1, &mut outputs);
        }
        let snapshots_image = snapshots.crash(seed);
        let journal_image = journal.crash(seed);
        runtime.shutdown();
        let cut = DataStores { journal: Arc::new(journal_image), snapshots: Arc::new(snapshots_image) };
        let recovered = recover_stores(&cut).unwrap();
        let snapshot = recovered.snapshot.as_ref().map(|(_, seq)| *seq);
        if recovered.engine.last_seq() > recovered.journal.last_seq {
            ahead.push((seed, snapshot, recovered.journal.last_seq));
        }
    }
    assert!(
        ahead.is_empty(),
        "recovered engine ahead of the journal (seed, snapshot, journal end): {ahead:?}; the next command would be \
         numbered at or below the snapshot's sequence"
    );
}

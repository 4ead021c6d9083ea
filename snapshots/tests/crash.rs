//! A crash test with a real process: the test binary runs itself as the child
//! (`--exact child_entry`, with `BOURSE_CRASH_CHILD_DIR` naming the data directory).
//!
//! The child opens the data directory, recovers, starts the runtime in
//! `Durability::Sync` (small segments, so the journal rolls; a snapshot every 500
//! commands) and submits a deterministic load from where the journal left off,
//! printing `ACK <seq> <token>` for every command whose output came back. The parent
//! reads those lines and kills the child with SIGKILL after a seeded, random number of
//! them, five times on the same directory; a sixth child runs the load to the end.
//! Rounds alternate the runtime's pipeline (a thread each for sequencer and engine,
//! then both on one thread).
//! After every round the parent recovers in-process and checks that every
//! acknowledged command is in the journal, is the command submitted with its token,
//! and is at or below the recovered engine's last sequence; that the journal holds
//! exactly a prefix of the load; that the books balance; and that the recovered state
//! (snapshot + replay) equals an independent replay of the whole journal from empty.
#![allow(clippy::unwrap_used)]

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command as Process, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bourse_core::book::{ClientOrderId, MarketId, Price, Qty, Side, TimeInForce};
use bourse_core::command::{
    CancelAll, Command, Deposit, OpenAccount, OrderSize, PlaceOrder, SequencedCommand, Transfer, Withdraw,
};
use bourse_core::config::Config;
use bourse_core::ids::{AccountId, AssetId, IdempotencyKey, KycTier, OwnerId, Reference, Seq};
use bourse_core::money::Amount;
use bourse_core::{Capacity, Engine};
use bourse_journal::codec::decode_command;
use bourse_journal::record::KIND_CHECKPOINT;
use bourse_journal::{Durability, JournalConfig, JournalError, Storage, read_from};
use bourse_snapshots::runtime::{Pipeline, TOKEN_INTERNAL};
use bourse_snapshots::{Recovered, Runtime, RuntimeConfig, list_snapshots, open_data_dir, recover};
use crossbeam_channel::{RecvTimeoutError, unbounded};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

const CHILD_DIR: &str = "BOURSE_CRASH_CHILD_DIR";
/// `fused` or `threads`: the child's `Pipeline`.
const CHILD_PIPELINE: &str = "BOURSE_CRASH_CHILD_PIPELINE";
/// Commands in the whole load, across every child.
const LOAD_COMMANDS: u64 = 20_000;
/// Commands a child has submitted and not yet acknowledged, at most.
const IN_FLIGHT: u64 = 512;
const ACCOUNTS: u64 = 16;
/// Rounds that end in SIGKILL; one more runs the load to its end.
const KILLS: usize = 5;
/// Longest the parent waits for the child's next line.
const LINE_WAIT: Duration = Duration::from_secs(20);

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
fees = [{ maker_bps = 10, taker_bps = 20 }]
"#;

fn config() -> Config {
    Config::from_toml_str(CONFIG).unwrap()
}

/// Odd rounds run the fused pipeline (sequencer and engine on one thread), even
/// rounds a thread each: recovery must not care which wrote the journal.
fn runtime_config(pipeline: Pipeline) -> RuntimeConfig {
    RuntimeConfig {
        pipeline,
        // Barely above the largest record, so the journal rolls every ~1,400 records.
        journal: JournalConfig { segment_bytes: 66 * 1024, durability: Durability::Sync },
        queue_capacity: 1_024,
        batch_max: 64,
        snapshot_every_commands: 500,
        snapshot_every: Duration::from_hours(1),
        snapshots_kept: 3,
        // No idle ticks: every command in the journal is one of the load's.
        idle_tick: Duration::from_hours(1),
    }
}

fn amount(minor_units: u64) -> Amount {
    Amount::new(minor_units).unwrap()
}

/// The load's command number `index`: a function of the index alone, so that a child
/// restarted on the same directory continues it, and the parent can check it.
fn load_command(index: u64) -> Command {
    if index < ACCOUNTS {
        let kyc_tier = KycTier::new(0).unwrap();
        return Command::OpenAccount(OpenAccount { owner: OwnerId::new(index), kyc_tier });
    }
    let key = IdempotencyKey::new(u128::from(index));
    if index < 3 * ACCOUNTS {
        let (account, asset) = ((index - ACCOUNTS) / 2, (index - ACCOUNTS) % 2);
        return Command::Deposit(Deposit {
            account: AccountId::new(account as u32),
            key,
            asset: AssetId::new(asset as u16),
            amount: amount(if asset == 0 { 100_000_000_000 } else { 1_000_000_000 }),
            reference: Reference::new("seed").unwrap(),
        });
    }
    let mut rng = ChaCha8Rng::seed_from_u64(index);
    let by = AccountId::new(rng.random_range(0..ACCOUNTS) as u32);
    match rng.random_range(0..100) {
        0..35 => Command::Transfer(Transfer {
            by,
            key,
            to: AccountId::new(rng.random_range(0..ACCOUNTS) as u32),
            asset: AssetId::new(rng.random_range(0..2)),
            amount: amount(rng.random_range(1..5_000)),
        }),
        35..42 => Command::Deposit(Deposit {
            account: by,
            key,
            asset: AssetId::new(rng.random_range(0..2)),
            amount: amount(rng.random_range(1..100_000)),
            reference: Reference::new("top-up").unwrap(),
        }),
        42..45 => Command::Withdraw(Withdraw {
            account: by,
            key,
            asset: AssetId::new(1),
            amount: amount(rng.random_range(1..10_000)),
            reference: Reference::new("payout").unwrap(),
        }),
        45..88 => Command::PlaceOrder(PlaceOrder {
            by,
            market: MarketId::new(0),
            side: if rng.random() { Side::Buy } else { Side::Sell },
            price: Price::new(rng.random_range(95..=105)),
            size: OrderSize::Qty(Qty::new(rng.random_range(1..=10)).unwrap()),
            time_in_force: TimeInForce::Gtc,
            post_only: false,
            stp: None,
            client_order_id: ClientOrderId::new(u128::from(index)),
        }),
        88..94 => Command::PlaceOrder(PlaceOrder {
            by,
            market: MarketId::new(0),
            side: if rng.random() { Side::Buy } else { Side::Sell },
            price: None,
            size: OrderSize::Qty(Qty::new(rng.random_range(1..=15)).unwrap()),
            time_in_force: TimeInForce::Ioc,
            post_only: false,
            stp: None,
            client_order_id: None,
        }),
        _ => Command::CancelAll(CancelAll { by, market: None }),
    }
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

// ---------------------------------------------------------------------------------
// The child.
// ---------------------------------------------------------------------------------

/// The child's entry point; does nothing unless the parent started this process.
#[test]
fn child_entry() {
    let Ok(dir) = std::env::var(CHILD_DIR) else { return };
    run_child(Path::new(&dir));
}

fn run_child(dir: &Path) {
    let stores = open_data_dir(dir).unwrap();
    let recovered = recover(&stores, &config(), Capacity::default(), true, |_| {}).unwrap();
    let next = journal_commands(&stores.journal).len() as u64;
    let (sender, output) = unbounded();
    let pipeline = if std::env::var(CHILD_PIPELINE).is_ok_and(|name| name == "fused") {
        Pipeline::Fused
    } else {
        Pipeline::Threads
    };
    let runtime =
        Runtime::start(&stores, runtime_config(pipeline), recovered.engine, &recovered.journal, sender).unwrap();
    let submitter = runtime.submitter();
    // At most `IN_FLIGHT` commands submitted and not yet acknowledged: the journal
    // never runs far ahead of what the parent has been told.
    let (credit, credits) = unbounded::<()>();
    let feeder = std::thread::spawn(move || {
        for index in next..LOAD_COMMANDS {
            if index - next >= IN_FLIGHT && credits.recv().is_err() {
                return;
            }
            // The token is the command's index + 1 (0 is the runtime's own).
            if submitter.submit_blocking(load_command(index), index + 1).is_err() {
                return;
            }
        }
    });
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "START {next}").unwrap();
    stdout.flush().unwrap();
    let mut acknowledged = next;
    while acknowledged < LOAD_COMMANDS {
        let batch = output.recv_timeout(LINE_WAIT).expect("the runtime keeps producing outputs");
        for item in &batch.items {
            assert_ne!(item.token, TOKEN_INTERNAL, "no idle ticks");
            writeln!(stdout, "ACK {} {}", item.seq.get(), item.token).unwrap();
            stdout.flush().unwrap();
            acknowledged += 1;
            let _ = credit.send(());
        }
    }
    feeder.join().unwrap();
    runtime.shutdown();
    writeln!(stdout, "DONE").unwrap();
    stdout.flush().unwrap();
}

// ---------------------------------------------------------------------------------
// The parent.
// ---------------------------------------------------------------------------------

/// What one child printed before it died or finished.
#[derive(Debug, Default)]
struct Round {
    start: Option<u64>,
    /// (seq, token) of every acknowledged command, in the order printed.
    acknowledged: Vec<(u64, u64)>,
    done: bool,
}

/// Runs a child on `dir`; kills it (SIGKILL) once it has acknowledged `kill_after`
/// commands, if given. Every wait is bounded.
fn run_round(dir: &Path, kill_after: Option<usize>, pipeline: Pipeline) -> Round {
    let mut child = Process::new(std::env::current_exe().unwrap())
        .args(["--exact", "child_entry", "--nocapture", "--test-threads=1"])
        .env(CHILD_DIR, dir)
        .env(CHILD_PIPELINE, if pipeline == Pipeline::Fused { "fused" } else { "threads" })
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (lines_sender, lines) = unbounded();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { return };
            if lines_sender.send(line).is_err() {
                return;
            }
        }
    });
    let mut round = Round::default();
    let mut killed = false;
    loop {
        match lines.recv_timeout(LINE_WAIT) {
            Ok(line) => {
                if let Some(rest) = line.strip_prefix("ACK ") {
                    let mut fields = rest.split(' ').map(|field| field.parse::<u64>().unwrap());
                    round.acknowledged.push((fields.next().unwrap(), fields.next().unwrap()));
                    if Some(round.acknowledged.len()) == kill_after {
                        child.kill().unwrap();
                        killed = true;
                    }
                } else if let Some((_, rest)) = line.split_once("START ") {
                    // The harness's "test child_entry ... " shares this line.
                    round.start = Some(rest.parse().unwrap());
                } else if line == "DONE" {
                    round.done = true;
                }
            }
            // The pipe closed: the child is dead or done, and every line it wrote is read.
            Err(RecvTimeoutError::Disconnected) => break,
            Err(RecvTimeoutError::Timeout) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("the child printed nothing for {LINE_WAIT:?}: {round:?}");
            }
        }
    }
    let status = child.wait().unwrap();
    reader.join().unwrap();
    if !killed {
        assert!(status.success(), "the child failed: {status}");
    }
    round
}

/// Recovers in-process and checks the round against the journal; `journaled_before`
/// is how many commands the journal held when the child started.
fn check_after(dir: &Path, round: &Round, acknowledged_before: &[(u64, u64)], journaled_before: usize) -> Recovered {
    let stores = open_data_dir(dir).unwrap();
    let recovered = recover(&stores, &config(), Capacity::default(), true, |_| {}).unwrap();
    let last = recovered.engine.last_seq().map_or(0, Seq::get);
    let journaled = journal_commands(&stores.journal);
    // The journal holds exactly a prefix of the load: no hole, no repeat.
    for (index, record) in journaled.iter().enumerate() {
        assert_eq!(record.command, load_command(index as u64), "journal command {index} (seq {:?})", record.seq);
    }
    // The child carried on where the journal left off.
    assert_eq!(round.start, Some(journaled_before as u64));
    let by_seq: std::collections::BTreeMap<u64, &SequencedCommand> =
        journaled.iter().map(|record| (record.seq.get(), record)).collect();
    // Every acknowledged command, this round's and before, survived as submitted.
    for &(seq, token) in acknowledged_before.iter().chain(&round.acknowledged) {
        assert!(seq <= last, "acknowledged seq {seq} is above the recovered last seq {last}");
        let record = by_seq.get(&seq).unwrap_or_else(|| panic!("acknowledged seq {seq} is not in the journal"));
        assert_eq!(record.command, load_command(token - 1), "seq {seq}, token {token}");
    }
    // This round's tokens came back once each, in submission order, from the start.
    for (index, &(_, token)) in round.acknowledged.iter().enumerate() {
        assert_eq!(token, journaled_before as u64 + index as u64 + 1, "tokens once each, in order");
    }
    assert!(round.acknowledged.windows(2).all(|pair| pair[0].0 < pair[1].0), "seqs grow");
    assert!(acknowledged_before.last().is_none_or(|&(seq, _)| round.acknowledged.first().is_none_or(|f| f.0 > seq)));
    // Balanced, and the same state as the whole journal replayed from empty.
    recovered.engine.check_invariants();
    assert!(recovered.engine.reconcile().is_balanced());
    let mut reference = Engine::new(&config());
    let mut events = Vec::new();
    for record in &journaled {
        events.clear();
        reference.apply(record, &mut events);
    }
    assert_eq!(recovered.engine.state_hash(), reference.state_hash());
    assert_eq!(recovered.engine.last_seq(), reference.last_seq());
    recovered
}

#[test]
fn sigkill_mid_load_loses_no_acknowledged_command() {
    let started = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(0xB0_0125E);
    let mut acknowledged: Vec<(u64, u64)> = Vec::new();
    let mut kills = Vec::new();
    let mut journaled = 0;
    let mut from_snapshot = 0;
    let mut finished = None;
    for round_index in 0..=KILLS {
        let kill_after = (round_index < KILLS).then(|| rng.random_range(200..=1_200));
        let pipeline = if round_index % 2 == 1 { Pipeline::Fused } else { Pipeline::Threads };
        let round = run_round(dir.path(), kill_after, pipeline);
        let recovered = check_after(dir.path(), &round, &acknowledged, journaled);
        acknowledged.extend(&round.acknowledged);
        journaled = journal_commands(&open_data_dir(dir.path()).unwrap().journal).len();
        // Whether a snapshot was written before the kill is a matter of timing (the
        // writer thread is asynchronous); when one was, recovery started from it.
        from_snapshot += usize::from(recovered.snapshot.is_some());
        assert!(started.elapsed() < Duration::from_secs(50), "round {round_index}: {:?}", started.elapsed());
        if round.done {
            // The load ran to its end (the last round, or a kill that came too late).
            finished = Some((round_index, round.start));
            break;
        }
        let kill_after = kill_after.expect("only killed children stop before the end");
        assert!(round.acknowledged.len() >= kill_after, "round {round_index}: {} acks", round.acknowledged.len());
        let torn = recovered.journal.truncation.as_ref().map(|truncation| truncation.reason);
        kills.push((kill_after, round.acknowledged.len(), journaled, torn));
    }
    let (_, last_start) = finished.expect("the last child runs the load to its end");
    assert!(kills.len() >= 3, "at least three kills landed mid-load: {kills:?}");
    assert_eq!(journaled as u64, LOAD_COMMANDS, "the whole load is journaled in the end: {kills:?}");
    assert!(acknowledged.len() as u64 <= LOAD_COMMANDS);
    let stores = open_data_dir(dir.path()).unwrap();
    let recovered = recover(&stores, &config(), Capacity::default(), false, |_| {}).unwrap();
    assert!(recovered.journal.segments.len() > 3, "the journal rolled: {:?}", recovered.journal.segments.len());
    assert!(list_snapshots(&stores.snapshots).unwrap().len() <= runtime_config(Pipeline::Threads).snapshots_kept);
    if last_start < Some(LOAD_COMMANDS) {
        // A clean shutdown after work leaves a snapshot of the very end.
        assert_eq!(recovered.replayed, 0);
    }
    eprintln!(
        "crash test: kills (asked, acknowledged, journaled after, torn tail) {kills:?}; {from_snapshot} of {} \
         recoveries from a snapshot; {:?}",
        kills.len() + 1,
        started.elapsed()
    );
}

//! The `recovery` suite: restart time and replay speed of `recover` over a journal of
//! `--commands` commands (default 10,000,000), on real files.
//!
//! # The journal (written untimed)
//!
//! The exchange of `exchange` with `--accounts` (default 100,000) accounts on
//! `--markets` (default 8) markets: its setup (an open and two deposits per account),
//! then the mix of `workload` (transfers, passive and aggressive orders, IOC orders,
//! cancels, amends) up to `--commands` commands in all, 1 µs of command time apart.
//! Each command is appended with `JournalWriter` in async mode (64 MiB segments, a
//! commit every 256 commands, one sync at the end) and applied to an engine, whose
//! final state hash every recovery must reproduce. After `--snapshot-at-percent`
//! (default 95) of the commands, the runtime's snapshot is imitated: `export_state`,
//! `state_hash`, `write_snapshot`, and a checkpoint record in the journal.
//!
//! # Measured
//!
//! - Components, once each: `open_and_check` (the whole chain walked, every CRC);
//!   `checkpoints_from` (a second walk); a walk that also decodes every command but
//!   applies none; `load_newest` of the snapshot.
//! - `recover` with no snapshot (an empty snapshot directory beside the same journal),
//!   `--runs` times (default 3), then once more reading the clock at every replayed
//!   command (in the progress callback) for percentiles of the per-command replay time.
//!   Restart time is the whole call; replay speed is the commands replayed over the
//!   time from the first replayed command to the return.
//! - The same from the snapshot.
//!
//! Every recovery's engine must end in the generating engine's state hash. The journal
//! is read from the page cache (it was just written and synced): a restart after a
//! process crash; after a reboot, add the time to read the files from disk.

mod workload;

use std::collections::BTreeMap;
use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use bourse_core::command::{CommandKind, SequencedCommand};
use bourse_core::config::Config;
use bourse_core::event::Event;
use bourse_core::ids::Seq;
use bourse_core::limits::IDEMPOTENCY_ENTRIES_MAX;
use bourse_core::{Capacity, Engine, StateHash};
use bourse_journal::codec::{Checkpoint, command_kind, decode_command, encode_command};
use bourse_journal::record::KIND_CHECKPOINT;
use bourse_journal::{
    Durability, FileStorage, JournalConfig, JournalError, JournalWriter, Storage, open_and_check, read_from,
};
use bourse_snapshots::recovery::checkpoints_from;
use bourse_snapshots::snapshot::{SnapshotHeader, Written};
use bourse_snapshots::{DataStores, load_newest, recover, write_snapshot};
use hdrhistogram::Histogram;

use super::exchange::{self, Exchange, LEVELS_MAX};
use super::snapshot::{LoadSteps, load_step_by_step};
use super::{
    MIB, Spread, fresh_page_touch_ns, load_average, load_note, megabytes_per_sec, millis, millis_each, scratch_dir,
    with_load,
};
use crate::clock::{self, ClockOverhead};
use crate::machine::Machine;
use crate::report::{BenchResult, Extra, Percentiles, Report, latency_histogram};
use workload::{Generator, MIX_TEXT};

/// Command time between consecutive commands: 1 µs.
const COMMAND_SPACING_NS: u64 = 1_000;
/// Commands appended between two commits while writing the journal.
const COMMIT_EVERY: u64 = 256;
const SEGMENT_BYTES: u64 = 64 * MIB;
/// A generous estimate of journal bytes per command and snapshot bytes per command
/// before it, for the disk check.
const ESTIMATED_JOURNAL_BYTES_PER_COMMAND: u64 = 112;
const ESTIMATED_SNAPSHOT_BYTES_PER_COMMAND: u64 = 80;
/// The target.
const REPLAY_TARGET_COMMANDS_PER_SEC: f64 = 3_000_000.0;
/// Below this share of accepted commands, the workload did not do what it claims.
const ACCEPTED_PERCENT_MIN: f64 = 95.0;
/// Events one command may produce before the buffer grows.
const EVENTS_CAPACITY: usize = 256;

/// Options of the `recovery` suite.
#[derive(clap::Args, Debug)]
pub(crate) struct Args {
    /// Directory to write the journal and snapshot in [default: the system temporary directory].
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Commands in the journal, setup included.
    #[arg(long, default_value_t = 10_000_000)]
    commands: u64,
    /// Accounts, each funded with two assets.
    #[arg(long, default_value_t = 100_000)]
    accounts: u32,
    /// Markets (1 to 16).
    #[arg(long, default_value_t = 8)]
    markets: u32,
    /// Ticks from the mid the deepest passive order may rest at, per side.
    #[arg(long, default_value_t = 1_000)]
    levels: u64,
    /// Where the snapshot is taken, in percent of the commands.
    #[arg(long, default_value_t = 95, value_parser = clap::value_parser!(u64).range(1..=99))]
    snapshot_at_percent: u64,
    /// Timed recoveries of each kind; medians are reported.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..))]
    runs: u32,
    /// Seed of the workload generator.
    #[arg(long, default_value_t = 42)]
    seed: u64,
}

/// Where the files go: the journal, the snapshot beside it, and an empty snapshot
/// directory for recoveries from no snapshot.
struct Layout {
    journal: Arc<dyn Storage>,
    snapshots: Arc<dyn Storage>,
    no_snapshots: Arc<dyn Storage>,
}

impl std::fmt::Debug for Layout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Layout").field("journal", &self.journal.describe("")).finish_non_exhaustive()
    }
}

impl Layout {
    fn new(root: &Path) -> anyhow::Result<Self> {
        Ok(Self {
            journal: Arc::new(FileStorage::new(root.join("journal"))?),
            snapshots: Arc::new(FileStorage::new(root.join("snapshots"))?),
            no_snapshots: Arc::new(FileStorage::new(root.join("no-snapshots"))?),
        })
    }

    fn stores(&self, with_snapshot: bool) -> DataStores {
        let snapshots = if with_snapshot { &self.snapshots } else { &self.no_snapshots };
        DataStores { journal: Arc::clone(&self.journal), snapshots: Arc::clone(snapshots) }
    }
}

pub(crate) fn run(args: &Args) -> anyhow::Result<Report> {
    let load_at_start = load_average();
    let exchange = Exchange::new(args.accounts, args.markets)?;
    check_args(args, exchange)?;
    let (scratch, disk) = scratch_dir(args.dir.as_ref(), "recovery")?;
    let needed = args.commands * ESTIMATED_JOURNAL_BYTES_PER_COMMAND
        + 2 * SEGMENT_BYTES
        + args.commands * args.snapshot_at_percent / 100 * ESTIMATED_SNAPSHOT_BYTES_PER_COMMAND;
    disk.ensure_room(needed, "the journal and snapshot", "lower --commands or choose another --dir")?;
    eprintln!("[recovery] data in {} on {disk} ({} MiB free)", scratch.path().display(), disk.available_bytes / MIB);
    let layout = Layout::new(scratch.path())?;
    let config = exchange::config(args.markets)?;
    let capacity = capacity(args, exchange);
    eprintln!("[recovery] measuring the cost of a clock pair and of fresh memory");
    let clock = clock::measure_overhead();
    let fresh_page_ns = fresh_page_touch_ns();

    let started = Instant::now();
    let generated = generate(&layout, exchange, args, &config, capacity)?;
    eprintln!(
        "[recovery] journal written in {:.1?}: {} records, {} MiB; snapshot at {} ({} MiB)",
        started.elapsed(),
        generated.records,
        generated.journal_bytes / MIB,
        generated.snapshot_seq.get(),
        generated.snapshot_bytes / MIB
    );
    let components = measure_components(&layout, capacity, &generated)?;
    let mut results = Vec::new();
    for with_snapshot in [false, true] {
        let stores = layout.stores(with_snapshot);
        let kind = if with_snapshot { "from the snapshot" } else { "from no snapshot" };
        let mut runs = Vec::new();
        for run in 0..args.runs {
            let measured = recover_once(&stores, &config, capacity, &generated, None)?;
            eprintln!(
                "[recovery] {kind}, run {}/{}: restart {:.2?}, {} replayed at {:.0} commands/s",
                run + 1,
                args.runs,
                measured.total,
                measured.replayed,
                measured.replay_rate()
            );
            runs.push(measured);
        }
        let mut histogram = latency_histogram();
        let latency = recover_once(&stores, &config, capacity, &generated, Some(&mut histogram))?;
        eprintln!("[recovery] {kind}: latency run done ({:.2?})", latency.total);
        let measured = Measured { runs, latency, histogram };
        let mut result = result(with_snapshot, &generated, &components, &measured, &clock);
        result.extra("fresh_page_touch_ns", Extra::Ratio(fresh_page_ns));
        results.push(result);
    }
    Ok(Report {
        suite: "recovery".to_owned(),
        machine: format!("{}; data on {disk}", Machine::detect()),
        results: with_load(results, &load_at_start),
        notes: notes(args, &generated, &clock, &load_at_start),
    })
}

fn check_args(args: &Args, exchange: Exchange) -> anyhow::Result<()> {
    let setup = exchange.setup_command_count();
    ensure!(
        args.commands >= setup + 100,
        "--commands {} leaves no room after the {setup} setup commands of {} accounts",
        args.commands,
        args.accounts
    );
    ensure!((2..=LEVELS_MAX).contains(&args.levels), "--levels must be 2..={LEVELS_MAX}");
    // Nearly half the stream is keyed, and no key expires within the run (a day of
    // command time is 86 billion commands at 1 µs).
    ensure!(
        args.commands / 2 + 2 * u64::from(args.accounts) <= IDEMPOTENCY_ENTRIES_MAX as u64,
        "--commands is too large: the idempotency table holds at most {IDEMPOTENCY_ENTRIES_MAX} entries"
    );
    Ok(())
}

/// Tables sized for the stream, as a runtime's configuration would size them.
fn capacity(args: &Args, exchange: Exchange) -> Capacity {
    let commands = args.commands as usize;
    let keyed = commands * 45 / 100;
    Capacity {
        accounts: exchange.accounts as usize,
        payments: keyed,
        idempotency_keys: (keyed + 2 * exchange.accounts as usize).min(IDEMPOTENCY_ENTRIES_MAX),
        orders: commands / 8,
    }
}

/// Outcomes per command kind: (accepted, rejected).
type Tally = BTreeMap<CommandKind, (u64, u64)>;

/// What writing the journal produced.
#[derive(Debug)]
struct Generated {
    commands: u64,
    records: u64,
    journal_bytes: u64,
    segments: u64,
    last_seq: Seq,
    final_hash: StateHash,
    snapshot_seq: Seq,
    snapshot_bytes: u64,
    /// The snapshot's file name and header.
    snapshot: (String, SnapshotHeader),
    resting_orders: u64,
    tally: Tally,
    /// Each `apply` while writing, timed.
    apply: Histogram<u64>,
}

fn generate(
    layout: &Layout,
    exchange: Exchange,
    args: &Args,
    config: &Config,
    capacity: Capacity,
) -> anyhow::Result<Generated> {
    let report = open_and_check(&layout.journal, true)?;
    let journal_config = JournalConfig { segment_bytes: SEGMENT_BYTES, durability: Durability::Async };
    let mut writer = JournalWriter::new(Arc::clone(&layout.journal), journal_config, &report)?;
    let mut engine = Engine::with_capacity(config, capacity);
    let mut generator = Generator::new(exchange, args.levels, args.seed);
    let (mut payload, mut events) = (Vec::with_capacity(256), Vec::with_capacity(EVENTS_CAPACITY));
    let (mut tally, mut apply) = (Tally::new(), latency_histogram());
    let setup = exchange.setup_command_count();
    let snapshot_after = args.commands * args.snapshot_at_percent / 100;
    let mut snapshot = None;
    eprintln!("[recovery] writing the journal: {} commands ({setup} of setup)", args.commands);
    for index in 0..args.commands {
        let command = if index < setup { exchange.setup_command(index) } else { generator.next(&engine) };
        let timestamp = exchange::time_at(index * COMMAND_SPACING_NS);
        encode_command(&command, &mut payload);
        let seq = writer.append(timestamp, command_kind(&command), &payload)?;
        let sequenced = SequencedCommand { seq, timestamp, command };
        events.clear();
        let started = Instant::now();
        engine.apply(&sequenced, &mut events);
        apply.saturating_record(started.elapsed().as_nanos() as u64);
        let rejected = events.iter().any(|event| matches!(event, Event::Rejected { .. }));
        let counts = tally.entry(sequenced.command.kind()).or_insert((0, 0));
        if rejected {
            counts.1 += 1;
        } else {
            counts.0 += 1;
        }
        generator.observe(&events);
        if index % COMMIT_EVERY == COMMIT_EVERY - 1 {
            writer.commit()?;
        }
        if index + 1 == snapshot_after {
            snapshot = Some(take_snapshot(layout, &engine, &mut writer, &mut payload)?);
        }
        if (index + 1) % 1_000_000 == 0 {
            eprintln!("[recovery] ... {} commands", index + 1);
        }
    }
    writer.sync()?;
    let written = snapshot.context("the snapshot was taken")?;
    let (accepted, rejected) = tally.values().fold((0, 0), |(yes, no), (a, r)| (yes + a, no + r));
    let accepted_percent = 100.0 * accepted as f64 / (accepted + rejected) as f64;
    ensure!(
        accepted_percent >= ACCEPTED_PERCENT_MIN,
        "only {accepted_percent:.2}% of the commands were accepted: {tally:?}"
    );
    let stats = writer.stats();
    Ok(Generated {
        commands: args.commands,
        records: stats.records,
        journal_bytes: stats.bytes,
        segments: stats.segments_created,
        last_seq: Seq::new(writer.next_seq().get() - 1),
        final_hash: engine.state_hash(),
        snapshot_seq: written.header.seq,
        snapshot_bytes: written.bytes,
        snapshot: (written.name, written.header),
        resting_orders: engine.orders().len() as u64,
        tally,
        apply,
    })
}

/// What the runtime does at a snapshot: the state and its hash, the file, then a
/// checkpoint record in the journal.
fn take_snapshot(
    layout: &Layout,
    engine: &Engine,
    writer: &mut JournalWriter,
    payload: &mut Vec<u8>,
) -> anyhow::Result<Written> {
    let seq = engine.last_seq().context("commands were applied")?;
    let state = engine.export_state();
    let hash = engine.state_hash();
    let written = write_snapshot(&layout.snapshots, seq, hash, &state, 2)?;
    Checkpoint::new(seq, hash).encode(payload);
    writer.append(engine.now(), KIND_CHECKPOINT, payload)?;
    eprintln!("[recovery] snapshot at sequence {}: {} MiB", seq.get(), written.bytes / MIB);
    Ok(written)
}

/// The parts of a recovery, each timed alone.
#[derive(Clone, Copy, Debug)]
struct Components {
    open_and_check: Duration,
    checkpoint_scan: Duration,
    decode_only: Duration,
    decoded: u64,
    snapshot_load: Duration,
    snapshot_steps: LoadSteps,
    journal_bytes_used: u64,
}

fn measure_components(layout: &Layout, capacity: Capacity, generated: &Generated) -> anyhow::Result<Components> {
    let started = Instant::now();
    let report = open_and_check(&layout.journal, false)?;
    let open_and_check_time = started.elapsed();
    let journal_bytes_used = report.segments.iter().map(|segment| segment.bytes_used).sum();

    let started = Instant::now();
    let checkpoints = checkpoints_from(&layout.journal, Seq::new(1), report.last_seq)?;
    let checkpoint_scan = started.elapsed();
    ensure!(checkpoints.len() == 1, "one checkpoint in the journal");

    let mut decoded = 0;
    let started = Instant::now();
    read_from::<JournalError>(&layout.journal, Seq::new(1), |record| {
        if record.kind != KIND_CHECKPOINT {
            black_box(decode_command(record.seq, record.kind, record.payload)?);
            decoded += 1;
        }
        Ok(())
    })?;
    let decode_only = started.elapsed();

    let started = Instant::now();
    let (loaded, failures) = load_newest(&layout.snapshots, capacity)?;
    let snapshot_load = started.elapsed();
    ensure!(loaded.is_some() && failures.is_empty(), "the snapshot loads");
    drop(loaded);
    let (name, header) = &generated.snapshot;
    let snapshot_steps = load_step_by_step(&layout.snapshots, name, header, capacity)?;
    eprintln!(
        "[recovery] components: open_and_check {:.0} ms, checkpoint scan {:.0} ms, decode-only walk {:.0} ms, \
         snapshot load {:.0} ms",
        millis(open_and_check_time),
        millis(checkpoint_scan),
        millis(decode_only),
        millis(snapshot_load)
    );
    Ok(Components {
        open_and_check: open_and_check_time,
        checkpoint_scan,
        decode_only,
        decoded,
        snapshot_load,
        snapshot_steps,
        journal_bytes_used,
    })
}

/// One timed `recover`.
#[derive(Clone, Copy, Debug)]
struct RecoveryRun {
    /// The whole call: open and check, snapshot load, checkpoint scan, replay.
    total: Duration,
    /// From the call to the first replayed command.
    before_replay: Duration,
    /// From the first replayed command to the return.
    replay: Duration,
    replayed: u64,
    checkpoints_verified: u64,
    snapshot: Option<Seq>,
}

impl RecoveryRun {
    fn replay_rate(&self) -> f64 {
        self.replayed as f64 / self.replay.as_secs_f64()
    }
}

/// Recovers once; with `histogram`, records the time between consecutive replayed
/// commands in it.
fn recover_once(
    stores: &DataStores,
    config: &Config,
    capacity: Capacity,
    generated: &Generated,
    histogram: Option<&mut Histogram<u64>>,
) -> anyhow::Result<RecoveryRun> {
    let mut first: Option<Instant> = None;
    let started = Instant::now();
    let recovered = match histogram {
        None => recover(stores, config, capacity, true, |_| {
            if first.is_none() {
                first = Some(Instant::now());
            }
        })?,
        Some(histogram) => {
            let mut previous: Option<Instant> = None;
            recover(stores, config, capacity, true, |_| {
                let now = Instant::now();
                match previous {
                    Some(previous) => histogram.saturating_record((now - previous).as_nanos() as u64),
                    None => first = Some(now),
                }
                previous = Some(now);
            })?
        }
    };
    let ended = Instant::now();
    let first = first.context("at least one command was replayed")?;
    ensure!(
        recovered.engine.state_hash() == generated.final_hash,
        "the recovered engine's state hash differs from the one that wrote the journal"
    );
    ensure!(
        recovered.engine.last_seq().is_some_and(|seq| seq <= generated.last_seq),
        "recovered up to the journal's end"
    );
    let run = RecoveryRun {
        total: ended - started,
        before_replay: first - started,
        replay: ended - first,
        replayed: recovered.replayed,
        checkpoints_verified: recovered.checkpoints_verified,
        snapshot: recovered.snapshot.as_ref().map(|(_, seq)| *seq),
    };
    drop(recovered);
    Ok(run)
}

/// The runs of one kind of recovery.
#[derive(Debug)]
struct Measured {
    runs: Vec<RecoveryRun>,
    latency: RecoveryRun,
    histogram: Histogram<u64>,
}

fn result(
    with_snapshot: bool,
    generated: &Generated,
    components: &Components,
    measured: &Measured,
    clock: &ClockOverhead,
) -> BenchResult {
    let runs = &measured.runs;
    let totals: Vec<Duration> = runs.iter().map(|run| run.total).collect();
    let replays: Vec<Duration> = runs.iter().map(|run| run.replay).collect();
    let befores: Vec<Duration> = runs.iter().map(|run| run.before_replay).collect();
    let (total, replay, before) = (Spread::of(&totals), Spread::of(&replays), Spread::of(&befores));
    let replayed = runs[0].replayed;
    let name = if with_snapshot {
        format!("recovery/from-snapshot-at-{}-of-{}", generated.snapshot_seq.get(), generated.last_seq.get())
    } else {
        format!("recovery/no-snapshot-{}-commands", generated.commands)
    };
    let mut result = BenchResult::new(name, replayed, replay.median, &measured.histogram);
    let rate = |elapsed: Duration| replayed as f64 / elapsed.as_secs_f64();
    result
        .extra("commands_in_journal", Extra::Count(generated.commands))
        .extra("journal_records", Extra::Count(generated.records))
        .extra("journal_mib", Extra::Ratio(generated.journal_bytes as f64 / MIB as f64))
        .extra("journal_bytes_per_record", Extra::Ratio(generated.journal_bytes as f64 / generated.records as f64))
        .extra("segments", Extra::Count(generated.segments))
        .extra("replayed", Extra::Count(replayed))
        .extra("runs", Extra::Count(runs.len() as u64))
        .extra("restart_ms_median", Extra::Ratio(millis(total.median)))
        .extra("restart_ms_min", Extra::Ratio(millis(total.min)))
        .extra("restart_ms_max", Extra::Ratio(millis(total.max)))
        .extra("restart_ms_each_run", Extra::Text(millis_each(&totals)))
        .extra("before_replay_ms_median", Extra::Ratio(millis(before.median)))
        .extra("replay_ms_median", Extra::Ratio(millis(replay.median)))
        .extra("replay_commands_per_sec_min", Extra::Ratio(rate(replay.max)))
        .extra("replay_commands_per_sec_max", Extra::Ratio(rate(replay.min)))
        .extra("restart_commands_per_sec", Extra::Ratio(rate(total.median)))
        .extra("checkpoints_verified", Extra::Count(runs[0].checkpoints_verified))
        .extra("target_replay_commands_per_sec", Extra::Ratio(REPLAY_TARGET_COMMANDS_PER_SEC))
        .extra(
            "meets_target",
            Extra::Text(if rate(replay.median) >= REPLAY_TARGET_COMMANDS_PER_SEC { "yes" } else { "no" }.into()),
        )
        .extra("latency_run_restart_ms", Extra::Ratio(millis(measured.latency.total)))
        .extra("latency_includes_clock_read_ns_mean", Extra::Ratio(clock.pair_ns_mean / 2.0));
    if with_snapshot {
        let from = runs[0].snapshot.map_or(0, Seq::get);
        result
            .extra("snapshot_seq", Extra::Count(from))
            .extra("snapshot_mib", Extra::Ratio(generated.snapshot_bytes as f64 / MIB as f64))
            .extra("component_snapshot_load_ms", Extra::Ratio(millis(components.snapshot_load)));
        let steps = &components.snapshot_steps;
        for (step, time) in [
            ("map", steps.map),
            ("crc32c", steps.crc),
            ("bytecheck", steps.validate),
            ("deserialize", steps.deserialize),
            ("from_state", steps.from_state),
            ("state_hash", steps.state_hash),
        ] {
            result.extra(&format!("component_snapshot_step_{step}_ms"), Extra::Ratio(millis(time)));
        }
        let from_state_mib = steps.from_state_bytes_allocated as f64 / MIB as f64;
        result.extra("component_snapshot_step_from_state_mib_allocated", Extra::Ratio(from_state_mib));
    }
    component_extras(&mut result, generated, components);
    result.extra("state_hash_matches", Extra::Text("yes (every run)".into()));
    result
}

/// The parts timed alone, and what writing the journal saw.
fn component_extras(result: &mut BenchResult, generated: &Generated, components: &Components) {
    let bytes = components.journal_bytes_used;
    let apply = Percentiles::of(&generated.apply);
    result
        .extra("component_open_and_check_ms", Extra::Ratio(millis(components.open_and_check)))
        .extra("component_open_and_check_mb_per_sec", Extra::Ratio(megabytes_per_sec(bytes, components.open_and_check)))
        .extra("component_checkpoint_scan_ms", Extra::Ratio(millis(components.checkpoint_scan)))
        .extra("component_walk_and_decode_ms", Extra::Ratio(millis(components.decode_only)))
        .extra(
            "component_walk_and_decode_commands_per_sec",
            Extra::Ratio(components.decoded as f64 / components.decode_only.as_secs_f64()),
        )
        .extra("writing_apply_ns_mean", Extra::Ratio(generated.apply.mean()))
        .extra("writing_apply_ns_p50", Extra::Count(apply.p50_ns))
        .extra("writing_apply_ns_p99", Extra::Count(apply.p99_ns))
        .extra("writing_apply_ns_p9999", Extra::Count(apply.p9999_ns))
        .extra("writing_apply_ns_max", Extra::Count(apply.max_ns))
        .extra("resting_orders_at_end", Extra::Count(generated.resting_orders));
    let (mut accepted, mut rejected) = (0, 0);
    for (kind, (yes, no)) in &generated.tally {
        let kind = format!("{kind:?}").to_lowercase();
        result.extra(&format!("{kind}_accepted"), Extra::Count(*yes));
        result.extra(&format!("{kind}_rejected"), Extra::Count(*no));
        accepted += yes;
        rejected += no;
    }
    result.extra("accepted_percent", Extra::Ratio(100.0 * accepted as f64 / (accepted + rejected).max(1) as f64));
}

fn notes(args: &Args, generated: &Generated, clock: &ClockOverhead, load_at_start: &str) -> Vec<String> {
    vec![
        load_note(load_at_start),
        format!(
            "ran: a journal of {} commands ({} accounts with an open and two deposits each, then {MIX_TEXT}) \
             on {} markets, written with JournalWriter (async, 64 MiB segments), {} records in {} MiB; \
             a snapshot and checkpoint at sequence {} ({}% of the commands).",
            generated.commands,
            args.accounts,
            args.markets,
            generated.records,
            generated.journal_bytes / MIB,
            generated.snapshot_seq.get(),
            args.snapshot_at_percent
        ),
        "ops = commands replayed; ops/s = replay speed (replayed / time from the first replayed command to \
         the return, median of the runs). restart_ms = the whole recover() call: open_and_check (walks \
         and CRCs the whole journal); load_newest (map, CRC, validate, deserialize, from_state, state \
         hash against the header); checkpoints_from (walks the journal again from the snapshot); with \
         a snapshot, its state hash against its checkpoint (computed again); then the replay (a third \
         walk, decoding and applying)."
            .to_owned(),
        format!(
            "latency columns: the time between consecutive replayed commands (walk + CRC + decode + apply \
             of one record), from one more recovery that reads the clock in the progress callback \
             (one read, ~{:.0} ns, per command); the max includes the checkpoint's state-hash check.",
            clock.pair_ns_mean / 2.0
        ),
        "component_*: each part timed alone, once. writing_apply_ns_*: Engine::apply of the same commands \
         while the journal was written, each timed (a clock pair included)."
            .to_owned(),
        "the journal and snapshot are read from the page cache; the recovered engine is dropped untimed.".to_owned(),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recovers_the_writing_engine_from_no_snapshot_and_from_the_snapshot() {
        let args = Args {
            dir: None,
            commands: 6_000,
            accounts: 200,
            markets: 2,
            levels: 30,
            snapshot_at_percent: 90,
            runs: 1,
            seed: 5,
        };
        let report = run(&args).unwrap();
        assert_eq!(report.results.len(), 2);
        // All 6,000 commands from no snapshot; from the snapshot at 5,400, the last 600.
        assert_eq!(report.results[0].ops, 6_000);
        assert_eq!(report.results[1].ops, 600);
        let verified = report.results[0].extras.iter().find(|(name, _)| name == "checkpoints_verified");
        assert_eq!(verified.map(|(_, value)| value), Some(&Extra::Count(1)));
    }

    #[test]
    fn refuses_a_stream_with_no_room_after_setup() {
        let args = Args {
            dir: None,
            commands: 100,
            accounts: 200,
            markets: 2,
            levels: 30,
            snapshot_at_percent: 90,
            runs: 1,
            seed: 5,
        };
        assert!(run(&args).is_err());
    }
}

//! The `snapshot` suite: the engine's whole state written to a snapshot file and
//! loaded back, validated, on real files.
//!
//! # The engine
//!
//! Built untimed through `Engine::apply` (see `exchange`): `--accounts` (default
//! 1,000,000) accounts with two funded assets each, then `--orders` (default
//! 1,000,000) passive GTC orders of accounts drawn uniformly, on `--markets` (default
//! 8) markets, 1 to `--levels` (default 2,000) ticks from each mid; every other order
//! carries a client order id. Orders are placed a day and a second of command time
//! after the deposits, so the deposits' idempotency entries have expired and the state
//! is accounts, balances, markets and books (`--keep-deposit-keys` places them right
//! after instead, keeping two idempotency entries per account). Every command must be
//! accepted and every order must rest, and `check_invariants()` must pass, before
//! anything is timed.
//!
//! # Runs (`--runs`, default 5), each writing to a new directory
//!
//! 1. Pause: `export_state()` then `state_hash()`, what the engine thread spends per
//!    snapshot in the runtime.
//! 2. Write: `write_snapshot` through `TimedStorage` around `FileStorage`: the total,
//!    and its file operations (create: the whole file written in zeros and fsynced;
//!    write: the copy into the mapping; msync; rename; directory fsync). The rest is
//!    serialization (rkyv) and the CRC32C of the payload, each also timed alone.
//! 3. Load: `load_snapshot` (map, both checksums, bytecheck validation, deserialize,
//!    `Engine::from_state`, state hash compared with the header): the total.
//! 4. Load, step by step: the same steps replicated on the same file, each timed.
//!
//! The loaded engine's hash must equal the original's, and the first run's loaded
//! engine must pass `check_invariants()`. Loads read a file just written, from the
//! page cache (a restart after a process crash); after a reboot, add the time to read
//! the file from disk.

use std::hint::black_box;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use bourse_core::book::Side;
use bourse_core::command::{Command, SequencedCommand};
use bourse_core::event::Event;
use bourse_core::ids::{AccountId, Seq};
use bourse_core::limits::{NANOS_PER_DAY, NANOS_PER_SECOND};
use bourse_core::state::{ArchivedEngineState, EngineState};
use bourse_core::{Capacity, Engine};
use bourse_journal::{FileStorage, Storage};
use bourse_snapshots::snapshot::{SNAPSHOT_HEADER_BYTES, SnapshotHeader, load_snapshot, write_snapshot};
use hdrhistogram::Histogram;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rkyv::rancor;

use super::exchange::{self, Exchange, LEVELS_MAX};
use super::timed_storage::{IoOp, IoTimes, TimedStorage};
use super::{
    MIB, Spread, fresh_page_touch_ns, load_average, load_note, megabytes_per_sec, millis, millis_each, scratch_dir,
    with_load,
};
use crate::alloc_counter::AllocSnapshot;
use crate::machine::Machine;
use crate::report::{BenchResult, Extra, Report, latency_histogram};

/// Command time between two setup or order commands: 1 µs.
const COMMAND_SPACING_NS: u64 = 1_000;
/// Snapshots kept by `write_snapshot` (each run writes to a directory of its own).
const SNAPSHOTS_KEPT: usize = 2;
/// A generous estimate of snapshot bytes per account and per order, for the disk check.
const ESTIMATED_BYTES_PER_ROW: u64 = 256;
/// The targets.
const WRITE_TARGET: Duration = Duration::from_secs(1);
const LOAD_TARGET: Duration = Duration::from_millis(300);

/// Options of the `snapshot` suite.
#[derive(clap::Args, Debug)]
pub(crate) struct Args {
    /// Directory to write the snapshots in [default: the system temporary directory].
    #[arg(long)]
    dir: Option<std::path::PathBuf>,
    /// Accounts, each funded with two assets.
    #[arg(long, default_value_t = 1_000_000)]
    accounts: u32,
    /// Resting orders.
    #[arg(long, default_value_t = 1_000_000)]
    orders: u32,
    /// Markets (1 to 16).
    #[arg(long, default_value_t = 8)]
    markets: u32,
    /// Ticks from the mid the deepest order may rest at, per side.
    #[arg(long, default_value_t = 2_000)]
    levels: u64,
    /// Place orders right after the deposits, so their idempotency entries are kept.
    #[arg(long)]
    keep_deposit_keys: bool,
    /// Runs; medians are reported.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..))]
    runs: u32,
    /// Seed of the order generator.
    #[arg(long, default_value_t = 42)]
    seed: u64,
}

pub(crate) fn run(args: &Args) -> anyhow::Result<Report> {
    let load_at_start = load_average();
    let exchange = Exchange::new(args.accounts, args.markets)?;
    ensure!((2..=LEVELS_MAX).contains(&args.levels), "--levels must be 2..={LEVELS_MAX}");
    let (scratch, disk) = scratch_dir(args.dir.as_ref(), "snapshot")?;
    let estimate = ESTIMATED_BYTES_PER_ROW * (u64::from(args.accounts) + u64::from(args.orders));
    disk.ensure_room(2 * estimate, "a snapshot", "lower --accounts and --orders or choose another --dir")?;
    eprintln!("[snapshot] snapshots in {} on {disk}", scratch.path().display());
    let fresh_page_ns = fresh_page_touch_ns();

    let capacity = Capacity {
        accounts: args.accounts as usize,
        orders: args.orders as usize,
        idempotency_keys: if args.keep_deposit_keys { 2 * args.accounts as usize } else { 0 },
        payments: 0,
    };
    let started = Instant::now();
    let engine = build_engine(exchange, args, capacity)?;
    eprintln!("[snapshot] engine built and checked in {:.2?}", started.elapsed());
    let shape = Shape::of(&engine);

    let mut runs = Vec::new();
    for run in 0..args.runs {
        let dir = scratch.path().join(format!("run-{run}"));
        let measured = measure_run(&engine, &dir, capacity, run == 0)?;
        std::fs::remove_dir_all(&dir).with_context(|| format!("removing {}", dir.display()))?;
        eprintln!(
            "[snapshot] run {}/{}: pause {:.1} ms, write {:.1} ms, load {:.1} ms, {} MiB",
            run + 1,
            args.runs,
            millis(measured.export + measured.hash),
            millis(measured.write.total),
            millis(measured.load_total),
            measured.file_bytes / MIB
        );
        runs.push(measured);
    }
    Ok(Report {
        suite: "snapshot".to_owned(),
        machine: format!("{}; snapshots on {disk}", Machine::detect()),
        results: with_load(results(&shape, &runs, args, fresh_page_ns), &load_at_start),
        notes: notes(&load_at_start, fresh_page_ns),
    })
}

/// The engine of the module documentation, checked.
fn build_engine(exchange: Exchange, args: &Args, capacity: Capacity) -> anyhow::Result<Engine> {
    let config = exchange::config(args.markets)?;
    let mut engine = Engine::with_capacity(&config, capacity);
    let mut events = Vec::with_capacity(64);
    let mut seq = 0;
    let mut apply = |engine: &mut Engine, offset_ns: u64, command: Command| -> anyhow::Result<()> {
        seq += 1;
        let sequenced = SequencedCommand { seq: Seq::new(seq), timestamp: exchange::time_at(offset_ns), command };
        events.clear();
        engine.apply(&sequenced, &mut events);
        if let Some(event) = events.iter().find(|event| matches!(event, Event::Rejected { .. } | Event::Trade { .. })) {
            bail!("building the engine: {:?} was answered with {event:?}", sequenced.command);
        }
        Ok(())
    };
    let setup_count = exchange.setup_command_count();
    eprintln!("[snapshot] building: {setup_count} setup commands, then {} orders", args.orders);
    for index in 0..setup_count {
        apply(&mut engine, index * COMMAND_SPACING_NS, exchange.setup_command(index))?;
    }
    let gap = if args.keep_deposit_keys { 0 } else { NANOS_PER_DAY + NANOS_PER_SECOND };
    let orders_start = setup_count * COMMAND_SPACING_NS + gap;
    let mut rng = ChaCha8Rng::seed_from_u64(args.seed);
    for index in 0..u64::from(args.orders) {
        let account = AccountId::new(rng.random_range(0..exchange.accounts));
        let client_order_id = (index % 2 == 1).then_some(u128::from(index) + 1);
        let order = exchange.passive_order(&mut rng, account, args.levels, client_order_id);
        apply(&mut engine, orders_start + index * COMMAND_SPACING_NS, Command::PlaceOrder(order))?;
    }
    ensure!(engine.orders().len() == args.orders as usize, "every order rests");
    engine.check_invariants();
    Ok(engine)
}

/// What the engine holds.
#[derive(Clone, Copy, Debug, Default)]
struct Shape {
    accounts: u64,
    balances: u64,
    orders: u64,
    levels: u64,
    markets: u64,
    idempotency_entries: u64,
    payment_records: u64,
}

impl Shape {
    /// Counted from the engine directly, so that no untimed export warms the
    /// allocator for the first timed one.
    fn of(engine: &Engine) -> Self {
        let levels = engine
            .markets()
            .iter()
            .map(|market| (market.book().side(Side::Buy).len() + market.book().side(Side::Sell).len()) as u64)
            .sum();
        let balances = (0..engine.account_count() as u32)
            .filter_map(|account| engine.account(AccountId::new(account)))
            .map(|account| account.balances().len() as u64)
            .sum();
        Self {
            accounts: engine.account_count() as u64,
            balances,
            orders: engine.orders().len() as u64,
            levels,
            markets: engine.markets().len() as u64,
            idempotency_entries: engine.idempotency_entries() as u64,
            payment_records: engine.payment_records() as u64,
        }
    }
}

/// A write, with its file operations.
#[derive(Clone, Copy, Debug, Default)]
struct WriteTimes {
    total: Duration,
    create: Duration,
    write: Duration,
    msync: Duration,
    rename: Duration,
    dir_fsync: Duration,
    /// Listing and removing old snapshots and temporary files.
    prune: Duration,
    /// The total less every file operation: serialization and CRC32C.
    not_io: Duration,
}

/// The steps of a load, replicated and timed one by one.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct LoadSteps {
    pub(crate) map: Duration,
    pub(crate) crc: Duration,
    pub(crate) validate: Duration,
    pub(crate) deserialize: Duration,
    pub(crate) from_state: Duration,
    pub(crate) state_hash: Duration,
    /// Bytes `Engine::from_state` allocated.
    pub(crate) from_state_bytes_allocated: u64,
}

impl LoadSteps {
    pub(crate) fn sum(&self) -> Duration {
        self.map + self.crc + self.validate + self.deserialize + self.from_state + self.state_hash
    }
}

/// One run.
#[derive(Clone, Copy, Debug, Default)]
struct RunTimes {
    export: Duration,
    hash: Duration,
    write: WriteTimes,
    serialize_alone: Duration,
    load_total: Duration,
    load_steps: LoadSteps,
    file_bytes: u64,
    /// Bytes allocated by `export_state`, `write_snapshot` and `load_snapshot`.
    export_bytes_allocated: u64,
    write_bytes_allocated: u64,
    load_bytes_allocated: u64,
}

fn measure_run(engine: &Engine, dir: &Path, capacity: Capacity, check: bool) -> anyhow::Result<RunTimes> {
    let times = Arc::new(IoTimes::default());
    let files: Arc<dyn Storage> = Arc::new(FileStorage::new(dir)?);
    let storage: Arc<dyn Storage> = Arc::new(TimedStorage::new(Arc::clone(&files), Arc::clone(&times)));
    let seq = engine.last_seq().context("the engine applied commands")?;

    let allocations_before = AllocSnapshot::now();
    let started = Instant::now();
    let state = engine.export_state();
    let exported = Instant::now();
    let export_bytes_allocated = AllocSnapshot::now().since(allocations_before).bytes_allocated;
    let hash = engine.state_hash();
    let (export, hash_time) = (exported - started, exported.elapsed());

    times.reset();
    let allocations_before = AllocSnapshot::now();
    let started = Instant::now();
    let written = write_snapshot(&storage, seq, hash, &state, SNAPSHOTS_KEPT)?;
    let write = write_times(started.elapsed(), &times);
    let write_bytes_allocated = AllocSnapshot::now().since(allocations_before).bytes_allocated;
    let started = Instant::now();
    let serialized = rkyv::to_bytes::<rancor::Error>(&state).context("serializing")?;
    let serialize_alone = started.elapsed();
    ensure!(serialized.len() as u64 == written.header.payload_bytes, "serialization is deterministic");
    drop((serialized, state));

    let allocations_before = AllocSnapshot::now();
    let started = Instant::now();
    let loaded = load_snapshot(&files, &written.name, capacity)?;
    let load_total = started.elapsed();
    let load_bytes_allocated = AllocSnapshot::now().since(allocations_before).bytes_allocated;
    ensure!(loaded.engine.state_hash() == hash, "the loaded engine has the state hash of the one saved");
    if check {
        loaded.engine.check_invariants();
    }
    drop(loaded);
    let load_steps = load_step_by_step(&files, &written.name, &written.header, capacity)?;
    Ok(RunTimes {
        export,
        hash: hash_time,
        write,
        serialize_alone,
        load_total,
        load_steps,
        file_bytes: written.bytes,
        export_bytes_allocated,
        write_bytes_allocated,
        load_bytes_allocated,
    })
}

fn write_times(total: Duration, times: &IoTimes) -> WriteTimes {
    WriteTimes {
        total,
        create: times.time(IoOp::Create),
        write: times.time(IoOp::Write),
        msync: times.time(IoOp::Sync),
        rename: times.time(IoOp::Rename),
        dir_fsync: times.time(IoOp::SyncDir),
        prune: times.time(IoOp::List) + times.time(IoOp::Remove),
        not_io: total.saturating_sub(times.total()),
    }
}

/// `load_snapshot`'s steps on the snapshot `name` with `header`, each timed: map,
/// CRC32C of the payload, bytecheck validation, deserialization, `Engine::from_state`,
/// and the state hash (which must be the header's).
pub(crate) fn load_step_by_step(
    files: &Arc<dyn Storage>,
    name: &str,
    header: &SnapshotHeader,
    capacity: Capacity,
) -> anyhow::Result<LoadSteps> {
    let started = Instant::now();
    let file = files.open(name)?;
    let map = started.elapsed();
    let end = SNAPSHOT_HEADER_BYTES + header.payload_bytes as usize;
    let payload = file.bytes().get(SNAPSHOT_HEADER_BYTES..end).context("payload within the file")?;

    let started = Instant::now();
    let crc = crc32c::crc32c(payload);
    let crc_time = started.elapsed();
    ensure!(crc == header.payload_crc, "payload checksum");

    let started = Instant::now();
    let archived = rkyv::access::<ArchivedEngineState, rancor::Error>(payload).context("validating the archive")?;
    let validate = started.elapsed();

    let started = Instant::now();
    let state = rkyv::deserialize::<EngineState, rancor::Error>(archived).context("deserializing")?;
    let deserialize = started.elapsed();

    let allocations_before = AllocSnapshot::now();
    let started = Instant::now();
    let engine = Engine::from_state(&state, capacity)?;
    let from_state = started.elapsed();
    let from_state_bytes_allocated = AllocSnapshot::now().since(allocations_before).bytes_allocated;

    let started = Instant::now();
    let rebuilt = engine.state_hash();
    let state_hash = started.elapsed();
    ensure!(rebuilt == header.state_hash, "the rebuilt engine has the saved state hash");
    black_box(&engine);
    Ok(LoadSteps { map, crc: crc_time, validate, deserialize, from_state, state_hash, from_state_bytes_allocated })
}

/// Bytes as mebibytes, for the report.
fn mib(bytes: u64) -> Extra {
    Extra::Ratio(bytes as f64 / MIB as f64)
}

/// The spread of one figure over the runs.
fn spread(runs: &[RunTimes], figure: impl Fn(&RunTimes) -> Duration) -> Spread {
    Spread::of(&runs.iter().map(figure).collect::<Vec<_>>())
}

/// A result whose operation is one whole snapshot step: ops = runs, the time the
/// median, the percentiles those of the runs' samples.
fn per_run_result(name: &str, samples: &[Duration]) -> BenchResult {
    let mut histogram: Histogram<u64> = latency_histogram();
    for sample in samples {
        histogram.saturating_record(sample.as_nanos() as u64);
    }
    let median = Spread::of(samples).median;
    let mut result = BenchResult::new(name, samples.len() as u64, median * samples.len() as u32, &histogram);
    let spread = Spread::of(samples);
    result
        .extra("ms_median", Extra::Ratio(millis(spread.median)))
        .extra("ms_min", Extra::Ratio(millis(spread.min)))
        .extra("ms_max", Extra::Ratio(millis(spread.max)))
        .extra("ms_each_run", Extra::Text(millis_each(samples)));
    result
}

fn shape_extras(result: &mut BenchResult, shape: &Shape, args: &Args) {
    result
        .extra("accounts", Extra::Count(shape.accounts))
        .extra("balances", Extra::Count(shape.balances))
        .extra("orders", Extra::Count(shape.orders))
        .extra("markets", Extra::Count(shape.markets))
        .extra("price_levels", Extra::Count(shape.levels))
        .extra("idempotency_entries", Extra::Count(shape.idempotency_entries))
        .extra("payment_records", Extra::Count(shape.payment_records))
        .extra("seed", Extra::Count(args.seed));
}

fn results(shape: &Shape, runs: &[RunTimes], args: &Args, fresh_page_ns: f64) -> Vec<BenchResult> {
    let file_bytes = runs[0].file_bytes;
    let ms =
        |runs: &[RunTimes], figure: &dyn Fn(&RunTimes) -> Duration| Extra::Ratio(millis(spread(runs, figure).median));
    let samples = |figure: &dyn Fn(&RunTimes) -> Duration| runs.iter().map(figure).collect::<Vec<_>>();

    let mut pause =
        per_run_result("snapshot/pause (export_state + state_hash)", &samples(&|run| run.export + run.hash));
    shape_extras(&mut pause, shape, args);
    pause
        .extra("export_state_ms_median", ms(runs, &|run| run.export))
        .extra("state_hash_ms_median", ms(runs, &|run| run.hash))
        .extra("export_state_mib_allocated", mib(runs[0].export_bytes_allocated));

    let write_samples = samples(&|run| run.write.total);
    let mut write = per_run_result("snapshot/write (serialize, create, write, msync, rename)", &write_samples);
    let write_median = Spread::of(&write_samples).median;
    write
        .extra("file_bytes", Extra::Count(file_bytes))
        .extra("file_mib", Extra::Ratio(file_bytes as f64 / MIB as f64))
        .extra("bytes_per_order_and_account", Extra::Ratio(file_bytes as f64 / (shape.accounts + shape.orders) as f64))
        .extra("mb_per_sec", Extra::Ratio(megabytes_per_sec(file_bytes, write_median)))
        .extra("create_zero_fill_fsync_ms_median", ms(runs, &|run| run.write.create))
        .extra("copy_into_mapping_ms_median", ms(runs, &|run| run.write.write))
        .extra("msync_ms_median", ms(runs, &|run| run.write.msync))
        .extra("rename_ms_median", ms(runs, &|run| run.write.rename))
        .extra("dir_fsync_ms_median", ms(runs, &|run| run.write.dir_fsync))
        .extra("prune_ms_median", ms(runs, &|run| run.write.prune))
        .extra("serialize_and_crc_ms_median", ms(runs, &|run| run.write.not_io))
        .extra("serialize_alone_ms_median", ms(runs, &|run| run.serialize_alone))
        .extra("write_mib_allocated", mib(runs[0].write_bytes_allocated))
        .extra("target_ms", Extra::Ratio(millis(WRITE_TARGET)))
        .extra("meets_target", Extra::Text(if write_median < WRITE_TARGET { "yes" } else { "no" }.into()));

    let load_samples = samples(&|run| run.load_total);
    let mut load = per_run_result("snapshot/load (map, checksums, validate, rebuild, hash check)", &load_samples);
    let load_median = Spread::of(&load_samples).median;
    load.extra("file_bytes", Extra::Count(file_bytes))
        .extra("mb_per_sec", Extra::Ratio(megabytes_per_sec(file_bytes, load_median)))
        .extra("step_map_ms_median", ms(runs, &|run| run.load_steps.map))
        .extra("step_crc32c_ms_median", ms(runs, &|run| run.load_steps.crc))
        .extra("step_bytecheck_ms_median", ms(runs, &|run| run.load_steps.validate))
        .extra("step_deserialize_ms_median", ms(runs, &|run| run.load_steps.deserialize))
        .extra("step_from_state_ms_median", ms(runs, &|run| run.load_steps.from_state))
        .extra("step_state_hash_ms_median", ms(runs, &|run| run.load_steps.state_hash))
        .extra("steps_sum_ms_median", ms(runs, &|run| run.load_steps.sum()))
        .extra("load_mib_allocated", mib(runs[0].load_bytes_allocated))
        .extra("step_from_state_mib_allocated", mib(runs[0].load_steps.from_state_bytes_allocated))
        .extra("target_ms", Extra::Ratio(millis(LOAD_TARGET)))
        .extra("meets_target", Extra::Text(if load_median < LOAD_TARGET { "yes" } else { "no" }.into()))
        .extra("state_hash_matches", Extra::Text("yes (every run)".into()))
        .extra("invariants_checked", Extra::Text("yes (built engine; first run's loaded engine)".into()));
    for result in [&mut pause, &mut write, &mut load] {
        result.extra("fresh_page_touch_ns", Extra::Ratio(fresh_page_ns));
    }
    vec![pause, write, load]
}

fn notes(load_at_start: &str, fresh_page_ns: f64) -> Vec<String> {
    vec![
        load_note(load_at_start),
        format!(
            "fresh memory: the first write to a fresh 4 KiB page costs {fresh_page_ns:.0} ns here (page \
             fault and zeroing, measured on 256 MiB), {:.0} ms per 100 MiB: every *_mib_allocated figure \
             pays it where the allocator hands out new pages (the first run most of all).",
            fresh_page_ns * 25_600.0 / 1e6
        ),
        "ops = runs (one op = one whole snapshot step); ops/s = 1 / median; the percentile columns are \
         over the runs' samples, so with 5 runs p99 and above are the slowest run."
            .to_owned(),
        "pause: what the engine thread stops for per snapshot (export_state + state_hash); the write runs \
         on the snapshot writer thread in the runtime."
            .to_owned(),
        "write: write_snapshot's whole time; its file operations timed through a wrapping Storage. \
         FileStorage::create writes the whole length in zeros and fsyncs before the payload is copied \
         in and msynced, so the file reaches the disk twice; serialize_and_crc is the rest (rkyv \
         serialization into a growing buffer, and CRC32C); serialize_alone times rkyv::to_bytes again \
         right after, when the allocator still holds the pages the first one faulted in."
            .to_owned(),
        "load: load_snapshot's whole time from a warm page cache (the file was just written); the \
         step_* figures replicate its steps on the same file, each timed alone."
            .to_owned(),
        "single-threaded throughout; the machine's other work (builds, other benchmarks) shares the \
         cores and the disk."
            .to_owned(),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_small_engine_round_trips_through_a_snapshot() {
        let args = Args {
            dir: None,
            accounts: 300,
            orders: 500,
            markets: 3,
            levels: 40,
            keep_deposit_keys: false,
            runs: 2,
            seed: 3,
        };
        let report = run(&args).unwrap();
        assert_eq!(report.results.len(), 3);
        let orders = report.results[0].extras.iter().find(|(name, _)| name == "orders");
        assert_eq!(orders.map(|(_, value)| value), Some(&Extra::Count(500)));
        let idempotency = report.results[0].extras.iter().find(|(name, _)| name == "idempotency_entries");
        assert_eq!(idempotency.map(|(_, value)| value), Some(&Extra::Count(0)), "the deposits' keys expired");
    }

    #[test]
    fn deposit_keys_can_be_kept() {
        let args = Args {
            dir: None,
            accounts: 50,
            orders: 20,
            markets: 1,
            levels: 10,
            keep_deposit_keys: true,
            runs: 1,
            seed: 3,
        };
        let report = run(&args).unwrap();
        let idempotency = report.results[0].extras.iter().find(|(name, _)| name == "idempotency_entries");
        assert_eq!(idempotency.map(|(_, value)| value), Some(&Extra::Count(100)));
    }
}

//! The `payments` suite: a seeded, TigerBeetle-style ledger workload through
//! `Engine::apply`, single-threaded, engine only (no journal, no gateway).
//!
//! # Workload
//!
//! Everything is drawn from one `ChaCha8Rng` seeded with `--seed`, so a seed names
//! one exact command stream.
//!
//! - **Engine**: two assets, USD and EUR, both with scale 2. Tables are pre-sized
//!   with `Capacity { accounts: N, payments: C, idempotency_keys: 2N + C }`.
//! - **Setup** (applied before each pass, never timed): `OpenAccount` for accounts
//!   0..N (KYC tier 1), then one `Deposit` of 1,000,000.00 USD and one of
//!   1,000,000.00 EUR into each account, in account order. Every account ends with
//!   two assets. With `--rules`, then `PublishRules` and `ActivateRules` of
//!   `workload::RULES_TOML` for everyone: every payment is checked against a single
//!   payment limit, the daily outflow, a review threshold and blocked lists, none of
//!   which it reaches, so the stream and its predictions are the same; results are
//!   named `…-rules`.
//! - **Stream** (`--commands` C, default 1,000,000; generated in full before any
//!   timing): at each position, if an authorization's completion is due, it is
//!   emitted; otherwise a new payment is:
//!   - payer and payee are distinct; with probability `--hot-percent` P (default 10)
//!     one of them — payer or payee with equal odds — is drawn from a hot set of
//!     `--hot-accounts` accounts (default 10, chosen at random), the other uniformly
//!     from the rest; otherwise both are uniform;
//!   - the asset is USD or EUR with equal odds; the amount is uniform in
//!     0.01..=100.00, so payers (holding 1,000,000.00 of each) nearly never run dry;
//!   - with probability `--two-phase-percent` Q (default 10) it is an `Authorize`
//!     (expiring after one hour of command time: never within a run), completed 1 to
//!     2,000 commands later by the payee's full `Capture` (80%), the payee's partial
//!     last `Capture` of a uniform part, releasing the rest (10%), or a `Void` by payer
//!     or payee (10%); otherwise it is a `Transfer`.
//!
//!   Every keyed command has a fresh idempotency key (random-looking, never reused),
//!   so nothing is replayed. Authorizations still open when the stream ends stay
//!   open. Command time starts at 2026-01-01T00:00:00Z and advances 1 µs per command.
//! - **Prediction**: the generator keeps a shadow ledger of available balances, so it
//!   knows each authorization's payment id and how many commands of each kind the
//!   engine must accept; the run fails if the engine disagrees.
//!
//! # Passes, per account count
//!
//! 1. Memory (`memory`): bytes per account with two assets, pre-sized and grown.
//! 2. Throughput, `--runs` times on fresh engines: the whole stream through `apply`
//!    with one reused event buffer, timed as a whole (no per-command clock reads);
//!    allocations counted over the same loop. Reports the median ops/s, min and max.
//!    The first run's final engine is checked with `check_invariants()`.
//! 3. Latency, once more on a fresh engine: each `apply` timed alone into an HDR
//!    histogram. Each sample includes one clock pair, measured separately (`clock`).
//!    Outcomes are tallied here, between clock reads.
//!
//! Every run must end in the same `state_hash()`: the engine is deterministic.

mod memory;
pub(crate) mod outcomes;
mod workload;

use std::hint::black_box;
use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use bourse_core::config::Config;
use bourse_core::event::Event;
use bourse_core::limits::{ACCOUNTS_MAX, IDEMPOTENCY_ENTRIES_MAX, PAYMENTS_MAX};
use bourse_core::{Capacity, Engine, StateHash};
use hdrhistogram::Histogram;

use crate::alloc_counter::{AllocDelta, AllocSnapshot};
use crate::clock::{self, ClockOverhead};
use crate::machine::Machine;
use crate::report::{BenchResult, Extra, Report, latency_histogram, median};
use memory::Footprint;
use outcomes::Tally;
use workload::{Shape, Workload};

/// Account counts measured when `--accounts` is not given.
const ACCOUNTS_DEFAULT: [u32; 2] = [10_000, 1_000_000];
/// Events one command may produce, reserved up front so the buffer never grows.
const EVENTS_CAPACITY: usize = 64;
/// Below this share of accepted commands, the workload did not do what it claims.
const ACCEPTED_PERCENT_MIN: f64 = 95.0;

/// Options of the `payments` suite.
#[derive(clap::Args, Debug)]
pub(crate) struct Args {
    /// Accounts to open [default: run both 10000 and 1000000].
    #[arg(long)]
    accounts: Option<u32>,
    /// Commands in the measured stream.
    #[arg(long, default_value_t = 1_000_000)]
    commands: usize,
    /// Percent of payments with one side drawn from the hot set.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(0..=100))]
    hot_percent: u32,
    /// Accounts in the hot set.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..))]
    hot_accounts: u32,
    /// Percent of payments made two-phase (authorize, then capture or void).
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(0..=100))]
    two_phase_percent: u32,
    /// Seed of the workload generator.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Throughput runs; the median is reported.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..))]
    runs: u32,
    /// How many commands ahead to call `Engine::prefetch` (0: never). Each throughput
    /// run is paired with one without prefetching, interleaved, and both are reported.
    #[arg(long, default_value_t = 8)]
    prefetch_distance: usize,
    /// Put a rule set in effect for every account before the stream (limits no payment
    /// reaches: the cost of checking them).
    #[arg(long)]
    rules: bool,
}

pub(crate) fn run(args: &Args) -> anyhow::Result<Report> {
    let account_counts = args.accounts.map_or_else(|| ACCOUNTS_DEFAULT.to_vec(), |accounts| vec![accounts]);
    let config = Config::from_toml_str(workload::CONFIG_TOML).context("benchmark configuration")?;
    eprintln!("[payments] measuring the cost of a clock pair");
    let clock = clock::measure_overhead();
    let mut results = Vec::new();
    for accounts in account_counts {
        let shape = Shape {
            accounts,
            commands: args.commands,
            hot_accounts: args.hot_accounts,
            hot_percent: args.hot_percent,
            two_phase_percent: args.two_phase_percent,
            seed: args.seed,
            rules: args.rules,
        };
        check_shape(&shape)?;
        results.push(measure(&config, shape, args.runs, args.prefetch_distance, &clock)?);
    }
    Ok(Report { suite: "payments".to_owned(), machine: Machine::detect().to_string(), results, notes: notes(&clock) })
}

/// Refuses shapes the engine's limits would turn into rejections the generator does
/// not model.
fn check_shape(shape: &Shape) -> anyhow::Result<()> {
    let accounts = shape.accounts as usize;
    ensure!((2..=ACCOUNTS_MAX).contains(&accounts), "--accounts must be 2..={ACCOUNTS_MAX}");
    ensure!(shape.commands >= 1, "--commands must be at least 1");
    ensure!(shape.commands <= PAYMENTS_MAX, "--commands must be at most {PAYMENTS_MAX} (payment records kept)");
    ensure!(
        2 * accounts + shape.commands <= IDEMPOTENCY_ENTRIES_MAX,
        "2 x accounts + commands must be at most {IDEMPOTENCY_ENTRIES_MAX} (idempotency entries kept)"
    );
    Ok(())
}

fn capacity(shape: &Shape) -> Capacity {
    let accounts = shape.accounts as usize;
    Capacity {
        accounts,
        payments: shape.commands,
        idempotency_keys: 2 * accounts + shape.commands,
        ..Capacity::default()
    }
}

/// Every pass for one shape, checked, as one result.
fn measure(
    config: &Config,
    shape: Shape,
    runs: u32,
    prefetch_distance: usize,
    clock: &ClockOverhead,
) -> anyhow::Result<BenchResult> {
    let accounts = shape.accounts;
    eprintln!("[payments] {accounts} accounts: generating {} commands", shape.commands);
    let started = Instant::now();
    let workload = Workload::generate(shape);
    eprintln!("[payments] {accounts} accounts: generated in {:.2?}; measuring memory", started.elapsed());
    let footprint = memory::measure(config, accounts);
    let mut throughput = Vec::new();
    let mut without_prefetch = Vec::new();
    for run in 0..runs {
        // Interleaved, so that noise on this shared machine hits both alike.
        let plain = run_throughput(config, &workload, false, 0)?;
        let measured = run_throughput(config, &workload, run == 0, prefetch_distance)?;
        eprintln!(
            "[payments] {accounts} accounts: throughput run {}/{runs}: {:.0} ops/s (without prefetch {:.0})",
            run + 1,
            ops_per_sec(shape.commands, measured.elapsed),
            ops_per_sec(shape.commands, plain.elapsed),
        );
        throughput.push(measured);
        without_prefetch.push(plain);
    }
    let latency = run_latency(config, &workload, prefetch_distance)?;
    eprintln!("[payments] {accounts} accounts: latency pass done");
    verify(&workload, &throughput, &latency)?;
    verify(&workload, &without_prefetch, &latency)?;
    let mut result = result(&workload, &throughput, &latency, &footprint, clock);
    let mut plain: Vec<f64> = without_prefetch.iter().map(|run| ops_per_sec(shape.commands, run.elapsed)).collect();
    plain.sort_by(f64::total_cmp);
    let plain_median = plain[plain.len() / 2];
    result.extra("prefetch_distance", Extra::Count(prefetch_distance as u64));
    result.extra("ops_per_sec_without_prefetch", Extra::Count(plain_median as u64));
    result.extra("prefetch_speedup", Extra::Ratio(result.ops_per_sec / plain_median));
    Ok(result)
}

/// An engine sized for `workload`, with its setup applied.
fn prepared_engine(config: &Config, workload: &Workload) -> anyhow::Result<Engine> {
    let mut engine = Engine::with_capacity(config, capacity(&workload.shape));
    let mut events = Vec::with_capacity(EVENTS_CAPACITY);
    let setup = workload::setup_commands(workload.shape.accounts).chain(workload::rules_commands(workload.shape));
    for command in setup {
        events.clear();
        engine.apply(&command, &mut events);
        let rejected = events.iter().find(|event| matches!(event, Event::Rejected { .. }));
        ensure!(rejected.is_none(), "setup command {command:?} was refused: {rejected:?}");
    }
    Ok(engine)
}

/// One throughput run.
#[derive(Debug)]
struct ThroughputRun {
    elapsed: Duration,
    allocations: AllocDelta,
    state_hash: StateHash,
}

fn run_throughput(config: &Config, workload: &Workload, check: bool, prefetch: usize) -> anyhow::Result<ThroughputRun> {
    let mut engine = prepared_engine(config, workload)?;
    let mut events: Vec<Event> = Vec::with_capacity(EVENTS_CAPACITY);
    let allocations_before = AllocSnapshot::now();
    let started = Instant::now();
    let commands = &workload.commands;
    for (index, command) in commands.iter().enumerate() {
        if prefetch > 0
            && let Some(ahead) = commands.get(index + prefetch)
        {
            engine.prefetch(ahead);
        }
        events.clear();
        engine.apply(command, &mut events);
    }
    let elapsed = started.elapsed();
    let allocations = AllocSnapshot::now().since(allocations_before);
    black_box(&events);
    if check {
        engine.check_invariants();
    }
    Ok(ThroughputRun { elapsed, allocations, state_hash: engine.state_hash() })
}

/// The latency pass.
#[derive(Debug)]
struct LatencyRun {
    histogram: Histogram<u64>,
    elapsed: Duration,
    tally: Tally,
    state_hash: StateHash,
}

fn run_latency(config: &Config, workload: &Workload, prefetch: usize) -> anyhow::Result<LatencyRun> {
    let mut engine = prepared_engine(config, workload)?;
    let mut events: Vec<Event> = Vec::with_capacity(EVENTS_CAPACITY);
    let mut histogram = latency_histogram();
    let mut tally = Tally::default();
    let started = Instant::now();
    let commands = &workload.commands;
    for (index, command) in commands.iter().enumerate() {
        events.clear();
        let start = Instant::now();
        if prefetch > 0
            && let Some(ahead) = commands.get(index + prefetch)
        {
            engine.prefetch(ahead);
        }
        engine.apply(command, &mut events);
        let elapsed = start.elapsed();
        histogram.saturating_record(elapsed.as_nanos() as u64);
        tally.record(command.command.kind(), &events);
    }
    let elapsed = started.elapsed();
    Ok(LatencyRun { histogram, elapsed, tally, state_hash: engine.state_hash() })
}

/// The engine is deterministic, did what the workload predicts, and did real work.
fn verify(workload: &Workload, throughput: &[ThroughputRun], latency: &LatencyRun) -> anyhow::Result<()> {
    for (index, run) in throughput.iter().enumerate() {
        ensure!(
            run.state_hash == latency.state_hash,
            "nondeterminism: throughput run {} ended in state {}, the latency pass in {}",
            index + 1,
            run.state_hash,
            latency.state_hash
        );
    }
    ensure!(latency.tally.replayed == 0, "{} commands were replayed; every key is fresh", latency.tally.replayed);
    ensure!(
        latency.tally.outcomes == workload.expected,
        "the engine's outcomes {:?} differ from the workload's prediction {:?} (rejections: {:?})",
        latency.tally.outcomes,
        workload.expected,
        latency.tally.reasons
    );
    let accepted_percent = accepted_percent(&latency.tally);
    ensure!(
        accepted_percent >= ACCEPTED_PERCENT_MIN,
        "only {accepted_percent:.2}% of commands were accepted (rejections: {:?})",
        latency.tally.reasons
    );
    Ok(())
}

fn accepted_percent(tally: &Tally) -> f64 {
    let (accepted, rejected) = outcomes::totals(&tally.outcomes);
    100.0 * accepted as f64 / (accepted + rejected).max(1) as f64
}

fn ops_per_sec(ops: usize, elapsed: Duration) -> f64 {
    ops as f64 / elapsed.as_secs_f64()
}

fn result(
    workload: &Workload,
    throughput: &[ThroughputRun],
    latency: &LatencyRun,
    footprint: &Footprint,
    clock: &ClockOverhead,
) -> BenchResult {
    let shape = workload.shape;
    let commands = shape.commands as u64;
    let rates_in_order: Vec<f64> = throughput.iter().map(|run| ops_per_sec(shape.commands, run.elapsed)).collect();
    let rates_text: Vec<String> = rates_in_order.iter().map(|rate| format!("{rate:.0}")).collect();
    let rate_median = median(&rates_in_order);
    let elapsed_median = Duration::from_secs_f64(shape.commands as f64 / rate_median);
    let name = format!("payments/{}-accounts{}", shape.accounts, if shape.rules { "-rules" } else { "" });
    let mut result = BenchResult::new(name, commands, elapsed_median, &latency.histogram);
    let allocations = throughput.iter().map(|run| run.allocations).max_by_key(|delta| delta.bytes_allocated);
    let allocations = allocations.unwrap_or_default();
    let (accepted, rejected) = outcomes::totals(&latency.tally.outcomes);
    result
        .extra("accounts", Extra::Count(u64::from(shape.accounts)))
        .extra("hot_accounts", Extra::Count(u64::from(shape.hot_accounts)))
        .extra("hot_percent", Extra::Count(u64::from(shape.hot_percent)))
        .extra("two_phase_percent", Extra::Count(u64::from(shape.two_phase_percent)))
        .extra("seed", Extra::Count(shape.seed))
        .extra("rules", Extra::Count(u64::from(shape.rules)))
        .extra("runs", Extra::Count(throughput.len() as u64))
        .extra("ops_per_sec_min", Extra::Ratio(rates_in_order.iter().copied().fold(f64::INFINITY, f64::min)))
        .extra("ops_per_sec_max", Extra::Ratio(rates_in_order.iter().copied().fold(f64::NEG_INFINITY, f64::max)))
        .extra("ops_per_sec_each_run", Extra::Text(rates_text.join(" ")))
        .extra("latency_pass_ops_per_sec", Extra::Ratio(ops_per_sec(shape.commands, latency.elapsed)))
        .extra("latency_includes_clock_pair_ns_p50", Extra::Count(clock.pair_ns.p50_ns))
        .extra("latency_includes_clock_pair_ns_mean", Extra::Ratio(clock.pair_ns_mean))
        .extra("allocations_per_command", Extra::Ratio(allocations.allocations as f64 / commands as f64))
        .extra("bytes_allocated_per_command", Extra::Ratio(allocations.bytes_allocated as f64 / commands as f64))
        .extra("allocations_in_run", Extra::Count(allocations.allocations))
        .extra("bytes_live_growth_in_run", Extra::Signed(allocations.bytes_live()))
        .extra("account_bytes_presized_no_assets", Extra::Ratio(footprint.account_only_presized))
        .extra("account_bytes_presized_two_assets", Extra::Ratio(footprint.two_assets_presized))
        .extra("account_bytes_grown_two_assets_live", Extra::Ratio(footprint.two_assets_grown_live))
        .extra("account_bytes_grown_two_assets_allocated", Extra::Ratio(footprint.two_assets_grown_allocated))
        .extra("accepted", Extra::Count(accepted))
        .extra("rejected", Extra::Count(rejected))
        .extra("accepted_percent", Extra::Ratio(accepted_percent(&latency.tally)));
    for (kind, counts) in &latency.tally.outcomes {
        let kind = format!("{kind:?}").to_lowercase();
        result.extra(&format!("{kind}_accepted"), Extra::Count(counts.accepted));
        result.extra(&format!("{kind}_rejected"), Extra::Count(counts.rejected));
    }
    result
        .extra("outcomes_match_prediction", Extra::Text("yes".to_owned()))
        .extra("invariants_checked", Extra::Text("yes (first throughput run)".to_owned()))
        .extra("state_hash", Extra::Text(latency.state_hash.to_string()));
    result
}

fn notes(clock: &ClockOverhead) -> Vec<String> {
    vec![
        "ops/s: median of the throughput runs; each applies the pre-generated stream in one timed loop, \
         with no per-command clock reads. Setup (opening and funding accounts) is not timed."
            .to_owned(),
        "the first throughput run is usually the slowest: Capacity reserves address space, and the \
         kernel zeroes each page on first touch inside the timed loop; later runs reuse pages the \
         allocator kept. See ops_per_sec_each_run; use --runs 3 or more for steady state."
            .to_owned(),
        format!(
            "latency percentiles come from a separate pass that times each apply() alone, so every sample \
             INCLUDES one Instant::now()/elapsed() pair: p50 {} ns, p99 {} ns, mean {:.1} ns on this machine. \
             Subtract it to estimate the engine's own time.",
            clock.pair_ns.p50_ns, clock.pair_ns.p99_ns, clock.pair_ns_mean
        ),
        "latency is service time, closed-loop (each command applied as soon as the previous returns): \
         no arrival schedule, so no coordinated-omission correction applies. Queueing under load is for \
         an open-loop suite."
            .to_owned(),
        "allocations: counted by the global counting allocator over the timed loop (largest run), \
         with tables pre-sized via Capacity and one reused event buffer."
            .to_owned(),
        "account bytes: live bytes after creating the engine and applying setup, per account. \
         'presized_two_assets' includes the idempotency entries of the two deposits (kept a day of \
         command time); 'grown' starts from Capacity::default() and includes doubling slack; \
         'allocated' also counts the bytes growth copied and freed."
            .to_owned(),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shape(seed: u64) -> Shape {
        Shape {
            accounts: 50,
            commands: 20_000,
            hot_accounts: 3,
            hot_percent: 50,
            two_phase_percent: 50,
            seed,
            rules: false,
        }
    }

    #[test]
    fn engine_agrees_with_the_workload_prediction_and_is_deterministic() {
        agrees_and_is_deterministic(shape(7));
    }

    /// The rules of `--rules` refuse and hold nothing: the same predictions stand.
    #[test]
    fn with_rules_in_effect_the_engine_still_agrees() {
        agrees_and_is_deterministic(Shape { rules: true, ..shape(7) });
        let config = Config::from_toml_str(workload::CONFIG_TOML).unwrap();
        let engine =
            prepared_engine(&config, &Workload::generate(Shape { rules: true, commands: 1, ..shape(7) })).unwrap();
        let in_effect = engine.rule_version_of(bourse_core::ids::AccountId::new(0));
        assert_eq!(in_effect, bourse_core::ids::RuleVersion::new(1), "the rule set decides for every account");
    }

    fn agrees_and_is_deterministic(shape: Shape) {
        let config = Config::from_toml_str(workload::CONFIG_TOML).unwrap();
        let workload = Workload::generate(shape);
        // Prefetching is a hint: with and without it the engine ends in the same state.
        let throughput = run_throughput(&config, &workload, true, 8).unwrap();
        let plain = run_throughput(&config, &workload, false, 0).unwrap();
        let latency = run_latency(&config, &workload, 3).unwrap();
        verify(&workload, &[throughput, plain], &latency).unwrap();
        let (accepted, _) = outcomes::totals(&latency.tally.outcomes);
        assert_eq!(accepted, 20_000);
        assert!(workload.expected[&bourse_core::command::CommandKind::Capture].accepted > 0);
        assert!(workload.expected[&bourse_core::command::CommandKind::Void].accepted > 0);
    }

    #[test]
    fn a_seed_names_one_stream() {
        assert_eq!(Workload::generate(shape(7)).commands, Workload::generate(shape(7)).commands);
        assert_ne!(Workload::generate(shape(7)).commands, Workload::generate(shape(8)).commands);
    }
}

//! The `peers` suite: one seeded, book-only workload run side by side, in one process
//! and single-threaded, through Bourse's order book and through two open-source Rust
//! books, lobster 0.7 and orderbook-rs 0.15. Every engine must end exactly where a
//! small reference book says it must; the suite reports each one's throughput and
//! Bourse's ratio to each.
//!
//! # Workload
//!
//! Two mixes, generated in full before any timing from one `ChaCha8Rng` seeded with
//! `--seed` (stream 1 for `limits`, 2 for `limit-cancel`); every engine is given the
//! very same commands.
//!
//! - `limits`: `--commands` (default 1,000,000) good-till-cancelled limit orders on
//!   an empty book.
//! - `limit-cancel`: then, from the book `limits` leaves (its stream is replayed,
//!   untimed, into each fresh book first), `--commands` commands, each a cancel with
//!   `--cancel-percent` odds (default 20), otherwise a limit order.
//! - A limit order is a buy or a sell with equal odds, at a price uniform in
//!   100,000 ± `--band-ticks` ticks (default 50), for 1 to 10 lots (uniform), from
//!   one of 500 traders; a trader buys and sells under two different accounts, so no
//!   order ever meets one of its own account's (the peers have no self-trade
//!   prevention to match ours). About 42% of the orders cross on arrival, and the book
//!   grows to about 200,000 resting orders on some 60 levels.
//! - A cancel names a resting order drawn uniformly from all resting orders, so it
//!   never names an order that has already filled or been cancelled (lobster could
//!   not tell). Which orders rest depends on matching: the generator runs every
//!   command through a naive reference book (`workload`) as it draws them.
//!
//! # Passes, per mix
//!
//! 1. Throughput, `--runs` times per engine, interleaved (bourse, lobster,
//!    orderbook-rs, bourse, ...) so machine noise hits all alike: a fresh book sized
//!    for every order it will see, with the mix's setup applied (not timed), then the
//!    whole stream in one timed loop, allocations
//!    counted over the same loop. Reports the median ops/s, min and max.
//! 2. Latency, once per engine, interleaved too: each command timed alone into an HDR
//!    histogram. Each sample includes one clock pair, measured separately (`clock`).
//!
//! After every run the engine's fills, filled lots, best bid and ask and resting lots
//! per side must equal the reference's, or the suite fails. Bourse's book is also
//! checked with `check_invariants()` after its first run.

mod bourse;
mod lobster;
mod orderbook_rs;
mod workload;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::{Duration, Instant};

use anyhow::ensure;
use hdrhistogram::Histogram;

use crate::alloc_counter::{AllocDelta, AllocSnapshot};
use crate::clock::{self, ClockOverhead};
use crate::machine::Machine;
use crate::report::{BenchResult, Extra, Report, latency_histogram, median};
use workload::{Cancel, Command, Limit, Mix, Outcome, Shape, Tally, Top, Workload};

/// At this ratio to the fastest peer on every mix, Bourse's book meets its target.
const TARGET_RATIO_MIN: f64 = 3.0;

/// Options of the `peers` suite.
#[derive(clap::Args, Debug)]
pub(crate) struct Args {
    /// Commands in each mix's stream.
    #[arg(long, default_value_t = 1_000_000, value_parser = clap::value_parser!(u64).range(1..=10_000_000))]
    commands: u64,
    /// Mix to run [default: both].
    #[arg(long, value_enum)]
    mix: Option<Mix>,
    /// Engines to run, comma-separated [default: all]; ratios need bourse and a peer.
    #[arg(long, value_enum, value_delimiter = ',')]
    engines: Vec<EngineKind>,
    /// Percent of the limit-cancel mix's commands that cancel a resting order.
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(0..=100))]
    cancel_percent: u32,
    /// Prices are drawn uniformly from 100000 ± this many ticks.
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u64).range(0..=50_000))]
    band_ticks: u64,
    /// Seed of the workload generator.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Throughput runs per engine; the median is reported.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..))]
    runs: u32,
}

/// The engines compared.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, clap::ValueEnum)]
pub(crate) enum EngineKind {
    /// Bourse's `Book` + `OrderSlab` + `take`.
    Bourse,
    /// lobster 0.7.
    Lobster,
    /// orderbook-rs 0.15.
    #[value(name = "orderbook-rs")]
    OrderbookRs,
}

impl EngineKind {
    const ALL: [EngineKind; 3] = [EngineKind::Bourse, EngineKind::Lobster, EngineKind::OrderbookRs];

    fn name(self) -> &'static str {
        match self {
            EngineKind::Bourse => "bourse",
            EngineKind::Lobster => "lobster",
            EngineKind::OrderbookRs => "orderbook-rs",
        }
    }

    /// The name as part of an extra's name: `ratio_vs_orderbook_rs`.
    fn snake_name(self) -> String {
        self.name().replace('-', "_")
    }
}

/// An order book as the suite drives it: one adapter per engine, each calling its
/// engine's own API once per command and doing nothing else in the timed loop.
pub(crate) trait BookUnderTest {
    /// A fresh, empty book, pre-sized for `orders` orders where the engine allows.
    fn with_capacity(orders: usize) -> Self;
    /// Matches `limit`, rests what remains, counts its fills in `tally`.
    fn limit(&mut self, limit: &Limit, tally: &mut Tally);
    /// Takes a resting order off the book.
    fn cancel(&mut self, cancel: &Cancel, tally: &mut Tally);
    /// Best prices and resting lots, read after a run (not timed).
    fn top(&self) -> Top;
    /// O(n) self-checks, where the engine has them (not timed).
    fn check_invariants(&self) {}
}

#[inline]
fn apply<B: BookUnderTest>(book: &mut B, command: &Command, tally: &mut Tally) {
    match command {
        Command::Limit(limit) => book.limit(limit, tally),
        Command::Cancel(cancel) => book.cancel(cancel, tally),
    }
}

pub(crate) fn run(args: &Args) -> anyhow::Result<Report> {
    let mixes = args.mix.map_or_else(|| Mix::ALL.to_vec(), |mix| vec![mix]);
    let engines = engines(&args.engines);
    eprintln!("[peers] measuring the cost of a clock pair");
    let clock = clock::measure_overhead();
    let mut results = Vec::new();
    let mut notes = Vec::new();
    let shape = Shape {
        commands: usize::try_from(args.commands)?,
        cancel_percent: args.cancel_percent,
        band_ticks: args.band_ticks,
        seed: args.seed,
    };
    eprintln!("[peers] generating {} commands per mix", shape.commands);
    let started = Instant::now();
    let workloads = Workload::generate(shape);
    eprintln!("[peers] generated in {:.2?}", started.elapsed());
    for workload in workloads.iter().filter(|workload| mixes.contains(&workload.mix)) {
        eprintln!("[peers] {}: {:?}", workload.mix.name(), workload.stats);
        let measured = measure(workload, &engines, args.runs)?;
        notes.push(summary(workload, &measured));
        results.extend(mix_results(workload, &measured, &clock));
    }
    notes.extend(static_notes(&clock));
    Ok(Report { suite: "peers".to_owned(), machine: Machine::detect().to_string(), results, notes })
}

/// The engines asked for, each once, in the suite's order.
fn engines(asked: &[EngineKind]) -> Vec<EngineKind> {
    if asked.is_empty() {
        return EngineKind::ALL.to_vec();
    }
    EngineKind::ALL.into_iter().filter(|engine| asked.contains(engine)).collect()
}

/// One throughput run.
#[derive(Debug)]
struct Run {
    elapsed: Duration,
    allocations: AllocDelta,
    /// Minor page faults taken in the timed loop (the kernel zeroing a page on first
    /// touch), when `/proc` tells.
    page_faults: Option<u64>,
    outcome: Outcome,
}

/// The latency pass.
#[derive(Debug)]
struct LatencyRun {
    histogram: Histogram<u64>,
    elapsed: Duration,
    outcome: Outcome,
}

/// Every pass of one engine on one mix.
#[derive(Debug)]
struct Measured {
    runs: Vec<Run>,
    latency: LatencyRun,
}

impl Measured {
    fn rates(&self, commands: usize) -> Vec<f64> {
        self.runs.iter().map(|run| ops_per_sec(commands, run.elapsed)).collect()
    }

    fn rate_median(&self, commands: usize) -> f64 {
        median(&self.rates(commands))
    }
}

/// Runs every engine on `workload`, interleaved, and checks every outcome.
fn measure(workload: &Workload, engines: &[EngineKind], runs: u32) -> anyhow::Result<BTreeMap<EngineKind, Measured>> {
    let mix = workload.mix.name();
    let commands = workload.shape.commands;
    let mut throughput: BTreeMap<EngineKind, Vec<Run>> = BTreeMap::new();
    for run in 0..runs {
        for &engine in engines {
            let measured = throughput_of(engine, workload, run == 0);
            eprintln!(
                "[peers] {mix}: {} run {}/{runs}: {:.0} ops/s",
                engine.name(),
                run + 1,
                ops_per_sec(commands, measured.elapsed)
            );
            check_outcome(workload, engine, &format!("throughput run {}", run + 1), &measured.outcome)?;
            throughput.entry(engine).or_default().push(measured);
        }
    }
    let mut all = BTreeMap::new();
    for &engine in engines {
        let latency = latency_of(engine, workload);
        eprintln!("[peers] {mix}: {} latency pass done", engine.name());
        check_outcome(workload, engine, "the latency pass", &latency.outcome)?;
        let runs = throughput.remove(&engine).unwrap_or_default();
        all.insert(engine, Measured { runs, latency });
    }
    Ok(all)
}

fn check_outcome(workload: &Workload, engine: EngineKind, pass: &str, outcome: &Outcome) -> anyhow::Result<()> {
    ensure!(
        *outcome == workload.expected,
        "{} on {}, {pass}: ended with {outcome:?}, but the reference book ends with {:?}",
        engine.name(),
        workload.mix.name(),
        workload.expected
    );
    Ok(())
}

fn throughput_of(engine: EngineKind, workload: &Workload, check: bool) -> Run {
    match engine {
        EngineKind::Bourse => throughput::<bourse::Bourse>(workload, check),
        EngineKind::Lobster => throughput::<lobster::Lobster>(workload, check),
        EngineKind::OrderbookRs => throughput::<orderbook_rs::OrderbookRs>(workload, check),
    }
}

fn latency_of(engine: EngineKind, workload: &Workload) -> LatencyRun {
    match engine {
        EngineKind::Bourse => latency::<bourse::Bourse>(workload),
        EngineKind::Lobster => latency::<lobster::Lobster>(workload),
        EngineKind::OrderbookRs => latency::<orderbook_rs::OrderbookRs>(workload),
    }
}

/// A fresh book sized for every order it will see, with the workload's setup applied.
fn prepared<B: BookUnderTest>(workload: &Workload) -> B {
    let mut book = B::with_capacity(workload.limits_total());
    let mut tally = Tally::default();
    for command in workload.setup.iter() {
        apply(&mut book, command, &mut tally);
    }
    book
}

/// The whole stream in one timed loop on a prepared book; the book is dropped after
/// the clock stops.
fn throughput<B: BookUnderTest>(workload: &Workload, check: bool) -> Run {
    let mut book: B = prepared(workload);
    let mut tally = Tally::default();
    let page_faults_before = minor_page_faults();
    let allocations_before = AllocSnapshot::now();
    let started = Instant::now();
    for command in workload.commands.iter() {
        apply(&mut book, command, &mut tally);
    }
    let elapsed = started.elapsed();
    let allocations = AllocSnapshot::now().since(allocations_before);
    let page_faults = minor_page_faults().zip(page_faults_before).map(|(after, before)| after - before);
    if check {
        book.check_invariants();
    }
    Run { elapsed, allocations, page_faults, outcome: Outcome { tally, top: book.top() } }
}

/// Minor page faults this process has taken so far (`minflt` in `/proc/self/stat`).
fn minor_page_faults() -> Option<u64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name, which is in parentheses: state is the first,
    // minflt the eighth.
    let (_, fields) = stat.rsplit_once(") ")?;
    fields.split_whitespace().nth(7)?.parse().ok()
}

/// Each command timed alone.
fn latency<B: BookUnderTest>(workload: &Workload) -> LatencyRun {
    let mut book: B = prepared(workload);
    let mut tally = Tally::default();
    let mut histogram = latency_histogram();
    let started = Instant::now();
    for command in workload.commands.iter() {
        let start = Instant::now();
        apply(&mut book, command, &mut tally);
        let elapsed = start.elapsed();
        histogram.saturating_record(elapsed.as_nanos() as u64);
    }
    let elapsed = started.elapsed();
    LatencyRun { histogram, elapsed, outcome: Outcome { tally, top: book.top() } }
}

fn ops_per_sec(ops: usize, elapsed: Duration) -> f64 {
    ops as f64 / elapsed.as_secs_f64()
}

/// Bourse's median throughput over a peer's.
fn ratio(measured: &BTreeMap<EngineKind, Measured>, peer: EngineKind, commands: usize) -> Option<f64> {
    let bourse = measured.get(&EngineKind::Bourse)?.rate_median(commands);
    Some(bourse / measured.get(&peer)?.rate_median(commands))
}

/// Bourse's throughput over a peer's, run by run: each pair ran back to back, so it
/// shares the machine's noise of the moment.
fn paired_ratios(measured: &BTreeMap<EngineKind, Measured>, peer: EngineKind, commands: usize) -> Vec<String> {
    let (Some(bourse), Some(peer)) = (measured.get(&EngineKind::Bourse), measured.get(&peer)) else {
        return Vec::new();
    };
    let pairs = bourse.rates(commands).into_iter().zip(peer.rates(commands));
    pairs.map(|(bourse, peer)| format!("{:.2}", bourse / peer)).collect()
}

/// The fastest peer measured, and Bourse's ratio to it.
fn ratio_vs_fastest(measured: &BTreeMap<EngineKind, Measured>, commands: usize) -> Option<(EngineKind, f64)> {
    measured
        .keys()
        .filter(|&&engine| engine != EngineKind::Bourse)
        .filter_map(|&peer| Some((peer, ratio(measured, peer, commands)?)))
        .min_by(|(_, left), (_, right)| left.total_cmp(right))
}

fn mix_results(
    workload: &Workload,
    measured: &BTreeMap<EngineKind, Measured>,
    clock: &ClockOverhead,
) -> Vec<BenchResult> {
    measured
        .iter()
        .map(|(&engine, engine_measured)| result(workload, engine, engine_measured, measured, clock))
        .collect()
}

fn result(
    workload: &Workload,
    engine: EngineKind,
    engine_measured: &Measured,
    measured: &BTreeMap<EngineKind, Measured>,
    clock: &ClockOverhead,
) -> BenchResult {
    let commands = workload.shape.commands;
    let rates_in_order = engine_measured.rates(commands);
    let rates_text: Vec<String> = rates_in_order.iter().map(|rate| format!("{rate:.0}")).collect();
    let rate_median = median(&rates_in_order);
    let elapsed_median = Duration::from_secs_f64(commands as f64 / rate_median);
    let name = format!("{}/{}", engine.name(), workload.mix.name());
    let latency = &engine_measured.latency;
    let mut result = BenchResult::new(name, commands as u64, elapsed_median, &latency.histogram);
    let allocations = engine_measured.runs.iter().map(|run| run.allocations).max_by_key(|delta| delta.allocations);
    let allocations = allocations.unwrap_or_default();
    let stats = workload.stats;
    let expected = workload.expected;
    let price = |ticks: Option<u64>| ticks.map_or_else(|| Extra::Text("none".to_owned()), Extra::Count);
    result
        .extra("engine", Extra::Text(engine.name().to_owned()))
        .extra("mix", Extra::Text(workload.mix.name().to_owned()))
        .extra("seed", Extra::Count(workload.shape.seed))
        .extra("runs", Extra::Count(engine_measured.runs.len() as u64))
        .extra("ops_per_sec_min", Extra::Ratio(rates_in_order.iter().copied().fold(f64::INFINITY, f64::min)))
        .extra("ops_per_sec_max", Extra::Ratio(rates_in_order.iter().copied().fold(f64::NEG_INFINITY, f64::max)))
        .extra("ops_per_sec_each_run", Extra::Text(rates_text.join(" ")))
        .extra("latency_pass_ops_per_sec", Extra::Ratio(ops_per_sec(commands, latency.elapsed)))
        .extra("latency_includes_clock_pair_ns_p50", Extra::Count(clock.pair_ns.p50_ns))
        .extra("allocations_per_command", Extra::Ratio(allocations.allocations as f64 / commands as f64))
        .extra("bytes_allocated_per_command", Extra::Ratio(allocations.bytes_allocated as f64 / commands as f64));
    let page_faults: Option<Vec<String>> =
        engine_measured.runs.iter().map(|run| run.page_faults.map(|faults| faults.to_string())).collect();
    if let Some(page_faults) = page_faults {
        result.extra("page_faults_each_run", Extra::Text(page_faults.join(" ")));
    }
    if engine == EngineKind::Bourse {
        for &peer in measured.keys().filter(|&&peer| peer != EngineKind::Bourse) {
            if let Some(ratio) = ratio(measured, peer, commands) {
                result.extra(&format!("ratio_vs_{}", peer.snake_name()), Extra::Ratio(ratio));
            }
            let paired = paired_ratios(measured, peer, commands);
            result.extra(&format!("ratio_vs_{}_each_run", peer.snake_name()), Extra::Text(paired.join(" ")));
        }
        if let Some((peer, ratio)) = ratio_vs_fastest(measured, commands) {
            result
                .extra("fastest_peer", Extra::Text(peer.name().to_owned()))
                .extra("ratio_vs_fastest_peer", Extra::Ratio(ratio))
                .extra("meets_target_3x", Extra::Text(if ratio >= TARGET_RATIO_MIN { "yes" } else { "no" }.to_owned()));
        }
    }
    result
        .extra("limits", Extra::Count(stats.limits))
        .extra("cancels", Extra::Count(stats.cancels))
        .extra("limits_crossing_percent", Extra::Ratio(percent(stats.limits_crossing, stats.limits)))
        .extra("limits_filled_on_arrival_percent", Extra::Ratio(percent(stats.limits_filled_on_arrival, stats.limits)))
        .extra("resting_orders_start", Extra::Count(stats.resting_orders_start))
        .extra("resting_orders_max", Extra::Count(stats.resting_orders_max))
        .extra("resting_orders_end", Extra::Count(stats.resting_orders_end))
        .extra("price_levels_end", Extra::Count(stats.levels_end))
        .extra("fills", Extra::Count(expected.tally.fills))
        .extra("filled_lots", Extra::Count(expected.tally.filled_lots))
        .extra("best_bid_ticks", price(expected.top.best_bid_ticks))
        .extra("best_ask_ticks", price(expected.top.best_ask_ticks))
        .extra("bid_lots_resting", Extra::Count(expected.top.bid_lots))
        .extra("ask_lots_resting", Extra::Count(expected.top.ask_lots))
        .extra("outcome_matches_reference", Extra::Text("yes (every run)".to_owned()));
    result
}

fn percent(part: u64, whole: u64) -> f64 {
    100.0 * part as f64 / whole.max(1) as f64
}

/// One line per mix: each engine's median and Bourse's ratio to each peer.
fn summary(workload: &Workload, measured: &BTreeMap<EngineKind, Measured>) -> String {
    let commands = workload.shape.commands;
    let rates: Vec<String> = measured
        .iter()
        .map(|(engine, engine_measured)| {
            format!("{} {:.2} M ops/s", engine.name(), engine_measured.rate_median(commands) / 1e6)
        })
        .collect();
    let ratios: Vec<String> = measured
        .keys()
        .filter(|&&peer| peer != EngineKind::Bourse)
        .filter_map(|&peer| Some(format!("{:.2}x {}", ratio(measured, peer, commands)?, peer.name())))
        .collect();
    let mut line = format!("{}: {}", workload.mix.name(), rates.join(", "));
    if !ratios.is_empty() {
        let _ = write!(line, "; bourse = {}", ratios.join(", "));
    }
    line
}

fn static_notes(clock: &ClockOverhead) -> Vec<String> {
    vec![
        "ops/s: median of the throughput runs; each applies the pre-generated stream to a fresh book in one \
         timed loop, engines interleaved run by run. Building and dropping the books is not timed. Every run of \
         every engine ended with the reference book's fills, filled lots, best bid/ask and resting lots per side."
            .to_owned(),
        "bourse: Book + OrderSlab (pre-sized for every limit order the book sees) driven as Engine::execute and \
         cancel_resting do, minus money: take() with a Fills impl that counts fills and lots (CancelTaker \
         self-trade prevention, never triggered: an account only buys or only sells), then OrderSlab::insert + \
         BookSide::push_back for a remainder; a cancel is OrderSlab::find + the owner check of find_order, then \
         BookSide::unlink + OrderSlab::remove. The engine's touched-level bookkeeping and events are not included."
            .to_owned(),
        "lobster 0.7: OrderBook::new(arena = every limit order the book sees, queue capacity 10, stats tracking off); \
         one execute(OrderType::Limit | OrderType::Cancel) per command, fills counted from the returned \
         OrderEvent (its fills Vec is allocated by lobster on every crossing order). lobster keeps empty price \
         levels and rescans the opposite side for its best price after every match; it has no self-trade \
         prevention and cannot report a cancel of an unknown order (the workload never sends one)."
            .to_owned(),
        "orderbook-rs 0.15.3: OrderBook::<()>::with_clock(constant clock), no listeners, risk, fees, state \
         tracker, tick or lot size, STPMode::None (its default); ids Id::Sequential(u64); one \
         add_limit_order_with_result(GTC, anonymous user) per limit order, fills counted from the returned \
         TradeResult; one cancel_order per cancel. It is a concurrent book (skip-list levels, DashMap indexes, a \
         submit gate), measured here from one thread. Plain add_limit_order skips building the TradeResult \
         but reports no fills, which an exchange needs (the other two engines report every fill); measured \
         once, it was no faster within this machine's noise."
            .to_owned(),
        format!(
            "latency percentiles come from a separate pass per engine that times each command alone, so every \
             sample INCLUDES one Instant::now()/elapsed() pair: p50 {} ns, mean {:.1} ns on this machine. \
             Closed-loop service time, no arrival schedule, so no coordinated-omission correction applies.",
            clock.pair_ns.p50_ns, clock.pair_ns_mean
        ),
        "allocations: counted by the global counting allocator (mimalloc, shared by all engines) over the timed \
         loop, the run with the most."
            .to_owned(),
        "first touch: OrderSlab::with_capacity and the peers' hash maps reserve memory the kernel zeroes on first \
         touch, inside the timed loop while the book grows (most visible in bourse/limits); lobster's arena is \
         written by its constructor, before the clock starts."
            .to_owned(),
        format!(
            "target: bourse at least {TARGET_RATIO_MIN}x the fastest peer on every mix (meets_target_3x). \
             ratio_vs_<peer> is the ratio of medians; ratio_vs_<peer>_each_run pairs runs made back to back."
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_engine_ends_where_the_reference_book_does() {
        for workload in Workload::generate(Shape { commands: 30_000, cancel_percent: 20, band_ticks: 20, seed: 11 }) {
            assert!(workload.expected.tally.fills > 1_000, "{:?}", workload.expected);
            for engine in EngineKind::ALL {
                let run = throughput_of(engine, &workload, true);
                check_outcome(&workload, engine, "test", &run.outcome).unwrap();
                check_outcome(&workload, engine, "test", &latency_of(engine, &workload).outcome).unwrap();
            }
        }
    }

    #[test]
    fn engines_are_filtered_and_kept_in_order() {
        assert_eq!(engines(&[]), EngineKind::ALL.to_vec());
        let asked = [EngineKind::OrderbookRs, EngineKind::Bourse, EngineKind::OrderbookRs];
        assert_eq!(engines(&asked), vec![EngineKind::Bourse, EngineKind::OrderbookRs]);
    }
}

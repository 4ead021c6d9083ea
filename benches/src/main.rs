//! `bourse-bench`: Bourse's benchmark harness. Each suite is a program, not a timed
//! test (STYLE §15): a seeded workload generated before any timing, throughput over
//! the whole stream, HDR latency percentiles (p50/p99/p99.9/p99.99/max), and the
//! machine named beside every figure. Text by default, JSON with `--json`.
//!
//! - `alloc_counter`: the global allocator (mimalloc) wrapped to count allocations
//!   and bytes; the harness's only `unsafe`.
//! - `machine`: the CPU model and core count the figures were measured on.
//! - `clock`: the cost of one `Instant` pair, which every latency sample includes.
//! - `report`: a result per configuration and a report per suite, as a table or JSON.
//! - `payments`: the ledger suite, transfers and two-phase payments between funded
//!   accounts.
//! - `crossborder`: quotes, executed quotes and routed payments over 20 currencies.
//!
//! Adding a suite: a module with a `clap::Args` struct and
//! `run(&Args) -> anyhow::Result<Report>`, and one variant in `Suite`.

mod alloc_counter;
mod clock;
mod crossborder;
mod durability;
mod machine;
mod matching;
mod payments;
mod peers;
mod report;

use clap::{Parser, Subcommand};
use mimalloc::MiMalloc;

use alloc_counter::CountingAllocator;
use report::Report;

#[global_allocator]
static ALLOCATOR: CountingAllocator<MiMalloc> = CountingAllocator::new(MiMalloc);

/// Bourse's benchmark harness. Progress goes to stderr, the report to stdout.
#[derive(Parser, Debug)]
#[command(name = "bourse-bench", version)]
struct Cli {
    /// Print the report as JSON instead of a table.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    suite: Suite,
}

/// The benchmark suites.
#[derive(Subcommand, Debug)]
enum Suite {
    /// Ledger payments: transfers and authorize/capture/void between funded accounts.
    Payments(payments::Args),
    /// Order matching through the full engine: exchange-core's workload, closed and open loop.
    Matching(matching::Args),
    /// Order books side by side: Bourse's book, lobster and orderbook-rs on one seeded workload.
    Peers(peers::Args),
    /// Journal appends per second and MB/s per record size, durability mode and batch size.
    Journal(durability::journal::Args),
    /// Snapshot pause, write and validated load of an engine with a million accounts and orders.
    Snapshot(durability::snapshot::Args),
    /// Restart time and replay speed of recovery over a journal of millions of commands.
    Recovery(durability::recovery::Args),
    /// Cross-border quotes, executed quotes and routed payments: 20 currencies, one and two hops.
    Crossborder(crossborder::Args),
}

impl Suite {
    fn run(&self) -> anyhow::Result<Report> {
        match self {
            Suite::Payments(args) => payments::run(args),
            Suite::Matching(args) => matching::run(args),
            Suite::Peers(args) => peers::run(args),
            Suite::Journal(args) => durability::journal::run(args),
            Suite::Snapshot(args) => durability::snapshot::run(args),
            Suite::Recovery(args) => durability::recovery::run(args),
            Suite::Crossborder(args) => crossborder::run(args),
        }
    }
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let report = cli.suite.run()?;
    if cli.json {
        println!("{}", report.to_json()?);
    } else {
        print!("{}", report.to_text());
    }
    Ok(())
}

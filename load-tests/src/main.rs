//! `bourse-load`: drives a `bourse` server over loopback with many real clients at
//! once (WebSocket and FIX sessions, and market-data subscribers), open loop at a
//! fixed rate, with a realistic mix; verifies every reply and reconciles balances at
//! the end; `soak` kills and restarts the server under load and finds every
//! acknowledged command again in the journal.
//!
//! - `limits`: every bound the tool keeps.
//! - `dec`: decimal strings as exact integers.
//! - `catalog`: the traded markets and assets, ticks, lots, notional and fees.
//! - `mix`: the operation mix, as a table.
//! - `crossborder`: the currency pairs paid, mid estimates, checks of payment replies.
//! - `ws`, `fix`: the WebSocket and FIX 4.4 client protocols, written here.
//! - `wire`: the server's JSON messages as typed, borrowing structs.
//! - `client`: one trading session: requests in flight, orders, checks, model share.
//! - `model`: the reconciliation ledger, failures, makers' reports matched to takers.
//! - `marketdata`: market-data subscribers that rebuild books from updates.
//! - `stats`: histograms, outcomes and timelines.
//! - `sender`, `reader`: the threads that keep the open-loop schedule and read replies.
//! - `setup`: accounts, deposits, keys and sessions through the API.
//! - `server`: the server the tool starts itself and the configuration it writes.
//! - `run`, `soak`: the two modes; `report`: text, JSON and HTML with SVG plots.

mod catalog;
mod client;
mod crossborder;
mod dec;
mod fix;
mod ladder;
mod limits;
mod marketdata;
mod mix;
mod model;
mod reader;
mod report;
mod run;
mod sender;
mod server;
mod setup;
mod soak;
mod stats;
mod wire;
mod ws;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail};
use bourse_gateway::auth::Credentials;
use clap::{Args, Parser, Subcommand};

use crate::mix::Mix;
use crate::run::{LoadOptions, Target};
use crate::server::{ConfigOptions, ServerBinary, config_text};
use crate::setup::{Endpoints, Sessions};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Load tests for a `bourse` server, over loopback only.
#[derive(Parser, Debug)]
#[command(name = "bourse-load", version)]
struct Cli {
    #[command(subcommand)]
    command: Mode,
}

#[derive(Subcommand, Debug)]
enum Mode {
    /// Offer a fixed rate for a fixed time against a server (running, or started here
    /// with --spawn-server); verify every reply and reconcile balances.
    Run(RunArgs),
    /// Steady load on a server started here, killed with SIGKILL and restarted every
    /// --kill-every; every acknowledged command is looked for in the journal.
    Soak(SoakArgs),
    /// Print the server configuration the load expects (FIX sessions, raised rate limits).
    Config(ConfigArgs),
    /// The bourse server itself (`bourse serve`), linked in: used when no `bourse`
    /// binary lies beside this one.
    #[command(hide = true)]
    Serve(bourse_gateway::server::ServeArgs),
}

#[derive(Args, Debug, Clone)]
struct LoadArgs {
    /// Requests per second offered, all sessions together (open loop).
    #[arg(long, default_value_t = 10_000)]
    rate: u64,
    /// How long to offer them (`30s`, `10m`, `500ms`).
    #[arg(long, value_parser = parse_duration)]
    duration: Option<Duration>,
    /// Send at most this many requests (default: rate × duration).
    #[arg(long)]
    ops: Option<u64>,
    /// WebSocket trading sessions.
    #[arg(long, default_value_t = 16)]
    ws: usize,
    /// FIX trading sessions (orders only).
    #[arg(long, default_value_t = 4)]
    fix: usize,
    /// Market-data subscribers (each subscribes to book, bbo and trades of one market).
    #[arg(long, default_value_t = 4)]
    md: usize,
    /// The mix: `realistic`, `orders`, `payments`, or `op=weight,…`.
    #[arg(long, default_value = "realistic")]
    mix: String,
    /// How long to wait for the replies still in flight after the last send.
    #[arg(long, value_parser = parse_duration, default_value = "10s")]
    drain: Duration,
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Sender threads (each keeps the schedule of its share of the sessions).
    #[arg(long, default_value_t = 1)]
    senders: usize,
    /// Reader threads.
    #[arg(long, default_value_t = 1)]
    readers: usize,
    /// No progress bar.
    #[arg(long)]
    quiet: bool,
    /// Print the report as JSON instead of text.
    #[arg(long)]
    json: bool,
    /// Also write an HTML report with SVG plots to this file.
    #[arg(long)]
    html: Option<PathBuf>,
}

#[derive(Args, Debug, Clone)]
struct SpawnArgs {
    /// The server binary to start (default: `bourse` beside this executable, as cargo
    /// builds it: target/release/bourse; else the server linked into bourse-load).
    #[arg(long)]
    server_bin: Option<PathBuf>,
    /// The spawned server's durability: batch, sync or async.
    #[arg(long, default_value = "batch")]
    durability: String,
    /// The spawned server's HTTP worker threads (0: one per core).
    #[arg(long, default_value_t = 0)]
    server_workers: usize,
    /// The spawned server's pipeline: fused (journal and engine on one thread) or threads.
    #[arg(long, default_value = "fused")]
    pipeline: String,
    /// Where the spawned server keeps its configuration and data (default: a temporary directory).
    #[arg(long)]
    data_dir: Option<PathBuf>,
}

#[derive(Args, Debug)]
struct RunArgs {
    #[command(flatten)]
    load: LoadArgs,
    /// Start a server here (on a fresh data directory) instead of using a running one.
    #[arg(long)]
    spawn_server: bool,
    #[command(flatten)]
    spawn: SpawnArgs,
    /// The running server's HTTP/WebSocket address (loopback only).
    #[arg(long, default_value = "127.0.0.1:8080")]
    server: SocketAddr,
    /// The running server's FIX address (loopback only).
    #[arg(long, default_value = "127.0.0.1:9878")]
    fix_addr: SocketAddr,
    /// The admin API key for a running server (default: `$BOURSE_KEY`).
    #[arg(long)]
    key: Option<String>,
}

#[derive(Args, Debug)]
struct SoakArgs {
    #[command(flatten)]
    load: LoadArgs,
    #[command(flatten)]
    spawn: SpawnArgs,
    /// SIGKILL the server this often (±25 %), under load, and restart it.
    #[arg(long, value_parser = parse_duration, default_value = "60s")]
    kill_every: Duration,
}

#[derive(Args, Debug)]
struct ConfigArgs {
    /// FIX sessions to declare (session i trades for account i; `CompID` `LOAD<i>`).
    #[arg(long, default_value_t = 4)]
    fix: usize,
    #[arg(long, default_value = "batch")]
    durability: String,
    #[arg(long, default_value_t = 0)]
    server_workers: usize,
    #[arg(long, default_value = "fused")]
    pipeline: String,
}

/// `500ms`, `30s`, `10m`, `2h`, or seconds alone.
fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit() && c != '.').unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let value: f64 = number.parse().map_err(|_| format!("{text:?} is not a duration such as 30s or 10m"))?;
    let seconds = match unit {
        "ms" => value / 1e3,
        "" | "s" => value,
        "m" => value * 60.0,
        "h" => value * 3600.0,
        other => return Err(format!("unknown unit {other:?} (ms, s, m, h)")),
    };
    Duration::try_from_secs_f64(seconds).map_err(|error| error.to_string())
}

fn loopback(address: SocketAddr) -> anyhow::Result<SocketAddr> {
    if !address.ip().is_loopback() {
        bail!("{address} is not a loopback address: bourse-load drives servers on this machine only");
    }
    Ok(address)
}

fn load_options(args: &LoadArgs, default_duration: Duration) -> anyhow::Result<LoadOptions> {
    let duration = args.duration.unwrap_or(default_duration);
    let ops = args.ops.unwrap_or_else(|| (args.rate as f64 * duration.as_secs_f64()).ceil() as u64);
    let options = LoadOptions {
        rate: args.rate,
        duration,
        ops,
        sessions: Sessions { ws: args.ws, fix: args.fix, subscribers: args.md },
        mix: Mix::parse(&args.mix)?,
        drain: args.drain,
        seed: args.seed,
        senders: args.senders,
        readers: args.readers,
        progress: !args.quiet,
    };
    run::check_options(&options)?;
    Ok(options)
}

fn check_durability(mode: &str) -> anyhow::Result<String> {
    match mode {
        "batch" | "sync" | "async" => Ok(mode.to_owned()),
        other => bail!("--durability {other}: batch, sync or async"),
    }
}

fn check_pipeline(mode: &str) -> anyhow::Result<String> {
    match mode {
        "fused" | "threads" => Ok(mode.to_owned()),
        other => bail!("--pipeline {other}: fused or threads"),
    }
}

fn output(args: &LoadArgs, report: &report::Report, measurements: &report::Measurements) -> anyhow::Result<()> {
    if args.json {
        println!("{}", serde_json::to_string_pretty(report)?);
    } else {
        print!("{}", report::text(report));
    }
    if let Some(path) = &args.html {
        std::fs::write(path, report::html(report, measurements)?)
            .with_context(|| format!("writing {}", path.display()))?;
        if !args.json {
            println!("HTML report: {}", path.display());
        }
    }
    Ok(())
}

fn main_run(args: &RunArgs) -> anyhow::Result<bool> {
    let options = load_options(&args.load, Duration::from_secs(10))?;
    let target = if args.spawn_server {
        Target::Spawn {
            binary: ServerBinary::locate(args.spawn.server_bin.as_deref())?,
            durability: check_durability(&args.spawn.durability)?,
            pipeline: check_pipeline(&args.spawn.pipeline)?,
            workers: args.spawn.server_workers,
            data_dir: args.spawn.data_dir.clone(),
        }
    } else {
        let token = args.key.clone().or_else(|| std::env::var("BOURSE_KEY").ok()).context(
            "a running server needs its admin key: --key or BOURSE_KEY (or start one here with --spawn-server)",
        )?;
        let credentials =
            Credentials::from_token(&token).map_err(|reason| anyhow::anyhow!("the admin key: {reason}"))?;
        let fix = (options.sessions.fix > 0).then(|| loopback(args.fix_addr)).transpose()?;
        Target::Running { endpoints: Endpoints { http: loopback(args.server)?, fix }, credentials }
    };
    let (report, measurements) = run::run(&options, &target)?;
    output(&args.load, &report, &measurements)?;
    Ok(report.passed)
}

fn main_soak(args: &SoakArgs) -> anyhow::Result<bool> {
    let options = load_options(&args.load, Duration::from_mins(10))?;
    if args.kill_every < Duration::from_secs(1) {
        bail!("--kill-every is at least 1s");
    }
    let soak = soak::SoakOptions {
        kill_every: args.kill_every,
        binary: ServerBinary::locate(args.spawn.server_bin.as_deref())?,
        durability: check_durability(&args.spawn.durability)?,
        pipeline: check_pipeline(&args.spawn.pipeline)?,
        workers: args.spawn.server_workers,
        data_dir: args.spawn.data_dir.clone(),
    };
    let (report, measurements) = soak::run(&options, &soak)?;
    output(&args.load, &report, &measurements)?;
    Ok(report.passed)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let outcome = match cli.command {
        Mode::Run(args) => main_run(&args),
        Mode::Soak(args) => main_soak(&args),
        Mode::Config(args) => check_durability(&args.durability)
            .and_then(|durability| Ok((durability, check_pipeline(&args.pipeline)?)))
            .map(|(durability, pipeline)| {
                let options =
                    ConfigOptions { fix_sessions: args.fix, durability, pipeline, workers: args.server_workers };
                print!("{}", config_text(&options));
                true
            }),
        Mode::Serve(args) => {
            env_logger_init();
            bourse_gateway::server::run(&args).map(|()| true)
        }
    };
    match outcome {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(error) => {
            eprintln!("bourse-load: {error:#}");
            ExitCode::from(2)
        }
    }
}

/// The embedded server logs as `bourse serve` does: warnings and above unless `RUST_LOG` says otherwise.
fn env_logger_init() {
    // The gateway logs through `log`; without a logger its warnings would be dropped.
    struct Stderr;
    impl log::Log for Stderr {
        fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
            metadata.level() <= log::Level::Warn
        }
        fn log(&self, record: &log::Record<'_>) {
            if self.enabled(record.metadata()) {
                eprintln!("[{} {}] {}", record.level(), record.target(), record.args());
            }
        }
        fn flush(&self) {}
    }
    static LOGGER: Stderr = Stderr;
    let _ = log::set_logger(&LOGGER).map(|()| log::set_max_level(log::LevelFilter::Warn));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_with_their_units() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("10m"), Ok(Duration::from_mins(10)));
        assert_eq!(parse_duration("2"), Ok(Duration::from_secs(2)));
        assert!(parse_duration("10 minutes").is_err());
        assert!(parse_duration("fast").is_err());
    }

    #[test]
    fn only_loopback_addresses_are_targets() {
        assert!(loopback("127.0.0.1:8080".parse().unwrap()).is_ok());
        assert!(loopback("[::1]:8080".parse().unwrap()).is_ok());
        assert!(loopback("10.0.0.1:8080".parse().unwrap()).is_err());
    }
}

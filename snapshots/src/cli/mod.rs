//! `bourse-snapshot`, the operator's tool for a data directory (`DIR/journal/*.seg`,
//! `DIR/snapshots/*.snap`): the clap types here, one file per subcommand.
//!
//! - `common`: opening a data directory (read-only or for repair), the configuration,
//!   loading an engine from a snapshot or the head, progress bars, amount formatting.
//! - `list`: the snapshots and journal segments, and any torn tail (nothing repaired).
//! - `inspect`: one state's sequence, hash, counts and per-asset totals.
//! - `verify`: every record, every snapshot, a read-only recovery, reconciliation and
//!   the invariants; exit 1 naming whatever is wrong.
//! - `recover`: recovery with repair (a torn tail is cut), then a fresh snapshot.
//! - `replay`: events of a journal range, or of a command file run offline, as JSON Lines.
//! - `export`: every balance as CSV or JSON.
//! - `rules`: every rule change (publish, activate, roll back) with its sequence number
//!   and time; a version's rule set; the diff of two versions.
//! - `torn`: the journal with a torn tail cut in memory, for the read-only commands.
//!
//! Every command but `recover` only reads: the files are opened and mapped, never
//! changed, and a missing `journal/` or `snapshots/` is taken as empty, not created.

mod common;
mod export;
mod inspect;
mod list;
mod recover;
mod replay;
mod rules;
mod torn;
mod verify;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Inspect, verify, repair and export a Bourse data directory.
#[derive(Debug, Parser)]
#[command(name = "bourse-snapshot", version)]
pub(crate) struct Cli {
    /// No progress bars (they are also hidden when stdout is not a terminal).
    #[arg(long, short, global = true)]
    quiet: bool,
    #[command(subcommand)]
    command: CliCommand,
}

#[derive(Debug, Subcommand)]
enum CliCommand {
    /// List the snapshots (valid or why not), the journal segments and any torn tail.
    List(ListArgs),
    /// Show one state: sequence, state hash, counts and per-asset totals.
    Inspect(InspectArgs),
    /// Check every record, every snapshot, a read-only recovery to the head,
    /// reconciliation and the invariants. Exit 0 only if all is right.
    Verify(VerifyArgs),
    /// Recover with repair (a torn journal tail is cut) and write a fresh snapshot.
    Recover(RecoverArgs),
    /// Print the events of a journal range, or of a command file, as JSON Lines.
    Replay(ReplayArgs),
    /// Export every balance (account, asset, available, held) as CSV or JSON.
    Export(ExportArgs),
    /// List every rule change (publish, activate with its share, roll back) with its
    /// sequence number and time, and what is in effect; or show a version, or diff two.
    Rules(RulesArgs),
}

#[derive(Debug, Args)]
struct DataDirArg {
    /// The data directory: DIR/journal/*.seg and DIR/snapshots/*.snap.
    #[arg(long, value_name = "DIR")]
    data_dir: PathBuf,
}

#[derive(Debug, Args)]
struct ConfigArg {
    /// The engine configuration (TOML): needed to replay from empty when no valid
    /// snapshot supplies the state.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
}

#[derive(Debug, Args)]
struct ListArgs {
    #[command(flatten)]
    data: DataDirArg,
}

#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("source").required(true).args(["snapshot", "newest", "head"])))]
struct InspectArgs {
    #[command(flatten)]
    data: DataDirArg,
    #[command(flatten)]
    config: ConfigArg,
    /// A snapshot: its file name in DIR/snapshots, its sequence number, or a path.
    snapshot: Option<String>,
    /// The newest snapshot that passes every check.
    #[arg(long)]
    newest: bool,
    /// The head: the newest valid snapshot plus the journal after it (read-only).
    #[arg(long)]
    head: bool,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
struct VerifyArgs {
    #[command(flatten)]
    data: DataDirArg,
    #[command(flatten)]
    config: ConfigArg,
    /// Also replay the whole journal from empty (needs --config), proving every
    /// checkpoint in it and that both paths reach the same state hash.
    #[arg(long, requires = "config")]
    full: bool,
}

#[derive(Debug, Args)]
struct RecoverArgs {
    #[command(flatten)]
    data: DataDirArg,
    #[command(flatten)]
    config: ConfigArg,
    /// Snapshots to keep after writing the new one.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u64).range(1..))]
    keep: u64,
}

#[derive(Debug, Args)]
struct ReplayArgs {
    /// Replay this data directory's journal.
    #[arg(long, value_name = "DIR", required_unless_present = "commands", conflicts_with = "commands")]
    data_dir: Option<PathBuf>,
    #[command(flatten)]
    config: ConfigArg,
    /// First sequence number to print (default: the first record).
    #[arg(long, value_name = "S", conflicts_with = "commands")]
    from: Option<u64>,
    /// Last sequence number to print (default: the last record).
    #[arg(long, value_name = "T", conflicts_with = "commands")]
    to: Option<u64>,
    /// Run the commands of this JSON Lines file through a fresh engine (needs
    /// --config): each line a `Command`, or `{"timestamp": NS, "command": COMMAND}`.
    #[arg(long, value_name = "FILE.jsonl", requires = "config")]
    commands: Option<PathBuf>,
    /// With --commands: the time of the first command without its own, in ns.
    #[arg(long, value_name = "NS", default_value_t = 0, requires = "commands")]
    start_ns: u64,
    /// With --commands: time between commands without their own, in ns.
    #[arg(long, value_name = "NS", default_value_t = 1_000_000, requires = "commands")]
    step_ns: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum ExportFormat {
    Csv,
    Json,
}

#[derive(Debug, Args)]
struct ExportArgs {
    #[command(flatten)]
    data: DataDirArg,
    #[command(flatten)]
    config: ConfigArg,
    /// Output format.
    #[arg(long, value_enum)]
    format: ExportFormat,
    /// Export the newest valid snapshot instead of the head.
    #[arg(long, conflicts_with = "snapshot")]
    newest: bool,
    /// Export this snapshot (file name, sequence number or path) instead of the head.
    #[arg(long)]
    snapshot: Option<String>,
}

#[derive(Debug, Args)]
struct RulesArgs {
    #[command(flatten)]
    data: DataDirArg,
    #[command(flatten)]
    config: ConfigArg,
    /// Print this version's rule set (canonical TOML) instead of the listing.
    #[arg(long, value_name = "VERSION", conflicts_with = "diff")]
    show: Option<u32>,
    /// Print what changed from version A to version B, one line per value.
    #[arg(long, num_args = 2, value_names = ["A", "B"])]
    diff: Vec<u32>,
    /// Print the listing as JSON.
    #[arg(long, conflicts_with_all = ["show", "diff"])]
    json: bool,
}

/// Runs the command line; `Ok` carries the exit code (a failed `verify` is 1 without
/// being an error of the tool).
pub(crate) fn run(cli: &Cli) -> anyhow::Result<ExitCode> {
    let quiet = cli.quiet;
    match &cli.command {
        CliCommand::List(args) => list::run(args),
        CliCommand::Inspect(args) => inspect::run(args, quiet),
        CliCommand::Verify(args) => verify::run(args, quiet),
        CliCommand::Recover(args) => recover::run(args, quiet),
        CliCommand::Replay(args) => replay::run(args, quiet),
        CliCommand::Export(args) => export::run(args, quiet),
        CliCommand::Rules(args) => rules::run(args, quiet),
    }
}

/// Prints an error with its whole chain of causes; a closed stdout (`| head`) is not
/// a failure.
pub(crate) fn report_error(error: &anyhow::Error) -> ExitCode {
    let broken_pipe = error.chain().any(|cause| {
        let kind = cause
            .downcast_ref::<std::io::Error>()
            .map(std::io::Error::kind)
            .or_else(|| cause.downcast_ref::<serde_json::Error>().and_then(serde_json::Error::io_error_kind));
        kind == Some(std::io::ErrorKind::BrokenPipe)
    });
    if broken_pipe {
        return ExitCode::SUCCESS;
    }
    eprintln!("error: {error:#}");
    ExitCode::FAILURE
}

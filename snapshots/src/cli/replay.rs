//! `replay`: what commands did, as JSON Lines, one object per command:
//! `{"seq":…,"timestamp":…,"command":…,"events":[…]}`.
//!
//! - From a data directory, `--from S --to T`: the engine starts from the newest valid
//!   snapshot before S (or from empty, with `--config`), replays up to S - 1 silently,
//!   then prints S ..= T. Checkpoint records are not commands and print nothing.
//! - From a file, `--commands FILE.jsonl --config FILE`: each line a `Command`
//!   (`{"OpenAccount":{"owner":1,"kyc_tier":0}}`) or `{"timestamp":NS,"command":…}`,
//!   run through a fresh engine with sequence numbers 1, 2, …; blank lines are
//!   skipped. Every line is parsed before any runs, and a bad one is named by number.

use std::io::{BufRead, BufReader, BufWriter, Write, stdout};
use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use bourse_core::command::{Command, SequencedCommand};
use bourse_core::event::Event;
use bourse_core::ids::{Seq, Timestamp};
use bourse_core::{Capacity, Engine};
use bourse_journal::codec::decode_command;
use bourse_journal::record::KIND_CHECKPOINT;
use bourse_journal::{JournalError, read_from};
use bourse_snapshots::snapshot::{list_snapshots, load_snapshot};
use log::warn;
use serde::{Deserialize, Serialize};

use super::ReplayArgs;
use super::common::{DataDir, load_config, progress_bar};

/// One line of output.
#[derive(Debug, Serialize)]
struct Line<'a> {
    seq: u64,
    timestamp: u64,
    command: &'a Command,
    events: &'a [Event],
}

fn write_line(out: &mut impl Write, command: &SequencedCommand, events: &[Event]) -> Result<()> {
    let line =
        Line { seq: command.seq.get(), timestamp: command.timestamp.as_nanos(), command: &command.command, events };
    serde_json::to_writer(&mut *out, &line)?;
    writeln!(out)?;
    Ok(())
}

pub(super) fn run(args: &ReplayArgs, quiet: bool) -> Result<ExitCode> {
    if let Some(commands) = &args.commands {
        let config = args.config.config.as_deref().context("--commands needs --config FILE")?;
        return replay_commands(commands, config, args.start_ns, args.step_ns);
    }
    let dir = args.data_dir.as_deref().context("replay needs --data-dir DIR or --commands FILE")?;
    replay_journal(args, dir, quiet)
}

/// Why reading the journal stopped early.
enum Halt {
    /// The range is printed.
    Done,
    Failed(anyhow::Error),
}

impl From<JournalError> for Halt {
    fn from(error: JournalError) -> Self {
        Halt::Failed(error.into())
    }
}

fn replay_journal(args: &ReplayArgs, path: &Path, quiet: bool) -> Result<ExitCode> {
    let (dir, journal) = DataDir::open_read_only(path)?.without_torn_tail()?;
    let (Some(first), Some(last)) = (journal.first_seq(), journal.last_seq) else {
        bail!("the journal in {} holds no records", dir.journal_dir().display());
    };
    let from = args.from.unwrap_or(first.get());
    let to = args.to.unwrap_or(last.get());
    if from > last.get() {
        bail!("the journal ends at sequence {}: there is nothing at {from}", last.get());
    }
    if from == 0 || from > to {
        bail!("--from {from} --to {to} is not a range of sequence numbers (they start at 1)");
    }
    if to > last.get() {
        warn!("the journal ends at sequence {}: printing up to it", last.get());
    }
    let to = to.min(last.get());
    let (mut engine, start, origin) = starting_engine(&dir, from, args.config.config.as_deref())?;
    if start < first {
        bail!(
            "the journal starts at sequence {} but replaying from the {origin} needs sequence {} onwards",
            first.get(),
            start.get()
        );
    }
    if !quiet {
        eprintln!("replaying {from}..={to} from the {origin}");
    }
    let bar = progress_bar(quiet, Some(from - start.get()), "replaying up to the range");
    let mut out = BufWriter::new(stdout().lock());
    let mut events = Vec::with_capacity(64);
    let read = read_from::<Halt>(&dir.stores.journal, start, |record| {
        if record.kind != KIND_CHECKPOINT {
            let command = decode_command(record.seq, record.kind, record.payload)?;
            let sequenced = SequencedCommand { seq: record.seq, timestamp: record.timestamp, command };
            events.clear();
            engine.apply(&sequenced, &mut events);
            if record.seq.get() < from {
                bar.set_position(record.seq.get() - start.get() + 1);
            } else {
                bar.finish_and_clear();
                write_line(&mut out, &sequenced, &events).map_err(Halt::Failed)?;
            }
        }
        if record.seq.get() >= to { Err(Halt::Done) } else { Ok(()) }
    });
    bar.finish_and_clear();
    match read {
        Ok(_) | Err(Halt::Done) => {}
        Err(Halt::Failed(error)) => return Err(error),
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

/// The engine to replay from: the newest valid snapshot before `from`, or an empty
/// engine of `config`. Returns it, the first sequence number to read, and its origin.
fn starting_engine(dir: &DataDir, from: u64, config: Option<&Path>) -> Result<(Engine, Seq, String)> {
    for (seq, name) in list_snapshots(&dir.stores.snapshots)?.iter().rev() {
        if seq.get() >= from {
            continue;
        }
        match load_snapshot(&dir.stores.snapshots, name, Capacity::default()) {
            Ok(loaded) => {
                let origin = format!("snapshot {}", dir.stores.snapshots.describe(name));
                return Ok((loaded.engine, Seq::new(seq.get() + 1), origin));
            }
            Err(error) => warn!("{error}; trying an older snapshot"),
        }
    }
    let Some(config) = config else {
        bail!(
            "no valid snapshot before sequence {from} in {}: replaying from empty needs the engine configuration, \
             pass --config FILE",
            dir.snapshots_dir().display()
        );
    };
    Ok((Engine::new(&load_config(config)?), Seq::new(1), "empty engine".to_owned()))
}

/// A line that carries its own time.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Timed {
    timestamp: Option<u64>,
    command: Command,
}

/// Reads the command file into sequenced commands: every non-blank line, numbered
/// 1, 2, …, at its own time or `step_ns` after the one before (the first at
/// `start_ns`). Fails on the first bad line, before anything runs.
fn read_commands(path: &Path, start_ns: u64, step_ns: u64) -> Result<Vec<SequencedCommand>> {
    let file = std::fs::File::open(path).with_context(|| format!("opening the command file {}", path.display()))?;
    let mut commands: Vec<SequencedCommand> = Vec::new();
    let mut next_default = start_ns;
    for (index, line) in BufReader::new(file).lines().enumerate() {
        let number = index + 1;
        let line = line.with_context(|| format!("{}: line {number} cannot be read", path.display()))?;
        if line.trim().is_empty() {
            continue;
        }
        let (timestamp, command) =
            parse_line(&line).map_err(|error| anyhow::anyhow!("{}: line {number}: {error}", path.display()))?;
        let timestamp = timestamp.unwrap_or(next_default);
        if let Some(previous) = commands.last().map(|command| command.timestamp.as_nanos())
            && timestamp < previous
        {
            bail!(
                "{}: line {number}: timestamp {timestamp} is before the previous command's {previous}: command time \
                 never goes backwards",
                path.display()
            );
        }
        let seq = Seq::new(commands.len() as u64 + 1);
        commands.push(SequencedCommand { seq, timestamp: Timestamp::from_nanos(timestamp), command });
        next_default = timestamp.saturating_add(step_ns);
    }
    Ok(commands)
}

/// A `Command`, or a `Timed` (an object with a `command` field).
fn parse_line(line: &str) -> Result<(Option<u64>, Command), String> {
    let value: serde_json::Value = serde_json::from_str(line).map_err(|error| describe_json_error(&error))?;
    let timed = value.as_object().is_some_and(|object| object.contains_key("command"));
    if timed {
        let timed: Timed = serde_json::from_str(line).map_err(|error| describe_json_error(&error))?;
        Ok((timed.timestamp, timed.command))
    } else {
        let command = serde_json::from_str(line).map_err(|error| describe_json_error(&error))?;
        Ok((None, command))
    }
}

/// `serde_json`'s message with its position as a column (its "line 1" would only
/// confuse next to the file's line number).
fn describe_json_error(error: &serde_json::Error) -> String {
    let text = error.to_string();
    let position = format!(" at line {} column {}", error.line(), error.column());
    match text.strip_suffix(&position) {
        Some(message) => format!("column {}: {message}", error.column()),
        None => text,
    }
}

fn replay_commands(path: &Path, config: &Path, start_ns: u64, step_ns: u64) -> Result<ExitCode> {
    let config = load_config(config)?;
    let commands = read_commands(path, start_ns, step_ns)?;
    let mut engine = Engine::new(&config);
    let mut out = BufWriter::new(stdout().lock());
    let mut events = Vec::with_capacity(64);
    for command in &commands {
        events.clear();
        engine.apply(command, &mut events);
        write_line(&mut out, command, &events)?;
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

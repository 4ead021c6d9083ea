//! `verify`: proves a data directory, reading only.
//!
//! 1. The journal opens (`open_and_check`, no repair); a torn tail is reported.
//! 2. Every record's checksum and chain link, read again end to end (`read_from`), and
//!    every payload decodes (commands and checkpoints).
//! 3. Every snapshot passes every check, matches the journal's checkpoint at its
//!    sequence if there is one, and is not past the journal's end.
//! 4. Recovery to the head (newest valid snapshot + the journal after it), checkpoints
//!    proved; with `--full` also from empty, and both must reach the same state hash.
//! 5. `reconcile()` balances and `check_invariants()` does not panic.
//!
//! Exit 0 only if every step holds; each problem is named with its file, offset and
//! sequence number where there is one.

use std::collections::BTreeMap;
use std::io::{Write, stdout};
use std::panic::AssertUnwindSafe;
use std::process::ExitCode;
use std::sync::{Arc, Mutex, PoisonError};

use anyhow::Result;
use bourse_core::ids::Seq;
use bourse_core::reconcile::AssetReconciliation;
use bourse_core::{Capacity, Engine, StateHash};
use bourse_journal::codec::{Checkpoint, decode_command};
use bourse_journal::record::KIND_CHECKPOINT;
use bourse_journal::segment::parse_segment_name;
use bourse_journal::{JournalError, MemStorage, OpenReport, Storage, open_and_check, read_from};
use bourse_snapshots::DataStores;
use bourse_snapshots::snapshot::{list_snapshots, load_snapshot};

use super::VerifyArgs;
use super::common::{DataDir, format_minor, head_origin, progress_bar, recover_head};

/// Problems of one kind listed one by one before the rest are only counted.
const PROBLEMS_LISTED_MAX: usize = 10;

/// The report as it is printed: `ok` and `FAIL` lines under section titles.
struct Report<W: Write> {
    out: W,
    problems: usize,
}

impl<W: Write> Report<W> {
    fn section(&mut self, title: &str) -> Result<()> {
        writeln!(self.out, "{title}")?;
        Ok(())
    }

    fn ok(&mut self, text: &str) -> Result<()> {
        writeln!(self.out, "  ok    {text}")?;
        Ok(())
    }

    fn note(&mut self, text: &str) -> Result<()> {
        writeln!(self.out, "  note  {text}")?;
        Ok(())
    }

    /// A step that cannot run because of a problem already reported.
    fn skip(&mut self, text: &str) -> Result<()> {
        writeln!(self.out, "  skip  {text}")?;
        Ok(())
    }

    fn fail(&mut self, text: &str) -> Result<()> {
        self.problems += 1;
        writeln!(self.out, "  FAIL  {text}")?;
        Ok(())
    }

    /// `count` more problems of a kind already listed, counted but not listed.
    fn fail_more(&mut self, count: usize, what: &str) -> Result<()> {
        self.problems += count;
        writeln!(self.out, "  FAIL  … and {count} more {what}")?;
        Ok(())
    }
}

/// What reading the journal established, for the later steps.
#[derive(Default)]
struct JournalFacts {
    open: Option<OpenReport>,
    /// Where opening found corruption (file, offset), already reported.
    corrupt_at: Option<(String, u64)>,
    /// Checkpoints by the sequence number they vouch for.
    checkpoints: BTreeMap<Seq, StateHash>,
}

pub(super) fn run(args: &VerifyArgs, quiet: bool) -> Result<ExitCode> {
    // Whatever the libraries would warn about (a torn tail, a snapshot skipped) is in
    // the report already.
    log::set_max_level(log::LevelFilter::Error);
    let dir = DataDir::open_read_only(&args.data.data_dir)?;
    let mut report = Report { out: stdout().lock(), problems: 0 };
    writeln!(report.out, "verifying {}", dir.path.display())?;
    report.section("journal")?;
    let facts = check_journal(&dir, &mut report, quiet)?;
    report.section("snapshots")?;
    check_snapshots(&dir, &facts, &mut report)?;
    report.section("recovery (read-only)")?;
    let config = args.config.config.as_deref();
    let head = if facts.open.is_some() {
        recover_head_checked(&dir, config, &mut report, quiet)?
    } else {
        report.skip("the journal cannot be opened (above)")?;
        None
    };
    if args.full && facts.open.is_some() {
        check_from_empty(&dir, config, head.as_ref(), &mut report, quiet)?;
    }
    if let Some(engine) = &head {
        report.section("state at the head")?;
        check_state(engine, &mut report)?;
    }
    if report.problems == 0 {
        writeln!(report.out, "verify: OK")?;
        Ok(ExitCode::SUCCESS)
    } else {
        writeln!(report.out, "verify: FAILED, {} problem(s)", report.problems)?;
        Ok(ExitCode::FAILURE)
    }
}

/// Recovers the head read-only; `None` (reported) if it fails.
fn recover_head_checked(
    dir: &DataDir,
    config: Option<&std::path::Path>,
    report: &mut Report<impl Write>,
    quiet: bool,
) -> Result<Option<Engine>> {
    match recover_head(dir, config, false, quiet) {
        Ok(recovered) => {
            let hash = recovered.engine.state_hash();
            let last = recovered.engine.last_seq().map_or_else(|| "none".to_owned(), |seq| seq.get().to_string());
            let proved = recovered.checkpoints_verified;
            let origin = head_origin(&recovered);
            report.ok(&format!("{origin}: last command {last}, {proved} checkpoint(s) proved, state hash {hash}"))?;
            Ok(Some(recovered.engine))
        }
        Err(error) => {
            report.fail(&format!("{error:#}"))?;
            Ok(None)
        }
    }
}

fn check_journal(dir: &DataDir, report: &mut Report<impl Write>, quiet: bool) -> Result<JournalFacts> {
    let mut facts = JournalFacts::default();
    match open_and_check(&dir.stores.journal, false) {
        Ok(open) => {
            let range = match (open.first_seq(), open.last_seq) {
                (Some(first), Some(last)) => format!("sequences {}..={}", first.get(), last.get()),
                _ => "no records".to_owned(),
            };
            report.ok(&format!("opens: {} segment(s), {} record(s), {range}", open.segments.len(), open.records))?;
            if let Some(torn) = &open.truncation {
                let after = open.last_seq.map_or(0, Seq::get);
                report.fail(&format!(
                    "torn tail in {} at offset {} ({}): {} non-zero byte(s) after sequence {after}{}; \
                     `bourse-snapshot recover` cuts it (the read-only steps below stop before it)",
                    dir.stores.journal.describe(&torn.segment),
                    torn.offset,
                    torn.reason,
                    torn.bytes,
                    removed(&torn.removed_segments)
                ))?;
            }
            facts.open = Some(open);
        }
        Err(error) => {
            if let JournalError::Corrupt { file, offset, .. } = &error {
                facts.corrupt_at = Some((file.clone(), *offset));
            }
            report.fail(&error.to_string())?;
        }
    }
    check_records(dir, &mut facts, report, quiet)?;
    Ok(facts)
}

fn removed(segments: &[String]) -> String {
    if segments.is_empty() {
        String::new()
    } else {
        format!(", and later segment(s) {} hold nothing", segments.join(", "))
    }
}

/// Reads every record again, end to end, decoding every payload.
fn check_records(dir: &DataDir, facts: &mut JournalFacts, report: &mut Report<impl Write>, quiet: bool) -> Result<()> {
    let journal = &dir.stores.journal;
    let segments = segment_starts(journal.as_ref());
    let bar = progress_bar(quiet, facts.open.as_ref().and_then(|open| open.last_seq).map(Seq::get), "checking records");
    let (mut commands, mut checkpoint_records) = (0_u64, 0_u64);
    let mut decode_failures = Vec::new();
    let read = read_from::<JournalError>(journal, Seq::new(0), |record| {
        bar.set_position(record.seq.get());
        let decoded = if record.kind == KIND_CHECKPOINT {
            checkpoint_records += 1;
            Checkpoint::decode(record.seq, record.kind, record.payload)
                .map(|checkpoint| facts.checkpoints.insert(checkpoint.applied, StateHash(checkpoint.state_hash)))
                .map(|_| ())
        } else {
            commands += 1;
            decode_command(record.seq, record.kind, record.payload).map(|_| ())
        };
        if let Err(error) = decoded {
            decode_failures.push(format!("in {}: {error}", segment_of(&segments, record.seq, journal.as_ref())));
        }
        Ok(())
    });
    bar.finish_and_clear();
    let torn = facts.open.as_ref().and_then(|open| open.truncation.as_ref());
    // The torn tail or the corruption opening found: reported once, above.
    let known = |file: &str, offset: u64| {
        torn.is_some_and(|torn| journal.describe(&torn.segment) == file && torn.offset == offset)
            || facts.corrupt_at.as_ref().is_some_and(|(at, at_offset)| at == file && *at_offset == offset)
    };
    match read {
        Ok(_) => report.ok(&format!(
            "every record's checksum and chain link holds: {commands} command(s), {checkpoint_records} checkpoint(s)"
        ))?,
        Err(JournalError::Corrupt { file, offset, .. }) if known(&file, offset) => report.ok(&format!(
            "every record before offset {offset} of {file} (above) holds its checksum and chain link: \
             {commands} command(s), {checkpoint_records} checkpoint(s)"
        ))?,
        Err(JournalError::Corrupt { file, offset, seq, reason }) => report.fail(&format!(
            "{file} at offset {offset}: {reason} (where sequence {} was expected); records read before it: \
             {commands} command(s), {checkpoint_records} checkpoint(s)",
            seq.get()
        ))?,
        Err(error) => report.fail(&error.to_string())?,
    }
    let failures_count = decode_failures.len();
    for failure in decode_failures.iter().take(PROBLEMS_LISTED_MAX) {
        report.fail(failure)?;
    }
    if failures_count > PROBLEMS_LISTED_MAX {
        report.fail_more(failures_count - PROBLEMS_LISTED_MAX, "record(s) that do not decode")?;
    }
    Ok(())
}

/// The journal's segments by first sequence number.
fn segment_starts(journal: &dyn Storage) -> Vec<(Seq, String)> {
    let mut segments: Vec<(Seq, String)> = journal
        .list()
        .unwrap_or_default()
        .into_iter()
        .filter_map(|name| parse_segment_name(&name).map(|seq| (seq, name)))
        .collect();
    segments.sort();
    segments
}

/// The file that holds record `seq` (`read_from` does not say where a record is).
fn segment_of(segments: &[(Seq, String)], seq: Seq, journal: &dyn Storage) -> String {
    segments
        .iter()
        .rev()
        .find(|(first, _)| *first <= seq)
        .map_or_else(|| "the journal".to_owned(), |(_, name)| journal.describe(name))
}

fn check_snapshots(dir: &DataDir, facts: &JournalFacts, report: &mut Report<impl Write>) -> Result<()> {
    let snapshots = match list_snapshots(&dir.stores.snapshots) {
        Ok(snapshots) => snapshots,
        Err(error) => return report.fail(&error.to_string()),
    };
    if snapshots.is_empty() {
        report.note("no snapshots: recovery replays the journal from empty")?;
    }
    let journal_last = facts.open.as_ref().and_then(|open| open.last_seq);
    for (seq, name) in snapshots.iter().rev() {
        let file = dir.stores.snapshots.describe(name);
        let loaded = match load_snapshot(&dir.stores.snapshots, name, Capacity::default()) {
            Ok(loaded) => loaded,
            Err(error) => {
                report.fail(&error.to_string())?;
                continue;
            }
        };
        let hash = loaded.header.state_hash;
        report.ok(&format!("{file}: sequence {}, state hash {hash}", seq.get()))?;
        match facts.checkpoints.get(seq) {
            Some(expected) if *expected == hash => report.ok(&format!("{name} matches the journal's checkpoint"))?,
            Some(expected) => report.fail(&format!(
                "{file}: state hash {hash} differs from the journal's checkpoint for sequence {}: {expected}",
                seq.get()
            ))?,
            None => {}
        }
        if let Some(last) = journal_last
            && *seq > last
        {
            report.fail(&format!(
                "{file} is at sequence {}, past the journal's last record {}: commands are missing from the journal",
                seq.get(),
                last.get()
            ))?;
        }
    }
    Ok(())
}

/// Replays the whole journal from empty (snapshots ignored) and compares with the head.
fn check_from_empty(
    dir: &DataDir,
    config: Option<&std::path::Path>,
    head: Option<&Engine>,
    report: &mut Report<impl Write>,
    quiet: bool,
) -> Result<()> {
    report.section("recovery from empty (--full)")?;
    let no_snapshots: Arc<dyn Storage> = Arc::new(MemStorage::new());
    let empty = DataDir {
        path: dir.path.clone(),
        stores: DataStores { journal: dir.stores.journal.clone(), snapshots: no_snapshots },
    };
    let recovered = match recover_head(&empty, config, false, quiet) {
        Ok(recovered) => recovered,
        Err(error) => return report.fail(&format!("{error:#}")),
    };
    let hash = recovered.engine.state_hash();
    report.ok(&format!(
        "replayed {} command(s) from sequence 1, {} checkpoint(s) proved, state hash {hash}",
        recovered.replayed, recovered.checkpoints_verified
    ))?;
    match head.map(Engine::state_hash) {
        Some(head_hash) if head_hash == hash => report.ok("the head from the snapshot and from empty agree"),
        Some(head_hash) => {
            report.fail(&format!("the head from the snapshot has state hash {head_hash}, from empty {hash}"))
        }
        None => Ok(()),
    }
}

fn check_state(engine: &Engine, report: &mut Report<impl Write>) -> Result<()> {
    let reconciliation = engine.reconcile();
    for line in &reconciliation.assets {
        let text = describe_asset(engine, line);
        if line.is_balanced() { report.ok(&text)? } else { report.fail(&format!("does not reconcile: {text}"))? }
    }
    let mismatches = &reconciliation.held_mismatches;
    for (account, asset, held, expected) in mismatches.iter().take(PROBLEMS_LISTED_MAX) {
        report.fail(&format!(
            "account {account} holds {held} minor units of {asset}, but its authorizations and orders reserve {expected}"
        ))?;
    }
    if mismatches.len() > PROBLEMS_LISTED_MAX {
        report.fail_more(mismatches.len() - PROBLEMS_LISTED_MAX, "held mismatch(es)")?;
    }
    match invariants(engine) {
        Ok(()) => report.ok("check_invariants() holds"),
        Err(message) => report.fail(&format!("check_invariants() failed: {message}")),
    }
}

fn describe_asset(engine: &Engine, line: &AssetReconciliation) -> String {
    let Some((_, asset)) = engine.assets().find(&line.asset) else {
        return format!("{line:?}");
    };
    let amount = |minor: u128| format_minor(asset, minor);
    let expected = u128::try_from(line.expected).map_or_else(|_| format!("{} (minor units)", line.expected), amount);
    format!(
        "{}: deposited {} - withdrawn {} = {expected}; in accounts {} (recomputed {}) + fees {} + remainders {}; held {} (reserved {})",
        line.asset,
        amount(line.deposited),
        amount(line.withdrawn),
        amount(line.running_total),
        amount(line.recomputed_total),
        amount(line.fees),
        amount(line.remainders),
        amount(line.held_recomputed),
        amount(line.held_expected),
    )
}

/// Characters of a panic message shown; the rest (a whole reconciliation report, say)
/// is counted.
const PANIC_MESSAGE_CHARS_MAX: usize = 2_000;

/// Runs `check_invariants`, turning its panic into the panic's message. (With the
/// release profile's `panic = "abort"` a failure aborts the process instead.)
fn invariants(engine: &Engine) -> Result<(), String> {
    let message = Arc::new(Mutex::new(None::<String>));
    let captured = Arc::clone(&message);
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        *captured.lock().unwrap_or_else(PoisonError::into_inner) = Some(info.to_string());
    }));
    let outcome = std::panic::catch_unwind(AssertUnwindSafe(|| engine.check_invariants()));
    std::panic::set_hook(previous);
    outcome.map_err(|payload| {
        let captured = message.lock().unwrap_or_else(PoisonError::into_inner).take();
        captured
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .or_else(|| payload.downcast_ref::<&str>().map(|text| (*text).to_owned()))
            .map_or_else(|| "a panic without a message".to_owned(), |message| shorten(&message))
    })
}

fn shorten(message: &str) -> String {
    let count = message.chars().count();
    if count <= PANIC_MESSAGE_CHARS_MAX {
        return message.to_owned();
    }
    let kept: String = message.chars().take(PANIC_MESSAGE_CHARS_MAX).collect();
    format!("{kept}… ({} more characters)", count - PANIC_MESSAGE_CHARS_MAX)
}

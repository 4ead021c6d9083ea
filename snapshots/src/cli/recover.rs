//! `recover`: the one subcommand that writes. Recovers with repair (a torn journal
//! tail is cut and any segment after it removed, exactly as the server does on start),
//! checks that the state reconciles, and writes a fresh snapshot at the last command
//! applied, keeping the newest `--keep`. It takes the data directory's lock, so it
//! refuses to run beside a server.

use std::io::{Write, stdout};
use std::process::ExitCode;

use anyhow::{Result, bail};
use bourse_journal::OpenReport;
use bourse_snapshots::snapshot::write_snapshot;

use super::RecoverArgs;
use super::common::{DataDir, head_origin, recover_head};

pub(super) fn run(args: &RecoverArgs, quiet: bool) -> Result<ExitCode> {
    let dir = DataDir::open_for_repair(&args.data.data_dir)?;
    let _lock = bourse_snapshots::datadir::DataDirLock::acquire(&dir.path)?;
    let recovered = recover_head(&dir, args.config.config.as_deref(), true, quiet)?;
    let mut out = stdout().lock();
    writeln!(out, "recovering {}", dir.path.display())?;
    print_journal(&dir, &recovered.journal, &mut out)?;
    for failure in &recovered.snapshot_failures {
        writeln!(out, "skipped: {failure}")?;
    }
    let engine = &recovered.engine;
    let hash = engine.state_hash();
    writeln!(out, "recovered {}; {} checkpoint(s) proved", head_origin(&recovered), recovered.checkpoints_verified)?;
    let Some(seq) = engine.last_seq() else {
        writeln!(out, "no command was ever applied: no snapshot to write")?;
        return Ok(ExitCode::SUCCESS);
    };
    writeln!(out, "state at sequence {}: hash {hash}", seq.get())?;
    let reconciliation = engine.reconcile();
    if !reconciliation.is_balanced() {
        let assets: Vec<&str> =
            reconciliation.assets.iter().filter(|line| !line.is_balanced()).map(|line| line.asset.as_str()).collect();
        bail!(
            "the recovered state does not reconcile, so no snapshot is written: asset(s) out of balance [{}], {} \
             account hold(s) that nothing reserves; `bourse-snapshot verify` names them",
            assets.join(", "),
            reconciliation.held_mismatches.len()
        );
    }
    let up_to_date = recovered.snapshot.as_ref().is_some_and(|(_, snapshot_seq)| *snapshot_seq == seq);
    if up_to_date {
        writeln!(out, "the newest snapshot is already at sequence {}: nothing to write", seq.get())?;
        return Ok(ExitCode::SUCCESS);
    }
    let keep = usize::try_from(args.keep).unwrap_or(usize::MAX);
    let written = write_snapshot(&dir.stores.snapshots, seq, hash, &engine.export_state(), keep)?;
    writeln!(
        out,
        "snapshot written: {} ({} bytes, sequence {})",
        dir.stores.snapshots.describe(&written.name),
        written.bytes,
        seq.get()
    )?;
    if !written.removed.is_empty() {
        writeln!(out, "removed (keeping the newest {keep}): {}", written.removed.join(", "))?;
    }
    Ok(ExitCode::SUCCESS)
}

fn print_journal(dir: &DataDir, journal: &OpenReport, out: &mut impl Write) -> Result<()> {
    let last = journal.last_seq.map_or_else(|| "no records".to_owned(), |seq| format!("last record {}", seq.get()));
    match &journal.truncation {
        Some(torn) => {
            writeln!(
                out,
                "journal: torn tail cut in {} at offset {} ({}): {} non-zero byte(s) dropped; {last}",
                dir.stores.journal.describe(&torn.segment),
                torn.offset,
                torn.reason,
                torn.bytes
            )?;
            if !torn.removed_segments.is_empty() {
                writeln!(out, "journal: removed the later segment(s) {}", torn.removed_segments.join(", "))?;
            }
        }
        None => writeln!(out, "journal: no torn tail; {} segment(s), {last}", journal.segments.len())?,
    }
    Ok(())
}

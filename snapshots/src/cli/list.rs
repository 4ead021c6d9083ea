//! `list`: the snapshots (sequence, size, valid or why not), the journal segments
//! (first sequence, records, range, bytes used of the file), and a torn tail if there
//! is one. Nothing is repaired: the journal is opened with `repair` off.

use std::io::{Write, stdout};
use std::process::ExitCode;

use anyhow::{Context, Result};
use bourse_core::Capacity;
use bourse_journal::segment::parse_segment_name;
use bourse_journal::{OpenReport, SegmentInfo, open_and_check};
use bourse_snapshots::snapshot::{SnapshotError, list_snapshots, load_snapshot, parse_snapshot_name};

use super::ListArgs;
use super::common::DataDir;

pub(super) fn run(args: &ListArgs) -> Result<ExitCode> {
    let dir = DataDir::open_read_only(&args.data.data_dir)?;
    let mut out = stdout().lock();
    print_snapshots(&dir, &mut out)?;
    writeln!(out)?;
    writeln!(out, "journal in {}", dir.journal_dir().display())?;
    let report = open_and_check(&dir.stores.journal, false)
        .with_context(|| format!("the journal in {} cannot be read", dir.journal_dir().display()))?;
    print_journal(&dir, &report, &mut out)?;
    print_other_files(&dir.stores.journal.list()?, |name| parse_segment_name(name).is_some(), &mut out)?;
    Ok(ExitCode::SUCCESS)
}

fn print_snapshots(dir: &DataDir, out: &mut impl Write) -> Result<()> {
    writeln!(out, "snapshots in {}", dir.snapshots_dir().display())?;
    let snapshots = list_snapshots(&dir.stores.snapshots)?;
    if snapshots.is_empty() {
        writeln!(out, "  (none)")?;
    } else {
        writeln!(out, "  {:<36} {:>12} {:>14}  STATUS", "NAME", "SEQUENCE", "BYTES")?;
    }
    for (seq, name) in snapshots.iter().rev() {
        let bytes = std::fs::metadata(dir.snapshots_dir().join(name)).map_or(0, |metadata| metadata.len());
        let status = match load_snapshot(&dir.stores.snapshots, name, Capacity::default()) {
            Ok(loaded) => format!("valid, state hash {}", loaded.header.state_hash),
            Err(SnapshotError::Invalid { reason, .. }) => format!("INVALID: {reason}"),
            Err(error) => format!("UNREADABLE: {error}"),
        };
        writeln!(out, "  {name:<36} {:>12} {bytes:>14}  {status}", seq.get())?;
    }
    print_other_files(&dir.stores.snapshots.list()?, |name| parse_snapshot_name(name).is_some(), out)
}

fn print_journal(dir: &DataDir, report: &OpenReport, out: &mut impl Write) -> Result<()> {
    if report.segments.is_empty() {
        writeln!(out, "  (no segments)")?;
    } else {
        writeln!(
            out,
            "  {:<36} {:>12} {:>10} {:>25} {:>27}",
            "NAME", "FIRST", "RECORDS", "SEQUENCES", "BYTES USED / TOTAL"
        )?;
    }
    for segment in &report.segments {
        let used = format!("{} / {}", segment.bytes_used, segment.bytes_total);
        writeln!(
            out,
            "  {:<36} {:>12} {:>10} {:>25} {used:>27}",
            segment.name,
            segment.first_seq.get(),
            segment.records,
            sequence_range(segment)
        )?;
    }
    match (report.first_seq(), report.last_seq) {
        (Some(first), Some(last)) => writeln!(
            out,
            "  {} record(s), sequences {}..={}; the next record is {}",
            report.records,
            first.get(),
            last.get(),
            report.chain.next_seq.get()
        )?,
        _ => writeln!(out, "  no records; the next record is {}", report.chain.next_seq.get())?,
    }
    if let Some(torn) = &report.truncation {
        let after =
            report.last_seq.map_or_else(|| "the segment header".to_owned(), |seq| format!("sequence {}", seq.get()));
        writeln!(
            out,
            "  TORN TAIL: {} at offset {} ({}): {} non-zero byte(s) after {after}; not repaired \
             (`bourse-snapshot recover` cuts it)",
            dir.journal_dir().join(&torn.segment).display(),
            torn.offset,
            torn.reason,
            torn.bytes
        )?;
        if !torn.removed_segments.is_empty() {
            writeln!(out, "  later segment(s) recover would remove: {}", torn.removed_segments.join(", "))?;
        }
    }
    Ok(())
}

fn sequence_range(segment: &SegmentInfo) -> String {
    match segment.records {
        0 => "-".to_owned(),
        records => format!("{}..={}", segment.first_seq.get(), segment.first_seq.get() + records - 1),
    }
}

/// Files that are neither snapshots nor segments (a stale `.tmp`, something copied in).
fn print_other_files(names: &[String], known: impl Fn(&str) -> bool, out: &mut impl Write) -> Result<()> {
    let mut others: Vec<&str> = names.iter().map(String::as_str).filter(|name| !known(name)).collect();
    if !others.is_empty() {
        others.sort_unstable();
        writeln!(out, "  other files: {}", others.join(", "))?;
    }
    Ok(())
}

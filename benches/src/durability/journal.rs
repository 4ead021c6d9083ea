//! The `journal` suite: `JournalWriter` appending to real, pre-allocated, memory-mapped
//! segments (`FileStorage`), single-threaded, as fast as it will go.
//!
//! # Configurations
//!
//! Every combination of:
//! - record size on disk (`--record-bytes`, default 64 and 256): the whole record,
//!   32-byte header and padding included, so payloads of 32 and 224 bytes;
//! - durability mode (`--modes`): `sync` (every commit msyncs), `batch` (a commit
//!   msyncs when `--batch-interval-ms`, default 2, has passed since the last), `async`
//!   (never synced explicitly; a segment is synced when it is sealed);
//! - records per commit (`--batch`, default 1, 16, 256, 4096): the group-commit size.
//!
//! Segments are `--segment-mib` (default 64) and pre-allocated, as in production: the
//! writer creates each one (zero-filled and fsynced by `FileStorage::create`) when the
//! one before is full, inside the `append` that does not fit. Payloads are seeded
//! random bytes with the record's counter in the first eight, so no two are equal.
//!
//! # Passes, per configuration
//!
//! Each pass runs on a fresh journal in its own directory, removed afterwards.
//!
//! 1. Throughput (`--seconds`, default 1, at most `--mib-per-pass` of records): batches
//!    of N appends then one `commit`, with no clock read per batch (the loop looks at
//!    the time every 4,096 records). Reports appends/s and MB/s over the whole pass,
//!    segment rolls included. Records are all the same size, so which batches roll to
//!    a new segment is known in advance: only those are timed, to report the rolls
//!    apart (`roll_*`, `appends_per_sec_between_rolls`).
//! 2. Latency (`--latency-seconds`, default 0.5): the same loop, each batch timed
//!    (N appends + commit: what a client of that batch waits) into one HDR histogram,
//!    each commit alone into another, and the msyncs the writer did, as it measured
//!    them (`WriterStats::last_sync`; of a batch that made two, the later), into a third.
//!
//! In `sync` mode a commit is an msync, thousands of times a clock read, so the
//! latency pass is the only pass and gives the throughput too.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use bourse_core::command::CommandKind;
use bourse_core::ids::Timestamp;
use bourse_journal::record::{HEADER_BYTES, PAYLOAD_BYTES_MAX, encoded_len};
use bourse_journal::segment::SEGMENT_HEADER_BYTES;
use bourse_journal::{Durability, FileStorage, JournalConfig, JournalWriter, Storage, open_and_check};
use hdrhistogram::Histogram;
use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::{MIB, load_average, load_note, megabytes_per_sec, millis, scratch_dir, with_load};
use crate::clock::{self, ClockOverhead};
use crate::machine::Machine;
use crate::report::{BenchResult, Extra, Percentiles, Report, latency_histogram};

/// The throughput loop reads the clock once per this many records (at least once per
/// batch).
const CHECK_RECORDS: u64 = 4096;
/// Kind written in every record (the reader of this journal never decodes them).
const RECORD_KIND: u16 = CommandKind::Transfer as u16;
/// Command time of the first record: 2026-01-01T00:00:00Z.
const START_NS: u64 = 1_767_225_600_000_000_000;
/// Smallest record measured: a header and an 8-byte counter.
const RECORD_BYTES_MIN: usize = HEADER_BYTES + 8;
/// Batch-mode appends per second the issue asks for.
const BATCH_TARGET_APPENDS_PER_SEC: f64 = 5_000_000.0;

/// A durability mode, as named on the command line.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Mode {
    Sync,
    Batch,
    Async,
}

/// Options of the `journal` suite.
#[derive(clap::Args, Debug)]
pub(crate) struct Args {
    /// Directory to make the temporary journals in [default: the system temporary directory].
    #[arg(long)]
    dir: Option<std::path::PathBuf>,
    /// Record sizes on disk, header and padding included (multiples of 8).
    #[arg(long, value_delimiter = ',', default_values_t = [64_usize, 256])]
    record_bytes: Vec<usize>,
    /// Durability modes.
    #[arg(long, value_delimiter = ',', value_enum, default_values_t = [Mode::Sync, Mode::Batch, Mode::Async])]
    modes: Vec<Mode>,
    /// Records per commit (group-commit sizes).
    #[arg(long, value_delimiter = ',', default_values_t = [1_u64, 16, 256, 4096])]
    batch: Vec<u64>,
    /// Batch mode: most time between two msyncs, in milliseconds.
    #[arg(long, default_value_t = 2)]
    batch_interval_ms: u64,
    /// Length of each throughput pass (and of the sync-mode pass), in seconds.
    #[arg(long, default_value_t = 1.0)]
    seconds: f64,
    /// Length of each latency pass, in seconds.
    #[arg(long, default_value_t = 0.5)]
    latency_seconds: f64,
    /// Most record bytes one pass writes, in MiB (bounds the disk space used).
    #[arg(long, default_value_t = 4096)]
    mib_per_pass: u64,
    /// Segment size, in MiB.
    #[arg(long, default_value_t = 64)]
    segment_mib: u64,
    /// Seed of the payload bytes.
    #[arg(long, default_value_t = 42)]
    seed: u64,
}

/// One measured configuration.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Shape {
    record_bytes: usize,
    mode: Mode,
    batch: u64,
}

impl Shape {
    fn payload_bytes(self) -> usize {
        self.record_bytes - HEADER_BYTES
    }

    fn mode_label(self, interval: Duration) -> String {
        match self.mode {
            Mode::Sync => "sync".to_owned(),
            Mode::Batch => format!("batch-{}ms", interval.as_millis()),
            Mode::Async => "async".to_owned(),
        }
    }
}

/// What every pass shares.
#[derive(Clone, Copy, Debug)]
struct Setup {
    segment_bytes: u64,
    batch_interval: Duration,
    records_max_bytes: u64,
    seed: u64,
}

pub(crate) fn run(args: &Args) -> anyhow::Result<Report> {
    check_args(args)?;
    let load_at_start = load_average();
    let setup = Setup {
        segment_bytes: args.segment_mib * MIB,
        batch_interval: Duration::from_millis(args.batch_interval_ms),
        records_max_bytes: args.mib_per_pass * MIB,
        seed: args.seed,
    };
    let (scratch, disk) = scratch_dir(args.dir.as_ref(), "journal")?;
    disk.ensure_room(
        setup.records_max_bytes + 2 * setup.segment_bytes,
        "one journal pass",
        "lower --mib-per-pass or choose another --dir",
    )?;
    eprintln!("[journal] journals in {} on {disk}", scratch.path().display());
    eprintln!("[journal] measuring the cost of a clock pair");
    let clock = clock::measure_overhead();
    let mut results = Vec::new();
    for &record_bytes in &args.record_bytes {
        for &mode in &args.modes {
            for &batch in &args.batch {
                let shape = Shape { record_bytes, mode, batch };
                results.push(measure(scratch.path(), shape, &setup, args)?);
            }
        }
    }
    Ok(Report {
        suite: "journal".to_owned(),
        machine: format!("{}; journal on {disk}", Machine::detect()),
        results: with_load(results, &load_at_start),
        notes: notes(&setup, &clock, &load_at_start),
    })
}

fn check_args(args: &Args) -> anyhow::Result<()> {
    let record_max = encoded_len(PAYLOAD_BYTES_MAX);
    for &bytes in &args.record_bytes {
        ensure!(
            bytes % 8 == 0 && (RECORD_BYTES_MIN..=record_max).contains(&bytes),
            "--record-bytes {bytes}: records are multiples of 8 bytes, {RECORD_BYTES_MIN}..={record_max}"
        );
    }
    ensure!(args.batch.iter().all(|&batch| batch >= 1), "--batch sizes must be at least 1");
    ensure!(args.seconds > 0.0 && args.latency_seconds > 0.0, "pass lengths must be positive");
    let segment_min = (SEGMENT_HEADER_BYTES + record_max) as u64;
    ensure!(args.segment_mib * MIB >= segment_min, "--segment-mib must hold the largest record");
    ensure!(args.mib_per_pass >= 1, "--mib-per-pass must be at least 1");
    Ok(())
}

/// Both passes of one configuration, as one result.
fn measure(scratch: &Path, shape: Shape, setup: &Setup, args: &Args) -> anyhow::Result<BenchResult> {
    let label =
        format!("{}B/{}/{}-per-commit", shape.record_bytes, shape.mode_label(setup.batch_interval), shape.batch);
    let throughput = if shape.mode == Mode::Sync {
        None
    } else {
        let pass = in_fresh_dir(scratch, "throughput", |dir| {
            throughput_pass(dir, shape, setup, Duration::from_secs_f64(args.seconds))
        })?;
        eprintln!("[journal] {label}: {:.0} appends/s", pass.appends_per_sec());
        Some(pass)
    };
    let latency_length = if shape.mode == Mode::Sync { args.seconds } else { args.latency_seconds };
    let latency = in_fresh_dir(scratch, "latency", |dir| {
        latency_pass(dir, shape, setup, Duration::from_secs_f64(latency_length))
    })?;
    eprintln!("[journal] {label}: latency pass, {:.0} appends/s", latency.counts.appends_per_sec());
    Ok(result(&label, shape, setup, throughput.as_ref(), &latency))
}

/// Runs `pass` in a new directory under `scratch`, then removes it.
fn in_fresh_dir<T>(scratch: &Path, name: &str, pass: impl FnOnce(&Path) -> anyhow::Result<T>) -> anyhow::Result<T> {
    let dir = scratch.join(name);
    std::fs::create_dir(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let outcome = pass(&dir);
    std::fs::remove_dir_all(&dir).with_context(|| format!("removing {}", dir.display()))?;
    outcome
}

/// An empty journal in `dir`, opened as the runtime opens one.
fn new_writer(dir: &Path, shape: Shape, setup: &Setup) -> anyhow::Result<JournalWriter> {
    let durability = match shape.mode {
        Mode::Sync => Durability::Sync,
        Mode::Batch => Durability::Batch { interval: setup.batch_interval },
        Mode::Async => Durability::Async,
    };
    let storage: Arc<dyn Storage> = Arc::new(FileStorage::new(dir)?);
    let report = open_and_check(&storage, true)?;
    let config = JournalConfig { segment_bytes: setup.segment_bytes, durability };
    Ok(JournalWriter::new(storage, config, &report)?)
}

/// Makes the records: a seeded random payload whose first eight bytes count.
struct Records {
    payload: Vec<u8>,
    next: u64,
}

impl Records {
    fn new(shape: Shape, seed: u64) -> Self {
        let mut payload = vec![0; shape.payload_bytes()];
        ChaCha8Rng::seed_from_u64(seed).fill_bytes(&mut payload);
        Self { payload, next: 0 }
    }

    fn append(&mut self, writer: &mut JournalWriter) -> anyhow::Result<()> {
        self.payload[..8].copy_from_slice(&self.next.to_le_bytes());
        writer.append(Timestamp::from_nanos(START_NS + self.next), RECORD_KIND, &self.payload)?;
        self.next += 1;
        Ok(())
    }

    fn append_batch(&mut self, writer: &mut JournalWriter, batch: u64) -> anyhow::Result<()> {
        for _ in 0..batch {
            self.append(writer)?;
        }
        Ok(())
    }
}

/// What a pass wrote.
#[derive(Clone, Copy, Debug, Default)]
struct Counts {
    records: u64,
    record_bytes: u64,
    elapsed: Duration,
    commits: u64,
    syncs: u64,
    segments_created: u64,
}

impl Counts {
    fn appends_per_sec(&self) -> f64 {
        self.records as f64 / self.elapsed.as_secs_f64()
    }
}

/// The throughput pass.
#[derive(Clone, Copy, Debug)]
struct ThroughputPass {
    counts: Counts,
    /// Batches that rolled to a new segment, and the time they took.
    roll_batches: u64,
    roll_time: Duration,
}

impl ThroughputPass {
    fn appends_per_sec(&self) -> f64 {
        self.counts.appends_per_sec()
    }
}

fn throughput_pass(dir: &Path, shape: Shape, setup: &Setup, length: Duration) -> anyhow::Result<ThroughputPass> {
    let mut writer = new_writer(dir, shape, setup)?;
    let mut records = Records::new(shape, setup.seed);
    let records_max = setup.records_max_bytes / shape.record_bytes as u64;
    let records_per_segment = (setup.segment_bytes - SEGMENT_HEADER_BYTES as u64) / shape.record_bytes as u64;
    let check_every = (CHECK_RECORDS / shape.batch).max(1);
    // The first append creates the first segment; then every `records_per_segment`.
    let mut next_roll = 0;
    let (mut written, mut batches, mut roll_batches, mut roll_time) = (0, 0, 0, Duration::ZERO);
    let started = Instant::now();
    loop {
        if batches % check_every == 0 && (started.elapsed() >= length || written >= records_max) {
            break;
        }
        let end = written + shape.batch;
        let roll_started = (next_roll < end).then(Instant::now);
        records.append_batch(&mut writer, shape.batch)?;
        writer.commit()?;
        if let Some(roll_started) = roll_started {
            roll_time += roll_started.elapsed();
            roll_batches += 1;
            while next_roll < end {
                next_roll += records_per_segment;
            }
        }
        written = end;
        batches += 1;
    }
    let elapsed = started.elapsed();
    let counts = finish(writer, written, shape, elapsed, batches)?;
    ensure!(
        counts.segments_created == written.div_ceil(records_per_segment),
        "{} segments were created where {} were predicted",
        counts.segments_created,
        written.div_ceil(records_per_segment)
    );
    Ok(ThroughputPass { counts, roll_batches, roll_time })
}

/// Syncs what is left (untimed, so the next pass starts without dirty pages of this
/// one), and counts.
fn finish(
    mut writer: JournalWriter,
    written: u64,
    shape: Shape,
    elapsed: Duration,
    commits: u64,
) -> anyhow::Result<Counts> {
    let stats = writer.stats();
    writer.sync()?;
    ensure!(stats.records == written, "the writer counted {} records, the pass {written}", stats.records);
    Ok(Counts {
        records: written,
        record_bytes: written * shape.record_bytes as u64,
        elapsed,
        commits,
        syncs: stats.syncs,
        segments_created: stats.segments_created,
    })
}

/// The latency pass.
#[derive(Debug)]
struct LatencyPass {
    counts: Counts,
    /// N appends + commit.
    batch: Histogram<u64>,
    commit: Histogram<u64>,
    /// Every msync, as the writer timed it.
    sync: Histogram<u64>,
}

fn latency_pass(dir: &Path, shape: Shape, setup: &Setup, length: Duration) -> anyhow::Result<LatencyPass> {
    let mut writer = new_writer(dir, shape, setup)?;
    let mut records = Records::new(shape, setup.seed);
    let records_max = setup.records_max_bytes / shape.record_bytes as u64;
    let (mut batch, mut commit, mut sync) = (latency_histogram(), latency_histogram(), latency_histogram());
    let (mut written, mut batches, mut syncs_seen) = (0, 0, 0);
    let started = Instant::now();
    loop {
        let batch_started = Instant::now();
        records.append_batch(&mut writer, shape.batch)?;
        let commit_started = Instant::now();
        writer.commit()?;
        let done = Instant::now();
        batch.saturating_record((done - batch_started).as_nanos() as u64);
        commit.saturating_record((done - commit_started).as_nanos() as u64);
        let stats = writer.stats();
        if stats.syncs > syncs_seen {
            sync.saturating_record(stats.last_sync.as_nanos() as u64);
            syncs_seen = stats.syncs;
        }
        written += shape.batch;
        batches += 1;
        if done - started >= length || written >= records_max {
            break;
        }
    }
    let elapsed = started.elapsed();
    let counts = finish(writer, written, shape, elapsed, batches)?;
    Ok(LatencyPass { counts, batch, commit, sync })
}

fn percentile_extras(result: &mut BenchResult, prefix: &str, histogram: &Histogram<u64>) {
    let percentiles = Percentiles::of(histogram);
    result
        .extra(&format!("{prefix}_count"), Extra::Count(histogram.len()))
        .extra(&format!("{prefix}_ns_p50"), Extra::Count(percentiles.p50_ns))
        .extra(&format!("{prefix}_ns_p99"), Extra::Count(percentiles.p99_ns))
        .extra(&format!("{prefix}_ns_p999"), Extra::Count(percentiles.p999_ns))
        .extra(&format!("{prefix}_ns_p9999"), Extra::Count(percentiles.p9999_ns))
        .extra(&format!("{prefix}_ns_max"), Extra::Count(percentiles.max_ns));
}

fn result(
    label: &str,
    shape: Shape,
    setup: &Setup,
    throughput: Option<&ThroughputPass>,
    latency: &LatencyPass,
) -> BenchResult {
    let counts = throughput.map_or(latency.counts, |pass| pass.counts);
    let mut result = BenchResult::new(format!("journal/{label}"), counts.records, counts.elapsed, &latency.batch);
    result
        .extra("record_bytes", Extra::Count(shape.record_bytes as u64))
        .extra("payload_bytes", Extra::Count(shape.payload_bytes() as u64))
        .extra("mode", Extra::Text(shape.mode_label(setup.batch_interval)))
        .extra("records_per_commit", Extra::Count(shape.batch))
        .extra(
            "throughput_from",
            Extra::Text(if throughput.is_some() { "throughput pass" } else { "latency pass" }.into()),
        )
        .extra("mb_per_sec", Extra::Ratio(megabytes_per_sec(counts.record_bytes, counts.elapsed)))
        .extra("commits", Extra::Count(counts.commits))
        .extra("syncs", Extra::Count(counts.syncs))
        .extra("segments_created", Extra::Count(counts.segments_created));
    if let Some(pass) = throughput {
        let roll_records = pass.roll_batches * shape.batch;
        let between = pass.counts.elapsed.saturating_sub(pass.roll_time);
        let rate_between = (pass.counts.records.saturating_sub(roll_records)) as f64 / between.as_secs_f64();
        result
            .extra("roll_batches", Extra::Count(pass.roll_batches))
            .extra("roll_ms_total", Extra::Ratio(millis(pass.roll_time)))
            .extra("roll_ms_mean", Extra::Ratio(millis(pass.roll_time) / pass.roll_batches.max(1) as f64))
            .extra(
                "roll_percent_of_pass",
                Extra::Ratio(100.0 * pass.roll_time.as_secs_f64() / pass.counts.elapsed.as_secs_f64()),
            )
            .extra("appends_per_sec_between_rolls", Extra::Ratio(rate_between))
            .extra("latency_pass_appends_per_sec", Extra::Ratio(latency.counts.appends_per_sec()));
    }
    if shape.mode == Mode::Batch {
        let met = counts.records as f64 / counts.elapsed.as_secs_f64() >= BATCH_TARGET_APPENDS_PER_SEC;
        result
            .extra("target_appends_per_sec", Extra::Ratio(BATCH_TARGET_APPENDS_PER_SEC))
            .extra("meets_target", Extra::Text(if met { "yes" } else { "no" }.into()));
    }
    percentile_extras(&mut result, "commit", &latency.commit);
    percentile_extras(&mut result, "msync", &latency.sync);
    result.extra("latency_pass_segments_created", Extra::Count(latency.counts.segments_created));
    result
}

fn notes(setup: &Setup, clock: &ClockOverhead, load_at_start: &str) -> Vec<String> {
    vec![
        load_note(load_at_start),
        "ops = records appended; ops/s = appends per second over the whole throughput pass (sync mode: the \
         latency pass), segment rolls included. mb_per_sec counts record bytes (header and padding \
         included) in decimal MB."
            .to_owned(),
        "latency columns: one batch = N appends + commit, from the latency pass (each batch timed; each \
         sample includes one clock pair). commit_ns_*: the commit alone (sync mode: an msync; batch mode: \
         an msync when one is due; async: bookkeeping only). msync_ns_*: the msyncs the writer made, as it \
         measured them (WriterStats::last_sync; of a batch that made two, the later), including those \
         that seal a segment."
            .to_owned(),
        format!(
            "segments are {} MiB, created inside the append that does not fit: FileStorage::create writes \
             the whole file in zeros and fsyncs it, and sealing the previous segment msyncs it (async \
             mode too). roll_*: the batches that rolled, timed apart; appends_per_sec_between_rolls \
             leaves them out.",
            setup.segment_bytes / MIB
        ),
        format!(
            "clock pair: p50 {} ns, mean {:.1} ns on this machine; closed loop (each batch starts when the \
             previous commit returns), so no coordinated-omission correction applies.",
            clock.pair_ns.p50_ns, clock.pair_ns_mean
        ),
        "each pass starts on a fresh journal and ends with an untimed sync, so no pass inherits dirty pages \
         from the one before; the page cache and the disk are shared with whatever else runs on the machine."
            .to_owned(),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_mode_measures_and_rolls_where_predicted() {
        let args = Args {
            dir: None,
            record_bytes: vec![64, 256],
            modes: vec![Mode::Sync, Mode::Batch, Mode::Async],
            batch: vec![1, 300],
            batch_interval_ms: 2,
            seconds: 0.05,
            latency_seconds: 0.02,
            mib_per_pass: 3,
            segment_mib: 1,
            seed: 7,
        };
        let report = run(&args).unwrap();
        assert_eq!(report.results.len(), 12);
        for result in &report.results {
            assert!(result.ops > 0 && result.ops_per_sec > 0.0, "{}", result.name);
        }
        let async_large = report.results.iter().find(|result| result.name == "journal/256B/async/300-per-commit");
        let segments = async_large.unwrap().extras.iter().find(|(name, _)| name == "segments_created");
        assert!(matches!(segments, Some((_, Extra::Count(count))) if *count >= 1));
    }

    #[test]
    fn refuses_records_that_are_not_whole_words() {
        let args = Args {
            dir: None,
            record_bytes: vec![60],
            modes: vec![Mode::Async],
            batch: vec![1],
            batch_interval_ms: 2,
            seconds: 0.01,
            latency_seconds: 0.01,
            mib_per_pass: 1,
            segment_mib: 1,
            seed: 7,
        };
        assert!(run(&args).is_err());
    }
}

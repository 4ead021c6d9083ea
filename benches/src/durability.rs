//! The durability suites: what it costs to make commands and state survive a crash,
//! and to come back after one. Each runs on real files (`FileStorage`, memory-mapped)
//! in a temporary directory under `--dir` (default: the system temporary directory),
//! so the figures are those of the filesystem and disk under it, named in the report.
//!
//! - `journal`: appends per second and MB/s per record size, durability mode and
//!   records per commit; batch and sync (msync) latency percentiles.
//! - `snapshot`: an engine with a million accounts and a million resting orders:
//!   `export_state` (the engine's pause), the write (serialize, create, write, msync,
//!   rename), the validated load, and the file's size.
//! - `recovery`: replay speed and total restart time for a journal of millions of
//!   commands, from no snapshot and from a snapshot near the end.
//! - `exchange`: the seeded exchange the snapshot and recovery suites build (assets,
//!   markets, accounts, resting orders).
//! - `timed_storage`: a `Storage` wrapper that times every file operation, to split a
//!   snapshot write into its parts.
//!
//! Helpers shared by the three: the scratch directory, the disk it lives on (`df`),
//! and medians of repeated runs.

pub(crate) mod exchange;
pub(crate) mod journal;
pub(crate) mod recovery;
pub(crate) mod snapshot;
mod timed_storage;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use tempfile::TempDir;

use crate::report::{BenchResult, Extra};

/// Bytes in a mebibyte, for sizes; throughput is in decimal MB (10^6 bytes) per second.
pub(crate) const MIB: u64 = 1024 * 1024;
/// Free space a suite leaves on the disk beyond what it plans to write: enough that a
/// run never fills the disk for the build or the system, small enough that a CI
/// machine with a gigabyte or so left after the build can still run the tests.
const FREE_BYTES_MARGIN: u64 = 256 * MIB;

/// The disk a scratch directory lives on, as `df` reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Disk {
    pub(crate) device: String,
    pub(crate) fs_type: String,
    pub(crate) mount: String,
    pub(crate) available_bytes: u64,
}

impl Disk {
    /// `df -PTk <path>`: the filesystem holding `path`.
    pub(crate) fn of(path: &Path) -> anyhow::Result<Self> {
        let output = Command::new("df").arg("-PTk").arg(path).output().context("running df")?;
        ensure!(output.status.success(), "df {} failed: {}", path.display(), String::from_utf8_lossy(&output.stderr));
        let text = String::from_utf8_lossy(&output.stdout);
        // Filesystem Type 1024-blocks Used Available Capacity Mounted-on
        let line = text.lines().nth(1).context("df printed no filesystem line")?;
        let fields: Vec<&str> = line.split_whitespace().collect();
        ensure!(fields.len() >= 7, "unexpected df line: {line}");
        let available_kib: u64 = fields[4].parse().with_context(|| format!("df available field in {line:?}"))?;
        Ok(Self {
            device: fields[0].to_owned(),
            fs_type: fields[1].to_owned(),
            mount: fields[6..].join(" "),
            available_bytes: available_kib * 1024,
        })
    }

    /// Fails, saying how to scale down, unless `needed` bytes plus a margin are free.
    pub(crate) fn ensure_room(&self, needed: u64, what: &str, scale_down: &str) -> anyhow::Result<()> {
        if self.available_bytes < needed + FREE_BYTES_MARGIN {
            bail!(
                "{what} needs about {} MiB, and {} has {} MiB free (keeping {} MiB spare): {scale_down}",
                needed / MIB,
                self.mount,
                self.available_bytes / MIB,
                FREE_BYTES_MARGIN / MIB
            );
        }
        Ok(())
    }
}

impl std::fmt::Display for Disk {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({}) mounted at {}", self.device, self.fs_type, self.mount)
    }
}

/// A fresh temporary directory for one suite under `dir` (default: the system
/// temporary directory), removed when dropped; and the disk it is on.
pub(crate) fn scratch_dir(dir: Option<&PathBuf>, suite: &str) -> anyhow::Result<(TempDir, Disk)> {
    let parent = dir.cloned().unwrap_or_else(std::env::temp_dir);
    std::fs::create_dir_all(&parent).with_context(|| format!("creating {}", parent.display()))?;
    let scratch = tempfile::Builder::new()
        .prefix(&format!("bourse-bench-{suite}-"))
        .tempdir_in(&parent)
        .with_context(|| format!("creating a temporary directory in {}", parent.display()))?;
    let disk = Disk::of(scratch.path())?;
    Ok((scratch, disk))
}

/// Median, minimum and maximum of repeated measurements.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Spread {
    pub(crate) median: Duration,
    pub(crate) min: Duration,
    pub(crate) max: Duration,
}

impl Spread {
    /// Of a non-empty list of durations (the median of an even count is the mean of
    /// the middle two).
    pub(crate) fn of(samples: &[Duration]) -> Self {
        assert!(!samples.is_empty(), "a spread of at least one sample");
        let mut sorted = samples.to_vec();
        sorted.sort_unstable();
        let middle = sorted.len() / 2;
        let median = if sorted.len() % 2 == 1 { sorted[middle] } else { (sorted[middle - 1] + sorted[middle]) / 2 };
        Self { median, min: sorted[0], max: sorted[sorted.len() - 1] }
    }
}

/// The 1, 5 and 15 minute load averages, from `/proc/loadavg`: what else the machine
/// was doing, named beside figures that share its cores and disk.
pub(crate) fn load_average() -> String {
    let text = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let fields: Vec<&str> = text.split_whitespace().take(3).collect();
    if fields.len() == 3 { fields.join(" ") } else { "unknown".to_owned() }
}

/// A note naming the load averages when the suite started and ended.
pub(crate) fn load_note(at_start: &str) -> String {
    let cpus = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
    format!(
        "load average (1, 5, 15 min) at start: {at_start}; at end: {}. The suite itself adds about 1; \
         more means other work shared the {cpus} CPUs and the disk with it.",
        load_average()
    )
}

/// Names the load averages at the start and end beside every result, for readers of
/// the JSON (which carries no notes).
pub(crate) fn with_load(mut results: Vec<BenchResult>, at_start: &str) -> Vec<BenchResult> {
    let at_end = load_average();
    for result in &mut results {
        result
            .extra("load_average_at_start", Extra::Text(at_start.to_owned()))
            .extra("load_average_at_end", Extra::Text(at_end.clone()));
    }
    results
}

/// Bytes touched to measure the cost of fresh memory.
const FRESH_MEMORY_PROBE_BYTES: usize = 256 * 1024 * 1024;
const PAGE_BYTES: usize = 4096;

/// What the first write to a fresh 4 KiB page of memory costs here, in nanoseconds: a
/// page fault and the kernel zeroing the page (and, in a virtual machine, possibly the
/// host backing it). Every large table or buffer a snapshot or recovery allocates pays
/// it once per page. Measured on a fresh 256 MiB allocation.
pub(crate) fn fresh_page_touch_ns() -> f64 {
    let mut memory = vec![0_u8; FRESH_MEMORY_PROBE_BYTES];
    let started = Instant::now();
    for page in memory.chunks_mut(PAGE_BYTES) {
        page[0] = 1;
    }
    let elapsed = started.elapsed();
    std::hint::black_box(&memory);
    elapsed.as_nanos() as f64 / (FRESH_MEMORY_PROBE_BYTES / PAGE_BYTES) as f64
}

/// Milliseconds, for reading.
pub(crate) fn millis(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1e3
}

/// `bytes` over `elapsed` in decimal megabytes per second.
pub(crate) fn megabytes_per_sec(bytes: u64, elapsed: Duration) -> f64 {
    let seconds = elapsed.as_secs_f64();
    if seconds > 0.0 { bytes as f64 / 1e6 / seconds } else { 0.0 }
}

/// Each sample in milliseconds, in run order, for the report.
pub(crate) fn millis_each(samples: &[Duration]) -> String {
    samples.iter().map(|sample| format!("{:.1}", millis(*sample))).collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spread_takes_the_middle() {
        let ms = Duration::from_millis;
        assert_eq!(Spread::of(&[ms(5), ms(1), ms(3)]), Spread { median: ms(3), min: ms(1), max: ms(5) });
        assert_eq!(Spread::of(&[ms(4), ms(1), ms(2), ms(9)]).median, ms(3));
    }

    #[test]
    fn df_describes_the_temporary_directory() {
        let disk = Disk::of(&std::env::temp_dir()).unwrap();
        assert!(disk.available_bytes > 0);
        assert!(!disk.fs_type.is_empty());
        assert!(disk.ensure_room(u64::MAX / 2, "a test", "scale down").is_err());
    }
}

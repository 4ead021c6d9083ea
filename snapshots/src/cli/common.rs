//! What the subcommands share: opening a data directory (read-only, or for repair),
//! the engine configuration, an engine loaded from a snapshot or recovered to the
//! head, progress bars, and amounts formatted at their asset's scale.

use std::fmt::Write as _;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use bourse_core::asset::Asset;
use bourse_core::config::Config;
use bourse_core::ids::Seq;
use bourse_core::money::Amount;
use bourse_core::{Capacity, Engine};
use bourse_journal::{FileStorage, MemStorage, OpenReport, Storage, open_and_check};
use bourse_snapshots::snapshot::{SnapshotError, load_newest, load_snapshot, snapshot_name};
use bourse_snapshots::{DataStores, Recovered, open_data_dir, recover};
use indicatif::{ProgressBar, ProgressStyle};

use super::torn::TornTailCut;

/// A data directory and its two stores.
pub(super) struct DataDir {
    pub(super) path: PathBuf,
    pub(super) stores: DataStores,
}

impl DataDir {
    /// Opens `path` without creating anything in it: a missing `journal/` or
    /// `snapshots/` is read as empty.
    pub(super) fn open_read_only(path: &Path) -> Result<Self> {
        check_data_dir(path)?;
        let stores = DataStores {
            journal: storage_or_empty(&path.join("journal"))?,
            snapshots: storage_or_empty(&path.join("snapshots"))?,
        };
        Ok(Self { path: path.to_path_buf(), stores })
    }

    /// Opens `path` for writing (creating `journal/` and `snapshots/` if missing).
    pub(super) fn open_for_repair(path: &Path) -> Result<Self> {
        check_data_dir(path)?;
        let stores = open_data_dir(path).with_context(|| format!("opening the data directory {}", path.display()))?;
        Ok(Self { path: path.to_path_buf(), stores })
    }

    /// This directory with the journal's torn tail, if it has one, cut in memory (see
    /// `torn`): what the read-only commands replay. Also returns the journal's report.
    pub(super) fn without_torn_tail(&self) -> Result<(DataDir, OpenReport)> {
        let report = open_and_check(&self.stores.journal, false)
            .with_context(|| format!("the journal in {} cannot be read", self.journal_dir().display()))?;
        let journal: Arc<dyn Storage> = match &report.truncation {
            Some(torn) => Arc::new(TornTailCut::new(self.stores.journal.clone(), torn)),
            None => self.stores.journal.clone(),
        };
        let stores = DataStores { journal, snapshots: self.stores.snapshots.clone() };
        Ok((DataDir { path: self.path.clone(), stores }, report))
    }

    pub(super) fn journal_dir(&self) -> PathBuf {
        self.path.join("journal")
    }

    pub(super) fn snapshots_dir(&self) -> PathBuf {
        self.path.join("snapshots")
    }
}

fn check_data_dir(path: &Path) -> Result<()> {
    if !path.is_dir() {
        bail!("the data directory {} does not exist or is not a directory", path.display());
    }
    if !path.join("journal").is_dir() && !path.join("snapshots").is_dir() {
        bail!("{} is not a Bourse data directory: it has neither journal/ nor snapshots/ in it", path.display());
    }
    Ok(())
}

fn storage_or_empty(dir: &Path) -> Result<Arc<dyn Storage>> {
    if dir.is_dir() {
        let storage = FileStorage::new(dir).with_context(|| format!("opening {}", dir.display()))?;
        Ok(Arc::new(storage))
    } else {
        Ok(Arc::new(MemStorage::new()))
    }
}

/// Reads and validates an engine configuration file: the engine's own (assets and
/// markets at the top) or the server's (taking its `[engine]` table).
pub(super) fn load_config(path: &Path) -> Result<Config> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading the engine configuration {}", path.display()))?;
    let table: toml::Table =
        toml::from_str(&text).with_context(|| format!("in the configuration {}: not TOML", path.display()))?;
    let text = match table.get("engine") {
        Some(engine) => toml::to_string(engine).context("re-serialising [engine]")?,
        None => text,
    };
    Config::from_toml_str(&text).with_context(|| format!("in the engine configuration {}", path.display()))
}

/// Which state a subcommand looks at.
#[derive(Clone, Copy, Debug)]
pub(super) enum Source<'a> {
    /// A snapshot: a file name in `DIR/snapshots`, a sequence number, or a path.
    Snapshot(&'a str),
    /// The newest snapshot that passes every check.
    Newest,
    /// The newest valid snapshot plus the journal after it, read-only.
    Head,
}

/// An engine and where it came from, for the reader.
pub(super) struct State {
    pub(super) engine: Engine,
    pub(super) origin: String,
}

/// Loads the engine `source` names. `config` is only needed for the head when no
/// snapshot is valid.
pub(super) fn load_state(dir: &DataDir, source: Source<'_>, config: Option<&Path>, quiet: bool) -> Result<State> {
    match source {
        Source::Snapshot(spec) => {
            let (storage, name) = resolve_snapshot(dir, spec)?;
            let loaded = load_snapshot(&storage, &name, Capacity::default())?;
            Ok(State { engine: loaded.engine, origin: format!("snapshot {}", storage.describe(&name)) })
        }
        Source::Newest => {
            let (loaded, failures) = load_newest(&dir.stores.snapshots, Capacity::default())?;
            let Some(loaded) = loaded else {
                bail!("no valid snapshot in {}{}", dir.snapshots_dir().display(), failure_list(&failures));
            };
            Ok(State {
                origin: format!("snapshot {}", dir.stores.snapshots.describe(&loaded.name)),
                engine: loaded.engine,
            })
        }
        Source::Head => {
            let recovered = recover_head(dir, config, false, quiet)?;
            let origin = head_origin(&recovered);
            Ok(State { engine: recovered.engine, origin })
        }
    }
}

/// Describes a recovered head: the snapshot it started from and what was replayed.
pub(super) fn head_origin(recovered: &Recovered) -> String {
    let start = recovered
        .snapshot
        .as_ref()
        .map_or_else(|| "empty engine".to_owned(), |(name, seq)| format!("snapshot {name} (sequence {})", seq.get()));
    format!("head: {start} + {} command(s) replayed from the journal", recovered.replayed)
}

/// A snapshot named by file name, sequence number or path: its storage and file name.
fn resolve_snapshot(dir: &DataDir, spec: &str) -> Result<(Arc<dyn Storage>, String)> {
    let path = Path::new(spec);
    if path.components().count() > 1 {
        let (Some(parent), Some(name)) = (path.parent(), path.file_name().and_then(|name| name.to_str())) else {
            bail!("{spec} does not name a snapshot file");
        };
        if !path.is_file() {
            bail!("the snapshot file {} does not exist", path.display());
        }
        let storage = FileStorage::new(parent).with_context(|| format!("opening {}", parent.display()))?;
        return Ok((Arc::new(storage), name.to_owned()));
    }
    let name = spec.parse::<u64>().map_or_else(|_| spec.to_owned(), |seq| snapshot_name(Seq::new(seq)));
    if !dir.snapshots_dir().join(&name).is_file() {
        bail!("there is no snapshot {name} in {}", dir.snapshots_dir().display());
    }
    Ok((dir.stores.snapshots.clone(), name))
}

/// Recovers the head (newest valid snapshot + the journal after it). With `repair` a
/// torn tail is cut from the files; without, only in memory. Without `config`, the
/// newest valid snapshot must exist.
pub(super) fn recover_head(dir: &DataDir, config: Option<&Path>, repair: bool, quiet: bool) -> Result<Recovered> {
    let view;
    let dir = if repair {
        dir
    } else {
        view = dir.without_torn_tail()?.0;
        &view
    };
    let (config, from_snapshot) = match config {
        Some(path) => (load_config(path)?, false),
        None => (config_from_newest_snapshot(dir)?, true),
    };
    let bar = progress_bar(quiet, None, "replaying the journal");
    let recovered = recover(&dir.stores, &config, Capacity::default(), repair, |seq| bar.set_position(seq.get()));
    bar.finish_and_clear();
    let recovered = recovered.with_context(|| format!("recovering {}", dir.path.display()))?;
    if from_snapshot && recovered.snapshot.is_none() {
        return Err(config_needed(dir, &recovered.snapshot_failures));
    }
    Ok(recovered)
}

/// The newest valid snapshot's assets and markets as a configuration: `recover` asks
/// for one, and uses it only when no snapshot is valid (which this rules out).
fn config_from_newest_snapshot(dir: &DataDir) -> Result<Config> {
    let (loaded, failures) = load_newest(&dir.stores.snapshots, Capacity::default())?;
    let Some(loaded) = loaded else { return Err(config_needed(dir, &failures)) };
    config_of(&loaded.engine)
}

/// An engine's assets and markets as a configuration.
pub(super) fn config_of(engine: &Engine) -> Result<Config> {
    let markets = engine.markets().iter().map(|market| market.spec().clone()).collect();
    Config::new(engine.assets().clone(), markets)
        .context("the snapshot's assets and markets do not form a configuration")
}

pub(super) fn config_needed(dir: &DataDir, failures: &[SnapshotError]) -> anyhow::Error {
    anyhow::anyhow!(
        "no valid snapshot in {}{}: replaying the journal from empty needs the engine configuration, pass --config FILE",
        dir.snapshots_dir().display(),
        failure_list(failures)
    )
}

fn failure_list(failures: &[SnapshotError]) -> String {
    failures.iter().fold(String::new(), |mut list, failure| {
        let _ = write!(list, " ({failure})");
        list
    })
}

/// A progress bar on stderr, or a hidden one when `quiet` or stdout is not a terminal.
/// Without a length it is a spinner showing the position (a sequence number).
pub(super) fn progress_bar(quiet: bool, len: Option<u64>, message: &'static str) -> ProgressBar {
    if quiet || !std::io::stdout().is_terminal() {
        return ProgressBar::hidden();
    }
    let (bar, template) = match len {
        Some(len) => (ProgressBar::new(len), "{msg} {wide_bar} {pos}/{len} (eta {eta})"),
        None => (ProgressBar::new_spinner(), "{spinner} {msg}: sequence {pos} ({elapsed})"),
    };
    let style = ProgressStyle::with_template(template).expect("the progress templates are valid");
    let bar = bar.with_style(style).with_message(message);
    bar.enable_steady_tick(Duration::from_millis(200));
    bar
}

/// Command time as `2026-11-26T08:30:00.123456789Z` (UTC; the gateway prints the same).
pub(super) fn format_time(at: bourse_core::ids::Timestamp) -> String {
    let nanos = at.as_nanos();
    let (seconds, fraction) = (nanos / 1_000_000_000, nanos % 1_000_000_000);
    let (days, of_day) = (i64::try_from(seconds / 86_400).unwrap_or(i64::MAX), seconds % 86_400);
    // Days since 1970-01-01 to a civil date (H. Hinnant's `civil_from_days`).
    let z = days + 719_468;
    let (era, doe) = (z.div_euclid(146_097), z.rem_euclid(146_097));
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let (hour, minute, second) = (of_day / 3_600, of_day / 60 % 60, of_day % 60);
    format!("{year:04}-{month:02}-{day:02}T{hour:02}:{minute:02}:{second:02}.{fraction:09}Z")
}

/// `minor` units of `asset` as a decimal string at its scale: `Asset::format_amount`
/// when it fits an `Amount` (running totals always do), digits placed by hand for
/// the larger all-time sums (deposited, withdrawn).
pub(super) fn format_minor(asset: &Asset, minor: u128) -> String {
    match u64::try_from(minor).ok().and_then(Amount::new) {
        Some(amount) => asset.format_amount(amount),
        None => place_point(minor, asset.scale()),
    }
}

/// `minor` with a decimal point `scale` digits from the right, as `format_amount` does.
fn place_point(minor: u128, scale: u32) -> String {
    let scale = scale as usize;
    let digits = format!("{minor:0>width$}", width = scale + 1);
    if scale == 0 {
        return digits;
    }
    let (whole, fraction) = digits.split_at(digits.len() - scale);
    format!("{whole}.{fraction}")
}

#[cfg(test)]
mod tests {
    use bourse_core::asset::AssetCode;

    use super::*;

    #[test]
    fn times_are_utc_dates() {
        use bourse_core::ids::Timestamp;
        assert_eq!(format_time(Timestamp::from_nanos(0)), "1970-01-01T00:00:00.000000000Z");
        let noon = Timestamp::from_nanos((1_700_006_400 + 12 * 3_600) * 1_000_000_000 + 5);
        assert_eq!(format_time(noon), "2023-11-15T12:00:00.000000005Z");
        let leap_day = Timestamp::from_nanos(1_709_164_800 * 1_000_000_000);
        assert_eq!(format_time(leap_day), "2024-02-29T00:00:00.000000000Z");
    }

    #[test]
    fn large_sums_format_like_format_amount() {
        for scale in [0, 2, 8, 18] {
            let asset = Asset::new(AssetCode::new("XYZ").unwrap(), scale).unwrap();
            for minor in [0, 1, 5, 99, 100, 1250, 123_456_789, Amount::MAX.minor_units()] {
                let amount = Amount::new(minor).unwrap();
                assert_eq!(place_point(u128::from(minor), scale), asset.format_amount(amount), "scale {scale}");
            }
        }
        let usd = Asset::new(AssetCode::new("USD").unwrap(), 2).unwrap();
        assert_eq!(format_minor(&usd, u128::from(u64::MAX) * 10), "1844674407370955161.50");
        assert_eq!(format_minor(&usd, 1250), "12.50");
    }
}

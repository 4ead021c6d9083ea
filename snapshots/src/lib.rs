//! `bourse-snapshots`: snapshots, recovery and the runtime.
//!
//! - `snapshot`: the snapshot file (header, rkyv payload), written atomically, loaded
//!   and validated with fallback to older ones.
//! - `recovery`: newest valid snapshot + journal replay, proved by checkpoints.
//! - `runtime`: the sequencer, engine and snapshot-writer threads (DESIGN.md §3).
//! - `datadir`: the layout of a data directory (`journal/`, `snapshots/`).

pub mod datadir;
pub mod recovery;
pub mod runtime;
pub mod snapshot;

pub use datadir::open_data_dir;
pub use recovery::{DataStores, Recovered, RecoveryError, recover};
pub use runtime::{Applied, AppliedBatch, Runtime, RuntimeConfig, RuntimeStats, SubmitError, Submitter, Token};
pub use snapshot::{Loaded, SnapshotError, list_snapshots, load_newest, load_snapshot, write_snapshot};

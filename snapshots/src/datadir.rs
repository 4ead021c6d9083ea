//! A data directory: `journal/` holds the segments, `snapshots/` the snapshots.

use std::io;
use std::path::Path;
use std::sync::Arc;

use bourse_journal::FileStorage;

use crate::recovery::DataStores;

/// Opens (creating if needed) the data directory at `dir`.
pub fn open_data_dir(dir: &Path) -> io::Result<DataStores> {
    Ok(DataStores {
        journal: Arc::new(FileStorage::new(dir.join("journal"))?),
        snapshots: Arc::new(FileStorage::new(dir.join("snapshots"))?),
    })
}

/// An exclusive lock on a data directory (`DIR/LOCK`, an advisory file lock), held by
/// the server for its whole life and by `bourse-snapshot recover` while it writes:
/// two writers on one journal would corrupt it. Released when dropped (or when the
/// process dies, however it dies).
#[derive(Debug)]
pub struct DataDirLock {
    _file: std::fs::File,
}

/// Why a data directory could not be locked.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("{0} is in use by another process (its LOCK is held): stop the server first")]
    Busy(std::path::PathBuf),
    #[error("cannot lock {path}: {source}")]
    Io { path: std::path::PathBuf, source: io::Error },
}

impl DataDirLock {
    /// Takes the lock on `dir` (which must exist), or says who holds it.
    pub fn acquire(dir: &Path) -> Result<Self, LockError> {
        let path = dir.join("LOCK");
        let io_error = |source| LockError::Io { path: path.clone(), source };
        let file = std::fs::File::options().create(true).truncate(false).write(true).open(&path).map_err(io_error)?;
        match file.try_lock() {
            Ok(()) => Ok(Self { _file: file }),
            Err(std::fs::TryLockError::WouldBlock) => Err(LockError::Busy(dir.to_path_buf())),
            Err(std::fs::TryLockError::Error(source)) => Err(io_error(source)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_locked_directory_refuses_a_second_lock_until_released() {
        let dir = tempfile::tempdir().unwrap();
        let first = DataDirLock::acquire(dir.path()).unwrap();
        assert!(matches!(DataDirLock::acquire(dir.path()), Err(LockError::Busy(_))));
        drop(first);
        DataDirLock::acquire(dir.path()).unwrap();
    }
}

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

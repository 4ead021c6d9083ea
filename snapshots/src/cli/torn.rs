//! A read-only view of a journal as repairing its torn tail would leave it, without
//! touching the files: the torn segment is read into memory with its tail zeroed, and
//! the segments repair would remove are hidden.
//!
//! Why: `read_from` (and so `recover` without repair) stops with an error at a torn
//! tail, although `open_and_check` accepts it; the read-only commands must still work
//! on a data directory left by a crash, which is when an operator needs them.

use std::io;
use std::sync::Arc;

use bourse_journal::{Storage, StorageFile, Truncation};

/// `inner` with the torn tail `torn` cut in memory. Writes are refused.
pub(super) struct TornTailCut {
    inner: Arc<dyn Storage>,
    segment: String,
    offset: usize,
    hidden: Vec<String>,
}

impl TornTailCut {
    pub(super) fn new(inner: Arc<dyn Storage>, torn: &Truncation) -> Self {
        let mut hidden = torn.removed_segments.clone();
        if torn.offset == 0 {
            // Repair removes a segment whose header was never written.
            hidden.push(torn.segment.clone());
        }
        Self { inner, segment: torn.segment.clone(), offset: torn.offset as usize, hidden }
    }
}

fn read_only() -> io::Error {
    io::Error::new(io::ErrorKind::PermissionDenied, "read-only view of the journal")
}

impl Storage for TornTailCut {
    fn list(&self) -> io::Result<Vec<String>> {
        let mut names = self.inner.list()?;
        names.retain(|name| !self.hidden.contains(name));
        Ok(names)
    }

    fn create(&self, _name: &str, _len: u64) -> io::Result<Box<dyn StorageFile>> {
        Err(read_only())
    }

    fn open(&self, name: &str) -> io::Result<Box<dyn StorageFile>> {
        if self.hidden.iter().any(|hidden| hidden == name) {
            return Err(io::Error::new(io::ErrorKind::NotFound, name.to_owned()));
        }
        let file = self.inner.open(name)?;
        if name != self.segment {
            return Ok(file);
        }
        let mut bytes = file.bytes().to_vec();
        let start = self.offset.min(bytes.len());
        bytes[start..].fill(0);
        Ok(Box::new(CutFile { bytes }))
    }

    fn remove(&self, _name: &str) -> io::Result<()> {
        Err(read_only())
    }

    fn rename(&self, _from: &str, _to: &str) -> io::Result<()> {
        Err(read_only())
    }

    fn sync_dir(&self) -> io::Result<()> {
        Ok(())
    }

    fn describe(&self, name: &str) -> String {
        self.inner.describe(name)
    }
}

/// The torn segment, in memory, its tail zeroed.
struct CutFile {
    bytes: Vec<u8>,
}

impl StorageFile for CutFile {
    fn len(&self) -> u64 {
        self.bytes.len() as u64
    }

    fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    fn write(&mut self, _offset: u64, _data: &[u8]) -> io::Result<()> {
        Err(read_only())
    }

    fn sync(&mut self, _offset: u64, _len: u64) -> io::Result<()> {
        Ok(())
    }

    fn set_len(&mut self, _len: u64) -> io::Result<()> {
        Err(read_only())
    }
}

#[cfg(test)]
mod tests {
    use bourse_core::ids::{Seq, Timestamp};
    use bourse_journal::{JournalConfig, JournalWriter, MemStorage, open_and_check, read_from};

    use super::*;

    /// A torn tail makes `read_from` fail; through the view every record before it
    /// reads, and the files are left as they were.
    #[test]
    fn reads_up_to_a_torn_tail_without_changing_it() {
        let memory = MemStorage::new();
        let storage: Arc<dyn Storage> = Arc::new(memory.clone());
        let report = open_and_check(&storage, true).unwrap();
        let config = JournalConfig { segment_bytes: 1 << 17, ..JournalConfig::default() };
        let mut writer = JournalWriter::new(storage.clone(), config, &report).unwrap();
        for index in 0..5_u64 {
            writer.append(Timestamp::from_nanos(index), 1, b"payload").unwrap();
        }
        writer.sync().unwrap();
        let report = open_and_check(&storage, false).unwrap();
        let end = 64 + report.segments[0].bytes_used as usize;
        let name = report.segments[0].name.clone();
        let mut file = storage.open(&name).unwrap();
        file.write(end as u64, &[0xAB; 20]).unwrap();
        drop(file);
        let report = open_and_check(&storage, false).unwrap();
        let torn = report.truncation.clone().expect("a torn tail");
        assert!(read_from::<bourse_journal::JournalError>(&storage, Seq::new(1), |_| Ok(())).is_err());
        let view: Arc<dyn Storage> = Arc::new(TornTailCut::new(storage.clone(), &torn));
        let last = read_from::<bourse_journal::JournalError>(&view, Seq::new(1), |_| Ok(())).unwrap();
        assert_eq!(last, Some(Seq::new(5)));
        assert_eq!(memory.contents(&name).unwrap()[end], 0xAB, "the file is untouched");
    }
}

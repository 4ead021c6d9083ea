//! `TimedStorage`: a `Storage` that forwards every call to another and adds the time
//! it took to a per-operation total. Wrapped around `FileStorage`, it splits a
//! `write_snapshot` into its file operations (create with zero-fill and fsync, the
//! write into the mapping, msync, rename, directory fsync); what is left of the total
//! is serialization and checksumming. Two clock reads per call, on calls that each
//! take microseconds to seconds.

use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bourse_journal::{Storage, StorageFile};

/// The operations timed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum IoOp {
    List,
    /// `create`: for `FileStorage`, writing the whole length in zeros, then fsync.
    Create,
    /// `open`: opening and mapping.
    Open,
    Remove,
    Rename,
    SyncDir,
    /// `StorageFile::write`: a copy into the mapping (page faults included).
    Write,
    /// `StorageFile::sync`: msync of a range.
    Sync,
    SetLen,
}

const IO_OPS: usize = 9;

impl IoOp {
    const fn index(self) -> usize {
        self as usize
    }
}

/// Time and calls per operation, accumulated.
#[derive(Debug, Default)]
pub(crate) struct IoTimes {
    nanos: [AtomicU64; IO_OPS],
    calls: [AtomicU64; IO_OPS],
}

impl IoTimes {
    fn add(&self, op: IoOp, elapsed: Duration) {
        self.nanos[op.index()].fetch_add(elapsed.as_nanos() as u64, Ordering::Relaxed);
        self.calls[op.index()].fetch_add(1, Ordering::Relaxed);
    }

    /// Total time spent in `op` since the last `reset`.
    pub(crate) fn time(&self, op: IoOp) -> Duration {
        Duration::from_nanos(self.nanos[op.index()].load(Ordering::Relaxed))
    }

    /// Time in every operation.
    pub(crate) fn total(&self) -> Duration {
        Duration::from_nanos(self.nanos.iter().map(|nanos| nanos.load(Ordering::Relaxed)).sum())
    }

    pub(crate) fn reset(&self) {
        for counter in self.nanos.iter().chain(&self.calls) {
            counter.store(0, Ordering::Relaxed);
        }
    }
}

/// `inner`, timed into `times`.
pub(crate) struct TimedStorage {
    inner: Arc<dyn Storage>,
    times: Arc<IoTimes>,
}

impl std::fmt::Debug for TimedStorage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TimedStorage").field("inner", &self.inner.describe("")).finish_non_exhaustive()
    }
}

impl TimedStorage {
    pub(crate) fn new(inner: Arc<dyn Storage>, times: Arc<IoTimes>) -> Self {
        Self { inner, times }
    }

    fn timed<T>(&self, op: IoOp, call: impl FnOnce(&dyn Storage) -> T) -> T {
        let started = Instant::now();
        let result = call(self.inner.as_ref());
        self.times.add(op, started.elapsed());
        result
    }
}

impl Storage for TimedStorage {
    fn list(&self) -> io::Result<Vec<String>> {
        self.timed(IoOp::List, |inner| inner.list())
    }

    fn create(&self, name: &str, len: u64) -> io::Result<Box<dyn StorageFile>> {
        let file = self.timed(IoOp::Create, |inner| inner.create(name, len))?;
        Ok(Box::new(TimedFile { inner: file, times: Arc::clone(&self.times) }))
    }

    fn open(&self, name: &str) -> io::Result<Box<dyn StorageFile>> {
        let file = self.timed(IoOp::Open, |inner| inner.open(name))?;
        Ok(Box::new(TimedFile { inner: file, times: Arc::clone(&self.times) }))
    }

    fn remove(&self, name: &str) -> io::Result<()> {
        self.timed(IoOp::Remove, |inner| inner.remove(name))
    }

    fn rename(&self, from: &str, to: &str) -> io::Result<()> {
        self.timed(IoOp::Rename, |inner| inner.rename(from, to))
    }

    fn sync_dir(&self) -> io::Result<()> {
        self.timed(IoOp::SyncDir, |inner| inner.sync_dir())
    }

    fn describe(&self, name: &str) -> String {
        self.inner.describe(name)
    }
}

struct TimedFile {
    inner: Box<dyn StorageFile>,
    times: Arc<IoTimes>,
}

impl TimedFile {
    fn timed<T>(&mut self, op: IoOp, call: impl FnOnce(&mut dyn StorageFile) -> T) -> T {
        let started = Instant::now();
        let result = call(self.inner.as_mut());
        self.times.add(op, started.elapsed());
        result
    }
}

impl StorageFile for TimedFile {
    fn len(&self) -> u64 {
        self.inner.len()
    }

    fn bytes(&self) -> &[u8] {
        self.inner.bytes()
    }

    fn write(&mut self, offset: u64, data: &[u8]) -> io::Result<()> {
        self.timed(IoOp::Write, |inner| inner.write(offset, data))
    }

    fn sync(&mut self, offset: u64, len: u64) -> io::Result<()> {
        self.timed(IoOp::Sync, |inner| inner.sync(offset, len))
    }

    fn set_len(&mut self, len: u64) -> io::Result<()> {
        self.timed(IoOp::SetLen, |inner| inner.set_len(len))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bourse_journal::MemStorage;

    #[test]
    fn times_each_operation_and_forwards_it() {
        let times = Arc::new(IoTimes::default());
        let storage = TimedStorage::new(Arc::new(MemStorage::new()), Arc::clone(&times));
        let mut file = storage.create("a", 16).unwrap();
        file.write(0, b"hello").unwrap();
        file.sync(0, 16).unwrap();
        drop(file);
        storage.rename("a", "b").unwrap();
        assert_eq!(storage.list().unwrap(), vec!["b".to_owned()]);
        assert_eq!(&storage.open("b").unwrap().bytes()[..5], b"hello");
        assert_eq!(times.calls[IoOp::Write.index()].load(Ordering::Relaxed), 1);
        assert_eq!(times.calls[IoOp::Rename.index()].load(Ordering::Relaxed), 1);
        assert!(times.total() >= times.time(IoOp::Create));
        times.reset();
        assert_eq!(times.total(), Duration::ZERO);
    }
}

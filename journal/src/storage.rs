//! The only I/O the journal and the snapshots do, behind a trait so that faults can
//! be injected (STYLE §13): a flat directory of files, each mapped in memory.
//!
//! - `FileStorage`: real files in a directory, memory-mapped (see `mmap`).
//! - `MemStorage` (in `faults`): files in memory that can fail writes, fail syncs,
//!   crash with a torn tail, flip bits and truncate, shared by every durability test.

use std::io;

/// A flat directory of files.
pub trait Storage: Send + Sync {
    /// File names, in no particular order.
    fn list(&self) -> io::Result<Vec<String>>;
    /// Creates `name` with `len` zero bytes, allocated up front, and opens it. Fails if
    /// it exists.
    fn create(&self, name: &str, len: u64) -> io::Result<Box<dyn StorageFile>>;
    /// Opens an existing file for reading and writing.
    fn open(&self, name: &str) -> io::Result<Box<dyn StorageFile>>;
    fn remove(&self, name: &str) -> io::Result<()>;
    /// Replaces `to` with `from`, atomically.
    fn rename(&self, from: &str, to: &str) -> io::Result<()>;
    /// Makes creations, removals and renames durable.
    fn sync_dir(&self) -> io::Result<()>;
    /// Where the files are, for messages.
    fn describe(&self, name: &str) -> String;
}

/// One open file, its whole contents visible as bytes.
pub trait StorageFile: Send {
    fn len(&self) -> u64;
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// The whole file.
    fn bytes(&self) -> &[u8];
    /// Writes `data` at `offset`, inside the file's length.
    fn write(&mut self, offset: u64, data: &[u8]) -> io::Result<()>;
    /// Makes `offset..offset + len` durable (msync / fsync) before returning.
    fn sync(&mut self, offset: u64, len: u64) -> io::Result<()>;
    /// Changes the file's length (zero-filling when it grows).
    fn set_len(&mut self, len: u64) -> io::Result<()>;
}

pub(crate) fn out_of_bounds(name: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, format!("write past the end of {name}"))
}

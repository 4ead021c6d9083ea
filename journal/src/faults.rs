//! `MemStorage`: files in memory with faults on demand, written once and shared by the
//! journal and snapshot tests (STYLE §13).
//!
//! Each file keeps what was made durable (`sync`) apart from what was only written.
//! `crash` returns the storage as a power cut would leave it: everything synced, then
//! a random number of the later writes in order, the last of them cut at a random
//! byte (a torn tail). Writes and syncs can be made to fail, bits flipped and files
//! truncated.

use std::collections::BTreeMap;
use std::io;
use std::sync::{Arc, Mutex, MutexGuard};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::storage::{Storage, StorageFile, out_of_bounds};

/// Faults to inject, counted over the whole storage.
#[derive(Clone, Copy, Debug, Default)]
pub struct Faults {
    /// Every write after this many succeeds fails.
    pub fail_writes_after: Option<u64>,
    /// Every sync after this many succeeds fails.
    pub fail_syncs_after: Option<u64>,
}

#[derive(Clone, Debug, Default)]
struct FileData {
    written: Vec<u8>,
    durable: Vec<u8>,
    /// Writes not yet synced, in order: (offset, bytes).
    pending: Vec<(usize, Vec<u8>)>,
}

#[derive(Debug, Default)]
struct State {
    files: BTreeMap<String, FileData>,
    faults: Faults,
    writes: u64,
    syncs: u64,
}

/// In-memory storage with fault injection. Clones share the same files.
#[derive(Clone, Debug, Default)]
pub struct MemStorage {
    state: Arc<Mutex<State>>,
}

fn injected(what: &str) -> io::Error {
    io::Error::other(format!("injected {what} failure"))
}

impl MemStorage {
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub fn set_faults(&self, faults: Faults) {
        let mut state = self.lock();
        state.faults = faults;
        state.writes = 0;
        state.syncs = 0;
    }

    /// The storage as a power cut now would leave it (see the module documentation).
    #[must_use]
    pub fn crash(&self, seed: u64) -> MemStorage {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let state = self.lock();
        let mut files = BTreeMap::new();
        for (name, data) in &state.files {
            let mut image = data.durable.clone();
            let kept = rng.random_range(0..=data.pending.len());
            for (index, (offset, bytes)) in data.pending.iter().take(kept).enumerate() {
                let len = if index + 1 == kept { rng.random_range(0..=bytes.len()) } else { bytes.len() };
                image[*offset..*offset + len].copy_from_slice(&bytes[..len]);
            }
            let data = FileData { written: image.clone(), durable: image, pending: Vec::new() };
            files.insert(name.clone(), data);
        }
        MemStorage { state: Arc::new(Mutex::new(State { files, ..State::default() })) }
    }

    /// The storage as a process crash would leave it: everything written survives
    /// (the kernel keeps a dead process's mapped pages), nothing more.
    #[must_use]
    pub fn process_crash(&self) -> MemStorage {
        let state = self.lock();
        let files = state
            .files
            .iter()
            .map(|(name, data)| {
                let image = data.written.clone();
                (name.clone(), FileData { written: image.clone(), durable: image, pending: Vec::new() })
            })
            .collect();
        MemStorage { state: Arc::new(Mutex::new(State { files, ..State::default() })) }
    }

    /// Flips one bit of a file, durably.
    pub fn flip_bit(&self, name: &str, offset: usize, bit: u8) {
        let mut state = self.lock();
        let data = state.files.get_mut(name).expect("flipping a bit of an existing file");
        data.written[offset] ^= 1 << bit;
        data.durable[offset] ^= 1 << bit;
    }

    /// Cuts a file to `len` bytes, durably.
    pub fn truncate(&self, name: &str, len: usize) {
        let mut state = self.lock();
        let data = state.files.get_mut(name).expect("truncating an existing file");
        data.written.truncate(len);
        data.durable.truncate(len);
        data.pending.clear();
    }

    /// A copy of a file's current contents.
    pub fn contents(&self, name: &str) -> Option<Vec<u8>> {
        self.lock().files.get(name).map(|data| data.written.clone())
    }
}

struct MemFile {
    name: String,
    storage: MemStorage,
    // A private copy, so `bytes` can hand out a plain slice; every write goes to the
    // shared state too.
    image: Vec<u8>,
}

impl StorageFile for MemFile {
    fn len(&self) -> u64 {
        self.image.len() as u64
    }

    fn bytes(&self) -> &[u8] {
        &self.image
    }

    fn write(&mut self, offset: u64, data: &[u8]) -> io::Result<()> {
        let mut state = self.storage.lock();
        state.writes += 1;
        if state.faults.fail_writes_after.is_some_and(|limit| state.writes > limit) {
            return Err(injected("write"));
        }
        let start = offset as usize;
        let end = start
            .checked_add(data.len())
            .filter(|&end| end <= self.image.len())
            .ok_or_else(|| out_of_bounds(&self.name))?;
        self.image[start..end].copy_from_slice(data);
        let file = state.files.get_mut(&self.name).ok_or_else(|| io::Error::from(io::ErrorKind::NotFound))?;
        file.written[start..end].copy_from_slice(data);
        file.pending.push((start, data.to_vec()));
        Ok(())
    }

    fn sync(&mut self, _offset: u64, _len: u64) -> io::Result<()> {
        let mut state = self.storage.lock();
        state.syncs += 1;
        if state.faults.fail_syncs_after.is_some_and(|limit| state.syncs > limit) {
            return Err(injected("sync"));
        }
        // A sync of any range makes the whole file durable here: stricter tests come
        // from syncing less, never from syncing a range.
        let file = state.files.get_mut(&self.name).ok_or_else(|| io::Error::from(io::ErrorKind::NotFound))?;
        file.durable.clone_from(&file.written);
        file.pending.clear();
        Ok(())
    }

    fn set_len(&mut self, len: u64) -> io::Result<()> {
        let mut state = self.storage.lock();
        let file = state.files.get_mut(&self.name).ok_or_else(|| io::Error::from(io::ErrorKind::NotFound))?;
        file.written.resize(len as usize, 0);
        file.durable.resize(len as usize, 0);
        file.pending.retain(|(offset, bytes)| offset + bytes.len() <= len as usize);
        self.image.resize(len as usize, 0);
        Ok(())
    }
}

impl Storage for MemStorage {
    fn list(&self) -> io::Result<Vec<String>> {
        Ok(self.lock().files.keys().cloned().collect())
    }

    fn create(&self, name: &str, len: u64) -> io::Result<Box<dyn StorageFile>> {
        let mut state = self.lock();
        if state.files.contains_key(name) {
            return Err(io::Error::from(io::ErrorKind::AlreadyExists));
        }
        let zeros = vec![0; len as usize];
        state
            .files
            .insert(name.to_owned(), FileData { written: zeros.clone(), durable: zeros.clone(), pending: Vec::new() });
        Ok(Box::new(MemFile { name: name.to_owned(), storage: self.clone(), image: zeros }))
    }

    fn open(&self, name: &str) -> io::Result<Box<dyn StorageFile>> {
        let state = self.lock();
        let file = state.files.get(name).ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, name.to_owned()))?;
        Ok(Box::new(MemFile { name: name.to_owned(), storage: self.clone(), image: file.written.clone() }))
    }

    fn remove(&self, name: &str) -> io::Result<()> {
        self.lock().files.remove(name).map(|_| ()).ok_or_else(|| io::Error::from(io::ErrorKind::NotFound))
    }

    fn rename(&self, from: &str, to: &str) -> io::Result<()> {
        let mut state = self.lock();
        let data = state.files.remove(from).ok_or_else(|| io::Error::from(io::ErrorKind::NotFound))?;
        state.files.insert(to.to_owned(), data);
        Ok(())
    }

    fn sync_dir(&self) -> io::Result<()> {
        Ok(())
    }

    fn describe(&self, name: &str) -> String {
        format!("mem:{name}")
    }
}

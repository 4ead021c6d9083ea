//! `FileStorage`: real files in one directory, memory-mapped with memmap2. The only
//! `unsafe` in the journal: creating a mapping.

#![allow(unsafe_code)]

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use memmap2::MmapMut;

use crate::storage::{Storage, StorageFile, out_of_bounds};

/// Files in `dir`, each memory-mapped while open.
#[derive(Debug, Clone)]
pub struct FileStorage {
    dir: PathBuf,
}

impl FileStorage {
    /// Uses `dir`, creating it if needed.
    pub fn new(dir: impl AsRef<Path>) -> io::Result<Self> {
        fs::create_dir_all(dir.as_ref())?;
        Ok(Self { dir: dir.as_ref().to_path_buf() })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

struct MappedFile {
    name: String,
    file: File,
    // `None` for an empty file, which cannot be mapped.
    map: Option<MmapMut>,
}

impl MappedFile {
    fn new(name: String, file: File) -> io::Result<Self> {
        let mut mapped = Self { name, file, map: None };
        mapped.remap()?;
        Ok(mapped)
    }

    fn remap(&mut self) -> io::Result<()> {
        self.map = None;
        if self.file.metadata()?.len() > 0 {
            // SAFETY: the mapping is private to this process's use of a file that only
            // Bourse writes, through this handle; the file's length is not changed
            // while the mapping exists (`set_len` drops it first).
            self.map = Some(unsafe { MmapMut::map_mut(&self.file)? });
        }
        Ok(())
    }
}

impl StorageFile for MappedFile {
    fn len(&self) -> u64 {
        self.map.as_ref().map_or(0, |map| map.len() as u64)
    }

    fn bytes(&self) -> &[u8] {
        self.map.as_deref().unwrap_or_default()
    }

    fn write(&mut self, offset: u64, data: &[u8]) -> io::Result<()> {
        let map = self.map.as_mut().ok_or_else(|| out_of_bounds(&self.name))?;
        let start = usize::try_from(offset).map_err(|_| out_of_bounds(&self.name))?;
        let end =
            start.checked_add(data.len()).filter(|&end| end <= map.len()).ok_or_else(|| out_of_bounds(&self.name))?;
        map[start..end].copy_from_slice(data);
        Ok(())
    }

    fn sync(&mut self, offset: u64, len: u64) -> io::Result<()> {
        match self.map.as_ref() {
            Some(map) if len > 0 => map.flush_range(offset as usize, len as usize),
            _ => Ok(()),
        }
    }

    fn set_len(&mut self, len: u64) -> io::Result<()> {
        self.map = None;
        self.file.set_len(len)?;
        self.file.sync_all()?;
        self.remap()
    }
}

impl Storage for FileStorage {
    fn list(&self) -> io::Result<Vec<String>> {
        let mut names = Vec::new();
        for entry in fs::read_dir(&self.dir)? {
            let entry = entry?;
            if entry.file_type()?.is_file() {
                names.push(entry.file_name().to_string_lossy().into_owned());
            }
        }
        Ok(names)
    }

    fn create(&self, name: &str, len: u64) -> io::Result<Box<dyn StorageFile>> {
        let path = self.dir.join(name);
        let mut file = OpenOptions::new().read(true).write(true).create_new(true).open(&path)?;
        // Allocate the space now rather than leave a sparse file, so that a full disk
        // fails here, not as SIGBUS when the mapping is written later. `fallocate`
        // reserves the blocks (reading as zeros) without writing them; where the
        // filesystem cannot, write real zeros.
        if len > 0 && rustix::fs::fallocate(&file, rustix::fs::FallocateFlags::empty(), 0, len).is_err() {
            let chunk = vec![0_u8; 1 << 20];
            let mut left = len;
            while left > 0 {
                let step = left.min(chunk.len() as u64) as usize;
                file.write_all(&chunk[..step])?;
                left -= step as u64;
            }
        }
        file.sync_all()?;
        Ok(Box::new(MappedFile::new(name.to_owned(), file)?))
    }

    fn open(&self, name: &str) -> io::Result<Box<dyn StorageFile>> {
        let file = OpenOptions::new().read(true).write(true).open(self.dir.join(name))?;
        Ok(Box::new(MappedFile::new(name.to_owned(), file)?))
    }

    fn remove(&self, name: &str) -> io::Result<()> {
        fs::remove_file(self.dir.join(name))
    }

    fn rename(&self, from: &str, to: &str) -> io::Result<()> {
        fs::rename(self.dir.join(from), self.dir.join(to))
    }

    fn sync_dir(&self) -> io::Result<()> {
        File::open(&self.dir)?.sync_all()
    }

    fn describe(&self, name: &str) -> String {
        self.dir.join(name).display().to_string()
    }
}

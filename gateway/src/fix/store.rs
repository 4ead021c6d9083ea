//! Per-session persistence: the next sequence numbers in both directions and the
//! application messages we sent, so that a reconnect, or a restart of the server,
//! continues the sequence and can answer a ResendRequest.
//!
//! Two files per session in the store directory, named after `SENDER-TARGET`:
//! - `.seqnums`: `NNNNNNNNNNNNNNNNNNNN NNNNNNNNNNNNNNNNNNNN\n` (next outgoing, next
//!   expected incoming), rewritten in place on every change;
//! - `.messages`: append-only records `seq (u64 LE) | length (u32 LE) | message bytes`.
//!   A torn last record (a crash mid-append) is cut on open.
//!
//! Writes go to the page cache without fsync: a power cut may lose the last sequence
//! numbers, which FIX recovers from (ResendRequest, or a Logout naming the expected
//! number); the engine's journal, not this store, is what holds money. Admin messages are
//! not stored (a resend replaces them with a gap fill). The index of stored messages
//! keeps the newest `STORED_MESSAGES_MAX`; older ones are gap-filled on resend. The
//! message file grows until a sequence reset (ResetSeqNumFlag or `reset_on_logon`)
//! truncates it.

use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use super::limits::{MESSAGE_BYTES_MAX, STORED_MESSAGES_MAX};

const SEQNUMS_LEN: usize = 42;
const RECORD_HEADER_LEN: u64 = 12;

#[derive(Clone, Copy, Debug)]
struct Stored {
    seq: u64,
    /// Offset of the message bytes (after the record header).
    offset: u64,
    len: u32,
}

/// One session's sequence numbers and sent messages.
#[derive(Debug)]
pub struct SessionStore {
    seqnums_path: PathBuf,
    seqnums: File,
    messages: File,
    messages_len: u64,
    index: VecDeque<Stored>,
    record: Vec<u8>,
    next_sender: u64,
    next_target: u64,
}

fn invalid(path: &Path, what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("{}: {what}", path.display()))
}

impl SessionStore {
    /// Opens (creating if needed) the store of session `name` in `dir`.
    pub fn open(dir: &Path, name: &str) -> io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        let seqnums_path = dir.join(format!("{name}.seqnums"));
        let messages_path = dir.join(format!("{name}.messages"));
        let mut seqnums = OpenOptions::new().read(true).write(true).create(true).truncate(false).open(&seqnums_path)?;
        let mut text = String::new();
        seqnums.read_to_string(&mut text)?;
        let (next_sender, next_target) = if text.is_empty() {
            (1, 1)
        } else {
            let mut numbers = text.split_ascii_whitespace().map(str::parse::<u64>);
            match (numbers.next(), numbers.next(), numbers.next()) {
                (Some(Ok(sender)), Some(Ok(target)), None) if sender >= 1 && target >= 1 => (sender, target),
                _ => return Err(invalid(&seqnums_path, "not two sequence numbers")),
            }
        };
        let mut messages =
            OpenOptions::new().read(true).write(true).create(true).truncate(false).open(&messages_path)?;
        let (index, messages_len) = Self::scan(&mut messages)?;
        let next_sender = index.back().map_or(next_sender, |last| next_sender.max(last.seq + 1));
        let mut store = SessionStore {
            seqnums_path,
            seqnums,
            messages,
            messages_len,
            index,
            record: Vec::new(),
            next_sender,
            next_target,
        };
        store.write_seqnums()?;
        Ok(store)
    }

    /// Reads the record index, cutting a torn or implausible tail.
    fn scan(file: &mut File) -> io::Result<(VecDeque<Stored>, u64)> {
        let file_len = file.metadata()?.len();
        let mut reader = io::BufReader::new(&mut *file);
        let mut index = VecDeque::new();
        let mut offset = 0;
        let mut header = [0; RECORD_HEADER_LEN as usize];
        while offset + RECORD_HEADER_LEN <= file_len {
            reader.read_exact(&mut header)?;
            let seq = u64::from_le_bytes(header[..8].try_into().unwrap_or_default());
            let len = u32::from_le_bytes(header[8..].try_into().unwrap_or_default());
            let end = offset + RECORD_HEADER_LEN + u64::from(len);
            let ordered = index.back().is_none_or(|last: &Stored| seq > last.seq);
            if end > file_len || len as usize > MESSAGE_BYTES_MAX || seq == 0 || !ordered {
                break;
            }
            index.push_back(Stored { seq, offset: offset + RECORD_HEADER_LEN, len });
            if index.len() > STORED_MESSAGES_MAX {
                index.pop_front();
            }
            reader.seek_relative(i64::from(len))?;
            offset = end;
        }
        drop(reader);
        if offset < file_len {
            log::warn!("fix store: cutting {} bytes of torn tail", file_len - offset);
            file.set_len(offset)?;
        }
        file.seek(SeekFrom::Start(offset))?;
        Ok((index, offset))
    }

    fn write_seqnums(&mut self) -> io::Result<()> {
        let text = format!("{:020} {:020}\n", self.next_sender, self.next_target);
        debug_assert_eq!(text.len(), SEQNUMS_LEN);
        self.seqnums
            .write_all_at(text.as_bytes(), 0)
            .map_err(|error| io::Error::new(error.kind(), format!("{}: {error}", self.seqnums_path.display())))
    }

    /// The sequence number our next message carries.
    pub fn next_sender_seq(&self) -> u64 {
        self.next_sender
    }

    /// The sequence number we expect next from the counterparty.
    pub fn next_target_seq(&self) -> u64 {
        self.next_target
    }

    pub fn set_next_sender_seq(&mut self, seq: u64) -> io::Result<()> {
        self.next_sender = seq;
        self.write_seqnums()
    }

    pub fn set_next_target_seq(&mut self, seq: u64) -> io::Result<()> {
        self.next_target = seq;
        self.write_seqnums()
    }

    /// Records an application message sent with `seq` (the next sender number) and
    /// advances the sender number.
    pub fn append(&mut self, seq: u64, message: &[u8]) -> io::Result<()> {
        assert!(seq >= self.next_sender, "stored sequence numbers only grow");
        let len = u32::try_from(message.len()).map_err(|_| invalid(&self.seqnums_path, "message too long"))?;
        self.record.clear();
        self.record.extend_from_slice(&seq.to_le_bytes());
        self.record.extend_from_slice(&len.to_le_bytes());
        self.record.extend_from_slice(message);
        self.messages.write_all(&self.record)?;
        self.index.push_back(Stored { seq, offset: self.messages_len + RECORD_HEADER_LEN, len });
        if self.index.len() > STORED_MESSAGES_MAX {
            self.index.pop_front();
        }
        self.messages_len += self.record.len() as u64;
        self.set_next_sender_seq(seq + 1)
    }

    /// Reads up to `max` stored messages numbered `begin..=end`, in order: their bytes
    /// are appended to `bytes` and (seq, range in `bytes`) to `found`.
    pub fn read_range(
        &self,
        begin: u64,
        end: u64,
        max: usize,
        bytes: &mut Vec<u8>,
        found: &mut Vec<(u64, std::ops::Range<usize>)>,
    ) -> io::Result<()> {
        let first = self.index.partition_point(|stored| stored.seq < begin);
        for stored in self.index.range(first..).take_while(|stored| stored.seq <= end).take(max) {
            let start = bytes.len();
            bytes.resize(start + stored.len as usize, 0);
            self.messages.read_exact_at(&mut bytes[start..], stored.offset)?;
            found.push((stored.seq, start..bytes.len()));
        }
        Ok(())
    }

    /// Starts over: both sequence numbers 1, no stored messages.
    pub fn reset(&mut self) -> io::Result<()> {
        self.messages.set_len(0)?;
        self.messages.seek(SeekFrom::Start(0))?;
        self.messages_len = 0;
        self.index.clear();
        self.next_sender = 1;
        self.next_target = 1;
        self.write_seqnums()
    }
}

//! What can go wrong with a journal, each naming the file, offset and sequence.

use std::io;

use bourse_core::ids::Seq;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum JournalError {
    #[error("journal I/O error {action} {file}: {source}")]
    Io {
        action: &'static str,
        file: String,
        #[source]
        source: io::Error,
    },
    /// A bad record with valid ones after it: the files are left untouched.
    #[error("journal corrupt: {file} at offset {offset}, where sequence {} was expected: {reason}; this is damage, not a torn tail: refusing to open (files left untouched)", seq.get())]
    Corrupt { file: String, offset: u64, seq: Seq, reason: &'static str },
    #[error("record payload of {len} bytes is above the maximum of {max}")]
    PayloadTooLarge { len: usize, max: usize },
    #[error("journal record {} could not be decoded: {reason}", seq.get())]
    Decode { seq: Seq, reason: String },
    #[error("the journal writer failed earlier and refuses further writes: {0}")]
    Poisoned(String),
}

impl JournalError {
    pub(crate) fn io(action: &'static str, file: &str, source: io::Error) -> Self {
        Self::Io { action, file: file.to_owned(), source }
    }
}

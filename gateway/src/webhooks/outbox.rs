//! The outbox: `<data>/webhooks/outbox.log`, an append-only log of what was derived
//! and what became of it, so that pending deliveries survive a restart however the
//! process ended.
//!
//! One record per line: 16 hex digits of the xxh3-64 of the JSON, a space, the JSON,
//! a newline. The records:
//!
//! - `notification`: endpoint, its number within that endpoint (1, 2, … in order),
//!   the command's sequence number, the event id, the command time and the body;
//! - `derived`: every notification of commands up to `seq` is in the log before this
//!   record (appended after each group of notifications, so a group cut short by a
//!   crash counts as never derived, and is derived again from the journal);
//! - `done`: the endpoint's notification `number` was acknowledged (`delivered`) or
//!   given up; an endpoint's notifications are done in number order, so this is its
//!   delivered cursor;
//! - `dropped`: a notification not queued (the endpoint had `pending_max` waiting);
//! - `endpoint`: an endpoint's cursor and counters, written by compaction.
//!
//! Reading stops at the first line that is torn (no newline), fails its checksum or
//! does not parse, and drops the rest: everything the log promises is a prefix of it
//! (`derived` comes after the notifications it covers), and whatever the dropped part
//! held is derived again (notifications) or delivered again (progress). Opening
//! always rewrites the log compacted (atomically, mode 0600); it is compacted again
//! when it grows well past what it still needs.

use std::collections::{BTreeMap, HashMap};
use std::fs::{self, File};
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::registry::{private_options, write_atomically};

const FORMAT: &str = "bourse-webhooks-outbox-v1";
/// A line longer than this is damage, not a record.
const LINE_BYTES_MAX: usize = 1 << 20;

/// One line of the log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "record", rename_all = "snake_case")]
pub enum Record {
    Format {
        format: String,
    },
    Derived {
        seq: u64,
    },
    Endpoint {
        endpoint: String,
        done_through: u64,
        delivered: u64,
        failed: u64,
    },
    Notification {
        endpoint: String,
        number: u64,
        seq: u64,
        event_id: String,
        created_ns: u64,
        body: String,
    },
    Done {
        endpoint: String,
        number: u64,
        delivered: bool,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        error: Option<String>,
    },
    Dropped {
        endpoint: String,
        event_id: String,
    },
}

/// A notification waiting for delivery.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pending {
    pub number: u64,
    pub seq: u64,
    pub event_id: String,
    pub created_ns: u64,
    pub body: String,
}

impl Pending {
    pub fn record(&self, endpoint: &str) -> Record {
        Record::Notification {
            endpoint: endpoint.to_owned(),
            number: self.number,
            seq: self.seq,
            event_id: self.event_id.clone(),
            created_ns: self.created_ns,
            body: self.body.clone(),
        }
    }
}

/// One endpoint's state as the log tells it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EndpointLog {
    /// Every notification up to this number is done (delivered or given up).
    pub done_through: u64,
    pub delivered: u64,
    pub failed: u64,
    /// Not yet done, in number order.
    pub pending: Vec<Pending>,
}

impl EndpointLog {
    /// The number the next notification gets.
    pub fn next_number(&self) -> u64 {
        self.pending.last().map_or(self.done_through, |pending| pending.number) + 1
    }
}

/// What the log holds.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Folded {
    /// The notifications of every command up to this sequence number are in the log.
    pub derived_through: Option<u64>,
    pub endpoints: BTreeMap<String, EndpointLog>,
}

/// Replays records into state. Notifications after the last `derived` record (a
/// group cut short) are dropped: they will be derived again.
pub fn fold(records: impl IntoIterator<Item = Record>) -> Folded {
    let mut derived_through: Option<u64> = None;
    let mut endpoints: BTreeMap<String, EndpointLog> = BTreeMap::new();
    let mut notifications: HashMap<String, BTreeMap<u64, Pending>> = HashMap::new();
    for record in records {
        match record {
            Record::Format { .. } => {}
            Record::Derived { seq } => derived_through = Some(derived_through.map_or(seq, |known| known.max(seq))),
            Record::Endpoint { endpoint, done_through, delivered, failed } => {
                let log = endpoints.entry(endpoint).or_default();
                log.done_through = log.done_through.max(done_through);
                log.delivered += delivered;
                log.failed += failed;
            }
            Record::Notification { endpoint, number, seq, event_id, created_ns, body } => {
                endpoints.entry(endpoint.clone()).or_default();
                let pending = Pending { number, seq, event_id, created_ns, body };
                notifications.entry(endpoint).or_default().entry(number).or_insert(pending);
            }
            Record::Done { endpoint, number, delivered, .. } => {
                let log = endpoints.entry(endpoint).or_default();
                log.done_through = log.done_through.max(number);
                if delivered {
                    log.delivered += 1;
                } else {
                    log.failed += 1;
                }
            }
            Record::Dropped { endpoint, .. } => endpoints.entry(endpoint).or_default().failed += 1,
        }
    }
    let derived = derived_through.unwrap_or(0);
    for (endpoint, by_number) in notifications {
        let log = endpoints.entry(endpoint).or_default();
        log.pending = by_number
            .into_values()
            .filter(|pending| pending.number > log.done_through && derived_through.is_some() && pending.seq <= derived)
            .collect();
    }
    Folded { derived_through, endpoints }
}

/// The records of a compacted log holding `folded`.
pub fn compacted(folded: &Folded) -> Vec<Record> {
    let mut records = vec![Record::Format { format: FORMAT.to_owned() }];
    records.extend(folded.derived_through.map(|seq| Record::Derived { seq }));
    for (endpoint, log) in &folded.endpoints {
        records.push(Record::Endpoint {
            endpoint: endpoint.clone(),
            done_through: log.done_through,
            delivered: log.delivered,
            failed: log.failed,
        });
        records.extend(log.pending.iter().map(|pending| pending.record(endpoint)));
    }
    records
}

/// Why reading stopped before the end of the file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cut {
    pub offset: u64,
    pub bytes: u64,
    pub reason: String,
}

/// The records of the log at `path` (none when there is no file), and where reading
/// stopped early, if it did.
pub fn read(path: &Path) -> io::Result<(Vec<Record>, Option<Cut>)> {
    let bytes = match fs::read(path) {
        Ok(bytes) => bytes,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok((Vec::new(), None)),
        Err(error) => return Err(error),
    };
    let (records, cut) = parse(&bytes);
    if let Some(Record::Format { format }) = records.first()
        && format != FORMAT
    {
        return Err(io::Error::other(format!("{}: format is {format:?}, expected {FORMAT:?}", path.display())));
    }
    Ok((records, cut))
}

fn parse(bytes: &[u8]) -> (Vec<Record>, Option<Cut>) {
    let mut records = Vec::new();
    let mut offset = 0;
    while offset < bytes.len() {
        let rest = &bytes[offset..];
        let cut = |reason: &str| Cut { offset: offset as u64, bytes: rest.len() as u64, reason: reason.to_owned() };
        let Some(end) = rest.iter().take(LINE_BYTES_MAX).position(|&b| b == b'\n') else {
            return (records, Some(cut("a torn last line (no newline)")));
        };
        match decode_line(&rest[..end]) {
            Ok(record) if records.is_empty() && !matches!(record, Record::Format { .. }) => {
                return (records, Some(cut("the first record is not the format")));
            }
            Ok(record) => records.push(record),
            Err(reason) => return (records, Some(cut(reason))),
        }
        offset += end + 1;
    }
    (records, None)
}

fn decode_line(line: &[u8]) -> Result<Record, &'static str> {
    let (checksum, json) = match line.get(16) {
        Some(b' ') => (&line[..16], &line[17..]),
        _ => return Err("a line without its checksum"),
    };
    let checksum = std::str::from_utf8(checksum).ok().and_then(|hex| u64::from_str_radix(hex, 16).ok());
    if checksum != Some(xxhash_rust::xxh3::xxh3_64(json)) {
        return Err("a checksum mismatch");
    }
    serde_json::from_slice(json).map_err(|_| "a record that does not parse")
}

fn encode(records: &[Record], out: &mut Vec<u8>) {
    for record in records {
        let json = serde_json::to_vec(record).expect("a record always serializes");
        let _ = write!(out, "{:016x} ", xxhash_rust::xxh3::xxh3_64(&json));
        out.extend_from_slice(&json);
        out.push(b'\n');
    }
}

/// The open log, appended to.
#[derive(Debug)]
pub struct Outbox {
    path: PathBuf,
    file: File,
    bytes: u64,
    /// Bytes appended since the last sync.
    unsynced: u64,
}

impl Outbox {
    /// Replaces the log at `path` with `records` (atomically) and opens it to append.
    pub fn create(path: &Path, records: &[Record]) -> io::Result<Outbox> {
        let mut bytes = Vec::new();
        encode(records, &mut bytes);
        write_atomically(path, &bytes)?;
        let file = private_options().append(true).open(path)?;
        Ok(Outbox { path: path.to_owned(), file, bytes: bytes.len() as u64, unsynced: 0 })
    }

    /// Appends `records` with one write.
    pub fn append(&mut self, records: &[Record]) -> io::Result<()> {
        if records.is_empty() {
            return Ok(());
        }
        let mut bytes = Vec::with_capacity(256 * records.len());
        encode(records, &mut bytes);
        self.file.write_all(&bytes)?;
        self.bytes += bytes.len() as u64;
        self.unsynced += bytes.len() as u64;
        Ok(())
    }

    /// Makes what was appended durable (nothing to do when nothing was).
    pub fn sync(&mut self) -> io::Result<()> {
        if self.unsynced > 0 {
            self.file.sync_data()?;
            self.unsynced = 0;
        }
        Ok(())
    }

    /// Replaces the log with `records` (compaction).
    pub fn rewrite(&mut self, records: &[Record]) -> io::Result<()> {
        *self = Outbox::create(&self.path, records)?;
        Ok(())
    }

    pub fn bytes(&self) -> u64 {
        self.bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn notification(endpoint: &str, number: u64, seq: u64) -> Record {
        Record::Notification {
            endpoint: endpoint.into(),
            number,
            seq,
            event_id: format!("evt_{seq}_0_1"),
            created_ns: seq * 1_000,
            body: format!("{{\"n\":{number}}}"),
        }
    }

    fn done(endpoint: &str, number: u64, delivered: bool) -> Record {
        Record::Done { endpoint: endpoint.into(), number, delivered, error: (!delivered).then(|| "HTTP 500".into()) }
    }

    #[test]
    fn persist_reload_and_fold_keep_what_is_pending_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("outbox.log");
        let mut outbox = Outbox::create(&path, &[Record::Format { format: FORMAT.into() }]).unwrap();
        outbox.append(&[notification("a", 1, 5), notification("b", 1, 5), Record::Derived { seq: 5 }]).unwrap();
        outbox.append(&[notification("a", 2, 7), notification("a", 3, 9), Record::Derived { seq: 9 }]).unwrap();
        outbox
            .append(&[
                done("a", 1, true),
                done("a", 2, false),
                Record::Dropped { endpoint: "b".into(), event_id: "x".into() },
            ])
            .unwrap();
        outbox.sync().unwrap();
        let (records, cut) = read(&path).unwrap();
        assert_eq!(cut, None);
        let folded = fold(records);
        assert_eq!(folded.derived_through, Some(9));
        let a = &folded.endpoints["a"];
        assert_eq!((a.done_through, a.delivered, a.failed, a.next_number()), (2, 1, 1, 4));
        assert_eq!(a.pending.iter().map(|p| p.number).collect::<Vec<_>>(), [3]);
        let b = &folded.endpoints["b"];
        assert_eq!((b.done_through, b.failed, b.pending.len()), (0, 1, 1));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            assert_eq!(fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        }
    }

    #[test]
    fn a_group_without_its_derived_record_counts_as_never_derived() {
        let records = vec![
            Record::Format { format: FORMAT.into() },
            notification("a", 1, 3),
            Record::Derived { seq: 3 },
            notification("a", 2, 4),
        ];
        let folded = fold(records);
        assert_eq!(folded.derived_through, Some(3));
        assert_eq!(folded.endpoints["a"].pending.len(), 1);
        assert_eq!(folded.endpoints["a"].next_number(), 2);
    }

    #[test]
    fn reading_stops_at_a_torn_or_damaged_line_and_keeps_the_prefix() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("outbox.log");
        let mut outbox = Outbox::create(&path, &[Record::Format { format: FORMAT.into() }]).unwrap();
        outbox.append(&[notification("a", 1, 5), Record::Derived { seq: 5 }]).unwrap();
        let good = fs::read(&path).unwrap();
        // A torn tail: half a line.
        let mut torn = good.clone();
        let mut extra = Vec::new();
        encode(&[notification("a", 2, 6)], &mut extra);
        torn.extend_from_slice(&extra[..extra.len() / 2]);
        fs::write(&path, &torn).unwrap();
        let (records, cut) = read(&path).unwrap();
        assert_eq!(records.len(), 3);
        assert_eq!(cut.unwrap().offset, good.len() as u64);
        // A flipped byte in the middle: everything from that line on is dropped.
        let mut flipped = good.clone();
        flipped.extend_from_slice(&extra);
        let middle = good.len() - 10;
        flipped[middle] ^= 0x01;
        fs::write(&path, &flipped).unwrap();
        let (records, cut) = read(&path).unwrap();
        assert_eq!(records.len(), 2, "{records:?}");
        assert!(cut.unwrap().reason.contains("checksum"));
    }

    #[test]
    fn compaction_keeps_cursors_counters_and_pending_only() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("outbox.log");
        let mut outbox = Outbox::create(&path, &[Record::Format { format: FORMAT.into() }]).unwrap();
        for number in 1..=100 {
            outbox.append(&[notification("a", number, number), Record::Derived { seq: number }]).unwrap();
        }
        for number in 1..=98 {
            outbox.append(&[done("a", number, number % 10 != 0)]).unwrap();
        }
        let before = outbox.bytes();
        let folded = fold(read(&path).unwrap().0);
        outbox.rewrite(&compacted(&folded)).unwrap();
        assert!(outbox.bytes() * 20 < before, "{} vs {before}", outbox.bytes());
        outbox.append(&[notification("a", 101, 101), Record::Derived { seq: 101 }]).unwrap();
        let reloaded = fold(read(&path).unwrap().0);
        let a = &reloaded.endpoints["a"];
        assert_eq!((a.done_through, a.delivered, a.failed), (98, 89, 9));
        assert_eq!(a.pending.iter().map(|p| p.number).collect::<Vec<_>>(), [99, 100, 101]);
        assert_eq!(reloaded.derived_through, Some(101));
        assert_eq!(compacted(&reloaded), compacted(&fold(compacted(&reloaded))));
    }
}

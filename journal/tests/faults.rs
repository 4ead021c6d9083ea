//! Durability under injected faults, over the fault-injecting `MemStorage` (and a few
//! on real files): a power cut tears the tail, writes and syncs fail, bits flip, files
//! are cut short, lost or rearranged. The promise checked everywhere: opening keeps
//! every acknowledged record, in order, drops only unacknowledged ones and says so; it
//! refuses damage with valid records after it, naming file, offset and sequence, and
//! then touches nothing.
#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use bourse_core::ids::{Seq, Timestamp};
use bourse_journal::record::{self, Decoded, HEADER_BYTES, PAYLOAD_BYTES_MAX, encoded_len};
use bourse_journal::segment::{SEGMENT_HEADER_BYTES, segment_name};
use bourse_journal::{
    Committed, Durability, Faults, FileStorage, JournalConfig, JournalError, JournalWriter, MemStorage, OpenReport,
    Storage, open_and_check, read_from,
};
use proptest::prelude::*;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Small segments, so that rolls happen: the writer's floor is a segment header plus
/// one record of `PAYLOAD_BYTES_MAX` (65,632 bytes), so 64 KiB itself is refused.
const SEGMENT_BYTES: u64 = 66 * 1024;
/// Payloads of this size fill a segment with exactly `RECORDS_PER_FULL_SEGMENT`.
const PAYLOAD_BYTES_FULL: usize = 2000;
const RECORD_BYTES_FULL: usize = encoded_len(PAYLOAD_BYTES_FULL);
const RECORDS_PER_FULL_SEGMENT: u64 = ((SEGMENT_BYTES as usize - SEGMENT_HEADER_BYTES) / RECORD_BYTES_FULL) as u64;
const KIND: u16 = 7;

// ----------------------------------------------------------------------------------
// The harness: a journal over `MemStorage` that remembers what it appended and what
// commits acknowledged as durable.
// ----------------------------------------------------------------------------------

fn shared(storage: &MemStorage) -> Arc<dyn Storage> {
    Arc::new(storage.clone())
}

fn config(durability: Durability) -> JournalConfig {
    JournalConfig { segment_bytes: SEGMENT_BYTES, durability }
}

fn timestamp(seq: u64) -> Timestamp {
    Timestamp::from_nanos(seq * 10)
}

/// A payload of `0..=size_max` random bytes; one in five ends in zeros, so that a torn
/// write can stop short and still leave a whole record.
fn random_payload(rng: &mut ChaCha8Rng, size_max: usize) -> Vec<u8> {
    let len = rng.random_range(0..=size_max);
    let mut payload = vec![0; len];
    rng.fill(&mut payload[..]);
    if len > 0 && rng.random_bool(0.2) {
        let zeros_from = rng.random_range(0..len);
        payload[zeros_from..].fill(0);
    }
    payload
}

/// A payload of exactly `len` non-zero bytes, different for every `tag`.
fn filled_payload(tag: u64, len: usize) -> Vec<u8> {
    (0..len).map(|index| ((tag as usize * 7 + index) % 251) as u8 + 1).collect()
}

struct Journal {
    mem: MemStorage,
    storage: Arc<dyn Storage>,
    writer: JournalWriter,
    /// Payloads appended so far; record `seq` is `appended[seq - 1]`.
    appended: Vec<Vec<u8>>,
    /// How many records (from seq 1) the last commit acknowledged as durable.
    acknowledged: u64,
}

impl Journal {
    fn create(durability: Durability) -> Self {
        Self::reopen(MemStorage::new(), durability, Vec::new())
    }

    /// Opens (with repair) a storage known to hold exactly `records`.
    fn reopen(mem: MemStorage, durability: Durability, records: Vec<Vec<u8>>) -> Self {
        let storage = shared(&mem);
        let report = open_and_check(&storage, true).unwrap();
        assert_eq!(report.last_seq.map_or(0, Seq::get), records.len() as u64);
        let writer = JournalWriter::new(storage.clone(), config(durability), &report).unwrap();
        let acknowledged = records.len() as u64;
        Self { mem, storage, writer, appended: records, acknowledged }
    }

    fn try_append(&mut self, payload: Vec<u8>) -> Result<Seq, JournalError> {
        let expected = self.appended.len() as u64 + 1;
        let seq = self.writer.append(timestamp(expected), KIND, &payload)?;
        assert_eq!(seq, Seq::new(expected), "sequence numbers are dense");
        self.appended.push(payload);
        Ok(seq)
    }

    fn append(&mut self, payload: Vec<u8>) -> Seq {
        self.try_append(payload).unwrap()
    }

    fn try_commit(&mut self) -> Result<Committed, JournalError> {
        let committed = self.writer.commit()?;
        self.note(committed);
        Ok(committed)
    }

    fn commit(&mut self) -> Committed {
        self.try_commit().unwrap()
    }

    fn note(&mut self, committed: Committed) {
        let written = self.appended.len() as u64;
        assert_eq!(committed.written.map_or(0, Seq::get), written, "commit reports every append as written");
        let durable = committed.durable.map_or(0, Seq::get);
        assert!(durable >= self.acknowledged, "durability never goes back ({durable} < {})", self.acknowledged);
        assert!(durable <= written, "nothing is durable before it is written");
        if self.writer.durability() == Durability::Sync {
            assert_eq!(durable, written, "Sync mode makes every commit durable");
        }
        self.acknowledged = durable;
    }
}

/// One record as read back.
#[derive(Debug, PartialEq, Eq)]
struct Read {
    seq: u64,
    timestamp: u64,
    kind: u16,
    payload: Vec<u8>,
}

fn read_all(storage: &Arc<dyn Storage>) -> Result<Vec<Read>, JournalError> {
    let mut records = Vec::new();
    read_from::<JournalError>(storage, Seq::new(1), |record| {
        records.push(Read {
            seq: record.seq.get(),
            timestamp: record.timestamp.as_nanos(),
            kind: record.kind,
            payload: record.payload.to_vec(),
        });
        Ok(())
    })?;
    Ok(records)
}

/// The payloads of `records`, checking that they are records 1, 2, 3, … as appended.
fn payloads(records: Vec<Read>, context: &str) -> Vec<Vec<u8>> {
    records
        .into_iter()
        .enumerate()
        .map(|(index, read)| {
            let seq = index as u64 + 1;
            assert_eq!((read.seq, read.timestamp, read.kind), (seq, timestamp(seq).as_nanos(), KIND), "{context}");
            read.payload
        })
        .collect()
}

/// Every file of the storage and its bytes.
fn image(mem: &MemStorage) -> BTreeMap<String, Vec<u8>> {
    mem.list().unwrap().into_iter().map(|name| (name.clone(), mem.contents(&name).unwrap())).collect()
}

/// The segment files, oldest first.
fn segment_names(mem: &MemStorage) -> Vec<String> {
    let mut names: Vec<String> = mem.list().unwrap().into_iter().filter(|name| name.starts_with("journal-")).collect();
    names.sort();
    names
}

/// Each record of a segment as (offset, encoded length, seq), by walking its bytes.
fn record_spans(bytes: &[u8]) -> Vec<(usize, usize, u64)> {
    let mut spans = Vec::new();
    let mut offset = SEGMENT_HEADER_BYTES;
    while let Decoded::Valid(record, len) = record::decode(&bytes[offset..]) {
        spans.push((offset, len, record.seq.get()));
        offset += len;
    }
    spans
}

/// Writes `data` at `offset` of a file, durably, through the storage itself.
fn overwrite(storage: &dyn Storage, name: &str, offset: usize, data: &[u8]) {
    let mut file = storage.open(name).unwrap();
    file.write(offset as u64, data).unwrap();
    let len = file.len();
    file.sync(0, len).unwrap();
}

/// A journal of records with these payload sizes, every one committed in Sync mode.
fn committed_journal(sizes: impl IntoIterator<Item = usize>) -> Journal {
    let mut journal = Journal::create(Durability::Sync);
    for (index, size) in sizes.into_iter().enumerate() {
        journal.append(filled_payload(index as u64, size));
        journal.commit();
    }
    journal
}

/// Asserts a refusal as `JournalError::Corrupt` whose message names `file`, `offset`
/// and the expected `seq`, with one of `reasons`; returns the message.
fn assert_corrupt(
    result: Result<OpenReport, JournalError>,
    file: &str,
    offset: usize,
    seq: u64,
    reasons: &[&str],
) -> String {
    let error = result.expect_err("damage with valid records after it is refused");
    assert!(matches!(error, JournalError::Corrupt { .. }), "expected Corrupt, got {error}");
    let text = error.to_string();
    let place = format!("{file} at offset {offset}, where sequence {seq} was expected");
    assert!(text.contains(&place), "{text:?} names {place:?}");
    assert!(reasons.iter().any(|reason| text.contains(reason)), "{text:?} gives one of {reasons:?}");
    text
}

/// Opening refuses with `Corrupt` (checked by `check`), with and without repair, and
/// leaves every byte of every file as it was.
fn assert_open_refused_untouched(mem: &MemStorage, check: impl Fn(Result<OpenReport, JournalError>)) {
    let storage = shared(mem);
    let before = image(mem);
    for repair in [false, true] {
        check(open_and_check(&storage, repair));
        assert!(image(mem) == before, "a refused open (repair {repair}) left the files byte for byte");
    }
}

/// As `assert_open_refused_untouched`, and the reader refuses too rather than serve
/// records past the damage.
fn assert_refused_untouched(mem: &MemStorage, check: impl Fn(Result<OpenReport, JournalError>)) {
    assert_open_refused_untouched(mem, check);
    match read_all(&shared(mem)) {
        Err(JournalError::Corrupt { .. }) => {}
        Err(error) => panic!("the reader refuses with Corrupt, not {error}"),
        Ok(records) => panic!("the reader served {} records past the damage", records.len()),
    }
}

/// The truncation `report` describes is exactly the difference between `before` and
/// `after` (a repairing open): the bytes from its offset zeroed (or the whole segment
/// removed when the offset is 0), empty later segments removed, nothing else touched.
fn assert_truncation_matches(
    report: &OpenReport,
    before: &BTreeMap<String, Vec<u8>>,
    after: &BTreeMap<String, Vec<u8>>,
) {
    let Some(truncation) = &report.truncation else {
        assert!(before == after, "the files changed, yet no truncation was reported");
        return;
    };
    assert!(before != after, "a truncation is reported, so something was dropped: {truncation:?}");
    let name = &truncation.segment;
    let offset = truncation.offset as usize;
    let original = &before[name];
    let nonzero = original[offset..].iter().filter(|&&byte| byte != 0).count() as u64;
    assert_eq!(truncation.bytes, nonzero, "the truncation counts the non-zero bytes dropped");
    if offset == 0 {
        assert!(!after.contains_key(name), "a segment torn before its header is removed");
    } else {
        let repaired = &after[name];
        assert_eq!(repaired.len(), original.len());
        assert!(repaired[..offset] == original[..offset], "bytes before the cut are kept");
        assert!(repaired[offset..].iter().all(|&byte| byte == 0), "bytes from the cut are zeroed");
    }
    for removed in &truncation.removed_segments {
        assert!(before.contains_key(removed) && !after.contains_key(removed), "{removed} removed");
    }
    for (other, bytes) in after {
        if other != name {
            assert!(before.get(other) == Some(bytes), "{other} is untouched");
        }
    }
}

/// Opens a crashed storage with repair and checks the promise: the records are a
/// prefix of `appended` holding the first `acknowledged`, the report agrees with them
/// and names exactly what it dropped, and a second open finds nothing to do. Returns
/// the payloads recovered.
fn recover(crashed: &MemStorage, appended: &[Vec<u8>], acknowledged: u64, context: &str) -> Vec<Vec<u8>> {
    let storage = shared(crashed);
    let before = image(crashed);
    let report = open_and_check(&storage, true).unwrap_or_else(|error| panic!("{context}: open refused: {error}"));
    let after = image(crashed);
    let records = read_all(&storage).unwrap_or_else(|error| panic!("{context}: read refused: {error}"));
    let recovered = payloads(records, context);
    assert!(
        recovered.len() as u64 >= acknowledged,
        "{context}: {} records recovered, but {acknowledged} were acknowledged durable",
        recovered.len()
    );
    assert!(recovered.len() <= appended.len(), "{context}: more records than appended");
    for (index, payload) in recovered.iter().enumerate() {
        assert!(*payload == appended[index], "{context}: record {} differs from what was appended", index + 1);
    }
    assert_eq!(report.last_seq.map_or(0, Seq::get), recovered.len() as u64, "{context}: last_seq");
    assert_eq!(report.records, recovered.len() as u64, "{context}: record count");
    assert_eq!(report.chain.next_seq, Seq::new(recovered.len() as u64 + 1), "{context}: chain");
    assert_truncation_matches(&report, &before, &after);
    let again = open_and_check(&storage, true).unwrap();
    assert_eq!(again.truncation, None, "{context}: a repaired journal opens clean");
    assert_eq!((again.last_seq, again.chain), (report.last_seq, report.chain), "{context}");
    assert!(image(crashed) == after, "{context}: a clean open changes nothing");
    recovered
}

// ----------------------------------------------------------------------------------
// 1. Torn tails: power cuts and process crashes.
// ----------------------------------------------------------------------------------

/// Sync mode over random workloads, cut at random moments with several crash seeds
/// each: everything a commit acknowledged survives; the journal then continues and
/// survives a second power cut.
#[test]
fn sync_power_cut_keeps_every_acknowledged_record() {
    let mut crashes = 0;
    let mut truncations = 0;
    let mut lost_unacknowledged = 0;
    for scenario in 0..64_u64 {
        let mut rng = ChaCha8Rng::seed_from_u64(scenario);
        let mut journal = Journal::create(Durability::Sync);
        let appends = rng.random_range(1..=140);
        for _ in 0..appends {
            journal.append(random_payload(&mut rng, 2000));
            if rng.random_bool(0.3) {
                journal.commit();
            }
            if rng.random_bool(0.08) {
                for seed in 0..3 {
                    let context = format!("scenario {scenario}, mid-run crash seed {seed}");
                    recover(&journal.mem.crash(seed), &journal.appended, journal.acknowledged, &context);
                    crashes += 1;
                }
            }
        }
        let segments = segment_names(&journal.mem).len();
        for seed in 0..12 {
            let crashed = journal.mem.crash(seed * 1000 + scenario);
            let context = format!("scenario {scenario} ({segments} segments), crash seed {seed}");
            let had_truncation = open_and_check(&shared(&crashed), false).unwrap().truncation.is_some();
            truncations += u64::from(had_truncation);
            let recovered = recover(&crashed, &journal.appended, journal.acknowledged, &context);
            lost_unacknowledged += u64::from(recovered.len() < journal.appended.len());
            crashes += 1;
            if seed % 4 == 0 {
                // The writer continues after the repair, and survives another cut.
                let mut again = Journal::reopen(crashed, Durability::Sync, recovered);
                for _ in 0..rng.random_range(1..40) {
                    again.append(random_payload(&mut rng, 2000));
                    if rng.random_bool(0.3) {
                        again.commit();
                    }
                }
                let all = payloads(read_all(&again.storage).unwrap(), &context);
                assert!(all == again.appended, "{context}: every record appended after the repair reads back");
                let context = format!("{context}, then a second crash");
                recover(&again.mem.crash(seed + 7), &again.appended, again.acknowledged, &context);
            }
        }
    }
    // The sweep must really exercise torn tails, not only clean cuts.
    assert!(crashes > 800, "{crashes} crashes");
    assert!(truncations > 100, "{truncations} of {crashes} crashes left a torn tail to repair");
    assert!(lost_unacknowledged > 100, "{lost_unacknowledged} crashes lost unacknowledged records");
}

/// A power cut just after a roll, before the new segment's first record was synced:
/// the new segment keeps its (synced) header and no records, and the journal goes on.
#[test]
fn power_cut_right_after_a_roll_keeps_the_new_empty_segment() {
    let mut journal = committed_journal((0..RECORDS_PER_FULL_SEGMENT).map(|_| PAYLOAD_BYTES_FULL));
    assert_eq!(segment_names(&journal.mem).len(), 1);
    journal.append(filled_payload(99, PAYLOAD_BYTES_FULL));
    let names = segment_names(&journal.mem);
    assert_eq!(names, [segment_name(Seq::new(1)), segment_name(Seq::new(RECORDS_PER_FULL_SEGMENT + 1))]);
    let mut saw_empty_segment = false;
    for seed in 0..20 {
        let crashed = journal.mem.crash(seed);
        let recovered = recover(&crashed, &journal.appended, journal.acknowledged, &format!("seed {seed}"));
        let report = open_and_check(&shared(&crashed), true).unwrap();
        assert_eq!(report.segments.len(), 2, "the new segment's header was synced when it was created");
        if recovered.len() as u64 == RECORDS_PER_FULL_SEGMENT {
            saw_empty_segment = true;
            assert_eq!((report.segments[1].records, report.segments[1].bytes_used), (0, 0));
            let mut again = Journal::reopen(crashed, Durability::Sync, recovered);
            again.append(vec![1, 2, 3]);
            again.commit();
            assert_eq!(segment_names(&again.mem), names, "it continues in the empty segment");
            assert!(payloads(read_all(&again.storage).unwrap(), "") == again.appended);
        }
    }
    assert!(saw_empty_segment, "some seed lost the unsynced first record of the new segment");
}

const NEVER: Duration = Duration::from_hours(1);

/// Batch and Async modes: a process crash keeps everything appended (the mapping
/// survives), whatever was synced or not.
#[test]
fn batch_and_async_lose_nothing_in_a_process_crash() {
    let modes =
        [Durability::Batch { interval: Duration::ZERO }, Durability::Batch { interval: NEVER }, Durability::Async];
    for (mode_index, durability) in modes.into_iter().enumerate() {
        for scenario in 0..6_u64 {
            let mut rng = ChaCha8Rng::seed_from_u64(scenario * 10 + mode_index as u64);
            let mut journal = Journal::create(durability);
            for _ in 0..rng.random_range(1..=150) {
                journal.append(random_payload(&mut rng, 2000));
                if rng.random_bool(0.3) {
                    journal.commit();
                }
                if rng.random_bool(0.05) {
                    let context = format!("{durability:?}, scenario {scenario}, mid-run");
                    let all = journal.appended.len() as u64;
                    let recovered = recover(&journal.mem.process_crash(), &journal.appended, all, &context);
                    assert_eq!(recovered.len() as u64, all, "{context}: nothing appended is lost");
                }
            }
            let context = format!("{durability:?}, scenario {scenario}");
            let crashed = journal.mem.process_crash();
            assert_eq!(open_and_check(&shared(&crashed), false).unwrap().truncation, None, "{context}");
            let all = journal.appended.len() as u64;
            let recovered = recover(&crashed, &journal.appended, all, &context);
            let mut again = Journal::reopen(crashed, durability, recovered);
            again.append(b"after the restart".to_vec());
            again.writer.sync().unwrap();
            assert!(payloads(read_all(&again.storage).unwrap(), &context) == again.appended, "{context}");
        }
    }
}

/// Batch and Async modes in a power cut: what `Committed::durable` acknowledged
/// survives (in Async mode only what rolls synced).
#[test]
fn batch_and_async_keep_what_commit_called_durable_in_a_power_cut() {
    let modes =
        [Durability::Batch { interval: Duration::ZERO }, Durability::Batch { interval: NEVER }, Durability::Async];
    for (mode_index, durability) in modes.into_iter().enumerate() {
        let mut acknowledged_somewhere = false;
        for scenario in 0..6_u64 {
            let mut rng = ChaCha8Rng::seed_from_u64(scenario * 10 + mode_index as u64 + 500);
            let mut journal = Journal::create(durability);
            for _ in 0..rng.random_range(1..=150) {
                journal.append(random_payload(&mut rng, 2000));
                if rng.random_bool(0.3) {
                    journal.commit();
                }
            }
            acknowledged_somewhere |= journal.acknowledged > 0;
            for seed in 0..6 {
                let context = format!("{durability:?}, scenario {scenario}, crash seed {seed}");
                recover(&journal.mem.crash(seed), &journal.appended, journal.acknowledged, &context);
            }
        }
        assert!(acknowledged_somewhere, "{durability:?}: some records were acknowledged durable");
    }
}

// ----------------------------------------------------------------------------------
// 2. Failing writes and syncs.
// ----------------------------------------------------------------------------------

/// After an injected failure the writer names the file, then refuses; reopening (as
/// written, or after a power cut) loses nothing acknowledged. Returns the actions the
/// failures named ("writing", "syncing", "creating").
fn sweep_failures(make: impl Fn(u64) -> Faults, what: &str) -> BTreeSet<&'static str> {
    let mut actions = BTreeSet::new();
    for limit in 0..30_u64 {
        let mut rng = ChaCha8Rng::seed_from_u64(limit + 77);
        let mut journal = Journal::create(Durability::Sync);
        for _ in 0..rng.random_range(0..90) {
            journal.append(random_payload(&mut rng, 2000));
            if rng.random_bool(0.3) {
                journal.commit();
            }
        }
        journal.mem.set_faults(make(limit % 15));
        let mut operations = 0;
        let error = loop {
            operations += 1;
            assert!(operations < 10_000, "the injected fault never fired");
            if let Err(error) = journal.try_append(random_payload(&mut rng, 2000)) {
                break error;
            }
            if rng.random_bool(0.3)
                && let Err(error) = journal.try_commit()
            {
                break error;
            }
        };
        let context = format!("{what} limit {limit}");
        actions.insert(assert_names_failure(&error, &journal.mem, what));
        assert_poisoned(&mut journal.writer, &error.to_string());
        // The process dies and restarts: everything written is there.
        journal.mem.set_faults(Faults::default());
        let appended = &journal.appended;
        recover(&journal.mem.process_crash(), appended, journal.acknowledged, &format!("{context}, restart"));
        for seed in 0..6 {
            let context = format!("{context}, power cut seed {seed}");
            recover(&journal.mem.crash(seed), appended, journal.acknowledged, &context);
        }
    }
    actions
}

/// An injected I/O failure is an `Io` error naming the newest segment file (the one
/// written, synced or created) and the failure; returns its action.
fn assert_names_failure(error: &JournalError, mem: &MemStorage, what: &str) -> &'static str {
    let JournalError::Io { action, .. } = error else { panic!("an I/O failure is JournalError::Io, got {error}") };
    let text = error.to_string();
    let newest = segment_names(mem).pop().unwrap();
    assert!(text.starts_with(&format!("journal I/O error {action} ")), "{text}");
    assert!(text.contains(&newest), "{text:?} names the file {newest}");
    assert!(text.contains(&format!("injected {what} failure")), "{text:?} gives the cause");
    action
}

/// Every further write is refused as `Poisoned`, repeating the first failure.
fn assert_poisoned(writer: &mut JournalWriter, first_failure: &str) {
    let refusals = [
        writer.append(Timestamp::from_nanos(1), KIND, b"more").map(|_| ()),
        writer.sync().map(|_| ()),
        writer.append(Timestamp::from_nanos(2), KIND, b"").map(|_| ()),
    ];
    for refusal in refusals {
        let error = refusal.expect_err("a failed writer refuses");
        assert!(matches!(error, JournalError::Poisoned(_)), "{error}");
        let text = error.to_string();
        assert!(text.contains("refuses further writes") && text.contains(first_failure), "{text:?}");
    }
}

#[test]
fn failing_writes_poison_the_writer_and_lose_nothing_acknowledged() {
    let actions = sweep_failures(|limit| Faults { fail_writes_after: Some(limit), fail_syncs_after: None }, "write");
    assert!(actions.contains("writing"), "{actions:?}");
}

#[test]
fn failing_syncs_poison_the_writer_and_lose_nothing_acknowledged() {
    let actions = sweep_failures(|limit| Faults { fail_writes_after: None, fail_syncs_after: Some(limit) }, "sync");
    assert!(actions.contains("syncing"), "{actions:?}");
}

/// A failure while rolling to a new segment: the old segment's sync, the new header's
/// write, the new header's sync. Each names its file; reopening removes a new segment
/// left without a header (and reports it) and loses nothing acknowledged.
#[test]
fn failures_during_a_roll_name_the_segment_and_recover() {
    let first = segment_name(Seq::new(1));
    let second = segment_name(Seq::new(RECORDS_PER_FULL_SEGMENT + 1));
    let cases = [
        // (commit the full segment first?, faults, action, file named)
        (false, Faults { fail_writes_after: None, fail_syncs_after: Some(0) }, "syncing", &first),
        (true, Faults { fail_writes_after: Some(0), fail_syncs_after: None }, "creating", &second),
        (true, Faults { fail_writes_after: None, fail_syncs_after: Some(0) }, "creating", &second),
    ];
    for (commit_first, faults, action, file) in cases {
        let mut journal = Journal::create(Durability::Sync);
        for index in 0..RECORDS_PER_FULL_SEGMENT {
            journal.append(filled_payload(index, PAYLOAD_BYTES_FULL));
            if commit_first || index + 1 < RECORDS_PER_FULL_SEGMENT {
                journal.commit();
            }
        }
        journal.mem.set_faults(faults);
        let error = journal.try_append(filled_payload(1000, PAYLOAD_BYTES_FULL)).expect_err("the roll fails");
        let text = error.to_string();
        assert!(text.starts_with(&format!("journal I/O error {action} mem:{file}: injected")), "{text}");
        assert_poisoned(&mut journal.writer, &text);
        journal.mem.set_faults(Faults::default());
        let context = format!("{action} {file}");
        let restarted = journal.mem.process_crash();
        if faults.fail_writes_after.is_some() {
            let report = open_and_check(&shared(&restarted), false).unwrap();
            let truncation = report.truncation.expect("a segment without a header is a torn tail");
            assert_eq!((truncation.segment.as_str(), truncation.offset, truncation.bytes), (second.as_str(), 0, 0));
            assert_eq!(truncation.reason, "segment header never written");
        }
        let recovered = recover(&restarted, &journal.appended, journal.acknowledged, &context);
        for seed in 0..8 {
            recover(&journal.mem.crash(seed), &journal.appended, journal.acknowledged, &context);
        }
        // After the restart the journal rolls again, to the same name.
        let mut again = Journal::reopen(restarted, Durability::Sync, recovered);
        again.append(filled_payload(2000, PAYLOAD_BYTES_FULL));
        while segment_names(&again.mem).len() < 2 {
            again.append(filled_payload(2000, PAYLOAD_BYTES_FULL));
        }
        again.commit();
        assert_eq!(segment_names(&again.mem), [first.clone(), second.clone()], "{context}");
        assert!(payloads(read_all(&again.storage).unwrap(), &context) == again.appended, "{context}");
    }
}

/// A repairing open that cannot write or sync its repair names the file and the
/// action; once the fault clears the repair succeeds.
#[test]
fn a_repair_that_fails_names_the_file_and_can_be_retried() {
    for (faults, action) in [
        (Faults { fail_writes_after: Some(0), fail_syncs_after: None }, "repairing"),
        (Faults { fail_writes_after: None, fail_syncs_after: Some(0) }, "syncing"),
    ] {
        let journal = committed_journal([10, 20, 30]);
        let name = segment_name(Seq::new(1));
        let last = record_spans(&journal.mem.contents(&name).unwrap())[2];
        journal.mem.flip_bit(&name, last.0 + HEADER_BYTES + 3, 1);
        journal.mem.set_faults(faults);
        let error = open_and_check(&journal.storage, true).expect_err("the repair fails");
        let text = error.to_string();
        let expected = format!("journal I/O error {action} mem:{name}: injected");
        assert!(text.starts_with(&expected), "{text:?} starts with {expected:?}");
        journal.mem.set_faults(Faults::default());
        if action == "syncing" {
            // A power cut before the repair was synced tears the repair itself: the
            // next open repairs again.
            for seed in 0..16 {
                let context = format!("power cut during the repair, seed {seed}");
                let recovered = recover(&journal.mem.crash(seed), &journal.appended, 2, &context);
                assert_eq!(recovered.len(), 2, "{context}");
            }
        }
        let report = open_and_check(&journal.storage, true).unwrap();
        assert_eq!(report.last_seq, Some(Seq::new(2)));
        assert_eq!(open_and_check(&journal.storage, true).unwrap().truncation, None);
    }
}

/// A payload above the maximum is refused by size, and is not an I/O failure: the
/// writer goes on.
#[test]
fn an_oversized_payload_is_refused_without_poisoning() {
    let mut journal = Journal::create(Durability::Sync);
    let error = journal.try_append(vec![0; PAYLOAD_BYTES_MAX + 1]).expect_err("too large");
    assert_eq!(
        error.to_string(),
        format!("record payload of {} bytes is above the maximum of {PAYLOAD_BYTES_MAX}", PAYLOAD_BYTES_MAX + 1)
    );
    journal.append(vec![5; PAYLOAD_BYTES_MAX]);
    journal.commit();
    assert!(payloads(read_all(&journal.storage).unwrap(), "") == journal.appended);
}

/// Regression: after an I/O failure, `commit` in Batch (interval not yet due) and Async
/// modes returned `Ok`, although the writer documents that it then "refuses
/// everything" (writer.rs `commit` checks `failed` only through `sync`).
#[test]
fn commit_after_a_failure_is_refused_in_every_mode() {
    for durability in [Durability::Sync, Durability::Batch { interval: NEVER }, Durability::Async] {
        let mut journal = Journal::create(durability);
        journal.append(b"kept".to_vec());
        journal.writer.sync().unwrap();
        journal.mem.set_faults(Faults { fail_writes_after: Some(0), fail_syncs_after: None });
        let failure = journal.try_append(b"lost".to_vec()).expect_err("the write fails");
        let refused = journal.writer.commit();
        assert!(
            matches!(refused, Err(JournalError::Poisoned(ref reason)) if *reason == failure.to_string()),
            "{durability:?}: commit after a failed write is refused, got {refused:?}"
        );
    }
}

// ----------------------------------------------------------------------------------
// 3. Bit flips.
// ----------------------------------------------------------------------------------

const CHECKSUM_REASONS: &[&str] = &["checksum mismatch"];
const LENGTH_REASONS: &[&str] =
    &["checksum mismatch", "length above the maximum", "record runs past the end of the segment"];
const PADDING_REASONS: &[&str] = &["non-zero reserved bytes"];

/// Which refusal reasons a flip at `byte` of a record with `payload_len` can give.
fn reasons_for(byte: usize, payload_len: usize) -> &'static [&'static str] {
    match byte {
        0..4 => LENGTH_REASONS,
        _ if byte < HEADER_BYTES + payload_len => CHECKSUM_REASONS,
        _ => PADDING_REASONS,
    }
}

/// Every bit of a small record and one bit of every byte of a large one, in the middle
/// of the journal (valid records follow): refused as corruption naming the segment,
/// the record's offset and its sequence number; nothing touched.
#[test]
fn a_flip_in_a_middle_record_is_refused_and_touches_nothing() {
    // Record 5 is small (13 bytes of payload, 3 of padding), record 10 large.
    let sizes = (0..20).map(|index| match index {
        4 => 13,
        9 => 1500,
        _ => 100,
    });
    let journal = committed_journal(sizes);
    let name = segment_name(Seq::new(1));
    let file = format!("mem:{name}");
    let spans = record_spans(&journal.mem.contents(&name).unwrap());
    assert_eq!(spans.len(), 20);
    let mut flips = 0;
    for (seq, bits) in [(5_u64, 0..8_u8), (10, 0..1)] {
        let (offset, len, _) = spans[seq as usize - 1];
        let payload_len = journal.appended[seq as usize - 1].len();
        for byte in 0..len {
            for bit in bits.clone() {
                let bit = ((usize::from(bit) + byte) % 8) as u8;
                journal.mem.flip_bit(&name, offset + byte, bit);
                assert_refused_untouched(&journal.mem, |result| {
                    assert_corrupt(result, &file, offset, seq, reasons_for(byte, payload_len));
                });
                journal.mem.flip_bit(&name, offset + byte, bit);
                flips += 1;
            }
        }
    }
    assert!(flips > 13 * 8 + 1500);
    // Flipped back, the journal is whole again.
    assert!(payloads(read_all(&journal.storage).unwrap(), "") == journal.appended);
}

/// A flip in the last record of the journal cannot be told from a torn write: it is
/// repaired as a torn tail, that record alone dropped (even though it was synced; the
/// truncation report and a warning say so), and the journal continues from it.
#[test]
fn a_flip_in_the_very_last_record_is_repaired_as_a_torn_tail() {
    let journal = committed_journal([40, 50, 61]);
    let name = segment_name(Seq::new(1));
    let original = journal.mem.contents(&name).unwrap();
    let (offset, len, _) = record_spans(&original)[2];
    for byte in 0..len {
        let crashed = journal.mem.process_crash();
        crashed.flip_bit(&name, offset + byte, (byte % 8) as u8);
        let context = format!("flip at byte {byte} of the last record");
        let report = open_and_check(&shared(&crashed), false).unwrap();
        let truncation = report.truncation.clone().unwrap();
        assert_eq!((truncation.segment.as_str(), truncation.offset), (name.as_str(), offset as u64), "{context}");
        assert!(reasons_for(byte, 61).contains(&truncation.reason), "{context}: {}", truncation.reason);
        let recovered = recover(&crashed, &journal.appended, 2, &context);
        assert_eq!(recovered.len(), 2, "{context}: only the flipped record is dropped");
        let mut again = Journal::reopen(crashed, Durability::Sync, recovered);
        assert_eq!(again.append(b"replacement".to_vec()), Seq::new(3));
        again.commit();
        assert!(payloads(read_all(&again.storage).unwrap(), &context) == again.appended, "{context}");
    }
}

/// The last record of a sealed segment is not a tail: the roll synced it before the
/// next segment was created, so a flip there is corruption, whether the next segment
/// holds records or only its header.
#[test]
fn a_flip_in_the_last_record_of_a_sealed_segment_is_refused() {
    let full = RECORDS_PER_FULL_SEGMENT as usize;
    for records in [full + 1, full + 5] {
        let mut journal = committed_journal((0..full).map(|_| PAYLOAD_BYTES_FULL));
        for index in full..records {
            journal.append(filled_payload(index as u64, PAYLOAD_BYTES_FULL));
            journal.commit();
        }
        let name = segment_name(Seq::new(1));
        let (offset, _, seq) = *record_spans(&journal.mem.contents(&name).unwrap()).last().unwrap();
        assert_eq!(seq, RECORDS_PER_FULL_SEGMENT);
        if records == full + 1 {
            // Leave the next segment with its header only.
            let next = segment_name(Seq::new(seq + 1));
            overwrite(journal.storage.as_ref(), &next, SEGMENT_HEADER_BYTES, &[0; RECORD_BYTES_FULL]);
            assert!(record_spans(&journal.mem.contents(&next).unwrap()).is_empty());
        }
        journal.mem.flip_bit(&name, offset + 100, 3);
        assert_refused_untouched(&journal.mem, |result| {
            assert_corrupt(result, &format!("mem:{name}"), offset, seq, CHECKSUM_REASONS);
        });
    }
}

/// Every byte of a segment header (first, middle and last segment, each holding
/// records): refused at offset 0, naming the segment and the sequence expected there.
/// A last segment holding only its header is the trace of a crash mid-roll: removed.
#[test]
fn a_flip_in_a_segment_header_is_refused_unless_the_segment_is_empty_and_last() {
    let full = RECORDS_PER_FULL_SEGMENT;
    let journal = committed_journal((0..full * 2 + 3).map(|_| PAYLOAD_BYTES_FULL));
    let names = segment_names(&journal.mem);
    assert_eq!(names.len(), 3);
    let header_reasons: &[&str] = &[
        "not a Bourse journal segment (bad magic)",
        "unsupported journal format version",
        "segment header checksum mismatch",
    ];
    // The first segment's expected sequence is its first one (1).
    for (name, expected_seq) in names.iter().zip([1, full + 1, full * 2 + 1]) {
        for byte in 0..SEGMENT_HEADER_BYTES {
            journal.mem.flip_bit(name, byte, (byte % 8) as u8);
            assert_refused_untouched(&journal.mem, |result| {
                assert_corrupt(result, &format!("mem:{name}"), 0, expected_seq, header_reasons);
            });
            journal.mem.flip_bit(name, byte, (byte % 8) as u8);
        }
    }
    // A last segment with only its header, which is then damaged.
    let mut journal = committed_journal((0..=full).map(|_| PAYLOAD_BYTES_FULL));
    let last = segment_names(&journal.mem).pop().unwrap();
    overwrite(journal.storage.as_ref(), &last, SEGMENT_HEADER_BYTES, &[0; RECORD_BYTES_FULL]);
    journal.appended.pop();
    journal.acknowledged -= 1;
    for byte in [0, 9, 13, 17, 25, 40, 63] {
        let crashed = journal.mem.process_crash();
        crashed.flip_bit(&last, byte, 2);
        let report = open_and_check(&shared(&crashed), false).unwrap();
        let truncation = report.truncation.unwrap();
        assert_eq!((truncation.segment.as_str(), truncation.offset), (last.as_str(), 0));
        assert!(header_reasons.contains(&truncation.reason), "{}", truncation.reason);
        let recovered = recover(&crashed, &journal.appended, journal.acknowledged, &format!("header byte {byte}"));
        assert_eq!(recovered.len() as u64, full);
        assert_eq!(segment_names(&crashed).len(), 1);
    }
}

/// Regression: a header flip in the first segment of a journal whose older segments
/// were pruned (it starts at sequence 34) is reported as "where sequence 1 was
/// expected" (journal.rs: `report.chain.next_seq` is still its initial value before
/// the first header is read); the reader names the right one (`first_seq`).
#[test]
fn a_header_flip_in_a_pruned_journal_names_its_first_sequence() {
    let full = RECORDS_PER_FULL_SEGMENT;
    let journal = committed_journal((0..full * 2 + 3).map(|_| PAYLOAD_BYTES_FULL));
    let names = segment_names(&journal.mem);
    journal.storage.remove(&names[0]).unwrap();
    let report = open_and_check(&journal.storage, true).unwrap();
    assert_eq!((report.first_seq(), report.last_seq), (Some(Seq::new(full + 1)), Some(Seq::new(full * 2 + 3))));
    journal.mem.flip_bit(&names[1], 20, 0);
    let file = format!("mem:{}", names[1]);
    let reasons = &["segment header checksum mismatch"];
    let read = read_all(&journal.storage).map(|_| report.clone());
    assert_corrupt(read, &file, 0, full + 1, reasons);
    assert_corrupt(open_and_check(&journal.storage, true), &file, 0, full + 1, reasons);
}

/// The reserved header bytes are under the checksum; the padding after a payload is
/// not, and must be zero. In the middle: corruption. In the last record: a torn tail.
#[test]
fn a_flip_in_reserved_or_padding_bytes() {
    // Payloads of 13 bytes: 3 bytes of padding each.
    let journal = committed_journal([13; 6]);
    let name = segment_name(Seq::new(1));
    let file = format!("mem:{name}");
    let spans = record_spans(&journal.mem.contents(&name).unwrap());
    for (place, reasons) in
        [(26, CHECKSUM_REASONS), (27, CHECKSUM_REASONS), (45, PADDING_REASONS), (47, PADDING_REASONS)]
    {
        let (offset, _, seq) = spans[2];
        journal.mem.flip_bit(&name, offset + place, 6);
        assert_refused_untouched(&journal.mem, |result| {
            assert_corrupt(result, &file, offset, seq, reasons);
        });
        journal.mem.flip_bit(&name, offset + place, 6);
        let (offset, _, _) = spans[5];
        let crashed = journal.mem.process_crash();
        crashed.flip_bit(&name, offset + place, 6);
        let truncation = open_and_check(&shared(&crashed), false).unwrap().truncation.unwrap();
        assert_eq!((truncation.offset, truncation.reason), (offset as u64, reasons[0]));
        let recovered = recover(&crashed, &journal.appended, 5, &format!("byte {place} of the last record"));
        assert_eq!(recovered.len(), 5);
    }
}

/// A flip in the zeros after the last record: in the last segment a torn tail (one byte
/// dropped, no record lost); in a sealed segment, corruption at the end of its records.
#[test]
fn a_flip_in_free_space() {
    let full = RECORDS_PER_FULL_SEGMENT;
    // The full-size record rolls; the small one follows it in the second segment.
    let journal = committed_journal((0..=full).map(|_| PAYLOAD_BYTES_FULL).chain([100]));
    let names = segment_names(&journal.mem);
    let last_end = |name: &str| {
        let spans = record_spans(&journal.mem.contents(name).unwrap());
        spans.last().map_or(SEGMENT_HEADER_BYTES, |&(offset, len, _)| offset + len)
    };
    // The last segment.
    for distance in [0, 5, 64, 10_000] {
        let crashed = journal.mem.process_crash();
        crashed.flip_bit(&names[1], last_end(&names[1]) + distance, 4);
        let report = open_and_check(&shared(&crashed), false).unwrap();
        let truncation = report.truncation.unwrap();
        assert_eq!((truncation.offset, truncation.bytes), (last_end(&names[1]) as u64, 1));
        let all = journal.appended.len() as u64;
        let recovered = recover(&crashed, &journal.appended, all, &format!("free space +{distance}"));
        assert_eq!(recovered.len() as u64, all, "no record lost");
    }
    // The sealed segment's free space (under one record long, after its last record):
    // within the 32 bytes where a next header would be, a checksum mismatch; further
    // on, stray data after zeros.
    let end = last_end(&names[0]);
    for (distance, reason) in [(8, "checksum mismatch"), (40, "zeros followed by data")] {
        journal.mem.flip_bit(&names[0], end + distance, 0);
        assert_refused_untouched(&journal.mem, |result| {
            assert_corrupt(result, &format!("mem:{}", names[0]), end, full + 1, &[reason]);
        });
        journal.mem.flip_bit(&names[0], end + distance, 0);
    }
}

// ----------------------------------------------------------------------------------
// 4. Truncated, missing and rearranged records.
// ----------------------------------------------------------------------------------

/// The last segment cut short at many points: the records wholly before the cut are
/// kept, the cut record dropped (and reported); a cut inside the header removes the
/// segment. The journal continues in the shortened segment.
#[test]
fn a_last_segment_cut_short_keeps_the_records_before_the_cut() {
    let sizes: Vec<usize> = (0..12).map(|index| 7 + index * 37).collect();
    let journal = committed_journal(sizes.clone());
    let name = segment_name(Seq::new(1));
    let spans = record_spans(&journal.mem.contents(&name).unwrap());
    let data_end = spans.last().map(|&(offset, len, _)| offset + len).unwrap();
    let mut cuts: Vec<usize> = (0..=data_end + 16).step_by(5).collect();
    cuts.extend(spans.iter().map(|&(offset, _, _)| offset));
    for cut in cuts {
        let crashed = journal.mem.process_crash();
        crashed.truncate(&name, cut);
        let whole = spans.iter().filter(|&&(offset, len, _)| offset + len <= cut).count();
        let context = format!("cut at {cut}");
        let report = open_and_check(&shared(&crashed), false).unwrap();
        let at_boundary = cut >= data_end || spans.iter().any(|&(offset, _, _)| offset == cut);
        if cut < SEGMENT_HEADER_BYTES {
            let truncation = report.truncation.clone().unwrap();
            assert_eq!((truncation.offset, truncation.reason), (0, "segment shorter than its header"), "{context}");
        } else if at_boundary {
            assert_eq!(report.truncation, None, "{context}: a cut between records leaves nothing to repair");
        } else {
            let truncation = report.truncation.clone().unwrap();
            assert_eq!(truncation.offset as usize, spans[whole].0, "{context}: the cut record's offset");
        }
        let recovered = recover(&crashed, &journal.appended, whole as u64, &context);
        let expected = if cut < SEGMENT_HEADER_BYTES { 0 } else { whole };
        assert_eq!(recovered.len(), expected, "{context}");
        if (SEGMENT_HEADER_BYTES..spans[0].0 + spans[0].1).contains(&cut) {
            // A header and no record left: see the regression test below.
            continue;
        }
        let mut again = Journal::reopen(crashed, Durability::Sync, recovered);
        for index in 0..3 {
            again.append(filled_payload(500 + index, 300));
            again.commit();
        }
        assert!(payloads(read_all(&again.storage).unwrap(), &context) == again.appended, "{context}");
    }
}

/// Regression: the only segment cut inside its first record keeps its header and no
/// record once repaired, with less room than the next record needs; the writer then
/// rolls to a segment named for the same first sequence, which exists, and fails
/// ("creating journal-…1.seg: entity already exists") on every restart. The repaired
/// journal can never be written again (writer.rs `roll` assumes the last segment is
/// never both empty and full; journal.rs repair leaves it so).
#[test]
fn a_segment_cut_inside_its_first_record_can_be_written_again() {
    let journal = committed_journal([300, 300]);
    let name = segment_name(Seq::new(1));
    journal.mem.truncate(&name, SEGMENT_HEADER_BYTES + 100);
    let recovered = recover(&journal.mem, &journal.appended, 0, "cut inside the first record");
    assert!(recovered.is_empty());
    let mut again = Journal::reopen(journal.mem.clone(), Durability::Sync, recovered);
    let appended = again.try_append(vec![1; 300]);
    assert!(appended.is_ok(), "the repaired journal takes a record: {appended:?}");
    again.commit();
    assert!(payloads(read_all(&again.storage).unwrap(), "") == again.appended);
}

/// A sealed segment cut short (inside a record, at a record boundary, inside its
/// header) is refused: the later segment still holds records.
#[test]
fn a_middle_segment_cut_short_is_refused() {
    let full = RECORDS_PER_FULL_SEGMENT;
    let journal = committed_journal((0..full * 2 + 2).map(|_| PAYLOAD_BYTES_FULL));
    let names = segment_names(&journal.mem);
    let middle = &names[1];
    let spans = record_spans(&journal.mem.contents(middle).unwrap());
    let (tenth, _, tenth_seq) = spans[9];
    let cases: [(usize, &str, usize, u64, &str); 4] = [
        (tenth + 100, middle, tenth, tenth_seq, "record runs past the end of the segment"),
        (tenth + 20, middle, tenth, tenth_seq, "truncated header"),
        (tenth, &names[2], 0, tenth_seq, "segment does not continue the chain of the one before"),
        (40, middle, 0, full + 1, "segment shorter than its header"),
    ];
    for (cut, file, offset, seq, reason) in cases {
        let damaged = journal.mem.process_crash();
        damaged.truncate(middle, cut);
        assert_refused_untouched(&damaged, |result| {
            assert_corrupt(result, &format!("mem:{file}"), offset, seq, &[reason]);
        });
    }
}

/// A lost middle segment: the next one's header does not continue the chain.
#[test]
fn a_missing_middle_segment_breaks_the_chain() {
    let full = RECORDS_PER_FULL_SEGMENT;
    let journal = committed_journal((0..=full * 3).map(|_| PAYLOAD_BYTES_FULL));
    let names = segment_names(&journal.mem);
    assert_eq!(names.len(), 4);
    for missing in 1..3 {
        let damaged = journal.mem.process_crash();
        damaged.remove(&names[missing]).unwrap();
        let next = format!("mem:{}", names[missing + 1]);
        let expected_seq = full * missing as u64 + 1;
        assert_refused_untouched(&damaged, |result| {
            let text = assert_corrupt(result, &next, 0, expected_seq, &["does not continue the chain"]);
            assert!(text.contains("refusing to open (files left untouched)"), "{text}");
        });
    }
}

/// A segment renamed (its name no longer says its first sequence) is refused, and files
/// that are not segments are ignored.
#[test]
fn a_renamed_segment_is_refused_and_other_files_are_ignored() {
    let full = RECORDS_PER_FULL_SEGMENT;
    let journal = committed_journal((0..=full * 2).map(|_| PAYLOAD_BYTES_FULL));
    let names = segment_names(&journal.mem);
    for name in ["snapshot-00000000000000000034.bin", "journal-34.seg", "journal-00000000000000000034.seg.tmp"] {
        drop(journal.storage.create(name, 100).unwrap());
    }
    let report = open_and_check(&journal.storage, true).unwrap();
    assert_eq!((report.segments.len(), report.last_seq, report.truncation), (3, Some(Seq::new(full * 2 + 1)), None));
    let renamed = segment_name(Seq::new(full + 2));
    journal.storage.rename(&names[1], &renamed).unwrap();
    // (The reader follows headers, not names, and still serves the intact chain.)
    assert_open_refused_untouched(&journal.mem, |result| {
        assert_corrupt(
            result,
            &format!("mem:{renamed}"),
            0,
            full + 1,
            &["segment header names another first sequence"],
        );
    });
}

/// Records written over others: (target seq, source seq, from the other journal?).
type Copies<'a> = &'a [(u64, u64, bool)];

/// Records copied over others (of the same length) are caught by sequence number and
/// hash chain: within a segment, across segments, two swapped, a record from another
/// journal with the right sequence number, and a stale copy over the very last record.
#[test]
fn a_record_copied_over_another_breaks_the_chain() {
    let full = RECORDS_PER_FULL_SEGMENT;
    let journal = committed_journal((0..full + 10).map(|_| PAYLOAD_BYTES_FULL));
    // Another journal, the same up to record 3, different from record 4 on.
    let mut other_journal = Journal::create(Durability::Sync);
    for index in 0..full + 10 {
        other_journal.append(filled_payload(index + u64::from(index >= 3) * 1000, PAYLOAD_BYTES_FULL));
        other_journal.commit();
    }
    let names = segment_names(&journal.mem);
    let spans: Vec<(String, usize, usize)> = names
        .iter()
        .flat_map(|name| {
            record_spans(&journal.mem.contents(name).unwrap())
                .into_iter()
                .map(move |(offset, len, _)| (name.clone(), offset, len))
        })
        .collect();
    assert_eq!(spans.len() as u64, full + 10);
    let record_bytes = |mem: &MemStorage, seq: u64| {
        let (name, offset, len) = &spans[seq as usize - 1];
        mem.contents(name).unwrap()[*offset..offset + len].to_vec()
    };
    let out_of_order = "sequence number out of order";
    // (records written over: (seq, source seq in this journal or the other), where the
    // scan stops, why)
    let cases: [(Copies<'_>, u64, &str); 5] = [
        (&[(5, 15, false)], 5, out_of_order),
        (&[(full + 3, 2, false)], full + 3, out_of_order),
        (&[(7, 8, false), (8, 7, false)], 7, out_of_order),
        (&[(6, 6, true)], 6, "hash chain broken (previous checksum differs)"),
        (&[(full + 10, full + 2, false)], full + 10, out_of_order),
    ];
    for (writes, stop_seq, reason) in cases {
        let damaged = journal.mem.process_crash();
        let damaged_storage = shared(&damaged);
        for &(target, source, from_other) in writes {
            let bytes =
                if from_other { record_bytes(&other_journal.mem, source) } else { record_bytes(&journal.mem, source) };
            assert!(bytes != record_bytes(&journal.mem, target), "the copy changes the record");
            let (name, offset, _) = &spans[target as usize - 1];
            overwrite(damaged_storage.as_ref(), name, *offset, &bytes);
        }
        let (name, offset, _) = &spans[stop_seq as usize - 1];
        assert_refused_untouched(&damaged, |result| {
            assert_corrupt(result, &format!("mem:{name}"), *offset, stop_seq, &[reason]);
        });
    }
}

/// A torn tail in the last segment that has records, followed by a later segment file
/// that holds nothing at all (no header, no record): the tail is repaired and the
/// empty file removed, and the report lists it.
#[test]
fn an_empty_later_segment_after_a_torn_tail_is_removed_and_reported() {
    let journal = committed_journal([100, 200, 300]);
    let name = segment_name(Seq::new(1));
    let (offset, _, _) = record_spans(&journal.mem.contents(&name).unwrap())[2];
    let crashed = journal.mem.process_crash();
    crashed.flip_bit(&name, offset + 40, 0);
    let stray = segment_name(Seq::new(3));
    drop(shared(&crashed).create(&stray, SEGMENT_BYTES).unwrap());
    let truncation = open_and_check(&shared(&crashed), false).unwrap().truncation.unwrap();
    assert_eq!((truncation.segment.as_str(), truncation.offset), (name.as_str(), offset as u64));
    assert_eq!(truncation.removed_segments, vec![stray]);
    recover(&crashed, &journal.appended, 2, "stray empty segment");
    assert_eq!(segment_names(&crashed), [name]);
}

/// Regression: a torn tail whose written part carries, at an 8-byte boundary of its
/// payload, bytes that form a valid record (any sequence, any chain) is refused as
/// corruption, so a plain crash leaves a journal that will not open. `segment.rs`
/// `valid_record_after` accepts any checksummed record as proof of "valid records
/// after", without asking whether it continues the chain. Client input could carry
/// such bytes: a `Reference` holds up to 32 bytes of text, exactly one empty record
/// (made valid UTF-8 by choosing its timestamp and previous checksum).
#[test]
fn a_torn_record_whose_payload_embeds_a_record_is_still_a_torn_tail() {
    let mut journal = committed_journal([100, 200]);
    let mut embedded = vec![0; encoded_len(0)];
    // It even names the next sequence number (easy to guess); only its chain is wrong.
    record::encode(&mut embedded, Seq::new(4), Timestamp::from_nanos(5), 1, 0x1234_5678, &[]);
    let mut payload = vec![9; 16];
    payload.extend_from_slice(&embedded);
    payload.extend(filled_payload(3, 200));
    journal.append(payload);
    // Not committed: a power cut tears it. Find a cut that keeps the embedded bytes
    // but not the whole record.
    let name = segment_name(Seq::new(1));
    let offset = record_spans(&journal.mem.contents(&name).unwrap())[2].0;
    let embedded_at = offset + HEADER_BYTES + 16;
    let seed = (0..1000)
        .find(|&seed| {
            let crashed = journal.mem.crash(seed).contents(&name).unwrap();
            crashed[embedded_at..embedded_at + embedded.len()] == embedded[..]
                && !matches!(record::decode(&crashed[offset..]), Decoded::Valid(..))
        })
        .expect("a crash seed that tears the record after the embedded bytes");
    let crashed = journal.mem.crash(seed);
    let recovered = recover(&crashed, &journal.appended, journal.acknowledged, "torn record with an embedded record");
    assert_eq!(recovered.len(), 2);
}

// ----------------------------------------------------------------------------------
// 5. Opening without repair.
// ----------------------------------------------------------------------------------

/// With `repair = false` opening reports what a repair would do, identically, and
/// changes nothing; the repairing open then does it.
#[test]
fn open_without_repair_reports_but_changes_nothing() {
    let mut torn = 0;
    for scenario in 0..12_u64 {
        let mut rng = ChaCha8Rng::seed_from_u64(scenario + 900);
        let mut journal = Journal::create(Durability::Sync);
        for _ in 0..rng.random_range(1..100) {
            journal.append(random_payload(&mut rng, 2000));
            if rng.random_bool(0.2) {
                journal.commit();
            }
        }
        for seed in 0..8 {
            let crashed = journal.mem.crash(seed);
            let storage = shared(&crashed);
            let before = image(&crashed);
            let looked = open_and_check(&storage, false).unwrap();
            let looked_again = open_and_check(&storage, false).unwrap();
            assert!(image(&crashed) == before, "scenario {scenario} seed {seed}: nothing changed");
            assert_eq!(looked, looked_again);
            torn += u64::from(looked.truncation.is_some());
            let repaired = open_and_check(&storage, true).unwrap();
            assert_eq!(looked, repaired, "scenario {scenario} seed {seed}: the same report");
            assert_truncation_matches(&repaired, &before, &image(&crashed));
        }
    }
    assert!(torn > 10, "{torn} torn tails seen");
    // A whole segment torn before its header: reported, not removed.
    let journal = committed_journal([10]);
    let stray = segment_name(Seq::new(2));
    drop(journal.storage.create(&stray, SEGMENT_BYTES).unwrap());
    let before = image(&journal.mem);
    let report = open_and_check(&journal.storage, false).unwrap();
    assert_eq!(report.truncation.map(|truncation| (truncation.segment, truncation.offset)), Some((stray, 0)));
    assert_eq!(report.segments.len(), 1, "the torn segment is not counted");
    assert!(image(&journal.mem) == before, "and not removed");
}

// ----------------------------------------------------------------------------------
// 6. Property: any workload, any crash, recovers a prefix holding every acknowledged
//    record.
// ----------------------------------------------------------------------------------

fn durability_of(index: u8) -> Durability {
    match index {
        0 | 1 => Durability::Sync,
        2 => Durability::Batch { interval: Duration::ZERO },
        3 => Durability::Batch { interval: NEVER },
        _ => Durability::Async,
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn any_crash_recovers_a_prefix_holding_every_acknowledged_record(
        operations in prop::collection::vec((0..=2000_usize, prop::bool::weighted(0.3)), 1..160),
        durability in 0..5_u8,
        crash_at in any::<prop::sample::Index>(),
        crash_seed in any::<u64>(),
        fill_seed in any::<u64>(),
    ) {
        let durability = durability_of(durability);
        let mut rng = ChaCha8Rng::seed_from_u64(fill_seed);
        let mut journal = Journal::create(durability);
        let crash_at = crash_at.index(operations.len()) + 1;
        let mut crashed = None;
        for (index, &(size, commit)) in operations.iter().enumerate() {
            let mut payload = vec![0; size];
            rng.fill(&mut payload[..]);
            journal.append(payload);
            if commit {
                journal.commit();
            }
            if index + 1 == crash_at {
                crashed = Some((journal.mem.crash(crash_seed), journal.appended.len(), journal.acknowledged));
            }
        }
        let (crashed, appended, acknowledged) = crashed.unwrap();
        let context = format!("{durability:?}, crash after {crash_at} appends, seed {crash_seed}");
        let recovered = recover(&crashed, &journal.appended[..appended], acknowledged, &context);
        let mut again = Journal::reopen(crashed, durability, recovered);
        again.append(vec![7; 33]);
        again.writer.sync().unwrap();
        prop_assert!(payloads(read_all(&again.storage).unwrap(), &context) == again.appended);
    }
}

// ----------------------------------------------------------------------------------
// FileStorage: real files.
// ----------------------------------------------------------------------------------

fn file_journal(dir: &std::path::Path) -> (Arc<dyn Storage>, JournalWriter, OpenReport) {
    let storage: Arc<dyn Storage> = Arc::new(FileStorage::new(dir).unwrap());
    let report = open_and_check(&storage, true).unwrap();
    let writer = JournalWriter::new(storage.clone(), config(Durability::Sync), &report).unwrap();
    (storage, writer, report)
}

/// Real files: the journal rolls into pre-allocated segments, is dropped and reopened
/// (twice), continuing where it stopped.
#[test]
fn file_storage_rolls_and_reopens_after_drop() {
    let dir = tempfile::tempdir().unwrap();
    let mut appended = Vec::new();
    for round in 0..5_u64 {
        let (storage, mut writer, report) = file_journal(dir.path());
        assert_eq!(report.last_seq.map_or(0, Seq::get), appended.len() as u64);
        assert_eq!(report.truncation, None);
        for index in 0..RECORDS_PER_FULL_SEGMENT / 2 + 3 {
            let seq = appended.len() as u64 + 1;
            let payload = filled_payload(round * 1000 + index, PAYLOAD_BYTES_FULL);
            assert_eq!(writer.append(timestamp(seq), KIND, &payload).unwrap(), Seq::new(seq));
            appended.push(payload);
            if index % 4 == 0 {
                writer.commit().unwrap();
            }
        }
        writer.commit().unwrap();
        drop(writer);
        assert!(payloads(read_all(&storage).unwrap(), "files") == appended);
    }
    let mut on_disk: Vec<(String, u64)> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|entry| {
            let entry = entry.unwrap();
            (entry.file_name().to_string_lossy().into_owned(), entry.metadata().unwrap().len())
        })
        .collect();
    on_disk.sort();
    let full = RECORDS_PER_FULL_SEGMENT;
    let expected: Vec<(String, u64)> =
        (0..3).map(|index| (segment_name(Seq::new(full * index + 1)), SEGMENT_BYTES)).collect();
    assert_eq!(on_disk, expected, "segments named by first sequence, each pre-allocated");
    // Reading from any sequence number, across segments.
    let storage: Arc<dyn Storage> = Arc::new(FileStorage::new(dir.path()).unwrap());
    let last = appended.len() as u64;
    for from in [1, 2, full, full + 1, full + 2, full * 2 + 1, last, last + 1, last + 100] {
        let mut seqs = Vec::new();
        let returned = read_from::<JournalError>(&storage, Seq::new(from), |record| {
            assert!(record.payload == appended[record.seq.get() as usize - 1]);
            seqs.push(record.seq.get());
            Ok(())
        })
        .unwrap();
        assert_eq!(seqs, (from..=last).collect::<Vec<_>>(), "read from {from}");
        assert_eq!(returned, (from <= last).then_some(Seq::new(last)));
    }
}

/// Real files: a byte changed on disk in a middle record is refused, naming the file's
/// path, the offset and the sequence; the file is left as it was. Changed in the last
/// record it is a torn tail, repaired.
#[test]
fn file_storage_refuses_a_byte_changed_on_disk() {
    let dir = tempfile::tempdir().unwrap();
    let (storage, mut writer, _) = file_journal(dir.path());
    for seq in 1..=10 {
        writer.append(timestamp(seq), KIND, &filled_payload(seq, 300)).unwrap();
        writer.commit().unwrap();
    }
    drop(writer);
    let name = segment_name(Seq::new(1));
    let path = dir.path().join(&name);
    let original = std::fs::read(&path).unwrap();
    let spans = record_spans(&original);
    let (offset, _, _) = spans[3];
    let mut damaged = original.clone();
    damaged[offset + 200] ^= 0x20;
    std::fs::write(&path, &damaged).unwrap();
    for repair in [false, true] {
        let file = path.display().to_string();
        assert_corrupt(open_and_check(&storage, repair), &file, offset, 4, CHECKSUM_REASONS);
        assert!(std::fs::read(&path).unwrap() == damaged, "the file on disk is untouched");
    }
    // The last record instead: a torn tail.
    let (offset, _, _) = spans[9];
    let mut damaged = original;
    damaged[offset + 200] ^= 0x20;
    std::fs::write(&path, &damaged).unwrap();
    let report = open_and_check(&storage, true).unwrap();
    assert_eq!(report.last_seq, Some(Seq::new(9)));
    let truncation = report.truncation.unwrap();
    assert_eq!((truncation.segment.as_str(), truncation.offset), (name.as_str(), offset as u64));
    let repaired = std::fs::read(&path).unwrap();
    assert!(repaired[..offset] == damaged[..offset] && repaired[offset..].iter().all(|&byte| byte == 0));
    assert_eq!(read_all(&storage).unwrap().len(), 9);
}

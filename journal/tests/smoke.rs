//! Append, reopen and read back, on both storages.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use bourse_core::ids::{Seq, Timestamp};
use bourse_journal::{
    Durability, FileStorage, JournalConfig, JournalWriter, MemStorage, Storage, open_and_check, read_from,
};

fn config() -> JournalConfig {
    JournalConfig { segment_bytes: 128 * 1024, durability: Durability::Sync }
}

fn write_records(storage: &Arc<dyn Storage>, count: u64) -> Vec<Vec<u8>> {
    let report = open_and_check(storage, true).unwrap();
    let mut writer = JournalWriter::new(storage.clone(), config(), &report).unwrap();
    let mut payloads = Vec::new();
    for index in 0..count {
        let payload = vec![(index % 251) as u8; (index % 300) as usize];
        let seq = writer.append(Timestamp::from_nanos(index), 7, &payload).unwrap();
        assert_eq!(seq, Seq::new(report.chain.next_seq.get() + index));
        if index % 10 == 9 {
            writer.commit().unwrap();
        }
        payloads.push(payload);
    }
    writer.commit().unwrap();
    payloads
}

fn read_all(storage: &Arc<dyn Storage>) -> Vec<(u64, Vec<u8>)> {
    let mut records = Vec::new();
    read_from::<bourse_journal::JournalError>(storage, Seq::new(1), |record| {
        records.push((record.seq.get(), record.payload.to_vec()));
        Ok(())
    })
    .unwrap();
    records
}

#[test]
fn records_survive_reopen_across_segments() {
    for storage in [Arc::new(MemStorage::new()) as Arc<dyn Storage>, {
        let dir = tempfile::tempdir().unwrap().keep();
        Arc::new(FileStorage::new(dir).unwrap()) as Arc<dyn Storage>
    }] {
        let payloads = write_records(&storage, 2_000);
        let report = open_and_check(&storage, true).unwrap();
        assert!(report.segments.len() > 1, "rolled over several segments");
        assert_eq!(report.last_seq, Some(Seq::new(2_000)));
        assert!(report.truncation.is_none());
        let more = write_records(&storage, 10);
        let records = read_all(&storage);
        assert_eq!(records.len(), 2_010);
        for (index, (seq, payload)) in records.iter().enumerate() {
            assert_eq!(*seq, index as u64 + 1);
            let expected = if index < 2_000 { &payloads[index] } else { &more[index - 2_000] };
            assert_eq!(payload, expected);
        }
    }
}

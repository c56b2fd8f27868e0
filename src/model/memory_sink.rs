//! [`MemorySink`]: a record sink that keeps every journal record in
//! memory, for tests that crash and recover an inventory without a disk.

use crate::durability::{decode, Record, RecordSink};
use std::collections::BTreeMap;
use std::sync::Mutex;

/// Keeps every record it is handed, by sequence number.
#[derive(Debug, Default)]
pub struct MemorySink {
    records: Mutex<BTreeMap<u64, Vec<u8>>>,
}

impl MemorySink {
    /// An empty sink.
    pub fn new() -> Self {
        MemorySink::default()
    }

    fn records(&self) -> std::sync::MutexGuard<'_, BTreeMap<u64, Vec<u8>>> {
        self.records
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The records numbered `after + 1` up to the first missing number:
    /// what a journal would have written in order.
    pub fn after(&self, after: u64) -> Vec<(u64, Vec<u8>)> {
        let records = self.records();
        records
            .range(after + 1..)
            .zip(after + 1..)
            .take_while(|((&seq, _), next)| seq == *next)
            .map(|((&seq, payload), _)| (seq, payload.clone()))
            .collect()
    }

    /// The records numbered `after + 1` to `upto`, those present.
    pub fn between(&self, after: u64, upto: u64) -> Vec<(u64, Vec<u8>)> {
        self.records()
            .range(after + 1..=upto)
            .map(|(&seq, payload)| (seq, payload.clone()))
            .collect()
    }

    /// The highest number `n` such that every record from the first to
    /// `n` is here (0 when none).
    pub fn watermark(&self) -> u64 {
        let records = self.records();
        let Some((&first, _)) = records.iter().next() else {
            return 0;
        };
        let mut last = first - 1;
        for &seq in records.keys() {
            if seq != last + 1 {
                break;
            }
            last = seq;
        }
        last
    }

    /// Every record, decoded, in order.
    ///
    /// # Panics
    ///
    /// On a record that does not decode (the engine wrote it: a bug).
    pub fn decoded(&self) -> Vec<Record> {
        self.records()
            .iter()
            .map(|(&seq, payload)| decode(seq, payload).expect("the engine's record decodes"))
            .collect()
    }

    /// Drops every record numbered above `seq` (a crash that lost them).
    pub fn truncate_after(&self, seq: u64) {
        let mut records = self.records();
        let _ = records.split_off(&(seq + 1));
    }

    /// How many bytes the payloads take.
    pub fn bytes(&self) -> usize {
        self.records().values().map(Vec::len).sum()
    }
}

impl RecordSink for MemorySink {
    fn append(&self, seq: u64, payload: &[u8]) {
        self.records().insert(seq, payload.to_vec());
    }
}

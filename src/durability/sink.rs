//! What a journaled engine holds: the sequence numbers and the record sink
//! ([`Durable`]), and with feature `journal` the journal as that sink
//! ([`Journaled`]: appends, and in `Sync` mode waits for durability unless
//! the thread is in `Inventory::deferred`). The engine imports these and
//! nothing of the recovery side (`log.rs`, `recover.rs`, `snapshot.rs`,
//! `apply.rs`), which is built on the engine.

use super::steps::{RecordSink, Sequencer};
use std::sync::Arc;
#[cfg(feature = "journal")]
use {
    crate::error::Error,
    crate::journal::{Durability, Journal, JournalError},
    std::cell::Cell,
    std::sync::Mutex,
};

/// What a journaled engine adds to an `Inventory`.
#[derive(Debug)]
pub(crate) struct Durable {
    pub(crate) seqs: Sequencer,
    pub(crate) sink: Arc<dyn RecordSink>,
    /// The sink, when it is the journal (snapshots, backups, history).
    #[cfg(feature = "journal")]
    pub(crate) journal: Option<Arc<Journaled>>,
}

#[cfg(feature = "journal")]
thread_local! {
    /// Set by `Inventory::deferred`: operations on this thread do not wait
    /// for durability (the caller waits for the seq instead).
    pub(crate) static DEFERRED: Cell<bool> = const { Cell::new(false) };
    /// The last sequence number this thread's operations wrote.
    pub(crate) static LAST_SEQ: Cell<u64> = const { Cell::new(0) };
}

/// The journal as the engine's record sink.
#[cfg(feature = "journal")]
#[derive(Debug)]
pub(crate) struct Journaled {
    pub(crate) journal: Journal,
    pub(crate) durability: Durability,
    /// One snapshot or backup at a time, and none while `history` or
    /// `verify` walks the segments a snapshot moves or deletes.
    pub(crate) snapshots: Mutex<()>,
}

#[cfg(feature = "journal")]
impl Journaled {
    /// Holds off snapshots (a panic while it was held changes nothing it
    /// guards: it guards no data).
    pub(crate) fn snapshot_lock(&self) -> std::sync::MutexGuard<'_, ()> {
        self.snapshots
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[cfg(feature = "journal")]
pub(crate) fn not_durable(error: &JournalError) -> Error {
    Error::NotDurable {
        reason: error.to_string(),
    }
}

#[cfg(feature = "journal")]
impl RecordSink for Journaled {
    fn append(&self, seq: u64, payload: &[u8]) {
        self.journal.append(seq, payload);
    }

    fn acknowledge(&self, seq: u64) -> Result<(), Error> {
        LAST_SEQ.with(|last| last.set(seq));
        if self.durability == Durability::Sync && !DEFERRED.with(Cell::get) {
            // After every lock is released: the op and everything it could
            // have observed (all numbered below it) are durable.
            self.journal.wait_durable(seq).map_err(|e| not_durable(&e))
        } else {
            // Not waiting, but not acknowledging what a failed journal
            // drops either: the failure is told at the next change, in
            // every mode, not first at a `sync()` or a snapshot.
            match self.journal.error() {
                Some(error) => Err(not_durable(&error)),
                None => Ok(()),
            }
        }
    }
}

#[cfg(all(test, feature = "journal", not(omnistock_loom)))]
mod tests {
    use super::*;
    use crate::journal::JournalOptions;

    fn journaled(durability: Durability, name: &str) -> (Journaled, std::path::PathBuf) {
        let dir =
            std::env::temp_dir().join(format!("omnistock-sink-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let options = JournalOptions {
            durability,
            ..JournalOptions::default()
        };
        let (journal, _) = Journal::open(&dir, options).unwrap();
        let sink = Journaled {
            journal,
            durability,
            snapshots: Mutex::new(()),
        };
        (sink, dir)
    }

    #[test]
    fn a_failed_journal_is_told_at_the_next_change_in_every_mode() {
        let modes = [
            (Durability::Batch { every_ms: 5 }, "batch"),
            (Durability::None, "none"),
        ];
        for (durability, name) in modes {
            let (sink, dir) = journaled(durability, name);
            sink.append(1, &[1]);
            assert_eq!(sink.acknowledge(1), Ok(()));
            // A seq appended twice: the writer's sticky error.
            sink.append(1, &[1]);
            assert!(sink.journal.error().is_some());
            let answer = sink.acknowledge(2);
            assert!(
                matches!(answer, Err(Error::NotDurable { .. })),
                "{answer:?}"
            );
            drop(sink);
            std::fs::remove_dir_all(&dir).unwrap();
        }
        // Deferred Sync does not wait, and is told too.
        let (sink, dir) = journaled(Durability::Sync, "deferred");
        sink.append(1, &[1]);
        sink.append(1, &[1]);
        DEFERRED.with(|deferred| deferred.set(true));
        let answer = sink.acknowledge(1);
        DEFERRED.with(|deferred| deferred.set(false));
        assert!(
            matches!(answer, Err(Error::NotDurable { .. })),
            "{answer:?}"
        );
        drop(sink);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

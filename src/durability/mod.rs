//! Durability on the engine's side: the records every mutating operation
//! writes (`record.rs`), the sequence numbers that order them and the
//! per-operation log that gathers them (`steps.rs`), and, with feature
//! `journal`, the wiring to the journal (`log.rs`), snapshots
//! (`snapshot.rs`) and recovery (`recover.rs`).
//!
//! The invariant everything here keeps: **a step's sequence number is taken
//! while the step holds everything it changes** (the claims of its cells,
//! and its reservation shard's lock for reservation state), before any
//! other thread can see the change. Whoever sees the change, or anything
//! that depends on it, takes its own number later, so the journal's order
//! is one in which the engine could have run, and every prefix of it is a
//! state the engine could have reached. See docs/DURABILITY.md.

mod api;
pub(crate) mod apply;
#[cfg(feature = "journal")]
pub(crate) mod log;
pub(crate) mod record;
pub(crate) mod recover;
pub(crate) mod snapshot;
pub(crate) mod steps;

#[cfg(feature = "journal")]
pub use crate::journal::{Durability, DurableFuture, JournalOptions};
#[cfg(feature = "journal")]
pub use log::{verify, RecoveryReport};
pub use record::{decode, Change, DecodeError, Note, Op, Record};
pub use steps::RecordSink;

use crate::error::BuildError;
use std::fmt;
use std::sync::Arc;
use steps::Sequencer;

/// What a journaled engine adds to an `Inventory`.
#[derive(Debug)]
pub(crate) struct Durable {
    pub(crate) seqs: Sequencer,
    pub(crate) sink: Arc<dyn RecordSink>,
    /// The sink, when it is the journal (snapshots, backups, history).
    #[cfg(feature = "journal")]
    pub(crate) journal: Option<Arc<log::Journaled>>,
}

/// Why an inventory could not be recovered. Nothing was changed on disk
/// beyond truncating a torn tail (which the report of a successful
/// recovery names).
#[derive(Debug)]
#[non_exhaustive]
pub enum RecoveryError {
    /// A snapshot that was to be loaded is damaged.
    Snapshot {
        /// What is wrong with it.
        reason: String,
    },
    /// A record does not decode, or does not fit the state before it
    /// (a journal that was not written by this engine, or was edited).
    Record {
        /// The record.
        seq: u64,
        /// What is wrong with it.
        reason: String,
    },
    /// A sequence number is missing: the records are not dense.
    Gap {
        /// The number that should have come next.
        expected: u64,
        /// The number that came.
        found: u64,
    },
    /// The inventory's settings or memory.
    Build(BuildError),
    /// The journal could not be read or opened.
    #[cfg(feature = "journal")]
    Journal(crate::journal::JournalError),
    /// A file could not be read or written.
    Io {
        /// The file.
        path: std::path::PathBuf,
        /// What the system said.
        source: std::io::Error,
    },
}

impl fmt::Display for RecoveryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RecoveryError::Snapshot { reason } => write!(f, "damaged snapshot: {reason}"),
            RecoveryError::Record { seq, reason } => write!(f, "record {seq}: {reason}"),
            RecoveryError::Gap { expected, found } => {
                write!(f, "record {expected} is missing (found {found} after it)")
            }
            RecoveryError::Build(error) => write!(f, "{error}"),
            #[cfg(feature = "journal")]
            RecoveryError::Journal(error) => write!(f, "journal: {error}"),
            RecoveryError::Io { path, source } => write!(f, "{}: {source}", path.display()),
        }
    }
}

impl std::error::Error for RecoveryError {}

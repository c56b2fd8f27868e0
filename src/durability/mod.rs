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
mod error;
#[cfg(feature = "journal")]
pub(crate) mod log;
pub(crate) mod record;
pub(crate) mod recover;
pub(crate) mod sink;
pub(crate) mod snapshot;
pub(crate) mod steps;

#[cfg(feature = "journal")]
pub use crate::journal::{Durability, DurableFuture, JournalOptions};
pub use error::RecoveryError;
#[cfg(feature = "journal")]
pub use log::{verify, RecoveryReport};
pub use record::{decode, Change, DecodeError, Note, Op, Record};
pub use steps::RecordSink;

//! Effect records: what a successful mutation changed, as data. The journal
//! and alerting build on them. Item changes are deltas, which commute, so a
//! consumer can apply effects written by concurrent operations in any order
//! and reach the same stock. Records are only built when an observer is
//! installed: an engine without one pays a single branch per operation.

use crate::durability::steps::{Sequencer, Steps};
use crate::error::Error;
use crate::types::{Channel, ItemKey, Line, ReservationId, ReservationState};
use serde::{Deserialize, Serialize};

/// One change made by a successful operation (or by expiry).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Effect {
    /// An item came into existence with an all-zero cell.
    ItemCreated {
        /// The item.
        item: ItemKey,
    },
    /// An item's counters moved by these amounts. A cycle count is recorded
    /// as the delta it caused.
    Stock {
        /// The item.
        item: ItemKey,
        /// Change of `on_hand`.
        on_hand: i64,
        /// Change of `reserved`.
        reserved: i64,
    },
    /// An item's safety stock moved by this amount.
    SafetyStock {
        /// The item.
        item: ItemKey,
        /// Change of `safety_stock`.
        delta: i64,
    },
    /// A reservation was made (its `Stock` effects come with it).
    Reserved {
        /// The reservation.
        id: ReservationId,
        /// Its channel.
        channel: Channel,
        /// Its lines.
        lines: Vec<Line>,
        /// Its deadline.
        expires_at_ms: u64,
    },
    /// A pending reservation got a new deadline.
    Extended {
        /// The reservation.
        id: ReservationId,
        /// The new deadline.
        expires_at_ms: u64,
    },
    /// A reservation reached a terminal state at `at_ms` (its `Stock`
    /// effects come with it).
    Finished {
        /// The reservation.
        id: ReservationId,
        /// Committed, released or expired.
        state: ReservationState,
        /// The time it was processed.
        at_ms: u64,
    },
    /// A terminal reservation left the idempotency window.
    Forgotten {
        /// The reservation.
        id: ReservationId,
    },
}

/// Receives the effects of every successful mutation, one call per operation
/// (an operation's effects are all-or-nothing, so a journal can write them as
/// one record). Called on the thread that made the change, after the change
/// is visible and after the operation released its locks; calls from
/// different threads may interleave, and two operations on one reservation
/// may reach the observer in either order (a journal orders its records by
/// sequence number instead). Keep it quick:
/// hand the records to a channel or buffer rather than doing I/O inline.
pub trait EffectObserver: Send + Sync {
    /// The effects of one operation, in the order they were made.
    fn on_effects(&self, effects: &[Effect]);
}

impl<F: Fn(&[Effect]) + Send + Sync> EffectObserver for F {
    fn on_effects(&self, effects: &[Effect]) {
        self(effects)
    }
}

/// The effects of one operation, collected only when someone listens, and,
/// with a journal, its journal records (see `src/durability/steps.rs`).
#[derive(Debug)]
pub(crate) struct EffectLog<'a> {
    records: Option<Vec<Effect>>,
    pub(crate) steps: Option<Steps<'a>>,
}

impl<'a> EffectLog<'a> {
    pub(crate) fn new(listening: bool, steps: Option<Steps<'a>>) -> Self {
        EffectLog {
            records: listening.then(Vec::new),
            steps,
        }
    }

    /// Records the effect `make` builds; `make` never runs when no one listens.
    pub(crate) fn push(&mut self, make: impl FnOnce() -> Effect) {
        if let Some(records) = &mut self.records {
            records.push(make());
        }
    }

    /// The sequence numbers of a journaled inventory, `None` without one.
    #[inline]
    pub(crate) fn seqs(&self) -> Option<&'a Sequencer> {
        self.steps.as_ref().map(|steps| steps.seqs)
    }

    /// Writes into the journal record being built, if journaled.
    #[inline]
    pub(crate) fn journal(&mut self, write: impl FnOnce(&mut Steps<'a>)) {
        if let Some(steps) = &mut self.steps {
            write(steps);
        }
    }

    /// Hands what was recorded to `observer` and the journal and empties
    /// the log. Called after every lock is released.
    pub(crate) fn flush(&mut self, observer: Option<&dyn EffectObserver>) -> Result<(), Error> {
        if let (Some(records), Some(observer)) = (&mut self.records, observer) {
            if !records.is_empty() {
                observer.on_effects(records);
                records.clear();
            }
        }
        match &mut self.steps {
            Some(steps) => steps.flush(),
            None => Ok(()),
        }
    }
}

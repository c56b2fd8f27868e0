//! Effect records: what a successful mutation changed, as data. The journal
//! and alerting build on them. Item changes are deltas, which commute, so a
//! consumer can apply effects written by concurrent operations in any order
//! and reach the same stock. Records are only built when an observer is
//! installed: an engine without one pays a single branch per operation.
//!
//! The log of one operation also carries two things the engine settles
//! before it publishes: the items whose cells changed, which it reads for
//! low-stock alerts (only kept while some item has a reorder point), and
//! the units finished campaign reservations give back to their campaign's
//! counters.

use crate::durability::steps::{Sequencer, Steps};
use crate::error::Error;
use crate::types::{
    CampaignId, Channel, CustomerId, ItemKey, Line, ReservationId, ReservationState,
};
use serde::{Deserialize, Serialize};
use std::mem::ManuallyDrop;

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
        /// The campaign it counts against, if any.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        campaign: Option<CampaignId>,
        /// The customer it counts against in that campaign, if any.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        customer: Option<CustomerId>,
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
    /// A campaign was defined, or redefined with new limits (its counted
    /// units stay counted).
    CampaignDefined {
        /// The campaign.
        campaign: CampaignId,
        /// The item it sells.
        item: ItemKey,
        /// Units it may count in all.
        quota: u32,
        /// Units one customer may count.
        per_customer: u32,
    },
    /// A campaign ended: its counters are gone; its reservations stay as
    /// they are and give nothing back to it.
    CampaignEnded {
        /// The campaign.
        campaign: CampaignId,
    },
    /// An item's reorder point was set (0: alerts off).
    ReorderPoint {
        /// The item.
        item: ItemKey,
        /// The new reorder point.
        reorder_point: u32,
    },
}

/// Units a finished campaign reservation gives back to its campaign's
/// counters: the campaign's table slot and generation (so that units of an
/// ended campaign never reach a later one of the same id), the customer,
/// and how many.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct CampaignUnits {
    pub(crate) campaign: CampaignId,
    pub(crate) customer: CustomerId,
    pub(crate) slot: u32,
    pub(crate) generation: u32,
    pub(crate) qty: u32,
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
    /// Dropped by hand (see `Drop`): an operation's log is made and dropped
    /// on every call, and the compiler's drop of two owning fields is an
    /// out-of-line call where one inlined test of both suffices.
    records: ManuallyDrop<Option<Vec<Effect>>>,
    /// Note the items whose cell or reorder point changed (alerts are on).
    alerting: bool,
    /// What waits to be settled, allocated only when there is something.
    settle: ManuallyDrop<Option<Box<Settlement>>>,
    /// The journal records of a journaled inventory.
    pub(crate) steps: Option<Steps<'a>>,
}

impl Drop for EffectLog<'_> {
    #[inline]
    fn drop(&mut self) {
        if self.records.is_some() || self.settle.is_some() {
            self.drop_contents();
        }
    }
}

/// What an operation leaves for the engine to settle before it publishes.
#[derive(Debug, Default)]
pub(crate) struct Settlement {
    /// The items whose cell or reorder point changed.
    pub(crate) touched: Vec<ItemKey>,
    /// Units to give back to campaigns.
    pub(crate) given_back: Vec<CampaignUnits>,
}

impl<'a> EffectLog<'a> {
    /// A log that records effects when `listening`, the items changed
    /// when `alerting`, and journal records into `steps`.
    #[inline]
    pub(crate) fn new(listening: bool, alerting: bool, steps: Option<Steps<'a>>) -> Self {
        EffectLog {
            records: ManuallyDrop::new(listening.then(Vec::new)),
            alerting,
            settle: ManuallyDrop::new(None),
            steps,
        }
    }

    /// Drops what the log owns, leaving both fields `None` (so that
    /// nothing is left for the fields' own drop, which never runs).
    #[cold]
    #[inline(never)]
    fn drop_contents(&mut self) {
        drop(self.records.take());
        drop(self.settle.take());
    }

    /// Records the effect `make` builds; `make` never runs when no one
    /// listens and no alert is watched (one branch, inlined).
    #[inline]
    pub(crate) fn push(&mut self, make: impl FnOnce() -> Effect) {
        if self.wants_effects() {
            self.record(make());
        }
    }

    /// Whether [`push`](Self::push) records anything: a caller that walks
    /// a reservation's lines only to push their effects skips the walk.
    #[inline]
    pub(crate) fn wants_effects(&self) -> bool {
        self.records.is_some() || self.alerting
    }

    /// [`push`](Self::push)'s work, out of line.
    #[inline(never)]
    fn record(&mut self, effect: Effect) {
        if self.alerting {
            if let Effect::Stock { item, .. }
            | Effect::SafetyStock { item, .. }
            | Effect::ItemCreated { item }
            | Effect::ReorderPoint { item, .. } = &effect
            {
                let touched = &mut self.settle.get_or_insert_with(Box::default).touched;
                if !touched.contains(item) {
                    touched.push(*item);
                }
            }
        }
        if let Some(records) = &mut *self.records {
            records.push(effect);
        }
    }

    /// Whether campaign units or changed items wait to be settled.
    #[inline]
    pub(crate) fn needs_settling(&self) -> bool {
        self.settle.is_some()
    }

    /// Notes units a finished campaign reservation gives back.
    pub(crate) fn give_back(&mut self, units: CampaignUnits) {
        self.settle
            .get_or_insert_with(Box::default)
            .given_back
            .push(units);
    }

    /// Whether finished campaign reservations' units wait to be given
    /// back.
    #[inline]
    pub(crate) fn gives_back(&self) -> bool {
        self.settle
            .as_ref()
            .is_some_and(|settle| !settle.given_back.is_empty())
    }

    /// The campaign units waiting to be given back, leaving the changed
    /// items (for the alerts, evaluated after every lock is released).
    pub(crate) fn take_given_back(&mut self) -> Vec<CampaignUnits> {
        match &mut *self.settle {
            Some(settle) => std::mem::take(&mut settle.given_back),
            None => Vec::new(),
        }
    }

    /// What waits to be settled, leaving nothing.
    pub(crate) fn take_settlement(&mut self) -> Settlement {
        self.settle.take().map(|settle| *settle).unwrap_or_default()
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
    #[inline]
    pub(crate) fn flush(&mut self, observer: Option<&dyn EffectObserver>) -> Result<(), Error> {
        if let (Some(records), Some(observer)) = (&mut *self.records, observer) {
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

//! The deadline index that drives `expire()`. Each reservation shard keeps
//! its pending reservations ordered by deadline and its terminal ones in the
//! order they finished, so expiring or forgetting costs O(log n) per
//! reservation processed and nothing per reservation left alone. It orders
//! slab positions (see `slab.rs`), not ids: the reaper goes from a due entry
//! straight to the record, without looking the id up, and an entry costs
//! 16 bytes. The records and their state live in the reservation shard.

use std::collections::{BTreeSet, VecDeque};

/// Deadlines of pending reservations and finish times of terminal ones.
#[derive(Debug, Default)]
pub(crate) struct DeadlineIndex {
    /// `(deadline, position)` of every pending reservation.
    pending: BTreeSet<(u64, u32)>,
    /// `(finished_at, position)` of every remembered terminal reservation, oldest
    /// first. Finish times are read under the shard lock from a clock that
    /// never goes backwards, so pushing at the back keeps the order.
    finished: VecDeque<(u64, u32)>,
}

impl DeadlineIndex {
    pub(crate) fn schedule(&mut self, deadline: u64, position: u32) {
        self.pending.insert((deadline, position));
    }

    pub(crate) fn unschedule(&mut self, deadline: u64, position: u32) {
        let removed = self.pending.remove(&(deadline, position));
        debug_assert!(
            removed,
            "pending reservation at {position} was not scheduled"
        );
    }

    /// The earliest pending `(deadline, position)` whose deadline is at or
    /// before `now`. It stays filed until the reservation is unscheduled.
    pub(crate) fn first_due(&self, now: u64) -> Option<(u64, u32)> {
        self.pending
            .first()
            .copied()
            .filter(|&(deadline, _)| deadline <= now)
    }

    pub(crate) fn finished(&mut self, at: u64, position: u32) {
        debug_assert!(self.finished.back().map_or(true, |&(last, _)| last <= at));
        self.finished.push_back((at, position));
    }

    /// Removes and returns the position of the oldest terminal reservation
    /// that has been terminal for at least `retention` at `now`.
    pub(crate) fn pop_forgettable(&mut self, now: u64, retention: u64) -> Option<u32> {
        match self.finished.front() {
            Some(&(at, _)) if now.saturating_sub(at) >= retention => {
                self.finished.pop_front().map(|(_, position)| position)
            }
            _ => None,
        }
    }

    pub(crate) fn pending_len(&self) -> usize {
        self.pending.len()
    }
}

#[cfg(all(test, not(omnistock_loom)))]
mod tests {
    use super::*;

    #[test]
    fn finds_only_what_is_due_in_deadline_order() {
        let mut index = DeadlineIndex::default();
        index.schedule(30, 1);
        index.schedule(10, 2);
        index.schedule(20, 3);
        index.unschedule(20, 3);
        assert_eq!(index.first_due(5), None);
        assert_eq!(index.first_due(30), Some((10, 2)));
        index.unschedule(10, 2);
        assert_eq!(index.first_due(30), Some((30, 1)));
        index.unschedule(30, 1);
        assert_eq!(index.first_due(u64::MAX), None);
    }

    #[test]
    fn forgets_after_retention_only() {
        let mut index = DeadlineIndex::default();
        index.finished(100, 7);
        index.finished(150, 8);
        assert_eq!(index.pop_forgettable(199, 100), None);
        assert_eq!(index.pop_forgettable(200, 100), Some(7));
        assert_eq!(index.pop_forgettable(200, 100), None);
    }
}

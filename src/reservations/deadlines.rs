//! The deadline index that drives `expire()`. Each reservation shard keeps
//! its pending reservations' deadlines and its terminal ones in the order
//! they finished, so expiring or forgetting costs O(1) or O(log n) per
//! reservation processed and nothing per reservation left alone. It files
//! slab positions (see `slab.rs`), not ids: the reaper goes from a due entry
//! straight to the record, without looking the id up, and a deadline entry
//! costs 16 bytes (a terminal one 24, see below). The records and their
//! state live in the reservation shard.
//!
//! Deadlines are filed in two lanes. Most arrive in order: one ttl per
//! shop and a clock that never goes backwards make each shard's deadlines
//! nondecreasing, and those go to the back of a queue, O(1). A reservation
//! that finishes or moves its deadline takes its entry out if it is still
//! the newest (a cart committed or released before its shard filed another
//! deadline: with 256 shards, most carts), and otherwise leaves it behind,
//! stale, instead of searching for it; the reaper drops stale entries when
//! they reach the front (an entry is live only while its record is pending
//! with that very deadline), which costs it a read of a record last touched
//! a ttl ago. A deadline earlier than the queue's last goes
//! to a sorted set and is removed exactly. A stale entry costs its 16 bytes
//! until its deadline passes and `expire()` runs.
//!
//! A terminal reservation's entry holds what forgetting it needs besides
//! its position (its id and where its extra lines are), so that the reaper
//! forgets it without reading its record, which nothing has touched for a
//! retention period.
//!
//! Invariants: an in-order queue entry is live only while its record is
//! pending with that very deadline; the finished queue is in the order of
//! terminal times, so forgetting pops from its front.

use crate::reservations::extra_lines::MoreLines;
use std::collections::{BTreeSet, VecDeque};

/// A terminal reservation waiting to be forgotten.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Finished {
    /// When it reached its terminal state.
    pub(crate) at_ms: u64,
    /// Its id, for the id table and the id filter.
    pub(crate) id: u64,
    /// Its slab position.
    pub(crate) position: u32,
    /// Where its lines after the first are, to free them.
    pub(crate) more: MoreLines,
}

/// Where a pending reservation's deadline is filed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Filed {
    /// In the in-order queue; left there, stale, when it stops applying.
    InOrder,
    /// In the sorted set; removed when it stops applying.
    Sorted,
}

/// Deadlines of pending reservations and finish times of terminal ones.
#[derive(Debug, Default)]
pub(crate) struct DeadlineIndex {
    /// `(deadline, position)` in nondecreasing deadline order; entries may
    /// be stale.
    in_order: VecDeque<(u64, u32)>,
    /// `(deadline, position)` of pending reservations whose deadline came
    /// before the in-order queue's last; exact.
    sorted: BTreeSet<(u64, u32)>,
    /// Every remembered terminal reservation, oldest first. Finish times
    /// are read under the shard lock from a clock that never goes
    /// backwards, so pushing at the back keeps the order.
    finished: VecDeque<Finished>,
}

impl DeadlineIndex {
    /// Files a pending reservation's deadline; returns where, for
    /// [`unschedule`](Self::unschedule).
    pub(crate) fn schedule(&mut self, deadline: u64, position: u32) -> Filed {
        if self
            .in_order
            .back()
            .map_or(true, |&(last, _)| last <= deadline)
        {
            self.in_order.push_back((deadline, position));
            Filed::InOrder
        } else {
            self.sorted.insert((deadline, position));
            Filed::Sorted
        }
    }

    /// The reservation at `position` no longer waits for `deadline`.
    pub(crate) fn unschedule(&mut self, deadline: u64, position: u32, filed: Filed) {
        match filed {
            // The newest entry (a cart committed or released before its
            // shard filed another deadline) goes now; any other is left
            // stale, and next_due drops it at the front.
            Filed::InOrder => {
                if self.in_order.back() == Some(&(deadline, position)) {
                    self.in_order.pop_back();
                }
            }
            Filed::Sorted => {
                let removed = self.sorted.remove(&(deadline, position));
                debug_assert!(
                    removed,
                    "pending reservation at {position} was not scheduled"
                );
            }
        }
    }

    /// The earliest filed `(deadline, position)` due at `now`, possibly
    /// stale: the caller checks it against the record. An in-order entry is
    /// taken out here; a sorted one stays filed until it is unscheduled (or
    /// [`drop_sorted`](Self::drop_sorted)).
    pub(crate) fn next_due(&mut self, now: u64) -> Option<(u64, u32)> {
        let due = |&(deadline, _): &(u64, u32)| deadline <= now;
        let sorted = self.sorted.first().copied().filter(due);
        match (self.in_order.front().copied().filter(due), sorted) {
            (Some(queued), Some(sorted)) if sorted < queued => Some(sorted),
            (Some(queued), _) => {
                self.in_order.pop_front();
                Some(queued)
            }
            (None, sorted) => sorted,
        }
    }

    /// The in-order entries due at `now`, earliest first, possibly stale;
    /// nothing is taken out.
    pub(crate) fn due_in_order(&self, now: u64) -> impl Iterator<Item = (u64, u32)> + '_ {
        self.in_order
            .iter()
            .copied()
            .take_while(move |&(deadline, _)| deadline <= now)
    }

    /// Removes a sorted entry if it is there (no-op otherwise).
    pub(crate) fn drop_sorted(&mut self, deadline: u64, position: u32) {
        self.sorted.remove(&(deadline, position));
    }

    /// Files a reservation that has just reached its terminal state.
    pub(crate) fn finished(&mut self, finished: Finished) {
        debug_assert!(self
            .finished
            .back()
            .map_or(true, |last| last.at_ms <= finished.at_ms));
        self.finished.push_back(finished);
    }

    /// Removes and returns the oldest terminal reservation that has been
    /// terminal for at least `retention` at `now`.
    pub(crate) fn pop_forgettable(&mut self, now: u64, retention: u64) -> Option<Finished> {
        match self.finished.front() {
            Some(oldest) if now.saturating_sub(oldest.at_ms) >= retention => {
                self.finished.pop_front()
            }
            _ => None,
        }
    }

    /// The oldest terminal reservation still remembered.
    pub(crate) fn oldest_finished(&self) -> Option<&Finished> {
        self.finished.front()
    }

    /// When the newest terminal reservation finished.
    pub(crate) fn newest_finished_at(&self) -> Option<u64> {
        self.finished.back().map(|newest| newest.at_ms)
    }

    /// Every terminal reservation still remembered, oldest first.
    pub(crate) fn finished_in_order(&self) -> impl Iterator<Item = &Finished> + '_ {
        self.finished.iter()
    }

    /// Terminal reservations still remembered.
    pub(crate) fn finished_len(&self) -> usize {
        self.finished.len()
    }

    /// Renames every filed position through `moved_to` (a compaction of
    /// the slab): in-order entries whose position is free (`None`) are
    /// stale and go; every other entry names a remembered record. A
    /// terminal entry also takes the extra lines `more_at` gives for its new
    /// position (the compaction moved those too). The queues are rebuilt at
    /// the size they need.
    pub(crate) fn remap(
        &mut self,
        moved_to: impl Fn(u32) -> Option<u32>,
        more_at: impl Fn(u32) -> MoreLines,
    ) {
        self.in_order = self
            .in_order
            .iter()
            .filter_map(|&(deadline, at)| moved_to(at).map(|to| (deadline, to)))
            .collect();
        let remembered = |at| {
            let to = moved_to(at);
            debug_assert!(to.is_some(), "position {at} is filed but free");
            to.unwrap_or(at)
        };
        self.sorted = self
            .sorted
            .iter()
            .map(|&(deadline, at)| (deadline, remembered(at)))
            .collect();
        self.finished = self
            .finished
            .iter()
            .map(|&finished| {
                let position = remembered(finished.position);
                Finished {
                    position,
                    more: more_at(position),
                    ..finished
                }
            })
            .collect();
    }
}

#[cfg(all(test, not(omnistock_loom)))]
mod tests {
    use super::*;

    #[test]
    fn finds_what_is_due_in_deadline_order_across_both_lanes() {
        let mut index = DeadlineIndex::default();
        assert_eq!(index.schedule(20, 1), Filed::InOrder);
        assert_eq!(index.schedule(30, 2), Filed::InOrder);
        assert_eq!(index.schedule(10, 3), Filed::Sorted);
        assert_eq!(index.schedule(25, 4), Filed::Sorted);
        assert_eq!(index.schedule(30, 5), Filed::InOrder);
        index.unschedule(25, 4, Filed::Sorted);
        assert_eq!(index.next_due(5), None);
        // A sorted entry stays until unscheduled.
        assert_eq!(index.next_due(30), Some((10, 3)));
        assert_eq!(index.next_due(30), Some((10, 3)));
        index.unschedule(10, 3, Filed::Sorted);
        assert_eq!(index.next_due(30), Some((20, 1)));
        assert_eq!(index.next_due(29), None);
        assert_eq!(index.next_due(30), Some((30, 2)));
        assert_eq!(index.next_due(30), Some((30, 5)));
        assert_eq!(index.next_due(u64::MAX), None);
    }

    #[test]
    fn unscheduled_in_order_entries_go_if_newest_else_come_back_stale() {
        let mut index = DeadlineIndex::default();
        index.schedule(10, 1);
        index.schedule(10, 2);
        // Not the newest: left stale.
        index.unschedule(10, 1, Filed::InOrder);
        // The newest: taken out.
        index.unschedule(10, 2, Filed::InOrder);
        assert_eq!(index.next_due(10), Some((10, 1)), "the caller checks");
        assert_eq!(index.next_due(10), None);
        // A later entry of the same place is not mistaken for it.
        index.schedule(20, 3);
        index.schedule(30, 3);
        index.unschedule(20, 3, Filed::InOrder);
        assert_eq!(index.next_due(30), Some((20, 3)));
        assert_eq!(index.next_due(30), Some((30, 3)));
        assert_eq!(index.next_due(30), None);
        index.schedule(5, 2);
        index.drop_sorted(5, 2);
        assert_eq!(index.next_due(10), Some((5, 2)), "in order: not sorted");
    }

    fn finished(at_ms: u64, position: u32) -> Finished {
        Finished {
            at_ms,
            id: u64::from(position) + 1000,
            position,
            more: MoreLines::NONE,
        }
    }

    #[test]
    fn forgets_after_retention_only() {
        let mut index = DeadlineIndex::default();
        index.finished(finished(100, 7));
        index.finished(finished(150, 8));
        assert_eq!(index.finished_len(), 2);
        assert_eq!(index.pop_forgettable(199, 100), None);
        assert_eq!(index.pop_forgettable(200, 100), Some(finished(100, 7)));
        assert_eq!(index.pop_forgettable(200, 100), None);
        assert_eq!(index.finished_len(), 1);
    }
}

//! A lock-free "this id is certainly unknown" test for one reservation
//! shard, so a reserve that is about to be refused (a sold-out item) can
//! answer without taking the shard lock: on a sold-out flash-sale SKU a
//! refused reserve then reads shared memory and writes none.
//!
//! It is a counting Bloom filter over the ids the shard records, plus a
//! sequence counter that is odd while the shard forgets ids. The writers
//! hold the shard lock; readers hold nothing. The filter only ever answers
//! "certainly absent" or "maybe present"; a full or saturated filter just
//! sends every request down the locked path.

use crate::id_hash;
use crate::sync::{AtomicU64, AtomicU8, Ordering};

/// Counters per shard, at most: 1 MiB a shard, 256 MiB over 256 shards,
/// enough for about 33 million remembered reservations. Under loom every
/// atomic is tracked: keep it tiny.
#[cfg(not(omnistock_loom))]
const MAX_COUNTERS: usize = 1 << 20;
#[cfg(omnistock_loom)]
const MAX_COUNTERS: usize = 8;
/// Counters per shard, at least: what a flash sale on a handful of items
/// needs to keep refusing without the lock (128 KiB over 256 shards).
#[cfg(not(omnistock_loom))]
const MIN_COUNTERS: usize = 512;
#[cfg(omnistock_loom)]
const MIN_COUNTERS: usize = 8;
/// Counters per shard when sized from the expected items alone: 8 bytes
/// per expected item over 256 shards, at most 2 MiB in all.
const COUNTERS_PER_ITEMS: usize = 32;
#[cfg(not(omnistock_loom))]
const MAX_COUNTERS_FROM_ITEMS: usize = 8192;
#[cfg(omnistock_loom)]
const MAX_COUNTERS_FROM_ITEMS: usize = 8;
/// Counters per expected reservation. With two counters per id, a filter
/// holding one id per 8 counters proves about 95 % of unknown ids unknown
/// (each counter is zero with odds e^-1/4); one per 4 counters, about 85 %.
pub(crate) const COUNTERS_PER_RESERVATION: usize = 8;

/// Counters per shard for an inventory built for `expected_items`, and for
/// `expected_reservations` remembered at once if the caller said so, over
/// `shards` shards (before the filter's own clamping).
pub(crate) fn counters_per_shard(
    expected_items: usize,
    expected_reservations: Option<usize>,
    shards: usize,
) -> usize {
    match expected_reservations {
        Some(reservations) => reservations.saturating_mul(COUNTERS_PER_RESERVATION) / shards,
        None => (expected_items / COUNTERS_PER_ITEMS).min(MAX_COUNTERS_FROM_ITEMS),
    }
}

/// A counter that reaches this stays there (it can no longer prove absence,
/// which is always safe).
const STUCK: u8 = u8::MAX;

#[derive(Debug)]
pub(crate) struct IdFilter {
    counters: Box<[AtomicU8]>,
    /// Even while no forgetting is under way; each forgetting pass makes it
    /// odd before its first removal and even again after its last.
    forgetting: AtomicU64,
}

/// The two counters of `id` among `len`: two places drawn from one
/// well-mixed hash of the id's run, each moved on by the id's place in the
/// run, so the 16 ids of a run count in 16 neighbouring counters (see
/// `id_hash`).
fn positions(id: u64, len: usize) -> [usize; 2] {
    let mut x = id_hash::run(id) ^ 0x243F_6A88_85A3_08D3;
    x = (x ^ (x >> 31)).wrapping_mul(0x7FB5_D329_728E_A185);
    x = (x ^ (x >> 27)).wrapping_mul(0x81DA_DEF4_BC2D_D44D);
    x ^= x >> 33;
    let place = id_hash::place_in_run(id) as usize;
    [
        ((x as u32) as usize + place) % len,
        ((x >> 32) as usize + place) % len,
    ]
}

impl Default for IdFilter {
    fn default() -> Self {
        IdFilter::with_counters(MIN_COUNTERS)
    }
}

impl IdFilter {
    /// A filter of `counters` counters (clamped to a sane range). More
    /// counters keep it useful with more ids retained; each costs a byte and
    /// is zeroed when the inventory is built.
    pub(crate) fn with_counters(counters: usize) -> Self {
        let counters = counters.clamp(MIN_COUNTERS, MAX_COUNTERS);
        IdFilter {
            counters: (0..counters).map(|_| AtomicU8::new(0)).collect(),
            forgetting: AtomicU64::new(0),
        }
    }

    /// Counts `id` in. Call under the shard lock *before* the id becomes
    /// visible in the shard's records, and before its reservation holds any
    /// unit (a reader that sees the hold must also see the count).
    pub(crate) fn add(&self, id: u64) {
        for position in positions(id, self.counters.len()) {
            let counter = &self.counters[position];
            let value = counter.load(Ordering::Relaxed);
            if value != STUCK {
                counter.store(value + 1, Ordering::SeqCst);
            }
        }
    }

    /// Counts `id` out. Call under the shard lock: inside a forgetting pass
    /// *after* the id left the shard's records, or when a reservation that
    /// was counted in failed (it was never recorded).
    pub(crate) fn remove(&self, id: u64) {
        for position in positions(id, self.counters.len()) {
            let counter = &self.counters[position];
            let value = counter.load(Ordering::Relaxed);
            if value != STUCK {
                debug_assert!(value > 0, "removed an id that was never added");
                counter.store(value.saturating_sub(1), Ordering::SeqCst);
            }
        }
    }

    /// Starts a forgetting pass (under the shard lock).
    pub(crate) fn begin_forgetting(&self) {
        self.forgetting.fetch_add(1, Ordering::SeqCst);
    }

    /// Ends a forgetting pass (under the shard lock).
    pub(crate) fn end_forgetting(&self) {
        self.forgetting.fetch_add(1, Ordering::SeqCst);
    }

    /// Where a lock-free reader starts: the pass counter, or `None` while a
    /// pass is under way.
    pub(crate) fn read_begin(&self) -> Option<u64> {
        let sequence = self.forgetting.load(Ordering::SeqCst);
        (sequence % 2 == 0).then_some(sequence)
    }

    /// Whether `id` was certainly unknown to the shard at every instant since
    /// `read_begin` returned `sequence`: a zero counter now proves it is not
    /// recorded now (ids are counted in before they are recorded), and an
    /// unchanged pass counter proves none was forgotten in between (so it was
    /// not recorded earlier either).
    pub(crate) fn certainly_absent_since(&self, id: u64, sequence: u64) -> bool {
        let absent = positions(id, self.counters.len())
            .into_iter()
            .any(|position| self.counters[position].load(Ordering::SeqCst) == 0);
        absent && self.forgetting.load(Ordering::SeqCst) == sequence
    }
}

#[cfg(all(test, not(omnistock_loom)))]
mod tests {
    use super::*;

    #[test]
    fn an_added_id_is_never_certainly_absent() {
        let filter = IdFilter::default();
        let sequence = filter.read_begin().unwrap();
        assert!(filter.certainly_absent_since(42, sequence));
        filter.add(42);
        assert!(!filter.certainly_absent_since(42, sequence));
        filter.begin_forgetting();
        assert_eq!(filter.read_begin(), None);
        filter.remove(42);
        filter.end_forgetting();
        assert!(
            !filter.certainly_absent_since(42, sequence),
            "a pass ran in between"
        );
        let sequence = filter.read_begin().unwrap();
        assert!(filter.certainly_absent_since(42, sequence));
    }

    #[test]
    fn a_run_of_ids_counts_in_neighbouring_counters() {
        let len = 8192;
        // A run: the ids of one block that share a shard.
        let first = 0x5000_0003;
        let [a, b] = positions(first, len);
        for place in 0..16 {
            assert_eq!(
                positions(first + place as u64 * id_hash::RUN_STRIDE, len),
                [(a + place) % len, (b + place) % len]
            );
        }
        // With few counters the places wrap around instead of overflowing.
        for id in 0..64 {
            assert!(positions(id, 10).iter().all(|&p| p < 10));
        }
    }

    #[test]
    fn a_filter_sized_for_its_ids_proves_most_unknown_ids_unknown() {
        let ids = 20_000u64;
        let filter = IdFilter::with_counters(ids as usize * COUNTERS_PER_RESERVATION);
        // Ids as an order service numbers them, in runs as one shard sees
        // them; then ids never added, from another range.
        for id in 0..ids {
            filter.add(id * id_hash::RUN_STRIDE);
        }
        let sequence = filter.read_begin().unwrap();
        let fresh = 1u64 << 40;
        let proven = (fresh..fresh + 10_000)
            .filter(|&id| filter.certainly_absent_since(id * id_hash::RUN_STRIDE, sequence))
            .count();
        // About 95 % expected; the hashes are fixed, so this is exact.
        assert!(
            proven > 9_000,
            "only {proven} of 10000 unknown ids proven unknown"
        );
        for id in (0..ids).step_by(97) {
            assert!(!filter.certainly_absent_since(id * id_hash::RUN_STRIDE, sequence));
        }
    }

    #[test]
    fn counters_follow_expected_reservations_when_given() {
        assert_eq!(counters_per_shard(65_536, None, 256), 2048);
        assert_eq!(counters_per_shard(10_000_000, None, 256), 8192);
        assert_eq!(
            counters_per_shard(65_536, Some(1_000_000), 256),
            1_000_000 * COUNTERS_PER_RESERVATION / 256
        );
        assert_eq!(
            counters_per_shard(0, Some(usize::MAX), 256),
            usize::MAX / 256
        );
        // The filter clamps whatever it is asked for.
        assert_eq!(
            IdFilter::with_counters(usize::MAX / 256).counters.len(),
            MAX_COUNTERS
        );
        assert_eq!(IdFilter::with_counters(0).counters.len(), MIN_COUNTERS);
    }

    #[test]
    fn saturated_counters_stay_stuck() {
        let filter = IdFilter::default();
        for _ in 0..300 {
            filter.add(7);
        }
        for _ in 0..300 {
            filter.remove(7);
        }
        let sequence = filter.read_begin().unwrap();
        assert!(!filter.certainly_absent_since(7, sequence));
    }
}

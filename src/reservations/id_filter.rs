//! A lock-free "this id is certainly unknown" test for one reservation
//! shard, so a reserve that is about to be refused (a sold-out item) can
//! answer without taking the shard lock: on a sold-out flash-sale SKU a
//! refused reserve then reads shared memory and writes none.
//!
//! It is a counting Bloom filter over the ids the shard records, plus a
//! sequence counter that is odd while the shard forgets ids or the filter
//! is rebuilt. The writers hold the shard lock; readers hold nothing. The
//! filter only ever answers "certainly absent" or "maybe present"; a full
//! or saturated filter just sends every request down the locked path.
//!
//! The filter follows the number of ids the shard remembers, where that
//! pays: a shard whose refusals went down the locked path because its
//! filter could not prove their ids unknown (as many as its [`Sizing`]
//! says) rebuilds it with twice the counters or more once it holds more
//! than one id per 4 counters. A shard that refuses nothing keeps its
//! filter small, so a busy store that never sells out does not pay for
//! counters that no refusal reads. A filter shrinks once it holds less
//! than one id per 32 counters, never below the size it was built with.
//! Its sizes stay within the bounds its [`Sizing`] sets, powers of two.
//! Each size is a *level*, made on first use and kept: a reader may still
//! be reading the level it found, and freeing it would need reclamation
//! the crate does without. The levels kept cost at most the largest one
//! again (they halve in size).
//!
//! A filter may also start *off* ([`IdFilter::try_new`]): it counts nothing
//! and proves nothing until the same refusals switch it on, which is a
//! rebuild like any other. Counting an id in and out is two counters each
//! way, under the shard lock, that miss the cache once the shard remembers
//! many ids; a shard that starts off pays that only once refusals show the
//! filter would spare them the lock. Once on, a filter stays on.
//!
//! What it wins over no filter (take the shard lock and look the id up):
//! a refusal writes no shared memory, where the lock writes its word; the
//! time a refusal takes from two threads is not shown apart beyond the
//! noise of benches/structures.rs (see docs/PERFORMANCE.md 'Structures').

use crate::error::BuildError;
use crate::reservations::id_placement;
use crate::sync::{AtomicU64, AtomicU8, Ordering};
use std::sync::OnceLock;

/// The largest level a filter may take: `1 << MAX_LEVEL` counters, 16 MiB
/// a shard (4 GiB over 256 shards).
const MAX_LEVEL: usize = 24;
/// The most counters a shard's filter may be allowed.
pub(crate) const MAX_COUNTERS_ALLOWED: usize = 1 << MAX_LEVEL;
/// The sizes a filter takes: level `k` has `1 << k` counters. A filter
/// uses the levels its [`Sizing`] allows, a few of them in practice; the
/// others stay empty slots.
const LEVELS: usize = MAX_LEVEL + 1;
/// Counters per shard when sized from the expected items alone: 8 bytes
/// per expected item over 256 shards.
const COUNTERS_PER_ITEMS: usize = 32;
/// Counters per expected reservation. With two counters per id, a filter
/// holding one id per 8 counters proves about 95 % of unknown ids unknown
/// (each counter is zero with odds e^-1/4); one per 4 counters, about 85 %.
pub(crate) const COUNTERS_PER_RESERVATION: usize = 8;
/// A filter holding more than one id per this many counters grows.
const GROW_BELOW_COUNTERS_PER_ID: usize = 4;
/// A filter holding less than one id per this many counters shrinks.
const SHRINK_ABOVE_COUNTERS_PER_ID: usize = 32;

/// How large a shard's filter may get and when it grows: set through
/// `InventoryBuilder::id_filter_counters` and
/// `InventoryBuilder::id_filter_refusals_before_growing`, checked by
/// [`check`](Self::check) before any filter is made.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Sizing {
    /// Counters per shard, at least (a power of two).
    pub(crate) min_counters: usize,
    /// Counters per shard, at most (a power of two, at most
    /// `MAX_COUNTERS_ALLOWED`).
    pub(crate) max_counters: usize,
    /// Counters per shard to start with, at most, when sized from the
    /// expected items alone.
    pub(crate) max_counters_from_items: usize,
    /// Refusals a shard takes under its lock, for want of a proof from its
    /// filter, before the filter may grow or switch on (at least 1).
    pub(crate) refusals_before_growing: u32,
}

impl Sizing {
    /// At least 512 counters a shard, what a flash sale on a handful of
    /// items needs to keep refusing without the lock (128 KiB over 256
    /// shards); at most 1 MiB a shard, 256 MiB over 256 shards, enough for
    /// about 33 million remembered reservations; at most 2 MiB in all to
    /// start with from the expected items; growing after 8 refusals.
    #[cfg(not(omnistock_loom))]
    pub(crate) const DEFAULT: Sizing = Sizing {
        min_counters: 512,
        max_counters: 1 << 20,
        max_counters_from_items: 8192,
        refusals_before_growing: 8,
    };
    /// Under loom every atomic is tracked: filters of 4 and 8 counters,
    /// growing after one refusal, so that a model's handful of ids makes
    /// them grow and switch on.
    #[cfg(omnistock_loom)]
    pub(crate) const DEFAULT: Sizing = Sizing {
        min_counters: 4,
        max_counters: 8,
        max_counters_from_items: 4,
        refusals_before_growing: 1,
    };

    /// Whether the settings are in range; the error names the builder
    /// setting that is not.
    pub(crate) fn check(self) -> Result<(), BuildError> {
        let counters = self.min_counters.is_power_of_two()
            && self.max_counters.is_power_of_two()
            && self.min_counters <= self.max_counters
            && self.max_counters <= MAX_COUNTERS_ALLOWED;
        if !counters {
            return Err(BuildError::InvalidSetting {
                setting: "id_filter_counters",
                reason: "min_per_shard and max_per_shard must be powers of two, \
                         with min_per_shard <= max_per_shard <= 16777216 (1 << 24)",
            });
        }
        if self.refusals_before_growing == 0 {
            return Err(BuildError::InvalidSetting {
                setting: "id_filter_refusals_before_growing",
                reason: "refusals must be at least 1",
            });
        }
        Ok(())
    }

    /// Counters per shard to start with, for an inventory built for
    /// `expected_items`, and for `expected_reservations` remembered at
    /// once if the caller said so, over `shards` shards (before the
    /// filter's own rounding and clamping).
    pub(crate) fn start_counters(
        self,
        expected_items: usize,
        expected_reservations: Option<usize>,
        shards: usize,
    ) -> usize {
        match expected_reservations {
            Some(reservations) => reservations.saturating_mul(COUNTERS_PER_RESERVATION) / shards,
            None => (expected_items / COUNTERS_PER_ITEMS).min(self.max_counters_from_items),
        }
    }

    /// The levels a filter built for `counters` counters may take: from
    /// the one that holds them (the smallest level allowed at least) up to
    /// the largest allowed.
    fn levels(self, counters: usize) -> Levels {
        let top = level_of(self.max_counters);
        let floor = level_of(counters.max(self.min_counters)).min(top);
        Levels { floor, top }
    }
}

/// The smallest level with at least `counters` counters (past the largest
/// level, the largest).
fn level_of(counters: usize) -> usize {
    counters
        .checked_next_power_of_two()
        .map_or(MAX_LEVEL, |len| len.trailing_zeros() as usize)
        .min(MAX_LEVEL)
}

/// The counters of level `level`.
const fn level_len(level: usize) -> usize {
    1 << level
}

/// The levels one filter moves between.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Levels {
    /// The level the filter was built at, or switches on at if built off;
    /// it never shrinks below it.
    floor: usize,
    /// The largest level it may take.
    top: usize,
}

impl Levels {
    /// The level a filter at `current` should move to while its shard
    /// remembers `ids` ids, if it should move: up once the ids are crowded
    /// (if it `may_grow`), down once they are sparse, in both cases to the
    /// level that holds them at `COUNTERS_PER_RESERVATION` each (between
    /// `floor` and `top`). The gap between the two thresholds keeps a shard
    /// whose count hovers around one of them from rebuilding again and
    /// again.
    fn next(self, current: usize, ids: usize, may_grow: bool) -> Option<usize> {
        let len = level_len(current);
        let crowded = may_grow && ids.saturating_mul(GROW_BELOW_COUNTERS_PER_ID) > len;
        let sparse = ids.saturating_mul(SHRINK_ABOVE_COUNTERS_PER_ID) < len;
        if !crowded && !sparse {
            return None;
        }
        let fitting = self.fitting(ids);
        let moves = (crowded && fitting > current) || (sparse && fitting < current);
        moves.then_some(fitting)
    }

    /// The level that holds `ids` ids at `COUNTERS_PER_RESERVATION` each,
    /// between `floor` and `top`: where a filter moves when it grows,
    /// shrinks or switches on.
    fn fitting(self, ids: usize) -> usize {
        level_of(ids.saturating_mul(COUNTERS_PER_RESERVATION)).clamp(self.floor, self.top)
    }
}

/// A counter that reaches this stays there until the filter is rebuilt (it
/// can no longer prove absence, which is always safe).
const STUCK: u8 = u8::MAX;

/// `IdFilter::current` while the filter is off: no level is in use.
const OFF: u8 = u8::MAX;
const _: () = assert!(LEVELS < OFF as usize);

#[derive(Debug)]
pub(crate) struct IdFilter {
    /// `levels[k]` holds `level_len(k)` counters, once made.
    levels: [OnceLock<Box<[AtomicU8]>>; LEVELS],
    /// The level in use, or `OFF`. Changed only by a rebuild, under the
    /// shard lock and inside an odd `changing`.
    current: AtomicU8,
    /// The levels it moves between.
    range: Levels,
    /// See [`Sizing::refusals_before_growing`].
    refusals_before_growing: u32,
    /// Even while no ids are forgotten and no rebuild is under way; each
    /// forgetting pass or rebuild makes it odd before its first change and
    /// even again after its last.
    changing: AtomicU64,
}

/// The two counters of `id` among `len` (a power of two): two places drawn from one
/// well-mixed hash of the id's run, each moved on by the id's place in the
/// run, so the 16 ids of a run count in 16 neighbouring counters (see
/// `id_hash`).
fn positions(id: u64, len: usize) -> [usize; 2] {
    let mut x = id_placement::run(id) ^ 0x243F_6A88_85A3_08D3;
    x = (x ^ (x >> 31)).wrapping_mul(0x7FB5_D329_728E_A185);
    x = (x ^ (x >> 27)).wrapping_mul(0x81DA_DEF4_BC2D_D44D);
    x ^= x >> 33;
    let place = id_placement::place_in_run(id) as usize;
    debug_assert!(len.is_power_of_two());
    let mask = len - 1;
    [
        ((x as u32) as usize + place) & mask,
        ((x >> 32) as usize + place) & mask,
    ]
}

/// Counts `id` into `counters` (`up`) or out of them, storing with
/// `order`. A counter at `STUCK` stays there.
fn count(counters: &[AtomicU8], id: u64, up: bool, order: Ordering) {
    for position in positions(id, counters.len()) {
        let counter = &counters[position];
        let value = counter.load(Ordering::Relaxed);
        if value != STUCK {
            debug_assert!(up || value > 0, "removed an id that was never added");
            let value = if up {
                value + 1
            } else {
                value.saturating_sub(1)
            };
            counter.store(value, order);
        }
    }
}

fn zeroed(len: usize) -> Box<[AtomicU8]> {
    (0..len).map(|_| AtomicU8::new(0)).collect()
}

impl Default for IdFilter {
    fn default() -> Self {
        IdFilter::with_counters(0)
    }
}

impl IdFilter {
    /// A filter of at least `counters` counters to start with, sized by
    /// [`Sizing::DEFAULT`] (rounded up to a level, clamped to its bounds).
    /// More counters keep it useful with more ids retained without a
    /// rebuild; each costs a byte and is zeroed when the inventory is built.
    pub(crate) fn with_counters(counters: usize) -> Self {
        Self::try_new(counters, Sizing::DEFAULT, true).expect("a filter of at most 1 MiB")
    }

    /// A filter of at least `counters` counters to start with (rounded up
    /// to a level, clamped to the bounds of `sizing`, which
    /// [`Sizing::check`] accepted), or the allocation the system refused.
    ///
    /// Unless it starts `on`, it counts nothing and proves nothing until
    /// its shard's refusals switch it on (see [`fit`](Self::fit)), then
    /// with at least that many counters, or more if the shard's ids need
    /// them; it allocates nothing until then.
    pub(crate) fn try_new(counters: usize, sizing: Sizing, on: bool) -> Result<Self, BuildError> {
        debug_assert_eq!(sizing.check(), Ok(()));
        let range = sizing.levels(counters);
        let levels: [OnceLock<Box<[AtomicU8]>>; LEVELS] = std::array::from_fn(|_| OnceLock::new());
        let current = if on {
            let first =
                BuildError::allocate("an id filter", level_len(range.floor), AtomicU8::default)?;
            let _ = levels[range.floor].set(first);
            range.floor as u8
        } else {
            OFF
        };
        Ok(IdFilter {
            levels,
            current: AtomicU8::new(current),
            range,
            refusals_before_growing: sizing.refusals_before_growing,
            changing: AtomicU64::new(0),
        })
    }

    /// Refusals its shard takes under the lock, for want of a proof from
    /// the filter, before [`fit`](Self::fit) may grow it.
    pub(crate) fn refusals_before_growing(&self) -> u32 {
        self.refusals_before_growing
    }

    /// The counters in use, or `None` while the filter is off. A rebuild
    /// makes a level before publishing it (release), so the level read
    /// (acquire) is always made.
    fn counters(&self) -> Option<&[AtomicU8]> {
        let level = self.current.load(Ordering::Acquire);
        if level == OFF {
            return None;
        }
        match self.levels[level as usize].get() {
            Some(counters) => Some(counters),
            None => unreachable!("level {level} was published before it was made"),
        }
    }

    /// Whether the filter is off, so that no refusal can be proven before
    /// the shard lock. Relaxed: a stale answer only picks the slower of two
    /// correct paths.
    pub(crate) fn is_off(&self) -> bool {
        self.current.load(Ordering::Relaxed) == OFF
    }

    /// The counters in use now (0 while off).
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.counters().map_or(0, <[AtomicU8]>::len)
    }

    /// Counts `id` in (nothing while off). Call under the shard lock
    /// *before* the id becomes visible in the shard's records, and before
    /// its reservation holds any unit (a reader that sees the hold must
    /// also see the count).
    pub(crate) fn add(&self, id: u64) {
        if let Some(counters) = self.counters() {
            count(counters, id, true, Ordering::SeqCst);
        }
    }

    /// Counts `id` out (nothing while off). Call under the shard lock:
    /// inside a forgetting pass *after* the id left the shard's records, or
    /// when a reservation that was counted in failed (it was never
    /// recorded).
    pub(crate) fn remove(&self, id: u64) {
        if let Some(counters) = self.counters() {
            count(counters, id, false, Ordering::SeqCst);
        }
    }

    /// Starts a forgetting pass (under the shard lock).
    pub(crate) fn begin_forgetting(&self) {
        self.changing.fetch_add(1, Ordering::SeqCst);
    }

    /// Ends a forgetting pass (under the shard lock).
    pub(crate) fn end_forgetting(&self) {
        self.changing.fetch_add(1, Ordering::SeqCst);
    }

    /// Resizes the filter to suit a shard that remembers `remembered` ids,
    /// if it no longer does (see the module docs; it grows only if it
    /// `may_grow`), counting in the ids `ids` lists: all the shard
    /// remembers. A filter that is off switches on when it `may_grow`, at
    /// the level that holds the ids (at least the one it was built for).
    /// Call under the shard lock. Returns whether it rebuilt.
    pub(crate) fn fit<I: IntoIterator<Item = u64>>(
        &self,
        remembered: usize,
        may_grow: bool,
        ids: impl FnOnce() -> I,
    ) -> bool {
        let current = self.current.load(Ordering::Relaxed);
        let level = if current == OFF {
            may_grow.then(|| self.range.fitting(remembered))
        } else {
            self.range.next(current as usize, remembered, may_grow)
        };
        match level {
            Some(level) => {
                self.rebuild(level, ids());
                true
            }
            None => false,
        }
    }

    /// Counts `ids` into level `level`, from zero, and puts it in use. A
    /// reader that overlaps any of it sees `changing` move and proves
    /// nothing; one that starts after it reads the new level, complete.
    fn rebuild(&self, level: usize, ids: impl IntoIterator<Item = u64>) {
        self.changing.fetch_add(1, Ordering::SeqCst);
        let counters = match self.levels[level].get() {
            // Used before: it still holds the counts of that time.
            Some(counters) => {
                for counter in counters.iter() {
                    counter.store(0, Ordering::Relaxed);
                }
                counters
            }
            None => self.levels[level].get_or_init(|| zeroed(level_len(level))),
        };
        for id in ids {
            count(counters, id, true, Ordering::Relaxed);
        }
        self.current.store(level as u8, Ordering::Release);
        self.changing.fetch_add(1, Ordering::SeqCst);
    }

    /// Where a lock-free reader starts: the pass counter, or `None` while a
    /// pass or rebuild is under way. A filter that is off answers too, but
    /// then [`certainly_absent_since`](Self::certainly_absent_since) proves
    /// nothing (reserves in a shard whose filter is off do not read it:
    /// they look their items up under the lock).
    pub(crate) fn read_begin(&self) -> Option<u64> {
        let sequence = self.changing.load(Ordering::SeqCst);
        (sequence % 2 == 0).then_some(sequence)
    }

    /// Whether `id` was certainly unknown to the shard at every instant since
    /// `read_begin` returned `sequence`: a zero counter now proves it is not
    /// recorded now (ids are counted in before they are recorded), and an
    /// unchanged pass counter proves none was forgotten in between (so it was
    /// not recorded earlier either) and the filter was not rebuilt.
    pub(crate) fn certainly_absent_since(&self, id: u64, sequence: u64) -> bool {
        let Some(counters) = self.counters() else {
            return false;
        };
        let absent = positions(id, counters.len())
            .into_iter()
            .any(|position| counters[position].load(Ordering::SeqCst) == 0);
        absent && self.changing.load(Ordering::SeqCst) == sequence
    }
}

#[cfg(all(test, not(omnistock_loom)))]
mod tests {
    use super::*;

    const MIN_COUNTERS: usize = Sizing::DEFAULT.min_counters;
    const MAX_COUNTERS: usize = Sizing::DEFAULT.max_counters;

    /// A filter with the default sizing that starts off.
    fn off(counters: usize) -> IdFilter {
        IdFilter::try_new(counters, Sizing::DEFAULT, false).unwrap()
    }

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
                positions(first + place as u64 * id_placement::RUN_STRIDE, len),
                [(a + place) % len, (b + place) % len]
            );
        }
        // With few counters the places wrap around instead of overflowing.
        for id in 0..64 {
            assert!(positions(id, 16).iter().all(|&p| p < 16));
        }
    }

    #[test]
    fn a_filter_sized_for_its_ids_proves_most_unknown_ids_unknown() {
        let ids = 20_000u64;
        let filter = IdFilter::with_counters(ids as usize * COUNTERS_PER_RESERVATION);
        // Ids as an order service numbers them, in runs as one shard sees
        // them; then ids never added, from another range.
        for id in 0..ids {
            filter.add(id * id_placement::RUN_STRIDE);
        }
        let sequence = filter.read_begin().unwrap();
        let fresh = 1u64 << 40;
        let proven = (fresh..fresh + 10_000)
            .filter(|&id| filter.certainly_absent_since(id * id_placement::RUN_STRIDE, sequence))
            .count();
        // About 95 % expected; the hashes are fixed, so this is exact.
        assert!(
            proven > 9_000,
            "only {proven} of 10000 unknown ids proven unknown"
        );
        for id in (0..ids).step_by(97) {
            assert!(!filter.certainly_absent_since(id * id_placement::RUN_STRIDE, sequence));
        }
    }

    #[test]
    fn counters_follow_expected_reservations_when_given() {
        let sizing = Sizing::DEFAULT;
        assert_eq!(sizing.start_counters(65_536, None, 256), 2048);
        assert_eq!(sizing.start_counters(10_000_000, None, 256), 8192);
        assert_eq!(
            sizing.start_counters(65_536, Some(1_000_000), 256),
            1_000_000 * COUNTERS_PER_RESERVATION / 256
        );
        assert_eq!(
            sizing.start_counters(0, Some(usize::MAX), 256),
            usize::MAX / 256
        );
        // The filter clamps whatever it is asked for.
        assert_eq!(
            IdFilter::with_counters(usize::MAX / 256).len(),
            MAX_COUNTERS
        );
        assert_eq!(IdFilter::with_counters(0).len(), MIN_COUNTERS);
        // Sizes between levels round up.
        assert_eq!(
            IdFilter::with_counters(MIN_COUNTERS + 1).len(),
            2 * MIN_COUNTERS
        );
    }

    #[test]
    fn levels_move_only_when_crowded_or_sparse() {
        // Level `base + k` has 512 << k counters.
        let base = level_of(MIN_COUNTERS);
        let top = level_of(MAX_COUNTERS);
        assert_eq!((level_len(base), level_len(top)), (512, 1 << 20));
        let built_at = |k: usize| Levels {
            floor: base + k,
            top,
        };
        let next = |k: usize, ids: usize, may_grow: bool| {
            built_at(0)
                .next(base + k, ids, may_grow)
                .map(|level| level - base)
        };
        // 512 counters hold up to 128 ids before growing.
        assert_eq!(next(0, 128, true), None);
        // Past that, the level that holds the ids at 8 counters each.
        assert_eq!(next(0, 129, true), Some(level_of(129 * 8) - base));
        assert_eq!(level_len(base + next(0, 129, true).unwrap()), 2048);
        assert_eq!(next(0, usize::MAX, true), Some(top - base));
        assert_eq!(next(top - base, usize::MAX, true), None);
        // Sparse: 2048 counters shrink below 64 ids, not at 64.
        assert_eq!(next(2, 64, true), None);
        assert_eq!(next(2, 63, true), Some(0));
        assert_eq!(next(2, 40, true), Some(0));
        assert_eq!(next(2, 0, true), Some(0));
        // Never below the level it was built at.
        assert_eq!(built_at(2).next(base + 2, 0, true), None);
        assert_eq!(built_at(2).next(base + 3, 0, true), Some(base + 2));
        // Between the thresholds nothing moves, so a count hovering at one
        // of them does not rebuild each time.
        for ids in 64..=512 {
            assert_eq!(next(2, ids, true), None, "{ids} ids");
        }
        assert_eq!(next(2, 513, true), Some(4));
        assert_eq!(next(4, 513, true), None);
        // Crowded, but no refusal asked for more: only shrinking happens.
        assert_eq!(next(0, 129, false), None);
        assert_eq!(next(2, 63, false), Some(0));
    }

    #[test]
    fn sizes_stay_within_the_sizing() {
        let small = Sizing {
            min_counters: 4,
            max_counters: 8,
            max_counters_from_items: 4,
            refusals_before_growing: 1,
        };
        assert_eq!(small.check(), Ok(()));
        assert_eq!(small.levels(0), Levels { floor: 2, top: 3 });
        assert_eq!(small.levels(5), Levels { floor: 3, top: 3 });
        assert_eq!(small.levels(usize::MAX), Levels { floor: 3, top: 3 });
        assert_eq!(small.levels(0).fitting(1_000_000), 3);
        assert_eq!(small.levels(0).fitting(0), 2);
        // From 4 counters, a second id crowds it; with none it shrinks.
        assert_eq!(small.levels(0).next(2, 2, true), Some(3));
        assert_eq!(small.levels(0).next(3, 2, true), None);
        assert_eq!(small.levels(0).next(3, 0, false), Some(2));
        // The widest range allowed: 1 counter to 1 << 24.
        let widest = Sizing {
            min_counters: 1,
            max_counters: MAX_COUNTERS_ALLOWED,
            ..small
        };
        assert_eq!(widest.check(), Ok(()));
        assert_eq!(
            widest.levels(0),
            Levels {
                floor: 0,
                top: MAX_LEVEL
            }
        );
        assert_eq!(IdFilter::try_new(0, widest, true).unwrap().len(), 1);
        assert_eq!(level_of(usize::MAX), MAX_LEVEL);
        assert_eq!(level_of(0), 0);
    }

    #[test]
    fn a_sizing_out_of_range_is_refused() {
        let ok = Sizing::DEFAULT;
        let counters = |min_counters, max_counters| Sizing {
            min_counters,
            max_counters,
            ..ok
        };
        let invalid = |sizing: Sizing| match sizing.check() {
            Err(BuildError::InvalidSetting { setting, .. }) => setting,
            other => panic!("{sizing:?}: {other:?}"),
        };
        for bad in [
            counters(0, 8),
            counters(4, 0),
            counters(3, 8),
            counters(4, 12),
            counters(16, 8),
            counters(4, MAX_COUNTERS_ALLOWED * 2),
            counters(usize::MAX, usize::MAX),
        ] {
            assert_eq!(invalid(bad), "id_filter_counters");
        }
        let never = Sizing {
            refusals_before_growing: 0,
            ..ok
        };
        assert_eq!(invalid(never), "id_filter_refusals_before_growing");
        assert_eq!(counters(8, 8).check(), Ok(()));
    }

    /// A shard's ids as the filter sees them: counted in and out under
    /// the lock, with a fit after each change.
    struct Remembered {
        filter: IdFilter,
        ids: Vec<u64>,
        rebuilds: usize,
    }

    impl Remembered {
        fn new(counters: usize) -> Self {
            Remembered {
                filter: IdFilter::with_counters(counters),
                ids: Vec::new(),
                rebuilds: 0,
            }
        }

        fn add(&mut self, id: u64) {
            self.filter.add(id);
            self.ids.push(id);
            self.fit();
        }

        fn forget_oldest(&mut self, n: usize) {
            self.filter.begin_forgetting();
            for id in self.ids.drain(..n) {
                self.filter.remove(id);
            }
            self.filter.end_forgetting();
            self.fit();
        }

        fn fit(&mut self) {
            let ids = &self.ids;
            if self.filter.fit(ids.len(), true, || ids.iter().copied()) {
                self.rebuilds += 1;
            }
        }

        /// Of 10,000 ids never added, how many the filter proves unknown;
        /// and it never proves a remembered one unknown.
        fn proven_unknown(&self) -> usize {
            let sequence = self.filter.read_begin().unwrap();
            for &id in &self.ids {
                assert!(!self.filter.certainly_absent_since(id, sequence), "{id}");
            }
            let fresh = 1u64 << 40;
            (fresh..fresh + 10_000)
                .filter(|&id| {
                    self.filter
                        .certainly_absent_since(id * id_placement::RUN_STRIDE, sequence)
                })
                .count()
        }
    }

    #[test]
    fn the_filter_grows_with_the_ids_remembered_and_shrinks_back() {
        let mut shard = Remembered::new(MIN_COUNTERS);
        for id in 0..20_000u64 {
            shard.add(id * id_placement::RUN_STRIDE);
        }
        // Doubling at the least would be 8 rebuilds to reach 160k
        // counters; jumping to the fitting level takes fewer.
        assert!(shard.filter.len() >= 20_000 * GROW_BELOW_COUNTERS_PER_ID);
        assert!((1..=8).contains(&shard.rebuilds), "{}", shard.rebuilds);
        let proven = shard.proven_unknown();
        assert!(proven > 8_500, "only {proven} of 10000 proven unknown");
        // A filter that kept its first size proves next to nothing.
        let fixed = IdFilter::with_counters(MIN_COUNTERS);
        for &id in &shard.ids {
            fixed.add(id);
        }
        let sequence = fixed.read_begin().unwrap();
        let fresh = 1u64 << 40;
        let proven_by_fixed = (fresh..fresh + 10_000)
            .filter(|&id| fixed.certainly_absent_since(id * id_placement::RUN_STRIDE, sequence))
            .count();
        assert!(proven_by_fixed < 1_000, "{proven_by_fixed}");

        // Forgetting all but a few shrinks it back to where it started.
        let before = shard.rebuilds;
        shard.forget_oldest(19_990);
        assert_eq!(shard.rebuilds, before + 1);
        assert_eq!(shard.filter.len(), MIN_COUNTERS);
        assert!(shard.proven_unknown() > 9_500);
        // And it grows again, into a level it made before (zeroed first:
        // the stale counts of its earlier use would prove nothing wrong,
        // but would stop proving anything right).
        for id in 100_000..120_000u64 {
            shard.add(id * id_placement::RUN_STRIDE);
        }
        assert!(shard.proven_unknown() > 8_500);
    }

    #[test]
    fn a_reader_overlapping_a_rebuild_proves_nothing() {
        let filter = IdFilter::with_counters(MIN_COUNTERS);
        let sequence = filter.read_begin().unwrap();
        let (known, unknown) = (42 * id_placement::RUN_STRIDE, 43 * id_placement::RUN_STRIDE);
        let level = level_of(MIN_COUNTERS) + 3;
        filter.rebuild(level, [known]);
        assert_eq!(filter.len(), level_len(level));
        // Unknown, but the reader began before the rebuild.
        assert!(!filter.certainly_absent_since(unknown, sequence));
        let sequence = filter.read_begin().unwrap();
        assert!(filter.certainly_absent_since(unknown, sequence));
        assert!(!filter.certainly_absent_since(known, sequence));
    }

    #[test]
    fn a_rebuild_unsticks_saturated_counters() {
        let mut shard = Remembered::new(MIN_COUNTERS);
        for _ in 0..300 {
            shard.filter.add(7);
        }
        for _ in 0..300 {
            shard.filter.remove(7);
        }
        let sequence = shard.filter.read_begin().unwrap();
        assert!(!shard.filter.certainly_absent_since(7, sequence));
        // Enough other ids to make it grow: the recount starts from zero.
        for id in 1000..1200u64 {
            shard.add(id * id_placement::RUN_STRIDE);
        }
        assert_eq!(shard.rebuilds, 1);
        let sequence = shard.filter.read_begin().unwrap();
        assert!(shard.filter.certainly_absent_since(7, sequence));
    }

    #[test]
    fn an_off_filter_counts_nothing_until_refusals_switch_it_on() {
        let filter = off(2 * MIN_COUNTERS);
        assert_eq!(filter.len(), 0);
        let ids: Vec<u64> = (0..300u64)
            .map(|id| id * id_placement::RUN_STRIDE)
            .collect();
        for &id in &ids {
            filter.add(id);
        }
        // Off: it proves nothing, known or not, and forgetting counts
        // nothing out.
        let sequence = filter.read_begin().unwrap();
        assert!(!filter.certainly_absent_since(1 << 40, sequence));
        filter.begin_forgetting();
        filter.remove(ids[0]);
        filter.end_forgetting();
        // Shrinking or fitting without refusals leaves it off.
        assert!(!filter.fit(ids.len() - 1, false, || ids[1..].iter().copied()));
        assert_eq!(filter.len(), 0);
        // Refusals switch it on, sized for the ids (300 at 8 counters
        // each), and it counts every remembered id in.
        assert!(filter.fit(ids.len() - 1, true, || ids[1..].iter().copied()));
        assert_eq!(filter.len(), level_len(level_of(299 * 8)));
        let sequence = filter.read_begin().unwrap();
        for &id in &ids[1..] {
            assert!(!filter.certainly_absent_since(id, sequence));
        }
        let fresh = 1u64 << 40;
        let proven = (fresh..fresh + 1000)
            .filter(|&id| filter.certainly_absent_since(id * id_placement::RUN_STRIDE, sequence))
            .count();
        assert!(proven > 800, "{proven} of 1000");
        // Once on it stays on: with no ids left it shrinks to the size it
        // was built for, not off.
        assert!(filter.fit(0, false, std::iter::empty));
        assert_eq!(filter.len(), 2 * MIN_COUNTERS);
        // A few ids switch on at least at that size.
        let small = off(2 * MIN_COUNTERS);
        assert!(small.fit(1, true, || [7u64]));
        assert_eq!(small.len(), 2 * MIN_COUNTERS);
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

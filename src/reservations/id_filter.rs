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
//! filter could not prove their ids unknown (`REFUSALS_BEFORE_GROWING` of
//! them) rebuilds it with twice the counters or more once it holds more
//! than one id per 4 counters. A shard that refuses nothing keeps its
//! filter small, so a busy store that never sells out does not pay for
//! counters that no refusal reads. A filter shrinks once it holds less
//! than one id per 32 counters, never below the size it was built with.
//! Each size is a *level*, made on first use and kept: a reader may still
//! be reading the level it found, and freeing it would need reclamation
//! the crate does without. The levels kept cost at most the largest one
//! again (they halve in size).
//!
//! A filter may also start *off* ([`IdFilter::off`]): it counts nothing
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

/// Counters per shard, at most: 1 MiB a shard, 256 MiB over 256 shards,
/// enough for about 33 million remembered reservations. Under loom every
/// atomic is tracked: keep it tiny. Fuzzing uses loom's sizes too, so that
/// a handful of ids makes filters grow and shrink.
#[cfg(not(any(omnistock_loom, fuzzing)))]
const MAX_COUNTERS: usize = 1 << 20;
#[cfg(any(omnistock_loom, fuzzing))]
const MAX_COUNTERS: usize = 8;
/// Counters per shard, at least: what a flash sale on a handful of items
/// needs to keep refusing without the lock (128 KiB over 256 shards).
#[cfg(not(any(omnistock_loom, fuzzing)))]
const MIN_COUNTERS: usize = 512;
#[cfg(any(omnistock_loom, fuzzing))]
const MIN_COUNTERS: usize = 4;
/// The sizes a filter takes: `MIN_COUNTERS << level` counters.
const LEVELS: usize = (MAX_COUNTERS / MIN_COUNTERS).trailing_zeros() as usize + 1;
/// Counters per shard when sized from the expected items alone: 8 bytes
/// per expected item over 256 shards, at most 2 MiB in all to start with.
const COUNTERS_PER_ITEMS: usize = 32;
#[cfg(not(any(omnistock_loom, fuzzing)))]
const MAX_COUNTERS_FROM_ITEMS: usize = 8192;
#[cfg(any(omnistock_loom, fuzzing))]
const MAX_COUNTERS_FROM_ITEMS: usize = 4;
/// Counters per expected reservation. With two counters per id, a filter
/// holding one id per 8 counters proves about 95 % of unknown ids unknown
/// (each counter is zero with odds e^-1/4); one per 4 counters, about 85 %.
pub(crate) const COUNTERS_PER_RESERVATION: usize = 8;
/// A filter holding more than one id per this many counters grows.
const GROW_BELOW_COUNTERS_PER_ID: usize = 4;
/// A filter holding less than one id per this many counters shrinks.
const SHRINK_ABOVE_COUNTERS_PER_ID: usize = 32;
/// Refusals a shard takes under its lock, for want of a proof from its
/// filter, before the filter may grow.
#[cfg(not(any(omnistock_loom, fuzzing)))]
pub(crate) const REFUSALS_BEFORE_GROWING: u32 = 8;
#[cfg(any(omnistock_loom, fuzzing))]
pub(crate) const REFUSALS_BEFORE_GROWING: u32 = 1;

/// Counters per shard to start with, for an inventory built for
/// `expected_items`, and for `expected_reservations` remembered at once if
/// the caller said so, over `shards` shards (before the filter's own
/// rounding and clamping).
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

/// The counters of level `level`.
const fn level_len(level: usize) -> usize {
    MIN_COUNTERS << level
}

/// The smallest level with at least `counters` counters (the largest if
/// none has).
fn level_holding(counters: usize) -> usize {
    (0..LEVELS)
        .find(|&level| level_len(level) >= counters)
        .unwrap_or(LEVELS - 1)
}

/// The level a filter at `current`, built at `floor`, should move to while
/// its shard remembers `ids` ids, if it should move: up once the ids are
/// crowded (if it `may_grow`), down once they are sparse, in both cases to
/// the level that holds them at `COUNTERS_PER_RESERVATION` each (never
/// below `floor`). The gap between the two thresholds keeps a shard whose
/// count hovers around one of them from rebuilding again and again.
fn level_for(current: usize, floor: usize, ids: usize, may_grow: bool) -> Option<usize> {
    let len = level_len(current);
    let crowded = may_grow && ids.saturating_mul(GROW_BELOW_COUNTERS_PER_ID) > len;
    let sparse = ids.saturating_mul(SHRINK_ABOVE_COUNTERS_PER_ID) < len;
    if !crowded && !sparse {
        return None;
    }
    let fitting = fitting_level(floor, ids);
    let moves = (crowded && fitting > current) || (sparse && fitting < current);
    moves.then_some(fitting)
}

/// The level that holds `ids` ids at `COUNTERS_PER_RESERVATION` each, never
/// below `floor`: where a filter moves when it grows, shrinks or switches
/// on.
fn fitting_level(floor: usize, ids: usize) -> usize {
    level_holding(ids.saturating_mul(COUNTERS_PER_RESERVATION)).max(floor)
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
    /// The level the filter was built at, or switches on at if built off;
    /// it never shrinks below it.
    floor: usize,
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
        IdFilter::with_counters(MIN_COUNTERS)
    }
}

impl IdFilter {
    /// A filter of at least `counters` counters to start with (rounded up
    /// to a level, clamped to a sane range). More counters keep it useful
    /// with more ids retained without a rebuild; each costs a byte and is
    /// zeroed when the inventory is built.
    pub(crate) fn with_counters(counters: usize) -> Self {
        Self::try_with_counters(counters).expect("a filter of at most 1 MiB")
    }

    /// A filter that counts nothing and proves nothing until its shard's
    /// refusals switch it on (see [`fit`](Self::fit)), then with at least
    /// `counters` counters, or more if the shard's ids need them. It
    /// allocates nothing until then.
    pub(crate) fn off(counters: usize) -> Self {
        IdFilter {
            levels: std::array::from_fn(|_| OnceLock::new()),
            current: AtomicU8::new(OFF),
            floor: level_holding(counters),
            changing: AtomicU64::new(0),
        }
    }

    /// [`with_counters`](Self::with_counters), or the allocation the system
    /// refused.
    pub(crate) fn try_with_counters(counters: usize) -> Result<Self, BuildError> {
        let floor = level_holding(counters);
        let first = BuildError::allocate("an id filter", level_len(floor), AtomicU8::default)?;
        let levels: [OnceLock<Box<[AtomicU8]>>; LEVELS] = std::array::from_fn(|_| OnceLock::new());
        let _ = levels[floor].set(first);
        Ok(IdFilter {
            levels,
            current: AtomicU8::new(floor as u8),
            floor,
            changing: AtomicU64::new(0),
        })
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
            may_grow.then(|| fitting_level(self.floor, remembered))
        } else {
            level_for(current as usize, self.floor, remembered, may_grow)
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
        let top = LEVELS - 1;
        // 512 counters hold up to 128 ids before growing.
        assert_eq!(level_for(0, 0, 128, true), None);
        // Past that, the level that holds the ids at 8 counters each.
        assert_eq!(level_for(0, 0, 129, true), Some(level_holding(129 * 8)));
        assert_eq!(level_len(level_for(0, 0, 129, true).unwrap()), 2048);
        assert_eq!(level_for(0, 0, usize::MAX, true), Some(top));
        assert_eq!(level_for(top, 0, usize::MAX, true), None);
        // Sparse: 2048 counters shrink below 64 ids, not at 64.
        assert_eq!(level_for(2, 0, 64, true), None);
        assert_eq!(level_for(2, 0, 63, true), Some(0));
        assert_eq!(level_for(2, 0, 40, true), Some(0));
        assert_eq!(level_for(2, 0, 0, true), Some(0));
        // Never below the level it was built at.
        assert_eq!(level_for(2, 2, 0, true), None);
        assert_eq!(level_for(3, 2, 0, true), Some(2));
        // Between the thresholds nothing moves, so a count hovering at one
        // of them does not rebuild each time.
        for ids in 64..=512 {
            assert_eq!(level_for(2, 0, ids, true), None, "{ids} ids");
        }
        assert_eq!(level_for(2, 0, 513, true), Some(4));
        assert_eq!(level_for(4, 0, 513, true), None);
        // Crowded, but no refusal asked for more: only shrinking happens.
        assert_eq!(level_for(0, 0, 129, false), None);
        assert_eq!(level_for(2, 0, 63, false), Some(0));
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
        filter.rebuild(3, [known]);
        assert_eq!(filter.len(), level_len(3));
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
        let filter = IdFilter::off(2 * MIN_COUNTERS);
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
        assert_eq!(filter.len(), level_len(level_holding(299 * 8)));
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
        let small = IdFilter::off(2 * MIN_COUNTERS);
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

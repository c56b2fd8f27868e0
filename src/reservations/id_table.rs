//! The id table of one reservation shard: the slab positions of the
//! reservations it remembers, found by id. Used only under the shard lock.
//!
//! Open addressing over 8-byte slots, each holding the id's 32-bit key (see
//! `id_hash`) beside the position. A slot is one load: the key and the
//! position share it, so a lookup reads the record only when the key
//! matches.
//!
//! The slots form 16 interleaved tables: the slots of *lane* `l` are
//! `l, l + 16, l + 32, ...`, and a key's low 4 bits name its lane. A probe
//! starts at the key's home slot and steps 16 slots (one *block*) at a
//! time, within the lane, with linear probing in Robin Hood order per lane.
//! The 16 ids of a run (see `id_hash`) share a home block and take the 16
//! lanes, so a thread that records id after id, or a reaper that forgets
//! them in the order they finished, works in the same two cache lines.
//!
//! The lanes keep runs from merging: within a lane a run is one entry, so
//! two runs homed at one block cost one step each, as colliding keys in any
//! linear-probing table at the same load, instead of interleaving into a
//! long cluster that every insert and removal shifts.
//!
//! What it wins over `hashbrown::HashTable<u32>` in the engine (positions
//! homed by the key's low bits, ids read back from the records): fewer
//! instructions and L2 misses a cart in the spread load run's steady state
//! (`tools/cg`; see docs/PERFORMANCE.md 'Structures').
//!
//! Each lane's cluster is kept ordered by home block (an insert takes the
//! place of the first entry nearer its own home). The order lets a lookup
//! for an absent id stop as soon as it passes where the id would be, and a
//! removal shift back only the entries up to the next one at its home.
//! Removals leave no tombstones, so the table never has to be rebuilt in
//! place while it churns through reservations. It doubles when half full,
//! which happens while a shard grows, not once the number of remembered
//! reservations has settled, or when an insert finds its lane full (a
//! small table whose few keys crowd one lane).

/// A slot holding nothing. Positions are below `u32::MAX` (the slab hands
/// out fewer), so no occupied slot equals it.
const EMPTY: u64 = u64::MAX;

/// `Vacancy::at` when the key's lane has no room.
const FULL: usize = usize::MAX;

/// Slots a probe steps over: the lanes.
const LANES: usize = 16;

/// Slots of a table's first allocation: one block.
const MIN_SLOTS: usize = LANES;

/// Where the lookup of an absent key stopped: the slot index an entry for
/// it takes, how many blocks that is from the key's home, and the table's
/// size at the time (a vacancy is void once the table grows; a probe that
/// went through a whole full lane answers `at == FULL`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Vacancy {
    at: usize,
    distance: usize,
    slots: usize,
}

/// Slab positions by id key.
#[derive(Debug, Default)]
pub(crate) struct IdTable {
    /// `EMPTY`, or `key << 32 | position`. The length is zero or a power
    /// of two, and at least twice `len`.
    slots: Box<[u64]>,
    len: usize,
}

fn slot(key: u32, position: u32) -> u64 {
    u64::from(key) << 32 | u64::from(position)
}

fn key_of(slot: u64) -> u32 {
    (slot >> 32) as u32
}

fn position_of(slot: u64) -> u32 {
    slot as u32
}

impl IdTable {
    /// Positions stored.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// The positions stored, in slot order.
    pub(crate) fn positions(&self) -> impl Iterator<Item = u32> + '_ {
        self.slots
            .iter()
            .filter(|&&slot| slot != EMPTY)
            .map(|&slot| position_of(slot))
    }

    fn mask(&self) -> usize {
        self.slots.len() - 1
    }

    /// Where a probe for `key` starts.
    fn home(&self, key: u32) -> usize {
        key as usize & self.mask()
    }

    /// How many blocks the entry in `slot`, found at index `at`, is past
    /// its home (both are in its lane).
    fn distance(&self, at: usize, slot: u64) -> usize {
        (at.wrapping_sub(self.home(key_of(slot))) & self.mask()) / LANES
    }

    /// The next slot of `at`'s lane.
    fn next_in_lane(&self, at: usize) -> usize {
        (at + LANES) & self.mask()
    }

    /// The slots of each lane.
    fn blocks(&self) -> usize {
        self.slots.len() / LANES
    }

    /// Starts loading the slot where a probe for `key` starts, without
    /// waiting for it (see `prefetch`).
    pub(crate) fn prefetch(&self, key: u32) {
        if !self.slots.is_empty() {
            crate::prefetch::prefetch(&self.slots[self.home(key)]);
        }
    }

    /// The slot index holding a position stored under `key` for which `is`
    /// says yes; if there is none, where the probe stopped, which is where
    /// an entry for `key` goes.
    #[inline]
    fn index_of(&self, key: u32, mut is: impl FnMut(u32) -> bool) -> Result<usize, Vacancy> {
        if self.slots.is_empty() {
            return Err(Vacancy {
                at: 0,
                distance: 0,
                slots: 0,
            });
        }
        let mut at = self.home(key);
        for distance in 0..self.blocks() {
            let slot = self.slots[at];
            // Entries of a cluster are ordered by home: one nearer its home
            // than the probe is to ours means ours is not stored, and an
            // entry for it would take this slot.
            if slot == EMPTY || self.distance(at, slot) < distance {
                return Err(Vacancy {
                    at,
                    distance,
                    slots: self.slots.len(),
                });
            }
            if key_of(slot) == key && is(position_of(slot)) {
                return Ok(at);
            }
            at = self.next_in_lane(at);
        }
        // The lane is full and the key is not in it.
        Err(Vacancy {
            at: FULL,
            distance: 0,
            slots: self.slots.len(),
        })
    }

    /// A position stored under `key` for which `is` says yes (the caller
    /// compares the id in the record: different ids may share a key).
    #[cfg(test)]
    pub(crate) fn find(&self, key: u32, is: impl FnMut(u32) -> bool) -> Option<u32> {
        self.find_or_vacancy(key, is).ok()
    }

    /// The position stored under `key` for which `is` says yes (the
    /// caller compares the id in the record: different ids may share a
    /// key), or where `key`'s entry would go: a vacancy
    /// that [`insert_at`](Self::insert_at) fills without probing again,
    /// as long as the table has not changed in between.
    #[inline]
    pub(crate) fn find_or_vacancy(
        &self,
        key: u32,
        is: impl FnMut(u32) -> bool,
    ) -> Result<u32, Vacancy> {
        self.index_of(key, is).map(|at| position_of(self.slots[at]))
    }

    /// Stores `position` under `key`. The caller has made sure the id is
    /// not stored already.
    pub(crate) fn insert(&mut self, key: u32, position: u32) {
        debug_assert!(position != u32::MAX);
        if (self.len + 1) * 2 > self.slots.len() {
            self.grow();
        }
        self.len += 1;
        if let Err(left) = self.place(slot(key, position), self.home(key), 0) {
            // The lane was full: `left` is the entry left over.
            self.grow_and_place(left);
        }
    }

    /// Stores `position` under `key`, whose lookup found `vacancy` and no
    /// entry, with nothing inserted or removed since. Where the table must
    /// grow first, the vacancy is void and the entry is placed afresh.
    #[inline]
    pub(crate) fn insert_at(&mut self, vacancy: Vacancy, key: u32, position: u32) {
        debug_assert!(position != u32::MAX);
        if vacancy.slots != self.slots.len()
            || vacancy.at == FULL
            || (self.len + 1) * 2 > self.slots.len()
        {
            return self.insert(key, position);
        }
        debug_assert_eq!(
            self.index_of(key, |_| false).err(),
            Some(vacancy),
            "the table changed after the lookup"
        );
        self.len += 1;
        // A full lane may still have answered a vacancy (an entry nearer
        // its home than the probe): the entry left over then goes into the
        // grown table.
        if let Err(left) = self.place(slot(key, position), vacancy.at, vacancy.distance) {
            self.grow_and_place(left);
        }
    }

    /// Puts `slot` into its lane's cluster from slot index `at`, `distance`
    /// blocks past its home, every slot before which holds an entry at
    /// least as far from its own home: keeps the cluster ordered by home
    /// (Robin Hood), taking the place of the first entry nearer its own
    /// home, which moves on the same way. If the lane has no empty slot,
    /// returns the entry left over (every other one is placed).
    fn place(&mut self, mut slot: u64, mut at: usize, mut distance: usize) -> Result<(), u64> {
        for _ in 0..self.blocks() {
            let here = self.slots[at];
            if here == EMPTY {
                self.slots[at] = slot;
                return Ok(());
            }
            let theirs = self.distance(at, here);
            if theirs < distance {
                self.slots[at] = slot;
                slot = here;
                distance = theirs;
            }
            at = self.next_in_lane(at);
            distance += 1;
        }
        Err(slot)
    }

    /// Grows the table, then places `slot` (counted in `len` already).
    fn grow_and_place(&mut self, mut slot: u64) {
        loop {
            self.grow();
            let home = self.home(key_of(slot));
            match self.place(slot, home, 0) {
                Ok(()) => return,
                Err(left) => slot = left,
            }
        }
    }

    /// Removes `position`, stored under `key`; false if it is not there.
    #[inline]
    pub(crate) fn remove(&mut self, key: u32, position: u32) -> bool {
        let Ok(mut hole) = self.index_of(key, |stored| stored == position) else {
            return false;
        };
        // Shift the following entries back one slot each, up to the first
        // that is at its home (or an empty slot): the cluster stays ordered
        // and no probe meets a gap before its entry. A full lane has no
        // empty slot to stop at: at most all its other entries move.
        for _ in 1..self.blocks() {
            let next = self.next_in_lane(hole);
            let slot = self.slots[next];
            if slot == EMPTY || self.distance(next, slot) == 0 {
                break;
            }
            self.slots[hole] = slot;
            hole = next;
        }
        self.slots[hole] = EMPTY;
        self.len -= 1;
        true
    }

    /// Doubles the slots (or makes the first ones) and places every entry
    /// again; doubles again while a lane overflows.
    fn grow(&mut self) {
        let mut slots = (self.slots.len() * 2).max(MIN_SLOTS);
        let old = std::mem::take(&mut self.slots);
        'sizes: loop {
            self.slots = vec![EMPTY; slots].into_boxed_slice();
            for &slot in old.iter().filter(|&&slot| slot != EMPTY) {
                let home = self.home(key_of(slot));
                if self.place(slot, home, 0).is_err() {
                    slots *= 2;
                    continue 'sizes;
                }
            }
            return;
        }
    }
}

#[cfg(all(test, not(omnistock_loom)))]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashMap;

    #[test]
    fn finds_what_it_stores_and_forgets_what_it_removes() {
        let mut table = IdTable::default();
        assert_eq!(table.find(7, |_| true), None);
        assert!(!table.remove(7, 1));
        for position in 0..1000 {
            table.insert(position * 3, position);
        }
        assert_eq!(table.len(), 1000);
        assert_eq!(table.find(30, |_| true), Some(10));
        assert!(table.remove(30, 10));
        assert!(!table.remove(30, 10));
        assert_eq!(table.find(30, |_| true), None);
        assert_eq!(table.find(33, |_| true), Some(11));
        assert_eq!(table.len(), 999);
        let mut listed: Vec<u32> = table.positions().collect();
        listed.sort_unstable();
        assert_eq!(listed, (0..1000).filter(|&p| p != 10).collect::<Vec<_>>());
    }

    #[test]
    fn prefetching_any_key_changes_nothing() {
        let mut table = IdTable::default();
        // An empty table has no slot to prefetch.
        table.prefetch(u32::MAX);
        for position in 0..100 {
            table.insert(position * 7, position);
        }
        for key in (0..64).chain([u32::MAX]) {
            table.prefetch(key);
        }
        assert_eq!(table.len(), 100);
        assert_eq!(table.find(7 * 99, |_| true), Some(99));
        assert_eq!(table.find(1, |_| true), None);
    }

    #[test]
    fn entries_sharing_a_key_are_told_apart_by_the_caller() {
        let mut table = IdTable::default();
        table.insert(5, 1);
        table.insert(5, 2);
        table.insert(5, 3);
        assert_eq!(table.find(5, |p| p == 2), Some(2));
        assert!(table.remove(5, 1));
        assert_eq!(table.find(5, |p| p == 3), Some(3));
        assert_eq!(table.find(5, |p| p == 1), None);
    }

    #[test]
    fn removal_keeps_entries_that_wrapped_around_the_end_findable() {
        let mut table = IdTable::default();
        // 17 entries in lanes 1..16 make 64 slots: 4 blocks a lane.
        for key in (1..16).chain(17..19) {
            table.insert(key, 1000 + key);
        }
        assert_eq!(table.slots.len(), 64);
        table.insert(0, 0); // lane 0, block 0
        let last = 48; // lane 0, the last block
                       // Three entries homed at the last block: two wrap around to
                       // blocks 0 and 1 of the lane.
        for position in 1..=3 {
            table.insert(last, position);
        }
        assert!(slot_of(&table, 2) < 32 && slot_of(&table, 3) < 32);
        assert!(table.remove(last, 1));
        assert!(table.remove(0, 0));
        for position in 2..=3 {
            assert_eq!(table.find(last, |p| p == position), Some(position));
        }
        for key in (1..16).chain(17..19) {
            assert_eq!(table.find(key, |p| p == 1000 + key), Some(1000 + key));
        }
    }

    /// The index of the slot holding `position`.
    fn slot_of(table: &IdTable, position: u32) -> usize {
        table
            .slots
            .iter()
            .position(|&slot| slot != EMPTY && position_of(slot) == position)
            .unwrap()
    }

    #[test]
    fn a_run_takes_one_block_and_a_second_run_there_the_next() {
        let mut table = IdTable::default();
        // 64 slots: 4 blocks. Two runs homed at block 1, keys 16..32 (the
        // second run's keys differ above the table's bits).
        table.insert(0, 999);
        for lane in 0..16 {
            table.insert(16 + lane, lane);
        }
        assert_eq!(table.slots.len(), 64);
        for lane in 0..16 {
            table.insert((1 << 20) + 16 + lane, 100 + lane);
        }
        assert_eq!(table.slots.len(), 128);
        for lane in 0..16u32 {
            // The first run fills block 1, one slot a lane; the second is
            // one block on in each lane, not interleaved with the first.
            assert_eq!(slot_of(&table, lane), 16 + lane as usize);
            assert_eq!(slot_of(&table, 100 + lane), 32 + lane as usize);
        }
        // Forgetting the first run moves each of the second's entries back
        // once, home.
        for lane in 0..16 {
            assert!(table.remove(16 + lane, lane));
        }
        for lane in 0..16u32 {
            assert_eq!(slot_of(&table, 100 + lane), 16 + lane as usize);
            assert_eq!(
                table.find((1 << 20) + 16 + lane, |p| p == 100 + lane),
                Some(100 + lane)
            );
        }
    }

    /// A shard's table in the spread load run's steady state: runs of 16
    /// ids (keys from `id_hash`, one run per block of ids), about 6,000
    /// remembered, the oldest forgotten as each new one is recorded. A
    /// lookup reads few slots and a removal shifts few entries back. With
    /// one lane (`LANES = 1`, steps of one slot, the table before lanes)
    /// this fails: runs homed at one block interleave, and the means were
    /// 5.2 slots read and 9.0 entries shifted, against 1.2-1.3 and 0.4.
    #[test]
    fn runs_in_steady_state_probe_and_shift_little() {
        let hasher = crate::reservations::id_placement::IdHasher::default();
        let mut table = IdTable::default();
        let mut live = std::collections::VecDeque::new();
        let mut position = 0u32;
        for block in 0..4_000u64 {
            for place in 0..16 {
                let key = hasher.id_table_key(block << 7 | place << 3);
                table.insert(key, position);
                live.push_back((key, position));
                position += 1;
                if live.len() > 6_000 {
                    let (key, gone) = live.pop_front().unwrap();
                    assert!(table.remove(key, gone));
                }
            }
        }
        let (mut read, mut shifted, mut entries) = (0, 0, 0);
        for at in 0..table.slots.len() {
            let slot = table.slots[at];
            if slot == EMPTY {
                continue;
            }
            entries += 1;
            // A lookup reads the slots from its home to its entry.
            read += table.distance(at, slot) + 1;
            // Removing it shifts back the displaced entries after it.
            let mut next = table.next_in_lane(at);
            for _ in 1..table.blocks() {
                let after = table.slots[next];
                if after == EMPTY || table.distance(next, after) == 0 {
                    break;
                }
                shifted += 1;
                next = table.next_in_lane(next);
            }
        }
        let (read, shifted) = (
            read as f64 / entries as f64,
            shifted as f64 / entries as f64,
        );
        assert!(read < 1.6, "{read:.2} slots read a lookup");
        assert!(shifted < 1.0, "{shifted:.2} entries shifted a removal");
    }

    #[test]
    fn a_full_lane_grows_the_table() {
        // Keys that all take lane 0: the table holds few entries for its
        // size, but the lane has one slot a block, so it must grow.
        let mut table = IdTable::default();
        for position in 0..40 {
            let key = position * LANES as u32;
            if position % 2 == 0 {
                table.insert(key, position);
            } else {
                let vacancy = table.find_or_vacancy(key, |_| false).unwrap_err();
                table.insert_at(vacancy, key, position);
            }
        }
        assert_eq!(table.len(), 40);
        assert!(table.blocks() >= 40, "{} blocks", table.blocks());
        for position in 0..40 {
            let key = position * LANES as u32;
            assert_eq!(table.find(key, |p| p == position), Some(position));
        }
        // A full lane finds nothing that is not there, and ends.
        let mut full = IdTable::default();
        full.insert(0, 0);
        assert_eq!(full.blocks(), 1);
        assert_eq!(full.find(LANES as u32, |_| true), None);
        assert_eq!(
            full.find_or_vacancy(LANES as u32, |_| true).unwrap_err().at,
            FULL
        );
        // A full lane can also answer an ordinary vacancy, an entry nearer
        // its home than the probe; inserting there grows the table. 32
        // slots (9 entries elsewhere), lane 0 holding keys 16 and 48, both
        // homed at block 1: 48 wrapped around to block 0.
        let mut table = IdTable::default();
        for key in 1..=9 {
            table.insert(key, key);
        }
        table.insert(16, 16);
        table.insert(48, 48);
        assert_eq!(table.slots.len(), 32);
        let vacancy = table.find_or_vacancy(0, |_| false).unwrap_err();
        assert_eq!((vacancy.at, vacancy.distance), (16, 1));
        table.insert_at(vacancy, 0, 0);
        assert_eq!(table.slots.len(), 64);
        for key in [0, 1, 9, 16, 48] {
            assert_eq!(table.find(key, |p| p == key), Some(key));
        }
        assert_eq!(table.len(), 12);
        // Removing from a full lane: the wrapped entry moves home, and the
        // shift stops there instead of going round the lane again.
        let mut table = IdTable::default();
        for key in 1..=9 {
            table.insert(key, key);
        }
        table.insert(16, 16);
        table.insert(48, 48);
        assert!(table.remove(16, 16));
        assert_eq!(slot_of(&table, 48), 16);
        assert_eq!(table.slots[0], EMPTY);
        assert_eq!(table.find(48, |p| p == 48), Some(48));
    }

    #[test]
    fn a_vacancy_is_where_a_plain_insert_would_put_the_entry() {
        let mut table = IdTable::default();
        let Err(first) = table.find_or_vacancy(9, |_| true) else {
            panic!("an empty table finds nothing");
        };
        // The first entry makes the table: the vacancy is void, the entry
        // is placed afresh.
        table.insert_at(first, 9, 0);
        assert_eq!(table.find(9, |p| p == 0), Some(0));
        // A cluster of one key, then a neighbour: the probe passes the
        // cluster and stops where the newcomer belongs.
        for position in 1..4 {
            let vacancy = table.find_or_vacancy(9, |_| false).unwrap_err();
            table.insert_at(vacancy, 9, position);
        }
        let vacancy = table.find_or_vacancy(10, |_| false).unwrap_err();
        table.insert_at(vacancy, 10, 4);
        for (key, position) in [(9, 0), (9, 1), (9, 2), (9, 3), (10, 4)] {
            assert_eq!(table.find(key, |p| p == position), Some(position));
        }
        // A vacancy taken before the table grows is void after it.
        let mut table = IdTable::default();
        for position in 0..8 {
            table.insert(position * 2, position);
        }
        let stale = table.find_or_vacancy(100, |_| false).unwrap_err();
        table.insert_at(stale, 100, 8); // 9 entries in 16 slots: grows
        assert_eq!(table.slots.len(), 32);
        assert_eq!(table.find(100, |p| p == 8), Some(8));
        assert_eq!(table.len(), 9);
    }

    #[derive(Clone, Debug)]
    enum Op {
        Insert(u32),
        /// Looks the key up, then inserts at the vacancy the lookup found.
        InsertAtVacancy(u32),
        Remove(usize),
    }

    fn ops() -> impl Strategy<Value = Vec<Op>> {
        // Keys from a small range collide and cluster; removals pick among
        // the stored entries.
        let op = prop_oneof![
            2 => (0u32..64).prop_map(Op::Insert),
            2 => (0u32..64).prop_map(Op::InsertAtVacancy),
            2 => any::<usize>().prop_map(Op::Remove),
        ];
        proptest::collection::vec(op, 0..400)
    }

    proptest! {
        /// Against a plain map: after any mix of inserts and removals every
        /// stored position is found under its key and nothing else is.
        #[test]
        fn agrees_with_a_map(ops in ops(), spread in 0u32..4) {
            let mut table = IdTable::default();
            let mut model: HashMap<u32, u32> = HashMap::new(); // position -> key
            let mut next_position = 0u32;
            for op in ops {
                match op {
                    Op::Insert(key) | Op::InsertAtVacancy(key) => {
                        // Spread 0: keys crowd the low slots; 3: they crowd
                        // lane 0, which must grow the table; else spread out.
                        let key = if spread == 3 {
                            key * LANES as u32
                        } else {
                            key.wrapping_mul(spread.wrapping_mul(0x9E37_79B9).wrapping_add(1))
                        };
                        if matches!(op, Op::Insert(_)) {
                            table.insert(key, next_position);
                        } else {
                            // No stored position is the new one.
                            let found = table.find_or_vacancy(key, |p| p == next_position);
                            prop_assert!(found.is_err());
                            table.insert_at(found.unwrap_err(), key, next_position);
                        }
                        model.insert(next_position, key);
                        next_position += 1;
                    }
                    Op::Remove(pick) => {
                        if model.is_empty() {
                            continue;
                        }
                        let mut stored: Vec<_> = model.iter().map(|(&p, &k)| (p, k)).collect();
                        stored.sort_unstable();
                        let (position, key) = stored[pick % stored.len()];
                        prop_assert!(table.remove(key, position));
                        model.remove(&position);
                    }
                }
                prop_assert_eq!(table.len(), model.len());
            }
            for (&position, &key) in &model {
                prop_assert_eq!(table.find(key, |p| p == position), Some(position));
            }
            let mut listed: Vec<u32> = table.positions().collect();
            listed.sort_unstable();
            let mut stored: Vec<u32> = model.keys().copied().collect();
            stored.sort_unstable();
            prop_assert_eq!(listed, stored);
            for gone in (0..next_position).filter(|p| !model.contains_key(p)) {
                prop_assert_eq!(table.find(0, |p| p == gone), None);
                for &key in model.values() {
                    prop_assert_eq!(table.find(key, |p| p == gone), None);
                }
            }
        }
    }
}

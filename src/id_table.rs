//! The id table of one reservation shard: the slab positions of the
//! reservations it remembers, found by id. Used only under the shard lock.
//!
//! Open addressing with linear probing in Robin Hood order over 8-byte
//! slots, each holding the id's 32-bit key (see `id_hash`) beside the
//! position. A slot is one load:
//! the key and the position share it, so a lookup reads one run of adjacent
//! slots and the record only when the key matches. The ids of a run have
//! neighbouring keys, so a thread that records id after id, or a reaper that
//! forgets them in the order they finished, works in the same cache lines.
//!
//! Each cluster of occupied slots is kept ordered by home slot (an insert
//! takes the place of the first entry nearer its own home). A run's keys
//! have neighbouring homes, so runs make long clusters; the order lets a
//! lookup for an absent id stop as soon as it passes where the id would be,
//! and a removal shift back only the entries up to the next one at its
//! home, instead of scanning to the end of the cluster. Removals leave no
//! tombstones, so the table never has to be rebuilt in place while it
//! churns through reservations; it only doubles when half full, which
//! happens while a shard grows, not once the number of remembered
//! reservations has settled.

/// A slot holding nothing. Positions are below `u32::MAX` (the slab hands
/// out fewer), so no occupied slot equals it.
const EMPTY: u64 = u64::MAX;

/// Slots of a table's first allocation.
const MIN_SLOTS: usize = 16;

/// Where the lookup of an absent key stopped: the slot index an entry for
/// it takes, how far that is from the key's home, and the table's size at
/// the time (a vacancy is void once the table grows).
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

    /// How far the entry in `slot`, found at index `at`, is from its home.
    fn distance(&self, at: usize, slot: u64) -> usize {
        at.wrapping_sub(self.home(key_of(slot))) & self.mask()
    }

    /// The slot index holding a position stored under `key` for which `is`
    /// says yes; if there is none, where the probe stopped, which is where
    /// an entry for `key` goes.
    fn index_of(&self, key: u32, mut is: impl FnMut(u32) -> bool) -> Result<usize, Vacancy> {
        if self.slots.is_empty() {
            return Err(Vacancy {
                at: 0,
                distance: 0,
                slots: 0,
            });
        }
        let mask = self.mask();
        let mut at = self.home(key);
        let mut distance = 0;
        loop {
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
            at = (at + 1) & mask;
            distance += 1;
        }
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
        let home = self.home(key);
        self.place(slot(key, position), home, 0);
        self.len += 1;
    }

    /// Stores `position` under `key`, whose lookup found `vacancy` and no
    /// entry, with nothing inserted or removed since. Where the table must
    /// grow first, the vacancy is void and the entry is placed afresh.
    pub(crate) fn insert_at(&mut self, vacancy: Vacancy, key: u32, position: u32) {
        debug_assert!(position != u32::MAX);
        if vacancy.slots != self.slots.len() || (self.len + 1) * 2 > self.slots.len() {
            return self.insert(key, position);
        }
        debug_assert_eq!(
            self.index_of(key, |_| false).err(),
            Some(vacancy),
            "the table changed after the lookup"
        );
        self.place(slot(key, position), vacancy.at, vacancy.distance);
        self.len += 1;
    }

    /// Puts `slot` into its cluster from slot index `at`, `distance` past
    /// its home, every slot before which holds an entry at least as far
    /// from its own home: keeps the cluster ordered by home (Robin Hood),
    /// taking the place of the first entry nearer its own home, which moves
    /// on the same way.
    fn place(&mut self, mut slot: u64, mut at: usize, mut distance: usize) {
        let mask = self.mask();
        loop {
            let here = self.slots[at];
            if here == EMPTY {
                self.slots[at] = slot;
                return;
            }
            let theirs = self.distance(at, here);
            if theirs < distance {
                self.slots[at] = slot;
                slot = here;
                distance = theirs;
            }
            at = (at + 1) & mask;
            distance += 1;
        }
    }

    /// Removes `position`, stored under `key`; false if it is not there.
    pub(crate) fn remove(&mut self, key: u32, position: u32) -> bool {
        let Ok(mut hole) = self.index_of(key, |stored| stored == position) else {
            return false;
        };
        // Shift the following entries back one slot each, up to the first
        // that is at its home (or an empty slot): the cluster stays ordered
        // and no probe meets a gap before its entry.
        let mask = self.mask();
        loop {
            let next = (hole + 1) & mask;
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
    /// again.
    fn grow(&mut self) {
        let slots = (self.slots.len() * 2).max(MIN_SLOTS);
        let old = std::mem::replace(&mut self.slots, vec![EMPTY; slots].into_boxed_slice());
        for &slot in old.iter().filter(|&&slot| slot != EMPTY) {
            let home = self.home(key_of(slot));
            self.place(slot, home, 0);
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
        table.insert(0, 0); // allocates 16 slots
        let last = 15;
        // Three entries homed at the last slot: two wrap to slots 1 and 2
        // (slot 0 is taken).
        for position in 1..=3 {
            table.insert(last, position);
        }
        assert!(table.remove(last, 1));
        assert!(table.remove(0, 0));
        for position in 2..=3 {
            assert_eq!(table.find(last, |p| p == position), Some(position));
        }
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
        fn agrees_with_a_map(ops in ops(), spread in 0u32..3) {
            let mut table = IdTable::default();
            let mut model: HashMap<u32, u32> = HashMap::new(); // position -> key
            let mut next_position = 0u32;
            for op in ops {
                match op {
                    Op::Insert(key) | Op::InsertAtVacancy(key) => {
                        // Spread 0: keys crowd the low slots; else spread out.
                        let key = key.wrapping_mul(spread.wrapping_mul(0x9E37_79B9).wrapping_add(1));
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

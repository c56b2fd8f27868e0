//! The id table of one reservation shard: the slab positions of the
//! reservations it remembers, found by id key (see `id_placement`). Used
//! only under the shard lock.
//!
//! A `hashbrown::HashTable` of positions alone: the caller tells ids apart
//! by the id in the record (different ids may share a key) and gives each
//! position's key back when the table grows. The hash keeps the key's low
//! bits as the home, so a run's 16 keys stay neighbours, and puts the
//! key's low 7 bits in hashbrown's tag, so they also differ in their tags.

use hashbrown::HashTable;

/// What a lookup of an absent id answers: [`IdTable::insert`] places the
/// entry (probing again, in lines the lookup just read).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Vacancy;

/// Slab positions by id key.
#[derive(Debug, Default)]
pub(crate) struct IdTable {
    table: HashTable<u32>,
}

/// The table's hash of a key: the key itself in the low bits (the home),
/// and its low 7 bits again in the top 7 (hashbrown's tag).
fn hash(key: u32) -> u64 {
    u64::from(key) | u64::from(key) << 57
}

impl IdTable {
    /// Positions stored.
    pub(crate) fn len(&self) -> usize {
        self.table.len()
    }

    /// The positions stored, in table order.
    pub(crate) fn positions(&self) -> impl Iterator<Item = u32> + '_ {
        self.table.iter().copied()
    }

    /// The position stored under `key` for which `is` says yes (the caller
    /// compares the id in the record), or a [`Vacancy`] if there is none.
    pub(crate) fn find_or_vacancy(
        &self,
        key: u32,
        mut is: impl FnMut(u32) -> bool,
    ) -> Result<u32, Vacancy> {
        self.table
            .find(hash(key), |&position| is(position))
            .copied()
            .ok_or(Vacancy)
    }

    /// Stores `position` under `key`; the caller has made sure the id is
    /// not stored already. `key_of` gives the key of a stored position,
    /// for the entries moved when the table grows.
    pub(crate) fn insert(&mut self, key: u32, position: u32, key_of: impl Fn(u32) -> u32) {
        self.table
            .insert_unique(hash(key), position, |&stored| hash(key_of(stored)));
    }

    /// Removes `position`, stored under `key`; false if it is not there.
    pub(crate) fn remove(&mut self, key: u32, position: u32) -> bool {
        match self
            .table
            .find_entry(hash(key), |&stored| stored == position)
        {
            Ok(entry) => {
                entry.remove();
                true
            }
            Err(_) => false,
        }
    }
}

#[cfg(all(test, not(omnistock_loom)))]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashMap;

    /// `key_of` for tables whose position `p` was stored under `keys[p]`.
    fn keys(keys: &[u32]) -> impl Fn(u32) -> u32 + '_ {
        |position| keys[position as usize]
    }

    #[test]
    fn finds_what_it_stores_and_forgets_what_it_removes() {
        let mut table = IdTable::default();
        let find = |table: &IdTable, key| table.find_or_vacancy(key, |_| true).ok();
        assert_eq!(find(&table, 7), None);
        assert!(!table.remove(7, 1));
        let stored: Vec<u32> = (0..1000).map(|position| position * 3).collect();
        for position in 0..1000 {
            table.insert(stored[position as usize], position, keys(&stored));
        }
        assert_eq!(table.len(), 1000);
        assert_eq!(find(&table, 30), Some(10));
        assert!(table.remove(30, 10));
        assert!(!table.remove(30, 10));
        assert_eq!(find(&table, 30), None);
        assert_eq!(find(&table, 33), Some(11));
        assert_eq!(table.len(), 999);
        let mut listed: Vec<u32> = table.positions().collect();
        listed.sort_unstable();
        assert_eq!(listed, (0..1000).filter(|&p| p != 10).collect::<Vec<_>>());
    }

    #[test]
    fn entries_sharing_a_key_are_told_apart_by_the_caller() {
        let mut table = IdTable::default();
        let stored = [5; 4];
        for position in 1..=3 {
            table.insert(5, position, keys(&stored));
        }
        assert_eq!(table.find_or_vacancy(5, |p| p == 2), Ok(2));
        assert!(table.remove(5, 1));
        assert_eq!(table.find_or_vacancy(5, |p| p == 3), Ok(3));
        assert_eq!(table.find_or_vacancy(5, |p| p == 1), Err(Vacancy));
    }

    #[test]
    fn a_runs_keys_share_a_home_and_differ_in_their_tags() {
        let hasher = crate::reservations::id_placement::IdHasher::default();
        let run: Vec<u64> = (0..16)
            .map(|place| hash(hasher.id_table_key(5 << 7 | place << 3)))
            .collect();
        // Homes: the low bits, a run's 16 neighbouring ones.
        let first = run.iter().map(|&h| h as u32 & !15).collect::<Vec<_>>();
        assert!(first.iter().all(|&home| home == first[0]));
        // Tags: the top 7 bits, all different within the run.
        let mut tags: Vec<u64> = run.iter().map(|&h| h >> 57).collect();
        tags.sort_unstable();
        tags.dedup();
        assert_eq!(tags.len(), 16);
    }

    #[derive(Clone, Debug)]
    enum Op {
        Insert(u32),
        Remove(usize),
    }

    fn ops() -> impl Strategy<Value = Vec<Op>> {
        // Keys from a small range collide; removals pick among the stored
        // entries.
        let op = prop_oneof![
            3 => (0u32..64).prop_map(Op::Insert),
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
            let mut key_by_position: Vec<u32> = Vec::new();
            for op in ops {
                match op {
                    Op::Insert(key) => {
                        // Spread 0: every key 0; 1: keys crowd the low
                        // bits; 2: spread out.
                        let key = key.wrapping_mul(spread.wrapping_mul(0x9E37_79B9));
                        let position = key_by_position.len() as u32;
                        key_by_position.push(key);
                        // No stored position is the new one.
                        prop_assert!(table.find_or_vacancy(key, |p| p == position).is_err());
                        table.insert(key, position, keys(&key_by_position));
                        model.insert(position, key);
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
                prop_assert_eq!(table.find_or_vacancy(key, |p| p == position), Ok(position));
            }
            let mut listed: Vec<u32> = table.positions().collect();
            listed.sort_unstable();
            let mut stored: Vec<u32> = model.keys().copied().collect();
            stored.sort_unstable();
            prop_assert_eq!(listed, stored);
            for gone in (0..key_by_position.len() as u32).filter(|p| !model.contains_key(p)) {
                let key = key_by_position[gone as usize];
                prop_assert_eq!(table.find_or_vacancy(key, |p| p == gone), Err(Vacancy));
            }
        }
    }
}

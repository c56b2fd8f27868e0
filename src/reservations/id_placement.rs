//! Where a reservation id's bookkeeping lives: which shard holds it, where
//! it sits in that shard's id table, and which counters of the shard's id
//! filter count it.
//!
//! Order services number their orders, so the ids one caller sends mostly
//! come in sequence; and when one sequence feeds many threads (a database
//! sequence, a Snowflake-style generator), the ids in flight at once are
//! neighbours. Ids are laid out in *blocks* of 128 consecutive ids:
//!
//! - A block belongs to a *group* of 8 neighbouring shards, drawn by a keyed
//!   hash of the block (groups are aligned: two blocks share all of their
//!   group or none of it). Consecutive ids of the block take the group's
//!   shards in turn, so up to 8 neighbouring ids in flight at once take
//!   different shard locks.
//! - Each shard of the group gets 16 of the block's ids, 8 apart: a *run*.
//!   A run takes one 16-slot block of its shard's id table, one slot in
//!   each of the table's 16 lanes (placed by a keyed hash of the block), and
//!   16 neighbouring counters of its filter.
//!
//! A thread that numbers its reservations in sequence keeps to 8 shards for
//! 128 reservations, and finds at each the cache lines its previous visit
//! brought in; the reaper, which forgets a shard's ids in the order they
//! finished, works through neighbouring slots too. Ids taken at random
//! spread as evenly as under a hash of each id, and ids chosen by outsiders
//! can crowd at most one run, 16 ids, into one place.
//!
//! The group size trades the two patterns: one shard per block keeps a
//! thread numbering its own carts in one shard, but puts every thread fed
//! by one shared sequence on the same lock; a group of all shards spreads
//! those threads but loses the locality.
//!
//! What it wins over placing each id by a general-purpose hash (SipHash,
//! FxHash, aHash: shard from the top bits, key from the low ones): ids in
//! sequence recorded and forgotten in shards remembering many ids run
//! several times faster, the ids of a run sharing their cache lines; see
//! docs/PERFORMANCE.md 'Structures'.

use std::hash::BuildHasher;

/// Reservation shards: `1 << SHARD_BITS`.
const SHARD_BITS: u32 = 8;
/// The number of reservation shards.
pub(crate) const SHARDS: usize = 1 << SHARD_BITS;
/// Shards in a group: `1 << GROUP_BITS`.
const GROUP_BITS: u32 = 3;
/// Ids of a run: `1 << PLACE_BITS`.
const PLACE_BITS: u32 = 4;
/// Ids of a block: a run in each shard of its group.
const BLOCK_BITS: u32 = GROUP_BITS + PLACE_BITS;
/// How far apart the ids of one run are.
#[cfg(test)]
pub(crate) const RUN_STRIDE: u64 = 1 << GROUP_BITS;

/// The block an id belongs to, which is also its run in its shard.
pub(crate) fn run(id: u64) -> u64 {
    id >> BLOCK_BITS
}

/// An id's place in its run, `0..16`.
pub(crate) fn place_in_run(id: u64) -> u64 {
    (id >> GROUP_BITS) & ((1 << PLACE_BITS) - 1)
}

/// Hashes reservation ids for the shards and the id table: a multiply-xor
/// mix keyed by a per-process random value. The random key keeps ids
/// chosen by outsiders from being aimed at one shard or one cluster of
/// slots.
#[derive(Clone, Copy, Debug)]
pub(crate) struct IdHasher {
    key: u64,
}

impl Default for IdHasher {
    fn default() -> Self {
        static KEY: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
        let key =
            *KEY.get_or_init(|| std::collections::hash_map::RandomState::new().hash_one(0u64));
        IdHasher { key }
    }
}

impl IdHasher {
    /// A hasher with the key `key` (a snapshot's, to place ids as the
    /// process that wrote it did).
    pub(crate) fn with_key(key: u64) -> Self {
        IdHasher { key }
    }

    /// The hasher's key.
    pub(crate) fn key(&self) -> u64 {
        self.key
    }

    fn mix(&self, value: u64) -> u64 {
        let mut x = self.key ^ value;
        x = (x ^ (x >> 32)).wrapping_mul(0xD6E8_FEB8_6659_FD93);
        x = (x ^ (x >> 32)).wrapping_mul(0xD6E8_FEB8_6659_FD93);
        x ^ (x >> 32)
    }

    /// Where `id` lives: its shard and its key in that shard's id table,
    /// both from one hash of its run (disjoint bits of it: the group from
    /// the top, the key from the bottom), so that an operation hashes its
    /// id once.
    pub(crate) fn place(&self, id: u64) -> (usize, KeyedId) {
        let hash = self.mix(run(id));
        (shard_from(hash, id), KeyedId::from_hash(hash, id))
    }

    /// The shard of `id`: its block's group, and within it the shard its
    /// low bits name, so consecutive ids take the group's shards in turn.
    pub(crate) fn shard_of(&self, id: u64) -> usize {
        shard_from(self.mix(run(id)), id)
    }

    /// `id` with its key in its shard's id table (see [`KeyedId`]).
    pub(crate) fn keyed(&self, id: u64) -> KeyedId {
        KeyedId::from_hash(self.mix(run(id)), id)
    }

    /// The id table's key for `id` (see [`KeyedId`]).
    #[cfg(test)]
    pub(crate) fn id_table_key(&self, id: u64) -> u32 {
        self.keyed(id).key
    }
}

/// The shard of `id` from its run's hash: the group from the hash's top
/// bits, the place in the group from the id's low bits.
fn shard_from(hash: u64, id: u64) -> usize {
    let group = hash >> (64 - SHARD_BITS + GROUP_BITS);
    ((group << GROUP_BITS) | (id & ((1 << GROUP_BITS) - 1))) as usize
}

/// A reservation id with its key in its shard's id table: the run's hash
/// (its low 32 bits), whose low 4 bits (the id table's lane) are moved on
/// by the id's place in its run. A run's keys share their home block and
/// take its 16 lanes, so they are neighbours; and ids that all sit at one
/// place of their runs (ids that are all multiples of 128, say) still
/// spread over the lanes. Ids of different runs share a key about once in
/// 2^32 comparisons; the table's caller tells them apart by the id in the
/// record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct KeyedId {
    /// The id.
    pub(crate) id: u64,
    /// Its id-table key.
    pub(crate) key: u32,
}

impl KeyedId {
    fn from_hash(hash: u64, id: u64) -> Self {
        let hash = hash as u32;
        let lanes = (1 << PLACE_BITS) - 1;
        KeyedId {
            id,
            key: (hash & !lanes) | (hash.wrapping_add(place_in_run(id) as u32) & lanes),
        }
    }
}

#[cfg(all(test, not(omnistock_loom)))]
mod tests {
    use super::*;

    #[test]
    fn a_block_is_dealt_over_its_group_one_run_per_shard() {
        let hasher = IdHasher::default();
        let group = 1 << GROUP_BITS;
        for block in [0u64, 1, 0x7_0000, u64::MAX >> BLOCK_BITS] {
            let first = block << BLOCK_BITS;
            let ids = first..=first + ((1 << BLOCK_BITS) - 1);
            let mut ids_of_shard = vec![Vec::new(); SHARDS];
            for id in ids.clone() {
                ids_of_shard[hasher.shard_of(id)].push(id);
            }
            let used: Vec<usize> = (0..SHARDS)
                .filter(|&s| !ids_of_shard[s].is_empty())
                .collect();
            // An aligned group of 8 neighbouring shards.
            assert_eq!(used.len(), group, "block {block}");
            assert_eq!(used[0] % group, 0);
            assert_eq!(used[group - 1], used[0] + group - 1);
            for &shard in &used {
                // One run: places 0..16 in order, RUN_STRIDE apart.
                let run_ids = &ids_of_shard[shard];
                assert_eq!(run_ids.len(), 16);
                for (place, &id) in run_ids.iter().enumerate() {
                    assert_eq!(run(id), block);
                    assert_eq!(place_in_run(id), place as u64);
                    assert_eq!(id - run_ids[0], place as u64 * RUN_STRIDE);
                }
            }
            // Neighbouring ids take different shards.
            for id in first..first + RUN_STRIDE - 1 {
                assert_ne!(hasher.shard_of(id), hasher.shard_of(id + 1), "id {id}");
            }
        }
    }

    #[test]
    fn a_run_takes_one_block_and_all_its_lanes() {
        let hasher = IdHasher::default();
        let first_id = (0xABCD_0000_0004_u64 << BLOCK_BITS) | 3;
        let first = hasher.id_table_key(first_id);
        let mut lanes = 0u32;
        for place in 0..16u64 {
            let id = first_id + place * RUN_STRIDE;
            let key = hasher.id_table_key(id);
            assert_eq!(hasher.shard_of(id), hasher.shard_of(first_id));
            assert_eq!(key >> PLACE_BITS, first >> PLACE_BITS, "one block");
            assert_eq!(key % 16, (first + place as u32) % 16, "lanes in turn");
            lanes |= 1 << (key % 16);
        }
        assert_eq!(lanes, 0xFFFF);
        // The next block's run is homed somewhere else (the odds that it is
        // not are one in 2^28).
        assert_ne!(
            hasher.id_table_key(first_id + (1 << BLOCK_BITS)) >> PLACE_BITS,
            first >> PLACE_BITS
        );
    }

    #[test]
    fn one_hash_names_the_shard_and_the_key() {
        let hasher = IdHasher::default();
        for id in (0..5000u64).chain([u64::MAX - 3, 0xABCD_0000_1234]) {
            let (shard, keyed) = hasher.place(id);
            assert_eq!(shard, hasher.shard_of(id));
            assert_eq!(keyed, hasher.keyed(id));
            assert_eq!(keyed.id, id);
        }
    }

    #[test]
    fn runs_spread_over_blocks_and_lanes() {
        // 4096 runs over 256 buckets of the key's block bits: every bucket
        // gets some (the chance that one is empty is about 256 * e^-16).
        let hasher = IdHasher::default();
        let mut buckets = [0u32; 256];
        let mut lanes = [0u32; 16];
        for r in 0..4096u64 {
            // Every id at place 0 of its run: the lanes still spread.
            let key = hasher.id_table_key(r << BLOCK_BITS);
            buckets[((key >> PLACE_BITS) & 255) as usize] += 1;
            lanes[(key % 16) as usize] += 1;
        }
        assert!(buckets.iter().all(|&n| n > 0), "{buckets:?}");
        // 256 expected in each; 128 is more than 8 standard deviations off.
        assert!(lanes.iter().all(|&n| n > 128), "{lanes:?}");
    }
}

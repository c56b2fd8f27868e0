//! Where a reservation id's bookkeeping lives: which shard holds it, where
//! it sits in that shard's id table, and which counters of the shard's id
//! filter count it.
//!
//! Order services number their orders, so the ids one caller sends mostly
//! come in sequence. Each run of 16 consecutive ids (the same `id >> 4`)
//! therefore shares a shard, 16 neighbouring slots of its id table and 16
//! neighbouring filter counters. A thread that reserves id after id keeps
//! reusing the cache lines the previous ids of its run brought in, and the
//! reaper, which forgets ids in the order they finished, does the same.
//! Without runs each reservation missed the cache on the id table's control
//! byte, its slot and two filter counters, once to record the id and once
//! to forget it.
//!
//! Where a run goes is still a keyed full-avalanche hash of the run, so ids
//! taken at random spread as evenly as before, and ids chosen by outsiders
//! can crowd at most one run, 16 ids, into one place.

use std::hash::{BuildHasher, Hasher};

/// Consecutive ids in a run: `1 << RUN_BITS`.
const RUN_BITS: u32 = 4;

/// The run an id belongs to: ids equal but for their low [`RUN_BITS`] bits.
pub(crate) fn run(id: u64) -> u64 {
    id >> RUN_BITS
}

/// An id's place in its run, `0..16`.
pub(crate) fn place_in_run(id: u64) -> u64 {
    id & ((1 << RUN_BITS) - 1)
}

/// The bits hashbrown takes its 7-bit tag from (on 64-bit targets).
const TAG_BITS: u64 = !(u64::MAX >> 7);

/// Hashes reservation ids for the id table, and slab positions for the map
/// of extra lines: a multiply-xor mix keyed by a per-process random value,
/// instead of SipHash, which was half the instructions of a reserve +
/// commit. The random key keeps ids chosen by outsiders from being aimed at
/// one bucket chain.
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
    fn mix(&self, value: u64) -> u64 {
        let mut x = self.key ^ value;
        x = (x ^ (x >> 32)).wrapping_mul(0xD6E8_FEB8_6659_FD93);
        x = (x ^ (x >> 32)).wrapping_mul(0xD6E8_FEB8_6659_FD93);
        x ^ (x >> 32)
    }

    /// The id table's hash of `id`. The low bits, from which hashbrown
    /// takes the first slot to probe, are the run's hash followed by the
    /// id's place in its run, so a run fills neighbouring slots. The top 7
    /// bits, hashbrown's tag, come from the whole id, so the ids of one run
    /// rarely share a tag and a lookup seldom compares against a neighbour.
    pub(crate) fn id_table_hash(&self, id: u64) -> u64 {
        let slot = (self.mix(run(id)) << RUN_BITS) | place_in_run(id);
        (slot & !TAG_BITS) | (self.mix(id) & TAG_BITS)
    }
}

impl BuildHasher for IdHasher {
    type Hasher = IdHash;

    fn build_hasher(&self) -> IdHash {
        IdHash { state: self.key }
    }
}

/// The hasher [`IdHasher`] builds for maps keyed by slab positions.
#[derive(Debug)]
pub(crate) struct IdHash {
    state: u64,
}

impl Hasher for IdHash {
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.write_u64(u64::from_le_bytes(word));
        }
    }

    fn write_u64(&mut self, value: u64) {
        self.state = IdHasher { key: self.state }.mix(value);
    }

    fn finish(&self) -> u64 {
        self.state
    }
}

#[cfg(all(test, not(omnistock_loom)))]
mod tests {
    use super::*;

    #[test]
    fn a_run_is_sixteen_aligned_ids() {
        assert_eq!(run(0x120), run(0x12F));
        assert_ne!(run(0x12F), run(0x130));
        assert_eq!((place_in_run(0x120), place_in_run(0x12F)), (0, 15));
    }

    #[test]
    fn a_run_takes_neighbouring_slots_with_their_own_tags() {
        let hasher = IdHasher::default();
        let base = 0xABCD_0000_0000_0040_u64;
        let first = hasher.id_table_hash(base) & !TAG_BITS;
        let mut tags = std::collections::HashSet::new();
        for place in 0..16 {
            let hash = hasher.id_table_hash(base + place);
            assert_eq!(
                hash & !TAG_BITS,
                first + place,
                "slot bits of place {place}"
            );
            tags.insert(hash >> 57);
        }
        // 16 tags drawn from 128: fewer than 4 distinct has odds below 1e-20.
        assert!(tags.len() >= 4, "one run shares its tags: {tags:?}");
        // The next run starts somewhere else entirely.
        let next = hasher.id_table_hash(base + 16) & !TAG_BITS;
        assert_ne!(next, first + 16);
    }

    #[test]
    fn runs_spread_over_the_low_bits() {
        // 4096 runs over 256 buckets of the slot bits: every bucket gets
        // some (the chance that one is empty is about 256 * e^-16).
        let hasher = IdHasher::default();
        let mut buckets = [0u32; 256];
        for r in 0..4096u64 {
            let hash = hasher.id_table_hash(r << RUN_BITS);
            buckets[((hash >> RUN_BITS) & 255) as usize] += 1;
        }
        assert!(buckets.iter().all(|&n| n > 0), "{buckets:?}");
    }
}

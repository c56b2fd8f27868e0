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

    /// The id table's key for `id`: the run's hash followed by the id's
    /// place in its run, so a run's keys, and the slots they start probing
    /// at, are neighbours. Ids of different runs share a key about once in
    /// 2^28 comparisons; the table's caller tells them apart by the id in
    /// the record.
    pub(crate) fn id_table_key(&self, id: u64) -> u32 {
        ((self.mix(run(id)) << RUN_BITS) | place_in_run(id)) as u32
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
    fn a_run_takes_neighbouring_keys() {
        let hasher = IdHasher::default();
        let base = 0xABCD_0000_0000_0040_u64;
        let first = hasher.id_table_key(base);
        assert_eq!(first % 16, 0);
        for place in 0..16 {
            assert_eq!(hasher.id_table_key(base + place), first + place as u32);
        }
        // The next run starts somewhere else (the odds that it does not are
        // one in 2^28).
        assert_ne!(hasher.id_table_key(base + 16), first + 16);
    }

    #[test]
    fn runs_spread_over_the_low_bits() {
        // 4096 runs over 256 buckets of the key's bits: every bucket gets
        // some (the chance that one is empty is about 256 * e^-16).
        let hasher = IdHasher::default();
        let mut buckets = [0u32; 256];
        for r in 0..4096u64 {
            let key = hasher.id_table_key(r << RUN_BITS);
            buckets[((key >> RUN_BITS) & 255) as usize] += 1;
        }
        assert!(buckets.iter().all(|&n| n > 0), "{buckets:?}");
    }
}

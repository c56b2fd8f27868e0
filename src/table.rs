//! Item storage: `(sku, store)` to stock cell. Cells live in an append-only
//! arena of segments that are never moved or freed, so a cell is named by a
//! `u32` index and borrowed for the life of the table without reference
//! counting; reservations keep the index of every cell they hold. The key to
//! index maps are sharded so creating items never blocks lookups of other
//! shards. Items are never removed.

use crate::cell::StockCell;
use crate::ids::ItemKey;
use crate::sync::{AtomicU32, Ordering, RwLock};
use std::collections::HashMap;
use std::sync::OnceLock;

/// Cells in the first arena segment; segment `s` holds `FIRST << s`.
#[cfg(not(omnistock_loom))]
const FIRST_BITS: u32 = 10;
/// Under loom every atomic is tracked: keep segments tiny.
#[cfg(omnistock_loom)]
const FIRST_BITS: u32 = 2;
const SEGMENTS: usize = (32 - FIRST_BITS) as usize;
const SHARDS: usize = 64;

/// Spreads 64-bit keys over shards (Fibonacci hashing: multiply, keep the
/// high bits). Shared by the item and reservation tables.
pub(crate) fn shard_of(key: u64, shards: usize) -> usize {
    debug_assert!(shards.is_power_of_two());
    let mixed = key.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    (mixed >> (64 - shards.trailing_zeros())) as usize
}

fn item_hash(key: ItemKey) -> u64 {
    key.sku.0
        ^ key
            .store
            .0
            .rotate_left(29)
            .wrapping_mul(0xD6E8_FEB8_6659_FD93)
}

/// Where cell `index` lives: (segment, offset).
fn locate(index: u32) -> (usize, usize) {
    let biased = u64::from(index) + (1 << FIRST_BITS);
    let segment = (63 - biased.leading_zeros() - FIRST_BITS) as usize;
    let offset = (biased - (1u64 << (segment as u32 + FIRST_BITS))) as usize;
    (segment, offset)
}

/// The item table.
#[derive(Debug)]
pub(crate) struct ItemTable {
    shards: Box<[RwLock<HashMap<ItemKey, u32>>]>,
    segments: Box<[OnceLock<Box<[StockCell]>>]>,
    next: AtomicU32,
}

impl ItemTable {
    pub(crate) fn new() -> Self {
        ItemTable {
            shards: (0..SHARDS).map(|_| RwLock::new(HashMap::new())).collect(),
            segments: (0..SEGMENTS).map(|_| OnceLock::new()).collect(),
            next: AtomicU32::new(0),
        }
    }

    fn shard(&self, key: ItemKey) -> &RwLock<HashMap<ItemKey, u32>> {
        &self.shards[shard_of(item_hash(key), SHARDS)]
    }

    /// The index of an existing item's cell.
    pub(crate) fn find(&self, key: ItemKey) -> Option<u32> {
        self.shard(key).read().get(&key).copied()
    }

    /// The index of the item's cell, creating an all-zero cell if the item is
    /// new; the flag says whether it was created by this call.
    pub(crate) fn find_or_create(&self, key: ItemKey) -> (u32, bool) {
        if let Some(index) = self.find(key) {
            return (index, false);
        }
        let mut map = self.shard(key).write();
        if let Some(&index) = map.get(&key) {
            return (index, false);
        }
        // Allocated under the shard's write lock, so one key gets one index.
        let index = self.next.fetch_add(1, Ordering::Relaxed);
        assert!(
            index < u32::MAX - (1 << FIRST_BITS),
            "omnistock holds at most about 4 billion items"
        );
        let (segment, _) = locate(index);
        self.segments[segment].get_or_init(|| {
            (0..(1usize << (segment as u32 + FIRST_BITS)))
                .map(|_| StockCell::default())
                .collect()
        });
        map.insert(key, index);
        (index, true)
    }

    /// The cell at `index`, which `find` or `find_or_create` returned.
    pub(crate) fn cell(&self, index: u32) -> &StockCell {
        let (segment, offset) = locate(index);
        let cells = self.segments[segment]
            .get()
            .expect("cell indices come from this table, whose segments are never freed");
        &cells[offset]
    }

    /// The cell of an existing item.
    pub(crate) fn get(&self, key: ItemKey) -> Option<&StockCell> {
        self.find(key).map(|index| self.cell(index))
    }

    /// Visits every item (in no particular order).
    pub(crate) fn for_each(&self, mut visit: impl FnMut(ItemKey, &StockCell)) {
        for shard in self.shards.iter() {
            let map = shard.read();
            for (&key, &index) in map.iter() {
                visit(key, self.cell(index));
            }
        }
    }
}

#[cfg(all(test, not(omnistock_loom)))]
mod tests {
    use super::*;

    #[test]
    fn locate_is_dense_and_in_bounds() {
        let mut expected = (0usize, 0usize);
        for index in 0..5000u32 {
            let (segment, offset) = locate(index);
            assert_eq!((segment, offset), expected, "index {index}");
            assert!(offset < (1 << (segment as u32 + FIRST_BITS)));
            expected.1 += 1;
            if expected.1 == 1 << (segment as u32 + FIRST_BITS) {
                expected = (segment + 1, 0);
            }
        }
        assert!(locate(u32::MAX - (1 << FIRST_BITS)).0 < SEGMENTS);
    }

    #[test]
    fn shard_of_stays_in_range() {
        for key in [0, 1, u64::MAX, 0xDEAD_BEEF] {
            assert!(shard_of(key, 64) < 64);
        }
    }
}

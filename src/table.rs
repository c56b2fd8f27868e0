//! Item storage: `(sku, store)` to stock cell, with lookups that never lock
//! and never write shared memory. Cells live in an append-only arena of
//! segments that are never moved or freed, so a cell is named by a `u32`
//! index and borrowed for the life of the table; reservations keep the index
//! of every cell they hold. Items are never removed.
//!
//! The index is an open-addressing table of atomic slots, sized when the
//! inventory is built (two slots per expected item) and filled to at most
//! half; the arena's first block holds exactly the expected items. Slots
//! and arena entries are only written by a thread holding the creation lock,
//! and a slot is published (release store) after its entry's key is
//! written, so a reader that sees the slot sees the key. Items created beyond
//! the table's half go to an overflow map behind a lock: still correct, only
//! slower; size the table for the catalogue.

use crate::cell::StockCell;
use crate::ids::ItemKey;
use crate::sync::{AtomicBool, AtomicU32, AtomicU64, Mutex, Ordering, RwLock};
use std::collections::HashMap;
use std::sync::OnceLock;

/// Cells in the first arena segment; segment `s` holds `FIRST << s`.
#[cfg(not(omnistock_loom))]
const FIRST_BITS: u32 = 10;
/// Under loom every atomic is tracked: keep segments tiny.
#[cfg(omnistock_loom)]
const FIRST_BITS: u32 = 2;
const SEGMENTS: usize = (32 - FIRST_BITS) as usize;
/// The most items the arena can name.
/// The most items the segments past the first block can name (the first
/// block is at most 2^30, so indices stay below `u32::MAX`).
const MAX_ITEMS: u32 = u32::MAX - (1 << FIRST_BITS) - (1 << 30);

/// Spreads 64-bit keys over `shards` (Fibonacci hashing: multiply, keep the
/// high bits). Used by the reservation table.
pub(crate) fn shard_of(key: u64, shards: usize) -> usize {
    debug_assert!(shards.is_power_of_two());
    let mixed = key.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    (mixed >> (64 - shards.trailing_zeros())) as usize
}

/// A full-avalanche mix (the splitmix64 finalizer), so linear probing sees
/// uniform hashes even for sequential SKUs.
fn mix(mut x: u64) -> u64 {
    x ^= x >> 30;
    x = x.wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x ^= x >> 27;
    x = x.wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

fn item_hash(key: ItemKey) -> u64 {
    mix(key.sku.0 ^ mix(key.store.0))
}

/// Where arena entry `index` lives: (segment, offset).
fn locate(index: u32) -> (usize, usize) {
    let biased = u64::from(index) + (1 << FIRST_BITS);
    let segment = (63 - biased.leading_zeros() - FIRST_BITS) as usize;
    let offset = (biased - (1u64 << (segment as u32 + FIRST_BITS))) as usize;
    (segment, offset)
}

/// A slot holds 0 (empty) or `hash tag << 32 | (index + 1)`.
fn slot_value(hash: u64, index: u32) -> u64 {
    (hash & !0xFFFF_FFFF) | (u64::from(index) + 1)
}

/// An arena entry: the cell and the key it belongs to (written once, before
/// the entry is published).
#[derive(Debug, Default)]
struct Entry {
    cell: StockCell,
    sku: AtomicU64,
    store: AtomicU64,
}

impl Entry {
    fn key(&self) -> ItemKey {
        ItemKey::new(
            crate::ids::Sku(self.sku.load(Ordering::Relaxed)),
            crate::ids::StoreId(self.store.load(Ordering::Relaxed)),
        )
    }
}

/// The item table.
#[derive(Debug)]
pub(crate) struct ItemTable {
    slots: Box<[AtomicU64]>,
    /// Items placed in `slots`; creation stops using them at half.
    in_slots: AtomicU32,
    /// Set (before the first insert there) once items live in `overflow`.
    overflowed: AtomicBool,
    overflow: RwLock<HashMap<ItemKey, u32>>,
    /// Entries `0..first.len()`, allocated when the table is built (sized
    /// for the expected items, so a right-sized catalogue wastes nothing).
    first: Box<[Entry]>,
    /// Entries past `first`, in segments allocated on demand.
    segments: Box<[OnceLock<Box<[Entry]>>]>,
    /// Entries published, in index order: `for_each` reads `0..published`.
    published: AtomicU32,
    /// Serializes item creation (not a hot path: lookups never take it).
    creating: Mutex<()>,
}

impl ItemTable {
    /// A table whose lock-free index holds `expected_items` items.
    pub(crate) fn new(expected_items: usize) -> Self {
        let expected = expected_items.clamp(16, 1 << 30);
        ItemTable {
            slots: (0..expected * 2).map(|_| AtomicU64::new(0)).collect(),
            in_slots: AtomicU32::new(0),
            overflowed: AtomicBool::new(false),
            overflow: RwLock::new(HashMap::new()),
            first: (0..expected).map(|_| Entry::default()).collect(),
            segments: (0..SEGMENTS).map(|_| OnceLock::new()).collect(),
            published: AtomicU32::new(0),
            creating: Mutex::new(()),
        }
    }

    fn entry(&self, index: u32) -> &Entry {
        if let Some(entry) = self.first.get(index as usize) {
            return entry;
        }
        let (segment, offset) = locate(index - self.first.len() as u32);
        let entries = self.segments[segment]
            .get()
            .expect("indices come from this table, whose segments are never freed");
        &entries[offset]
    }

    /// Probes the slots for `key`: `Ok(index)` if found, else `Err(slot)`
    /// with the empty slot that ends its probe sequence.
    fn probe(&self, key: ItemKey, hash: u64) -> Result<u32, usize> {
        let len = self.slots.len();
        // Maps the hash onto 0..len with a multiply (no power-of-two size).
        let mut slot = ((u128::from(hash) * len as u128) >> 64) as usize;
        loop {
            let value = self.slots[slot].load(Ordering::Acquire);
            if value == 0 {
                return Err(slot);
            }
            if value >> 32 == hash >> 32 {
                let index = (value as u32) - 1;
                if self.entry(index).key() == key {
                    return Ok(index);
                }
            }
            slot += 1;
            if slot == len {
                slot = 0;
            }
        }
    }

    /// The index of an existing item's cell.
    pub(crate) fn find(&self, key: ItemKey) -> Option<u32> {
        match self.probe(key, item_hash(key)) {
            Ok(index) => Some(index),
            Err(_) if self.overflowed.load(Ordering::Acquire) => {
                self.overflow.read().get(&key).copied()
            }
            Err(_) => None,
        }
    }

    /// The index of the item's cell, creating an all-zero cell if the item is
    /// new; the flag says whether this call created it.
    pub(crate) fn find_or_create(&self, key: ItemKey) -> (u32, bool) {
        if let Some(index) = self.find(key) {
            return (index, false);
        }
        let _creating = self.creating.lock();
        if let Some(index) = self.find(key) {
            return (index, false);
        }
        let index = self.published.load(Ordering::Relaxed);
        if let Some(past) = index.checked_sub(self.first.len() as u32) {
            assert!(
                past < MAX_ITEMS,
                "omnistock holds at most about 4 billion items"
            );
            let (segment, _) = locate(past);
            self.segments[segment].get_or_init(|| {
                (0..(1usize << (segment as u32 + FIRST_BITS)))
                    .map(|_| Entry::default())
                    .collect()
            });
        }
        let entry = self.entry(index);
        entry.sku.store(key.sku.0, Ordering::Relaxed);
        entry.store.store(key.store.0, Ordering::Relaxed);

        let hash = item_hash(key);
        let in_slots = self.in_slots.load(Ordering::Relaxed) as usize;
        if in_slots < self.slots.len() / 2 {
            let slot = self
                .probe(key, hash)
                .expect_err("checked under the creation lock");
            self.in_slots.store(in_slots as u32 + 1, Ordering::Relaxed);
            // Publishes the key written above to every reader of this slot.
            self.slots[slot].store(slot_value(hash, index), Ordering::Release);
        } else {
            self.overflowed.store(true, Ordering::Release);
            self.overflow.write().insert(key, index);
        }
        self.published.store(index + 1, Ordering::Release);
        (index, true)
    }

    /// The item whose cell is at `index`.
    pub(crate) fn key(&self, index: u32) -> ItemKey {
        self.entry(index).key()
    }

    /// The cell at `index`, which `find` or `find_or_create` returned.
    pub(crate) fn cell(&self, index: u32) -> &StockCell {
        &self.entry(index).cell
    }

    /// The cell of an existing item.
    pub(crate) fn get(&self, key: ItemKey) -> Option<&StockCell> {
        self.find(key).map(|index| self.cell(index))
    }

    /// Visits every item, in the order they were created.
    pub(crate) fn for_each(&self, mut visit: impl FnMut(ItemKey, &StockCell)) {
        let published = self.published.load(Ordering::Acquire);
        for index in 0..published {
            let entry = self.entry(index);
            visit(entry.key(), &entry.cell);
        }
    }

    /// Items in the table.
    pub(crate) fn len(&self) -> usize {
        self.published.load(Ordering::Acquire) as usize
    }
}

#[cfg(all(test, not(omnistock_loom)))]
mod tests {
    use super::*;
    use crate::ids::{Sku, StoreId};

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
        assert!(locate(MAX_ITEMS).0 < SEGMENTS);
    }

    #[test]
    fn shard_of_stays_in_range() {
        for key in [0, 1, u64::MAX, 0xDEAD_BEEF] {
            assert!(shard_of(key, 64) < 64);
        }
    }

    #[test]
    fn finds_every_item_past_the_slots_into_overflow() {
        let table = ItemTable::new(16);
        let keys: Vec<ItemKey> = (0..200u64)
            .map(|i| ItemKey::new(Sku(i % 17), StoreId(i / 17)))
            .collect();
        for (n, &key) in keys.iter().enumerate() {
            assert_eq!(table.find_or_create(key), (n as u32, true));
        }
        assert!(table.overflowed.load(Ordering::Relaxed));
        for (n, &key) in keys.iter().enumerate() {
            assert_eq!(table.find(key), Some(n as u32));
            assert_eq!(table.find_or_create(key), (n as u32, false));
        }
        assert_eq!(table.find(ItemKey::new(Sku(99), StoreId(99))), None);
        let mut seen = Vec::new();
        table.for_each(|key, _| seen.push(key));
        assert_eq!(seen, keys);
        assert_eq!(table.len(), 200);
    }
}

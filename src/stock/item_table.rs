//! Item storage: `(sku, store)` to stock cell, with lookups that never lock
//! and never write shared memory. A cell is named by a `u32` index that
//! stays valid for the life of the table (reservations keep the index of
//! every cell they hold): entries are never moved or freed, and items are
//! never removed.
//!
//! What it wins over `parking_lot::RwLock<hashbrown::HashMap>` with the
//! cells in a `Vec`, and over `dashmap::DashMap`: a lookup of a present
//! item in a large table reads one structure and takes no lock, faster
//! than either from one thread; see docs/PERFORMANCE.md 'Structures'.
//!
//! The cells live in the lock-free index itself: an open-addressing table of
//! 24-byte entries (the cell's word and safety stock, the item's store and
//! its sku), probed linearly from where the hash maps, so finding an item
//! reads one run of adjacent entries and no second structure. An item's
//! index is its table position. Stores are interned: an entry holds its
//! store's number plus one (0 marks a vacant entry), and a small append-only
//! store table maps numbers back to [`StoreId`]s for comparisons and
//! [`key`](ItemTable::key).
//!
//! The table is sized when the inventory is built: `expected + expected / 8`
//! entries for `expected` items, and it takes at most `expected` items (load
//! at most 8/9). Items created past that live in an append-only arena of
//! segments, with indices from the table's capacity up (so an index below
//! the capacity is a table position), and are found through an overflow map
//! behind a lock: still correct, only slower; size the table for the
//! catalogue.
//!
//! `for_each` visits items in the order they were created (what
//! `Inventory::items` promises), which table positions do not give: a list
//! of the table positions in creation order, 4 bytes per expected item,
//! records it (arena entries are already in creation order). The load
//! factor is set so that table and list together stay within 32 bytes per
//! expected item (24 × 9/8 + 4 = 31); the price of load 8/9 is longer
//! probes once the table is full, above all for misses (unknown items,
//! creations).
//!
//! Entries, the store table and the creation-order list are only written by
//! a thread holding the creation lock. An entry's sku, and its store's id in
//! the store table, are written before the entry's store number, which is
//! stored with release and loaded with acquire: a reader that sees an entry
//! occupied sees its whole key, and one that sees it vacant ends its probe
//! there, rightly: an item is placed in the first vacant entry of its probe
//! sequence, so every entry before it was occupied first, and entries are
//! never emptied.

use crate::error::BuildError;
use crate::stock::cell::{SafetyChanges, StockCell};
use crate::stock::sku_index::SkuIndex;
use crate::sync::{AtomicBool, AtomicU32, AtomicU64, Mutex, Ordering, RwLock};
use crate::types::{ItemKey, Sku, StoreId};
use std::collections::HashMap;
use std::sync::OnceLock;

/// Entries in the first arena segment; segment `s` holds `FIRST << s`. The
/// store table is segmented the same way.
#[cfg(not(omnistock_loom))]
const FIRST_BITS: u32 = 10;
/// Under loom every atomic is tracked: keep segments tiny.
#[cfg(omnistock_loom)]
const FIRST_BITS: u32 = 2;
const SEGMENTS: usize = (32 - FIRST_BITS) as usize;
/// The most items the arena can name (the table has fewer than 2^30
/// entries, so indices stay below `u32::MAX`); also the most stores.
const MAX_ITEMS: u32 = u32::MAX - (1 << FIRST_BITS) - (1 << 30);
/// The most items the table itself holds, whatever was asked: keeps its
/// capacity, `expected + expected / 8`, below 2^30.
const MAX_EXPECTED: usize = (1 << 30) / 9 * 8;

/// Tables larger than this are taken not to stay in cache (see
/// `ItemTable::is_large`).
const LARGE_TABLE_BYTES: usize = 2 << 20;

/// A full-avalanche mix (the splitmix64 finalizer), so linear probing sees
/// uniform hashes even for sequential SKUs.
fn mix(mut x: u64) -> u64 {
    x ^= x >> 30;
    x = x.wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x ^= x >> 27;
    x = x.wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// The store is spread over the word by one multiply by an odd constant
/// (a bijection) rather than a second full mix: the one mix after the
/// xor gives the avalanche, and pairs that collide before it collide
/// either way (`sku ^ f(store)` repeats whenever `f` differs by the skus'
/// xor).
fn item_hash(key: ItemKey) -> u64 {
    mix(key.sku.0 ^ key.store.0.wrapping_mul(0x9E37_79B9_7F4A_7C15))
}

/// Where a probe for `hash` starts in a table of `len` entries: the hash
/// mapped onto `0..len` with a multiply (no power-of-two size needed).
fn home(hash: u64, len: usize) -> usize {
    ((u128::from(hash) * len as u128) >> 64) as usize
}

/// Where entry `index` of a segmented array lives: (segment, offset).
fn locate(index: u32) -> (usize, usize) {
    let biased = u64::from(index) + (1 << FIRST_BITS);
    let segment = (63 - biased.leading_zeros() - FIRST_BITS) as usize;
    let offset = (biased - (1u64 << (segment as u32 + FIRST_BITS))) as usize;
    (segment, offset)
}

/// Segment `segment` of a segmented array, all zero.
fn new_segment<T: Default>(segment: usize) -> Box<[T]> {
    (0..(1usize << (segment as u32 + FIRST_BITS)))
        .map(|_| T::default())
        .collect()
}

/// An item: its cell and its key. The store's number plus one lives in the
/// cell's `store` field (0: vacant); it is written last, with release, after
/// the sku.
#[derive(Debug, Default)]
struct Entry {
    cell: StockCell,
    sku: AtomicU64,
}

// Cell word, safety stock, store number and sku, without padding. (loom's
// atomics are bigger.)
#[cfg(not(omnistock_loom))]
const _: () = assert!(std::mem::size_of::<Entry>() == 24);

// SAFETY: an entry is four atomics (the cell's `AtomicU64` word, its
// `AtomicU32` safety stock and store number, and the `AtomicU64` sku), each
// valid when zero, and no padding (asserted above); all zero is a vacant
// entry, which is what `Entry::default()` makes. Not under loom, whose
// atomics are not plain integers.
#[cfg(not(omnistock_loom))]
#[allow(unsafe_code)]
unsafe impl bytemuck::Zeroable for Entry {}

/// The table's entries, all vacant: on memory advised for huge pages (see
/// `huge_pages`), where a reserve's lookup of a random entry seldom misses
/// the TLB.
#[cfg(not(omnistock_loom))]
fn vacant_entries(len: usize) -> Result<Box<[Entry]>, BuildError> {
    crate::stock::huge_pages::zeroed_slice("the item table", len)
}

/// Under loom, entries made one by one.
#[cfg(omnistock_loom)]
fn vacant_entries(len: usize) -> Result<Box<[Entry]>, BuildError> {
    BuildError::allocate("the item table", len, Entry::default)
}

/// Writes a vacant entry's key: `store` is the store's number.
fn fill(entry: &Entry, sku: Sku, store: u32) {
    entry.sku.store(sku.0, Ordering::Relaxed);
    // Publishes the sku, and the store id interned before this, to every
    // reader that loads the store number with acquire.
    entry.cell.store.store(store + 1, Ordering::Release);
}

/// The item table.
#[derive(Debug)]
pub(crate) struct ItemTable {
    /// The lock-free index, cells inline; index = position.
    table: Box<[Entry]>,
    /// The most items placed in `table`; the first `limit` items created.
    limit: u32,
    /// Table positions of the first `limit` items, in creation order.
    order: Box<[AtomicU32]>,
    /// Set (before the first insert there) once items live in `overflow`.
    overflowed: AtomicBool,
    /// Items past the table: key to index.
    overflow: RwLock<HashMap<ItemKey, u32>>,
    /// Entries of items past the table (index `table.len() + i` is entry
    /// `i`), in segments allocated on demand.
    arena: Box<[OnceLock<Box<[Entry]>>]>,
    /// Store number to store id, in segments allocated on demand.
    stores: Box<[OnceLock<Box<[AtomicU64]>>]>,
    /// Items created: `for_each` reads the first `published`.
    published: AtomicU32,
    /// Serializes item creation (not a hot path: lookups never take it) and
    /// holds the store numbers.
    creating: Mutex<HashMap<StoreId, u32>>,
    /// The cells' safety stock changes, for readers by loads alone.
    safety_changes: SafetyChanges,
    /// Each SKU's cells, appended under `creating` as items are created,
    /// before they can be found.
    by_sku: SkuIndex,
}

impl ItemTable {
    /// A table whose lock-free index holds `expected_items` items (at
    /// least 16, at most `MAX_EXPECTED`), or the allocation the system
    /// refused.
    pub(crate) fn try_new(expected_items: usize) -> Result<Self, BuildError> {
        let expected = expected_items.clamp(16, MAX_EXPECTED);
        Ok(ItemTable {
            table: vacant_entries(expected + expected / 8)?,
            limit: expected as u32,
            order: BuildError::allocate("the items' creation order", expected, AtomicU32::default)?,
            overflowed: AtomicBool::new(false),
            overflow: RwLock::new(HashMap::new()),
            arena: (0..SEGMENTS).map(|_| OnceLock::new()).collect(),
            stores: (0..SEGMENTS).map(|_| OnceLock::new()).collect(),
            published: AtomicU32::new(0),
            creating: Mutex::new(HashMap::new()),
            safety_changes: SafetyChanges::default(),
            by_sku: SkuIndex::default(),
        })
    }

    /// The count of the cells' safety stock changes, which the cells'
    /// readers of safety stock by loads alone, and its changes, take.
    #[inline]
    pub(crate) fn safety_changes(&self) -> &SafetyChanges {
        &self.safety_changes
    }

    /// `try_new` for tests, which ask for little.
    #[cfg(test)]
    pub(crate) fn new(expected_items: usize) -> Self {
        Self::try_new(expected_items).expect("a test's item table")
    }

    fn entry(&self, index: u32) -> &Entry {
        if let Some(entry) = self.table.get(index as usize) {
            return entry;
        }
        let (segment, offset) = locate(index - self.table.len() as u32);
        let entries = self.arena[segment]
            .get()
            .expect("indices come from this table, whose segments are never freed");
        &entries[offset]
    }

    /// The id of store number `number`, which an entry published.
    fn store_id(&self, number: u32) -> StoreId {
        let (segment, offset) = locate(number);
        let ids = self.stores[segment]
            .get()
            .expect("store numbers come from this table, whose segments are never freed");
        StoreId(ids[offset].load(Ordering::Relaxed))
    }

    /// The key of a published entry.
    fn key_of(&self, entry: &Entry) -> ItemKey {
        let store = entry.cell.store.load(Ordering::Acquire);
        debug_assert_ne!(store, 0, "a published entry");
        ItemKey::new(
            Sku(entry.sku.load(Ordering::Relaxed)),
            self.store_id(store - 1),
        )
    }

    /// Probes the table for `key`: `Ok(position)` if found, else
    /// `Err(position)` of the vacant entry that ends its probe sequence.
    fn probe(&self, key: ItemKey, hash: u64) -> Result<u32, usize> {
        let table = &*self.table;
        let start = home(hash, table.len());
        // From the home to the end, then from the start of the table: two
        // plain walks over slices, with no wrap test or bounds check at
        // each step.
        let (after, before) = (&table[start..], &table[..start]);
        let walks = [(start, after), (0, before)];
        for (first, entries) in walks {
            for (n, entry) in entries.iter().enumerate() {
                // Acquire: sees the sku and store id written before it.
                let store = entry.cell.store.load(Ordering::Acquire);
                if store == 0 {
                    return Err(first + n);
                }
                if entry.sku.load(Ordering::Relaxed) == key.sku.0
                    && self.store_id(store - 1) == key.store
                {
                    return Ok((first + n) as u32);
                }
            }
        }
        unreachable!("the table keeps vacant entries: it takes at most `limit` items")
    }

    /// `Ok(index)` of an existing item, else `Err(position)` of the vacant
    /// table entry that ends its probe sequence.
    fn search(&self, key: ItemKey, hash: u64) -> Result<u32, usize> {
        let vacant = match self.probe(key, hash) {
            Ok(index) => return Ok(index),
            Err(vacant) => vacant,
        };
        if self.overflowed.load(Ordering::Acquire) {
            if let Some(&index) = self.overflow.read().get(&key) {
                return Ok(index);
            }
        }
        Err(vacant)
    }

    /// The index of an existing item's cell.
    pub(crate) fn find(&self, key: ItemKey) -> Option<u32> {
        self.search(key, item_hash(key)).ok()
    }

    /// [`find`](Self::find) with the key's hash, which
    /// [`touch`](Self::touch) returned.
    pub(crate) fn find_hashed(&self, key: ItemKey, hash: u64) -> Option<u32> {
        debug_assert_eq!(hash, item_hash(key));
        self.search(key, hash).ok()
    }

    /// Whether the table is too large to stay in a core's cache (over 2
    /// MiB), so that reading entries ahead of use ([`touch`](Self::touch))
    /// pays: below that it only costs the reads.
    pub(crate) fn is_large(&self) -> bool {
        std::mem::size_of_val(&*self.table) > LARGE_TABLE_BYTES
    }

    /// Reads the table entry where the probe for `key` starts, without
    /// using it, and returns the key's hash for
    /// [`find_hashed`](Self::find_hashed): a cart that touches all its
    /// items first, then looks them up, waits for their cache misses
    /// together instead of one after another (a lookup's first read almost
    /// always misses in a large catalogue).
    pub(crate) fn touch(&self, key: ItemKey) -> u64 {
        let hash = item_hash(key);
        let entry = &self.table[home(hash, self.table.len())];
        std::hint::black_box(entry.cell.store.load(Ordering::Relaxed));
        hash
    }

    /// Starts loading the first two cache lines of the probe for `key`
    /// without waiting for them (see `prefetch`).
    pub(crate) fn prefetch(&self, key: ItemKey) {
        let table = &*self.table;
        let start = home(item_hash(key), table.len());
        crate::prefetch::prefetch(&table[start]);
        // 72 bytes on: in the next cache line, wherever the first entry
        // starts in its own.
        if let Some(entry) = table.get(start + 3) {
            crate::prefetch::prefetch(entry);
        }
    }

    /// Makes room for `items` more items in the SKU index (recovery).
    pub(crate) fn reserve(&self, items: usize) {
        self.by_sku.reserve(items);
    }

    /// The number of `store`, numbering it (and publishing its id in the
    /// store table, for the entry's release to carry) if it is new. Called
    /// under the creation lock, which guards `numbers`.
    fn intern(&self, numbers: &mut HashMap<StoreId, u32>, store: StoreId) -> u32 {
        if let Some(&number) = numbers.get(&store) {
            return number;
        }
        let number = numbers.len() as u32;
        assert!(
            number < MAX_ITEMS,
            "omnistock holds at most about 3 billion stores"
        );
        let (segment, offset) = locate(number);
        self.stores[segment].get_or_init(|| new_segment(segment))[offset]
            .store(store.0, Ordering::Relaxed);
        numbers.insert(store, number);
        number
    }

    /// The index of the item's cell, creating an all-zero cell if the item is
    /// new; the flag says whether this call created it.
    #[cfg(test)]
    pub(crate) fn find_or_create(&self, key: ItemKey) -> (u32, bool) {
        self.find_or_create_with(key, |_| {})
    }

    /// As [`find_or_create`](Self::find_or_create), and a new item's cell
    /// gets `init` before the item is published: a creation and its first
    /// change are one instant for every reader (nobody sees the all-zero
    /// cell of an item created by a restock). `init` runs under the
    /// creation lock, only if this call creates the item.
    pub(crate) fn find_or_create_with(
        &self,
        key: ItemKey,
        init: impl FnOnce(&StockCell),
    ) -> (u32, bool) {
        let hash = item_hash(key);
        if let Ok(index) = self.search(key, hash) {
            return (index, false);
        }
        let mut numbers = self.creating.lock();
        let vacant = match self.search(key, hash) {
            Ok(index) => return (index, false),
            Err(vacant) => vacant,
        };
        let created = self.published.load(Ordering::Relaxed);
        let index = if created < self.limit {
            init(&self.table[vacant].cell);
            // Listed before the key is filled in: whoever finds the item
            // finds it in its SKU's list too.
            self.by_sku.add(key.sku, vacant as u32);
            fill(
                &self.table[vacant],
                key.sku,
                self.intern(&mut numbers, key.store),
            );
            self.order[created as usize].store(vacant as u32, Ordering::Relaxed);
            vacant as u32
        } else {
            let past = created - self.limit;
            assert!(
                past < MAX_ITEMS,
                "omnistock holds at most about 4 billion items"
            );
            let (segment, offset) = locate(past);
            let entry = &self.arena[segment].get_or_init(|| new_segment(segment))[offset];
            init(&entry.cell);
            let index = self.table.len() as u32 + past;
            self.by_sku.add(key.sku, index);
            fill(entry, key.sku, self.intern(&mut numbers, key.store));
            self.overflowed.store(true, Ordering::Release);
            self.overflow.write().insert(key, index);
            index
        };
        // Publishes the creation order (and the arena entry) to `for_each`.
        self.published.store(created + 1, Ordering::Release);
        (index, true)
    }

    /// Visits the cell index of every item of `sku`, oldest first, without
    /// scanning the other items (`visit` must not create items).
    pub(crate) fn for_each_of_sku(&self, sku: Sku, visit: impl FnMut(u32)) {
        self.by_sku.for_each(sku, visit);
    }

    /// The item whose cell is at `index`.
    pub(crate) fn key(&self, index: u32) -> ItemKey {
        self.key_of(self.entry(index))
    }

    /// Reads the entry of the cell at `index` without using it (see
    /// [`touch`](Self::touch)).
    pub(crate) fn touch_cell(&self, index: u32) {
        std::hint::black_box(self.entry(index).cell.store.load(Ordering::Relaxed));
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
        self.for_each_indexed(|_, key, cell| visit(key, cell));
    }

    /// [`for_each`](Self::for_each), with each item's cell index.
    pub(crate) fn for_each_indexed(&self, mut visit: impl FnMut(u32, ItemKey, &StockCell)) {
        let published = self.published.load(Ordering::Acquire);
        let in_table = published.min(self.limit);
        let positions = self.order[..in_table as usize]
            .iter()
            .map(|position| position.load(Ordering::Relaxed));
        let past = (self.table.len() as u32)..(self.table.len() as u32 + published - in_table);
        for index in positions.chain(past) {
            let entry = self.entry(index);
            visit(index, self.key_of(entry), &entry.cell);
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

    fn item(sku: u64, store: u64) -> ItemKey {
        ItemKey::new(Sku(sku), StoreId(store))
    }

    fn visited(table: &ItemTable) -> Vec<ItemKey> {
        let mut seen = Vec::new();
        table.for_each(|key, _| seen.push(key));
        seen
    }

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
    fn capacity_leaves_room_and_indices_fit() {
        for expected in [0, 16, 17, 1000, 1_000_003] {
            let table = ItemTable::new(expected);
            let limit = table.limit as usize;
            assert_eq!(limit, expected.max(16));
            assert_eq!(table.table.len(), limit + limit / 8);
            assert!(table.table.len() - limit >= 2);
        }
        let largest = MAX_EXPECTED + MAX_EXPECTED / 8;
        assert!(largest < 1 << 30);
        assert!(u64::from(MAX_ITEMS) + largest as u64 <= u64::from(u32::MAX));
    }

    #[test]
    fn finds_every_item_past_the_table_into_overflow() {
        let table = ItemTable::new(16);
        let keys: Vec<ItemKey> = (0..200u64).map(|i| item(i % 17, i / 17)).collect();
        let mut indices = Vec::new();
        for &key in &keys {
            let (index, created) = table.find_or_create(key);
            assert!(created, "{key}");
            indices.push(index);
        }
        assert!(table.overflowed.load(Ordering::Relaxed));
        for (&key, &index) in keys.iter().zip(&indices) {
            assert_eq!(table.find(key), Some(index));
            assert_eq!(table.find_or_create(key), (index, false));
            assert_eq!(table.key(index), key);
        }
        assert_eq!(table.find(item(99, 99)), None);
        assert_eq!(visited(&table), keys);
        assert_eq!(table.len(), 200);
    }

    #[test]
    fn a_full_table_spills_into_the_arena() {
        let table = ItemTable::new(16);
        let capacity = table.table.len() as u32;
        for n in 0..40u64 {
            let key = item(1000 + n, 7);
            let (index, created) = table.find_or_create(key);
            assert!(created);
            if n < 16 {
                assert!(index < capacity, "item {n} in the table, at {index}");
                assert!(!table.overflowed.load(Ordering::Relaxed));
            } else {
                // Past the table, indices count up from its capacity.
                assert_eq!(index, capacity + n as u32 - 16);
                assert!(table.overflowed.load(Ordering::Relaxed));
            }
        }
        let in_table = table
            .table
            .iter()
            .filter(|entry| entry.cell.store.load(Ordering::Relaxed) != 0)
            .count();
        assert_eq!(in_table, 16);
        for n in 0..40u64 {
            let index = table.find(item(1000 + n, 7)).expect("created");
            assert_eq!(table.key(index), item(1000 + n, 7));
        }
        assert_eq!(table.find(item(1000, 8)), None);
        assert_eq!(table.find(item(2000, 7)), None);
    }

    #[test]
    fn probing_wraps_around_the_end_of_the_table() {
        let table = ItemTable::new(16);
        let last = table.table.len() - 1;
        // Three items whose probes start at the last entry.
        let keys: Vec<ItemKey> = (0..)
            .map(|sku| item(sku, 3))
            .filter(|&key| home(item_hash(key), table.table.len()) == last)
            .take(3)
            .collect();
        let indices: Vec<u32> = keys
            .iter()
            .map(|&key| table.find_or_create(key).0)
            .collect();
        assert_eq!(indices, [last as u32, 0, 1]);
        for (&key, &index) in keys.iter().zip(&indices) {
            assert_eq!(table.find(key), Some(index));
            assert_eq!(table.key(index), key);
        }
        // A miss starting there also wraps, and stops at the vacant entry 2.
        let missing = (1000..)
            .map(|sku| item(sku, 3))
            .find(|&key| home(item_hash(key), table.table.len()) == last)
            .unwrap();
        assert_eq!(table.probe(missing, item_hash(missing)), Err(2));
        assert_eq!(table.find(missing), None);
    }

    #[test]
    fn prefetching_any_home_stays_in_the_table_and_changes_nothing() {
        let table = ItemTable::new(16);
        let len = table.table.len();
        let created: Vec<ItemKey> = (0..10).map(|sku| item(sku, 1)).collect();
        for &key in &created {
            table.find_or_create(key);
        }
        // Keys homed at every entry, the last three included (whose
        // second prefetch would fall past the end).
        let mut homes = vec![false; len];
        for key in (0..).map(|sku| item(sku, 2)) {
            let at = home(item_hash(key), len);
            if !homes[at] {
                homes[at] = true;
                table.prefetch(key);
            }
            if homes.iter().all(|&seen| seen) {
                break;
            }
        }
        assert_eq!(table.len(), created.len());
        for &key in &created {
            assert_eq!(table.key(table.find(key).expect("created")), key);
        }
        assert_eq!(table.find(item(0, 2)), None);
    }

    #[test]
    fn stores_are_interned_once_and_round_trip() {
        // More stores than the store table's first segment, ids spread over
        // the whole u64 range.
        let stores: Vec<u64> = (0..3000u64)
            .map(|n| n.wrapping_mul(0x9E37_79B9_7F4A_7C15))
            .collect();
        let table = ItemTable::new(4096);
        let mut keys = Vec::new();
        for sku in [1, u64::MAX] {
            for &store in &stores {
                let key = item(sku, store);
                let (index, created) = table.find_or_create(key);
                assert!(created);
                assert_eq!(table.key(index), key);
                keys.push((key, index));
            }
        }
        assert_eq!(table.creating.lock().len(), stores.len());
        for &(key, index) in &keys {
            assert_eq!(table.find(key), Some(index));
            assert_eq!(table.key(index), key);
        }
        // Same sku, a store never seen; a seen store, another sku.
        assert_eq!(table.find(item(1, 12_345)), None);
        assert_eq!(table.find(item(2, stores[5])), None);
        assert_eq!(
            visited(&table),
            keys.iter().map(|&(key, _)| key).collect::<Vec<_>>()
        );
    }

    /// The loom model `lookups_racing_creation_in_their_entry_see_no_torn_key`
    /// (tests/loom.rs) creates sku 571 at store 3 while looking up these
    /// missing items: it needs them all to start probing at the same entry
    /// of the smallest table. Pick new keys there if the hash changes.
    #[test]
    fn loom_collision_keys_share_a_home() {
        let len = ItemTable::new(1).table.len();
        let start = |sku, store| home(item_hash(item(sku, store)), len);
        for (sku, store) in [(0, 3), (571, 0), (0, 0)] {
            assert_eq!(start(sku, store), start(571, 3), "sku {sku} at {store}");
        }
    }

    #[test]
    fn for_each_visits_in_creation_order() {
        let table = ItemTable::new(32);
        // Table positions come in hash order, not creation order; the first
        // 32 go to the table, the rest to the arena.
        let keys: Vec<ItemKey> = (0..100u64).rev().map(|n| item(n * 31, n % 5)).collect();
        for (n, &key) in keys.iter().enumerate() {
            table.find_or_create(key);
            // Looking items up again creates nothing and changes no order.
            table.find_or_create(keys[n / 2]);
        }
        let positions: Vec<u32> = keys[..32]
            .iter()
            .map(|&key| table.find(key).unwrap())
            .collect();
        let mut sorted = positions.clone();
        sorted.sort_unstable();
        assert_ne!(positions, sorted, "the test needs positions out of order");
        assert_eq!(visited(&table), keys);
        assert_eq!(table.len(), 100);
    }
}

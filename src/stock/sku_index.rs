//! The stores of each SKU: for every SKU, the cell indices of its items,
//! in the order they were created. Network availability (a SKU across its
//! stores) reads one SKU's list instead of scanning every item.
//!
//! Invariant: an item's index is appended under the item table's creation
//! lock, before the item is published, so a reader that sees the item in
//! the table finds it in its SKU's list too. Items are never removed, so a
//! list only grows.

use crate::sync::RwLock;
use crate::types::Sku;
use std::collections::HashMap;

/// A multiply-rotate hasher for SKU numbers: item creation (and recovery,
/// which creates every item of a snapshot) pays SipHash's cost per item
/// otherwise. SKUs are the retailer's own numbers, not chosen by outsiders.
#[derive(Clone, Copy, Debug, Default)]
struct SkuHasher(u64);

impl std::hash::Hasher for SkuHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.write_u64(u64::from(byte));
        }
    }

    fn write_u64(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(0x51_7C_C1_B7_27_22_0A_95);
    }
}

/// Every SKU's cell indices.
#[derive(Debug, Default)]
pub(crate) struct SkuIndex {
    by_sku: RwLock<HashMap<Sku, Vec<u32>, std::hash::BuildHasherDefault<SkuHasher>>>,
}

impl SkuIndex {
    /// Records that the item of `sku` at cell `index` exists. Called once
    /// per item, by its creation.
    pub(crate) fn add(&self, sku: Sku, index: u32) {
        self.by_sku.write().entry(sku).or_default().push(index);
    }

    /// Makes room for `skus` more SKUs at once (recovery knows how many
    /// items come), so the map does not grow step by step.
    pub(crate) fn reserve(&self, skus: usize) {
        self.by_sku.write().reserve(skus);
    }

    /// Visits the cell index of every item of `sku`, oldest first, under
    /// the index's read lock (`visit` must not create items).
    pub(crate) fn for_each(&self, sku: Sku, mut visit: impl FnMut(u32)) {
        if let Some(cells) = self.by_sku.read().get(&sku) {
            for &cell in cells {
                visit(cell);
            }
        }
    }
}

#[cfg(all(test, not(omnistock_loom)))]
mod tests {
    use super::*;

    #[test]
    fn lists_each_skus_cells_in_creation_order() {
        let index = SkuIndex::default();
        index.add(Sku(1), 4);
        index.add(Sku(2), 5);
        index.add(Sku(1), 9);
        let mut seen = Vec::new();
        index.for_each(Sku(1), |cell| seen.push(cell));
        assert_eq!(seen, [4, 9]);
        let mut none = Vec::new();
        index.for_each(Sku(3), |cell| none.push(cell));
        assert!(none.is_empty());
    }
}

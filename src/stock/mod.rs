//! Stock: each item's cell word and the table that finds an item's cell.
//!
//! Owns the one invariant the crate exists for, `reserved <= on_hand` in
//! every cell at every instant, which only [`cell`]'s compare-and-swap loops
//! and the claims of [`claims`] (several cells changed at one instant)
//! change. Items are never removed, so a cell index stays valid for the life
//! of the inventory.

pub(crate) mod cell;
pub(crate) mod claims;
// Under loom the item table is made entry by entry (loom's atomics are not
// zero-valid integers), so nothing uses the zeroed allocation.
#[cfg(not(omnistock_loom))]
pub(crate) mod huge_pages;
pub(crate) mod item_table;
pub(crate) mod sku_index;

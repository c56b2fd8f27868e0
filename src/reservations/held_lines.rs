//! A reservation's held lines: which cell, how many units. A record keeps
//! its first line inline and the rest in the shard's extra lines; a new
//! cart gathers its lines here, inline up to the most one record and one
//! block hold, before the shard records them.

use crate::stock::item_table::ItemTable;
use crate::types::Line;
use smallvec::SmallVec;

/// One held line: `qty` units in the cell at index `cell`. The item's key is
/// read back from the item table, so a record stays small.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct HeldLine {
    pub(crate) cell: u32,
    pub(crate) qty: u32,
}

impl HeldLine {
    /// The line as the caller wrote it.
    pub(crate) fn line(&self, items: &ItemTable) -> Line {
        let key = items.key(self.cell);
        Line::new(key.sku, key.store, self.qty)
    }
}

/// A new reservation's held lines in request order, on their way into
/// [`ReservationShard::insert`]: inline up to the most a record and one
/// block of [`ExtraLines`] hold, so a cart of up to 4 lines allocates
/// nothing; longer carts spill onto the heap.
pub(crate) type HeldLines = SmallVec<[HeldLine; INLINE_LINES]>;

/// Lines `HeldLines` holds without allocating: a record's first line and
/// one block of the shard's extra lines.
pub(crate) const INLINE_LINES: usize = 4;

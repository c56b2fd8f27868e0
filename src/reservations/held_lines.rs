//! A reservation's held lines: which cell, how many units. A record keeps
//! its first line inline and the rest in the shard's extra lines; a new
//! cart gathers its lines here, inline up to the most one record and one
//! block hold, before the shard records them.

use crate::stock::item_table::ItemTable;
use crate::types::Line;

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
/// nothing; longer carts spill into a `Vec`.
#[derive(Debug)]
pub(crate) struct HeldLines {
    inline: [HeldLine; INLINE_LINES],
    len: usize,
    spilled: Vec<HeldLine>,
}

/// Lines `HeldLines` holds without allocating: a record's first line and
/// one block of the shard's extra lines.
pub(crate) const INLINE_LINES: usize = 4;

impl HeldLines {
    /// No lines yet.
    pub(crate) fn new() -> Self {
        HeldLines {
            inline: [HeldLine { cell: 0, qty: 0 }; INLINE_LINES],
            len: 0,
            spilled: Vec::new(),
        }
    }

    /// A single-line cart's.
    pub(crate) fn one(line: HeldLine) -> Self {
        let mut lines = HeldLines::new();
        lines.push(line);
        lines
    }

    /// Adds the next line.
    pub(crate) fn push(&mut self, line: HeldLine) {
        if self.len < INLINE_LINES {
            self.inline[self.len] = line;
        } else {
            if self.spilled.is_empty() {
                self.spilled.extend_from_slice(&self.inline);
            }
            self.spilled.push(line);
        }
        self.len += 1;
    }

    /// The lines, in the order pushed.
    pub(crate) fn as_slice(&self) -> &[HeldLine] {
        if self.len <= INLINE_LINES {
            &self.inline[..self.len]
        } else {
            &self.spilled
        }
    }
}

//! The lines after the first of a shard's multi-line reservations (a
//! record keeps its first line inline). Carts of up to `1 + BLOCK_LINES`
//! lines, most multi-line carts, keep the rest in a fixed block of a slab:
//! recording and forgetting them allocates nothing once the slab has grown,
//! and finding them is an index, not a hash lookup. Longer carts keep theirs
//! in a boxed slice. Used only under the shard lock.

use crate::reservations::held_lines::{HeldLine, INLINE_LINES};
use crate::reservations::slab::Slab;

/// Lines a block holds.
pub(crate) const BLOCK_LINES: usize = INLINE_LINES - 1;

/// A block: its lines first, then unused entries of quantity 0 (a held
/// line holds at least one unit).
type Block = [HeldLine; BLOCK_LINES];

const UNUSED: HeldLine = HeldLine { cell: 0, qty: 0 };

/// Where a reservation's lines after the first are, stored in its record:
/// 0 for none, `2k + 1` for block `k`, `2k + 2` for long list `k`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct MoreLines(u32);

impl MoreLines {
    /// A single-line reservation's.
    pub(crate) const NONE: MoreLines = MoreLines(0);

    fn block(position: u32) -> Self {
        MoreLines(position_code(position) + 1)
    }

    fn long(position: u32) -> Self {
        MoreLines(position_code(position) + 2)
    }
}

/// `2 * position`, for the positions a shard's slabs hand out (below 2^31
/// - 1: each names at least 24 bytes of memory).
fn position_code(position: u32) -> u32 {
    position
        .checked_mul(2)
        .filter(|&code| code <= u32::MAX - 2)
        .expect("fewer than 2^31 multi-line reservations in one shard")
}

/// The lines after the first of one shard's reservations.
#[derive(Debug)]
pub(crate) struct ExtraLines {
    blocks: Slab<Block>,
    long: Slab<Box<[HeldLine]>>,
}

impl Default for ExtraLines {
    fn default() -> Self {
        ExtraLines {
            blocks: Slab::new([UNUSED; BLOCK_LINES]),
            long: Slab::new(Box::default()),
        }
    }
}

impl ExtraLines {
    /// Stores `lines` (a reservation's lines after the first, each of at
    /// least one unit) and says where they are. (Inlined: a single-line
    /// cart, the common one, then costs a comparison.)
    #[inline]
    pub(crate) fn store(&mut self, lines: &[HeldLine]) -> MoreLines {
        if lines.is_empty() {
            return MoreLines::NONE;
        }
        self.store_some(lines)
    }

    fn store_some(&mut self, lines: &[HeldLine]) -> MoreLines {
        debug_assert!(lines.iter().all(|line| line.qty > 0));
        match lines.len() {
            n if n <= BLOCK_LINES => {
                let mut block = [UNUSED; BLOCK_LINES];
                block[..n].copy_from_slice(lines);
                MoreLines::block(self.blocks.insert(block))
            }
            _ => MoreLines::long(self.long.insert(lines.into())),
        }
    }

    /// The lines stored at `more`.
    #[inline]
    pub(crate) fn get(&self, more: MoreLines) -> &[HeldLine] {
        if more == MoreLines::NONE {
            return &[];
        }
        self.get_some(more)
    }

    fn get_some(&self, more: MoreLines) -> &[HeldLine] {
        match more.0 {
            code if code % 2 == 1 => {
                let block = self.blocks.get(code / 2);
                let used = block.iter().take_while(|line| line.qty > 0).count();
                &block[..used]
            }
            code => self.long.get(code / 2 - 1),
        }
    }

    /// Frees the lines stored at `more`.
    #[inline]
    pub(crate) fn free(&mut self, more: MoreLines) {
        if more != MoreLines::NONE {
            self.free_some(more);
        }
    }

    fn free_some(&mut self, more: MoreLines) {
        match more.0 {
            code if code % 2 == 1 => self.blocks.remove(code / 2),
            code => self.long.remove(code / 2 - 1),
        }
    }

    /// Positions handed out by the two slabs: what their memory follows.
    pub(crate) fn handed_out(&self) -> usize {
        self.blocks.handed_out() + self.long.handed_out()
    }

    /// Lists stored now.
    pub(crate) fn len(&self) -> usize {
        self.blocks.len() + self.long.len()
    }
}

#[cfg(all(test, not(omnistock_loom)))]
mod tests {
    use super::*;

    fn lines(n: u32) -> Vec<HeldLine> {
        (0..n)
            .map(|i| HeldLine {
                cell: 10 + i,
                qty: 1 + i,
            })
            .collect()
    }

    #[test]
    fn every_length_comes_back_as_it_was_stored() {
        let mut extra = ExtraLines::default();
        let stored: Vec<(Vec<HeldLine>, MoreLines)> = (0..=12)
            .chain(0..=12)
            .map(|n| {
                let lines = lines(n);
                let more = extra.store(&lines);
                (lines, more)
            })
            .collect();
        assert_eq!(extra.len(), 24, "two lists of each length from 1 to 12");
        for (lines, more) in &stored {
            assert_eq!(extra.get(*more), &lines[..]);
            assert_eq!(*more == MoreLines::NONE, lines.is_empty());
        }
        // Freed places are reused, and what stays is untouched.
        for (_, more) in &stored[..13] {
            extra.free(*more);
        }
        assert_eq!(extra.len(), 12);
        let handed_out = extra.handed_out();
        let again: Vec<MoreLines> = (1..=12).map(|n| extra.store(&lines(n))).collect();
        assert_eq!(extra.handed_out(), handed_out);
        for (n, more) in (1..=12).zip(&again) {
            assert_eq!(extra.get(*more), &lines(n)[..]);
        }
        for (lines, more) in &stored[13..] {
            assert_eq!(extra.get(*more), &lines[..]);
        }
    }

    #[test]
    fn short_lists_take_blocks_and_long_ones_boxes() {
        let mut extra = ExtraLines::default();
        extra.store(&lines(BLOCK_LINES as u32));
        assert_eq!((extra.blocks.len(), extra.long.len()), (1, 0));
        extra.store(&lines(BLOCK_LINES as u32 + 1));
        assert_eq!((extra.blocks.len(), extra.long.len()), (1, 1));
    }
}

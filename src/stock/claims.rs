//! Claims on several cells at once: how a multi-line operation (a cart's
//! reserve; the commit, release or expiry of a multi-line reservation)
//! reads and changes all its cells at one instant.
//!
//! [`Claims::take`] claims the cells in ascending index (see
//! [`StockCell::claim`]), so two claimants never wait for each other in a
//! cycle; once it returns, every cell of the set holds its claimed word
//! and nobody else reads or writes any of them: that instant is the
//! operation's. The claimant decides on the words taken out, sets the new
//! ones, and dropping the claims stores them back (the words taken out,
//! for cells not set). Claims are held for a few instructions: never while
//! waiting for a lock, an allocation or user code.

use super::cell::{StockCell, Word};
use super::item_table::ItemTable;
use crate::durability::steps::Sequencer;
use smallvec::SmallVec;

/// The cells a sealed release stored back, with their words.
pub(crate) type SealedWords = SmallVec<[(u32, Word); 4]>;

/// One claimed cell.
#[derive(Debug)]
struct Claim {
    cell: u32,
    /// What the claim took out.
    taken: Word,
    /// What dropping the claims stores back.
    next: Word,
}

/// A set of claimed cells, kept in the order given (so that a caller
/// walking its lines reaches each claim by position, without a search);
/// claimed lowest index first; released when dropped. Up to 4 inline (a
/// cart's usual size), more on the heap.
#[derive(Debug)]
pub(crate) struct Claims<'a> {
    items: &'a ItemTable,
    held: SmallVec<[Claim; 4]>,
}

/// Sets up to this size are put in claim order in an array on the stack;
/// larger ones in a list on the heap.
const SORTED_INLINE: usize = 16;

impl<'a> Claims<'a> {
    /// Claims `cells` (distinct indices, in any order), lowest index first.
    /// Position `n` of the set is the `n`th cell given.
    #[inline]
    pub(crate) fn take(items: &'a ItemTable, cells: impl Iterator<Item = u32>) -> Self {
        let mut held: SmallVec<[Claim; 4]> = SmallVec::new();
        for cell in cells {
            held.push(Claim {
                cell,
                taken: Word::EMPTY,
                next: Word::EMPTY,
            });
        }
        claim_ascending(items, &mut held);
        Claims { items, held }
    }

    /// The claimed cell at position `n` and the word its claim took out.
    #[inline]
    pub(crate) fn taken_at(&self, n: usize) -> (&'a StockCell, Word) {
        let claim = &self.held[n];
        (self.items.cell(claim.cell), claim.taken)
    }

    /// Makes `word` what the claim at position `n` stores back.
    #[inline]
    pub(crate) fn set_at(&mut self, n: usize, word: Word) {
        self.held[n].next = word;
    }

    /// The position of the claim on `cell`.
    #[inline]
    fn position(&self, cell: u32) -> usize {
        self.held
            .iter()
            .position(|claim| claim.cell == cell)
            .expect("a claimed cell")
    }

    /// The claimed cell `cell` and the word its claim took out.
    #[inline]
    pub(crate) fn taken(&self, cell: u32) -> (&'a StockCell, Word) {
        self.taken_at(self.position(cell))
    }

    /// Makes `word` what the claim on `cell` stores back.
    #[inline]
    pub(crate) fn set(&mut self, cell: u32, word: Word) {
        let at = self.position(cell);
        self.set_at(at, word);
    }

    /// Releases the claims as dropping them does, taking the step's
    /// sequence number from `seqs` first (while every cell is still
    /// claimed) when journaled; returns it with the cells and the words
    /// stored back, in ascending cell index.
    pub(crate) fn release_sealed(mut self, seqs: Option<&Sequencer>) -> Option<(u64, SealedWords)> {
        let sealed = seqs.map(|seqs| {
            let mut words: SealedWords = self.held.iter().map(|c| (c.cell, c.next)).collect();
            words.sort_unstable_by_key(|&(cell, _)| cell);
            (seqs.take(), words)
        });
        self.release();
        sealed
    }

    /// Stores back every claim's word and forgets the claims.
    #[inline]
    fn release(&mut self) {
        for claim in self.held.iter() {
            self.items.cell(claim.cell).unclaim(claim.next);
        }
        self.held.clear();
    }

    /// Stores back the words taken out, whatever was set.
    pub(crate) fn undo(&mut self) {
        for claim in &mut self.held {
            claim.next = claim.taken;
        }
    }
}

/// Claims every cell of `held` in ascending cell index, so that two
/// claimants never wait for each other in a cycle, filling in what each
/// claim took out.
#[inline]
fn claim_ascending(items: &ItemTable, held: &mut [Claim]) {
    let claim = |at: &mut Claim| {
        at.taken = items.cell(at.cell).claim();
        at.next = at.taken;
    };
    if held.len() <= SORTED_INLINE {
        // Positions sorted by cell, by insertion: a cart's few lines are
        // often in order already.
        let mut order = [0u8; SORTED_INLINE];
        for n in 1..held.len() {
            let mut j = n;
            while j > 0 && held[order[j - 1] as usize].cell > held[n].cell {
                order[j] = order[j - 1];
                j -= 1;
            }
            order[j] = n as u8;
        }
        for &n in &order[..held.len()] {
            claim(&mut held[n as usize]);
        }
    } else {
        let mut order: Vec<usize> = (0..held.len()).collect();
        order.sort_unstable_by_key(|&n| held[n].cell);
        for n in order {
            claim(&mut held[n]);
        }
    }
}

impl Drop for Claims<'_> {
    #[inline]
    fn drop(&mut self) {
        self.release();
    }
}

#[cfg(all(test, not(omnistock_loom)))]
mod tests {
    use super::*;
    use crate::types::{Channel, ItemKey, Level, Sku, StoreId};

    fn table_of(stock: &[u32]) -> (ItemTable, Vec<u32>) {
        let items = ItemTable::new(16);
        let cells = stock
            .iter()
            .enumerate()
            .map(|(n, &qty)| {
                let (index, _) = items.find_or_create(ItemKey::new(Sku(n as u64), StoreId(1)));
                items
                    .cell(index)
                    .restock(qty, &mut crate::durability::steps::Seal::new(None))
                    .unwrap();
                index
            })
            .collect();
        (items, cells)
    }

    #[test]
    fn dropped_claims_store_what_was_set_and_undo_restores() {
        let (items, cells) = table_of(&[3, 5]);
        {
            // Named in descending order: claimed in ascending.
            let mut claims = Claims::take(&items, cells.iter().rev().copied());
            for &cell in &cells {
                let (stock, taken) = claims.taken(cell);
                let held = stock.reserve_on(taken, 2, Channel::InStore).unwrap();
                claims.set(cell, held);
            }
        }
        assert_eq!(
            items.cell(cells[0]).level(items.safety_changes()),
            Level::new(3, 2, 0)
        );
        assert_eq!(
            items.cell(cells[1]).level(items.safety_changes()),
            Level::new(5, 2, 0)
        );
        {
            let mut claims = Claims::take(&items, cells.iter().copied());
            let (_, taken) = claims.taken(cells[0]);
            claims.set(cells[0], taken.committed(2));
            claims.undo();
        }
        assert_eq!(
            items.cell(cells[0]).level(items.safety_changes()),
            Level::new(3, 2, 0)
        );
        let mut claims = Claims::take(&items, cells.iter().copied());
        for &cell in &cells {
            let (_, taken) = claims.taken(cell);
            claims.set(cell, taken.committed(2));
        }
        drop(claims);
        assert_eq!(
            items.cell(cells[0]).level(items.safety_changes()),
            Level::new(1, 0, 0)
        );
        assert_eq!(
            items.cell(cells[1]).level(items.safety_changes()),
            Level::new(3, 0, 0)
        );
    }

    #[test]
    fn a_short_line_is_refused_with_what_was_available() {
        let (items, cells) = table_of(&[4]);
        items.cell(cells[0]).set_safety_stock(
            3,
            items.safety_changes(),
            &mut crate::durability::steps::Seal::new(None),
        );
        let claims = Claims::take(&items, cells.iter().copied());
        let (stock, taken) = claims.taken(cells[0]);
        assert_eq!(
            stock.reserve_on(taken, 2, Channel::Online),
            Err(crate::stock::cell::Short { available: 1 })
        );
        assert!(stock.reserve_on(taken, 4, Channel::InStore).is_ok());
    }
}

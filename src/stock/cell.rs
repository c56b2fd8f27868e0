//! The stock cell: one item's `on_hand` and `reserved` packed into a single
//! atomic word, plus its safety stock. Every change to the word is one atomic
//! read-modify-write that checks and keeps `reserved <= on_hand` in the same
//! instruction, so no thread can ever observe an oversold cell. Nothing
//! outside this module writes the word.
//!
//! A multi-line operation claims its cells (see `src/stock/claims.rs`): it
//! swaps each word for [`CLAIMED`], a value no real cell holds, decides
//! on the words it took out, and stores the results back. While a word is
//! claimed every other reader and writer of it waits, so none sees part of
//! such an operation; a word that is not claimed always holds a real
//! `reserved <= on_hand`.

use std::convert::Infallible;

use crate::durability::steps::Seal;
use crate::sync::{wait_a_little, AtomicU32, AtomicU64, Ordering};
use crate::types::Channel;
use crate::types::Level;

/// `on_hand` lives in the high half of the word, `reserved` in the low half.
const SHIFT: u32 = 32;
const LOW: u64 = u32::MAX as u64;

const fn pack(on_hand: u32, reserved: u32) -> u64 {
    ((on_hand as u64) << SHIFT) | reserved as u64
}

const fn unpack(word: u64) -> (u32, u32) {
    ((word >> SHIFT) as u32, (word & LOW) as u32)
}

/// The word of a claimed cell: `reserved > on_hand`, which no real cell
/// holds, so every value a real cell can take (each half over the whole
/// `u32` range, with `reserved <= on_hand`) stays free.
const CLAIMED: u64 = pack(0, u32::MAX);

/// A real cell word (never [`CLAIMED`]): what a claim took out of a cell,
/// and what the claimant stores back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Word(u64);

impl Word {
    /// An empty cell's word, a placeholder until a claim fills it in.
    pub(crate) const EMPTY: Word = Word(0);

    /// The word of these counters (`reserved <= on_hand`).
    pub(crate) fn of(on_hand: u32, reserved: u32) -> Word {
        Word(pack(on_hand, reserved))
    }

    /// `(on_hand, reserved)` of the word.
    #[inline]
    pub(crate) fn counters(self) -> (u32, u32) {
        unpack(self.0)
    }

    /// The word with `qty` held units returned (`reserved -= qty`). The
    /// caller owns that hold, so `reserved >= qty`.
    #[inline]
    pub(crate) fn unreserved(self, qty: u32) -> Word {
        let (on_hand, reserved) = unpack(self.0);
        debug_assert!(reserved >= qty, "released more than was held");
        Word(pack(on_hand, reserved - qty))
    }

    /// The word with a hold of `held` units ended by taking `taken` of them
    /// out of stock (a partial commit: `on_hand -= taken`, `reserved -=
    /// held`). The caller owns the hold and `taken <= held`.
    #[inline]
    pub(crate) fn committed_part(self, held: u32, taken: u32) -> Word {
        let (on_hand, reserved) = unpack(self.0);
        debug_assert!(
            reserved >= held && held >= taken,
            "committed more than was held"
        );
        Word(pack(on_hand - taken, reserved - held))
    }

    /// The word with `qty` held units taken out of stock (both halves
    /// `-= qty`). The caller owns that hold, so `on_hand >= reserved >= qty`.
    #[inline]
    pub(crate) fn committed(self, qty: u32) -> Word {
        let (on_hand, reserved) = unpack(self.0);
        debug_assert!(reserved >= qty, "committed more than was held");
        Word(pack(on_hand - qty, reserved - qty))
    }
}

/// Whether `qty` units of a real word are available past `safety`.
#[inline]
fn available(word: u64, safety: u32, qty: u32) -> Result<(), Short> {
    let (on_hand, reserved) = unpack(word);
    let available = (on_hand - reserved).saturating_sub(safety);
    if qty > available {
        Err(Short { available })
    } else {
        Ok(())
    }
}

/// Counts the safety stock changes of a table's cells, so that a reader
/// can take a cell's word and its safety stock at one instant without
/// claiming the cell: `finished << IN_PROGRESS_BITS | in progress`. A
/// change counts itself in progress before it claims its cell and
/// finished after it releases it, so a reader that finds nothing in
/// progress before its two loads and the same count after them knows
/// that no safety stock changed in between (a seqlock, with every change
/// its own writer). Its own cache line: written only by safety stock
/// changes, read by every reader of safety stock.
#[derive(Debug, Default)]
#[repr(align(64))]
pub(crate) struct SafetyChanges {
    count: AtomicU64,
}

/// Low bits of [`SafetyChanges::count`]: changes in progress (fewer than
/// 2^20 at once: one per thread).
const IN_PROGRESS_BITS: u32 = 20;
const IN_PROGRESS: u64 = (1 << IN_PROGRESS_BITS) - 1;
/// What one finished change adds to [`SafetyChanges::count`].
const FINISHED_ONE: u64 = 1 << IN_PROGRESS_BITS;

impl SafetyChanges {
    fn begin(&self) {
        self.count.fetch_add(1, Ordering::AcqRel);
    }

    fn end(&self) {
        self.count.fetch_add(FINISHED_ONE - 1, Ordering::AcqRel);
    }

    /// The count, if no change is in progress.
    #[inline]
    fn settled(&self) -> Option<u64> {
        let count = self.count.load(Ordering::Acquire);
        (count & IN_PROGRESS == 0).then_some(count)
    }

    /// Whether no change began since `settled` returned `count`.
    #[inline]
    fn unchanged_since(&self, count: u64) -> bool {
        self.count.load(Ordering::Acquire) == count
    }
}

/// One item's counters.
#[derive(Debug, Default)]
pub(crate) struct StockCell {
    word: AtomicU64,
    /// Changed only under a claim of the word (see
    /// [`set_safety_stock`](StockCell::set_safety_stock)): read either
    /// under a claim, or between two readings of the table's
    /// [`SafetyChanges`].
    safety_stock: AtomicU32,
    /// Not a counter: the item table (`src/stock/item_table.rs`) keeps the item's
    /// interned store here, in what would otherwise be padding after
    /// `safety_stock`, so that a table entry (cell and sku) is 24 bytes, not
    /// 32. Nothing in this module reads or writes it.
    pub(crate) store: AtomicU32,
}

/// A restock would pass `u32::MAX` units on hand.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct WouldOverflow {
    pub(crate) on_hand: u32,
}

/// Not enough units for the channel; `available` is what it could take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Short {
    pub(crate) available: u32,
}

/// Why a compare-and-set cycle count was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CountRefused {
    /// `on_hand` was not the expected count.
    Stale { on_hand: u32 },
    /// The count is below the units reserved.
    BelowReserved { reserved: u32 },
}

/// A cycle count below the units reserved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BelowReserved {
    pub(crate) reserved: u32,
}

impl StockCell {
    fn safety_for(&self, channel: Channel) -> u32 {
        match channel {
            Channel::Online => self.safety_stock.load(Ordering::Acquire),
            Channel::InStore => 0,
        }
    }

    /// The word and the safety stock at one instant, by loads alone: both
    /// read between two readings of `changes` that show no safety stock
    /// change begun or in progress. `None` where a change is in progress,
    /// or began meanwhile, and `wait` is false, or where the word is
    /// claimed and `wait` is false; with `wait`, waits for them instead.
    /// The instant is that of the word's load.
    #[inline]
    fn read(&self, changes: &SafetyChanges, wait: bool) -> Option<(u64, u32)> {
        let mut rounds = 0;
        loop {
            if let Some(count) = changes.settled() {
                let word = self.word.load(Ordering::Acquire);
                if word != CLAIMED {
                    let safety = self.safety_stock.load(Ordering::Acquire);
                    if changes.unchanged_since(count) {
                        return Some((word, safety));
                    }
                }
            }
            if !wait {
                return None;
            }
            wait_a_little(&mut rounds);
        }
    }

    /// A consistent reading of the cell: `on_hand`, `reserved` and safety
    /// stock at one instant, by loads alone.
    pub(crate) fn level(&self, changes: &SafetyChanges) -> Level {
        let (word, safety) = self.read(changes, true).expect("read waits");
        let (on_hand, reserved) = unpack(word);
        Level::new(on_hand, reserved, safety)
    }

    /// The word, once no claim holds it. The single-line operations pay
    /// one compare for claims; only a claimed cell takes the slow path.
    #[inline]
    fn load(&self) -> u64 {
        let word = self.word.load(Ordering::Acquire);
        if word == CLAIMED {
            return self.wait_unclaimed();
        }
        word
    }

    /// Waits until the claim on the word ends; returns the word then.
    #[cold]
    #[inline(never)]
    fn wait_unclaimed(&self) -> u64 {
        let mut rounds = 0;
        loop {
            wait_a_little(&mut rounds);
            let word = self.word.load(Ordering::Acquire);
            if word != CLAIMED {
                return word;
            }
        }
    }

    /// Claims the cell: waits while another claim holds it, then swaps its
    /// word for [`CLAIMED`]; returns the word it took out. Until
    /// [`unclaim`](Self::unclaim), nobody else reads or writes the word,
    /// nor changes the safety stock. A multi-line operation claims through
    /// `src/stock/claims.rs`, a set of cells in ascending index, so that
    /// two claimants never wait for each other in a cycle; a single-line
    /// operation claims its one cell here, waiting for nothing else while
    /// it holds it.
    #[inline]
    pub(crate) fn claim(&self) -> Word {
        let mut current = self.load();
        loop {
            match self.word.compare_exchange_weak(
                current,
                CLAIMED,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => return Word(current),
                Err(CLAIMED) => current = self.wait_unclaimed(),
                Err(actual) => current = actual,
            }
        }
    }

    /// Ends the caller's claim, installing `word`.
    #[inline]
    pub(crate) fn unclaim(&self, word: Word) {
        debug_assert_eq!(self.word.load(Ordering::Relaxed), CLAIMED);
        self.word.store(word.0, Ordering::Release);
    }

    /// What holding `qty` more units for `channel` makes of `word`, the
    /// word the caller's claim took out of this cell; `Short` if the
    /// channel has fewer available. Safety stock is read now, inside the
    /// claim.
    #[inline]
    pub(crate) fn reserve_on(&self, word: Word, qty: u32, channel: Channel) -> Result<Word, Short> {
        let (on_hand, reserved) = unpack(word.0);
        let available = (on_hand - reserved).saturating_sub(self.safety_for(channel));
        if qty > available {
            return Err(Short { available });
        }
        Ok(Word(pack(on_hand, reserved + qty)))
    }

    /// Runs `step` on the current word until it either declines (returns
    /// `Err`) or its proposed word is installed: one compare-and-swap when
    /// uncontended. A declined step costs one load and no write. A claimed
    /// word is waited for, never stepped on. For the changes that read
    /// no safety stock.
    #[inline]
    fn update<E>(&self, mut step: impl FnMut(u32, u32) -> Result<u64, E>) -> Result<u64, E> {
        let mut current = self.load();
        loop {
            let (on_hand, reserved) = unpack(current);
            let next = step(on_hand, reserved)?;
            match self.word.compare_exchange_weak(
                current,
                next,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => return Ok(next),
                Err(CLAIMED) => current = self.wait_unclaimed(),
                Err(actual) => current = actual,
            }
        }
    }

    /// Runs `step` on the word and the safety stock under a claim of the
    /// cell, and installs the word it proposes (or puts back the word
    /// taken, if it declines); its answer is then the cell at one instant,
    /// safety stock included. A compare-and-swap to claim and a store to
    /// release. For the changes that read safety stock: a plain
    /// compare-and-swap would be stepped against a safety stock read at
    /// another instant, which a change of it may pass.
    #[inline]
    fn update_claimed<T, E>(
        &self,
        seal: &mut Seal<'_>,
        step: impl FnOnce(u32, u32, u32) -> Result<(u64, T), E>,
    ) -> Result<T, E> {
        let taken = self.claim();
        let (on_hand, reserved) = unpack(taken.0);
        // Under the claim: set_safety_stock changes it only under one.
        let safety = self.safety_stock.load(Ordering::Acquire);
        match step(on_hand, reserved, safety) {
            Ok((next, answer)) => {
                if seal.is_on() {
                    // The step's sequence number, inside the claim.
                    let (on_hand, reserved) = unpack(next);
                    seal.seal(on_hand, reserved, safety);
                }
                self.unclaim(Word(next));
                Ok(answer)
            }
            Err(refusal) => {
                self.unclaim(taken);
                Err(refusal)
            }
        }
    }

    /// Holds `qty` units for `channel` if that many are available to it.
    /// In store: one compare-and-swap. Online, where safety stock counts:
    /// refused by loads alone where that can be proven (see
    /// [`check_available`](Self::check_available)), else held under a
    /// claim of the cell, so that the safety stock it is checked against
    /// is the one at that instant.
    #[inline]
    pub(crate) fn reserve(
        &self,
        qty: u32,
        channel: Channel,
        changes: &SafetyChanges,
        seal: &mut Seal<'_>,
    ) -> Result<(), Short> {
        match channel {
            // Journaled: under a claim, so the step's number is taken there.
            Channel::InStore if seal.is_on() => {
                self.update_claimed(seal, |on_hand, reserved, _| {
                    let available = on_hand - reserved;
                    if qty > available {
                        return Err(Short { available });
                    }
                    Ok((pack(on_hand, reserved + qty), ()))
                })
            }
            Channel::InStore => self
                .update(|on_hand, reserved| {
                    let available = on_hand - reserved;
                    if qty > available {
                        return Err(Short { available });
                    }
                    Ok(pack(on_hand, reserved + qty))
                })
                .map(drop),
            Channel::Online => {
                if let Some(Err(short)) = self.peek_available(qty, channel, changes) {
                    return Err(short);
                }
                self.update_claimed(seal, |on_hand, reserved, safety| {
                    let available = (on_hand - reserved).saturating_sub(safety);
                    if qty > available {
                        return Err(Short { available });
                    }
                    Ok((pack(on_hand, reserved + qty), ()))
                })
            }
        }
    }

    /// Whether `qty` units are available to `channel` now, by loads alone:
    /// what a refused reserve would report, without writing anything. A
    /// claimed word, or a safety stock change in progress, is waited for:
    /// the caller holds no claim.
    #[inline]
    pub(crate) fn check_available(
        &self,
        qty: u32,
        channel: Channel,
        changes: &SafetyChanges,
    ) -> Result<(), Short> {
        match channel {
            Channel::InStore => available(self.load(), 0, qty),
            Channel::Online => {
                let (word, safety) = self.read(changes, true).expect("read waits");
                available(word, safety, qty)
            }
        }
    }

    /// As [`check_available`](Self::check_available), but `None`, without
    /// waiting, while the word is claimed or a safety stock change is in
    /// progress (the caller may hold claims such a change waits for).
    #[inline]
    pub(crate) fn peek_available(
        &self,
        qty: u32,
        channel: Channel,
        changes: &SafetyChanges,
    ) -> Option<Result<(), Short>> {
        match channel {
            Channel::InStore => {
                let word = self.word.load(Ordering::Acquire);
                (word != CLAIMED).then(|| available(word, 0, qty))
            }
            Channel::Online => {
                let (word, safety) = self.read(changes, false)?;
                Some(available(word, safety, qty))
            }
        }
    }

    /// Returns `qty` held units. The caller owns that hold (its reservation
    /// moved to a terminal state under its lock), so `reserved >= qty`. A
    /// compare-and-swap, not a subtraction: a claimed word must be waited
    /// for, not subtracted from.
    pub(crate) fn unreserve(&self, qty: u32) {
        let step = |on_hand, reserved| Ok(Word(pack(on_hand, reserved)).unreserved(qty).0);
        match self.update::<Infallible>(step) {
            Ok(_) => {}
            Err(never) => match never {},
        }
    }

    /// Takes `qty` held units out of stock: `on_hand -= qty`, `reserved -= qty`.
    /// As for [`unreserve`](Self::unreserve), the caller owns the hold, so
    /// `on_hand >= reserved >= qty`.
    pub(crate) fn commit(&self, qty: u32) {
        let step = |on_hand, reserved| Ok(Word(pack(on_hand, reserved)).committed(qty).0);
        match self.update::<Infallible>(step) {
            Ok(_) => {}
            Err(never) => match never {},
        }
    }

    /// A journaled commit or return of a hold: `change` applied to the word
    /// under a claim of the cell, so that the step's sequence number (taken
    /// by `seal`) is taken there.
    pub(crate) fn change_sealed(&self, seal: &mut Seal<'_>, change: impl FnOnce(Word) -> Word) {
        let result = self.update_claimed::<(), Infallible>(seal, |on_hand, reserved, _| {
            Ok((change(Word(pack(on_hand, reserved))).0, ()))
        });
        match result {
            Ok(()) => {}
            Err(never) => match never {},
        }
    }

    /// Sets the cell to recovered values (recovery only: nobody else
    /// holds the inventory yet).
    pub(crate) fn restore(&self, on_hand: u32, reserved: u32) {
        self.word.store(pack(on_hand, reserved), Ordering::Release);
    }

    /// Sets the safety stock to a recovered value (recovery only).
    pub(crate) fn restore_safety(&self, safety: u32) {
        self.safety_stock.store(safety, Ordering::Release);
    }

    /// The counters and safety stock, for a snapshot: `(on_hand,
    /// reserved, safety)` at one instant.
    pub(crate) fn counters(&self, changes: &SafetyChanges) -> (u32, u32, u32) {
        let (word, safety) = self.read(changes, true).expect("read waits");
        let (on_hand, reserved) = unpack(word);
        (on_hand, reserved, safety)
    }

    /// What is available to `channel` in `word`, the word the caller's
    /// claim took out of this cell. Safety stock is read now, inside the
    /// claim.
    #[inline]
    pub(crate) fn available_on(&self, word: Word, channel: Channel) -> u32 {
        let (on_hand, reserved) = unpack(word.0);
        (on_hand - reserved).saturating_sub(self.safety_for(channel))
    }

    /// What selling `qty` units to `channel` makes of `word`, the word the
    /// caller's claim took out of this cell; `Short` if the channel has
    /// fewer available.
    #[inline]
    pub(crate) fn sell_on(&self, word: Word, qty: u32, channel: Channel) -> Result<Word, Short> {
        let available = self.available_on(word, channel);
        if qty > available {
            return Err(Short { available });
        }
        let (on_hand, reserved) = unpack(word.0);
        Ok(Word(pack(on_hand - qty, reserved)))
    }

    /// The level of `word` with this cell's safety stock.
    pub(crate) fn level_on(&self, word: Word) -> Level {
        let (on_hand, reserved) = unpack(word.0);
        Level::new(on_hand, reserved, self.safety_stock.load(Ordering::Acquire))
    }

    /// Ends a hold of `held` units by taking `taken` of them out of stock
    /// and returning the rest (a partial commit). The caller owns the hold.
    pub(crate) fn commit_part(&self, held: u32, taken: u32) {
        let step =
            |on_hand, reserved| Ok(Word(pack(on_hand, reserved)).committed_part(held, taken).0);
        match self.update::<Infallible>(step) {
            Ok(_) => {}
            Err(never) => match never {},
        }
    }

    /// A compare-and-set cycle count: as [`set_on_hand`](Self::set_on_hand),
    /// but refused as [`CountRefused::Stale`] when `on_hand` is not
    /// `expect`, which is checked first; under a claim like `set_on_hand`.
    pub(crate) fn set_on_hand_expecting(
        &self,
        qty: u32,
        expect: u32,
        seal: &mut Seal<'_>,
    ) -> Result<(Level, i64), CountRefused> {
        self.update_claimed(seal, |on_hand, reserved, safety| {
            if on_hand != expect {
                return Err(CountRefused::Stale { on_hand });
            }
            if qty < reserved {
                return Err(CountRefused::BelowReserved { reserved });
            }
            let delta = i64::from(qty) - i64::from(on_hand);
            Ok((
                pack(qty, reserved),
                (Level::new(qty, reserved, safety), delta),
            ))
        })
    }

    /// An immediate sale of `qty` units available to `channel`, under a
    /// claim (its level answers safety stock); a sale proven refused by
    /// loads alone writes nothing.
    pub(crate) fn sell(
        &self,
        qty: u32,
        channel: Channel,
        changes: &SafetyChanges,
        seal: &mut Seal<'_>,
    ) -> Result<Level, Short> {
        if let Some(Err(short)) = self.peek_available(qty, channel, changes) {
            return Err(short);
        }
        self.update_claimed(seal, |on_hand, reserved, safety| {
            let floor = match channel {
                Channel::Online => safety,
                Channel::InStore => 0,
            };
            let available = (on_hand - reserved).saturating_sub(floor);
            if qty > available {
                return Err(Short { available });
            }
            let next = pack(on_hand - qty, reserved);
            Ok((next, Level::new(on_hand - qty, reserved, safety)))
        })
    }

    /// Receives `qty` units, under a claim (its level answers safety stock).
    pub(crate) fn restock(&self, qty: u32, seal: &mut Seal<'_>) -> Result<Level, WouldOverflow> {
        self.update_claimed(seal, |on_hand, reserved, safety| {
            match on_hand.checked_add(qty) {
                Some(next) => Ok((pack(next, reserved), Level::new(next, reserved, safety))),
                None => Err(WouldOverflow { on_hand }),
            }
        })
    }

    /// A cycle count: `on_hand = qty`, refused below the units reserved,
    /// under a claim (its level answers safety stock). Returns the new
    /// level and the change of `on_hand` it caused.
    pub(crate) fn set_on_hand(
        &self,
        qty: u32,
        seal: &mut Seal<'_>,
    ) -> Result<(Level, i64), BelowReserved> {
        self.update_claimed(seal, |on_hand, reserved, safety| {
            if qty < reserved {
                return Err(BelowReserved { reserved });
            }
            let delta = i64::from(qty) - i64::from(on_hand);
            Ok((
                pack(qty, reserved),
                (Level::new(qty, reserved, safety), delta),
            ))
        })
    }

    /// Sets the safety stock; returns the new level and the change it
    /// caused. The change happens under a claim of the word, so that every
    /// operation that reads safety stock under a claim sees it wholly
    /// before or wholly after, and the level returned is the word at that
    /// instant; it is counted in progress in `changes` around the claim,
    /// so that a reader by loads alone (see `read`) that overlaps it
    /// reads again.
    pub(crate) fn set_safety_stock(
        &self,
        qty: u32,
        changes: &SafetyChanges,
        seal: &mut Seal<'_>,
    ) -> (Level, i64) {
        changes.begin();
        let word = self.claim();
        let previous = self.safety_stock.swap(qty, Ordering::AcqRel);
        if seal.is_on() {
            let (on_hand, reserved) = unpack(word.0);
            seal.seal(on_hand, reserved, qty);
        }
        self.unclaim(word);
        changes.end();
        let (on_hand, reserved) = unpack(word.0);
        (
            Level::new(on_hand, reserved, qty),
            i64::from(qty) - i64::from(previous),
        )
    }
}

#[cfg(all(test, not(omnistock_loom)))]
mod tests {
    use super::*;

    #[test]
    fn pack_round_trips_extremes() {
        for (on_hand, reserved) in [(0, 0), (u32::MAX, 0), (u32::MAX, u32::MAX), (7, 3)] {
            assert_eq!(unpack(pack(on_hand, reserved)), (on_hand, reserved));
        }
    }

    #[test]
    fn commit_subtracts_both_halves_without_borrow() {
        let (cell, changes) = (StockCell::default(), SafetyChanges::default());
        cell.restock(u32::MAX, &mut Seal::new(None)).unwrap();
        cell.reserve(u32::MAX, Channel::InStore, &changes, &mut Seal::new(None))
            .unwrap();
        cell.commit(u32::MAX);
        assert_eq!(cell.level(&changes), Level::new(0, 0, 0));
    }

    #[test]
    fn online_reserve_respects_safety_stock() {
        let (cell, changes) = (StockCell::default(), SafetyChanges::default());
        cell.restock(10, &mut Seal::new(None)).unwrap();
        cell.set_safety_stock(4, &changes, &mut Seal::new(None));
        assert_eq!(
            cell.reserve(7, Channel::Online, &changes, &mut Seal::new(None)),
            Err(Short { available: 6 })
        );
        assert!(cell
            .reserve(7, Channel::InStore, &changes, &mut Seal::new(None))
            .is_ok());
        assert_eq!(cell.level(&changes).available_online, 0);
        assert_eq!(
            cell.sell(1, Channel::Online, &changes, &mut Seal::new(None)),
            Err(Short { available: 0 })
        );
        assert_eq!(
            cell.sell(3, Channel::InStore, &changes, &mut Seal::new(None)),
            Ok(Level::new(7, 7, 4))
        );
    }
}

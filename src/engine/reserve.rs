//! Reserving: checking a cart, refusing it before the shard lock where
//! that can be proven, and holding its lines under the id's shard lock.
//!
//! Invariants: an id is counted into its shard's id filter before any of
//! its units are held, so a refusal without the lock never refuses a known
//! id; a cart of several lines is held or refused at one instant: its
//! cells are claimed together (`src/stock/claims.rs`, in ascending cell
//! index), every line is checked in the order given against the words
//! taken out, and the words go back all held or all as they were, so no
//! other operation sees the cart partly held.

use super::{ack, zero_ttl, Inventory};
use crate::clock::Clock;
use crate::command::ReservationAck;
use crate::durability::record::Op;
use crate::durability::steps::Seal;
use crate::effect::{Effect, EffectLog};
use crate::error::Error;
use crate::limits::MAX_LINES;
use crate::reservations::held_lines::{HeldLine, HeldLines};
use crate::reservations::id_filter::IdFilter;
use crate::reservations::id_placement::KeyedId;
use crate::reservations::shard::{deadline_after, Shard};
use crate::stock::cell::{self};
use crate::stock::claims::Claims;
use crate::types::{Channel, ItemKey, Line, ReservationId, ReservationState};
use arrayvec::ArrayVec;
use smallvec::SmallVec;

/// Lines of a cart whose items a reserve looks up once, and keeps: before
/// the shard lock where the shard's id filter is on (and may refuse
/// there), just after taking it where the filter is off (see
/// `reserve_with_ttl`). The lines past these are looked up as they are
/// held, under the lock.
const LOOKED_UP_LINES: usize = 8;

/// The cell indices of a cart's first lines, looked up once (before the
/// shard lock, or just after taking it), in line order.
type LookedUp = ArrayVec<u32, LOOKED_UP_LINES>;

/// Checks a reserve request's lines (step 1 of the contract, minus ttl).
pub(super) fn validate_lines(lines: &[Line]) -> Result<(), Error> {
    if lines.is_empty() {
        return Err(Error::Invalid {
            reason: "a reservation needs at least one line",
        });
    }
    if lines.len() > MAX_LINES {
        return Err(Error::Invalid {
            reason: "a reservation may have at most 256 lines",
        });
    }
    if lines.iter().any(|line| line.qty == 0) {
        return Err(Error::Invalid {
            reason: "every line needs a quantity of at least 1",
        });
    }
    let repeated = if lines.len() <= 16 {
        lines
            .iter()
            .enumerate()
            .any(|(i, a)| lines[..i].iter().any(|b| a.item() == b.item()))
    } else {
        let mut keys: Vec<ItemKey> = lines.iter().map(Line::item).collect();
        keys.sort_unstable();
        keys.windows(2).any(|pair| pair[0] == pair[1])
    };
    if repeated {
        return Err(Error::Invalid {
            reason: "the same (sku, store) appears on two lines; merge them",
        });
    }
    Ok(())
}

/// `Insufficient` for `line`, which had `available` units.
pub(super) fn insufficient(line: &Line, available: u32) -> Error {
    Error::Insufficient {
        sku: line.sku,
        store: line.store,
        requested: line.qty,
        available,
    }
}

impl Inventory {
    /// The shard of `id`, and `id` with its key in that shard's id table:
    /// one hash per operation.
    pub(super) fn shard(&self, id: ReservationId) -> (&Shard, KeyedId) {
        let (shard, keyed) = self.id_hasher.place(id.0);
        (&self.reservations[shard], keyed)
    }

    /// Looks a reserve's items up before the shard lock, and refuses the
    /// reserve there if that can be proven: the cart is refused at one
    /// instant (see [`refusal_at_one_instant`](Self::refusal_at_one_instant))
    /// and the id is certainly unknown (a known id is answered from its
    /// record first): `ids` is the filter of the id's shard. That instant
    /// lies between the two readings of the id filter, so the refusal
    /// linearizes there. A cart of more than [`LOOKED_UP_LINES`] lines
    /// skips this. `Ok` carries the cell indices looked up (items are never
    /// removed, so the locked path reuses them instead of looking the items
    /// up again).
    fn refuse_without_lock(
        &self,
        id: ReservationId,
        ids: &IdFilter,
        lines: &[Line],
        channel: Channel,
    ) -> Result<LookedUp, Error> {
        let mut looked = LookedUp::default();
        let touched = self.touch_items(lines);
        if lines.len() > LOOKED_UP_LINES {
            return Ok(looked);
        }
        let sequence = ids.read_begin();
        if let [line] = lines {
            return self.refuse_one_without_lock(id, ids, sequence, line, channel);
        }
        for (n, line) in lines.iter().enumerate() {
            match self.find_touched(line, touched.as_ref().map(|hashes| hashes[n])) {
                Some(index) => looked.push(index),
                None => break,
            }
        }
        let Some(sequence) = sequence else {
            return Ok(looked); // no refusal can be proven: look up only
        };
        match self.refusal_at_one_instant(lines, looked.as_slice(), channel) {
            Some(refusal) if ids.certainly_absent_since(id.0, sequence) => Err(refusal),
            _ => Ok(looked),
        }
    }

    /// [`refuse_without_lock`](Self::refuse_without_lock) for a cart of one
    /// line (a flash sale's usual cart): the lookup, or the one load of the
    /// cell's word, is the refusal's instant, so no claim is ever needed
    /// and the general path's per-line bookkeeping is skipped.
    #[inline]
    fn refuse_one_without_lock(
        &self,
        id: ReservationId,
        ids: &IdFilter,
        sequence: Option<u64>,
        line: &Line,
        channel: Channel,
    ) -> Result<LookedUp, Error> {
        let mut looked = LookedUp::default();
        let refusal = match self.items.find(line.item()) {
            None => Error::UnknownItem {
                sku: line.sku,
                store: line.store,
            },
            Some(index) => {
                looked.push(index);
                if sequence.is_none() {
                    return Ok(looked);
                }
                match self.items.cell(index).check_available(
                    line.qty,
                    channel,
                    self.items.safety_changes(),
                ) {
                    Ok(()) => return Ok(looked),
                    Err(cell::Short { available }) => insufficient(line, available),
                }
            }
        };
        match sequence {
            Some(sequence) if ids.certainly_absent_since(id.0, sequence) => Err(refusal),
            _ => Ok(looked),
        }
    }

    /// Proves a cart refused at one instant without holding anything, if
    /// it can: `cells` are its lines' cells up to the first unknown item.
    /// Loads alone pick the line that looks like the first to fail; the
    /// cells of the lines before it are claimed (see
    /// `src/stock/claims.rs`), and with them claimed, that line's cell is
    /// read (or its item looked up again): at that instant every earlier
    /// line fits, or the first that does not is the refusal, and the line
    /// read fails, or nothing is proven. A sold-out item is only read,
    /// never claimed, so the carts refused for it do not queue on its word.
    /// `None`: nothing proven (the cart may fit, or a cell it needs was
    /// claimed by another operation); the caller holds it, or refuses it,
    /// under the lock.
    fn refusal_at_one_instant(
        &self,
        lines: &[Line],
        cells: &[u32],
        channel: Channel,
    ) -> Option<Error> {
        let mut failing = cells.len();
        for (n, (line, &cell)) in lines.iter().zip(cells).enumerate() {
            // Nothing is held yet: a claimed cell is waited for.
            if let Err(cell::Short { available }) = self.items.cell(cell).check_available(
                line.qty,
                channel,
                self.items.safety_changes(),
            ) {
                if n == 0 {
                    return Some(insufficient(line, available)); // that load's instant
                }
                failing = n;
                break;
            }
        }
        let line = lines.get(failing)?; // every line looks served
        if failing == 0 {
            // The caller's lookup found no such item: that lookup's instant.
            return Some(Error::UnknownItem {
                sku: line.sku,
                store: line.store,
            });
        }
        if failing == 1 {
            // One line before the failing one (a bundle of an accessory
            // and a sold-out item): one cell claimed directly, without the
            // set's bookkeeping.
            let first = self.items.cell(cells[0]);
            let taken = first.claim();
            let refusal = match first.reserve_on(taken, lines[0].qty, channel) {
                Err(cell::Short { available }) => Some(insufficient(&lines[0], available)),
                Ok(_) => self.failing_line_refusal(line, cells.get(failing).copied(), channel),
            };
            first.unclaim(taken);
            return refusal;
        }
        let claims = Claims::take(&self.items, cells[..failing].iter().copied());
        for (n, line) in lines[..failing].iter().enumerate() {
            let (cell, taken) = claims.taken_at(n);
            if let Err(cell::Short { available }) = cell.reserve_on(taken, line.qty, channel) {
                return Some(insufficient(line, available));
            }
        }
        self.failing_line_refusal(line, cells.get(failing).copied(), channel)
        // Dropping the claims stores back the words taken.
    }

    /// With the cells of the lines before it claimed, and each of them
    /// fitting: the refusal of `line` if its cell (`None`: its item was
    /// not found) shows it short now, or its item is still unknown.
    /// `None` if it fits, or its cell is claimed by another operation.
    #[inline]
    fn failing_line_refusal(
        &self,
        line: &Line,
        cell: Option<u32>,
        channel: Channel,
    ) -> Option<Error> {
        match cell {
            Some(cell) => match self.items.cell(cell).peek_available(
                line.qty,
                channel,
                self.items.safety_changes(),
            )? {
                Err(cell::Short { available }) => Some(insufficient(line, available)),
                Ok(()) => None,
            },
            None => self
                .items
                .find(line.item())
                .is_none()
                .then_some(Error::UnknownItem {
                    sku: line.sku,
                    store: line.store,
                }),
        }
    }

    /// A multi-line cart reads every item's first table entry before it
    /// looks any up: its cache misses overlap instead of queueing (a long
    /// cart, looked up under the lock, gets them in cache there). Returns
    /// the first lines' hashes, for [`find_touched`](Self::find_touched),
    /// or `None` where nothing was read: a single line, or a table that
    /// stays in cache (no misses to overlap, only the reads to pay).
    fn touch_items(&self, lines: &[Line]) -> Option<[u64; LOOKED_UP_LINES]> {
        if lines.len() < 2 || !self.items.is_large() {
            return None;
        }
        let mut hashes = [0; LOOKED_UP_LINES];
        for (n, line) in lines.iter().enumerate() {
            let hash = self.items.touch(line.item());
            if let Some(kept) = hashes.get_mut(n) {
                *kept = hash;
            }
        }
        Some(hashes)
    }

    /// The cell index of a line's item, with its hash if it was touched.
    fn find_touched(&self, line: &Line, hash: Option<u64>) -> Option<u32> {
        match hash {
            Some(hash) => self.items.find_hashed(line.item(), hash),
            None => self.items.find(line.item()),
        }
    }

    /// Looks up, under the shard lock, the items of a cart's first lines
    /// up to the first unknown one (which `hold_lines` then reports in
    /// its turn). Used where no refusal could be proven before the lock.
    fn look_up_locked(&self, lines: &[Line]) -> LookedUp {
        let mut looked = LookedUp::default();
        let touched = self.touch_items(lines);
        for (n, line) in lines.iter().take(LOOKED_UP_LINES).enumerate() {
            match self.find_touched(line, touched.as_ref().map(|hashes| hashes[n])) {
                Some(index) => looked.push(index),
                None => break,
            }
        }
        looked
    }

    /// Holds units for an order with the default ttl; see
    /// [`reserve_with_ttl`](Self::reserve_with_ttl).
    ///
    /// # Errors
    ///
    /// As [`reserve_with_ttl`](Self::reserve_with_ttl).
    pub fn reserve(
        &self,
        id: ReservationId,
        channel: Channel,
        lines: &[Line],
    ) -> Result<ReservationAck, Error> {
        self.reserve_with_ttl(id, channel, lines, self.default_ttl_ms)
    }

    /// Holds every line's units for `channel` until `now + ttl_ms`, or none
    /// of them.
    ///
    /// `id` is the idempotency key: repeating a request that succeeded
    /// answers it again (`replayed: true`) without holding more; the same id
    /// with other lines or channel is `IdConflict`. Lines are checked in the
    /// order given and the first that cannot be served is reported
    /// (`UnknownItem`, then `Insufficient` with what was available); on
    /// failure nothing stays held and the id stays free.
    ///
    /// A cart of several lines is held, or refused, at one instant: no
    /// concurrent operation sees it partly held, and a refusal reports what
    /// was available at that instant (see `docs/CORRECTNESS.md`).
    ///
    /// # Errors
    ///
    /// In this order (`docs/CONTRACT.md`):
    ///
    /// 1. [`Error::Invalid`]: no lines, more than [`MAX_LINES`](crate::MAX_LINES),
    ///    a quantity of 0, the same item on two lines, or a `ttl_ms` of 0.
    ///    Checked before anything else, lazy expiry included.
    /// 2. For a known id (after expiring it if overdue): the same request
    ///    answers ok with `replayed: true` when pending or committed, and
    ///    [`Error::AlreadyReleased`] or [`Error::Expired`] otherwise; a
    ///    different request is [`Error::IdConflict`].
    /// 3. Line by line, in order: [`Error::UnknownItem`], then
    ///    [`Error::Insufficient`] for the first line that cannot be served.
    pub fn reserve_with_ttl(
        &self,
        id: ReservationId,
        channel: Channel,
        lines: &[Line],
        ttl_ms: u64,
    ) -> Result<ReservationAck, Error> {
        validate_lines(lines)?;
        if ttl_ms == 0 {
            return Err(zero_ttl());
        }
        let (home, keyed) = self.shard(id);
        // A shard whose id filter is off cannot prove an id unknown, so
        // it refuses nothing before the lock: it takes the lock first and
        // then reads the record place it will write and the items
        // together, so that their cache misses overlap. With the items
        // read first, the lock (a locked instruction) waits for their
        // miss, and the unlock for the record's.
        let early = !home.ids.is_off();
        // A flash sale's sold-out SKU: refuse by reading, writing nothing.
        let looked = if early {
            self.refuse_without_lock(id, &home.ids, lines, channel)?
        } else {
            LookedUp::default()
        };
        if !early && self.items.is_large() {
            // Start the items' cache misses before the lock's locked
            // instruction, which later loads may not pass; a prefetch is
            // not a load, so the lock does not wait for it either.
            for line in lines.iter().take(LOOKED_UP_LINES) {
                self.items.prefetch(line.item());
            }
        }
        let mut effects = self.effects(Op::Reserve);
        let mut shard = home.records.lock();
        let looked = if early {
            looked
        } else {
            shard.prefetch_id(keyed);
            shard.touch_next_record();
            self.look_up_locked(lines)
        };
        let now = self.clock.now_ms();
        let answer = match shard.find_or_vacancy(keyed) {
            Ok(at) => {
                shard.expire_if_overdue(at, now, &self.items, &mut effects);
                if !shard.same_request(at, channel, lines, None, &self.items) {
                    Err(Error::IdConflict { id })
                } else {
                    let existing = shard.record(at);
                    match existing.state {
                        ReservationState::Pending | ReservationState::Committed => {
                            Ok(ack(id, existing, true))
                        }
                        ReservationState::Released => Err(Error::AlreadyReleased { id }),
                        ReservationState::Expired => Err(Error::Expired { id }),
                    }
                }
            }
            Err(vacancy) => {
                // Counted into the filter before any unit is held: a reader
                // that sees this reservation's hold must not prove the id
                // unknown (see refuse_without_lock).
                let ids = &home.ids;
                ids.add(id.0);
                let held = self.hold_lines(lines, &looked, channel, &mut effects);
                if held.is_err() {
                    ids.remove(id.0);
                    if lines.len() <= LOOKED_UP_LINES {
                        // refuse_without_lock could not prove the id unknown.
                        shard.refused_unproven(ids);
                    }
                }
                held.map(|held| {
                    let deadline = deadline_after(now, ttl_ms);
                    effects.push(|| Effect::Reserved {
                        id,
                        channel,
                        lines: lines.to_vec(),
                        expires_at_ms: deadline.0,
                        campaign: None,
                        customer: None,
                    });
                    effects.journal(|steps| {
                        steps.current().reserved(
                            id,
                            channel,
                            deadline,
                            lines.iter().copied(),
                            None,
                        );
                    });
                    let at = shard.insert(keyed, channel, deadline, &held, vacancy);
                    ack(id, shard.record(at), false)
                })
            }
        };
        // Campaign units given back are settled under the shard lock.
        self.settle_log(&mut effects);
        drop(shard);
        self.publish_answer(&mut effects, answer)
    }

    /// Begins the record of a step that changed `cells` (with the words
    /// stored back), numbered `seq` under their claims.
    pub(super) fn journal_cells(
        &self,
        effects: &mut EffectLog<'_>,
        seq: u64,
        cells: impl Iterator<Item = (u32, u32, u32)>,
    ) {
        effects.journal(|steps| {
            steps.begin(seq, None, None);
            for (cell, on_hand, reserved) in cells {
                steps
                    .current()
                    .item(self.items.key(cell), on_hand, reserved);
            }
        });
    }

    /// Holds every line's units, or none. `looked`: the cell indices of the
    /// first lines' items, if already looked up.
    fn hold_lines(
        &self,
        lines: &[Line],
        looked: &LookedUp,
        channel: Channel,
        effects: &mut EffectLog<'_>,
    ) -> Result<HeldLines, Error> {
        let mut held = HeldLines::new();
        match lines {
            // The common single-line cart: one compare-and-swap, no
            // allocation, failed or not.
            [line] => {
                let mut seal = Seal::new(effects.seqs());
                let one = self.hold_line(line, looked.first().copied(), channel, &mut seal)?;
                held.push(one);
                if let Some(got) = seal.got {
                    let cell = (one.cell, got.on_hand, got.reserved);
                    self.journal_cells(effects, got.seq, std::iter::once(cell));
                }
            }
            _ => self.hold_together(lines, looked, channel, &mut held, effects)?,
        }
        if effects.wants_effects() {
            for line in lines {
                effects.push(|| Effect::Stock {
                    item: line.item(),
                    on_hand: 0,
                    reserved: i64::from(line.qty),
                });
            }
        }
        Ok(held)
    }

    /// Holds a multi-line cart at one instant. A cart that plain loads show will
    /// fail is refused as [`refusal_at_one_instant`](Self::refusal_at_one_instant)
    /// proves it, without claiming the failing line's cell. Otherwise it
    /// claims the cells of its lines up to the first unknown item (see
    /// `src/stock/claims.rs`), checks the
    /// lines in the order given against the claimed words, and stores back
    /// the words with every line held, or the words as they were. Nobody
    /// sees the cells between the claims and their release, so nobody sees
    /// the cart partly held, and a refusal reports what was available at
    /// that instant. An unknown item is reported only if it is still
    /// unknown with the cells claimed; one created meanwhile starts the
    /// cart over.
    fn hold_together(
        &self,
        lines: &[Line],
        looked: &LookedUp,
        channel: Channel,
        held: &mut HeldLines,
        effects: &mut EffectLog<'_>,
    ) -> Result<(), Error> {
        loop {
            let mut cells: SmallVec<[u32; 8]> = SmallVec::with_capacity(lines.len());
            for (n, line) in lines.iter().enumerate() {
                match looked
                    .get(n)
                    .copied()
                    .or_else(|| self.items.find(line.item()))
                {
                    Some(cell) => cells.push(cell),
                    None => break,
                }
            }
            if let Some(refusal) = self.refusal_at_one_instant(lines, &cells, channel) {
                return Err(refusal);
            }
            let mut claims = Claims::take(&self.items, cells.iter().copied());
            let mut verdict = Ok(());
            for (n, line) in lines[..cells.len()].iter().enumerate() {
                let (cell, taken) = claims.taken_at(n);
                match cell.reserve_on(taken, line.qty, channel) {
                    Ok(next) => claims.set_at(n, next),
                    Err(cell::Short { available }) => {
                        verdict = Err(insufficient(line, available));
                        break;
                    }
                }
            }
            if verdict.is_ok() {
                if let Some(line) = lines.get(cells.len()) {
                    if self.items.find(line.item()).is_some() {
                        claims.undo();
                        continue; // created since it was looked up
                    }
                    verdict = Err(Error::UnknownItem {
                        sku: line.sku,
                        store: line.store,
                    });
                }
            }
            if let Err(refusal) = verdict {
                claims.undo();
                return Err(refusal);
            }
            if let Some((seq, words)) = claims.release_sealed(effects.seqs()) {
                let cells = words.iter().map(|(cell, word)| {
                    let (on_hand, reserved) = word.counters();
                    (*cell, on_hand, reserved)
                });
                self.journal_cells(effects, seq, cells);
            }
            for (line, &cell) in lines.iter().zip(&cells) {
                held.push(HeldLine {
                    cell,
                    qty: line.qty,
                });
            }
            return Ok(());
        }
    }

    /// Reserves one line: `UnknownItem`, then `Insufficient`, as the contract
    /// orders them. `found`: the item's cell index, if already looked up.
    #[inline(always)]
    pub(super) fn hold_line(
        &self,
        line: &Line,
        found: Option<u32>,
        channel: Channel,
        seal: &mut Seal<'_>,
    ) -> Result<HeldLine, Error> {
        let index = found
            .or_else(|| self.items.find(line.item()))
            .ok_or(Error::UnknownItem {
                sku: line.sku,
                store: line.store,
            })?;
        self.items
            .cell(index)
            .reserve(line.qty, channel, self.items.safety_changes(), seal)
            .map_err(|cell::Short { available }| Error::Insufficient {
                sku: line.sku,
                store: line.store,
                requested: line.qty,
                available,
            })?;
        Ok(HeldLine {
            cell: index,
            qty: line.qty,
        })
    }
}

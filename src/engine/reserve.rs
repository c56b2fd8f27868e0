//! Reserving: checking a cart, refusing it before the shard lock where
//! that can be proven, and holding its lines under the id's shard lock.
//!
//! Invariants: an id is counted into its shard's id filter before any of
//! its units are held, so a refusal without the lock never refuses a known
//! id; a cart's lines are held one at a time, in line order, and a cart
//! that fails gives back every line it held before the lock is released
//! (until then a concurrent request may see those units as reserved: the
//! known gap in `docs/CORRECTNESS.md`).

use super::{ack, zero_ttl, Inventory};
use crate::clock::Clock;
use crate::command::ReservationAck;
use crate::effect::{Effect, EffectLog};
use crate::error::Error;
use crate::limits::MAX_LINES;
use crate::reservations::held_lines::{HeldLine, HeldLines};
use crate::reservations::id_filter::IdFilter;
use crate::reservations::id_placement::KeyedId;
use crate::reservations::shard::{deadline_after, Shard};
use crate::stock::cell::{self};
use crate::types::{Channel, ItemKey, Line, ReservationId, ReservationState};
use arrayvec::ArrayVec;

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

impl Inventory {
    /// The shard of `id`, and `id` with its key in that shard's id table:
    /// one hash per operation.
    pub(super) fn shard(&self, id: ReservationId) -> (&Shard, KeyedId) {
        let (shard, keyed) = self.id_hasher.place(id.0);
        (&self.reservations[shard], keyed)
    }

    /// Looks a reserve's items up before the shard lock, and refuses the
    /// reserve there if that can be proven: reading the lines' cells in
    /// order, the first line that cannot be served is refused (`UnknownItem`
    /// or `Insufficient`, as the locked path checks them) and the id is
    /// certainly unknown (a known id is answered from its record first):
    /// `ids` is the filter of the id's shard. Every reading lies between
    /// the two readings of the id filter, so a
    /// refusal linearizes at the reading of the refused line, like the locked
    /// path's, which also checks each line at its own instant. A cart of
    /// more than [`LOOKED_UP_LINES`] lines skips this. `Ok` carries the cell
    /// indices looked up (items are never removed, so the locked path reuses
    /// them instead of looking the items up again).
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
        for (n, line) in lines.iter().enumerate() {
            let found = self.find_touched(line, touched.as_ref().map(|hashes| hashes[n]));
            let refusal = match found {
                None => Error::UnknownItem {
                    sku: line.sku,
                    store: line.store,
                },
                Some(index) => {
                    looked.push(index);
                    if sequence.is_none() {
                        continue; // no refusal can be proven: look up only
                    }
                    match self.items.cell(index).check_available(line.qty, channel) {
                        Ok(()) => continue,
                        Err(cell::Short { available }) => Error::Insufficient {
                            sku: line.sku,
                            store: line.store,
                            requested: line.qty,
                            available,
                        },
                    }
                }
            };
            return match sequence {
                Some(sequence) if ids.certainly_absent_since(id.0, sequence) => Err(refusal),
                _ => Ok(looked),
            };
        }
        Ok(looked)
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
    /// A cart of several lines holds them one at a time and gives them back
    /// if a later line fails; meanwhile a concurrent request for those units
    /// may be refused (a known gap, see `docs/CORRECTNESS.md`).
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
        let mut effects = self.effects();
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
                if !shard.same_request(at, channel, lines, &self.items) {
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
                    });
                    let at = shard.insert(keyed, channel, deadline, &held, vacancy);
                    ack(id, shard.record(at), false)
                })
            }
        };
        // Published under the shard lock so one id's effects stay in order.
        self.publish(&mut effects);
        drop(shard);
        answer
    }

    /// Reserves each line in order; on the first failure returns the units
    /// of the lines before it and reports the failure. `looked`: the cell
    /// indices of the first lines' items, if already looked up.
    fn hold_lines(
        &self,
        lines: &[Line],
        looked: &LookedUp,
        channel: Channel,
        effects: &mut EffectLog,
    ) -> Result<HeldLines, Error> {
        let held = match lines {
            // The common single-line cart: no allocation, failed or not.
            [line] => {
                smallvec::smallvec![self.hold_line(line, looked.first().copied(), channel)?]
            }
            _ => {
                let mut held = HeldLines::new();
                for (n, line) in lines.iter().enumerate() {
                    match self.hold_line(line, looked.get(n).copied(), channel) {
                        Ok(line) => held.push(line),
                        Err(error) => {
                            for undo in held.as_slice() {
                                self.items.cell(undo.cell).unreserve(undo.qty);
                            }
                            return Err(error);
                        }
                    }
                }
                held
            }
        };
        for line in lines {
            effects.push(|| Effect::Stock {
                item: line.item(),
                on_hand: 0,
                reserved: i64::from(line.qty),
            });
        }
        Ok(held)
    }

    /// Reserves one line: `UnknownItem`, then `Insufficient`, as the contract
    /// orders them. `found`: the item's cell index, if already looked up.
    fn hold_line(
        &self,
        line: &Line,
        found: Option<u32>,
        channel: Channel,
    ) -> Result<HeldLine, Error> {
        let index = found
            .or_else(|| self.items.find(line.item()))
            .ok_or(Error::UnknownItem {
                sku: line.sku,
                store: line.store,
            })?;
        self.items.cell(index).reserve(line.qty, channel).map_err(
            |cell::Short { available }| Error::Insufficient {
                sku: line.sku,
                store: line.store,
                requested: line.qty,
                available,
            },
        )?;
        Ok(HeldLine {
            cell: index,
            qty: line.qty,
        })
    }
}

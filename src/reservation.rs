//! Reservation records and their one-way state change. A record lives in
//! one shard of the reservation table and is only read or changed under that
//! shard's lock, which also makes "is this id known? if not, hold the units
//! and record it" one atomic step. The move from pending to a terminal state
//! happens once, in [`ReservationShard::finish`], which is the only code that
//! gives a reservation's units back or takes them out of stock.

use crate::effect::{Effect, EffectLog};
use crate::expiry::DeadlineIndex;
use crate::id_filter::IdFilter;
use crate::ids::{Channel, Line, ReservationId, ReservationState};
use crate::sync::Mutex;
use crate::table::ItemTable;
use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher};

/// One held line: `qty` units in the cell at index `cell`. The item's key is
/// read back from the item table, so a record stays small.
#[derive(Clone, Copy, Debug)]
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

/// A reservation's lines in request order: the first inline, any others in
/// one boxed slice, so a single-line cart allocates nothing and every record
/// spends 16 bytes on its lines.
#[derive(Debug)]
pub(crate) struct HeldLines {
    first: HeldLine,
    rest: Option<Box<[HeldLine]>>,
}

impl HeldLines {
    pub(crate) fn one(line: HeldLine) -> Self {
        HeldLines {
            first: line,
            rest: None,
        }
    }

    /// `lines` must not be empty.
    pub(crate) fn many(lines: Vec<HeldLine>) -> Self {
        let mut lines = lines.into_iter();
        let first = lines.next().expect("a reservation has at least one line");
        let rest: Box<[HeldLine]> = lines.collect();
        HeldLines {
            first,
            rest: (!rest.is_empty()).then_some(rest),
        }
    }

    pub(crate) fn len(&self) -> usize {
        1 + self.rest.as_ref().map_or(0, |rest| rest.len())
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = &HeldLine> + '_ {
        std::iter::once(&self.first).chain(self.rest.iter().flat_map(|rest| rest.iter()))
    }
}

/// When a reservation made or extended at `now` with `ttl` is due: the
/// reported deadline and whether `now + ttl` saturated, which the contract
/// makes overdue at once.
pub(crate) fn deadline_after(now: u64, ttl: u64) -> (u64, bool) {
    match now.checked_add(ttl) {
        Some(deadline) => (deadline, false),
        None => (u64::MAX, true),
    }
}

/// One reservation.
#[derive(Debug)]
pub(crate) struct Reservation {
    pub(crate) channel: Channel,
    pub(crate) state: ReservationState,
    /// The deadline as reported (`now + ttl`, saturated).
    pub(crate) expires_at: u64,
    /// `now + ttl` saturated: overdue from the moment it was set.
    pub(crate) overdue_at_once: bool,
    pub(crate) lines: HeldLines,
}

impl Reservation {
    /// The key under which the deadline index keeps it: a saturated
    /// deadline is filed at 0 so the next `expire()` finds it.
    pub(crate) fn index_deadline(&self) -> u64 {
        if self.overdue_at_once {
            0
        } else {
            self.expires_at
        }
    }

    pub(crate) fn is_overdue(&self, now: u64) -> bool {
        self.state == ReservationState::Pending && (self.overdue_at_once || now >= self.expires_at)
    }

    /// Whether a reserve request names the same lines on the same channel
    /// (order of lines ignored). Both sides are free of repeated items.
    pub(crate) fn same_request(&self, channel: Channel, lines: &[Line], items: &ItemTable) -> bool {
        if self.channel != channel || self.lines.len() != lines.len() {
            return false;
        }
        if lines.len() <= 8 {
            return lines
                .iter()
                .all(|wanted| self.lines.iter().any(|held| held.line(items) == *wanted));
        }
        let mut ours: Vec<Line> = self.lines.iter().map(|held| held.line(items)).collect();
        let mut theirs = lines.to_vec();
        ours.sort_unstable_by_key(|line| (line.item(), line.qty));
        theirs.sort_unstable_by_key(|line| (line.item(), line.qty));
        ours == theirs
    }
}

impl Reservation {
    /// Moves this pending reservation (`id`) to the terminal state `to` at
    /// `now`: commits or returns its units and files it for forgetting in
    /// `index`. Returns false (and changes nothing) if it is not pending:
    /// exactly one caller ever finishes a reservation.
    pub(crate) fn finish(
        &mut self,
        id: u64,
        to: ReservationState,
        now: u64,
        index: &mut DeadlineIndex,
        items: &ItemTable,
        effects: &mut EffectLog,
    ) -> bool {
        debug_assert!(to.is_terminal());
        if self.state != ReservationState::Pending {
            return false;
        }
        self.state = to;
        for held in self.lines.iter() {
            let cell = items.cell(held.cell);
            let qty = held.qty;
            let on_hand = if to == ReservationState::Committed {
                cell.commit(qty);
                -i64::from(qty)
            } else {
                cell.unreserve(qty);
                0
            };
            effects.push(|| Effect::Stock {
                item: items.key(held.cell),
                on_hand,
                reserved: -i64::from(qty),
            });
        }
        index.unschedule(self.index_deadline(), id);
        index.finished(now, id);
        effects.push(|| Effect::Finished {
            id: ReservationId(id),
            state: to,
            at_ms: now,
        });
        true
    }

    /// The lazy expiry every operation naming an id performs first: expires
    /// the reservation if it is pending and overdue at `now`. Returns whether
    /// it did.
    pub(crate) fn expire_if_overdue(
        &mut self,
        id: u64,
        now: u64,
        index: &mut DeadlineIndex,
        items: &ItemTable,
        effects: &mut EffectLog,
    ) -> bool {
        self.is_overdue(now)
            && self.finish(id, ReservationState::Expired, now, index, items, effects)
    }
}

/// One shard of the reservation table: its records and their deadlines.
#[derive(Debug, Default)]
pub(crate) struct ReservationShard {
    pub(crate) records: HashMap<u64, Reservation, IdHasher>,
    pub(crate) index: DeadlineIndex,
}

impl ReservationShard {
    /// Records a reservation whose units are already held, and files its
    /// deadline.
    /// The caller has counted `id` into the shard's [`IdFilter`].
    pub(crate) fn insert(&mut self, id: u64, reservation: Reservation) {
        self.index.schedule(reservation.index_deadline(), id);
        let previous = self.records.insert(id, reservation);
        debug_assert!(previous.is_none(), "reservation {id} recorded twice");
    }

    /// Expires every reservation due at `now`; returns how many.
    pub(crate) fn expire_due(
        &mut self,
        now: u64,
        items: &ItemTable,
        effects: &mut EffectLog,
    ) -> u64 {
        let mut expired = 0;
        while let Some((deadline, id)) = self.index.first_due(now) {
            // finish() takes the entry out of the index.
            let finished = self.records.get_mut(&id).is_some_and(|reservation| {
                reservation.finish(
                    id,
                    ReservationState::Expired,
                    now,
                    &mut self.index,
                    items,
                    effects,
                )
            });
            if finished {
                expired += 1;
            } else {
                debug_assert!(false, "index held reservation {id} that is not pending");
                self.index.unschedule(deadline, id);
            }
        }
        expired
    }

    /// Forgets terminal reservations that finished at least `retention` ago.
    pub(crate) fn forget_old(
        &mut self,
        now: u64,
        retention: u64,
        ids: &IdFilter,
        effects: &mut EffectLog,
    ) {
        let Some(mut id) = self.index.pop_forgettable(now, retention) else {
            return;
        };
        ids.begin_forgetting();
        loop {
            let removed = self.records.remove(&id);
            debug_assert!(removed.is_some_and(|r| r.state.is_terminal()));
            // Counted out after it left the records: see IdFilter.
            ids.remove(id);
            effects.push(|| Effect::Forgotten {
                id: ReservationId(id),
            });
            match self.index.pop_forgettable(now, retention) {
                Some(next) => id = next,
                None => break,
            }
        }
        ids.end_forgetting();
    }
}

/// One shard of the reservation table: the records behind their lock, and
/// the filter that lets a refused reserve prove its id unknown without it.
#[derive(Debug)]
pub(crate) struct Shard {
    pub(crate) records: Mutex<ReservationShard>,
    pub(crate) ids: IdFilter,
}

impl Shard {
    /// A shard whose id filter has `filter_counters` counters.
    pub(crate) fn new(filter_counters: usize) -> Self {
        Shard {
            records: Mutex::new(ReservationShard::default()),
            ids: IdFilter::with_counters(filter_counters),
        }
    }
}

/// Hashes reservation ids for the record maps: one multiply-xor mix keyed by
/// a per-process random value, instead of SipHash, which was half the
/// instructions of a reserve + commit. The random key keeps ids chosen by
/// outsiders from being aimed at one bucket chain.
#[derive(Clone, Copy, Debug)]
pub(crate) struct IdHasher {
    key: u64,
}

impl Default for IdHasher {
    fn default() -> Self {
        static KEY: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
        let key =
            *KEY.get_or_init(|| std::collections::hash_map::RandomState::new().hash_one(0u64));
        IdHasher { key }
    }
}

impl BuildHasher for IdHasher {
    type Hasher = IdHash;

    fn build_hasher(&self) -> IdHash {
        IdHash { state: self.key }
    }
}

/// The hasher [`IdHasher`] builds.
#[derive(Debug)]
pub(crate) struct IdHash {
    state: u64,
}

impl Hasher for IdHash {
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.write_u64(u64::from_le_bytes(word));
        }
    }

    fn write_u64(&mut self, value: u64) {
        let mut x = self.state ^ value;
        x = (x ^ (x >> 32)).wrapping_mul(0xD6E8_FEB8_6659_FD93);
        x = (x ^ (x >> 32)).wrapping_mul(0xD6E8_FEB8_6659_FD93);
        self.state = x ^ (x >> 32);
    }

    fn finish(&self) -> u64 {
        self.state
    }
}

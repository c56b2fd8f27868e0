//! Reservation records and their one-way state change. A record lives in
//! one shard of the reservation table and is only read or changed under that
//! shard's lock, which also makes "is this id known? if not, hold the units
//! and record it" one atomic step. The move from pending to a terminal state
//! happens once, in [`ReservationShard::finish`], which is the only code that
//! gives a reservation's units back or takes them out of stock.

use crate::campaigns::{Campaigns, MixState};
use crate::durability::record::Op;
use crate::durability::steps::Seal;
use crate::effect::{CampaignUnits, Effect, EffectLog};
use crate::error::BuildError;
use crate::reservations::deadlines::{DeadlineIndex, Filed, Finished};
use crate::reservations::extra_lines::{ExtraLines, MoreLines};
use crate::reservations::held_lines::{HeldLine, HeldLines};
use crate::reservations::id_filter::{self, IdFilter};
use crate::reservations::id_placement::{IdHasher, KeyedId};
use crate::reservations::id_table::{IdTable, Vacancy};
use crate::reservations::slab::Slab;
use crate::stock::cell::Word;
use crate::stock::claims::Claims;
use crate::stock::item_table::ItemTable;
use crate::sync::Mutex;
use crate::types::{CampaignId, Channel, CustomerId, Line, ReservationId, ReservationState};
use smallvec::SmallVec;
use std::collections::HashMap;
use std::sync::Arc;

/// When a reservation made or extended at `now` with `ttl` is due: the
/// reported deadline and whether `now + ttl` saturated, which the contract
/// makes overdue at once.
pub(crate) fn deadline_after(now: u64, ttl: u64) -> (u64, bool) {
    match now.checked_add(ttl) {
        Some(deadline) => (deadline, false),
        None => (u64::MAX, true),
    }
}

/// One reservation: 32 bytes in its shard's slab. Lines after the first
/// live in the shard's [`ExtraLines`], so a single-line cart allocates
/// nothing and a record has no pointer to pay for.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Reservation {
    /// The caller's id (the id table stores only the slab position and reads
    /// the id from here).
    pub(crate) id: u64,
    /// The deadline as reported (`now + ttl`, saturated).
    pub(crate) expires_at: u64,
    pub(crate) first: HeldLine,
    /// Where the shard's [`ExtraLines`] keeps the lines after `first`.
    pub(crate) more: MoreLines,
    pub(crate) channel: Channel,
    pub(crate) state: ReservationState,
    /// `now + ttl` saturated: overdue from the moment it was set.
    pub(crate) overdue_at_once: bool,
    /// Where the deadline index filed this reservation's deadline.
    pub(crate) filed: Filed,
}

#[cfg(not(omnistock_loom))]
const _: () = assert!(std::mem::size_of::<Reservation>() == 32);

/// Due reservations `expire_due` reads ahead (see there).
const READ_AHEAD: usize = 8;

/// When a shard compacts its slabs (see `compact_if_sparse`): once a slab
/// has handed out at least `min_positions` positions and `sparseness` times
/// more positions than it holds records. Set through
/// `InventoryBuilder::compaction`, which checks `sparseness >= 2` and
/// `min_positions >= 1`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Compaction {
    pub(crate) min_positions: usize,
    pub(crate) sparseness: usize,
}

impl Compaction {
    /// Slabs smaller than 1024 positions (32 KiB of records) are never
    /// compacted; larger ones once three quarters of their positions are
    /// free.
    pub(crate) const DEFAULT: Compaction = Compaction {
        min_positions: 1024,
        sparseness: 4,
    };

    fn is_sparse(self, handed_out: usize, held: usize) -> bool {
        handed_out >= self.min_positions && handed_out >= self.sparseness.saturating_mul(held)
    }
}

/// What a slab position holds before its first record (a freed one keeps
/// its last, terminal, record until reused); never reachable through the id
/// table.
const VACANT: Reservation = Reservation {
    id: 0,
    expires_at: 0,
    first: HeldLine { cell: 0, qty: 0 },
    more: MoreLines::NONE,
    channel: Channel::Online,
    state: ReservationState::Released,
    overdue_at_once: false,
    filed: Filed::InOrder,
};

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
}

/// One shard of the reservation table: its records in a slab, the id table
/// that finds them, and their deadlines. Everything here is changed under
/// the shard's lock; a record is named by its slab position.
#[derive(Debug)]
pub(crate) struct ReservationShard {
    records: Slab<Reservation>,
    /// Positions of every remembered reservation, by id key: 8 bytes a
    /// slot, at most half the slots full.
    by_id: IdTable,
    /// Lines after the first of multi-line reservations.
    extra: ExtraLines,
    index: DeadlineIndex,
    hasher: IdHasher,
    /// Refusals of fresh ids taken under the lock because the id filter
    /// could not prove the id unknown, since the filter was last rebuilt.
    refused_unproven: u32,
    /// When `compact_if_sparse` compacts.
    compaction: Compaction,
    /// The units committed per line by partial commits, by id, until the
    /// reservation is forgotten (a full commit keeps nothing here).
    committed_parts: HashMap<u64, Box<[u32]>>,
    /// Campaign reservations by id, with the units they counted, until the
    /// reservation is forgotten (a plain reservation keeps nothing here).
    campaign_units: HashMap<u64, CampaignUnits, MixState>,
    /// The inventory's campaigns, to give a finishing campaign
    /// reservation's units back around its stock step (see
    /// `Campaigns::begin_give_back`); `None` only in unit tests, where the
    /// units go back after it, through the effect log.
    campaigns: Option<Arc<Campaigns>>,
}

impl Default for ReservationShard {
    fn default() -> Self {
        ReservationShard {
            records: Slab::new(VACANT),
            by_id: IdTable::default(),
            extra: ExtraLines::default(),
            index: DeadlineIndex::default(),
            hasher: IdHasher::default(),
            refused_unproven: 0,
            compaction: Compaction::DEFAULT,
            committed_parts: HashMap::new(),
            campaign_units: HashMap::default(),
            campaigns: None,
        }
    }
}

impl ReservationShard {
    /// The position of reservation `id`, if it is remembered.
    #[inline]
    pub(crate) fn find(&self, id: KeyedId) -> Option<u32> {
        self.find_or_vacancy(id).ok()
    }

    /// [`find`](Self::find), or where the id table takes `id`: hand it to
    /// [`insert`](Self::insert), which then does not probe again (nothing
    /// may change the shard in between).
    #[inline]
    pub(crate) fn find_or_vacancy(&self, id: KeyedId) -> Result<u32, Vacancy> {
        debug_assert_eq!(id, self.hasher.keyed(id.id), "keyed by this shard's hasher");
        let records = &self.records;
        self.by_id
            .find_or_vacancy(id.key, |at| records.get(at).id == id.id)
    }

    /// Reads the record place the next [`insert`](Self::insert) writes,
    /// without using it: a place freed about a retention period ago has
    /// left the cache, and its miss then overlaps the item lookup's
    /// instead of stalling the unlock (a locked instruction, which waits
    /// for the record's stores).
    pub(crate) fn touch_next_record(&self) {
        if let Some(at) = self.records.next_position() {
            std::hint::black_box(self.records.get(at).id);
        }
    }

    /// Starts loading the id-table slot where the lookup of `id` starts,
    /// without waiting for it: a reserve that looks its items up first
    /// would otherwise read the slot only once their lookups end (the
    /// probe's last branch is not predictable), one miss after another.
    pub(crate) fn prefetch_id(&self, id: KeyedId) {
        self.by_id.prefetch(id.key);
    }

    /// The record at `at` (a position `find` or `insert` returned).
    pub(crate) fn record(&self, at: u32) -> &Reservation {
        self.records.get(at)
    }

    /// The held lines of the reservation at `at`, in request order.
    #[inline]
    pub(crate) fn lines(&self, at: u32) -> impl Iterator<Item = HeldLine> + '_ {
        let record = self.records.get(at);
        let more = self.extra.get(record.more);
        std::iter::once(record.first).chain(more.iter().copied())
    }

    /// The campaign and customer of the reservation at `at`, if it joined a
    /// campaign.
    pub(crate) fn campaign(&self, at: u32) -> Option<(CampaignId, CustomerId)> {
        if self.campaign_units.is_empty() {
            return None;
        }
        self.campaign_units
            .get(&self.records.get(at).id)
            .map(|units| (units.campaign, units.customer))
    }

    /// Records that the reservation at `at` counted `units` in a campaign.
    pub(crate) fn join_campaign(&mut self, at: u32, units: CampaignUnits) {
        self.campaign_units.insert(self.records.get(at).id, units);
    }

    /// Whether a reserve request names the same lines on the same channel
    /// in the same campaign (or none) as the reservation at `at` (order of
    /// lines ignored). Both sides are free of repeated items.
    pub(crate) fn same_request(
        &self,
        at: u32,
        channel: Channel,
        lines: &[Line],
        campaign: Option<(CampaignId, CustomerId)>,
        items: &ItemTable,
    ) -> bool {
        if self.records.get(at).channel != channel
            || self.lines(at).count() != lines.len()
            || self.campaign(at) != campaign
        {
            return false;
        }
        if lines.len() <= 8 {
            return lines
                .iter()
                .all(|wanted| self.lines(at).any(|held| held.line(items) == *wanted));
        }
        let mut ours: Vec<Line> = self.lines(at).map(|held| held.line(items)).collect();
        let mut theirs = lines.to_vec();
        ours.sort_unstable_by_key(|line| (line.item(), line.qty));
        theirs.sort_unstable_by_key(|line| (line.item(), line.qty));
        ours == theirs
    }

    /// Records a pending reservation whose units are already held, files
    /// its deadline, and returns its position. `id` must not be remembered
    /// already (`vacancy` is what [`find_or_vacancy`](Self::find_or_vacancy)
    /// answered for it), and the caller has counted it into the shard's
    /// [`IdFilter`].
    pub(crate) fn insert(
        &mut self,
        keyed: KeyedId,
        channel: Channel,
        (expires_at, overdue_at_once): (u64, bool),
        lines: &HeldLines,
        vacancy: Vacancy,
    ) -> u32 {
        let id = keyed.id;
        debug_assert!(
            self.find(keyed).is_none(),
            "reservation {id} recorded twice"
        );
        let (first, more) = lines
            .as_slice()
            .split_first()
            .expect("a reservation has at least one line");
        let record = Reservation {
            id,
            expires_at,
            first: *first,
            more: self.extra.store(more),
            channel,
            state: ReservationState::Pending,
            overdue_at_once,
            filed: Filed::InOrder,
        };
        let at = self.records.insert(record);
        self.by_id.insert_at(vacancy, keyed.key, at);
        self.records.get_mut(at).filed = self.index.schedule(record.index_deadline(), at);
        at
    }

    /// Moves the pending reservation at `at` to the terminal state `to` at
    /// `now`: commits or returns its units and files it for forgetting.
    /// Returns false (and changes nothing) if it is not pending: exactly one
    /// caller ever finishes a reservation, and this is the only code that
    /// gives a reservation's units back or takes them out of stock.
    pub(crate) fn finish(
        &mut self,
        at: u32,
        to: ReservationState,
        now: u64,
        items: &ItemTable,
        effects: &mut EffectLog<'_>,
    ) -> bool {
        self.finish_with(at, to, now, items, effects, None)
    }

    /// The units the partial commit of the reservation at `at` took per
    /// line, in line order; `None` if it was not committed partially.
    pub(crate) fn committed_parts(&self, at: u32) -> Option<&[u32]> {
        if self.committed_parts.is_empty() {
            return None; // no partial commit remembered: skip hashing
        }
        self.committed_parts
            .get(&self.records.get(at).id)
            .map(|parts| &parts[..])
    }

    /// What the campaign reservation `id` gives back when it finishes
    /// keeping `kept` units, with the campaigns to give it to (`None` for
    /// the effect log's settlement); `None` if it is no campaign
    /// reservation or gives nothing back. Out of line: plain reservations
    /// never come here.
    #[cold]
    #[inline(never)]
    fn campaign_back(&self, id: u64, kept: u32) -> Option<(CampaignUnits, Option<Arc<Campaigns>>)> {
        let units = self.campaign_units.get(&id)?;
        let back = CampaignUnits {
            qty: units.qty - kept,
            ..*units
        };
        (back.qty > 0).then(|| (back, self.campaigns.clone()))
    }

    /// [`finish`](Self::finish), where a commit with `parts` takes only
    /// `parts[n]` units of line `n` out of stock and returns the rest of
    /// its hold (a partial commit; `parts` has one entry per line, each at
    /// most the line's quantity, and is remembered with the reservation).
    pub(crate) fn finish_with(
        &mut self,
        at: u32,
        to: ReservationState,
        now: u64,
        items: &ItemTable,
        effects: &mut EffectLog<'_>,
        parts: Option<&[u32]>,
    ) -> bool {
        debug_assert!(to.is_terminal());
        debug_assert!(parts.is_none() || to == ReservationState::Committed);
        let record = self.records.get_mut(at);
        if record.state != ReservationState::Pending {
            return false;
        }
        record.state = to;
        let (id, deadline, filed, more) = (
            record.id,
            record.index_deadline(),
            record.filed,
            record.more,
        );
        if record.more != MoreLines::NONE && items.is_large() {
            // Each line's update below is an atomic read-modify-write, which
            // waits for the reads before it: read the cells first, so that
            // their misses (an expiry finds them cold) overlap.
            for held in self.lines(at) {
                items.touch_cell(held.cell);
            }
        }
        let commit = to == ReservationState::Committed;
        // Units line `n` takes out of stock.
        let take = |n: usize, held: HeldLine| match (commit, parts) {
            (false, _) => 0,
            (true, None) => held.qty,
            (true, Some(parts)) => parts[n],
        };
        // A campaign reservation (one line) gives back what it does not
        // take out of stock: marked in flight in its campaign and under its
        // customer's lock before the stock step, so that no reserve is
        // refused for units the stock no longer holds.
        let back = if self.campaign_units.is_empty() {
            None
        } else {
            self.campaign_back(id, take(0, self.records.get(at).first))
        };
        let giving = match &back {
            Some((units, Some(campaigns))) => Some(campaigns.begin_give_back(units)),
            _ => None,
        };
        let seqs = effects.seqs();
        // The step's sequence number and the cells' post-values, when
        // journaled: taken with the cells claimed, under this shard's lock.
        let mut sealed: SmallVec<[(u64, u32, Word); 1]> = SmallVec::new();
        if more == MoreLines::NONE {
            let first = self.records.get(at).first;
            let (cell, qty) = (items.cell(first.cell), first.qty);
            if seqs.is_some() {
                let mut seal = Seal::new(seqs);
                let part = take(0, first);
                cell.change_sealed(&mut seal, |word| match commit {
                    true => word.committed_part(qty, part),
                    false => word.unreserved(qty),
                });
                if let Some(got) = seal.got {
                    sealed.push((got.seq, first.cell, Word::of(got.on_hand, got.reserved)));
                }
            } else {
                match (commit, parts) {
                    (true, None) => cell.commit(qty),
                    (true, Some(_)) => cell.commit_part(qty, take(0, first)),
                    (false, _) => cell.unreserve(qty),
                }
            }
        } else {
            // Every line at one instant: nobody sees the reservation partly
            // returned (see src/stock/claims.rs).
            let mut claims = Claims::take(items, self.lines(at).map(|held| held.cell));
            for (n, held) in self.lines(at).enumerate() {
                let (_, taken) = claims.taken_at(n);
                let next = if commit {
                    taken.committed_part(held.qty, take(n, held))
                } else {
                    taken.unreserved(held.qty)
                };
                claims.set_at(n, next);
            }
            if let Some((seq, words)) = claims.release_sealed(seqs) {
                sealed.extend(words.into_iter().map(|(cell, word)| (seq, cell, word)));
            }
        }
        if let Some(giving) = giving {
            giving.finish();
        }
        if let Some(&(seq, _, _)) = sealed.first() {
            let op = (to == ReservationState::Expired).then_some(Op::Expire);
            effects.journal(|steps| {
                steps.begin(seq, op, Some(now));
                for &(_, cell, word) in &sealed {
                    let (on_hand, reserved) = word.counters();
                    steps.current().item(items.key(cell), on_hand, reserved);
                }
                steps
                    .current()
                    .finished(ReservationId(id), to, now, parts.unwrap_or(&[]));
            });
        }
        if let Some(parts) = parts {
            self.committed_parts.insert(id, parts.into());
        }
        if let Some((units, None)) = back {
            effects.give_back(units);
        }
        if effects.wants_effects() {
            for (n, held) in self.lines(at).enumerate() {
                let qty = held.qty;
                let on_hand = -i64::from(take(n, held));
                effects.push(|| Effect::Stock {
                    item: items.key(held.cell),
                    on_hand,
                    reserved: -i64::from(qty),
                });
            }
        }
        self.index.unschedule(deadline, at, filed);
        self.index.finished(Finished {
            at_ms: now,
            id,
            position: at,
            more,
        });
        effects.push(|| Effect::Finished {
            id: ReservationId(id),
            state: to,
            at_ms: now,
        });
        true
    }

    /// The lazy expiry every operation naming an id performs first: expires
    /// the reservation at `at` if it is pending and overdue at `now`.
    /// Returns whether it did.
    pub(crate) fn expire_if_overdue(
        &mut self,
        at: u32,
        now: u64,
        items: &ItemTable,
        effects: &mut EffectLog<'_>,
    ) -> bool {
        self.records.get(at).is_overdue(now)
            && self.finish(at, ReservationState::Expired, now, items, effects)
    }

    /// Moves the pending reservation at `at` to the deadline `now + ttl`
    /// (saturated: overdue at once).
    pub(crate) fn extend(&mut self, at: u32, now: u64, ttl: u64) {
        self.extend_to(at, deadline_after(now, ttl));
    }

    /// Moves the pending reservation at `at` to `deadline` (as
    /// `deadline_after` gives it).
    pub(crate) fn extend_to(&mut self, at: u32, deadline: (u64, bool)) {
        let record = self.records.get_mut(at);
        debug_assert_eq!(record.state, ReservationState::Pending);
        let old = record.index_deadline();
        (record.expires_at, record.overdue_at_once) = deadline;
        let (new, filed) = (record.index_deadline(), record.filed);
        self.index.unschedule(old, at, filed);
        self.records.get_mut(at).filed = self.index.schedule(new, at);
    }

    /// Expires every reservation due at `now`; returns how many.
    ///
    /// Every `READ_AHEAD` entries it first reads the records of the next
    /// ones due in order, then the first cell of each still pending: a
    /// reservation expires a ttl after anything touched it, so those reads
    /// miss the cache, and issued together their misses overlap, where the
    /// expiry of one reservation after another (each cell update a locked
    /// read-modify-write, which waits for every read before it) made each
    /// wait for the one before.
    pub(crate) fn expire_due(
        &mut self,
        now: u64,
        items: &ItemTable,
        effects: &mut EffectLog<'_>,
    ) -> u64 {
        let mut expired = 0;
        let mut until_read_ahead = 0;
        loop {
            if until_read_ahead == 0 {
                self.read_ahead_due(now, items);
                until_read_ahead = READ_AHEAD;
            }
            let Some((deadline, at)) = self.index.next_due(now) else {
                break;
            };
            until_read_ahead -= 1;
            let record = self.records.get(at);
            // Live only while the record waits for this very deadline; a
            // due record is expired whichever of its entries found it.
            let live =
                record.state == ReservationState::Pending && record.index_deadline() == deadline;
            if live {
                // finish() unschedules a sorted entry.
                self.finish(at, ReservationState::Expired, now, items, effects);
                expired += 1;
            } else {
                // Stale: an in-order entry is gone already; a sorted one
                // cannot be stale, but must not be found again either.
                self.index.drop_sorted(deadline, at);
            }
        }
        expired
    }

    /// Reads the records of the next `READ_AHEAD` in-order entries due at
    /// `now`, then the first cell of each pending one (see `expire_due`).
    fn read_ahead_due(&self, now: u64, items: &ItemTable) {
        let due = || self.index.due_in_order(now).take(READ_AHEAD);
        for (_, at) in due() {
            std::hint::black_box(self.records.get(at).state);
        }
        for (_, at) in due() {
            let record = self.records.get(at);
            if record.state == ReservationState::Pending {
                items.touch_cell(record.first.cell);
            }
        }
    }

    /// Forgets terminal reservations that finished at least `retention` ago.
    /// Their records are not read: the finished queue says what to undo.
    pub(crate) fn forget_old(
        &mut self,
        now: u64,
        retention: u64,
        ids: &IdFilter,
        effects: &mut EffectLog<'_>,
    ) {
        let Some(mut gone) = self.index.pop_forgettable(now, retention) else {
            return;
        };
        if let Some(seqs) = effects.seqs() {
            // One step for the batch, under this shard's lock.
            let seq = seqs.take();
            effects.journal(|steps| steps.begin(seq, Some(Op::Forget), Some(now)));
        }
        ids.begin_forgetting();
        loop {
            let id = gone.id;
            self.forget(gone, ids);
            effects.push(|| Effect::Forgotten {
                id: ReservationId(id),
            });
            effects.journal(|steps| steps.current().forgotten(ReservationId(id)));
            match self.index.pop_forgettable(now, retention) {
                Some(next) => gone = next,
                None => break,
            }
        }
        ids.end_forgetting();
        self.fit_filter(ids, false);
        self.compact_if_sparse();
    }

    /// Removes the terminal reservation `gone`, just taken off the
    /// finished queue, from the shard, between the id filter's
    /// `begin_forgetting` and `end_forgetting`.
    fn forget(&mut self, gone: Finished, ids: &IdFilter) {
        {
            let Finished {
                id, position, more, ..
            } = gone;
            debug_assert!(
                self.records.get(position).id == id
                    && self.records.get(position).state.is_terminal()
                    && self.records.get(position).more == more,
                "the finished queue agrees with the record"
            );
            let removed = self.by_id.remove(self.hasher.keyed(id).key, position);
            debug_assert!(removed, "a remembered reservation is in the id table");
            self.extra.free(more);
            self.records.remove(position);
            // Most shards hold neither: skip hashing the id.
            if !self.committed_parts.is_empty() {
                self.committed_parts.remove(&id);
            }
            if !self.campaign_units.is_empty() {
                self.campaign_units.remove(&id);
            }
            // Counted out after it left the id table: see IdFilter.
            ids.remove(id);
        }
    }

    // ------------------------------------------------- recovery, snapshots
    // (src/durability): single-threaded while recovering; under the lock
    // for a snapshot. None of these touches a cell: recovery sets cells
    // from the records' post-values.

    /// Records a recovered reservation, pending, with the lines `lines`
    /// (whose units the recovered cells already count). `Err` if the id is
    /// remembered already.
    pub(crate) fn insert_recovered(
        &mut self,
        keyed: KeyedId,
        channel: Channel,
        deadline: (u64, bool),
        lines: &HeldLines,
        ids: &IdFilter,
    ) -> Result<u32, ()> {
        match self.find_or_vacancy(keyed) {
            Ok(_) => Err(()),
            Err(vacancy) => {
                ids.add(keyed.id);
                Ok(self.insert(keyed, channel, deadline, lines, vacancy))
            }
        }
    }

    /// The campaign units the reservation at `at` counted, if it joined a
    /// campaign (recovery and snapshots).
    pub(crate) fn campaign_units(&self, at: u32) -> Option<CampaignUnits> {
        if self.campaign_units.is_empty() {
            return None;
        }
        self.campaign_units.get(&self.records.get(at).id).copied()
    }

    /// What the terminal reservation at `at` gives back to its campaign
    /// when it finishes (recovery's side of the give-back in
    /// [`finish_with`](Self::finish_with)): all of it unless committed, the
    /// uncommitted part of a partial commit.
    pub(crate) fn campaign_give_back(&self, at: u32) -> Option<CampaignUnits> {
        let units = self.campaign_units(at)?;
        let record = self.records.get(at);
        let kept = match record.state {
            ReservationState::Committed => self
                .committed_parts(at)
                .map_or(units.qty, |parts| parts.first().copied().unwrap_or(0)),
            _ => 0,
        };
        Some(CampaignUnits {
            qty: units.qty.saturating_sub(kept),
            ..units
        })
    }

    /// A recovered finish: the state change and its filing, without the
    /// units (see [`finish_with`](Self::finish_with)). False if not pending.
    pub(crate) fn finish_recovered(
        &mut self,
        at: u32,
        to: ReservationState,
        now: u64,
        parts: Option<&[u32]>,
    ) -> bool {
        // Finish times are filed in order (a clock never goes back).
        let in_order = self
            .index
            .newest_finished_at()
            .map_or(true, |newest| newest <= now);
        let record = self.records.get_mut(at);
        if record.state != ReservationState::Pending || !to.is_terminal() || !in_order {
            return false;
        }
        record.state = to;
        let (id, deadline, filed, more) = (
            record.id,
            record.index_deadline(),
            record.filed,
            record.more,
        );
        if let Some(parts) = parts {
            self.committed_parts.insert(id, parts.into());
        }
        self.index.unschedule(deadline, at, filed);
        self.index.finished(Finished {
            at_ms: now,
            id,
            position: at,
            more,
        });
        true
    }

    /// A recovered forgetting of `id`, which must be the oldest terminal
    /// reservation (forgetting goes oldest first). False otherwise.
    pub(crate) fn forget_recovered(&mut self, id: u64, ids: &IdFilter) -> bool {
        if self.index.oldest_finished().map(|oldest| oldest.id) != Some(id) {
            return false;
        }
        let Some(gone) = self.index.pop_forgettable(u64::MAX, 0) else {
            return false;
        };
        ids.begin_forgetting();
        self.forget(gone, ids);
        ids.end_forgetting();
        true
    }

    /// Every remembered reservation for a snapshot: pending ones first (in
    /// no particular order), then terminal ones oldest first, as
    /// `(record, lines, parts, finished at)`.
    pub(crate) fn for_each_remembered(
        &self,
        mut visit: impl FnMut(
            &Reservation,
            &mut dyn Iterator<Item = HeldLine>,
            Option<&[u32]>,
            u64,
            Option<CampaignUnits>,
        ),
    ) {
        for at in self.by_id.positions() {
            let record = self.records.get(at);
            if record.state == ReservationState::Pending {
                visit(
                    record,
                    &mut self.lines(at),
                    None,
                    0,
                    self.campaign_units(at),
                );
            }
        }
        for finished in self.index.finished_in_order() {
            let record = self.records.get(finished.position);
            let parts = self.committed_parts(finished.position);
            visit(
                record,
                &mut self.lines(finished.position),
                parts,
                finished.at_ms,
                self.campaign_units(finished.position),
            );
        }
    }

    /// Gives back the memory of a burst once it is over: when the record
    /// slab, or the extra lines' slabs, have handed out `sparseness` times
    /// more positions than they hold (and at least `min_positions`; see
    /// [`Compaction`]), moves the records into the lowest
    /// positions of a new slab, their extra lines into new slabs, and
    /// rebuilds everything that names a position (the id table, the
    /// deadline index), each at the size it needs now. Under the shard
    /// lock, in time proportional to the positions handed out, paid for by
    /// the forgetting that freed most of them (three quarters by default).
    fn compact_if_sparse(&mut self) {
        let sparse = |handed_out: usize, held: usize| self.compaction.is_sparse(handed_out, held);
        let handed_out = self.records.handed_out();
        let extra_sparse = sparse(self.extra.handed_out(), self.extra.len());
        if !sparse(handed_out, self.len()) && !extra_sparse {
            return;
        }
        let mut live: Vec<u32> = self.by_id.positions().collect();
        // In their old order: records made close in time stay close.
        live.sort_unstable();
        let mut moved_to = vec![u32::MAX; handed_out];
        let mut records = Slab::new(VACANT);
        let mut by_id = IdTable::default();
        let mut extra = ExtraLines::default();
        for &at in &live {
            let mut record = *self.records.get(at);
            record.more = extra.store(self.extra.get(record.more));
            let to = records.insert(record);
            moved_to[at as usize] = to;
            by_id.insert(self.hasher.keyed(record.id).key, to);
        }
        self.index.remap(
            |at| {
                let to = moved_to[at as usize];
                (to != u32::MAX).then_some(to)
            },
            |to| records.get(to).more,
        );
        self.records = records;
        self.by_id = by_id;
        self.extra = extra;
    }

    /// Notes a refusal of a fresh id that the id filter could have spared
    /// the lock, had it proven the id unknown; enough of them let the
    /// filter grow if it is crowded.
    pub(crate) fn refused_unproven(&mut self, ids: &IdFilter) {
        self.refused_unproven = self.refused_unproven.saturating_add(1);
        if self.refused_unproven >= ids.refusals_before_growing() {
            self.fit_filter(ids, true);
        }
    }

    /// Resizes the shard's id filter if it no longer suits the number of
    /// ids remembered (see `IdFilter::fit`).
    fn fit_filter(&mut self, ids: &IdFilter, may_grow: bool) {
        let (by_id, records) = (&self.by_id, &self.records);
        let rebuilt = ids.fit(by_id.len(), may_grow, || {
            by_id.positions().map(|at| records.get(at).id)
        });
        if rebuilt {
            self.refused_unproven = 0;
        }
    }

    /// Visits every held line of every pending reservation (overdue ones not
    /// yet expired included): the units the shard's reservations hold.
    pub(crate) fn for_each_pending_line(&self, mut visit: impl FnMut(HeldLine)) {
        for at in self.by_id.positions() {
            if self.records.get(at).state == ReservationState::Pending {
                self.lines(at).for_each(&mut visit);
            }
        }
    }

    /// Slab positions handed out: what the shard's record memory follows.
    #[cfg(test)]
    pub(crate) fn slab_positions(&self) -> usize {
        self.records.handed_out()
    }

    /// Positions the extra lines' slabs handed out.
    #[cfg(test)]
    pub(crate) fn extra_positions(&self) -> usize {
        self.extra.handed_out()
    }

    /// Reservations remembered: pending and terminal ones in retention.
    pub(crate) fn len(&self) -> usize {
        debug_assert_eq!(self.by_id.len(), self.records.len());
        self.by_id.len()
    }

    /// Pending reservations, overdue ones not yet expired included.
    pub(crate) fn pending_len(&self) -> usize {
        self.len() - self.index.finished_len()
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
    /// A shard whose id filter has `filter_counters` counters, sized by
    /// `filter_sizing`, or the allocation the system refused; with
    /// `filter_on` false the filter starts off and takes that size when
    /// refusals switch it on. Its slabs compact as `compaction` says.
    pub(crate) fn try_new(
        filter_counters: usize,
        filter_sizing: id_filter::Sizing,
        filter_on: bool,
        compaction: Compaction,
        campaigns: Arc<Campaigns>,
    ) -> Result<Self, BuildError> {
        let ids = IdFilter::try_new(filter_counters, filter_sizing, filter_on)?;
        Ok(Shard {
            records: Mutex::new(ReservationShard {
                compaction,
                campaigns: Some(campaigns),
                ..ReservationShard::default()
            }),
            ids,
        })
    }
}

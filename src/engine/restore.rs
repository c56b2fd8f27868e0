//! The hooks `src/durability` uses to rebuild an inventory from a snapshot
//! and journal records, and to read one for a snapshot. Recovery runs
//! before the inventory is shared, so these set state directly: cells from
//! the records' post-values, reservations without touching any cell.

use super::Inventory;
use crate::clock::Clock;
use crate::durability::Durable;
use crate::reservations::held_lines::{HeldLine, HeldLines};
use crate::reservations::id_placement::IdHasher;
use crate::reservations::shard::Reservation;
use crate::types::{Channel, ItemKey, Line, ReservationId, ReservationState};

/// Why a record could not be applied to the recovered state.
pub(crate) type Disagrees = &'static str;

/// One remembered reservation as a snapshot keeps it.
#[derive(Debug)]
pub(crate) struct Remembered<'a> {
    pub(crate) record: &'a Reservation,
    pub(crate) lines: Vec<Line>,
    pub(crate) parts: Option<&'a [u32]>,
    pub(crate) finished_at: u64,
}

impl Inventory {
    pub(crate) fn durability_state(&self) -> Option<&Durable> {
        self.durable.as_deref()
    }

    /// The key the reservation shards are placed by in this process.
    pub(crate) fn id_hasher(&self) -> IdHasher {
        self.id_hasher
    }

    fn cell_index(&self, key: ItemKey) -> u32 {
        self.items.find_or_create_with(key, |_| {}).0
    }

    pub(crate) fn restore_item(&self, key: ItemKey, on_hand: u32, reserved: u32) {
        let index = self.cell_index(key);
        self.items.cell(index).restore(on_hand, reserved);
    }

    /// Makes room for `items` recovered items; prefetches the table entry
    /// of `key`, restored a few items later.
    pub(crate) fn restore_reserve(&self, items: usize) {
        self.items.reserve(items);
    }

    pub(crate) fn restore_prefetch(&self, key: ItemKey) {
        self.items.prefetch(key);
    }

    pub(crate) fn restore_safety(&self, key: ItemKey, safety: u32) {
        let index = self.cell_index(key);
        self.items.cell(index).restore_safety(safety);
    }

    /// Sets a recovered reorder point (no alert is raised: recovery
    /// evaluates nothing).
    pub(crate) fn restore_reorder_point(&self, key: ItemKey, reorder_point: u32) {
        let _ = self.alerts.set(key, reorder_point, || None);
    }

    /// Re-marks every item with a reorder point from its recovered level
    /// (an item below its point has had its alert: the mark is what the
    /// level says), raising nothing. Alerts not yet taken when the
    /// process stopped are not kept.
    pub(crate) fn restore_alert_marks(&self) {
        let mut points = Vec::new();
        self.alerts
            .for_each_point(|key, point| points.push((key, point)));
        for (key, point) in points {
            let _ = self
                .alerts
                .set(key, point, || self.level(key.sku, key.store).ok());
        }
    }

    /// Every item's reorder point (those set), for a snapshot.
    pub(crate) fn snapshot_reorder_points(&self, visit: impl FnMut(ItemKey, u32)) {
        self.alerts.for_each_point(visit);
    }

    /// Whether any campaign is defined or was (campaigns are not journaled
    /// yet: a journaled inventory refuses them).
    pub(crate) fn refuses_campaigns(&self) -> bool {
        self.durable.is_some()
    }

    pub(crate) fn restore_clock(&self, now_ms: u64) {
        self.clock.recovered(now_ms);
    }

    pub(crate) fn restore_reserved(
        &self,
        id: ReservationId,
        channel: Channel,
        lines: &[Line],
        deadline: (u64, bool),
    ) -> Result<(), Disagrees> {
        if super::reserve::validate_lines(lines).is_err() {
            return Err("a reservation with lines no reserve accepts");
        }
        let held: HeldLines = lines
            .iter()
            .map(|line| HeldLine {
                cell: self.cell_index(line.item()),
                qty: line.qty,
            })
            .collect();
        let (home, keyed) = self.shard(id);
        let mut shard = home.records.lock();
        shard
            .insert_recovered(keyed, channel, deadline, &held, &home.ids)
            .map(drop)
            .map_err(|()| "a reservation made twice")
    }

    pub(crate) fn restore_finished(
        &self,
        id: ReservationId,
        state: ReservationState,
        at_ms: u64,
        parts: &[u32],
    ) -> Result<(), Disagrees> {
        let (home, keyed) = self.shard(id);
        let mut shard = home.records.lock();
        let at = shard
            .find(keyed)
            .ok_or("a finish of an unknown reservation")?;
        let parts = (!parts.is_empty()).then_some(parts);
        if let Some(parts) = parts {
            if parts.len() != shard.lines(at).count()
                || shard
                    .lines(at)
                    .zip(parts)
                    .any(|(held, &part)| part > held.qty)
            {
                return Err("a partial commit that does not fit the reservation's lines");
            }
        }
        shard
            .finish_recovered(at, state, at_ms, parts)
            .then_some(())
            .ok_or("a finish of a reservation not pending")
    }

    pub(crate) fn restore_extended(
        &self,
        id: ReservationId,
        deadline: (u64, bool),
    ) -> Result<(), Disagrees> {
        let (home, keyed) = self.shard(id);
        let mut shard = home.records.lock();
        let at = shard
            .find(keyed)
            .ok_or("an extension of an unknown reservation")?;
        if shard.record(at).state != ReservationState::Pending {
            return Err("an extension of a reservation not pending");
        }
        shard.extend_to(at, deadline);
        Ok(())
    }

    pub(crate) fn restore_forgotten(&self, id: ReservationId) -> Result<(), Disagrees> {
        let (home, _) = self.shard(id);
        let mut shard = home.records.lock();
        shard
            .forget_recovered(id.0, &home.ids)
            .then_some(())
            .ok_or("a forgetting out of finish order")
    }

    /// Every item with `(on_hand, reserved, safety)`, in creation order.
    pub(crate) fn snapshot_items(&self, mut visit: impl FnMut(ItemKey, (u32, u32, u32))) {
        let changes = self.items.safety_changes();
        self.items
            .for_each(|key, cell| visit(key, cell.counters(changes)));
    }

    /// Reads reservation shard `n` under its lock: visits every
    /// remembered reservation; returns the journal's next sequence number
    /// read under that lock (every reservation change of the shard
    /// numbered below it is in what was visited, none above it).
    pub(crate) fn snapshot_shard(&self, n: usize, mut visit: impl FnMut(Remembered<'_>)) -> u64 {
        let shard = self.reservations[n].records.lock();
        let cut = self
            .durability_state()
            .map_or(0, |durable| durable.seqs.peek());
        shard.for_each_remembered(|record, lines, parts, finished_at| {
            visit(Remembered {
                record,
                lines: lines.map(|held| held.line(&self.items)).collect(),
                parts,
                finished_at,
            });
        });
        cut
    }

    /// How many reservation shards there are.
    pub(crate) fn shard_count(&self) -> usize {
        self.reservations.len()
    }
}

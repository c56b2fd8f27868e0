//! The hooks `src/durability` uses to rebuild an inventory from a snapshot
//! and journal records, and to read one for a snapshot. Recovery runs
//! before the inventory is shared, so these set state directly: cells from
//! the records' post-values, reservations without touching any cell.

use super::Inventory;
use crate::campaigns::Defined;
use crate::clock::Clock;
use crate::durability::sink::Durable;
use crate::effect::CampaignUnits;
use crate::reservations::held_lines::{HeldLine, HeldLines};
use crate::reservations::id_placement::IdHasher;
use crate::reservations::shard::Reservation;
use crate::types::{
    CampaignId, Channel, CustomerId, ItemKey, Line, ReservationId, ReservationState,
};

/// How a recovered campaign reservation joins its campaign.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Joins {
    /// Its units are counted in now (a journal record).
    CountIn,
    /// Its units are in the restored counters already (a snapshot's).
    Counted,
    /// It counted in a campaign generation that has ended since.
    Dead,
}

/// Why a record could not be applied to the recovered state.
pub(crate) type Disagrees = &'static str;

/// One remembered reservation as a snapshot keeps it.
#[derive(Debug)]
pub(crate) struct Remembered<'a> {
    pub(crate) record: &'a Reservation,
    /// Its campaign and customer, and whether its units are counted in
    /// the campaign's current generation.
    pub(crate) campaign: Option<(CampaignId, CustomerId, bool)>,
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

    /// A recovered campaign definition (or change of limits).
    pub(crate) fn restore_campaign_defined(
        &self,
        campaign: CampaignId,
        item: ItemKey,
        quota: u32,
        per_customer: u32,
    ) -> Result<(), Disagrees> {
        self.campaigns_seen
            .store(true, std::sync::atomic::Ordering::SeqCst);
        match self.campaigns.define(campaign, item, quota, per_customer) {
            Defined::Ok => Ok(()),
            Defined::OtherItem => Err("a campaign defined on another item while live"),
            Defined::Full => Err("more campaigns than the table holds"),
        }
    }

    /// A recovered campaign end.
    pub(crate) fn restore_campaign_ended(&self, campaign: CampaignId) -> Result<(), Disagrees> {
        self.campaigns
            .end(campaign)
            .then_some(())
            .ok_or("an end of a campaign not live")
    }

    /// A snapshot's campaign customer: counts `qty` units in (the campaign
    /// was just restored from the same snapshot).
    pub(crate) fn restore_campaign_count(
        &self,
        campaign: CampaignId,
        item: ItemKey,
        customer: CustomerId,
        qty: u32,
    ) -> Result<(), Disagrees> {
        self.campaigns
            .count_in(campaign, customer, item, qty)
            .map(drop)
            .ok_or("a campaign count of a campaign not live")
    }

    pub(crate) fn restore_clock(&self, now_ms: u64) {
        self.clock.recovered(now_ms);
    }

    /// A recovered reservation. `campaign`: its campaign and customer,
    /// and whether its units are to be counted in now (a journal record)
    /// or are in the counters already (a snapshot's, `counted`), or were
    /// counted in a campaign generation since ended (`dead`).
    pub(crate) fn restore_reserved(
        &self,
        id: ReservationId,
        channel: Channel,
        lines: &[Line],
        deadline: (u64, bool),
        campaign: Option<(CampaignId, CustomerId, Joins)>,
    ) -> Result<(), Disagrees> {
        if super::reserve::validate_lines(lines).is_err() {
            return Err("a reservation with lines no reserve accepts");
        }
        let units = match (campaign, lines) {
            (None, _) => None,
            (Some((campaign, customer, joins)), [line]) => Some(match joins {
                Joins::CountIn => self
                    .campaigns
                    .count_in(campaign, customer, line.item(), line.qty)
                    .ok_or("a campaign reservation outside its campaign")?,
                Joins::Counted => self
                    .campaigns
                    .units_of(campaign, customer, line.qty)
                    .ok_or("a counted campaign reservation of a campaign not live")?,
                Joins::Dead => CampaignUnits {
                    campaign,
                    customer,
                    // No live generation is u32::MAX: what it gives back
                    // goes nowhere.
                    slot: 0,
                    generation: u32::MAX,
                    qty: line.qty,
                },
            }),
            (Some(_), _) => return Err("a campaign reservation of more than one line"),
        };
        let held: HeldLines = lines
            .iter()
            .map(|line| HeldLine {
                cell: self.cell_index(line.item()),
                qty: line.qty,
            })
            .collect();
        let (home, keyed) = self.shard(id);
        let mut shard = home.records.lock();
        let inserted = shard.insert_recovered(keyed, channel, deadline, &held, &home.ids);
        match (inserted, units) {
            (Ok(at), Some(units)) => {
                shard.join_campaign(at, units);
                Ok(())
            }
            (Ok(_), None) => Ok(()),
            (Err(()), units) => {
                if let Some(units) = units.filter(|_| campaign.map(|c| c.2) == Some(Joins::CountIn))
                {
                    self.campaigns.uncount(&units);
                }
                Err("a reservation made twice")
            }
        }
    }

    pub(crate) fn restore_finished(
        &self,
        id: ReservationId,
        state: ReservationState,
        at_ms: u64,
        parts: &[u32],
        give_back: bool,
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
        if !shard.finish_recovered(at, state, at_ms, parts) {
            return Err("a finish of a reservation not pending");
        }
        if give_back {
            if let Some(units) = shard.campaign_give_back(at) {
                self.campaigns.uncount(&units);
            }
        }
        Ok(())
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
        self.visit_shard(&shard, &mut visit);
        cut
    }

    /// Whether a campaign was ever defined here (read after a snapshot's
    /// shards: if not, every campaign record is numbered above their cuts).
    pub(crate) fn campaigns_seen(&self) -> bool {
        self.campaigns_seen
            .load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Reads every reservation shard and the campaigns at one cut: takes
    /// every shard's lock (in shard order, as every multi-shard step
    /// does), then the campaign write lock, so that no reservation is
    /// between its change and its campaign counting or giving back, and no
    /// campaign is being defined or ended. Returns the cut, the journal's
    /// next sequence number then.
    pub(crate) fn snapshot_at_one_cut(
        &self,
        mut visit: impl FnMut(Remembered<'_>),
        campaigns: impl FnMut(crate::campaigns::CampaignUsage, &[(CustomerId, u32)]),
    ) -> u64 {
        let shards: Vec<_> = self
            .reservations
            .iter()
            .map(|shard| shard.records.lock())
            .collect();
        let _order = self.campaign_order.write();
        let cut = self
            .durability_state()
            .map_or(0, |durable| durable.seqs.peek());
        self.campaigns.for_each_live(campaigns);
        for shard in &shards {
            self.visit_shard(shard, &mut visit);
        }
        cut
    }

    fn visit_shard(
        &self,
        shard: &crate::reservations::shard::ReservationShard,
        visit: &mut impl FnMut(Remembered<'_>),
    ) {
        shard.for_each_remembered(|record, lines, parts, finished_at, units| {
            let campaign = units.map(|units| {
                let current = self
                    .campaigns
                    .units_of(units.campaign, units.customer, units.qty)
                    .is_some_and(|now| {
                        (now.slot, now.generation) == (units.slot, units.generation)
                    });
                (units.campaign, units.customer, current)
            });
            visit(Remembered {
                record,
                campaign,
                lines: lines.map(|held| held.line(&self.items)).collect(),
                parts,
                finished_at,
            });
        });
    }

    /// How many reservation shards there are.
    pub(crate) fn shard_count(&self) -> usize {
        self.reservations.len()
    }
}

//! The engine's campaign operations: defining and ending a flash-sale
//! campaign, and reserving within one (`src/campaigns/` keeps the
//! counters).
//!
//! Invariants: a campaign reservation is checked and counted under its
//! id's shard lock, like any reserve (so the same id reserved twice at once
//! counts once); the quota is counted first (in flight), then the
//! customer is checked and the stock held under the customer's lock, and a
//! refusal at any step takes back what the steps before it counted (see
//! `src/campaigns/mod.rs` for why no request is refused for units in
//! flight). A refusal that can be read without the lock (unknown
//! campaign, another item, quota exhausted) is given before it when the
//! shard's id filter proves the id unknown, writing nothing.
//!
//! With a journal, `campaign_order` orders the records: a definition or an
//! end takes its sequence number and changes the table under the write
//! lock; a campaign reservation holds the read lock from counting to
//! taking its own number (inside the cell's claim). So a reservation's
//! record always follows the definition it counted under and precedes the
//! end of that campaign, and every journal prefix recounts to counters the
//! engine had (see docs/DURABILITY.md). Without a journal the lock is not
//! taken.

use super::reserve::validate_lines;
use super::{ack, zero_ttl, Inventory};
use crate::campaigns::{CampaignUsage, Defined};
use crate::clock::Clock;
use crate::command::ReservationAck;
use crate::durability::record::Op;
use crate::durability::steps::Seal;
use crate::effect::Effect;
use crate::error::Error;
use crate::reservations::shard::deadline_after;
use crate::types::{
    CampaignId, Channel, CustomerId, ItemKey, Line, ReservationId, ReservationState, Sku, StoreId,
};

impl Inventory {
    /// Defines a flash-sale campaign selling `sku` at `store`: at most
    /// `quota` units in all and `per_customer` units a customer, counted
    /// over the campaign's pending and committed reservations (see
    /// [`reserve_in_campaign`](Self::reserve_in_campaign)). The item need
    /// not exist. Defining a live campaign again changes its limits for
    /// later reservations; the units already counted stay counted. A quota
    /// or limit of 0 refuses every reservation.
    ///
    /// ```
    /// use omnistock::{CampaignId, Channel, CustomerId, Error, Inventory, Line, ReservationId, Sku, StoreId};
    ///
    /// let inventory = Inventory::new();
    /// let (sku, store) = (Sku(1), StoreId(1));
    /// inventory.restock(sku, store, 100)?;
    /// let sale = CampaignId(7);
    /// inventory.define_campaign(sale, sku, store, 3, 2)?;
    /// let line = Line::new(sku, store, 2);
    /// inventory.reserve_in_campaign(ReservationId(1), Channel::Online, line, sale, CustomerId(1), 60_000)?;
    /// let again = inventory.reserve_in_campaign(ReservationId(2), Channel::Online, Line::new(sku, store, 1), sale, CustomerId(1), 60_000);
    /// assert!(matches!(again, Err(Error::CustomerLimit { remaining: 0, .. })));
    /// let other = inventory.reserve_in_campaign(ReservationId(3), Channel::Online, line, sale, CustomerId(2), 60_000);
    /// assert!(matches!(other, Err(Error::QuotaExhausted { remaining: 1, .. })));
    /// # Ok::<(), omnistock::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::Invalid`] when the campaign is live on another item, or
    /// when the campaign table is full (see
    /// [`InventoryBuilder::max_campaigns`](crate::InventoryBuilder::max_campaigns)).
    pub fn define_campaign(
        &self,
        campaign: CampaignId,
        sku: Sku,
        store: StoreId,
        quota: u32,
        per_customer: u32,
    ) -> Result<(), Error> {
        let item = ItemKey::new(sku, store);
        let mut effects = self.effects(Op::DefineCampaign);
        let order = self.durable.is_some().then(|| self.campaign_order.write());
        self.campaigns_seen
            .store(true, std::sync::atomic::Ordering::SeqCst);
        match self.campaigns.define(campaign, item, quota, per_customer) {
            Defined::Ok => {}
            Defined::OtherItem => {
                return Err(Error::Invalid {
                    reason: "the campaign is defined on another item",
                })
            }
            Defined::Full => {
                return Err(Error::Invalid {
                    reason: "no room for another campaign (InventoryBuilder::max_campaigns)",
                })
            }
        }
        // Numbered under the write lock: no campaign reservation is
        // between counting and numbering, and none counts under these
        // terms before this number.
        if let Some(seqs) = effects.seqs() {
            let seq = seqs.take();
            effects.journal(|steps| {
                steps.begin(seq, None, None);
                steps
                    .current()
                    .campaign_defined(campaign, item, quota, per_customer);
            });
        }
        drop(order);
        effects.push(|| Effect::CampaignDefined {
            campaign,
            item,
            quota,
            per_customer,
        });
        let _ = self.publish(&mut effects);
        Ok(())
    }

    /// Ends a campaign: its counters are dropped (their memory freed) and
    /// later reservations naming it are refused as unknown. Its
    /// reservations stay as they are; releasing them gives nothing back to
    /// it. The id may be defined again, as a new campaign counting from 0.
    ///
    /// # Errors
    ///
    /// [`Error::UnknownCampaign`] if it is not defined.
    pub fn end_campaign(&self, campaign: CampaignId) -> Result<(), Error> {
        let mut effects = self.effects(Op::EndCampaign);
        let order = self.durable.is_some().then(|| self.campaign_order.write());
        if !self.campaigns.end(campaign) {
            return Err(Error::UnknownCampaign { campaign });
        }
        if let Some(seqs) = effects.seqs() {
            let seq = seqs.take();
            effects.journal(|steps| {
                steps.begin(seq, None, None);
                steps.current().campaign_ended(campaign);
            });
        }
        drop(order);
        effects.push(|| Effect::CampaignEnded { campaign });
        let _ = self.publish(&mut effects);
        Ok(())
    }

    /// A live campaign's terms and counters now, or `None`.
    pub fn campaign(&self, campaign: CampaignId) -> Option<CampaignUsage> {
        self.campaigns.usage(campaign)
    }

    /// The units `customer` has counted in a live campaign (pending and
    /// committed), 0 if none.
    pub fn campaign_customer_used(&self, campaign: CampaignId, customer: CustomerId) -> u32 {
        self.campaigns.customer_used(campaign, customer)
    }

    /// The customer counters held now (all campaigns together) and about
    /// how many bytes their maps hold: what a campaign's customers cost.
    pub fn campaign_counter_memory(&self) -> (usize, usize) {
        self.campaigns.counter_memory()
    }

    /// How many campaigns this inventory can hold.
    pub fn max_campaigns(&self) -> usize {
        self.campaigns.capacity()
    }

    /// Holds `line` for `customer` in `campaign` until `now + ttl_ms`: a
    /// reserve of one line that also counts against the campaign's quota
    /// and the customer's limit. The units stay counted while the
    /// reservation is pending, and the committed ones after a commit (even
    /// once it is forgotten); a release, an expiry or the uncommitted part
    /// of a partial commit gives them back.
    ///
    /// A refusal because the quota is exhausted (the sale is sold out)
    /// costs a few loads and compares: no lock, no write, no allocation,
    /// once the id filter of the id's shard is on (see
    /// [`InventoryBuilder::expected_reservations`](crate::InventoryBuilder::expected_reservations)).
    ///
    /// # Errors
    ///
    /// In this order (`docs/CONTRACT.md`):
    ///
    /// 1. [`Error::Invalid`]: a quantity or `ttl_ms` of 0, before anything
    ///    else.
    /// 2. For a known id (after expiring it if overdue): the same request
    ///    (same line, channel, campaign and customer) answers as
    ///    [`reserve`](Self::reserve) does; anything else is
    ///    [`Error::IdConflict`].
    /// 3. [`Error::UnknownCampaign`]; [`Error::Invalid`] when the line is
    ///    not the campaign's item; [`Error::QuotaExhausted`];
    ///    [`Error::CustomerLimit`].
    /// 4. [`Error::UnknownItem`], then [`Error::Insufficient`].
    pub fn reserve_in_campaign(
        &self,
        id: ReservationId,
        channel: Channel,
        line: Line,
        campaign: CampaignId,
        customer: CustomerId,
        ttl_ms: u64,
    ) -> Result<ReservationAck, Error> {
        let lines = [line];
        validate_lines(&lines)?;
        if ttl_ms == 0 {
            return Err(zero_ttl());
        }
        let (home, keyed) = self.shard(id);
        // The sold-out path: read the campaign, compare, and refuse if the
        // id filter proves the id unknown (a known id is answered from its
        // record first) over the whole reading.
        if let Some(sequence) = home.ids.read_begin() {
            if let Some(refusal) =
                self.campaigns
                    .refusal_by_reading(campaign, line.item(), line.qty)
            {
                if home.ids.certainly_absent_since(id.0, sequence) {
                    return Err(refusal);
                }
            }
        }
        let mut effects = self.effects(Op::Reserve);
        let mut shard = home.records.lock();
        let now = self.clock.now_ms();
        let answer = match shard.find_or_vacancy(keyed) {
            Ok(at) => {
                shard.expire_if_overdue(at, now, &self.items, &mut effects);
                if !shard.same_request(at, channel, &lines, Some((campaign, customer)), &self.items)
                {
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
                // Counted into the filter before anything is counted or
                // held (see reserve.rs).
                let ids = &home.ids;
                ids.add(id.0);
                let order = self.durable.is_some().then(|| self.campaign_order.read());
                let mut seal = Seal::new(effects.seqs());
                let held =
                    self.campaigns
                        .reserve(campaign, customer, line.item(), line.qty, || {
                            self.hold_line(&line, None, channel, &mut seal)
                        });
                drop(order);
                match held {
                    Err(refusal) => {
                        ids.remove(id.0);
                        if matches!(
                            refusal,
                            Error::QuotaExhausted { .. } | Error::UnknownCampaign { .. }
                        ) {
                            // The filter could not prove the id unknown.
                            shard.refused_unproven(ids);
                        }
                        Err(refusal)
                    }
                    Ok((units, held)) => {
                        let deadline = deadline_after(now, ttl_ms);
                        if let Some(got) = seal.got {
                            let cell = (held.cell, got.on_hand, got.reserved);
                            self.journal_cells(&mut effects, got.seq, std::iter::once(cell));
                            effects.journal(|steps| {
                                steps.current().reserved(
                                    id,
                                    channel,
                                    deadline,
                                    lines.iter().copied(),
                                    Some((campaign, customer)),
                                );
                            });
                        }
                        effects.push(|| Effect::Stock {
                            item: line.item(),
                            on_hand: 0,
                            reserved: i64::from(line.qty),
                        });
                        effects.push(|| Effect::Reserved {
                            id,
                            channel,
                            lines: lines.to_vec(),
                            expires_at_ms: deadline.0,
                            campaign: Some(campaign),
                            customer: Some(customer),
                        });
                        let mut one = crate::reservations::held_lines::HeldLines::new();
                        one.push(held);
                        let at = shard.insert(keyed, channel, deadline, &one, vacancy);
                        shard.join_campaign(at, units);
                        Ok(ack(id, shard.record(at), false))
                    }
                }
            }
        };
        // Campaign units given back are settled under the shard lock.
        self.settle_log(&mut effects);
        drop(shard);
        self.publish_answer(&mut effects, answer)
    }

    /// The `reserve` request with `campaign` and `customer` (the replay
    /// format's form): checks what the typed method cannot be given (one
    /// without the other, not exactly one line) as the contract's step 1.
    pub(super) fn reserve_campaign_lines(
        &self,
        id: ReservationId,
        channel: Channel,
        lines: &[Line],
        campaign: Option<CampaignId>,
        customer: Option<CustomerId>,
        ttl_ms: u64,
    ) -> Result<ReservationAck, Error> {
        validate_lines(lines)?;
        if ttl_ms == 0 {
            return Err(zero_ttl());
        }
        let (Some(campaign), Some(customer)) = (campaign, customer) else {
            return Err(Error::Invalid {
                reason: "a campaign reservation needs both campaign and customer",
            });
        };
        let [line] = lines else {
            return Err(Error::Invalid {
                reason: "a campaign reservation has exactly one line",
            });
        };
        self.reserve_in_campaign(id, channel, *line, campaign, customer, ttl_ms)
    }
}

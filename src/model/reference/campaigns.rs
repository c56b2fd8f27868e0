//! The campaign and alert rules of the contract (v2), written out plainly
//! for the [`ReferenceModel`]: defining a campaign, reserving in one, the
//! counters a finish gives back to, reorder points, and the evaluation of
//! every reorder point after every operation.

use super::{line_set, ReferenceModel, Reservation};
use crate::alerts::Alert;
use crate::command::{Command, Done, Outcome, ReservationAck};
use crate::error::Error;
use crate::limits::MAX_LINES;
use crate::types::{
    CampaignId, Channel, CustomerId, ItemKey, Level, Line, ReservationId, ReservationState, Sku,
    StoreId,
};
use std::collections::{BTreeMap, BTreeSet};

/// A defined campaign and its counters.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(super) struct Campaign {
    item: ItemKey,
    quota: u32,
    per_customer: u32,
    /// Units counted: pending reservations' qty plus committed units.
    used: u64,
    /// The same, per customer; a customer at 0 is left out.
    customers: BTreeMap<CustomerId, u64>,
}

/// An item's reorder point (above 0) and whether it is alerted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(super) struct Mark {
    reorder_point: u32,
    alerted: bool,
}

impl ReferenceModel {
    /// The v2 campaign and alert commands.
    pub(super) fn apply_campaigns(&mut self, command: &Command) -> Result<Outcome, Error> {
        match command {
            Command::Campaign {
                campaign,
                sku,
                store,
                quota,
                per_customer,
            } => self
                .define_campaign(*campaign, ItemKey::new(*sku, *store), *quota, *per_customer)
                .map(|()| Outcome::Done(Done {})),
            Command::ReserveCampaign {
                id,
                channel,
                ttl_ms,
                lines,
                campaign,
                customer,
            } => {
                let ttl = ttl_ms.unwrap_or(self.default_ttl_ms);
                self.reserve_campaign(*id, *channel, lines, *campaign, *customer, ttl)
                    .map(Outcome::Reservation)
            }
            Command::SetReorderPoint { sku, store, qty } => {
                Ok(Outcome::Level(self.set_reorder_point(*sku, *store, *qty)))
            }
            Command::Alerts => Ok(Outcome::Alerts(std::mem::take(&mut self.alerts))),
            other => unreachable!("not a campaign command: {other:?}"),
        }
    }

    fn define_campaign(
        &mut self,
        campaign: CampaignId,
        item: ItemKey,
        quota: u32,
        per_customer: u32,
    ) -> Result<(), Error> {
        match self.campaigns.get_mut(&campaign) {
            Some(known) if known.item != item => Err(Error::Invalid {
                reason: "campaign redefined on another item",
            }),
            Some(known) => {
                known.quota = quota;
                known.per_customer = per_customer;
                Ok(())
            }
            None => {
                self.campaigns.insert(
                    campaign,
                    Campaign {
                        item,
                        quota,
                        per_customer,
                        used: 0,
                        customers: BTreeMap::new(),
                    },
                );
                Ok(())
            }
        }
    }

    /// Units counted for `customer` in `campaign` (0 if either is unknown).
    pub fn campaign_customer_used(&self, campaign: CampaignId, customer: CustomerId) -> u64 {
        self.campaigns
            .get(&campaign)
            .and_then(|known| known.customers.get(&customer).copied())
            .unwrap_or(0)
    }

    /// Units counted in `campaign` (0 if unknown).
    pub fn campaign_used(&self, campaign: CampaignId) -> u64 {
        self.campaigns.get(&campaign).map_or(0, |known| known.used)
    }

    /// Takes `qty` units back from the counters of a finished reservation's
    /// campaign, if it had one.
    pub(super) fn give_back(&mut self, campaign: Option<(CampaignId, CustomerId)>, qty: u32) {
        let Some((campaign, customer)) = campaign else {
            return;
        };
        let Some(known) = self.campaigns.get_mut(&campaign) else {
            return;
        };
        let qty = u64::from(qty);
        known.used -= qty;
        let count = known
            .customers
            .get_mut(&customer)
            .expect("a counted customer has a counter");
        *count -= qty;
        if *count == 0 {
            known.customers.remove(&customer);
        }
    }

    /// `reserve` with `campaign` and `customer`.
    fn reserve_campaign(
        &mut self,
        id: ReservationId,
        channel: Channel,
        lines: &[Line],
        campaign: Option<CampaignId>,
        customer: Option<CustomerId>,
        ttl: u64,
    ) -> Result<ReservationAck, Error> {
        // 1. invalid, before lazy expiry.
        let mut seen = BTreeSet::new();
        if lines.is_empty()
            || lines.len() > MAX_LINES
            || lines.iter().any(|l| l.qty == 0)
            || !lines.iter().all(|l| seen.insert(l.item()))
            || ttl == 0
        {
            return Err(Error::Invalid {
                reason: "no lines, too many, a qty of 0, an item twice or ttl 0",
            });
        }
        let (Some(campaign), Some(customer)) = (campaign, customer) else {
            return Err(Error::Invalid {
                reason: "campaign without customer or the reverse",
            });
        };
        if lines.len() != 1 {
            return Err(Error::Invalid {
                reason: "a campaign reservation has one line",
            });
        }
        let line = lines[0];
        self.lazy_expire(id);
        // 2. idempotency: campaign and customer are part of the request.
        if let Some(r) = self.reservations.get(&id) {
            let same = r.channel == channel
                && r.campaign == Some((campaign, customer))
                && line_set(&r.lines) == line_set(lines);
            if !same {
                return Err(Error::IdConflict { id });
            }
            return match r.state {
                ReservationState::Pending | ReservationState::Committed => Ok(r.ack(id, true)),
                ReservationState::Released => Err(Error::AlreadyReleased { id }),
                ReservationState::Expired => Err(Error::Expired { id }),
            };
        }
        // 3. the campaign's checks.
        let Some(known) = self.campaigns.get(&campaign) else {
            return Err(Error::UnknownCampaign { campaign });
        };
        if known.item != line.item() {
            return Err(Error::Invalid {
                reason: "not the campaign's item",
            });
        }
        let qty = u64::from(line.qty);
        if known.used + qty > u64::from(known.quota) {
            return Err(Error::QuotaExhausted {
                campaign,
                remaining: floored(known.quota, known.used),
            });
        }
        let customer_used = known.customers.get(&customer).copied().unwrap_or(0);
        if customer_used + qty > u64::from(known.per_customer) {
            return Err(Error::CustomerLimit {
                campaign,
                customer,
                remaining: floored(known.per_customer, customer_used),
            });
        }
        // 4. the line checks of reserve.
        let Some(cell) = self.items.get_mut(&line.item()) else {
            return Err(Error::UnknownItem {
                sku: line.sku,
                store: line.store,
            });
        };
        let available = cell.available(channel);
        if line.qty > available {
            return Err(Error::Insufficient {
                sku: line.sku,
                store: line.store,
                requested: line.qty,
                available,
            });
        }
        cell.reserved += line.qty;
        let known = self.campaigns.get_mut(&campaign).expect("checked");
        known.used += qty;
        *known.customers.entry(customer).or_insert(0) += qty;
        let (expires_at, overflowed) = self.deadline(ttl);
        let r = Reservation {
            channel,
            lines: lines.to_vec(),
            expires_at,
            overflowed,
            state: ReservationState::Pending,
            terminal_at: None,
            committed: None,
            campaign: Some((campaign, customer)),
        };
        let ack = r.ack(id, false);
        self.reservations.insert(id, r);
        Ok(ack)
    }

    fn set_reorder_point(&mut self, sku: Sku, store: StoreId, qty: u32) -> Level {
        let key = ItemKey::new(sku, store);
        let level = self.items.entry(key).or_default().level();
        if qty == 0 {
            self.marks.remove(&key);
        } else {
            self.marks
                .entry(key)
                .or_insert(Mark {
                    reorder_point: qty,
                    alerted: false,
                })
                .reorder_point = qty;
        }
        level
    }

    /// After every operation: every item with a reorder point is evaluated
    /// (an item the operation did not change keeps its mark, so evaluating
    /// it changes nothing). Items in key order, so the alerts of one
    /// operation come sorted by item.
    pub(super) fn evaluate_alerts(&mut self) {
        for (key, mark) in &mut self.marks {
            let available = self
                .items
                .get(key)
                .map_or(0, |cell| cell.level().available_online);
            let below = available < mark.reorder_point;
            if !below {
                mark.alerted = false;
            } else if !mark.alerted {
                mark.alerted = true;
                self.alerts.push(Alert {
                    sku: key.sku,
                    store: key.store,
                    available_online: available,
                    reorder_point: mark.reorder_point,
                });
            }
        }
    }
}

/// `limit - used`, floored at 0.
fn floored(limit: u32, used: u64) -> u32 {
    u64::from(limit).saturating_sub(used) as u32
}

//! Flash-sale campaigns: a quota of units on one item and a limit per
//! customer, counted over the campaign's pending and committed
//! reservations.
//!
//! - `table.rs`: the campaigns, found without a lock; each slot's terms
//!   and its quota counter (`used`, one atomic word with the generation).
//! - `customers.rs`: per-customer counters in lock shards, removed at 0.
//!
//! Counting a reservation is, in this order: a compare-and-swap of the
//! quota word that checks `used + qty <= quota` and marks the reserve in
//! flight, then, under the customer's shard lock, the check
//! `customer_used + qty <= per_customer`, the stock step, and the raise of
//! the customer's counter; then the reserve in flight is settled (its units
//! kept, or taken back on a refusal). Neither counter ever passes its
//! limit, at any instant, in flight included.
//!
//! No false refusals: a reserve that is refused changes nothing in every
//! legal order, so no other request may be refused because of its units.
//! The quota refuses only when no reserve is in flight (every unit it
//! counts then belongs to a reservation that holds it); a request that
//! fits only if some reserve in flight is taken back waits, a few spins
//! and yields, for those to settle (they wait for nothing), then decides.
//! The customer's counter never holds units in flight: the stock is held
//! under its lock, before it is raised. A refusal for an exhausted quota
//! with nothing in flight reads the campaign's slot and compares: no lock,
//! no write, no allocation.
//!
//! The counters are derivable: `used` of a campaign is the sum, over its
//! reservations since it was last defined after an end, of the qty of
//! pending ones plus the committed qty of committed ones, and a customer's
//! counter the same sum over that customer's reservations. The effect
//! records (`CampaignDefined`, `CampaignEnded`, `Reserved` with its campaign
//! and customer, `Finished` with its `Stock` deltas) are enough to rebuild
//! them.

mod customers;
mod table;

pub(crate) use customers::MixState;

use crate::effect::CampaignUnits;
use crate::error::Error;
use crate::sync::MutexGuard;
use crate::types::{CampaignId, CustomerId, ItemKey};
use customers::{lower_in, Counts, CustomerCounts, CustomerKey, NotRaised};
use serde::{Deserialize, Serialize};
use table::{CampaignTable, NotCounted};

pub(crate) use table::Defined;

/// Campaigns an inventory can hold unless its builder says otherwise
/// ([`InventoryBuilder::max_campaigns`](crate::InventoryBuilder::max_campaigns)).
pub const DEFAULT_MAX_CAMPAIGNS: usize = 1024;

/// A campaign's terms and counters as read at one moment
/// ([`Inventory::campaign`](crate::Inventory::campaign)).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CampaignUsage {
    /// The campaign.
    pub campaign: CampaignId,
    /// The item it sells.
    pub item: ItemKey,
    /// Units it may count in all.
    pub quota: u32,
    /// Units one customer may count.
    pub per_customer: u32,
    /// Units counted now (pending and committed reservations).
    pub used: u32,
    /// Customers with units counted now.
    pub customers: usize,
}

/// The campaigns of one inventory.
#[derive(Debug)]
pub(crate) struct Campaigns {
    table: CampaignTable,
    customers: CustomerCounts,
}

impl Campaigns {
    pub(crate) fn new(capacity: usize) -> Self {
        Campaigns {
            table: CampaignTable::new(capacity),
            customers: CustomerCounts::default(),
        }
    }

    /// Defines (or redefines) a campaign; see `Inventory::define_campaign`.
    pub(crate) fn define(
        &self,
        campaign: CampaignId,
        item: ItemKey,
        quota: u32,
        per_customer: u32,
    ) -> Defined {
        self.table.define(campaign, item, quota, per_customer)
    }

    /// Ends a campaign and drops its customer counters; false if it was
    /// not live.
    pub(crate) fn end(&self, campaign: CampaignId) -> bool {
        self.table.end(campaign, |slot, generation| {
            self.customers.sweep(slot, generation);
        })
    }

    /// The refusal a campaign reservation of `qty` units of `item` gets
    /// before the stock is looked at, if one can be read now: unknown
    /// campaign, another item, quota exhausted. Loads and compares only.
    /// (The customer limit is not read here: it needs a lock.)
    pub(crate) fn refusal_by_reading(
        &self,
        campaign: CampaignId,
        item: ItemKey,
        qty: u32,
    ) -> Option<Error> {
        let Some(terms) = self.table.terms(campaign) else {
            return Some(Error::UnknownCampaign { campaign });
        };
        if terms.item != item {
            return Some(not_its_item());
        }
        // With reserves in flight the refusal is not certain yet: `count`
        // waits them out.
        let over = u64::from(terms.used) + u64::from(qty) > u64::from(terms.quota);
        (over && terms.in_flight == 0).then_some(Error::QuotaExhausted {
            campaign,
            remaining: terms.quota.saturating_sub(terms.used),
        })
    }

    /// Counts `qty` units of `item` for `customer` in `campaign` and runs
    /// `hold` (the stock step) between the checks and the raise of the
    /// customer's counter, under its lock: the quota as a reserve in
    /// flight, then the customer, then `hold`; the reserve in flight is
    /// settled once `hold` answers. On a refusal nothing stays counted.
    pub(crate) fn reserve<H>(
        &self,
        campaign: CampaignId,
        customer: CustomerId,
        item: ItemKey,
        qty: u32,
        hold: impl FnOnce() -> Result<H, Error>,
    ) -> Result<(CampaignUnits, H), Error> {
        let mut hold = Some(hold);
        loop {
            let Some(terms) = self.table.terms(campaign) else {
                return Err(Error::UnknownCampaign { campaign });
            };
            if terms.item != item {
                return Err(not_its_item());
            }
            match self.table.count(&terms, qty) {
                Ok(()) => {}
                Err(NotCounted::Exhausted { remaining }) => {
                    return Err(Error::QuotaExhausted {
                        campaign,
                        remaining,
                    })
                }
                Err(NotCounted::Ended) => continue,
            }
            let key = CustomerKey {
                slot: terms.slot,
                generation: terms.generation,
                customer: customer.0,
            };
            let raised = self.customers.raise(
                key,
                qty,
                terms.per_customer,
                || self.table.is_current(terms.slot, terms.generation),
                || (hold.take().expect("the stock step runs once"))(),
            );
            match raised {
                Ok(held) => {
                    self.table.settle(terms.slot, terms.generation);
                    let units = CampaignUnits {
                        campaign,
                        customer,
                        slot: terms.slot,
                        generation: terms.generation,
                        qty,
                    };
                    return Ok((units, held));
                }
                Err(refused) => {
                    self.table.take_back(terms.slot, terms.generation, qty);
                    match refused {
                        NotRaised::Limit { remaining } => {
                            return Err(Error::CustomerLimit {
                                campaign,
                                customer,
                                remaining,
                            })
                        }
                        NotRaised::Refused(refusal) => return Err(refusal),
                        NotRaised::Ended => {}
                    }
                }
            }
        }
    }

    /// Counts `qty` units for `customer` in the live `campaign` without
    /// checking its limits (recovery: the units were counted when the
    /// journal's step was made; a redefinition may since have lowered the
    /// limits below them). `None` if the campaign is not live or sells
    /// another item.
    pub(crate) fn count_in(
        &self,
        campaign: CampaignId,
        customer: CustomerId,
        item: ItemKey,
        qty: u32,
    ) -> Option<CampaignUnits> {
        let terms = self.table.terms(campaign)?;
        if terms.item != item {
            return None;
        }
        let unlimited = table::Terms {
            quota: u32::MAX,
            ..terms
        };
        self.table.count(&unlimited, qty).ok()?;
        let key = CustomerKey {
            slot: terms.slot,
            generation: terms.generation,
            customer: customer.0,
        };
        let raised = self
            .customers
            .raise(key, qty, u32::MAX, || true, || Ok::<(), Error>(()));
        if raised.is_err() {
            self.table.take_back(terms.slot, terms.generation, qty);
            return None;
        }
        self.table.settle(terms.slot, terms.generation);
        Some(CampaignUnits {
            campaign,
            customer,
            slot: terms.slot,
            generation: terms.generation,
            qty,
        })
    }

    /// The units a reservation of `qty` for `customer` in the live
    /// `campaign` would count, without counting them (a snapshot's
    /// reservations, whose units its counters already hold).
    pub(crate) fn units_of(
        &self,
        campaign: CampaignId,
        customer: CustomerId,
        qty: u32,
    ) -> Option<CampaignUnits> {
        let terms = self.table.terms(campaign)?;
        Some(CampaignUnits {
            campaign,
            customer,
            slot: terms.slot,
            generation: terms.generation,
            qty,
        })
    }

    /// Every live campaign with its terms and each customer's count, in
    /// no particular order (snapshots: the caller holds off every change).
    pub(crate) fn for_each_live(&self, mut visit: impl FnMut(CampaignUsage, &[(CustomerId, u32)])) {
        let mut customers = Vec::new();
        self.table.for_each_live(|campaign, terms| {
            customers.clear();
            self.customers
                .for_each_of(terms.slot, terms.generation, |customer, count| {
                    customers.push((CustomerId(customer), count));
                });
            let usage = CampaignUsage {
                campaign,
                item: terms.item,
                quota: terms.quota,
                per_customer: terms.per_customer,
                used: terms.used,
                customers: customers.len(),
            };
            visit(usage, &customers);
        });
    }

    /// Gives counted units back: the customer's counter, then the quota
    /// (the reverse of counting). Units of an ended generation go nowhere.
    pub(crate) fn uncount(&self, units: &CampaignUnits) {
        if units.qty == 0 {
            return;
        }
        let key = CustomerKey {
            slot: units.slot,
            generation: units.generation,
            customer: units.customer.0,
        };
        self.customers.lower(key, units.qty);
        self.table.uncount(units.slot, units.generation, units.qty);
    }

    /// Starts giving `units` back around the stock step of a finishing
    /// reservation: marks them in flight in the quota word and takes the
    /// customer's lock, so that from now until [`GivingBack::finish`] a
    /// reserve that needs them waits instead of being refused. Run the
    /// stock step, then `finish`.
    pub(crate) fn begin_give_back(&self, units: &CampaignUnits) -> GivingBack<'_> {
        let key = CustomerKey {
            slot: units.slot,
            generation: units.generation,
            customer: units.customer.0,
        };
        let marked = self.table.mark_in_flight(units.slot, units.generation);
        GivingBack {
            campaigns: self,
            units: *units,
            key,
            marked,
            counts: self.customers.lock(&key),
        }
    }

    /// A live campaign's terms and counters.
    pub(crate) fn usage(&self, campaign: CampaignId) -> Option<CampaignUsage> {
        let terms = self.table.terms(campaign)?;
        Some(CampaignUsage {
            campaign,
            item: terms.item,
            quota: terms.quota,
            per_customer: terms.per_customer,
            used: terms.used,
            customers: self.customers.customers_of(terms.slot, terms.generation),
        })
    }

    /// Units `customer` has counted in a live campaign (0 if none).
    pub(crate) fn customer_used(&self, campaign: CampaignId, customer: CustomerId) -> u32 {
        self.table.terms(campaign).map_or(0, |terms| {
            self.customers.get(CustomerKey {
                slot: terms.slot,
                generation: terms.generation,
                customer: customer.0,
            })
        })
    }

    /// Customer counters held now, all campaigns together, and the bytes
    /// their maps hold.
    pub(crate) fn counter_memory(&self) -> (usize, usize) {
        (self.customers.len(), self.customers.heap_bytes())
    }

    /// How many campaigns the table can hold.
    pub(crate) fn capacity(&self) -> usize {
        self.table.capacity()
    }
}

/// Units being given back (see [`Campaigns::begin_give_back`]).
pub(crate) struct GivingBack<'a> {
    campaigns: &'a Campaigns,
    units: CampaignUnits,
    key: CustomerKey,
    /// Whether the quota word counts this give-back in flight.
    marked: bool,
    /// The customer's shard, locked.
    counts: MutexGuard<'a, Counts>,
}

impl std::fmt::Debug for GivingBack<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GivingBack")
            .field("units", &self.units)
            .field("marked", &self.marked)
            .finish_non_exhaustive()
    }
}

impl GivingBack<'_> {
    /// Gives the units back, once the stock step is done: the customer's
    /// counter (then its lock), then the quota, settling the give-back.
    pub(crate) fn finish(self) {
        let GivingBack {
            campaigns,
            units,
            key,
            marked,
            mut counts,
        } = self;
        lower_in(&mut counts, key, units.qty);
        drop(counts);
        if marked {
            campaigns
                .table
                .take_back(units.slot, units.generation, units.qty);
        }
    }
}

fn not_its_item() -> Error {
    Error::Invalid {
        reason: "a campaign reservation's line must be the campaign's item",
    }
}

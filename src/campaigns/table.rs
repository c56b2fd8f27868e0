//! The campaign table: a fixed number of slots, found by the campaign id
//! without a lock, each holding one campaign's terms and its quota counter.
//!
//! Invariants:
//! - A slot, once given to a campaign id, keeps that id for the life of
//!   the table (an ended campaign leaves its slot to the same id), so a
//!   probe for an id stops at the first slot never given out, and readers
//!   need no lock to find a campaign.
//! - A slot's terms (live, item, quota, per-customer limit) change only
//!   under the table's writer lock, inside an odd `version`; a reader takes
//!   them as one snapshot by reading `version` before and after.
//! - `counted` holds, in one word, the generation (top 22 bits), the
//!   reserves in flight (10 bits) and the units counted (low 32 bits,
//!   those in flight included). Counting is a compare-and-swap that checks
//!   the generation and `used + qty <= quota` and adds one in-flight
//!   reserve in one step, so the quota is never passed, and units given
//!   back for an ended generation never reach a later campaign of the same
//!   id. Ending a campaign moves the generation on and zeroes the rest.
//! - A refusal for the quota is given only when nothing is in flight
//!   (`used` is then all settled units); otherwise the request waits for
//!   the reserves in flight to settle. Every reserve in flight runs under
//!   its reservation shard's lock and waits for nothing once counted, so
//!   there are at most as many as shards (256 < 1023) and the wait ends.

use crate::sync::{AtomicBool, AtomicU32, AtomicU64, Mutex, Ordering};
use crate::types::{CampaignId, ItemKey, Sku, StoreId};

/// One campaign's place in the table.
#[derive(Debug)]
struct Slot {
    /// Set (release) once `campaign` is written; never cleared.
    taken: AtomicBool,
    campaign: AtomicU64,
    /// Odd while the writer changes the terms below.
    version: AtomicU32,
    live: AtomicBool,
    sku: AtomicU64,
    store: AtomicU64,
    quota: AtomicU32,
    per_customer: AtomicU32,
    /// `generation << 42 | in_flight << 32 | used`.
    counted: AtomicU64,
}

impl Slot {
    fn new() -> Self {
        Slot {
            taken: AtomicBool::new(false),
            campaign: AtomicU64::new(0),
            version: AtomicU32::new(0),
            live: AtomicBool::new(false),
            sku: AtomicU64::new(0),
            store: AtomicU64::new(0),
            quota: AtomicU32::new(0),
            per_customer: AtomicU32::new(0),
            counted: AtomicU64::new(0),
        }
    }
}

/// A live campaign's terms as one reading saw them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Terms {
    pub(crate) slot: u32,
    pub(crate) generation: u32,
    pub(crate) item: ItemKey,
    pub(crate) quota: u32,
    pub(crate) per_customer: u32,
    /// Units counted when the terms were read (those in flight included).
    pub(crate) used: u32,
    /// Reserves in flight when the terms were read: counted, not yet
    /// settled (held, or taken back on a refusal).
    pub(crate) in_flight: u32,
}

/// Why units could not be counted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum NotCounted {
    /// `remaining` units of the quota are left.
    Exhausted { remaining: u32 },
    /// The campaign ended (or ended and came back) since its terms were read.
    Ended,
}

/// What defining a campaign did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Defined {
    /// It was defined (or its limits changed).
    Ok,
    /// It is live on another item.
    OtherItem,
    /// No slot is free.
    Full,
}

/// The bit where the generation starts in `counted`.
const GENERATION_SHIFT: u32 = 42;
/// Generations wrap at 2^22 (a unit given back reaches a later campaign of
/// the same id only if it stayed pending over 4 million ends of it).
const GENERATION_MASK: u32 = (1 << (64 - GENERATION_SHIFT)) - 1;
/// One reserve in flight, in `counted`.
const ONE_IN_FLIGHT: u64 = 1 << 32;
/// The most reserves `counted` holds in flight.
const MAX_IN_FLIGHT: u32 = (1 << (GENERATION_SHIFT - 32)) - 1;

fn generation(word: u64) -> u32 {
    (word >> GENERATION_SHIFT) as u32
}

fn in_flight(word: u64) -> u32 {
    (word >> 32) as u32 & MAX_IN_FLIGHT
}

fn used(word: u64) -> u32 {
    word as u32
}

/// Whether the build plants the behaviour before reserves in flight were
/// counted apart (a refusal whenever `used + qty > quota`), so that the
/// loom models can show they catch it.
const PLANT_EAGER_REFUSAL: bool = cfg!(omnistock_plant_eager_refusal);

/// The table of campaigns.
#[derive(Debug)]
pub(crate) struct CampaignTable {
    slots: Box<[Slot]>,
    /// How many ids it gives slots to, at most.
    capacity: usize,
    /// Serializes definitions and ends (readers never take it), and counts
    /// the slots given out.
    writer: Mutex<usize>,
}

impl CampaignTable {
    /// A table for `capacity` campaign ids (its slots rounded up to a
    /// power of two, for the probe; the ids past `capacity` are refused).
    pub(crate) fn new(capacity: usize) -> Self {
        let slots = capacity.max(1).next_power_of_two();
        CampaignTable {
            slots: (0..slots).map(|_| Slot::new()).collect(),
            capacity,
            writer: Mutex::new(0),
        }
    }

    /// How many campaign ids it can ever hold.
    pub(crate) fn capacity(&self) -> usize {
        self.capacity
    }

    fn start(&self, campaign: CampaignId) -> usize {
        let hash = campaign.0.wrapping_mul(0x9E37_79B9_7F4A_7C15);
        (hash >> 32) as usize & (self.slots.len() - 1)
    }

    /// The slot given to `campaign`, or the first never given out on its
    /// probe (`Err`, `None` when every slot is given out). Loads only.
    fn probe(&self, campaign: CampaignId) -> Result<u32, Option<u32>> {
        let mask = self.slots.len() - 1;
        let start = self.start(campaign);
        for step in 0..self.slots.len() {
            let at = (start + step) & mask;
            let slot = &self.slots[at];
            if !slot.taken.load(Ordering::Acquire) {
                return Err(Some(at as u32));
            }
            if slot.campaign.load(Ordering::Relaxed) == campaign.0 {
                return Ok(at as u32);
            }
        }
        Err(None)
    }

    /// The terms of `campaign` if it is live: loads and compares only (no
    /// lock, no write), so a sold-out campaign refuses for the price of a
    /// few reads.
    pub(crate) fn terms(&self, campaign: CampaignId) -> Option<Terms> {
        let at = self.probe(campaign).ok()?;
        let slot = &self.slots[at as usize];
        let mut rounds = 0;
        loop {
            let before = slot.version.load(Ordering::Acquire);
            if before % 2 == 0 {
                let live = slot.live.load(Ordering::Acquire);
                let sku = slot.sku.load(Ordering::Acquire);
                let store = slot.store.load(Ordering::Acquire);
                let quota = slot.quota.load(Ordering::Acquire);
                let per_customer = slot.per_customer.load(Ordering::Acquire);
                let counted = slot.counted.load(Ordering::Acquire);
                if slot.version.load(Ordering::Acquire) == before {
                    return live.then_some(Terms {
                        slot: at,
                        generation: generation(counted),
                        item: ItemKey::new(Sku(sku), StoreId(store)),
                        quota,
                        per_customer,
                        used: used(counted),
                        in_flight: in_flight(counted),
                    });
                }
            }
            crate::sync::wait_a_little(&mut rounds);
        }
    }

    /// Counts `qty` units against the quota of the campaign `terms` were
    /// read for, as one reserve in flight, if its generation is still
    /// current and the quota (as the terms say) covers them. When they fit
    /// only once some reserve in flight is taken back, waits for the
    /// reserves in flight to settle, then decides. The caller settles the
    /// reserve with [`settle`](Self::settle) or [`take_back`](Self::take_back).
    pub(crate) fn count(&self, terms: &Terms, qty: u32) -> Result<(), NotCounted> {
        let counted = &self.slots[terms.slot as usize].counted;
        let mut word = counted.load(Ordering::Acquire);
        let mut rounds = 0;
        loop {
            if generation(word) != terms.generation {
                return Err(NotCounted::Ended);
            }
            let used = used(word);
            let fits = u64::from(used) + u64::from(qty) <= u64::from(terms.quota);
            let flying = in_flight(word);
            if !fits && (flying == 0 || PLANT_EAGER_REFUSAL) {
                return Err(NotCounted::Exhausted {
                    remaining: terms.quota.saturating_sub(used),
                });
            }
            if !fits || flying == MAX_IN_FLIGHT {
                // Some unit in flight may come back: decide once settled.
                crate::sync::wait_a_little(&mut rounds);
                word = counted.load(Ordering::Acquire);
                continue;
            }
            match counted.compare_exchange_weak(
                word,
                word + ONE_IN_FLIGHT + u64::from(qty),
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => return Ok(()),
                Err(now) => word = now,
            }
        }
    }

    /// Settles a reserve in flight of generation `generation_then` that
    /// succeeded: its units stay counted.
    pub(crate) fn settle(&self, slot: u32, generation_then: u32) {
        self.land(slot, generation_then, 0);
    }

    /// Settles a reserve in flight of generation `generation_then` that
    /// was refused: its `qty` units are no longer counted.
    pub(crate) fn take_back(&self, slot: u32, generation_then: u32, qty: u32) {
        self.land(slot, generation_then, qty);
    }

    /// Marks one give-back in flight in generation `generation_then` (its
    /// units stay counted until [`take_back`](Self::take_back)); false if
    /// that generation has ended.
    pub(crate) fn mark_in_flight(&self, slot: u32, generation_then: u32) -> bool {
        let counted = &self.slots[slot as usize].counted;
        let mut word = counted.load(Ordering::Acquire);
        let mut rounds = 0;
        loop {
            if generation(word) != generation_then {
                return false;
            }
            if in_flight(word) == MAX_IN_FLIGHT {
                crate::sync::wait_a_little(&mut rounds);
                word = counted.load(Ordering::Acquire);
                continue;
            }
            match counted.compare_exchange_weak(
                word,
                word + ONE_IN_FLIGHT,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => return true,
                Err(now) => word = now,
            }
        }
    }

    fn land(&self, slot: u32, generation_then: u32, qty: u32) {
        let counted = &self.slots[slot as usize].counted;
        let mut word = counted.load(Ordering::Acquire);
        loop {
            if generation(word) != generation_then {
                return;
            }
            debug_assert!(in_flight(word) > 0 && used(word) >= qty);
            let next = word - ONE_IN_FLIGHT - u64::from(qty.min(used(word)));
            match counted.compare_exchange_weak(word, next, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => return,
                Err(now) => word = now,
            }
        }
    }

    /// Takes `qty` counted units back from generation `generation` of the
    /// campaign at `slot`; nothing if that generation has ended.
    pub(crate) fn uncount(&self, slot: u32, generation_then: u32, qty: u32) {
        let counted = &self.slots[slot as usize].counted;
        let mut word = counted.load(Ordering::Acquire);
        loop {
            if generation(word) != generation_then {
                return;
            }
            debug_assert!(used(word) >= qty, "units given back were counted");
            let next = word - u64::from(qty.min(used(word)));
            match counted.compare_exchange_weak(word, next, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => return,
                Err(now) => word = now,
            }
        }
    }

    /// Every live campaign's id and terms (snapshots, with definitions and
    /// ends held off by the caller).
    pub(crate) fn for_each_live(&self, mut visit: impl FnMut(CampaignId, Terms)) {
        for slot in self.slots.iter() {
            if slot.taken.load(Ordering::Acquire) {
                let campaign = CampaignId(slot.campaign.load(Ordering::Relaxed));
                if let Some(terms) = self.terms(campaign) {
                    visit(campaign, terms);
                }
            }
        }
    }

    /// Whether generation `generation` of the campaign at `slot` is current.
    pub(crate) fn is_current(&self, slot: u32, generation_then: u32) -> bool {
        generation(self.slots[slot as usize].counted.load(Ordering::Acquire)) == generation_then
    }

    /// Runs `change` on the slot's terms inside an odd version.
    fn change_terms(&self, at: u32, change: impl FnOnce(&Slot)) {
        let slot = &self.slots[at as usize];
        slot.version.fetch_add(1, Ordering::AcqRel);
        change(slot);
        slot.version.fetch_add(1, Ordering::AcqRel);
    }

    /// Defines `campaign` on `item`, or changes a live one's limits (its
    /// counted units stay counted).
    pub(crate) fn define(
        &self,
        campaign: CampaignId,
        item: ItemKey,
        quota: u32,
        per_customer: u32,
    ) -> Defined {
        let mut given = self.writer.lock();
        let at = match self.probe(campaign) {
            Ok(at) => at,
            Err(Some(_)) if *given >= self.capacity => return Defined::Full,
            Err(Some(at)) => {
                *given += 1;
                let slot = &self.slots[at as usize];
                slot.campaign.store(campaign.0, Ordering::Relaxed);
                slot.taken.store(true, Ordering::Release);
                at
            }
            Err(None) => return Defined::Full,
        };
        let slot = &self.slots[at as usize];
        let live = slot.live.load(Ordering::Acquire);
        let same_item = slot.sku.load(Ordering::Acquire) == item.sku.0
            && slot.store.load(Ordering::Acquire) == item.store.0;
        if live && !same_item {
            return Defined::OtherItem;
        }
        self.change_terms(at, |slot| {
            slot.sku.store(item.sku.0, Ordering::Release);
            slot.store.store(item.store.0, Ordering::Release);
            slot.quota.store(quota, Ordering::Release);
            slot.per_customer.store(per_customer, Ordering::Release);
            slot.live.store(true, Ordering::Release);
        });
        Defined::Ok
    }

    /// Ends `campaign`: it is no longer live, its generation moves on and
    /// its count is zeroed. Returns the slot and the generation that ended,
    /// or `None` if it was not live. `then` runs under the writer lock
    /// (the caller drops the generation's customer counters there, so a
    /// redefinition cannot start before they are gone).
    pub(crate) fn end(&self, campaign: CampaignId, then: impl FnOnce(u32, u32)) -> bool {
        let _writer = self.writer.lock();
        let Ok(at) = self.probe(campaign) else {
            return false;
        };
        let slot = &self.slots[at as usize];
        if !slot.live.load(Ordering::Acquire) {
            return false;
        }
        let mut ended = 0;
        self.change_terms(at, |slot| {
            slot.live.store(false, Ordering::Release);
            let word = slot.counted.load(Ordering::Acquire);
            ended = generation(word);
            let next = ended.wrapping_add(1) & GENERATION_MASK;
            slot.counted
                .store(u64::from(next) << GENERATION_SHIFT, Ordering::Release);
        });
        then(at, ended);
        true
    }
}

#[cfg(all(test, not(omnistock_loom)))]
mod tests {
    use super::*;

    fn item(sku: u64) -> ItemKey {
        ItemKey::new(Sku(sku), StoreId(1))
    }

    #[test]
    fn define_count_end_and_define_again() {
        let table = CampaignTable::new(4);
        assert_eq!(table.terms(CampaignId(9)), None);
        assert_eq!(table.define(CampaignId(9), item(1), 3, 2), Defined::Ok);
        let terms = table.terms(CampaignId(9)).unwrap();
        assert_eq!((terms.quota, terms.per_customer, terms.used), (3, 2, 0));
        assert_eq!(table.count(&terms, 2), Ok(()));
        table.settle(terms.slot, terms.generation);
        assert_eq!(
            table.count(&terms, 2),
            Err(NotCounted::Exhausted { remaining: 1 })
        );
        assert_eq!(
            table.define(CampaignId(9), item(2), 3, 2),
            Defined::OtherItem
        );
        // Redefining keeps the count.
        assert_eq!(table.define(CampaignId(9), item(1), 1, 1), Defined::Ok);
        let lower = table.terms(CampaignId(9)).unwrap();
        assert_eq!(lower.used, 2);
        assert_eq!(
            table.count(&lower, 1),
            Err(NotCounted::Exhausted { remaining: 0 })
        );
        assert!(table.end(CampaignId(9), |_, _| {}));
        assert!(!table.end(CampaignId(9), |_, _| {}));
        assert_eq!(table.count(&lower, 1), Err(NotCounted::Ended));
        // Units of the ended generation never reach the next one.
        assert_eq!(table.define(CampaignId(9), item(2), 5, 5), Defined::Ok);
        table.uncount(lower.slot, lower.generation, 2);
        let again = table.terms(CampaignId(9)).unwrap();
        assert_eq!((again.item, again.used), (item(2), 0));
    }

    #[test]
    fn a_full_table_refuses_new_campaigns_only() {
        let table = CampaignTable::new(2);
        assert_eq!(table.define(CampaignId(1), item(1), 1, 1), Defined::Ok);
        assert_eq!(table.define(CampaignId(2), item(1), 1, 1), Defined::Ok);
        assert_eq!(table.define(CampaignId(3), item(1), 1, 1), Defined::Full);
        assert_eq!(table.define(CampaignId(2), item(1), 4, 1), Defined::Ok);
        assert_eq!(table.terms(CampaignId(3)), None);
    }
}

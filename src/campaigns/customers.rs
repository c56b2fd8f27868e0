//! Per-customer counters of every campaign: the units each customer has
//! counted (pending and committed) in one generation of one campaign.
//!
//! Invariants: a counter exists only while it is above 0 (it is removed
//! when it returns to 0, and every counter of a generation is removed when
//! that generation ends), so memory follows the customers who hold units
//! now; a counter is only raised under its shard's lock after checking
//! that its campaign generation is still current, so no counter of an
//! ended generation outlives the sweep that drops them.
//!
//! A reserve's stock is held under the same lock, between the check and
//! the raise: no other reserve of the customer sees the counter with units
//! that may still be refused, so a counter holds settled units only and
//! its refusals need no waiting.

use crate::error::Error;
use crate::sync::{Mutex, MutexGuard};
use crossbeam_utils::CachePadded;
use std::collections::HashMap;

/// Lock shards of the counters: customers of one flash sale spread over
/// them, so shoppers rarely wait for each other. (Two under loom, whose
/// models pay for every lock an inventory holds.)
#[cfg(not(omnistock_loom))]
const SHARDS: usize = 64;
#[cfg(omnistock_loom)]
const SHARDS: usize = 2;

/// The counter of one customer in one campaign generation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) struct CustomerKey {
    pub(crate) slot: u32,
    pub(crate) generation: u32,
    pub(crate) customer: u64,
}

/// Why a customer's counter was not raised.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum NotRaised {
    /// The customer may still count `remaining` units.
    Limit { remaining: u32 },
    /// The campaign generation ended.
    Ended,
    /// The step run under the lock refused.
    Refused(Error),
}

/// The counters of one lock shard.
pub(crate) type Counts = HashMap<CustomerKey, u32, MixState>;

/// One lock shard of the counters.
type CountShard = CachePadded<Mutex<Counts>>;

/// Every customer counter, in lock shards.
#[derive(Debug)]
pub(crate) struct CustomerCounts {
    shards: Box<[CountShard]>,
}

impl Default for CustomerCounts {
    fn default() -> Self {
        CustomerCounts {
            shards: (0..SHARDS)
                .map(|_| CachePadded::new(Mutex::new(HashMap::default())))
                .collect(),
        }
    }
}

impl CustomerCounts {
    fn shard(&self, key: &CustomerKey) -> &Mutex<Counts> {
        let mixed = (key.customer ^ u64::from(key.slot).rotate_left(32))
            .wrapping_mul(0x9E37_79B9_7F4A_7C15);
        &self.shards[(mixed >> 58) as usize % SHARDS]
    }

    /// Raises `key`'s counter by `qty` if it stays within `limit`,
    /// `current()` (asked under the lock) says the generation is current,
    /// and `hold()` (run under the lock, after both checks) succeeds.
    pub(crate) fn raise<H>(
        &self,
        key: CustomerKey,
        qty: u32,
        limit: u32,
        current: impl FnOnce() -> bool,
        hold: impl FnOnce() -> Result<H, Error>,
    ) -> Result<H, NotRaised> {
        let mut counts = self.shard(&key).lock();
        if !current() {
            return Err(NotRaised::Ended);
        }
        let had = counts.get(&key).copied().unwrap_or(0);
        if u64::from(had) + u64::from(qty) > u64::from(limit) {
            return Err(NotRaised::Limit {
                remaining: limit.saturating_sub(had),
            });
        }
        let held = hold().map_err(NotRaised::Refused)?;
        counts.insert(key, had + qty);
        Ok(held)
    }

    /// Lowers `key`'s counter by `qty`, removing it at 0; nothing if it is
    /// gone (its generation ended).
    pub(crate) fn lower(&self, key: CustomerKey, qty: u32) {
        lower_in(&mut self.lock(&key), key, qty);
    }

    /// The lock of `key`'s shard, held.
    pub(crate) fn lock(&self, key: &CustomerKey) -> MutexGuard<'_, Counts> {
        self.shard(key).lock()
    }

    /// The units `key` has counted.
    pub(crate) fn get(&self, key: CustomerKey) -> u32 {
        self.shard(&key).lock().get(&key).copied().unwrap_or(0)
    }

    /// Drops every counter of generation `generation` of the campaign at
    /// `slot`.
    pub(crate) fn sweep(&self, slot: u32, generation: u32) {
        for shard in self.shards.iter() {
            shard
                .lock()
                .retain(|key, _| key.slot != slot || key.generation != generation);
        }
    }

    /// Every counter of generation `generation` of the campaign at `slot`
    /// (snapshots).
    pub(crate) fn for_each_of(&self, slot: u32, generation: u32, mut visit: impl FnMut(u64, u32)) {
        for shard in self.shards.iter() {
            for (key, &count) in shard.lock().iter() {
                if key.slot == slot && key.generation == generation {
                    visit(key.customer, count);
                }
            }
        }
    }

    /// Counters of the campaign at `slot`, generation `generation`.
    pub(crate) fn customers_of(&self, slot: u32, generation: u32) -> usize {
        self.shards
            .iter()
            .map(|shard| {
                shard
                    .lock()
                    .keys()
                    .filter(|key| key.slot == slot && key.generation == generation)
                    .count()
            })
            .sum()
    }

    /// Counters held now, all campaigns together.
    pub(crate) fn len(&self) -> usize {
        self.shards.iter().map(|shard| shard.lock().len()).sum()
    }

    /// Bytes the counters' maps hold now (their tables, at capacity).
    pub(crate) fn heap_bytes(&self) -> usize {
        // A hashbrown table holds one key-value pair and one control byte a
        // bucket.
        let bucket = std::mem::size_of::<(CustomerKey, u32)>() + 1;
        self.shards
            .iter()
            .map(|shard| shard.lock().capacity() * bucket)
            .sum()
    }
}

/// Lowers `key`'s counter in its locked shard `counts` by `qty`, removing
/// it at 0; nothing if it is gone (its generation ended).
pub(crate) fn lower_in(counts: &mut Counts, key: CustomerKey, qty: u32) {
    if let Some(count) = counts.get_mut(&key) {
        debug_assert!(*count >= qty, "units given back were counted");
        *count = count.saturating_sub(qty);
        if *count == 0 {
            counts.remove(&key);
        }
    }
}

/// A quick hasher for the counters' integer keys (a multiply and a
/// rotate per word, as rustc's own maps do): the keys are the caller's
/// customer ids and campaign slots, and SipHash's cost showed in the
/// campaign reserve.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct MixHasher(u64);

impl std::hash::Hasher for MixHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.write_u64(u64::from(byte));
        }
    }

    fn write_u32(&mut self, word: u32) {
        self.write_u64(u64::from(word));
    }

    fn write_u64(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(0x51_7C_C1_B7_27_22_0A_95);
    }
}

/// Builds [`MixHasher`]s.
pub(crate) type MixState = std::hash::BuildHasherDefault<MixHasher>;

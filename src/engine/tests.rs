//! The engine against the reference model in large and long runs, and
//! the id filters' and slabs' growth and compaction.

use super::*;
use crate::error::BuildError;
use crate::model::{same_answer, ReferenceModel};
use crate::reservations::id_filter;
use crate::types::*;
use crate::ManualClock;

/// An inventory and the reference model side by side on one manual
/// clock: every command must get the same answer from both.
struct Lockstep {
    inventory: Inventory,
    model: ReferenceModel,
    clock: Arc<ManualClock>,
}

impl Lockstep {
    fn new(ttl: u64, retention: u64, expected_items: usize) -> Self {
        let clock = Arc::new(ManualClock::new());
        let inventory = Inventory::builder()
            .clock(clock.clone())
            .default_ttl_ms(ttl)
            .retention_ms(retention)
            .expected_items(expected_items)
            .build();
        Lockstep {
            inventory,
            model: ReferenceModel::with_limits(ttl, retention),
            clock,
        }
    }

    fn run(&mut self, command: Command) {
        let ours = self.inventory.apply(&command);
        let theirs = self.model.apply(&command);
        assert!(
            same_answer(&ours, &theirs),
            "{command:?}: {ours:?} vs {theirs:?}"
        );
    }

    fn advance(&mut self, ms: u64) {
        self.clock.advance(ms);
        self.model.advance(ms);
    }

    /// Skus `0..skus` at `store`, `qty` units each.
    fn stock(&mut self, store: StoreId, skus: u64, qty: u32) {
        for sku in 0..skus {
            self.run(Command::Restock {
                sku: Sku(sku),
                store,
                qty,
            });
        }
    }

    /// The shard of id 0, and the first `n` ids it holds.
    fn ids_of_one_shard(&self, n: usize) -> (usize, Vec<ReservationId>) {
        let hasher = self.inventory.id_hasher;
        let home = hasher.shard_of(0);
        let ids = (0..)
            .filter(|&id| hasher.shard_of(id) == home)
            .take(n)
            .map(ReservationId)
            .collect();
        (home, ids)
    }
}

/// Of `n` ids never used, how many their shards' filters prove unknown.
fn proven_unknown(inventory: &Inventory, n: u64) -> u64 {
    let fresh = 1u64 << 40;
    (fresh..fresh + n)
        .filter(|&id| {
            let ids = &inventory.shard(ReservationId(id)).0.ids;
            ids.read_begin()
                .is_some_and(|sequence| ids.certainly_absent_since(id, sequence))
        })
        .count() as u64
}

fn filter_counters(inventory: &Inventory) -> usize {
    inventory
        .reservations
        .iter()
        .map(|shard| shard.ids.len())
        .sum()
}

/// Without `expected_reservations`, the id filters start off: a shard
/// that refuses nothing counts no ids. Refusals of fresh ids on a
/// sold-out item switch them on, sized for the ids remembered, so those
/// refusals go back to answering without the lock; and once the ids
/// are forgotten they shrink to the size the catalogue sets, still on.
#[test]
fn id_filters_grow_for_refusals_and_shrink_when_ids_are_forgotten() {
    let clock = Arc::new(ManualClock::new());
    let inventory = Inventory::builder()
        .clock(clock.clone())
        .retention_ms(1_000)
        .build();
    let (sku, store) = (Sku(1), StoreId(1));
    let cart = [Line::new(sku, store, 1)];
    let remembered = 400_000u64;
    inventory
        .set_on_hand(sku, store, remembered as u32)
        .unwrap();
    assert_eq!(filter_counters(&inventory), 0, "off until a refusal");
    // The size a filter takes at the least once on: from the default
    // 65,536 expected items.
    let floor = RESERVATION_SHARDS
        * id_filter::Sizing::DEFAULT.start_counters(65_536, None, RESERVATION_SHARDS);
    for id in 0..remembered {
        let id = ReservationId(id);
        inventory.reserve(id, Channel::Online, &cart).unwrap();
        inventory.commit(id).unwrap();
    }
    // Nothing refused yet: the filters are still off (about 1560 ids a
    // shard counted nowhere) and prove nothing.
    assert_eq!(filter_counters(&inventory), 0);
    assert_eq!(proven_unknown(&inventory, 10_000), 0);

    // A sell-out's refusals: a fresh id is refused, a remembered one
    // replayed. After a few refusals under its lock, each shard's
    // filter switched on. Ids 129 apart take a new block each time and
    // every place of a group in turn, so each shard gets about 78 of
    // them (sequential ids would come in a few blocks, and a group of
    // shards the blocks miss would refuse nothing).
    let fresh = 1u64 << 41;
    for id in (0..20_000).map(|k| fresh + k * 129) {
        assert!(matches!(
            inventory.reserve(ReservationId(id), Channel::Online, &cart),
            Err(Error::Insufficient { available: 0, .. })
        ));
    }
    assert!(inventory
        .reserve(ReservationId(7), Channel::Online, &cart)
        .is_ok_and(|ack| ack.replayed));
    let grown = filter_counters(&inventory);
    assert!(grown >= 4 * floor, "{grown} counters");
    // Between one id per 4 counters (about 85 %) and one per 8 (95 %).
    let proven = proven_unknown(&inventory, 10_000);
    assert!(proven > 8_400, "only {proven} of 10000 fresh ids proven");

    clock.advance(1_000);
    inventory.expire();
    let left: usize = inventory
        .reservations
        .iter()
        .map(|shard| shard.records.lock().len())
        .sum();
    assert_eq!(left, 0);
    assert_eq!(filter_counters(&inventory), floor);
    assert_eq!(proven_unknown(&inventory, 10_000), 10_000);
}

/// With the small filter sizes the fuzz targets and the engine-against-
/// model tests set (`id_filter_counters(4, 64)`, growing after one
/// refusal), a handful of reservations in one shard makes its filter
/// switch on, grow and shrink back, so that those runs reach every path of
/// the filter.
#[test]
fn small_id_filter_sizes_switch_on_grow_and_shrink_with_a_handful_of_ids() {
    let clock = Arc::new(ManualClock::new());
    let inventory = Inventory::builder()
        .clock(clock.clone())
        .retention_ms(1_000)
        .expected_items(16)
        .id_filter_counters(4, 64)
        .id_filter_refusals_before_growing(1)
        .build();
    let (sku, store) = (Sku(1), StoreId(1));
    let cart = [Line::new(sku, store, 1)];
    let hasher = inventory.id_hasher;
    let home = hasher.shard_of(0);
    let in_home = move |from: u64| {
        (from..)
            .filter(move |&id| hasher.shard_of(id) == home)
            .map(ReservationId)
    };
    let filter = &inventory.reservations[home].ids;
    let refuse = |id: ReservationId| {
        assert!(matches!(
            inventory.reserve(id, Channel::Online, &cart),
            Err(Error::Insufficient { available: 0, .. })
        ));
    };
    let mut fresh = in_home(1 << 40);

    // One reservation sells the item out; the filter is still off.
    let mut held = in_home(0);
    let first = held.next().unwrap();
    inventory.set_on_hand(sku, store, 1).unwrap();
    inventory.reserve(first, Channel::Online, &cart).unwrap();
    assert_eq!(filter.len(), 0);
    // One refusal switches it on, sized for its one id (8 counters).
    refuse(fresh.next().unwrap());
    assert_eq!(filter.len(), 8);

    // Three more ids crowd 8 counters; the next refusal the filter
    // cannot prove grows it to the size that holds 4 ids (32 counters).
    inventory.restock(sku, store, 3).unwrap();
    let more: Vec<ReservationId> = held.by_ref().take(3).collect();
    for &id in &more {
        inventory.reserve(id, Channel::Online, &cart).unwrap();
    }
    assert_eq!(filter.len(), 8);
    let mut refusals = 0;
    while filter.len() == 8 && refusals < 1_000 {
        refuse(fresh.next().unwrap());
        refusals += 1;
    }
    assert_eq!(filter.len(), 32, "after {refusals} refusals");
    // It proves fresh ids of its shard unknown without the lock again,
    // and never a remembered one.
    let sequence = filter.read_begin().unwrap();
    let proven = fresh
        .by_ref()
        .take(100)
        .filter(|id| filter.certainly_absent_since(id.0, sequence))
        .count();
    assert!(proven > 50, "{proven} of 100");
    for id in std::iter::once(first).chain(more.iter().copied()) {
        assert!(!filter.certainly_absent_since(id.0, sequence));
    }

    // Once every id is forgotten it shrinks to its smallest size, on.
    for id in std::iter::once(first).chain(more) {
        inventory.commit(id).unwrap();
    }
    clock.advance(1_000);
    inventory.expire();
    assert_eq!(inventory.reservations[home].records.lock().len(), 0);
    assert_eq!(filter.len(), 4);
}

/// Id filter settings out of range are refused before anything is built.
#[test]
fn id_filter_settings_out_of_range_are_refused() {
    let refused = |builder: InventoryBuilder| match builder.try_build() {
        Err(BuildError::InvalidSetting { setting, .. }) => setting,
        other => panic!("{other:?}"),
    };
    for (min, max) in [(0, 8), (8, 4), (6, 8), (4, 1 << 25)] {
        assert_eq!(
            refused(Inventory::builder().id_filter_counters(min, max)),
            "id_filter_counters",
            "({min}, {max})"
        );
    }
    assert_eq!(
        refused(Inventory::builder().id_filter_refusals_before_growing(0)),
        "id_filter_refusals_before_growing"
    );
    // The bounds themselves are accepted; filters start off, so even the
    // largest allocates nothing until refusals switch it on.
    let widest = Inventory::builder()
        .expected_items(16)
        .id_filter_counters(1, 1 << 24)
        .build();
    assert_eq!(filter_counters(&widest), 0);
}

/// A burst of reservations in one shard, then forgetting most of them,
/// checked step by step against the reference model: the shard's slab
/// is compacted (its memory follows the reservations remembered, not
/// the peak) and every reservation left, pending or ended, single- or
/// multi-line, filed in order or out of order, answers as before:
/// found, committed, released, extended, expired and forgotten on
/// time.
#[test]
fn a_burst_is_compacted_away_and_what_is_left_behaves_the_same() {
    let (ttl, retention) = (10_000, 1_000);
    let mut both = Lockstep::new(ttl, retention, 64);
    let store = StoreId(3);
    both.stock(store, 6, 1_000_000);
    let (home, ids) = both.ids_of_one_shard(6_000);
    let (burst, later) = ids.split_at(5_000);
    // The burst: every tenth stays pending, some with a deadline
    // before the in-order queue's last; one in seven has three lines
    // (the rest in a block), one in eleven six (in a long list).
    for (n, &id) in burst.iter().enumerate() {
        let lines: Vec<Line> = if n % 7 == 0 {
            (0..3).map(|sku| Line::new(Sku(sku), store, 1)).collect()
        } else if n % 11 == 0 {
            (0..6)
                .rev()
                .map(|sku| Line::new(Sku(sku), store, 1))
                .collect()
        } else {
            vec![Line::new(Sku(n as u64 % 4), store, 2)]
        };
        // Pending ones: half with the default ttl (filed in order),
        // half shorter (filed out of order, in the sorted set).
        let ttl_ms = match n % 20 {
            10 => Some(5_000 + (n as u64 * 37) % 3_000),
            _ => None,
        };
        both.run(Command::Reserve {
            id,
            channel: Channel::Online,
            ttl_ms,
            lines,
        });
        match n % 10 {
            0 => {}
            1 | 2 => both.run(Command::Release { id }),
            _ => both.run(Command::Commit { id, lines: None }),
        }
    }
    let positions =
        |inventory: &Inventory| inventory.reservations[home].records.lock().slab_positions();
    assert_eq!(positions(&both.inventory), burst.len());
    // Half a retention later some pending ones end: still remembered
    // when the rest of the burst is forgotten.
    both.advance(retention / 2);
    for &id in burst.iter().skip(50).step_by(60) {
        both.run(Command::Commit { id, lines: None });
    }
    both.advance(retention / 2);
    both.run(Command::Expire);
    // 500 left of 5000 (pending, or ended at half time): compacted.
    assert_eq!(positions(&both.inventory), 500);
    for &id in burst {
        both.run(Command::Get { id });
    }
    // What is left still works: extend some, commit some, release some.
    // (Of both kinds, some are left alone: 30, 40 and 50.)
    for (n, &id) in burst.iter().enumerate().step_by(10) {
        match n % 60 {
            0 => both.run(Command::Extend { id, ttl_ms: 50 }),
            10 => both.run(Command::Commit { id, lines: None }),
            20 => both.run(Command::Release { id }),
            _ => {}
        }
    }
    for &id in &later[..500] {
        both.run(Command::Reserve {
            id,
            channel: Channel::InStore,
            ttl_ms: Some(100),
            lines: vec![Line::new(Sku(1), store, 1)],
        });
    }
    // Through the deadlines (extended, in order, out of order) and the
    // retention after them. `expire()` answers how many it expired:
    // only the deadline index finds them (the lookups below would
    // expire them lazily, so they come after).
    for advance in [60, 100, 5_000, 3_000, 1_000, 1_000] {
        both.advance(advance);
        both.run(Command::Expire);
        for &id in burst.iter().step_by(10).chain(&later[..500]) {
            both.run(Command::Get { id });
        }
        assert_eq!(both.inventory.items(), both.model.items());
        assert_eq!(
            both.inventory.reservation_count(),
            both.model.reservation_count()
        );
    }
    assert_eq!(both.model.reservation_count(), 0);
    // All forgotten; a slab this small is kept for reuse, not compacted.
    assert_eq!(positions(&both.inventory), 1_000);
    both.run(Command::Reserve {
        id: later[999],
        channel: Channel::Online,
        ttl_ms: None,
        lines: vec![Line::new(Sku(0), store, 1)],
    });
    both.run(Command::Get { id: later[999] });
}

/// In an item table too large for the cache, multi-line carts read
/// their items ahead and look them up with the hashes computed then,
/// and a multi-line finish reads its cells ahead: the answers are the
/// model's, for carts of 2 to 10 lines whose unknown or short line
/// comes anywhere, and for their commits, releases and expiries.
#[test]
fn multi_line_carts_in_a_large_catalogue_answer_as_the_model_says() {
    let ttl = 1_000;
    let mut both = Lockstep::new(ttl, 10_000, 100_000);
    assert!(both.inventory.items.is_large(), "the path under test");
    // Skus 0..40 at two stores, 3 units each; sku 40 is unknown.
    for sku in 0..40 {
        for store in [StoreId(1), StoreId(2)] {
            both.run(Command::Restock {
                sku: Sku(sku),
                store,
                qty: 3,
            });
        }
    }
    for n in 0..200u64 {
        let len = 2 + n % 9;
        let lines = (0..len)
            .map(|k| {
                let sku = if n % 13 == k {
                    40
                } else {
                    (n * 7 + k * 3) % 40
                };
                Line::new(Sku(sku), StoreId(1 + k % 2), 1 + (n + k) as u32 % 3)
            })
            .collect();
        let id = ReservationId(n);
        both.run(Command::Reserve {
            id,
            channel: Channel::InStore,
            ttl_ms: None,
            lines,
        });
        match n % 4 {
            0 => both.run(Command::Commit { id, lines: None }),
            1 => both.run(Command::Release { id }),
            _ => {} // left to expire
        }
        if n % 50 == 49 {
            both.advance(ttl);
            both.run(Command::Expire);
            for sku in 0..40 {
                both.run(Command::Restock {
                    sku: Sku(sku),
                    store: StoreId(1 + sku % 2),
                    qty: 2,
                });
            }
        }
    }
    for n in 0..200 {
        both.run(Command::Get {
            id: ReservationId(n),
        });
    }
    assert_eq!(both.inventory.items(), both.model.items());
}

/// A burst of multi-line carts forgotten among single-line carts that
/// stay: the record slab is not sparse, the extra lines' slabs are, and
/// they alone make the shard compact; every cart left answers as the
/// model says.
#[test]
fn extra_lines_of_a_forgotten_burst_are_compacted_away() {
    let retention = 1_000;
    let mut both = Lockstep::new(1_000_000, retention, 64);
    let store = StoreId(5);
    both.stock(store, 8, 1_000_000);
    let (home, ids) = both.ids_of_one_shard(4_200);
    // 1,200 single-line carts that stay pending, then 3,000 carts of
    // 2 to 8 lines, committed.
    for (n, &id) in ids.iter().enumerate() {
        let len = if n < 1_200 { 1 } else { 2 + n as u64 % 7 };
        let lines = (0..len)
            .map(|sku| Line::new(Sku((sku + n as u64) % 8), store, 1))
            .collect();
        both.run(Command::Reserve {
            id,
            channel: Channel::InStore,
            ttl_ms: None,
            lines,
        });
        if n >= 1_200 {
            both.run(Command::Commit { id, lines: None });
        }
    }
    let extra_positions = |inventory: &Inventory| {
        let shard = inventory.reservations[home].records.lock();
        (shard.slab_positions(), shard.extra_positions())
    };
    assert_eq!(extra_positions(&both.inventory), (4_200, 3_000));
    both.advance(retention);
    both.run(Command::Expire);
    // The records stayed dense enough (4,200 places for 1,200), the
    // extra lines did not (3,000 places for none): compacted, both.
    assert_eq!(extra_positions(&both.inventory), (1_200, 0));
    for &id in &ids {
        both.run(Command::Get { id });
    }
    for &id in ids[..1_200].iter().step_by(3) {
        both.run(Command::Release { id });
    }
    // Multi-line carts again, in the compacted shard.
    for (n, &id) in ids[1_200..1_300].iter().enumerate() {
        let lines = (0..4)
            .map(|sku| Line::new(Sku(sku + n as u64 % 4), store, 1))
            .collect();
        both.run(Command::Reserve {
            id,
            channel: Channel::Online,
            ttl_ms: None,
            lines,
        });
        both.run(Command::Get { id });
    }
    assert_eq!(both.inventory.items(), both.model.items());
    assert_eq!(
        both.inventory.reservation_count(),
        both.model.reservation_count()
    );
}

//! The crate's home-made structures against the well-kept crates they stand
//! in for, each on the operation the engine does with it:
//!
//! - item table: lookup of a present item (and a read of its cell word) in
//!   a table of 1M items, from one thread and from two at once, against a
//!   `parking_lot::RwLock<hashbrown::HashMap>` and a `dashmap::DashMap`
//!   (cells in a separate `Vec`);
//! - id table: a shard's churn (insert the newest id, find one in flight,
//!   remove the oldest) against `hashbrown::HashTable` on the same keys and
//!   `hashbrown::HashMap<u64, u32>` with FxHash on the ids;
//! - slab: insert and remove churn, oldest removed first, against the
//!   `slab` crate; and the time of one insert where a slab grows (printed,
//!   not a criterion group);
//! - id placement: ids in sequence recorded into and forgotten from 256 id
//!   tables (a million remembered), each placed by the crate's `IdHasher`
//!   or by the top and low bits of SipHash (std), FxHash or aHash;
//! - id filter: proving unknown ids unknown from two threads, in shards
//!   remembering a million ids, against taking the shard's lock and
//!   looking the id up in its id table (no filter).
//!
//! The structures are crate-private: their modules are compiled into this
//! bench from their own files. `cargo bench --bench structures -- --test`
//! runs each once on small tables (CI). Each group measures its home-made
//! structure twice, the second time as `again`: the two differ by the
//! noise alone (A/A).
#![allow(dead_code, missing_docs, unused_imports)]

// The crate-private modules the structures need, at their own paths so
// that their `crate::` imports resolve here.
#[path = "../src/durability"]
mod durability {
    pub(crate) mod record;
    pub(crate) mod steps;
}
#[path = "../src/error.rs"]
mod error;
#[path = "../src/limits.rs"]
mod limits;
#[path = "../src/prefetch.rs"]
mod prefetch;
#[path = "../src/sync.rs"]
mod sync;
#[path = "../src/types.rs"]
mod types;
#[path = "../src/stock"]
mod stock {
    pub(crate) mod cell;
    pub(crate) mod huge_pages;
    pub(crate) mod item_table;
    pub(crate) mod sku_index;
}
#[path = "../src/reservations"]
mod reservations {
    pub(crate) mod id_filter;
    pub(crate) mod id_placement;
    pub(crate) mod id_table;
    pub(crate) mod slab;
}

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use reservations::id_filter::IdFilter;
use reservations::id_placement::IdHasher;
use reservations::id_table::IdTable;
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use stock::item_table::ItemTable;
use types::{ItemKey, Sku, StoreId};

/// Whether criterion runs each bench once (`-- --test`): small tables then.
fn test_mode() -> bool {
    std::env::args().any(|arg| arg == "--test")
}

/// Operations per measured iteration.
const BATCH: usize = 1024;

/// A deterministic xorshift sequence.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

fn item(n: u64) -> ItemKey {
    ItemKey {
        sku: Sku(n),
        store: StoreId(n % 16),
    }
}

/// Runs `work(thread)` on `threads` threads at once, `iters` times each,
/// and returns the wall time of the slowest.
fn on_threads(threads: usize, iters: u64, work: impl Fn(usize, u64) + Sync) -> Duration {
    std::thread::scope(|scope| {
        let work = &work;
        let handles: Vec<_> = (0..threads)
            .map(|thread| {
                scope.spawn(move || {
                    let start = Instant::now();
                    work(thread, iters);
                    start.elapsed()
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|handle| handle.join().expect("a bench thread"))
            .max()
            .unwrap_or_default()
    })
}

/// Each bench's home-made structure is measured twice, the second time
/// under this name suffixed: the two differ by the noise alone (A/A).
const AGAIN: &str = "again";

/// A batch of item lookups.
type Lookup<'a> = dyn Fn(&[ItemKey]) + Sync + 'a;

fn item_lookup(c: &mut Criterion) {
    let items: u64 = if test_mode() { 10_000 } else { 1_000_000 };
    let table = ItemTable::try_new(items as usize).expect("the item table");
    let mut map = hashbrown::HashMap::with_capacity(items as usize);
    let dash = dashmap::DashMap::with_capacity(items as usize);
    for n in 0..items {
        let (index, _) = table.find_or_create(item(n));
        table
            .cell(index)
            .restock(1, &mut durability::steps::Seal::new(None))
            .expect("room for a unit");
        map.insert(item(n), n as u32);
        dash.insert(item(n), n as u32);
    }
    let map = parking_lot::RwLock::new(map);
    let cells: Vec<AtomicU64> = (0..items).map(|_| AtomicU64::new(1)).collect();
    // Random present keys, a pool per thread as large as the table, taken
    // a batch at a time in turn: each batch reads entries the last ones
    // did not bring into the cache.
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let pool = (items as usize).next_multiple_of(BATCH);
    let keys: Vec<Vec<ItemKey>> = (0..2)
        .map(|_| (0..pool).map(|_| item(rng.next() % items)).collect())
        .collect();
    let batch = |thread: usize, n: u64| {
        let start = (n as usize * BATCH) % pool;
        &keys[thread][start..start + BATCH]
    };

    let ours = |keys: &[ItemKey]| {
        for &key in keys {
            let index = table.find(key).expect("a present item");
            black_box(table.cell(index).level(table.safety_changes()));
        }
    };
    let rwlock = |keys: &[ItemKey]| {
        for &key in keys {
            let index = *map.read().get(&key).expect("a present item");
            black_box(cells[index as usize].load(Ordering::Acquire));
        }
    };
    let dashmap = |keys: &[ItemKey]| {
        for &key in keys {
            let index = *dash.get(&key).expect("a present item");
            black_box(cells[index as usize].load(Ordering::Acquire));
        }
    };
    let lookups: [(&str, &Lookup<'_>); 4] = [
        ("item_table", &ours),
        ("rwlock_hashbrown", &rwlock),
        ("dashmap", &dashmap),
        (AGAIN, &ours),
    ];

    let mut group = c.benchmark_group("item_lookup");
    for (name, lookup) in lookups {
        group.bench_function(format!("1_thread/{name}"), |b| {
            let mut n = 0;
            b.iter(|| {
                n += 1;
                lookup(batch(0, n))
            })
        });
    }
    for (name, lookup) in lookups {
        group.bench_function(format!("2_threads/{name}"), |b| {
            b.iter_custom(|iters| {
                on_threads(2, iters, |thread, iters| {
                    (0..iters).for_each(|n| lookup(batch(thread, n)))
                })
            })
        });
    }
    group.finish();
}

/// Reservations a shard remembers at once in the churn benches.
const LIVE: usize = 4096;

/// Ids that land in one shard, in the order a thread numbering its carts
/// makes them, with their id-table keys.
fn one_shards_ids(count: usize) -> Vec<(u64, u32)> {
    let hasher = IdHasher::default();
    let shard = hasher.place(0).0;
    (0u64..)
        .map(|id| (id, hasher.place(id)))
        .filter(|(_, (at, _))| *at == shard)
        .map(|(id, (_, keyed))| (id, keyed.key))
        .take(count)
        .collect()
}

/// One shard's id bookkeeping in steady state: each step records the
/// newest id, finds one in flight and forgets the oldest, over a cycle of
/// ids far longer than the ids live.
trait Churn {
    fn insert(&mut self, id: u64, key: u32, position: u32);
    fn find(&self, id: u64, key: u32, position: u32) -> bool;
    fn remove(&mut self, id: u64, key: u32, position: u32);
}

/// The shard's own table; the record's id (kept here by position) tells
/// ids sharing a key apart, as the shard does.
struct Ours(IdTable, Vec<u64>);

impl Churn for Ours {
    fn insert(&mut self, id: u64, key: u32, position: u32) {
        self.1[position as usize] = id;
        self.0.insert(key, position);
    }
    fn find(&self, id: u64, key: u32, _: u32) -> bool {
        self.0
            .find_or_vacancy(key, |p| self.1[p as usize] == id)
            .is_ok()
    }
    fn remove(&mut self, _: u64, key: u32, position: u32) {
        black_box(self.0.remove(key, position));
    }
}

/// `hashbrown::HashTable` of (key, position) on the same keys.
struct Table(hashbrown::HashTable<(u32, u32)>, Vec<u64>);

fn spread(key: u32) -> u64 {
    u64::from(key).wrapping_mul(0x9E37_79B9_7F4A_7C15)
}

impl Churn for Table {
    fn insert(&mut self, id: u64, key: u32, position: u32) {
        self.1[position as usize] = id;
        self.0
            .insert_unique(spread(key), (key, position), |e| spread(e.0));
    }
    fn find(&self, id: u64, key: u32, _: u32) -> bool {
        self.0
            .find(spread(key), |e| e.0 == key && self.1[e.1 as usize] == id)
            .is_some()
    }
    fn remove(&mut self, _: u64, key: u32, position: u32) {
        if let Ok(entry) = self.0.find_entry(spread(key), |e| *e == (key, position)) {
            black_box(entry.remove());
        }
    }
}

type FxMap = hashbrown::HashMap<u64, u32, std::hash::BuildHasherDefault<rustc_hash::FxHasher>>;

/// `hashbrown::HashMap<u64, u32>` by id, FxHash.
struct Map(FxMap);

impl Churn for Map {
    fn insert(&mut self, id: u64, _: u32, position: u32) {
        self.0.insert(id, position);
    }
    fn find(&self, id: u64, _: u32, _: u32) -> bool {
        self.0.contains_key(&id)
    }
    fn remove(&mut self, id: u64, _: u32, _: u32) {
        black_box(self.0.remove(&id));
    }
}

fn id_table_churn(c: &mut Criterion) {
    let cycle = 16 * LIVE;
    let ids = one_shards_ids(cycle);
    let slots = 2 * LIVE;
    let mut group = c.benchmark_group("id_table_churn");
    let mut bench = |name: &str, table: &mut dyn Churn| {
        let at = |n: usize| (ids[n % cycle].0, ids[n % cycle].1, (n % slots) as u32);
        for n in 0..LIVE {
            let (id, key, position) = at(n);
            table.insert(id, key, position);
        }
        let mut n = LIVE;
        group.bench_function(name, |b| {
            b.iter(|| {
                for _ in 0..BATCH {
                    let (id, key, position) = at(n);
                    table.insert(id, key, position);
                    let (id, key, position) = at(n - LIVE / 2);
                    black_box(table.find(id, key, position));
                    let (id, key, position) = at(n - LIVE);
                    table.remove(id, key, position);
                    n += 1;
                }
            })
        });
    };
    bench(
        "id_table",
        &mut Ours(IdTable::default(), vec![u64::MAX; slots]),
    );
    bench(
        "hashbrown_hash_table",
        &mut Table(hashbrown::HashTable::new(), vec![u64::MAX; slots]),
    );
    bench("hashbrown_map_fxhash", &mut Map(FxMap::default()));
    bench(AGAIN, &mut Ours(IdTable::default(), vec![u64::MAX; slots]));
    group.finish();
}

/// A reservation record's size (id, channel and deadline, first line).
#[derive(Clone, Copy, Debug, Default)]
struct Record {
    id: u64,
    words: [u64; 3],
}

/// The crate's slab in steady state (see `slab_churn`).
fn our_slab(
    group: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    name: &str,
) {
    let mut slab = reservations::slab::Slab::new(Record::default());
    let mut live: Vec<u32> = (0..LIVE as u64)
        .map(|id| slab.insert(Record { id, words: [id; 3] }))
        .collect();
    let mut id = LIVE as u64;
    group.bench_function(name, |b| {
        b.iter(|| {
            for _ in 0..BATCH {
                let oldest = &mut live[id as usize % LIVE];
                black_box(slab.get(*oldest).id);
                slab.remove(*oldest);
                *oldest = slab.insert(Record { id, words: [id; 3] });
                id += 1;
            }
        })
    });
}

fn slab_churn(c: &mut Criterion) {
    let mut group = c.benchmark_group("slab_churn");
    // Steady state: each step frees the oldest record (read last) and
    // stores a new one.
    our_slab(&mut group, "slab");
    let mut slab = slab::Slab::new();
    let mut live: Vec<usize> = (0..LIVE as u64)
        .map(|id| slab.insert(Record { id, words: [id; 3] }))
        .collect();
    let mut id = LIVE as u64;
    group.bench_function("slab_crate", |b| {
        b.iter(|| {
            for _ in 0..BATCH {
                let oldest = &mut live[id as usize % LIVE];
                black_box(slab.remove(*oldest).id);
                *oldest = slab.insert(Record { id, words: [id; 3] });
                id += 1;
            }
        })
    });
    our_slab(&mut group, AGAIN);
    group.finish();
}

/// What one insert costs where a slab grows, by number of records already
/// stored: the crate's slab adds a chunk and never moves a record; the
/// `slab` crate's `Vec` reallocates at each power of two (the copy, if the
/// allocator cannot move the pages, under the shard lock). Fills each slab
/// from empty, timing every insert, a few rounds; prints per slab the least
/// time over the rounds of the insert made at each power of two (the
/// crate's `Vec` grows there; noise only adds) and the median over the
/// rounds of the worst single insert.
fn slab_growth(_: &mut Criterion) {
    /// The time of the insert at each size, and of the slowest one.
    type Growth = (Vec<Duration>, Duration);
    let (top, rounds) = if test_mode() { (14, 1) } else { (21, 5) };
    let sizes: Vec<usize> = (10..=top).step_by(2).map(|bits| 1 << bits).collect();
    let record = |n: usize| Record {
        id: n as u64,
        words: [n as u64; 3],
    };
    let fill = |insert: &mut dyn FnMut(usize)| -> Growth {
        let mut at_sizes = Vec::new();
        let mut worst = Duration::ZERO;
        for n in 0..=1 << top {
            let start = Instant::now();
            insert(n);
            let took = start.elapsed();
            worst = worst.max(took);
            if sizes.contains(&n) {
                at_sizes.push(took);
            }
        }
        (at_sizes, worst)
    };
    let ours = || {
        let mut slab = reservations::slab::Slab::new(Record::default());
        let measured = fill(&mut |n| {
            black_box(slab.insert(record(n)));
        });
        drop(black_box(slab));
        measured
    };
    let crate_slab = || {
        let mut slab = slab::Slab::new();
        let measured = fill(&mut |n| {
            black_box(slab.insert(record(n)));
        });
        drop(black_box(slab));
        measured
    };
    let runs: [(&str, &dyn Fn() -> Growth); 3] =
        [("slab", &ours), ("slab_crate", &crate_slab), (AGAIN, &ours)];
    for (name, run) in runs {
        let measured: Vec<Growth> = (0..rounds).map(|_| run()).collect();
        let at: Vec<String> = (0..sizes.len())
            .map(|i| {
                let least = measured.iter().map(|m| m.0[i]).min().unwrap_or_default();
                format!("{}: {:.1?}", sizes[i], least)
            })
            .collect();
        let mut worst: Vec<Duration> = measured.iter().map(|m| m.1).collect();
        worst.sort_unstable();
        println!(
            "slab_growth/{name}: insert at {}; worst insert up to {}: {:.1?}",
            at.join(", "),
            1 << top,
            worst[worst.len() / 2]
        );
    }
}

/// Reservations remembered over all shards in the placement bench.
fn remembered() -> u64 {
    if test_mode() {
        1 << 12
    } else {
        1 << 20
    }
}

/// A shard's id table, as the 256-shard churn uses it.
trait PlacedTable: Default {
    fn insert(&mut self, key: u32, position: u32);
    fn remove(&mut self, key: u32, position: u32) -> bool;
}

impl PlacedTable for IdTable {
    fn insert(&mut self, key: u32, position: u32) {
        IdTable::insert(self, key, position);
    }
    fn remove(&mut self, key: u32, position: u32) -> bool {
        IdTable::remove(self, key, position)
    }
}

/// `hashbrown::HashTable` of (key, position), homed by the key's low bits
/// as the id table is (its top 7 bits, hashbrown's tag, from the key's
/// high bits), so that a run's keys are neighbours here too.
#[derive(Default)]
struct PlacedHashTable(hashbrown::HashTable<(u32, u32)>);

fn placed_hash(key: u32) -> u64 {
    u64::from(key) | u64::from(key) << 32
}

impl PlacedTable for PlacedHashTable {
    fn insert(&mut self, key: u32, position: u32) {
        self.0
            .insert_unique(placed_hash(key), (key, position), |e| placed_hash(e.0));
    }
    fn remove(&mut self, key: u32, position: u32) -> bool {
        match self
            .0
            .find_entry(placed_hash(key), |e| *e == (key, position))
        {
            Ok(entry) => {
                entry.remove();
                true
            }
            Err(_) => false,
        }
    }
}

/// Ids in sequence recorded into and forgotten from 256 shards' tables (a
/// million remembered in all), each id placed by `place` (its shard and
/// id-table key). What a placement wins or loses in cache locality shows
/// here, beside the cost of the hash itself.
fn placed_churn<T: PlacedTable>(
    group: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    name: &str,
    place: impl Fn(u64) -> (usize, u32),
) {
    let live = remembered();
    let mut tables: Vec<T> = (0..SHARDS).map(|_| T::default()).collect();
    let position = |id: u64| (id % (2 * live)) as u32;
    for id in 0..live {
        let (shard, key) = place(id);
        tables[shard].insert(key, position(id));
    }
    let mut id = live;
    group.bench_function(name, |b| {
        b.iter(|| {
            for _ in 0..BATCH {
                let (shard, key) = place(id);
                tables[shard].insert(key, position(id));
                let old = id - live;
                let (shard, key) = place(old);
                black_box(tables[shard].remove(key, position(old)));
                id += 1;
            }
        })
    });
}

/// Our placement's shard and key.
fn ours(hasher: IdHasher) -> impl Fn(u64) -> (usize, u32) {
    move |id| {
        let (shard, keyed) = hasher.place(id);
        (shard, keyed.key)
    }
}

fn id_table_256_shards(c: &mut Criterion) {
    let mut group = c.benchmark_group("id_table_256_shards");
    let hasher = IdHasher::default();
    placed_churn::<IdTable>(&mut group, "id_table", ours(hasher));
    placed_churn::<PlacedHashTable>(&mut group, "hashbrown_hash_table", ours(hasher));
    placed_churn::<IdTable>(&mut group, AGAIN, ours(hasher));
    group.finish();
}

fn id_placement(c: &mut Criterion) {
    let mut group = c.benchmark_group("id_placement");
    // The shard from a hash's top 8 bits and the key from its low 32, as a
    // general-purpose hash would give them.
    let split = |hash: u64| ((hash >> 56) as usize, hash as u32);
    let hasher = IdHasher::default();
    let std_hasher = std::collections::hash_map::RandomState::new();
    let fx = std::hash::BuildHasherDefault::<rustc_hash::FxHasher>::default();
    let ahash = hashbrown::hash_map::DefaultHashBuilder::default();
    placed_churn::<IdTable>(&mut group, "churn/id_hasher", ours(hasher));
    placed_churn::<IdTable>(&mut group, "churn/std_siphash", |id| {
        split(std_hasher.hash_one(id))
    });
    placed_churn::<IdTable>(&mut group, "churn/fxhash", |id| split(fx.hash_one(id)));
    placed_churn::<IdTable>(&mut group, "churn/ahash", |id| split(ahash.hash_one(id)));
    placed_churn::<IdTable>(&mut group, "churn/again", ours(hasher));
    group.finish();
}

/// Reservation shards.
const SHARDS: usize = 256;

/// A reserve of a sold-out item refused from two threads, each numbering
/// its carts, in shards remembering a million reservations: the shard's
/// filter proves the id unknown without the lock, against taking the
/// shard lock and looking the id up in its id table (no filter).
fn id_filter(c: &mut Criterion) {
    let hasher = IdHasher::default();
    let live = remembered();
    // Sized as `expected_reservations` sizes them.
    let counters = live as usize * 8 / SHARDS;
    let filters: Vec<IdFilter> = (0..SHARDS)
        .map(|_| IdFilter::with_counters(counters))
        .collect();
    let locked: Vec<parking_lot::Mutex<(IdTable, Vec<u64>)>> = (0..SHARDS)
        .map(|_| parking_lot::Mutex::new((IdTable::default(), Vec::new())))
        .collect();
    for id in 0..live {
        let (shard, keyed) = hasher.place(id);
        filters[shard].add(id);
        let mut shard = locked[shard].lock();
        let position = shard.1.len() as u32;
        shard.0.insert(keyed.key, position);
        shard.1.push(id);
    }
    let filtered = |id: u64| {
        let (shard, _) = hasher.place(id);
        let filter = &filters[shard];
        filter
            .read_begin()
            .is_some_and(|sequence| filter.certainly_absent_since(id, sequence))
    };
    let lock = |id: u64| {
        let (shard, keyed) = hasher.place(id);
        let shard = locked[shard].lock();
        shard
            .0
            .find_or_vacancy(keyed.key, |p| shard.1[p as usize] == id)
            .is_err()
    };
    let refusals: [(&str, &(dyn Fn(u64) -> bool + Sync)); 3] = [
        ("id_filter", &filtered),
        ("shard_lock", &lock),
        (AGAIN, &filtered),
    ];
    let mut group = c.benchmark_group("id_filter_refusal");
    for (name, refuse) in refusals {
        let next = [AtomicU64::new(1 << 40), AtomicU64::new(2 << 40)];
        group.bench_function(format!("2_threads/{name}"), |b| {
            b.iter_custom(|iters| {
                on_threads(2, iters, |thread, iters| {
                    let first = next[thread].fetch_add(iters * BATCH as u64, Ordering::Relaxed);
                    for id in first..first + iters * BATCH as u64 {
                        black_box(refuse(id));
                    }
                })
            })
        });
    }
    group.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(2))
}

criterion_group! {
    name = structures;
    config = config();
    targets = item_lookup, id_table_churn, id_table_256_shards, slab_churn, slab_growth, id_placement, id_filter
}
criterion_main!(structures);

//! Criterion benches of the engine's operations, kept short so `cargo bench`
//! finishes in a couple of minutes.
//!
//! - `single/*`: one thread, one item with plenty of stock: reserve+commit,
//!   reserve+release, sell, level.
//! - `lines/reserve_release/{1,4,16}`: a reservation of n lines on n items.
//! - `expire/10k_due_among/{100k,1M,10M}`: one `expire()` that reaps 10,000
//!   due reservations while the rest stay pending; its cost should follow the
//!   due ones, not all of them (the 10M fixture takes a few seconds and about
//!   a gigabyte to build).
//! - `hot_cell/reserve_release/{1,2}_threads`: threads reserving and
//!   releasing one unit of the same item at once (every thread's time per
//!   operation).
//! - `sold_out/refuse_1M_remembered/{default_filters,expected_reservations}`:
//!   two threads refused on a sold-out item while a million committed
//!   reservations are remembered, with the id filters built from the items
//!   (too small for a million ids: the first refusals take the shard lock,
//!   then the filters grow and refusals only read) or sized up front by
//!   `expected_reservations` (refusals only read from the start).
//!
//! - `compact/forget_360k_of_400k`: one `expire()` that forgets 360,000 of
//!   400,000 remembered reservations (every shard then holds a tenth of the
//!   record places it handed out) and so compacts all 256 shards, one after
//!   the other, each under its own lock.
//!
//! After criterion's own report the bench prints a small table of medians and
//! the ratios that matter, so nobody needs a spreadsheet. Filters work as
//! usual (`cargo bench --bench ops -- hot_cell`); ratios whose benches did not
//! run are left out.
//!
//! The inventory runs on a [`ManualClock`] so the benches measure the engine,
//! not the system clock.

use criterion::{black_box, BenchmarkId, Criterion};
use omnistock::{Channel, Clock, Inventory, Line, ManualClock, ReservationId, Sku, StoreId};
use std::sync::{Arc, Barrier, Mutex};
use std::thread;
use std::time::{Duration, Instant};

const SAMPLE_SIZE: usize = 10;
const STORE: StoreId = StoreId(1);
const HOT: Sku = Sku(1);

// ---------------------------------------------------------------------------
// Our own record of the measured samples, for the ratio table.

/// Per bench: time per iteration (ns) of every call criterion made. Criterion
/// warms up first and then takes `SAMPLE_SIZE` samples, so the last
/// `SAMPLE_SIZE` calls are the measurement.
static SAMPLES: Mutex<Vec<(String, Vec<f64>)>> = Mutex::new(Vec::new());

fn record(name: &str, iters: u64, elapsed: Duration) -> Duration {
    let per_iter = elapsed.as_nanos() as f64 / iters.max(1) as f64;
    let mut samples = SAMPLES.lock().unwrap();
    match samples.iter_mut().find(|(n, _)| n == name) {
        Some((_, v)) => v.push(per_iter),
        None => samples.push((name.to_string(), vec![per_iter])),
    }
    elapsed
}

/// Median ns per iteration of the measured samples of `name`, if it ran.
fn median(name: &str) -> Option<f64> {
    let samples = SAMPLES.lock().unwrap();
    let (_, all) = samples.iter().find(|(n, _)| n == name)?;
    if all.len() < SAMPLE_SIZE {
        return None; // `--test` mode or a partial run
    }
    let mut measured = all[all.len() - SAMPLE_SIZE..].to_vec();
    measured.sort_by(f64::total_cmp);
    Some((measured[SAMPLE_SIZE / 2 - 1] + measured[SAMPLE_SIZE / 2]) / 2.0)
}

// ---------------------------------------------------------------------------
// Fixtures

fn inventory() -> (Inventory, Arc<ManualClock>) {
    let clock = Arc::new(ManualClock::new());
    let inventory = Inventory::builder()
        .clock(Arc::clone(&clock) as Arc<dyn Clock>)
        .build();
    (inventory, clock)
}

/// An inventory with `items` items (skus 1..=items at one store), each with
/// as many units as a cell holds, so no bench ever runs out.
fn stocked(items: u64) -> Inventory {
    let (inventory, _) = inventory();
    for sku in 1..=items {
        inventory.restock(Sku(sku), STORE, u32::MAX).unwrap();
    }
    inventory
}

/// Runs `op(inventory, i)` for `iters` values of `i` on a fresh inventory
/// (terminal reservations are remembered for a day, so a fresh one per
/// sample keeps memory flat), timing only the loop.
fn timed_on_fresh(name: &str, items: u64, iters: u64, op: impl Fn(&Inventory, u64)) -> Duration {
    let inventory = stocked(items);
    let start = Instant::now();
    for i in 0..iters {
        op(&inventory, i);
    }
    let elapsed = start.elapsed();
    drop(inventory);
    record(name, iters, elapsed)
}

// ---------------------------------------------------------------------------
// Benches

fn single_thread(c: &mut Criterion) {
    let one = [Line::new(HOT, STORE, 1)];
    let mut group = c.benchmark_group("single");
    group.bench_function("reserve_commit", |b| {
        b.iter_custom(|iters| {
            timed_on_fresh("single/reserve_commit", 1, iters, |inv, i| {
                inv.reserve(ReservationId(i), Channel::Online, &one)
                    .unwrap();
                black_box(inv.commit(ReservationId(i)).unwrap());
            })
        })
    });
    group.bench_function("reserve_release", |b| {
        b.iter_custom(|iters| {
            timed_on_fresh("single/reserve_release", 1, iters, |inv, i| {
                inv.reserve(ReservationId(i), Channel::Online, &one)
                    .unwrap();
                black_box(inv.release(ReservationId(i)).unwrap());
            })
        })
    });
    group.bench_function("sell", |b| {
        b.iter_custom(|iters| {
            timed_on_fresh("single/sell", 1, iters, |inv, _| {
                black_box(inv.sell(HOT, STORE, 1, Channel::InStore).unwrap());
            })
        })
    });
    group.bench_function("level", |b| {
        b.iter_custom(|iters| {
            timed_on_fresh("single/level", 1, iters, |inv, _| {
                black_box(inv.level(black_box(HOT), STORE).unwrap());
            })
        })
    });
    group.finish();
}

fn multi_line(c: &mut Criterion) {
    let mut group = c.benchmark_group("lines");
    for n in [1u64, 4, 16] {
        let lines: Vec<Line> = (1..=n).map(|sku| Line::new(Sku(sku), STORE, 1)).collect();
        let name = format!("lines/reserve_release/{n}");
        group.bench_with_input(
            BenchmarkId::new("reserve_release", n),
            &lines,
            |b, lines| {
                b.iter_custom(|iters| {
                    timed_on_fresh(&name, n, iters, |inv, i| {
                        inv.reserve(ReservationId(i), Channel::Online, lines)
                            .unwrap();
                        black_box(inv.release(ReservationId(i)).unwrap());
                    })
                })
            },
        );
    }
    group.finish();
}

const DUE: u64 = 10_000;

/// An inventory holding `pending - DUE` reservations that will not come due
/// during the bench, with a retention of 1 ms so reaped ones are forgotten
/// before the next measurement.
struct ExpiryFixture {
    inventory: Inventory,
    clock: Arc<ManualClock>,
    next_id: u64,
}

impl ExpiryFixture {
    fn new(pending: u64) -> ExpiryFixture {
        let clock = Arc::new(ManualClock::new());
        let inventory = Inventory::builder()
            .clock(Arc::clone(&clock) as Arc<dyn Clock>)
            .retention_ms(1)
            .build();
        inventory.restock(HOT, STORE, u32::MAX).unwrap();
        let one = [Line::new(HOT, STORE, 1)];
        for i in 0..pending - DUE {
            inventory
                .reserve_with_ttl(ReservationId(1 << 40 | i), Channel::Online, &one, 1 << 50)
                .unwrap();
        }
        ExpiryFixture {
            inventory,
            clock,
            next_id: 0,
        }
    }

    /// Makes `DUE` reservations come due, times one `expire()`, then lets
    /// them be forgotten (untimed).
    fn reap_once(&mut self) -> Duration {
        let one = [Line::new(HOT, STORE, 1)];
        for _ in 0..DUE {
            self.inventory
                .reserve_with_ttl(ReservationId(self.next_id), Channel::Online, &one, 1)
                .unwrap();
            self.next_id += 1;
        }
        self.clock.advance(1);
        let start = Instant::now();
        let expired = self.inventory.expire();
        let elapsed = start.elapsed();
        assert_eq!(expired, DUE);
        self.clock.advance(1);
        self.inventory.expire();
        elapsed
    }
}

fn expiry(c: &mut Criterion) {
    let mut group = c.benchmark_group("expire");
    group.measurement_time(Duration::from_millis(500));
    for (label, pending) in [("100k", 100_000u64), ("1M", 1_000_000), ("10M", 10_000_000)] {
        let name = format!("expire/10k_due_among/{label}");
        // Built on first use, so a filtered-out bench costs nothing.
        let mut fixture: Option<ExpiryFixture> = None;
        group.bench_function(BenchmarkId::new("10k_due_among", label), |b| {
            let fixture = fixture.get_or_insert_with(|| ExpiryFixture::new(pending));
            b.iter_custom(|iters| {
                let total = (0..iters).map(|_| fixture.reap_once()).sum();
                record(&name, iters, total)
            })
        });
    }
    group.finish();
}

/// Reservations remembered before the forgetting that compacts every shard,
/// and how many of them stay (pending).
const COMPACT_REMEMBERED: u64 = 400_000;
const COMPACT_KEPT_EVERY: u64 = 10;

/// An inventory remembering `COMPACT_REMEMBERED` reservations, one in
/// `COMPACT_KEPT_EVERY` pending and the rest committed a retention ago, so
/// that the next `expire()` forgets nine in ten and compacts every shard
/// (about 1,560 record places each, 156 kept).
fn compact_fixture() -> Inventory {
    let clock = Arc::new(ManualClock::new());
    let inventory = Inventory::builder()
        .clock(Arc::clone(&clock) as Arc<dyn Clock>)
        .retention_ms(1_000)
        .build();
    inventory.restock(HOT, STORE, u32::MAX).unwrap();
    let one = [Line::new(HOT, STORE, 1)];
    for i in 0..COMPACT_REMEMBERED {
        let id = ReservationId(i);
        inventory
            .reserve_with_ttl(id, Channel::Online, &one, 1 << 40)
            .unwrap();
        if i % COMPACT_KEPT_EVERY != 0 {
            inventory.commit(id).unwrap();
        }
    }
    clock.advance(1_000);
    inventory
}

fn compaction(c: &mut Criterion) {
    let mut group = c.benchmark_group("compact");
    group.measurement_time(Duration::from_millis(500));
    let name = "compact/forget_360k_of_400k";
    group.bench_function("forget_360k_of_400k", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let inventory = compact_fixture();
                let start = Instant::now();
                black_box(inventory.expire());
                total += start.elapsed();
                let kept = COMPACT_REMEMBERED.div_ceil(COMPACT_KEPT_EVERY);
                assert_eq!(inventory.reservation_count() as u64, kept);
            }
            record(name, iters, total)
        })
    });
    group.finish();
}

/// `threads` threads each reserve and release one unit of the same item
/// `iters` times; the time is the wall time until all are done, so the time
/// per iteration is each thread's time per reserve+release.
fn hot_cell_round(name: &str, threads: usize, iters: u64) -> Duration {
    let inventory = Arc::new(stocked(1));
    let barrier = Arc::new(Barrier::new(threads + 1));
    let workers: Vec<_> = (0..threads as u64)
        .map(|t| {
            let (inventory, barrier) = (Arc::clone(&inventory), Arc::clone(&barrier));
            thread::spawn(move || {
                let one = [Line::new(HOT, STORE, 1)];
                barrier.wait();
                for i in 0..iters {
                    let id = ReservationId(t << 40 | i);
                    inventory.reserve(id, Channel::Online, &one).unwrap();
                    black_box(inventory.release(id).unwrap());
                }
            })
        })
        .collect();
    barrier.wait();
    let start = Instant::now();
    for worker in workers {
        worker.join().unwrap();
    }
    let elapsed = start.elapsed();
    drop(inventory);
    record(name, iters, elapsed)
}

fn contention(c: &mut Criterion) {
    let mut group = c.benchmark_group("hot_cell");
    for threads in [1usize, 2] {
        let name = format!("hot_cell/reserve_release/{threads}_threads");
        group.bench_function(format!("reserve_release/{threads}_threads"), |b| {
            b.iter_custom(|iters| hot_cell_round(&name, threads, iters))
        });
    }
    group.finish();
}

/// Committed reservations remembered while the sold-out refusals run.
const REMEMBERED: u64 = 1_000_000;
const SOLD_OUT: Sku = Sku(2);

/// An inventory that remembers `REMEMBERED` committed reservations and has
/// one item sold out (its only unit held). `sized`: built with
/// `expected_reservations(REMEMBERED)`, so its id filters can prove a new
/// id unknown from the start; without it they start sized from the (few)
/// items and grow after the warm-up's first refusals.
fn sold_out_fixture(sized: bool) -> Arc<Inventory> {
    let mut builder = Inventory::builder()
        .clock(Arc::new(ManualClock::new()) as Arc<dyn Clock>)
        .expected_items(16);
    if sized {
        builder = builder.expected_reservations(REMEMBERED as usize);
    }
    let inventory = builder.build();
    inventory.restock(HOT, STORE, u32::MAX).unwrap();
    inventory.restock(SOLD_OUT, STORE, 1).unwrap();
    let one = [Line::new(HOT, STORE, 1)];
    for i in 0..REMEMBERED {
        inventory
            .reserve(ReservationId(i), Channel::Online, &one)
            .unwrap();
        inventory.commit(ReservationId(i)).unwrap();
    }
    let last = [Line::new(SOLD_OUT, STORE, 1)];
    inventory
        .reserve(ReservationId(u64::MAX), Channel::Online, &last)
        .unwrap();
    Arc::new(inventory)
}

/// Two threads each make `iters` reserves of the sold-out item with new
/// ids; every one is refused (and records nothing, so samples can reuse
/// ids). The time per iteration is each thread's time per refusal.
fn sold_out_round(name: &str, inventory: &Arc<Inventory>, iters: u64) -> Duration {
    let barrier = Arc::new(Barrier::new(3));
    let workers: Vec<_> = (1..=2u64)
        .map(|t| {
            let (inventory, barrier) = (Arc::clone(inventory), Arc::clone(&barrier));
            thread::spawn(move || {
                let want = [Line::new(SOLD_OUT, STORE, 1)];
                barrier.wait();
                for i in 0..iters {
                    let id = ReservationId(t << 40 | i);
                    let refused = inventory.reserve(id, Channel::Online, &want);
                    assert!(black_box(refused).is_err());
                }
            })
        })
        .collect();
    barrier.wait();
    let start = Instant::now();
    for worker in workers {
        worker.join().unwrap();
    }
    record(name, iters, start.elapsed())
}

fn sold_out(c: &mut Criterion) {
    let mut group = c.benchmark_group("sold_out");
    for (sized, label) in [(false, "default_filters"), (true, "expected_reservations")] {
        let name = format!("sold_out/refuse_1M_remembered/{label}");
        // Built only if a filter lets the bench run.
        let mut fixture = None;
        group.bench_function(format!("refuse_1M_remembered/{label}"), |b| {
            let inventory = fixture.get_or_insert_with(|| sold_out_fixture(sized));
            b.iter_custom(|iters| sold_out_round(&name, inventory, iters))
        });
    }
    group.finish();
}

// ---------------------------------------------------------------------------
// The table

fn print_ratios() {
    let rows = [
        ("single/reserve_commit", "reserve + commit, 1 line"),
        ("single/reserve_release", "reserve + release, 1 line"),
        ("single/sell", "sell"),
        ("single/level", "level"),
        ("lines/reserve_release/1", "reserve + release, 1 line"),
        ("lines/reserve_release/4", "reserve + release, 4 lines"),
        ("lines/reserve_release/16", "reserve + release, 16 lines"),
        (
            "expire/10k_due_among/100k",
            "expire() of 10k due among 100k",
        ),
        ("expire/10k_due_among/1M", "expire() of 10k due among 1M"),
        ("expire/10k_due_among/10M", "expire() of 10k due among 10M"),
        ("hot_cell/reserve_release/1_threads", "hot cell, 1 thread"),
        (
            "hot_cell/reserve_release/2_threads",
            "hot cell, 2 threads (each)",
        ),
        (
            "sold_out/refuse_1M_remembered/default_filters",
            "sold-out refusal, 2 threads (each), filters grown",
        ),
        (
            "sold_out/refuse_1M_remembered/expected_reservations",
            "  the same, filters sized",
        ),
    ];
    let mut lines = Vec::new();
    for (name, label) in rows {
        if let Some(ns) = median(name) {
            lines.push(format!("  {label:<34} {:>12}", human(ns)));
        }
    }
    let ratio = |a: &str, b: &str| Some(median(a)? / median(b)?);
    if let Some(r) = ratio("lines/reserve_release/4", "lines/reserve_release/1") {
        lines.push(format!(
            "  4 lines cost {r:.1}x one line ({:.1}x per line)",
            r / 4.0
        ));
    }
    if let Some(r) = ratio("lines/reserve_release/16", "lines/reserve_release/1") {
        lines.push(format!(
            "  16 lines cost {r:.1}x one line ({:.1}x per line)",
            r / 16.0
        ));
    }
    if let Some(ns) = median("compact/forget_360k_of_400k") {
        lines.push(format!(
            "  expire() forgetting 360k of 400k and compacting all 256 shards: {}, {} per shard (each shard's lock held that long)",
            human(ns),
            human(ns / 256.0)
        ));
    }
    for big in ["1M", "10M"] {
        if let Some(r) = ratio(
            &format!("expire/10k_due_among/{big}"),
            "expire/10k_due_among/100k",
        ) {
            lines.push(format!(
                "  reaping 10k due among {big} pending costs {r:.2}x reaping 10k among 100k (1 = cost follows the due ones only)"
            ));
        }
    }
    if let Some(r) = ratio(
        "hot_cell/reserve_release/2_threads",
        "hot_cell/reserve_release/1_threads",
    ) {
        lines.push(format!(
            "  hot cell: each of 2 threads takes {r:.2}x the 1-thread time per reserve+release; total throughput {:.2}x of 1 thread",
            2.0 / r
        ));
    }
    if let Some(r) = ratio(
        "sold_out/refuse_1M_remembered/default_filters",
        "sold_out/refuse_1M_remembered/expected_reservations",
    ) {
        lines.push(format!(
            "  sold-out refusals with 1M reservations remembered: filters sized up front {r:.2}x the speed of filters grown on demand (about 1: both lock-free)"
        ));
    }
    if !lines.is_empty() {
        println!("\nomnistock ops: medians of the measured samples");
        for line in lines {
            println!("{line}");
        }
    }
}

fn human(ns: f64) -> String {
    if ns >= 1e6 {
        format!("{:.2} ms", ns / 1e6)
    } else if ns >= 1e3 {
        format!("{:.2} us", ns / 1e3)
    } else {
        format!("{ns:.1} ns")
    }
}

fn main() {
    let mut criterion = Criterion::default()
        .sample_size(SAMPLE_SIZE)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(1))
        .configure_from_args();
    single_thread(&mut criterion);
    multi_line(&mut criterion);
    expiry(&mut criterion);
    contention(&mut criterion);
    sold_out(&mut criterion);
    compaction(&mut criterion);
    criterion.final_summary();
    print_ratios();
}

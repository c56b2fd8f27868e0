//! Criterion benches of the fulfilment operations, kept short.
//!
//! - `reserve_any/{first_fit,split}/{2,8,32}_stores`: one `reserve_any` and
//!   the release of what it held, over n candidate stores of one SKU. In
//!   `first_fit` only the last store has the quantity (the walk passes every
//!   other one); in `split` every store has one unit and the request takes
//!   them all.
//! - `network_available/{10,1000}_stores`: the availability of one SKU
//!   across its stores, in an inventory where 99 other SKUs have as many
//!   stores each; its cost follows the SKU's stores, not the catalogue.
//!
//! The inventory runs on a [`ManualClock`] so the benches measure the engine,
//! not the system clock.

use criterion::{black_box, BenchmarkId, Criterion};
use omnistock::{Channel, Inventory, ManualClock, ReservationId, Sku, SourceRequest, StoreId};
use std::sync::Arc;
use std::time::Duration;

const SKU: Sku = Sku(1);

fn inventory() -> Inventory {
    Inventory::builder()
        .clock(Arc::new(ManualClock::new()))
        .expected_items(200_000)
        .build()
}

fn reserve_any(criterion: &mut Criterion) {
    let mut group = criterion.benchmark_group("reserve_any");
    for stores in [2u64, 8, 32] {
        let candidates: Vec<StoreId> = (0..stores).map(StoreId).collect();
        // first_fit: only the last store has the 3 units asked for.
        let first_fit = inventory();
        for &store in &candidates {
            first_fit.restock(SKU, store, 2).unwrap();
        }
        first_fit
            .restock(SKU, *candidates.last().unwrap(), 1)
            .unwrap();
        let request = SourceRequest::new(SKU, 3, &candidates);
        let mut id = 0;
        group.bench_with_input(
            BenchmarkId::new("first_fit", format!("{stores}_stores")),
            &request,
            |b, request| {
                b.iter(|| {
                    id += 1;
                    let held = first_fit
                        .reserve_any(ReservationId(id), Channel::Online, request, 60_000)
                        .unwrap();
                    black_box(held);
                    first_fit.release(ReservationId(id)).unwrap();
                })
            },
        );
        // split: one unit in every store, all of them taken.
        let split = inventory();
        for &store in &candidates {
            split.restock(SKU, store, 1).unwrap();
        }
        let request = SourceRequest::new(SKU, stores as u32, &candidates).split();
        let mut id = 0;
        group.bench_with_input(
            BenchmarkId::new("split", format!("{stores}_stores")),
            &request,
            |b, request| {
                b.iter(|| {
                    id += 1;
                    let held = split
                        .reserve_any(ReservationId(id), Channel::Online, request, 60_000)
                        .unwrap();
                    black_box(held);
                    split.release(ReservationId(id)).unwrap();
                })
            },
        );
    }
    group.finish();
}

fn network_available(criterion: &mut Criterion) {
    let mut group = criterion.benchmark_group("network_available");
    for stores in [10u64, 1_000] {
        let inventory = inventory();
        for sku in 0..100 {
            for store in 0..stores {
                inventory.restock(Sku(sku), StoreId(store), 5).unwrap();
            }
        }
        group.bench_function(format!("{stores}_stores"), |b| {
            b.iter(|| black_box(inventory.network_available(black_box(SKU), Channel::Online)))
        });
    }
    group.finish();
}

fn main() {
    let mut criterion = Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(1))
        .configure_from_args();
    reserve_any(&mut criterion);
    network_available(&mut criterion);
    criterion.final_summary();
}

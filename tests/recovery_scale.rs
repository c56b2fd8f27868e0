//! Recovery at scale (ignored by default; it needs a few GB of memory and
//! about a minute): 10,000,000 items and 1,000,000 pending reservations in
//! a journaled directory, a snapshot, 100,000 more operations in the
//! journal after it, then `open` from cold, timed. The figure goes to
//! docs/PERFORMANCE.md:
//!
//! ```text
//! cargo test --release --test recovery_scale -- --ignored --nocapture
//! ```

use omnistock::durability::Durability;
use omnistock::{Channel, Inventory, Line, ReservationId, Sku, StoreId};
use std::time::Instant;

const ITEMS: u64 = 10_000_000;
const PENDING: u64 = 1_000_000;
const AFTER: u64 = 100_000;

#[test]
#[ignore = "10M items: run by hand, see the module doc"]
fn ten_million_items_and_a_million_pending_reservations_recover_within_ten_seconds() {
    let dir = std::env::temp_dir().join(format!("omnistock-scale-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let builder = || {
        Inventory::builder()
            .expected_items(ITEMS as usize)
            .expected_reservations(PENDING as usize)
            .default_ttl_ms(u64::MAX / 4)
            .journal(&dir, Durability::None)
    };
    let started = Instant::now();
    let (inventory, _) = builder().open().unwrap();
    std::thread::scope(|scope| {
        for t in 0..4 {
            let inventory = &inventory;
            scope.spawn(move || {
                for n in (t..ITEMS).step_by(4) {
                    inventory.restock(Sku(n), StoreId(n % 100), 5).unwrap();
                }
                for n in (t..PENDING).step_by(4) {
                    let line = Line::new(Sku(n * 7 % ITEMS), StoreId(n * 7 % ITEMS % 100), 1);
                    inventory
                        .reserve(ReservationId(n + 1), Channel::InStore, &[line])
                        .unwrap();
                }
            });
        }
    });
    println!("built in {:.1?}", started.elapsed());
    let snapshot_started = Instant::now();
    inventory.snapshot().unwrap();
    println!("snapshot in {:.1?}", snapshot_started.elapsed());
    for n in 0..AFTER {
        inventory.restock(Sku(n), StoreId(n % 100), 1).unwrap();
    }
    inventory.sync().unwrap();
    let expected_items = inventory.item_count();
    let expected_pending = inventory.pending_count();
    drop(inventory);

    let started = Instant::now();
    let (inventory, report) = builder().open().unwrap();
    let took = started.elapsed();
    println!(
        "recovered {} items, {} pending, {} records after the snapshot in {took:.2?} ({report:?})",
        inventory.item_count(),
        inventory.pending_count(),
        report.records_applied
    );
    assert_eq!(inventory.item_count(), expected_items);
    assert_eq!(inventory.pending_count(), expected_pending);
    assert_eq!(inventory.level(Sku(0), StoreId(0)).unwrap().on_hand, 6);
    assert!(took.as_secs_f64() < 10.0, "recovery took {took:.1?}");
    drop(inventory);
    std::fs::remove_dir_all(&dir).unwrap();
}

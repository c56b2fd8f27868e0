//! What one item lookup costs when it misses the cache: a chain of
//! lookups, each choosing the next item from the answer of the last, so
//! that no two overlap. Runs the chain through the inventory's item table
//! and through a dense array of 64-bit words indexed by item number, like
//! atomic-limit's in flash_sale, and prints the nanoseconds per lookup of
//! each.
//!
//! ```sh
//! cargo bench --bench lookup_chain -- 1000000    # 1M items
//! cargo bench --bench lookup_chain -- 1000       # in cache
//! # with transparent huge pages for every allocation (glibc 2.35 or later):
//! GLIBC_TUNABLES=glibc.malloc.hugetlb=1 cargo bench --bench lookup_chain -- 1000000
//! ```

use omnistock::{Inventory, Sku, StoreId};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

const LOOKUPS: u64 = 3_000_000;

fn main() -> Result<(), String> {
    // `cargo bench` passes `--bench` to a bench without the test harness.
    let items: u64 = match std::env::args().skip(1).find(|arg| arg != "--bench") {
        None => 1_000_000,
        Some(text) => text
            .parse()
            .map_err(|_| format!("items: expected a number, got {text:?}"))?,
    };
    let items = items.max(1);
    let inventory = Inventory::builder().expected_items(items as usize).build();
    let store = StoreId(1);
    for sku in 0..items {
        inventory
            .set_on_hand(Sku(sku), store, 1 << 20)
            .map_err(|e| e.to_string())?;
    }
    let words: Vec<AtomicU64> = (0..items).map(|_| AtomicU64::new(1 << 20)).collect();
    // xorshift64; `last` (always 0, but only known once the lookup answers)
    // makes each lookup wait for the one before.
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = |last: u64| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state ^ last) % items
    };
    let mut last = 0;
    let started = Instant::now();
    for _ in 0..LOOKUPS {
        let level = inventory
            .level(Sku(next(last)), store)
            .map_err(|e| e.to_string())?;
        last = u64::from(level.on_hand) >> 30;
    }
    let table = started.elapsed().as_nanos() as f64 / LOOKUPS as f64;
    let started = Instant::now();
    for _ in 0..LOOKUPS {
        last = words[next(last) as usize].load(Ordering::Relaxed) >> 30;
    }
    let array = started.elapsed().as_nanos() as f64 / LOOKUPS as f64;
    println!("{items} items: {table:.1} ns a lookup in the item table, {array:.1} ns in a dense array of words");
    Ok(())
}

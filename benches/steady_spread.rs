//! One thread driving the spread workload's steady state on a simulated
//! clock, for instruction and cache-miss counts that do not depend on the
//! machine's noise or the harness: 1,000,000 items, single-line carts on
//! uniformly random items with ids in sequence, three in four committed
//! and one released, 100 ms to live; the clock moves a millisecond every
//! 3,000 carts (3M carts a second, what two threads reach in
//! `flash_sale --workload spread`) and `expire()` runs every 2 ms, so with
//! the 1 s retention about 3M reservations stay remembered.
//!
//! ```sh
//! cargo bench --bench steady_spread -- 4000000 3000000
//! ```
//!
//! runs 4M carts to reach the steady state, then times 3M more and prints
//! the time per cart. Three more arguments change the items (default
//! 1,000,000), the retention in ms (default 1,000) and the percent of carts
//! left to expire, which the reaper then expires a ttl later (default 0;
//! flash_sale's spread leaves 15): `-- 4000000 3000000 1000 1` keeps
//! everything in cache, which sets apart what the catalogue's size and the
//! reservations remembered each cost. For counts, run it under cachegrind twice, with and
//! without the measured carts, and subtract (`cg_diff`; `tools/cg` does
//! this for a base commit against the working tree). The binary is the one
//! `cargo bench --no-run --bench steady_spread` names:
//!
//! ```sh
//! bin=$(cargo bench --no-run --bench steady_spread 2>&1 | sed -n 's/.*Executable.*(\(.*\))/\1/p')
//! valgrind --tool=cachegrind --cache-sim=yes --D1=49152,12,64 --LL=2097152,16,64 \
//!     --cachegrind-out-file=warm.out "$bin" 3200000 0
//! valgrind --tool=cachegrind --cache-sim=yes --D1=49152,12,64 --LL=2097152,16,64 \
//!     --cachegrind-out-file=both.out "$bin" 3200000 1000000
//! cg_diff warm.out both.out > measured.out && cg_annotate measured.out
//! ```
//!
//! (`--LL` set to one core's L2 of the development machine, so that "LL
//! misses" are the misses that go to the shared L3.)
//!
//! A sixth argument, `split`, also times each call on its own and prints
//! what reserves, commits and releases, and `expire()` passes cost per
//! cart, and what one clock read costs (each timing adds one to its
//! part):
//!
//! ```sh
//! cargo bench --bench steady_spread -- 4000000 3000000 1000000 300 15 split
//! ```

use omnistock::{Channel, Inventory, Line, ManualClock, ReservationId, Sku, StoreId};
use std::sync::Arc;
use std::time::{Duration, Instant};

const TTL_MS: u64 = 100;
const CARTS_PER_MS: u64 = 3_000;

fn count(arg: Option<String>, name: &str, default: u64) -> Result<u64, String> {
    match arg {
        None => Ok(default),
        Some(text) => text
            .parse()
            .map_err(|_| format!("{name}: expected a number, got {text:?}")),
    }
}

fn main() -> Result<(), String> {
    // `cargo bench` passes `--bench` to a bench without the test harness.
    let mut args = std::env::args().skip(1).filter(|arg| arg != "--bench");
    let warm = count(args.next(), "warm-up carts", 4_000_000)?;
    let measured = count(args.next(), "measured carts", 3_000_000)?;
    let items = count(args.next(), "items", 1_000_000)?.max(1);
    let retention_ms = count(args.next(), "retention in ms", 1_000)?;
    let left_percent = count(args.next(), "percent of carts left to expire", 0)?.min(100);
    let split = match args.next().as_deref() {
        None => false,
        Some("split") => true,
        Some(other) => return Err(format!("expected `split` or nothing, got {other:?}")),
    };
    let clock = Arc::new(ManualClock::new());
    let inventory = Inventory::builder()
        .clock(clock.clone())
        .expected_items(items as usize)
        .retention_ms(retention_ms)
        .build();
    let store = StoreId(1);
    for sku in 0..items {
        inventory
            .set_on_hand(Sku(sku), store, 1 << 30)
            .map_err(|e| e.to_string())?;
    }
    // xorshift64: the items carts pick, the same in every run.
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    // Returns the time spent in reserves, in commits and releases, and in
    // expire() (only where `split`; zero otherwise).
    let mut carts = |from: u64, to: u64| -> Result<[Duration; 3], String> {
        let mut parts = [Duration::ZERO; 3];
        let mut timed = |part: usize, call: &mut dyn FnMut() -> Result<(), String>| {
            if !split {
                return call();
            }
            let started = Instant::now();
            let answer = call();
            parts[part] += started.elapsed();
            answer
        };
        for n in from..to {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let cart = [Line::new(Sku(state % items), store, 1)];
            let id = ReservationId(n);
            timed(0, &mut || {
                inventory
                    .reserve_with_ttl(id, Channel::Online, &cart, TTL_MS)
                    .map(drop)
                    .map_err(|e| e.to_string())
            })?;
            // Left to expire: the first `left_percent` of every 100 carts
            // (the reaper expires them a ttl later).
            if n % 100 >= left_percent {
                timed(1, &mut || {
                    let ended = if n % 4 == 0 {
                        inventory.release(id)
                    } else {
                        inventory.commit(id)
                    };
                    ended.map(drop).map_err(|e| e.to_string())
                })?;
            }
            if n % CARTS_PER_MS == CARTS_PER_MS - 1 {
                clock.advance(1);
                if n % (2 * CARTS_PER_MS) == 2 * CARTS_PER_MS - 1 {
                    timed(2, &mut || {
                        inventory.expire();
                        Ok(())
                    })?;
                }
            }
        }
        Ok(parts)
    };
    carts(0, warm)?;
    let started = Instant::now();
    let parts = carts(warm, warm + measured)?;
    let elapsed = started.elapsed();
    if measured > 0 {
        let per_cart = |time: Duration| time.as_nanos() as f64 / measured as f64;
        println!(
            "{:.1} ns per cart over {measured} carts; {} reservations remembered",
            per_cart(elapsed),
            inventory.reservation_count()
        );
        if split {
            println!(
                "per cart: reserve {:.1} ns, commit or release {:.1} ns, expire() {:.1} ns",
                per_cart(parts[0]),
                per_cart(parts[1]),
                per_cart(parts[2])
            );
            let reads: u32 = 1_000_000;
            let started = Instant::now();
            for _ in 0..reads {
                std::hint::black_box(Instant::now());
            }
            println!(
                "one clock read: {:.1} ns",
                started.elapsed().as_nanos() as f64 / f64::from(reads)
            );
        }
    }
    Ok(())
}

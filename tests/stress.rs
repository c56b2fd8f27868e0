//! Multi-threaded stress: random operations from several threads on a handful
//! of items, with a manual clock moved by its own thread and a monitor thread
//! reading levels the whole time. Bounded in operations and in seconds.
//!
//! During the run every level read (by the monitor and by the workers) must
//! have `reserved <= on_hand`. At the end, once every reservation has ended:
//! units are conserved per item (initial + restocked + counted deltas -
//! committed - sold == on_hand, in each worker's [`Conservation`] books
//! merged), nothing is reserved, every acknowledged
//! reservation is in exactly the terminal state its owner saw, and the
//! effect records an observer received add up to the same stock.

use omnistock::model::{level_ok, Conservation, Rng};
use omnistock::{
    Channel, Clock, Effect, EffectObserver, Error, Inventory, ItemKey, Level, Line, ManualClock,
    ReservationId, ReservationState, Sku, StoreId,
};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::thread;
use std::time::{Duration, Instant};

const WORKERS: usize = 4;
const OPS_PER_WORKER: u64 = 250_000;
const TIME_LIMIT: Duration = Duration::from_secs(5);
const INITIAL_STOCK: u32 = 40;
const MAX_TTL_MS: u64 = 40;
const ITEMS: [(u64, u64); 6] = [(1, 1), (1, 2), (2, 1), (2, 2), (3, 1), (3, 3)];

/// The run's seed: `OMNISTOCK_STRESS_SEED` or a fixed default. The thread
/// interleavings differ from run to run anyway.
fn seed() -> u64 {
    std::env::var("OMNISTOCK_STRESS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5EED)
}

fn item(index: usize) -> ItemKey {
    let (sku, store) = ITEMS[index];
    ItemKey::new(Sku(sku), StoreId(store))
}

/// Sums every effect record per item and counts reservation transitions per id.
#[derive(Default)]
struct Ledger {
    stock: HashMap<ItemKey, (i64, i64)>,
    reserved_records: HashMap<u64, u32>,
    finished: HashMap<u64, Vec<ReservationState>>,
}

/// What every thread counts together.
#[derive(Default)]
struct Counters {
    expired_by_expire: AtomicU64,
    level_reads: AtomicU64,
}

/// A reservation as its owner last saw it.
struct Tracked {
    id: ReservationId,
    channel: Channel,
    lines: Vec<Line>,
    state: ReservationState,
    /// The owner saw it expired (it may have been expired lazily by that
    /// very call rather than by `expire()`).
    seen_expired: bool,
}

struct Shared {
    inventory: Inventory,
    clock: Arc<ManualClock>,
    counters: Counters,
    /// Operations that change `on_hand` (restock, sell, commit) hold it
    /// shared; a cycle count holds it exclusively, so the delta it causes is
    /// exactly `counted - on_hand before`. Reserves, releases and expiry
    /// (which only move `reserved`) run freely alongside the count.
    on_hand_guard: RwLock<()>,
    safety_stock_item0: AtomicU32,
    deadline: Instant,
    stop: AtomicBool,
    problems: Mutex<Vec<String>>,
}

impl Shared {
    fn problem(&self, message: String) {
        let mut problems = self.problems.lock().unwrap();
        if problems.len() < 20 {
            problems.push(message);
        }
    }

    fn check_level(&self, what: &str, level: &Level) {
        self.counters.level_reads.fetch_add(1, Ordering::Relaxed);
        if let Err(broken) = level_ok(level) {
            self.problem(format!("{what}: {broken}"));
        }
    }
}

fn pick_lines(rng: &mut Rng) -> Vec<Line> {
    let n = 1 + rng.below(3) as usize;
    let mut chosen: Vec<usize> = Vec::with_capacity(n);
    while chosen.len() < n {
        let i = rng.below(ITEMS.len() as u64) as usize;
        if !chosen.contains(&i) {
            chosen.push(i);
        }
    }
    chosen
        .into_iter()
        .map(|i| {
            let key = item(i);
            Line::new(key.sku, key.store, 1 + rng.below(4) as u32)
        })
        .collect()
}

/// A worker's run: the reservations it made, and its books of the units
/// its acknowledged operations moved.
fn worker(shared: &Shared, index: usize) -> (Vec<Tracked>, Conservation) {
    let inv = &shared.inventory;
    let mut books = Conservation::default();
    let mut rng = Rng::new(seed() + index as u64);
    let mut tracked: Vec<Tracked> = Vec::new();
    let mut pending: Vec<usize> = Vec::new();
    let mut next_id = 0u64;

    // Marks `tracked[slot]` terminal and drops it from `pending`.
    fn finish(
        tracked: &mut [Tracked],
        pending: &mut Vec<usize>,
        at: usize,
        state: ReservationState,
    ) {
        let slot = pending.swap_remove(at);
        tracked[slot].state = state;
        tracked[slot].seen_expired = state == ReservationState::Expired;
    }

    for _ in 0..OPS_PER_WORKER {
        if shared.stop.load(Ordering::Relaxed) || Instant::now() >= shared.deadline {
            break;
        }
        let roll = rng.below(100);
        match roll {
            // Reserve 1-3 lines on either channel.
            0..=29 => {
                let id = ReservationId(((index as u64 + 1) << 32) | next_id);
                next_id += 1;
                let lines = pick_lines(&mut rng);
                let channel = rng.channel();
                let ttl = 1 + rng.below(MAX_TTL_MS);
                match inv.reserve_with_ttl(id, channel, &lines, ttl) {
                    Ok(ack) => {
                        if ack.state != ReservationState::Pending || ack.replayed {
                            shared.problem(format!("fresh reserve answered {ack:?}"));
                        }
                        // One cart in ten is abandoned: only expiry ends it.
                        if rng.below(10) != 0 {
                            pending.push(tracked.len());
                        }
                        tracked.push(Tracked {
                            id,
                            channel,
                            lines,
                            state: ReservationState::Pending,
                            seen_expired: false,
                        });
                    }
                    Err(Error::Insufficient { .. }) => {}
                    Err(e) => shared.problem(format!("reserve {id}: {e}")),
                }
            }
            // Commit one of ours.
            30..=44 if !pending.is_empty() => {
                let at = rng.below(pending.len() as u64) as usize;
                let slot = pending[at];
                let id = tracked[slot].id;
                let _guard = shared.on_hand_guard.read().unwrap();
                match inv.commit(id) {
                    Ok(ack) if ack.state == ReservationState::Committed && !ack.replayed => {
                        books.committed(&tracked[slot].lines);
                        finish(&mut tracked, &mut pending, at, ReservationState::Committed);
                    }
                    Err(Error::Expired { .. }) => {
                        finish(&mut tracked, &mut pending, at, ReservationState::Expired)
                    }
                    other => shared.problem(format!("commit {id}: {other:?}")),
                }
            }
            // Release one of ours.
            45..=54 if !pending.is_empty() => {
                let at = rng.below(pending.len() as u64) as usize;
                let id = tracked[pending[at]].id;
                match inv.release(id) {
                    Ok(ack) if ack.state == ReservationState::Released && !ack.replayed => {
                        finish(&mut tracked, &mut pending, at, ReservationState::Released)
                    }
                    Ok(ack) if ack.state == ReservationState::Expired => {
                        finish(&mut tracked, &mut pending, at, ReservationState::Expired)
                    }
                    other => shared.problem(format!("release {id}: {other:?}")),
                }
            }
            // Extend one of ours.
            55..=61 if !pending.is_empty() => {
                let at = rng.below(pending.len() as u64) as usize;
                let id = tracked[pending[at]].id;
                match inv.extend(id, 1 + rng.below(MAX_TTL_MS)) {
                    Ok(ack) if ack.state == ReservationState::Pending && !ack.replayed => {}
                    Err(Error::Expired { .. }) => {
                        finish(&mut tracked, &mut pending, at, ReservationState::Expired)
                    }
                    other => shared.problem(format!("extend {id}: {other:?}")),
                }
            }
            // Retry a reserve we made before (idempotency) or read it back.
            62..=66 if !tracked.is_empty() => {
                let slot = rng.below(tracked.len() as u64) as usize;
                let t = &tracked[slot];
                let id = t.id;
                let answer = if roll % 2 == 0 {
                    inv.reserve(id, t.channel, &t.lines).map(|ack| ack.state)
                } else {
                    inv.get(id).map(|info| {
                        if info.lines != t.lines || info.channel != t.channel {
                            shared.problem(format!("get {id}: lines or channel changed: {info:?}"));
                        }
                        info.state
                    })
                };
                let state = match answer {
                    Ok(state) => state,
                    Err(Error::AlreadyReleased { .. }) => ReservationState::Released,
                    Err(Error::Expired { .. }) => ReservationState::Expired,
                    Err(e) => {
                        shared.problem(format!("replay of {id}: {e}"));
                        continue;
                    }
                };
                let expected_ok = state == t.state
                    || (t.state == ReservationState::Pending && state == ReservationState::Expired);
                if !expected_ok {
                    shared.problem(format!("{id} was {:?}, now answers {state:?}", t.state));
                } else if t.state == ReservationState::Pending && state == ReservationState::Expired
                {
                    match pending.iter().position(|&s| s == slot) {
                        Some(at) => {
                            finish(&mut tracked, &mut pending, at, ReservationState::Expired)
                        }
                        None => {
                            tracked[slot].state = ReservationState::Expired;
                            tracked[slot].seen_expired = true;
                        }
                    }
                }
            }
            // A sale without a reservation.
            67..=78 => {
                let i = rng.below(ITEMS.len() as u64) as usize;
                let qty = 1 + rng.below(3) as u32;
                let _guard = shared.on_hand_guard.read().unwrap();
                match inv.sell(item(i).sku, item(i).store, qty, rng.channel()) {
                    Ok(level) => {
                        books.sold(item(i), qty);
                        shared.check_level("sell", &level);
                    }
                    Err(Error::Insufficient { .. }) => {}
                    Err(e) => shared.problem(format!("sell: {e}")),
                }
            }
            // A delivery.
            79..=83 => {
                let i = rng.below(ITEMS.len() as u64) as usize;
                let qty = 1 + rng.below(10) as u32;
                let _guard = shared.on_hand_guard.read().unwrap();
                match inv.restock(item(i).sku, item(i).store, qty) {
                    Ok(level) => {
                        books.received(item(i), qty);
                        shared.check_level("restock", &level);
                    }
                    Err(e) => shared.problem(format!("restock: {e}")),
                }
            }
            // A cycle count, racing reserves, releases and expiry.
            84..=86 => {
                let i = rng.below(ITEMS.len() as u64) as usize;
                let counted = rng.below(61) as u32;
                let _guard = shared.on_hand_guard.write().unwrap();
                let before = inv.level(item(i).sku, item(i).store).unwrap();
                match inv.set_on_hand(item(i).sku, item(i).store, counted) {
                    Ok(level) => {
                        if level.on_hand != counted {
                            shared.problem(format!("set_on_hand {counted} gave {level:?}"));
                        }
                        shared.check_level("set_on_hand", &level);
                        books.counted(item(i), before.on_hand, counted);
                    }
                    Err(Error::BelowReserved { reserved, .. }) => {
                        if reserved <= counted {
                            shared.problem(format!(
                                "set_on_hand {counted} refused with only {reserved} reserved"
                            ));
                        }
                    }
                    Err(e) => shared.problem(format!("set_on_hand: {e}")),
                }
            }
            // The reaper, from a worker.
            87..=90 => {
                shared
                    .counters
                    .expired_by_expire
                    .fetch_add(inv.expire(), Ordering::SeqCst);
            }
            // A level read.
            _ => {
                let i = rng.below(ITEMS.len() as u64) as usize;
                match inv.level(item(i).sku, item(i).store) {
                    Ok(level) => shared.check_level("level", &level),
                    Err(e) => shared.problem(format!("level: {e}")),
                }
            }
        }
    }
    (tracked, books)
}

/// Moves time 1 ms at a time, reaps now and then, and changes item 0's
/// safety stock (the only writer of it, so its final value is known).
fn clock_driver(shared: &Shared) {
    let mut rng = Rng::new(0xC10C);
    let mut ticks = 0u64;
    while !shared.stop.load(Ordering::Relaxed) {
        shared.clock.advance(1);
        ticks += 1;
        if ticks % 8 == 0 {
            shared
                .counters
                .expired_by_expire
                .fetch_add(shared.inventory.expire(), Ordering::SeqCst);
        }
        if ticks % 50 == 0 {
            let safety = rng.below(11) as u32;
            let key = item(0);
            let level = shared
                .inventory
                .set_safety_stock(key.sku, key.store, safety);
            shared.safety_stock_item0.store(safety, Ordering::SeqCst);
            shared.check_level("set_safety_stock", &level);
        }
        thread::sleep(Duration::from_micros(100));
    }
}

fn monitor(shared: &Shared) {
    while !shared.stop.load(Ordering::Relaxed) {
        for i in 0..ITEMS.len() {
            match shared.inventory.level(item(i).sku, item(i).store) {
                Ok(level) => shared.check_level("monitor", &level),
                Err(e) => shared.problem(format!("monitor: {e}")),
            }
        }
        for (key, level) in shared.inventory.items() {
            shared.check_level(&format!("items() {key}"), &level);
        }
        thread::yield_now();
    }
}

#[test]
fn random_operations_from_many_threads_never_oversell_and_conserve_units() {
    let ledger = Arc::new(Mutex::new(Ledger::default()));
    let observer_ledger = Arc::clone(&ledger);
    let observer: Arc<dyn EffectObserver> = Arc::new(move |effects: &[Effect]| {
        let mut ledger = observer_ledger.lock().unwrap();
        for effect in effects {
            match effect {
                Effect::Stock {
                    item,
                    on_hand,
                    reserved,
                } => {
                    let entry = ledger.stock.entry(*item).or_default();
                    entry.0 += on_hand;
                    entry.1 += reserved;
                }
                Effect::Reserved { id, .. } => {
                    *ledger.reserved_records.entry(id.0).or_default() += 1
                }
                Effect::Finished { id, state, .. } => {
                    ledger.finished.entry(id.0).or_default().push(*state)
                }
                _ => {}
            }
        }
    });
    let clock = Arc::new(ManualClock::new());
    let inventory = Inventory::builder()
        .clock(Arc::clone(&clock) as Arc<dyn Clock>)
        .observer(observer)
        .build();
    let mut books = Conservation::default();
    for i in 0..ITEMS.len() {
        inventory
            .restock(item(i).sku, item(i).store, INITIAL_STOCK)
            .unwrap();
        books.received(item(i), INITIAL_STOCK);
    }
    inventory.set_safety_stock(item(1).sku, item(1).store, 5);
    inventory.set_safety_stock(item(4).sku, item(4).store, 3);
    let shared = Shared {
        inventory,
        clock,
        counters: Counters::default(),
        on_hand_guard: RwLock::new(()),
        safety_stock_item0: AtomicU32::new(0),
        deadline: Instant::now() + TIME_LIMIT,
        stop: AtomicBool::new(false),
        problems: Mutex::new(Vec::new()),
    };
    let started = Instant::now();

    let tracked: Vec<Tracked> = thread::scope(|scope| {
        let shared = &shared;
        let driver = scope.spawn(move || clock_driver(shared));
        let watcher = scope.spawn(move || monitor(shared));
        let workers: Vec<_> = (0..WORKERS)
            .map(|i| scope.spawn(move || worker(shared, i)))
            .collect();
        let mut tracked = Vec::new();
        for handle in workers {
            let (made, moved) = handle.join().expect("worker panicked");
            tracked.extend(made);
            books.merge(&moved);
        }
        shared.stop.store(true, Ordering::Relaxed);
        driver.join().expect("clock thread panicked");
        watcher.join().expect("monitor panicked");
        tracked
    });
    let inv = &shared.inventory;
    let counters = &shared.counters;

    // Every reservation still pending runs out now.
    shared.clock.advance(10 * MAX_TTL_MS + 1);
    counters
        .expired_by_expire
        .fetch_add(inv.expire(), Ordering::SeqCst);

    let problems = shared.problems.lock().unwrap().clone();
    assert!(
        problems.is_empty(),
        "problems during the run: {problems:#?}"
    );
    eprintln!(
        "stress: {} reservations acknowledged, {} level reads checked in {:?}",
        tracked.len(),
        counters.level_reads.load(Ordering::Relaxed),
        started.elapsed()
    );
    assert!(!tracked.is_empty(), "no reservation succeeded");

    // Every acknowledged reservation is in the terminal state its owner saw.
    let mut counts: HashMap<ReservationState, u64> = HashMap::new();
    let mut seen_expired = 0;
    for t in &tracked {
        let info = inv
            .get(t.id)
            .expect("an acknowledged reservation is remembered");
        let expected = match t.state {
            ReservationState::Pending => ReservationState::Expired,
            state => state,
        };
        assert_eq!(info.state, expected, "{} ended {:?}", t.id, info.state);
        assert_eq!(info.lines, t.lines, "{} lines", t.id);
        assert_eq!(info.channel, t.channel, "{} channel", t.id);
        *counts.entry(info.state).or_default() += 1;
        seen_expired += u64::from(t.seen_expired);
    }
    eprintln!(
        "stress: seed {}, final states {counts:?}, expired by expire() {}",
        seed(),
        counters.expired_by_expire.load(Ordering::SeqCst)
    );
    assert_eq!(inv.reservation_count(), tracked.len());
    let expired = counts.get(&ReservationState::Expired).copied().unwrap_or(0);
    let by_expire = counters.expired_by_expire.load(Ordering::SeqCst);
    // Those the owner saw expired may have been expired lazily by that call;
    // every other expired one was expired by expire(), exactly once.
    assert!(
        by_expire <= expired && expired <= by_expire + seen_expired,
        "expire() reported {by_expire}, {expired} ended expired, {seen_expired} seen expired by their owner"
    );

    // Units are conserved and nothing is held.
    let items = inv.items();
    assert_eq!(items.len(), ITEMS.len());
    assert_eq!(books.check_on_hand(&items), Ok(()));
    assert_eq!(Conservation::check_all_ended(&items), Ok(()));
    for i in 0..ITEMS.len() {
        let key = item(i);
        let level = inv.level(key.sku, key.store).unwrap();
        let safety = match i {
            0 => shared.safety_stock_item0.load(Ordering::SeqCst),
            1 => 5,
            4 => 3,
            _ => 0,
        };
        assert_eq!(level.safety_stock, safety, "{key}: safety stock");
        assert_eq!(level.available_in_store, level.on_hand, "{key}");
        assert_eq!(
            level.available_online,
            level.on_hand.saturating_sub(safety),
            "{key}"
        );
    }

    // The effect records tell the same story.
    let ledger = ledger.lock().unwrap();
    for (key, level) in inv.items() {
        let (on_hand, reserved) = ledger.stock.get(&key).copied().unwrap_or_default();
        assert_eq!(
            on_hand,
            i64::from(level.on_hand),
            "{key}: effects' on_hand sum"
        );
        assert_eq!(
            reserved,
            i64::from(level.reserved),
            "{key}: effects' reserved sum"
        );
    }
    assert_eq!(ledger.reserved_records.len(), tracked.len());
    for t in &tracked {
        assert_eq!(ledger.reserved_records.get(&t.id.0), Some(&1), "{}", t.id);
        let finished = ledger.finished.get(&t.id.0).map(Vec::as_slice);
        assert_eq!(
            finished,
            Some(&[inv.get(t.id).unwrap().state][..]),
            "{}: exactly one transition to its terminal state",
            t.id
        );
    }
}

#[test]
fn the_last_units_go_to_exactly_as_many_carts_as_there_are_units() {
    const STOCK: u32 = 1_000;
    const SAFETY: u32 = 100;
    const ATTEMPTS: u64 = 2_000;
    let inv = Inventory::builder()
        .clock(Arc::new(ManualClock::new()))
        .build();
    let (sku, store) = (Sku(9), StoreId(9));
    inv.restock(sku, store, STOCK).unwrap();
    inv.set_safety_stock(sku, store, SAFETY);
    let online_ok = AtomicU64::new(0);
    let in_store_ok = AtomicU64::new(0);
    thread::scope(|scope| {
        for t in 0..WORKERS as u64 {
            let (inv, online_ok, in_store_ok) = (&inv, &online_ok, &in_store_ok);
            scope.spawn(move || {
                for n in 0..ATTEMPTS {
                    let channel = if (n + t) % 4 == 0 {
                        Channel::InStore
                    } else {
                        Channel::Online
                    };
                    let id = ReservationId((t << 32) | n);
                    match inv.reserve(id, channel, &[Line::new(sku, store, 1)]) {
                        Ok(_) if channel == Channel::Online => {
                            online_ok.fetch_add(1, Ordering::Relaxed);
                        }
                        Ok(_) => {
                            in_store_ok.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(Error::Insufficient { .. }) => {}
                        Err(e) => panic!("reserve {id}: {e}"),
                    }
                    if n % 64 == 0 {
                        let level = inv.level(sku, store).unwrap();
                        assert!(level.reserved <= level.on_hand, "{level:?}");
                    }
                }
            });
        }
    });
    let (online, in_store) = (
        online_ok.load(Ordering::Relaxed),
        in_store_ok.load(Ordering::Relaxed),
    );
    // Online carts stop at the safety stock; in-store carts may take it.
    assert!(
        online <= u64::from(STOCK - SAFETY),
        "{online} online reserves"
    );
    assert_eq!(online + in_store, u64::from(STOCK), "every unit held once");
    let level = inv.level(sku, store).unwrap();
    assert_eq!((level.on_hand, level.reserved), (STOCK, STOCK));
    assert_eq!((level.available_online, level.available_in_store), (0, 0));
}

/// A sold-out item with many reservations remembered: the id filters are
/// too crowded to prove fresh ids unknown, so the first refusals take the
/// shard locks and make the filters grow, while other threads replay
/// reservations they hold on the same item. A replay must never be refused
/// (a known id answered `Insufficient` would mean a refusal read a filter
/// that had lost it), and every fresh id must be refused with nothing
/// recorded. Bounded: 150k remembered, 4 threads x 40k requests.
#[test]
fn replays_on_a_sold_out_item_survive_filters_growing_under_refusals() {
    const REMEMBERED: u64 = 150_000;
    const REQUESTS: u64 = 40_000;
    let inv = Inventory::builder()
        .clock(Arc::new(ManualClock::new()))
        .build();
    let (sku, store) = (Sku(5), StoreId(5));
    let cart = [Line::new(sku, store, 1)];
    inv.restock(sku, store, REMEMBERED as u32).unwrap();
    // Every unit held, a third of the holders committed: sold out.
    for n in 0..REMEMBERED {
        let id = ReservationId(n);
        inv.reserve(id, Channel::Online, &cart).unwrap();
        if n % 3 == 0 {
            inv.commit(id).unwrap();
        }
    }
    let started = Instant::now();
    thread::scope(|scope| {
        for t in 0..WORKERS as u64 {
            let (inv, cart) = (&inv, &cart);
            scope.spawn(move || {
                let mut rng = Rng::new(seed() ^ t);
                for n in 0..REQUESTS {
                    if started.elapsed() > TIME_LIMIT {
                        break;
                    }
                    if t % 2 == 0 {
                        // Fresh ids, in sequence as order numbers come.
                        let id = ReservationId((1 << 40) + t * REQUESTS + n);
                        match inv.reserve(id, Channel::Online, cart) {
                            Err(Error::Insufficient { available: 0, .. }) => {}
                            other => panic!("fresh {id} on a sold-out item: {other:?}"),
                        }
                    } else {
                        let id = ReservationId(rng.below(REMEMBERED));
                        match inv.reserve(id, Channel::Online, cart) {
                            Ok(ack) if ack.replayed => {}
                            other => panic!("replay of {id}: {other:?}"),
                        }
                    }
                }
            });
        }
    });
    assert_eq!(inv.reservation_count(), REMEMBERED as usize);
    let held = (REMEMBERED - REMEMBERED.div_ceil(3)) as u32;
    let level = inv.level(sku, store).unwrap();
    assert_eq!((level.on_hand, level.reserved), (held, held));
}

/// Shards compacting while other threads work in them: 300k committed
/// reservations are forgotten at once (every shard's slab then holds far
/// fewer records than positions, and `expire()` compacts it, renaming the
/// positions of what it keeps) while workers reserve, commit, release and
/// look up reservations of their own in the same shards. Each worker's
/// reservations must answer as the worker left them, and units must be
/// conserved. Bounded: 4 workers x 20k carts, 5 s.
#[test]
fn workers_keep_their_reservations_while_the_shards_compact() {
    const BURST: u64 = 300_000;
    const CARTS: u64 = 20_000;
    const STOCK: u32 = 1_000_000;
    let clock = Arc::new(ManualClock::new());
    let inv = Inventory::builder()
        .clock(clock.clone())
        .retention_ms(1_000)
        .default_ttl_ms(60_000)
        .build();
    let (sku, store) = (Sku(7), StoreId(7));
    let cart = [Line::new(sku, store, 1)];
    inv.restock(sku, store, STOCK).unwrap();
    for n in 0..BURST {
        let id = ReservationId(n);
        inv.reserve(id, Channel::Online, &cart).unwrap();
        inv.commit(id).unwrap();
    }
    // The burst is past retention; the next expire() forgets all of it.
    clock.advance(1_000);
    let started = Instant::now();
    let done = AtomicBool::new(false);
    let committed = AtomicU64::new(0);
    let kept = thread::scope(|scope| {
        let (inv, done) = (&inv, &done);
        scope.spawn(move || {
            while !done.load(Ordering::Relaxed) && started.elapsed() < TIME_LIMIT {
                inv.expire();
                thread::yield_now();
            }
        });
        let workers: Vec<_> = (0..WORKERS as u64)
            .map(|t| {
                let (cart, committed) = (&cart, &committed);
                scope.spawn(move || {
                    let mut ended = Vec::new();
                    for n in 0..CARTS {
                        if started.elapsed() > TIME_LIMIT {
                            break;
                        }
                        let id = ReservationId((1 << 40) | (t << 32) | n);
                        let ack = inv.reserve(id, Channel::Online, cart).unwrap();
                        assert!(!ack.replayed, "{id} was fresh");
                        let state = match n % 3 {
                            0 => {
                                inv.commit(id).unwrap();
                                committed.fetch_add(1, Ordering::Relaxed);
                                ReservationState::Committed
                            }
                            1 => {
                                inv.release(id).unwrap();
                                ReservationState::Released
                            }
                            _ => ReservationState::Pending,
                        };
                        ended.push((id, state));
                        // Look back at one made earlier: still as left.
                        let (back, state) = ended[(n as usize * 7919) % ended.len()];
                        assert_eq!(inv.get(back).map(|info| info.state), Ok(state), "{back}");
                    }
                    ended
                })
            })
            .collect();
        let ended: Vec<(ReservationId, ReservationState)> = workers
            .into_iter()
            .flat_map(|worker| worker.join().unwrap())
            .collect();
        done.store(true, Ordering::Relaxed);
        for &(id, state) in &ended {
            assert_eq!(inv.get(id).map(|info| info.state), Ok(state), "{id}");
        }
        let pending = ended
            .iter()
            .filter(|(_, state)| *state == ReservationState::Pending)
            .count() as u32;
        let sold = (BURST + committed.load(Ordering::Relaxed)) as u32;
        let level = inv.level(sku, store).unwrap();
        assert_eq!((level.on_hand, level.reserved), (STOCK - sold, pending));
        ended.len()
    });
    // The burst is gone; the workers' reservations are all that is left.
    inv.expire();
    assert_eq!(inv.reservation_count(), kept);
}

/// Many threads, one campaign (bounded in operations and seconds):
/// shoppers reserve, release and commit (some partially) while a clock
/// thread moves time and reaps, and a monitor reads the counters. At every
/// read the campaign's count stays within its quota and each customer
/// within the limit; at the end the counters are exactly the units that
/// the campaign's reservations hold or committed, and no customer passed
/// the limit.
#[test]
fn many_threads_on_one_campaign_never_pass_its_quota_or_a_customers_limit() {
    use omnistock::{CampaignId, CustomerId};
    const QUOTA: u32 = 300;
    const LIMIT: u32 = 3;
    const CUSTOMERS: u64 = 150;
    const SHOPPERS: u64 = 6;
    const OPS: u64 = 20_000;
    let sale = CampaignId(1);
    let (sku, store) = (Sku(1), StoreId(1));
    let clock = Arc::new(ManualClock::new());
    let inventory = Arc::new(
        Inventory::builder()
            .clock(clock.clone())
            .expected_reservations(50_000)
            .build(),
    );
    inventory.restock(sku, store, 250).unwrap();
    inventory
        .define_campaign(sale, sku, store, QUOTA, LIMIT)
        .unwrap();
    let done = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let shoppers: Vec<_> = (0..SHOPPERS)
        .map(|t| {
            let inventory = inventory.clone();
            thread::spawn(move || {
                let mut rng = Rng::new(seed() ^ (t + 1));
                // Reservation id, customer, and the units it committed.
                let mut mine: Vec<(ReservationId, CustomerId, Option<u32>)> = Vec::new();
                for n in 0..OPS {
                    if started.elapsed() > TIME_LIMIT {
                        break;
                    }
                    let reservation = ReservationId(t * OPS + n);
                    let customer = CustomerId(rng.below(CUSTOMERS));
                    let qty = 1 + rng.below(2) as u32;
                    let line = Line::new(sku, store, qty);
                    let ttl = 1 + rng.below(MAX_TTL_MS);
                    match inventory.reserve_in_campaign(
                        reservation,
                        Channel::Online,
                        line,
                        sale,
                        customer,
                        ttl,
                    ) {
                        Ok(_) => {
                            let committed = match rng.below(4) {
                                0 => {
                                    let _ = inventory.release(reservation);
                                    None
                                }
                                1 => inventory.commit(reservation).ok().map(|_| qty),
                                2 => {
                                    let part =
                                        Line::new(sku, store, rng.below(u64::from(qty) + 1) as u32);
                                    inventory
                                        .commit_lines(reservation, &[part])
                                        .ok()
                                        .map(|_| part.qty)
                                }
                                _ => None,
                            };
                            mine.push((reservation, customer, committed));
                        }
                        Err(
                            Error::QuotaExhausted { .. }
                            | Error::CustomerLimit { .. }
                            | Error::Insufficient { .. },
                        ) => {}
                        Err(other) => panic!("unexpected refusal {other:?}"),
                    }
                    if n % 64 == 0 {
                        // Restock now and then, so that the quota, not the
                        // stock, is what runs out.
                        inventory.restock(sku, store, 2).unwrap();
                    }
                }
                mine
            })
        })
        .collect();
    let ticker = {
        let (inventory, clock, done) = (inventory.clone(), clock.clone(), done.clone());
        thread::spawn(move || {
            while !done.load(Ordering::Relaxed) {
                clock.advance(1);
                inventory.expire();
                thread::yield_now();
            }
        })
    };
    let monitor = {
        let (inventory, done) = (inventory.clone(), done.clone());
        thread::spawn(move || {
            let mut reads = 0u64;
            // At least one reading, however the threads are scheduled.
            loop {
                let usage = inventory.campaign(sale).unwrap();
                assert!(usage.used <= QUOTA, "{usage:?}");
                let customer = CustomerId(reads % CUSTOMERS);
                assert!(inventory.campaign_customer_used(sale, customer) <= LIMIT);
                reads += 1;
                if done.load(Ordering::Relaxed) {
                    break;
                }
            }
            reads
        })
    };
    let mine: Vec<_> = shoppers
        .into_iter()
        .flat_map(|shopper| shopper.join().unwrap())
        .collect();
    done.store(true, Ordering::Relaxed);
    ticker.join().unwrap();
    assert!(monitor.join().unwrap() > 0);
    // What each reservation counts now: its qty while pending, its
    // committed units once committed, nothing once released or expired.
    let mut per_customer: HashMap<CustomerId, u32> = HashMap::new();
    for (reservation, customer, committed) in &mine {
        let info = inventory.get(*reservation).unwrap();
        let counted = match info.state {
            ReservationState::Pending => info.lines[0].qty,
            ReservationState::Committed => committed.expect("committed by its owner"),
            ReservationState::Released | ReservationState::Expired => 0,
        };
        *per_customer.entry(*customer).or_insert(0) += counted;
    }
    let total: u32 = per_customer.values().sum();
    let usage = inventory.campaign(sale).unwrap();
    assert_eq!(usage.used, total);
    assert!(total <= QUOTA);
    for (customer, units) in &per_customer {
        assert!(*units <= LIMIT, "{customer} counted {units}");
        assert_eq!(inventory.campaign_customer_used(sale, *customer), *units);
    }
    assert_eq!(
        usage.customers,
        per_customer.values().filter(|units| **units > 0).count()
    );
}

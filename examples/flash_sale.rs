//! The flash sale: the crate's main job.
//!
//! ```text
//! cargo run --release --example flash_sale -- [--threads N] [--ops N] [--duration SECS]
//!     [--seed N] [--stock N] [--ttl-ms MS] [--pos-threads N] [--workload hot] [--engine omnistock]
//! ```
//!
//! Shopper threads compete for a small stock of one hot SKU at one store (and
//! a few other items) on the online and in-store channels; the hot item has a
//! safety stock, so the channels see different availability. Every cart is a
//! real reservation with a unique id that is then committed, abandoned
//! (released) or left to expire. Point-of-sale threads sell in store without
//! reservations, a supplier restocks the hot item now and then, and a reaper
//! drives time and calls `expire()`. A monitor thread reads the levels during
//! the whole run.
//!
//! The run ends with a summary that proves by counting that no unit was
//! oversold: units received (initial stock + restocks) = units on hand + units
//! sold (committed carts + POS sales), nothing is left reserved once every
//! cart has ended, and the monitor never saw `reserved > on_hand` nor
//! `sold + on_hand > received`. Any failed check makes the exit status 1. The
//! last line on stdout is one JSON object with the figures.
//!
//! Every engine is driven through the [`Engine`] trait, so other engines (a
//! mutex map, Redis, PostgreSQL...) can later run the identical workload and
//! be checked by the same counting. Only `omnistock` exists today.

use crossbeam_utils::CachePadded;
use omnistock::{
    Channel, Clock, Error, Inventory, ItemKey, Level, Line, ManualClock, ReservationAck,
    ReservationId, ReservationState, Sku, StoreId,
};
use std::fmt::Write as _;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

const USAGE: &str = "\
usage: flash_sale [options]
  --threads N       shopper threads (default: number of CPUs, at least 2)
  --ops N           carts in total, split across shoppers (default 30000000)
  --duration SECS   stop the shoppers after this long at the latest (default 30)
  --seed N          random seed (default 42)
  --stock N         initial units of the hot item (default 1000)
  --ttl-ms MS       reservation time to live in milliseconds (default 100)
  --pos-threads N   point-of-sale threads selling in store (default 1)
  --workload NAME   hot (one SKU at one store; more workloads come with the benchmark)
  --engine NAME     omnistock (the only engine so far)
  --quiet           no progress lines on stderr
  -h, --help        this text";

// ---------------------------------------------------------------------------
// Options

#[derive(Clone, Debug)]
struct Config {
    threads: usize,
    pos_threads: usize,
    ops: u64,
    duration: Duration,
    seed: u64,
    stock: u32,
    ttl_ms: u64,
    workload: String,
    engine: String,
    progress: bool,
}

impl Config {
    fn from_args(args: impl Iterator<Item = String>) -> Result<Config, String> {
        let cpus = thread::available_parallelism().map_or(2, |n| n.get());
        let mut config = Config {
            threads: cpus.max(2),
            pos_threads: 1,
            ops: 30_000_000,
            duration: Duration::from_secs(30),
            seed: 42,
            stock: 1_000,
            ttl_ms: 100,
            workload: "hot".to_string(),
            engine: "omnistock".to_string(),
            progress: true,
        };
        let mut args = args.peekable();
        while let Some(arg) = args.next() {
            // Accept both `--name value` and `--name=value`.
            let (name, inline) = match arg.split_once('=') {
                Some((name, value)) => (name.to_string(), Some(value.to_string())),
                None => (arg.clone(), None),
            };
            let mut value = || -> Result<String, String> {
                inline
                    .clone()
                    .or_else(|| args.next())
                    .ok_or_else(|| format!("{name} needs a value"))
            };
            match name.as_str() {
                "--threads" => config.threads = parse_number(&name, &value()?)?,
                "--pos-threads" => config.pos_threads = parse_number(&name, &value()?)?,
                "--ops" => config.ops = parse_number(&name, &value()?)?,
                "--duration" => {
                    let text = value()?;
                    let secs: f64 = text
                        .parse()
                        .ok()
                        .filter(|s: &f64| s.is_finite() && *s > 0.0 && *s < 1e9)
                        .ok_or_else(|| {
                            format!("--duration: `{text}` is not a positive number of seconds")
                        })?;
                    config.duration = Duration::from_secs_f64(secs);
                }
                "--seed" => config.seed = parse_number(&name, &value()?)?,
                "--stock" => config.stock = parse_number(&name, &value()?)?,
                "--ttl-ms" => config.ttl_ms = parse_number(&name, &value()?)?,
                "--workload" => config.workload = value()?,
                "--engine" => config.engine = value()?,
                "--quiet" => config.progress = false,
                "-h" | "--help" => return Err(String::new()),
                _ => return Err(format!("unknown option `{arg}`")),
            }
        }
        if config.threads == 0 {
            return Err("--threads must be at least 1".into());
        }
        if config.ops == 0 {
            return Err("--ops must be at least 1".into());
        }
        if config.stock == 0 {
            return Err("--stock must be at least 1".into());
        }
        if config.ttl_ms == 0 {
            return Err("--ttl-ms must be at least 1".into());
        }
        Ok(config)
    }
}

fn parse_number<T: std::str::FromStr>(name: &str, text: &str) -> Result<T, String> {
    text.parse()
        .map_err(|_| format!("{name}: `{text}` is not a valid number"))
}

// ---------------------------------------------------------------------------
// Engines

/// What the workload needs from a stock engine. Results use the crate's own
/// vocabulary, so another engine maps its answers onto [`Level`],
/// [`ReservationAck`] and [`Error`] and is then checked exactly like
/// omnistock. Time is the shared [`ManualClock`] the engine was built with.
trait Engine: Send + Sync {
    /// The name printed in the summary and the JSON line.
    fn name(&self) -> &'static str;
    /// `on_hand += qty`, creating the item if new.
    fn restock(&self, item: ItemKey, qty: u32) -> Result<Level, Error>;
    /// Sets the units the online channel may not take.
    fn set_safety_stock(&self, item: ItemKey, qty: u32) -> Level;
    /// An immediate sale without a reservation.
    fn sell(&self, item: ItemKey, qty: u32, channel: Channel) -> Result<Level, Error>;
    /// One consistent reading of an item.
    fn level(&self, item: ItemKey) -> Result<Level, Error>;
    /// Holds every line or none.
    fn reserve(
        &self,
        id: ReservationId,
        channel: Channel,
        lines: &[Line],
        ttl_ms: u64,
    ) -> Result<ReservationAck, Error>;
    /// Takes a pending reservation's units out of stock.
    fn commit(&self, id: ReservationId) -> Result<ReservationAck, Error>;
    /// Gives a pending reservation's units back.
    fn release(&self, id: ReservationId) -> Result<ReservationAck, Error>;
    /// Expires every overdue reservation; returns how many.
    fn expire(&self) -> u64;
    /// Reservations the engine still remembers (pending and retained).
    fn reservations_remembered(&self) -> usize;
}

/// The crate itself.
struct Omnistock(Inventory);

impl Engine for Omnistock {
    fn name(&self) -> &'static str {
        "omnistock"
    }
    fn restock(&self, item: ItemKey, qty: u32) -> Result<Level, Error> {
        self.0.restock(item.sku, item.store, qty)
    }
    fn set_safety_stock(&self, item: ItemKey, qty: u32) -> Level {
        self.0.set_safety_stock(item.sku, item.store, qty)
    }
    fn sell(&self, item: ItemKey, qty: u32, channel: Channel) -> Result<Level, Error> {
        self.0.sell(item.sku, item.store, qty, channel)
    }
    fn level(&self, item: ItemKey) -> Result<Level, Error> {
        self.0.level(item.sku, item.store)
    }
    fn reserve(
        &self,
        id: ReservationId,
        channel: Channel,
        lines: &[Line],
        ttl_ms: u64,
    ) -> Result<ReservationAck, Error> {
        self.0.reserve_with_ttl(id, channel, lines, ttl_ms)
    }
    fn commit(&self, id: ReservationId) -> Result<ReservationAck, Error> {
        self.0.commit(id)
    }
    fn release(&self, id: ReservationId) -> Result<ReservationAck, Error> {
        self.0.release(id)
    }
    fn expire(&self) -> u64 {
        self.0.expire()
    }
    fn reservations_remembered(&self) -> usize {
        self.0.reservation_count()
    }
}

/// Terminal reservations are forgotten this long after they end, so memory
/// stays bounded however long the run is.
const RETENTION_MS: u64 = 1_000;

fn make_engine(
    name: &str,
    clock: Arc<ManualClock>,
    ttl_ms: u64,
) -> Result<Arc<dyn Engine>, String> {
    match name {
        "omnistock" => Ok(Arc::new(Omnistock(
            Inventory::builder()
                .clock(clock)
                .default_ttl_ms(ttl_ms)
                .retention_ms(RETENTION_MS)
                .build(),
        ))),
        other => Err(format!(
            "unknown engine `{other}`: only `omnistock` exists so far (mutex, atomic-limit, redis and postgres come with the benchmark work)"
        )),
    }
}

// ---------------------------------------------------------------------------
// Workload

/// What a shopper does with a cart once it is reserved.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fate {
    Commit,
    Abandon,
    LeaveToExpire,
}

/// The items of a run and how carts and POS sales pick from them. Item 0 is
/// the hot one.
#[derive(Debug)]
struct Workload {
    name: &'static str,
    items: Vec<ItemKey>,
    initial_stock: Vec<u32>,
    safety_stock: Vec<u32>,
    /// Units per restock of the hot item, and how many restocks at most.
    restock_qty: u32,
    max_restocks: u32,
    restock_every: Duration,
}

impl Workload {
    /// One hot SKU at one store with a small stock, plus three ordinary items
    /// at the same store that some carts add.
    fn hot(stock: u32) -> Workload {
        let store = StoreId(1);
        let items: Vec<ItemKey> = (1..=4).map(|sku| ItemKey::new(Sku(sku), store)).collect();
        let others = stock.saturating_mul(20);
        Workload {
            name: "hot",
            initial_stock: vec![stock, others, others, others],
            safety_stock: vec![(stock / 10).max(1), others / 100, 0, 0],
            items,
            restock_qty: (stock / 4).max(1),
            max_restocks: 8,
            restock_every: Duration::from_millis(250),
        }
    }

    fn from_name(name: &str, stock: u32) -> Result<Workload, String> {
        match name {
            "hot" => Ok(Workload::hot(stock)),
            other => Err(format!(
                "unknown workload `{other}`: only `hot` exists so far (spread, mixed and zipf come with the benchmark work)"
            )),
        }
    }

    /// Fills `cart` with `(item index, qty)` lines and picks the channel and
    /// the fate. Most carts want one unit of the hot item; some add an
    /// ordinary item before it (so a sold-out hot item makes the engine roll
    /// the first line back); a few want ordinary items only.
    fn next_cart(&self, rng: &mut Rng, cart: &mut Vec<(usize, u32)>) -> (Channel, Fate) {
        cart.clear();
        let hot_qty = if rng.percent(90) { 1 } else { 2 };
        let roll = rng.below(100);
        if roll < 75 {
            cart.push((0, hot_qty));
        } else if roll < 92 {
            cart.push((1 + rng.below(3) as usize, 1 + rng.below(3) as u32));
            cart.push((0, hot_qty));
        } else {
            cart.push((1, 1 + rng.below(2) as u32));
            cart.push((2 + rng.below(2) as usize, 1 + rng.below(2) as u32));
        }
        let channel = if rng.percent(85) {
            Channel::Online
        } else {
            Channel::InStore
        };
        let fate = match rng.below(100) {
            0..=59 => Fate::Commit,
            60..=84 => Fate::Abandon,
            _ => Fate::LeaveToExpire,
        };
        (channel, fate)
    }

    /// A POS sale: one unit, mostly of the hot item.
    fn next_sale(&self, rng: &mut Rng) -> (usize, u32) {
        if rng.percent(70) {
            (0, 1)
        } else {
            (1 + rng.below(3) as usize, 1)
        }
    }
}

/// xorshift64* seeded through splitmix64: small, fast, and the same numbers
/// for the same seed on every platform.
#[derive(Clone, Debug)]
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        Rng((z ^ (z >> 31)) | 1)
    }
    fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    /// Uniform in `0..n`.
    fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }
    fn percent(&mut self, p: u64) -> bool {
        self.below(100) < p
    }
}

// ---------------------------------------------------------------------------
// Counters. Each thread writes only its own cache-padded block (one writer,
// so a load and a store instead of a locked add); readers sum the blocks.

#[derive(Debug, Default)]
struct Counter(AtomicU64);

impl Counter {
    /// Single-writer increment. Release: whatever the writer did to the
    /// engine before is visible to a reader that sees the new value.
    fn add(&self, n: u64) {
        self.0
            .store(self.0.load(Ordering::Relaxed) + n, Ordering::Release);
    }
    fn get(&self) -> u64 {
        self.0.load(Ordering::Acquire)
    }
}

/// One shopper's figures.
#[derive(Debug)]
struct ShopperStats {
    carts: Counter,
    reserve_ok: Counter,
    rejected: Counter,
    committed: Counter,
    abandoned: Counter,
    left_to_expire: Counter,
    /// Commits or releases that found the cart already expired.
    late: Counter,
    errors: Counter,
    /// Units committed, per item (padded too: these live on the heap, next
    /// to other threads' counters).
    sold_units: Vec<CachePadded<Counter>>,
}

/// One POS terminal's figures.
#[derive(Debug)]
struct PosStats {
    sales: Counter,
    rejected: Counter,
    errors: Counter,
    sold_units: Vec<CachePadded<Counter>>,
}

fn per_item(n: usize) -> Vec<CachePadded<Counter>> {
    (0..n)
        .map(|_| CachePadded::new(Counter::default()))
        .collect()
}

/// Everything the threads share.
struct Run {
    engine: Arc<dyn Engine>,
    clock: Arc<ManualClock>,
    workload: Workload,
    config: Config,
    started: Instant,
    shoppers: Vec<CachePadded<ShopperStats>>,
    pos: Vec<CachePadded<PosStats>>,
    /// Units received per item (initial + restocks), counted before the
    /// restock reaches the engine so a reader never sees stock it cannot
    /// account for.
    received: Vec<AtomicU64>,
    restocks: AtomicU64,
    reaper_expired: AtomicU64,
    /// Shoppers stop at the deadline; everything else once shoppers are done.
    shoppers_stop: AtomicBool,
    background_stop: AtomicBool,
    monitor: MonitorStats,
    /// The first unexpected error or failed check, for the summary.
    first_problem: Mutex<Option<String>>,
}

#[derive(Debug, Default)]
struct MonitorStats {
    readings: AtomicU64,
    violations: AtomicU64,
    max_reserved_hot: AtomicU64,
}

impl Run {
    fn problem(&self, message: String) {
        let mut slot = self.first_problem.lock().unwrap_or_else(|e| e.into_inner());
        if slot.is_none() {
            *slot = Some(message);
        }
    }

    /// Units of `item` sold so far (committed carts + POS sales), as counted
    /// by the threads after the engine answered.
    fn sold(&self, item: usize) -> u64 {
        let carts: u64 = self.shoppers.iter().map(|s| s.sold_units[item].get()).sum();
        let pos: u64 = self.pos.iter().map(|s| s.sold_units[item].get()).sum();
        carts + pos
    }

    fn sum(&self, field: impl Fn(&ShopperStats) -> &Counter) -> u64 {
        self.shoppers.iter().map(|s| field(s).get()).sum()
    }

    /// Checks one reading of an item against the invariant and the books.
    /// `sold_before` was read before the level and `received_after` after it,
    /// so `sold_before + on_hand <= received_after` must hold.
    fn check_reading(&self, item: usize, sold_before: u64, level: &Level, received_after: u64) {
        self.monitor.readings.fetch_add(1, Ordering::Relaxed);
        let on_hand = u64::from(level.on_hand);
        if level.reserved > level.on_hand || sold_before + on_hand > received_after {
            self.monitor.violations.fetch_add(1, Ordering::Relaxed);
            self.problem(format!(
                "monitor: {} read {level:?} with {sold_before} sold of {received_after} received",
                self.workload.items[item]
            ));
        }
        if item == 0 {
            self.monitor
                .max_reserved_hot
                .fetch_max(u64::from(level.reserved), Ordering::Relaxed);
        }
    }
}

// ---------------------------------------------------------------------------
// Threads

fn shopper(run: &Run, index: usize, carts: u64) {
    let stats = &run.shoppers[index];
    let mut rng = Rng::new(run.config.seed ^ (index as u64 + 1).wrapping_mul(0x9E37_79B9));
    let mut cart = Vec::with_capacity(4);
    let mut lines = Vec::with_capacity(4);
    for n in 0..carts {
        if n % 64 == 0 && run.shoppers_stop.load(Ordering::Relaxed) {
            break;
        }
        // Unique ids: the shopper in the high bits, its cart number below.
        let id = ReservationId(((index as u64 + 1) << 40) | n);
        let (channel, fate) = run.workload.next_cart(&mut rng, &mut cart);
        lines.clear();
        lines.extend(cart.iter().map(|&(item, qty)| {
            let key = run.workload.items[item];
            Line::new(key.sku, key.store, qty)
        }));
        match run.engine.reserve(id, channel, &lines, run.config.ttl_ms) {
            Ok(ack) if ack.state == ReservationState::Pending && !ack.replayed => {
                stats.reserve_ok.add(1);
                finish_cart(run, stats, id, fate, &cart);
            }
            Ok(ack) => {
                stats.errors.add(1);
                run.problem(format!("reserve of a fresh id answered {ack:?}"));
            }
            Err(Error::Insufficient { .. }) => stats.rejected.add(1),
            Err(e) => {
                stats.errors.add(1);
                run.problem(format!("reserve {id}: unexpected error: {e}"));
            }
        }
        stats.carts.add(1);
    }
}

fn finish_cart(
    run: &Run,
    stats: &ShopperStats,
    id: ReservationId,
    fate: Fate,
    cart: &[(usize, u32)],
) {
    match fate {
        Fate::Commit => match run.engine.commit(id) {
            Ok(ack) if ack.state == ReservationState::Committed && !ack.replayed => {
                stats.committed.add(1);
                for &(item, qty) in cart {
                    stats.sold_units[item].add(u64::from(qty));
                }
            }
            Err(Error::Expired { .. }) => stats.late.add(1),
            other => {
                stats.errors.add(1);
                run.problem(format!("commit {id}: unexpected answer {other:?}"));
            }
        },
        Fate::Abandon => match run.engine.release(id) {
            Ok(ack) if ack.state == ReservationState::Released && !ack.replayed => {
                stats.abandoned.add(1)
            }
            Ok(ack) if ack.state == ReservationState::Expired => stats.late.add(1),
            other => {
                stats.errors.add(1);
                run.problem(format!("release {id}: unexpected answer {other:?}"));
            }
        },
        Fate::LeaveToExpire => stats.left_to_expire.add(1),
    }
}

fn pos_terminal(run: &Run, index: usize) {
    let stats = &run.pos[index];
    let mut rng = Rng::new(run.config.seed ^ 0xB0B0 ^ (index as u64) << 32);
    while !run.background_stop.load(Ordering::Relaxed) {
        let (item, qty) = run.workload.next_sale(&mut rng);
        let key = run.workload.items[item];
        match run.engine.sell(key, qty, Channel::InStore) {
            Ok(_) => {
                stats.sales.add(1);
                stats.sold_units[item].add(u64::from(qty));
            }
            Err(Error::Insufficient { .. }) => stats.rejected.add(1),
            Err(e) => {
                stats.errors.add(1);
                run.problem(format!("sell {key}: unexpected error: {e}"));
            }
        }
        // A busy till: a sale every half millisecond or so.
        thread::sleep(Duration::from_micros(500));
    }
}

/// Drives time (the clock follows the run's elapsed milliseconds), reaps
/// overdue carts and restocks the hot item now and then.
fn reaper_and_supplier(run: &Run) {
    let mut next_restock = run.workload.restock_every;
    while !run.background_stop.load(Ordering::Relaxed) {
        let elapsed = run.started.elapsed();
        run.clock.set(elapsed.as_millis() as u64);
        let expired = run.engine.expire();
        run.reaper_expired.fetch_add(expired, Ordering::SeqCst);
        if elapsed >= next_restock
            && run.restocks.load(Ordering::SeqCst) < u64::from(run.workload.max_restocks)
        {
            next_restock += run.workload.restock_every;
            restock(run, 0, run.workload.restock_qty);
            run.restocks.fetch_add(1, Ordering::SeqCst);
        }
        thread::sleep(Duration::from_millis(2));
    }
}

/// Counts the units as received first, then hands them to the engine.
fn restock(run: &Run, item: usize, qty: u32) {
    run.received[item].fetch_add(u64::from(qty), Ordering::SeqCst);
    if let Err(e) = run.engine.restock(run.workload.items[item], qty) {
        run.received[item].fetch_sub(u64::from(qty), Ordering::SeqCst);
        run.problem(format!("restock: unexpected error: {e}"));
    }
}

fn monitor(run: &Run) {
    while !run.background_stop.load(Ordering::Relaxed) {
        for (item, &key) in run.workload.items.iter().enumerate() {
            let sold_before = run.sold(item);
            match run.engine.level(key) {
                Ok(level) => {
                    let received_after = run.received[item].load(Ordering::SeqCst);
                    run.check_reading(item, sold_before, &level, received_after);
                }
                Err(e) => run.problem(format!("monitor: level of {key}: {e}")),
            }
        }
        thread::sleep(Duration::from_micros(50));
    }
}

fn progress_line(run: &Run) -> String {
    let elapsed = run.started.elapsed().as_secs_f64();
    let carts = run.sum(|s| &s.carts);
    let sold: u64 = (0..run.workload.items.len()).map(|i| run.sold(i)).sum();
    let hot = run.engine.level(run.workload.items[0]).unwrap_or_default();
    format!(
        "[{elapsed:6.1}s] carts {carts}/{} ({:.0}/s)  reserved ok {}  rejected {}  units sold {sold}  hot on_hand {} reserved {}",
        run.config.ops,
        carts as f64 / elapsed.max(1e-9),
        run.sum(|s| &s.reserve_ok),
        run.sum(|s| &s.rejected),
        hot.on_hand,
        hot.reserved,
    )
}

// ---------------------------------------------------------------------------
// The run and its proof

/// The figures of one engine's run.
#[derive(Debug)]
struct Report {
    engine: &'static str,
    workload: &'static str,
    threads: usize,
    ops: u64,
    reserve_ok: u64,
    reserve_rejected: u64,
    committed: u64,
    released: u64,
    expired: u64,
    oversold: u64,
    elapsed_s: f64,
    ops_per_s: f64,
    failures: Vec<String>,
}

impl Report {
    fn json(&self) -> String {
        format!(
            "{{\"engine\":\"{}\",\"workload\":\"{}\",\"threads\":{},\"ops\":{},\"reserve_ok\":{},\"reserve_rejected\":{},\"committed\":{},\"released\":{},\"expired\":{},\"oversold\":{},\"elapsed_s\":{:.3},\"ops_per_s\":{:.0},\"checks_passed\":{}}}",
            self.engine,
            self.workload,
            self.threads,
            self.ops,
            self.reserve_ok,
            self.reserve_rejected,
            self.committed,
            self.released,
            self.expired,
            self.oversold,
            self.elapsed_s,
            self.ops_per_s,
            self.failures.is_empty(),
        )
    }
}

fn run_one(config: &Config, engine_name: &str) -> Result<Report, String> {
    let workload = Workload::from_name(&config.workload, config.stock)?;
    let clock = Arc::new(ManualClock::new());
    let engine = make_engine(engine_name, Arc::clone(&clock), config.ttl_ms)?;
    let n_items = workload.items.len();
    let run = Run {
        engine,
        clock,
        config: config.clone(),
        started: Instant::now(),
        shoppers: (0..config.threads)
            .map(|_| {
                CachePadded::new(ShopperStats {
                    carts: Counter::default(),
                    reserve_ok: Counter::default(),
                    rejected: Counter::default(),
                    committed: Counter::default(),
                    abandoned: Counter::default(),
                    left_to_expire: Counter::default(),
                    late: Counter::default(),
                    errors: Counter::default(),
                    sold_units: per_item(n_items),
                })
            })
            .collect(),
        pos: (0..config.pos_threads)
            .map(|_| {
                CachePadded::new(PosStats {
                    sales: Counter::default(),
                    rejected: Counter::default(),
                    errors: Counter::default(),
                    sold_units: per_item(n_items),
                })
            })
            .collect(),
        received: (0..n_items).map(|_| AtomicU64::new(0)).collect(),
        restocks: AtomicU64::new(0),
        reaper_expired: AtomicU64::new(0),
        shoppers_stop: AtomicBool::new(false),
        background_stop: AtomicBool::new(false),
        monitor: MonitorStats::default(),
        first_problem: Mutex::new(None),
        workload,
    };

    // Stock the shelves before the doors open.
    for (item, &key) in run.workload.items.iter().enumerate() {
        run.engine
            .set_safety_stock(key, run.workload.safety_stock[item]);
        restock(&run, item, run.workload.initial_stock[item]);
    }

    let mut elapsed = Duration::ZERO;
    thread::scope(|scope| {
        let run = &run;
        let background = [
            scope.spawn(move || reaper_and_supplier(run)),
            scope.spawn(move || monitor(run)),
        ];
        let pos: Vec<_> = (0..config.pos_threads)
            .map(|i| scope.spawn(move || pos_terminal(run, i)))
            .collect();
        let started = Instant::now();
        let shoppers: Vec<_> = (0..config.threads)
            .map(|i| {
                let share = config.ops / config.threads as u64
                    + u64::from((i as u64) < config.ops % config.threads as u64);
                scope.spawn(move || shopper(run, i, share))
            })
            .collect();
        let mut next_progress = Duration::from_millis(500);
        while shoppers.iter().any(|h| !h.is_finished()) {
            thread::sleep(Duration::from_millis(5));
            let now = started.elapsed();
            if now >= config.duration {
                run.shoppers_stop.store(true, Ordering::Relaxed);
            }
            if config.progress && now >= next_progress {
                next_progress += Duration::from_millis(500);
                eprintln!("{}", progress_line(run));
            }
        }
        for h in shoppers {
            if h.join().is_err() {
                run.problem("a shopper thread panicked".into());
            }
        }
        elapsed = started.elapsed();
        run.background_stop.store(true, Ordering::Relaxed);
        for h in pos.into_iter().chain(background) {
            if h.join().is_err() {
                run.problem("a background thread panicked".into());
            }
        }
    });
    if config.progress {
        eprintln!("{}", progress_line(&run));
    }

    // Close the doors: let every cart still pending run out, then reap.
    let end_of_time = run.clock.now_ms() + config.ttl_ms + 1;
    run.clock.set(end_of_time);
    let final_sweep = run.engine.expire();
    let expired_by_reaper = run.reaper_expired.load(Ordering::SeqCst) + final_sweep;

    Ok(prove(&run, elapsed, expired_by_reaper))
}

/// Counts everything and checks the books; every failed check is listed.
fn prove(run: &Run, elapsed: Duration, expired_by_reaper: u64) -> Report {
    let mut failures = Vec::new();
    let mut out = String::new();
    let carts = run.sum(|s| &s.carts);
    let reserve_ok = run.sum(|s| &s.reserve_ok);
    let rejected = run.sum(|s| &s.rejected);
    let committed = run.sum(|s| &s.committed);
    let abandoned = run.sum(|s| &s.abandoned);
    let left = run.sum(|s| &s.left_to_expire);
    let late = run.sum(|s| &s.late);
    let errors = run.sum(|s| &s.errors) + run.pos.iter().map(|p| p.errors.get()).sum::<u64>();
    let pos_sales: u64 = run.pos.iter().map(|p| p.sales.get()).sum();
    let pos_rejected: u64 = run.pos.iter().map(|p| p.rejected.get()).sum();

    let _ = writeln!(
        out,
        "flash sale: engine {}, workload {}, {} shoppers + {} POS, seed {}",
        run.engine.name(),
        run.workload.name,
        run.config.threads,
        run.config.pos_threads,
        run.config.seed
    );
    let _ = writeln!(
        out,
        "  carts {carts} in {:.3} s ({:.0} carts/s)",
        elapsed.as_secs_f64(),
        carts as f64 / elapsed.as_secs_f64().max(1e-9)
    );
    let _ = writeln!(
        out,
        "  reserved {reserve_ok}, rejected {rejected} (insufficient)"
    );
    let _ = writeln!(out, "  of the reserved: committed {committed}, abandoned {abandoned}, left to expire {left}, expired before commit/release {late}");
    let _ = writeln!(out, "  expired by expire(): {expired_by_reaper}; POS sales {pos_sales}, rejected {pos_rejected}; restocks {}", run.restocks.load(Ordering::SeqCst));
    let _ = writeln!(
        out,
        "  monitor: {} readings, {} violations, hot item reserved at most {}",
        run.monitor.readings.load(Ordering::Relaxed),
        run.monitor.violations.load(Ordering::Relaxed),
        run.monitor.max_reserved_hot.load(Ordering::Relaxed)
    );
    let _ = writeln!(
        out,
        "  reservations remembered at the end: {}",
        run.engine.reservations_remembered()
    );
    let _ = writeln!(
        out,
        "  {:<8} {:>10} {:>10} {:>10} {:>10} {:>8}",
        "item", "received", "sold", "on_hand", "reserved", "safety"
    );

    let mut oversold = 0;
    for (item, &key) in run.workload.items.iter().enumerate() {
        let received = run.received[item].load(Ordering::SeqCst);
        let sold = run.sold(item);
        let level = match run.engine.level(key) {
            Ok(level) => level,
            Err(e) => {
                failures.push(format!("{key}: level failed: {e}"));
                continue;
            }
        };
        let on_hand = u64::from(level.on_hand);
        let reserved = u64::from(level.reserved);
        let _ = writeln!(
            out,
            "  sku {:<4} {received:>10} {sold:>10} {on_hand:>10} {reserved:>10} {:>8}",
            key.sku.0, level.safety_stock
        );
        oversold += sold.saturating_sub(received);
        if sold > received {
            failures.push(format!(
                "{key}: OVERSOLD: {sold} units sold of {received} received"
            ));
        }
        if received != on_hand + sold {
            failures.push(format!("{key}: units not conserved: received {received} != on_hand {on_hand} + sold {sold}"));
        }
        if sold + reserved > received {
            failures.push(format!(
                "{key}: sold {sold} + held {reserved} > received {received}"
            ));
        }
        if reserved != 0 {
            failures.push(format!(
                "{key}: {reserved} units still reserved after every cart ended"
            ));
        }
    }
    let monitor_violations = run.monitor.violations.load(Ordering::Relaxed);
    if monitor_violations > 0 {
        failures.push(format!("monitor saw {monitor_violations} readings with reserved > on_hand or sold + on_hand > received"));
    }
    if run.monitor.readings.load(Ordering::Relaxed) == 0 {
        failures.push("monitor took no readings".into());
    }
    if reserve_ok + rejected + errors < carts {
        failures.push(format!(
            "{carts} carts but only {} reserve answers counted",
            reserve_ok + rejected + errors
        ));
    }
    if reserve_ok != committed + abandoned + left + late {
        failures.push(format!("reserved carts {reserve_ok} != committed {committed} + abandoned {abandoned} + left {left} + late {late}"));
    }
    // Carts left alone can only end through expire(); a late cart was
    // expired either by expire() or lazily by its own commit or release.
    if expired_by_reaper < left || expired_by_reaper > left + late {
        failures.push(format!(
            "expire() expired {expired_by_reaper} reservations; expected between {left} and {}",
            left + late
        ));
    }
    if errors > 0 {
        failures.push(format!("{errors} unexpected answers"));
    }
    if let Some(problem) = run
        .first_problem
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .take()
    {
        failures.push(format!("first problem seen: {problem}"));
    }
    if failures.is_empty() {
        let _ = writeln!(out, "  checks: PASS (received = on_hand + sold for every item, nothing held at the end, monitor clean, every cart accounted for)");
    } else {
        for failure in &failures {
            let _ = writeln!(out, "  FAIL: {failure}");
        }
    }
    print!("{out}");

    let secs = elapsed.as_secs_f64();
    Report {
        engine: run.engine.name(),
        workload: run.workload.name,
        threads: run.config.threads,
        ops: carts,
        reserve_ok,
        reserve_rejected: rejected,
        committed,
        released: abandoned,
        expired: left + late,
        oversold,
        elapsed_s: secs,
        ops_per_s: carts as f64 / secs.max(1e-9),
        failures,
    }
}

fn main() -> ExitCode {
    let config = match Config::from_args(std::env::args().skip(1)) {
        Ok(config) => config,
        Err(message) => {
            if message.is_empty() {
                println!("{USAGE}");
                return ExitCode::SUCCESS;
            }
            eprintln!("flash_sale: {message}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let mut ok = true;
    for engine in config
        .engine
        .split(',')
        .map(str::trim)
        .filter(|e| !e.is_empty())
    {
        match run_one(&config, engine) {
            Ok(report) => {
                ok &= report.failures.is_empty() && report.oversold == 0;
                println!("{}", report.json());
            }
            Err(message) => {
                eprintln!("flash_sale: {message}");
                return ExitCode::from(2);
            }
        }
    }
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

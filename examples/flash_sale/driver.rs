//! One engine's run of a workload, and the proof by counting that nothing
//! was oversold.
//!
//! Threads: `threads` shoppers (each driving one in-process client, or its
//! share of a server engine's connections with one request in flight per
//! connection), `pos_threads` point-of-sale terminals selling in store, a
//! reaper that drives the shared manual clock, calls expire and restocks the
//! hottest item now and then, and a monitor that reads levels throughout.
//!
//! Every unit is counted outside the engine: units received (initial stock
//! and restocks, counted before the engine gets them) and units sold
//! (committed carts and POS sales, counted after the engine confirmed them),
//! per item and per thread. At the end, for every item, received = on_hand +
//! sold and nothing is reserved; during the run the monitor checks
//! `reserved <= on_hand` and `sold + on_hand <= received` on every reading.

use crate::engines::{Answer, Client, Engine, Op, Stock};
use crate::workload::{scramble, Fate, Rng, Step, Workload};
use crossbeam_utils::CachePadded;
use hdrhistogram::Histogram;
use omnistock::{Channel, Clock, ManualClock};
use std::fmt::Write as _;
use std::io::Write as _;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Barrier, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// How a run is driven (the same for every engine).
#[derive(Clone, Debug)]
pub struct Settings {
    pub threads: usize,
    pub ops: u64,
    pub duration: Duration,
    pub seed: u64,
    pub ids: Ids,
    pub ttl_ms: u64,
    pub pos_threads: usize,
    /// Time one reserve in this many (in-process engines; server engines
    /// time every reserve).
    pub latency_every: u64,
    pub progress: bool,
}

/// How carts are numbered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ids {
    /// Each shopper numbers its own carts in sequence (order numbers from
    /// one checkout process).
    Sequential,
    /// Scrambled (see `workload::scramble`): ids with no order at all, like
    /// hashed UUIDs.
    Random,
    /// One sequence shared by every shopper (order numbers from one
    /// database sequence): the carts in flight at once have neighbouring
    /// ids.
    Shared,
}

impl Ids {
    pub fn name(self) -> &'static str {
        match self {
            Ids::Sequential => "sequential",
            Ids::Random => "random",
            Ids::Shared => "shared",
        }
    }
}

/// A counter with one writer: a load and a store instead of a locked add.
#[derive(Debug, Default)]
struct Counter(AtomicU64);

impl Counter {
    #[inline]
    fn add(&self, n: u64) {
        self.0
            .store(self.0.load(Ordering::Relaxed) + n, Ordering::Release);
    }
    fn get(&self) -> u64 {
        self.0.load(Ordering::Acquire)
    }
}

/// One thread's figures (a shopper or a POS terminal).
#[derive(Debug)]
struct Stats {
    ops: Counter,
    carts: Counter,
    reserve_ok: Counter,
    rejected: Counter,
    committed: Counter,
    released: Counter,
    left_to_expire: Counter,
    /// Commits or releases that found their cart already expired.
    late: Counter,
    sales: Counter,
    sales_rejected: Counter,
    restocks: Counter,
    errors: Counter,
    /// Units sold per item by this thread (u32: half the cache footprint
    /// of the counting, which every engine pays alike).
    sold: Box<[AtomicU32]>,
}

impl Stats {
    fn new(items: u32) -> Stats {
        Stats {
            ops: Counter::default(),
            carts: Counter::default(),
            reserve_ok: Counter::default(),
            rejected: Counter::default(),
            committed: Counter::default(),
            released: Counter::default(),
            left_to_expire: Counter::default(),
            late: Counter::default(),
            sales: Counter::default(),
            sales_rejected: Counter::default(),
            restocks: Counter::default(),
            errors: Counter::default(),
            sold: (0..items).map(|_| AtomicU32::new(0)).collect(),
        }
    }

    #[inline]
    fn sold(&self, item: u32, qty: u32) {
        let cell = &self.sold[item as usize];
        // Per thread and item, at most the units the item ever received,
        // which its engine keeps in a u32.
        cell.store(cell.load(Ordering::Relaxed) + qty, Ordering::Release);
    }
}

#[derive(Debug, Default)]
struct MonitorStats {
    readings: AtomicU64,
    violations: AtomicU64,
    max_reserved_hot: AtomicU64,
}

/// Everything the threads share.
struct Shared<'a> {
    workload: &'a Workload,
    settings: &'a Settings,
    clock: Arc<ManualClock>,
    base: Instant,
    stats: Vec<CachePadded<Stats>>,
    received: Box<[AtomicU64]>,
    restocks: AtomicU64,
    reaper_expired: AtomicU64,
    stop_shoppers: AtomicBool,
    stop_background: AtomicBool,
    monitor: MonitorStats,
    problems: AtomicU64,
    first_problem: Mutex<Option<String>>,
    /// The next cart id with `Ids::Shared`.
    next_id: CachePadded<AtomicU64>,
}

/// Unexpected answers after which the run gives up (a dead server).
const MAX_PROBLEMS: u64 = 1000;

impl Shared<'_> {
    fn problem(&self, message: String) {
        if self.problems.fetch_add(1, Ordering::Relaxed) + 1 >= MAX_PROBLEMS {
            self.stop_shoppers.store(true, Ordering::Relaxed);
        }
        let mut slot = self.first_problem.lock().unwrap_or_else(|e| e.into_inner());
        if slot.is_none() {
            *slot = Some(message);
        }
    }

    fn sold(&self, item: u32) -> u64 {
        self.stats
            .iter()
            .map(|s| u64::from(s.sold[item as usize].load(Ordering::Acquire)))
            .sum()
    }

    fn sum(&self, field: impl Fn(&Stats) -> &Counter) -> u64 {
        self.stats.iter().map(|s| field(s).get()).sum()
    }

    /// Counts units as received before the engine gets them.
    fn receive(&self, item: u32, qty: u32) {
        self.received[item as usize].fetch_add(u64::from(qty), Ordering::SeqCst);
    }

    fn unreceive(&self, item: u32, qty: u32) {
        self.received[item as usize].fetch_sub(u64::from(qty), Ordering::SeqCst);
    }

    /// One reading of an item: `sold_before` was read before the level and
    /// `received_after` after it, so `sold_before + on_hand <=
    /// received_after` must hold, and `reserved <= on_hand` always.
    fn check_reading(&self, item: u32, sold_before: u64, level: &Stock, received_after: u64) {
        self.monitor.readings.fetch_add(1, Ordering::Relaxed);
        if level.reserved > level.on_hand || sold_before + level.on_hand > received_after {
            self.monitor.violations.fetch_add(1, Ordering::Relaxed);
            self.problem(format!(
                "monitor: item {item} read {level:?} with {sold_before} sold of {received_after} received"
            ));
        }
        if item == self.workload.hottest() {
            self.monitor
                .max_reserved_hot
                .fetch_max(level.reserved, Ordering::Relaxed);
        }
    }
}

/// What a connection (or in-process client) is doing.
#[derive(Clone, Copy, Debug)]
enum Task {
    Idle,
    Reserve {
        id: u64,
        channel: Channel,
        fate: Fate,
        timed: bool,
    },
    Commit {
        id: u64,
    },
    Release {
        id: u64,
        /// An `atomic-limit` cart left to expire: undone by its shopper.
        as_expiry: bool,
    },
    Sell {
        item: u32,
        qty: u32,
    },
    Restock {
        item: u32,
        qty: u32,
    },
}

impl Task {
    fn op<'c>(self, cart: &'c [(u32, u32)], ttl_ms: u64) -> Op<'c> {
        match self {
            Task::Reserve { id, channel, .. } => Op::Reserve {
                id,
                channel,
                lines: cart,
                ttl_ms,
            },
            Task::Commit { id } => Op::Commit { id, lines: cart },
            Task::Release { id, .. } => Op::Release { id, lines: cart },
            Task::Sell { item, qty } => Op::Sell {
                item,
                qty,
                channel: Channel::InStore,
            },
            Task::Restock { item, qty } => Op::Restock { item, qty },
            Task::Idle => unreachable!("an idle slot sends nothing"),
        }
    }

    fn timed(self) -> bool {
        matches!(self, Task::Reserve { timed: true, .. })
    }
}

/// One connection's state in a shopper thread.
struct Slot<C> {
    client: C,
    id_base: u64,
    carts: u64,
    cart: Vec<(u32, u32)>,
    task: Task,
    sent_at: Option<Instant>,
}

/// A shopper thread's private state.
struct Shopper<'s, 'a, E: Engine> {
    shared: &'s Shared<'a>,
    stats: &'s Stats,
    rng: Rng,
    budget: u64,
    issued: u64,
    reserves: u64,
    latency_every: u64,
    _engine: std::marker::PhantomData<fn(&E)>,
}

impl<E: Engine> Shopper<'_, '_, E> {
    /// Starts a new step on `slot` unless the budget is spent or the run is
    /// stopping; false if not.
    fn start(&mut self, slot: &mut Slot<E::Client>) -> bool {
        if self.issued >= self.budget
            || (self.issued % 64 == 0 && self.shared.stop_shoppers.load(Ordering::Relaxed))
        {
            return false;
        }
        self.issued += 1;
        slot.task = match self.shared.workload.next(&mut self.rng, &mut slot.cart) {
            Step::Cart { channel, fate } => {
                let id = match self.shared.settings.ids {
                    Ids::Sequential => slot.id_base | slot.carts,
                    Ids::Random => scramble(slot.id_base | slot.carts),
                    Ids::Shared => self.shared.next_id.fetch_add(1, Ordering::Relaxed),
                };
                slot.carts += 1;
                self.reserves += 1;
                Task::Reserve {
                    id,
                    channel,
                    fate,
                    timed: self.reserves % self.latency_every == 0,
                }
            }
            Step::Sell { item, qty } => Task::Sell { item, qty },
            Step::Restock { item, qty } => {
                self.shared.receive(item, qty);
                Task::Restock { item, qty }
            }
        };
        true
    }

    /// Counts an answer; returns the cart's next task.
    #[inline]
    fn handle(&self, task: Task, answer: Answer, cart: &[(u32, u32)]) -> Task {
        let st = self.stats;
        match task {
            Task::Reserve { id, fate, .. } => {
                st.carts.add(1);
                st.ops.add(1);
                match answer {
                    Answer::Ok => {
                        st.reserve_ok.add(1);
                        match fate {
                            Fate::Commit => Task::Commit { id },
                            Fate::Abandon => Task::Release {
                                id,
                                as_expiry: false,
                            },
                            Fate::LeaveToExpire if E::HAS_EXPIRY => {
                                st.left_to_expire.add(1);
                                Task::Idle
                            }
                            Fate::LeaveToExpire => Task::Release {
                                id,
                                as_expiry: true,
                            },
                        }
                    }
                    Answer::Insufficient => {
                        st.rejected.add(1);
                        Task::Idle
                    }
                    other => self.unexpected(format!("reserve {id}: {other:?}")),
                }
            }
            Task::Commit { id } => {
                match answer {
                    Answer::Ok => {
                        st.committed.add(1);
                        for &(item, qty) in cart {
                            st.sold(item, qty);
                        }
                    }
                    Answer::Expired => st.late.add(1),
                    other => {
                        self.unexpected(format!("commit {id}: {other:?}"));
                    }
                }
                Task::Idle
            }
            Task::Release { id, as_expiry } => {
                match answer {
                    Answer::Ok if as_expiry => st.left_to_expire.add(1),
                    Answer::Ok => st.released.add(1),
                    Answer::Expired => st.late.add(1),
                    other => {
                        self.unexpected(format!("release {id}: {other:?}"));
                    }
                }
                Task::Idle
            }
            Task::Sell { item, qty } => {
                st.ops.add(1);
                match answer {
                    Answer::Ok => {
                        st.sales.add(1);
                        st.sold(item, qty);
                    }
                    Answer::Insufficient => st.sales_rejected.add(1),
                    other => {
                        self.unexpected(format!("sell {item}: {other:?}"));
                    }
                }
                Task::Idle
            }
            Task::Restock { item, qty } => {
                st.ops.add(1);
                match answer {
                    Answer::Ok => st.restocks.add(1),
                    other => {
                        self.shared.unreceive(item, qty);
                        self.unexpected(format!("restock {item}: {other:?}"));
                    }
                }
                Task::Idle
            }
            Task::Idle => Task::Idle,
        }
    }

    #[cold]
    fn unexpected(&self, message: String) -> Task {
        self.stats.errors.add(1);
        self.shared.problem(message);
        Task::Idle
    }

    /// One in-process client: plain calls.
    fn run_single(&mut self, slot: &mut Slot<E::Client>, latency: &mut Histogram<u64>) {
        let ttl = self.shared.settings.ttl_ms;
        loop {
            if matches!(slot.task, Task::Idle) && !self.start(slot) {
                return;
            }
            let task = slot.task;
            let answer = if task.timed() {
                let started = Instant::now();
                let answer = slot.client.call(task.op(&slot.cart, ttl));
                latency.saturating_record(started.elapsed().as_nanos() as u64);
                answer
            } else {
                slot.client.call(task.op(&slot.cart, ttl))
            };
            slot.task = self.handle(task, answer, &slot.cart);
        }
    }

    /// Several connections: in each round every connection sends its next
    /// request, then every answer is read.
    fn run_multi(&mut self, slots: &mut [Slot<E::Client>], latency: &mut Histogram<u64>) {
        let ttl = self.shared.settings.ttl_ms;
        loop {
            let mut in_flight = 0;
            for slot in slots.iter_mut() {
                if matches!(slot.task, Task::Idle) && !self.start(slot) {
                    continue;
                }
                slot.sent_at = slot.task.timed().then(Instant::now);
                slot.client.send(slot.task.op(&slot.cart, ttl));
                in_flight += 1;
            }
            if in_flight == 0 {
                return;
            }
            for slot in slots.iter_mut() {
                if matches!(slot.task, Task::Idle) {
                    continue;
                }
                let answer = slot.client.recv();
                if let Some(sent) = slot.sent_at.take() {
                    latency.saturating_record(sent.elapsed().as_nanos() as u64);
                }
                slot.task = self.handle(slot.task, answer, &slot.cart);
            }
        }
    }
}

/// The figures of one engine's run.
#[derive(Debug)]
pub struct Report {
    pub engine: &'static str,
    pub workload: &'static str,
    pub threads: usize,
    pub connections: usize,
    pub items: u32,
    pub seed: u64,
    pub ids: &'static str,
    pub ops: u64,
    pub carts: u64,
    pub reserve_ok: u64,
    pub reserve_rejected: u64,
    pub committed: u64,
    pub released: u64,
    pub expired: u64,
    pub pos_sales: u64,
    pub restocks: u64,
    pub oversold: u64,
    pub elapsed_s: f64,
    pub ops_per_s: f64,
    pub p50_ns: u64,
    pub p99_ns: u64,
    pub p999_ns: u64,
    pub max_ns: u64,
    pub latency_samples: u64,
    pub remembered: u64,
    pub failures: Vec<String>,
}

impl Report {
    pub fn json(&self) -> String {
        format!(
            concat!(
                "{{\"engine\":\"{}\",\"workload\":\"{}\",\"threads\":{},\"connections\":{},",
                "\"items\":{},\"seed\":{},\"ids\":\"{}\",\"ops\":{},\"carts\":{},\"reserve_ok\":{},",
                "\"reserve_rejected\":{},\"committed\":{},\"released\":{},\"expired\":{},",
                "\"pos_sales\":{},\"restocks\":{},\"oversold\":{},\"elapsed_s\":{:.3},",
                "\"ops_per_s\":{:.0},\"p50_ns\":{},\"p99_ns\":{},\"p999_ns\":{},\"max_ns\":{},",
                "\"latency_samples\":{},\"remembered_at_end\":{},\"checks_passed\":{}}}"
            ),
            self.engine,
            self.workload,
            self.threads,
            self.connections,
            self.items,
            self.seed,
            self.ids,
            self.ops,
            self.carts,
            self.reserve_ok,
            self.reserve_rejected,
            self.committed,
            self.released,
            self.expired,
            self.pos_sales,
            self.restocks,
            self.oversold,
            self.elapsed_s,
            self.ops_per_s,
            self.p50_ns,
            self.p99_ns,
            self.p999_ns,
            self.max_ns,
            self.latency_samples,
            self.remembered,
            self.failures.is_empty() && self.oversold == 0,
        )
    }
}

fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 600_000_000_000, 3).expect("valid histogram bounds")
}

/// Runs `workload` on `engine` and proves the books. `Err` when the run
/// could not happen at all (e.g. no connection).
pub fn run<E: Engine>(
    engine: &E,
    workload: &Workload,
    settings: &Settings,
    clock: Arc<ManualClock>,
) -> Result<Report, String> {
    let items = workload.items();
    let threads = settings.threads;
    let shared = Shared {
        workload,
        settings,
        clock,
        base: Instant::now(),
        stats: (0..threads + settings.pos_threads)
            .map(|_| CachePadded::new(Stats::new(items)))
            .collect(),
        received: (0..items).map(|_| AtomicU64::new(0)).collect(),
        restocks: AtomicU64::new(0),
        reaper_expired: AtomicU64::new(0),
        stop_shoppers: AtomicBool::new(false),
        stop_background: AtomicBool::new(false),
        monitor: MonitorStats::default(),
        problems: AtomicU64::new(0),
        first_problem: Mutex::new(None),
        next_id: CachePadded::new(AtomicU64::new(1 << 40)),
    };

    // Stock the shelves before the doors open.
    for (item, spec) in workload.specs.iter().enumerate() {
        shared.received[item].store(u64::from(spec.stock), Ordering::SeqCst);
    }
    engine.stock(&workload.specs)?;

    let latency_every = if engine.connections() > 0 {
        1
    } else {
        settings.latency_every.max(1)
    };
    let barrier = Barrier::new(threads + 1);
    let mut elapsed = Duration::ZERO;
    let mut latency = new_histogram();
    let mut setup_error = None;
    thread::scope(|scope| {
        let shared = &shared;
        let barrier = &barrier;
        let background = [
            scope.spawn(move || reaper(engine, shared)),
            scope.spawn(move || monitor(engine, shared)),
        ];
        let pos: Vec<_> = (0..settings.pos_threads)
            .map(|i| scope.spawn(move || pos_terminal(engine, shared, threads + i)))
            .collect();
        let mut first_slot = 0;
        let shoppers: Vec<_> = (0..threads)
            .map(|t| {
                let slots = engine.slots(threads, t);
                let first = first_slot;
                first_slot += slots;
                let budget = settings.ops / threads as u64
                    + u64::from((t as u64) < settings.ops % threads as u64);
                scope.spawn(move || -> Result<(Histogram<u64>, Instant), String> {
                    let clients: Result<Vec<_>, String> =
                        (0..slots).map(|_| engine.client()).collect();
                    barrier.wait();
                    let mut slots: Vec<Slot<E::Client>> = clients?
                        .into_iter()
                        .enumerate()
                        .map(|(k, client)| Slot {
                            client,
                            id_base: ((first + k) as u64 + 1) << 40,
                            carts: 0,
                            cart: Vec::with_capacity(4),
                            task: Task::Idle,
                            sent_at: None,
                        })
                        .collect();
                    let mut shopper = Shopper::<E> {
                        shared,
                        stats: &shared.stats[t],
                        rng: Rng::new(settings.seed ^ (t as u64 + 1).wrapping_mul(0x9E37_79B9)),
                        budget,
                        issued: 0,
                        reserves: 0,
                        latency_every,
                        _engine: std::marker::PhantomData,
                    };
                    let mut latency = new_histogram();
                    if let [slot] = &mut slots[..] {
                        shopper.run_single(slot, &mut latency);
                    } else {
                        shopper.run_multi(&mut slots, &mut latency);
                    }
                    Ok((latency, Instant::now()))
                })
            })
            .collect();
        barrier.wait();
        let started = Instant::now();
        let mut next_progress = Duration::from_millis(250);
        let mut last = (Duration::ZERO, 0);
        while shoppers.iter().any(|h| !h.is_finished()) {
            thread::sleep(Duration::from_millis(10));
            let now = started.elapsed();
            if now >= settings.duration {
                shared.stop_shoppers.store(true, Ordering::Relaxed);
            }
            if settings.progress && now >= next_progress {
                next_progress += Duration::from_millis(250);
                let ops = shared.sum(|s| &s.ops);
                let rate = (ops - last.1) as f64 / (now - last.0).as_secs_f64().max(1e-9);
                last = (now, ops);
                eprint!("\r\x1b[K{}", progress_line::<E>(shared, now, ops, rate));
                let _ = std::io::stderr().flush();
            }
        }
        for h in shoppers {
            match h.join() {
                Ok(Ok((h, finished))) => {
                    let _ = latency.add(h);
                    elapsed = elapsed.max(finished.saturating_duration_since(started));
                }
                Ok(Err(e)) => setup_error = Some(e),
                Err(_) => shared.problem("a shopper thread panicked".into()),
            }
        }
        shared.stop_background.store(true, Ordering::Relaxed);
        for h in pos.into_iter().chain(background) {
            if h.join().is_err() {
                shared.problem("a background thread panicked".into());
            }
        }
    });
    if settings.progress {
        eprint!("\r\x1b[K");
    }
    if let Some(e) = setup_error {
        return Err(e);
    }

    // Close the doors: let every cart still pending run out, then reap.
    let mut control = engine.client()?;
    let end = shared.clock.now_ms() + settings.ttl_ms + 1;
    shared.clock.set(end);
    let mut final_sweep = 0;
    for _ in 0..100 {
        match control.call(Op::Expire) {
            Answer::Count(0) => break,
            Answer::Count(n) => final_sweep += n,
            other => {
                shared.problem(format!("final expire: {other:?}"));
                break;
            }
        }
    }
    let expired_by_reaper = shared.reaper_expired.load(Ordering::SeqCst) + final_sweep;
    let levels = engine.levels(items)?;
    let remembered = engine.remembered()?;
    Ok(prove::<E>(
        &shared,
        elapsed,
        expired_by_reaper,
        &levels,
        &latency,
        remembered,
        engine.connections(),
    ))
}

fn progress_line<E: Engine>(shared: &Shared<'_>, now: Duration, ops: u64, rate: f64) -> String {
    format!(
        "[{:5.1}s] {} {}: ops {ops} ({:.0}/s)  reserved {}  rejected {}  committed {}",
        now.as_secs_f64(),
        E::NAME,
        shared.workload.name,
        rate,
        shared.sum(|s| &s.reserve_ok),
        shared.sum(|s| &s.rejected),
        shared.sum(|s| &s.committed),
    )
}

/// Drives time (the clock follows the run's elapsed milliseconds), reaps
/// overdue carts and restocks the hottest item now and then.
fn reaper<E: Engine>(engine: &E, shared: &Shared<'_>) {
    let mut client = match engine.client() {
        Ok(client) => client,
        Err(e) => return shared.problem(format!("reaper: {e}")),
    };
    let workload = shared.workload;
    let mut next_restock = workload.restock_every;
    while !shared.stop_background.load(Ordering::Relaxed) {
        let elapsed = shared.base.elapsed();
        shared.clock.set(elapsed.as_millis() as u64);
        match client.call(Op::Expire) {
            Answer::Count(n) => {
                shared.reaper_expired.fetch_add(n, Ordering::SeqCst);
            }
            other => shared.problem(format!("expire: {other:?}")),
        }
        if elapsed >= next_restock
            && shared.restocks.load(Ordering::SeqCst) < u64::from(workload.max_restocks)
        {
            next_restock += workload.restock_every;
            let (item, qty) = (workload.supplier_item, workload.restock_qty);
            shared.receive(item, qty);
            match client.call(Op::Restock { item, qty }) {
                Answer::Ok => {
                    shared.restocks.fetch_add(1, Ordering::SeqCst);
                }
                other => {
                    shared.unreceive(item, qty);
                    shared.problem(format!("supplier restock: {other:?}"));
                }
            }
        }
        thread::sleep(Duration::from_millis(2));
    }
}

/// A busy till: a sale every half millisecond or so, in store.
fn pos_terminal<E: Engine>(engine: &E, shared: &Shared<'_>, index: usize) {
    let mut client = match engine.client() {
        Ok(client) => client,
        Err(e) => return shared.problem(format!("pos: {e}")),
    };
    let stats = &shared.stats[index];
    let mut rng = Rng::new(shared.settings.seed ^ 0xB0B0 ^ ((index as u64) << 32));
    while !shared.stop_background.load(Ordering::Relaxed) {
        let (item, qty) = shared.workload.next_sale(&mut rng);
        match client.call(Op::Sell {
            item,
            qty,
            channel: Channel::InStore,
        }) {
            Answer::Ok => {
                stats.sales.add(1);
                stats.sold(item, qty);
            }
            Answer::Insufficient => stats.sales_rejected.add(1),
            other => {
                stats.errors.add(1);
                shared.problem(format!("pos sell {item}: {other:?}"));
            }
        }
        thread::sleep(Duration::from_micros(500));
    }
}

/// Reads the hottest items on every pass and a window walking over the
/// others.
fn monitor<E: Engine>(engine: &E, shared: &Shared<'_>) {
    let mut client = match engine.client() {
        Ok(client) => client,
        Err(e) => return shared.problem(format!("monitor: {e}")),
    };
    let items = shared.workload.items();
    let mut cursor = 0;
    let mut check = |item: u32| {
        let sold_before = shared.sold(item);
        match client.call(Op::Level { item }) {
            Answer::Level(level) => {
                let received_after = shared.received[item as usize].load(Ordering::SeqCst);
                shared.check_reading(item, sold_before, &level, received_after);
            }
            other => shared.problem(format!("monitor: level of {item}: {other:?}")),
        }
    };
    // At least one pass, however short the run.
    loop {
        for item in 0..items.min(4) {
            check(item);
        }
        for _ in 0..32 {
            check(cursor);
            cursor = (cursor + 1) % items;
        }
        if shared.stop_background.load(Ordering::Relaxed) {
            return;
        }
        thread::sleep(Duration::from_millis(1));
    }
}

/// Counts everything and checks the books; every failed check is listed.
fn prove<E: Engine>(
    shared: &Shared<'_>,
    elapsed: Duration,
    expired_by_reaper: u64,
    levels: &[Stock],
    latency: &Histogram<u64>,
    remembered: u64,
    connections: usize,
) -> Report {
    let settings = shared.settings;
    let workload = shared.workload;
    let mut failures = Vec::new();
    let mut out = String::new();
    let ops = shared.sum(|s| &s.ops);
    let carts = shared.sum(|s| &s.carts);
    let reserve_ok = shared.sum(|s| &s.reserve_ok);
    let rejected = shared.sum(|s| &s.rejected);
    let committed = shared.sum(|s| &s.committed);
    let released = shared.sum(|s| &s.released);
    let left = shared.sum(|s| &s.left_to_expire);
    let late = shared.sum(|s| &s.late);
    let errors = shared.sum(|s| &s.errors);
    let sales = shared.sum(|s| &s.sales);
    let sales_rejected = shared.sum(|s| &s.sales_rejected);
    let inline_restocks = shared.sum(|s| &s.restocks);
    let supplier_restocks = shared.restocks.load(Ordering::SeqCst);
    let secs = elapsed.as_secs_f64();

    let _ = writeln!(
        out,
        "flash sale: engine {}, workload {}, {} items, {} shoppers{} + {} POS, seed {}",
        E::NAME,
        workload.name,
        workload.items(),
        settings.threads,
        if connections > 0 {
            format!(" over {connections} connections")
        } else {
            String::new()
        },
        settings.pos_threads,
        settings.seed
    );
    let _ = writeln!(
        out,
        "  ops {ops} in {secs:.3} s ({:.0} ops/s); carts {carts}: reserved {reserve_ok}, rejected {rejected}",
        ops as f64 / secs.max(1e-9)
    );
    let _ = writeln!(
        out,
        "  of the reserved: committed {committed}, released {released}, left to expire {left}, expired before commit/release {late}"
    );
    let _ = writeln!(
        out,
        "  expire() expired {expired_by_reaper}; POS sales {sales}, rejected {sales_rejected}; restocks {}; reservations remembered at the end {remembered}",
        inline_restocks + supplier_restocks
    );
    let _ = writeln!(
        out,
        "  reserve latency ({} samples): p50 {} ns, p99 {} ns, p99.9 {} ns, max {} ns",
        latency.len(),
        latency.value_at_quantile(0.5),
        latency.value_at_quantile(0.99),
        latency.value_at_quantile(0.999),
        latency.max()
    );
    let _ = writeln!(
        out,
        "  monitor: {} readings, {} violations, hottest item reserved at most {}",
        shared.monitor.readings.load(Ordering::Relaxed),
        shared.monitor.violations.load(Ordering::Relaxed),
        shared.monitor.max_reserved_hot.load(Ordering::Relaxed)
    );

    let mut oversold = 0;
    let (mut total_received, mut total_sold, mut total_on_hand) = (0u64, 0u64, 0u64);
    let mut shown = 0;
    for (item, level) in levels.iter().enumerate() {
        let item = item as u32;
        let received = shared.received[item as usize].load(Ordering::SeqCst);
        let sold = shared.sold(item);
        total_received += received;
        total_sold += sold;
        total_on_hand += level.on_hand;
        oversold += (sold + level.on_hand).saturating_sub(received);
        let mut bad = false;
        if sold + level.on_hand > received {
            bad = true;
            failures.push(format!(
                "item {item}: OVERSOLD: {sold} sold + {} on hand > {received} received",
                level.on_hand
            ));
        } else if received != level.on_hand + sold {
            bad = true;
            failures.push(format!(
                "item {item}: units not conserved: received {received} != on_hand {} + sold {sold}",
                level.on_hand
            ));
        }
        if level.reserved != 0 {
            bad = true;
            failures.push(format!(
                "item {item}: {} units still reserved after every cart ended",
                level.reserved
            ));
        }
        if shown < 4 || (bad && shown < 20) {
            shown += 1;
            if shown == 1 {
                let _ = writeln!(
                    out,
                    "  {:<8} {:>10} {:>10} {:>10} {:>10} {:>8}",
                    "item", "received", "sold", "on_hand", "reserved", "safety"
                );
            }
            let _ = writeln!(
                out,
                "  {item:<8} {received:>10} {sold:>10} {:>10} {:>10} {:>8}",
                level.on_hand, level.reserved, level.safety
            );
        }
    }
    if levels.len() > 4 {
        let _ = writeln!(
            out,
            "  all {} items: received {total_received} = on_hand {total_on_hand} + sold {total_sold}? {}",
            levels.len(),
            total_received == total_on_hand + total_sold
        );
    }
    failures.truncate(20);
    let violations = shared.monitor.violations.load(Ordering::Relaxed);
    if violations > 0 {
        failures.push(format!(
            "monitor saw {violations} readings with reserved > on_hand or sold + on_hand > received"
        ));
    }
    if shared.monitor.readings.load(Ordering::Relaxed) == 0 {
        failures.push("monitor took no readings".into());
    }
    if reserve_ok + rejected + errors < carts {
        failures.push(format!(
            "{carts} carts but only {} reserve answers counted",
            reserve_ok + rejected + errors
        ));
    }
    if errors == 0 && reserve_ok != committed + released + left + late {
        failures.push(format!(
            "reserved carts {reserve_ok} != committed {committed} + released {released} + left {left} + late {late}"
        ));
    }
    if E::HAS_EXPIRY {
        // Carts left alone end only through expire(); a late cart was
        // expired either by expire() or lazily by its own commit or release.
        if expired_by_reaper < left || expired_by_reaper > left + late {
            failures.push(format!(
                "expire() expired {expired_by_reaper} reservations; expected between {left} and {}",
                left + late
            ));
        }
    } else if expired_by_reaper != 0 {
        failures.push(format!(
            "{} has no deadlines but expire() expired {expired_by_reaper}",
            E::NAME
        ));
    }
    if errors > 0 {
        failures.push(format!("{errors} unexpected answers"));
    }
    if let Some(problem) = shared
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

    Report {
        engine: E::NAME,
        workload: workload.name,
        threads: settings.threads,
        connections,
        items: workload.items(),
        seed: settings.seed,
        ids: settings.ids.name(),
        ops,
        carts,
        reserve_ok,
        reserve_rejected: rejected,
        committed,
        released,
        expired: left + late,
        pos_sales: sales,
        restocks: inline_restocks + supplier_restocks,
        oversold,
        elapsed_s: secs,
        ops_per_s: ops as f64 / secs.max(1e-9),
        p50_ns: latency.value_at_quantile(0.5),
        p99_ns: latency.value_at_quantile(0.99),
        p999_ns: latency.value_at_quantile(0.999),
        max_ns: latency.max(),
        latency_samples: latency.len(),
        remembered,
        failures,
    }
}

//! A deterministic simulation of a store network on one engine.
//!
//! A seed drives everything: the catalogue (2-5 SKUs in 1-3 stores), the
//! cast (shoppers, POS terminals, a restock job, a cycle counter, the
//! reaper, the wall clock, an auditor) and the order in which their steps
//! interleave. Shoppers fill carts of 1-4 lines online or in store, then
//! commit, release, extend, resubmit the same reserve (a client retry), or
//! walk away and let the hold expire; some come back with an old id. POS
//! terminals sell over the counter, the restock job receives deliveries, the
//! cycle counter reads a level and corrects it (shrinkage, found units,
//! safety stock), the reaper calls `expire`, and the clock jumps by
//! milliseconds, minutes, a whole ttl or a whole retention window. The
//! fulfilment operations take part too: a quarter of the shoppers source
//! one SKU from the stores near them (`reserve_any`, split or not), a
//! commit is now and then partial, tills sell baskets, cycle counts are
//! often compare-and-set, and the auditor runs `check`. Campaigns and
//! alerts too: a seed may run a flash sale on its first item (a small
//! quota and per-customer limit, redefined now and then), which a sixth of
//! the shoppers join with a one-line cart under one of a few customer ids,
//! and give some items reorder points; the auditor takes the alerts.
//!
//! The engine runs single-threaded on a [`ManualClock`], so a seed replays
//! exactly. Every step is recorded as a replay-format request line (see
//! `docs/CONTRACT.md`) with the engine's answer and the levels after it.
//! A checker then replays the history against
//! [`ReferenceModel`](omnistock::model::ReferenceModel) and, at every step:
//!
//! - compares the answer (errors by name and fields, `invalid` by name);
//! - compares every item's level and the numbers of remembered and of
//!   pending reservations;
//! - checks the invariant, `reserved <= on_hand`, and that the available
//!   fields agree with it;
//! - keeps its own books ([`Conservation`](omnistock::model::Conservation))
//!   and checks them against the engine: per item,
//!   `on_hand = received (+ cycle-count deltas) - sold - committed`, and
//!   `reserved` = the units of the holds still live (made, not yet
//!   committed, released or expired, with expiry worked out from the
//!   deadlines the engine acknowledged), and `expire()` returns how many
//!   holds it ended;
//! - checks the request line parses back to the same request.
//!
//! Every seed ends by letting all holds run out (clock past every deadline,
//! `expire`), after which nothing may be reserved or pending.
//!
//! On a failure the test prints the seed and a minimal replay script: it
//! drops steps while the failure persists (bounded in time), saves the
//! script under `target/tmp/` and prints it with the model's and the
//! engine's answers; `cargo run --example replay < that-file` reproduces it.
//!
//! Runs: `cargo test --release --test simulation` (300 seeds; 60 in a debug
//! build); `SIM_SEEDS=100000` for more, `SIM_SEED_BASE=n` to start
//! elsewhere, `SIM_SEED=n` for one seed (with its statistics).

use omnistock::model::{Conservation, Disagreement, MemorySink, Oracle, ReferenceModel, Rng};
use omnistock::replay::{format_outcome, format_request, parse_request, Request};
use omnistock::{
    CampaignId, Channel, Command, CustomerId, Error, Inventory, ItemKey, Level, Line, ManualClock,
    Outcome, ReservationId, ReservationState, Sku, StoreId, DEFAULT_TTL_MS,
};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const DAY_MS: u64 = 86_400_000;
const SHRINK_BUDGET: Duration = Duration::from_secs(20);

// ---------------------------------------------------------------------------
// The system under test, behind a trait so the checker's own test can plant
// a bug in it.

trait Engine {
    fn apply(&mut self, command: &Command) -> Result<Outcome, Error>;
    fn advance(&mut self, ms: u64) -> u64;
    /// Every item, sorted.
    fn items(&self) -> Vec<(ItemKey, Level)>;
    fn reservation_count(&self) -> usize;
    fn pending_count(&self) -> usize;
}

/// The in-memory engine with the replay tool's settings (default ttl and
/// retention, manual clock at 0), so failing scripts replay with the tool.
struct Real {
    clock: Arc<ManualClock>,
    inventory: Inventory,
}

impl Real {
    fn new() -> Self {
        let clock = Arc::new(ManualClock::new());
        let inventory = Inventory::builder().clock(clock.clone()).build();
        Real { clock, inventory }
    }
}

impl Engine for Real {
    fn apply(&mut self, command: &Command) -> Result<Outcome, Error> {
        self.inventory.apply(command)
    }

    fn advance(&mut self, ms: u64) -> u64 {
        self.clock.advance(ms)
    }

    fn items(&self) -> Vec<(ItemKey, Level)> {
        let mut items = self.inventory.items();
        items.sort_unstable_by_key(|(key, _)| *key);
        items
    }

    fn reservation_count(&self) -> usize {
        self.inventory.reservation_count()
    }

    fn pending_count(&self) -> usize {
        self.inventory.pending_count()
    }
}

/// The engine journaled into memory, crashed and recovered at random
/// points: every few steps it may write a snapshot image (and drop the
/// records it covers, as the journal deletes covered segments), and it may
/// "crash", losing its memory and its clock, and be rebuilt from the
/// newest image and the records after it. The checker then compares the
/// recovered engine with the model as if nothing happened: recovery must
/// be exact. Its random choices come from a fixed seed, so a script
/// replays the same crashes.
struct Recovering {
    clock: Arc<ManualClock>,
    inventory: Inventory,
    sink: Arc<MemorySink>,
    image: Vec<u8>,
    covers: u64,
    rng: Rng,
    crashes: u64,
    alerts: Vec<omnistock::Alert>,
}

impl Recovering {
    fn new() -> Self {
        let clock = Arc::new(ManualClock::new());
        let sink = Arc::new(MemorySink::new());
        let inventory = Inventory::builder()
            .clock(clock.clone())
            .record_sink(sink.clone())
            .build();
        let image = inventory.image(0);
        Recovering {
            clock,
            inventory,
            sink,
            image,
            covers: 0,
            rng: Rng::new(0x5EED),
            crashes: 0,
            alerts: Vec::new(),
        }
    }

    fn maybe_crash(&mut self) {
        if self.rng.percent(5) {
            self.covers = self.sink.watermark();
            self.image = self.inventory.image(self.covers);
        }
        if self.rng.percent(4) {
            self.crashes += 1;
            self.alerts.extend(self.inventory.take_alerts());
            self.clock = Arc::new(ManualClock::new());
            let records = self.sink.after(self.covers);
            let (inventory, last) = Inventory::builder()
                .clock(self.clock.clone())
                .record_sink(self.sink.clone())
                .recover(Some(&self.image), records)
                .expect("recovery from the engine's own records");
            assert_eq!(last + 1, inventory.next_seq());
            self.inventory = inventory;
        }
    }
}

impl Engine for Recovering {
    fn apply(&mut self, command: &Command) -> Result<Outcome, Error> {
        let answer = match (self.inventory.apply(command), command) {
            // Alerts not yet taken do not survive a crash (they are not
            // state): the driver keeps those the lost engines raised.
            (Ok(Outcome::Alerts(new)), Command::Alerts) => {
                let mut alerts = std::mem::take(&mut self.alerts);
                alerts.extend(new);
                Ok(Outcome::Alerts(alerts))
            }
            (answer, _) => answer,
        };
        self.maybe_crash();
        answer
    }

    fn advance(&mut self, ms: u64) -> u64 {
        let now = self.clock.advance(ms);
        self.inventory.record_clock().expect("in memory");
        self.maybe_crash();
        now
    }

    fn items(&self) -> Vec<(ItemKey, Level)> {
        let mut items = self.inventory.items();
        items.sort_unstable_by_key(|(key, _)| *key);
        items
    }

    fn reservation_count(&self) -> usize {
        self.inventory.reservation_count()
    }

    fn pending_count(&self) -> usize {
        self.inventory.pending_count()
    }
}

type MakeEngine = fn() -> Box<dyn Engine>;

fn recovering_engine() -> Box<dyn Engine> {
    Box::new(Recovering::new())
}

fn real_engine() -> Box<dyn Engine> {
    Box::new(Real::new())
}

// ---------------------------------------------------------------------------
// The history.

#[derive(Clone, Debug)]
enum Answer {
    Engine(Result<Outcome, Error>),
    Now(u64),
}

impl Answer {
    fn json(&self) -> String {
        match self {
            Answer::Engine(result) => format_outcome(result),
            Answer::Now(ms) => format!(r#"{{"ok":true,"now_ms":{ms}}}"#),
        }
    }
}

/// One recorded step: the request, the engine's answer, and the engine's
/// state right after it.
#[derive(Clone, Debug)]
struct Step {
    request: Request,
    answer: Answer,
    items: Vec<(ItemKey, Level)>,
    reservations: usize,
    pending: usize,
}

fn execute(engine: &mut dyn Engine, request: &Request) -> Step {
    let answer = match request {
        Request::Command(command) => Answer::Engine(engine.apply(command)),
        Request::Advance { ms } => Answer::Now(engine.advance(*ms)),
        Request::Refused(_) => unreachable!("the simulator writes no refused request"),
    };
    Step {
        request: request.clone(),
        answer,
        items: engine.items(),
        reservations: engine.reservation_count(),
        pending: engine.pending_count(),
    }
}

fn replay(requests: &[Request], make: MakeEngine) -> Vec<Step> {
    let mut engine = make();
    requests
        .iter()
        .map(|r| execute(engine.as_mut(), r))
        .collect()
}

// ---------------------------------------------------------------------------
// The checker.

#[derive(Clone, Debug)]
struct Mismatch {
    step: usize,
    what: String,
}

/// The checker's own books: what came in and went out of each item, and the
/// holds still live, from the answers alone.
#[derive(Default)]
struct Books {
    now: u64,
    units: Conservation,
    /// Live holds and their deadlines (`None`: overdue from the start).
    holds: BTreeMap<ReservationId, Option<u64>>,
}

impl Books {
    fn deadline(&self, ttl: u64) -> Option<u64> {
        self.now.checked_add(ttl)
    }

    fn overdue(&self, id: ReservationId) -> bool {
        match self.holds.get(&id) {
            Some(Some(deadline)) => self.now >= *deadline,
            Some(None) => true,
            None => false,
        }
    }

    /// Takes in one step whose answer the model agreed with; returns what
    /// disagrees with the books.
    fn record(&mut self, step: &Step) -> Result<(), String> {
        match (&step.request, &step.answer) {
            (Request::Advance { .. }, Answer::Now(now)) => self.now = *now,
            (Request::Command(command), Answer::Engine(result)) => {
                self.command(command, result)?;
                self.units.record(command, result)?;
            }
            _ => return Err("answer of the wrong kind".to_string()),
        }
        self.units.check_on_hand(&step.items)?;
        let held = self
            .holds
            .keys()
            .flat_map(|id| self.units.reserved_lines(*id).unwrap_or_default());
        Conservation::check_reserved(&step.items, held)
    }

    /// The holds: made, ended, their deadlines.
    fn command(
        &mut self,
        command: &Command,
        result: &Result<Outcome, Error>,
    ) -> Result<(), String> {
        // Lazy expiry of the id named, unless refused as invalid first.
        let named = match command {
            Command::Reserve { id, .. }
            | Command::ReserveCampaign { id, .. }
            | Command::ReserveAny { id, .. }
            | Command::Commit { id, .. }
            | Command::Release { id }
            | Command::Extend { id, .. }
            | Command::Get { id } => Some(*id),
            _ => None,
        };
        if let Some(id) = named {
            if !matches!(result, Err(Error::Invalid { .. })) && self.overdue(id) {
                self.holds.remove(&id);
            }
        }
        let ok_ack = match result {
            Ok(Outcome::Reservation(ack)) => Some(*ack),
            Ok(Outcome::ReservationLines(answer)) => Some(answer.ack),
            _ => None,
        };
        match (command, result) {
            (
                Command::Reserve { id, ttl_ms, .. }
                | Command::ReserveCampaign { id, ttl_ms, .. }
                | Command::ReserveAny { id, ttl_ms, .. },
                Ok(_),
            ) if ok_ack.is_some_and(|a| !a.replayed) => {
                if self.holds.contains_key(id) {
                    return Err(format!("{id} reserved anew while the books hold it"));
                }
                let deadline = self.deadline(ttl_ms.unwrap_or(DEFAULT_TTL_MS));
                self.holds.insert(*id, deadline);
            }
            (Command::Commit { id, .. }, Ok(_)) if ok_ack.is_some_and(|a| !a.replayed) => {
                self.holds
                    .remove(id)
                    .ok_or_else(|| format!("{id} committed but the books hold no such hold"))?;
            }
            (Command::Release { id }, Ok(_)) if ok_ack.is_some_and(|a| !a.replayed) => {
                let expired_here = ok_ack.is_some_and(|a| a.state == ReservationState::Expired);
                if self.holds.remove(id).is_none() && !expired_here {
                    return Err(format!("{id} released but the books hold no such hold"));
                }
            }
            (Command::Extend { id, ttl_ms }, Ok(_)) => {
                if !self.holds.contains_key(id) {
                    return Err(format!("{id} extended but the books hold no such hold"));
                }
                let deadline = self.deadline(*ttl_ms);
                self.holds.insert(*id, deadline);
            }
            (Command::Expire, Ok(Outcome::Expired(count))) => {
                let due: Vec<ReservationId> = self
                    .holds
                    .keys()
                    .copied()
                    .filter(|id| self.overdue(*id))
                    .collect();
                for id in &due {
                    self.holds.remove(id);
                }
                if *count != due.len() as u64 {
                    return Err(format!(
                        "expire() ended {count} holds, the books say {} were due",
                        due.len()
                    ));
                }
            }
            _ => {}
        }
        Ok(())
    }
}

/// Replays `steps` against the reference model and checks every step; the
/// first problem found, if any.
fn check(steps: &[Step]) -> Result<(), Mismatch> {
    let mut oracle = Oracle::default();
    let mut books = Books::default();
    for (index, step) in steps.iter().enumerate() {
        let fail = |what: String| Mismatch { step: index, what };
        let line = format_request(&step.request);
        match parse_request(line.as_bytes()) {
            Ok(Some(parsed)) if parsed == step.request => {}
            other => return Err(fail(format!("request line {line} reads back as {other:?}"))),
        }
        match (&step.request, &step.answer) {
            (Request::Command(command), Answer::Engine(engine)) => {
                if let Err(Disagreement::Answer {
                    model: expected, ..
                }) = oracle.answer(command, engine)
                {
                    return Err(fail(format!(
                        "answer differs: engine {}, model {}",
                        format_outcome(engine),
                        format_outcome(&expected)
                    )));
                }
            }
            (Request::Advance { ms }, Answer::Now(now)) => {
                oracle.advance(*ms, *now).map_err(|d| fail(d.to_string()))?;
            }
            _ => return Err(fail("answer of the wrong kind".to_string())),
        }
        oracle
            .state(&step.items, step.reservations, step.pending)
            .map_err(|d| fail(d.to_string()))?;
        books.record(step).map_err(fail)?;
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// The simulated world.

struct World {
    rng: Rng,
    engine: Box<dyn Engine>,
    steps: Vec<Step>,
    skus: Vec<Sku>,
    stores: Vec<StoreId>,
    next_id: u64,
    /// Ids used so far, for shoppers who come back with an old one.
    used_ids: Vec<ReservationId>,
    /// The largest delivery a restock brings: scarce or plentiful supply.
    delivery: u32,
    /// The flash sale's quota and per-customer limit, if the seed runs one.
    sale: Option<(u32, u32)>,
}

impl World {
    fn exec(&mut self, request: Request) -> Answer {
        let step = execute(self.engine.as_mut(), &request);
        let answer = step.answer.clone();
        self.steps.push(step);
        answer
    }

    fn run(&mut self, command: Command) -> Result<Outcome, Error> {
        match self.exec(Request::Command(command)) {
            Answer::Engine(result) => result,
            Answer::Now(_) => unreachable!("a command answers as the engine"),
        }
    }

    fn item(&mut self) -> (Sku, StoreId) {
        let sku = self.skus[self.rng.index(self.skus.len())];
        let store = self.stores[self.rng.index(self.stores.len())];
        (sku, store)
    }

    fn fresh_id(&mut self) -> ReservationId {
        self.next_id += 1;
        let id = ReservationId(self.next_id);
        self.used_ids.push(id);
        id
    }

    fn ttl(&mut self) -> Option<u64> {
        match self.rng.below(10) {
            0..=3 => None,
            4 => Some(self.rng.range(1, 50)),
            5..=8 => Some(self.rng.range(1_000, 600_000)),
            _ => Some(self.rng.range(600_000, 3 * DAY_MS)),
        }
    }

    fn cart(&mut self) -> Vec<Line> {
        let n = self.rng.range(1, 4) as usize;
        let mut lines: Vec<Line> = Vec::new();
        for _ in 0..n * 2 {
            if lines.len() == n {
                break;
            }
            let (sku, store) = self.item();
            if lines.iter().all(|l| l.item() != ItemKey::new(sku, store)) {
                let qty = if self.rng.percent(90) {
                    self.rng.qty(1, 3)
                } else {
                    self.rng.qty(4, 25)
                };
                lines.push(Line::new(sku, store, qty));
            }
        }
        // Now and then a malformed cart: a line repeated, or a qty of 0.
        if self.rng.percent(2) {
            if self.rng.percent(50) {
                lines.push(lines[0]);
            } else {
                lines[0].qty = 0;
            }
        }
        lines
    }
}

#[derive(Clone, Debug)]
struct Cart {
    id: ReservationId,
    channel: Channel,
    ttl_ms: Option<u64>,
    lines: Vec<Line>,
    /// Sourced with `reserve_any` from these stores (its one line's store
    /// is ignored), split or not.
    sourcing: Option<(Vec<StoreId>, bool)>,
    /// Reserved in the flash sale, as this customer.
    campaign: Option<CustomerId>,
    /// The lines held, once reserved.
    held: Vec<Line>,
}

/// The flash sale a seed may run, on its first item.
const SALE: CampaignId = CampaignId(1);

impl Cart {
    fn reserve(&self) -> Command {
        if let Some(customer) = self.campaign {
            return Command::ReserveCampaign {
                id: self.id,
                channel: self.channel,
                ttl_ms: self.ttl_ms,
                lines: self.lines.clone(),
                campaign: Some(SALE),
                customer: Some(customer),
            };
        }
        match &self.sourcing {
            None => Command::Reserve {
                id: self.id,
                channel: self.channel,
                ttl_ms: self.ttl_ms,
                lines: self.lines.clone(),
            },
            Some((stores, split)) => Command::ReserveAny {
                id: self.id,
                sku: self.lines[0].sku,
                qty: self.lines[0].qty,
                stores: stores.clone(),
                split: *split,
                channel: self.channel,
                ttl_ms: self.ttl_ms,
            },
        }
    }

    /// The picker's finds: each held line in part, some left out.
    fn picked(&self, rng: &mut Rng) -> Vec<Line> {
        let mut picked = Vec::new();
        for line in &self.held {
            if rng.percent(80) {
                picked.push(Line::new(line.sku, line.store, rng.qty(0, line.qty)));
            }
        }
        picked
    }
}

#[derive(Clone, Debug)]
enum Shopper {
    Browsing,
    /// About to (re)submit this cart.
    Checkout(Cart),
    /// Holding units; `intent` is what they will do in the end.
    Holding(Cart, Intent),
    /// Paid; may click "pay" again.
    Paid(ReservationId),
}

#[derive(Clone, Copy, Debug)]
enum Intent {
    Commit,
    Release,
    WalkAway,
}

#[derive(Clone, Debug)]
enum Actor {
    Shopper(Shopper),
    Pos(StoreId),
    Restocker,
    CycleCounter,
    Reaper,
    Clock,
    Auditor,
}

impl Actor {
    fn act(&mut self, w: &mut World) {
        match self {
            Actor::Shopper(shopper) => *shopper = shop(shopper.clone(), w),
            Actor::Pos(store) => {
                let sku = w.skus[w.rng.index(w.skus.len())];
                let channel = if w.rng.percent(90) {
                    Channel::InStore
                } else {
                    Channel::Online
                };
                let qty = w.rng.qty(1, 3);
                if w.rng.percent(30) {
                    // A basket: a few of the store's items (maybe repeated,
                    // maybe never stocked there), all or nothing.
                    let lines = (0..w.rng.range(1, 4))
                        .map(|_| {
                            let sku = w.skus[w.rng.index(w.skus.len())];
                            Line::new(sku, *store, w.rng.qty(1, 3))
                        })
                        .collect();
                    let _ = w.run(Command::SellLines { lines, channel });
                    return;
                }
                let _ = w.run(Command::Sell {
                    sku,
                    store: *store,
                    qty,
                    channel,
                });
            }
            Actor::Restocker => {
                let (sku, store) = w.item();
                let qty = match w.rng.below(200) {
                    0 => 0,
                    1 => u32::MAX - w.rng.qty(0, 100),
                    _ => w.rng.qty(1, w.delivery),
                };
                let _ = w.run(Command::Restock { sku, store, qty });
            }
            Actor::CycleCounter => {
                let (sku, store) = w.item();
                if w.rng.percent(25) {
                    let qty = w.rng.qty(0, 5);
                    let _ = w.run(Command::SetSafetyStock { sku, store, qty });
                    return;
                }
                let mut expect = None;
                let counted = match w.run(Command::Level { sku, store }) {
                    Ok(Outcome::Level(level)) => match w.rng.below(4) {
                        // A compare-and-set sync: the count read, or one
                        // that another sync changed since.
                        _ if w.rng.percent(40) => {
                            expect = Some(level.on_hand + u32::from(w.rng.percent(20)));
                            level.on_hand.saturating_sub(w.rng.qty(0, 2))
                        }
                        0 => level.reserved,
                        1 => level.reserved.saturating_sub(1),
                        _ => {
                            let drift = w.rng.range(0, 6) as i64 - 3;
                            (i64::from(level.on_hand) + drift).clamp(0, i64::from(u32::MAX)) as u32
                        }
                    },
                    _ => w.rng.qty(0, 20),
                };
                let _ = w.run(Command::SetOnHand {
                    sku,
                    store,
                    qty: counted,
                    expect,
                });
            }
            Actor::Reaper => {
                let _ = w.run(Command::Expire);
            }
            Actor::Clock => {
                let ms = match w.rng.below(100) {
                    0..=59 => w.rng.range(0, 2_000),
                    60..=89 => w.rng.range(2_000, 300_000),
                    90..=96 => DEFAULT_TTL_MS - 1 + w.rng.range(0, 2),
                    _ => DAY_MS - 1 + w.rng.range(0, 2),
                };
                w.exec(Request::Advance { ms });
            }
            Actor::Auditor => {
                if w.rng.percent(10) {
                    let _ = w.run(Command::Alerts);
                } else if w.rng.percent(3) && w.sale.is_some() {
                    // The sale's limits change mid-way (counted units stay).
                    let quota = w.rng.qty(0, 20);
                    let per_customer = w.rng.qty(0, 4);
                    w.sale = Some((quota, per_customer));
                    let (sku, store) = (w.skus[0], w.stores[0]);
                    let _ = w.run(Command::Campaign {
                        campaign: SALE,
                        sku,
                        store,
                        quota,
                        per_customer,
                    });
                } else if w.rng.percent(10) {
                    let _ = w.run(Command::Check);
                } else if w.rng.percent(50) || w.used_ids.is_empty() {
                    let (sku, store) = w.item();
                    let _ = w.run(Command::Level { sku, store });
                } else {
                    let id = w.used_ids[w.rng.index(w.used_ids.len())];
                    let _ = w.run(Command::Get { id });
                }
            }
        }
    }
}

/// One step of a shopper; the state they are in afterwards.
fn shop(state: Shopper, w: &mut World) -> Shopper {
    match state {
        Shopper::Browsing => {
            let id = if w.rng.percent(5) && !w.used_ids.is_empty() {
                w.used_ids[w.rng.index(w.used_ids.len())]
            } else {
                w.fresh_id()
            };
            let channel = if w.rng.percent(75) {
                Channel::Online
            } else {
                Channel::InStore
            };
            let mut cart = Cart {
                id,
                channel,
                ttl_ms: w.ttl(),
                lines: w.cart(),
                sourcing: None,
                campaign: None,
                held: Vec::new(),
            };
            if w.sale.is_some() && w.rng.percent(16) {
                // The flash sale: one line of its item, as one of a few
                // customers (who come back and hit their limit).
                let (sku, store) = (w.skus[0], w.stores[0]);
                cart.lines = vec![Line::new(sku, store, w.rng.qty(1, 3))];
                cart.campaign = Some(CustomerId(w.rng.below(6)));
            } else if w.rng.percent(25) {
                // Buy online, pick up in store: the stores near the
                // shopper, nearest first (now and then one that never
                // stocked anything).
                let mut stores: Vec<StoreId> = w
                    .stores
                    .iter()
                    .copied()
                    .filter(|_| w.rng.percent(70))
                    .collect();
                if w.rng.percent(10) {
                    stores.push(StoreId(99));
                }
                for n in (1..stores.len()).rev() {
                    stores.swap(n, w.rng.index(n + 1));
                }
                cart.lines.truncate(1);
                cart.sourcing = Some((stores, w.rng.percent(50)));
            }
            Shopper::Checkout(cart)
        }
        Shopper::Checkout(mut cart) => match w.run(cart.reserve()) {
            Ok(Outcome::ReservationLines(done)) if done.ack.state == ReservationState::Pending => {
                cart.held = done.lines;
                let intent = match w.rng.below(10) {
                    0..=5 => Intent::Commit,
                    6..=7 => Intent::Release,
                    _ => Intent::WalkAway,
                };
                Shopper::Holding(cart, intent)
            }
            Ok(Outcome::Reservation(ack)) if ack.state == ReservationState::Pending => {
                cart.held = cart.lines.clone();
                let intent = match w.rng.below(10) {
                    0..=5 => Intent::Commit,
                    6..=7 => Intent::Release,
                    _ => Intent::WalkAway,
                };
                Shopper::Holding(cart, intent)
            }
            // Not enough: take what there is and try again with the same
            // id (a failed reserve records nothing), or give up.
            Err(Error::Insufficient {
                sku,
                store,
                available,
                ..
            }) if w.rng.percent(60) => {
                let key = ItemKey::new(sku, store);
                if available > 0 && w.rng.percent(70) {
                    for line in &mut cart.lines {
                        if line.item() == key {
                            line.qty = available.min(line.qty);
                        }
                    }
                } else {
                    cart.lines.retain(|l| l.item() != key);
                }
                if cart.lines.is_empty() {
                    Shopper::Browsing
                } else {
                    Shopper::Checkout(cart)
                }
            }
            Err(Error::UnknownItem { sku, store }) if cart.lines.len() > 1 => {
                cart.lines.retain(|l| l.item() != ItemKey::new(sku, store));
                Shopper::Checkout(cart)
            }
            _ => Shopper::Browsing,
        },
        Shopper::Holding(mut cart, intent) => match w.rng.below(10) {
            // The client retries the request (maybe with lines reordered).
            0 => {
                if w.rng.percent(50) {
                    cart.lines.reverse();
                    if let Some((stores, _)) = &mut cart.sourcing {
                        stores.reverse();
                    }
                }
                match w.run(cart.reserve()) {
                    Ok(_) => Shopper::Holding(cart, intent),
                    Err(_) => Shopper::Browsing,
                }
            }
            1 => {
                let _ = w.run(Command::Get { id: cart.id });
                Shopper::Holding(cart, intent)
            }
            2 => {
                let ttl_ms = w.ttl().unwrap_or(60_000);
                match w.run(Command::Extend {
                    id: cart.id,
                    ttl_ms,
                }) {
                    Ok(_) => Shopper::Holding(cart, intent),
                    Err(_) => Shopper::Browsing,
                }
            }
            _ => match intent {
                Intent::Commit => {
                    // The picker found fewer units now and then.
                    let lines = w.rng.percent(30).then(|| cart.picked(&mut w.rng));
                    match w.run(Command::Commit { id: cart.id, lines }) {
                        Ok(_) => Shopper::Paid(cart.id),
                        Err(_) => Shopper::Browsing,
                    }
                }
                Intent::Release => {
                    let _ = w.run(Command::Release { id: cart.id });
                    Shopper::Browsing
                }
                Intent::WalkAway => Shopper::Browsing,
            },
        },
        Shopper::Paid(id) => {
            match w.rng.below(10) {
                0 => {
                    let _ = w.run(Command::Commit { id, lines: None });
                }
                1 => {
                    let _ = w.run(Command::Release { id });
                }
                _ => {}
            }
            Shopper::Browsing
        }
    }
}

/// Runs one seed; its history.
fn simulate(seed: u64, make: MakeEngine) -> Vec<Step> {
    let mut rng = Rng::new(seed);
    let skus: Vec<Sku> = (0..rng.range(2, 5)).map(|i| Sku(100 + i)).collect();
    let stores: Vec<StoreId> = (1..=rng.range(1, 3)).map(StoreId).collect();
    let steps_wanted = rng.range(300, 2_500) as usize;

    // The cast, each with a weight the seed chooses.
    let mut cast: Vec<(Actor, u64)> = Vec::new();
    let shopper_weight = rng.range(5, 20);
    for _ in 0..rng.range(3, 30) {
        cast.push((Actor::Shopper(Shopper::Browsing), shopper_weight));
    }
    for &store in &stores {
        if rng.percent(80) {
            cast.push((Actor::Pos(store), rng.range(1, 15)));
        }
    }
    cast.push((Actor::Restocker, rng.range(3, 16)));
    cast.push((Actor::CycleCounter, rng.range(0, 4)));
    cast.push((Actor::Reaper, rng.range(0, 6)));
    cast.push((Actor::Clock, rng.range(1, 20)));
    cast.push((Actor::Auditor, rng.range(1, 4)));
    let total_weight: u64 = cast.iter().map(|(_, w)| w).sum();
    let delivery = rng.qty(10, 120);

    let mut world = World {
        rng,
        engine: make(),
        steps: Vec::with_capacity(steps_wanted + 64),
        skus,
        stores,
        next_id: 0,
        used_ids: Vec::new(),
        delivery,
        sale: None,
    };

    // Opening stock: most items stocked, a few safety buffers.
    for sku in world.skus.clone() {
        for store in world.stores.clone() {
            if world.rng.percent(85) {
                let qty = world.rng.qty(1, 30);
                let _ = world.run(Command::Restock { sku, store, qty });
            }
            if world.rng.percent(30) {
                let qty = world.rng.qty(1, 4);
                let _ = world.run(Command::SetSafetyStock { sku, store, qty });
            }
        }
    }

    // A flash sale on the first item, and reorder points.
    if world.rng.percent(50) {
        let quota = world.rng.qty(1, 25);
        let per_customer = world.rng.qty(1, 4);
        world.sale = Some((quota, per_customer));
        let (sku, store) = (world.skus[0], world.stores[0]);
        let _ = world.run(Command::Campaign {
            campaign: SALE,
            sku,
            store,
            quota,
            per_customer,
        });
    }
    for sku in world.skus.clone() {
        for store in world.stores.clone() {
            if world.rng.percent(30) {
                let qty = world.rng.qty(1, 12);
                let _ = world.run(Command::SetReorderPoint { sku, store, qty });
            }
        }
    }

    while world.steps.len() < steps_wanted {
        let mut ticket = world.rng.below(total_weight);
        let actor = cast
            .iter()
            .position(|(_, weight)| {
                if ticket < *weight {
                    true
                } else {
                    ticket -= weight;
                    false
                }
            })
            .expect("a ticket below the total weight");
        cast[actor].0.act(&mut world);
    }

    // Every hold ends: past every deadline, the reaper runs.
    world.exec(Request::Advance { ms: 3 * DAY_MS + 1 });
    world.run(Command::Expire).expect("expire answers");
    for sku in world.skus.clone() {
        for store in world.stores.clone() {
            let _ = world.run(Command::Level { sku, store });
        }
    }
    assert_eq!(
        world.engine.pending_count(),
        0,
        "seed {seed}: pending after all holds ended"
    );
    world.steps
}

// ---------------------------------------------------------------------------
// Failures: shrink to a minimal script and report it.

fn requests(steps: &[Step]) -> Vec<Request> {
    steps.iter().map(|s| s.request.clone()).collect()
}

/// Drops steps while `make`'s engine still fails the check on what is left
/// (delta debugging: halves, then smaller chunks), then lines of carts,
/// within `budget`.
fn shrink(mut script: Vec<Request>, make: MakeEngine, budget: Duration) -> Vec<Request> {
    let deadline = Instant::now() + budget;
    let fails = |candidate: &[Request]| check(&replay(candidate, make)).err();
    // Keeps `candidate` (cut after its failing step) if it still fails.
    let try_keep = |script: &mut Vec<Request>, mut candidate: Vec<Request>| match fails(&candidate)
    {
        Some(m) => {
            candidate.truncate(m.step + 1);
            *script = candidate;
            true
        }
        None => false,
    };
    let whole = script.clone();
    try_keep(&mut script, whole);
    // Rounds of both passes until neither finds anything to drop.
    loop {
        let size = |script: &[Request]| {
            script
                .iter()
                .map(|r| match r {
                    Request::Command(Command::Reserve { lines, .. }) => lines.len(),
                    _ => 1,
                })
                .sum::<usize>()
        };
        let before = size(&script);
        let mut chunk = script.len().div_ceil(2).max(1);
        loop {
            let mut start = 0;
            while start < script.len() && Instant::now() < deadline {
                let end = (start + chunk).min(script.len());
                let mut candidate = script[..start].to_vec();
                candidate.extend_from_slice(&script[end..]);
                if !try_keep(&mut script, candidate) {
                    start = end;
                }
            }
            if chunk == 1 || Instant::now() >= deadline {
                break;
            }
            chunk = chunk.div_ceil(2);
        }
        // Carts with fewer lines.
        let mut index = 0;
        while index < script.len() && Instant::now() < deadline {
            let mut line = 0;
            while let Some(Request::Command(Command::Reserve { lines, .. })) = script.get(index) {
                if line >= lines.len() || lines.len() == 1 || Instant::now() >= deadline {
                    break;
                }
                let mut candidate = script.clone();
                if let Request::Command(Command::Reserve { lines, .. }) = &mut candidate[index] {
                    lines.remove(line);
                }
                if !try_keep(&mut script, candidate) {
                    line += 1;
                }
            }
            index += 1;
        }
        if size(&script) == before || Instant::now() >= deadline {
            return script;
        }
    }
}

/// The report of a failing seed: where, what, and a minimal script.
fn report(
    seed: u64,
    steps: &[Step],
    mismatch: &Mismatch,
    make: MakeEngine,
) -> (String, Vec<Request>) {
    let script = shrink(requests(&steps[..=mismatch.step]), make, SHRINK_BUDGET);
    let shrunk = replay(&script, make);
    let failure = check(&shrunk).err();
    let mut model = ReferenceModel::new();
    let mut out = format!(
        "simulation seed {seed} failed at step {} of {}: {}\n",
        mismatch.step,
        steps.len(),
        mismatch.what
    );
    let path = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("simulation-seed-{seed}.jsonl"));
    let text: String = script.iter().map(|r| format_request(r) + "\n").collect();
    let saved = std::fs::write(&path, &text).is_ok();
    let _ = writeln!(
        out,
        "minimal replay script ({} lines){}; reproduce with\n  cargo run --example replay < {}",
        script.len(),
        if saved { ", saved" } else { "" },
        path.display()
    );
    if let Some(m) = &failure {
        let _ = writeln!(out, "it fails at its line {}: {}", m.step + 1, m.what);
    }
    let _ = writeln!(out, "request | model (the contract) | engine");
    for step in &shrunk {
        let expected = match &step.request {
            Request::Command(command) => format_outcome(&model.apply(command)),
            Request::Advance { ms } => format!(r#"{{"ok":true,"now_ms":{}}}"#, model.advance(*ms)),
            Request::Refused(_) => unreachable!("the simulator writes no refused request"),
        };
        let engine = step.answer.json();
        let mark = if expected == engine { " " } else { "!" };
        let _ = writeln!(
            out,
            "{mark} {}\n    model:  {expected}\n    engine: {engine}",
            format_request(&step.request)
        );
    }
    let _ = writeln!(
        out,
        "rerun the seed: SIM_SEED={seed} cargo test --release --test simulation"
    );
    (out, script)
}

// ---------------------------------------------------------------------------
// Statistics, to see what the seeds exercised.

#[derive(Default)]
struct Stats {
    seeds: u64,
    steps: u64,
    outcomes: BTreeMap<String, u64>,
}

impl Stats {
    fn add(&mut self, steps: &[Step]) {
        self.seeds += 1;
        self.steps += steps.len() as u64;
        for step in steps {
            let key = match (&step.request, &step.answer) {
                (Request::Advance { .. }, _) => "advance ok".to_string(),
                (Request::Command(command), Answer::Engine(result)) => {
                    let op = format_request(&Request::Command(command.clone()));
                    let op = op.split('"').nth(3).unwrap_or("?").to_string();
                    match result {
                        Ok(Outcome::Reservation(ack)) if ack.replayed => {
                            format!("{op} ok (replayed)")
                        }
                        Ok(Outcome::Reservation(ack)) => {
                            format!("{op} ok ({})", ack.state.as_str())
                        }
                        Ok(_) => format!("{op} ok"),
                        Err(error) => format!("{op} {}", error.name()),
                    }
                }
                _ => "?".to_string(),
            };
            *self.outcomes.entry(key).or_default() += 1;
        }
    }

    fn summary(&self) -> String {
        let mut out = format!("{} seeds, {} steps\n", self.seeds, self.steps);
        for (key, count) in &self.outcomes {
            let _ = writeln!(out, "  {key}: {count}");
        }
        out
    }
}

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().map(|v| {
        v.trim()
            .parse()
            .unwrap_or_else(|_| panic!("{name} must be a number, got {v:?}"))
    })
}

/// Runs seeds `base..base + count` on all cores; panics with the report of
/// the lowest failing seed.
fn run_seeds(base: u64, count: u64, make: MakeEngine) -> Stats {
    let next = AtomicU64::new(base);
    let stats = Mutex::new(Stats::default());
    let failure: Mutex<Option<(u64, Vec<Step>, Mismatch)>> = Mutex::new(None);
    let workers = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(count.max(1) as usize);
    std::thread::scope(|scope| {
        for _ in 0..workers {
            scope.spawn(|| loop {
                let seed = next.fetch_add(1, Ordering::Relaxed);
                if seed >= base + count
                    || failure.lock().unwrap().as_ref().is_some_and(|f| f.0 < seed)
                {
                    return;
                }
                let steps = simulate(seed, make);
                match check(&steps) {
                    Ok(()) => stats.lock().unwrap().add(&steps),
                    Err(mismatch) => {
                        let mut failure = failure.lock().unwrap();
                        if failure.as_ref().map_or(true, |f| seed < f.0) {
                            *failure = Some((seed, steps, mismatch));
                        }
                    }
                }
            });
        }
    });
    if let Some((seed, steps, mismatch)) = failure.into_inner().unwrap() {
        let (text, _) = report(seed, &steps, &mismatch, make);
        panic!("{text}");
    }
    stats.into_inner().unwrap()
}

#[test]
fn simulated_store_network_matches_the_contract() {
    let started = Instant::now();
    let stats = if let Some(seed) = env_u64("SIM_SEED") {
        run_seeds(seed, 1, real_engine)
    } else {
        let default = if cfg!(debug_assertions) { 60 } else { 300 };
        let count = env_u64("SIM_SEEDS").unwrap_or(default);
        let base = env_u64("SIM_SEED_BASE").unwrap_or(0);
        run_seeds(base, count, real_engine)
    };
    println!("{}in {:.1?}", stats.summary(), started.elapsed());
}

/// The simulation on an engine that crashes and recovers from its journal
/// records (and snapshot images) at random points: the recovered engine
/// must go on exactly as the model says.
#[test]
fn crashed_and_recovered_engine_matches_the_contract() {
    let count = env_u64("SIM_SEEDS").unwrap_or(if cfg!(debug_assertions) { 20 } else { 100 });
    let stats = run_seeds(
        env_u64("SIM_SEED_BASE").unwrap_or(0),
        count,
        recovering_engine,
    );
    println!("{}", stats.summary());
}

#[test]
fn a_seed_replays_exactly() {
    let first = simulate(7, real_engine);
    let again = simulate(7, real_engine);
    assert_eq!(first.len(), again.len());
    for (a, b) in first.iter().zip(&again) {
        assert_eq!(format_request(&a.request), format_request(&b.request));
        assert_eq!(a.answer.json(), b.answer.json());
        assert_eq!(a.items, b.items);
    }
}

/// The engine with a planted bug: committing a reservation of two or more
/// lines quietly puts one unit of its first line back on the shelf.
struct Planted(Real);

impl Engine for Planted {
    fn apply(&mut self, command: &Command) -> Result<Outcome, Error> {
        let lines = match command {
            Command::Commit { id, .. } => self.0.inventory.get(*id).map(|info| info.lines).ok(),
            _ => None,
        };
        let result = self.0.apply(command);
        if let (Some(lines), Ok(Outcome::Reservation(ack))) = (lines, &result) {
            if !ack.replayed && lines.len() >= 2 {
                let _ = self.0.inventory.restock(lines[0].sku, lines[0].store, 1);
            }
        }
        result
    }

    fn advance(&mut self, ms: u64) -> u64 {
        self.0.advance(ms)
    }

    fn items(&self) -> Vec<(ItemKey, Level)> {
        self.0.items()
    }

    fn reservation_count(&self) -> usize {
        self.0.reservation_count()
    }

    fn pending_count(&self) -> usize {
        self.0.pending_count()
    }
}

fn planted_engine() -> Box<dyn Engine> {
    Box::new(Planted(Real::new()))
}

/// The checker has teeth: it catches a planted bug on the first seeds, and
/// the shrinker cuts the history down to the few lines that show it, which
/// the real engine passes.
#[test]
fn the_checker_catches_a_planted_bug_and_shrinks_it() {
    let (seed, steps, mismatch) = (0..20)
        .find_map(|seed| {
            let steps = simulate(seed, planted_engine);
            check(&steps).err().map(|m| (seed, steps, m))
        })
        .expect("a planted bug is caught within 20 seeds");
    let (text, script) = report(seed, &steps, &mismatch, planted_engine);
    assert!(text.contains("cargo run --example replay <"), "{text}");
    // restock, restock, reserve of 2 lines, commit: the bug shows at once.
    assert!(script.len() <= 4, "not minimal:\n{text}");
    assert!(check(&replay(&script, planted_engine)).is_err());
    assert!(check(&replay(&script, real_engine)).is_ok());
}

/// A history written as a script and fed to the replay tool gets the very
/// answers the engine gave in the simulation: the scripts a failure prints
/// reproduce it.
#[test]
fn a_history_replays_through_the_replay_tool() {
    for seed in [3, 11] {
        let steps = simulate(seed, real_engine);
        let script: String = steps
            .iter()
            .map(|s| format_request(&s.request) + "\n")
            .collect();
        let mut output = Vec::new();
        omnistock::replay::run(script.as_bytes(), &mut output).expect("replay runs");
        let output = String::from_utf8(output).expect("UTF-8 answers");
        let answers: Vec<&str> = output.lines().collect();
        assert_eq!(answers.len(), steps.len());
        for (step, answer) in steps.iter().zip(answers) {
            assert_eq!(
                step.answer.json(),
                answer,
                "{}",
                format_request(&step.request)
            );
        }
    }
}

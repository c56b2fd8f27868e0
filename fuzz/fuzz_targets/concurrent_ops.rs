//! `concurrent_ops`: a small fuzz-chosen schedule of operations split across
//! two threads on four items, sharing one engine and one manual clock. The
//! item index is built for 16 items; a "wide" schedule fills it first so the
//! four items are created and found through its locked overflow map. Its id
//! filters have 4 to 8 counters and grow after one refusal, so a schedule's
//! few ids make them switch on and grow while the other thread refuses
//! without the lock. Each
//! thread logs what it was told; after joining, with no thread running:
//!
//! - every level any operation answered, and every item now, keeps
//!   `reserved <= on_hand` (and its `available_*` fields agree with it);
//! - each reservation acknowledged ok is still known (retention is not
//!   reached), its lines are those of a request acknowledged for its id, and
//!   every terminal state any answer reported for it is its one final state;
//!   it was committed exactly once if it is committed, released exactly once
//!   if it is released; an id never acknowledged is unknown;
//! - conservation per item (`omnistock::model::Conservation`): units
//!   received (setup + acknowledged restocks) = on_hand + units committed
//!   (by the commits acknowledged) + units sold;
//! - reserved per item = the units of the pending reservations;
//! - every `check` a thread ran while the other ran was consistent, and a
//!   POS basket's lines count as sold;
//! - once every hold has ended (clock moved past every deadline, `expire`),
//!   nothing is reserved and nothing is pending;
//! - the fulfilment and campaign operations (`reserve_any` split or not,
//!   campaign reserves of a few customers in one campaign on the first
//!   item, commits naming lines, partial ones included) run on ids of
//!   their own: the units their commits answered count as committed, their
//!   pending reservations' lines as reserved, and the campaign never
//!   passes its quota nor a customer the limit; once every hold has ended
//!   the campaign counts no more than the units the commits on its item
//!   answered.
//!
//! A "forgetful" schedule has a retention of at most 25.5 s, so `expire`
//! forgets terminal reservations while the other thread reserves (the
//! lock-free id filter's forgetting path); each thread then uses ids of its
//! own and the per-id state checks give way to the checks above that still
//! apply (the lines of what is known, conservation, reserved units).
//!
//! Interleavings are up to the OS scheduler: a spinning gate releases both
//! threads together, before every step in lockstep mode, and `Spin` steps
//! shift them. A crash may need a few runs to
//! reproduce: `cargo fuzz run -s none concurrent_ops <crash file> -- -runs=1000`.
#![no_main]

mod common;

use arbitrary::Arbitrary;
use common::line_set;
use libfuzzer_sys::fuzz_target;
use omnistock::model::{level_ok, Conservation};
use omnistock::{
    CampaignId, Command, CustomerId, Error, Inventory, ItemKey, Line, ManualClock, Outcome,
    ReservationId, ReservationState, Sku, StoreId,
};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;

const ITEMS: [(u64, u64); 4] = [(1, 1), (2, 1), (1, 2), (2, 2)];
const IDS: u8 = 6;
const MAX_OPS_PER_THREAD: usize = 48;
const MAX_CART: usize = 3;
/// Ids of the fulfilment and campaign operations start here.
const EXTRA_IDS: u64 = 1_000;
/// The campaign, on the first item.
const SALE: CampaignId = CampaignId(3);
/// Its customers.
const CUSTOMERS: u8 = 3;
/// The item index is built for this many items (the smallest it takes).
const EXPECTED_ITEMS: usize = 16;

#[derive(Arbitrary, Debug, Clone, Copy)]
struct Item(u8);

impl Item {
    fn key(self) -> (Sku, StoreId) {
        let (sku, store) = ITEMS[usize::from(self.0) % ITEMS.len()];
        (Sku(sku), StoreId(store))
    }
}

#[derive(Arbitrary, Debug, Clone, Copy)]
struct Id(u8);

impl Id {
    fn id(self, base: u64) -> ReservationId {
        // 8 apart: one thread's ids share a reservation shard.
        ReservationId(base + 8 * u64::from(self.0 % IDS))
    }
}

#[derive(Arbitrary, Debug, Clone)]
enum Op {
    Restock(Item, u8),
    Sell(Item, u8, bool),
    SetSafetyStock(Item, u8),
    Level(Item),
    Reserve {
        id: Id,
        in_store: bool,
        ttl: Option<u16>,
        lines: Vec<(Item, u8)>,
    },
    Commit(Id),
    Release(Id),
    Extend(Id, u16),
    Get(Id),
    Expire,
    Advance(u16),
    Spin(u8),
    // v2: fulfilment.
    /// A POS basket.
    SellBasket(Vec<(Item, u8)>, bool),
    /// The consistency check, while the other thread runs.
    Check,
    /// `reserve_any` of one SKU over both stores (in either order), on an
    /// id of its own.
    ReserveAny {
        id: Id,
        second_sku: bool,
        qty: u8,
        split: bool,
        store_two_first: bool,
        in_store: bool,
    },
    /// A reserve in the campaign, on an id of its own.
    ReserveInCampaign {
        id: Id,
        qty: u8,
        customer: u8,
        in_store: bool,
    },
    /// A commit naming lines (0 to 3; a partial commit when fewer units
    /// than held) of an id of the operations above.
    CommitLines(Id, Vec<(Item, u8)>),
    /// A release of an id of the operations above.
    ReleaseExtra(Id),
}

#[derive(Arbitrary, Debug)]
struct Schedule {
    setup: Vec<(Item, u16, u8)>,
    /// Start step i of both threads together (else only the first step).
    lockstep: bool,
    /// Fill the item index with other items first, so the four items live
    /// in its locked overflow map (and are created there concurrently).
    wide: bool,
    /// Retention of `Some(r * 100)` ms: `expire` forgets terminal
    /// reservations during the run and ids are reserved again. Each thread
    /// then has ids of its own, so its log tells which reservation a commit
    /// took.
    forgetful: Option<u8>,
    /// The campaign's quota and limit (small, so that they bind).
    campaign: (u8, u8),
    threads: [Vec<Op>; 2],
}

fn command(op: &Op, base: u64) -> Option<Command> {
    Some(match *op {
        Op::Restock(item, qty) => {
            let (sku, store) = item.key();
            Command::Restock {
                sku,
                store,
                qty: u32::from(qty),
            }
        }
        Op::Sell(item, qty, in_store) => {
            let (sku, store) = item.key();
            Command::Sell {
                sku,
                store,
                qty: u32::from(qty % 8),
                channel: common::channel(in_store),
            }
        }
        Op::SetSafetyStock(item, qty) => {
            let (sku, store) = item.key();
            Command::SetSafetyStock {
                sku,
                store,
                qty: u32::from(qty % 8),
            }
        }
        Op::Level(item) => {
            let (sku, store) = item.key();
            Command::Level { sku, store }
        }
        Op::Reserve {
            id,
            in_store,
            ttl,
            ref lines,
        } => Command::Reserve {
            id: id.id(base),
            channel: common::channel(in_store),
            ttl_ms: ttl.map(u64::from),
            lines: lines
                .iter()
                .take(MAX_CART)
                .map(|&(item, qty)| {
                    let (sku, store) = item.key();
                    Line::new(sku, store, u32::from(qty % 8))
                })
                .collect(),
        },
        Op::Commit(id) => Command::Commit {
            id: id.id(base),
            lines: None,
        },
        Op::Release(id) => Command::Release { id: id.id(base) },
        Op::Extend(id, ttl) => Command::Extend {
            id: id.id(base),
            ttl_ms: u64::from(ttl),
        },
        Op::Get(id) => Command::Get { id: id.id(base) },
        Op::Expire => Command::Expire,
        Op::SellBasket(ref lines, in_store) => Command::SellLines {
            lines: lines
                .iter()
                .take(MAX_CART)
                .map(|&(item, qty)| {
                    let (sku, store) = item.key();
                    Line::new(sku, store, u32::from(qty % 8))
                })
                .collect(),
            channel: common::channel(in_store),
        },
        Op::Check => Command::Check,
        Op::ReserveAny {
            id,
            second_sku,
            qty,
            split,
            store_two_first,
            in_store,
        } => {
            let mut stores = vec![StoreId(1), StoreId(2)];
            if store_two_first {
                stores.reverse();
            }
            Command::ReserveAny {
                id: id.id(base + EXTRA_IDS),
                sku: Sku(if second_sku { 2 } else { 1 }),
                qty: u32::from(qty % 8),
                stores,
                split,
                channel: common::channel(in_store),
                ttl_ms: None,
            }
        }
        Op::ReserveInCampaign {
            id,
            qty,
            customer,
            in_store,
        } => Command::ReserveCampaign {
            id: id.id(base + EXTRA_IDS),
            channel: common::channel(in_store),
            ttl_ms: None,
            lines: vec![Line::new(Sku(1), StoreId(1), u32::from(qty % 4))],
            campaign: Some(SALE),
            customer: Some(CustomerId(u64::from(customer % CUSTOMERS))),
        },
        Op::CommitLines(id, ref lines) => Command::Commit {
            id: id.id(base + EXTRA_IDS),
            lines: Some(
                lines
                    .iter()
                    .take(MAX_CART)
                    .map(|&(item, qty)| {
                        let (sku, store) = item.key();
                        Line::new(sku, store, u32::from(qty % 8))
                    })
                    .collect(),
            ),
        },
        Op::ReleaseExtra(id) => Command::Release {
            id: id.id(base + EXTRA_IDS),
        },
        Op::Advance(_) | Op::Spin(_) => return None,
    })
}

/// A reservation's lines as a sorted `(sku, store, qty)` list.
type LineSet = Vec<(u64, u64, u32)>;

/// What one thread was told, in its order.
type Log = Vec<(Command, Result<Outcome, Error>)>;

fn run_thread(
    inventory: &Inventory,
    clock: &ManualClock,
    ops: &[Op],
    gate: &AtomicUsize,
    lockstep: bool,
    id_base: u64,
) -> Log {
    let mut log = Vec::with_capacity(ops.len());
    // A spinning gate, not a blocking barrier: a barrier wakes the threads
    // tens of microseconds apart, longer than a whole schedule takes. In
    // lockstep the gate opens before every step, so step i of both threads
    // starts within nanoseconds and the two race for the same words.
    let mut phase = 0;
    let pass_gate = |phase: &mut usize| {
        *phase += 1;
        gate.fetch_add(1, Ordering::AcqRel);
        let mut spins = 0u32;
        while gate.load(Ordering::Acquire) < 2 * *phase {
            spins += 1;
            if spins.is_multiple_of(1024) {
                thread::yield_now();
            } else {
                std::hint::spin_loop();
            }
        }
    };
    pass_gate(&mut phase);
    for op in ops {
        if lockstep {
            pass_gate(&mut phase);
        }
        match *op {
            Op::Advance(ms) => {
                clock.advance(u64::from(ms));
            }
            Op::Spin(n) => {
                for _ in 0..u32::from(n) * 8 {
                    std::hint::spin_loop();
                }
            }
            _ => {
                let command = command(op, id_base).expect("an engine op");
                let result = inventory.apply(&command);
                // The invariant as every caller sees it, at every answer.
                if let Ok(Outcome::Level(level)) = &result {
                    if let Err(broken) = level_ok(level) {
                        panic!("{command:?} answered a broken level: {broken}");
                    }
                }
                log.push((command, result));
            }
        }
    }
    log
}

/// The terminal state an answer proves a reservation reached.
fn terminal_seen(command: &Command, result: &Result<Outcome, Error>) -> Option<ReservationState> {
    match result {
        Ok(Outcome::Reservation(ack)) if ack.state.is_terminal() => Some(ack.state),
        Ok(Outcome::Info(info)) if info.state.is_terminal() => Some(info.state),
        Err(Error::AlreadyCommitted { .. }) => Some(ReservationState::Committed),
        Err(Error::AlreadyReleased { .. }) => Some(ReservationState::Released),
        Err(Error::Expired { .. }) => Some(ReservationState::Expired),
        Ok(Outcome::Reservation(ack)) => {
            assert!(
                ack.expires_at_ms.is_some(),
                "{command:?}: pending ack without deadline"
            );
            None
        }
        _ => None,
    }
}

fn command_id(command: &Command) -> Option<ReservationId> {
    match *command {
        Command::Reserve { id, .. }
        | Command::Commit { id, .. }
        | Command::Release { id }
        | Command::Extend { id, .. }
        | Command::Get { id } => Some(id),
        _ => None,
    }
}

fuzz_target!(|schedule: Schedule| {
    let clock = Arc::new(ManualClock::new());
    let inventory = Arc::new(
        Inventory::builder()
            .clock(clock.clone())
            .expected_items(EXPECTED_ITEMS)
            .compaction(2, 2)
            .id_filter_counters(4, 8)
            .id_filter_refusals_before_growing(1)
            .retention_ms(match schedule.forgetful {
                Some(r) => u64::from(r) * 100,
                None => omnistock::DEFAULT_RETENTION_MS,
            })
            .build(),
    );
    if schedule.wide {
        for filler in 0..EXPECTED_ITEMS as u64 {
            inventory.set_safety_stock(Sku(1_000 + filler), StoreId(9), 0);
        }
    }

    let mut books = Conservation::default();
    for &(item, qty, safety) in schedule.setup.iter().take(ITEMS.len()) {
        let (sku, store) = item.key();
        inventory
            .set_on_hand(sku, store, u32::from(qty % 64))
            .expect("nothing reserved yet");
        inventory.set_safety_stock(sku, store, u32::from(safety % 4));
    }
    for (key, level) in inventory.items() {
        books.received(key, level.on_hand);
    }
    let (quota, per_customer) = (
        u32::from(schedule.campaign.0 % 8),
        u32::from(schedule.campaign.1 % 4),
    );
    inventory
        .define_campaign(SALE, Sku(1), StoreId(1), quota, per_customer)
        .expect("room for one campaign");

    let gate = Arc::new(AtomicUsize::new(0));
    let lockstep = schedule.lockstep;
    let forgetful = schedule.forgetful.is_some();
    // Thread 1's ids are odd, thread 0's multiples of 8: disjoint.
    let id_base = |thread: usize| if forgetful { thread as u64 } else { 0 };
    // Both threads take the same number of steps (padded with no-ops) so the
    // lockstep gate always has both at it.
    let steps = schedule
        .threads
        .iter()
        .map(|ops| ops.len().min(MAX_OPS_PER_THREAD))
        .max()
        .unwrap_or(0);
    let handles: Vec<_> = schedule
        .threads
        .iter()
        .enumerate()
        .map(|(thread, ops)| {
            let mut ops: Vec<Op> = ops.iter().take(steps).cloned().collect();
            ops.resize(steps, Op::Spin(0));
            let (inventory, clock, gate) = (inventory.clone(), clock.clone(), gate.clone());
            let base = id_base(thread);
            thread::spawn(move || run_thread(&inventory, &clock, &ops, &gate, lockstep, base))
        })
        .collect();
    let logs: Vec<Log> = handles
        .into_iter()
        .map(|h| h.join().expect("thread panicked"))
        .collect();

    // What the threads were told.
    let mut acknowledged: BTreeMap<ReservationId, Vec<LineSet>> = BTreeMap::new();
    let mut seen: BTreeMap<ReservationId, Vec<(ReservationState, &Command)>> = BTreeMap::new();
    let mut commits: BTreeMap<ReservationId, usize> = BTreeMap::new();
    let mut releases: BTreeMap<ReservationId, usize> = BTreeMap::new();
    let sale_item = ItemKey::new(Sku(1), StoreId(1));
    // Commits naming lines on the campaign's item alone, with the units
    // they took: those of campaign reservations count in the campaign.
    let mut extra_committed: Vec<(ReservationId, u32)> = Vec::new();
    for (command, result) in logs.iter().flatten() {
        match (command, result) {
            (Command::Restock { sku, store, qty }, Ok(_)) => {
                books.received(ItemKey::new(*sku, *store), *qty);
            }
            (
                Command::Sell {
                    sku, store, qty, ..
                },
                Ok(_),
            ) => books.sold(ItemKey::new(*sku, *store), *qty),
            (Command::SellLines { lines, .. }, Ok(_)) => {
                for line in lines {
                    books.sold(line.item(), line.qty);
                }
            }
            (Command::Check, Ok(Outcome::Check(report))) => {
                assert!(report.consistent, "check during the run: {report:?}");
            }
            (Command::Reserve { id, lines, .. }, Ok(_)) => {
                acknowledged.entry(*id).or_default().push(line_set(lines));
            }
            (Command::Commit { id, .. }, Ok(Outcome::ReservationLines(answer)))
                if !answer.ack.replayed =>
            {
                // A commit naming lines answers what it took out of stock.
                assert_eq!(answer.ack.state, ReservationState::Committed, "{id}");
                books.committed(&answer.lines);
                if answer.lines.iter().all(|line| line.item() == sale_item) {
                    extra_committed.push((*id, answer.lines.iter().map(|l| l.qty).sum()));
                }
            }
            (Command::Commit { id, .. }, Ok(Outcome::Reservation(ack))) => {
                assert_eq!(
                    ack.state,
                    ReservationState::Committed,
                    "commit answered {ack:?}"
                );
                if !ack.replayed {
                    *commits.entry(*id).or_default() += 1;
                }
            }
            (Command::Release { id }, Ok(Outcome::Reservation(ack)))
                if ack.state == ReservationState::Released && !ack.replayed =>
            {
                *releases.entry(*id).or_default() += 1;
            }
            _ => {}
        }
        if let (Some(id), Some(state)) = (command_id(command), terminal_seen(command, result)) {
            seen.entry(id).or_default().push((state, command));
        }
    }

    // Units committed, from the logs. Without forgetting an id names one
    // reservation, whatever thread made it; with forgetting each thread's
    // ids are its own, and its log in order tells which reservation (the
    // last one made under the id) a commit took.
    let mut committed_units: BTreeMap<ItemKey, u64> = BTreeMap::new();
    let mut latest: BTreeMap<ReservationId, LineSet> = BTreeMap::new();
    for log in &logs {
        for (command, result) in log {
            match (command, result) {
                (Command::Reserve { id, lines, .. }, Ok(_)) => {
                    latest.insert(*id, line_set(lines));
                }
                (Command::Commit { id, .. }, Ok(Outcome::Reservation(ack))) if !ack.replayed => {
                    let lines = if forgetful {
                        latest.get(id)
                    } else {
                        acknowledged.get(id).and_then(|requests| requests.first())
                    };
                    let lines = lines.unwrap_or_else(|| panic!("{id} committed, never made"));
                    for &(sku, store, qty) in lines {
                        let key = ItemKey::new(Sku(sku), StoreId(store));
                        *committed_units.entry(key).or_default() += u64::from(qty);
                        books.committed(&[Line::new(Sku(sku), StoreId(store), qty)]);
                    }
                }
                _ => {}
            }
        }
    }

    // Now, single-threaded: every id as it is (get expires overdue ones).
    let mut pending_lines: Vec<Line> = Vec::new();
    let mut committed_now: BTreeMap<ItemKey, u64> = BTreeMap::new();
    let ids = (0..2).flat_map(|thread| (0..u64::from(IDS)).map(move |n| id_base(thread) + 8 * n));
    let ids: std::collections::BTreeSet<u64> = ids.collect();
    for raw in ids {
        let id = ReservationId(raw);
        let info = match inventory.get(id) {
            Ok(info) => info,
            Err(Error::UnknownReservation { .. }) => {
                if !forgetful {
                    assert!(
                        !acknowledged.contains_key(&id),
                        "{id} was acknowledged but is unknown"
                    );
                    assert!(!seen.contains_key(&id), "{id} had a state but is unknown");
                }
                continue;
            }
            Err(other) => panic!("get({id}) failed: {other:?}"),
        };
        let lines = line_set(&info.lines);
        if forgetful {
            // Only the latest reservation under the id can still be known.
            assert_eq!(latest.get(&id), Some(&lines), "{id} holds other lines");
        } else {
            let requests = acknowledged
                .get(&id)
                .unwrap_or_else(|| panic!("{id} exists but no reserve of it was acknowledged"));
            assert!(
                requests.iter().all(|r| *r == lines),
                "{id} holds {lines:?} but reserves acknowledged for it asked {requests:?}"
            );
            for (state, command) in seen.get(&id).into_iter().flatten() {
                assert_eq!(
                    *state, info.state,
                    "{id} is {:?} but {command:?} reported it {state:?}",
                    info.state
                );
            }
            let commits = commits.get(&id).copied().unwrap_or(0);
            let releases = releases.get(&id).copied().unwrap_or(0);
            match info.state {
                ReservationState::Committed => assert_eq!((commits, releases), (1, 0), "{id}"),
                ReservationState::Released => assert_eq!((commits, releases), (0, 1), "{id}"),
                ReservationState::Expired | ReservationState::Pending => {
                    assert_eq!((commits, releases), (0, 0), "{id}")
                }
            }
        }
        match info.state {
            ReservationState::Pending => pending_lines.extend_from_slice(&info.lines),
            ReservationState::Committed => {
                for line in &info.lines {
                    *committed_now.entry(line.item()).or_default() += u64::from(line.qty);
                }
            }
            _ => {}
        }
    }
    if !forgetful {
        assert_eq!(
            committed_units, committed_now,
            "units of committed reservations differ from the commits acknowledged"
        );
    }

    // The fulfilment and campaign ids: pending ones hold their lines; the
    // campaign is within its quota and every customer within the limit.
    let extra_ids = (0..2)
        .flat_map(|thread| (0..u64::from(IDS)).map(move |n| EXTRA_IDS + id_base(thread) + 8 * n));
    let extra_ids: std::collections::BTreeSet<u64> = extra_ids.collect();
    for &raw in &extra_ids {
        if let Ok(info) = inventory.get(ReservationId(raw)) {
            if info.state == ReservationState::Pending {
                pending_lines.extend_from_slice(&info.lines);
            }
        }
    }
    let usage = inventory.campaign(SALE).expect("the campaign is live");
    assert!(usage.used <= quota, "quota passed: {usage:?}");
    for customer in 0..u64::from(CUSTOMERS) {
        let used = inventory.campaign_customer_used(SALE, CustomerId(customer));
        assert!(
            used <= per_customer,
            "customer {customer} passed the limit: {used}"
        );
    }

    let items = inventory.items();
    if let Err(broken) = books.check_on_hand(&items) {
        panic!("units not conserved: {broken} (committed {committed_units:?})");
    }
    if let Err(broken) = Conservation::check_reserved(&items, &pending_lines) {
        panic!("reserved differs from the pending reservations' units: {broken}");
    }

    // Every hold ends: the clock passes every deadline and the reaper runs.
    clock.advance(1 << 40);
    inventory.expire();
    assert_eq!(
        inventory.pending_count(),
        0,
        "pending reservations after expiry"
    );
    // Every hold ended: the campaign counts committed units alone, at most
    // those its item's commits answered (some may be plain reservations).
    let usage = inventory.campaign(SALE).expect("the campaign is live");
    let committed_on_item: u32 = extra_committed.iter().map(|&(_, qty)| qty).sum();
    assert!(
        usage.used <= committed_on_item.min(quota),
        "campaign counts {} units after every hold ended, commits answered {committed_on_item}",
        usage.used
    );
    let items = inventory.items();
    if let Err(broken) = Conservation::check_all_ended(&items) {
        panic!("{broken}");
    }
    if let Err(broken) = books.check_on_hand(&items) {
        panic!("units not conserved after expiry: {broken}");
    }
});

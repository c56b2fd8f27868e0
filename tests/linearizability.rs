//! Linearizability: concurrent histories of small random workloads, checked
//! against the reference model.
//!
//! Each round builds an inventory on a manual clock that never moves (so
//! lazy expiry plays no part), stocks a few items, and lets a few threads
//! run about a hundred random operations on those items and a few ids at
//! once, the fulfilment ones included (baskets, `reserve_any` over two
//! stores, partial commits, compare-and-set counts, `check`) and the
//! campaign ones (reserves of several customers in one campaign whose quota
//! and limit are small, released and committed whole or in part). Every
//! operation is recorded with its input, its answer, and the
//! ticks of one shared counter taken just before the call and just after
//! the return. The checker (Wing and Gong's search, remembering the
//! (operations done, model state) pairs it has visited) then looks for one
//! order of the operations that respects real time (an operation that
//! returned before another was called comes first) and in which
//! [`ReferenceModel`] gives every recorded answer. A history without such
//! an order is an operation that saw, or let others see, something no
//! sequential execution shows: a cart partly held, a refusal for units no
//! order had taken.
//!
//! The checker is checked too: it must reject histories with a planted
//! fault, and histories of an engine wrapper that holds a cart's lines one
//! by one through the public API.
//!
//! `OMNISTOCK_LIN_ROUNDS` sets the rounds of the main test (more for a
//! longer search); it stops early after `OMNISTOCK_LIN_SECONDS` (default 3).

use omnistock::model::{same_answer, ReferenceModel};
use omnistock::{
    CampaignId, Channel, Command, CustomerId, Error, Inventory, Line, ManualClock, Outcome,
    ReservationId, Sku, StoreId,
};
use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

const STORE: StoreId = StoreId(1);
/// A second store of the stocked SKUs, for `reserve_any` and baskets.
const STORE2: StoreId = StoreId(2);
/// Items stocked before each round; `ABSENT` starts unknown and may be
/// created by a stock operation during the round.
const STOCKED: [Sku; 3] = [Sku(1), Sku(2), Sku(3)];
const ABSENT: Sku = Sku(9);
const ITEMS: [Sku; 4] = [STOCKED[0], STOCKED[1], STOCKED[2], ABSENT];
const IDS: u64 = 6;
/// The campaign every round defines on the first stocked item at `STORE`.
const SALE: CampaignId = CampaignId(5);
/// Customers of the campaign.
const CUSTOMERS: u64 = 3;
const THREADS: usize = 3;
const OPS_PER_THREAD: usize = 33;

/// One recorded operation.
#[derive(Clone, Debug)]
struct Op {
    thread: usize,
    call: u64,
    ret: u64,
    command: Command,
    answer: Result<Outcome, Error>,
}

/// What the workload runs against: the engine, or a deliberately broken
/// wrapper of it.
trait Subject: Send + Sync {
    fn apply(&self, command: &Command) -> Result<Outcome, Error>;
}

impl Subject for Inventory {
    fn apply(&self, command: &Command) -> Result<Outcome, Error> {
        Inventory::apply(self, command)
    }
}

/// Not atomic on purpose: holds a new multi-line cart's lines one at a time,
/// each as a single-line reservation under a temporary id, gives them back
/// when a line fails, and on success swaps the temporary holds for the real
/// reservation. Sequentially it answers as the engine does; concurrently
/// others can see the cart partly held.
struct OneLineAtATime {
    inner: Inventory,
    temporary: AtomicU64,
}

impl Subject for OneLineAtATime {
    fn apply(&self, command: &Command) -> Result<Outcome, Error> {
        let Command::Reserve {
            id, channel, lines, ..
        } = command
        else {
            return self.inner.apply(command);
        };
        if lines.len() < 2 || self.inner.get(*id).is_ok() {
            return self.inner.apply(command);
        }
        let mut held = Vec::new();
        for line in lines {
            let temporary = ReservationId(self.temporary.fetch_add(1, Ordering::Relaxed));
            match self.inner.reserve(temporary, *channel, &[*line]) {
                Ok(_) => held.push(temporary),
                Err(error) => {
                    for temporary in held {
                        self.inner.release(temporary).unwrap();
                    }
                    return Err(error);
                }
            }
        }
        for temporary in held {
            self.inner.release(temporary).unwrap();
        }
        self.inner.apply(command)
    }
}

/// xorshift64*: deterministic per seed, no dependency.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next()) * u128::from(n)) >> 64) as u64
    }
    fn qty(&mut self) -> u32 {
        1 + self.below(3) as u32
    }
    fn sku(&mut self) -> Sku {
        ITEMS[self.below(ITEMS.len() as u64) as usize]
    }
    fn id(&mut self) -> ReservationId {
        ReservationId(1 + self.below(IDS))
    }
    fn channel(&mut self) -> Channel {
        if self.below(2) == 0 {
            Channel::Online
        } else {
            Channel::InStore
        }
    }
}

/// A random operation; reserves (of 1 to 3 distinct items) are the most
/// common, then the reads and sales that can observe them.
fn random_command(rng: &mut Rng) -> Command {
    let sku = rng.sku();
    match rng.below(30) {
        0 => Command::Restock {
            sku,
            store: STORE,
            qty: rng.qty(),
        },
        1 => Command::SetOnHand {
            sku,
            store: STORE,
            qty: rng.below(6) as u32,
            expect: None,
        },
        2 => Command::SetSafetyStock {
            sku,
            store: STORE,
            qty: rng.below(3) as u32,
        },
        3..=4 => Command::Sell {
            sku,
            store: STORE,
            qty: rng.qty(),
            channel: rng.channel(),
        },
        5..=7 => Command::Level { sku, store: STORE },
        8..=9 => Command::Commit {
            id: rng.id(),
            lines: None,
        },
        10..=11 => Command::Release { id: rng.id() },
        12 => Command::Get { id: rng.id() },
        // Fulfilment.
        20 => {
            let count = 1 + rng.below(2) as usize;
            Command::SellLines {
                lines: random_lines(rng, count, |rng| rng.qty()),
                channel: rng.channel(),
            }
        }
        21 => {
            let mut stores = vec![STORE, STORE2];
            if rng.below(2) == 0 {
                stores.reverse();
            }
            stores.truncate(1 + rng.below(2) as usize);
            Command::ReserveAny {
                id: rng.id(),
                sku,
                qty: rng.qty(),
                stores,
                split: rng.below(2) == 0,
                channel: rng.channel(),
                ttl_ms: None,
            }
        }
        22 => {
            let count = rng.below(3) as usize;
            Command::Commit {
                id: rng.id(),
                lines: Some(random_lines(rng, count, |rng| rng.below(3) as u32)),
            }
        }
        23 => Command::SetOnHand {
            sku,
            store: STORE,
            qty: rng.below(6) as u32,
            expect: Some(rng.below(6) as u32),
        },
        24 => Command::Check,
        // Campaigns: reserves in the campaign, and partial commits of its
        // item (plain releases and commits above reach its reservations).
        25..=27 => Command::ReserveCampaign {
            id: rng.id(),
            channel: rng.channel(),
            ttl_ms: None,
            lines: vec![Line::new(STOCKED[0], STORE, 1 + rng.below(2) as u32)],
            campaign: Some(SALE),
            customer: Some(CustomerId(1 + rng.below(CUSTOMERS))),
        },
        28 => Command::Commit {
            id: rng.id(),
            lines: Some(vec![Line::new(STOCKED[0], STORE, rng.below(3) as u32)]),
        },
        _ => {
            let count = 1 + rng.below(3) as usize;
            let mut lines: Vec<Line> = Vec::new();
            while lines.len() < count {
                let sku = rng.sku();
                if lines.iter().all(|line| line.sku != sku) {
                    lines.push(Line::new(sku, STORE, rng.qty()));
                }
            }
            Command::Reserve {
                id: rng.id(),
                channel: rng.channel(),
                ttl_ms: None,
                lines,
            }
        }
    }
}

/// `count` lines on distinct items at either store, quantities from `qty`.
fn random_lines(rng: &mut Rng, count: usize, qty: impl Fn(&mut Rng) -> u32) -> Vec<Line> {
    let mut lines: Vec<Line> = Vec::new();
    while lines.len() < count {
        let sku = rng.sku();
        let store = if rng.below(2) == 0 { STORE } else { STORE2 };
        if lines
            .iter()
            .all(|line| line.item() != Line::new(sku, store, 0).item())
        {
            lines.push(Line::new(sku, store, qty(rng)));
        }
    }
    lines
}

/// The commands that stock a round's items before its threads start.
fn setup(rng: &mut Rng) -> Vec<Command> {
    let mut commands = Vec::new();
    for sku in STOCKED {
        commands.push(Command::SetOnHand {
            sku,
            store: STORE,
            qty: 2 + rng.below(4) as u32,
            expect: None,
        });
        if rng.below(2) == 0 {
            commands.push(Command::SetSafetyStock {
                sku,
                store: STORE,
                qty: 1,
            });
        }
        commands.push(Command::SetOnHand {
            sku,
            store: STORE2,
            qty: 1 + rng.below(3) as u32,
            expect: None,
        });
    }
    commands.push(Command::Campaign {
        campaign: SALE,
        sku: STOCKED[0],
        store: STORE,
        quota: 1 + rng.below(3) as u32,
        per_customer: 1 + rng.below(2) as u32,
    });
    commands
}

/// Runs one round on `subject` (already set up with `setup`); returns the
/// history.
fn record(subject: Arc<dyn Subject>, seed: u64) -> Vec<Op> {
    let ticks = Arc::new(AtomicU64::new(0));
    // A spinning rendezvous: a barrier's wake-ups are slower than a whole
    // thread's operations, which would run one thread after another.
    let arrived = Arc::new(AtomicU64::new(0));
    let workers: Vec<_> = (0..THREADS)
        .map(|thread| {
            let (subject, ticks, arrived) = (subject.clone(), ticks.clone(), arrived.clone());
            let mut rng = Rng::new(seed ^ (thread as u64 + 1).wrapping_mul(0xA24B_AED4_963E_E407));
            let commands: Vec<Command> = (0..OPS_PER_THREAD)
                .map(|_| random_command(&mut rng))
                .collect();
            thread::spawn(move || {
                arrived.fetch_add(1, Ordering::SeqCst);
                while arrived.load(Ordering::SeqCst) < THREADS as u64 {
                    thread::yield_now();
                }
                commands
                    .into_iter()
                    .map(|command| {
                        let call = ticks.fetch_add(1, Ordering::SeqCst);
                        let answer = subject.apply(&command);
                        let ret = ticks.fetch_add(1, Ordering::SeqCst);
                        Op {
                            thread,
                            call,
                            ret,
                            command,
                            answer,
                        }
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    workers
        .into_iter()
        .flat_map(|worker| worker.join().unwrap())
        .collect()
}

/// A small inventory on a clock that never moves (no reservation comes due
/// in a round). With `filters`, the shards' id filters count from the
/// start, so that refusals without the lock race everything else;
/// without, they stay off and every reserve takes its shard's lock.
fn new_inventory(filters: bool) -> Inventory {
    let builder = Inventory::builder()
        .clock(Arc::new(ManualClock::new()))
        .expected_items(16);
    if filters {
        builder.expected_reservations(64).build()
    } else {
        builder.build()
    }
}

/// One round: a fresh subject, set up, raced; returns the starting model and
/// the history.
fn round(seed: u64, broken: bool) -> (ReferenceModel, Vec<Op>) {
    let mut rng = Rng::new(seed);
    let commands = setup(&mut rng);
    let mut model = ReferenceModel::new();
    let inventory = new_inventory(seed % 2 == 0);
    for command in &commands {
        model.apply(command).unwrap();
        inventory.apply(command).unwrap();
    }
    let subject: Arc<dyn Subject> = if broken {
        Arc::new(OneLineAtATime {
            inner: inventory,
            temporary: AtomicU64::new(1_000_000),
        })
    } else {
        Arc::new(inventory)
    };
    (model, record(subject, rng.next()))
}

/// Whether some order of `history` that respects real time gives every
/// recorded answer from `start` on.
fn linearizable(start: &ReferenceModel, history: &[Op]) -> bool {
    Search::new(start, history).run()
}

/// Wing and Gong's search: at each step try each operation that could come
/// next (called before every operation not yet placed returned), and
/// remember the (placed set, model) pairs already explored, which cannot
/// lead anywhere new.
struct Search<'a> {
    history: &'a [Op],
    start: ReferenceModel,
    seen: HashSet<(u128, ReferenceModel)>,
    /// The most operations placed, which, and the model then.
    deepest: (u32, u128, ReferenceModel),
}

impl<'a> Search<'a> {
    fn new(start: &ReferenceModel, history: &'a [Op]) -> Self {
        assert!(history.len() <= 128, "the placed set is a u128");
        Search {
            history,
            start: start.clone(),
            seen: HashSet::new(),
            deepest: (0, 0, start.clone()),
        }
    }

    fn run(&mut self) -> bool {
        let start = self.start.clone();
        self.from(&start, 0)
    }

    /// The earliest return among the operations not in `placed`: whatever
    /// comes next was called before it.
    fn first_return(&self, placed: u128) -> u64 {
        self.history
            .iter()
            .enumerate()
            .filter(|(n, _)| placed & (1 << n) == 0)
            .map(|(_, op)| op.ret)
            .min()
            .unwrap_or(u64::MAX)
    }

    fn from(&mut self, model: &ReferenceModel, placed: u128) -> bool {
        if placed.count_ones() as usize == self.history.len() {
            return true;
        }
        if placed.count_ones() > self.deepest.0 {
            self.deepest = (placed.count_ones(), placed, model.clone());
        }
        if !self.seen.insert((placed, model.clone())) {
            return false;
        }
        let first_return = self.first_return(placed);
        for (n, op) in self.history.iter().enumerate() {
            if placed & (1 << n) != 0 || op.call > first_return {
                continue;
            }
            let mut next = model.clone();
            let answer = next.apply(&op.command);
            if same_answer(&answer, &op.answer) && self.from(&next, placed | (1 << n)) {
                return true;
            }
        }
        false
    }
}

/// Prints a history that has no legal order: the deepest point the search
/// reached (the most operations placed in a legal order), the model there,
/// and the operations that could have come next, none of which gives its
/// recorded answer. `OMNISTOCK_LIN_FULL=1` adds the whole history, sorted
/// by call (`+`: placed at that point).
fn show(start: &ReferenceModel, history: &[Op]) -> String {
    let mut search = Search::new(start, history);
    if search.run() {
        return "a legal order exists".to_string();
    }
    let (count, placed, model) = search.deepest.clone();
    let first_return = search.first_return(placed);
    let line = |op: &Op| {
        format!(
            "t{} [{:>3}, {:>3}] {:?} -> {:?}",
            op.thread, op.call, op.ret, op.command, op.answer
        )
    };
    let mut text = format!(
        "{count} operations placed, the model then {model:?}; none of these gives its answer:\n"
    );
    for (n, op) in history.iter().enumerate() {
        if placed & (1 << n) == 0 && op.call < first_return {
            let answer = model.clone().apply(&op.command);
            text += &format!("  {}\n    (the model: {answer:?})\n", line(op));
        }
    }
    if std::env::var_os("OMNISTOCK_LIN_FULL").is_some() {
        let mut sorted: Vec<(usize, &Op)> = history.iter().enumerate().collect();
        sorted.sort_by_key(|(_, op)| op.call);
        for (n, op) in sorted {
            let mark = if placed & (1 << n) != 0 { "+" } else { " " };
            text += &format!("{mark}{}\n", line(op));
        }
    }
    text
}

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(default)
}

#[test]
fn the_engine_is_linearizable() {
    let rounds = env_or("OMNISTOCK_LIN_ROUNDS", 2_000);
    let limit = Duration::from_secs(env_or("OMNISTOCK_LIN_SECONDS", 3));
    let base = env_or("OMNISTOCK_LIN_SEED", 0x11_0EA7);
    let started = Instant::now();
    let mut ran = 0;
    for round_no in 0..rounds {
        let seed = base.wrapping_add(round_no);
        let (start, history) = round(seed, false);
        assert!(
            linearizable(&start, &history),
            "round {round_no} (seed {seed}) has no legal order:\n{}",
            show(&start, &history)
        );
        ran += 1;
        if started.elapsed() > limit {
            break;
        }
    }
    assert!(ran >= 1);
    eprintln!("linearizability: {ran} rounds, every history had a legal order");
}

#[test]
fn a_cart_held_one_line_at_a_time_is_caught() {
    let limit = Duration::from_secs(env_or("OMNISTOCK_LIN_SECONDS", 3) * 10);
    let started = Instant::now();
    for round_no in 0..100_000u64 {
        let (start, history) = round(0xBAD_CA27 + round_no, true);
        if !linearizable(&start, &history) {
            eprintln!("linearizability: the one-line-at-a-time engine caught in round {round_no}");
            return;
        }
        assert!(
            started.elapsed() < limit,
            "no illegal history of the one-line-at-a-time engine in {round_no} rounds"
        );
    }
    panic!("no illegal history of the one-line-at-a-time engine");
}

/// A legal history of the engine, to plant faults in.
fn legal_round(seed: u64) -> (ReferenceModel, Vec<Op>) {
    let (start, history) = round(seed, false);
    assert!(linearizable(&start, &history), "{}", show(&start, &history));
    (start, history)
}

#[test]
fn an_edited_answer_is_caught() {
    for seed in 0..20 {
        let (start, mut history) = legal_round(seed);
        let edited = history
            .iter_mut()
            .find_map(|op| match &mut op.answer {
                Ok(Outcome::Level(level)) => {
                    // More units than any round ever has.
                    *level = omnistock::Level::new(1_000, level.reserved, level.safety_stock);
                    Some(())
                }
                _ => None,
            })
            .is_some();
        if edited {
            assert!(
                !linearizable(&start, &history),
                "{}",
                show(&start, &history)
            );
        }
    }
}

#[test]
fn two_swapped_answers_are_caught() {
    for seed in 0..20 {
        let (start, mut history) = legal_round(seed);
        // A level and a reservation answer swapped: each op gets an answer
        // of another kind, which no order can give.
        let level = history
            .iter()
            .position(|op| matches!(op.answer, Ok(Outcome::Level(_))));
        let ack = history
            .iter()
            .position(|op| matches!(op.answer, Ok(Outcome::Reservation(_))));
        if let (Some(a), Some(b)) = (level, ack) {
            let answer = history[a].answer.clone();
            history[a].answer = history[b].answer.clone();
            history[b].answer = answer;
            assert!(
                !linearizable(&start, &history),
                "{}",
                show(&start, &history)
            );
        }
    }
}

fn op(thread: usize, call: u64, ret: u64, command: Command, answer: Result<Outcome, Error>) -> Op {
    Op {
        thread,
        call,
        ret,
        command,
        answer,
    }
}

fn reserve(id: u64, lines: &[(Sku, u32)]) -> Command {
    Command::Reserve {
        id: ReservationId(id),
        channel: Channel::InStore,
        ttl_ms: None,
        lines: lines
            .iter()
            .map(|&(sku, qty)| Line::new(sku, STORE, qty))
            .collect(),
    }
}

fn insufficient(sku: Sku, requested: u32, available: u32) -> Result<Outcome, Error> {
    Err(Error::Insufficient {
        sku,
        store: STORE,
        requested,
        available,
    })
}

/// A hand-written history from the issue: a cart refused on its second line
/// while a sale of its first line's units, inside that call, is refused for
/// lack of them. Legal if the sale follows the refused cart in real time,
/// illegal if it falls inside it.
#[test]
fn a_refusal_for_units_a_failing_cart_held_is_caught() {
    let (a, c) = (Sku(1), Sku(3));
    let mut start = ReferenceModel::new();
    start
        .apply(&Command::SetOnHand {
            sku: a,
            store: STORE,
            qty: 2,
            expect: None,
        })
        .unwrap();
    start
        .apply(&Command::SetOnHand {
            sku: c,
            store: STORE,
            qty: 1,
            expect: None,
        })
        .unwrap();
    let sell = Command::Sell {
        sku: a,
        store: STORE,
        qty: 2,
        channel: Channel::InStore,
    };
    let cart = op(
        0,
        0,
        3,
        reserve(1, &[(a, 2), (c, 3)]),
        insufficient(c, 3, 1),
    );
    let inside = op(1, 1, 2, sell.clone(), insufficient(a, 2, 0));
    assert!(!linearizable(&start, &[cart.clone(), inside]));
    let sold = omnistock::Level::new(0, 0, 0);
    let after = op(1, 4, 5, sell, Ok(Outcome::Level(sold)));
    assert!(linearizable(&start, &[cart, after]));
}

fn reserve_in_sale(id: u64, qty: u32, customer: u64) -> Command {
    Command::ReserveCampaign {
        id: ReservationId(id),
        channel: Channel::InStore,
        ttl_ms: None,
        lines: vec![Line::new(Sku(1), STORE, qty)],
        campaign: Some(SALE),
        customer: Some(CustomerId(customer)),
    }
}

/// A hand-written history of the planted fault campaigns had: a campaign
/// reserve that counts the whole quota and is refused by the stock, while
/// another customer's reserve of the last unit, inside that call, is
/// refused `quota_exhausted`. Illegal (the refused reserve changed nothing
/// in every order, so a unit was left), whether the refusal falls inside
/// the first reserve or after it; the engine's answer, the unit reserved,
/// is legal.
#[test]
fn a_quota_refusal_for_units_a_failing_reserve_counted_is_caught() {
    let mut start = ReferenceModel::new();
    start
        .apply(&Command::SetOnHand {
            sku: Sku(1),
            store: STORE,
            qty: 1,
            expect: None,
        })
        .unwrap();
    start
        .apply(&Command::Campaign {
            campaign: SALE,
            sku: Sku(1),
            store: STORE,
            quota: 2,
            per_customer: 2,
        })
        .unwrap();
    let failing = op(
        0,
        0,
        3,
        reserve_in_sale(1, 2, 1),
        insufficient(Sku(1), 2, 1),
    );
    let exhausted = Err(Error::QuotaExhausted {
        campaign: SALE,
        remaining: 0,
    });
    let inside = op(1, 1, 2, reserve_in_sale(2, 1, 2), exhausted);
    assert!(!linearizable(&start, &[failing.clone(), inside.clone()]));
    let after = Op {
        call: 4,
        ret: 5,
        ..inside
    };
    assert!(!linearizable(&start, &[failing.clone(), after]));
    let mut model = start.clone();
    let answer = model.apply(&reserve_in_sale(2, 1, 2));
    assert!(answer.is_ok(), "{answer:?}");
    let won = op(1, 1, 2, reserve_in_sale(2, 1, 2), answer);
    assert!(linearizable(&start, &[failing, won]));
}

//! Crash tests: a child process runs a journaled inventory (`Sync`) under
//! load from many threads and prints a line for every operation once it is
//! acknowledged; the test kills it with SIGKILL at a random moment,
//! recovers the directory and checks:
//!
//! - every acknowledged reservation is there, in the state its last
//!   acknowledged operation left it (or one step on, by an operation that
//!   was in flight: at most one per thread);
//! - every item's invariants hold (`check()`: `reserved` is what the
//!   pending reservations hold, and `reserved <= on_hand`);
//! - units are conserved against the acknowledged history: `on_hand` is
//!   the units received minus sold minus committed, where committed is
//!   read from the recovered reservations and the restocks and sales in
//!   flight (one per thread at most) are the only slack.
//!
//! The child is this very test binary started again with
//! `OMNISTOCK_CRASH_CHILD` set, running [`crash_child`]; 6 kills in all.
//! The kill moments come from a seeded generator (`CRASH_SEED`).

use omnistock::durability::Durability;
use omnistock::model::Rng;
use omnistock::{Channel, Inventory, Line, ReservationId, ReservationState, Sku, StoreId};
use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const THREADS: u64 = 8;
const ITEMS: u64 = 4;
const RESTOCK: u32 = 10;
const KILLS: u64 = 6;

fn item(n: u64) -> (Sku, StoreId) {
    (Sku(n % ITEMS), StoreId(1))
}

/// The child's load: thread `t` of round `round` works through its own ids.
/// Lines: `R id item qty` reserved, `C id` committed, `X id` released,
/// `S item qty` restocked, `L item` sold 1 unit.
fn load(inventory: &Inventory, round: u64, t: u64, out: &std::sync::Mutex<std::io::Stdout>) {
    let mut rng = Rng::new(round * 1000 + t);
    let mut held: Vec<u64> = Vec::new();
    let say = |line: String| {
        let mut out = out.lock().unwrap();
        let _ = writeln!(out, "{line}");
        let _ = out.flush();
    };
    for n in 0.. {
        let which = rng.below(ITEMS);
        let (sku, store) = item(which);
        match rng.below(10) {
            0 | 1 => match inventory.restock(sku, store, RESTOCK) {
                Ok(_) => say(format!("S {which} {RESTOCK}")),
                Err(error) => panic!("restock refused: {error}"),
            },
            // Refused when sold out.
            2 if inventory.sell(sku, store, 1, Channel::InStore).is_ok() => {
                say(format!("L {which}"));
            }
            2 => {}
            3..=6 => {
                let id = (round << 40) | (t << 32) | n;
                let qty = rng.qty(1, 3);
                if let Ok(ack) = inventory.reserve(
                    ReservationId(id),
                    Channel::InStore,
                    &[Line::new(sku, store, qty)],
                ) {
                    assert!(!ack.replayed);
                    held.push(id);
                    say(format!("R {id} {which} {qty}"));
                }
            }
            7 | 8 if !held.is_empty() => {
                let id = held.swap_remove(rng.index(held.len()));
                if inventory.commit(ReservationId(id)).is_ok() {
                    say(format!("C {id}"));
                }
            }
            _ if !held.is_empty() => {
                let id = held.swap_remove(rng.index(held.len()));
                if inventory.release(ReservationId(id)).is_ok() {
                    say(format!("X {id}"));
                }
            }
            _ => {}
        }
    }
}

/// Run by the child process only (a no-op in a normal test run).
#[test]
fn crash_child() {
    let Ok(dir) = std::env::var("OMNISTOCK_CRASH_CHILD") else {
        return;
    };
    let round: u64 = std::env::var("OMNISTOCK_CRASH_ROUND")
        .unwrap()
        .parse()
        .unwrap();
    let (inventory, _) = Inventory::builder()
        .retention_ms(u64::MAX)
        .journal(Path::new(&dir), Durability::Sync)
        .open()
        .expect("the child recovers the directory");
    let out = std::sync::Mutex::new(std::io::stdout());
    {
        let mut lock = out.lock().unwrap();
        let _ = writeln!(lock, "ready");
        let _ = lock.flush();
    }
    std::thread::scope(|scope| {
        for t in 0..THREADS {
            let (inventory, out) = (&inventory, &out);
            scope.spawn(move || load(inventory, round, t, out));
        }
    });
}

#[derive(Default)]
struct Books {
    received: HashMap<u64, i64>,
    sold: HashMap<u64, i64>,
    /// Reservation id -> (item, qty, last acknowledged state).
    reservations: HashMap<u64, (u64, u32, ReservationState)>,
}

impl Books {
    fn read(&mut self, line: &str) {
        let parts: Vec<u64> = line
            .split(' ')
            .skip(1)
            .map(|p| p.parse().unwrap())
            .collect();
        match line.as_bytes()[0] {
            b'S' => *self.received.entry(parts[0]).or_default() += parts[1] as i64,
            b'L' => *self.sold.entry(parts[0]).or_default() += 1,
            b'R' => {
                self.reservations.insert(
                    parts[0],
                    (parts[1], parts[2] as u32, ReservationState::Pending),
                );
            }
            b'C' => self.reservations.get_mut(&parts[0]).unwrap().2 = ReservationState::Committed,
            b'X' => self.reservations.get_mut(&parts[0]).unwrap().2 = ReservationState::Released,
            _ => panic!("unknown line {line}"),
        }
    }

    fn check(&self, inventory: &Inventory) {
        let report = inventory.check();
        assert!(report.consistent, "{report:?}");
        let mut committed: HashMap<u64, i64> = HashMap::new();
        for (&id, &(which, qty, acked)) in &self.reservations {
            let info = inventory
                .get(ReservationId(id))
                .unwrap_or_else(|e| panic!("acknowledged reservation {id} lost: {e}"));
            let ok = info.state == acked
                || (acked == ReservationState::Pending && info.state.is_terminal());
            assert!(
                ok,
                "reservation {id}: acknowledged {acked}, recovered {}",
                info.state
            );
            assert_eq!(info.lines, [Line::new(item(which).0, item(which).1, qty)]);
            if info.state == ReservationState::Committed {
                *committed.entry(which).or_default() += i64::from(qty);
            }
        }
        for which in 0..ITEMS {
            let (sku, store) = item(which);
            let on_hand = inventory
                .level(sku, store)
                .map_or(0, |l| i64::from(l.on_hand));
            let expected = self.received.get(&which).copied().unwrap_or(0)
                - self.sold.get(&which).copied().unwrap_or(0)
                - committed.get(&which).copied().unwrap_or(0);
            // Only operations in flight (one per thread) may be in or out.
            let slack = on_hand - expected;
            assert!(
                (-(THREADS as i64)..=(THREADS as i64) * i64::from(RESTOCK)).contains(&slack),
                "item {which}: on hand {on_hand}, acknowledged history says {expected}"
            );
        }
    }
}

#[test]
fn sigkill_at_random_moments_loses_no_acknowledged_operation() {
    if std::env::var("OMNISTOCK_CRASH_CHILD").is_ok() {
        return;
    }
    let dir = std::env::temp_dir().join(format!("omnistock-crash-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let seed = std::env::var("CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(17);
    let mut rng = Rng::new(seed);
    let mut books = Books::default();
    let me = std::env::current_exe().unwrap();
    for round in 0..KILLS {
        let mut child = Command::new(&me)
            .args(["--exact", "crash_child", "--nocapture", "--test-threads=1"])
            .env("OMNISTOCK_CRASH_CHILD", &dir)
            .env("OMNISTOCK_CRASH_ROUND", round.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        // Wait until it recovered and started.
        loop {
            let line = lines.next().expect("the child starts").unwrap();
            if line.ends_with("ready") {
                break;
            }
        }
        let kill_after = rng.range(50, 1_500);
        let started = Instant::now();
        let mut seen = 0;
        while seen < kill_after && started.elapsed() < Duration::from_secs(10) {
            match lines.next() {
                Some(Ok(line)) if line.len() > 1 => {
                    books.read(&line);
                    seen += 1;
                }
                _ => break,
            }
        }
        child.kill().unwrap(); // SIGKILL
        let _ = child.wait();
        // Lines the child printed before it died were acknowledged too.
        for line in lines.map_while(Result::ok) {
            if line.len() > 1 && line.as_bytes()[1] == b' ' {
                books.read(&line);
            }
        }
        let (inventory, report) = Inventory::builder()
            .retention_ms(u64::MAX)
            .journal(&dir, Durability::Sync)
            .open()
            .unwrap_or_else(|e| panic!("round {round}: recovery failed: {e}"));
        books.check(&inventory);
        println!(
            "round {round}: killed after {seen} acknowledgements; recovered {} records, truncated {:?}",
            report.records_applied, report.truncated
        );
        if round == 2 {
            inventory.snapshot().unwrap();
        }
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

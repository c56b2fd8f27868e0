//! The engine a team writes in an afternoon: one `std::sync::Mutex` over
//! plain `HashMap`s. Same bookkeeping as omnistock: items by `(sku, store)`,
//! reservation records by id with channel, lines, state and deadline, lazy
//! expiry, idempotent replays, a deadline index for the reaper and
//! retention of terminal records.

use super::{Answer, Client, Engine, Op, Stock};
use crate::workload::{item_key, ItemSpec};
use omnistock::{Channel, Clock, ItemKey, ManualClock};
use std::collections::{BTreeSet, HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

#[derive(Clone, Copy, Debug, Default)]
struct Cell {
    on_hand: u32,
    reserved: u32,
    safety: u32,
}

impl Cell {
    fn available(&self, channel: Channel) -> u32 {
        let free = self.on_hand - self.reserved;
        match channel {
            Channel::Online => free.saturating_sub(self.safety),
            Channel::InStore => free,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Pending,
    Committed,
    Released,
    Expired,
}

#[derive(Debug)]
struct Record {
    channel: Channel,
    state: State,
    expires_at: u64,
    lines: Vec<(ItemKey, u32)>,
}

#[derive(Debug, Default)]
struct Books {
    items: HashMap<ItemKey, Cell>,
    reservations: HashMap<u64, Record>,
    /// Pending reservations by `(deadline, id)`.
    deadlines: BTreeSet<(u64, u64)>,
    /// Terminal reservations by `(terminal time, id)`, oldest first.
    finished: VecDeque<(u64, u64)>,
}

impl Books {
    /// Moves a pending reservation to `to`, returning or taking its units.
    fn finish(&mut self, id: u64, to: State, now: u64) {
        let record = self.reservations.get_mut(&id).expect("known id");
        debug_assert_eq!(record.state, State::Pending);
        record.state = to;
        for (key, qty) in &record.lines {
            let cell = self.items.get_mut(key).expect("items are never removed");
            cell.reserved -= qty;
            if to == State::Committed {
                cell.on_hand -= qty;
            }
        }
        self.deadlines.remove(&(record.expires_at, id));
        self.finished.push_back((now, id));
    }

    /// Lazy expiry of one reservation; true if it expired now.
    fn expire_if_overdue(&mut self, id: u64, now: u64) -> bool {
        match self.reservations.get(&id) {
            Some(r) if r.state == State::Pending && now >= r.expires_at => {
                self.finish(id, State::Expired, now);
                true
            }
            _ => false,
        }
    }
}

struct Shared {
    books: Mutex<Books>,
    clock: Arc<ManualClock>,
    retention_ms: u64,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Books> {
        self.books.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn reserve(&self, id: u64, channel: Channel, lines: &[(ItemKey, u32)], ttl: u64) -> Answer {
        let mut books = self.lock();
        let now = self.clock.now_ms();
        if books.reservations.contains_key(&id) {
            books.expire_if_overdue(id, now);
            let record = &books.reservations[&id];
            let mut a = record.lines.clone();
            let mut b = lines.to_vec();
            a.sort_unstable();
            b.sort_unstable();
            if record.channel != channel || a != b {
                return Answer::Unexpected(format!("reserve {id}: id_conflict"));
            }
            return Answer::Unexpected(format!("reserve {id}: replayed as {:?}", record.state));
        }
        for (key, qty) in lines {
            match books.items.get(key) {
                None => return Answer::Unexpected(format!("reserve {id}: unknown item {key}")),
                Some(cell) if cell.available(channel) < *qty => return Answer::Insufficient,
                Some(_) => {}
            }
        }
        for (key, qty) in lines {
            books.items.get_mut(key).expect("checked").reserved += qty;
        }
        let expires_at = now.saturating_add(ttl);
        books.reservations.insert(
            id,
            Record {
                channel,
                state: State::Pending,
                expires_at,
                lines: lines.to_vec(),
            },
        );
        books.deadlines.insert((expires_at, id));
        Answer::Ok
    }

    fn finish(&self, id: u64, to: State) -> Answer {
        let mut books = self.lock();
        let now = self.clock.now_ms();
        let Some(record) = books.reservations.get(&id) else {
            return Answer::Unexpected(format!("{to:?} {id}: unknown reservation"));
        };
        let state = record.state;
        if books.expire_if_overdue(id, now) {
            return Answer::Expired;
        }
        match (state, to) {
            (State::Pending, _) => {
                books.finish(id, to, now);
                Answer::Ok
            }
            (State::Expired, _) => Answer::Expired,
            (state, to) => Answer::Unexpected(format!("{to:?} {id}: already {state:?}")),
        }
    }

    fn expire(&self) -> u64 {
        let mut books = self.lock();
        let now = self.clock.now_ms();
        let mut expired = 0;
        while let Some(&(deadline, id)) = books.deadlines.first() {
            if deadline > now {
                break;
            }
            books.finish(id, State::Expired, now);
            expired += 1;
        }
        while let Some(&(at, id)) = books.finished.front() {
            if now - at < self.retention_ms {
                break;
            }
            books.finished.pop_front();
            books.reservations.remove(&id);
        }
        expired
    }
}

pub struct MutexEngine {
    shared: Arc<Shared>,
}

impl MutexEngine {
    pub fn new(clock: Arc<ManualClock>, retention_ms: u64) -> MutexEngine {
        MutexEngine {
            shared: Arc::new(Shared {
                books: Mutex::new(Books::default()),
                clock,
                retention_ms,
            }),
        }
    }

    pub fn pending(&self) -> usize {
        self.shared.lock().deadlines.len()
    }
}

pub struct MutexClient {
    shared: Arc<Shared>,
    lines: Vec<(ItemKey, u32)>,
    answer: Option<Answer>,
}

impl Client for MutexClient {
    fn send(&mut self, op: Op<'_>) {
        self.answer = Some(self.call(op));
    }

    fn recv(&mut self) -> Answer {
        self.answer.take().expect("recv after send")
    }

    fn call(&mut self, op: Op<'_>) -> Answer {
        let shared = &*self.shared;
        match op {
            Op::Reserve {
                id,
                channel,
                lines,
                ttl_ms,
            } => {
                self.lines.clear();
                self.lines
                    .extend(lines.iter().map(|&(item, qty)| (item_key(item), qty)));
                shared.reserve(id, channel, &self.lines, ttl_ms)
            }
            Op::Commit { id, .. } => shared.finish(id, State::Committed),
            Op::Release { id, .. } => shared.finish(id, State::Released),
            Op::Sell { item, qty, channel } => {
                let key = item_key(item);
                let mut books = shared.lock();
                match books.items.get_mut(&key) {
                    None => Answer::Unexpected(format!("sell {key}: unknown item")),
                    Some(cell) if cell.available(channel) < qty => Answer::Insufficient,
                    Some(cell) => {
                        cell.on_hand -= qty;
                        Answer::Ok
                    }
                }
            }
            Op::Restock { item, qty } => {
                let key = item_key(item);
                let mut books = shared.lock();
                let cell = books.items.entry(key).or_default();
                match cell.on_hand.checked_add(qty) {
                    Some(on_hand) => {
                        cell.on_hand = on_hand;
                        Answer::Ok
                    }
                    None => Answer::Unexpected(format!("restock {key}: overflow")),
                }
            }
            Op::Level { item } => {
                let key = item_key(item);
                match shared.lock().items.get(&key) {
                    Some(cell) => Answer::Level(Stock {
                        on_hand: u64::from(cell.on_hand),
                        reserved: u64::from(cell.reserved),
                        safety: u64::from(cell.safety),
                    }),
                    None => Answer::Unexpected(format!("level {key}: unknown item")),
                }
            }
            Op::Expire => Answer::Count(shared.expire()),
        }
    }
}

impl Engine for MutexEngine {
    type Client = MutexClient;
    const NAME: &'static str = "mutex";

    fn client(&self) -> Result<MutexClient, String> {
        Ok(MutexClient {
            shared: Arc::clone(&self.shared),
            lines: Vec::with_capacity(4),
            answer: None,
        })
    }

    fn stock(&self, specs: &[ItemSpec]) -> Result<(), String> {
        let mut books = self.shared.lock();
        for (i, spec) in specs.iter().enumerate() {
            let cell = books.items.entry(item_key(i as u32)).or_default();
            cell.on_hand += spec.stock;
            cell.safety = spec.safety;
        }
        Ok(())
    }

    fn levels(&self, n: u32) -> Result<Vec<Stock>, String> {
        let books = self.shared.lock();
        (0..n)
            .map(|i| {
                let key = item_key(i);
                books
                    .items
                    .get(&key)
                    .map(|cell| Stock {
                        on_hand: u64::from(cell.on_hand),
                        reserved: u64::from(cell.reserved),
                        safety: u64::from(cell.safety),
                    })
                    .ok_or_else(|| format!("level {key}: unknown item"))
            })
            .collect()
    }

    fn remembered(&self) -> Result<u64, String> {
        Ok(self.shared.lock().reservations.len() as u64)
    }
}

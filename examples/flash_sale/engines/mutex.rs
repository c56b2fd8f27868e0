//! The engine a team writes in an afternoon: one `std::sync::Mutex` over
//! plain `HashMap`s. Same bookkeeping as omnistock (see [`super::books`]):
//! items by `(sku, store)`, reservation records by id, lazy expiry,
//! idempotent replays, a deadline index for the reaper and retention of
//! terminal records.

use super::books::{self, available, settle, Books, BooksClient, Record, State};
use super::{Answer, Engine, Stock};
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
        available(self.on_hand, self.reserved, self.safety, channel)
    }
}

#[derive(Debug, Default)]
struct Tables {
    items: HashMap<ItemKey, Cell>,
    reservations: HashMap<u64, Record>,
    /// Pending reservations by `(deadline, id)`.
    deadlines: BTreeSet<(u64, u64)>,
    /// Terminal reservations by `(terminal time, id)`, oldest first.
    finished: VecDeque<(u64, u64)>,
}

impl Tables {
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
}

pub struct Shared {
    tables: Mutex<Tables>,
    clock: Arc<ManualClock>,
    retention_ms: u64,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Tables> {
        self.tables.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Books for Shared {
    fn reserve(&self, id: u64, channel: Channel, lines: &[(ItemKey, u32)], ttl: u64) -> Answer {
        let mut tables = self.lock();
        let now = self.clock.now_ms();
        if let Some(record) = tables.reservations.get(&id) {
            if record.overdue(now) {
                tables.finish(id, State::Expired, now);
            }
            return tables.reservations[&id].replay(id, channel, lines);
        }
        for (key, qty) in lines {
            match tables.items.get(key) {
                None => return Answer::Unexpected(format!("reserve {id}: unknown item {key}")),
                Some(cell) if cell.available(channel) < *qty => return Answer::Insufficient,
                Some(_) => {}
            }
        }
        for (key, qty) in lines {
            tables.items.get_mut(key).expect("checked").reserved += qty;
        }
        let expires_at = now.saturating_add(ttl);
        tables
            .reservations
            .insert(id, Record::pending(channel, lines, expires_at));
        tables.deadlines.insert((expires_at, id));
        Answer::Ok
    }

    fn finish(&self, id: u64, to: State) -> Answer {
        let mut tables = self.lock();
        let now = self.clock.now_ms();
        let Some(record) = tables.reservations.get(&id) else {
            return Answer::Unexpected(format!("{to:?} {id}: unknown reservation"));
        };
        let (moved, answer) = settle(id, record.state, record.overdue(now), to);
        if let Some(to) = moved {
            tables.finish(id, to, now);
        }
        answer
    }

    fn sell(&self, key: ItemKey, qty: u32, channel: Channel) -> Answer {
        match self.lock().items.get_mut(&key) {
            None => Answer::Unexpected(format!("sell {key}: unknown item")),
            Some(cell) if cell.available(channel) < qty => Answer::Insufficient,
            Some(cell) => {
                cell.on_hand -= qty;
                Answer::Ok
            }
        }
    }

    fn restock(&self, key: ItemKey, qty: u32) -> Answer {
        let mut tables = self.lock();
        let cell = tables.items.entry(key).or_default();
        match cell.on_hand.checked_add(qty) {
            Some(on_hand) => {
                cell.on_hand = on_hand;
                Answer::Ok
            }
            None => Answer::Unexpected(format!("restock {key}: overflow")),
        }
    }

    fn level(&self, key: ItemKey) -> Option<Stock> {
        let tables = self.lock();
        let cell = tables.items.get(&key)?;
        Some(books::stock(cell.on_hand, cell.reserved, cell.safety))
    }

    fn expire(&self) -> u64 {
        let mut tables = self.lock();
        let now = self.clock.now_ms();
        let mut expired = 0;
        while let Some(&(deadline, id)) = tables.deadlines.first() {
            if deadline > now {
                break;
            }
            tables.finish(id, State::Expired, now);
            expired += 1;
        }
        while let Some(&(at, id)) = tables.finished.front() {
            if now - at < self.retention_ms {
                break;
            }
            tables.finished.pop_front();
            tables.reservations.remove(&id);
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
                tables: Mutex::new(Tables::default()),
                clock,
                retention_ms,
            }),
        }
    }

    pub fn pending(&self) -> usize {
        self.shared.lock().deadlines.len()
    }
}

impl Engine for MutexEngine {
    type Client = BooksClient<Shared>;
    const NAME: &'static str = "mutex";

    fn client(&self) -> Result<Self::Client, String> {
        Ok(BooksClient::new(Arc::clone(&self.shared)))
    }

    fn stock(&self, specs: &[ItemSpec]) -> Result<(), String> {
        let mut tables = self.shared.lock();
        for (i, spec) in specs.iter().enumerate() {
            let cell = tables.items.entry(item_key(i as u32)).or_default();
            cell.on_hand += spec.stock;
            cell.safety = spec.safety;
        }
        Ok(())
    }

    fn levels(&self, n: u32) -> Result<Vec<Stock>, String> {
        books::levels(&*self.shared, n)
    }

    fn remembered(&self) -> Result<u64, String> {
        Ok(self.shared.lock().reservations.len() as u64)
    }
}

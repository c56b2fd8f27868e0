//! The sharded map a Rust team reaches for first: items in a `DashMap` by
//! `(sku, store)`, each an atomic cell (on hand and reserved in one word,
//! changed by compare-and-swap, so a shard is only read-locked to find it),
//! and reservation records in a `DashMap` by id, with the bookkeeping of
//! [`super::books`]: idempotent ids, all-or-nothing multi-line carts, lazy
//! expiry, a deadline index for the reaper and retention of terminal
//! records.
//!
//! A reserve, commit or release holds its record's shard (the `entry` or
//! `get_mut` guard) while it changes the item cells, so one id is decided
//! once; items never lock, so no two guards are taken in two orders. A
//! multi-line cart takes its lines one by one and gives back those it took
//! when one is short: it never oversells, though a concurrent cart may see
//! the units it held for that moment. The deadline and retention indexes
//! are maps from a millisecond (and one of [`LANES`] lanes by id, so that
//! the carts of one millisecond do not all queue on one shard) to the ids
//! due then; the reaper scans their keys (the ttl and the retention window
//! in ms, times the lanes).

use super::books::{self, available, settle, Books, BooksClient, Record, State};
use super::{Answer, Engine, Stock};
use crate::workload::{item_key, ItemSpec};
use dashmap::mapref::entry::Entry;
use dashmap::DashMap;
use omnistock::{Channel, Clock, ItemKey, ManualClock};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// Lanes of the deadline and retention indexes per millisecond.
const LANES: u64 = 16;

/// A key of the deadline and retention indexes: `(ms, lane)`.
type Slot = (u64, u64);

fn slot(at: u64, id: u64) -> Slot {
    (at, id % LANES)
}

/// One item: `on_hand << 32 | reserved` in one word, and its safety stock.
#[derive(Debug, Default)]
struct Cell {
    word: AtomicU64,
    safety: AtomicU32,
}

fn unpack(word: u64) -> (u32, u32) {
    ((word >> 32) as u32, word as u32)
}

fn pack(on_hand: u32, reserved: u32) -> u64 {
    u64::from(on_hand) << 32 | u64::from(reserved)
}

impl Cell {
    /// Moves the word by `change` (on hand, reserved) if the answer is
    /// `Some`; false when it answers `None`.
    fn update(&self, change: impl Fn(u32, u32) -> Option<(u32, u32)>) -> bool {
        self.word
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |word| {
                let (on_hand, reserved) = unpack(word);
                change(on_hand, reserved).map(|(h, r)| pack(h, r))
            })
            .is_ok()
    }

    fn available(&self, on_hand: u32, reserved: u32, channel: Channel) -> u32 {
        available(
            on_hand,
            reserved,
            self.safety.load(Ordering::Relaxed),
            channel,
        )
    }

    /// Holds `qty` for `channel` if that many are available.
    fn hold(&self, qty: u32, channel: Channel) -> bool {
        self.update(|h, r| (self.available(h, r, channel) >= qty).then_some((h, r + qty)))
    }

    /// Gives back (or, committing, takes out of stock) `qty` held units.
    fn unhold(&self, qty: u32, commit: bool) {
        let delta = if commit {
            pack(qty, qty)
        } else {
            u64::from(qty)
        };
        self.word.fetch_sub(delta, Ordering::AcqRel);
    }

    fn stock(&self) -> Stock {
        let (on_hand, reserved) = unpack(self.word.load(Ordering::Acquire));
        books::stock(on_hand, reserved, self.safety.load(Ordering::Relaxed))
    }
}

pub struct Shared {
    items: DashMap<ItemKey, Cell>,
    reservations: DashMap<u64, Record>,
    /// Ids by deadline (ms); an id whose record has ended since is skipped.
    deadlines: DashMap<Slot, Vec<u64>>,
    /// Terminal ids by the time they ended (ms).
    finished: DashMap<Slot, Vec<u64>>,
    /// Pending reservations now.
    pending: AtomicU64,
    /// One reaper at a time.
    reaper: Mutex<()>,
    clock: Arc<ManualClock>,
    retention_ms: u64,
}

impl Shared {
    /// Moves pending `record` (id `id`) to `to` at `now`, giving back or
    /// taking its units. The caller holds the record's guard.
    fn finish_record(&self, id: u64, record: &mut Record, to: State, now: u64) {
        debug_assert_eq!(record.state, State::Pending);
        record.state = to;
        for (key, qty) in &record.lines {
            let cell = self.items.get(key).expect("items are never removed");
            cell.unhold(*qty, to == State::Committed);
        }
        self.pending.fetch_sub(1, Ordering::Relaxed);
        self.finished.entry(slot(now, id)).or_default().push(id);
    }

    /// Takes the ids of every bucket of `index` whose time is at most `upto`.
    fn take_due(index: &DashMap<Slot, Vec<u64>>, upto: u64) -> Vec<u64> {
        let due: Vec<Slot> = index
            .iter()
            .map(|bucket| *bucket.key())
            .filter(|&(at, _)| at <= upto)
            .collect();
        due.into_iter()
            .filter_map(|at| index.remove(&at))
            .flat_map(|(_, ids)| ids)
            .collect()
    }
}

impl Books for Shared {
    fn reserve(&self, id: u64, channel: Channel, lines: &[(ItemKey, u32)], ttl: u64) -> Answer {
        let now = self.clock.now_ms();
        let vacant = match self.reservations.entry(id) {
            Entry::Occupied(mut taken) => {
                let record = taken.get_mut();
                if record.overdue(now) {
                    self.finish_record(id, record, State::Expired, now);
                }
                return record.replay(id, channel, lines);
            }
            Entry::Vacant(vacant) => vacant,
        };
        for (k, (key, qty)) in lines.iter().enumerate() {
            let held = match self.items.get(key) {
                Some(cell) => cell.hold(*qty, channel),
                None => {
                    self.give_back(&lines[..k]);
                    return Answer::Unexpected(format!("reserve {id}: unknown item {key}"));
                }
            };
            if !held {
                self.give_back(&lines[..k]);
                return Answer::Insufficient;
            }
        }
        let expires_at = now.saturating_add(ttl);
        vacant.insert(Record::pending(channel, lines, expires_at));
        self.pending.fetch_add(1, Ordering::Relaxed);
        self.deadlines
            .entry(slot(expires_at, id))
            .or_default()
            .push(id);
        Answer::Ok
    }

    fn finish(&self, id: u64, to: State) -> Answer {
        let now = self.clock.now_ms();
        let Some(mut record) = self.reservations.get_mut(&id) else {
            return Answer::Unexpected(format!("{to:?} {id}: unknown reservation"));
        };
        let (moved, answer) = settle(id, record.state, record.overdue(now), to);
        if let Some(to) = moved {
            self.finish_record(id, &mut record, to, now);
        }
        answer
    }

    fn sell(&self, key: ItemKey, qty: u32, channel: Channel) -> Answer {
        let Some(cell) = self.items.get(&key) else {
            return Answer::Unexpected(format!("sell {key}: unknown item"));
        };
        if cell.update(|h, r| (cell.available(h, r, channel) >= qty).then_some((h - qty, r))) {
            Answer::Ok
        } else {
            Answer::Insufficient
        }
    }

    fn restock(&self, key: ItemKey, qty: u32) -> Answer {
        let cell = self.items.entry(key).or_default();
        if cell.update(|h, r| Some((h.checked_add(qty)?, r))) {
            Answer::Ok
        } else {
            Answer::Unexpected(format!("restock {key}: overflow"))
        }
    }

    fn level(&self, key: ItemKey) -> Option<Stock> {
        self.items.get(&key).map(|cell| cell.stock())
    }

    fn expire(&self) -> u64 {
        let _reaper = self.reaper.lock().unwrap_or_else(|e| e.into_inner());
        let now = self.clock.now_ms();
        let mut expired = 0;
        for id in Self::take_due(&self.deadlines, now) {
            if let Some(mut record) = self.reservations.get_mut(&id) {
                if record.overdue(now) {
                    self.finish_record(id, &mut record, State::Expired, now);
                    expired += 1;
                }
            }
        }
        if let Some(upto) = now.checked_sub(self.retention_ms) {
            for id in Self::take_due(&self.finished, upto) {
                self.reservations
                    .remove_if(&id, |_, record| record.state != State::Pending);
            }
        }
        expired
    }
}

impl Shared {
    /// Gives back the lines a failed reserve already held.
    fn give_back(&self, lines: &[(ItemKey, u32)]) {
        for (key, qty) in lines {
            if let Some(cell) = self.items.get(key) {
                cell.unhold(*qty, false);
            }
        }
    }
}

pub struct DashMapEngine {
    shared: Arc<Shared>,
}

impl DashMapEngine {
    pub fn new(clock: Arc<ManualClock>, retention_ms: u64) -> DashMapEngine {
        DashMapEngine {
            shared: Arc::new(Shared {
                items: DashMap::new(),
                reservations: DashMap::new(),
                deadlines: DashMap::new(),
                finished: DashMap::new(),
                pending: AtomicU64::new(0),
                reaper: Mutex::new(()),
                clock,
                retention_ms,
            }),
        }
    }

    pub fn pending(&self) -> u64 {
        self.shared.pending.load(Ordering::Relaxed)
    }
}

impl Engine for DashMapEngine {
    type Client = BooksClient<Shared>;
    const NAME: &'static str = "dashmap";

    fn client(&self) -> Result<Self::Client, String> {
        Ok(BooksClient::new(Arc::clone(&self.shared)))
    }

    fn stock(&self, specs: &[ItemSpec]) -> Result<(), String> {
        for (i, spec) in specs.iter().enumerate() {
            let key = item_key(i as u32);
            let cell = self.shared.items.entry(key).or_default();
            cell.safety.store(spec.safety, Ordering::Relaxed);
            if !cell.update(|h, r| Some((h.checked_add(spec.stock)?, r))) {
                return Err(format!("stock {key}: overflow"));
            }
        }
        Ok(())
    }

    fn levels(&self, n: u32) -> Result<Vec<Stock>, String> {
        books::levels(&*self.shared, n)
    }

    fn remembered(&self) -> Result<u64, String> {
        Ok(self.shared.reservations.len() as u64)
    }
}

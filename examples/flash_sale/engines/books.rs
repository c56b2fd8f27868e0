//! The bookkeeping the in-process peers (`mutex`, `dashmap`) share: the
//! reservation record and its states, the rules for a replayed reserve and
//! for commit or release, the stock arithmetic, and one [`Client`] that
//! drives any engine implementing [`Books`].
//!
//! Each engine keeps the same records (channel, lines, state, deadline by
//! id), expires lazily and through a deadline index, and forgets terminal
//! records after the retention window; only how it locks differs.

use super::{Answer, Client, Op, Stock};
use crate::workload::item_key;
use omnistock::{Channel, ItemKey};
use std::sync::Arc;

/// Where a reservation is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    Pending,
    Committed,
    Released,
    Expired,
}

/// One reservation, kept by id.
#[derive(Debug)]
pub struct Record {
    pub channel: Channel,
    pub state: State,
    pub expires_at: u64,
    pub lines: Vec<(ItemKey, u32)>,
}

impl Record {
    /// A fresh pending reservation.
    pub fn pending(channel: Channel, lines: &[(ItemKey, u32)], expires_at: u64) -> Record {
        Record {
            channel,
            state: State::Pending,
            expires_at,
            lines: lines.to_vec(),
        }
    }

    /// Pending with its deadline passed at `now`: expire it before anything.
    pub fn overdue(&self, now: u64) -> bool {
        self.state == State::Pending && now >= self.expires_at
    }

    /// The answer to a reserve of an id this record already holds (after its
    /// lazy expiry): an id conflict when channel or lines differ, else a
    /// replay. The workload never replays, so both are unexpected.
    pub fn replay(&self, id: u64, channel: Channel, lines: &[(ItemKey, u32)]) -> Answer {
        let mut a = self.lines.clone();
        let mut b = lines.to_vec();
        a.sort_unstable();
        b.sort_unstable();
        if self.channel != channel || a != b {
            Answer::Unexpected(format!("reserve {id}: id_conflict"))
        } else {
            Answer::Unexpected(format!("reserve {id}: replayed as {:?}", self.state))
        }
    }
}

/// What commit or release (`to`) does to reservation `id` found in `state`,
/// past its deadline or not: the state to move it to (if it moves) and the
/// answer.
pub fn settle(id: u64, state: State, overdue: bool, to: State) -> (Option<State>, Answer) {
    match state {
        State::Pending if overdue => (Some(State::Expired), Answer::Expired),
        State::Pending => (Some(to), Answer::Ok),
        State::Expired => (None, Answer::Expired),
        state => (
            None,
            Answer::Unexpected(format!("{to:?} {id}: already {state:?}")),
        ),
    }
}

/// Units a channel may take: online keeps the safety stock back.
pub fn available(on_hand: u32, reserved: u32, safety: u32, channel: Channel) -> u32 {
    let free = on_hand - reserved;
    match channel {
        Channel::Online => free.saturating_sub(safety),
        Channel::InStore => free,
    }
}

/// The counters of an item in the workload's vocabulary.
pub fn stock(on_hand: u32, reserved: u32, safety: u32) -> Stock {
    Stock {
        on_hand: u64::from(on_hand),
        reserved: u64::from(reserved),
        safety: u64::from(safety),
    }
}

/// The operations of an in-process engine with records, items by key.
pub trait Books: Send + Sync {
    fn reserve(&self, id: u64, channel: Channel, lines: &[(ItemKey, u32)], ttl_ms: u64) -> Answer;
    /// Commit (`State::Committed`) or release (`State::Released`).
    fn finish(&self, id: u64, to: State) -> Answer;
    fn sell(&self, key: ItemKey, qty: u32, channel: Channel) -> Answer;
    fn restock(&self, key: ItemKey, qty: u32) -> Answer;
    fn level(&self, key: ItemKey) -> Option<Stock>;
    /// Expires every overdue reservation and forgets terminal ones past
    /// retention; answers how many it expired.
    fn expire(&self) -> u64;
}

/// The counters of items `0..n`, for [`super::Engine::levels`].
pub fn levels(books: &impl Books, n: u32) -> Result<Vec<Stock>, String> {
    (0..n)
        .map(|i| {
            let key = item_key(i);
            books
                .level(key)
                .ok_or_else(|| format!("level {key}: unknown item"))
        })
        .collect()
}

/// A handle on an in-process engine: answers each call at once.
pub struct BooksClient<B> {
    books: Arc<B>,
    lines: Vec<(ItemKey, u32)>,
    answer: Option<Answer>,
}

impl<B> BooksClient<B> {
    pub fn new(books: Arc<B>) -> BooksClient<B> {
        BooksClient {
            books,
            lines: Vec::with_capacity(4),
            answer: None,
        }
    }
}

impl<B: Books> Client for BooksClient<B> {
    fn send(&mut self, op: Op<'_>) {
        self.answer = Some(self.call(op));
    }

    fn recv(&mut self) -> Answer {
        self.answer.take().expect("recv after send")
    }

    fn call(&mut self, op: Op<'_>) -> Answer {
        let books = &*self.books;
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
                books.reserve(id, channel, &self.lines, ttl_ms)
            }
            Op::Commit { id, .. } => books.finish(id, State::Committed),
            Op::Release { id, .. } => books.finish(id, State::Released),
            Op::Sell { item, qty, channel } => books.sell(item_key(item), qty, channel),
            Op::Restock { item, qty } => books.restock(item_key(item), qty),
            Op::Level { item } => {
                let key = item_key(item);
                match books.level(key) {
                    Some(stock) => Answer::Level(stock),
                    None => Answer::Unexpected(format!("level {key}: unknown item")),
                }
            }
            Op::Expire => Answer::Count(books.expire()),
        }
    }
}

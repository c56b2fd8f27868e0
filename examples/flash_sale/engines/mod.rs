//! What runs the workload. Every engine answers the same operations in the
//! same vocabulary ([`Op`], [`Answer`]); the driver checks all of them by the
//! same counting.
//!
//! - [`omnistock`]: the crate.
//! - [`mutex`]: one `Mutex` over `HashMap`s with the same bookkeeping
//!   (records with ids, states, deadlines, idempotency, retention).
//! - [`dashmap`]: the same bookkeeping on `DashMap`s, items as atomic cells.
//!   `mutex` and `dashmap` share their records and client ([`books`]).
//! - [`atomic`]: the bare hardware limit: the cell compare-and-swap and its
//!   undo or commit on a dense array, no ids and no records.
//! - [`redis`]: Lua scripts (EVALSHA) on a throwaway `redis-server`,
//!   through the `redis` crate.
//! - [`postgres`]: a row per item and PL/pgSQL functions on a throwaway
//!   PostgreSQL cluster, through the `postgres` crate.

pub mod atomic;
pub mod books;
pub mod dashmap;
pub mod mutex;
pub mod omnistock;
#[cfg(feature = "peers")]
pub mod postgres;
#[cfg(feature = "peers")]
pub mod redis;
#[cfg(feature = "peers")]
pub mod server;

use crate::workload::ItemSpec;
use ::omnistock::Channel;

/// Engines in the order `--engine all` runs them.
pub const ALL: [&str; 6] = [
    "omnistock",
    "mutex",
    "dashmap",
    "atomic-limit",
    "redis",
    "postgres",
];

/// One operation, items by number, lines as `(item, qty)` with distinct
/// items. Commit and release carry the cart's lines too: only `atomic-limit`,
/// which keeps no records, reads them.
#[derive(Clone, Copy, Debug)]
pub enum Op<'a> {
    Reserve {
        id: u64,
        channel: Channel,
        lines: &'a [(u32, u32)],
        ttl_ms: u64,
    },
    Commit {
        id: u64,
        lines: &'a [(u32, u32)],
    },
    Release {
        id: u64,
        lines: &'a [(u32, u32)],
    },
    Sell {
        item: u32,
        qty: u32,
        channel: Channel,
    },
    Restock {
        item: u32,
        qty: u32,
    },
    Level {
        item: u32,
    },
    /// Expire every overdue reservation and forget terminal ones past the
    /// retention window, at the shared clock's time.
    Expire,
}

/// An item's counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stock {
    pub on_hand: u64,
    pub reserved: u64,
    pub safety: u64,
}

/// The answers the workload expects; anything else is `Unexpected`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Answer {
    /// Reserve: held (fresh, not replayed). Commit, release: done now. Sell,
    /// restock: done.
    Ok,
    /// Reserve or sell: not enough units for the channel.
    Insufficient,
    /// Commit or release found the reservation expired (now or before).
    Expired,
    Level(Stock),
    /// Expire: how many reservations it expired.
    Count(u64),
    /// Any other contract answer, or a fault (I/O, protocol).
    Unexpected(String),
}

/// One client of an engine: a handle for in-process engines, a connection
/// for servers. `send` and `recv` split a call so one thread can keep a
/// request in flight on each of several connections.
pub trait Client: Send {
    fn send(&mut self, op: Op<'_>);
    fn recv(&mut self) -> Answer;
    fn call(&mut self, op: Op<'_>) -> Answer {
        self.send(op);
        self.recv()
    }
}

/// An engine ready to run: items not yet stocked.
pub trait Engine: Sync {
    type Client: Client;
    const NAME: &'static str;
    /// False where the engine keeps no deadlines (`atomic-limit`): carts
    /// left to expire are then undone by their shopper at once.
    const HAS_EXPIRY: bool = true;
    /// Connections load thread `thread` of `threads` drives (1 for
    /// in-process engines): the engine's connections spread evenly, at least
    /// one each.
    fn slots(&self, _threads: usize, _thread: usize) -> usize {
        1
    }
    /// Total connections the shoppers hold, for the report (0: in-process).
    fn connections(&self) -> usize {
        0
    }
    fn client(&self) -> Result<Self::Client, String>;
    /// Creates items `0..specs.len()` with their stock and safety stock.
    fn stock(&self, specs: &[ItemSpec]) -> Result<(), String>;
    /// The counters of items `0..n`.
    fn levels(&self, n: u32) -> Result<Vec<Stock>, String>;
    /// Reservations remembered (pending and retained terminal ones).
    fn remembered(&self) -> Result<u64, String>;
}

/// Thread `thread`'s share of `total` connections spread over `threads`.
#[cfg(feature = "peers")]
pub fn share(total: usize, threads: usize, thread: usize) -> usize {
    (total / threads + usize::from(thread < total % threads)).max(1)
}

/// Sorted by item: the canonical order the server engines store and lock in.
#[cfg(feature = "peers")]
pub fn sorted_lines(lines: &[(u32, u32)], out: &mut Vec<(u32, u32)>) {
    out.clear();
    out.extend_from_slice(lines);
    out.sort_unstable();
}

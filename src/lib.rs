//! # omnistock
//!
//! Per-SKU, per-store stock that an order service embeds to reserve, commit
//! and release units atomically, so that online checkouts, in-store sales and
//! flash sales never oversell. The contract every operation follows is
//! `SEMANTICS.md` (shipped with the project); [`Inventory`] is the engine.
//!
//! # Examples
//!
//! ```
//! use std::sync::Arc;
//! use omnistock::{Channel, Error, Inventory, Line, ManualClock, ReservationId, Sku, StoreId};
//!
//! let clock = Arc::new(ManualClock::new());
//! let inventory = Inventory::builder().clock(clock.clone()).build();
//! let (shoes, downtown) = (Sku(7), StoreId(1));
//! inventory.restock(shoes, downtown, 5)?;
//! inventory.set_safety_stock(shoes, downtown, 1); // kept for walk-in customers
//!
//! // An online cart holds 4 units for 60 s; only 4 are available online.
//! let cart = ReservationId(1);
//! inventory.reserve_with_ttl(cart, Channel::Online, &[Line::new(shoes, downtown, 4)], 60_000)?;
//! let again = inventory.reserve(ReservationId(2), Channel::Online, &[Line::new(shoes, downtown, 1)]);
//! assert!(matches!(again, Err(Error::Insufficient { available: 0, .. })));
//!
//! // The shopper walks away: after the deadline the units come back.
//! clock.advance(60_000);
//! assert_eq!(inventory.expire(), 1);
//! assert_eq!(inventory.level(shoes, downtown)?.available_online, 4);
//! # Ok::<(), omnistock::Error>(())
//! ```
//!
//! # Safety and correctness
//!
//! - **Never oversell.** An item's `on_hand` and `reserved` are the two
//!   halves of one `AtomicU64`; reserve and sell are compare-and-swap loops
//!   that check availability and change the word in one instruction, so
//!   `reserved <= on_hand` holds at every instant any thread can observe.
//! - **All or nothing, at one instant.** A multi-line reservation claims
//!   its lines' cells (swaps each word for a value no real cell holds, in
//!   ascending cell order, so two carts never wait for each other in a
//!   cycle), checks every line in the order given against what the cells
//!   held, and stores them back all held or all as they were. Every other
//!   operation on a claimed cell waits the few instructions that takes, so
//!   none sees a cart partly held, and a refusal reports what was
//!   available at that instant. Commit, release and expiry of a
//!   multi-line reservation return its lines the same way, and a new item
//!   appears with its first restock, count or safety stock already done.
//!   One exception to linearizability remains: a single-line online
//!   reserve or sale reads the item's safety stock just before its
//!   compare-and-swap, and a safety stock change landing between the two
//!   is not seen by it.
//! - **Exactly once.** Everything naming a reservation id runs under that
//!   id's shard lock (one of 256): the same id reserved twice at once holds
//!   units once, and of commit, release, lazy expiry and the reaper exactly
//!   one moves a pending reservation to its terminal state and returns or
//!   takes its units.
//! - **Two small `unsafe` modules.** Lock-free structures are built from
//!   atomics and never-freed arena segments, without `unsafe`. The
//!   exceptions, each tested under Miri: `src/stock/huge_pages.rs` allocates the
//!   item table zeroed and asks the kernel for huge pages under it before
//!   its first write, and `src/prefetch.rs` issues a prefetch instruction
//!   (a hint that reads nothing into the program). `unsafe_code` is denied
//!   everywhere else.
//! - **Checked**: loom models of each race (`tests/loom.rs`), a model-based
//!   property test against a plain reference implementation of the contract
//!   ([`model::ReferenceModel`]), golden replay scripts, and a multi-threaded
//!   stress test that checks conservation of units.
//!
//! # Performance
//!
//! Stock operations are one atomic step on one cell word. On a sold-out
//! item a refused reserve (of up to 8 lines) only reads: the lines' table
//! entries (which hold their cells), and its id's shard filter, which proves
//! the id unknown without the shard's lock (see `src/reservations/id_filter.rs`; the
//! filters grow with the reservations remembered, and
//! [`InventoryBuilder::expected_reservations`] sizes them up front); no
//! compare-and-swap, no lock, no write. A reservation of up to 4 lines
//! allocates nothing (its first line lives in its record, the others in a
//! fixed block of a per-shard slab), and a multi-line cart reads all its
//! items' entries before it looks any up, so their cache misses overlap.
//! No hot path takes a global lock: items are found
//! through a lock-free open-addressing index (size it with
//! [`InventoryBuilder::expected_items`]) and reservations through 256
//! sharded locks. Reservation ids are laid out in blocks of 128: consecutive
//! ids take different shards of a group of 8, and each shard's 16 ids of a
//! block take neighbouring places in its id table and filter, so order
//! numbers issued in sequence reuse the cache lines their predecessors
//! brought in while neighbours in flight at once take different locks
//! (`src/reservations/id_placement.rs`). An item costs about 31 bytes (a 24-byte entry in a
//! table at most 8/9 full, plus 4 bytes of creation order), a pending
//! single-line reservation about 69 (a 32-byte slab record, its 8-byte
//! id-table slot in a table at most half full, and its deadline entry).
//! `expire()` costs O(1) per in-order deadline it processes (O(log n) for
//! the others), not per reservation pending. Effect records are only built
//! when an [`EffectObserver`] is installed.
//!
//! # Implementation notes
//!
//! `src/sync.rs` is the only place atomics and locks are imported from, so
//! building with `--cfg omnistock_loom` runs the whole engine under loom.
//! Cells live in an append-only arena and are named by `u32` indices that
//! reservations keep; items are never removed. Time comes from an injected
//! [`Clock`].
#![warn(missing_docs)]
#![deny(unsafe_code)]

mod clock;
mod command;
mod effect;
mod engine;
mod error;
mod limits;
#[cfg(feature = "model")]
pub mod model;
mod prefetch;
#[cfg(feature = "replay")]
pub mod replay;
mod reservations;
mod stock;
mod sync;
mod types;

pub use clock::{Clock, ManualClock, SystemClock};
pub use command::{Command, Outcome, ReservationAck, ReservationInfo};
pub use effect::{Effect, EffectObserver};
pub use engine::{Inventory, InventoryBuilder, DEFAULT_EXPECTED_ITEMS};
pub use error::{BuildError, Error};
pub use limits::{DEFAULT_RETENTION_MS, DEFAULT_TTL_MS, MAX_LINES};
pub use types::{Channel, ItemKey, Level, Line, ReservationId, ReservationState, Sku, StoreId};

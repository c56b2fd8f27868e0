//! # omnistock
//!
//! Per-SKU, per-store stock that an order service embeds to reserve, commit
//! and release units atomically, so that online checkouts, in-store sales and
//! flash sales never oversell. The contract every operation follows is
//! `docs/CONTRACT.md` in the repository; [`Inventory`] is the engine.
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
//!   Safety stock changes under a claim too, and every operation that
//!   reads it takes it at the same instant as the stock (under a claim of
//!   the cell, or between two readings of a count of safety stock
//!   changes).
//! - **Exactly once.** Everything naming a reservation id runs under that
//!   id's shard lock (one of 256): the same id reserved twice at once holds
//!   units once, and of commit, release, lazy expiry and the reaper exactly
//!   one moves a pending reservation to its terminal state and returns or
//!   takes its units.
//! - **Two small `unsafe` modules.** `src/stock/huge_pages.rs` allocates the
//!   item table zeroed and asks the kernel for huge pages under it before
//!   its first write, and `src/prefetch.rs` issues a prefetch instruction
//!   (a hint that reads nothing into the program); both are tested under
//!   Miri. `unsafe_code` is denied everywhere else.
//! - **Checked** by loom models of each race, a model-based property test
//!   against a plain reference implementation of the contract (feature
//!   `model`: `model::ReferenceModel`), a deterministic simulator, golden
//!   replay scripts, fuzzing and a multi-threaded stress test
//!   (`docs/CORRECTNESS.md`).
//!
//! # Performance
//!
//! Stock operations are one atomic step on one cell word. A reserve
//! refused on a sold-out item (a cart of up to 8 lines) only reads: the
//! lines' table entries, which hold their cells, and its id's shard
//! filter, which proves the id unknown without the shard's lock; no
//! compare-and-swap, no lock, no write. A reservation of up to 4 lines
//! allocates nothing. No hot path takes a global lock: items are found
//! through a lock-free open-addressing table (size it with
//! [`InventoryBuilder::expected_items`]) and reservations through 256
//! sharded locks; [`InventoryBuilder::expected_reservations`] sizes the
//! id filters up front. `expire()` costs what it processes, not what stays
//! pending. Effect records are only built when an [`EffectObserver`] is
//! installed. Figures and how to reproduce them: `docs/PERFORMANCE.md`.
//!
//! # Implementation notes
//!
//! `src/sync.rs` is the only place shared atomics and locks are imported
//! from, so building with `--cfg omnistock_loom` runs the whole engine
//! under loom. An item's cell lives in its entry of the item table and is
//! named by a `u32` index that reservations keep; items are never removed,
//! so the index stays valid. Time comes from an injected [`Clock`]. The
//! subsystems and their invariants: `docs/ARCHITECTURE.md`.
#![warn(missing_docs)]
#![deny(unsafe_code)]

mod alerts;
mod campaigns;
mod clock;
mod command;
pub mod durability;
mod effect;
mod engine;
mod error;
#[cfg(feature = "journal")]
pub mod journal;
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

pub use alerts::{Alert, AlertObserver};
pub use campaigns::{CampaignUsage, DEFAULT_MAX_CAMPAIGNS};
pub use clock::{Clock, ManualClock, SystemClock};
pub use command::{
    CheckReport, Command, Done, Mismatch, Outcome, ReservationAck, ReservationInfo,
    ReservationLines,
};
pub use effect::{Effect, EffectObserver};
pub use engine::{
    FewestStores, GivenOrder, Inventory, InventoryBuilder, MostAvailableFirst, SourceRequest,
    Sourcing, DEFAULT_EXPECTED_ITEMS,
};
pub use error::{BuildError, Error};
pub use limits::{DEFAULT_RETENTION_MS, DEFAULT_TTL_MS, MAX_LINES};
pub use types::{
    CampaignId, Channel, CustomerId, ItemKey, Level, Line, ReservationId, ReservationState, Sku,
    StoreId,
};

/// The README's examples, compiled and run as doc tests so they stay in
/// step with the API.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;

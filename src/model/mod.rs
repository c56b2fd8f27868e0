//! What the crate's tests and fuzz targets check the engine with (feature
//! `model`): the reference model of the contract, one seeded random
//! generator, one conservation checker and one engine-against-model driver.
//!
//! - [`ReferenceModel`] restates the contract (`docs/CONTRACT.md`: v1,
//!   the v2 fulfilment operations, campaigns and alerts)
//!   plainly: single-threaded, `BTreeMap`s, no code shared with the engine
//!   beyond the public vocabulary types. It is meant to be obviously
//!   correct, not fast. Time is its own counter, starting at 0 and moved by
//!   [`ReferenceModel::advance`] (saturating), like a
//!   [`ManualClock`](crate::ManualClock).
//! - [`Rng`]: splitmix64, so a seed means the same run everywhere.
//! - [`Conservation`]: per item, units in minus units out is what is on
//!   hand, what is reserved is what live holds hold, and `reserved <=
//!   on_hand` at every read.
//! - [`Lockstep`] runs every request on an [`Inventory`](crate::Inventory)
//!   and on the model, on one manual clock, and compares the answers and
//!   then the state; [`Oracle`] does the model's half for a history
//!   recorded from any engine. Both report a [`Disagreement`].
//! - [`MemorySink`] keeps journal records in memory, so tests can crash
//!   and recover an inventory without a disk.
//!
//! Readings of the contract that the model fixes:
//! - `expires_at = now.saturating_add(ttl)`. When `now + ttl` overflows
//!   (the true sum passes `u64::MAX`), the reservation reports
//!   `expires_at_ms = u64::MAX` but is overdue at once, for every operation
//!   and for `expire()`. A sum of exactly `u64::MAX` is not an overflow. The
//!   same holds for the deadline set by `extend`.
//! - A reserve without a ttl takes the default ttl. A configured default of
//!   0 stands for the contract's default (900,000 ms), as in
//!   [`InventoryBuilder::default_ttl_ms`](crate::InventoryBuilder::default_ttl_ms),
//!   so a reserve without a ttl is never `invalid` for its ttl.
//! - Fulfilment: `get` reports a partially committed reservation's lines as
//!   reserved; a replayed partial commit answers what was committed the
//!   first time; `check` counts overdue pending reservations as live and,
//!   the model being its own bookkeeping, is always consistent.
//! - Campaigns and alerts: a campaign reservation and a plain one with the
//!   same id are never the same request (nor is a campaign one for
//!   `reserve_any`); redefining a campaign keeps its counted units; a
//!   customer whose count returns to 0 is dropped; every item with a
//!   reorder point is evaluated after every operation (an item the
//!   operation did not change keeps its mark, so this raises only what the
//!   contract raises), in item order, so one operation's alerts come
//!   sorted by SKU, then store. Ending a campaign is Rust-only and not
//!   modelled.
//! - `Error::Invalid` carries a reason text of the model's own; compare
//!   errors by [`Error::name`](crate::Error::name) and their other fields
//!   ([`same_answer`]).

mod conservation;
mod lockstep;
mod memory_sink;
mod reference;
mod rng;

pub use conservation::{level_ok, Conservation};
pub use lockstep::{Answer, Disagreement, Lockstep, Oracle};
pub use memory_sink::MemorySink;
pub use reference::{same_answer, ReferenceModel};
pub use rng::Rng;

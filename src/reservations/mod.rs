//! Reservations: records, their one-way state change, and how they are
//! found and timed out.
//!
//! Reservation ids are spread over sharded locks ([`id_placement`]); a
//! shard ([`shard`]) keeps its records in a [`slab`], finds them through an
//! [`id_table`], proves fresh ids unknown without its lock through an
//! [`id_filter`], keeps multi-line carts' later lines in [`extra_lines`] and
//! files deadlines and terminal times in [`deadlines`]. Everything here but
//! the id filter is read and changed under the shard's lock; a pending
//! record reaches a terminal state exactly once, in the shard.

pub(crate) mod deadlines;
pub(crate) mod extra_lines;
pub(crate) mod held_lines;
pub(crate) mod id_filter;
pub(crate) mod id_placement;
pub(crate) mod id_table;
pub(crate) mod shard;
pub(crate) mod slab;

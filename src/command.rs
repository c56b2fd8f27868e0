//! Operations as data. [`Command`] names every operation of the contract and
//! [`Outcome`] every successful answer, so the replay tool, the fuzz targets,
//! the model-based tests and other engines share one vocabulary. The typed
//! methods of [`Inventory`](crate::Inventory) stay the main API;
//! [`Inventory::apply`](crate::Inventory::apply) is a thin dispatcher.

use crate::types::{Channel, Level, Line, ReservationId, ReservationState, Sku, StoreId};
use serde::{Deserialize, Serialize};

/// One operation of the contract.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Command {
    /// `on_hand += qty`, creating the item if new.
    Restock {
        /// The SKU.
        sku: Sku,
        /// The store.
        store: StoreId,
        /// Units received, at least 1.
        qty: u32,
    },
    /// A cycle count: `on_hand = qty`, creating the item if new.
    SetOnHand {
        /// The SKU.
        sku: Sku,
        /// The store.
        store: StoreId,
        /// Units counted.
        qty: u32,
    },
    /// `safety_stock = qty`, creating the item if new.
    SetSafetyStock {
        /// The SKU.
        sku: Sku,
        /// The store.
        store: StoreId,
        /// Units the online channel may not take.
        qty: u32,
    },
    /// An immediate sale without a reservation.
    Sell {
        /// The SKU.
        sku: Sku,
        /// The store.
        store: StoreId,
        /// Units sold, at least 1.
        qty: u32,
        /// The channel selling (in store for a POS sale).
        channel: Channel,
    },
    /// Read an item's cell.
    Level {
        /// The SKU.
        sku: Sku,
        /// The store.
        store: StoreId,
    },
    /// Hold units for an order, all lines or none.
    Reserve {
        /// The idempotency key.
        id: ReservationId,
        /// The channel reserving.
        channel: Channel,
        /// Time to live; `None` takes the inventory's default.
        ttl_ms: Option<u64>,
        /// The lines, 1 to 256, each item at most once.
        lines: Vec<Line>,
    },
    /// Take a pending reservation's units out of stock.
    Commit {
        /// The reservation.
        id: ReservationId,
    },
    /// Give a pending reservation's units back.
    Release {
        /// The reservation.
        id: ReservationId,
    },
    /// Move a pending reservation's deadline to `now + ttl_ms`.
    Extend {
        /// The reservation.
        id: ReservationId,
        /// New time to live from now, at least 1.
        ttl_ms: u64,
    },
    /// Read a reservation.
    Get {
        /// The reservation.
        id: ReservationId,
    },
    /// Expire overdue reservations and forget old terminal ones.
    Expire,
}

/// The answer to reserve, commit, release and extend.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ReservationAck {
    /// The reservation.
    pub id: ReservationId,
    /// Its state after the operation.
    pub state: ReservationState,
    /// True when the operation had already happened and nothing changed now.
    pub replayed: bool,
    /// The deadline, when the state is pending.
    pub expires_at_ms: Option<u64>,
}

/// A reservation as it is now (the answer to get).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReservationInfo {
    /// The reservation.
    pub id: ReservationId,
    /// Its state.
    pub state: ReservationState,
    /// The channel it was made for.
    pub channel: Channel,
    /// The reserved lines, in the order they were requested.
    pub lines: Vec<Line>,
    /// Its deadline (the last one set, for a terminal reservation).
    pub expires_at_ms: u64,
}

/// A successful answer of [`Inventory::apply`](crate::Inventory::apply).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Outcome {
    /// Stock operations answer with the item's level after the operation.
    Level(Level),
    /// Reserve, commit, release and extend.
    Reservation(ReservationAck),
    /// Get.
    Info(ReservationInfo),
    /// Expire: how many reservations it expired.
    Expired(u64),
}

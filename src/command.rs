//! Operations as data. [`Command`] names every operation of the contract and
//! [`Outcome`] every successful answer, so the replay tool, the fuzz targets,
//! the model-based tests and other engines share one vocabulary. The typed
//! methods of [`Inventory`](crate::Inventory) stay the main API;
//! [`Inventory::apply`](crate::Inventory::apply) is a thin dispatcher.
//!
//! Their serde form is the replay format of `docs/CONTRACT.md`: a
//! [`Command`] serializes to the request line that asks for it
//! (`{"op":"reserve","id":7,...}`) and deserializes from one, with the
//! format's defaults; an [`Outcome`] serializes to the members of its answer
//! line after `"ok":true`. A service can put them on a queue or in an HTTP
//! body as they are.

use crate::types::{Channel, Level, Line, ReservationId, ReservationState, Sku, StoreId};
use serde::{Deserialize, Deserializer, Serialize};

/// One operation of the contract. Its serde form is the replay request line:
/// the variant in `op` (snake case), the fields by name; `channel` and
/// `ttl_ms` may be left out (`sell` defaults to in store, `reserve` to
/// online and the inventory's ttl), and a `ttl_ms` of `null` is refused.
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
        #[serde(default = "in_store")]
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
        #[serde(default)]
        channel: Channel,
        /// Time to live; `None` takes the inventory's default.
        #[serde(
            default,
            skip_serializing_if = "Option::is_none",
            deserialize_with = "present"
        )]
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

/// The answer to reserve, commit, release and extend. Its serde form leaves
/// `expires_at_ms` out when there is none.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ReservationAck {
    /// The reservation.
    pub id: ReservationId,
    /// Its state after the operation.
    pub state: ReservationState,
    /// True when the operation had already happened and nothing changed now.
    pub replayed: bool,
    /// The deadline, when the state is pending.
    #[serde(default, skip_serializing_if = "Option::is_none")]
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

/// A successful answer of [`Inventory::apply`](crate::Inventory::apply). Its
/// serde form is the replay answer's members: `{"level":{...}}`, the fields
/// of a [`ReservationAck`] or a [`ReservationInfo`], or `{"expired":n}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Outcome {
    /// Stock operations answer with the item's level after the operation.
    #[serde(with = "level_member")]
    Level(Level),
    /// Reserve, commit, release and extend.
    Reservation(ReservationAck),
    /// Get.
    Info(ReservationInfo),
    /// Expire: how many reservations it expired.
    #[serde(with = "expired_member")]
    Expired(u64),
}

/// The default channel of `sell`.
fn in_store() -> Channel {
    Channel::InStore
}

/// An optional field that, when given, must hold a value: `null` is a wrong
/// type in the replay format, not a way to leave the field out.
fn present<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<u64>, D::Error> {
    u64::deserialize(deserializer).map(Some)
}

/// [`Outcome::Level`] as `{"level":{...}}`.
mod level_member {
    use crate::types::Level;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    #[derive(Serialize)]
    struct Member<'a> {
        level: &'a Level,
    }

    #[derive(Deserialize)]
    struct OwnedMember {
        level: Level,
    }

    pub(super) fn serialize<S: Serializer>(
        level: &Level,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        Member { level }.serialize(serializer)
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Level, D::Error> {
        OwnedMember::deserialize(deserializer).map(|member| member.level)
    }
}

/// [`Outcome::Expired`] as `{"expired":n}`.
mod expired_member {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    #[derive(Serialize, Deserialize)]
    struct Member {
        expired: u64,
    }

    pub(super) fn serialize<S: Serializer>(
        expired: &u64,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        Member { expired: *expired }.serialize(serializer)
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<u64, D::Error> {
        Member::deserialize(deserializer).map(|member| member.expired)
    }
}

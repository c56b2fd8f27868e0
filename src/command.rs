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

use crate::alerts::Alert;
use crate::types::{
    CampaignId, Channel, CustomerId, Level, Line, ReservationId, ReservationState, Sku, StoreId,
};
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
        /// Compare and set: the `on_hand` the count was based on; refused
        /// as stale when the item holds another. `None`: count as is.
        #[serde(
            default,
            skip_serializing_if = "Option::is_none",
            deserialize_with = "present"
        )]
        expect: Option<u32>,
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
        /// A partial commit: the units picked per line (lines not listed
        /// commit 0; the rest of every line is released). `None`: every
        /// line in full.
        #[serde(
            default,
            skip_serializing_if = "Option::is_none",
            deserialize_with = "present"
        )]
        lines: Option<Vec<Line>>,
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
    // ----- v2: fulfilment -----
    /// A POS basket: several lines sold at once, all or nothing, without a
    /// reservation. Its request line is a `sell` with `lines`.
    #[serde(rename(serialize = "sell", deserialize = "sell_lines"))]
    SellLines {
        /// The lines, 1 to 256, each item at most once.
        lines: Vec<Line>,
        /// The channel selling (in store for a till).
        #[serde(default = "in_store")]
        channel: Channel,
    },
    /// Reserve one SKU from the first candidate store that can serve it
    /// (or, with `split`, from the stores in order).
    ReserveAny {
        /// The idempotency key.
        id: ReservationId,
        /// The SKU.
        sku: Sku,
        /// Units wanted, at least 1.
        qty: u32,
        /// The candidate stores, most preferred first.
        stores: Vec<StoreId>,
        /// Take from several stores in order when no single one suffices.
        #[serde(default, skip_serializing_if = "is_false")]
        split: bool,
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
    },
    /// Recompute every item's reserved units from the live reservations
    /// and report the items that disagree.
    Check,
    // ----- v2: campaigns and alerts -----
    /// Define a flash-sale campaign on one item, or change its limits.
    Campaign {
        /// The campaign.
        campaign: CampaignId,
        /// The SKU it sells.
        sku: Sku,
        /// The store it sells from.
        store: StoreId,
        /// Units it may count in all (0 allowed: everything is refused).
        quota: u32,
        /// Units one customer may count (0 allowed).
        per_customer: u32,
    },
    /// A reservation that joins a campaign. Its request line is a
    /// `reserve` with `campaign` and `customer`; each is optional in the
    /// line (one without the other is refused as invalid), and `lines`
    /// must hold exactly one line, the campaign's item.
    #[serde(rename(serialize = "reserve", deserialize = "reserve_campaign"))]
    ReserveCampaign {
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
        /// The lines: one, the campaign's item.
        lines: Vec<Line>,
        /// The campaign.
        #[serde(
            default,
            skip_serializing_if = "Option::is_none",
            deserialize_with = "present"
        )]
        campaign: Option<CampaignId>,
        /// The customer, whose limit in the campaign it counts against.
        #[serde(
            default,
            skip_serializing_if = "Option::is_none",
            deserialize_with = "present"
        )]
        customer: Option<CustomerId>,
    },
    /// Set an item's reorder point (0: no alerts), creating the item if new.
    SetReorderPoint {
        /// The SKU.
        sku: Sku,
        /// The store.
        store: StoreId,
        /// Alert when `available_online` falls below this.
        qty: u32,
    },
    /// Take the low-stock alerts raised since the last `alerts`.
    Alerts,
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
    /// A partial commit and `reserve_any`: the acknowledgement and the
    /// lines (committed quantities, or the lines reserved).
    ReservationLines(ReservationLines),
    /// Reserve, commit, release and extend.
    Reservation(ReservationAck),
    /// Get.
    Info(ReservationInfo),
    /// Expire: how many reservations it expired.
    #[serde(with = "expired_member")]
    Expired(u64),
    /// A POS basket: each line's level after the sale, in line order.
    #[serde(with = "levels_member")]
    Levels(Vec<Level>),
    /// The consistency check.
    Check(CheckReport),
    /// The low-stock alerts raised since the last `alerts`, oldest first.
    #[serde(with = "alerts_member")]
    Alerts(Vec<Alert>),
    /// Done, nothing to report (a campaign's definition): `{"ok":true}`.
    Done(Done),
}

/// The empty answer of an operation that reports nothing but success.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Done {}

/// A reservation's acknowledgement with lines: the answer to a partial
/// commit (the units committed per line of the reservation, in its line
/// order) and to `reserve_any` (the lines it reserved). Its serde form is
/// the acknowledgement's members, then `lines`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReservationLines {
    /// The acknowledgement, as for reserve and commit.
    #[serde(flatten)]
    pub ack: ReservationAck,
    /// The lines.
    pub lines: Vec<Line>,
}

/// The answer to the consistency check: `consistent`, and the items whose
/// reserved units disagree with their live reservations (left out of the
/// serde form when there are none).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckReport {
    /// True when every item's reserved units are what its live
    /// reservations hold.
    pub consistent: bool,
    /// The items that disagree, by SKU then store.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub items: Vec<Mismatch>,
}

/// An item whose reserved units disagree with its live reservations.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mismatch {
    /// The SKU.
    pub sku: Sku,
    /// The store.
    pub store: StoreId,
    /// The units the item's cell says are reserved.
    pub reserved: u32,
    /// The units its live (pending) reservations hold.
    pub expected: u64,
}

/// The default channel of `sell`.
fn in_store() -> Channel {
    Channel::InStore
}

/// An optional field that, when given, must hold a value: `null` is a wrong
/// type in the replay format, not a way to leave the field out.
fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    deserializer: D,
) -> Result<Option<T>, D::Error> {
    T::deserialize(deserializer).map(Some)
}

/// `split` is left out of a request line when false.
fn is_false(value: &bool) -> bool {
    !*value
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

/// [`Outcome::Levels`] as `{"levels":[...]}`.
mod levels_member {
    use crate::types::Level;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    #[derive(Serialize)]
    struct Member<'a> {
        levels: &'a [Level],
    }

    #[derive(Deserialize)]
    struct OwnedMember {
        levels: Vec<Level>,
    }

    pub(super) fn serialize<S: Serializer>(
        levels: &[Level],
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        Member { levels }.serialize(serializer)
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Vec<Level>, D::Error> {
        OwnedMember::deserialize(deserializer).map(|member| member.levels)
    }
}

/// [`Outcome::Alerts`] as `{"alerts":[...]}`.
mod alerts_member {
    use crate::alerts::Alert;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    #[derive(Serialize)]
    struct Member<'a> {
        alerts: &'a [Alert],
    }

    #[derive(Deserialize)]
    struct OwnedMember {
        alerts: Vec<Alert>,
    }

    pub(super) fn serialize<S: Serializer>(
        alerts: &[Alert],
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        Member { alerts }.serialize(serializer)
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Vec<Alert>, D::Error> {
        OwnedMember::deserialize(deserializer).map(|member| member.alerts)
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

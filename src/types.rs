//! Identifiers and small value types of the domain: SKUs, stores, reservation
//! ids, channels, reservation lines and states. Plain data, no behaviour
//! beyond formatting and ordering.

use serde::{Deserialize, Serialize};
use std::fmt;

/// A stock-keeping unit, chosen by the user.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Sku(pub u64);

/// A location that holds stock: a store, warehouse or dark store.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct StoreId(pub u64);

/// A reservation id: the caller's idempotency key (for example derived from
/// the order id). Retrying a reserve with the same id never reserves twice.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ReservationId(pub u64);

/// A flash-sale campaign, chosen by the user: a quota of units on one item
/// and a limit per customer (see `Inventory::define_campaign`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct CampaignId(pub u64);

/// A shopper taking part in a campaign, chosen by the user (an account id):
/// what a campaign's per-customer limit counts against.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct CustomerId(pub u64);

/// One SKU at one store: the unit of stock bookkeeping.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ItemKey {
    /// The SKU.
    pub sku: Sku,
    /// The store holding it.
    pub store: StoreId,
}

impl ItemKey {
    /// The item `sku` at `store`.
    pub const fn new(sku: Sku, store: StoreId) -> Self {
        ItemKey { sku, store }
    }
}

impl fmt::Display for Sku {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sku {}", self.0)
    }
}

impl fmt::Display for StoreId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "store {}", self.0)
    }
}

impl fmt::Display for ReservationId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "reservation {}", self.0)
    }
}

impl fmt::Display for CampaignId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "campaign {}", self.0)
    }
}

impl fmt::Display for CustomerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "customer {}", self.0)
    }
}

impl fmt::Display for ItemKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} at {}", self.sku, self.store)
    }
}

/// The sales channel a request comes from. Online requests may not take the
/// item's safety stock; in-store requests may.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Channel {
    /// Web, app and marketplace checkouts. The default for reservations.
    #[default]
    Online,
    /// Point of sale and counter holds. The default for `sell`.
    InStore,
}

impl Channel {
    /// The name used by the replay format: `"online"` or `"in_store"`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Channel::Online => "online",
            Channel::InStore => "in_store",
        }
    }
}

impl fmt::Display for Channel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One line of a reservation: `qty` units of `sku` at `store`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Line {
    /// The SKU.
    pub sku: Sku,
    /// The store the units are taken from.
    pub store: StoreId,
    /// Units, at least 1.
    pub qty: u32,
}

impl Line {
    /// `qty` units of `sku` at `store`.
    pub const fn new(sku: Sku, store: StoreId, qty: u32) -> Self {
        Line { sku, store, qty }
    }

    /// The item this line draws from.
    pub const fn item(&self) -> ItemKey {
        ItemKey::new(self.sku, self.store)
    }
}

/// Where a reservation is in its life. `Pending` moves exactly once to one of
/// the three terminal states.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReservationState {
    /// Units are held; the reservation can be committed, released or extended.
    Pending,
    /// The units were taken from stock (the order shipped or was paid).
    Committed,
    /// The caller gave the units back.
    Released,
    /// The deadline passed before a commit or release; the units went back.
    Expired,
}

impl ReservationState {
    /// The name used by the replay format.
    pub const fn as_str(self) -> &'static str {
        match self {
            ReservationState::Pending => "pending",
            ReservationState::Committed => "committed",
            ReservationState::Released => "released",
            ReservationState::Expired => "expired",
        }
    }

    /// True for the three states a reservation never leaves.
    pub const fn is_terminal(self) -> bool {
        !matches!(self, ReservationState::Pending)
    }
}

impl fmt::Display for ReservationState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An item's stock as one consistent reading.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Level {
    /// Units physically held.
    pub on_hand: u32,
    /// Units promised to pending reservations; never more than `on_hand`.
    pub reserved: u32,
    /// Units the online channel may not take.
    pub safety_stock: u32,
    /// `on_hand - reserved - safety_stock`, floored at 0.
    pub available_online: u32,
    /// `on_hand - reserved`.
    pub available_in_store: u32,
}

impl Level {
    /// The level of a cell with these three fields.
    pub const fn new(on_hand: u32, reserved: u32, safety_stock: u32) -> Self {
        let available_in_store = on_hand.saturating_sub(reserved);
        Level {
            on_hand,
            reserved,
            safety_stock,
            available_online: available_in_store.saturating_sub(safety_stock),
            available_in_store,
        }
    }

    /// Units available to `channel`.
    pub const fn available(&self, channel: Channel) -> u32 {
        match channel {
            Channel::Online => self.available_online,
            Channel::InStore => self.available_in_store,
        }
    }
}

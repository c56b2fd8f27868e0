//! The crate's errors. [`Error`]: each variant is a rule of the contract
//! (`docs/CONTRACT.md`) that a request broke, carrying what the caller
//! needs to react: which item, how much was asked, how much there was.
//! A failed operation never changes stock. [`BuildError`]: the memory an
//! inventory's sizing asks for up front was refused.

use crate::types::{CampaignId, CustomerId, ReservationId, Sku, StoreId};
use serde::{Deserialize, Serialize};
use std::fmt;

/// Why an operation was refused. Nothing changed (apart from the lazy expiry
/// of an overdue reservation the request named, which the contract performs
/// before checking).
///
/// Its serde form is the replay format's error answer without `ok` and
/// `message`: the name in `error` ([`Error::name`]), then the fields the
/// caller reacts on. Two fields stay out of it, as in the replay format:
/// the `reason` of [`Error::Invalid`] (it is in the message; it reads back
/// as `""`) and the item of [`Error::BelowReserved`] (it reads back as
/// sku 0 at store 0 when absent).
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "error", rename_all = "snake_case")]
pub enum Error {
    /// The request itself is malformed (zero quantity, no lines, a line
    /// repeated, a zero ttl...). Fix the request; retrying it as is fails again.
    Invalid {
        /// What is wrong with the request.
        #[serde(skip)]
        reason: &'static str,
    },
    /// A restock would take `on_hand` past `u32::MAX`.
    Overflow {
        /// The SKU.
        sku: Sku,
        /// The store.
        store: StoreId,
        /// Units on hand now.
        on_hand: u32,
        /// Units the restock tried to add.
        requested: u32,
    },
    /// A cycle count below the units promised to pending reservations.
    /// Release or commit reservations first, or count again.
    BelowReserved {
        /// The SKU.
        #[serde(skip_serializing, default = "no_sku")]
        sku: Sku,
        /// The store.
        #[serde(skip_serializing, default = "no_store")]
        store: StoreId,
        /// Units reserved now.
        reserved: u32,
    },
    /// The item was never stocked (restock, set_on_hand or set_safety_stock
    /// create it).
    UnknownItem {
        /// The SKU.
        sku: Sku,
        /// The store.
        store: StoreId,
    },
    /// Not enough stock for the channel. `available` is what the channel could
    /// have taken at that moment; nothing was reserved or sold.
    Insufficient {
        /// The SKU of the first line that could not be served.
        sku: Sku,
        /// Its store.
        store: StoreId,
        /// Units asked for.
        requested: u32,
        /// Units available to the channel.
        available: u32,
    },
    /// No reservation with this id is known (never made, failed, or forgotten
    /// after retention).
    UnknownReservation {
        /// The id asked for.
        id: ReservationId,
    },
    /// The reservation was already committed; it can no longer be released or
    /// extended.
    AlreadyCommitted {
        /// The reservation.
        id: ReservationId,
    },
    /// The reservation was already released; reserve again with a new id.
    AlreadyReleased {
        /// The reservation.
        id: ReservationId,
    },
    /// The reservation's deadline passed and its units went back to stock;
    /// reserve again with a new id.
    Expired {
        /// The reservation.
        id: ReservationId,
    },
    /// The id is already used by a different request (other lines or
    /// channel). Use a fresh id for a different order.
    IdConflict {
        /// The reservation.
        id: ReservationId,
    },
    /// A compare-and-set cycle count expected another `on_hand` than the
    /// item holds (0 for an unknown item): someone changed the stock since
    /// the count was read. Read the level again and decide anew.
    Stale {
        /// Units on hand now.
        on_hand: u32,
    },
    /// `reserve_any`: the SKU is stocked at none of the candidate stores.
    /// Its name in the contract is `unknown_item`, without a store.
    #[serde(rename(serialize = "unknown_item", deserialize = "unknown_sku"))]
    UnknownSku {
        /// The SKU.
        sku: Sku,
    },
    /// `reserve_any`: no candidate store (without `split`), or all of them
    /// together (with `split`), had `requested` units available to the
    /// channel. Its name in the contract is `insufficient`, without a store.
    #[serde(rename(serialize = "insufficient", deserialize = "insufficient_across"))]
    InsufficientAcross {
        /// The SKU.
        sku: Sku,
        /// Units asked for.
        requested: u32,
        /// Without `split`, the most one candidate store had; with it, what
        /// they had together.
        available: u32,
    },
    /// A campaign reservation names a campaign that is not defined (never
    /// defined, or ended). Define it first, or reserve without a campaign.
    UnknownCampaign {
        /// The campaign.
        campaign: CampaignId,
    },
    /// The campaign's quota cannot cover the request: `remaining` units of
    /// it are left (counting pending and committed campaign reservations).
    /// Releases and expiries give units back; the sale is sold out while
    /// `remaining` is 0.
    QuotaExhausted {
        /// The campaign.
        campaign: CampaignId,
        /// Units of the quota not yet counted.
        remaining: u32,
    },
    /// The customer's limit in the campaign cannot cover the request: they
    /// may still reserve `remaining` units.
    CustomerLimit {
        /// The campaign.
        campaign: CampaignId,
        /// The customer.
        customer: CustomerId,
        /// Units the customer may still reserve in the campaign.
        remaining: u32,
    },
    /// The operation's effect was made in memory (others may see it), but
    /// the journal could not make it durable: it is not acknowledged, and
    /// after a restart it may or may not be there (docs/CONTRACT.md).
    /// The journal stays failed: stop taking orders, and recover with
    /// `Inventory::open` once the disk is fixed.
    NotDurable {
        /// What the journal reported.
        #[serde(skip)]
        reason: String,
    },
}

/// The item of a deserialized [`Error::BelowReserved`] that does not name one.
fn no_sku() -> Sku {
    Sku(0)
}

/// See [`no_sku`].
fn no_store() -> StoreId {
    StoreId(0)
}

impl Error {
    /// The error's name in the contract and the replay format
    /// (`"insufficient"`, `"id_conflict"`...).
    pub const fn name(&self) -> &'static str {
        match self {
            Error::Invalid { .. } => "invalid",
            Error::Overflow { .. } => "overflow",
            Error::BelowReserved { .. } => "below_reserved",
            Error::UnknownItem { .. } => "unknown_item",
            Error::Insufficient { .. } => "insufficient",
            Error::UnknownReservation { .. } => "unknown_reservation",
            Error::AlreadyCommitted { .. } => "already_committed",
            Error::AlreadyReleased { .. } => "already_released",
            Error::Expired { .. } => "expired",
            Error::IdConflict { .. } => "id_conflict",
            Error::Stale { .. } => "stale",
            Error::UnknownSku { .. } => "unknown_item",
            Error::InsufficientAcross { .. } => "insufficient",
            Error::UnknownCampaign { .. } => "unknown_campaign",
            Error::QuotaExhausted { .. } => "quota_exhausted",
            Error::CustomerLimit { .. } => "customer_limit",
            Error::NotDurable { .. } => "not_durable",
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Invalid { reason } => write!(f, "invalid request: {reason}"),
            Error::Overflow { sku, store, on_hand, requested } => write!(
                f,
                "restocking {requested} units of {sku} at {store} would pass the limit of {} units on hand (now {on_hand})",
                u32::MAX
            ),
            Error::BelowReserved { sku, store, reserved } => write!(
                f,
                "cannot count {sku} at {store} below the {reserved} units reserved; commit or release reservations first"
            ),
            Error::UnknownItem { sku, store } => write!(
                f,
                "{sku} at {store} is not stocked; restock it or set its on-hand count first"
            ),
            Error::Insufficient { sku, store, requested, available } => write!(
                f,
                "only {available} units of {sku} at {store} available for this channel, {requested} requested"
            ),
            Error::UnknownReservation { id } => {
                write!(f, "{id} is unknown (never made, or forgotten after retention)")
            }
            Error::AlreadyCommitted { id } => write!(f, "{id} is already committed"),
            Error::AlreadyReleased { id } => {
                write!(f, "{id} was released; reserve again with a new id")
            }
            Error::Expired { id } => write!(
                f,
                "{id} expired and its units went back to stock; reserve again with a new id"
            ),
            Error::IdConflict { id } => write!(
                f,
                "{id} is already used by a different request; use a new id for a different order"
            ),
            Error::Stale { on_hand } => write!(
                f,
                "the count expected another on-hand quantity: {on_hand} units are on hand now; read the level and count again"
            ),
            Error::UnknownSku { sku } => {
                write!(f, "{sku} is not stocked at any of the candidate stores")
            }
            Error::InsufficientAcross { sku, requested, available } => write!(
                f,
                "only {available} units of {sku} available for this channel at the candidate stores, {requested} requested"
            ),
            Error::UnknownCampaign { campaign } => write!(
                f,
                "{campaign} is not defined (never defined, or ended); define it first"
            ),
            Error::QuotaExhausted { campaign, remaining } => write!(
                f,
                "{campaign} has only {remaining} units of its quota left"
            ),
            Error::CustomerLimit { campaign, customer, remaining } => write!(
                f,
                "{customer} may reserve only {remaining} more units in {campaign}"
            ),
            Error::NotDurable { reason } => write!(
                f,
                "the change is not durable ({reason}); it may be lost on a restart: stop and recover once the journal's disk is fixed"
            ),
        }
    }
}

impl std::error::Error for Error {}

/// The inventory could not be built; nothing was allocated.
///
/// Either the memory its sizing asks for up front
/// ([`expected_items`](crate::InventoryBuilder::expected_items),
/// [`expected_reservations`](crate::InventoryBuilder::expected_reservations))
/// could not be allocated: build again for fewer items or reservations
/// (items past `expected_items` still work, through a slower map, and the
/// id filters grow on their own). Or a setting is out of its range.
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BuildError {
    /// The system refused the memory asked for up front.
    OutOfMemory {
        /// What the memory was for.
        what: &'static str,
        /// How many bytes were asked for.
        bytes: usize,
    },
    /// A builder setting out of its range.
    InvalidSetting {
        /// The setting, as the builder method that takes it.
        setting: &'static str,
        /// What its values must be.
        reason: &'static str,
    },
}

impl BuildError {
    /// `len` values made by `make`, in one allocation that fails with a
    /// `BuildError` instead of aborting the process when the system refuses
    /// it. (Linux refuses a request it can never meet; one it accepts is
    /// backed as the values are written, like any allocation.)
    pub(crate) fn allocate<T>(
        what: &'static str,
        len: usize,
        make: impl FnMut() -> T,
    ) -> Result<Box<[T]>, BuildError> {
        let mut values = Vec::new();
        values
            .try_reserve_exact(len)
            .map_err(|_| BuildError::OutOfMemory {
                what,
                bytes: len.saturating_mul(std::mem::size_of::<T>()),
            })?;
        values.extend(std::iter::repeat_with(make).take(len));
        Ok(values.into_boxed_slice())
    }
}

impl fmt::Display for BuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BuildError::OutOfMemory { what, bytes } => write!(
                f,
                "could not allocate {bytes} bytes for {what}; build the inventory for fewer expected items or reservations"
            ),
            BuildError::InvalidSetting { setting, reason } => {
                write!(f, "invalid builder setting {setting}: {reason}")
            }
        }
    }
}

impl std::error::Error for BuildError {}

#[cfg(all(test, not(omnistock_loom)))]
mod tests {
    use super::*;

    #[test]
    fn an_allocation_the_system_refuses_is_an_error_not_an_abort() {
        // More bytes than any address space holds: refused on every machine.
        let len = usize::MAX / 4;
        let error = BuildError::allocate("the item table", len, || 0u64).unwrap_err();
        assert_eq!(
            error,
            BuildError::OutOfMemory {
                what: "the item table",
                bytes: usize::MAX
            }
        );
        let message = error.to_string();
        assert!(message.contains("the item table"), "{message}");
        assert!(message.contains("fewer expected items"), "{message}");
    }

    #[test]
    fn an_allocation_that_fits_holds_what_was_made() {
        let mut next = 0;
        let made = BuildError::allocate("numbers", 5, || {
            next += 1;
            next
        })
        .unwrap();
        assert_eq!(&*made, &[1, 2, 3, 4, 5]);
    }
}

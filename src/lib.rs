//! omnistock: per-SKU, per-store stock with reservations that never oversell.
#![warn(missing_docs)]

mod cell;
mod clock;
mod command;
mod effect;
mod error;
mod expiry;
mod ids;
mod inventory;
pub mod model;
pub mod replay;
mod reservation;
mod sync;
mod table;

pub use clock::{Clock, ManualClock, SystemClock};
pub use command::{Command, Level, Outcome, ReservationAck, ReservationInfo};
pub use effect::{Effect, EffectObserver};
pub use error::Error;
pub use ids::{Channel, ItemKey, Line, ReservationId, ReservationState, Sku, StoreId};
pub use inventory::{Inventory, InventoryBuilder, DEFAULT_RETENTION_MS, DEFAULT_TTL_MS, MAX_LINES};

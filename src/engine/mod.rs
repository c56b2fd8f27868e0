//! [`Inventory`]: the engine an order service embeds. It composes the item
//! table (lock-free stock cells), the sharded reservation table with its
//! deadline index, the injected clock and the effect observer. Stock
//! operations touch one cell word with one atomic step; operations naming a
//! reservation id take that id's shard lock, never a global one.

mod alerts;
mod builder;
mod campaigns;
mod fulfilment;
mod lifecycle;
mod reserve;
mod restore;
mod sourcing;
mod stock_ops;
#[cfg(all(test, feature = "model", not(omnistock_loom)))]
mod tests;

pub use builder::{InventoryBuilder, DEFAULT_EXPECTED_ITEMS};
pub(crate) use restore::{Joins, Remembered};
pub use sourcing::{FewestStores, GivenOrder, MostAvailableFirst, SourceRequest, Sourcing};

use crate::alerts::Alerts;
use crate::campaigns::Campaigns;
use crate::clock::Clock;
use crate::command::{Command, Outcome, ReservationAck};
use crate::durability::record::Op;
use crate::durability::sink::Durable;
use crate::durability::steps::Steps;
use crate::effect::{EffectLog, EffectObserver};
use crate::error::Error;
use crate::reservations::id_placement::{self, IdHasher};
use crate::reservations::shard::{Reservation, Shard};
use crate::stock::item_table::ItemTable;
use crate::types::{ItemKey, Level, ReservationId, ReservationState};
use crossbeam_utils::CachePadded;
use std::fmt;
use std::sync::Arc;

/// Reservation shards: enough that threads reserving different ids rarely
/// meet on one lock; neighbouring ids take different ones (see `id_placement`).
const RESERVATION_SHARDS: usize = id_placement::SHARDS;

/// In-memory stock for every `(sku, store)` and the reservations against it.
///
/// `Inventory` is `Send + Sync`: share it through an `Arc` and call it from
/// any number of threads. Every operation follows the contract in
/// `docs/CONTRACT.md`, and no interleaving lets `reserved` pass `on_hand`
/// on any item. Every operation takes effect at one instant between its
/// call and its return; none sees a multi-line reservation partly held,
/// committed or returned, and every answer that carries or counts safety
/// stock takes it at the same instant as the stock; see
/// `docs/CORRECTNESS.md`.
///
/// ```
/// use omnistock::{Channel, Inventory, Line, ReservationId, ReservationState, Sku, StoreId};
///
/// let inventory = Inventory::new();
/// let (sku, store) = (Sku(42), StoreId(1));
/// inventory.restock(sku, store, 3)?;
///
/// let cart = ReservationId(1001);
/// let held = inventory.reserve(cart, Channel::Online, &[Line::new(sku, store, 2)])?;
/// assert_eq!(held.state, ReservationState::Pending);
/// assert_eq!(inventory.level(sku, store)?.available_online, 1);
///
/// inventory.commit(cart)?;
/// assert_eq!(inventory.level(sku, store)?.on_hand, 1);
/// # Ok::<(), omnistock::Error>(())
/// ```
pub struct Inventory {
    items: ItemTable,
    reservations: Box<[CachePadded<Shard>]>,
    /// Picks an id's shard.
    id_hasher: IdHasher,
    clock: Arc<dyn Clock>,
    default_ttl_ms: u64,
    retention_ms: u64,
    observer: Option<Arc<dyn EffectObserver>>,
    campaigns: std::sync::Arc<Campaigns>,
    /// With a journal, orders campaign definitions and ends (writers)
    /// against campaign reservations (readers, from counting to taking
    /// their sequence number): see `engine/campaigns.rs`.
    campaign_order: parking_lot::RwLock<()>,
    /// Set (before its number is taken) by the first campaign definition,
    /// never cleared: snapshots read campaigns only from then on.
    campaigns_seen: std::sync::atomic::AtomicBool,
    alerts: Alerts,
    /// The journal's sequence numbers and sink; `None`: in memory only.
    durable: Option<Box<Durable>>,
}

impl fmt::Debug for Inventory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Inventory")
            .field("clock", &self.clock)
            .field("default_ttl_ms", &self.default_ttl_ms)
            .field("retention_ms", &self.retention_ms)
            .field("observer", &self.observer.is_some())
            .field("journaled", &self.durable.is_some())
            .finish_non_exhaustive()
    }
}

impl Default for Inventory {
    fn default() -> Self {
        Inventory::new()
    }
}

impl Inventory {
    /// An empty inventory on the system clock with the default ttl and
    /// retention.
    pub fn new() -> Self {
        InventoryBuilder::default().build()
    }

    /// Configure clock, ttl, retention and observer.
    pub fn builder() -> InventoryBuilder {
        InventoryBuilder::default()
    }

    /// The time of the inventory's clock, in ms.
    pub fn now_ms(&self) -> u64 {
        self.clock.now_ms()
    }

    /// The default time to live of reservations.
    pub fn default_ttl_ms(&self) -> u64 {
        self.default_ttl_ms
    }

    /// The effect log of one operation `op`: it collects the observer's
    /// effects if one listens, the items changed if alerts are watched, and
    /// the journal records if journaled.
    pub(crate) fn effects(&self, op: Op) -> EffectLog<'_> {
        let steps = self
            .durable
            .as_deref()
            .map(|durable| Steps::new(&durable.seqs, &*durable.sink, op, self.clock.now_ms()));
        EffectLog::new(self.observer.is_some(), self.alerts.watching(), steps)
    }

    /// Gives finished campaign reservations' units back, under the shard
    /// lock where the operation took one (so that no reserve of that
    /// customer sees the reservation finished and its units still
    /// counted). Alerts wait for [`publish`](Self::publish): an alert
    /// observer may call back into the inventory.
    #[inline]
    pub(crate) fn settle_log(&self, effects: &mut EffectLog<'_>) {
        if effects.gives_back() {
            self.give_back(effects);
        }
    }

    /// Settles what is left to settle (campaign units, then the changed
    /// items' alerts), then hands an operation's effects and records on,
    /// after every lock is released; with a `Sync` journal, waits until
    /// they are durable.
    #[inline]
    pub(crate) fn publish(&self, effects: &mut EffectLog<'_>) -> Result<(), Error> {
        if effects.needs_settling() {
            self.settle(effects);
        }
        effects.flush(self.observer.as_deref())
    }

    /// [`publish`](Self::publish), then the operation's answer: a success
    /// whose records could not be made durable is [`Error::NotDurable`].
    pub(super) fn publish_answer<T>(
        &self,
        effects: &mut EffectLog<'_>,
        answer: Result<T, Error>,
    ) -> Result<T, Error> {
        let durable = self.publish(effects);
        answer.and_then(|value| durable.map(|()| value))
    }

    /// The campaign part of [`settle_log`](Self::settle_log), out of line.
    #[cold]
    #[inline(never)]
    fn give_back(&self, effects: &mut EffectLog<'_>) {
        for units in &effects.take_given_back() {
            self.campaigns.uncount(units);
        }
    }

    /// The campaign and alert part of [`publish`](Self::publish), out of
    /// line: most operations have nothing to settle.
    #[cold]
    #[inline(never)]
    fn settle(&self, effects: &mut EffectLog<'_>) {
        self.give_back(effects);
        self.raise_alerts(effects.take_settlement().touched);
    }

    /// Runs one [`Command`]; the dispatcher behind the replay tool and the
    /// model-based tests. A `Reserve` without a ttl takes the default one.
    ///
    /// # Errors
    ///
    /// Those of the operation the command names.
    pub fn apply(&self, command: &Command) -> Result<Outcome, Error> {
        match *command {
            Command::Restock { sku, store, qty } => {
                self.restock(sku, store, qty).map(Outcome::Level)
            }
            Command::SetOnHand {
                sku,
                store,
                qty,
                expect,
            } => match expect {
                None => self.set_on_hand(sku, store, qty),
                Some(expect) => self.set_on_hand_expecting(sku, store, qty, expect),
            }
            .map(Outcome::Level),
            Command::SetSafetyStock { sku, store, qty } => {
                Ok(Outcome::Level(self.set_safety_stock(sku, store, qty)))
            }
            Command::Sell {
                sku,
                store,
                qty,
                channel,
            } => self.sell(sku, store, qty, channel).map(Outcome::Level),
            Command::Level { sku, store } => self.level(sku, store).map(Outcome::Level),
            Command::Reserve {
                id,
                channel,
                ttl_ms,
                ref lines,
            } => self
                .reserve_with_ttl(id, channel, lines, ttl_ms.unwrap_or(self.default_ttl_ms))
                .map(Outcome::Reservation),
            Command::Commit { id, ref lines } => match lines {
                None => self.commit(id).map(Outcome::Reservation),
                Some(lines) => self.commit_lines(id, lines).map(Outcome::ReservationLines),
            },
            Command::Release { id } => self.release(id).map(Outcome::Reservation),
            Command::Extend { id, ttl_ms } => self.extend(id, ttl_ms).map(Outcome::Reservation),
            Command::Get { id } => self.get(id).map(Outcome::Info),
            Command::Expire => Ok(Outcome::Expired(self.expire())),
            Command::SellLines { ref lines, channel } => {
                self.sell_lines(lines, channel).map(Outcome::Levels)
            }
            Command::ReserveAny {
                id,
                sku,
                qty,
                ref stores,
                split,
                channel,
                ttl_ms,
            } => {
                let request = SourceRequest {
                    sku,
                    qty,
                    stores,
                    split,
                };
                let ttl = ttl_ms.unwrap_or(self.default_ttl_ms);
                self.reserve_any(id, channel, &request, ttl)
                    .map(Outcome::ReservationLines)
            }
            Command::Check => Ok(Outcome::Check(self.check())),
            Command::Campaign {
                campaign,
                sku,
                store,
                quota,
                per_customer,
            } => self
                .define_campaign(campaign, sku, store, quota, per_customer)
                .map(|()| Outcome::Done(crate::command::Done {})),
            Command::ReserveCampaign {
                id,
                channel,
                ttl_ms,
                ref lines,
                campaign,
                customer,
            } => self
                .reserve_campaign_lines(
                    id,
                    channel,
                    lines,
                    campaign,
                    customer,
                    ttl_ms.unwrap_or(self.default_ttl_ms),
                )
                .map(Outcome::Reservation),
            Command::SetReorderPoint { sku, store, qty } => {
                Ok(Outcome::Level(self.set_reorder_point(sku, store, qty)))
            }
            Command::Alerts => Ok(Outcome::Alerts(self.take_alerts())),
        }
    }

    /// How many items exist.
    pub fn item_count(&self) -> usize {
        self.items.len()
    }

    /// Every item with its level, in the order the items were created.
    pub fn items(&self) -> Vec<(ItemKey, Level)> {
        let mut all = Vec::new();
        self.items
            .for_each(|key, cell| all.push((key, cell.level(self.items.safety_changes()))));
        all
    }

    /// Reservations remembered now: pending ones and terminal ones still in
    /// the retention window.
    pub fn reservation_count(&self) -> usize {
        self.reservations
            .iter()
            .map(|shard| shard.records.lock().len())
            .sum()
    }

    /// Pending reservations now (including overdue ones not yet expired).
    pub fn pending_count(&self) -> usize {
        self.reservations
            .iter()
            .map(|shard| shard.records.lock().pending_len())
            .sum()
    }
}

fn ack(id: ReservationId, reservation: &Reservation, replayed: bool) -> ReservationAck {
    ReservationAck {
        id,
        state: reservation.state,
        replayed,
        expires_at_ms: (reservation.state == ReservationState::Pending)
            .then_some(reservation.expires_at),
    }
}

fn zero_qty() -> Error {
    Error::Invalid {
        reason: "quantity must be at least 1",
    }
}

fn zero_ttl() -> Error {
    Error::Invalid {
        reason: "ttl must be at least 1 ms",
    }
}

//! API STUB (being implemented): signatures are final.
use crate::*;
use std::sync::Arc;

/// Default time to live of a reservation: 15 minutes.
pub const DEFAULT_TTL_MS: u64 = 900_000;
/// Default retention of terminal reservations: 24 hours.
pub const DEFAULT_RETENTION_MS: u64 = 86_400_000;
/// Most lines one reservation may have.
pub const MAX_LINES: usize = 256;

/// The engine.
#[derive(Debug)]
pub struct Inventory {}
/// Builder.
pub struct InventoryBuilder {}
impl InventoryBuilder {
    /// clock
    pub fn clock(self, clock: Arc<dyn Clock>) -> Self { todo!() }
    /// ttl
    pub fn default_ttl_ms(self, ms: u64) -> Self { todo!() }
    /// retention
    pub fn retention_ms(self, ms: u64) -> Self { todo!() }
    /// observer
    pub fn observer(self, observer: Arc<dyn EffectObserver>) -> Self { todo!() }
    /// build
    pub fn build(self) -> Inventory { todo!() }
}
impl Inventory {
    /// System clock, defaults.
    pub fn new() -> Self { todo!() }
    /// builder
    pub fn builder() -> InventoryBuilder { todo!() }
    /// now
    pub fn now_ms(&self) -> u64 { todo!() }
    /// restock
    pub fn restock(&self, sku: Sku, store: StoreId, qty: u32) -> Result<Level, Error> { todo!() }
    /// set_on_hand
    pub fn set_on_hand(&self, sku: Sku, store: StoreId, qty: u32) -> Result<Level, Error> { todo!() }
    /// set_safety_stock (never fails)
    pub fn set_safety_stock(&self, sku: Sku, store: StoreId, qty: u32) -> Level { todo!() }
    /// sell
    pub fn sell(&self, sku: Sku, store: StoreId, qty: u32, channel: Channel) -> Result<Level, Error> { todo!() }
    /// level
    pub fn level(&self, sku: Sku, store: StoreId) -> Result<Level, Error> { todo!() }
    /// reserve with default ttl
    pub fn reserve(&self, id: ReservationId, channel: Channel, lines: &[Line]) -> Result<ReservationAck, Error> { todo!() }
    /// reserve with ttl
    pub fn reserve_with_ttl(&self, id: ReservationId, channel: Channel, lines: &[Line], ttl_ms: u64) -> Result<ReservationAck, Error> { todo!() }
    /// commit
    pub fn commit(&self, id: ReservationId) -> Result<ReservationAck, Error> { todo!() }
    /// release
    pub fn release(&self, id: ReservationId) -> Result<ReservationAck, Error> { todo!() }
    /// extend
    pub fn extend(&self, id: ReservationId, ttl_ms: u64) -> Result<ReservationAck, Error> { todo!() }
    /// get
    pub fn get(&self, id: ReservationId) -> Result<ReservationInfo, Error> { todo!() }
    /// expire: number expired
    pub fn expire(&self) -> u64 { todo!() }
    /// dispatcher
    pub fn apply(&self, command: &Command) -> Result<Outcome, Error> { todo!() }
    /// Every item and its level (unordered), for checks and tests.
    pub fn items(&self) -> Vec<(ItemKey, Level)> { todo!() }
    /// Number of reservations remembered (pending and retained terminal).
    pub fn reservation_count(&self) -> usize { todo!() }
}

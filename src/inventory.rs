//! [`Inventory`]: the engine an order service embeds. It composes the item
//! table (lock-free stock cells), the sharded reservation table with its
//! deadline index, the injected clock and the effect observer. Stock
//! operations touch one cell word with one atomic step; operations naming a
//! reservation id take that id's shard lock, never a global one.

use crate::cell::{self, StockCell};
use crate::clock::{Clock, SystemClock};
use crate::command::{Command, Level, Outcome, ReservationAck, ReservationInfo};
use crate::effect::{Effect, EffectLog, EffectObserver};
use crate::error::{BuildError, Error};
use crate::id_filter::{self, IdFilter};
use crate::id_hash::{self, IdHasher, KeyedId};
use crate::ids::{Channel, ItemKey, Line, ReservationId, ReservationState, Sku, StoreId};
use crate::reservation::{
    deadline_after, HeldLine, HeldLines, Reservation, ReservationShard, Shard,
};
// Clock and observer are the caller's objects, not engine state that loom
// explores, so they are held in std's Arc in every build.
use crate::table::ItemTable;
use crossbeam_utils::CachePadded;
use std::fmt;
use std::sync::Arc;

/// Default time to live of a reservation: 15 minutes.
pub const DEFAULT_TTL_MS: u64 = 900_000;
/// Default time a terminal reservation is remembered for idempotency: 24 hours.
pub const DEFAULT_RETENTION_MS: u64 = 86_400_000;
/// Items the lock-free item index is sized for unless told otherwise.
pub const DEFAULT_EXPECTED_ITEMS: usize = 65_536;
/// The most lines one reservation may have.
pub const MAX_LINES: usize = 256;

/// Lines of a cart whose items a reserve looks up once, and keeps: before
/// the shard lock where the shard's id filter is on (and may refuse
/// there), just after taking it where the filter is off (see
/// `reserve_with_ttl`). The lines past these are looked up as they are
/// held, under the lock.
const LOOKED_UP_LINES: usize = 8;

/// The cell indices of a cart's first lines, looked up once (before the
/// shard lock, or just after taking it), in line order.
#[derive(Default)]
struct LookedUp {
    cells: [u32; LOOKED_UP_LINES],
    len: usize,
}

impl LookedUp {
    fn push(&mut self, cell: u32) {
        self.cells[self.len] = cell;
        self.len += 1;
    }

    /// The cell of line `n`, if it was looked up.
    fn cell(&self, n: usize) -> Option<u32> {
        self.cells[..self.len].get(n).copied()
    }
}

/// Reservation shards: enough that threads reserving different ids rarely
/// meet on one lock; neighbouring ids take different ones (see `id_hash`).
const RESERVATION_SHARDS: usize = id_hash::SHARDS;

/// In-memory stock for every `(sku, store)` and the reservations against it.
///
/// `Inventory` is `Send + Sync`: share it through an `Arc` and call it from
/// any number of threads. Every operation is linearizable and follows the
/// contract in `SEMANTICS.md`; no interleaving lets `reserved` pass
/// `on_hand` on any item.
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
}

impl fmt::Debug for Inventory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Inventory")
            .field("clock", &self.clock)
            .field("default_ttl_ms", &self.default_ttl_ms)
            .field("retention_ms", &self.retention_ms)
            .field("observer", &self.observer.is_some())
            .finish_non_exhaustive()
    }
}

/// Configures an [`Inventory`]: clock, default ttl, retention, observer.
///
/// ```
/// use std::sync::Arc;
/// use omnistock::{Inventory, ManualClock};
///
/// let clock = Arc::new(ManualClock::new());
/// let inventory = Inventory::builder()
///     .clock(clock.clone())
///     .default_ttl_ms(60_000)
///     .retention_ms(3_600_000)
///     .build();
/// assert_eq!(inventory.now_ms(), 0);
/// ```
pub struct InventoryBuilder {
    clock: Arc<dyn Clock>,
    expected_items: usize,
    expected_reservations: Option<usize>,
    default_ttl_ms: u64,
    retention_ms: u64,
    observer: Option<Arc<dyn EffectObserver>>,
}

impl fmt::Debug for InventoryBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InventoryBuilder")
            .field("clock", &self.clock)
            .field("expected_items", &self.expected_items)
            .field("expected_reservations", &self.expected_reservations)
            .field("default_ttl_ms", &self.default_ttl_ms)
            .field("retention_ms", &self.retention_ms)
            .field("observer", &self.observer.is_some())
            .finish()
    }
}

impl Default for InventoryBuilder {
    fn default() -> Self {
        InventoryBuilder {
            clock: Arc::new(SystemClock::new()),
            expected_items: DEFAULT_EXPECTED_ITEMS,
            expected_reservations: None,
            default_ttl_ms: DEFAULT_TTL_MS,
            retention_ms: DEFAULT_RETENTION_MS,
            observer: None,
        }
    }
}

impl InventoryBuilder {
    /// The source of time (default: [`SystemClock`]). Tests and simulations
    /// pass a [`ManualClock`](crate::ManualClock).
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Time to live of reservations made without one (default 15 minutes).
    /// 0 is not a usable ttl and is replaced by the default.
    pub fn default_ttl_ms(mut self, ms: u64) -> Self {
        self.default_ttl_ms = if ms == 0 { DEFAULT_TTL_MS } else { ms };
        self
    }

    /// How many items (`(sku, store)` pairs) the inventory is sized for
    /// (default 65,536). Built up front: the lock-free item table, cells
    /// inline (31 bytes per expected item: 24-byte entries filled to at most
    /// 8/9, plus 4 bytes recording the order of creation). It also sets the
    /// smallest size of the reservation shards' id filters once they are on
    /// (8 bytes per expected item, between 128 KiB and 2 MiB in all),
    /// unless [`expected_reservations`](Self::expected_reservations) does.
    /// Items
    /// beyond it still work, through a slower locked map: size it for the
    /// catalogue; size it small for many short-lived inventories (tests,
    /// simulations). Taken as at least 16 and at most about 954 million
    /// (30 GB); [`try_build`](Self::try_build) reports memory the system
    /// refuses.
    pub fn expected_items(mut self, items: usize) -> Self {
        self.expected_items = items;
        self
    }

    /// How many reservations the inventory will remember at once at most
    /// (pending ones plus ended ones still within retention). It sets the
    /// starting size of the id filters that let a reserve refused on a
    /// sold-out item answer without taking a lock: 8 bytes per expected
    /// reservation, between 128 KiB and 256 MiB in all, counting from the
    /// start.
    ///
    /// Without it, each of the 256 reservation shards starts with its filter
    /// off: a reserve and the forgetting of its reservation skip the
    /// filter's counters (6 % of a cart's instructions and 11 % of its
    /// cache misses on a large catalogue), and a
    /// refused reserve takes its shard's lock. After a few such refusals in
    /// one shard (a sell-out), that shard counts its ids into a filter
    /// sized for them, under its lock, and from then on its refusals
    /// answer without it. The filters follow the number of reservations
    /// remembered: a shard whose filter gets crowded rebuilds it larger
    /// under its lock, counting its ids in again (a pause for that shard
    /// alone, like a hash table's growth, in proportion to the ids the
    /// shard holds). Sizing them up front saves those rebuilds during the
    /// first peak.
    /// A filter shrinks back to its starting size once its shard remembers
    /// few ids again; the larger sizes it used stay allocated, at most
    /// twice the largest. Past 256 MiB in all, refusals gradually take the
    /// lock again; the answers never change, only their cost.
    ///
    /// ```
    /// use omnistock::Inventory;
    /// // 200,000 orders a day, remembered for the default 24 hours.
    /// let inventory = Inventory::builder().expected_reservations(200_000).build();
    /// # drop(inventory);
    /// ```
    pub fn expected_reservations(mut self, reservations: usize) -> Self {
        self.expected_reservations = Some(reservations);
        self
    }

    /// How long terminal reservations are remembered for idempotency
    /// (default 24 hours). After it, `expire()` forgets them and their ids
    /// may be used again.
    ///
    /// Memory follows what is remembered, not its peak: once forgetting
    /// has freed three quarters of a reservation shard's record places
    /// (after a flash sale, say), `expire()` compacts that shard's records,
    /// id table and deadline queues to their present size, and its id
    /// filter shrinks back to its starting size. The memory goes back to
    /// the allocator.
    pub fn retention_ms(mut self, ms: u64) -> Self {
        self.retention_ms = ms;
        self
    }

    /// Receives the effect records of every successful mutation.
    pub fn observer(mut self, observer: Arc<dyn EffectObserver>) -> Self {
        self.observer = Some(observer);
        self
    }

    /// The inventory, empty.
    ///
    /// # Panics
    ///
    /// If the memory that `expected_items` and `expected_reservations` ask
    /// for up front cannot be allocated (about 31 bytes per expected item).
    /// [`try_build`](Self::try_build) reports that as an error instead.
    pub fn build(self) -> Inventory {
        self.try_build().unwrap_or_else(|error| panic!("{error}"))
    }

    /// The inventory, empty; or, if the system refuses the memory that
    /// `expected_items` and `expected_reservations` ask for up front, a
    /// [`BuildError`] saying how much, and nothing allocated.
    ///
    /// ```no_run
    /// use omnistock::Inventory;
    /// // A mistyped catalogue size: taken as the largest table, about 954
    /// // million items and 30 GB, which most machines refuse.
    /// match Inventory::builder().expected_items(usize::MAX).try_build() {
    ///     Ok(inventory) => println!("built for {} items", inventory.item_count()),
    ///     Err(error) => println!("{error}"),
    /// }
    /// ```
    pub fn try_build(self) -> Result<Inventory, BuildError> {
        let filter_counters = id_filter::counters_per_shard(
            self.expected_items,
            self.expected_reservations,
            RESERVATION_SHARDS,
        );
        // Without a figure for the reservations, a shard counts ids only
        // once refusals show it pays (see id_filter).
        let filter_on = self.expected_reservations.is_some();
        let mut reservations = Vec::with_capacity(RESERVATION_SHARDS);
        for _ in 0..RESERVATION_SHARDS {
            reservations.push(CachePadded::new(Shard::try_new(
                filter_counters,
                filter_on,
            )?));
        }
        Ok(Inventory {
            items: ItemTable::try_new(self.expected_items)?,
            reservations: reservations.into_boxed_slice(),
            id_hasher: IdHasher::default(),
            clock: self.clock,
            default_ttl_ms: self.default_ttl_ms,
            retention_ms: self.retention_ms,
            observer: self.observer,
        })
    }
}

impl Default for Inventory {
    fn default() -> Self {
        Inventory::new()
    }
}

/// Checks a reserve request's lines (step 1 of the contract, minus ttl).
fn validate_lines(lines: &[Line]) -> Result<(), Error> {
    if lines.is_empty() {
        return Err(Error::Invalid {
            reason: "a reservation needs at least one line",
        });
    }
    if lines.len() > MAX_LINES {
        return Err(Error::Invalid {
            reason: "a reservation may have at most 256 lines",
        });
    }
    if lines.iter().any(|line| line.qty == 0) {
        return Err(Error::Invalid {
            reason: "every line needs a quantity of at least 1",
        });
    }
    let repeated = if lines.len() <= 16 {
        lines
            .iter()
            .enumerate()
            .any(|(i, a)| lines[..i].iter().any(|b| a.item() == b.item()))
    } else {
        let mut keys: Vec<ItemKey> = lines.iter().map(Line::item).collect();
        keys.sort_unstable();
        keys.windows(2).any(|pair| pair[0] == pair[1])
    };
    if repeated {
        return Err(Error::Invalid {
            reason: "the same (sku, store) appears on two lines; merge them",
        });
    }
    Ok(())
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

    fn effects(&self) -> EffectLog {
        EffectLog::new(self.observer.is_some())
    }

    fn publish(&self, effects: &mut EffectLog) {
        effects.flush(self.observer.as_deref());
    }

    /// The item's cell, created empty if the item is new (recording that).
    fn cell_or_create(&self, key: ItemKey, effects: &mut EffectLog) -> &StockCell {
        let (index, created) = self.items.find_or_create(key);
        if created {
            effects.push(|| Effect::ItemCreated { item: key });
        }
        self.items.cell(index)
    }

    fn known_cell(&self, sku: Sku, store: StoreId) -> Result<&StockCell, Error> {
        self.items
            .get(ItemKey::new(sku, store))
            .ok_or(Error::UnknownItem { sku, store })
    }

    /// Receives `qty` units (a delivery), creating the item if new.
    ///
    /// Errors: `Invalid` for 0, `Overflow` past `u32::MAX` units on hand.
    pub fn restock(&self, sku: Sku, store: StoreId, qty: u32) -> Result<Level, Error> {
        if qty == 0 {
            return Err(zero_qty());
        }
        let key = ItemKey::new(sku, store);
        let mut effects = self.effects();
        let cell = self.cell_or_create(key, &mut effects);
        let result = cell
            .restock(qty)
            .map_err(|cell::WouldOverflow { on_hand }| Error::Overflow {
                sku,
                store,
                on_hand,
                requested: qty,
            });
        if result.is_ok() {
            effects.push(|| Effect::Stock {
                item: key,
                on_hand: i64::from(qty),
                reserved: 0,
            });
        }
        // A new item cannot overflow, so a failed restock created nothing.
        self.publish(&mut effects);
        result
    }

    /// A cycle count: sets `on_hand` to what was counted, creating the item
    /// if new. Refused with `BelowReserved` when fewer units were counted
    /// than pending reservations hold.
    pub fn set_on_hand(&self, sku: Sku, store: StoreId, qty: u32) -> Result<Level, Error> {
        let key = ItemKey::new(sku, store);
        let mut effects = self.effects();
        let cell = self.cell_or_create(key, &mut effects);
        // A new cell has nothing reserved, so a refused count created nothing.
        let result = cell.set_on_hand(qty);
        let answer = match result {
            Ok((level, delta)) => {
                if delta != 0 {
                    effects.push(|| Effect::Stock {
                        item: key,
                        on_hand: delta,
                        reserved: 0,
                    });
                }
                Ok(level)
            }
            Err(cell::BelowReserved { reserved }) => Err(Error::BelowReserved {
                sku,
                store,
                reserved,
            }),
        };
        self.publish(&mut effects);
        answer
    }

    /// Sets the units the online channel may not take, creating the item if
    /// new. Never fails.
    pub fn set_safety_stock(&self, sku: Sku, store: StoreId, qty: u32) -> Level {
        let key = ItemKey::new(sku, store);
        let mut effects = self.effects();
        let (level, delta) = self.cell_or_create(key, &mut effects).set_safety_stock(qty);
        if delta != 0 {
            effects.push(|| Effect::SafetyStock { item: key, delta });
        }
        self.publish(&mut effects);
        level
    }

    /// An immediate sale without a reservation (a POS sale is
    /// `Channel::InStore`): `on_hand -= qty` if the channel has that many
    /// available.
    pub fn sell(
        &self,
        sku: Sku,
        store: StoreId,
        qty: u32,
        channel: Channel,
    ) -> Result<Level, Error> {
        if qty == 0 {
            return Err(zero_qty());
        }
        let level = self.known_cell(sku, store)?.sell(qty, channel).map_err(
            |cell::Short { available }| Error::Insufficient {
                sku,
                store,
                requested: qty,
                available,
            },
        )?;
        let mut effects = self.effects();
        effects.push(|| Effect::Stock {
            item: ItemKey::new(sku, store),
            on_hand: -i64::from(qty),
            reserved: 0,
        });
        self.publish(&mut effects);
        Ok(level)
    }

    /// The item's stock: one consistent reading of its cell.
    pub fn level(&self, sku: Sku, store: StoreId) -> Result<Level, Error> {
        Ok(self.known_cell(sku, store)?.level())
    }

    /// The shard of `id`, and `id` with its key in that shard's id table:
    /// one hash per operation.
    fn shard(&self, id: ReservationId) -> (&Shard, KeyedId) {
        let (shard, keyed) = self.id_hasher.place(id.0);
        (&self.reservations[shard], keyed)
    }

    /// Looks a reserve's items up before the shard lock, and refuses the
    /// reserve there if that can be proven: reading the lines' cells in
    /// order, the first line that cannot be served is refused (`UnknownItem`
    /// or `Insufficient`, as the locked path checks them) and the id is
    /// certainly unknown (a known id is answered from its record first):
    /// `ids` is the filter of the id's shard. Every reading lies between
    /// the two readings of the id filter, so a
    /// refusal linearizes at the reading of the refused line, like the locked
    /// path's, which also checks each line at its own instant. A cart of
    /// more than [`LOOKED_UP_LINES`] lines skips this. `Ok` carries the cell
    /// indices looked up (items are never removed, so the locked path reuses
    /// them instead of looking the items up again).
    fn refuse_without_lock(
        &self,
        id: ReservationId,
        ids: &IdFilter,
        lines: &[Line],
        channel: Channel,
    ) -> Result<LookedUp, Error> {
        let mut looked = LookedUp::default();
        let touched = self.touch_items(lines);
        if lines.len() > LOOKED_UP_LINES {
            return Ok(looked);
        }
        let sequence = ids.read_begin();
        for (n, line) in lines.iter().enumerate() {
            let found = self.find_touched(line, touched.as_ref().map(|hashes| hashes[n]));
            let refusal = match found {
                None => Error::UnknownItem {
                    sku: line.sku,
                    store: line.store,
                },
                Some(index) => {
                    looked.push(index);
                    if sequence.is_none() {
                        continue; // no refusal can be proven: look up only
                    }
                    match self.items.cell(index).check_available(line.qty, channel) {
                        Ok(()) => continue,
                        Err(cell::Short { available }) => Error::Insufficient {
                            sku: line.sku,
                            store: line.store,
                            requested: line.qty,
                            available,
                        },
                    }
                }
            };
            return match sequence {
                Some(sequence) if ids.certainly_absent_since(id.0, sequence) => Err(refusal),
                _ => Ok(looked),
            };
        }
        Ok(looked)
    }

    /// A multi-line cart reads every item's first table entry before it
    /// looks any up: its cache misses overlap instead of queueing (a long
    /// cart, looked up under the lock, gets them in cache there). Returns
    /// the first lines' hashes, for [`find_touched`](Self::find_touched),
    /// or `None` where nothing was read: a single line, or a table that
    /// stays in cache (no misses to overlap, only the reads to pay).
    fn touch_items(&self, lines: &[Line]) -> Option<[u64; LOOKED_UP_LINES]> {
        if lines.len() < 2 || !self.items.is_large() {
            return None;
        }
        let mut hashes = [0; LOOKED_UP_LINES];
        for (n, line) in lines.iter().enumerate() {
            let hash = self.items.touch(line.item());
            if let Some(kept) = hashes.get_mut(n) {
                *kept = hash;
            }
        }
        Some(hashes)
    }

    /// The cell index of a line's item, with its hash if it was touched.
    fn find_touched(&self, line: &Line, hash: Option<u64>) -> Option<u32> {
        match hash {
            Some(hash) => self.items.find_hashed(line.item(), hash),
            None => self.items.find(line.item()),
        }
    }

    /// Looks up, under the shard lock, the items of a cart's first lines
    /// up to the first unknown one (which `hold_lines` then reports in
    /// its turn). Used where no refusal could be proven before the lock.
    fn look_up_locked(&self, lines: &[Line]) -> LookedUp {
        let mut looked = LookedUp::default();
        let touched = self.touch_items(lines);
        for (n, line) in lines.iter().take(LOOKED_UP_LINES).enumerate() {
            match self.find_touched(line, touched.as_ref().map(|hashes| hashes[n])) {
                Some(index) => looked.push(index),
                None => break,
            }
        }
        looked
    }

    /// Holds units for an order with the default ttl; see
    /// [`reserve_with_ttl`](Self::reserve_with_ttl).
    pub fn reserve(
        &self,
        id: ReservationId,
        channel: Channel,
        lines: &[Line],
    ) -> Result<ReservationAck, Error> {
        self.reserve_with_ttl(id, channel, lines, self.default_ttl_ms)
    }

    /// Holds every line's units for `channel` until `now + ttl_ms`, or none
    /// of them.
    ///
    /// `id` is the idempotency key: repeating a request that succeeded
    /// answers it again (`replayed: true`) without holding more; the same id
    /// with other lines or channel is `IdConflict`. Lines are checked in the
    /// order given and the first that cannot be served is reported
    /// (`UnknownItem`, then `Insufficient` with what was available); on
    /// failure nothing stays held and the id stays free.
    pub fn reserve_with_ttl(
        &self,
        id: ReservationId,
        channel: Channel,
        lines: &[Line],
        ttl_ms: u64,
    ) -> Result<ReservationAck, Error> {
        validate_lines(lines)?;
        if ttl_ms == 0 {
            return Err(zero_ttl());
        }
        let (home, keyed) = self.shard(id);
        // A shard whose id filter is off cannot prove an id unknown, so
        // it refuses nothing before the lock: it takes the lock first and
        // then reads the record place it will write and the items
        // together, so that their cache misses overlap. With the items
        // read first, the lock (a locked instruction) waits for their
        // miss, and the unlock for the record's.
        let early = !home.ids.is_off();
        // A flash sale's sold-out SKU: refuse by reading, writing nothing.
        let looked = if early {
            self.refuse_without_lock(id, &home.ids, lines, channel)?
        } else {
            LookedUp::default()
        };
        if !early && self.items.is_large() {
            // Start the items' cache misses before the lock's locked
            // instruction, which later loads may not pass; a prefetch is
            // not a load, so the lock does not wait for it either.
            for line in lines.iter().take(LOOKED_UP_LINES) {
                self.items.prefetch(line.item());
            }
        }
        let mut effects = self.effects();
        let mut shard = home.records.lock();
        let looked = if early {
            looked
        } else {
            shard.prefetch_id(keyed);
            shard.touch_next_record();
            self.look_up_locked(lines)
        };
        let now = self.clock.now_ms();
        let answer = match shard.find_or_vacancy(keyed) {
            Ok(at) => {
                shard.expire_if_overdue(at, now, &self.items, &mut effects);
                if !shard.same_request(at, channel, lines, &self.items) {
                    Err(Error::IdConflict { id })
                } else {
                    let existing = shard.record(at);
                    match existing.state {
                        ReservationState::Pending | ReservationState::Committed => {
                            Ok(ack(id, existing, true))
                        }
                        ReservationState::Released => Err(Error::AlreadyReleased { id }),
                        ReservationState::Expired => Err(Error::Expired { id }),
                    }
                }
            }
            Err(vacancy) => {
                // Counted into the filter before any unit is held: a reader
                // that sees this reservation's hold must not prove the id
                // unknown (see refuse_without_lock).
                let ids = &home.ids;
                ids.add(id.0);
                let held = self.hold_lines(lines, &looked, channel, &mut effects);
                if held.is_err() {
                    ids.remove(id.0);
                    if lines.len() <= LOOKED_UP_LINES {
                        // refuse_without_lock could not prove the id unknown.
                        shard.refused_unproven(ids);
                    }
                }
                held.map(|held| {
                    let deadline = deadline_after(now, ttl_ms);
                    effects.push(|| Effect::Reserved {
                        id,
                        channel,
                        lines: lines.to_vec(),
                        expires_at_ms: deadline.0,
                    });
                    let at = shard.insert(keyed, channel, deadline, &held, vacancy);
                    ack(id, shard.record(at), false)
                })
            }
        };
        // Published under the shard lock so one id's effects stay in order.
        self.publish(&mut effects);
        drop(shard);
        answer
    }

    /// Reserves each line in order; on the first failure returns the units
    /// of the lines before it and reports the failure. `looked`: the cell
    /// indices of the first lines' items, if already looked up.
    fn hold_lines(
        &self,
        lines: &[Line],
        looked: &LookedUp,
        channel: Channel,
        effects: &mut EffectLog,
    ) -> Result<HeldLines, Error> {
        let held = match lines {
            // The common single-line cart: no allocation, failed or not.
            [line] => HeldLines::one(self.hold_line(line, looked.cell(0), channel)?),
            _ => {
                let mut held = HeldLines::new();
                for (n, line) in lines.iter().enumerate() {
                    match self.hold_line(line, looked.cell(n), channel) {
                        Ok(line) => held.push(line),
                        Err(error) => {
                            for undo in held.as_slice() {
                                self.items.cell(undo.cell).unreserve(undo.qty);
                            }
                            return Err(error);
                        }
                    }
                }
                held
            }
        };
        for line in lines {
            effects.push(|| Effect::Stock {
                item: line.item(),
                on_hand: 0,
                reserved: i64::from(line.qty),
            });
        }
        Ok(held)
    }

    /// Reserves one line: `UnknownItem`, then `Insufficient`, as the contract
    /// orders them. `found`: the item's cell index, if already looked up.
    fn hold_line(
        &self,
        line: &Line,
        found: Option<u32>,
        channel: Channel,
    ) -> Result<HeldLine, Error> {
        let index = found
            .or_else(|| self.items.find(line.item()))
            .ok_or(Error::UnknownItem {
                sku: line.sku,
                store: line.store,
            })?;
        self.items.cell(index).reserve(line.qty, channel).map_err(
            |cell::Short { available }| Error::Insufficient {
                sku: line.sku,
                store: line.store,
                requested: line.qty,
                available,
            },
        )?;
        Ok(HeldLine {
            cell: index,
            qty: line.qty,
        })
    }

    /// Runs `act` on reservation `id` under its shard lock, after the lazy
    /// expiry the contract performs first. `act` gets the shard, the
    /// record's position in it, the time, the effect log and whether this
    /// very call expired the reservation.
    fn with_reservation<T>(
        &self,
        id: ReservationId,
        act: impl FnOnce(&mut ReservationShard, u32, u64, &mut EffectLog, bool) -> Result<T, Error>,
    ) -> Result<T, Error> {
        let mut effects = self.effects();
        let (home, keyed) = self.shard(id);
        let mut shard = home.records.lock();
        let now = self.clock.now_ms();
        let answer = match shard.find(keyed) {
            Some(at) => {
                let expired_now = shard.expire_if_overdue(at, now, &self.items, &mut effects);
                act(&mut shard, at, now, &mut effects, expired_now)
            }
            None => Err(Error::UnknownReservation { id }),
        };
        self.publish(&mut effects);
        drop(shard);
        answer
    }

    /// Takes a pending reservation's units out of stock (the order is paid
    /// or shipped). Committing again answers `replayed: true`.
    pub fn commit(&self, id: ReservationId) -> Result<ReservationAck, Error> {
        self.with_reservation(id, |shard, at, now, effects, _| {
            match shard.record(at).state {
                ReservationState::Pending => {
                    let to = ReservationState::Committed;
                    shard.finish(at, to, now, &self.items, effects);
                    Ok(ack(id, shard.record(at), false))
                }
                ReservationState::Committed => Ok(ack(id, shard.record(at), true)),
                ReservationState::Released => Err(Error::AlreadyReleased { id }),
                ReservationState::Expired => Err(Error::Expired { id }),
            }
        })
    }

    /// Gives a pending reservation's units back (the cart was abandoned).
    /// Releasing a released or expired reservation answers ok with
    /// `replayed: true` and its state; a committed one is `AlreadyCommitted`.
    pub fn release(&self, id: ReservationId) -> Result<ReservationAck, Error> {
        self.with_reservation(id, |shard, at, now, effects, expired_now| {
            match shard.record(at).state {
                ReservationState::Pending => {
                    let to = ReservationState::Released;
                    shard.finish(at, to, now, &self.items, effects);
                    Ok(ack(id, shard.record(at), false))
                }
                ReservationState::Expired => Ok(ack(id, shard.record(at), !expired_now)),
                ReservationState::Released => Ok(ack(id, shard.record(at), true)),
                ReservationState::Committed => Err(Error::AlreadyCommitted { id }),
            }
        })
    }

    /// Moves a pending reservation's deadline to `now + ttl_ms`.
    pub fn extend(&self, id: ReservationId, ttl_ms: u64) -> Result<ReservationAck, Error> {
        if ttl_ms == 0 {
            return Err(zero_ttl());
        }
        self.with_reservation(id, |shard, at, now, effects, _| {
            match shard.record(at).state {
                ReservationState::Pending => {
                    shard.extend(at, now, ttl_ms);
                    let answer = ack(id, shard.record(at), false);
                    effects.push(|| Effect::Extended {
                        id,
                        expires_at_ms: answer.expires_at_ms.unwrap_or(u64::MAX),
                    });
                    Ok(answer)
                }
                ReservationState::Committed => Err(Error::AlreadyCommitted { id }),
                ReservationState::Released => Err(Error::AlreadyReleased { id }),
                ReservationState::Expired => Err(Error::Expired { id }),
            }
        })
    }

    /// The reservation as it is now (an overdue one is expired first).
    pub fn get(&self, id: ReservationId) -> Result<ReservationInfo, Error> {
        self.with_reservation(id, |shard, at, _, _, _| {
            let record = shard.record(at);
            Ok(ReservationInfo {
                id,
                state: record.state,
                channel: record.channel,
                lines: shard.lines(at).map(|held| held.line(&self.items)).collect(),
                expires_at_ms: record.expires_at,
            })
        })
    }

    /// The reaper: expires every pending reservation whose deadline has
    /// come, returning their units, then forgets terminal reservations older
    /// than the retention window. Returns how many it expired. Its cost grows
    /// with the reservations it processes, not with those it leaves alone.
    /// Run it periodically (every second or so) from a background thread;
    /// operations naming an overdue reservation expire it themselves. It is
    /// also what frees memory: forgotten records, and the 16-byte deadline
    /// entries that commits and releases leave behind until their deadline
    /// passes, so an inventory that is never reaped keeps growing.
    pub fn expire(&self) -> u64 {
        let mut expired = 0;
        let mut effects = self.effects();
        for shard in self.reservations.iter() {
            let ids = &shard.ids;
            let mut shard = shard.records.lock();
            let now = self.clock.now_ms();
            expired += shard.expire_due(now, &self.items, &mut effects);
            shard.forget_old(now, self.retention_ms, ids, &mut effects);
            self.publish(&mut effects);
        }
        expired
    }

    /// Runs one [`Command`]; the dispatcher behind the replay tool and the
    /// model-based tests.
    pub fn apply(&self, command: &Command) -> Result<Outcome, Error> {
        match *command {
            Command::Restock { sku, store, qty } => {
                self.restock(sku, store, qty).map(Outcome::Level)
            }
            Command::SetOnHand { sku, store, qty } => {
                self.set_on_hand(sku, store, qty).map(Outcome::Level)
            }
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
            Command::Commit { id } => self.commit(id).map(Outcome::Reservation),
            Command::Release { id } => self.release(id).map(Outcome::Reservation),
            Command::Extend { id, ttl_ms } => self.extend(id, ttl_ms).map(Outcome::Reservation),
            Command::Get { id } => self.get(id).map(Outcome::Info),
            Command::Expire => Ok(Outcome::Expired(self.expire())),
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
            .for_each(|key, cell| all.push((key, cell.level())));
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

#[cfg(all(test, not(omnistock_loom)))]
mod tests {
    use super::*;
    use crate::model::{same_answer, ReferenceModel};
    use crate::ManualClock;

    /// An inventory and the reference model side by side on one manual
    /// clock: every command must get the same answer from both.
    struct Lockstep {
        inventory: Inventory,
        model: ReferenceModel,
        clock: Arc<ManualClock>,
    }

    impl Lockstep {
        fn new(ttl: u64, retention: u64, expected_items: usize) -> Self {
            let clock = Arc::new(ManualClock::new());
            let inventory = Inventory::builder()
                .clock(clock.clone())
                .default_ttl_ms(ttl)
                .retention_ms(retention)
                .expected_items(expected_items)
                .build();
            Lockstep {
                inventory,
                model: ReferenceModel::with_limits(ttl, retention),
                clock,
            }
        }

        fn run(&mut self, command: Command) {
            let ours = self.inventory.apply(&command);
            let theirs = self.model.apply(&command);
            assert!(
                same_answer(&ours, &theirs),
                "{command:?}: {ours:?} vs {theirs:?}"
            );
        }

        fn advance(&mut self, ms: u64) {
            self.clock.advance(ms);
            self.model.advance(ms);
        }

        /// Skus `0..skus` at `store`, `qty` units each.
        fn stock(&mut self, store: StoreId, skus: u64, qty: u32) {
            for sku in 0..skus {
                self.run(Command::Restock {
                    sku: Sku(sku),
                    store,
                    qty,
                });
            }
        }

        /// The shard of id 0, and the first `n` ids it holds.
        fn ids_of_one_shard(&self, n: usize) -> (usize, Vec<ReservationId>) {
            let hasher = self.inventory.id_hasher;
            let home = hasher.shard_of(0);
            let ids = (0..)
                .filter(|&id| hasher.shard_of(id) == home)
                .take(n)
                .map(ReservationId)
                .collect();
            (home, ids)
        }
    }

    /// Of `n` ids never used, how many their shards' filters prove unknown.
    fn proven_unknown(inventory: &Inventory, n: u64) -> u64 {
        let fresh = 1u64 << 40;
        (fresh..fresh + n)
            .filter(|&id| {
                let ids = &inventory.shard(ReservationId(id)).0.ids;
                ids.read_begin()
                    .is_some_and(|sequence| ids.certainly_absent_since(id, sequence))
            })
            .count() as u64
    }

    fn filter_counters(inventory: &Inventory) -> usize {
        inventory
            .reservations
            .iter()
            .map(|shard| shard.ids.len())
            .sum()
    }

    /// Without `expected_reservations`, the id filters start off: a shard
    /// that refuses nothing counts no ids. Refusals of fresh ids on a
    /// sold-out item switch them on, sized for the ids remembered, so those
    /// refusals go back to answering without the lock; and once the ids
    /// are forgotten they shrink to the size the catalogue sets, still on.
    #[test]
    fn id_filters_grow_for_refusals_and_shrink_when_ids_are_forgotten() {
        let clock = Arc::new(ManualClock::new());
        let inventory = Inventory::builder()
            .clock(clock.clone())
            .retention_ms(1_000)
            .build();
        let (sku, store) = (Sku(1), StoreId(1));
        let cart = [Line::new(sku, store, 1)];
        let remembered = 400_000u64;
        inventory
            .set_on_hand(sku, store, remembered as u32)
            .unwrap();
        assert_eq!(filter_counters(&inventory), 0, "off until a refusal");
        // The size a filter takes at the least once on: from the default
        // 65,536 expected items.
        let floor =
            RESERVATION_SHARDS * id_filter::counters_per_shard(65_536, None, RESERVATION_SHARDS);
        for id in 0..remembered {
            let id = ReservationId(id);
            inventory.reserve(id, Channel::Online, &cart).unwrap();
            inventory.commit(id).unwrap();
        }
        // Nothing refused yet: the filters are still off (about 1560 ids a
        // shard counted nowhere) and prove nothing.
        assert_eq!(filter_counters(&inventory), 0);
        assert_eq!(proven_unknown(&inventory, 10_000), 0);

        // A sell-out's refusals: a fresh id is refused, a remembered one
        // replayed. After a few refusals under its lock, each shard's
        // filter switched on. Ids 129 apart take a new block each time and
        // every place of a group in turn, so each shard gets about 78 of
        // them (sequential ids would come in a few blocks, and a group of
        // shards the blocks miss would refuse nothing).
        let fresh = 1u64 << 41;
        for id in (0..20_000).map(|k| fresh + k * 129) {
            assert!(matches!(
                inventory.reserve(ReservationId(id), Channel::Online, &cart),
                Err(Error::Insufficient { available: 0, .. })
            ));
        }
        assert!(inventory
            .reserve(ReservationId(7), Channel::Online, &cart)
            .is_ok_and(|ack| ack.replayed));
        let grown = filter_counters(&inventory);
        assert!(grown >= 4 * floor, "{grown} counters");
        // Between one id per 4 counters (about 85 %) and one per 8 (95 %).
        let proven = proven_unknown(&inventory, 10_000);
        assert!(proven > 8_400, "only {proven} of 10000 fresh ids proven");

        clock.advance(1_000);
        inventory.expire();
        let left: usize = inventory
            .reservations
            .iter()
            .map(|shard| shard.records.lock().len())
            .sum();
        assert_eq!(left, 0);
        assert_eq!(filter_counters(&inventory), floor);
        assert_eq!(proven_unknown(&inventory, 10_000), 10_000);
    }

    /// A burst of reservations in one shard, then forgetting most of them,
    /// checked step by step against the reference model: the shard's slab
    /// is compacted (its memory follows the reservations remembered, not
    /// the peak) and every reservation left, pending or ended, single- or
    /// multi-line, filed in order or out of order, answers as before:
    /// found, committed, released, extended, expired and forgotten on
    /// time.
    #[test]
    fn a_burst_is_compacted_away_and_what_is_left_behaves_the_same() {
        let (ttl, retention) = (10_000, 1_000);
        let mut both = Lockstep::new(ttl, retention, 64);
        let store = StoreId(3);
        both.stock(store, 6, 1_000_000);
        let (home, ids) = both.ids_of_one_shard(6_000);
        let (burst, later) = ids.split_at(5_000);
        // The burst: every tenth stays pending, some with a deadline
        // before the in-order queue's last; one in seven has three lines
        // (the rest in a block), one in eleven six (in a long list).
        for (n, &id) in burst.iter().enumerate() {
            let lines: Vec<Line> = if n % 7 == 0 {
                (0..3).map(|sku| Line::new(Sku(sku), store, 1)).collect()
            } else if n % 11 == 0 {
                (0..6)
                    .rev()
                    .map(|sku| Line::new(Sku(sku), store, 1))
                    .collect()
            } else {
                vec![Line::new(Sku(n as u64 % 4), store, 2)]
            };
            // Pending ones: half with the default ttl (filed in order),
            // half shorter (filed out of order, in the sorted set).
            let ttl_ms = match n % 20 {
                10 => Some(5_000 + (n as u64 * 37) % 3_000),
                _ => None,
            };
            both.run(Command::Reserve {
                id,
                channel: Channel::Online,
                ttl_ms,
                lines,
            });
            match n % 10 {
                0 => {}
                1 | 2 => both.run(Command::Release { id }),
                _ => both.run(Command::Commit { id }),
            }
        }
        let positions =
            |inventory: &Inventory| inventory.reservations[home].records.lock().slab_positions();
        assert_eq!(positions(&both.inventory), burst.len());
        // Half a retention later some pending ones end: still remembered
        // when the rest of the burst is forgotten.
        both.advance(retention / 2);
        for &id in burst.iter().skip(50).step_by(60) {
            both.run(Command::Commit { id });
        }
        both.advance(retention / 2);
        both.run(Command::Expire);
        // 500 left of 5000 (pending, or ended at half time): compacted.
        assert_eq!(positions(&both.inventory), 500);
        for &id in burst {
            both.run(Command::Get { id });
        }
        // What is left still works: extend some, commit some, release some.
        // (Of both kinds, some are left alone: 30, 40 and 50.)
        for (n, &id) in burst.iter().enumerate().step_by(10) {
            match n % 60 {
                0 => both.run(Command::Extend { id, ttl_ms: 50 }),
                10 => both.run(Command::Commit { id }),
                20 => both.run(Command::Release { id }),
                _ => {}
            }
        }
        for &id in &later[..500] {
            both.run(Command::Reserve {
                id,
                channel: Channel::InStore,
                ttl_ms: Some(100),
                lines: vec![Line::new(Sku(1), store, 1)],
            });
        }
        // Through the deadlines (extended, in order, out of order) and the
        // retention after them. `expire()` answers how many it expired:
        // only the deadline index finds them (the lookups below would
        // expire them lazily, so they come after).
        for advance in [60, 100, 5_000, 3_000, 1_000, 1_000] {
            both.advance(advance);
            both.run(Command::Expire);
            for &id in burst.iter().step_by(10).chain(&later[..500]) {
                both.run(Command::Get { id });
            }
            assert_eq!(both.inventory.items(), both.model.items());
            assert_eq!(
                both.inventory.reservation_count(),
                both.model.reservation_count()
            );
        }
        assert_eq!(both.model.reservation_count(), 0);
        // All forgotten; a slab this small is kept for reuse, not compacted.
        assert_eq!(positions(&both.inventory), 1_000);
        both.run(Command::Reserve {
            id: later[999],
            channel: Channel::Online,
            ttl_ms: None,
            lines: vec![Line::new(Sku(0), store, 1)],
        });
        both.run(Command::Get { id: later[999] });
    }

    /// In an item table too large for the cache, multi-line carts read
    /// their items ahead and look them up with the hashes computed then,
    /// and a multi-line finish reads its cells ahead: the answers are the
    /// model's, for carts of 2 to 10 lines whose unknown or short line
    /// comes anywhere, and for their commits, releases and expiries.
    #[test]
    fn multi_line_carts_in_a_large_catalogue_answer_as_the_model_says() {
        let ttl = 1_000;
        let mut both = Lockstep::new(ttl, 10_000, 100_000);
        assert!(both.inventory.items.is_large(), "the path under test");
        // Skus 0..40 at two stores, 3 units each; sku 40 is unknown.
        for sku in 0..40 {
            for store in [StoreId(1), StoreId(2)] {
                both.run(Command::Restock {
                    sku: Sku(sku),
                    store,
                    qty: 3,
                });
            }
        }
        for n in 0..200u64 {
            let len = 2 + n % 9;
            let lines = (0..len)
                .map(|k| {
                    let sku = if n % 13 == k {
                        40
                    } else {
                        (n * 7 + k * 3) % 40
                    };
                    Line::new(Sku(sku), StoreId(1 + k % 2), 1 + (n + k) as u32 % 3)
                })
                .collect();
            let id = ReservationId(n);
            both.run(Command::Reserve {
                id,
                channel: Channel::InStore,
                ttl_ms: None,
                lines,
            });
            match n % 4 {
                0 => both.run(Command::Commit { id }),
                1 => both.run(Command::Release { id }),
                _ => {} // left to expire
            }
            if n % 50 == 49 {
                both.advance(ttl);
                both.run(Command::Expire);
                for sku in 0..40 {
                    both.run(Command::Restock {
                        sku: Sku(sku),
                        store: StoreId(1 + sku % 2),
                        qty: 2,
                    });
                }
            }
        }
        for n in 0..200 {
            both.run(Command::Get {
                id: ReservationId(n),
            });
        }
        assert_eq!(both.inventory.items(), both.model.items());
    }

    /// A burst of multi-line carts forgotten among single-line carts that
    /// stay: the record slab is not sparse, the extra lines' slabs are, and
    /// they alone make the shard compact; every cart left answers as the
    /// model says.
    #[test]
    fn extra_lines_of_a_forgotten_burst_are_compacted_away() {
        let retention = 1_000;
        let mut both = Lockstep::new(1_000_000, retention, 64);
        let store = StoreId(5);
        both.stock(store, 8, 1_000_000);
        let (home, ids) = both.ids_of_one_shard(4_200);
        // 1,200 single-line carts that stay pending, then 3,000 carts of
        // 2 to 8 lines, committed.
        for (n, &id) in ids.iter().enumerate() {
            let len = if n < 1_200 { 1 } else { 2 + n as u64 % 7 };
            let lines = (0..len)
                .map(|sku| Line::new(Sku((sku + n as u64) % 8), store, 1))
                .collect();
            both.run(Command::Reserve {
                id,
                channel: Channel::InStore,
                ttl_ms: None,
                lines,
            });
            if n >= 1_200 {
                both.run(Command::Commit { id });
            }
        }
        let extra_positions = |inventory: &Inventory| {
            let shard = inventory.reservations[home].records.lock();
            (shard.slab_positions(), shard.extra_positions())
        };
        assert_eq!(extra_positions(&both.inventory), (4_200, 3_000));
        both.advance(retention);
        both.run(Command::Expire);
        // The records stayed dense enough (4,200 places for 1,200), the
        // extra lines did not (3,000 places for none): compacted, both.
        assert_eq!(extra_positions(&both.inventory), (1_200, 0));
        for &id in &ids {
            both.run(Command::Get { id });
        }
        for &id in ids[..1_200].iter().step_by(3) {
            both.run(Command::Release { id });
        }
        // Multi-line carts again, in the compacted shard.
        for (n, &id) in ids[1_200..1_300].iter().enumerate() {
            let lines = (0..4)
                .map(|sku| Line::new(Sku(sku + n as u64 % 4), store, 1))
                .collect();
            both.run(Command::Reserve {
                id,
                channel: Channel::Online,
                ttl_ms: None,
                lines,
            });
            both.run(Command::Get { id });
        }
        assert_eq!(both.inventory.items(), both.model.items());
        assert_eq!(
            both.inventory.reservation_count(),
            both.model.reservation_count()
        );
    }
}

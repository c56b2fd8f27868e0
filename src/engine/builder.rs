//! [`InventoryBuilder`]: the settings of an [`Inventory`] and the checked
//! allocation of its tables. Nothing is allocated until `build`.

use super::{Inventory, RESERVATION_SHARDS};
use crate::alerts::{AlertObserver, Alerts};
use crate::campaigns::{Campaigns, DEFAULT_MAX_CAMPAIGNS};
use crate::clock::{Clock, SystemClock};
use crate::durability::sink::Durable;
use crate::durability::steps::RecordSink;
use crate::durability::steps::Sequencer;
use crate::effect::EffectObserver;
use crate::error::BuildError;
use crate::limits::{DEFAULT_RETENTION_MS, DEFAULT_TTL_MS};
use crate::reservations::id_filter;
use crate::reservations::id_placement::IdHasher;
use crate::reservations::shard::{Compaction, Shard};
use crate::stock::item_table::ItemTable;
use crossbeam_utils::CachePadded;
use std::fmt;
use std::sync::Arc;

/// Items the lock-free item index is sized for unless told otherwise.
pub const DEFAULT_EXPECTED_ITEMS: usize = 65_536;

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
    compaction: Compaction,
    id_filter: id_filter::Sizing,
    observer: Option<Arc<dyn EffectObserver>>,
    alert_observer: Option<Arc<dyn AlertObserver>>,
    keep_alerts: Option<bool>,
    max_campaigns: usize,
    /// Where journal records go, and the first sequence number.
    sink: Option<(Arc<dyn RecordSink>, u64)>,
    /// How reservation ids are placed in shards; random unless recovered.
    id_key: Option<u64>,
    /// The journal's directory and options, for `open`.
    #[cfg(feature = "journal")]
    journal: Option<(std::path::PathBuf, crate::journal::JournalOptions)>,
    /// The journal sink `open` installs.
    #[cfg(feature = "journal")]
    journaled: Option<Arc<crate::durability::sink::Journaled>>,
}

impl fmt::Debug for InventoryBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InventoryBuilder")
            .field("clock", &self.clock)
            .field("expected_items", &self.expected_items)
            .field("expected_reservations", &self.expected_reservations)
            .field("default_ttl_ms", &self.default_ttl_ms)
            .field("retention_ms", &self.retention_ms)
            .field("compaction", &self.compaction)
            .field("id_filter", &self.id_filter)
            .field("observer", &self.observer.is_some())
            .field("alert_observer", &self.alert_observer.is_some())
            .field("keep_alerts", &self.keep_alerts)
            .field("max_campaigns", &self.max_campaigns)
            .field("sink", &self.sink.as_ref().map(|(sink, _)| sink))
            .field("id_key", &self.id_key.is_some())
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
            compaction: Compaction::DEFAULT,
            id_filter: id_filter::Sizing::DEFAULT,
            observer: None,
            alert_observer: None,
            keep_alerts: None,
            // Under loom every slot's atomics are modelled: a few slots.
            max_campaigns: if cfg!(omnistock_loom) {
                4
            } else {
                DEFAULT_MAX_CAMPAIGNS
            },
            sink: None,
            id_key: None,
            #[cfg(feature = "journal")]
            journal: None,
            #[cfg(feature = "journal")]
            journaled: None,
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
    /// (8 bytes per expected item, between 128 KiB and 2 MiB in all with
    /// the default [`id_filter_counters`](Self::id_filter_counters)),
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
    /// reservation, between 128 KiB and 256 MiB in all by default (see
    /// [`id_filter_counters`](Self::id_filter_counters)), counting from the
    /// start.
    ///
    /// Without it, each of the 256 reservation shards starts with its filter
    /// off: a reserve and the forgetting of its reservation skip the
    /// filter's counters (two counters each way, which miss the cache in a
    /// large catalogue), and a refused reserve takes its shard's lock. After a few such refusals in
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
    /// twice the largest. Past their largest size, refusals gradually take the
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

    /// When a reservation shard compacts its record memory after
    /// forgetting (see [`retention_ms`](Self::retention_ms)): once its
    /// record slab (or its slab of extra lines) has handed out at least
    /// `min_positions` places and `sparseness` times more places than it
    /// holds records. The default, 1024 places and 4 times, compacts only
    /// slabs of 32 KiB of records and more, once three quarters of their
    /// places are free, so compaction, which takes time in proportion to
    /// the places handed out, is paid for by the forgetting before it.
    ///
    /// Small values compact often: tests use them to move reservations to
    /// new places after every few forgotten ones. Answers never depend on
    /// it. [`try_build`](Self::try_build) refuses a `sparseness` below 2
    /// (a slab with no free place would be compacted) and a
    /// `min_positions` of 0.
    ///
    /// ```
    /// use omnistock::{BuildError, Inventory};
    /// let inventory = Inventory::builder().compaction(2, 2).build();
    /// # drop(inventory);
    /// assert!(matches!(
    ///     Inventory::builder().compaction(1024, 1).try_build(),
    ///     Err(BuildError::InvalidSetting { setting: "compaction", .. })
    /// ));
    /// ```
    pub fn compaction(mut self, min_positions: usize, sparseness: usize) -> Self {
        self.compaction = Compaction {
            min_positions,
            sparseness,
        };
        self
    }

    /// How large each reservation shard's id filter may get, in counters of
    /// one byte: at least `min_per_shard`, at most `max_per_shard`, both
    /// powers of two (256 shards; default 512 and 1,048,576, 128 KiB and
    /// 256 MiB in all).
    ///
    /// The filter lets a reserve that is about to be refused (a sold-out
    /// item) prove its id unknown without taking the shard's lock. It
    /// proves most fresh ids unknown while its shard remembers at most one
    /// reservation per 4 counters (about 85 %; 95 % at one per 8), so
    /// `max_per_shard / 4` reservations remembered per shard is where
    /// refusals start to take the lock again; the answers never change,
    /// only their cost. A shard whose filter switched on keeps at least
    /// `min_per_shard` counters; the starting size that
    /// [`expected_items`](Self::expected_items) or
    /// [`expected_reservations`](Self::expected_reservations) sets is
    /// rounded up to a power of two and clamped between the two.
    ///
    /// Small values make filters grow, shrink and switch on with a handful
    /// of reservations: tests use them (with
    /// [`id_filter_refusals_before_growing`](Self::id_filter_refusals_before_growing)
    /// at 1). [`try_build`](Self::try_build) refuses sizes that are not
    /// powers of two, a `min_per_shard` above `max_per_shard`, and a
    /// `max_per_shard` above 16,777,216 (16 MiB a shard, 4 GiB in all).
    ///
    /// ```
    /// use omnistock::{BuildError, Inventory};
    /// // Up to 4 MiB a shard (1 GiB in all): about a million reservations
    /// // remembered per shard before refusals take the lock again.
    /// let inventory = Inventory::builder().id_filter_counters(512, 1 << 22).build();
    /// # drop(inventory);
    /// assert!(matches!(
    ///     Inventory::builder().id_filter_counters(1000, 1 << 20).try_build(),
    ///     Err(BuildError::InvalidSetting { setting: "id_filter_counters", .. })
    /// ));
    /// ```
    pub fn id_filter_counters(mut self, min_per_shard: usize, max_per_shard: usize) -> Self {
        self.id_filter.min_counters = min_per_shard;
        self.id_filter.max_counters = max_per_shard;
        self
    }

    /// How many refusals of fresh ids a reservation shard takes under its
    /// lock, because its id filter could not prove them unknown (or was
    /// off), before it rebuilds the filter larger or switches it on
    /// (default 8; see [`id_filter_counters`](Self::id_filter_counters)
    /// and [`expected_reservations`](Self::expected_reservations)). A
    /// rebuild counts the shard's ids in again under its lock, so a few
    /// refusals that a filter could not have spared do not pay for one.
    /// [`try_build`](Self::try_build) refuses 0.
    pub fn id_filter_refusals_before_growing(mut self, refusals: u32) -> Self {
        self.id_filter.refusals_before_growing = refusals;
        self
    }

    /// Receives the effect records of every successful mutation.
    pub fn observer(mut self, observer: Arc<dyn EffectObserver>) -> Self {
        self.observer = Some(observer);
        self
    }

    /// Receives the low-stock alerts (see
    /// [`Inventory::set_reorder_point`]), on the thread whose operation
    /// raised them. With an observer, alerts are not also kept for
    /// [`Inventory::take_alerts`] unless [`keep_alerts`](Self::keep_alerts)
    /// says so.
    pub fn alert_observer(mut self, observer: Arc<dyn AlertObserver>) -> Self {
        self.alert_observer = Some(observer);
        self
    }

    /// Whether raised alerts are kept for [`Inventory::take_alerts`]
    /// (default: only when there is no alert observer). A service that
    /// never calls `take_alerts` and sets no observer should set false, or
    /// the list grows with every alert.
    pub fn keep_alerts(mut self, keep: bool) -> Self {
        self.keep_alerts = Some(keep);
        self
    }

    /// How many campaign ids the inventory can hold at once and over its
    /// life (default 1024; 0: none). A campaign keeps its place when it
    /// ends, for a later definition of the same id; a new id past the last
    /// place is refused as invalid.
    pub fn max_campaigns(mut self, campaigns: usize) -> Self {
        self.max_campaigns = campaigns;
        self
    }

    /// Hands every mutating operation's journal records to `sink`
    /// (numbered from 1), as a journal would get them: the lower-level
    /// hook under [`journal`](Self::journal), for tests and for sinks of
    /// one's own. Records are built only when a sink is installed.
    pub fn record_sink(mut self, sink: Arc<dyn RecordSink>) -> Self {
        self.sink = Some((sink, 1));
        self
    }

    #[cfg(feature = "journal")]
    pub(crate) fn set_journal(
        mut self,
        dir: std::path::PathBuf,
        options: crate::journal::JournalOptions,
    ) -> Self {
        self.journal = Some((dir, options));
        self
    }

    #[cfg(feature = "journal")]
    pub(crate) fn take_journal(
        mut self,
    ) -> (
        Self,
        Option<(std::path::PathBuf, crate::journal::JournalOptions)>,
    ) {
        let journal = self.journal.take();
        (self, journal)
    }

    /// Installs the journal as the record sink (numbering is set after
    /// recovery).
    #[cfg(feature = "journal")]
    pub(crate) fn journaled(mut self, sink: Arc<crate::durability::sink::Journaled>) -> Self {
        self.sink = Some((sink.clone(), 1));
        self.journaled = Some(sink);
        self
    }

    /// Places reservation ids as the process that wrote a snapshot did.
    pub(crate) fn id_key(mut self, key: u64) -> Self {
        self.id_key = Some(key);
        self
    }

    /// The inventory, empty.
    ///
    /// # Panics
    ///
    /// If the memory that `expected_items` and `expected_reservations` ask
    /// for up front cannot be allocated (about 31 bytes per expected item),
    /// or a setting is out of its range (see [`compaction`](Self::compaction),
    /// [`id_filter_counters`](Self::id_filter_counters),
    /// [`id_filter_refusals_before_growing`](Self::id_filter_refusals_before_growing)).
    /// [`try_build`](Self::try_build) reports that as an error instead.
    pub fn build(self) -> Inventory {
        self.try_build().unwrap_or_else(|error| panic!("{error}"))
    }

    /// The inventory, empty.
    ///
    /// # Errors
    ///
    /// A [`BuildError`] saying for what and how many bytes, with nothing
    /// allocated, if the system refuses the memory that `expected_items`
    /// and `expected_reservations` ask for up front
    /// ([`BuildError::OutOfMemory`]), or a [`BuildError::InvalidSetting`] for
    /// a setting out of its range.
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
        if self.compaction.sparseness < 2 || self.compaction.min_positions == 0 {
            return Err(BuildError::InvalidSetting {
                setting: "compaction",
                reason: "sparseness must be at least 2 and min_positions at least 1",
            });
        }
        self.id_filter.check()?;
        #[cfg(feature = "journal")]
        if self.journal.is_some() {
            return Err(BuildError::InvalidSetting {
                setting: "journal",
                reason: "an inventory with a journal is opened with open(), which recovers it",
            });
        }
        let filter_counters = self.id_filter.start_counters(
            self.expected_items,
            self.expected_reservations,
            RESERVATION_SHARDS,
        );
        // Without a figure for the reservations, a shard counts ids only
        // once refusals show it pays (see id_filter).
        let filter_on = self.expected_reservations.is_some();
        let campaigns = std::sync::Arc::new(Campaigns::new(self.max_campaigns));
        let mut reservations = Vec::with_capacity(RESERVATION_SHARDS);
        for _ in 0..RESERVATION_SHARDS {
            reservations.push(CachePadded::new(Shard::try_new(
                filter_counters,
                self.id_filter,
                filter_on,
                self.compaction,
                campaigns.clone(),
            )?));
        }
        Ok(Inventory {
            items: ItemTable::try_new(self.expected_items)?,
            reservations: reservations.into_boxed_slice(),
            id_hasher: self
                .id_key
                .map_or_else(IdHasher::default, IdHasher::with_key),
            clock: self.clock,
            default_ttl_ms: self.default_ttl_ms,
            retention_ms: self.retention_ms,
            observer: self.observer,
            campaigns,
            campaign_order: parking_lot::RwLock::new(()),
            campaigns_seen: std::sync::atomic::AtomicBool::new(false),
            alerts: Alerts::new(
                self.alert_observer.clone(),
                self.keep_alerts.unwrap_or(self.alert_observer.is_none()),
            ),
            durable: self.sink.map(|(sink, first)| {
                Box::new(Durable {
                    seqs: Sequencer::starting_at(first),
                    sink,
                    #[cfg(feature = "journal")]
                    journal: self.journaled,
                })
            }),
        })
    }
}

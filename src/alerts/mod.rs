//! Reorder points and low-stock alerts: each item's reorder point and its
//! "alerted" mark, and where raised alerts go (an observer set on the
//! builder, and a list `take_alerts` empties).
//!
//! Invariants: the mark of an item says whether its `available_online` was
//! below its reorder point when it was last evaluated. An evaluation reads
//! the item's level and flips the mark under the mark's lock, so
//! evaluations of one item are ordered, and only the evaluation that turns
//! the mark on raises an alert: one alert per downward crossing, however
//! many threads cross together. Every operation that changes an item's
//! cell or reorder point evaluates the item after its change, on its own
//! thread. Nothing is evaluated, and no lock taken, until some item gets a
//! reorder point above 0. The marks are derivable from the reorder points
//! and the levels (a mark is on exactly when the item is below its point),
//! so a journal need only record the reorder points.

use crate::sync::{AtomicBool, Mutex, Ordering};
use crate::types::{ItemKey, Level, Sku, StoreId};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

/// Lock shards of the reorder points (two under loom).
#[cfg(not(omnistock_loom))]
const SHARDS: usize = 16;
#[cfg(omnistock_loom)]
const SHARDS: usize = 2;

/// A low-stock alert: the item's `available_online` fell below its reorder
/// point. Carries what a replenishment order needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Alert {
    /// The SKU.
    pub sku: Sku,
    /// The store.
    pub store: StoreId,
    /// Units available online when the alert was raised.
    pub available_online: u32,
    /// The item's reorder point.
    pub reorder_point: u32,
}

/// Receives low-stock alerts (set with
/// [`InventoryBuilder::alert_observer`](crate::InventoryBuilder::alert_observer)).
/// Called on the thread whose operation crossed the reorder point, after
/// the change and after the operation released its locks (so it may read
/// or change the inventory), with the alerts of that operation (sorted by
/// item); keep it quick (hand them to a channel).
pub trait AlertObserver: Send + Sync {
    /// The alerts one operation raised.
    fn on_alerts(&self, alerts: &[Alert]);
}

impl<F: Fn(&[Alert]) + Send + Sync> AlertObserver for F {
    fn on_alerts(&self, alerts: &[Alert]) {
        self(alerts)
    }
}

/// An item's reorder point and mark.
#[derive(Clone, Copy, Debug)]
struct Mark {
    reorder_point: u32,
    alerted: bool,
}

/// The reorder points, marks and alert delivery of one inventory.
pub(crate) struct Alerts {
    /// Some item has (or had) a reorder point: evaluate changes.
    watching: AtomicBool,
    points: Box<[Mutex<HashMap<ItemKey, Mark>>]>,
    observer: Option<Arc<dyn AlertObserver>>,
    /// Alerts kept for `take_alerts`, when `keep`.
    kept: Mutex<Vec<Alert>>,
    keep: bool,
}

impl fmt::Debug for Alerts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Alerts")
            .field("observer", &self.observer.is_some())
            .field("keep", &self.keep)
            .finish_non_exhaustive()
    }
}

impl Alerts {
    /// Alerts go to `observer`, and are kept for `take` when `keep`.
    pub(crate) fn new(observer: Option<Arc<dyn AlertObserver>>, keep: bool) -> Self {
        Alerts {
            watching: AtomicBool::new(false),
            points: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            observer,
            kept: Mutex::new(Vec::new()),
            keep,
        }
    }

    /// Whether changes need evaluating: one load.
    pub(crate) fn watching(&self) -> bool {
        self.watching.load(Ordering::Acquire)
    }

    fn shard(&self, item: &ItemKey) -> &Mutex<HashMap<ItemKey, Mark>> {
        let mixed = (item.sku.0 ^ item.store.0.rotate_left(29)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        &self.points[(mixed >> 60) as usize % SHARDS]
    }

    /// Visits every item with a reorder point (for a snapshot), one lock
    /// shard at a time.
    pub(crate) fn for_each_point(&self, mut visit: impl FnMut(ItemKey, u32)) {
        for shard in self.points.iter() {
            for (item, mark) in shard.lock().iter() {
                visit(*item, mark.reorder_point);
            }
        }
    }

    /// Sets `item`'s reorder point and evaluates it with `level()`, read
    /// under the mark's lock; returns the alert this raised, if any. A
    /// reorder point of 0 clears the mark.
    pub(crate) fn set(
        &self,
        item: ItemKey,
        reorder_point: u32,
        level: impl FnOnce() -> Option<Level>,
    ) -> Option<Alert> {
        if reorder_point > 0 {
            self.watching.store(true, Ordering::Release);
        }
        let mut marks = self.shard(&item).lock();
        let mark = marks.entry(item).or_insert(Mark {
            reorder_point,
            alerted: false,
        });
        mark.reorder_point = reorder_point;
        let alert = evaluate(item, mark, level());
        if reorder_point == 0 {
            marks.remove(&item);
        }
        alert
    }

    /// Evaluates `item` after a change, reading its level with `level()`
    /// under the mark's lock: the alert raised, if the mark turned on.
    pub(crate) fn evaluate(
        &self,
        item: ItemKey,
        level: impl FnOnce() -> Option<Level>,
    ) -> Option<Alert> {
        let mut marks = self.shard(&item).lock();
        let mark = marks.get_mut(&item)?;
        evaluate(item, mark, level())
    }

    /// Hands one operation's alerts to the observer and the kept list.
    pub(crate) fn deliver(&self, alerts: &mut [Alert]) {
        if alerts.is_empty() {
            return;
        }
        alerts.sort_unstable_by_key(|alert| (alert.sku, alert.store));
        if let Some(observer) = &self.observer {
            observer.on_alerts(alerts);
        }
        if self.keep {
            self.kept.lock().extend_from_slice(alerts);
        }
    }

    /// The kept alerts, oldest first, leaving none.
    pub(crate) fn take(&self) -> Vec<Alert> {
        std::mem::take(&mut *self.kept.lock())
    }

    /// The reorder point of `item` (0 if none).
    pub(crate) fn reorder_point(&self, item: ItemKey) -> u32 {
        self.shard(&item)
            .lock()
            .get(&item)
            .map_or(0, |mark| mark.reorder_point)
    }
}

/// The contract's rule: below (`reorder_point > 0` and available online
/// under it) and not yet marked raises and marks; not below clears.
fn evaluate(item: ItemKey, mark: &mut Mark, level: Option<Level>) -> Option<Alert> {
    let level = level?;
    let below = mark.reorder_point > 0 && level.available_online < mark.reorder_point;
    if !below {
        mark.alerted = false;
        return None;
    }
    if mark.alerted {
        return None;
    }
    mark.alerted = true;
    Some(Alert {
        sku: item.sku,
        store: item.store,
        available_online: level.available_online,
        reorder_point: mark.reorder_point,
    })
}

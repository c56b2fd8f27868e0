//! The engine's low-stock alerts: setting reorder points, evaluating the
//! items an operation changed, and handing out the kept alerts
//! (`src/alerts/` keeps the points, the marks and the delivery).
//!
//! Invariant: every operation that changes an item's cell evaluates that
//! item after the change, on its own thread, before it returns (the items
//! come from its effect log, which notes them while some item has a reorder
//! point); so the item's mark always follows its level.

use super::Inventory;
use crate::alerts::Alert;
use crate::durability::record::Op;
use crate::durability::steps::Seal;
use crate::effect::Effect;
use crate::types::{ItemKey, Level, Sku, StoreId};
use smallvec::SmallVec;

impl Inventory {
    /// Sets the reorder point of `sku` at `store` (creating the item if
    /// new) and answers its level: when `available_online` falls below it,
    /// one low-stock [`Alert`] is raised, by the operation that made it
    /// fall, and no other until it is back at or above the point. A reorder
    /// point of 0 switches alerts off for the item. Setting it re-evaluates
    /// the item: it raises an alert if the item is below the new point and
    /// was not already alerted.
    ///
    /// Alerts go to the builder's
    /// [`alert_observer`](crate::InventoryBuilder::alert_observer), and are
    /// kept for [`take_alerts`](Self::take_alerts) when there is none.
    ///
    /// ```
    /// use omnistock::{Alert, Inventory, Sku, StoreId};
    ///
    /// let inventory = Inventory::new();
    /// let (sku, store) = (Sku(5), StoreId(2));
    /// inventory.restock(sku, store, 12)?;
    /// inventory.set_reorder_point(sku, store, 10);
    /// inventory.sell(sku, store, 3, omnistock::Channel::InStore)?; // 9 < 10: alert
    /// inventory.sell(sku, store, 1, omnistock::Channel::InStore)?; // still below: none
    /// assert_eq!(
    ///     inventory.take_alerts(),
    ///     vec![Alert { sku, store, available_online: 9, reorder_point: 10 }]
    /// );
    /// # Ok::<(), omnistock::Error>(())
    /// ```
    pub fn set_reorder_point(&self, sku: Sku, store: StoreId, qty: u32) -> Level {
        let key = ItemKey::new(sku, store);
        let mut effects = self.effects(Op::SetReorderPoint);
        let mut seal = Seal::new(effects.seqs());
        // Journaled, a new item's creation is a step of its own (an empty
        // claim of the new cell numbers it before the item is published).
        self.on_cell_or_create(key, &mut effects, |cell| {
            if seal.is_on() {
                let _ = cell.set_on_hand_expecting(0, 0, &mut seal);
            }
        });
        self.journal_sealed(&mut effects, key, seal, false);
        effects.push(|| Effect::ReorderPoint {
            item: key,
            reorder_point: qty,
        });
        // The item is evaluated here, not from the log (which only notes
        // items while some reorder point is set).
        effects.take_settlement();
        let seqs = effects.seqs();
        let mut numbered = None;
        let alert = self.alerts.set(key, qty, || {
            // Under the mark's lock: two settings of one item are numbered
            // in the order they are made.
            numbered = seqs.map(|seqs| seqs.take());
            self.level(sku, store).ok()
        });
        if let Some(seq) = numbered {
            effects.journal(|steps| {
                steps.begin(seq, None, None);
                steps.current().reorder_point(key, qty);
            });
        }
        self.alerts
            .deliver(&mut alert.into_iter().collect::<Vec<_>>());
        let _ = self.publish(&mut effects);
        self.level(sku, store)
            .expect("the item exists: it was created above")
    }

    /// The reorder point of `sku` at `store` (0: none).
    pub fn reorder_point(&self, sku: Sku, store: StoreId) -> u32 {
        self.alerts.reorder_point(ItemKey::new(sku, store))
    }

    /// The alerts raised since the last call, oldest first (the alerts of
    /// one operation sorted by item), leaving none. Alerts are kept only
    /// when the builder set no alert observer, or said
    /// [`keep_alerts`](crate::InventoryBuilder::keep_alerts).
    pub fn take_alerts(&self) -> Vec<Alert> {
        self.alerts.take()
    }

    /// Evaluates the items an operation changed and delivers the alerts.
    pub(super) fn raise_alerts(&self, touched: Vec<ItemKey>) {
        if touched.is_empty() {
            return;
        }
        let mut raised: SmallVec<[Alert; 2]> = SmallVec::new();
        for item in touched {
            let level = || self.level(item.sku, item.store).ok();
            if let Some(alert) = self.alerts.evaluate(item, level) {
                raised.push(alert);
            }
        }
        self.alerts.deliver(&mut raised);
    }
}

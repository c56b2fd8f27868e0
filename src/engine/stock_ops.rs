//! Stock operations: restock, cycle counts, safety stock, sales and
//! reading a level. Each is one atomic step on one item's cell word.

use super::{zero_qty, Inventory};
use crate::durability::record::Op;
use crate::durability::steps::Seal;
use crate::effect::{Effect, EffectLog};
use crate::error::Error;
use crate::stock::cell::{self, StockCell};
use crate::types::{Channel, ItemKey, Level, Sku, StoreId};

impl Inventory {
    /// Runs `op` on the item's cell, creating the item if new (recording
    /// that): a new item is published with `op` already done, so nobody
    /// sees it empty first.
    pub(super) fn on_cell_or_create<T>(
        &self,
        key: ItemKey,
        effects: &mut EffectLog<'_>,
        op: impl FnOnce(&StockCell) -> T,
    ) -> T {
        let mut op = Some(op);
        let mut done = None;
        let (index, created) = self.items.find_or_create_with(key, |cell| {
            done = op.take().map(|op| op(cell));
        });
        if created {
            effects.push(|| Effect::ItemCreated { item: key });
        }
        match (done, op) {
            (Some(done), _) => done,
            (None, Some(op)) => op(self.items.cell(index)),
            (None, None) => unreachable!("the operation runs once"),
        }
    }

    pub(super) fn known_cell(&self, sku: Sku, store: StoreId) -> Result<&StockCell, Error> {
        self.items
            .get(ItemKey::new(sku, store))
            .ok_or(Error::UnknownItem { sku, store })
    }

    /// Receives `qty` units (a delivery), creating the item if new, and
    /// answers the item's level after it.
    ///
    /// # Errors
    ///
    /// [`Error::Invalid`] for a `qty` of 0 (no item is created), then
    /// [`Error::Overflow`] when `on_hand` would pass `u32::MAX`. Either way
    /// nothing changes.
    pub fn restock(&self, sku: Sku, store: StoreId, qty: u32) -> Result<Level, Error> {
        if qty == 0 {
            return Err(zero_qty());
        }
        let key = ItemKey::new(sku, store);
        let mut effects = self.effects(Op::Restock);
        let mut seal = Seal::new(effects.seqs());
        let result = self
            .on_cell_or_create(key, &mut effects, |cell| cell.restock(qty, &mut seal))
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
        self.journal_sealed(&mut effects, key, seal, false);
        // A new item cannot overflow, so a failed restock created nothing.
        self.publish_answer(&mut effects, result)
    }

    /// Writes the record of a single-cell step sealed under its claim (if
    /// journaled and the step changed the cell).
    pub(super) fn journal_sealed(
        &self,
        effects: &mut EffectLog<'_>,
        key: ItemKey,
        seal: Seal<'_>,
        safety: bool,
    ) {
        if let Some(sealed) = seal.got {
            effects.journal(|steps| {
                steps.sealed(key, sealed);
                if safety {
                    steps.current().safety(key, sealed.safety);
                }
            });
        }
    }

    /// A cycle count: sets `on_hand` to what was counted (0 allowed),
    /// creating the item if new, and answers the level after it.
    ///
    /// # Errors
    ///
    /// [`Error::BelowReserved`], with the units reserved now, when fewer
    /// units were counted than pending reservations hold; nothing changes.
    pub fn set_on_hand(&self, sku: Sku, store: StoreId, qty: u32) -> Result<Level, Error> {
        let key = ItemKey::new(sku, store);
        let mut effects = self.effects(Op::SetOnHand);
        let mut seal = Seal::new(effects.seqs());
        // A new cell has nothing reserved, so a refused count created nothing.
        let result =
            self.on_cell_or_create(key, &mut effects, |cell| cell.set_on_hand(qty, &mut seal));
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
        self.journal_sealed(&mut effects, key, seal, false);
        self.publish_answer(&mut effects, answer)
    }

    /// Sets the units the online channel may not take (0 allowed), creating
    /// the item if new, and answers the level after it. Never fails (a
    /// journal failure is reported by the next operation that can fail:
    /// the journal's errors are sticky).
    pub fn set_safety_stock(&self, sku: Sku, store: StoreId, qty: u32) -> Level {
        let key = ItemKey::new(sku, store);
        let mut effects = self.effects(Op::SetSafetyStock);
        let mut seal = Seal::new(effects.seqs());
        let (level, delta) = self.on_cell_or_create(key, &mut effects, |cell| {
            cell.set_safety_stock(qty, self.items.safety_changes(), &mut seal)
        });
        if delta != 0 {
            effects.push(|| Effect::SafetyStock { item: key, delta });
        }
        self.journal_sealed(&mut effects, key, seal, true);
        let _ = self.publish(&mut effects);
        level
    }

    /// An immediate sale without a reservation (a POS sale is
    /// `Channel::InStore`): `on_hand -= qty` if the channel has that many
    /// available. Answers the level after the sale.
    ///
    /// # Errors
    ///
    /// In this order: [`Error::Invalid`] for a `qty` of 0,
    /// [`Error::UnknownItem`], then [`Error::Insufficient`] with what the
    /// channel had available. Nothing changes.
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
        let cell = self.known_cell(sku, store)?;
        let mut effects = self.effects(Op::Sell);
        let mut seal = Seal::new(effects.seqs());
        let level = cell
            .sell(qty, channel, self.items.safety_changes(), &mut seal)
            .map_err(|cell::Short { available }| Error::Insufficient {
                sku,
                store,
                requested: qty,
                available,
            })?;
        let key = ItemKey::new(sku, store);
        effects.push(|| Effect::Stock {
            item: key,
            on_hand: -i64::from(qty),
            reserved: 0,
        });
        self.journal_sealed(&mut effects, key, seal, false);
        self.publish_answer(&mut effects, Ok(level))
    }

    /// The item's stock: one consistent reading of its cell.
    ///
    /// # Errors
    ///
    /// [`Error::UnknownItem`] if the item was never created.
    pub fn level(&self, sku: Sku, store: StoreId) -> Result<Level, Error> {
        Ok(self
            .known_cell(sku, store)?
            .level(self.items.safety_changes()))
    }
}

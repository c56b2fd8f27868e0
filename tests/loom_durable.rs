//! loom models of the journal's ordering step on the engine's side: a
//! step's sequence number is taken while it holds the cells it changes
//! (and its reservation shard's lock), so whatever observed its change is
//! numbered after it. Each model races two operations on the units one of
//! them makes available, keeps the records in a [`MemorySink`], and checks
//! every prefix of the numbered records, as recovery would rebuild it: no
//! cell has more reserved than on hand, and every cell's `reserved` is
//! what the pending reservations of that prefix hold. The hazard: a
//! reserve of freshly restocked (or released) units numbered before the
//! restock (or release) would leave a prefix whose cell does not hold the
//! units its reservations hold.
//!
//! Run with `RUSTFLAGS="--cfg omnistock_loom" LOOM_MAX_PREEMPTIONS=2 cargo
//! test --release --test loom_durable` (or `bash .ci/run loom`).
#![cfg(omnistock_loom)]

use loom::sync::Arc;
use loom::thread;
use omnistock::durability::Change;
use omnistock::model::MemorySink;
use omnistock::{Channel, Inventory, ItemKey, Line, ReservationId, Sku, StoreId};
use std::collections::BTreeMap;

const STORE: StoreId = StoreId(1);
const X: Sku = Sku(10);
const Y: Sku = Sku(20);

fn journaled() -> (Arc<Inventory>, std::sync::Arc<MemorySink>) {
    let sink = std::sync::Arc::new(MemorySink::new());
    let inventory = Inventory::builder().record_sink(sink.clone()).build();
    (Arc::new(inventory), sink)
}

/// Folds every prefix of the records and checks what recovery would find.
fn every_prefix_is_reachable(sink: &MemorySink) {
    let records = sink.decoded();
    for (n, record) in records.iter().enumerate() {
        assert_eq!(record.seq, n as u64 + 1, "dense numbers");
    }
    for cut in 0..=records.len() {
        let mut cells: BTreeMap<ItemKey, (u32, u32)> = BTreeMap::new();
        let mut pending: BTreeMap<ReservationId, Vec<Line>> = BTreeMap::new();
        for record in &records[..cut] {
            for change in &record.changes {
                match change {
                    Change::Item {
                        item,
                        on_hand,
                        reserved,
                    } => {
                        cells.insert(*item, (*on_hand, *reserved));
                    }
                    Change::Reserved { id, lines, .. } => {
                        pending.insert(*id, lines.clone());
                    }
                    Change::Finished { id, .. } => {
                        pending.remove(id);
                    }
                    _ => {}
                }
            }
        }
        for (item, (on_hand, reserved)) in &cells {
            let held: u32 = pending
                .values()
                .flatten()
                .filter(|line| line.item() == *item)
                .map(|line| line.qty)
                .sum();
            assert!(reserved <= on_hand, "prefix {cut}: {item} oversold");
            assert_eq!(
                *reserved, held,
                "prefix {cut}: {item} holds other units than its reservations"
            );
        }
    }
}

/// A restock of one unit races an online reserve of it: if the reserve
/// gets it, its record is numbered after the restock's.
#[test]
fn a_reserve_of_restocked_units_is_numbered_after_the_restock() {
    loom::model(|| {
        let (inventory, sink) = journaled();
        inventory.set_on_hand(X, STORE, 0).unwrap();
        let restocker = {
            let inventory = inventory.clone();
            thread::spawn(move || inventory.restock(X, STORE, 1).unwrap())
        };
        let shopper = {
            let inventory = inventory.clone();
            thread::spawn(move || {
                let _ = inventory.reserve(
                    ReservationId(1),
                    Channel::InStore,
                    &[Line::new(X, STORE, 1)],
                );
            })
        };
        restocker.join().unwrap();
        shopper.join().unwrap();
        every_prefix_is_reachable(&sink);
    });
}

/// A release of a two-line cart races a one-line reserve of the units it
/// gives back.
#[test]
fn a_reserve_of_released_units_is_numbered_after_the_release() {
    loom::model(|| {
        let (inventory, sink) = journaled();
        inventory.set_on_hand(X, STORE, 1).unwrap();
        inventory.set_on_hand(Y, STORE, 1).unwrap();
        let cart = [Line::new(X, STORE, 1), Line::new(Y, STORE, 1)];
        inventory
            .reserve(ReservationId(1), Channel::InStore, &cart)
            .unwrap();
        let releaser = {
            let inventory = inventory.clone();
            thread::spawn(move || inventory.release(ReservationId(1)).unwrap())
        };
        let shopper = {
            let inventory = inventory.clone();
            thread::spawn(move || {
                let _ =
                    inventory.reserve(ReservationId(2), Channel::Online, &[Line::new(Y, STORE, 1)]);
            })
        };
        releaser.join().unwrap();
        shopper.join().unwrap();
        every_prefix_is_reachable(&sink);
    });
}

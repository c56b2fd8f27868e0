//! A store's tills keep selling while the network is down, from a bounded
//! in-store escrow reservation taken while online, and reconcile with a
//! partial commit when back; the online channel is never oversold
//! meanwhile, because the escrowed units are reserved in the engine.
//!
//! Run with `cargo run --release --example offline_pos`. It checks every
//! outcome as it goes and exits non-zero if one is not what the contract
//! says.

use omnistock::{
    Channel, Error, Inventory, Line, ManualClock, ReservationId, ReservationState, Sku, StoreId,
};
use std::sync::Arc;

const HOUR: u64 = 3_600_000;

/// What a till keeps while offline: the units it may sell from its escrow,
/// and what it sold. It refuses a sale past the escrow, as the engine
/// would have.
struct OfflineTill {
    escrow: u32,
    sold: u32,
}

impl OfflineTill {
    fn sell(&mut self, qty: u32) -> bool {
        if self.sold + qty > self.escrow {
            return false;
        }
        self.sold += qty;
        true
    }
}

fn main() -> Result<(), Error> {
    let clock = Arc::new(ManualClock::new());
    let inventory = Inventory::builder().clock(clock.clone()).build();
    let (mugs, store) = (Sku(77), StoreId(12));
    inventory.restock(mugs, store, 20)?;

    // Online, before opening: the store escrows 5 mugs for its tills, held
    // in store for a whole trading day. The web can take the other 15.
    let escrow = ReservationId(12_0001);
    inventory.reserve_with_ttl(
        escrow,
        Channel::InStore,
        &[Line::new(mugs, store, 5)],
        12 * HOUR,
    )?;
    assert_eq!(inventory.level(mugs, store)?.available_online, 15);

    // The network goes down. The till sells from its escrow alone.
    let mut till = OfflineTill { escrow: 5, sold: 0 };
    assert!(till.sell(2));
    assert!(till.sell(1));
    assert!(!till.sell(3), "past the escrow: refused offline too");

    // Meanwhile the web sells through the engine: it can never take the
    // escrowed units, so the store's offline sales cannot be oversold.
    let web = inventory.reserve(
        ReservationId(1),
        Channel::Online,
        &[Line::new(mugs, store, 16)],
    );
    assert!(matches!(
        web,
        Err(Error::Insufficient { available: 15, .. })
    ));
    inventory.reserve(
        ReservationId(2),
        Channel::Online,
        &[Line::new(mugs, store, 14)],
    )?;
    inventory.commit(ReservationId(2))?;
    clock.advance(3 * HOUR);

    // Back online: the till reports 3 sold. One step commits them and
    // returns the 2 escrowed mugs it did not sell.
    let reconciled = inventory.commit_lines(escrow, &[Line::new(mugs, store, till.sold)])?;
    assert_eq!(reconciled.ack.state, ReservationState::Committed);
    assert_eq!(reconciled.lines, [Line::new(mugs, store, 3)]);
    // A retry of the reconciliation (the till lost the answer) changes
    // nothing and answers what was committed.
    let retried = inventory.commit_lines(escrow, &[Line::new(mugs, store, till.sold)])?;
    assert!(retried.ack.replayed && retried.lines == reconciled.lines);

    let level = inventory.level(mugs, store)?;
    println!("after reconciliation: {level:?}");
    assert_eq!((level.on_hand, level.reserved), (20 - 14 - 3, 0));

    // A new escrow for the rest of the day, bounded by what is left.
    let next = inventory.reserve_with_ttl(
        ReservationId(12_0002),
        Channel::InStore,
        &[Line::new(mugs, store, 3)],
        9 * HOUR,
    )?;
    assert_eq!(next.state, ReservationState::Pending);
    let report = inventory.check();
    assert!(report.consistent, "{report:?}");
    for (item, level) in inventory.items() {
        assert!(level.reserved <= level.on_hand, "{item} oversold");
    }
    println!(
        "escrow renewed; online may take {}",
        inventory.level(mugs, store)?.available_online
    );
    Ok(())
}

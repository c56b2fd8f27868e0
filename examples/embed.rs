//! Embedding omnistock in an order service (the README shows the same code).
//! Run with `cargo run --example embed`.

use omnistock::{Channel, Error, Inventory, Line, ReservationId, Sku, StoreId};
use std::{sync::Arc, thread, time::Duration};

fn main() -> Result<(), Error> {
    let inventory = Arc::new(Inventory::new()); // system clock, 15-minute holds
    let reaper = Arc::clone(&inventory); // returns the units of abandoned checkouts
    thread::spawn(move || loop {
        reaper.expire();
        thread::sleep(Duration::from_secs(1));
    });

    let (sku, store) = (Sku(42), StoreId(7));
    inventory.restock(sku, store, 10)?;
    inventory.set_safety_stock(sku, store, 2); // the web may not take the last 2

    // Checkout: hold 3 units for order 1001. The id makes a retry safe.
    let order = ReservationId(1001);
    let cart = [Line::new(sku, store, 3)];
    inventory.reserve(order, Channel::Online, &cart)?;
    assert!(inventory.reserve(order, Channel::Online, &cart)?.replayed);
    inventory.commit(order)?; // paid: the 3 units leave the shelf

    // Another order wants 6: only 5 are left for the web.
    let big = [Line::new(sku, store, 6)];
    match inventory.reserve(ReservationId(1002), Channel::Online, &big) {
        Err(Error::Insufficient { available, .. }) => println!("only {available} left online"),
        other => println!("unexpected: {other:?}"),
    }
    let level = inventory.level(sku, store)?;
    let (on_hand, online) = (level.on_hand, level.available_online);
    println!("on hand {on_hand}, available online {online}"); // 7 and 5
    Ok(())
}

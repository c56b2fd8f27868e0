//! Buy online, pick up in store: sourcing among the stores near the
//! customer, a hold extended while the customer is on the way, a partial
//! pickup, and the release of a no-show's hold.
//!
//! Run with `cargo run --release --example bopis`. It checks every outcome
//! as it goes and exits non-zero if one is not what the contract says.

use omnistock::{
    Channel, Error, Inventory, Line, ManualClock, ReservationId, ReservationState, Sku,
    SourceRequest, StoreId,
};
use std::sync::Arc;

const MINUTE: u64 = 60_000;

fn main() -> Result<(), Error> {
    let clock = Arc::new(ManualClock::new());
    let inventory = Inventory::builder().clock(clock.clone()).build();
    let boots = Sku(501);
    let (downtown, mall, airport) = (StoreId(1), StoreId(2), StoreId(3));
    inventory.restock(boots, downtown, 1)?;
    inventory.restock(boots, mall, 3)?;
    inventory.restock(boots, airport, 10)?;
    inventory.set_safety_stock(boots, airport, 8); // kept for walk-ins
    println!(
        "boots online across the network: {}",
        inventory.network_available(boots, Channel::Online)
    );
    assert_eq!(inventory.network_available(boots, Channel::Online), 6);

    // The customer's nearest stores, nearest first (the order service ranks
    // them by distance). Pickup needs both pairs at one store.
    let near_first = [downtown, mall, airport];
    let order = ReservationId(9001);
    let pickup = SourceRequest::new(boots, 2, &near_first);
    let held = inventory.reserve_any(order, Channel::Online, &pickup, 30 * MINUTE)?;
    println!("order 9001 held at {:?}", held.lines);
    assert_eq!(
        held.lines,
        [Line::new(boots, mall, 2)],
        "downtown has only one"
    );

    // A retry of the same checkout (a double click) holds nothing more.
    let again = inventory.reserve_any(order, Channel::Online, &pickup, 30 * MINUTE)?;
    assert!(again.ack.replayed && again.lines == held.lines);

    // Stuck in traffic: the customer asks for an hour more.
    clock.advance(25 * MINUTE);
    let extended = inventory.extend(order, 60 * MINUTE)?;
    assert_eq!(extended.expires_at_ms, Some(85 * MINUTE));

    // At the counter one pair turns out damaged: the customer takes one,
    // the other goes back on sale, in one step.
    clock.advance(40 * MINUTE);
    let picked = inventory.commit_lines(order, &[Line::new(boots, mall, 1)])?;
    println!("order 9001 picked up: {:?}", picked.lines);
    assert_eq!(picked.ack.state, ReservationState::Committed);
    let at_mall = inventory.level(boots, mall)?;
    assert_eq!((at_mall.on_hand, at_mall.reserved), (2, 0));

    // A second order splits over the stores (ship from store, no pickup).
    let parcels = SourceRequest::new(boots, 3, &near_first).split();
    let shipped =
        inventory.reserve_any(ReservationId(9002), Channel::Online, &parcels, 30 * MINUTE)?;
    println!("order 9002 ships from {:?}", shipped.lines);
    assert_eq!(
        shipped.lines,
        [Line::new(boots, downtown, 1), Line::new(boots, mall, 2)]
    );

    // A third customer never shows up: the hold runs out and the reaper
    // puts the units back.
    let no_show = ReservationId(9003);
    inventory.reserve_any(
        no_show,
        Channel::Online,
        &SourceRequest::new(boots, 1, &near_first),
        30 * MINUTE,
    )?;
    assert!(inventory.check().consistent);
    clock.advance(30 * MINUTE);
    assert_eq!(inventory.expire(), 2, "the no-show and the unpaid shipment");
    assert_eq!(inventory.get(no_show)?.state, ReservationState::Expired);
    assert_eq!(inventory.network_available(boots, Channel::Online), 5);

    let report = inventory.check();
    assert!(report.consistent, "{report:?}");
    for (item, level) in inventory.items() {
        assert!(level.reserved <= level.on_hand, "{item} oversold");
        println!("{item}: {level:?}");
    }
    Ok(())
}

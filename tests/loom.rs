//! loom models of the engine's concurrent steps. Each model builds a small
//! inventory, races two or three threads through the public API, and checks
//! every interleaving loom can produce (bounded by `LOOM_MAX_PREEMPTIONS`):
//! the never-oversell invariant while the threads run, and conservation of
//! units and exactly-once reservation transitions after they join.
//!
//! Run with `RUSTFLAGS="--cfg omnistock_loom" LOOM_MAX_PREEMPTIONS=2 cargo test
//! --release --test loom` (or `bash .ci/run loom`). Without the cfg this file
//! compiles to nothing.
#![cfg(omnistock_loom)]

use loom::sync::Arc;
use loom::thread;
use omnistock::{
    CampaignId, Channel, CustomerId, Error, Inventory, Line, ManualClock, ReservationId,
    ReservationState, Sku, StoreId,
};

const STORE: StoreId = StoreId(1);
const X: Sku = Sku(10);
const Y: Sku = Sku(20);

/// An inventory whose id filters count from the start (given
/// `expected_reservations`), so that refusals without the lock race
/// everything else; `inventory_with_filters_off` leaves them off.
fn inventory_with(stock: &[(Sku, u32)]) -> (Arc<Inventory>, std::sync::Arc<ManualClock>) {
    let clock = std::sync::Arc::new(ManualClock::new());
    let inventory = Inventory::builder()
        .clock(clock.clone())
        .expected_reservations(1)
        .build();
    stocked(inventory, stock, clock)
}

/// An inventory built without `expected_reservations`: each shard's id
/// filter is off until refusals switch it on.
fn inventory_with_filters_off(
    stock: &[(Sku, u32)],
) -> (Arc<Inventory>, std::sync::Arc<ManualClock>) {
    let clock = std::sync::Arc::new(ManualClock::new());
    let inventory = Inventory::builder().clock(clock.clone()).build();
    stocked(inventory, stock, clock)
}

fn stocked(
    inventory: Inventory,
    stock: &[(Sku, u32)],
    clock: std::sync::Arc<ManualClock>,
) -> (Arc<Inventory>, std::sync::Arc<ManualClock>) {
    for &(sku, qty) in stock {
        inventory.set_on_hand(sku, STORE, qty).unwrap();
    }
    (Arc::new(inventory), clock)
}

fn line(sku: Sku, qty: u32) -> Line {
    Line::new(sku, STORE, qty)
}

fn assert_never_oversold(inventory: &Inventory) {
    for (item, level) in inventory.items() {
        assert!(
            level.reserved <= level.on_hand,
            "{item} oversold: {level:?}"
        );
    }
}

/// Two shoppers want the last unit: exactly one gets it, the other is told
/// how much was available (0), and the cell ends with one unit reserved.
#[test]
fn two_reservers_race_for_the_last_unit() {
    loom::model(|| {
        let (inventory, _) = inventory_with(&[(X, 1)]);
        let shoppers: Vec<_> = (1..=2u64)
            .map(|id| {
                let inventory = inventory.clone();
                thread::spawn(move || {
                    let answer =
                        inventory.reserve(ReservationId(id), Channel::Online, &[line(X, 1)]);
                    assert_never_oversold(&inventory);
                    answer
                })
            })
            .collect();
        let answers: Vec<_> = shoppers.into_iter().map(|t| t.join().unwrap()).collect();
        assert_eq!(answers.iter().filter(|a| a.is_ok()).count(), 1);
        for answer in answers.iter().filter_map(|a| a.as_ref().err()) {
            assert!(
                matches!(answer, Error::Insufficient { available: 0, .. }),
                "{answer:?}"
            );
        }
        let level = inventory.level(X, STORE).unwrap();
        assert_eq!((level.on_hand, level.reserved), (1, 1));
    });
}

/// A web reservation and a POS sale race for one unit on one cell: exactly
/// one wins, and the unit is either held or gone, never both.
#[test]
fn reserve_races_sell_on_one_cell() {
    loom::model(|| {
        let (inventory, _) = inventory_with(&[(X, 1)]);
        let web = {
            let inventory = inventory.clone();
            thread::spawn(move || {
                inventory.reserve(ReservationId(1), Channel::Online, &[line(X, 1)])
            })
        };
        let pos = {
            let inventory = inventory.clone();
            thread::spawn(move || inventory.sell(X, STORE, 1, Channel::InStore))
        };
        assert_never_oversold(&inventory);
        let (reserved, sold) = (web.join().unwrap(), pos.join().unwrap());
        assert!(reserved.is_ok() != sold.is_ok(), "{reserved:?} {sold:?}");
        let level = inventory.level(X, STORE).unwrap();
        if sold.is_ok() {
            assert_eq!((level.on_hand, level.reserved), (0, 0));
        } else {
            assert_eq!((level.on_hand, level.reserved), (1, 1));
        }
    });
}

/// A two-line reservation [X, Y] races a one-line reservation [Y] when only
/// one unit of each exists. The cart holds both lines at one instant or
/// neither: exactly one of the two gets Y, and a reading of X after the
/// single line's answer shows X held exactly when the cart succeeded (no
/// reader sees X held by a cart that then fails).
#[test]
fn two_line_reservation_rolls_back_while_another_reserves() {
    loom::model(|| {
        let (inventory, _) = inventory_with(&[(X, 1), (Y, 1)]);
        let pair = {
            let inventory = inventory.clone();
            thread::spawn(move || {
                inventory.reserve(ReservationId(1), Channel::Online, &[line(X, 1), line(Y, 1)])
            })
        };
        let single = {
            let inventory = inventory.clone();
            thread::spawn(move || {
                let answer = inventory.reserve(ReservationId(2), Channel::Online, &[line(Y, 1)]);
                assert_never_oversold(&inventory);
                (answer, inventory.level(X, STORE).unwrap())
            })
        };
        let (pair, (single, x_after_single)) = (pair.join().unwrap(), single.join().unwrap());
        assert!(pair.is_ok() != single.is_ok(), "{pair:?} {single:?}");
        if pair.is_err() {
            assert_eq!(x_after_single.reserved, 0, "X seen held by a refused cart");
        }
        if single.is_err() {
            // Refused for the cart's unit: the cart was done before.
            assert_eq!(x_after_single.reserved, 1);
        }
        let x = inventory.level(X, STORE).unwrap();
        let y = inventory.level(Y, STORE).unwrap();
        assert_eq!(y.reserved, 1);
        assert_eq!(x.reserved, u32::from(pair.is_ok()), "X must be given back");
        for refused in [pair.err(), single.err()].into_iter().flatten() {
            assert!(
                matches!(
                    refused,
                    Error::Insufficient {
                        sku: Y,
                        available: 0,
                        ..
                    }
                ),
                "{refused:?}"
            );
        }
    });
}

/// Two carts name the same two items in opposite orders, one unit of each
/// in stock. Each fits alone, so one of them succeeds; the other is refused
/// only for units the first holds (available 0), never both refused.
#[test]
fn two_carts_in_opposite_orders_never_both_fail() {
    loom::model(|| {
        let (inventory, _) = inventory_with(&[(X, 1), (Y, 1)]);
        let forward = {
            let inventory = inventory.clone();
            thread::spawn(move || {
                inventory.reserve(ReservationId(1), Channel::Online, &[line(X, 1), line(Y, 1)])
            })
        };
        let backward =
            inventory.reserve(ReservationId(2), Channel::Online, &[line(Y, 1), line(X, 1)]);
        let forward = forward.join().unwrap();
        assert!(
            forward.is_ok() != backward.is_ok(),
            "{forward:?} {backward:?}"
        );
        let refused = forward.err().or(backward.err()).unwrap();
        assert!(
            matches!(refused, Error::Insufficient { available: 0, .. }),
            "{refused:?}"
        );
        let (x, y) = (
            inventory.level(X, STORE).unwrap(),
            inventory.level(Y, STORE).unwrap(),
        );
        assert_eq!((x.reserved, y.reserved), (1, 1));
    });
}

/// What a rival on X (a single-line reserve or a sale) sees of a cart
/// [X, Y] that races it, one unit of each in stock: the rival wins X
/// exactly when the cart fails, and a reading of Y after the rival's answer
/// shows the cart's unit exactly when the cart came first.
fn cart_races_a_rival_on_its_first_item(rival: fn(&Inventory) -> Result<omnistock::Level, Error>) {
    let (inventory, _) = inventory_with(&[(X, 1), (Y, 1)]);
    let cart = {
        let inventory = inventory.clone();
        thread::spawn(move || {
            inventory.reserve(ReservationId(1), Channel::Online, &[line(X, 1), line(Y, 1)])
        })
    };
    let won = rival(&inventory);
    let y = inventory.level(Y, STORE).unwrap();
    let cart = cart.join().unwrap();
    assert!(won.is_ok() != cart.is_ok(), "{won:?} {cart:?}");
    match won {
        Ok(_) => {
            assert_eq!(y.reserved, 0, "Y seen held by a cart that failed");
            assert!(
                matches!(
                    cart,
                    Err(Error::Insufficient {
                        sku: X,
                        available: 0,
                        ..
                    })
                ),
                "{cart:?}"
            );
        }
        Err(refused) => {
            assert!(
                matches!(
                    refused,
                    Error::Insufficient {
                        sku: X,
                        available: 0,
                        ..
                    }
                ),
                "{refused:?}"
            );
            assert_eq!(y.reserved, 1, "refused for X, so the cart came first");
        }
    }
    assert_never_oversold(&inventory);
}

#[test]
fn cart_races_a_single_line_reserve_of_its_item() {
    loom::model(|| {
        cart_races_a_rival_on_its_first_item(|inventory| {
            inventory
                .reserve(ReservationId(2), Channel::Online, &[line(X, 1)])
                .map(|_| inventory.level(X, STORE).unwrap())
        })
    });
}

#[test]
fn cart_races_a_sale_of_its_item() {
    loom::model(|| {
        cart_races_a_rival_on_its_first_item(|inventory| {
            inventory.sell(X, STORE, 1, Channel::InStore)
        })
    });
}

/// A reader reads X, then Y, while a cart [X, Y] is held: if it sees X held
/// it sees Y held too (the cart is one instant, before both readings).
#[test]
fn levels_never_see_a_cart_half_held() {
    loom::model(|| {
        let (inventory, _) = inventory_with(&[(X, 1), (Y, 1)]);
        let cart = {
            let inventory = inventory.clone();
            thread::spawn(move || {
                inventory.reserve(ReservationId(1), Channel::Online, &[line(X, 1), line(Y, 1)])
            })
        };
        let x = inventory.level(X, STORE).unwrap();
        let y = inventory.level(Y, STORE).unwrap();
        cart.join().unwrap().unwrap();
        assert!(x.reserved <= y.reserved, "X held before Y: {x:?} {y:?}");
    });
}

/// A two-line reservation [X, Y] is committed while a reader reads X, then
/// Y: if it sees X's unit gone, it sees Y's gone too (the commit takes both
/// lines at one instant).
#[test]
fn levels_never_see_a_commit_half_done() {
    loom::model(|| {
        let (inventory, _) = inventory_with(&[(X, 1), (Y, 1)]);
        let id = ReservationId(1);
        inventory
            .reserve(id, Channel::Online, &[line(X, 1), line(Y, 1)])
            .unwrap();
        let commit = {
            let inventory = inventory.clone();
            thread::spawn(move || inventory.commit(id))
        };
        let x = inventory.level(X, STORE).unwrap();
        let y = inventory.level(Y, STORE).unwrap();
        commit.join().unwrap().unwrap();
        assert!(x.on_hand >= y.on_hand, "X committed before Y: {x:?} {y:?}");
    });
}

/// A cart [X, Y] that fails on Y (none in stock) races a reader of X: the
/// reader never sees X held, and the cart is refused for Y.
#[test]
fn a_failing_cart_is_never_seen_held() {
    loom::model(|| {
        let (inventory, _) = inventory_with(&[(X, 1), (Y, 0)]);
        let cart = {
            let inventory = inventory.clone();
            thread::spawn(move || {
                inventory.reserve(ReservationId(1), Channel::Online, &[line(X, 1), line(Y, 1)])
            })
        };
        let x = inventory.level(X, STORE).unwrap();
        assert_eq!(x.reserved, 0, "X seen held by a cart that failed");
        let cart = cart.join().unwrap();
        assert!(
            matches!(
                cart,
                Err(Error::Insufficient {
                    sku: Y,
                    available: 0,
                    ..
                })
            ),
            "{cart:?}"
        );
    });
}

/// Commit, release and the reaper race on one pending reservation: exactly
/// one of them moves it, the others see the state it reached, and the units
/// are committed or returned exactly once.
#[test]
fn commit_release_and_expiry_race_on_one_reservation() {
    loom::model(|| {
        let (inventory, clock) = inventory_with(&[(X, 2)]);
        let id = ReservationId(7);
        inventory
            .reserve_with_ttl(id, Channel::Online, &[line(X, 2)], 10)
            .unwrap();
        let commit = {
            let inventory = inventory.clone();
            thread::spawn(move || inventory.commit(id))
        };
        let release = {
            let inventory = inventory.clone();
            thread::spawn(move || inventory.release(id))
        };
        let reaper = {
            let inventory = inventory.clone();
            thread::spawn(move || {
                clock.set(10);
                inventory.expire()
            })
        };
        let (commit, release, reaped) = (
            commit.join().unwrap(),
            release.join().unwrap(),
            reaper.join().unwrap(),
        );
        let state = inventory.get(id).unwrap().state;
        let level = inventory.level(X, STORE).unwrap();
        assert_eq!(level.reserved, 0);
        let winners = [
            commit.as_ref().is_ok_and(|a| !a.replayed),
            release
                .as_ref()
                .is_ok_and(|a| !a.replayed && a.state == ReservationState::Released),
            reaped == 1
                || release
                    .as_ref()
                    .is_ok_and(|a| !a.replayed && a.state == ReservationState::Expired),
        ];
        match state {
            ReservationState::Committed => {
                assert_eq!(level.on_hand, 0);
                assert_eq!(release, Err(Error::AlreadyCommitted { id }));
                assert_eq!(reaped, 0);
            }
            ReservationState::Released => {
                assert_eq!(level.on_hand, 2);
                assert_eq!(commit, Err(Error::AlreadyReleased { id }));
                assert_eq!(reaped, 0);
            }
            ReservationState::Expired => {
                assert_eq!(level.on_hand, 2);
                assert_eq!(commit, Err(Error::Expired { id }));
                assert!(release.is_ok());
            }
            ReservationState::Pending => panic!("nothing finished the reservation"),
        }
        // Lazy expiry by commit is a win too; count it when commit saw expiry first.
        let lazy_commit_expiry = state == ReservationState::Expired
            && reaped == 0
            && release.as_ref().is_ok_and(|a| a.replayed);
        let wins = winners.iter().filter(|w| **w).count() + usize::from(lazy_commit_expiry);
        assert_eq!(wins, 1, "{commit:?} {release:?} {reaped}");
    });
}

/// The same id reserved by two threads at once (a client retrying while its
/// first request is still in flight): the units are held once, one answer is
/// fresh and the other a replay.
#[test]
fn same_id_reserved_by_two_threads_at_once() {
    loom::model(|| {
        let (inventory, _) = inventory_with(&[(X, 2)]);
        let id = ReservationId(9);
        let tries: Vec<_> = (0..2)
            .map(|_| {
                let inventory = inventory.clone();
                thread::spawn(move || inventory.reserve(id, Channel::Online, &[line(X, 1)]))
            })
            .collect();
        let answers: Vec<_> = tries
            .into_iter()
            .map(|t| t.join().unwrap().expect("both are the same request"))
            .collect();
        assert_eq!(answers.iter().filter(|a| a.replayed).count(), 1);
        assert_eq!(inventory.level(X, STORE).unwrap().reserved, 1);
    });
}

/// The same id used for two different carts at once: one holds its units,
/// the other is an id conflict that holds nothing.
#[test]
fn same_id_with_different_lines_conflicts_once() {
    loom::model(|| {
        let (inventory, _) = inventory_with(&[(X, 2), (Y, 2)]);
        let id = ReservationId(9);
        let a = {
            let inventory = inventory.clone();
            thread::spawn(move || inventory.reserve(id, Channel::Online, &[line(X, 1)]))
        };
        let b = {
            let inventory = inventory.clone();
            thread::spawn(move || inventory.reserve(id, Channel::Online, &[line(Y, 1)]))
        };
        let (a, b) = (a.join().unwrap(), b.join().unwrap());
        assert!(a.is_ok() != b.is_ok());
        assert!(a == Err(Error::IdConflict { id }) || b == Err(Error::IdConflict { id }));
        let held = inventory.level(X, STORE).unwrap().reserved
            + inventory.level(Y, STORE).unwrap().reserved;
        assert_eq!(held, 1);
    });
}

/// A reservation races a cycle count that would go below it: either the
/// count lands first and the reservation sees the new stock, or the
/// reservation lands first and the count is refused as below_reserved.
#[test]
fn reserve_races_a_cycle_count() {
    loom::model(|| {
        let (inventory, _) = inventory_with(&[(X, 2)]);
        let reserve = {
            let inventory = inventory.clone();
            thread::spawn(move || {
                inventory.reserve(ReservationId(1), Channel::InStore, &[line(X, 2)])
            })
        };
        let count = {
            let inventory = inventory.clone();
            thread::spawn(move || inventory.set_on_hand(X, STORE, 1))
        };
        let (reserve, count) = (reserve.join().unwrap(), count.join().unwrap());
        let level = inventory.level(X, STORE).unwrap();
        match (reserve, count) {
            (Ok(_), Err(Error::BelowReserved { reserved: 2, .. })) => {
                assert_eq!((level.on_hand, level.reserved), (2, 2))
            }
            (Err(Error::Insufficient { available: 1, .. }), Ok(_)) => {
                assert_eq!((level.on_hand, level.reserved), (1, 0))
            }
            other => panic!("not a serial outcome: {other:?}"),
        }
    });
}

/// Extend races the reaper at the deadline: either the extension lands
/// before time moves (the reservation survives with the new deadline) or the
/// reservation expires and extend reports it; never an extended reservation
/// whose units went back.
#[test]
fn extend_races_expiry() {
    loom::model(|| {
        let (inventory, clock) = inventory_with(&[(X, 1)]);
        let id = ReservationId(3);
        inventory
            .reserve_with_ttl(id, Channel::Online, &[line(X, 1)], 10)
            .unwrap();
        let extend = {
            let inventory = inventory.clone();
            thread::spawn(move || inventory.extend(id, 100))
        };
        let reaper = {
            let inventory = inventory.clone();
            thread::spawn(move || {
                clock.set(10);
                inventory.expire()
            })
        };
        let (extend, reaped) = (extend.join().unwrap(), reaper.join().unwrap());
        let info = inventory.get(id).unwrap();
        let level = inventory.level(X, STORE).unwrap();
        match extend {
            Ok(ack) => {
                assert_eq!(reaped, 0);
                assert_eq!(info.state, ReservationState::Pending);
                assert_eq!(Some(info.expires_at_ms), ack.expires_at_ms);
                assert_eq!(level.reserved, 1);
            }
            Err(Error::Expired { .. }) => {
                assert_eq!(info.state, ReservationState::Expired);
                assert_eq!(level.reserved, 0);
            }
            Err(other) => panic!("unexpected {other:?}"),
        }
    });
}

/// Two restocks create the same new item at once while a third thread looks
/// it up: one cell is created, both deliveries land in it, and the reader
/// sees the item either absent or with a whole delivery, never a torn key.
#[test]
fn concurrent_creation_of_one_item() {
    loom::model(|| {
        let inventory = Arc::new(Inventory::builder().expected_items(1).build());
        let deliveries: Vec<_> = [1u32, 2]
            .into_iter()
            .map(|qty| {
                let inventory = inventory.clone();
                thread::spawn(move || inventory.restock(X, STORE, qty).unwrap())
            })
            .collect();
        let seen = inventory.level(X, STORE);
        for delivery in deliveries {
            delivery.join().unwrap();
        }
        match seen {
            Err(Error::UnknownItem {
                sku: X,
                store: STORE,
            }) => {}
            Ok(level) => assert!([0, 1, 2, 3].contains(&level.on_hand), "{level:?}"),
            Err(other) => panic!("unexpected {other:?}"),
        }
        assert_eq!(inventory.item_count(), 1);
        assert_eq!(inventory.level(X, STORE).unwrap().on_hand, 3);
    });
}

/// As `creation_past_the_index_races_a_lookup`, with the reader spawned and
/// the creator the model's own thread, so that loom tries the lookup between
/// the creator's steps (see the note on the next model): the overflow flag,
/// the overflow map and the arena entry.
#[test]
fn creation_past_the_index_races_a_spawned_lookup() {
    // A lookup of a missing item in the full table reads every entry up to
    // a vacant one, each read a branch point for loom: more than its
    // default cap of 1,000 per execution where the hash puts the items
    // in one long cluster.
    let mut model = loom::model::Builder::new();
    model.max_branches = 10_000;
    model.check(|| {
        let inventory = Arc::new(Inventory::builder().expected_items(1).build());
        // 16 items fill the table (the most it takes for 1 expected item).
        for sku in 100..116 {
            inventory.restock(Sku(sku), STORE, 1).unwrap();
        }
        let reader = {
            let inventory = inventory.clone();
            thread::spawn(move || {
                match inventory.level(Y, STORE) {
                    Err(Error::UnknownItem { .. }) => {}
                    Ok(level) => assert!(level.on_hand == 0 || level.on_hand == 5, "{level:?}"),
                    Err(other) => panic!("unexpected {other:?}"),
                }
                assert_eq!(inventory.level(Sku(115), STORE).unwrap().on_hand, 1);
            })
        };
        inventory.restock(Y, STORE, 5).unwrap();
        reader.join().unwrap();
        assert_eq!(inventory.level(Y, STORE).unwrap().on_hand, 5);
        assert_eq!(inventory.items().last().unwrap().0.sku, Y);
    });
}

/// A lookup that meets an entry while another item is being created in it
/// sees that entry vacant or with the new item's whole key, never a torn
/// one: the store number that marks the entry occupied is published after
/// the sku and the store's id. The keys are chosen so that all four start
/// probing at the same entry of the smallest table (checked by the unit test
/// `loom_collision_keys_share_a_home` in `src/stock/item_table.rs`), and the missing
/// ones share the zero sku or store id with an unwritten entry: a reader
/// that saw the entry occupied but not its key would take the new item for
/// them.
///
/// The reader is the spawned thread and the creator the model's own: loom
/// explores the orders of conflicting accesses from the last access to each
/// atomic, and the creator's own probe of the entry (under the creation
/// lock) would hide a reader that ran first; a reader that runs after the
/// creator's writes makes loom try it between them.
#[test]
fn lookups_racing_creation_in_their_entry_see_no_torn_key() {
    loom::model(|| {
        let inventory = Arc::new(Inventory::builder().expected_items(1).build());
        let created = (Sku(571), StoreId(3));
        let reader = {
            let inventory = inventory.clone();
            thread::spawn(move || {
                for (sku, store) in [
                    (Sku(0), StoreId(3)),
                    (Sku(571), StoreId(0)),
                    (Sku(0), StoreId(0)),
                ] {
                    assert_eq!(
                        inventory.level(sku, store),
                        Err(Error::UnknownItem { sku, store })
                    );
                }
                match inventory.level(created.0, created.1) {
                    Err(Error::UnknownItem { .. }) => {}
                    Ok(level) => assert!(level.on_hand == 0 || level.on_hand == 5, "{level:?}"),
                    Err(other) => panic!("unexpected {other:?}"),
                }
            })
        };
        inventory.restock(created.0, created.1, 5).unwrap();
        reader.join().unwrap();
        assert_eq!(inventory.level(created.0, created.1).unwrap().on_hand, 5);
        assert_eq!(inventory.items().len(), 1);
    });
}

/// The same id reserved twice at once for the last unit. The refusal fast
/// path (no lock) reads the cell; if it sees the other request's hold it
/// must also see that id counted in, so neither answer is `Insufficient`:
/// one is fresh, the other a replay.
#[test]
fn same_id_racing_for_the_last_unit_is_never_refused() {
    loom::model(|| race_one_id_for_the_last_unit(&[(X, 1)], [line(X, 1)]));
}

/// Two threads reserve `cart` under one id at once; the last unit of some
/// line is wanted by both. Neither answer may be a refusal: one is fresh,
/// the other a replay, and each line is held once.
fn race_one_id_for_the_last_unit<const N: usize>(stock: &[(Sku, u32)], cart: [Line; N]) {
    let (inventory, _) = inventory_with(stock);
    let id = ReservationId(5);
    let tries: Vec<_> = (0..2)
        .map(|_| {
            let inventory = inventory.clone();
            thread::spawn(move || inventory.reserve(id, Channel::Online, &cart))
        })
        .collect();
    let answers: Vec<_> = tries.into_iter().map(|t| t.join().unwrap()).collect();
    for answer in &answers {
        assert!(answer.is_ok(), "{answers:?}");
    }
    assert_eq!(
        answers
            .iter()
            .filter(|a| a.as_ref().unwrap().replayed)
            .count(),
        1
    );
    for held in cart {
        assert_eq!(inventory.level(held.sku, STORE).unwrap().reserved, held.qty);
    }
}

/// A retention pass forgets a committed id while the same id is reserved
/// again on a sold-out item: the answer is the replay (the id was still
/// known) or the refusal (it was already forgotten), and the refusal path
/// never runs on a half-forgotten shard.
#[test]
fn refusal_races_forgetting_of_the_same_id() {
    loom::model(|| {
        let clock = std::sync::Arc::new(ManualClock::new());
        let inventory = Arc::new(
            Inventory::builder()
                .clock(clock.clone())
                .retention_ms(10)
                .expected_reservations(1)
                .build(),
        );
        inventory.set_on_hand(X, STORE, 1).unwrap();
        let id = ReservationId(5);
        inventory
            .reserve(id, Channel::Online, &[line(X, 1)])
            .unwrap();
        inventory.commit(id).unwrap();
        clock.set(10);
        let forget = {
            let inventory = inventory.clone();
            thread::spawn(move || inventory.expire())
        };
        let again = inventory.reserve(id, Channel::Online, &[line(X, 1)]);
        forget.join().unwrap();
        match again {
            Ok(ack) => assert!(ack.replayed && ack.state == ReservationState::Committed),
            Err(Error::Insufficient { available: 0, .. }) => {}
            other => panic!("unexpected {other:?}"),
        }
        assert_eq!(inventory.get(id), Err(Error::UnknownReservation { id }));
    });
}

/// The same id reserved twice at once with two lines, the second the last
/// unit. The refusal fast path reads both cells without holding either; if
/// it sees the other request's hold on the last unit it must also see that
/// id counted in, so neither answer is `Insufficient`: one is fresh, the
/// other a replay.
#[test]
fn same_id_racing_two_lines_for_the_last_unit_is_never_refused() {
    loom::model(|| {
        race_one_id_for_the_last_unit(&[(X, 1), (Y, 5)], [line(Y, 2), line(X, 1)]);
    });
}

/// A two-line cart whose second line is sold out races a reserve that
/// gives a unit of it back: the refusal without the lock names the sold-out
/// line with what it saw, or the cart succeeds; the first line is never
/// left held by a refused cart.
#[test]
fn two_line_refusal_races_a_release_of_its_last_line() {
    loom::model(|| {
        let (inventory, _) = inventory_with(&[(X, 1), (Y, 5)]);
        let holder = ReservationId(1);
        inventory
            .reserve(holder, Channel::Online, &[line(X, 1)])
            .unwrap();
        let release = {
            let inventory = inventory.clone();
            thread::spawn(move || inventory.release(holder))
        };
        let cart = inventory.reserve(ReservationId(2), Channel::Online, &[line(Y, 2), line(X, 1)]);
        release.join().unwrap().unwrap();
        assert_never_oversold(&inventory);
        let (x, y) = (
            inventory.level(X, STORE).unwrap(),
            inventory.level(Y, STORE).unwrap(),
        );
        match cart {
            Ok(_) => assert_eq!((x.reserved, y.reserved), (1, 2)),
            Err(Error::Insufficient {
                sku, available: 0, ..
            }) => {
                assert_eq!(sku, X);
                assert_eq!((x.reserved, y.reserved), (0, 0));
            }
            other => panic!("unexpected {other:?}"),
        }
    });
}

/// A refusal that makes its shard's id filter grow races a replay of the
/// shard's first id on the item that id sold out. Under loom the filters
/// have 4 counters and may grow to 8 after one refusal the filter failed
/// to prove; the refused id shares all its counters with the first id, so
/// it is refused under the lock. The rebuilt filter starts from zero and
/// counts the shard's ids in again; a refusal without the lock that read
/// it half-filled would wrongly answer `Insufficient` to a known id. The
/// answer must be the replay.
#[test]
fn replay_on_a_sold_out_item_races_a_growing_id_filter() {
    loom::model(|| replay_races_a_filter_rebuild(inventory_with));
}

/// The same race, with the filter off until the refusal: the refusal
/// switches it on (a rebuild from nothing, counting the shard's ids in)
/// while the replay reads it without the lock.
#[test]
fn replay_on_a_sold_out_item_races_an_id_filter_switching_on() {
    loom::model(|| replay_races_a_filter_rebuild(inventory_with_filters_off));
}

type Build = fn(&[(Sku, u32)]) -> (Arc<Inventory>, std::sync::Arc<ManualClock>);

fn replay_races_a_filter_rebuild(build: Build) {
    let (inventory, _) = build(&[(X, 1), (Y, 5)]);
    // Ids 8 apart share a shard (see id_hash), and ids 32 apart take
    // the same counters of 4.
    let (first, second, refused) = (ReservationId(1), ReservationId(9), ReservationId(33));
    inventory
        .reserve(first, Channel::Online, &[line(X, 1)])
        .unwrap();
    inventory
        .reserve(second, Channel::Online, &[line(Y, 1)])
        .unwrap();
    let again = {
        let inventory = inventory.clone();
        thread::spawn(move || inventory.reserve(first, Channel::Online, &[line(X, 1)]))
    };
    let grows = inventory.reserve(refused, Channel::Online, &[line(X, 1)]);
    let again = again.join().unwrap();
    assert!(matches!(
        grows,
        Err(Error::Insufficient { available: 0, .. })
    ));
    match again {
        Ok(ack) => assert!(ack.replayed),
        other => panic!("a known id was refused: {other:?}"),
    }
    assert_eq!(inventory.level(X, STORE).unwrap().reserved, 1);
    assert_eq!(
        inventory.get(refused),
        Err(Error::UnknownReservation { id: refused })
    );
}

/// A single-line online reserve races a safety stock change on its item
/// (the reserve counts safety stock, the change answers the reserved units
/// it saw): the two answers come from one order. Reserve first: it holds
/// both units and the change sees them reserved. Change first: the reserve
/// is refused with the one unit left above the new safety stock. Never a
/// reserve that held both units against the old safety stock while the
/// change saw none reserved. With the id filters on, the reserve is also
/// refused by loads alone where it can be; with them off, under the lock.
#[test]
fn online_reserve_races_a_safety_stock_change() {
    for build in [inventory_with, inventory_with_filters_off] {
        loom::model(move || {
            let (inventory, _) = build(&[(X, 2)]);
            let reserve = {
                let inventory = inventory.clone();
                thread::spawn(move || {
                    inventory.reserve(ReservationId(1), Channel::Online, &[line(X, 2)])
                })
            };
            let change = inventory.set_safety_stock(X, STORE, 1);
            match reserve.join().unwrap() {
                Ok(_) => assert_eq!(
                    (change.on_hand, change.reserved),
                    (2, 2),
                    "held against the old safety stock after the change"
                ),
                Err(Error::Insufficient { available: 1, .. }) => {
                    assert_eq!((change.on_hand, change.reserved), (2, 0))
                }
                other => panic!("not a serial outcome: {other:?}"),
            }
        });
    }
}

/// A sale (which answers the level after it, safety stock included) races
/// a safety stock change on its item: the change's answer says whether
/// the sale came first (one unit left) or after (two), and the sale's level
/// carries the old (0) or the new (1) safety stock to match.
#[test]
fn sale_races_a_safety_stock_change() {
    loom::model(|| {
        let (inventory, _) = inventory_with(&[(X, 2)]);
        let sale = {
            let inventory = inventory.clone();
            thread::spawn(move || inventory.sell(X, STORE, 1, Channel::InStore))
        };
        let change = inventory.set_safety_stock(X, STORE, 1);
        let sale = sale.join().unwrap().unwrap();
        let before = change.on_hand == 1;
        assert_eq!(
            sale.safety_stock,
            if before { 0 } else { 1 },
            "sale {sale:?}, change {change:?}"
        );
    });
}

/// A reader races a sale followed by a safety stock change on its item
/// (one thread, in that order): the stock and safety stock it answers
/// are those of one instant, (2, 0), (1, 0) or (1, 1); never the stock
/// from before the sale with the safety stock from after the change.
#[test]
fn level_races_a_sale_then_a_safety_stock_change() {
    loom::model(|| {
        let (inventory, _) = inventory_with(&[(X, 2)]);
        let writer = {
            let inventory = inventory.clone();
            thread::spawn(move || {
                inventory.sell(X, STORE, 1, Channel::InStore).unwrap();
                inventory.set_safety_stock(X, STORE, 1);
            })
        };
        let read = inventory.level(X, STORE).unwrap();
        writer.join().unwrap();
        assert!(
            [(2, 0), (1, 0), (1, 1)].contains(&(read.on_hand, read.safety_stock)),
            "read {read:?}, no instant's level"
        );
    });
}

// ----- fulfilment

/// `reserve_any` splitting two units over two stores races a sale of the
/// one unit of the first store: either the reservation takes one unit from
/// each store and the sale is refused, or the sale wins and the
/// reservation is refused with the one unit left; never more than a store
/// had, never both.
#[test]
fn reserve_any_split_races_a_sale_at_one_of_its_stores() {
    const NEAR: StoreId = StoreId(1);
    const FAR: StoreId = StoreId(2);
    loom::model(|| {
        let inventory = Inventory::new();
        inventory.set_on_hand(X, NEAR, 1).unwrap();
        inventory.set_on_hand(X, FAR, 1).unwrap();
        let inventory = Arc::new(inventory);
        let sourcing = {
            let inventory = inventory.clone();
            thread::spawn(move || {
                let stores = [NEAR, FAR];
                let request = omnistock::SourceRequest::new(X, 2, &stores).split();
                let answer =
                    inventory.reserve_any(ReservationId(1), Channel::Online, &request, 60_000);
                assert_never_oversold(&inventory);
                answer
            })
        };
        let pos = {
            let inventory = inventory.clone();
            thread::spawn(move || inventory.sell(X, NEAR, 1, Channel::InStore))
        };
        assert_never_oversold(&inventory);
        let (held, sold) = (sourcing.join().unwrap(), pos.join().unwrap());
        match (&held, &sold) {
            (Ok(held), Err(Error::Insufficient { available: 0, .. })) => {
                assert_eq!(held.lines, [Line::new(X, NEAR, 1), Line::new(X, FAR, 1)]);
            }
            (
                Err(Error::InsufficientAcross {
                    available: 1,
                    requested: 2,
                    ..
                }),
                Ok(_),
            ) => {}
            other => panic!("{other:?}"),
        }
        let (near, far) = (
            inventory.level(X, NEAR).unwrap(),
            inventory.level(X, FAR).unwrap(),
        );
        assert!(near.reserved <= near.on_hand && far.reserved <= far.on_hand);
        assert_eq!(
            near.reserved + far.reserved,
            if held.is_ok() { 2 } else { 0 }
        );
        assert!(inventory.check().consistent);
    });
}

/// `check` while a two-line cart is held and another is released: every
/// check, at any point of the race, finds the cells' reserved units equal
/// to what the live reservations hold (never a cart partly held or partly
/// returned).
#[test]
fn check_during_concurrent_reserves_is_consistent() {
    loom::model(|| {
        let (inventory, _) = inventory_with(&[(X, 2), (Y, 2)]);
        inventory
            .reserve(ReservationId(1), Channel::Online, &[line(X, 1), line(Y, 1)])
            .unwrap();
        let carts = {
            let inventory = inventory.clone();
            thread::spawn(move || {
                inventory
                    .reserve(ReservationId(2), Channel::Online, &[line(X, 1), line(Y, 1)])
                    .unwrap();
                inventory.release(ReservationId(1)).unwrap();
            })
        };
        let report = inventory.check();
        assert!(report.consistent, "{report:?}");
        carts.join().unwrap();
        assert!(inventory.check().consistent);
        assert_eq!(inventory.level(X, STORE).unwrap().reserved, 1);
    });
}

// ------------------------------------------------ campaigns and alerts

const SALE: CampaignId = CampaignId(3);

/// Two customers race for the last unit of a campaign's quota (the item
/// has plenty): exactly one gets it, the other is refused for the quota
/// with nothing remaining, and the campaign counts one unit.
#[test]
fn two_customers_race_for_the_last_unit_of_a_quota() {
    loom::model(|| {
        let (inventory, _) = inventory_with(&[(X, 5)]);
        inventory.define_campaign(SALE, X, STORE, 1, 1).unwrap();
        let shoppers: Vec<_> = (1..=2u64)
            .map(|n| {
                let inventory = inventory.clone();
                thread::spawn(move || {
                    inventory.reserve_in_campaign(
                        ReservationId(n),
                        Channel::Online,
                        line(X, 1),
                        SALE,
                        CustomerId(n),
                        1_000,
                    )
                })
            })
            .collect();
        let answers: Vec<_> = shoppers.into_iter().map(|t| t.join().unwrap()).collect();
        assert_eq!(answers.iter().filter(|a| a.is_ok()).count(), 1);
        for refusal in answers.iter().filter_map(|a| a.as_ref().err()) {
            assert_eq!(
                *refusal,
                Error::QuotaExhausted {
                    campaign: SALE,
                    remaining: 0
                }
            );
        }
        assert_eq!(inventory.campaign(SALE).unwrap().used, 1);
        assert_eq!(inventory.level(X, STORE).unwrap().reserved, 1);
    });
}

/// The quota and one customer's counter race: the customer (limit 1)
/// holds a unit and releases it while reserving again under another id.
/// The new reserve wins only if the release came first; either way the
/// quota and the customer's counter end equal to the units held, and the
/// counter never passes the limit.
#[test]
fn a_customers_release_races_their_next_reserve() {
    loom::model(|| {
        let (inventory, _) = inventory_with(&[(X, 5)]);
        inventory.define_campaign(SALE, X, STORE, 2, 1).unwrap();
        let customer = CustomerId(7);
        inventory
            .reserve_in_campaign(
                ReservationId(1),
                Channel::Online,
                line(X, 1),
                SALE,
                customer,
                1_000,
            )
            .unwrap();
        let releaser = {
            let inventory = inventory.clone();
            thread::spawn(move || inventory.release(ReservationId(1)).unwrap())
        };
        let again = {
            let inventory = inventory.clone();
            thread::spawn(move || {
                inventory.reserve_in_campaign(
                    ReservationId(2),
                    Channel::Online,
                    line(X, 1),
                    SALE,
                    customer,
                    1_000,
                )
            })
        };
        releaser.join().unwrap();
        let answer = again.join().unwrap();
        let held = match answer {
            Ok(_) => 1,
            Err(Error::CustomerLimit { remaining: 0, .. }) => 0,
            other => panic!("unexpected {other:?}"),
        };
        assert_eq!(inventory.campaign(SALE).unwrap().used, held);
        assert_eq!(inventory.campaign_customer_used(SALE, customer), held);
        assert_eq!(inventory.level(X, STORE).unwrap().reserved, held);
    });
}

/// Two threads take the item below its reorder point together (2 on hand,
/// point 2, each reserves one): exactly one alert is raised.
#[test]
fn two_threads_crossing_a_reorder_point_raise_one_alert() {
    loom::model(|| {
        let (inventory, _) = inventory_with(&[(X, 2)]);
        inventory.set_reorder_point(X, STORE, 2);
        assert!(inventory.take_alerts().is_empty());
        let shoppers: Vec<_> = (1..=2u64)
            .map(|n| {
                let inventory = inventory.clone();
                thread::spawn(move || {
                    inventory
                        .reserve(ReservationId(n), Channel::Online, &[line(X, 1)])
                        .unwrap();
                })
            })
            .collect();
        for shopper in shoppers {
            shopper.join().unwrap();
        }
        let alerts = inventory.take_alerts();
        assert_eq!(alerts.len(), 1, "{alerts:?}");
        assert_eq!((alerts[0].sku, alerts[0].reorder_point), (X, 2));
        assert!(alerts[0].available_online < 2);
    });
}

//! One test per rule of the v1 contract (`docs/CONTRACT.md`), run against
//! the real [`Inventory`] with a manual clock. Test names state the rule.

use omnistock::{
    Channel, Command, Effect, Error, Inventory, ItemKey, Level, Line, ManualClock, Outcome,
    ReservationAck, ReservationId, ReservationInfo, ReservationState, Sku, StoreId,
    DEFAULT_RETENTION_MS, DEFAULT_TTL_MS, MAX_LINES,
};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

const A: Sku = Sku(1);
const B: Sku = Sku(2);
const C: Sku = Sku(3);
const S: StoreId = StoreId(10);
const T: StoreId = StoreId(20);

use Channel::{InStore, Online};
use ReservationState::{Committed, Expired, Pending, Released};

fn id(n: u64) -> ReservationId {
    ReservationId(n)
}

fn line(sku: Sku, store: StoreId, qty: u32) -> Line {
    Line::new(sku, store, qty)
}

fn setup() -> (Arc<ManualClock>, Inventory) {
    let clock = Arc::new(ManualClock::new());
    let inv = Inventory::builder().clock(clock.clone()).build();
    (clock, inv)
}

fn setup_with(ttl: u64, retention: u64) -> (Arc<ManualClock>, Inventory) {
    let clock = Arc::new(ManualClock::new());
    let inv = Inventory::builder()
        .clock(clock.clone())
        .default_ttl_ms(ttl)
        .retention_ms(retention)
        .build();
    (clock, inv)
}

type Log = Arc<Mutex<Vec<Vec<Effect>>>>;

fn setup_observed() -> (Arc<ManualClock>, Inventory, Log) {
    let clock = Arc::new(ManualClock::new());
    let log: Log = Arc::new(Mutex::new(Vec::new()));
    let sink = log.clone();
    let inv = Inventory::builder()
        .clock(clock.clone())
        .observer(Arc::new(move |effects: &[Effect]| {
            sink.lock().unwrap().push(effects.to_vec())
        }))
        .build();
    (clock, inv, log)
}

fn lvl(inv: &Inventory, sku: Sku, store: StoreId) -> Level {
    inv.level(sku, store).expect("item exists")
}

fn ack(id: u64, state: ReservationState, replayed: bool, expires: Option<u64>) -> ReservationAck {
    ReservationAck {
        id: ReservationId(id),
        state,
        replayed,
        expires_at_ms: expires,
    }
}

fn is_invalid<T: std::fmt::Debug>(r: Result<T, Error>) -> bool {
    matches!(r, Err(Error::Invalid { .. }))
}

fn sorted_items(inv: &Inventory) -> Vec<(ItemKey, Level)> {
    let mut items = inv.items();
    items.sort_by_key(|(k, _)| *k);
    items
}

// ---------------------------------------------------------------- stock ops

#[test]
fn restock_creates_item_and_adds_on_hand() {
    let (_, inv) = setup();
    assert_eq!(
        inv.level(A, S),
        Err(Error::UnknownItem { sku: A, store: S })
    );
    assert_eq!(inv.restock(A, S, 5), Ok(Level::new(5, 0, 0)));
    assert_eq!(inv.restock(A, S, 3), Ok(Level::new(8, 0, 0)));
    assert_eq!(lvl(&inv, A, S), Level::new(8, 0, 0));
}

#[test]
fn restock_of_zero_is_invalid_and_creates_nothing() {
    let (_, inv) = setup();
    assert!(is_invalid(inv.restock(A, S, 0)));
    assert_eq!(
        inv.level(A, S),
        Err(Error::UnknownItem { sku: A, store: S })
    );
    assert!(inv.items().is_empty());
}

#[test]
fn restock_past_u32_max_is_overflow_and_changes_nothing() {
    let (_, inv) = setup();
    inv.restock(A, S, u32::MAX - 2).unwrap();
    assert_eq!(
        inv.restock(A, S, 3),
        Err(Error::Overflow {
            sku: A,
            store: S,
            on_hand: u32::MAX - 2,
            requested: 3
        })
    );
    assert_eq!(lvl(&inv, A, S).on_hand, u32::MAX - 2);
    assert_eq!(inv.restock(A, S, 2), Ok(Level::new(u32::MAX, 0, 0)));
}

#[test]
fn restock_invalid_is_checked_before_overflow() {
    let (_, inv) = setup();
    inv.restock(A, S, u32::MAX).unwrap();
    assert!(is_invalid(inv.restock(A, S, 0)));
}

#[test]
fn set_on_hand_creates_and_sets_including_zero() {
    let (_, inv) = setup();
    assert_eq!(inv.set_on_hand(A, S, 0), Ok(Level::new(0, 0, 0)));
    assert_eq!(inv.set_on_hand(A, S, 9), Ok(Level::new(9, 0, 0)));
    assert_eq!(inv.set_on_hand(A, S, 4), Ok(Level::new(4, 0, 0)));
    assert_eq!(
        inv.set_on_hand(A, S, u32::MAX),
        Ok(Level::new(u32::MAX, 0, 0))
    );
}

#[test]
fn set_on_hand_below_reserved_reports_reserved_and_changes_nothing() {
    let (_, inv) = setup();
    inv.restock(A, S, 10).unwrap();
    inv.reserve(id(1), InStore, &[line(A, S, 4)]).unwrap();
    assert_eq!(
        inv.set_on_hand(A, S, 3),
        Err(Error::BelowReserved {
            sku: A,
            store: S,
            reserved: 4
        })
    );
    assert_eq!(lvl(&inv, A, S), Level::new(10, 4, 0));
    assert_eq!(inv.set_on_hand(A, S, 4), Ok(Level::new(4, 4, 0)));
}

#[test]
fn set_safety_stock_creates_and_never_fails() {
    let (_, inv) = setup();
    assert_eq!(inv.set_safety_stock(A, S, 7), Level::new(0, 0, 7));
    assert_eq!(inv.set_safety_stock(A, S, 0), Level::new(0, 0, 0));
    assert_eq!(
        inv.set_safety_stock(A, S, u32::MAX),
        Level::new(0, 0, u32::MAX)
    );
}

#[test]
fn available_online_is_floored_at_zero() {
    let (_, inv) = setup();
    inv.restock(A, S, 5).unwrap();
    inv.reserve(id(1), InStore, &[line(A, S, 2)]).unwrap();
    let l = inv.set_safety_stock(A, S, 4);
    assert_eq!(
        l,
        Level {
            on_hand: 5,
            reserved: 2,
            safety_stock: 4,
            available_online: 0,
            available_in_store: 3
        }
    );
}

#[test]
fn sell_takes_units_from_on_hand() {
    let (_, inv) = setup();
    inv.restock(A, S, 5).unwrap();
    assert_eq!(inv.sell(A, S, 2, InStore), Ok(Level::new(3, 0, 0)));
    assert_eq!(inv.sell(A, S, 3, Online), Ok(Level::new(0, 0, 0)));
}

#[test]
fn sell_of_zero_is_invalid() {
    let (_, inv) = setup();
    inv.restock(A, S, 5).unwrap();
    assert!(is_invalid(inv.sell(A, S, 0, InStore)));
    // invalid comes before unknown_item
    assert!(is_invalid(inv.sell(B, S, 0, InStore)));
    assert_eq!(lvl(&inv, A, S), Level::new(5, 0, 0));
}

#[test]
fn sell_of_unknown_item_is_unknown_item() {
    let (_, inv) = setup();
    assert_eq!(
        inv.sell(A, S, 1, InStore),
        Err(Error::UnknownItem { sku: A, store: S })
    );
    assert!(inv.items().is_empty());
}

#[test]
fn sell_is_limited_by_channel_availability() {
    let (_, inv) = setup();
    inv.restock(A, S, 10).unwrap();
    inv.set_safety_stock(A, S, 3);
    inv.reserve(id(1), InStore, &[line(A, S, 2)]).unwrap();
    assert_eq!(
        inv.sell(A, S, 6, Online),
        Err(Error::Insufficient {
            sku: A,
            store: S,
            requested: 6,
            available: 5
        })
    );
    assert_eq!(
        inv.sell(A, S, 9, InStore),
        Err(Error::Insufficient {
            sku: A,
            store: S,
            requested: 9,
            available: 8
        })
    );
    assert_eq!(lvl(&inv, A, S), Level::new(10, 2, 3));
    assert_eq!(inv.sell(A, S, 5, Online), Ok(Level::new(5, 2, 3)));
    assert_eq!(inv.sell(A, S, 3, InStore), Ok(Level::new(2, 2, 3)));
}

#[test]
fn level_of_unknown_item_is_unknown_item() {
    let (_, inv) = setup();
    inv.restock(A, S, 1).unwrap();
    assert_eq!(
        inv.level(A, T),
        Err(Error::UnknownItem { sku: A, store: T })
    );
    assert_eq!(
        inv.level(B, S),
        Err(Error::UnknownItem { sku: B, store: S })
    );
}

// ------------------------------------------------------------ reserve: step 1

#[test]
fn reserve_takes_units_and_reports_pending_with_deadline() {
    let (clock, inv) = setup();
    inv.restock(A, S, 10).unwrap();
    clock.advance(500);
    assert_eq!(
        inv.reserve_with_ttl(id(1), Online, &[line(A, S, 4)], 60_000),
        Ok(ack(1, Pending, false, Some(60_500)))
    );
    assert_eq!(lvl(&inv, A, S), Level::new(10, 4, 0));
}

#[test]
fn reserve_default_ttl_is_fifteen_minutes() {
    let (clock, inv) = setup();
    assert_eq!(DEFAULT_TTL_MS, 900_000);
    inv.restock(A, S, 10).unwrap();
    clock.advance(7);
    assert_eq!(
        inv.reserve(id(1), Online, &[line(A, S, 1)]),
        Ok(ack(1, Pending, false, Some(900_007)))
    );
    let via_apply = inv.apply(&Command::Reserve {
        id: id(2),
        channel: Online,
        ttl_ms: None,
        lines: vec![line(A, S, 1)],
    });
    assert_eq!(
        via_apply,
        Ok(Outcome::Reservation(ack(2, Pending, false, Some(900_007))))
    );
}

#[test]
fn default_ttl_is_configurable() {
    let (_, inv) = setup_with(1_234, DEFAULT_RETENTION_MS);
    inv.restock(A, S, 10).unwrap();
    assert_eq!(
        inv.reserve(id(1), Online, &[line(A, S, 1)]),
        Ok(ack(1, Pending, false, Some(1_234)))
    );
}

#[test]
fn reserve_with_no_lines_is_invalid() {
    let (_, inv) = setup();
    assert!(is_invalid(inv.reserve(id(1), Online, &[])));
    assert_eq!(inv.get(id(1)), Err(Error::UnknownReservation { id: id(1) }));
}

#[test]
fn reserve_with_more_than_256_lines_is_invalid() {
    let (_, inv) = setup();
    assert_eq!(MAX_LINES, 256);
    let lines: Vec<Line> = (0..=MAX_LINES as u64).map(|s| line(Sku(s), S, 1)).collect();
    for l in &lines {
        inv.restock(l.sku, l.store, 1).unwrap();
    }
    assert!(is_invalid(inv.reserve(id(1), Online, &lines)));
    assert_eq!(inv.reservation_count(), 0);
    // 256 lines are fine
    assert!(inv.reserve(id(1), Online, &lines[..MAX_LINES]).is_ok());
    assert_eq!(inv.get(id(1)).unwrap().lines, lines[..MAX_LINES].to_vec());
}

#[test]
fn reserve_with_a_zero_qty_line_is_invalid() {
    let (_, inv) = setup();
    inv.restock(A, S, 10).unwrap();
    inv.restock(B, S, 10).unwrap();
    assert!(is_invalid(inv.reserve(
        id(1),
        Online,
        &[line(A, S, 1), line(B, S, 0)]
    )));
    assert_eq!(lvl(&inv, A, S).reserved, 0);
}

#[test]
fn reserve_with_the_same_item_twice_is_invalid() {
    let (_, inv) = setup();
    inv.restock(A, S, 10).unwrap();
    assert!(is_invalid(inv.reserve(
        id(1),
        Online,
        &[line(A, S, 1), line(A, S, 2)]
    )));
    assert!(is_invalid(inv.reserve(
        id(1),
        Online,
        &[line(A, S, 1), line(A, S, 1)]
    )));
    // same sku at two stores is fine
    inv.restock(A, T, 10).unwrap();
    assert!(inv
        .reserve(id(1), Online, &[line(A, S, 1), line(A, T, 1)])
        .is_ok());
}

#[test]
fn reserve_with_ttl_of_zero_is_invalid() {
    let (_, inv) = setup();
    inv.restock(A, S, 10).unwrap();
    assert!(is_invalid(inv.reserve_with_ttl(
        id(1),
        Online,
        &[line(A, S, 1)],
        0
    )));
    assert_eq!(lvl(&inv, A, S).reserved, 0);
}

#[test]
fn invalid_is_checked_before_idempotency_and_line_checks() {
    let (_, inv) = setup();
    inv.restock(A, S, 10).unwrap();
    inv.reserve(id(1), Online, &[line(A, S, 1)]).unwrap();
    // a known id with an invalid request: invalid, not id_conflict/replay
    assert!(is_invalid(inv.reserve_with_ttl(
        id(1),
        Online,
        &[line(A, S, 1)],
        0
    )));
    // unknown item and invalid: invalid
    assert!(is_invalid(inv.reserve(
        id(2),
        Online,
        &[line(B, S, 1), line(A, S, 0)]
    )));
}

#[test]
fn invalid_is_checked_before_lazy_expiry() {
    let (clock, inv) = setup();
    inv.restock(A, S, 10).unwrap();
    inv.reserve_with_ttl(id(1), Online, &[line(A, S, 4)], 100)
        .unwrap();
    clock.advance(100);
    assert!(is_invalid(inv.reserve(id(1), Online, &[])));
    assert!(is_invalid(inv.reserve(id(1), Online, &[line(A, S, 0)])));
    assert!(is_invalid(inv.reserve(
        id(1),
        Online,
        &[line(A, S, 4), line(A, S, 4)]
    )));
    assert!(is_invalid(inv.reserve_with_ttl(
        id(1),
        Online,
        &[line(A, S, 4)],
        0
    )));
    assert!(is_invalid(inv.extend(id(1), 0)));
    // nothing changed, not even by lazy expiry
    assert_eq!(lvl(&inv, A, S), Level::new(10, 4, 0));
    // expire() still finds it pending
    assert_eq!(inv.expire(), 1);
    assert_eq!(lvl(&inv, A, S), Level::new(10, 0, 0));
}

// ------------------------------------------------------- reserve: idempotency

#[test]
fn reserve_replay_of_pending_is_replayed_ignoring_line_order_and_ttl() {
    let (clock, inv) = setup();
    inv.restock(A, S, 10).unwrap();
    inv.restock(B, T, 10).unwrap();
    let lines = [line(A, S, 2), line(B, T, 3)];
    inv.reserve_with_ttl(id(1), Online, &lines, 1_000).unwrap();
    clock.advance(10);
    assert_eq!(
        inv.reserve_with_ttl(id(1), Online, &[lines[1], lines[0]], 99_999),
        Ok(ack(1, Pending, true, Some(1_000)))
    );
    assert_eq!(
        inv.reserve(id(1), Online, &lines),
        Ok(ack(1, Pending, true, Some(1_000)))
    );
    assert_eq!(lvl(&inv, A, S), Level::new(10, 2, 0));
    assert_eq!(lvl(&inv, B, T), Level::new(10, 3, 0));
    // the original order and deadline stay
    assert_eq!(inv.get(id(1)).unwrap().lines, lines.to_vec());
    assert_eq!(inv.get(id(1)).unwrap().expires_at_ms, 1_000);
}

#[test]
fn reserve_replay_is_answered_even_without_stock() {
    let (_, inv) = setup();
    inv.restock(A, S, 3).unwrap();
    inv.reserve(id(1), Online, &[line(A, S, 3)]).unwrap();
    assert_eq!(
        inv.reserve(id(1), Online, &[line(A, S, 3)]),
        Ok(ack(1, Pending, true, Some(DEFAULT_TTL_MS)))
    );
}

#[test]
fn reserve_replay_of_committed_is_replayed() {
    let (_, inv) = setup();
    inv.restock(A, S, 10).unwrap();
    inv.reserve(id(1), InStore, &[line(A, S, 2)]).unwrap();
    inv.commit(id(1)).unwrap();
    assert_eq!(
        inv.reserve(id(1), InStore, &[line(A, S, 2)]),
        Ok(ack(1, Committed, true, None))
    );
    assert_eq!(lvl(&inv, A, S), Level::new(8, 0, 0));
}

#[test]
fn reserve_replay_of_released_is_already_released() {
    let (_, inv) = setup();
    inv.restock(A, S, 10).unwrap();
    inv.reserve(id(1), Online, &[line(A, S, 2)]).unwrap();
    inv.release(id(1)).unwrap();
    assert_eq!(
        inv.reserve(id(1), Online, &[line(A, S, 2)]),
        Err(Error::AlreadyReleased { id: id(1) })
    );
    assert_eq!(lvl(&inv, A, S), Level::new(10, 0, 0));
}

#[test]
fn reserve_replay_of_expired_is_expired() {
    let (clock, inv) = setup();
    inv.restock(A, S, 10).unwrap();
    inv.reserve_with_ttl(id(1), Online, &[line(A, S, 2)], 5)
        .unwrap();
    clock.advance(5);
    // lazy expiry first, then the replay reports expired
    assert_eq!(
        inv.reserve(id(1), Online, &[line(A, S, 2)]),
        Err(Error::Expired { id: id(1) })
    );
    assert_eq!(lvl(&inv, A, S), Level::new(10, 0, 0));
    assert_eq!(inv.get(id(1)).unwrap().state, Expired);
}

#[test]
fn reserve_with_known_id_and_other_request_is_id_conflict() {
    let (_, inv) = setup();
    inv.restock(A, S, 10).unwrap();
    inv.restock(B, S, 10).unwrap();
    inv.reserve(id(1), Online, &[line(A, S, 2)]).unwrap();
    let conflict = Err(Error::IdConflict { id: id(1) });
    assert_eq!(inv.reserve(id(1), InStore, &[line(A, S, 2)]), conflict);
    assert_eq!(inv.reserve(id(1), Online, &[line(A, S, 3)]), conflict);
    assert_eq!(inv.reserve(id(1), Online, &[line(B, S, 2)]), conflict);
    assert_eq!(
        inv.reserve(id(1), Online, &[line(A, S, 2), line(B, S, 1)]),
        conflict
    );
    // id_conflict wins over line errors
    assert_eq!(inv.reserve(id(1), Online, &[line(C, S, 1)]), conflict);
    // whatever the state
    inv.release(id(1)).unwrap();
    assert_eq!(inv.reserve(id(1), InStore, &[line(A, S, 2)]), conflict);
    assert_eq!(lvl(&inv, A, S), Level::new(10, 0, 0));
    assert_eq!(lvl(&inv, B, S), Level::new(10, 0, 0));
}

#[test]
fn lazy_expiry_stands_when_the_operation_then_fails() {
    let (clock, inv) = setup();
    inv.restock(A, S, 10).unwrap();
    inv.reserve_with_ttl(id(1), Online, &[line(A, S, 4)], 10)
        .unwrap();
    clock.advance(10);
    assert_eq!(
        inv.reserve(id(1), InStore, &[line(A, S, 4)]),
        Err(Error::IdConflict { id: id(1) })
    );
    assert_eq!(lvl(&inv, A, S), Level::new(10, 0, 0));
    assert_eq!(inv.expire(), 0);
    assert_eq!(inv.get(id(1)).unwrap().state, Expired);
}

// ------------------------------------------------------ reserve: line checks

#[test]
fn reserve_checks_lines_in_order_one_at_a_time() {
    let (_, inv) = setup();
    inv.restock(A, S, 1).unwrap();
    inv.restock(B, S, 1).unwrap();
    // line 1 insufficient beats line 2 unknown
    assert_eq!(
        inv.reserve(id(1), Online, &[line(A, S, 2), line(C, S, 1)]),
        Err(Error::Insufficient {
            sku: A,
            store: S,
            requested: 2,
            available: 1
        })
    );
    // line 1 unknown beats line 2 insufficient
    assert_eq!(
        inv.reserve(id(1), Online, &[line(C, S, 1), line(A, S, 2)]),
        Err(Error::UnknownItem { sku: C, store: S })
    );
    // the first failing line is reported
    assert_eq!(
        inv.reserve(
            id(1),
            Online,
            &[line(A, S, 1), line(B, S, 5), line(C, S, 1)]
        ),
        Err(Error::Insufficient {
            sku: B,
            store: S,
            requested: 5,
            available: 1
        })
    );
}

#[test]
fn reserve_is_all_or_nothing() {
    let (_, inv) = setup();
    inv.restock(A, S, 10).unwrap();
    inv.restock(B, S, 2).unwrap();
    let before = sorted_items(&inv);
    assert_eq!(
        inv.reserve(id(1), Online, &[line(A, S, 5), line(B, S, 3)]),
        Err(Error::Insufficient {
            sku: B,
            store: S,
            requested: 3,
            available: 2
        })
    );
    assert_eq!(sorted_items(&inv), before);
    assert_eq!(
        inv.reserve(id(1), Online, &[line(A, S, 5), line(C, T, 3)]),
        Err(Error::UnknownItem { sku: C, store: T })
    );
    assert_eq!(sorted_items(&inv), before);
    assert_eq!(inv.reservation_count(), 0);
    inv.reserve(id(1), Online, &[line(A, S, 5), line(B, S, 2)])
        .unwrap();
    assert_eq!(lvl(&inv, A, S), Level::new(10, 5, 0));
    assert_eq!(lvl(&inv, B, S), Level::new(2, 2, 0));
}

#[test]
fn failed_reserve_does_not_record_id() {
    let (_, inv) = setup();
    inv.restock(A, S, 1).unwrap();
    assert!(inv.reserve(id(1), Online, &[line(A, S, 2)]).is_err());
    assert_eq!(inv.get(id(1)), Err(Error::UnknownReservation { id: id(1) }));
    assert_eq!(
        inv.commit(id(1)),
        Err(Error::UnknownReservation { id: id(1) })
    );
    assert_eq!(inv.reservation_count(), 0);
    // a different request with the same id is no conflict
    assert_eq!(
        inv.reserve(id(1), InStore, &[line(A, S, 1)]),
        Ok(ack(1, Pending, false, Some(DEFAULT_TTL_MS)))
    );
}

#[test]
fn failed_reserve_can_be_retried_with_the_same_id() {
    let (_, inv) = setup();
    inv.restock(A, S, 1).unwrap();
    assert!(inv.reserve(id(1), Online, &[line(A, S, 2)]).is_err());
    inv.restock(A, S, 1).unwrap();
    assert_eq!(
        inv.reserve(id(1), Online, &[line(A, S, 2)]),
        Ok(ack(1, Pending, false, Some(DEFAULT_TTL_MS)))
    );
}

#[test]
fn online_cannot_take_safety_stock() {
    let (_, inv) = setup();
    inv.restock(A, S, 10).unwrap();
    inv.set_safety_stock(A, S, 4);
    assert_eq!(
        inv.reserve(id(1), Online, &[line(A, S, 7)]),
        Err(Error::Insufficient {
            sku: A,
            store: S,
            requested: 7,
            available: 6
        })
    );
    inv.reserve(id(1), Online, &[line(A, S, 6)]).unwrap();
    assert_eq!(
        inv.reserve(id(2), Online, &[line(A, S, 1)]),
        Err(Error::Insufficient {
            sku: A,
            store: S,
            requested: 1,
            available: 0
        })
    );
}

#[test]
fn in_store_can_take_safety_stock() {
    let (_, inv) = setup();
    inv.restock(A, S, 10).unwrap();
    inv.set_safety_stock(A, S, 4);
    inv.reserve(id(1), Online, &[line(A, S, 6)]).unwrap();
    inv.reserve(id(2), InStore, &[line(A, S, 4)]).unwrap();
    assert_eq!(lvl(&inv, A, S), Level::new(10, 10, 4));
    assert_eq!(
        inv.reserve(id(3), InStore, &[line(A, S, 1)]),
        Err(Error::Insufficient {
            sku: A,
            store: S,
            requested: 1,
            available: 0
        })
    );
}

#[test]
fn reserve_accepts_u32_max_quantities() {
    let (_, inv) = setup();
    inv.restock(A, S, u32::MAX).unwrap();
    inv.reserve(id(1), InStore, &[line(A, S, u32::MAX)])
        .unwrap();
    assert_eq!(lvl(&inv, A, S), Level::new(u32::MAX, u32::MAX, 0));
    inv.commit(id(1)).unwrap();
    assert_eq!(lvl(&inv, A, S), Level::new(0, 0, 0));
}

// ------------------------------------------------------------------- commit

#[test]
fn commit_takes_units_out_of_stock() {
    let (_, inv) = setup();
    inv.restock(A, S, 10).unwrap();
    inv.restock(B, T, 5).unwrap();
    inv.reserve(id(1), Online, &[line(A, S, 3), line(B, T, 5)])
        .unwrap();
    assert_eq!(inv.commit(id(1)), Ok(ack(1, Committed, false, None)));
    assert_eq!(lvl(&inv, A, S), Level::new(7, 0, 0));
    assert_eq!(lvl(&inv, B, T), Level::new(0, 0, 0));
}

#[test]
fn commit_replay_is_replayed_and_changes_nothing() {
    let (_, inv) = setup();
    inv.restock(A, S, 10).unwrap();
    inv.reserve(id(1), Online, &[line(A, S, 3)]).unwrap();
    inv.commit(id(1)).unwrap();
    assert_eq!(inv.commit(id(1)), Ok(ack(1, Committed, true, None)));
    assert_eq!(lvl(&inv, A, S), Level::new(7, 0, 0));
}

#[test]
fn commit_of_released_is_already_released() {
    let (_, inv) = setup();
    inv.restock(A, S, 10).unwrap();
    inv.reserve(id(1), Online, &[line(A, S, 3)]).unwrap();
    inv.release(id(1)).unwrap();
    assert_eq!(inv.commit(id(1)), Err(Error::AlreadyReleased { id: id(1) }));
    assert_eq!(lvl(&inv, A, S), Level::new(10, 0, 0));
}

#[test]
fn commit_after_deadline_reports_expired() {
    let (clock, inv) = setup();
    inv.restock(A, S, 10).unwrap();
    inv.reserve_with_ttl(id(1), Online, &[line(A, S, 3)], 1_000)
        .unwrap();
    clock.advance(999);
    assert_eq!(lvl(&inv, A, S).reserved, 3);
    clock.advance(1);
    // now == expires_at: the deadline has come
    assert_eq!(inv.commit(id(1)), Err(Error::Expired { id: id(1) }));
    assert_eq!(lvl(&inv, A, S), Level::new(10, 0, 0));
    assert_eq!(inv.commit(id(1)), Err(Error::Expired { id: id(1) }));
}

#[test]
fn commit_just_before_deadline_succeeds() {
    let (clock, inv) = setup();
    inv.restock(A, S, 10).unwrap();
    inv.reserve_with_ttl(id(1), Online, &[line(A, S, 3)], 1_000)
        .unwrap();
    clock.advance(999);
    assert_eq!(inv.commit(id(1)), Ok(ack(1, Committed, false, None)));
}

#[test]
fn commit_of_unknown_is_unknown_reservation() {
    let (_, inv) = setup();
    assert_eq!(
        inv.commit(id(9)),
        Err(Error::UnknownReservation { id: id(9) })
    );
}

// ------------------------------------------------------------------ release

#[test]
fn release_returns_units() {
    let (_, inv) = setup();
    inv.restock(A, S, 10).unwrap();
    inv.reserve(id(1), Online, &[line(A, S, 3)]).unwrap();
    assert_eq!(inv.release(id(1)), Ok(ack(1, Released, false, None)));
    assert_eq!(lvl(&inv, A, S), Level::new(10, 0, 0));
}

#[test]
fn release_replay_is_replayed_for_released_and_expired() {
    let (clock, inv) = setup();
    inv.restock(A, S, 10).unwrap();
    inv.reserve(id(1), Online, &[line(A, S, 3)]).unwrap();
    inv.reserve_with_ttl(id(2), Online, &[line(A, S, 3)], 5)
        .unwrap();
    inv.release(id(1)).unwrap();
    assert_eq!(inv.release(id(1)), Ok(ack(1, Released, true, None)));
    clock.advance(5);
    assert_eq!(inv.expire(), 1);
    assert_eq!(inv.release(id(2)), Ok(ack(2, Expired, true, None)));
    assert_eq!(lvl(&inv, A, S), Level::new(10, 0, 0));
}

#[test]
fn release_of_overdue_reports_expired_not_replayed() {
    let (clock, inv) = setup();
    inv.restock(A, S, 10).unwrap();
    inv.reserve_with_ttl(id(1), Online, &[line(A, S, 3)], 5)
        .unwrap();
    clock.advance(5);
    assert_eq!(inv.release(id(1)), Ok(ack(1, Expired, false, None)));
    assert_eq!(lvl(&inv, A, S), Level::new(10, 0, 0));
    assert_eq!(inv.release(id(1)), Ok(ack(1, Expired, true, None)));
}

#[test]
fn release_of_committed_is_already_committed() {
    let (_, inv) = setup();
    inv.restock(A, S, 10).unwrap();
    inv.reserve(id(1), Online, &[line(A, S, 3)]).unwrap();
    inv.commit(id(1)).unwrap();
    assert_eq!(
        inv.release(id(1)),
        Err(Error::AlreadyCommitted { id: id(1) })
    );
    assert_eq!(lvl(&inv, A, S), Level::new(7, 0, 0));
}

#[test]
fn release_of_unknown_is_unknown_reservation() {
    let (_, inv) = setup();
    assert_eq!(
        inv.release(id(9)),
        Err(Error::UnknownReservation { id: id(9) })
    );
}

// ------------------------------------------------------------------- extend

#[test]
fn extend_moves_the_deadline_to_now_plus_ttl() {
    let (clock, inv) = setup();
    inv.restock(A, S, 10).unwrap();
    inv.reserve_with_ttl(id(1), Online, &[line(A, S, 3)], 100)
        .unwrap();
    clock.advance(50);
    assert_eq!(
        inv.extend(id(1), 200),
        Ok(ack(1, Pending, false, Some(250)))
    );
    clock.advance(150);
    assert_eq!(inv.expire(), 0);
    // it can also shorten the deadline
    assert_eq!(inv.extend(id(1), 1), Ok(ack(1, Pending, false, Some(201))));
    assert_eq!(inv.get(id(1)).unwrap().expires_at_ms, 201);
    clock.advance(1);
    assert_eq!(inv.expire(), 1);
}

#[test]
fn extend_with_ttl_of_zero_is_invalid() {
    let (_, inv) = setup();
    inv.restock(A, S, 10).unwrap();
    inv.reserve(id(1), Online, &[line(A, S, 3)]).unwrap();
    assert!(is_invalid(inv.extend(id(1), 0)));
    // checked before the reservation is looked up
    assert!(is_invalid(inv.extend(id(9), 0)));
    inv.commit(id(1)).unwrap();
    assert!(is_invalid(inv.extend(id(1), 0)));
}

#[test]
fn extend_of_terminal_or_unknown_reports_its_state() {
    let (clock, inv) = setup();
    inv.restock(A, S, 10).unwrap();
    inv.reserve(id(1), Online, &[line(A, S, 1)]).unwrap();
    inv.reserve(id(2), Online, &[line(A, S, 1)]).unwrap();
    inv.reserve_with_ttl(id(3), Online, &[line(A, S, 1)], 5)
        .unwrap();
    inv.commit(id(1)).unwrap();
    inv.release(id(2)).unwrap();
    clock.advance(5);
    assert_eq!(
        inv.extend(id(1), 10),
        Err(Error::AlreadyCommitted { id: id(1) })
    );
    assert_eq!(
        inv.extend(id(2), 10),
        Err(Error::AlreadyReleased { id: id(2) })
    );
    // overdue: lazily expired, then reported expired
    assert_eq!(inv.extend(id(3), 10), Err(Error::Expired { id: id(3) }));
    assert_eq!(lvl(&inv, A, S), Level::new(9, 0, 0));
    assert_eq!(inv.extend(id(3), 10), Err(Error::Expired { id: id(3) }));
    assert_eq!(
        inv.extend(id(4), 10),
        Err(Error::UnknownReservation { id: id(4) })
    );
}

// ---------------------------------------------------------------------- get

#[test]
fn get_reports_lines_in_requested_order() {
    let (clock, inv) = setup();
    inv.restock(B, T, 10).unwrap();
    inv.restock(A, S, 10).unwrap();
    clock.advance(3);
    let lines = vec![line(B, T, 2), line(A, S, 1)];
    inv.reserve_with_ttl(id(1), InStore, &lines, 40).unwrap();
    assert_eq!(
        inv.get(id(1)),
        Ok(ReservationInfo {
            id: id(1),
            state: Pending,
            channel: InStore,
            lines: lines.clone(),
            expires_at_ms: 43
        })
    );
}

#[test]
fn get_performs_lazy_expiry() {
    let (clock, inv) = setup();
    inv.restock(A, S, 10).unwrap();
    inv.reserve_with_ttl(id(1), Online, &[line(A, S, 4)], 40)
        .unwrap();
    clock.advance(40);
    assert_eq!(lvl(&inv, A, S).reserved, 4, "kept until processed");
    let info = inv.get(id(1)).unwrap();
    assert_eq!(info.state, Expired);
    assert_eq!(info.expires_at_ms, 40);
    assert_eq!(lvl(&inv, A, S).reserved, 0);
    assert_eq!(inv.expire(), 0);
}

#[test]
fn get_of_terminal_keeps_the_last_deadline() {
    let (clock, inv) = setup();
    inv.restock(A, S, 10).unwrap();
    inv.reserve_with_ttl(id(1), Online, &[line(A, S, 1)], 40)
        .unwrap();
    clock.advance(10);
    inv.extend(id(1), 100).unwrap();
    inv.commit(id(1)).unwrap();
    let info = inv.get(id(1)).unwrap();
    assert_eq!((info.state, info.expires_at_ms), (Committed, 110));
    assert_eq!(info.lines, vec![line(A, S, 1)]);
}

#[test]
fn get_of_unknown_is_unknown_reservation() {
    let (_, inv) = setup();
    assert_eq!(inv.get(id(3)), Err(Error::UnknownReservation { id: id(3) }));
}

// ------------------------------------------------------------ expiry, time

#[test]
fn overdue_reservation_keeps_its_units_until_processed() {
    let (clock, inv) = setup();
    inv.restock(A, S, 10).unwrap();
    inv.reserve_with_ttl(id(1), InStore, &[line(A, S, 8)], 10)
        .unwrap();
    clock.advance(1_000);
    assert_eq!(lvl(&inv, A, S), Level::new(10, 8, 0));
    assert_eq!(
        inv.sell(A, S, 3, InStore),
        Err(Error::Insufficient {
            sku: A,
            store: S,
            requested: 3,
            available: 2
        })
    );
    assert_eq!(
        inv.reserve(id(2), InStore, &[line(A, S, 3)]),
        Err(Error::Insufficient {
            sku: A,
            store: S,
            requested: 3,
            available: 2
        })
    );
    assert_eq!(
        inv.set_on_hand(A, S, 7),
        Err(Error::BelowReserved {
            sku: A,
            store: S,
            reserved: 8
        })
    );
    assert_eq!(inv.expire(), 1);
    assert_eq!(inv.sell(A, S, 3, InStore), Ok(Level::new(7, 0, 0)));
}

#[test]
fn expire_expires_every_overdue_pending_and_counts_them() {
    let (clock, inv) = setup();
    inv.restock(A, S, 10).unwrap();
    inv.reserve_with_ttl(id(1), Online, &[line(A, S, 1)], 10)
        .unwrap();
    inv.reserve_with_ttl(id(2), Online, &[line(A, S, 2)], 20)
        .unwrap();
    inv.reserve_with_ttl(id(3), Online, &[line(A, S, 3)], 21)
        .unwrap();
    inv.reserve_with_ttl(id(4), Online, &[line(A, S, 1)], 5)
        .unwrap();
    inv.commit(id(4)).unwrap();
    assert_eq!(inv.expire(), 0);
    clock.advance(20);
    assert_eq!(inv.expire(), 2);
    assert_eq!(lvl(&inv, A, S), Level::new(9, 3, 0));
    assert_eq!(inv.get(id(1)).unwrap().state, Expired);
    assert_eq!(inv.get(id(2)).unwrap().state, Expired);
    assert_eq!(inv.get(id(3)).unwrap().state, Pending);
    assert_eq!(inv.get(id(4)).unwrap().state, Committed);
    assert_eq!(inv.expire(), 0);
    assert_eq!(inv.apply(&Command::Expire), Ok(Outcome::Expired(0)));
}

#[test]
fn expiry_terminal_time_is_when_it_is_processed() {
    let (clock, inv) = setup_with(DEFAULT_TTL_MS, 100);
    inv.restock(A, S, 10).unwrap();
    inv.reserve_with_ttl(id(1), Online, &[line(A, S, 1)], 10)
        .unwrap();
    clock.advance(500);
    assert_eq!(inv.expire(), 1); // terminal at 500, not at 10
    clock.advance(99);
    assert_eq!(inv.expire(), 0);
    assert_eq!(inv.get(id(1)).unwrap().state, Expired);
    clock.advance(1);
    inv.expire();
    assert_eq!(inv.get(id(1)), Err(Error::UnknownReservation { id: id(1) }));
}

#[test]
fn retention_forgets_after_window() {
    let (clock, inv) = setup();
    assert_eq!(DEFAULT_RETENTION_MS, 86_400_000);
    inv.restock(A, S, 10).unwrap();
    inv.reserve(id(1), Online, &[line(A, S, 1)]).unwrap();
    clock.advance(1_000);
    inv.commit(id(1)).unwrap(); // terminal at 1_000
    clock.advance(DEFAULT_RETENTION_MS - 1);
    inv.expire();
    assert_eq!(inv.reservation_count(), 1);
    assert_eq!(inv.commit(id(1)), Ok(ack(1, Committed, true, None)));
    clock.advance(1);
    inv.expire();
    assert_eq!(inv.reservation_count(), 0);
    assert_eq!(
        inv.commit(id(1)),
        Err(Error::UnknownReservation { id: id(1) })
    );
    assert_eq!(inv.get(id(1)), Err(Error::UnknownReservation { id: id(1) }));
}

#[test]
fn retention_keeps_pending_reservations() {
    let (clock, inv) = setup_with(DEFAULT_TTL_MS, 10);
    inv.restock(A, S, 10).unwrap();
    inv.reserve_with_ttl(id(1), Online, &[line(A, S, 1)], 1_000)
        .unwrap();
    clock.advance(999);
    inv.expire();
    assert_eq!(inv.get(id(1)).unwrap().state, Pending);
}

#[test]
fn only_expire_forgets() {
    let (clock, inv) = setup_with(DEFAULT_TTL_MS, 100);
    inv.restock(A, S, 10).unwrap();
    inv.reserve(id(1), Online, &[line(A, S, 1)]).unwrap();
    inv.release(id(1)).unwrap();
    clock.advance(10_000);
    assert_eq!(inv.release(id(1)), Ok(ack(1, Released, true, None)));
    assert_eq!(
        inv.reserve(id(1), Online, &[line(A, S, 1)]),
        Err(Error::AlreadyReleased { id: id(1) })
    );
    assert_eq!(inv.get(id(1)).unwrap().state, Released);
    assert_eq!(inv.reservation_count(), 1);
    inv.expire();
    assert_eq!(inv.reservation_count(), 0);
}

#[test]
fn forgotten_id_may_be_used_again() {
    let (clock, inv) = setup_with(DEFAULT_TTL_MS, 100);
    inv.restock(A, S, 10).unwrap();
    inv.reserve(id(1), Online, &[line(A, S, 1)]).unwrap();
    inv.commit(id(1)).unwrap();
    clock.advance(100);
    inv.expire();
    assert_eq!(
        inv.reserve(id(1), InStore, &[line(A, S, 2)]),
        Ok(ack(1, Pending, false, Some(100 + DEFAULT_TTL_MS)))
    );
    assert_eq!(lvl(&inv, A, S), Level::new(9, 2, 0));
}

#[test]
fn expire_first_expires_then_forgets() {
    // with a retention of 0, what expire() expires it also forgets at once
    let (clock, inv) = setup_with(DEFAULT_TTL_MS, 0);
    inv.restock(A, S, 10).unwrap();
    inv.reserve_with_ttl(id(1), Online, &[line(A, S, 1)], 5)
        .unwrap();
    clock.advance(5);
    assert_eq!(inv.expire(), 1);
    assert_eq!(inv.get(id(1)), Err(Error::UnknownReservation { id: id(1) }));
    assert_eq!(inv.reservation_count(), 0);
}

#[test]
fn reservation_count_counts_pending_and_retained_terminal() {
    let (_, inv) = setup();
    inv.restock(A, S, 10).unwrap();
    assert_eq!(inv.reservation_count(), 0);
    inv.reserve(id(1), Online, &[line(A, S, 1)]).unwrap();
    inv.reserve(id(2), Online, &[line(A, S, 1)]).unwrap();
    inv.reserve(id(3), Online, &[line(A, S, 1)]).unwrap();
    inv.commit(id(2)).unwrap();
    inv.release(id(3)).unwrap();
    assert_eq!(inv.reservation_count(), 3);
}

#[test]
fn saturated_deadline_is_overdue_at_once() {
    let (clock, inv) = setup();
    inv.restock(A, S, 10).unwrap();
    clock.advance(1_000);
    assert_eq!(
        inv.reserve_with_ttl(id(1), Online, &[line(A, S, 3)], u64::MAX),
        Ok(ack(1, Pending, false, Some(u64::MAX)))
    );
    // it holds its units until processed ...
    assert_eq!(lvl(&inv, A, S).reserved, 3);
    // ... and expire() processes it at once
    assert_eq!(inv.expire(), 1);
    assert_eq!(lvl(&inv, A, S).reserved, 0);
    let info = inv.get(id(1)).unwrap();
    assert_eq!((info.state, info.expires_at_ms), (Expired, u64::MAX));
}

#[test]
fn saturated_deadline_is_overdue_for_operations_naming_it() {
    let (clock, inv) = setup();
    inv.restock(A, S, 10).unwrap();
    clock.advance(1);
    inv.reserve_with_ttl(id(1), Online, &[line(A, S, 3)], u64::MAX)
        .unwrap();
    inv.reserve_with_ttl(id(2), Online, &[line(A, S, 3)], u64::MAX)
        .unwrap();
    inv.reserve_with_ttl(id(3), Online, &[line(A, S, 3)], u64::MAX)
        .unwrap();
    assert_eq!(inv.commit(id(1)), Err(Error::Expired { id: id(1) }));
    assert_eq!(inv.release(id(2)), Ok(ack(2, Expired, false, None)));
    assert_eq!(
        inv.reserve_with_ttl(id(3), Online, &[line(A, S, 3)], u64::MAX),
        Err(Error::Expired { id: id(3) })
    );
    assert_eq!(lvl(&inv, A, S), Level::new(10, 0, 0));
}

#[test]
fn saturated_extend_is_overdue_at_once() {
    let (clock, inv) = setup();
    inv.restock(A, S, 10).unwrap();
    clock.advance(1);
    inv.reserve_with_ttl(id(1), Online, &[line(A, S, 3)], 100)
        .unwrap();
    assert_eq!(
        inv.extend(id(1), u64::MAX),
        Ok(ack(1, Pending, false, Some(u64::MAX)))
    );
    assert_eq!(inv.expire(), 1);
}

#[test]
fn deadline_of_exactly_u64_max_is_not_saturated() {
    // now + ttl == u64::MAX does not overflow: the deadline is a real one
    let (clock, inv) = setup();
    inv.restock(A, S, 10).unwrap();
    clock.advance(1);
    inv.reserve_with_ttl(id(1), Online, &[line(A, S, 3)], u64::MAX - 1)
        .unwrap();
    assert_eq!(inv.expire(), 0);
    assert_eq!(inv.get(id(1)).unwrap().state, Pending);
    clock.advance(u64::MAX);
    assert_eq!(inv.expire(), 1);
}

#[test]
fn at_the_end_of_time_every_reservation_is_overdue_at_once() {
    let (clock, inv) = setup();
    inv.restock(A, S, 10).unwrap();
    assert_eq!(clock.advance(u64::MAX), u64::MAX);
    assert_eq!(clock.advance(5), u64::MAX);
    assert_eq!(inv.now_ms(), u64::MAX);
    assert_eq!(
        inv.reserve_with_ttl(id(1), Online, &[line(A, S, 3)], 1),
        Ok(ack(1, Pending, false, Some(u64::MAX)))
    );
    assert_eq!(inv.get(id(1)).unwrap().state, Expired);
}

// -------------------------------------------------------- dispatcher, errors

#[test]
fn apply_dispatches_every_command() {
    let (clock, inv) = setup();
    let lines = vec![line(A, S, 2)];
    let run = |c: Command| inv.apply(&c);
    assert_eq!(
        run(Command::Restock {
            sku: A,
            store: S,
            qty: 10
        }),
        Ok(Outcome::Level(Level::new(10, 0, 0)))
    );
    assert_eq!(
        run(Command::SetOnHand {
            sku: A,
            store: S,
            qty: 9,
            expect: None
        }),
        Ok(Outcome::Level(Level::new(9, 0, 0)))
    );
    assert_eq!(
        run(Command::SetSafetyStock {
            sku: A,
            store: S,
            qty: 1
        }),
        Ok(Outcome::Level(Level::new(9, 0, 1)))
    );
    assert_eq!(
        run(Command::Sell {
            sku: A,
            store: S,
            qty: 1,
            channel: InStore
        }),
        Ok(Outcome::Level(Level::new(8, 0, 1)))
    );
    assert_eq!(
        run(Command::Level { sku: A, store: S }),
        Ok(Outcome::Level(Level::new(8, 0, 1)))
    );
    assert_eq!(
        run(Command::Reserve {
            id: id(1),
            channel: Online,
            ttl_ms: Some(50),
            lines: lines.clone()
        }),
        Ok(Outcome::Reservation(ack(1, Pending, false, Some(50))))
    );
    clock.advance(10);
    assert_eq!(
        run(Command::Extend {
            id: id(1),
            ttl_ms: 50
        }),
        Ok(Outcome::Reservation(ack(1, Pending, false, Some(60))))
    );
    assert_eq!(
        run(Command::Get { id: id(1) }),
        Ok(Outcome::Info(ReservationInfo {
            id: id(1),
            state: Pending,
            channel: Online,
            lines: lines.clone(),
            expires_at_ms: 60
        }))
    );
    assert_eq!(
        run(Command::Commit {
            id: id(1),
            lines: None
        }),
        Ok(Outcome::Reservation(ack(1, Committed, false, None)))
    );
    assert_eq!(
        run(Command::Release { id: id(1) }),
        Err(Error::AlreadyCommitted { id: id(1) })
    );
    assert_eq!(run(Command::Expire), Ok(Outcome::Expired(0)));
}

#[test]
fn every_error_variant_has_its_contract_name() {
    let names = [
        (Error::Invalid { reason: "x" }, "invalid"),
        (
            Error::Overflow {
                sku: A,
                store: S,
                on_hand: 1,
                requested: 1,
            },
            "overflow",
        ),
        (
            Error::BelowReserved {
                sku: A,
                store: S,
                reserved: 1,
            },
            "below_reserved",
        ),
        (Error::UnknownItem { sku: A, store: S }, "unknown_item"),
        (
            Error::Insufficient {
                sku: A,
                store: S,
                requested: 1,
                available: 0,
            },
            "insufficient",
        ),
        (
            Error::UnknownReservation { id: id(1) },
            "unknown_reservation",
        ),
        (Error::AlreadyCommitted { id: id(1) }, "already_committed"),
        (Error::AlreadyReleased { id: id(1) }, "already_released"),
        (Error::Expired { id: id(1) }, "expired"),
        (Error::IdConflict { id: id(1) }, "id_conflict"),
    ];
    for (e, name) in names {
        assert_eq!(e.name(), name);
        assert!(!e.to_string().is_empty());
    }
}

#[test]
fn failed_operations_change_nothing() {
    let (clock, inv) = setup();
    inv.restock(A, S, u32::MAX - 1).unwrap();
    inv.restock(B, S, 3).unwrap();
    inv.set_safety_stock(B, S, 1);
    inv.reserve(id(1), InStore, &[line(B, S, 1)]).unwrap();
    inv.reserve(id(2), InStore, &[line(B, S, 1)]).unwrap();
    inv.commit(id(2)).unwrap();
    clock.advance(1);
    let before = sorted_items(&inv);
    let count = inv.reservation_count();
    assert!(inv.restock(A, S, 2).is_err());
    assert!(inv.set_on_hand(B, S, 0).is_err());
    assert!(inv.sell(B, S, 2, Online).is_err());
    assert!(inv.sell(C, S, 1, InStore).is_err());
    assert!(inv
        .reserve(id(3), Online, &[line(A, S, 1), line(B, S, 2)])
        .is_err());
    assert!(inv.reserve(id(1), Online, &[line(B, S, 1)]).is_err());
    assert!(inv.commit(id(9)).is_err());
    assert!(inv.release(id(2)).is_err());
    assert!(inv.extend(id(2), 5).is_err());
    assert_eq!(sorted_items(&inv), before);
    assert_eq!(inv.reservation_count(), count);
}

// ------------------------------------------------------------------ effects

/// Replays effect records into cells: `ItemCreated` starts an all-zero cell,
/// `Stock` and `SafetyStock` move it. Panics on an effect for an item never
/// created.
fn cells_from_effects(log: &[Vec<Effect>]) -> BTreeMap<ItemKey, (i64, i64, i64)> {
    let mut cells: BTreeMap<ItemKey, (i64, i64, i64)> = BTreeMap::new();
    for e in log.iter().flatten() {
        match e {
            Effect::ItemCreated { item } => {
                assert!(
                    cells.insert(*item, (0, 0, 0)).is_none(),
                    "{item} created twice"
                );
            }
            Effect::Stock {
                item,
                on_hand,
                reserved,
            } => {
                let c = cells
                    .get_mut(item)
                    .expect("stock effect for an item created");
                c.0 += on_hand;
                c.1 += reserved;
            }
            Effect::SafetyStock { item, delta } => {
                let c = cells
                    .get_mut(item)
                    .expect("safety effect for an item created");
                c.2 += delta;
            }
            _ => {}
        }
    }
    cells
}

fn assert_conserved(inv: &Inventory, log: &Log) {
    let cells = cells_from_effects(&log.lock().unwrap());
    let expected: BTreeMap<ItemKey, (i64, i64, i64)> = inv
        .items()
        .into_iter()
        .map(|(k, l)| {
            (
                k,
                (
                    i64::from(l.on_hand),
                    i64::from(l.reserved),
                    i64::from(l.safety_stock),
                ),
            )
        })
        .collect();
    assert_eq!(cells, expected, "effects do not add up to the stock");
}

fn take(log: &Log) -> Vec<Effect> {
    log.lock().unwrap().drain(..).flatten().collect()
}

/// Runs a scripted workload touching every kind of change, including lazy
/// expiry inside operations that then fail.
fn workload(clock: &ManualClock, inv: &Inventory) {
    inv.restock(A, S, 10).unwrap();
    inv.set_on_hand(B, S, 7).unwrap();
    inv.set_safety_stock(A, S, 2);
    inv.set_safety_stock(C, T, 5);
    inv.restock(C, T, 5).unwrap();
    inv.reserve_with_ttl(id(1), Online, &[line(A, S, 3), line(B, S, 2)], 10)
        .unwrap();
    inv.reserve_with_ttl(id(2), InStore, &[line(A, S, 4)], 100)
        .unwrap();
    inv.reserve_with_ttl(id(3), InStore, &[line(C, T, 5)], 100)
        .unwrap();
    inv.reserve_with_ttl(id(4), Online, &[line(B, S, 1)], 5)
        .unwrap();
    inv.reserve_with_ttl(id(5), Online, &[line(B, S, 1)], 5)
        .unwrap();
    inv.reserve_with_ttl(id(6), Online, &[line(B, S, 1)], 5)
        .unwrap();
    inv.sell(A, S, 1, InStore).unwrap();
    inv.set_on_hand(A, S, 11).unwrap();
    inv.commit(id(2)).unwrap();
    inv.release(id(3)).unwrap();
    inv.extend(id(1), 20).unwrap();
    clock.advance(5);
    // lazy expiry inside failing operations
    assert_eq!(inv.commit(id(4)), Err(Error::Expired { id: id(4) }));
    assert_eq!(
        inv.reserve(id(5), InStore, &[line(B, S, 1)]),
        Err(Error::IdConflict { id: id(5) })
    );
    // lazy expiry inside a succeeding one
    assert_eq!(inv.release(id(6)), Ok(ack(6, Expired, false, None)));
    // now + ttl overflows: overdue at once
    inv.reserve_with_ttl(id(7), Online, &[line(B, S, 1)], u64::MAX)
        .unwrap();
    assert_eq!(inv.expire(), 1); // id 7
    clock.advance(20);
    assert_eq!(inv.expire(), 1); // id 1
    inv.set_safety_stock(A, S, 0);
}

#[test]
fn effects_conserve_stock() {
    let (clock, inv, log) = setup_observed();
    workload(&clock, &inv);
    assert_conserved(&inv, &log);
}

#[test]
fn effects_conserve_stock_after_every_operation() {
    let (clock, inv, log) = setup_observed();
    inv.restock(A, S, 10).unwrap();
    assert_conserved(&inv, &log);
    inv.set_on_hand(A, S, 4).unwrap();
    assert_conserved(&inv, &log);
    inv.set_on_hand(A, S, 12).unwrap();
    assert_conserved(&inv, &log);
    inv.set_safety_stock(A, S, 3);
    assert_conserved(&inv, &log);
    inv.set_safety_stock(A, S, 1);
    assert_conserved(&inv, &log);
    inv.reserve_with_ttl(id(1), Online, &[line(A, S, 5)], 3)
        .unwrap();
    assert_conserved(&inv, &log);
    clock.advance(3);
    inv.get(id(1)).unwrap();
    assert_conserved(&inv, &log);
    inv.sell(A, S, 12, InStore).unwrap();
    assert_conserved(&inv, &log);
}

#[test]
fn failed_operations_emit_no_effects() {
    let (_, inv, log) = setup_observed();
    inv.restock(A, S, u32::MAX - 1).unwrap();
    inv.restock(B, S, 3).unwrap();
    inv.reserve(id(1), InStore, &[line(B, S, 1)]).unwrap();
    inv.reserve(id(2), InStore, &[line(B, S, 1)]).unwrap();
    inv.commit(id(2)).unwrap();
    take(&log);
    assert!(inv.restock(A, S, 0).is_err());
    assert!(inv.restock(C, S, 0).is_err());
    assert!(inv.restock(A, S, 2).is_err());
    assert!(inv.set_on_hand(B, S, 0).is_err());
    assert!(inv.sell(B, S, 0, InStore).is_err());
    assert!(inv.sell(B, S, 2, InStore).is_err());
    assert!(inv.sell(C, S, 1, InStore).is_err());
    assert!(inv.level(C, S).is_err());
    assert!(inv.reserve(id(3), Online, &[]).is_err());
    assert!(inv
        .reserve(id(3), Online, &[line(A, S, 1), line(B, S, 2)])
        .is_err());
    assert!(inv
        .reserve(id(3), Online, &[line(A, S, 1), line(C, S, 1)])
        .is_err());
    assert!(inv.reserve(id(1), Online, &[line(B, S, 1)]).is_err());
    assert!(inv.commit(id(9)).is_err());
    assert!(inv.release(id(9)).is_err());
    assert!(inv.release(id(2)).is_err());
    assert!(inv.extend(id(2), 5).is_err());
    assert!(inv.extend(id(1), 0).is_err());
    assert!(inv.get(id(9)).is_err());
    assert_eq!(take(&log), vec![]);
}

#[test]
fn replays_and_reads_emit_no_effects() {
    let (_, inv, log) = setup_observed();
    inv.restock(A, S, 10).unwrap();
    inv.reserve(id(1), InStore, &[line(A, S, 1)]).unwrap();
    inv.reserve(id(2), InStore, &[line(A, S, 1)]).unwrap();
    inv.commit(id(2)).unwrap();
    inv.reserve(id(3), InStore, &[line(A, S, 1)]).unwrap();
    inv.release(id(3)).unwrap();
    take(&log);
    inv.reserve(id(1), InStore, &[line(A, S, 1)]).unwrap();
    inv.reserve(id(2), InStore, &[line(A, S, 1)]).unwrap();
    inv.commit(id(2)).unwrap();
    inv.release(id(3)).unwrap();
    inv.level(A, S).unwrap();
    inv.get(id(1)).unwrap();
    assert_eq!(inv.expire(), 0);
    assert_eq!(take(&log), vec![]);
}

#[test]
fn each_reservation_gets_exactly_one_finished_effect() {
    let (clock, inv, log) = setup_observed();
    workload(&clock, &inv);
    // touch everything again: replays and reads must not finish anything twice
    for n in 1..=7 {
        let _ = inv.commit(id(n));
        let _ = inv.release(id(n));
        let _ = inv.get(id(n));
    }
    inv.expire();
    let mut finished: BTreeMap<ReservationId, Vec<(ReservationState, u64)>> = BTreeMap::new();
    for e in take(&log) {
        if let Effect::Finished { id, state, at_ms } = e {
            finished.entry(id).or_default().push((state, at_ms));
        }
    }
    let expected: BTreeMap<ReservationId, Vec<(ReservationState, u64)>> = [
        (id(1), vec![(Expired, 25)]),
        (id(2), vec![(Committed, 0)]),
        (id(3), vec![(Released, 0)]),
        (id(4), vec![(Expired, 5)]),
        (id(5), vec![(Expired, 5)]),
        (id(6), vec![(Expired, 5)]),
        (id(7), vec![(Expired, 5)]),
    ]
    .into_iter()
    .collect();
    assert_eq!(finished, expected);
    for n in 1..=7 {
        assert_eq!(inv.get(id(n)).unwrap().state, expected[&id(n)][0].0);
    }
}

#[test]
fn each_successful_reserve_gets_one_reserved_effect() {
    let (_, inv, log) = setup_observed();
    inv.restock(A, S, 10).unwrap();
    take(&log);
    let lines = vec![line(A, S, 2)];
    inv.reserve_with_ttl(id(1), Online, &lines, 30).unwrap();
    inv.reserve_with_ttl(id(1), Online, &lines, 30).unwrap();
    let reserved: Vec<Effect> = take(&log)
        .into_iter()
        .filter(|e| matches!(e, Effect::Reserved { .. }))
        .collect();
    assert_eq!(
        reserved,
        vec![Effect::Reserved {
            id: id(1),
            channel: Online,
            lines,
            expires_at_ms: 30,
            campaign: None,
            customer: None,
        }]
    );
}

#[test]
fn retention_emits_forgotten() {
    let (clock, inv, log) = setup_observed();
    workload(&clock, &inv);
    take(&log);
    clock.advance(DEFAULT_RETENTION_MS);
    inv.expire();
    let mut forgotten: Vec<ReservationId> = take(&log)
        .into_iter()
        .filter_map(|e| match e {
            Effect::Forgotten { id } => Some(id),
            _ => None,
        })
        .collect();
    forgotten.sort();
    assert_eq!(forgotten, (1..=7).map(id).collect::<Vec<_>>());
    assert_eq!(inv.reservation_count(), 0);
}

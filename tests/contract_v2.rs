//! One test per rule of the v2 fulfilment contract (`docs/CONTRACT.md`,
//! "v2: fulfilment"): partial commit, POS basket, compare-and-set cycle
//! count, `reserve_any` and `check`. Each request runs on the engine and on
//! the reference model side by side, which must answer alike; the tests
//! then state the answer the contract gives. The last tests run threads
//! against one engine (bounded in operations, no timing).

use omnistock::model::{same_answer, ReferenceModel};
use omnistock::{
    Channel, CheckReport, Command, Error, FewestStores, Inventory, Level, Line, ManualClock,
    MostAvailableFirst, Outcome, ReservationAck, ReservationId, ReservationLines, ReservationState,
    Sku, SourceRequest, StoreId, MAX_LINES,
};
use std::sync::Arc;
use std::thread;

const A: Sku = Sku(1);
const B: Sku = Sku(2);
const S: StoreId = StoreId(10);
const T: StoreId = StoreId(20);
const U: StoreId = StoreId(30);
const NEVER: StoreId = StoreId(99);

use Channel::{InStore, Online};
use ReservationState::{Committed, Expired, Pending, Released};

/// An engine on a manual clock and the model, driven together.
struct Both {
    clock: Arc<ManualClock>,
    engine: Inventory,
    model: ReferenceModel,
}

impl Both {
    fn new() -> Self {
        let clock = Arc::new(ManualClock::new());
        let engine = Inventory::builder().clock(clock.clone()).build();
        Both {
            clock,
            engine,
            model: ReferenceModel::new(),
        }
    }

    /// Runs `command` on both; they must agree. Returns the engine's answer.
    fn run(&mut self, command: Command) -> Result<Outcome, Error> {
        let engine = self.engine.apply(&command);
        let model = self.model.apply(&command);
        assert!(
            same_answer(&engine, &model),
            "{command:?}: engine {engine:?}, model {model:?}"
        );
        assert_eq!(self.engine.items(), self.model.items(), "after {command:?}");
        engine
    }

    fn advance(&mut self, ms: u64) {
        self.clock.advance(ms);
        self.model.advance(ms);
    }

    fn stock(&mut self, sku: Sku, store: StoreId, qty: u32) {
        self.run(Command::Restock { sku, store, qty }).unwrap();
    }

    fn level(&mut self, sku: Sku, store: StoreId) -> Level {
        match self.run(Command::Level { sku, store }) {
            Ok(Outcome::Level(level)) => level,
            other => panic!("{other:?}"),
        }
    }

    fn reserve(&mut self, id: u64, lines: &[Line]) -> Result<Outcome, Error> {
        self.run(Command::Reserve {
            id: ReservationId(id),
            channel: Online,
            ttl_ms: Some(1_000),
            lines: lines.to_vec(),
        })
    }

    fn commit(&mut self, id: u64, lines: Option<&[Line]>) -> Result<Outcome, Error> {
        self.run(Command::Commit {
            id: ReservationId(id),
            lines: lines.map(<[Line]>::to_vec),
        })
    }

    fn any(
        &mut self,
        id: u64,
        qty: u32,
        stores: &[StoreId],
        split: bool,
    ) -> Result<Outcome, Error> {
        self.any_on(id, A, qty, stores, split, Online)
    }

    fn any_on(
        &mut self,
        id: u64,
        sku: Sku,
        qty: u32,
        stores: &[StoreId],
        split: bool,
        channel: Channel,
    ) -> Result<Outcome, Error> {
        self.run(Command::ReserveAny {
            id: ReservationId(id),
            sku,
            qty,
            stores: stores.to_vec(),
            split,
            channel,
            ttl_ms: Some(1_000),
        })
    }

    fn sell_lines(&mut self, lines: &[Line], channel: Channel) -> Result<Outcome, Error> {
        self.run(Command::SellLines {
            lines: lines.to_vec(),
            channel,
        })
    }

    fn count(&mut self, qty: u32, expect: u32) -> Result<Outcome, Error> {
        self.run(Command::SetOnHand {
            sku: A,
            store: S,
            qty,
            expect: Some(expect),
        })
    }

    fn state(&mut self, id: u64) -> ReservationState {
        match self.run(Command::Get {
            id: ReservationId(id),
        }) {
            Ok(Outcome::Info(info)) => info.state,
            other => panic!("{other:?}"),
        }
    }
}

fn line(sku: Sku, store: StoreId, qty: u32) -> Line {
    Line::new(sku, store, qty)
}

fn with_lines(
    id: u64,
    state: ReservationState,
    replayed: bool,
    expires: Option<u64>,
    lines: &[Line],
) -> Result<Outcome, Error> {
    Ok(Outcome::ReservationLines(ReservationLines {
        ack: ReservationAck {
            id: ReservationId(id),
            state,
            replayed,
            expires_at_ms: expires,
        },
        lines: lines.to_vec(),
    }))
}

fn is_invalid(answer: &Result<Outcome, Error>) -> bool {
    matches!(answer, Err(Error::Invalid { .. }))
}

// ----- partial commit

#[test]
fn partial_commit_takes_the_picked_units_and_returns_the_rest_of_every_line() {
    let mut t = Both::new();
    t.stock(A, S, 10);
    t.stock(B, S, 10);
    t.reserve(1, &[line(A, S, 4), line(B, S, 3)]).unwrap();
    // B is not listed: it commits 0.
    assert_eq!(
        t.commit(1, Some(&[line(A, S, 3)])),
        with_lines(1, Committed, false, None, &[line(A, S, 3), line(B, S, 0)])
    );
    assert_eq!(t.level(A, S), Level::new(7, 0, 0));
    assert_eq!(t.level(B, S), Level::new(10, 0, 0));
}

#[test]
fn partial_commit_of_no_lines_commits_zero_on_every_line() {
    let mut t = Both::new();
    t.stock(A, S, 5);
    t.reserve(1, &[line(A, S, 2)]).unwrap();
    assert_eq!(
        t.commit(1, Some(&[])),
        with_lines(1, Committed, false, None, &[line(A, S, 0)])
    );
    assert_eq!(t.level(A, S), Level::new(5, 0, 0));
    assert_eq!(t.state(1), Committed);
}

#[test]
fn partial_commit_refuses_a_stranger_a_repeat_or_an_excess_and_changes_nothing() {
    let mut t = Both::new();
    t.stock(A, S, 5);
    t.stock(B, S, 5);
    t.reserve(1, &[line(A, S, 2)]).unwrap();
    for lines in [
        vec![line(B, S, 1)],
        vec![line(A, T, 1)],
        vec![line(A, S, 1), line(A, S, 1)],
        vec![line(A, S, 3)],
    ] {
        assert!(is_invalid(&t.commit(1, Some(&lines))), "{lines:?}");
        assert_eq!(t.level(A, S), Level::new(5, 2, 0));
        assert_eq!(t.state(1), Pending);
    }
    // The full quantity is allowed.
    assert!(t.commit(1, Some(&[line(A, S, 2)])).is_ok());
    assert_eq!(t.level(A, S), Level::new(3, 0, 0));
}

#[test]
fn a_replayed_commit_answers_what_was_committed_the_first_time_whatever_it_lists() {
    let mut t = Both::new();
    t.stock(A, S, 10);
    t.reserve(1, &[line(A, S, 4)]).unwrap();
    t.commit(1, Some(&[line(A, S, 1)])).unwrap();
    let again = with_lines(1, Committed, true, None, &[line(A, S, 1)]);
    assert_eq!(t.commit(1, Some(&[line(A, S, 4)])), again);
    assert_eq!(t.commit(1, Some(&[line(B, U, 99)])), again, "not invalid");
    // Without lines, the v1 answer.
    assert!(matches!(
        t.commit(1, None),
        Ok(Outcome::Reservation(ReservationAck { replayed: true, .. }))
    ));
    // A full commit counts as full quantities.
    t.reserve(2, &[line(A, S, 2)]).unwrap();
    t.commit(2, None).unwrap();
    assert_eq!(
        t.commit(2, Some(&[])),
        with_lines(2, Committed, true, None, &[line(A, S, 2)])
    );
    assert_eq!(t.level(A, S), Level::new(7, 0, 0));
}

#[test]
fn partial_commit_checks_the_reservation_before_its_lines() {
    let mut t = Both::new();
    t.stock(A, S, 10);
    let bad = [line(B, U, 1)];
    assert_eq!(
        t.commit(9, Some(&bad)),
        Err(Error::UnknownReservation {
            id: ReservationId(9)
        })
    );
    t.reserve(1, &[line(A, S, 1)]).unwrap();
    t.run(Command::Release {
        id: ReservationId(1),
    })
    .unwrap();
    assert_eq!(
        t.commit(1, Some(&bad)),
        Err(Error::AlreadyReleased {
            id: ReservationId(1)
        })
    );
    // Lazy expiry first: an overdue reservation answers expired.
    t.reserve(2, &[line(A, S, 1)]).unwrap();
    t.advance(1_000);
    assert_eq!(
        t.commit(2, Some(&[line(A, S, 1)])),
        Err(Error::Expired {
            id: ReservationId(2)
        })
    );
    assert_eq!(t.level(A, S), Level::new(10, 0, 0));
}

#[test]
fn get_reports_a_partially_committed_reservation_as_reserved() {
    let mut t = Both::new();
    t.stock(A, S, 10);
    t.reserve(1, &[line(A, S, 4)]).unwrap();
    t.commit(1, Some(&[line(A, S, 1)])).unwrap();
    match t.run(Command::Get {
        id: ReservationId(1),
    }) {
        Ok(Outcome::Info(info)) => assert_eq!(info.lines, [line(A, S, 4)]),
        other => panic!("{other:?}"),
    }
}

// ----- POS basket

#[test]
fn a_basket_sells_every_line_and_answers_the_levels_in_line_order() {
    let mut t = Both::new();
    t.stock(A, S, 5);
    t.stock(B, S, 3);
    assert_eq!(
        t.sell_lines(&[line(B, S, 1), line(A, S, 2)], InStore),
        Ok(Outcome::Levels(vec![
            Level::new(2, 0, 0),
            Level::new(3, 0, 0)
        ]))
    );
}

#[test]
fn a_basket_is_all_or_nothing_and_checks_its_lines_in_order() {
    let mut t = Both::new();
    t.stock(A, S, 5);
    t.stock(B, S, 1);
    // The second line is short: nothing is sold.
    assert_eq!(
        t.sell_lines(&[line(A, S, 2), line(B, S, 2)], InStore),
        Err(Error::Insufficient {
            sku: B,
            store: S,
            requested: 2,
            available: 1
        })
    );
    assert_eq!(t.level(A, S).on_hand, 5);
    // A short line before an unknown one is reported first, and the reverse.
    assert!(matches!(
        t.sell_lines(&[line(B, S, 2), line(A, U, 1)], InStore),
        Err(Error::Insufficient { sku: B, .. })
    ));
    assert_eq!(
        t.sell_lines(&[line(A, U, 1), line(B, S, 2)], InStore),
        Err(Error::UnknownItem { sku: A, store: U })
    );
}

#[test]
fn an_online_basket_leaves_the_safety_stock_and_the_reserved_units() {
    let mut t = Both::new();
    t.stock(A, S, 5);
    t.run(Command::SetSafetyStock {
        sku: A,
        store: S,
        qty: 2,
    })
    .unwrap();
    t.reserve(1, &[line(A, S, 1)]).unwrap();
    assert!(matches!(
        t.sell_lines(&[line(A, S, 3)], Online),
        Err(Error::Insufficient { available: 2, .. })
    ));
    assert!(t.sell_lines(&[line(A, S, 4)], InStore).is_ok());
    assert_eq!(t.level(A, S), Level::new(1, 1, 2));
}

#[test]
fn a_malformed_basket_is_invalid() {
    let mut t = Both::new();
    t.stock(A, S, 5);
    let many: Vec<Line> = (0..=MAX_LINES as u64)
        .map(|n| line(Sku(100 + n), S, 1))
        .collect();
    for lines in [
        vec![],
        many,
        vec![line(A, S, 0)],
        vec![line(A, S, 1), line(A, S, 1)],
    ] {
        assert!(is_invalid(&t.sell_lines(&lines, InStore)));
    }
    assert_eq!(t.level(A, S).on_hand, 5);
}

// ----- compare-and-set cycle count

#[test]
fn a_count_expecting_another_on_hand_is_stale_with_the_count_now() {
    let mut t = Both::new();
    t.stock(A, S, 10);
    assert_eq!(t.count(8, 9), Err(Error::Stale { on_hand: 10 }));
    assert_eq!(t.level(A, S).on_hand, 10);
    assert_eq!(t.count(8, 10), Ok(Outcome::Level(Level::new(8, 0, 0))));
}

#[test]
fn stale_is_checked_before_below_reserved() {
    let mut t = Both::new();
    t.stock(A, S, 10);
    t.reserve(1, &[line(A, S, 6)]).unwrap();
    assert_eq!(t.count(2, 7), Err(Error::Stale { on_hand: 10 }));
    assert!(matches!(
        t.count(2, 10),
        Err(Error::BelowReserved { reserved: 6, .. })
    ));
}

#[test]
fn an_unknown_item_counts_as_zero_on_hand() {
    let mut t = Both::new();
    assert_eq!(t.count(4, 1), Err(Error::Stale { on_hand: 0 }));
    assert!(t.engine.items().is_empty(), "a stale count creates nothing");
    assert_eq!(t.count(4, 0), Ok(Outcome::Level(Level::new(4, 0, 0))));
}

// ----- reserve_any

#[test]
fn reserve_any_takes_the_first_store_in_order_with_the_whole_quantity() {
    let mut t = Both::new();
    t.stock(A, S, 2);
    t.stock(A, T, 5);
    t.stock(A, U, 9);
    // NEVER has no such item: skipped. S is short. T is first with enough.
    assert_eq!(
        t.any(1, 4, &[NEVER, S, T, U], false),
        with_lines(1, Pending, false, Some(1_000), &[line(A, T, 4)])
    );
    assert_eq!(t.level(A, T), Level::new(5, 4, 0));
}

#[test]
fn without_split_insufficient_reports_the_most_one_store_had() {
    let mut t = Both::new();
    t.stock(A, S, 2);
    t.stock(A, T, 3);
    assert_eq!(
        t.any(1, 4, &[S, T, NEVER], false),
        Err(Error::InsufficientAcross {
            sku: A,
            requested: 4,
            available: 3
        })
    );
    assert_eq!(t.level(A, T).reserved, 0);
}

#[test]
fn with_split_it_takes_from_the_stores_in_order_until_nothing_remains() {
    let mut t = Both::new();
    t.stock(A, S, 2);
    t.stock(A, T, 1);
    t.stock(A, U, 5);
    t.any_on(9, A, 1, &[T], false, InStore).unwrap(); // T gives nothing now
    assert_eq!(
        t.any(1, 4, &[S, T, U], true),
        with_lines(
            1,
            Pending,
            false,
            Some(1_000),
            &[line(A, S, 2), line(A, U, 2)]
        )
    );
    assert_eq!(
        t.any(2, 4, &[S, T, U], true),
        Err(Error::InsufficientAcross {
            sku: A,
            requested: 4,
            available: 3
        })
    );
}

#[test]
fn reserve_any_of_an_item_unknown_at_every_store_is_unknown_item_without_a_store() {
    let mut t = Both::new();
    t.stock(B, S, 5);
    assert_eq!(
        t.any(1, 1, &[S, NEVER], true),
        Err(Error::UnknownSku { sku: A })
    );
    assert_eq!(Error::UnknownSku { sku: A }.name(), "unknown_item");
    assert_eq!(
        Error::InsufficientAcross {
            sku: A,
            requested: 1,
            available: 0
        }
        .name(),
        "insufficient"
    );
}

#[test]
fn a_malformed_reserve_any_is_invalid_before_lazy_expiry() {
    let mut t = Both::new();
    t.stock(A, S, 5);
    t.any(1, 2, &[S], false).unwrap();
    t.advance(1_000); // overdue, not yet expired
    let many: Vec<StoreId> = (0..=MAX_LINES as u64).map(StoreId).collect();
    for (qty, stores) in [(0, vec![S]), (1, vec![]), (1, vec![S, T, S]), (1, many)] {
        assert!(is_invalid(&t.any(1, qty, &stores, false)));
    }
    assert!(is_invalid(&t.run(Command::ReserveAny {
        id: ReservationId(1),
        sku: A,
        qty: 2,
        stores: vec![S],
        split: false,
        channel: Online,
        ttl_ms: Some(0),
    })));
    assert_eq!(t.level(A, S).reserved, 2, "no lazy expiry happened");
}

#[test]
fn reserve_any_is_idempotent_for_the_same_sku_stores_and_total() {
    let mut t = Both::new();
    t.stock(A, S, 2);
    t.stock(A, T, 5);
    let held = [line(A, S, 2), line(A, T, 1)];
    t.any(1, 3, &[S, T], true).unwrap();
    // Same request: other store order, more candidates, split or not.
    for (stores, split) in [(vec![T, S], true), (vec![U, S, T], false)] {
        assert_eq!(
            t.any(1, 3, &stores, split),
            with_lines(1, Pending, true, Some(1_000), &held)
        );
    }
    let conflict = Err(Error::IdConflict {
        id: ReservationId(1),
    });
    assert_eq!(t.any(1, 2, &[S, T], true), conflict, "another total");
    assert_eq!(t.any(1, 3, &[S, U], true), conflict, "a store left out");
    assert_eq!(t.any_on(1, A, 3, &[S, T], true, InStore), conflict);
    assert_eq!(t.any_on(1, B, 3, &[S, T], true, Online), conflict);
    assert_eq!(t.level(A, S).reserved + t.level(A, T).reserved, 3);
    t.commit(1, None).unwrap();
    assert_eq!(
        t.any(1, 3, &[S, T], true),
        with_lines(1, Committed, true, None, &held)
    );
    // Released and expired ones answer their errors.
    t.stock(A, U, 5);
    t.any(2, 1, &[U], false).unwrap();
    t.run(Command::Release {
        id: ReservationId(2),
    })
    .unwrap();
    assert_eq!(
        t.any(2, 1, &[U], false),
        Err(Error::AlreadyReleased {
            id: ReservationId(2)
        })
    );
    t.any(3, 1, &[U], false).unwrap();
    t.advance(1_000);
    assert_eq!(
        t.any(3, 1, &[U], false),
        Err(Error::Expired {
            id: ReservationId(3)
        })
    );
    assert_eq!(t.state(3), Expired);
}

#[test]
fn reserve_any_respects_the_channel_and_makes_an_ordinary_reservation() {
    let mut t = Both::new();
    t.stock(A, S, 3);
    t.run(Command::SetSafetyStock {
        sku: A,
        store: S,
        qty: 2,
    })
    .unwrap();
    t.stock(A, T, 2);
    assert_eq!(
        t.any(1, 2, &[S, T], false),
        with_lines(1, Pending, false, Some(1_000), &[line(A, T, 2)])
    );
    assert_eq!(
        t.any_on(2, A, 2, &[S, T], false, InStore),
        with_lines(2, Pending, false, Some(1_000), &[line(A, S, 2)])
    );
    // A plain reserve of the same lines is the same request for reserve.
    assert!(matches!(
        t.run(Command::Reserve {
            id: ReservationId(1),
            channel: Online,
            ttl_ms: None,
            lines: vec![line(A, T, 2)],
        }),
        Ok(Outcome::Reservation(ReservationAck { replayed: true, .. }))
    ));
    t.run(Command::Release {
        id: ReservationId(2),
    })
    .unwrap();
    t.commit(1, Some(&[line(A, T, 1)])).unwrap();
    assert_eq!(t.level(A, S), Level::new(3, 0, 2));
    assert_eq!(t.level(A, T), Level::new(1, 0, 0));
    assert_eq!(t.state(2), Released);
}

#[test]
fn a_sourcing_strategy_orders_the_candidates_before_the_reservation() {
    let inventory = Inventory::new();
    inventory.restock(A, S, 2).unwrap();
    inventory.restock(A, T, 9).unwrap();
    inventory.restock(A, U, 4).unwrap();
    let stores = [S, T, U];
    let request = SourceRequest::new(A, 3, &stores);
    let most = inventory
        .reserve_ranked(
            ReservationId(1),
            Online,
            &request,
            1_000,
            &MostAvailableFirst,
        )
        .unwrap();
    assert_eq!(most.lines, [line(A, T, 3)]);
    // FewestStores: the first in the caller's order with all of them.
    let fewest = inventory
        .reserve_ranked(ReservationId(2), Online, &request, 1_000, &FewestStores)
        .unwrap();
    assert_eq!(fewest.lines, [line(A, T, 3)]);
    let big = SourceRequest::new(A, 9, &stores).split();
    let split = inventory
        .reserve_ranked(ReservationId(3), Online, &big, 1_000, &FewestStores)
        .unwrap();
    assert_eq!(split.lines, [line(A, U, 4), line(A, T, 3), line(A, S, 2)]);
}

#[test]
fn network_availability_sums_one_skus_stores_per_channel() {
    let inventory = Inventory::new();
    inventory.restock(A, S, 4).unwrap();
    inventory.restock(A, T, 3).unwrap();
    inventory.set_safety_stock(A, T, 2);
    inventory.restock(B, S, 100).unwrap();
    inventory
        .reserve(ReservationId(1), InStore, &[line(A, S, 1)])
        .unwrap();
    assert_eq!(inventory.network_available(A, Online), 4);
    assert_eq!(inventory.network_available(A, InStore), 6);
    assert_eq!(inventory.network_available(Sku(77), Online), 0);
    assert_eq!(inventory.store_availability(A, Online), [(S, 3), (T, 1)]);
}

// ----- check

#[test]
fn check_counts_every_pending_reservation_overdue_ones_included() {
    let mut t = Both::new();
    t.stock(A, S, 10);
    t.stock(A, T, 10);
    t.reserve(1, &[line(A, S, 2), line(A, T, 3)]).unwrap();
    t.any(2, 12, &[S, T], true).unwrap();
    t.commit(2, Some(&[line(A, T, 1)])).unwrap();
    t.advance(5_000); // 1 is overdue, not expired
    let consistent = Ok(Outcome::Check(CheckReport {
        consistent: true,
        items: vec![],
    }));
    assert_eq!(t.run(Command::Check), consistent);
    assert_eq!(t.level(A, S).reserved, 2);
    t.run(Command::Expire).unwrap();
    assert_eq!(t.run(Command::Check), consistent);
}

// ----- under concurrency

/// Threads reserve (plain, `reserve_any` split over two stores), commit in
/// part or in full, release, sell and sell baskets while another runs
/// `check` over and over: every check is consistent, and at the end the
/// units are conserved.
#[test]
fn check_stays_exact_while_threads_reserve_commit_and_sell() {
    let inventory = Arc::new(Inventory::new());
    let stores = [S, T];
    for store in stores {
        inventory.restock(A, store, 1_000_000).unwrap();
        inventory.restock(B, store, 1_000_000).unwrap();
    }
    const ROUNDS: u64 = 3_000;
    let workers: Vec<_> = (0..3u64)
        .map(|worker| {
            let inventory = inventory.clone();
            thread::spawn(move || {
                for round in 0..ROUNDS {
                    let id = ReservationId(worker * 1_000_000 + round);
                    let request = SourceRequest::new(A, 1 + (round % 3) as u32, &stores).split();
                    let held = inventory.reserve_any(id, Online, &request, 60_000).unwrap();
                    match round % 3 {
                        0 => drop(inventory.commit(id).unwrap()),
                        1 => drop(inventory.commit_lines(id, &held.lines[..1]).unwrap()),
                        _ => drop(inventory.release(id).unwrap()),
                    }
                    let basket = [line(A, S, 1), line(B, T, 1)];
                    inventory.sell_lines(&basket, InStore).unwrap();
                    inventory
                        .reserve(ReservationId(id.0 + 500_000), InStore, &[line(B, S, 1)])
                        .unwrap();
                }
            })
        })
        .collect();
    let mut checks = 0;
    while !workers.iter().all(|w| w.is_finished()) && checks < 100_000 {
        let report = inventory.check();
        assert!(report.consistent, "{report:?}");
        checks += 1;
    }
    for worker in workers {
        worker.join().unwrap();
    }
    assert!(inventory.check().consistent);
    // 3 workers x ROUNDS plain reserves of B at S stay pending.
    assert_eq!(inventory.level(B, S).unwrap().reserved, 3 * ROUNDS as u32);
    assert_eq!(inventory.level(A, S).unwrap().reserved, 0);
}

/// `reserve_any` splitting over two stores while other threads sell from
/// one of them never takes more than a store had: every reservation is for
/// its whole quantity, and each store ends with `reserved <= on_hand` and
/// its units conserved.
#[test]
fn reserve_any_never_takes_more_than_a_store_had_while_it_sells() {
    let inventory = Arc::new(Inventory::new());
    inventory.restock(A, S, 300).unwrap();
    inventory.restock(A, T, 300).unwrap();
    let stores = [S, T];
    let sourcing: Vec<_> = (0..2u64)
        .map(|worker| {
            let inventory = inventory.clone();
            thread::spawn(move || {
                let mut held = 0u32;
                for round in 0..400 {
                    let id = ReservationId(worker * 10_000 + round);
                    let request = SourceRequest::new(A, 3, &stores).split();
                    match inventory.reserve_any(id, Online, &request, 60_000) {
                        Ok(done) => {
                            assert_eq!(done.lines.iter().map(|l| l.qty).sum::<u32>(), 3);
                            held += 3;
                        }
                        Err(Error::InsufficientAcross { available, .. }) => {
                            assert!(available < 3)
                        }
                        Err(other) => panic!("{other}"),
                    }
                }
                held
            })
        })
        .collect();
    let selling = {
        let inventory = inventory.clone();
        thread::spawn(move || {
            let mut sold = 0;
            for _ in 0..400 {
                if inventory.sell(A, S, 1, InStore).is_ok() {
                    sold += 1;
                }
            }
            sold
        })
    };
    let held: u32 = sourcing.into_iter().map(|w| w.join().unwrap()).sum();
    let sold: u32 = selling.join().unwrap();
    let (s, t) = (
        inventory.level(A, S).unwrap(),
        inventory.level(A, T).unwrap(),
    );
    assert!(s.reserved <= s.on_hand && t.reserved <= t.on_hand);
    assert_eq!(s.on_hand, 300 - sold);
    assert_eq!(t.on_hand, 300);
    assert_eq!(s.reserved + t.reserved, held);
    assert!(inventory.check().consistent);
}

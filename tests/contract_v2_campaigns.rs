//! One test per rule of the v2 campaign and alert contract
//! (`docs/CONTRACT.md`, "v2: campaigns and alerts"): quotas and
//! per-customer limits with their order of checks, the units given back,
//! reorder points and one alert per crossing. Requests run on the engine
//! and the reference model in lockstep (`omnistock::model::Lockstep`),
//! which must answer alike; the tests then state the contract's answer.
//! The Rust-only parts (ending a campaign, the alert observer, effect
//! records, counter memory) and a few threads on one campaign close it.

use omnistock::model::Lockstep;
use omnistock::{
    Alert, CampaignId, Channel, Command, CustomerId, Effect, Error, Inventory, ItemKey, Level,
    Line, Outcome, ReservationAck, ReservationId, ReservationState, Sku, StoreId,
    DEFAULT_RETENTION_MS, DEFAULT_TTL_MS,
};
use std::sync::{Arc, Mutex};
use std::thread;

const A: Sku = Sku(1);
const B: Sku = Sku(2);
const S: StoreId = StoreId(10);
const SALE: CampaignId = CampaignId(5);

fn id(n: u64) -> ReservationId {
    ReservationId(n)
}

fn who(n: u64) -> CustomerId {
    CustomerId(n)
}

fn run() -> Lockstep {
    Lockstep::new(DEFAULT_TTL_MS, DEFAULT_RETENTION_MS, |builder| builder)
}

fn apply(run: &mut Lockstep, command: Command) -> Result<Outcome, Error> {
    let answer = run
        .apply(&command)
        .unwrap_or_else(|disagreement| panic!("{command:?}: {disagreement}"));
    run.check_state().unwrap();
    answer
}

fn restock(run: &mut Lockstep, sku: Sku, qty: u32) {
    apply(run, Command::Restock { sku, store: S, qty }).unwrap();
}

fn campaign(run: &mut Lockstep, quota: u32, per_customer: u32) -> Result<Outcome, Error> {
    apply(
        run,
        Command::Campaign {
            campaign: SALE,
            sku: A,
            store: S,
            quota,
            per_customer,
        },
    )
}

fn reserve_in(
    run: &mut Lockstep,
    n: u64,
    customer: u64,
    qty: u32,
    ttl_ms: Option<u64>,
) -> Result<Outcome, Error> {
    apply(
        run,
        Command::ReserveCampaign {
            id: id(n),
            channel: Channel::Online,
            ttl_ms,
            lines: vec![Line::new(A, S, qty)],
            campaign: Some(SALE),
            customer: Some(who(customer)),
        },
    )
}

fn held(answer: Result<Outcome, Error>) -> ReservationAck {
    match answer {
        Ok(Outcome::Reservation(ack)) => ack,
        other => panic!("expected a reservation, got {other:?}"),
    }
}

fn alerts(run: &mut Lockstep) -> Vec<Alert> {
    match apply(run, Command::Alerts) {
        Ok(Outcome::Alerts(alerts)) => alerts,
        other => panic!("expected alerts, got {other:?}"),
    }
}

fn alert(sku: Sku, available_online: u32, reorder_point: u32) -> Alert {
    Alert {
        sku,
        store: S,
        available_online,
        reorder_point,
    }
}

// ------------------------------------------------------------ campaigns

#[test]
fn a_campaign_counts_quota_and_customer_over_pending_reservations() {
    let mut run = run();
    restock(&mut run, A, 100);
    assert_eq!(
        campaign(&mut run, 3, 2),
        Ok(Outcome::Done(omnistock::Done {}))
    );
    held(reserve_in(&mut run, 1, 1, 2, None));
    assert_eq!(
        reserve_in(&mut run, 2, 1, 1, None),
        Err(Error::CustomerLimit {
            campaign: SALE,
            customer: who(1),
            remaining: 0
        })
    );
    assert_eq!(
        reserve_in(&mut run, 2, 2, 2, None),
        Err(Error::QuotaExhausted {
            campaign: SALE,
            remaining: 1
        })
    );
    held(reserve_in(&mut run, 2, 2, 1, None));
    assert_eq!(run.engine().campaign(SALE).unwrap().used, 3);
    assert_eq!(run.engine().campaign(SALE).unwrap().customers, 2);
}

#[test]
fn the_quota_is_checked_before_the_customer_and_both_before_the_stock() {
    let mut run = run();
    campaign(&mut run, 1, 1).unwrap();
    // Quota first: 2 > 1, though the customer limit also refuses.
    assert_eq!(
        reserve_in(&mut run, 1, 1, 2, None),
        Err(Error::QuotaExhausted {
            campaign: SALE,
            remaining: 1
        })
    );
    // Campaign checks pass, then the item is unknown.
    assert_eq!(
        reserve_in(&mut run, 1, 1, 1, None),
        Err(Error::UnknownItem { sku: A, store: S })
    );
    restock(&mut run, A, 1);
    apply(
        &mut run,
        Command::SetSafetyStock {
            sku: A,
            store: S,
            qty: 1,
        },
    )
    .unwrap();
    assert_eq!(
        reserve_in(&mut run, 1, 1, 1, None),
        Err(Error::Insufficient {
            sku: A,
            store: S,
            requested: 1,
            available: 0
        })
    );
    // Nothing stayed counted from the refusals.
    assert_eq!(run.engine().campaign(SALE).unwrap().used, 0);
    assert_eq!(run.engine().campaign_customer_used(SALE, who(1)), 0);
}

#[test]
fn malformed_campaign_requests_are_invalid_before_lazy_expiry() {
    let mut run = run();
    restock(&mut run, A, 10);
    campaign(&mut run, 5, 5).unwrap();
    held(reserve_in(&mut run, 1, 1, 1, Some(5)));
    run.advance(5).unwrap();
    let base = |lines: Vec<Line>, campaign: Option<CampaignId>, customer: Option<CustomerId>| {
        Command::ReserveCampaign {
            id: id(1),
            channel: Channel::Online,
            ttl_ms: None,
            lines,
            campaign,
            customer,
        }
    };
    for command in [
        base(vec![Line::new(A, S, 1)], Some(SALE), None),
        base(vec![Line::new(A, S, 1)], None, Some(who(1))),
        base(
            vec![Line::new(A, S, 1), Line::new(B, S, 1)],
            Some(SALE),
            Some(who(1)),
        ),
        base(vec![Line::new(A, S, 0)], Some(SALE), Some(who(1))),
        base(Vec::new(), Some(SALE), Some(who(1))),
    ] {
        assert!(matches!(
            apply(&mut run, command),
            Err(Error::Invalid { .. })
        ));
    }
    // None of them expired reservation 1, overdue as it is.
    assert_eq!(run.engine().pending_count(), 1);
    // The campaign's step: unknown campaign, then another item (invalid,
    // after lazy expiry, which gave the unit back).
    assert_eq!(
        apply(
            &mut run,
            base(vec![Line::new(A, S, 1)], Some(CampaignId(6)), Some(who(1)))
        ),
        Err(Error::IdConflict { id: id(1) })
    );
    assert_eq!(run.engine().pending_count(), 0);
    assert_eq!(run.engine().campaign(SALE).unwrap().used, 0);
    let fresh = |lines: Vec<Line>, campaign: CampaignId| Command::ReserveCampaign {
        id: id(2),
        channel: Channel::Online,
        ttl_ms: None,
        lines,
        campaign: Some(campaign),
        customer: Some(who(1)),
    };
    assert_eq!(
        apply(&mut run, fresh(vec![Line::new(A, S, 1)], CampaignId(6))),
        Err(Error::UnknownCampaign {
            campaign: CampaignId(6)
        })
    );
    assert!(matches!(
        apply(&mut run, fresh(vec![Line::new(B, S, 1)], SALE)),
        Err(Error::Invalid { .. })
    ));
}

#[test]
fn campaign_and_customer_are_part_of_the_same_request() {
    let mut run = run();
    restock(&mut run, A, 10);
    campaign(&mut run, 5, 5).unwrap();
    held(reserve_in(&mut run, 1, 1, 1, None));
    assert!(held(reserve_in(&mut run, 1, 1, 1, None)).replayed);
    assert_eq!(
        reserve_in(&mut run, 1, 2, 1, None),
        Err(Error::IdConflict { id: id(1) })
    );
    // A plain reserve and a campaign one are never the same request.
    let plain = Command::Reserve {
        id: id(1),
        channel: Channel::Online,
        ttl_ms: None,
        lines: vec![Line::new(A, S, 1)],
    };
    assert_eq!(
        apply(&mut run, plain.clone()),
        Err(Error::IdConflict { id: id(1) })
    );
    held(apply(&mut run, plain_reserve(2)));
    assert_eq!(
        reserve_in(&mut run, 2, 1, 1, None),
        Err(Error::IdConflict { id: id(2) })
    );
    // reserve_any's same request needs a reservation without campaign.
    let any = Command::ReserveAny {
        id: id(1),
        sku: A,
        qty: 1,
        stores: vec![S],
        split: false,
        channel: Channel::Online,
        ttl_ms: None,
    };
    assert_eq!(apply(&mut run, any), Err(Error::IdConflict { id: id(1) }));
}

fn plain_reserve(n: u64) -> Command {
    Command::Reserve {
        id: id(n),
        channel: Channel::Online,
        ttl_ms: None,
        lines: vec![Line::new(A, S, 1)],
    }
}

#[test]
fn release_expiry_and_partial_commit_give_units_back_commit_keeps_them() {
    let mut run = run();
    restock(&mut run, A, 10);
    campaign(&mut run, 6, 6).unwrap();
    held(reserve_in(&mut run, 1, 1, 2, None));
    held(reserve_in(&mut run, 2, 1, 2, Some(10)));
    held(reserve_in(&mut run, 3, 1, 2, None));
    apply(&mut run, Command::Release { id: id(1) }).unwrap();
    assert_eq!(run.engine().campaign_customer_used(SALE, who(1)), 4);
    run.advance(10).unwrap();
    // Overdue but not processed: still counted.
    assert_eq!(run.engine().campaign(SALE).unwrap().used, 4);
    assert_eq!(apply(&mut run, Command::Expire), Ok(Outcome::Expired(1)));
    assert_eq!(run.engine().campaign(SALE).unwrap().used, 2);
    apply(
        &mut run,
        Command::Commit {
            id: id(3),
            lines: Some(vec![Line::new(A, S, 1)]),
        },
    )
    .unwrap();
    assert_eq!(run.engine().campaign(SALE).unwrap().used, 1);
    // Committed units stay counted after the reservation is forgotten.
    run.advance(DEFAULT_RETENTION_MS).unwrap();
    apply(&mut run, Command::Expire).unwrap();
    assert_eq!(run.engine().reservation_count(), 0);
    assert_eq!(run.engine().campaign_customer_used(SALE, who(1)), 1);
    assert_eq!(
        reserve_in(&mut run, 4, 1, 6, None),
        Err(Error::QuotaExhausted {
            campaign: SALE,
            remaining: 5
        })
    );
    // A sell never counts.
    apply(
        &mut run,
        Command::Sell {
            sku: A,
            store: S,
            qty: 1,
            channel: Channel::InStore,
        },
    )
    .unwrap();
    assert_eq!(run.engine().campaign(SALE).unwrap().used, 1);
}

#[test]
fn redefinition_keeps_counted_units_and_may_not_move_the_campaign() {
    let mut run = run();
    restock(&mut run, A, 10);
    campaign(&mut run, 4, 4).unwrap();
    held(reserve_in(&mut run, 1, 1, 3, None));
    campaign(&mut run, 2, 1).unwrap();
    assert_eq!(
        reserve_in(&mut run, 2, 2, 1, None),
        Err(Error::QuotaExhausted {
            campaign: SALE,
            remaining: 0
        })
    );
    assert!(matches!(
        apply(
            &mut run,
            Command::Campaign {
                campaign: SALE,
                sku: B,
                store: S,
                quota: 9,
                per_customer: 9
            }
        ),
        Err(Error::Invalid { .. })
    ));
    // Limits of 0 refuse everything.
    campaign(&mut run, 10, 0).unwrap();
    assert_eq!(
        reserve_in(&mut run, 2, 2, 1, None),
        Err(Error::CustomerLimit {
            campaign: SALE,
            customer: who(2),
            remaining: 0
        })
    );
}

// --------------------------------------------------------------- alerts

#[test]
fn one_alert_per_downward_crossing() {
    let mut run = run();
    restock(&mut run, A, 12);
    apply(
        &mut run,
        Command::SetReorderPoint {
            sku: A,
            store: S,
            qty: 10,
        },
    )
    .unwrap();
    apply(
        &mut run,
        Command::Sell {
            sku: A,
            store: S,
            qty: 2,
            channel: Channel::InStore,
        },
    )
    .unwrap();
    assert_eq!(alerts(&mut run), vec![]);
    held(apply(&mut run, plain_reserve(1)));
    apply(
        &mut run,
        Command::Sell {
            sku: A,
            store: S,
            qty: 1,
            channel: Channel::InStore,
        },
    )
    .unwrap();
    assert_eq!(alerts(&mut run), vec![alert(A, 9, 10)]);
    // Back to the point clears the mark; the next crossing alerts again.
    apply(&mut run, Command::Release { id: id(1) }).unwrap();
    apply(
        &mut run,
        Command::Restock {
            sku: A,
            store: S,
            qty: 1,
        },
    )
    .unwrap();
    apply(
        &mut run,
        Command::SetSafetyStock {
            sku: A,
            store: S,
            qty: 2,
        },
    )
    .unwrap();
    assert_eq!(alerts(&mut run), vec![alert(A, 8, 10)]);
    assert_eq!(alerts(&mut run), vec![]);
}

#[test]
fn setting_the_reorder_point_reevaluates_without_raising_again() {
    let mut run = run();
    restock(&mut run, A, 5);
    apply(
        &mut run,
        Command::SetReorderPoint {
            sku: A,
            store: S,
            qty: 6,
        },
    )
    .unwrap();
    apply(
        &mut run,
        Command::SetReorderPoint {
            sku: A,
            store: S,
            qty: 8,
        },
    )
    .unwrap();
    assert_eq!(alerts(&mut run), vec![alert(A, 5, 6)]);
    apply(
        &mut run,
        Command::SetReorderPoint {
            sku: A,
            store: S,
            qty: 0,
        },
    )
    .unwrap();
    apply(
        &mut run,
        Command::SetReorderPoint {
            sku: A,
            store: S,
            qty: 8,
        },
    )
    .unwrap();
    assert_eq!(alerts(&mut run), vec![alert(A, 5, 8)]);
    // A new item is created with the point, and alerts at once.
    let level = apply(
        &mut run,
        Command::SetReorderPoint {
            sku: B,
            store: S,
            qty: 1,
        },
    );
    assert_eq!(level, Ok(Outcome::Level(Level::new(0, 0, 0))));
    assert_eq!(alerts(&mut run), vec![alert(B, 0, 1)]);
}

#[test]
fn expiry_touches_the_items_it_returns_and_one_operation_may_alert_several() {
    let mut run = run();
    restock(&mut run, A, 4);
    restock(&mut run, B, 4);
    apply(
        &mut run,
        Command::SetReorderPoint {
            sku: A,
            store: S,
            qty: 2,
        },
    )
    .unwrap();
    apply(
        &mut run,
        Command::SetReorderPoint {
            sku: B,
            store: S,
            qty: 3,
        },
    )
    .unwrap();
    let cart = Command::Reserve {
        id: id(1),
        channel: Channel::Online,
        ttl_ms: Some(5),
        lines: vec![Line::new(B, S, 2), Line::new(A, S, 3)],
    };
    held(apply(&mut run, cart));
    assert_eq!(alerts(&mut run), vec![alert(A, 1, 2), alert(B, 2, 3)]);
    run.advance(5).unwrap();
    apply(&mut run, Command::Expire).unwrap();
    apply(
        &mut run,
        Command::Sell {
            sku: A,
            store: S,
            qty: 3,
            channel: Channel::InStore,
        },
    )
    .unwrap();
    assert_eq!(alerts(&mut run), vec![alert(A, 1, 2)]);
}

// ------------------------------------------------------- Rust-only parts

fn engine() -> Inventory {
    Inventory::builder().expected_items(64).build()
}

#[test]
fn ending_a_campaign_frees_its_counters_and_its_reservations_give_nothing_back() {
    let inventory = engine();
    inventory.restock(A, S, 100).unwrap();
    inventory.define_campaign(SALE, A, S, 10, 2).unwrap();
    for n in 0..5 {
        inventory
            .reserve_in_campaign(
                id(n),
                Channel::Online,
                Line::new(A, S, 2),
                SALE,
                who(n),
                60_000,
            )
            .unwrap();
    }
    assert_eq!(inventory.campaign_counter_memory().0, 5);
    inventory.end_campaign(SALE).unwrap();
    assert_eq!(inventory.campaign_counter_memory().0, 0);
    assert_eq!(
        inventory.end_campaign(SALE),
        Err(Error::UnknownCampaign { campaign: SALE })
    );
    assert_eq!(
        inventory.reserve_in_campaign(
            id(9),
            Channel::Online,
            Line::new(A, S, 1),
            SALE,
            who(9),
            60_000
        ),
        Err(Error::UnknownCampaign { campaign: SALE })
    );
    // Defined again: a new campaign, counting from 0; the old
    // reservations' releases do not reach it.
    inventory.define_campaign(SALE, A, S, 1, 1).unwrap();
    inventory.release(id(0)).unwrap();
    inventory.release(id(1)).unwrap();
    let usage = inventory.campaign(SALE).unwrap();
    assert_eq!((usage.used, usage.customers), (0, 0));
    inventory
        .reserve_in_campaign(
            id(9),
            Channel::Online,
            Line::new(A, S, 1),
            SALE,
            who(9),
            60_000,
        )
        .unwrap();
    assert_eq!(inventory.campaign(SALE).unwrap().used, 1);
}

#[test]
fn a_customers_counter_leaves_when_it_returns_to_zero() {
    let inventory = engine();
    inventory.restock(A, S, 1000).unwrap();
    inventory.define_campaign(SALE, A, S, 1000, 1).unwrap();
    for n in 0..300 {
        inventory
            .reserve_in_campaign(
                id(n),
                Channel::Online,
                Line::new(A, S, 1),
                SALE,
                who(n),
                60_000,
            )
            .unwrap();
    }
    let (counters, bytes) = inventory.campaign_counter_memory();
    assert_eq!(counters, 300);
    assert!(bytes > 0);
    for n in 0..300 {
        inventory.release(id(n)).unwrap();
    }
    assert_eq!(inventory.campaign_counter_memory().0, 0);
    assert_eq!(inventory.campaign(SALE).unwrap().used, 0);
}

#[test]
fn effects_record_campaigns_and_reorder_points() {
    let log: Arc<Mutex<Vec<Effect>>> = Arc::default();
    let sink = log.clone();
    let inventory = Inventory::builder()
        .expected_items(64)
        .observer(Arc::new(move |effects: &[Effect]| {
            sink.lock().unwrap().extend_from_slice(effects)
        }))
        .build();
    inventory.restock(A, S, 5).unwrap();
    inventory.define_campaign(SALE, A, S, 3, 2).unwrap();
    inventory
        .reserve_in_campaign(id(1), Channel::Online, Line::new(A, S, 2), SALE, who(7), 50)
        .unwrap();
    inventory.set_reorder_point(A, S, 4);
    inventory.end_campaign(SALE).unwrap();
    let log = log.lock().unwrap();
    let item = ItemKey::new(A, S);
    assert!(log.contains(&Effect::CampaignDefined {
        campaign: SALE,
        item,
        quota: 3,
        per_customer: 2
    }));
    assert!(log.iter().any(|effect| matches!(
        effect,
        Effect::Reserved { id: reserved, lines, campaign: Some(SALE), customer: Some(customer), .. }
            if *reserved == id(1) && *lines == vec![Line::new(A, S, 2)] && *customer == who(7)
    )));
    assert!(log.contains(&Effect::ReorderPoint {
        item,
        reorder_point: 4
    }));
    assert!(log.contains(&Effect::CampaignEnded { campaign: SALE }));
}

#[test]
fn alerts_go_to_the_observer_and_are_kept_only_when_asked() {
    let seen: Arc<Mutex<Vec<Alert>>> = Arc::default();
    let sink = seen.clone();
    let observed = Inventory::builder()
        .expected_items(64)
        .alert_observer(Arc::new(move |alerts: &[Alert]| {
            sink.lock().unwrap().extend_from_slice(alerts)
        }))
        .build();
    observed.restock(A, S, 3).unwrap();
    observed.set_reorder_point(A, S, 3);
    observed.sell(A, S, 1, Channel::InStore).unwrap();
    observed.sell(A, S, 1, Channel::InStore).unwrap();
    assert_eq!(*seen.lock().unwrap(), vec![alert(A, 2, 3)]);
    assert_eq!(observed.take_alerts(), vec![]);
    assert_eq!(observed.reorder_point(A, S), 3);

    let kept_too = Inventory::builder()
        .expected_items(64)
        .alert_observer(Arc::new(|_: &[Alert]| {}))
        .keep_alerts(true)
        .build();
    kept_too.restock(A, S, 3).unwrap();
    kept_too.set_reorder_point(A, S, 4);
    assert_eq!(kept_too.take_alerts(), vec![alert(A, 3, 4)]);
}

/// Threads racing for one campaign (bounded in count): the quota and every
/// customer's limit hold at the end, and the counters are what the
/// reservations that stand hold.
#[test]
fn threads_racing_for_a_quota_never_pass_it() {
    const QUOTA: u32 = 100;
    const LIMIT: u32 = 2;
    let inventory = Arc::new(engine());
    inventory.restock(A, S, 1000).unwrap();
    inventory.define_campaign(SALE, A, S, QUOTA, LIMIT).unwrap();
    let threads: Vec<_> = (0..4u64)
        .map(|t| {
            let inventory = inventory.clone();
            thread::spawn(move || {
                let mut won = Vec::new();
                for n in 0..400u64 {
                    let reservation = id(t * 1000 + n);
                    let customer = who(n % 60);
                    let qty = 1 + (n % 2) as u32;
                    if let Ok(ack) = inventory.reserve_in_campaign(
                        reservation,
                        Channel::Online,
                        Line::new(A, S, qty),
                        SALE,
                        customer,
                        60_000,
                    ) {
                        assert_eq!(ack.state, ReservationState::Pending);
                        won.push((customer, qty));
                        if n % 7 == 0 {
                            inventory.release(reservation).unwrap();
                            won.pop();
                        }
                    }
                }
                won
            })
        })
        .collect();
    let mut per_customer = std::collections::BTreeMap::new();
    let mut total = 0;
    for thread in threads {
        for (customer, qty) in thread.join().unwrap() {
            *per_customer.entry(customer).or_insert(0) += qty;
            total += qty;
        }
    }
    assert!(
        total <= QUOTA,
        "{total} units counted past a quota of {QUOTA}"
    );
    assert_eq!(inventory.campaign(SALE).unwrap().used, total);
    for (customer, units) in per_customer {
        assert!(units <= LIMIT, "{customer} holds {units}");
        assert_eq!(inventory.campaign_customer_used(SALE, customer), units);
    }
    assert_eq!(inventory.level(A, S).unwrap().reserved, total);
}

/// The alert observer runs after every lock is released: one that reads
/// the inventory back (a metrics hook counting pending reservations, or
/// looking up the reservation that crossed) does not deadlock, whichever
/// operation raised the alert (a reserve, a release that is followed by
/// a new crossing, a lazy and a reaped expiry).
#[test]
fn an_alert_observer_may_call_back_into_the_inventory() {
    use std::sync::mpsc;
    use std::sync::{OnceLock, Weak};
    use std::time::Duration;
    let slot: Arc<OnceLock<Weak<Inventory>>> = Arc::default();
    let seen = slot.clone();
    let readings: Arc<Mutex<Vec<usize>>> = Arc::default();
    let kept = readings.clone();
    let clock = Arc::new(omnistock::ManualClock::new());
    let inventory = Arc::new(
        Inventory::builder()
            .expected_items(64)
            .clock(clock.clone())
            .alert_observer(Arc::new(move |alerts: &[Alert]| {
                if let Some(inventory) = seen.get().and_then(Weak::upgrade) {
                    let pending = inventory.pending_count();
                    let _ = inventory.get(id(1));
                    kept.lock().unwrap().push(pending + alerts.len());
                }
            }))
            .build(),
    );
    slot.set(Arc::downgrade(&inventory)).unwrap();
    inventory.restock(A, S, 10).unwrap();
    inventory.set_reorder_point(A, S, 5);
    let (done, finished) = mpsc::channel();
    let worker = inventory.clone();
    thread::spawn(move || {
        let line = [Line::new(A, S, 6)];
        // Crosses on the reserve; the release lifts it back over.
        worker.reserve(id(1), Channel::Online, &line).unwrap();
        worker.release(id(1)).unwrap();
        // Crosses again; the lazy expiry inside the next call lifts it.
        worker
            .reserve_with_ttl(id(2), Channel::Online, &line, 10)
            .unwrap();
        clock.advance(20);
        let _ = worker.get(id(2));
        // Crosses again; the reaper's expiry lifts it; a commit crosses.
        worker
            .reserve_with_ttl(id(3), Channel::Online, &line, 10)
            .unwrap();
        clock.advance(20);
        worker.expire();
        worker.reserve(id(4), Channel::Online, &line).unwrap();
        worker.commit(id(4)).unwrap();
        done.send(()).unwrap();
    });
    assert_eq!(
        finished.recv_timeout(Duration::from_secs(10)),
        Ok(()),
        "an operation hung inside the alert observer"
    );
    // Four crossings, each seen by the observer with the inventory read.
    assert_eq!(readings.lock().unwrap().len(), 4);
}

/// `max_campaigns(n)` holds n campaign ids over the inventory's life, not
/// the power of two above n: the id past them is invalid, while a held id
/// (live or ended) may be defined again.
#[test]
fn max_campaigns_is_the_number_of_ids_held() {
    let inventory = Inventory::builder()
        .expected_items(64)
        .max_campaigns(3)
        .build();
    assert_eq!(inventory.max_campaigns(), 3);
    for n in 0..3 {
        inventory
            .define_campaign(CampaignId(n), A, S, 1, 1)
            .unwrap();
    }
    let past = inventory.define_campaign(CampaignId(3), A, S, 1, 1);
    assert!(matches!(past, Err(Error::Invalid { .. })), "{past:?}");
    inventory
        .define_campaign(CampaignId(1), A, S, 5, 2)
        .unwrap();
    inventory.end_campaign(CampaignId(2)).unwrap();
    inventory
        .define_campaign(CampaignId(2), B, S, 1, 1)
        .unwrap();
    let still = inventory.define_campaign(CampaignId(3), A, S, 1, 1);
    assert!(matches!(still, Err(Error::Invalid { .. })), "{still:?}");

    let none = Inventory::builder()
        .expected_items(64)
        .max_campaigns(0)
        .build();
    let refused = none.define_campaign(CampaignId(0), A, S, 1, 1);
    assert!(matches!(refused, Err(Error::Invalid { .. })), "{refused:?}");
}

/// The known gap in alerts under concurrency (docs/CONTRACT.md, "Reorder
/// points"): every sell that takes the item from at or above its point to
/// below it is a downward crossing in any order the operations can be put
/// in, so each should raise one alert; an evaluation reads the level of
/// its own moment, and a restock by another thread in between makes it
/// miss the dip. Ignored until each change's own before/after levels reach
/// the evaluation; run it with `cargo test --release --test
/// contract_v2_campaigns -- --ignored`.
#[test]
#[ignore = "known gap: a dip lifted back by another thread before it is evaluated raises no alert"]
fn concurrent_dips_each_raise_one_alert() {
    use std::sync::atomic::{AtomicU64, Ordering};
    let inventory = Arc::new(Inventory::builder().expected_items(64).build());
    let point = 19;
    inventory.restock(A, S, 24).unwrap();
    inventory.set_reorder_point(A, S, point);
    assert!(inventory.take_alerts().is_empty());
    let crossings = Arc::new(AtomicU64::new(0));
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let inventory = inventory.clone();
            let crossings = crossings.clone();
            thread::spawn(move || {
                for _ in 0..20_000 {
                    let after = inventory.sell(A, S, 6, Channel::InStore).unwrap();
                    if after.available_online < point && after.available_online + 6 >= point {
                        crossings.fetch_add(1, Ordering::Relaxed);
                    }
                    inventory.restock(A, S, 6).unwrap();
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().unwrap();
    }
    assert_eq!(
        inventory.take_alerts().len() as u64,
        crossings.load(Ordering::Relaxed),
        "alerts raised against downward crossings"
    );
}

//! Model-based test: random sequences of operations run on the real
//! [`Inventory`] and on the [`ReferenceModel`], which restates the contract
//! plainly, in lockstep ([`Lockstep`]). Every answer must match (errors by
//! name and fields, `invalid`'s reason text excepted), and after every step
//! so must the clock, every item's level and the number of remembered
//! reservations; the units must be conserved ([`Conservation`]). The engine
//! also runs with an effect observer, and the effects it reports must add
//! up to its stock after every step. It compacts its reservation shards as
//! soon as two record places are handed out and half are free, so the
//! positions of what it remembers change often.
//!
//! The space of SKUs, stores and ids is tiny so that ids collide and lines
//! repeat; quantities are mostly small but include 0 and `u32::MAX`; time
//! moves in small steps mostly, sometimes by a ttl or a retention window, and
//! rarely to the end of time. `PROPTEST_CASES` overrides the 1024 cases.

use omnistock::model::{Conservation, Lockstep, ReferenceModel, Rng};
use omnistock::{
    CampaignId, Channel, Command, CustomerId, Effect, Error, Inventory, ItemKey, Level, Line,
    Outcome, ReservationId, ReservationState, Sku, SourceRequest, StoreId, DEFAULT_RETENTION_MS,
    DEFAULT_TTL_MS, MAX_LINES,
};
use proptest::prelude::*;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

// ---------------------------------------------------------------- strategies

/// One step of a run.
#[derive(Clone, Debug)]
enum Op {
    /// Run a command; `typed` picks the typed method over `apply`.
    Run { command: Command, typed: bool },
    /// Move both clocks.
    Advance(u64),
    /// Send again an earlier reserve (the `pick`-th, modulo how many there
    /// were), its lines rotated by `rotate`, with another ttl, and with the
    /// other channel when `flip`: replays and id conflicts.
    Retry {
        pick: usize,
        rotate: usize,
        flip: bool,
        ttl_ms: Option<u64>,
    },
}

fn sku() -> impl Strategy<Value = Sku> {
    (0u64..3).prop_map(Sku)
}

fn store() -> impl Strategy<Value = StoreId> {
    (0u64..2).prop_map(StoreId)
}

fn rid() -> impl Strategy<Value = ReservationId> {
    (0u64..4).prop_map(ReservationId)
}

fn channel() -> impl Strategy<Value = Channel> {
    prop_oneof![Just(Channel::Online), Just(Channel::InStore)]
}

fn qty() -> BoxedStrategy<u32> {
    prop_oneof![
        1 => Just(0u32),
        12 => 1u32..4,
        5 => 1u32..16,
        1 => Just(u32::MAX),
        1 => (u32::MAX - 3)..=u32::MAX,
        1 => any::<u32>(),
    ]
    .boxed()
}

fn ttl() -> BoxedStrategy<u64> {
    prop_oneof![
        10 => 1u64..8,
        3 => 8u64..60,
        1 => Just(0u64),
        1 => Just(DEFAULT_TTL_MS),
        2 => Just(u64::MAX),
        2 => (u64::MAX - 50)..=u64::MAX,
        1 => any::<u64>(),
    ]
    .boxed()
}

fn advance() -> BoxedStrategy<u64> {
    prop_oneof![
        12 => 0u64..8,
        4 => 0u64..100,
        1 => 0u64..2_000,
        2 => Just(DEFAULT_TTL_MS),
        1 => Just(DEFAULT_RETENTION_MS),
        1 => prop_oneof![Just(u64::MAX / 2), Just(u64::MAX), any::<u64>()],
    ]
    .boxed()
}

fn lines() -> BoxedStrategy<Vec<Line>> {
    let line = (sku(), store(), qty())
        .prop_map(|(k, s, q)| Line::new(k, s, q))
        .boxed();
    prop_oneof![
        30 => prop::collection::vec(line.clone(), 1..3),
        2 => Just(Vec::new()),
        3 => prop::collection::vec(line, 4..7),
        // Around the 256-line limit: distinct items, most of them unknown.
        1 => ((MAX_LINES - 1)..=(MAX_LINES + 1), 1u32..3, any::<bool>()).prop_map(
            |(n, q, dup)| {
                let mut v: Vec<Line> =
                    (0..n as u64).map(|s| Line::new(Sku(s), StoreId(0), q)).collect();
                if dup {
                    v[n - 1] = v[0];
                }
                v
            }
        ),
    ]
    .boxed()
}

/// Candidate stores of a `reserve_any`: distinct in any order (store 2
/// never stocked), or now and then one repeated.
/// A campaign reservation's lines: one, most of the time.
fn campaign_lines() -> BoxedStrategy<Vec<Line>> {
    let one = (sku(), store(), 1u32..4).prop_map(|(k, s, q)| vec![Line::new(k, s, q)]);
    prop_oneof![9 => one, 1 => lines()].boxed()
}

fn stores() -> BoxedStrategy<Vec<StoreId>> {
    let all = vec![StoreId(0), StoreId(1), StoreId(2)];
    prop_oneof![
        9 => prop::sample::subsequence(all, 0..=3).prop_shuffle(),
        1 => prop::collection::vec(store(), 2..3),
    ]
    .boxed()
}

fn command() -> BoxedStrategy<Command> {
    prop_oneof![
        4 => (sku(), store(), qty()).prop_map(|(sku, store, qty)| Command::Restock { sku, store, qty }),
        1 => (sku(), store(), qty()).prop_map(|(sku, store, qty)| Command::SetOnHand { sku, store, qty, expect: None }),
        1 => (sku(), store(), qty()).prop_map(|(sku, store, qty)| Command::SetSafetyStock { sku, store, qty }),
        2 => (sku(), store(), qty(), channel())
            .prop_map(|(sku, store, qty, channel)| Command::Sell { sku, store, qty, channel }),
        1 => (sku(), store()).prop_map(|(sku, store)| Command::Level { sku, store }),
        7 => (rid(), channel(), prop::option::weighted(0.7, ttl()), lines()).prop_map(
            |(id, channel, ttl_ms, lines)| Command::Reserve { id, channel, ttl_ms, lines }
        ),
        3 => rid().prop_map(|id| Command::Commit { id, lines: None }),
        // v2: fulfilment.
        2 => (rid(), prop::collection::vec((sku(), store(), 0u32..4), 0..3)).prop_map(|(id, picked)| {
            let lines = picked.into_iter().map(|(k, s, q)| Line::new(k, s, q)).collect();
            Command::Commit { id, lines: Some(lines) }
        }),
        1 => (sku(), store(), qty(), qty()).prop_map(|(sku, store, qty, expect)| Command::SetOnHand { sku, store, qty, expect: Some(expect % 8) }),
        2 => (lines(), channel()).prop_map(|(lines, channel)| Command::SellLines { lines, channel }),
        4 => (rid(), sku(), qty(), stores(), any::<bool>(), channel(), prop::option::weighted(0.7, ttl()))
            .prop_map(|(id, sku, qty, stores, split, channel, ttl_ms)| Command::ReserveAny { id, sku, qty, stores, split, channel, ttl_ms }),
        1 => Just(Command::Check),
        // Campaigns and alerts: two campaigns over the same few items, two
        // customers, small quotas and limits (0 included).
        1 => (0u64..2, sku(), store(), 0u32..6, 0u32..4).prop_map(|(c, sku, store, quota, per_customer)| {
            Command::Campaign { campaign: CampaignId(c), sku, store, quota, per_customer }
        }),
        4 => (rid(), channel(), prop::option::weighted(0.7, ttl()), campaign_lines(), prop::option::weighted(0.95, 0u64..3), prop::option::weighted(0.95, 0u64..2))
            .prop_map(|(id, channel, ttl_ms, lines, campaign, customer)| Command::ReserveCampaign {
                id, channel, ttl_ms, lines, campaign: campaign.map(CampaignId), customer: customer.map(CustomerId),
            }),
        1 => (sku(), store(), 0u32..6).prop_map(|(sku, store, qty)| Command::SetReorderPoint { sku, store, qty }),
        1 => Just(Command::Alerts),
        3 => rid().prop_map(|id| Command::Release { id }),
        2 => (rid(), ttl()).prop_map(|(id, ttl_ms)| Command::Extend { id, ttl_ms }),
        2 => rid().prop_map(|id| Command::Get { id }),
        2 => Just(Command::Expire),
    ]
    .boxed()
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (command(), any::<bool>()).prop_map(|(command, typed)| Op::Run { command, typed }),
        1 => advance().prop_map(Op::Advance),
        2 => (any::<usize>(), 0usize..4, prop::bool::weighted(0.2), prop::option::of(1u64..8))
            .prop_map(|(pick, rotate, flip, ttl_ms)| Op::Retry { pick, rotate, flip, ttl_ms }),
    ]
}

/// `(default ttl, retention)`: the contract's defaults or small ones, so that
/// default-ttl reserves expire and retention forgets within a run.
fn limits() -> impl Strategy<Value = (u64, u64)> {
    prop_oneof![
        Just((DEFAULT_TTL_MS, DEFAULT_RETENTION_MS)),
        (0u64..10, 0u64..12),
        (1u64..100, 0u64..1_000),
    ]
}

// ------------------------------------------------------------------ harness

type Log = Arc<Mutex<Vec<Vec<Effect>>>>;

/// The engine's answer through its typed methods.
fn typed(inv: &Inventory, command: &Command) -> Result<Outcome, Error> {
    match command {
        Command::Restock { sku, store, qty } => inv.restock(*sku, *store, *qty).map(Outcome::Level),
        Command::SetOnHand {
            sku,
            store,
            qty,
            expect: None,
        } => inv.set_on_hand(*sku, *store, *qty).map(Outcome::Level),
        Command::SetOnHand {
            sku,
            store,
            qty,
            expect: Some(expect),
        } => inv
            .set_on_hand_expecting(*sku, *store, *qty, *expect)
            .map(Outcome::Level),
        Command::SetSafetyStock { sku, store, qty } => {
            Ok(Outcome::Level(inv.set_safety_stock(*sku, *store, *qty)))
        }
        Command::Sell {
            sku,
            store,
            qty,
            channel,
        } => inv.sell(*sku, *store, *qty, *channel).map(Outcome::Level),
        Command::Level { sku, store } => inv.level(*sku, *store).map(Outcome::Level),
        Command::Reserve {
            id,
            channel,
            ttl_ms: None,
            lines,
        } => inv.reserve(*id, *channel, lines).map(Outcome::Reservation),
        Command::Reserve {
            id,
            channel,
            ttl_ms: Some(ttl),
            lines,
        } => inv
            .reserve_with_ttl(*id, *channel, lines, *ttl)
            .map(Outcome::Reservation),
        Command::Commit { id, lines: None } => inv.commit(*id).map(Outcome::Reservation),
        Command::Commit {
            id,
            lines: Some(lines),
        } => inv.commit_lines(*id, lines).map(Outcome::ReservationLines),
        Command::Release { id } => inv.release(*id).map(Outcome::Reservation),
        Command::Extend { id, ttl_ms } => inv.extend(*id, *ttl_ms).map(Outcome::Reservation),
        Command::Get { id } => inv.get(*id).map(Outcome::Info),
        Command::Expire => Ok(Outcome::Expired(inv.expire())),
        Command::SellLines { lines, channel } => {
            inv.sell_lines(lines, *channel).map(Outcome::Levels)
        }
        Command::ReserveAny {
            id,
            sku,
            qty,
            stores,
            split,
            channel,
            ttl_ms,
        } => {
            let mut request = SourceRequest::new(*sku, *qty, stores);
            if *split {
                request = request.split();
            }
            inv.reserve_any(
                *id,
                *channel,
                &request,
                ttl_ms.unwrap_or(inv.default_ttl_ms()),
            )
            .map(Outcome::ReservationLines)
        }
        Command::Check => Ok(Outcome::Check(inv.check())),
        Command::Campaign {
            campaign,
            sku,
            store,
            quota,
            per_customer,
        } => inv
            .define_campaign(*campaign, *sku, *store, *quota, *per_customer)
            .map(|()| Outcome::Done(omnistock::Done {})),
        // The typed method takes one line and both ids; other shapes go
        // through `apply`, which refuses them.
        Command::ReserveCampaign {
            id,
            channel,
            ttl_ms,
            lines,
            campaign: Some(campaign),
            customer: Some(customer),
        } if lines.len() == 1 => inv
            .reserve_in_campaign(
                *id,
                *channel,
                lines[0],
                *campaign,
                *customer,
                ttl_ms.unwrap_or(inv.default_ttl_ms()),
            )
            .map(Outcome::Reservation),
        Command::ReserveCampaign { .. } => inv.apply(command),
        Command::SetReorderPoint { sku, store, qty } => {
            Ok(Outcome::Level(inv.set_reorder_point(*sku, *store, *qty)))
        }
        Command::Alerts => Ok(Outcome::Alerts(inv.take_alerts())),
    }
}

/// Errors compare by name and fields; `invalid`'s reason text is free.
fn normalized(answer: Result<Outcome, Error>) -> Result<Outcome, Error> {
    answer.map_err(|e| match e {
        Error::Invalid { .. } => Error::Invalid { reason: "" },
        e => e,
    })
}

/// Moves `cells` by `effects`: `ItemCreated` starts an all-zero cell,
/// `Stock` and `SafetyStock` move it.
fn apply_effects(
    cells: &mut BTreeMap<ItemKey, [i64; 3]>,
    effects: &[Effect],
) -> Result<(), String> {
    for e in effects {
        match e {
            Effect::ItemCreated { item } => {
                let fresh = cells.insert(*item, [0; 3]).is_none();
                if !fresh {
                    return Err(format!("{item} created twice"));
                }
            }
            Effect::Stock {
                item,
                on_hand,
                reserved,
            } => {
                let c = cells
                    .get_mut(item)
                    .ok_or(format!("stock effect for {item} before it was created"))?;
                c[0] += on_hand;
                c[1] += reserved;
            }
            Effect::SafetyStock { item, delta } => {
                let c = cells
                    .get_mut(item)
                    .ok_or(format!("safety effect for {item} before it was created"))?;
                c[2] += delta;
            }
            _ => {}
        }
    }
    Ok(())
}

fn names_id(command: &Command) -> Option<ReservationId> {
    match command {
        Command::Reserve { id, .. }
        | Command::ReserveCampaign { id, .. }
        | Command::ReserveAny { id, .. }
        | Command::Commit { id, .. }
        | Command::Release { id }
        | Command::Extend { id, .. }
        | Command::Get { id } => Some(*id),
        _ => None,
    }
}

/// Runs `ops` on a fresh engine and model, comparing every answer, and the
/// whole state after every `check_every`-th step and the last. Returns the
/// answers. The engine's id filters start off, as without
/// `expected_reservations`: its reserves look items up under the shard lock
/// until a shard has refused enough to switch its filter on.
fn run(
    limits: (u64, u64),
    ops: &[Op],
    check_every: usize,
) -> Result<Vec<Result<Outcome, Error>>, TestCaseError> {
    run_with(limits, false, ops, check_every)
}

fn fail(step: usize, op: &Op, what: impl std::fmt::Display) -> TestCaseError {
    TestCaseError::fail(format!("step {step}: {op:?}: {what}"))
}

/// [`run`], with the id filters on from the start where `filters_on`
/// (`expected_reservations` given): every reserve of a short cart then
/// looks its items up, and may refuse, before the shard lock.
fn run_with(
    limits: (u64, u64),
    filters_on: bool,
    ops: &[Op],
    check_every: usize,
) -> Result<Vec<Result<Outcome, Error>>, TestCaseError> {
    let (ttl, retention) = limits;
    let log: Log = Arc::new(Mutex::new(Vec::new()));
    let sink = log.clone();
    let mut run = Lockstep::new(ttl, retention, |builder| {
        let builder = builder
            .compaction(2, 2)
            .id_filter_counters(4, 8)
            .id_filter_refusals_before_growing(1)
            .observer(Arc::new(move |effects: &[Effect]| {
                sink.lock().unwrap().push(effects.to_vec())
            }));
        if filters_on {
            builder.expected_reservations(64)
        } else {
            builder
        }
    });
    let mut books = Conservation::default();

    // A last sweep at the end of time must agree too, and leave nothing reserved.
    let finale = [
        Op::Advance(u64::MAX),
        Op::Run {
            command: Command::Expire,
            typed: false,
        },
    ];
    let mut reserves: Vec<Command> = Vec::new();
    let mut answers = Vec::new();
    let mut cells: BTreeMap<ItemKey, [i64; 3]> = BTreeMap::new();
    let last = ops.len() + finale.len() - 1;
    for (step, op) in ops.iter().chain(finale.iter()).enumerate() {
        let before = log.lock().unwrap().len();
        let retried;
        let op = match op {
            Op::Retry {
                pick,
                rotate,
                flip,
                ttl_ms,
            } if !reserves.is_empty() => {
                let Command::Reserve {
                    id,
                    channel,
                    mut lines,
                    ..
                } = reserves[pick % reserves.len()].clone()
                else {
                    unreachable!("only reserves are kept")
                };
                if !lines.is_empty() {
                    let by = rotate % lines.len();
                    lines.rotate_left(by);
                }
                let channel = match (channel, flip) {
                    (c, false) => c,
                    (Channel::Online, true) => Channel::InStore,
                    (Channel::InStore, true) => Channel::Online,
                };
                retried = Op::Run {
                    command: Command::Reserve {
                        id,
                        channel,
                        ttl_ms: *ttl_ms,
                        lines,
                    },
                    typed: false,
                };
                &retried
            }
            op => op,
        };
        match op {
            Op::Retry { .. } => {}
            Op::Advance(ms) => {
                run.advance(*ms).map_err(|d| fail(step, op, d))?;
            }
            Op::Run { command, typed: t } => {
                if matches!(command, Command::Reserve { .. }) {
                    reserves.push(command.clone());
                }
                let actual = run
                    .apply_with(command, |inv, command| {
                        if *t {
                            typed(inv, command)
                        } else {
                            inv.apply(command)
                        }
                    })
                    .map_err(|d| fail(step, op, d))?;
                books
                    .record(command, &actual)
                    .map_err(|e| fail(step, op, e))?;
                if actual.is_err() {
                    // A failed operation emits at most the lazy expiry of the
                    // reservation it names: units going back, nothing else.
                    let named = names_id(command);
                    for e in log.lock().unwrap()[before..].iter().flatten() {
                        let ok = match e {
                            Effect::Finished { id, state, at_ms } => {
                                Some(*id) == named
                                    && *state == ReservationState::Expired
                                    && *at_ms == run.model().now_ms()
                            }
                            Effect::Stock {
                                on_hand, reserved, ..
                            } => *on_hand == 0 && *reserved < 0,
                            _ => false,
                        };
                        prop_assert!(ok, "step {}: {:?} failed but emitted {:?}", step, op, e);
                    }
                }
                answers.push(normalized(actual));
            }
        }
        for effects in log.lock().unwrap()[before..].iter() {
            apply_effects(&mut cells, effects).map_err(TestCaseError::fail)?;
        }
        prop_assert_eq!(run.engine().now_ms(), run.model().now_ms());
        if step % check_every != 0 && step != last {
            continue;
        }
        run.check_state().map_err(|d| fail(step, op, d))?;
        let items = run.engine_items();
        books.check_on_hand(&items).map_err(|e| fail(step, op, e))?;
        let expected: BTreeMap<ItemKey, [i64; 3]> = items
            .iter()
            .map(|(k, l)| {
                (
                    *k,
                    [
                        i64::from(l.on_hand),
                        i64::from(l.reserved),
                        i64::from(l.safety_stock),
                    ],
                )
            })
            .collect();
        prop_assert_eq!(
            &cells,
            &expected,
            "step {}: {:?}: effects do not add up",
            step,
            op
        );
    }
    Conservation::check_all_ended(&run.engine_items()).map_err(TestCaseError::fail)?;
    Ok(answers)
}

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1024)
}

proptest! {
    #![proptest_config(ProptestConfig {
        // Failing inputs are kept beside this file and tried first next time.
        failure_persistence: Some(Box::new(
            proptest::test_runner::FileFailurePersistence::WithSource("proptest-regressions"),
        )),
        ..ProptestConfig::with_cases(cases())
    })]

    #[test]
    fn engine_matches_model(
        limits in limits(),
        filters_on in any::<bool>(),
        stock in prop::collection::vec((sku(), store(), 1u32..30), 0..12),
        ops in prop::collection::vec(op(), 1..100),
    ) {
        // Some stock first, so that more reserves go through.
        let mut all: Vec<Op> = stock
            .into_iter()
            .map(|(sku, store, qty)| Op::Run {
                command: Command::Restock { sku, store, qty },
                typed: true,
            })
            .collect();
        all.extend(ops);
        run_with(limits, filters_on, &all, 1)?;
    }
}

// --------------------------------------------- fixed runs and model checks

fn reserve(id: u64, channel: Channel, ttl_ms: Option<u64>, lines: &[(u64, u64, u32)]) -> Op {
    Op::Run {
        command: Command::Reserve {
            id: ReservationId(id),
            channel,
            ttl_ms,
            lines: lines
                .iter()
                .map(|&(k, s, q)| Line::new(Sku(k), StoreId(s), q))
                .collect(),
        },
        typed: false,
    }
}

fn cmd(command: Command) -> Op {
    Op::Run {
        command,
        typed: true,
    }
}

#[test]
fn fixed_run_covers_every_rule() {
    use Channel::{InStore, Online};
    let restock = |k, s, q| {
        cmd(Command::Restock {
            sku: Sku(k),
            store: StoreId(s),
            qty: q,
        })
    };
    let ops = vec![
        restock(0, 0, 10),
        restock(1, 0, 3),
        cmd(Command::SetSafetyStock {
            sku: Sku(0),
            store: StoreId(0),
            qty: 4,
        }),
        reserve(1, Online, Some(10), &[(0, 0, 6), (1, 0, 1)]),
        reserve(1, Online, None, &[(1, 0, 1), (0, 0, 6)]),
        reserve(1, InStore, None, &[(1, 0, 1), (0, 0, 6)]),
        reserve(2, Online, None, &[(0, 0, 1)]),
        reserve(2, InStore, Some(u64::MAX), &[(0, 0, 4)]),
        Op::Advance(1),
        reserve(3, InStore, Some(u64::MAX), &[(1, 0, 2)]),
        cmd(Command::Sell {
            sku: Sku(1),
            store: StoreId(0),
            qty: 1,
            channel: InStore,
        }),
        cmd(Command::Commit {
            id: ReservationId(2),
            lines: None,
        }),
        cmd(Command::Expire),
        Op::Advance(9),
        cmd(Command::Release {
            id: ReservationId(1),
        }),
        cmd(Command::Release {
            id: ReservationId(1),
        }),
        reserve(1, Online, Some(10), &[(0, 0, 6), (1, 0, 1)]),
        cmd(Command::SetOnHand {
            sku: Sku(0),
            store: StoreId(0),
            qty: 0,
            expect: None,
        }),
        restock(0, 0, u32::MAX),
        cmd(Command::Extend {
            id: ReservationId(2),
            ttl_ms: 0,
        }),
        cmd(Command::Extend {
            id: ReservationId(2),
            ttl_ms: 1,
        }),
        cmd(Command::Get {
            id: ReservationId(1),
        }),
        reserve(5, InStore, Some(5), &[(0, 0, 1)]),
        cmd(Command::Extend {
            id: ReservationId(5),
            ttl_ms: u64::MAX,
        }),
        cmd(Command::Expire),
        cmd(Command::Get {
            id: ReservationId(5),
        }),
        Op::Advance(DEFAULT_RETENTION_MS),
        cmd(Command::Expire),
        cmd(Command::Get {
            id: ReservationId(1),
        }),
    ];
    for filters_on in [false, true] {
        run_with((DEFAULT_TTL_MS, DEFAULT_RETENTION_MS), filters_on, &ops, 1).unwrap();
        run_with((5, 0), filters_on, &ops, 1).unwrap();
    }
}

#[test]
fn model_answers_the_documented_examples() {
    let mut m = ReferenceModel::new();
    let (k, s) = (Sku(1), StoreId(2));
    assert_eq!(
        m.apply(&Command::Restock {
            sku: k,
            store: s,
            qty: 10
        }),
        Ok(Outcome::Level(Level::new(10, 0, 0)))
    );
    assert_eq!(
        m.apply(&Command::SetOnHand {
            sku: k,
            store: s,
            qty: 8,
            expect: None
        }),
        Ok(Outcome::Level(Level::new(8, 0, 0)))
    );
    assert_eq!(
        m.apply(&Command::SetSafetyStock {
            sku: k,
            store: s,
            qty: 2
        }),
        Ok(Outcome::Level(Level::new(8, 0, 2)))
    );
    assert_eq!(
        m.apply(&Command::Sell {
            sku: k,
            store: s,
            qty: 1,
            channel: Channel::InStore
        }),
        Ok(Outcome::Level(Level::new(7, 0, 2)))
    );
    let r = m.apply(&Command::Reserve {
        id: ReservationId(7),
        channel: Channel::Online,
        ttl_ms: Some(60_000),
        lines: vec![Line::new(k, s, 2)],
    });
    assert_eq!(
        r,
        Ok(Outcome::Reservation(omnistock::ReservationAck {
            id: ReservationId(7),
            state: ReservationState::Pending,
            replayed: false,
            expires_at_ms: Some(60_000)
        }))
    );
    assert_eq!(
        m.apply(&Command::Sell {
            sku: k,
            store: s,
            qty: 4,
            channel: Channel::Online
        }),
        Err(Error::Insufficient {
            sku: k,
            store: s,
            requested: 4,
            available: 3
        })
    );
    assert_eq!(m.advance(60_000), 60_000);
    assert_eq!(m.apply(&Command::Expire), Ok(Outcome::Expired(1)));
    assert_eq!(m.items(), vec![(ItemKey::new(k, s), Level::new(7, 0, 2))]);
    assert_eq!(m.reservation_count(), 1);
    assert_eq!(m.advance(u64::MAX), u64::MAX);
}

/// Thousands of items with keys spread over the whole `u64` range (past the
/// engine's first table segments and across all its shards), reservation ids
/// likewise, with full 256-line reserves.
#[test]
fn many_items_and_ids_match_model() {
    let mut rng = Rng::new(0x9E37_79B9_7F4A_7C15);
    let mut next = move || rng.next_u64();
    let key = |i: u64| {
        (
            if i == 0 {
                u64::MAX
            } else {
                i.wrapping_mul(0x2545_F491_4F6C_DD1D)
            },
            i % 7,
        )
    };
    let n = 5_000u64;
    let mut ops: Vec<Op> = (0..n)
        .map(|i| {
            let (k, s) = key(i);
            cmd(Command::Restock {
                sku: Sku(k),
                store: StoreId(s),
                qty: 2 + (i % 5) as u32,
            })
        })
        .collect();
    for round in 0..60u64 {
        let id = if round == 0 { u64::MAX } else { next() };
        let start = next() % (n - MAX_LINES as u64);
        let count = 1 + next() % MAX_LINES as u64;
        let lines: Vec<(u64, u64, u32)> = (start..start + count)
            .map(|i| {
                let (k, s) = key(i);
                (k, s, 1 + (next() % 2) as u32)
            })
            .collect();
        let channel = if round % 3 == 0 {
            Channel::InStore
        } else {
            Channel::Online
        };
        ops.push(reserve(id, channel, Some(1 + next() % 50), &lines));
        match next() % 4 {
            0 => ops.push(cmd(Command::Commit {
                id: ReservationId(id),
                lines: None,
            })),
            1 => ops.push(cmd(Command::Release {
                id: ReservationId(id),
            })),
            _ => {}
        }
        ops.push(Op::Advance(next() % 10));
        if round % 10 == 9 {
            ops.push(cmd(Command::Expire));
        }
    }
    let answers = run((DEFAULT_TTL_MS, 30), &ops, 997).unwrap();
    let reserved = |a: &&Result<Outcome, Error>| matches!(a, Ok(Outcome::Reservation(r)) if r.state == ReservationState::Pending);
    let short = |a: &&Result<Outcome, Error>| matches!(a, Err(Error::Insufficient { .. }));
    assert!(answers.iter().filter(reserved).count() > 20);
    assert!(answers.iter().filter(short).count() > 2);
}

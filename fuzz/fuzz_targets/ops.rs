//! `ops`: an arbitrary sequence of operations (v1, fulfilment, campaigns and alerts) run on the engine and on the
//! reference model side by side (`omnistock::model::Lockstep`). Every answer
//! must match (`invalid` errors match whatever their reason text), the item
//! levels and the numbers of remembered and pending reservations must match
//! after every step, every item must keep `reserved <= on_hand`, and units
//! must be conserved (`omnistock::model::Conservation`); once every hold has
//! run out, nothing may be reserved.
//!
//! The inputs aim at the edges: 4 skus x 2 stores (ids up to `u64::MAX`),
//! 6 reservation ids that collide on purpose (three of them in one shard), quantities of 0, 1, small and
//! near `u32::MAX`, ttls of 0 and `u64::MAX`, clock jumps of a ttl, of the
//! retention window (and one ms less), and up to saturation, multi-line
//! carts with repeated items, more than 256 lines, and exact retries of the
//! last reserve (in the same or reversed line order); partial commits, POS
//! baskets, compare-and-set counts, `reserve_any` over the stores and one
//! never stocked, and the consistency check; two campaigns with small
//! quotas and limits over four customers (ids left out, several lines),
//! reorder points and the `alerts` op.
//!
//! The engine runs with the contract's defaults (the replay tool's), so the
//! script printed on a failure reproduces with
//! `cargo run --example replay < script.jsonl`, except that its item index
//! is built for 16 items (cheap to build, crowded probes; a "wide" input
//! adds 20 skus so items also land in the index's locked overflow map), and
//! its shards compact their records as soon as two places are handed out
//! and half are free, so the positions of what it remembers change often,
//! and its id filters have 4 to 8 counters and grow after one refusal, so
//! that a handful of ids makes them switch on, grow and shrink.
#![no_main]

mod common;

use arbitrary::Arbitrary;
use common::request_json;
use libfuzzer_sys::fuzz_target;
use omnistock::model::{Conservation, Disagreement, Lockstep};
use omnistock::replay::{format_outcome, Request};
use omnistock::{
    CampaignId, Command, CustomerId, Line, ReservationId, Sku, StoreId, DEFAULT_RETENTION_MS,
    DEFAULT_TTL_MS,
};
use std::fmt::Write as _;

const SKUS: [u64; 4] = [1, 2, 3, u64::MAX];
const STORES: [u64; 2] = [10, u64::MAX];
/// The item index is built for this many items (the smallest it takes):
/// cheap to build, and crowded enough that probes collide.
const EXPECTED_ITEMS: usize = 16;
/// In a wide run the catalogue has this many more skus (at store 10), so
/// items pass the index's half and go to its locked overflow map.
const WIDE_SKUS: u64 = 20;
/// 0, 8 and 16 share a reservation shard (see `id_hash`), so its id filter
/// grows and shrinks and its slabs get compacted.
const IDS: [u64; 6] = [0, 8, 16, 1, 2, u64::MAX];
const MAX_OPS: usize = 256;
const MAX_CART: usize = 6;

#[derive(Arbitrary, Debug, Clone, Copy)]
enum Item {
    /// One of the 8 hot items.
    Hot(u8),
    /// One of the wide catalogue's other items (a hot one in a narrow run).
    Wide(u8),
}

impl Item {
    fn key(self, wide: bool) -> (Sku, StoreId) {
        match self {
            Item::Wide(n) if wide => (Sku(100 + u64::from(n) % WIDE_SKUS), StoreId(10)),
            Item::Hot(n) | Item::Wide(n) => {
                let i = usize::from(n) % (SKUS.len() * STORES.len());
                (Sku(SKUS[i % SKUS.len()]), StoreId(STORES[i / SKUS.len()]))
            }
        }
    }
}

#[derive(Arbitrary, Debug, Clone, Copy)]
struct Id(u8);

impl Id {
    fn id(self) -> ReservationId {
        ReservationId(IDS[usize::from(self.0) % IDS.len()])
    }
}

#[derive(Arbitrary, Debug, Clone, Copy)]
enum Qty {
    Zero,
    One,
    Small(u8),
    Max,
    NearMax(u8),
    Any(u32),
}

impl Qty {
    fn value(self) -> u32 {
        match self {
            Qty::Zero => 0,
            Qty::One => 1,
            Qty::Small(n) => u32::from(n % 16),
            Qty::Max => u32::MAX,
            Qty::NearMax(n) => u32::MAX - u32::from(n),
            Qty::Any(n) => n,
        }
    }
}

#[derive(Arbitrary, Debug, Clone, Copy)]
enum Ttl {
    Zero,
    Short(u16),
    Default,
    Retention,
    Max,
    Any(u64),
}

impl Ttl {
    fn value(self) -> u64 {
        match self {
            Ttl::Zero => 0,
            Ttl::Short(n) => u64::from(n),
            Ttl::Default => 900_000,
            Ttl::Retention => 86_400_000,
            Ttl::Max => u64::MAX,
            Ttl::Any(n) => n,
        }
    }
}

#[derive(Arbitrary, Debug, Clone, Copy)]
enum Jump {
    Ms(u16),
    Minutes(u8),
    Ttl,
    Retention,
    RetentionLessOne,
    Huge(u64),
    Max,
}

impl Jump {
    fn value(self) -> u64 {
        match self {
            Jump::Ms(n) => u64::from(n),
            Jump::Minutes(n) => u64::from(n) * 60_000,
            Jump::Ttl => 900_000,
            Jump::Retention => 86_400_000,
            Jump::RetentionLessOne => 86_399_999,
            Jump::Huge(n) => n,
            Jump::Max => u64::MAX,
        }
    }
}

#[derive(Arbitrary, Debug, Clone)]
enum Op {
    Restock(Item, Qty),
    SetOnHand(Item, Qty),
    SetSafetyStock(Item, Qty),
    Sell(Item, Qty, bool),
    Level(Item),
    Reserve {
        id: Id,
        in_store: bool,
        ttl: Option<Ttl>,
        lines: Vec<(Item, Qty)>,
    },
    /// More than 256 lines: `invalid` before anything else is looked at.
    ReserveTooMany(Id, u8),
    /// The last reserve again, exactly (a client retry).
    Retry,
    /// The last reserve again with its lines reversed (same request).
    RetryReversed,
    Commit(Id),
    Release(Id),
    Extend(Id, Ttl),
    Get(Id),
    Expire,
    Advance(Jump),
    // v2: fulfilment.
    /// A compare-and-set cycle count.
    CountExpecting(Item, Qty, Qty),
    /// A partial commit (the picked lines, repeats and strangers included).
    CommitLines(Id, Vec<(Item, Qty)>),
    /// A POS basket.
    SellBasket(Vec<(Item, Qty)>, bool),
    /// Sourcing among the stores (and one never stocked), in any order.
    ReserveAny {
        id: Id,
        sku: u8,
        qty: Qty,
        stores: Vec<u8>,
        split: bool,
        in_store: bool,
        ttl: Option<Ttl>,
    },
    Check,
    // v2: campaigns and alerts.
    /// Define (or redefine) one of two campaigns on an item.
    Campaign {
        campaign: bool,
        item: Item,
        quota: u8,
        per_customer: u8,
    },
    /// A campaign reservation; either id may be left out (invalid), and
    /// the lines may be other than one.
    ReserveCampaign {
        id: Id,
        in_store: bool,
        ttl: Option<Ttl>,
        lines: Vec<(Item, Qty)>,
        campaign: Option<bool>,
        customer: Option<u8>,
    },
    SetReorderPoint(Item, u8),
    Alerts,
}

fn to_request(op: &Op, wide: bool, last_reserve: &mut Option<Command>) -> Request {
    let command = match *op {
        Op::Restock(item, qty) => {
            let (sku, store) = item.key(wide);
            Command::Restock {
                sku,
                store,
                qty: qty.value(),
            }
        }
        Op::SetOnHand(item, qty) => {
            let (sku, store) = item.key(wide);
            Command::SetOnHand {
                sku,
                store,
                qty: qty.value(),
                expect: None,
            }
        }
        Op::SetSafetyStock(item, qty) => {
            let (sku, store) = item.key(wide);
            Command::SetSafetyStock {
                sku,
                store,
                qty: qty.value(),
            }
        }
        Op::Sell(item, qty, in_store) => {
            let (sku, store) = item.key(wide);
            Command::Sell {
                sku,
                store,
                qty: qty.value(),
                channel: common::channel(in_store),
            }
        }
        Op::Level(item) => {
            let (sku, store) = item.key(wide);
            Command::Level { sku, store }
        }
        Op::Reserve {
            id,
            in_store,
            ttl,
            ref lines,
        } => {
            let lines = lines
                .iter()
                .take(MAX_CART)
                .map(|&(item, qty)| {
                    let (sku, store) = item.key(wide);
                    Line::new(sku, store, qty.value())
                })
                .collect();
            let command = Command::Reserve {
                id: id.id(),
                channel: common::channel(in_store),
                ttl_ms: ttl.map(Ttl::value),
                lines,
            };
            *last_reserve = Some(command.clone());
            command
        }
        Op::ReserveTooMany(id, extra) => {
            let lines = (0..257 + usize::from(extra % 4))
                .map(|i| Line::new(Sku(1_000 + i as u64), StoreId(10), 1))
                .collect();
            Command::Reserve {
                id: id.id(),
                channel: common::channel(false),
                ttl_ms: None,
                lines,
            }
        }
        Op::Retry | Op::RetryReversed => match last_reserve.clone() {
            Some(Command::Reserve {
                id,
                channel,
                ttl_ms,
                mut lines,
            }) => {
                if matches!(op, Op::RetryReversed) {
                    lines.reverse();
                }
                Command::Reserve {
                    id,
                    channel,
                    ttl_ms,
                    lines,
                }
            }
            _ => Command::Expire,
        },
        Op::Commit(id) => Command::Commit {
            id: id.id(),
            lines: None,
        },
        Op::Release(id) => Command::Release { id: id.id() },
        Op::Extend(id, ttl) => Command::Extend {
            id: id.id(),
            ttl_ms: ttl.value(),
        },
        Op::Get(id) => Command::Get { id: id.id() },
        Op::Expire => Command::Expire,
        Op::Advance(jump) => return Request::Advance { ms: jump.value() },
        Op::CountExpecting(item, qty, expect) => {
            let (sku, store) = item.key(wide);
            Command::SetOnHand {
                sku,
                store,
                qty: qty.value(),
                expect: Some(expect.value()),
            }
        }
        Op::CommitLines(id, ref picked) => Command::Commit {
            id: id.id(),
            lines: Some(lines_of(picked, wide)),
        },
        Op::SellBasket(ref lines, in_store) => Command::SellLines {
            lines: lines_of(lines, wide),
            channel: common::channel(in_store),
        },
        Op::ReserveAny {
            id,
            sku,
            qty,
            ref stores,
            split,
            in_store,
            ttl,
        } => Command::ReserveAny {
            id: id.id(),
            sku: Sku(SKUS[usize::from(sku) % SKUS.len()]),
            qty: qty.value(),
            // Store 11 is never stocked.
            stores: stores
                .iter()
                .take(4)
                .map(|&n| StoreId([10, u64::MAX, 11][usize::from(n) % 3]))
                .collect(),
            split,
            channel: common::channel(in_store),
            ttl_ms: ttl.map(Ttl::value),
        },
        Op::Check => Command::Check,
        Op::Campaign {
            campaign,
            item,
            quota,
            per_customer,
        } => {
            let (sku, store) = item.key(wide);
            Command::Campaign {
                campaign: CampaignId(u64::from(campaign)),
                sku,
                store,
                quota: u32::from(quota % 12),
                per_customer: u32::from(per_customer % 5),
            }
        }
        Op::ReserveCampaign {
            id,
            in_store,
            ttl,
            ref lines,
            campaign,
            customer,
        } => Command::ReserveCampaign {
            id: id.id(),
            channel: common::channel(in_store),
            ttl_ms: ttl.map(Ttl::value),
            lines: lines_of(lines, wide),
            campaign: campaign.map(|c| CampaignId(u64::from(c))),
            customer: customer.map(|c| CustomerId(u64::from(c % 4))),
        },
        Op::SetReorderPoint(item, qty) => {
            let (sku, store) = item.key(wide);
            Command::SetReorderPoint {
                sku,
                store,
                qty: u32::from(qty % 16),
            }
        }
        Op::Alerts => Command::Alerts,
    };
    Request::Command(command)
}

/// Lines of a basket or a partial commit, at most `MAX_CART`.
fn lines_of(lines: &[(Item, Qty)], wide: bool) -> Vec<Line> {
    lines
        .iter()
        .take(MAX_CART)
        .map(|&(item, qty)| {
            let (sku, store) = item.key(wide);
            Line::new(sku, store, qty.value())
        })
        .collect()
}

/// The script so far, in the replay format, with the engine's answers.
fn script(history: &[(Request, String)]) -> String {
    let mut out = String::from(
        "replay script (cargo run --example replay < script.jsonl; the engine here was built \
         with expected_items(16), compaction(2, 2) and id filters of 4 to 8 counters growing \
         after one refusal, the replay tool's with the defaults, so a bug of the index's overflow \
         path, of compaction or of a filter's growth may not show there):\n",
    );
    for (request, _) in history {
        let _ = writeln!(out, "{}", request_json(request));
    }
    out.push_str("engine answers:\n");
    for (_, answer) in history {
        let _ = writeln!(out, "{answer}");
    }
    out
}

#[derive(Arbitrary, Debug)]
struct Input {
    wide: bool,
    ops: Vec<Op>,
}

fuzz_target!(|input: Input| {
    let Input { wide, ops } = input;
    let mut run = Lockstep::new(DEFAULT_TTL_MS, DEFAULT_RETENTION_MS, |builder| {
        builder
            .expected_items(EXPECTED_ITEMS)
            .compaction(2, 2)
            .id_filter_counters(4, 8)
            .id_filter_refusals_before_growing(1)
    });
    let mut books = Conservation::default();
    let mut last_reserve = None;
    let mut history: Vec<(Request, String)> = Vec::new();
    let disagree = |history: &[(Request, String)], what: &dyn std::fmt::Display| -> ! {
        panic!("{what}\n{}", script(history))
    };

    // Every hold runs out at the end: nothing may stay reserved.
    let finale = [Op::Advance(Jump::Max), Op::Expire];
    for op in ops.iter().take(MAX_OPS).chain(&finale) {
        let request = to_request(op, wide, &mut last_reserve);
        match &request {
            Request::Advance { ms } => {
                let now = run.advance(*ms).unwrap_or_else(|d| disagree(&history, &d));
                history.push((request.clone(), format!(r#"{{"ok":true,"now_ms":{now}}}"#)));
            }
            Request::Command(command) => {
                let (engine_answer, model_answer) = match run.apply(command) {
                    Ok(answer) => (answer, None),
                    Err(Disagreement::Answer { engine, model, .. }) => (*engine, Some(*model)),
                    Err(other) => disagree(&history, &other),
                };
                history.push((request.clone(), format_outcome(&engine_answer)));
                if let Some(model) = model_answer {
                    panic!(
                        "engine and model disagree on the last request\n{}\n  engine: {}\n  model:  {}\n  engine: {engine_answer:?}\n  model:  {model:?}",
                        script(&history),
                        format_outcome(&engine_answer),
                        format_outcome(&model),
                    );
                }
                if let Err(broken) = books.record(command, &engine_answer) {
                    disagree(&history, &broken);
                }
            }
            Request::Refused(_) => unreachable!("no refused request is generated"),
        }
        if let Err(d) = run.check_state() {
            disagree(&history, &format!("after the last request: {d}"));
        }
        if let Err(broken) = books.check_on_hand(&run.engine_items()) {
            disagree(&history, &format!("units not conserved: {broken}"));
        }
    }
    if let Err(broken) = Conservation::check_all_ended(&run.engine_items()) {
        disagree(&history, &broken);
    }
});

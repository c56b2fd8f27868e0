//! Journal records under concurrency, kept in memory ([`MemorySink`]):
//! many threads run every mutating operation on a few hot items, then the
//! inventory is rebuilt from the records (all of them, and prefixes cut
//! at many points) and checked: the whole journal gives the final state
//! exactly, and every prefix is a state the engine could have reached
//! (`check()` consistent: every cell's `reserved` is what the pending
//! reservations hold, and `reserved <= on_hand`). A sequence number taken
//! outside the claims would let a reserve's record come before the
//! restock whose units it holds, and a prefix would show it.

use omnistock::durability::{Change, Note, Op};
use omnistock::model::{MemorySink, Rng};
use omnistock::{
    CampaignId, Channel, Clock, CustomerId, Inventory, Line, ManualClock, ReservationId,
    ReservationState, Sku, SourceRequest, StoreId,
};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

const THREADS: u64 = 8;
const OPS: u64 = 3_000;

fn line(rng: &mut Rng) -> Line {
    Line::new(Sku(rng.below(3)), StoreId(rng.below(2)), rng.qty(1, 3))
}

fn run(seed: u64) -> (Arc<MemorySink>, Vec<u8>, Inventory, Arc<ManualClock>) {
    let clock = Arc::new(ManualClock::new());
    let sink = Arc::new(MemorySink::new());
    let inventory = Inventory::builder()
        .clock(clock.clone())
        .retention_ms(50)
        .record_sink(sink.clone())
        .build();
    let image = inventory.image(0);
    let ids = AtomicU64::new(1);
    std::thread::scope(|scope| {
        for t in 0..THREADS {
            let (inventory, clock, ids) = (&inventory, &clock, &ids);
            scope.spawn(move || {
                let mut rng = Rng::new(seed * 100 + t);
                let mut mine: Vec<ReservationId> = Vec::new();
                for _ in 0..OPS {
                    let channel = rng.channel();
                    let pick = |rng: &mut Rng, mine: &Vec<ReservationId>| {
                        (!mine.is_empty()).then(|| mine[rng.index(mine.len())])
                    };
                    match rng.below(16) {
                        0 | 1 => {
                            let l = line(&mut rng);
                            let note = Note::reason(1).with_reference(format!("ASN-{t}"));
                            let _ = inventory
                                .with_note(&note, |inv| inv.restock(l.sku, l.store, l.qty * 2));
                        }
                        2 => {
                            let l = line(&mut rng);
                            let _ = inventory.sell(l.sku, l.store, l.qty, channel);
                        }
                        3..=5 => {
                            let id = ReservationId(ids.fetch_add(1, Ordering::Relaxed));
                            let mut lines = vec![line(&mut rng)];
                            if rng.percent(40) {
                                let more = line(&mut rng);
                                if more.item() != lines[0].item() {
                                    lines.push(more);
                                }
                            }
                            if inventory
                                .reserve_with_ttl(id, channel, &lines, rng.range(1, 40))
                                .is_ok()
                            {
                                mine.push(id);
                            }
                        }
                        6 => {
                            let id = ReservationId(ids.fetch_add(1, Ordering::Relaxed));
                            let stores = [StoreId(0), StoreId(1)];
                            let mut request =
                                SourceRequest::new(Sku(rng.below(3)), rng.qty(1, 4), &stores);
                            if rng.percent(50) {
                                request = request.split();
                            }
                            if inventory.reserve_any(id, channel, &request, 30).is_ok() {
                                mine.push(id);
                            }
                        }
                        7 | 8 => {
                            if let Some(id) = pick(&mut rng, &mine) {
                                let _ = inventory.commit(id);
                            }
                        }
                        9 => {
                            if let Some(id) = pick(&mut rng, &mine) {
                                if let Ok(info) = inventory.get(id) {
                                    let part: Vec<Line> = info
                                        .lines
                                        .iter()
                                        .map(|l| Line {
                                            qty: l.qty / 2,
                                            ..*l
                                        })
                                        .collect();
                                    let _ = inventory.commit_lines(id, &part);
                                }
                            }
                        }
                        10 => {
                            if let Some(id) = pick(&mut rng, &mine) {
                                let _ = inventory.release(id);
                            }
                        }
                        11 => {
                            if let Some(id) = pick(&mut rng, &mine) {
                                let _ = inventory.extend(id, rng.range(1, 40));
                            }
                        }
                        12 => {
                            let l = line(&mut rng);
                            if rng.percent(50) {
                                let _ = inventory.set_on_hand(l.sku, l.store, rng.qty(0, 8));
                            } else if let Ok(level) = inventory.level(l.sku, l.store) {
                                let _ = inventory.set_on_hand_expecting(
                                    l.sku,
                                    l.store,
                                    level.on_hand + 1,
                                    level.on_hand,
                                );
                            }
                        }
                        13 => {
                            let l = line(&mut rng);
                            inventory.set_safety_stock(l.sku, l.store, rng.qty(0, 2));
                        }
                        14 => {
                            let a = line(&mut rng);
                            let b = line(&mut rng);
                            let basket = if a.item() == b.item() {
                                vec![a]
                            } else {
                                vec![a, b]
                            };
                            let _ = inventory.sell_lines(&basket, Channel::InStore);
                        }
                        _ => {
                            if t == 0 {
                                clock.advance(rng.range(1, 10));
                                inventory.record_clock().unwrap();
                            }
                            inventory.expire();
                        }
                    }
                }
            });
        }
    });
    (sink, image, inventory, clock)
}

fn rebuilt(sink: &MemorySink, image: &[u8], upto: u64) -> Inventory {
    let (inventory, last) = Inventory::builder()
        .clock(Arc::new(ManualClock::new()))
        .retention_ms(50)
        .recover(Some(image), sink.between(0, upto))
        .expect("the engine's records recover");
    assert_eq!(last, upto);
    inventory
}

#[test]
fn the_whole_journal_gives_the_final_state_and_every_prefix_is_reachable() {
    for seed in 0..3 {
        let (sink, image, inventory, clock) = run(seed);
        let last = sink.watermark();
        assert_eq!(
            last + 1,
            inventory.next_seq(),
            "dense numbers, all handed over"
        );
        let whole = rebuilt(&sink, &image, last);
        assert_eq!(whole.items(), inventory.items());
        assert_eq!(whole.reservation_count(), inventory.reservation_count());
        assert_eq!(whole.pending_count(), inventory.pending_count());
        assert_eq!(whole.now_ms(), clock.now_ms(), "the clock comes back");
        assert!(whole.check().consistent);
        let mut rng = Rng::new(seed);
        for _ in 0..60 {
            let cut = rng.below(last + 1);
            let prefix = rebuilt(&sink, &image, cut);
            let report = prefix.check();
            assert!(
                report.consistent,
                "seed {seed}, prefix up to {cut}: {report:?}"
            );
        }
        // A snapshot image taken now, and the records after it, give the
        // same state as the whole journal.
        let covers = sink.watermark();
        let later = inventory.image(covers);
        let (from_image, _) = Inventory::builder()
            .retention_ms(50)
            .recover(Some(&later), sink.after(covers))
            .unwrap();
        assert_eq!(from_image.items(), inventory.items());
        assert_eq!(
            from_image.reservation_count(),
            inventory.reservation_count()
        );
    }
}

#[test]
fn a_snapshot_taken_under_traffic_plus_the_records_after_it_is_exact() {
    let clock = Arc::new(ManualClock::new());
    let sink = Arc::new(MemorySink::new());
    let inventory = Inventory::builder()
        .clock(clock)
        .record_sink(sink.clone())
        .build();
    for store in 0..2 {
        inventory
            .restock(Sku(1), StoreId(store), 1_000_000)
            .unwrap();
    }
    let next = AtomicU64::new(1);
    let mut images = Vec::new();
    std::thread::scope(|scope| {
        for t in 0..4u64 {
            let (inventory, next) = (&inventory, &next);
            scope.spawn(move || {
                for n in 0..5_000u64 {
                    let id = ReservationId(next.fetch_add(1, Ordering::Relaxed));
                    let l = [
                        Line::new(Sku(1), StoreId(n % 2), 1),
                        Line::new(Sku(1), StoreId((n + 1) % 2), 1),
                    ];
                    let lines = if t % 2 == 0 { &l[..1] } else { &l[..] };
                    inventory.reserve(id, Channel::InStore, lines).unwrap();
                    if n % 3 == 0 {
                        inventory.commit(id).unwrap();
                    } else if n % 3 == 1 {
                        inventory.release(id).unwrap();
                    }
                }
            });
        }
        for _ in 0..20 {
            let covers = sink.watermark();
            images.push((covers, inventory.image(covers)));
            std::thread::yield_now();
        }
    });
    let final_items = inventory.items();
    for (covers, image) in &images {
        let (recovered, _) = Inventory::builder()
            .recover(Some(image), sink.after(*covers))
            .unwrap();
        assert_eq!(recovered.items(), final_items);
        assert_eq!(recovered.pending_count(), inventory.pending_count());
        assert!(recovered.check().consistent);
    }
}

#[test]
fn records_carry_the_note_post_values_and_the_operation() {
    let sink = Arc::new(MemorySink::new());
    let inventory = Inventory::builder().record_sink(sink.clone()).build();
    let note = Note::reason(3).with_reference("PO-77");
    inventory
        .with_note(&note, |inv| inv.restock(Sku(1), StoreId(2), 5))
        .unwrap();
    inventory
        .reserve(
            ReservationId(9),
            Channel::Online,
            &[Line::new(Sku(1), StoreId(2), 2)],
        )
        .unwrap();
    // A refusal writes nothing.
    assert!(inventory
        .sell(Sku(1), StoreId(2), 9, Channel::InStore)
        .is_err());
    inventory.commit(ReservationId(9)).unwrap();
    let records = sink.decoded();
    let ops: Vec<Op> = records.iter().map(|r| r.op).collect();
    assert_eq!(ops, [Op::Restock, Op::Reserve, Op::Commit]);
    assert_eq!(records[0].note.as_ref(), Some(&note));
    assert_eq!(records[1].note, None);
    assert!(records[1].changes.contains(&Change::Item {
        item: omnistock::ItemKey::new(Sku(1), StoreId(2)),
        on_hand: 5,
        reserved: 2
    }));
    assert_eq!(records.iter().map(|r| r.seq).collect::<Vec<_>>(), [1, 2, 3]);
}

/// A sink whose disk has failed: it takes records but never makes them
/// durable.
#[derive(Debug, Default)]
struct FailedDisk {
    appended: std::sync::Mutex<Vec<u64>>,
}

impl omnistock::durability::RecordSink for FailedDisk {
    fn append(&self, seq: u64, _payload: &[u8]) {
        self.appended.lock().unwrap().push(seq);
    }

    fn acknowledge(&self, _seq: u64) -> Result<(), omnistock::Error> {
        Err(omnistock::Error::NotDurable {
            reason: "disk full".into(),
        })
    }
}

#[test]
fn a_change_that_cannot_be_made_durable_answers_not_durable_and_a_refusal_writes_nothing() {
    let sink = Arc::new(FailedDisk::default());
    let inventory = Inventory::builder().record_sink(sink.clone()).build();
    let answer = inventory.restock(Sku(1), StoreId(1), 3);
    let error = answer.unwrap_err();
    assert_eq!(error.name(), "not_durable");
    // In memory it happened (others may see it); it is not acknowledged.
    assert_eq!(inventory.level(Sku(1), StoreId(1)).unwrap().on_hand, 3);
    assert_eq!(*sink.appended.lock().unwrap(), [1]);
    // A refusal writes nothing and waits for nothing: its own answer.
    let refused = inventory.sell(Sku(1), StoreId(1), 9, Channel::InStore);
    assert_eq!(refused.unwrap_err().name(), "insufficient");
    let unknown = inventory.commit(ReservationId(5));
    assert_eq!(unknown.unwrap_err().name(), "unknown_reservation");
    assert_eq!(sink.appended.lock().unwrap().len(), 1);
}

/// Campaign counters recounted from records `..=upto`, as the contract
/// defines them: a definition starts a campaign (or changes a live one's
/// limits), a campaign reservation counts its units in, a finish gives back
/// all of them but what a commit kept, an end drops the campaign.
/// Returns each live campaign's used units and customer counts.
fn recount(
    records: &[omnistock::durability::Record],
    upto: u64,
) -> std::collections::HashMap<CampaignId, (u32, std::collections::HashMap<CustomerId, u32>)> {
    use std::collections::HashMap;
    type Counters = (u32, HashMap<CustomerId, u32>);
    let mut live: HashMap<CampaignId, (u64, Counters)> = HashMap::new();
    let mut generation = 0u64;
    let mut counted: HashMap<ReservationId, (CampaignId, u64, CustomerId, u32)> = HashMap::new();
    for record in records.iter().filter(|r| r.seq <= upto) {
        for change in &record.changes {
            match change {
                Change::CampaignDefined { campaign, .. } => {
                    live.entry(*campaign).or_insert_with(|| {
                        generation += 1;
                        (generation, (0, HashMap::new()))
                    });
                }
                Change::CampaignEnded { campaign } => {
                    live.remove(campaign);
                }
                Change::Reserved {
                    id,
                    lines,
                    campaign: Some((campaign, customer)),
                    ..
                } => {
                    let (generation, counters) = live.get_mut(campaign).expect("defined first");
                    counters.0 += lines[0].qty;
                    *counters.1.entry(*customer).or_default() += lines[0].qty;
                    counted.insert(*id, (*campaign, *generation, *customer, lines[0].qty));
                }
                Change::Finished {
                    id, state, parts, ..
                } => {
                    let Some((campaign, then, customer, qty)) = counted.remove(id) else {
                        continue;
                    };
                    let kept = match state {
                        ReservationState::Committed => parts.first().copied().unwrap_or(qty),
                        _ => 0,
                    };
                    if let Some((generation, counters)) = live.get_mut(&campaign) {
                        if *generation == then {
                            counters.0 -= qty - kept;
                            let count = counters.1.entry(customer).or_default();
                            *count -= qty - kept;
                            if *count == 0 {
                                counters.1.remove(&customer);
                            }
                        }
                    }
                }
                _ => {}
            }
        }
    }
    live.into_iter()
        .map(|(campaign, (_, counters))| (campaign, counters))
        .collect()
}

const SALES: [(CampaignId, Sku); 2] = [(CampaignId(1), Sku(0)), (CampaignId(2), Sku(1))];
const CUSTOMERS: u64 = 12;
const QUOTA: u32 = 40;
const PER_CUSTOMER: u32 = 4;

/// Checks `inventory`'s campaign counters against the recount of records
/// `..=upto`, and the limits.
fn campaigns_agree(inventory: &Inventory, records: &[omnistock::durability::Record], upto: u64) {
    let recounted = recount(records, upto);
    for (campaign, _) in SALES {
        let usage = inventory.campaign(campaign);
        match recounted.get(&campaign) {
            None => assert!(usage.is_none(), "prefix {upto}: {campaign} ended"),
            Some((used, customers)) => {
                let usage = usage.expect("live");
                assert_eq!(usage.used, *used, "prefix {upto}: {campaign} used");
                assert!(usage.used <= QUOTA, "prefix {upto}: quota passed");
                assert_eq!(usage.customers, customers.len(), "prefix {upto}");
                for c in 0..CUSTOMERS {
                    let count = inventory.campaign_customer_used(campaign, CustomerId(c));
                    assert_eq!(
                        count,
                        customers.get(&CustomerId(c)).copied().unwrap_or(0),
                        "prefix {upto}: {campaign}, customer {c}"
                    );
                    assert!(count <= PER_CUSTOMER, "prefix {upto}: limit passed");
                }
            }
        }
    }
}

#[test]
fn campaign_runs_recover_exactly_from_every_prefix_and_after_a_snapshot() {
    let clock = Arc::new(ManualClock::new());
    let sink = Arc::new(MemorySink::new());
    let inventory = Inventory::builder()
        .clock(clock.clone())
        .retention_ms(20)
        .record_sink(sink.clone())
        .build();
    let image = inventory.image(0);
    for (campaign, sku) in SALES {
        inventory.restock(sku, StoreId(0), 30).unwrap();
        inventory
            .define_campaign(campaign, sku, StoreId(0), QUOTA, PER_CUSTOMER - 1)
            .unwrap();
    }
    let ids = AtomicU64::new(1);
    let mut images = Vec::new();
    std::thread::scope(|scope| {
        for t in 0..4u64 {
            let (inventory, clock, ids) = (&inventory, &clock, &ids);
            scope.spawn(move || {
                let mut rng = Rng::new(0xCA4 + t);
                let mut mine: Vec<ReservationId> = Vec::new();
                for _ in 0..600 {
                    let (campaign, sku) = SALES[rng.index(SALES.len())];
                    let pick = |rng: &mut Rng, mine: &Vec<ReservationId>| {
                        (!mine.is_empty()).then(|| mine[rng.index(mine.len())])
                    };
                    match rng.below(12) {
                        0..=4 => {
                            let id = ReservationId(ids.fetch_add(1, Ordering::Relaxed));
                            let line = Line::new(sku, StoreId(0), rng.qty(1, 2));
                            let customer = CustomerId(rng.below(CUSTOMERS));
                            let ttl = rng.range(1, 30);
                            if inventory
                                .reserve_in_campaign(
                                    id,
                                    Channel::Online,
                                    line,
                                    campaign,
                                    customer,
                                    ttl,
                                )
                                .is_ok()
                            {
                                mine.push(id);
                            }
                        }
                        5 => {
                            if let Some(id) = pick(&mut rng, &mine) {
                                let _ = inventory.commit(id);
                            }
                        }
                        6 => {
                            if let Some(id) = pick(&mut rng, &mine) {
                                if let Ok(info) = inventory.get(id) {
                                    let part = Line {
                                        qty: info.lines[0].qty / 2,
                                        ..info.lines[0]
                                    };
                                    let _ = inventory.commit_lines(id, &[part]);
                                }
                            }
                        }
                        7 => {
                            if let Some(id) = pick(&mut rng, &mine) {
                                let _ = inventory.release(id);
                            }
                        }
                        8 => {
                            let _ = inventory.restock(sku, StoreId(0), 3);
                        }
                        9 => {
                            // Redefinition: the same or a larger limit.
                            let per = PER_CUSTOMER - u32::from(rng.percent(50));
                            let _ =
                                inventory.define_campaign(campaign, sku, StoreId(0), QUOTA, per);
                        }
                        10 if t == 1 && rng.percent(10) => {
                            let _ = inventory.end_campaign(campaign);
                            let _ = inventory.define_campaign(
                                campaign,
                                sku,
                                StoreId(0),
                                QUOTA,
                                PER_CUSTOMER,
                            );
                        }
                        _ => {
                            if t == 0 {
                                clock.advance(rng.range(1, 5));
                                inventory.record_clock().unwrap();
                            }
                            inventory.expire();
                        }
                    }
                }
            });
        }
        for _ in 0..10 {
            let covers = sink.watermark();
            images.push((covers, inventory.image(covers)));
            std::thread::yield_now();
        }
    });
    let records = sink.decoded();
    let last = sink.watermark();
    let changes = || records.iter().flat_map(|r| r.changes.iter());
    let joined = changes()
        .filter(|c| {
            matches!(
                c,
                Change::Reserved {
                    campaign: Some(_),
                    ..
                }
            )
        })
        .count();
    let ended = changes()
        .filter(|c| matches!(c, Change::CampaignEnded { .. }))
        .count();
    let finished = changes()
        .filter(|c| matches!(c, Change::Finished { .. }))
        .count();
    eprintln!("{last} records: {joined} campaign reservations, {finished} finishes, {ended} ends");
    assert!(
        joined > 50 && finished > 50 && ended > 0,
        "the run exercises campaigns"
    );
    campaigns_agree(&inventory, &records, last);
    for upto in 1..=last {
        let (prefix, _) = Inventory::builder()
            .clock(Arc::new(ManualClock::new()))
            .retention_ms(20)
            .recover(Some(&image), sink.between(0, upto))
            .expect("the engine's records recover");
        assert!(prefix.check().consistent, "prefix {upto}");
        campaigns_agree(&prefix, &records, upto);
    }
    images.push((last, inventory.image(last)));
    for (covers, image) in &images {
        let (recovered, _) = Inventory::builder()
            .retention_ms(20)
            .recover(Some(image), sink.after(*covers))
            .unwrap();
        assert_eq!(recovered.items(), inventory.items());
        assert_eq!(recovered.pending_count(), inventory.pending_count());
        campaigns_agree(&recovered, &records, last);
    }
}

#[test]
fn campaign_records_recover_and_a_reservation_outside_its_campaign_is_refused() {
    // fuzz/corpus/recovery/seed-campaign-records: a kind byte, then records
    // each after its length byte.
    let seed = include_bytes!("../fuzz/corpus/recovery/seed-campaign-records");
    let mut records = Vec::new();
    let mut rest = &seed[1..];
    while let Some((&len, tail)) = rest.split_first() {
        records.push((records.len() as u64 + 1, tail[..usize::from(len)].to_vec()));
        rest = &tail[usize::from(len)..];
    }
    let recover = |records: Vec<(u64, Vec<u8>)>| {
        Inventory::builder()
            .clock(Arc::new(ManualClock::new()))
            .recover(None, records)
    };
    // Defined, a reservation of 2 for customer 3 released, one of 1 for
    // customer 4 committed: 1 unit counted, by customer 4.
    let (inventory, _) = recover(records[..6].to_vec()).unwrap();
    let usage = inventory.campaign(CampaignId(7)).unwrap();
    assert_eq!((usage.used, usage.customers), (1, 1));
    assert_eq!(
        inventory.campaign_customer_used(CampaignId(7), CustomerId(4)),
        1
    );
    let (inventory, _) = recover(records.clone()).unwrap();
    assert!(inventory.campaign(CampaignId(7)).is_none(), "ended");
    // Without its definition the campaign reservation does not apply.
    let mut skipped = records.clone();
    skipped.remove(1);
    for (n, record) in skipped.iter_mut().enumerate() {
        record.0 = n as u64 + 1;
    }
    assert!(recover(skipped).is_err());
}

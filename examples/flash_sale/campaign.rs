//! `--campaign QUOTA,LIMIT,CUSTOMERS`: a flash sale with a quota and a
//! per-customer limit on omnistock, beside the plain hot run of the same
//! item in the same process.
//!
//! 1. Plain hot: the shopper threads reserve one unit of one item (its
//!    stock: the quota) with fresh ids until the time or operation budget
//!    is spent; a quarter of the holds are released, the rest committed,
//!    so the item sells out and then only refuses.
//! 2. Campaign: the same, on a fresh item of the same stock, through
//!    `reserve_in_campaign`, each cart by one of CUSTOMERS customers drawn
//!    at random (so customers come back and meet their limit).
//! 3. The sold-out refusal's cost: once the quota is exhausted, one thread
//!    times refusals of fresh ids (the sold-out path: loads and compares),
//!    beside refusals of a plain reserve of a sold-out item.
//! 4. Memory per customer: CUSTOMERS customers hold one unit each; the
//!    customer counters' bytes (the engine's account of its maps) and the
//!    process's resident growth, divided by CUSTOMERS; then every hold is
//!    released (the counters leave at 0) and the campaign ended.
//!
//! Proof by counting: every thread tallies the units each customer's
//! successful reserves hold or committed; merged, no customer passes the
//! limit, the total stays within the quota and equals the campaign's own
//! count, and each customer's counter equals the tally. A failed check
//! makes the exit status 1.

use crate::memory::rss_bytes;
use omnistock::{
    CampaignId, Channel, CustomerId, Error, Inventory, Line, ManualClock, ReservationId, Sku,
    StoreId,
};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

/// The sale's terms as given on the command line.
#[derive(Clone, Copy, Debug)]
pub struct Terms {
    pub quota: u32,
    pub per_customer: u32,
    pub customers: u64,
}

impl Terms {
    /// `QUOTA,LIMIT,CUSTOMERS`.
    pub fn parse(text: &str) -> Result<Terms, String> {
        let parts: Vec<&str> = text.split(',').map(str::trim).collect();
        let bad = || format!("--campaign: `{text}` is not QUOTA,LIMIT,CUSTOMERS");
        let [quota, per_customer, customers] = parts[..] else {
            return Err(bad());
        };
        let terms = Terms {
            quota: quota.parse().map_err(|_| bad())?,
            per_customer: per_customer.parse().map_err(|_| bad())?,
            customers: customers.parse().map_err(|_| bad())?,
        };
        if terms.customers == 0 {
            return Err("--campaign: CUSTOMERS must be at least 1".into());
        }
        Ok(terms)
    }
}

const STORE: StoreId = StoreId(1);
const SALE: CampaignId = CampaignId(1);

/// One thread's tally of a phase.
#[derive(Default)]
struct Tally {
    attempts: u64,
    reserved: u64,
    committed: u64,
    released: u64,
    quota_exhausted: u64,
    customer_limit: u64,
    insufficient: u64,
    /// Units per customer that stand (committed, or pending).
    units: HashMap<u64, u32>,
}

impl Tally {
    fn merge(&mut self, other: Tally) {
        self.attempts += other.attempts;
        self.reserved += other.reserved;
        self.committed += other.committed;
        self.released += other.released;
        self.quota_exhausted += other.quota_exhausted;
        self.customer_limit += other.customer_limit;
        self.insufficient += other.insufficient;
        for (customer, units) in other.units {
            *self.units.entry(customer).or_insert(0) += units;
        }
    }
}

/// How long a phase runs: shopper threads, at most `ops` attempts in
/// all, at most `duration`; `seed` draws customers and outcomes.
#[derive(Clone, Copy, Debug)]
struct Budget {
    threads: usize,
    ops: u64,
    duration: Duration,
    seed: u64,
}

/// Runs the budget's shoppers on `sku`, cart ids from `first_id`;
/// `campaign` (the number of customers) makes them campaign reserves.
/// Returns the merged tally and the attempts per second.
fn phase(
    inventory: &Arc<Inventory>,
    sku: Sku,
    campaign: Option<u64>,
    budget: Budget,
    first_id: u64,
) -> (Tally, f64) {
    let Budget {
        threads,
        ops,
        duration,
        seed,
    } = budget;
    let next = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let workers: Vec<_> = (0..threads)
        .map(|t| {
            let (inventory, next) = (inventory.clone(), next.clone());
            thread::spawn(move || {
                let mut tally = Tally::default();
                let mut state = seed ^ (t as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
                let mut random = move || {
                    state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
                    let mut z = state;
                    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
                    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
                    z ^ (z >> 31)
                };
                loop {
                    let n = next.fetch_add(1, Ordering::Relaxed);
                    if n >= ops || (n % 256 == 0 && started.elapsed() >= duration) {
                        break;
                    }
                    tally.attempts += 1;
                    let id = ReservationId(first_id + n);
                    let line = Line::new(sku, STORE, 1);
                    let customer = campaign.map(|customers| random() % customers);
                    let answer = match customer {
                        Some(customer) => inventory.reserve_in_campaign(
                            id,
                            Channel::Online,
                            line,
                            SALE,
                            CustomerId(customer),
                            60_000,
                        ),
                        None => inventory.reserve(id, Channel::Online, &[line]),
                    };
                    match answer {
                        Ok(_) => {
                            tally.reserved += 1;
                            if random() % 4 == 0 {
                                inventory.release(id).expect("a pending hold releases");
                                tally.released += 1;
                            } else {
                                inventory.commit(id).expect("a pending hold commits");
                                tally.committed += 1;
                                *tally.units.entry(customer.unwrap_or(0)).or_insert(0) += 1;
                            }
                        }
                        Err(Error::QuotaExhausted { .. }) => tally.quota_exhausted += 1,
                        Err(Error::CustomerLimit { .. }) => tally.customer_limit += 1,
                        Err(Error::Insufficient { .. }) => tally.insufficient += 1,
                        Err(other) => panic!("unexpected refusal: {other}"),
                    }
                }
                tally
            })
        })
        .collect();
    let mut total = Tally::default();
    for worker in workers {
        total.merge(worker.join().expect("a shopper thread panicked"));
    }
    let secs = started.elapsed().as_secs_f64().max(1e-9);
    let rate = total.attempts as f64 / secs;
    (total, rate)
}

/// Median ns of `rounds` batches of `batch` calls of `refuse(n)`.
fn median_ns(rounds: usize, batch: u64, mut refuse: impl FnMut(u64)) -> f64 {
    let mut samples: Vec<f64> = (0..rounds as u64)
        .map(|round| {
            let started = Instant::now();
            for n in 0..batch {
                refuse(round * batch + n);
            }
            started.elapsed().as_nanos() as f64 / batch as f64
        })
        .collect();
    samples.sort_by(f64::total_cmp);
    samples[samples.len() / 2]
}

/// The whole campaign run; one JSON line, or why a check failed.
pub fn run(
    terms: Terms,
    threads: usize,
    ops: u64,
    duration: Duration,
    seed: u64,
) -> Result<String, String> {
    let clock = Arc::new(ManualClock::new());
    let inventory = Arc::new(
        Inventory::builder()
            .clock(clock)
            .expected_items(1024)
            .expected_reservations((ops.min(4_000_000) as usize).max(1024))
            .build(),
    );
    let (plain_sku, sale_sku, memory_sku) = (Sku(1), Sku(2), Sku(3));
    let stock = terms.quota.max(1);
    for sku in [plain_sku, sale_sku] {
        inventory
            .restock(sku, STORE, stock)
            .map_err(|e| e.to_string())?;
    }
    // 1. Plain hot, 2. the campaign: same threads, budget and stock.
    let budget = Budget {
        threads,
        ops,
        duration,
        seed,
    };
    let (plain, plain_rate) = phase(&inventory, plain_sku, None, budget, 0);
    inventory
        .define_campaign(SALE, sale_sku, STORE, terms.quota, terms.per_customer)
        .map_err(|e| e.to_string())?;
    let (sale, sale_rate) = phase(&inventory, sale_sku, Some(terms.customers), budget, 1 << 40);

    // The proof by counting.
    let mut failures = Vec::new();
    let usage = inventory.campaign(SALE).ok_or("the campaign vanished")?;
    let counted: u64 = sale.units.values().map(|&u| u64::from(u)).sum();
    let max_per_customer = sale.units.values().copied().max().unwrap_or(0);
    let over_limit = sale
        .units
        .values()
        .filter(|&&u| u > terms.per_customer)
        .count();
    if over_limit > 0 {
        failures.push(format!("{over_limit} customers over the limit"));
    }
    if counted > u64::from(terms.quota) {
        failures.push(format!("{counted} units past a quota of {}", terms.quota));
    }
    if u64::from(usage.used) != counted {
        failures.push(format!(
            "the campaign counts {} units, the shoppers {counted}",
            usage.used
        ));
    }
    for (&customer, &units) in &sale.units {
        let engine = inventory.campaign_customer_used(SALE, CustomerId(customer));
        if engine != units {
            failures.push(format!(
                "customer {customer}: engine {engine}, tally {units}"
            ));
            break;
        }
    }
    let level = inventory
        .level(sale_sku, STORE)
        .map_err(|e| e.to_string())?;
    let oversold = u64::from(level.reserved.saturating_sub(level.on_hand));
    if u64::from(stock) - u64::from(level.on_hand) != counted {
        failures.push(format!(
            "{} units left the item, the shoppers committed {counted}",
            stock - level.on_hand
        ));
    }

    // 3. The sold-out refusal's cost, once the quota is spent (it is spent
    // if the run sold it all; spend the rest here otherwise).
    let mut customer = 1 << 50;
    let mut id = 1 << 50;
    while inventory.campaign(SALE).is_some_and(|u| u.used < u.quota) {
        let line = Line::new(sale_sku, STORE, 1);
        let spent = inventory.reserve_in_campaign(
            ReservationId(id),
            Channel::Online,
            line,
            SALE,
            CustomerId(customer),
            60_000,
        );
        if spent.is_err() {
            break; // a limit of 0: nothing can be spent
        }
        customer += 1;
        id += 1;
    }
    let _ = inventory.set_on_hand(plain_sku, STORE, 0);
    let sold_out = Line::new(sale_sku, STORE, 1);
    let sold_out_ns = median_ns(21, 20_000, |n| {
        let answer = inventory.reserve_in_campaign(
            ReservationId((1 << 52) + n),
            Channel::Online,
            sold_out,
            SALE,
            CustomerId(n),
            60_000,
        );
        debug_assert!(matches!(answer, Err(Error::QuotaExhausted { .. })));
        std::hint::black_box(answer.is_err());
    });
    let plain_line = [Line::new(plain_sku, STORE, 1)];
    let plain_sold_out_ns = median_ns(21, 20_000, |n| {
        let answer = inventory.reserve(ReservationId((1 << 53) + n), Channel::Online, &plain_line);
        std::hint::black_box(answer.is_err());
    });

    // 4. Memory per customer.
    let before = rss_bytes()?;
    let memory = CampaignId(2);
    let customers = terms.customers.min(2_000_000);
    inventory
        .restock(
            memory_sku,
            STORE,
            u32::try_from(customers).unwrap_or(u32::MAX),
        )
        .map_err(|e| e.to_string())?;
    inventory
        .define_campaign(memory, memory_sku, STORE, u32::MAX, 1)
        .map_err(|e| e.to_string())?;
    let base = 1u64 << 54;
    for n in 0..customers {
        inventory
            .reserve_in_campaign(
                ReservationId(base + n),
                Channel::Online,
                Line::new(memory_sku, STORE, 1),
                memory,
                CustomerId(n),
                3_600_000,
            )
            .map_err(|e| e.to_string())?;
    }
    let after = rss_bytes()?;
    let (counters, counter_bytes) = inventory.campaign_counter_memory();
    let held_counters = counters.saturating_sub(sale.units.len());
    for n in 0..customers {
        inventory
            .release(ReservationId(base + n))
            .map_err(|e| e.to_string())?;
    }
    let after_release = inventory
        .campaign(memory)
        .map_or(0, |usage| usage.customers);
    if after_release != 0 {
        failures.push(format!("{after_release} counters left after every release"));
    }
    inventory.end_campaign(memory).map_err(|e| e.to_string())?;

    let per = |total: f64| total / customers.max(1) as f64;
    let per_counter = counter_bytes as f64 / counters.max(1) as f64;
    Ok(format!(
        concat!(
            "{{\"engine\":\"omnistock\",\"workload\":\"campaign\",\"threads\":{},",
            "\"quota\":{},\"per_customer\":{},\"customers\":{},",
            "\"plain_hot_ops_per_s\":{:.0},\"campaign_ops_per_s\":{:.0},\"campaign_over_plain\":{:.3},",
            "\"attempts\":{},\"reserved\":{},\"committed\":{},\"released\":{},\"quota_used\":{},",
            "\"refused\":{{\"quota_exhausted\":{},\"customer_limit\":{},\"insufficient\":{}}},",
            "\"plain_refused\":{},\"customers_served\":{},\"max_per_customer\":{},\"customers_over_limit\":{},",
            "\"sold_out_refusal_ns\":{:.1},\"plain_sold_out_refusal_ns\":{:.1},",
            "\"counter_bytes_per_customer\":{:.1},\"rss_bytes_per_holding_customer\":{:.1},\"counters_held\":{},",
            "\"oversold\":{},\"checks_passed\":{},\"failures\":[{}]}}"
        ),
        threads,
        terms.quota,
        terms.per_customer,
        terms.customers,
        plain_rate,
        sale_rate,
        sale_rate / plain_rate.max(1e-9),
        sale.attempts,
        sale.reserved,
        sale.committed,
        sale.released,
        usage.used,
        sale.quota_exhausted,
        sale.customer_limit,
        sale.insufficient,
        plain.insufficient,
        sale.units.len(),
        max_per_customer,
        over_limit,
        sold_out_ns,
        plain_sold_out_ns,
        per_counter,
        per(after.saturating_sub(before) as f64),
        held_counters,
        oversold,
        failures.is_empty(),
        failures
            .iter()
            .map(|f| format!("\"{}\"", f.replace('"', "'")))
            .collect::<Vec<_>>()
            .join(","),
    ))
}

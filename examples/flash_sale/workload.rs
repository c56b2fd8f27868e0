//! The workloads: which items exist, their initial stock, and what a shopper
//! does next. Items are numbered `0..n`; each engine maps the number to its
//! own key (omnistock, mutex and dashmap: a `(sku, store)` pair, see
//! [`item_key`]).

use omnistock::{Channel, ItemKey, Sku, StoreId};
use std::time::Duration;

/// Stores per SKU in the item numbering: item `i` is SKU `1 + i / STORES` at
/// store `1 + i % STORES`, so 1,000,000 items are 20,000 SKUs in 50 stores.
pub const STORES: u32 = 50;

/// The `(sku, store)` of item `i`.
pub fn item_key(i: u32) -> ItemKey {
    ItemKey::new(
        Sku(1 + u64::from(i / STORES)),
        StoreId(1 + u64::from(i % STORES)),
    )
}

/// One item's shelf before the doors open.
#[derive(Clone, Copy, Debug)]
pub struct ItemSpec {
    pub stock: u32,
    pub safety: u32,
}

/// What happens to a cart once it is reserved.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fate {
    Commit,
    Abandon,
    LeaveToExpire,
}

/// A shopper's next step. The cart's lines are written into the caller's
/// buffer as `(item, qty)`, items distinct.
#[derive(Clone, Copy, Debug)]
pub enum Step {
    Cart {
        channel: Channel,
        fate: Fate,
    },
    /// A point-of-sale sale, in store, without a reservation.
    Sell {
        item: u32,
        qty: u32,
    },
    /// A delivery.
    Restock {
        item: u32,
        qty: u32,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Hot,
    Spread,
    Mixed,
    Zipf,
}

/// A workload: items, initial stock and the shoppers' behaviour.
#[derive(Debug)]
pub struct Workload {
    pub kind: Kind,
    pub name: &'static str,
    pub specs: Vec<ItemSpec>,
    zipf: Option<Zipf>,
    /// The item the supplier thread restocks now and then (the hottest).
    pub supplier_item: u32,
    pub restock_qty: u32,
    pub max_restocks: u32,
    pub restock_every: Duration,
}

impl Workload {
    /// `stock` is the hot item's initial units (hot workload only);
    /// `items` the catalogue size of the other workloads.
    pub fn new(name: &str, items: u32, stock: u32) -> Result<Workload, String> {
        let kind = match name {
            "hot" => Kind::Hot,
            "spread" => Kind::Spread,
            "mixed" => Kind::Mixed,
            "zipf" => Kind::Zipf,
            other => {
                return Err(format!(
                    "unknown workload `{other}` (hot, spread, mixed, zipf, memory)"
                ))
            }
        };
        Ok(match kind {
            Kind::Hot => {
                // One hot SKU at one store with a small stock, plus three
                // ordinary items that some carts add.
                let others = stock.saturating_mul(20);
                let mut specs = vec![ItemSpec {
                    stock,
                    safety: (stock / 10).max(1),
                }];
                specs.extend((0..3).map(|i| ItemSpec {
                    stock: others,
                    safety: if i == 0 { others / 100 } else { 0 },
                }));
                Workload {
                    kind,
                    name: "hot",
                    specs,
                    zipf: None,
                    supplier_item: 0,
                    restock_qty: (stock / 4).max(1),
                    max_restocks: 8,
                    restock_every: Duration::from_millis(250),
                }
            }
            Kind::Spread | Kind::Zipf => Workload {
                kind,
                name: if kind == Kind::Spread {
                    "spread"
                } else {
                    "zipf"
                },
                // Enough stock that spread never sells out in a run; under
                // Zipf the few hottest items may, and then reject.
                specs: (0..items)
                    .map(|i| ItemSpec {
                        stock: 1_000_000,
                        safety: i % 5,
                    })
                    .collect(),
                zipf: (kind == Kind::Zipf).then(|| Zipf::new(u64::from(items), 0.99)),
                supplier_item: 0,
                restock_qty: 10_000,
                max_restocks: 8,
                restock_every: Duration::from_millis(250),
            },
            Kind::Mixed => Workload {
                kind,
                name: "mixed",
                // A store shelf: a little stock per item, refilled by the
                // restocks interleaved with the carts.
                specs: (0..items)
                    .map(|i| ItemSpec {
                        stock: 100,
                        safety: i % 4,
                    })
                    .collect(),
                zipf: None,
                supplier_item: 0,
                restock_qty: 100,
                max_restocks: 8,
                restock_every: Duration::from_millis(250),
            },
        })
    }

    pub fn items(&self) -> u32 {
        self.specs.len() as u32
    }

    fn uniform_item(&self, rng: &mut Rng) -> u32 {
        rng.below(u64::from(self.items())) as u32
    }

    /// Zipf rank 1 is the most popular; ranks are scattered over the item
    /// numbers by a multiplication modulo n (an odd prime times a rank is a
    /// bijection when n is not a multiple of that prime).
    fn zipf_item(&self, zipf: &Zipf, rng: &mut Rng) -> u32 {
        let rank = zipf.sample(rng) - 1;
        let n = u64::from(self.items());
        if n % 1_000_003 == 0 {
            rank as u32
        } else {
            ((rank * 1_000_003) % n) as u32
        }
    }

    /// The most popular item (rank 1).
    pub fn hottest(&self) -> u32 {
        0
    }

    /// Writes the next step's cart (if a cart) into `cart`.
    pub fn next(&self, rng: &mut Rng, cart: &mut Vec<(u32, u32)>) -> Step {
        cart.clear();
        match self.kind {
            Kind::Hot => {
                // Most carts want one unit of the hot item; some add an
                // ordinary item before it (so a sold-out hot item makes the
                // engine roll the first line back); a few want ordinary
                // items only.
                let hot_qty = if rng.percent(90) { 1 } else { 2 };
                let roll = rng.below(100);
                if roll < 75 {
                    cart.push((0, hot_qty));
                } else if roll < 92 {
                    cart.push((1 + rng.below(3) as u32, 1 + rng.below(3) as u32));
                    cart.push((0, hot_qty));
                } else {
                    cart.push((1, 1 + rng.below(2) as u32));
                    cart.push((2 + rng.below(2) as u32, 1 + rng.below(2) as u32));
                }
                let channel = if rng.percent(85) {
                    Channel::Online
                } else {
                    Channel::InStore
                };
                Step::Cart {
                    channel,
                    fate: fate(rng, 60, 25),
                }
            }
            Kind::Spread | Kind::Zipf => {
                let item = match &self.zipf {
                    Some(zipf) => self.zipf_item(zipf, rng),
                    None => self.uniform_item(rng),
                };
                cart.push((item, if rng.percent(90) { 1 } else { 2 }));
                Step::Cart {
                    channel: Channel::Online,
                    fate: fate(rng, 60, 25),
                }
            }
            Kind::Mixed => {
                let roll = rng.below(100);
                if roll < 8 {
                    return Step::Sell {
                        item: self.uniform_item(rng),
                        qty: 1,
                    };
                }
                if roll < 10 {
                    // About as many units as the carts and sales take.
                    return Step::Restock {
                        item: self.uniform_item(rng),
                        qty: 1 + rng.below(250) as u32,
                    };
                }
                let lines = 1 + rng.below(4) as usize;
                while cart.len() < lines {
                    let item = self.uniform_item(rng);
                    if cart.iter().all(|&(i, _)| i != item) {
                        cart.push((item, 1 + rng.below(3) as u32));
                    }
                }
                let channel = if rng.percent(70) {
                    Channel::Online
                } else {
                    Channel::InStore
                };
                Step::Cart {
                    channel,
                    fate: fate(rng, 55, 30),
                }
            }
        }
    }

    /// A background POS sale: one unit, mostly of the hottest item.
    pub fn next_sale(&self, rng: &mut Rng) -> (u32, u32) {
        if rng.percent(70) {
            (self.hottest(), 1)
        } else {
            (self.uniform_item(rng), 1)
        }
    }
}

/// `commit`% committed, `abandon`% released, the rest left to expire.
fn fate(rng: &mut Rng, commit: u64, abandon: u64) -> Fate {
    let roll = rng.below(100);
    if roll < commit {
        Fate::Commit
    } else if roll < commit + abandon {
        Fate::Abandon
    } else {
        Fate::LeaveToExpire
    }
}

/// A cart id that keeps nothing of its neighbours' order: the splitmix64
/// finalizer, a bijection, so distinct ids stay distinct. For runs that
/// stand for callers whose ids are random (hashed UUIDs) rather than order
/// numbers.
pub fn scramble(id: u64) -> u64 {
    let mut z = id;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// xorshift64* seeded through splitmix64: small, fast, and the same numbers
/// for the same seed on every platform.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        Rng((z ^ (z >> 31)) | 1)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    /// Uniform in `0..n`.
    pub fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }
    pub fn percent(&mut self, p: u64) -> bool {
        self.below(100) < p
    }
    /// Uniform in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }
}

/// Zipf over ranks `1..=n` with exponent `s`, by rejection-inversion
/// (Hörmann and Derflinger, 1996): O(1) per sample, no table.
#[derive(Debug)]
pub struct Zipf {
    n: f64,
    s: f64,
    h_x1: f64,
    h_n: f64,
    cut: f64,
}

impl Zipf {
    pub fn new(n: u64, s: f64) -> Zipf {
        let mut zipf = Zipf {
            n: n as f64,
            s,
            h_x1: 0.0,
            h_n: 0.0,
            cut: 0.0,
        };
        zipf.h_x1 = zipf.h_integral(1.5) - 1.0;
        zipf.h_n = zipf.h_integral(zipf.n + 0.5);
        zipf.cut = 2.0 - zipf.h_integral_inverse(zipf.h_integral(2.5) - zipf.h(2.0));
        zipf
    }

    /// A rank in `1..=n`.
    pub fn sample(&self, rng: &mut Rng) -> u64 {
        loop {
            let u = self.h_n + rng.unit() * (self.h_x1 - self.h_n);
            let x = self.h_integral_inverse(u);
            let k = (x + 0.5).floor().clamp(1.0, self.n);
            if k - x <= self.cut || u >= self.h_integral(k + 0.5) - self.h(k) {
                return k as u64;
            }
        }
    }

    fn h(&self, x: f64) -> f64 {
        (-self.s * x.ln()).exp()
    }

    fn h_integral(&self, x: f64) -> f64 {
        let log_x = x.ln();
        expm1_over_x((1.0 - self.s) * log_x) * log_x
    }

    fn h_integral_inverse(&self, x: f64) -> f64 {
        let t = (x * (1.0 - self.s)).max(-1.0);
        (ln1p_over_x(t) * x).exp()
    }
}

fn expm1_over_x(x: f64) -> f64 {
    if x.abs() > 1e-8 {
        x.exp_m1() / x
    } else {
        1.0 + x * 0.5 * (1.0 + x / 3.0 * (1.0 + 0.25 * x))
    }
}

fn ln1p_over_x(x: f64) -> f64 {
    if x.abs() > 1e-8 {
        x.ln_1p() / x
    } else {
        1.0 - x * (0.5 - x * (1.0 / 3.0 - 0.25 * x))
    }
}

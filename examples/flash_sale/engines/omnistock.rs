//! The crate itself.

use super::{Answer, Client, Engine, Op, Stock};
use crate::workload::{item_key, ItemSpec};
use omnistock::{Error, Inventory, Level, Line, ManualClock, ReservationId, ReservationState};
use std::sync::Arc;

pub struct Omnistock {
    inventory: Arc<Inventory>,
    /// The journal directory of a durable run, removed at the end.
    journal: Option<std::path::PathBuf>,
}

impl Drop for Omnistock {
    fn drop(&mut self) {
        if let Some(dir) = &self.journal {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

impl Omnistock {
    pub fn new(
        clock: Arc<ManualClock>,
        items: u32,
        ttl_ms: u64,
        retention_ms: u64,
    ) -> Result<Omnistock, String> {
        let inventory = Inventory::builder()
            .clock(clock)
            .expected_items(items as usize)
            .default_ttl_ms(ttl_ms)
            .retention_ms(retention_ms)
            .try_build()
            .map_err(|e| format!("omnistock: {e}"))?;
        Ok(Omnistock {
            inventory: Arc::new(inventory),
            journal: None,
        })
    }

    /// The engine journaled in `dir` (emptied first) with `durability`.
    pub fn journaled(
        clock: Arc<ManualClock>,
        items: u32,
        ttl_ms: u64,
        retention_ms: u64,
        dir: std::path::PathBuf,
        durability: omnistock::durability::Durability,
    ) -> Result<Omnistock, String> {
        let _ = std::fs::remove_dir_all(&dir);
        let (inventory, _) = Inventory::builder()
            .clock(clock)
            .expected_items(items as usize)
            .default_ttl_ms(ttl_ms)
            .retention_ms(retention_ms)
            .journal(&dir, durability)
            .open()
            .map_err(|e| format!("omnistock: {e}"))?;
        Ok(Omnistock {
            inventory: Arc::new(inventory),
            journal: Some(dir),
        })
    }

    pub fn inventory(&self) -> &Inventory {
        &self.inventory
    }
}

pub struct OmnistockClient {
    inventory: Arc<Inventory>,
    lines: Vec<Line>,
    answer: Option<Answer>,
}

fn stock(level: Level) -> Stock {
    Stock {
        on_hand: u64::from(level.on_hand),
        reserved: u64::from(level.reserved),
        safety: u64::from(level.safety_stock),
    }
}

impl Client for OmnistockClient {
    fn send(&mut self, op: Op<'_>) {
        self.answer = Some(self.call(op));
    }

    fn recv(&mut self) -> Answer {
        self.answer.take().expect("recv after send")
    }

    #[inline]
    fn call(&mut self, op: Op<'_>) -> Answer {
        let inv = &*self.inventory;
        match op {
            Op::Reserve {
                id,
                channel,
                lines,
                ttl_ms,
            } => {
                self.lines.clear();
                self.lines.extend(lines.iter().map(|&(item, qty)| {
                    let key = item_key(item);
                    Line::new(key.sku, key.store, qty)
                }));
                match inv.reserve_with_ttl(ReservationId(id), channel, &self.lines, ttl_ms) {
                    Ok(ack) if ack.state == ReservationState::Pending && !ack.replayed => {
                        Answer::Ok
                    }
                    Err(Error::Insufficient { .. }) => Answer::Insufficient,
                    other => Answer::Unexpected(format!("reserve {id}: {other:?}")),
                }
            }
            Op::Commit { id, .. } => match inv.commit(ReservationId(id)) {
                Ok(ack) if ack.state == ReservationState::Committed && !ack.replayed => Answer::Ok,
                Err(Error::Expired { .. }) => Answer::Expired,
                other => Answer::Unexpected(format!("commit {id}: {other:?}")),
            },
            Op::Release { id, .. } => match inv.release(ReservationId(id)) {
                Ok(ack) if ack.state == ReservationState::Released && !ack.replayed => Answer::Ok,
                Ok(ack) if ack.state == ReservationState::Expired => Answer::Expired,
                other => Answer::Unexpected(format!("release {id}: {other:?}")),
            },
            Op::Sell { item, qty, channel } => {
                let key = item_key(item);
                match inv.sell(key.sku, key.store, qty, channel) {
                    Ok(_) => Answer::Ok,
                    Err(Error::Insufficient { .. }) => Answer::Insufficient,
                    Err(e) => Answer::Unexpected(format!("sell {key}: {e}")),
                }
            }
            Op::Restock { item, qty } => {
                let key = item_key(item);
                match inv.restock(key.sku, key.store, qty) {
                    Ok(_) => Answer::Ok,
                    Err(e) => Answer::Unexpected(format!("restock {key}: {e}")),
                }
            }
            Op::Level { item } => {
                let key = item_key(item);
                match inv.level(key.sku, key.store) {
                    Ok(level) => Answer::Level(stock(level)),
                    Err(e) => Answer::Unexpected(format!("level {key}: {e}")),
                }
            }
            Op::Expire => Answer::Count(inv.expire()),
        }
    }
}

impl Engine for Omnistock {
    type Client = OmnistockClient;
    const NAME: &'static str = "omnistock";

    fn client(&self) -> Result<OmnistockClient, String> {
        Ok(OmnistockClient {
            inventory: Arc::clone(&self.inventory),
            lines: Vec::with_capacity(4),
            answer: None,
        })
    }

    fn stock(&self, specs: &[ItemSpec]) -> Result<(), String> {
        for (i, spec) in specs.iter().enumerate() {
            let key = item_key(i as u32);
            self.inventory
                .set_safety_stock(key.sku, key.store, spec.safety);
            self.inventory
                .restock(key.sku, key.store, spec.stock)
                .map_err(|e| format!("restock {key}: {e}"))?;
        }
        Ok(())
    }

    fn levels(&self, n: u32) -> Result<Vec<Stock>, String> {
        (0..n)
            .map(|i| {
                let key = item_key(i);
                self.inventory
                    .level(key.sku, key.store)
                    .map(stock)
                    .map_err(|e| format!("level {key}: {e}"))
            })
            .collect()
    }

    fn remembered(&self) -> Result<u64, String> {
        Ok(self.inventory.reservation_count() as u64)
    }
}

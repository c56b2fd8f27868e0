//! The bare hardware limit: the same access pattern as the other engines,
//! doing only what cannot be avoided. Items are a dense array of 64-bit words
//! (`on_hand` high, `reserved` low) indexed by item number: no key lookup, no
//! ids, no records, no deadlines. Reserve is the availability check and
//! compare-and-swap per line, with the undo of earlier lines when a later one
//! fails; commit and release are one atomic subtraction per line (the driver
//! hands the cart's lines back, since nothing remembers them). A sold-out
//! item answers after one load and a compare.

use super::{Answer, Client, Engine, Op, Stock};
use crate::workload::ItemSpec;
use omnistock::Channel;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;

const LOW: u64 = u32::MAX as u64;

struct Cells {
    words: Box<[AtomicU64]>,
    safety: Box<[AtomicU32]>,
}

impl Cells {
    fn available(&self, item: usize, word: u64, channel: Channel) -> u64 {
        let free = (word >> 32) - (word & LOW);
        match channel {
            Channel::Online => {
                free.saturating_sub(u64::from(self.safety[item].load(Ordering::Relaxed)))
            }
            Channel::InStore => free,
        }
    }

    /// Check and add `reserved`, or (with `sell`) check and subtract `on_hand`.
    fn take(&self, item: u32, qty: u32, channel: Channel, sell: bool) -> bool {
        let i = item as usize;
        let word = &self.words[i];
        let delta = if sell {
            u64::from(qty) << 32
        } else {
            u64::from(qty)
        };
        let mut current = word.load(Ordering::Acquire);
        loop {
            if self.available(i, current, channel) < u64::from(qty) {
                return false;
            }
            let next = if sell {
                current - delta
            } else {
                current + delta
            };
            match word.compare_exchange_weak(current, next, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => return true,
                Err(actual) => current = actual,
            }
        }
    }
}

pub struct AtomicLimit {
    cells: Arc<Cells>,
}

impl AtomicLimit {
    pub fn new(items: u32) -> AtomicLimit {
        AtomicLimit {
            cells: Arc::new(Cells {
                words: (0..items).map(|_| AtomicU64::new(0)).collect(),
                safety: (0..items).map(|_| AtomicU32::new(0)).collect(),
            }),
        }
    }
}

pub struct AtomicClient {
    cells: Arc<Cells>,
    answer: Option<Answer>,
}

impl Client for AtomicClient {
    fn send(&mut self, op: Op<'_>) {
        self.answer = Some(self.call(op));
    }

    fn recv(&mut self) -> Answer {
        self.answer.take().expect("recv after send")
    }

    #[inline]
    fn call(&mut self, op: Op<'_>) -> Answer {
        let cells = &*self.cells;
        match op {
            Op::Reserve { lines, channel, .. } => {
                for (n, &(item, qty)) in lines.iter().enumerate() {
                    if !cells.take(item, qty, channel, false) {
                        for &(item, qty) in &lines[..n] {
                            cells.words[item as usize].fetch_sub(u64::from(qty), Ordering::AcqRel);
                        }
                        return Answer::Insufficient;
                    }
                }
                Answer::Ok
            }
            Op::Commit { lines, .. } => {
                for &(item, qty) in lines {
                    let qty = u64::from(qty);
                    cells.words[item as usize].fetch_sub((qty << 32) | qty, Ordering::AcqRel);
                }
                Answer::Ok
            }
            Op::Release { lines, .. } => {
                for &(item, qty) in lines {
                    cells.words[item as usize].fetch_sub(u64::from(qty), Ordering::AcqRel);
                }
                Answer::Ok
            }
            Op::Sell { item, qty, channel } => {
                if cells.take(item, qty, channel, true) {
                    Answer::Ok
                } else {
                    Answer::Insufficient
                }
            }
            Op::Restock { item, qty } => {
                cells.words[item as usize].fetch_add(u64::from(qty) << 32, Ordering::AcqRel);
                Answer::Ok
            }
            Op::Level { item } => {
                let word = cells.words[item as usize].load(Ordering::Acquire);
                Answer::Level(Stock {
                    on_hand: word >> 32,
                    reserved: word & LOW,
                    safety: u64::from(cells.safety[item as usize].load(Ordering::Relaxed)),
                })
            }
            Op::Expire => Answer::Count(0),
        }
    }
}

impl Engine for AtomicLimit {
    type Client = AtomicClient;
    const NAME: &'static str = "atomic-limit";
    const HAS_EXPIRY: bool = false;

    fn client(&self) -> Result<AtomicClient, String> {
        Ok(AtomicClient {
            cells: Arc::clone(&self.cells),
            answer: None,
        })
    }

    fn stock(&self, specs: &[ItemSpec]) -> Result<(), String> {
        if specs.len() != self.cells.words.len() {
            return Err("atomic-limit: built for another item count".into());
        }
        for (i, spec) in specs.iter().enumerate() {
            self.cells.safety[i].store(spec.safety, Ordering::Relaxed);
            self.cells.words[i].fetch_add(u64::from(spec.stock) << 32, Ordering::AcqRel);
        }
        Ok(())
    }

    fn levels(&self, n: u32) -> Result<Vec<Stock>, String> {
        let mut client = self.client()?;
        (0..n)
            .map(|item| match client.call(Op::Level { item }) {
                Answer::Level(stock) => Ok(stock),
                other => Err(format!("level {item}: {other:?}")),
            })
            .collect()
    }

    fn remembered(&self) -> Result<u64, String> {
        Ok(0)
    }
}

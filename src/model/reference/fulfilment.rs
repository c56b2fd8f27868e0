//! The fulfilment rules of the contract (v2), written out plainly for the
//! [`ReferenceModel`]: partial commit, compare-and-set cycle counts, POS
//! baskets, `reserve_any` and the consistency check. Each function states
//! its checks in the order the contract gives them.

use super::{ReferenceModel, Reservation};
use crate::command::{CheckReport, Command, Outcome, ReservationAck, ReservationLines};
use crate::error::Error;
use crate::limits::MAX_LINES;
use crate::types::{Channel, ItemKey, Level, Line, ReservationId, ReservationState, Sku, StoreId};
use std::collections::BTreeSet;

impl ReferenceModel {
    /// The v2 commands that are not a v1 command with a new field.
    pub(super) fn apply_fulfilment(&mut self, command: &Command) -> Result<Outcome, Error> {
        match command {
            Command::SellLines { lines, channel } => {
                self.sell_lines(lines, *channel).map(Outcome::Levels)
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
                let ttl = ttl_ms.unwrap_or(self.default_ttl_ms);
                self.reserve_any(*id, *sku, *qty, stores, *split, *channel, ttl)
                    .map(Outcome::ReservationLines)
            }
            Command::Check => Ok(Outcome::Check(CheckReport {
                consistent: true,
                items: Vec::new(),
            })),
            other => unreachable!("not a fulfilment command: {other:?}"),
        }
    }

    /// `set_on_hand`, with `expect` checked first when given.
    pub(super) fn set_on_hand_expecting(
        &mut self,
        sku: Sku,
        store: StoreId,
        qty: u32,
        expect: Option<u32>,
    ) -> Result<Level, Error> {
        if let Some(expect) = expect {
            let on_hand = self
                .items
                .get(&ItemKey::new(sku, store))
                .map_or(0, |c| c.on_hand);
            if on_hand != expect {
                return Err(Error::Stale { on_hand });
            }
        }
        self.set_on_hand(sku, store, qty)
    }

    /// `commit` with `lines`.
    pub(super) fn commit_lines(
        &mut self,
        id: ReservationId,
        picked: &[Line],
    ) -> Result<ReservationLines, Error> {
        self.lazy_expire(id);
        let Some(r) = self.reservations.get(&id) else {
            return Err(Error::UnknownReservation { id });
        };
        match r.state {
            ReservationState::Committed => {
                return Ok(ReservationLines {
                    ack: r.ack(id, true),
                    lines: committed_lines(r),
                })
            }
            ReservationState::Released => return Err(Error::AlreadyReleased { id }),
            ReservationState::Expired => return Err(Error::Expired { id }),
            ReservationState::Pending => {}
        }
        let mut parts: Vec<Option<u32>> = vec![None; r.lines.len()];
        for line in picked {
            let Some(n) = r.lines.iter().position(|l| l.item() == line.item()) else {
                return Err(Error::Invalid {
                    reason: "not a line of the reservation",
                });
            };
            if parts[n].is_some() {
                return Err(Error::Invalid {
                    reason: "listed twice",
                });
            }
            if line.qty > r.lines[n].qty {
                return Err(Error::Invalid {
                    reason: "more than reserved",
                });
            }
            parts[n] = Some(line.qty);
        }
        let parts: Vec<u32> = parts.into_iter().map(|p| p.unwrap_or(0)).collect();
        let lines = r.lines.clone();
        for (line, &part) in lines.iter().zip(&parts) {
            let cell = self
                .items
                .get_mut(&line.item())
                .expect("reserved item exists");
            cell.reserved -= line.qty;
            cell.on_hand -= part;
        }
        let now = self.now;
        let r = self.reservations.get_mut(&id).expect("known");
        r.state = ReservationState::Committed;
        r.terminal_at = Some(now);
        // A campaign reservation has one line: its uncommitted units go back.
        let (campaign, returned) = (r.campaign, lines[0].qty - parts[0]);
        r.committed = Some(parts);
        self.give_back(campaign, returned);
        let r = &self.reservations[&id];
        Ok(ReservationLines {
            ack: r.ack(id, false),
            lines: committed_lines(r),
        })
    }

    /// `sell` with `lines`: a POS basket.
    fn sell_lines(&mut self, lines: &[Line], channel: Channel) -> Result<Vec<Level>, Error> {
        if lines.is_empty() || lines.len() > MAX_LINES || lines.iter().any(|l| l.qty == 0) {
            return Err(Error::Invalid {
                reason: "no lines, too many, or a qty of 0",
            });
        }
        let mut seen = BTreeSet::new();
        if !lines.iter().all(|l| seen.insert(l.item())) {
            return Err(Error::Invalid {
                reason: "same item twice",
            });
        }
        for line in lines {
            let Some(cell) = self.items.get(&line.item()) else {
                return Err(Error::UnknownItem {
                    sku: line.sku,
                    store: line.store,
                });
            };
            let available = cell.available(channel);
            if line.qty > available {
                return Err(Error::Insufficient {
                    sku: line.sku,
                    store: line.store,
                    requested: line.qty,
                    available,
                });
            }
        }
        Ok(lines
            .iter()
            .map(|line| {
                let cell = self.items.get_mut(&line.item()).expect("checked");
                cell.on_hand -= line.qty;
                cell.level()
            })
            .collect())
    }

    /// `reserve_any`.
    #[allow(clippy::too_many_arguments)] // the contract's fields, as they are
    fn reserve_any(
        &mut self,
        id: ReservationId,
        sku: Sku,
        qty: u32,
        stores: &[StoreId],
        split: bool,
        channel: Channel,
        ttl: u64,
    ) -> Result<ReservationLines, Error> {
        // 1. invalid, before lazy expiry.
        let distinct: BTreeSet<StoreId> = stores.iter().copied().collect();
        if qty == 0
            || stores.is_empty()
            || distinct.len() != stores.len()
            || stores.len() > MAX_LINES
            || ttl == 0
        {
            return Err(Error::Invalid {
                reason: "qty 0, no stores, a store twice, too many stores or ttl 0",
            });
        }
        self.lazy_expire(id);
        // 2. idempotency.
        if let Some(r) = self.reservations.get(&id) {
            let same = r.channel == channel
                && r.campaign.is_none()
                && r.lines
                    .iter()
                    .all(|l| l.sku == sku && distinct.contains(&l.store))
                && r.lines.iter().map(|l| u64::from(l.qty)).sum::<u64>() == u64::from(qty);
            if !same {
                return Err(Error::IdConflict { id });
            }
            return match r.state {
                ReservationState::Pending | ReservationState::Committed => Ok(ReservationLines {
                    ack: r.ack(id, true),
                    lines: r.lines.clone(),
                }),
                ReservationState::Released => Err(Error::AlreadyReleased { id }),
                ReservationState::Expired => Err(Error::Expired { id }),
            };
        }
        // 3. unknown stores are skipped.
        let known: Vec<(StoreId, u32)> = stores
            .iter()
            .filter_map(|&store| {
                self.items
                    .get(&ItemKey::new(sku, store))
                    .map(|cell| (store, cell.available(channel)))
            })
            .collect();
        if known.is_empty() {
            return Err(Error::UnknownSku { sku });
        }
        // 4. / 5. choose.
        let mut lines = Vec::new();
        if split {
            let mut remaining = qty;
            for &(store, available) in &known {
                let part = available.min(remaining);
                if part > 0 {
                    lines.push(Line::new(sku, store, part));
                    remaining -= part;
                }
            }
            if remaining > 0 {
                let total: u64 = known.iter().map(|&(_, a)| u64::from(a)).sum();
                return Err(Error::InsufficientAcross {
                    sku,
                    requested: qty,
                    available: total as u32,
                });
            }
        } else {
            match known.iter().find(|&&(_, available)| available >= qty) {
                Some(&(store, _)) => lines.push(Line::new(sku, store, qty)),
                None => {
                    return Err(Error::InsufficientAcross {
                        sku,
                        requested: qty,
                        available: known.iter().map(|&(_, a)| a).max().unwrap_or(0),
                    })
                }
            }
        }
        for line in &lines {
            self.items.get_mut(&line.item()).expect("known").reserved += line.qty;
        }
        let (expires_at, overflowed) = self.deadline(ttl);
        let r = Reservation {
            channel,
            lines: lines.clone(),
            expires_at,
            overflowed,
            state: ReservationState::Pending,
            terminal_at: None,
            committed: None,
            campaign: None,
        };
        let ack: ReservationAck = r.ack(id, false);
        self.reservations.insert(id, r);
        Ok(ReservationLines { ack, lines })
    }
}

/// What a committed reservation took out of stock, per line.
fn committed_lines(r: &Reservation) -> Vec<Line> {
    match &r.committed {
        None => r.lines.clone(),
        Some(parts) => r
            .lines
            .iter()
            .zip(parts)
            .map(|(line, &part)| Line::new(line.sku, line.store, part))
            .collect(),
    }
}

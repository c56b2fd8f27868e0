//! [`ReferenceModel`]: the contract written out plainly, one function per
//! operation, each rule in the order the contract states it; and
//! [`same_answer`], how answers are compared with it. The readings of the
//! contract it fixes are in the [`model`](crate::model) docs.

use crate::command::{Command, Outcome, ReservationAck, ReservationInfo};
use crate::error::Error;
use crate::limits::{DEFAULT_RETENTION_MS, DEFAULT_TTL_MS, MAX_LINES};
use crate::types::Level;
use crate::types::{
    CampaignId, Channel, CustomerId, ItemKey, Line, ReservationId, ReservationState, Sku, StoreId,
};
use std::collections::{BTreeMap, BTreeSet};

mod campaigns;
mod fulfilment;

use campaigns::{Campaign, Mark};

/// The three counters of an item.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
struct Cell {
    on_hand: u32,
    reserved: u32,
    safety_stock: u32,
}

impl Cell {
    fn level(&self) -> Level {
        Level::new(self.on_hand, self.reserved, self.safety_stock)
    }

    fn available(&self, channel: Channel) -> u32 {
        let in_store = self.on_hand - self.reserved;
        match channel {
            Channel::InStore => in_store,
            Channel::Online => in_store.saturating_sub(self.safety_stock),
        }
    }
}

/// A remembered reservation.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct Reservation {
    channel: Channel,
    /// In the order requested.
    lines: Vec<Line>,
    /// The last deadline set, saturated at `u64::MAX`.
    expires_at: u64,
    /// The last deadline set overflowed: overdue at once.
    overflowed: bool,
    state: ReservationState,
    /// The time it reached its terminal state.
    terminal_at: Option<u64>,
    /// The units a partial commit took out of stock, per line.
    committed: Option<Vec<u32>>,
    /// The campaign and customer it counts against, if any.
    campaign: Option<(CampaignId, CustomerId)>,
}

impl Reservation {
    fn is_overdue(&self, now: u64) -> bool {
        self.state == ReservationState::Pending && (self.overflowed || now >= self.expires_at)
    }

    fn ack(&self, id: ReservationId, replayed: bool) -> ReservationAck {
        ReservationAck {
            id,
            state: self.state,
            replayed,
            expires_at_ms: (self.state == ReservationState::Pending).then_some(self.expires_at),
        }
    }
}

/// The lines of a request as a set, for the idempotency comparison.
fn line_set(lines: &[Line]) -> BTreeSet<(Sku, StoreId, u32)> {
    lines.iter().map(|l| (l.sku, l.store, l.qty)).collect()
}

/// A plain, single-threaded implementation of the contract (v1 and the v2
/// fulfilment, campaign and alert operations), written
/// straight from the contract (`docs/CONTRACT.md`). See the [`model`](crate::model) docs.
///
/// ```
/// use omnistock::model::ReferenceModel;
/// use omnistock::{Channel, Command, Line, Outcome, ReservationId, Sku, StoreId};
///
/// let mut model = ReferenceModel::new();
/// model.apply(&Command::Restock { sku: Sku(1), store: StoreId(2), qty: 10 }).unwrap();
/// let answer = model
///     .apply(&Command::Reserve {
///         id: ReservationId(7),
///         channel: Channel::Online,
///         ttl_ms: Some(60_000),
///         lines: vec![Line::new(Sku(1), StoreId(2), 2)],
///     })
///     .unwrap();
/// match answer {
///     Outcome::Reservation(ack) => assert_eq!(ack.expires_at_ms, Some(60_000)),
///     other => panic!("unexpected {other:?}"),
/// }
/// ```
///
/// Models compare and hash by their whole state, so that a search over
/// orders of operations (the linearizability check) can remember the
/// states it has visited.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ReferenceModel {
    now: u64,
    default_ttl_ms: u64,
    retention_ms: u64,
    items: BTreeMap<ItemKey, Cell>,
    reservations: BTreeMap<ReservationId, Reservation>,
    campaigns: BTreeMap<CampaignId, Campaign>,
    /// Reorder points above 0 and their alerted marks.
    marks: BTreeMap<ItemKey, Mark>,
    /// Alerts raised since the last `alerts`.
    alerts: Vec<crate::alerts::Alert>,
}

impl Default for ReferenceModel {
    fn default() -> Self {
        ReferenceModel::new()
    }
}

impl ReferenceModel {
    /// A model at time 0 with the contract's defaults: ttl 900,000 ms,
    /// retention 86,400,000 ms.
    pub fn new() -> Self {
        ReferenceModel::with_limits(DEFAULT_TTL_MS, DEFAULT_RETENTION_MS)
    }

    /// A model at time 0 with this default ttl (0 stands for the contract's
    /// default) and retention window.
    pub fn with_limits(default_ttl_ms: u64, retention_ms: u64) -> Self {
        ReferenceModel {
            now: 0,
            default_ttl_ms: if default_ttl_ms == 0 {
                DEFAULT_TTL_MS
            } else {
                default_ttl_ms
            },
            retention_ms,
            items: BTreeMap::new(),
            reservations: BTreeMap::new(),
            campaigns: BTreeMap::new(),
            marks: BTreeMap::new(),
            alerts: Vec::new(),
        }
    }

    /// The model's current time in milliseconds.
    pub fn now_ms(&self) -> u64 {
        self.now
    }

    /// Moves time forward by `ms`, saturating at `u64::MAX`; returns the new
    /// time.
    pub fn advance(&mut self, ms: u64) -> u64 {
        self.now = self.now.saturating_add(ms);
        self.now
    }

    /// Every item and its level, sorted by item.
    pub fn items(&self) -> Vec<(ItemKey, Level)> {
        self.items.iter().map(|(k, c)| (*k, c.level())).collect()
    }

    /// Number of reservations remembered (pending and retained terminal).
    pub fn reservation_count(&self) -> usize {
        self.reservations.len()
    }

    /// Pending reservations, overdue ones not yet expired included.
    pub fn pending_count(&self) -> usize {
        self.reservations
            .values()
            .filter(|reservation| reservation.state == ReservationState::Pending)
            .count()
    }

    /// Performs one operation of the contract, then evaluates the reorder
    /// points (alerts).
    pub fn apply(&mut self, command: &Command) -> Result<Outcome, Error> {
        let answer = self.apply_op(command);
        self.evaluate_alerts();
        answer
    }

    fn apply_op(&mut self, command: &Command) -> Result<Outcome, Error> {
        match command {
            Command::Restock { sku, store, qty } => {
                self.restock(*sku, *store, *qty).map(Outcome::Level)
            }
            Command::SetOnHand {
                sku,
                store,
                qty,
                expect,
            } => self
                .set_on_hand_expecting(*sku, *store, *qty, *expect)
                .map(Outcome::Level),
            Command::SetSafetyStock { sku, store, qty } => {
                Ok(Outcome::Level(self.set_safety_stock(*sku, *store, *qty)))
            }
            Command::Sell {
                sku,
                store,
                qty,
                channel,
            } => self.sell(*sku, *store, *qty, *channel).map(Outcome::Level),
            Command::Level { sku, store } => self.level(*sku, *store).map(Outcome::Level),
            Command::Reserve {
                id,
                channel,
                ttl_ms,
                lines,
            } => {
                let ttl = ttl_ms.unwrap_or(self.default_ttl_ms);
                self.reserve(*id, *channel, lines, ttl)
                    .map(Outcome::Reservation)
            }
            Command::Commit { id, lines: None } => self.commit(*id).map(Outcome::Reservation),
            Command::Commit {
                id,
                lines: Some(lines),
            } => self.commit_lines(*id, lines).map(Outcome::ReservationLines),
            Command::Release { id } => self.release(*id).map(Outcome::Reservation),
            Command::Extend { id, ttl_ms } => self.extend(*id, *ttl_ms).map(Outcome::Reservation),
            Command::Get { id } => self.get(*id).map(Outcome::Info),
            Command::Expire => Ok(Outcome::Expired(self.expire())),
            Command::SellLines { .. } | Command::ReserveAny { .. } | Command::Check => {
                self.apply_fulfilment(command)
            }
            Command::Campaign { .. }
            | Command::ReserveCampaign { .. }
            | Command::SetReorderPoint { .. }
            | Command::Alerts => self.apply_campaigns(command),
        }
    }

    // ----- stock operations -----

    fn restock(&mut self, sku: Sku, store: StoreId, qty: u32) -> Result<Level, Error> {
        if qty == 0 {
            return Err(Error::Invalid {
                reason: "restock qty must be at least 1",
            });
        }
        let key = ItemKey::new(sku, store);
        let on_hand = self.items.get(&key).map_or(0, |c| c.on_hand);
        let Some(new_on_hand) = on_hand.checked_add(qty) else {
            return Err(Error::Overflow {
                sku,
                store,
                on_hand,
                requested: qty,
            });
        };
        let cell = self.items.entry(key).or_default();
        cell.on_hand = new_on_hand;
        Ok(cell.level())
    }

    fn set_on_hand(&mut self, sku: Sku, store: StoreId, qty: u32) -> Result<Level, Error> {
        let key = ItemKey::new(sku, store);
        let reserved = self.items.get(&key).map_or(0, |c| c.reserved);
        if qty < reserved {
            return Err(Error::BelowReserved {
                sku,
                store,
                reserved,
            });
        }
        let cell = self.items.entry(key).or_default();
        cell.on_hand = qty;
        Ok(cell.level())
    }

    fn set_safety_stock(&mut self, sku: Sku, store: StoreId, qty: u32) -> Level {
        let cell = self.items.entry(ItemKey::new(sku, store)).or_default();
        cell.safety_stock = qty;
        cell.level()
    }

    fn sell(
        &mut self,
        sku: Sku,
        store: StoreId,
        qty: u32,
        channel: Channel,
    ) -> Result<Level, Error> {
        if qty == 0 {
            return Err(Error::Invalid {
                reason: "sell qty must be at least 1",
            });
        }
        let Some(cell) = self.items.get_mut(&ItemKey::new(sku, store)) else {
            return Err(Error::UnknownItem { sku, store });
        };
        let available = cell.available(channel);
        if qty > available {
            return Err(Error::Insufficient {
                sku,
                store,
                requested: qty,
                available,
            });
        }
        cell.on_hand -= qty;
        Ok(cell.level())
    }

    fn level(&self, sku: Sku, store: StoreId) -> Result<Level, Error> {
        self.items
            .get(&ItemKey::new(sku, store))
            .map(Cell::level)
            .ok_or(Error::UnknownItem { sku, store })
    }

    // ----- reservations -----

    /// Returns a pending reservation's units and marks it terminal now.
    fn finish(&mut self, id: ReservationId, state: ReservationState, take_from_stock: bool) {
        let now = self.now;
        let r = self
            .reservations
            .get_mut(&id)
            .expect("finish of a known id");
        assert_eq!(
            r.state,
            ReservationState::Pending,
            "finish of a pending one"
        );
        for line in &r.lines {
            let cell = self
                .items
                .get_mut(&line.item())
                .expect("reserved item exists");
            cell.reserved -= line.qty;
            if take_from_stock {
                cell.on_hand -= line.qty;
            }
        }
        r.state = state;
        r.terminal_at = Some(now);
        if !take_from_stock {
            let (campaign, qty) = (r.campaign, r.lines[0].qty);
            self.give_back(campaign, qty);
        }
    }

    /// The lazy expiry the contract performs before an operation naming `id`.
    fn lazy_expire(&mut self, id: ReservationId) {
        let now = self.now;
        if self
            .reservations
            .get(&id)
            .is_some_and(|r| r.is_overdue(now))
        {
            self.finish(id, ReservationState::Expired, false);
        }
    }

    /// `(deadline, overflowed)` for a ttl from now.
    fn deadline(&self, ttl: u64) -> (u64, bool) {
        match self.now.checked_add(ttl) {
            Some(at) => (at, false),
            None => (u64::MAX, true),
        }
    }

    fn reserve(
        &mut self,
        id: ReservationId,
        channel: Channel,
        lines: &[Line],
        ttl: u64,
    ) -> Result<ReservationAck, Error> {
        // 1. invalid, before lazy expiry.
        if lines.is_empty() {
            return Err(Error::Invalid { reason: "no lines" });
        }
        if lines.len() > MAX_LINES {
            return Err(Error::Invalid {
                reason: "more than 256 lines",
            });
        }
        if lines.iter().any(|l| l.qty == 0) {
            return Err(Error::Invalid { reason: "qty of 0" });
        }
        let mut seen = BTreeSet::new();
        if !lines.iter().all(|l| seen.insert(l.item())) {
            return Err(Error::Invalid {
                reason: "same item twice",
            });
        }
        if ttl == 0 {
            return Err(Error::Invalid { reason: "ttl of 0" });
        }

        // Lazy expiry of this id.
        self.lazy_expire(id);

        // 2. idempotency.
        if let Some(r) = self.reservations.get(&id) {
            let same = r.channel == channel
                && r.campaign.is_none()
                && line_set(&r.lines) == line_set(lines);
            if !same {
                return Err(Error::IdConflict { id });
            }
            return match r.state {
                ReservationState::Pending | ReservationState::Committed => Ok(r.ack(id, true)),
                ReservationState::Released => Err(Error::AlreadyReleased { id }),
                ReservationState::Expired => Err(Error::Expired { id }),
            };
        }

        // 3. line checks, in order.
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

        // All lines fit: take them all.
        for line in lines {
            self.items.get_mut(&line.item()).expect("checked").reserved += line.qty;
        }
        let (expires_at, overflowed) = self.deadline(ttl);
        let r = Reservation {
            channel,
            lines: lines.to_vec(),
            expires_at,
            overflowed,
            state: ReservationState::Pending,
            terminal_at: None,
            committed: None,
            campaign: None,
        };
        let ack = r.ack(id, false);
        self.reservations.insert(id, r);
        Ok(ack)
    }

    fn commit(&mut self, id: ReservationId) -> Result<ReservationAck, Error> {
        self.lazy_expire(id);
        let Some(r) = self.reservations.get(&id) else {
            return Err(Error::UnknownReservation { id });
        };
        match r.state {
            ReservationState::Pending => {
                self.finish(id, ReservationState::Committed, true);
                Ok(self.reservations[&id].ack(id, false))
            }
            ReservationState::Committed => Ok(r.ack(id, true)),
            ReservationState::Released => Err(Error::AlreadyReleased { id }),
            ReservationState::Expired => Err(Error::Expired { id }),
        }
    }

    fn release(&mut self, id: ReservationId) -> Result<ReservationAck, Error> {
        // A pending reservation past its deadline is expired here, and that
        // expiry is what this release reports: state expired, not replayed.
        let was_overdue = self
            .reservations
            .get(&id)
            .is_some_and(|r| r.is_overdue(self.now));
        self.lazy_expire(id);
        let Some(r) = self.reservations.get(&id) else {
            return Err(Error::UnknownReservation { id });
        };
        match r.state {
            ReservationState::Pending => {
                self.finish(id, ReservationState::Released, false);
                Ok(self.reservations[&id].ack(id, false))
            }
            ReservationState::Expired if was_overdue => Ok(r.ack(id, false)),
            ReservationState::Released | ReservationState::Expired => Ok(r.ack(id, true)),
            ReservationState::Committed => Err(Error::AlreadyCommitted { id }),
        }
    }

    fn extend(&mut self, id: ReservationId, ttl: u64) -> Result<ReservationAck, Error> {
        if ttl == 0 {
            return Err(Error::Invalid { reason: "ttl of 0" });
        }
        self.lazy_expire(id);
        let (expires_at, overflowed) = self.deadline(ttl);
        let Some(r) = self.reservations.get_mut(&id) else {
            return Err(Error::UnknownReservation { id });
        };
        match r.state {
            ReservationState::Pending => {
                r.expires_at = expires_at;
                r.overflowed = overflowed;
                Ok(r.ack(id, false))
            }
            ReservationState::Committed => Err(Error::AlreadyCommitted { id }),
            ReservationState::Released => Err(Error::AlreadyReleased { id }),
            ReservationState::Expired => Err(Error::Expired { id }),
        }
    }

    fn get(&mut self, id: ReservationId) -> Result<ReservationInfo, Error> {
        self.lazy_expire(id);
        let Some(r) = self.reservations.get(&id) else {
            return Err(Error::UnknownReservation { id });
        };
        Ok(ReservationInfo {
            id,
            state: r.state,
            channel: r.channel,
            lines: r.lines.clone(),
            expires_at_ms: r.expires_at,
        })
    }

    fn expire(&mut self) -> u64 {
        let now = self.now;
        let overdue: Vec<ReservationId> = self
            .reservations
            .iter()
            .filter(|(_, r)| r.is_overdue(now))
            .map(|(id, _)| *id)
            .collect();
        for id in &overdue {
            self.finish(*id, ReservationState::Expired, false);
        }
        let retention = self.retention_ms;
        self.reservations.retain(|_, r| match r.terminal_at {
            Some(at) => now - at < retention,
            None => true,
        });
        overdue.len() as u64
    }
}

/// Whether two answers are the same as the contract sees them: equal,
/// except that the reason text of two `Invalid` errors may differ (the
/// contract names the error, not its wording). Differential tests of any
/// engine against [`ReferenceModel`] compare answers with this.
///
/// ```
/// use omnistock::model::same_answer;
/// use omnistock::Error;
///
/// let a: Result<omnistock::Outcome, Error> = Err(Error::Invalid { reason: "no lines" });
/// let b = Err(Error::Invalid { reason: "a reservation needs at least one line" });
/// assert!(same_answer(&a, &b));
/// ```
pub fn same_answer(a: &Result<Outcome, Error>, b: &Result<Outcome, Error>) -> bool {
    match (a, b) {
        (Err(Error::Invalid { .. }), Err(Error::Invalid { .. })) => true,
        _ => a == b,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Sku = Sku(1);
    const T: StoreId = StoreId(2);

    fn reserve(
        m: &mut ReferenceModel,
        id: u64,
        ch: Channel,
        qty: u32,
        ttl: Option<u64>,
    ) -> Result<Outcome, Error> {
        m.apply(&Command::Reserve {
            id: ReservationId(id),
            channel: ch,
            ttl_ms: ttl,
            lines: vec![Line::new(S, T, qty)],
        })
    }

    fn level(m: &mut ReferenceModel) -> Level {
        match m.apply(&Command::Level { sku: S, store: T }).unwrap() {
            Outcome::Level(l) => l,
            o => panic!("{o:?}"),
        }
    }

    fn ack(o: Result<Outcome, Error>) -> ReservationAck {
        match o.unwrap() {
            Outcome::Reservation(a) => a,
            o => panic!("{o:?}"),
        }
    }

    #[test]
    fn lifecycle() {
        let mut m = ReferenceModel::new();
        m.apply(&Command::Restock {
            sku: S,
            store: T,
            qty: 10,
        })
        .unwrap();
        m.apply(&Command::SetSafetyStock {
            sku: S,
            store: T,
            qty: 3,
        })
        .unwrap();
        let a = ack(reserve(&mut m, 1, Channel::Online, 7, None));
        assert_eq!(a.expires_at_ms, Some(DEFAULT_TTL_MS));
        assert_eq!(level(&mut m), Level::new(10, 7, 3));
        assert_eq!(
            reserve(&mut m, 2, Channel::Online, 1, None),
            Err(Error::Insufficient {
                sku: S,
                store: T,
                requested: 1,
                available: 0
            })
        );
        assert!(
            ack(reserve(&mut m, 2, Channel::InStore, 3, None)).state == ReservationState::Pending
        );
        assert!(ack(reserve(&mut m, 1, Channel::Online, 7, Some(5))).replayed);
        assert_eq!(
            ack(m.apply(&Command::Commit {
                id: ReservationId(1),
                lines: None
            }))
            .state,
            ReservationState::Committed
        );
        assert_eq!(level(&mut m), Level::new(3, 3, 3));
        m.advance(DEFAULT_TTL_MS);
        let r = ack(m.apply(&Command::Release {
            id: ReservationId(2),
        }));
        assert_eq!((r.state, r.replayed), (ReservationState::Expired, false));
        let r = ack(m.apply(&Command::Release {
            id: ReservationId(2),
        }));
        assert_eq!((r.state, r.replayed), (ReservationState::Expired, true));
        assert_eq!(level(&mut m), Level::new(3, 0, 3));
        assert_eq!(m.apply(&Command::Expire), Ok(Outcome::Expired(0)));
        assert_eq!(m.reservation_count(), 2);
        m.advance(DEFAULT_RETENTION_MS - DEFAULT_TTL_MS - 1);
        m.apply(&Command::Expire).unwrap();
        assert_eq!(m.reservation_count(), 2, "one ms short of the window");
        m.advance(1);
        m.apply(&Command::Expire).unwrap();
        assert_eq!(
            m.reservation_count(),
            1,
            "commit at 0 forgotten, expiry at ttl kept"
        );
        m.advance(DEFAULT_TTL_MS);
        m.apply(&Command::Expire).unwrap();
        assert_eq!(m.reservation_count(), 0);
    }

    #[test]
    fn overflowed_deadline_is_overdue_at_once() {
        let mut m = ReferenceModel::new();
        m.apply(&Command::Restock {
            sku: S,
            store: T,
            qty: 10,
        })
        .unwrap();
        m.advance(1);
        let a = ack(reserve(&mut m, 1, Channel::Online, 1, Some(u64::MAX)));
        assert_eq!(a.expires_at_ms, Some(u64::MAX));
        assert_eq!(level(&mut m).reserved, 1, "kept until processed");
        assert_eq!(m.apply(&Command::Expire), Ok(Outcome::Expired(1)));
        assert_eq!(level(&mut m).reserved, 0);
        // Exactly u64::MAX is not an overflow.
        let a = ack(reserve(&mut m, 2, Channel::Online, 1, Some(u64::MAX - 1)));
        assert_eq!(a.expires_at_ms, Some(u64::MAX));
        assert_eq!(m.apply(&Command::Expire), Ok(Outcome::Expired(0)));
    }

    #[test]
    fn invalid_before_lazy_expiry() {
        let mut m = ReferenceModel::new();
        m.apply(&Command::Restock {
            sku: S,
            store: T,
            qty: 10,
        })
        .unwrap();
        ack(reserve(&mut m, 1, Channel::Online, 4, Some(1)));
        m.advance(1);
        assert_eq!(
            reserve(&mut m, 1, Channel::Online, 0, Some(1))
                .unwrap_err()
                .name(),
            "invalid"
        );
        assert_eq!(
            m.apply(&Command::Extend {
                id: ReservationId(1),
                ttl_ms: 0
            })
            .unwrap_err()
            .name(),
            "invalid"
        );
        assert_eq!(level(&mut m).reserved, 4);
        assert_eq!(
            reserve(&mut m, 1, Channel::InStore, 4, Some(1)),
            Err(Error::IdConflict {
                id: ReservationId(1)
            })
        );
        assert_eq!(level(&mut m).reserved, 0, "lazy expiry stands");
    }
}

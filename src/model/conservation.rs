//! [`Conservation`]: books of the units that came into and went out of each
//! item, kept from the answers a caller got, and the checks that the
//! engine's levels agree with them. Whatever the interleaving, per item:
//! `on_hand = received - sold - committed` (received counts the first
//! stock, restocks and cycle-count corrections), `reserved` is the units of
//! the holds still live, and `reserved <= on_hand` at every read.

use crate::command::{Command, Outcome};
use crate::error::Error;
use crate::types::{ItemKey, Level, Line, ReservationId};
use std::collections::BTreeMap;

/// Whether a level read keeps the invariant: `reserved <= on_hand`, and its
/// `available_*` fields are what `on_hand`, `reserved` and `safety_stock`
/// make them. `Err` says what is wrong.
///
/// ```
/// use omnistock::model::level_ok;
/// use omnistock::Level;
/// assert!(level_ok(&Level::new(5, 2, 1)).is_ok());
/// ```
pub fn level_ok(level: &Level) -> Result<(), String> {
    if level.reserved > level.on_hand {
        return Err(format!("reserved > on_hand in {level:?}"));
    }
    if *level != Level::new(level.on_hand, level.reserved, level.safety_stock) {
        return Err(format!("available fields do not agree in {level:?}"));
    }
    Ok(())
}

/// Per-item books of units in and out, kept from acknowledged answers.
/// Threads may keep books of their own and [`merge`](Self::merge) them.
///
/// ```
/// use omnistock::model::Conservation;
/// use omnistock::{ItemKey, Level, Line, Sku, StoreId};
///
/// let item = ItemKey::new(Sku(1), StoreId(1));
/// let mut books = Conservation::default();
/// books.received(item, 10);
/// books.sold(item, 2);
/// books.committed(&[Line::new(Sku(1), StoreId(1), 3)]);
/// books.counted(item, 5, 6); // a cycle count found one more
/// assert!(books.check_on_hand(&[(item, Level::new(6, 0, 0))]).is_ok());
/// assert!(books.check_on_hand(&[(item, Level::new(7, 0, 0))]).is_err());
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Conservation {
    units: BTreeMap<ItemKey, Units>,
    /// For [`record`](Self::record): the lines of the latest reservation
    /// made under each id.
    lines: BTreeMap<ReservationId, Vec<Line>>,
}

/// The units one item received, sold and had committed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Units {
    received: i128,
    sold: i128,
    committed: i128,
}

/// The first key of `booked` that is not among `items`.
fn first_missing<'a, V>(
    booked: &'a BTreeMap<ItemKey, V>,
    items: &[(ItemKey, Level)],
) -> Option<&'a ItemKey> {
    booked
        .keys()
        .find(|key| !items.iter().any(|(k, _)| k == *key))
}

impl Conservation {
    /// Units that came in: first stock, an acknowledged restock.
    pub fn received(&mut self, item: ItemKey, qty: u32) {
        self.entry(item).received += i128::from(qty);
    }

    fn entry(&mut self, item: ItemKey) -> &mut Units {
        self.units.entry(item).or_default()
    }

    /// An acknowledged cycle count (`set_on_hand`) from `before` units on
    /// hand to `after`; the caller makes sure nothing else changed
    /// `on_hand` in between.
    pub fn counted(&mut self, item: ItemKey, before: u32, after: u32) {
        self.entry(item).received += i128::from(after) - i128::from(before);
    }

    /// Units sold over the counter.
    pub fn sold(&mut self, item: ItemKey, qty: u32) {
        self.entry(item).sold += i128::from(qty);
    }

    /// The lines of a reservation acknowledged committed (once, not its
    /// replays).
    pub fn committed(&mut self, lines: &[Line]) {
        for line in lines {
            self.entry(line.item()).committed += i128::from(line.qty);
        }
    }

    /// Takes in one answer of a run whose requests run one at a time: an
    /// acknowledged restock, cycle count (the books' own `on_hand` before
    /// it), sale, fresh reserve (its lines, for the commit) or first
    /// commit. `Err` if a commit names a reservation these books never saw
    /// made.
    pub fn record(
        &mut self,
        command: &Command,
        answer: &Result<Outcome, Error>,
    ) -> Result<(), String> {
        let fresh = match answer {
            Ok(Outcome::Reservation(ack)) => !ack.replayed,
            Ok(Outcome::ReservationLines(answer)) => !answer.ack.replayed,
            _ => false,
        };
        match (command, answer) {
            (Command::Restock { sku, store, qty }, Ok(_)) => {
                self.received(ItemKey::new(*sku, *store), *qty);
            }
            (
                Command::SetOnHand {
                    sku, store, qty, ..
                },
                Ok(_),
            ) => {
                let item = ItemKey::new(*sku, *store);
                let before = self.expected_on_hand(&item);
                self.entry(item).received += i128::from(*qty) - before;
            }
            (
                Command::Sell {
                    sku, store, qty, ..
                },
                Ok(_),
            ) => self.sold(ItemKey::new(*sku, *store), *qty),
            (
                Command::Reserve { id, lines, .. } | Command::ReserveCampaign { id, lines, .. },
                Ok(_),
            ) if fresh => {
                self.lines.insert(*id, lines.clone());
            }
            (Command::Commit { lines: Some(_), .. }, Ok(Outcome::ReservationLines(done)))
                if fresh =>
            {
                self.committed(&done.lines);
            }
            (Command::SellLines { lines, .. }, Ok(_)) => {
                for line in lines {
                    self.sold(line.item(), line.qty);
                }
            }
            (Command::ReserveAny { id, .. }, Ok(Outcome::ReservationLines(held))) if fresh => {
                self.lines.insert(*id, held.lines.clone());
            }
            (Command::Commit { id, lines: None }, Ok(_)) if fresh => {
                let lines = self
                    .lines
                    .get(id)
                    .ok_or_else(|| format!("{id} committed but never reserved"))?;
                for line in lines {
                    self.units.entry(line.item()).or_default().committed += i128::from(line.qty);
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// The lines of the latest reservation [`record`](Self::record) saw
    /// made under `id`.
    #[inline]
    pub fn reserved_lines(&self, id: ReservationId) -> Option<&[Line]> {
        self.lines.get(&id).map(Vec::as_slice)
    }

    /// Adds another set of books to these (not the lines
    /// [`record`](Self::record) keeps).
    pub fn merge(&mut self, other: &Conservation) {
        for (item, theirs) in &other.units {
            let mine = self.entry(*item);
            mine.received += theirs.received;
            mine.sold += theirs.sold;
            mine.committed += theirs.committed;
        }
    }

    /// What the books say `item` has on hand.
    pub fn expected_on_hand(&self, item: &ItemKey) -> i128 {
        self.units
            .get(item)
            .map_or(0, |u| u.received - u.sold - u.committed)
    }

    /// Every item of `items` keeps the invariant ([`level_ok`]) and has on
    /// hand what the books say, and every item the books moved is among
    /// `items`. `Err` names the first item that does not.
    pub fn check_on_hand(&self, items: &[(ItemKey, Level)]) -> Result<(), String> {
        let mut booked = 0;
        for (item, level) in items {
            level_ok(level).map_err(|e| format!("{item}: {e}"))?;
            let units = match self.units.get(item) {
                Some(units) => {
                    booked += 1;
                    *units
                }
                None => Units::default(),
            };
            let expected = units.received - units.sold - units.committed;
            if i128::from(level.on_hand) != expected {
                return Err(format!(
                    "{item}: on_hand {} but received {} - sold {} - committed {} = {expected}",
                    level.on_hand, units.received, units.sold, units.committed,
                ));
            }
        }
        match booked == self.units.len() {
            true => Ok(()),
            false => Err(match first_missing(&self.units, items) {
                Some(item) => format!("{item} has units in the books but is unknown"),
                None => "an item is listed twice".to_string(),
            }),
        }
    }

    /// Every item of `items` has reserved exactly the units of `held`, the
    /// lines of the holds still live.
    pub fn check_reserved<'a>(
        items: &[(ItemKey, Level)],
        held: impl IntoIterator<Item = &'a Line>,
    ) -> Result<(), String> {
        let mut holds: BTreeMap<ItemKey, i128> = BTreeMap::new();
        for line in held {
            *holds.entry(line.item()).or_default() += i128::from(line.qty);
        }
        let mut found = 0;
        for (item, level) in items {
            let held = match holds.get(item) {
                Some(units) => {
                    found += 1;
                    *units
                }
                None => 0,
            };
            if i128::from(level.reserved) != held {
                return Err(format!(
                    "{item}: reserved {} but the live holds hold {held}",
                    level.reserved
                ));
            }
        }
        match found == holds.len() {
            true => Ok(()),
            false => Err(match first_missing(&holds, items) {
                Some(item) => format!("{item} is held but unknown"),
                None => "an item is listed twice".to_string(),
            }),
        }
    }

    /// Once every hold has ended: nothing reserved anywhere.
    pub fn check_all_ended(items: &[(ItemKey, Level)]) -> Result<(), String> {
        Conservation::check_reserved(items, []).map_err(|e| format!("after every hold ended: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::{Sku, StoreId};

    #[test]
    fn books_catch_a_unit_too_many_or_too_few() {
        let a = ItemKey::new(Sku(1), StoreId(1));
        let b = ItemKey::new(Sku(2), StoreId(1));
        let mut books = Conservation::default();
        books.received(a, 10);
        let mut other = Conservation::default();
        other.sold(a, 4);
        other.received(b, 1);
        books.merge(&other);
        let cart = [Line::new(Sku(1), StoreId(1), 2)];
        books.committed(&cart);
        let good = [(a, Level::new(4, 2, 0)), (b, Level::new(1, 0, 0))];
        assert_eq!(books.check_on_hand(&good), Ok(()));
        assert!(books.check_on_hand(&good[..1]).is_err(), "b unknown");
        assert!(books
            .check_on_hand(&[(a, Level::new(5, 2, 0)), good[1]])
            .is_err());
        let broken = Level {
            reserved: 5,
            ..Level::new(4, 0, 0)
        };
        assert!(level_ok(&broken).is_err());
        assert_eq!(Conservation::check_reserved(&good, &cart), Ok(()));
        assert!(Conservation::check_reserved(&good, []).is_err());
        assert!(Conservation::check_all_ended(&good).is_err());
        assert_eq!(Conservation::check_all_ended(&good[1..]), Ok(()));
    }

    #[test]
    fn record_follows_a_sequential_run() {
        use crate::command::ReservationAck;
        use crate::types::{Channel, ReservationState};
        let (sku, store) = (Sku(1), StoreId(1));
        let item = ItemKey::new(sku, store);
        let id = ReservationId(9);
        let level = |l| Ok(Outcome::Level(l));
        let ack = |state, replayed| {
            Ok(Outcome::Reservation(ReservationAck {
                id,
                state,
                replayed,
                expires_at_ms: None,
            }))
        };
        let mut books = Conservation::default();
        let run = [
            (
                Command::Restock { sku, store, qty: 9 },
                level(Level::new(9, 0, 0)),
            ),
            (
                Command::SetOnHand {
                    sku,
                    store,
                    qty: 7,
                    expect: None,
                },
                level(Level::new(7, 0, 0)),
            ),
            (
                Command::Sell {
                    sku,
                    store,
                    qty: 1,
                    channel: Channel::InStore,
                },
                level(Level::new(6, 0, 0)),
            ),
            (
                Command::Reserve {
                    id,
                    channel: Channel::Online,
                    ttl_ms: None,
                    lines: vec![Line::new(sku, store, 2)],
                },
                ack(ReservationState::Pending, false),
            ),
            (
                Command::Commit { id, lines: None },
                ack(ReservationState::Committed, false),
            ),
            (
                Command::Commit { id, lines: None },
                ack(ReservationState::Committed, true),
            ),
            (
                Command::Restock { sku, store, qty: 0 },
                Err(Error::Invalid { reason: "" }),
            ),
        ];
        for (command, answer) in &run {
            books.record(command, answer).unwrap();
        }
        assert_eq!(books.expected_on_hand(&item), 4);
        assert!(Conservation::default()
            .record(&run[4].0, &run[4].1)
            .is_err());
    }
}

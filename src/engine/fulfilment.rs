//! Fulfilment: partial commits, compare-and-set cycle counts, POS baskets,
//! reserving from the best of several stores (`reserve_any`), network
//! availability and the consistency check.
//!
//! Invariants: every operation here that reads or changes several cells
//! claims them together (`src/stock/claims.rs`), decides on the words taken
//! out and stores them back all changed or all as they were, so nobody
//! sees part of a basket or of a `reserve_any`, and a `reserve_any` never
//! takes more than a store had at the instant it chose. A store unknown
//! when looked up is checked again with the cells claimed; one created in
//! between starts the operation over. `check` holds every reservation
//! shard's lock, which freezes every cell's `reserved` (only operations
//! under a shard lock change it), and compares it with the lines of the
//! pending reservations.

use super::sourcing::{SourceRequest, Sourcing};
use super::{ack, zero_qty, zero_ttl, Inventory};
use crate::clock::Clock;
use crate::command::{CheckReport, Mismatch, ReservationLines};
use crate::durability::record::Op;
use crate::durability::steps::Seal;
use crate::effect::{Effect, EffectLog};
use crate::error::Error;
use crate::limits::MAX_LINES;
use crate::reservations::held_lines::{HeldLine, HeldLines};
use crate::reservations::shard::{deadline_after, ReservationShard};
use crate::stock::cell::{self, CountRefused};
use crate::stock::claims::Claims;
use crate::types::{Channel, ItemKey, Level, Line, ReservationId, ReservationState, Sku, StoreId};
use smallvec::SmallVec;
use std::collections::HashMap;

impl Inventory {
    /// A partial commit: the picker found fewer units than were reserved.
    /// Takes `lines[n].qty` units of each listed line out of stock and
    /// returns the rest of every line's hold, in one step; lines not listed
    /// commit 0. The answer's `lines` are the units committed on every line
    /// of the reservation, in its line order. Committing a committed
    /// reservation again answers `replayed: true` with what was committed
    /// then (every line in full after a [`commit`](Self::commit)).
    ///
    /// ```
    /// use omnistock::{Channel, Inventory, Line, ReservationId, Sku, StoreId};
    ///
    /// let inventory = Inventory::new();
    /// let (sku, store) = (Sku(1), StoreId(2));
    /// inventory.restock(sku, store, 10)?;
    /// let order = ReservationId(7);
    /// inventory.reserve(order, Channel::Online, &[Line::new(sku, store, 4)])?;
    /// // Only 3 units were found on the shelf.
    /// let done = inventory.commit_lines(order, &[Line::new(sku, store, 3)])?;
    /// assert_eq!(done.lines, [Line::new(sku, store, 3)]);
    /// let level = inventory.level(sku, store)?;
    /// assert_eq!((level.on_hand, level.reserved), (7, 0));
    /// # Ok::<(), omnistock::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// After expiring the reservation if it is overdue:
    /// [`Error::UnknownReservation`], then [`Error::AlreadyReleased`] or
    /// [`Error::Expired`], then [`Error::Invalid`] when a listed item is
    /// not a line of the reservation, is listed twice, or asks for more
    /// than the line holds. Nothing changes then.
    pub fn commit_lines(
        &self,
        id: ReservationId,
        lines: &[Line],
    ) -> Result<ReservationLines, Error> {
        self.with_reservation(
            id,
            Op::CommitLines,
            |shard, at, now, effects, _| match shard.record(at).state {
                ReservationState::Committed => Ok(ReservationLines {
                    ack: ack(id, shard.record(at), true),
                    lines: self.committed_lines(shard, at),
                }),
                ReservationState::Released => Err(Error::AlreadyReleased { id }),
                ReservationState::Expired => Err(Error::Expired { id }),
                ReservationState::Pending => {
                    let held: HeldLines = shard.lines(at).collect();
                    let parts = self.parts_picked(&held, lines)?;
                    let to = ReservationState::Committed;
                    shard.finish_with(at, to, now, &self.items, effects, Some(&parts));
                    Ok(ReservationLines {
                        ack: ack(id, shard.record(at), false),
                        lines: self.committed_lines(shard, at),
                    })
                }
            },
        )
    }

    /// The units picked per held line, from a partial commit's `lines`.
    fn parts_picked(&self, held: &[HeldLine], lines: &[Line]) -> Result<Vec<u32>, Error> {
        let mut parts: Vec<Option<u32>> = vec![None; held.len()];
        for line in lines {
            let Some(n) = held
                .iter()
                .position(|h| self.items.key(h.cell) == line.item())
            else {
                return Err(Error::Invalid {
                    reason: "a committed line names an item the reservation does not hold",
                });
            };
            if parts[n].is_some() {
                return Err(Error::Invalid {
                    reason: "the same (sku, store) appears on two committed lines",
                });
            }
            if line.qty > held[n].qty {
                return Err(Error::Invalid {
                    reason: "a committed line asks for more units than the reservation holds",
                });
            }
            parts[n] = Some(line.qty);
        }
        Ok(parts.into_iter().map(|part| part.unwrap_or(0)).collect())
    }

    /// The units a committed reservation took out of stock, per line.
    fn committed_lines(&self, shard: &ReservationShard, at: u32) -> Vec<Line> {
        let parts = shard.committed_parts(at);
        shard
            .lines(at)
            .enumerate()
            .map(|(n, held)| {
                let mut line = held.line(&self.items);
                if let Some(parts) = parts {
                    line.qty = parts[n];
                }
                line
            })
            .collect()
    }

    /// A compare-and-set cycle count, for ERP and POS syncs: sets `on_hand`
    /// to `qty` only if it is still `expect` (0 for an item never created),
    /// creating the item if new, and answers the level after it.
    ///
    /// ```
    /// use omnistock::{Error, Inventory, Sku, StoreId};
    ///
    /// let inventory = Inventory::new();
    /// let (sku, store) = (Sku(1), StoreId(2));
    /// inventory.restock(sku, store, 10)?;
    /// // The ERP read 10 and counted 9; meanwhile a till sold one.
    /// inventory.sell(sku, store, 1, omnistock::Channel::InStore)?;
    /// let refused = inventory.set_on_hand_expecting(sku, store, 9, 10);
    /// assert_eq!(refused, Err(Error::Stale { on_hand: 9 }));
    /// assert_eq!(inventory.set_on_hand_expecting(sku, store, 8, 9)?.on_hand, 8);
    /// # Ok::<(), omnistock::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::Stale`] with the units on hand now when they are not
    /// `expect`; then [`Error::BelowReserved`]. Nothing changes.
    pub fn set_on_hand_expecting(
        &self,
        sku: Sku,
        store: StoreId,
        qty: u32,
        expect: u32,
    ) -> Result<Level, Error> {
        let key = ItemKey::new(sku, store);
        if expect != 0 && self.items.find(key).is_none() {
            // Unknown at that lookup: 0 on hand, and nothing is created.
            return Err(Error::Stale { on_hand: 0 });
        }
        let mut effects = self.effects(Op::SetOnHandExpecting);
        let mut seal = Seal::new(effects.seqs());
        // A new cell holds 0 units, nothing reserved: the count expecting 0
        // that creates it cannot be refused.
        let result = self.on_cell_or_create(key, &mut effects, |cell| {
            cell.set_on_hand_expecting(qty, expect, &mut seal)
        });
        let answer = match result {
            Ok((level, delta)) => {
                if delta != 0 {
                    effects.push(|| Effect::Stock {
                        item: key,
                        on_hand: delta,
                        reserved: 0,
                    });
                }
                Ok(level)
            }
            Err(CountRefused::Stale { on_hand }) => Err(Error::Stale { on_hand }),
            Err(CountRefused::BelowReserved { reserved }) => Err(Error::BelowReserved {
                sku,
                store,
                reserved,
            }),
        };
        self.journal_sealed(&mut effects, key, seal, false);
        self.publish_answer(&mut effects, answer)
    }

    /// A POS basket: sells every line at once, all or nothing, without a
    /// reservation (nothing is remembered). Answers each line's level after
    /// the sale, in line order. Nobody sees part of the basket sold.
    ///
    /// ```
    /// use omnistock::{Channel, Error, Inventory, Line, Sku, StoreId};
    ///
    /// let inventory = Inventory::new();
    /// let till = StoreId(5);
    /// inventory.restock(Sku(1), till, 3)?;
    /// inventory.restock(Sku(2), till, 1)?;
    /// let basket = [Line::new(Sku(1), till, 2), Line::new(Sku(2), till, 2)];
    /// let refused = inventory.sell_lines(&basket, Channel::InStore);
    /// assert!(matches!(refused, Err(Error::Insufficient { available: 1, .. })));
    /// assert_eq!(inventory.level(Sku(1), till)?.on_hand, 3); // nothing sold
    /// let levels = inventory.sell_lines(&basket[..1], Channel::InStore)?;
    /// assert_eq!(levels[0].on_hand, 1);
    /// # Ok::<(), omnistock::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::Invalid`] for no lines, more than
    /// [`MAX_LINES`](crate::MAX_LINES), a quantity of 0 or an item twice;
    /// then line by line, in order, [`Error::UnknownItem`], then
    /// [`Error::Insufficient`] for the first line that cannot be served.
    pub fn sell_lines(&self, lines: &[Line], channel: Channel) -> Result<Vec<Level>, Error> {
        super::reserve::validate_lines(lines)?;
        let mut levels = Vec::with_capacity(lines.len());
        let mut cells: Vec<u32> = Vec::with_capacity(lines.len());
        let mut effects = self.effects(Op::SellLines);
        loop {
            cells.clear();
            for line in lines {
                match self.items.find(line.item()) {
                    Some(cell) => cells.push(cell),
                    None => break,
                }
            }
            let mut claims = Claims::take(&self.items, cells.iter().copied());
            let mut verdict = Ok(());
            for (n, line) in lines[..cells.len()].iter().enumerate() {
                let (cell, taken) = claims.taken_at(n);
                match cell.sell_on(taken, line.qty, channel) {
                    Ok(next) => {
                        claims.set_at(n, next);
                        levels.push(cell.level_on(next));
                    }
                    Err(cell::Short { available }) => {
                        verdict = Err(Error::Insufficient {
                            sku: line.sku,
                            store: line.store,
                            requested: line.qty,
                            available,
                        });
                        break;
                    }
                }
            }
            if verdict.is_ok() {
                if let Some(line) = lines.get(cells.len()) {
                    if self.items.find(line.item()).is_some() {
                        claims.undo();
                        drop(claims);
                        levels.clear();
                        continue; // created since it was looked up
                    }
                    verdict = Err(Error::UnknownItem {
                        sku: line.sku,
                        store: line.store,
                    });
                }
            }
            if let Err(refusal) = verdict {
                claims.undo();
                return Err(refusal);
            }
            if let Some((seq, words)) = claims.release_sealed(effects.seqs()) {
                let cells = words.iter().map(|(cell, word)| {
                    let (on_hand, reserved) = word.counters();
                    (*cell, on_hand, reserved)
                });
                self.journal_cells(&mut effects, seq, cells);
            }
            for line in lines {
                effects.push(|| Effect::Stock {
                    item: line.item(),
                    on_hand: -i64::from(line.qty),
                    reserved: 0,
                });
            }
            return self.publish_answer(&mut effects, Ok(levels));
        }
    }

    /// Reserves `request.qty` units of one SKU from the candidate stores,
    /// ranked by the caller (distance, priority, cost): from the first
    /// store that has them all for the channel, or with
    /// [`split`](SourceRequest::split), from the stores in order, taking
    /// what each has until nothing remains. Either way one all-or-nothing
    /// reservation: the choice and the hold are one step, so concurrent
    /// sales never make it take more than a store had. Stores where the
    /// item is unknown are skipped. The answer's `lines` are the lines
    /// reserved, in store order; a replay answers with the reservation's
    /// lines.
    ///
    /// ```
    /// use omnistock::{Channel, Inventory, Line, ReservationId, Sku, SourceRequest, StoreId};
    ///
    /// let inventory = Inventory::new();
    /// let sku = Sku(9);
    /// inventory.restock(sku, StoreId(1), 2)?;
    /// inventory.restock(sku, StoreId(2), 5)?;
    /// let nearest_first = [StoreId(1), StoreId(2)];
    /// let whole = SourceRequest::new(sku, 4, &nearest_first);
    /// let held = inventory.reserve_any(ReservationId(1), Channel::Online, &whole, 60_000)?;
    /// assert_eq!(held.lines, [Line::new(sku, StoreId(2), 4)]);
    /// let split = SourceRequest::new(sku, 3, &nearest_first).split();
    /// let held = inventory.reserve_any(ReservationId(2), Channel::Online, &split, 60_000)?;
    /// assert_eq!(held.lines, [Line::new(sku, StoreId(1), 2), Line::new(sku, StoreId(2), 1)]);
    /// # Ok::<(), omnistock::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// In this order: [`Error::Invalid`] for a quantity of 0, no stores,
    /// more than [`MAX_LINES`](crate::MAX_LINES), a store twice, or a
    /// `ttl_ms` of 0 (before anything else); for a known id, after expiring
    /// it if overdue, what [`reserve`](Self::reserve) answers (the same
    /// request is the same channel, and lines all of this SKU at candidate
    /// stores adding up to `qty`); [`Error::UnknownSku`] when the item is
    /// unknown at every store; [`Error::InsufficientAcross`] with the most
    /// one store had (with `split`: what they had together).
    pub fn reserve_any(
        &self,
        id: ReservationId,
        channel: Channel,
        request: &SourceRequest<'_>,
        ttl_ms: u64,
    ) -> Result<ReservationLines, Error> {
        validate_sourcing(request)?;
        if ttl_ms == 0 {
            return Err(zero_ttl());
        }
        let mut effects = self.effects(Op::ReserveAny);
        let (home, keyed) = self.shard(id);
        let mut shard = home.records.lock();
        let now = self.clock.now_ms();
        let answer = match shard.find_or_vacancy(keyed) {
            Ok(at) => {
                shard.expire_if_overdue(at, now, &self.items, &mut effects);
                let lines: Vec<Line> = shard.lines(at).map(|held| held.line(&self.items)).collect();
                let same = shard.record(at).channel == channel
                    && shard.campaign(at).is_none()
                    && lines.iter().all(|line| {
                        line.sku == request.sku && request.stores.contains(&line.store)
                    })
                    && lines.iter().map(|line| u64::from(line.qty)).sum::<u64>()
                        == u64::from(request.qty);
                let existing = shard.record(at);
                match existing.state {
                    _ if !same => Err(Error::IdConflict { id }),
                    ReservationState::Pending | ReservationState::Committed => {
                        Ok(ReservationLines {
                            ack: ack(id, existing, true),
                            lines,
                        })
                    }
                    ReservationState::Released => Err(Error::AlreadyReleased { id }),
                    ReservationState::Expired => Err(Error::Expired { id }),
                }
            }
            Err(vacancy) => {
                // Counted into the filter before any unit is held (see
                // reserve.rs).
                let ids = &home.ids;
                ids.add(id.0);
                match self.hold_any(request, channel, &mut effects) {
                    Err(refusal) => {
                        ids.remove(id.0);
                        Err(refusal)
                    }
                    Ok(held) => {
                        let lines: Vec<Line> = held.iter().map(|h| h.line(&self.items)).collect();
                        let deadline = deadline_after(now, ttl_ms);
                        for line in &lines {
                            effects.push(|| Effect::Stock {
                                item: line.item(),
                                on_hand: 0,
                                reserved: i64::from(line.qty),
                            });
                        }
                        effects.push(|| Effect::Reserved {
                            id,
                            channel,
                            lines: lines.clone(),
                            expires_at_ms: deadline.0,
                            campaign: None,
                            customer: None,
                        });
                        effects.journal(|steps| {
                            steps.current().reserved(
                                id,
                                channel,
                                deadline,
                                lines.iter().copied(),
                                None,
                            );
                        });
                        let at = shard.insert(keyed, channel, deadline, &held, vacancy);
                        Ok(ReservationLines {
                            ack: ack(id, shard.record(at), false),
                            lines,
                        })
                    }
                }
            }
        };
        // Campaign units given back are settled under the shard lock.
        self.settle_log(&mut effects);
        drop(shard);
        self.publish_answer(&mut effects, answer)
    }

    /// Chooses and holds the lines of a `reserve_any` at one instant: claims
    /// the cells of the stores where the item exists, decides on their
    /// words, and stores them back held or as they were.
    fn hold_any(
        &self,
        request: &SourceRequest<'_>,
        channel: Channel,
        effects: &mut EffectLog<'_>,
    ) -> Result<HeldLines, Error> {
        let mut found: SmallVec<[Option<u32>; 8]> = SmallVec::with_capacity(request.stores.len());
        let mut take: SmallVec<[u32; 8]> = SmallVec::with_capacity(request.stores.len());
        loop {
            found.clear();
            found.extend(
                request
                    .stores
                    .iter()
                    .map(|&store| self.items.find(ItemKey::new(request.sku, store))),
            );
            if found.iter().all(Option::is_none) {
                // Items are never removed: unknown at every lookup, so at
                // the first one.
                return Err(Error::UnknownSku { sku: request.sku });
            }
            let mut claims = Claims::take(&self.items, found.iter().flatten().copied());
            let created = request.stores.iter().zip(&found).any(|(&store, cell)| {
                cell.is_none() && self.items.find(ItemKey::new(request.sku, store)).is_some()
            });
            if created {
                drop(claims);
                continue; // a candidate store got the item since the lookup
            }
            take.clear();
            let (mut remaining, mut best, mut total) = (request.qty, 0u32, 0u64);
            for cell in &found {
                let available = match cell {
                    Some(index) => {
                        let (stock, taken) = claims.taken(*index);
                        stock.available_on(taken, channel)
                    }
                    None => 0,
                };
                best = best.max(available);
                total += u64::from(available);
                let part = if request.split {
                    available.min(remaining)
                } else if remaining > 0 && available >= request.qty {
                    request.qty
                } else {
                    0
                };
                remaining -= part;
                take.push(part);
            }
            if remaining > 0 {
                let available = if request.split {
                    // Below the quantity asked for, so within u32.
                    u32::try_from(total).unwrap_or(u32::MAX)
                } else {
                    best
                };
                drop(claims); // nothing was set: the words go back as they were
                return Err(Error::InsufficientAcross {
                    sku: request.sku,
                    requested: request.qty,
                    available,
                });
            }
            for (cell, &part) in found.iter().zip(&take) {
                if let (Some(index), true) = (cell, part > 0) {
                    let (stock, taken) = claims.taken(*index);
                    match stock.reserve_on(taken, part, channel) {
                        Ok(next) => claims.set(*index, next),
                        Err(_) => unreachable!("the part fits what the claim took out"),
                    }
                }
            }
            if let Some((seq, words)) = claims.release_sealed(effects.seqs()) {
                let cells = words.iter().map(|(cell, word)| {
                    let (on_hand, reserved) = word.counters();
                    (*cell, on_hand, reserved)
                });
                self.journal_cells(effects, seq, cells);
            }
            let mut held = HeldLines::new();
            for (cell, &qty) in found.iter().zip(&take) {
                if let (Some(cell), true) = (*cell, qty > 0) {
                    held.push(HeldLine { cell, qty });
                }
            }
            return Ok(held);
        }
    }

    /// [`reserve_any`](Self::reserve_any) with the stores ranked by a
    /// [`Sourcing`] strategy from each candidate's availability now
    /// (unknown items count 0). The ranking is a reading taken before the
    /// reservation; the reservation itself is one step, as for
    /// `reserve_any`.
    ///
    /// ```
    /// use omnistock::{Channel, Inventory, Line, MostAvailableFirst, ReservationId, Sku, SourceRequest, StoreId};
    ///
    /// let inventory = Inventory::new();
    /// let sku = Sku(9);
    /// inventory.restock(sku, StoreId(1), 2)?;
    /// inventory.restock(sku, StoreId(2), 5)?;
    /// let stores = [StoreId(1), StoreId(2)];
    /// let request = SourceRequest::new(sku, 1, &stores);
    /// let held = inventory.reserve_ranked(ReservationId(1), Channel::Online, &request, 60_000, &MostAvailableFirst)?;
    /// assert_eq!(held.lines, [Line::new(sku, StoreId(2), 1)]);
    /// # Ok::<(), omnistock::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// Those of [`reserve_any`](Self::reserve_any), for the ranked stores.
    pub fn reserve_ranked(
        &self,
        id: ReservationId,
        channel: Channel,
        request: &SourceRequest<'_>,
        ttl_ms: u64,
        sourcing: &dyn Sourcing,
    ) -> Result<ReservationLines, Error> {
        validate_sourcing(request)?;
        let candidates: Vec<(StoreId, u32)> = request
            .stores
            .iter()
            .map(|&store| {
                let available = self
                    .items
                    .get(ItemKey::new(request.sku, store))
                    .map_or(0, |cell| {
                        cell.level(self.items.safety_changes()).available(channel)
                    });
                (store, available)
            })
            .collect();
        let mut ranked = Vec::with_capacity(candidates.len());
        sourcing.rank(request.qty, &candidates, &mut ranked);
        let ranked_request = SourceRequest {
            stores: &ranked,
            ..*request
        };
        self.reserve_any(id, channel, &ranked_request, ttl_ms)
    }

    /// Units of `sku` available to `channel` across all its stores: the
    /// SKU's network availability. Reads only that SKU's items (each store
    /// at its own instant), never scans the inventory.
    ///
    /// ```
    /// use omnistock::{Channel, Inventory, Sku, StoreId};
    ///
    /// let inventory = Inventory::new();
    /// inventory.restock(Sku(1), StoreId(1), 4)?;
    /// inventory.restock(Sku(1), StoreId(2), 3)?;
    /// inventory.set_safety_stock(Sku(1), StoreId(2), 1);
    /// inventory.restock(Sku(2), StoreId(1), 100)?;
    /// assert_eq!(inventory.network_available(Sku(1), Channel::Online), 6);
    /// assert_eq!(inventory.network_available(Sku(1), Channel::InStore), 7);
    /// # Ok::<(), omnistock::Error>(())
    /// ```
    pub fn network_available(&self, sku: Sku, channel: Channel) -> u64 {
        let mut total = 0;
        self.items.for_each_of_sku(sku, |index| {
            total += u64::from(
                self.items
                    .cell(index)
                    .level(self.items.safety_changes())
                    .available(channel),
            );
        });
        total
    }

    /// Each store that stocks `sku` with the units available there to
    /// `channel`, in the order the items were created: the candidates a
    /// caller ranks for [`reserve_any`](Self::reserve_any).
    pub fn store_availability(&self, sku: Sku, channel: Channel) -> Vec<(StoreId, u32)> {
        let mut stores = Vec::new();
        self.items.for_each_of_sku(sku, |index| {
            let available = self
                .items
                .cell(index)
                .level(self.items.safety_changes())
                .available(channel);
            stores.push((self.items.key(index).store, available));
        });
        stores
    }

    /// The consistency check: recomputes every item's reserved units from
    /// the pending reservations (overdue ones not yet expired included)
    /// and reports every item whose cell disagrees, by SKU then store. A
    /// correct engine is always consistent. Exact under concurrency: it
    /// holds every reservation shard's lock while it reads, so no
    /// reservation changes `reserved` meanwhile (sales and counts, which
    /// run on, change only `on_hand`); reserves and commits wait for it.
    /// It costs a pass over every reservation and every item.
    ///
    /// ```
    /// use omnistock::{Channel, Inventory, Line, ReservationId, Sku, StoreId};
    ///
    /// let inventory = Inventory::new();
    /// inventory.restock(Sku(1), StoreId(1), 4)?;
    /// inventory.reserve(ReservationId(1), Channel::Online, &[Line::new(Sku(1), StoreId(1), 3)])?;
    /// assert!(inventory.check().consistent);
    /// # Ok::<(), omnistock::Error>(())
    /// ```
    pub fn check(&self) -> CheckReport {
        let shards: Vec<_> = self
            .reservations
            .iter()
            .map(|shard| shard.records.lock())
            .collect();
        let mut expected: HashMap<u32, u64> = HashMap::new();
        for shard in &shards {
            shard.for_each_pending_line(|held| {
                *expected.entry(held.cell).or_default() += u64::from(held.qty);
            });
        }
        let mut items = Vec::new();
        self.items.for_each_indexed(|index, key, cell| {
            let reserved = cell.level(self.items.safety_changes()).reserved;
            let wanted = expected.get(&index).copied().unwrap_or(0);
            if u64::from(reserved) != wanted {
                items.push(Mismatch {
                    sku: key.sku,
                    store: key.store,
                    reserved,
                    expected: wanted,
                });
            }
        });
        drop(shards);
        items.sort_by_key(|item| (item.sku, item.store));
        CheckReport {
            consistent: items.is_empty(),
            items,
        }
    }
}

/// Checks a `reserve_any` request (step 1 of the contract, minus ttl).
fn validate_sourcing(request: &SourceRequest<'_>) -> Result<(), Error> {
    if request.qty == 0 {
        return Err(zero_qty());
    }
    let stores = request.stores;
    if stores.is_empty() {
        return Err(Error::Invalid {
            reason: "reserve_any needs at least one candidate store",
        });
    }
    if stores.len() > MAX_LINES {
        return Err(Error::Invalid {
            reason: "reserve_any takes at most 256 candidate stores",
        });
    }
    let repeated = if stores.len() <= 16 {
        stores
            .iter()
            .enumerate()
            .any(|(i, store)| stores[..i].contains(store))
    } else {
        let mut sorted = stores.to_vec();
        sorted.sort_unstable();
        sorted.windows(2).any(|pair| pair[0] == pair[1])
    };
    if repeated {
        return Err(Error::Invalid {
            reason: "the same store appears twice among the candidates",
        });
    }
    Ok(())
}

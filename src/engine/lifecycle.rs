//! A reservation's life after it is made: commit, release, extend, get,
//! and the reaper (`expire`). Each names an id and runs under its shard
//! lock, after the contract's lazy expiry.

use super::{ack, zero_ttl, Inventory};
use crate::clock::Clock;
use crate::command::{ReservationAck, ReservationInfo};
use crate::durability::record::Op;
use crate::effect::{Effect, EffectLog};
use crate::error::Error;
use crate::reservations::shard::ReservationShard;
use crate::types::{ReservationId, ReservationState};

impl Inventory {
    /// Runs `act` on reservation `id` under its shard lock, after the lazy
    /// expiry the contract performs first. `act` gets the shard, the
    /// record's position in it, the time, the effect log and whether this
    /// very call expired the reservation.
    pub(super) fn with_reservation<T>(
        &self,
        id: ReservationId,
        op: Op,
        act: impl FnOnce(&mut ReservationShard, u32, u64, &mut EffectLog<'_>, bool) -> Result<T, Error>,
    ) -> Result<T, Error> {
        let mut effects = self.effects(op);
        let (home, keyed) = self.shard(id);
        let mut shard = home.records.lock();
        let now = self.clock.now_ms();
        let answer = match shard.find(keyed) {
            Some(at) => {
                let expired_now = shard.expire_if_overdue(at, now, &self.items, &mut effects);
                act(&mut shard, at, now, &mut effects, expired_now)
            }
            None => Err(Error::UnknownReservation { id }),
        };
        // Campaign units given back are settled under the shard lock.
        self.settle_log(&mut effects);
        drop(shard);
        self.publish_answer(&mut effects, answer)
    }

    /// Takes a pending reservation's units out of stock (the order is paid
    /// or shipped). Committing again answers `replayed: true`.
    ///
    /// # Errors
    ///
    /// After expiring the reservation if it is overdue:
    /// [`Error::UnknownReservation`], [`Error::AlreadyReleased`], or
    /// [`Error::Expired`] (also when this call expired it).
    pub fn commit(&self, id: ReservationId) -> Result<ReservationAck, Error> {
        self.with_reservation(id, Op::Commit, |shard, at, now, effects, _| {
            match shard.record(at).state {
                ReservationState::Pending => {
                    let to = ReservationState::Committed;
                    shard.finish(at, to, now, &self.items, effects);
                    Ok(ack(id, shard.record(at), false))
                }
                ReservationState::Committed => Ok(ack(id, shard.record(at), true)),
                ReservationState::Released => Err(Error::AlreadyReleased { id }),
                ReservationState::Expired => Err(Error::Expired { id }),
            }
        })
    }

    /// Gives a pending reservation's units back (the cart was abandoned).
    /// Releasing a released or expired reservation answers ok with
    /// `replayed: true` and its state; one that this very call found overdue
    /// and expired answers ok, `expired`, `replayed: false`.
    ///
    /// # Errors
    ///
    /// [`Error::UnknownReservation`], or [`Error::AlreadyCommitted`].
    pub fn release(&self, id: ReservationId) -> Result<ReservationAck, Error> {
        self.with_reservation(
            id,
            Op::Release,
            |shard, at, now, effects, expired_now| match shard.record(at).state {
                ReservationState::Pending => {
                    let to = ReservationState::Released;
                    shard.finish(at, to, now, &self.items, effects);
                    Ok(ack(id, shard.record(at), false))
                }
                ReservationState::Expired => Ok(ack(id, shard.record(at), !expired_now)),
                ReservationState::Released => Ok(ack(id, shard.record(at), true)),
                ReservationState::Committed => Err(Error::AlreadyCommitted { id }),
            },
        )
    }

    /// Moves a pending reservation's deadline to `now + ttl_ms` (from now,
    /// not from the old deadline).
    ///
    /// # Errors
    ///
    /// [`Error::Invalid`] for a `ttl_ms` of 0, before anything else; then,
    /// after expiring the reservation if it is overdue,
    /// [`Error::UnknownReservation`], [`Error::AlreadyCommitted`],
    /// [`Error::AlreadyReleased`] or [`Error::Expired`].
    pub fn extend(&self, id: ReservationId, ttl_ms: u64) -> Result<ReservationAck, Error> {
        if ttl_ms == 0 {
            return Err(zero_ttl());
        }
        self.with_reservation(id, Op::Extend, |shard, at, now, effects, _| {
            match shard.record(at).state {
                ReservationState::Pending => {
                    shard.extend(at, now, ttl_ms);
                    let record = shard.record(at);
                    let deadline = (record.expires_at, record.overdue_at_once);
                    if let Some(seqs) = effects.seqs() {
                        // Under the shard lock: the step's instant.
                        let seq = seqs.take();
                        effects.journal(|steps| {
                            steps.begin(seq, None, Some(now));
                            steps.current().extended(id, deadline);
                        });
                    }
                    let answer = ack(id, shard.record(at), false);
                    effects.push(|| Effect::Extended {
                        id,
                        expires_at_ms: answer.expires_at_ms.unwrap_or(u64::MAX),
                    });
                    Ok(answer)
                }
                ReservationState::Committed => Err(Error::AlreadyCommitted { id }),
                ReservationState::Released => Err(Error::AlreadyReleased { id }),
                ReservationState::Expired => Err(Error::Expired { id }),
            }
        })
    }

    /// The reservation as it is now (an overdue one is expired first).
    ///
    /// # Errors
    ///
    /// [`Error::UnknownReservation`] if the id was never recorded or has
    /// been forgotten after retention.
    pub fn get(&self, id: ReservationId) -> Result<ReservationInfo, Error> {
        self.with_reservation(id, Op::Expire, |shard, at, _, _, _| {
            let record = shard.record(at);
            Ok(ReservationInfo {
                id,
                state: record.state,
                channel: record.channel,
                lines: shard.lines(at).map(|held| held.line(&self.items)).collect(),
                expires_at_ms: record.expires_at,
            })
        })
    }

    /// The reaper: expires every pending reservation whose deadline has
    /// come, returning their units, then forgets terminal reservations older
    /// than the retention window. Returns how many it expired. Its cost grows
    /// with the reservations it processes, not with those it leaves alone.
    /// Run it periodically (every second or so) from a background thread;
    /// operations naming an overdue reservation expire it themselves. It is
    /// also what frees memory: forgotten records, and the deadline entries
    /// that commits and releases leave behind until their deadline passes,
    /// so an inventory that is never reaped keeps growing. Never fails.
    pub fn expire(&self) -> u64 {
        let mut expired = 0;
        let mut effects = self.effects(Op::Expire);
        for shard in self.reservations.iter() {
            let ids = &shard.ids;
            let mut shard = shard.records.lock();
            let now = self.clock.now_ms();
            expired += shard.expire_due(now, &self.items, &mut effects);
            shard.forget_old(now, self.retention_ms, ids, &mut effects);
            self.settle_log(&mut effects);
            drop(shard);
            // A journal failure is reported by the next operation that can
            // fail (the journal's errors are sticky).
            let _ = self.publish(&mut effects);
        }
        expired
    }
}

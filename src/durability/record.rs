//! Journal records: what one step of a mutating operation changed, in a
//! compact binary form (varints, no field names), and its decoded form
//! [`Record`] for history readers and recovery.
//!
//! A record holds **post-values**: the absolute `on_hand` and `reserved`
//! of every cell the step changed (and the safety stock it set), so that
//! applying a record twice, or over a snapshot that already saw it, gives
//! the same state. Reservation changes (made, finished, extended,
//! forgotten) are applied to the reservation table as they are. The
//! layout, byte by byte:
//!
//! ```text
//! payload  = version:u8 op:u8 at_ms:varint flags:u8 [reason:varint] [reference:bytes] change*
//! change   = 1 item on_hand reserved            (a cell's post-values)
//!          | 2 item safety_stock                (safety stock set)
//!          | 3 id kind expires_at n line* [campaign customer]
//!                                             (reserved; kind = channel | overdue<<1
//!                                              | in_campaign<<2)
//!          | 4 id state at_ms n part*           (finished; n = 0 unless a partial commit)
//!          | 5 id expires_at overdue:u8         (extended)
//!          | 6 id                               (forgotten)
//!          | 7 now_ms                           (the clock moved)
//!          | 8 item reorder_point               (a reorder point set)
//!          | 9 campaign item quota per_customer (a campaign defined)
//!          | 10 campaign                        (a campaign ended)
//! item     = sku:varint store:varint            line = item qty:varint
//! bytes    = len:varint utf8
//! ```

use crate::types::{
    CampaignId, Channel, CustomerId, ItemKey, Line, ReservationId, ReservationState, Sku, StoreId,
};
use serde::{Deserialize, Serialize};
use std::cell::RefCell;
use std::fmt;

/// The version byte every payload starts with.
const VERSION: u8 = 1;

/// What kind of operation wrote a record.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Op {
    /// `restock`.
    Restock,
    /// `set_on_hand`.
    SetOnHand,
    /// `set_on_hand_expecting` (compare-and-set count).
    SetOnHandExpecting,
    /// `set_safety_stock`.
    SetSafetyStock,
    /// `sell`.
    Sell,
    /// `sell_lines` (a POS basket).
    SellLines,
    /// `reserve` / `reserve_with_ttl`.
    Reserve,
    /// `reserve_any` / `reserve_ranked`.
    ReserveAny,
    /// `commit`.
    Commit,
    /// `commit_lines` (a partial commit).
    CommitLines,
    /// `release`.
    Release,
    /// `extend`.
    Extend,
    /// An expiry: the reaper's, or the lazy one an operation naming an
    /// overdue reservation performs first.
    Expire,
    /// Terminal reservations forgotten after the retention window.
    Forget,
    /// The clock was moved (the replay tool's manual clock).
    Clock,
    /// `set_reorder_point`.
    SetReorderPoint,
    /// `define_campaign`.
    DefineCampaign,
    /// `end_campaign`.
    EndCampaign,
}

impl Op {
    const ALL: [Op; 18] = [
        Op::Restock,
        Op::SetOnHand,
        Op::SetOnHandExpecting,
        Op::SetSafetyStock,
        Op::Sell,
        Op::SellLines,
        Op::Reserve,
        Op::ReserveAny,
        Op::Commit,
        Op::CommitLines,
        Op::Release,
        Op::Extend,
        Op::Expire,
        Op::Forget,
        Op::Clock,
        Op::SetReorderPoint,
        Op::DefineCampaign,
        Op::EndCampaign,
    ];

    fn code(self) -> u8 {
        Op::ALL
            .iter()
            .position(|op| *op == self)
            .map_or(0, |n| n as u8)
    }
}

/// Why a change was made and on what authority: journaled with the
/// operation's records and read back by `history`. Both parts optional.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Note {
    /// An application-defined reason code (damaged, cycle count, sale...).
    pub reason: Option<u32>,
    /// An external reference: an ERP document, an order number, a till.
    pub reference: Option<String>,
}

impl Note {
    /// A note with a reason code.
    pub fn reason(reason: u32) -> Self {
        Note {
            reason: Some(reason),
            reference: None,
        }
    }

    /// This note with an external reference.
    pub fn with_reference(mut self, reference: impl Into<String>) -> Self {
        self.reference = Some(reference.into());
        self
    }
}

/// One change inside a [`Record`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Change {
    /// An item's counters after the step (the item is created if new).
    Item {
        /// The item.
        item: ItemKey,
        /// `on_hand` after the step.
        on_hand: u32,
        /// `reserved` after the step.
        reserved: u32,
    },
    /// An item's safety stock after the step.
    SafetyStock {
        /// The item.
        item: ItemKey,
        /// The safety stock set.
        safety_stock: u32,
    },
    /// A reservation was made, pending.
    Reserved {
        /// The reservation.
        id: ReservationId,
        /// Its channel.
        channel: Channel,
        /// Its lines, in the order they are held.
        lines: Vec<Line>,
        /// Its deadline as reported.
        expires_at_ms: u64,
        /// `now + ttl` saturated: overdue from the start.
        overdue_at_once: bool,
        /// The campaign and customer it counts against, if any.
        campaign: Option<(CampaignId, CustomerId)>,
    },
    /// A pending reservation reached a terminal state.
    Finished {
        /// The reservation.
        id: ReservationId,
        /// Committed, released or expired.
        state: ReservationState,
        /// When.
        at_ms: u64,
        /// A partial commit's units per line; empty otherwise.
        parts: Vec<u32>,
    },
    /// A pending reservation's new deadline.
    Extended {
        /// The reservation.
        id: ReservationId,
        /// The new deadline.
        expires_at_ms: u64,
        /// `now + ttl` saturated.
        overdue_at_once: bool,
    },
    /// A terminal reservation left the idempotency window.
    Forgotten {
        /// The reservation.
        id: ReservationId,
    },
    /// The clock's time.
    Clock {
        /// The time now, in ms.
        now_ms: u64,
    },
    /// An item's reorder point (0: none).
    ReorderPoint {
        /// The item.
        item: ItemKey,
        /// The reorder point set.
        reorder_point: u32,
    },
    /// A campaign defined, or a live one's limits changed.
    CampaignDefined {
        /// The campaign.
        campaign: CampaignId,
        /// The item it sells.
        item: ItemKey,
        /// Units it may count in all.
        quota: u32,
        /// Units one customer may count.
        per_customer: u32,
    },
    /// A campaign ended: its counters are dropped.
    CampaignEnded {
        /// The campaign.
        campaign: CampaignId,
    },
}

/// One decoded journal record: one step of one operation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// Its place in the journal's total order.
    pub seq: u64,
    /// The clock's time when it was made.
    pub at_ms: u64,
    /// The operation that made it.
    pub op: Op,
    /// The reason and reference the operation was given, if any.
    pub note: Option<Note>,
    /// What changed.
    pub changes: Vec<Change>,
}

impl Record {
    /// Whether the record changed the item `item`.
    pub fn touches_item(&self, item: ItemKey) -> bool {
        self.changes.iter().any(|change| match change {
            Change::Item { item: it, .. }
            | Change::SafetyStock { item: it, .. }
            | Change::ReorderPoint { item: it, .. }
            | Change::CampaignDefined { item: it, .. } => *it == item,
            Change::Reserved { lines, .. } => lines.iter().any(|line| line.item() == item),
            _ => false,
        })
    }

    /// Whether the record changed the reservation `id`.
    pub fn touches_reservation(&self, id: ReservationId) -> bool {
        self.changes.iter().any(|change| match change {
            Change::Reserved { id: it, .. }
            | Change::Finished { id: it, .. }
            | Change::Extended { id: it, .. }
            | Change::Forgotten { id: it } => *it == id,
            _ => false,
        })
    }
}

/// A payload that does not decode.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DecodeError {
    /// Where in the payload decoding stopped.
    pub offset: usize,
    /// What was wrong there.
    pub reason: &'static str,
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "bad record at byte {}: {}", self.offset, self.reason)
    }
}

impl std::error::Error for DecodeError {}

// ------------------------------------------------------------------ writing

pub(crate) fn put_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

fn put_item(out: &mut Vec<u8>, item: ItemKey) {
    put_varint(out, item.sku.0);
    put_varint(out, item.store.0);
}

fn state_code(state: ReservationState) -> u8 {
    match state {
        ReservationState::Pending => 0,
        ReservationState::Committed => 1,
        ReservationState::Released => 2,
        ReservationState::Expired => 3,
    }
}

fn channel_code(channel: Channel) -> u8 {
    match channel {
        Channel::Online => 0,
        Channel::InStore => 1,
    }
}

thread_local! {
    /// Record buffers this thread used before: journaling a change takes
    /// one and gives it back once the sink copied the record, so it
    /// allocates nothing after the thread's first changes.
    static SPARE: RefCell<Vec<Vec<u8>>> = const { RefCell::new(Vec::new()) };
}

/// Buffers a thread keeps, and the largest it keeps.
const SPARE_BUFFERS: usize = 4;
const SPARE_CAPACITY: usize = 4096;

/// Builds one record's payload.
#[derive(Debug)]
pub(crate) struct Writer {
    pub(crate) out: Vec<u8>,
}

impl Writer {
    pub(crate) fn new(op: Op, at_ms: u64, note: Option<&Note>) -> Self {
        let mut out = SPARE
            .with(|spare| spare.borrow_mut().pop())
            .unwrap_or_else(|| Vec::with_capacity(64));
        out.clear();
        out.push(VERSION);
        out.push(op.code());
        put_varint(&mut out, at_ms);
        match note {
            None => out.push(0),
            Some(note) => {
                let flags =
                    u8::from(note.reason.is_some()) | (u8::from(note.reference.is_some()) << 1);
                out.push(flags);
                if let Some(reason) = note.reason {
                    put_varint(&mut out, u64::from(reason));
                }
                if let Some(reference) = &note.reference {
                    put_varint(&mut out, reference.len() as u64);
                    out.extend_from_slice(reference.as_bytes());
                }
            }
        }
        Writer { out }
    }

    /// Gives the buffer back to this thread's spares (the record was
    /// copied where it goes).
    pub(crate) fn recycle(self) {
        if self.out.capacity() <= SPARE_CAPACITY {
            SPARE.with(|spare| {
                let mut spare = spare.borrow_mut();
                if spare.len() < SPARE_BUFFERS {
                    spare.push(self.out);
                }
            });
        }
    }

    pub(crate) fn item(&mut self, item: ItemKey, on_hand: u32, reserved: u32) {
        self.out.push(1);
        put_item(&mut self.out, item);
        put_varint(&mut self.out, u64::from(on_hand));
        put_varint(&mut self.out, u64::from(reserved));
    }

    pub(crate) fn safety(&mut self, item: ItemKey, safety: u32) {
        self.out.push(2);
        put_item(&mut self.out, item);
        put_varint(&mut self.out, u64::from(safety));
    }

    pub(crate) fn reserved(
        &mut self,
        id: ReservationId,
        channel: Channel,
        (expires_at, overdue): (u64, bool),
        lines: impl ExactSizeIterator<Item = Line>,
        campaign: Option<(CampaignId, CustomerId)>,
    ) {
        self.out.push(3);
        put_varint(&mut self.out, id.0);
        self.out.push(
            channel_code(channel) | (u8::from(overdue) << 1) | (u8::from(campaign.is_some()) << 2),
        );
        put_varint(&mut self.out, expires_at);
        put_varint(&mut self.out, lines.len() as u64);
        for line in lines {
            put_item(&mut self.out, line.item());
            put_varint(&mut self.out, u64::from(line.qty));
        }
        if let Some((campaign, customer)) = campaign {
            put_varint(&mut self.out, campaign.0);
            put_varint(&mut self.out, customer.0);
        }
    }

    pub(crate) fn campaign_defined(
        &mut self,
        campaign: CampaignId,
        item: ItemKey,
        quota: u32,
        per_customer: u32,
    ) {
        self.out.push(9);
        put_varint(&mut self.out, campaign.0);
        put_item(&mut self.out, item);
        put_varint(&mut self.out, u64::from(quota));
        put_varint(&mut self.out, u64::from(per_customer));
    }

    pub(crate) fn campaign_ended(&mut self, campaign: CampaignId) {
        self.out.push(10);
        put_varint(&mut self.out, campaign.0);
    }

    pub(crate) fn finished(
        &mut self,
        id: ReservationId,
        state: ReservationState,
        at_ms: u64,
        parts: &[u32],
    ) {
        self.out.push(4);
        put_varint(&mut self.out, id.0);
        self.out.push(state_code(state));
        put_varint(&mut self.out, at_ms);
        put_varint(&mut self.out, parts.len() as u64);
        for &part in parts {
            put_varint(&mut self.out, u64::from(part));
        }
    }

    pub(crate) fn extended(&mut self, id: ReservationId, (expires_at, overdue): (u64, bool)) {
        self.out.push(5);
        put_varint(&mut self.out, id.0);
        put_varint(&mut self.out, expires_at);
        self.out.push(u8::from(overdue));
    }

    pub(crate) fn forgotten(&mut self, id: ReservationId) {
        self.out.push(6);
        put_varint(&mut self.out, id.0);
    }

    pub(crate) fn clock(&mut self, now_ms: u64) {
        self.out.push(7);
        put_varint(&mut self.out, now_ms);
    }

    pub(crate) fn reorder_point(&mut self, item: ItemKey, reorder_point: u32) {
        self.out.push(8);
        put_item(&mut self.out, item);
        put_varint(&mut self.out, u64::from(reorder_point));
    }
}

// ------------------------------------------------------------------ reading

/// Reads a payload from the front.
#[derive(Debug)]
pub(crate) struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(bytes: &'a [u8]) -> Self {
        Reader { bytes, at: 0 }
    }

    pub(crate) fn fail<T>(&self, reason: &'static str) -> Result<T, DecodeError> {
        Err(DecodeError {
            offset: self.at,
            reason,
        })
    }

    pub(crate) fn done(&self) -> bool {
        self.at >= self.bytes.len()
    }

    pub(crate) fn byte(&mut self) -> Result<u8, DecodeError> {
        match self.bytes.get(self.at) {
            Some(&byte) => {
                self.at += 1;
                Ok(byte)
            }
            None => self.fail("ends early"),
        }
    }

    pub(crate) fn varint(&mut self) -> Result<u64, DecodeError> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let byte = self.byte()?;
            let part = u64::from(byte & 0x7f);
            if shift == 63 && part > 1 {
                return self.fail("varint past 64 bits");
            }
            value |= part << shift;
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        self.fail("varint past 64 bits")
    }

    pub(crate) fn u32(&mut self) -> Result<u32, DecodeError> {
        let value = self.varint()?;
        u32::try_from(value).or_else(|_| self.fail("a count past u32"))
    }

    pub(crate) fn len(&mut self, max: usize) -> Result<usize, DecodeError> {
        let value = self.varint()?;
        match usize::try_from(value) {
            Ok(n) if n <= max => Ok(n),
            _ => self.fail("a length past its limit"),
        }
    }

    pub(crate) fn bytes(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        match self.bytes.get(self.at..self.at.saturating_add(n)) {
            Some(slice) if self.at.checked_add(n).is_some() => {
                self.at += n;
                Ok(slice)
            }
            _ => self.fail("ends early"),
        }
    }

    fn item(&mut self) -> Result<ItemKey, DecodeError> {
        Ok(ItemKey::new(Sku(self.varint()?), StoreId(self.varint()?)))
    }

    fn state(&mut self) -> Result<ReservationState, DecodeError> {
        match self.byte()? {
            1 => Ok(ReservationState::Committed),
            2 => Ok(ReservationState::Released),
            3 => Ok(ReservationState::Expired),
            _ => self.fail("not a terminal state"),
        }
    }
}

/// Decodes the payload of record `seq`.
///
/// # Errors
///
/// A [`DecodeError`] saying where and why the bytes are not a record.
pub fn decode(seq: u64, payload: &[u8]) -> Result<Record, DecodeError> {
    let mut r = Reader::new(payload);
    if r.byte()? != VERSION {
        return r.fail("unknown record version");
    }
    let code = r.byte()?;
    let Some(&op) = Op::ALL.get(usize::from(code)) else {
        return r.fail("unknown operation");
    };
    let at_ms = r.varint()?;
    let flags = r.byte()?;
    if flags > 3 {
        return r.fail("unknown note flags");
    }
    let note = if flags == 0 {
        None
    } else {
        let reason = if flags & 1 != 0 { Some(r.u32()?) } else { None };
        let reference = if flags & 2 != 0 {
            let n = r.len(payload.len())?;
            let bytes = r.bytes(n)?;
            match std::str::from_utf8(bytes) {
                Ok(text) => Some(text.to_owned()),
                Err(_) => return r.fail("a reference that is not UTF-8"),
            }
        } else {
            None
        };
        Some(Note { reason, reference })
    };
    let mut changes = Vec::new();
    while !r.done() {
        let change = match r.byte()? {
            1 => Change::Item {
                item: r.item()?,
                on_hand: r.u32()?,
                reserved: r.u32()?,
            },
            2 => Change::SafetyStock {
                item: r.item()?,
                safety_stock: r.u32()?,
            },
            3 => {
                let id = ReservationId(r.varint()?);
                let kind = r.byte()?;
                if kind > 7 {
                    return r.fail("unknown reservation kind");
                }
                let channel = if kind & 1 == 0 {
                    Channel::Online
                } else {
                    Channel::InStore
                };
                let expires_at_ms = r.varint()?;
                let n = r.len(crate::limits::MAX_LINES)?;
                if n == 0 {
                    return r.fail("a reservation without lines");
                }
                let mut lines = Vec::with_capacity(n);
                for _ in 0..n {
                    let item = r.item()?;
                    lines.push(Line::new(item.sku, item.store, r.u32()?));
                }
                let campaign = if kind & 4 != 0 {
                    Some((CampaignId(r.varint()?), CustomerId(r.varint()?)))
                } else {
                    None
                };
                Change::Reserved {
                    id,
                    channel,
                    lines,
                    expires_at_ms,
                    overdue_at_once: kind & 2 != 0,
                    campaign,
                }
            }
            4 => {
                let id = ReservationId(r.varint()?);
                let state = r.state()?;
                let at_ms = r.varint()?;
                let n = r.len(crate::limits::MAX_LINES)?;
                let mut parts = Vec::with_capacity(n);
                for _ in 0..n {
                    parts.push(r.u32()?);
                }
                Change::Finished {
                    id,
                    state,
                    at_ms,
                    parts,
                }
            }
            5 => Change::Extended {
                id: ReservationId(r.varint()?),
                expires_at_ms: r.varint()?,
                overdue_at_once: match r.byte()? {
                    0 => false,
                    1 => true,
                    _ => return r.fail("not a flag"),
                },
            },
            6 => Change::Forgotten {
                id: ReservationId(r.varint()?),
            },
            7 => Change::Clock {
                now_ms: r.varint()?,
            },
            8 => Change::ReorderPoint {
                item: r.item()?,
                reorder_point: r.u32()?,
            },
            9 => Change::CampaignDefined {
                campaign: CampaignId(r.varint()?),
                item: r.item()?,
                quota: r.u32()?,
                per_customer: r.u32()?,
            },
            10 => Change::CampaignEnded {
                campaign: CampaignId(r.varint()?),
            },
            _ => return r.fail("unknown change"),
        };
        changes.push(change);
    }
    Ok(Record {
        seq,
        at_ms,
        op,
        note,
        changes,
    })
}

#[cfg(all(test, not(omnistock_loom)))]
mod tests {
    use super::*;

    #[test]
    fn every_change_round_trips() {
        let note = Note::reason(7).with_reference("PO-1");
        let mut w = Writer::new(Op::CommitLines, 123_456, Some(&note));
        let key = ItemKey::new(Sku(u64::MAX), StoreId(3));
        w.item(key, u32::MAX, 0);
        w.safety(key, 2);
        w.reserved(
            ReservationId(9),
            Channel::InStore,
            (u64::MAX, true),
            [Line::new(Sku(1), StoreId(2), 3)].into_iter(),
            None,
        );
        w.reserved(
            ReservationId(10),
            Channel::Online,
            (8, false),
            [Line::new(Sku(1), StoreId(2), 1)].into_iter(),
            Some((CampaignId(5), CustomerId(6))),
        );
        w.campaign_defined(CampaignId(5), key, 100, 2);
        w.campaign_ended(CampaignId(5));
        w.finished(ReservationId(9), ReservationState::Committed, 5, &[1]);
        w.extended(ReservationId(9), (77, false));
        w.forgotten(ReservationId(9));
        w.clock(99);
        w.reorder_point(key, 4);
        let record = decode(4, &w.out).unwrap();
        assert_eq!(record.seq, 4);
        assert_eq!(record.op, Op::CommitLines);
        assert_eq!(record.note, Some(note));
        assert_eq!(record.changes.len(), 11);
        assert!(record.touches_item(key));
        assert!(record.touches_reservation(ReservationId(9)));
        for cut in 0..w.out.len() {
            // Every prefix either decodes to fewer changes or is refused.
            let _ = decode(4, &w.out[..cut]);
        }
    }
}
